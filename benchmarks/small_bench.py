"""Many small tables through ``python -m pipeline_sql run``: the fixed costs of a run.

Generates N table specs (typed columns, a derived column, two checks) and, per table, two
landed batches of 100 rows (the second one updates 20 keys and adds 10), then runs the CLI as
a user does, in a fresh process with its state on disk:

1. the first run: every table is bootstrapped, both batches are staged and archived, the DWH is
   built and checked;
2. a second run with nothing new.

It checks that every DWH holds the 110 expected keys with their latest version, and ends with
one line::

    small_bench tables=N first_run_s=.. second_run_s=.. engine_start_s=..

``engine_start_s`` is the embedded engine's start inside the second run (as the run reports it).

Usage: python benchmarks/small_bench.py [--tables 100] [--workdir DIR]
"""

from __future__ import annotations

import argparse
import random
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

ROWS = 100


def spec_text(name: str) -> str:
    return f"""table: {name}
source: {{format: csv, path: {name}/}}
key: [item_id]
version_by: updated_at
columns:
  - {{source: id, name: item_id, type: INT64}}
  - {{source: label, name: label, type: STRING}}
  - {{source: amount, name: amount, type: NUMERIC}}
  - {{source: day, name: day, type: DATE}}
  - {{source: updated, name: updated_at, type: TIMESTAMP}}
transform:
  - {{name: label_upper, type: STRING, expr: "UPPER(label)"}}
checks:
  - {{not_null: [item_id]}}
  - {{unique: [item_id]}}
"""


def generate(root: Path, tables: int) -> dict[str, dict[int, str]]:
    """Specs and two batches per table; returns the expected label per key per table."""
    config, landing = root / "config", root / "landing"
    config.mkdir(parents=True)
    expected: dict[str, dict[int, str]] = {}
    for t in range(tables):
        name = f"small_{t:03d}"
        (config / f"{name}.yaml").write_text(spec_text(name))
        folder = landing / name
        folder.mkdir(parents=True)
        rnd = random.Random(t)
        latest: dict[int, str] = {}
        for batch, ids in ((1, range(1, ROWS + 1)), (2, list(range(1, 21)) + list(range(ROWS + 1, ROWS + 11)))):
            lines = ["id,label,amount,day,updated"]
            for i in ids:
                label = f"item {i} v{batch}"
                lines.append(f"{i},{label},{rnd.randint(0, 99999) / 100},2024-01-{1 + i % 28:02d},2024-0{batch}-01 00:00:00")
                latest[i] = label
            (folder / f"{batch:03d}.csv").write_text("\n".join(lines) + "\n")
        expected[name] = latest
    return expected


def run_cli(root: Path) -> tuple[float, str]:
    cmd = [sys.executable, "-m", "pipeline_sql", "run", "--config-dir", str(root / "config"), "--landing", str(root / "landing"),
           "--state", str(root / "state"), "--quiet"]
    t0 = time.perf_counter()
    proc = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True)
    seconds = time.perf_counter() - t0
    if proc.returncode != 0:
        raise SystemExit(f"run failed ({proc.returncode}):\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}")
    return seconds, proc.stdout


def check(root: Path, expected: dict[str, dict[int, str]]) -> None:
    """Every DWH holds exactly the latest label per key."""
    from pipeline_sql.engine import LocalEngine
    from pipeline_sql.naming import Naming

    naming = Naming()
    with LocalEngine(state_dir=root / "state", gcs_root=None) as eng:
        names = sorted(expected)
        for i in range(0, len(names), 50):
            sql = "\nUNION ALL\n".join(f"SELECT '{n}' AS t, item_id, label FROM {naming.ref('dwh', n)}" for n in names[i : i + 50])
            got: dict[str, dict[int, str]] = {}
            for row in eng.client.query(sql).result():
                got.setdefault(row["t"], {})[row["item_id"]] = row["label"]
            for n in names[i : i + 50]:
                if got.get(n) != expected[n]:
                    raise SystemExit(f"{n}: DWH differs from the latest version per key")


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--tables", type=int, default=100)
    ap.add_argument("--workdir", type=Path, default=None, help="where to write specs, files and state (default: a temp dir)")
    args = ap.parse_args(argv)
    work = Path(args.workdir or tempfile.mkdtemp(prefix="flexyboots-small-"))
    if work.exists() and any(work.iterdir()):
        shutil.rmtree(work)
    work.mkdir(parents=True, exist_ok=True)
    expected = generate(work, args.tables)
    print(f"small_bench: {args.tables} tables, 2 batches of {ROWS} rows each, in {work}")
    first, _ = run_cli(work)
    print(f"  first run (bootstrap, 2 batches per table, all layers): {first:.2f}s")
    second, out = run_cli(work)
    m = re.search(r"engine started in ([0-9.]+)s", out)
    start = float(m.group(1)) if m else float("nan")
    m = re.search(r"(\d+) tables up to date", out)
    skipped = int(m.group(1)) if m else 0
    print(f"  second run (nothing new): {second:.2f}s, engine start {start:.2f}s, {skipped} tables up to date")
    check(work, expected)
    print(f"  DWH exact: {args.tables} tables hold the latest version of their {ROWS + 10} keys")
    if args.workdir is None:
        shutil.rmtree(work, ignore_errors=True)
    print(f"small_bench tables={args.tables} first_run_s={first:.2f} second_run_s={second:.2f} engine_start_s={start:.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
