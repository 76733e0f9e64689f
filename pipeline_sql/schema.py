"""The tables each table spec owns, per layer, with their BigQuery schemas.

Pure: the Pulumi ``TablePipeline`` declares the persistent ones as ``gcp.bigquery.Table``; the
local runner creates all of them with :func:`render_ddl` before the first run, so layers can
run in any order from the start.

Descriptions: a field carries ``"description"`` when there is one (the spec's column or
derived-column ``description``; a fixed text for the pipeline's own ``_`` columns,
:data:`META_DESCRIPTIONS`); a table's description is the spec's ``description`` followed by
what that layer's table holds. BigQuery shows them for the tables Pulumi declares (archive,
dwh, the rejects view, an S3 table's staging); tables the SQL rebuilds keep the SQL's.
"""

from __future__ import annotations

from dataclasses import dataclass

from .naming import Naming
from .spec import TableSpec

#: Bookkeeping columns the archive adds to the renamed business columns.
ARCHIVE_META = (
    ("_row_hash", "STRING"),
    ("_ingested_at", "TIMESTAMP"),
    ("_batch_id", "STRING"),
    ("_source_file", "STRING"),
)
DWH_META = (
    ("_row_hash", "STRING"),
    ("_ingested_at", "TIMESTAMP"),
    ("_batch_id", "STRING"),
    ("_through", "TIMESTAMP"),
    ("_inserted_at", "TIMESTAMP"),
    ("_updated_at", "TIMESTAMP"),
)


#: What the pipeline's own columns mean (their BigQuery descriptions).
META_DESCRIPTIONS = {
    "_row_hash": "MD5 (hex) of the renamed business values as a JSON array: identifies a version of a key",
    "_ingested_at": "when the archive layer stored this version",
    "_batch_id": "the batch (landed file) this version was archived from",
    "_source_file": "the landed file this version was archived from",
    "_valid": "TRUE when every non-NULL value casts to its declared type",
    "_through": "the archive high-water mark (latest _ingested_at) of the delta this row was merged from",
    "_inserted_at": "when the dwh layer inserted this key",
    "_updated_at": "when the dwh layer last updated this key",
}


def sql_type(t: str) -> str:
    """The type used in SQL casts and DDL. Plain NUMERIC keeps only 3 decimals on the embedded
    engine, so NUMERIC is always declared with its full BigQuery precision and scale."""
    return "NUMERIC(38, 9)" if t == "NUMERIC" else t


@dataclass(frozen=True)
class TableDef:
    layer: str
    name: str
    dataset: str
    table_id: str  # project.dataset.table
    fields: tuple[dict, ...]  # BigQuery schema JSON: {"name", "type", "mode"[, "fields"]}
    partition: dict | None = None  # {"field": ..., "type": "DAY"|...} (time partitioning)
    clustering: tuple[str, ...] = ()
    #: True for tables the layer SQL rebuilds itself (CREATE OR REPLACE
    #: OVERWRITE): Pulumi must not manage them; the local runner creates them once.
    rebuilt_by_sql: bool = False
    #: True for the permanent history / target tables that a prod stack protects.
    protected: bool = False
    description: str = ""
    #: set for views: the SELECT that defines the view (``fields`` then lists its columns)
    view_query: str | None = None

    @property
    def persistent(self) -> bool:
        """A table whose rows the pipeline keeps from run to run (not a view, not rebuilt by a
        layer's SQL): what the state check verifies and a spec change alters in place."""
        return self.view_query is None and not self.rebuilt_by_sql


def _f(name: str, typ: str, mode: str = "NULLABLE", description: str = "") -> dict:
    field = {"name": name, "type": "NUMERIC" if typ.startswith("NUMERIC") else typ, "mode": mode}
    if description:
        field["description"] = description
    return field


def _m(name: str, typ: str) -> dict:
    """One of the pipeline's own columns, with its fixed description."""
    return _f(name, typ, description=META_DESCRIPTIONS[name])


_REJECT_FIELDS = ("column_name", "value", "reason")


def pipeline_tables(spec: TableSpec, naming: Naming) -> list[TableDef]:
    """Every table the five layers of ``spec`` read or write, in layer order."""
    t = spec.table
    about = {c.name: c.description for c in spec.columns} | {d.name: d.description for d in spec.transform}
    raw = [_f(c.source, "STRING", description=c.description) for c in spec.columns]
    renamed = [_f(c.name, "STRING", description=c.description) for c in spec.columns]
    # the archive keeps each column under its first name, and keeps dropped columns
    archived = [_f(c.archive_name, "STRING", description=c.description) for c in spec.archive_columns]
    archive_meta = [_m(n, ty) for n, ty in ARCHIVE_META]
    typed = [_f(n, ty, description=about[n]) for n, ty in spec.dwh_columns]
    key_raw = [_f(k, "STRING", description=about[k]) for k in spec.key]
    from .render import render_rejects_view  # render imports this module

    def d(layer: str, suffix: str, fields, description: str, **kw) -> TableDef:
        return TableDef(
            layer=layer,
            name=t + suffix,
            dataset=naming.dataset(layer),
            table_id=naming.table_id(layer, t, suffix),
            fields=tuple(fields),
            description=f"{spec.description}\n\n{description}" if spec.description else description,
            **kw,
        )

    dwh_part = None
    if spec.dwh.partition_by:
        dwh_part = {"field": spec.dwh.partition_by.column, "type": spec.dwh.partition_by.granularity}
    return [
        d("staging", "", raw, rebuilt_by_sql=True, description=f"{t}: landed rows of the current batch, as loaded"),
        d(
            "staging",
            "__batch",
            [_f("batch_id", "STRING"), _f("source_file", "STRING"), _f("content_sha256", "STRING"), _f("landed_at", "TIMESTAMP")],
            # an amazon_s3 staging transfer writes no description: the table must exist empty
            rebuilt_by_sql=spec.source.location == "gcs",
            description=f"{t}: the batch now in staging",
        ),
        d(
            "archive",
            "",
            archived + archive_meta,
            partition={"field": "_ingested_at", "type": "DAY"},
            clustering=tuple(spec.column(k).archive_name for k in spec.key[:4]),
            protected=True,
            description=f"{t}: full permanent history (renamed, deduplicated on key + row hash)",
        ),
        d(
            "archive",
            "__batches",
            [
                _f("batch_id", "STRING"),
                _f("source_file", "STRING"),
                _f("content_sha256", "STRING"),
                _f("rows_in", "INT64"),
                _f("null_key_rows", "INT64"),
                _f("rows_archived", "INT64"),
                _f("archived_at", "TIMESTAMP"),
                _f("spec_version", "STRING", description="the spec version (pipeline_sql.evolution.spec_version) that archived the batch"),
            ],
            protected=True,
            description=f"{t}: one row per archived batch",
        ),
        d(
            "archive",
            "__specs",
            [
                _f("spec_version", "STRING"),
                _f("spec", "STRING", description="the spec's shape as JSON (pipeline_sql.evolution.spec_shape)"),
                _f("applied_at", "TIMESTAMP"),
                _f("full_refresh", "BOOL", description="TRUE when a full refresh rebuilt the DWH with this version"),
            ],
            protected=True,
            description=f"{t}: the spec versions the runner applied, one row each (the newest is the DWH's)",
        ),
        d(
            "delta",
            "",
            renamed + archive_meta + [_m("_valid", "BOOL"), _m("_through", "TIMESTAMP")],
            rebuilt_by_sql=True,
            description=f"{t}: versions new to or newer than the DWH (and the window's invalid ones)",
        ),
        d(
            "transform",
            "",
            typed + archive_meta + [_m("_through", "TIMESTAMP")],
            rebuilt_by_sql=True,
            description=f"{t}: the planned DWH schema",
        ),
        d(
            "dwh",
            "",
            typed + [_m(n, ty) for n, ty in DWH_META],
            partition=dwh_part,
            clustering=spec.dwh.cluster_by,
            protected=True,
            description=f"{t}: latest valid version per key",
        ),
        d(
            "quality",
            "__rejects",
            key_raw + [_f(n, "STRING") for n in _REJECT_FIELDS] + [_m(n, ty) for n, ty in ARCHIVE_META if n != "_ingested_at"]
            + [_m("_ingested_at", "TIMESTAMP")],
            view_query=render_rejects_view(spec, naming),
            description=f"{t}: archived values that fail their declared type, one row per column (a view)",
        ),
    ]


def _ddl_type(field: dict, spec_types: dict[str, str]) -> str:
    if field["type"] == "RECORD":
        inner = ", ".join(f"{f['name']} {_ddl_type(f, {})}" for f in field["fields"])
        base = f"STRUCT<{inner}>"
    elif field["type"] == "NUMERIC":
        base = "NUMERIC(38, 9)"
    else:
        base = field["type"]
    return f"ARRAY<{base}>" if field.get("mode") == "REPEATED" else base


def render_ddl(table: TableDef) -> str:
    """``CREATE TABLE IF NOT EXISTS`` for one table (partition and cluster clauses included:
    BigQuery applies them, the embedded engine accepts and ignores them); ``CREATE OR REPLACE
    VIEW`` for a view."""
    if table.view_query is not None:
        return f"CREATE OR REPLACE VIEW `{table.table_id}` AS\n{table.view_query}"
    cols = ",\n".join(f"  {f['name']} {_ddl_type(f, {})}" for f in table.fields)
    sql = f"CREATE TABLE IF NOT EXISTS `{table.table_id}` (\n{cols}\n)"
    if table.partition:
        gran = table.partition["type"]
        field = table.partition["field"]
        ftype = next(f["type"] for f in table.fields if f["name"] == field)
        if ftype == "DATE":
            sql += f"\nPARTITION BY {field}" if gran == "DAY" else f"\nPARTITION BY DATE_TRUNC({field}, {gran})"
        else:
            sql += f"\nPARTITION BY TIMESTAMP_TRUNC({field}, {gran})"
    if table.clustering:
        sql += f"\nCLUSTER BY {', '.join(table.clustering)}"
    return sql


def shared_tables(naming: Naming) -> list[TableDef]:
    """Tables every table's pipeline shares: ``quality.check_results`` (each check's result of
    every run; partitioned by day of ``checked_at``, clustered by table and check; permanent)."""
    from .checks import RESULTS_FIELDS, RESULTS_TABLE

    fields = tuple({"name": n, "type": t, "mode": m, "description": d} for n, t, m, d in RESULTS_FIELDS)
    return [
        TableDef(
            layer="quality",
            name=RESULTS_TABLE,
            dataset=naming.dataset("quality"),
            table_id=naming.table_id("quality", RESULTS_TABLE),
            fields=fields,
            partition={"field": "checked_at", "type": "DAY"},
            clustering=("table_name", "check_name"),
            protected=True,
            description="flexyboots: the result of every data-quality check of every run (appended by each table's checks)",
        )
    ]
