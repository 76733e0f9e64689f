"""Alerts under Pulumi mocks: the e-mail channel and the three alert policies."""

from __future__ import annotations

import pytest

from components.alerts import airflow_failures_filter, check_failures_filter, transfer_failures_filter
from components.common import ComponentArgsError
from components.testing import Mocks, run_program

PROJECT = "acme-data-prod"


def run(**over):
    from components.alerts import Alerts, AlertsArgs

    args = AlertsArgs(**{"env": "prod", "project": PROJECT, "email": "oncall@example.com", "dwh_dataset": "prod_dwh", **over})
    return run_program(lambda: Alerts("alerts", args), config={"gcp:project": PROJECT}, mocks=Mocks(project=PROJECT))


def test_an_email_channel_and_a_policy_per_failure_kind():
    rec = run(composer_environment="prod-composer")
    (ch,) = rec.of_type("gcp:monitoring/notificationChannel:NotificationChannel")
    assert ch.inputs["type"] == "email" and ch.inputs["labels"] == {"email_address": "oncall@example.com"}
    assert ch.inputs["userLabels"] == {"env": "prod", "component": "alerts", "managed-by": "pulumi"}
    policies = {p.name: p.inputs for p in rec.of_type("gcp:monitoring/alertPolicy:AlertPolicy")}
    assert sorted(policies) == ["prod-airflow-task-failed", "prod-checks-failed", "prod-transfer-runs-failed"]
    for p in policies.values():
        assert p["notificationChannels"] == [ch.outputs["name"]] and p["combiner"] == "OR"
        assert p["documentation"]["mimeType"] == "text/markdown"
    (cond,) = policies["prod-transfer-runs-failed"]["conditions"]
    th = cond["conditionThreshold"]
    assert th["filter"] == transfer_failures_filter()
    assert (th["comparison"], th["thresholdValue"], th["duration"]) == ("COMPARISON_GT", 0, "0s")
    assert th["aggregations"] == [{"alignmentPeriod": "300s", "perSeriesAligner": "ALIGN_SUM"}]
    # log-match policies need a notification rate limit
    for name in ("prod-checks-failed", "prod-airflow-task-failed"):
        (cond,) = policies[name]["conditions"]
        assert "conditionMatchedLog" in cond
        assert policies[name]["alertStrategy"]["notificationRateLimit"] == {"period": "300s"}
    assert policies["prod-checks-failed"]["conditions"][0]["conditionMatchedLog"]["filter"] == check_failures_filter(PROJECT, "prod_dwh")
    assert policies["prod-airflow-task-failed"]["conditions"][0]["conditionMatchedLog"]["filter"] == airflow_failures_filter(PROJECT, "prod-composer")


def test_without_composer_no_airflow_policy():
    rec = run()
    assert sorted(p.name for p in rec.of_type("gcp:monitoring/alertPolicy:AlertPolicy")) == ["prod-checks-failed", "prod-transfer-runs-failed"]


def test_filters_match_what_the_pipeline_writes():
    """The markers in the filters are the ones the checks script and the DAG file write."""
    from pathlib import Path

    from pipeline_sql.checks import FAILURE_MARKER, render_checks
    from pipeline_sql.naming import Naming
    from pipeline_sql.spec import parse_spec

    assert 'metric.type = "bigquerydatatransfer.googleapis.com/transfer_config/completed_runs"' in transfer_failures_filter()
    assert 'metric.labels.completion_state = "FAILED"' in transfer_failures_filter()
    f = check_failures_filter(PROJECT, "prod_dwh")
    assert 'protoPayload.metadata.jobChange.job.jobStatus.errorResult.message:"flexyboots checks failed on acme-data-prod.prod_dwh."' in f
    spec = parse_spec({"table": "t", "source": {"format": "csv", "path": "t/"}, "key": ["a"], "columns": [{"source": "a", "name": "a", "type": "INT64"}], "checks": [{"unique": ["a"]}]})
    assert f"'{FAILURE_MARKER} on {PROJECT}.prod_dwh.t: '" in render_checks(spec, Naming(project=PROJECT, env="prod"))
    dag_file = (Path(__file__).resolve().parents[2] / "components" / "airflow" / "flexyboots_dags.py").read_text()
    assert 'FAILURE_MARKER = "flexyboots task failed"' in dag_file
    assert 'textPayload:"flexyboots task failed"' in airflow_failures_filter(PROJECT, "prod-composer")


@pytest.mark.parametrize("over, field", [({"email": "nobody"}, "email"), ({"env": "Prod"}, "env"), ({"dwh_dataset": "a b"}, "dwh_dataset")])
def test_bad_args_are_refused(over, field):
    with pytest.raises(ComponentArgsError) as e:
        run(**over)
    assert e.value.field == field
