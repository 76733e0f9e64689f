"""The offline plan CLI: stable bytes across processes, clear errors and exit status 2."""

from __future__ import annotations

import re

import os
import subprocess
import sys
from pathlib import Path

from stacks.plan import main, render_json

ROOT = Path(__file__).resolve().parents[2]


def test_json_is_byte_identical_in_another_process(plans):
    """Another interpreter (another hash seed) prints exactly what this one renders."""
    env = {**os.environ, "PYTHONHASHSEED": "12345"}
    out = subprocess.run(
        [sys.executable, "-m", "stacks", "plan", "--stack", "dev", "--tables-dir", "tests/stacks/tables", "--json"],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=120,
    )
    assert out.returncode == 0, out.stderr
    assert out.stdout == render_json(plans("dev"))


def test_unknown_stack_fails_clearly(capsys):
    assert main(["plan", "--stack", "staging"]) == 2
    err = capsys.readouterr().err
    assert "unknown stack 'staging'" in err and "expected one of: dev, local, prod" in err


def test_bad_config_fails_naming_the_key(tmp_path, capsys):
    (tmp_path / "Pulumi.qa.yaml").write_text(
        "config:\n  gcp:project: acme-data-qa\n  flexyboots:composer:\n    enabled: yes\n"
    )
    assert main(["plan", "--stack", "qa", "--stacks-dir", str(tmp_path)]) == 2
    assert "flexyboots:composer.enabled: expected true or false, got 'yes'" in capsys.readouterr().err


def test_bad_table_spec_fails_naming_the_file(tmp_path, capsys):
    (tmp_path / "broken.yaml").write_text("table: broken\nsource: {format: xml, path: b/}\nkey: [a]\ncolumns: [{source: a, name: a, type: STRING}]\n")
    assert main(["plan", "--stack", "dev", "--tables-dir", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert "broken.yaml:2: source.format" in err


def test_text_plan_has_tree_and_counts(plans):
    from stacks.plan import render_text

    text = render_text(plans("prod"))
    assert "  flexyboots:table_pipeline:TablePipeline customers\n" in text
    assert "    gcp:bigquery/table:Table prod_dwh.customers [protected]" in text
    assert "resources per type:" in text and re.search(r"gcp:bigquery/dataTransferConfig:DataTransferConfig +14\n", text)


def test_dags_cli_writes_the_files_the_stack_uploads(tmp_path):
    import json

    from stacks.plan import dag_files, main, run_stack

    assert main(["dags", "--stack", "prod", "--tables-dir", "tests/stacks/tables", "--out", str(tmp_path / "dags")]) == 0
    written = {p.name: p.read_text() for p in (tmp_path / "dags").iterdir()}
    assert written == dag_files(run_stack("prod", tables_dir="tests/stacks/tables"))
    assert sorted(written) == ["flexyboots_prod_00.json", "flexyboots_prod_00.py"]
    manifest = json.loads(written["flexyboots_prod_00.json"])
    assert [t["dag_id"] for t in manifest["tables"]] == ["flexyboots_prod__customers", "flexyboots_prod__orders"]
    # the config ids are the transfer configs' (mock) names, as uploaded
    assert all(cid.count("-") == 4 for t in manifest["tables"] for _, cid in t["steps"])
    # a stack without Composer uploads no DAG: refused with the key to change
    assert main(["dags", "--stack", "dev", "--tables-dir", "tests/stacks/tables", "--out", str(tmp_path / "none")]) == 2
