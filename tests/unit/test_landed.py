"""Landed files checked before loading (pipeline_sql.landed): one test per refusal, the message
asserted (file, line, column, what was expected), and a hypothesis fuzz of the checker itself
(any bytes: a FileRefused naming the file, or a result; never another exception)."""

from __future__ import annotations

import csv
import io
import json

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pipeline_sql.landed import FileRefused, check_landed_file, landed_files, load_columns, required_sources, unknown_files
from pipeline_sql.spec import parse_spec


def _spec(fmt: str = "csv", checks=()):
    return parse_spec(
        {
            "table": "parcels",
            "source": {"format": fmt, "path": "parcels/"},
            "key": ["parcel_id"],
            "columns": [
                {"source": "id", "name": "parcel_id", "type": "INT64"},
                {"source": "status", "name": "status", "type": "STRING"},
                {"source": "note", "name": "note", "type": "STRING"},
            ],
            "checks": list(checks),
        }
    )


CSV, JSON = _spec("csv"), _spec("json")


def _refused(spec, tmp_path, data: bytes | str, name: str = "f.csv") -> str:
    p = tmp_path / name
    p.write_bytes(data.encode() if isinstance(data, str) else data)
    with pytest.raises(FileRefused) as e:
        check_landed_file(spec, p)
    assert str(e.value).startswith(str(p))
    return str(e.value)


# --------------------------------------------------------------------------- CSV


def test_csv_accepted_with_its_columns_and_rows(tmp_path):
    p = tmp_path / "ok.csv"
    p.write_bytes("\ufeffid,status,note\r\n1,placed,\"a, \"\"quoted\"\"\nnote\"\r\n2,shipped,x".encode())
    got = check_landed_file(CSV, p)
    assert (got.columns, got.missing, got.rows) == (("id", "status", "note"), (), 2)


def test_load_columns_read_the_header_only_and_refuse_it_as_the_check_does(tmp_path):
    """What the load job needs before the check (run beside it) has read the whole file."""
    p = tmp_path / "f.csv"
    p.write_text("status,id\n1\n")  # a bad row after the header: only the check sees it
    assert load_columns(CSV, p) == (("status", "id"), ("note",))
    assert load_columns(JSON, p) == (("id", "status", "note"), ())
    for header in ("id,stat\n", "status,note\n", "id,id,note\n", ""):
        p.write_text(header)
        with pytest.raises(FileRefused) as whole:
            check_landed_file(CSV, p)
        with pytest.raises(FileRefused) as head:
            load_columns(CSV, p)
        assert str(head.value) == str(whole.value)
    p.write_bytes(b"id,st\xe9tus\n")
    with pytest.raises(FileRefused, match="line 1, column 6: byte 0xe9 is not UTF-8"):
        load_columns(CSV, p)


def test_csv_not_utf8_names_line_and_column(tmp_path):
    msg = _refused(CSV, tmp_path, b"id,status,note\n1,pl\xe9ced,x\n")
    assert msg.endswith(": line 2, column 5: byte 0xe9 is not UTF-8 (invalid continuation byte); expected UTF-8 text (re-export the file as UTF-8)")


def test_csv_truncated_utf8_at_end(tmp_path):
    msg = _refused(CSV, tmp_path, b"id,status,note\n1,x,\xc3")
    assert "line 2" in msg and "UTF-8" in msg


def test_csv_empty_file(tmp_path):
    assert _refused(CSV, tmp_path, b"").endswith(": line 1: empty file; expected a header line id,status,note")


def test_csv_header_unknown_name(tmp_path):
    msg = _refused(CSV, tmp_path, "id,state,note\n1,a,b\n")
    assert msg.endswith(": line 1, column 4: header field 2 'state' is not a source column of the spec; expected id,status,note")


def test_csv_header_in_another_order_is_accepted_in_the_files_order(tmp_path):
    p = tmp_path / "swapped.csv"
    p.write_text("Status,id,note\na,1,b\n")  # a CSV loads by its own header; names compared ignoring case
    assert check_landed_file(CSV, p).columns == ("status", "id", "note")


def test_csv_header_twice_the_same_name(tmp_path):
    assert "header field 2 'ID' appears twice" in _refused(CSV, tmp_path, "id,ID,note\n1,1,b\n")


def test_csv_header_without_a_key_column(tmp_path):
    msg = _refused(CSV, tmp_path, "status,note\na,b\n")
    assert msg.endswith(": line 1: header status,note lacks required column id (a key or `required: true` column); expected id,status,note")


def test_required_sources_are_the_key_columns(tmp_path):
    assert required_sources(CSV) == {"id"}
    assert required_sources(_spec("csv", checks=[{"not_null": ["status"]}])) == {"id"}  # a check judges the DWH, not the file


def test_csv_header_without_a_nullable_column_is_accepted(tmp_path):
    p = tmp_path / "old.csv"
    p.write_text("id,status\n1,a\n")
    got = check_landed_file(CSV, p)
    assert (got.columns, got.missing, got.rows) == (("id", "status"), ("note",), 1)


def test_csv_too_many_fields(tmp_path):
    msg = _refused(CSV, tmp_path, "id,status,note\n1,a,b\n2,a,b,c\n")
    assert msg.endswith(": line 3: 4 fields, expected 3 (id,status,note) (an unquoted ',' inside a value?)")


def test_csv_truncated_line(tmp_path):
    msg = _refused(CSV, tmp_path, "id,status,note\n1,a,b\n2,a")
    assert msg.endswith(": line 3: 2 fields, expected 3 (id,status,note) (a truncated line?)")


def test_csv_unterminated_quote(tmp_path):
    msg = _refused(CSV, tmp_path, 'id,status,note\n1,"open,b\n2,a,b\n')
    assert msg.endswith(": line 2: unterminated quoted field: the quote opened on this line is never closed")


def test_csv_text_after_a_closing_quote(tmp_path):
    assert ': line 2: a closing quote must be followed by \',\'' in _refused(CSV, tmp_path, 'id,status,note\n1,"a"b,c\n')


def test_csv_blank_line(tmp_path):
    msg = _refused(CSV, tmp_path, "id,status,note\n1,a,b\n\n2,a,b\n")
    assert msg.endswith(": line 3: blank line; expected a row of 3 fields (id,status,note) (remove blank lines)")


def test_csv_line_numbers_count_quoted_newlines(tmp_path):
    msg = _refused(CSV, tmp_path, 'id,status,note\n1,"multi\nline",b\n2,a\n')
    assert ": line 4: 2 fields" in msg


# --------------------------------------------------------------------------- NDJSON


def test_ndjson_accepted_missing_nullable_field_and_nulls(tmp_path):
    p = tmp_path / "ok.json"
    p.write_text('{"id": 1, "status": "a", "note": null}\n{"id": "2", "status": true}\n')
    got = check_landed_file(JSON, p)
    assert (got.columns, got.rows) == (("id", "status", "note"), 2)


def test_ndjson_not_json(tmp_path):
    msg = _refused(JSON, tmp_path, '{"id": 1}\n{"id": 2,}\n', "f.json")
    assert msg.endswith(": line 2, column 10: not valid JSON: Expecting property name enclosed in double quotes; expected one JSON object per line")


def test_ndjson_not_an_object(tmp_path):
    msg = _refused(JSON, tmp_path, '[1, "a"]\n', "f.json")
    assert msg.endswith(": line 1, column 1: a JSON array, expected an object {\"field\": value, ...}")


def test_ndjson_field_of_another_case(tmp_path):
    msg = _refused(JSON, tmp_path, '{"id": 1, "status": "a"}\n{"ID": 2, "status": "b"}\n', "f.json")
    assert msg.endswith(
        ": line 2, column 2: field 'ID' is not a source column of the spec (the spec writes it 'id': names must match exactly); "
        "expected fields among id, note, status"
    )


def test_ndjson_unknown_field(tmp_path):
    msg = _refused(JSON, tmp_path, '{"id": 1, "colour": "red"}\n', "f.json")
    assert ": line 1, column 11: field 'colour' is not a source column of the spec; expected fields among id, note, status" in msg


def test_ndjson_missing_key_field(tmp_path):
    msg = _refused(JSON, tmp_path, '{"id": 1}\n{"status": "b"}\n', "f.json")
    assert msg.endswith(": line 2: required field id missing (a key or `required: true` column; only a column that may be NULL may be left out)")


def test_ndjson_nested_value(tmp_path):
    msg = _refused(JSON, tmp_path, '{"id": 1, "note": {"a": 1}}\n', "f.json")
    assert msg.endswith(": line 1, column 11: field 'note' holds a JSON object; expected a string, number, boolean or null")


def test_ndjson_blank_line_and_empty_file(tmp_path):
    assert _refused(JSON, tmp_path, '{"id": 1}\n\n{"id": 2}\n', "f.json").endswith(": line 2: blank line; expected one JSON object per line (remove blank lines)")
    assert _refused(JSON, tmp_path, "", "g.json").endswith("g.json: empty file; expected one JSON object per line")


def test_ndjson_not_utf8(tmp_path):
    assert ": line 1, column 12: byte 0xff is not UTF-8" in _refused(JSON, tmp_path, b'{"id": 1, "\xff": 2}\n', "f.json")


# --------------------------------------------------------------------------- folders


def test_files_of_another_extension_are_listed_as_unknown(tmp_path):
    folder = tmp_path / "parcels" / "dt=2024-01-01"
    folder.mkdir(parents=True)
    for name in ("a.csv", "b.CSV", "c.txt", "d.csv.gz", ".hidden", "_SUCCESS"):
        (folder / name).write_text("x")
    assert [p.name for p in landed_files(tmp_path, CSV)] == ["a.csv", "b.CSV"]
    assert [p.name for p in unknown_files(tmp_path, CSV)] == ["c.txt", "d.csv.gz"]


# --------------------------------------------------------------------------- fuzz

_GOOD_CSV = b'id,status,note\n1,placed,"a, b"\n2,shipped,x\n'
_GOOD_JSON = b'{"id": 1, "status": "placed", "note": "a"}\n{"id": 2, "status": "shipped"}\n'


def _mutations(base: bytes):
    """Random bytes, or the good file with a few bytes replaced, inserted or cut off."""
    edit = st.tuples(st.integers(0, len(base)), st.integers(0, 3), st.binary(max_size=3))

    def apply(edits):
        b = bytearray(base)
        for at, cut, new in edits:
            b[at : at + cut] = new
        return bytes(b)

    return st.one_of(st.binary(max_size=80), st.lists(edit, min_size=1, max_size=3).map(apply))


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=_mutations(_GOOD_CSV))
def test_fuzz_csv_checker_refuses_clearly_or_returns_what_csv_reads(tmp_path, data):
    p = tmp_path / "fuzz.csv"
    p.write_bytes(data)
    try:
        got = check_landed_file(CSV, p)
    except FileRefused as e:
        assert str(e).startswith(str(p)) and e.reason
        return
    # accepted: UTF-8 text whose every row has the header's width
    rows = list(csv.reader(io.StringIO(data.decode("utf-8-sig"), newline=""), strict=True))
    assert got.rows == len(rows) - 1 and all(len(r) == len(got.columns) for r in rows)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=_mutations(_GOOD_JSON))
def test_fuzz_ndjson_checker_refuses_clearly_or_returns_objects_of_spec_fields(tmp_path, data):
    p = tmp_path / "fuzz.json"
    p.write_bytes(data)
    try:
        got = check_landed_file(JSON, p)
    except FileRefused as e:
        assert str(e).startswith(str(p)) and e.reason
        return
    lines = data.decode("utf-8-sig").splitlines()
    objs = [json.loads(line) for line in lines]
    assert got.rows == len(objs) and all(isinstance(o, dict) and "id" in o and set(o) <= {"id", "status", "note"} for o in objs)


def test_csv_mixed_line_endings(tmp_path):
    msg = _refused(CSV, tmp_path, "id,status,note\r\n1,a,b\n2,a,b\r\n")
    assert msg.endswith(": line 2: mixed line endings: a row ends in LF here, in CR LF on line 1; expected one kind (convert the file)")
    msg = _refused(CSV, tmp_path, "id,status,note\r\n1,a,b\r2,a,b\r\n", "g.csv")
    assert msg.endswith(": line 2, column 6: mixed line endings: a row ends in CR here, in CR LF on line 1; expected one kind (convert the file)")
    for ok in (b"id,status,note\r\n1,a,b\r\n2,a,b", b'id,status,note\r\n1,a,"x\ny"\r\n', b'id,status,note\n1,a,"x\r\ny"\n', b"id,status,note\r1,a,b\r"):
        p = tmp_path / "ok.csv"
        p.write_bytes(ok)  # one kind of row ending (a line break inside quotes may differ): loads
        check_landed_file(CSV, p)
