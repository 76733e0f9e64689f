"""The security rules, as the CrossGuard pack in policy/ runs them (pulumi_policy's own classes,
in the pack's own virtualenv, over gRPC as the engine drives it), fed from the mock plans.

Every policy: the real plans of dev, prod and an S3 variant are clean, and a plan changed to
break the rule is caught, naming the policy, the resource and what is wrong.
"""

from __future__ import annotations

import copy
import importlib
import inspect
import json
import subprocess
import sys
from pathlib import Path

import pytest

from stacks.policy import (
    PlanResource,
    PolicyError,
    read_config_file,
    resources_from_json,
    resources_from_recording,
    stack_config_file,
)

ROOT = Path(__file__).resolve().parents[2]
S3_TABLES = Path(__file__).resolve().parent / "tables_s3"
S3_ON = {"flexyboots:datalake": {"s3": {"enabled": True, "region": "eu-west-1"}}}
STACKS = ["dev", "prod", "dev+s3"]


def _plan(plans, name):
    return plans("dev", tables=S3_TABLES, **S3_ON) if name == "dev+s3" else plans(name)


def _config(name):
    return read_config_file(stack_config_file(name.split("+")[0]))


def run(pack, resources, stack="dev", config=None):
    return pack.run(resources, _config(stack) if config is None else config, stack=stack)


def resources(plans, name="dev"):
    return copy.deepcopy(resources_from_recording(_plan(plans, name).resources))


def one(res, type_, pred=lambda r: True):
    return next(r for r in res if r.type == type_ and pred(r))


def added(type_, name, inputs):
    """A resource the real plans lack, as the engine would show it."""
    return PlanResource(type=type_, name=name, urn=f"urn:pulumi:dev::flexyboots::{type_}::{name}", inputs=inputs)


def found(report, policy):
    return [f"{v.resource}: {v.message}" for v in report.by_policy(policy)]


# --------------------------------------------------------------------------- clean plans


@pytest.mark.parametrize("name", STACKS)
def test_the_stacks_pass_every_policy(plans, policy_pack, name):
    rep = run(policy_pack, resources(plans, name), stack=name.split("+")[0])
    assert rep.mandatory == [], [v.as_dict() for v in rep.mandatory]
    # advisory: Metabase's BigQuery driver needs a service-account key (kept in Secret Manager)
    assert {(v.policy, v.resource.split("::")[0]) for v in rep.advisory} == {("iam-service-account-keys", "gcp:serviceaccount/key:Key")}
    assert rep.resources > 50
    # the stack-level secret rule had values to check (outputs of the recording)
    assert "secrets-stay-in-secret-sinks" not in rep.not_applicable


def test_the_pack_declares_its_policies_and_levels(policy_pack):
    names = {p["name"]: p for p in policy_pack.policies}
    assert len(names) == 16
    assert names["iam-service-account-keys"]["level"] == "advisory"
    assert all(p["level"] == "mandatory" for n, p in names.items() if n != "iam-service-account-keys")
    assert names["s3-public-access-blocked"]["type"] == "stack" and names["vm-no-external-ip"]["type"] == "resource"


# --------------------------------------------------------------------------- one violation per policy


def test_vm_with_an_external_ip(plans, policy_pack):
    res = resources(plans, "prod")
    vm = one(res, "gcp:compute/instance:Instance")
    vm.inputs["networkInterfaces"][0]["accessConfigs"] = [{"networkTier": "PREMIUM"}]
    rep = run(policy_pack, res, "prod")
    assert found(rep, "vm-no-external-ip") == [
        f"gcp:compute/instance:Instance::{vm.name}: networkInterfaces[0] has an access config (an external IPv4 address); reach the VM through IAP instead"]
    assert rep.mandatory


def test_firewall_open_to_the_internet_or_without_sources(plans, policy_pack):
    res = resources(plans)
    fws = [r for r in res if r.type == "gcp:compute/firewall:Firewall"]
    fws[0].inputs["sourceRanges"] = ["35.235.240.0/20", "::/0"]
    del fws[1].inputs["sourceRanges"]
    hits = found(run(policy_pack, res), "firewall-no-open-ingress")
    assert any(fws[0].name in h and "ingress from ::/0" in h for h in hits)
    assert any(fws[1].name in h and "admits 0.0.0.0/0" in h for h in hits) and len(hits) == 2


def test_bucket_without_uniform_access_or_public_access_prevention(plans, policy_pack):
    res = resources(plans)
    b = one(res, "gcp:storage/bucket:Bucket")
    b.inputs["uniformBucketLevelAccess"] = False
    b.inputs["publicAccessPrevention"] = "inherited"
    assert sorted(found(run(policy_pack, res), "gcs-bucket-uniform-no-public")) == [
        f"gcp:storage/bucket:Bucket::{b.name}: publicAccessPrevention is 'inherited', expected 'enforced'",
        f"gcp:storage/bucket:Bucket::{b.name}: uniformBucketLevelAccess is not true: object ACLs could make objects public",
    ]


def test_s3_bucket_without_a_public_access_block(plans, policy_pack):
    res = resources(plans, "dev+s3")
    block = one(res, "aws:s3/bucketPublicAccessBlock:BucketPublicAccessBlock")
    block.outputs["restrictPublicBuckets"] = False  # a stack policy: the engine sends outputs
    assert found(run(policy_pack, res), "s3-public-access-blocked") == [
        f"aws:s3/bucketPublicAccessBlock:BucketPublicAccessBlock::{block.name}: {block.name}: restrictPublicBuckets not true"]
    res.remove(block)
    hits = found(run(policy_pack, res), "s3-public-access-blocked")
    assert len(hits) == 1 and "no aws:s3 BucketPublicAccessBlock blocks public access" in hits[0]


def test_primitive_and_admin_roles(plans, policy_pack):
    res = resources(plans)
    grants = [r for r in res if r.type == "gcp:bigquery/datasetIamMember:DatasetIamMember"]
    grants[0].inputs["role"] = "roles/owner"
    grants[1].inputs["role"] = "roles/bigquery.admin"
    hits = found(run(policy_pack, res), "iam-no-primitive-or-admin-roles")
    assert [h.split(": ", 1)[0] for h in hits] == sorted(f"gcp:bigquery/datasetIamMember:DatasetIamMember::{g.name}" for g in grants[:2])
    assert any("primitive role roles/owner" in h for h in hits) and any("administrator role roles/bigquery.admin" in h for h in hits)


def test_project_wide_role_outside_the_allow_list(plans, policy_pack):
    res = resources(plans)
    g = one(res, "gcp:projects/iAMMember:IAMMember")
    g.inputs["role"] = "roles/bigquery.dataEditor"
    hits = found(run(policy_pack, res), "iam-project-roles-allowlist")
    assert len(hits) == 1 and hits[0].startswith(f"gcp:projects/iAMMember:IAMMember::{g.name}: grants roles/bigquery.dataEditor on the whole project")
    # the allow-list is config
    cfg = {"iam-project-roles-allowlist": (None, {"allowedProjectRoles": ["roles/bigquery.dataEditor"]})}
    assert found(run(policy_pack, res, config=cfg), "iam-project-roles-allowlist") != []  # the others are no longer allowed
    allowed = policy_pack.defaults("iam-project-roles-allowlist")["allowedProjectRoles"] + ["roles/bigquery.dataEditor"]
    assert found(run(policy_pack, res, config={"iam-project-roles-allowlist": (None, {"allowedProjectRoles": allowed})}),
                 "iam-project-roles-allowlist") == []


def test_service_agents_hold_only_their_own_role_project_wide(plans, policy_pack):
    res = resources(plans, "prod")
    agent_grants = [r for r in res if r.type == "gcp:projects/iAMMember:IAMMember" and r.inputs["member"].startswith("serviceAccount:service-")]
    assert agent_grants and all(g.inputs["role"].lower().endswith(("serviceagent", "serviceagentv2ext")) for g in agent_grants)
    agent_grants[0].inputs["role"] = "roles/bigquery.dataEditor"
    hits = found(run(policy_pack, res, "prod"), "iam-project-roles-allowlist")
    assert len(hits) == 1 and hits[0].startswith(f"gcp:projects/iAMMember:IAMMember::{agent_grants[0].name}: grants roles/bigquery.dataEditor on the whole project")


def test_authoritative_iam(plans, policy_pack):
    res = resources(plans)
    res.append(added("gcp:projects/iAMBinding:IAMBinding", "jobs",
                     {"project": "p", "role": "roles/bigquery.jobUser", "members": ["serviceAccount:a@p.iam.gserviceaccount.com"]}))
    res.append(added("gcp:bigquery/datasetIamPolicy:DatasetIamPolicy", "ds", {"datasetId": "dev_dwh", "policyData": "{}"}))
    assert found(run(policy_pack, res), "iam-no-authoritative-bindings") == [
        "gcp:bigquery/datasetIamPolicy:DatasetIamPolicy::ds: DatasetIamPolicy is authoritative: it removes every grant made outside this stack; use the *IAMMember resource",
        "gcp:projects/iAMBinding:IAMBinding::jobs: IAMBinding is authoritative: it removes every grant made outside this stack; use the *IAMMember resource"]


def test_public_members(plans, policy_pack):
    res = resources(plans)
    g = one(res, "gcp:storage/bucketIAMMember:BucketIAMMember")
    g.inputs["member"] = "allUsers"
    hits = found(run(policy_pack, res), "iam-no-public-members")
    assert hits == [f"gcp:storage/bucketIAMMember:BucketIAMMember::{g.name}: grants {g.inputs['role']} to allUsers: the resource becomes public"]


def test_custom_role_that_can_escalate(plans, policy_pack):
    res = resources(plans, "prod")
    role = one(res, "gcp:projects/iAMCustomRole:IAMCustomRole")
    role.inputs["permissions"] = role.inputs["permissions"] + ["resourcemanager.projects.setIamPolicy"]
    assert found(run(policy_pack, res, "prod"), "iam-custom-role-no-escalation") == [
        f"gcp:projects/iAMCustomRole:IAMCustomRole::{role.name}: custom role lets its holders raise their own privileges: resourcemanager.projects.setIamPolicy"]


def test_service_account_key_is_advisory(plans, policy_pack):
    res = resources(plans)
    res.append(added("gcp:serviceaccount/key:Key", "metabase-key", {"serviceAccountId": "projects/p/serviceAccounts/m@p.iam.gserviceaccount.com"}))
    rep = run(policy_pack, res)
    assert [v.level for v in rep.by_policy("iam-service-account-keys")] == ["advisory", "advisory"]  # + Metabase's
    assert any(v.resource.endswith("::metabase-key") for v in rep.by_policy("iam-service-account-keys")) and not rep.mandatory


def test_missing_or_wrong_labels(plans, policy_pack):
    res = resources(plans)
    ds = one(res, "gcp:bigquery/dataset:Dataset")
    del ds.inputs["labels"]["component"]
    disk = one(res, "gcp:compute/disk:Disk")
    disk.inputs["labels"]["env"] = "prod"
    # a notification channel's resource labels are userLabels (its labels are its configuration)
    channel = one(res, "gcp:monitoring/notificationChannel:NotificationChannel")
    del channel.inputs["userLabels"]["managed-by"]
    hits = found(run(policy_pack, res), "labels-required")
    assert f"gcp:bigquery/dataset:Dataset::{ds.name}: labels missing component" in hits
    assert f"gcp:compute/disk:Disk::{disk.name}: labels env is 'prod', expected 'dev' (this stack's env)" in hits
    assert f"gcp:monitoring/notificationChannel:NotificationChannel::{channel.name}: userLabels missing managed-by" in hits and len(hits) == 3


def _accepts(type_token: str, arg: str) -> bool:
    pkg, mod_cls = type_token.split(":", 1)
    module, cls = mod_cls.split(":")
    py = {"gcp": "pulumi_gcp", "aws": "pulumi_aws", "random": "pulumi_random"}.get(pkg)
    if py is None:
        return False
    mod = importlib.import_module(f"{py}.{module.split('/')[0]}" if module.split("/")[0] != "index" else py)
    klass = getattr(mod, cls, None)
    return klass is not None and arg in inspect.signature(klass._internal_init).parameters


@pytest.mark.parametrize("name", STACKS)
def test_label_policy_knows_every_labelled_type_in_the_plans(plans, policy_pack, name):
    """The pack's default type lists (it has no provider SDK) cover every type of ours that takes labels/tags."""
    d = policy_pack.defaults("labels-required")
    types = {r.type for r in _plan(plans, name).resources if r.custom}
    user = {t for t in types if t.startswith("gcp:") and _accepts(t, "user_labels")}
    assert user <= set(d["userLabelledTypes"])
    assert {t for t in types - user if t.startswith("gcp:") and _accepts(t, "labels")} <= set(d["labelledTypes"])
    assert {t for t in types if t.startswith("aws:") and _accepts(t, "tags")} <= set(d["taggedTypes"])


def test_generated_password_outside_a_secret_sink(plans, policy_pack):
    res = resources(plans)
    pw = one(res, "random:index/randomPassword:RandomPassword").outputs["result"]
    vm = one(res, "gcp:compute/instance:Instance", lambda r: "metabase" in r.name)
    vm.inputs["metadata"]["mb-db"] = f"postgres://metabase:{pw}@localhost/metabase"
    for r in res:  # the stack policy reads outputs, as the engine sends them
        if r.urn == vm.urn:
            r.outputs = copy.deepcopy(r.inputs)
    hits = found(run(policy_pack, res), "secrets-stay-in-secret-sinks")
    assert len(hits) == 1 and f"{vm.name}: metadata.mb-db holds the credential generated by" in hits[0]
    assert pw not in hits[0]


def test_secret_rule_is_not_applicable_to_a_plan_file(plans, policy_pack):
    from stacks.plan import plan_items

    rep = run(policy_pack, resources_from_json(plan_items(plans("dev")), "dev"))
    assert "secrets-stay-in-secret-sinks" in rep.not_applicable and rep.mandatory == []


def test_credentials_in_plain_fields(plans, policy_pack):
    res = resources(plans)
    cfg = one(res, "gcp:bigquery/dataTransferConfig:DataTransferConfig")
    cfg.inputs["params"]["secret_access_key"] = "abc"
    vm = one(res, "gcp:compute/instance:Instance")
    vm.inputs["metadata"]["db-password"] = "hunter2hunter2"
    hits = found(run(policy_pack, res), "no-credentials-in-plain-fields")
    assert any(cfg.name in h and "params.secret_access_key" in h and "sensitiveParams" in h for h in hits)
    assert any(vm.name in h and "metadata.db-password" in h and "Secret Manager" in h for h in hits)


def test_prod_archive_and_dwh_must_be_protected(plans, policy_pack):
    res = resources(plans, "prod")
    ds = one(res, "gcp:bigquery/dataset:Dataset", lambda r: r.inputs["datasetId"] == "prod_dwh")
    ds.protect = False
    table = one(res, "gcp:bigquery/table:Table", lambda r: r.inputs["datasetId"] == "prod_archive")
    table.inputs["deletionProtection"] = False
    hits = found(run(policy_pack, res, "prod"), "protected-data")
    assert hits == sorted([
        f"gcp:bigquery/dataset:Dataset::{ds.name}: dataset prod_dwh holds permanent data: set the Pulumi `protect` option",
        f"gcp:bigquery/table:Table::{table.name}: table {table.name} holds permanent data: deletionProtection must be true",
    ])
    # dev's config turns the rule off (dev protects nothing so that `pulumi destroy` works)
    assert _config("dev")["protected-data"] == ("disabled", {})
    assert "protected-data" not in {v.policy for v in run(policy_pack, res, "dev").violations}


def test_scheduled_query_with_destination_params(plans, policy_pack):
    res = resources(plans)
    cfg = one(res, "gcp:bigquery/dataTransferConfig:DataTransferConfig", lambda r: r.name.endswith("-dwh"))
    cfg.inputs["params"]["write_disposition"] = "WRITE_APPEND"
    assert found(run(policy_pack, res), "scheduled-query-params") == [
        f"gcp:bigquery/dataTransferConfig:DataTransferConfig::{cfg.name}: a DDL/DML query writes its own target: params may hold only `query`, not write_disposition"]
    # a plain SELECT may write its result to a table
    cfg.inputs["params"] = {"query": "-- report\nSELECT 1 AS x", "destination_table_name_template": "t", "write_disposition": "WRITE_TRUNCATE"}
    assert found(run(policy_pack, res), "scheduled-query-params") == []


def test_transfer_config_in_another_location(plans, policy_pack):
    res = resources(plans)
    cfg = one(res, "gcp:bigquery/dataTransferConfig:DataTransferConfig")
    cfg.outputs["location"] = "US"
    hits = found(run(policy_pack, res), "transfer-config-location")
    assert hits == [f"gcp:bigquery/dataTransferConfig:DataTransferConfig::{cfg.name}: {cfg.name}: location 'US' is not where the stack's datasets are (EU)"]


# --------------------------------------------------------------------------- config and CLI


def test_config_sets_levels_and_is_checked(plans, policy_pack, tmp_path):
    res = resources(plans)
    one(res, "gcp:storage/bucket:Bucket").inputs["uniformBucketLevelAccess"] = False
    assert run(policy_pack, res, config={"all": ("advisory", {})}).mandatory == []
    off = {**_config("dev"), "gcs-bucket-uniform-no-public": ("disabled", {})}
    assert run(policy_pack, res, config=off).mandatory == []
    assert run(policy_pack, res, config=_config("dev")).mandatory
    with pytest.raises(PolicyError, match="no-such-policy: no such policy in the pack"):
        run(policy_pack, res, config={"no-such-policy": ("advisory", {})})
    with pytest.raises(PolicyError, match=r"labels-required.env: expected string, got 3"):
        run(policy_pack, res, config={"labels-required": (None, {"env": 3})})
    bad = tmp_path / "c.json"
    bad.write_text('{"labels-required": "sometimes"}')
    with pytest.raises(PolicyError, match="'sometimes' is not a valid enforcement level"):
        read_config_file(bad)


def _cli(*args, cwd=ROOT):
    return subprocess.run([sys.executable, "-m", "stacks", "policy", *args], cwd=cwd, capture_output=True, text=True, timeout=300)


def test_cli_over_a_plan_file_exits_1_on_a_mandatory_violation(plans, tmp_path):
    from stacks.plan import plan_items

    items = plan_items(plans("prod"))
    clean = tmp_path / "clean.json"
    clean.write_text(json.dumps(items))
    out = _cli("--plan", str(clean), "--stack", "prod")
    assert out.returncode == 0, out.stdout + out.stderr
    assert "0 mandatory, 1 advisory violation(s)" in out.stdout and "[advisory] iam-service-account-keys" in out.stdout
    for it in items:
        if it["type"] == "gcp:compute/firewall:Firewall":
            it["inputs"]["sourceRanges"] = ["0.0.0.0/0"]
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps(items))
    out = _cli("--plan", str(bad), "--stack", "prod", "--format", "markdown")
    assert out.returncode == 1
    assert "| mandatory | `firewall-no-open-ingress` | `gcp:compute/firewall:Firewall::prod-network-allow-iap-ssh` | ingress from 0.0.0.0/0" in out.stdout
    broken = tmp_path / "broken.json"
    broken.write_text("{")
    out = _cli("--plan", str(broken))
    assert out.returncode == 2 and "broken.json: is not valid JSON" in out.stderr


def test_cli_plans_a_stack(tmp_path):
    out = _cli("--stack", "dev", "--tables-dir", "tests/stacks/tables", "--format", "json")
    assert out.returncode == 0, out.stderr
    doc = json.loads(out.stdout)
    assert doc["mandatory"] == 0 and doc["levels"]["protected-data"] == "disabled" and doc["resources"] > 50


# --------------------------------------------------------------------------- not policies: how the plan handles secrets


def _walk(value, path=""):
    if isinstance(value, dict):
        for k, v in value.items():
            yield from _walk(v, f"{path}.{k}" if path else k)
    elif isinstance(value, list):
        for i, v in enumerate(value):
            yield from _walk(v, f"{path}[{i}]")
    else:
        yield path, value


@pytest.mark.parametrize("name", STACKS)
def test_secrets_are_pulumi_secrets_and_never_printed(plans, name):
    """The policy SDK unwraps secrets, so "is it a Pulumi secret" is checked here, on the plan."""
    from stacks.plan import render_json, render_text

    plan = _plan(plans, name)
    # every generated credential: the random password, Metabase's BigQuery key and, with S3, the AWS secret key
    secrets = [r.outputs["result"] for r in plan.resources if r.type == "random:index/randomPassword:RandomPassword"]
    secrets += [r.outputs["privateKey"] for r in plan.resources if r.type == "gcp:serviceaccount/key:Key"]
    secrets += [r.outputs["secret"] for r in plan.resources if r.type == "aws:iam/accessKey:AccessKey"]
    assert any(r.type == "gcp:serviceaccount/key:Key" for r in plan.resources), "the shipped stacks give Metabase its BigQuery key"
    assert secrets
    for r in plan.resources:
        for path, value in _walk(r.inputs):
            if isinstance(value, str) and any(s in value for s in secrets):
                assert r.has_secret(path.split(".")[0].split("[")[0]), f"{r.name}.{path} holds a secret in plaintext"
    printed = render_json(plan) + render_text(plan)
    assert not any(s in printed for s in secrets)


def test_s3_transfer_key_is_secret(plans):
    plan = plans("dev", tables=S3_TABLES, **S3_ON)
    (staging,) = [r for r in plan.resources if r.type == "gcp:bigquery/dataTransferConfig:DataTransferConfig" and r.inputs["dataSourceId"] == "amazon_s3"]
    assert staging.has_secret("sensitiveParams")
    assert "secret_access_key" not in staging.inputs["params"]
    assert staging.inputs["params"]["data_path"].startswith("s3://") and staging.inputs["params"]["data_path"].endswith('/crm/contacts/dt={run_time-24h|"%Y-%m-%d"}/*')


def test_protection_layout(plans):
    """Derived tables are never protected; dev protects nothing, so `pulumi destroy` works there."""
    prod = plans("prod")
    views = [t for t in prod.resources if t.type == "gcp:bigquery/table:Table" and "view" in t.inputs]
    assert views and all(v.inputs["deletionProtection"] is False and not v.protect for v in views)
    # the check results are history: protected in prod
    (results,) = [t for t in prod.resources if t.type == "gcp:bigquery/table:Table" and t.inputs["tableId"] == "check_results"]
    assert results.inputs["deletionProtection"] is True and results.protect
    dev = plans("dev")
    assert not any(r.protect for r in dev.resources)
    assert all(t.inputs["deletionProtection"] is False for t in dev.resources if t.type == "gcp:bigquery/table:Table")
