"""The published JSON Schema of the spec format (config/spec.schema.json), checked with the
``jsonschema`` package: it is the generated one, every shipped and test spec validates against it
and points editors at it, and it refuses what it should (so the validation can fail)."""

from __future__ import annotations

import copy
import datetime
import re
import subprocess
import sys
from pathlib import Path

import jsonschema
import pytest
import yaml

from pipeline_sql.spec import CHECK_RULES, SPEC_FIELDS, load_spec
from pipeline_sql.specschema import REGENERATE, SCHEMA_PATH, schema_text, spec_schema

REPO = Path(__file__).resolve().parents[2]
SCHEMA_FILE = REPO / SCHEMA_PATH
SPEC_DIRS = ("config/tables", "tests/stacks/tables", "tests/stacks/tables_s3")
SPEC_FILES = sorted(p for d in SPEC_DIRS for p in (REPO / d).glob("*.yaml"))
_MODELINE = re.compile(r"# yaml-language-server: \$schema=(\S+)")


def validator() -> jsonschema.Draft202012Validator:
    schema = spec_schema()
    jsonschema.Draft202012Validator.check_schema(schema)
    return jsonschema.Draft202012Validator(schema)


def jsonable(v):
    """The spec as a JSON (and YAML 1.2) reader sees it: YAML 1.1 dates are text there."""
    if isinstance(v, dict):
        return {k: jsonable(x) for k, x in v.items()}
    if isinstance(v, list):
        return [jsonable(x) for x in v]
    if isinstance(v, (datetime.date, datetime.datetime)):
        return v.isoformat()
    return v


def errors(data) -> list[str]:
    """Every error, with the errors under a oneOf that failed as a whole."""
    out: list[str] = []

    def add(e) -> None:
        out.append(f"{'/'.join(map(str, e.absolute_path))}: {e.message}")
        for sub in e.context or ():
            add(sub)

    for e in validator().iter_errors(jsonable(data)):
        add(e)
    return out


def test_published_schema_is_current():
    assert SCHEMA_FILE.exists(), f"{SCHEMA_PATH} is missing; write it with `{REGENERATE}`"
    assert SCHEMA_FILE.read_text(encoding="utf-8") == schema_text(), f"{SCHEMA_PATH} is stale; regenerate it with `{REGENERATE}`"


def test_schema_cli_check(tmp_path):
    out = tmp_path / "schema.json"
    cmd = [sys.executable, "-m", "pipeline_sql", "schema", "--output", str(out)]
    r = subprocess.run(cmd + ["--check"], cwd=REPO, capture_output=True, text=True)
    assert r.returncode == 1 and f"regenerate it with `{REGENERATE}`" in r.stderr
    assert subprocess.run(cmd, cwd=REPO, capture_output=True, text=True).returncode == 0
    assert out.read_text(encoding="utf-8") == schema_text()
    assert subprocess.run(cmd + ["--check"], cwd=REPO, capture_output=True, text=True).returncode == 0


def test_schema_covers_every_field_and_rule():
    schema = spec_schema()
    assert list(schema["properties"]) == [f.name for f in SPEC_FIELDS["spec"]]
    for name in SPEC_FIELDS:
        if name != "spec":
            assert list(schema["$defs"][name]["properties"]) == [f.name for f in SPEC_FIELDS[name]]
    assert [next(iter(r["required"])) for r in schema["$defs"]["check"]["oneOf"]] == list(CHECK_RULES)


@pytest.mark.parametrize("path", SPEC_FILES, ids=lambda p: str(p.relative_to(REPO)))
def test_shipped_specs_validate_and_point_at_the_schema(path):
    text = path.read_text(encoding="utf-8")
    m = _MODELINE.fullmatch(text.splitlines()[0])
    assert m, f"{path}: first line should be `# yaml-language-server: $schema=<relative path to {SCHEMA_PATH}>`"
    assert (path.parent / m.group(1)).resolve() == SCHEMA_FILE.resolve()
    assert errors(yaml.safe_load(text)) == []  # dates as text, as editors read them
    load_spec(path)  # and the parser agrees


def _shipped() -> dict:
    return yaml.safe_load((REPO / "config/tables/customers.yaml").read_text(encoding="utf-8"))


@pytest.mark.parametrize(
    "change, expected",
    [
        (lambda d: d.update(owner="x"), "Additional properties are not allowed ('owner' was unexpected)"),
        (lambda d: d.pop("key"), "'key' is a required property"),
        (lambda d: d["columns"][0].update(type="INTEGER"), "columns/0/type: 'INTEGER' is not one of"),
        (lambda d: d["columns"][0].update(name="customer id"), "columns/0/name: 'customer id' does not match"),
        (lambda d: d["columns"][0].update(name="customer_id\n"), "columns/0/name: 'customer_id\\n' does not match"),
        (lambda d: d.update(schedule="every day 25:00"), "schedule: 'every day 25:00' does not match"),
        (lambda d: d["source"].update(format="xml"), "source/format: 'xml' is not one of"),
        (lambda d: d["checks"].append({"positive": ["balance"]}), "checks/6: {'positive': ['balance']} is not valid under any of the given schemas"),
        (lambda d: d["dwh"].update(cluster_by=["a", "b", "c", "d", "e"]), "dwh/cluster_by: ['a', 'b', 'c', 'd', 'e'] is too long"),
    ],
)
def test_schema_refuses(change, expected):
    d = copy.deepcopy(_shipped())
    change(d)
    found = errors(d)
    assert any(expected in e for e in found), found
