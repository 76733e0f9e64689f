"""LocalMetabase and LocalAmundsen under Pulumi mocks: the services on a workstation's Docker,
images pulled by digest, ports on 127.0.0.1 only, data in named volumes, the DB password a
Pulumi secret that nothing prints."""

from __future__ import annotations

import json

import pulumi
import pytest

from components import images, services
from components.common import ComponentArgsError
from components.local_services import LocalAmundsen, LocalAmundsenArgs, LocalMetabase, LocalMetabaseArgs
from components.testing import registry_digest, run_program

CONTAINER = "docker:index/container:Container"
IMAGE = "docker:index/remoteImage:RemoteImage"
VOLUME = "docker:index/volume:Volume"
NETWORK = "docker:index/network:Network"


@pytest.fixture(scope="module")
def rec():
    def program():
        mb = LocalMetabase("metabase", LocalMetabaseArgs(env="local"))
        am = LocalAmundsen("amundsen", LocalAmundsenArgs(env="local", port=5050))
        pulumi.export("urls", {"metabase": mb.url, "amundsen": am.url, "health": mb.health_url})
        pulumi.export("images", {"metabase": mb.pinned_images, "amundsen": am.pinned_images})

    return run_program(program)


def _in(rec, component, type_):
    return [r for r in rec.children(rec.get(component)) if r.type == type_]


def test_inventory(rec):
    assert rec.get("metabase").type == "flexyboots:local_services:LocalMetabase"
    assert rec.get("amundsen").type == "flexyboots:local_services:LocalAmundsen"
    counts = rec.count_by_type()
    assert counts == {
        "flexyboots:local_services:LocalMetabase": 1, "flexyboots:local_services:LocalAmundsen": 1,
        NETWORK: 2, VOLUME: 1 + 2, IMAGE: 2 + 5, CONTAINER: 2 + 5, "random:index/randomPassword:RandomPassword": 1,
    }
    assert sorted(r.name for r in _in(rec, "metabase", CONTAINER)) == ["local-metabase-metabase", "local-metabase-postgres"]
    assert {r.inputs["name"] for r in rec.of_type(NETWORK)} == {"local-metabase", "local-amundsen"}
    # no GCP resource, no GCP provider: the workstation needs no project and no credentials
    assert not [r for r in rec.resources + rec.providers if r.type.startswith(("gcp:", "pulumi:providers:gcp"))]
    # the registry lookups use a provider that needs no Docker daemon
    assert {p.name: p.inputs for p in rec.providers} == {
        "local-metabase-registry": {"disableDockerDaemonCheck": "true"},
        "local-amundsen-registry": {"disableDockerDaemonCheck": "true"},
    }


def test_every_port_is_bound_to_loopback_only(rec):
    published = {}
    for c in rec.of_type(CONTAINER):
        assert not c.inputs.get("publishAllPorts") and c.inputs.get("networkMode") in (None, "bridge")
        for p in c.inputs.get("ports") or []:
            assert p["ip"] == "127.0.0.1", (c.name, p)
            published.setdefault(c.name, []).append((int(p["internal"]), int(p["external"])))
    assert published == {
        "local-metabase-metabase": [(3000, 3000)],
        "local-amundsen-neo4j": [(7474, 7474), (7687, 7687)],
        "local-amundsen-elasticsearch": [(9200, 9200)],
        "local-amundsen-amundsenfrontend": [(5000, 5050)],
    }
    assert rec.exports["urls"] == {"metabase": "http://127.0.0.1:3000", "amundsen": "http://127.0.0.1:5050",
                                   "health": "http://127.0.0.1:3000/api/health"}


def test_data_lives_in_named_volumes_never_host_paths(rec):
    volumes = {v.inputs["name"] for v in rec.of_type(VOLUME)}
    assert volumes == {"local-metabase-postgres", "local-amundsen-neo4j", "local-amundsen-es"}
    mounts = {}
    for c in rec.of_type(CONTAINER):
        for m in c.inputs.get("volumes") or []:
            assert "hostPath" not in m and m["volumeName"] in volumes
            mounts[c.name] = (m["volumeName"], m["containerPath"])
    assert mounts == {
        "local-metabase-postgres": ("local-metabase-postgres", "/var/lib/postgresql/data"),
        "local-amundsen-neo4j": ("local-amundsen-neo4j", "/data"),
        "local-amundsen-elasticsearch": ("local-amundsen-es", "/usr/share/elasticsearch/data"),
    }
    for v in rec.of_type(VOLUME):  # each volume exists before the container that mounts it
        users = [c for c in rec.of_type(CONTAINER) if any(m["volumeName"] == v.inputs["name"] for m in c.inputs.get("volumes") or [])]
        assert users and all(v.urn in c.dependencies for c in users)


def test_images_are_pulled_by_the_digest_the_registry_returned(rec):
    pulled = {r.name: r.inputs["name"] for r in rec.of_type(IMAGE)}
    for set_ in (images.METABASE, images.AMUNDSEN):
        for role, ref in set_.images.items():
            if role == "catalog":  # no service container's: stacks/local.py's catalog loader pulls it
                assert f"local-{set_.name}-{role}-image" not in pulled
                continue
            assert pulled[f"local-{set_.name}-{role}-image"] == f"{ref}@{registry_digest(ref)}"
    assert all(r.inputs["keepLocally"] is True for r in rec.of_type(IMAGE))
    by_urn = {r.urn: r for r in rec.of_type(IMAGE)}
    for c in rec.of_type(CONTAINER):  # each container runs the image pulled for its role
        (image,) = [by_urn[d] for d in c.dependencies if d in by_urn]
        assert c.inputs["image"] == image.outputs["imageId"]
    assert rec.exports["images"]["metabase"] == {r: f"{ref}@{registry_digest(ref)}" for r, ref in images.METABASE.images.items()}


def test_the_db_password_is_a_pulumi_secret_nothing_prints(rec):
    (password,) = rec.of_type("random:index/randomPassword:RandomPassword")
    assert password.inputs["special"] is False
    secret = password.outputs["result"]
    assert len(secret) == 32
    pg = rec.get("local-metabase-postgres", CONTAINER)
    mb = rec.get("local-metabase-metabase", CONTAINER)
    assert f"POSTGRES_PASSWORD={secret}" in pg.inputs["envs"] and f"MB_DB_PASS={secret}" in mb.inputs["envs"]
    for c in (pg, mb):
        assert c.has_secret("envs") and secret not in json.dumps(c.redacted_inputs())
    for r in rec.resources:
        if r not in (pg, mb, password):
            assert secret not in repr(r.inputs), r.name
    assert secret not in repr(rec.redacted_exports())


def test_start_order_and_health_as_on_the_vm(rec):
    pg = rec.get("local-metabase-postgres", CONTAINER)
    mb = rec.get("local-metabase-metabase", CONTAINER)
    assert pg.inputs["wait"] is True and pg.inputs["waitTimeout"] == 300  # service_healthy on the VM
    assert pg.urn in mb.dependencies and "wait" not in mb.inputs
    assert pg.inputs["healthcheck"]["tests"] == ["CMD-SHELL", "pg_isready -U metabase -d metabase"]
    assert mb.inputs["healthcheck"]["tests"][1] == f"curl -fsS http://localhost:3000{services.METABASE_HEALTH_PATH} || exit 1"
    assert pg.inputs["networksAdvanced"] == [{"name": "local-metabase", "aliases": ["postgres"]}]
    es = rec.get("local-amundsen-elasticsearch", CONTAINER)
    assert es.inputs["networksAdvanced"] == [{"name": "local-amundsen", "aliases": ["elasticsearch", "es_amundsen"]}]
    assert es.inputs["ulimits"] == [{"name": "nofile", "soft": 65536, "hard": 65536}]
    assert rec.get("local-amundsen-elasticsearch", CONTAINER).urn in rec.get("local-amundsen-amundsensearch", CONTAINER).dependencies
    for c in rec.of_type(CONTAINER):
        labels = {lb["label"]: lb["value"] for lb in c.inputs["labels"]}
        assert labels["env"] == "local" and labels["managed-by"] == "pulumi" and c.inputs["restart"] == "unless-stopped"


@pytest.mark.parametrize("cls,args,field", [
    (LocalMetabase, LocalMetabaseArgs(env="Local"), "env"),
    (LocalMetabase, LocalMetabaseArgs(env="local", port=80), "port"),
    (LocalMetabase, LocalMetabaseArgs(env="local", images=images.AMUNDSEN), "images"),
    (LocalAmundsen, LocalAmundsenArgs(env="local", es_heap_mb=64), "es_heap_mb"),
    (LocalAmundsen, LocalMetabaseArgs(env="local"), "args"),
])
def test_validation_names_the_field(cls, args, field):
    with pytest.raises(ComponentArgsError, match=rf"^{cls.__name__}: {field}: "):
        cls("svc", args)
