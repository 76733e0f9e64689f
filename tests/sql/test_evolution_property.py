"""Property: whatever sequence of spec changes (add, rename, drop, retype) is interleaved with
landed batches, runs that apply each change (a full refresh where the change needs one) leave
the archive, the DWH and the rejects exactly as the independent model (``sql_model.Model`` with
the spec each batch was landed under) computes them: no archived value lost, no spurious version.

Bounded: 8 examples of at most 6 steps, batches of at most 4 rows, one engine, fresh datasets
per example."""

from __future__ import annotations

import itertools

from hypothesis import HealthCheck, example, given, note, settings
from hypothesis import strategies as st

from pipeline_sql.evolution import FULL_REFRESH, spec_changes, spec_shape
from sql_model import make_spec

VALUES = ["1", "2", "x", None]
_names = itertools.count(1)


def build(columns: list[dict]):
    return make_spec([dict(c) for c in columns], "id", version_by="ver")


def base_columns() -> list[dict]:
    return [
        {"source": "src_id", "name": "id", "type": "INT64"},
        {"source": "src_a", "name": "a", "type": "STRING"},
        {"source": "src_ver", "name": "ver", "type": "INT64"},
    ]


def apply(columns: list[dict], op: str, pick: int) -> list[dict]:
    """The columns after one change (unchanged when the change does not apply)."""
    cols = [dict(c) for c in columns]
    live = [c for c in cols if not c.get("dropped") and c["name"] not in ("id", "ver")]
    n = next(_names)
    if op == "add":
        cols.append({"source": f"src_c{n}", "name": f"c{n}", "type": "STRING"})
    elif op == "rename" and live:
        c = live[pick % len(live)]
        c["renamed_from"] = [c["name"]] + list(c.get("renamed_from", []))
        c["name"] = f"r{n}"
    elif op == "drop" and live:
        live[pick % len(live)]["dropped"] = True
    elif op == "retype" and live:
        c = live[pick % len(live)]
        c["type"] = "INT64" if c["type"] == "STRING" else "STRING"
    return cols


@st.composite
def scenarios(draw):
    row = st.fixed_dictionaries({"id": st.sampled_from(["1", "2", "3"]), "v": st.sampled_from(VALUES), "ver": st.sampled_from(["1", "2"])})
    step = st.one_of(
        st.tuples(st.just("land"), st.lists(row, min_size=1, max_size=4)),
        st.tuples(st.sampled_from(["add", "rename", "drop", "retype"]), st.integers(0, 3)),
    )
    return draw(st.lists(step, min_size=1, max_size=6))


@settings(max_examples=8, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(steps=scenarios())
# found by CI: a column whose value failed its cast (a reject, kept out of the DWH) is dropped;
# without it the version is valid again: a new key for the DWH, or another latest version
@example(steps=[("land", [{"id": "1", "v": "1", "ver": "1"}, {"id": "2", "ver": "1", "v": "x"}]), ("retype", 0), ("drop", 0)])
@example(steps=[("land", [{"id": "1", "v": "1", "ver": "1"}, {"id": "1", "ver": "1", "v": "x"}]), ("add", 0), ("retype", 0), ("drop", 0)])
def test_any_sequence_of_spec_changes_matches_the_model(pipe_factory, steps):
    note(f"steps={steps}")
    columns = base_columns()
    p = pipe_factory(build(columns))
    p.land([{"id": "1", "a": "1", "ver": "1"}], name="batch_0000.csv")
    batches, specs = [[{"id": "1", "a": "1", "ver": "1"}]], [p.spec]
    p.run_all()
    for i, (op, arg) in enumerate(steps, start=1):
        if op == "land":
            # every non-key column of the current spec takes the row's value `v`
            rows = [{**{c.name: r["v"] for c in p.spec.columns}, "id": r["id"], "ver": r["ver"]} for r in arg]
            p.land(rows, name=f"batch_{i:04d}.csv")
            batches.append(rows)
            specs.append(p.spec)
            p.run_all()
            continue
        new = apply(columns, op, arg)
        if new == columns:
            continue
        spec = build(new)
        refresh = any(c.action == FULL_REFRESH for c in spec_changes(spec_shape(p.spec), spec_shape(spec)))
        note(f"{op}: {[c['name'] + ('-' if c.get('dropped') else '') for c in new]} refresh={refresh}")
        columns, p = new, p.respec(spec)
        p.runner.run_table(spec, full_refresh=refresh)
    p.assert_model(batches, specs)
