"""Each shortcut ``LocalEngine._tune`` takes through bqemulator's per-statement work gives the
same answer as the code it stands in for, on the statements this project runs (every rendered
layer of every table in ``config/tables``, as whole scripts and statement by statement) and on
the other kinds of statement the shortcuts tell apart; and the shared memoized trees some of
them read stay as the parser left them.

The shortcuts (``pipeline_sql/engine.py``): reused sqlglot generators
(``_reuse_generators``), the memoized tree lent to checks that only read it
(``_share_trees_with_readers``), rewriters answered from the memoized tree when they would
return their input (``_skip_identity_rewrites``), DDL/DML detectors answered for scripts
(``_skip_detector_parses``) and memoized table-name qualification (``_cache_table_refs``)."""

from __future__ import annotations

import inspect
import re
from pathlib import Path

import pytest
import sqlglot
from sqlglot import exp

from pipeline_sql import engine as engine_mod
from pipeline_sql.naming import LAYERS, LOCAL_PROJECT, Naming
from pipeline_sql.render import render_layer
from pipeline_sql.spec import load_specs

ROOT = Path(__file__).resolve().parents[2]

#: Statements of other kinds than the rendered layers hold (bootstrap DDL, drops, DML, scripts).
OTHERS = [
    "CREATE SCHEMA IF NOT EXISTS ds",
    "CREATE TABLE ds.t (a INT64, b STRING) PARTITION BY DATE(_PARTITIONTIME) OPTIONS (description = 'x')",
    "CREATE TABLE ds.t2 (a INT64, d DATE) PARTITION BY d OPTIONS (require_partition_filter = TRUE, partition_expiration_days = 3)",
    "CREATE OR REPLACE TABLE ds.t (a INT64, b STRING) AS SELECT 1 AS a, 'x' AS b",
    "CREATE TABLE ds.u AS SELECT 1 AS a",
    "CREATE VIEW ds.v AS SELECT a FROM ds.t",
    "DROP TABLE ds.t",
    "DROP FUNCTION ds.f",
    "DROP PROCEDURE IF EXISTS `p.ds.pr`",
    "DROP TABLE FUNCTION ds.tvf",
    "INSERT INTO ds.t (a, b) VALUES (1, 'x')",
    "UPDATE ds.t SET b = 'y' WHERE a = 1",
    "DELETE FROM ds.t WHERE a = 1",
    "TRUNCATE TABLE ds.t",
    "MERGE ds.t AS d USING ds.s AS s ON d.a = s.a WHEN MATCHED THEN UPDATE SET b = s.b",
    "SELECT a, b / 2 AS h FROM ds.t WHERE a = 1 -- a comment",
    "SELECT x.f AS v, y FROM ds.t",
    "SELECT 1; SELECT 2",
    "CREATE TABLE ds.w (a INT64); INSERT INTO ds.w (a) VALUES (1)",
    "ALTER TABLE ds.t ADD COLUMN c STRING",
    "SELECT FORMAT_TIMESTAMP('%Y%m%dT%H%M%E6S', ts) AS a FROM ds.t",
    "SELECT FORMAT_TIMESTAMP('%Y', ts, 'UTC') AS a, FORMAT_TIMESTAMP('%Y', ts) AS b FROM ds.t",
    "SELECT PARSE_TIMESTAMP('%Y %Z', s) AS a FROM ds.t",
    "SELECT PARSE_TIMESTAMP('%Y', s) AS a FROM ds.t",
    "SELECT * FROM UNNEST([STRUCT('a' AS label, 1 AS value), STRUCT('b', 2)])",
    "SELECT * FROM UNNEST([STRUCT('a', 1), STRUCT('b', 2)])",
    "SELECT * FROM UNNEST([1, 2]) AS x",
]


def _layers() -> list[str]:
    naming = Naming(project=LOCAL_PROJECT, env="")
    texts = []
    for spec in load_specs(ROOT / "config" / "tables", None):
        for layer in list(LAYERS) + ["checks"]:
            texts.append(render_layer(spec, naming, layer, "gs://landing"))
    return texts


def _statements() -> list[str]:
    """Every rendered layer as a whole script, each statement of it, and :data:`OTHERS`."""
    out = []
    for script in _layers():
        out.append(script)
        for tree in sqlglot.parse(script, read="bigquery"):
            if tree is not None:
                out.append(tree.sql(dialect="bigquery"))
    return out + OTHERS


STATEMENTS = _statements()


def _parse(sql) -> list:
    try:
        return sqlglot.parse(sql, read="bigquery")
    except sqlglot.errors.ParseError:
        return []


@pytest.fixture(scope="module")
def tuned(engine):
    return engine


# --- pins: what the shortcuts rely on in sqlglot and bqemulator ---------------------------


def test_sqlglot_runs_compiled_and_generates_through_the_pool(tuned):
    from sqlglot.dialects.dialect import Dialect

    assert sqlglot.__version__.startswith("30.11"), "re-check _reuse_generators against this sqlglot"
    assert engine_mod.sqlglot_compiled(), "sqlglotc is not installed: run `make setup`"
    assert getattr(Dialect.generate, "_flexyboots_pooled", False)
    # the state a generator keeps between calls, which the pool resets before each use (an
    # upgrade that renames one would leave a reused generator dirty)
    gen = Dialect.get_or_raise("duckdb").generator()
    assert {"unsupported_messages", "_next_name", "_quote_json_path_key_using_brackets"} <= set(dir(gen))
    # parse_one wraps a script's statements in an exp.Block (the detectors' and readers' premise)
    assert isinstance(sqlglot.parse_one("SELECT 1; SELECT 2", read="bigquery"), exp.Block)


def test_pinned_bqemulator_functions_are_wrapped(tuned):
    from bqemulator.api.routes import jobs as routes_jobs
    from bqemulator.catalog import ddl_sync
    from bqemulator.jobs import executor
    from bqemulator.scripting import interpreter
    from bqemulator.sql import inner_query, table_rewriter, translator

    for module, name in (
        (executor, "classify_statement_type"),
        (routes_jobs, "classify_statement_type"),
        (executor, "detect_drop_routine"),
        (inner_query, "build_catalog_schema"),
        (interpreter, "_is_row_producing"),
        (executor, "_reject_dml_on_immutable"),
        (ddl_sync, "_extract_ddl_metadata"),
    ):
        assert getattr(getattr(module, name), "_flexyboots_shared", False), f"{module.__name__}.{name}"
    for name in ("rewrite_create_table_schema_ctas", "rewrite_timestamp_iso_helpers", "rewrite_unnest_struct"):
        assert getattr(getattr(translator, name), "_flexyboots_identity", False), name
    assert getattr(interpreter._rewrite_vars_to_params, "_flexyboots_identity", False)
    for module in (table_rewriter, executor, interpreter):
        assert getattr(module.rewrite_table_refs, "_flexyboots_cached", False), module.__name__
    # the original signatures the wrappers pass arguments through
    assert list(inspect.signature(inspect.unwrap(interpreter._rewrite_vars_to_params)).parameters) == ["bq_sql", "frames"]
    assert list(inspect.signature(inspect.unwrap(translator.rewrite_create_table_schema_ctas)).parameters) == ["bq_sql"]
    assert list(inspect.signature(table_rewriter.rewrite_table_refs._original).parameters) == ["duckdb_sql", "project_id"]


def test_tuning_twice_changes_nothing(tuned):
    from bqemulator.jobs import executor
    from sqlglot.dialects.dialect import Dialect

    before = (executor.classify_statement_type, executor.rewrite_table_refs, Dialect.parse, exp.Expression.__deepcopy__)
    tuned._tune()
    assert before == (executor.classify_statement_type, executor.rewrite_table_refs, Dialect.parse, exp.Expression.__deepcopy__)


def test_a_patch_whose_target_moved_is_skipped_not_fatal(tuned, monkeypatch, caplog):
    def moved():
        raise AttributeError("module 'bqemulator.sql.table_rewriter' has no attribute 'rewrite_table_refs'")

    moved.__name__ = "_cache_table_refs"
    monkeypatch.setattr(engine_mod, "_cache_table_refs", moved)
    with caplog.at_level("WARNING", logger="pipeline_sql.engine"):
        tuned._tune()
    assert "engine tuning _cache_table_refs skipped" in caplog.text
    assert [dict(r.items()) for r in tuned.client.query("SELECT 1 AS x").result()] == [{"x": 1}]


# --- each shortcut against the original -----------------------------------------------------


def test_pooled_generators_generate_as_new_ones(tuned):
    """Every statement, in BigQuery's and DuckDB's dialects, pretty or not, generated twice
    through the pool (the second time by a reused generator) as a new generator does."""
    from sqlglot.dialects.dialect import Dialect

    original = Dialect.generate._original
    trees = [t for sql in STATEMENTS for t in _parse(sql) if t is not None]
    assert len(trees) > 100
    for name in ("bigquery", "duckdb"):
        dialect = Dialect.get_or_raise(name)
        for tree in trees:
            for opts in ({}, {"pretty": True}):
                want = original(dialect, tree, **opts)
                assert dialect.generate(tree, **opts) == want
                assert dialect.generate(tree, **opts) == want


def test_pooled_generators_keep_each_generation_apart(tuned):
    """A reused generator starts clean: an unsupported construct's message belongs to the
    generation that met it (with ``unsupported_level=RAISE`` the next statement still passes);
    generations from several threads at once each take their own generator."""
    import threading

    from sqlglot.dialects.dialect import Dialect
    from sqlglot.errors import ErrorLevel, UnsupportedError

    duckdb = Dialect.get_or_raise("duckdb")
    bad = sqlglot.parse_one("SELECT APPROX_TOP_COUNT(x, 2) FROM t", read="bigquery")
    good = sqlglot.parse_one("SELECT a FROM t", read="bigquery")
    for _ in range(2):
        with pytest.raises(UnsupportedError):
            duckdb.generate(bad, unsupported_level=ErrorLevel.RAISE)
        assert duckdb.generate(good, unsupported_level=ErrorLevel.RAISE) == "SELECT a FROM t"

    original = Dialect.generate._original
    trees = [t for sql in STATEMENTS[:60] for t in _parse(sql) if t is not None]
    want = [original(duckdb, t) for t in trees]
    got: dict[int, list[str]] = {}

    def work(i):
        got[i] = [duckdb.generate(t) for t in trees]

    threads = [threading.Thread(target=work, args=(i,)) for i in range(4)]
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    assert all(got[i] == want for i in range(4))


def _parse_memo(sql):
    from sqlglot.dialects.dialect import Dialect

    return engine_mod._SHARED_PARSE(Dialect.get_or_raise("bigquery"), sql, ())


def test_readers_answer_as_the_originals_and_leave_the_memo_unchanged(tuned):
    from bqemulator.api.routes import jobs as routes_jobs
    from bqemulator.catalog import ddl_sync
    from bqemulator.domain.errors import InvalidQueryError
    from bqemulator.jobs import executor
    from bqemulator.scripting import interpreter
    from bqemulator.sql import inner_query

    ctx = tuned._emu.server._context
    c = tuned.client
    c.query("CREATE SCHEMA IF NOT EXISTS ds").result()
    c.query("CREATE OR REPLACE TABLE ds.t (a INT64, b STRING)").result()
    calls = [
        (executor.classify_statement_type, lambda f, s: f(s)),
        (routes_jobs.classify_statement_type, lambda f, s: f(s)),
        (executor.detect_drop_routine, lambda f, s: f(s, "p")),
        (inner_query.build_catalog_schema, lambda f, s: f(s, project_id=LOCAL_PROJECT, catalog=ctx.catalog)),
        (interpreter._is_row_producing, lambda f, s: f(s)),
        (ddl_sync._extract_ddl_metadata, lambda f, s: f(s)),
        (executor._reject_dml_on_immutable, lambda f, s: f(LOCAL_PROJECT, s, ctx)),
    ]

    def answer(f, call, sql):
        try:
            return ("ok", call(f, sql))
        except InvalidQueryError as e:  # pragma: no cover - none of these targets is immutable
            return ("error", str(e))

    kinds = set()
    for sql in STATEMENTS:
        for reader, call in calls:
            original = inspect.unwrap(reader)
            assert original is not reader
            got = answer(reader, call, sql)
            assert got == answer(original, call, sql), (reader.__name__, sql[:200])
            kinds.add((reader.__name__, repr(got)[:60]))
        fresh = _parse(sql)
        memo = _parse_memo(sql) if fresh else []
        assert [t.sql(dialect="bigquery") for t in memo if t] == [t.sql(dialect="bigquery") for t in fresh if t]
        assert all(t.parent is None and t.arg_key is None and t.index is None for t in memo if t is not None)
    # the statements exercise more than one answer of each
    assert {k for k, _ in kinds} == {r.__name__ for r, _ in calls}
    assert len(kinds) > 2 * len({r.__name__ for r, _ in calls})
    assert executor.classify_statement_type("DROP TABLE ds.t") == "DROP_TABLE"
    assert executor.detect_drop_routine("DROP FUNCTION ds.f", "p").routine_id == "f"
    assert inner_query.build_catalog_schema("SELECT a FROM ds.t", project_id=LOCAL_PROJECT, catalog=ctx.catalog) == {
        "t": {"a": "BIGINT", "b": "VARCHAR"}
    }


def _comparable(answer):
    if isinstance(answer, tuple):
        return tuple(_comparable(x) for x in answer)
    return answer.sql() if isinstance(answer, exp.Expression) else answer


def test_detectors_answer_scripts_as_the_originals(tuned):
    from bqemulator.catalog import ddl_sync
    from bqemulator.jobs import executor

    for sql in STATEMENTS:
        for f, call in (
            (ddl_sync._detect_catalog_drop, lambda f, s: f(s)),
            (ddl_sync._detect_plain_create_table, lambda f, s: f(s)),
            (ddl_sync._detect_create_schema, lambda f, s: f(s, "p")),
            (ddl_sync._detect_plain_create_view, lambda f, s: f(s)),
            (executor._reject_dml_on_immutable, lambda f, s: f("p", s, tuned._emu.server._context)),
        ):
            got, want = call(f, sql), call(inspect.unwrap(f), sql)
            got, want = _comparable(got), _comparable(want)
            assert got == want, (f.__name__, sql[:200])
    assert engine_mod._peek("SELECT 1; SELECT 2") is exp.Block


def test_identity_rewrites_answer_as_the_originals(tuned):
    from bqemulator.scripting import interpreter
    from bqemulator.sql import translator

    for rewrite in (
        translator.rewrite_create_table_schema_ctas,
        translator.rewrite_timestamp_iso_helpers,
        translator.rewrite_unnest_struct,
    ):
        changed = short = 0
        for sql in STATEMENTS:
            got, want = rewrite(sql), inspect.unwrap(rewrite)(sql)
            assert got == want, (rewrite.__name__, sql[:200])
            changed += got != sql
            short += rewrite._unchanged(sql) is not None
        # each rewrites some statement (through the original) and is answered early for others
        assert changed >= 1 and short >= 1, rewrite.__name__

    rewrite = interpreter._rewrite_vars_to_params
    answered = {True: 0, False: 0}
    rewritten = 0
    declared = {m: "v" for script in _layers() for m in re.findall(r"(?i)\bDECLARE\s+(\w+)", script)}
    assert declared  # the layers' own script variables
    for visible in ({}, {"y": 2}, {"x": {"f": 1}}, {"x": 5}, {"unused_name": "v"}, {"a": 1, "Y": 3}, declared):
        frames = _frames(visible)
        for sql in STATEMENTS + ["SELECT x.f AS v, y FROM ds.t", "SELECT x.g FROM ds.t", "SELECT y + 1 AS z"]:
            got, want = rewrite(sql, frames), inspect.unwrap(rewrite)(sql, frames)
            assert got == want, (visible, sql[:200])
            answered[rewrite._unchanged(sql, frames) is not None] += 1
            rewritten += got[0] != sql
    assert answered[True] and answered[False] and rewritten  # both ways taken, and real rewrites seen
    assert rewrite("SELECT y + 1 AS z", _frames({"y": 2}))[1] == [2]


def _frames(values: dict):
    """A script's variable frames holding ``values`` (name -> value)."""
    from bqemulator.scripting.frames import FrameStack

    frames = FrameStack()
    frames.push("root")
    for name, value in values.items():
        type_name = "STRUCT" if isinstance(value, dict) else ("INT64" if isinstance(value, int) else "STRING")
        frames.declare(name, type_name, value)
    return frames


def test_table_refs_memo_answers_as_the_original(tuned):
    from bqemulator.domain.errors import ValidationError
    from bqemulator.sql import table_rewriter
    from bqemulator.sql.translator import SQLTranslator

    memo = table_rewriter.rewrite_table_refs
    original = memo._original
    tr = SQLTranslator()
    for sql in STATEMENTS:
        result = tr.translate(sql)
        duck = result.value if hasattr(result, "value") else None
        if not isinstance(duck, str):
            continue
        for _ in range(2):  # the second answer comes from the memo
            assert memo(duck, LOCAL_PROJECT) == original(duck, LOCAL_PROJECT)
    with pytest.raises(ValidationError):  # an error is raised every time, never memoized
        original('SELECT * FROM "b@d".t', LOCAL_PROJECT)
    for _ in range(2):
        with pytest.raises(ValidationError):
            memo('SELECT * FROM "b@d".t', LOCAL_PROJECT)
