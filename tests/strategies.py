"""Hypothesis strategies over the whole table-spec grammar (``config/tables/<table>.yaml``).

Two entry points, both drawing YAML-shaped dicts (what ``yaml.safe_load`` of a spec gives, ready
for :func:`pipeline_sql.spec.parse_spec`):

* :func:`spec_dicts` covers the grammar and its edges: every type as key, ``version_by``,
  partition and cluster column; derived columns with expressions of every type; every check rule
  (values at and past their type's limits, strings with quotes and line breaks); names near the
  rules' edges (1 and 128 characters, mixed case, keywords GoogleSQL reserves and ones it does
  not, the names the rendered SQL uses for its own aliases and variables, functions callable
  without parentheses, BigQuery's reserved column prefixes); csv/json/parquet, gcs/s3, any
  delimiter, every schedule form. Some of what it draws the validator must refuse (a FLOAT64
  key, a ``_PARTITIONTIME`` source column, ...): use it to check that whatever the validator
  accepts is sound (the GoogleSQL analysis does), and to fuzz the validator with bad input.
* :func:`valid_spec_dicts` draws only specs the validator accepts (it builds within the rules and
  filters the rare leftovers), for properties of accepted specs.

Expressions are drawn well-typed (a spec author's own SQL is not the validator's to judge), from
a small typed grammar over the spec's typed columns, sometimes with a trailing comment.
"""

from __future__ import annotations

import string

from hypothesis import strategies as st

from pipeline_sql.spec import RESERVED_KEYWORDS, TYPES, VERSION_TYPES, SpecError, check_references, parse_spec

def _sql_internal_names() -> tuple[str, ...]:
    """Every identifier the rendered SQL uses besides the spec's own names (its aliases, CTEs,
    variables, report columns and functions), read from the statements of a sample spec: a spec
    column of the same name must still render valid SQL. Read afresh, so a CTE or variable added
    to a template is tried as a column name without anyone updating a list here."""
    import re

    from pipeline_sql.naming import Naming
    from pipeline_sql.statements import project_statements

    sample = parse_spec(
        {
            "table": "zz_sample",
            "source": {"format": "csv", "path": "zz/"},
            "key": ["zz_k"],
            "version_by": "zz_v",
            "columns": [
                {"source": "zz_sk", "name": "zz_k", "type": "INT64"},
                {"source": "zz_sv", "name": "zz_v", "type": "TIMESTAMP"},
                {"source": "zz_sn", "name": "zz_n", "type": "NUMERIC"},
            ],
            "transform": [{"name": "zz_d", "type": "DATE", "expr": "DATE(zz_v)"}],
            "dwh": {"partition_by": {"column": "zz_d"}, "cluster_by": ["zz_k"]},
            "checks": [{"not_null": ["zz_k"]}, {"unique": ["zz_k"]}],
        }
    )
    names: set[str] = set()
    for stmt in project_statements([sample], Naming(project="zz-project", env="zz"), "gs://zz-bucket"):
        text = re.sub(r"--[^\n]*|#[^\n]*|'(?:[^'\\]|\\.)*'|`[^`]*`", " ", stmt.sql)
        names |= set(re.findall(r"[A-Za-z_][A-Za-z0-9_]*", text))
    return tuple(sorted(n for n in names if not n.lower().startswith("zz") and n.upper() not in RESERVED_KEYWORDS))


#: Names the rendered SQL uses itself, plus single letters a template might use as aliases.
SQL_INTERNAL_NAMES = tuple(sorted(set(_sql_internal_names()) | {"a", "d", "l", "t", "s", "T", "S", "D", "run_at", "batch", "typed", "dt"}))
#: Names GoogleSQL may read as something other than a column.
SQL_AMBIGUOUS_NAMES = (
    "current_date", "CURRENT_TIMESTAMP", "current_time", "current_datetime", "date", "timestamp",
    "time", "datetime", "numeric", "bignumeric", "json", "safe", "offset", "ordinal", "error",
    "type", "name", "hash", "key", "table", "row", "only", "values", "replace", "except",
)
#: Column names BigQuery reserves (prefixes), as a source file may well carry them.
BIGQUERY_RESERVED_NAMES = (
    "_PARTITIONTIME", "_PARTITIONDATE", "_partition_id", "_FILE_NAME", "_file_", "_TABLE_SUFFIX",
    "_table_", "_ROW_TIMESTAMP", "__ROOT__", "__root__x", "_COLIDENTIFIER", "_colidentifier_1",
)
_KEYWORDS = sorted(RESERVED_KEYWORDS)
_FIRST = string.ascii_letters + "_"
_REST = string.ascii_letters + string.digits + "_"


def _plain_identifier(max_len: int = 128) -> st.SearchStrategy[str]:
    return st.builds(
        lambda a, b: a + b, st.sampled_from(_FIRST), st.text(_REST, max_size=max_len - 1)
    )


def identifiers(edges: bool = True) -> st.SearchStrategy[str]:
    """Column identifiers: plain ones, ones exactly at the length limits, and (``edges``) the
    names listed above and reserved keywords in any case."""
    base = st.one_of(
        st.text(string.ascii_lowercase, min_size=1, max_size=8),
        _plain_identifier(),
        st.builds(lambda c, s: c + s, st.sampled_from(string.ascii_letters), st.text(_REST, min_size=127, max_size=127)),
    )
    if not edges:
        return base
    return st.one_of(base, edge_names())


def edge_names() -> st.SearchStrategy[str]:
    """Only the names near the edges."""
    return st.one_of(
        st.sampled_from(SQL_INTERNAL_NAMES),
        st.sampled_from(SQL_AMBIGUOUS_NAMES),
        st.sampled_from(BIGQUERY_RESERVED_NAMES),
        st.sampled_from(_KEYWORDS).map(str.lower),
        st.sampled_from(_KEYWORDS).map(str.title),
    )


def table_names(edges: bool = True) -> st.SearchStrategy[str]:
    """Table names: 1 to 63 characters; with ``edges`` also a reserved keyword, a function name."""
    plain = st.one_of(
        st.just("q"),  # one letter
        st.text(string.ascii_lowercase + "_", min_size=9, max_size=12).map(lambda t: "t" + t),
        st.builds(lambda a, b: a + b, st.sampled_from(string.ascii_lowercase), st.text(string.ascii_lowercase + string.digits + "_", min_size=62, max_size=62)),
        st.sampled_from(("orders", "x_1")),
    ).filter(lambda t: t.upper() not in RESERVED_KEYWORDS)
    return st.one_of(plain, st.sampled_from(("select", "current_date", "order"))) if edges else plain


def source_paths() -> st.SearchStrategy[str]:
    part = st.text(string.ascii_letters + string.digits + "_-.", min_size=1, max_size=12).filter(lambda p: p not in (".", ".."))
    return st.lists(part, min_size=1, max_size=3).map(lambda ps: "/".join(ps) + "/")


#: One-character field delimiters: common ones, then any character (the validator decides).
DELIMITERS = st.one_of(
    st.sampled_from((",", ";", "|", "\t", " ", "~", "^", "#", "`", "§", "ÿ")),
    st.characters(codec="utf-8", exclude_characters="\r\n"),
)


def schedules() -> st.SearchStrategy[str]:
    days = ("day", "monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday")
    hhmm = st.builds(lambda h, m: f"{h:02d}:{m:02d}", st.integers(0, 23), st.integers(0, 59))
    return st.one_of(
        st.builds(lambda n: f"every {n} minutes", st.integers(15, 600)),
        st.builds(lambda n: f"every {n} hours", st.integers(1, 48)),
        st.sampled_from(days).map(lambda d: f"every {d}"),
        st.builds(lambda d, t: f"every {d} {t}", st.sampled_from(days), hhmm),
    )


# --------------------------------------------------------------------------- expressions


def _literal(t: str) -> st.SearchStrategy[str]:
    return {
        "STRING": st.text(string.ascii_letters + string.digits + " -_'\\@%", max_size=8).map(
            lambda s: "'" + s.replace("\\", "\\\\").replace("'", "\\'") + "'"
        ),
        "INT64": st.integers(-1000, 10**6).map(str),
        "NUMERIC": st.decimals(-1000, 1000, places=2).map(lambda d: f"NUMERIC '{d}'"),
        "FLOAT64": st.floats(-1000, 1000, allow_nan=False).map(lambda f: repr(float(f))),
        "BOOL": st.sampled_from(("TRUE", "FALSE")),
        "DATE": st.dates().map(lambda d: f"DATE '{d.isoformat()}'"),
        "TIMESTAMP": st.datetimes().map(lambda d: f"TIMESTAMP '{d.year:04d}-{d.strftime('%m-%d %H:%M:%S')}+00'"),
    }[t]


def expressions(columns: dict[str, str], t: str, depth: int = 2) -> st.SearchStrategy[str]:
    """A GoogleSQL expression of type ``t`` over ``columns`` (name -> type, referenced
    unqualified as a spec author writes them)."""
    cols = [n for n, ct in columns.items() if ct == t]
    options = [_literal(t)]
    if cols:
        options.append(st.sampled_from(cols))
    if depth > 0:
        sub = lambda tt: expressions(columns, tt, depth - 1)  # noqa: E731
        if t == "STRING":
            options += [
                st.builds(lambda a, b: f"CONCAT({a}, ' ', {b})", sub("STRING"), sub("STRING")),
                st.builds(lambda a: f"LOWER({a})", sub("STRING")),
                st.builds(lambda a: f"SPLIT({a}, '@')[SAFE_OFFSET(1)]", sub("STRING")),
                st.builds(lambda a: f"CAST({a} AS STRING)", sub("INT64")),
                st.builds(lambda a: f"FORMAT_DATE('%Y-%m', {a})", sub("DATE")),
                st.builds(lambda b, a, c: f"IF({b}, {a}, {c})", sub("BOOL"), sub("STRING"), sub("STRING")),
            ]
        elif t == "INT64":
            options += [
                st.builds(lambda a, b: f"{a} + {b}", sub("INT64"), sub("INT64")),
                st.builds(lambda a: f"LENGTH({a})", sub("STRING")),
                st.builds(lambda a: f"EXTRACT(YEAR FROM {a})", sub("DATE")),
                st.builds(lambda a, b: f"DATE_DIFF({a}, {b}, DAY)", sub("DATE"), sub("DATE")),
                st.builds(lambda a: f"CAST(ROUND({a}) AS INT64)", sub("NUMERIC")),
            ]
        elif t == "NUMERIC":
            options += [
                st.builds(lambda a, b: f"ROUND({a} * {b}, 2)", sub("NUMERIC"), sub("NUMERIC")),
                st.builds(lambda a, b: f"{a} + {b}", sub("NUMERIC"), sub("INT64")),
                st.builds(lambda a: f"IFNULL({a}, 0)", sub("NUMERIC")),
            ]
        elif t == "FLOAT64":
            options += [
                st.builds(lambda a: f"{a} * 1.5", sub("FLOAT64")),
                st.builds(lambda a, b: f"SAFE_DIVIDE({a}, {b})", sub("INT64"), sub("INT64")),
                st.builds(lambda a: f"CAST({a} AS FLOAT64)", sub("NUMERIC")),
            ]
        elif t == "BOOL":
            options += [
                st.builds(lambda a, b: f"{a} > {b}", sub("INT64"), sub("INT64")),
                st.builds(lambda a: f"{a} IS NULL", sub("STRING")),
                st.builds(lambda a: f"NOT {a}", sub("BOOL")),
                st.builds(lambda a: f"{a} LIKE 'a%'", sub("STRING")),
            ]
        elif t == "DATE":
            options += [
                st.builds(lambda a: f"DATE({a})", sub("TIMESTAMP")),
                st.builds(lambda a: f"DATE_ADD({a}, INTERVAL 1 DAY)", sub("DATE")),
                st.builds(lambda a: f"DATE_TRUNC({a}, MONTH)", sub("DATE")),
            ]
        elif t == "TIMESTAMP":
            options += [
                st.builds(lambda a: f"TIMESTAMP({a})", sub("DATE")),
                st.builds(lambda a: f"TIMESTAMP_ADD({a}, INTERVAL 1 HOUR)", sub("TIMESTAMP")),
                st.builds(lambda a: f"TIMESTAMP_TRUNC({a}, DAY)", sub("TIMESTAMP")),
            ]
    return st.one_of(options)


def _with_comment(expr: st.SearchStrategy[str]) -> st.SearchStrategy[str]:
    return st.builds(
        lambda e, c: e + c, expr, st.sampled_from(("", "", "", "  -- a comment", " # another", "\n"))
    )


# --------------------------------------------------------------------------- specs


def _unique_ci(xs: list[str]) -> list[str]:
    seen, out = set(), []
    for x in xs:
        if x.lower() not in seen:
            seen.add(x.lower())
            out.append(x)
    return out


@st.composite
def spec_dicts(draw, edges: bool = True) -> dict:
    """A spec document over the whole grammar (see the module docstring). With ``edges``, up to
    three names (column, source, derived or table) are names near the edges, the rest plain, so
    that a fair share of the drawn specs is accepted and analyzed."""
    plain = identifiers(edges=False).filter(lambda n: n.upper() not in RESERVED_KEYWORDS and not n.startswith("_"))
    names = draw(st.lists(plain, min_size=1, max_size=7).map(_unique_ci).filter(bool))
    sources = draw(st.lists(identifiers(edges=False).filter(lambda n: n.upper() not in RESERVED_KEYWORDS), min_size=len(names), max_size=len(names)))
    table = draw(table_names(edges))
    edge_slots: dict[tuple[str, int], str] = {}
    if edges:
        for _ in range(draw(st.integers(0, 3))):
            slot = draw(st.sampled_from([("name", i) for i in range(len(names))] + [("source", i) for i in range(len(names))] + [("derived", 0), ("table", 0)]))
            edge_slots[slot] = draw(edge_names())
    for (kind, i), edge in edge_slots.items():
        if kind == "name":
            names[i] = edge
        elif kind == "source":
            sources[i] = edge
        elif kind == "table" and edge.islower():
            table = edge
    names = _unique_ci(names)
    sources = sources[: len(names)]
    # mostly distinct source names (a duplicate is refused)
    sources = [s if s.lower() not in {x.lower() for x in sources[:i]} else f"{s[:120]}_{i}" for i, s in enumerate(sources)]
    types = draw(st.lists(st.sampled_from(TYPES), min_size=len(names), max_size=len(names)))
    columns = [{"source": s, "name": n, "type": t if draw(st.booleans()) else t.lower()} for s, n, t in zip(sources, names, types)]
    typed = dict(zip(names, types))

    keyable = names if edges else [n for n in names if typed[n] != "FLOAT64"]
    if not keyable:
        columns[0]["type"], typed[names[0]] = "STRING", "STRING"
        keyable = names[:1]
    key = draw(st.lists(st.sampled_from(keyable), min_size=1, max_size=min(3, len(keyable)), unique=True))
    doc: dict = {
        "table": table,
        "source": {"format": draw(st.sampled_from(("csv", "json", "parquet", "CSV"))), "path": draw(source_paths())},
        "key": key if len(key) > 1 or draw(st.booleans()) else key[0],
        "columns": columns,
    }
    if draw(st.booleans()):
        doc["source"]["location"] = draw(st.sampled_from(("gcs", "s3")))
    if doc["source"]["format"].lower() == "csv" and draw(st.booleans()):
        doc["source"]["delimiter"] = draw(DELIMITERS)

    non_key = [n for n in names if n not in key]
    if non_key and draw(st.booleans()):
        choices = non_key if edges else [n for n in non_key if typed[n] in VERSION_TYPES]
        if choices:
            doc["version_by"] = draw(st.sampled_from(choices))

    derived = []
    taken = {n.lower() for n in names}
    for j in range(draw(st.integers(0, 3))):
        dname = edge_slots.get(("derived", j)) or draw(plain)
        if dname.lower() in taken:
            continue
        taken.add(dname.lower())
        dtype = draw(st.sampled_from(TYPES))
        derived.append({"name": dname, "type": dtype, "expr": draw(_with_comment(expressions(typed, dtype)))})
    if derived:
        doc["transform"] = derived
    all_types = typed | {d["name"]: d["type"] for d in derived}

    if draw(st.booleans()):
        dwh: dict = {}
        time_cols = [n for n, t in all_types.items() if t in ("DATE", "TIMESTAMP")]
        part_cols = list(all_types) if edges else time_cols
        if part_cols and draw(st.booleans()):
            col = draw(st.sampled_from(part_cols))
            grans = ("DAY", "HOUR", "MONTH", "YEAR") if edges or all_types[col] == "TIMESTAMP" else ("DAY", "MONTH", "YEAR")
            dwh["partition_by"] = {"column": col}
            if draw(st.booleans()):
                dwh["partition_by"]["granularity"] = draw(st.sampled_from(grans))
        clusterable = list(all_types) if edges else [n for n, t in all_types.items() if t != "FLOAT64"]
        if clusterable and draw(st.booleans()):
            dwh["cluster_by"] = draw(st.lists(st.sampled_from(clusterable), min_size=1, max_size=5 if edges else 4, unique=True))
        doc["dwh"] = dwh
    checks = draw(st.lists(check_entries(doc["table"], all_types, key, edges), max_size=4, unique_by=lambda e: repr(next(iter(e.items())))))
    if checks:
        doc["checks"] = checks
    if draw(st.booleans()):
        doc["schedule"] = draw(schedules())
    return doc


# --------------------------------------------------------------------------- checks


def check_values(t: str, edges: bool) -> st.SearchStrategy:
    """A value of a check (accepted_values, range) for a column of type ``t``, as YAML gives it;
    with ``edges`` also values at and past the type's limits."""
    text = st.text(st.characters(codec="utf-8", exclude_categories=("Cs",)), max_size=8)
    plain = {
        "STRING": st.text(string.ascii_letters + string.digits + " -_", max_size=8),
        "INT64": st.integers(-(10**6), 10**6),
        "NUMERIC": st.one_of(st.integers(-1000, 1000), st.decimals(-1000, 1000, places=3).map(str)),
        "FLOAT64": st.floats(-1e6, 1e6, allow_nan=False),
        "BOOL": st.booleans(),
        "DATE": st.dates().map(lambda d: f"{d.year:04d}-{d.month:02d}-{d.day:02d}"),
        "TIMESTAMP": st.datetimes().map(lambda d: f"{d.year:04d}-{d.strftime('%m-%d %H:%M:%S')}"),
    }[t]
    if not edges:
        return plain
    edge = {
        "STRING": st.one_of(text, st.sampled_from(("it's", "back\\slash", "new\nline", "tab\tbed", "", "'; DROP TABLE x; --"))),
        "INT64": st.sampled_from((2**63 - 1, -(2**63), 2**63, 10**30)),
        "NUMERIC": st.sampled_from(("99999999999999999999999999999.999999999", "1e40", "0.0000000001", "-0", 10**29)),
        "FLOAT64": st.sampled_from((1.7976931348623157e308, float("inf"), float("-inf"), 5e-324, -0.0)),
        "BOOL": st.booleans(),
        "DATE": st.sampled_from(("0001-01-01", "9999-12-31", "2024-02-29")),
        "TIMESTAMP": st.sampled_from(("0001-01-01 00:00:00", "9999-12-31 23:59:59.999999", "2024-01-01T00:00:00Z", "2024-06-01 12:00:00+02:00")),
    }[t]
    return st.one_of(plain, edge)


@st.composite
def check_entries(draw, table: str, types: dict[str, str], key: list[str], edges: bool = True) -> dict:
    """One entry of ``checks:``: any of the nine rules, with an optional severity. A
    ``relationships`` check points at the spec's own table (a self-reference, e.g. parent ->
    id), so that one spec is enough."""
    cols = list(types)
    of = lambda *ts: [c for c in cols if types[c] in ts]  # noqa: E731
    kinds = ["not_null", "unique", "expression", "row_count"]
    if of("STRING", "INT64", "NUMERIC", "BOOL", "DATE"):
        kinds.append("accepted_values")
    if of("INT64", "NUMERIC", "FLOAT64", "DATE", "TIMESTAMP"):
        kinds.append("range")
    if of("STRING"):
        kinds.append("regex")
    if of("DATE", "TIMESTAMP") or edges:
        kinds.append("freshness")
    single_keys = [k for k in key if types[k] != "FLOAT64"] if len(key) == 1 else []
    if single_keys and of(types[single_keys[0]]):
        kinds.append("relationships")
    kind = draw(st.sampled_from(kinds))
    if kind in ("not_null", "unique"):
        arg = draw(st.lists(st.sampled_from(cols), min_size=1, max_size=3, unique=True))
    elif kind == "expression":
        arg = draw(_with_comment(expressions(types, "BOOL")))
    elif kind == "row_count":
        bounds = draw(st.fixed_dictionaries({}, optional={"min": st.integers(0, 10**6), "max": st.integers(10**6, 10**9), "max_change": st.floats(0.01, 10)}).filter(bool))
        arg = bounds
    elif kind == "accepted_values":
        c = draw(st.sampled_from(of("STRING", "INT64", "NUMERIC", "BOOL", "DATE")))
        values = draw(st.lists(check_values(types[c], edges), min_size=1, max_size=4, unique_by=lambda v: (type(v), str(v))))
        arg = {"column": c, "values": values}
    elif kind == "range":
        c = draw(st.sampled_from(of("INT64", "NUMERIC", "FLOAT64", "DATE", "TIMESTAMP")))
        a, b = draw(check_values(types[c], edges)), draw(check_values(types[c], edges))
        try:
            lo, hi = sorted((a, b), key=lambda v: float(v) if types[c] in ("INT64", "NUMERIC", "FLOAT64") else str(v))
        except (TypeError, ValueError):
            lo, hi = a, b
        arg = {"column": c} | draw(st.sampled_from(({"min": lo}, {"max": hi}, {"min": lo, "max": hi})))
    elif kind == "regex":
        pattern = st.sampled_from(("^[a-z]+$", "@", "^\\d{4}-\\d{2}$", "it's", "a|b", "(?i)^x", "\\.com$"))
        arg = {"column": draw(st.sampled_from(of("STRING"))), "pattern": draw(st.one_of(pattern, st.text(string.ascii_letters + " .*+?", min_size=1, max_size=6)) if edges else pattern)}
    elif kind == "freshness":
        arg = {"max_age": draw(st.builds(lambda n, u: f"{n} {u}", st.integers(1, 500), st.sampled_from(("minutes", "hours", "days", "minute", "day"))))}
        if of("DATE", "TIMESTAMP") and draw(st.booleans()):
            arg["column"] = draw(st.sampled_from(of("DATE", "TIMESTAMP")))
    else:  # relationships to the table itself
        k = single_keys[0]
        arg = {"column": draw(st.sampled_from(of(types[k]))), "to": table}
        if draw(st.booleans()):
            arg["field"] = k
    entry = {kind: arg}
    if draw(st.booleans()):
        entry["severity"] = draw(st.sampled_from(("error", "warn")))
    return entry


def spec_of(doc: dict):
    """What the validator makes of a document, as ``load_specs`` does for a folder holding only
    it: ``parse_spec``, then the cross-spec checks (``relationships``). Raises SpecError."""
    return check_references([parse_spec(doc)])[0]


def accepted(doc: dict) -> bool:
    try:
        spec_of(doc)
    except SpecError:
        return False
    return True


def valid_spec_dicts() -> st.SearchStrategy[dict]:
    """Spec documents the validator accepts (built within the rules; rare leftovers filtered)."""
    return spec_dicts(edges=False).filter(accepted)
