"""Plan-time scale benchmark: the dev stack with N table specs under Pulumi mocks, against a bare
program that registers the same number of plain resources under the same mocks.

    .venv/bin/python benchmarks/plan_bench.py --tables 1000 [--runs 3]

``bare`` is a bare program that registers the same resources as the plan (same types, same
counts) flat, with minimal inputs: no components, no specs, no SQL, no dependencies. It is the
SDK's own cost for this inventory (about 300 resources/s under mocks here, as DESIGN.md
measures), so ``program_vs_bare`` is what the platform's Python adds. For reference the script
also times the same number of plain ``pulumi.CustomResource``s with three inputs: pulumi-gcp's
Table and DataTransferConfig classes (95% of the inventory) cost the SDK 4-5x such a resource
(each of their ~40 output properties becomes an Output), so that floor is printed but is not
what the ratio is taken against. The last line is the only machine-readable one (medians over
``--runs``)::

    plan_bench tables=N resources=.. program_s=.. bare_s=.. program_vs_bare=.. peak_rss_mb=..
"""

from __future__ import annotations

import argparse
import cProfile
import gc
import io
import pstats
import resource
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import json  # noqa: E402

import pulumi  # noqa: E402
import pulumi_gcp as gcp  # noqa: E402

from components.testing import Mocks, run_program  # noqa: E402
from stacks.plan import run_stack  # noqa: E402

SPEC = """\
table: {name}
source: {{format: {fmt}, path: {name}/}}
key: [{key}]
{version}columns:
  - {{source: id, name: {key}, type: INT64}}
  - {{source: name, name: name, type: STRING}}
  - {{source: amount, name: amount, type: NUMERIC}}
  - {{source: flag, name: active, type: BOOL}}
  - {{source: updated, name: updated_at, type: TIMESTAMP}}
  - {{source: day, name: business_day, type: DATE}}
transform:
  - {{name: name_upper, type: STRING, expr: "UPPER(name)"}}
dwh:
  partition_by: {{column: {part}, granularity: {gran}}}
  cluster_by: [{key}]
checks:
  - {{not_null: [{key}]}}
  - {{unique: [{key}]}}
schedule: {schedule}
"""


def write_specs(folder: Path, n: int) -> None:
    """N varied, valid specs: formats, partitioning, versioning and schedules rotate."""
    fmts = ("csv", "json", "parquet")
    schedules = ("every 24 hours", "every 6 hours", "every day 03:00", "every monday 05:30")
    for i in range(n):
        name = f"table_{i:05d}"
        (folder / f"{name}.yaml").write_text(
            SPEC.format(
                name=name,
                fmt=fmts[i % 3],
                key=f"{name}_id",
                version="version_by: updated_at\n" if i % 2 else "",
                part="updated_at" if i % 2 else "business_day",
                gran="DAY" if i % 4 < 2 else "MONTH",
                schedule=schedules[i % 4],
            ),
            encoding="utf-8",
        )


def run_platform(tables_dir: Path) -> tuple[float, dict[str, int]]:
    t0 = time.perf_counter()
    plan = run_stack("dev", tables_dir=str(tables_dir))
    elapsed = time.perf_counter() - t0
    counts: dict[str, int] = {}
    for r in plan.resources:
        counts[r.type] = counts.get(r.type, 0) + 1
    return elapsed, counts


def _run(program) -> float:
    t0 = time.perf_counter()
    run_program(program, config={"gcp:project": "flexyboots-dev"}, stack="dev", mocks=Mocks(project="flexyboots-dev"))
    return time.perf_counter() - t0


def run_bare(counts: dict[str, int]) -> float:
    """The same resources, registered flat with the SDK's own classes and minimal inputs: no
    components logic, no specs, no SQL, no dependencies. Tables and transfer configs (95% of
    the inventory) use the real pulumi-gcp classes, whose many output properties make them
    several times dearer than a plain CustomResource; every other type is a CustomResource
    (or a ComponentResource for our components)."""
    schema = json.dumps([{"name": f"c{i}", "type": "STRING", "mode": "NULLABLE"} for i in range(12)])
    query = "SELECT 1;\n" * 200

    def program():
        for typ, n in sorted(counts.items()):
            for i in range(n):
                name = f"{typ.split(':')[-1].lower()}-{i}"
                if typ == "gcp:bigquery/table:Table":
                    gcp.bigquery.Table(name, dataset_id="dev_dwh", table_id=name, schema=schema, deletion_protection=False, labels={"env": "dev"})
                elif typ == "gcp:bigquery/dataTransferConfig:DataTransferConfig":
                    gcp.bigquery.DataTransferConfig(
                        name, data_source_id="scheduled_query", display_name=name, params={"query": query}, location="EU",
                        schedule="every 24 hours", schedule_options={"start_time": "2025-01-01T02:00:00Z"},
                    )
                elif typ.startswith("flexyboots:"):
                    pulumi.ComponentResource(typ, name)
                else:  # a neutral token: the mocks special-case some gcp types' required inputs
                    pulumi.CustomResource(f"bench:index:{typ.split(':')[-1]}", name, {"name": name})

    return _run(program)


def run_plain(n: int) -> float:
    """The SDK floor: the same number of plain CustomResources with a few inputs."""

    def program():
        for i in range(n):
            pulumi.CustomResource("bench:index:Plain", f"plain-{i}", {"name": f"plain-{i}", "index": i, "labels": {"env": "dev"}})

    return _run(program)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--tables", type=int, default=1000)
    ap.add_argument("--runs", type=int, default=3, help="repetitions; the last line reports medians")
    ap.add_argument("--profile", action="store_true", help="print the top functions of one platform run")
    args = ap.parse_args(argv)

    with tempfile.TemporaryDirectory(prefix="flexyboots-bench-") as tmp:
        folder = Path(tmp)
        t0 = time.perf_counter()
        write_specs(folder, args.tables)
        print(f"generated {args.tables} specs in {time.perf_counter() - t0:.2f}s ({folder})")
        # warm-up: import every SDK module the program touches (pulumi_gcp.compute alone takes
        # seconds) so that the timed runs compare registering resources, not importing code
        warm = folder / "warm-up"
        warm.mkdir()
        write_specs(warm, 1)
        t0 = time.perf_counter()
        run_platform(warm)
        run_plain(10)
        print(f"warm-up (imports) {time.perf_counter() - t0:.2f}s")
        prog_times, bare_times, plain_times, count = [], [], [], 0
        for run in range(1, args.runs + 1):
            # collect between segments, and alternate who goes first, so that neither pays for
            # the other's garbage or for running second on a warmer heap
            gc.collect()
            if run % 2:
                p, counts = run_platform(folder)
                count = sum(counts.values())
                gc.collect()
                c = run_plain(count)
            else:
                gc.collect()
                c = run_plain(count)
                gc.collect()
                p, counts = run_platform(folder)
            gc.collect()
            b = run_bare(counts)
            prog_times.append(p)
            bare_times.append(b)
            plain_times.append(c)
            print(
                f"run {run}: program {p:.2f}s ({count} resources, {count / p:.0f}/s); bare (same types flat) {b:.2f}s "
                f"({count / b:.0f}/s, ratio {p / b:.2f}); plain CustomResources {c:.2f}s ({count / c:.0f}/s, ratio {p / c:.2f})"
            )
        if args.profile:
            prof = cProfile.Profile()
            prof.enable()
            run_platform(folder)
            prof.disable()
            out = io.StringIO()
            pstats.Stats(prof, stream=out).sort_stats("cumulative").print_stats(25)
            print(out.getvalue())

    program_s = statistics.median(prog_times)
    same_s = statistics.median(bare_times)
    bare_s = statistics.median(plain_times)
    print(f"medians: program {program_s:.2f}s, bare (same types flat) {same_s:.2f}s, "
          f"plain CustomResources {bare_s:.2f}s (program_vs_plain={program_s / bare_s:.2f})")
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux: KiB
    print(
        f"plan_bench tables={args.tables} resources={count} program_s={program_s:.2f} bare_s={same_s:.2f} "
        f"program_vs_bare={program_s / same_s:.2f} peak_rss_mb={peak_mb:.0f}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
