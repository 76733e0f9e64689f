"""OpenLineage run events for the five layers (with ``openlineage-python``'s own classes).

One job per step of a table (``<table>.<layer>``: staging, archive, delta, transform, dwh,
checks, and ``<table>.rejects`` for the view's definition) in the job namespace
``flexyboots.<project>[.<env>]``. Each event carries:

* inputs and outputs named by OpenLineage's conventions: BigQuery tables as namespace
  ``bigquery``, name ``<project>.<dataset>.<table>``; landed files as ``gs://<bucket>`` +
  the prefix (or ``file`` + the folder, for a local landing folder);
* on every dataset the ``schema`` facet (columns, types, the spec's descriptions), on the DWH
  the ``documentation`` facet (the spec's description);
* on every output the ``columnLineage`` facet: per column its input columns with DIRECT
  transformations (IDENTITY for loads and renames, TRANSFORMATION for casts, derived
  expressions and the masking row hash) and the dataset-level INDIRECT ones (the key window,
  the filters, the MERGE's join);
* the job's ``sql`` facet (the rendered SQL of that layer, the very text deployed) and
  ``jobType`` (BATCH, integration FLEXYBOOTS);
* from a real run (:func:`run_events`): ``outputStatistics`` (rows written), the checks'
  results as ``dataQualityAssertions`` on the checked DWH table, ``errorMessage`` on FAIL.

:func:`lineage_events` describes the lineage as declared (one COMPLETE event per step, the
``lineage --format openlineage`` command); :func:`run_events` describes what a runner run did;
:func:`emit` sends events with the client's file or HTTP transport.
"""

from __future__ import annotations

import datetime as dt
from typing import Iterable, Sequence

from .lineage import STEPS, Hop, Lineage, Step
from .naming import Naming

#: URI naming the producer of the events
PRODUCER = "urn:flexyboots:pipeline_sql"
INTEGRATION = "FLEXYBOOTS"
#: the OpenLineage spec version the events follow (openlineage-python 1.54.0's)
SPEC_URL = "https://openlineage.io/spec/2-0-2/OpenLineage.json"

_KIND_TO_TRANSFORMATION = {
    "identity": ("IDENTITY", False),
    "rename": ("IDENTITY", False),
    "cast": ("TRANSFORMATION", False),
    "derived": ("TRANSFORMATION", False),
    "hash": ("TRANSFORMATION", True),
}


def job_namespace(naming: Naming) -> str:
    return f"flexyboots.{naming.project}" + (f".{naming.env}" if naming.env else "")


def dataset_name(lin: Lineage, dataset_id: str) -> tuple[str, str]:
    """(namespace, name) of a dataset, by OpenLineage's naming conventions."""
    ds = lin.datasets[dataset_id]
    if ds.kind != "files":
        return "bigquery", ds.location
    loc = ds.location.removesuffix("*")
    if loc.startswith("gs://"):
        bucket, _, path = loc[len("gs://"):].partition("/")
        return f"gs://{bucket}", path or "/"
    return "file", loc


def _facets():
    from openlineage.client.event_v2 import set_producer

    set_producer(PRODUCER)  # the facets' _producer: these are flexyboots' facets
    from openlineage.client.facet_v2 import (
        column_lineage_dataset,
        data_quality_assertions_dataset,
        documentation_dataset,
        error_message_run,
        job_type_job,
        output_statistics_output_dataset,
        schema_dataset,
        sql_job,
    )

    return (
        column_lineage_dataset, data_quality_assertions_dataset, documentation_dataset, error_message_run,
        job_type_job, output_statistics_output_dataset, schema_dataset, sql_job,
    )


def _dataset_facets(lin: Lineage, dataset_id: str) -> dict:
    _, _, documentation_dataset, _, _, _, schema_dataset, _ = _facets()
    ds = lin.datasets[dataset_id]
    fields = [
        schema_dataset.SchemaDatasetFacetFields(name=n, type=t, description=ds.descriptions.get(n) or None, ordinal_position=i + 1)
        for i, (n, t) in enumerate(ds.columns)
    ]
    facets = {"schema": schema_dataset.SchemaDatasetFacet(fields=fields)}
    if ds.description:
        facets["documentation"] = documentation_dataset.DocumentationDatasetFacet(description=ds.description)
    return facets


def _column_lineage(lin: Lineage, step: Step, output: str):
    column_lineage_dataset = _facets()[0]
    C = column_lineage_dataset

    def field(ds: str, col: str, tr) -> "C.InputField":
        ns, name = dataset_name(lin, ds)
        return C.InputField(namespace=ns, name=name, field=col, transformations=tr)

    fields: dict[str, C.Fields] = {}
    for col, _ in lin.datasets[output].columns:
        hops: list[Hop] = [h for h in lin.hops_into(output, col) if h.source[0] in step.inputs]
        if not hops:
            continue
        inputs = []
        for h in hops:
            subtype, masking = _KIND_TO_TRANSFORMATION[h.kind]
            tr = C.Transformation(type="DIRECT", subtype=subtype, description=h.detail or None, masking=masking)
            inputs.append(field(h.source[0], h.source[1], [tr]))
        fields[col] = C.Fields(inputFields=inputs)
    if not fields:
        return None
    indirect = [
        field(ds, col, [C.Transformation(type="INDIRECT", subtype=sub, description=why)])
        for ds, col, sub, why in _indirect(lin, step)
    ]
    return C.ColumnLineageDatasetFacet(fields=fields, dataset=indirect)


def _indirect(lin: Lineage, step: Step) -> list[tuple[str, str, str, str]]:
    """Columns that decide *which* rows a step writes (OpenLineage INDIRECT transformations)."""
    t = step.table
    key, version_by = lin.keys[t]
    raw_key = lin.raw_keys[t]
    order = [*([version_by] if version_by else []), "_ingested_at", "_row_hash"]
    if step.layer == "archive":
        return [(f"staging.{t}", k, "FILTER", "rows with a NULL key are not archived") for k in raw_key]
    if step.layer == "delta":
        return (
            [(f"archive.{t}", k, "WINDOW", "latest version per key") for k in key]
            + [(f"archive.{t}", c, "SORT", "newest version first") for c in order]
            + [(f"dwh.{t}", k, "JOIN", "compared with the DWH's version") for k in key]
            + [(f"dwh.{t}", "_row_hash", "FILTER", "kept when the hash differs"), (f"dwh.{t}", "_through", "FILTER", "versions after the DWH's high-water mark")]
        )
    if step.layer == "transform":
        return [(f"delta.{t}", "_valid", "FILTER", "only versions whose values cast")]
    if step.layer == "dwh":
        return [(f"transform.{t}", k, "JOIN", "MERGE on the key") for k in key] + [
            (f"transform.{t}", c, "CONDITIONAL", "updated only when newer and the hash differs") for c in order
        ]
    return []


def _run(lin: Lineage, step: Step, start: dt.datetime, end: dt.datetime, sql: str, end_state: str = "COMPLETE", **end_facts) -> list:
    """The two events of one run (the spec asks for a START and one of COMPLETE, ABORT, FAIL),
    sharing a run id; what the run wrote goes on the final one."""
    from openlineage.client.uuid import generate_new_uuid

    run_id = str(generate_new_uuid())
    return [_event(lin, step, "START", start, sql, run_id), _event(lin, step, end_state, end, sql, run_id, **end_facts)]


def _event(lin: Lineage, step: Step, state: str, when: dt.datetime, sql: str, run_id: str, rows: dict[str, int] | None = None,
           assertions: Sequence[dict] | None = None, error: str | None = None):
    from openlineage.client.event_v2 import InputDataset, Job, OutputDataset, Run, RunEvent, RunState

    (_, dq, _, error_message_run, job_type_job, output_stats, _, sql_job) = _facets()
    inputs = []
    for i in step.inputs:
        ns, name = dataset_name(lin, i)
        facets = {}
        if assertions and i == f"dwh.{step.table}":
            facets["dataQualityAssertions"] = dq.DataQualityAssertionsDatasetFacet(assertions=[
                dq.Assertion(
                    assertion=a["rule"], success=bool(a["passed"]), column=(a["columns"][0] if len(a.get("columns") or []) == 1 else None),
                    severity=a["severity"], name=a["check_name"], description=a.get("message") or None,
                    actual=None if a.get("failing_rows") is None and a.get("observed_value") is None else str(a["failing_rows"] if a.get("failing_rows") is not None else a["observed_value"]),
                )
                for a in assertions
            ])
        inputs.append(InputDataset(namespace=ns, name=name, facets=_dataset_facets(lin, i), inputFacets=facets or None))
    outputs = []
    for o in step.outputs:
        ns, name = dataset_name(lin, o)
        facets = _dataset_facets(lin, o)
        cl = _column_lineage(lin, step, o)
        if cl is not None:
            facets["columnLineage"] = cl
        out_facets = None
        if rows and o in rows:
            out_facets = {"outputStatistics": output_stats.OutputStatisticsOutputDatasetFacet(rowCount=int(rows[o]))}
        outputs.append(OutputDataset(namespace=ns, name=name, facets=facets, outputFacets=out_facets))
    run_facets = {}
    if error:
        run_facets["errorMessage"] = error_message_run.ErrorMessageRunFacet(message=error, programmingLanguage="SQL")
    job_facets = {
        "jobType": job_type_job.JobTypeJobFacet(processingType="BATCH", integration=INTEGRATION, jobType="VIEW" if step.layer == "rejects" else "QUERY"),
        "sql": sql_job.SQLJobFacet(query=sql, dialect="bigquery"),
    }
    return RunEvent(
        eventType=getattr(RunState, state),
        eventTime=when.astimezone(dt.timezone.utc).isoformat(),
        run=Run(runId=run_id, facets=run_facets or None),
        job=Job(namespace=job_namespace(lin.naming), name=step.name, facets=job_facets),
        producer=PRODUCER,
        inputs=inputs,
        outputs=outputs,
    )


def step_sql(lin: Lineage, step: Step, specs_by_name: dict) -> str:
    """The SQL a step runs, rendered exactly as deployed."""
    from .render import render_layer, render_rejects_view

    spec = specs_by_name[step.table]
    if step.layer == "rejects":
        return render_rejects_view(spec, lin.naming)
    return render_layer(spec, lin.naming, step.layer, lin.landing_uri)


def lineage_events(lin: Lineage, specs: Iterable, when: dt.datetime | None = None) -> list:
    """A START and a COMPLETE event per step of the lineage's tables: the lineage as declared
    (no run's statistics), for a consumer that should know the pipeline before it runs."""
    when = when or dt.datetime.now(dt.timezone.utc)
    by_name = {s.table: s for s in specs}
    return [e for s in lin.steps if s.table in lin.tables for e in _run(lin, s, when, when, step_sql(lin, s, by_name))]


def run_events(lin: Lineage, specs: Iterable, results: Sequence, failed=None,
               when: dt.datetime | None = None) -> list:
    """Events for what a run did, from the runner's :class:`~pipeline_sql.runner.LayerResult`
    list: per layer result (a staging + archive pair per loaded batch) a START and a COMPLETE
    event (started ``seconds`` before ``when``), with the rows each wrote and the checks'
    results; ``failed`` = (table, layer, message), or a list of them, adds a START and a FAIL
    event for each layer that stopped its table."""
    when = when or dt.datetime.now(dt.timezone.utc)
    by_name = {s.table: s for s in specs}
    events = []
    for r in results:
        if r.layer not in STEPS:  # the runner's line for a table that was up to date: nothing ran
            continue
        if r.layer == "staging" and not r.detail.get("file"):
            continue  # nothing new was landed: no staging run happened
        step = lin.step(r.table, r.layer)
        rows = {o: r.rows_out for o in step.outputs if step.layer != "checks"}
        if step.layer == "dwh":
            rows = {step.outputs[0]: int(r.detail.get("inserted", 0)) + int(r.detail.get("updated", 0))}
        assertions = r.detail.get("results") if step.layer == "checks" else None
        start = when - dt.timedelta(seconds=r.seconds)
        events += _run(lin, step, start, when, step_sql(lin, step, by_name), rows=rows, assertions=assertions)
    for table, layer, message in [failed] if isinstance(failed, tuple) else (failed or []):
        if layer in STEPS and table in lin.tables:
            step = lin.step(table, layer)
            events += _run(lin, step, when, when, step_sql(lin, step, by_name), "FAIL", error=message)
    return events


def to_json(event) -> str:
    from openlineage.client.serde import Serde

    return Serde.to_json(event)


class EmitError(RuntimeError):
    pass


def emit(events: Sequence, file: str | None = None, url: str | None = None, endpoint: str = "api/v1/lineage", timeout: float = 10.0) -> None:
    """Send ``events`` with openlineage-python's client: appended as JSON lines to ``file``
    and/or POSTed to ``url`` + ``endpoint`` (Marquez's and most consumers' path)."""
    from openlineage.client import OpenLineageClient
    from openlineage.client.transport.file import FileConfig, FileTransport
    from openlineage.client.transport.http import HttpConfig, HttpTransport

    clients = []
    if file:
        clients.append((f"file {file}", OpenLineageClient(transport=FileTransport(FileConfig(log_file_path=str(file), append=True)))))
    if url:
        if not url.startswith(("http://", "https://")):
            raise EmitError(f"--lineage-url {url!r}: expected an http:// or https:// URL")
        cfg = HttpConfig(url=url, endpoint=endpoint, timeout=timeout, retry={"total": 2, "backoff_factor": 0.2})
        clients.append((f"{url.rstrip('/')}/{endpoint}", OpenLineageClient(transport=HttpTransport(cfg))))
    for where, client in clients:
        for ev in events:
            try:
                client.emit(ev)
            except Exception as e:  # the transports raise many types; name the target
                raise EmitError(f"cannot send OpenLineage events to {where}: {e}") from e
