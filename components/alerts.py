"""``Alerts``: Cloud Monitoring tells a person when a pipeline fails.

API::

    Alerts(name: str, args: AlertsArgs, opts: pulumi.ResourceOptions | None = None)

``AlertsArgs``
    ``env``, ``project``
    ``email``                     who is e-mailed (from the stack config ``flexyboots:alerts.email``)
    ``dwh_dataset``               the DWH dataset id (``<env>_dwh``): the check-failure filter names it
    ``composer_environment = None``  the Composer environment's name: adds the Airflow policy
    ``extra_labels``

Creates (type ``flexyboots:alerts:Alerts``):

* a ``gcp.monitoring.NotificationChannel`` of type ``email`` (``labels.email_address``);
* alert policy **transfer runs failed**: a metric threshold on
  ``bigquerydatatransfer.googleapis.com/transfer_config/completed_runs`` (resource
  ``bigquery_dts_config``) with ``completion_state = "FAILED"``, summed per config over 5
  minutes, above 0. BigQuery Data Transfer e-mails only a config's owner, a service account
  here, so this is how a failed layer (scheduled or started by Airflow) reaches a person;
* alert policy **error-severity checks failed**: a log match on BigQuery's audit log for jobs
  whose error starts with :data:`pipeline_sql.checks.FAILURE_MARKER` on this env's DWH
  (``protoPayload.metadata.jobChange.job.jobStatus.errorResult.message``): the checks script's
  ``ERROR()`` after it wrote its results. Log-match policies need a notification rate limit
  (one e-mail per 5 minutes per policy here);
* with Composer, alert policy **Airflow task failed**: a log match on the environment's logs for
  the line the DAGs' ``on_failure_callback`` writes (``flexyboots task failed: dag=...``).

Filters are rendered by pure functions (:func:`transfer_failures_filter`,
:func:`check_failures_filter`, :func:`airflow_failures_filter`) and tested without Pulumi.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Mapping, Optional

import pulumi
import pulumi_gcp as gcp

from components.common import ComponentArgsError, labels as make_labels, require_env
from pipeline_sql.checks import FAILURE_MARKER

TYPE = "flexyboots:alerts:Alerts"
#: The line the DAG file's on_failure_callback logs (components/airflow/flexyboots_dags.py).
AIRFLOW_FAILURE_MARKER = "flexyboots task failed"
TRANSFER_RUNS_METRIC = "bigquerydatatransfer.googleapis.com/transfer_config/completed_runs"
#: at most one e-mail per log-match policy per this period (required for log-match policies)
NOTIFICATION_PERIOD = "300s"
_EMAIL = re.compile(r"^[A-Za-z0-9._%+\-]+@[A-Za-z0-9.\-]+\.[A-Za-z]{2,}$")


def transfer_failures_filter() -> str:
    return (
        'resource.type = "bigquery_dts_config" AND '
        f'metric.type = "{TRANSFER_RUNS_METRIC}" AND '
        'metric.labels.completion_state = "FAILED"'
    )


def check_failures_filter(project: str, dwh_dataset: str) -> str:
    """BigQuery jobs that failed with the checks script's message, on this env's DWH only."""
    return (
        'resource.type="bigquery_project"\n'
        'protoPayload.metadata.jobChange.after="DONE"\n'
        f'protoPayload.metadata.jobChange.job.jobStatus.errorResult.message:"{FAILURE_MARKER} on {project}.{dwh_dataset}."'
    )


def airflow_failures_filter(project: str, environment: str) -> str:
    return (
        'resource.type="cloud_composer_environment"\n'
        f'resource.labels.project_id="{project}"\n'
        f'resource.labels.environment_name="{environment}"\n'
        f'textPayload:"{AIRFLOW_FAILURE_MARKER}"'
    )


@dataclass
class AlertsArgs:
    env: str
    project: str
    email: str
    dwh_dataset: str
    composer_environment: Optional[pulumi.Input[str]] = None
    extra_labels: Mapping[str, str] = field(default_factory=dict)

    def validate(self) -> None:
        require_env("Alerts", self.env)
        if not isinstance(self.email, str) or not _EMAIL.match(self.email):
            raise ComponentArgsError("Alerts", "email", "an e-mail address such as 'data-team@example.com'", self.email)
        if not isinstance(self.dwh_dataset, str) or not re.match(r"^[A-Za-z0-9_]{1,1024}$", self.dwh_dataset):
            raise ComponentArgsError("Alerts", "dwh_dataset", "the DWH dataset id, e.g. 'prod_dwh'", self.dwh_dataset)


class Alerts(pulumi.ComponentResource):
    channel: gcp.monitoring.NotificationChannel
    policies: dict[str, gcp.monitoring.AlertPolicy]

    def __init__(self, name: str, args: AlertsArgs, opts: Optional[pulumi.ResourceOptions] = None) -> None:
        if not isinstance(args, AlertsArgs):
            raise ComponentArgsError("Alerts", "args", "an AlertsArgs", type(args).__name__)
        args.validate()
        super().__init__(TYPE, name, None, opts)
        env, project = args.env, args.project
        child = pulumi.ResourceOptions(parent=self)
        labels = make_labels(env, "alerts", dict(args.extra_labels))

        self.channel = gcp.monitoring.NotificationChannel(
            f"{env}-pipeline-alerts-email",
            project=project,
            display_name=f"flexyboots {env}: pipeline alerts",
            type="email",
            labels={"email_address": args.email},
            user_labels=labels,
            opts=child,
        )
        channels = [self.channel.name]
        doc = "flexyboots {env}: {what}\n\n{how}"
        self.policies = {}
        self.policies["transfer-runs"] = gcp.monitoring.AlertPolicy(
            f"{env}-transfer-runs-failed",
            project=project,
            display_name=f"flexyboots {env}: a transfer run failed",
            combiner="OR",
            severity="ERROR",
            conditions=[
                {
                    "display_name": "BigQuery Data Transfer run FAILED",
                    "condition_threshold": {
                        "filter": transfer_failures_filter(),
                        "comparison": "COMPARISON_GT",
                        "threshold_value": 0,
                        "duration": "0s",
                        "aggregations": [{"alignment_period": "300s", "per_series_aligner": "ALIGN_SUM"}],
                        "trigger": {"count": 1},
                    },
                }
            ],
            alert_strategy={"auto_close": "86400s"},
            documentation={
                "mime_type": "text/markdown",
                "content": doc.format(
                    env=env,
                    what="a layer's or a check's scheduled query failed.",
                    how="Open BigQuery > Data transfers, the config named in the incident (its display name is `<env> <table> <n>-<step>`), Run history. "
                    "Layers are idempotent: fix the cause and start the run again (or let the next run finish the job).",
                ),
            },
            notification_channels=channels,
            user_labels=labels,
            opts=child,
        )
        def log_policy(key: str, name: str, title: str, condition: str, log_filter: pulumi.Input[str], what: str, how: str) -> None:
            """A log-match policy (they need a notification rate limit)."""
            self.policies[key] = gcp.monitoring.AlertPolicy(
                name,
                project=project,
                display_name=title,
                combiner="OR",
                severity="ERROR",
                conditions=[{"display_name": condition, "condition_matched_log": {"filter": log_filter}}],
                alert_strategy={"notification_rate_limit": {"period": NOTIFICATION_PERIOD}, "auto_close": "86400s"},
                documentation={"mime_type": "text/markdown", "content": doc.format(env=env, what=what, how=how)},
                notification_channels=channels,
                user_labels=labels,
                opts=child,
            )

        log_policy(
            "checks",
            f"{env}-checks-failed",
            f"flexyboots {env}: an error-severity data-quality check failed",
            "checks failed (BigQuery job error)",
            check_failures_filter(project, args.dwh_dataset),
            "an error-severity check failed; its results are in quality.check_results.",
            f"SELECT * FROM `{project}.{env}_quality.check_results` WHERE NOT passed ORDER BY checked_at DESC LIMIT 50",
        )
        if args.composer_environment is not None:
            log_policy(
                "airflow",
                f"{env}-airflow-task-failed",
                f"flexyboots {env}: an Airflow task failed",
                "on_failure_callback logged a failed task",
                pulumi.Output.from_input(args.composer_environment).apply(lambda e: airflow_failures_filter(project, e)),
                "a task of a table's DAG failed after its retries.",
                "Open the Airflow UI (stack output airflow_uri), DAG flexyboots_<env>__<table>; clear the failed task to retry it "
                "(it adopts a transfer run still going instead of starting another).",
            )
        self.register_outputs({"channel": self.channel.name})
