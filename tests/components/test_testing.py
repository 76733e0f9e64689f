"""The shared mock runner itself: recording, secrets, config, repeated runs, and the policy pack
run over a recording (it must catch violations, or every other component test proves nothing)."""

from __future__ import annotations

import pulumi
import pulumi_gcp as gcp
import pytest

from components.testing import FAKE_PROJECT_NUMBER, SECRET, run_program


class Parent(pulumi.ComponentResource):
    def __init__(self, name):
        super().__init__("flexyboots:test:Parent", name, None, None)
        self.sa = gcp.serviceaccount.Account(f"{name}-sa", account_id="svc-account", opts=pulumi.ResourceOptions(parent=self))
        self.register_outputs({})


def test_records_types_parents_inputs_and_outputs():
    def program():
        p = Parent("p")
        pulumi.export("email", p.sa.email)
        pulumi.export("number", gcp.organizations.get_project().number)

    rec = run_program(program, config={"gcp:project": "acme-data-dev"})
    sa = rec.get("p-sa")
    assert sa.type == "gcp:serviceaccount/account:Account"
    assert sa.parent_type == "flexyboots:test:Parent" and sa.parent_name == "p"
    assert rec.get("p").parent == rec.stack_urn
    assert rec.children(rec.get("p")) == [sa]
    assert sa.inputs["accountId"] == "svc-account"
    assert rec.exports == {"email": "svc-account@acme-data-dev.iam.gserviceaccount.com", "number": FAKE_PROJECT_NUMBER}
    assert rec.count_by_type() == {"flexyboots:test:Parent": 1, "gcp:serviceaccount/account:Account": 1}


def test_secrets_are_flagged_and_redacted():
    def program():
        s = gcp.secretmanager.Secret("s", secret_id="x", replication={"auto": {}})
        v = gcp.secretmanager.SecretVersion("v", secret=s.id, secret_data=pulumi.Output.secret("hunter2"))
        pulumi.export("data", v.secret_data)
        pulumi.export("plain", s.secret_id)

    rec = run_program(program)
    v = rec.get("v")
    assert v.inputs["secretData"] == "hunter2"  # plaintext for assertions
    assert v.has_secret("secretData") and not v.has_secret("secret")
    assert v.redacted_inputs()["secretData"] == SECRET
    assert "hunter2" not in repr(v.redacted_inputs())
    assert rec.secret_exports == {"data"}
    assert rec.redacted_exports() == {"data": SECRET, "plain": "x"}


def test_config_and_repeated_runs_are_isolated():
    def program():
        cfg = pulumi.Config()
        gcp.serviceaccount.Account(cfg.require("name"), account_id="svc-account")
        pulumi.export("obj", cfg.require_object("obj"))

    first = run_program(program, config={"name": "first", "obj": {"a": 1}}, stack="dev")
    second = run_program(program, config={"name": "second", "obj": [1, 2]}, stack="prod")
    assert [r.name for r in first.resources] == ["first"]
    assert [r.name for r in second.resources] == ["second"]
    assert second.exports["obj"] == [1, 2]
    assert second.stack_urn.startswith("urn:pulumi:prod::flexyboots::")


def test_errors_propagate_and_the_next_run_still_works():
    def failing_apply():
        sa = gcp.serviceaccount.Account("sa", account_id="svc-account")
        sa.email.apply(lambda _: (_ for _ in ()).throw(RuntimeError("boom in apply")))

    with pytest.raises(RuntimeError, match="boom in apply"):
        run_program(failing_apply)
    with pytest.raises(ValueError, match="direct"):
        run_program(lambda: (_ for _ in ()).throw(ValueError("direct")))
    rec = run_program(lambda: gcp.serviceaccount.Account("ok", account_id="svc-account"))
    assert [r.name for r in rec.resources] == ["ok"]


def test_policy_pack_catches_violations_in_a_recording(violations):
    def bad():
        net = gcp.compute.Network("n", auto_create_subnetworks=True)
        gcp.compute.Firewall("open", network=net.id, source_ranges=["0.0.0.0/0"], allows=[{"protocol": "tcp", "ports": ["22"]}])
        gcp.storage.Bucket("b", location="US", labels={"env": "dev"})
        gcp.compute.Instance(
            "vm", machine_type="e2-small", zone="europe-west1-b", boot_disk={"initialize_params": {"image": "debian-12"}},
            network_interfaces=[{"network": net.id, "access_configs": [{"network_tier": "PREMIUM"}]}],
            labels={"env": "dev", "component": "x", "managed-by": "terraform"},
        )
        gcp.projects.IAMMember("own", project="acme-data-dev", role="roles/owner", member="user:a@b.c")
        gcp.projects.IAMMember("dataowner", project="acme-data-dev", role="roles/bigquery.dataOwner", member="user:a@b.c")
        gcp.bigquery.DatasetIamMember("ds-ok", dataset_id="d", role="roles/bigquery.dataOwner", member="user:a@b.c")

    found = violations(run_program(bad))
    assert "firewall-no-open-ingress: gcp:compute/firewall:Firewall::open: ingress from 0.0.0.0/0: allow only known ranges (IAP is 35.235.240.0/20)" in found
    assert [f for f in found if f.startswith("vm-no-external-ip:")] == [
        "vm-no-external-ip: gcp:compute/instance:Instance::vm: networkInterfaces[0] has an access config (an external IPv4 address); reach the VM through IAP instead"]
    assert len([f for f in found if f.startswith("gcs-bucket-uniform-no-public:")]) == 2
    assert "labels-required: gcp:storage/bucket:Bucket::b: labels missing component, managed-by" in found
    assert "labels-required: gcp:compute/instance:Instance::vm: labels managed-by is 'terraform', expected 'pulumi'" in found
    assert any(f.startswith("iam-no-primitive-or-admin-roles: gcp:projects/iAMMember:IAMMember::own: grants the primitive role roles/owner") for f in found)
    assert any(f.startswith("iam-project-roles-allowlist: gcp:projects/iAMMember:IAMMember::dataowner: grants roles/bigquery.dataOwner on the whole project") for f in found)
    assert not any("ds-ok" in f for f in found)  # dataOwner on one dataset is not project-wide
    assert len(found) == 1 + 1 + 2 + 2 + 2 + 1  # + roles/owner is also outside the project allow-list
