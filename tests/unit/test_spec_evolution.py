"""Spec evolution, pure: the spec fields (``renamed_from``, ``required``, ``dropped``), the spec
version, the classification of every kind of change, and the SQL a change adds (the row hash
stays put when a NULL column is added; the archive keeps first names)."""

from __future__ import annotations

import copy

import pytest

from pipeline_sql.evolution import FULL_REFRESH, IN_PLACE, REFUSED, blocking, spec_changes, spec_shape, spec_version, typed_drops
from pipeline_sql.naming import Naming
from pipeline_sql.render import render_archive, render_delta, render_full_refresh, render_rejects_view
from pipeline_sql.schema import pipeline_tables
from pipeline_sql.spec import SpecError, parse_spec

BASE = {
    "table": "customers",
    "source": {"format": "csv", "path": "customers/"},
    "key": ["customer_id"],
    "version_by": "updated_at",
    "columns": [
        {"source": "id", "name": "customer_id", "type": "INT64"},
        {"source": "email", "name": "email", "type": "STRING"},
        {"source": "balance", "name": "balance", "type": "NUMERIC"},
        {"source": "updated", "name": "updated_at", "type": "TIMESTAMP"},
    ],
    "transform": [{"name": "domain", "type": "STRING", "expr": "SPLIT(email, '@')[SAFE_OFFSET(1)]"}],
    "dwh": {"partition_by": {"column": "updated_at"}, "cluster_by": ["customer_id"]},
}
N = Naming(project="acme-data", env="dev")


def spec(mutate=None):
    data = copy.deepcopy(BASE)
    if mutate:
        mutate(data)
    return parse_spec(data, "customers.yaml")


def changes(mutate):
    return spec_changes(spec_shape(spec()), spec_shape(spec(mutate)), "customers")


def cols(d):
    return d["columns"]


# --------------------------------------------------------------------------- spec fields


def test_renamed_from_keeps_the_first_name_in_the_archive():
    def rename(d):
        cols(d)[1].update(name="mail", renamed_from=["email_address", "email"])
        d["transform"][0]["expr"] = "SPLIT(mail, '@')[SAFE_OFFSET(1)]"  # derived columns read the new name

    s = spec(rename)
    c = s.column("mail")
    assert c.renamed_from == ("email_address", "email") and c.archive_name == "email"
    archive = next(t for t in pipeline_tables(s, N) if t.layer == "archive" and t.name == "customers")
    assert [f["name"] for f in archive.fields][:4] == ["customer_id", "email", "balance", "updated_at"]
    assert "    email AS email" in render_archive(s, N)  # loaded from the source under its archive name
    assert "a.email AS mail" in render_delta(s, N)
    # the rejects view reads a renamed typed column under its archive name, reports the new one
    t = spec(lambda d: cols(d)[2].update(name="amount", renamed_from="balance"))
    view = render_rejects_view(t, N)
    assert "SELECT customer_id, 'amount' AS column_name, balance AS value, 'not a valid NUMERIC' AS reason" in view
    assert "WHERE balance IS NOT NULL AND" in view


def test_dropped_columns_stay_in_the_archive_only():
    s = spec(lambda d: cols(d)[2].update(dropped=True))
    assert s.column_names == ("customer_id", "email", "updated_at")
    assert [c.name for c in s.dropped] == ["balance"]
    tables = {(t.layer, t.name): t for t in pipeline_tables(s, N)}
    assert "balance" in [f["name"] for f in tables[("archive", "customers")].fields]
    assert "balance" not in [f["name"] for f in tables[("dwh", "customers")].fields]
    assert "src" not in render_archive(s, N) and "balance AS" not in render_archive(s, N)


@pytest.mark.parametrize(
    "mutate, path, message",
    [
        (lambda d: cols(d)[1].update(required="yes"), "columns[1].required", "expected true or false"),
        (lambda d: cols(d)[1].update(dropped=1), "columns[1].dropped", "expected true or false"),
        (lambda d: cols(d)[1].update(required=True, dropped=True), "columns[1].required", "cannot be required"),
        (lambda d: cols(d)[1].update(renamed_from="email"), "columns[1].renamed_from", "appears twice"),
        (lambda d: cols(d)[1].update(renamed_from="1x"), "columns[1].renamed_from", "not a valid identifier"),
        (
            lambda d: (cols(d)[1].update(name="mail", renamed_from="email"), cols(d).append({"source": "e2", "name": "email", "type": "STRING"})),
            "columns[4].name",
            "the archive keeps columns[1] under 'email'",
        ),
        (lambda d: cols(d)[0].update(dropped=True), "key[0]", "is not a column"),
        (lambda d: [c.update(dropped=True) for c in cols(d)], "columns", "every column is dropped"),
    ],
)
def test_evolution_fields_are_validated(mutate, path, message):
    with pytest.raises(SpecError) as e:
        spec(mutate)
    assert e.value.field == path and message in e.value.reason and "customers.yaml" in str(e.value)


# --------------------------------------------------------------------------- versions and changes


def test_spec_version_ignores_what_changes_no_stored_row():
    v = spec_version(spec())
    assert v == spec_version(spec(lambda d: d.update(schedule="every 12 hours", checks=[{"not_null": ["email"]}], description="x")))
    assert v != spec_version(spec(lambda d: cols(d).append({"source": "phone", "name": "phone", "type": "STRING"})))
    assert len(v) == 16


@pytest.mark.parametrize(
    "mutate, kind, action",
    [
        (lambda d: cols(d).append({"source": "phone", "name": "phone", "type": "STRING"}), "add", IN_PLACE),
        (lambda d: cols(d).append({"source": "phone", "name": "phone", "type": "STRING", "required": True}), "add_required", REFUSED),
        # (balance: no derived column reads it, which would then read the new name)
        (lambda d: cols(d)[2].update(name="amount", renamed_from="balance"), "rename", IN_PLACE),
        # email: a STRING always casts (its derived column goes with it)
        (lambda d: (cols(d)[1].update(dropped=True), d.update(transform=[])), "drop", IN_PLACE),
        # balance (NUMERIC) with no count of its cast failures given: some may have failed
        (lambda d: cols(d)[2].update(dropped=True), "drop", FULL_REFRESH),
        (lambda d: cols(d).pop(2), "remove", REFUSED),
        (lambda d: cols(d)[2].update(type="FLOAT64"), "retype", FULL_REFRESH),
        (lambda d: cols(d)[1].update(required=True), "require", IN_PLACE),
        (lambda d: d["transform"].append({"name": "two", "type": "INT64", "expr": "2"}), "derive", FULL_REFRESH),
        (lambda d: d["transform"][0].update(expr="LOWER(email)"), "rederive", FULL_REFRESH),
        (lambda d: d.update(transform=[]), "underive", IN_PLACE),
        (lambda d: d.update(version_by=None), "version_by", FULL_REFRESH),
        (lambda d: d.update(key=["customer_id", "email"]), "key", REFUSED),
        (lambda d: d["dwh"]["partition_by"].update(granularity="MONTH"), "partition", FULL_REFRESH),
        (lambda d: d["dwh"].update(cluster_by=["email"]), "cluster", IN_PLACE),
    ],
)
def test_each_change_is_classified(mutate, kind, action):
    every = changes(mutate)
    found = [c for c in every if c.kind == kind]
    assert [(c.kind, c.action) for c in found] == [(kind, action)], [c.describe() for c in every]
    # (a new key column is also required in landed files from now on: in place)
    assert all(c.action == IN_PLACE for c in every if c.kind != kind)
    c = found[0]
    if action == FULL_REFRESH:
        assert "--full-refresh --tables customers" in c.describe()
        assert blocking(found, full_refresh=False) == found and blocking(found, full_refresh=True) == []
    if action == REFUSED:
        assert c.remedy and blocking(found, full_refresh=True) == found


def test_dropping_a_typed_column_needs_a_refresh_only_when_archived_values_failed_its_cast():
    # a version whose balance failed its cast was a reject, kept out of the DWH; without the
    # column it is valid (a new key for the DWH, or its key's new latest version)
    old, new = spec_shape(spec()), spec_shape(spec(lambda d: cols(d)[2].update(dropped=True)))
    assert typed_drops(old, new) == [("balance", "NUMERIC")]
    (c,) = spec_changes(old, new, "customers", {"balance": 0})
    assert (c.kind, c.action) == ("drop", IN_PLACE)
    (c,) = spec_changes(old, new, "customers", {"balance": 3})
    assert (c.kind, c.action) == ("drop", FULL_REFRESH)
    assert "3 archived version(s) whose balance failed its cast to NUMERIC" in c.detail and "--full-refresh" in c.remedy
    assert typed_drops(old, spec_shape(spec(lambda d: (cols(d)[1].update(dropped=True), d.update(transform=[]))))) == []


def test_a_forgotten_dropped_column_is_refused():
    old = spec_shape(spec(lambda d: cols(d)[2].update(dropped=True)))
    new = spec_shape(spec(lambda d: cols(d).pop(2)))
    (c,) = spec_changes(old, new, "customers")
    assert (c.kind, c.action) == ("forget", REFUSED) and "dropped: true" in c.remedy


def test_full_refresh_sql_rebuilds_from_the_whole_archive():
    sql = render_full_refresh(spec(), N)
    assert "FROM `acme-data.dev_archive.customers` AS a\n)" in sql  # no high-water mark: every version
    assert "CREATE OR REPLACE TABLE `acme-data.dev_transform.customers` AS" in sql  # the transform layer's own statement
    assert "WHEN NOT MATCHED BY SOURCE THEN DELETE" in sql
    assert "_inserted_at" not in sql.split("WHEN MATCHED THEN UPDATE SET")[1].split("WHEN NOT MATCHED BY TARGET")[0]
