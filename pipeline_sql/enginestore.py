"""How the embedded engine writes each layer's tables to disk, chosen by measurement.

DuckDB compresses every column it writes: for each segment it analyzes the candidate methods
(dictionary, FSST, bit-packing...) and keeps the smallest. Two layers are written differently:

* **the temporary layers** (staging, delta, transform: :data:`~pipeline_sql.naming.TEMPORARY_LAYERS`),
  rebuilt every run, are stored **uncompressed**. Their table is written once, read once by the
  next layer and replaced by the next run: compressing it costs more than it saves. Measured on
  the engine's own database file (1M rows, 2 cores): writing the delta's 1M string rows took
  4.4-5.6 s compressed and 2.4-2.6 s uncompressed, the transform's 1M typed rows 2.4-2.5 s and
  1.0-1.2 s. The price is disk: about 430 MB more for a 1M-row table (DuckDB reuses the space
  for the next run's temporary tables; the file does not shrink).
* **the archive**, kept for good, is compressed **without dictionary compression**: its columns
  are mostly of high cardinality (the row hash, names, e-mails), where analyzing a dictionary
  is most of the write's cost and never wins. Writing 1M archive rows: 3.06 -> 1.94 s (medians
  of 5); the archive is about 40% larger (168 -> 236 blocks of 256 KB for 1M rows).

The DWH and everything else keep DuckDB's defaults. The settings are DuckDB's
``force_compression`` and ``disabled_compression_methods`` (global to the database), set
around each statement that writes such a table (CREATE TABLE [AS], INSERT, a load job's COPY)
and reset after it. The emulator runs one statement at a time on one connection, so no other
statement sees them.

A statement writes its rows to the database file itself only by whole row groups; the rest
(every write of a CDC batch: 15,000 rows against 16,384-row groups) waits in the write-ahead
log for **the checkpoint**, which writes every table's new rows at once, so no per-table setting
applies there. The engine checkpoints **without dictionary compression** (:func:`checkpoint`,
also when it stops): analyzing dictionaries was a third of a CDC run's checkpoint (two 15,000-row
tails: 44 -> 30 ms; a CDC run's checkpoint 111 -> 90 ms), and it leaves those rows compressed
(FSST, bit-packing...): the archive's as its own statements write them, the DWH's and temporary
layers' tails without a dictionary. Nothing a query returns changes, and nothing about
durability: only the bytes on disk. Only persistent state is written this way (in memory there
is no file).
"""

from __future__ import annotations

import contextlib
import re

from .naming import TEMPORARY_LAYERS

#: The DuckDB setting a statement writing a layer's table runs with: layer -> (setting, value).
LAYER_STORAGE = {
    **{layer: ("force_compression", "uncompressed") for layer in TEMPORARY_LAYERS},
    "archive": ("disabled_compression_methods", "dictionary"),
}

#: The setting every checkpoint of the engine runs with (see the module's text).
CHECKPOINT_STORAGE = ("disabled_compression_methods", "dictionary")

#: A translated (DuckDB) statement that writes a table of a layer's dataset: the emulator's
#: schema for dataset ``<env>_<layer>`` or ``<layer>`` of project P is ``"P__<dataset>"``.
_WRITES = re.compile(
    r"^\s*(?:CREATE\s+(?:OR\s+REPLACE\s+)?TABLE|INSERT\s+INTO|COPY)\s+"
    r'"[^"]*__(?:[a-z][a-z0-9]{0,15}_)?(' + "|".join(LAYER_STORAGE) + r')"\.',
    re.IGNORECASE,
)


def written_layer(duckdb_sql: str) -> str | None:
    """The layer (of :data:`LAYER_STORAGE`) whose table a translated statement writes, if any."""
    m = _WRITES.match(duckdb_sql)
    return m.group(1).lower() if m else None


def store_layers(engine) -> None:
    """Make bqemulator's DuckDB engine (``server._engine``) write each layer's tables as
    :data:`LAYER_STORAGE` says (see the module's text). Idempotent."""
    execute = engine.execute
    if getattr(execute, "_flexyboots_layer_storage", False):
        return
    # the settings are global to the database: set them through a second cursor, so the
    # statement's own result (read after this returns: fetch_arrow, row counts) stays on the
    # connection
    side = engine.connection.cursor()

    def execute_stored(sql, parameters=None):
        layer = written_layer(sql) if isinstance(sql, str) else None
        if layer is None:
            return execute(sql, parameters)
        with _setting(side, *LAYER_STORAGE[layer]):
            return execute(sql, parameters)

    execute_stored._flexyboots_layer_storage = True
    # an instance attribute: fetch_arrow and every caller of this engine's execute go through it
    engine.execute = execute_stored


def checkpoint(connection) -> None:
    """DuckDB ``CHECKPOINT`` with :data:`CHECKPOINT_STORAGE` set, and reset after it."""
    with _setting(connection, *CHECKPOINT_STORAGE):
        connection.execute("CHECKPOINT")


@contextlib.contextmanager
def _setting(cursor, setting: str, value: str):
    """DuckDB ``SET setting = 'value'`` on ``cursor`` while the block runs, ``RESET`` after it."""
    cursor.execute(f"SET {setting} = '{value}'")
    try:
        yield
    finally:
        cursor.execute(f"RESET {setting}")
