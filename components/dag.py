"""The Airflow DAG files of an orchestrated stack: a static DAG file plus JSON manifests (pure).

Layout, chosen by measurement (``benchmarks/dag_bench.py``; see the README): ONE DAG PER TABLE,
so each table runs on its own schedule with ``max_active_runs=1`` and a failure stops only its
own chain. The table's FULL REFRESH (its manual-only ``refresh`` transfer config: transform and
DWH rebuilt from the archive) is a path of that same DAG, taken by a run triggered with the DAG
param ``full_refresh`` = true (:data:`REFRESH_PARAM`): staging >> archive >> refresh >> checks
instead of delta >> transform >> dwh. Being the same DAG, ``max_active_runs=1`` keeps a refresh
and a regular run of the table from ever running at once (two MERGEs on one DWH).

The DAGs are built by a small STATIC Python file (``components/airflow/flexyboots_dags.py``,
uploaded unchanged) from the JSON manifest uploaded beside it, instead of thousands of lines of
generated Python. Tables are spread over several copies of that file
(shards, each with its own manifest) so that no file holds more than about
:data:`TABLES_PER_FILE` tables: Airflow imports each file within its own timeout (Composer: 30 s
by default) and the total import time grows linearly with the number of tables.

A table goes to shard ``crc32(table) % shards`` with ``shards`` the smallest power of two that
keeps the average at most :data:`TABLES_PER_FILE`: adding a table moves no other table unless
the number of shards doubles (then about half of them move once).

:class:`components.orchestrator.Orchestrator` calls :func:`render_dag_files` inside an ``apply``
once the transfer configs have names, and uploads every file to the Composer DAG folder;
``python -m stacks dags`` writes the same files to a folder. Everything is deterministic
(tables sorted, keys sorted, no timestamps): an unchanged platform re-uploads nothing.
"""

from __future__ import annotations

import json
import math
import re
import zlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable, Mapping

from components.schedule import ScheduleError, interval_minutes
from pipeline_sql.naming import LAYERS

#: What each table's DAG runs, in order: the five layers, then the checks.
STEPS = LAYERS + ("checks",)
#: The on-demand full refresh (a manual-only transfer config per table): in a run triggered with
#: ``{"full_refresh": true}`` it replaces the steps after :data:`REFRESH_AFTER` and before
#: :data:`REFRESH_BEFORE` (delta, transform, dwh).
REFRESH = "refresh"
REFRESH_PARAM = "full_refresh"
REFRESH_AFTER, REFRESH_BEFORE = "archive", "checks"
#: Every transfer config a table's DAG starts.
CONFIGS = STEPS + (REFRESH,)
#: The static DAG file every shard uploads unchanged.
DAG_FILE = Path(__file__).with_name("airflow") / "flexyboots_dags.py"
#: Tables per DAG file, at most on average (measured: ~0.2 s per 100 tables; see the README).
TABLES_PER_FILE = 100
#: Manifest format: 1 (the regular chain only), 2 (adds each table's ``full_refresh``). The
#: static DAG file reads both.
MANIFEST_FORMAT = 2
#: The triggerer the DAGs' deferrable tasks wait on (Composer runs none unless its count is
#: set): added to a Composer environment's workloads when they name none.
DEFAULT_TRIGGERER = {"cpu": 0.5, "count": 1, "memory_gb": 1}
#: Per-step wait limits (seconds): a run still going after this fails the try (and is adopted,
#: not restarted, by the retry). The full refresh does the work of delta, transform and dwh over
#: the whole archive in one script: it gets their three hours.
DEFAULT_TIMEOUTS = {
    "staging": 3600, "archive": 3600, "delta": 3600, "transform": 3600, "dwh": 3600, "checks": 1800, REFRESH: 10800,
}

_TABLE = re.compile(r"^[a-z][a-z0-9_]{0,62}$")
_CONFIG_ID = re.compile(r"^[A-Za-z0-9_\-]{1,128}$")
_ENV = re.compile(r"^[a-z][a-z0-9]{0,15}$")
# A transfer config's resource name: projects/<p>/locations/<l>/transferConfigs/<id>
_CONFIG_NAME = re.compile(r"^projects/[^/]+/(?:locations/[^/]+/)?transferConfigs/([^/]+)$")
_START = re.compile(r"^(\d{4})-(\d{2})-(\d{2})T(\d{2}):(\d{2}):(\d{2})Z$")
_WEEKDAYS = ("monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday")


class DagError(ValueError):
    """The DAG files cannot be rendered from what they were given."""


@dataclass(frozen=True)
class DagTable:
    """One table: its spec schedule and the transfer config (name or id) of each step
    (:data:`CONFIGS`: the five layers, the checks and the full refresh)."""

    table: str
    transfer_configs: Mapping[str, str] = field(default_factory=dict)
    schedule: str = "every 24 hours"


@dataclass(frozen=True)
class DagSettings:
    """What every DAG of a stack shares (from the stack config)."""

    project: str
    location: str
    env: str
    #: the stack's ``pipelines.start_time``: the DAGs' start date and their schedules' phase
    start_time: str = "2025-01-01T02:07:00Z"
    retries: int = 2
    retry_delay_s: int = 300
    poll_interval_s: int = 60
    timeouts_s: Mapping[str, int] = field(default_factory=lambda: dict(DEFAULT_TIMEOUTS))
    gcp_conn_id: str = "google_cloud_default"
    tables_per_file: int = TABLES_PER_FILE


def transfer_config_id(name: str) -> str:
    """The config id the Airflow operators take, from a resource name or a bare id."""
    if not isinstance(name, str) or not name:
        raise DagError(f"transfer config {name!r}: expected a resource name or an id")
    m = _CONFIG_NAME.match(name)
    cid = m.group(1) if m else name
    if not _CONFIG_ID.match(cid):
        raise DagError(
            f"transfer config {name!r}: expected 'projects/P/locations/L/transferConfigs/ID' or an id of letters, digits, _ and -"
        )
    return cid


def dag_id(env: str, table: str) -> str:
    return f"flexyboots_{env}__{table}"


def airflow_schedule(schedule: str, start_time: str) -> str | dict:
    """A spec schedule as an Airflow schedule: a cron string when the period divides an hour or
    a day (phased by ``start_time``'s minute and hour, like the scheduled queries), else
    ``{"minutes": N}`` (a ``timedelta`` in the DAG file)."""
    m = _START.match(start_time)
    if not m:
        raise DagError(f"start_time {start_time!r}: expected UTC 'YYYY-MM-DDTHH:MM:SSZ'")
    h0, m0 = int(m.group(4)), int(m.group(5))
    try:
        every = interval_minutes(schedule)
    except ScheduleError as e:
        raise DagError(str(e)) from None
    iv = re.match(r"^every (\d+) (minutes|hours)$", schedule)
    if iv:
        if every < 60 and 60 % every == 0:
            return f"{','.join(str(x) for x in sorted((m0 + k * every) % 60 for k in range(60 // every)))} * * * *"
        if every == 60:
            return f"{m0} * * * *"
        if every % 60 == 0 and (24 * 60) % every == 0:
            n = every // 60
            return f"{m0} {','.join(str(x) for x in sorted((h0 + k * n) % 24 for k in range(24 // n)))} * * *"
        return {"minutes": every}
    d = re.match(r"^every (\w+)(?: (\d\d):(\d\d))?$", schedule)
    hh, mm = int(d.group(2) or 0), int(d.group(3) or 0)
    dow = "*" if d.group(1) == "day" else d.group(1)[:3]
    return f"{mm} {hh} * * {dow}"


def shard_count(tables: int, per_file: int = TABLES_PER_FILE) -> int:
    """Smallest power of two keeping the average shard at most ``per_file`` tables."""
    need = max(1, math.ceil(tables / per_file))
    return 1 << (need - 1).bit_length()


def shard_of(table: str, shards: int) -> int:
    return zlib.crc32(table.encode()) % shards


def file_stem(env: str, shard: int) -> str:
    return f"flexyboots_{env}_{shard:02d}"


def _validate(tables: Iterable[DagTable]) -> list[tuple[str, str, dict[str, str]]]:
    out: dict[str, tuple[str, dict[str, str]]] = {}
    for t in tables:
        if not isinstance(t.table, str) or not _TABLE.match(t.table):
            raise DagError(f"table {t.table!r}: expected lower-case letters, digits and _ starting with a letter")
        if t.table in out:
            raise DagError(f"table {t.table!r} appears twice; expected each table once")
        missing = [s for s in CONFIGS if s not in t.transfer_configs]
        extra = sorted(set(t.transfer_configs) - set(CONFIGS))
        if missing:
            raise DagError(f"table {t.table!r}: no transfer config for step(s) {', '.join(missing)}")
        if extra:
            raise DagError(f"table {t.table!r}: unknown step(s) {', '.join(extra)}; expected {', '.join(CONFIGS)}")
        out[t.table] = (t.schedule, {s: transfer_config_id(t.transfer_configs[s]) for s in CONFIGS})
    return [(name, sched, ids) for name, (sched, ids) in sorted(out.items())]


def render_manifests(tables: Iterable[DagTable], settings: DagSettings) -> dict[str, dict]:
    """Manifest (a JSON-able dict) per shard file stem, for the tables of that shard; empty
    shards are left out."""
    if not _ENV.match(settings.env or ""):
        raise DagError(f"env {settings.env!r}: expected 1-16 lower-case letters and digits")
    if sorted(settings.timeouts_s) != sorted(CONFIGS) or any(not isinstance(v, int) or v < 60 for v in settings.timeouts_s.values()):
        raise DagError(f"timeouts_s: expected whole seconds >= 60 for each of {', '.join(CONFIGS)}")
    if settings.retries < 0 or settings.retry_delay_s < 0 or settings.poll_interval_s < 1:
        raise DagError("retries and retry_delay_s >= 0, poll_interval_s >= 1 expected")
    m = _START.match(settings.start_time)
    if not m:
        raise DagError(f"start_time {settings.start_time!r}: expected UTC 'YYYY-MM-DDTHH:MM:SSZ'")
    rows = _validate(tables)
    shards = shard_count(len(rows), settings.tables_per_file)
    common = {
        "format": MANIFEST_FORMAT,
        "env": settings.env,
        "project": settings.project,
        "location": settings.location,
        "settings": {
            "start_date": settings.start_time.replace("Z", "+00:00"),
            "retries": settings.retries,
            "retry_delay_s": settings.retry_delay_s,
            "poll_interval_s": settings.poll_interval_s,
            "timeout_s": dict(sorted(settings.timeouts_s.items())),
            "gcp_conn_id": settings.gcp_conn_id,
        },
    }
    out: dict[str, dict] = {}
    for table, schedule, ids in rows:
        stem = file_stem(settings.env, shard_of(table, shards))
        entry = {
            "table": table,
            "dag_id": dag_id(settings.env, table),
            "schedule": airflow_schedule(schedule, settings.start_time),
            "schedule_text": schedule,
            "steps": [[s, ids[s]] for s in STEPS],
            # run instead of the steps between "after" and "before" when triggered with
            # {REFRESH_PARAM: true}
            "full_refresh": {
                "task_id": REFRESH, "config_id": ids[REFRESH], "param": REFRESH_PARAM,
                "after": REFRESH_AFTER, "before": REFRESH_BEFORE,
            },
        }
        out.setdefault(stem, {**common, "tables": []})["tables"].append(entry)
    return dict(sorted(out.items()))


def render_dag_files(tables: Iterable[DagTable], settings: DagSettings) -> dict[str, str]:
    """Every file to upload to the DAG folder: ``<stem>.py`` (the static DAG file) and
    ``<stem>.json`` (its manifest) per non-empty shard."""
    code = DAG_FILE.read_text(encoding="utf-8")
    files: dict[str, str] = {}
    for stem, manifest in render_manifests(tables, settings).items():
        files[f"{stem}.py"] = code
        files[f"{stem}.json"] = json.dumps(manifest, indent=1, sort_keys=True) + "\n"
    return files


def chains(files: Mapping[str, str], full_refresh: bool = False) -> dict[str, list[str]]:
    """The step order of each table's DAG, read back from rendered manifests (for reviews): the
    regular run's, or with ``full_refresh`` the order of a run triggered with the param."""
    out: dict[str, list[str]] = {}
    for name, text in files.items():
        if name.endswith(".json"):
            for t in json.loads(text)["tables"]:
                steps = [s for s, _ in t["steps"]]
                fr = t.get("full_refresh")
                if full_refresh and fr:
                    a, b = steps.index(fr["after"]), steps.index(fr["before"])
                    steps = steps[: a + 1] + [fr["task_id"]] + steps[b:]
                out[t["table"]] = steps
    return dict(sorted(out.items()))


# --------------------------------------------------------------------------- Composer env vars

_ENV_VAR = re.compile(r"^[A-Z_][A-Z0-9_]*$")
#: Names Composer refuses in ``software_config.env_variables``.
RESERVED_ENV_VARS = frozenset(
    {
        "AIRFLOW_HOME", "C_FORCE_ROOT", "CONTAINER_NAME", "DAGS_FOLDER", "GCP_PROJECT", "GCS_BUCKET",
        "GKE_CLUSTER_NAME", "SQL_DATABASE", "SQL_INSTANCE", "SQL_PASSWORD", "SQL_PROJECT", "SQL_REGION", "SQL_USER",
    }
)
_AIRFLOW_OVERRIDE = re.compile(r"^AIRFLOW__[A-Z0-9_]+__[A-Z0-9_]+$")


def env_var_problem(name: str) -> str | None:
    """Why ``name`` cannot be a Composer environment variable, or None when it can."""
    if not isinstance(name, str) or not _ENV_VAR.match(name):
        return "expected upper-case letters, digits and _, not starting with a digit"
    if name in RESERVED_ENV_VARS:
        return "is reserved by Cloud Composer"
    if _AIRFLOW_OVERRIDE.match(name) or name.startswith("AIRFLOW"):
        return "AIRFLOW* names are Airflow config overrides (use airflow_config_overrides)"
    return None


def table_env_var(table: str) -> str:
    """``FLEXYBOOTS_TRANSFER_<TABLE>``: the config ids of a table's steps, ``step=id,...``."""
    return f"FLEXYBOOTS_TRANSFER_{table.upper()}"


def transfer_env_value(configs: Mapping[str, str]) -> str:
    return ",".join(f"{step}={transfer_config_id(configs[step])}" for step in CONFIGS if step in configs)
