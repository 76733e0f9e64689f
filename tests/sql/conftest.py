"""SQL-semantics tests of the five layers on the embedded engine (bqemulator on DuckDB).

One engine per test session (starting one costs ~2 s). Every test gets its own datasets through
a unique ``Naming(env=...)`` and its own landing folder under ``tmp_path``; the runner uploads
each landed file with ``load_table_from_file`` (``read_in_place`` is off), so tests never
share a table or a file.

Helpers here:

* ``sql_model.make_spec`` builds a :class:`TableSpec` from keyword fields (validated by
  ``parse_spec``) and ``sql_model.Model`` is the independent pure-Python model of what the DWH,
  the archive and the rejects must hold (test modules import ``sql_model`` directly);
* :class:`Pipe` is one table under test: its runner, its landing folder and readers for every
  layer's tables (``pipe.land(rows)`` writes the next batch file, ``pipe.dwh()`` reads the DWH as
  a dict keyed by the key, ``pipe.snapshot()`` reads every persistent table in full);
"""

from __future__ import annotations

import csv
import io
import itertools
import json
from pathlib import Path
from typing import Any

import pytest

from pipeline_sql.engine import LocalEngine
from pipeline_sql.naming import Naming
from pipeline_sql.runner import Runner
from pipeline_sql.spec import TableSpec

#: The layers in run order, plus the quality checks the runner runs after the DWH.
ORDER = ("staging", "archive", "delta", "transform", "dwh", "checks")

_env_counter = itertools.count(1)


def unique_env(prefix: str = "t") -> str:
    """A fresh environment name (1-16 lowercase letters/digits): fresh datasets per call."""
    return f"{prefix}{next(_env_counter)}"


@pytest.fixture(scope="session")
def engine(tmp_path_factory):
    """One embedded engine for the whole session (in memory)."""
    root = tmp_path_factory.mktemp("gcs")
    with LocalEngine(state_dir=None, gcs_root=root) as eng:
        yield eng


def rows_of(result) -> list[dict]:
    return [dict(r.items()) for r in result]


def _freeze(v: Any) -> Any:
    if isinstance(v, list):
        return tuple(_freeze(x) for x in v)
    if isinstance(v, dict):
        return tuple(sorted((k, _freeze(x)) for k, x in v.items()))
    return v


def canon(rows: list[dict]) -> list[tuple]:
    """Rows as a sorted list of hashable tuples: compare whole tables regardless of order."""
    return sorted((_freeze(r) for r in rows), key=repr)


class Pipe:
    """One table under test: spec, runner, landing folder, readers."""

    def __init__(self, engine: LocalEngine, spec: TableSpec, landing: Path, env: str | None = None):
        self.spec = spec
        self.env = env or unique_env()
        self.naming = Naming(env=self.env)
        self.landing = landing
        self.folder = landing / spec.source.path
        self.folder.mkdir(parents=True, exist_ok=True)
        self.runner = Runner(engine.client, self.naming, landing_dir=landing)  # uploads each file
        self.runner.bootstrap([spec])
        self._seq = 0

    def respec(self, spec: TableSpec) -> "Pipe":
        """The same table (datasets, landing folder, landed files) under a changed spec: a new
        runner, as after editing the spec file. Nothing runs until a layer or a run does."""
        p = Pipe.__new__(Pipe)
        p.__dict__.update(self.__dict__)
        p.spec = spec
        p.runner = Runner(self.runner.client, self.naming, landing_dir=self.landing)
        return p

    # ------------------------------------------------------------------ landing

    def land(self, rows: list[dict], name: str | None = None, fmt: str | None = None, raw: str | None = None) -> Path:
        """Write the next batch file (name order = landing order) and return its path.

        ``rows`` map *target* column names to a value or None (missing = None). CSV: None is an
        empty field (which the load reads as NULL), so a CSV value must not be ''. JSON: one
        object per line, None written as ``null``; values are written as given (strings, or JSON
        numbers/booleans when a test passes them). ``raw`` writes that text instead of rows.
        """
        fmt = fmt or self.spec.source.format
        self._seq += 1
        ext = {"csv": "csv", "json": "ndjson"}[fmt]
        path = self.folder / (name or f"batch_{self._seq:04d}.{ext}")
        if raw is not None:
            path.write_text(raw, encoding="utf-8")
            return path
        cols = self.spec.columns
        if fmt == "csv":
            buf = io.StringIO()
            w = csv.writer(buf, lineterminator="\n")
            w.writerow([c.source for c in cols])
            for r in rows:
                vals = []
                for c in cols:
                    v = r.get(c.name)
                    assert v != "", "CSV cannot carry '' (an empty field loads as NULL)"
                    vals.append("" if v is None else v)
                w.writerow(vals)
            path.write_text(buf.getvalue(), encoding="utf-8")
        else:
            lines = [json.dumps({c.source: r.get(c.name) for c in cols}) for r in rows]
            path.write_text("".join(line + "\n" for line in lines), encoding="utf-8")
        return path

    # ------------------------------------------------------------------ running

    def run(self, layer: str):
        return self.runner.run_layer(self.spec, layer)

    def run_all(self):
        """The whole run: stage + archive every pending file, then delta..checks."""
        return self.runner.run_table(self.spec)

    def check_results(self) -> list[dict]:
        """The latest check run's rows of quality.check_results for this table, in spec order."""
        return self.runner.check_results(self.spec, history=1)

    def query(self, sql: str) -> list[dict]:
        return rows_of(self.runner.query(sql))

    def ref(self, layer: str, suffix: str = "") -> str:
        return self.naming.ref(layer, self.spec.table, suffix)

    # ------------------------------------------------------------------ readers

    def table(self, layer: str, suffix: str = "") -> list[dict]:
        return self.query(f"SELECT * FROM {self.ref(layer, suffix)}")

    def archive(self) -> list[dict]:
        return self.table("archive")

    def batches(self) -> list[dict]:
        return self.table("archive", "__batches")

    def rejects(self) -> list[dict]:
        """The rejects view (over the archive): one row per (archived version, failing column)."""
        return self.table("quality", "__rejects")

    def dwh_rows(self) -> list[dict]:
        return self.table("dwh")

    def dwh(self, meta: bool = False) -> dict[tuple, dict]:
        """The DWH as {key tuple: business columns (+ _row_hash etc. when ``meta``)}."""
        out: dict[tuple, dict] = {}
        names = [n for n, _ in self.spec.dwh_columns]
        for r in self.dwh_rows():
            k = tuple(r[c] for c in self.spec.key)
            assert k not in out, f"key {k} appears twice in the DWH"
            out[k] = r if meta else {c: r[c] for c in names}
        return out

    def assert_model(self, batches: list[list[dict]], specs: list[TableSpec] | None = None) -> None:
        """The archive, the DWH (values and row hashes) and the rejects are exactly what the
        independent model computes from ``batches`` (in landing order; ``specs``: the spec each
        batch was landed under, see ``sql_model.Model``); nothing is duplicated."""
        from sql_model import Model

        m = Model(self.spec, batches, specs)
        key = self.spec.key
        akey = [self.spec.column(k).archive_name for k in key]
        archive = [(tuple(r[k] for k in akey), r["_row_hash"]) for r in self.archive()]
        assert len(archive) == len(set(archive)), "a (key, row hash) is archived twice"
        assert set(archive) == set(m.archive), "archive differs from the model"
        names = self.spec.column_names  # the model leaves derived columns out
        assert {k: {n: v[n] for n in names} for k, v in self.dwh().items()} == m.dwh(), "DWH differs from the model"
        assert {k: r["_row_hash"] for k, r in self.dwh(meta=True).items()} == m.dwh_hashes()
        reject_rows = self.rejects()
        rejects = [tuple(r[k] for k in key) + (r["_row_hash"], r["column_name"], r["value"]) for r in reject_rows]
        assert len(rejects) == len(set(rejects)), "a reject is recorded twice"
        assert set(rejects) == m.rejects, "rejects differ from the model"
        # each reject names its declared type and carries its archived version's provenance
        types = {c.name: c.type for c in self.spec.columns}
        by_version = {(tuple(r[k] for k in akey), r["_row_hash"]): r for r in self.archive()}
        for r in reject_rows:
            assert r["reason"] == f"not a valid {types[r['column_name']]}"
            a = by_version[(tuple(r[k] for k in key), r["_row_hash"])]
            assert (r["_batch_id"], r["_source_file"], r["_ingested_at"]) == (a["_batch_id"], a["_source_file"], a["_ingested_at"])
        # no landed batch lost: one batch row per distinct landed file content, NULL keys counted
        from pipeline_sql.runner import file_sha256, landed_files

        landed = {file_sha256(f) for f in landed_files(self.landing, self.spec)}
        # (the runner's record in __batches: exactly one row per landed content, none missing,
        # none twice, even when a file was staged and archived again)
        batch_rows = self.batches()
        assert sorted(b["content_sha256"] for b in batch_rows) == sorted(landed), "a landed batch is missing or logged twice"
        assert len({b["batch_id"] for b in batch_rows}) == len(batch_rows), "a batch id is logged twice"
        distinct = {repr(b): m.null_key_rows[i] for i, b in enumerate(batches)}
        assert sum(b["null_key_rows"] for b in batch_rows) == sum(distinct.values())
        # every archived version belongs to exactly one logged batch, which counted it
        per_batch: dict[str, int] = {}
        for r in self.archive():
            per_batch[r["_batch_id"]] = per_batch.get(r["_batch_id"], 0) + 1
        assert set(per_batch) <= {b["batch_id"] for b in batch_rows}, "archived versions of an unlogged batch"
        assert {b["batch_id"]: b["rows_archived"] for b in batch_rows} == {
            b["batch_id"]: per_batch.get(b["batch_id"], 0) for b in batch_rows
        }

    def snapshot(self) -> dict[str, list[tuple]]:
        """Every persistent table in full (archive, the runner's __batches, dwh — whose rows
        carry the high-water mark ``_through``), plus the rows of the rejects view, order-free."""
        return {
            "archive": canon(self.archive()),
            "batches": canon(self.batches()),
            "dwh": canon(self.dwh_rows()),
            "rejects": canon(self.rejects()),
        }

    def all_tables(self) -> dict[str, list[tuple]]:
        """``snapshot`` plus the rebuilt tables (staging, its batch, delta, transform)."""
        out = self.snapshot()
        out["staging"] = canon(self.table("staging"))
        out["staging_batch"] = canon(self.table("staging", "__batch"))
        out["delta"] = canon(self.table("delta"))
        out["transform"] = canon(self.table("transform"))
        return out


@pytest.fixture
def pipe_factory(engine, tmp_path):
    """``pipe_factory(spec)`` -> a fresh :class:`Pipe` (own datasets, own landing folder)."""
    n = itertools.count(1)

    def make(spec: TableSpec, env: str | None = None) -> Pipe:
        landing = tmp_path / f"landing{next(n)}"
        landing.mkdir()
        return Pipe(engine, spec, landing, env=env)

    return make
