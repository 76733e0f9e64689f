"""The flexyboots platform: components composed from one validated :class:`StackConfig`.

Order of construction (each component switchable per stack):

    ProjectApis -> Network -> DataLake -> Warehouse -> PipelineRuntime + one TablePipeline per
    spec in ``pipelines.tables_dir`` -> Orchestrator (Composer) -> Alerts -> ServiceVm presets

``main`` (what ``__main__.py`` runs) builds this platform, or, for a stack whose config says
``flexyboots:composition: local``, the workstation composition of ``stacks.local``.

Every component gets the env, labels and ``depends_on`` the APIs it needs, so a first
``pulumi up`` on a fresh project enables the APIs before creating anything that uses them.
The Google-managed service agents the program grants to (Data Transfer, Composer) are
created by the components after their API (``components.service_agents``): API -> identity
-> grants -> transfer configs, Composer and the DAG.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Optional

import pulumi

from components.apis import PLATFORM_APIS, ProjectApis, ProjectApisArgs
from components.datalake import DataLake, DataLakeArgs, S3LandingArgs
from components.network import Network, NetworkArgs
from components.startup_scripts import SERVICE_PORTS
from components.table_pipeline import PipelineRuntime, PipelineRuntimeArgs, TablePipeline, TablePipelineArgs
from components.warehouse import Warehouse, WarehouseArgs
from pipeline_sql.spec import TableSpec, load_specs
from stacks.config import NS, TOP_KEYS, LocalConfig, StackConfig, StackConfigError, parse_config

ROOT = Path(__file__).resolve().parents[1]
DAY_MS = 24 * 3600 * 1000
EXTRA_APIS = ("pubsub.googleapis.com",)
COMPOSER_API = "composer.googleapis.com"
MONITORING_API = "monitoring.googleapis.com"
#: Google's Data Lineage API: with it enabled, BigQuery records the lineage of every job
#: (scheduled queries included) by itself (flexyboots:lineage.data_lineage_api)
DATA_LINEAGE_API = "datalineage.googleapis.com"


@dataclass
class Platform:
    """What :func:`build_platform` created (None for a component the stack switched off)."""

    config: StackConfig
    apis: Optional[ProjectApis] = None
    network: Optional[Network] = None
    datalake: Optional[DataLake] = None
    warehouse: Optional[Warehouse] = None
    runtime: Optional[PipelineRuntime] = None
    pipelines: list = field(default_factory=list)
    orchestrator: Any = None
    alerts: Any = None
    services: dict = field(default_factory=dict)


def tables_dir(cfg: StackConfig) -> Path:
    p = Path(cfg.pipelines.tables_dir)
    return p if p.is_absolute() else ROOT / p


def load_table_specs(cfg: StackConfig) -> list[TableSpec]:
    """The stack's table specs; an S3 source needs the S3 landing bucket switched on."""
    specs = load_specs(tables_dir(cfg))
    if not cfg.datalake.s3_enabled:
        for s in specs:
            if s.source.location == "s3":
                raise StackConfigError(
                    f"{NS}:datalake.s3.enabled",
                    f"false, but {s.file} reads from S3 (source.location: s3); set it to true or move the source",
                )
    return specs


def build_platform(cfg: StackConfig, specs: Optional[list[TableSpec]] = None) -> Platform:
    """Create every enabled component of the stack. ``specs`` overrides reading the folder."""
    env, project = cfg.env, cfg.project
    plat = Platform(config=cfg)
    labels = dict(cfg.labels)

    if cfg.pipelines.enabled and specs is None:
        specs = load_table_specs(cfg)
    specs = list(specs or []) if cfg.pipelines.enabled else []

    # ---- APIs
    def needs(*apis: str) -> list:
        return plat.apis.depends_on(*apis) if plat.apis else []

    if cfg.apis_enabled:
        apis = list(PLATFORM_APIS) + [a for a in EXTRA_APIS if a not in PLATFORM_APIS]
        if cfg.composer.enabled:
            apis.append(COMPOSER_API)
        if cfg.alerts.email:
            apis.append(MONITORING_API)
        if cfg.lineage.data_lineage_api:
            apis.append(DATA_LINEAGE_API)
        plat.apis = ProjectApis("apis", ProjectApisArgs(env=env, apis=apis, project=project))

    # ---- network
    enabled_services = [n for n in ("airbyte", "metabase", "amundsen") if cfg.service(n).enabled]
    if cfg.network.enabled:
        plat.network = Network(
            "network",
            NetworkArgs(
                env=env,
                region=cfg.region,
                subnet_cidr=cfg.network.cidr,
                service_ports=[SERVICE_PORTS[n] for n in enabled_services],
                project=project,
                depends_on=needs("compute.googleapis.com"),
            ),
        )

    # ---- data lake (the bucket lives with the datasets: a non-US dataset loads from its own location)
    aws_provider = None
    if cfg.datalake.enabled:
        s3 = None
        if cfg.datalake.s3_enabled:
            import pulumi_aws as aws

            aws_provider = aws.Provider("aws", region=cfg.datalake.s3_region)
            s3 = S3LandingArgs(force_destroy=not cfg.protect, provider=aws_provider)
        plat.datalake = DataLake(
            "datalake",
            DataLakeArgs(
                env=env,
                location=cfg.location,
                project=project,
                force_destroy=not cfg.protect,
                nearline_after_days=cfg.datalake.nearline_after_days,
                delete_after_days=cfg.datalake.delete_after_days,
                extra_labels=labels or None,
                s3=s3,
                depends_on=needs("storage.googleapis.com"),
            ),
        )

    # ---- warehouse
    if cfg.warehouse.enabled:
        plat.warehouse = Warehouse(
            "warehouse",
            WarehouseArgs(
                env=env,
                project=project,
                location=cfg.location,
                temporary_table_expiration_ms=cfg.warehouse.temporary_expiration_days * DAY_MS,
                protect=cfg.protect,
                extra_labels=labels or None,
                depends_on=needs("bigquery.googleapis.com"),
            ),
        )

    # ---- table pipelines
    if cfg.pipelines.enabled:
        dts_api = needs("bigquerydatatransfer.googleapis.com")
        plat.runtime = PipelineRuntime(
            "pipelines",
            PipelineRuntimeArgs(
                env=env,
                project=project,
                datasets=plat.warehouse.dataset_ids,
                landing_bucket=plat.datalake.bucket_name,
                protect=cfg.protect,
                s3_transfers=any(s.source.location == "s3" for s in specs),
                extra_labels=labels,
                # the Data Transfer service agent is created after its API
                depends_on=needs("iam.googleapis.com", "pubsub.googleapis.com", "bigquerydatatransfer.googleapis.com"),
            ),
        )
        for spec in specs:
            plat.pipelines.append(
                TablePipeline(
                    spec.table,
                    TablePipelineArgs(
                        spec=spec,
                        warehouse=plat.warehouse,
                        runtime=plat.runtime,
                        datalake=plat.datalake,
                        mode=cfg.pipelines.mode,
                        start_time=cfg.pipelines.start_time,
                        layer_offset_minutes=cfg.pipelines.layer_offset_minutes,
                        failure_email=cfg.pipelines.failure_email,
                        protect=cfg.protect,
                        extra_labels=labels,
                    ),
                    opts=pulumi.ResourceOptions(depends_on=dts_api) if dts_api else None,
                )
            )

    # ---- orchestration
    if cfg.composer.enabled:
        from components.orchestrator import OrchestratedTable, Orchestrator, OrchestratorArgs

        plat.orchestrator = Orchestrator(
            "orchestrator",
            OrchestratorArgs(
                env=env,
                project=project,
                region=cfg.region,
                network=plat.network.network_id,
                subnetwork=plat.network.subnet_id,
                location=cfg.location,
                datasets=plat.warehouse.dataset_ids,
                tables=[OrchestratedTable(p.table, p.transfer_config_names, p.schedule) for p in plat.pipelines],
                image_version=cfg.composer.image_version,
                environment_size=cfg.composer.environment_size,
                workloads=cfg.composer.workloads or None,
                start_time=cfg.pipelines.start_time,
                transfer_ids_in_env=cfg.composer.transfer_ids_in_env,
                protect=cfg.protect,
                extra_labels=labels,
                # the Composer service agent is created after its API
                depends_on=needs(COMPOSER_API, "iam.googleapis.com"),
            ),
        )

    # ---- alerts
    if cfg.alerts.email and cfg.pipelines.enabled:
        from components.alerts import Alerts, AlertsArgs

        plat.alerts = Alerts(
            "alerts",
            AlertsArgs(
                env=env,
                project=project,
                email=cfg.alerts.email,
                dwh_dataset=plat.warehouse.naming.dataset("dwh"),
                composer_environment=plat.orchestrator.environment.name if plat.orchestrator else None,
                extra_labels=labels,
            ),
            opts=pulumi.ResourceOptions(depends_on=needs(MONITORING_API)),
        )

    # ---- hosted services
    if enabled_services:
        from components.service_vm import Airbyte, AirbyteArgs, Amundsen, AmundsenArgs, Metabase, MetabaseArgs

        common = dict(
            env=env,
            project=project,
            zone=f"{cfg.region}-b",
            subnetwork=plat.network.subnet_self_link,
            network_tags=[plat.network.iap_tag],
            protect_data_disk=cfg.protect,
            extra_labels=labels or None,
            depends_on=needs("compute.googleapis.com", "iam.googleapis.com", "secretmanager.googleapis.com"),
        )
        ds = plat.warehouse.dataset_ids if plat.warehouse else {}
        for name in enabled_services:
            svc = cfg.service(name)
            sized = dict(common, machine_type=svc.machine_type, data_disk_gb=svc.disk_size_gb)
            if name == "airbyte":
                plat.services[name] = Airbyte(
                    "airbyte",
                    AirbyteArgs(
                        **sized,
                        landing_bucket=plat.datalake.bucket_name if plat.datalake else None,
                        staging_dataset_id=ds.get("staging"),
                        low_resource_mode=svc.low_resource_mode,
                    ),
                )
            elif name == "metabase":
                plat.services[name] = Metabase(
                    "metabase",
                    MetabaseArgs(**sized, dwh_dataset_id=ds.get("dwh"), bigquery_key=svc.bigquery_key, images=svc.images),
                )
            else:
                catalog = {}
                if plat.warehouse and plat.runtime and specs:
                    from components.catalog import catalog_document, encode_document
                    from pipeline_sql.checks import RESULTS_TABLE

                    catalog = dict(
                        catalog_document=encode_document(catalog_document(specs, plat.warehouse.naming, location=cfg.location)),
                        # the table resource's outputs: the grant waits for the table
                        check_results_table=(plat.runtime.shared_tables[RESULTS_TABLE].dataset_id, plat.runtime.shared_tables[RESULTS_TABLE].table_id),
                    )
                plat.services[name] = Amundsen(
                    "amundsen", AmundsenArgs(**sized, metadata_dataset_ids=dict(ds), images=svc.images, **catalog)
                )

    _exports(plat)
    return plat


def _exports(plat: Platform) -> None:
    cfg = plat.config
    pulumi.export("env", cfg.env)
    pulumi.export("tables", sorted(p.table for p in plat.pipelines))
    if plat.datalake:
        pulumi.export("landing_bucket", plat.datalake.bucket_name)
    if plat.warehouse:
        pulumi.export("datasets", plat.warehouse.dataset_ids)
    if plat.orchestrator:
        pulumi.export("airflow_uri", plat.orchestrator.airflow_uri)
    for name, svc in sorted(plat.services.items()):
        pulumi.export(f"{name}_instance", svc.instance_name)
    export_service_images(plat.services)


def export_service_images(services: dict) -> None:
    """``service_images``: service -> role -> ``repository:tag@sha256:...``, every image a
    service runs as resolved at deploy time (a preview shows the old and the new digest)."""
    pinned = {name: svc.pinned_images for name, svc in sorted(services.items()) if svc.pinned_images is not None}
    if pinned:
        pulumi.export("service_images", pinned)


# --------------------------------------------------------------------------- program entry


def read_program_config() -> dict[str, Any]:
    """The stack's config as the Pulumi engine handed it to this program (gcp:* + ours)."""
    from pulumi.runtime import config as rc

    keys = set(rc.get_config_env()) | set(rc.CONFIG.get())
    raw: dict[str, Any] = {}
    for key in sorted(keys):
        if key.startswith(f"{NS}:") or key in ("gcp:project", "gcp:region"):
            raw[key] = rc.get_config(key)
    for name in TOP_KEYS:  # keys Pulumi only exposes through the Config API
        v = pulumi.Config(NS).get(name)
        if v is not None:
            raw.setdefault(f"{NS}:{name}", v)
    for key in ("project", "region"):
        v = pulumi.Config("gcp").get(key)
        if v is not None:
            raw.setdefault(f"gcp:{key}", v)
    return raw


def main():
    """What ``__main__.py`` runs: read, validate, build the composition the config names
    (``flexyboots:composition``: the GCP platform, or ``local``: ``stacks.local``)."""
    cfg = parse_config(read_program_config(), pulumi.get_stack())
    if isinstance(cfg, LocalConfig):
        from stacks.local import build_local

        return build_local(cfg)
    return build_platform(cfg)
