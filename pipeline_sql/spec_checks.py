"""Strict checks of a spec's free-text fields, kept apart from the parser of :mod:`pipeline_sql.spec`.

Each check returns a parsed value or raises :class:`SpecValueError` with what is wrong and what
was expected; :func:`pipeline_sql.spec.parse_spec` turns that into a :class:`SpecError` naming
the file, the line and the field.

* :func:`parse_schedule`: the schedule grammar flexyboots deploys, a strict subset of BigQuery's
  (Data Transfer Service ``schedule``: the App Engine cron format), with times of day and day
  names checked and the interval bounded: nothing is moved silently to another time.
* :func:`check_expression`: a derived column's or an ``expression`` check's SQL, parsed with
  sqlglot's BigQuery dialect: exactly one expression, no statement separator, no subquery or
  table, no aggregate or analytic function, and every column it names is one the spec declares.
* :data:`ENGINE_KEYWORDS`: names the embedded engine (bqemulator: sqlglot's BigQuery parser,
  then DuckDB) cannot read unquoted, though BigQuery can; the rendered SQL does not quote names,
  so a spec may not use them (``tests/unit/test_spec_strict.py`` probes both engines for them).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Iterable


class SpecValueError(ValueError):
    """A field's value is wrong; the message says what was expected (no file, no field)."""


# --------------------------------------------------------------------------- schedules

WEEKDAYS = ("monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday")
#: BigQuery runs scheduled queries at most every 5 minutes ("The minimum duration between
#: scheduled queries is 5 minutes", https://cloud.google.com/bigquery/docs/scheduling-queries).
#: flexyboots asks for 15: a table's five layers and its checks are six scheduled queries, each
#: offset after the one before, and all six must fit inside one period.
MIN_INTERVAL_MINUTES = 15
#: The longest interval: a week, the period of the weekday form (the staging window of a run
#: spans one interval; for rarer runs use ``every <weekday> HH:MM``).
MAX_INTERVAL_MINUTES = 7 * 24 * 60
SCHEDULE_FORMS = "'every N hours', 'every N minutes', 'every day [HH:MM]' or 'every <weekday> [HH:MM]'"

_INTERVAL = re.compile(r"every (\d+) (minutes|hours)")
_DAILY = re.compile(r"every ([a-z]+(?:,[a-z]+)*)(?: (\S+))?")
_HHMM = re.compile(r"(\d\d):(\d\d)")
_ABBREVIATIONS = {d[:3]: d for d in WEEKDAYS} | {"tues": "tuesday", "thur": "thursday", "thurs": "thursday"}
#: BigQuery forms flexyboots does not deploy (each needs a fixed period between runs)
_OTHER_BIGQUERY_FORMS = re.compile(r".*\b(of|from|to|synchronized|1st|2nd|3rd|\d+th|first|second|third|fourth|fifth)\b.*")


@dataclass(frozen=True)
class Schedule:
    """A parsed schedule: ``every`` minutes between two runs; for a time-of-day schedule the day
    (``day`` or a weekday) and the minute of the day (0 when no time is written)."""

    text: str
    every: int
    day: str | None = None
    minute_of_day: int = 0


def parse_schedule(text: str) -> Schedule:
    """Parse a schedule string (no bounds: see :func:`check_schedule_bounds`)."""
    if not isinstance(text, str):
        raise SpecValueError(f"expected a schedule string, got {text!r}")
    m = _INTERVAL.fullmatch(text)
    if m:
        n = int(m.group(1))
        return Schedule(text, n * (60 if m.group(2) == "hours" else 1))
    m = _DAILY.fullmatch(text)
    if m and not _OTHER_BIGQUERY_FORMS.fullmatch(text):
        days, hhmm = m.group(1), m.group(2)
        if "," in days:
            raise SpecValueError(
                f"{text!r} lists several days; flexyboots runs a table on one fixed period (its staging window spans one); "
                f"expected one day: 'every day HH:MM' or 'every <weekday> HH:MM'"
            )
        if days != "day" and days not in WEEKDAYS:
            hint = f" (write the full name: {_ABBREVIATIONS[days]!r})" if days in _ABBREVIATIONS else ""
            raise SpecValueError(f"{days!r} in {text!r} is not a day{hint}; expected day or one of: {', '.join(WEEKDAYS)}")
        minute = 0
        if hhmm is not None:
            t = _HHMM.fullmatch(hhmm)
            if not t or int(t.group(1)) > 23 or int(t.group(2)) > 59:
                raise SpecValueError(f"{hhmm!r} in {text!r} is not a time of day; expected HH:MM in UTC, from 00:00 to 23:59")
            minute = int(t.group(1)) * 60 + int(t.group(2))
        return Schedule(text, 24 * 60 if days == "day" else 7 * 24 * 60, days, minute)
    if _OTHER_BIGQUERY_FORMS.fullmatch(text):
        raise SpecValueError(
            f"{text!r}: BigQuery's monthly, ranged and synchronized forms are not supported (a table runs on one fixed period); "
            f"expected {SCHEDULE_FORMS}"
        )
    raise SpecValueError(f"{text!r} is not supported; expected {SCHEDULE_FORMS}")


def check_schedule_bounds(s: Schedule) -> None:
    """Refuse an interval shorter than :data:`MIN_INTERVAL_MINUTES` or longer than a week."""
    if s.every < MIN_INTERVAL_MINUTES:
        raise SpecValueError(
            f"{s.text!r} is too frequent; expected at least {MIN_INTERVAL_MINUTES} minutes between runs "
            "(BigQuery allows 5 between scheduled queries; a table's five layers and checks run one after the other in each period)"
        )
    if s.every > MAX_INTERVAL_MINUTES:
        raise SpecValueError(
            f"{s.text!r} is too rare; expected at most {MAX_INTERVAL_MINUTES // 60} hours between runs (or 'every <weekday> HH:MM')"
        )


# --------------------------------------------------------------------------- expressions


def check_expression(expr: str, columns: Iterable[str], where: str) -> tuple[str, ...]:
    """Parse ``expr`` as one BigQuery expression over ``columns`` (matched case-insensitively,
    as BigQuery does); return the columns it references, in order of appearance. ``where`` says
    what the columns are, for the message (e.g. "the typed columns")."""
    import sqlglot
    from sqlglot import exp
    from sqlglot.errors import SqlglotError
    from sqlglot.tokens import TokenType

    dialect = sqlglot.Dialect.get_or_raise("bigquery")
    try:
        tokens = dialect.tokenize(expr)
    except SqlglotError as e:
        raise SpecValueError(f"is not a BigQuery expression: {_first_line(e)}") from None
    if any(t.token_type == TokenType.SEMICOLON for t in tokens):
        raise SpecValueError("';' outside a quoted string ends the statement; expected one expression (a ';' inside quotes is fine)")
    if not tokens:
        raise SpecValueError("is empty; expected a BigQuery expression")
    try:
        (tree,) = dialect.parser().parse_into((exp.Condition,), tokens, expr)
    except SqlglotError as e:
        detail = ""
        for err in getattr(e, "errors", None) or ():
            inner = err.get("description") if isinstance(err, dict) else None
            if inner:
                detail = f": {inner}"
                break
        raise SpecValueError(f"{expr!r} is not exactly one BigQuery expression{detail}") from None
    if tree is None:
        raise SpecValueError("is empty; expected a BigQuery expression")
    for node in tree.walk():
        if isinstance(node, (exp.Query, exp.Subquery, exp.Table)):
            raise SpecValueError("holds a subquery or reads a table; expected an expression over this table's columns only")
        if isinstance(node, exp.Window):
            raise SpecValueError("uses an analytic function (OVER); expected an expression of one row's columns")
        if isinstance(node, exp.AggFunc):
            raise SpecValueError(f"uses the aggregate function {node.sql('bigquery').split('(')[0]}(); expected an expression of one row's columns")
        if isinstance(node, exp.Parameter):
            raise SpecValueError(f"uses the query parameter {node.sql('bigquery')}; expected an expression of this table's columns")
    known = {c.lower(): c for c in columns}
    used: list[str] = []
    for col in tree.find_all(exp.Column):
        if col.table:
            raise SpecValueError(f"names {col.sql('bigquery')!r}, a qualified name; expected an unqualified column of this table: {', '.join(known.values())}")
        name = col.name
        if name.lower() not in known:
            raise SpecValueError(f"{name!r} is not one of {where}; expected one of: {', '.join(known.values())}")
        if known[name.lower()] not in used:
            used.append(known[name.lower()])
    return tuple(used)


def _first_line(e: Exception) -> str:
    return str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__


# --------------------------------------------------------------------------- names

#: Names BigQuery reads as plain identifiers but the embedded engine does not: sqlglot's
#: BigQuery parser (bqemulator's translator) refuses them, or DuckDB's parser does after the
#: translation, in one of the places the rendered SQL puts a column name (select list, cast,
#: WHERE, window, CREATE TABLE, INSERT and MERGE column lists, joins): measured with
#: bqemulator 1.4.0, sqlglot 30.11.0 and duckdb 1.5.5 over DuckDB's keyword list and sqlglot's
#: BigQuery keywords; ``tests/unit/test_spec_strict.py`` re-measures.
ENGINE_KEYWORDS = frozenset(
    """alter anti asof authorization binary check collation concurrently constraint current_user declare
    describe drop freeze glob ilike insert isnull lambda lock notnull offset out overlaps partitioned_by
    pivot pivot_longer pivot_wider positional regexp returning revoke rlike rollback semi show similar
    summarize uncache unique unpack unpivot verbose xor""".split()
)
