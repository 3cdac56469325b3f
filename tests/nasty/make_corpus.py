"""Write the fixed corpus of nasty input files in this folder (run it after changing it).

    python tests/nasty/make_corpus.py

Every file is tiny and committed; `expected.json` says, for each input row, the scorer's status
and note_id, and the validation problem `data.read_records` must report (by file and line).
Things that cannot be committed are made by the tests at run time: a 1 MB note and a folder
whose name ends in `.jsonl`.
"""

from __future__ import annotations

import json
import random
from pathlib import Path

HERE = Path(__file__).resolve().parent
CANARY = "CANARY-NASTY-5be1c0de"  # inside every note: must never reach a message or log


def j(obj) -> bytes:
    return json.dumps(obj).encode()  # ensure_ascii: lone surrogates become "\ud800" escapes


NOTE = f"Name: Pat Doe {CANARY}. Admission Date: 2024-05-01. Discharge Date: 2024-05-03."

# (raw line without terminator, terminator, scorer status, data.py problem or None)
# status "blank": not a row at all. note_id "=line" means derived from file:line.
MIXED: list[tuple[bytes, bytes, str, str | None, str | None]] = [
    (b"\xef\xbb\xbf" + j({"note": NOTE + " bom"}), b"\r\n", "ok", None, None),
    (j({"note": NOTE + " crlf"}), b"\r\n", "ok", None, None),
    (b"", b"\n", "blank", None, None),
    (b"   \t ", b"\r\n", "blank", None, None),
    (j([1, 2, NOTE]), b"\n", "invalid_input", "expected a JSON object, got list", None),
    (j(NOTE), b"\n", "invalid_input", "expected a JSON object, got str", None),
    (b"42", b"\n", "invalid_input", "expected a JSON object, got int", None),
    (b"null", b"\n", "invalid_input", "expected a JSON object, got null", None),
    (j({"note": None, "reason": NOTE}), b"\n", "invalid_input", "'note' must be a string", None),
    (j({"note": 12.5}), b"\n", "invalid_input", "'note' must be a string, got float", None),
    (j({"reason": "good", "text": NOTE}), b"\n", "invalid_input", "missing 'note'", None),
    (j({"note": ""}), b"\n", "invalid_input", "'note' is empty", None),
    (j({"note": " \u2028\u3000 "}), b"\n", "invalid_input", "'note' is empty", None),
    (NOTE.encode() + b" not json {", b"\n", "invalid_input", "not valid JSON", None),
    (
        b'{"note": "' + NOTE.encode() + b' \xff\xfe latin-1"}',
        b"\n",
        "invalid_input",
        "invalid UTF-8",
        None,
    ),
    (b"[" * 3_000, b"\n", "invalid_input", "not valid JSON", None),
    (j({"note": NOTE + " \ud800 lone"}), b"\n", "invalid_input", "unpaired surrogate", None),
    (j({"id": "dup", "note": NOTE + " one"}), b"\n", "ok", None, "dup"),
    (j({"id": "dup", "note": NOTE + " two"}), b"\n", "ok", None, "dup"),
    (j({"id": 7, "note": NOTE + " numeric id"}), b"\n", "ok", None, "7"),
    (j({"id": "  ", "note": NOTE + " blank id"}), b"\n", "ok", None, None),
    (j({"id": "x\udc80y", "note": NOTE + " surrogate id"}), b"\n", "ok", None, "x\\udc80y"),
    (
        j({"note": NOTE + " nul \u0000 emoji \U0001f600 rtl \u05e9\u05dc\u05d5\u05dd"}),
        b"\n",
        "ok",
        None,
        None,
    ),
    (j({"note": NOTE, "reason": 3}), b"\n", "ok", "'reason' must be a string or null", None),
    (j({"note": NOTE + " NaN", "score": float("nan")}), b"\n", "ok", None, None),
    (j({"id": "same-text", "note": NOTE + " crlf"}), b"\n", "ok", None, "same-text"),
    (j({"note": NOTE + " last line, no newline"}), b"", "ok", None, None),
]


def build(folder: Path = HERE) -> dict:
    import pyarrow as pa
    import pyarrow.parquet as pq

    folder.mkdir(parents=True, exist_ok=True)
    expected: dict = {"rows": [], "problems": []}

    def add(file: str, line: int, status: str, problem: str | None, note_id: str | None):
        if status != "blank":
            nid = note_id if note_id is not None else f"{file}:{line}"
            expected["rows"].append([nid, status])
        if problem:
            expected["problems"].append([file, line, problem])

    data = b""
    for i, (raw, end, status, problem, nid) in enumerate(MIXED, start=1):
        data += raw + end
        add("mixed.jsonl", i, status, problem if status != "ok" or problem else None, nid)
    (folder / "mixed.jsonl").write_bytes(data)

    (folder / "empty.jsonl").write_bytes(b"")
    (folder / "blank_only.ndjson").write_bytes(b"\n\r\n   \n")
    rng = random.Random(0)
    noise = bytes(rng.randrange(256) for _ in range(400)).replace(b"\n", b"\x00")
    (folder / "binary.jsonl").write_bytes(noise + b"\n" + noise[::-1])
    add("binary.jsonl", 1, "invalid_input", "invalid UTF-8", None)
    add("binary.jsonl", 2, "invalid_input", "invalid UTF-8", None)

    pq.write_table(pa.table({"id": ["p1", "p2"], "text": [NOTE, NOTE]}), folder / "no_note.parquet")
    for k in (1, 2):
        add("no_note.parquet", k, "invalid_input", None, f"p{k}")
    expected["problems"].append(["no_note.parquet", 0, "missing column 'note'"])

    pq.write_table(pa.table({"note": pa.array([1, None, 3], pa.int64())}), folder / "int_notes.pq")
    for k in (1, 2, 3):
        add("int_notes.pq", k, "invalid_input", "'note' must be a string", None)

    notes = [NOTE + " pq", None, "", "   ", NOTE + " pq 2"]
    pq.write_table(
        pa.table({"id": [f"q{i}" for i in range(5)], "note": notes}), folder / "notes.parquet"
    )
    for k, (nid, st, prob) in enumerate(
        [("q0", "ok", None), ("q1", "invalid_input", "'note' must be a string, got null"),
         ("q2", "invalid_input", "'note' is empty"), ("q3", "invalid_input", "'note' is empty"),
         ("q4", "ok", None)], start=1):  # fmt: skip
        add("notes.parquet", k, st, prob, nid)
    pq.write_table(pa.table({"note": pa.array([], pa.string())}), folder / "zero_rows.parquet")

    (folder / "readme.txt").write_text("not an input file: ignored in folders\n")
    refused = folder / "refused"
    refused.mkdir(exist_ok=True)
    (refused / "corrupt.parquet").write_bytes(b"PAR1 this is not parquet " + CANARY.encode())

    (folder / "expected.json").write_text(json.dumps(expected, indent=1) + "\n")
    return expected


if __name__ == "__main__":
    build()
    print(f"wrote {HERE}")
