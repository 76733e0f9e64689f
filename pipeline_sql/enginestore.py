"""How the embedded engine stores the layers that are rebuilt every run (staging, delta,
transform: :data:`~pipeline_sql.naming.TEMPORARY_LAYERS`): uncompressed, on disk.

DuckDB compresses every column it writes (dictionary, FSST, bit-packing...). For the archive
and the DWH, kept for good and read many times, that pays. A temporary layer's table is written
once, read once by the next layer and replaced by the next run: compressing it costs more than
it saves. Measured on the engine's own database file (1M rows, 2 cores): writing the delta's
1M string rows took 4.4-5.6 s compressed and 2.4-2.6 s uncompressed, the transform's 1M typed
rows 2.4-2.5 s and 1.0-1.2 s; a whole initial load of ``benchmarks/pipeline_bench.py`` cost
about a fifth less CPU. The price is disk: a 1M-row table's state takes about 630 MB instead
of about 200 MB (DuckDB reuses the freed space for the next run's temporary tables; the file
does not shrink).

The setting is DuckDB's ``force_compression = 'uncompressed'`` (global to the database), set
around each statement that writes a temporary layer's table (CREATE TABLE [AS], INSERT, a load
job's COPY) and reset after it. The emulator runs one statement at a time on one connection, so
no other statement sees it. Nothing a query returns changes, and nothing about durability: only
the bytes on disk. Only persistent state is stored this way (in memory there is no file).
"""

from __future__ import annotations

import re

from .naming import TEMPORARY_LAYERS

#: A translated (DuckDB) statement that writes a table of a temporary layer's dataset: the
#: emulator's schema for dataset ``<env>_<layer>`` or ``<layer>`` of project P is ``"P__<dataset>"``.
_WRITES_TEMPORARY = re.compile(
    r"^\s*(?:CREATE\s+(?:OR\s+REPLACE\s+)?TABLE|INSERT\s+INTO|COPY)\s+"
    r'"[^"]*__(?:[a-z][a-z0-9]{0,15}_)?(?:' + "|".join(TEMPORARY_LAYERS) + r')"\.',
    re.IGNORECASE,
)


def writes_temporary_layer(duckdb_sql: str) -> bool:
    """Whether a translated statement writes a table of staging, delta or transform."""
    return bool(_WRITES_TEMPORARY.match(duckdb_sql))


def store_temporary_layers_uncompressed(engine) -> None:
    """Make bqemulator's DuckDB engine (``server._engine``) write the temporary layers'
    tables uncompressed (see the module's text). Idempotent."""
    execute = engine.execute
    if getattr(execute, "_flexyboots_uncompressed", False):
        return

    # the setting is global to the database: set it through a second cursor, so the statement's
    # own result (read after this returns: fetch_arrow, row counts) stays on the connection
    side = engine.connection.cursor()

    def execute_uncompressed(sql, parameters=None):
        if not (isinstance(sql, str) and writes_temporary_layer(sql)):
            return execute(sql, parameters)
        side.execute("SET force_compression = 'uncompressed'")
        try:
            return execute(sql, parameters)
        finally:
            side.execute("RESET force_compression")

    execute_uncompressed._flexyboots_uncompressed = True
    # an instance attribute: fetch_arrow and every caller of this engine's execute go through it
    engine.execute = execute_uncompressed
