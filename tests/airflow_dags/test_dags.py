"""The generated DAG files, loaded and run by real Airflow with the Data Transfer client faked.

The files are rendered by :func:`components.dag.render_dag_files` (what the Orchestrator uploads
and ``python -m stacks dags`` writes) from the shipped table specs, into a temporary DAG folder.
"""

from __future__ import annotations

import datetime as dt
import logging
from pathlib import Path

import pytest

from components.dag import CONFIGS, STEPS, DagSettings, DagTable, dag_id, render_dag_files
from pipeline_sql.spec import load_specs

REPO = Path(__file__).resolve().parents[2]
SPECS = load_specs(REPO / "config" / "tables")
PROJECT, LOCATION = "flexyboots-prod", "EU"


def config_id(table: str, step: str) -> str:
    return f"cfg-{table}-{step}"


def render(folder: Path, per_file: int = 100, **settings) -> dict[str, str]:
    tables = [DagTable(s.table, {step: f"projects/123/locations/eu/transferConfigs/{config_id(s.table, step)}" for step in CONFIGS}, s.schedule) for s in SPECS]
    opts = dict(project=PROJECT, location=LOCATION, env="prod", start_time="2025-01-01T02:07:00Z", tables_per_file=per_file)
    opts.update(settings)
    files = render_dag_files(tables, DagSettings(**opts))
    folder.mkdir(parents=True, exist_ok=True)
    for name, text in files.items():
        (folder / name).write_text(text, encoding="utf-8")
    return files


#: the path a run triggered with {"full_refresh": true} takes, and the branch task that picks it
REFRESH_PATH = ["staging", "archive", "refresh", "checks"]
BRANCH = "refresh_or_layers"


def dagbag(folder: Path):
    from airflow.models import DagBag

    return DagBag(dag_folder=str(folder), include_examples=False, safe_mode=True)


# --------------------------------------------------------------------------- loading


def test_dagbag_imports_every_file_without_errors(tmp_path):
    files = render(tmp_path / "dags")
    bag = dagbag(tmp_path / "dags")
    assert bag.import_errors == {}
    assert sorted(bag.dag_ids) == sorted(dag_id("prod", s.table) for s in SPECS)
    assert len(files) == 2  # three tables: one shard, the DAG file and its manifest


def test_sharded_files_import_and_hold_each_table_once(tmp_path):
    files = render(tmp_path / "dags", per_file=1)  # 3 tables, one per file on average -> 4 shards
    bag = dagbag(tmp_path / "dags")
    assert bag.import_errors == {}
    assert sorted(bag.dag_ids) == sorted(dag_id("prod", s.table) for s in SPECS)
    assert len({n for n in files if n.endswith(".py")}) >= 2
    assert len({files[n] for n in files if n.endswith(".py")}) == 1  # the same static file everywhere


def test_each_table_has_its_chain_schedule_and_limits(tmp_path):
    from airflow.timetables.interval import CronDataIntervalTimetable

    render(tmp_path / "dags")
    bag = dagbag(tmp_path / "dags")
    expected_cron = {"customers": "7 2 * * *", "orders": "7 * * * *", "products": "7 2,8,14,20 * * *"}
    for spec in SPECS:
        dag = bag.dags[dag_id("prod", spec.table)]
        assert isinstance(dag.timetable, CronDataIntervalTimetable)
        assert dag.timetable._expression == expected_cron[spec.table], spec.schedule
        assert dag.catchup is False and dag.max_active_runs == 1
        assert dag.start_date == dt.datetime(2025, 1, 1, 2, 7, tzinfo=dt.timezone.utc)
        # staging >> archive >> refresh_or_layers >> (delta >> transform >> dwh | refresh) >> checks
        assert set(dag.task_ids) == set(CONFIGS) | {BRANCH}
        edges = {t.task_id: t.downstream_task_ids for t in dag.tasks}
        assert edges == {
            "staging": {"archive"}, "archive": {BRANCH}, BRANCH: {"delta", "refresh"},
            "delta": {"transform"}, "transform": {"dwh"}, "dwh": {"checks"}, "refresh": {"checks"}, "checks": set(),
        }
        assert type(dag.get_task(BRANCH)).__name__ == "BranchPythonOperator"
        # checks joins both paths: it runs after whichever ran, never after a failure
        assert dag.get_task("checks").trigger_rule == "none_failed_min_one_success"
        assert {dag.get_task(s).trigger_rule for s in CONFIGS if s != "checks"} == {"all_success"}
        for step in CONFIGS:
            task = dag.get_task(step)
            assert type(task).__name__ == "TransferStep" and task.deferrable is True
            assert task.transfer_config_id == config_id(spec.table, step)
            assert (task.project_id, task.location) == (PROJECT, LOCATION)
            expected = {"checks": 1800, "refresh": 10800}.get(step, 3600)
            assert task.execution_timeout == dt.timedelta(seconds=expected)
            assert task.retries == 2 and task.on_failure_callback is not None
        assert dag.get_task("checks").transfer_config_id == config_id(spec.table, "checks")
        # the param a manual trigger sets; scheduled runs take its default (a regular run)
        param = dag.params.get_param("full_refresh")
        assert param.value is False and param.schema["type"] == "boolean"
        # the longer path's waits: 2 x 1 h + max(3 x 1 h, 3 h) + 30 min
        assert dag.dagrun_timeout == dt.timedelta(seconds=19800)


def test_dags_survive_serialization(tmp_path):
    """What the scheduler and webserver read: the serialized DAG."""
    from airflow.serialization.serialized_objects import SerializedDAG

    render(tmp_path / "dags")
    bag = dagbag(tmp_path / "dags")
    for dag in bag.dags.values():
        again = SerializedDAG.from_dict(SerializedDAG.to_dict(dag))
        assert {t.task_id: t.downstream_task_ids for t in again.tasks} == {t.task_id: t.downstream_task_ids for t in dag.tasks}
        assert again.max_active_runs == 1 and again.catchup is False
        assert again.get_task("checks").trigger_rule == "none_failed_min_one_success"
        assert again.params.get_param("full_refresh").value is False


# --------------------------------------------------------------------------- running


def run_dag(tmp_path, table: str, conf: dict | None = None, **settings):
    """dag.test() of one table's DAG (triggers run inline), returning the DagRun; ``conf`` is
    the run's conf, as a manual trigger with config passes it."""
    render(tmp_path / "dags", retry_delay_s=0, poll_interval_s=1, **settings)
    dag = dagbag(tmp_path / "dags").dags[dag_id("prod", table)]
    when = dt.datetime(2025, 3, 1, 2, 7, tzinfo=dt.timezone.utc)
    return dag.test(execution_date=when, run_conf=conf)


def states(dagrun) -> dict[str, str]:
    return {ti.task_id: ti.state for ti in dagrun.get_task_instances()}


def test_a_run_starts_each_step_in_order_with_its_config_and_location(airflow_db, transfer_service, tmp_path):
    dr = run_dag(tmp_path, "customers")
    assert dr.state == "success", states(dr)
    # a regular run: every layer and the checks; the full refresh is skipped, never started
    assert states(dr) == {**{s: "success" for s in STEPS}, BRANCH: "success", "refresh": "skipped"}
    parents = [s["parent"] for s in transfer_service.started]
    assert parents == [f"projects/{PROJECT}/locations/{LOCATION}/transferConfigs/{config_id('customers', s)}" for s in STEPS]
    assert not any(p.endswith("/cfg-customers-refresh") for p in parents)
    # the run time is the data interval's end; every poll names the run under the same location
    assert {s["requested_run_time"] for s in transfer_service.started} == {dr.data_interval_end.timestamp()}
    assert all(name.startswith(f"projects/{PROJECT}/locations/{LOCATION}/transferConfigs/cfg-customers-") for name in transfer_service.polled)
    # before starting, each step asked for a pending or running run of its config
    assert transfer_service.listed[0] == {"parent": parents[0], "states": ["PENDING", "RUNNING"]}


def test_a_failed_run_stops_the_chain_and_leaves_other_tables_alone(airflow_db, transfer_service, tmp_path, caplog):
    transfer_service.script["cfg-orders-dwh"] = [["RUNNING", "FAILED"]] * 3  # every try fails
    with caplog.at_level(logging.ERROR, logger="flexyboots"):
        dr = run_dag(tmp_path, "orders")
    got = states(dr)
    assert dr.state == "failed"
    assert got == {
        "staging": "success", "archive": "success", BRANCH: "success", "delta": "success", "transform": "success",
        "dwh": "failed", "refresh": "skipped", "checks": "upstream_failed",
    }
    dwh_starts = [s for s in transfer_service.started if s["parent"].endswith("/cfg-orders-dwh")]
    assert len(dwh_starts) == 3  # first try + 2 retries, each after the previous run FAILED
    assert not any("cfg-orders-checks" in s["parent"] for s in transfer_service.started)
    assert not any("customers" in s["parent"] or "products" in s["parent"] for s in transfer_service.started)
    # on_failure_callback: one line a log-based alert policy matches
    assert any(r.getMessage().startswith("flexyboots task failed: dag=flexyboots_prod__orders task=dwh") for r in caplog.records)
    # the other tables' DAGs still run
    transfer_service.started.clear()
    assert run_dag(tmp_path, "products").state == "success"


def test_a_retry_adopts_the_run_still_going_instead_of_starting_another(airflow_db, transfer_service, tmp_path):
    # the first poll of the delta's run fails (an API error): the try fails, the run goes on
    transfer_service.script["cfg-customers-delta"] = [["RUNNING", "ERROR", "RUNNING", "SUCCEEDED"]]
    dr = run_dag(tmp_path, "customers")
    assert dr.state == "success", states(dr)
    delta_starts = [s for s in transfer_service.started if s["parent"].endswith("/cfg-customers-delta")]
    assert len(delta_starts) == 1, "a retry started a second run of the delta layer while one was running"
    (ti,) = [t for t in dr.get_task_instances() if t.task_id == "delta"]
    assert ti.try_number == 2
    # the retry polled the same run to its end
    delta_polls = [n for n in transfer_service.polled if "/cfg-customers-delta/" in n]
    assert len(set(delta_polls)) == 1 and len(delta_polls) == 4


# --------------------------------------------------------------------------- the full refresh


def test_a_run_triggered_with_full_refresh_starts_the_refresh_config_and_not_the_layers(airflow_db, transfer_service, tmp_path):
    dr = run_dag(tmp_path, "products", conf={"full_refresh": True})
    assert dr.state == "success", states(dr)
    assert dr.conf == {"full_refresh": True}
    assert states(dr) == {
        "staging": "success", "archive": "success", BRANCH: "success", "refresh": "success", "checks": "success",
        "delta": "skipped", "transform": "skipped", "dwh": "skipped",
    }
    parents = [s["parent"] for s in transfer_service.started]
    assert parents == [f"projects/{PROJECT}/locations/{LOCATION}/transferConfigs/{config_id('products', s)}" for s in REFRESH_PATH]
    for layer in ("delta", "transform", "dwh"):  # never started, not even asked about
        assert not any(f"/cfg-products-{layer}" in p for p in parents + [x["parent"] for x in transfer_service.listed])
    # the same start-or-adopt and deferred wait as every layer: asked for an active run first
    assert {"parent": parents[2], "states": ["PENDING", "RUNNING"]} in transfer_service.listed
    assert any("/cfg-products-refresh/runs/" in n for n in transfer_service.polled)


def test_a_failed_full_refresh_is_retried_alerts_and_skips_the_checks(airflow_db, transfer_service, tmp_path, caplog):
    transfer_service.script["cfg-customers-refresh"] = [["RUNNING", "FAILED"]] * 3
    with caplog.at_level(logging.ERROR, logger="flexyboots"):
        dr = run_dag(tmp_path, "customers", conf={"full_refresh": True})
    assert dr.state == "failed"
    got = states(dr)
    assert (got["refresh"], got["checks"], got["dwh"]) == ("failed", "upstream_failed", "skipped")
    assert len([s for s in transfer_service.started if s["parent"].endswith("/cfg-customers-refresh")]) == 3
    assert not any(s["parent"].endswith(("/cfg-customers-checks", "/cfg-customers-dwh")) for s in transfer_service.started)
    assert any(r.getMessage().startswith("flexyboots task failed: dag=flexyboots_prod__customers task=refresh") for r in caplog.records)


def test_a_full_refresh_param_that_is_not_a_boolean_is_refused_at_trigger(airflow_db, transfer_service, tmp_path):
    from airflow.exceptions import ParamValidationError

    with pytest.raises(ParamValidationError):
        run_dag(tmp_path, "orders", conf={"full_refresh": "yes"})
    assert transfer_service.started == []


def test_a_format_1_manifest_still_loads_with_the_regular_chain_only(tmp_path):
    """The static DAG file reads the manifest of the previous format (no full refresh)."""
    import json

    files = render(tmp_path / "dags")
    for name, text in files.items():
        if name.endswith(".json"):
            m = json.loads(text)
            m["format"] = 1
            for t in m["tables"]:
                del t["full_refresh"]
            del m["settings"]["timeout_s"]["refresh"]
            (tmp_path / "dags" / name).write_text(json.dumps(m), encoding="utf-8")
    bag = dagbag(tmp_path / "dags")
    assert bag.import_errors == {}
    for spec in SPECS:
        dag = bag.dags[dag_id("prod", spec.table)]
        assert [t.task_id for t in dag.topological_sort()] == list(STEPS)
        assert "full_refresh" not in dag.params and dag.get_task("checks").trigger_rule == "all_success"


def test_an_unknown_manifest_format_is_an_import_error_naming_the_file(tmp_path):
    import json

    files = render(tmp_path / "dags")
    (name,) = [n for n in files if n.endswith(".json")]
    m = json.loads(files[name])
    m["format"] = 99
    (tmp_path / "dags" / name).write_text(json.dumps(m), encoding="utf-8")
    bag = dagbag(tmp_path / "dags")
    (error,) = bag.import_errors.values()
    assert f"{name}: manifest format 99" in error and bag.dag_ids == []


def test_the_scheduler_never_runs_a_full_refresh_beside_a_regular_run(airflow_db, tmp_path):
    """max_active_runs=1 on the one DAG: Airflow's own trigger path queues the refresh, and the
    scheduler's own code starts it only once the regular run is over (and the other way round)."""
    from airflow.api.common.trigger_dag import trigger_dag
    from airflow.exceptions import ParamValidationError
    from airflow.jobs.job import Job
    from airflow.jobs.scheduler_job_runner import SchedulerJobRunner
    from airflow.models import DagModel, DagRun
    from airflow.models.serialized_dag import SerializedDagModel
    from airflow.utils.session import create_session
    from airflow.utils.state import DagRunState
    from airflow.utils.types import DagRunType

    render(tmp_path / "dags")
    dag = dagbag(tmp_path / "dags").dags[dag_id("prod", "customers")]
    with create_session() as session:
        session.query(DagRun).filter(DagRun.dag_id == dag.dag_id).delete()
    dag.sync_to_db()
    SerializedDagModel.write_dag(dag)
    with create_session() as session:
        session.query(DagModel).filter(DagModel.dag_id == dag.dag_id).update({"is_paused": False})

    when = dt.datetime(2025, 4, 1, 2, 7, tzinfo=dt.timezone.utc)
    regular = dag.create_dagrun(
        run_type=DagRunType.SCHEDULED, execution_date=when, state=DagRunState.RUNNING,
        data_interval=(when - dt.timedelta(days=1), when),
    )
    with pytest.raises(ParamValidationError):  # the trigger itself refuses a non-boolean
        trigger_dag(dag.dag_id, conf={"full_refresh": "yes"}, execution_date=when + dt.timedelta(hours=1))
    refresh = trigger_dag(dag.dag_id, conf={"full_refresh": True}, execution_date=when + dt.timedelta(hours=1))
    assert refresh.state == DagRunState.QUEUED

    def start_queued():
        runner = SchedulerJobRunner(job=Job(), subdir=str(tmp_path / "dags"))
        with create_session() as session:
            runner._start_queued_dagruns(session)
        with create_session() as session:
            return {r.run_id: r.state for r in session.query(DagRun).filter(DagRun.dag_id == dag.dag_id)}

    assert start_queued()[refresh.run_id] == DagRunState.QUEUED  # the regular run is still running
    with create_session() as session:
        session.query(DagRun).filter(DagRun.run_id == regular.run_id).update({"state": DagRunState.SUCCESS})
    assert start_queued()[refresh.run_id] == DagRunState.RUNNING
    # and the next scheduled run waits for the refresh
    nxt = dag.create_dagrun(
        run_type=DagRunType.SCHEDULED, execution_date=when + dt.timedelta(days=1), state=DagRunState.QUEUED,
        data_interval=(when, when + dt.timedelta(days=1)),
    )
    assert start_queued()[nxt.run_id] == DagRunState.QUEUED
