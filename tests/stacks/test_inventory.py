"""Stack inventories (in the spirit of cloud-foundation-fabric's): the resource counts per type
of each stack's plan are exact, and every value recorded in tests/stacks/expected/<stack>.yaml
appears in the plan. On a mismatch the message prints the command that regenerates the file:
review the diff, then commit it."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from stacks.plan import address, counts, inventory, regenerate_command, render_inventory

EXPECTED = Path(__file__).resolve().parent / "expected"


def _mismatches(expected, actual, path: str) -> list[str]:
    """Where ``expected`` is not a subset of ``actual`` (dicts by key, lists element-wise)."""
    if isinstance(expected, dict):
        if not isinstance(actual, dict):
            return [f"{path}: expected a mapping, plan has {actual!r}"]
        out = []
        for k, v in expected.items():
            if k not in actual:
                out.append(f"{path}.{k}: missing from the plan (expected {v!r})")
            else:
                out += _mismatches(v, actual[k], f"{path}.{k}")
        return out
    if isinstance(expected, list):
        if not isinstance(actual, list) or len(actual) != len(expected):
            return [f"{path}: expected {expected!r}, plan has {actual!r}"]
        return [m for i, (e, a) in enumerate(zip(expected, actual)) for m in _mismatches(e, a, f"{path}[{i}]")]
    if expected != actual and not (isinstance(expected, (int, float)) and isinstance(actual, (int, float)) and float(expected) == float(actual)):
        return [f"{path}: expected {expected!r}, plan has {actual!r}"]
    return []


def check_inventory(plan, expected: dict) -> list[str]:
    problems = []
    actual_counts = counts(plan)
    for t in sorted(set(actual_counts) | set(expected.get("counts", {}))):
        want, got = expected.get("counts", {}).get(t, 0), actual_counts.get(t, 0)
        if want != got:
            problems.append(f"count of {t}: expected {want}, plan has {got}")
    actual_values = inventory(plan)["values"]
    for addr, values in expected.get("values", {}).items():
        if addr not in actual_values:
            problems.append(f"{addr}: not in the plan")
            continue
        problems += _mismatches(values, actual_values[addr], addr)
    return problems


@pytest.mark.parametrize("stack", ["dev", "prod", "local"])
def test_inventory_matches_the_plan(plans, stack):
    plan = plans(stack)
    expected = yaml.safe_load((EXPECTED / f"{stack}.yaml").read_text())
    problems = check_inventory(plan, expected)
    assert not problems, (
        f"the {stack} plan differs from tests/stacks/expected/{stack}.yaml:\n  "
        + "\n  ".join(problems[:40])
        + f"\nIf the change is intended, regenerate and review the diff:\n  {regenerate_command(stack, 'tests/stacks/tables')}"
    )


def test_inventory_check_catches_a_change(plans):
    """The comparison is not a tautology: a changed value, count or resource is reported."""
    plan = plans("dev")
    expected = yaml.safe_load(render_inventory(plan))
    assert check_inventory(plan, expected) == []
    expected["counts"]["gcp:bigquery/table:Table"] += 1
    expected["values"]["gcp:compute/instance:Instance::dev-airbyte-vm"]["machineType"] = "e2-standard-8"
    expected["values"]["gcp:storage/bucket:Bucket::gone"] = {"name": "x"}
    problems = check_inventory(plan, expected)
    assert any("count of gcp:bigquery/table:Table" in p for p in problems)
    assert any("machineType" in p and "e2-standard-2" in p for p in problems)
    assert any("Bucket::gone: not in the plan" in p for p in problems)


def test_regenerate_command_is_what_the_header_says():
    text = (EXPECTED / "dev.yaml").read_text()
    assert regenerate_command("dev", "tests/stacks/tables") in text


def test_dev_and_prod_differ_where_the_design_says(plans):
    dev, prod = counts(plans("dev")), counts(plans("prod"))
    assert "gcp:composer/environment:Environment" not in dev
    assert prod["gcp:composer/environment:Environment"] == 1
    assert prod["gcp:bigquery/dataTransferConfig:DataTransferConfig"] == dev["gcp:bigquery/dataTransferConfig:DataTransferConfig"] == 14  # 2 tables x (5 layers + checks + the manual full refresh)
    modes = {  # the six steps' configs (the full refresh is manual-only in both)
        s: {str(r.inputs.get("scheduleOptions")) for r in plans(s).resources if r.type.endswith("DataTransferConfig") and not r.name.endswith("-refresh")}
        for s in ("dev", "prod")
    }
    assert modes["prod"] == {"{'disableAutoScheduling': True}"}
    assert all("startTime" in m for m in modes["dev"])


def test_plan_output_is_deterministic(plans):
    from stacks.plan import render_json, render_text, run_stack

    a = plans("prod")
    b = run_stack("prod", tables_dir=str(Path(__file__).resolve().parent / "tables"))
    b.tables_dir = a.tables_dir
    assert render_json(a) == render_json(b)
    assert render_text(a) == render_text(b)
    assert [address(r) for r in a.resources] == [address(r) for r in b.resources]
