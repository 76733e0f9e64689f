"""Rendering: table spec -> five layers of BigQuery SQL, quality checks, table schemas and DDL.

Pure tests: nothing runs here. The SQL is parsed with sqlglot's BigQuery dialect
(installed as a bqemulator dependency) to catch syntax slips in every statement. sqlglot 30
parses ``LOAD DATA`` too; if a future sqlglot cannot, the staging test skips only that
statement (it says so) and the rendering tests below still pin its text.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from pipeline_sql.naming import DATASETS, LAYERS, Naming
from pipeline_sql.render import (
    RenderedTable,
    render_checks,
    render_batch_log,
    render_layer,
    render_rejects_view,
    render_staging,
    render_staging_batch,
    render_table,
    row_hash,
    safe_cast,
)
from pipeline_sql.checks import render_check_statements
from pipeline_sql.schema import ARCHIVE_META, DWH_META, pipeline_tables, render_ddl, sql_type
from pipeline_sql.spec import load_specs, parse_spec

sqlglot = pytest.importorskip("sqlglot")
from sqlglot import exp  # noqa: E402

REPO = Path(__file__).resolve().parents[2]
SHIPPED = load_specs(REPO / "config" / "tables")
PROD = Naming(project="acme-data-prod", env="prod")


def make_spec(**overrides):
    d = {
        "table": "customers",
        "source": {"format": "csv", "path": "customers/"},
        "key": ["customer_id"],
        "version_by": "updated_at",
        "columns": [
            {"source": "id", "name": "customer_id", "type": "INT64"},
            {"source": "email", "name": "email", "type": "STRING"},
            {"source": "balance", "name": "balance", "type": "NUMERIC"},
            {"source": "updated", "name": "updated_at", "type": "TIMESTAMP"},
        ],
        "transform": [{"name": "email_domain", "type": "STRING", "expr": "LOWER(SPLIT(email, '@')[SAFE_OFFSET(1)])"}],
        "dwh": {"partition_by": {"column": "updated_at", "granularity": "DAY"}, "cluster_by": ["customer_id"]},
        "checks": [{"not_null": ["customer_id"]}, {"unique": ["customer_id"]}],
    }
    d.update(overrides)
    return parse_spec({k: v for k, v in d.items() if v is not None})


#: A spec whose names appear nowhere in the templates: a two-column key, a DATE version.
ODD = parse_spec(
    {
        "table": "zq_items",
        "source": {"format": "csv", "path": "zq/", "delimiter": ";"},
        "key": ["ka", "kb"],
        "version_by": "ver",
        "columns": [
            {"source": "SrcKeyA", "name": "ka", "type": "INT64"},
            {"source": "src_kb", "name": "kb", "type": "STRING"},
            {"source": "src_val", "name": "val", "type": "NUMERIC"},
            {"source": "src_ver", "name": "ver", "type": "DATE"},
            {"source": "src_ok", "name": "ok", "type": "BOOL"},
        ],
        "transform": [{"name": "dv", "type": "FLOAT64", "expr": "CAST(val AS FLOAT64) * 2"}],
        "dwh": {"partition_by": {"column": "ver", "granularity": "MONTH"}, "cluster_by": ["kb", "ka"]},
        "checks": [{"not_null": ["ka", "kb"]}, {"unique": ["ka", "kb"]}],
    }
)

#: Column names the pipeline itself writes (bookkeeping tables and metadata columns) and the
#: names of the script's own variables; every other column name must come from the spec.
PIPELINE_NAMES = {n for n, _ in ARCHIVE_META + DWH_META} | {
    "_valid", "_through", "_rejects",
    "batch_id", "source_file", "content_sha256", "landed_at",  # staging.<t>__batch
    "rows_in", "null_key_rows", "rows_archived", "archived_at",  # archive.<t>__batches
    "versions", "inserted", "updated", "rejected", "dwh_rows",  # the layers' report SELECTs
    "column_name", "value", "reason",  # quality.<t>__rejects (a view)
    "_key",  # the archive's batch keys, collected
    "_run_at", "_mark", "_through_mark", "_batch_keys", "_window_start", "_window_end",  # script variables (underscored: no spec column can shadow them)
    "dt",  # the landing date, the hive partition of staging.<t>__landed
    "_first_inserted_at", "_replaces", "_delete",  # the dwh MERGE's source
    # quality.check_results and the checks script's own names
    "run_id", "table_name", "check_name", "rule", "columns", "severity", "passed", "failing_rows", "sample_keys",
    "observed_value", "message", "referenced_table", "checked_at", "n",
}


def all_sql(r: RenderedTable) -> dict[str, str]:
    return {
        **r.layers,
        "checks": r.checks,
        "staging_batch": r.staging_batch,
        "batch_log": r.batch_log,
        "rejects_view": r.rejects_view,
    }


def parse(sql: str) -> list:
    """Every statement, parsed strictly as BigQuery SQL; none may fall back to a raw Command."""
    stmts = [s for s in sqlglot.parse(sql, read="bigquery", error_level=sqlglot.ErrorLevel.RAISE) if s is not None]
    assert stmts, "nothing parsed"
    for s in stmts:
        assert not isinstance(s, exp.Command), f"sqlglot did not understand: {s.sql()[:120]}"
    return stmts


def staging_statements(sql: str) -> list:
    """The staging script's statements; only its CREATE EXTERNAL TABLE may be a raw Command."""
    import logging

    logging.getLogger("sqlglot").setLevel(logging.ERROR)  # its "falling back to Command" warning
    stmts = [x for x in sqlglot.parse(sql, read="bigquery", error_level=sqlglot.ErrorLevel.RAISE) if x is not None]
    for x in stmts:
        if isinstance(x, exp.Command):
            assert x.sql().startswith("CREATE OR REPLACE EXTERNAL TABLE"), x.sql()[:120]
    return stmts


def strip_literals_and_comments(sql: str) -> str:
    sql = re.sub(r"--[^\n]*", "", sql)
    return re.sub(r"'(?:[^'\\]|\\.)*'", "''", sql)


def refs(sql: str) -> set[str]:
    """The back-quoted table references (``project.dataset.table``; a back-quoted column name,
    as in the archive's INSERT column list, is not one)."""
    return set(re.findall(r"`([^`.]+\.[^`]+)`", strip_literals_and_comments(sql)))


# --------------------------------------------------------------------------- determinism, parsing


@pytest.mark.parametrize("spec", SHIPPED + [ODD], ids=lambda s: s.table)
def test_rendering_is_deterministic(spec):
    a = render_table(spec, PROD, "gs://acme-landing")
    b = render_table(spec, Naming(project="acme-data-prod", env="prod"), "gs://acme-landing")
    assert a == b
    assert list(a.layers) == list(LAYERS)
    # a spec parsed again from the same document renders identically too
    assert render_table(make_spec(), PROD) == render_table(make_spec(), PROD)


@pytest.mark.parametrize("spec", SHIPPED + [ODD], ids=lambda s: s.table)
@pytest.mark.parametrize("naming", [Naming(), PROD], ids=["local", "prod"])
def test_every_statement_parses_as_bigquery(spec, naming):
    for layer, sql in all_sql(render_table(spec, naming, "gs://acme-landing")).items():
        if layer == "staging":
            # sqlglot does not know CREATE EXTERNAL TABLE ... WITH PARTITION COLUMNS (BigQuery
            # DDL): every other statement of the script must parse; the staging tests pin its text
            stmts = staging_statements(sql)
            assert [type(x).__name__ for x in stmts] == ["Declare", "Declare", "Command", "Create", "Create"]
            assert stmts[2].sql().startswith("CREATE OR REPLACE EXTERNAL TABLE")
            continue
        try:
            parse(sql)
        except sqlglot.errors.ParseError as e:  # pragma: no cover - shows the layer on failure
            pytest.fail(f"{spec.table} {layer}: {e}")


WRITES = ("Insert", "Merge", "Create", "Update", "Delete", "Transaction", "Commit", "Rollback")


@pytest.mark.parametrize("spec", SHIPPED + [ODD], ids=lambda s: s.table)
def test_layer_statement_shapes(spec):
    """Each layer writes with ONE statement and no explicit transaction: archive = DECLAREs,
    one INSERT, a report SELECT; dwh = DECLAREs, one MERGE, a report SELECT; delta = DECLARE
    (the mark), one CREATE OR REPLACE TABLE, a report SELECT; transform = one CREATE OR
    REPLACE TABLE and a report SELECT; checks: one INSERT of every result, then the SELECT that
    fails the run; the runner's batch log is one INSERT."""
    r = render_table(spec, PROD)
    kinds = {layer: [type(s).__name__ for s in parse(sql)] for layer, sql in all_sql(r).items() if layer != "staging"}
    for layer in ("archive", "delta", "transform", "dwh"):
        sql = strip_literals_and_comments(r.layers[layer])
        assert "TRANSACTION" not in sql and "COMMIT" not in sql and "ROLLBACK" not in sql, layer
        assert len([k for k in kinds[layer] if k in WRITES]) == 1, (layer, kinds[layer])
    # (DECLAREs may come first; the report SELECT comes last)
    k = kinds["archive"]
    assert set(k[:-2]) <= {"Declare"} and k[-2:] == ["Insert", "Select"], k
    assert strip_literals_and_comments(r.layers["archive"]).count("INSERT") == 1
    k = kinds["dwh"]
    assert set(k[:-2]) <= {"Declare"} and k[-2:] == ["Merge", "Select"], k
    assert "INSERT INTO" not in r.layers["dwh"]  # the MERGE's own INSERT clause only
    for layer in ("delta", "transform"):
        k = kinds[layer]
        assert set(k[:-2]) <= {"Declare"} and k[-2:] == ["Create", "Select"], (layer, k)
        assert r.layers[layer].count("CREATE OR REPLACE TABLE") == 1, layer
    assert kinds["checks"] == ["Insert", "Select"]
    assert kinds["staging_batch"] == ["Create"]
    assert kinds["batch_log"] == ["Insert"]
    assert kinds["rejects_view"] == ["Union" if len([c for c in spec.columns if c.type != "STRING"]) > 1 else "Select"]


# --------------------------------------------------------------------------- identifiers from the spec


def test_every_column_identifier_comes_from_the_spec_or_the_pipeline():
    allowed = set(ODD.column_names) | {c.source for c in ODD.columns} | {d.name for d in ODD.transform} | PIPELINE_NAMES | {"*"}
    for layer, sql in all_sql(render_table(ODD, PROD)).items():
        stmts = staging_statements(sql) if layer == "staging" else parse(sql)
        names = {c.name for s in stmts for c in s.find_all(exp.Column)}
        names -= set(re.findall(r"^DECLARE (\w+)", sql, re.M))  # the script's own variables
        names -= {n for n in names if n.startswith("_merge_") and n[len("_merge_") :] in ODD.key}  # MERGE match keys
        if layer == "staging":  # the external table's column list is a schema, not column references
            names |= set(re.findall(r"^  (\w+) STRING,?$", sql, re.M))
        assert names <= allowed, f"{layer}: unexpected identifiers {sorted(names - allowed)}"


def test_no_name_of_another_table_leaks_into_the_sql():
    text = "\n".join(all_sql(render_table(ODD, PROD)).values())
    for foreign in ("customer", "email", "updated_at", "order_id", "sku", "balance"):
        assert not re.search(rf"\b{foreign}", text), foreign


def test_two_column_key_in_merge_partition_and_dedupe():
    r = render_table(ODD, PROD)
    assert "ON _T.ka = _S._merge_ka AND _T.kb = _S._merge_kb" in r.layers["dwh"]
    assert "LEFT JOIN `acme-data-prod.prod_dwh.zq_items` AS _D ON _D.ka = _S.ka AND _D.kb = _S.kb" in r.layers["dwh"]
    # latest version per key: both key columns (raw, or cast to their type so '1' and '01' are one key)
    assert re.search(r"PARTITION BY (_valid, )?(ka|SAFE_CAST\(ka AS INT64\)), kb ORDER BY", r.layers["delta"])
    # one row per (key, hash) in a batch: identical rows (the hash covers every business column)
    assert "  FROM _keyed\n  GROUP BY ka, kb, _row_hash\n" in r.layers["archive"]
    assert "  ON a.ka = _fresh.ka AND a.kb = _fresh.kb AND a._row_hash = _fresh._row_hash\n" in r.layers["archive"]
    # the comparison is bounded by the first key column's values in the batch
    assert "  SELECT ka, kb, _row_hash FROM `acme-data-prod.prod_archive.zq_items`\n  WHERE (_batch_keys IS NULL OR ka IN UNNEST(_batch_keys))\n" in r.layers["archive"]
    assert "IF(COUNT(*) <= 10000, ARRAY_AGG(_key), NULL)\n  FROM (SELECT DISTINCT SrcKeyA AS _key FROM " in r.layers["archive"]
    assert "WHERE SrcKeyA IS NOT NULL LIMIT 10001)" in r.layers["archive"]
    assert "WHERE ka IS NOT NULL AND kb IS NOT NULL" in r.layers["archive"]
    # NULL keys are counted on the source names
    assert "WHERE SrcKeyA IS NULL OR src_kb IS NULL" in r.layers["archive"]
    # DWH lookup casts the archived (STRING) key to its declared type
    assert "d.ka = SAFE_CAST(l.ka AS INT64) AND d.kb = l.kb" in r.layers["delta"]
    # rejects carry every key column (raw), in every branch of the view
    branches = r.rejects_view.split("\nUNION ALL\n")
    assert len(branches) == 4  # ka INT64, val NUMERIC, ver DATE, ok BOOL
    assert all(b.startswith("SELECT ka, kb, '") for b in branches)


def test_renames_source_to_target_in_archive_only():
    r = render_table(ODD, PROD)
    for src, tgt in (("SrcKeyA", "ka"), ("src_kb", "kb"), ("src_val", "val"), ("src_ver", "ver"), ("src_ok", "ok")):
        assert f"    {src} AS {tgt}" in r.layers["archive"]
        for layer in ("delta", "transform", "dwh", "checks"):
            assert src not in all_sql(r)[layer]


# --------------------------------------------------------------------------- naming


@pytest.mark.parametrize("spec", SHIPPED + [ODD], ids=lambda s: s.table)
def test_prod_naming_everywhere(spec):
    sql = all_sql(render_table(spec, PROD, "gs://acme-data-prod-landing"))
    pattern = re.compile(rf"^acme-data-prod\.prod_({'|'.join(DATASETS)})\.{spec.table}(__\w+)?$")
    for layer, text in sql.items():
        assert "flexyboots-local" not in text, layer
        found = refs(text)
        assert found, layer
        for ref in found:
            if layer == "checks" and ref in ("acme-data-prod.prod_quality.check_results",) + tuple(
                f"acme-data-prod.prod_dwh.{c.ref_table}" for c in spec.checks if c.ref_table
            ):
                continue  # the shared results table; a relationships check reads another DWH
            assert pattern.match(ref), f"{layer}: {ref}"


def test_each_layer_reads_and_writes_the_expected_tables():
    t = "`acme-data-prod.prod_{}.customers{}`"
    r = render_table(make_spec(), PROD)
    assert f"CREATE OR REPLACE EXTERNAL TABLE {t.format('staging', '__landed')}" in r.layers["staging"]
    assert f"CREATE OR REPLACE TABLE {t.format('staging', '')} AS\nSELECT" in r.layers["staging"]
    assert f"FROM {t.format('staging', '__landed')}\nWHERE dt BETWEEN DATE(TIMESTAMP_SUB(@run_time, INTERVAL 1440 MINUTE)) AND DATE(@run_time)" in r.layers["staging"]
    assert f"CREATE OR REPLACE TABLE {t.format('staging', '__batch')}" in r.layers["staging"]
    assert "LOAD DATA" not in strip_literals_and_comments(r.layers["staging"])
    assert f"INSERT INTO {t.format('archive', '')}" in r.layers["archive"]
    assert f"FROM {t.format('staging', '')}" in r.layers["archive"]
    assert f"FROM {t.format('staging', '__batch')}" in r.layers["archive"]
    assert "__batches`" not in strip_literals_and_comments(r.layers["archive"])  # the runner writes it
    assert r.batch_log.startswith(f"INSERT INTO {t.format('archive', '__batches')}")
    assert f"FROM {t.format('archive', '')} WHERE _batch_id = @batch_id" in r.batch_log  # every version of the batch
    assert f"CREATE OR REPLACE TABLE {t.format('delta', '')}" in r.layers["delta"]
    assert f"FROM {t.format('archive', '')}" in r.layers["delta"]
    assert f"FROM {t.format('dwh', '')}" in r.layers["delta"]  # the mark and the comparison
    assert f"CREATE OR REPLACE TABLE {t.format('transform', '')}" in r.layers["transform"]
    assert f"FROM {t.format('delta', '')}" in r.layers["transform"]
    assert f"MERGE {t.format('dwh', '')} AS _T" in r.layers["dwh"]
    assert f"FROM {t.format('transform', '')} AS _S\n" in r.layers["dwh"]
    assert {ref for ref in refs(r.layers["dwh"])} == {f"acme-data-prod.prod_{x}.customers" for x in ("dwh", "transform")}
    assert refs(r.rejects_view) == {"acme-data-prod.prod_archive.customers"}
    for layer in LAYERS:  # nothing writes the rejects (a view) or a dwh.__applied any more
        assert "__applied" not in r.layers[layer]
        assert f"INTO {t.format('quality', '__rejects')}" not in r.layers[layer]


def test_local_naming_has_no_env_prefix():
    r = render_table(make_spec(), Naming())
    assert "`flexyboots-local.archive.customers`" in r.layers["archive"]
    assert "prod_" not in r.layers["archive"]


# --------------------------------------------------------------------------- staging


def test_staging_csv():
    sql = render_staging(make_spec(), PROD, "gs://acme-landing")
    assert "LOAD DATA" not in strip_literals_and_comments(sql)
    # an external table over the landing prefix, hive-partitioned by the landing date
    assert "CREATE OR REPLACE EXTERNAL TABLE `acme-data-prod.prod_staging.customers__landed` (" in sql
    assert "  id STRING,\n  email STRING,\n  balance STRING,\n  updated STRING\n)\nWITH PARTITION COLUMNS (dt DATE)\nOPTIONS (" in sql
    for opt in (
        "format = 'CSV'",
        "uris = ['gs://acme-landing/customers/*']",
        "hive_partition_uri_prefix = 'gs://acme-landing/customers'",
        "require_hive_partition_filter = true",  # a query without a dt filter is refused: never the whole history
        "skip_leading_rows = 1",
        "field_delimiter = ','",
        "allow_quoted_newlines = true",
        "allow_jagged_rows = true",  # files landed before a column was appended: it reads NULL
    ):
        assert f"  {opt}" in sql
    # staging holds the files of the run's window only: the landing dates from one schedule
    # interval before @run_time to @run_time's date
    assert "DECLARE _window_start DATE DEFAULT DATE(TIMESTAMP_SUB(@run_time, INTERVAL 1440 MINUTE));" in sql
    assert "DECLARE _window_end DATE DEFAULT DATE(@run_time);" in sql
    assert (
        "CREATE OR REPLACE TABLE `acme-data-prod.prod_staging.customers` AS\nSELECT\n  id,\n  email,\n  balance,\n  updated\n"
        "FROM `acme-data-prod.prod_staging.customers__landed`\nWHERE dt BETWEEN DATE(TIMESTAMP_SUB(@run_time, INTERVAL 1440 MINUTE)) AND DATE(@run_time);"
    ) in sql
    # the batch descriptor of a scheduled run is derived from @run_time and names the window
    assert "CONCAT('run-', FORMAT_TIMESTAMP('%Y%m%dT%H%M%S', @run_time)) AS batch_id" in sql
    assert "CONCAT('gs://acme-landing/customers/dt=', CAST(_window_start AS STRING), '..', CAST(_window_end AS STRING)) AS source_file" in sql


@pytest.mark.parametrize("schedule, minutes", [("every 24 hours", 1440), ("every 2 hours", 120), ("every 30 minutes", 30), ("every day 03:00", 1440), ("every monday", 10080)])
def test_staging_window_follows_the_schedule(schedule, minutes):
    sql = render_staging(make_spec(schedule=schedule), PROD, "gs://b")
    assert f"DATE(TIMESTAMP_SUB(@run_time, INTERVAL {minutes} MINUTE))" in sql


def test_staging_csv_delimiter():
    sql = render_staging(ODD, PROD, "gs://b")
    assert "field_delimiter = ';'" in sql and "uris = ['gs://b/zq/*']" in sql and "hive_partition_uri_prefix = 'gs://b/zq'" in sql


@pytest.mark.parametrize("fmt, option", [("json", "format = 'JSON'"), ("parquet", "format = 'PARQUET'")])
def test_staging_json_and_parquet(fmt, option):
    sql = render_staging(make_spec(source={"format": fmt, "path": "crm/customers/"}), PROD, "gs://acme-landing/")
    assert option in sql
    assert "uris = ['gs://acme-landing/crm/customers/*']" in sql  # trailing '/' of the bucket uri tolerated
    assert "hive_partition_uri_prefix = 'gs://acme-landing/crm/customers'" in sql
    for csv_only in ("skip_leading_rows", "field_delimiter", "allow_quoted_newlines", "'CSV'"):
        assert csv_only not in sql


def test_staging_landing_uri_cannot_break_out_of_its_literal():
    sql = render_staging(make_spec(), PROD, "gs://it's")
    assert "uris = ['gs://it\\'s/customers/*']" in sql
    assert "hive_partition_uri_prefix = 'gs://it\\'s/customers'" in sql
    staging_statements(sql)


def test_s3_transfer_reads_the_previous_days_folder_on_a_daily_schedule():
    from pipeline_sql.render import transfer_data_path

    assert transfer_data_path(make_spec(source={"format": "csv", "path": "crm/", "location": "s3"})) == 'crm/dt={run_time-24h|"%Y-%m-%d"}/*'
    assert transfer_data_path(make_spec(source={"format": "csv", "path": "crm/", "location": "s3"}, schedule="every day 04:00")).startswith("crm/dt=")
    # no folder window for other intervals: the whole prefix (the transfer service re-reads it)
    assert transfer_data_path(make_spec(source={"format": "csv", "path": "crm/", "location": "s3"}, schedule="every monday")) == "crm/*"


def test_staging_batch_uses_query_parameters():
    sql = render_staging_batch(make_spec(), PROD)
    assert sql.startswith("CREATE OR REPLACE TABLE `acme-data-prod.prod_staging.customers__batch` AS")
    for p in ("@batch_id AS batch_id", "@source_file AS source_file", "@content_sha256 AS content_sha256", "@landed_at AS landed_at"):
        assert p in sql


# --------------------------------------------------------------------------- archive


def test_archive_is_one_insert_with_not_exists_dedupe():
    sql = render_table(make_spec(), PROD).layers["archive"]
    assert "LOAD DATA" not in sql
    assert "TRANSACTION" not in sql and sql.count("INSERT INTO") == 1
    # the report SELECT after the INSERT: what the runner records in __batches
    report = parse(sql)[-1]
    assert isinstance(report, exp.Select)
    assert report.named_selects == ["batch_id", "source_file", "content_sha256", "rows_in", "null_key_rows", "rows_archived"]
    # the anti-join: versions whose (key, hash) the archive does not hold, compared only with the
    # archive rows of the batch's keys when there are few
    assert (
        "LEFT JOIN (\n"
        "  SELECT customer_id, _row_hash FROM `acme-data-prod.prod_archive.customers`\n"
        "  WHERE (_batch_keys IS NULL OR customer_id IN UNNEST(_batch_keys))\n"
        ") AS a\n"
        "  ON a.customer_id = _fresh.customer_id AND a._row_hash = _fresh._row_hash\n"
        "WHERE a._row_hash IS NULL;"
    ) in sql
    # rows_archived: this run's versions, read from this run's partition only
    assert "(SELECT COUNT(*) FROM `acme-data-prod.prod_archive.customers` WHERE _ingested_at = _run_at) AS rows_archived" in sql
    assert "WHERE customer_id IS NOT NULL" in sql
    assert "WHERE id IS NULL) AS null_key_rows" in sql  # NULL-key rows counted per batch (source names)
    assert "INSERT INTO `acme-data-prod.prod_archive.customers` (`customer_id`, `email`, `balance`, `updated_at`, `_row_hash`, `_ingested_at`, `_batch_id`, `_source_file`)" in sql
    assert f"{row_hash(['customer_id', 'email', 'balance', 'updated_at'])} AS _row_hash" in sql


def test_row_hash_is_md5_of_the_non_null_named_values_in_name_order():
    h = row_hash(["b", "a"], prefix="t.")
    assert h == (
        "TO_HEX(MD5(CONCAT(IF(t.a IS NULL, '', CONCAT('\"a\":', TO_JSON_STRING(t.a), ',')), "
        "IF(t.b IS NULL, '', CONCAT('\"b\":', TO_JSON_STRING(t.b), ',')))))"
    )
    parse(f"SELECT {h} FROM t")


# --------------------------------------------------------------------------- delta and dwh: the version guard


def test_dwh_merge_has_version_guard_with_version_by():
    sql = render_table(make_spec(), PROD).layers["dwh"]
    assert "FROM `acme-data-prod.prod_transform.customers` AS _S\n" in sql  # the transform holds valid rows only
    # a key changes only to a newer version with another hash
    assert "WHERE _D.customer_id IS NULL OR (_D._row_hash != _S._row_hash AND ((_S.updated_at > _D.updated_at) OR (_S.updated_at IS NOT NULL AND _D.updated_at IS NULL) OR" in sql
    assert "_S._ingested_at > _D._ingested_at" in sql  # tie-break on equal versions
    # the changed key's row is replaced: deleted (matching on the key) and inserted (never matching)
    assert (
        "  SELECT _changed.*, IF(_delete, customer_id, NULL) AS _merge_customer_id\n"
        "  FROM _changed CROSS JOIN UNNEST([TRUE, FALSE]) AS _delete\n"
        "  WHERE NOT _delete OR _replaces\n"
    ) in sql
    assert "ON _T.customer_id = _S._merge_customer_id\nWHEN MATCHED THEN DELETE\n" in sql
    assert "WHEN NOT MATCHED THEN INSERT (customer_id, email, balance, updated_at, email_domain, _row_hash, _ingested_at, _batch_id, _through, _inserted_at, _updated_at)" in sql
    # the replacing row records the high-water mark it came from and keeps the key's first insertion time
    assert "VALUES (_S.customer_id, _S.email, _S.balance, _S.updated_at, _S.email_domain, _S._row_hash, _S._ingested_at, _S._batch_id, _S._through, IFNULL(_S._first_inserted_at, _run_at), _run_at)" in sql
    assert "UPDATE SET" not in sql


def test_dwh_merge_without_version_by_has_no_version_guard():
    spec = make_spec(version_by=None)
    sql = render_table(spec, PROD).layers["dwh"]
    assert "updated_at >" not in sql and "_D.updated_at" not in sql
    assert (
        "WHERE _D.customer_id IS NULL OR (_D._row_hash != _S._row_hash AND (_S._ingested_at > _D._ingested_at OR "
        "(_S._ingested_at = _D._ingested_at AND _S._row_hash > _D._row_hash)))"
    ) in sql
    delta = render_table(spec, PROD).layers["delta"]
    assert "ORDER BY _ingested_at DESC, _row_hash DESC" in delta
    assert "SAFE_CAST(updated_at" not in delta


def test_delta_orders_by_typed_version_then_ingestion():
    delta = render_table(make_spec(), PROD).layers["delta"]
    assert "ORDER BY SAFE_CAST(updated_at AS TIMESTAMP) DESC NULLS LAST, _ingested_at DESC, _row_hash DESC" in delta
    assert "(SAFE_CAST(l.updated_at AS TIMESTAMP) > d.updated_at)" in delta
    # a DATE / INT64 version is cast to its own type
    assert "SAFE_CAST(ver AS DATE) DESC NULLS LAST" in render_table(ODD, PROD).layers["delta"]
    v_int = make_spec(
        version_by="customer_version",
        columns=[{"source": "id", "name": "customer_id", "type": "INT64"}, {"source": "v", "name": "customer_version", "type": "INT64"}],
        transform=None,
        dwh=None,
    )
    assert "SAFE_CAST(customer_version AS INT64) DESC NULLS LAST" in render_table(v_int, PROD).layers["delta"]


def test_delta_picks_valid_versions_after_the_dwh_high_water_mark():
    delta = render_table(make_spec(), PROD).layers["delta"]
    # the mark: the highest _through on the DWH's rows (1970 for an empty DWH), and the newest
    # archived version after it; both script variables, so BigQuery prunes the archive's
    # partitions (partitioned by DATE(_ingested_at)) to those after the mark
    assert (
        "DECLARE _mark TIMESTAMP DEFAULT (SELECT IFNULL(MAX(_through), TIMESTAMP '1970-01-01 00:00:00+00') "
        "FROM `acme-data-prod.prod_dwh.customers`);"
    ) in delta
    assert (
        "DECLARE _through_mark TIMESTAMP DEFAULT (SELECT MAX(_ingested_at) FROM `acme-data-prod.prod_archive.customers` "
        "WHERE _ingested_at > _mark);"
    ) in delta
    assert "WHERE a._ingested_at > _mark AND a._ingested_at <= _through_mark" in delta
    # _through: the archive's high-water mark this delta covers
    assert "SELECT l.*, _through_mark AS _through" in delta
    # only versions whose values cast can be picked
    assert "(a.customer_id IS NULL OR SAFE_CAST(a.customer_id AS INT64) IS NOT NULL)" in delta
    assert "a.email IS NULL" not in delta  # STRING columns cannot fail a cast
    assert " AS versions" in delta and " AS rejected" in delta


# --------------------------------------------------------------------------- transform, NUMERIC, derived


def test_numeric_is_always_rendered_with_precision_and_scale():
    for spec in SHIPPED + [make_spec(), ODD]:
        for layer, sql in all_sql(render_table(spec, PROD)).items():
            bare = re.findall(r"\bNUMERIC\b(?!\s*\()", strip_literals_and_comments(sql))
            assert not bare, f"{spec.table} {layer}: plain NUMERIC"
    transform = render_table(make_spec(), PROD).layers["transform"]
    assert "SAFE_CAST(d.balance AS NUMERIC(38, 9))" in transform
    assert sql_type("NUMERIC") == "NUMERIC(38, 9)" and sql_type("INT64") == "INT64"
    assert safe_cast("x", "NUMERIC") == "COALESCE(SAFE_CAST(SAFE_CAST(x AS NUMERIC(18, 9)) AS NUMERIC(38, 9)), SAFE_CAST(x AS NUMERIC(38, 9)))"


def test_derived_numeric_is_cast_with_precision():
    spec = make_spec(transform=[{"name": "balance_cents", "type": "NUMERIC", "expr": "balance * 100"}])
    assert "CAST((balance * 100\n  ) AS NUMERIC(38, 9)) AS balance_cents" in render_table(spec, PROD).layers["transform"]


def test_derived_expressions_rendered_as_given():
    transform = render_table(make_spec(), PROD).layers["transform"]
    assert "CAST((LOWER(SPLIT(email, '@')[SAFE_OFFSET(1)])\n  ) AS STRING) AS email_domain" in transform
    odd = render_table(ODD, PROD).layers["transform"]
    assert "CAST((CAST(val AS FLOAT64) * 2\n  ) AS FLOAT64) AS dv" in odd


def test_transform_casts():
    sql = render_table(ODD, PROD).layers["transform"]
    assert "    SAFE_CAST(d.ka AS INT64) AS ka,\n    d.kb AS kb," in sql
    assert "SAFE_CAST(d.ver AS DATE) AS ver" in sql and "SAFE_CAST(d.ok AS BOOL) AS ok" in sql
    for meta in ("_row_hash", "_ingested_at", "_batch_id", "_source_file", "_through"):
        assert f"    d.{meta}" in sql, meta
    stripped = strip_literals_and_comments(sql)
    assert "_rejects" not in stripped and "column_name" not in stripped  # rejects are a view now
    assert "AS _valid" not in stripped


def test_rejects_view_one_branch_per_non_string_column():
    sql = render_rejects_view(ODD, PROD)
    (stmt,) = parse(sql)
    branches = sql.split("\nUNION ALL\n")
    typed = [c for c in ODD.columns if c.type != "STRING"]
    assert len(branches) == len(typed) == sql.count("UNION ALL") + 1
    meta = "_row_hash, _batch_id, _source_file, _ingested_at"
    for c, b in zip(typed, branches):
        assert b.startswith(f"SELECT ka, kb, '{c.name}' AS column_name, {c.name} AS value, 'not a valid {c.type}' AS reason, {meta}\n")
        assert f"FROM `acme-data-prod.prod_archive.zq_items`\nWHERE {c.name} IS NOT NULL AND {safe_cast(c.name, c.type)} IS NULL" in b
    assert "'kb' AS column_name" not in sql  # STRING columns never fail their cast
    assert "rejected_at" not in sql
    # the shipped specs' views parse too
    for spec in SHIPPED:
        parse(render_rejects_view(spec, PROD))


def test_rejects_view_all_string_keeps_its_columns_and_is_empty():
    spec = parse_spec(
        {"table": "t", "source": {"format": "csv", "path": "t/"}, "key": ["a"], "columns": [{"source": "a", "name": "a", "type": "STRING"}]}
    )
    sql = render_rejects_view(spec, PROD)
    assert "UNION ALL" not in sql and sql.rstrip().endswith("WHERE FALSE")
    (stmt,) = parse(sql)
    assert stmt.named_selects == ["a", "column_name", "value", "reason", "_row_hash", "_batch_id", "_source_file", "_ingested_at"]


def test_batch_log_uses_query_parameters_and_never_logs_a_batch_twice():
    sql = render_batch_log(make_spec(), PROD)
    assert render_table(make_spec(), PROD).batch_log == sql
    (stmt,) = parse(sql)
    assert isinstance(stmt, exp.Insert)
    assert sql.startswith(
        "INSERT INTO `acme-data-prod.prod_archive.customers__batches` "
        "(batch_id, source_file, content_sha256, rows_in, null_key_rows, rows_archived, archived_at, spec_version)"
    )
    for p in ("@batch_id", "@source_file", "@content_sha256", "@rows_in", "@null_key_rows", "@spec_version"):
        assert p in sql, p
    # every archived version of the batch, whichever run archived it
    assert "(SELECT COUNT(*) FROM `acme-data-prod.prod_archive.customers` WHERE _batch_id = @batch_id)" in sql
    assert "WHERE NOT EXISTS (SELECT 1 FROM `acme-data-prod.prod_archive.customers__batches` WHERE batch_id = @batch_id)" in sql


# --------------------------------------------------------------------------- checks


def test_checks_insert_every_result_then_fail_on_error_severity():
    sql = render_checks(ODD, PROD)
    insert, assertion = parse(sql)
    assert isinstance(insert, exp.Insert) and isinstance(assertion, exp.Select)
    assert sql.count("INSERT INTO `acme-data-prod.prod_quality.check_results` (run_id, table_name, check_name, rule, columns, ") == 1
    # one result row per check, named as the spec says; failing rows by the rule's WHERE
    assert "'not_null(ka, kb)' AS check_name, 'not_null' AS rule, ARRAY<STRING>['ka', 'kb'] AS columns, 'error' AS severity" in sql
    assert "WHERE _t.ka IS NULL OR _t.kb IS NULL" in sql
    assert "GROUP BY ka, kb HAVING COUNT(*) > 1) AS _d WHERE _d.ka = _t.ka AND _d.kb = _t.kb)" in sql
    # up to 10 sample keys, both key columns, in key order
    assert "ARRAY_AGG(CONCAT(IFNULL(CAST(_t.ka AS STRING), 'NULL'), ', ', IFNULL(CAST(_t.kb AS STRING), 'NULL')) ORDER BY _t.ka, _t.kb LIMIT 10)" in sql
    assert "CONCAT('zq_items-', FORMAT_TIMESTAMP('%Y%m%dT%H%M%SZ', @run_time)) AS run_id" in sql
    # the failure message names the marker the alert policy matches, the table and the checks
    assert "ERROR(CONCAT('flexyboots checks failed on acme-data-prod.prod_dwh.zq_items: '" in sql
    assert "COUNTIF(severity = 'error' AND NOT passed) = 0" in sql
    assert "ASSERT" not in sql and "RAISE" not in sql  # not available on the embedded engine
    assert render_checks(ODD, PROD) == "".join(render_check_statements(ODD, PROD))


def test_unique_on_one_column_is_an_uncorrelated_in():
    """One column: the rows whose value is duplicated, by IN (the same rows as the EXISTS of
    several columns; tests/sql/test_cases.py runs both kinds on the engine)."""
    spec = parse_spec(
        {
            "table": "zq_one",
            "source": {"format": "csv", "path": "zq/"},
            "key": ["ka"],
            "columns": [{"source": "a", "name": "ka", "type": "INT64"}, {"source": "b", "name": "kb", "type": "STRING"}],
            "checks": [{"unique": ["kb"]}],
        }
    )
    sql = render_checks(spec, PROD)
    parse(sql)
    groups = "SELECT kb FROM `acme-data-prod.prod_dwh.zq_one` WHERE kb IS NOT NULL GROUP BY kb HAVING COUNT(*) > 1"
    assert f"WHERE _t.kb IN ({groups})" in sql
    assert "EXISTS" not in sql


RULES_SPEC = parse_spec(
    {
        "table": "zq_items",
        "source": {"format": "csv", "path": "zq/"},
        "key": ["ka"],
        "version_by": "ver",
        "columns": [
            {"source": "a", "name": "ka", "type": "INT64"},
            {"source": "b", "name": "kb", "type": "STRING"},
            {"source": "c", "name": "val", "type": "NUMERIC"},
            {"source": "d", "name": "ver", "type": "DATE"},
            {"source": "e", "name": "ts", "type": "TIMESTAMP"},
            {"source": "f", "name": "ok", "type": "BOOL"},
        ],
        "checks": [
            {"accepted_values": {"column": "kb", "values": ["x", "it's"]}, "severity": "warn"},
            {"accepted_values": {"column": "ok", "values": [True]}},
            {"range": {"column": "val", "min": 0, "max": "1e3"}},
            {"range": {"column": "ts", "min": "2024-01-01T00:00:00Z"}},
            {"regex": {"column": "kb", "pattern": r"^\d+-[a-z]$"}},
            {"relationships": {"column": "ka", "to": "zq_other", "field": "id"}},
            {"freshness": {"max_age": "36 hours"}},
            {"row_count": {"min": 1, "max": 1000, "max_change": 0.25}},
            {"expression": "val >= 0 OR ok -- a comment"},
        ],
    }
)


def test_each_rule_renders_its_condition():
    sql = render_checks(RULES_SPEC, PROD)
    parse(sql)
    assert "_t.kb IS NOT NULL AND _t.kb NOT IN ('x', 'it\\'s')" in sql
    assert "'warn' AS severity" in sql
    assert "_t.ok IS NOT NULL AND _t.ok NOT IN (TRUE)" in sql
    assert "_t.val IS NOT NULL AND (_t.val < CAST('0' AS NUMERIC(38, 9)) OR _t.val > CAST('1000' AS NUMERIC(38, 9)))" in sql
    assert "_t.ts IS NOT NULL AND (_t.ts < TIMESTAMP '2024-01-01 00:00:00.000000+00')" in sql
    assert "NOT REGEXP_CONTAINS(_t.kb, '^\\\\d+-[a-z]$')" in sql  # a BigQuery string literal: backslash doubled
    assert "NOT EXISTS (SELECT 1 FROM `acme-data-prod.prod_dwh.zq_other` AS _r WHERE _r.id = _t.ka)" in sql
    assert "'zq_other' AS referenced_table" in sql
    # freshness on version_by (a DATE): its newest value against @run_time, 36 h = 129600 s
    assert "TIMESTAMP_DIFF(@run_time, MAX(TIMESTAMP(ver)), SECOND) AS observed_value" in sql
    assert "WHEN 'freshness(ver)' THEN IFNULL(observed_value <= 129600, FALSE)" in sql
    # row_count: bounds and the change against the previous run's observed value
    assert "WHEN 'row_count' THEN observed_value >= 1 AND observed_value <= 1000 AND IFNULL(SAFE_DIVIDE(ABS(observed_value - (SELECT p.observed_value FROM `acme-data-prod.prod_quality.check_results` AS p WHERE p.table_name = 'zq_items' AND p.check_name = 'row_count' ORDER BY p.checked_at DESC LIMIT 1)" in sql
    # the spec author's expression on its own lines: its trailing comment cannot swallow the SQL
    assert "NOT (\n      val >= 0 OR ok -- a comment\n    )" in sql


def test_no_checks_renders_a_harmless_select():
    sql = render_checks(make_spec(checks=None), PROD)
    assert "SELECT 'no checks' AS checks;" in sql
    parse(sql)


def test_render_layer_dispatch_and_unknown_layer():
    spec = make_spec()
    r = render_table(spec, PROD, "gs://x")
    for layer in LAYERS:
        assert render_layer(spec, PROD, layer, "gs://x") == r.layers[layer]
    assert render_layer(spec, PROD, "checks") == r.checks
    with pytest.raises(ValueError, match="unknown layer 'gold'; expected one of: staging, archive, delta, transform, dwh, checks"):
        render_layer(spec, PROD, "gold")


# --------------------------------------------------------------------------- schema.pipeline_tables


def tables_by_id(spec, naming=PROD):
    return {(t.layer, t.name): t for t in pipeline_tables(spec, naming)}


def names(t):
    return [f["name"] for f in t.fields]


def test_pipeline_tables_inventory_and_ids():
    tables = pipeline_tables(make_spec(), PROD)
    assert [(t.layer, t.name) for t in tables] == [
        ("staging", "customers"),
        ("staging", "customers__batch"),
        ("archive", "customers"),
        ("archive", "customers__batches"),
        ("archive", "customers__specs"),
        ("delta", "customers"),
        ("transform", "customers"),
        ("dwh", "customers"),
        ("quality", "customers__rejects"),
    ]
    for t in tables:
        assert t.dataset == f"prod_{t.layer}"
        assert t.table_id == f"acme-data-prod.prod_{t.layer}.{t.name}"
        assert t.description
    rebuilt = {(t.layer, t.name) for t in tables if t.rebuilt_by_sql}
    assert rebuilt == {("staging", "customers"), ("staging", "customers__batch"), ("delta", "customers"), ("transform", "customers")}
    protected = {(t.layer, t.name) for t in tables if t.protected}
    assert protected == {("archive", "customers"), ("archive", "customers__batches"), ("archive", "customers__specs"), ("dwh", "customers")}
    # the rejects are a view over the archive; every other entry is a table
    views = {(t.layer, t.name): t.view_query for t in tables if t.view_query is not None}
    assert views == {("quality", "customers__rejects"): render_rejects_view(make_spec(), PROD)}


def test_pipeline_tables_fields():
    t = tables_by_id(ODD)
    staging = t[("staging", "zq_items")]
    assert names(staging) == ["SrcKeyA", "src_kb", "src_val", "src_ver", "src_ok"]
    assert {f["type"] for f in staging.fields} == {"STRING"}
    archive = t[("archive", "zq_items")]
    assert names(archive) == ["ka", "kb", "val", "ver", "ok", "_row_hash", "_ingested_at", "_batch_id", "_source_file"]
    assert [f["type"] for f in archive.fields][:5] == ["STRING"] * 5
    assert archive.partition == {"field": "_ingested_at", "type": "DAY"}
    assert archive.clustering == ("ka", "kb")
    dwh = t[("dwh", "zq_items")]
    assert [(f["name"], f["type"]) for f in dwh.fields] == [
        ("ka", "INT64"), ("kb", "STRING"), ("val", "NUMERIC"), ("ver", "DATE"), ("ok", "BOOL"), ("dv", "FLOAT64"),
        ("_row_hash", "STRING"), ("_ingested_at", "TIMESTAMP"), ("_batch_id", "STRING"), ("_through", "TIMESTAMP"),
        ("_inserted_at", "TIMESTAMP"), ("_updated_at", "TIMESTAMP"),
    ]
    assert dwh.partition == {"field": "ver", "type": "MONTH"}
    assert dwh.clustering == ("kb", "ka")
    assert {f["mode"] for f in dwh.fields} == {"NULLABLE"}
    transform = t[("transform", "zq_items")]
    assert names(transform) == ["ka", "kb", "val", "ver", "ok", "dv", "_row_hash", "_ingested_at", "_batch_id", "_source_file", "_through"]
    assert "_through" in names(t[("delta", "zq_items")])
    q = t[("quality", "zq_items__rejects")]
    # the view's fields list its columns, in the view's column order
    assert names(q) == ["ka", "kb", "column_name", "value", "reason", "_row_hash", "_batch_id", "_source_file", "_ingested_at"]
    assert {f["type"] for f in q.fields if f["name"] in ("ka", "kb")} == {"STRING"}
    assert parse(q.view_query)[0].named_selects == names(q)


def test_pipeline_tables_without_partition_and_with_long_key():
    cols = [{"source": f"k{i}", "name": f"k{i}", "type": "STRING"} for i in range(6)]
    spec = parse_spec({"table": "t", "source": {"format": "json", "path": "t/"}, "key": [c["name"] for c in cols], "columns": cols})
    t = tables_by_id(spec)
    assert t[("dwh", "t")].partition is None and t[("dwh", "t")].clustering == ()
    assert t[("archive", "t")].clustering == ("k0", "k1", "k2", "k3")  # BigQuery clusters on at most 4


@pytest.mark.parametrize("spec", SHIPPED, ids=lambda s: s.table)
def test_shipped_dwh_tables_follow_their_specs(spec):
    dwh = tables_by_id(spec)[("dwh", spec.table)]
    assert dwh.partition == {"field": spec.dwh.partition_by.column, "type": spec.dwh.partition_by.granularity}
    assert dwh.clustering == spec.dwh.cluster_by
    assert names(dwh)[: len(spec.dwh_columns)] == [n for n, _ in spec.dwh_columns]


# --------------------------------------------------------------------------- schema.render_ddl


def test_render_ddl_dwh_timestamp_partition():
    dwh = tables_by_id(make_spec())[("dwh", "customers")]
    ddl = render_ddl(dwh)
    assert ddl.startswith("CREATE TABLE IF NOT EXISTS `acme-data-prod.prod_dwh.customers` (\n  customer_id INT64,\n")
    assert "  balance NUMERIC(38, 9),\n" in ddl
    assert ddl.endswith(")\nPARTITION BY TIMESTAMP_TRUNC(updated_at, DAY)\nCLUSTER BY customer_id")
    parse(ddl)


@pytest.mark.parametrize(
    "granularity, clause",
    [("DAY", "PARTITION BY ver"), ("MONTH", "PARTITION BY DATE_TRUNC(ver, MONTH)"), ("YEAR", "PARTITION BY DATE_TRUNC(ver, YEAR)")],
)
def test_render_ddl_date_partition(granularity, clause):
    spec = parse_spec(
        {
            "table": "t",
            "source": {"format": "csv", "path": "t/"},
            "key": ["k"],
            "columns": [{"source": "k", "name": "k", "type": "STRING"}, {"source": "v", "name": "ver", "type": "DATE"}],
            "dwh": {"partition_by": {"column": "ver", "granularity": granularity}},
        }
    )
    ddl = render_ddl(tables_by_id(spec)[("dwh", "t")])
    assert ddl.endswith(f")\n{clause}")
    assert "CLUSTER BY" not in ddl
    parse(ddl)


def test_render_ddl_hour_partition_and_archive():
    spec = make_spec(dwh={"partition_by": {"column": "updated_at", "granularity": "HOUR"}})
    assert render_ddl(tables_by_id(spec)[("dwh", "customers")]).endswith("PARTITION BY TIMESTAMP_TRUNC(updated_at, HOUR)")
    archive = render_ddl(tables_by_id(ODD)[("archive", "zq_items")])
    assert archive.endswith(")\nPARTITION BY TIMESTAMP_TRUNC(_ingested_at, DAY)\nCLUSTER BY ka, kb")


def test_render_ddl_rejects_view():
    q = tables_by_id(ODD)[("quality", "zq_items__rejects")]
    ddl = render_ddl(q)
    assert ddl == f"CREATE OR REPLACE VIEW `acme-data-prod.prod_quality.zq_items__rejects` AS\n{render_rejects_view(ODD, PROD)}"
    (stmt,) = parse(ddl)
    assert isinstance(stmt, exp.Create) and stmt.args["kind"] == "VIEW"


@pytest.mark.parametrize("spec", SHIPPED + [ODD], ids=lambda s: s.table)
def test_every_ddl_parses(spec):
    for t in pipeline_tables(spec, PROD):
        ddl = render_ddl(t)
        if t.view_query is not None:
            assert ddl.startswith(f"CREATE OR REPLACE VIEW `{t.table_id}` AS\n")
        else:
            assert ddl.startswith(f"CREATE TABLE IF NOT EXISTS `{t.table_id}` (")
        assert not re.findall(r"\bNUMERIC\b(?!\()", strip_literals_and_comments(ddl))
        parse(ddl)


def test_a_trailing_comment_in_an_expression_cannot_swallow_the_cast():
    spec = make_spec(transform=[{"name": "dom", "type": "STRING", "expr": "LOWER(email) -- the e-mail domain"}])
    sql = render_table(spec, PROD).layers["transform"]
    line = next(ln for ln in sql.splitlines() if "-- the e-mail domain" in ln)
    assert line.strip() == "CAST((LOWER(email) -- the e-mail domain"
    assert "  ) AS STRING) AS dom" in sql
