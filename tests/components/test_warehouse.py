"""Warehouse under Pulumi mocks: one dataset per layer, expirations, protection, dataset-level IAM."""

from __future__ import annotations

import re
from pathlib import Path

import pulumi
import pytest

from components.common import ComponentArgsError
from components.testing import run_program
from components.warehouse import EXPIRING_LAYERS, LAYER_DESCRIPTIONS, DatasetGrant, Warehouse, WarehouseArgs
from pipeline_sql.naming import DATASETS, Naming

ROOT = Path(__file__).resolve().parents[2]

DS = "gcp:bigquery/dataset:Dataset"
IAM = "gcp:bigquery/datasetIamMember:DatasetIamMember"
PROJECT = "acme-data-prod"
SA = "pipeline@acme-data-prod.iam.gserviceaccount.com"


def _run(**over):
    def program():
        wh = Warehouse("wh", WarehouseArgs(**{"env": "prod", "project": PROJECT, **over}))
        pulumi.export("dataset_ids", wh.dataset_ids)
        pulumi.export("protected", wh.protected)
    return run_program(program)


@pytest.fixture(scope="module")
def prod():
    reader = pulumi.Output.from_input("bi@acme-data-prod.iam.gserviceaccount.com")
    return _run(
        protect=True,
        location="EU",
        temporary_table_expiration_ms=2 * 24 * 3600 * 1000,
        readers={"dwh": [reader]},
        writers={"staging": [SA], "archive": [SA]},
        grants={"quality": [DatasetGrant("roles/bigquery.dataViewer", "group:analysts@acme.example", key="analysts")]},
    )


@pytest.fixture(scope="module")
def dev():
    return _run(env="dev", protect=False)


def test_one_dataset_per_layer_named_like_the_sql(prod):
    datasets = {r.name: r.inputs for r in prod.of_type(DS)}
    assert len(datasets) == len(DATASETS) == 6
    naming = Naming(PROJECT, "prod")
    assert {d["datasetId"] for d in datasets.values()} == {naming.dataset(layer) for layer in DATASETS}
    assert prod.exports["dataset_ids"] == {layer: naming.dataset(layer) for layer in DATASETS}
    assert all(d["location"] == "EU" and d["project"] == PROJECT for d in datasets.values())
    # a protected warehouse never deletes tables on destroy
    assert all(d["deleteContentsOnDestroy"] is False for d in datasets.values())
    wh = prod.get("wh")
    assert all(r.parent == wh.urn for r in prod.resources if r is not wh)


def test_only_delta_and_transform_expire(prod):
    for layer in DATASETS:
        ds = prod.get(f"prod-wh-{layer}").inputs
        if layer in ("delta", "transform"):
            assert ds["defaultTableExpirationMs"] == 2 * 24 * 3600 * 1000, layer
        else:
            assert "defaultTableExpirationMs" not in ds, layer
    assert EXPIRING_LAYERS == ("delta", "transform")


_WRITES = re.compile(r"\b(LOAD DATA OVERWRITE|LOAD DATA INTO|INSERT INTO|MERGE|CREATE OR REPLACE TABLE|CREATE TABLE IF NOT EXISTS|CREATE TABLE)\s+`[^`.]+\.([a-z0-9_]+)\.", re.I)


@pytest.mark.parametrize("spec_file", sorted((ROOT / "config" / "tables").glob("*.yaml")) + sorted((ROOT / "tests" / "stacks").glob("tables*/*.yaml")), ids=lambda p: p.name)
def test_no_layer_reads_a_table_that_can_expire_under_it(spec_file):
    """A dataset's default expiration is stamped on a table when it is created and is not
    renewed by reloading it. So a dataset may expire tables only when every statement writing
    there creates its table anew (CREATE OR REPLACE: a fresh expiration every run); a table
    reloaded (LOAD DATA), appended to or merged into must live in a dataset without one."""
    from pipeline_sql.render import render_table
    from pipeline_sql.spec import load_spec

    spec = load_spec(spec_file)
    naming = Naming(PROJECT, "prod")
    layer_of = {naming.dataset(layer): layer for layer in DATASETS}
    rendered = render_table(spec, naming, landing_uri="gs://landing")
    statements = [*rendered.layers.values(), rendered.staging_batch, rendered.batch_log, rendered.checks]
    kinds: dict[str, set] = {}
    for sql in statements:
        sql = re.sub(r"--[^\n]*", "", sql)
        for verb, dataset in _WRITES.findall(sql):
            kinds.setdefault(layer_of[dataset], set()).add(verb.upper())
    assert kinds, "the rendered SQL writes somewhere"
    # the rule is about tables written in place (archive INSERT, dwh MERGE): they must be found
    assert {"INSERT INTO"} <= kinds["archive"] and {"MERGE"} <= kinds["dwh"], kinds
    for layer, verbs in kinds.items():
        if layer in EXPIRING_LAYERS:
            assert verbs == {"CREATE OR REPLACE TABLE"}, f"{layer} expires tables but is written by {verbs}"
    assert "staging" not in EXPIRING_LAYERS


def test_dev_destroy_removes_datasets_with_tables_prod_keeps_them(dev, prod):
    assert all(r.inputs["deleteContentsOnDestroy"] is True for r in dev.of_type(DS))
    assert all(r.inputs["deleteContentsOnDestroy"] is False for r in prod.of_type(DS))
    with pytest.raises(ComponentArgsError, match=r"^Warehouse: delete_contents_on_destroy: False or None when protect is on"):
        Warehouse("wh", WarehouseArgs(env="prod", project=PROJECT, protect=True, delete_contents_on_destroy=True))
    kept = _run(env="dev", delete_contents_on_destroy=False)
    assert all(r.inputs["deleteContentsOnDestroy"] is False for r in kept.of_type(DS))


def test_every_dataset_says_what_its_layer_holds(dev):
    descriptions = {r.inputs["datasetId"]: r.inputs["description"] for r in dev.of_type(DS)}
    assert descriptions["dev_staging"].startswith("flexyboots dev: staging layer: ") and "never expires" in descriptions["dev_staging"]
    assert descriptions["dev_dwh"] == f"flexyboots dev: {LAYER_DESCRIPTIONS['dwh']}"
    assert len(set(descriptions.values())) == len(DATASETS)


def test_archive_and_dwh_protected_when_asked(prod, dev):
    protected = {r.name for r in prod.of_type(DS) if r.protect}
    assert protected == {"prod-wh-archive", "prod-wh-dwh"}
    assert prod.get("prod-wh-dwh").inputs["deletionPolicy"] == "PREVENT"
    assert "deletionPolicy" not in prod.get("prod-wh-staging").inputs
    assert prod.exports["protected"] == {layer: layer in ("archive", "dwh") for layer in DATASETS}
    assert not any(r.protect for r in dev.of_type(DS))
    assert not any(dev.exports["protected"].values())


def test_grants_are_dataset_level_only(prod, violations):
    grants = {(r.inputs["datasetId"], r.inputs["role"], r.inputs["member"]) for r in prod.of_type(IAM)}
    assert grants == {
        ("prod_dwh", "roles/bigquery.dataViewer", "serviceAccount:bi@acme-data-prod.iam.gserviceaccount.com"),
        ("prod_staging", "roles/bigquery.dataEditor", f"serviceAccount:{SA}"),
        ("prod_archive", "roles/bigquery.dataEditor", f"serviceAccount:{SA}"),
        ("prod_quality", "roles/bigquery.dataViewer", "group:analysts@acme.example"),
    }
    assert not [r for r in prod.resources if r.type.startswith("gcp:projects/")]
    assert violations(prod, "iam-no-primitive-or-admin-roles", "iam-project-roles-allowlist") == []


def test_labels(prod, violations):
    assert violations(prod, "labels-required") == []
    assert prod.get("prod-wh-delta").inputs["labels"] == {"env": "prod", "component": "warehouse", "managed-by": "pulumi", "layer": "delta"}


def test_inventory_counts(prod, dev):
    assert prod.count_by_type() == {"flexyboots:warehouse:Warehouse": 1, DS: 6, IAM: 4}
    assert dev.count_by_type() == {"flexyboots:warehouse:Warehouse": 1, DS: 6}


@pytest.mark.parametrize("over,field", [
    ({"project": "X"}, "project"),
    ({"temporary_table_expiration_ms": 1000}, "temporary_table_expiration_ms"),
    ({"protect": "yes"}, "protect"),
    ({"delete_contents_on_destroy": "yes"}, "delete_contents_on_destroy"),
    ({"readers": {"gold": [SA]}}, r"readers\['gold'\]"),
    ({"writers": {"dwh": SA}}, r"writers\['dwh'\]"),
    ({"writers": {"dwh": ["not-an-email"]}}, r"writers\['dwh'\]\[0\]"),
    ({"grants": {"dwh": [DatasetGrant("roles/bigquery.admin", "group:a@b.c")]}}, r"grants\['dwh'\]\[0\].role"),
    ({"grants": {"dwh": [DatasetGrant("roles/owner", "group:a@b.c")]}}, r"grants\['dwh'\]\[0\].role"),
    ({"grants": {"dwh": [DatasetGrant("roles/bigquery.dataViewer", "a@b.c")]}}, r"grants\['dwh'\]\[0\].member"),
    ({"readers": {"dwh": [SA, SA]}}, r"grants\['dwh'\]"),
])
def test_validation_names_the_field(over, field):
    with pytest.raises(ComponentArgsError, match=rf"^Warehouse: {field}: "):
        Warehouse("wh", WarehouseArgs(**{"env": "prod", "project": PROJECT, **over}))
