"""The embedded BigQuery engine: bqemulator (BigQuery's REST API on DuckDB), started on loopback
inside this process, reached through the official ``google-cloud-bigquery`` client so the
runner's code path is the one used against real BigQuery.

``python -m pipeline_sql.engine --install-extensions`` prepares it offline once (``make`` does):
DuckDB's spatial extension is installed from the ``duckdb-extension-spatial`` package's file, so
nothing is downloaded at run time.
"""

from __future__ import annotations

import argparse
import contextlib
import glob
import logging
import os
import sys
from dataclasses import dataclass
from pathlib import Path

from .naming import LOCAL_PROJECT


class EngineError(RuntimeError):
    pass


#: The database file the engine keeps in its state folder (bqemulator's persistent mode).
STATE_DB = "bqemulator.duckdb"
#: What a state folder may hold besides the database (its write-ahead log, the demo's folder).
_STATE_EXTRAS = ("bqemulator.duckdb.wal", "demo")
#: How to restore a state folder (bqemulator's own commands; ``bqemulator backup`` makes one).
RESTORE_HINT = (
    "restore it from a backup (`.venv/bin/bqemulator restore --data-dir {d} --from BACKUP --force`; "
    "backups are made with `.venv/bin/bqemulator backup --data-dir {d} --to BACKUP`), or move the "
    "folder away to start a new state (the next run loads every landed file again)"
)


def check_state_dir(state_dir: Path) -> None:
    """Refuse a state folder that is not one: an existing path that is not a folder, or a
    non-empty folder without the engine's database (someone else's folder: the engine would
    write its database into it)."""
    d = Path(state_dir)
    if not d.exists():
        return
    if not d.is_dir():
        raise EngineError(f"state folder {d} is not a folder; expected a flexyboots state folder (pass --state DIR)")
    if (d / STATE_DB).exists():
        if not (d / STATE_DB).is_file():
            raise EngineError(f"state folder {d} is damaged: {STATE_DB} is not a file; " + RESTORE_HINT.format(d=d))
        return
    foreign = sorted(p.name for p in d.iterdir() if p.name not in _STATE_EXTRAS and not p.name.startswith("."))
    if foreign:
        shown = ", ".join(foreign[:5]) + (f" and {len(foreign) - 5} more" if len(foreign) > 5 else "")
        raise EngineError(
            f"{d} is not a flexyboots state folder: it has no {STATE_DB} and holds {shown}; "
            "pass --state with a new or empty folder (or the folder of an earlier run)"
        )


def spatial_extension_file() -> str:
    try:
        import duckdb_extension_spatial
    except ImportError as e:  # pragma: no cover - guarded by requirements.txt
        raise EngineError("duckdb-extension-spatial is not installed; run `make setup`") from e
    root = Path(duckdb_extension_spatial.__file__).parent
    files = sorted(glob.glob(str(root / "extensions" / "*" / "spatial.duckdb_extension")))
    if not files:
        raise EngineError(f"no spatial.duckdb_extension under {root}; reinstall duckdb-extension-spatial")
    return files[-1]


def install_extensions() -> str:
    """Install DuckDB's spatial extension from its package file (offline). Idempotent."""
    import duckdb

    path = spatial_extension_file()
    con = duckdb.connect()
    try:
        con.execute(f"INSTALL '{path}'")
        con.execute("LOAD spatial")
    finally:
        con.close()
    return path


def _quiet_logs() -> None:
    """bqemulator logs every request through structlog at debug level; keep the CLI readable."""
    with contextlib.suppress(Exception):
        import structlog

        structlog.configure(wrapper_class=structlog.make_filtering_bound_logger(logging.ERROR))
    for name in ("bqemulator", "uvicorn", "uvicorn.error", "uvicorn.access", "sqlglot", "grpc"):
        logging.getLogger(name).setLevel(logging.ERROR)


@dataclass
class LocalEngine:
    """A running embedded engine. Use as a context manager; ``client`` is a BigQuery client."""

    state_dir: Path | None
    gcs_root: Path | None
    project: str = LOCAL_PROJECT

    def __post_init__(self) -> None:
        self._emu = None
        self.client = None

    def start(self) -> "LocalEngine":
        _quiet_logs()
        os.environ.setdefault("BQEMU_LOG_LEVEL", "error")
        from bqemulator.config import PersistenceMode, Settings
        from bqemulator.testing._thread_runner import ThreadedEmulator
        from google.api_core.client_options import ClientOptions
        from google.auth.credentials import AnonymousCredentials
        from google.cloud import bigquery

        kwargs = dict(
            rest_host="127.0.0.1",
            rest_port=0,
            grpc_host="127.0.0.1",
            grpc_port=0,
            default_project_id=self.project,
            enable_format_extensions=False,  # avro would be downloaded; not needed
            metrics_enabled=False,
            log_level="error",
            # time travel keeps a full copy per write; nothing here reads it back
            time_travel_retention_days=0,
            query_cache_ttl_seconds=0,
        )
        if self.gcs_root is not None:
            kwargs["gcs_local_root"] = Path(self.gcs_root).resolve()
        if self.state_dir is not None:
            check_state_dir(Path(self.state_dir))
            Path(self.state_dir).mkdir(parents=True, exist_ok=True)
            kwargs.update(persistence_mode=PersistenceMode.PERSISTENT, data_dir=Path(self.state_dir).resolve())
        else:
            kwargs.update(persistence_mode=PersistenceMode.EPHEMERAL)
        try:
            self._emu = ThreadedEmulator(Settings(**kwargs))
            self._emu.start()
        except Exception as e:
            msg = str(e)
            if "spatial" in msg.lower() or "extension" in msg.lower():
                msg += " (run `make setup` once: it installs DuckDB's spatial extension offline)"
            elif "lock" in msg.lower() and self.state_dir is not None:
                msg += f" (is another flexyboots run using {self.state_dir}?)"
            elif self.state_dir is not None and (Path(self.state_dir) / STATE_DB).exists():
                raise EngineError(
                    f"state folder {self.state_dir} is damaged: the engine cannot open {STATE_DB} ({msg}); "
                    + RESTORE_HINT.format(d=self.state_dir)
                ) from e
            raise EngineError(f"the embedded engine did not start: {msg}") from e
        _quiet_logs()
        self._tune()
        self.client = bigquery.Client(
            project=self.project,
            credentials=AnonymousCredentials(),
            client_options=ClientOptions(api_endpoint=self._emu.server.rest_url),
        )
        return self

    def _tune(self) -> None:
        """Costs the emulator has no setting for, removed (measured; see the README's
        performance section). None changes what a query returns or what is durable:

        * the time-travel snapshot it takes after every load job and DML statement, a full
          copy of the table (a 1M-row staging load: ~2 s of CPU on disk), which nothing can
          read with ``time_travel_retention_days=0``: only the change event stays;
        * the job record it writes to the database for every job: one commit, so one fsync,
          per job in persistent mode (jobs stay in its in-memory catalog for this process);
        * parsing the same SQL text again: the emulator parses each statement ~8 times with
          sqlglot (parse, translate, and one parse per catalog-sync check), which is most of a
          small statement's cost; parses are memoized and each caller gets its own copy;
        * copying a statement's tree for each DDL/DML detector the emulator runs on every
          statement (CREATE TABLE/VIEW/SCHEMA, DROP, DML on an immutable table) when its kind
          already gives the detector's answer (:func:`_skip_detector_parses`);
        * translating the same statement again (a table's staging and archive statements run
          once per landed file): the BigQuery -> DuckDB translation is a pure function of the
          statement's text, the referenced tables' column types and the caller, and is
          memoized on all three;
        * compressing the tables of the layers rebuilt every run (staging, delta, transform),
          written once and read once: on disk they are stored uncompressed; and analyzing
          dictionaries for the archive's mostly unique values: it is compressed without them
          (:mod:`pipeline_sql.enginestore`).

        Written against bqemulator 1.4.0 (pinned); ``tests/sql/test_engine.py`` fails if an
        upgrade moves what these rely on."""
        server = self._emu.server
        snapshots = server._context.snapshots
        if server._settings.time_travel_retention_days == 0:
            # With no time travel, the emulator's AUTO snapshot after every load job and DML
            # statement (a full copy of the table) can never be read: keep only the change event.
            from bqemulator.domain.events import TableDataChanged

            events = snapshots._events

            def record_change(project_id: str, dataset_id: str, table_id: str):
                events.publish(TableDataChanged(project_id, dataset_id, table_id))
                return None

            snapshots.record_change = record_change
        if hasattr(server._catalog, "_write_job"):
            # job records stay in the catalog's in-memory cache for this process; writing each
            # one to the database costs a commit (an fsync) per job and they are never read again
            server._catalog._write_job = lambda job: None
        _cache_sqlglot_parses()
        _skip_detector_parses()
        _cache_translations()
        if self.state_dir is not None:
            from .enginestore import store_layers

            store_layers(server._engine)

    def checkpoint(self) -> None:
        """Write what the database's write-ahead log holds into the database file (DuckDB
        ``CHECKPOINT``; a committed statement is durable before it, in the log)."""
        self._emu.server._engine.connection.execute("CHECKPOINT")

    def stop(self) -> None:
        if self.client is not None:
            with contextlib.suppress(Exception):
                self.client.close()
        if self._emu is not None:
            self._emu.stop()
            self._emu = None

    def __enter__(self) -> "LocalEngine":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()


def _cache_sqlglot_parses(maxsize: int = 512) -> None:
    """Memoize ``sqlglot`` dialect parses by (dialect, text, options); every call returns
    fresh copies of the trees (callers rewrite them in place)."""
    import functools

    from sqlglot.dialects.dialect import Dialect

    if getattr(Dialect.parse, "_flexyboots_cached", False):
        return
    parse = Dialect.parse

    @functools.lru_cache(maxsize=maxsize)
    def cached(dialect, sql, opts):
        return parse(dialect, sql, **dict(opts))

    global _SHARED_PARSE
    _SHARED_PARSE = cached

    def parse_cached(self, sql, **opts):
        try:
            key = tuple(sorted(opts.items()))
            hash(key)
        except TypeError:
            return parse(self, sql, **opts)
        return [e.copy() if e is not None else None for e in cached(self, sql, key)]

    parse_cached._flexyboots_cached = True
    Dialect.parse = parse_cached


#: The memoized parse (dialect, sql, options) -> shared trees: only :func:`_peek` reads it.
_SHARED_PARSE = None


def _peek(sql: str):
    """The statement's memoized tree, shared with the memo (inspect it, never change it), or
    None when it is not exactly one parseable statement."""
    from sqlglot.dialects.dialect import Dialect

    try:
        trees = _SHARED_PARSE(Dialect.get_or_raise("bigquery"), sql, ())
    except Exception:  # unparseable: the caller's own parse decides
        return None
    return trees[0] if len(trees) == 1 else None


def _skip_detector_parses() -> None:
    """Answer bqemulator's per-statement DDL/DML detectors without a private copy of the tree
    when the statement's kind already gives their answer (a CREATE-TABLE detector asked about
    an INSERT returns None): each detector starts with that same ``isinstance`` test on its own
    copy of the parse, a copy of the whole tree per detector and statement. Any other
    statement goes to the detector as before."""
    import functools

    from bqemulator.catalog import ddl_sync
    from bqemulator.jobs import executor
    from sqlglot import exp

    if getattr(ddl_sync._detect_plain_create_table, "_flexyboots_peek", False):
        return

    def short_circuit(module, name, kind, answer, is_async=False):
        original = getattr(module, name)
        sql_at = 1 if name in ("_reject_dml_on_immutable", "_capture_dml_snapshots") else 0

        def settled(args, kwargs):
            sql = args[sql_at] if len(args) > sql_at else kwargs.get("bq_sql")
            tree = _peek(sql) if isinstance(sql, str) else None
            return tree is not None and not kind(tree)

        if is_async:
            @functools.wraps(original)
            async def wrapper(*args, **kwargs):
                if settled(args, kwargs):
                    return answer
                return await original(*args, **kwargs)
        else:
            @functools.wraps(original)
            def wrapper(*args, **kwargs):
                if settled(args, kwargs):
                    return answer
                return original(*args, **kwargs)

        wrapper._flexyboots_peek = True
        setattr(module, name, wrapper)

    def is_create(tree):
        return isinstance(tree, exp.Create)

    short_circuit(ddl_sync, "_detect_catalog_drop", lambda t: isinstance(t, exp.Drop), None)
    short_circuit(ddl_sync, "_detect_create_schema", is_create, None)
    short_circuit(ddl_sync, "_detect_plain_create_view", is_create, (None, None))
    short_circuit(ddl_sync, "_detect_plain_create_table", is_create, None)
    short_circuit(executor, "_reject_dml_on_immutable", executor._is_dml, None)
    short_circuit(executor, "_capture_dml_snapshots", executor._is_dml, None, is_async=True)


def _cache_translations(maxsize: int = 1024) -> None:
    """Memoize bqemulator's ``SQLTranslator.translate`` (text -> text, no catalog access: its
    inputs are the statement, the column types of the tables it reads and the caller) on those
    three; only successful translations are kept (a string, shared safely)."""
    import json
    from collections import OrderedDict

    from bqemulator.domain.result import Ok
    from bqemulator.sql.translator import SQLTranslator

    if getattr(SQLTranslator.translate, "_flexyboots_cached", False):
        return
    translate = SQLTranslator.translate
    done: OrderedDict = OrderedDict()

    def translate_cached(self, bq_sql, *, schema=None, caller=None, **kwargs):
        if kwargs:
            return translate(self, bq_sql, schema=schema, caller=caller, **kwargs)
        try:
            key = (id(self), bq_sql, json.dumps(schema, sort_keys=True), repr(caller))
        except (TypeError, ValueError):
            return translate(self, bq_sql, schema=schema, caller=caller)
        hit = done.get(key)
        if hit is not None:
            done.move_to_end(key)
            return hit
        result = translate(self, bq_sql, schema=schema, caller=caller)
        if isinstance(result, Ok):
            done[key] = result
            if len(done) > maxsize:
                done.popitem(last=False)
        return result

    translate_cached._flexyboots_cached = True
    SQLTranslator.translate = translate_cached


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m pipeline_sql.engine", description=__doc__.splitlines()[0])
    p.add_argument("--install-extensions", action="store_true", help="install DuckDB's spatial extension offline")
    args = p.parse_args(argv)
    if args.install_extensions:
        path = install_extensions()
        print(f"embedded engine ready: DuckDB spatial extension installed from {path}")
        return 0
    p.print_help()
    return 2


if __name__ == "__main__":
    sys.exit(main())
