"""The embedded engine stores the temporary layers (staging, delta, transform) uncompressed on
disk, the archive without dictionary compression and every other table as DuckDB compresses it
(``pipeline_sql.enginestore``)."""

from __future__ import annotations

import pytest

from pipeline_sql.engine import LocalEngine
from pipeline_sql.enginestore import written_layer


@pytest.mark.parametrize(
    "sql, layer",
    [
        ('CREATE OR REPLACE TABLE "flexyboots-local__delta"."t" AS SELECT 1', "delta"),
        ('CREATE TABLE "flexyboots-local__transform"."t" ("a" BIGINT)', "transform"),
        ('COPY "flexyboots-local__staging"."t" FROM ? (FORMAT CSV, HEADER)', "staging"),
        ('INSERT INTO "flexyboots-local__staging"."t__batch" ("batch_id") VALUES ($1)', "staging"),
        ('  create or replace table "acme-data__dev_delta"."orders" as select 1', "delta"),
        ('INSERT INTO "flexyboots-local__archive"."t" ("a") SELECT 1', "archive"),
        ('MERGE INTO "flexyboots-local__dwh"."t" AS _T USING (SELECT 1) AS _S ON FALSE WHEN NOT MATCHED THEN INSERT VALUES (1)', None),
        ('CREATE OR REPLACE TABLE "flexyboots-local__quality"."check_results" AS SELECT 1', None),
        ('CREATE OR REPLACE TABLE "flexyboots-local__dwh"."delta" AS SELECT 1', None),  # a table named delta
        ('SELECT * FROM "flexyboots-local__delta"."t"', None),
        ('DELETE FROM "flexyboots-local__staging"."t"', None),
    ],
)
def test_which_layer_a_statement_writes(sql, layer):
    assert written_layer(sql) == layer


def _compression_rows(con, schema: str, table: str) -> dict[str, int]:
    """Rows stored per compression method in a table's data segments."""
    rows = con.execute(
        "SELECT compression, SUM(count) FROM pragma_storage_info(?) WHERE segment_type <> 'VALIDITY' GROUP BY 1",
        [f'"{schema}"."{table}"'],
    ).fetchall()
    return dict(rows)


def _compressions(con, schema: str, table: str) -> set[str]:
    return set(_compression_rows(con, schema, table))


def test_temporary_layers_are_stored_uncompressed_and_the_rest_compressed(tmp_path):
    rows = 300_000  # more than two row groups: written during the statement, not at commit
    body = f"SELECT CAST(MOD(n, 7) AS STRING) AS s, n FROM UNNEST(GENERATE_ARRAY(1, {rows})) AS n"
    with LocalEngine(state_dir=tmp_path / "state", gcs_root=None) as eng:
        c = eng.client
        for ds in ("delta", "archive", "dwh"):
            c.query(f"CREATE SCHEMA {ds}").result()
            c.query(f"CREATE TABLE {ds}.t AS {body}").result()
        got = [dict(r.items()) for r in c.query("SELECT COUNT(*) AS n, COUNT(DISTINCT s) AS s FROM delta.t").result()]
        assert got == [{"n": rows, "s": 7}]
        eng.checkpoint()
        con = eng._emu.server._engine.connection
        assert _compressions(con, "flexyboots-local__delta", "t") <= {"Uncompressed", "Constant"}
        archive = _compressions(con, "flexyboots-local__archive", "t")
        assert "FSST" in archive and "Dictionary" not in archive
        # compressed, not forced uncompressed: DuckDB may still leave a small segment (a
        # parallel write's remainder) uncompressed when compressing it does not pay
        rows = _compression_rows(con, "flexyboots-local__archive", "t")
        assert rows.get("Uncompressed", 0) < 0.1 * sum(rows.values()), rows
        assert "Dictionary" in _compressions(con, "flexyboots-local__dwh", "t")  # DuckDB's defaults
        # the settings are back to their defaults after each statement
        assert con.execute("SELECT current_setting('force_compression')").fetchone()[0] == "auto"
        assert con.execute("SELECT current_setting('disabled_compression_methods')").fetchone()[0] == ""


@pytest.mark.parametrize("how", ["checkpoint", "stop"])
def test_the_checkpoint_writes_small_writes_without_dictionaries(tmp_path, how):
    """Rows a statement leaves to the checkpoint (fewer than a row group) are written there
    without dictionary compression, by the engine's own checkpoint and by the one it makes when
    it stops; still compressed; the setting is back to its default afterwards."""
    import duckdb

    body = "SELECT CAST(MOD(n, 7) AS STRING) AS s, n FROM UNNEST(GENERATE_ARRAY(1, 5000)) AS n"
    eng = LocalEngine(state_dir=tmp_path / "state", gcs_root=None).start()
    try:
        eng.client.query("CREATE SCHEMA dwh").result()
        eng.client.query(f"CREATE TABLE dwh.t AS {body}").result()
        con = eng._emu.server._engine.connection
        if how == "checkpoint":
            eng.checkpoint()
            assert con.execute("SELECT current_setting('disabled_compression_methods')").fetchone()[0] == ""
    finally:
        eng.stop()
    con = duckdb.connect(str(tmp_path / "state" / "bqemulator.duckdb"), read_only=True)
    kept = _compressions(con, "flexyboots-local__dwh", "t")
    assert kept and "Dictionary" not in kept and kept != {"Uncompressed"}, kept
    # the same rows checkpointed with DuckDB's defaults: a dictionary
    plain = duckdb.connect(str(tmp_path / "plain.duckdb"))
    plain.execute("CREATE TABLE t AS SELECT CAST(n % 7 AS VARCHAR) AS s, n FROM range(1, 5001) AS r(n)")
    plain.execute("CHECKPOINT")
    assert "Dictionary" in _compressions(plain, "main", "t")


def test_statement_results_survive_the_setting(tmp_path):
    """A temporary layer's write still reports what it did (the setting is changed on a second
    cursor, not on the connection that holds the statement's result)."""
    with LocalEngine(state_dir=tmp_path / "state", gcs_root=None) as eng:
        c = eng.client
        c.query("CREATE SCHEMA staging").result()
        c.query("CREATE TABLE staging.t (a INT64)").result()
        job = c.query("INSERT INTO staging.t (a) SELECT n FROM UNNEST(GENERATE_ARRAY(1, 5)) AS n")
        job.result()
        assert job.num_dml_affected_rows == 5


def _row_groups(con, schema: str, table: str) -> list[int]:
    """Rows per row group of a table, in order."""
    rows = con.execute(
        "SELECT row_group_id, MAX(count) FROM pragma_storage_info(?) WHERE column_id = 0 GROUP BY 1 ORDER BY 1",
        [f'"{schema}"."{table}"'],
    ).fetchall()
    return [r[1] for r in rows]


def test_a_persistent_engine_writes_small_row_groups_into_its_file(tmp_path):
    """The database file is attached with ``ROW_GROUP_SIZE`` (:data:`ROW_GROUP_ROWS`) under its
    usual name; what it holds is read back by a plain DuckDB connection, and a file written
    with DuckDB's default row groups keeps them and takes new rows."""
    import duckdb

    from pipeline_sql.engine import ROW_GROUP_ROWS, STATE_DB

    state = tmp_path / "state"
    state.mkdir()
    plain = duckdb.connect(str(state / STATE_DB))  # an older state: DuckDB's default row groups
    plain.execute('CREATE SCHEMA "flexyboots-local__old"')
    plain.execute('CREATE TABLE "flexyboots-local__old"."t" AS SELECT range AS n FROM range(150000)')
    plain.close()
    with LocalEngine(state_dir=state, gcs_root=None) as eng:
        c = eng.client
        c.query("CREATE SCHEMA archive").result()
        c.query("CREATE TABLE archive.t AS SELECT n FROM UNNEST(GENERATE_ARRAY(1, 40000)) AS n").result()
        eng.checkpoint()
        con = eng._emu.server._engine.connection
        assert con.execute("SELECT current_database()").fetchone()[0] == "bqemulator"
        assert _row_groups(con, "flexyboots-local__archive", "t") == [ROW_GROUP_ROWS, ROW_GROUP_ROWS, 40000 - 2 * ROW_GROUP_ROWS]
        assert _row_groups(con, "flexyboots-local__old", "t") == [122880, 150000 - 122880]
        con.execute('INSERT INTO "flexyboots-local__old"."t" SELECT range FROM range(20000)')
    plain = duckdb.connect(str(state / STATE_DB))
    try:
        assert plain.execute('SELECT COUNT(*), SUM(n) FROM "flexyboots-local__archive"."t"').fetchone() == (40000, 40000 * 40001 // 2)
        assert plain.execute('SELECT COUNT(*) FROM "flexyboots-local__old"."t"').fetchone()[0] == 170000
    finally:
        plain.close()


def test_the_row_group_patch_replays_the_pinned_engine_start():
    """``_small_row_groups`` repeats bqemulator 1.4.0's ``DuckDBEngine.start`` around its own
    connection: the original still calls the same steps, in this order."""
    import inspect

    from bqemulator.storage.engine import DuckDBEngine

    start = getattr(DuckDBEngine.start, "_original", DuckDBEngine.start)
    steps = [
        "duckdb.connect(path, read_only=False)",
        "self._apply_session_pragmas()",
        "self._ensure_catalog_schema()",
        "self._load_spatial()",
        "self._load_format_extensions()",
        "self._register_builtin_udfs()",
        "self._started = True",
    ]
    source = inspect.getsource(start)
    assert [source.find(s) for s in steps] == sorted(source.find(s) for s in steps) and all(s in source for s in steps)
