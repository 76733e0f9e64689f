"""Case tests of the five layers on the embedded engine: rejects, NULL keys, duplicates, late
versions, ties, multi-column keys, every declared type, CSV and JSON sources, re-landed files,
derived columns and quality checks."""

from __future__ import annotations

from datetime import date, datetime, timezone
from decimal import Decimal

import pytest

from pipeline_sql.naming import Naming
from pipeline_sql.render import render_table
from pipeline_sql.runner import UP_TO_DATE, LayerError
from sql_model import Model, make_spec, row_hash

UTC = timezone.utc


def _reject_set(pipe, key: str = "id") -> set[tuple]:
    return {(r[key], r["column_name"], r["value"], r["reason"]) for r in pipe.rejects()}


# --------------------------------------------------------------------------- rejects


def test_rejects_record_column_value_reason_and_raw_key_and_never_reach_the_dwh(pipe_factory):
    spec = make_spec([("id", "INT64"), ("name", "STRING"), ("amount", "INT64"), ("day", "DATE")], "id")
    p = pipe_factory(spec)
    p.land(
        [
            {"id": "1", "name": "ok", "amount": "10", "day": "2024-01-31"},
            {"id": "2", "name": "bad amount", "amount": "abc", "day": "2024-02-01"},
            {"id": "3", "name": "two bad", "amount": "12x", "day": "2024-13-45"},
            {"id": "abc", "name": "bad key", "amount": "1", "day": None},
            {"id": "4", "name": None, "amount": None, "day": None},  # NULLs are valid, not rejects
        ]
    )
    res = {r.layer: r for r in p.run_all()}
    assert p.dwh() == {
        (1,): {"id": 1, "name": "ok", "amount": 10, "day": date(2024, 1, 31)},
        (4,): {"id": 4, "name": None, "amount": None, "day": None},
    }
    assert _reject_set(p) == {
        ("2", "amount", "abc", "not a valid INT64"),
        ("3", "amount", "12x", "not a valid INT64"),
        ("3", "day", "2024-13-45", "not a valid DATE"),
        ("abc", "id", "abc", "not a valid INT64"),
    }
    # each reject carries its archive version's provenance
    archive = {(r["id"], r["_row_hash"]): r for r in p.archive()}
    for r in p.rejects():
        a = archive[(r["id"], r["_row_hash"])]
        assert (r["_batch_id"], r["_source_file"], r["_ingested_at"]) == (a["_batch_id"], a["_source_file"], a["_ingested_at"])
        assert r["_source_file"] == "items/batch_0001.csv"
    # the view's columns: raw key, what failed and why, the version's provenance (no rejected_at)
    (one,) = [r for r in p.rejects() if r["column_name"] == "day"]
    assert set(one) == {"id", "column_name", "value", "reason", "_row_hash", "_batch_id", "_source_file", "_ingested_at"}
    assert isinstance(one["id"], str)  # the raw key, as archived
    # the run reports them: the delta counts its window's invalid versions (ids 2, 3 and 'abc'),
    # the DWH got only the valid rows
    assert res["delta"].rows_out == 2 and res["delta"].detail == {"rejected": 3}
    assert (res["transform"].rows_in, res["transform"].rows_out) == (2, 2)
    assert res["dwh"].detail == {"inserted": 2, "updated": 0} and res["dwh"].rows_out == 2
    # rejected values never reach the DWH, not even nulled: keys 2, 3 and 'abc' are absent
    assert {k for (k,) in p.dwh()} == {1, 4}

    # recorded once, whatever runs again, in order or not
    before = p.snapshot()
    p.run_all()
    for layer in ("archive", "delta", "transform", "dwh", "transform", "dwh", "delta", "delta", "archive", "dwh"):
        p.run(layer)
    assert p.snapshot() == before
    assert len(p.rejects()) == 4


def test_a_later_invalid_version_keeps_the_valid_one_and_is_recorded_once(pipe_factory):
    spec = make_spec([("id", "INT64"), ("amount", "NUMERIC"), ("ver", "INT64")], "id", version_by="ver")
    p = pipe_factory(spec)
    p.land([{"id": "1", "amount": "1.5", "ver": "1"}])
    p.run_all()
    p.land([{"id": "1", "amount": "not-a-number", "ver": "2"}, {"id": "1", "amount": "2.5", "ver": "zz"}])
    p.run_all()
    assert p.dwh() == {(1,): {"id": 1, "amount": Decimal("1.5"), "ver": 1}}
    assert _reject_set(p) == {
        ("1", "amount", "not-a-number", "not a valid NUMERIC"),
        ("1", "ver", "zz", "not a valid INT64"),
    }
    p.run_all()
    p.run("dwh")
    assert len(p.rejects()) == 2


# --------------------------------------------------------------------------- NULL keys, duplicates


def test_null_keys_are_not_archived_but_counted_with_the_batch(pipe_factory):
    spec = make_spec([("region", "STRING"), ("id", "INT64"), ("name", "STRING")], ["region", "id"])
    p = pipe_factory(spec)
    p.land(
        [
            {"region": "eu", "id": "1", "name": "a"},
            {"region": None, "id": "2", "name": "no region"},
            {"region": "eu", "id": None, "name": "no id"},
            {"region": None, "id": None, "name": "nothing"},
            {"region": "us", "id": "1", "name": "b"},
        ]
    )
    res = p.run_all()
    archive_res = next(r for r in res if r.layer == "archive")
    assert archive_res.detail["null_key_rows"] == 3
    assert sorted((r["region"], r["id"]) for r in p.archive()) == [("eu", "1"), ("us", "1")]
    (b,) = p.batches()
    assert (b["rows_in"], b["null_key_rows"], b["rows_archived"]) == (5, 3, 2)
    assert b["source_file"] == "items/batch_0001.csv" and len(b["content_sha256"]) == 64
    assert set(p.dwh()) == {("eu", 1), ("us", 1)}
    assert p.rejects() == []


def test_null_keys_in_json_are_counted_too(pipe_factory):
    spec = make_spec([("id", "STRING"), ("name", "STRING")], "id", fmt="json")
    p = pipe_factory(spec)
    p.land([{"id": None, "name": "x"}, {"name": "key missing"}, {"id": "k", "name": "y"}])
    p.run_all()
    (b,) = p.batches()
    assert (b["rows_in"], b["null_key_rows"], b["rows_archived"]) == (3, 2, 1)
    assert p.dwh() == {("k",): {"id": "k", "name": "y"}}


def test_exact_duplicate_rows_in_a_batch_are_archived_once(pipe_factory):
    spec = make_spec([("id", "INT64"), ("name", "STRING"), ("n", "INT64")], "id")
    p = pipe_factory(spec)
    dup = {"id": "1", "name": "same", "n": "7"}
    p.land([dup, dup, {"id": "2", "name": "x", "n": None}, dup, {"id": "2", "name": "x", "n": None}])
    p.run_all()
    assert sorted((r["id"], r["name"]) for r in p.archive()) == [("1", "same"), ("2", "x")]
    (b,) = p.batches()
    assert (b["rows_in"], b["rows_archived"]) == (5, 2)
    # the same rows in a later batch (another file content) add nothing either
    p.land([dup, {"id": "3", "name": "new", "n": "1"}])
    p.run_all()
    assert len(p.archive()) == 3
    assert [b["rows_archived"] for b in sorted(p.batches(), key=lambda b: b["archived_at"])] == [2, 1]
    assert p.dwh() == {
        (1,): {"id": 1, "name": "same", "n": 7},
        (2,): {"id": 2, "name": "x", "n": None},
        (3,): {"id": 3, "name": "new", "n": 1},
    }


# --------------------------------------------------------------------------- versions and ties


@pytest.mark.parametrize("same_window", [False, True], ids=["applied-between", "same-delta"])
def test_a_late_older_version_never_regresses_the_dwh(pipe_factory, same_window):
    spec = make_spec([("id", "INT64"), ("name", "STRING"), ("updated", "TIMESTAMP")], "id", version_by="updated")
    p = pipe_factory(spec)
    p.land(
        [
            {"id": "1", "name": "new", "updated": "2024-05-02 10:00:00"},
            {"id": "2", "name": "dated", "updated": "2024-05-01 00:00:00"},
        ]
    )
    if same_window:  # both batches archived before one delta sees them together
        p.run("staging"), p.run("archive")
    else:
        p.run_all()
    p.land(
        [
            {"id": "1", "name": "old", "updated": "2024-05-01 09:00:00"},  # older: ignored
            {"id": "2", "name": "undated", "updated": None},  # NULL version is the oldest
            {"id": "3", "name": "only", "updated": None},
        ]
    )
    p.run_all()
    assert p.dwh() == {
        (1,): {"id": 1, "name": "new", "updated": datetime(2024, 5, 2, 10, tzinfo=UTC)},
        (2,): {"id": 2, "name": "dated", "updated": datetime(2024, 5, 1, tzinfo=UTC)},
        (3,): {"id": 3, "name": "only", "updated": None},
    }
    assert len(p.archive()) == 5  # both versions are history
    # a newer one still wins afterwards
    p.land([{"id": "1", "name": "newest", "updated": "2024-05-03 00:00:00"}])
    p.run_all()
    assert p.dwh()[(1,)]["name"] == "newest"


def test_a_revert_to_an_archived_version_is_not_a_new_version(pipe_factory):
    """(key, row hash) already archived -> not archived again, so A, B, A leaves B in the DWH
    (the archive keeps the first occurrence; this is the documented archive rule)."""
    spec = make_spec([("id", "INT64"), ("name", "STRING")], "id")
    p = pipe_factory(spec)
    for name in ("A", "B", "A"):
        p.land([{"id": "1", "name": name}])
        p.run_all()
    assert p.dwh() == {(1,): {"id": 1, "name": "B"}}
    assert sorted(r["name"] for r in p.archive()) == ["A", "B"]


def test_ties_on_version_break_by_batch_then_row_hash(pipe_factory):
    spec = make_spec([("id", "INT64"), ("name", "STRING"), ("ver", "INT64")], "id", version_by="ver")
    p = pipe_factory(spec)
    names = ["alpha", "bravo", "charlie"]
    # same key, same version, same batch: the largest row hash wins (deterministic)
    p.land([{"id": "1", "name": n, "ver": "5"} for n in names] + [{"id": "2", "name": "first", "ver": "5"}])
    p.run_all()
    winner = max(names, key=lambda n: row_hash({"id": "1", "name": n, "ver": "5"}))
    assert p.dwh()[(1,)]["name"] == winner
    assert p.dwh(meta=True)[(1,)]["_row_hash"] == row_hash({"id": "1", "name": winner, "ver": "5"})
    # same version in a later batch: the later batch wins
    p.land([{"id": "2", "name": "second", "ver": "5"}])
    p.run_all()
    assert p.dwh()[(2,)]["name"] == "second"
    # and a lower version in a later batch loses
    p.land([{"id": "2", "name": "third", "ver": "4"}])
    p.run_all()
    assert p.dwh()[(2,)]["name"] == "second"


def test_without_version_by_the_latest_batch_wins_and_ties_break_by_hash(pipe_factory):
    spec = make_spec([("id", "STRING"), ("name", "STRING")], "id")
    p = pipe_factory(spec)
    p.land([{"id": "k", "name": "x"}, {"id": "k", "name": "y"}])
    p.land([{"id": "j", "name": "1"}])
    p.land([{"id": "j", "name": "2"}])
    p.run_all()  # three batches archived before one delta
    assert p.dwh() == {
        ("k",): {"id": "k", "name": max("xy", key=lambda n: row_hash({"id": "k", "name": n}))},
        ("j",): {"id": "j", "name": "2"},
    }


def test_multi_column_keys(pipe_factory):
    spec = make_spec(
        [("region", "STRING"), ("day", "DATE"), ("id", "INT64"), ("qty", "INT64")],
        ["region", "day", "id"],
        checks=[{"unique": ["region", "day", "id"]}, {"not_null": ["region", "day", "id"]}],
    )
    p = pipe_factory(spec)
    p.land(
        [
            {"region": "eu", "day": "2024-01-01", "id": "1", "qty": "1"},
            {"region": "us", "day": "2024-01-01", "id": "1", "qty": "2"},
            {"region": "eu", "day": "2024-01-02", "id": "1", "qty": "3"},
            {"region": "eu", "day": "2024-01-01", "id": "2", "qty": "4"},
            {"region": "eu", "day": "2024-99-01", "id": "1", "qty": "5"},  # key part fails its cast
        ]
    )
    p.run_all()
    p.land([{"region": "us", "day": "2024-01-01", "id": "1", "qty": "20"}])
    p.run_all()
    d1, d2 = date(2024, 1, 1), date(2024, 1, 2)
    assert {k: v["qty"] for k, v in p.dwh().items()} == {
        ("eu", d1, 1): 1,
        ("us", d1, 1): 20,
        ("eu", d2, 1): 3,
        ("eu", d1, 2): 4,
    }
    (rej,) = p.rejects()
    assert (rej["region"], rej["day"], rej["id"], rej["column_name"], rej["value"]) == ("eu", "2024-99-01", "1", "day", "2024-99-01")


# --------------------------------------------------------------------------- types and formats

ALL_TYPES = [
    ("id", "STRING"),
    ("n", "INT64"),
    ("amount", "NUMERIC"),
    ("ratio", "FLOAT64"),
    ("active", "BOOL"),
    ("day", "DATE"),
    ("seen_at", "TIMESTAMP"),
]
TYPED_ROWS = [
    (
        {"id": "a", "n": "-9223372036854775808", "amount": "12345678901.123456789", "ratio": "1.5",
         "active": "true", "day": "2024-02-29", "seen_at": "2024-01-02 03:04:05.123456+00:00"},
        {"id": "a", "n": -(2**63), "amount": Decimal("12345678901.123456789"), "ratio": 1.5,
         "active": True, "day": date(2024, 2, 29), "seen_at": datetime(2024, 1, 2, 3, 4, 5, 123456, tzinfo=UTC)},
    ),
    (
        {"id": "b", "n": "42", "amount": "99999999999999999999.999999999", "ratio": "-0.25",
         "active": "false", "day": "1999-12-31", "seen_at": "2024-06-30T23:59:59Z"},
        {"id": "b", "n": 42, "amount": Decimal("99999999999999999999.999999999"), "ratio": -0.25,
         "active": False, "day": date(1999, 12, 31), "seen_at": datetime(2024, 6, 30, 23, 59, 59, tzinfo=UTC)},
    ),
    (
        {"id": "c", "n": "0", "amount": "-0.000000001", "ratio": "1e3",
         "active": "TRUE", "day": "2000-01-01", "seen_at": "2024-03-01 12:00:00+02:00"},
        {"id": "c", "n": 0, "amount": Decimal("-0.000000001"), "ratio": 1000.0,
         "active": True, "day": date(2000, 1, 1), "seen_at": datetime(2024, 3, 1, 10, tzinfo=UTC)},
    ),
    (
        {"id": "d", "n": None, "amount": "1000000000.5", "ratio": None, "active": None, "day": None, "seen_at": None},
        {"id": "d", "n": None, "amount": Decimal("1000000000.5"), "ratio": None, "active": None, "day": None, "seen_at": None},
    ),
]


def _assert_typed(got: dict, want: dict) -> None:
    assert got == want
    for k, v in want.items():  # == would accept 1 == 1.0 == True; the Python types must match
        assert type(got[k]) is type(v), (k, got[k], v)
        if isinstance(v, Decimal):
            assert str(got[k].normalize()) == str(v.normalize())


@pytest.mark.parametrize("fmt", ["csv", "json"])
def test_every_declared_type_round_trips_into_the_dwh(pipe_factory, fmt):
    spec = make_spec(ALL_TYPES, "id", fmt=fmt)
    p = pipe_factory(spec)
    p.land([src for src, _ in TYPED_ROWS])
    p.run_all()
    dwh = p.dwh()
    assert p.rejects() == []
    assert set(dwh) == {(want["id"],) for _, want in TYPED_ROWS}
    for _, want in TYPED_ROWS:
        _assert_typed(dwh[(want["id"],)], want)
    assert Model(spec, [[src for src, _ in TYPED_ROWS]]).dwh() == dwh
    # the DWH's declared types
    cols = p.query(
        f"SELECT column_name, data_type FROM `{p.naming.project}.{p.naming.dataset('dwh')}.INFORMATION_SCHEMA.COLUMNS` "
        "WHERE table_name = 'items'"
    )
    types = {c["column_name"]: c["data_type"].upper() for c in cols}
    assert types["n"] in ("INT64", "BIGINT") and types["active"] in ("BOOL", "BOOLEAN")
    assert types["amount"].startswith(("NUMERIC", "DECIMAL", "BIGNUMERIC"))


def test_csv_quoting_commas_quotes_and_newlines_survive(pipe_factory):
    spec = make_spec([("id", "INT64"), ("text", "STRING")], "id")
    p = pipe_factory(spec)
    texts = ["a,b", 'say "hi"', "two\nlines", " padded ", "~", "3:abc"]
    p.land([{"id": str(i), "text": t} for i, t in enumerate(texts)])
    p.run_all()
    assert {k[0]: v["text"] for k, v in p.dwh().items()} == dict(enumerate(texts))
    # the row hash is the documented one (so the model's tie-break is the engine's)
    assert {r["_row_hash"] for r in p.archive()} == {row_hash({"id": str(i), "text": t}) for i, t in enumerate(texts)}


def test_csv_with_another_delimiter(pipe_factory):
    spec = make_spec([("id", "INT64"), ("text", "STRING")], "id", source={"format": "csv", "path": "items/", "delimiter": ";"})
    p = pipe_factory(spec)
    p.land([], raw="src_id;src_text\n1;a,b\n2;c\n")
    p.run_all()
    assert p.dwh() == {(1,): {"id": 1, "text": "a,b"}, (2,): {"id": 2, "text": "c"}}


def test_json_numbers_and_booleans_are_loaded_as_their_text_through_float(pipe_factory):
    """NDJSON values should be strings (the staging layer is all STRING). What the embedded
    engine does with JSON numbers and booleans into a STRING column, measured here: booleans
    become 'true'/'false', integers their digits, and non-integers go through a float, so a
    NUMERIC with more than ~15 significant digits LOSES digits (12345678901.123456789 arrives as
    12345678901.123457). Sources must quote decimals; BigQuery's own behaviour for a JSON number
    into a STRING column is not confirmed here."""
    spec = make_spec([("id", "INT64"), ("amount", "NUMERIC"), ("ratio", "FLOAT64"), ("active", "BOOL")], "id", fmt="json")
    p = pipe_factory(spec)
    p.land(
        [
            {"id": 1, "amount": 12345678901.123456789, "ratio": 0.5, "active": True},
            {"id": 2, "amount": 2.25, "ratio": 3, "active": False},
            {"id": "3", "amount": "12345678901.123456789", "ratio": "0.5", "active": "true"},
        ]
    )
    p.run_all()
    staged = {r["src_id"]: r for r in p.table("staging")}
    assert staged["1"]["src_active"] == "true" and staged["2"]["src_active"] == "false"
    assert staged["1"]["src_amount"] == "12345678901.123457"  # float-formatted: digits lost
    assert p.dwh() == {
        (1,): {"id": 1, "amount": Decimal("12345678901.123457"), "ratio": 0.5, "active": True},
        (2,): {"id": 2, "amount": Decimal("2.25"), "ratio": 3.0, "active": False},
        (3,): {"id": 3, "amount": Decimal("12345678901.123456789"), "ratio": 0.5, "active": True},
    }


def test_json_strings_empty_string_is_not_null(pipe_factory):
    spec = make_spec([("id", "STRING"), ("text", "STRING"), ("n", "INT64")], "id", fmt="json")
    p = pipe_factory(spec)
    p.land([{"id": "a", "text": "", "n": None}, {"id": "b", "text": None, "n": ""}])
    p.run_all()
    assert p.dwh() == {("a",): {"id": "a", "text": "", "n": None}}
    # '' is not NULL: it fails its INT64 cast and is rejected, not nulled
    assert _reject_set(p) == {("b", "n", "", "not a valid INT64")}


# --------------------------------------------------------------------------- landing


def test_relanding_the_same_content_under_another_name_loads_nothing(pipe_factory):
    spec = make_spec([("id", "INT64"), ("name", "STRING")], "id")
    p = pipe_factory(spec)
    first = p.land([{"id": "1", "name": "a"}, {"id": "2", "name": "b"}])
    p.run_all()
    before = p.snapshot()
    (p.folder / "copy_of_batch.csv").write_bytes(first.read_bytes())
    (p.folder / "zz_again.csv").write_bytes(first.read_bytes())
    assert p.runner.pending_files(spec) == []
    res = p.run("staging")
    assert res.detail.get("file") is None
    p.run_all()
    assert p.snapshot() == before
    # a file with the same rows in another order is other content: staged, but adds no version
    p.land([{"id": "2", "name": "b"}, {"id": "1", "name": "a"}])
    p.run_all()
    after = p.snapshot()
    assert after["archive"] == before["archive"] and after["dwh"] == before["dwh"]
    assert len(p.batches()) == 2 and {b["rows_archived"] for b in p.batches()} == {2, 0}


def test_an_empty_file_is_a_batch_with_no_rows(pipe_factory):
    spec = make_spec([("id", "INT64"), ("name", "STRING")], "id")
    p = pipe_factory(spec)
    p.land([])
    p.run_all()
    (b,) = p.batches()
    assert (b["rows_in"], b["null_key_rows"], b["rows_archived"]) == (0, 0, 0)
    assert p.dwh() == {} and p.archive() == []
    p.land([{"id": "1", "name": "a"}])
    p.run_all()
    assert p.dwh() == {(1,): {"id": 1, "name": "a"}}


def test_files_load_one_batch_per_staging_run_in_name_order(pipe_factory):
    spec = make_spec([("id", "INT64"), ("name", "STRING")], "id")
    p = pipe_factory(spec)
    p.land([{"id": "1", "name": "b"}], name="b.csv")
    p.land([{"id": "1", "name": "a"}], name="a.csv")
    p.land([{"id": "1", "name": "c"}], name="c.txt")  # not this source's format: ignored
    assert p.run("staging").detail["file"] == "items/a.csv"
    assert p.run("staging").detail["file"] == "items/a.csv"  # not archived yet: same file again
    p.run("archive")
    assert p.run("staging").detail["file"] == "items/b.csv"
    p.run("archive")
    assert p.run("staging").detail.get("file") is None
    p.run_all()
    assert p.dwh() == {(1,): {"id": 1, "name": "b"}}  # later batch wins


# --------------------------------------------------------------------------- derived columns


def test_derived_transform_columns(pipe_factory):
    spec = make_spec(
        [("id", "INT64"), ("email", "STRING"), ("price", "NUMERIC"), ("qty", "INT64"), ("seen_at", "TIMESTAMP")],
        "id",
        transform=[
            {"name": "email_domain", "type": "STRING", "expr": "LOWER(SPLIT(email, '@')[SAFE_OFFSET(1)])"},
            {"name": "total", "type": "NUMERIC", "expr": "price * qty"},
            {"name": "day", "type": "DATE", "expr": "DATE(seen_at)"},
            {"name": "big", "type": "BOOL", "expr": "qty > 10"},
        ],
        dwh={"partition_by": {"column": "day"}, "cluster_by": ["email_domain"]},
    )
    p = pipe_factory(spec)
    p.land(
        [
            {"id": "1", "email": "Ann@Example.COM", "price": "2.5", "qty": "3", "seen_at": "2024-01-02 23:30:00"},
            {"id": "2", "email": "nobody", "price": None, "qty": "11", "seen_at": None},
            {"id": "3", "email": "x@y.z", "price": "1.1", "qty": "x", "seen_at": None},  # rejected
        ]
    )
    p.run_all()
    dwh = p.dwh()
    assert dwh == {
        (1,): {"id": 1, "email": "Ann@Example.COM", "price": Decimal("2.5"), "qty": 3,
               "seen_at": datetime(2024, 1, 2, 23, 30, tzinfo=UTC),
               "email_domain": "example.com", "total": Decimal("7.5"), "day": date(2024, 1, 2), "big": False},
        (2,): {"id": 2, "email": "nobody", "price": None, "qty": 11, "seen_at": None,
               "email_domain": None, "total": None, "day": None, "big": True},
    }
    assert type(dwh[(1,)]["total"]) is Decimal and type(dwh[(1,)]["day"]) is date
    # an update recomputes the derived columns
    p.land([{"id": "1", "email": "ann@other.org", "price": "2.5", "qty": "4", "seen_at": "2024-01-03 00:00:00"}])
    p.run_all()
    got = p.dwh()[(1,)]
    assert (got["email_domain"], got["total"], got["day"]) == ("other.org", Decimal("10"), date(2024, 1, 3))


# --------------------------------------------------------------------------- quality checks


def test_checks_pass_on_clean_data(pipe_factory):
    spec = make_spec(
        [("id", "INT64"), ("email", "STRING")],
        "id",
        checks=[{"not_null": ["id", "email"]}, {"unique": ["id"]}, {"unique": ["email"]}],
    )
    p = pipe_factory(spec)
    p.land([{"id": "1", "email": "a"}, {"id": "2", "email": "b"}])
    res = p.run_all()
    assert res[-1].layer == "checks" and res[-1].detail["passed"] == 3
    results = p.check_results()
    assert [r["check_name"] for r in results] == ["not_null(id, email)", "unique(id)", "unique(email)"]
    assert all(r["passed"] and r["failing_rows"] == 0 and r["sample_keys"] == [] and r["observed_value"] == 2 for r in results)


def test_a_failing_unique_check_fails_the_run_with_its_name_after_writing_results(pipe_factory):
    spec = make_spec([("id", "INT64"), ("email", "STRING")], "id", checks=[{"unique": ["email"]}, {"not_null": ["email"]}])
    p = pipe_factory(spec)
    p.land([{"id": "1", "email": "same@x"}, {"id": "2", "email": "same@x"}, {"id": "3", "email": "other"}])
    with pytest.raises(LayerError) as e:
        p.run_all()
    assert e.value.layer == "checks" and e.value.table == "items"
    msg = str(e.value)
    assert "flexyboots checks failed on" in msg and p.naming.table_id("dwh", "items") in msg
    assert "unique(email): 2 of 3 rows sharing their values with another row" in msg
    assert "not_null" not in msg  # only the failing checks are named
    # the results were written before the run failed, with the failing rows' keys
    (unique, not_null) = p.check_results()
    assert unique["check_name"] == "unique(email)" and not unique["passed"] and unique["failing_rows"] == 2
    assert unique["sample_keys"] == ["1", "2"] and unique["severity"] == "error" and unique["columns"] == ["email"]
    assert not_null["passed"]
    assert e.value.result.detail["failed"] == 1
    # the data is loaded (checks report, they do not roll back); re-running fails the same way
    assert len(p.dwh()) == 3
    with pytest.raises(LayerError, match=r"unique\(email\)"):
        p.run("checks")


def test_the_statement_that_fails_a_run_runs_only_after_an_error_severity_failure(pipe_factory, monkeypatch):
    """Locally the checks' last statement (it fails a scheduled run) runs only when the results
    read back hold an error-severity failure; it then raises the deployed message. A warning
    alone does not run it."""
    spec = make_spec([("id", "INT64"), ("email", "STRING")], "id", checks=[{"unique": ["email"], "severity": "warn"}, {"not_null": ["email"]}])
    p = pipe_factory(spec)
    ran = []
    query = p.runner.query
    monkeypatch.setattr(p.runner, "query", lambda sql, *a, **k: ran.append(sql) or query(sql, *a, **k))
    p.land([{"id": "1", "email": "same"}, {"id": "2", "email": "same"}])
    assert p.run_all()[-1].detail["warned"] == 1
    assert not any("now fail the run" in sql for sql in ran)
    p.land([{"id": "3", "email": None}])
    with pytest.raises(LayerError, match=r"flexyboots checks failed on .*: not_null\(email\): 1 of 3 rows with NULL"):
        p.run_all()
    assert sum("now fail the run" in sql for sql in ran) == 1


def test_a_failing_not_null_check_names_itself(pipe_factory):
    spec = make_spec(
        [("id", "INT64"), ("email", "STRING")], "id", checks=[{"unique": ["id"]}, {"not_null": ["email"]}]
    )
    p = pipe_factory(spec)
    p.land([{"id": "1", "email": None}, {"id": "2", "email": None}, {"id": "3", "email": "x"}])
    with pytest.raises(LayerError, match=r"not_null\(email\): 2 of 3 rows with NULL"):
        p.run_all()
    p.land([{"id": "1", "email": "fixed"}, {"id": "2", "email": "fixed too"}])
    p.run_all()  # passes once the data is fixed
    assert all(r["passed"] for r in p.check_results())


def test_warn_severity_is_recorded_and_does_not_fail_the_run(pipe_factory):
    spec = make_spec(
        [("id", "INT64"), ("status", "STRING")],
        "id",
        checks=[{"accepted_values": {"column": "status", "values": ["new", "done"]}, "severity": "warn"}],
    )
    p = pipe_factory(spec)
    p.land([{"id": str(i), "status": "odd" if i % 4 == 0 else "new"} for i in range(1, 30)])
    res = p.run_all()
    assert res[-1].detail == {**res[-1].detail, "passed": 0, "warned": 1, "failed": 0}
    (r,) = p.check_results()
    assert (r["passed"], r["severity"], r["failing_rows"]) == (False, "warn", 7)
    assert r["sample_keys"] == ["4", "8", "12", "16", "20", "24", "28"]
    p.land([{"id": str(i), "status": "odd"} for i in range(100, 112)])
    p.run_all()
    (r,) = p.check_results()
    assert r["failing_rows"] == 19 and len(r["sample_keys"]) == 10  # up to 10 sample keys


ROW_RULES = [
    # (check, rows -> the ids that break it)
    ({"accepted_values": {"column": "n", "values": [1, 2]}}, {"1": "1", "2": "3", "3": None}, ["2"]),
    ({"range": {"column": "amount", "min": "0.005", "max": 10}}, {"1": "0.004", "2": "0.005", "3": "10.000000001", "4": None}, ["1", "3"]),
    ({"range": {"column": "day", "max": "2024-01-31"}}, {"1": "2024-01-31", "2": "2024-02-01"}, ["2"]),
    ({"range": {"column": "seen_at", "min": "2024-01-01 12:00:00"}}, {"1": "2024-01-01 11:59:59", "2": "2024-01-01 12:00:00"}, ["1"]),
    ({"regex": {"column": "code", "pattern": "^\\d{3}-[A-Z]+$"}}, {"1": "123-AB", "2": "12-AB", "3": "123-ab", "4": None, "5": "x 999-Z"}, ["2", "3", "5"]),
    ({"expression": "n * 2 < 5 -- small"}, {"1": "1", "2": "2", "3": "3", "4": None}, ["3"]),
    ({"unique": ["n"]}, {"1": "1", "2": "1", "3": "2", "4": None, "5": None}, ["1", "2"]),
    ({"not_null": ["n", "code"]}, {"1": "1", "2": None}, ["2"]),
]


@pytest.mark.parametrize("check, values, failing", ROW_RULES, ids=lambda x: next(iter(x)) if isinstance(x, dict) else None)
def test_each_row_rule_finds_exactly_the_failing_rows(pipe_factory, check, values, failing):
    spec = make_spec(
        [("id", "INT64"), ("n", "INT64"), ("amount", "NUMERIC"), ("day", "DATE"), ("seen_at", "TIMESTAMP"), ("code", "STRING")],
        "id",
        checks=[{**check, "severity": "warn"}],
    )
    col = {"accepted_values": "n", "range": None, "regex": "code", "expression": "n", "unique": "n", "not_null": "n"}[next(iter(check))]
    col = col or check["range"]["column"]
    p = pipe_factory(spec)
    p.land([{"id": i, col: v, **({"code": "x"} if col != "code" else {})} for i, v in values.items()])
    p.run_all()
    (r,) = p.check_results()
    assert r["sample_keys"] == failing and r["failing_rows"] == len(failing) and r["passed"] == (not failing)
    assert r["observed_value"] == len(values)


def test_check_values_with_line_breaks_render_escaped_and_match(pipe_factory):
    """A check value holding a newline or a carriage return is written '\\n' / '\\r' in the SQL
    (a raw line break ends a GoogleSQL string: BigQuery refused the whole checks script); the
    embedded engine decodes the escapes as BigQuery does."""
    spec = make_spec(
        [("id", "INT64"), ("code", "STRING")], "id", fmt="json",
        checks=[{"accepted_values": {"column": "code", "values": ["a\nb", "c\rd", "x"]}, "severity": "warn"}],
    )
    assert "'a\\nb', 'c\\rd', 'x'" in render_table(spec, Naming()).checks
    p = pipe_factory(spec)
    p.land([{"id": "1", "code": "a\nb"}, {"id": "2", "code": "c\rd"}, {"id": "3", "code": "x"}, {"id": "4", "code": "a b"}])
    p.run_all()
    (r,) = p.check_results()
    assert r["sample_keys"] == ["4"] and r["failing_rows"] == 1


def test_relationships_find_values_missing_from_the_other_dwh(engine, pipe_factory):
    parent = make_spec([("pid", "STRING"), ("name", "STRING")], "pid", table="parents")
    child = make_spec(
        [("id", "INT64"), ("pid", "STRING")], "id", table="children",
        checks=[{"relationships": {"column": "pid", "to": "parents", "field": "pid"}}],
    )
    pp = pipe_factory(parent)
    cp = pipe_factory(child, env=pp.env)  # same datasets: the check reads dwh.parents
    pp.land([{"pid": "a", "name": "A"}, {"pid": "b", "name": "B"}])
    pp.run_all()
    cp.land([{"id": "1", "pid": "a"}, {"id": "2", "pid": "c"}, {"id": "3", "pid": None}, {"id": "4", "pid": "d"}])
    with pytest.raises(LayerError, match=r"relationships\(pid -> parents.pid\): 2 of 4 rows without a match in parents"):
        cp.run_all()
    (r,) = cp.check_results()
    assert r["sample_keys"] == ["2", "4"] and r["referenced_table"] == "parents"
    pp.land([{"pid": "c", "name": "C"}, {"pid": "d", "name": "D"}])
    pp.run_all()
    cp.run("checks")  # the late parents arrived: passes


def test_freshness_compares_the_newest_value_with_the_run_time(pipe_factory):
    spec = make_spec(
        [("id", "INT64"), ("seen", "TIMESTAMP")], "id", version_by="seen",
        checks=[{"freshness": {"max_age": "2 hours"}}],
    )
    p = pipe_factory(spec)
    p.land([{"id": "1", "seen": "2024-05-01 09:00:00"}, {"id": "2", "seen": "2024-05-01 10:30:00"}])
    for layer in ("staging", "archive", "delta", "transform", "dwh"):
        p.run(layer)
    at = lambda h, m=0: datetime(2024, 5, 1, h, m, tzinfo=timezone.utc)  # noqa: E731
    res = p.runner.run_checks(p.spec, run_time=at(12, 30))  # newest is exactly 2 hours old
    (r,) = res.detail["results"]
    assert r["passed"] and r["observed_value"] == 7200 and r["failing_rows"] is None
    with pytest.raises(LayerError, match=r"freshness\(seen\): newest seen is 121 minutes old \(at most 120\)"):
        p.runner.run_checks(p.spec, run_time=at(12, 31))


def test_an_up_to_date_table_judges_again_only_the_checks_that_can_change_without_new_rows(pipe_factory):
    """Nothing new landed: no layer runs. A freshness check still ages (and a relationships
    check's referenced table may have changed), so a table with one runs its checks again; a
    table whose checks judge only its own rows does not."""
    fresh = make_spec(
        [("id", "INT64"), ("seen", "TIMESTAMP")], "id", version_by="seen", table="fresh",
        checks=[{"freshness": {"max_age": "2 hours"}, "severity": "warn"}],
    )
    plain = make_spec([("id", "INT64")], "id", table="plain", checks=[{"unique": ["id"]}])
    fp, pp = pipe_factory(fresh), pipe_factory(plain)
    fp.land([{"id": "1", "seen": "2024-05-01 09:00:00"}])
    pp.land([{"id": "1"}])
    assert [r.layer for r in fp.runner.run_table(fp.spec)][-1] == "checks"
    assert [r.layer for r in pp.runner.run_table(pp.spec)][-1] == "checks"

    again = fp.runner.run_table(fp.spec)
    assert [r.layer for r in again] == [UP_TO_DATE, "checks"]
    (r,) = again[1].detail["results"]
    assert r["check_name"] == "freshness(seen)" and not r["passed"]  # 2024 is long past 2 hours
    assert [r.layer for r in pp.runner.run_table(pp.spec)] == [UP_TO_DATE]


def test_row_count_bounds_and_change_against_the_previous_run(pipe_factory):
    spec = make_spec([("id", "INT64")], "id", checks=[{"row_count": {"min": 2, "max_change": 0.5}}])
    p = pipe_factory(spec)
    p.land([{"id": "1"}])
    with pytest.raises(LayerError, match=r"row_count: 1 rows, previous run none"):
        p.run_all()  # below min; no previous run to compare with
    p.land([{"id": str(i)} for i in range(2, 4)])
    with pytest.raises(LayerError, match=r"row_count: 3 rows, previous run 1"):
        p.run_all()  # 3 rows: min holds, but +200% against the previous run's 1
    (r,) = p.check_results()
    assert (r["observed_value"], r["passed"]) == (3, False) and r["message"] == "3 rows, previous run 1"
    p.land([{"id": "4"}])
    p.run_all()  # 4 rows against 3: +33%
    (r,) = p.check_results()
    assert (r["observed_value"], r["passed"]) == (4, True)


# --------------------------------------------------------------------------- typed keys and names


def test_key_values_equal_after_their_cast_are_one_key(pipe_factory):
    """'1' and '01' are two archived versions (the archive is raw) of ONE INT64 key; the DWH holds
    it once: the newest by the usual order (here: same batch, so the larger row hash)."""
    spec = make_spec([("id", "INT64"), ("name", "STRING")], "id", checks=[{"unique": ["id"]}])
    p = pipe_factory(spec)
    batch = [{"id": "1", "name": "a"}, {"id": "01", "name": "b"}, {"id": "+1", "name": "c"}]
    p.land(batch)
    p.run_all()
    rows = p.dwh_rows()
    assert len(rows) == 1, rows
    winner = max(batch, key=lambda r: row_hash({"id": r["id"], "name": r["name"]}))
    assert rows[0]["name"] == winner["name"]
    assert len(p.archive()) == 3
    p.land([{"id": "001", "name": "later"}])
    p.run_all()
    assert p.dwh() == {(1,): {"id": 1, "name": "later"}}
    p.assert_model([batch, [{"id": "001", "name": "later"}]])


def test_a_reserved_word_column_is_refused_before_anything_runs():
    """Names are rendered unquoted, so `at` (a GoogleSQL reserved keyword) must be refused by the
    spec, not fail at bootstrap with a parser error (found by this suite; fixed in spec.py)."""
    from pipeline_sql.spec import SpecError

    with pytest.raises(SpecError, match="reserved keyword"):
        make_spec([("id", "INT64"), ("at", "TIMESTAMP")], "id")
