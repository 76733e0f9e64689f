"""OpenLineage run events, validated against the OpenLineage JSON schemas (vendored, see
openlineage_spec/README.md), from the CLI and from real runs on the embedded engine, sent to a
file and to an HTTP endpoint on loopback with openlineage-python's own transports."""

from __future__ import annotations

import copy
import json
import shutil
import threading
from http.server import BaseHTTPRequestHandler, HTTPServer
from pathlib import Path

import pytest

import olschema
from pipeline_sql.cli import main
from pipeline_sql.lineage import build_lineage
from pipeline_sql.naming import Naming
from pipeline_sql.openlineage import emit, lineage_events, to_json
from pipeline_sql.spec import load_specs

ROOT = Path(__file__).resolve().parents[2]
SPECS = load_specs(ROOT / "config" / "tables")


def events_of(text: str) -> list[dict]:
    return [json.loads(line) for line in text.splitlines() if line.strip()]


def assert_valid(events: list[dict]) -> None:
    assert events
    for ev in events:
        assert olschema.errors(ev) == [], f"{ev['job']['name']} {ev['eventType']}"


def column_lineage(event: dict, output_name: str) -> dict:
    (out,) = [o for o in event["outputs"] if o["name"] == output_name]
    return out["facets"]["columnLineage"]


def test_cli_openlineage_validates_with_the_column_lineage_facet(capsys):
    assert main(["lineage", "customers", "--format", "openlineage", "--project", "acme-data-dev", "--env", "dev", "--landing-uri", "gs://acme-dev-landing"]) == 0
    events = events_of(capsys.readouterr().out)
    assert_valid(events)
    # a START and a COMPLETE per step, sharing the run id
    jobs = [(e["job"]["name"], e["eventType"]) for e in events]
    steps = ["staging", "archive", "delta", "transform", "dwh", "checks", "rejects"]
    assert jobs == [(f"customers.{s}", t) for s in steps for t in ("START", "COMPLETE")]
    assert all(events[i]["run"]["runId"] == events[i + 1]["run"]["runId"] for i in range(0, len(events), 2))
    assert {e["job"]["namespace"] for e in events} == {"flexyboots.acme-data-dev.dev"}

    transform = events[7]
    fields = column_lineage(transform, "acme-data-dev.dev_transform.customers")["fields"]
    (src,) = fields["email_domain"]["inputFields"]
    assert (src["namespace"], src["name"], src["field"]) == ("bigquery", "acme-data-dev.dev_delta.customers", "email")
    assert src["transformations"] == [{"type": "DIRECT", "subtype": "TRANSFORMATION", "description": "LOWER(SPLIT(email, '@')[SAFE_OFFSET(1)])", "masking": False}]
    assert fields["balance"]["inputFields"][0]["transformations"][0]["description"] == "SAFE_CAST AS NUMERIC"
    indirect = column_lineage(transform, "acme-data-dev.dev_transform.customers")["dataset"]
    assert [(i["field"], i["transformations"][0]["subtype"]) for i in indirect] == [("_valid", "FILTER")]

    staging = events[1]
    assert staging["inputs"][0]["namespace"] == "gs://acme-dev-landing" and staging["inputs"][0]["name"] == "customers/"
    archive = events[3]
    renamed = column_lineage(archive, "acme-data-dev.dev_archive.customers")["fields"]
    assert renamed["customer_id"]["inputFields"][0]["field"] == "id"
    assert renamed["customer_id"]["inputFields"][0]["transformations"][0]["subtype"] == "IDENTITY"
    assert {t["masking"] for f in renamed["_row_hash"]["inputFields"] for t in f["transformations"]} == {True}
    assert "MERGE `acme-data-dev.dev_dwh.customers`" in events[9]["job"]["facets"]["sql"]["query"]
    dwh_in = events[9]["outputs"][0]
    assert dwh_in["facets"]["documentation"]["description"] == SPECS[0].description
    schema = {f["name"]: f for f in dwh_in["facets"]["schema"]["fields"]}
    assert schema["_row_hash"]["description"].startswith("MD5")


def test_every_table_validates_and_broken_events_do_not():
    lin = build_lineage(SPECS)
    events = [json.loads(to_json(e)) for e in lineage_events(lin, SPECS)]
    assert_valid(events)
    assert len(events) == 2 * 7 * len(SPECS)
    # the validator is not a rubber stamp
    bad = copy.deepcopy(events[1])
    del bad["outputs"][0]["facets"]["columnLineage"]["fields"]["id"]["inputFields"][0]["field"]
    bad["eventType"] = "DONE"
    errs = olschema.errors(bad)
    assert any("'DONE' is not one of" in e for e in errs)
    assert any("columnLineage" in e and "'field' is a required property" in e for e in errs)
    bad = copy.deepcopy(events[1])
    bad["outputs"][0]["facets"]["columnLineage"]["_schemaURL"] = "https://openlineage.io/spec/facets/9-9-9/ColumnLineageDatasetFacet.json#/$defs/ColumnLineageDatasetFacet"
    assert olschema.errors(bad) == [f"outputs[0].facets.columnLineage: {bad['outputs'][0]['facets']['columnLineage']['_schemaURL']} is not vendored in {olschema.SPEC}"]


class _Collector(BaseHTTPRequestHandler):
    received: list = []
    status = 200

    def do_POST(self):  # noqa: N802 - http.server's name
        body = self.rfile.read(int(self.headers["Content-Length"]))
        type(self).received.append((self.path, self.headers.get("Content-Type"), json.loads(body)))
        self.send_response(type(self).status)
        self.end_headers()

    def log_message(self, *args):
        pass


@pytest.fixture
def endpoint():
    _Collector.received, _Collector.status = [], 200
    server = HTTPServer(("127.0.0.1", 0), _Collector)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_port}", _Collector
    server.shutdown()
    server.server_close()


def test_run_sends_its_events_to_a_file_and_an_endpoint(capsys, tmp_path, endpoint):
    url, collector = endpoint
    landing, state, out = tmp_path / "landing", tmp_path / "state", tmp_path / "lineage.jsonl"
    shutil.copytree(ROOT / "landing" / "customers", landing / "customers", ignore=shutil.ignore_patterns("003_*"))
    args = ["run", "--tables", "customers", "--landing", str(landing), "--state", str(state), "--quiet", "--lineage-file", str(out), "--lineage-url", url]
    assert main(args) == 0
    assert "OpenLineage events sent to" in capsys.readouterr().out
    events = events_of(out.read_text())
    assert_valid(events)
    posted = [body for _, _, body in collector.received]
    assert [p["run"]["runId"] for p in posted] == [e["run"]["runId"] for e in events]
    assert {(path, ctype) for path, ctype, _ in collector.received} == {("/api/v1/lineage", "application/json")}
    # two batches: staging + archive twice, then delta, transform, dwh, checks; START + COMPLETE each
    assert [e["job"]["name"].split(".")[1] for e in events if e["eventType"] == "COMPLETE"] == [
        "staging", "archive", "staging", "archive", "delta", "transform", "dwh", "checks"]
    complete = {e["job"]["name"] + str(i): e for i, e in enumerate(events) if e["eventType"] == "COMPLETE"}
    dwh = next(e for e in complete.values() if e["job"]["name"] == "customers.dwh")
    assert dwh["outputs"][0]["outputFacets"]["outputStatistics"]["rowCount"] == 14  # inserted + updated: 14 new keys
    checks = next(e for e in complete.values() if e["job"]["name"] == "customers.checks")
    assertions = checks["inputs"][0]["inputFacets"]["dataQualityAssertions"]["assertions"]
    assert [a["name"] for a in assertions] == [c.name for c in SPECS[0].checks]
    assert all(a["success"] for a in assertions if a["severity"] == "error")
    staging = next(e for e in events if e["job"]["name"] == "customers.staging")
    assert staging["inputs"][0]["namespace"] == "file" and staging["inputs"][0]["name"] == str(landing.resolve() / "customers") + "/"

    # a second run with nothing new: the table is up to date, no layer runs, so no event is sent
    assert main(args) == 0
    assert "1 tables up to date" in capsys.readouterr().out
    assert events_of(out.read_text()) == events


def test_failed_layer_sends_fail_and_an_unreachable_endpoint_is_named(capsys, tmp_path, endpoint):
    url, collector = endpoint
    landing = tmp_path / "landing"
    (landing / "customers").mkdir(parents=True)
    (landing / "customers" / "001.csv").write_text("id,wrong\n1,x\n")
    assert main(["run", "--tables", "customers", "--landing", str(landing), "--state", str(tmp_path / "s"), "--quiet", "--lineage-url", url]) == 1
    assert "line 1, column 4: header field 2 'wrong' is not a source column of the spec" in capsys.readouterr().err
    events = [body for _, _, body in collector.received]
    assert_valid(events)
    assert [(e["job"]["name"], e["eventType"]) for e in events] == [("customers.staging", "START"), ("customers.staging", "FAIL")]
    assert "header field 2 'wrong' is not a source column" in events[1]["run"]["facets"]["errorMessage"]["message"]

    collector.status = 500
    lin = build_lineage(SPECS, tables=["products"])
    with pytest.raises(Exception, match=f"cannot send OpenLineage events to {url}/api/v1/lineage"):
        emit(lineage_events(lin, SPECS)[:1], url=url)
