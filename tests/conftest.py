"""Shared fixtures.

* the CrossGuard policy pack (policy/), started once per session in its own virtualenv and
  driven over its gRPC API exactly as the Pulumi engine drives it (``policy_pack``,
  ``violations``);
* ``gsql``: the process's one GoogleSQL (ZetaSQL) analyzer, see :mod:`pipeline_sql.googlesql`. Its
  compiled module comes from the cache ``make setup`` prepares (``.cache/zetasql/``), so starting
  it costs well under a second. ``assert_googlesql_clean(statements, catalog)`` analyzes and fails
  with every problem listed. To analyze new SQL in a test::

    from pipeline_sql.googlesql import Catalog
    from pipeline_sql.statements import Statement

    def test_my_sql(assert_googlesql_clean):
        sql = render_my_thing(spec, naming)
        assert_googlesql_clean([Statement("my_thing", sql, spec.table, (("run_time", "TIMESTAMP"),))],
                               Catalog.for_specs([spec], [naming]))

Hypothesis runs under the profile ``HYPOTHESIS_PROFILE`` names: ``ci`` (the default, what
`make test` and CI run) draws the same examples on every run (``derandomize``), so a result is
reproducible and a red CI run is a change's fault; ``explore`` draws new ones each run, to look
for new failures (``HYPOTHESIS_PROFILE=explore .venv/bin/python -m pytest tests/sql``). A failure
it finds is added to its test as an ``@example``.

The DAG tests in tests/airflow_dags/ need Apache Airflow, which lives in its own virtualenv
(.venv-airflow; `make test` runs them there). Elsewhere they are not collected."""

from __future__ import annotations

import importlib.util
import os

import pytest

# .venv-airflow (tests/airflow_dags) has no hypothesis: its tests use none
if importlib.util.find_spec("hypothesis"):
    from hypothesis import settings

    settings.register_profile("ci", derandomize=True, database=None, print_blob=True)
    settings.register_profile("explore", derandomize=False, print_blob=True)
    settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci"))

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


@pytest.fixture(scope="session")
def gsql():
    from pipeline_sql.googlesql import GoogleSQL

    return GoogleSQL.shared()


@pytest.fixture(scope="session")
def assert_googlesql_clean(gsql):
    def check(statements, catalog):
        result = gsql.analyze(statements, catalog)
        assert not result.problems, f"{len(result.problems)} statements BigQuery would refuse:\n\n" + "\n\n".join(
            map(str, result.problems)
        )
        return result

    return check
