"""Spec evolution: what changed between the spec a table was last run with and the current one,
and whether the pipeline can apply it (pure: no BigQuery).

A table's *shape* (:func:`spec_shape`) is the part of its spec that decides what the archive and
the DWH hold: columns (with their archive names, types, ``required``), dropped columns, key,
``version_by``, derived columns and the DWH's partitioning and clustering. Its *version*
(:func:`spec_version`) is a short SHA-256 of that shape; checks, schedules and descriptions are
not part of it (they change no stored row). The runner records each version it applies in
``archive.<t>__specs`` and the version that archived each batch in ``archive.<t>__batches``.

:func:`spec_changes` compares two shapes and classifies every difference:

* ``in place``: applied by the next run (a nullable column added, a column renamed through
  ``renamed_from``, a column dropped with ``dropped: true`` whose archived values all cast, a
  derived column removed, ``required`` switched, clustering changed): ``ALTER TABLE`` locally,
  Pulumi's in-place schema update deployed;
* ``full refresh``: the rows already in the DWH must be rebuilt from the archive (a column's
  type; a dropped column some archived values of which failed its cast, whose versions become
  valid; a new or changed derived column, ``version_by``, the DWH's partitioning): a normal run
  refuses and names ``python -m pipeline_sql run --full-refresh --tables <t>``;
* ``refused``: nothing can apply it without losing history or meaning (a column removed from
  the spec instead of dropped, a new column declared ``required``, a changed key): the message
  names the change and the way forward.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from typing import Mapping

from .spec import TableSpec

IN_PLACE = "in place"
FULL_REFRESH = "full refresh"
REFUSED = "refused"


def spec_shape(spec: TableSpec) -> dict:
    """The data-deciding part of a spec, as plain JSON-able data (see the module docstring)."""
    part = spec.dwh.partition_by
    return {
        "key": [spec.column(k).archive_name for k in spec.key],
        "version_by": spec.version_by,
        "columns": [
            {"name": c.name, "archive_name": c.archive_name, "type": c.type, "required": spec.must_load(c)}
            for c in spec.columns
        ],
        "dropped": [{"name": c.name, "archive_name": c.archive_name, "type": c.type} for c in spec.dropped],
        "transform": [{"name": d.name, "type": d.type, "expr": d.expr} for d in spec.transform],
        "partition_by": [part.column, part.granularity] if part else None,
        "cluster_by": list(spec.dwh.cluster_by),
    }


def shape_json(shape: dict) -> str:
    return json.dumps(shape, sort_keys=True, separators=(",", ":"))


def spec_version(spec: TableSpec) -> str:
    """A short hash of the spec's shape: equal versions hold and produce the same data."""
    return hashlib.sha256(shape_json(spec_shape(spec)).encode("utf-8")).hexdigest()[:16]


@dataclass(frozen=True)
class SpecChange:
    kind: str  # add, rename, drop, retype, require, unrequire, remove, add_required, restore, ...
    subject: str  # the column (current name) or spec field concerned
    detail: str  # what changed, in words
    action: str  # IN_PLACE, FULL_REFRESH or REFUSED
    remedy: str = ""  # the way forward, for a change the next run cannot apply

    def describe(self) -> str:
        text = f"{self.detail} ({self.action})"
        return f"{text}: {self.remedy}" if self.remedy else text


def _by(items: list[dict], key: str) -> dict[str, dict]:
    return {i[key]: i for i in items}


def typed_drops(old: dict, new: dict) -> list[tuple[str, str]]:
    """(archive name, type) of each column ``new`` drops whose type is not STRING: archived
    values of it may have failed its cast, which :func:`spec_changes` needs to know."""
    n_live, n_drop = _by(new["columns"], "archive_name"), _by(new.get("dropped", []), "archive_name")
    return [(a, p["type"]) for a, p in _by(old["columns"], "archive_name").items() if a in n_drop and a not in n_live and p["type"] != "STRING"]


def spec_changes(old: dict, new: dict, table: str = "<table>", cast_failures: Mapping[str, int] | None = None) -> list[SpecChange]:
    """Every difference between two shapes (:func:`spec_shape`), classified.

    ``cast_failures``: for the columns of :func:`typed_drops`, how many archived versions hold a
    value that fails the column's cast (unknown columns count as some). Dropping such a column
    makes those versions valid again (they were rejects, kept out of the DWH), so it needs a full
    refresh; dropping one with none is in place."""
    out: list[SpecChange] = []
    refresh = f"run `python -m pipeline_sql run --full-refresh --tables {table}` (rebuilds transform and DWH from the archive)"
    o_live, n_live = _by(old["columns"], "archive_name"), _by(new["columns"], "archive_name")
    o_drop, n_drop = _by(old.get("dropped", []), "archive_name"), _by(new.get("dropped", []), "archive_name")
    for a, c in n_live.items():
        if a in o_live:
            p = o_live[a]
            if p["name"] != c["name"]:
                out.append(SpecChange("rename", c["name"], f"column {p['name']} renamed to {c['name']} (archived as {a})", IN_PLACE))
            if p["type"] != c["type"]:
                out.append(SpecChange("retype", c["name"], f"column {c['name']} changes type {p['type']} -> {c['type']}", FULL_REFRESH, refresh))
            if p["required"] != c["required"]:
                what = "now required in landed files" if c["required"] else "no longer required in landed files"
                out.append(SpecChange("require" if c["required"] else "unrequire", c["name"], f"column {c['name']} {what}", IN_PLACE))
        elif a in o_drop:
            out.append(SpecChange("restore", c["name"], f"dropped column {c['name']} is loaded again", FULL_REFRESH, refresh))
        elif c["required"]:
            out.append(
                SpecChange(
                    "add_required", c["name"], f"new column {c['name']} is required", REFUSED,
                    "files landed before it lack it and the DWH's existing rows have no value; declare it without "
                    "`required: true` (older versions read NULL), or load it into a new table",
                )
            )
        else:
            out.append(SpecChange("add", c["name"], f"new column {c['name']} ({c['type']}, NULL in older versions)", IN_PLACE))
    for a, p in o_live.items():
        if a in n_live:
            continue
        if a in n_drop:
            failing = None if cast_failures is None else cast_failures.get(a)
            if p["type"] == "STRING" or failing == 0:
                out.append(SpecChange("drop", p["name"], f"column {p['name']} dropped (leaves the DWH, stays in the archive)", IN_PLACE))
            else:
                # versions whose value failed the column's cast were kept out of the DWH (they are
                # rejects); without the column they are valid, and may be their key's latest
                count = "archived versions" if failing is None else f"{failing} archived version(s)"
                out.append(
                    SpecChange(
                        "drop", p["name"],
                        f"column {p['name']} dropped (leaves the DWH, stays in the archive); {count} whose {p['name']} "
                        f"failed its cast to {p['type']} were kept out of the DWH and are valid without it",
                        FULL_REFRESH, refresh,
                    )
                )
        else:
            out.append(
                SpecChange(
                    "remove", p["name"], f"column {p['name']} is no longer in the spec", REFUSED,
                    f"the archive holds its values under {a}: declare it with `dropped: true` to stop loading it, "
                    f"or give its new name `renamed_from: {p['name']}`",
                )
            )
    for a, p in o_drop.items():
        if a not in n_drop and a not in n_live:
            out.append(
                SpecChange(
                    "forget", p["name"], f"dropped column {p['name']} is no longer in the spec", REFUSED,
                    f"the archive still holds its values under {a}: keep it declared with `dropped: true`",
                )
            )
    if old["key"] != new["key"]:
        out.append(
            SpecChange(
                "key", "key", f"key changes {', '.join(old['key'])} -> {', '.join(new['key'])}", REFUSED,
                "a key change makes another table: create a new spec (table name) with the new key; its first run "
                "can reload the landed files",
            )
        )
    if old.get("version_by") != new.get("version_by"):
        out.append(SpecChange("version_by", "version_by", f"version_by changes {old.get('version_by')} -> {new.get('version_by')}", FULL_REFRESH, refresh))
    o_der, n_der = _by(old.get("transform", []), "name"), _by(new.get("transform", []), "name")
    for n, d in n_der.items():
        if n not in o_der:
            out.append(SpecChange("derive", n, f"new derived column {n}", FULL_REFRESH, refresh))
        elif o_der[n] != d:
            out.append(SpecChange("rederive", n, f"derived column {n} changes ({'type' if o_der[n]['type'] != d['type'] else 'expression'})", FULL_REFRESH, refresh))
    for n in o_der:
        if n not in n_der:
            out.append(SpecChange("underive", n, f"derived column {n} removed (leaves the DWH)", IN_PLACE))
    if old.get("partition_by") != new.get("partition_by"):
        out.append(
            SpecChange(
                "partition", "dwh.partition_by", f"DWH partitioning changes {old.get('partition_by')} -> {new.get('partition_by')}",
                FULL_REFRESH, refresh + "; deployed, the DWH table is replaced: see the README's migration path",
            )
        )
    if old.get("cluster_by") != new.get("cluster_by"):
        out.append(SpecChange("cluster", "dwh.cluster_by", f"DWH clustering changes {old.get('cluster_by')} -> {new.get('cluster_by')}", IN_PLACE))
    return out


def blocking(changes: list[SpecChange], full_refresh: bool) -> list[SpecChange]:
    """The changes a run cannot apply (``full_refresh``: a full refresh run)."""
    return [c for c in changes if c.action == REFUSED or (c.action == FULL_REFRESH and not full_refresh)]


def renamed_columns(old: dict, new: dict) -> list[tuple[str, str]]:
    """(old name, new name) of each renamed column."""
    o = _by(old["columns"], "archive_name")
    n = _by(new["columns"], "archive_name")
    return [(o[a]["name"], n[a]["name"]) for a in n if a in o and o[a]["name"] != n[a]["name"]]
