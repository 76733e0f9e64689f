"""Every SQL statement flexyboots sends to BigQuery, with the query parameters it is run with.

Pure (no BigQuery, no ZetaSQL): a list of :class:`Statement` per table spec and naming, built
from the same render functions the deployment, the runner and the CLI call, so the list cannot
drift from what runs. :mod:`pipeline_sql.googlesql` analyzes it; the tests require every
statement of every shipped spec, of the test specs and of generated specs to analyze clean.

=====================  =====================================================================
kind                   what runs it
=====================  =====================================================================
layer:<layer>          the five layers (scheduled queries on BigQuery; the runner locally;
                       ``layer:staging``, the external table over the landing prefix and the
                       copy of the run's window, runs on BigQuery with ``@run_time``)
checks                 the quality checks script (sixth scheduled query and runner, ``@run_time``)
check_results:<of>     the runner's reads of ``quality.check_results`` (one run's, or history)
staging_batch          the runner's batch descriptor (``@batch_id``, ``@source_file``, ...)
truncate_batch         the runner's TRUNCATE of the batch descriptor before a load
batch_log              the runner's record of an archived batch (``@rows_in``, ...)
table_states           the runner's plan query (archived contents and high-water marks)
batches_count          the runner's state check: batches its log lists when the archive is missing
staging_add_columns    the runner's ALTER of staging after loading a CSV file that lacks
                       NULL-able columns (they read NULL; shown with every NULL-able column)
refused_files:<what>   the runner's quarantine of refused landed files (``read``, ``insert``;
                       local state: ``quality.refused_files``, :mod:`pipeline_sql.landed`)
archived_hashes        the runner's query of archived file contents
staging_rows           the runner's row count of staging (real project)
ddl                    every dataset and declared table as DDL: the runner and Pulumi create
                       them through the tables API from the same declarations (schema.py); the
                       DDL states their partitioning, clustering and views as BigQuery takes them
export:<layer>         ``python -m pipeline_sql export`` (every layer and the rejects)
demo_snapshot          the demo's DWH snapshot query
demo_rejects           the demo's rejects listing
full_refresh           ``run --full-refresh`` and the manual-only scheduled query: transform and
                       DWH rebuilt from the whole archive
recorded_spec          the runner's read of the spec version last applied (``__specs``)
record_spec            the runner's record of an applied spec version (``@spec_version``, ...)
columns_probe:<t>      the runner's read of a persistent table's current columns (LIMIT 0)
add_column:<t>         ``ALTER TABLE ADD COLUMN`` of a column a spec adds (archive, batches, dwh)
rename_column:dwh      ``ALTER TABLE RENAME COLUMN`` of a renamed column in the DWH
drop_column:dwh        ``ALTER TABLE DROP COLUMN`` of a dropped column in the DWH
cast_failures:<c>      the runner's count of archived values of a typed column that fail its
                       cast, before the column is dropped
=====================  =====================================================================

Adding a statement kind (a new layer, a check-results insert, a new staging design): render it
with a pure function in :mod:`pipeline_sql.render` (or your own module), call that function where
the SQL runs, and add one ``Statement`` to :func:`table_statements` (per table) or
:func:`project_statements` (once per project) with the query parameters it is run with and their
BigQuery types. Tables it creates or replaces must be declared in :mod:`pipeline_sql.schema`
(their columns are compared with the declaration; a table every spec shares goes in
:func:`pipeline_sql.schema.shared_tables`); TEMP tables need no declaration. The analysis
tests pick it up for every spec, shipped and generated, with no other change.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Iterable

from .checks import CHECK_RESULTS_PARAMS, render_check_results
from .naming import LAYERS, Naming
from .render import (
    EXPORT_LAYERS,
    render_add_column,
    render_archived_hashes,
    render_batches_count,
    render_staging_add_columns,
    render_cast_failures,
    render_columns_probe,
    render_drop_column,
    render_record_spec,
    render_recorded_spec,
    render_rename_column,
    render_declared_ddl,
    render_table_states,
    render_dwh_snapshot,
    render_export,
    render_rejects_listing,
    render_staging_rows,
    render_table,
    render_truncate_staging,
    render_truncate_staging_batch,
)
from .landed import QUARANTINE_PARAMS, render_quarantine, render_refused_files, required_sources
from .spec import TableSpec

#: Query parameters of a scheduled query run by the Data Transfer Service.
SCHEDULED_PARAMS = (("run_time", "TIMESTAMP"),)
#: What the runner binds to the staging batch descriptor and to the batch log.
STAGING_BATCH_PARAMS = (
    ("batch_id", "STRING"),
    ("source_file", "STRING"),
    ("content_sha256", "STRING"),
    ("landed_at", "TIMESTAMP"),
)
BATCH_LOG_PARAMS = (
    ("batch_id", "STRING"),
    ("source_file", "STRING"),
    ("content_sha256", "STRING"),
    ("rows_in", "INT64"),
    ("null_key_rows", "INT64"),
    ("spec_version", "STRING"),
)
#: What the runner binds when it records an applied spec version.
RECORD_SPEC_PARAMS = (("spec_version", "STRING"), ("spec", "STRING"), ("full_refresh", "BOOL"))


@dataclass(frozen=True)
class Statement:
    kind: str
    sql: str
    table: str = ""  # the spec's table ("" for project-wide statements)
    params: tuple[tuple[str, str], ...] = ()  # (name, BigQuery type) of each query parameter
    where: str = ""  # naming, e.g. "acme-data-prod/prod"

    @property
    def label(self) -> str:
        who = f"{self.table}/" if self.table else ""
        return f"{who}{self.kind} ({self.where})" if self.where else f"{who}{self.kind}"


def _where(naming: Naming) -> str:
    return f"{naming.project}/{naming.env or '-'}"


def table_statements(spec: TableSpec, naming: Naming, landing_uri: str = "gs://landing") -> list[Statement]:
    """Every statement flexyboots runs for one table (not the project-wide bootstrap)."""
    r = render_table(spec, naming, landing_uri)
    w = _where(naming)

    def s(kind: str, sql: str, params=()) -> Statement:
        return Statement(kind, sql, spec.table, tuple(params), w)

    out = [s(f"layer:{layer}", r.layers[layer], SCHEDULED_PARAMS if layer == "staging" else ()) for layer in LAYERS]
    out += [
        s("checks", r.checks, SCHEDULED_PARAMS),
        s("staging_batch", r.staging_batch, STAGING_BATCH_PARAMS),
        s("truncate_batch", render_truncate_staging_batch(spec, naming)),
        s("truncate_staging", render_truncate_staging(spec, naming)),
        s("batch_log", r.batch_log, BATCH_LOG_PARAMS),
        s("archived_hashes", render_archived_hashes(spec, naming)),
        s("batches_count", render_batches_count(spec, naming)),
        s("table_states", render_table_states([spec], naming)),
        s("staging_rows", render_staging_rows(spec, naming)),
        s("demo_snapshot", render_dwh_snapshot(spec, naming)),
        s("demo_rejects", render_rejects_listing(spec, naming)),
        s("full_refresh", r.full_refresh),
        s("recorded_spec", render_recorded_spec(spec, naming)),
        s("record_spec", render_record_spec(spec, naming), RECORD_SPEC_PARAMS),
    ]
    nullable = [c.source for c in spec.columns if c.source not in required_sources(spec)]
    if spec.source.format == "csv" and nullable:
        out.append(s("staging_add_columns", render_staging_add_columns(spec, naming, nullable)))
    out += _evolution_statements(spec, naming, s)
    out += [s(f"export:{layer}", render_export(spec, naming, layer)) for layer in EXPORT_LAYERS]
    out += [s(f"check_results:{of}", render_check_results(naming, of), params) for of, params in CHECK_RESULTS_PARAMS.items()]
    return out


def _evolution_statements(spec: TableSpec, naming: Naming, s) -> list[Statement]:
    """The runner's schema changes for a spec change, as it would send them for this spec: the
    probes of the persistent tables, a column added to each (its last column, as after an
    addition), a DWH column renamed and dropped (analyzed against the declared tables)."""
    from .schema import pipeline_tables

    out = []
    for td in pipeline_tables(spec, naming):
        if not td.persistent:
            continue
        suffix = td.name[len(spec.table):]
        out.append(s(f"columns_probe:{td.layer}{suffix}", render_columns_probe(spec, naming, td.layer, suffix)))
        last = td.fields[-1]
        out.append(s(f"add_column:{td.layer}{suffix}", render_add_column(td.table_id, last["name"], last["type"])))
    dwh = naming.table_id("dwh", spec.table)
    name, _ = spec.dwh_columns[-1]
    out.append(s("rename_column:dwh", render_rename_column(dwh, name, f"{name}_renamed")))
    out.append(s("drop_column:dwh", render_drop_column(dwh, name)))
    out += [
        s(f"cast_failures:{c.name}", render_cast_failures(spec, naming, c.archive_name, c.type))
        for c in spec.columns + spec.dropped
        if c.type != "STRING"
    ]
    return out


def project_statements(specs: Iterable[TableSpec], naming: Naming, landing_uri: str = "gs://landing") -> list[Statement]:
    """Every statement for a set of specs: the DDL of every declared table, the runner's plan
    query over all of them, then each table's statements."""
    specs = list(specs)
    out = [Statement("ddl", render_declared_ddl(specs, naming), "", (), _where(naming))]
    if len(specs) > 1:
        out.append(Statement("table_states", render_table_states(specs, naming), "", (), _where(naming)))
    out.append(Statement("refused_files:read", render_refused_files(naming), "", (), _where(naming)))
    out.append(Statement("refused_files:insert", render_quarantine(naming), "", QUARANTINE_PARAMS, _where(naming)))
    for spec in specs:
        out += table_statements(spec, naming, landing_uri)
    return out
