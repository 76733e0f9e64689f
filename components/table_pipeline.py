"""A table's five ETL layers on BigQuery: its tables and five Data Transfer Service configs.

Two components live here:

``PipelineRuntime`` (``flexyboots:table_pipeline:PipelineRuntime``), once per stack
    The identities the scheduled queries run as and where they report failures. One service
    account PER LAYER, shared by every table: a per-table account would hit the default quota
    of 100 service accounts per project long before 1000 tables (and add ~10 IAM bindings per
    table), while one account for everything would let the staging load write the DWH. Each
    layer's account holds dataset-level ``roles/bigquery.dataEditor`` on the datasets its SQL
    writes, ``roles/bigquery.dataViewer`` on those it reads (:data:`LAYER_ACCESS`, checked
    against the rendered SQL by the tests) and project-level ``roles/bigquery.jobUser`` only;
    the staging account may also read the landing bucket. The BigQuery Data Transfer service
    agent (``service-<project number>@gcp-sa-bigquerydatatransfer.iam.gserviceaccount.com``)
    gets ``roles/iam.serviceAccountTokenCreator`` on each account (to run as it) and
    ``roles/pubsub.publisher`` on the run-notification topic.

``TablePipeline`` (``flexyboots:table_pipeline:TablePipeline``), one per table spec
    * the tables that must exist before any query runs, from
      :func:`pipeline_sql.schema.pipeline_tables` (tables the layer SQL rebuilds itself are
      left to the SQL), with schema JSON, time partitioning and clustering; deletion protection
      (and Pulumi ``protect``) on the permanent ones when the stack protects; the
      ``quality.<t>__rejects`` view over the archive (a ``view`` with its standard-SQL query,
      never protected: it is derived);
    * five ``gcp.bigquery.DataTransferConfig``: ``data_source_id="scheduled_query"`` with
      ``params={"query": <SQL>}`` only (DDL/DML scripts take nothing else), the SQL coming from
      :func:`pipeline_sql.render.render_table`. A table whose source is on S3 loads its staging
      layer with an ``amazon_s3`` transfer instead (secret key in ``sensitive_params``).
    * ``orchestrated`` mode disables auto scheduling (Airflow starts the runs in order);
      ``scheduled`` mode runs each layer on the spec's schedule, offset after the layer before
      (:mod:`components.schedule`).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Mapping, Optional

import pulumi
import pulumi_gcp as gcp

from components.common import ComponentArgsError, labels as make_labels, require_env
from components.schedule import ScheduleError, interval_minutes, layer_schedules
from pipeline_sql.naming import DATASETS, LAYERS, TEMPORARY_LAYERS, Naming
from pipeline_sql.render import render_table, transfer_data_path
from pipeline_sql.schema import pipeline_tables
from pipeline_sql.spec import TableSpec

MODES = ("scheduled", "orchestrated")

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
}

DTS_AGENT = "service-{number}@gcp-sa-bigquerydatatransfer.iam.gserviceaccount.com"
S3_FILE_FORMATS = {"csv": "CSV", "json": "JSON", "parquet": "PARQUET"}
#: Data Transfer Service: recurring Amazon S3 transfers run at most once every 24 hours.
S3_MIN_INTERVAL_MINUTES = 24 * 60
#: 2100-01-01T00:00:00Z: "never" for a managed table in a dataset with a default expiration
KEEP_UNTIL_MS = 4_102_444_800_000


# --------------------------------------------------------------------------- runtime


@dataclass
class PipelineRuntimeArgs:
    env: str
    project: pulumi.Input[str]
    #: dataset id per layer (and ``quality``), e.g. ``Warehouse.dataset_ids``
    datasets: Mapping[str, pulumi.Input[str]]
    #: landing bucket name the staging layer's LOAD DATA reads (None: no GCS sources)
    landing_bucket: Optional[pulumi.Input[str]] = None
    extra_labels: Mapping[str, str] = field(default_factory=dict)


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
        child = pulumi.ResourceOptions(parent=self)
        self.args = args

        number = gcp.organizations.get_project_output(project_id=args.project).number
        self.agent_email = number.apply(lambda n: DTS_AGENT.format(number=n))
        agent_member = self.agent_email.apply(lambda e: f"serviceAccount:{e}")

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

        self.service_accounts = {}
        #: per layer, the grants a transfer config of that layer needs before it is created
        self.grants: dict[str, list[pulumi.Resource]] = {}
        for layer in LAYERS:
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
            grants = self.grants[layer] = [self.publisher]
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
        self.service_account_emails = {layer: sa.email for layer, sa in self.service_accounts.items()}
        self.register_outputs(
            {
                "service_account_emails": self.service_account_emails,
                "topic_path": self.topic_path,
                "agent_email": self.agent_email,
            }
        )


# --------------------------------------------------------------------------- pipeline


@dataclass
class S3Source:
    """Where an S3-sourced table's files are and the key the transfer reads them with."""

    bucket: pulumi.Input[str]
    access_key_id: pulumi.Input[str]
    secret_access_key: pulumi.Input[str]


@dataclass
class TablePipelineArgs:
    spec: TableSpec
    naming: Naming  # project, env and BigQuery location (the transfer configs' location)
    runtime: PipelineRuntime
    #: dataset id per layer (Outputs carry the dependency on the datasets)
    datasets: Mapping[str, pulumi.Input[str]]
    #: ``gs://<landing bucket>``; a plain string renders without waiting for any output
    landing_uri: pulumi.Input[str] = "gs://landing"
    mode: str = "scheduled"
    start_time: str = "2025-01-01T02:00:00Z"
    layer_offset_minutes: int = 15
    failure_email: bool = False
    protect: bool = False
    s3: Optional[S3Source] = None
    extra_labels: Mapping[str, str] = field(default_factory=dict)


class TablePipeline(pulumi.ComponentResource):
    """One table spec deployed: its managed tables and its five transfer configs."""

    tables: dict[str, gcp.bigquery.Table]
    transfer_configs: dict[str, gcp.bigquery.DataTransferConfig]
    transfer_config_names: dict[str, pulumi.Output[str]]

    def __init__(self, name: str, args: TablePipelineArgs, opts: Optional[pulumi.ResourceOptions] = None):
        super().__init__("flexyboots:table_pipeline:TablePipeline", name, None, opts)
        self._validate(args)
        spec, naming = args.spec, args.naming
        env = naming.env
        self.table = spec.table
        project = naming.project
        labels = make_labels(env, "table-pipeline", {"table": spec.table, **dict(args.extra_labels)})
        from_s3 = spec.source.location == "s3"

        # ---- tables that must exist before the first query runs
        self.tables = {}
        for td in pipeline_tables(spec, naming):
            if td.rebuilt_by_sql and not (from_s3 and td.layer == "staging"):
                continue  # the layer's own CREATE OR REPLACE / LOAD DATA OVERWRITE makes it
            if td.view_query is not None:
                self.tables[f"{td.layer}.{td.name}"] = self._view(td, args, labels)
                continue
            protected = bool(args.protect and td.protected)
            # a table created in the staging dataset inherits its default expiration; the
            # amazon_s3 transfer needs its tables to stay, so they get an explicit far one
            expiration = KEEP_UNTIL_MS if td.layer in TEMPORARY_LAYERS else None
            self.tables[f"{td.layer}.{td.name}"] = gcp.bigquery.Table(
                f"{td.dataset}.{td.name}",
                project=project,
                dataset_id=args.datasets[td.layer],
                table_id=td.name,
                description=td.description or None,
                schema=json.dumps(list(td.fields), sort_keys=True),
                time_partitioning=(
                    {"type": td.partition["type"], "field": td.partition["field"]} if td.partition else None
                ),
                clusterings=list(td.clustering) or None,
                deletion_protection=protected,
                expiration_time=expiration,
                labels={**labels, "layer": td.layer},
                opts=pulumi.ResourceOptions(parent=self, protect=protected),
            )

        # ---- the five layers
        def sql(uri: str) -> dict[str, str]:
            return render_table(spec, naming, landing_uri=uri).layers

        if isinstance(args.landing_uri, str):
            rendered = sql(args.landing_uri)
            queries = {layer: rendered[layer] for layer in LAYERS}
        else:
            rendered_out = pulumi.Output.from_input(args.landing_uri).apply(sql)
            queries = {layer: rendered_out[layer] for layer in LAYERS}

        if args.mode == "scheduled":
            plan = layer_schedules(spec.schedule, args.start_time, args.layer_offset_minutes, len(LAYERS))
        self.transfer_configs = {}
        for i, layer in enumerate(LAYERS):
            # wait for the tables this layer's SQL touches and the grants it runs with
            reads, writes = LAYER_ACCESS[layer]
            depends = [t for key, t in self.tables.items() if key.split(".")[0] in reads + writes]
            depends += args.runtime.grants[layer]
            common = dict(
                project=project,
                display_name=f"{env} {spec.table} {i + 1}-{layer}",
                location=naming.location,
                service_account_name=args.runtime.service_account_emails[layer],
                notification_pubsub_topic=args.runtime.topic_path,
                email_preferences={"enable_failure_email": True} if args.failure_email else None,
            )
            if args.mode == "orchestrated":
                common["schedule_options"] = {"disable_auto_scheduling": True}
            else:
                common["schedule"] = plan[i].schedule
                common["schedule_options"] = {"start_time": plan[i].start_time}
            if layer == "staging" and from_s3:
                source = self._s3_source(spec, args)
                common.update(source)
            else:
                common.update(data_source_id="scheduled_query", params={"query": queries[layer]})
            self.transfer_configs[layer] = gcp.bigquery.DataTransferConfig(
                f"{env}-{spec.table}-{layer}",
                **common,
                opts=pulumi.ResourceOptions(parent=self, depends_on=depends),
            )
        self.transfer_config_names = {layer: c.name for layer, c in self.transfer_configs.items()}
        self.register_outputs({"transfer_config_names": self.transfer_config_names})

    # ------------------------------------------------------------------ helpers

    def _view(self, td, args: TablePipelineArgs, labels: dict[str, str]) -> gcp.bigquery.Table:
        """A view (``quality.<t>__rejects``): derived, so never protected (deletion protection
        off, or the provider refuses to replace it when its query changes); no schema (BigQuery
        derives it from the query; a declared one only risks perpetual diffs), no partitioning,
        clustering or expiration. It waits for the tables its query selects from."""
        reads = [t for key, t in self.tables.items() if f"`{args.naming.table_id(*key.split('.', 1))}`" in td.view_query]
        return gcp.bigquery.Table(
            f"{td.dataset}.{td.name}",
            project=args.naming.project,
            dataset_id=args.datasets[td.layer],
            table_id=td.name,
            description=td.description or None,
            view={"query": td.view_query, "use_legacy_sql": False},
            deletion_protection=False,
            labels={**labels, "layer": td.layer},
            opts=pulumi.ResourceOptions(parent=self, depends_on=reads),
        )

    @staticmethod
    def _s3_source(spec: TableSpec, args: TablePipelineArgs) -> dict:
        s3 = args.s3
        params: dict[str, pulumi.Input[str]] = {
            "destination_table_name_template": spec.table,
            # the previous day's dt= folder for a daily schedule (see transfer_data_path)
            "data_path": pulumi.Output.concat("s3://", s3.bucket, "/", transfer_data_path(spec)),
            "access_key_id": s3.access_key_id,
            "file_format": S3_FILE_FORMATS[spec.source.format],
            # staging holds the current batch: replace it with the files of the run's folder
            "write_disposition": "WRITE_TRUNCATE",
        }
        if spec.source.format == "csv":
            params.update(field_delimiter=spec.source.delimiter, skip_leading_rows="1", allow_quoted_newlines="true")
        return dict(
            data_source_id="amazon_s3",
            destination_dataset_id=args.datasets["staging"],
            params=params,
            # the provider keeps it out of params and out of plan output; a Pulumi secret too
            sensitive_params={"secret_access_key": pulumi.Output.secret(s3.secret_access_key)},
        )

    @staticmethod
    def _validate(args: TablePipelineArgs) -> None:
        c = "TablePipeline"
        if not isinstance(args.spec, TableSpec):
            raise ComponentArgsError(c, "spec", "a pipeline_sql.spec.TableSpec", type(args.spec).__name__)
        if not isinstance(args.naming, Naming) or not args.naming.env:
            raise ComponentArgsError(c, "naming", "a pipeline_sql.naming.Naming with an env", args.naming)
        require_env(c, args.naming.env, "naming.env")
        if args.mode not in MODES:
            raise ComponentArgsError(c, "mode", f"one of {', '.join(MODES)}", args.mode)
        missing = [d for d in DATASETS if d not in args.datasets]
        if missing:
            raise ComponentArgsError(c, "datasets", f"a dataset id for {', '.join(missing)}")
        if not isinstance(args.runtime, PipelineRuntime):
            raise ComponentArgsError(c, "runtime", "the stack's PipelineRuntime", type(args.runtime).__name__)
        if isinstance(args.landing_uri, str) and not args.landing_uri.startswith("gs://"):
            raise ComponentArgsError(c, "landing_uri", "gs://<landing bucket>", args.landing_uri)
        if args.mode == "scheduled":
            try:
                layer_schedules(args.spec.schedule, args.start_time, args.layer_offset_minutes)
            except ScheduleError as e:
                raise ComponentArgsError(c, "start_time/layer_offset_minutes", str(e)) from None
        if args.spec.source.location == "s3":
            if args.s3 is None:
                raise ComponentArgsError(
                    c, "s3", f"the S3 bucket and access key: {args.spec.file or args.spec.table} reads from S3 (enable flexyboots:datalake.s3)"
                )
            if args.mode == "scheduled" and interval_minutes(args.spec.schedule) < S3_MIN_INTERVAL_MINUTES:
                raise ComponentArgsError(
                    c,
                    "spec.schedule",
                    "at least 24 hours between runs: Amazon S3 transfers recur at most once a day (or use orchestrated mode)",
                    args.spec.schedule,
                )
