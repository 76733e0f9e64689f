"""The embedded engine's tuning (``LocalEngine._tune``) and its durability.

The tuning removes emulator costs without changing results: the time-travel copy after
every write, the per-job record written to the database, repeated sqlglot parses, copies of a
statement's tree for detectors that only look at its kind, repeated translations of the same
statement, a CSV load's dialect sniffing, a truncating load's row-by-row delete (the other
per-statement shortcuts are tested in ``test_engine_shortcuts.py``). These tests
fail if a bqemulator upgrade moves what it relies on, and prove that a run killed mid-way loses
nothing it had stored."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from pipeline_sql.engine import LocalEngine

ROOT = Path(__file__).resolve().parents[2]


def _duckdb(engine: LocalEngine):
    return engine._emu.server._engine.connection


def test_writes_leave_no_time_travel_copy_and_no_job_record(tmp_path):
    (tmp_path / "b").mkdir()
    (tmp_path / "b" / "f.csv").write_text("a\nx\ny\n")
    with LocalEngine(state_dir=tmp_path / "state", gcs_root=tmp_path) as eng:
        from google.cloud import bigquery

        c = eng.client
        c.query("CREATE SCHEMA ds").result()
        cfg = bigquery.LoadJobConfig(schema=[bigquery.SchemaField("a", "STRING")], skip_leading_rows=1, source_format="CSV")
        c.load_table_from_uri("gs://b/f.csv", "flexyboots-local.ds.t", job_config=cfg).result()
        job = c.query("INSERT INTO ds.t (a) VALUES ('z')")
        job.result()
        assert [r["n"] for r in c.query("SELECT COUNT(*) AS n FROM ds.t").result()] == [3]
        con = _duckdb(eng)
        snaps = con.execute("SELECT COUNT(*) FROM information_schema.tables WHERE table_schema = '_bqemulator_snapshots'").fetchone()[0]
        assert snaps == 0, "a write left a time-travel copy of its table"
        assert con.execute('SELECT COUNT(*) FROM "_bqemulator_catalog"."jobs"').fetchone()[0] == 0
        assert c.get_job(job.job_id).state == "DONE"  # the job is still known to this process


def test_the_tuning_is_written_against_the_pinned_engine_versions():
    """``LocalEngine._tune`` patches private functions of these exact releases (its shortcuts
    are compared with the originals in ``test_engine_shortcuts.py``): re-read each patch
    against the new source before moving a pin."""
    from importlib.metadata import version

    assert version("bqemulator") == "1.4.0"
    assert version("sqlglot") == "30.11.0"
    assert version("sqlglotc") == "30.11.0"  # the compiled build of that exact sqlglot


def test_parses_are_memoized_and_each_caller_gets_its_own_tree(engine):
    import sqlglot

    a = sqlglot.parse_one("SELECT x FROM t WHERE y = 1", read="bigquery")
    b = sqlglot.parse_one("SELECT x FROM t WHERE y = 1", read="bigquery")
    assert a == b and a is not b
    a.set("where", None)  # a caller rewriting its tree in place
    assert "WHERE" in b.sql() and "WHERE" in sqlglot.parse_one("SELECT x FROM t WHERE y = 1", read="bigquery").sql()
    from sqlglot.dialects.dialect import Dialect

    assert getattr(Dialect.parse, "_flexyboots_cached", False)


def test_translations_are_memoized_on_text_column_types_and_caller(engine):
    """A statement run again with the same column types is not translated again; a table whose
    column types changed in between (CREATE OR REPLACE) gets a new translation."""
    from bqemulator.sql.translator import SQLTranslator

    assert getattr(SQLTranslator.translate, "_flexyboots_cached", False)
    c = engine.client
    c.query("CREATE SCHEMA IF NOT EXISTS memo").result()
    c.query("CREATE OR REPLACE TABLE memo.t (a NUMERIC(38, 9))").result()
    sql = "SELECT AVG(a) AS m, COUNT(*) AS n FROM memo.t"
    tr = SQLTranslator()
    first = tr.translate(sql, schema={"t": {"a": "DECIMAL(38,9)"}})
    assert tr.translate(sql, schema={"t": {"a": "DECIMAL(38,9)"}}) is first  # served from the memo
    other = tr.translate(sql, schema={"t": {"a": "BIGINT"}})
    assert other is not first and other.value != first.value  # AVG over a DECIMAL keeps its type
    assert [dict(r.items()) for r in c.query(sql).result()] == [{"m": None, "n": 0}]
    c.query("INSERT INTO memo.t (a) VALUES (1.5), (2.5)").result()
    c.query("CREATE OR REPLACE TABLE memo.t (a INT64)").result()
    c.query("INSERT INTO memo.t (a) VALUES (1), (2)").result()
    assert [dict(r.items()) for r in c.query(sql).result()] == [{"m": 1.5, "n": 2}]


def test_a_new_translator_with_the_same_rules_shares_the_memo(engine):
    """A script makes a new translator for every job: its statements are served from the memo
    when the translator's rules are the same classes, in the same order; other rules translate
    anew."""
    from bqemulator.sql.translator import SQLTranslator

    sql = "SELECT SAFE_DIVIDE(1, 0) AS memo_rules"
    first = SQLTranslator().translate(sql)
    assert SQLTranslator().translate(sql) is first
    fewer = SQLTranslator()
    fewer._rules = fewer._rules[:-1]
    assert fewer.translate(sql) is not first
    c = engine.client  # two script jobs of the same text: both answered, the second from the memo
    script = "DECLARE n INT64 DEFAULT 2; SELECT n * 21 AS answer;"
    assert [[r["answer"] for r in c.query(script).result()] for _ in range(2)] == [[42], [42]]


def test_csv_copy_options_follow_the_load_job():
    from pipeline_sql.engine import csv_copy_options

    assert csv_copy_options({}) == "FORMAT CSV, AUTO_DETECT false, HEADER false, SKIP 0, DELIM ',', QUOTE '\"', ESCAPE '\"'"
    opts = csv_copy_options({"fieldDelimiter": "\\t", "skipLeadingRows": "2", "quote": "'", "nullMarker": "NA"})
    assert opts == "FORMAT CSV, AUTO_DETECT false, HEADER false, SKIP 2, DELIM '\t', QUOTE '''', ESCAPE '''', NULLSTR 'NA'"
    assert "DELIM '\t'" in csv_copy_options({"fieldDelimiter": "tab"})
    assert csv_copy_options({"quote": ""}).endswith("QUOTE ''")  # quoting off: no escape either
    with pytest.raises(ValueError, match="skipLeadingRows must be a whole number of rows >= 0, got 'x'"):
        csv_copy_options({"skipLeadingRows": "x"})


def _load(engine, table: str, name: str, text: str, **cfg):
    from google.cloud import bigquery

    (Path(engine.gcs_root) / "loads").mkdir(exist_ok=True)
    (Path(engine.gcs_root) / "loads" / name).write_text(text)
    fields = cfg.pop("fields", ("id", "note"))
    schema = [f if isinstance(f, bigquery.SchemaField) else bigquery.SchemaField(f, "STRING") for f in fields]
    job_config = bigquery.LoadJobConfig(schema=schema, source_format="CSV", **cfg)
    engine.client.query("CREATE SCHEMA IF NOT EXISTS loads").result()
    return engine.client.load_table_from_uri(f"gs://loads/{name}", f"flexyboots-local.loads.{table}", job_config=job_config).result()


def _rows(engine, table: str) -> list[tuple]:
    return [tuple(r.values()) for r in engine.client.query(f"SELECT * FROM loads.{table} ORDER BY 1").result()]


def test_a_csv_load_reads_the_file_as_its_job_describes_it(engine):
    """The job's delimiter, quote and rows to skip, as BigQuery reads them (the emulator's own
    load sniffed the dialect and always skipped one header line)."""
    from bqemulator.jobs import executor

    assert getattr(executor._load_path_into_target, "_flexyboots_csv", False)
    text = 'id;note\n1;"a;b"\n2;"say ""hi"""\n3;"two\nlines"\n4;\n'
    _load(engine, "semi", "semi.csv", text, field_delimiter=";", skip_leading_rows=1, allow_quoted_newlines=True)
    assert _rows(engine, "semi") == [("1", "a;b"), ("2", 'say "hi"'), ("3", "two\nlines"), ("4", None)]
    _load(engine, "nohead", "semi.csv", text, field_delimiter=";", allow_quoted_newlines=True)  # no row skipped
    assert _rows(engine, "nohead")[-1] == ("id", "note") and len(_rows(engine, "nohead")) == 5
    _load(engine, "tabs", "tabs.tsv", "id\tnote\n1\ta,b\n", field_delimiter="\t", skip_leading_rows=1)
    assert _rows(engine, "tabs") == [("1", "a,b")]


def test_write_truncate_recreates_the_table_as_it_was_defined(engine):
    """A WRITE_TRUNCATE load empties a big table by dropping and creating it again from its
    own definition: the rows are the new file's, the columns keep their types, NOT NULL and
    defaults. A small table, or one with a comment, is emptied with DELETE, as the emulator
    does, and keeps its comment."""
    from bqemulator.jobs import executor

    from pipeline_sql.engine import RECREATE_FROM_ROWS

    assert getattr(executor._apply_load_write_disposition, "_flexyboots_truncate", False)
    c, con = engine.client, _duckdb(engine)
    c.query("CREATE SCHEMA IF NOT EXISTS loads").result()
    c.query("CREATE TABLE loads.trunc (id STRING NOT NULL, note STRING DEFAULT 'none')").result()
    truncate = dict(skip_leading_rows=1, write_disposition="WRITE_TRUNCATE")

    def definition():
        return con.execute(
            "SELECT column_name, data_type, is_nullable, column_default, comment FROM duckdb_columns() "
            "WHERE schema_name = 'flexyboots-local__loads' AND table_name = 'trunc' ORDER BY column_index"
        ).fetchall()

    def oid():
        return con.execute("SELECT table_oid FROM duckdb_tables() WHERE schema_name = 'flexyboots-local__loads' AND table_name = 'trunc'").fetchone()[0]

    before, created = definition(), oid()
    assert before == [("id", "VARCHAR", False, None, None), ("note", "VARCHAR", True, "'none'", None)]
    big = "id,note\n" + "".join(f"{n},a\n" for n in range(RECREATE_FROM_ROWS))
    _load(engine, "trunc", "t1.csv", big, **truncate)
    _load(engine, "trunc", "t2.csv", "id,note\n3,c\n", **truncate)
    assert _rows(engine, "trunc") == [("3", "c")] and definition() == before
    assert oid() != created  # created again, not emptied row by row
    small = oid()
    _load(engine, "trunc", "t2.csv", "id,note\n3,c\n", **truncate)
    assert _rows(engine, "trunc") == [("3", "c")] and oid() == small  # one row: deleted
    _load(engine, "trunc", "t1.csv", big, **truncate)  # big again: only its comment keeps it
    con.execute("COMMENT ON COLUMN \"flexyboots-local__loads\".trunc.note IS 'kept'")
    commented = oid()
    _load(engine, "trunc", "t3.csv", "id,note\n4,d\n", **truncate)
    assert _rows(engine, "trunc") == [("4", "d")] and definition()[1][4] == "kept" and oid() == commented
    assert c.get_table("flexyboots-local.loads.trunc").num_rows == 1


def test_ddl_and_dml_detectors_answer_as_before_without_their_own_parse(engine):
    """The detectors short-circuited by ``_skip_detector_parses`` give the same answers: a
    statement of another kind gets the detector's "no" at once, the others reach it."""
    from bqemulator.catalog import ddl_sync
    from bqemulator.jobs import executor

    for f in (ddl_sync._detect_catalog_drop, ddl_sync._detect_plain_create_table, executor._reject_dml_on_immutable):
        assert getattr(f, "_flexyboots_peek", False)
    insert = "INSERT INTO ds.t (a) VALUES (1)"
    create = "CREATE TABLE ds.t (a INT64)"
    assert ddl_sync._detect_plain_create_table(insert) is None
    assert ddl_sync._detect_plain_create_table(create).name == "t"
    assert ddl_sync._detect_plain_create_view(insert) == (None, None)
    assert ddl_sync._detect_plain_create_view("CREATE VIEW ds.v AS SELECT 1 AS x")[0].name == "v"
    assert ddl_sync._detect_create_schema(insert, "p") is None
    assert ddl_sync._detect_create_schema("CREATE SCHEMA ds", "p") == ("p", "ds")
    assert ddl_sync._detect_catalog_drop(create) is None
    assert ddl_sync._detect_catalog_drop("DROP TABLE ds.t") is not None
    assert ddl_sync._detect_plain_create_table("SELECT 1; CREATE TABLE ds.u (a INT64)") is None  # a script: as before
    c = engine.client  # end to end: CREATE, DROP and DML still reach the catalog
    c.query("CREATE SCHEMA IF NOT EXISTS det").result()
    c.query("CREATE TABLE det.t (a INT64)").result()
    c.query("INSERT INTO det.t (a) VALUES (1)").result()
    assert c.get_table("flexyboots-local.det.t").schema[0].name == "a"
    c.query("DROP TABLE det.t").result()
    assert "t" not in {t.table_id for t in c.list_tables("flexyboots-local.det")}


def test_the_rest_app_runs_without_its_per_request_observers(engine):
    """The emulator's metrics, access-log and correlation-id middlewares are out of its REST
    app (pinned: they exist in this bqemulator); the gzip request middleware stays, and
    requests are answered as before."""
    from bqemulator.api.middleware import AccessLogMiddleware, CorrelationIdMiddleware, GzipRequestMiddleware, MetricsMiddleware

    app = engine._emu.server._fastapi_server.config.app
    kinds = {m.cls for m in app.user_middleware}
    assert GzipRequestMiddleware in kinds
    assert not kinds & {AccessLogMiddleware, CorrelationIdMiddleware, MetricsMiddleware}
    assert [dict(r.items()) for r in engine.client.query("SELECT 1 AS x").result()] == [{"x": 1}]
    from google.api_core.exceptions import NotFound

    with pytest.raises(NotFound):  # and errors as before
        engine.client.get_table("flexyboots-local.obs_missing.t", retry=None)


@pytest.mark.parametrize("last_started_stops_first", [False, True])
def test_the_garbage_collector_runs_less_often_while_engines_run(last_started_stops_first):
    """Young collections every 50,000 allocations while any engine of the process runs; the
    thresholds the process had come back when the last one stops, in either order."""
    import gc

    before = gc.get_threshold()
    first = LocalEngine(state_dir=None, gcs_root=None).start()
    second = LocalEngine(state_dir=None, gcs_root=None).start()
    order = [second, first] if last_started_stops_first else [first, second]
    try:
        assert gc.get_threshold()[0] == 50_000 and gc.get_threshold()[1:] == before[1:]
        order[0].stop()
        assert gc.get_threshold()[0] == 50_000  # the other still runs
    finally:
        for engine in order:
            engine.stop()
    assert gc.get_threshold() == before


def test_a_killed_run_loses_nothing_it_had_stored(tmp_path):
    """A process killed right after its statements (no engine stop, no checkpoint) leaves
    every committed write in the database: the next engine finds it."""
    state = tmp_path / "state"
    script = textwrap.dedent(
        f"""
        import os, sys
        sys.path.insert(0, {str(ROOT)!r})
        from pipeline_sql.engine import LocalEngine
        eng = LocalEngine(state_dir={str(state)!r}, gcs_root=None).start()
        eng.client.query("CREATE SCHEMA ds").result()
        eng.client.query("CREATE TABLE ds.t AS SELECT x FROM UNNEST(GENERATE_ARRAY(1, 1000)) AS x").result()
        eng.client.query("INSERT INTO ds.t (x) VALUES (1001)").result()
        os._exit(9)  # killed: no stop, no checkpoint
        """
    )
    proc = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=300)
    assert proc.returncode == 9, proc.stderr[-2000:]
    with LocalEngine(state_dir=state, gcs_root=None) as eng:
        rows = list(eng.client.query("SELECT COUNT(*) AS n, MAX(x) AS m FROM ds.t").result())
    assert (rows[0]["n"], rows[0]["m"]) == (1001, 1001)
