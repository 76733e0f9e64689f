"""flexyboots: one Airflow DAG per table, built from the JSON manifest beside this file.

STATIC file, uploaded unchanged by flexyboots (components/dag.py) next to its manifest
``<this file's name>.json``; several copies (shards) may exist, each reading its own manifest,
so that no file holds too many DAGs to import quickly. Do not edit: `pulumi up` overwrites it.

Per table, DAG ``flexyboots_<env>__<table>`` runs on the table's own schedule
(``catchup=False``, ``max_active_runs=1``) the chain staging >> archive >> delta >> transform >>
dwh >> checks. A run triggered with the DAG param ``full_refresh`` set to true (``airflow dags
trigger <dag_id> --conf '{"full_refresh": true}'``, or the trigger form) takes the full-refresh
path instead: staging >> archive >> refresh >> checks, where ``refresh`` starts the table's
manual-only full-refresh config (transform and DWH rebuilt from the archive); the task
``refresh_or_layers`` (a BranchPythonOperator) picks the path and skips the other. Being one DAG
with ``max_active_runs=1``, a refresh never runs at the same time as a regular run of the table:
it waits queued for the running one, and the next scheduled run waits for it.

Each task is a :class:`TransferStep`: it starts a manual run of the step's BigQuery Data Transfer
config (automatic scheduling is off for these configs), or ADOPTS the
run of that config that is still pending or running (so a retry never starts a second run of a
layer while one is running), then defers to the Google provider's
``BigQueryDataTransferRunTrigger`` (Airflow's triggerer polls the run; no worker slot is held
while BigQuery works). Every wait is bounded by the task's ``execution_timeout``; a failed run
fails the task, which is retried; a task that fails for good logs one line starting with
``flexyboots task failed`` (the Cloud Monitoring alert policy matches it) and stops its table's
chain only: tables never depend on each other.
"""
from __future__ import annotations

import datetime
import json
import logging
import os
import pathlib

from airflow import DAG
from airflow.exceptions import AirflowException
from airflow.models.param import Param
from airflow.operators.python import BranchPythonOperator
from airflow.providers.google.cloud.operators.bigquery_dts import (
    BigQueryDataTransferServiceStartTransferRunsOperator,
)
from airflow.providers.google.cloud.triggers.bigquery_dts import BigQueryDataTransferRunTrigger

log = logging.getLogger("flexyboots")
MANIFEST_PATH = pathlib.Path(__file__).with_suffix(".json")
MANIFEST = json.loads(MANIFEST_PATH.read_text(encoding="utf-8"))
FAILURE_MARKER = "flexyboots task failed"
#: manifest formats this file reads: 1 (regular chain only), 2 (adds "full_refresh" per table)
FORMATS = (1, 2)


def alert_on_failure(context):
    """on_failure_callback: one ERROR line a log-based alert policy turns into an e-mail."""
    ti = context["task_instance"]
    log.error(
        "%s: dag=%s task=%s run=%s try=%s: %s",
        FAILURE_MARKER, ti.dag_id, ti.task_id, context.get("run_id"), ti.try_number, context.get("exception"),
    )


class TransferStep(BigQueryDataTransferServiceStartTransferRunsOperator):
    """Start (or adopt the active) run of one transfer config, then defer until it finished."""

    def __init__(self, *, poll_interval: int = 60, **kwargs) -> None:
        kwargs["deferrable"] = True
        super().__init__(**kwargs)
        self.poll_interval = poll_interval

    def _config_name(self) -> str:
        return f"projects/{self.project_id}/locations/{self.location}/transferConfigs/{self.transfer_config_id}"

    def _active_run(self):
        """The config's pending or running run, if any (started by an earlier try)."""
        from google.cloud.bigquery_datatransfer_v1 import TransferState

        runs = self.hook.get_conn().list_transfer_runs(
            request={"parent": self._config_name(), "states": [TransferState.PENDING, TransferState.RUNNING]},
            retry=self.retry,
            timeout=self.timeout,
            metadata=self.metadata,
        )
        return next(iter(runs), None)

    def execute(self, context):
        active = self._active_run()
        if active is not None:
            run_id = active.name.rsplit("/", 1)[-1]
            self.log.info("Adopting run %s of %s, still %s: not starting another", run_id, self.transfer_config_id, active.state.name)
        else:
            requested = dict(self.requested_run_time or {})
            if isinstance(requested.get("seconds"), str):
                requested["seconds"] = int(requested["seconds"])
            response = self.hook.start_manual_transfer_runs(
                transfer_config_id=self.transfer_config_id,
                requested_run_time=requested or None,
                project_id=self.project_id,
                retry=self.retry,
                timeout=self.timeout,
                metadata=self.metadata,
            )
            run_id = response.runs[0].name.rsplit("/", 1)[-1]
            self.log.info("Started run %s of %s", run_id, self.transfer_config_id)
        context["ti"].xcom_push(key="run_id", value=run_id)
        self.defer(
            trigger=BigQueryDataTransferRunTrigger(
                project_id=self.project_id,
                config_id=self.transfer_config_id,
                run_id=run_id,
                poll_interval=self.poll_interval,
                gcp_conn_id=self.gcp_conn_id,
                location=self.location,
                impersonation_chain=self.impersonation_chain,
            ),
            method_name="execute_completed",
            timeout=self.execution_timeout,
        )

    def execute_completed(self, context, event):
        if event.get("status") != "success":
            run_id = event.get("run_id") or context["ti"].xcom_pull(task_ids=self.task_id, key="run_id")
            raise AirflowException(f"transfer run {run_id} of {self.transfer_config_id}: {event.get('message')}")
        self.log.info("Run %s of %s succeeded", event["run_id"], self.transfer_config_id)
        return event["run_id"]


def choose_path(params, param, refresh_task, layers_task):
    """The branch: the full-refresh task when the run's ``param`` is true, else the layers."""
    if params.get(param) is True:
        log.info("%s=true: full refresh (%s), the layers are skipped", param, refresh_task)
        return refresh_task
    return layers_task


def _schedule(value):
    return datetime.timedelta(minutes=value["minutes"]) if isinstance(value, dict) else value


def _transfer_ids(table):
    """Config ids overridden through Composer's environment (FLEXYBOOTS_TRANSFER_<TABLE>)."""
    raw = os.environ.get("FLEXYBOOTS_TRANSFER_" + table.upper(), "")
    return dict(item.split("=", 1) for item in raw.split(",") if "=" in item)


def build(manifest):
    """The DAGs a manifest describes, by dag_id."""
    if manifest.get("format") not in FORMATS:
        raise ValueError(
            f"{MANIFEST_PATH.name}: manifest format {manifest.get('format')!r}; this DAG file reads formats "
            f"{', '.join(map(str, FORMATS))}: upload the DAG file and the manifest of the same flexyboots version"
        )
    settings = manifest["settings"]
    default_args = {
        "owner": "flexyboots",
        "retries": settings["retries"],
        "retry_delay": datetime.timedelta(seconds=settings["retry_delay_s"]),
        "on_failure_callback": alert_on_failure,
    }
    start_date = datetime.datetime.fromisoformat(settings["start_date"])
    run_time = {"seconds": "{{ data_interval_end.int_timestamp }}"}
    timeouts = settings["timeout_s"]
    dags = {}
    for t in manifest["tables"]:
        overrides = _transfer_ids(t["table"])
        steps = [s for s, _ in t["steps"]]
        refresh = t.get("full_refresh")  # absent in a format-1 manifest: no refresh path
        if refresh:
            first, last = steps.index(refresh["after"]) + 1, steps.index(refresh["before"])
            replaced = steps[first:last]
        # the longest path's waits: the layers, or the refresh in place of the steps it replaces
        longest = sum(timeouts[s] for s in steps)
        if refresh:
            longest = max(longest, longest - sum(timeouts[s] for s in replaced) + timeouts[refresh["task_id"]])
        dag = DAG(
            dag_id=t["dag_id"],
            description=f"flexyboots {manifest['env']}: {t['table']} ({t['schedule_text']})",
            schedule=_schedule(t["schedule"]),
            start_date=start_date,
            catchup=False,
            max_active_runs=1,
            dagrun_timeout=datetime.timedelta(seconds=longest),
            default_args=default_args,
            params=(
                {
                    refresh["param"]: Param(
                        False,
                        type="boolean",
                        title="Full refresh",
                        description="Rebuild transform and DWH from the archive (after a spec change that needs it) "
                        f"instead of running {', '.join(replaced)}.",
                    )
                }
                if refresh
                else {}
            ),
            tags=["flexyboots", manifest["env"]],
        )

        def step_task(step, config_id, **extra):
            return TransferStep(
                task_id=step,
                dag=dag,
                project_id=manifest["project"],
                location=manifest["location"],
                transfer_config_id=overrides.get(step, config_id),
                requested_run_time=dict(run_time),
                poll_interval=settings["poll_interval_s"],
                execution_timeout=datetime.timedelta(seconds=timeouts[step]),
                gcp_conn_id=settings["gcp_conn_id"],
                **extra,
            )

        tasks = {}
        for step, config_id in t["steps"]:
            # the step after the refresh path joins both paths: it runs when one of them succeeded
            join = {"trigger_rule": "none_failed_min_one_success"} if refresh and step == refresh["before"] else {}
            tasks[step] = step_task(step, config_id, **join)
        for a, b in zip(steps, steps[1:]):
            if not (refresh and a == refresh["after"]):
                tasks[a] >> tasks[b]
        if refresh:
            full = step_task(refresh["task_id"], refresh["config_id"])
            branch = BranchPythonOperator(
                task_id=f"{refresh['task_id']}_or_layers",
                dag=dag,
                python_callable=choose_path,
                op_kwargs={"param": refresh["param"], "refresh_task": full.task_id, "layers_task": steps[first]},
            )
            tasks[refresh["after"]] >> branch >> [tasks[steps[first]], full]
            full >> tasks[refresh["before"]]
        dags[t["dag_id"]] = dag
    return dags


globals().update(build(MANIFEST))
