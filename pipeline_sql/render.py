"""Render a table spec into its five layers' BigQuery SQL (and its quality checks, from
:mod:`pipeline_sql.checks`).

Pure and deterministic: the same spec and :class:`~pipeline_sql.naming.Naming` always give the
same text. One template per layer lives in ``pipeline_sql/templates/``; this module only builds
the column lists and predicates that fill them. Every identifier in the output was validated by
:mod:`pipeline_sql.spec`; transform expressions are the spec author's own SQL, rendered as given.

The text is what gets deployed as BigQuery scheduled queries and what the local runner executes
on the embedded engine. The one exception is the staging layer: on BigQuery it is ``LOAD DATA``
(which the embedded engine cannot run), locally the runner loads each new file with a load job
and then runs :func:`render_staging_batch` with query parameters.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Iterable
from string import Template

from .checks import render_checks
from .naming import DATASETS, LAYERS, Naming
from .schema import pipeline_tables, render_ddl, shared_tables, sql_type
from .sqltext import string_literal
from .spec import TableSpec, schedule_minutes

TEMPLATES = Path(__file__).with_name("templates")
_FORMAT_OPTIONS = {
    "csv": "format = 'CSV'",
    "json": "format = 'JSON'",
    "parquet": "format = 'PARQUET'",
}


@lru_cache(maxsize=None)
def _template(name: str) -> Template:
    return Template((TEMPLATES / f"{name}.sql").read_text(encoding="utf-8"))


@dataclass(frozen=True)
class RenderedTable:
    table: str
    layers: dict[str, str]  # layer -> SQL script, in LAYERS order
    checks: str
    staging_batch: str  # the staging batch descriptor, with @batch_id/@source_file/... parameters
    batch_log: str  # the runner's record of an archived batch (see render_batch_log)
    rejects_view: str  # the SELECT of the quality.<t>__rejects view
    full_refresh: str  # transform + DWH rebuilt from the whole archive (see render_full_refresh)


# --------------------------------------------------------------------------- building blocks


def _indent(lines: list[str], n: int = 4) -> str:
    return "\n".join(" " * n + line for line in lines)


def row_hash(columns: list[str], prefix: str = "") -> str:
    """NULL-stable, unambiguous row hash: MD5 (hex) of ``"<name>":<value as JSON>,`` for every
    non-NULL column, in column-name order, e.g. ``"email":"a@b","id":"42",``. A NULL column adds
    nothing, so adding a column that is NULL in a version leaves that version's hash unchanged
    (no new archive version, no DWH update), and the order of the spec's columns does not
    matter. ``columns`` are the archive's column names (a renamed column keeps its first name, so
    a rename changes no hash either); JSON quoting keeps separators inside values apart.
    Natively computed on BigQuery and on the embedded engine; a hash is only ever compared
    within one warehouse."""
    parts = [
        f"IF({prefix}{c} IS NULL, '', CONCAT({string_literal(chr(34) + c + chr(34) + ':')}, TO_JSON_STRING({prefix}{c}), ','))"
        for c in sorted(columns)
    ]
    return f"TO_HEX(MD5(CONCAT({', '.join(parts)})))"


def safe_cast(expr: str, typ: str) -> str:
    """``SAFE_CAST(expr AS typ)`` from a STRING. NUMERIC is cast to NUMERIC(38, 9) through
    NUMERIC(18, 9) first: the same value on BigQuery (a value too large for 18 digits falls
    through to the full cast), but DuckDB parses an 18-digit decimal ~100x faster than a
    38-digit one (4.2 s -> 0.05 s per million values on the embedded engine)."""
    if typ == "NUMERIC":
        full = sql_type(typ)
        return f"COALESCE(SAFE_CAST(SAFE_CAST({expr} AS NUMERIC(18, 9)) AS {full}), SAFE_CAST({expr} AS {full}))"
    return f"SAFE_CAST({expr} AS {sql_type(typ)})"


def _valid_predicate(spec: TableSpec, prefix: str) -> str:
    """TRUE when every non-NULL value of the archived row casts to its declared type."""
    conds = [
        f"({prefix}{c.archive_name} IS NULL OR {safe_cast(prefix + c.archive_name, c.type)} IS NOT NULL)"
        for c in spec.columns
        if c.type != "STRING"
    ]
    return "(" + " AND ".join(conds) + ")" if conds else "TRUE"


def _order_desc(spec: TableSpec, prefix: str = "") -> str:
    """Newest first: ``version_by`` (typed, NULL oldest), then ingestion time, then row hash."""
    parts = []
    if spec.version_by:
        vt = spec.column(spec.version_by).type
        parts.append(f"{safe_cast(prefix + spec.version_by, vt)} DESC NULLS LAST")
    parts += [f"{prefix}_ingested_at DESC", f"{prefix}_row_hash DESC"]
    return ", ".join(parts)


def _order_text(spec: TableSpec) -> str:
    first = f"{spec.version_by}, " if spec.version_by else ""
    return f"{first}then _ingested_at, then _row_hash, newest first"


def _newer(spec: TableSpec, new: str, old: str, new_is_raw: bool) -> str:
    """SQL: the version ``new`` sorts strictly after the version ``old`` (same order as
    :func:`_order_desc`). ``new_is_raw``: ``new``'s version column is still a STRING."""
    tail = f"{new}._ingested_at > {old}._ingested_at OR ({new}._ingested_at = {old}._ingested_at AND {new}._row_hash > {old}._row_hash)"
    if not spec.version_by:
        return tail
    v = spec.version_by
    nv = safe_cast(f"{new}.{v}", spec.column(v).type) if new_is_raw else f"{new}.{v}"
    ov = f"{old}.{v}"
    return (
        f"({nv} > {ov}) OR ({nv} IS NOT NULL AND {ov} IS NULL) OR "
        f"(({nv} = {ov} OR ({nv} IS NULL AND {ov} IS NULL)) AND ({tail}))"
    )


def _cast(c, prefix: str = "d.") -> str:
    if c.type == "STRING":
        return f"{prefix}{c.name}"
    return safe_cast(prefix + c.name, c.type)


# --------------------------------------------------------------------------- layers


def render_staging(spec: TableSpec, naming: Naming, landing_uri: str) -> str:
    """The deployed staging: an external table over the landing prefix, hive-partitioned by the
    landing date (``dt=YYYY-MM-DD/``, a partition filter required), read for the run's window
    only (see the template)."""
    prefix = f"{landing_uri.rstrip('/')}/{spec.source.path.rstrip('/')}"
    opts = [
        _FORMAT_OPTIONS[spec.source.format],
        f"uris = [{string_literal(prefix + '/*')}]",
        f"hive_partition_uri_prefix = {string_literal(prefix)}",
        "require_hive_partition_filter = true",
    ]
    if spec.source.format == "csv":
        # allow_jagged_rows: a file landed before columns were appended to the spec lacks those
        # trailing columns, which then read NULL (BigQuery's CsvOptions.allowJaggedRows)
        opts += [
            "skip_leading_rows = 1",
            f"field_delimiter = {string_literal(spec.source.delimiter)}",
            "allow_quoted_newlines = true",
            "allow_jagged_rows = true",
        ]
    cols = ",\n".join(f"  {c.source} STRING" for c in spec.columns)
    batch = _template("staging_batch").substitute(
        staging_batch=naming.ref("staging", spec.table, "__batch"),
        batch_id="CONCAT('run-', FORMAT_TIMESTAMP('%Y%m%dT%H%M%S', @run_time))",
        source_file=f"CONCAT({string_literal(prefix + '/dt=')}, CAST(_window_start AS STRING), '..', CAST(_window_end AS STRING))",
        content_sha256="CAST(NULL AS STRING)",
        landed_at="@run_time",
    )
    return _template("staging").substitute(
        table=spec.table,
        prefix=prefix,
        window_start=f"DATE(TIMESTAMP_SUB(@run_time, INTERVAL {schedule_minutes(spec.schedule)} MINUTE))",
        window_end="DATE(@run_time)",
        landed=naming.ref("staging", spec.table, "__landed"),
        staging=naming.ref("staging", spec.table),
        staging_columns=cols,
        source_columns=",\n".join(f"  {c.source}" for c in spec.columns),
        load_options=",\n".join("  " + o for o in opts),
        batch_descriptor=batch,
    )


def transfer_data_path(spec: TableSpec) -> str:
    """The path under the bucket that a Data Transfer Service file transfer (amazon_s3) of this
    table reads, with its runtime parameters: for a daily schedule only the previous day's
    landing folder (``dt={run_time-24h|"%Y-%m-%d"}/``, complete when the run starts), so each
    run reads one day of files; for another interval the whole prefix (every run re-reads every
    file: the transfer service offers no window over several folders)."""
    path = spec.source.path
    if schedule_minutes(spec.schedule) == 24 * 60:
        return path + 'dt={run_time-24h|"%Y-%m-%d"}/*'
    return path + "*"


def render_staging_batch(spec: TableSpec, naming: Naming) -> str:
    """The local runner's batch descriptor, with @batch_id, @source_file, @content_sha256 and
    @landed_at query parameters (the scheduled query derives them from @run_time instead)."""
    return _template("staging_batch").substitute(
        staging_batch=naming.ref("staging", spec.table, "__batch"),
        batch_id="@batch_id",
        source_file="@source_file",
        content_sha256="@content_sha256",
        landed_at="@landed_at",
    )


#: A batch with at most this many distinct keys bounds the archive comparison by its keys
#: (a script variable: BigQuery allows 1 MB per variable, ~10 000 keys of up to ~100 bytes).
MAX_BOUND_KEYS = 10_000


def render_archive(spec: TableSpec, naming: Naming) -> str:
    # the archive's own column names (a renamed column keeps its first name there)
    names = [c.archive_name for c in spec.columns]
    key = [spec.column(k).archive_name for k in spec.key]
    non_key = [n for n in names if n not in key]
    return _template("archive").substitute(
        table=spec.table,
        archive=naming.ref("archive", spec.table),
        batches=naming.ref("archive", spec.table, "__batches"),
        staging=naming.ref("staging", spec.table),
        staging_batch=naming.ref("staging", spec.table, "__batch"),
        # the batch in staging as the staging layer described it; a staging layer that writes
        # no description (an amazon_s3 transfer) gets one batch per archive run
        batch_select=(
            "  SELECT\n"
            "    IFNULL(ANY_VALUE(batch_id), CONCAT('run-', FORMAT_TIMESTAMP('%Y%m%dT%H%M%E6S', _run_at))) AS batch_id,\n"
            "    ANY_VALUE(source_file) AS source_file,\n"
            "    ANY_VALUE(content_sha256) AS content_sha256\n"
            f"  FROM {naming.ref('staging', spec.table, '__batch')}"
        ),
        max_keys=MAX_BOUND_KEYS,
        max_keys_1=MAX_BOUND_KEYS + 1,
        first_key=key[0],
        first_key_source=spec.column(spec.key[0]).source,
        # back-quoted: GoogleSQL cannot parse a column named `table` unquoted in an INSERT column
        # list (found by the spec strategy: "Syntax error: Unexpected ','"), though it can elsewhere
        archive_columns=", ".join(f"`{n}`" for n in names + ["_row_hash", "_ingested_at", "_batch_id", "_source_file"]),
        renames=",\n".join(f"    {c.source} AS {c.archive_name}" for c in spec.columns),
        row_hash=row_hash(names),
        key_not_null=" AND ".join(f"{k} IS NOT NULL" for k in key),
        key_and_hash=", ".join(key + ["_row_hash"]),
        fresh_select=",\n".join([f"    {k}" for k in key] + ["    _row_hash"] + [f"    ANY_VALUE({n}) AS {n}" for n in non_key]),
        fresh_columns=",\n".join(f"  _fresh.{n}" for n in names),
        archive_match=" AND ".join([f"a.{k} = _fresh.{k}" for k in key] + ["a._row_hash = _fresh._row_hash"]),
        source_key_null=" OR ".join(f"{spec.column(k).source} IS NULL" for k in key),
    )


def _archived_columns(spec: TableSpec) -> str:
    """The archive's columns under their current names (``a.``; a dropped column left out)."""
    return ",\n".join(
        [f"    a.{_as(c)}" for c in spec.columns] + [f"    a.{m}" for m in ("_row_hash", "_ingested_at", "_batch_id", "_source_file")]
    )


def render_delta(spec: TableSpec, naming: Naming) -> str:
    key = list(spec.key)
    return _template("delta").substitute(
        table=spec.table,
        delta=naming.ref("delta", spec.table),
        archive=naming.ref("archive", spec.table),
        dwh=naming.ref("dwh", spec.table),
        rejects=naming.ref("quality", spec.table, "__rejects"),
        valid=_valid_predicate(spec, "a."),
        archived_columns=_archived_columns(spec),
        # keys are compared as typed values: '1' and '01' are one INT64 key
        typed_key_list=", ".join(_cast(spec.column(k), "") for k in key),
        order_desc=_order_desc(spec),
        order_text=_order_text(spec),
        dwh_match=" AND ".join(f"d.{k} = {_cast(spec.column(k), 'l.')}" for k in key),
        dwh_key_missing=f"d.{key[0]} IS NULL",
        newer_than_dwh=_newer(spec, "l", "d", new_is_raw=True),
    )


def render_transform(spec: TableSpec, naming: Naming) -> str:
    casts = [f"    {_cast(c)} AS {c.name}" for c in spec.columns]
    # the expression ends its own line, so a trailing `--` or `#` comment in it stays harmless
    derived = "".join(f",\n  CAST(({d.expr}\n  ) AS {sql_type(d.type)}) AS {d.name}" for d in spec.transform)
    return _template("transform").substitute(
        table=spec.table,
        transform=naming.ref("transform", spec.table),
        delta=naming.ref("delta", spec.table),
        rejects=naming.ref("quality", spec.table, "__rejects"),
        casts=",\n".join(casts),
        typed_columns=",\n".join(f"  _typed.{c.name}" for c in spec.columns),
        derived=derived,
    )


def render_dwh(spec: TableSpec, naming: Naming) -> str:
    cols = [n for n, _ in spec.dwh_columns]
    key = list(spec.key)
    return _template("dwh").substitute(
        table=spec.table,
        dwh=naming.ref("dwh", spec.table),
        transform=naming.ref("transform", spec.table),
        key_list=", ".join(key),
        order_text=_order_text(spec),
        first_key=key[0],
        source_match=" AND ".join(f"_D.{k} = _S.{k}" for k in key),
        newer_than_target=_newer(spec, "_S", "_D", new_is_raw=False),
        merge_keys=", ".join(f"IF(_delete, {k}, NULL) AS _merge_{k}" for k in key),
        merge_match=" AND ".join(f"_T.{k} = _S._merge_{k}" for k in key),
        insert_columns=", ".join(cols),
        insert_values=", ".join(f"_S.{c}" for c in cols),
    )


def render_rejects_view(spec: TableSpec, naming: Naming) -> str:
    """The rejects: every archived version whose non-NULL value fails its declared type's cast,
    one row per (version, column), with its raw key, the value and the reason. A view over the
    permanent archive, so a reject is recorded exactly once and can never be lost, whatever
    order the layers ran in."""
    archive = naming.ref("archive", spec.table)
    keys = ", ".join(_as(spec.column(k)) for k in spec.key)
    meta = "_row_hash, _batch_id, _source_file, _ingested_at"
    branches = [
        f"SELECT {keys}, {string_literal(c.name)} AS column_name, {c.archive_name} AS value, {string_literal('not a valid ' + c.type)} AS reason, {meta}\n"
        f"FROM {archive}\nWHERE {c.archive_name} IS NOT NULL AND {safe_cast(c.archive_name, c.type)} IS NULL"
        for c in spec.columns
        if c.type != "STRING"
    ]
    if not branches:
        branches = [f"SELECT {keys}, '' AS column_name, '' AS value, '' AS reason, {meta}\nFROM {archive}\nWHERE FALSE"]
    return "\nUNION ALL\n".join(branches)


def _as(c) -> str:
    """An archive column under its current name."""
    return c.name if c.archive_name == c.name else f"{c.archive_name} AS {c.name}"


def render_batch_log(spec: TableSpec, naming: Naming) -> str:
    """The runner's record of an archived batch (with @batch_id, @source_file, @content_sha256,
    @rows_in, @null_key_rows; rows_archived counts every archived version of the batch, whichever
    run archived it): written after the archive statement, so a file counts as done only once
    archived; if the runner stops in between, the file is staged and archived again, which adds
    nothing."""
    return _template("batch_log").substitute(
        batches=naming.ref("archive", spec.table, "__batches"), archive=naming.ref("archive", spec.table)
    )


def render_layer(spec: TableSpec, naming: Naming, layer: str, landing_uri: str = "gs://landing") -> str:
    if layer == "staging":
        return render_staging(spec, naming, landing_uri)
    if layer == "checks":
        return render_checks(spec, naming)
    fn = {"archive": render_archive, "delta": render_delta, "transform": render_transform, "dwh": render_dwh}.get(layer)
    if fn is None:
        raise ValueError(f"unknown layer {layer!r}; expected one of: {', '.join(LAYERS + ('checks',))}")
    return fn(spec, naming)


def render_table(spec: TableSpec, naming: Naming, landing_uri: str = "gs://landing") -> RenderedTable:
    """All of a table's SQL. ``landing_uri`` is the landing bucket (``gs://<bucket>``)."""
    return RenderedTable(
        table=spec.table,
        layers={layer: render_layer(spec, naming, layer, landing_uri) for layer in LAYERS},
        checks=render_checks(spec, naming),
        staging_batch=render_staging_batch(spec, naming),
        batch_log=render_batch_log(spec, naming),
        rejects_view=render_rejects_view(spec, naming),
        full_refresh=render_full_refresh(spec, naming),
    )


# --------------------------------------------------------------------------- runner and CLI
# The statements the runner and the CLI send besides the layers: rendered here, like the layers,
# so that pipeline_sql.statements lists exactly what runs (and the GoogleSQL analysis covers it).

#: What ``python -m pipeline_sql export`` can read: each layer's table and the rejects view.
EXPORT_LAYERS = LAYERS + ("rejects",)


def render_declared_ddl(specs, naming: Naming) -> str:
    """Every dataset and every table :mod:`pipeline_sql.schema` declares (the shared
    ``quality.check_results`` and each spec's) as one DDL script (idempotent). The runner and
    Pulumi create them through the tables API from the same declarations; this text states
    them in SQL, so their partitioning and clustering are analyzed as BigQuery would take them."""
    stmts = [f"CREATE SCHEMA IF NOT EXISTS {naming.dataset_ref(d)}" for d in DATASETS]
    stmts += [render_ddl(t) for t in shared_tables(naming)]
    for spec in specs:
        stmts += [render_ddl(t) for t in pipeline_tables(spec, naming)]
    return ";\n".join(stmts) + ";"


def render_table_states(specs, naming: Naming) -> str:
    """What the runner plans a run from, per table (one query for several): the archived file
    contents, the archive's and the DWH's high-water marks, the spec version last applied."""
    return "\nUNION ALL\n".join(
        f"SELECT {string_literal(s.table)} AS table_name,\n"
        f"  ARRAY(SELECT content_sha256 FROM {naming.ref('archive', s.table, '__batches')} WHERE content_sha256 IS NOT NULL) AS archived,\n"
        f"  (SELECT MAX(_ingested_at) FROM {naming.ref('archive', s.table)}) AS archived_through,\n"
        f"  (SELECT MAX(_through) FROM {naming.ref('dwh', s.table)}) AS applied_through,\n"
        f"  (SELECT spec_version FROM {naming.ref('archive', s.table, '__specs')} ORDER BY applied_at DESC LIMIT 1) AS spec_version"
        for s in specs
    )


def render_truncate_staging_batch(spec: TableSpec, naming: Naming) -> str:
    """Forget the previous batch's description before a new file is loaded into staging."""
    return f"TRUNCATE TABLE {naming.ref('staging', spec.table, '__batch')}"


def render_truncate_staging(spec: TableSpec, naming: Naming) -> str:
    """Empty staging: the rows of a file refused after its load job (its check runs beside the
    load) never stay where an archive could read them."""
    return f"TRUNCATE TABLE {naming.ref('staging', spec.table)}"


def render_archived_hashes(spec: TableSpec, naming: Naming) -> str:
    """The content hashes of the files archived so far (the runner skips those files)."""
    return f"SELECT content_sha256 FROM {naming.ref('archive', spec.table, '__batches')} WHERE content_sha256 IS NOT NULL"


def render_batches_count(spec: TableSpec, naming: Naming) -> str:
    """How many batches the table's batch log lists (column ``n``): the runner's state check
    when the archive it refers to is missing."""
    return f"SELECT COUNT(*) AS n FROM {naming.ref('archive', spec.table, '__batches')}"


def render_staging_add_columns(spec: TableSpec, naming: Naming, sources: Iterable[str]) -> str:
    """Add the source columns a landed CSV file lacks to the staging table it was loaded into
    (they read NULL)."""
    return f"ALTER TABLE {naming.ref('staging', spec.table)} " + ", ".join(f"ADD COLUMN IF NOT EXISTS `{c}` STRING" for c in sources)


def render_staging_rows(spec: TableSpec, naming: Naming) -> str:
    """Rows in staging after a LOAD DATA (column ``n``)."""
    return f"SELECT COUNT(*) AS n FROM {naming.ref('staging', spec.table)}"


def export_order(spec: TableSpec, layer: str) -> list[str]:
    """The columns an export of ``layer`` is sorted by (the key first)."""
    if layer == "staging":
        return [spec.column(k).source for k in spec.key]
    if layer == "archive":
        return [spec.column(k).archive_name for k in spec.key] + ["_ingested_at", "_row_hash"]
    if layer == "rejects":
        return list(spec.key) + ["_ingested_at", "column_name"]
    return list(spec.key)


def render_export(spec: TableSpec, naming: Naming, layer: str) -> str:
    """Every row of a layer's table (or of the rejects view), sorted by key, NULLs last."""
    if layer not in EXPORT_LAYERS:
        raise ValueError(f"unknown layer {layer!r}; expected one of: {', '.join(EXPORT_LAYERS)}")
    ref = naming.ref("quality", spec.table, "__rejects") if layer == "rejects" else naming.ref(layer, spec.table)
    order = ", ".join(f"{c} IS NULL, {c}" for c in export_order(spec, layer))
    return f"SELECT * FROM {ref} ORDER BY {order}"


def render_dwh_snapshot(spec: TableSpec, naming: Naming) -> str:
    """The DWH's business columns (the demo compares them round by round)."""
    return f"SELECT {', '.join(n for n, _ in spec.dwh_columns)} FROM {naming.ref('dwh', spec.table)}"


def render_rejects_listing(spec: TableSpec, naming: Naming) -> str:
    """The rejects, oldest first (the demo prints the new ones)."""
    return f"SELECT * FROM {naming.ref('quality', spec.table, '__rejects')} ORDER BY _ingested_at, column_name"


# --------------------------------------------------------------------------- spec evolution
# The statements that apply a spec change (see pipeline_sql.evolution): the runner sends them
# locally; deployed, Pulumi applies the same table schemas (schema.py) in place.


def render_columns_probe(spec: TableSpec, naming: Naming, layer: str, suffix: str = "") -> str:
    """No rows, only the table's current columns (the result's schema): what the table holds
    now, read the same way on both engines (the embedded engine's INFORMATION_SCHEMA does not
    follow ALTER TABLE)."""
    return f"SELECT * FROM {naming.ref(layer, spec.table, suffix)} LIMIT 0"


def render_cast_failures(spec: TableSpec, naming: Naming, archive_name: str, typ: str) -> str:
    """How many archived versions hold a value of an archive column that fails its cast to
    ``typ`` (the rejects of that column; asked before a typed column is dropped, see
    :func:`pipeline_sql.evolution.spec_changes`)."""
    return (
        f"SELECT COUNT(*) AS failing FROM {naming.ref('archive', spec.table)}\n"
        f"WHERE {archive_name} IS NOT NULL AND {safe_cast(archive_name, typ)} IS NULL"
    )


def render_add_column(table_id: str, name: str, typ: str) -> str:
    """A nullable column added in place (existing rows read NULL)."""
    return f"ALTER TABLE `{table_id}` ADD COLUMN IF NOT EXISTS {name} {sql_type(typ)}"


def render_rename_column(table_id: str, old: str, new: str) -> str:
    return f"ALTER TABLE `{table_id}` RENAME COLUMN {old} TO {new}"


def render_drop_column(table_id: str, name: str) -> str:
    """Only ever for the DWH (rebuildable from the archive), never for the archive."""
    return f"ALTER TABLE `{table_id}` DROP COLUMN IF EXISTS {name}"


def render_recorded_spec(spec: TableSpec, naming: Naming) -> str:
    """The spec version the table was last run with, and its shape (JSON)."""
    return (
        f"SELECT spec_version, spec FROM {naming.ref('archive', spec.table, '__specs')}\n"
        "ORDER BY applied_at DESC LIMIT 1"
    )


def render_record_spec(spec: TableSpec, naming: Naming) -> str:
    """Record a spec version the runner applied (``@spec_version``, ``@spec``, ``@full_refresh``)."""
    return (
        f"INSERT INTO {naming.ref('archive', spec.table, '__specs')} (spec_version, spec, applied_at, full_refresh)\n"
        "VALUES (@spec_version, @spec, CURRENT_TIMESTAMP(), @full_refresh)"
    )


def render_full_refresh(spec: TableSpec, naming: Naming) -> str:
    """Rebuild transform and DWH from the whole archive with the current spec: the delta holds
    the latest valid version of every key (by the same order as the delta layer), the transform
    layer's very SQL types it, and one MERGE makes the DWH equal to it (every row rewritten,
    keys no longer valid removed, ``_inserted_at`` kept for the keys it had). Same text on
    BigQuery (a manual-only scheduled query) and locally (``run --full-refresh``)."""
    key = list(spec.key)
    cols = [n for n, _ in spec.dwh_columns]
    meta = ["_row_hash", "_ingested_at", "_batch_id", "_through"]
    return _template("full_refresh").substitute(
        table=spec.table,
        archive=naming.ref("archive", spec.table),
        delta=naming.ref("delta", spec.table),
        dwh=naming.ref("dwh", spec.table),
        archived_columns=_archived_columns(spec),
        valid=_valid_predicate(spec, "a."),
        typed_key_list=", ".join(_cast(spec.column(k), "") for k in key),
        order_desc=_order_desc(spec),
        order_text=_order_text(spec),
        transform_sql=render_transform(spec, naming),
        transform=naming.ref("transform", spec.table),
        merge_match=" AND ".join(f"_T.{k} = _S.{k}" for k in key),
        update_set=",\n    ".join(f"{c} = _S.{c}" for c in cols + meta) + ",\n    _updated_at = _run_at",
        insert_columns=", ".join(cols + meta + ["_inserted_at", "_updated_at"]),
        insert_values=", ".join(f"_S.{c}" for c in cols + meta) + ", _run_at, _run_at",
    )
