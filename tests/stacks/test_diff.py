"""``python -m stacks diff``: the pure comparison of two plans, the provider's replacement rules,
and the whole command over synthetic git histories (a copy of this repository, one change each)."""

from __future__ import annotations

import copy
import importlib
import importlib.util
import inspect
import json
import subprocess
import sys
from pathlib import Path

import pytest

from stacks.diff import COMMENT_LIMIT, diff_plans, render_markdown, render_text
from stacks.plan import plan_items
from stacks.replacement import provider_rules, replacement_reasons, schema_change_in_place, table_change_reasons

ROOT = Path(__file__).resolve().parents[2]
TABLE = "gcp:bigquery/table:Table"


def items(plans, stack="dev"):
    return copy.deepcopy(plan_items(plans(stack)))


def find(its, type_, name):
    return next(i for i in its if i["type"] == type_ and i["name"] == name)


# --------------------------------------------------------------------------- the pure core


def test_same_plan_no_changes(plans):
    d = diff_plans(items(plans, "prod"), items(plans, "prod"))
    assert d.changes == [] and d.sql == [] and d.exit_code() == 0


def test_partitioning_change_of_a_protected_dwh_table_is_destructive(plans):
    old, new = items(plans, "prod"), items(plans, "prod")
    find(new, TABLE, "prod_dwh.customers")["inputs"]["timePartitioning"] = {"field": "updated_at", "type": "MONTH"}
    d = diff_plans(old, new)
    (c,) = d.changes
    assert (c.action, c.table, c.component) == ("replace", "customers", "flexyboots:table_pipeline:TablePipeline::customers")
    assert [r.path for r in c.reasons] == ["timePartitioning.type"] and "DAY -> MONTH" in c.reasons[0].why
    assert "protect" in c.destructive and "CREATE TABLE" in c.advice
    assert d.exit_code() == 3


def test_view_and_query_changes_carry_a_sql_diff_per_layer(plans):
    old, new = items(plans), items(plans)
    cfg = find(new, "gcp:bigquery/dataTransferConfig:DataTransferConfig", "dev-customers-delta")
    cfg["inputs"]["params"]["query"] = cfg["inputs"]["params"]["query"].replace("QUALIFY", "QUALIFY /* newest */")
    view = next(i for i in new if i["type"] == TABLE and "view" in i["inputs"])
    view["inputs"]["view"]["query"] += "\n-- reviewed"
    d = diff_plans(old, new)
    assert {c.action for c in d.changes} == {"update"} and not d.destructive
    assert sorted((q.table, q.layer) for q in d.sql) == sorted(
        [("customers", "delta"), (view["parent"].split("::")[1], f"view {view['inputs']['datasetId']}.{view['inputs']['tableId']}")])
    delta = next(q for q in d.sql if q.layer == "delta")
    assert "+" in delta.diff and "/* newest */" in delta.diff and delta.diff.startswith("--- a/")


def test_deleting_data_is_destructive_and_unknown_types_say_so(plans):
    old, new = items(plans), items(plans)
    new = [i for i in new if i["type"] != "gcp:storage/bucket:Bucket"]
    new.append({"type": "gcp:monitoring/alertPolicy:AlertPolicy", "name": "a", "parent": "", "inputs": {"displayName": "x"}})
    old.append({"type": "gcp:monitoring/alertPolicy:AlertPolicy", "name": "a", "parent": "", "inputs": {"displayName": "y"}})
    d = diff_plans(old, new)
    bucket = next(c for c in d.changes if c.type == "gcp:storage/bucket:Bucket")
    assert bucket.action == "delete" and "bucket" in bucket.destructive
    alert = d.get("gcp:monitoring/alertPolicy:AlertPolicy::a")
    assert alert.action == "update" and not alert.rules_known and "pulumi preview --diff" in alert.notes[0]


def test_secrets_stay_redacted_in_every_format(plans):
    old, new = items(plans), items(plans)
    find(new, "random:index/randomPassword:RandomPassword", "dev-metabase-db-password")["inputs"]["length"] = 40.0
    ver = find(new, "gcp:secretmanager/secretVersion:SecretVersion", "dev-metabase-db-password-v1")
    assert ver["inputs"]["secretData"] == "[secret]"
    d = diff_plans(old, new)
    pw = d.get("random:index/randomPassword:RandomPassword::dev-metabase-db-password")
    assert pw.action == "replace" and pw.values["length"] == (32.0, 40.0)
    plan = plans("dev")
    secret = next(r.outputs["result"] for r in plan.resources if r.type == "random:index/randomPassword:RandomPassword")
    assert secret not in render_text(d) + render_markdown(d)


def test_markdown_is_capped_for_a_pr_comment(plans):
    old, new = items(plans), items(plans)
    for i in new:
        if i["type"] == "gcp:bigquery/dataTransferConfig:DataTransferConfig":
            i["inputs"]["params"]["query"] = i["inputs"]["params"]["query"].replace("\n", "\n-- x\n")
    d = diff_plans(old, new)
    d.stack, d.against = "dev", "origin/main"
    full = render_markdown(d)
    queries = [i for i in new if i["type"] == "gcp:bigquery/dataTransferConfig:DataTransferConfig" and "query" in i["inputs"]["params"]]
    assert full.count("<details>") == len(d.sql) == len(queries) and len(full) < COMMENT_LIMIT
    short = render_markdown(d, limit=6000)
    assert len(short) < 6500 and "left out to fit a PR comment" in short


# --------------------------------------------------------------------------- the provider's rules


def test_schema_rules_follow_the_provider():
    f = lambda *cols: json.dumps([{"name": n, "type": t, **({"mode": m} if m else {})} for n, t, m in cols])
    base = f(("a", "INT64", None), ("b", "STRING", "REQUIRED"))
    assert schema_change_in_place(base, f(("a", "INT64", None), ("b", "STRING", "REQUIRED"), ("c", "DATE", None))) == (True, [])
    assert schema_change_in_place(base, f(("a", "INTEGER", None), ("b", "STRING", "NULLABLE")))[0]  # alias; REQUIRED -> NULLABLE
    assert schema_change_in_place(base, f(("a", "INT64", None)))[0]  # dropping alone is in place
    assert schema_change_in_place(base, f(("a", "STRING", None), ("b", "STRING", "REQUIRED"))) == (False, ["column a changes type INT64 -> STRING"])
    assert not schema_change_in_place(base, f(("a", "INT64", None), ("c", "STRING", None)))[0]  # rename = drop + add
    assert not schema_change_in_place(base, f(("a", "INT64", None), ("b", "STRING", "REQUIRED"), ("c", "DATE", "REQUIRED")))[0]
    assert not schema_change_in_place(f(("a", "INT64", None)), f(("a", "INT64", "REQUIRED")))[0]


def test_partitioning_rules():
    day = {"timePartitioning": {"type": "DAY", "field": "d"}}
    assert table_change_reasons(day, {"timePartitioning": {"type": "DAY", "field": "d"}}) == []
    assert [r.why for r in table_change_reasons({}, day)] == ["adds partitioning to an unpartitioned table"]
    assert [r.why for r in table_change_reasons(day, {})] == ["removes the table's partitioning"]
    assert [r.path for r in table_change_reasons(day, {"timePartitioning": {"type": "DAY", "field": "e"}})] == ["timePartitioning.field"]


def test_other_types():
    vm = {"machineType": "e2-small", "metadataStartupScript": "#!/bin/bash\necho 1", "networkInterfaces": [{"network": "n"}]}
    assert replacement_reasons("gcp:compute/instance:Instance", vm, {**vm, "machineType": "e2-medium"}) == []
    assert [r.path for r in replacement_reasons("gcp:compute/instance:Instance", vm, {**vm, "metadataStartupScript": "#!/bin/bash\necho 2"})] == ["metadataStartupScript"]
    assert [r.path for r in replacement_reasons("gcp:compute/instance:Instance", vm, {**vm, "networkInterfaces": []})] == ["networkInterfaces"]
    assert replacement_reasons("gcp:compute/disk:Disk", {"size": 50}, {"size": 100}) == []
    assert [r.path for r in replacement_reasons("gcp:compute/disk:Disk", {"size": 50}, {"size": 20})] == ["size"]
    assert [r.path for r in replacement_reasons("gcp:bigquery/datasetIamMember:DatasetIamMember", {"role": "a", "member": "m"}, {"role": "b", "member": "m"})] == ["role"]
    assert [r.path for r in replacement_reasons("gcp:bigquery/dataset:Dataset", {"location": "EU"}, {"location": "US"})] == ["location"]
    sub = {"ipCidrRange": "10.10.0.0/20", "network": "n"}
    assert replacement_reasons("gcp:compute/subnetwork:Subnetwork", sub, {**sub, "ipCidrRange": "10.10.0.0/19"}) == []
    assert [r.path for r in replacement_reasons("gcp:compute/subnetwork:Subnetwork", sub, {**sub, "ipCidrRange": "10.20.0.0/20"})] == ["ipCidrRange"]
    s3 = {"dataSourceId": "amazon_s3", "params": {"data_path": "s3://b/crm/*", "file_format": "CSV"}}
    assert replacement_reasons("gcp:bigquery/dataTransferConfig:DataTransferConfig", s3, {**s3, "params": {**s3["params"], "file_format": "JSON"}}) == []
    assert [r.path for r in replacement_reasons("gcp:bigquery/dataTransferConfig:DataTransferConfig", s3,
                                                {**s3, "params": {**s3["params"], "data_path": "s3://b/crm2/*"}})] == ["params.data_path"]
    assert replacement_reasons("gcp:monitoring/alertPolicy:AlertPolicy", {"a": 1}, {"a": 2}) is None


def test_every_rule_names_an_input_of_the_pulumi_sdk():
    """provider_rules.json (Terraform names mapped to Pulumi's) against the installed pulumi_gcp."""
    rules = provider_rules()
    assert rules["source"].startswith("hashicorp/terraform-provider-google@")
    for type_, rs in rules["rules"].items():
        if type_.startswith("*"):
            continue
        module, cls = type_.split(":")[1].split("/")[0], type_.split(":")[2]
        params = inspect.signature(getattr(importlib.import_module(f"pulumi_gcp.{module}"), cls)._internal_init).parameters
        camel = {"".join(w if i == 0 else w[:1].upper() + w[1:] for i, w in enumerate(p.split("_"))) for p in params}
        for r in rs:
            assert r["path"].split(".")[0] in camel, (type_, r)
            assert r["source"].startswith("google/") and ".go:" in r["source"]


# --------------------------------------------------------------------------- the command over git histories


def _tool():
    spec = importlib.util.spec_from_file_location("readme_diff_example", ROOT / "tools" / "readme_diff_example.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


@pytest.fixture(scope="module")
def repo(tmp_path_factory):
    """A git repository holding this project's tracked files at one commit (``main``, the base)."""
    yield _tool().copy_repo(tmp_path_factory.mktemp("history") / "repo")


def diff(repo: Path, stack: str, edit, fmt: str = "json"):
    try:
        edit(repo)
        out = subprocess.run([sys.executable, "-m", "stacks", "diff", "--stack", stack, "--against", "main", "--tables-dir",
                              "tests/stacks/tables", "--format", fmt, "--exit-code"], cwd=repo, capture_output=True, text=True, timeout=300)
    finally:
        subprocess.run(["git", "checkout", "-q", "--", "."], cwd=repo, check=True)
        subprocess.run(["git", "clean", "-qfd"], cwd=repo, check=True)
    assert out.returncode in (0, 2, 3), out.stderr
    return out.returncode, (json.loads(out.stdout) if fmt == "json" else out.stdout)


def edit_spec(name, old, new):
    def edit(repo):
        p = repo / "tests/stacks/tables" / name
        text = p.read_text()
        assert old in text
        p.write_text(text.replace(old, new))
    return edit


def by(doc, action=None):
    return {c["name"]: c for c in doc["changes"] if action is None or c["action"] == action}


def test_history_add_a_table(repo):
    def edit(r):
        text = (r / "tests/stacks/tables/customers.yaml").read_text().replace("table: customers", "table: payments")
        (r / "tests/stacks/tables/payments.yaml").write_text(text)
    code, doc = diff(repo, "dev", edit)
    assert code == 2 and doc["summary"]["destructive"] == 0
    created = by(doc, "create")
    assert "payments" in created and "dev_dwh.payments" in created and "dev-payments-dwh" in created
    assert doc["summary"] == {"create": len(created), "update": doc["summary"]["update"], "replace": 0, "delete": 0, "destructive": 0}
    assert all(c["table"] == "payments" for c in created.values() if c["type"] != "flexyboots:table_pipeline:TablePipeline")


def test_history_change_a_column_type(repo):
    code, doc = diff(repo, "dev", edit_spec("customers.yaml", "{source: balance, name: balance, type: NUMERIC}", "{source: balance, name: balance, type: STRING}"))
    dwh = by(doc)["dev_dwh.customers"]
    assert dwh["action"] == "replace" and dwh["reasons"][0]["why"] == "column balance changes type NUMERIC -> STRING"
    assert "resourceBigQueryTableSchemaIsChangeable" in dwh["reasons"][0]["source"]
    assert dwh["destructive"] and "permanent data" in dwh["destructive_why"] and "ALTER COLUMN" in dwh["advice"]
    assert code == 3 and any(q["layer"] == "transform" for q in doc["sql"])


def test_history_change_partitioning_of_a_protected_table(repo):
    code, doc = diff(repo, "prod", edit_spec("customers.yaml", "partition_by: {column: updated_at, granularity: DAY}",
                                             "partition_by: {column: updated_at, granularity: MONTH}"), fmt="json")
    assert code == 3
    (c,) = [c for c in doc["changes"] if c["destructive"]]
    assert c["name"] == "prod_dwh.customers" and c["action"] == "replace" and "protect" in c["destructive_why"]
    assert [r["path"] for r in c["reasons"]] == ["timePartitioning.type"]


def test_history_remove_a_table(repo):
    code, doc = diff(repo, "dev", lambda r: (r / "tests/stacks/tables/orders.yaml").unlink())
    deleted = by(doc, "delete")
    assert code == 3 and "orders" in deleted and not by(doc, "create")
    assert deleted["dev_archive.orders"]["destructive"] and "permanent data" in deleted["dev_archive.orders"]["destructive_why"]
    assert not deleted["dev_quality.orders__rejects"]["destructive"]  # a view: derived, no data of its own
    assert not deleted["dev-orders-dwh"]["destructive"]  # a scheduled query


def test_history_change_a_vm_size(repo):
    def edit(r):
        p = r / "stacks/Pulumi.dev.yaml"
        p.write_text(p.read_text().replace("machine_type: e2-standard-2\n      low_resource_mode", "machine_type: e2-standard-4\n      low_resource_mode"))
    code, text = diff(repo, "dev", edit, fmt="text")
    assert code == 2
    assert "~ update  gcp:compute/instance:Instance::dev-airbyte-vm" in text
    assert "machineType: e2-standard-2 -> e2-standard-4" in text and "stopped and started" in text
    assert "DESTRUCTIVE" not in text


def test_history_change_only_a_comment(repo):
    code, text = diff(repo, "dev", edit_spec("customers.yaml", "# Fixture spec", "# A comment, reworded. Fixture spec"), fmt="markdown")
    assert code == 0 and "No infrastructure changes." in text


def test_unknown_ref_is_a_clear_error(repo):
    out = subprocess.run([sys.executable, "-m", "stacks", "diff", "--stack", "dev", "--against", "no-such-branch"],
                         cwd=repo, capture_output=True, text=True, timeout=120)
    assert out.returncode == 1 and "--against 'no-such-branch': not a commit" in out.stderr


def test_readme_example_is_the_tools_output(repo):
    """README "Reviewing a change" shows what the tool prints for that change (regenerate with
    `python tools/readme_diff_example.py --write`)."""
    tool = _tool()
    md = tool.render(repo)
    assert "**1** to replace" in md and "schema: +phone STRING" in md and "<details><summary>customers · dwh</summary>" in md
    readme = (ROOT / "README.md").read_text()
    assert tool.readme_block(readme) == tool.block(md), "README example is stale: python tools/readme_diff_example.py --write"


def test_a_new_stack_is_all_creates(repo):
    def edit(r):
        (r / "stacks/Pulumi.qa.yaml").write_text((r / "stacks/Pulumi.dev.yaml").read_text().replace("flexyboots:env: dev", "flexyboots:env: qa"))
    code, doc = diff(repo, "qa", edit)
    assert code == 2 and doc["summary"]["create"] == len(doc["changes"]) > 50 and doc["summary"]["destructive"] == 0
