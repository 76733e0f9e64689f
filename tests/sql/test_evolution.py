"""Spec changes on the embedded engine: a sequence of changes (add, rename, drop, retype, new
derived column, changed derived expression) interleaved with batches, each state compared with
the independent model (``sql_model.Model`` with the spec each batch was landed under), and the
refusals of changes a run cannot apply."""

from __future__ import annotations

import pytest

from pipeline_sql.evolution import spec_version
from pipeline_sql.runner import LayerError
from sql_model import make_spec

BASE = [
    ("id", "INT64"),
    ("name", "STRING"),
    ("amount", "STRING"),
    ("score", "STRING"),
    ("ver", "INT64"),
]


def spec_with(columns=BASE, **kw):
    return make_spec(columns, "id", version_by="ver", **kw)


def col(name, typ="STRING", **extra):
    return {"source": f"src_{extra.pop('source', name)}", "name": name, "type": typ, **extra}


def dwh_meta(p):
    return {k: (r["_row_hash"], r["_updated_at"], r["_inserted_at"]) for k, r in p.dwh(meta=True).items()}


def test_a_sequence_of_spec_changes_keeps_history_and_matches_the_model(pipe_factory):
    v1 = spec_with()
    p1 = pipe_factory(v1)
    batches, specs = [], []

    def land(p, rows):
        p.land(rows, name=f"batch_{len(batches) + 1:04d}.csv")  # pipes of one table share the folder
        batches.append(rows)
        specs.append(p.spec)

    land(p1, [
        {"id": "1", "name": "ann", "amount": "10", "score": "5", "ver": "1"},
        {"id": "2", "name": "bob", "amount": "20", "score": "x", "ver": "1"},
        {"id": "3", "name": "cy", "amount": None, "score": "7", "ver": "1"},
    ])
    p1.run_all()
    p1.assert_model(batches, specs)
    hashes_before = {r["_row_hash"] for r in p1.archive()}
    meta_before = dwh_meta(p1)

    # 1. add a nullable column: in place; no archived row gets a new version, no DWH row changes
    v2 = spec_with(BASE + [("phone", "STRING")])
    p2 = p1.respec(v2)
    p2.run_all()
    assert {r["_row_hash"] for r in p2.archive()} == hashes_before
    assert dwh_meta(p2) == meta_before
    assert all(r["phone"] is None for r in p2.dwh_rows())
    # the same values again (phone NULL): nothing new; a phone for key 1: a new version
    land(p2, [
        {"id": "1", "name": "ann", "amount": "10", "score": "5", "ver": "1"},
        {"id": "2", "name": "bob", "amount": "20", "score": "x", "ver": "2", "phone": "555"},
    ])
    # a late file in the old layout (no phone column) replays: phone NULL
    land(p1, [{"id": "4", "name": "dee", "amount": "1", "score": "2", "ver": "1"}])
    p2.run_all()
    p2.assert_model(batches, specs)
    assert len(p2.archive()) == 5  # 3 + key 2's new version + key 4
    assert dwh_meta(p2)[(1,)] == meta_before[(1,)]  # unchanged key: not even updated

    # 2. rename name -> full_name: the archive keeps the column as `name`, the DWH renames it
    v3 = spec_with([BASE[0], col("full_name", source="name", renamed_from="name")] + BASE[2:] + [("phone", "STRING")])
    p3 = p2.respec(v3)
    p3.run_all()
    assert dwh_meta(p3) == dwh_meta(p2)
    assert {k: r["full_name"] for k, r in p3.dwh().items()} == {(1,): "ann", (2,): "bob", (3,): "cy", (4,): "dee"}
    assert "name" in p3.archive()[0] and "full_name" not in p3.archive()[0]
    land(p3, [{"id": "3", "full_name": "cyd", "amount": "3", "score": "8", "ver": "2"}])
    p3.run_all()
    p3.assert_model(batches, specs)

    # 3. drop amount: leaves the DWH, the archive keeps every value it had
    v4 = spec_with([BASE[0], col("full_name", source="name", renamed_from="name"), col("amount", dropped=True), BASE[3], BASE[4], ("phone", "STRING")])
    p4 = p3.respec(v4)
    p4.run_all()
    assert "amount" not in p4.dwh_rows()[0]
    assert sorted(r["amount"] for r in p4.archive() if r["amount"]) == ["1", "10", "20", "20", "3"]
    land(p4, [{"id": "5", "full_name": "eve", "score": "1", "ver": "1"}])
    p4.run_all()
    p4.assert_model(batches, specs)

    # 4. retype score STRING -> INT64: a normal run refuses, naming the change and the way out
    v5 = spec_with([BASE[0], col("full_name", source="name", renamed_from="name"), col("amount", dropped=True), ("score", "INT64"), BASE[4], ("phone", "STRING")])
    p5 = p4.respec(v5)
    with pytest.raises(LayerError) as e:
        p5.run_all()
    assert "column score changes type STRING -> INT64" in str(e.value)
    assert "--full-refresh --tables items" in str(e.value)
    assert p5.dwh() == p4.dwh()  # nothing written
    rows = p5.runner.run_table(v5, full_refresh=True)
    assert [r.layer for r in rows] == ["refresh", "checks"]
    # key 2's only versions have score 'x': no valid version is left, it leaves the DWH
    p5.assert_model(batches, specs)
    assert (2,) not in p5.dwh()
    assert {r["column_name"] for r in p5.rejects()} == {"score"}
    land(p5, [{"id": "1", "full_name": "ann", "score": "9", "ver": "3"}])
    p5.run_all()  # incremental again after the refresh
    p5.assert_model(batches, specs)

    # 5. a new derived column, then a changed expression: full refresh fills every row
    cols5 = [BASE[0], col("full_name", source="name", renamed_from="name"), col("amount", dropped=True), ("score", "INT64"), BASE[4], ("phone", "STRING")]
    v6 = spec_with(cols5, transform=[{"name": "shout", "type": "STRING", "expr": "UPPER(full_name)"}])
    p6 = p5.respec(v6)
    with pytest.raises(LayerError, match="new derived column shout"):
        p6.run_all()
    p6.runner.run_table(v6, full_refresh=True)
    assert {k: r["shout"] for k, r in p6.dwh().items()} == {k: r["full_name"].upper() for k, r in p6.dwh().items()}
    v7 = spec_with(cols5, transform=[{"name": "shout", "type": "STRING", "expr": "CONCAT(full_name, '!')"}])
    p7 = p6.respec(v7)
    with pytest.raises(LayerError, match=r"derived column shout changes \(expression\)"):
        p7.run_all()
    p7.runner.run_table(v7, full_refresh=True)
    assert {k: r["shout"] for k, r in p7.dwh().items()} == {k: r["full_name"] + "!" for k, r in p7.dwh().items()}
    p7.assert_model(batches, specs)

    # every batch records the spec version that archived it; every applied version is recorded
    by_file = {b["source_file"].rsplit("/", 1)[-1]: b["spec_version"] for b in p7.batches()}
    assert by_file["batch_0001.csv"] == spec_version(v1)
    assert by_file["batch_0002.csv"] == spec_version(v2)
    applied = p7.query(f"SELECT spec_version, full_refresh FROM {p7.ref('archive', '__specs')} ORDER BY applied_at")
    assert [r["spec_version"] for r in applied] == [spec_version(s) for s in (v1, v2, v3, v4, v5, v6, v7)]
    assert [r["full_refresh"] for r in applied] == [False, False, False, False, True, True, True]


def test_changes_a_run_cannot_apply_are_refused_with_the_way_forward(pipe_factory):
    v1 = spec_with()
    p = pipe_factory(v1)
    p.land([{"id": "1", "name": "a", "amount": "1", "score": "1", "ver": "1"}])
    p.run_all()
    before = p.snapshot()
    cases = [
        (spec_with(BASE[:2] + BASE[3:]), "column amount is no longer in the spec", "dropped: true"),
        (spec_with(BASE + [col("phone", required=True)]), "new column phone is required", "without `required: true`"),
        (make_spec(BASE, ["id", "name"], version_by="ver"), "key changes id -> id, name", "new spec"),
    ]
    for spec, what, remedy in cases:
        with pytest.raises(LayerError) as e:
            p.respec(spec).run_all()
        assert e.value.layer == "spec"
        assert what in str(e.value) and remedy in str(e.value)
        assert p.snapshot() == before  # nothing written


def test_dropping_a_typed_column_with_rejects_refuses_until_a_full_refresh_readmits_its_versions(pipe_factory):
    """Key 2's only version failed score's INT64 cast: a reject, not in the DWH. Dropping score
    makes it valid, so the plain run refuses (naming the count and the full refresh) and the
    full refresh brings key 2 into the DWH; dropping a typed column nothing failed is in place."""
    typed = [BASE[0], BASE[1], ("amount", "INT64"), ("score", "INT64"), BASE[4]]
    v1 = spec_with(typed)
    p = pipe_factory(v1)
    rows = [{"id": "1", "name": "a", "amount": "1", "score": "5", "ver": "1"}, {"id": "2", "name": "b", "amount": "2", "score": "x", "ver": "1"}]
    p.land(rows)
    p.run_all()
    assert set(p.dwh()) == {(1,)} and [r["column_name"] for r in p.rejects()] == ["score"]
    # amount: every archived value casts: dropped in place by the next run
    no_amount = [BASE[0], BASE[1], col("amount", "INT64", dropped=True), ("score", "INT64"), BASE[4]]
    p = p.respec(spec_with(no_amount))
    p.run_all()
    assert "amount" not in p.dwh()[(1,)]
    # score: one archived version failed its cast: the plain run refuses, nothing written
    no_score = no_amount[:3] + [col("score", "INT64", dropped=True), BASE[4]]
    p = p.respec(spec_with(no_score))
    before = p.snapshot()
    with pytest.raises(LayerError) as e:
        p.run_all()
    assert e.value.layer == "spec" and "1 archived version(s) whose score failed its cast to INT64" in str(e.value)
    assert "--full-refresh" in str(e.value) and p.snapshot() == before
    p.runner.run_table(p.spec, full_refresh=True)
    assert set(p.dwh()) == {(1,), (2,)} and p.rejects() == []
    p.assert_model([rows], [v1])


def test_a_new_environment_replays_files_of_every_spec_version(pipe_factory, tmp_path):
    """Files landed under the old spec (no phone column) and under the new one load into a
    fresh archive under the new spec: the old ones with phone NULL, and the same values landed
    with an empty phone are the same version."""
    v1 = spec_with()
    v2 = spec_with(BASE + [("phone", "STRING")])
    old = pipe_factory(v1)
    rows1 = [{"id": "1", "name": "a", "amount": "1", "score": "1", "ver": "1"}, {"id": "2", "name": "b", "amount": "2", "score": "2", "ver": "1"}]
    old.land(rows1)
    new = old.respec(v2)
    rows2 = [{"id": "1", "name": "a", "amount": "1", "score": "1", "ver": "1", "phone": None}, {"id": "2", "name": "b", "amount": "2", "score": "2", "ver": "2", "phone": "7"}]
    new.land(rows2, name="batch_0002.csv")
    new.run_all()  # the first run already has v2: both files replay
    new.assert_model([rows1, rows2], [v1, v2])
    assert len(new.archive()) == 3
    assert new.dwh()[(2,)]["phone"] == "7" and new.dwh()[(1,)]["phone"] is None


def test_a_new_table_records_its_version_without_probing_and_a_spec_changed_before_its_first_run_is_applied(pipe_factory, monkeypatch):
    """Bootstrap created every stored table from the spec: its first run only records the
    version (no column probes: they cost a round trip each per table). When the spec changed
    between the bootstrap and the first run (same runner), the tables are brought up to it."""
    v1 = spec_with()
    p = pipe_factory(v1)  # bootstraps from v1
    probed = []
    real = p.runner.columns
    monkeypatch.setattr(p.runner, "columns", lambda *a, **k: probed.append(a[1]) or real(*a, **k))
    p.land([{"id": "1", "name": "a", "amount": "1", "score": "x", "ver": "1"}])
    p.runner.run_table(v1)
    assert probed == [] and p.runner.table_states([v1])[v1.table].spec_version == spec_version(v1)

    q = pipe_factory(v1)  # bootstraps from v1 ...
    v2 = spec_with(BASE + [("phone", "STRING")])
    q.spec = v2  # ... then runs under v2 with the same runner: phone must be added first
    monkeypatch.setattr(q.runner, "columns", lambda *a, **k: probed.append(a[1]) or real.__func__(q.runner, *a, **k))
    q.land([{"id": "1", "name": "a", "amount": "1", "score": "x", "ver": "1", "phone": "555"}])
    q.runner.run_table(v2)
    assert "archive" in probed and "dwh" in probed
    assert q.dwh()[(1,)]["phone"] == "555"
