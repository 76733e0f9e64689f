"""Every statement flexyboots runs, for every shipped spec and every test spec, analyzes clean with
Google's ZetaSQL under BigQuery's language options: the five layers (staging's LOAD DATA included),
the checks, the runner's and the CLI's own statements, the DDL of every declared table and the
rejects views;
for the embedded engine's naming and for a real project with an env. Every CREATE TABLE, CTAS,
LOAD DATA and view produces exactly the columns ``pipeline_sql.schema`` declares.

One catalog holds all tables of all specs under both namings, so a statement reading another
table's columns by mistake would be caught as well. Run time is printed (``-s``)."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import pytest

from pipeline_sql import cli, render, runner
from pipeline_sql.googlesql import Catalog
from pipeline_sql.naming import DATASETS, LAYERS, Naming
from pipeline_sql.spec import TableSpec, load_specs
from pipeline_sql.statements import project_statements, table_statements

REPO = Path(__file__).resolve().parents[2]
NAMINGS = (Naming(), Naming(project="acme-data-prod", env="prod"))
LANDING = "gs://acme-data-prod-landing"


def _module_specs() -> list[TableSpec]:
    """The specs the embedded-engine tests define at module level (tests/sql)."""
    sql_tests = REPO / "tests" / "sql"
    sys.path.insert(0, str(sql_tests))  # they import sql_model
    try:
        found: list[TableSpec] = []
        for name in ("test_property", "test_invariants", "test_landing_input", "test_cases"):
            spec = importlib.util.spec_from_file_location(f"_gsql_{name}", sql_tests / f"{name}.py")
            mod = importlib.util.module_from_spec(spec)
            spec.loader.exec_module(mod)
            for value in vars(mod).values():
                if isinstance(value, TableSpec):
                    found.append(value)
                elif isinstance(value, dict):
                    found += [v for v in value.values() if isinstance(v, TableSpec)]
        return found
    finally:
        sys.path.remove(str(sql_tests))


SHIPPED = load_specs(REPO / "config" / "tables")
FIXTURES = load_specs(REPO / "tests" / "stacks" / "tables") + load_specs(REPO / "tests" / "stacks" / "tables_s3")
SETS = {"shipped": SHIPPED, "stack-fixtures": FIXTURES, "engine-test-specs": _module_specs()}


@pytest.mark.parametrize("which", list(SETS))
def test_every_statement_of_every_spec_analyzes_clean(assert_googlesql_clean, which):
    specs = SETS[which]
    assert specs
    # one table per name per catalog: the engine tests reuse the name "items" for several specs
    groups: dict[str, list[TableSpec]] = {}
    for s in specs:
        groups.setdefault(s.table, []).append(s)
    total = resolved = schemas = 0
    seconds = 0.0
    for i in range(max(len(g) for g in groups.values())):
        batch = [g[i] for g in groups.values() if i < len(g)]
        statements = [st for n in NAMINGS for st in project_statements(batch, n, LANDING)]
        result = assert_googlesql_clean(statements, Catalog.for_specs(batch, NAMINGS))
        total, resolved, schemas, seconds = total + result.statements, resolved + result.resolved, schemas + result.checked_schemas, seconds + result.seconds
    print(f"\n{which}: {len(specs)} specs x {len(NAMINGS)} namings: {total} statements ({resolved} resolved, {schemas} schemas compared) in {seconds:.1f}s")
    # each table of pipeline_sql.schema was created by a statement and compared
    assert schemas >= sum(len(NAMINGS) * 8 for _ in specs)


def test_the_statement_list_covers_what_runs():
    """Each layer, the checks, the runner's and the CLI's statements, for every export layer;
    and the runner and CLI send exactly these rendered texts (they call the same functions)."""
    spec = SHIPPED[0]
    kinds = [s.kind for s in table_statements(spec, NAMINGS[1], LANDING)]
    assert kinds[: len(LAYERS)] == [f"layer:{layer}" for layer in LAYERS]
    assert {"checks", "staging_batch", "truncate_batch", "truncate_staging", "batch_log", "archived_hashes", "table_states", "staging_rows", "demo_snapshot", "demo_rejects"} <= set(kinds)
    assert {f"export:{layer}" for layer in render.EXPORT_LAYERS} <= set(kinds)
    assert [s.kind for s in project_statements(SHIPPED, NAMINGS[1], LANDING)][:2] == ["ddl", "table_states"]
    ddl = project_statements([spec], NAMINGS[1], LANDING)[0].sql
    assert all(f"CREATE SCHEMA IF NOT EXISTS {NAMINGS[1].dataset_ref(d)}" in ddl for d in DATASETS)
    for fn in ("render_table_states", "render_archived_hashes", "render_staging_rows", "render_truncate_staging_batch", "render_truncate_staging"):
        assert getattr(runner, fn) is getattr(render, fn), fn
    for fn in ("render_export", "render_dwh_snapshot", "render_rejects_listing"):
        assert getattr(cli, fn) is getattr(render, fn), fn
    src = Path(runner.__file__).read_text() + Path(cli.__file__).read_text()
    assert "f\"SELECT" not in src and "f'SELECT" not in src and "TRUNCATE TABLE" not in src, "inline SQL in runner/cli"


def test_the_staging_layer_is_analyzed_with_its_scheduled_query_parameter():
    (staging,) = [s for s in table_statements(SHIPPED[0], NAMINGS[1], LANDING) if s.kind == "layer:staging"]
    assert "CREATE OR REPLACE EXTERNAL TABLE `acme-data-prod.prod_staging." in staging.sql
    assert staging.params == (("run_time", "TIMESTAMP"),)
    assert f"uris = ['{LANDING}/{SHIPPED[0].source.path}*']" in staging.sql


def _catalog_job_query() -> str:
    """The Amundsen catalog job's query (components/amundsen/flexyboots_catalog.py runs on the VM
    in databuilder's virtualenv; read here from the source, not imported)."""
    import ast

    tree = ast.parse((REPO / "components" / "amundsen" / "flexyboots_catalog.py").read_text())
    cls = next(n for n in ast.walk(tree) if isinstance(n, ast.ClassDef) and n.name == "FlexybootsCheckResultsExtractor")
    assign = next(n for n in cls.body if isinstance(n, ast.Assign) and n.targets[0].id == "QUERY")
    return ast.literal_eval(assign.value)


def test_the_catalog_jobs_query_on_check_results_analyzes_clean(assert_googlesql_clean):
    from pipeline_sql.statements import Statement

    naming = NAMINGS[1]
    sql = _catalog_job_query().format(table=naming.table_id("quality", "check_results"))
    assert_googlesql_clean([Statement("amundsen:check_results", sql, params=(("lookback_days", "INT64"),))], Catalog.for_specs([], [naming]))


REGRESSIONS = {
    # GoogleSQL cannot parse `table` unquoted in an INSERT column list: the archive's INSERT
    # lists its columns back-quoted
    "column-named-table": {"table": "q", "source": {"format": "csv", "path": "q/"}, "key": "table",
                           "columns": [{"source": "a", "name": "table", "type": "string"}]},
    # a column named t was read inside the checks' correlated subqueries instead of the DWH
    # alias t ("Cannot access field a on a value with type STRING"): the aliases are _t, _r, _d
    "column-named-t": {"table": "q", "source": {"format": "csv", "path": "q/"}, "key": "a",
                       "columns": [{"source": "a", "name": "a", "type": "string"}, {"source": "b", "name": "t", "type": "string"}],
                       "checks": [{"relationships": {"column": "a", "to": "q"}}, {"unique": ["t", "a"]}, {"expression": "t IS NOT NULL"}]},
    # the staging copy read its window from script variables inside FROM <landed>, where a source
    # column _window_start won ("No matching signature for operator BETWEEN ... DATE, STRING"):
    # the window is written out there
    "source-named-like-a-variable": {"table": "q", "source": {"format": "csv", "path": "q/"}, "key": "a",
                                     "columns": [{"source": "a", "name": "a", "type": "string"}, {"source": "_window_start", "name": "w", "type": "string"}]},
}


@pytest.mark.parametrize("name", list(REGRESSIONS))
def test_specs_the_strategy_found_analyze_clean(assert_googlesql_clean, name):
    """Specs the strategy (tests/strategies.py) found whose SQL BigQuery refused, before the fix."""
    from tests.strategies import spec_of

    spec = spec_of(REGRESSIONS[name])
    naming = NAMINGS[1]
    assert_googlesql_clean(project_statements([spec], naming, LANDING), Catalog.for_specs([spec], [naming]))
