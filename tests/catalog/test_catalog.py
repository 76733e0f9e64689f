"""The Amundsen catalog job, run by Amundsen's databuilder offline (.venv-databuilder, built by
`make databuilder-setup`): the document rendered by components.catalog, databuilder's
BigQueryMetadataExtractor answered by a fake BigQuery API built from flexyboots' own table
schemas, the check results read with the job's own query run on the embedded engine after a
real pipeline run, and the records the neo4j publisher would publish asserted from the
loader's CSV files."""

from __future__ import annotations

import ast
import json
import os
import shutil
import subprocess
from pathlib import Path

import pytest

from components import catalog
from pipeline_sql.checks import RESULTS_FIELDS
from pipeline_sql.engine import LocalEngine
from pipeline_sql.naming import DATASETS, Naming
from pipeline_sql.runner import Runner
from pipeline_sql.schema import pipeline_tables, shared_tables
from pipeline_sql.spec import load_specs
from tests.catalog.records import read_csvs

ROOT = Path(__file__).resolve().parents[2]
PYTHON = ROOT / ".venv-databuilder" / "bin" / "python"
HARNESS = Path(__file__).with_name("offline_harness.py")
SPECS = load_specs(ROOT / "config" / "tables")
NAMING = Naming(env="dev")  # the local project, dataset prefix dev_
PROJECT = NAMING.project


def job_query() -> str:
    """FlexybootsCheckResultsExtractor.QUERY, read from the job script (it imports databuilder)."""
    tree = ast.parse(catalog.JOB_SCRIPT.read_text())
    cls = next(n for n in tree.body if isinstance(n, ast.ClassDef) and n.name == "FlexybootsCheckResultsExtractor")
    assign = next(n for n in cls.body if isinstance(n, ast.Assign) and n.targets[0].id == "QUERY")
    return ast.literal_eval(assign.value)


def _rest_value(v, field: dict):
    if field["mode"] == "REPEATED":
        return [{"v": _rest_value(x, {**field, "mode": "NULLABLE"})} for x in v or []]
    if v is None:
        return None
    if isinstance(v, bool):
        return "true" if v else "false"
    return str(v)


@pytest.fixture(scope="module")
def checked_rows(tmp_path_factory):
    """A real run of the three sample tables (env dev, in memory), then the job's query on its
    results."""
    from google.cloud import bigquery

    tmp = tmp_path_factory.mktemp("catalog-run")
    shutil.copytree(ROOT / "landing", tmp / "landing")
    with LocalEngine(state_dir=None, gcs_root=tmp) as eng:
        Runner(eng.client, NAMING, landing_dir=tmp / "landing", read_in_place=True).run(SPECS)
        sql = job_query().format(table=NAMING.table_id("quality", "check_results"))
        cfg = bigquery.QueryJobConfig(query_parameters=[bigquery.ScalarQueryParameter("lookback_days", "INT64", 7)])
        result = eng.client.query(sql, job_config=cfg).result()
        return [dict(r.items()) for r in result], [f.to_api_repr() for f in result.schema]


def bigquery_fixture(rows: list[dict], schema: list[dict]) -> dict:
    """BigQuery's REST answers for the dev stack as Pulumi declares it: every layer's dataset
    (labelled env=dev), a table resource per table with the schema; only tables Pulumi
    declares carry descriptions (the SQL rebuilds the others without); and an other env's
    dataset the label filter must keep out."""
    datasets = [
        {"datasetReference": {"projectId": PROJECT, "datasetId": NAMING.dataset(layer)}, "labels": {"env": "dev", "component": "warehouse", "managed-by": "pulumi"}}
        for layer in DATASETS
    ] + [{"datasetReference": {"projectId": PROJECT, "datasetId": "prod_dwh"}, "labels": {"env": "prod"}}]
    tables = []
    for td in [t for s in SPECS for t in pipeline_tables(s, NAMING)] + shared_tables(NAMING):
        declared = not td.rebuilt_by_sql
        fields = [{k: v for k, v in f.items() if declared or k != "description"} for f in td.fields]
        res = {
            "kind": "bigquery#table",
            "tableReference": {"projectId": PROJECT, "datasetId": td.dataset, "tableId": td.name},
            "type": "VIEW" if td.view_query else "TABLE",
            "schema": {"fields": fields},
        }
        if declared and td.description:
            res["description"] = td.description
        tables.append(res)
    tables.append({"tableReference": {"projectId": PROJECT, "datasetId": "prod_dwh", "tableId": "customers"}, "type": "TABLE", "schema": {"fields": [{"name": "x", "type": "STRING", "mode": "NULLABLE"}]}})
    # an extra table in dev_dwh that flexyboots does not own: passes through untouched
    tables.append({"tableReference": {"projectId": PROJECT, "datasetId": "dev_dwh", "tableId": "manual_notes"}, "type": "TABLE",
                   "description": "made by hand", "schema": {"fields": [{"name": "note", "type": "STRING", "mode": "NULLABLE"}]}})
    by_name = {f["name"]: f for f in schema}
    query_response = {
        "kind": "bigquery#queryResponse",
        "jobReference": {"projectId": PROJECT, "jobId": "job_1", "location": "EU"},
        "jobComplete": True,
        "schema": {"fields": schema},
        "totalRows": str(len(rows)),
        "rows": [{"f": [{"v": _rest_value(r[f["name"]], by_name[f["name"]])} for f in schema]} for r in rows],
    }
    return {"datasets": datasets, "tables": tables, "query_response": query_response}


@pytest.fixture(scope="module")
def published(tmp_path_factory, checked_rows):
    if not PYTHON.exists():
        pytest.fail(f"{PYTHON} is missing: `make databuilder-setup` builds Amundsen's databuilder virtualenv (make test does)")
    tmp = tmp_path_factory.mktemp("catalog-job")
    rows, schema = checked_rows
    doc = catalog.catalog_document(SPECS, NAMING, location="EU")
    (tmp / "doc.json").write_text(json.dumps(doc))
    (tmp / "fixture.json").write_text(json.dumps(bigquery_fixture(rows, schema)))
    env = {k: v for k, v in os.environ.items() if not k.startswith(("GOOGLE_", "PYTHON"))}
    proc = subprocess.run(
        [str(PYTHON), str(HARNESS), str(tmp / "doc.json"), str(tmp / "fixture.json"), str(tmp / "work"), str(tmp / "requests.json")],
        capture_output=True, text=True, timeout=300, env=env,
    )
    assert proc.returncode == 0, proc.stderr[-4000:]
    work = tmp / "work"
    result = {job["name"]: (read_csvs(work / job["name"] / "nodes"), read_csvs(work / job["name"] / "relationships")) for job in doc["jobs"]}
    return doc, result, json.loads((tmp / "requests.json").read_text()), rows


def key(dataset: str, table: str) -> str:
    return f"bigquery://{PROJECT}.{dataset}/{table}"


def test_bigquery_tables_with_spec_descriptions_and_tags(published):
    doc, result, requests, _ = published
    nodes, rels = result["bigquery_tables"]
    tables = {n["KEY"]: n for n in nodes if n["LABEL"] == "Table"}
    expected = {key(td.dataset, td.name) for s in SPECS for td in pipeline_tables(s, NAMING)} | {key("dev_quality", "check_results"), key("dev_dwh", "manual_notes")}
    assert set(tables) == expected  # prod_dwh kept out by the label filter
    assert tables[key("dev_quality", "customers__rejects")]["is_view"] == "True"
    # the DWH's description is BigQuery's (Pulumi declared it); the transform table has none in
    # BigQuery, the transformer fills in the spec's
    descriptions = {n["KEY"]: n["description"] for n in nodes if n["LABEL"] == "Description"}
    dwh_desc = descriptions[key("dev_dwh", "customers") + "/_description"]
    assert dwh_desc.startswith(SPECS[0].description) and dwh_desc.endswith("latest valid version per key")
    assert descriptions[key("dev_transform", "customers") + "/_description"].endswith("customers: the planned DWH schema")
    assert descriptions[key("dev_dwh", "manual_notes") + "/_description"] == "made by hand"
    assert descriptions[key("dev_delta", "orders") + "/_row_hash/_description"].startswith("MD5")
    columns = [n for n in nodes if n["LABEL"] == "Column" and n["KEY"].startswith(key("dev_dwh", "customers") + "/")]
    assert [c["name"] for c in sorted(columns, key=lambda c: int(c["sort_order"]))][:11] == [n for n, _ in SPECS[0].dwh_columns]
    assert {c["col_type"] for c in columns if c["name"] == "balance"} == {"NUMERIC:NULLABLE"}
    tags = {(r["START_KEY"], r["END_KEY"]) for r in rels if r["TYPE"] == "TAGGED_BY"}
    assert {(key("dev_archive", "orders"), t) for t in ("flexyboots", "dev", "archive")} <= tags
    assert not any(s == key("dev_dwh", "manual_notes") for s, _ in tags)
    listed = [r for r in requests if r["path"].endswith("/datasets") and r["method"] == "GET"]
    assert listed and listed[0]["query"]["filter"] == "labels.env:dev"


def test_table_and_column_lineage(published):
    doc, result, _, _ = published
    _, table_rels = result["table_lineage"]
    lineage = {(r["START_KEY"], r["END_KEY"]) for r in table_rels if r["TYPE"] == "HAS_DOWNSTREAM"}
    chain = [key(f"dev_{layer}", "customers") for layer in ("staging", "archive", "delta", "transform", "dwh")]
    assert set(zip(chain, chain[1:])) <= lineage
    assert (key("dev_archive", "customers"), key("dev_quality", "customers__rejects")) in lineage
    assert (key("dev_dwh", "customers"), key("dev_quality", "check_results")) in lineage  # orders' relationships check reads customers
    assert (key("dev_dwh", "customers"), key("dev_delta", "customers")) in lineage  # the delta compares with the DWH
    _, col_rels = result["column_lineage"]
    cols = {(r["START_KEY"], r["END_KEY"]) for r in col_rels if r["TYPE"] == "HAS_DOWNSTREAM"}
    email = [key(f"dev_{layer}", "customers") + "/email" for layer in ("staging", "archive", "delta")]
    assert set(zip(email, email[1:])) <= cols
    assert (key("dev_delta", "customers") + "/email", key("dev_transform", "customers") + "/email_domain") in cols
    assert (key("dev_transform", "customers") + "/email_domain", key("dev_dwh", "customers") + "/email_domain") in cols
    assert (key("dev_staging", "customers") + "/id", key("dev_archive", "customers") + "/customer_id") in cols
    assert len(cols) == len(doc["column_lineage"])


def test_check_results_become_badges_and_a_description(published):
    doc, result, requests, rows = published
    nodes, rels = result["check_results"]
    (query,) = [r for r in requests if r["method"] == "POST"]
    assert query["body"]["query"] == job_query().format(table=NAMING.table_id("quality", "check_results"))
    assert query["body"]["queryParameters"][0]["parameterValue"] == {"value": "7"} and query["body"]["location"] == "EU"
    latest = {(r["table_name"], r["check_name"]): r for r in rows}
    assert len(latest) == sum(len(s.checks) for s in SPECS)  # one (the latest) per check
    badges = {(r["START_KEY"], r["END_KEY"]) for r in rels if r["TYPE"] == "HAS_BADGE"}
    for spec in SPECS:
        results = [latest[(spec.table, c.name)] for c in spec.checks]
        failed = [r for r in results if not r["passed"] and r["severity"] == "error"]
        warned = [r for r in results if not r["passed"] and r["severity"] == "warn"]
        state = "checks failed" if failed else "checks warn" if warned else "checks passed"
        assert (key("dev_dwh", spec.table), state) in badges
    descriptions = {n["KEY"]: n["description"] for n in nodes if n["LABEL"] == "Programmatic_Description"}
    text = descriptions[key("dev_dwh", "orders") + "/_flexyboots_checks_description"]
    for c in SPECS[1].checks:
        assert f"| `{c.name}` | {c.severity} |" in text
    assert text.startswith("Latest flexyboots checks (")


def test_document_round_trips_through_instance_metadata_and_refuses_bad_input():
    doc = catalog.catalog_document(SPECS, Naming(project="acme-data-dev", env="dev"), location="EU")
    text = catalog.encode_document(doc)
    assert catalog.decode_document(text) == json.loads(json.dumps(doc))
    assert len(text) < catalog.METADATA_VALUE_LIMIT
    assert doc["jobs"][0]["conf"]["extractor.bigquery_table_metadata.filter"] == "labels.env:dev"
    with pytest.raises(ValueError, match="check_lookback_days: a whole number of days from 1 to 90"):
        catalog.catalog_document(SPECS, NAMING, location="EU", check_lookback_days=0)
    with pytest.raises(ValueError, match="schedule: a systemd OnCalendar value"):
        catalog.render_catalog_setup(schedule="every hour")
    script = catalog.render_catalog_setup(schedule="*:15")
    assert "OnCalendar=*:15" in script and "pip install --quiet --disable-pip-version-check --no-deps -r /etc/flexyboots/amundsen/requirements-databuilder.lock" in script
    assert catalog.JOB_SCRIPT.read_text().rstrip() in script and "amundsen-databuilder==7.5.1" in script
    big = {**doc, "column_lineage": [[f"k{i}" * 20, str(i)] for i in range(60000)]}
    with pytest.raises(ValueError, match="an instance metadata value holds at most 262144"):
        catalog.encode_document(big)
