"""The embedded engine stores the temporary layers (staging, delta, transform) uncompressed on
disk and every other table as DuckDB compresses it (``pipeline_sql.enginestore``)."""

from __future__ import annotations

import pytest

from pipeline_sql.engine import LocalEngine
from pipeline_sql.enginestore import writes_temporary_layer


@pytest.mark.parametrize(
    "sql, temporary",
    [
        ('CREATE OR REPLACE TABLE "flexyboots-local__delta"."t" AS SELECT 1', True),
        ('CREATE TABLE "flexyboots-local__transform"."t" ("a" BIGINT)', True),
        ('COPY "flexyboots-local__staging"."t" FROM ? (FORMAT CSV, HEADER)', True),
        ('INSERT INTO "flexyboots-local__staging"."t__batch" ("batch_id") VALUES ($1)', True),
        ('  create or replace table "acme-data__dev_delta"."orders" as select 1', True),
        ('INSERT INTO "flexyboots-local__archive"."t" ("a") SELECT 1', False),
        ('MERGE INTO "flexyboots-local__dwh"."t" AS _T USING (SELECT 1) AS _S ON FALSE WHEN NOT MATCHED THEN INSERT VALUES (1)', False),
        ('CREATE OR REPLACE TABLE "flexyboots-local__quality"."check_results" AS SELECT 1', False),
        ('CREATE OR REPLACE TABLE "flexyboots-local__dwh"."delta" AS SELECT 1', False),  # a table named delta
        ('SELECT * FROM "flexyboots-local__delta"."t"', False),
        ('DELETE FROM "flexyboots-local__staging"."t"', False),
    ],
)
def test_which_statements_write_a_temporary_layer(sql, temporary):
    assert writes_temporary_layer(sql) is temporary


def _compressions(con, schema: str, table: str) -> set[str]:
    rows = con.execute(
        "SELECT DISTINCT compression FROM pragma_storage_info(?) WHERE segment_type <> 'VALIDITY'",
        [f'"{schema}"."{table}"'],
    ).fetchall()
    return {r[0] for r in rows}


def test_temporary_layers_are_stored_uncompressed_and_the_rest_compressed(tmp_path):
    rows = 300_000  # more than two row groups: written during the statement, not at commit
    body = f"SELECT CAST(MOD(n, 7) AS STRING) AS s, n FROM UNNEST(GENERATE_ARRAY(1, {rows})) AS n"
    with LocalEngine(state_dir=tmp_path / "state", gcs_root=None) as eng:
        c = eng.client
        for ds in ("delta", "archive"):
            c.query(f"CREATE SCHEMA {ds}").result()
            c.query(f"CREATE TABLE {ds}.t AS {body}").result()
        got = [dict(r.items()) for r in c.query("SELECT COUNT(*) AS n, COUNT(DISTINCT s) AS s FROM delta.t").result()]
        assert got == [{"n": rows, "s": 7}]
        eng.checkpoint()
        con = eng._emu.server._engine.connection
        assert _compressions(con, "flexyboots-local__delta", "t") <= {"Uncompressed", "Constant"}
        archive = _compressions(con, "flexyboots-local__archive", "t")
        assert "Uncompressed" not in archive and archive & {"Dictionary", "BitPacking", "FSST", "DictFSST"}
        # the setting is back to its default after each statement
        assert con.execute("SELECT current_setting('force_compression')").fetchone()[0] == "auto"


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
