"""The DAG files (pure): manifests, shards, schedules, refusals. Real Airflow loads and runs the
same files in tests/airflow_dags/ (its own virtualenv)."""

from __future__ import annotations

import json
import re

import pytest

from components.dag import (
    CONFIGS,
    DAG_FILE,
    MANIFEST_FORMAT,
    REFRESH,
    STEPS,
    DagError,
    DagSettings,
    DagTable,
    airflow_schedule,
    chains,
    render_dag_files,
    render_manifests,
    shard_count,
    shard_of,
    transfer_config_id,
)

SETTINGS = DagSettings(project="acme-data-prod", location="EU", env="prod")


def _table(name: str, schedule: str = "every 24 hours", prefix: str = "") -> DagTable:
    return DagTable(
        name,
        {step: f"projects/123/locations/eu/transferConfigs/{prefix or name}-{step}" for step in CONFIGS},
        schedule,
    )


def test_one_dag_file_and_manifest_with_one_chain_per_table():
    files = render_dag_files([_table("orders", "every 1 hours"), _table("customers")], SETTINGS)
    assert sorted(files) == ["flexyboots_prod_00.json", "flexyboots_prod_00.py"]
    assert files["flexyboots_prod_00.py"] == DAG_FILE.read_text(encoding="utf-8")  # static, unchanged
    compile(files["flexyboots_prod_00.py"], "dag.py", "exec")
    assert chains(files) == {"customers": list(STEPS), "orders": list(STEPS)}
    m = json.loads(files["flexyboots_prod_00.json"])
    assert (m["project"], m["location"], m["env"]) == ("acme-data-prod", "EU", "prod")
    (customers, orders) = m["tables"]  # sorted by name
    assert customers["dag_id"] == "flexyboots_prod__customers"
    assert orders["steps"][0] == ["staging", "orders-staging"]  # the config id, from the resource name
    assert orders["steps"][-1] == ["checks", "orders-checks"]
    assert orders["schedule"] == "7 * * * *" and orders["schedule_text"] == "every 1 hours"
    assert m["settings"]["timeout_s"]["dwh"] == 3600 and m["settings"]["retries"] == 2


def test_the_manifest_carries_each_tables_full_refresh_config():
    files = render_dag_files([_table("orders", "every 1 hours"), _table("customers")], SETTINGS)
    m = json.loads(files["flexyboots_prod_00.json"])
    assert m["format"] == MANIFEST_FORMAT == 2
    (customers, orders) = m["tables"]
    assert orders["full_refresh"] == {
        "task_id": "refresh", "config_id": "orders-refresh", "param": "full_refresh", "after": "archive", "before": "checks",
    }
    assert customers["full_refresh"]["config_id"] == "customers-refresh"
    # the refresh is not one of the regular steps: a regular run never starts it
    assert all(step != REFRESH and cfg != "orders-refresh" for step, cfg in orders["steps"])
    assert m["settings"]["timeout_s"][REFRESH] == 10800  # delta + transform + dwh's budget
    # what a run triggered with {"full_refresh": true} runs, read back from the manifest
    assert chains(files, full_refresh=True) == {t: ["staging", "archive", "refresh", "checks"] for t in ("customers", "orders")}
    assert chains(files) == {t: list(STEPS) for t in ("customers", "orders")}


def test_the_static_dag_file_reads_this_manifest_format():
    text = DAG_FILE.read_text(encoding="utf-8")
    formats = re.search(r"^FORMATS = \(([\d, ]+)\)$", text, re.M)
    assert formats and MANIFEST_FORMAT in {int(x) for x in formats.group(1).split(",") if x.strip()}
    assert 1 in {int(x) for x in formats.group(1).split(",") if x.strip()}  # still reads the format before the refresh


@pytest.mark.parametrize(
    "schedule, expected",
    [
        ("every 24 hours", "7 2 * * *"),
        ("every 6 hours", "7 2,8,14,20 * * *"),
        ("every 1 hours", "7 * * * *"),
        ("every 15 minutes", "7,22,37,52 * * * *"),
        ("every 30 minutes", "7,37 * * * *"),
        ("every 90 minutes", {"minutes": 90}),
        ("every 5 hours", {"minutes": 300}),
        ("every day 03:10", "10 3 * * *"),
        ("every monday 06:30", "30 6 * * mon"),
    ],
)
def test_each_table_runs_on_its_own_schedule_phased_by_the_start_time(schedule, expected):
    assert airflow_schedule(schedule, "2025-01-01T02:07:00Z") == expected


def test_tables_spread_over_shards_stably():
    assert [shard_count(n, 100) for n in (0, 1, 100, 101, 200, 201, 2000)] == [1, 1, 1, 2, 2, 4, 32]
    names = [f"t{i:04d}" for i in range(2000)]
    manifests = render_manifests([_table(n) for n in names], SETTINGS)
    assert len(manifests) == 32
    sizes = [len(m["tables"]) for m in manifests.values()]
    assert sum(sizes) == 2000 and max(sizes) <= 100 * 1.3, sizes  # crc32 spreads them evenly
    # adding a table moves no other table (same shard count)
    more = render_manifests([_table(n) for n in names + ["t_new"]], SETTINGS)
    where = {t["table"]: stem for stem, m in manifests.items() for t in m["tables"]}
    where_more = {t["table"]: stem for stem, m in more.items() for t in m["tables"]}
    assert all(where_more[n] == where[n] for n in names)
    assert all(shard_of(n, 32) == int(where[n][-2:]) for n in names)


def test_rendering_is_deterministic_and_order_independent():
    a = render_dag_files([_table("a_table"), _table("b_table")], SETTINGS)
    b = render_dag_files([_table("b_table"), _table("a_table")], SETTINGS)
    assert a == b


def test_no_tables_no_files():
    assert render_dag_files([], SETTINGS) == {}


def test_the_static_dag_file_holds_no_table_or_project():
    text = DAG_FILE.read_text(encoding="utf-8")
    assert 'MANIFEST_PATH = pathlib.Path(__file__).with_suffix(".json")' in text
    assert not re.search(r"customers|orders|acme|flexyboots-prod", text)
    assert "catchup=False" in text and "max_active_runs=1" in text and "deferrable" in text


def test_transfer_config_id_from_resource_name():
    assert transfer_config_id("projects/123/locations/eu/transferConfigs/6a1b-c") == "6a1b-c"
    assert transfer_config_id("projects/p/transferConfigs/xyz") == "xyz"
    assert transfer_config_id("abc_123") == "abc_123"
    with pytest.raises(DagError, match="transfer config"):
        transfer_config_id("x'); import os; ('")


@pytest.mark.parametrize(
    "table, message",
    [
        (DagTable("Bad-Name", {s: "x" for s in CONFIGS}), "Bad-Name"),
        (DagTable("t", {s: "x" for s in CONFIGS if s != "checks"}), "no transfer config for step(s) checks"),
        (DagTable("t", {s: "x" for s in STEPS}), "no transfer config for step(s) refresh"),
        (DagTable("t", {**{s: "x" for s in CONFIGS}, "gold": "x"}), "unknown step"),
        (DagTable("t", {s: "x" for s in CONFIGS}, "every fortnight"), "schedule 'every fortnight'"),
    ],
)
def test_bad_input_is_refused(table, message):
    with pytest.raises(DagError, match=re.escape(message)):
        render_dag_files([table], SETTINGS)


@pytest.mark.parametrize(
    "settings, message",
    [
        (DagSettings(project="p", location="EU", env="Prod"), "env 'Prod'"),
        (DagSettings(project="p", location="EU", env="prod", start_time="02:07"), "start_time '02:07'"),
        (DagSettings(project="p", location="EU", env="prod", timeouts_s={"dwh": 60}), "timeouts_s"),
        (DagSettings(project="p", location="EU", env="prod", timeouts_s={s: 3600 for s in STEPS}), "timeouts_s"),
        (DagSettings(project="p", location="EU", env="prod", poll_interval_s=0), "poll_interval_s"),
    ],
)
def test_bad_settings_are_refused(settings, message):
    with pytest.raises(DagError, match=re.escape(message)):
        render_dag_files([_table("t")], settings)


def test_duplicate_table_is_refused():
    with pytest.raises(DagError, match="twice"):
        render_dag_files([_table("t"), _table("t", prefix="u")], SETTINGS)
