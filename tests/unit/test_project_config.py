"""Pulumi.yaml's project-level ``config:`` block and stacks/config.py stay in step: the same keys,
the same defaults, every key described, and declarations Pulumi accepts."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import yaml

from stacks.config import NS, TOP_KEYS, StackConfigError, parse_stack_config

ROOT = Path(__file__).resolve().parents[2]
#: pulumi/pulumi sdk/go/common/workspace/project.json (ConfigTypeDeclaration, SimpleConfigType)
DECLARATION_KEYS = {"type", "items", "description", "secret", "default", "value"}
SIMPLE_TYPES = {"string", "integer", "boolean", "array"}
#: the keys config.py reads as scalars: these must carry a Pulumi type
SCALARS = {"env": "string", "location": "string", "protect": "boolean", "composition": "string"}


@pytest.fixture(scope="module")
def project():
    return yaml.safe_load((ROOT / "Pulumi.yaml").read_text())


def _valid(type_name: str, value) -> bool:
    """pulumi/pulumi workspace.ValidateConfigValue for the scalar types."""
    if type_name == "string":
        return isinstance(value, str)
    if type_name == "integer":
        return (isinstance(value, int) and not isinstance(value, bool)) or (isinstance(value, str) and value.lstrip("-").isdigit())
    if type_name == "boolean":
        return isinstance(value, bool) or value in ("true", "false")
    return False


def test_the_same_keys(project):
    assert project["name"] == NS  # unnamespaced project config keys are flexyboots:<key>
    assert set(project["config"]) == set(TOP_KEYS)


def test_declarations_are_ones_pulumi_accepts(project):
    for key, decl in project["config"].items():
        assert isinstance(decl, dict) and set(decl) <= DECLARATION_KEYS, key
        assert not ("default" in decl and "value" in decl), f"{key}: both default and value"
        assert decl.get("description", "").strip(), f"{key}: no description"
        if "type" in decl:
            assert decl["type"] in SIMPLE_TYPES, key
            if decl["type"] == "array":
                assert "items" in decl, key
            if "default" in decl:
                assert _valid(decl["type"], decl["default"]), f"{key}: default {decl['default']!r} is not a {decl['type']}"
    for key, type_name in SCALARS.items():
        assert project["config"][key].get("type") == type_name, key


def test_defaults_are_the_programs_defaults(project):
    baseline = parse_stack_config({"gcp:project": "acme-data-dev"}, "dev")
    declared = {f"{NS}:{k}": d["default"] for k, d in project["config"].items() if "default" in d}
    assert parse_stack_config({"gcp:project": "acme-data-dev", **declared}, "dev") == baseline
    for key, value in declared.items():  # each on its own, too
        assert parse_stack_config({"gcp:project": "acme-data-dev", key: value}, "dev") == baseline, key


def _accepted(key: str) -> set:
    """The sub-keys stacks/config.py accepts under ``key`` (read from its refusal of an unknown one)."""
    path = key.split(".")
    value: dict = {"__probe__": 1}
    for part in reversed(path[1:]):
        value = {part: value}
    with pytest.raises(StackConfigError) as e:
        parse_stack_config({"gcp:project": "acme-data-dev", f"{NS}:{path[0]}": value}, "dev")
    m = re.search(r"unknown key; expected one of (.+)$", str(e.value))
    assert m and e.value.key == f"{NS}:{key}.__probe__", str(e.value)
    return set(m.group(1).split(", "))


def _walk(key: str, default: dict):
    yield key, default
    for k, v in default.items():
        if isinstance(v, dict) and v:
            yield from _walk(f"{key}.{k}", v)


@pytest.mark.parametrize("key", [k for k in TOP_KEYS if k not in SCALARS and k != "labels"])
def test_every_setting_is_declared(project, key):
    """Object defaults list every sub-key config.py accepts (a new setting must be declared here)."""
    for path, default in _walk(key, project["config"][key]["default"]):
        assert set(default) == _accepted(path), path
