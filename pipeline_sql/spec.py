"""Table specs: ``config/tables/<table>.yaml`` -> validated, typed :class:`TableSpec`.

A bad spec is refused before anything is rendered, run or deployed. Every refusal is a
:class:`SpecError` naming the file, the field path inside it and what was expected, e.g.::

    config/tables/orders.yaml: key[0]: 'order_no' is not a column; expected one of: order_id, ...

Identifiers (table, column and derived names) are validated here so that nothing in the
rendered SQL can be injected through a name. Transform expressions are the spec author's own
BigQuery SQL and are rendered as given.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

#: libyaml's safe loader when available (7x faster on 1000 specs), else the pure-Python one
_SafeLoader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)

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
CHECK_KINDS = ("not_null", "unique")

_IDENT = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,127}$")
_TABLE_IDENT = re.compile(r"^[a-z][a-z0-9_]{0,62}$")
_PATH = re.compile(r"^[A-Za-z0-9_\-./]+/$")
_SCHEDULE = re.compile(r"^every \d+ (minutes|hours)$|^every (day|monday|tuesday|wednesday|thursday|friday|saturday|sunday)( \d\d:\d\d)?$")
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


def schedule_minutes(schedule: str) -> int:
    """Nominal minutes between two runs of a schedule string (``every 2 hours`` -> 120,
    ``every day 03:00`` -> 1440, ``every monday`` -> 10080); ValueError for anything else."""
    m = re.match(r"^every (\d+) (minutes|hours)$", schedule)
    if m:
        return int(m.group(1)) * (60 if m.group(2) == "hours" else 1)
    m = re.match(r"^every (day|monday|tuesday|wednesday|thursday|friday|saturday|sunday)( \d\d:\d\d)?$", schedule)
    if m:
        return 24 * 60 if m.group(1) == "day" else 7 * 24 * 60
    raise ValueError(f"schedule {schedule!r}: expected 'every N hours|minutes', 'every day [HH:MM]' or 'every <weekday> [HH:MM]'")


class SpecError(ValueError):
    """A table spec that cannot be used: names the file, the field path and what was expected."""

    def __init__(self, file: str | Path, field_path: str, message: str):
        self.file = str(file)
        self.field = field_path
        self.reason = message
        super().__init__(f"{self.file}: {field_path}: {message}")


@dataclass(frozen=True)
class SourceSpec:
    format: str
    path: str
    location: str = "gcs"
    #: csv only: the field delimiter.
    delimiter: str = ","


@dataclass(frozen=True)
class Column:
    source: str
    name: str
    type: str


@dataclass(frozen=True)
class Derived:
    name: str
    type: str
    expr: str


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
    kind: str  # one of CHECK_KINDS
    columns: tuple[str, ...]

    @property
    def name(self) -> str:
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

    def column(self, name: str) -> Column:
        for c in self.columns:
            if c.name == name:
                return c
        raise KeyError(name)

    @property
    def column_names(self) -> tuple[str, ...]:
        return tuple(c.name for c in self.columns)

    @property
    def dwh_columns(self) -> tuple[tuple[str, str], ...]:
        """(name, type) of the business columns of the DWH table: typed columns then derived."""
        return tuple((c.name, c.type) for c in self.columns) + tuple(
            (d.name, d.type) for d in self.transform
        )


# --------------------------------------------------------------------------- parsing helpers


class _Ctx:
    def __init__(self, file: str):
        self.file = file

    def fail(self, path: str, message: str) -> SpecError:
        return SpecError(self.file, path, message)

    def mapping(self, value: Any, path: str, required: tuple[str, ...], optional: tuple[str, ...]) -> dict:
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
        if not pattern.match(s):
            what = (
                "lower-case letters, digits and _ (starting with a letter, at most 63 characters)"
                if pattern is _TABLE_IDENT
                else "letters, digits and _ (not starting with a digit, at most 128 characters)"
            )
            raise self.fail(path, f"{s!r} is not a valid identifier; expected {what}")
        if s.upper() in RESERVED_KEYWORDS:
            raise self.fail(path, f"{s!r} is a reserved keyword in BigQuery SQL; expected another name (e.g. {s.lower()}_value)")
        return s

    def choice(self, value: Any, path: str, choices: tuple[str, ...], upper: bool = False) -> str:
        s = self.string(value, path)
        norm = s.upper() if upper else s.lower()
        if norm not in choices:
            raise self.fail(path, f"{s!r} is not supported; expected one of: {', '.join(choices)}")
        return norm

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


def _join(path: str, part: str) -> str:
    return f"{path}.{part}" if path else part


# --------------------------------------------------------------------------- the parser


def parse_spec(data: Any, file: str = "<spec>") -> TableSpec:
    """Validate a parsed YAML document and return the :class:`TableSpec` it describes."""
    c = _Ctx(file)
    top = c.mapping(
        data,
        "",
        required=("table", "source", "key", "columns"),
        optional=("version_by", "transform", "dwh", "checks", "schedule", "description"),
    )
    table = c.ident(top["table"], "table", _TABLE_IDENT)
    if file not in ("<spec>", "") and Path(file).stem != table:
        raise c.fail("table", f"{table!r} does not match the file name; expected {Path(file).stem!r}")

    src = c.mapping(top["source"], "source", ("format", "path"), ("location", "delimiter"))
    fmt = c.choice(src["format"], "source.format", FORMATS)
    path = c.string(src["path"], "source.path")
    if not _PATH.match(path) or ".." in path.split("/") or path.startswith("/"):
        raise c.fail("source.path", f"{path!r} is not a relative folder; expected letters, digits, _-./ ending in '/', e.g. 'customers/'")
    location = c.choice(src.get("location", "gcs"), "source.location", LOCATIONS)
    delimiter = src.get("delimiter", ",")
    if not isinstance(delimiter, str) or len(delimiter) != 1 or delimiter in "\"'\n\r\\":
        raise c.fail("source.delimiter", f"expected one character (not a quote, backslash or newline), got {_kind(delimiter)}")
    if delimiter != "," and fmt != "csv":
        raise c.fail("source.delimiter", f"only applies to csv sources, this source is {fmt}")
    source = SourceSpec(format=fmt, path=path, location=location, delimiter=delimiter)

    columns: list[Column] = []
    seen_targets: dict[str, str] = {}
    seen_sources: dict[str, str] = {}
    for i, col in enumerate(c.seq(top["columns"], "columns")):
        p = f"columns[{i}]"
        m = c.mapping(col, p, ("source", "name", "type"), ())
        s = c.ident(m["source"], f"{p}.source")
        n = c.ident(m["name"], f"{p}.name")
        t = c.choice(m["type"], f"{p}.type", TYPES, upper=True)
        if n.lower() in RESERVED or n.startswith("_"):
            raise c.fail(f"{p}.name", f"{n!r} is reserved for the pipeline; expected a name not starting with '_'")
        if n.lower() in seen_targets:
            raise c.fail(f"{p}.name", f"duplicate target name {n!r} (also {seen_targets[n.lower()]}); expected unique names")
        if s.lower() in seen_sources:
            raise c.fail(f"{p}.source", f"duplicate source column {s!r} (also {seen_sources[s.lower()]}); expected each source column once")
        seen_targets[n.lower()] = f"{p}.name"
        seen_sources[s.lower()] = f"{p}.source"
        columns.append(Column(source=s, name=n, type=t))
    names = [col.name for col in columns]

    def must_be_column(value: Any, path: str) -> str:
        n = c.ident(value, path)
        if n not in names:
            raise c.fail(path, f"{n!r} is not a column; expected one of: {', '.join(names)}")
        return n

    key = tuple(must_be_column(k, f"key[{i}]") for i, k in enumerate(c.seq(top["key"], "key")))
    if len(set(key)) != len(key):
        raise c.fail("key", "a column appears twice; expected distinct key columns")

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
        m = c.mapping(d, p, ("name", "type", "expr"), ())
        n = c.ident(m["name"], f"{p}.name")
        if n.lower() in seen_targets:
            raise c.fail(f"{p}.name", f"duplicate target name {n!r} (also {seen_targets[n.lower()]}); expected unique names")
        if n.startswith("_"):
            raise c.fail(f"{p}.name", f"{n!r} is reserved for the pipeline; expected a name not starting with '_'")
        seen_targets[n.lower()] = f"{p}.name"
        t = c.choice(m["type"], f"{p}.type", TYPES, upper=True)
        e = c.string(m["expr"], f"{p}.expr")
        if ";" in e:
            raise c.fail(f"{p}.expr", "expected one expression, found ';'")
        derived.append(Derived(name=n, type=t, expr=e.strip()))
    all_types = {col.name: col.type for col in columns} | {d.name: d.type for d in derived}

    dwh = DwhSpec()
    if top.get("dwh") is not None:
        dm = c.mapping(top["dwh"], "dwh", (), ("partition_by", "cluster_by"))
        part = None
        if dm.get("partition_by") is not None:
            pm = c.mapping(dm["partition_by"], "dwh.partition_by", ("column",), ("granularity",))
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
            cluster.append(n)
        if len(cluster) > 4:
            raise c.fail("dwh.cluster_by", f"{len(cluster)} columns; BigQuery clusters on at most 4")
        dwh = DwhSpec(partition_by=part, cluster_by=tuple(cluster))

    checks: list[Check] = []
    for i, ch in enumerate(c.seq(top.get("checks") or [], "checks", nonempty=False)):
        p = f"checks[{i}]"
        if not isinstance(ch, dict) or len(ch) != 1:
            raise c.fail(p, f"expected a mapping with one of: {', '.join(CHECK_KINDS)}")
        kind, cols = next(iter(ch.items()))
        if kind not in CHECK_KINDS:
            raise c.fail(f"{p}.{kind}", f"unknown check; expected one of: {', '.join(CHECK_KINDS)}")
        cl = []
        for j, cc in enumerate(c.seq(cols, f"{p}.{kind}")):
            n = c.ident(cc, f"{p}.{kind}[{j}]")
            if n not in all_types:
                raise c.fail(f"{p}.{kind}[{j}]", f"{n!r} is not a column; expected one of: {', '.join(all_types)}")
            if n in cl:
                raise c.fail(f"{p}.{kind}[{j}]", f"{n!r} appears twice; expected distinct columns")
            cl.append(n)
        checks.append(Check(kind=kind, columns=tuple(cl)))

    schedule = top.get("schedule", "every 24 hours")
    schedule = c.string(schedule, "schedule")
    if not _SCHEDULE.match(schedule):
        raise c.fail("schedule", f"{schedule!r} is not supported; expected 'every N hours', 'every N minutes', 'every day [HH:MM]' or 'every <weekday> [HH:MM]'")
    if schedule_minutes(schedule) < 15:
        raise c.fail("schedule", f"{schedule!r} is too frequent; expected at least 15 minutes between runs")

    return TableSpec(
        table=table,
        source=source,
        key=key,
        columns=tuple(columns),
        version_by=version_by,
        transform=tuple(derived),
        dwh=dwh,
        checks=tuple(checks),
        schedule=schedule,
        file=file,
    )


def load_spec(path: str | Path) -> TableSpec:
    """Read and validate one spec file."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as e:
        raise SpecError(path, "(file)", f"cannot be read: {e.strerror or e}") from e
    try:
        data = yaml.load(text, Loader=_SafeLoader)
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        where = f"line {mark.line + 1}" if mark else "(file)"
        raise SpecError(path, where, f"is not valid YAML: {getattr(e, 'problem', e)}") from e
    return parse_spec(data, str(path))


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
    if tables:
        missing = [t for t in tables if t not in by_name]
        if missing:
            raise SpecError(config_dir, "(tables)", f"no spec for {', '.join(missing)}; expected one of: {', '.join(sorted(by_name))}")
        return [by_name[t] for t in tables]
    return [by_name[k] for k in sorted(by_name)]
