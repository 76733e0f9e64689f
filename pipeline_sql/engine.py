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
import gc
import glob
import logging
import os
import sys
import threading
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
        self._collecting_less = False

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
            _install(_small_row_groups)
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
        self._collect_less()
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
        * the rest of the per-statement Python: a new sqlglot generator for every SQL text
          generated (:func:`_reuse_generators`), the memoized tree read in place by the checks
          that only read it (:func:`_share_trees_with_readers`), rewriters answered from it
          when they would return their input (:func:`_skip_identity_rewrites`), table-name
          qualification memoized (:func:`_cache_table_refs`), the REST app's per-request
          observers (:func:`_drop_observability_middleware`). sqlglot itself runs compiled
          (the ``sqlglotc`` package, pinned beside it), and the cyclic garbage collector runs
          less often while the engine runs (:meth:`_collect_less`);
        * a CSV load job's dialect sniffing (the job's own delimiter, quote and rows to skip
          are passed instead: :func:`_load_csv_as_configured`), and a ``WRITE_TRUNCATE``
          load's row-by-row ``DELETE`` (the table is created again from its definition:
          :func:`_truncate_by_recreating`);
        * compressing the tables of the layers rebuilt every run (staging, delta, transform),
          written once and read once: on disk they are stored uncompressed; and analyzing
          dictionaries for the archive's mostly unique values: it is compressed without them
          (:mod:`pipeline_sql.enginestore`); the database file has row groups of
          :data:`ROW_GROUP_ROWS` rows, so a checkpoint after a small batch rewrites a small last
          row group (:func:`_small_row_groups`, installed before the emulator starts).

        Written against bqemulator 1.4.0 and sqlglot 30.11 (pinned); each patch installs
        itself once and leaves the engine untouched (with a warning) when what it patches has
        moved; ``tests/sql/test_engine.py`` and ``tests/sql/test_engine_shortcuts.py`` fail if
        an upgrade moves what these rely on, and compare each shortcut with the original."""
        if not sqlglot_compiled():
            logging.getLogger(__name__).warning(
                "sqlglot runs uncompiled (the sqlglotc package is missing): the embedded engine is slower; run `make setup`"
            )
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
        for install in (
            _reuse_generators,
            _cache_sqlglot_parses,
            _skip_detector_parses,
            _share_trees_with_readers,
            _skip_identity_rewrites,
            _cache_table_refs,
            _cache_translations,
            _load_csv_as_configured,
            _truncate_by_recreating,
        ):
            _install(install)
        _install(_drop_observability_middleware, server)
        if self.state_dir is not None:
            from .enginestore import store_layers

            store_layers(server._engine)

    def _collect_less(self) -> None:
        """Run Python's cyclic garbage collector less often while an engine runs (the thresholds
        are restored when the last engine of the process stops). Every statement makes sqlglot
        build trees (cyclic: each node points to its parent) and a run's process holds several
        hundred thousand objects (its imports and the engine's memos), which each full
        collection walks: with the default thresholds (a young collection every 700
        allocations) the collector took 3.4 of a 20-table small run's 14.9 s, 2.7 s of it in
        15 full collections (measured with ``gc.callbacks``). A young collection every 50,000
        allocations took it to 1.1 s, for ~50 MB more peak memory; garbage is still collected,
        later."""
        global _GC_USERS, _GC_SAVED
        with _GC_LOCK:
            if self._collecting_less:
                return
            if _GC_USERS == 0:
                _GC_SAVED = gc.get_threshold()
                gc.set_threshold(_GC_YOUNG, *_GC_SAVED[1:])
            _GC_USERS += 1
            self._collecting_less = True

    def _collect_as_before(self) -> None:
        global _GC_USERS
        with _GC_LOCK:
            if not self._collecting_less:
                return
            self._collecting_less = False
            _GC_USERS -= 1
            if _GC_USERS == 0:
                gc.set_threshold(*_GC_SAVED)

    def checkpoint(self) -> None:
        """Write what the database's write-ahead log holds into the database file (DuckDB
        ``CHECKPOINT``; a committed statement is durable before it, in the log), as
        :func:`pipeline_sql.enginestore.checkpoint` stores it."""
        from .enginestore import checkpoint

        checkpoint(self._emu.server._engine.connection)

    def stop(self) -> None:
        if self.client is not None:
            with contextlib.suppress(Exception):
                self.client.close()
        if self._emu is not None:
            if self.state_dir is not None:
                # DuckDB checkpoints when it closes the file; this one stores as the others do
                # (should it fail, the close's own checkpoint or the next start replays the log)
                with contextlib.suppress(Exception):
                    self.checkpoint()
            self._emu.stop()
            self._emu = None
        self._collect_as_before()

    def __enter__(self) -> "LocalEngine":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()


#: Rows per row group of the tables a persistent engine writes (DuckDB's default: 122,880);
#: see :func:`_small_row_groups`.
ROW_GROUP_ROWS = 16_384

#: A WRITE_TRUNCATE load drops and re-creates a table of at least this many rows instead of
#: deleting them (:func:`_truncate_by_recreating`): deleting 100,000 rows costs ~2.5 ms, about
#: what reading a table's definition costs in a catalog of a few hundred tables.
RECREATE_FROM_ROWS = 100_000

#: Allocations between young garbage collections while an engine runs (Python's default: 700).
_GC_YOUNG = 50_000
#: Engines of this process collecting less (:meth:`LocalEngine._collect_less`), and the
#: thresholds to restore when the last one stops.
_GC_USERS = 0
_GC_SAVED: tuple | None = None
_GC_LOCK = threading.Lock()


def _small_row_groups() -> None:
    """Open the engine's database file with row groups of :data:`ROW_GROUP_ROWS` rows instead
    of DuckDB's 122,880: bqemulator connects to the file itself, which takes no row group
    size, so a persistent engine connects to an in-memory database, attaches the file under
    the name a direct connection gives it (``bqemulator``, from ``bqemulator.duckdb``) with
    ``ROW_GROUP_SIZE`` and makes it the default; the rest is bqemulator 1.4.0's own start.

    Why: a checkpoint rewrites the partly filled last row group of every table that grew.
    With 122,880-row groups, a CDC run that appends 15,000 rows to the archive and the DWH
    paid a checkpoint that followed the fill of those row groups, 0.05 s up to 0.6-0.9 s in
    an 8-batch cycle (``history_bench``); with 16,384 rows it is 0.12-0.15 s every run, and
    a 1M-row initial load was no slower. The file stays an ordinary DuckDB database: row
    groups written before keep their size, a direct connection (``bqemulator backup``) reads
    it as before. An in-memory engine is left as it is."""
    from bqemulator.storage import engine as storage

    original = storage.DuckDBEngine.start
    if getattr(original, "_flexyboots_row_groups", False):
        return

    async def start(self) -> None:
        if self._started:
            return
        path = self._resolve_path()
        if path == ":memory:":
            return await original(self)
        import duckdb

        connection = duckdb.connect(":memory:")
        try:
            quoted = path.replace("'", "''")
            connection.execute(f"ATTACH '{quoted}' AS bqemulator (ROW_GROUP_SIZE {ROW_GROUP_ROWS})")
            connection.execute("USE bqemulator")
        except Exception:
            connection.close()
            raise
        self._connection = connection
        self._apply_session_pragmas()
        self._ensure_catalog_schema()
        self._load_spatial()
        if self._settings.enable_format_extensions:
            self._load_format_extensions()
        self._register_builtin_udfs()
        self._started = True

    start._flexyboots_row_groups = True
    start._original = original
    storage.DuckDBEngine.start = start


def _install(patch, *args) -> None:
    """Install one of the engine's patches; when an upgrade moved what it patches, the engine
    runs without it (a warning names it)."""
    try:
        patch(*args)
    except (ImportError, AttributeError) as e:
        logging.getLogger(__name__).warning("engine tuning %s skipped: %s", patch.__name__, e)


def _drop_observability_middleware(server) -> None:
    """Take the emulator's three per-request observers out of its REST app: a Prometheus
    counter (metrics are off), an access log line (logged below the level shown) and a
    correlation-id response header. Each is a Starlette ``BaseHTTPMiddleware``, which runs
    the rest of the request in a task of its own; together they cost ~10% of a small run's
    samples (two requests per job). What a request does and answers is unchanged; the
    request-body decompression middleware stays."""
    from bqemulator.api.middleware import AccessLogMiddleware, CorrelationIdMiddleware, MetricsMiddleware

    app = server._fastapi_server.config.app  # the FastAPI app uvicorn serves
    observers = (AccessLogMiddleware, CorrelationIdMiddleware, MetricsMiddleware)
    kept = [m for m in app.user_middleware if m.cls not in observers]
    if len(kept) != len(app.user_middleware):
        app.user_middleware = kept
        app.middleware_stack = None  # Starlette builds it again on the next request


def sqlglot_compiled() -> bool:
    """Whether sqlglot runs compiled (the ``sqlglotc`` package's mypyc build of its modules,
    which Python imports instead of the ``.py`` files beside them)."""
    from sqlglot.expressions import core

    return not core.__file__.endswith(".py")


def _reuse_generators() -> None:
    """Generate SQL with a reused ``sqlglot`` generator instead of a new one per call
    (``Dialect.generate``, behind ``Expression.sql`` and ``transpile``). The emulator generates
    SQL several times per statement, and a new DuckDB generator costs ~2.5 ms where the
    generation itself often costs less: compiled sqlglot (``sqlglotc``) re-parses the ~20 SQL
    templates the DuckDB generator declares as class attributes in every ``__init__`` (mypyc
    makes annotated class attributes instance defaults). A generator holds no state between
    calls except what ``__init__`` resets, which is reset here before each use (its unsupported
    messages, its alias sequence, the JSON-path quoting flag); each generator serves one call
    at a time (a nested or concurrent call takes another one from the pool, or a new one), and
    the pool is per dialect and options, as ``generator(**opts)`` builds them."""
    from sqlglot.dialects.dialect import Dialect
    from sqlglot.helper import name_sequence

    if getattr(Dialect.generate, "_flexyboots_pooled", False):
        return
    original = Dialect.generate
    pools: dict = {}

    def generate(self, expression, copy=True, **opts):
        try:
            free = pools.setdefault((self, tuple(sorted(opts.items()))), [])
        except TypeError:  # an unhashable option: as before
            return original(self, expression, copy=copy, **opts)
        try:
            gen = free.pop()
        except IndexError:
            gen = self.generator(**opts)
        gen.unsupported_messages = []
        gen._next_name = name_sequence("_t")
        gen._quote_json_path_key_using_brackets = True
        try:
            return gen.generate(expression, copy=copy)
        finally:
            free.append(gen)

    generate._flexyboots_pooled = True
    generate._original = original
    Dialect.generate = generate


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
        trees = cached(self, sql, key)
        lent = getattr(_READERS, "lent", None)
        if lent is not None:  # a caller that only reads (:func:`_share_trees_with_readers`)
            if len(trees) > 1:
                lent.extend(e for e in trees if e is not None)
            return list(trees)
        return [e.copy() if e is not None else None for e in trees]

    parse_cached._flexyboots_cached = True
    Dialect.parse = parse_cached


#: The memoized parse (dialect, sql, options) -> shared trees: only :func:`_memo_trees` reads it.
_SHARED_PARSE = None
#: Per thread: while a read-only caller runs (:func:`_share_trees_with_readers`), the list of
#: the shared statement trees lent to it as parts of a script.
_READERS = threading.local()


def _peek(sql: str):
    """What ``sqlglot.parse_one(sql, read="bigquery")`` returns, from the memo and shared with
    it (inspect it, never change it): the statement's tree; for a script (several statements,
    which ``parse_one`` wraps in an ``exp.Block``) the ``exp.Block`` class itself, since every
    caller here only asks what kind of node it gets; None when ``parse_one`` would raise."""
    from sqlglot import exp

    trees = _memo_trees(sql)
    if trees is None:
        return None
    return trees[0] if len(trees) == 1 else exp.Block


def _memo_trees(sql: str):
    """The memoized parse of ``sql`` (the trees shared with the memo: read them, never change
    them), or None when it is unparseable (the caller's own parse decides) or empty."""
    from sqlglot.dialects.dialect import Dialect

    try:
        trees = _SHARED_PARSE(Dialect.get_or_raise("bigquery"), sql, ())
    except Exception:
        return None
    if not trees or trees[0] is None:
        return None
    return trees


def _answer_first(module, name: str, shortcut, flag: str) -> None:
    """Put a wrapper in place of ``module.name`` that returns ``shortcut(*args, **kwargs)[0]``
    when the shortcut settles the answer (it returns a 1-tuple) and calls the original
    otherwise (the shortcut returns None); a coroutine function stays one. ``flag`` marks the
    wrapper (installed once); ``wrapper._unchanged`` is the shortcut, for the tests."""
    import functools
    import inspect

    original = getattr(module, name, None)
    if original is None or getattr(original, flag, False):
        return
    if inspect.iscoroutinefunction(original):
        @functools.wraps(original)
        async def wrapper(*args, **kwargs):
            answer = shortcut(*args, **kwargs)
            return answer[0] if answer is not None else await original(*args, **kwargs)
    else:
        @functools.wraps(original)
        def wrapper(*args, **kwargs):
            answer = shortcut(*args, **kwargs)
            return answer[0] if answer is not None else original(*args, **kwargs)

    setattr(wrapper, flag, True)
    wrapper._unchanged = shortcut
    setattr(module, name, wrapper)


def _skip_detector_parses() -> None:
    """Answer bqemulator's per-statement DDL/DML detectors without a private copy of the tree
    when the statement's kind already gives their answer (a CREATE-TABLE detector asked about
    an INSERT or a CREATE SCHEMA returns None): each detector starts with that same test of
    the node's class (and, for CREATE, its kind) on its own copy of the parse, a copy of the
    whole tree per detector and statement. A script gets the answer too: ``parse_one`` gives
    an ``exp.Block`` for it, which no detector accepts. Any other statement goes to the
    detector as before."""
    from bqemulator.catalog import ddl_sync
    from bqemulator.jobs import executor
    from sqlglot import exp

    block = exp.Block(expressions=[])

    def short_circuit(module, name, kind, answer):
        getattr(module, name)  # moved by an upgrade: AttributeError, the tuning is skipped with a warning
        sql_at = 1 if name in ("_reject_dml_on_immutable", "_capture_dml_snapshots") else 0

        def settled(*args, **kwargs):
            sql = args[sql_at] if len(args) > sql_at else kwargs.get("bq_sql")
            tree = _peek(sql) if isinstance(sql, str) else None
            if tree is exp.Block:  # a script: parse_one gives an exp.Block (of no kind asked here)
                tree = block
            return (answer,) if tree is not None and not kind(tree) else None

        _answer_first(module, name, settled, "_flexyboots_peek")

    def create_of(kind):
        # each CREATE detector answers "no" at once for a CREATE of another kind
        return lambda tree: isinstance(tree, exp.Create) and (tree.kind or "").upper() == kind

    short_circuit(ddl_sync, "_detect_catalog_drop", lambda t: isinstance(t, exp.Drop), None)
    short_circuit(ddl_sync, "_detect_create_schema", create_of("SCHEMA"), None)
    short_circuit(ddl_sync, "_detect_plain_create_view", create_of("VIEW"), (None, None))
    short_circuit(ddl_sync, "_detect_plain_create_table", create_of("TABLE"), None)
    short_circuit(executor, "_reject_dml_on_immutable", executor._is_dml, None)
    short_circuit(executor, "_capture_dml_snapshots", executor._is_dml, None)  # a coroutine function


def _share_trees_with_readers() -> None:
    """Let bqemulator's per-statement checks that only read a statement's tree read the
    memoized tree itself instead of a private copy of it (a copy of every statement of a
    script for each check run on a whole script). Each function listed here was read to be
    sure it neither changes the tree nor lets any part of it out (its answer is a string, a
    bool, a dict of strings or a record of strings, or an error), and calls nothing that
    changes a tree it parses:

    * ``classify_statement_type`` (the job's statement type; executor and REST route),
    * ``detect_drop_routine`` (DROP FUNCTION/PROCEDURE),
    * ``build_catalog_schema`` (column types of the tables a statement reads),
    * the script interpreter's ``_is_row_producing``,
    * ``_reject_dml_on_immutable`` (DML on a snapshot or materialized view),
    * ``_extract_ddl_metadata`` (a CREATE TABLE's description and partitioning).

    While one runs, the memoized parse hands out the shared trees (in this thread only);
    ``parse_one`` wraps a script's statements in an ``exp.Block``, which sets their parent
    link: that link is put back when the function returns."""
    import functools

    from bqemulator.api.routes import jobs as routes_jobs
    from bqemulator.catalog import ddl_sync
    from bqemulator.jobs import executor
    from bqemulator.scripting import interpreter
    from bqemulator.sql import inner_query

    def read_only(module, name):
        original = getattr(module, name, None)
        if original is None or getattr(original, "_flexyboots_shared", False):
            return

        @functools.wraps(original)
        def reader(*args, **kwargs):
            outer = getattr(_READERS, "lent", None)
            lent = _READERS.lent = []
            try:
                return original(*args, **kwargs)
            finally:
                _READERS.lent = outer
                for tree in lent:
                    tree.parent = tree.arg_key = tree.index = None

        reader._flexyboots_shared = True
        setattr(module, name, reader)

    read_only(executor, "classify_statement_type")
    read_only(routes_jobs, "classify_statement_type")
    read_only(executor, "detect_drop_routine")
    read_only(inner_query, "build_catalog_schema")
    read_only(interpreter, "_is_row_producing")
    read_only(executor, "_reject_dml_on_immutable")
    read_only(ddl_sync, "_extract_ddl_metadata")


def _shared_statements(sql):
    """The memoized trees of every statement ``sqlglot.parse_one(sql, read="bigquery")``
    would return (one, or those of a script's ``exp.Block``), shared with the memo: read
    them, never change them; None when ``parse_one`` would raise."""
    if not isinstance(sql, str):
        return None
    trees = _memo_trees(sql)
    return None if trees is None else [t for t in trees if t is not None]


def _skip_identity_rewrites() -> None:
    """Answer per-statement rewriters without their private copy of the tree when the
    memoized tree shows they would return the statement unchanged. Each parses the text,
    looks for the nodes it rewrites and returns its input as it is when none qualifies:

    * ``rewrite_create_table_schema_ctas`` (run on every translation) rewrites only
      ``exp.Create`` nodes: a statement without one comes back as given;
    * the script interpreter's ``_rewrite_vars_to_params`` (run on every statement of a
      script) replaces only a column named like a visible variable, or ``v.f`` where ``v`` is
      a visible STRUCT variable holding a field ``f``: without one it returns
      ``(statement, [])``;
    * ``rewrite_timestamp_iso_helpers`` (when the text names FORMAT_/PARSE_TIMESTAMP)
      replaces a node only where its own ``_rewrite_node`` gives a replacement, which that
      function builds from copies without touching the node: asked first on the shared tree;
    * ``rewrite_unnest_struct`` (when the text names UNNEST) changes only an
      ``UNNEST([STRUCT(..), STRUCT(..), ..])`` of one array of at least two structs.

    Anything else (and any text the memo cannot parse) goes to the original."""
    from bqemulator.scripting import interpreter
    from bqemulator.sql import translator
    from bqemulator.sql.rewriter import timestamp_iso_helpers as timestamp_iso
    from bqemulator.sql.rewriter import unnest_struct
    from sqlglot import exp

    def identity_when(module, name, unchanged):
        _answer_first(module, name, unchanged, "_flexyboots_identity")

    def ctas_unchanged(bq_sql, *args, **kwargs):
        trees = _shared_statements(bq_sql) if not (args or kwargs) else None
        if trees is None or any(t.find(exp.Create) is not None for t in trees):
            return None
        return (bq_sql,)

    def vars_unchanged(bq_sql, frames, *args, **kwargs):
        if args or kwargs:
            return None
        visible = frames.all_visible()
        if not visible:  # the original returns before parsing
            return None
        trees = _shared_statements(bq_sql)
        if trees is None:
            return None
        for tree in trees:
            for col in tree.find_all(exp.Column):
                table = col.table
                if table:
                    if table in visible:
                        container = visible[table].value
                        if isinstance(container, dict) and col.name in container:
                            return None
                elif col.name in visible:
                    return None
        return ((bq_sql, []),)

    def timestamp_unchanged(bq_sql, *args, **kwargs):
        if args or kwargs or not isinstance(bq_sql, str):
            return None
        upper = bq_sql.upper()
        if "FORMAT_TIMESTAMP" not in upper and "PARSE_TIMESTAMP" not in upper:
            return None  # the original returns at once
        trees = _shared_statements(bq_sql)
        # _rewrite_node only reads the node it is given (a replacement is built from copies)
        if trees is None or any(timestamp_iso._rewrite_node(n) is not None for t in trees for n in t.walk()):
            return None
        return (bq_sql,)

    def unnest_unchanged(bq_sql, *args, **kwargs):
        if args or kwargs or not isinstance(bq_sql, str) or "UNNEST" not in bq_sql.upper():
            return None  # the original returns at once
        trees = _shared_statements(bq_sql)
        if trees is None:
            return None
        for tree in trees:
            for unnest in tree.find_all(exp.Unnest):
                # the checks _propagate_struct_field_names makes before it can change anything
                items = unnest.expressions
                if len(items) != 1 or not isinstance(items[0], exp.Array):
                    continue
                structs = items[0].expressions
                if len(structs) >= unnest_struct._MIN_STRUCTS_FOR_PROPAGATION and all(isinstance(x, exp.Struct) for x in structs):
                    return None
        return (bq_sql,)

    identity_when(translator, "rewrite_create_table_schema_ctas", ctas_unchanged)
    identity_when(interpreter, "_rewrite_vars_to_params", vars_unchanged)
    if hasattr(timestamp_iso, "_rewrite_node"):
        identity_when(translator, "rewrite_timestamp_iso_helpers", timestamp_unchanged)
    if hasattr(unnest_struct, "_MIN_STRUCTS_FOR_PROPAGATION"):
        identity_when(translator, "rewrite_unnest_struct", unnest_unchanged)


def _cache_table_refs(maxsize: int = 1024) -> None:
    """Memoize bqemulator's ``rewrite_table_refs`` (DuckDB text + project -> text: it parses
    the text and qualifies its table and routine names; it reads nothing else), run on every
    translated statement, repeats included (a translation served from the memo still has its
    table names qualified each time). Only returned texts are kept; an error is raised again
    by the original each time. Every module that imported the function gets the memoized one."""
    import functools
    import sys as _sys

    from bqemulator.sql import table_rewriter

    original = table_rewriter.rewrite_table_refs
    if getattr(original, "_flexyboots_cached", False):
        return

    @functools.wraps(original)
    @functools.lru_cache(maxsize=maxsize)
    def rewrite_table_refs(duckdb_sql, project_id):
        return original(duckdb_sql, project_id)

    @functools.wraps(original)
    def rewrite_table_refs_cached(duckdb_sql, project_id):
        try:
            hash((duckdb_sql, project_id))
        except TypeError:  # not a memo key
            return original(duckdb_sql, project_id)
        return rewrite_table_refs(duckdb_sql, project_id)

    rewrite_table_refs_cached._flexyboots_cached = True
    rewrite_table_refs_cached._original = original
    for name, module in list(_sys.modules.items()):
        if (name == "bqemulator" or name.startswith("bqemulator.")) and getattr(module, "rewrite_table_refs", None) is original:
            module.rewrite_table_refs = rewrite_table_refs_cached


def csv_copy_options(load: dict) -> str:
    """DuckDB ``COPY ... FROM`` options for a BigQuery CSV load job's ``configuration.load``
    (``load``): its field delimiter (default ``,``; ``\\t`` or ``tab`` for a tab), the rows it
    skips (``skipLeadingRows``, default 0: skipped by position, the header included, as
    BigQuery does), its quote character (default ``"``, doubled inside a quoted value; an empty
    quote turns quoting off) and its null marker (default: an empty field is NULL, DuckDB's
    default too). Dialect detection is off: DuckDB takes the file as the job describes it. The
    job's other CSV options (jagged rows, encoding, bad records...) are not read, as before."""

    def literal(value: str) -> str:
        return "'" + value.replace("'", "''") + "'"

    delimiter = load.get("fieldDelimiter", ",")
    delimiter = {"\\t": "\t", "tab": "\t"}.get(delimiter, delimiter)
    quote = load.get("quote", '"')
    try:
        skip = int(load.get("skipLeadingRows", 0) or 0)
    except (TypeError, ValueError):
        skip = -1
    if skip < 0:
        raise ValueError(f"skipLeadingRows must be a whole number of rows >= 0, got {load.get('skipLeadingRows')!r}")
    options = ["FORMAT CSV", "AUTO_DETECT false", "HEADER false", f"SKIP {skip}", f"DELIM {literal(delimiter)}", f"QUOTE {literal(quote)}"]
    if quote:
        options.append(f"ESCAPE {literal(quote)}")
    if "nullMarker" in load:
        options.append(f"NULLSTR {literal(load['nullMarker'])}")
    return ", ".join(options)


def _load_csv_as_configured() -> None:
    """The emulator loads a CSV file with ``COPY ... (FORMAT CSV, HEADER)``: it ignores the
    job's delimiter, quote and rows to skip, and DuckDB sniffs the file's dialect from a sample
    instead (~30 ms per file: a 15,000-row file loaded in 42-46 ms, 13-14 ms with the dialect
    given). The load now passes what the job says (:func:`csv_copy_options`), as BigQuery reads
    it; other formats load as before."""
    from bqemulator.jobs import executor

    original = executor._load_path_into_target
    if getattr(original, "_flexyboots_csv", False):
        return

    def load_path_into_target(path, job, ctx):
        if job.source_format != "CSV":
            return original(path, job, ctx)
        ctx.engine.execute(f"COPY {job.target_ref} FROM ? ({csv_copy_options(job.raw_config)})", [path])

    load_path_into_target._flexyboots_csv = True
    load_path_into_target._original = original
    executor._load_path_into_target = load_path_into_target


def _truncate_by_recreating() -> None:
    """A load job with ``WRITE_TRUNCATE`` empties its table first: the emulator runs ``DELETE
    FROM``, which DuckDB logs row by row (a 1M-row staging table: 23-30 ms, and ~6 ms more at
    the next checkpoint). The table is now dropped and created again from its own definition
    (DuckDB's ``duckdb_tables().sql``: columns, types, constraints and defaults), in one
    transaction: 1.6 ms and 1.1 ms. The same empty table follows, and a failed load leaves it
    empty, as before. Only a table of at least :data:`RECREATE_FROM_ROWS` rows is created
    again: reading its definition enumerates the whole catalog (~10 ms with 800 tables), more
    than deleting a small table's rows costs (100 rows: 0.6 ms). A table with an index or a
    comment is still emptied with ``DELETE``."""
    import re

    import duckdb
    from bqemulator.jobs import executor

    original = executor._apply_load_write_disposition
    if getattr(original, "_flexyboots_truncate", False):
        return
    quoted = re.compile(r'^"((?:[^"]|"")+)"\."((?:[^"]|"")+)"$')

    def definition(con, target_ref: str) -> str | None:
        m = quoted.match(target_ref)
        if m is None:
            return None
        schema, table = (part.replace('""', '"') for part in m.groups())
        where = "database_name = current_database() AND schema_name = ? AND table_name = ?"
        row = con.execute(
            f"SELECT sql, comment IS NULL AND index_count = 0 AND NOT EXISTS (SELECT 1 FROM duckdb_columns() "
            f"WHERE {where} AND comment IS NOT NULL) FROM duckdb_tables() WHERE {where}",
            [schema, table, schema, table],
        ).fetchone()
        return row[0] if row and row[0] and row[1] else None

    def rows(con, target_ref: str) -> int:
        try:
            return con.execute(f"SELECT COUNT(*) FROM {target_ref}").fetchone()[0]
        except duckdb.Error:  # no such table: the original says so
            return 0

    def apply_load_write_disposition(job, ctx):
        if job.write_disposition != "WRITE_TRUNCATE":
            return original(job, ctx)
        con = ctx.engine.connection
        ddl = definition(con, job.target_ref) if rows(con, job.target_ref) >= RECREATE_FROM_ROWS else None
        if ddl is None:
            return original(job, ctx)
        con.execute("BEGIN TRANSACTION")
        try:
            con.execute(f"DROP TABLE {job.target_ref}")
            con.execute(ddl)
        except BaseException:
            con.execute("ROLLBACK")
            raise
        con.execute("COMMIT")

    apply_load_write_disposition._flexyboots_truncate = True
    apply_load_write_disposition._original = original
    executor._apply_load_write_disposition = apply_load_write_disposition


def _cache_translations(maxsize: int = 1024) -> None:
    """Memoize bqemulator's ``SQLTranslator.translate`` (text -> text, no catalog access: its
    inputs are the statement, the column types of the tables it reads and the caller) on those
    three and on the translator's rules; only successful translations are kept (a string,
    shared safely). The rules are stateless instances of the registered rule classes, and a
    script makes a new translator for every job: the key holds the rules' classes, in order,
    not the translator itself (keyed on the instance, a script's statements were translated
    again in every run: ~30% of the emulator's own time in a CDC run)."""
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
            rules = getattr(self, "_rules", None)
            rules = tuple(map(type, rules)) if isinstance(rules, list) else id(self)
            key = (rules, bq_sql, json.dumps(schema, sort_keys=True), repr(caller))
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
