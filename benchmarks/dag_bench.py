"""Import time of the generated Airflow DAG files, measured by real Airflow.

    python benchmarks/dag_bench.py --tables 2000 [--tables-per-file K] [--airflow-python PATH]

Renders the DAG files of N generated tables exactly as the Orchestrator uploads them
(:func:`components.dag.render_dag_files`: the static DAG file + a JSON manifest per shard; the
tables get the schedules of the shipped specs in turn), writes them to a temporary DAG folder,
then has Apache Airflow (the .venv-airflow virtualenv, `make airflow-setup`) fill a ``DagBag``
from that folder. Airflow times every file itself (``DagBag.dagbag_stats``, what ``airflow dags
report`` prints); as Airflow's DAG processor does (``parsing_pre_import_modules``), the modules
the DAG file imports are imported once before the files are parsed, and that one-off cost is
printed apart. ``--tables-per-file N`` (with N >= --tables) measures the one-file layout.

Ends with one line:

    dag_bench tables=N files=F max_file_parse_s=.. total_parse_s=..
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from components.dag import CONFIGS, TABLES_PER_FILE, DagSettings, DagTable, render_dag_files  # noqa: E402

SCHEDULES = ("every 24 hours", "every 1 hours", "every 6 hours", "every 30 minutes", "every day 03:10", "every monday 06:30", "every 90 minutes")

MEASURE = r"""
import json, sys, time
t0 = time.perf_counter()
import airflow  # noqa: F401
from airflow.models import DagBag
import airflow.providers.google.cloud.operators.bigquery_dts  # noqa: F401  (pre-import, as the DAG processor)
import airflow.providers.google.cloud.triggers.bigquery_dts  # noqa: F401
import airflow.models.param  # noqa: F401
import airflow.operators.python  # noqa: F401
pre = time.perf_counter() - t0
bag = DagBag(dag_folder=sys.argv[1], include_examples=False, safe_mode=True)
stats = [{"file": s.file, "s": s.duration.total_seconds(), "dags": s.dag_num, "tasks": s.task_num} for s in bag.dagbag_stats]
print(json.dumps({"pre_import_s": pre, "stats": stats, "errors": {k: v[-300:] for k, v in bag.import_errors.items()}, "dags": len(bag.dags)}))
"""


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--tables", type=int, default=2000)
    p.add_argument("--tables-per-file", type=int, default=TABLES_PER_FILE)
    p.add_argument("--airflow-python", default=str(ROOT / ".venv-airflow" / "bin" / "python"))
    args = p.parse_args(argv)
    if not Path(args.airflow_python).exists():
        print(f"error: {args.airflow_python} not found; run `make airflow-setup` first", file=sys.stderr)
        return 2

    tables = [
        DagTable(f"table_{i:05d}", {s: f"{i:08x}-0000-4000-8000-{CONFIGS.index(s):012x}" for s in CONFIGS}, SCHEDULES[i % len(SCHEDULES)])
        for i in range(args.tables)
    ]
    settings = DagSettings(project="flexyboots-prod", location="EU", env="prod", tables_per_file=args.tables_per_file)
    t0 = time.perf_counter()
    files = render_dag_files(tables, settings)
    render_s = time.perf_counter() - t0
    with tempfile.TemporaryDirectory(prefix="dag_bench_") as tmp:
        folder = Path(tmp) / "dags"
        folder.mkdir()
        for name, text in files.items():
            (folder / name).write_text(text, encoding="utf-8")
        env = {"AIRFLOW_HOME": str(Path(tmp) / "home"), "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
               "AIRFLOW__CORE__DAGBAG_IMPORT_TIMEOUT": "600", "PATH": "/usr/bin:/bin"}
        out = subprocess.run([args.airflow_python, "-c", MEASURE, str(folder)], capture_output=True, text=True, env=env, timeout=3600)
        if out.returncode != 0:
            print(out.stderr[-3000:], file=sys.stderr)
            return 1
        result = json.loads(out.stdout.strip().splitlines()[-1])
    if result["errors"]:
        print(f"error: import errors: {json.dumps(result['errors'], indent=1)}", file=sys.stderr)
        return 1
    stats = result["stats"]
    assert result["dags"] == args.tables, (result["dags"], args.tables)
    worst = max(stats, key=lambda s: s["s"])
    total = sum(s["s"] for s in stats)
    print(f"rendered {len(files)} files for {args.tables} tables in {render_s:.2f}s; Airflow pre-import (once per DAG processor) {result['pre_import_s']:.2f}s")
    print(f"per file: {len(stats)} files, {min(s['s'] for s in stats):.3f}s .. {worst['s']:.3f}s (most tables in one file: {max(s['dags'] for s in stats)}); tasks {sum(s['tasks'] for s in stats)}")
    print(f"dag_bench tables={args.tables} files={len(stats)} max_file_parse_s={worst['s']:.3f} total_parse_s={total:.3f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
