"""Offline review of a change: the stack's plan at a git ref vs. the working tree.

    python -m stacks diff --stack S --against REF [--tables-dir D] [--format text|markdown|json] [--exit-code]

Plans the stack twice under Pulumi mocks, each side with its own code: REF in a temporary
``git worktree`` and the working tree as it is (``python -m stacks plan --json`` in both, run in
parallel), then compares the two plans with :func:`diff_plans`, a pure function over
``plan --json`` items, and reports:

* resources created, updated, replaced and deleted, grouped by component and table, with the
  input paths that changed (values as the plan prints them: secrets are ``[secret]``);
* replacements judged from the provider's rules (:mod:`stacks.replacement`: ForceNew attributes
  of terraform-provider-google, the BigQuery schema/partitioning rules), each with its source;
* **destructive** changes: a replacement or deletion of a protected resource (Pulumi ``protect``
  or deletion protection: ``pulumi up`` fails), or of data (datasets, buckets, disks, tables in
  the permanent archive/DWH datasets), each with what to do instead;
* per changed scheduled query or view, a unified diff of its SQL, per layer.

Formats: ``text``; ``markdown`` for a PR comment (SQL in collapsible sections, capped at GitHub's
comment size); ``json`` for tools. ``--exit-code``: 0 no changes, 2 changes, 3 destructive
changes; without it 0. Errors (bad ref, stack, spec, config) exit 1.

It needs no credentials and no Pulumi CLI, and it sees only what the program declares: where the
CLI and credentials exist, ``pulumi preview --diff`` (which asks the provider, against the real
state) remains the authority; this diff is what a reviewer can read on any machine.
"""

from __future__ import annotations

import argparse
import difflib
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Optional

from stacks.replacement import Reason, changed_paths, replacement_reasons, update_notes

TRANSFER = "gcp:bigquery/dataTransferConfig:DataTransferConfig"
TABLE = "gcp:bigquery/table:Table"
DATASET = "gcp:bigquery/dataset:Dataset"
PIPELINE = "flexyboots:table_pipeline:TablePipeline"
#: datasets whose tables are permanent data (the archive's history, the DWH)
PERMANENT_DATASETS = re.compile(r"(^|_)(archive|dwh)$")
DATA_TYPES = {
    DATASET: "dataset",
    "gcp:storage/bucket:Bucket": "bucket",
    "aws:s3/bucket:Bucket": "bucket",
    "aws:s3/bucketV2:BucketV2": "bucket",
    "gcp:compute/disk:Disk": "disk",
}
ACTIONS = ("create", "update", "replace", "delete")
COMMENT_LIMIT = 60000  # GitHub refuses comments over 65,536 characters


class DiffError(Exception):
    """A side could not be planned (bad ref, stack, spec or config)."""


@dataclass
class SqlDiff:
    resource: str  # address
    table: str
    layer: str
    diff: str  # unified diff text

    def as_dict(self) -> dict:
        return {"resource": self.resource, "table": self.table, "layer": self.layer, "diff": self.diff}


@dataclass
class Change:
    action: str
    type: str
    name: str
    component: str  # the top-level component's address ("" for stack-level resources)
    table: str  # the table pipeline it belongs to ("" if none)
    paths: list = field(default_factory=list)  # changed input paths
    values: dict = field(default_factory=dict)  # path -> (old, new), short scalars only
    reasons: list = field(default_factory=list)  # Reason: why it is replaced
    destructive: str = ""  # why it is destructive ("" if not)
    advice: str = ""
    notes: list = field(default_factory=list)
    rules_known: bool = True

    @property
    def address(self) -> str:
        return f"{self.type}::{self.name}"

    def as_dict(self) -> dict:
        return {
            "action": self.action, "type": self.type, "name": self.name, "component": self.component, "table": self.table,
            "paths": self.paths, "values": {k: list(v) for k, v in self.values.items()},
            "reasons": [r.as_dict() for r in self.reasons], "destructive": bool(self.destructive),
            "destructive_why": self.destructive, "advice": self.advice, "notes": self.notes, "rules_known": self.rules_known,
        }


@dataclass
class PlanDiff:
    changes: list
    sql: list
    stack: str = ""
    against: str = ""

    def of(self, action: str) -> list:
        return [c for c in self.changes if c.action == action]

    @property
    def destructive(self) -> list:
        return [c for c in self.changes if c.destructive]

    def get(self, address: str) -> Change:
        hits = [c for c in self.changes if c.address == address]
        if len(hits) != 1:
            raise KeyError(f"{address}: {len(hits)} changes")
        return hits[0]

    def summary(self) -> dict:
        s = {a: len(self.of(a)) for a in ACTIONS}
        s["destructive"] = len(self.destructive)
        return s

    def exit_code(self) -> int:
        return 3 if self.destructive else (2 if self.changes else 0)


# --------------------------------------------------------------------------- the pure core


def _index(items: list, side: str) -> dict:
    out = {}
    for i, it in enumerate(items):
        if not isinstance(it, dict) or not isinstance(it.get("type"), str) or not isinstance(it.get("name"), str):
            raise DiffError(f"{side} plan: item {i}: expected {{type, name, parent, inputs}}")
        out[f"{it['type']}::{it['name']}"] = it
    return out


def _ancestry(addr: str, index: dict) -> list:
    chain, seen = [], set()
    while addr in index and addr not in seen:
        seen.add(addr)
        parent = index[addr].get("parent") or ""
        if not parent or parent.startswith("pulumi:pulumi:Stack"):
            break
        chain.append(parent)
        addr = parent
    return chain


def _place(addr: str, index: dict) -> tuple:
    chain = _ancestry(addr, index)
    component = chain[-1] if chain else ""
    table = next((a.split("::", 1)[1] for a in [addr, *chain] if a.startswith(PIPELINE + "::")), "")
    return component, table


def _short(v: Any) -> Any:
    if isinstance(v, str):
        return v if len(v) <= 60 and "\n" not in v else None
    if isinstance(v, (int, float, bool)) or v is None:
        return v
    text = json.dumps(v, sort_keys=True)
    return v if len(text) <= 60 else None


def _get(d: Any, path: str) -> Any:
    for part in re.findall(r"[^.\[\]]+|\[\d+\]", path):
        if part.startswith("["):
            i = int(part[1:-1])
            d = d[i] if isinstance(d, list) and i < len(d) else None
        else:
            d = d.get(part) if isinstance(d, dict) else None
    return d


def _schema_change(old: Any, new: Any) -> str:
    """``+phone STRING, ~balance NUMERIC->STRING, -fax`` for a BigQuery schema change."""
    def cols(v: Any) -> dict:
        try:
            fields = json.loads(v) if isinstance(v, str) else (v or [])
        except ValueError:
            return {}
        return {f.get("name"): f for f in fields if isinstance(f, dict)}

    a, b = cols(old), cols(new)
    out = [f"+{n} {f.get('type')}" for n, f in b.items() if n not in a]
    out += [f"~{n} {a[n].get('type')}->{f.get('type')}" for n, f in b.items() if n in a and a[n].get("type") != f.get("type")]
    out += [f"~{n} mode {a[n].get('mode') or 'NULLABLE'}->{f.get('mode') or 'NULLABLE'}" for n, f in b.items()
            if n in a and (a[n].get("mode") or "NULLABLE") != (f.get("mode") or "NULLABLE")]
    out += [f"-{n}" for n in a if n not in b]
    return ", ".join(out) or "field details"


def _protected(item: Optional[dict]) -> str:
    if not item:
        return ""
    inputs = item.get("inputs") or {}
    if item.get("protect"):
        return "it is protected (Pulumi `protect`): `pulumi up` refuses to delete it"
    if inputs.get("deletionProtection") is True:
        return "it has deletion protection: the provider refuses to delete it"
    if inputs.get("deletionPolicy") == "PREVENT":
        return "its deletion policy is PREVENT: the provider refuses to delete it"
    return ""


def _holds_data(item: dict) -> str:
    t, inputs = item["type"], item.get("inputs") or {}
    if t in DATA_TYPES:
        return f"it is a {DATA_TYPES[t]}: deleting it deletes its data"
    if t == TABLE and not inputs.get("view") and not inputs.get("materializedView") and PERMANENT_DATASETS.search(str(inputs.get("datasetId", ""))):
        return f"{inputs.get('datasetId')}.{inputs.get('tableId')} holds permanent data (archive history / DWH)"
    return ""


def _archive_columns_dropped(type_: str, old_inputs: dict, new_inputs: dict) -> list:
    """Columns an in-place schema update removes from an archive table (permanent history)."""
    if type_ != TABLE or not re.search(r"(^|_)archive$", str(old_inputs.get("datasetId", ""))):
        return []

    def names(v: Any) -> list:
        try:
            fields = json.loads(v) if isinstance(v, str) else (v or [])
        except ValueError:
            return []
        return [f.get("name") for f in fields if isinstance(f, dict)]

    kept = set(names(new_inputs.get("schema")))
    return [n for n in names(old_inputs.get("schema")) if n not in kept]


def _advice(change: Change, old: dict) -> str:
    t, inputs = change.type, old.get("inputs") or {}
    paths = {r.path.split(".")[0] for r in change.reasons}
    if change.action == "delete":
        if t == TABLE:
            return ("removing a table spec drops its table: keep the spec (stop its schedule instead), or export the data and "
                    "remove the table from the stack deliberately (`pulumi state unprotect`, then delete)")
        return "keep the resource in the program, or move its data first and remove it deliberately (`pulumi state unprotect` if protected)"
    if t == TABLE and paths & {"timePartitioning", "rangePartitioning"}:
        return ("BigQuery cannot repartition a table in place: build a copy with the new partitioning "
                "(CREATE TABLE <t>__new PARTITION BY ... AS SELECT * FROM <t>), check it, swap the names, then `pulumi refresh`; "
                "or keep the current partitioning in the spec")
    if t == TABLE and "schema" in paths:
        return ("change the schema in steps BigQuery applies in place: add a new NULLABLE column and backfill it instead of "
                "changing a type or renaming; drop columns in a change of their own; for a widening type change run "
                "ALTER TABLE ... ALTER COLUMN ... SET DATA TYPE first so the provider sees no difference; a DWH table is "
                "rebuilt from the archive: create the new table, fill it with `run --full-refresh`, swap "
                "(README, 'Changing a spec')")
    if t == DATASET:
        return "a dataset's id and location are fixed: revert the change, or create a new dataset and copy the tables into it"
    return "revert the change to the immutable input, or migrate the data by hand before applying it"


def _sql_of(item: Optional[dict]) -> Optional[str]:
    if not item:
        return None
    inputs = item.get("inputs") or {}
    if item["type"] == TRANSFER:
        return (inputs.get("params") or {}).get("query")
    if item["type"] == TABLE:
        return (inputs.get("view") or {}).get("query") or (inputs.get("materializedView") or {}).get("query")
    return None


def _layer(item: dict, table: str) -> str:
    inputs = item.get("inputs") or {}
    if item["type"] == TABLE:
        return f"view {inputs.get('datasetId')}.{inputs.get('tableId')}"
    name = item["name"]
    m = re.search(rf"-{re.escape(table)}-(.+)$", name) if table else None
    return m.group(1) if m else name


def diff_plans(old_items: list, new_items: list) -> PlanDiff:
    """Compare two ``plan --json`` item lists (old = the base, new = the change); pure."""
    old, new = _index(old_items, "old"), _index(new_items, "new")
    changes, sql = [], []
    for addr in [*new, *(a for a in old if a not in new)]:
        o, n = old.get(addr), new.get(addr)
        item = n or o
        component, table = _place(addr, new if n else old)
        base = dict(type=item["type"], name=item["name"], component=component, table=table)
        if o is None:
            changes.append(Change(action="create", **base))
            continue
        if n is None:
            c = Change(action="delete", **base)
            why = _protected(o) or _holds_data(o)
            if why:
                c.destructive, c.advice = why, _advice(c, o)
            changes.append(c)
            continue
        oi, ni = o.get("inputs") or {}, n.get("inputs") or {}
        moved = (o.get("parent") or "") != (n.get("parent") or "")
        paths = changed_paths(oi, ni)
        if not paths and not moved and bool(o.get("protect")) == bool(n.get("protect")):
            continue
        c = Change(action="update", paths=paths, **base)
        for p in paths:
            if p == "schema" and item["type"] == TABLE:
                c.values[p] = (None, _schema_change(oi.get("schema"), ni.get("schema")))
                continue
            a, b = _short(_get(oi, p)), _short(_get(ni, p))
            if (a is not None or _get(oi, p) is None) and (b is not None or _get(ni, p) is None):
                c.values[p] = (a, b)
        if moved:
            c.reasons.append(Reason("parent", f"moves from {o.get('parent') or 'the stack'} to {n.get('parent') or 'the stack'} "
                                    "(a new URN: delete and create unless the program adds an alias)", "Pulumi URNs"))
        reasons = replacement_reasons(item["type"], oi, ni) if paths else []
        if reasons is None:
            c.rules_known = False
            c.notes.append(f"no replacement rules known for {item['type']}: `pulumi preview --diff` decides update or replace")
        else:
            c.reasons += reasons
        if c.reasons:
            c.action = "replace"
            why = _protected(o) or _holds_data(o)
            if why:
                c.destructive, c.advice = why, _advice(c, o)
        else:
            c.notes += update_notes(item["type"], paths)
            lost = _archive_columns_dropped(item["type"], oi, ni)
            if lost:  # in place, but the archived values of those columns are gone
                c.destructive = f"drops column(s) {', '.join(lost)} of {oi.get('datasetId')}.{oi.get('tableId')}: their archived values are deleted"
                c.advice = ("keep the column in the spec with `dropped: true` (it stops being loaded and leaves the DWH, the archive "
                            "keeps its values), or `renamed_from: <old name>` on its new name; see the README's 'Changing a spec'")
        changes.append(c)
        before, after = _sql_of(o), _sql_of(n)
        if before is not None and after is not None and before != after:
            text = "".join(difflib.unified_diff(
                before.splitlines(keepends=True), after.splitlines(keepends=True),
                fromfile=f"a/{addr}", tofile=f"b/{addr}", n=2))
            sql.append(SqlDiff(resource=addr, table=table, layer=_layer(n, table), diff=text))
    order = {a: i for i, a in enumerate(ACTIONS)}
    layers = {l: i for i, l in enumerate(("staging", "archive", "delta", "transform", "dwh"))}
    sql.sort(key=lambda q: (q.table, layers.get(q.layer, len(layers)), q.layer))
    changes.sort(key=lambda c: (not c.destructive, c.component, c.table, order[c.action], c.type, c.name))
    return PlanDiff(changes=changes, sql=sql)


# --------------------------------------------------------------------------- planning both sides


def _git(args: list, cwd: Path) -> str:
    r = subprocess.run(["git", *args], cwd=cwd, capture_output=True, text=True)
    if r.returncode != 0:
        raise DiffError(f"git {' '.join(args)}: {r.stderr.strip() or r.stdout.strip()}")
    return r.stdout.strip()


def _plan_cmd(stack: str, tables_dir: Optional[str]) -> list:
    cmd = [sys.executable, "-m", "stacks", "plan", "--stack", stack, "--json"]
    return cmd + (["--tables-dir", tables_dir] if tables_dir else [])


def _env() -> dict:
    return {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PYTHONSTARTUP")}


def plan_both(stack: str, against: str, tables_dir: Optional[str] = None, cwd: Optional[Path] = None) -> tuple:
    """(items at ``against``, items of the working tree), each planned with its own code."""
    root = Path(_git(["rev-parse", "--show-toplevel"], Path(cwd or Path.cwd())))
    try:
        commit = _git(["rev-parse", "--verify", "--quiet", f"{against}^{{commit}}"], root)
    except DiffError:
        raise DiffError(f"--against {against!r}: not a commit in {root} (fetch it first, e.g. `git fetch origin main`)") from None
    new_stack = subprocess.run(["git", "cat-file", "-e", f"{commit}:stacks/Pulumi.{stack}.yaml"], cwd=root, capture_output=True).returncode != 0
    if new_stack:  # the stack does not exist at the ref: everything is created
        p = subprocess.run(_plan_cmd(stack, tables_dir), cwd=root, env=_env(), capture_output=True, text=True)
        if p.returncode != 0:
            raise DiffError(f"planning {stack} at the working tree failed: {p.stderr.strip()[-1500:]}")
        return [], json.loads(p.stdout)
    tmp = Path(tempfile.mkdtemp(prefix="flexyboots-diff-"))
    tree = tmp / "tree"
    _git(["worktree", "add", "--detach", str(tree), commit], root)
    try:
        procs = {
            against: subprocess.Popen(_plan_cmd(stack, tables_dir), cwd=tree, env=_env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True),
            "working tree": subprocess.Popen(_plan_cmd(stack, tables_dir), cwd=root, env=_env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True),
        }
        out = {}
        for side, p in procs.items():
            stdout, stderr = p.communicate()
            if p.returncode != 0:
                raise DiffError(f"planning {stack} at {side} failed: {stderr.strip()[-1500:]}")
            try:
                out[side] = json.loads(stdout)
            except ValueError as e:
                raise DiffError(f"planning {stack} at {side}: `plan --json` printed no JSON ({e})") from None
        return out[against], out["working tree"]
    finally:
        subprocess.run(["git", "worktree", "remove", "--force", str(tree)], cwd=root, capture_output=True)
        shutil.rmtree(tmp, ignore_errors=True)


# --------------------------------------------------------------------------- rendering


def _fmt(v: Any) -> str:
    return "(none)" if v is None else (v if isinstance(v, str) else json.dumps(v, sort_keys=True))


def _path_list(c: Change, limit: int = 8) -> str:
    shown = []
    for p in c.paths[:limit]:
        if p == "schema" and c.type == TABLE and p in c.values:
            shown.append(f"schema: {c.values[p][1]}")
        else:
            shown.append(f"{p}: {_fmt(c.values[p][0])} -> {_fmt(c.values[p][1])}" if p in c.values else p)
    more = len(c.paths) - limit
    return ", ".join(shown) + (f", +{more} more" if more > 0 else "")


def _group(c: Change) -> str:
    if c.table:
        return f"table {c.table}"
    return c.component.split("::", 1)[-1] + f" ({c.component.split('::')[0].split(':')[-1]})" if c.component else "stack"


def render_text(d: PlanDiff) -> str:
    s = d.summary()
    lines = [f"flexyboots diff: stack {d.stack}, {d.against} -> working tree: "
             f"{s['create']} to create, {s['update']} to update, {s['replace']} to replace, {s['delete']} to delete"
             f" ({s['destructive']} destructive)"]
    if not d.changes:
        lines.append("no changes")
    sign = {"create": "+", "update": "~", "replace": "+-", "delete": "-"}
    group = None
    for c in d.changes:
        g = _group(c)
        if g != group:
            lines.append(f"{g}:")
            group = g
        flag = "  DESTRUCTIVE" if c.destructive else ""
        lines.append(f"  {sign[c.action]:>2} {c.action:<7} {c.address}{flag}")
        if c.paths:
            lines.append(f"       changed: {_path_list(c)}")
        for r in c.reasons:
            lines.append(f"       replaced because {r.path}: {r.why}  [{r.source}]")
        if c.destructive:
            lines.append(f"       destructive: {c.destructive}")
            lines.append(f"       instead: {c.advice}")
        for n in c.notes:
            lines.append(f"       note: {n}")
    for q in d.sql:
        lines.append("")
        lines.append(f"SQL {q.table or '-'} / {q.layer} ({q.resource}):")
        lines.append(q.diff.rstrip("\n"))
    return "\n".join(lines) + "\n"


def _md(s: str) -> str:
    return s.replace("|", "\\|").replace("\n", " ")


def render_markdown(d: PlanDiff, limit: int = COMMENT_LIMIT) -> str:
    s = d.summary()
    icon = ":rotating_light:" if s["destructive"] else (":pencil2:" if d.changes else ":white_check_mark:")
    lines = [f"### Infrastructure diff: `{d.stack}` ({d.against} → this branch) {icon}", "",
             f"**{s['create']}** to create · **{s['update']}** to update · **{s['replace']}** to replace · "
             f"**{s['delete']}** to delete · **{s['destructive']}** destructive", ""]
    if not d.changes:
        lines.append("No infrastructure changes.")
    for c in d.destructive:
        lines.append(f"> [!CAUTION]\n> **{c.action} `{c.address}`**: {_md(c.destructive)}."
                     + (f" Because: {_md('; '.join(f'{r.path}: {r.why}' for r in c.reasons))}." if c.reasons else "")
                     + f"\n> **Instead:** {_md(c.advice)}\n")
    if d.changes:
        lines += ["| group | action | resource | changed inputs / why |", "| --- | --- | --- | --- |"]
        for c in d.changes:
            why = _md(_path_list(c, 5)) if c.paths else ""
            if c.reasons:
                why += (" — " if why else "") + "**replaced**: " + _md("; ".join(f"{r.path} ({r.why})" for r in c.reasons))
            if c.notes:
                why += (" — " if why else "") + _md("; ".join(c.notes))
            action = f"**{c.action}** :warning:" if c.destructive else c.action
            lines.append(f"| {_md(_group(c))} | {action} | `{c.type.split(':')[-1]}` {_md(c.name)} | {why} |")
    body = "\n".join(lines) + "\n"
    if d.sql:
        body += "\n**SQL changes** (unified diffs per layer)\n\n"
        for q in d.sql:
            block = f"<details><summary>{q.table or '-'} · {q.layer}</summary>\n\n```diff\n{q.diff.rstrip()}\n```\n</details>\n"
            if len(body) + len(block) > limit - 200:
                body += f"\n_{len(d.sql) - d.sql.index(q)} more SQL diff(s) left out to fit a PR comment: run the diff locally._\n"
                break
            body += block
    foot = ("\n<sub>Offline plan under Pulumi mocks (`python -m stacks diff`); replacements judged from the provider's "
            "ForceNew rules and BigQuery's limits. `pulumi preview --diff` against the real state is the authority.</sub>\n")
    return body + foot


def render_json(d: PlanDiff) -> str:
    return json.dumps({"stack": d.stack, "against": d.against, "summary": d.summary(),
                       "changes": [c.as_dict() for c in d.changes], "sql": [q.as_dict() for q in d.sql]},
                      indent=2, sort_keys=True) + "\n"


RENDER = {"text": render_text, "markdown": render_markdown, "json": render_json}


# --------------------------------------------------------------------------- CLI


def add_parser(sub) -> None:
    p = sub.add_parser("diff", help="compare the stack's offline plan at a git ref with the working tree")
    p.add_argument("--stack", required=True, help="stack name: stacks/Pulumi.<stack>.yaml (each side its own)")
    p.add_argument("--against", required=True, help="git ref to compare with (a branch, tag or commit, e.g. origin/main)")
    p.add_argument("--tables-dir", help="table specs folder, relative to each side's tree (default: the stack's tables_dir)")
    p.add_argument("--format", choices=sorted(RENDER), default="text")
    p.add_argument("--exit-code", action="store_true", help="exit 0 no changes, 2 changes, 3 destructive changes")
    p.set_defaults(func=main)


def run(stack: str, against: str, tables_dir: Optional[str] = None, cwd: Optional[Path] = None) -> PlanDiff:
    old, new = plan_both(stack, against, tables_dir, cwd)
    d = diff_plans(old, new)
    d.stack, d.against = stack, against
    return d


def main(args: argparse.Namespace) -> int:
    try:
        d = run(args.stack, args.against, args.tables_dir)
    except DiffError as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    sys.stdout.write(RENDER[args.format](d))
    return d.exit_code() if args.exit_code else 0
