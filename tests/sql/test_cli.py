"""``python -m pipeline_sql`` end to end: validate, render, run twice on persistent state, export."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

from pipeline_sql.cli import main

ROOT = Path(__file__).resolve().parents[2]


def test_validate_and_render(capsys, tmp_path):
    assert main(["validate"]) == 0
    assert "3 table specs valid" in capsys.readouterr().out
    assert main(["render", "orders", "--layer", "dwh", "--project", "acme-data-prod", "--env", "prod"]) == 0
    out = capsys.readouterr().out
    assert "MERGE `acme-data-prod.prod_dwh.orders`" in out and "flexyboots-local" not in out

    bad = tmp_path / "specs"
    bad.mkdir()
    (bad / "orders.yaml").write_text("table: orders\nsource: {format: csv, path: orders/}\nkey: [nope]\ncolumns:\n  - {source: id, name: id, type: INT64}\n")
    assert main(["validate", "--config-dir", str(bad)]) == 2
    err = capsys.readouterr().err
    assert f"{bad / 'orders.yaml'}:3: key[0]: 'nope' is not a column" in err


def test_run_accumulates_state_and_export_sorts_by_key(capsys, tmp_path):
    landing, state = tmp_path / "landing", tmp_path / "state"
    shutil.copytree(ROOT / "landing" / "customers", landing / "customers", ignore=shutil.ignore_patterns("003_*"))
    assert main(["run", "--tables", "customers", "--landing", str(landing), "--state", str(state), "--quiet"]) == 0
    first = capsys.readouterr().out
    assert "customers      dwh" in first and "done in" in first

    shutil.copy(ROOT / "landing" / "customers" / "003_late_and_fixes.csv", landing / "customers")
    assert main(["run", "--tables", "customers", "--landing", str(landing), "--state", str(state)]) == 0
    second = capsys.readouterr().out
    assert "customers/003_late_and_fixes.csv: 6 rows loaded" in second
    assert "customers/001_initial.csv" not in second  # loaded by the first run, kept in the state

    # nothing new: the table is up to date and nothing runs for it (no layer, no check)
    assert main(["run", "--tables", "customers", "--landing", str(landing), "--state", str(state)]) == 0
    third = capsys.readouterr().out
    assert "1 tables up to date" in third and "engine started in" in third
    assert not any(f"customers      {layer}" in third for layer in ("staging", "archive", "delta", "transform", "dwh", "checks"))

    assert main(["export", "customers", "--state", str(state)]) == 0
    rows = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert [r["customer_id"] for r in rows] == sorted(r["customer_id"] for r in rows) and len(rows) == 14
    assert main(["export", "customers", "--layer", "rejects", "--state", str(state)]) == 0
    rejects = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert {(r["customer_id"], r["column_name"], r["value"]) for r in rejects} == {("1008", "balance", "n/a"), ("1015", "balance", "1,250.00")}

    assert main(["export", "customers", "--state", str(tmp_path / "nothing")]) == 1
    assert "no engine state" in capsys.readouterr().err
