"""Run the five layers of each table, in order, through ``google-cloud-bigquery``.

The runner executes the very SQL that :mod:`pipeline_sql.render` produces. Locally (the
embedded engine) the staging layer loads landed files one batch at a time: the first file under
``<landing>/<source.path>`` (in name order, sub-folders such as ``dt=YYYY-MM-DD/`` included)
whose content (SHA-256) is not archived yet is checked (:func:`~pipeline_sql.landed.check_landed_file`),
loaded into staging with a load job, then archived; re-landing the same content changes
nothing. A file the check refuses is quarantined (``quality.refused_files``, by content hash)
and skipped until its content changes; the table's next file loads as usual. Against a real project (``--project``)
the staging layer runs its rendered script instead (the files that landed in the run's window).

A CSV file loads by its own header (a column a file lacks reads NULL, unless the spec requires
it). ``run_table(..., full_refresh=True)`` rebuilds transform and DWH from the whole archive
instead of delta, transform and dwh.

Each layer writes with one statement; a failure raises :class:`LayerError` naming the
table and layer and leaves the previous state intact, so a re-run finishes the job.

A whole run (:meth:`Runner.run`) is planned before anything is written, with few requests:

1. :meth:`Runner.bootstrap` lists the datasets' tables, verifies that what the batch logs refer
   to exists with the expected schema (:meth:`Runner.verify_state`; a damaged table is refused,
   never recreated empty), and creates only what is missing;
2. :meth:`Runner.table_states` reads, for every table at once, the archived file hashes, the
   two high-water marks (what the archive holds, what the DWH has applied) and the spec version
   last applied;
3. per table (:meth:`Runner.run_table`): when the spec changed, :meth:`Runner.evolve` applies
   the change to the stored schemas or refuses it (see :mod:`pipeline_sql.evolution`); then
   stage and archive each pending file, then delta,
   transform, dwh and checks, unless the table is up to date (no pending file, the DWH applied
   everything archived), in which case nothing runs for it: those layers would change nothing.

A table's failure never stops the others: every table runs, then :class:`RunFailed` lists
every table that failed and every file refused in the run.
"""

from __future__ import annotations

import hashlib
import json
import time
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Callable, Iterable

from .naming import DATASETS, LAYERS, Naming
from .checks import render_check_results, render_check_statements, run_id as checks_run_id
from .render import (
    RenderedTable,
    render_add_column,
    render_archived_hashes,
    render_batches_count,
    render_staging_add_columns,
    render_cast_failures,
    render_columns_probe,
    render_drop_column,
    render_record_spec,
    render_recorded_spec,
    render_rename_column,
    render_staging_rows,
    render_table,
    render_table_states,
    render_truncate_staging,
    render_truncate_staging_batch,
)
from .evolution import FULL_REFRESH, blocking, renamed_columns, shape_json, spec_changes, spec_shape, spec_version, typed_drops
from .schema import pipeline_tables, shared_tables
from .landed import (
    REFUSED_TABLE,
    FileRefused,
    check_landed_file,
    landed_files,
    load_columns,
    refused_files_table,
    render_quarantine,
    render_refused_files,
    unknown_files,
)
from .spec import TableSpec

__all__ = ["FileQuarantined", "FileRefused", "LayerError", "LayerResult", "RunFailed", "Runner", "StateError", "landed_files", "unknown_files"]


class LayerError(RuntimeError):
    def __init__(self, table: str, layer: str, message: str):
        self.table, self.layer = table, layer
        #: the checks layer's LayerResult (its results are written before it fails)
        self.result: "LayerResult | None" = None
        super().__init__(f"{table}: {layer} layer failed: {message}")


class StateError(LayerError):
    """The engine's state does not hold what its batch log says (a table missing or of
    another schema): the run refuses to touch the table rather than recreate it empty."""

    def __init__(self, table: str, message: str):
        super().__init__(table, "state", message)


class FileQuarantined(LayerError):
    """A landed file refused by :func:`~pipeline_sql.landed.check_landed_file` and recorded in
    ``quality.refused_files``: nothing of it was loaded; the table's next file is loaded next."""

    def __init__(self, table: str, refusal: FileRefused):
        self.refusal = refusal
        super().__init__(table, "staging", f"refused {refusal} (quarantined in quality.{REFUSED_TABLE}; fix the file and land it again)")


class RunFailed(RuntimeError):
    """A run in which some tables failed or some landed files were refused. The other tables
    ran to the end; ``failures`` holds every table's :class:`LayerError`, ``refused`` every
    file refused (and quarantined) in this run."""

    def __init__(self, failures: list[LayerError], refused: list[FileRefused]):
        self.failures, self.refused = failures, refused
        parts = [f"{len(failures)} table{'s' if len(failures) != 1 else ''} failed"] if failures else []
        if refused:
            parts.append(f"{len(refused)} landed file{'s' if len(refused) != 1 else ''} refused (quarantined)")
        lines = [f"  {e}" for e in failures] + [f"  refused {r}" for r in refused]
        super().__init__(f"run finished with errors: {', '.join(parts)}:\n" + "\n".join(lines))


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
        if self.layer == FULL_REFRESH_LAYER:
            return f"{self.rows_in} rows rebuilt from the archive, {d.get('rejected', 0)} versions failing their casts, {self.rows_out} rows in DWH"
        if self.layer == UP_TO_DATE:
            return "up to date: no new landed file, the DWH holds everything archived (nothing to run)"
        return ""


#: The pseudo-layer a run reports for a table it skipped because nothing was new.
UP_TO_DATE = "-"
#: The pseudo-layer of a full refresh (transform and DWH rebuilt from the archive).
FULL_REFRESH_LAYER = "refresh"
#: The client's legacy type names -> the declared (standard SQL) ones.
_TYPE_NAMES = {"INTEGER": "INT64", "FLOAT": "FLOAT64", "BOOLEAN": "BOOL"}


@dataclass(frozen=True)
class TableState:
    """What a table's persistent state says before a run (one row of :meth:`Runner.table_states`)."""

    archived: frozenset  # content SHA-256 of every archived landed file
    archived_through: datetime | None  # the newest _ingested_at in the archive
    applied_through: datetime | None  # the newest _through in the DWH: what it has applied
    spec_version: str | None = None  # the spec version the runner last applied (None: never)

    @property
    def dwh_behind(self) -> bool:
        """True when the archive holds versions after the DWH's mark (delta..dwh have work)."""
        if self.archived_through is None:
            return False
        return self.applied_through is None or self.applied_through < self.archived_through


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
        #: table -> the columns of the last file loaded into its staging table (None: unknown)
        self._staging_shape: dict[str, tuple | None] = {}
        #: table id -> version of the spec :meth:`bootstrap` created that table from, in this process
        self._created: dict[str, str] = {}
        #: table -> {content SHA-256: (file, reason)} of quarantined files (read once per run)
        self._quarantine: dict[str, dict[str, tuple[str, str]]] | None = None
        #: the files refused in this run (:meth:`run` resets it)
        self.refused: list[FileRefused] = []
        #: warning lines of this run (unknown files, quarantined files skipped); the CLI's
        #: summary repeats them
        self.warnings: list[str] = []

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
            # with a page size, the request that waits for the job also brings its first rows
            # (without one the client asks for the job's results twice: status, then rows)
            return list(job.result(page_size=_PAGE_ROWS))
        except Exception as e:  # the client raises many types; keep the message
            raise LayerError(table or "-", layer or "-", _clean(e)) from e

    def scalar_row(self, sql: str, table: str, layer: str) -> dict:
        rows = self.query(sql, table=table, layer=layer)
        return dict(rows[0].items()) if rows else {}

    def bootstrap(
        self, specs: Iterable[TableSpec], rebuilt: bool = True, damaged: dict | None = None, replace_views: bool = True
    ) -> None:
        """Create every dataset, table and view the layers need that does not exist yet, so that
        layers can run in any order from the start (idempotent). One listing request per dataset;
        creations go through the tables API (the same :func:`~pipeline_sql.schema.pipeline_tables`
        declarations the Pulumi component deploys), a view is replaced when its SQL changed.
        ``rebuilt=False`` skips the tables a layer rebuilds itself (staging, delta, transform):
        only a layer run out of order reads one before its first run, a whole run never does.

        Before creating anything it verifies the state (:meth:`verify_state`): a table whose
        archive its batch log refers to is missing, or whose tables have another schema, is
        never recreated empty: :class:`StateError` (recorded in ``damaged``, when given, and
        that table left alone; else raised).
        ``replace_views=False`` leaves existing views alone (a whole run replaces a changed
        table's view in :meth:`evolve`, after the columns it reads exist)."""
        from google.api_core import retry as api_retry
        from google.api_core.exceptions import Conflict

        retry = api_retry.Retry(deadline=30)
        specs = list(specs)
        try:
            datasets = {d.dataset_id for d in self.client.list_datasets(self.naming.project, retry=retry)}
            existing: dict[str, set[str]] = {}
            for layer in DATASETS:
                name = self.naming.dataset(layer)
                dataset = f"{self.naming.project}.{name}"
                if name not in datasets:
                    self.client.create_dataset(_dataset(dataset, self.naming.location), exists_ok=True, retry=retry)
                existing[layer] = {t.table_id for t in self.client.list_tables(dataset, retry=retry)}
            bad = self.verify_state(specs, existing)
            if bad and damaged is None:
                raise next(iter(bad.values()))
            if damaged is not None:
                damaged.update(bad)
            # each wanted table with the version of the spec it is declared from ("": shared)
            wanted = [
                (td, version)
                for spec, version in ((s, spec_version(s)) for s in specs if s.table not in bad)
                for td in pipeline_tables(spec, self.naming)
                if rebuilt or not (td.rebuilt_by_sql and td.name == spec.table)
            ]
            local = [refused_files_table(self.naming)] if self.local else []
            for td, version in [(td, "") for td in shared_tables(self.naming) + local] + wanted:
                table = _table(td)
                if td.name not in existing[td.layer]:
                    try:
                        self.client.create_table(table, retry=retry)
                        self._created[td.table_id] = version
                    except Conflict:  # created meanwhile: compare it like an existing one
                        existing[td.layer].add(td.name)
                if td.view_query is not None and td.name in existing[td.layer] and replace_views:
                    self._replace_view_if_changed(td, retry)
        except LayerError:
            raise
        except Exception as e:  # the client raises many types; keep the message
            raise LayerError("(all)", "bootstrap", _clean(e)) from e

    def verify_state(self, specs: list[TableSpec], existing: dict[str, set[str]]) -> dict[str, StateError]:
        """Tables whose persistent state does not hold what its batch log says: the archive
        missing while ``archive.<t>__batches`` lists loaded files; an archive, batch log or DWH
        table without the columns the pipeline reads (:data:`_STATE_COLUMNS`, the key); an
        archive column of another type (the archive holds source strings and bookkeeping; the
        DWH's types may change with the spec, a full refresh rebuilds it); ``archive.<t>__specs``
        is not verified here (see :meth:`_states_isolated`). A spec's new column
        missing from a table is no refusal (the spec evolution adds it). The schemas are read
        through the tables API (one ``tables.get`` per stored table, a few ms each on the
        embedded engine, where an ``INFORMATION_SCHEMA.COLUMNS`` query costs seconds at 100
        tables). On the embedded engine both read the same catalog, which follows ``CREATE
        [OR REPLACE] TABLE`` but not ``ALTER TABLE`` (measured on bqemulator 1.4.0); on
        BigQuery ``tables.get`` returns the current schema."""
        bad: dict[str, StateError] = {}
        restore = (
            "restore it from a backup of the state folder (locally: `bqemulator restore`, see the README) or with BigQuery time travel / "
            "a table snapshot (deployed); or, to rebuild the table from the landed files, delete the "
            "state folder (locally) when every file is still landed"
        )
        check: list[tuple[TableSpec, object]] = []
        for spec in specs:
            batches, archive = f"{spec.table}__batches", spec.table
            if batches in existing["archive"] and archive not in existing["archive"]:
                n = self.scalar_row(render_batches_count(spec, self.naming), spec.table, "state").get("n", 0)
                if n:
                    bad[spec.table] = StateError(
                        spec.table,
                        f"{self.naming.table_id('archive', spec.table)} is missing, but its batch log "
                        f"{self.naming.table_id('archive', spec.table, '__batches')} lists {n} loaded file(s): "
                        f"it is not recreated empty (their rows would be lost); {restore}",
                    )
                    continue
            for td in pipeline_tables(spec, self.naming):
                # the archive, its batch log and the DWH (a damaged spec log fails its table
                # alone: the plan reads each table's state alone when a chunk's query fails)
                verified = td.name in (spec.table, batches)
                if verified and td.layer in ("archive", "dwh") and td.persistent and td.name in existing[td.layer]:
                    check.append((spec, td))
        for spec, td in check:
            if spec.table in bad:
                continue
            cols = self._stored_columns(spec, td)
            keys = {k.lower() for k in spec.key}
            problems = []
            needed = _STATE_COLUMNS["__batches" if td.name.endswith("__batches") else td.layer]
            for f in td.fields:
                name, want = f["name"], f["type"].upper()
                got = cols.get(name.lower())
                if got is None:
                    if name in needed or (name.lower() in keys and not td.name.endswith("__batches")):
                        problems.append(f"column {name} ({want}) is missing")
                elif td.layer == "archive" and got != want:
                    problems.append(f"column {name} is {got}, expected {want}")
            if problems:
                bad[spec.table] = StateError(
                    spec.table,
                    f"{td.table_id} does not have the schema the pipeline expects: {'; '.join(problems)}; "
                    f"it is not recreated (its rows would be lost); {restore}",
                )
        return bad

    def _stored_columns(self, spec: TableSpec, td) -> dict[str, str]:
        """A stored table's columns as the tables API describes them: lower-case name ->
        standard SQL type name (``ARRAY``/``STRUCT`` for repeated and record fields)."""
        from google.api_core import retry as api_retry
        from google.api_core.exceptions import NotFound

        try:
            table = self.client.get_table(td.table_id, retry=api_retry.Retry(deadline=30))
        except NotFound:
            return {}  # dropped since the listing: every required column is missing
        except Exception as e:  # the client raises many types; keep the message
            raise LayerError(spec.table, "state", f"reading the schema of {td.table_id}: {_clean(e)}") from e
        cols = {}
        for f in table.schema:
            kind = "ARRAY" if f.mode == "REPEATED" else _TYPE_NAMES.get(f.field_type, f.field_type)
            cols[f.name.lower()] = "STRUCT" if kind == "RECORD" else kind
        return cols

    def _replace_view_if_changed(self, td, retry) -> None:
        table = _table(td)
        if self.client.get_table(td.table_id, retry=retry).description != table.description:
            self.client.delete_table(td.table_id, not_found_ok=True, retry=retry)
            self.client.create_table(table, retry=retry)

    def refresh_views(self, specs: Iterable[TableSpec]) -> None:
        """Replace each spec's views whose SQL changed (the part of :meth:`bootstrap` a whole
        run leaves until it knows which specs changed: those get theirs in :meth:`evolve`)."""
        from google.api_core import retry as api_retry

        try:
            for spec in specs:
                for td in pipeline_tables(spec, self.naming):
                    if td.view_query is not None:
                        self._replace_view_if_changed(td, api_retry.Retry(deadline=30))
        except Exception as e:  # the client raises many types; keep the message
            raise LayerError("(all)", "bootstrap", _clean(e)) from e

    def table_states(self, specs: Iterable[TableSpec], chunk: int = 25) -> dict[str, TableState]:
        """Every table's :class:`TableState`, read with one query per ``chunk`` tables."""
        specs = list(specs)
        out: dict[str, TableState] = {}
        for i in range(0, len(specs), chunk):
            part = specs[i : i + chunk]
            sql = render_table_states(part, self.naming)
            table = part[0].table if len(part) == 1 else "(all)"
            for row in self.query(sql, table=table, layer="plan"):
                out[row["table_name"]] = TableState(
                    frozenset(row["archived"] or ()), row["archived_through"], row["applied_through"], row["spec_version"]
                )
        return out

    # ------------------------------------------------------------------ layers

    def archived_hashes(self, spec: TableSpec) -> set[str]:
        rows = self.query(render_archived_hashes(spec, self.naming), table=spec.table, layer="staging")
        return {r[0] for r in rows}

    def _sha(self, path: Path) -> str:
        st = path.stat()
        k = (str(path), st.st_mtime, st.st_size)
        if k not in self._hash_cache:
            self._hash_cache[k] = file_sha256(path)
        return self._hash_cache[k]

    def pending_files(self, spec: TableSpec, archived: Iterable[str] | None = None) -> list[tuple[Path, str]]:
        """Landed files whose content is not archived yet, in name order (one per content);
        ``archived``: the archived content hashes when already known (else they are read)."""
        if self.landing_dir is None:
            return []
        done = set(archived) if archived is not None else self.archived_hashes(spec)
        done |= set(self.quarantined(spec))
        out, seen = [], set()
        for p in landed_files(self.landing_dir, spec):
            h = self._sha(p)
            if h not in done and h not in seen:
                seen.add(h)
                out.append((p, h))
        return out

    # ------------------------------------------------------------------ quarantine

    def quarantined(self, spec: TableSpec) -> dict[str, tuple[str, str]]:
        """The table's quarantined file contents: {SHA-256: (file, reason)} (local runs; the
        whole ``quality.refused_files`` table is read once per runner and kept up to date)."""
        if not self.local:
            return {}
        if self._quarantine is None:
            from google.api_core.exceptions import NotFound

            self._quarantine = {}
            td = refused_files_table(self.naming)
            try:
                rows = self.client.query(render_refused_files(self.naming)).result(page_size=_PAGE_ROWS)
                for r in rows:
                    self._quarantine.setdefault(r["table_name"], {})[r["content_sha256"]] = (r["source_file"], r["reason"])
            except NotFound:
                pass  # not bootstrapped yet: nothing quarantined
            except Exception as e:  # the client raises many types; keep the message
                raise LayerError("(all)", "plan", f"reading {td.table_id}: {_clean(e)}") from e
        return self._quarantine.get(spec.table, {})

    def quarantine(self, spec: TableSpec, path: Path, sha: str, refusal: FileRefused) -> None:
        """Record a refused file (its content hash) in ``quality.refused_files``: later runs
        skip that content; a corrected file (another content) is checked and loaded again."""
        refusal.table = spec.table
        rel = path.relative_to(self.landing_dir).as_posix()
        self.query(
            render_quarantine(self.naming),
            {"table_name": spec.table, "source_file": rel, "content_sha256": sha, "reason": str(refusal)},
            spec.table,
            "staging",
            rows=False,
        )
        self.quarantined(spec)  # loaded
        self._quarantine.setdefault(spec.table, {})[sha] = (rel, str(refusal))
        self.refused.append(refusal)

    def _warn_landing(self, spec: TableSpec) -> None:
        """Warning lines for the table's folder: files of no known extension, and quarantined
        files still lying there (skipped)."""
        if self.landing_dir is None:
            return
        for p in unknown_files(self.landing_dir, spec):
            self._warning(spec, f"{p.relative_to(self.landing_dir).as_posix()}: not a {spec.source.format} file (extension {p.suffix or '(none)'}); not loaded")
        q = self.quarantined(spec)
        if q:
            for p in landed_files(self.landing_dir, spec):
                hit = q.get(self._sha(p))
                if hit:
                    self._warning(spec, f"{p.relative_to(self.landing_dir).as_posix()}: quarantined, skipped (refused: {hit[1]}); fix it and land it again")

    def _warning(self, spec: TableSpec, text: str) -> None:
        line = f"{spec.table:<14} warning   {text}"
        self.warnings.append(line)
        self.progress(line)

    def run_staging(self, spec: TableSpec, file: tuple[Path, str] | None = None) -> LayerResult:
        """Load the next pending file (or ``file``) into staging and describe the batch."""
        t0 = time.perf_counter()
        res = LayerResult(spec.table, "staging")
        if not self.local:
            self.query(self.sql(spec).layers["staging"], {"run_time": datetime.now(timezone.utc)}, spec.table, "staging")
            n = self.scalar_row(render_staging_rows(spec, self.naming), spec.table, "staging")["n"]
            res.rows_in = res.rows_out = n
            res.detail["file"] = self.naming.table_id("staging", spec.table)
        else:
            if file is None:
                pending = self.pending_files(spec)
                file = pending[0] if pending else None
            if file is not None:
                path, sha = file
                res.rows_in = res.rows_out = self._check_and_load(spec, path, sha)
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

    def _check_and_load(self, spec: TableSpec, path: Path, sha: str) -> int:
        """Load one landed file into staging while :func:`check_landed_file` reads it in a
        second thread (the check is Python, the load job runs on the engine's threads: at 1M
        rows the check's ~1.2 s of CPU no longer adds to the load's time). The load needs only
        the file's columns (:func:`load_columns`, its header). A refused file is quarantined
        (:class:`FileQuarantined`) and, when its load job succeeded, staging is emptied again,
        so an archive never reads its rows; a file that passed its check but failed to load
        raises the load's :class:`LayerError`. Returns the rows loaded."""
        from concurrent.futures import ThreadPoolExecutor

        def refuse(refusal: FileRefused):
            self.quarantine(spec, path, sha, refusal)
            return FileQuarantined(spec.table, refusal)

        try:
            columns, missing = load_columns(spec, path)
        except FileRefused as refusal:
            raise refuse(refusal) from None
        loaded, failed = 0, None
        try:
            # forget the previous batch's description first: should the load succeed and the
            # new description fail, the archive must not file the new rows under the old batch
            # (it then names the batch after its run; the file stays pending). Before the check
            # starts: a job waits for the GIL while the check holds it (a 1M-row file's check
            # made this small job take 0.3-0.7 s)
            self.query(render_truncate_staging_batch(spec, self.naming), table=spec.table, layer="staging", rows=False)
        except LayerError as e:
            failed = e
        with ThreadPoolExecutor(max_workers=1, thread_name_prefix="flexyboots-check") as pool:
            checking = pool.submit(check_landed_file, spec, path)
            if failed is None:
                try:
                    loaded = self._load_file(spec, path, columns, missing)
                except LayerError as e:
                    failed = e
            try:
                checking.result()
            except FileRefused as refusal:
                if failed is None:
                    self.query(render_truncate_staging(spec, self.naming), table=spec.table, layer="staging", rows=False)
                raise refuse(refusal) from None
        if failed is not None:
            raise failed
        return loaded

    def _load_file(self, spec: TableSpec, path: Path, columns: tuple[str, ...], missing: tuple[str, ...]) -> int:
        """Load one file into staging (WRITE_TRUNCATE). A CSV loads by its own header
        (``columns``: its columns in its order); the spec's columns it leaves out (``missing``:
        NULL-able ones only, see :func:`~pipeline_sql.landed.check_landed_file`) are added to
        staging as NULL."""
        from google.cloud import bigquery

        fmt = spec.source.format
        cfg = bigquery.LoadJobConfig(
            schema=[bigquery.SchemaField(c, "STRING") for c in columns],
            write_disposition=bigquery.WriteDisposition.WRITE_TRUNCATE,
        )
        if fmt == "csv":
            cfg.source_format = bigquery.SourceFormat.CSV
            cfg.skip_leading_rows = 1
            cfg.field_delimiter = spec.source.delimiter
            cfg.allow_quoted_newlines = True
        elif fmt == "json":
            cfg.source_format = bigquery.SourceFormat.NEWLINE_DELIMITED_JSON
        else:
            cfg.source_format = bigquery.SourceFormat.PARQUET
        table_id = self.naming.table_id("staging", spec.table)
        shape = tuple(f.name for f in cfg.schema)
        try:
            if self._staging_shape.get(spec.table) != shape:
                # the embedded engine loads into an existing table with the table's columns, not
                # the job's: a staging table of another layout (a CSV header in another order, a
                # file without a nullable column) is dropped first
                self.client.delete_table(table_id, not_found_ok=True)
            self._staging_shape[spec.table] = None  # until this load succeeded
            if self.read_in_place:
                uri = f"{self.landing_uri}/{path.relative_to(self.landing_dir).as_posix()}"
                job = self.client.load_table_from_uri(uri, table_id, job_config=cfg)
            else:
                with open(path, "rb") as f:
                    job = self.client.load_table_from_file(f, table_id, job_config=cfg)
            job.result()
        except Exception as e:
            raise LayerError(spec.table, "staging", f"loading {path}: {_clean(e)}") from e
        if not (fmt == "csv" and missing):
            self._staging_shape[spec.table] = shape
        else:
            self.query(
                render_staging_add_columns(spec, self.naming, missing),
                table=spec.table,
                layer="staging",
                rows=False,
            )
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
                "spec_version": spec_version(spec),
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
        failure raises :class:`LayerError` after the results are written and read: the
        script's last statement, the one that fails a scheduled run, runs when the results
        read back hold such a failure, and raises its message (when none failed it would only
        answer so: one job less per table)."""
        t0 = time.perf_counter()
        run_time = run_time or datetime.now(timezone.utc)
        failure: LayerError | None = None
        first, *assertion = render_check_statements(spec, self.naming)  # == self.sql(spec).checks
        try:
            self.query(first, {"run_time": run_time}, spec.table, "checks", rows=False)
        except LayerError as e:
            failure = e
        results = self.check_results(spec, checks_run_id(spec.table, run_time)) if spec.checks else []
        failed = sum(1 for r in results if not r["passed"] and r["severity"] == "error")
        if failure is None and failed:
            try:
                for stmt in assertion:
                    self.query(stmt, {"run_time": run_time}, spec.table, "checks", rows=False)
            except LayerError as e:
                failure = e
        res = LayerResult(spec.table, "checks", seconds=time.perf_counter() - t0)
        res.detail = {
            "run_id": checks_run_id(spec.table, run_time),
            "results": results,
            "passed": sum(1 for r in results if r["passed"]),
            "failed": failed,
            "warned": sum(1 for r in results if not r["passed"] and r["severity"] == "warn"),
        }
        if failure is not None:
            failure.result = res
            raise failure
        return res

    def check_results(self, spec: TableSpec, run_id: str | None = None, history: int = 1) -> list[dict]:
        """Rows of ``quality.check_results`` for a table: one run's (``run_id``; its latest
        try), or the last ``history`` runs', newest first, checks in spec order."""
        if run_id is not None:
            sql, params = render_check_results(self.naming, "run"), {"table": spec.table, "run_id": run_id}
        else:
            sql, params = render_check_results(self.naming, "history"), {"table": spec.table, "history": history}
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

    # ------------------------------------------------------------------ spec evolution

    def columns(self, spec: TableSpec, layer: str, suffix: str = "") -> dict[str, str]:
        """A table's current columns (name -> BigQuery type), from a query's result schema."""
        try:
            result = self.client.query(render_columns_probe(spec, self.naming, layer, suffix)).result()
        except Exception as e:  # the client raises many types; keep the message
            raise LayerError(spec.table, "spec", _clean(e)) from e
        return {f.name: _TYPE_NAMES.get(f.field_type, f.field_type) for f in result.schema}

    def evolve(self, spec: TableSpec, state: TableState | None = None, full_refresh: bool = False) -> list:
        """Bring a table's stored schemas to its spec before it runs. Nothing happens when the
        spec version is the one last applied. Otherwise the change is classified
        (:func:`~pipeline_sql.evolution.spec_changes`, against the shape recorded in
        ``archive.<t>__specs``): a change this run cannot apply raises :class:`LayerError`
        (layer ``spec``) naming it and the way forward, before anything is written; the others
        are applied (a nullable column added to archive and DWH, a DWH column renamed or dropped;
        with ``full_refresh`` a DWH whose column types or partitioning changed is recreated, for
        the full refresh to fill) and the new version is recorded (after the refresh, for a
        change that needs one). A table whose stored tables :meth:`bootstrap` has just created
        from this spec only gets its version recorded. Returns the changes."""
        version = spec_version(spec)
        if state is None:
            state = self.table_states([spec])[spec.table]
        if state.spec_version == version:
            return []
        stored = [td for td in pipeline_tables(spec, self.naming) if td.persistent]
        if state.spec_version is None and all(self._created.get(td.table_id) == version for td in stored):
            # a new table: bootstrap just created every stored table from this spec, nothing to
            # bring up to date (and nothing to probe): record the version only
            self.record_spec(spec, full_refresh=False)
            return []
        try:
            rows = self.query(render_recorded_spec(spec, self.naming), table=spec.table, layer="spec")
            old = json.loads(rows[0]["spec"]) if rows else None
        except ValueError as e:
            raise LayerError(spec.table, "spec", f"archive.{spec.table}__specs holds a damaged spec record: {e}") from e
        shape = spec_shape(spec)
        failures = {
            a: self.query(render_cast_failures(spec, self.naming, a, t), table=spec.table, layer="spec")[0]["failing"]
            for a, t in (typed_drops(old, shape) if old is not None else [])
        }
        changes = spec_changes(old, shape, spec.table, failures) if old is not None else []
        blocked = blocking(changes, full_refresh)
        if blocked:
            raise LayerError(
                spec.table,
                "spec",
                f"the spec ({spec.file or spec.table}, version {version}) changed since version {state.spec_version} "
                f"in a way this run cannot apply: " + "; ".join(c.describe() for c in blocked),
            )
        self._sync_schemas(spec, old, shape, rebuild=full_refresh)
        self.bootstrap([spec], rebuilt=False)  # a view over the new columns (and any new table)
        if not any(c.action == FULL_REFRESH for c in changes):
            self.record_spec(spec, full_refresh=False)
        return changes

    def record_spec(self, spec: TableSpec, full_refresh: bool) -> None:
        self.query(
            render_record_spec(spec, self.naming),
            {"spec_version": spec_version(spec), "spec": shape_json(spec_shape(spec)), "full_refresh": full_refresh},
            spec.table,
            "spec",
            rows=False,
        )

    def _sync_schemas(self, spec: TableSpec, old: dict | None, new: dict, rebuild: bool) -> None:
        """Add the declared columns a persistent table lacks; in the DWH, rename, drop, or (with
        ``rebuild``) recreate the table when a column's type or the partitioning changed."""
        for td in pipeline_tables(spec, self.naming):
            if not td.persistent:
                continue
            suffix = td.name[len(spec.table):]
            have = self.columns(spec, td.layer, suffix)
            declared = {f["name"]: f["type"] for f in td.fields}
            if td.layer == "dwh":
                retyped = [n for n, t in declared.items() if n in have and have[n] != t]
                repartitioned = old is not None and old.get("partition_by") != new.get("partition_by")
                if retyped or repartitioned:
                    if not rebuild:
                        raise LayerError(
                            spec.table, "spec",
                            f"the DWH's column(s) {', '.join(retyped) or '(partitioning)'} differ from the spec: run "
                            f"`python -m pipeline_sql run --full-refresh --tables {spec.table}`",
                        )
                    self.client.delete_table(td.table_id, not_found_ok=True)
                    self.client.create_table(_table(td))
                    continue
                for a, b in renamed_columns(old, new) if old is not None else []:
                    if a in have and b not in have:
                        self.query(render_rename_column(td.table_id, a, b), table=spec.table, layer="spec", rows=False)
                        have[b] = have.pop(a)
                for n in [n for n in have if n not in declared]:
                    self.query(render_drop_column(td.table_id, n), table=spec.table, layer="spec", rows=False)
            for n, t in declared.items():
                if n not in have:
                    self.query(render_add_column(td.table_id, n, t), table=spec.table, layer="spec", rows=False)

    def run_full_refresh(self, spec: TableSpec) -> LayerResult:
        """Rebuild transform and DWH from the whole archive with the current spec, then record
        the spec version (see :func:`~pipeline_sql.render.render_full_refresh`)."""
        t0 = time.perf_counter()
        rows = self.query(self.sql(spec).full_refresh, table=spec.table, layer=FULL_REFRESH_LAYER)
        row = dict(rows[0].items()) if rows else {}
        self.record_spec(spec, full_refresh=True)
        res = LayerResult(spec.table, FULL_REFRESH_LAYER, rows_in=row.get("rows_in") or 0, rows_out=row.get("dwh_rows") or 0)
        res.detail = {"rejected": row.get("rejected") or 0}
        res.seconds = time.perf_counter() - t0
        return res

    # ------------------------------------------------------------------ whole runs

    def run_table(
        self, spec: TableSpec, state: TableState | None = None, results: list[LayerResult] | None = None, full_refresh: bool = False
    ) -> list[LayerResult]:
        """Stage and archive every pending batch, then delta, transform, dwh and checks once.
        Locally a table that is up to date (no pending file, and the DWH has applied everything
        archived) runs no layer, only its checks when one of them can change without new rows
        (``freshness``, ``relationships``: :attr:`CheckRule.judged_when_idle`): ``state`` is its
        :class:`TableState` when the caller read it already (:meth:`run` reads all tables' at
        once). A refused landed file is quarantined (:meth:`quarantine`) and the next one
        loaded. Results are appended to ``results`` as the layers run, so a caller keeps them
        when a later layer fails. First the table's stored schemas are brought to its spec
        (:meth:`evolve`). ``full_refresh``: after archiving the pending files, transform and DWH
        are rebuilt from the whole archive (:meth:`run_full_refresh`) instead of delta,
        transform and dwh."""
        results = results if results is not None else []

        def step(res: LayerResult) -> LayerResult:
            self.progress(f"{spec.table:<14} {res.layer:<9} {res.describe():<78} {res.seconds:7.2f}s")
            results.append(res)
            return res

        if self.local:
            t0 = time.perf_counter()
            if state is None:
                state = self.table_states([spec])[spec.table]
            self._warn_landing(spec)
            changes = self.evolve(spec, state, full_refresh)
            if changes:
                self.progress(f"{spec.table:<14} spec      " + "; ".join(c.describe() for c in changes))
            pending = self.pending_files(spec, state.archived)
            if not pending and not state.dwh_behind and not full_refresh:
                step(LayerResult(spec.table, UP_TO_DATE, seconds=time.perf_counter() - t0))
                return self._idle_checks(spec, step, results)
            if not pending and not full_refresh:
                step(LayerResult(spec.table, "staging"))
            loaded = 0
            for f in pending:
                try:
                    staged = self.run_staging(spec, f)
                except FileQuarantined as e:
                    self._warning(spec, f"{e.refusal}: refused, quarantined in quality.{REFUSED_TABLE}; the next file is loaded")
                    continue
                step(staged)
                step(self.run_archive(spec))
                loaded += 1
            if not full_refresh and not loaded and not state.dwh_behind:
                # every new file was refused: nothing changed
                return self._idle_checks(spec, step, results)
        else:
            step(self.run_staging(spec))
            step(self.run_archive(spec))
        if full_refresh:
            step(self.run_full_refresh(spec))  # in place of delta, transform and dwh
        for layer in ("checks",) if full_refresh else ("delta", "transform", "dwh", "checks"):
            self._step_layer(spec, layer, step)
        return results

    def _step_layer(self, spec: TableSpec, layer: str, step: Callable) -> None:
        try:
            step(self.run_layer(spec, layer))
        except LayerError as e:
            if e.result is not None:  # failed checks: their results were written
                step(e.result)
            raise

    def _idle_checks(self, spec: TableSpec, step: Callable, results: list[LayerResult]) -> list[LayerResult]:
        """A table with nothing new runs only the checks that can change without new rows."""
        if any(ch.rule.judged_when_idle for ch in spec.checks):
            # freshness ages and a referenced table may have changed: judge them again
            self._step_layer(spec, "checks", step)
        return results

    def run(self, specs: list[TableSpec], results: list[LayerResult] | None = None, full_refresh: bool = False) -> list[LayerResult]:
        """Bootstrap what is missing, read every table's state at once, run each table. A
        failure in one table never stops the others: every table runs, then :class:`RunFailed`
        lists every table that failed and every landed file refused in this run. The results
        are appended to ``results`` (when given) as they come."""
        self.refused, self.warnings = [], []
        failures: dict[str, LayerError] = {}
        self.bootstrap(specs, rebuilt=False, damaged=failures, replace_views=False)
        todo = [s for s in specs if s.table not in failures]
        states = self._states_isolated(todo, failures) if self.local else {}
        # the views of unchanged specs now; a changed spec's in evolve(), after its new columns
        self.refresh_views([s for s in todo if s.table not in failures and (not self.local or states[s.table].spec_version == spec_version(s))])
        out = results if results is not None else []
        for spec in todo:
            if spec.table in failures:
                continue
            try:
                self.run_table(spec, states.get(spec.table), out, full_refresh=full_refresh)
            except LayerError as e:
                failures[spec.table] = e
            except Exception as e:  # a bug or an unexpected client error: still isolated
                failures[spec.table] = LayerError(spec.table, "run", f"{type(e).__name__}: {_clean(e)}")
            if spec.table in failures:
                self.progress(f"{spec.table:<14} FAILED    {failures[spec.table]}")
        if failures or self.refused:
            raise RunFailed([failures[s.table] for s in specs if s.table in failures], list(self.refused))
        return out

    def _states_isolated(self, specs: list[TableSpec], failures: dict[str, LayerError]) -> dict[str, TableState]:
        """:meth:`table_states`; when a chunk's query fails, each of its tables is read alone
        so that one table's failure stays its own (recorded in ``failures``)."""
        try:
            return self.table_states(specs)
        except LayerError:
            pass
        out: dict[str, TableState] = {}
        for spec in specs:
            try:
                out.update(self.table_states([spec]))
            except LayerError as e:
                failures[spec.table] = e
        return out


#: Columns :meth:`Runner.verify_state` requires (besides the key) in the archive, its batch log
#: and the DWH: what the layers and the run's plan read.
_STATE_COLUMNS = {
    "archive": ("_row_hash", "_ingested_at", "_batch_id"),
    "__batches": ("batch_id", "content_sha256"),
    "dwh": ("_row_hash",),
}


#: Rows per results page a query reads (its first page comes with the job's completion).
_PAGE_ROWS = 10_000


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


def _dataset(dataset_id: str, location: str):
    from google.cloud import bigquery

    ds = bigquery.Dataset(dataset_id)
    ds.location = location
    return ds


def _field(f: dict):
    from google.cloud import bigquery

    kw = {"precision": 38, "scale": 9} if f["type"] == "NUMERIC" else {}
    sub = tuple(_field(x) for x in f.get("fields", ()))
    return bigquery.SchemaField(f["name"], f["type"], mode=f.get("mode", "NULLABLE"), description=f.get("description"), fields=sub, **kw)


def _table(td):
    """A :class:`~pipeline_sql.schema.TableDef` as a ``bigquery.Table`` to create. A view's
    description carries a digest of its SQL, so a changed spec replaces the view."""
    from google.cloud import bigquery

    t = bigquery.Table(td.table_id)
    t.description = td.description or None
    if td.view_query is not None:
        t.view_query = td.view_query
        t.description = f"{td.description} [sql {hashlib.sha256(td.view_query.encode()).hexdigest()[:16]}]"
        return t
    t.schema = [_field(f) for f in td.fields]
    if td.partition:
        t.time_partitioning = bigquery.TimePartitioning(type_=td.partition["type"], field=td.partition["field"])
    if td.clustering:
        t.clustering_fields = list(td.clustering)
    return t


def _clean(e: Exception) -> str:
    msg = getattr(e, "message", None) or str(e)
    msg = msg.split("\n\nLocation:")[0].split("\n\nJob ID:")[0]
    msg = msg.replace("Query execution failed: ", "")
    return msg.strip()
