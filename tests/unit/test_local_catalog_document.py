"""components.catalog's local variant (pure): the document the local stack's loader container
runs, in the local runner's keys, without BigQuery; and the loader's command and files."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import pytest

from components import catalog
from pipeline_sql.naming import Naming
from pipeline_sql.schema import pipeline_tables, shared_tables
from pipeline_sql.spec import load_specs

ROOT = Path(__file__).resolve().parents[2]
SPECS = load_specs(ROOT / "config" / "tables")


def test_keys_are_the_local_runners_and_no_job_reads_bigquery():
    doc = catalog.local_catalog_document(SPECS)
    assert (doc["project"], doc["env"], doc["source"]) == ("flexyboots-local", "", "local")
    assert doc["datasets"]["dwh"] == "dwh" and doc["dwh_keys"]["customers"] == "bigquery://flexyboots-local.dwh/customers"
    assert [j["name"] for j in doc["jobs"]] == ["tables", "table_lineage", "column_lineage"]
    assert doc["jobs"][0]["extractor"] == "flexyboots_catalog.FlexybootsDocumentTableExtractor"
    assert not any("bigquery" in j["extractor"].lower() or "CheckResults" in j["extractor"] for j in doc["jobs"])
    assert {j["conf"]["publisher.neo4j.neo4j_endpoint"] for j in doc["jobs"]} == {"bolt://neo4j_amundsen:7687"}
    # every table the local runner creates, with its declared schema
    local = Naming()
    tds = [td for s in SPECS for td in pipeline_tables(s, local)] + shared_tables(local)
    assert set(doc["tables"]) == {f"{td.dataset}.{td.name}" for td in tds}
    for td in tds:
        entry = doc["tables"][f"{td.dataset}.{td.name}"]
        assert entry["fields"] == [dict(f) for f in td.fields] and entry["is_view"] == (td.view_query is not None)
    # lineage rows only between catalogued tables
    keys = {catalog.table_key("flexyboots-local", *t.split(".", 1)) for t in doc["tables"]}
    assert doc["table_lineage"] and {k for row in doc["table_lineage"] for k in row} <= keys
    assert json.loads(json.dumps(doc)) == doc  # JSON as is


def test_the_vm_document_keeps_its_shape_and_takes_an_endpoint():
    naming = Naming(project="acme-data-dev", env="dev")
    vm = catalog.catalog_document(SPECS, naming, location="EU")
    assert {j["conf"]["publisher.neo4j.neo4j_endpoint"] for j in vm["jobs"]} == {catalog.NEO4J_ENDPOINT}
    assert "fields" not in vm["tables"]["dev_dwh.customers"]  # the VM asks BigQuery (and the metadata value stays small)
    other = catalog.catalog_document(SPECS, naming, location="EU", neo4j_endpoint="bolt://neo4j.internal:17687")
    assert {j["conf"]["publisher.neo4j.neo4j_endpoint"] for j in other["jobs"]} == {"bolt://neo4j.internal:17687"}
    # the lineage is the same whichever document: only the project and datasets differ
    local = catalog.local_catalog_document(SPECS, naming)
    assert local["table_lineage"] == vm["table_lineage"] and local["column_lineage"] == vm["column_lineage"]


@pytest.mark.parametrize("endpoint", ["http://neo4j:7687", "bolt://neo4j", "bolt://neo4j:0", "bolt://neo4j:99999", "bolt://a b:7687", 7687])
def test_a_bad_endpoint_is_refused(endpoint):
    with pytest.raises(ValueError, match=r"catalog: neo4j_endpoint: a bolt URL 'bolt://<host>:<port>'"):
        catalog.local_catalog_document(SPECS, neo4j_endpoint=endpoint)
    with pytest.raises(ValueError, match=r"catalog: neo4j_endpoint:"):
        catalog.catalog_document(SPECS, Naming(env="dev"), location="EU", neo4j_endpoint=endpoint)


def test_the_loader_installs_the_lock_and_runs_the_document():
    doc = catalog.local_catalog_document(SPECS)
    command, files = catalog.render_local_loader(doc, wait_s=120)
    d = catalog.LOCAL_LOADER_DIR
    assert set(files) == {f"{d}/requirements-databuilder.lock", f"{d}/flexyboots_catalog.py", f"{d}/catalog.json"}
    assert files[f"{d}/requirements-databuilder.lock"] == catalog.DATABUILDER_LOCK.read_text()
    assert files[f"{d}/flexyboots_catalog.py"] == catalog.JOB_SCRIPT.read_text()
    assert json.loads(files[f"{d}/catalog.json"]) == doc
    assert command[:2] == ["sh", "-c"]
    script = command[2]
    install, run = script.removeprefix("set -e; ").split("; exec ")
    assert install == f"python -m pip install --quiet --disable-pip-version-check --root-user-action=ignore --no-deps -r {d}/requirements-databuilder.lock"
    assert run == f"python {d}/flexyboots_catalog.py --document {d}/catalog.json --work-dir /tmp/flexyboots-catalog --wait-for-neo4j 120"


def test_a_spec_change_changes_the_loaders_files():
    """What replaces the loader container on `pulumi up`: its uploaded document."""
    _, before = catalog.render_local_loader(catalog.local_catalog_document(SPECS))
    changed = [dataclasses.replace(SPECS[0], description="customers, described anew")] + SPECS[1:]
    _, after = catalog.render_local_loader(catalog.local_catalog_document(changed))
    path = f"{catalog.LOCAL_LOADER_DIR}/catalog.json"
    assert before[path] != after[path] and "customers, described anew" in after[path]
    _, again = catalog.render_local_loader(catalog.local_catalog_document(SPECS))
    assert again == before  # deterministic: no change, no re-run


def test_bad_loader_input_is_refused():
    with pytest.raises(ValueError, match=r"catalog: wait_s: a whole number of seconds from 0 to 3600"):
        catalog.render_local_loader(catalog.local_catalog_document(SPECS), wait_s=-1)
    with pytest.raises(ValueError, match=r"catalog: doc: a catalog document"):
        catalog.render_local_loader({"version": 2})
    with pytest.raises(ValueError, match=r"catalog: naming: a pipeline_sql.naming.Naming"):
        catalog.local_catalog_document(SPECS, "flexyboots-local")
