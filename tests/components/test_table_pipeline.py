"""TablePipeline + PipelineRuntime under Pulumi mocks: tables, transfer configs, identities."""

from __future__ import annotations

import json
import re

import pulumi
import pytest

from components.common import ComponentArgsError
from components.testing import FAKE_PROJECT_NUMBER, run_program
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


def program(pipeline_specs, **kw):
    """A runtime plus one TablePipeline per spec, as the platform composes them."""
    from components.table_pipeline import PipelineRuntime, PipelineRuntimeArgs, S3Source, TablePipeline, TablePipelineArgs

    s3 = kw.pop("s3", None)

    def run():
        datasets = {d: NAMING.dataset(d) for d in DATASETS}
        rt = PipelineRuntime("runtime", PipelineRuntimeArgs(env="dev", project=PROJECT, datasets=datasets, landing_bucket="dev-landing"))
        for s in pipeline_specs:
            TablePipeline(
                s.table,
                TablePipelineArgs(
                    spec=s,
                    naming=NAMING,
                    runtime=rt,
                    datasets=datasets,
                    landing_uri=kw.get("landing_uri", "gs://dev-landing"),
                    s3=S3Source(bucket="dev-s3-landing", access_key_id="AKIAMOCK", secret_access_key=pulumi.Output.secret("shh")) if s3 else None,
                    **kw.get("pipeline", {}),
                ),
            )

    return run_program(run, config={"gcp:project": PROJECT})


def configs(rec):
    return {r.name: r for r in rec.of_type("gcp:bigquery/dataTransferConfig:DataTransferConfig")}


def test_scheduled_queries_take_only_the_rendered_sql():
    rec = program([spec()])
    cfgs = configs(rec)
    assert sorted(cfgs) == sorted(f"dev-customers-{layer}" for layer in LAYERS)
    expected_sql = render_table(spec(), NAMING, landing_uri="gs://dev-landing").layers
    for layer in LAYERS:
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


def test_scheduled_mode_offsets_each_layer_after_the_one_before():
    rec = program([spec()], pipeline={"mode": "scheduled", "start_time": "2025-03-01T02:00:00Z", "layer_offset_minutes": 15})
    cfgs = configs(rec)
    starts = [cfgs[f"dev-customers-{layer}"].inputs["scheduleOptions"]["startTime"] for layer in LAYERS]
    assert starts == [f"2025-03-01T{h}Z" for h in ("02:00:00", "02:15:00", "02:30:00", "02:45:00", "03:00:00")]
    assert {cfgs[f"dev-customers-{layer}"].inputs["schedule"] for layer in LAYERS} == {"every 24 hours"}
    assert all("disableAutoScheduling" not in c.inputs["scheduleOptions"] for c in cfgs.values())


def test_time_of_day_schedules_shift_the_time_itself():
    rec = program([spec(schedule="every day 23:30")], pipeline={"layer_offset_minutes": 20})
    cfgs = configs(rec)
    assert [cfgs[f"dev-customers-{layer}"].inputs["schedule"] for layer in LAYERS] == [
        "every day 23:30", "every day 23:50", "every day 00:10", "every day 00:30", "every day 00:50"
    ]


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
        "dev_dwh.customers",
        "dev_quality.customers__rejects",
    ]
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
    for name in ("dev_archive.customers", "dev_archive.customers__batches", "dev_dwh.customers"):
        assert tables[name].inputs["deletionProtection"] is True and tables[name].protect is True


def test_runtime_identities_are_least_privilege():
    rec = program([spec()])
    sas = {r.inputs["accountId"] for r in rec.of_type("gcp:serviceaccount/account:Account")}
    assert sas == {f"dev-dts-{layer}" for layer in LAYERS}
    project_roles = {(r.inputs["role"], r.inputs["member"]) for r in rec.of_type("gcp:projects/iAMMember:IAMMember")}
    assert {role for role, _ in project_roles} == {"roles/bigquery.jobUser"}
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
    }
    token = rec.of_type("gcp:serviceaccount/iAMMember:IAMMember")
    assert len(token) == len(LAYERS)
    assert {(t.inputs["role"], t.inputs["member"]) for t in token} == {("roles/iam.serviceAccountTokenCreator", AGENT)}
    assert {t.inputs["serviceAccountId"] for t in token} == {
        f"projects/{PROJECT}/serviceAccounts/dev-dts-{layer}@{PROJECT}.iam.gserviceaccount.com" for layer in LAYERS
    }
    (pub,) = rec.of_type("gcp:pubsub/topicIAMMember:TopicIAMMember")
    assert pub.inputs["role"] == "roles/pubsub.publisher" and pub.inputs["member"] == AGENT
    assert pub.inputs["topic"] == "dev-transfer-runs"
    (landing,) = rec.of_type("gcp:storage/bucketIAMMember:BucketIAMMember")
    assert landing.inputs == {"bucket": "dev-landing", "role": "roles/storage.objectViewer", "member": f"serviceAccount:dev-dts-staging@{PROJECT}.iam.gserviceaccount.com"}


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
    rendered = render_table(spec(), NAMING, landing_uri="gs://dev-landing").layers
    for layer, sql in rendered.items():
        sql = re.sub(r"--[^\n]*", "", sql)  # comments name tables they do not touch
        sql += "".join("\n" + q for ref, q in views.items() if ref in sql)
        reads, writes = LAYER_ACCESS[layer]
        touched = {NAMING_DS[d] for d in _REF.findall(sql)}
        written = {NAMING_DS[d] for d in _WRITE.findall(sql)}
        assert written == set(writes), layer
        assert touched == set(reads) | set(writes), layer


NAMING_DS = {NAMING.dataset(d): d for d in DATASETS}


def test_s3_source_loads_staging_with_an_amazon_s3_transfer():
    s3_spec = spec(source={"format": "csv", "path": "crm/customers/", "location": "s3", "delimiter": ";"})
    rec = program([s3_spec], s3=True)
    staging = configs(rec)["dev-customers-staging"]
    assert staging.inputs["dataSourceId"] == "amazon_s3"
    assert staging.inputs["destinationDatasetId"] == "dev_staging"
    assert staging.inputs["params"] == {
        "destination_table_name_template": "customers",
        # a daily schedule: only the previous day's landing folder (dt=..., a runtime parameter)
        "data_path": 's3://dev-s3-landing/crm/customers/dt={run_time-24h|"%Y-%m-%d"}/*',
        "access_key_id": "AKIAMOCK",
        "file_format": "CSV",
        "write_disposition": "WRITE_TRUNCATE",
        "field_delimiter": ";",
        "skip_leading_rows": "1",
        "allow_quoted_newlines": "true",
    }
    assert "secret_access_key" not in staging.inputs["params"]
    assert staging.inputs["sensitiveParams"] == {"secretAccessKey": "shh"}
    assert staging.has_secret("sensitiveParams")
    assert "shh" not in json.dumps(staging.redacted_inputs())
    # the other layers stay scheduled queries; the transfer needs its staging tables to exist
    assert all(configs(rec)[f"dev-customers-{layer}"].inputs["dataSourceId"] == "scheduled_query" for layer in LAYERS[1:])
    tables = {r.name: r for r in rec.of_type("gcp:bigquery/table:Table")}
    assert {"dev_staging.customers", "dev_staging.customers__batch"} <= set(tables)
    # the staging dataset's default expiration must not delete the transfer's destination
    assert tables["dev_staging.customers"].inputs["expirationTime"] == 4_102_444_800_000
    assert "expirationTime" not in tables["dev_dwh.customers"].inputs


def test_s3_parquet_has_no_csv_options():
    s3_spec = spec(source={"format": "parquet", "path": "crm/customers/", "location": "s3"})
    staging = configs(program([s3_spec], s3=True))["dev-customers-staging"]
    assert set(staging.inputs["params"]) == {"destination_table_name_template", "data_path", "access_key_id", "file_format", "write_disposition"}
    assert staging.inputs["params"]["file_format"] == "PARQUET"


def test_landing_uri_may_be_an_output():
    rec = program([spec()], landing_uri=pulumi.Output.from_input("gs://from-output"))
    assert "gs://from-output/customers/*" in configs(rec)["dev-customers-staging"].inputs["params"]["query"]


@pytest.mark.parametrize(
    "over, kw, field",
    [
        ({}, {"pipeline": {"mode": "cron"}}, "mode"),
        ({"source": {"format": "csv", "path": "c/", "location": "s3"}}, {}, "s3"),
        ({"source": {"format": "csv", "path": "c/", "location": "s3"}, "schedule": "every 6 hours"}, {"s3": True}, "spec.schedule"),
        ({}, {"landing_uri": "s3://nope"}, "landing_uri"),
        ({}, {"pipeline": {"start_time": "soon"}}, "start_time/layer_offset_minutes"),
    ],
)
def test_bad_args_are_refused_naming_the_field(over, kw, field):
    with pytest.raises(ComponentArgsError) as e:
        program([spec(**over)], **kw)
    assert e.value.field == field and e.value.component == "TablePipeline"


def test_many_tables_share_one_runtime():
    specs = [spec(table=f"t{i}") for i in range(3)]
    rec = program(specs)
    counts = rec.count_by_type()
    assert counts["flexyboots:table_pipeline:TablePipeline"] == 3
    assert counts["gcp:bigquery/dataTransferConfig:DataTransferConfig"] == 15
    assert counts["gcp:serviceaccount/account:Account"] == 5
    assert counts["gcp:pubsub/topic:Topic"] == 1
