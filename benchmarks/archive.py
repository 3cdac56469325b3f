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


# ---------------------------------------------------------------------------------------------
# MIMIC-IV-Note's layout: note/discharge.csv.gz

MIMIC_COLUMNS = [
    "note_id", "subject_id", "hadm_id", "note_type", "note_seq", "charttime", "storetime", "text",
]  # fmt: skip
MIMIC_WORDS = 1800  # discharge summaries average roughly 1,800 words
SECTIONS = [
    "Chief Complaint:", "History of Present Illness:", "Past Medical History:",
    "Physical Exam:", "Pertinent Results:", "Brief Hospital Course:",
    "Medications on Admission:", "Discharge Medications:", "Discharge Disposition:",
    "Discharge Diagnosis:", "Discharge Instructions:", "Followup Instructions:",
]  # fmt: skip


def mimic_notes(n: int, seed: int = 0, mean_words: int = MIMIC_WORDS, start: int = 0) -> Any:
    """`n` synthetic discharge summaries in MIMIC-IV-Note's shape, as rows of its eight columns:
    a de-identified header (`___` where identifiers were removed), sections, lines, "quoted"
    phrases and commas; lengths log-normal around `mean_words` (a long tail, some far over any
    prompt budget). Sentences come from a seeded pool, so millions of words take seconds."""
    import numpy as np

    rng = np.random.default_rng(seed)
    vocab = np.array(WORDS)
    pool = []
    for k in range(4096):
        words = vocab[rng.integers(0, len(vocab), int(rng.integers(6, 18)))].tolist()
        if k % 5 == 0:
            words[1] = f'"{words[1]}'
            words[2] = f'{words[2]}"'
        if k % 7 == 0:
            words[-2] = "___,"
        pool.append(" ".join(words) + ".")
    avg = float(np.mean([len(s.split()) for s in pool]))
    sigma = 0.45
    lengths = rng.lognormal(np.log(mean_words) - sigma**2 / 2, sigma, n).clip(150, 12000)
    for i, words in enumerate(lengths, start=start):
        k = max(1, int(words / avg))
        picks = rng.integers(0, len(pool), k)
        lines = [" ", "Name:  ___                     Unit No:   ___", " "]
        lines += ["Admission Date:  ___              Discharge Date:   ___", " "]
        per = max(1, k // len(SECTIONS))
        for s, j in enumerate(range(0, k, per)):
            lines.append(SECTIONS[s % len(SECTIONS)])
            lines.append(" ".join(pool[p] for p in picks[j : j + per]))
            lines.append(" ")
        lines.append(f"[{i}]")
        subject = 10_000_000 + i // 3
        yield [
            f"{subject}-DS-{i % 3 + 1}", subject, 20_000_000 + i, "DS", i % 3 + 1,
            "2180-05-07 00:00:00", "2180-05-09 15:26:00", "\n".join(lines),
        ]  # fmt: skip


def write_mimic(
    folder: str | Path,
    n: int,
    seed: int = 0,
    mean_words: int = MIMIC_WORDS,
    jsonl: bool = False,
    parquet: bool = False,
    batch: int = 4096,
) -> dict[str, Any]:
    """`folder/discharge.csv.gz` as MIMIC-IV-Note ships it (pandas' CSV: header, quoted fields
    spanning lines, `""` for a quote), and optionally the same notes as `discharge.jsonl` and as
    `discharge.parquet` written the way pandas/pyarrow write it by default (one row group)."""
    import csv
    import gzip
    import io

    import pyarrow as pa
    import pyarrow.parquet as pq

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    paths = {"csv_gz": folder / "discharge.csv.gz"}
    gz = gzip.open(paths["csv_gz"], "wt", compresslevel=1, newline="", encoding="utf-8")  # noqa: SIM115
    writer = csv.writer(gz, lineterminator="\n")
    writer.writerow(MIMIC_COLUMNS)
    jf = None
    if jsonl:
        paths["jsonl"] = folder / "discharge.jsonl"
        jf = open(paths["jsonl"], "w", encoding="utf-8")  # noqa: SIM115 (closed below)
    arrays: list[pa.Table] = []
    rows: list[list[Any]] = []
    words = 0

    def flush() -> None:
        nonlocal words
        writer.writerows(rows)
        if jf is not None:
            buf = io.StringIO()
            for r in rows:
                buf.write(json.dumps(dict(zip(MIMIC_COLUMNS, r))) + "\n")
            jf.write(buf.getvalue())
        if parquet:
            arrays.append(pa.table(list(zip(*rows)), names=MIMIC_COLUMNS))
        words += sum(len(r[-1].split()) for r in rows)
        rows.clear()

    for row in mimic_notes(n, seed, mean_words):
        rows.append(row)
        if len(rows) >= batch:
            flush()
    flush()
    gz.close()
    if jf is not None:
        jf.close()
    if parquet:
        paths["parquet"] = folder / "discharge.parquet"
        table = pa.concat_tables(arrays)
        table = table.cast(table.schema.set(7, pa.field("text", pa.large_string())))
        pq.write_table(table, paths["parquet"], row_group_size=max(1, n))  # one row group
        del table, arrays
    return {
        "notes": n,
        "mean_words": round(words / max(n, 1), 1),
        "paths": {k: str(v) for k, v in paths.items()},
        "bytes": {k: v.stat().st_size for k, v in paths.items()},
    }
