"""One definition per hosted service, for both places it runs (pure, no Pulumi import).

A :class:`ServiceDefinition` says what a service is: its containers, the image role each runs
(from one whole :class:`~components.images.ImageSet`), environment, command, ports, data
volumes, health checks, start order and ulimits. Two renderings come from the same object, so
the VM and the workstation cannot drift apart:

* the VM (``components.startup_scripts``): :func:`compose` / :func:`compose_yaml`, the compose
  file its startup script writes. Data volumes are bind mounts under ``<data_root>/<service>/
  <volume>`` (the persistent data disk); a port marked ``public_on_vm`` is published on all
  interfaces (the IAP firewall admits the service port), every other port on 127.0.0.1 only;
  a secret variable is compose interpolation ``${NAME:?...}`` from the env file the script
  writes at boot.
* the workstation (``components.local_services``, the ``local`` stack): :func:`local_containers`,
  one :class:`LocalContainer` per container, declared as a ``docker.Container``. Every port on
  127.0.0.1 only; data volumes are named Docker volumes ``<prefix>-<volume>``; a secret
  variable's value is a Pulumi secret; ``condition: service_healthy`` becomes ``wait`` on the
  container waited for (the provider waits until it is healthy before creating the next).

API (stable)::

    ServiceDefinition(name, images, containers, network=None, public_port=None,
                      health_path="", host_sysctls={})
        .image(container) -> str       the reference a container runs (its role in the set)
        .with_images(images)           the same definition on another set (same roles)
        .secrets -> tuple[str, ...]    the secret variables it needs (e.g. ``MB_DB_PASS``)
    Container(name, role, environment=(), command=(), ports=(), volumes=(), healthcheck=None,
              depends_on=(), ulimits=(), container_name=None, restart="unless-stopped")
    Port(container, host, public_on_vm=False), Volume(name, path, owner=None),
    Healthcheck(test, interval, timeout, retries), Secret(name)
    metabase(*, db_name="metabase", db_user="metabase", images=images.METABASE, port=3000)
    amundsen(*, port=5000, es_heap_mb=1024, neo4j_heap_mb=1024, images=images.AMUNDSEN)
    compose(defn, *, data_root, extra_volumes=None) -> dict
    compose_yaml(defn, *, data_root, extra_volumes=None) -> str
    bind_dirs(defn, data_root) -> list[(host directory, owner or None)]
    local_containers(defn, prefix) -> list[LocalContainer]
    local_volume_names(defn, prefix) -> dict[volume name, Docker volume name]
    DefinitionError(ValueError)        "<field>: <what was expected> (got ...)"

Constants: ``METABASE_HEALTH_PATH``, ``SERVICE_PORTS``, ``MAX_MAP_COUNT``, ``LOOPBACK``.

Extending a service: one more container is one more :class:`Container` in its function (an
ingestion job that runs once, e.g. Amundsen's databuilder, can be a container with
``restart="no"``); a periodic job on the VM (a systemd timer) belongs to its startup script in
``components.startup_scripts``, next to ``docker compose up``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field, replace
from typing import Any, Mapping, Optional, Sequence, Union

import yaml

from components import images as image_sets
from components.images import ImageSet, check_image_set

METABASE_HEALTH_PATH = "/api/health"
#: The TCP port each service listens on (what the IAP firewall must admit on the VMs).
SERVICE_PORTS = {"airbyte": 8000, "metabase": 3000, "amundsen": 5000}
MAX_MAP_COUNT = 262144
LOOPBACK = "127.0.0.1"
CONDITIONS = ("service_started", "service_healthy")

_NAME = re.compile(r"^[a-z][a-z0-9_-]{0,62}$")
_ENV_KEY = re.compile(r"^[A-Za-z_][A-Za-z0-9_.]*$")
_PG_IDENT = re.compile(r"^[a-z_][a-z0-9_]{0,62}$")
_DURATION = re.compile(r"^(\d+)s$")


class DefinitionError(ValueError):
    """A service definition that cannot be rendered: ``<field>: <what was expected>``."""


@dataclass(frozen=True)
class Secret:
    """An environment value that is a secret: ``name`` is the variable that carries it."""

    name: str


@dataclass(frozen=True)
class Port:
    container: int
    host: int
    #: on the VM, published on all interfaces (the service port behind IAP); else loopback
    public_on_vm: bool = False


@dataclass(frozen=True)
class Volume:
    """Data that must outlive the container: ``name`` names it, ``path`` is inside the container."""

    name: str
    path: str
    #: owner of the VM's bind-mount directory (a named volume takes the image's ownership)
    owner: Optional[str] = None


@dataclass(frozen=True)
class Healthcheck:
    test: tuple[str, ...]
    interval: str
    timeout: str
    retries: int

    @property
    def budget_s(self) -> int:
        """How long Docker keeps trying before it calls the container unhealthy."""
        return _seconds(self.interval) * self.retries


@dataclass(frozen=True)
class Container:
    name: str
    role: str
    environment: tuple[tuple[str, Union[str, Secret]], ...] = ()
    command: tuple[str, ...] = ()
    ports: tuple[Port, ...] = ()
    volumes: tuple[Volume, ...] = ()
    healthcheck: Optional[Healthcheck] = None
    #: (container, "service_started" | "service_healthy"), in start order
    depends_on: tuple[tuple[str, str], ...] = ()
    #: (name, soft, hard)
    ulimits: tuple[tuple[str, int, int], ...] = ()
    #: a fixed container name other containers reach it by (upstream's compose sets some)
    container_name: Optional[str] = None
    restart: str = "unless-stopped"

    @property
    def aliases(self) -> tuple[str, ...]:
        """The names other containers reach it by on the service's network."""
        return tuple(dict.fromkeys(n for n in (self.name, self.container_name) if n))


@dataclass(frozen=True)
class ServiceDefinition:
    name: str
    images: ImageSet
    containers: tuple[Container, ...]
    #: a named network (upstream's layout); None: compose's default network
    network: Optional[str] = None
    #: the host port users reach the service on, and the path that answers when it is up
    public_port: Optional[int] = None
    health_path: str = ""
    #: kernel settings the host must have (set by the VM's script; on a workstation, by you)
    host_sysctls: Mapping[str, int] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if not _NAME.match(self.name):
            raise DefinitionError(f"name: a lower-case service name (got {self.name!r})")
        seen: set[str] = set()
        for c in self.containers:
            where = f"containers[{c.name!r}]"
            if not _NAME.match(c.name) or c.name in seen:
                raise DefinitionError(f"{where}: a unique lower-case container name")
            if c.role not in self.images.roles:
                raise DefinitionError(f"{where}.role: one of the image set's roles {', '.join(self.images.roles)} (got {c.role!r})")
            for key, _ in c.environment:
                if not _ENV_KEY.match(key):
                    raise DefinitionError(f"{where}.environment: a variable name (got {key!r})")
            for dep, condition in c.depends_on:
                if dep not in seen:
                    raise DefinitionError(f"{where}.depends_on: a container defined before it (got {dep!r})")
                if condition not in CONDITIONS:
                    raise DefinitionError(f"{where}.depends_on[{dep!r}]: one of {', '.join(CONDITIONS)} (got {condition!r})")
                if condition == "service_healthy" and self.container(dep).healthcheck is None:
                    raise DefinitionError(f"{where}.depends_on[{dep!r}]: service_healthy needs a healthcheck on {dep!r}")
            seen.add(c.name)

    def container(self, name: str) -> Container:
        for c in self.containers:
            if c.name == name:
                return c
        raise KeyError(name)

    def image(self, container: Container) -> str:
        return self.images.images[container.role]

    def with_images(self, images: ImageSet) -> "ServiceDefinition":
        return replace(self, images=_image_set(images, self.images))

    @property
    def secrets(self) -> tuple[str, ...]:
        return tuple(dict.fromkeys(v.name for c in self.containers for _, v in c.environment if isinstance(v, Secret)))

    @property
    def volumes(self) -> tuple[Volume, ...]:
        return tuple(v for c in self.containers for v in c.volumes)


# ------------------------------------------------------------------------------------------ checks


def _seconds(duration: str) -> int:
    m = _DURATION.match(duration)
    if not m:
        raise DefinitionError(f"healthcheck: a duration in seconds such as '10s' (got {duration!r})")
    return int(m.group(1))


def _check_port(port: Any, field_name: str = "port") -> int:
    if isinstance(port, bool) or not isinstance(port, int) or not 1024 <= port <= 65535:
        raise DefinitionError(f"{field_name}: an integer between 1024 and 65535 (got {port!r})")
    return port


def _check_ident(field_name: str, value: Any) -> str:
    if not isinstance(value, str) or not _PG_IDENT.match(value):
        raise DefinitionError(f"{field_name}: a lower-case Postgres identifier (got {value!r})")
    return value


def _check_heap(field_name: str, value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not 256 <= value <= 65536:
        raise DefinitionError(f"{field_name}: an integer number of MB between 256 and 65536 (got {value!r})")
    return value


def _image_set(value: Any, expected: ImageSet) -> ImageSet:
    try:
        return check_image_set(value, expected)
    except ValueError as exc:
        raise DefinitionError(str(exc)) from None


# ------------------------------------------------------------------------------------------ services


def metabase(
    *, db_name: str = "metabase", db_user: str = "metabase", images: ImageSet = image_sets.METABASE,
    port: int = SERVICE_PORTS["metabase"],
) -> ServiceDefinition:
    """Metabase on a Postgres application database (``MB_DB_*``; never H2). The DB password is
    the secret ``MB_DB_PASS`` (both containers read it)."""
    _check_ident("db_name", db_name)
    _check_ident("db_user", db_user)
    _check_port(port)
    password = Secret("MB_DB_PASS")
    return ServiceDefinition(
        name="metabase",
        images=_image_set(images, image_sets.METABASE),
        containers=(
            Container(
                name="postgres",
                role="postgres",
                environment=(("POSTGRES_DB", db_name), ("POSTGRES_USER", db_user), ("POSTGRES_PASSWORD", password)),
                volumes=(Volume("postgres", "/var/lib/postgresql/data"),),
                healthcheck=Healthcheck(("CMD-SHELL", f"pg_isready -U {db_user} -d {db_name}"), "10s", "5s", 30),
            ),
            Container(
                name="metabase",
                role="metabase",
                environment=(
                    ("MB_DB_TYPE", "postgres"),
                    ("MB_DB_DBNAME", db_name),
                    ("MB_DB_PORT", "5432"),
                    ("MB_DB_USER", db_user),
                    ("MB_DB_PASS", password),
                    ("MB_DB_HOST", "postgres"),
                ),
                ports=(Port(3000, port, public_on_vm=True),),
                healthcheck=Healthcheck(
                    ("CMD-SHELL", f"curl -fsS http://localhost:3000{METABASE_HEALTH_PATH} || exit 1"), "30s", "5s", 20
                ),
                depends_on=(("postgres", "service_healthy"),),
            ),
        ),
        public_port=port,
        health_path=METABASE_HEALTH_PATH,
    )


def amundsen(
    *, port: int = SERVICE_PORTS["amundsen"], es_heap_mb: int = 1024, neo4j_heap_mb: int = 1024,
    images: ImageSet = image_sets.AMUNDSEN,
) -> ServiceDefinition:
    """neo4j, Elasticsearch, search, metadata and frontend, in the layout of the amundsen
    repository's ``docker-amundsen.yml`` (its service and container names, environment and
    commands); neo4j and Elasticsearch published on 127.0.0.1 only, heaps bounded."""
    _check_port(port)
    _check_heap("es_heap_mb", es_heap_mb)
    _check_heap("neo4j_heap_mb", neo4j_heap_mb)
    return ServiceDefinition(
        name="amundsen",
        images=_image_set(images, image_sets.AMUNDSEN),
        network="amundsennet",
        containers=(
            Container(
                name="neo4j",
                role="neo4j",
                container_name="neo4j_amundsen",
                environment=(
                    ("NEO4J_AUTH", "neo4j/test"),
                    ("NEO4J_dbms_memory_heap_max__size", f"{neo4j_heap_mb}M"),
                    ("NEO4J_dbms_memory_pagecache_size", "512M"),
                ),
                ulimits=(("nofile", 40000, 40000),),
                ports=(Port(7474, 7474), Port(7687, 7687)),
                volumes=(Volume("neo4j", "/data"),),
            ),
            Container(
                name="elasticsearch",
                role="elasticsearch",
                container_name="es_amundsen",
                environment=(
                    ("discovery.type", "single-node"),
                    ("xpack.security.enabled", "false"),
                    ("ES_JAVA_OPTS", f"-Xms{es_heap_mb}m -Xmx{es_heap_mb}m"),
                ),
                ulimits=(("nofile", 65536, 65536),),
                ports=(Port(9200, 9200),),
                volumes=(Volume("es", "/usr/share/elasticsearch/data", owner="1000:0"),),
            ),
            Container(
                name="amundsensearch",
                role="search",
                container_name="amundsensearch",
                environment=(("PROXY_ENDPOINT", "es_amundsen"),),
                command=("gunicorn", "-w", "2", "--bind", ":5000", "search_service.search_wsgi"),
                depends_on=(("elasticsearch", "service_started"),),
            ),
            Container(
                name="amundsenmetadata",
                role="metadata",
                container_name="amundsenmetadata",
                environment=(("PROXY_HOST", "bolt://neo4j_amundsen"),),
                command=("gunicorn", "-w", "2", "--bind", ":5000", "metadata_service.metadata_wsgi"),
                depends_on=(("neo4j", "service_started"),),
            ),
            Container(
                name="amundsenfrontend",
                role="frontend",
                container_name="amundsenfrontend",
                environment=(
                    ("SEARCHSERVICE_BASE", "http://amundsensearch:5000"),
                    ("METADATASERVICE_BASE", "http://amundsenmetadata:5000"),
                    ("FRONTEND_SVC_CONFIG_MODULE_CLASS", "amundsen_application.config.TestConfig"),
                ),
                command=("gunicorn", "-w", "2", "--bind", ":5000", "amundsen_application.wsgi"),
                ports=(Port(5000, port, public_on_vm=True),),
                depends_on=(("amundsenmetadata", "service_started"), ("amundsensearch", "service_started")),
            ),
        ),
        public_port=port,
        health_path="",
        host_sysctls={"vm.max_map_count": MAX_MAP_COUNT},
    )


# ------------------------------------------------------------------------------------------ the VM


def _interpolation(name: str) -> str:
    return f"${{{name}:?{name} is not set}}"


def bind_dirs(defn: ServiceDefinition, data_root: str) -> list[tuple[str, Optional[str]]]:
    """The VM's bind-mount directories on the data disk, with the owner each needs."""
    return [(f"{data_root}/{defn.name}/{v.name}", v.owner) for v in defn.volumes]


def compose(
    defn: ServiceDefinition, *, data_root: str, extra_volumes: Optional[Mapping[str, Sequence[str]]] = None,
) -> dict:
    """The compose document for the VM. ``extra_volumes``: container -> more ``volumes``
    entries (VM-only mounts such as Metabase's BigQuery key)."""
    extra = dict(extra_volumes or {})
    unknown = sorted(set(extra) - {c.name for c in defn.containers})
    if unknown:
        raise DefinitionError(f"extra_volumes: containers of {defn.name} (unknown {', '.join(unknown)})")
    services: dict[str, dict] = {}
    for c in defn.containers:
        svc: dict[str, Any] = {"image": defn.image(c)}
        if c.container_name:
            svc["container_name"] = c.container_name
        svc["restart"] = c.restart
        if c.depends_on:
            svc["depends_on"] = {dep: {"condition": cond} for dep, cond in c.depends_on}
        if c.environment:
            svc["environment"] = {k: _interpolation(v.name) if isinstance(v, Secret) else v for k, v in c.environment}
        if c.command:
            svc["command"] = list(c.command)
        if c.ulimits:
            svc["ulimits"] = {n: {"soft": soft, "hard": hard} for n, soft, hard in c.ulimits}
        if c.ports:
            svc["ports"] = [f"{p.host}:{p.container}" if p.public_on_vm else f"{LOOPBACK}:{p.host}:{p.container}" for p in c.ports]
        volumes = [f"{data_root}/{defn.name}/{v.name}:{v.path}" for v in c.volumes] + list(extra.get(c.name, ()))
        if volumes:
            svc["volumes"] = volumes
        if c.healthcheck:
            h = c.healthcheck
            svc["healthcheck"] = {"test": list(h.test), "interval": h.interval, "timeout": h.timeout, "retries": h.retries}
        if defn.network:
            svc["networks"] = [defn.network]
        services[c.name] = svc
    doc: dict[str, Any] = {"name": defn.name, "services": services}
    if defn.network:
        doc["networks"] = {defn.network: {}}
    return doc


class _ComposeDumper(yaml.SafeDumper):
    """Double-quotes every string holding a YAML indicator (``3000:3000``, ``:5000``,
    ``${VAR:?...}``, ``image@sha256:...``): no reader (YAML 1.1 or 1.2) can take it for
    anything but that string."""


def _represent_str(dumper: yaml.SafeDumper, value: str):
    if _INDICATOR.search(value) or value[:1] in ("-", " ", "") or value[-1:] == " ":
        return dumper.represent_scalar("tag:yaml.org,2002:str", value, style='"')
    return dumper.represent_str(value)


_INDICATOR = re.compile(r"[:${}\[\],&*#?|<>=!%@`'\"]")
_ComposeDumper.add_representer(str, _represent_str)


def compose_yaml(
    defn: ServiceDefinition, *, data_root: str, extra_volumes: Optional[Mapping[str, Sequence[str]]] = None,
) -> str:
    doc = compose(defn, data_root=data_root, extra_volumes=extra_volumes)
    return yaml.dump(doc, Dumper=_ComposeDumper, sort_keys=False, default_flow_style=False, width=1000)


# ------------------------------------------------------------------------------------------ the workstation


@dataclass(frozen=True)
class LocalContainer:
    """What ``components.local_services`` declares as one ``docker.Container``."""

    container: Container
    #: the Docker container name
    name: str
    image: str
    #: (variable, value); a :class:`Secret` value is filled with a Pulumi secret
    environment: tuple[tuple[str, Union[str, Secret]], ...]
    #: (container port, host port, host address): always loopback
    ports: tuple[tuple[int, int, str], ...]
    #: (Docker volume name, path in the container)
    volumes: tuple[tuple[str, str], ...]
    #: the containers (Docker names) created before it
    depends_on: tuple[str, ...]
    #: a later container waits for this one to be healthy: create it with ``wait``
    wait: bool
    wait_timeout_s: int


def local_volume_names(defn: ServiceDefinition, prefix: str) -> dict[str, str]:
    return {v.name: f"{prefix}-{v.name}" for v in defn.volumes}


def local_containers(defn: ServiceDefinition, prefix: str) -> list[LocalContainer]:
    """One :class:`LocalContainer` per container of ``defn``, in start order."""
    if not _NAME.match(prefix):
        raise DefinitionError(f"prefix: a lower-case name prefix such as 'local-metabase' (got {prefix!r})")
    volumes = local_volume_names(defn, prefix)
    waited_for = {dep for c in defn.containers for dep, cond in c.depends_on if cond == "service_healthy"}
    out = []
    for c in defn.containers:
        waits = c.name in waited_for
        out.append(
            LocalContainer(
                container=c,
                name=f"{prefix}-{c.name}",
                image=defn.image(c),
                environment=c.environment,
                ports=tuple((p.container, p.host, LOOPBACK) for p in c.ports),
                volumes=tuple((volumes[v.name], v.path) for v in c.volumes),
                depends_on=tuple(f"{prefix}-{dep}" for dep, _ in c.depends_on),
                wait=waits,
                wait_timeout_s=c.healthcheck.budget_s if waits and c.healthcheck else 0,
            )
        )
    return out
