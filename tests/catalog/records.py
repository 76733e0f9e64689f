"""The records databuilder's FsNeo4jCSVLoader wrote (what Neo4jCsvPublisher would publish)."""

from __future__ import annotations

import csv
from pathlib import Path


def read_csvs(folder: Path) -> list[dict]:
    """Every row of the loader's CSV files in ``folder``, keys without their ``:TYPE`` suffix."""
    out = []
    for f in sorted(folder.glob("*.csv")):
        with open(f, newline="") as fh:
            out += [{k.split(":")[0]: v for k, v in row.items()} for row in csv.DictReader(fh)]
    return out
