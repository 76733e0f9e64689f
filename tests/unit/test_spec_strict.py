"""Strict spec reading (issue 8, specs): one test per refusal, message asserted.

YAML (duplicate keys, bytes that are not UTF-8, YAML 1.1's unquoted booleans and nulls where
text is expected, self-referring aliases), identifiers matched in full and checked against both
engines (the names the embedded engine cannot read are measured here with bqemulator's own
translator and DuckDB's parser), schedules (times, day names, forms, bounds), expressions parsed
with sqlglot. Every refusal names the file, the line where it is known, the field and what was
expected.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import yaml

from components.schedule import ScheduleError, layer_schedules
from pipeline_sql.spec import SpecError, load_spec, parse_spec, schedule_minutes
from pipeline_sql.spec_checks import ENGINE_KEYWORDS

REPO = Path(__file__).resolve().parents[2]
SHIPPED = REPO / "config" / "tables" / "customers.yaml"

#: the spec of tests/unit/test_spec.py's base(), as text with known line numbers
SPEC = """\
table: customers
source:
  format: csv
  path: customers/
key: [customer_id]
version_by: updated_at
columns:
  - {source: id, name: customer_id, type: INT64}
  - {source: email, name: email, type: STRING}
  - {source: country, name: country, type: STRING}
  - {source: updated, name: updated_at, type: TIMESTAMP}
transform:
  - {name: email_domain, type: STRING, expr: "LOWER(SPLIT(email, '@')[SAFE_OFFSET(1)])"}
checks:
  - {not_null: [customer_id]}
schedule: every 24 hours
"""


def write(tmp_path: Path, text: str | bytes, name: str = "customers") -> Path:
    p = tmp_path / f"{name}.yaml"
    if isinstance(text, bytes):
        p.write_bytes(text)
    else:
        p.write_text(text, encoding="utf-8")
    return p


def refused(tmp_path: Path, text: str | bytes, field: str, line: int | None, *expected: str) -> SpecError:
    p = write(tmp_path, text)
    with pytest.raises(SpecError) as ei:
        load_spec(p)
    err = ei.value
    msg = str(err)
    assert err.file == str(p) and err.field == field, msg
    assert err.line == line, msg
    # a YAML-level refusal names the line as its field: "file: line 10: ..."
    assert msg.startswith(f"{p}: {field}: " if field.startswith("line ") else f"{p}:{line}: {field}: "), msg
    for e in expected:
        assert e in msg, f"{e!r} not in: {msg}"
    return err


def edit(old: str, new: str) -> str:
    assert SPEC.count(old) == 1, old
    return SPEC.replace(old, new)


def test_the_base_text_is_valid(tmp_path):
    assert load_spec(write(tmp_path, SPEC)).table == "customers"


# --------------------------------------------------------------------------- YAML


def test_duplicate_top_level_key(tmp_path):
    refused(
        tmp_path, SPEC + "key: [email]\n", "key", 17,
        "'key' is written twice in this mapping (first at line 5); expected each key once (YAML would keep only the last one)",
    )


def test_duplicate_key_in_a_flow_mapping(tmp_path):
    text = edit("{source: email, name: email, type: STRING}", "{source: email, name: email, type: STRING, name: mail}")
    refused(tmp_path, text, "columns[1].name", 9, "'name' is written twice in this mapping (first at line 9)")


def test_non_utf8_byte(tmp_path):
    raw = SPEC.encode().replace(b"country, type", b"countr\xe9, type")
    offset = raw.index(b"\xe9")
    refused(
        tmp_path, raw, "line 10", 10,
        f"byte 0xe9 at offset {offset} (line 10, column 35) is not UTF-8; expected a UTF-8 text file",
    )


def test_utf8_byte_order_mark_is_fine(tmp_path):
    assert load_spec(write(tmp_path, b"\xef\xbb\xbf" + SPEC.encode())).table == "customers"


def test_control_character(tmp_path):
    refused(tmp_path, edit("every 24 hours", "every 24\x07hours"), "line 16", 16, "is not allowed in YAML; expected printable text")


def test_unquoted_no_in_a_string_field(tmp_path):
    """The Norway problem: NO (the country code) is a boolean in YAML 1.1."""
    text = SPEC + "  - {accepted_values: {column: country, values: [DE, NO, SE]}}\n"
    text = text.replace("schedule: every 24 hours\n", "") + "schedule: every 24 hours\n"
    refused(
        tmp_path, text, "checks[1].accepted_values.values[1]", 16,
        "expected a string for a STRING column, got False",
        "YAML reads the unquoted NO as a boolean; write it in quotes ('NO') if you mean the text",
    )


def test_unquoted_on_as_a_name(tmp_path):
    refused(
        tmp_path, edit("{source: email, name: email", "{source: on, name: email"), "columns[1].source", 9,
        "expected a non-empty string, got True", "YAML reads the unquoted on as a boolean; write it in quotes ('on')",
    )


def test_unquoted_yes_as_a_key(tmp_path):
    refused(tmp_path, edit("  path: customers/\n", "  path: customers/\n  yes: 1\n"), "source.True", 5, "unknown field", "YAML reads the unquoted yes as a boolean")


def test_tilde_for_a_required_name(tmp_path):
    refused(tmp_path, edit("name: country,", "name: ~,"), "columns[2].name", 10, "missing required field", "YAML reads the unquoted ~ as null; write it in quotes ('~')")


def test_null_for_an_optional_field_means_absent(tmp_path):
    assert load_spec(write(tmp_path, edit("version_by: updated_at", "version_by: ~"))).version_by is None


def test_off_as_a_schedule(tmp_path):
    refused(tmp_path, edit("schedule: every 24 hours", "schedule: off"), "schedule", 16, "expected a non-empty string, got False", "quotes ('off')")


def test_quoted_no_is_text(tmp_path):
    text = SPEC.replace("schedule: every 24 hours\n", "") + "  - {accepted_values: {column: country, values: [DE, 'NO']}}\n"
    spec = load_spec(write(tmp_path, text))
    assert spec.checks[1].param("values") == ("DE", "NO")


def test_alias_to_its_own_container(tmp_path):
    refused(tmp_path, SPEC + "description: &d [*d]\n", "description[0]", 17, "an alias refers to the value that contains it")


def test_deep_nesting(tmp_path):
    """Thousands of levels overflowed PyYAML's recursive composer (RecursionError, or a crash of
    the whole process in libyaml's)."""
    refused(tmp_path, SPEC + "description: " + "[" * 100_000 + "]" * 100_000 + "\n", "line 17", 17, "nests mappings and lists more than 64 levels deep")


def test_deep_nesting_through_aliases(tmp_path):
    chain = "".join(f"x{i}: &a{i} [*a{i - 1}]\n" for i in range(1, 200))
    refused(tmp_path, "x0: &a0 [1]\n" + chain + SPEC, "line 1", 1, "more than 64 levels deep (aliases expanded)")


def test_alias_bomb(tmp_path):
    bomb = "".join(f"x{i}: &a{i} [*a{i - 1}, *a{i - 1}, *a{i - 1}]\n" for i in range(1, 30))
    refused(tmp_path, "x0: &a0 [1, 2, 3]\n" + bomb + SPEC, "line 1", 1, "holds more than 200000 values (aliases expanded)")


def test_errors_name_the_line_of_the_field(tmp_path):
    refused(tmp_path, edit("key: [customer_id]", "key: [customer]"), "key[0]", 5, "'customer' is not a column")
    refused(tmp_path, edit("type: TIMESTAMP", "type: TIME"), "columns[3].type", 11, "'TIME' is not supported")


def test_parse_spec_without_a_file_has_no_line():
    with pytest.raises(SpecError) as ei:
        parse_spec(yaml.safe_load(edit("key: [customer_id]", "key: [nope]")))
    assert ei.value.line is None and str(ei.value).startswith("<spec>: key[0]: ")


# --------------------------------------------------------------------------- names


def test_name_with_a_trailing_newline(tmp_path):
    refused(
        tmp_path, edit("name: country,", 'name: "country\\n",'), "columns[2].name", 10,
        "'country\\n' is not a valid identifier; expected letters, digits and _",
    )


def test_table_name_with_a_trailing_newline(tmp_path):
    refused(tmp_path, edit("table: customers", 'table: "customers\\n"'), "table", 1, "is not a valid identifier")


def test_source_path_with_a_trailing_newline(tmp_path):
    refused(tmp_path, edit("path: customers/", 'path: "customers/\\n"'), "source.path", 4, "is not a relative folder")


@pytest.mark.parametrize("name", ["pivot", "QUALIFY", "show", "lambda"])
def test_names_the_engines_cannot_read(tmp_path, name):
    field = "columns[2].name"
    err = refused(tmp_path, edit("name: country,", f"name: {name},").replace("column: country", f"column: {name}"), field, 10)
    assert "reserved keyword in BigQuery SQL" in err.reason or "keyword of the embedded engine's SQL" in err.reason, err.reason


def test_engine_keywords_are_measured():
    """Every name sqlglot's BigQuery parser (as bqemulator calls it) or DuckDB's parser (after
    bqemulator's translation) cannot read unquoted in one of the rendered SQL's positions, of
    DuckDB's keywords and sqlglot's BigQuery keywords, is refused by the spec parser, and
    ENGINE_KEYWORDS holds no name both read."""
    import duckdb
    from bqemulator.sql.translator import SQLTranslator
    from sqlglot.dialects.bigquery import BigQuery

    from pipeline_sql.spec import FUNCTION_NAMES, RESERVED_KEYWORDS

    con = duckdb.connect()
    # DuckDB's unreserved keywords are plain identifiers in its grammar: only sqlglot's BigQuery
    # parser could refuse one, and it would be one of sqlglot's keywords, which are all probed
    keywords = dict(con.execute("SELECT keyword_name, keyword_category FROM duckdb_keywords()").fetchall())
    names = {k.lower() for k, category in keywords.items() if category != "unreserved"}
    names |= {k.lower() for k in BigQuery.Tokenizer.KEYWORDS if re.fullmatch(r"[A-Za-z_]+", k)}
    names = sorted((names | ENGINE_KEYWORDS) - {n.lower() for n in RESERVED_KEYWORDS} - set(FUNCTION_NAMES))
    translator = SQLTranslator()
    # the places the rendered SQL puts a column name (a name alone in a list reads differently
    # from one among others: each name is probed on its own)
    statements = (
        "SELECT {n}, SAFE_CAST({n} AS INT64) AS {n}_x FROM `p.d.t` WHERE {n} IS NOT NULL QUALIFY ROW_NUMBER() OVER (PARTITION BY {n} ORDER BY {n}) = 1",
        "CREATE TABLE `p.d.t` ({n} STRING, _x INT64)",
        "INSERT INTO `p.d.t` ({n}) SELECT {n} FROM `p.d.s` AS s WHERE s.{n} IS NOT NULL",
        "MERGE `p.d.t` AS t USING `p.d.s` AS s ON t.{n} = s.{n} WHEN MATCHED THEN UPDATE SET {n} = s.{n} WHEN NOT MATCHED THEN INSERT ({n}) VALUES (s.{n})",
        "SELECT TO_HEX(MD5(TO_JSON_STRING([CAST({n} AS STRING)]))) AS h, {n} FROM `p.d.t` GROUP BY {n} HAVING COUNT(*) > 1",
        "CREATE OR REPLACE TABLE `p.d.u` AS SELECT l.{n} AS {n} FROM `p.d.t` AS l LEFT JOIN `p.d.s` AS d ON d.{n} = l.{n}",
    )

    def engines_read(n: str) -> bool:
        for statement in statements:
            result = translator.translate(statement.format(n=n))
            if type(result).__name__ != "Ok":
                return False
            try:
                con.extract_statements(result.value)
            except duckdb.Error:
                return False
        return True

    unread = {n for n in names if not engines_read(n)}
    assert unread, "the probe found nothing: it is broken"
    assert unread <= ENGINE_KEYWORDS, f"refuse these names too (ENGINE_KEYWORDS): {sorted(unread - ENGINE_KEYWORDS)}"
    assert ENGINE_KEYWORDS <= unread, f"the engines read these now; drop them from ENGINE_KEYWORDS: {sorted(ENGINE_KEYWORDS - unread)}"


# --------------------------------------------------------------------------- schedules


@pytest.mark.parametrize(
    "schedule, minutes",
    [("every 15 minutes", 15), ("every 90 minutes", 90), ("every 168 hours", 10080), ("every day 23:59", 1440), ("every sunday 00:07", 10080), ("every friday", 10080)],
)
def test_valid_schedules(tmp_path, schedule, minutes):
    assert load_spec(write(tmp_path, edit("every 24 hours", schedule))).schedule == schedule
    assert schedule_minutes(schedule) == minutes


@pytest.mark.parametrize(
    "schedule, expected",
    [
        ("every day 25:00", "'25:00' in 'every day 25:00' is not a time of day; expected HH:MM in UTC, from 00:00 to 23:59"),
        ("every day 12:61", "'12:61' in 'every day 12:61' is not a time of day"),
        ("every monday 6:00", "'6:00' in 'every monday 6:00' is not a time of day"),
        ("every monday 6am", "'6am' in 'every monday 6am' is not a time of day"),
        ("every mondy 06:00", "'mondy' in 'every mondy 06:00' is not a day; expected day or one of: monday, tuesday, wednesday"),
        ("every mon 06:00", "'mon' in 'every mon 06:00' is not a day (write the full name: 'monday')"),
        ("every monday,wednesday 06:07", "lists several days; flexyboots runs a table on one fixed period"),
        ("1st monday of month 15:30", "BigQuery's monthly, ranged and synchronized forms are not supported"),
        ("every 2 hours from 10:00 to 14:00", "BigQuery's monthly, ranged and synchronized forms are not supported"),
        ("every 10 minutes", "'every 10 minutes' is too frequent; expected at least 15 minutes between runs (BigQuery allows 5"),
        ("every 169 hours", "'every 169 hours' is too rare; expected at most 168 hours between runs"),
    ],
)
def test_refused_schedules(tmp_path, schedule, expected):
    refused(tmp_path, edit("every 24 hours", schedule), "schedule", 16, expected)


def test_schedule_minutes_refuses_an_invalid_time():
    """No caller can move an invalid time to another one (25:00 used to become 01:00)."""
    with pytest.raises(ValueError, match="'25:00' in 'every day 25:00' is not a time of day"):
        schedule_minutes("every day 25:00")
    with pytest.raises(ScheduleError, match="is not a time of day"):
        layer_schedules("every day 25:07", "2024-01-01T02:07:00Z", 5)


# --------------------------------------------------------------------------- expressions


def expr_spec(expr: str) -> str:
    return edit("LOWER(SPLIT(email, '@')[SAFE_OFFSET(1)])", expr.replace('"', '\\"'))


@pytest.mark.parametrize(
    "expr",
    [
        "CONCAT(email, ';')",
        "CONCAT(email, \"; DROP TABLE x\")",
        "IF(country = 'NO', 'Norway', country)  -- a comment; with a semicolon",
        "CASE WHEN EMAIL LIKE '%@%' THEN 'ok' END",
        "FORMAT_TIMESTAMP('%F', updated_at, 'UTC')",
        "CAST(DATE_TRUNC(DATE(updated_at), MONTH) AS STRING)",
    ],
)
def test_valid_expressions(tmp_path, expr):
    assert load_spec(write(tmp_path, expr_spec(expr))).transform[0].expr == expr.strip()


@pytest.mark.parametrize(
    "expr, expected",
    [
        ("(LOWER(email)); DROP TABLE dwh.customers", "';' outside a quoted string ends the statement; expected one expression"),
        ("LOWER(email)) OR (1 = 1", "is not exactly one BigQuery expression"),
        ("email email", "is not exactly one BigQuery expression"),
        ("email FROM dwh.customers", "is not exactly one BigQuery expression"),
        ("(SELECT MAX(email) FROM dwh.customers)", "holds a subquery or reads a table; expected an expression over this table's columns only"),
        ("EXISTS(SELECT 1 FROM dwh.orders)", "holds a subquery or reads a table"),
        ("email IN (SELECT email FROM dwh.customers)", "holds a subquery or reads a table"),
        ("LOWER(mail)", "'mail' is not one of the typed columns (columns[].name); expected one of: customer_id, email, country, updated_at"),
        ("LOWER(customers.email)", "names 'customers.email', a qualified name; expected an unqualified column of this table"),
        ("MAX(email)", "uses the aggregate function MAX(); expected an expression of one row's columns"),
        ("ROW_NUMBER() OVER (ORDER BY email)", "uses an analytic function (OVER)"),
        ("@run_time", "uses the query parameter @run_time"),
        ("-- only a comment", "is empty; expected a BigQuery expression"),
    ],
)
def test_refused_expressions(tmp_path, expr, expected):
    refused(tmp_path, expr_spec(expr), "transform[0].expr", 13, expected)


def test_a_derived_column_cannot_read_another(tmp_path):
    text = edit("checks:\n", "  - {name: domain_upper, type: STRING, expr: UPPER(email_domain)}\nchecks:\n")
    refused(tmp_path, text, "transform[1].expr", 14, "'email_domain' is not one of the typed columns")


def test_check_expression_reads_dwh_columns(tmp_path):
    text = SPEC.replace("schedule: every 24 hours\n", "") + "  - {expression: \"email_domain IS NOT NULL OR _ingested_at IS NULL\"}\n"
    assert load_spec(write(tmp_path, text)).checks[1].param("expr").startswith("email_domain")
    bad = SPEC.replace("schedule: every 24 hours\n", "") + "  - {expression: \"(amount > 0)); SELECT (1\"}\n"
    refused(tmp_path, bad, "checks[1].expression", 16, "';' outside a quoted string ends the statement")
    bad = SPEC.replace("schedule: every 24 hours\n", "") + "  - {expression: \"amount > 0\"}\n"
    refused(tmp_path, bad, "checks[1].expression", 16, "'amount' is not one of the DWH columns")
