"""The generated DAG files, loaded and run by real Airflow with the Data Transfer client faked.

The files are rendered by :func:`components.dag.render_dag_files` (what the Orchestrator uploads
and ``python -m stacks dags`` writes) from the shipped table specs, into a temporary DAG folder.
"""

from __future__ import annotations

import datetime as dt
import logging
from pathlib import Path

import pytest

from components.dag import STEPS, DagSettings, DagTable, dag_id, render_dag_files
from pipeline_sql.spec import load_specs

REPO = Path(__file__).resolve().parents[2]
SPECS = load_specs(REPO / "config" / "tables")
PROJECT, LOCATION = "flexyboots-prod", "EU"


def config_id(table: str, step: str) -> str:
    return f"cfg-{table}-{step}"


def render(folder: Path, per_file: int = 100, **settings) -> dict[str, str]:
    tables = [DagTable(s.table, {step: f"projects/123/locations/eu/transferConfigs/{config_id(s.table, step)}" for step in STEPS}, s.schedule) for s in SPECS]
    opts = dict(project=PROJECT, location=LOCATION, env="prod", start_time="2025-01-01T02:07:00Z", tables_per_file=per_file)
    opts.update(settings)
    files = render_dag_files(tables, DagSettings(**opts))
    folder.mkdir(parents=True, exist_ok=True)
    for name, text in files.items():
        (folder / name).write_text(text, encoding="utf-8")
    return files


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
        # one chain: staging >> archive >> delta >> transform >> dwh >> checks
        assert [t.task_id for t in dag.topological_sort()] == list(STEPS)
        for a, b in zip(STEPS, STEPS[1:]):
            assert dag.get_task(a).downstream_task_ids == {b}
        assert dag.get_task("staging").upstream_task_ids == set()
        for step in STEPS:
            task = dag.get_task(step)
            assert type(task).__name__ == "TransferStep" and task.deferrable is True
            assert task.transfer_config_id == config_id(spec.table, step)
            assert (task.project_id, task.location) == (PROJECT, LOCATION)
            assert task.execution_timeout == dt.timedelta(seconds=1800 if step == "checks" else 3600)
            assert task.retries == 2 and task.on_failure_callback is not None
        assert dag.get_task("checks").transfer_config_id == config_id(spec.table, "checks")


def test_dags_survive_serialization(tmp_path):
    """What the scheduler and webserver read: the serialized DAG."""
    from airflow.serialization.serialized_objects import SerializedDAG

    render(tmp_path / "dags")
    bag = dagbag(tmp_path / "dags")
    for dag in bag.dags.values():
        again = SerializedDAG.from_dict(SerializedDAG.to_dict(dag))
        assert [t.task_id for t in again.topological_sort()] == list(STEPS)
        assert again.max_active_runs == 1 and again.catchup is False


# --------------------------------------------------------------------------- running


def run_dag(tmp_path, table: str, **settings):
    """dag.test() of one table's DAG (triggers run inline), returning the DagRun."""
    render(tmp_path / "dags", retry_delay_s=0, poll_interval_s=1, **settings)
    dag = dagbag(tmp_path / "dags").dags[dag_id("prod", table)]
    when = dt.datetime(2025, 3, 1, 2, 7, tzinfo=dt.timezone.utc)
    return dag.test(execution_date=when)


def states(dagrun) -> dict[str, str]:
    return {ti.task_id: ti.state for ti in dagrun.get_task_instances()}


def test_a_run_starts_each_step_in_order_with_its_config_and_location(airflow_db, transfer_service, tmp_path):
    dr = run_dag(tmp_path, "customers")
    assert dr.state == "success", states(dr)
    assert set(states(dr).values()) == {"success"}
    parents = [s["parent"] for s in transfer_service.started]
    assert parents == [f"projects/{PROJECT}/locations/{LOCATION}/transferConfigs/{config_id('customers', s)}" for s in STEPS]
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
    assert got == {"staging": "success", "archive": "success", "delta": "success", "transform": "success", "dwh": "failed", "checks": "upstream_failed"}
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
