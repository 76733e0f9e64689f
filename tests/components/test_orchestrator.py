"""Orchestrator under Pulumi mocks: Composer sizing rules, identity, env vars, DAG upload."""

from __future__ import annotations

import pytest

from components.common import ComponentArgsError
import json

from components.dag import CONFIGS, STEPS, chains
from components.testing import FAKE_PROJECT_NUMBER, Mocks, run_program
from pipeline_sql.naming import DATASETS

PROJECT = "acme-data-prod"



def _args(**over):
    from components.orchestrator import OrchestratedTable, OrchestratorArgs

    tables = over.pop(
        "tables",
        [
            OrchestratedTable(t, {step: f"projects/1/locations/eu/transferConfigs/{t}-{step}" for step in CONFIGS}, sched)
            for t, sched in (("orders", "every 1 hours"), ("customers", "every 24 hours"))
        ],
    )
    base = dict(
        env="prod",
        project=PROJECT,
        region="europe-west1",
        network="projects/acme-data-prod/global/networks/prod-vpc",
        subnetwork="projects/acme-data-prod/regions/europe-west1/subnetworks/prod-subnet",
        location="EU",
        datasets={d: f"prod_{d}" for d in DATASETS},
        tables=tables,
    )
    base.update(over)
    return OrchestratorArgs(**base)


def run(**over):
    from components.orchestrator import Orchestrator

    args = _args(**over)
    return run_program(lambda: Orchestrator("orchestrator", args), config={"gcp:project": PROJECT}, mocks=Mocks(project=PROJECT))


def test_composer_3_environment_with_workloads_and_long_timeouts():
    rec = run(workloads={"worker": {"cpu": 1, "memory_gb": 4, "min_count": 1, "max_count": 3}})
    (env,) = rec.of_type("gcp:composer/environment:Environment")
    cfg = env.inputs["config"]
    assert env.inputs["name"] == "prod-composer" and env.inputs["region"] == "europe-west1"
    assert cfg["softwareConfig"]["imageVersion"] == "composer-3-airflow-2.10.5"
    assert cfg["workloadsConfig"] == {
        "worker": {"cpu": 1, "memoryGb": 4, "minCount": 1, "maxCount": 3},
        "triggerer": {"cpu": 0.5, "memoryGb": 1, "count": 1},  # added: the DAG tasks are deferrable
    }
    assert "environmentSize" not in cfg
    assert cfg["enablePrivateEnvironment"] is True
    assert cfg["nodeConfig"]["serviceAccount"] == f"prod-composer@{PROJECT}.iam.gserviceaccount.com"
    assert cfg["nodeConfig"]["subnetwork"].endswith("/subnetworks/prod-subnet")
    assert env.inputs["labels"] == {"env": "prod", "component": "orchestrator", "managed-by": "pulumi"}
    assert env.parent_type == "flexyboots:orchestrator:Orchestrator"


def test_custom_timeouts_suit_composers_long_create():
    from components.orchestrator import TIMEOUTS

    assert TIMEOUTS.create == "90m" and TIMEOUTS.update == "90m"


def test_env_variables_hand_datasets_and_transfer_ids_to_dags():
    rec = run()
    (env,) = rec.of_type("gcp:composer/environment:Environment")
    variables = env.inputs["config"]["softwareConfig"]["envVariables"]
    assert variables["FLEXYBOOTS_DATASET_DWH"] == "prod_dwh"
    assert variables["FLEXYBOOTS_DATASET_QUALITY"] == "prod_quality"
    assert variables["FLEXYBOOTS_LOCATION"] == "EU" and variables["FLEXYBOOTS_PROJECT"] == PROJECT
    # the full refresh's config too: FLEXYBOOTS_TRANSFER_<TABLE> overrides every config a DAG starts
    assert variables["FLEXYBOOTS_TRANSFER_ORDERS"] == ",".join(f"{step}=orders-{step}" for step in CONFIGS)
    assert variables["FLEXYBOOTS_TRANSFER_ORDERS"].endswith(",refresh=orders-refresh")
    assert all(k == k.upper() and not k.startswith("AIRFLOW") for k in variables)
    rec2 = run(transfer_ids_in_env=False)
    (env2,) = rec2.of_type("gcp:composer/environment:Environment")
    assert not any(k.startswith("FLEXYBOOTS_TRANSFER_") for k in env2.inputs["config"]["softwareConfig"]["envVariables"])


def test_dag_files_are_uploaded_to_the_environments_dag_folder():
    rec = run()
    objs = {o.inputs["name"]: o for o in rec.of_type("gcp:storage/bucketObject:BucketObject")}
    assert sorted(objs) == ["dags/flexyboots_prod_00.json", "dags/flexyboots_prod_00.py"]
    assert {o.inputs["bucket"] for o in objs.values()} == {"europe-west1-prod-composer-bucket"}
    code, manifest = objs["dags/flexyboots_prod_00.py"], objs["dags/flexyboots_prod_00.json"]
    compile(code.inputs["content"], "dag.py", "exec")
    assert code.inputs["contentType"] == "text/x-python" and manifest.inputs["contentType"] == "application/json"
    assert chains({"m.json": manifest.inputs["content"]}) == {"customers": list(STEPS), "orders": list(STEPS)}
    m = json.loads(manifest.inputs["content"])
    assert m["settings"]["start_date"] == "2025-01-01T02:07:00+00:00"
    orders = next(t for t in m["tables"] if t["table"] == "orders")
    assert orders["schedule"] == "7 * * * *" and ["archive", "orders-archive"] in orders["steps"]
    # the manifest names the table's full-refresh config (started by a run with full_refresh=true)
    assert orders["full_refresh"]["config_id"] == "orders-refresh" and m["format"] == 2
    assert chains({"m.json": manifest.inputs["content"]}, full_refresh=True)["orders"] == ["staging", "archive", "refresh", "checks"]


def test_many_tables_are_sharded_into_several_files():
    from components.orchestrator import OrchestratedTable

    tables = [OrchestratedTable(f"t{i:03d}", {s: f"t{i:03d}-{s}" for s in CONFIGS}) for i in range(150)]
    rec = run(tables=tables)
    names = sorted(o.inputs["name"] for o in rec.of_type("gcp:storage/bucketObject:BucketObject"))
    assert names == ["dags/flexyboots_prod_00.json", "dags/flexyboots_prod_00.py", "dags/flexyboots_prod_01.json", "dags/flexyboots_prod_01.py"]
    held = [t["table"] for o in rec.of_type("gcp:storage/bucketObject:BucketObject") if o.inputs["name"].endswith(".json") for t in json.loads(o.inputs["content"])["tables"]]
    assert sorted(held) == [t.table for t in tables]


def test_identity_is_least_privilege():
    rec = run()
    (sa,) = rec.of_type("gcp:serviceaccount/account:Account")
    assert sa.inputs["accountId"] == "prod-composer"
    roles = sorted(r.inputs["role"] for r in rec.of_type("gcp:projects/iAMMember:IAMMember"))
    # custom role's name under mocks; the agent's own role goes to the agent (below)
    assert roles == ["prod-transfer-runner", "roles/composer.serviceAgent", "roles/composer.worker"]
    (custom,) = rec.of_type("gcp:projects/iAMCustomRole:IAMCustomRole")
    assert custom.inputs["permissions"] == ["bigquery.transfers.get", "bigquery.transfers.update"]
    (ext,) = rec.of_type("gcp:serviceaccount/iAMMember:IAMMember")
    assert ext.inputs["role"] == "roles/composer.ServiceAgentV2Ext"
    assert ext.inputs["member"] == f"serviceAccount:service-{FAKE_PROJECT_NUMBER}@cloudcomposer-accounts.iam.gserviceaccount.com"
    (env,) = rec.of_type("gcp:composer/environment:Environment")
    assert {r.urn for r in rec.resources if r.type.endswith("IAMMember")} <= set(env.dependencies)


def test_composer_agent_is_created_after_the_api_and_before_its_grants():
    """API -> ServiceIdentity -> grants (member from the identity) -> environment -> DAG."""
    import pulumi_gcp as gcp

    from components.orchestrator import Orchestrator

    def program():
        api = gcp.projects.Service("composer-api", service="composer.googleapis.com", project=PROJECT)
        Orchestrator("orchestrator", _args(depends_on=[api]))

    rec = run_program(program, config={"gcp:project": PROJECT}, mocks=Mocks(project=PROJECT))
    (api,) = rec.of_type("gcp:projects/service:Service")
    (identity,) = rec.of_type("gcp:projects/serviceIdentity:ServiceIdentity")
    assert identity.inputs == {"project": PROJECT, "service": "composer.googleapis.com"}
    assert api.urn in identity.dependencies
    agent = f"serviceAccount:service-{FAKE_PROJECT_NUMBER}@cloudcomposer-accounts.iam.gserviceaccount.com"
    to_agent = [r for r in rec.resources if r.inputs.get("member") == agent]
    assert {r.inputs["role"] for r in to_agent} == {"roles/composer.ServiceAgentV2Ext", "roles/composer.serviceAgent"}
    (env,) = rec.of_type("gcp:composer/environment:Environment")
    dags = rec.of_type("gcp:storage/bucketObject:BucketObject")
    assert len(dags) == 2  # the DAG file and its manifest
    for dag in dags:
        for grant in to_agent:
            assert identity.urn in grant.dependencies
            assert grant.urn in rec.waits_for(env) and grant.urn in rec.waits_for(dag)
        assert {api.urn, identity.urn} <= rec.waits_for(env) & rec.waits_for(dag)


def test_protect_protects_the_environment():
    (env,) = run(protect=True).of_type("gcp:composer/environment:Environment")
    assert env.protect is True


@pytest.mark.parametrize(
    "over, field",
    [
        ({"environment_size": "ENVIRONMENT_SIZE_SMALL"}, "environment_size"),
        ({"image_version": "composer-1.20.12-airflow-2.4.3"}, "image_version"),
        ({"image_version": "airflow-2"}, "image_version"),
        ({"image_version": "composer-2.9.7-airflow-2.9.3", "environment_size": "HUGE"}, "environment_size"),
        ({"image_version": "composer-2.9.7-airflow-2.9.3", "workloads": {"dag_processor": {"cpu": 1}}}, "workloads.dag_processor"),
        ({"workloads": {"worker": {"cpus": 1}}}, "workloads.worker.cpus"),
        ({"workloads": {"gpu": {"cpu": 1}}}, "workloads.gpu"),
        ({"region": "EU"}, "region"),
        ({"workloads": {"triggerer": {"count": 0}}}, "workloads.triggerer.count"),
    ],
)
def test_bad_args_are_refused(over, field):
    with pytest.raises(ComponentArgsError) as e:
        _args(**over).validate()
    assert e.value.field == field


def test_a_table_without_its_full_refresh_config_is_refused():
    from components.orchestrator import OrchestratedTable

    table = OrchestratedTable("orders", {step: f"orders-{step}" for step in STEPS})  # no "refresh"
    with pytest.raises(ComponentArgsError, match="missing refresh") as e:
        _args(tables=[table]).validate()
    assert e.value.field == "tables[0].transfer_config_names"


def test_composer_2_may_use_environment_size():
    rec = run(image_version="composer-2.9.7-airflow-2.9.3", environment_size="ENVIRONMENT_SIZE_SMALL")
    (env,) = rec.of_type("gcp:composer/environment:Environment")
    assert env.inputs["config"]["environmentSize"] == "ENVIRONMENT_SIZE_SMALL"
    assert "enablePrivateEnvironment" not in env.inputs["config"]


def test_env_variable_rules():
    from components.dag import env_var_problem

    assert env_var_problem("FLEXYBOOTS_X") is None
    assert "reserved" in env_var_problem("GCS_BUCKET")
    assert "AIRFLOW" in env_var_problem("AIRFLOW__CORE__PARALLELISM")
    assert "upper-case" in env_var_problem("flexyboots_x")


def test_gcs_prefix_parsing():
    from components.orchestrator import parse_gcs_prefix

    assert parse_gcs_prefix("gs://europe-west1-prod-1234-bucket/dags") == ("europe-west1-prod-1234-bucket", "dags")
    assert parse_gcs_prefix("gs://b-1/") == ("b-1", "")
    with pytest.raises(ValueError, match="dag_gcs_prefix"):
        parse_gcs_prefix(None)
