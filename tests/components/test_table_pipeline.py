"""TablePipeline + PipelineRuntime under Pulumi mocks: tables, transfer configs, identities."""

from __future__ import annotations

import json
import re

import pulumi
import pytest

from components.common import ComponentArgsError
from components.testing import FAKE_PROJECT_NUMBER, run_program
from components.table_pipeline import REFRESH, STEPS
from pipeline_sql.naming import DATASETS, LAYERS, Naming
from pipeline_sql.render import render_table
from pipeline_sql.spec import parse_spec

PROJECT = "acme-data-dev"
NAMING = Naming(project=PROJECT, env="dev", location="EU")
AGENT = f"serviceAccount:service-{FAKE_PROJECT_NUMBER}@gcp-sa-bigquerydatatransfer.iam.gserviceaccount.com"

CUSTOMERS = {
    "table": "customers",
    "source": {"format": "csv", "path": "customers/"},
    "key": ["customer_id"],
    "version_by": "updated_at",
    "columns": [
        {"source": "id", "name": "customer_id", "type": "INT64"},
        {"source": "email", "name": "email", "type": "STRING"},
        {"source": "updated", "name": "updated_at", "type": "TIMESTAMP"},
    ],
    "dwh": {"partition_by": {"column": "updated_at", "granularity": "DAY"}, "cluster_by": ["customer_id"]},
    "schedule": "every 24 hours",
}


def spec(**over):
    return parse_spec({**CUSTOMERS, **over})


LANDING = "dev-landing"
S3_BUCKET = "dev-s3-landing"


def program(pipeline_specs, **kw):
    """Warehouse, DataLake, a runtime and one TablePipeline per spec, as the platform composes
    them. ``kw``: ``s3`` (an S3 landing bucket), ``pipeline`` (TablePipelineArgs overrides),
    ``runtime`` (PipelineRuntimeArgs overrides), ``lake``/``warehouse`` (their args' overrides),
    ``api`` (a Data Transfer API Service the runtime waits for)."""
    from components.datalake import DataLake, DataLakeArgs, S3LandingArgs
    from components.table_pipeline import PipelineRuntime, PipelineRuntimeArgs, TablePipeline, TablePipelineArgs
    from components.warehouse import Warehouse, WarehouseArgs

    s3 = kw.pop("s3", None)

    def run():
        wh = Warehouse("warehouse", WarehouseArgs(**{"env": "dev", "project": PROJECT, "location": "EU", **kw.get("warehouse", {})}))
        lake_args = dict(env="dev", project=PROJECT, location="EU", bucket_name=LANDING)
        lake_args.update(kw.get("lake", {}))
        if s3:
            lake_args["s3"] = S3LandingArgs(bucket_name=S3_BUCKET)
        lake = DataLake("lake", DataLakeArgs(**lake_args))
        depends = []
        if kw.get("api"):
            import pulumi_gcp as gcp

            depends = [gcp.projects.Service("dts-api", service="bigquerydatatransfer.googleapis.com", project=PROJECT)]
        rt_args = dict(
            env="dev", project=PROJECT, datasets=wh.dataset_ids, landing_bucket=lake.bucket_name,
            s3_transfers=bool(s3), depends_on=depends,
        )
        rt_args.update(kw.get("runtime", {}))
        rt = PipelineRuntime("runtime", PipelineRuntimeArgs(**rt_args))
        for s in pipeline_specs:
            args = dict(spec=s, warehouse=wh, runtime=rt, datalake=lake)
            args.update(kw.get("pipeline", {}))
            TablePipeline(s.table, TablePipelineArgs(**args))

    return run_program(run, config={"gcp:project": PROJECT})


def configs(rec):
    return {r.name: r for r in rec.of_type("gcp:bigquery/dataTransferConfig:DataTransferConfig")}


def test_scheduled_queries_take_only_the_rendered_sql():
    rec = program([spec()])
    cfgs = configs(rec)
    assert sorted(cfgs) == sorted(f"dev-customers-{step}" for step in STEPS + (REFRESH,))
    r = render_table(spec(), NAMING, landing_uri=f"gs://{LANDING}")
    expected_sql = {**r.layers, "checks": r.checks}  # the checks: the very script the runner runs
    for layer in STEPS:
        c = cfgs[f"dev-customers-{layer}"]
        assert c.inputs["dataSourceId"] == "scheduled_query"
        assert set(c.inputs["params"]) == {"query"}, "DDL/DML scripts take only `query`"
        assert c.inputs["params"]["query"] == expected_sql[layer]
        assert "destinationDatasetId" not in c.inputs
        assert c.inputs["location"] == "EU"
        assert c.inputs["serviceAccountName"] == f"dev-dts-{layer}@{PROJECT}.iam.gserviceaccount.com"
        assert c.inputs["notificationPubsubTopic"] == f"projects/{PROJECT}/topics/dev-transfer-runs"
        assert "emailPreferences" not in c.inputs
        assert c.parent_type == "flexyboots:table_pipeline:TablePipeline"
    assert "gs://dev-landing/customers/*" in cfgs["dev-customers-staging"].inputs["params"]["query"]


def test_scheduled_mode_offsets_each_step_after_the_one_before():
    rec = program([spec()], pipeline={"mode": "scheduled", "start_time": "2025-03-01T02:05:00Z", "layer_offset_minutes": 15})
    cfgs = configs(rec)
    starts = [cfgs[f"dev-customers-{step}"].inputs["scheduleOptions"]["startTime"] for step in STEPS]
    assert starts == [f"2025-03-01T{h}Z" for h in ("02:05:00", "02:20:00", "02:35:00", "02:50:00", "03:05:00", "03:20:00")]
    assert {cfgs[f"dev-customers-{step}"].inputs["schedule"] for step in STEPS} == {"every 24 hours"}
    assert all("disableAutoScheduling" not in cfgs[f"dev-customers-{step}"].inputs["scheduleOptions"] for step in STEPS)
    # the full refresh never runs on a schedule, whatever the mode
    assert cfgs["dev-customers-refresh"].inputs["scheduleOptions"] == {"disableAutoScheduling": True}
    assert "schedule" not in cfgs["dev-customers-refresh"].inputs


def test_the_full_refresh_is_a_manual_only_scheduled_query_of_the_runners_sql():
    rec = program([spec()])
    c = configs(rec)["dev-customers-refresh"]
    r = render_table(spec(), NAMING, landing_uri=f"gs://{LANDING}")
    assert c.inputs["dataSourceId"] == "scheduled_query"
    assert c.inputs["params"] == {"query": r.full_refresh}  # the text `run --full-refresh` runs
    assert c.inputs["scheduleOptions"] == {"disableAutoScheduling": True}
    assert c.inputs["serviceAccountName"] == f"dev-dts-refresh@{PROJECT}.iam.gserviceaccount.com"
    assert "MERGE `acme-data-dev.dev_dwh.customers`" in c.inputs["params"]["query"]


def test_time_of_day_schedules_shift_the_time_itself():
    rec = program([spec(schedule="every day 23:30")], pipeline={"layer_offset_minutes": 20})
    cfgs = configs(rec)
    assert [cfgs[f"dev-customers-{step}"].inputs["schedule"] for step in STEPS] == [
        "every day 23:30", "every day 23:50", "every day 00:10", "every day 00:30", "every day 00:50", "every day 01:10"
    ]


@pytest.mark.parametrize(
    "schedule, start, offset, message",
    [
        ("every 1 hours", "2025-01-01T02:07:00Z", 15, "6 steps 15 minutes apart span 75 minutes, which does not fit inside 'every 1 hours'"),
        ("every 24 hours", "2025-01-01T02:00:00Z", 10, "step 1 of 'every 24 hours' would run on the hour"),
        ("every 24 hours", "2025-01-01T02:10:00Z", 10, "step 6 of 'every 24 hours' would run on the hour (first at 2025-01-01T03:00:00Z)"),
        ("every 90 minutes", "2025-01-01T02:30:00Z", 5, "step 1 of 'every 90 minutes' would run on the hour"),
        ("every day 04:00", "2025-01-01T02:07:00Z", 10, "expected a time off the hour, e.g. 04:07"),
    ],
)
def test_schedules_that_overlap_or_start_on_the_hour_are_refused(schedule, start, offset, message):
    with pytest.raises(ComponentArgsError) as e:
        program([spec(schedule=schedule)], pipeline={"start_time": start, "layer_offset_minutes": offset})
    assert e.value.field == "start_time/layer_offset_minutes" and message in str(e.value)


def test_orchestrated_mode_disables_auto_scheduling_and_failure_email_is_optional():
    rec = program([spec()], pipeline={"mode": "orchestrated", "failure_email": True})
    for c in configs(rec).values():
        assert c.inputs["scheduleOptions"] == {"disableAutoScheduling": True}
        assert "schedule" not in c.inputs
        assert c.inputs["emailPreferences"] == {"enableFailureEmail": True}


def test_managed_tables_schema_partitioning_clustering():
    rec = program([spec()])
    tables = {r.name: r for r in rec.of_type("gcp:bigquery/table:Table")}
    # tables rebuilt by the layer SQL (staging, delta, transform) are left to the SQL
    assert sorted(tables) == [
        "dev_archive.customers",
        "dev_archive.customers__batches",
        "dev_archive.customers__specs",
        "dev_dwh.customers",
        "dev_quality.check_results",  # the runtime's, shared by every table's checks
        "dev_quality.customers__rejects",
    ]
    results = tables["dev_quality.check_results"]
    assert results.parent_type == "flexyboots:table_pipeline:PipelineRuntime"
    assert results.inputs["timePartitioning"] == {"type": "DAY", "field": "checked_at"}
    assert results.inputs["clusterings"] == ["table_name", "check_name"]
    fields = {f["name"]: (f["type"], f["mode"]) for f in json.loads(results.inputs["schema"])}
    assert fields["sample_keys"] == ("STRING", "REPEATED") and fields["passed"] == ("BOOL", "REQUIRED")
    assert list(fields)[:3] == ["run_id", "table_name", "check_name"]
    dwh = tables["dev_dwh.customers"].inputs
    assert dwh["datasetId"] == "dev_dwh" and dwh["tableId"] == "customers"
    assert dwh["timePartitioning"] == {"type": "DAY", "field": "updated_at"}
    assert dwh["clusterings"] == ["customer_id"]
    fields = json.loads(dwh["schema"])
    assert {"name": "customer_id", "type": "INT64", "mode": "NULLABLE"} in fields
    archive = tables["dev_archive.customers"].inputs
    assert archive["timePartitioning"] == {"type": "DAY", "field": "_ingested_at"}
    assert archive["clusterings"] == ["customer_id"]
    assert all(t.inputs["deletionProtection"] is False and not t.protect for t in tables.values())
    assert "_through" in {f["name"] for f in fields}
    assert tables["dev_dwh.customers"].inputs["labels"]["table"] == "customers"
    # each layer's config waits for the tables its SQL touches and for the grants it runs with
    cfgs = configs(rec)
    assert tables["dev_dwh.customers"].urn in cfgs["dev-customers-dwh"].dependencies
    # the rejects view is read by people, not by a layer: no layer's config waits for it
    assert not any(tables["dev_quality.customers__rejects"].urn in c.dependencies for c in cfgs.values())
    assert tables["dev_archive.customers"].urn in cfgs["dev-customers-delta"].dependencies
    assert not any(t.urn in cfgs["dev-customers-staging"].dependencies for t in tables.values())
    token = {r.name: r.urn for r in rec.of_type("gcp:serviceaccount/iAMMember:IAMMember")}
    assert token["dev-dts-staging-agent-token-creator"] in cfgs["dev-customers-staging"].dependencies
    assert token["dev-dts-dwh-agent-token-creator"] not in cfgs["dev-customers-staging"].dependencies


def test_spec_descriptions_reach_the_tables_and_columns():
    described = spec(
        description="Customers of the web shop, one row per customer account.",
        columns=[
            {"source": "id", "name": "customer_id", "type": "INT64", "description": "CRM account number"},
            {"source": "email", "name": "email", "type": "STRING"},
            {"source": "updated", "name": "updated_at", "type": "TIMESTAMP", "description": "last change in the CRM"},
        ],
        transform=[{"name": "email_domain", "type": "STRING", "expr": "LOWER(SPLIT(email, '@')[SAFE_OFFSET(1)])",
                    "description": "the part after the @"}],
    )
    tables = {r.name: r for r in program([described]).of_type("gcp:bigquery/table:Table")}
    dwh = tables["dev_dwh.customers"].inputs
    assert dwh["description"].startswith("Customers of the web shop, one row per customer account.\n\ncustomers: ")
    fields = {f["name"]: f for f in json.loads(dwh["schema"])}
    assert fields["customer_id"]["description"] == "CRM account number"
    assert fields["updated_at"]["description"] == "last change in the CRM"
    assert fields["email_domain"]["description"] == "the part after the @"
    assert "description" not in fields["email"]  # none given: none sent
    assert fields["_row_hash"]["description"].startswith("MD5")  # the pipeline's own columns explain themselves
    archive = {f["name"]: f for f in json.loads(tables["dev_archive.customers"].inputs["schema"])}
    assert archive["customer_id"]["description"] == "CRM account number"
    assert tables["dev_quality.customers__rejects"].inputs["description"].startswith("Customers of the web shop")


def test_rejects_is_a_view_over_the_archive():
    rec = program([spec()], pipeline={"protect": True})
    tables = {r.name: r for r in rec.of_type("gcp:bigquery/table:Table")}
    view = tables["dev_quality.customers__rejects"]
    assert view.inputs["view"] == {"query": render_table(spec(), NAMING).rejects_view, "useLegacySql": False}
    assert f"`{PROJECT}.dev_archive.customers`" in view.inputs["view"]["query"]
    # derived: never protected; a view has no schema, partitioning, clustering or expiration
    assert view.inputs["deletionProtection"] is False and not view.protect
    assert not {"schema", "timePartitioning", "clusterings", "expirationTime"} & set(view.inputs)
    assert view.inputs["datasetId"] == "dev_quality" and view.inputs["tableId"] == "customers__rejects"
    assert tables["dev_archive.customers"].urn in view.dependencies
    assert tables["dev_archive.customers__batches"].urn not in view.dependencies


def test_protected_stack_protects_archive_and_dwh_tables():
    rec = program([spec()], pipeline={"protect": True})
    tables = {r.name: r for r in rec.of_type("gcp:bigquery/table:Table")}
    for name in ("dev_archive.customers", "dev_archive.customers__batches", "dev_archive.customers__specs", "dev_dwh.customers"):
        assert tables[name].inputs["deletionProtection"] is True and tables[name].protect is True


def test_runtime_identities_are_least_privilege():
    rec = program([spec()])
    sas = {r.inputs["accountId"] for r in rec.of_type("gcp:serviceaccount/account:Account")}
    assert sas == {f"dev-dts-{step}" for step in STEPS + (REFRESH,)}
    project_roles = {(r.inputs["role"], r.inputs["member"]) for r in rec.of_type("gcp:projects/iAMMember:IAMMember")}
    assert {role for role, _ in project_roles} == {"roles/bigquery.jobUser", "roles/bigquerydatatransfer.serviceAgent"}
    # the service agent role only to the agent the program created (docs: an agent created on
    # request gets no role automatically); never removed on destroy (others may rely on it)
    (agent_role,) = [r for r in rec.of_type("gcp:projects/iAMMember:IAMMember") if r.inputs["role"] == "roles/bigquerydatatransfer.serviceAgent"]
    assert agent_role.inputs["member"] == AGENT
    ds_roles = {
        (r.inputs["member"].split(":")[1].split("@")[0], r.inputs["datasetId"], r.inputs["role"])
        for r in rec.of_type("gcp:bigquery/datasetIamMember:DatasetIamMember")
    }
    assert ds_roles == {
        ("dev-dts-staging", "dev_staging", "roles/bigquery.dataEditor"),
        ("dev-dts-archive", "dev_staging", "roles/bigquery.dataViewer"),
        ("dev-dts-archive", "dev_archive", "roles/bigquery.dataEditor"),
        ("dev-dts-delta", "dev_archive", "roles/bigquery.dataViewer"),
        ("dev-dts-delta", "dev_dwh", "roles/bigquery.dataViewer"),
        ("dev-dts-delta", "dev_delta", "roles/bigquery.dataEditor"),
        ("dev-dts-transform", "dev_delta", "roles/bigquery.dataViewer"),
        ("dev-dts-transform", "dev_transform", "roles/bigquery.dataEditor"),
        ("dev-dts-dwh", "dev_transform", "roles/bigquery.dataViewer"),
        ("dev-dts-dwh", "dev_dwh", "roles/bigquery.dataEditor"),
        ("dev-dts-checks", "dev_dwh", "roles/bigquery.dataViewer"),
        ("dev-dts-checks", "dev_quality", "roles/bigquery.dataEditor"),
        # the manual-only full refresh: reads the archive, rebuilds delta, transform and dwh
        ("dev-dts-refresh", "dev_archive", "roles/bigquery.dataViewer"),
        ("dev-dts-refresh", "dev_delta", "roles/bigquery.dataEditor"),
        ("dev-dts-refresh", "dev_transform", "roles/bigquery.dataEditor"),
        ("dev-dts-refresh", "dev_dwh", "roles/bigquery.dataEditor"),
    }
    token = rec.of_type("gcp:serviceaccount/iAMMember:IAMMember")
    assert len(token) == len(STEPS) + 1
    assert {(t.inputs["role"], t.inputs["member"]) for t in token} == {("roles/iam.serviceAccountTokenCreator", AGENT)}
    assert {t.inputs["serviceAccountId"] for t in token} == {
        f"projects/{PROJECT}/serviceAccounts/dev-dts-{step}@{PROJECT}.iam.gserviceaccount.com" for step in STEPS + (REFRESH,)
    }
    (pub,) = rec.of_type("gcp:pubsub/topicIAMMember:TopicIAMMember")
    assert pub.inputs["role"] == "roles/pubsub.publisher" and pub.inputs["member"] == AGENT
    assert pub.inputs["topic"] == "dev-transfer-runs"
    (landing,) = rec.of_type("gcp:storage/bucketIAMMember:BucketIAMMember")
    assert landing.inputs == {"bucket": LANDING, "role": "roles/storage.objectViewer", "member": f"serviceAccount:dev-dts-staging@{PROJECT}.iam.gserviceaccount.com"}
    assert not rec.of_type("gcp:projects/iAMCustomRole:IAMCustomRole"), "no S3 table: no dataset-update role"


def test_the_transfer_agent_is_created_before_anything_is_granted_to_it():
    """API -> ServiceIdentity -> grants (member from the identity) -> transfer configs."""
    rec = program([spec()], api=True)
    deps = rec.waits_for
    (api,) = rec.of_type("gcp:projects/service:Service")
    (identity,) = rec.of_type("gcp:projects/serviceIdentity:ServiceIdentity")
    assert identity.inputs == {"project": PROJECT, "service": "bigquerydatatransfer.googleapis.com"}
    assert api.urn in identity.dependencies  # explicitly, not only through the component
    to_agent = [r for r in rec.resources if r.inputs.get("member") == AGENT]
    assert {r.type for r in to_agent} == {
        "gcp:serviceaccount/iAMMember:IAMMember", "gcp:pubsub/topicIAMMember:TopicIAMMember", "gcp:projects/iAMMember:IAMMember"
    }
    assert len(to_agent) == len(STEPS) + 3  # token creator per step account, publisher, agent role
    for grant in to_agent:
        assert identity.urn in grant.dependencies, f"{grant.name} takes its member from the identity"
        assert api.urn in deps(grant.urn)
    for cfg in configs(rec).values():
        assert identity.urn in deps(cfg.urn) and api.urn in deps(cfg.urn)
        assert {g.urn for g in to_agent if "token-creator" not in g.name} <= deps(cfg.urn)
    # the order check is not vacuous: a resource created before the identity does not wait for it
    (topic,) = rec.of_type("gcp:pubsub/topic:Topic")
    assert identity.urn not in deps(topic.urn)


_REF = re.compile(r"`" + re.escape(PROJECT) + r"\.([a-z_]+)\.[a-z0-9_]+`")
_WRITE = re.compile(r"(?:INSERT INTO|MERGE|CREATE OR REPLACE (?:EXTERNAL )?TABLE|LOAD DATA OVERWRITE)\s+`" + re.escape(PROJECT) + r"\.([a-z_]+)\.")


def test_layer_access_covers_exactly_what_the_rendered_sql_touches():
    """The grants are derived from a table, not the SQL: prove the table matches the SQL.
    Querying a view needs read on the view's dataset and on every dataset its query selects
    from, so a view a layer reads counts with the datasets behind it."""
    from components.table_pipeline import LAYER_ACCESS
    from pipeline_sql.schema import pipeline_tables

    views = {f"`{td.table_id}`": td.view_query for td in pipeline_tables(spec(), NAMING) if td.view_query}
    assert views, "the rejects view"
    r = render_table(spec(checks=[{"unique": ["email"]}, {"row_count": {"max_change": 1}}]), NAMING, landing_uri=f"gs://{LANDING}")
    rendered = {**r.layers, "checks": r.checks}
    for layer, sql in rendered.items():
        sql = re.sub(r"--[^\n]*", "", sql)  # comments name tables they do not touch
        sql += "".join("\n" + q for ref, q in views.items() if ref in sql)
        reads, writes = LAYER_ACCESS[layer]
        touched = {NAMING_DS[d] for d in _REF.findall(sql)}
        written = {NAMING_DS[d] for d in _WRITE.findall(sql)}
        assert written == set(writes), layer
        assert touched == set(reads) | set(writes), layer


NAMING_DS = {NAMING.dataset(d): d for d in DATASETS}


def test_s3_transfer_account_may_update_only_the_staging_dataset():
    s3_spec = spec(source={"format": "csv", "path": "crm/customers/", "location": "s3"})
    rec = program([s3_spec], s3=True)
    (role,) = rec.of_type("gcp:projects/iAMCustomRole:IAMCustomRole")
    assert role.inputs["permissions"] == ["bigquery.datasets.update"]
    assert role.inputs["roleId"] == "flexyboots_dev_s3_transfer_target"
    grant = rec.get("dev-dts-staging-updates-staging")
    assert grant.inputs["datasetId"] == "dev_staging" and grant.inputs["role"] == role.name
    assert grant.inputs["member"] == f"serviceAccount:dev-dts-staging@{PROJECT}.iam.gserviceaccount.com"
    assert grant.urn in configs(rec)["dev-customers-staging"].dependencies
    # no project-wide dataset role and no dataOwner anywhere
    assert not [r for r in rec.resources if r.inputs.get("role") == "roles/bigquery.dataOwner"]


def test_s3_source_loads_staging_with_an_amazon_s3_transfer():
    s3_spec = spec(source={"format": "csv", "path": "crm/customers/", "location": "s3", "delimiter": ";"})
    rec = program([s3_spec], s3=True)
    staging = configs(rec)["dev-customers-staging"]
    assert staging.inputs["dataSourceId"] == "amazon_s3"
    assert staging.inputs["destinationDatasetId"] == "dev_staging"
    assert staging.inputs["params"] == {
        "destination_table_name_template": "customers",
        # a daily schedule: only the previous day's landing folder (dt=..., a runtime parameter)
        "data_path": f"s3://{S3_BUCKET}/crm/customers/" + 'dt={run_time-24h|"%Y-%m-%d"}/*',
        "access_key_id": staging.inputs["params"]["access_key_id"],
        "file_format": "CSV",
        "write_disposition": "WRITE_TRUNCATE",
        "field_delimiter": ";",
        "skip_leading_rows": "1",
        "allow_quoted_newlines": "true",
    }
    assert staging.inputs["params"]["access_key_id"].startswith("AKIA")
    assert "secret_access_key" not in staging.inputs["params"]
    secret = rec.of_type("aws:iam/accessKey:AccessKey")[0].outputs["secret"]
    assert staging.inputs["sensitiveParams"] == {"secretAccessKey": secret}
    assert staging.has_secret("sensitiveParams")
    assert secret not in json.dumps(staging.redacted_inputs())
    # the other layers stay scheduled queries; the transfer needs its staging tables to exist
    assert all(configs(rec)[f"dev-customers-{layer}"].inputs["dataSourceId"] == "scheduled_query" for layer in STEPS[1:])
    tables = {r.name: r for r in rec.of_type("gcp:bigquery/table:Table")}
    assert {"dev_staging.customers", "dev_staging.customers__batch"} <= set(tables)
    # the staging dataset has no default expiration, so the transfer's tables need none
    datasets = {r.inputs["datasetId"]: r for r in rec.of_type("gcp:bigquery/dataset:Dataset")}
    assert "defaultTableExpirationMs" not in datasets["dev_staging"].inputs
    assert not any("expirationTime" in t.inputs for t in tables.values())


def test_s3_parquet_has_no_csv_options():
    s3_spec = spec(source={"format": "parquet", "path": "crm/customers/", "location": "s3"})
    staging = configs(program([s3_spec], s3=True))["dev-customers-staging"]
    assert set(staging.inputs["params"]) == {"destination_table_name_template", "data_path", "access_key_id", "file_format", "write_disposition"}
    assert staging.inputs["params"]["file_format"] == "PARQUET"


def test_landing_comes_from_the_datalake_it_is_given():
    rec = program([spec()], lake={"bucket_name": "acme-raw-files"})
    assert "gs://acme-raw-files/customers/*" in configs(rec)["dev-customers-staging"].inputs["params"]["query"]


S3_SRC = {"format": "csv", "path": "c/", "location": "s3"}


@pytest.mark.parametrize(
    "over, kw, field, message",
    [
        ({}, {"pipeline": {"mode": "cron"}}, "mode", "one of scheduled, orchestrated"),
        ({"source": S3_SRC}, {}, "datalake.s3", "a DataLake with the S3 landing bucket"),
        ({"source": S3_SRC}, {"s3": True, "runtime": {"s3_transfers": False}}, "runtime.s3_transfers", "amazon_s3 transfer"),
        ({"source": S3_SRC, "schedule": "every 6 hours"}, {"s3": True}, "spec.schedule", "at least 24 hours"),
        ({}, {"pipeline": {"start_time": "soon"}}, "start_time/layer_offset_minutes", ""),
        # nothing defaults silently: no lake, or one that does not match the warehouse
        ({}, {"pipeline": {"datalake": None}}, "datalake", "the DataLake whose landing bucket staging loads from"),
        ({}, {"lake": {"env": "prod"}}, "datalake", "the DataLake of the warehouse's env 'dev'"),
        ({}, {"lake": {"location": "US"}}, "datalake.location", "datasets in 'EU'"),
        ({}, {"runtime": {"landing_bucket": "another-bucket"}}, "runtime.landing_bucket", "the datalake's bucket 'dev-landing'"),
        ({}, {"runtime": {"landing_bucket": None}}, "runtime.landing_bucket", "the datalake's bucket"),
        ({}, {"runtime": {"env": "prod"}}, "runtime", "the PipelineRuntime of the warehouse's env 'dev'"),
        ({}, {"runtime": {"project": "acme-data-prod"}}, "runtime", "project 'acme-data-dev'"),
        ({}, {"runtime": {"datasets": {d: f"other_{d}" for d in DATASETS}}}, "runtime.datasets['staging']", "the warehouse's dataset (dev_staging)"),
        ({}, {"pipeline": {"warehouse": NAMING}}, "warehouse", "the stack's Warehouse"),
        ({}, {"pipeline": {"protect": "yes"}}, "protect", "True, False or None"),
    ],
)
def test_bad_args_are_refused_naming_the_field(over, kw, field, message):
    with pytest.raises(ComponentArgsError) as e:
        program([spec(**over)], **kw)
    assert e.value.field == field and e.value.component == "TablePipeline", str(e.value)
    assert message in str(e.value)


def test_us_datasets_load_from_a_bucket_anywhere_and_protect_follows_the_warehouse():
    rec = program([spec()], warehouse={"location": "US", "protect": True}, lake={"location": "europe-west1"})
    tables = {r.name: r for r in rec.of_type("gcp:bigquery/table:Table")}
    assert tables["dev_dwh.customers"].protect and tables["dev_dwh.customers"].inputs["deletionProtection"] is True
    assert {c.inputs["location"] for c in configs(rec).values()} == {"US"}


def test_many_tables_share_one_runtime():
    specs = [spec(table=f"t{i}") for i in range(3)]
    rec = program(specs)
    counts = rec.count_by_type()
    assert counts["flexyboots:table_pipeline:TablePipeline"] == 3
    assert counts["gcp:bigquery/dataTransferConfig:DataTransferConfig"] == 21  # 6 steps + the manual refresh, per table
    assert counts["gcp:serviceaccount/account:Account"] == 7
    assert counts["gcp:pubsub/topic:Topic"] == 1
    assert counts["gcp:projects/serviceIdentity:ServiceIdentity"] == 1


# --------------------------------------------------------------------------- spec changes, deployed


def _table_items(pipeline_spec):
    """The pipeline's BigQuery tables as plan items ({type, name, parent, inputs, protect}) of a
    protected stack, for ``stacks.diff.diff_plans``."""
    rec = program([pipeline_spec], pipeline={"protect": True})
    return [
        {"type": "gcp:bigquery/table:Table", "name": r.name, "parent": "", "inputs": r.inputs, **({"protect": True} if r.protect else {})}
        for r in rec.of_type("gcp:bigquery/table:Table")
    ]


def _spec_changes_plan(**changes):
    from stacks.diff import diff_plans

    d = diff_plans(_table_items(spec()), _table_items(spec(**changes)))
    return {c.name: c for c in d.changes if c.name != "dev_quality.customers__rejects"}, d


def test_adding_a_nullable_column_updates_the_protected_tables_in_place():
    cols = CUSTOMERS["columns"] + [{"source": "phone", "name": "phone", "type": "STRING"}]
    changed, d = _spec_changes_plan(columns=cols)
    assert {n: c.action for n, c in changed.items()} == {"dev_archive.customers": "update", "dev_dwh.customers": "update"}
    assert not d.destructive
    assert "+phone STRING" in changed["dev_dwh.customers"].values["schema"][1]


def test_a_rename_keeps_the_archive_and_replaces_the_protected_dwh_with_the_migration_path():
    cols = [CUSTOMERS["columns"][0], {"source": "email", "name": "email_address", "type": "STRING", "renamed_from": "email"}, CUSTOMERS["columns"][2]]
    changed, d = _spec_changes_plan(columns=cols)
    assert set(changed) == {"dev_dwh.customers"}  # the archive keeps the column under its first name
    c = changed["dev_dwh.customers"]
    assert c.action == "replace" and "protect" in c.destructive
    assert "full-refresh" in c.advice and d.exit_code() == 3


def test_a_dropped_column_leaves_the_dwh_in_place_and_stays_in_the_archive():
    cols = CUSTOMERS["columns"][:1] + [{**CUSTOMERS["columns"][1], "dropped": True}] + CUSTOMERS["columns"][2:]
    changed, d = _spec_changes_plan(columns=cols)
    assert {n: c.action for n, c in changed.items()} == {"dev_dwh.customers": "update"}
    assert not d.destructive


def test_a_column_removed_from_the_spec_would_delete_archived_values_and_is_flagged():
    cols = CUSTOMERS["columns"][:1] + CUSTOMERS["columns"][2:]
    changed, d = _spec_changes_plan(columns=cols)
    a = changed["dev_archive.customers"]
    assert a.action == "update" and "drops column(s) email" in a.destructive and "dropped: true" in a.advice
    assert d.exit_code() == 3


@pytest.mark.parametrize(
    "change, reason",
    [
        ({"columns": CUSTOMERS["columns"][:1] + [{"source": "email", "name": "email", "type": "INT64"}] + CUSTOMERS["columns"][2:]}, "column email changes type STRING -> INT64"),
        ({"dwh": {"partition_by": {"column": "updated_at", "granularity": "MONTH"}, "cluster_by": ["customer_id"]}}, "partitioning granularity DAY -> MONTH"),
    ],
)
def test_type_and_partitioning_changes_are_replacements_of_the_protected_dwh(change, reason):
    changed, d = _spec_changes_plan(**change)
    assert set(changed) == {"dev_dwh.customers"}  # the archive holds raw strings: untouched
    c = changed["dev_dwh.customers"]
    assert c.action == "replace" and reason in [r.why for r in c.reasons]
    assert "protect" in c.destructive and d.exit_code() == 3
