"""The `local` stack (stacks/Pulumi.local.yaml) and the service images of every stack, on the
real program's plans:

* the local plan lists Docker resources only (no GCP resource, project or provider), every
  port on 127.0.0.1, data in named volumes, no plain-text secret in the plan output;
* the VMs of dev and prod and the local containers run the same images (by the same digest)
  with the same settings: one definition, two places;
* every image a VM runs is shown by digest in the prod plan, and moving a tag in the stack
  config changes the digest in the script and in the plan;
* the one-shot catalog loader: on the Amundsen network, after every Amundsen container, its
  image by digest, the local document of the stack's specs uploaded, replaced when it changes.
"""

from __future__ import annotations

import re

import pytest
import yaml

from components.testing import registry_digest
from stacks.plan import render_json, render_text

CONTAINER = "docker:index/container:Container"
IMAGE = "docker:index/remoteImage:RemoteImage"
_COMPOSE = re.compile(r"<<'COMPOSE'\n(.*?)COMPOSE\n", re.S)


def _of(plan, type_):
    return [r for r in plan.resources if r.type == type_]


def _vm_compose(plan) -> dict:
    """service -> its compose document, from the VM startup scripts of a plan."""
    out = {}
    for vm in _of(plan, "gcp:compute/instance:Instance"):
        for text in _COMPOSE.findall(vm.inputs["metadataStartupScript"]):
            doc = yaml.safe_load(text)
            out[doc["name"]] = doc
    return out


def test_the_local_plan_is_docker_only_and_needs_no_project(plans):
    plan = plans("local")
    types = {r.type for r in plan.resources}
    assert types == {
        "flexyboots:local_services:LocalMetabase", "flexyboots:local_services:LocalAmundsen",
        CONTAINER, IMAGE, "docker:index/volume:Volume", "docker:index/network:Network",
        "random:index/randomPassword:RandomPassword",
    }
    assert plan.project == ""
    text = render_text(plan)
    assert text.startswith("flexyboots plan: stack local, no GCP project (the workstation's Docker): 24 resources")
    assert "gcp:" not in text
    for name in ("local-metabase-postgres", "local-metabase-metabase", "local-amundsen-elasticsearch", "local-amundsen-amundsenfrontend"):
        assert f"docker:index/container:Container {name}  name={name}" in text
    assert "metabase_url: http://127.0.0.1:3000" in text and "amundsen_url: http://127.0.0.1:5000" in text


def test_local_ports_are_loopback_only_and_data_in_named_volumes(plans):
    plan = plans("local")
    ports = [p for c in _of(plan, CONTAINER) for p in c.inputs.get("ports") or []]
    assert len(ports) == 5 and {p["ip"] for p in ports} == {"127.0.0.1"}
    mounts = [m for c in _of(plan, CONTAINER) for m in c.inputs.get("volumes") or []]
    assert len(mounts) == 3 and all(set(m) == {"volumeName", "containerPath"} for m in mounts)


def test_no_plain_text_secret_in_the_local_plan(plans):
    plan = plans("local")
    (password,) = _of(plan, "random:index/randomPassword:RandomPassword")
    secret = password.outputs["result"]
    assert secret and any(secret in str(c.inputs.get("envs")) for c in _of(plan, CONTAINER))  # it is there...
    for out in (render_text(plan), render_json(plan)):  # ...and printed nowhere
        assert secret not in out
    assert '"envs": "[secret]"' in render_json(plan)


@pytest.mark.parametrize("vm_stack", ["prod", "dev"])
def test_vm_and_local_containers_run_the_same_images_and_settings(plans, vm_stack):
    """What the VM's compose file says of each container, the local docker.Container says too:
    image (by the same digest), environment (the secret from the env file there, a Pulumi
    secret here), command, health check, ulimits, container ports, volumes' container paths."""
    vm = _vm_compose(plans(vm_stack))
    local = plans("local")
    images = {r.urn: r for r in _of(local, IMAGE)}
    containers = {c.name: c for c in _of(local, CONTAINER)}
    compared = 0
    for service, doc in vm.items():
        for name, svc in doc["services"].items():
            c = containers[f"local-{service}-{name}"]
            (image,) = [images[d] for d in c.dependencies if d in images]
            assert image.inputs["name"] == svc["image"] and "@sha256:" in svc["image"]
            assert c.inputs["image"] == image.outputs["imageId"]
            env = dict(e.split("=", 1) for e in c.inputs["envs"])
            for key, value in svc.get("environment", {}).items():
                if value.startswith("${"):
                    assert c.has_secret("envs") and env[key]
                else:
                    assert env[key] == value, (service, name, key)
            assert list(env) == list(svc.get("environment", {}))
            assert c.inputs.get("command", []) == svc.get("command", [])
            h = svc.get("healthcheck")
            assert c.inputs.get("healthcheck") == (
                {"tests": h["test"], "interval": h["interval"], "timeout": h["timeout"], "retries": h["retries"]} if h else None
            )
            assert c.inputs.get("ulimits", []) == [{"name": n, "soft": u["soft"], "hard": u["hard"]} for n, u in svc.get("ulimits", {}).items()]
            assert [int(p["internal"]) for p in c.inputs.get("ports", [])] == [int(p.split(":")[-1]) for p in svc.get("ports", [])]
            vm_paths = [v.split(":")[1] for v in svc.get("volumes", []) if not v.startswith("/run/")]  # the key is VM-only
            assert [m["containerPath"] for m in c.inputs.get("volumes", [])] == vm_paths
            compared += 1
    assert compared == {"prod": 7, "dev": 2}[vm_stack]


def test_the_prod_plan_shows_every_service_image_by_digest(plans):
    plan = plans("prod")
    text = render_text(plan)
    refs = [svc["image"] for doc in _vm_compose(plan).values() for svc in doc["services"].values()]
    assert len(refs) == 7
    for ref in refs:
        tag, _, digest = ref.partition("@")
        assert digest == registry_digest(tag)
        assert f": {ref}\n" in text, ref  # one line per image in the plan's outputs
    assert plan.exports["service_images"]["amundsen"]["search"] == f"amundsendev/amundsen-search:4.0.2@{registry_digest('amundsendev/amundsen-search:4.0.2')}"


def test_moving_a_tag_in_the_stack_config_moves_the_digest(plans):
    """An upgrade is a config change; the plan (and a preview) show the new digest."""
    before = plans("prod")
    moved = {"metabase": "metabase/metabase:v0.51.1", "postgres": "postgres:16"}
    after = plans("prod", **{"flexyboots:services": {
        "airbyte": {"enabled": True, "machine_type": "e2-standard-4", "disk_size_gb": 100},
        "metabase": {"enabled": True, "machine_type": "e2-standard-2", "disk_size_gb": 20, "bigquery_key": True, "images": moved},
        "amundsen": {"enabled": True, "machine_type": "e2-highmem-2", "disk_size_gb": 50},
    }})
    old, new = (p.exports["service_images"] for p in (before, after))
    assert old["amundsen"] == new["amundsen"] and old["metabase"]["postgres"] == new["metabase"]["postgres"]
    assert new["metabase"]["metabase"] == f"metabase/metabase:v0.51.1@{registry_digest('metabase/metabase:v0.51.1')}"
    assert old["metabase"]["metabase"] != new["metabase"]["metabase"]
    script = next(r for r in after.resources if r.name == "prod-metabase-vm").inputs["metadataStartupScript"]
    assert new["metabase"]["metabase"] in script and old["metabase"]["metabase"] not in script


def test_the_policy_pack_passes_the_local_plan_with_its_stack_config(plans, policy_pack):
    """policy/config/local.json names the container environment as where the local DB password
    goes (a Pulumi secret there, as in a SecretVersion on GCP); without it the rule would catch
    the password in the containers' envs, and it still catches it anywhere else."""
    from stacks.policy import read_config_file, resources_from_recording, stack_config_file

    resources = resources_from_recording(plans("local").resources)
    config = read_config_file(stack_config_file("local"))
    report = policy_pack.run(resources, config, stack="local")
    assert report.violations == []
    bare = policy_pack.run(resources, {}, stack="local")
    assert {v.resource.split("::")[-1] for v in bare.by_policy("secrets-stay-in-secret-sinks")} == {
        "local-metabase-postgres", "local-metabase-metabase"}


LOADER = "local-amundsen-catalog"


def _loader(plan):
    (loader,) = [c for c in _of(plan, CONTAINER) if c.name == LOADER]
    return loader


def test_the_catalog_loader_runs_once_on_the_amundsen_network_after_amundsen(plans):
    from components.testing import Recording

    plan = plans("local")
    loader = _loader(plan)
    inputs = loader.inputs
    assert inputs["name"] == LOADER and inputs["restart"] == "no" and inputs["mustRun"] is False
    assert inputs["attach"] is True and inputs["logs"] is True
    assert not inputs.get("ports") and not inputs.get("volumes")  # publishes nothing, keeps nothing
    (network,) = [n for n in _of(plan, "docker:index/network:Network") if n.name == "local-amundsen"]
    assert inputs["networksAdvanced"] == [{"name": network.outputs["name"]}]
    # created after every Amundsen container (neo4j among them), in the Amundsen component
    amundsen = {c.urn for c in _of(plan, CONTAINER) if c.name.startswith("local-amundsen-") and c.name != LOADER}
    assert len(amundsen) == 5 and amundsen <= set(loader.dependencies)
    rec = Recording(resources=plan.resources, providers=[], stack_urn=plan.stack_urn, exports={}, secret_exports=set())
    assert amundsen <= rec.waits_for(loader)
    assert loader.parent_type == "flexyboots:local_services:LocalAmundsen"
    # a changed document (or command, or image) replaces it, the old one deleted first (fixed name)
    assert set(loader.replace_on_changes) == {"uploads", "command", "image"} and loader.delete_before_replace
    assert {(l["label"], l["value"]) for l in inputs["labels"]} >= {("env", "local"), ("managed-by", "pulumi"), ("role", "catalog-loader")}
    # the exit code is the load's verdict (the provider does not fail on it): exported
    assert "amundsen_catalog_exit_code" in plan.exports


def test_the_catalog_loaders_image_is_the_amundsen_sets_catalog_role_by_digest(plans):
    plan = plans("local")
    loader = _loader(plan)
    images = {r.urn: r for r in _of(plan, IMAGE)}
    (image,) = [images[d] for d in loader.dependencies if d in images]
    ref = "python:3.11-slim-bookworm"
    assert image.name == f"{LOADER}-image" and image.inputs["name"] == f"{ref}@{registry_digest(ref)}"
    assert image.inputs["keepLocally"] is True and loader.inputs["image"] == image.outputs["imageId"]
    assert plan.exports["service_images"]["amundsen"]["catalog"] == image.inputs["name"]


def test_the_catalog_loader_uploads_the_local_document_of_the_stacks_specs(plans):
    import json

    from components import catalog
    from pipeline_sql.spec import load_specs
    from tests.stacks.conftest import TABLES

    loader = _loader(plans("local"))
    uploads = {u["file"]: u["content"] for u in loader.inputs["uploads"]}
    command, files = catalog.render_local_loader(catalog.local_catalog_document(load_specs(TABLES)))
    assert uploads == files and loader.inputs["command"] == command
    doc = json.loads(uploads[f"{catalog.LOCAL_LOADER_DIR}/catalog.json"])
    assert set(doc["dwh_keys"]) == {s.table for s in load_specs(TABLES)}
    assert {j["conf"]["publisher.neo4j.neo4j_endpoint"] for j in doc["jobs"]} == {"bolt://neo4j_amundsen:7687"}
    # the container the endpoint names is the local neo4j's, on the same network
    neo4j = next(c for c in _of(plans("local"), CONTAINER) if c.name == "local-amundsen-neo4j")
    assert "neo4j_amundsen" in neo4j.inputs["networksAdvanced"][0]["aliases"]


def test_no_secret_and_no_password_in_the_catalog_loader(plans):
    plan = plans("local")
    loader = _loader(plan)
    (password,) = _of(plan, "random:index/randomPassword:RandomPassword")
    assert not loader.secret_paths and not loader.inputs.get("envs")
    assert password.outputs["result"] not in str(loader.inputs)


def test_other_specs_in_the_stack_config_change_the_loader_and_amundsen_off_means_no_loader(plans):
    from tests.stacks.conftest import TABLES_S3

    base, other = _loader(plans("local")), _loader(plans("local", tables=TABLES_S3))
    assert base.inputs["uploads"] != other.inputs["uploads"]
    off = plans("local", **{"flexyboots:services": {"metabase": {"enabled": True}, "amundsen": {"enabled": False}}})
    assert not [c for c in _of(off, CONTAINER) if c.name == LOADER] and "amundsen_catalog_exit_code" not in off.exports
