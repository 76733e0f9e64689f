"""Table specs: ``config/tables/<table>.yaml`` -> validated, typed :class:`TableSpec`.

A bad spec is refused before anything is rendered, run or deployed. Every refusal is a
:class:`SpecError` naming the file, the field path inside it and what was expected, e.g.::

    config/tables/orders.yaml:12: key[0]: 'order_no' is not a column; expected one of: order_id, ...

(``file:line:`` when the line is known, i.e. for specs read from a file.) The YAML is read
strictly by :mod:`pipeline_sql.yamlload`: duplicate keys, bytes that are not UTF-8 and YAML 1.1's
unquoted booleans and nulls (``no``, ``on``, ``~``) where text is expected are refused with the
line and a hint to quote them.

Identifiers (table, column and derived names) are validated here, matched in full, so that
nothing in the rendered SQL can be injected through a name; names GoogleSQL reserves and names the
embedded engine cannot read unquoted (:data:`pipeline_sql.spec_checks.ENGINE_KEYWORDS`) are
refused. A column may also carry the spec-evolution fields ``renamed_from`` (former names: the
archive keeps its first), ``required`` (landed files must carry it) and ``dropped`` (kept in the
archive only); see :mod:`pipeline_sql.evolution`. Transform expressions and ``expression`` checks
are the spec author's own BigQuery SQL, rendered as given after
:func:`pipeline_sql.spec_checks.check_expression` parsed them (one expression, only this table's
columns, no subquery). Schedules are parsed by :func:`pipeline_sql.spec_checks.parse_schedule`.

The fields a spec may have are declared once, in :data:`SPEC_FIELDS`: the parser takes each
mapping's required and optional fields from it, and :mod:`pipeline_sql.specschema` generates the
JSON Schema (``config/spec.schema.json``) from it. To add a field: add a :class:`FieldDef` there,
parse it in :func:`parse_spec`, regenerate the schema (``python -m pipeline_sql schema``).
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .spec_checks import (
    ENGINE_KEYWORDS,
    SpecValueError,
    check_expression,
    check_schedule_bounds,
    parse_schedule,
)
from .yamlload import YamlDocument, YamlProblem, implicit_hint, load_yaml_document

#: Declared types a column or a derived column may have (BigQuery standard SQL names).
TYPES = ("STRING", "INT64", "NUMERIC", "FLOAT64", "BOOL", "DATE", "TIMESTAMP")
#: Source file formats the staging layer can load.
FORMATS = ("csv", "json", "parquet")
#: Where a table's files land: the GCS landing bucket or the optional S3 landing bucket.
LOCATIONS = ("gcs", "s3")
GRANULARITIES = ("DAY", "HOUR", "MONTH", "YEAR")
#: Types a DWH table may be partitioned on (BigQuery time-unit column partitioning).
PARTITION_TYPES = ("DATE", "TIMESTAMP")
#: Types ``version_by`` may have (must be orderable).
VERSION_TYPES = ("INT64", "NUMERIC", "FLOAT64", "DATE", "TIMESTAMP", "STRING")


@dataclass(frozen=True)
class CheckRule:
    """One kind of data-quality rule: how its arguments are written in a spec.

    ``args`` is the shape of the value under the rule's key: ``"columns"`` (a column or a list of
    columns: ``{not_null: [a, b]}``), ``"fields"`` (a mapping with ``required``/``optional``
    fields: ``{range: {column: a, min: 0}}``) or ``"expression"`` (one SQL boolean expression).
    ``column_types`` restricts the type of the rule's ``column`` field (None: any type).
    ``row_level``: the rule judges rows (failing rows and sample keys are reported); otherwise it
    judges the table as a whole (an observed value is reported).
    """

    kind: str
    args: str
    required: tuple[str, ...] = ()
    optional: tuple[str, ...] = ()
    column_types: tuple[str, ...] | None = None
    row_level: bool = True
    summary: str = ""
    #: The result can change while the table itself receives nothing new (time passes, another
    #: table changes): a table with such a check runs its checks even when it is up to date.
    judged_when_idle: bool = False


#: The rule kinds a spec's ``checks:`` may use, named as dbt tests / Great Expectations name them.
CHECK_RULES: dict[str, CheckRule] = {
    r.kind: r
    for r in (
        CheckRule("not_null", "columns", summary="no NULL in any of the columns"),
        CheckRule("unique", "columns", summary="no two rows share the columns' values (rows with a NULL in them are ignored)"),
        CheckRule(
            "accepted_values", "fields", ("column", "values"),
            column_types=("STRING", "INT64", "NUMERIC", "BOOL", "DATE"),
            summary="every non-NULL value is one of the listed values",
        ),
        CheckRule(
            "range", "fields", ("column",), ("min", "max"),
            column_types=("INT64", "NUMERIC", "FLOAT64", "DATE", "TIMESTAMP"),
            summary="every non-NULL value lies within [min, max] (inclusive; either bound optional)",
        ),
        CheckRule("regex", "fields", ("column", "pattern"), column_types=("STRING",), summary="every non-NULL value contains a match of the RE2 pattern (anchor with ^...$)"),
        CheckRule(
            "relationships", "fields", ("column", "to"), ("field",),
            summary="every non-NULL value exists in another table's DWH key (`field`: which key column, default its one-column key)",
            judged_when_idle=True,
        ),
        CheckRule(
            "freshness", "fields", ("max_age",), ("column",), column_types=("DATE", "TIMESTAMP"), row_level=False,
            summary="the newest value of `column` (default: version_by when it is a time, else _ingested_at) is at most max_age old at the run's time",
            judged_when_idle=True,
        ),
        CheckRule(
            "row_count", "fields", (), ("min", "max", "max_change"), row_level=False,
            summary="the DWH holds at least min / at most max rows and changed by at most max_change (a fraction) since the previous run",
        ),
        CheckRule("expression", "expression", summary="a boolean SQL expression over the DWH columns is not FALSE on any row"),
    )
}
CHECK_KINDS = tuple(CHECK_RULES)
SEVERITIES = ("error", "warn")
_DURATION = re.compile(r"(\d+) (minute|minutes|hour|hours|day|days)")
_DURATION_MINUTES = {"minute": 1, "hour": 60, "day": 24 * 60}

# matched with fullmatch (``$`` alone would let a trailing newline through); the JSON Schema
# (pipeline_sql.specschema) uses the same patterns
IDENT_PATTERN = r"[A-Za-z_][A-Za-z0-9_]{0,127}"
TABLE_PATTERN = r"[a-z][a-z0-9_]{0,62}"
PATH_PATTERN = r"[A-Za-z0-9_\-./]+/"
_IDENT = re.compile(IDENT_PATTERN)


def json_pattern(pattern: str) -> str:
    """``pattern`` for a JSON Schema, matching in full: ``(?![\\s\\S])`` rather than ``$``,
    which Python's ``re`` (the ``jsonschema`` package's) also matches before a final newline."""
    return f"^(?:{pattern})(?![\\s\\S])"


_TABLE_IDENT = re.compile(TABLE_PATTERN)
_PATH = re.compile(PATH_PATTERN)
#: GoogleSQL reserved keywords: BigQuery accepts them as names only back-quoted, and the
#: rendered SQL does not quote names, so a spec may not use them.
RESERVED_KEYWORDS = frozenset(
    """ALL AND ANY ARRAY AS ASC ASSERT_ROWS_MODIFIED AT BETWEEN BY CASE CAST COLLATE CONTAINS CREATE
    CROSS CUBE CURRENT DEFAULT DEFINE DESC DISTINCT ELSE END ENUM ESCAPE EXCEPT EXCLUDE EXISTS EXTRACT
    FALSE FETCH FOLLOWING FOR FROM FULL GROUP GROUPING GROUPS HASH HAVING IF IGNORE IN INNER INTERSECT
    INTERVAL INTO IS JOIN LATERAL LEFT LIKE LIMIT LOOKUP MERGE NATURAL NEW NO NOT NULL NULLS OF ON OR
    ORDER OUTER OVER PARTITION PRECEDING PROTO QUALIFY RANGE RECURSIVE RESPECT RIGHT ROLLUP ROWS SELECT
    SET SOME STRUCT TABLESAMPLE THEN TO TREAT TRUE UNBOUNDED UNION UNNEST USING WHEN WHERE WINDOW WITH
    WITHIN""".split()
)
#: Column names the pipeline adds itself; a spec may not use them.
RESERVED = ("_row_hash", "_ingested_at", "_batch_id", "_source_file", "_valid", "_through")

# Refusals of specs whose SQL BigQuery would refuse or misread (found with the GoogleSQL analysis
# of pipeline_sql.googlesql and the spec strategy of tests/strategies.py):

#: Types a key column may have. The delta ranks the versions of a key with
#: ``ROW_NUMBER() OVER (PARTITION BY <key>)`` and the archive is clustered by the key; BigQuery
#: refuses both on FLOAT64 ("Partitioning by expressions of type FLOAT64 is not allowed", "CLUSTER
#: BY expression may not be a floating point type"; cluster column types:
#: https://cloud.google.com/bigquery/docs/clustered-tables).
KEY_TYPES = ("STRING", "INT64", "NUMERIC", "BOOL", "DATE", "TIMESTAMP")
#: Types a DWH table may be clustered by (same page: BIGNUMERIC, BOOL, DATE, DATETIME, GEOGRAPHY,
#: INT64, NUMERIC, RANGE, STRING, TIMESTAMP; of the spec's types, all but FLOAT64).
CLUSTER_TYPES = ("STRING", "INT64", "NUMERIC", "BOOL", "DATE", "TIMESTAMP")
#: Names GoogleSQL reads as a function call wherever they stand unqualified: BigQuery calls
#: CURRENT_DATE, CURRENT_DATETIME, CURRENT_TIME and CURRENT_TIMESTAMP without parentheses
#: (https://cloud.google.com/bigquery/docs/reference/standard-sql/date_functions#current_date),
#: so a column of that name is silently replaced by the current date or time.
FUNCTION_NAMES = ("current_date", "current_datetime", "current_time", "current_timestamp")
#: Column-name prefixes BigQuery reserves (any case): it can neither load nor create such a
#: column. https://cloud.google.com/bigquery/docs/schemas#column_names
RESERVED_PREFIXES = ("_TABLE_", "_FILE_", "_PARTITION", "_ROW_TIMESTAMP", "__ROOT__", "_COLIDENTIFIER")
#: The landing layout's hive partition key (``<prefix>/dt=YYYY-MM-DD/``): the staging layer's
#: external table has it as a column after the source columns, and BigQuery refuses two columns
#: of one name (https://cloud.google.com/bigquery/docs/hive-partitioned-queries: "Hive partition
#: keys appear as normal columns"; https://cloud.google.com/bigquery/docs/schemas#column_names).
LANDING_PARTITION_KEY = "dt"
#: Values a check may compare an INT64 / NUMERIC column with (BigQuery's type ranges).
INT64_MIN, INT64_MAX = -(2**63), 2**63 - 1
NUMERIC_LIMIT = 10**29
#: Columns of the ``quality.<t>__rejects`` view after the key columns: a key of the same name
#: would make the view's columns collide ("Duplicate column").
REJECT_COLUMNS = ("column_name", "value", "reason")


def schedule_minutes(schedule: str) -> int:
    """Nominal minutes between two runs of a schedule string (``every 2 hours`` -> 120,
    ``every day 03:00`` -> 1440, ``every monday`` -> 10080); ValueError for anything else
    (including an invalid time of day such as ``every day 25:00``)."""
    try:
        return parse_schedule(schedule).every
    except SpecValueError as e:
        raise ValueError(f"schedule {schedule!r}: {e}") from None


class SpecError(ValueError):
    """A table spec that cannot be used: names the file, the field path and what was expected,
    and the line of the field when it is known (``file:line: field: message``)."""

    def __init__(self, file: str | Path, field_path: str, message: str, line: int | None = None):
        self.file = str(file)
        self.field = field_path
        self.reason = message
        self.line = line
        where = f"{self.file}:{line}" if line else self.file
        super().__init__(f"{where}: {field_path}: {message}")


@dataclass(frozen=True)
class SourceSpec:
    format: str
    path: str
    location: str = "gcs"
    #: csv only: the field delimiter.
    delimiter: str = ","


#: BigQuery keeps column descriptions of at most 1,024 characters (TableFieldSchema.description)
#: and table descriptions of at most 16,384; the pipeline appends what each layer's table holds
#: (under 400 characters) to the spec's table description, hence 16,000.
MAX_COLUMN_DESCRIPTION = 1024
MAX_TABLE_DESCRIPTION = 16000


@dataclass(frozen=True)
class Column:
    source: str
    name: str
    type: str
    description: str = ""
    #: the column's former names, newest first (``renamed_from: old`` or a list): the archive keeps
    #: the column under its first name (:attr:`archive_name`), so a rename rewrites no history
    renamed_from: tuple[str, ...] = ()
    #: a landed file must carry it (key columns always must); else a file without it loads NULL
    required: bool = False
    #: no longer loaded nor in the DWH; the archive keeps its column and values (``dropped: true``)
    dropped: bool = False

    @property
    def archive_name(self) -> str:
        """The archive's column: the column's first name (it never changes once archived)."""
        return self.renamed_from[-1] if self.renamed_from else self.name


@dataclass(frozen=True)
class Derived:
    name: str
    type: str
    expr: str
    description: str = ""


@dataclass(frozen=True)
class Partition:
    column: str
    granularity: str = "DAY"


@dataclass(frozen=True)
class DwhSpec:
    partition_by: Partition | None = None
    cluster_by: tuple[str, ...] = ()


@dataclass(frozen=True)
class Check:
    """One data-quality rule of a spec, validated. ``params`` holds the rule's other arguments
    as sorted ``(name, value)`` pairs (values normalized: ``max_age`` in minutes, ``values`` a
    tuple, numbers as given); read them with :meth:`param`."""

    kind: str  # one of CHECK_KINDS
    columns: tuple[str, ...] = ()
    severity: str = "error"  # one of SEVERITIES
    params: tuple[tuple[str, Any], ...] = ()

    def param(self, name: str, default: Any = None) -> Any:
        return dict(self.params).get(name, default)

    @property
    def rule(self) -> CheckRule:
        return CHECK_RULES[self.kind]

    @property
    def ref_table(self) -> str | None:
        """``relationships``: the table whose DWH key the column must exist in (else None)."""
        return self.param("to")

    @property
    def ref_column(self) -> str | None:
        """``relationships``: the referenced key column (resolved by :func:`load_specs`)."""
        return self.param("field")

    @property
    def name(self) -> str:
        """Unique within a table; the name results are recorded and failures reported under."""
        if self.kind == "expression":
            return f"expression({self.param('expr')})"
        if self.kind == "relationships":
            field = f".{self.ref_column}" if self.ref_column else ""
            return f"relationships({self.columns[0]} -> {self.ref_table}{field})"
        if not self.columns:
            return self.kind
        return f"{self.kind}({', '.join(self.columns)})"


@dataclass(frozen=True)
class TableSpec:
    table: str
    source: SourceSpec
    key: tuple[str, ...]
    columns: tuple[Column, ...]
    version_by: str | None = None
    transform: tuple[Derived, ...] = ()
    dwh: DwhSpec = field(default_factory=DwhSpec)
    checks: tuple[Check, ...] = ()
    schedule: str = "every 24 hours"
    file: str = ""
    #: what the table holds (BigQuery table descriptions); columns carry their own
    description: str = ""
    #: columns declared ``dropped: true``: not loaded, not in the DWH, kept in the archive
    dropped: tuple[Column, ...] = ()
    #: every declared column, dropped ones included, in the spec's order (the archive's columns)
    declared: tuple[Column, ...] = ()

    def column(self, name: str) -> Column:
        for c in self.columns:
            if c.name == name:
                return c
        raise KeyError(name)

    def must_load(self, col: Column) -> bool:
        """A landed file must carry this column (a key column, or one declared ``required``)."""
        return col.required or col.name in self.key

    @property
    def archive_columns(self) -> tuple[Column, ...]:
        """Every column the archive holds, dropped ones included, in the spec's order."""
        return self.declared or self.columns + self.dropped

    @property
    def column_names(self) -> tuple[str, ...]:
        return tuple(c.name for c in self.columns)

    @property
    def dwh_columns(self) -> tuple[tuple[str, str], ...]:
        """(name, type) of the business columns of the DWH table: typed columns then derived."""
        return tuple((c.name, c.type) for c in self.columns) + tuple(
            (d.name, d.type) for d in self.transform
        )


# --------------------------------------------------------------------------- the fields


@dataclass(frozen=True)
class FieldDef:
    """One field of a spec mapping: its name, whether it is required, the JSON Schema of its
    value (``{"$ref": "#/$defs/<name>"}`` for the shared definitions of
    :mod:`pipeline_sql.specschema`) and what it means (the schema's description)."""

    name: str
    schema: dict
    required: bool = False
    doc: str = ""


def _ref(name: str) -> dict:
    return {"$ref": f"#/$defs/{name}"}


def _list_of(schema: dict, min_items: int = 0) -> dict:
    return {"type": "array", "items": schema, **({"minItems": min_items} if min_items else {})}


#: Every mapping of a spec and its fields: the parser's required/optional fields and the JSON
#: Schema both come from here (one source of truth). Keys: "spec" (the top level), then the
#: nested mappings by the name their ``$defs`` entry has in the schema.
SPEC_FIELDS: dict[str, tuple[FieldDef, ...]] = {
    "spec": (
        FieldDef("table", _ref("table_name"), True, "the table's name; the file must be <table>.yaml"),
        FieldDef("description", {"type": "string", "maxLength": MAX_TABLE_DESCRIPTION}, doc="what the table holds (BigQuery table descriptions)"),
        FieldDef("source", _ref("source"), True, "where the table's files land and their format"),
        FieldDef("key", {"oneOf": [_ref("identifier"), _list_of(_ref("identifier"), 1)]}, True, "the business key: one column or a list (target names)"),
        FieldDef("version_by", _ref("identifier"), doc="the column that orders the versions of a key (newest wins)"),
        FieldDef("columns", _list_of(_ref("column"), 1), True, "source column -> target name and declared type"),
        FieldDef("transform", {"type": ["array", "null"], "items": _ref("derived")}, doc="derived DWH columns: BigQuery expressions over the typed columns"),
        FieldDef("dwh", {"oneOf": [_ref("dwh"), {"type": "null"}]}, doc="partitioning and clustering of the DWH table"),
        FieldDef("checks", {"type": ["array", "null"], "items": _ref("check")}, doc="data-quality rules run on the DWH after each run"),
        FieldDef("schedule", _ref("schedule"), doc="when the table's layers run (UTC); default 'every 24 hours'"),
    ),
    "source": (
        FieldDef("format", {"enum": list(FORMATS)}, True, "file format: csv, json (newline-delimited) or parquet"),
        FieldDef("path", {"type": "string", "pattern": json_pattern(PATH_PATTERN)}, True, "folder under the landing bucket, ending in '/'"),
        FieldDef("location", {"enum": list(LOCATIONS)}, doc="which landing bucket: gcs (default) or s3"),
        FieldDef("delimiter", {"type": "string", "minLength": 1, "maxLength": 1}, doc="csv only: the field delimiter (default ',')"),
    ),
    "column": (
        FieldDef("source", _ref("identifier"), True, "the column's name in the landed files"),
        FieldDef("name", _ref("identifier"), True, "the column's name from the archive on"),
        FieldDef("type", _ref("type"), True, "the declared type"),
        FieldDef("description", {"type": "string", "maxLength": MAX_COLUMN_DESCRIPTION}, doc="what the column holds"),
        # spec evolution (pipeline_sql.evolution)
        FieldDef(
            "renamed_from",
            {"oneOf": [_ref("identifier"), _list_of(_ref("identifier"))]},
            doc="former name(s) of the column, newest first: the archive keeps its first name",
        ),
        FieldDef("required", {"type": "boolean"}, doc="landed files must carry the column (default false)"),
        FieldDef("dropped", {"type": "boolean"}, doc="no longer loaded; kept in the archive only (default false)"),
    ),
    "derived": (
        FieldDef("name", _ref("identifier"), True, "the derived column's name"),
        FieldDef("type", _ref("type"), True, "its type (the expression is cast to it)"),
        FieldDef("expr", {"type": "string", "minLength": 1}, True, "one BigQuery expression over the typed columns"),
        FieldDef("description", {"type": "string", "maxLength": MAX_COLUMN_DESCRIPTION}, doc="what the column holds"),
    ),
    "dwh": (
        FieldDef("partition_by", {"oneOf": [_ref("partition_by"), {"type": "null"}]}, doc="time-unit partitioning of the DWH table"),
        FieldDef("cluster_by", {"type": ["array", "null"], "items": _ref("identifier"), "maxItems": 4}, doc="up to 4 clustering columns"),
    ),
    "partition_by": (
        FieldDef("column", _ref("identifier"), True, "a DATE or TIMESTAMP column"),
        FieldDef("granularity", {"enum": list(GRANULARITIES)}, doc="DAY (default), HOUR, MONTH or YEAR"),
    ),
}


def fields_of(mapping: str) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """(required, optional) field names of one of :data:`SPEC_FIELDS`' mappings."""
    defs = SPEC_FIELDS[mapping]
    return tuple(f.name for f in defs if f.required), tuple(f.name for f in defs if not f.required)


# --------------------------------------------------------------------------- parsing helpers


class _Ctx:
    def __init__(self, file: str, doc: YamlDocument | None = None):
        self.file = file
        self.doc = doc

    def fail(self, path: str, message: str) -> SpecError:
        """A SpecError at ``path``, with its line when the spec was read from a file and, when
        the value there was an unquoted YAML 1.1 boolean or null (``no``, ``~``), the hint."""
        line = None
        if self.doc is not None:
            line = self.doc.line_of(path)
            text = self.doc.implicit.get(path)
            if text is not None:
                message = f"{message} ({implicit_hint(text)})"
        return SpecError(self.file, path, message, line)

    def value_error(self, path: str, e: SpecValueError) -> SpecError:
        return self.fail(path, str(e))

    def mapping(self, value: Any, path: str, required: tuple[str, ...], optional: tuple[str, ...] = ()) -> dict:
        if not isinstance(value, dict):
            raise self.fail(path or "(top level)", f"expected a mapping, got {_kind(value)}")
        allowed = required + optional
        for k in value:
            if k not in allowed:
                raise self.fail(_join(path, str(k)), f"unknown field; expected one of: {', '.join(allowed)}")
        for k in required:
            if k not in value or value[k] is None:
                raise self.fail(_join(path, k), "missing required field")
        return value

    def string(self, value: Any, path: str) -> str:
        if not isinstance(value, str) or not value.strip():
            raise self.fail(path, f"expected a non-empty string, got {_kind(value)}")
        return value

    def ident(self, value: Any, path: str, pattern: re.Pattern = _IDENT) -> str:
        s = self.string(value, path)
        if not pattern.fullmatch(s):
            what = (
                "lower-case letters, digits and _ (starting with a letter, at most 63 characters)"
                if pattern is _TABLE_IDENT
                else "letters, digits and _ (not starting with a digit, at most 128 characters)"
            )
            raise self.fail(path, f"{s!r} is not a valid identifier; expected {what}")
        if s.upper() in RESERVED_KEYWORDS:
            raise self.fail(path, f"{s!r} is a reserved keyword in BigQuery SQL; expected another name (e.g. {s.lower()}_value)")
        if s.lower() in ENGINE_KEYWORDS:
            raise self.fail(
                path,
                f"{s!r} is a keyword of the embedded engine's SQL (DuckDB, through bqemulator), which cannot read it as a name; "
                f"expected another name (e.g. {s.lower()}_value)",
            )
        if s.lower() in FUNCTION_NAMES:
            raise self.fail(
                path,
                f"{s!r} reads as the function {s.upper()}() in BigQuery SQL, not as a column; expected another name (e.g. {s.lower()}_value)",
            )
        return s

    def column_name(self, value: Any, path: str, table: str) -> str:
        """A source, target or derived column name: an identifier that is not the table's name
        (BigQuery's implicit alias of ``project.dataset.<table>`` is ``<table>``, and an unqualified
        name equal to it reads as the table's whole row, not as the column)."""
        s = self.ident(value, path)
        if s.lower() == table.lower():
            raise self.fail(
                path,
                f"{s!r} is the table's name, which BigQuery SQL reads as the whole row of the table, not as a column; "
                f"expected another name (e.g. {s.lower()}_value)",
            )
        return s

    def choice(self, value: Any, path: str, choices: tuple[str, ...], upper: bool = False) -> str:
        s = self.string(value, path)
        norm = s.upper() if upper else s.lower()
        if norm not in choices:
            raise self.fail(path, f"{s!r} is not supported; expected one of: {', '.join(choices)}")
        return norm

    def description(self, value: Any, path: str, limit: int) -> str:
        """Optional free text (a BigQuery description): a string of at most ``limit`` chars."""
        if value is None:
            return ""
        if not isinstance(value, str):
            raise self.fail(path, f"expected text, got {_kind(value)}")
        text = value.strip()
        if len(text) > limit:
            raise self.fail(path, f"{len(text)} characters; BigQuery keeps descriptions of at most {limit}")
        return text

    def seq(self, value: Any, path: str, nonempty: bool = True) -> list:
        if isinstance(value, str):
            value = [value]
        if not isinstance(value, list) or (nonempty and not value):
            raise self.fail(path, f"expected a {'non-empty ' if nonempty else ''}list, got {_kind(value)}")
        return value


def _kind(v: Any) -> str:
    if v is None:
        return "nothing"
    if isinstance(v, str):
        return f"{v!r}" if v.strip() else "an empty string"
    if isinstance(v, bool):
        return f"{v}"
    if isinstance(v, (int, float)):
        return f"the number {v}"
    return f"a {type(v).__name__}"


def _latin1(ch: str) -> bool:
    try:
        ch.encode("latin-1")
    except UnicodeEncodeError:
        return False
    return True


def _join(path: str, part: str) -> str:
    return f"{path}.{part}" if path else part


# --------------------------------------------------------------------------- the parser


def parse_spec(data: Any, file: str = "<spec>", doc: YamlDocument | None = None) -> TableSpec:
    """Validate a parsed YAML document and return the :class:`TableSpec` it describes. ``doc``
    (from :func:`pipeline_sql.yamlload.load_yaml_document`) adds lines and YAML hints to errors."""
    c = _Ctx(file, doc)
    top = c.mapping(data, "", *fields_of("spec"))
    table = c.ident(top["table"], "table", _TABLE_IDENT)
    if file not in ("<spec>", "") and Path(file).stem != table:
        raise c.fail("table", f"{table!r} does not match the file name; expected {Path(file).stem!r}")

    src = c.mapping(top["source"], "source", *fields_of("source"))
    fmt = c.choice(src["format"], "source.format", FORMATS)
    path = c.string(src["path"], "source.path")
    if not _PATH.fullmatch(path) or ".." in path.split("/") or path.startswith("/"):
        raise c.fail("source.path", f"{path!r} is not a relative folder; expected letters, digits, _-./ ending in '/', e.g. 'customers/'")
    location = c.choice(src.get("location", "gcs"), "source.location", LOCATIONS)
    delimiter = src.get("delimiter", ",")
    if not isinstance(delimiter, str) or len(delimiter) != 1 or delimiter in "\"'\n\r\\":
        raise c.fail("source.delimiter", f"expected one character (not a quote, backslash or newline), got {_kind(delimiter)}")
    if not _latin1(delimiter):
        # BigQuery encodes the field delimiter in ISO-8859-1 and splits on its first byte:
        # https://cloud.google.com/bigquery/docs/reference/rest/v2/Job#JobConfigurationLoad (fieldDelimiter)
        raise c.fail("source.delimiter", f"{delimiter!r} is not an ISO-8859-1 character, which BigQuery requires of a CSV delimiter; expected e.g. ',', ';', '|' or a tab")
    if delimiter != "," and fmt != "csv":
        raise c.fail("source.delimiter", f"only applies to csv sources, this source is {fmt}")
    source = SourceSpec(format=fmt, path=path, location=location, delimiter=delimiter)

    columns: list[Column] = []
    seen_targets: dict[str, str] = {}
    seen_sources: dict[str, str] = {}
    for i, col in enumerate(c.seq(top["columns"], "columns")):
        p = f"columns[{i}]"
        m = c.mapping(col, p, *fields_of("column"))
        s = c.column_name(m["source"], f"{p}.source", table)
        reserved_prefix = next((x for x in RESERVED_PREFIXES if s.upper().startswith(x)), None)
        if reserved_prefix:
            raise c.fail(
                f"{p}.source",
                f"{s!r} starts with {reserved_prefix}, a column-name prefix BigQuery reserves (it cannot load such a column); "
                "expected the file's column under another name",
            )
        if s.lower() == LANDING_PARTITION_KEY:
            raise c.fail(
                f"{p}.source",
                f"{s!r} is the landing layout's partition key (<path>/dt=YYYY-MM-DD/), which BigQuery reads as a column "
                "of its own; expected the file's column under another name",
            )
        n = c.column_name(m["name"], f"{p}.name", table)
        t = c.choice(m["type"], f"{p}.type", TYPES, upper=True)
        renamed_from, required, dropped = _evolution_fields(c, m, p, table, n)
        if n.lower() in RESERVED or n.startswith("_"):
            raise c.fail(f"{p}.name", f"{n!r} is reserved for the pipeline; expected a name not starting with '_'")
        if n.lower() in seen_targets:
            raise c.fail(f"{p}.name", f"duplicate target name {n!r} (also {seen_targets[n.lower()]}); expected unique names")
        if s.lower() in seen_sources:
            raise c.fail(f"{p}.source", f"duplicate source column {s!r} (also {seen_sources[s.lower()]}); expected each source column once")
        seen_targets[n.lower()] = f"{p}.name"
        seen_sources[s.lower()] = f"{p}.source"
        columns.append(Column(source=s, name=n, type=t, description=c.description(m.get("description"), f"{p}.description", MAX_COLUMN_DESCRIPTION),
                              renamed_from=renamed_from, required=required, dropped=dropped))
    _check_archive_names(c, columns)
    declared = tuple(columns)
    dropped_columns = tuple(col for col in columns if col.dropped)
    columns = [col for col in columns if not col.dropped]
    if not columns:
        raise c.fail("columns", "every column is dropped; expected at least one column that is loaded")
    names = [col.name for col in columns]

    def must_be_column(value: Any, path: str) -> str:
        n = c.ident(value, path)
        if n not in names:
            raise c.fail(path, f"{n!r} is not a column; expected one of: {', '.join(names)}")
        return n

    key = tuple(must_be_column(k, f"key[{i}]") for i, k in enumerate(c.seq(top["key"], "key")))
    if len(set(key)) != len(key):
        raise c.fail("key", "a column appears twice; expected distinct key columns")
    for i, k in enumerate(key):
        ktype = next(col.type for col in columns if col.name == k)
        if ktype not in KEY_TYPES:
            raise c.fail(
                f"key[{i}]",
                f"{k!r} is {ktype}; BigQuery cannot partition a window or cluster a table by {ktype} "
                f"(the delta ranks versions per key, the archive is clustered by key); expected a column of type {', '.join(KEY_TYPES)}",
            )
        if k.lower() in REJECT_COLUMNS:
            raise c.fail(
                f"key[{i}]",
                f"{k!r} collides with the column {k.lower()!r} of the rejects view {table}__rejects "
                f"(key columns, then {', '.join(REJECT_COLUMNS)}); expected a key column of another name",
            )

    version_by = None
    if top.get("version_by") is not None:
        version_by = must_be_column(top["version_by"], "version_by")
        vtype = next(col.type for col in columns if col.name == version_by)
        if vtype not in VERSION_TYPES:
            raise c.fail("version_by", f"{version_by!r} is {vtype}; expected a column of type {', '.join(VERSION_TYPES)}")
        if version_by in key:
            raise c.fail("version_by", f"{version_by!r} is part of the key; expected a non-key column")

    derived: list[Derived] = []
    for i, d in enumerate(c.seq(top.get("transform") or [], "transform", nonempty=False)):
        p = f"transform[{i}]"
        m = c.mapping(d, p, *fields_of("derived"))
        n = c.column_name(m["name"], f"{p}.name", table)
        if n.lower() in seen_targets:
            raise c.fail(f"{p}.name", f"duplicate target name {n!r} (also {seen_targets[n.lower()]}); expected unique names")
        if n.startswith("_"):
            raise c.fail(f"{p}.name", f"{n!r} is reserved for the pipeline; expected a name not starting with '_'")
        seen_targets[n.lower()] = f"{p}.name"
        t = c.choice(m["type"], f"{p}.type", TYPES, upper=True)
        e = c.string(m["expr"], f"{p}.expr")
        try:
            # derived columns are computed from the typed columns (render_transform), not from
            # each other
            check_expression(e, [col.name for col in columns], "the typed columns (columns[].name)")
        except SpecValueError as err:
            raise c.value_error(f"{p}.expr", err) from None
        derived.append(Derived(name=n, type=t, expr=e.strip(), description=c.description(m.get("description"), f"{p}.description", MAX_COLUMN_DESCRIPTION)))
    all_types = {col.name: col.type for col in columns} | {d.name: d.type for d in derived}

    dwh = DwhSpec()
    if top.get("dwh") is not None:
        dm = c.mapping(top["dwh"], "dwh", *fields_of("dwh"))
        part = None
        if dm.get("partition_by") is not None:
            pm = c.mapping(dm["partition_by"], "dwh.partition_by", *fields_of("partition_by"))
            pc = c.ident(pm["column"], "dwh.partition_by.column")
            if pc not in all_types:
                raise c.fail("dwh.partition_by.column", f"{pc!r} is not a column; expected one of: {', '.join(all_types)}")
            if all_types[pc] not in PARTITION_TYPES:
                raise c.fail("dwh.partition_by.column", f"{pc!r} is {all_types[pc]}; expected a DATE or TIMESTAMP column")
            gran = c.choice(pm.get("granularity", "DAY"), "dwh.partition_by.granularity", GRANULARITIES, upper=True)
            if all_types[pc] == "DATE" and gran == "HOUR":
                raise c.fail("dwh.partition_by.granularity", "HOUR needs a TIMESTAMP column; expected DAY, MONTH or YEAR")
            part = Partition(column=pc, granularity=gran)
        cluster: list[str] = []
        for i, cc in enumerate(c.seq(dm.get("cluster_by") or [], "dwh.cluster_by", nonempty=False)):
            n = c.ident(cc, f"dwh.cluster_by[{i}]")
            if n not in all_types:
                raise c.fail(f"dwh.cluster_by[{i}]", f"{n!r} is not a column; expected one of: {', '.join(all_types)}")
            if n in cluster:
                raise c.fail(f"dwh.cluster_by[{i}]", f"{n!r} appears twice; expected distinct columns")
            if all_types[n] not in CLUSTER_TYPES:
                raise c.fail(
                    f"dwh.cluster_by[{i}]",
                    f"{n!r} is {all_types[n]}; BigQuery cannot cluster by {all_types[n]}; expected a column of type {', '.join(CLUSTER_TYPES)}",
                )
            cluster.append(n)
        if len(cluster) > 4:
            raise c.fail("dwh.cluster_by", f"{len(cluster)} columns; BigQuery clusters on at most 4")
        dwh = DwhSpec(partition_by=part, cluster_by=tuple(cluster))

    checks = tuple(
        _parse_check(c, ch, f"checks[{i}]", all_types, version_by)
        for i, ch in enumerate(c.seq(top.get("checks") or [], "checks", nonempty=False))
    )
    seen_checks: dict[str, int] = {}
    for i, ch in enumerate(checks):
        if ch.name in seen_checks:
            raise c.fail(f"checks[{i}]", f"{ch.name} is the same check as checks[{seen_checks[ch.name]}]; expected each check once")
        seen_checks[ch.name] = i

    schedule = top.get("schedule", "every 24 hours")
    schedule = c.string(schedule, "schedule")
    try:
        check_schedule_bounds(parse_schedule(schedule))
    except SpecValueError as err:
        raise c.value_error("schedule", err) from None

    return TableSpec(
        table=table,
        source=source,
        key=key,
        columns=tuple(columns),
        version_by=version_by,
        transform=tuple(derived),
        dwh=dwh,
        checks=checks,
        schedule=schedule,
        file=file,
        description=c.description(top.get("description"), "description", MAX_TABLE_DESCRIPTION),
        dropped=dropped_columns,
        declared=declared,
    )


def _evolution_fields(c: _Ctx, m: dict, p: str, table: str, name: str) -> tuple[tuple[str, ...], bool, bool]:
    """A column's ``renamed_from`` (a former name or a list, newest first), ``required`` and
    ``dropped`` (booleans) fields (see the README's "Changing a spec")."""
    former: list[str] = []
    for i, old in enumerate(c.seq(m.get("renamed_from") or [], f"{p}.renamed_from", nonempty=False)):
        at = f"{p}.renamed_from" if isinstance(m.get("renamed_from"), str) else f"{p}.renamed_from[{i}]"
        o = c.column_name(old, at, table)
        if o.lower() == name.lower() or o.lower() in (f.lower() for f in former):
            raise c.fail(at, f"{o!r} appears twice among the column's names; expected each former name once")
        former.append(o)
    flags = []
    for flag in ("required", "dropped"):
        v = m.get(flag, False)
        if not isinstance(v, bool):
            raise c.fail(f"{p}.{flag}", f"expected true or false, got {_kind(v)}")
        flags.append(v)
    if flags[0] and flags[1]:
        raise c.fail(f"{p}.required", "a dropped column is no longer loaded, so it cannot be required; expected one of required, dropped")
    return tuple(former), flags[0], flags[1]


def _check_archive_names(c: _Ctx, columns: list[Column]) -> None:
    """Every column keeps its own archive column (its first name): a new column may not take
    the name a renamed column still has in the archive."""
    seen: dict[str, int] = {}
    for i, col in enumerate(columns):
        a = col.archive_name.lower()
        if a in seen:
            raise c.fail(
                f"columns[{i}].name" if not col.renamed_from else f"columns[{i}].renamed_from",
                f"the archive keeps columns[{seen[a]}] under {col.archive_name!r} (its first name); "
                "expected another name for this column (a name an archived column had cannot be reused)",
            )
        seen[a] = i


def _parse_check(c: _Ctx, ch: Any, p: str, types: dict[str, str], version_by: str | None) -> Check:
    """One entry of ``checks:``: ``{<rule>: <arguments>[, severity: error|warn]}``."""
    kinds = ", ".join(CHECK_KINDS)
    if not isinstance(ch, dict):
        raise c.fail(p, f"expected a mapping with one of: {kinds} (and optionally severity), got {_kind(ch)}")
    rules = [k for k in ch if k != "severity"]
    if len(rules) != 1:
        raise c.fail(p, f"expected exactly one rule, one of: {kinds} (and optionally severity); got {', '.join(map(str, rules)) or 'none'}")
    kind = rules[0]
    if kind not in CHECK_RULES:
        raise c.fail(f"{p}.{kind}", f"unknown check; expected one of: {kinds}")
    severity = c.choice(ch.get("severity", "error"), f"{p}.severity", SEVERITIES)
    rule, value, at = CHECK_RULES[kind], ch[kind], f"{p}.{kind}"

    def column(v: Any, path: str) -> str:
        n = c.ident(v, path)
        if n not in types:
            raise c.fail(path, f"{n!r} is not a column; expected one of: {', '.join(types)}")
        if rule.column_types is not None and types[n] not in rule.column_types:
            raise c.fail(path, f"{n!r} is {types[n]}; {kind} takes a column of type {', '.join(rule.column_types)}")
        return n

    if rule.args == "columns":
        cols: list[str] = []
        for j, cc in enumerate(c.seq(value, at)):
            n = column(cc, f"{at}[{j}]")
            if n in cols:
                raise c.fail(f"{at}[{j}]", f"{n!r} appears twice; expected distinct columns")
            cols.append(n)
        return Check(kind, tuple(cols), severity)
    if rule.args == "expression":
        expr = c.string(value, at).strip()
        from .schema import DWH_META  # schema imports this module: read at call time

        try:
            # the checks read the DWH table: its business columns and the pipeline's own
            check_expression(expr, list(types) + [n for n, _ in DWH_META], "the DWH columns")
        except SpecValueError as err:
            raise c.value_error(at, err) from None
        return Check(kind, (), severity, (("expr", expr),))

    m = c.mapping(value, at, rule.required, rule.optional)
    params: dict[str, Any] = {}
    cols = ()
    if "column" in m:
        cols = (column(m["column"], f"{at}.column"),)
    typ = types[cols[0]] if cols else None
    for name, v in m.items():
        path = f"{at}.{name}"
        if name == "column":
            continue
        if name == "values":
            vals = [_literal(c, x, typ, f"{path}[{j}]") for j, x in enumerate(c.seq(v, path))]
            if len(set(vals)) != len(vals):
                raise c.fail(path, "a value appears twice; expected distinct values")
            params[name] = tuple(vals)
        elif name in ("min", "max") and kind == "range":
            params[name] = _literal(c, v, typ, path)
        elif name in ("min", "max"):  # row_count
            if isinstance(v, bool) or not isinstance(v, int) or v < 0:
                raise c.fail(path, f"expected a whole number of rows >= 0, got {_kind(v)}")
            params[name] = v
        elif name == "max_change":
            if isinstance(v, bool) or not isinstance(v, (int, float)) or not 0 < v:
                raise c.fail(path, f"expected a fraction > 0 (0.5 = at most 50% more or fewer rows than the previous run), got {_kind(v)}")
            params[name] = float(v)
        elif name == "pattern":
            pat = c.string(v, path)
            try:
                re.compile(pat)
            except re.error as e:
                raise c.fail(path, f"{pat!r} is not a valid regular expression: {e}") from None
            if re.search(r"\(\?[=!<]|\\[1-9]", pat):
                raise c.fail(path, f"{pat!r} uses lookaround or a back-reference, which BigQuery's RE2 does not support")
            params[name] = pat
        elif name in ("to", "field"):
            params[name] = c.ident(v, path, _TABLE_IDENT if name == "to" else _IDENT)
        elif name == "max_age":
            d = _DURATION.fullmatch(v.strip()) if isinstance(v, str) else None
            if not d or int(d.group(1)) < 1:
                raise c.fail(path, f"expected a duration such as '30 minutes', '36 hours' or '2 days', got {_kind(v)}")
            params[name] = int(d.group(1)) * _DURATION_MINUTES[d.group(2).rstrip("s")]
    if kind == "range" and "min" not in params and "max" not in params:
        raise c.fail(at, "expected min, max or both")
    if kind == "range" and "min" in params and "max" in params and _sort_key(params["min"], typ) > _sort_key(params["max"], typ):
        raise c.fail(at, f"min {params['min']} is greater than max {params['max']}")
    if kind == "row_count" and not params:
        raise c.fail(at, "expected min, max, max_change or several of them")
    if kind == "row_count" and "min" in params and "max" in params and params["min"] > params["max"]:
        raise c.fail(at, f"min {params['min']} is greater than max {params['max']}")
    if kind == "freshness" and not cols:
        # default: version_by when it is a time, else the DWH's _ingested_at
        cols = (version_by,) if version_by and types[version_by] in ("DATE", "TIMESTAMP") else ("_ingested_at",)
    return Check(kind, cols, severity, tuple(sorted(params.items())))


def _literal(c: _Ctx, v: Any, typ: str | None, path: str) -> Any:
    """A value for a column of type ``typ``, checked: STRING -> str, INT64 -> int, NUMERIC ->
    a decimal string, FLOAT64 -> float, BOOL -> bool, DATE/TIMESTAMP -> ISO string."""
    import datetime as _dt
    from decimal import Decimal, InvalidOperation

    def bad(what: str) -> SpecError:
        return c.fail(path, f"expected {what} for a {typ} column, got {_kind(v)}")

    if typ == "STRING":
        if not isinstance(v, str):
            raise bad("a string")
        return v
    if typ == "BOOL":
        if not isinstance(v, bool):
            raise bad("true or false")
        return v
    if typ == "INT64":
        if isinstance(v, bool) or not isinstance(v, int):
            raise bad("a whole number")
        if not INT64_MIN <= v <= INT64_MAX:
            # BigQuery refuses the literal ("Invalid integer literal")
            raise bad(f"a whole number from {INT64_MIN} to {INT64_MAX}")
        return v
    if typ == "FLOAT64":
        if isinstance(v, bool) or not isinstance(v, (int, float)):
            raise bad("a number")
        if not math.isfinite(float(v)):
            # inf and NaN have no GoogleSQL literal (the SQL would read `inf` as a name)
            raise bad("a finite number")
        return float(v)
    if typ == "NUMERIC":
        if isinstance(v, bool) or not isinstance(v, (int, float, str)):
            raise bad("a number")
        try:
            d = Decimal(str(v))
        except InvalidOperation:
            raise bad("a number") from None
        if not d.is_finite():
            raise bad("a finite number")
        if d.copy_abs() >= NUMERIC_LIMIT:  # copy_abs: exact (abs() rounds to 28 digits)
            # NUMERIC holds 29 digits before the point: BigQuery fails the cast at every run
            # (https://cloud.google.com/bigquery/docs/reference/standard-sql/data-types#decimal_types)
            raise bad("a number with at most 29 digits before the decimal point")
        return format(d, "f")
    if typ == "DATE":
        if isinstance(v, _dt.date) and not isinstance(v, _dt.datetime):
            return v.isoformat()
        if not isinstance(v, str) or not re.fullmatch(r"\d{4}-\d{2}-\d{2}", v):
            raise bad("a date 'YYYY-MM-DD'")
        try:
            _dt.date.fromisoformat(v)
        except ValueError:
            raise bad("a valid date 'YYYY-MM-DD'") from None
        return v
    if typ == "TIMESTAMP":
        if isinstance(v, _dt.datetime):
            v = v.isoformat()
        if not isinstance(v, str):
            raise bad("a UTC time 'YYYY-MM-DD HH:MM:SS'")
        try:
            t = _dt.datetime.fromisoformat(v.replace("Z", "+00:00"))
        except ValueError:
            raise bad("a UTC time 'YYYY-MM-DD HH:MM:SS'") from None
        if t.tzinfo is not None:
            try:
                t = t.astimezone(_dt.timezone.utc).replace(tzinfo=None)
            except OverflowError:
                raise bad("a UTC time within 0001-01-01 and 9999-12-31") from None
        # the year always with 4 digits (strftime writes year 669 as "669", an invalid literal)
        return f"{t.year:04d}-{t.strftime('%m-%d %H:%M:%S.%f')}"
    raise bad("a value")  # pragma: no cover - column_types keeps other types out


def _sort_key(v: Any, typ: str | None) -> Any:
    from decimal import Decimal

    return Decimal(v) if typ == "NUMERIC" else v


def check_references(specs: list[TableSpec]) -> list[TableSpec]:
    """Resolve and validate ``relationships`` checks across specs: ``to`` must be one of them,
    ``field`` one of its key columns (default: its only key column) of the column's type.
    Returns the specs with ``field`` filled in."""
    by_name = {s.table: s for s in specs}
    out = []
    for s in specs:
        checks = list(s.checks)
        for i, ch in enumerate(checks):
            if ch.kind != "relationships":
                continue
            at = f"checks[{i}].relationships"
            other = by_name.get(ch.ref_table)
            if other is None:
                raise SpecError(s.file, f"{at}.to", f"{ch.ref_table!r} is not a table; expected one of: {', '.join(sorted(by_name))}")
            field = ch.ref_column
            if field is None:
                if len(other.key) != 1:
                    raise SpecError(s.file, f"{at}.field", f"missing: {other.table} has a {len(other.key)}-column key; expected one of: {', '.join(other.key)}")
                field = other.key[0]
            elif field not in other.key:
                raise SpecError(s.file, f"{at}.field", f"{field!r} is not a key column of {other.table}; expected one of: {', '.join(other.key)}")
            mine = dict(s.dwh_columns)[ch.columns[0]]
            theirs = dict(other.dwh_columns)[field]
            if mine != theirs:
                raise SpecError(s.file, f"{at}.column", f"{ch.columns[0]!r} is {mine} but {other.table}.{field} is {theirs}; expected the same type")
            params = dict(ch.params, field=field)
            checks[i] = Check(ch.kind, ch.columns, ch.severity, tuple(sorted(params.items())))
        out.append(s if checks == list(s.checks) else _replace(s, checks=tuple(checks)))
    return out


def _replace(spec: TableSpec, **changes: Any) -> TableSpec:
    import dataclasses

    return dataclasses.replace(spec, **changes)


def load_spec(path: str | Path) -> TableSpec:
    """Read and validate one spec file."""
    path = Path(path)
    try:
        doc = load_yaml_document(path)
    except OSError as e:
        raise SpecError(path, "(file)", f"cannot be read: {e.strerror or e}") from e
    except YamlProblem as e:
        if e.field:  # a duplicate key: the field it names
            raise SpecError(path, e.field, e.message, e.line) from None
        err = SpecError(path, f"line {e.line}" if e.line else "(file)", e.message)
        err.line = e.line  # the field already says the line
        raise err from None
    return parse_spec(doc.data, str(path), doc)


def load_specs(config_dir: str | Path = "config/tables", tables: list[str] | None = None) -> list[TableSpec]:
    """Load every ``*.yaml`` spec of a folder, sorted by table name; refuse the first bad one.

    ``tables`` restricts the result to those names (each must exist).
    """
    config_dir = Path(config_dir)
    if not config_dir.is_dir():
        raise SpecError(config_dir, "(folder)", "does not exist; expected a folder of <table>.yaml specs")
    files = sorted(list(config_dir.glob("*.yaml")) + list(config_dir.glob("*.yml")))
    if not files:
        raise SpecError(config_dir, "(folder)", "holds no *.yaml spec; expected at least one table spec")
    specs = [load_spec(f) for f in files]
    by_name: dict[str, TableSpec] = {}
    for s in specs:
        if s.table in by_name:
            raise SpecError(s.file, "table", f"{s.table!r} is also defined in {by_name[s.table].file}")
        by_name[s.table] = s
    specs = check_references(specs)
    by_name = {s.table: s for s in specs}
    if tables:
        missing = [t for t in tables if t not in by_name]
        if missing:
            raise SpecError(config_dir, "(tables)", f"no spec for {', '.join(missing)}; expected one of: {', '.join(sorted(by_name))}")
        return [by_name[t] for t in tables]
    return [by_name[k] for k in sorted(by_name)]
