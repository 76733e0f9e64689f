"""The service definitions (components.services) and their two renderings: the VM's compose
file and the workstation's containers. Both must say the same thing, except where the place
differs (bind mount vs named volume, public service port vs loopback, env file vs Pulumi secret)."""

from __future__ import annotations

import pytest
import yaml

from components import images, services
from components.services import LOOPBACK, Secret

DATA = "/mnt/disks/data"
DEFINITIONS = {"metabase": services.metabase(), "amundsen": services.amundsen()}
D = "sha256:" + "a" * 64


def _compose(defn):
    return yaml.safe_load(services.compose_yaml(defn, data_root=DATA))


@pytest.mark.parametrize("name", sorted(DEFINITIONS))
def test_vm_compose_and_local_containers_say_the_same(name):
    """Image, environment, command, health check, ulimits, container ports and start order:
    one definition, the same on the VM and on the workstation."""
    defn = DEFINITIONS[name].with_images(DEFINITIONS[name].images.pinned({r: D for r in DEFINITIONS[name].images.roles}))
    vm = _compose(defn)["services"]
    local = {lc.container.name: lc for lc in services.local_containers(defn, f"local-{name}")}
    assert list(vm) == list(local) == [c.name for c in defn.containers]
    for cname, svc in vm.items():
        lc = local[cname]
        assert svc["image"] == lc.image and svc["image"].endswith(f"@{D}")
        vm_env = svc.get("environment", {})
        assert list(vm_env) == [k for k, _ in lc.environment]
        for key, value in lc.environment:
            if isinstance(value, Secret):  # the VM's env file vs a Pulumi secret: same variable
                assert vm_env[key] == f"${{{value.name}:?{value.name} is not set}}"
            else:
                assert vm_env[key] == value
        assert svc.get("command", []) == list(lc.container.command)
        h = lc.container.healthcheck
        assert svc.get("healthcheck") == (
            {"test": list(h.test), "interval": h.interval, "timeout": h.timeout, "retries": h.retries} if h else None
        )
        assert svc.get("ulimits", {}) == {n: {"soft": s, "hard": hd} for n, s, hd in lc.container.ulimits}
        assert svc["restart"] == lc.container.restart == "unless-stopped"
        # same container ports, same host ports; only the bind address may differ
        vm_ports = [tuple(int(x) for x in p.split(":")[-2:]) for p in svc.get("ports", [])]
        assert vm_ports == [(host, cport) for cport, host, _ in lc.ports]
        # same data, same places in the container
        assert [v.split(":")[1] for v in svc.get("volumes", [])] == [path for _, path in lc.volumes]
        assert list(svc.get("depends_on", {})) == [d.removeprefix(f"local-{name}-") for d in lc.depends_on]


@pytest.mark.parametrize("name", sorted(DEFINITIONS))
def test_local_containers_bind_loopback_only_and_keep_data_in_named_volumes(name):
    defn = DEFINITIONS[name]
    specs = services.local_containers(defn, f"local-{name}")
    assert specs and all(ip == LOOPBACK for lc in specs for _, _, ip in lc.ports)
    vols = services.local_volume_names(defn, f"local-{name}")
    assert vols and all(docker_name == f"local-{name}-{v}" for v, docker_name in vols.items())
    assert {v for lc in specs for v, _ in lc.volumes} == set(vols.values())
    assert not any(v.startswith("/") for lc in specs for v, _ in lc.volumes)  # named volumes, never host paths


def test_the_vm_publishes_only_the_service_port_beyond_loopback():
    ports = {c: s.get("ports", []) for c, s in _compose(DEFINITIONS["amundsen"])["services"].items()}
    assert ports["amundsenfrontend"] == ["5000:5000"]
    assert ports["neo4j"] == ["127.0.0.1:7474:7474", "127.0.0.1:7687:7687"] and ports["elasticsearch"] == ["127.0.0.1:9200:9200"]
    assert _compose(DEFINITIONS["metabase"])["services"]["metabase"]["ports"] == ["3000:3000"]
    vols = _compose(DEFINITIONS["metabase"])["services"]["postgres"]["volumes"]
    assert vols == [f"{DATA}/metabase/postgres:/var/lib/postgresql/data"]
    assert services.bind_dirs(DEFINITIONS["amundsen"], DATA) == [(f"{DATA}/amundsen/neo4j", None), (f"{DATA}/amundsen/es", "1000:0")]


def test_a_healthy_dependency_is_waited_for_locally_within_its_health_budget():
    specs = {lc.container.name: lc for lc in services.local_containers(DEFINITIONS["metabase"], "local-metabase")}
    assert specs["postgres"].wait and specs["postgres"].wait_timeout_s == 10 * 30
    assert not specs["metabase"].wait and specs["metabase"].depends_on == ("local-metabase-postgres",)
    assert DEFINITIONS["metabase"].secrets == ("MB_DB_PASS",)
    am = {lc.container.name: lc for lc in services.local_containers(DEFINITIONS["amundsen"], "local-amundsen")}
    assert not any(lc.wait for lc in am.values())  # upstream's compose only orders their start
    assert am["elasticsearch"].container.aliases == ("elasticsearch", "es_amundsen")


def test_compose_text_quotes_what_a_yaml_1_1_reader_could_misread():
    text = services.compose_yaml(DEFINITIONS["metabase"], data_root=DATA)
    assert '- "3000:3000"' in text and 'POSTGRES_PASSWORD: "${MB_DB_PASS:?MB_DB_PASS is not set}"' in text
    assert "MB_DB_PORT: '5432'" in text
    am = services.compose_yaml(DEFINITIONS["amundsen"], data_root=DATA)
    assert '- ":5000"' in am and "xpack.security.enabled: 'false'" in am


@pytest.mark.parametrize("build,kwargs,message", [
    (services.metabase, {"db_user": "Robert'); DROP"}, r"^db_user: a lower-case Postgres identifier"),
    (services.metabase, {"port": 80}, r"^port: an integer between 1024 and 65535"),
    (services.metabase, {"images": images.AMUNDSEN}, r"^images: an image set with the roles metabase, postgres"),
    (services.amundsen, {"es_heap_mb": 64}, r"^es_heap_mb: an integer number of MB"),
    (services.amundsen, {"images": {"search": "amundsendev/amundsen-search:2.11.1"}}, r"^images: a whole components.images.ImageSet"),
])
def test_bad_arguments_name_the_field(build, kwargs, message):
    with pytest.raises(services.DefinitionError, match=message):
        build(**kwargs)


def test_a_definition_refuses_what_cannot_start():
    pg = services.Container(name="postgres", role="postgres")
    mb = services.Container(name="metabase", role="metabase", depends_on=(("postgres", "service_healthy"),))
    with pytest.raises(services.DefinitionError, match=r"service_healthy needs a healthcheck on 'postgres'"):
        services.ServiceDefinition(name="metabase", images=images.METABASE, containers=(pg, mb))
    with pytest.raises(services.DefinitionError, match=r"depends_on: a container defined before it"):
        services.ServiceDefinition(name="metabase", images=images.METABASE, containers=(mb, pg))
    with pytest.raises(services.DefinitionError, match=r"role: one of the image set's roles metabase, postgres"):
        services.ServiceDefinition(name="metabase", images=images.METABASE, containers=(services.Container("x", "redis"),))
    with pytest.raises(services.DefinitionError, match=r"extra_volumes: containers of metabase \(unknown nginx\)"):
        services.compose(DEFINITIONS["metabase"], data_root=DATA, extra_volumes={"nginx": ["/a:/b"]})
