"""``ServiceVm`` and its presets ``Airbyte``, ``Metabase``, ``Amundsen``: one containerized service
on one Compute Engine VM.

API (stable)::

    ServiceVm(name: str, args: ServiceVmArgs, opts: pulumi.ResourceOptions | None = None)
    Airbyte(name: str, args: AirbyteArgs, opts=None)      # type flexyboots:service_vm:Airbyte
    Metabase(name: str, args: MetabaseArgs, opts=None)    # type flexyboots:service_vm:Metabase
    Amundsen(name: str, args: AmundsenArgs, opts=None)    # type flexyboots:service_vm:Amundsen

``ServiceVmArgs``
    ``env: str``, ``project: str``, ``zone: str`` (e.g. ``"europe-west1-b"``)
    ``subnetwork: Input[str]``                  ``Network.subnet_self_link`` (or id)
    ``service: str = "service"``                short name; service account id ``<env>-<service>`` (6-30 chars)
    ``machine_type: str = "e2-standard-2"``     known type or ``custom-N-M`` (see ``components.render``)
    ``image: str = "debian-cloud/debian-12"``   boot image (the startup scripts target Debian 12)
    ``boot_disk_gb: int = 20``
    ``data_disk_gb: int = 50``, ``data_disk_type: str = "pd-balanced"``
    ``protect_data_disk: bool = False``         ``protect=True`` on the data disk
    ``external_ip: bool = False``               no access config (no public IP) unless True
    ``network_tags: Sequence[str] = ()``        give ``Network.iap_tag`` so the IAP firewall admits it
    ``startup_script: str = ""``                (plain ServiceVm only; presets render their own)
    ``service_port: int | None = None``
    ``project_roles: Sequence[str] = ("roles/logging.logWriter", "roles/monitoring.metricWriter")``
                                                project-level roles of the VM's service account,
                                                limited to ``ALLOWED_PROJECT_ROLES``
    ``extra_labels: dict | None = None``
    ``depends_on: Sequence[pulumi.Resource] = ()``  e.g. the compute / iam / secretmanager API Services

``AirbyteArgs(ServiceVmArgs)``: ``service="airbyte"``, ``machine_type="e2-standard-4"``,
``data_disk_gb=100``, ``landing_bucket: Input[str]`` (required), ``staging_dataset_id:
Input[str]`` (required), ``low_resource_mode: bool = False``. Needs 4 vCPU / 8 GB, or 2 vCPU /
8 GB with ``low_resource_mode``. Grants: ``roles/storage.objectAdmin`` on the landing bucket,
``roles/bigquery.dataEditor`` on the staging dataset, project ``roles/bigquery.jobUser``.

``MetabaseArgs(ServiceVmArgs)``: ``service="metabase"``, ``machine_type="e2-medium"``,
``dwh_dataset_id: Input[str]`` (required), ``db_name="metabase"``, ``db_user="metabase"``,
``images: ImageSet = components.images.METABASE`` (a whole set), ``bigquery_key: bool = False``.
Needs 2 vCPU / 4 GB. Creates a ``random.RandomPassword``, a Secret Manager ``Secret`` +
``SecretVersion`` holding it, ``roles/secretmanager.secretAccessor`` for the VM on that secret
only; the VM reads it at boot. The VM's own account gets no BigQuery role: Metabase's BigQuery
driver authenticates with a service-account key file only, so it could not use them.
With ``bigquery_key=True`` (the one way Metabase reads the DWH): a dedicated read-only account
``<env>-metabase-bq`` (``roles/bigquery.dataViewer`` on the dwh dataset, project
``roles/bigquery.jobUser``, nothing else), one ``serviceaccount.Key`` for it, its JSON stored
only in a Secret Manager secret ``<prefix>-bigquery-reader-key`` (a Pulumi secret everywhere,
never in plan output) that only the VM may read; the VM reads it at boot into tmpfs and mounts
it read-only into the Metabase container (``startup_scripts.METABASE_BIGQUERY_KEY_PATH``).
Rotate with ``pulumi up --replace <the key's URN>``; turn it off and the key, secret and
account are deleted.

``AmundsenArgs(ServiceVmArgs)``: ``service="amundsen"``, ``machine_type="e2-highmem-2"``,
``metadata_dataset_ids: Mapping[str, Input[str]]`` (layer -> dataset id, required, non-empty),
``es_heap_mb=1024``, ``neo4j_heap_mb=1024``. Needs at least 8 GB memory. Grants
``roles/bigquery.metadataViewer`` on each of those datasets (dataset-level only). With
``catalog_document`` (``components.catalog.encode_document``; the stack renders it from the
specs) the VM also runs the catalog job on a systemd timer (``catalog_schedule="hourly"``):
the document goes to the instance metadata key ``flexyboots-catalog`` (updated in place), and
the account gets ``roles/bigquery.jobUser`` and ``roles/bigquery.dataViewer`` on the one table
``check_results_table`` = (dataset id, table id).

Images by digest: Metabase and Amundsen resolve their image set to content digests when the
program runs (``components.image_digests``: pulumi-docker's ``get_registry_image`` through a
child ``docker.Provider`` ``<prefix>-registry`` that needs no Docker daemon), and their compose
files name every image ``repository:tag@sha256:...``. A tag that moves (or a changed
``images``) changes the startup script, so the preview shows the old and the new digest and
the VM is replaced (its data disk kept). Airbyte's ``abctl`` pulls Airbyte's images itself
(inside its kind cluster, by its Helm chart's tags): nothing of ours to pin there.

Outputs (all): ``service_account``, ``service_account_email``, ``instance``, ``instance_name``,
``internal_ip``, ``external_ip_enabled: bool``, ``data_disk``, ``data_disk_protected: bool``,
``network_tags``, ``zone``, ``service_port``, ``startup_script`` (``str``, or an ``Output[str]``
once images are pinned), ``images`` (``Output[ImageSet]``, pinned; None without images),
``pinned_images`` (``Output``: role -> ``repository:tag@sha256:...``; None). Metabase adds
``health_check_path`` (``"/api/health"``), ``db_password_secret`` / ``db_password_secret_id``,
and with ``bigquery_key`` ``bigquery_reader_email`` / ``bigquery_key_secret_id`` (None without);
Airbyte adds ``low_resource_mode``. Amundsen takes ``images: ImageSet = components.images.AMUNDSEN``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any, Mapping, Optional, Sequence

import pulumi
import pulumi_gcp as gcp

from components import image_digests, startup_scripts
from components import images as image_sets
from components.common import PROJECT_ID, ComponentArgsError, labels, require_env, require_label_map
from components.images import ImageSet
from components.render import check_machine_minimum, machine_shape, prefixed, service_account_id

#: The only roles a service VM's account may hold at project level.
ALLOWED_PROJECT_ROLES = frozenset({"roles/logging.logWriter", "roles/monitoring.metricWriter", "roles/bigquery.jobUser"})
DEFAULT_PROJECT_ROLES = ("roles/logging.logWriter", "roles/monitoring.metricWriter")
DATA_DEVICE = "data"
CLOUD_PLATFORM_SCOPE = "https://www.googleapis.com/auth/cloud-platform"

_ZONE = re.compile(r"^[a-z]+-[a-z]+[0-9]+-[a-z]$")
_TAG = re.compile(r"^[a-z]([a-z0-9-]{0,61}[a-z0-9])?$")
_DISK_TYPES = ("pd-standard", "pd-balanced", "pd-ssd", "hyperdisk-balanced")


@dataclass
class ServiceVmArgs:
    env: str
    project: str
    zone: str
    subnetwork: Any
    service: str = "service"
    machine_type: str = "e2-standard-2"
    image: str = "debian-cloud/debian-12"
    boot_disk_gb: int = 20
    data_disk_gb: int = 50
    data_disk_type: str = "pd-balanced"
    protect_data_disk: bool = False
    external_ip: bool = False
    network_tags: Sequence[str] = ()
    startup_script: str = ""
    service_port: Optional[int] = None
    project_roles: Sequence[str] = DEFAULT_PROJECT_ROLES
    extra_labels: Optional[dict] = None
    depends_on: Sequence[pulumi.Resource] = ()


@dataclass
class AirbyteArgs(ServiceVmArgs):
    service: str = "airbyte"
    machine_type: str = "e2-standard-4"
    data_disk_gb: int = 100
    service_port: Optional[int] = startup_scripts.SERVICE_PORTS["airbyte"]
    landing_bucket: Any = None
    staging_dataset_id: Any = None
    low_resource_mode: bool = False


@dataclass
class MetabaseArgs(ServiceVmArgs):
    service: str = "metabase"
    machine_type: str = "e2-medium"
    data_disk_gb: int = 20
    service_port: Optional[int] = startup_scripts.SERVICE_PORTS["metabase"]
    dwh_dataset_id: Any = None
    db_name: str = "metabase"
    db_user: str = "metabase"
    images: ImageSet = image_sets.METABASE
    #: create the read-only BigQuery account and its key (Secret Manager only) for Metabase
    bigquery_key: bool = False


@dataclass
class AmundsenArgs(ServiceVmArgs):
    service: str = "amundsen"
    machine_type: str = "e2-highmem-2"
    data_disk_gb: int = 50
    service_port: Optional[int] = startup_scripts.SERVICE_PORTS["amundsen"]
    metadata_dataset_ids: Mapping[str, Any] = field(default_factory=dict)
    es_heap_mb: int = 1024
    neo4j_heap_mb: int = 1024
    images: ImageSet = image_sets.AMUNDSEN
    #: the catalog job's document (components.catalog.encode_document), or None: no catalog job
    catalog_document: Optional[str] = None
    #: (dataset id, table id) of quality.check_results: the job reads the latest results
    check_results_table: Optional[tuple] = None
    catalog_schedule: str = "hourly"


def _positive(component: str, fname: str, value: Any, minimum: int = 1) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise ComponentArgsError(component, fname, f"an integer of at least {minimum}", value)


class ServiceVm(pulumi.ComponentResource):
    """A Compute Engine VM running one service; see the module docstring."""

    TYPE = "flexyboots:service_vm:ServiceVm"
    ARGS: type = ServiceVmArgs
    COMPONENT = "ServiceVm"
    MIN_VCPUS: float = 1
    MIN_MEMORY_GB: float = 1

    def __init__(self, name: str, args: ServiceVmArgs, opts: Optional[pulumi.ResourceOptions] = None) -> None:
        if type(args) is not self.ARGS:
            raise ComponentArgsError(self.COMPONENT, "args", f"a {self.ARGS.__name__}", type(args).__name__)
        self._validate(args)
        prefix = prefixed(args.env, name)
        account_id = service_account_id(args.env, args.service, self.COMPONENT)
        images = self._image_set(args)
        try:  # rendered once with the tags now, so a bad argument fails before any resource
            script = self._startup_script(prefix, args, images)
        except ComponentArgsError:
            raise
        except ValueError as exc:  # the pure renderer names the field
            raise ComponentArgsError(self.COMPONENT, "args", str(exc).removeprefix("startup_scripts: ")) from None
        lbls = labels(args.env, args.service, args.extra_labels)
        super().__init__(self.TYPE, name, None, opts)
        child = pulumi.ResourceOptions(parent=self, depends_on=list(args.depends_on))

        # every image the VM runs, by content digest (resolved now; the script names no tag alone)
        self.images = self.pinned_images = self.registry = None
        if images is not None:
            self.registry = image_digests.registry_provider(f"{prefix}-registry", opts=pulumi.ResourceOptions(parent=self))
            self.images = image_digests.resolve(images, provider=self.registry, parent=self)
            self.pinned_images = self.images.apply(lambda pinned: dict(pinned.images))
            script = self.images.apply(lambda pinned: self._startup_script(prefix, args, pinned))

        self.zone = args.zone
        self.service_port = args.service_port
        self.network_tags = list(args.network_tags)
        self.external_ip_enabled = bool(args.external_ip)
        self.data_disk_protected = bool(args.protect_data_disk)
        self.startup_script = script
        self._extra_outputs: dict[str, Any] = {}

        self.service_account = gcp.serviceaccount.Account(
            f"{prefix}-sa",
            account_id=account_id,
            project=args.project,
            display_name=f"flexyboots {args.env} {args.service} VM",
            description=f"Runs the {args.service} VM ({prefix}); least privilege, no keys",
            opts=child,
        )
        self.service_account_email = self.service_account.email
        self.member = self.service_account.email.apply(lambda e: f"serviceAccount:{e}")
        self.project_iam_members = [
            gcp.projects.IAMMember(
                f"{prefix}-{role.split('/')[-1].replace('.', '-').lower()}",
                project=args.project,
                role=role,
                member=self.member,
                opts=child,
            )
            for role in self._project_roles(args)
        ]

        before = self._before_instance(prefix, args, lbls, child)

        self.data_disk = gcp.compute.Disk(
            f"{prefix}-data",
            name=f"{prefix}-data",
            project=args.project,
            zone=args.zone,
            size=args.data_disk_gb,
            type=args.data_disk_type,
            labels=lbls,
            opts=pulumi.ResourceOptions.merge(child, pulumi.ResourceOptions(protect=args.protect_data_disk)),
        )
        access_configs = [{"network_tier": "PREMIUM"}] if args.external_ip else []
        self.instance = gcp.compute.Instance(
            f"{prefix}-vm",
            name=prefix,
            project=args.project,
            zone=args.zone,
            machine_type=args.machine_type,
            boot_disk={
                "auto_delete": True,
                "initialize_params": {"image": args.image, "size": args.boot_disk_gb, "type": "pd-balanced", "labels": lbls},
            },
            attached_disks=[{"source": self.data_disk.self_link, "device_name": DATA_DEVICE, "mode": "READ_WRITE"}],
            network_interfaces=[{"subnetwork": args.subnetwork, "access_configs": access_configs}],
            service_account={"email": self.service_account.email, "scopes": [CLOUD_PLATFORM_SCOPE]},
            shielded_instance_config={"enable_secure_boot": True, "enable_vtpm": True, "enable_integrity_monitoring": True},
            metadata={"enable-oslogin": "TRUE", "block-project-ssh-keys": "TRUE", **self._metadata(args)},
            metadata_startup_script=script,
            tags=list(args.network_tags),
            labels=lbls,
            allow_stopping_for_update=True,
            opts=pulumi.ResourceOptions.merge(
                child, pulumi.ResourceOptions(depends_on=[*self.project_iam_members, *before])
            ),
        )
        self.instance_name = self.instance.name
        self.internal_ip = self.instance.network_interfaces.apply(lambda nics: nics[0].network_ip if nics else None)
        self._after_instance(prefix, args, child)

        self.register_outputs(
            {
                "service_account_email": self.service_account_email,
                "instance_name": self.instance_name,
                "external_ip_enabled": self.external_ip_enabled,
                "data_disk_protected": self.data_disk_protected,
                "network_tags": self.network_tags,
                "zone": self.zone,
                "service_port": self.service_port,
                **({"pinned_images": self.pinned_images} if self.pinned_images is not None else {}),
                **self._extra_outputs,
            }
        )

    # -- hooks for presets -----------------------------------------------------------------
    def _validate(self, args: ServiceVmArgs) -> None:
        c = self.COMPONENT
        require_env(c, args.env)
        if not isinstance(args.project, str) or not PROJECT_ID.match(args.project):
            raise ComponentArgsError(c, "project", "a GCP project id", args.project)
        if not isinstance(args.zone, str) or not _ZONE.match(args.zone):
            raise ComponentArgsError(c, "zone", "a GCP zone such as 'europe-west1-b'", args.zone)
        if args.subnetwork is None or args.subnetwork == "":
            raise ComponentArgsError(c, "subnetwork", "the subnet's self link or id (Network.subnet_self_link)", args.subnetwork)
        service_account_id(args.env, args.service, c)
        machine_shape(args.machine_type, c)
        min_vcpus, min_memory_gb = self.minimum(args)
        check_machine_minimum(c, args.machine_type, min_vcpus, min_memory_gb, self._minimum_hint(args))
        if not isinstance(args.image, str) or not args.image:
            raise ComponentArgsError(c, "image", "a boot image such as 'debian-cloud/debian-12'", args.image)
        _positive(c, "boot_disk_gb", args.boot_disk_gb, 10)
        _positive(c, "data_disk_gb", args.data_disk_gb, 10)
        if args.data_disk_type not in _DISK_TYPES:
            raise ComponentArgsError(c, "data_disk_type", f"one of {', '.join(_DISK_TYPES)}", args.data_disk_type)
        for fname in ("protect_data_disk", "external_ip"):
            if not isinstance(getattr(args, fname), bool):
                raise ComponentArgsError(c, fname, "a bool", getattr(args, fname))
        if isinstance(args.network_tags, str):
            raise ComponentArgsError(c, "network_tags", "a list of network tags", args.network_tags)
        for i, tag in enumerate(args.network_tags):
            if not isinstance(tag, str) or not _TAG.match(tag):
                raise ComponentArgsError(c, f"network_tags[{i}]", "a network tag (lower-case letters, digits, hyphens)", tag)
        if args.service_port is not None:
            _positive(c, "service_port", args.service_port, 1)
        if isinstance(args.project_roles, str):
            raise ComponentArgsError(c, "project_roles", "a list of roles", args.project_roles)
        for i, role in enumerate(args.project_roles):
            if role not in ALLOWED_PROJECT_ROLES:
                raise ComponentArgsError(c, f"project_roles[{i}]", f"one of {', '.join(sorted(ALLOWED_PROJECT_ROLES))}", role)
        require_label_map(c, "extra_labels", args.extra_labels)
        if not isinstance(args.startup_script, str):
            raise ComponentArgsError(c, "startup_script", "a string (rendered by components.startup_scripts)", args.startup_script)

    def minimum(self, args: ServiceVmArgs) -> tuple[float, float]:
        """(vCPUs, memory GB) the service needs."""
        return self.MIN_VCPUS, self.MIN_MEMORY_GB

    def _minimum_hint(self, args: ServiceVmArgs) -> str:
        return ""

    def _project_roles(self, args: ServiceVmArgs) -> list[str]:
        return list(dict.fromkeys(args.project_roles))

    def _image_set(self, args: ServiceVmArgs) -> Optional[ImageSet]:
        """The container images the VM runs (resolved to digests), or None (none of ours)."""
        return None

    def _startup_script(self, prefix: str, args: ServiceVmArgs, images: Optional[ImageSet]) -> str:
        return args.startup_script

    def _metadata(self, args: ServiceVmArgs) -> dict:
        """Extra instance metadata (updated in place: no VM replacement when it changes)."""
        return {}

    def _before_instance(self, prefix: str, args: ServiceVmArgs, lbls: dict, child: pulumi.ResourceOptions) -> list:
        return []

    def _after_instance(self, prefix: str, args: ServiceVmArgs, child: pulumi.ResourceOptions) -> None:
        return None

    def _dataset_grant(self, suffix: str, args: ServiceVmArgs, dataset_id: Any, role: str) -> gcp.bigquery.DatasetIamMember:
        return gcp.bigquery.DatasetIamMember(
            suffix,
            project=args.project,
            dataset_id=dataset_id,
            role=role,
            member=self.member,
            opts=pulumi.ResourceOptions(parent=self),
        )


def _require_input(component: str, fname: str, value: Any, expected: str) -> None:
    if value is None or value == "":
        raise ComponentArgsError(component, fname, expected, value)


class Airbyte(ServiceVm):
    TYPE = "flexyboots:service_vm:Airbyte"
    ARGS = AirbyteArgs
    COMPONENT = "Airbyte"
    MIN_VCPUS = 4
    MIN_MEMORY_GB = 8
    LOW_RESOURCE_MIN_VCPUS = 2
    LOW_RESOURCE_MIN_MEMORY_GB = 8

    def _validate(self, args: AirbyteArgs) -> None:
        if not isinstance(args.low_resource_mode, bool):
            raise ComponentArgsError(self.COMPONENT, "low_resource_mode", "a bool", args.low_resource_mode)
        super()._validate(args)
        _require_input(self.COMPONENT, "landing_bucket", args.landing_bucket, "the landing bucket's name (DataLake.bucket_name)")
        _require_input(self.COMPONENT, "staging_dataset_id", args.staging_dataset_id, "the staging dataset id (Warehouse.dataset_ids['staging'])")

    def minimum(self, args: AirbyteArgs) -> tuple[float, float]:
        if args.low_resource_mode:
            return self.LOW_RESOURCE_MIN_VCPUS, self.LOW_RESOURCE_MIN_MEMORY_GB
        return self.MIN_VCPUS, self.MIN_MEMORY_GB

    def _minimum_hint(self, args: AirbyteArgs) -> str:
        if args.low_resource_mode:
            return "abctl --low-resource-mode still needs 2 vCPUs and 8 GB"
        return "abctl needs 4 vCPUs and 8 GB; set low_resource_mode=True for a smaller machine"

    def _project_roles(self, args: AirbyteArgs) -> list[str]:
        return list(dict.fromkeys([*args.project_roles, "roles/bigquery.jobUser"]))

    def _startup_script(self, prefix: str, args: AirbyteArgs, images: Optional[ImageSet]) -> str:
        # abctl pulls Airbyte's images itself, inside its kind cluster: none to pin here
        return startup_scripts.render_airbyte(
            device_name=DATA_DEVICE, low_resource_mode=args.low_resource_mode, port=args.service_port
        )

    def _after_instance(self, prefix: str, args: AirbyteArgs, child: pulumi.ResourceOptions) -> None:
        self.landing_bucket_grant = gcp.storage.BucketIAMMember(
            f"{prefix}-landing-object-admin",
            bucket=args.landing_bucket,
            role="roles/storage.objectAdmin",
            member=self.member,
            opts=pulumi.ResourceOptions(parent=self),
        )
        self.staging_grant = self._dataset_grant(f"{prefix}-staging-data-editor", args, args.staging_dataset_id, "roles/bigquery.dataEditor")
        self.low_resource_mode = args.low_resource_mode
        self._extra_outputs["low_resource_mode"] = args.low_resource_mode


class Metabase(ServiceVm):
    TYPE = "flexyboots:service_vm:Metabase"
    ARGS = MetabaseArgs
    COMPONENT = "Metabase"
    MIN_VCPUS = 2
    MIN_MEMORY_GB = 4
    #: the reader account's service name: account id ``<env>-metabase-bq``
    READER = "metabase-bq"

    def _validate(self, args: MetabaseArgs) -> None:
        super()._validate(args)
        _require_input(self.COMPONENT, "dwh_dataset_id", args.dwh_dataset_id, "the dwh dataset id (Warehouse.dataset_ids['dwh'])")
        if not isinstance(args.bigquery_key, bool):
            raise ComponentArgsError(self.COMPONENT, "bigquery_key", "a bool", args.bigquery_key)
        if args.bigquery_key:
            service_account_id(args.env, self.READER, self.COMPONENT)

    def _minimum_hint(self, args: MetabaseArgs) -> str:
        return "Metabase's JVM and its Postgres application database"

    def _secret_id(self, prefix: str) -> str:
        return f"{prefix}-db-password"

    def _key_secret_id(self, prefix: str) -> str:
        return f"{prefix}-bigquery-reader-key"

    def _image_set(self, args: MetabaseArgs) -> ImageSet:
        return args.images

    def _startup_script(self, prefix: str, args: MetabaseArgs, images: Optional[ImageSet]) -> str:
        return startup_scripts.render_metabase(
            secret_id=self._secret_id(prefix), project=args.project, device_name=DATA_DEVICE,
            db_name=args.db_name, db_user=args.db_user, images=images, port=args.service_port,
            bigquery_key_secret_id=self._key_secret_id(prefix) if args.bigquery_key else None,
        )

    def _secret(self, prefix: str, name: str, secret_id: str, args: MetabaseArgs, lbls: dict, child, data, base64: bool = False) -> list:
        """A Secret Manager secret holding ``data`` (a Pulumi secret), readable by the VM only."""
        secret = gcp.secretmanager.Secret(
            f"{prefix}-{name}-secret",
            secret_id=secret_id,
            project=args.project,
            replication={"auto": {}},
            labels=lbls,
            opts=child,
        )
        version = gcp.secretmanager.SecretVersion(
            f"{prefix}-{name}-v1",
            secret=secret.id,
            secret_data=pulumi.Output.secret(data),
            is_secret_data_base64=True if base64 else None,
            opts=pulumi.ResourceOptions(parent=self),
        )
        access = gcp.secretmanager.SecretIamMember(
            f"{prefix}-{name}-accessor",
            project=args.project,
            secret_id=secret.secret_id,
            role="roles/secretmanager.secretAccessor",
            member=self.member,
            opts=pulumi.ResourceOptions(parent=self),
        )
        return [secret, version, access]

    def _before_instance(self, prefix: str, args: MetabaseArgs, lbls: dict, child: pulumi.ResourceOptions) -> list:
        import pulumi_random as random

        secret_id = self._secret_id(prefix)
        self.db_password = random.RandomPassword(
            f"{prefix}-db-password", length=32, special=False, opts=pulumi.ResourceOptions(parent=self)
        )
        self.db_password_secret, self.db_password_version, self.db_password_access = self._secret(
            prefix, "db-password", secret_id, args, lbls, child, self.db_password.result
        )
        self.db_password_secret_id = secret_id
        self.health_check_path = startup_scripts.METABASE_HEALTH_PATH
        self._extra_outputs.update(
            health_check_path=self.health_check_path,
            db_password_secret_id=secret_id,
            db_password_secret_name=self.db_password_secret.name,
        )
        needed = [self.db_password_version, self.db_password_access]
        self.bigquery_reader = self.bigquery_reader_email = self.bigquery_key_secret_id = None
        if args.bigquery_key:
            needed += self._bigquery_reader(prefix, args, lbls, child)
        self._extra_outputs.update(bigquery_reader_email=self.bigquery_reader_email, bigquery_key_secret_id=self.bigquery_key_secret_id)
        return needed

    def _bigquery_reader(self, prefix: str, args: MetabaseArgs, lbls: dict, child: pulumi.ResourceOptions) -> list:
        """The read-only account Metabase's BigQuery driver uses, and its one key: dataViewer on
        the dwh dataset, jobUser on the project (to run queries), nothing else."""
        reader = gcp.serviceaccount.Account(
            f"{prefix}-bq-reader",
            account_id=service_account_id(args.env, self.READER, self.COMPONENT),
            project=args.project,
            display_name=f"flexyboots {args.env} Metabase BigQuery reader",
            description=f"Metabase ({prefix}) reads the dwh dataset with this account's key; read-only",
            opts=child,
        )
        member = reader.email.apply(lambda e: f"serviceAccount:{e}")
        viewer = gcp.bigquery.DatasetIamMember(
            f"{prefix}-bq-reader-dwh-data-viewer",
            project=args.project,
            dataset_id=args.dwh_dataset_id,
            role="roles/bigquery.dataViewer",
            member=member,
            opts=pulumi.ResourceOptions(parent=self),
        )
        job_user = gcp.projects.IAMMember(
            f"{prefix}-bq-reader-job-user",
            project=args.project,
            role="roles/bigquery.jobUser",
            member=member,
            opts=pulumi.ResourceOptions(parent=self),
        )
        # the provider marks private_key secret; its JSON (base64) goes to Secret Manager as is
        self.bigquery_key = gcp.serviceaccount.Key(
            f"{prefix}-bq-reader-key",
            service_account_id=reader.name,
            opts=pulumi.ResourceOptions(parent=self),
        )
        key_secret_id = self._key_secret_id(prefix)
        self.bigquery_key_secret, version, access = self._secret(
            prefix, "bigquery-reader-key", key_secret_id, args, lbls, child, self.bigquery_key.private_key, base64=True
        )
        self.bigquery_reader = reader
        self.bigquery_reader_email = reader.email
        self.bigquery_key_secret_id = key_secret_id
        self.bigquery_grants = [viewer, job_user]
        return [version, access, viewer, job_user]


class Amundsen(ServiceVm):
    TYPE = "flexyboots:service_vm:Amundsen"
    ARGS = AmundsenArgs
    COMPONENT = "Amundsen"
    MIN_VCPUS = 2
    MIN_MEMORY_GB = 8

    def _validate(self, args: AmundsenArgs) -> None:
        super()._validate(args)
        ids = args.metadata_dataset_ids
        if not isinstance(ids, Mapping) or not ids:
            raise ComponentArgsError(
                self.COMPONENT, "metadata_dataset_ids", "a non-empty mapping of layer -> dataset id (Warehouse.dataset_ids)", ids
            )
        for key, value in ids.items():
            if not isinstance(key, str) or not re.match(r"^[a-z][a-z0-9_]*$", key):
                raise ComponentArgsError(self.COMPONENT, f"metadata_dataset_ids[{key!r}]", "a lower-case key such as 'dwh'", key)
            _require_input(self.COMPONENT, f"metadata_dataset_ids[{key!r}]", value, "a dataset id")
        _, mem = machine_shape(args.machine_type, self.COMPONENT)
        for fname in ("es_heap_mb", "neo4j_heap_mb"):
            _positive(self.COMPONENT, fname, getattr(args, fname), 256)
        if args.catalog_document is not None and not isinstance(args.catalog_document, str):
            raise ComponentArgsError(self.COMPONENT, "catalog_document", "the encoded catalog document (components.catalog.encode_document)", args.catalog_document)
        if (args.es_heap_mb + args.neo4j_heap_mb) / 1024 > mem / 2:
            raise ComponentArgsError(
                self.COMPONENT, "es_heap_mb", f"Elasticsearch + neo4j heaps of at most half the machine's {mem:g} GB",
                args.es_heap_mb + args.neo4j_heap_mb,
            )

    def _minimum_hint(self, args: AmundsenArgs) -> str:
        return "neo4j and Elasticsearch need several GB"

    def _image_set(self, args: AmundsenArgs) -> ImageSet:
        return args.images

    def _startup_script(self, prefix: str, args: AmundsenArgs, images: Optional[ImageSet]) -> str:
        script = startup_scripts.render_amundsen(
            device_name=DATA_DEVICE, port=args.service_port, es_heap_mb=args.es_heap_mb, neo4j_heap_mb=args.neo4j_heap_mb,
            images=images,
        )
        if args.catalog_document is None:
            return script
        from components.catalog import render_catalog_setup

        return script + render_catalog_setup(schedule=args.catalog_schedule)

    def _metadata(self, args: AmundsenArgs) -> dict:
        from components.catalog import METADATA_KEY

        return {METADATA_KEY: args.catalog_document} if args.catalog_document is not None else {}

    def _project_roles(self, args: AmundsenArgs) -> list[str]:
        extra = ["roles/bigquery.jobUser"] if args.catalog_document is not None else []  # the check-results query
        return list(dict.fromkeys([*args.project_roles, *extra]))

    def _after_instance(self, prefix: str, args: AmundsenArgs, child: pulumi.ResourceOptions) -> None:
        self.metadata_grants = {
            key: self._dataset_grant(f"{prefix}-{key.replace('_', '-')}-metadata-viewer", args, ds, "roles/bigquery.metadataViewer")
            for key, ds in args.metadata_dataset_ids.items()
        }
        self.check_results_grant = None
        if args.catalog_document is not None and args.check_results_table is not None:
            dataset_id, table_id = args.check_results_table
            # the catalog job reads the latest check results: that one table, read-only
            self.check_results_grant = gcp.bigquery.IamMember(
                f"{prefix}-check-results-data-viewer",
                project=args.project,
                dataset_id=dataset_id,
                table_id=table_id,
                role="roles/bigquery.dataViewer",
                member=self.member,
                opts=pulumi.ResourceOptions(parent=self),
            )
