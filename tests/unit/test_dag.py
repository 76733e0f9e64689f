"""The generated Airflow DAG: compiles, one chain per table in layer order, real operator args."""

from __future__ import annotations

import sys
import types

import pytest

from components.dag import DagError, DagTable, chains, render_dag, transfer_config_id
from pipeline_sql.naming import LAYERS


def _table(name: str, prefix: str = "") -> DagTable:
    return DagTable(
        name,
        {layer: f"projects/123/locations/us/transferConfigs/{prefix or name}-{layer}" for layer in LAYERS},
    )


def _render(*tables: DagTable, **kw) -> str:
    return render_dag(list(tables), project="acme-data-dev", location="US", env="dev", **kw)


class _Task:
    """Stand-in for an Airflow operator: records its kwargs and its downstream edges."""

    registry: list["_Task"] = []

    def __init__(self, **kwargs):
        self.kind = type(self).__name__
        self.kwargs = kwargs
        self.task_id = kwargs["task_id"]
        self.downstream: list[_Task] = []
        _Task.registry.append(self)

    def __rshift__(self, other):
        self.downstream.append(other)
        return other


class _Start(_Task):
    pass


class _Sensor(_Task):
    pass


class _XComArg:
    def __init__(self, op, key="return_value"):
        self.op, self.key = op, key


class _Dag:
    def __init__(self, **kwargs):
        self.kwargs = kwargs

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False


@pytest.fixture
def fake_airflow(monkeypatch):
    """Just enough of the airflow import surface to execute the DAG file and record its graph."""
    mods = {
        "airflow": types.SimpleNamespace(DAG=_Dag),
        "airflow.models": types.SimpleNamespace(),
        "airflow.models.xcom_arg": types.SimpleNamespace(XComArg=_XComArg),
        "airflow.providers": types.SimpleNamespace(),
        "airflow.providers.google": types.SimpleNamespace(),
        "airflow.providers.google.cloud": types.SimpleNamespace(),
        "airflow.providers.google.cloud.operators": types.SimpleNamespace(),
        "airflow.providers.google.cloud.operators.bigquery_dts": types.SimpleNamespace(
            BigQueryDataTransferServiceStartTransferRunsOperator=_Start
        ),
        "airflow.providers.google.cloud.sensors": types.SimpleNamespace(),
        "airflow.providers.google.cloud.sensors.bigquery_dts": types.SimpleNamespace(
            BigQueryDataTransferServiceTransferRunSensor=_Sensor
        ),
    }
    for name, mod in mods.items():
        monkeypatch.setitem(sys.modules, name, mod)
    _Task.registry = []
    yield _Task
    _Task.registry = []


def _execute(text: str) -> dict:
    ns: dict = {"__name__": "flexyboots_dag"}
    exec(compile(text, "flexyboots_dev_etl.py", "exec"), ns)
    return ns


def test_dag_compiles_and_has_one_chain_per_table_in_layer_order():
    text = _render(_table("orders"), _table("customers"))
    compile(text, "dag.py", "exec")
    assert chains(text) == {"customers": list(LAYERS), "orders": list(LAYERS)}
    # tables sorted by name: customers's chain comes before orders's
    assert text.index("customers__staging =") < text.index("orders__staging =")
    assert "BigQueryDataTransferServiceStartTransferRunsOperator" in text
    assert "BigQueryDataTransferServiceTransferRunSensor" in text


def test_executed_dag_runs_each_table_staging_to_dwh_with_waits_between(fake_airflow):
    text = _render(_table("customers"), _table("orders"))
    _execute(text)
    tasks = {t.task_id: t for t in fake_airflow.registry}
    assert len(tasks) == 2 * len(LAYERS) * 2  # start + wait per layer per table
    for table in ("customers", "orders"):
        # follow the edges from staging.start: start -> wait -> next start -> ... -> dwh.wait
        walk, node = [], tasks[f"{table}.staging.start"]
        while True:
            walk.append(node.task_id)
            if not node.downstream:
                break
            (node,) = node.downstream
        assert walk == [f"{table}.{layer}.{step}" for layer in LAYERS for step in ("start", "wait")]
    start = tasks["orders.archive.start"]
    assert start.kind == "_Start"
    assert start.kwargs["transfer_config_id"] == "orders-archive"
    assert start.kwargs["project_id"] == "acme-data-dev" and start.kwargs["location"] == "US"
    assert start.kwargs["requested_run_time"] == {"seconds": "{{ data_interval_end.int_timestamp }}"}
    wait = tasks["orders.archive.wait"]
    assert wait.kind == "_Sensor"
    assert wait.kwargs["run_id"].op is start and wait.kwargs["run_id"].key == "run_id"
    assert wait.kwargs["expected_statuses"] == {"SUCCEEDED"}
    assert wait.kwargs["transfer_config_id"] == "orders-archive"


def test_dag_arguments(fake_airflow):
    ns = _execute(_render(_table("customers"), schedule="0 3 * * *"))
    dag = ns["dag"]
    assert dag.kwargs["dag_id"] == "flexyboots_dev_etl"
    assert dag.kwargs["schedule"] == "0 3 * * *"
    assert dag.kwargs["catchup"] is False and dag.kwargs["max_active_runs"] == 1


def test_rendering_is_deterministic_and_order_independent():
    a = _render(_table("a_table"), _table("b_table"))
    b = _render(_table("b_table"), _table("a_table"))
    assert a == b


def test_empty_platform_still_compiles():
    text = _render()
    compile(text, "dag.py", "exec")
    assert chains(text) == {}


def test_transfer_config_id_from_resource_name():
    assert transfer_config_id("projects/123/locations/eu/transferConfigs/6a1b-c") == "6a1b-c"
    assert transfer_config_id("projects/p/transferConfigs/xyz") == "xyz"
    assert transfer_config_id("abc_123") == "abc_123"
    with pytest.raises(DagError, match="transfer config"):
        transfer_config_id("x'); import os; ('")


@pytest.mark.parametrize(
    "table, message",
    [
        (DagTable("Bad-Name", {layer: "x" for layer in LAYERS}), "Bad-Name"),
        (DagTable("t", {layer: "x" for layer in LAYERS[:-1]}), "no transfer config for layer"),
        (DagTable("t", {**{layer: "x" for layer in LAYERS}, "gold": "x"}), "unknown layer"),
    ],
)
def test_bad_input_is_refused(table, message):
    with pytest.raises(DagError, match=message):
        _render(table)


def test_duplicate_table_is_refused():
    with pytest.raises(DagError, match="twice"):
        _render(_table("t"), _table("t", prefix="u"))
