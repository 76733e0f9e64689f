"""Does an incremental run's cost grow with the history? CDC batches on a growing archive.

Loads a table of N rows (the same table as ``pipeline_bench.py``), then lands B incremental CDC
batches one after another (each: 1% of the keys changed, 0.5% new keys) and runs the pipeline
after each, through the same runner the CLI uses, with the engine's state on disk (as ``run``
keeps it; ``--in-memory`` to compare). Each incremental run's time includes a checkpoint of the
database, so no cost is left for a later run. The archive grows by 1.5% of N versions per batch,
the DWH by 0.5% of N keys; an incremental run that reads only what is new costs the same on the
last batch as on the first. Checks the DWH against the latest version per key at the end and
ends with one line::

    history_bench rows=N batches=B first_incremental_s=.. last_incremental_s=.. growth=..

(growth = last / first; the line before it gives every run's seconds, and the growth of the
median of the last three runs over the median of the first three, which is less exposed to a
noisy machine.)

Usage: python benchmarks/history_bench.py [--rows 1000000] [--batches 20] [--in-memory] [--workdir DIR]
"""

from __future__ import annotations

import argparse
import random
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

from pipeline_bench import SPEC, Expected, _line, _row, check_exact, initial_lines, write_lines  # noqa: E402

from pipeline_sql.naming import Naming  # noqa: E402
from pipeline_sql.spec import parse_spec  # noqa: E402


def generate(folder: Path, rows: int, batches: int, seed: int = 11) -> tuple[Expected, list[Path]]:
    """The initial file and ``batches`` CDC files (written aside, landed one by one later)."""
    rnd = random.Random(seed)
    folder.mkdir(parents=True, exist_ok=True)
    n_new = max(1, rows // 200)
    expected = Expected(rows + n_new * batches)
    write_lines(folder / "batch_0000.csv", initial_lines(rows, rnd, expected))
    files = []
    top = rows
    for b in range(1, batches + 1):
        version = 1 + b  # every batch is newer than the one before
        changed = rnd.sample(range(1, top + 1), max(1, rows // 100))
        new = range(top + 1, top + 1 + n_new)
        top += n_new
        path = folder / f"batch_{b:04d}.later"

        def cdc_lines(changed=changed, new=new, version=version):
            for i in list(changed) + list(new):
                r = _row(i, version, rnd)
                expected.put(r, version)
                yield _line(r)

        write_lines(path, cdc_lines())
        files.append(path)
    return expected, files


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rows", type=int, default=1_000_000)
    ap.add_argument("--batches", type=int, default=20)
    ap.add_argument("--in-memory", action="store_true", help="keep the engine's state in memory instead of on disk")
    ap.add_argument("--workdir", type=Path, default=None, help="where to write files and state (default: a temp dir)")
    args = ap.parse_args(argv)
    if args.rows < 200 or args.batches < 2:
        ap.error("--rows must be at least 200 and --batches at least 2")

    from pipeline_sql.engine import LocalEngine
    from pipeline_sql.runner import Runner

    work = Path(args.workdir or tempfile.mkdtemp(prefix="flexyboots-history-"))
    shutil.rmtree(work / "landing", ignore_errors=True)
    shutil.rmtree(work / "state", ignore_errors=True)
    folder = work / "landing" / "bench_accounts"
    spec = parse_spec(SPEC)
    t0 = time.perf_counter()
    expected, files = generate(folder, args.rows, args.batches)
    print(f"history_bench: {args.rows:,} rows and {args.batches} CDC batches of {args.rows // 100 + args.rows // 200:,} rows "
          f"generated in {time.perf_counter() - t0:.1f}s")
    seconds: list[float] = []
    with LocalEngine(state_dir=None if args.in_memory else work / "state", gcs_root=work) as eng:
        runner = Runner(eng.client, Naming(), landing_dir=work / "landing", read_in_place=True)
        runner.bootstrap([spec])
        t0 = time.perf_counter()
        runner.run_table(spec)
        if not args.in_memory:
            eng.checkpoint()
        print(f"  initial load: {time.perf_counter() - t0:.2f}s")
        for b, path in enumerate(files, 1):
            path.rename(path.with_suffix(".csv"))
            t0 = time.perf_counter()
            results = runner.run_table(spec)
            t1 = time.perf_counter()
            if not args.in_memory:
                eng.checkpoint()
            seconds.append(time.perf_counter() - t0)
            layers = "  ".join(f"{r.layer} {r.seconds:.2f}" for r in results)
            other = (t1 - t0) - sum(r.seconds for r in results)  # planning: state query, pending files
            print(f"  batch {b:3d}: {seconds[-1]:6.2f}s  ({layers}  other {other:.2f}  checkpoint {seconds[-1] - (t1 - t0):.2f})", flush=True)
        check_exact(runner, spec, expected)
        print(f"  DWH exact: {len(expected):,} keys equal the latest version per key")
    if args.workdir is None:
        shutil.rmtree(work, ignore_errors=True)
    first, last = seconds[0], seconds[-1]
    k = min(3, len(seconds) // 2)
    med_first, med_last = statistics.median(seconds[:k]), statistics.median(seconds[-k:])
    print(f"  median of the first {k}: {med_first:.2f}s, of the last {k}: {med_last:.2f}s, growth of the medians {med_last / med_first:.2f}")
    print(f"history_bench rows={args.rows} batches={args.batches} first_incremental_s={first:.2f} last_incremental_s={last:.2f} growth={last / first:.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
