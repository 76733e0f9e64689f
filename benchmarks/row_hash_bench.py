"""The archive's row hash on the embedded engine: the NULL-stable named form (issue 10,
``pipeline_sql.render.row_hash``) against the former positional one (``TO_JSON_STRING`` of an
array of the values), over N rows of 8 STRING columns (about 1 in 4 values NULL). Prints the
median of three runs of ``COUNT(DISTINCT <hash>)`` per form.

Usage: python benchmarks/row_hash_bench.py [--rows 1000000]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from pipeline_sql.engine import LocalEngine  # noqa: E402
from pipeline_sql.render import row_hash  # noqa: E402


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--rows", type=int, default=1_000_000)
    n = ap.parse_args().rows
    cols = [f"c{i}" for i in range(8)]
    forms = {"positional": f"TO_HEX(MD5(TO_JSON_STRING([{', '.join(cols)}])))", "named": row_hash(cols)}
    with tempfile.TemporaryDirectory() as root, LocalEngine(state_dir=None, gcs_root=Path(root)) as eng:
        c = eng.client
        c.query("CREATE SCHEMA IF NOT EXISTS `flexyboots-local.bench`").result()
        sel = ", ".join(f"IF(MOD(x, {i + 3}) = 0, NULL, CAST(x * {i + 1} AS STRING)) AS {name}" for i, name in enumerate(cols))
        c.query(f"CREATE OR REPLACE TABLE `flexyboots-local.bench.t` AS SELECT {sel} FROM UNNEST(GENERATE_ARRAY(1, {n})) AS x").result()
        out = {}
        for name, expr in forms.items():
            times = []
            for _ in range(3):
                t0 = time.perf_counter()
                list(c.query(f"SELECT COUNT(DISTINCT {expr}) AS n FROM `flexyboots-local.bench.t`").result())
                times.append(time.perf_counter() - t0)
            out[name] = statistics.median(times)
    print(f"row_hash_bench rows={n} positional_s={out['positional']:.3f} named_s={out['named']:.3f} ratio={out['named'] / out['positional']:.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
