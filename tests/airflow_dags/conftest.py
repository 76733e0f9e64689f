"""Real Apache Airflow 2.10.5 + apache-airflow-providers-google 19.0.0 (the .venv-airflow
virtualenv; `make test` runs this folder there) loading and running the generated DAG files.

Airflow reads its configuration from the environment when first imported, so this module sets
it before anything imports airflow: a private AIRFLOW_HOME with a SQLite metadata database
(created once per session), no example DAGs, and a ``google_cloud_default`` connection.

:class:`FakeTransferService` stands in for the BigQuery Data Transfer API *client*
(``DataTransferServiceClient`` and its async twin, patched at class level): the provider's own
hook, operator and trigger code runs unchanged above it. Every request is rebuilt as the real
protobuf request type (unknown fields or wrong types raise), answers are real ``TransferRun``
messages, and each config's runs follow a script of states.
"""

from __future__ import annotations

import itertools
import json
import os
import sys
import tempfile
from pathlib import Path

_HOME = Path(tempfile.mkdtemp(prefix="flexyboots-airflow-"))
os.environ.update(
    AIRFLOW_HOME=str(_HOME),
    AIRFLOW__CORE__DAGS_FOLDER=str(_HOME / "dags"),
    AIRFLOW__CORE__LOAD_EXAMPLES="False",
    AIRFLOW__DATABASE__SQL_ALCHEMY_CONN=f"sqlite:///{_HOME}/airflow.db",
    AIRFLOW__CORE__EXECUTOR="SequentialExecutor",
    AIRFLOW_CONN_GOOGLE_CLOUD_DEFAULT=json.dumps({"conn_type": "google_cloud_platform"}),
)
REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO))

import pytest  # noqa: E402


@pytest.fixture(scope="session")
def airflow_db():
    from airflow.utils import db

    db.initdb()
    return _HOME


class FakeTransferService:
    """The Data Transfer API as the client sees it. ``script[config_id]`` lists, per run started
    on that config, the states its ``get_transfer_run`` answers go through (the last one sticks);
    a state ``"ERROR"`` makes that poll raise instead (a transient API error)."""

    def __init__(self, script: dict[str, list[list[str]]] | None = None):
        self.script = script or {}
        self.started: list[dict] = []  # every start request, in order
        self.polled: list[str] = []  # every run name polled
        self.listed: list[dict] = []
        self.runs: dict[str, dict] = {}  # run name -> {"config", "states", "i"}
        self._ids = itertools.count(1)

    # ---- helpers
    def _state(self, name: str) -> str:
        run = self.runs[name]
        states = run["states"]
        s = states[min(run["i"], len(states) - 1)]
        run["i"] += 1
        return s

    def _run(self, name: str, state: str):
        from google.cloud.bigquery_datatransfer_v1 import TransferRun, TransferState

        return TransferRun(name=name, state=TransferState[state])

    # ---- the client's methods
    def start_manual_transfer_runs(self, request=None, *, retry=None, timeout=None, metadata=()):
        from google.cloud.bigquery_datatransfer_v1 import StartManualTransferRunsRequest, StartManualTransferRunsResponse

        req = StartManualTransferRunsRequest(request)
        config_id = req.parent.rsplit("/", 1)[-1]
        scripts = self.script.get(config_id, [])
        n = sum(1 for r in self.runs.values() if r["config"] == config_id)
        states = scripts[n] if n < len(scripts) else ["RUNNING", "SUCCEEDED"]
        name = f"{req.parent}/runs/run{next(self._ids):04d}"
        self.runs[name] = {"config": config_id, "states": states, "i": 0}
        self.started.append({"parent": req.parent, "requested_run_time": req.requested_run_time.timestamp() if req.requested_run_time else None})
        return StartManualTransferRunsResponse(runs=[self._run(name, "PENDING")])

    def get_transfer_run(self, request=None, *, name=None, retry=None, timeout=None, metadata=()):
        from google.cloud.bigquery_datatransfer_v1 import GetTransferRunRequest

        req = GetTransferRunRequest(request) if request is not None else GetTransferRunRequest(name=name)
        self.polled.append(req.name)
        state = self._state(req.name)
        if state == "ERROR":
            raise RuntimeError("503 the service is unavailable (injected)")
        return self._run(req.name, state)

    def list_transfer_runs(self, request=None, *, retry=None, timeout=None, metadata=()):
        from google.cloud.bigquery_datatransfer_v1 import ListTransferRunsRequest, TransferState

        req = ListTransferRunsRequest(request)
        self.listed.append({"parent": req.parent, "states": sorted(s.name for s in req.states)})
        wanted = set(req.states) or set(TransferState)
        out = []
        for name, run in self.runs.items():
            if name.startswith(req.parent + "/runs/"):
                states = run["states"]
                current = "PENDING" if run["i"] == 0 else states[min(run["i"] - 1, len(states) - 1)]
                current = "RUNNING" if current == "ERROR" else current  # the API failed, not the run
                if TransferState[current] in wanted:
                    out.append(self._run(name, current))
        return iter(out)


@pytest.fixture
def transfer_service(monkeypatch):
    """Patch the Data Transfer clients (sync and async) with one FakeTransferService."""
    from google.auth.credentials import AnonymousCredentials
    from google.cloud.bigquery_datatransfer_v1 import DataTransferServiceAsyncClient, DataTransferServiceClient

    from airflow.providers.google.common.hooks.base_google import GoogleBaseHook

    fake = FakeTransferService()
    monkeypatch.setattr(GoogleBaseHook, "get_credentials_and_project_id", lambda self: (AnonymousCredentials(), "flexyboots-prod"))
    for name in ("start_manual_transfer_runs", "get_transfer_run", "list_transfer_runs"):
        monkeypatch.setattr(DataTransferServiceClient, name, lambda self, *a, _n=name, **kw: getattr(fake, _n)(*a, **kw))

    async def aget(self, request=None, *, name=None, retry=None, timeout=None, metadata=()):
        return fake.get_transfer_run(request, name=name)

    monkeypatch.setattr(DataTransferServiceAsyncClient, "get_transfer_run", aget)
    return fake
