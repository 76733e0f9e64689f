"""The tables each table spec owns, per layer, with their BigQuery schemas.

Pure: the Pulumi ``TablePipeline`` declares the persistent ones as ``gcp.bigquery.Table``; the
local runner creates all of them with :func:`render_ddl` before the first run, so layers can
run in any order from the start.
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
    #: True for tables the layer SQL rebuilds itself (CREATE OR REPLACE / LOAD DATA
    #: OVERWRITE): Pulumi must not manage them; the local runner creates them once.
    rebuilt_by_sql: bool = False
    #: True for the permanent history / target tables that a prod stack protects.
    protected: bool = False
    description: str = ""
    #: set for views: the SELECT that defines the view (``fields`` then lists its columns)
    view_query: str | None = None


def _f(name: str, typ: str, mode: str = "NULLABLE") -> dict:
    return {"name": name, "type": "NUMERIC" if typ.startswith("NUMERIC") else typ, "mode": mode}


_REJECT_FIELDS = ("column_name", "value", "reason")


def pipeline_tables(spec: TableSpec, naming: Naming) -> list[TableDef]:
    """Every table the five layers of ``spec`` read or write, in layer order."""
    t = spec.table
    raw = [_f(c.source, "STRING") for c in spec.columns]
    renamed = [_f(c.name, "STRING") for c in spec.columns]
    archive_meta = [_f(n, ty) for n, ty in ARCHIVE_META]
    typed = [_f(n, ty) for n, ty in spec.dwh_columns]
    key_raw = [_f(k, "STRING") for k in spec.key]
    from .render import render_rejects_view  # render imports this module

    def d(layer: str, suffix: str, fields, **kw) -> TableDef:
        return TableDef(
            layer=layer,
            name=t + suffix,
            dataset=naming.dataset(layer),
            table_id=naming.table_id(layer, t, suffix),
            fields=tuple(fields),
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
            renamed + archive_meta,
            partition={"field": "_ingested_at", "type": "DAY"},
            clustering=spec.key[:4],
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
            ],
            protected=True,
            description=f"{t}: one row per archived batch",
        ),
        d(
            "delta",
            "",
            renamed + archive_meta + [_f("_valid", "BOOL"), _f("_through", "TIMESTAMP")],
            rebuilt_by_sql=True,
            description=f"{t}: versions new to or newer than the DWH (and the window's invalid ones)",
        ),
        d(
            "transform",
            "",
            typed + archive_meta + [_f("_through", "TIMESTAMP")],
            rebuilt_by_sql=True,
            description=f"{t}: the planned DWH schema",
        ),
        d(
            "dwh",
            "",
            typed + [_f(n, ty) for n, ty in DWH_META],
            partition=dwh_part,
            clustering=spec.dwh.cluster_by,
            protected=True,
            description=f"{t}: latest valid version per key",
        ),
        d(
            "quality",
            "__rejects",
            key_raw + [_f(n, "STRING") for n in _REJECT_FIELDS] + [_f(n, ty) for n, ty in ARCHIVE_META if n != "_ingested_at"]
            + [_f("_ingested_at", "TIMESTAMP")],
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
