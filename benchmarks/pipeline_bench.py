"""Five-layer pipeline benchmark on the embedded engine.

Generates a table of N rows (one CSV file), a second batch holding only changed and new rows
(a CDC batch: 1% of the keys changed, 0.5% new keys) and a third, full-snapshot batch (the whole
table again with 1% of the keys changed); runs the initial load (staging -> archive -> delta ->
transform -> dwh -> checks), then the CDC and the snapshot loads, through the same runner the CLI
uses; in the same process measures the floor, a raw DuckDB ``read_csv`` of the same first file
into a table (with ``--persistent`` into an on-disk database, checkpointed, like the engine's
state; the median of three such loads, each into a new database); checks that the DWH is exact (equal to the latest version per key computed in Python from
the generated rows); prints seconds and rows/s per layer and ends with one line::

    pipeline_bench rows=N initial_s=.. incremental_s=.. snapshot_s=.. floor_s=.. initial_vs_floor=.. incremental_vs_initial=.. snapshot_vs_initial=.. peak_rss_mb=..

With ``--persistent`` each load's time includes a checkpoint of the engine's database (what it
wrote reaches the database file, not only its write-ahead log), so no cost is left for later.
The line before the last gives the CPU seconds of the floor and of each load (this process,
every thread: the engine runs in it), less exposed than wall seconds to other work on a shared
machine.

Usage: python benchmarks/pipeline_bench.py [--rows 1000000] [--persistent] [--workdir DIR]
"""

from __future__ import annotations

import argparse
import random
import shutil
import statistics
import sys
import tempfile
import threading
import time
from decimal import Decimal
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import numpy as np  # noqa: E402
import psutil  # noqa: E402

from pipeline_sql.naming import Naming  # noqa: E402
from pipeline_sql.spec import parse_spec  # noqa: E402

SPEC = {
    "table": "bench_accounts",
    "source": {"format": "csv", "path": "bench_accounts/"},
    "key": ["account_id"],
    "version_by": "updated_at",
    "columns": [
        {"source": "id", "name": "account_id", "type": "INT64"},
        {"source": "name", "name": "name", "type": "STRING"},
        {"source": "email", "name": "email", "type": "STRING"},
        {"source": "balance", "name": "balance", "type": "NUMERIC"},
        {"source": "score", "name": "score", "type": "FLOAT64"},
        {"source": "active", "name": "active", "type": "BOOL"},
        {"source": "opened", "name": "opened_on", "type": "DATE"},
        {"source": "updated", "name": "updated_at", "type": "TIMESTAMP"},
    ],
    "transform": [{"name": "email_domain", "type": "STRING", "expr": "SPLIT(email, '@')[SAFE_OFFSET(1)]"}],
    "dwh": {"partition_by": {"column": "updated_at", "granularity": "DAY"}, "cluster_by": ["account_id"]},
    "checks": [{"not_null": ["account_id"]}, {"unique": ["account_id"]}],
}
#: How many times the floor is measured (its median is the floor).
FLOOR_RUNS = 3
HEADER = "id,name,email,balance,score,active,opened,updated\n"


def _updated(version: int) -> str:
    """The last-modified time of a version: one day later per version (valid for any count)."""
    import datetime as dt

    return (dt.datetime(2024, 1, 1) + dt.timedelta(days=version)).strftime("%Y-%m-%d %H:%M:%S")


def _row(i: int, version: int, rnd: random.Random) -> tuple:
    return (
        i,
        f"name {i} v{version}",
        f"user{i}@example{i % 97}.com",
        rnd.randint(0, 10_000_000),  # balance in cents
        f"{rnd.random() * 1000:.3f}",
        rnd.random() < 0.8,
        f"20{10 + i % 14:02d}-{1 + i % 12:02d}-{1 + i % 28:02d}",
        _updated(version),
    )


def _line(r: tuple) -> str:
    return f"{r[0]},{r[1]},{r[2]},{r[3] // 100}.{r[3] % 100:02d},{r[4]},{'true' if r[5] else 'false'},{r[6]},{r[7]}"


class Expected:
    """The latest version per key, kept compact (numpy columns) so that holding it does not
    dominate the benchmark's peak memory; name, email, opened and updated follow from the key
    and the version."""

    def __init__(self, size: int):
        self.version = np.zeros(size + 1, dtype=np.int8)
        self.cents = np.zeros(size + 1, dtype=np.int64)
        self.score = np.zeros(size + 1, dtype=np.float64)
        self.active = np.zeros(size + 1, dtype=np.bool_)

    def put(self, r: tuple, version: int) -> None:
        i = r[0]
        self.version[i], self.cents[i], self.score[i], self.active[i] = version, r[3], float(r[4]), r[5]

    def __len__(self) -> int:
        return int(np.count_nonzero(self.version))

    def line(self, i: int) -> str:
        """The CSV line of key ``i``'s latest version (as generated)."""
        v, cents = int(self.version[i]), int(self.cents[i])
        return _line((i, f"name {i} v{v}", f"user{i}@example{i % 97}.com", cents, f"{self.score[i]:.3f}", bool(self.active[i]),
                      f"20{10 + i % 14:02d}-{1 + i % 12:02d}-{1 + i % 28:02d}", _updated(v)))

    def matches(self, row) -> bool:
        i = row[0]
        v = int(self.version[i]) if 0 < i < len(self.version) else 0
        if v == 0:
            return False
        return (
            row[1] == f"name {i} v{v}"
            and row[2] == f"user{i}@example{i % 97}.com"
            and row[3] == Decimal(int(self.cents[i])) / 100
            and abs(row[4] - self.score[i]) <= 1e-9
            and row[5] == bool(self.active[i])
            and row[6].isoformat() == f"20{10 + i % 14:02d}-{1 + i % 12:02d}-{1 + i % 28:02d}"
            and row[7].strftime("%Y-%m-%d %H:%M:%S") == _updated(v)
        )


def write_lines(path: Path, lines) -> None:
    """A CSV file: the header, then the lines, written in chunks."""
    with open(path, "w") as f:
        f.write(HEADER)
        chunk = []
        for line in lines:
            chunk.append(line)
            if len(chunk) == 50_000:
                f.write("\n".join(chunk) + "\n")
                chunk = []
        if chunk:
            f.write("\n".join(chunk) + "\n")


def initial_lines(rows: int, rnd: random.Random, expected: Expected):
    """Version 1 of keys 1..rows, recorded in ``expected``."""
    for i in range(1, rows + 1):
        r = _row(i, 1, rnd)
        expected.put(r, 1)
        yield _line(r)


def generate(landing: Path, rows: int, seed: int = 7) -> tuple[Expected, float]:
    """Write the three batches; return the expected DWH and the seconds taken."""
    t0 = time.perf_counter()
    rnd = random.Random(seed)
    folder = landing / "bench_accounts"
    folder.mkdir(parents=True, exist_ok=True)
    n_new = max(1, rows // 200)
    expected = Expected(rows + n_new)
    write_lines(folder / "batch_0001.csv", initial_lines(rows, rnd, expected))
    changed = rnd.sample(range(1, rows + 1), max(1, rows // 100))
    new = range(rows + 1, rows + 1 + n_new)
    with open(folder / "batch_0002.csv", "w") as f:
        f.write(HEADER)
        for i in list(changed) + list(new):
            r = _row(i, 2, rnd)
            expected.put(r, 2)
            f.write(_line(r) + "\n")
    # the full snapshot: every key with its latest version, 1% of them changed to version 3
    snap_changed = set(rnd.sample(range(1, rows + n_new + 1), max(1, rows // 100)))

    def snapshot_lines():
        for i in range(1, rows + n_new + 1):
            if i in snap_changed:
                r = _row(i, 3, rnd)
                expected.put(r, 3)
                yield _line(r)
            else:
                yield expected.line(i)

    write_lines(folder / "batch_0003.csv", snapshot_lines())
    return expected, time.perf_counter() - t0


class PeakRss:
    """Samples this process's RSS every 50 ms (the engine runs inside this process)."""

    def __init__(self):
        self.proc = psutil.Process()
        self.peak = self.proc.memory_info().rss
        self._stop = threading.Event()
        self._t = threading.Thread(target=self._run, daemon=True)

    def _run(self):
        while not self._stop.wait(0.05):
            self.peak = max(self.peak, self.proc.memory_info().rss)

    def __enter__(self):
        self._t.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        self._t.join()
        self.peak = max(self.peak, self.proc.memory_info().rss)


def floor_seconds(path: Path, on_disk: Path | None = None) -> float:
    """A raw DuckDB load of the file into a table: in memory, or into a database file at
    ``on_disk`` (checkpointed, as the engine's loads are measured)."""
    import duckdb

    con = duckdb.connect(str(on_disk) if on_disk else ":memory:")
    t0 = time.perf_counter()
    con.execute(f"CREATE TABLE floor AS SELECT * FROM read_csv('{path}', header = true, all_varchar = true)")
    n = con.execute("SELECT COUNT(*) FROM floor").fetchone()[0]
    if on_disk:
        con.execute("CHECKPOINT")
    s = time.perf_counter() - t0
    con.close()
    assert n > 0
    return s


def check_exact(runner, spec, expected: Expected) -> None:
    """Stream the DWH in pages and compare every row with the independently generated one."""
    ref = runner.naming.ref("dwh", spec.table)
    job = runner.client.query(f"SELECT account_id, name, email, balance, score, active, opened_on, updated_at FROM {ref}")
    n = bad = 0
    for row in job.result(page_size=50_000):
        n += 1
        bad += not expected.matches(row)
    if n != len(expected) or bad:
        raise SystemExit(f"DWH not exact: {n} rows ({len(expected)} expected), {bad} differ from the latest version per key")


def run_load(runner, spec, label: str, engine=None) -> tuple[float, list]:
    """One load through the runner (and, given the on-disk ``engine``, its checkpoint)."""
    t0 = time.perf_counter()
    results = runner.run_table(spec)
    if engine is not None:
        engine.checkpoint()
    total = time.perf_counter() - t0
    for r in results:
        n = max(r.rows_in, r.rows_out)
        rate = f"{n / r.seconds:>12,.0f} rows/s" if r.seconds > 0 and n else " " * 19
        print(f"  {label:<11} {r.layer:<9} {r.seconds:7.2f}s  {rate}  {r.describe()}")
    print(f"  {label:<11} total     {total:7.2f}s")
    return total, results


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rows", type=int, default=1_000_000)
    ap.add_argument("--persistent", action="store_true", help="keep engine state on disk (as `run` does) instead of in memory")
    ap.add_argument("--workdir", type=Path, default=None, help="where to write the generated files (default: a temp dir)")
    args = ap.parse_args(argv)
    if args.rows < 200:
        ap.error("--rows must be at least 200")

    from pipeline_sql.engine import LocalEngine
    from pipeline_sql.runner import Runner

    work = Path(args.workdir or tempfile.mkdtemp(prefix="flexyboots-bench-"))
    landing = work / "landing"
    for old in (landing, work / "state"):  # the floor's database is removed before each of its loads
        shutil.rmtree(old, ignore_errors=True) if old.is_dir() else old.unlink(missing_ok=True)
    spec = parse_spec(SPEC)
    print(f"pipeline_bench: generating {args.rows:,} rows, a CDC batch of {args.rows // 100 + args.rows // 200:,} changed/new rows "
          f"and a full snapshot (1% changed) in {landing}")
    expected, gen_s = generate(landing, args.rows)
    print(f"  generated in {gen_s:.1f}s")
    folder = landing / "bench_accounts"
    first = folder / "batch_0001.csv"
    # the floor is the median of three loads (each into a new database): one measurement moved
    # the ratio more than the code did on a busy machine
    floors, cpu0 = [], time.process_time()
    for _ in range(FLOOR_RUNS):
        db = work / "floor.duckdb"
        for old in (db, db.with_name(db.name + ".wal")):
            old.unlink(missing_ok=True)
        floors.append(floor_seconds(first, db if args.persistent else None))
    cpu = {"floor": (time.process_time() - cpu0) / FLOOR_RUNS}
    floor = statistics.median(floors)
    where = "an on-disk database (checkpointed)" if args.persistent else "an in-memory database"
    print(f"  floor: duckdb read_csv of {first.name} into a table of {where}: {floor:.2f}s "
          f"(median of {', '.join(f'{f:.2f}' for f in floors)})")

    state = work / "state" if args.persistent else None
    # land the later batches one by one, after the load before them
    later = [folder / "batch_0002.csv", folder / "batch_0003.csv"]
    hidden = [p.rename(p.with_suffix(".later")) for p in later]
    with PeakRss() as rss:
        with LocalEngine(state_dir=state, gcs_root=landing.parent) as eng:
            runner = Runner(eng.client, Naming(), landing_dir=landing, read_in_place=True)
            runner.bootstrap([spec])
            ckpt = eng if args.persistent else None
            cpu0 = time.process_time()
            initial, _ = run_load(runner, spec, "initial", ckpt)
            cpu["initial"], cpu0 = time.process_time() - cpu0, time.process_time()
            hidden[0].rename(later[0])
            incremental, _ = run_load(runner, spec, "cdc", ckpt)
            cpu["cdc"], cpu0 = time.process_time() - cpu0, time.process_time()
            hidden[1].rename(later[1])
            snapshot, _ = run_load(runner, spec, "snapshot", ckpt)
            cpu["snapshot"] = time.process_time() - cpu0
            check_exact(runner, spec, expected)
            print(f"  DWH exact: {len(expected):,} keys equal the latest version per key")
    shutil.rmtree(work, ignore_errors=True) if args.workdir is None else None
    # CPU seconds of this process (every thread: the engine runs in it), less exposed to other
    # work on a shared machine than wall seconds; the ratios below use wall seconds
    print(f"  cpu seconds: floor {cpu['floor']:.2f}, initial {cpu['initial']:.2f} ({cpu['initial'] / cpu['floor']:.2f}x the floor's), "
          f"cdc {cpu['cdc']:.2f}, snapshot {cpu['snapshot']:.2f}")
    print(
        f"pipeline_bench rows={args.rows} initial_s={initial:.2f} incremental_s={incremental:.2f} snapshot_s={snapshot:.2f} "
        f"floor_s={floor:.2f} initial_vs_floor={initial / floor:.2f} incremental_vs_initial={incremental / initial:.3f} "
        f"snapshot_vs_initial={snapshot / initial:.3f} peak_rss_mb={rss.peak / 2**20:.0f}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
