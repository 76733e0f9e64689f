"""Property: whatever batches land and whatever order the layers run in (skipped, repeated,
out of order, interleaved with new files), once every layer has run after the last batch the DWH,
the archive and the rejects are exactly what the independent model (``sql_model.Model``) computes
from the landed rows.

Values come from small alphabets so that updates, reverts, exact duplicates, NULL keys, cast
failures, equal versions (ties), NULL versions and keys equal only after their cast ('1'/'01')
all happen often. The model reproduces the tie-break between equal versions in one batch by
computing the archive's row hash from its documented definition (``sql_model.row_hash``: MD5 hex
of the renamed values in spec order as a compact JSON array of strings).

Bounded: 25 examples, at most 4 batches of at most 8 rows, at most 10 layer runs before the final
run, on one engine with fresh datasets per example (a new ``Naming`` env from a counter).
"""

from __future__ import annotations

from hypothesis import HealthCheck, given, note, settings
from hypothesis import strategies as st

from sql_model import make_spec

SPECS = {
    "versioned": make_spec(
        [("id", "INT64"), ("name", "STRING"), ("amount", "NUMERIC"), ("ver", "INT64")],
        "id",
        version_by="ver",
        checks=[{"unique": ["id"]}, {"not_null": ["id"]}],
    ),
    "two-col-key": make_spec(
        [("shop", "STRING"), ("sku", "INT64"), ("day", "DATE"), ("ok", "BOOL")],
        ["shop", "sku"],
        checks=[{"unique": ["shop", "sku"]}],
    ),
    "timestamp-version": make_spec(
        [("id", "STRING"), ("name", "STRING"), ("seen", "TIMESTAMP")],
        "id",
        version_by="seen",
    ),
}

VALUES = {
    "versioned": {
        "id": ["1", "2", "3", "01", None],
        "name": ["a", "b", "c,d"],
        "amount": ["1", "1.50", "12345678901.123456789", "abc", None],
        "ver": ["1", "2", "3", None, "12x"],
    },
    "two-col-key": {
        "shop": ["x", "y", None],
        "sku": ["1", "2", "3", "q"],
        "day": ["2024-01-01", "2024-02-30", None],
        "ok": ["true", "false", "nope", None],
    },
    "timestamp-version": {
        "id": ["k1", "k2", "k3", None],
        "name": ["a", "b"],
        "seen": ["2024-01-01 00:00:00", "2024-01-01T00:00:00Z", "2024-01-02 00:00:00", "2024-01-45 00:00:00", None],
    },
}

LAYER_OPS = ["land", "staging", "archive", "delta", "transform", "dwh"]


@st.composite
def scenarios(draw):
    kind = draw(st.sampled_from(sorted(SPECS)))
    values = VALUES[kind]
    row = st.fixed_dictionaries({c: st.sampled_from(v) for c, v in values.items()})
    batches = draw(st.lists(st.lists(row, max_size=8), min_size=1, max_size=4))
    ops = draw(st.lists(st.sampled_from(LAYER_OPS), max_size=10))
    return kind, batches, ops


@settings(
    max_examples=25,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(scenario=scenarios())
def test_any_layer_order_converges_to_the_latest_valid_version_per_key(pipe_factory, scenario):
    kind, batches, ops = scenario
    note(f"spec={kind} ops={ops}")
    p = pipe_factory(SPECS[kind])  # fresh datasets and landing folder for every example
    todo = list(batches)
    for op in ops:
        if op == "land":
            if todo:
                p.land(todo.pop(0))
        else:
            p.run(op)
    while todo:
        p.land(todo.pop(0))
    # every layer once after the last batch (staging + archive once per pending file)
    p.run_all()
    p.assert_model(batches)
