"""Bad landed files are refused before anything is loaded, naming the file and what was expected."""

from __future__ import annotations

import pytest

from pipeline_sql.naming import Naming
from pipeline_sql.runner import LayerError, Runner
from pipeline_sql.spec import parse_spec

SPEC = parse_spec(
    {
        "table": "parcels",
        "source": {"format": "csv", "path": "parcels/"},
        "key": ["parcel_id"],
        "columns": [
            {"source": "id", "name": "parcel_id", "type": "INT64"},
            {"source": "status", "name": "status", "type": "STRING"},
        ],
    }
)


def test_csv_loads_by_its_header_and_a_header_the_spec_does_not_fit_is_refused(engine, tmp_path):
    landing = tmp_path / "landing"
    (landing / "parcels").mkdir(parents=True)
    bad = landing / "parcels" / "001_unknown.csv"
    bad.write_text("id,state\n1,placed\n")
    runner = Runner(engine.client, Naming(env="hdrcheck"), landing_dir=landing)
    runner.bootstrap([SPEC])
    with pytest.raises(LayerError) as e:
        runner.run_table(SPEC)
    msg = str(e.value)
    assert "parcels: staging layer failed" in msg and str(bad) in msg
    assert "header id,state does not match the spec's source columns (unknown column(s) state)" in msg and "expected id,status" in msg
    assert runner.query("SELECT COUNT(*) AS n FROM `flexyboots-local.hdrcheck_staging.parcels`")[0]["n"] == 0

    bad.write_text("status,id\nplaced,1\n")  # another order: loaded by name
    runner.run_table(SPEC)
    bad.unlink()
    # same names, other case: BigQuery names are case-insensitive
    (landing / "parcels" / "002_case.csv").write_text("ID,Status\n2,sent\n")
    runner.run_table(SPEC)
    assert [dict(r.items()) for r in runner.query("SELECT parcel_id, status FROM `flexyboots-local.hdrcheck_dwh.parcels` ORDER BY parcel_id")] == [
        {"parcel_id": 1, "status": "placed"},
        {"parcel_id": 2, "status": "sent"},
    ]
    # a file without the key column is refused
    (landing / "parcels" / "003_nokey.csv").write_text("status\nlost\n")
    with pytest.raises(LayerError, match="lacks required column"):
        runner.run_table(SPEC)


def test_a_staging_stopped_before_its_description_never_files_rows_under_the_previous_batch(engine, tmp_path, monkeypatch):
    landing = tmp_path / "landing"
    (landing / "parcels").mkdir(parents=True)
    (landing / "parcels" / "001.csv").write_text("id,status\n1,placed\n")
    runner = Runner(engine.client, Naming(env="descgap"), landing_dir=landing)
    runner.bootstrap([SPEC])
    runner.run_table(SPEC)
    first = runner.query("SELECT _batch_id FROM `flexyboots-local.descgap_archive.parcels`")[0]["_batch_id"]

    (landing / "parcels" / "002.csv").write_text("id,status\n2,shipped\n")
    real = runner.query

    def fail_on_description(sql, params=None, table="", layer="", **kw):
        if params and "landed_at" in params:
            raise LayerError(table, layer, "stopped before the description")
        return real(sql, params, table, layer, **kw)

    monkeypatch.setattr(runner, "query", fail_on_description)
    with pytest.raises(LayerError):
        runner.run_layer(SPEC, "staging")  # the file is loaded, its description is not written
    monkeypatch.undo()
    runner.run_layer(SPEC, "archive")
    runner.run_table(SPEC)
    rows = {r["parcel_id"]: r["_batch_id"] for r in runner.query("SELECT parcel_id, _batch_id FROM `flexyboots-local.descgap_archive.parcels`")}
    assert rows.keys() == {"1", "2"} and rows["2"] != first  # never filed under batch 001
    assert not runner.pending_files(SPEC)  # and 002 is recorded as done in the end


def test_files_in_dated_landing_folders_load_in_path_order(engine, tmp_path):
    """The deployed layout (<path>dt=YYYY-MM-DD/<file>) works locally as is: every file under
    the table's folder, sub-folders included, in path order."""
    landing = tmp_path / "landing"
    for day, rows in (("2024-01-02", "id,status\n1,shipped\n"), ("2024-01-01", "id,status\n1,placed\n2,placed\n")):
        (landing / "parcels" / f"dt={day}").mkdir(parents=True)
        (landing / "parcels" / f"dt={day}" / "export.csv").write_text(rows)
    runner = Runner(engine.client, Naming(env="dated"), landing_dir=landing)
    runner.bootstrap([SPEC])
    res = runner.run_table(SPEC)
    assert [r.detail["file"] for r in res if r.layer == "staging"] == ["parcels/dt=2024-01-01/export.csv", "parcels/dt=2024-01-02/export.csv"]
    rows = runner.query("SELECT parcel_id, status FROM `flexyboots-local.dated_dwh.parcels` ORDER BY parcel_id")
    assert [(r["parcel_id"], r["status"]) for r in rows] == [(1, "shipped"), (2, "placed")]
