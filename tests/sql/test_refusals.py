"""Bad input on the embedded engine: refused files quarantined without blocking the files after
them, tables isolated from each other's failures, damaged state refused rather than recreated
empty, the archive line counting what it inserted, and a fuzz of landed CSV files through a
whole run (a clear refusal naming the file, or exactly the rows of the file; never a traceback,
never a lost row)."""

from __future__ import annotations

import csv
import io
import itertools
import json
import shutil

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pipeline_sql.cli import main
from pipeline_sql.engine import EngineError, LocalEngine, check_state_dir
from pipeline_sql.naming import Naming
from pipeline_sql.runner import FileQuarantined, Runner, RunFailed, StateError
from pipeline_sql.spec import parse_spec


def _spec(table: str = "parcels", fmt: str = "csv", checks=()):
    return parse_spec(
        {
            "table": table,
            "source": {"format": fmt, "path": f"{table}/"},
            "key": ["parcel_id"],
            "columns": [
                {"source": "id", "name": "parcel_id", "type": "INT64"},
                {"source": "status", "name": "status", "type": "STRING"},
                {"source": "note", "name": "note", "type": "STRING"},
            ],
            "checks": list(checks),
        }
    )


_envs = itertools.count(1)


def _runner(engine, landing, env=None, lines=None):
    return Runner(engine.client, Naming(env=env or f"rf{next(_envs)}"), landing_dir=landing, progress=(lines.append if lines is not None else None))


def _dwh(runner, spec):
    return {r["parcel_id"]: r["status"] for r in runner.query(f"SELECT parcel_id, status FROM {runner.naming.ref('dwh', spec.table)}")}


def test_a_refused_file_is_quarantined_and_never_blocks_the_files_after_it(engine, tmp_path):
    spec, landing = _spec(), tmp_path / "landing"
    folder = landing / "parcels"
    folder.mkdir(parents=True)
    (folder / "001.csv").write_text("id,status,note\n1,placed,a\n")
    bad = folder / "002.csv"
    bad.write_text("id,status,note\n2,placed\n")  # truncated line
    (folder / "003.csv").write_text("id,status,note\n3,placed,c\n")
    (folder / "notes.txt").write_text("not data")
    lines: list[str] = []
    runner = _runner(engine, landing, lines=lines)
    with pytest.raises(RunFailed) as e:
        runner.run([spec])
    assert e.value.failures == [] and [r.path for r in e.value.refused] == [str(bad)]
    assert f"refused {bad}: line 2: 2 fields, expected 3 (id,status,note) (a truncated line?)" in str(e.value)
    assert _dwh(runner, spec) == {1: "placed", 3: "placed"}  # 003 loaded after the refused 002
    assert any("parcels/notes.txt: not a csv file (extension .txt); not loaded" in w for w in runner.warnings)
    q = runner.query(f"SELECT source_file, content_sha256, reason FROM `{runner.naming.table_id('quality', 'refused_files')}`")
    assert [(r["source_file"], r["reason"]) for r in q] == [("parcels/002.csv", str(e.value.refused[0]))]

    # a later run (a new runner: the quarantine is in the state) skips it with a warning, exit 0
    again = _runner(engine, landing, env=runner.naming.env, lines=lines)
    again.run([spec])
    assert any("parcels/002.csv: quarantined, skipped" in w and "fix it and land it again" in w for w in again.warnings)
    with pytest.raises(FileQuarantined) as direct:  # a layer run alone on a new bad file says so
        (folder / "004.csv").write_text("id,status,note\n4\n")
        again.run_layer(spec, "staging")
    assert "staging layer failed: refused" in str(direct.value) and "004.csv: line 2" in str(direct.value)
    (folder / "004.csv").unlink()

    bad.write_text("id,status,note\n2,placed,b\n")  # fixed and re-landed: a new content, loaded
    again.run([spec])
    assert _dwh(again, spec) == {1: "placed", 2: "placed", 3: "placed"}
    assert not any("002.csv: quarantined" in w for w in again.warnings)


def test_a_file_refused_after_its_load_job_succeeded_leaves_nothing_in_staging(engine, tmp_path):
    """The check runs beside the load job: a blank line loads (the engine skips it) but is
    refused; staging is emptied again, so an archive run alone archives nothing of it."""
    spec, landing = _spec(), tmp_path / "landing"
    folder = landing / "parcels"
    folder.mkdir(parents=True)
    (folder / "001.csv").write_text("id,status,note\n1,placed,a\n")
    runner = _runner(engine, landing)
    runner.run([spec])
    bad = folder / "002.csv"
    bad.write_text("id,status,note\n2,placed,b\n\n3,placed,c\n")
    with pytest.raises(FileQuarantined) as e:
        runner.run_layer(spec, "staging")
    assert "002.csv: line 3: blank line" in str(e.value)
    staged = runner.query(f"SELECT COUNT(*) AS n FROM {runner.naming.ref('staging', spec.table)}")
    assert staged[0]["n"] == 0
    runner.run_layer(spec, "archive")
    archived = runner.query(f"SELECT parcel_id FROM {runner.naming.ref('archive', spec.table)} ORDER BY parcel_id")
    assert [r["parcel_id"] for r in archived] == ["1"]


def test_an_ndjson_field_of_another_case_is_refused_not_loaded_as_null(engine, tmp_path):
    spec, landing = _spec(fmt="json"), tmp_path / "landing"
    (landing / "parcels").mkdir(parents=True)
    (landing / "parcels" / "001.ndjson").write_text('{"id": 1, "status": "a"}\n{"Id": 2, "status": "b"}\n')
    runner = _runner(engine, landing)
    with pytest.raises(RunFailed) as e:
        runner.run([spec])
    assert "line 2, column 2: field 'Id' is not a source column of the spec (the spec writes it 'id': names must match exactly)" in str(e.value)
    assert _dwh(runner, spec) == {}


def test_one_table_failing_never_stops_the_others(engine, tmp_path):
    landing = tmp_path / "landing"
    broken = _spec("broken", fmt="parquet")  # a parquet file the engine cannot read
    good = _spec("good")
    checked = _spec("checked", checks=[{"not_null": ["note"]}])  # fails its error-severity check
    for spec, name, text in ((broken, "001.parquet", "not parquet"), (good, "001.csv", "id,status,note\n1,ok,x\n"), (checked, "001.csv", "id,status,note\n1,ok,\n")):
        (landing / spec.table).mkdir(parents=True)
        (landing / spec.table / name).write_text(text)
    lines: list[str] = []
    runner = _runner(engine, landing, lines=lines)
    results = []
    with pytest.raises(RunFailed) as e:
        runner.run([broken, good, checked], results)
    assert [(f.table, f.layer) for f in e.value.failures] == [("broken", "staging"), ("checked", "checks")]
    assert "run finished with errors: 2 tables failed" in str(e.value) and "001.parquet" in str(e.value)
    assert _dwh(runner, good) == {1: "ok"}
    assert [r.layer for r in results if r.table == "good"] == ["staging", "archive", "delta", "transform", "dwh", "checks"]
    assert any(r.table == "checked" and r.layer == "checks" and r.detail["failed"] == 1 for r in results)
    assert any(line.startswith("broken         FAILED    broken: staging layer failed: loading") for line in lines)


def test_a_missing_archive_that_its_batch_log_refers_to_is_refused_not_recreated(engine, tmp_path):
    spec, other, landing = _spec(), _spec("other"), tmp_path / "landing"
    for s in (spec, other):
        (landing / s.table).mkdir(parents=True)
        (landing / s.table / "001.csv").write_text("id,status,note\n1,placed,a\n")
    runner = _runner(engine, landing)
    runner.run([spec, other])
    archive = runner.naming.table_id("archive", "parcels")
    runner.client.delete_table(archive)
    runner.client.delete_table(runner.naming.table_id("dwh", "other"))  # a lost DWH is rebuilt from the archive
    (landing / "other" / "002.csv").write_text("id,status,note\n2,placed,b\n")
    with pytest.raises(RunFailed) as e:
        runner.run([spec, other])
    (err,) = e.value.failures
    assert isinstance(err, StateError) and err.table == "parcels"
    assert f"parcels: state layer failed: {archive} is missing, but its batch log {archive}__batches lists 1 loaded file(s): it is not recreated empty" in str(err)
    assert "restore it from a backup of the state folder (locally: `bqemulator restore`" in str(err)
    assert "parcels" not in {t.table_id for t in runner.client.list_tables(f"{runner.naming.project}.{runner.naming.dataset('archive')}")}
    assert _dwh(runner, other) == {1: "placed", 2: "placed"}  # the other table ran, its DWH rebuilt whole


def test_a_state_table_of_another_schema_is_refused(engine, tmp_path):
    spec, landing = _spec(), tmp_path / "landing"
    (landing / "parcels").mkdir(parents=True)
    (landing / "parcels" / "001.csv").write_text("id,status,note\n1,placed,a\n")
    runner = _runner(engine, landing)
    runner.run([spec])
    dwh = runner.naming.table_id("dwh", "parcels")
    runner.query(f"CREATE OR REPLACE TABLE `{dwh}` (parcel_id STRING, status STRING)")
    with pytest.raises(StateError) as e:
        runner.bootstrap([spec])
    assert f"{dwh} does not have the schema the pipeline expects: column _row_hash (STRING) is missing; it is not recreated" in str(e.value)
    archive = runner.naming.table_id("archive", "parcels")
    runner.query(f"CREATE OR REPLACE TABLE `{dwh}` (parcel_id INT64, _row_hash STRING)")  # a DWH may differ (a retyped column)
    runner.query(f"CREATE OR REPLACE TABLE `{archive}` (parcel_id INT64, status STRING, _row_hash STRING, _ingested_at TIMESTAMP, _batch_id STRING)")
    with pytest.raises(StateError) as e:
        runner.bootstrap([spec])
    assert f"{archive} does not have the schema the pipeline expects: column parcel_id is INT64, expected STRING;" in str(e.value)


def test_foreign_and_damaged_state_folders_are_refused(tmp_path):
    foreign = tmp_path / "photos"
    foreign.mkdir()
    (foreign / "holiday.jpg").write_text("x")
    with pytest.raises(EngineError) as e:
        check_state_dir(foreign)
    assert str(e.value) == f"{foreign} is not a flexyboots state folder: it has no bqemulator.duckdb and holds holiday.jpg; pass --state with a new or empty folder (or the folder of an earlier run)"
    check_state_dir(tmp_path / "new")  # absent or empty: fine
    damaged = tmp_path / "state"
    damaged.mkdir()
    (damaged / "bqemulator.duckdb").write_bytes(b"\x00garbage" * 100)
    with pytest.raises(EngineError) as e:
        LocalEngine(state_dir=damaged, gcs_root=None).start()
    assert str(e.value).startswith(f"state folder {damaged} is damaged: the engine cannot open bqemulator.duckdb")
    assert "bqemulator restore --data-dir" in str(e.value)


def test_the_archive_line_counts_the_versions_it_inserted(engine, tmp_path):
    spec, landing = _spec(), tmp_path / "landing"
    (landing / "parcels").mkdir(parents=True)
    (landing / "parcels" / "001.csv").write_text("id,status,note\n1,placed,a\n2,placed,b\n")
    (landing / "parcels" / "002.csv").write_text("id,status,note\n1,placed,a\n1,placed,a\n2,shipped,b\n3,new,c\n,nokey,x\n")
    runner = _runner(engine, landing)
    out = runner.run([spec])
    archive = [r for r in out if r.layer == "archive"]
    assert [(r.rows_in, r.rows_out, r.detail["null_key_rows"]) for r in archive] == [(2, 2, 0), (5, 2, 1)]
    assert archive[1].describe() == "5 rows in -> 2 new versions archived, 1 NULL-key rows"


def test_a_csv_file_without_a_nullable_column_loads_it_as_null_and_without_a_key_is_refused(engine, tmp_path):
    spec, landing = _spec(), tmp_path / "landing"
    (landing / "parcels").mkdir(parents=True)
    (landing / "parcels" / "001.csv").write_text("note,id,status\nx,1,placed\n")  # another order
    (landing / "parcels" / "002.csv").write_text("id,status\n2,shipped\n")  # no note: NULL
    (landing / "parcels" / "003.csv").write_text("status,note\nlost,y\n")  # no key: refused
    (landing / "parcels" / "004.csv").write_text("id,status,note\n3,new,z\n")  # the spec's layout again
    runner = _runner(engine, landing)
    with pytest.raises(RunFailed) as e:
        runner.run([spec])
    assert [r.reason for r in e.value.refused] == ["header status,note lacks required column id (a key or `required: true` column); expected id,status,note"]
    rows = runner.query(f"SELECT parcel_id, status, note FROM {runner.naming.ref('dwh', 'parcels')} ORDER BY parcel_id")
    assert [tuple(r.values()) for r in rows] == [(1, "placed", "x"), (2, "shipped", None), (3, "new", "z")]


def test_cli_run_reports_every_failure_and_warning_and_exits_non_zero(capsys, tmp_path):
    from pathlib import Path

    root = Path(__file__).resolve().parents[2]
    landing, state = tmp_path / "landing", tmp_path / "state"
    shutil.copytree(root / "landing", landing)
    (landing / "customers" / "000_bad.csv").write_bytes(b"id\xff\n")
    (landing / "orders" / "README.txt").write_text("not data")
    assert main(["run", "--landing", str(landing), "--state", str(state), "--quiet"]) == 1
    out, err = capsys.readouterr()
    assert "orders/README.txt: not a csv file (extension .txt); not loaded" in out.split("warning")[-1]
    assert f"refused {landing / 'customers' / '000_bad.csv'}: line 1, column 3: byte 0xff is not UTF-8" in err
    assert "customers      dwh" in out and "orders         dwh" in out  # every table ran
    assert main(["run", "--landing", str(landing), "--state", str(state), "--quiet"]) == 0  # quarantined: skipped
    assert "customers/000_bad.csv: quarantined, skipped" in capsys.readouterr().out


# --------------------------------------------------------------------------- fuzz, end to end


def _mutated(base: bytes, pieces: list[bytes]):
    """``base`` with one to three spans replaced by one of ``pieces``."""

    @st.composite
    def build(draw):
        b = bytearray(base)
        for _ in range(draw(st.integers(1, 3))):
            at = draw(st.integers(0, len(b)))
            b[at : at + draw(st.integers(0, 2))] = draw(st.sampled_from(pieces))
        return bytes(b)

    return build()


def _run_landed(engine, folder, name: str, data: bytes, fmt: str) -> set | None:
    """Land ``data`` alone and run: None when the run refused it (a clear refusal naming the
    file, never an engine error), else the archive's (id, status, note) rows."""
    f = folder / "parcels" / name
    f.parent.mkdir()
    f.write_bytes(data)
    runner = _runner(engine, folder)
    try:
        runner.run([_spec(fmt=fmt)])
    except RunFailed as e:
        assert not e.failures, str(e)  # never an engine error: refused before loading, or loaded
        assert [r.path for r in e.refused] == [str(f)] and e.refused[0].reason
        return None
    rows = runner.query(f"SELECT parcel_id, status, note FROM {runner.naming.ref('archive', 'parcels')}")
    return {(r["parcel_id"], r["status"], r["note"]) for r in rows}


_FUZZ = settings(max_examples=12, deadline=None, derandomize=True, suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
_GOOD = b"id,status,note\n1,placed,\"a, b\"\n2,shipped,x\n3,new,\n"
_GOOD_JSON = b'{"id": 1, "status": "placed", "note": "a, b"}\n{"id": "2", "status": "shipped"}\n{"id": 3, "status": null, "note": "x"}\n'


@_FUZZ
@given(data=_mutated(_GOOD, [b"", b",", b'"', b"\n", b"\r\n", b"\r", b"\xff", b"x", b"\x00", b" ", b"\t", b"\\", b"'"]))
def test_fuzz_landed_csv_clear_refusal_or_exactly_its_rows(engine, tmp_path_factory, data):
    got = _run_landed(engine, tmp_path_factory.mktemp("fuzz"), "001.csv", data, "csv")
    if got is None:
        return
    header, *body = list(csv.reader(io.StringIO(data.decode("utf-8-sig"), newline=""), strict=True))
    rows = (tuple(dict(zip(header, r)).get(c) or None for c in ("id", "status", "note")) for r in body)
    assert got == {r for r in rows if r[0] is not None}


def _as_loaded(v):
    """A JSON scalar as the STRING staging holds it (BigQuery's JSON load of a STRING column)."""
    if v is None:
        return None
    if isinstance(v, bool):
        return "true" if v else "false"
    return str(v)


@_FUZZ
@given(data=_mutated(_GOOD_JSON, [b"", b",", b'"', b"\n", b"\r", b"\xff", b"1", b"I", b"{", b"[", b"}", b" ", b"\\", b"null", b"true"]))
def test_fuzz_landed_ndjson_clear_refusal_or_exactly_its_rows(engine, tmp_path_factory, data):
    got = _run_landed(engine, tmp_path_factory.mktemp("fuzzj"), "001.ndjson", data, "json")
    if got is None:
        return
    objs = [json.loads(line) for line in data.decode("utf-8-sig").split("\n") if line.strip()]
    assert got == {tuple(_as_loaded(o.get(c)) for c in ("id", "status", "note")) for o in objs if o.get("id") is not None}
