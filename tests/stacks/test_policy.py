"""Stack-wide security policy, checked on the plans of dev, prod and an S3-enabled variant."""

from __future__ import annotations

import importlib
import inspect
import json
from pathlib import Path

import pytest

from components.service_agents import SERVICE_AGENTS

FORBIDDEN = {"roles/owner", "roles/editor", "roles/bigquery.admin"}
#: the only roles a service account may hold on the whole project
PROJECT_ROLES = {
    "roles/bigquery.jobUser",
    "roles/logging.logWriter",
    "roles/monitoring.metricWriter",
    "roles/composer.worker",
}
S3_TABLES = Path(__file__).resolve().parent / "tables_s3"
S3_ON = {"flexyboots:datalake": {"s3": {"enabled": True, "region": "eu-west-1"}}}


@pytest.fixture(params=["dev", "prod", "dev+s3"])
def plan(request, plans):
    if request.param == "dev+s3":
        return plans("dev", tables=S3_TABLES, **S3_ON)
    return plans(request.param)


def of(plan, type_):
    return [r for r in plan.resources if r.type == type_]


def test_no_vm_has_an_external_ip(plan):
    vms = of(plan, "gcp:compute/instance:Instance")
    assert vms or plan.stack == "dev" and not vms
    for vm in vms:
        for nic in vm.inputs.get("networkInterfaces", []):
            assert not nic.get("accessConfigs"), f"{vm.name} has an external IP"
            assert not nic.get("ipv6AccessConfigs"), f"{vm.name} has an external IPv6"


def test_no_firewall_rule_is_open_to_the_internet(plan):
    rules = of(plan, "gcp:compute/firewall:Firewall")
    assert rules
    for fw in rules:
        ranges = fw.inputs.get("sourceRanges") or []
        assert "0.0.0.0/0" not in ranges and "::/0" not in ranges, fw.name
        if fw.inputs.get("direction", "INGRESS") == "INGRESS":
            assert ranges or fw.inputs.get("sourceTags"), f"{fw.name}: an ingress rule without sources admits everyone"


def test_every_bucket_is_uniform_and_never_public(plan):
    buckets = of(plan, "gcp:storage/bucket:Bucket")
    assert buckets
    for b in buckets:
        assert b.inputs.get("uniformBucketLevelAccess") is True, b.name
        assert b.inputs.get("publicAccessPrevention") == "enforced", b.name
    for block in of(plan, "aws:s3/bucketPublicAccessBlock:BucketPublicAccessBlock"):
        assert all(block.inputs[k] is True for k in ("blockPublicAcls", "blockPublicPolicy", "ignorePublicAcls", "restrictPublicBuckets"))
    assert len(of(plan, "aws:s3/bucket:Bucket")) == len(of(plan, "aws:s3/bucketPublicAccessBlock:BucketPublicAccessBlock"))


def test_prod_protects_archive_and_dwh(plans):
    prod = plans("prod")
    datasets = {r.inputs["datasetId"]: r for r in of(prod, "gcp:bigquery/dataset:Dataset")}
    for layer in ("archive", "dwh"):
        ds = datasets[f"prod_{layer}"]
        assert ds.protect and ds.inputs.get("deletionPolicy") == "PREVENT", layer
    tables = [t for t in of(prod, "gcp:bigquery/table:Table") if t.inputs["datasetId"] in ("prod_archive", "prod_dwh")]
    assert len(tables) == 6  # 2 tables x (archive, archive__batches, dwh)
    assert all(t.inputs["deletionProtection"] is True and t.protect for t in tables)
    # the check results are history: protected; the rejects views are derived from the
    # archive: never protected, even in prod
    (results,) = [t for t in of(prod, "gcp:bigquery/table:Table") if t.inputs["tableId"] == "check_results"]
    assert results.inputs["deletionProtection"] is True and results.protect
    views = [t for t in of(prod, "gcp:bigquery/table:Table") if t.inputs["datasetId"] == "prod_quality" and "view" in t.inputs]
    assert len(views) == 2 and all("view" in v.inputs and v.inputs["deletionProtection"] is False and not v.protect for v in views)
    (env,) = of(prod, "gcp:composer/environment:Environment")
    assert env.protect
    # and dev protects nothing, so `pulumi destroy` works there
    dev = plans("dev")
    assert not any(r.protect for r in dev.resources)
    assert all(t.inputs["deletionProtection"] is False for t in of(dev, "gcp:bigquery/table:Table"))


def _iam(plan):
    for r in plan.resources:
        if "role" in r.inputs and ("member" in r.inputs or "members" in r.inputs):
            yield r


def test_no_identity_holds_owner_editor_or_bigquery_admin(plan):
    grants = list(_iam(plan))
    assert grants
    for g in grants:
        assert g.inputs["role"] not in FORBIDDEN, f"{g.name} grants {g.inputs['role']}"
    custom_roles = {r.name for r in of(plan, "gcp:projects/iAMCustomRole:IAMCustomRole")}
    agents = {r.outputs["member"]: SERVICE_AGENTS[r.inputs["service"]].role for r in of(plan, "gcp:projects/serviceIdentity:ServiceIdentity")}
    for g in of(plan, "gcp:projects/iAMMember:IAMMember"):
        if g.inputs["member"] in agents:  # a Google-managed agent the program created: its own role only
            assert g.inputs["role"] == agents[g.inputs["member"]], f"{g.name}: {g.inputs['role']} to a service agent"
            continue
        assert g.inputs["role"] in PROJECT_ROLES | custom_roles, f"{g.name}: project-wide {g.inputs['role']}"
    for role in of(plan, "gcp:projects/iAMCustomRole:IAMCustomRole"):
        assert all(p.startswith("bigquery.transfers.") or p == "bigquery.datasets.update" for p in role.inputs["permissions"]), role.name
    assert not [r for r in plan.resources if r.type.endswith(("IAMPolicy:IAMPolicy", "IAMBinding:IAMBinding"))], (
        "authoritative IAM would remove grants made outside this stack"
    )


def _walk(value, path=""):
    if isinstance(value, dict):
        for k, v in value.items():
            yield from _walk(v, f"{path}.{k}" if path else k)
    elif isinstance(value, list):
        for i, v in enumerate(value):
            yield from _walk(v, f"{path}[{i}]")
    else:
        yield path, value


def test_secrets_are_pulumi_secrets(plan):
    from stacks.plan import render_json, render_text

    # every generated credential: the random password, Metabase's BigQuery key and, with S3,
    # the AWS secret key
    secrets = [r.outputs["result"] for r in of(plan, "random:index/randomPassword:RandomPassword")]
    secrets += [r.outputs["privateKey"] for r in of(plan, "gcp:serviceaccount/key:Key")]
    secrets += [r.outputs["secret"] for r in of(plan, "aws:iam/accessKey:AccessKey")]
    assert of(plan, "gcp:serviceaccount/key:Key"), "the shipped stacks give Metabase its BigQuery key"
    assert secrets
    for r in plan.resources:
        for path, value in _walk(r.inputs):
            if isinstance(value, str) and any(s in value for s in secrets):
                assert r.has_secret(path.split(".")[0].split("[")[0]), f"{r.name}.{path} holds a secret in plaintext"
    for version in of(plan, "gcp:secretmanager/secretVersion:SecretVersion"):
        assert version.has_secret("secretData")
    printed = render_json(plan) + render_text(plan)
    assert not any(s in printed for s in secrets)


def test_s3_transfer_key_is_secret(plans):
    plan = plans("dev", tables=S3_TABLES, **S3_ON)
    (staging,) = [r for r in of(plan, "gcp:bigquery/dataTransferConfig:DataTransferConfig") if r.inputs["dataSourceId"] == "amazon_s3"]
    assert staging.has_secret("sensitiveParams")
    assert "secret_access_key" not in staging.inputs["params"]
    assert staging.inputs["params"]["data_path"].startswith("s3://") and staging.inputs["params"]["data_path"].endswith("/crm/contacts/*")


def _accepts(type_token: str, arg: str) -> bool:
    pkg, mod_cls = type_token.split(":", 1)
    module, cls = mod_cls.split(":")
    py = {"gcp": "pulumi_gcp", "aws": "pulumi_aws", "random": "pulumi_random"}.get(pkg)
    if py is None:
        return False
    mod = importlib.import_module(f"{py}.{module.split('/')[0]}" if module.split("/")[0] != "index" else py)
    klass = getattr(mod, cls, None)
    if klass is None:
        return False
    return arg in inspect.signature(klass._internal_init).parameters


#: types whose resource labels are `user_labels` (their `labels` configure them)
USER_LABELS = ("gcp:monitoring/notificationChannel:NotificationChannel", "gcp:monitoring/alertPolicy:AlertPolicy")


def test_every_labelled_resource_has_env_component_managed_by(plan):
    checked = 0
    for r in plan.resources:
        if not r.custom or r.type.startswith("pulumi:"):
            continue
        if r.type in USER_LABELS:  # `labels` is the channel's configuration there
            lbl = r.inputs.get("userLabels") or {}
            assert {"env", "component", "managed-by"} <= set(lbl), f"{r.type} {r.name} userLabels: {lbl}"
            checked += 1
        elif _accepts(r.type, "labels"):
            lbl = r.inputs.get("labels") or {}
            assert {"env", "component", "managed-by"} <= set(lbl), f"{r.type} {r.name} labels: {lbl}"
            assert lbl["env"] == plan.stack.split("+")[0] and lbl["managed-by"] == "pulumi", r.name
            checked += 1
        elif _accepts(r.type, "tags") and r.type.startswith("aws:"):
            tags = r.inputs.get("tags") or {}
            assert {"env", "component", "managed-by"} <= set(tags), f"{r.type} {r.name} tags: {tags}"
            checked += 1
    assert checked >= 10


def test_transfer_configs_run_where_the_datasets_are(plan):
    locations = {r.inputs["location"] for r in of(plan, "gcp:bigquery/dataset:Dataset")}
    assert len(locations) == 1
    for c in of(plan, "gcp:bigquery/dataTransferConfig:DataTransferConfig"):
        assert c.inputs["location"] in locations, c.name
        if c.inputs["dataSourceId"] == "scheduled_query":
            assert set(c.inputs["params"]) == {"query"}, c.name


def test_labels_check_knows_which_types_take_labels():
    assert _accepts("gcp:bigquery/dataset:Dataset", "labels")
    assert not _accepts("gcp:bigquery/dataTransferConfig:DataTransferConfig", "labels")
    assert _accepts("aws:s3/bucket:Bucket", "tags")
