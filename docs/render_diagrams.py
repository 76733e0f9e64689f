"""The README's generated Mermaid diagrams: print, check or rewrite them.

    .venv/bin/python docs/render_diagrams.py --check    exit 1 naming every stale diagram
    .venv/bin/python docs/render_diagrams.py --write    rewrite them in README.md

Each diagram sits in README.md between ``<!-- generated: NAME -->`` and ``<!-- end generated -->``
as a fenced ``mermaid`` block; NAME is one of :data:`DIAGRAMS`. Nothing is drawn by hand:
``lineage TABLE`` is ``python -m pipeline_sql lineage TABLE``, ``lineage`` the table-level
picture of all tables, ``plan dev`` is ``python -m stacks plan --stack dev --format mermaid``
and ``run sample`` the summary of one run of the sample ``landing/`` (every file, in memory).
"""

from __future__ import annotations

import re
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
README = ROOT / "README.md"
BLOCK = re.compile(r"(<!-- generated: (?P<name>[^>]+?) -->\n```mermaid\n)(?P<body>.*?)(```\n<!-- end generated -->)", re.S)
REGENERATE = ".venv/bin/python docs/render_diagrams.py --write"


def _lineage(table: str | None) -> str:
    from pipeline_sql.lineage import build_lineage, table_diagram, tables_diagram
    from pipeline_sql.spec import load_specs

    lin = build_lineage(load_specs(ROOT / "config" / "tables"))
    return (table_diagram(lin, table) if table else tables_diagram(lin)).to_mermaid()


def _plan(stack: str) -> str:
    from stacks.plan import render_mermaid, run_stack

    return render_mermaid(run_stack(stack))


def _run_sample() -> str:
    from pipeline_sql.engine import LocalEngine
    from pipeline_sql.lineage import run_diagram
    from pipeline_sql.naming import Naming
    from pipeline_sql.runner import Runner
    from pipeline_sql.spec import load_specs

    with tempfile.TemporaryDirectory() as tmp, LocalEngine(state_dir=None, gcs_root=ROOT) as eng:
        results = Runner(eng.client, Naming(), landing_dir=ROOT / "landing", read_in_place=True).run(load_specs(ROOT / "config" / "tables"))
    return run_diagram(results).to_mermaid()


DIAGRAMS = {
    "lineage": lambda: _lineage(None),
    "lineage customers": lambda: _lineage("customers"),
    "lineage orders": lambda: _lineage("orders"),
    "lineage products": lambda: _lineage("products"),
    "plan dev": lambda: _plan("dev"),
    "run sample": _run_sample,
}


def stale(text: str) -> tuple[str, list[str]]:
    """(README text with every diagram regenerated, names of the diagrams that changed)."""
    changed: list[str] = []
    seen: set[str] = set()

    def repl(m: re.Match) -> str:
        name = m.group("name")
        if name not in DIAGRAMS:
            raise SystemExit(f"README.md: unknown generated diagram {name!r}; expected one of: {', '.join(DIAGRAMS)}")
        seen.add(name)
        body = DIAGRAMS[name]()
        if body != m.group("body"):
            changed.append(name)
        return m.group(1) + body + m.group(4)

    new = BLOCK.sub(repl, text)
    missing = [n for n in DIAGRAMS if n not in seen]
    if missing:
        changed += [f"{n} (missing from README.md)" for n in missing]
    return new, changed


def main(argv: list[str]) -> int:
    text = README.read_text(encoding="utf-8")
    new, changed = stale(text)
    if "--write" in argv:
        README.write_text(new, encoding="utf-8")
        print(f"README.md: {len(changed)} diagrams rewritten: {', '.join(changed) or 'none'}")
        return 0
    if changed:
        print(f"README.md: stale diagrams: {', '.join(changed)}; regenerate with: {REGENERATE}", file=sys.stderr)
        return 1
    print("README.md: every generated diagram is current")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
