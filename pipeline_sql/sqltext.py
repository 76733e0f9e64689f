"""Text helpers shared by the SQL renderers (:mod:`pipeline_sql.render`, :mod:`pipeline_sql.checks`)."""

from __future__ import annotations

_ESCAPES = {"\\": "\\\\", "'": "\\'", "\n": "\\n", "\r": "\\r"}


def string_literal(s: str) -> str:
    """A GoogleSQL single-quoted string literal of ``s``. Backslash and quote are escaped, and so
    are newline and carriage return: GoogleSQL ends a quoted string at a raw line break ("Unclosed
    string literal"); the embedded engine decodes ``\\n`` and ``\\r`` as BigQuery does."""
    return "'" + "".join(_ESCAPES.get(ch, ch) for ch in s) + "'"
