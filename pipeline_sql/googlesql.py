"""GoogleSQL analysis of the SQL flexyboots runs, with Google's ZetaSQL analyzer (BigQuery dialect).

The embedded engine (DuckDB underneath) accepts SQL that BigQuery refuses. This module runs
statements through ZetaSQL, the analyzer behind BigQuery's GoogleSQL, with the language options
BigQuery uses, a catalog of the tables :mod:`pipeline_sql.schema` declares and the typed query
parameters the runner binds, and returns every problem as a :class:`Problem` (the statement, where
in it, and the analyzer's message). On top of ZetaSQL it checks what ZetaSQL leaves to the engine
(:func:`engine_rule_problems`): PARTITION BY forms, clustering columns, reserved column names and
LOAD DATA options, each rule taken from BigQuery's documentation.

Use::

    from pipeline_sql.googlesql import GoogleSQL, Catalog
    from pipeline_sql.statements import table_statements

    gsql = GoogleSQL.shared()               # one analyzer per process; reuse it
    catalog = Catalog.for_specs(specs, [Naming(), Naming(project="acme-data-prod", env="prod")])
    result = gsql.analyze(table_statements(spec, naming, "gs://bucket"), catalog)
    assert not result.problems, "\\n\\n".join(map(str, result.problems))

or ``analyze_table(spec, naming, landing_uri)`` for one spec. What "every statement the project
runs" means lives in :mod:`pipeline_sql.statements`; add a statement kind there (see its
docstring), not here.

What is analyzed, per :class:`~pipeline_sql.statements.Statement` (its SQL may be a script):

* each statement of the script, resolved against the catalog with the statement's query
  parameters (``@run_time`` TIMESTAMP, ...). Script statements: ``DECLARE`` (the variable becomes
  a catalog constant for the statements after it; a ``DEFAULT`` must coerce to the declared
  type), ``SET``, ``BEGIN ... [EXCEPTION WHEN ERROR THEN ...] END`` (``@@error.*`` is defined in
  the handler), ``IF/ELSEIF/ELSE``; any other script statement (loops, ``CALL``, ...) is reported
  as a problem rather than skipped silently;
* every CREATE TABLE, CREATE TABLE AS SELECT, CREATE VIEW and LOAD DATA of a table the catalog
  declares must produce exactly the declared columns (names, order, types); one the catalog does
  not declare is a problem unless it is a TEMP table or an external table (CREATE EXTERNAL TABLE
  over files, with its partition columns), which later statements of the same script then see;
* the engine rules of :func:`engine_rule_problems` on every such statement.

A back-quoted ```project.dataset.table``` is read as BigQuery reads it, as a path whose implicit
alias is ``table`` (:func:`split_table_paths`); line numbers in messages are the statement's, a
column may be off by the quotes this adds.

ZetaSQL comes from PyPI ``zetasql`` (ZetaSQL compiled to WebAssembly, run by ``wasmtime``),
imported lazily. Compiling the 28 MB module takes one to two minutes; ``python -m
pipeline_sql.googlesql --prepare`` (run by ``make setup``) compiles it once into the git-ignored
cache folder ``.cache/zetasql/`` (or ``$FLEXYBOOTS_ZETASQL_CACHE``), keyed by the module's hash and
the wasmtime version, and every later start loads it from there in milliseconds. Requests go
straight to the module's local-service functions with protobuf messages (the package's pure-Python
request marshalling copies bytes one at a time); the catalog is registered once per analysis, not
sent with every statement (it is registered again only for a script's variables or TEMP
tables).
"""

from __future__ import annotations

import argparse
import contextlib
import ctypes
import hashlib
import os
import re
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable, Sequence

from .naming import Naming
from .schema import TableDef, pipeline_tables, shared_tables
from .spec import TableSpec

ROOT = Path(__file__).resolve().parents[1]
CACHE_ENV = "FLEXYBOOTS_ZETASQL_CACHE"
DEFAULT_CACHE = ROOT / ".cache" / "zetasql"

# --------------------------------------------------------------------------- BigQuery's options

#: The language features BigQuery enables, exactly as Google's zetasql-toolkit declares them in
#: ``BigQueryLanguageOptions`` (GoogleCloudPlatform/zetasql-toolkit, commit e196efe,
#: zetasql-toolkit-bigquery/src/main/java/com/google/zetasql/toolkit/options/
#: BigQueryLanguageOptions.java), with its product mode (EXTERNAL), name resolution mode
#: (DEFAULT) and reservable keyword (QUALIFY).
BIGQUERY_LANGUAGE_FEATURES = (
    "FEATURE_ALLOW_MISSING_PATH_EXPRESSION_IN_ALTER_DDL",
    "FEATURE_ALTER_COLUMN_SET_DATA_TYPE",
    "FEATURE_ALTER_TABLE_RENAME_COLUMN",
    "FEATURE_ANALYTIC_FUNCTIONS",
    "FEATURE_ANONYMIZATION",
    "FEATURE_BIGNUMERIC_TYPE",
    "FEATURE_CBRT_FUNCTIONS",
    "FEATURE_CREATE_EXTERNAL_TABLE_WITH_CONNECTION",
    "FEATURE_CREATE_EXTERNAL_TABLE_WITH_PARTITION_COLUMNS",
    "FEATURE_CREATE_EXTERNAL_TABLE_WITH_TABLE_ELEMENT_LIST",
    "FEATURE_CREATE_MATERIALIZED_VIEW_CLUSTER_BY",
    "FEATURE_CREATE_MATERIALIZED_VIEW_PARTITION_BY",
    "FEATURE_CREATE_SNAPSHOT_TABLE",
    "FEATURE_CREATE_TABLE_AS_SELECT_COLUMN_LIST",
    "FEATURE_CREATE_TABLE_CLONE",
    "FEATURE_CREATE_TABLE_CLUSTER_BY",
    "FEATURE_CREATE_TABLE_COPY",
    "FEATURE_CREATE_TABLE_FIELD_ANNOTATIONS",
    "FEATURE_CREATE_TABLE_FUNCTION",
    "FEATURE_CREATE_TABLE_LIKE",
    "FEATURE_CREATE_TABLE_NOT_NULL",
    "FEATURE_CREATE_TABLE_PARTITION_BY",
    "FEATURE_CREATE_VIEW_WITH_COLUMN_LIST",
    "FEATURE_DML_UPDATE_WITH_JOIN",
    "FEATURE_ENCRYPTION",
    "FEATURE_FOREIGN_KEYS",
    "FEATURE_GEOGRAPHY",
    "FEATURE_GROUP_BY_ROLLUP",
    "FEATURE_INTERVAL_TYPE",
    "FEATURE_INVERSE_TRIG_FUNCTIONS",
    "FEATURE_JSON_ARRAY_FUNCTIONS",
    "FEATURE_JSON_TYPE",
    "FEATURE_JSON_VALUE_EXTRACTION_FUNCTIONS",
    "FEATURE_NAMED_ARGUMENTS",
    "FEATURE_NUMERIC_TYPE",
    "FEATURE_PARAMETERIZED_TYPES",
    "FEATURE_PARAMETERS_IN_GRANTEE_LIST",
    "FEATURE_ROUND_WITH_ROUNDING_MODE",
    "FEATURE_TABLESAMPLE",
    "FEATURE_TABLE_VALUED_FUNCTIONS",
    "FEATURE_TEMPLATE_FUNCTIONS",
    "FEATURE_TIMESTAMP_NANOS",
    "FEATURE_TIME_BUCKET_FUNCTIONS",
    "FEATURE_UNENFORCED_PRIMARY_KEYS",
    "FEATURE_V_1_1_HAVING_IN_AGGREGATE",
    "FEATURE_V_1_1_LIMIT_IN_AGGREGATE",
    "FEATURE_V_1_1_NULL_HANDLING_MODIFIER_IN_AGGREGATE",
    "FEATURE_V_1_1_NULL_HANDLING_MODIFIER_IN_ANALYTIC",
    "FEATURE_V_1_1_ORDER_BY_IN_AGGREGATE",
    "FEATURE_V_1_1_SELECT_STAR_EXCEPT_REPLACE",
    "FEATURE_V_1_1_WITH_ON_SUBQUERY",
    "FEATURE_V_1_2_CIVIL_TIME",
    "FEATURE_V_1_2_SAFE_FUNCTION_CALL",
    "FEATURE_V_1_2_WEEK_WITH_WEEKDAY",
    "FEATURE_V_1_3_ADDITIONAL_STRING_FUNCTIONS",
    "FEATURE_V_1_3_ALLOW_DASHES_IN_TABLE_NAME",
    "FEATURE_V_1_3_ALLOW_REGEXP_EXTRACT_OPTIONALS",
    "FEATURE_V_1_3_ANNOTATION_FRAMEWORK",
    "FEATURE_V_1_3_CASE_STMT",
    "FEATURE_V_1_3_COLLATION_SUPPORT",
    "FEATURE_V_1_3_COLUMN_DEFAULT_VALUE",
    "FEATURE_V_1_3_CONCAT_MIXED_TYPES",
    "FEATURE_V_1_3_DATE_ARITHMETICS",
    "FEATURE_V_1_3_DATE_TIME_CONSTRUCTORS",
    "FEATURE_V_1_3_DECIMAL_ALIAS",
    "FEATURE_V_1_3_EXTENDED_DATE_TIME_SIGNATURES",
    "FEATURE_V_1_3_EXTENDED_GEOGRAPHY_PARSERS",
    "FEATURE_V_1_3_FORMAT_IN_CAST",
    "FEATURE_V_1_3_FOR_IN",
    "FEATURE_V_1_3_IS_DISTINCT",
    "FEATURE_V_1_3_LIKE_ANY_SOME_ALL",
    "FEATURE_V_1_3_NULLS_FIRST_LAST_IN_ORDER_BY",
    "FEATURE_V_1_3_OMIT_INSERT_COLUMN_LIST",
    "FEATURE_V_1_3_PIVOT",
    "FEATURE_V_1_3_QUALIFY",
    "FEATURE_V_1_3_REMOTE_FUNCTION",
    "FEATURE_V_1_3_REPEAT",
    "FEATURE_V_1_3_SCRIPT_LABEL",
    "FEATURE_V_1_3_UNNEST_AND_FLATTEN_ARRAYS",
    "FEATURE_V_1_3_UNPIVOT",
    "FEATURE_V_1_3_WITH_GROUP_ROWS",
    "FEATURE_V_1_3_WITH_RECURSIVE",
    "FEATURE_V_1_4_ARRAY_AGGREGATION_FUNCTIONS",
    "FEATURE_V_1_4_REMOTE_MODEL",
    "FEATURE_V_1_4_GROUPING_BUILTIN",
    "FEATURE_V_1_4_GROUPING_SETS",
    "FEATURE_V_1_4_GROUP_BY_ALL",
)
#: The statement kinds BigQuery supports (same source as the features).
BIGQUERY_STATEMENT_KINDS = (
    "RESOLVED_ADD_CONSTRAINT_ACTION",
    "RESOLVED_ALTER_ENTITY_STMT",
    "RESOLVED_ALTER_MATERIALIZED_VIEW_STMT",
    "RESOLVED_ALTER_MODEL_STMT",
    "RESOLVED_ALTER_SCHEMA_STMT",
    "RESOLVED_ALTER_TABLE_STMT",
    "RESOLVED_ALTER_VIEW_STMT",
    "RESOLVED_ASSERT_STMT",
    "RESOLVED_ASSIGNMENT_STMT",
    "RESOLVED_AUX_LOAD_DATA_STMT",
    "RESOLVED_BEGIN_STMT",
    "RESOLVED_CALL_STMT",
    "RESOLVED_COMMIT_STMT",
    "RESOLVED_CREATE_ENTITY_STMT",
    "RESOLVED_CREATE_EXTERNAL_TABLE_STMT",
    "RESOLVED_CREATE_FUNCTION_STMT",
    "RESOLVED_CREATE_INDEX_STMT",
    "RESOLVED_CREATE_MATERIALIZED_VIEW_STMT",
    "RESOLVED_CREATE_MODEL_STMT",
    "RESOLVED_CREATE_PROCEDURE_STMT",
    "RESOLVED_CREATE_ROW_ACCESS_POLICY_STMT",
    "RESOLVED_CREATE_SCHEMA_STMT",
    "RESOLVED_CREATE_SNAPSHOT_TABLE_STMT",
    "RESOLVED_CREATE_TABLE_AS_SELECT_STMT",
    "RESOLVED_CREATE_TABLE_FUNCTION_STMT",
    "RESOLVED_CREATE_TABLE_STMT",
    "RESOLVED_CREATE_VIEW_STMT",
    "RESOLVED_DELETE_STMT",
    "RESOLVED_DROP_CONSTRAINT_ACTION",
    "RESOLVED_DROP_FUNCTION_STMT",
    "RESOLVED_DROP_MATERIALIZED_VIEW_STMT",
    "RESOLVED_DROP_ROW_ACCESS_POLICY_STMT",
    "RESOLVED_DROP_SNAPSHOT_TABLE_STMT",
    "RESOLVED_DROP_STMT",
    "RESOLVED_DROP_TABLE_FUNCTION_STMT",
    "RESOLVED_EXECUTE_IMMEDIATE_STMT",
    "RESOLVED_EXPORT_DATA_STMT",
    "RESOLVED_EXPORT_MODEL_STMT",
    "RESOLVED_GRANT_STMT",
    "RESOLVED_INSERT_STMT",
    "RESOLVED_MERGE_STMT",
    "RESOLVED_QUERY_STMT",
    "RESOLVED_REVOKE_STMT",
    "RESOLVED_ROLLBACK_STMT",
    "RESOLVED_TRUNCATE_STMT",
    "RESOLVED_UPDATE_STMT",
)
BIGQUERY_RESERVABLE_KEYWORDS = ("QUALIFY",)

#: BigQuery system variables a script may read (@@name); ``@@error.*`` only inside an
#: EXCEPTION handler. https://cloud.google.com/bigquery/docs/reference/system-variables
SYSTEM_VARIABLES = {
    "current_job_id": "STRING",
    "dataset_id": "STRING",
    "dataset_project_id": "STRING",
    "last_job_id": "STRING",
    "project_id": "STRING",
    "row_count": "INT64",
    "session_id": "STRING",
    "time_zone": "STRING",
    "script.bytes_billed": "INT64",
    "script.bytes_processed": "INT64",
    "script.creation_time": "TIMESTAMP",
    "script.job_id": "STRING",
    "script.num_child_jobs": "INT64",
    "script.slot_ms": "INT64",
}
HANDLER_SYSTEM_VARIABLES = {
    "error.message": "STRING",
    "error.statement_text": "STRING",
    "error.formatted_stack_trace": "STRING",
}

# --------------------------------------------------------------------------- engine rules
# Rules BigQuery enforces that ZetaSQL leaves to the engine, from BigQuery's documentation.

#: Time-unit and integer-range partitioning: the only PARTITION BY expressions BigQuery accepts
#: are ``_PARTITIONDATE``, ``DATE(_PARTITIONTIME)``, ``DATE(<timestamp column>)``,
#: ``DATE(<datetime column>)``, ``DATETIME_TRUNC(<datetime column>, DAY|HOUR|MONTH|YEAR)``, a DATE
#: column, ``TIMESTAMP_TRUNC(<timestamp column>, DAY|HOUR|MONTH|YEAR)``, ``DATE_TRUNC(<date
#: column>, MONTH|YEAR)`` and ``RANGE_BUCKET(<int64 column>, GENERATE_ARRAY(...))``.
#: https://cloud.google.com/bigquery/docs/reference/standard-sql/data-definition-language
#: (CREATE TABLE, partition_expression) and
#: https://cloud.google.com/bigquery/docs/creating-partitioned-tables
PARTITION_TRUNC_UNITS = {
    "timestamp_trunc": ("TIMESTAMP", ("DAY", "HOUR", "MONTH", "YEAR")),
    "datetime_trunc": ("DATETIME", ("DAY", "HOUR", "MONTH", "YEAR")),
    "date_trunc": ("DATE", ("MONTH", "YEAR")),
}
#: Clustering: at most four top-level, non-repeated columns of these types.
#: https://cloud.google.com/bigquery/docs/clustered-tables (cluster column types, limitations)
MAX_CLUSTER_COLUMNS = 4
CLUSTER_TYPES = ("BIGNUMERIC", "BOOL", "DATE", "DATETIME", "GEOGRAPHY", "INT64", "NUMERIC", "RANGE", "STRING", "TIMESTAMP")
#: Column names may not start with these prefixes (in any case); column names are at most 300
#: characters and case-insensitively unique.
#: https://cloud.google.com/bigquery/docs/schemas#column_names
RESERVED_COLUMN_PREFIXES = ("_TABLE_", "_FILE_", "_PARTITION", "_ROW_TIMESTAMP", "__ROOT__", "_COLIDENTIFIER")
MAX_COLUMN_NAME = 300
#: LOAD DATA ... FROM FILES and CREATE EXTERNAL TABLE options this project may use, with their
#: types; ``format`` values.
#: https://cloud.google.com/bigquery/docs/reference/standard-sql/load-statements (load_option_list
#: takes the external-table options of
#: https://cloud.google.com/bigquery/docs/reference/standard-sql/data-definition-language#external_table_option_list)
LOAD_OPTIONS = {
    "allow_jagged_rows": "BOOL",
    "allow_quoted_newlines": "BOOL",
    "compression": "STRING",
    "encoding": "STRING",
    "field_delimiter": "STRING",
    "format": "STRING",
    "hive_partition_uri_prefix": "STRING",
    "ignore_unknown_values": "BOOL",
    "max_bad_records": "INT64",
    "null_marker": "STRING",
    "preserve_ascii_control_characters": "BOOL",
    "quote": "STRING",
    "require_hive_partition_filter": "BOOL",
    "skip_leading_rows": "INT64",
    "uris": "ARRAY<STRING>",
}
LOAD_FORMATS = ("AVRO", "CSV", "DATASTORE_BACKUP", "GOOGLE_SHEETS", "JSON", "NEWLINE_DELIMITED_JSON", "ORC", "PARQUET")
#: Options that only apply to one format (BigQuery refuses e.g. skip_leading_rows for PARQUET).
CSV_ONLY_LOAD_OPTIONS = ("allow_jagged_rows", "allow_quoted_newlines", "field_delimiter", "quote", "skip_leading_rows", "null_marker", "encoding", "preserve_ascii_control_characters")


# --------------------------------------------------------------------------- results


@dataclass(frozen=True)
class Problem:
    """One reason BigQuery would refuse a statement."""

    label: str  # which statement, e.g. "customers/layer:archive (acme-data-prod/prod)"
    sql: str  # the whole text that was analyzed
    message: str  # the analyzer's (or engine rule's) message, with [at line:column] where known
    line: int | None = None  # 1-based line of ``sql`` the problem is on

    def excerpt(self, context: int = 1) -> str:
        if self.line is None:
            return ""
        text = self.sql.splitlines()
        lo, hi = max(1, self.line - context), min(len(text), self.line + context)
        return "\n".join(f"  {'>' if i == self.line else ' '}{i:>4} | {text[i - 1]}" for i in range(lo, hi + 1))

    def __str__(self) -> str:
        ex = self.excerpt()
        return f"{self.label}: {self.message}" + (f"\n{ex}" if ex else "")


@dataclass
class Analysis:
    """What :meth:`GoogleSQL.analyze` did: its problems and counts."""

    problems: list[Problem] = field(default_factory=list)
    statements: int = 0  # statements given (texts, each possibly a script)
    resolved: int = 0  # SQL statements resolved by ZetaSQL (script parts count one each)
    checked_schemas: int = 0  # CREATE/LOAD statements whose columns were compared with schema.py
    seconds: float = 0.0


# --------------------------------------------------------------------------- the catalog


_TYPE_ALIASES = {
    "INTEGER": "INT64",
    "FLOAT": "FLOAT64",
    "BOOLEAN": "BOOL",
    "RECORD": "STRUCT",
    "DECIMAL": "NUMERIC",
    "BIGDECIMAL": "BIGNUMERIC",
}


def field_type(f: dict) -> str:
    """A BigQuery schema field (``{"name", "type", "mode"[, "fields"]}``) as a GoogleSQL type
    name: ``INT64``, ``ARRAY<STRING>``, ``STRUCT<a INT64, b STRING>``."""
    t = _TYPE_ALIASES.get(f["type"].upper(), f["type"].upper())
    if t == "STRUCT":
        t = "STRUCT<" + ", ".join(f"{g['name']} {field_type(g)}" for g in f.get("fields", ())) + ">"
    return f"ARRAY<{t}>" if f.get("mode", "NULLABLE").upper() == "REPEATED" else t


@dataclass(frozen=True)
class CatalogTable:
    name: str  # project.dataset.table
    columns: tuple[tuple[str, str], ...]  # (name, GoogleSQL type)
    is_view: bool = False


@dataclass(frozen=True)
class Catalog:
    """The tables statements may read and write, each by its full name ``project.dataset.table``
    with its columns (GoogleSQL type names). Registered with ZetaSQL as nested catalogs
    (project -> dataset -> table), so that a reference resolves as BigQuery resolves it: as the
    path ``project.dataset.table`` (see :func:`split_table_paths`). Combine catalogs with ``+``
    (e.g. ``Catalog.for_specs(...) + Catalog.from_tabledefs([a project-wide table])``)."""

    tables: tuple[CatalogTable, ...]

    @classmethod
    def from_tabledefs(cls, defs: Iterable[TableDef]) -> "Catalog":
        seen: dict[str, CatalogTable] = {}
        for d in defs:
            seen[d.table_id] = CatalogTable(
                d.table_id, tuple((f["name"], field_type(f)) for f in d.fields), is_view=d.view_query is not None
            )
        return cls(tuple(seen.values()))

    @classmethod
    def for_specs(cls, specs: Iterable[TableSpec], namings: Sequence[Naming]) -> "Catalog":
        """Every table :mod:`pipeline_sql.schema` declares (:func:`~pipeline_sql.schema.
        shared_tables` and each spec's :func:`~pipeline_sql.schema.pipeline_tables`), for each
        naming (e.g. the embedded engine's and a real project's), and the runner's local quarantine
        table (:func:`~pipeline_sql.landed.refused_files_table`)."""
        specs = list(specs)
        from .landed import refused_files_table  # the local quarantine table (runner only)

        return cls.from_tabledefs(
            t for n in namings for t in shared_tables(n) + [refused_files_table(n)] + [t for s in specs for t in pipeline_tables(s, n)]
        )

    def table(self, name: str) -> CatalogTable | None:
        for t in self.tables:
            if t.name == name:
                return t
        return None

    def __add__(self, other: "Catalog") -> "Catalog":
        return Catalog(tuple({t.name: t for t in self.tables + other.tables}.values()))


# --------------------------------------------------------------------------- the module


def _zetasql_paths() -> tuple[Path, str]:
    """The wasm module shipped in the ``zetasql`` package and the wasmtime version."""
    import importlib.util

    import wasmtime

    spec = importlib.util.find_spec("zetasql")
    if spec is None or not spec.submodule_search_locations:
        raise RuntimeError("the zetasql package is not installed; run `make setup` (it is pinned in requirements.txt)")
    wasm = Path(list(spec.submodule_search_locations)[0]) / "wasi" / "zetasql.wasm"
    if not wasm.is_file():
        raise RuntimeError(f"{wasm} is missing; reinstall zetasql")
    try:
        from importlib.metadata import version

        wasmtime_version = version("wasmtime")
    except Exception:  # not installed as a distribution: fall back to the module's file
        wasmtime_version = hashlib.sha256(Path(wasmtime.__file__).read_bytes()).hexdigest()[:12]
    return wasm, wasmtime_version


def cache_dir() -> Path:
    return Path(os.environ.get(CACHE_ENV) or DEFAULT_CACHE)


def _engine():
    from wasmtime import Config, Engine

    config = Config()
    # the module declares a shared memory (threads); zetasql's own client enables the same
    with contextlib.suppress(AttributeError):
        config.shared_memory = True
    return Engine(config)


def compiled_module_path(directory: Path | None = None) -> Path:
    wasm, wasmtime_version = _zetasql_paths()
    h = hashlib.sha256()
    with open(wasm, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    key = f"zetasql-{h.hexdigest()[:16]}-wasmtime-{wasmtime_version}-{sys.platform}"
    return (directory or cache_dir()) / f"{key}.cwasm"


def _cached_module(path: Path, engine):
    """The compiled module from the cache, or None (a stale or truncated file is removed)."""
    from wasmtime import Module

    if not path.is_file():
        return None
    try:
        return Module.deserialize_file(engine, str(path))
    except Exception:
        path.unlink(missing_ok=True)
        return None


def prepare(directory: Path | None = None) -> tuple[Path, float, bool]:
    """Compile the ZetaSQL module into the cache unless a usable copy is there. Returns the
    cached file, the seconds spent and whether it compiled."""
    from wasmtime import Module

    path = compiled_module_path(directory)
    engine = _engine()
    t0 = time.perf_counter()
    if _cached_module(path, engine) is not None:
        return path, time.perf_counter() - t0, False
    wasm, _ = _zetasql_paths()
    module = Module.from_file(engine, str(wasm))
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(f".tmp{os.getpid()}")
    tmp.write_bytes(module.serialize())
    os.replace(tmp, path)  # atomic: a concurrent reader sees the old file or the whole new one
    return path, time.perf_counter() - t0, True


class AnalyzerError(RuntimeError):
    """ZetaSQL refused a request (the message is the analyzer's)."""


class _Service:
    """ZetaSQL's local service inside wasmtime, called with protobuf messages.

    The calling convention (``wasm_malloc``/``wasm_free``, ``ZetaSqlLocalService_<Method>(request,
    size, &response_size)`` returning NULL and ``wasm_get_last_error`` on failure) is the one of
    the pinned ``zetasql`` package's ``zetasql.core.wasm_client``; here request and response bytes
    are copied with one ``memmove`` instead of one Python call per byte."""

    def __init__(self, compiled: Path):
        from wasmtime import Linker, Module, Store, WasiConfig

        wasi = WasiConfig()
        wasi.inherit_stdout()
        wasi.inherit_stderr()
        with contextlib.suppress(ImportError):
            import tzdata

            zoneinfo = Path(tzdata.__file__).parent / "zoneinfo"
            if zoneinfo.is_dir():
                wasi.preopen_dir(str(zoneinfo), "/usr/share/zoneinfo")
        engine = _engine()
        self.store = Store(engine)
        self.store.set_wasi(wasi)
        module = Module.deserialize_file(engine, str(compiled))
        linker = Linker(engine)
        linker.define_wasi()
        self.exports = linker.instantiate(self.store, module).exports(self.store)
        with contextlib.suppress(KeyError):
            self.exports["_initialize"](self.store)
        self.memory = self.exports["memory"]
        self.lock = threading.Lock()

    def _base(self) -> int:
        # the module's memory is shared (a wasmtime SharedMemory: data_ptr() takes no store)
        return ctypes.cast(self.memory.data_ptr(), ctypes.c_void_p).value

    def call(self, method: str, request, response_type):
        data = request.SerializeToString()
        ex = self.exports
        with self.lock:
            req = ex["wasm_malloc"](self.store, max(len(data), 1))
            size_ptr = ex["wasm_malloc"](self.store, 4)
            try:
                ctypes.memmove(self._base() + req, data, len(data))
                resp = ex[f"ZetaSqlLocalService_{method}"](self.store, req, len(data), size_ptr)
                if resp == 0:
                    n = ex["wasm_get_last_error_size"](self.store)
                    err = ctypes.string_at(self._base() + ex["wasm_get_last_error"](self.store), n).decode("utf-8", "replace")
                    m = re.match(r"Code: (\d+), Message: (.*)", err, re.S)
                    raise AnalyzerError(m.group(2) if m else err)
                n = int.from_bytes(ctypes.string_at(self._base() + size_ptr, 4), "little")
                out = ctypes.string_at(self._base() + resp, n)
                ex["wasm_free"](self.store, resp)
            finally:
                ex["wasm_free"](self.store, req)
                ex["wasm_free"](self.store, size_ptr)
        return response_type.FromString(out)


# --------------------------------------------------------------------------- the analyzer


class _Pb:
    """The protobuf modules of the zetasql package, imported on first use."""

    def __init__(self):
        from zetasql.wasi._pb2.zetasql.local_service import local_service_pb2 as ls
        from zetasql.wasi._pb2.zetasql.parser import parse_tree_pb2  # noqa: F401 (registers AST types)
        from zetasql.wasi._pb2.zetasql.proto import options_pb2 as opts
        from zetasql.wasi._pb2.zetasql.proto import simple_catalog_pb2 as cat
        from zetasql.wasi._pb2.zetasql.public import options_pb2 as popts
        from zetasql.wasi._pb2.zetasql.public import parse_resume_location_pb2 as prl
        from zetasql.wasi._pb2.zetasql.public import simple_constant_pb2 as const
        from zetasql.wasi._pb2.zetasql.public import simple_table_pb2 as table
        from zetasql.wasi._pb2.zetasql.public import type_pb2 as types
        from zetasql.wasi._pb2.zetasql.public.functions import datetime_pb2 as dt
        from zetasql.wasi._pb2.zetasql.resolved_ast import resolved_node_kind_pb2 as rnk

        self.ls, self.opts, self.cat, self.popts, self.prl = ls, opts, cat, popts, prl
        self.const, self.table, self.types, self.rnk = const, table, types, rnk
        self.date_parts = {v.number: v.name for v in dt.DateTimestampPart.DESCRIPTOR.values}


_SIMPLE_KINDS = {
    "STRING": "TYPE_STRING",
    "BYTES": "TYPE_BYTES",
    "INT64": "TYPE_INT64",
    "FLOAT64": "TYPE_DOUBLE",
    "NUMERIC": "TYPE_NUMERIC",
    "BIGNUMERIC": "TYPE_BIGNUMERIC",
    "BOOL": "TYPE_BOOL",
    "DATE": "TYPE_DATE",
    "DATETIME": "TYPE_DATETIME",
    "TIME": "TYPE_TIME",
    "TIMESTAMP": "TYPE_TIMESTAMP",
    "JSON": "TYPE_JSON",
    "GEOGRAPHY": "TYPE_GEOGRAPHY",
    "INTERVAL": "TYPE_INTERVAL",
}
_KIND_NAMES = {v: k for k, v in _SIMPLE_KINDS.items()}


def _split_type_args(s: str) -> list[str]:
    parts, depth, cur = [], 0, ""
    for ch in s:
        if ch == "<":
            depth += 1
        elif ch == ">":
            depth -= 1
        if ch == "," and depth == 0:
            parts.append(cur.strip())
            cur = ""
        else:
            cur += ch
    if cur.strip():
        parts.append(cur.strip())
    return parts


class GoogleSQL:
    """One ZetaSQL analyzer (one wasm instance); reuse it: :meth:`shared`."""

    _shared: "GoogleSQL | None" = None
    _shared_lock = threading.Lock()

    def __init__(self, compiled: Path | None = None):
        t0 = time.perf_counter()
        if compiled is None:
            compiled, _, _ = prepare()
        self.pb = _Pb()
        self.service = _Service(compiled)
        self.start_seconds = time.perf_counter() - t0
        p = self.pb
        self.language = p.opts.LanguageOptionsProto(
            name_resolution_mode=p.popts.NAME_RESOLUTION_DEFAULT,
            product_mode=p.popts.PRODUCT_EXTERNAL,
            enabled_language_features=[p.popts.LanguageFeature.Value(f) for f in BIGQUERY_LANGUAGE_FEATURES],
            supported_statement_kinds=[p.rnk.ResolvedNodeKind.Value(k) for k in BIGQUERY_STATEMENT_KINDS],
            reserved_keywords=list(BIGQUERY_RESERVABLE_KEYWORDS),
        )
        self._options_cache: dict = {}

    @classmethod
    def shared(cls) -> "GoogleSQL":
        with cls._shared_lock:
            if cls._shared is None:
                cls._shared = cls()
            return cls._shared

    # ------------------------------------------------------------------ types

    def type_proto(self, t: str):
        """A GoogleSQL type name (``INT64``, ``NUMERIC(38, 9)``, ``ARRAY<STRING>``,
        ``STRUCT<a INT64>``) as a ``TypeProto``."""
        T = self.pb.types
        t = t.strip()
        u = t.upper()
        if u.startswith("ARRAY<") and u.endswith(">"):
            return T.TypeProto(type_kind=T.TYPE_ARRAY, array_type=T.ArrayTypeProto(element_type=self.type_proto(t[6:-1])))
        if u.startswith("STRUCT<") and u.endswith(">"):
            fields = []
            for part in _split_type_args(t[7:-1]):
                name, _, ftype = part.partition(" ")
                fields.append(T.StructFieldProto(field_name=name, field_type=self.type_proto(ftype)))
            return T.TypeProto(type_kind=T.TYPE_STRUCT, struct_type=T.StructTypeProto(field=fields))
        base = re.sub(r"\(.*\)$", "", u).strip()
        base = _TYPE_ALIASES.get(base, base)
        if base not in _SIMPLE_KINDS:
            raise ValueError(f"unsupported type {t!r}")
        return T.TypeProto(type_kind=T.TypeKind.Value(_SIMPLE_KINDS[base]))

    def type_name(self, proto) -> str:
        """``TypeProto`` -> GoogleSQL type name (no parameters)."""
        T = self.pb.types
        kind = T.TypeKind.Name(proto.type_kind)
        if proto.type_kind == T.TYPE_ARRAY:
            return f"ARRAY<{self.type_name(proto.array_type.element_type)}>"
        if proto.type_kind == T.TYPE_STRUCT:
            return "STRUCT<" + ", ".join(f"{f.field_name} {self.type_name(f.field_type)}" for f in proto.struct_type.field) + ">"
        return _KIND_NAMES.get(kind, kind.replace("TYPE_", ""))

    # ------------------------------------------------------------------ catalogs

    def _catalog_proto(self, catalog: Catalog, constants: dict[str, str]):
        p = self.pb
        by_path: dict = {}
        tables = []
        for t in catalog.tables:
            cols = [p.table.SimpleColumnProto(name=n, type=self.type_proto(ty)) for n, ty in t.columns]
            parts = t.name.split(".")
            if len(parts) == 3:
                by_path.setdefault(parts[0], {}).setdefault(parts[1], []).append(
                    p.table.SimpleTableProto(name=parts[2], column=cols, full_name=t.name)
                )
            else:  # a TEMP table of a script
                tables.append(p.table.SimpleTableProto(name=t.name, column=cols))
        sub = [
            p.cat.SimpleCatalogProto(name=proj, catalog=[p.cat.SimpleCatalogProto(name=ds, table=ts) for ds, ts in dsets.items()])
            for proj, dsets in by_path.items()
        ]
        return p.cat.SimpleCatalogProto(
            name="bigquery",
            table=tables,
            catalog=sub,
            constant=[p.const.SimpleConstantProto(name_path=[n], type=self.type_proto(ty)) for n, ty in constants.items()],
            builtin_function_options=p.opts.ZetaSQLBuiltinFunctionOptionsProto(language_options=self.language),
        )

    def _options(self, params: dict[str, str], in_handler: bool, system_variables: bool):
        """Analyzer options for one statement: BigQuery's language, the statement's query
        parameters, and (only when its text uses ``@@``: declaring them costs ~4 ms a request)
        BigQuery's system variables."""
        key = (tuple(sorted(params.items())), in_handler, system_variables)
        cached = self._options_cache.get(key)
        if cached is not None:
            return cached
        p = self.pb
        qp = p.opts.AnalyzerOptionsProto.QueryParameterProto
        sysvars = dict(SYSTEM_VARIABLES) if system_variables else {}
        if in_handler and system_variables:
            sysvars.update(HANDLER_SYSTEM_VARIABLES)
        self._options_cache[key] = p.opts.AnalyzerOptionsProto(
            language_options=self.language,
            query_parameters=[qp(name=k, type=self.type_proto(v)) for k, v in sorted(params.items())],
            system_variables=[
                p.opts.AnalyzerOptionsProto.SystemVariableProto(name_path=k.split("."), type=self.type_proto(v))
                for k, v in sysvars.items()
            ],
            error_message_mode=p.popts.ERROR_MESSAGE_ONE_LINE,
            parameter_mode=p.popts.PARAMETER_NAMED,
            preserve_column_aliases=True,
        )
        return self._options_cache[key]

    # ------------------------------------------------------------------ analysis

    def analyze(self, statements, catalog: Catalog) -> Analysis:
        """Analyze each :class:`~pipeline_sql.statements.Statement` (or plain SQL text) against
        ``catalog``. Never raises for bad SQL: every refusal is a :class:`Problem`."""
        t0 = time.perf_counter()
        run = _Run(self, catalog)
        try:
            for st in statements:
                run.statement(st)
        finally:
            run.close()
        run.result.seconds = time.perf_counter() - t0
        return run.result


def _loc(msg) -> tuple[int, int] | None:
    """The (start, end) byte range of an AST node: the first ``parse_location_range`` found
    walking up its ``parent`` chain."""
    while msg is not None:
        if msg.DESCRIPTOR.fields_by_name.get("parse_location_range") and msg.HasField("parse_location_range"):
            r = msg.parse_location_range
            return r.start, r.end
        if "parent" in msg.DESCRIPTOR.fields_by_name:
            msg = msg.parent
        else:
            return None
    return None


def _expr_type(node):
    """The ``TypeProto`` of a resolved expression node (kept on its ResolvedExprProto ancestor)."""
    while node is not None:
        f = node.DESCRIPTOR.fields_by_name
        if "type" in f and f["type"].message_type is not None and f["type"].message_type.name == "TypeProto":
            return node.type
        node = node.parent if "parent" in f else None
    raise ValueError("not an expression")


def _oneof(msg):
    """The set field of a proto ``oneof node`` wrapper (AnyAST.../AnyResolved...)."""
    name = msg.WhichOneof("node")
    return (name, getattr(msg, name)) if name else (None, None)


def _leaf(msg):
    """Descend ``Any...`` oneof wrappers to the concrete node."""
    name, inner = _oneof(msg)
    while inner is not None and inner.DESCRIPTOR.oneofs_by_name.get("node"):
        nxt_name, nxt = _oneof(inner)
        if nxt is None:
            break
        name, inner = nxt_name, nxt
    return name, inner


class _Run:
    """One :meth:`GoogleSQL.analyze` call: registered catalogs and results."""

    def __init__(self, gsql: GoogleSQL, catalog: Catalog):
        self.g = gsql
        self.pb = gsql.pb
        self.catalog = catalog
        self.result = Analysis()
        self._registered: dict[tuple, int] = {}
        self._names = frozenset(t.name for t in catalog.tables)

    def close(self) -> None:
        for cid in self._registered.values():
            with contextlib.suppress(Exception):
                self.g.service.call("UnregisterCatalog", self.pb.ls.UnregisterRequest(registered_id=cid), _Empty())
        self._registered.clear()

    def _catalog_id(self, constants: dict[str, str], temp: tuple[CatalogTable, ...]) -> int:
        key = (tuple(sorted(constants.items())), temp)
        if key not in self._registered:
            cat = Catalog(self.catalog.tables + temp)
            req = self.pb.ls.RegisterCatalogRequest(simple_catalog=self.g._catalog_proto(cat, constants))
            self._registered[key] = self.g.service.call("RegisterCatalog", req, self.pb.ls.RegisterResponse).registered_id
        return self._registered[key]

    # ------------------------------------------------------------------ one statement text

    def statement(self, st) -> None:
        original = getattr(st, "sql", st)
        label = getattr(st, "label", None) or (original.strip().splitlines() or [""])[0][:60]
        params = dict(getattr(st, "params", ()) or ())
        self.result.statements += 1
        ctx = _Ctx(sql=split_table_paths(original, self._names), original=original, label=label, params=params)
        try:
            script = self.g.service.call(
                "Parse",
                self.pb.ls.ParseRequest(sql_statement=ctx.sql, options=self.g.language, allow_script=True),
                self.pb.ls.ParseResponse,
            ).parsed_script
        except AnalyzerError as e:
            self.problem(ctx, f"does not parse: {e}", None)
            return
        self.block(ctx, script.statement_list_node.statement_list, in_handler=False)

    def problem(self, ctx: "_Ctx", message: str, offset: int | None) -> None:
        m = re.search(r"\[at (\d+):\d+\]", message)
        if m:
            line = int(m.group(1))
        elif offset is not None:
            line = ctx.sql.encode("utf-8")[:offset].count(b"\n") + 1
        else:
            line = None
        self.result.problems.append(Problem(ctx.label, ctx.original, message, line))

    def block(self, ctx: "_Ctx", statements, in_handler: bool) -> None:
        for stmt in statements:
            self.one(ctx, stmt, in_handler)

    def text(self, ctx: "_Ctx", node) -> str:
        r = _loc(node)
        raw = ctx.sql.encode("utf-8")
        return raw[r[0] : r[1]].decode("utf-8") if r else ""

    def one(self, ctx: "_Ctx", stmt, in_handler: bool) -> None:
        name, node = _oneof(stmt)
        if name != "ast_script_statement_node":
            self.resolve(ctx, stmt, in_handler)
            return
        kind, inner = _oneof(node)
        where = (_loc(inner) or (None,))[0]
        if kind == "ast_variable_declaration_node":
            names = [i.id_string for i in inner.variable_list.identifier_list]
            declared = self.text(ctx, _leaf(inner.type)[1]) if inner.HasField("type") else None
            default = self.text(ctx, _leaf(inner.default_value)[1]) if inner.HasField("default_value") else None
            typ = self.expression_type(ctx, default, declared, where, in_handler) if default else declared
            if typ is None:
                return
            for n in names:
                if n.lower() in (k.lower() for k in ctx.constants):
                    self.problem(ctx, f"variable {n} is declared twice", where)
                ctx.constants[n] = typ
        elif kind == "ast_single_assignment_node":
            var = inner.variable.id_string
            typ = next((t for k, t in ctx.constants.items() if k.lower() == var.lower()), None)
            if typ is None:
                self.problem(ctx, f"SET of undeclared variable {var}", where)
                return
            self.expression_type(ctx, self.text(ctx, _leaf(inner.expression)[1]), typ, where, in_handler)
        elif kind == "ast_begin_end_block_node":
            self.block(ctx, inner.statement_list_node.statement_list, in_handler)
            for h in inner.handler_list.exception_handler_list:
                self.block(ctx, h.statement_list.statement_list, True)
        elif kind == "ast_if_statement_node":
            self.expression_type(ctx, self.text(ctx, _leaf(inner.condition)[1]), "BOOL", where, in_handler)
            self.block(ctx, inner.then_list.statement_list, in_handler)
            for c in inner.elseif_clauses.elseif_clauses:
                self.expression_type(ctx, self.text(ctx, _leaf(c.condition)[1]), "BOOL", where, in_handler)
                self.block(ctx, c.body.statement_list, in_handler)
            if inner.HasField("else_list"):
                self.block(ctx, inner.else_list.statement_list, in_handler)
        else:
            self.problem(
                ctx,
                f"script statement {kind.removeprefix('ast_').removesuffix('_node')} is not analyzed "
                "(pipeline_sql.googlesql handles DECLARE, SET, BEGIN...END, IF); extend _Run.one",
                where,
            )

    def expression_type(self, ctx: "_Ctx", expr: str, want: str | None, where, in_handler: bool) -> str | None:
        """Analyze ``expr`` and return its type; with ``want``, it must coerce to that type (as
        a DECLARE default or a SET value must)."""
        got = self._analyze_expression(ctx, expr, in_handler)
        if isinstance(got, AnalyzerError):
            self.problem(ctx, f"expression {expr.strip()!r}: {got}", where)
            return None
        if want is None:
            return got
        base = re.sub(r"\(.*\)$", "", want.strip().upper())
        if got != base:
            # coerces when the supertype of (want, expr) is want: a literal or parameter may
            # coerce where a column of its type would not, exactly as in an assignment
            coerced = self._analyze_expression(ctx, f"IF(FALSE, CAST(NULL AS {want}), ({expr}\n))", in_handler)
            if isinstance(coerced, AnalyzerError) or coerced != base:
                self.problem(ctx, f"expression {expr.strip()!r} is {got}, which does not coerce to {want}", where)
                return None
        return want

    def _analyze(self, ctx: "_Ctx", in_handler: bool, **what):
        """One Analyze request (``sql_expression=`` or ``parse_resume_location=``) in the
        statement's context: its parameters, its variables, its TEMP tables."""
        resp = self.g.service.call(
            "Analyze",
            self.pb.ls.AnalyzeRequest(
                options=self.g._options(ctx.params, in_handler, ctx.system_variables),
                registered_catalog_id=self._catalog_id(ctx.constants, ctx.temp),
                **what,
            ),
            self.pb.ls.AnalyzeResponse,
        )
        self.result.resolved += 1
        return resp

    def _analyze_expression(self, ctx: "_Ctx", expr: str, in_handler: bool):
        try:
            resp = self._analyze(ctx, in_handler, sql_expression=expr)
        except AnalyzerError as e:
            return e
        _, node = _leaf(resp.resolved_expression)
        return self.g.type_name(_expr_type(node))

    def resolve(self, ctx: "_Ctx", stmt, in_handler: bool) -> None:
        start = (_loc(_leaf(stmt)[1]) or (0, 0))[0]
        try:
            resp = self._analyze(ctx, in_handler, parse_resume_location=self.pb.prl.ParseResumeLocationProto(input=ctx.sql, byte_position=start))
        except AnalyzerError as e:
            self.problem(ctx, str(e), start)
            return
        kind, node = _leaf(resp.resolved_statement)
        created = _created_table(self.g, kind, node)
        if created is None:
            return
        name, columns, is_temp, partition, cluster, load_options, is_external = created
        for msg in engine_rule_problems(self.g, columns, partition, cluster, load_options):
            self.problem(ctx, f"{name}: {msg}", start)
        declared = self.catalog.table(name)
        if declared is None:
            if is_temp or is_external:
                # a TEMP table, or an external table the script declares over files (the staging
                # layer's reader of the landing prefix): the script's later statements see it
                ctx.temp = ctx.temp + (CatalogTable(name, tuple(columns)),)
            else:
                self.problem(ctx, f"creates {name}, which pipeline_sql.schema does not declare", start)
            return
        self.result.checked_schemas += 1
        got = [(n, t) for n, t in columns]
        if [(n.lower(), t) for n, t in got] != [(n.lower(), t) for n, t in declared.columns]:
            self.problem(
                ctx,
                f"{name} gets columns {_cols(got)}; pipeline_sql.schema declares {_cols(declared.columns)}",
                start,
            )


def split_table_paths(sql: str, tables: frozenset[str] = frozenset()) -> str:
    """```p.d.t``` -> ```p`.`d`.`t```` for every back-quoted dotted name: BigQuery reads a
    back-quoted dotted name as a path, so its implicit alias is the table's own name (``t``), and
    an unqualified ``t`` in the query is then the table's row, not a column ``t``. Lines keep their
    numbers (a column in a message may be off by the added quotes)."""

    def repl(m: re.Match) -> str:
        name = m.group(1)
        return "`" + "`.`".join(name.split(".")) + "`" if "." in name else m.group(0)

    return re.sub(r"`([^`\n]+)`", repl, sql)


def _cols(cols) -> str:
    return "(" + ", ".join(f"{n} {t}" for n, t in cols) + ")"


class _Empty:
    @staticmethod
    def FromString(_b):
        return None


@dataclass
class _Ctx:
    sql: str  # the text analyzed: ``original`` with its table references split into paths
    original: str
    label: str
    params: dict[str, str]
    constants: dict[str, str] = field(default_factory=dict)
    temp: tuple[CatalogTable, ...] = ()

    @property
    def system_variables(self) -> bool:
        return "@@" in self.sql


#: ResolvedCreateStatementEnums.CreateScope.CREATE_TEMP
_CREATE_TEMP = 3


def _created_table(g: GoogleSQL, kind: str | None, node):
    """For a statement that creates or replaces a table or view: (full name, [(column, type)],
    is_temp, partition exprs, cluster exprs, file options (LOAD DATA, external table), is_external);
    else None."""
    if node is None:
        return None
    if kind in ("resolved_create_table_as_select_stmt_node", "resolved_create_table_stmt_node"):
        create = node.parent.parent
        cols = [(c.name, g.type_name(c.type)) for c in node.parent.column_definition_list]
        temp = create.create_scope == _CREATE_TEMP
        return ".".join(create.name_path), cols, temp, list(node.partition_by_list), list(node.cluster_by_list), None, False
    if kind in ("resolved_create_view_stmt_node",):
        base = node.parent
        create = base.parent
        cols = [(c.name, g.type_name(c.column.type)) for c in base.output_column_list]
        return ".".join(create.name_path), cols, create.create_scope == _CREATE_TEMP, [], [], None, False
    if kind == "resolved_create_external_table_stmt_node":
        base = node.parent
        create = base.parent
        cols = [(c.name, g.type_name(c.type)) for c in base.column_definition_list]
        cols += [(c.name, g.type_name(c.type)) for c in node.with_partition_columns.column_definition_list]
        return ".".join(create.name_path), cols, create.create_scope == _CREATE_TEMP, [], [], list(base.option_list), True
    if kind == "resolved_aux_load_data_stmt_node":
        cols = [(c.name, g.type_name(c.type)) for c in node.column_definition_list]
        return ".".join(node.name_path), cols, node.is_temp_table, list(node.partition_by_list), list(node.cluster_by_list), list(node.from_files_option_list), False
    return None


def _literal(g: GoogleSQL, expr):
    """A resolved literal's Python value (STRING, INT64, BOOL, ARRAY of them, enum name), or
    a sentinel when the expression is not a literal."""
    kind, node = _leaf(expr)
    if kind != "resolved_literal_node":
        return _NOT_LITERAL
    v = node.value.value
    which = v.WhichOneof("value")
    if which == "array_value":
        return [_value(g, e) for e in v.array_value.element]
    return _value(g, v)


_NOT_LITERAL = object()


def _value(g: GoogleSQL, v):
    which = v.WhichOneof("value")
    if which is None:
        return None
    if which == "enum_value":
        return g.pb.date_parts.get(v.enum_value, v.enum_value)
    return getattr(v, which)


def engine_rule_problems(g: GoogleSQL, columns, partition, cluster, load_options) -> list[str]:
    """What BigQuery refuses in a created table that ZetaSQL accepts (see the constants above for
    each rule's documentation): column names, PARTITION BY forms, clustering, LOAD DATA options."""
    out: list[str] = []
    seen: set[str] = set()
    for n, _t in columns:
        up = n.upper()
        pre = next((p for p in RESERVED_COLUMN_PREFIXES if up.startswith(p)), None)
        if pre:
            out.append(f"column {n} starts with {pre}, a prefix BigQuery reserves")
        if len(n) > MAX_COLUMN_NAME:
            out.append(f"column name {n[:40]}... is longer than {MAX_COLUMN_NAME} characters")
        if n.lower() in seen:
            out.append(f"column {n} appears twice (BigQuery column names ignore case)")
        seen.add(n.lower())
    if len(partition) > 1:
        out.append("PARTITION BY takes one expression")
    for expr in partition:
        msg = _partition_problem(g, expr)
        if msg:
            out.append(msg)
    if len(cluster) > MAX_CLUSTER_COLUMNS:
        out.append(f"CLUSTER BY has {len(cluster)} columns; BigQuery clusters on at most {MAX_CLUSTER_COLUMNS}")
    for expr in cluster:
        kind, node = _leaf(expr)
        if kind != "resolved_column_ref_node":
            out.append("CLUSTER BY takes column names only")
            continue
        t = g.type_name(node.column.type)
        if t not in CLUSTER_TYPES:
            out.append(f"CLUSTER BY {node.column.name}: BigQuery cannot cluster on {t}; expected one of {', '.join(CLUSTER_TYPES)}")
    if load_options is not None:
        out += _load_option_problems(g, load_options)
    return out


def _partition_problem(g: GoogleSQL, expr) -> str | None:
    kind, node = _leaf(expr)
    if kind == "resolved_column_ref_node":
        t = g.type_name(node.column.type)
        if t == "DATE" or node.column.name.upper() == "_PARTITIONDATE":
            return None
        return f"PARTITION BY {node.column.name}: a bare column must be DATE (got {t}); use DATE(...) or TIMESTAMP_TRUNC(...)"
    if kind == "resolved_function_call_node":
        fn = node.parent.function.name.split(":")[-1].lower()
        args = list(node.parent.argument_list)
        first = _leaf(args[0]) if args else (None, None)
        col_type = g.type_name(first[1].column.type) if first[0] == "resolved_column_ref_node" else None
        if fn == "date" and len(args) == 1 and col_type in ("TIMESTAMP", "DATETIME"):
            return None
        if fn in PARTITION_TRUNC_UNITS and len(args) == 2:
            want, units = PARTITION_TRUNC_UNITS[fn]
            unit = _literal(g, args[1])
            if col_type == want and unit in units:
                return None
            return f"PARTITION BY {fn.upper()}({col_type or 'an expression'}, {unit}): BigQuery takes {fn.upper()}(<{want} column>, {'|'.join(units)})"
        if fn == "range_bucket" and col_type == "INT64":
            return None
        return f"PARTITION BY {fn.upper()}(...) is not a partitioning expression BigQuery accepts"
    return "PARTITION BY expression is not one BigQuery accepts (a DATE column, DATE(ts), TIMESTAMP_TRUNC, DATE_TRUNC, RANGE_BUCKET)"


def _load_option_problems(g: GoogleSQL, options) -> list[str]:
    out, values = [], {}
    for opt in options:
        name = opt.name.lower()
        value = _literal(g, opt.value)
        values[name] = value
        if name not in LOAD_OPTIONS:
            out.append(f"LOAD DATA option {opt.name} is not one this project knows BigQuery to take ({', '.join(sorted(LOAD_OPTIONS))})")
            continue
        want = LOAD_OPTIONS[name]
        got = g.type_name(_leaf(opt.value)[1].parent.type)
        if got != want:
            out.append(f"LOAD DATA option {opt.name} is {got}; expected {want}")
    fmt = values.get("format")
    if not isinstance(fmt, str) or fmt.upper() not in LOAD_FORMATS:
        out.append(f"LOAD DATA format {fmt!r}; expected one of {', '.join(LOAD_FORMATS)}")
    elif fmt.upper() != "CSV":
        for name in CSV_ONLY_LOAD_OPTIONS:
            if name in values:
                out.append(f"LOAD DATA option {name} only applies to CSV, the format is {fmt}")
    uris = values.get("uris")
    if not isinstance(uris, list) or not uris or not all(isinstance(u, str) and re.match(r"^(gs|s3)://[^/]+/", u) for u in uris):
        out.append(f"LOAD DATA uris {uris!r}; expected a non-empty list of gs://bucket/... URIs")
    elif any(u.count("*") > 1 for u in uris):
        out.append("LOAD DATA uris: BigQuery takes at most one '*' wildcard per URI")
    delim = values.get("field_delimiter")
    if delim is not None and (not isinstance(delim, str) or len(delim.encode("latin-1", "replace")) != 1) and delim != "\\t":
        out.append(f"LOAD DATA field_delimiter {delim!r}; expected one character")
    return out


# --------------------------------------------------------------------------- conveniences


def analyze_table(spec: TableSpec, naming: Naming, landing_uri: str = "gs://landing", gsql: GoogleSQL | None = None) -> Analysis:
    """Every statement flexyboots runs for ``spec`` under ``naming``, analyzed against a catalog of
    that spec's tables."""
    from .statements import table_statements

    gsql = gsql or GoogleSQL.shared()
    return gsql.analyze(table_statements(spec, naming, landing_uri), Catalog.for_specs([spec], [naming]))


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m pipeline_sql.googlesql", description=__doc__.split("\n\n")[0])
    p.add_argument("--prepare", action="store_true", help="compile ZetaSQL into the cache folder (make setup does this)")
    p.add_argument("--config-dir", default=str(ROOT / "config" / "tables"), help="analyze every statement of these specs")
    args = p.parse_args(argv)
    if args.prepare:
        path, seconds, compiled = prepare()
        verb = "compiled" if compiled else "already compiled"
        print(f"ZetaSQL {verb}: {path} ({seconds:.1f}s)")
        return 0
    from .spec import load_specs
    from .statements import project_statements

    specs = load_specs(args.config_dir)
    namings = [Naming(), Naming(project="acme-data-prod", env="prod")]
    gsql = GoogleSQL.shared()
    stmts = [s for n in namings for s in project_statements(specs, n, "gs://acme-landing")]
    res = gsql.analyze(stmts, Catalog.for_specs(specs, namings))
    for prob in res.problems:
        print(prob, end="\n\n")
    print(
        f"{res.statements} statements ({res.resolved} resolved, {res.checked_schemas} schemas compared) "
        f"in {res.seconds:.2f}s: {len(res.problems)} problems"
    )
    return 1 if res.problems else 0


if __name__ == "__main__":
    sys.exit(main())
