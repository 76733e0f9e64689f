"""Every component can be switched off per stack; the composition follows the config."""

from __future__ import annotations


def _types(plan) -> set[str]:
    return {r.type for r in plan.resources if r.type.startswith("flexyboots:")}


def test_a_warehouse_only_stack(plans):
    plan = plans(
        "dev",
        **{
            "flexyboots:apis": {"enabled": False},
            "flexyboots:network": {"enabled": False},
            "flexyboots:datalake": {"enabled": False},
            "flexyboots:pipelines": {"enabled": False},
            "flexyboots:services": {"airbyte": {"enabled": False}, "metabase": {"enabled": False}},
        },
    )
    assert _types(plan) == {"flexyboots:warehouse:Warehouse"}
    assert {r.type for r in plan.resources} == {"flexyboots:warehouse:Warehouse", "gcp:bigquery/dataset:Dataset"}


def test_services_follow_their_switches(plans):
    plan = plans("dev", **{"flexyboots:services": {"amundsen": {"enabled": True}}})
    assert {"flexyboots:service_vm:Amundsen"} == {t for t in _types(plan) if t.startswith("flexyboots:service_vm")}
    (fw,) = [r for r in plan.resources if r.name.endswith("allow-iap-services")]
    assert fw.inputs["allows"][0]["ports"] == ["5000"]


def test_composer_can_join_dev(plans):
    plan = plans("dev", **{"flexyboots:composer": {"enabled": True}, "flexyboots:pipelines": {"mode": "orchestrated"}})
    assert "flexyboots:orchestrator:Orchestrator" in _types(plan)
    apis = {r.inputs["service"] for r in plan.resources if r.type == "gcp:projects/service:Service"}
    assert "composer.googleapis.com" in apis
    assert all(
        r.inputs["scheduleOptions"] == {"disableAutoScheduling": True}
        for r in plan.resources
        if r.type == "gcp:bigquery/dataTransferConfig:DataTransferConfig"
    )
