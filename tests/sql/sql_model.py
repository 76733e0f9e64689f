"""Independent pure-Python model of what the five layers must produce, and spec helpers.

The model never reads SQL or the engine: from the batches in landing (= archive) order it computes

* the archive: per (key, row hash), the first occurrence; rows with a NULL key never count;
* the DWH: per key (compared as typed values), the latest *valid* archived version, newest first by ``version_by`` (typed,
  NULL oldest), then batch order (the archive's ``_ingested_at``: every batch is archived by its
  own run, later batches later), then ``_row_hash`` (descending);
* the rejects: one per (archived invalid version, failing column).

The one thing it shares with the renderer is the *definition* of the row hash, needed to
reproduce the tie-break between two versions of a key with the same ``version_by`` in the same
batch (documented in ``pipeline_sql.render.row_hash``): MD5 hex of ``"<name>":<value as JSON>,``
for each non-NULL business column, in name order (a NULL column adds nothing). It is
re-implemented here from that definition, not imported.

Casts model BigQuery's SAFE_CAST on the small value sets the tests use (clearly valid or clearly
invalid values only: the embedded engine is laxer than BigQuery for strings like '1e3' as INT64,
'1.5' as INT64 or 'yes' as BOOL, so tests never rely on those).
"""

from __future__ import annotations

import hashlib
import json
import re
from datetime import date, datetime, timezone
from decimal import Decimal, InvalidOperation
from typing import Any, Iterable

from pipeline_sql.spec import TableSpec, parse_spec

_INT = re.compile(r"^[+-]?\d+$")
_NUM = re.compile(r"^[+-]?(\d+(\.\d*)?|\.\d+)$")
_FLOAT = re.compile(r"^[+-]?(\d+(\.\d*)?|\.\d+)([eE][+-]?\d+)?$")
_DATE = re.compile(r"^(\d{4})-(\d{1,2})-(\d{1,2})$")
_TS = re.compile(r"^(\d{4})-(\d{2})-(\d{2})[ T](\d{2}):(\d{2}):(\d{2})(\.\d{1,6})?(Z|[+-]\d{2}:\d{2}|\s*UTC)?$")


class CastError(ValueError):
    pass


def cast(value: str, typ: str) -> Any:
    """Python value BigQuery's client returns for ``CAST(value AS typ)``; CastError when
    SAFE_CAST would give NULL. Only for the unambiguous values the tests use."""
    if typ == "STRING":
        return value
    if typ == "INT64":
        if not _INT.match(value):
            raise CastError(value)
        n = int(value)
        if not -(2**63) <= n < 2**63:
            raise CastError(value)
        return n
    if typ == "NUMERIC":
        if not _NUM.match(value):
            raise CastError(value)
        try:
            d = Decimal(value)
        except InvalidOperation as e:  # pragma: no cover - regex guards it
            raise CastError(value) from e
        if d.as_tuple().exponent < -9:
            raise CastError(value)  # the tests never use > 9 decimals (BigQuery would round)
        if abs(d) >= Decimal(10) ** 29:
            raise CastError(value)
        return d
    if typ == "FLOAT64":
        if not _FLOAT.match(value):
            raise CastError(value)
        return float(value)
    if typ == "BOOL":
        low = value.lower()
        if low == "true":
            return True
        if low == "false":
            return False
        raise CastError(value)
    if typ == "DATE":
        m = _DATE.match(value)
        if not m:
            raise CastError(value)
        try:
            return date(int(m[1]), int(m[2]), int(m[3]))
        except ValueError as e:
            raise CastError(value) from e
    if typ == "TIMESTAMP":
        m = _TS.match(value)
        if not m:
            raise CastError(value)
        try:
            dt = datetime(int(m[1]), int(m[2]), int(m[3]), int(m[4]), int(m[5]), int(m[6]))
        except ValueError as e:
            raise CastError(value) from e
        if m[7]:
            dt = dt.replace(microsecond=int(m[7][1:].ljust(6, "0")))
        tz = (m[8] or "").strip()
        if tz and tz not in ("Z", "UTC"):
            sign = 1 if tz[0] == "+" else -1
            hh, mm = int(tz[1:3]), int(tz[4:6])
            from datetime import timedelta

            dt = dt - sign * timedelta(hours=hh, minutes=mm)
        return dt.replace(tzinfo=timezone.utc)
    raise AssertionError(f"no model for type {typ}")


def valid(value: str | None, typ: str) -> bool:
    if value is None:
        return True
    try:
        cast(value, typ)
        return True
    except CastError:
        return False


def row_hash(values: dict[str, str | None]) -> str:
    """The archive's ``_row_hash`` by its definition (see the module docstring): MD5 hex of
    ``"<archive name>":<JSON string>,`` for each non-NULL value, in name order."""
    text = "".join(f"{json.dumps(n)}:{json.dumps(v, ensure_ascii=False)}," for n, v in sorted(values.items()) if v is not None)
    return hashlib.md5(text.encode("utf-8")).hexdigest()


class _Version:
    """Sort key of a version: typed version_by (NULL oldest), then batch order, then hash."""

    def __init__(self, version: Any, batch: int, h: str):
        self.t = (version is not None, version, batch, h)

    def __lt__(self, other: "_Version") -> bool:
        a, b = self.t, other.t
        if a[0] != b[0]:
            return a[0] < b[0]
        if a[0] and a[1] != b[1]:
            return a[1] < b[1]
        return a[2:] < b[2:]


class Model:
    """The expected outcome of archiving ``batches`` (lists of {target name: str | None}), in
    order, then running delta, transform and dwh.

    Spec changes: ``specs[i]`` is the spec batch ``i`` was landed and archived under (default:
    ``spec`` for every batch); its rows are keyed by that spec's target names. The archive holds
    each column under its first name (``archive_name``), a column a batch's spec lacks is NULL
    there, and the row hash covers the non-NULL columns only; the DWH, the rejects and the casts
    follow the final ``spec`` (what a run, or a full refresh after a change that needs one,
    leaves behind)."""

    def __init__(self, spec: TableSpec, batches: list[list[dict]], specs: list[TableSpec] | None = None):
        self.spec = spec
        specs = specs or [spec] * len(batches)
        assert len(specs) == len(batches)
        names = spec.column_names
        types = {c.name: c.type for c in spec.columns}
        # archive: first occurrence of (raw key, row hash); NULL keys never archived
        self.archive: dict[tuple, dict] = {}  # (key, hash) -> {row, batch, hash}
        self.null_key_rows: list[int] = []
        for b, (batch, bspec) in enumerate(zip(batches, specs)):
            nulls = 0
            for row in batch:
                archived = {c.archive_name: row.get(c.name) for c in bspec.columns}
                key = tuple(archived[bspec.column(k).archive_name] for k in bspec.key)
                if any(v is None for v in key):
                    nulls += 1
                    continue
                h = row_hash(archived)
                # the row under the final spec's names (a column the batch lacked is NULL)
                current = {c.name: archived.get(c.archive_name) for c in spec.columns}
                self.archive.setdefault((key, h), {"row": current, "batch": b, "hash": h})
            self.null_key_rows.append(nulls)
        # dwh: latest valid version per key; keys compare as typed values ('1' and '01' are one
        # INT64 key), so group by the cast key (a valid row's key always casts)
        best: dict[tuple, tuple[_Version, dict]] = {}
        self.rejects: set[tuple] = set()  # (raw key..., row hash, column, value)
        for (key, h), a in self.archive.items():
            row = a["row"]
            bad = [n for n in names if not valid(row[n], types[n])]
            for n in bad:
                self.rejects.add(key + (h, n, row[n]))
            if bad:
                continue
            v = None
            if spec.version_by and row[spec.version_by] is not None:
                v = cast(row[spec.version_by], types[spec.version_by])
            order = _Version(v, a["batch"], h)
            typed_key = tuple(cast(row[k], types[k]) for k in spec.key)
            if typed_key not in best or best[typed_key][0] < order:
                best[typed_key] = (order, a)
        self.latest = {k: a for k, (_, a) in best.items()}

    def dwh(self) -> dict[tuple, dict]:
        """{typed key tuple: typed business columns}, as ``Pipe.dwh()`` reads the DWH."""
        types = {c.name: c.type for c in self.spec.columns}
        out: dict[tuple, dict] = {}
        for a in self.latest.values():
            row = a["row"]
            typed = {n: None if row[n] is None else cast(row[n], types[n]) for n in self.spec.column_names}
            out[tuple(typed[c] for c in self.spec.key)] = typed
        return out

    def dwh_hashes(self) -> dict[tuple, str]:
        types = {c.name: c.type for c in self.spec.columns}
        return {tuple(cast(a["row"][k], types[k]) for k in self.spec.key): a["hash"] for a in self.latest.values()}


# --------------------------------------------------------------------------- specs


def make_spec(
    columns: Iterable[tuple],
    key: Iterable[str] | str,
    *,
    table: str = "items",
    fmt: str = "csv",
    version_by: str | None = None,
    transform: list[dict] | None = None,
    checks: list[dict] | None = None,
    **extra: Any,
) -> TableSpec:
    """A spec validated by ``parse_spec``. ``columns`` are ``(name, type)`` (the source column is
    then ``src_<name>``), ``(source, name, type)`` or a spec file's column mapping."""
    cols = []
    for c in columns:
        if isinstance(c, dict):  # a column entry as written in a spec file
            cols.append(c)
            continue
        src, name, typ = (f"src_{c[0]}", c[0], c[1]) if len(c) == 2 else c
        cols.append({"source": src, "name": name, "type": typ})
    data: dict[str, Any] = {
        "table": table,
        "source": {"format": fmt, "path": f"{table}/"},
        "key": [key] if isinstance(key, str) else list(key),
        "columns": cols,
    }
    if version_by:
        data["version_by"] = version_by
    if transform:
        data["transform"] = transform
    if checks:
        data["checks"] = checks
    data.update(extra)
    return parse_spec(data)


def to_source(spec: TableSpec, rows: list[dict]) -> list[dict]:
    """Rows keyed by target names -> rows keyed by source names (what lands in a file)."""
    src = {c.name: c.source for c in spec.columns}
    return [{src[k]: v for k, v in r.items()} for r in rows]
