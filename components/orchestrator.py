"""``Orchestrator``: Cloud Composer (Airflow) running every table's layers and checks in order.

API::

    Orchestrator(name: str, args: OrchestratorArgs, opts: pulumi.ResourceOptions | None = None)

``OrchestratorArgs``
    ``env``, ``project``, ``region``
    ``network``, ``subnetwork``                 the platform VPC (ids or self links)
    ``location``                                BigQuery location of the transfer configs
    ``datasets: Mapping[layer, Input[str]]``    handed to DAGs as FLEXYBOOTS_DATASET_<LAYER>
    ``tables: Sequence[OrchestratedTable]``     each table's schedule and transfer config names,
                                                 per step (five layers + checks) and its
                                                 full refresh (``refresh``: components.dag.CONFIGS)
    ``image_version = "composer-3-airflow-2.10.5"``
    ``environment_size = None``                 Composer 2 only (ENVIRONMENT_SIZE_SMALL...)
    ``workloads``                               {scheduler|web_server|worker|triggerer|dag_processor:
                                                 {cpu, memory_gb, storage_gb, count|min_count|max_count}};
                                                 a triggerer is added when none is named
                                                 (DEFAULT_TRIGGERER): the DAG tasks are deferrable
    ``start_time = "2025-01-01T02:07:00Z"``     the DAGs' start date and schedules' phase
    ``dag_settings = None``                     retries, timeouts, poll interval (DagSettings)
    ``transfer_ids_in_env = True``              also hand each table's config ids to DAGs as
                                                 FLEXYBOOTS_TRANSFER_<TABLE> (changing env vars
                                                 updates the environment: minutes, not seconds)
    ``protect = False``                         Pulumi ``protect`` on the environment
    ``extra_labels``
    ``depends_on = ()``                         e.g. the composer API Service: the Composer
                                                 service agent is created after it

Creates: a service account with ``roles/composer.worker`` and a custom role holding only
``bigquery.transfers.get`` + ``bigquery.transfers.update`` (to start transfer runs and read their
state; no predefined role short of bigquery.admin has both); the Composer service agent,
created by the program (``gcp.projects.ServiceIdentity`` for ``composer.googleapis.com``, with
its ``roles/composer.serviceAgent``; :mod:`components.service_agents`), gets
``roles/composer.ServiceAgentV2Ext`` on that account, its member taken from the identity; the
``gcp.composer.Environment`` waits for all of those grants; (private
environment on Composer 3, custom timeouts for its 25-60 minute create); and the generated DAG
files (:func:`components.dag.render_dag_files`: the static DAG file and a JSON manifest per
shard, one DAG per table, whose run triggered with ``{"full_refresh": true}`` starts the
table's full-refresh config instead of delta, transform and dwh) uploaded as ``gcp.storage.BucketObject``s to the bucket and folder
named by the environment's ``config.dag_gcs_prefix``.

Outputs: ``environment``, ``service_account``, ``dag_objects`` (file name -> object),
``dag_files`` (Output of file name -> text), ``dag_gcs_prefix``, ``airflow_uri``,
``env_variables`` (the dict given to Composer).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Mapping, Optional, Sequence

import pulumi
import pulumi_gcp as gcp

from components.common import ComponentArgsError, labels as make_labels, require_env, require_gcp_region
from components.service_agents import service_agent
from components.dag import (
    CONFIGS,
    DEFAULT_TRIGGERER,
    DagError,
    DagSettings,
    DagTable,
    env_var_problem,
    file_stem,
    render_dag_files,
    shard_count,
    shard_of,
    table_env_var,
    transfer_env_value,
)
from pipeline_sql.naming import DATASETS

TYPE = "flexyboots:orchestrator:Orchestrator"
_IMAGE = re.compile(r"^composer-(\d+)(\.\d+\.\d+(-preview\.\d+)?)?-airflow-(\d+)(\.\d+(\.\d+)?)?$")
ENVIRONMENT_SIZES = ("ENVIRONMENT_SIZE_SMALL", "ENVIRONMENT_SIZE_MEDIUM", "ENVIRONMENT_SIZE_LARGE")
WORKLOAD_FIELDS = {
    "scheduler": ("cpu", "memory_gb", "storage_gb", "count"),
    "web_server": ("cpu", "memory_gb", "storage_gb"),
    "worker": ("cpu", "memory_gb", "storage_gb", "min_count", "max_count"),
    "triggerer": ("cpu", "memory_gb", "count"),
    "dag_processor": ("cpu", "memory_gb", "storage_gb", "count"),
}
#: Composer creates take 25-60 minutes; updates (env vars, packages) restart Airflow.
TIMEOUTS = pulumi.CustomTimeouts(create="90m", update="90m", delete="60m")
COMPOSER_API = "composer.googleapis.com"
TRANSFER_RUNNER_PERMISSIONS = ("bigquery.transfers.get", "bigquery.transfers.update")


@dataclass
class OrchestratedTable:
    table: str
    transfer_config_names: Mapping[str, pulumi.Input[str]]
    #: the spec's schedule (``every 6 hours``): the table's DAG runs on it
    schedule: str = "every 24 hours"


@dataclass
class OrchestratorArgs:
    env: str
    project: str
    region: str
    network: pulumi.Input[str]
    subnetwork: pulumi.Input[str]
    location: str
    datasets: Mapping[str, pulumi.Input[str]]
    tables: Sequence[OrchestratedTable] = ()
    image_version: str = "composer-3-airflow-2.10.5"
    environment_size: Optional[str] = None
    workloads: Optional[Mapping[str, Mapping[str, float]]] = None
    start_time: str = "2025-01-01T02:07:00Z"
    dag_settings: Optional[DagSettings] = None
    transfer_ids_in_env: bool = True
    protect: bool = False
    extra_labels: Mapping[str, str] = field(default_factory=dict)
    depends_on: Sequence[pulumi.Resource] = ()

    def composer_major(self) -> int:
        m = _IMAGE.match(self.image_version) if isinstance(self.image_version, str) else None
        if not m:
            raise ComponentArgsError("Orchestrator", "image_version", "a Composer image such as 'composer-3-airflow-2.10.5'", self.image_version)
        return int(m.group(1))

    def validate(self) -> int:
        c = "Orchestrator"
        require_env(c, self.env)
        require_gcp_region(c, "region", self.region)
        major = self.composer_major()
        if major < 2:
            raise ComponentArgsError(c, "image_version", "Composer 2 or 3 (Composer 1 is not supported)", self.image_version)
        if self.environment_size is not None:
            if major >= 3:
                raise ComponentArgsError(
                    c, "environment_size", "unset on Composer 3, which sizes its workloads with workloads_config", self.environment_size
                )
            if self.environment_size not in ENVIRONMENT_SIZES:
                raise ComponentArgsError(c, "environment_size", f"one of {', '.join(ENVIRONMENT_SIZES)}", self.environment_size)
        for part, spec in (self.workloads or {}).items():
            if part not in WORKLOAD_FIELDS:
                raise ComponentArgsError(c, f"workloads.{part}", f"one of {', '.join(WORKLOAD_FIELDS)}", part)
            if part == "dag_processor" and major < 3:
                raise ComponentArgsError(c, "workloads.dag_processor", "Composer 3 (Composer 2 has no separate DAG processor)", part)
            for k, v in spec.items():
                if k not in WORKLOAD_FIELDS[part]:
                    raise ComponentArgsError(c, f"workloads.{part}.{k}", f"one of {', '.join(WORKLOAD_FIELDS[part])}", k)
                if isinstance(v, bool) or not isinstance(v, (int, float)) or v < 0:
                    raise ComponentArgsError(c, f"workloads.{part}.{k}", "a non-negative number", v)
        if (self.workloads or {}).get("triggerer", {}).get("count", 1) < 1:
            raise ComponentArgsError(
                c,
                "workloads.triggerer.count",
                "1 or more: every DAG task is deferrable and waits on the triggerer",
                self.workloads["triggerer"].get("count"),
            )
        missing = [d for d in DATASETS if d not in self.datasets]
        if missing:
            raise ComponentArgsError(c, "datasets", f"a dataset id for {', '.join(missing)}")
        seen: set[str] = set()
        for i, t in enumerate(self.tables):
            if not isinstance(t, OrchestratedTable):
                raise ComponentArgsError(c, f"tables[{i}]", "an OrchestratedTable", type(t).__name__)
            if t.table in seen:
                raise ComponentArgsError(c, f"tables[{i}]", "each table once", t.table)
            seen.add(t.table)
            lacking = [step for step in CONFIGS if step not in t.transfer_config_names]
            if lacking:
                raise ComponentArgsError(c, f"tables[{i}].transfer_config_names", f"a config for every step; missing {', '.join(lacking)}")
        return major


def parse_gcs_prefix(prefix: Optional[str]) -> tuple[str, str]:
    """``gs://bucket/dags`` -> (``bucket``, ``dags``)."""
    m = re.match(r"^gs://([a-z0-9][a-z0-9._-]{1,220}[a-z0-9])(?:/(.*?))?/?$", prefix or "")
    if not m:
        raise ValueError(f"Composer dag_gcs_prefix {prefix!r}: expected gs://<bucket>/<folder>")
    return m.group(1), (m.group(2) or "")


def env_variables(env: str, project: str, location: str, datasets: Mapping[str, str], tables: Mapping[str, Mapping[str, str]]) -> dict[str, str]:
    """The variables handed to every Airflow process; validated against Composer's rules."""
    out = {
        "FLEXYBOOTS_ENV": env,
        "FLEXYBOOTS_PROJECT": project,
        "FLEXYBOOTS_LOCATION": location,
        **{f"FLEXYBOOTS_DATASET_{d.upper()}": datasets[d] for d in DATASETS},
        **{table_env_var(t): transfer_env_value(cfgs) for t, cfgs in sorted(tables.items())},
    }
    for name in out:
        problem = env_var_problem(name)
        if problem:
            raise ComponentArgsError("Orchestrator", f"env_variables.{name}", problem)
    return out


class Orchestrator(pulumi.ComponentResource):
    def __init__(self, name: str, args: OrchestratorArgs, opts: Optional[pulumi.ResourceOptions] = None) -> None:
        if not isinstance(args, OrchestratorArgs):
            raise ComponentArgsError("Orchestrator", "args", "an OrchestratorArgs", type(args).__name__)
        major = args.validate()
        super().__init__(TYPE, name, None, opts)
        env, project = args.env, args.project
        child = pulumi.ResourceOptions(parent=self, depends_on=list(args.depends_on))
        labels = make_labels(env, "orchestrator", dict(args.extra_labels))

        # ---- identity
        self.service_account = gcp.serviceaccount.Account(
            f"{env}-composer",
            account_id=f"{env}-composer",
            display_name=f"flexyboots {env}: Cloud Composer",
            description="Runs the Composer environment and starts the transfer runs. Managed by Pulumi.",
            project=project,
            opts=child,
        )
        member = self.service_account.member
        worker = gcp.projects.IAMMember(
            f"{env}-composer-worker", project=project, role="roles/composer.worker", member=member, opts=child
        )
        runner_role = gcp.projects.IAMCustomRole(
            f"{env}-transfer-runner",
            project=project,
            role_id=f"flexyboots_{env}_transfer_runner",
            title=f"flexyboots {env} transfer runner",
            description="Start BigQuery Data Transfer runs and read their state (and nothing else).",
            permissions=list(TRANSFER_RUNNER_PERMISSIONS),
            opts=child,
        )
        runner = gcp.projects.IAMMember(
            f"{env}-composer-transfer-runner", project=project, role=runner_role.name, member=member, opts=child
        )
        # the Composer service agent: created (after the API), never assumed
        self.agent = service_agent(f"{env}-composer-agent", COMPOSER_API, project, parent=self, depends_on=args.depends_on)
        agent_ext = gcp.serviceaccount.IAMMember(
            f"{env}-composer-agent-v2ext",
            service_account_id=self.service_account.name,
            role="roles/composer.ServiceAgentV2Ext",
            member=self.agent.member,
            opts=child,
        )

        # ---- environment
        tables = list(args.tables)
        flat = [(t.table, step, t.transfer_config_names[step]) for t in tables for step in CONFIGS]
        ds_keys = list(DATASETS)

        def build_env(values: list) -> dict[str, str]:
            ds = dict(zip(ds_keys, values[: len(ds_keys)]))
            ids: dict[str, dict[str, str]] = {}
            if args.transfer_ids_in_env:
                for (table, layer, _), v in zip(flat, values[len(ds_keys) :]):
                    ids.setdefault(table, {})[layer] = v
            return env_variables(env, project, args.location, ds, ids)

        env_inputs = [args.datasets[d] for d in ds_keys] + ([v for _, _, v in flat] if args.transfer_ids_in_env else [])
        self.env_variables = pulumi.Output.all(*env_inputs).apply(build_env)

        config: dict = {
            "software_config": {"image_version": args.image_version, "env_variables": self.env_variables},
            "node_config": {
                "service_account": self.service_account.email,
                "network": args.network,
                "subnetwork": args.subnetwork,
            },
        }
        if args.environment_size:
            config["environment_size"] = args.environment_size
        # the DAG tasks are deferrable: they need a triggerer (added when the workloads name none)
        workloads = {"triggerer": dict(DEFAULT_TRIGGERER), **dict(args.workloads or {})}
        config["workloads_config"] = {part: dict(spec) for part, spec in sorted(workloads.items())}
        if major >= 3:
            config["enable_private_environment"] = True

        self.environment = gcp.composer.Environment(
            f"{env}-composer",
            name=f"{env}-composer",
            project=project,
            region=args.region,
            labels=labels,
            config=config,
            opts=pulumi.ResourceOptions(
                parent=self,
                depends_on=[worker, runner, agent_ext, self.agent.role_grant],
                custom_timeouts=TIMEOUTS,
                protect=args.protect,
            ),
        )
        self.dag_gcs_prefix = self.environment.config.apply(lambda c: c.dag_gcs_prefix if c else None)
        self.airflow_uri = self.environment.config.apply(lambda c: c.airflow_uri if c else None)

        # ---- the DAG files: a static DAG file + a JSON manifest per shard
        settings = args.dag_settings or DagSettings(project=project, location=args.location, env=env, start_time=args.start_time)
        schedules = {t.table: t.schedule for t in tables}

        def dag_files(names: list) -> dict[str, str]:
            by_table: dict[str, dict[str, str]] = {}
            for (table, step, _), n in zip(flat, names):
                by_table.setdefault(table, {})[step] = n
            try:
                return render_dag_files([DagTable(t, cfgs, schedules[t]) for t, cfgs in by_table.items()], settings)
            except DagError as e:
                raise ComponentArgsError("Orchestrator", "tables", str(e)) from None

        self.dag_files = pulumi.Output.all(*[v for _, _, v in flat]).apply(dag_files)
        where = self.dag_gcs_prefix.apply(parse_gcs_prefix)
        # which files exist is known now (shards depend on table names only); their text later
        shards = shard_count(len(tables), settings.tables_per_file)
        stems = sorted({file_stem(env, shard_of(t.table, shards)) for t in tables})
        self.dag_objects = {}
        for stem in stems:
            for ext, content_type in ((".py", "text/x-python"), (".json", "application/json")):
                fname = stem + ext
                self.dag_objects[fname] = gcp.storage.BucketObject(
                    f"{env}-dag-{fname}",
                    bucket=where.apply(lambda w: w[0]),
                    name=where.apply(lambda w, f=fname: "/".join(p for p in (w[1], f) if p)),
                    content=self.dag_files.apply(lambda files, f=fname: files[f]),
                    content_type=content_type,
                    opts=child,
                )
        self.register_outputs(
            {
                "dag_gcs_prefix": self.dag_gcs_prefix,
                "airflow_uri": self.airflow_uri,
                "service_account_email": self.service_account.email,
            }
        )
