"""Unlabelled note archives for scoring tests and benchmarks: one note maker, one archive writer.

`make_notes` gives word-salad notes from a small clinical vocabulary: fixed length (`words=40`,
each note ending in its index so notes are distinct) or lengths drawn from a range
(`words=(300, 900)`, about the realistic profile's 650 words at the median). `write_archive`
spreads notes over many files, half JSONL and half parquet, with a few bad rows in each (not JSON,
an empty note, a note that is not a string, a row without the text column) and, in JSONL, a blank
line that is not a row; it returns what a scorer must give back: one row per non-blank input row.
The tests (`tests/test_scoring.py`, `tests/test_faults.py`) and the scoring benchmarks use these.
"""

from __future__ import annotations

import json
import random
from pathlib import Path
from typing import Any

WORDS = [
    *["patient", "admitted", "discharge", "date", "metoprolol", "25", "mg", "daily", "allergy"],
    *["penicillin", "history", "chest", "pain", "left", "right", "follow-up", "clinic", "MRN"],
    *["name", "age", "male", "female", "hospital", "course", "labs", "normal", "elevated"],
    *["troponin", "creatinine"],
]
REALISTIC_WORDS = (300, 900)


def make_notes(n: int, seed: int = 0, words: int | tuple[int, int] = 40) -> list[str]:
    """`n` distinct notes of `words` words (or a length drawn uniformly from the range)."""
    rng = random.Random(seed)
    out = []
    for i in range(n):
        k = words if isinstance(words, int) else rng.randint(*words)
        out.append(" ".join(rng.choice(WORDS) for _ in range(k)) + f" #{i}")
    return out


def jl(obj: Any) -> bytes:
    return (json.dumps(obj) + "\n").encode()


# Bad rows: (JSONL line, parquet row) pairs; each gives one `invalid_input` output row.
BAD_JSONL = [b"not json at all\n", jl({"note": ""}), jl({"note": 7}), jl({"text": "x"})]
BAD_PARQUET = [{"id": None, "note": ""}, {"id": None, "note": "   "}, {"id": None, "note": None}]


def write_archive(
    root: str | Path,
    n_notes: int,
    n_files: int,
    seed: int = 0,
    words: int | tuple[int, int] = REALISTIC_WORDS,
    bad_per_file: int = 2,
    row_group_rows: int = 256,
) -> dict[str, Any]:
    """`n_notes` good notes over `n_files` files (even-numbered JSONL, odd parquet), each with
    `bad_per_file` bad rows, under `root`. Notes carry ids `a<file>-<k>`; bad rows have none
    (their derived id is `<file name>:<line or row>`). Returns the file list and counts."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    root = Path(root)
    root.mkdir(parents=True, exist_ok=True)
    per_file = [n_notes // n_files + (1 if f < n_notes % n_files else 0) for f in range(n_files)]
    files, rows_in, bad = [], 0, 0
    for f, count in enumerate(per_file):
        notes = make_notes(count, seed=seed * 100_003 + f, words=words)
        rows = [{"id": f"a{f}-{k}", "note": t} for k, t in enumerate(notes)]
        rng = random.Random(seed + f)
        if f % 2 == 0:
            path = root / f"notes-{f:04d}.jsonl"
            lines = [jl(r) for r in rows]
            for b in range(bad_per_file):
                lines.insert(rng.randrange(len(lines) + 1), BAD_JSONL[b % len(BAD_JSONL)])
            lines.insert(rng.randrange(len(lines) + 1), b"\n")  # blank: not a row
            path.write_bytes(b"".join(lines))
        else:
            path = root / f"notes-{f:04d}.parquet"
            for b in range(bad_per_file):
                rows.insert(rng.randrange(len(rows) + 1), BAD_PARQUET[b % len(BAD_PARQUET)])
            schema = pa.schema([("id", pa.string()), ("note", pa.string())])
            pq.write_table(
                pa.Table.from_pylist(rows, schema=schema), path, row_group_size=row_group_rows
            )
        files.append(str(path))
        rows_in += count + bad_per_file
        bad += bad_per_file
    return {"files": files, "rows_in": rows_in, "good": n_notes, "bad": bad}
