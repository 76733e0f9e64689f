"""A table's five ETL layers and its checks on BigQuery: its tables and six Data Transfer configs.

Two components live here:

``PipelineRuntime`` (``flexyboots:table_pipeline:PipelineRuntime``), once per stack
    The identities the scheduled queries run as, where they report failures, and the shared
    ``quality.check_results`` table every table's checks append to. One service account PER
    STEP (the five layers and the checks), shared by every table: a per-table account would hit the default quota
    of 100 service accounts per project long before 1000 tables (and add ~10 IAM bindings per
    table), while one account for everything would let the staging load write the DWH. Each
    layer's account holds dataset-level ``roles/bigquery.dataEditor`` on the datasets its SQL
    writes, ``roles/bigquery.dataViewer`` on those it reads (:data:`LAYER_ACCESS`, checked
    against the rendered SQL by the tests) and project-level ``roles/bigquery.jobUser`` only;
    the staging account may also read the landing bucket and, when a table's staging is an
    ``amazon_s3`` transfer (``s3_transfers``), holds a custom role with only
    ``bigquery.datasets.update`` on the staging dataset (what Google's "Use service accounts
    with BigQuery Data Transfer Service" page asks of the account running such a transfer;
    dataEditor already gives ``bigquery.datasets.get``; the narrowest predefined role with
    ``datasets.update``, dataOwner, could also delete the dataset and change its IAM). The
    BigQuery Data Transfer service agent is created first (``gcp.projects.ServiceIdentity``
    after the Data Transfer API, see :mod:`components.service_agents`: on a new project it does
    not exist until the first Data Transfer API call) and granted its service agent role; it
    then gets ``roles/iam.serviceAccountTokenCreator`` on each account (to run as it) and
    ``roles/pubsub.publisher`` on the run-notification topic, the member always taken from the
    identity resource.

``TablePipeline`` (``flexyboots:table_pipeline:TablePipeline``), one per table spec
    Takes the stack's ``Warehouse`` (project, env, location and dataset ids all come from it),
    its ``PipelineRuntime`` and the ``DataLake`` whose bucket staging loads from; each of them
    must belong to the warehouse's env and project, or the constructor refuses it with a
    ``ComponentArgsError`` naming the field (nothing defaults to a made-up bucket).

    * the tables that must exist before any query runs, from
      :func:`pipeline_sql.schema.pipeline_tables` (tables the layer SQL rebuilds itself are
      left to the SQL), with schema JSON (column descriptions from the spec), the table's
      description, time partitioning and clustering; deletion protection
      (and Pulumi ``protect``) on the permanent ones when the stack protects; the
      ``quality.<t>__rejects`` view over the archive (a ``view`` with its standard-SQL query,
      never protected: it is derived);
    * six ``gcp.bigquery.DataTransferConfig``, one per step (:data:`STEPS`: the five layers,
      then the checks): ``data_source_id="scheduled_query"`` with ``params={"query": <SQL>}``
      only (DDL/DML scripts take nothing else), the SQL coming from
      :func:`pipeline_sql.render.render_layer` (the checks: the same script the runner runs). A table whose source is on S3 loads its staging
      layer with an ``amazon_s3`` transfer instead (secret key in ``sensitive_params``) into
      Pulumi-managed staging tables (the staging dataset has no default table expiration, see
      :mod:`components.warehouse`, so they never expire between runs).
    * a seventh, manual-only config (``disable_auto_scheduling`` in both modes) runs the full
      refresh (:func:`pipeline_sql.render.render_full_refresh`: transform and DWH rebuilt from
      the archive after a spec change that needs it), as its own ``refresh`` account; in
      ``orchestrated`` mode its name goes into the DAG manifest like the others' and the
      table's DAG starts it in a run triggered with ``{"full_refresh": true}``;
    * ``orchestrated`` mode disables auto scheduling (Airflow starts the runs in order);
      ``scheduled`` mode runs each step on the spec's schedule, offset after the one before
      (:mod:`components.schedule`, which refuses offsets that do not fit in the period and
      steps on the hour).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Mapping, Optional, Sequence

import pulumi
import pulumi_gcp as gcp

from components.common import ComponentArgsError, labels as make_labels, require_env
from components.dag import REFRESH
from components.datalake import DataLake
from components.schedule import ScheduleError, interval_minutes, layer_schedules
from components.service_agents import service_agent
from components.warehouse import Warehouse, bucket_location_compatible
from pipeline_sql.naming import DATASETS, LAYERS, Naming
from pipeline_sql.render import render_full_refresh, render_layer, transfer_data_path
from pipeline_sql.schema import TableDef, pipeline_tables, shared_tables
from pipeline_sql.spec import TableSpec

MODES = ("scheduled", "orchestrated")
#: What runs per table, in order: the five layers, then the data-quality checks.
STEPS = LAYERS + ("checks",)
# REFRESH ("refresh", from components.dag): the on-demand step, transform and DWH rebuilt from
# the whole archive (a manual-only transfer config per table, never scheduled; see
# pipeline_sql.render.render_full_refresh); in orchestrated mode the table's DAG starts it when
# triggered with the param ``full_refresh``.

#: layer -> (datasets its SQL reads, datasets its SQL writes). Each layer writes only its own
#: dataset (archive: one INSERT, dwh: one MERGE). The delta counts the rejects through the
#: ``quality.<t>__rejects`` view: querying a view needs read on the view's dataset AND on the
#: datasets the view selects from (archive, which the delta reads anyway).
LAYER_ACCESS: dict[str, tuple[tuple[str, ...], tuple[str, ...]]] = {
    "staging": ((), ("staging",)),
    "archive": (("staging",), ("archive",)),
    "delta": (("archive", "dwh"), ("delta",)),
    "transform": (("delta",), ("transform",)),
    "dwh": (("transform",), ("dwh",)),
    "checks": (("dwh",), ("quality",)),
    REFRESH: (("archive",), ("delta", "transform", "dwh")),
}

DTS_API = "bigquerydatatransfer.googleapis.com"
#: what an ``amazon_s3`` transfer's account needs on its destination dataset beyond dataEditor
S3_TRANSFER_PERMISSIONS = ("bigquery.datasets.update",)
S3_FILE_FORMATS = {"csv": "CSV", "json": "JSON", "parquet": "PARQUET"}
#: Data Transfer Service: recurring Amazon S3 transfers run at most once every 24 hours.
S3_MIN_INTERVAL_MINUTES = 24 * 60


# --------------------------------------------------------------------------- runtime


@dataclass
class PipelineRuntimeArgs:
    env: str
    project: pulumi.Input[str]
    #: dataset id per layer (and ``quality``), e.g. ``Warehouse.dataset_ids``
    datasets: Mapping[str, pulumi.Input[str]]
    #: landing bucket name the staging layer reads (None: no GCS sources)
    landing_bucket: Optional[pulumi.Input[str]] = None
    #: some table's staging is an ``amazon_s3`` transfer: the staging account may update the
    #: staging dataset (custom role with ``bigquery.datasets.update`` only)
    s3_transfers: bool = False
    #: deletion protection (and Pulumi ``protect``) on ``quality.check_results``
    protect: bool = False
    extra_labels: Mapping[str, str] = field(default_factory=dict)
    #: e.g. the iam, pubsub and bigquerydatatransfer API Services (the service agent is
    #: created after them)
    depends_on: Sequence[pulumi.Resource] = ()


def _plain_project(project: pulumi.Input[str]) -> str:
    """A project id for table naming (only the dataset/table part of the name is used)."""
    return project if isinstance(project, str) else "flexyboots-local"


def declare_table(
    td: TableDef,
    project: pulumi.Input[str],
    dataset_id: pulumi.Input[str],
    labels: dict[str, str],
    protect: bool,
    parent: pulumi.Resource,
) -> gcp.bigquery.Table:
    """A managed table from its :class:`pipeline_sql.schema.TableDef` (schema JSON, time
    partitioning, clustering; protected when ``protect`` and the table is permanent)."""
    protected = bool(protect and td.protected)
    return gcp.bigquery.Table(
        f"{td.dataset}.{td.name}",
        project=project,
        dataset_id=dataset_id,
        table_id=td.name,
        description=td.description or None,
        schema=json.dumps(list(td.fields), sort_keys=True),
        time_partitioning=({"type": td.partition["type"], "field": td.partition["field"]} if td.partition else None),
        clusterings=list(td.clustering) or None,
        deletion_protection=protected,
        labels=labels,
        opts=pulumi.ResourceOptions(parent=parent, protect=protected),
    )


class PipelineRuntime(pulumi.ComponentResource):
    """Per-stack identities and notification topic shared by every TablePipeline."""

    service_accounts: dict[str, gcp.serviceaccount.Account]
    service_account_emails: dict[str, pulumi.Output[str]]
    topic: gcp.pubsub.Topic
    topic_path: pulumi.Output[str]
    agent_email: pulumi.Output[str]

    def __init__(self, name: str, args: PipelineRuntimeArgs, opts: Optional[pulumi.ResourceOptions] = None):
        super().__init__("flexyboots:table_pipeline:PipelineRuntime", name, None, opts)
        env = require_env("PipelineRuntime", args.env)
        missing = [d for d in DATASETS if d not in args.datasets]
        if missing:
            raise ComponentArgsError("PipelineRuntime", "datasets", f"a dataset id for every layer and quality; missing {', '.join(missing)}")
        child = pulumi.ResourceOptions(parent=self, depends_on=list(args.depends_on))
        self.args = args
        self.env = env

        # the Data Transfer service agent: created (after the API), never assumed
        self.agent = service_agent(f"{env}-dts-agent", DTS_API, args.project, parent=self, depends_on=args.depends_on)
        self.agent_email = self.agent.email
        agent_member = self.agent.member

        self.topic = gcp.pubsub.Topic(
            f"{env}-transfer-runs",
            name=f"{env}-transfer-runs",
            project=args.project,
            labels=make_labels(env, "table-pipeline", dict(args.extra_labels)),
            opts=child,
        )
        self.topic_path = pulumi.Output.concat("projects/", args.project, "/topics/", self.topic.name)
        self.publisher = gcp.pubsub.TopicIAMMember(
            f"{env}-transfer-runs-dts-publisher",
            project=args.project,
            topic=self.topic.name,
            role="roles/pubsub.publisher",
            member=agent_member,
            opts=child,
        )

        self.s3_dataset_updater = None
        if args.s3_transfers:
            self.s3_dataset_updater = gcp.projects.IAMCustomRole(
                f"{env}-s3-transfer-dataset-updater",
                project=args.project,
                role_id=f"flexyboots_{env}_s3_transfer_target",
                title=f"flexyboots {env} S3 transfer target",
                description="Lets an amazon_s3 transfer's account update its destination dataset (and nothing else).",
                permissions=list(S3_TRANSFER_PERMISSIONS),
                opts=child,
            )

        self.service_accounts = {}
        #: per layer, the grants a transfer config of that layer needs before it is created
        self.grants: dict[str, list[pulumi.Resource]] = {}
        for layer in STEPS + (REFRESH,):
            sa = gcp.serviceaccount.Account(
                f"{env}-dts-{layer}",
                account_id=f"{env}-dts-{layer}",
                display_name=f"flexyboots {env}: {layer} scheduled queries",
                description=f"Runs the {layer} layer of every table (Data Transfer Service). Managed by Pulumi.",
                project=args.project,
                opts=child,
            )
            self.service_accounts[layer] = sa
            sa_opts = pulumi.ResourceOptions(parent=self)
            grants = self.grants[layer] = [self.agent.role_grant, self.publisher]
            grants.append(gcp.projects.IAMMember(
                f"{env}-dts-{layer}-job-user",
                project=args.project,
                role="roles/bigquery.jobUser",
                member=sa.member,
                opts=sa_opts,
            ))
            reads, writes = LAYER_ACCESS[layer]
            access = [(ds, "edits", "roles/bigquery.dataEditor") for ds in writes]
            access += [(ds, "reads", "roles/bigquery.dataViewer") for ds in reads]
            for ds, verb, role in access:
                grants.append(gcp.bigquery.DatasetIamMember(
                    f"{env}-dts-{layer}-{verb}-{ds}",
                    project=args.project,
                    dataset_id=args.datasets[ds],
                    role=role,
                    member=sa.member,
                    opts=sa_opts,
                ))
            grants.append(gcp.serviceaccount.IAMMember(
                f"{env}-dts-{layer}-agent-token-creator",
                service_account_id=sa.name,
                role="roles/iam.serviceAccountTokenCreator",
                member=agent_member,
                opts=sa_opts,
            ))
            if layer == "staging" and args.landing_bucket is not None:
                grants.append(gcp.storage.BucketIAMMember(
                    f"{env}-dts-staging-reads-landing",
                    bucket=args.landing_bucket,
                    role="roles/storage.objectViewer",
                    member=sa.member,
                    opts=sa_opts,
                ))
            if layer == "staging" and self.s3_dataset_updater is not None:
                grants.append(gcp.bigquery.DatasetIamMember(
                    f"{env}-dts-staging-updates-staging",
                    project=args.project,
                    dataset_id=args.datasets["staging"],
                    role=self.s3_dataset_updater.name,
                    member=sa.member,
                    opts=sa_opts,
                ))
        self.service_account_emails = {layer: sa.email for layer, sa in self.service_accounts.items()}

        # ---- quality.check_results: written by every table's checks, never expires
        labels = make_labels(env, "table-pipeline", dict(args.extra_labels))
        self.shared_tables = {
            td.name: declare_table(td, args.project, args.datasets[td.layer], {**labels, "layer": td.layer}, args.protect, self)
            for td in shared_tables(Naming(project=_plain_project(args.project), env=env))
        }
        # the checks may only run once the table they append to exists
        self.grants["checks"].extend(self.shared_tables.values())
        self.register_outputs(
            {
                "service_account_emails": self.service_account_emails,
                "topic_path": self.topic_path,
                "agent_email": self.agent_email,
            }
        )


# --------------------------------------------------------------------------- pipeline


@dataclass
class TablePipelineArgs:
    spec: TableSpec
    #: the stack's Warehouse: project, env, BigQuery location and dataset ids come from it
    warehouse: Warehouse
    #: the stack's PipelineRuntime (same env and project, built on the warehouse's datasets)
    runtime: PipelineRuntime
    #: the DataLake whose GCS bucket staging loads from (a ``gcs`` source) or whose S3 bucket
    #: and read-only key the ``amazon_s3`` transfer uses (an ``s3`` source)
    datalake: Optional[DataLake] = None
    mode: str = "scheduled"
    start_time: str = "2025-01-01T02:07:00Z"
    layer_offset_minutes: int = 10
    failure_email: bool = False
    #: deletion protection on the permanent tables; None: as the warehouse (``protect``)
    protect: Optional[bool] = None
    extra_labels: Mapping[str, str] = field(default_factory=dict)


class TablePipeline(pulumi.ComponentResource):
    """One table spec deployed: its managed tables and its six transfer configs."""

    tables: dict[str, gcp.bigquery.Table]
    transfer_configs: dict[str, gcp.bigquery.DataTransferConfig]
    transfer_config_names: dict[str, pulumi.Output[str]]

    def __init__(self, name: str, args: TablePipelineArgs, opts: Optional[pulumi.ResourceOptions] = None):
        super().__init__("flexyboots:table_pipeline:TablePipeline", name, None, opts)
        self._validate(args)
        spec, warehouse = args.spec, args.warehouse
        naming = warehouse.naming
        datasets = warehouse.dataset_ids
        env = naming.env
        self.table = spec.table
        self.schedule = spec.schedule
        project = naming.project
        labels = make_labels(env, "table-pipeline", {"table": spec.table, **dict(args.extra_labels)})
        from_s3 = spec.source.location == "s3"
        protect = warehouse.protect if args.protect is None else args.protect
        landing_uri = args.datalake.landing_uri if args.datalake is not None else None

        # ---- tables that must exist before the first query runs
        self.tables = {}
        for td in pipeline_tables(spec, naming):
            if td.rebuilt_by_sql and not (from_s3 and td.layer == "staging"):
                continue  # the layer's own CREATE OR REPLACE makes it
            if td.view_query is not None:
                self.tables[f"{td.layer}.{td.name}"] = self._view(td, naming, datasets, labels)
                continue
            self.tables[f"{td.layer}.{td.name}"] = declare_table(
                td, project, datasets[td.layer], {**labels, "layer": td.layer}, protect, self
            )

        # ---- the five layers and the checks (an S3 table's staging is a transfer, not SQL)
        queries = {
            layer: render_layer(spec, naming, layer, landing_uri)
            for layer in STEPS
            if not (layer == "staging" and from_s3)
        }

        if args.mode == "scheduled":
            plan = layer_schedules(spec.schedule, args.start_time, args.layer_offset_minutes, len(STEPS))
        def common_of(step: str, display_name: str) -> dict:
            return dict(
                project=project,
                display_name=display_name,
                location=naming.location,
                service_account_name=args.runtime.service_account_emails[step],
                notification_pubsub_topic=args.runtime.topic_path,
                email_preferences={"enable_failure_email": True} if args.failure_email else None,
            )

        self.transfer_configs = {}
        for i, layer in enumerate(STEPS):
            # wait for the tables this layer's SQL touches and the grants it runs with
            reads, writes = LAYER_ACCESS[layer]
            depends = [t for key, t in self.tables.items() if key.split(".")[0] in reads + writes and layer != "checks"]
            if layer == "checks":  # its DWH table (the others' belong to their own pipelines)
                depends = [t for key, t in self.tables.items() if key == f"dwh.{spec.table}"]
            depends += args.runtime.grants[layer]
            common = common_of(layer, f"{env} {spec.table} {i + 1}-{layer}")
            if args.mode == "orchestrated":
                common["schedule_options"] = {"disable_auto_scheduling": True}
            else:
                common["schedule"] = plan[i].schedule
                common["schedule_options"] = {"start_time": plan[i].start_time}
            if layer == "staging" and from_s3:
                common.update(self._s3_source(spec, args.datalake, datasets["staging"]))
            else:
                common.update(data_source_id="scheduled_query", params={"query": queries[layer]})
            self.transfer_configs[layer] = gcp.bigquery.DataTransferConfig(
                f"{env}-{spec.table}-{layer}",
                **common,
                opts=pulumi.ResourceOptions(parent=self, depends_on=depends),
            )
        # ---- the full refresh: runnable on demand only (after a spec change that needs it)
        self.transfer_configs[REFRESH] = gcp.bigquery.DataTransferConfig(
            f"{env}-{spec.table}-{REFRESH}",
            **common_of(REFRESH, f"{env} {spec.table} full-refresh (manual)"),
            schedule_options={"disable_auto_scheduling": True},
            data_source_id="scheduled_query",
            params={"query": render_full_refresh(spec, naming)},
            opts=pulumi.ResourceOptions(
                parent=self,
                depends_on=[t for key, t in self.tables.items() if key.split(".")[0] in ("archive", "dwh")] + args.runtime.grants[REFRESH],
            ),
        )
        self.transfer_config_names = {layer: c.name for layer, c in self.transfer_configs.items()}
        self.register_outputs({"transfer_config_names": self.transfer_config_names})

    # ------------------------------------------------------------------ helpers

    def _view(self, td, naming, datasets, labels: dict[str, str]) -> gcp.bigquery.Table:
        """A view (``quality.<t>__rejects``): derived, so never protected (deletion protection
        off, or the provider refuses to replace it when its query changes); no schema (BigQuery
        derives it from the query; a declared one only risks perpetual diffs), no partitioning,
        clustering or expiration. It waits for the tables its query selects from."""
        reads = [t for key, t in self.tables.items() if f"`{naming.table_id(*key.split('.', 1))}`" in td.view_query]
        return gcp.bigquery.Table(
            f"{td.dataset}.{td.name}",
            project=naming.project,
            dataset_id=datasets[td.layer],
            table_id=td.name,
            description=td.description or None,
            view={"query": td.view_query, "use_legacy_sql": False},
            deletion_protection=False,
            labels={**labels, "layer": td.layer},
            opts=pulumi.ResourceOptions(parent=self, depends_on=reads),
        )

    @staticmethod
    def _s3_source(spec: TableSpec, lake: DataLake, staging_dataset: pulumi.Input[str]) -> dict:
        params: dict[str, pulumi.Input[str]] = {
            "destination_table_name_template": spec.table,
            # the previous day's dt= folder for a daily schedule (see transfer_data_path)
            "data_path": pulumi.Output.concat("s3://", lake.s3_bucket_name, "/", transfer_data_path(spec)),
            "access_key_id": lake.s3_access_key_id,
            "file_format": S3_FILE_FORMATS[spec.source.format],
            # staging holds the current batch: replace it with the files of the run's folder
            "write_disposition": "WRITE_TRUNCATE",
        }
        if spec.source.format == "csv":
            params.update(field_delimiter=spec.source.delimiter, skip_leading_rows="1", allow_quoted_newlines="true")
        return dict(
            data_source_id="amazon_s3",
            destination_dataset_id=staging_dataset,
            params=params,
            # the provider keeps it out of params and out of plan output; a Pulumi secret too
            sensitive_params={"secret_access_key": pulumi.Output.secret(lake.s3_secret_access_key)},
        )

    @staticmethod
    def _validate(args: TablePipelineArgs) -> None:
        c = "TablePipeline"
        if not isinstance(args, TablePipelineArgs):
            raise ComponentArgsError(c, "args", "a TablePipelineArgs", type(args).__name__)
        if not isinstance(args.spec, TableSpec):
            raise ComponentArgsError(c, "spec", "a pipeline_sql.spec.TableSpec", type(args.spec).__name__)
        wh = args.warehouse
        if not isinstance(wh, Warehouse):
            raise ComponentArgsError(c, "warehouse", "the stack's Warehouse (its naming, location and datasets are the pipeline's)", type(wh).__name__)
        env, project = wh.naming.env, wh.naming.project
        where = args.spec.file or args.spec.table
        rt = args.runtime
        if not isinstance(rt, PipelineRuntime):
            raise ComponentArgsError(c, "runtime", "the stack's PipelineRuntime", type(rt).__name__)
        if rt.env != env or (isinstance(rt.args.project, str) and rt.args.project != project):
            raise ComponentArgsError(
                c, "runtime", f"the PipelineRuntime of the warehouse's env {env!r} and project {project!r}",
                f"env {rt.env!r}, project {rt.args.project!r}",
            )
        for layer in DATASETS:
            mine, theirs = rt.args.datasets.get(layer), wh.dataset_ids[layer]
            if not (mine is theirs or (isinstance(mine, str) and mine == wh.naming.dataset(layer))):
                raise ComponentArgsError(
                    c, f"runtime.datasets[{layer!r}]",
                    f"the warehouse's dataset ({wh.naming.dataset(layer)}): the runtime's accounts are granted on its datasets",
                    mine,
                )
        if args.mode not in MODES:
            raise ComponentArgsError(c, "mode", f"one of {', '.join(MODES)}", args.mode)
        if args.protect is not None and not isinstance(args.protect, bool):
            raise ComponentArgsError(c, "protect", "True, False or None (as the warehouse)", args.protect)
        lake = args.datalake
        if lake is not None:
            if not isinstance(lake, DataLake):
                raise ComponentArgsError(c, "datalake", "the stack's DataLake", type(lake).__name__)
            if lake.env != env:
                raise ComponentArgsError(c, "datalake", f"the DataLake of the warehouse's env {env!r}", f"env {lake.env!r}")
        if args.spec.source.location == "gcs":
            if lake is None:
                raise ComponentArgsError(c, "datalake", f"the DataLake whose landing bucket staging loads from: {where} lands on GCS")
            if not bucket_location_compatible(wh.location, lake.location):
                raise ComponentArgsError(
                    c, "datalake.location",
                    f"a landing bucket BigQuery can load into datasets in {wh.location!r} from (same location, or any when the datasets are in US)",
                    lake.location,
                )
            if rt.args.landing_bucket is None or not (
                rt.args.landing_bucket is lake.bucket_name or rt.args.landing_bucket == lake.landing_uri.removeprefix("gs://")
            ):
                raise ComponentArgsError(
                    c, "runtime.landing_bucket",
                    f"the datalake's bucket {lake.landing_uri.removeprefix('gs://')!r} (the staging account must be allowed to read it)",
                    rt.args.landing_bucket,
                )
        if args.mode == "scheduled":
            try:
                layer_schedules(args.spec.schedule, args.start_time, args.layer_offset_minutes, len(STEPS))
            except ScheduleError as e:
                raise ComponentArgsError(c, "start_time/layer_offset_minutes", str(e)) from None
        if args.spec.source.location == "s3":
            if lake is None or lake.s3_bucket_name is None:
                raise ComponentArgsError(
                    c, "datalake.s3", f"a DataLake with the S3 landing bucket: {where} reads from S3 (enable flexyboots:datalake.s3)"
                )
            if not rt.args.s3_transfers:
                raise ComponentArgsError(
                    c, "runtime.s3_transfers", f"True: {where} loads staging with an amazon_s3 transfer, whose account must update the staging dataset"
                )
            if args.mode == "scheduled" and interval_minutes(args.spec.schedule) < S3_MIN_INTERVAL_MINUTES:
                raise ComponentArgsError(
                    c,
                    "spec.schedule",
                    "at least 24 hours between runs: Amazon S3 transfers recur at most once a day (or use orchestrated mode)",
                    args.spec.schedule,
                )
