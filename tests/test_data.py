"""Reading and validating note records; `discriminator validate`."""

from __future__ import annotations

import json

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from discriminator.cli import main
from discriminator.data import DataError, load_valid, read_records, summarize

CANARY = "ZQX-CANARY-NOTE-7731"


def _mixed_file(tmp_path):
    lines = [
        json.dumps({"note": f"Name: A {CANARY}\nAdmission Date: 2024-05-01", "reason": ""}),  # 1 ok
        "this is not json " + CANARY,  # 2 not JSON
        json.dumps([1, 2, 3]),  # 3 array
        json.dumps({"reason": "Timeline error: x"}),  # 4 missing note
        json.dumps({"note": "", "reason": "good"}),  # 5 empty note
        json.dumps({"note": 42, "reason": "good"}),  # 6 non-string note
        "",  # 7 blank line: skipped, not an error
        json.dumps({"note": "Name: B", "reason": "Timeline error: admission after discharge."}),
        json.dumps({"note": "   \n ", "reason": None}),  # 9 whitespace note
        json.dumps({"note": "Name: C", "reason": None, "id": "c-1"}),  # 10 ok, null reason
        json.dumps("just a string"),  # 11 scalar
        json.dumps({"note": "Name: D", "reason": 3}),  # 12 bad reason type
        json.dumps({"note": "Name: B", "reason": "good"}),  # 13 duplicate of 8
    ]
    path = tmp_path / "mixed.jsonl"
    data = ("\n".join(lines) + "\n").encode()
    data += b'{"note": "bad utf8 \xff\xfe here", "reason": ""}\n'  # 14 invalid UTF-8
    path.write_bytes(data)
    return path


def test_read_records_reports_each_bad_line(tmp_path):
    path = _mixed_file(tmp_path)
    result = read_records(path)
    bad = {p.line: p.message for p in result.problems}
    assert sorted(bad) == [2, 3, 4, 5, 6, 9, 11, 12, 14]
    assert "not valid JSON" in bad[2]
    assert "expected a JSON object, got list" in bad[3]
    assert bad[4] == "missing 'note'"
    assert bad[5] == "'note' is empty" == bad[9]
    assert bad[6] == "'note' must be a string, got int"
    assert "got str" in bad[11]
    assert "invalid UTF-8" in bad[14]
    assert [r.line for r in result.records] == [1, 8, 10, 13]
    assert result.records[0].reason == "good"
    assert result.records[2].reason == "good" and result.records[2].id == "c-1"
    assert result.records[0].id == "mixed.jsonl:1"
    assert result.records[1].category == "timeline"
    assert result.duplicates == [(f"{path}:13", f"{path}:8")]
    assert result.blank_lines == 1
    for p in result.problems:
        assert CANARY not in str(p)
        assert str(p).startswith(f"{path}:{p.line}: ")


def test_validate_cli_exit_code_and_no_note_text(tmp_path, capsys):
    path = _mixed_file(tmp_path)
    assert main(["validate", str(path)]) == 1
    out = capsys.readouterr().out
    for line in (2, 3, 4, 5, 6, 9, 11, 12, 14):
        assert f"{path}:{line}: " in out
    assert CANARY not in out
    assert "rows 13" in out and "invalid 9" in out and "duplicates 1" in out


def test_validate_cli_clean_file_with_tokenizer(tmp_path, capsys, synth_records, tiny_model_dir):
    path = tmp_path / "ok.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in synth_records[:50]))
    assert main(["validate", str(path), "--tokenizer", str(tiny_model_dir), "--json"]) == 0
    out = capsys.readouterr().out
    summary = json.loads(out[out.index("{") :])
    assert summary["valid"] == 50 and summary["invalid"] == 0
    assert summary["good"] + summary["error"] == 50
    assert summary["tokens"]["p50"] > summary["words"]["p50"] > 0
    assert sum(summary["categories"].values()) == summary["error"]


def test_bom_crlf_and_parquet(tmp_path):
    j = tmp_path / "bom.jsonl"
    j.write_bytes(b'\xef\xbb\xbf{"note": "Name: A", "reason": ""}\r\n{"note": "Name: B"}\r\n')
    p = tmp_path / "notes.parquet"
    pq.write_table(pa.table({"note": ["N1", None, ""], "reason": ["good", "good", None]}), p)
    nocol = tmp_path / "nocol.parquet"
    pq.write_table(pa.table({"text": ["N1"]}), nocol)
    result = read_records([j, p, nocol])
    assert [r.note for r in result.records] == ["Name: A", "Name: B", "N1"]
    msgs = sorted(str(x) for x in result.problems)
    assert msgs == sorted(
        [
            f"{p}:2: 'note' must be a string, got null",
            f"{p}:3: 'note' is empty",
            f"{nocol}: missing column 'note' (columns: text)",
        ]
    )


def test_load_valid_stops_or_skips(tmp_path):
    path = _mixed_file(tmp_path)
    with pytest.raises(DataError) as e:
        load_valid(path)
    assert "9 invalid row(s)" in str(e.value) and f"{path}:14:" in str(e.value)
    assert CANARY not in str(e.value)
    result = load_valid(path, on_invalid="skip")
    assert len(result.records) == 4 and len(result.problems) == 9
    s = summarize(result)
    assert s["valid"] == 4 and s["error"] == 1 and s["categories"] == {"timeline": 1}


def test_directory_and_glob_inputs(tmp_path):
    d = tmp_path / "d"
    d.mkdir()
    (d / "a.jsonl").write_text(json.dumps({"note": "x"}) + "\n")
    (d / "b.jsonl").write_text(json.dumps({"note": "y"}) + "\n")
    (d / "readme.txt").write_text("ignored")
    assert len(read_records(d).records) == 2
    assert len(read_records(str(d / "*.jsonl")).records) == 2
    assert read_records(d / "missing.jsonl").problems[0].message == "file not found"


MIMIC_HEADER = ["note_id", "subject_id", "hadm_id", "note_type", "note_seq", "charttime",
                "storetime", "text"]  # fmt: skip


def _mimic_discharge(tmp_path, rows):
    """A MIMIC-IV-Note-shaped discharge.csv.gz: its columns, no labels, quoted multi-line text."""
    import csv
    import gzip

    path = tmp_path / "discharge.csv.gz"
    with gzip.open(path, "wt", newline="") as f:
        w = csv.writer(f)
        w.writerow(MIMIC_HEADER)
        for note_id, text in rows:
            w.writerow([note_id, "100", "200", "DS", "1", "2180-05-07 00:00:00", "", text])
    return path


def test_validate_mimic_discharge_as_scoring_input(tmp_path, capsys):
    ok = [("10-DS-1", f"Name: A {CANARY}\nline two, with a comma"), ("10-DS-2", "Name: B")]
    path = _mimic_discharge(tmp_path, ok)
    argv = ["validate", "--text-column", "text", "--id-column", "note_id", str(path)]
    assert main(argv) == 0
    out = capsys.readouterr().out
    assert "unlabelled scoring input" in out and "rows 2  valid 2  invalid 0" in out
    assert "good" not in out and CANARY not in out
    # the default columns do not fit it: one line naming the file and its columns
    assert main(["validate", str(path)]) == 1
    out = capsys.readouterr().out
    assert out.splitlines()[0] == (
        f"{path}: missing column 'note' (columns: {', '.join(MIMIC_HEADER)})"
    )


def test_validate_scoring_input_problems_are_path_row_why(tmp_path, capsys):
    rows = [("10-DS-1", "Name: A"), ("", "Name: B"), ("10-DS-3", ""), ("10-DS-1", "Name: C"),
            ("10-DS-5", "Name: A")]  # fmt: skip
    path = _mimic_discharge(tmp_path, rows)
    assert main(["validate", "--text-column", "text", "--id-column", "note_id", str(path)]) == 1
    lines = capsys.readouterr().out.splitlines()
    assert f"{path}:2: 'note_id' is empty" in lines  # rows numbered as scoring numbers them
    assert f"{path}:3: 'text' must be a string, got null" in lines
    assert f"duplicate id: {path}:4 repeats the 'note_id' of {path}:1" in lines
    assert f"duplicate note: {path}:5 repeats {path}:1" in lines
    assert not any(line.startswith("invalid:") or ":0:" in line for line in lines)
    # a named id column the file lacks is a problem, not silently derived ids
    assert main(["validate", "--text-column", "text", "--id-column", "nid", str(path)]) == 1
    assert capsys.readouterr().out.startswith(f"{path}: missing column 'nid' (columns: ")


def test_validate_empty_input_is_one_line_and_exit_1(tmp_path, capsys):
    empty = tmp_path / "empty.jsonl"
    empty.write_text("")
    assert main(["validate", str(empty)]) == 1
    out = capsys.readouterr().out
    assert out.splitlines()[0] == f"{empty}: no records"
    blank = tmp_path / "blank.jsonl"
    blank.write_text("\n\n")
    with pytest.raises(DataError) as e:  # what training reads it with
        load_valid(blank)
    assert str(e.value) == f"{blank}: no records"


def test_training_and_labels_read_other_column_names(tmp_path):
    path = tmp_path / "l.jsonl"
    rows = [{"note_id": "n1", "text": "Name: A", "reason": "good"},
            {"note_id": "n2", "text": "Name: B", "reason": "Timeline error: x."}]  # fmt: skip
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    result = load_valid(path, text_column="text", id_column="note_id")
    assert [(r.id, r.note, r.category) for r in result.records] == [
        ("n1", "Name: A", "good"), ("n2", "Name: B", "timeline")
    ]  # fmt: skip
    assert result.records[0].meta == {}  # the named columns are not metadata
    with pytest.raises(DataError, match="missing 'note'"):
        load_valid(path)  # default columns: every row lacks 'note'
