"""One small graph model, drawn as Mermaid or Graphviz DOT (pure, deterministic).

The lineage pictures (:mod:`pipeline_sql.lineage`), the platform picture (``python -m stacks
plan --format mermaid``) and the run summary are built as a :class:`Diagram` and printed with
:meth:`Diagram.to_mermaid` or :meth:`Diagram.to_dot`, so both notations show the same thing.

Identifiers are made safe for both notations; label text is escaped (Mermaid entity codes for
``"``, ``<``, ``>``, ``#``; DOT backslash escapes), so a spec's expression can appear on an edge.
Node order, cluster order and edge order are the order they were added in.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

#: node shapes: Mermaid's bracket pair and DOT's shape
SHAPES = {
    "box": ('["', '"]', "box"),
    "round": ('("', '")', "box"),  # DOT: rounded through style
    "table": ('[("', '")]', "cylinder"),
    "files": ('[/"', '"/]', "parallelogram"),
    "view": ('[["', '"]]', "box3d"),
    "check": ('{{"', '"}}', "hexagon"),
    "stadium": ('(["', '"])', "box"),
}
#: edge styles: Mermaid arrow (without / with a label) and DOT attributes
STYLES = {
    "solid": ("-->", "-->", ""),
    "dashed": ("-.->", "-.->", 'style="dashed"'),
    "thick": ("==>", "==>", 'penwidth="2"'),
}
_SAFE = re.compile(r"[^A-Za-z0-9_]")


@dataclass
class Node:
    id: str
    label: str
    shape: str = "box"
    cluster: str | None = None
    css: str | None = None


@dataclass
class Edge:
    src: str
    dst: str
    label: str = ""
    style: str = "solid"


@dataclass
class Cluster:
    id: str
    label: str
    parent: str | None = None


@dataclass
class Diagram:
    """Nodes (optionally inside clusters, which may nest), edges and Mermaid class styles."""

    direction: str = "LR"
    nodes: dict[str, Node] = field(default_factory=dict)
    edges: list[Edge] = field(default_factory=list)
    clusters: dict[str, Cluster] = field(default_factory=dict)
    #: Mermaid ``classDef`` name -> style (DOT gets the fill colour)
    classes: dict[str, str] = field(default_factory=dict)

    def cluster(self, id: str, label: str, parent: str | None = None) -> str:
        if id not in self.clusters:
            self.clusters[id] = Cluster(id, label, parent)
        return id

    def node(self, id: str, label: str, shape: str = "box", cluster: str | None = None, css: str | None = None) -> str:
        if shape not in SHAPES:
            raise ValueError(f"unknown shape {shape!r}; expected one of: {', '.join(SHAPES)}")
        if id not in self.nodes:
            self.nodes[id] = Node(id, label, shape, cluster, css)
        return id

    def edge(self, src: str, dst: str, label: str = "", style: str = "solid") -> None:
        if style not in STYLES:
            raise ValueError(f"unknown edge style {style!r}; expected one of: {', '.join(STYLES)}")
        for end in (src, dst):
            if end not in self.nodes and end not in self.clusters:
                raise ValueError(f"edge {src} -> {dst}: {end!r} is neither a node nor a cluster")
        e = Edge(src, dst, label, style)
        if e not in self.edges:
            self.edges.append(e)

    # ------------------------------------------------------------------ Mermaid

    def to_mermaid(self) -> str:
        ids = _ids(list(self.clusters) + list(self.nodes))
        lines = [f"flowchart {self.direction}"]

        def emit_cluster(cid: str, depth: int) -> None:
            pad = "  " * depth
            lines.append(f'{pad}subgraph {ids[cid]}["{_mm(self.clusters[cid].label)}"]')
            for c in self.clusters.values():
                if c.parent == cid:
                    emit_cluster(c.id, depth + 1)
            for n in self.nodes.values():
                if n.cluster == cid:
                    lines.append(pad + "  " + _mm_node(ids[n.id], n))
            lines.append(f"{pad}end")

        for c in self.clusters.values():
            if c.parent is None:
                emit_cluster(c.id, 1)
        for n in self.nodes.values():
            if n.cluster is None:
                lines.append("  " + _mm_node(ids[n.id], n))
        for e in self.edges:
            plain, labelled, _ = STYLES[e.style]
            arrow = f'{labelled}|"{_mm(e.label)}"|' if e.label else plain
            lines.append(f"  {ids[e.src]} {arrow} {ids[e.dst]}")
        for name, style in self.classes.items():
            lines.append(f"  classDef {name} {style}")
        for name in self.classes:
            members = [ids[n.id] for n in self.nodes.values() if n.css == name]
            if members:
                lines.append(f"  class {','.join(members)} {name}")
        return "\n".join(lines) + "\n"

    # ------------------------------------------------------------------ DOT

    def to_dot(self, name: str = "flexyboots") -> str:
        ids = _ids(list(self.clusters) + list(self.nodes))
        rankdir = {"LR": "LR", "TB": "TB", "TD": "TB", "RL": "RL", "BT": "BT"}[self.direction]
        lines = [f"digraph {_SAFE.sub('_', name)} {{", f"  rankdir={rankdir};", '  node [fontname="Helvetica", fontsize=10];', '  edge [fontname="Helvetica", fontsize=9];']
        fills = {k: _fill(v) for k, v in self.classes.items()}

        def node_line(n: Node) -> str:
            attrs = [f'label="{_dot(n.label)}"', f"shape={SHAPES[n.shape][2]}"]
            if n.shape in ("round", "stadium"):
                attrs.append('style="rounded"')
            if n.css and fills.get(n.css):
                attrs += ['style="filled"' if n.shape not in ("round", "stadium") else 'style="rounded,filled"', f'fillcolor="{fills[n.css]}"']
            return f"{ids[n.id]} [{', '.join(attrs)}];"

        def emit_cluster(cid: str, depth: int) -> None:
            pad = "  " * depth
            lines.append(f"{pad}subgraph cluster_{ids[cid]} {{")
            lines.append(f'{pad}  label="{_dot(self.clusters[cid].label)}";')
            for c in self.clusters.values():
                if c.parent == cid:
                    emit_cluster(c.id, depth + 1)
            members = [n for n in self.nodes.values() if n.cluster == cid]
            for n in members:
                lines.append(pad + "  " + node_line(n))
            if not members and not any(c.parent == cid for c in self.clusters.values()):
                lines.append(f'{pad}  {ids[cid]} [label="", shape=point, style=invis];')
            lines.append(f"{pad}}}")

        for c in self.clusters.values():
            if c.parent is None:
                emit_cluster(c.id, 1)
        for n in self.nodes.values():
            if n.cluster is None:
                lines.append("  " + node_line(n))
        for e in self.edges:
            src, dst, extra = ids[e.src], ids[e.dst], []
            # an edge to a cluster ends at one of its nodes, clipped at the cluster's border
            if e.src in self.clusters:
                src, extra = self._anchor(e.src, ids), extra + [f"ltail=cluster_{ids[e.src]}"]
            if e.dst in self.clusters:
                dst, extra = self._anchor(e.dst, ids), extra + [f"lhead=cluster_{ids[e.dst]}"]
            attrs = ([f'label="{_dot(e.label)}"'] if e.label else []) + ([STYLES[e.style][2]] if STYLES[e.style][2] else []) + extra
            lines.append(f"  {src} -> {dst}" + (f" [{', '.join(attrs)}]" if attrs else "") + ";")
        if any(e.src in self.clusters or e.dst in self.clusters for e in self.edges):
            lines.insert(2, "  compound=true;")
        lines.append("}")
        return "\n".join(lines) + "\n"

    def _anchor(self, cid: str, ids: dict[str, str]) -> str:
        for n in self.nodes.values():
            if n.cluster == cid:
                return ids[n.id]
        for c in self.clusters.values():
            if c.parent == cid:
                return self._anchor(c.id, ids)
        return ids[cid]  # the invisible point of an empty cluster


def _ids(keys: list[str]) -> dict[str, str]:
    """Stable, unique identifiers that both notations accept (letters, digits, _)."""
    out: dict[str, str] = {}
    used: set[str] = set()
    for k in keys:
        base = _SAFE.sub("_", k) or "n"
        if base[0].isdigit():
            base = "n_" + base
        ident, i = base, 2
        while ident in used:
            ident, i = f"{base}_{i}", i + 1
        used.add(ident)
        out[k] = ident
    return out


def _mm(text: str) -> str:
    """Mermaid label text inside double quotes: entity codes for the characters it parses;
    newlines become line breaks."""
    text = text.replace("#", "#35;").replace('"', "#quot;").replace("<", "#lt;").replace(">", "#gt;")
    return text.replace("\n", "<br/>")


def _mm_node(ident: str, n: Node) -> str:
    left, right, _ = SHAPES[n.shape]
    return f"{ident}{left}{_mm(n.label)}{right}"


def _dot(text: str) -> str:
    return text.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


def _fill(style: str) -> str | None:
    m = re.search(r"fill:(#[0-9A-Fa-f]{3,8})", style)
    return m.group(1) if m else None


def shorten(text: str, limit: int = 60) -> str:
    """One line of at most ``limit`` characters (whitespace collapsed, an ellipsis when cut)."""
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 1].rstrip() + "…"
