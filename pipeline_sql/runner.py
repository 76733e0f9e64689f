"""Run the five layers of each table, in order, through ``google-cloud-bigquery``.

The runner executes the very SQL that :mod:`pipeline_sql.render` produces. Locally (the
embedded engine) the staging layer loads landed files one batch at a time: the first file under
``<landing>/<source.path>`` whose content (SHA-256) is not archived yet is loaded into staging
with a load job, then archived; re-landing the same content changes nothing. Against a real
project (``--project``) the staging layer runs its rendered ``LOAD DATA`` script instead.

Each layer writes with one statement; a failure raises :class:`LayerError` naming the
table and layer and leaves the previous state intact, so a re-run finishes the job.
"""

from __future__ import annotations

import hashlib
import time
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Callable, Iterable

from .naming import DATASETS, LAYERS, Naming
from .render import RenderedTable, render_table
from .checks import render_check_statements, run_id as checks_run_id
from .schema import pipeline_tables, render_ddl, shared_tables
from .spec import TableSpec

_EXTENSIONS = {"csv": (".csv",), "json": (".json", ".jsonl", ".ndjson"), "parquet": (".parquet",)}


class LayerError(RuntimeError):
    def __init__(self, table: str, layer: str, message: str):
        self.table, self.layer = table, layer
        #: the checks layer's LayerResult (its results are written before it fails)
        self.result: "LayerResult | None" = None
        super().__init__(f"{table}: {layer} layer failed: {message}")


@dataclass
class LayerResult:
    table: str
    layer: str
    rows_in: int = 0
    rows_out: int = 0
    seconds: float = 0.0
    detail: dict = field(default_factory=dict)

    def describe(self) -> str:
        d = self.detail
        if self.layer == "staging":
            if not d.get("file"):
                return "no new landed file"
            return f"{d['file']}: {self.rows_out} rows loaded"
        if self.layer == "archive":
            return f"{self.rows_in} rows in -> {self.rows_out} new versions archived, {d.get('null_key_rows', 0)} NULL-key rows"
        if self.layer == "delta":
            return f"{self.rows_out} versions new to the DWH, {d.get('rejected', 0)} failing their casts (rejects)"
        if self.layer == "transform":
            return f"{self.rows_in} rows typed"
        if self.layer == "dwh":
            return f"{d.get('inserted', 0)} inserted, {d.get('updated', 0)} updated, {self.rows_out} rows in DWH"
        if self.layer == "checks":
            text = f"{d.get('passed', 0)} checks passed"
            if d.get("warned"):
                text += f", {d['warned']} warned ({', '.join(r['check_name'] for r in d['results'] if not r['passed'] and r['severity'] == 'warn')})"
            if d.get("failed"):
                text += f", {d['failed']} FAILED"
            return text
        return ""


def landed_files(landing_dir: Path, spec: TableSpec) -> list[Path]:
    folder = landing_dir / spec.source.path
    if not folder.is_dir():
        return []
    exts = _EXTENSIONS[spec.source.format]
    return sorted(p for p in folder.iterdir() if p.is_file() and p.suffix.lower() in exts)


def check_csv_header(spec: TableSpec, path: Path) -> None:
    """CSV columns load by position: refuse a file whose header is not the spec's source
    columns in the spec's order, before anything is loaded."""
    import csv

    with open(path, newline="", encoding="utf-8-sig") as f:
        header = next(csv.reader(f, delimiter=spec.source.delimiter), [])
    found = [h.strip() for h in header]
    expected = [c.source for c in spec.columns]
    if [h.lower() for h in found] != [e.lower() for e in expected]:
        raise LayerError(
            spec.table,
            "staging",
            f"{path}: header {','.join(found) or '(empty)'} does not match the spec's source columns; "
            f"expected {','.join(expected)} (CSV columns load by position)",
        )


def file_sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


class Runner:
    """Runs layers of table specs against one BigQuery endpoint (embedded or real)."""

    def __init__(
        self,
        client,
        naming: Naming,
        landing_dir: Path | None = None,
        landing_uri: str = "gs://landing",
        progress: Callable[[str], None] | None = None,
        local: bool = True,
        read_in_place: bool = False,
    ):
        """``read_in_place``: the engine resolves ``gs://`` under the landing folder's parent
        (its ``gcs_root``), so load jobs read ``gs://<landing folder name>/...`` where the files
        lie instead of uploading them; ``landing_uri`` is then that bucket."""
        self.client = client
        self.naming = naming
        self.landing_dir = Path(landing_dir).resolve() if landing_dir else None
        self.read_in_place = read_in_place and self.landing_dir is not None
        self.landing_uri = f"gs://{self.landing_dir.name}" if self.read_in_place else landing_uri
        self.progress = progress or (lambda line: None)
        self.local = local
        self._rendered: dict[str, RenderedTable] = {}
        self._hash_cache: dict[tuple[str, float, int], str] = {}

    # ------------------------------------------------------------------ plumbing

    def sql(self, spec: TableSpec) -> RenderedTable:
        r = self._rendered.get(spec.table)
        if r is None:
            r = self._rendered[spec.table] = render_table(spec, self.naming, self.landing_uri)
        return r

    def query(self, sql: str, params: dict | None = None, table: str = "", layer: str = "", rows: bool = True):
        """Run one job; its rows (``rows=False``: none, and no extra request for them when the
        job already finished: the embedded engine runs a job within its insert call)."""
        from google.api_core import retry as api_retry
        from google.cloud import bigquery

        cfg = bigquery.QueryJobConfig()
        if params:
            cfg.query_parameters = [
                bigquery.ScalarQueryParameter(k, _param_type(v), v) for k, v in sorted(params.items())
            ]
        try:
            job = self.client.query(sql, job_config=cfg, retry=api_retry.Retry(deadline=30), job_retry=None)
            if not rows and job.state == "DONE":
                if job.error_result:
                    raise RuntimeError(job.error_result.get("message") or str(job.error_result))
                return []
            return list(job.result())
        except Exception as e:  # the client raises many types; keep the message
            raise LayerError(table or "-", layer or "-", _clean(e)) from e

    def scalar_row(self, sql: str, table: str, layer: str) -> dict:
        rows = self.query(sql, table=table, layer=layer)
        return dict(rows[0].items()) if rows else {}

    def bootstrap(self, specs: Iterable[TableSpec]) -> None:
        """Create every dataset and table the layers need (idempotent): one script."""
        stmts = [f"CREATE SCHEMA IF NOT EXISTS {self.naming.dataset_ref(d)}" for d in DATASETS]
        stmts += [render_ddl(t) for t in shared_tables(self.naming)]
        for spec in specs:
            stmts += [render_ddl(t) for t in pipeline_tables(spec, self.naming)]
        self.query(";\n".join(stmts) + ";", table="(all)", layer="bootstrap", rows=False)

    # ------------------------------------------------------------------ layers

    def archived_hashes(self, spec: TableSpec) -> set[str]:
        ref = self.naming.ref("archive", spec.table, "__batches")
        rows = self.query(f"SELECT content_sha256 FROM {ref} WHERE content_sha256 IS NOT NULL", table=spec.table, layer="staging")
        return {r[0] for r in rows}

    def _sha(self, path: Path) -> str:
        st = path.stat()
        k = (str(path), st.st_mtime, st.st_size)
        if k not in self._hash_cache:
            self._hash_cache[k] = file_sha256(path)
        return self._hash_cache[k]

    def pending_files(self, spec: TableSpec) -> list[tuple[Path, str]]:
        """Landed files whose content is not archived yet, in name order (one per content)."""
        if self.landing_dir is None:
            return []
        done = self.archived_hashes(spec)
        out, seen = [], set()
        for p in landed_files(self.landing_dir, spec):
            h = self._sha(p)
            if h not in done and h not in seen:
                seen.add(h)
                out.append((p, h))
        return out

    def run_staging(self, spec: TableSpec, file: tuple[Path, str] | None = None) -> LayerResult:
        """Load the next pending file (or ``file``) into staging and describe the batch."""
        t0 = time.perf_counter()
        res = LayerResult(spec.table, "staging")
        if not self.local:
            self.query(self.sql(spec).layers["staging"], {"run_time": datetime.now(timezone.utc)}, spec.table, "staging")
            n = self.scalar_row(f"SELECT COUNT(*) AS n FROM {self.naming.ref('staging', spec.table)}", spec.table, "staging")["n"]
            res.rows_in = res.rows_out = n
            res.detail["file"] = self.naming.table_id("staging", spec.table)
        else:
            if file is None:
                pending = self.pending_files(spec)
                file = pending[0] if pending else None
            if file is not None:
                path, sha = file
                # forget the previous batch's description first: should the load succeed and
                # the new description fail, the archive must not file the new rows under the
                # old batch (it then names the batch after its run; the file stays pending)
                self.query(f"TRUNCATE TABLE {self.naming.ref('staging', spec.table, '__batch')}", table=spec.table, layer="staging", rows=False)
                res.rows_in = res.rows_out = self._load_file(spec, path)
                rel = path.relative_to(self.landing_dir).as_posix()
                self.query(
                    self.sql(spec).staging_batch,
                    {
                        "batch_id": f"{spec.table}-{sha[:16]}",
                        "source_file": rel,
                        "content_sha256": sha,
                        "landed_at": datetime.fromtimestamp(path.stat().st_mtime, timezone.utc),
                    },
                    spec.table,
                    "staging",
                    rows=False,
                )
                res.detail.update(file=rel, sha256=sha)
        res.seconds = time.perf_counter() - t0
        return res

    def _load_file(self, spec: TableSpec, path: Path) -> int:
        from google.cloud import bigquery

        cfg = bigquery.LoadJobConfig(
            schema=[bigquery.SchemaField(c.source, "STRING") for c in spec.columns],
            write_disposition=bigquery.WriteDisposition.WRITE_TRUNCATE,
        )
        fmt = spec.source.format
        if fmt == "csv":
            check_csv_header(spec, path)
            cfg.source_format = bigquery.SourceFormat.CSV
            cfg.skip_leading_rows = 1
            cfg.field_delimiter = spec.source.delimiter
            cfg.allow_quoted_newlines = True
        elif fmt == "json":
            cfg.source_format = bigquery.SourceFormat.NEWLINE_DELIMITED_JSON
        else:
            cfg.source_format = bigquery.SourceFormat.PARQUET
        table_id = self.naming.table_id("staging", spec.table)
        try:
            if self.read_in_place:
                uri = f"{self.landing_uri}/{path.relative_to(self.landing_dir).as_posix()}"
                job = self.client.load_table_from_uri(uri, table_id, job_config=cfg)
            else:
                with open(path, "rb") as f:
                    job = self.client.load_table_from_file(f, table_id, job_config=cfg)
            job.result()
        except Exception as e:
            raise LayerError(spec.table, "staging", f"loading {path}: {_clean(e)}") from e
        return int(job.output_rows or 0)

    def _run_script(self, spec: TableSpec, layer: str) -> dict:
        """Run a layer's script; its last statement reports what it did (one row, or none)."""
        rows = self.query(self.sql(spec).layers[layer], table=spec.table, layer=layer)
        return dict(rows[0].items()) if rows else {}

    def run_archive(self, spec: TableSpec) -> LayerResult:
        t0 = time.perf_counter()
        row = self._run_script(spec, "archive")
        self._log_batch(spec, row)
        res = LayerResult(spec.table, "archive", rows_in=row.get("rows_in") or 0, rows_out=row.get("rows_archived") or 0)
        res.detail = {"null_key_rows": row.get("null_key_rows") or 0, "file": row.get("source_file")}
        res.seconds = time.perf_counter() - t0
        return res

    def _log_batch(self, spec: TableSpec, row: dict) -> None:
        """Record the archived batch in ``archive.<t>__batches`` after the archive statement
        committed, so a landed file counts as done only once archived (a file is staged and
        archived again if the runner stopped in between, which adds nothing)."""
        if not row.get("batch_id") or not (row.get("rows_in") or row.get("content_sha256")):
            return
        self.query(
            self.sql(spec).batch_log,
            {
                "batch_id": row["batch_id"],
                "source_file": row.get("source_file") or "",
                "content_sha256": row.get("content_sha256") or "",
                "rows_in": int(row.get("rows_in") or 0),
                "null_key_rows": int(row.get("null_key_rows") or 0),
                "rows_archived": int(row.get("rows_archived") or 0),
            },
            spec.table,
            "archive",
            rows=False,
        )

    def run_delta(self, spec: TableSpec) -> LayerResult:
        t0 = time.perf_counter()
        row = self._run_script(spec, "delta")
        res = LayerResult(spec.table, "delta", rows_out=row.get("versions") or 0, detail={"rejected": row.get("rejected") or 0})
        res.seconds = time.perf_counter() - t0
        return res

    def run_transform(self, spec: TableSpec) -> LayerResult:
        t0 = time.perf_counter()
        row = self._run_script(spec, "transform")
        n = row.get("rows_in") or 0
        res = LayerResult(spec.table, "transform", rows_in=n, rows_out=n)
        res.seconds = time.perf_counter() - t0
        return res

    def run_dwh(self, spec: TableSpec) -> LayerResult:
        t0 = time.perf_counter()
        row = self._run_script(spec, "dwh")
        res = LayerResult(spec.table, "dwh", rows_in=row.get("rows_in") or 0, rows_out=row.get("dwh_rows") or 0)
        res.detail = {k: row.get(k) or 0 for k in ("inserted", "updated")}
        res.seconds = time.perf_counter() - t0
        return res

    def run_checks(self, spec: TableSpec, run_time: datetime | None = None) -> LayerResult:
        """Run the checks script with ``@run_time`` (default: now), then read back this run's
        results from ``quality.check_results`` (``detail["results"]``). An error-severity
        failure raises :class:`LayerError` after the results are written and read."""
        t0 = time.perf_counter()
        run_time = run_time or datetime.now(timezone.utc)
        failure: LayerError | None = None
        try:
            for stmt in render_check_statements(spec, self.naming):  # == self.sql(spec).checks
                self.query(stmt, {"run_time": run_time}, spec.table, "checks", rows=False)
        except LayerError as e:
            failure = e
        results = self.check_results(spec, checks_run_id(spec.table, run_time)) if spec.checks else []
        res = LayerResult(spec.table, "checks", seconds=time.perf_counter() - t0)
        res.detail = {
            "run_id": checks_run_id(spec.table, run_time),
            "results": results,
            "passed": sum(1 for r in results if r["passed"]),
            "failed": sum(1 for r in results if not r["passed"] and r["severity"] == "error"),
            "warned": sum(1 for r in results if not r["passed"] and r["severity"] == "warn"),
        }
        if failure is not None:
            failure.result = res
            raise failure
        return res

    def check_results(self, spec: TableSpec, run_id: str | None = None, history: int = 1) -> list[dict]:
        """Rows of ``quality.check_results`` for a table: one run's (``run_id``; its latest
        try), or the last ``history`` runs', newest first, checks in spec order."""
        ref = self.naming.ref("quality", "check_results")
        cols = "run_id, check_name, rule, columns, severity, passed, failing_rows, sample_keys, observed_value, message, referenced_table, checked_at"
        if run_id is not None:
            sql = (
                f"SELECT {cols} FROM {ref} WHERE table_name = @table AND run_id = @run_id "
                "QUALIFY checked_at = MAX(checked_at) OVER ()"
            )
            params = {"table": spec.table, "run_id": run_id}
        else:
            sql = (
                f"SELECT {cols} FROM {ref} WHERE table_name = @table "
                "QUALIFY DENSE_RANK() OVER (ORDER BY checked_at DESC) <= @history"
            )
            params = {"table": spec.table, "history": history}
        rows = [dict(r.items()) for r in self.query(sql, params, spec.table, "checks")]
        order = {ch.name: i for i, ch in enumerate(spec.checks)}
        rows.sort(key=lambda r: (-r["checked_at"].timestamp(), order.get(r["check_name"], len(order)), r["check_name"]))
        return rows

    def run_layer(self, spec: TableSpec, layer: str) -> LayerResult:
        fn = {
            "staging": self.run_staging,
            "archive": self.run_archive,
            "delta": self.run_delta,
            "transform": self.run_transform,
            "dwh": self.run_dwh,
            "checks": self.run_checks,
        }.get(layer)
        if fn is None:
            raise ValueError(f"unknown layer {layer!r}; expected one of: {', '.join(LAYERS + ('checks',))}")
        return fn(spec)

    # ------------------------------------------------------------------ whole runs

    def run_table(self, spec: TableSpec) -> list[LayerResult]:
        """Stage and archive every pending batch, then delta, transform, dwh and checks once."""
        results: list[LayerResult] = []

        def step(res: LayerResult) -> LayerResult:
            self.progress(f"{spec.table:<14} {res.layer:<9} {res.describe():<78} {res.seconds:7.2f}s")
            results.append(res)
            return res

        if self.local:
            pending = self.pending_files(spec)
            if not pending:
                step(LayerResult(spec.table, "staging"))
            for f in pending:
                step(self.run_staging(spec, f))
                step(self.run_archive(spec))
        else:
            step(self.run_staging(spec))
            step(self.run_archive(spec))
        for layer in ("delta", "transform", "dwh", "checks"):
            step(self.run_layer(spec, layer))
        return results

    def run(self, specs: list[TableSpec]) -> list[LayerResult]:
        self.bootstrap(specs)
        out: list[LayerResult] = []
        for spec in specs:
            out += self.run_table(spec)
        return out


def _param_type(v) -> str:
    if isinstance(v, bool):
        return "BOOL"
    if isinstance(v, int):
        return "INT64"
    if isinstance(v, float):
        return "FLOAT64"
    if isinstance(v, datetime):
        return "TIMESTAMP"
    return "STRING"


def _clean(e: Exception) -> str:
    msg = getattr(e, "message", None) or str(e)
    msg = msg.split("\n\nLocation:")[0].split("\n\nJob ID:")[0]
    msg = msg.replace("Query execution failed: ", "")
    return msg.strip()
