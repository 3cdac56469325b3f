"""Read and validate note records (JSONL or parquet).

A record is `{"note": str, "reason": str}` plus optional `id`, `category` and any metadata.
Empty, whitespace-only, null or missing `reason` means "good". A line that is not a JSON object,
or whose `note` is missing, not a string or empty, is invalid; every problem is reported as
`path:line: message`. Messages never contain note text (notes are PHI): only positions, types,
lengths and hashes.
"""

from __future__ import annotations

import hashlib
import json
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from discriminator.prompt import category_of, normalize_reason

JSONL_SUFFIXES = (".jsonl", ".json", ".ndjson")
PARQUET_SUFFIXES = (".parquet", ".pq")


class DataError(ValueError):
    """Invalid input data; the message lists problems as `path:line: message`."""


@dataclass(frozen=True)
class Problem:
    path: str
    line: int  # 1-based line (JSONL) or row (parquet); 0 for the whole file
    message: str

    def __str__(self) -> str:
        return f"{self.path}:{self.line}: {self.message}"


@dataclass
class Record:
    note: str
    reason: str
    id: str
    source: str
    line: int
    category: str  # good | category id | other
    meta: dict[str, Any] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        return {"id": self.id, "note": self.note, "reason": self.reason, **self.meta}


@dataclass
class ReadResult:
    records: list[Record]
    problems: list[Problem]
    duplicates: list[tuple[str, str]]  # (later position, first position) of identical notes
    rows_seen: int
    blank_lines: int = 0


def derive_note_id(source: str, line: int) -> str:
    """A stable id for a row without an id column: the source file's name and its line."""
    return f"{Path(source).name}:{line}"


def note_hash(note: str) -> str:
    return hashlib.sha256(note.encode("utf-8", "surrogatepass")).hexdigest()[:16]


def _type_name(value: Any) -> str:
    return "null" if value is None else type(value).__name__


def check_row(obj: Any) -> str | None:
    """Why a parsed row is invalid, or None. Never echoes the note."""
    if not isinstance(obj, dict):
        return f"expected a JSON object, got {_type_name(obj) if obj is not None else 'null'}"
    if "note" not in obj:
        return "missing 'note'"
    note = obj["note"]
    if not isinstance(note, str):
        return f"'note' must be a string, got {_type_name(note)}"
    if not note.strip():
        return "'note' is empty"
    reason = obj.get("reason")
    if reason is not None and not isinstance(reason, str):
        return f"'reason' must be a string or null, got {_type_name(reason)}"
    for key, value in (("note", note), ("reason", reason)):
        if bad := _unpaired_surrogate(value):
            return f"{key!r} is not valid Unicode (unpaired surrogate at character {bad - 1})"
    return None


def _unpaired_surrogate(text: str | None) -> int:
    """1 + the position of the first unpaired surrogate (JSON `"\\ud800"`), else 0.

    Such strings cannot be encoded as UTF-8: tokenizers and parquet writers raise on them.
    """
    if not text:
        return 0
    try:
        text.encode("utf-8")
    except UnicodeEncodeError as e:
        return e.start + 1
    return 0


def _make_record(obj: dict[str, Any], source: str, line: int) -> Record:
    reason = normalize_reason(obj.get("reason"))
    rid = obj.get("id")
    rid = str(rid) if rid is not None and str(rid).strip() else derive_note_id(source, line)
    meta = {k: v for k, v in obj.items() if k not in ("note", "reason", "id")}
    cat = obj.get("category")
    category = cat if isinstance(cat, str) and cat else category_of(reason)
    if reason == "good":
        category = "good"
    return Record(obj["note"], reason, rid, source, line, category, meta)


def iter_jsonl_rows(path: str | Path) -> Any:
    """Yield (line_no, obj | None, problem | None) for every line of a JSONL file; a blank line
    gives (line_no, None, None)."""
    with open(path, "rb") as fh:
        for i, raw in enumerate(fh, start=1):
            if i == 1 and raw.startswith(b"\xef\xbb\xbf"):
                raw = raw[3:]
            try:
                text = raw.decode("utf-8")
            except UnicodeDecodeError as e:
                yield i, None, f"invalid UTF-8 at byte {e.start}"
                continue
            if not text.strip():
                yield i, None, None  # blank line
                continue
            try:
                obj = json.loads(text)
            except json.JSONDecodeError as e:
                yield i, None, f"not valid JSON ({e.msg} at column {e.colno})"
                continue
            except RecursionError:
                yield i, None, "not valid JSON (nested too deeply)"
                continue
            if obj is None:  # JSON `null` is a row (invalid), not a blank line
                yield i, None, check_row(obj)
                continue
            yield i, obj, None


def _read_parquet_rows(path: Path) -> tuple[list[tuple[int, Any]], list[Problem]]:
    import pyarrow.parquet as pq

    try:
        table = pq.read_table(path)
    except Exception as e:  # corrupted or not parquet
        return [], [Problem(str(path), 0, f"cannot read parquet: {type(e).__name__}")]
    if "note" not in table.column_names:
        cols = ", ".join(table.column_names) or "none"
        return [], [Problem(str(path), 0, f"missing column 'note' (columns: {cols})")]
    return list(enumerate(table.to_pylist(), start=1)), []


def expand_paths(paths: list[str | Path]) -> list[Path]:
    """Files, folders (their .jsonl/.json/.parquet files, sorted) and globs."""
    import glob

    out: list[Path] = []
    for p in paths:
        p = Path(p)
        if p.is_dir():
            out += sorted(
                f
                for f in p.rglob("*")
                if f.suffix in JSONL_SUFFIXES + PARQUET_SUFFIXES and f.is_file()
            )
        elif any(ch in str(p) for ch in "*?["):
            out += sorted(Path(f) for f in glob.glob(str(p), recursive=True))
        else:
            out.append(p)
    return out


SYNTH_PREFIX = "synth:"


def synth_rows(spec: str) -> list[tuple[int, Any, None]]:
    """Rows of a `synth:n=64,seed=1,length=short,error_rate=0.5` source (generated, no file)."""
    from discriminator.synth import generate_records

    kwargs: dict[str, Any] = {}
    body = spec[len(SYNTH_PREFIX) :]
    for part in filter(None, body.split(",")):
        key, _, value = part.partition("=")
        key = key.strip()
        if key in ("n", "seed"):
            kwargs[key] = int(value)
        elif key == "error_rate":
            kwargs[key] = float(value)
        elif key == "length":
            kwargs[key] = value.strip()
        else:
            raise DataError(f"{spec}: unknown synth option {key!r} (n, seed, length, error_rate)")
    if "n" not in kwargs:
        raise DataError(f"{spec}: synth source needs n=<count>")
    recs = generate_records(**kwargs)
    keep = ("id", "note", "reason", "category", "kind")
    return [(i, {k: r[k] for k in keep if k in r}, None) for i, r in enumerate(recs, start=1)]


def read_records(paths: str | Path | list[str | Path]) -> ReadResult:
    """Read every row of the given files; invalid rows become Problems, never exceptions.

    Besides files, folders and globs, a `synth:n=N,seed=S,length=short` source generates
    synthetic labelled notes (smoke runs and tests need no data files).
    """
    if not isinstance(paths, list):
        paths = [paths]
    records: list[Record] = []
    problems: list[Problem] = []
    seen_hash: dict[str, str] = {}
    duplicates: list[tuple[str, str]] = []
    rows = blanks = 0
    synth = [str(p) for p in paths if str(p).startswith(SYNTH_PREFIX)]
    files = [p for p in paths if not str(p).startswith(SYNTH_PREFIX)]
    sources: list[tuple[str, list[tuple[int, Any, str | None]]]] = [
        (spec, synth_rows(spec)) for spec in synth
    ]
    for path in expand_paths(files):
        src = str(path)
        if not path.exists():
            problems.append(Problem(src, 0, "file not found"))
            continue
        if path.suffix in PARQUET_SUFFIXES:
            parquet_rows, file_problems = _read_parquet_rows(path)
            problems += file_problems
            items = [(i, obj, None) for i, obj in parquet_rows]
        elif path.suffix in JSONL_SUFFIXES:
            try:
                items = list(iter_jsonl_rows(path))
            except OSError as e:  # a folder named *.jsonl, no permission, I/O error
                problems.append(Problem(src, 0, f"cannot read file: {type(e).__name__}"))
                continue
        else:
            problems.append(Problem(src, 0, f"unsupported file type {path.suffix or '(none)'}"))
            continue
        sources.append((src, items))
    for src, items in sources:
        for line, obj, err in items:
            if err is None and obj is None:
                blanks += 1
                continue
            rows += 1
            err = err or check_row(obj)
            if err:
                problems.append(Problem(src, line, err))
                continue
            rec = _make_record(obj, src, line)
            h = note_hash(rec.note)
            pos = f"{src}:{line}"
            if h in seen_hash:
                duplicates.append((pos, seen_hash[h]))
            else:
                seen_hash[h] = pos
            records.append(rec)
    return ReadResult(records, problems, duplicates, rows, blanks)


def load_valid(paths: str | Path | list[str | Path], on_invalid: str = "error") -> ReadResult:
    """Read and stop with every problem listed (on_invalid="error"), or drop bad rows ("skip")."""
    result = read_records(paths)
    if result.problems and on_invalid == "error":
        listing = "\n".join(f"  {p}" for p in result.problems[:200])
        more = len(result.problems) - 200
        tail = f"\n  ... and {more} more" if more > 0 else ""
        raise DataError(
            f"{len(result.problems)} invalid row(s); fix them or use --on-invalid skip:\n"
            f"{listing}{tail}"
        )
    if not result.records:
        raise DataError(
            f"no valid records in {', '.join(map(str, paths if isinstance(paths, list) else [paths]))}"
        )
    return result


def percentiles(values: list[int], qs: tuple[int, ...] = (0, 50, 90, 99, 100)) -> dict[str, int]:
    if not values:
        return {}
    s = sorted(values)
    return {f"p{q}": s[min(len(s) - 1, round(q / 100 * (len(s) - 1)))] for q in qs}


def summarize(result: ReadResult, tokenizer: Any = None) -> dict[str, Any]:
    """Counts, good/error split, categories, note lengths (words; tokens with a tokenizer)."""
    recs = result.records
    cats = Counter(r.category for r in recs)
    summary: dict[str, Any] = {
        "rows": result.rows_seen,
        "valid": len(recs),
        "invalid": len(result.problems),
        "blank_lines": result.blank_lines,
        "good": cats.get("good", 0),
        "error": len(recs) - cats.get("good", 0),
        "categories": dict(sorted((k, v) for k, v in cats.items() if k != "good")),
        "duplicates": len(result.duplicates),
        "words": percentiles([len(r.note.split()) for r in recs]),
    }
    if tokenizer is not None and recs:
        lengths = [
            len(x) for x in tokenizer([r.note for r in recs], add_special_tokens=False)["input_ids"]
        ]
        summary["tokens"] = percentiles(lengths)
    return summary
