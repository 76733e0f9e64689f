"""Stack config: ``stacks/Pulumi.<stack>.yaml`` -> validated :class:`StackConfig` (pure, no Pulumi).

Keys are ``gcp:project`` and ``gcp:region`` (the provider's own) plus our ``flexyboots:``
namespace. Every component can be switched per stack. Values may arrive already parsed (the
plan CLI reads the YAML) or as the strings Pulumi hands a program (``"true"``, JSON objects);
both are accepted. Every refusal is a :class:`StackConfigError` naming the key, e.g.::

    flexyboots:composer.enabled: expected true or false, got 'yes'

Reference (defaults in brackets; ``Pulumi.yaml`` declares the same keys as project config, and
``tests/unit/test_project_config.py`` keeps the two in step)::

    gcp:project                 required, the GCP project id
    gcp:region                  [europe-west1]
    flexyboots:env              [the stack name] names and labels carry it
    flexyboots:location         [EU] BigQuery location of every dataset and transfer config
    flexyboots:protect          [false] deletion protection on archive/dwh, buckets, Composer
    flexyboots:labels           [{}] extra labels on every labelled resource
    flexyboots:apis             {enabled [true]}
    flexyboots:network          {enabled [true], cidr [10.10.0.0/20]}
    flexyboots:datalake         {enabled [true], nearline_after_days [30],
                                 delete_after_days [none: keep], s3: {enabled [false],
                                 region [eu-west-1]}}
    flexyboots:warehouse        {enabled [true], temporary_expiration_days [7]}
    flexyboots:pipelines        {enabled [true], tables_dir [config/tables],
                                 mode [scheduled] (scheduled | orchestrated),
                                 start_time [2025-01-01T02:07:00Z], layer_offset_minutes [10],
                                 failure_email [false]}
    flexyboots:composer         {enabled [false], image_version [composer-3-airflow-2.10.5],
                                 environment_size [none; Composer 2 only],
                                 workloads {scheduler|web_server|worker: {cpu, memory_gb,
                                 storage_gb, min_count, max_count}} (triggerer defaults to
                                 {cpu: 0.5, memory_gb: 1, count: 1}: the DAG tasks are
                                 deferrable), transfer_ids_in_env [true]};
                                 each table's DAG runs on its spec's schedule
    flexyboots:lineage          {data_lineage_api [false]}: enable Google's Data Lineage API
                                 (datalineage.googleapis.com) so BigQuery records the lineage
                                 of every scheduled query natively (needs apis.enabled)
    flexyboots:alerts           {email [none]}: the address Cloud Monitoring e-mails about failed
                                 transfer runs, failed error-severity checks and failed Airflow
                                 tasks (no address: no alerting resources)
    flexyboots:services         {airbyte|metabase|amundsen: {enabled [false], machine_type,
                                 disk_size_gb}; airbyte also low_resource_mode [false];
                                 metabase also bigquery_key [false]: a read-only BigQuery
                                 account + key (Secret Manager only) so Metabase can read dwh;
                                 metabase and amundsen also images [components/images.py's
                                 set]: role -> 'repository:tag', a whole set (every role, each
                                 role's repository; resolved to digests at deploy time)}
    flexyboots:composition      [platform] what the stack builds: platform (GCP, the keys
                                 above) or local (Metabase and Amundsen on the workstation's
                                 Docker; see "The local composition" below)

The local composition (``flexyboots:composition: local``, ``stacks/Pulumi.local.yaml``) needs
no GCP project and no cloud credentials: ``gcp:*`` and the platform's keys are not read (the
project file may hand them to every stack as defaults). It reads::

    flexyboots:env              [the stack name]
    flexyboots:labels           [{}] extra labels on every Docker resource
    flexyboots:pipelines        {tables_dir [config/tables]}: the table specs whose tables,
                                 descriptions and lineage a one-shot container loads into
                                 the local Amundsen (the local runner's names); the
                                 platform's other pipelines keys are accepted and not read
    flexyboots:services         {metabase|amundsen: {enabled [false], images [as above],
                                 port [3000 | 5000]: the host port, on 127.0.0.1}}; airbyte
                                 enabled is refused; the VM-only keys (machine_type,
                                 disk_size_gb, bigquery_key, low_resource_mode) are not read
    docker:host                 (the docker provider's own key) [DOCKER_HOST or the local socket]
"""

from __future__ import annotations

import dataclasses
import ipaddress
import json
import re
from dataclasses import dataclass, field
from typing import Any, Mapping

from components.dag import DEFAULT_TRIGGERER
from components.common import BASE_LABEL_KEYS, ENV, LABEL_KEY, LABEL_VALUE, PROJECT_ID, REGION
from components.images import IMAGE_SETS, ImageSet, image_set_from_tags
from components.services import SERVICE_PORTS

NS = "flexyboots"
MODES = ("scheduled", "orchestrated")
SERVICES = ("airbyte", "metabase", "amundsen")
COMPOSITIONS = ("platform", "local")
#: The services the local composition can run (Airbyte's abctl manages its own cluster).
LOCAL_SERVICES = ("metabase", "amundsen")
#: Service keys that only mean something on a VM.
VM_ONLY_KEYS = ("machine_type", "disk_size_gb", "low_resource_mode", "bigquery_key")

#: Keys of our namespace; any other ``flexyboots:*`` key is refused (typos fail loudly).
TOP_KEYS = (
    "env",
    "location",
    "protect",
    "labels",
    "apis",
    "network",
    "datalake",
    "warehouse",
    "pipelines",
    "composer",
    "services",
    "alerts",
    "lineage",
    "composition",
)

_LOCATION = re.compile(r"^(US|EU|[a-z]+-[a-z]+[0-9]+)$")
_MACHINE = re.compile(r"^[a-z][a-z0-9]*-[a-z0-9-]+$")
_IMAGE = re.compile(r"^composer-(\d+)(\.\d+\.\d+(-preview\.\d+)?)?-airflow-(\d+)(\.\d+(\.\d+)?)?$")
_START = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}Z$")
_PATH = re.compile(r"^[A-Za-z0-9_\-./]+$")
PIPELINES_KEYS = ("enabled", "tables_dir", "mode", "start_time", "layer_offset_minutes", "failure_email")
_EMAIL = re.compile(r"^[A-Za-z0-9._%+\-]+@[A-Za-z0-9.\-]+\.[A-Za-z]{2,}$")

#: Service defaults: what each preset needs to run (Airbyte's abctl wants 4 vCPU / 8 GB unless
#: its low-resource mode is on; Amundsen's neo4j + Elasticsearch want several GB).
SERVICE_DEFAULTS = {
    "airbyte": {"machine_type": "e2-standard-4", "disk_size_gb": 100},
    "metabase": {"machine_type": "e2-medium", "disk_size_gb": 20},
    "amundsen": {"machine_type": "e2-highmem-2", "disk_size_gb": 50},
}
WORKLOAD_PARTS = ("scheduler", "web_server", "worker", "triggerer", "dag_processor")
WORKLOAD_FIELDS = ("cpu", "memory_gb", "storage_gb", "count", "min_count", "max_count")


class StackConfigError(ValueError):
    """A stack config value that cannot be used: names the key and what was expected."""

    def __init__(self, key: str, message: str):
        self.key = key
        self.reason = message
        super().__init__(f"{key}: {message}")


# --------------------------------------------------------------------------- parsed config


@dataclass(frozen=True)
class NetworkConfig:
    enabled: bool = True
    cidr: str = "10.10.0.0/20"


@dataclass(frozen=True)
class DatalakeConfig:
    enabled: bool = True
    nearline_after_days: int | None = 30
    delete_after_days: int | None = None
    s3_enabled: bool = False
    s3_region: str = "eu-west-1"


@dataclass(frozen=True)
class WarehouseConfig:
    enabled: bool = True
    temporary_expiration_days: int = 7


@dataclass(frozen=True)
class PipelinesConfig:
    enabled: bool = True
    tables_dir: str = "config/tables"
    mode: str = "scheduled"
    start_time: str = "2025-01-01T02:07:00Z"
    layer_offset_minutes: int = 10
    failure_email: bool = False


@dataclass(frozen=True)
class ComposerConfig:
    enabled: bool = False
    image_version: str = "composer-3-airflow-2.10.5"
    environment_size: str | None = None
    workloads: Mapping[str, Mapping[str, float]] = field(default_factory=dict)
    transfer_ids_in_env: bool = True

    @property
    def major(self) -> int:
        return int(_IMAGE.match(self.image_version).group(1))


@dataclass(frozen=True)
class AlertsConfig:
    #: who Cloud Monitoring e-mails (None: no alert resources)
    email: str | None = None


@dataclass(frozen=True)
class LineageConfig:
    #: enable datalineage.googleapis.com: BigQuery then records table-level lineage of every job
    data_lineage_api: bool = False


@dataclass(frozen=True)
class ServiceConfig:
    name: str
    enabled: bool = False
    machine_type: str = "e2-standard-2"
    disk_size_gb: int = 20
    low_resource_mode: bool = False  # airbyte only: abctl --low-resource-mode (2 vCPU / 8 GB)
    bigquery_key: bool = False  # metabase only: its read-only BigQuery account and key
    #: metabase and amundsen: the whole image set (tags; digests are resolved at deploy time)
    images: ImageSet | None = None


@dataclass(frozen=True)
class StackConfig:
    project: str
    env: str
    region: str = "europe-west1"
    location: str = "EU"
    protect: bool = False
    labels: Mapping[str, str] = field(default_factory=dict)
    apis_enabled: bool = True
    network: NetworkConfig = field(default_factory=NetworkConfig)
    datalake: DatalakeConfig = field(default_factory=DatalakeConfig)
    warehouse: WarehouseConfig = field(default_factory=WarehouseConfig)
    pipelines: PipelinesConfig = field(default_factory=PipelinesConfig)
    composer: ComposerConfig = field(default_factory=ComposerConfig)
    services: Mapping[str, ServiceConfig] = field(default_factory=dict)
    alerts: AlertsConfig = field(default_factory=AlertsConfig)
    lineage: LineageConfig = field(default_factory=LineageConfig)

    def service(self, name: str) -> ServiceConfig:
        return self.services.get(name) or ServiceConfig(name=name, images=IMAGE_SETS.get(name), **SERVICE_DEFAULTS[name])


@dataclass(frozen=True)
class LocalServiceConfig:
    name: str
    enabled: bool = False
    images: ImageSet | None = None
    port: int = 0


@dataclass(frozen=True)
class LocalConfig:
    """The ``local`` composition: services on the workstation's Docker (no GCP)."""

    env: str
    labels: Mapping[str, str] = field(default_factory=dict)
    services: Mapping[str, LocalServiceConfig] = field(default_factory=dict)
    #: the table specs loaded into the local Amundsen (relative to the project root)
    tables_dir: str = "config/tables"
    composition: str = "local"
    #: no GCP project: the local composition creates nothing in the cloud
    project: str = ""

    def service(self, name: str) -> LocalServiceConfig:
        return self.services[name]


# --------------------------------------------------------------------------- value readers


def _show(v: Any) -> str:
    if v is None:
        return "nothing"
    if isinstance(v, (dict, list)):
        return f"a {'mapping' if isinstance(v, dict) else 'list'}"
    return repr(v)


def _decode(value: Any) -> Any:
    """Pulumi hands a program strings; structured values are JSON. Decode those."""
    if isinstance(value, str) and value[:1] in "{[":
        try:
            return json.loads(value)
        except json.JSONDecodeError:
            return value
    return value


def _bool(key: str, v: Any) -> bool:
    if isinstance(v, bool):
        return v
    if v in ("true", "false"):
        return v == "true"
    raise StackConfigError(key, f"expected true or false, got {_show(v)}")


def _int(key: str, v: Any, lo: int, hi: int) -> int:
    if isinstance(v, str) and re.fullmatch(r"-?\d+", v.strip()):
        v = int(v)
    if isinstance(v, bool) or not isinstance(v, int) or not lo <= v <= hi:
        raise StackConfigError(key, f"expected a whole number from {lo} to {hi}, got {_show(v)}")
    return v


def _num(key: str, v: Any, lo: float, hi: float) -> float:
    if isinstance(v, str):
        try:
            v = float(v)
        except ValueError:
            pass
    if isinstance(v, bool) or not isinstance(v, (int, float)) or not lo <= v <= hi:
        raise StackConfigError(key, f"expected a number from {lo:g} to {hi:g}, got {_show(v)}")
    return v


def _str(key: str, v: Any, pattern: re.Pattern, what: str) -> str:
    if not isinstance(v, str) or not pattern.match(v):
        raise StackConfigError(key, f"expected {what}, got {_show(v)}")
    return v


def _choice(key: str, v: Any, choices: tuple[str, ...]) -> str:
    if v not in choices:
        raise StackConfigError(key, f"expected one of {', '.join(choices)}, got {_show(v)}")
    return v


def _tables_dir(pipelines: Mapping[str, Any]) -> str:
    """``flexyboots:pipelines.tables_dir``: the table specs folder (both compositions read it)."""
    return _str(f"{NS}:pipelines.tables_dir", pipelines.get("tables_dir", "config/tables"), _PATH, "a folder path such as 'config/tables'")


def _mapping(key: str, v: Any, allowed: tuple[str, ...]) -> dict:
    v = _decode(v)
    if v is None:
        return {}
    if not isinstance(v, dict):
        raise StackConfigError(key, f"expected a mapping with keys {', '.join(allowed)}, got {_show(v)}")
    for k in v:
        if k not in allowed:
            raise StackConfigError(f"{key}.{k}", f"unknown key; expected one of {', '.join(allowed)}")
    return v


# --------------------------------------------------------------------------- the parser


def _check_keys(raw: Any) -> None:
    if not isinstance(raw, Mapping):
        raise StackConfigError("config", f"expected a mapping of keys to values, got {_show(raw)}")
    for key in raw:
        if not isinstance(key, str) or ":" not in key:
            raise StackConfigError(str(key), "expected a namespaced key such as 'flexyboots:env' or 'gcp:project'")
        ns, _, name = key.partition(":")
        if ns == NS and name not in TOP_KEYS:
            raise StackConfigError(key, f"unknown key; expected one of {', '.join(f'{NS}:{k}' for k in TOP_KEYS)}")


def _getter(raw: Mapping[str, Any]):
    def get(name: str, default: Any = None) -> Any:
        v = raw.get(f"{NS}:{name}")
        return default if v is None else v

    return get


def composition(raw: Mapping[str, Any]) -> str:
    """Which composition a stack's config asks for (``platform`` unless it says ``local``)."""
    _check_keys(raw)
    return _choice(f"{NS}:composition", _getter(raw)("composition", "platform"), COMPOSITIONS)


def parse_config(raw: Mapping[str, Any], stack: str) -> "StackConfig | LocalConfig":
    """Validate a stack's config for the composition it names (what the program and the plan call)."""
    if composition(raw) == "local":
        return parse_local_config(raw, stack)
    return parse_stack_config(raw, stack)


def _labels(get) -> dict:
    labels = _decode(get("labels", {}))
    if not isinstance(labels, dict):
        raise StackConfigError(f"{NS}:labels", f"expected a mapping of label key to value, got {_show(labels)}")
    for k, v in labels.items():
        if not LABEL_KEY.match(str(k)) or k in BASE_LABEL_KEYS:
            raise StackConfigError(f"{NS}:labels.{k}", "expected a label key (lower-case, 1-63 chars) other than env, component, managed-by")
        if not isinstance(v, str) or not LABEL_VALUE.match(v):
            raise StackConfigError(f"{NS}:labels.{k}", f"expected a label value (0-63 lower-case letters, digits, _ or -), got {_show(v)}")
    return dict(sorted(labels.items()))


def _images(key: str, v: Any, name: str) -> ImageSet:
    """A service's whole image set: components/images.py's, or the stack's tags for every role."""
    default = IMAGE_SETS[name]
    v = _decode(v)
    if v is None or v == dict(default.images):  # components/images.py's own set, as read there
        return default
    if isinstance(v, dict):
        for role in v:
            if role not in default.roles:
                raise StackConfigError(f"{key}.{role}", f"unknown key; expected one of {', '.join(default.roles)}")
    try:
        return image_set_from_tags(v, default, key)
    except ValueError as exc:
        field_name, _, reason = str(exc).partition(": ")
        raise StackConfigError(field_name, f"expected {reason}") from None


def parse_local_config(raw: Mapping[str, Any], stack: str) -> LocalConfig:
    """Validate the config of a ``flexyboots:composition: local`` stack (no GCP keys needed)."""
    _check_keys(raw)
    get = _getter(raw)
    env = _str(f"{NS}:env", get("env", stack), ENV, "1-16 lower-case letters and digits, starting with a letter")
    s = _mapping(f"{NS}:services", get("services"), SERVICES)
    services: dict[str, LocalServiceConfig] = {}
    for name in SERVICES:
        key = f"{NS}:services.{name}"
        if name not in LOCAL_SERVICES:
            spec = _mapping(key, s.get(name), ("enabled",) + VM_ONLY_KEYS)
            if _bool(f"{key}.enabled", spec.get("enabled", False)):
                raise StackConfigError(
                    f"{key}.enabled",
                    "the local composition runs Metabase and Amundsen only; Airbyte's abctl manages its own "
                    "cluster on Docker: run `abctl local install` on the workstation instead",
                )
            continue
        # the VM-only keys are accepted and not read: Pulumi hands every stack the project
        # file's defaults for flexyboots:services, machine types included
        spec = _mapping(key, s.get(name), ("enabled", "images", "port") + VM_ONLY_KEYS)
        services[name] = LocalServiceConfig(
            name=name,
            enabled=_bool(f"{key}.enabled", spec.get("enabled", False)),
            images=_images(f"{key}.images", spec.get("images"), name),
            port=_int(f"{key}.port", spec.get("port", SERVICE_PORTS[name]), 1024, 65535),
        )
    ports = [(svc.port, name) for name, svc in services.items() if svc.enabled]
    if len({p for p, _ in ports}) != len(ports):
        raise StackConfigError(f"{NS}:services.amundsen.port", f"each service needs its own host port, got {ports}")
    p = _mapping(f"{NS}:pipelines", get("pipelines"), PIPELINES_KEYS)
    tables_dir = _tables_dir(p)
    return LocalConfig(env=env, labels=_labels(get), services=services, tables_dir=tables_dir)


def parse_stack_config(raw: Mapping[str, Any], stack: str) -> StackConfig:
    """Validate a stack's config (``{"gcp:project": ..., "flexyboots:composer": {...}}``)."""
    if composition(raw) != "platform":
        raise StackConfigError(f"{NS}:composition", "local: read it with parse_config (the local composition has no GCP platform)")
    get = _getter(raw)

    project = raw.get("gcp:project")
    if project is None:
        raise StackConfigError("gcp:project", "missing; set it with `pulumi config set gcp:project <project-id>`")
    project = _str("gcp:project", project, PROJECT_ID, "a GCP project id (6-30 lower-case letters, digits and hyphens)")
    region = _str("gcp:region", raw.get("gcp:region", "europe-west1"), REGION, "a GCP region such as 'europe-west1'")
    env = _str(f"{NS}:env", get("env", stack), ENV, "1-16 lower-case letters and digits, starting with a letter")
    location = _str(f"{NS}:location", get("location", "EU"), _LOCATION, "a BigQuery location: US, EU or a region such as 'europe-west1'")
    protect = _bool(f"{NS}:protect", get("protect", False))

    labels = _labels(get)

    apis = _mapping(f"{NS}:apis", get("apis"), ("enabled",))
    apis_enabled = _bool(f"{NS}:apis.enabled", apis.get("enabled", True))

    n = _mapping(f"{NS}:network", get("network"), ("enabled", "cidr"))
    network = NetworkConfig(
        enabled=_bool(f"{NS}:network.enabled", n.get("enabled", True)),
        cidr=_cidr(f"{NS}:network.cidr", n.get("cidr", "10.10.0.0/20")),
    )

    d = _mapping(f"{NS}:datalake", get("datalake"), ("enabled", "nearline_after_days", "delete_after_days", "s3"))
    s3 = _mapping(f"{NS}:datalake.s3", d.get("s3"), ("enabled", "region"))
    datalake = DatalakeConfig(
        enabled=_bool(f"{NS}:datalake.enabled", d.get("enabled", True)),
        nearline_after_days=_opt_int(f"{NS}:datalake.nearline_after_days", d.get("nearline_after_days", 30), 1, 3650),
        delete_after_days=_opt_int(f"{NS}:datalake.delete_after_days", d.get("delete_after_days"), 1, 36500),
        s3_enabled=_bool(f"{NS}:datalake.s3.enabled", s3.get("enabled", False)),
        s3_region=_str(f"{NS}:datalake.s3.region", s3.get("region", "eu-west-1"), re.compile(r"^[a-z]{2}(-[a-z]+)+-\d$"), "an AWS region such as 'eu-west-1'"),
    )

    w = _mapping(f"{NS}:warehouse", get("warehouse"), ("enabled", "temporary_expiration_days"))
    warehouse = WarehouseConfig(
        enabled=_bool(f"{NS}:warehouse.enabled", w.get("enabled", True)),
        temporary_expiration_days=_int(f"{NS}:warehouse.temporary_expiration_days", w.get("temporary_expiration_days", 7), 1, 3650),
    )

    p = _mapping(f"{NS}:pipelines", get("pipelines"), PIPELINES_KEYS)
    pipelines = PipelinesConfig(
        enabled=_bool(f"{NS}:pipelines.enabled", p.get("enabled", True)),
        tables_dir=_tables_dir(p),
        mode=_choice(f"{NS}:pipelines.mode", p.get("mode", "scheduled"), MODES),
        start_time=_str(f"{NS}:pipelines.start_time", p.get("start_time", "2025-01-01T02:07:00Z"), _START, "a UTC time such as '2025-01-01T02:07:00Z'"),
        layer_offset_minutes=_int(f"{NS}:pipelines.layer_offset_minutes", p.get("layer_offset_minutes", 10), 1, 720),
        failure_email=_bool(f"{NS}:pipelines.failure_email", p.get("failure_email", False)),
    )

    c = _decode(get("composer"))
    if isinstance(c, dict) and "dag_schedule" in c:
        raise StackConfigError(
            f"{NS}:composer.dag_schedule",
            "is no longer used: each table has its own DAG, on its spec's schedule (phased by flexyboots:pipelines.start_time); remove the key",
        )
    c = _mapping(f"{NS}:composer", c, ("enabled", "image_version", "environment_size", "workloads", "transfer_ids_in_env"))
    image = _str(f"{NS}:composer.image_version", c.get("image_version", "composer-3-airflow-2.10.5"), _IMAGE, "a Composer image such as 'composer-3-airflow-2.10.5'")
    major = int(_IMAGE.match(image).group(1))
    if major < 2:
        raise StackConfigError(f"{NS}:composer.image_version", f"Composer {major} is not supported; expected composer-2-* or composer-3-*")
    size = c.get("environment_size")
    if size is not None:
        size = _choice(f"{NS}:composer.environment_size", size, ("ENVIRONMENT_SIZE_SMALL", "ENVIRONMENT_SIZE_MEDIUM", "ENVIRONMENT_SIZE_LARGE"))
        if major >= 3:
            raise StackConfigError(
                f"{NS}:composer.environment_size",
                f"is a Composer 2 setting; {image} sizes its workloads with flexyboots:composer.workloads instead",
            )
    wl_raw = _mapping(f"{NS}:composer.workloads", c.get("workloads"), WORKLOAD_PARTS)
    workloads: dict[str, dict[str, float]] = {}
    for part, spec in sorted(wl_raw.items()):
        spec = _mapping(f"{NS}:composer.workloads.{part}", spec, WORKLOAD_FIELDS)
        parsed: dict[str, float] = {}
        for k, v in sorted(spec.items()):
            key = f"{NS}:composer.workloads.{part}.{k}"
            parsed[k] = _int(key, v, 0, 100) if k.endswith("count") else _num(key, v, 0.25, 512)
        workloads[part] = parsed
    composer = ComposerConfig(
        enabled=_bool(f"{NS}:composer.enabled", c.get("enabled", False)),
        image_version=image,
        environment_size=size,
        workloads=workloads,
        transfer_ids_in_env=_bool(f"{NS}:composer.transfer_ids_in_env", c.get("transfer_ids_in_env", True)),
    )
    if "triggerer" in workloads and workloads["triggerer"].get("count", 1) < 1:
        raise StackConfigError(
            f"{NS}:composer.workloads.triggerer.count",
            "0, but the DAG tasks are deferrable and wait on Airflow's triggerer; expected 1 or more",
        )
    if composer.enabled and "triggerer" not in workloads:
        composer = dataclasses.replace(composer, workloads={**workloads, "triggerer": dict(DEFAULT_TRIGGERER)})

    a = _mapping(f"{NS}:alerts", get("alerts"), ("email",))
    email = a.get("email")
    if email is not None:
        email = _str(f"{NS}:alerts.email", email, _EMAIL, "an e-mail address such as 'data-team@example.com'")
    alerts = AlertsConfig(email=email)

    ln = _mapping(f"{NS}:lineage", get("lineage"), ("data_lineage_api",))
    lineage = LineageConfig(data_lineage_api=_bool(f"{NS}:lineage.data_lineage_api", ln.get("data_lineage_api", False)))

    s = _mapping(f"{NS}:services", get("services"), SERVICES)
    services: dict[str, ServiceConfig] = {}
    for name in SERVICES:
        extra = {"airbyte": ("low_resource_mode",), "metabase": ("bigquery_key", "images"), "amundsen": ("images",)}.get(name, ())
        allowed = ("enabled", "machine_type", "disk_size_gb") + extra
        if name == "airbyte" and isinstance(_decode(s.get(name)), dict) and "images" in _decode(s.get(name)):
            raise StackConfigError(
                f"{NS}:services.airbyte.images",
                "abctl pulls Airbyte's images itself (inside its kind cluster, by the tags of its Helm chart); "
                "flexyboots cannot pin them (remove the key)",
            )
        spec = _mapping(f"{NS}:services.{name}", s.get(name), allowed)
        dflt = SERVICE_DEFAULTS[name]
        services[name] = ServiceConfig(
            name=name,
            enabled=_bool(f"{NS}:services.{name}.enabled", spec.get("enabled", False)),
            machine_type=_str(f"{NS}:services.{name}.machine_type", spec.get("machine_type", dflt["machine_type"]), _MACHINE, "a machine type such as 'e2-standard-2'"),
            disk_size_gb=_int(f"{NS}:services.{name}.disk_size_gb", spec.get("disk_size_gb", dflt["disk_size_gb"]), 10, 65536),
            low_resource_mode=_bool(f"{NS}:services.{name}.low_resource_mode", spec.get("low_resource_mode", False)),
            bigquery_key=_bool(f"{NS}:services.{name}.bigquery_key", spec.get("bigquery_key", False)),
            images=_images(f"{NS}:services.{name}.images", spec.get("images"), name) if name in IMAGE_SETS else None,
        )

    cfg = StackConfig(
        project=project,
        env=env,
        region=region,
        location=location,
        protect=protect,
        labels=labels,
        apis_enabled=apis_enabled,
        network=network,
        datalake=datalake,
        warehouse=warehouse,
        pipelines=pipelines,
        composer=composer,
        services=services,
        alerts=alerts,
        lineage=lineage,
    )
    _cross_check(cfg)
    return cfg


def _opt_int(key: str, v: Any, lo: int, hi: int) -> int | None:
    return None if v in (None, "none", "null") else _int(key, v, lo, hi)


def _cidr(key: str, v: Any) -> str:
    try:
        net = ipaddress.ip_network(v, strict=True)
    except (TypeError, ValueError):
        raise StackConfigError(key, f"expected an IPv4 range such as '10.10.0.0/20', got {_show(v)}") from None
    if net.version != 4 or not net.is_private:
        raise StackConfigError(key, f"expected a private IPv4 range such as '10.10.0.0/20', got {_show(v)}")
    return str(net)


def _cross_check(cfg: StackConfig) -> None:
    """Combinations that cannot work, refused with the key to change."""
    if cfg.pipelines.enabled and not cfg.warehouse.enabled:
        raise StackConfigError(f"{NS}:pipelines.enabled", "true needs flexyboots:warehouse.enabled: true (pipelines write to its datasets)")
    if cfg.pipelines.enabled and not cfg.datalake.enabled:
        raise StackConfigError(f"{NS}:pipelines.enabled", "true needs flexyboots:datalake.enabled: true (staging loads from the landing bucket)")
    if cfg.pipelines.enabled and cfg.pipelines.mode == "orchestrated" and not cfg.composer.enabled:
        raise StackConfigError(
            f"{NS}:pipelines.mode",
            "'orchestrated' leaves the transfer configs unscheduled; it needs flexyboots:composer.enabled: true (or use mode: scheduled)",
        )
    if cfg.composer.enabled and not cfg.network.enabled:
        raise StackConfigError(f"{NS}:composer.enabled", "true needs flexyboots:network.enabled: true (Composer runs in the platform subnet)")
    for name, svc in cfg.services.items():
        if svc.enabled and not cfg.network.enabled:
            raise StackConfigError(f"{NS}:services.{name}.enabled", "true needs flexyboots:network.enabled: true (VMs run in the platform subnet)")
    dl = cfg.datalake
    if dl.nearline_after_days is not None and dl.delete_after_days is not None and dl.nearline_after_days >= dl.delete_after_days:
        raise StackConfigError(
            f"{NS}:datalake.nearline_after_days",
            f"{dl.nearline_after_days} is not fewer than delete_after_days ({dl.delete_after_days}); set it lower or to null",
        )
    if cfg.lineage.data_lineage_api and not cfg.apis_enabled:
        raise StackConfigError(f"{NS}:lineage.data_lineage_api", "true needs flexyboots:apis.enabled: true (the stack enables the API)")
    if cfg.datalake.s3_enabled and not cfg.datalake.enabled:
        raise StackConfigError(f"{NS}:datalake.s3.enabled", "true needs flexyboots:datalake.enabled: true")


# --------------------------------------------------------------------------- stack files


class _PulumiYamlLoader:
    """A YAML 1.2-ish safe loader: only true/false are booleans (as in Pulumi's Go YAML), so
    ``enabled: yes`` stays the string 'yes' and is refused instead of silently becoming true."""

    _cls = None

    @classmethod
    def get(cls):
        if cls._cls is None:
            import yaml

            class Loader(yaml.SafeLoader):
                pass

            Loader.yaml_implicit_resolvers = {
                k: [(tag, rx) for tag, rx in v if tag != "tag:yaml.org,2002:bool"]
                for k, v in yaml.SafeLoader.yaml_implicit_resolvers.items()
            }
            Loader.add_implicit_resolver(
                "tag:yaml.org,2002:bool", re.compile(r"^(?:true|True|TRUE|false|False|FALSE)$"), list("tTfF")
            )
            cls._cls = Loader
        return cls._cls


SECURE_PLACEHOLDER = "[secure]"


def stack_file(stack: str, stacks_dir: str = "stacks") -> str:
    from pathlib import Path

    return str(Path(stacks_dir) / f"Pulumi.{stack}.yaml")


def available_stacks(stacks_dir: str = "stacks") -> list[str]:
    from pathlib import Path

    return sorted(p.name[len("Pulumi.") : -len(".yaml")] for p in Path(stacks_dir).glob("Pulumi.*.yaml"))


def read_stack_file(stack: str, stacks_dir: str = "stacks") -> tuple[dict[str, Any], list[str]]:
    """The ``config:`` of ``stacks/Pulumi.<stack>.yaml`` and the keys holding ``secure:`` values.

    Encrypted values cannot be decrypted offline; they become ``"[secure]"`` and are listed as
    secret keys so the program treats them as Pulumi secrets.
    """
    import yaml
    from pathlib import Path

    if not re.fullmatch(r"[A-Za-z0-9_.\-]+", stack or ""):
        raise StackConfigError("--stack", f"expected a stack name of letters, digits, _ . -, got {stack!r}")
    path = Path(stack_file(stack, stacks_dir))
    if not path.is_file():
        known = ", ".join(available_stacks(stacks_dir)) or "none"
        raise StackConfigError("--stack", f"unknown stack {stack!r}: {path} does not exist; expected one of: {known}")
    try:
        doc = yaml.load(path.read_text(encoding="utf-8"), Loader=_PulumiYamlLoader.get())
    except yaml.YAMLError as e:
        raise StackConfigError(str(path), f"is not valid YAML: {e}") from None
    if doc is None:
        doc = {}
    if not isinstance(doc, dict):
        raise StackConfigError(str(path), "expected a mapping with a 'config:' key")
    config = doc.get("config") or {}
    if not isinstance(config, dict):
        raise StackConfigError(f"{path}: config", "expected a mapping of keys to values")
    out: dict[str, Any] = {}
    secret_keys: list[str] = []
    for k, v in config.items():
        if isinstance(v, dict) and set(v) == {"secure"}:
            out[k] = SECURE_PLACEHOLDER
            secret_keys.append(k)
        else:
            out[k] = v
    return out, secret_keys
