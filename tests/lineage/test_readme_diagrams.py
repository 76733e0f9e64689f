"""The README's Mermaid diagrams are generated (docs/render_diagrams.py) and must be current."""

import importlib.util
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_readme_diagrams_are_current():
    spec = importlib.util.spec_from_file_location("render_diagrams", ROOT / "docs" / "render_diagrams.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    _, changed = mod.stale(mod.README.read_text(encoding="utf-8"))
    assert not changed, f"README.md: stale generated diagrams: {', '.join(changed)}; regenerate with: {mod.REGENERATE}"
