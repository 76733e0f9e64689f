"""Dry-run every rendered layer of every shipped spec against a real BigQuery project.

This checks what only real BigQuery can confirm: the staging script (an external table over the landing prefix), the
GoogleSQL accepted by BigQuery itself (not by the embedded engine's translator), and the bytes
each layer would process. Nothing is executed: every job is ``dry_run=True`` with
``use_query_cache=False``. For each table and layer it prints the bytes processed (run with
``-s`` to see them).

It runs only when you ask for it. Otherwise it skips at once, without touching the network:

* ``FLEXYBOOTS_BQ_PROJECT``: the project to dry-run in. Not set means skip.
* Application Default Credentials (``gcloud auth application-default login``, or a service
  account through ``GOOGLE_APPLICATION_CREDENTIALS``). If ``google.auth.default()`` finds none,
  the test skips.
* ``FLEXYBOOTS_BQ_ENV`` (optional): the environment prefix of the datasets, for example ``dev``
  for ``dev_staging``. The SQL is rendered with ``Naming(project=P, env=E)``.
* ``FLEXYBOOTS_BQ_LOCATION`` (optional, default ``US``): the datasets' location.
* ``FLEXYBOOTS_BQ_LANDING_URI`` (optional): the landing bucket, for example
  ``gs://acme-dev-landing``. The staging script is dry-run against it. Without it,
  only the staging case is skipped.

A dry run resolves every table it references, so the datasets and tables must already exist
in that project. ``pulumi up`` on the stack creates them. So does one real run::

    python -m pipeline_sql run --project P --env E --landing gs://<landing bucket>

If a dataset is missing, the test fails and names it.

Multi-statement scripts on BigQuery: a dry run validates DML statements and continues, but
stops after the first DDL statement (BigQuery docs, "Dry run multi-statement queries"). The
delta and transform scripts (CREATE OR REPLACE TABLE ... AS, then a report SELECT) are
therefore validated up to their CREATE. Their bytes estimate is for that statement, based on
the current table sizes.

    FLEXYBOOTS_BQ_PROJECT=acme-data-dev FLEXYBOOTS_BQ_ENV=dev \\
        .venv/bin/python -m pytest -s tests/sql/test_bigquery_dryrun.py
"""

from __future__ import annotations

import datetime as dt
import os
from pathlib import Path

import pytest

from pipeline_sql.naming import DATASETS, LAYERS, Naming
from pipeline_sql.render import render_table
from pipeline_sql.spec import load_specs

REPO = Path(__file__).resolve().parents[2]
PROJECT = os.environ.get("FLEXYBOOTS_BQ_PROJECT", "").strip()
ENV = os.environ.get("FLEXYBOOTS_BQ_ENV", "").strip()
LOCATION = os.environ.get("FLEXYBOOTS_BQ_LOCATION", "").strip() or "US"
LANDING_URI = os.environ.get("FLEXYBOOTS_BQ_LANDING_URI", "").strip()

# The cheap check comes first, at collection time: no credentials lookup, no network.
pytestmark = pytest.mark.skipif(
    not PROJECT,
    reason="real-BigQuery dry run: set FLEXYBOOTS_BQ_PROJECT (and optionally FLEXYBOOTS_BQ_ENV, "
    "FLEXYBOOTS_BQ_LANDING_URI) with application-default credentials to run it",
)

SPECS = load_specs(REPO / "config" / "tables")
CASES = [(s.table, layer) for s in SPECS for layer in LAYERS + ("checks",)]


@pytest.fixture(scope="module")
def naming() -> Naming:
    return Naming(project=PROJECT, env=ENV, location=LOCATION)


@pytest.fixture(scope="module")
def client(naming):
    import google.auth
    from google.auth.exceptions import DefaultCredentialsError

    try:
        credentials, _ = google.auth.default(scopes=["https://www.googleapis.com/auth/bigquery"])
    except DefaultCredentialsError as e:
        pytest.skip(f"real-BigQuery dry run: no application-default credentials ({e})")
    from google.cloud import bigquery

    c = bigquery.Client(project=PROJECT, credentials=credentials, location=LOCATION)
    missing = []
    for layer in DATASETS:
        try:
            c.get_dataset(f"{PROJECT}.{naming.dataset(layer)}", timeout=30)
        except Exception as e:  # NotFound, Forbidden...
            missing.append(f"{naming.dataset(layer)} ({type(e).__name__})")
    if missing:
        c.close()
        pytest.fail(
            f"datasets missing or unreadable in {PROJECT}: {', '.join(missing)}; create them with "
            f"`pulumi up` or `python -m pipeline_sql run --project {PROJECT}"
            f"{' --env ' + ENV if ENV else ''} --landing gs://<landing bucket>` first"
        )
    yield c
    c.close()


def _dry_run(client, sql: str, params: dict | None = None) -> int:
    from google.cloud import bigquery

    cfg = bigquery.QueryJobConfig(dry_run=True, use_query_cache=False)
    if params:
        cfg.query_parameters = [bigquery.ScalarQueryParameter(k, t, v) for k, (t, v) in sorted(params.items())]
    job = client.query(sql, job_config=cfg, location=LOCATION, timeout=60)
    # a dry run returns at once with statistics; an invalid query raises above
    return int(job.total_bytes_processed or 0)


@pytest.mark.parametrize("table, layer", CASES, ids=[f"{t}-{l}" for t, l in CASES])
def test_dry_run_layer(client, naming, table, layer):
    spec = next(s for s in SPECS if s.table == table)
    if layer == "staging" and not LANDING_URI:
        pytest.skip("staging dry run needs FLEXYBOOTS_BQ_LANDING_URI=gs://<landing bucket> (the staging script reads it)")
    rendered = render_table(spec, naming, LANDING_URI or "gs://landing")
    sql = rendered.checks if layer == "checks" else rendered.layers[layer]
    params = {"run_time": ("TIMESTAMP", dt.datetime.now(dt.timezone.utc))} if layer == "staging" else None
    n = _dry_run(client, sql, params)
    print(f"\n{PROJECT}: {table:<12} {layer:<9} dry run OK, {n:>14,} bytes processed")
    assert n >= 0


@pytest.mark.parametrize("table", [s.table for s in SPECS])
def test_dry_run_staging_batch_descriptor(client, naming, table):
    """The local runner's batch descriptor, with its query parameters."""
    spec = next(s for s in SPECS if s.table == table)
    now = dt.datetime.now(dt.timezone.utc)
    n = _dry_run(
        client,
        render_table(spec, naming).staging_batch,
        {
            "batch_id": ("STRING", f"{table}-dryrun"),
            "source_file": ("STRING", f"{spec.source.path}dryrun.csv"),
            "content_sha256": ("STRING", "0" * 64),
            "landed_at": ("TIMESTAMP", now),
        },
    )
    print(f"\n{PROJECT}: {table:<12} staging batch descriptor dry run OK, {n:,} bytes processed")
