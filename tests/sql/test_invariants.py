"""The four invariants of DESIGN.md on the embedded engine: idempotent, order-proof, exact, atomic.

Tables are compared in full (every column, every row, order-free), not by counts."""

from __future__ import annotations

import random
import re

import pytest

from pipeline_sql.runner import FileQuarantined, LayerError
from sql_model import make_spec

LAYERS = ("staging", "archive", "delta", "transform", "dwh", "checks")

SPEC = make_spec(
    [("id", "INT64"), ("name", "STRING"), ("amount", "NUMERIC"), ("ver", "INT64")],
    "id",
    version_by="ver",
    checks=[{"unique": ["id"]}, {"not_null": ["id"]}],
)

# Three batches exercising updates, an older late version, ties, cast failures, NULL keys and
# duplicates. Rows map target names to raw strings (None = empty CSV field = NULL).
B1 = [
    {"id": "1", "name": "a", "amount": "1.5", "ver": "1"},
    {"id": "2", "name": "b", "amount": "abc", "ver": "1"},  # invalid: rejected
    {"id": None, "name": "no key", "amount": "1", "ver": "1"},  # NULL key: counted, not archived
    {"id": "3", "name": "c", "amount": "3", "ver": "2"},
    {"id": "3", "name": "c-tie", "amount": "3", "ver": "2"},  # tie: the larger row hash wins
    {"id": "1", "name": "a", "amount": "1.5", "ver": "1"},  # exact duplicate
]
B2 = [
    {"id": "1", "name": "a2", "amount": "2", "ver": "2"},  # update
    {"id": "2", "name": "b", "amount": "2", "ver": "1"},  # now valid
    {"id": "3", "name": "old", "amount": "1", "ver": "1"},  # older: never applied
    {"id": "4", "name": "d", "amount": None, "ver": None},
]
B3 = [
    {"id": "1", "name": "a3", "amount": "9", "ver": "1"},  # older than the DWH's
    {"id": "4", "name": "d2", "amount": "12345678901.123456789", "ver": "3"},
    {"id": "5", "name": "e", "amount": "12x", "ver": "1"},  # invalid
    {"id": "2", "name": "b", "amount": "2", "ver": "1"},  # already archived
    {"id": None, "name": None, "amount": None, "ver": None},
]
BATCHES = [B1, B2, B3]


def run_through(p, layer: str) -> None:
    """Run the layers before ``layer`` once, in order."""
    for l in LAYERS[: LAYERS.index(layer)]:
        p.run(l)


# --------------------------------------------------------------------------- idempotent


def test_running_any_layer_twice_changes_nothing_the_second_time(pipe_factory):
    """Walk the layers in order, twice (two pending batches, on top of an applied one): right
    after each layer runs, running it again leaves every table (persistent and rebuilt) as is."""
    p = pipe_factory(SPEC)
    p.land(B1)
    p.run_all()  # some history, so later batches update, tie and reject against it
    p.land(B2)
    p.land(B3)
    for walk in (1, 2):  # walk 1 stages B2, walk 2 stages B3
        for layer in LAYERS:
            p.run(layer)
            once = p.all_tables()
            p.run(layer)
            assert p.all_tables() == once, f"walk {walk}: running {layer} a second time changed a table"
    assert len(p.batches()) == 3
    p.assert_model(BATCHES)


def test_the_whole_run_twice_changes_nothing_the_second_time(pipe_factory):
    p = pipe_factory(SPEC)
    for b in BATCHES:
        p.land(b)
    p.run_all()
    first = p.snapshot()
    assert first["dwh"] and first["rejects"] and first["archive"]
    p.run_all()
    assert p.snapshot() == first
    steady = p.all_tables()  # from here on even the rebuilt tables stay the same
    p.run_all()
    assert p.all_tables() == steady
    p.assert_model(BATCHES)


# --------------------------------------------------------------------------- order-proof

# "L" lands the next batch; S A D T W C = staging archive delta transform dwh checks.
SCHEDULES = {
    "in-order": "L SADTWC L SADTWC L",
    "reversed": "L CWTDAS L CWTDAS L CWTDAS",
    "no-staging-until-the-end": "L ADTW L ADTW L",
    "dwh-skipped-until-the-end": "L SADT L SADT L SA",
    "stage-twice-archive-late": "L SS L SAA D L DTWW",
    "stale-transform-applied": "L SADT L SAD W TW L SADTS",
    "delta-rebuilt-before-apply": "L SAD T L SA D W T W L SA",
    "interleaved": "L SATDDWT L WSDATA L ADSW",
    "archive-without-staging": "L A D T W L A S L S",
}
_OPS = {"S": "staging", "A": "archive", "D": "delta", "T": "transform", "W": "dwh", "C": "checks"}


def play(p, schedule: str, batches) -> None:
    todo = list(batches)
    for op in schedule.replace(" ", ""):
        if op == "L":
            p.land(todo.pop(0))
        else:
            p.run(_OPS[op])
    assert not todo


@pytest.mark.parametrize("schedule", list(SCHEDULES.values()), ids=list(SCHEDULES))
def test_layers_out_of_order_skipped_or_repeated_converge(pipe_factory, schedule):
    p = pipe_factory(SPEC)
    play(p, schedule, BATCHES)
    # converge: every pending file staged + archived (one file per staging run), then
    # delta, transform, dwh and checks once each
    p.run_all()
    p.assert_model(BATCHES)
    done = p.snapshot()
    p.run_all()
    assert p.snapshot() == done


def test_once_every_batch_is_archived_one_pass_of_the_later_layers_converges(pipe_factory):
    """Delta, transform and dwh run in a scrambled order while batches arrive, but each batch
    is staged and archived as it lands; then delta, transform, dwh once, in order, suffices."""
    p = pipe_factory(SPEC)
    rnd = random.Random(11)
    for b in BATCHES:
        p.land(b)
        for layer in rnd.sample(["delta", "transform", "dwh"] * 2, 4):
            p.run(layer)
        p.run("staging")
        p.run("archive")
        p.run(rnd.choice(["delta", "transform", "dwh"]))
    for layer in ("delta", "transform", "dwh", "checks"):
        p.run(layer)
    p.assert_model(BATCHES)


# --------------------------------------------------------------------------- exact


def _random_batches(seed: int, n_batches: int, rows: int):
    rnd = random.Random(seed)
    names = ["x", "y", "z", "x,y", 'q"t']
    amounts = ["0", "1.5", "-2.25", "12345678901.123456789", "abc", None]
    days = ["2024-01-01", "2024-02-29", "2024-13-45", None]
    flags = ["true", "false", "maybe", None]
    vers = ["2024-01-01 00:00:00", "2024-01-01 12:00:00", "2024-01-02 00:00:00", "2024-01-02 00:00:00", "soon", None]
    out = []
    for _ in range(n_batches):
        batch = []
        for _ in range(rows):
            batch.append(
                {
                    "id": rnd.choice([None] + [str(i) for i in range(1, 16)]),
                    "name": rnd.choice(names),
                    "amount": rnd.choice(amounts),
                    "day": rnd.choice(days),
                    "flag": rnd.choice(flags),
                    "ver": rnd.choice(vers),
                }
            )
        if batch and rnd.random() < 0.5:
            batch.append(dict(batch[0]))  # an exact duplicate in the batch
        out.append(batch)
    return out


EXACT_SPEC = make_spec(
    [("id", "INT64"), ("name", "STRING"), ("amount", "NUMERIC"), ("day", "DATE"), ("flag", "BOOL"), ("ver", "TIMESTAMP")],
    "id",
    version_by="ver",
)


@pytest.mark.parametrize("fmt", ["csv", "json"])
def test_the_dwh_is_exactly_the_latest_valid_version_per_key(pipe_factory, fmt):
    spec = make_spec(
        [(c.name, c.type) for c in EXACT_SPEC.columns], "id", version_by="ver", fmt=fmt
    )
    batches = _random_batches(seed=3 if fmt == "csv" else 4, n_batches=5, rows=40)
    p = pipe_factory(spec)
    for i, b in enumerate(batches):
        p.land(b)
        if i % 2 == 1:
            p.run_all()
    p.run_all()
    p.assert_model(batches)
    assert len(p.dwh()) >= 5 and len(p.rejects()) >= 5  # the data really exercises both


def test_exact_without_version_by_and_with_a_two_column_key(pipe_factory):
    spec = make_spec([("shop", "STRING"), ("sku", "INT64"), ("qty", "INT64"), ("note", "STRING")], ["shop", "sku"])
    rnd = random.Random(5)
    batches = [
        [
            {
                "shop": rnd.choice(["a", "b", None]),
                "sku": rnd.choice(["1", "2", "3", "x", None]),
                "qty": rnd.choice(["1", "2", "-3", "1.5x", None]),
                "note": rnd.choice(["n", "m", None]),
            }
            for _ in range(25)
        ]
        for _ in range(4)
    ]
    p = pipe_factory(spec)
    for b in batches:
        p.land(b)
        p.run("staging"), p.run("archive")
    p.run_all()
    p.assert_model(batches)


# --------------------------------------------------------------------------- atomic

# Each layer writes with ONE statement (archive: the INSERT; delta, transform: the CREATE OR
# REPLACE TABLE; dwh: the MERGE). A failure is injected INTO that statement, on one row of
# its source (the row with the largest row hash), so a partial write would show: every table
# must stay exactly as it was.

FAIL_ON_ONE_ROW = "CASE WHEN {hash} = (SELECT MAX(_row_hash) FROM {src}) THEN ERROR('injected') ELSE TRUE END"


def _archive_insert_fails(sql: str) -> str:
    """The archive INSERT's SELECT fails on one of the batch's fresh rows."""
    old = "\nWHERE a._row_hash IS NULL;"  # the INSERT's dedupe against the archive (an anti-join)
    assert sql.count(old) == 1 and sql.count("INSERT INTO") == 1 and sql.index("INSERT INTO") < sql.index(old)
    cond = FAIL_ON_ONE_ROW.format(hash="_fresh._row_hash", src="_keyed")
    return sql.replace(old, f"\nWHERE {cond} AND a._row_hash IS NULL;")


def _merge_source_fails(sql: str) -> str:
    """The MERGE's source (the transform, as its USING clause reads it) fails on one of its rows."""
    assert sql.count("\nMERGE ") == 1
    i = sql.index("USING ", sql.index("\nMERGE "))
    m = re.compile(r"(`[^`]+`) AS _S\b").search(sql, i)  # the first table read as _S: the transform
    src = m.group(1)
    assert ".transform." in src or "_transform." in src, src
    cond = FAIL_ON_ONE_ROW.format(hash="_row_hash", src=src)
    return sql[: m.start()] + f"(SELECT * FROM {src} WHERE {cond})" + sql[m.end(1) :]


def _ctas_fails(sql: str) -> str:
    """The layer's CREATE OR REPLACE TABLE ... AS <query>; fails on one row of its query."""
    assert sql.count("CREATE OR REPLACE TABLE") == 1
    i = sql.index("CREATE OR REPLACE TABLE")
    j = sql.index(" AS\n", i) + len(" AS\n")
    k = sql.index(";", j)
    return (
        sql[:j]
        + "SELECT * FROM (\n"
        + sql[j:k]
        + "\n) AS q\nWHERE CASE WHEN q._row_hash = (SELECT MAX(_row_hash) FROM ("
        + sql[j:k]
        + "\n)) THEN ERROR('injected') ELSE TRUE END"
        + sql[k:]
    )


#: name -> (layer, edit of its SQL): a failure inside the layer's one writing statement
INJECTIONS = {
    "archive-insert-fails": ("archive", _archive_insert_fails),
    "delta-statement-fails": ("delta", _ctas_fails),
    "transform-statement-fails": ("transform", _ctas_fails),
    "dwh-merge-fails": ("dwh", _merge_source_fails),
}


@pytest.mark.parametrize("name", list(INJECTIONS))
def test_a_failure_inside_a_layer_leaves_the_previous_state_and_a_rerun_finishes(pipe_factory, monkeypatch, name):
    layer, edit = INJECTIONS[name]
    p = pipe_factory(SPEC)
    p.land(B1)
    p.run_all()
    p.land(B2)
    run_through(p, layer)
    before = p.all_tables()

    rendered = p.runner.sql(SPEC)
    broken = edit(rendered.layers[layer])
    assert broken != rendered.layers[layer] and "ERROR('injected')" in broken
    monkeypatch.setitem(rendered.layers, layer, broken)
    with pytest.raises(LayerError, match="injected") as e:
        p.run(layer)
    assert (e.value.table, e.value.layer) == ("items", layer)
    assert p.all_tables() == before, f"{name}: a failed {layer} changed the tables"
    with pytest.raises(LayerError):  # still failing, still nothing changes
        p.run(layer)
    assert p.all_tables() == before

    monkeypatch.undo()  # restore the real SQL and re-run: nothing lost, nothing duplicated
    p.run(layer)
    p.run_all()
    p.assert_model([B1, B2])


def test_a_stop_between_the_archive_statement_and_its_batch_record_is_finished_by_a_rerun(pipe_factory, monkeypatch):
    """The runner records an archived file in __batches after the archive statement. If it stops
    in between, the file is not done: the next run stages and archives it again, which adds no
    version, and records it once."""
    p = pipe_factory(SPEC)
    p.land(B1)
    p.run_all()
    f2 = p.land(B2)
    assert p.run("staging").detail["file"] == f"items/{f2.name}"

    def stopped(spec, row):
        raise LayerError(spec.table, "archive", "runner stopped before recording the batch")

    monkeypatch.setattr(p.runner, "_log_batch", stopped)
    with pytest.raises(LayerError, match="stopped"):
        p.run("archive")
    monkeypatch.undo()
    archived = p.snapshot()["archive"]
    b2_versions = [r for r in p.archive() if r["_source_file"] == f"items/{f2.name}"]
    assert b2_versions, "the archive statement itself committed"
    assert len(p.batches()) == 1  # ... but B2 is not recorded: still pending
    assert [path for path, _ in p.runner.pending_files(SPEC)] == [f2]

    # the later layers may run meanwhile (B2's versions reach the DWH): harmless
    for layer in ("delta", "transform", "dwh"):
        p.run(layer)
    # the re-run: B2 staged and archived again, no version added, recorded exactly once
    res = p.run_all()
    assert [r.detail.get("file") for r in res if r.layer == "staging"] == [f"items/{f2.name}"]
    assert p.snapshot()["archive"] == archived
    (b2,) = [b for b in p.batches() if b["source_file"] == f"items/{f2.name}"]
    assert b2["rows_archived"] == len(b2_versions) and b2["rows_in"] == len(B2)
    assert p.runner.pending_files(SPEC) == []
    p.assert_model([B1, B2])
    p.land(B3)
    p.run_all()
    p.assert_model(BATCHES)
    assert len(p.batches()) == 3


def test_a_file_that_fails_to_load_changes_no_history_and_a_fixed_file_finishes(pipe_factory):
    p = pipe_factory(SPEC)
    p.land(B1)
    p.run_all()
    bad = p.land([], raw="src_id,src_name,src_amount,src_ver\n1,a,2,3,one field too many\n")
    before = p.all_tables()
    with pytest.raises(FileQuarantined) as e:
        p.run("staging")
    assert e.value.layer == "staging" and bad.name in str(e.value) and "line 2: 5 fields, expected 4" in str(e.value)
    # refused by its check (which runs beside the load job): the history, the delta and the
    # transform are untouched; staging holds no row of the refused file and no description
    after = p.all_tables()
    assert {k: v for k, v in after.items() if not k.startswith("staging")} == {
        k: v for k, v in before.items() if not k.startswith("staging")
    }
    assert after["staging_batch"] == [] and not any("one field too many" in repr(r) for r in after["staging"])
    p.run("archive")
    assert p.snapshot() == {k: v for k, v in before.items() if k in p.snapshot()}
    p.run_all()  # the quarantined file is skipped, with a warning: it never blocks the table
    assert any(bad.name in w and "quarantined, skipped" in w for w in p.runner.warnings)
    assert p.snapshot() == {k: v for k, v in before.items() if k in p.snapshot()}
    p.land(B2, name=bad.name)  # fixed in place
    p.land(B3)
    p.run_all()
    p.assert_model(BATCHES)
