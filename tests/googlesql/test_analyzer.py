"""The GoogleSQL analysis itself: BigQuery's language options, the catalog, parameters, scripts,
the schema comparison and the engine rules each refuse what BigQuery refuses (so a clean analysis
of the project's SQL means something), and the compiled module is cached."""

from __future__ import annotations

import pytest

from pipeline_sql.googlesql import (
    BIGQUERY_LANGUAGE_FEATURES,
    BIGQUERY_STATEMENT_KINDS,
    Catalog,
    GoogleSQL,
    compiled_module_path,
    prepare,
    split_table_paths,
)
from pipeline_sql.schema import TableDef
from pipeline_sql.statements import Statement

P = "acme-data-prod"


def _table(name: str, *cols: tuple[str, str], view: bool = False) -> TableDef:
    ds, t = name.split(".")
    return TableDef(
        layer=ds,
        name=t,
        dataset=ds,
        table_id=f"{P}.{name}",
        fields=tuple({"name": n, "type": ty, "mode": "NULLABLE"} for n, ty in cols),
        view_query="SELECT 1" if view else None,
    )


CATALOG = Catalog.from_tabledefs(
    [
        _table("prod_dwh.orders", ("id", "INT64"), ("amount", "NUMERIC"), ("ordered_at", "TIMESTAMP"), ("day", "DATE"), ("ratio", "FLOAT64")),
        _table("prod_staging.orders", ("id", "STRING"), ("amount", "STRING")),
        _table("prod_transform.orders", ("id", "INT64"), ("amount", "NUMERIC")),
        _table("prod_quality.v", ("id", "INT64"), view=True),
        _table("prod_dwh.status", ("status", "STRING"), ("id", "INT64")),
    ]
)
DWH = f"`{P}.prod_dwh.orders`"


def problems(gsql, sql: str, params=()):
    return [p.message for p in gsql.analyze([Statement("t", sql, params=tuple(params))], CATALOG).problems]


def one_problem(gsql, sql: str, expected: str, params=()):
    found = problems(gsql, sql, params)
    assert len(found) == 1 and expected in found[0], found
    return found[0]


# --------------------------------------------------------------------------- BigQuery's options


def test_language_options_are_zetasql_toolkits_bigquery_set():
    """87 features and 46 statement kinds, as zetasql-toolkit's BigQueryLanguageOptions lists
    them (each name is also checked to exist in the pinned zetasql, or GoogleSQL() would fail)."""
    assert len(BIGQUERY_LANGUAGE_FEATURES) == 87 and len(set(BIGQUERY_LANGUAGE_FEATURES)) == 87
    assert len(BIGQUERY_STATEMENT_KINDS) == 46
    assert "FEATURE_V_1_3_QUALIFY" in BIGQUERY_LANGUAGE_FEATURES
    assert "RESOLVED_AUX_LOAD_DATA_STMT" in BIGQUERY_STATEMENT_KINDS


def test_a_clean_statement_has_no_problem(gsql):
    assert problems(gsql, f"SELECT id, amount * 2 AS doubled FROM {DWH} QUALIFY ROW_NUMBER() OVER (PARTITION BY id ORDER BY ordered_at DESC) = 1") == []


def test_unknown_column_and_table(gsql):
    one_problem(gsql, f"SELECT idd FROM {DWH}", "Unrecognized name: idd")
    one_problem(gsql, f"SELECT 1 FROM `{P}.prod_dwh.nope`", "not found")


def test_syntax_error(gsql):
    one_problem(gsql, f"SELEC id FROM {DWH}", "does not parse: Syntax error")


def test_product_mode_external_refuses_internal_types(gsql):
    one_problem(gsql, "SELECT CAST(1 AS INT32) AS x", "INT32")


def test_feature_outside_bigquerys_set_is_refused(gsql):
    """Pipe syntax is a ZetaSQL feature zetasql-toolkit's BigQuery set does not enable."""
    assert problems(gsql, f"FROM {DWH} |> SELECT id")


def test_float64_is_not_a_window_partition(gsql):
    one_problem(gsql, f"SELECT ROW_NUMBER() OVER (PARTITION BY ratio) AS n FROM {DWH}", "Partitioning by expressions of type FLOAT64 is not allowed")


def test_query_parameters_are_typed(gsql):
    sql = f"SELECT id FROM {DWH} WHERE ordered_at > @run_time"
    assert problems(gsql, sql, [("run_time", "TIMESTAMP")]) == []
    one_problem(gsql, sql, "No matching signature for operator >", [("run_time", "INT64")])
    one_problem(gsql, sql, "Query parameter 'run_time' not found")


def test_backquoted_table_name_is_a_path_whose_implicit_alias_is_the_table(gsql):
    """BigQuery reads `p.d.status` as p.d.status: an unqualified `status` is then the table's row."""
    assert split_table_paths(f"FROM `{P}.prod_dwh.status` x", frozenset({f"{P}.prod_dwh.status"})) == f"FROM `{P}`.`prod_dwh`.`status` x"
    one_problem(gsql, f"SELECT CONCAT(status, 'x') AS s FROM `{P}.prod_dwh.status`", "STRUCT")
    assert problems(gsql, f"SELECT CONCAT(t.status, 'x') AS s FROM `{P}.prod_dwh.status` AS t") == []


# --------------------------------------------------------------------------- scripts


def test_declared_variable_is_typed_for_the_statements_after_it(gsql):
    ok = f"DECLARE _at TIMESTAMP DEFAULT CURRENT_TIMESTAMP();\nSELECT COUNTIF(ordered_at = _at) AS n FROM {DWH};"
    assert problems(gsql, ok) == []
    one_problem(gsql, f"DECLARE _at INT64 DEFAULT 1;\nSELECT COUNTIF(ordered_at = _at) AS n FROM {DWH};", "No matching signature for operator =")
    one_problem(gsql, "DECLARE _at DATE DEFAULT CONCAT('x', 'y');", "is STRING, which does not coerce to DATE")
    assert problems(gsql, "DECLARE _at DATE DEFAULT '2024-01-01';") == []  # a literal coerces
    one_problem(gsql, "SET _nope = 1;", "SET of undeclared variable _nope")


def test_blocks_ifs_and_exception_handlers_are_analyzed(gsql):
    sql = f"""DECLARE n INT64;
BEGIN
  SET n = (SELECT COUNT(*) FROM {DWH});
  IF n > 0 THEN SELECT 1 AS one; ELSEIF n < 0 THEN SELECT idd FROM {DWH}; END IF;
EXCEPTION WHEN ERROR THEN
  SELECT @@error.message AS m;
END;"""
    (found,) = problems(gsql, sql)
    assert found.startswith("Unrecognized name: idd") and "[at 4:" in found  # line 4: the ELSEIF
    one_problem(gsql, "SELECT @@error.message AS m", "Unrecognized name: @@error")  # outside a handler


def test_a_script_statement_it_cannot_analyze_is_a_problem_not_a_pass(gsql):
    one_problem(gsql, "DECLARE i INT64 DEFAULT 0;\nWHILE i < 3 DO SET i = i + 1; END WHILE;", "is not analyzed")


def test_temp_tables_are_seen_by_later_statements(gsql):
    sql = f"CREATE TEMP TABLE _ids AS SELECT id FROM {DWH};\nSELECT id FROM _ids;\nSELECT nope FROM _ids;"
    assert problems(gsql, sql) == ["Unrecognized name: nope [at 3:8]"]


# --------------------------------------------------------------------------- schemas


def test_ctas_must_produce_the_declared_columns(gsql):
    target = f"`{P}.prod_transform.orders`"
    assert problems(gsql, f"CREATE OR REPLACE TABLE {target} AS SELECT id, amount FROM {DWH}") == []
    one_problem(gsql, f"CREATE OR REPLACE TABLE {target} AS SELECT amount, id FROM {DWH}", "pipeline_sql.schema declares (id INT64, amount NUMERIC)")
    one_problem(gsql, f"CREATE OR REPLACE TABLE {target} AS SELECT id, CAST(amount AS FLOAT64) AS amount FROM {DWH}", "gets columns (id INT64, amount FLOAT64)")
    one_problem(gsql, f"CREATE OR REPLACE TABLE `{P}.prod_transform.other` AS SELECT 1 AS x", "which pipeline_sql.schema does not declare")


def test_views_and_load_data_must_produce_the_declared_columns(gsql):
    one_problem(gsql, f"CREATE OR REPLACE VIEW `{P}.prod_quality.v` AS SELECT 'x' AS id", "gets columns (id STRING)")
    load = f"LOAD DATA OVERWRITE `{P}.prod_staging.orders` (id STRING, amount STRING) FROM FILES (format = 'CSV', uris = ['gs://b/orders/*'])"
    assert problems(gsql, load) == []
    one_problem(gsql, load.replace("amount STRING", "amount INT64"), "gets columns (id STRING, amount INT64)")


# --------------------------------------------------------------------------- engine rules


def _ddl(partition: str = "", cluster: str = "", cols: str = "id INT64, ordered_at TIMESTAMP, day DATE, ratio FLOAT64") -> str:
    sql = f"CREATE TEMP TABLE _t ({cols})"
    return sql + (f" PARTITION BY {partition}" if partition else "") + (f" CLUSTER BY {cluster}" if cluster else "")


@pytest.mark.parametrize(
    "partition",
    ["day", "DATE(ordered_at)", "TIMESTAMP_TRUNC(ordered_at, HOUR)", "TIMESTAMP_TRUNC(ordered_at, YEAR)", "DATE_TRUNC(day, MONTH)", "RANGE_BUCKET(id, GENERATE_ARRAY(0, 100, 10))"],
)
def test_partition_forms_bigquery_accepts(gsql, partition):
    assert problems(gsql, _ddl(partition)) == []


@pytest.mark.parametrize(
    "partition, expected",
    [
        ("ordered_at", "a bare column must be DATE (got TIMESTAMP)"),
        ("DATE_TRUNC(day, DAY)", "DATE_TRUNC(DATE, DAY)"),
        ("TIMESTAMP_TRUNC(ordered_at, WEEK)", "TIMESTAMP_TRUNC(TIMESTAMP, WEEK)"),
        ("DATE_ADD(day, INTERVAL 1 DAY)", "DATE_ADD(...) is not a partitioning expression"),
    ],
)
def test_partition_forms_bigquery_refuses(gsql, partition, expected):
    one_problem(gsql, _ddl(partition), expected)


def test_clustering_limits(gsql):
    cols = "a INT64, b STRING, c DATE, d BOOL, e TIMESTAMP"
    assert problems(gsql, _ddl(cluster="a, b, c, d", cols=cols)) == []
    one_problem(gsql, _ddl(cluster="a, b, c, d, e", cols=cols), "CLUSTER BY has 5 columns; BigQuery clusters on at most 4")
    assert any("floating point" in m for m in problems(gsql, _ddl(cluster="ratio")))


@pytest.mark.parametrize("name", ["_PARTITIONTIME", "_partitiondate", "_FILE_NAME", "_TABLE_SUFFIX", "_ROW_TIMESTAMP", "__ROOT__", "_COLIDENTIFIER1"])
def test_reserved_column_prefixes(gsql, name):
    one_problem(gsql, _ddl(cols=f"id INT64, {name} STRING"), "a prefix BigQuery reserves")


@pytest.mark.parametrize(
    "options, expected",
    [
        ("format = 'CSV', uris = ['gs://b/x/*'], skip_leading_rows = 1, field_delimiter = ';'", None),
        ("format = 'PARQUET', uris = ['gs://b/x/*']", None),
        ("format = 'CSV', uris = ['gs://b/x/*'], skip_rows = 1", "LOAD DATA option skip_rows is not one"),
        ("format = 'CSV', uris = ['gs://b/x/*'], skip_leading_rows = '1'", "skip_leading_rows is STRING; expected INT64"),
        ("format = 'XML', uris = ['gs://b/x/*']", "LOAD DATA format 'XML'"),
        ("format = 'PARQUET', uris = ['gs://b/x/*'], skip_leading_rows = 1", "skip_leading_rows only applies to CSV"),
        ("format = 'CSV', uris = ['b/x/*']", "expected a non-empty list of gs://bucket/... URIs"),
        ("format = 'CSV', uris = ['gs://b/*/*']", "at most one '*'"),
        ("format = 'CSV', uris = ['gs://b/x/*'], field_delimiter = ';;'", "expected one character"),
    ],
)
def test_load_data_options(gsql, options, expected):
    sql = f"LOAD DATA OVERWRITE `{P}.prod_staging.orders` (id STRING, amount STRING) FROM FILES ({options})"
    if expected is None:
        assert problems(gsql, sql) == []
    else:
        one_problem(gsql, sql, expected)


# --------------------------------------------------------------------------- the module cache


def test_the_compiled_module_is_cached_and_reused(tmp_path, monkeypatch):
    """`make setup` compiled it; a second prepare only loads it (milliseconds), and a new analyzer
    starts from the cache without compiling."""
    path, seconds, compiled = prepare()
    assert path == compiled_module_path() and path.is_file() and not compiled
    assert seconds < 10
    g = GoogleSQL(path)
    assert g.start_seconds < 10
    assert g.analyze(["SELECT 1 AS one"], Catalog(())).problems == []


def test_a_corrupt_cache_file_is_removed_not_trusted(tmp_path):
    """prepare() then compiles afresh (not run here: it takes a minute)."""
    from pipeline_sql.googlesql import _cached_module, _engine

    bad = compiled_module_path(tmp_path)
    bad.write_bytes(b"not a module")
    assert _cached_module(bad, _engine()) is None
    assert not bad.exists()
    assert _cached_module(compiled_module_path(), _engine()) is not None


# --------------------------------------------------------------------------- the command


def test_command_analyzes_a_folder_of_specs(tmp_path, capsys):
    """`python -m pipeline_sql.googlesql --config-dir DIR`: exit 0 when clean; exit 1 and the
    statement, line and message when a derived expression (the author's own SQL, which the
    validator parses but does not type) is one BigQuery refuses."""
    from pipeline_sql.googlesql import main

    spec = (
        "table: parcels\nsource: {format: csv, path: parcels/}\nkey: [parcel_id]\n"
        "columns:\n  - {source: id, name: parcel_id, type: INT64}\n  - {source: w, name: weight, type: NUMERIC}\n"
        "transform:\n  - {name: heavy, type: BOOL, expr: \"weight > 10\"}\n"
    )
    (tmp_path / "parcels.yaml").write_text(spec)
    assert main(["--config-dir", str(tmp_path)]) == 0
    assert "0 problems" in capsys.readouterr().out
    # the validator parses the expression and checks the columns it names (an unknown column is
    # refused before this point); the types are the analyzer's to judge
    (tmp_path / "parcels.yaml").write_text(spec.replace("weight > 10", "LOWER(weight) > 10"))
    assert main(["--config-dir", str(tmp_path)]) == 1
    out = capsys.readouterr().out
    assert "parcels/layer:transform (flexyboots-local/-): No matching signature for function LOWER" in out
    assert "CAST((LOWER(weight) > 10" in out  # the excerpt shows the line
