"""The spec's data-quality checks as one BigQuery script, and where their results are kept.

Pure, like :mod:`pipeline_sql.render` (which calls :func:`render_checks`). The script is the
same text everywhere it runs: the local runner (embedded engine), the sixth scheduled query of a
table in ``scheduled`` mode, and the checks task of the table's Airflow DAG (which starts that
scheduled query) in ``orchestrated`` mode. Its only parameter is ``@run_time`` (TIMESTAMP), which
BigQuery scheduled queries set to the run's intended time and the runner sets to the start of
its run.

The script has two statements:

1. ``INSERT INTO quality.check_results``: one row per check (run id, table, check, rule,
   columns, severity, passed, failing rows, up to 10 sample keys, observed value, message,
   referenced table, checked_at). Every rule of the spec is evaluated in this one statement, so
   the results of a run are written together or not at all.
2. a ``SELECT`` over the rows just written that calls ``ERROR()`` when an ``error``-severity
   check failed: the run (the runner's layer, the scheduled query, the Airflow task) fails
   *after* its results are kept. The message starts with :data:`FAILURE_MARKER`, which the
   alert policy on BigQuery job errors matches.

Rules (see :data:`pipeline_sql.spec.CHECK_RULES`) are row-level (a ``WHERE`` for the failing
rows: the count and a sample of their DWH keys are kept) or table-level (``freshness``,
``row_count``: the observed value is kept). ``row_count``'s ``max_change`` compares with the
``observed_value`` of the table's previous ``row_count`` result in ``quality.check_results``.
"""

from __future__ import annotations

import datetime as _dt
from typing import Any

from .naming import Naming
from .schema import sql_type
from .sqltext import string_literal
from .spec import Check, TableSpec

#: The ``quality.check_results`` table, shared by every table of an environment.
RESULTS_TABLE = "check_results"
#: (name, type, mode, description) of ``quality.check_results``.
RESULTS_FIELDS: tuple[tuple[str, str, str, str], ...] = (
    ("run_id", "STRING", "REQUIRED", "<table>-<run time, UTC, %Y%m%dT%H%M%SZ>: one pipeline run of one table"),
    ("table_name", "STRING", "REQUIRED", "the table whose DWH was checked"),
    ("check_name", "STRING", "REQUIRED", "the check, unique within its table, e.g. unique(customer_id)"),
    ("rule", "STRING", "REQUIRED", "the rule kind: not_null, unique, accepted_values, range, regex, relationships, freshness, row_count, expression"),
    ("columns", "STRING", "REPEATED", "the checked column(s)"),
    ("severity", "STRING", "REQUIRED", "error (a failure fails the run) or warn (recorded only)"),
    ("passed", "BOOL", "REQUIRED", "the check held"),
    ("failing_rows", "INT64", "NULLABLE", "row-level rules: rows that break the rule (NULL for freshness and row_count)"),
    ("sample_keys", "STRING", "REPEATED", "row-level rules: up to 10 DWH keys of failing rows (key columns joined with ', ')"),
    ("observed_value", "INT64", "NULLABLE", "row_count: rows in the DWH; freshness: age of the newest value in seconds; other rules: rows checked"),
    ("message", "STRING", "NULLABLE", "what was found, for people"),
    ("referenced_table", "STRING", "NULLABLE", "relationships: the table whose DWH key the values must exist in"),
    ("checked_at", "TIMESTAMP", "REQUIRED", "when the result was written"),
)
#: Every error message of a failed check run starts with this (alert policies match it).
FAILURE_MARKER = "flexyboots checks failed"
RUN_ID_FORMAT = "%Y%m%dT%H%M%SZ"
SAMPLE_SIZE = 10


def run_id(table: str, run_time: _dt.datetime) -> str:
    """The run id the checks script records for ``run_time`` (the SQL computes the same)."""
    return f"{table}-{run_time.astimezone(_dt.timezone.utc).strftime(RUN_ID_FORMAT)}"


def run_id_sql(table: str) -> str:
    return f"CONCAT({string_literal(table + '-')}, FORMAT_TIMESTAMP({string_literal(RUN_ID_FORMAT)}, @run_time))"


def literal(value: Any, typ: str) -> str:
    """A BigQuery literal of ``typ`` for a value :mod:`pipeline_sql.spec` normalized."""
    if typ == "STRING":
        return string_literal(value)
    if typ == "BOOL":
        return "TRUE" if value else "FALSE"
    if typ == "INT64":
        return str(int(value))
    if typ == "FLOAT64":
        return repr(float(value))
    if typ == "NUMERIC":  # full precision and scale (plain NUMERIC keeps 3 decimals on the embedded engine)
        return f"CAST({string_literal(str(value))} AS {sql_type('NUMERIC')})"
    if typ == "DATE":
        return f"DATE {string_literal(value)}"
    if typ == "TIMESTAMP":
        return f"TIMESTAMP {string_literal(value + '+00')}"
    raise ValueError(f"no literal for type {typ}")


def _types(spec: TableSpec) -> dict[str, str]:
    return {**dict(spec.dwh_columns), "_ingested_at": "TIMESTAMP"}


def _key_text(spec: TableSpec, alias: str = "") -> str:
    """A failing row's DWH key as text: the key columns joined with ', '."""
    parts = [f"IFNULL(CAST({alias}{k} AS STRING), 'NULL')" for k in spec.key]
    return parts[0] if len(parts) == 1 else "CONCAT(" + ", ', ', ".join(parts) + ")"


def _failing_rows(spec: TableSpec, naming: Naming, check: Check) -> str:
    """The WHERE condition of the rows (of the DWH, alias ``_t``) that break a row-level rule.
    Aliases start with ``_``, which no spec column can: a column named ``t`` would otherwise be
    read in the correlated subqueries, and an expression's ``t`` as the whole row."""
    cols = check.columns
    t = _types(spec)
    if check.kind == "not_null":
        return " OR ".join(f"_t.{c} IS NULL" for c in cols)
    if check.kind == "unique":
        groups = f"SELECT {', '.join(cols)} FROM {naming.ref('dwh', spec.table)} WHERE {' AND '.join(f'{c} IS NOT NULL' for c in cols)} GROUP BY {', '.join(cols)} HAVING COUNT(*) > 1"
        if len(cols) == 1:
            # the same rows as the EXISTS below; an uncorrelated IN reads the table once more,
            # where the embedded engine turns the correlated EXISTS into a join that first
            # collects every distinct value of the table (1M keys: 65-70 -> 35-38 ms)
            return f"_t.{cols[0]} IN ({groups})"
        match = " AND ".join(f"_d.{c} = _t.{c}" for c in cols)
        return f"EXISTS (SELECT 1 FROM ({groups}) AS _d WHERE {match})"
    (c,) = cols if check.kind != "expression" else ("",)
    if check.kind == "accepted_values":
        values = ", ".join(literal(v, t[c]) for v in check.param("values"))
        return f"_t.{c} IS NOT NULL AND _t.{c} NOT IN ({values})"
    if check.kind == "range":
        bounds = []
        if check.param("min") is not None:
            bounds.append(f"_t.{c} < {literal(check.param('min'), t[c])}")
        if check.param("max") is not None:
            bounds.append(f"_t.{c} > {literal(check.param('max'), t[c])}")
        return f"_t.{c} IS NOT NULL AND ({' OR '.join(bounds)})"
    if check.kind == "regex":
        return f"_t.{c} IS NOT NULL AND NOT REGEXP_CONTAINS(_t.{c}, {string_literal(check.param('pattern'))})"
    if check.kind == "relationships":
        other = naming.ref("dwh", check.ref_table)
        return f"_t.{c} IS NOT NULL AND NOT EXISTS (SELECT 1 FROM {other} AS _r WHERE _r.{check.ref_column} = _t.{c})"
    if check.kind == "expression":
        # the spec author's expression, on its own lines (a trailing comment stays harmless);
        # a NULL result does not count as failing (as dbt's expression_is_true)
        return f"NOT (\n      {check.param('expr')}\n    )"
    raise ValueError(f"{check.kind} is not a row-level rule")


def _describe_rows(check: Check) -> str:
    what = {
        "not_null": "with NULL",
        "unique": "sharing their values with another row",
        "accepted_values": "with a value not accepted",
        "range": "out of range",
        "regex": "not matching the pattern",
        "relationships": f"without a match in {check.ref_table}",
        "expression": "where the expression is FALSE",
    }[check.kind]
    return what


def _row_level(spec: TableSpec, naming: Naming, check: Check) -> str:
    dwh = naming.ref("dwh", spec.table)
    where = _failing_rows(spec, naming, check)
    return (
        "  SELECT\n"
        f"    {_head(check)},\n"
        "    COUNT(*) AS failing_rows,\n"
        f"    IFNULL(ARRAY_AGG({_key_text(spec, '_t.')} ORDER BY {', '.join('_t.' + k for k in spec.key)} LIMIT {SAMPLE_SIZE}), ARRAY<STRING>[]) AS sample_keys,\n"
        "    (SELECT n FROM total) AS observed_value,\n"
        f"    CONCAT(CAST(COUNT(*) AS STRING), ' of ', CAST((SELECT n FROM total) AS STRING), {string_literal(' rows ' + _describe_rows(check))}) AS message\n"
        f"  FROM {dwh} AS _t\n"
        f"  WHERE {where}"
    )


def _head(check: Check) -> str:
    cols = ", ".join(string_literal(c) for c in check.columns)
    ref = string_literal(check.ref_table) if check.ref_table else "CAST(NULL AS STRING)"
    return (
        f"{string_literal(check.name)} AS check_name, {string_literal(check.kind)} AS rule, ARRAY<STRING>[{cols}] AS columns, "
        f"{string_literal(check.severity)} AS severity, {ref} AS referenced_table"
    )


def _freshness(spec: TableSpec, naming: Naming, check: Check) -> str:
    (c,) = check.columns
    newest = f"MAX(TIMESTAMP({c}))" if _types(spec)[c] == "DATE" else f"MAX({c})"
    minutes = check.param("max_age")
    return (
        "  SELECT\n"
        f"    {_head(check)},\n"
        "    CAST(NULL AS INT64) AS failing_rows,\n"
        "    ARRAY<STRING>[] AS sample_keys,\n"
        f"    TIMESTAMP_DIFF(@run_time, {newest}, SECOND) AS observed_value,\n"
        f"    IFNULL(CONCAT('newest {c} is ', CAST(TIMESTAMP_DIFF(@run_time, {newest}, MINUTE) AS STRING), ' minutes old (at most {minutes})'), 'no rows') AS message\n"
        f"  FROM {naming.ref('dwh', spec.table)}"
    )


def _freshness_passed(check: Check) -> str:
    return f"observed_value <= {check.param('max_age') * 60}"


def _previous_count(spec: TableSpec, naming: Naming, check: Check) -> str:
    """The table's row count the previous run of this check recorded (NULL: none yet)."""
    return (
        f"(SELECT p.observed_value FROM {naming.ref('quality', RESULTS_TABLE)} AS p "
        f"WHERE p.table_name = {string_literal(spec.table)} AND p.check_name = {string_literal(check.name)} "
        "ORDER BY p.checked_at DESC LIMIT 1)"
    )


def _row_count(spec: TableSpec, naming: Naming, check: Check) -> str:
    previous = _previous_count(spec, naming, check)
    return (
        "  SELECT\n"
        f"    {_head(check)},\n"
        "    CAST(NULL AS INT64) AS failing_rows,\n"
        "    ARRAY<STRING>[] AS sample_keys,\n"
        "    (SELECT n FROM total) AS observed_value,\n"
        f"    CONCAT(CAST((SELECT n FROM total) AS STRING), ' rows, previous run ', IFNULL(CAST({previous} AS STRING), 'none')) AS message"
    )


def _row_count_passed(check: Check, spec: TableSpec, naming: Naming) -> str:
    conds = []
    if check.param("min") is not None:
        conds.append(f"observed_value >= {check.param('min')}")
    if check.param("max") is not None:
        conds.append(f"observed_value <= {check.param('max')}")
    if check.param("max_change") is not None:
        previous = _previous_count(spec, naming, check)
        # no previous run (or an empty table before): nothing to compare with
        conds.append(f"IFNULL(SAFE_DIVIDE(ABS(observed_value - {previous}), {previous}) <= {check.param('max_change')!r}, TRUE)")
    return " AND ".join(conds)


def _passed(spec: TableSpec, naming: Naming, check: Check) -> str:
    """When the result row (``r``) says the check held."""
    if check.kind == "freshness":
        return f"IFNULL({_freshness_passed(check)}, FALSE)"
    if check.kind == "row_count":
        return _row_count_passed(check, spec, naming)
    return "failing_rows = 0"


def render_checks(spec: TableSpec, naming: Naming) -> str:
    """The checks script of one table (see the module docstring): its statements in order."""
    return "".join(render_check_statements(spec, naming))


def render_check_statements(spec: TableSpec, naming: Naming) -> list[str]:
    """The checks script's statements, each ending with ``;\n`` (the first carries the header
    comment). The local runner runs them one at a time: the embedded engine does not hand query
    parameters to the statements of a multi-statement script, BigQuery runs them in this order."""
    header = (
        f"-- flexyboots quality checks for {spec.table}, on {naming.table_id('dwh', spec.table)}: every result is\n"
        f"-- appended to {naming.table_id('quality', RESULTS_TABLE)}, then an error-severity failure fails the run.\n"
    )
    if not spec.checks:
        return [header + "SELECT 'no checks' AS checks;\n"]
    results = naming.ref("quality", RESULTS_TABLE)
    branches, passed = [], []
    for ch in spec.checks:
        if ch.kind == "freshness":
            branches.append(_freshness(spec, naming, ch))
        elif ch.kind == "row_count":
            branches.append(_row_count(spec, naming, ch))
        else:
            branches.append(_row_level(spec, naming, ch))
        passed.append(f"      WHEN {string_literal(ch.name)} THEN {_passed(spec, naming, ch)}")
    cols = ", ".join(name for name, *_ in RESULTS_FIELDS)
    insert = (
        f"INSERT INTO {results} ({cols})\n"
        f"WITH total AS (SELECT COUNT(*) AS n FROM {naming.ref('dwh', spec.table)}),\n"
        "results AS (\n" + "\n  UNION ALL\n".join(branches) + "\n)\n"
        "SELECT\n"
        f"  {run_id_sql(spec.table)} AS run_id,\n"
        f"  {string_literal(spec.table)} AS table_name,\n"
        "  check_name, rule, columns, severity,\n"
        "  CASE check_name\n" + "\n".join(passed) + "\n  END AS passed,\n"
        "  failing_rows, sample_keys, observed_value, message, referenced_table,\n"
        "  CURRENT_TIMESTAMP() AS checked_at\n"
        "FROM results;\n"
    )
    target = naming.table_id("dwh", spec.table)
    assertion = (
        "-- the results are kept; now fail the run when an error-severity check failed\n"
        "SELECT IF(\n"
        "  COUNTIF(severity = 'error' AND NOT passed) = 0,\n"
        "  CONCAT(CAST(COUNTIF(passed) AS STRING), ' passed, ', CAST(COUNTIF(NOT passed) AS STRING), ' warned'),\n"
        f"  ERROR(CONCAT({string_literal(FAILURE_MARKER + ' on ' + target + ': ')},\n"
        "    STRING_AGG(IF(severity = 'error' AND NOT passed, CONCAT(check_name, ': ', IFNULL(message, '')), NULL), '; ' ORDER BY check_name)))\n"
        ") AS checks\n"
        "FROM (\n"
        f"  SELECT severity, passed, check_name, message FROM {results}\n"
        f"  WHERE table_name = {string_literal(spec.table)} AND run_id = {run_id_sql(spec.table)}\n"
        "  QUALIFY checked_at = MAX(checked_at) OVER ()\n"
        ");\n"
    )
    return [header + insert, assertion]


#: Query parameters of :func:`render_check_results` (name, BigQuery type).
CHECK_RESULTS_PARAMS = {
    "run": (("table", "STRING"), ("run_id", "STRING")),
    "history": (("table", "STRING"), ("history", "INT64")),
}


def render_check_results(naming: Naming, of: str) -> str:
    """The runner's read of ``quality.check_results`` for one table: ``of="run"`` one run's
    results (``@run_id``; its latest try), ``of="history"`` the last ``@history`` runs'."""
    ref = naming.ref("quality", RESULTS_TABLE)
    cols = "run_id, check_name, rule, columns, severity, passed, failing_rows, sample_keys, observed_value, message, referenced_table, checked_at"
    if of == "run":
        return f"SELECT {cols} FROM {ref} WHERE table_name = @table AND run_id = @run_id QUALIFY checked_at = MAX(checked_at) OVER ()"
    if of == "history":
        return f"SELECT {cols} FROM {ref} WHERE table_name = @table QUALIFY DENSE_RANK() OVER (ORDER BY checked_at DESC) <= @history"
    raise ValueError(f"unknown check results query {of!r}; expected one of: {', '.join(CHECK_RESULTS_PARAMS)}")
