"""The local stack's catalog load, run by Amundsen's databuilder offline (.venv-databuilder):
the document the loader container gets (components.catalog.render_local_loader's
``catalog.json``, from local_catalog_document), run by the job script as the container runs
it but with ``--no-publish`` (no neo4j here), and the records the neo4j publisher would publish
asserted from the loader's CSV files: every layer's tables of every spec, in the local
runner's keys, with their declared columns and the specs' descriptions, and the lineage."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

from components import catalog
from pipeline_sql.naming import LAYERS, Naming
from pipeline_sql.schema import pipeline_tables, shared_tables
from pipeline_sql.spec import load_specs
from tests.catalog.records import read_csvs

ROOT = Path(__file__).resolve().parents[2]
PYTHON = ROOT / ".venv-databuilder" / "bin" / "python"
SPECS = load_specs(ROOT / "config" / "tables")
LOCAL = Naming()  # python -m pipeline_sql's: project flexyboots-local, no env prefix


def _run_job(tmp: Path, doc: dict, *extra: str, timeout: int = 300) -> subprocess.CompletedProcess:
    if not PYTHON.exists():
        pytest.fail(f"{PYTHON} is missing: `make databuilder-setup` builds Amundsen's databuilder virtualenv (make test does)")
    _, files = catalog.render_local_loader(doc)
    (tmp / "catalog.json").write_text(files[f"{catalog.LOCAL_LOADER_DIR}/catalog.json"])
    env = {k: v for k, v in os.environ.items() if not k.startswith(("GOOGLE_", "PYTHON"))}
    return subprocess.run(
        [str(PYTHON), str(catalog.JOB_SCRIPT), "--document", str(tmp / "catalog.json"), "--work-dir", str(tmp / "work"), *extra],
        capture_output=True, text=True, timeout=timeout, env=env,
    )


@pytest.fixture(scope="module")
def loaded(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("local-catalog")
    doc = catalog.local_catalog_document(SPECS)
    proc = _run_job(tmp, doc, "--no-publish", "--wait-for-neo4j", "600")  # no wait without publishing
    assert proc.returncode == 0, proc.stderr[-4000:]
    assert "flexyboots catalog: done (tables, table_lineage, column_lineage)" in proc.stderr
    work = tmp / "work"
    return doc, {j["name"]: (read_csvs(work / j["name"] / "nodes"), read_csvs(work / j["name"] / "relationships")) for j in doc["jobs"]}


def key(layer: str, table: str) -> str:
    return f"bigquery://flexyboots-local.{layer}/{table}"


def test_every_layers_tables_with_declared_columns_and_descriptions(loaded):
    _, result = loaded
    nodes, rels = result["tables"]
    tables = {n["KEY"]: n for n in nodes if n["LABEL"] == "Table"}
    expected = {key(td.dataset, td.name) for s in SPECS for td in pipeline_tables(s, LOCAL)} | {key(td.dataset, td.name) for td in shared_tables(LOCAL)}
    assert set(tables) == expected
    for spec in SPECS:
        for layer in LAYERS:
            assert key(layer, spec.table) in tables, (spec.table, layer)
    assert tables[key("quality", "customers__rejects")]["is_view"] == "True"
    assert tables[key("dwh", "customers")]["is_view"] == "False"
    assert {n["name"] for n in nodes if n["LABEL"] == "Database"} == {"bigquery"}
    assert {n["name"] for n in nodes if n["LABEL"] == "Cluster"} == {"flexyboots-local"}
    # the columns as declared (the DWH's in spec order, typed as databuilder's BigQuery extractor types them)
    columns = [n for n in nodes if n["LABEL"] == "Column" and n["KEY"].startswith(key("dwh", "customers") + "/")]
    ordered = [c["name"] for c in sorted(columns, key=lambda c: int(c["sort_order"]))]
    assert ordered[: len(SPECS[0].dwh_columns)] == [n for n, _ in SPECS[0].dwh_columns]
    assert {c["col_type"] for c in columns if c["name"] == "balance"} == {"NUMERIC:NULLABLE"}
    (staging,) = [td for td in pipeline_tables(SPECS[0], LOCAL) if td.layer == "staging" and td.name == "customers"]
    staged = [n for n in nodes if n["LABEL"] == "Column" and n["KEY"].startswith(key("staging", "customers") + "/")]
    assert sorted(c["name"] for c in staged) == sorted(f["name"] for f in staging.fields)
    # the specs' descriptions, table and column
    descriptions = {n["KEY"]: n["description"] for n in nodes if n["LABEL"] == "Description"}
    assert descriptions[key("dwh", "customers") + "/_description"].startswith(SPECS[0].description)
    assert descriptions[key("transform", "customers") + "/_description"].endswith("customers: the planned DWH schema")
    assert descriptions[key("delta", "orders") + "/_row_hash/_description"].startswith("MD5")
    tags = {(r["START_KEY"], r["END_KEY"]) for r in rels if r["TYPE"] == "TAGGED_BY"}
    assert {(key("archive", "orders"), t) for t in ("flexyboots", "default", "archive")} <= tags


def test_table_and_column_lineage_in_the_local_runners_keys(loaded):
    doc, result = loaded
    _, table_rels = result["table_lineage"]
    lineage = {(r["START_KEY"], r["END_KEY"]) for r in table_rels if r["TYPE"] == "HAS_DOWNSTREAM"}
    for spec in SPECS:
        chain = [key(layer, spec.table) for layer in LAYERS]
        assert set(zip(chain, chain[1:])) <= lineage, spec.table
        assert (key("archive", spec.table), key("quality", f"{spec.table}__rejects")) in lineage
    assert (key("dwh", "customers"), key("quality", "check_results")) in lineage
    assert len(lineage) == len(doc["table_lineage"])
    _, col_rels = result["column_lineage"]
    cols = {(r["START_KEY"], r["END_KEY"]) for r in col_rels if r["TYPE"] == "HAS_DOWNSTREAM"}
    assert (key("delta", "customers") + "/email", key("transform", "customers") + "/email_domain") in cols
    assert (key("transform", "customers") + "/email_domain", key("dwh", "customers") + "/email_domain") in cols
    assert (key("staging", "customers") + "/id", key("archive", "customers") + "/customer_id") in cols
    assert len(cols) == len(doc["column_lineage"])
    # every lineage end is a table the tables job loads (no dangling keys in the catalog)
    nodes, _ = result["tables"]
    tables = {n["KEY"] for n in nodes if n["LABEL"] == "Table"}
    assert {k for row in doc["table_lineage"] for k in row} <= tables


def test_publishing_waits_for_neo4j_and_says_so(tmp_path):
    """Without --no-publish the job first waits for the document's neo4j; nothing listens on
    port 1 here, so it gives up after the wait with the endpoint in the message."""
    doc = catalog.local_catalog_document(SPECS, neo4j_endpoint="bolt://127.0.0.1:1")
    proc = _run_job(tmp_path, doc, "--wait-for-neo4j", "1", timeout=120)
    assert proc.returncode != 0
    assert "neo4j at bolt://127.0.0.1:1 not reachable after 1 s" in proc.stderr
