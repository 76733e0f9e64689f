"""The README example: a platform team composes a NEW stack from two components in a few lines.
The code in README.md must be the code of examples/two_components.py, and it must
run (under mocks) and create what the documentation says."""

from __future__ import annotations

import ast
import re
import runpy
from pathlib import Path

from components.testing import run_program

ROOT = Path(__file__).resolve().parents[2]
EXAMPLE = ROOT / "examples" / "two_components.py"
DOC = ROOT / "README.md"


def _code_without_docstring(text: str) -> str:
    tree = ast.parse(text)
    first = tree.body[0]
    if isinstance(first, ast.Expr) and isinstance(first.value, ast.Constant) and isinstance(first.value.value, str):
        text = "\n".join(text.splitlines()[first.end_lineno :])
    return text.strip()


def test_documented_example_is_the_tested_file():
    doc = DOC.read_text()
    m = re.search(r"<!-- example: examples/two_components.py -->\s*```python\n(.*?)```", doc, re.S)
    assert m, "README.md lost its example block"
    assert m.group(1).strip() == _code_without_docstring(EXAMPLE.read_text())


def test_example_composes_a_new_stack_in_a_few_lines():
    code = _code_without_docstring(EXAMPLE.read_text())
    assert len([line for line in code.splitlines() if line.strip()]) <= 12
    rec = run_program(
        lambda: runpy.run_path(str(EXAMPLE), run_name="__main__"),
        config={"gcp:project": "acme-sandbox"},
        stack="sandbox",
    )
    assert rec.count_by_type() == {
        "flexyboots:datalake:DataLake": 1,
        "flexyboots:warehouse:Warehouse": 1,
        "gcp:storage/bucket:Bucket": 1,
        "gcp:bigquery/dataset:Dataset": 6,
    }
    (bucket,) = rec.of_type("gcp:storage/bucket:Bucket")
    assert bucket.inputs["labels"]["env"] == "sandbox" and bucket.inputs["publicAccessPrevention"] == "enforced"
    assert rec.exports["datasets"]["dwh"] == "sandbox_dwh"
    assert {d.inputs["location"] for d in rec.of_type("gcp:bigquery/dataset:Dataset")} == {"EU"}


def test_one_table_example_wires_the_pipeline_to_its_warehouse_and_lake(monkeypatch):
    monkeypatch.chdir(ROOT)  # the example loads config/tables/customers.yaml
    rec = run_program(
        lambda: runpy.run_path(str(ROOT / "examples" / "one_table.py"), run_name="__main__"),
        config={"gcp:project": "acme-sandbox"},
        stack="sandbox",
    )
    counts = rec.count_by_type()
    assert counts["flexyboots:table_pipeline:TablePipeline"] == 1
    assert counts["gcp:bigquery/dataTransferConfig:DataTransferConfig"] == 7  # 5 layers + checks + the manual full refresh
    assert counts["gcp:projects/serviceIdentity:ServiceIdentity"] == 1  # the Data Transfer agent, created
    staging = rec.get("sandbox-customers-staging").inputs["params"]["query"]
    (bucket,) = rec.of_type("gcp:storage/bucket:Bucket")
    assert f"gs://{bucket.inputs['name']}/customers/*" in staging
    assert "`acme-sandbox.sandbox_staging.customers`" in staging
    assert {c.inputs["location"] for c in rec.of_type("gcp:bigquery/dataTransferConfig:DataTransferConfig")} == {"EU"}
    assert set(rec.exports["transfer_configs"]) == {"staging", "archive", "delta", "transform", "dwh", "checks", "refresh"}
