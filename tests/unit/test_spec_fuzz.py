"""Fuzzing spec files (hypothesis): the shipped specs, mutated as a careless or adversarial author
would (random bytes, a line duplicated or dropped, a field renamed, a value replaced by a random
scalar), are either a valid spec or refused with a :class:`SpecError` naming the file and a
field: never another exception (no traceback for the user)."""

from __future__ import annotations

import re
import tempfile
from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pipeline_sql.spec import SpecError, TableSpec, load_spec

REPO = Path(__file__).resolve().parents[2]
SHIPPED = {p.name: p.read_bytes() for p in sorted((REPO / "config" / "tables").glob("*.yaml"))}

_SCALARS = st.one_of(
    st.sampled_from(["no", "on", "yes", "off", "~", "null", "''", "0", "-1", "1e999", ".nan", "2024-13-45", "[]", "{}",
                     "[a, b]", "{a: 1}", "&x a", "*x", "!!binary aGk=", "|\n  x", "'", '"', "#", ": ", "- x", "%", "@x", "`x`",
                     "every day 25:00", "every monday,friday 06:07", "x;y", "(SELECT 1)", "a\tb"]),
    st.text(st.characters(codec="utf-8", exclude_categories=("Cs",)), max_size=12),
    st.integers(-(2**70), 2**70).map(str),
    st.floats(allow_nan=True).map(str),
)


@st.composite
def mutated(draw) -> tuple[str, bytes]:
    name = draw(st.sampled_from(sorted(SHIPPED)))
    raw = SHIPPED[name]
    for _ in range(draw(st.integers(1, 3))):
        lines = raw.split(b"\n")
        i = draw(st.integers(0, len(lines) - 1))
        kind = draw(st.sampled_from(["bytes", "duplicate", "drop", "rename", "scalar", "scalar"]))
        if kind == "bytes":
            at = draw(st.integers(0, len(raw)))
            raw = raw[:at] + draw(st.binary(min_size=1, max_size=4)) + raw[at:]
            continue
        if kind == "duplicate":
            lines.insert(i, lines[i])
        elif kind == "drop":
            del lines[i]
        else:
            line = lines[i].decode("utf-8", "replace")
            # a `key: value` pair, block or flow style
            pairs = [(p.start(), p.end()) for p in re.finditer(r"[A-Za-z_]+(?=: )|(?<=: )[^,{}\[\]\n]+", line)]
            if not pairs:
                continue
            start, end = draw(st.sampled_from(pairs))
            new = draw(st.from_regex(r"[a-z_]{1,10}", fullmatch=True)) if kind == "rename" else draw(_SCALARS)
            lines[i] = (line[:start] + new + line[end:]).encode("utf-8", "surrogatepass")
        raw = b"\n".join(lines)
    return name, raw


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(mutated())
def test_mutated_specs_are_valid_or_refused_clearly(case):
    name, raw = case
    with tempfile.TemporaryDirectory() as d:
        path = Path(d) / name
        path.write_bytes(raw)
        try:
            spec = load_spec(path)
        except SpecError as e:
            assert e.file == str(path), str(e)
            assert isinstance(e.field, str) and e.field, str(e)
            assert isinstance(e.reason, str) and e.reason, str(e)
            assert str(e).startswith(str(path)), str(e)
            return
    assert isinstance(spec, TableSpec)
