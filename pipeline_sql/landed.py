"""Landed files checked before they are archived: pure Python, one streaming pass, no engine.

The runner calls :func:`check_landed_file` on every pending file, beside its load job (the load
needs only :func:`load_columns`; the file is archived only once the check passed). A file
the engine would misread (wrong encoding, a header that is not the spec's, a row with too many
or too few fields, an unterminated quote, a blank line, an NDJSON line that is not an object or
whose field names are not the spec's) is refused with a :class:`FileRefused` naming the file,
the line and the column, and what was expected::

    landing/customers/003.csv: line 7, column 12: 3 fields, expected 4 (id,email,balance,updated)

A refused file is quarantined by the runner (recorded in ``quality.refused_files`` with its
content hash, see :func:`refused_files_table`) and skipped on later runs until its content
changes, so it never blocks the files after it. Files in a table's folder whose extension
matches no known format are listed by :func:`unknown_files` (the run reports them).

What a file may leave out: a column the spec lets be NULL (it loads NULL: a file landed before
the column was added). A key column, or one the spec declares ``required: true``, must be
present (CSV: in the header, in any order: a CSV file loads by its own header; NDJSON: on every
line) -- see :func:`required_sources`. A present field may hold ``null`` like any value (a NULL
key is counted and reported with the batch by the archive).
"""

from __future__ import annotations

import codecs
import csv
import json
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

from .spec import TableSpec

#: File extensions (lower case) the staging layer loads, per source format.
EXTENSIONS = {"csv": (".csv",), "json": (".json", ".jsonl", ".ndjson"), "parquet": (".parquet",)}
#: Name of the local quarantine table in the quality dataset.
REFUSED_TABLE = "refused_files"
#: Files that are never data (editor and OS droppings, markers): not reported as unknown.
_IGNORED_NAMES = {".ds_store", "thumbs.db", "_success", ".gitkeep", "readme.md"}


class FileRefused(ValueError):
    """A landed file that cannot be loaded as it is: names the file, the line and the column."""

    def __init__(self, path: str | Path, line: int | None, column: int | None, reason: str):
        self.path, self.line, self.column, self.reason = str(path), line, column, reason
        #: the spec's table (set by the runner when it quarantines the file)
        self.table = ""
        where = "".join(
            (f": line {line}" if line else "", f", column {column}" if line and column else "")
        )
        super().__init__(f"{self.path}{where}: {reason}")


@dataclass(frozen=True)
class LandedFile:
    """What a checked file holds: ``columns`` are the spec's source names in the file's order
    (a CSV header or the union of NDJSON fields); ``missing`` the spec's source columns the
    file leaves out (they load as NULL); ``rows`` its data rows."""

    path: Path
    columns: tuple[str, ...]
    missing: tuple[str, ...]
    rows: int


def required_sources(spec: TableSpec) -> frozenset[str]:
    """Source names a landed file must carry: the key columns and the columns declared
    ``required: true`` (the spec's ``must_load``)."""
    return frozenset(c.source for c in spec.columns if c.name in spec.key or getattr(c, "required", False))


def landed_files(landing_dir: Path, spec: TableSpec) -> list[Path]:
    """The table's landed files of its format, sub-folders (``dt=YYYY-MM-DD/``) included, in
    path order."""
    return _listing(landing_dir, spec)[0]


def unknown_files(landing_dir: Path, spec: TableSpec) -> list[Path]:
    """Files in the table's folder whose extension is not its format's (reported, not loaded);
    hidden files and known markers (``_SUCCESS``, ``.DS_Store``...) are left out."""
    return _listing(landing_dir, spec)[1]


def _listing(landing_dir: Path, spec: TableSpec) -> tuple[list[Path], list[Path]]:
    folder = Path(landing_dir) / spec.source.path
    if not folder.is_dir():
        return [], []
    exts = EXTENSIONS[spec.source.format]
    known, unknown = [], []
    for p in folder.rglob("*"):
        if not p.is_file():
            continue
        if p.suffix.lower() in exts:
            known.append(p)
        elif not p.name.startswith(".") and p.name.lower() not in _IGNORED_NAMES:
            unknown.append(p)

    def order(p: Path) -> str:
        return p.relative_to(folder).as_posix()

    return sorted(known, key=order), sorted(unknown, key=order)


def check_landed_file(spec: TableSpec, path: Path) -> LandedFile:
    """Check one landed file against its spec in one streaming pass; :class:`FileRefused` when
    it cannot be loaded as it is. Parquet files carry their own schema: only their presence
    is checked here (the load job reads their columns by name)."""
    path = Path(path)
    fmt = spec.source.format
    if fmt == "csv":
        return _check_csv(spec, path)
    if fmt == "json":
        return _check_ndjson(spec, path)
    return LandedFile(path, tuple(c.source for c in spec.columns), (), 0)


def load_columns(spec: TableSpec, path: Path) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """What a load job of the file needs before the whole file is checked: its columns (the
    spec's source names in the file's order) and the spec's columns it leaves out. A CSV file's
    come from its header (refused as :func:`check_landed_file` refuses it); an NDJSON or Parquet
    file loads by the spec's columns. The runner starts the load with these while
    :func:`check_landed_file` reads the rest of the file beside it."""
    path = Path(path)
    names = tuple(c.source for c in spec.columns)
    if spec.source.format != "csv":
        return names, ()
    try:
        with open(path, newline="", encoding="utf-8-sig") as f:
            header = _csv_header(spec, path, csv.reader(f, delimiter=spec.source.delimiter, strict=True))
    except UnicodeDecodeError:
        raise _encoding_error(path) from None
    return tuple(header), tuple(c for c in names if c not in header)


# --------------------------------------------------------------------------- CSV


def _expected(spec: TableSpec) -> str:
    return ",".join(c.source for c in spec.columns)


def _check_csv(spec: TableSpec, path: Path) -> LandedFile:
    """A fast pass counts the rows of each width in C (``Counter(map(len, reader))``); only a
    file that is not regular is read again, row by row, to name the first bad line."""
    delim = spec.source.delimiter
    expected = [c.source for c in spec.columns]
    try:
        with open(path, newline="", encoding="utf-8-sig") as f:
            reader = csv.reader(f, delimiter=delim, strict=True)
            header = _csv_header(spec, path, reader)
            try:
                widths = Counter(map(len, reader))
            except csv.Error:
                widths = None
        if widths is not None and set(widths) <= {len(header)}:
            _check_line_endings(path)
            return LandedFile(path, tuple(header), tuple(c for c in expected if c not in header), sum(widths.values()))
        with open(path, newline="", encoding="utf-8-sig") as f:
            reader = csv.reader(f, delimiter=delim, strict=True)
            header = _csv_header(spec, path, reader)
            width = len(header)
            names = ",".join(header)
            rows = 0
            last = reader.line_num
            try:
                for row in reader:
                    if len(row) != width:
                        line = last + 1
                        if not row:
                            raise FileRefused(path, line, None, "blank line; expected a row of " f"{width} fields ({names}) (remove blank lines)")
                        raise FileRefused(
                            path, line, None,
                            f"{len(row)} field{'s' if len(row) != 1 else ''}, expected {width} ({names})"
                            + (" (a truncated line?)" if len(row) < width else f" (an unquoted {delim!r} inside a value?)"),
                        )
                    rows += 1
                    last = reader.line_num
            except csv.Error as e:
                line = last + 1
                msg = str(e)
                if "unexpected end of data" in msg:
                    raise FileRefused(path, line, None, "unterminated quoted field: the quote opened on this line is never closed") from None
                if "expected after" in msg:
                    raise FileRefused(path, line, None, f"a closing quote must be followed by {delim!r} or the end of the line ({msg}); quote a value that contains quotes as \"a \"\"b\"\" c\"") from None
                raise FileRefused(path, line, None, f"not readable as CSV: {msg}") from None
    except UnicodeDecodeError:
        raise _encoding_error(path) from None
    return LandedFile(path, tuple(header), tuple(c for c in expected if c not in header), rows)


def _check_line_endings(path: Path, chunk: int = 1 << 20) -> None:
    """Every row ends alike: LF, CR LF or CR (the engine's CSV reader fails on a file whose rows
    mix them; a line break inside a quoted value may be of any kind). Counted in C over the
    bytes; only a file with CRs that are not all CR LF is read again, line by line."""
    lf = cr = crlf = 0
    prev = b""
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(chunk), b""):
            lf += block.count(b"\n")
            cr += block.count(b"\r")
            crlf += block.count(b"\r\n") + (prev == b"\r" and block[:1] == b"\n")
            prev = block[-1:]
    if cr == 0 or cr == crlf == lf or (cr == crlf + 1 == lf + 1 and prev == b"\r"):
        return
    first: list[tuple[str, int]] = []

    def row_end(kind: str, n: int, col: int | None = None) -> None:
        if not first:
            first.append((kind, n))
        elif kind != first[0][0]:
            raise FileRefused(
                path, n, col,
                f"mixed line endings: a row ends in {kind} here, in {first[0][0]} on line {first[0][1]}; "
                "expected one kind (convert the file)",
            )

    inside = False  # within a quoted value
    with open(path, "rb") as f:
        for n, raw in enumerate(f, 1):
            has_lf = raw.endswith(b"\n")
            body = raw[:-1] if has_lf else raw
            is_crlf = has_lf and body.endswith(b"\r")
            if is_crlf:
                body = body[:-1]
            if b"\r" in body:
                at = 0
                for i, seg in enumerate(body.split(b'"')):
                    if i:
                        inside = not inside
                        at += 1
                    if not inside and b"\r" in seg:
                        row_end("CR", n, at + seg.index(b"\r") + 1)
                    at += len(seg)
            else:
                inside ^= bool(body.count(b'"') & 1)
            if has_lf and not inside:
                row_end("CR LF" if is_crlf else "LF", n)


def _csv_header(spec: TableSpec, path: Path, reader) -> list[str]:
    """The file's header as the spec's source names (case as the spec writes them), in the
    file's order; refused for a name the spec does not know or a name twice, or when it leaves
    out a required column (a column that may be NULL may be left out)."""
    try:
        header = next(reader)
    except StopIteration:
        raise FileRefused(path, 1, None, f"empty file; expected a header line {_expected(spec)}") from None
    except csv.Error as e:
        raise FileRefused(path, 1, None, f"header not readable as CSV: {e}; expected {_expected(spec)}") from None
    found = [h.strip() for h in header]
    by_lower = {c.source.lower(): c.source for c in spec.columns}
    out: list[str] = []
    col = 1
    for i, h in enumerate(found):
        if "\x00" in h:
            raise FileRefused(path, 1, col, "NUL byte in the header; expected text")
        src = by_lower.get(h.lower())
        if src is None:
            raise FileRefused(
                path, 1, col,
                f"header field {i + 1} {h!r} is not a source column of the spec; expected {_expected(spec)}",
            )
        if src in out:
            raise FileRefused(path, 1, col, f"header field {i + 1} {h!r} appears twice; expected {_expected(spec)}")
        out.append(src)
        col += len(header[i]) + 1
    order = {c.source: i for i, c in enumerate(spec.columns)}
    missing = [s for s in required_sources(spec) if s not in out]
    if missing:
        missing.sort(key=order.get)
        raise FileRefused(
            path, 1, None,
            f"header {','.join(found) or '(empty)'} lacks required column{'s' if len(missing) > 1 else ''} "
            f"{', '.join(missing)} (a key or `required: true` column); expected {_expected(spec)}",
        )
    return out


# --------------------------------------------------------------------------- NDJSON


def _check_ndjson(spec: TableSpec, path: Path) -> LandedFile:
    sources = {c.source for c in spec.columns}
    by_lower = {c.source.lower(): c.source for c in spec.columns}
    required = required_sources(spec)
    seen: set[str] = set()
    ok_shapes: set[tuple] = set()  # field lists already judged (most files repeat a few)
    rows = 0
    decode = json.JSONDecoder().decode
    try:
        with open(path, encoding="utf-8-sig", newline="") as f:
            for n, line in enumerate(f, 1):
                text = line.rstrip("\r\n")
                if not text.strip():
                    raise FileRefused(path, n, None, "blank line; expected one JSON object per line (remove blank lines)")
                try:
                    obj = decode(text)
                except json.JSONDecodeError as e:
                    raise FileRefused(path, n, e.colno, f"not valid JSON: {e.msg}; expected one JSON object per line") from None
                except RecursionError:
                    raise FileRefused(path, n, None, "JSON nested too deeply; expected one flat JSON object per line") from None
                if not isinstance(obj, dict):
                    raise FileRefused(path, n, 1, f"a JSON {_json_kind(obj)}, expected an object {{\"field\": value, ...}}")
                shape = tuple(obj)
                if shape not in ok_shapes:
                    _check_fields(path, n, text, frozenset(shape), sources, by_lower, required)
                    ok_shapes.add(shape)
                    seen.update(shape)
                rows += 1
                if "[" not in text and text.count("{") == 1 and "\x00" not in text and "\\u0000" not in text:
                    continue  # no nested value, no NUL: nothing more to look at
                for k, v in obj.items():
                    if isinstance(v, (dict, list)):
                        raise FileRefused(
                            path, n, _colno(text, k),
                            f"field {k!r} holds a JSON {_json_kind(v)}; expected a string, number, boolean or null",
                        )
                    if isinstance(v, str) and "\x00" in v:
                        raise FileRefused(path, n, _colno(text, k), f"field {k!r} holds a NUL character; expected text")
    except UnicodeDecodeError:
        raise _encoding_error(path) from None
    if rows == 0:
        raise FileRefused(path, None, None, "empty file; expected one JSON object per line")
    cols = tuple(c.source for c in spec.columns if c.source in seen)
    return LandedFile(path, cols, tuple(c.source for c in spec.columns if c.source not in seen), rows)


def _check_fields(path, n, text, shape, sources, by_lower, required) -> None:
    for k in sorted(shape - sources):
        near = by_lower.get(k.lower())
        hint = f" (the spec writes it {near!r}: names must match exactly)" if near else ""
        raise FileRefused(
            path, n, _colno(text, k),
            f"field {k!r} is not a source column of the spec{hint}; expected fields among {', '.join(sorted(sources))}",
        )
    missing = sorted(required - shape)
    if missing:
        raise FileRefused(
            path, n, None,
            f"required field{'s' if len(missing) > 1 else ''} {', '.join(missing)} missing (a key or `required: true` column; "
            "only a column that may be NULL may be left out)",
        )


def _colno(text: str, key: str) -> int | None:
    i = text.find(json.dumps(key))
    if i < 0:
        i = text.find(key)
    return i + 1 if i >= 0 else None


def _json_kind(v) -> str:
    return {dict: "object", list: "array", str: "string", bool: "boolean", type(None): "null"}.get(type(v), "number")


# --------------------------------------------------------------------------- encoding


def _encoding_error(path: Path) -> FileRefused:
    """Locate the first byte that is not UTF-8 (line, column in characters)."""
    dec = codecs.getincrementaldecoder("utf-8")("strict")
    with open(path, "rb") as f:
        for n, raw in enumerate(f, 1):
            try:
                dec.decode(raw)
            except UnicodeDecodeError as e:
                ok = raw[: e.start].decode("utf-8", "replace")
                return FileRefused(
                    path, n, len(ok) + 1,
                    f"byte 0x{raw[e.start]:02x} is not UTF-8 ({e.reason}); expected UTF-8 text (re-export the file as UTF-8)",
                )
        try:
            dec.decode(b"", final=True)
        except UnicodeDecodeError as e:
            return FileRefused(path, n, None, f"the file ends inside a UTF-8 character ({e.reason}); expected UTF-8 text (a truncated file?)")
    return FileRefused(path, None, None, "not UTF-8 text; expected UTF-8")


# --------------------------------------------------------------------------- quarantine table

#: Query parameters of :func:`render_quarantine` (name, BigQuery type).
QUARANTINE_PARAMS = (("table_name", "STRING"), ("source_file", "STRING"), ("content_sha256", "STRING"), ("reason", "STRING"))


def render_refused_files(naming) -> str:
    """Every quarantined file (the runner reads them once per run)."""
    return f"SELECT table_name, source_file, content_sha256, reason FROM {naming.ref('quality', REFUSED_TABLE)}"


def render_quarantine(naming) -> str:
    """Record one refused file (:data:`QUARANTINE_PARAMS`)."""
    return (
        f"INSERT INTO {naming.ref('quality', REFUSED_TABLE)} (table_name, source_file, content_sha256, reason, refused_at)\n"
        "VALUES (@table_name, @source_file, @content_sha256, @reason, CURRENT_TIMESTAMP())"
    )



def refused_files_table(naming) -> "object":
    """The local quarantine table ``quality.refused_files`` (a :class:`~pipeline_sql.schema.TableDef`):
    one row per refused file content (table, file, content SHA-256, reason, when)."""
    from .schema import TableDef

    fields = (
        {"name": "table_name", "type": "STRING", "mode": "REQUIRED", "description": "the spec's table"},
        {"name": "source_file", "type": "STRING", "mode": "REQUIRED", "description": "the file, relative to the landing folder"},
        {"name": "content_sha256", "type": "STRING", "mode": "REQUIRED", "description": "SHA-256 of the refused content: another content is checked again"},
        {"name": "reason", "type": "STRING", "mode": "REQUIRED", "description": "why it was refused (file, line, column, what was expected)"},
        {"name": "refused_at", "type": "TIMESTAMP", "mode": "REQUIRED", "description": "when the run refused it"},
    )
    return TableDef(
        layer="quality",
        name=REFUSED_TABLE,
        dataset=naming.dataset("quality"),
        table_id=naming.table_id("quality", REFUSED_TABLE),
        fields=fields,
        description="flexyboots (local runs): landed files refused before loading, skipped until their content changes",
    )
