"""Run the catalog job offline, in the databuilder virtualenv (tests/catalog/test_catalog.py
starts it as a subprocess): databuilder's real extractors, transformer, loader and task, with
BigQuery's REST API answered from a fixture file and no neo4j (``--no-publish``).

    .venv-databuilder/bin/python tests/catalog/offline_harness.py DOCUMENT FIXTURE WORK_DIR REQUEST_LOG

The fixture stands in for the HTTP layer only (``httplib2.Http`` under google-auth's
``AuthorizedHttp``; credentials are anonymous): googleapiclient builds its requests from
BigQuery's bundled discovery document and parses the answers as it would BigQuery's. Every
request is appended to REQUEST_LOG (method, path, query, body) for the test to check.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from urllib.parse import parse_qs, urlparse

import google.auth
import httplib2
from google.auth.credentials import AnonymousCredentials

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO / "components" / "amundsen"))

import flexyboots_catalog  # noqa: E402
from databuilder.extractor import base_bigquery_extractor  # noqa: E402


class FakeBigQueryHttp:
    """BigQuery v2 as the fixture describes it: datasets (with labels), tables, query results."""

    def __init__(self, fixture: dict, log: list):
        self.fixture, self.log = fixture, log

    def request(self, uri, method="GET", body=None, headers=None, redirections=5, connection_type=None):
        url = urlparse(uri)
        query = {k: v[0] for k, v in parse_qs(url.query).items()}
        self.log.append({"method": method, "path": url.path, "query": query, "body": json.loads(body) if body else None})
        parts = url.path.split("/bigquery/v2/projects/", 1)[-1].split("/")
        project = parts[0]
        if method == "GET" and parts[1:] == ["datasets"]:
            wanted = [f.split(":", 1) for f in query.get("filter", "").split() if f.startswith("labels.")]
            found = [d for d in self.fixture["datasets"] if d["datasetReference"]["projectId"] == project
                     and all(d.get("labels", {}).get(k.removeprefix("labels.")) == v for k, v in wanted)]
            return self._ok({"kind": "bigquery#datasetList", "datasets": found})
        if method == "GET" and len(parts) == 4 and parts[1] == "datasets" and parts[3] == "tables":
            tables = [{"tableReference": t["tableReference"], "type": t["type"]} for t in self.fixture["tables"]
                      if t["tableReference"]["datasetId"] == parts[2] and t["tableReference"]["projectId"] == project]
            return self._ok({"kind": "bigquery#tableList", "tables": tables, "totalItems": len(tables)})
        if method == "GET" and len(parts) == 5 and parts[3] == "tables":
            for t in self.fixture["tables"]:
                if (t["tableReference"]["datasetId"], t["tableReference"]["tableId"]) == (parts[2], parts[4]):
                    return self._ok(t)
            return self._error(404, f"Not found: Table {project}:{parts[2]}.{parts[4]}")
        if method == "POST" and parts[1:] == ["queries"]:
            return self._ok(self.fixture["query_response"])
        return self._error(400, f"the fake BigQuery does not answer {method} {url.path}")

    @staticmethod
    def _ok(doc: dict):
        return httplib2.Response({"status": "200", "content-type": "application/json"}), json.dumps(doc).encode()

    @staticmethod
    def _error(status: int, message: str):
        doc = {"error": {"code": status, "message": message, "errors": [{"message": message, "reason": "notFound"}]}}
        return httplib2.Response({"status": str(status), "content-type": "application/json"}), json.dumps(doc).encode()


def main(document: str, fixture: str, work_dir: str, request_log: str) -> int:
    log: list = []
    fake = FakeBigQueryHttp(json.loads(Path(fixture).read_text()), log)
    google.auth.default = lambda scopes=None, **kw: (AnonymousCredentials(), None)
    base_bigquery_extractor.httplib2.Http = lambda *a, **kw: fake
    try:
        flexyboots_catalog.main(["--document", document, "--work-dir", work_dir, "--no-publish"])
    finally:
        Path(request_log).write_text(json.dumps(log, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main(*sys.argv[1:]))
