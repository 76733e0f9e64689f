"""Amundsen fed from flexyboots: the catalog job's configuration, rendered by pure functions.

The Amundsen VM runs ``components/amundsen/flexyboots_catalog.py`` (Amundsen's databuilder,
in its own virtualenv on the VM, installed from ``requirements-databuilder.lock``) on a
systemd timer. One run is four databuilder jobs, each extract -> (transform) -> load
(``FsNeo4jCSVLoader``) -> publish (``Neo4jCsvPublisher``, the VM's neo4j):

1. ``bigquery_tables``: ``BigQueryMetadataExtractor`` lists the platform's datasets (the VM's
   own service account sees only the ones it holds ``bigquery.metadataViewer`` on; the
   ``labels.env:<env>`` filter keeps other environments out) and reads every table's schema
   and description; the flexyboots transformer adds what BigQuery does not keep for the
   tables the SQL rebuilds (the spec's descriptions) and tags (``flexyboots``, the env, the
   layer);
2. ``table_lineage`` and 3. ``column_lineage``: databuilder's CSV lineage extractors over the
   lineage of :mod:`pipeline_sql.lineage` (staging -> archive -> delta -> transform -> dwh,
   the rejects views, the checks' results table), in Amundsen's table and column keys;
4. ``check_results``: the latest result of every check (one query on
   ``quality.check_results``: the VM needs ``bigquery.dataViewer`` on that table and
   ``bigquery.jobUser``), as a badge on each DWH table (``checks passed``, ``checks warn``,
   ``checks failed``), a ``check failed`` badge on the columns of a failing check and a
   programmatic description listing every check's latest result.

:func:`catalog_document` renders everything the job needs as one JSON document (databuilder's
own configuration keys per job, plus the flexyboots metadata); the VM reads it from the
instance metadata key :data:`METADATA_KEY` (:func:`encode_document`), so a new table updates the
metadata in place without replacing the VM. :func:`render_catalog_setup` is the bash that
installs the venv, the job and the timer. ``tests/catalog/`` runs databuilder on the document
offline (files, a fake BigQuery API, no neo4j) and asserts the records it would publish.

The ``local`` stack (``stacks/local.py``) has no BigQuery: :func:`local_catalog_document` is the
same document for the local runner's naming (``python -m pipeline_sql``: project
``flexyboots-local``, no env prefix), whose ``tables`` job reads the tables, their columns
(types from the declared schemas) and descriptions from the document itself
(``FlexybootsDocumentTableExtractor``) instead of BigQuery; lineage jobs as on the VM; no check
results (the local runner keeps them in its engine state, which the loader cannot read). It is
published to neo4j on the Amundsen network (:data:`LOCAL_NEO4J_ENDPOINT`) by a one-shot
container whose command and files :func:`render_local_loader` renders.
"""

from __future__ import annotations

import base64
import gzip
import json
import re
import shlex
from pathlib import Path
from typing import Optional

from pipeline_sql.lineage import build_lineage
from pipeline_sql.naming import DATASETS, Naming
from pipeline_sql.schema import pipeline_tables, shared_tables
from pipeline_sql.spec import TableSpec

ROOT = Path(__file__).resolve().parents[1]
JOB_SCRIPT = ROOT / "components" / "amundsen" / "flexyboots_catalog.py"
DATABUILDER_LOCK = ROOT / "requirements-databuilder.lock"
#: instance metadata key holding the encoded document
METADATA_KEY = "flexyboots-catalog"
#: GCE instance metadata values are limited to 256 KB each
METADATA_VALUE_LIMIT = 256 * 1024
#: where the job keeps its files on the VM (the data disk) and its virtualenv
WORK_DIR = "/mnt/disks/data/amundsen/catalog"
VENV = "/opt/flexyboots/databuilder"
#: ``${WORK_DIR}`` in the document's paths is replaced by the job's work folder at run time
WORK_TOKEN = "${WORK_DIR}"
#: neo4j as components.startup_scripts.compose_amundsen runs it (upstream's docker-amundsen.yml
#: credentials; published on 127.0.0.1 only)
NEO4J_ENDPOINT = "bolt://127.0.0.1:7687"
#: neo4j as seen from a container on the local Amundsen's Docker network (its container name,
#: ``components.services.amundsen``)
LOCAL_NEO4J_ENDPOINT = "bolt://neo4j_amundsen:7687"
_ENDPOINT = re.compile(r"^bolt://[A-Za-z0-9]([A-Za-z0-9_.\-]*[A-Za-z0-9])?:\d{1,5}$")
NEO4J_USER, NEO4J_PASSWORD = "neo4j", "test"
DATABASE = "bigquery"  # Amundsen's "database" of BigQuery tables (BigQueryMetadataExtractor's)
_SCHEDULE = re.compile(r"^(hourly|daily|\*-\*-\* \d\d:\d\d(:\d\d)?|\*:\d\d(:\d\d)?)$")

_EXTRACTOR = "databuilder.extractor"
_LOADER = "databuilder.loader.file_system_neo4j_csv_loader.FsNeo4jCSVLoader"
_PUBLISHER = "databuilder.publisher.neo4j_csv_publisher.Neo4jCsvPublisher"


def table_key(project: str, dataset: str, table: str) -> str:
    """Amundsen's table key (``TableMetadata.TABLE_KEY_FORMAT``) of a BigQuery table."""
    return f"{DATABASE}://{project}.{dataset}/{table}"


def _check_endpoint(value: object) -> str:
    if not isinstance(value, str) or not _ENDPOINT.match(value) or not 1 <= int(value.rpartition(":")[2]) <= 65535:
        raise ValueError(f"catalog: neo4j_endpoint: a bolt URL 'bolt://<host>:<port>' such as {NEO4J_ENDPOINT!r} (got {value!r})")
    return value


def _job(
    name: str, extractor: str, scope: str, extractor_conf: dict, transformer: Optional[str] = None,
    neo4j_endpoint: str = NEO4J_ENDPOINT,
) -> dict:
    work = f"{WORK_TOKEN}/{name}"
    conf = {f"extractor.{scope}.{k}": v for k, v in extractor_conf.items()}
    conf |= {
        "loader.filesystem_csv_neo4j.node_dir_path": f"{work}/nodes",
        "loader.filesystem_csv_neo4j.relationship_dir_path": f"{work}/relationships",
        "loader.filesystem_csv_neo4j.delete_created_directories": False,
        "loader.filesystem_csv_neo4j.force_create_directory": True,
        "publisher.neo4j.node_files_directory": f"{work}/nodes",
        "publisher.neo4j.relation_files_directory": f"{work}/relationships",
        "publisher.neo4j.neo4j_endpoint": neo4j_endpoint,
        "publisher.neo4j.neo4j_user": NEO4J_USER,
        "publisher.neo4j.neo4j_password": NEO4J_PASSWORD,
        "publisher.neo4j.neo4j_encrypted": False,
        "publisher.neo4j.job_publish_tag": f"flexyboots-{name}",
    }
    return {"name": name, "extractor": extractor, "transformer": transformer, "loader": _LOADER, "publisher": _PUBLISHER, "conf": conf}


def _tables(specs: list[TableSpec], naming: Naming, *, fields: bool = False) -> dict[str, dict]:
    """What flexyboots knows about each table, keyed by ``"<dataset>.<table>"``; with ``fields``
    also the declared schema (BigQuery field JSON) and whether it is a view (the local
    document, which has no BigQuery to ask)."""
    tags = ["flexyboots", naming.env or "default"]

    def entry(td, table: str, dwh: bool) -> dict:
        e = {
            "table": table, "layer": td.layer, "description": td.description,
            "columns": {f["name"]: f.get("description", "") for f in td.fields},
            "tags": tags + [td.layer], "dwh": dwh,
        }
        if fields:
            e |= {"fields": [dict(f) for f in td.fields], "is_view": td.view_query is not None}
        return e

    tables: dict[str, dict] = {}
    for spec in specs:
        for td in pipeline_tables(spec, naming):
            tables[f"{td.dataset}.{td.name}"] = entry(td, spec.table, td.layer == "dwh" and td.name == spec.table)
    for td in shared_tables(naming):
        tables[f"{td.dataset}.{td.name}"] = entry(td, "", False)
    return tables


def _lineage_rows(specs: list[TableSpec], naming: Naming) -> tuple[list, list]:
    """(table lineage, column lineage) rows in Amundsen's table and column keys."""
    lin = build_lineage(specs, naming)

    def key_of(dataset_id: str) -> Optional[str]:
        ds = lin.datasets[dataset_id]
        if ds.kind == "files":
            return None  # landed files are not catalogued (not BigQuery tables)
        p, d, t = ds.location.split(".")
        return table_key(p, d, t)

    table_lineage, column_lineage = [], []
    for step in lin.steps:
        for i in step.inputs:
            for o in step.outputs:
                src, dst = key_of(i), key_of(o)
                if src and dst and [src, dst] not in table_lineage:
                    table_lineage.append([src, dst])
    for h in lin.hops:
        src, dst = key_of(h.source[0]), key_of(h.target[0])
        if src and dst:
            row = [f"{src}/{h.source[1]}", f"{dst}/{h.target[1]}"]
            if row not in column_lineage:
                column_lineage.append(row)
    return table_lineage, column_lineage


def _lineage_jobs(neo4j_endpoint: str) -> list[dict]:
    return [
        _job("table_lineage", f"{_EXTRACTOR}.csv_extractor.CsvTableLineageExtractor", "csvtablelineage",
             {"table_lineage_file_location": f"{WORK_TOKEN}/table_lineage.csv"}, neo4j_endpoint=neo4j_endpoint),
        _job("column_lineage", f"{_EXTRACTOR}.csv_extractor.CsvColumnLineageExtractor", "csvcolumnlineage",
             {"column_lineage_file_location": f"{WORK_TOKEN}/column_lineage.csv"}, neo4j_endpoint=neo4j_endpoint),
    ]


def _document(specs: list[TableSpec], naming: Naming, jobs: list[dict], tables: dict, **extra) -> dict:
    table_lineage, column_lineage = _lineage_rows(specs, naming)
    datasets = {layer: naming.dataset(layer) for layer in DATASETS}
    return {
        "version": 1,
        "project": naming.project,
        "env": naming.env,
        **extra,
        "datasets": datasets,
        "jobs": jobs,
        "tables": tables,
        "dwh_keys": {s.table: table_key(naming.project, datasets["dwh"], s.table) for s in specs},
        "checks": {s.table: [{"name": c.name, "rule": c.kind, "columns": list(c.columns), "severity": c.severity} for c in s.checks] for s in specs},
        "table_lineage": table_lineage,
        "column_lineage": column_lineage,
    }


def catalog_document(
    specs: list[TableSpec], naming: Naming, *, location: str, check_lookback_days: int = 7,
    neo4j_endpoint: str = NEO4J_ENDPOINT,
) -> dict:
    """The catalog job's whole configuration for one environment (JSON-serializable).

    ``naming`` is the environment's (project and env); ``location`` the datasets' BigQuery
    location (the check-results query runs there); ``neo4j_endpoint`` where the publisher
    writes (the VM's neo4j on 127.0.0.1 by default)."""
    if not isinstance(check_lookback_days, int) or isinstance(check_lookback_days, bool) or not 1 <= check_lookback_days <= 90:
        raise ValueError(f"catalog: check_lookback_days: a whole number of days from 1 to 90 (got {check_lookback_days!r})")
    _check_endpoint(neo4j_endpoint)
    project = naming.project
    results_table = naming.table_id("quality", "check_results")
    label_filter = f"labels.env:{naming.env}" if naming.env else ""
    jobs = [
        _job(
            "bigquery_tables", f"{_EXTRACTOR}.bigquery_metadata_extractor.BigQueryMetadataExtractor", "bigquery_table_metadata",
            {"project_id": project, "filter": label_filter},
            transformer="flexyboots_catalog.FlexybootsTableTransformer", neo4j_endpoint=neo4j_endpoint,
        ),
        *_lineage_jobs(neo4j_endpoint),
        _job(
            "check_results", "flexyboots_catalog.FlexybootsCheckResultsExtractor", "flexyboots_check_results",
            {"project_id": project, "location": location, "results_table": results_table, "lookback_days": check_lookback_days},
            neo4j_endpoint=neo4j_endpoint,
        ),
    ]
    return _document(specs, naming, jobs, _tables(specs, naming), location=location)


def local_catalog_document(
    specs: list[TableSpec], naming: Optional[Naming] = None, *, neo4j_endpoint: str = LOCAL_NEO4J_ENDPOINT
) -> dict:
    """The catalog document for the local runner's tables (no BigQuery, no cloud).

    ``naming`` defaults to the local runner's (``python -m pipeline_sql``: project
    ``flexyboots-local``, no env prefix), so the keys are the ones of the embedded engine's
    tables. Jobs: ``tables`` (every layer's tables and the shared ones, with their declared
    columns, types and the specs' descriptions, read from the document's ``tables`` by
    ``FlexybootsDocumentTableExtractor``), ``table_lineage``, ``column_lineage``. No check
    results: they live in the local runner's engine state, not in the specs."""
    naming = naming if naming is not None else Naming()
    if not isinstance(naming, Naming):
        raise ValueError(f"catalog: naming: a pipeline_sql.naming.Naming (got {naming!r})")
    _check_endpoint(neo4j_endpoint)
    jobs = [
        _job("tables", "flexyboots_catalog.FlexybootsDocumentTableExtractor", "flexyboots_document_tables", {},
             neo4j_endpoint=neo4j_endpoint),
        *_lineage_jobs(neo4j_endpoint),
    ]
    return _document(specs, naming, jobs, _tables(specs, naming, fields=True), source="local")


def encode_document(doc: dict) -> str:
    """The instance metadata value: the document as gzip + base64 JSON (at most 256 KB)."""
    raw = json.dumps(doc, sort_keys=True, separators=(",", ":")).encode()
    text = base64.b64encode(gzip.compress(raw, compresslevel=9, mtime=0)).decode("ascii")
    if len(text) > METADATA_VALUE_LIMIT:
        raise ValueError(
            f"catalog: the document for {len(doc['dwh_keys'])} tables is {len(text)} bytes encoded; an instance metadata "
            f"value holds at most {METADATA_VALUE_LIMIT} (see README: Lineage and catalog, for large platforms)"
        )
    return text


def decode_document(text: str) -> dict:
    return json.loads(gzip.decompress(base64.b64decode(text)))


def render_catalog_setup(*, schedule: str = "hourly", job_script: Optional[str] = None, lock: Optional[str] = None) -> str:
    """Bash (for the Amundsen VM's startup script, after Docker and the compose file): a
    virtualenv with databuilder from the lock, the job script, and a systemd timer that runs it
    ``schedule`` (a systemd ``OnCalendar`` value: hourly, daily, ``*-*-* 02:30``, ``*:15``) and
    once 10 minutes after boot. The job reads its document from the instance metadata key
    :data:`METADATA_KEY` on each run."""
    if not isinstance(schedule, str) or not _SCHEDULE.match(schedule):
        raise ValueError(f"catalog: schedule: a systemd OnCalendar value such as 'hourly', 'daily' or '*-*-* 02:30' (got {schedule!r})")
    job_script = job_script if job_script is not None else JOB_SCRIPT.read_text(encoding="utf-8")
    lock = lock if lock is not None else DATABUILDER_LOCK.read_text(encoding="utf-8")
    for name, text in (("job_script", job_script), ("lock", lock)):
        if "\nFLEXYBOOTS_EOF\n" in f"\n{text}\n":
            raise ValueError(f"catalog: {name} contains the heredoc terminator FLEXYBOOTS_EOF")
    etc = "/etc/flexyboots/amundsen"
    return f"""
# --- the catalog job: Amundsen's databuilder on a timer (BigQuery metadata, flexyboots lineage,
# --- spec descriptions and check results -> neo4j) ----------------------------------------
apt_get install -y python3-venv
mkdir -p {etc} {WORK_DIR}
cat > {etc}/requirements-databuilder.lock <<'FLEXYBOOTS_EOF'
{lock.rstrip()}
FLEXYBOOTS_EOF
cat > {etc}/flexyboots_catalog.py <<'FLEXYBOOTS_EOF'
{job_script.rstrip()}
FLEXYBOOTS_EOF
if ! cmp -s {etc}/requirements-databuilder.lock {VENV}/.installed-lock 2>/dev/null; then
  rm -rf {VENV}
  python3 -m venv {VENV}
  {VENV}/bin/pip install --quiet --disable-pip-version-check --no-deps -r {etc}/requirements-databuilder.lock
  cp {etc}/requirements-databuilder.lock {VENV}/.installed-lock
fi
cat > /etc/systemd/system/flexyboots-catalog.service <<'FLEXYBOOTS_EOF'
[Unit]
Description=flexyboots: feed Amundsen (databuilder: BigQuery metadata, lineage, descriptions, check results)
After=docker.service network-online.target
Wants=network-online.target

[Service]
Type=oneshot
ExecStart={VENV}/bin/python {etc}/flexyboots_catalog.py --metadata-key {METADATA_KEY} --work-dir {WORK_DIR}
TimeoutStartSec=1h
FLEXYBOOTS_EOF
cat > /etc/systemd/system/flexyboots-catalog.timer <<'FLEXYBOOTS_EOF'
[Unit]
Description=flexyboots: feed Amundsen {shlex.quote(schedule)}

[Timer]
OnBootSec=10min
OnCalendar={schedule}
Persistent=true

[Install]
WantedBy=timers.target
FLEXYBOOTS_EOF
systemctl daemon-reload
systemctl enable --now flexyboots-catalog.timer
"""


#: where the local loader container finds its files (uploaded by the docker provider)
LOCAL_LOADER_DIR = "/flexyboots"


def render_local_loader(
    doc: dict, *, job_script: Optional[str] = None, lock: Optional[str] = None, wait_s: int = 600
) -> tuple[list[str], dict[str, str]]:
    """The local stack's one-shot loader container: ``(command, files)``, ``files`` mapping a
    path in the container to its content (the databuilder lock, the job script and ``doc``).

    The command installs databuilder from the lock into the image's Python (from PyPI, every
    package pinned, ``--no-deps`` as on the VM), waits up to ``wait_s`` seconds for neo4j's bolt
    port (the container starts when neo4j's container has, not when neo4j listens), then runs
    the document's jobs (publishing to the document's neo4j endpoint)."""
    if not isinstance(wait_s, int) or isinstance(wait_s, bool) or not 0 <= wait_s <= 3600:
        raise ValueError(f"catalog: wait_s: a whole number of seconds from 0 to 3600 (got {wait_s!r})")
    if not isinstance(doc, dict) or doc.get("version") != 1 or not doc.get("jobs"):
        raise ValueError("catalog: doc: a catalog document (version 1, with jobs) from local_catalog_document")
    job_script = job_script if job_script is not None else JOB_SCRIPT.read_text(encoding="utf-8")
    lock = lock if lock is not None else DATABUILDER_LOCK.read_text(encoding="utf-8")
    d = LOCAL_LOADER_DIR
    files = {
        f"{d}/requirements-databuilder.lock": lock,
        f"{d}/flexyboots_catalog.py": job_script,
        f"{d}/catalog.json": json.dumps(doc, sort_keys=True, indent=1) + "\n",
    }
    script = (
        "set -e; "
        "python -m pip install --quiet --disable-pip-version-check --root-user-action=ignore --no-deps "
        f"-r {d}/requirements-databuilder.lock; "
        f"exec python {d}/flexyboots_catalog.py --document {d}/catalog.json --work-dir /tmp/flexyboots-catalog "
        f"--wait-for-neo4j {wait_s}"
    )
    return ["sh", "-c", script], files
