"""Lineage of the five layers, from the specs (pure): table level and column level.

Table level, per table: the landed files -> ``staging`` -> ``archive`` -> ``delta`` ->
``transform`` -> ``dwh``, plus the ``quality.<t>__rejects`` view over the archive, the checks
step writing ``quality.check_results`` (reading the DWH and, for ``relationships`` checks, the
DWH of the referenced tables) and the references between DWH tables those checks declare.

Column level: every DWH column back to its landed source column(s), one hop per layer. The
hops staging -> archive (the rename) and the identity hops follow from the spec (the rendered
SQL is built from it); the transform hop is read from the rendered transform SQL with
sqlglot's column lineage (``sqlglot.lineage.lineage``), so a derived column such as
``email_domain = LOWER(SPLIT(email, '@')[SAFE_OFFSET(1)])`` is traced to exactly the columns
its expression reads. ``_row_hash`` is traced to every business column (a masking hash).

    lineage = build_lineage(specs, naming, landing_uri="gs://acme-dev-landing")
    lineage.trace("dwh.customers", "email_domain")   # -> [[(dataset, column), ...] per source]
    table_diagram(lineage, "customers").to_mermaid()

``python -m pipeline_sql lineage [TABLE] --format mermaid|dot|json|openlineage`` prints these;
:mod:`pipeline_sql.openlineage` turns them into OpenLineage run events.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import lru_cache

from .diagram import Diagram, shorten
from .naming import LAYERS, Naming
from .render import render_transform
from .schema import ARCHIVE_META, DWH_META, META_DESCRIPTIONS
from .spec import TableSpec

#: The steps of one table, in run order: the five layers, then the checks.
STEPS = LAYERS + ("checks",)
RESULTS = "quality.check_results"
#: column-hop kinds (OpenLineage: all DIRECT; subtype IDENTITY for the first two)
HOP_KINDS = ("identity", "rename", "cast", "derived", "hash")


class LineageError(ValueError):
    """The lineage of a spec cannot be derived (names the table and column)."""


@dataclass(frozen=True)
class Dataset:
    """A table, view or the landed files of one table, in one layer."""

    id: str  # "<layer>.<table><suffix>", or "landing.<table>" for files
    layer: str  # landing | staging | archive | delta | transform | dwh | quality
    table: str  # the spec's table ("" for the shared check_results)
    kind: str  # files | table | view
    #: where it lives: a BigQuery table id (project.dataset.table) or a gs:// pattern
    location: str
    columns: tuple[tuple[str, str], ...]  # (name, type)
    description: str = ""
    #: column -> description (the spec's, or the pipeline's own for its ``_`` columns)
    descriptions: dict = field(default_factory=dict, compare=False)


@dataclass(frozen=True)
class Step:
    """One job: a layer (or the checks, or a view's definition) of one table."""

    name: str  # "<table>.<layer>"
    table: str
    layer: str  # one of STEPS, or "rejects" for the view
    inputs: tuple[str, ...]  # dataset ids
    outputs: tuple[str, ...]
    statement: str  # what it runs, in words: LOAD DATA, INSERT, CREATE OR REPLACE TABLE, MERGE, ...


@dataclass(frozen=True)
class Hop:
    """One column's value flowing from a column of one dataset into a column of the next."""

    source: tuple[str, str]  # (dataset id, column)
    target: tuple[str, str]
    kind: str  # one of HOP_KINDS
    detail: str = ""  # the rename, the cast or the expression


@dataclass(frozen=True)
class Reference:
    """A ``relationships`` check: every ``source`` value exists in ``target`` (another DWH key)."""

    source: tuple[str, str]
    target: tuple[str, str]
    check: str
    severity: str


@dataclass
class Lineage:
    naming: Naming
    landing_uri: str
    datasets: dict[str, Dataset] = field(default_factory=dict)
    steps: list[Step] = field(default_factory=list)
    hops: list[Hop] = field(default_factory=list)
    references: list[Reference] = field(default_factory=list)
    tables: tuple[str, ...] = ()
    #: per table, the names of its checks (spec order)
    checks: dict[str, tuple[str, ...]] = field(default_factory=dict)
    #: per table, (key columns, version_by) and the key's source column names
    keys: dict[str, tuple[tuple[str, ...], str | None]] = field(default_factory=dict)
    raw_keys: dict[str, tuple[str, ...]] = field(default_factory=dict)

    def hops_into(self, dataset: str, column: str) -> list[Hop]:
        return [h for h in self.hops if h.target == (dataset, column)]

    def trace(self, dataset: str, column: str) -> list[list[tuple[str, str]]]:
        """Every path from a landed source column to ``(dataset, column)``, source first."""
        if dataset not in self.datasets:
            raise LineageError(f"{dataset}: not a dataset of this lineage; expected one of: {', '.join(sorted(self.datasets))}")
        if column not in dict(self.datasets[dataset].columns):
            raise LineageError(f"{dataset}: {column!r} is not one of its columns; expected one of: {', '.join(n for n, _ in self.datasets[dataset].columns)}")
        into = self.hops_into(dataset, column)
        if not into:
            return [[(dataset, column)]]
        return [path + [(dataset, column)] for h in into for path in self.trace(*h.source)]

    def sources(self, dataset: str, column: str) -> list[tuple[str, str]]:
        """The landed columns ``(dataset, column)`` is computed from (sorted, unique)."""
        return sorted({path[0] for path in self.trace(dataset, column)})

    def step(self, table: str, layer: str) -> Step:
        for s in self.steps:
            if s.table == table and s.layer == layer:
                return s
        raise LineageError(f"{table}: no {layer} step")

    def to_json(self) -> dict:
        """Everything, plus per DWH column its landed sources and each path to them."""
        dwh = {}
        for t in self.tables:
            ds = f"dwh.{t}"
            dwh[t] = {
                col: {
                    "sources": [f"{d}.{c}" for d, c in self.sources(ds, col)],
                    "paths": [[f"{d}.{c}" for d, c in p] for p in self.trace(ds, col)],
                }
                for col, _ in self.datasets[ds].columns
                if self.hops_into(ds, col)
            }
        return {
            "project": self.naming.project,
            "env": self.naming.env,
            "tables": list(self.tables),
            "datasets": [
                {
                    "id": d.id, "layer": d.layer, "table": d.table, "kind": d.kind, "location": d.location,
                    "columns": [{"name": n, "type": t} for n, t in d.columns], "description": d.description,
                }
                for d in self.datasets.values()
            ],
            "steps": [
                {"name": s.name, "table": s.table, "layer": s.layer, "inputs": list(s.inputs), "outputs": list(s.outputs), "statement": s.statement}
                for s in self.steps
            ],
            "column_hops": [
                {"from": f"{h.source[0]}.{h.source[1]}", "to": f"{h.target[0]}.{h.target[1]}", "kind": h.kind, "detail": h.detail}
                for h in self.hops
            ],
            "references": [
                {"from": f"{r.source[0]}.{r.source[1]}", "to": f"{r.target[0]}.{r.target[1]}", "check": r.check, "severity": r.severity}
                for r in self.references
            ],
            "dwh_columns": dwh,
        }


# --------------------------------------------------------------------------- building


def build_lineage(specs: list[TableSpec], naming: Naming | None = None, landing_uri: str = "gs://landing", tables: list[str] | None = None) -> Lineage:
    """The lineage of ``specs`` (all of them, or only ``tables`` and what their checks reference)."""
    naming = naming or Naming()
    by_name = {s.table: s for s in specs}
    chosen = list(tables) if tables else [s.table for s in specs]
    for t in chosen:
        if t not in by_name:
            raise LineageError(f"{t}: no such table; expected one of: {', '.join(sorted(by_name))}")
    lin = Lineage(naming=naming, landing_uri=landing_uri.rstrip("/"), tables=tuple(chosen))
    from .checks import RESULTS_FIELDS

    lin.datasets[RESULTS] = Dataset(
        RESULTS, "quality", "", "table", naming.table_id("quality", "check_results"),
        tuple((n, t) for n, t, _, _ in RESULTS_FIELDS),
        "the result of every data-quality check of every run",
    )
    for t in chosen:
        _add_table(lin, by_name[t], by_name)
    return lin


def _add_dataset(lin: Lineage, spec: TableSpec, layer: str, columns, suffix: str = "", kind: str = "table", description: str = "") -> str:
    n = lin.naming
    did = f"{layer}.{spec.table}{suffix}"
    location = f"{lin.landing_uri}/{spec.source.path}*" if layer == "landing" else n.table_id(layer, spec.table, suffix)
    about = {c.source: c.description for c in spec.columns} if layer in ("landing", "staging") else {}
    about |= {c.name: c.description for c in spec.columns} if layer not in ("landing", "staging") else {}
    about |= {d.name: d.description for d in spec.transform} | META_DESCRIPTIONS
    names = {c for c, _ in columns}
    descriptions = {k: v for k, v in about.items() if v and k in names}
    lin.datasets.setdefault(did, Dataset(did, layer, spec.table, kind, location, tuple(columns), description, descriptions))
    return did


def _add_table(lin: Lineage, spec: TableSpec, by_name: dict[str, TableSpec]) -> None:
    t = spec.table
    raw = [(c.source, "STRING") for c in spec.columns]
    renamed = [(c.name, "STRING") for c in spec.columns]
    # the archive keeps each column under its first name, dropped columns included
    archived = [(c.archive_name, "STRING") for c in spec.archive_columns]
    typed = list(spec.dwh_columns)
    meta = list(ARCHIVE_META)
    files = _add_dataset(lin, spec, "landing", raw, kind="files", description=f"{t}: landed {spec.source.format} files")
    staging = _add_dataset(lin, spec, "staging", raw)
    archive = _add_dataset(lin, spec, "archive", archived + meta)
    delta = _add_dataset(lin, spec, "delta", renamed + meta + [("_valid", "BOOL"), ("_through", "TIMESTAMP")])
    transform = _add_dataset(lin, spec, "transform", typed + meta + [("_through", "TIMESTAMP")])
    dwh = _add_dataset(lin, spec, "dwh", typed + list(DWH_META), description=spec.description)
    rejects = _add_dataset(
        lin, spec, "quality",
        [(k, "STRING") for k in spec.key] + [("column_name", "STRING"), ("value", "STRING"), ("reason", "STRING")] + meta,
        suffix="__rejects", kind="view",
    )
    lin.checks[t] = tuple(ch.name for ch in spec.checks)
    lin.keys[t] = (spec.key, spec.version_by)
    lin.raw_keys[t] = tuple(spec.column(k).source for k in spec.key)
    refs = [ch for ch in spec.checks if ch.kind == "relationships"]
    ref_dwh = []
    for ch in refs:
        other = by_name[ch.ref_table]
        ref_dwh.append(_add_dataset(lin, other, "dwh", list(other.dwh_columns) + list(DWH_META), description=other.description))

    def step(layer: str, inputs, outputs, statement: str) -> None:
        lin.steps.append(Step(f"{t}.{layer}", t, layer, tuple(inputs), tuple(outputs), statement))

    step("staging", [files], [staging], "LOAD DATA OVERWRITE (locally: a load job per new file)")
    step("archive", [staging], [archive], "INSERT new (key, _row_hash) versions")
    step("delta", [archive, dwh], [delta], "CREATE OR REPLACE TABLE: latest valid version per key newer than the DWH")
    step("transform", [delta], [transform], "CREATE OR REPLACE TABLE: SAFE_CAST + derived columns")
    step("dwh", [transform], [dwh], "MERGE on the key")
    step("checks", [dwh] + list(dict.fromkeys(ref_dwh)), [RESULTS], f"INSERT the results of {len(spec.checks)} checks")
    step("rejects", [archive], [rejects], "VIEW: archived values failing their declared type")

    def hop(src, dst, kind: str, detail: str = "") -> None:
        lin.hops.append(Hop(src, dst, kind, detail))

    for c in spec.columns:
        hop((files, c.source), (staging, c.source), "identity", "loaded as STRING")
        a = c.archive_name
        hop((staging, c.source), (archive, a), "rename" if c.source != a else "identity", f"{c.source} AS {a}" if c.source != a else "")
        hop((archive, a), (delta, c.name), "rename" if a != c.name else "identity", f"{a} AS {c.name}" if a != c.name else "")
    for c in spec.columns:
        hop((staging, c.source), (archive, "_row_hash"), "hash", "MD5 over the renamed business columns")
    hop((archive, "_row_hash"), (delta, "_row_hash"), "identity")
    for name, kind, detail, sources in transform_hops(spec, lin.naming):
        for s in sources:
            hop((delta, s), (transform, name), kind, detail)
    hop((delta, "_row_hash"), (transform, "_row_hash"), "identity")
    for name, _ in typed + [("_row_hash", "STRING")]:
        hop((transform, name), (dwh, name), "identity", "MERGE")
    for k in spec.key:
        hop((archive, spec.column(k).archive_name), (rejects, k), "identity")
    for c in spec.columns:
        if c.type != "STRING":
            hop((archive, c.archive_name), (rejects, "value"), "identity", f"{c.archive_name} when it is not a valid {c.type}")
    for ch in refs:
        lin.references.append(Reference((dwh, ch.columns[0]), (f"dwh.{ch.ref_table}", ch.ref_column), ch.name, ch.severity))


def transform_hops(spec: TableSpec, naming: Naming) -> list[tuple[str, str, str, tuple[str, ...]]]:
    """Per transform column: (column, kind, detail, the delta columns it is computed from),
    read from the rendered transform SQL with sqlglot's column lineage."""
    return list(_transform_hops(spec, naming))


@lru_cache(maxsize=512)
def _transform_hops(spec: TableSpec, naming: Naming) -> tuple:
    import sqlglot
    from sqlglot import exp
    from sqlglot.errors import SqlglotError
    from sqlglot.lineage import lineage as column_lineage

    sql = render_transform(spec, naming)
    try:
        statements = sqlglot.parse(sql, read="bigquery")
    except SqlglotError as e:
        raise LineageError(f"{spec.file or spec.table}: transform: sqlglot cannot parse the rendered SQL: {e}") from e
    create = next(s for s in statements if isinstance(s, exp.Create))
    select = create.expression
    delta_table = naming.table_id("delta", spec.table)
    project, dataset, table = delta_table.split(".")
    delta_cols = {c.name: "STRING" for c in spec.columns} | {n: t for n, t in ARCHIVE_META} | {"_valid": "BOOL", "_through": "TIMESTAMP"}
    schema = {project: {dataset: {table: delta_cols}}}
    derived = {d.name: d for d in spec.transform}
    out = []
    for name, typ in spec.dwh_columns:
        try:
            node = column_lineage(name, select, schema=schema, dialect="bigquery")
        except SqlglotError as e:
            raise LineageError(f"{spec.file or spec.table}: transform: {name}: sqlglot cannot trace the column: {e}") from e
        sources = []
        for leaf in node.walk():
            if leaf.downstream:
                continue
            src = leaf.source
            if isinstance(src, exp.Table) and src.name == table and src.db == dataset:
                sources.append(leaf.name.split(".")[-1])
        sources = tuple(sorted(set(sources)))
        if name in derived:
            out.append((name, "derived", derived[name].expr, sources))
        else:
            if sources != (name,):
                raise LineageError(f"{spec.file or spec.table}: transform: {name}: expected to come from delta.{name}, sqlglot found {sources}")
            out.append((name, "cast" if typ != "STRING" else "identity", f"SAFE_CAST AS {typ}" if typ != "STRING" else "", sources))
    return tuple(out)


# --------------------------------------------------------------------------- pictures

_LAYER_TITLES = {
    "landing": "landed files",
    "staging": "staging",
    "archive": "archive",
    "delta": "delta",
    "transform": "transform",
    "dwh": "dwh",
    "quality": "quality",
}
_CLASSES = {
    "derived": "fill:#fff3cd,stroke:#b8860b",
    "files": "fill:#e8f4fd,stroke:#4a90d9",
    "quality": "fill:#fde8e8,stroke:#c0392b",
}


def table_diagram(lin: Lineage, table: str) -> Diagram:
    """One table's path through the layers, column by column: a cluster per layer holding the
    columns that carry the table's values (the pipeline's bookkeeping columns left out),
    edges labelled with the rename, cast or expression; the rejects view, the checks and the
    tables its ``relationships`` checks reference."""
    if table not in lin.tables:
        raise LineageError(f"{table}: not in this lineage; expected one of: {', '.join(lin.tables)}")
    d = Diagram(direction="LR", classes=dict(_CLASSES))
    mine = [ds for ds in lin.datasets.values() if ds.table == table and ds.layer != "quality"]
    shown: set[tuple[str, str]] = set()
    for h in lin.hops:
        if h.source[0].split(".", 1)[1] == table and h.target[0].split(".", 1)[1] == table and h.kind != "hash" and not h.target[1].startswith("_"):
            shown |= {h.source, h.target}
    for ds in mine:
        title = f"{_LAYER_TITLES[ds.layer]}: {ds.location}" if ds.layer == "landing" else f"{ds.layer}.{table}"
        d.cluster(ds.id, title)
        for name, typ in ds.columns:
            if (ds.id, name) in shown:
                css = "derived" if any(h.kind == "derived" for h in lin.hops_into(ds.id, name)) else None
                if ds.layer == "landing":
                    css = "files"
                d.node(f"{ds.id}.{name}", f"{name}\n{typ}", "round", ds.id, css)
    for h in lin.hops:
        if h.source in shown and h.target in shown and h.kind != "hash":
            label = {"rename": "rename", "cast": h.detail.replace("SAFE_CAST AS ", "cast "), "derived": shorten(h.detail, 48)}.get(h.kind, "")
            d.edge(f"{h.source[0]}.{h.source[1]}", f"{h.target[0]}.{h.target[1]}", label, "thick" if h.kind == "derived" else "solid")
    rejects = f"quality.{table}__rejects"
    d.node(rejects, f"quality.{table}__rejects\n(view: values failing their type)", "view", css="quality")
    d.edge(f"archive.{table}", rejects, "SAFE_CAST fails", "dashed")
    d.node(RESULTS, "quality.check_results", "table", css="quality")
    d.node(f"checks.{table}", f"checks: {len(lin.checks[table])} rules", "check", css="quality")
    d.edge(f"dwh.{table}", f"checks.{table}", "after each run")
    d.edge(f"checks.{table}", RESULTS, "INSERT results")
    for r in lin.references:
        if r.source[0] == f"dwh.{table}":
            other = r.target[0]
            d.node(f"{other}.{r.target[1]}", f"{other}.{r.target[1]}", "round")
            if r.source not in shown:
                continue
            d.edge(f"{r.source[0]}.{r.source[1]}", f"{other}.{r.target[1]}", f"relationships ({r.severity})", "dashed")
    return d


def tables_diagram(lin: Lineage) -> Diagram:
    """All chosen tables at table level: a cluster per layer, one node per table, the steps as
    edges, the rejects views, the checks and the ``relationships`` between DWH tables."""
    d = Diagram(direction="LR", classes=dict(_CLASSES))
    layers = ("landing",) + LAYERS + ("quality",)
    for layer in layers:
        if any(ds.layer == layer for ds in lin.datasets.values()):
            d.cluster(layer, _LAYER_TITLES[layer] if layer != "landing" else "landed files")
    for ds in lin.datasets.values():
        shape = {"files": "files", "view": "view"}.get(ds.kind, "table")
        label = ds.location if ds.kind == "files" else ds.id.split(".", 1)[1]
        css = {"files": "files", "quality": "quality"}.get(ds.kind if ds.kind == "files" else ds.layer)
        d.node(ds.id, label, shape, ds.layer, css)
    for s in lin.steps:
        label = {"staging": "load", "archive": "insert", "delta": "select", "transform": "cast + derive", "dwh": "merge", "checks": "checks", "rejects": "view"}[s.layer]
        for i in s.inputs:
            for o in s.outputs:
                style = "dashed" if (s.layer == "delta" and i.startswith("dwh.")) or s.layer == "rejects" else "solid"
                d.edge(i, o, label if style == "solid" or s.layer == "rejects" else "compare", style)
    for r in lin.references:
        d.edge(r.source[0], r.target[0], f"{r.source[1]} references {r.target[1]}", "dashed")
    return d


def run_diagram(results: list) -> Diagram:
    """A run's summary as a picture: per table its steps in order, each with what it did (the
    runner's :class:`~pipeline_sql.runner.LayerResult` list; no timings, so the same data gives
    the same picture)."""
    d = Diagram(direction="LR", classes={"failed": "fill:#fde8e8,stroke:#c0392b", "warned": "fill:#fff3cd,stroke:#b8860b", "ok": "fill:#e8f8ee,stroke:#2e8b57"})
    per_table: dict[str, list] = {}
    for r in results:
        per_table.setdefault(r.table, []).append(r)
    for table, rs in per_table.items():
        d.cluster(table, table)
        files = [r for r in rs if r.layer == "staging" and r.detail.get("file")]
        archived = [r for r in rs if r.layer == "archive"]
        prev = None
        lines = {
            "staging": f"staging\n{len(files)} files, {sum(r.rows_out for r in files)} rows" if files else "staging\nno new file",
            "archive": f"archive\n{sum(r.rows_out for r in archived)} new versions, {sum(r.detail.get('null_key_rows', 0) for r in archived)} NULL keys" if archived else None,
        }
        for r in rs:
            if r.layer in ("staging", "archive"):
                continue
            lines[r.layer] = f"{r.layer}\n{r.describe()}"
        for layer in STEPS:
            text = lines.get(layer)
            if not text:
                continue
            css = None
            if layer == "checks":
                (c,) = [r for r in rs if r.layer == "checks"]
                css = "failed" if c.detail.get("failed") else "warned" if c.detail.get("warned") else "ok"
                text = f"checks\n{c.detail.get('passed', 0)} passed, {c.detail.get('warned', 0)} warned, {c.detail.get('failed', 0)} failed"
            d.node(f"{table}.{layer}", text, "table" if layer in LAYERS else "check", table, css)
            if prev:
                d.edge(prev, f"{table}.{layer}")
            prev = f"{table}.{layer}"
        delta = [r for r in rs if r.layer == "delta"]
        if delta and delta[0].detail.get("rejected"):
            d.node(f"{table}.rejects", f"rejects\n{delta[0].detail['rejected']} versions failing their casts", "view", table, "warned")
            d.edge(f"{table}.delta", f"{table}.rejects", "", "dashed")
    return d
