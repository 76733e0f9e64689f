"""Shared fixtures: the CrossGuard policy pack (policy/), started once per session in its own
virtualenv and driven over its gRPC API exactly as the Pulumi engine drives it.

The DAG tests in tests/airflow_dags/ need Apache Airflow, which lives in its own virtualenv
(.venv-airflow; `make test` runs them there). Elsewhere they are not collected."""

from __future__ import annotations

import importlib.util

import pytest

collect_ignore = [] if importlib.util.find_spec("airflow") else ["airflow_dags"]


@pytest.fixture(scope="session")
def policy_pack():
    from stacks.policy import PolicyPack

    with PolicyPack() as pack:
        yield pack


@pytest.fixture(scope="session")
def violations(policy_pack):
    """``violations(recording_or_resources, *policies, config=None)`` -> ["policy: resource: message", ...].

    A ``Recording`` (components.testing.run_program) or a list of ``stacks.policy.PlanResource``;
    only the named policies (all when none), mandatory and advisory alike."""
    from stacks.policy import resources_from_recording

    def run(rec, *policies: str, config: dict | None = None) -> list:
        resources = rec if isinstance(rec, list) else resources_from_recording(rec.resources)
        report = policy_pack.run(resources, config or {})
        return [f"{v.policy}: {v.resource}: {v.message}" for v in report.violations if not policies or v.policy in policies]

    return run
