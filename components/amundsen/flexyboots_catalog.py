"""flexyboots -> Amundsen: runs the catalog document's databuilder jobs (Amundsen VM, on a timer).

Runs in the databuilder virtualenv (``requirements-databuilder.lock``); imports only
databuilder, its dependencies and the standard library, so the file is copied to the VM as is.
The document (``components.catalog.catalog_document``) comes from the instance metadata key
given with ``--metadata-key`` (gzip + base64 JSON) or from a file (``--document``)::

    python flexyboots_catalog.py --metadata-key flexyboots-catalog --work-dir /mnt/disks/data/amundsen/catalog
    python flexyboots_catalog.py --document doc.json --work-dir /tmp/catalog --no-publish
    python flexyboots_catalog.py --document /flexyboots/catalog.json --work-dir /tmp/c --wait-for-neo4j 600

The local stack's document (``components.catalog.local_catalog_document``) has no BigQuery to
read: its ``tables`` job takes the tables, columns and descriptions from the document itself
(:class:`FlexybootsDocumentTableExtractor`); it runs in a one-shot container on the local
Amundsen's Docker network, ``--wait-for-neo4j`` waiting for neo4j's bolt port first.

Each job is ``DefaultJob(DefaultTask(extractor, loader, transformer), publisher)`` with the
document's configuration; ``--no-publish`` keeps the loader's node and relationship CSV files
(what ``Neo4jCsvPublisher`` would publish) and publishes nothing.
"""

from __future__ import annotations

import argparse
import base64
import csv
import gzip
import importlib
import json
import logging
import socket
import sys
import time
import urllib.parse
import urllib.request
from pathlib import Path
from typing import Any, Iterator

from pyhocon import ConfigFactory, ConfigTree

from databuilder.extractor.base_bigquery_extractor import BaseBigQueryExtractor
from databuilder.extractor.base_extractor import Extractor
from databuilder.job.job import DefaultJob
from databuilder.models.badge import Badge, BadgeMetadata
from databuilder.models.description_metadata import DescriptionMetadata
from databuilder.models.table_metadata import ColumnMetadata, TableMetadata
from databuilder.publisher.base_publisher import NoopPublisher
from databuilder.task.task import DefaultTask
from databuilder.transformer.base_transformer import Transformer

LOG = logging.getLogger("flexyboots_catalog")
METADATA_URL = "http://metadata.google.internal/computeMetadata/v1/instance/attributes/"
WORK_TOKEN = "${WORK_DIR}"
#: the document this process runs (the transformer and the checks extractor read it)
DOCUMENT: dict = {}
CHECKS_SOURCE = "flexyboots_checks"


# ------------------------------------------------------------------------------ transformer


class FlexybootsTableTransformer(Transformer):
    """Adds what flexyboots knows to the tables BigQuery reports: the spec's table and column
    descriptions where BigQuery has none (the tables the SQL rebuilds keep no description),
    and the tags ``flexyboots``, the env and the layer. Tables flexyboots does not own pass
    through unchanged."""

    def init(self, conf: ConfigTree) -> None:
        self.tables = DOCUMENT.get("tables", {})

    def transform(self, record: Any) -> Any:
        if not isinstance(record, TableMetadata):
            return record
        known = self.tables.get(f"{record.schema}.{record.name}")
        if known is None:
            return record
        columns = [
            ColumnMetadata(
                name=c.name,
                description=(c.description.text if c.description and c.description.text else None) or known["columns"].get(c.name) or None,
                col_type=c.type,
                sort_order=c.sort_order,
                badges=[b.name for b in c.badges] or None,
            )
            for c in record.columns
        ]
        text = record.description.text if record.description and record.description.text else None
        return TableMetadata(
            database=record.database,
            cluster=record.cluster,
            schema=record.schema,
            name=record.name,
            description=text or known["description"] or None,
            columns=columns,
            is_view=record.is_view,
            tags=sorted(set(record.tags or []) | set(known["tags"])),
        )

    def get_scope(self) -> str:
        return "transformer.flexyboots_table"


# ------------------------------------------------------------------------------ tables from the document


def _columns(fields: list[dict], parent: str = "", out: list | None = None) -> list:
    """BigQuery schema fields -> ColumnMetadata, named and typed as databuilder's
    BigQueryMetadataExtractor names them (``type:mode``; a RECORD's fields as ``parent.child``
    after the record)."""
    out = [] if out is None else out
    for f in fields:
        name = f"{parent}.{f['name']}" if parent else f["name"]
        col_type = f"{f['type']}:{f['mode']}" if f.get("mode") else f["type"]
        out.append(ColumnMetadata(name=name, description=f.get("description") or None, col_type=col_type, sort_order=len(out)))
        if f["type"] == "RECORD":
            _columns(f.get("fields", []), name, out)
    return out


class FlexybootsDocumentTableExtractor(Extractor):
    """The document's ``tables`` (with their declared ``fields``) as TableMetadata: what the
    BigQuery extractor and the flexyboots transformer give on the VM, for a catalog without
    BigQuery (the local stack). Database ``bigquery``, cluster the document's project."""

    def init(self, conf: ConfigTree) -> None:
        project = DOCUMENT["project"]
        records = []
        for ref, t in sorted(DOCUMENT["tables"].items()):
            dataset, _, name = ref.partition(".")
            records.append(TableMetadata(
                database="bigquery", cluster=project, schema=dataset, name=name,
                description=t["description"] or None, columns=_columns(t["fields"]),
                is_view=bool(t.get("is_view")), tags=sorted(set(t["tags"])),
            ))
        self.iter = iter(records)

    def extract(self) -> Any:
        return next(self.iter, None)

    def get_scope(self) -> str:
        return "extractor.flexyboots_document_tables"


# ------------------------------------------------------------------------------ check results


def _cell(field: dict, value: Any) -> Any:
    """A BigQuery REST (tabledata) cell as a Python value."""
    if field.get("mode") == "REPEATED":
        return [_cell({**field, "mode": "NULLABLE"}, v["v"]) for v in (value or [])]
    if value is None:
        return None
    t = field["type"]
    if t in ("INTEGER", "INT64"):
        return int(value)
    if t in ("BOOLEAN", "BOOL"):
        return value in (True, "true")
    if t in ("FLOAT", "FLOAT64"):
        return float(value)
    if t == "TIMESTAMP":
        return float(value)  # seconds since the epoch
    return value


def rows_of(response: dict) -> list[dict]:
    fields = response.get("schema", {}).get("fields", [])
    return [{f["name"]: _cell(f, c["v"]) for f, c in zip(fields, row["f"])} for row in response.get("rows", [])]


def check_records(rows: list[dict], doc: dict) -> list:
    """The latest result of each check -> per DWH table a badge (``checks passed``, ``checks
    warn``, ``checks failed``) and a programmatic description listing every check; a ``check
    failed`` badge on the columns of a failed error-severity check."""
    by_table: dict[str, list[dict]] = {}
    for r in rows:
        by_table.setdefault(r["table_name"], []).append(r)
    out: list = []
    for table, key in sorted(doc["dwh_keys"].items()):
        results = by_table.get(table)
        if not results:
            continue
        order = {c["name"]: i for i, c in enumerate(doc["checks"].get(table, []))}
        results.sort(key=lambda r: (order.get(r["check_name"], len(order)), r["check_name"]))
        failed = [r for r in results if not r["passed"] and r["severity"] == "error"]
        warned = [r for r in results if not r["passed"] and r["severity"] != "error"]
        state = "checks failed" if failed else "checks warn" if warned else "checks passed"
        out.append(BadgeMetadata(start_label=TableMetadata.TABLE_NODE_LABEL, start_key=key, badges=[Badge(state, "data_quality")]))
        for col in sorted({c for r in failed for c in (r["columns"] or []) if not c.startswith("_")}):
            out.append(BadgeMetadata(start_label=ColumnMetadata.COLUMN_NODE_LABEL, start_key=f"{key}/{col}", badges=[Badge("check failed", "data_quality")]))
        when = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime(max(r["checked_at"] for r in results)))
        lines = [f"Latest flexyboots checks ({when}): {len(results) - len(failed) - len(warned)} passed, {len(warned)} warned, {len(failed)} failed.", "",
                 "| check | severity | result | failing rows | message |", "| --- | --- | --- | --- | --- |"]
        for r in results:
            verdict = "pass" if r["passed"] else ("FAIL" if r["severity"] == "error" else "warn")
            failing = "" if r["failing_rows"] is None else str(r["failing_rows"])
            message = (r["message"] or "").replace("|", "\\|")
            lines.append(f"| `{r['check_name']}` | {r['severity']} | {verdict} | {failing} | {message} |")
        out.append(DescriptionMetadata(text="\n".join(lines), source=CHECKS_SOURCE, start_label=TableMetadata.TABLE_NODE_LABEL, start_key=key))
    return out


class FlexybootsCheckResultsExtractor(BaseBigQueryExtractor):
    """The latest result of every check from ``quality.check_results`` (one query through the
    same authorized BigQuery API client as databuilder's BigQuery extractors), as badges and
    programmatic descriptions (:func:`check_records`)."""

    QUERY = (
        "SELECT table_name, check_name, rule, columns, severity, passed, failing_rows, observed_value, message, "
        "UNIX_SECONDS(checked_at) AS checked_at FROM `{table}` "
        "WHERE checked_at >= TIMESTAMP_SUB(CURRENT_TIMESTAMP(), INTERVAL @lookback_days DAY) "
        "QUALIFY ROW_NUMBER() OVER (PARTITION BY table_name, check_name ORDER BY checked_at DESC) = 1"
    )

    def init(self, conf: ConfigTree) -> None:
        BaseBigQueryExtractor.init(self, conf)
        self.location = conf.get_string("location")
        self.results_table = conf.get_string("results_table")
        self.lookback_days = conf.get_int("lookback_days")
        self.iter = iter(check_records(self._latest(), DOCUMENT))

    def _latest(self) -> list[dict]:
        body = {
            "query": self.QUERY.format(table=self.results_table),
            "useLegacySql": False,
            "location": self.location,
            "parameterMode": "NAMED",
            "queryParameters": [{"name": "lookback_days", "parameterType": {"type": "INT64"}, "parameterValue": {"value": str(self.lookback_days)}}],
            "timeoutMs": 60000,
        }
        jobs = self.bigquery_service.jobs()
        resp = jobs.query(projectId=self.project_id, body=body).execute(num_retries=self.NUM_RETRIES)
        job_id = resp.get("jobReference", {}).get("jobId")
        while not resp.get("jobComplete"):
            resp = jobs.getQueryResults(projectId=self.project_id, jobId=job_id, location=self.location, timeoutMs=60000).execute(num_retries=self.NUM_RETRIES)
        rows = rows_of(resp)
        while resp.get("pageToken"):
            resp = jobs.getQueryResults(projectId=self.project_id, jobId=job_id, location=self.location, pageToken=resp["pageToken"]).execute(num_retries=self.NUM_RETRIES)
            rows += rows_of(resp)
        return rows

    def get_scope(self) -> str:
        return "extractor.flexyboots_check_results"


# ------------------------------------------------------------------------------ running


def _class(path: str) -> type:
    module, _, name = path.rpartition(".")
    if module == "flexyboots_catalog":
        return globals()[name]
    return getattr(importlib.import_module(module), name)


def _write_lineage(doc: dict, work: Path) -> None:
    work.mkdir(parents=True, exist_ok=True)
    with open(work / "table_lineage.csv", "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["source_table_key", "target_table_key"])
        w.writerows(doc["table_lineage"])
    with open(work / "column_lineage.csv", "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["source_column_key", "target_column_key"])
        w.writerows(doc["column_lineage"])


def _substitute(value: Any, work: Path) -> Any:
    return value.replace(WORK_TOKEN, str(work)) if isinstance(value, str) else value


def run(doc: dict, work_dir: str | Path, publish: bool = True, jobs: list[str] | None = None) -> list[str]:
    """Run the document's jobs (all, or ``jobs``) in order; returns the names run."""
    global DOCUMENT
    DOCUMENT = doc
    work = Path(work_dir)
    _write_lineage(doc, work)
    done = []
    for spec in doc["jobs"]:
        if jobs and spec["name"] not in jobs:
            continue
        conf = ConfigFactory.from_dict({k: _substitute(v, work) for k, v in spec["conf"].items()})
        parts = {"extractor": _class(spec["extractor"])(), "loader": _class(spec["loader"])()}
        if spec.get("transformer"):
            parts["transformer"] = _class(spec["transformer"])()
        task = DefaultTask(**parts)
        publisher = _class(spec["publisher"])() if publish else NoopPublisher()
        LOG.info("flexyboots catalog: job %s", spec["name"])
        DefaultJob(conf=conf, task=task, publisher=publisher).launch()
        done.append(spec["name"])
    return done


def wait_for_neo4j(doc: dict, seconds: int) -> None:
    """Wait until every neo4j endpoint the document publishes to accepts TCP connections."""
    endpoints = sorted({j["conf"]["publisher.neo4j.neo4j_endpoint"] for j in doc["jobs"] if "publisher.neo4j.neo4j_endpoint" in j["conf"]})
    deadline = time.monotonic() + seconds
    for endpoint in endpoints:
        url = urllib.parse.urlsplit(endpoint)
        while True:
            try:
                with socket.create_connection((url.hostname, url.port or 7687), timeout=5):
                    break
            except OSError as exc:
                if time.monotonic() >= deadline:
                    raise SystemExit(f"flexyboots_catalog: neo4j at {endpoint} not reachable after {seconds} s: {exc}")
                LOG.info("flexyboots catalog: waiting for neo4j at %s (%s)", endpoint, exc)
                time.sleep(3)


def read_metadata(key: str) -> dict:
    req = urllib.request.Request(METADATA_URL + key, headers={"Metadata-Flavor": "Google"})
    with urllib.request.urlopen(req, timeout=10) as resp:
        return json.loads(gzip.decompress(base64.b64decode(resp.read())))


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="flexyboots_catalog", description=__doc__.splitlines()[0])
    src = p.add_mutually_exclusive_group(required=True)
    src.add_argument("--metadata-key", help="read the document from this instance metadata key")
    src.add_argument("--document", help="read the document from this JSON file")
    p.add_argument("--work-dir", required=True, help="folder for the lineage files and the loader's CSV files")
    p.add_argument("--no-publish", action="store_true", help="load to CSV files only, publish nothing")
    p.add_argument("--jobs", default=None, help="comma-separated job names (default: all)")
    p.add_argument("--wait-for-neo4j", type=int, default=0, metavar="SECONDS", help="first wait up to SECONDS for neo4j to accept connections")
    args = p.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    doc = read_metadata(args.metadata_key) if args.metadata_key else json.loads(Path(args.document).read_text())
    if doc.get("version") != 1:
        print(f"flexyboots_catalog: document version {doc.get('version')!r} is not supported; expected 1", file=sys.stderr)
        return 2
    if args.wait_for_neo4j and not args.no_publish:
        wait_for_neo4j(doc, args.wait_for_neo4j)
    done = run(doc, args.work_dir, publish=not args.no_publish, jobs=args.jobs.split(",") if args.jobs else None)
    LOG.info("flexyboots catalog: done (%s)", ", ".join(done))
    return 0


if __name__ == "__main__":
    sys.exit(main())
