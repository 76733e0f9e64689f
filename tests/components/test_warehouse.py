"""Warehouse under Pulumi mocks: one dataset per layer, expirations, protection, dataset-level IAM."""

from __future__ import annotations

import pulumi
import pytest

from components.common import ComponentArgsError
from components.testing import run_program
from components.warehouse import DatasetGrant, Warehouse, WarehouseArgs
from pipeline_sql.naming import DATASETS, TEMPORARY_LAYERS, Naming

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
    assert all(d["deleteContentsOnDestroy"] is False for d in datasets.values())
    wh = prod.get("wh")
    assert all(r.parent == wh.urn for r in prod.resources if r is not wh)


def test_temporary_layers_expire_and_permanent_ones_do_not(prod):
    for layer in DATASETS:
        ds = prod.get(f"prod-wh-{layer}").inputs
        if layer in TEMPORARY_LAYERS:
            assert ds["defaultTableExpirationMs"] == 2 * 24 * 3600 * 1000, layer
        else:
            assert "defaultTableExpirationMs" not in ds, layer


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
