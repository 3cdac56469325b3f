"""Read and validate note records (JSONL, CSV, TSV, plain or .gz/.zst, or parquet).

A record is `{"note": str, "reason": str}` plus optional `id`, `category` and any metadata; the
text and id columns can be named otherwise (`text_column`, `id_column`: MIMIC-IV-Note's `text`
and `note_id`), as scoring's `io.text_column` / `io.id_column`. Empty, whitespace-only, null or
missing `reason` means "good". A line that is not a JSON object, or whose note is missing, not a
string or empty, is invalid; every problem is reported as `path:line: message` (a whole file's
as `path: message`), line numbers as scoring reports them. An input that holds no record is a
problem too. Messages never contain note text (notes are PHI): only positions, types, lengths,
hashes and ids.
"""

from __future__ import annotations

import hashlib
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from discriminator import sources
from discriminator.numbers import percentiles
from discriminator.prompt import category_of, normalize_reason

JSONL_SUFFIXES = (".jsonl", ".json", ".ndjson")
PARQUET_SUFFIXES = (".parquet", ".pq")
# the note's id when it has none: its file (relative to the input root) and record number
derive_note_id = sources.derive_note_id


class DataError(ValueError):
    """Invalid input data; the message lists problems as `path:line: message`."""


@dataclass(frozen=True)
class Problem:
    path: str
    line: int  # 1-based line (JSONL) or row (CSV/TSV, parquet); 0 for the whole file
    message: str

    def __str__(self) -> str:
        return (
            f"{self.path}: {self.message}"
            if self.line == 0
            else (f"{self.path}:{self.line}: {self.message}")
        )


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
    unlabelled: list[str] = field(default_factory=list)  # files without a `reason` column
    duplicate_ids: list[tuple[str, str, str]] = field(default_factory=list)  # (id, later, first)
    files: list[str] = field(default_factory=list)  # every file read (and synth: source)


def note_hash(note: str) -> str:
    return hashlib.sha256(note.encode("utf-8", "surrogatepass")).hexdigest()[:16]


def _type_name(value: Any) -> str:
    return "null" if value is None else type(value).__name__


def check_row(obj: Any, text_column: str = "note") -> str | None:
    """Why a parsed row is invalid, or None. Never echoes the note."""
    if not isinstance(obj, dict):
        return f"expected a JSON object, got {_type_name(obj) if obj is not None else 'null'}"
    if text_column not in obj:
        return f"missing {text_column!r}"
    note = obj[text_column]
    if not isinstance(note, str):
        return f"{text_column!r} must be a string, got {_type_name(note)}"
    if not note.strip():
        return f"{text_column!r} is empty"
    reason = obj.get("reason")
    if reason is not None and not isinstance(reason, str):
        return f"'reason' must be a string or null, got {_type_name(reason)}"
    for key, value in ((text_column, note), ("reason", reason)):
        if bad := unpaired_surrogate(value):
            return f"{key!r} is not valid Unicode (unpaired surrogate at character {bad - 1})"
    return None


def unpaired_surrogate(text: str | None) -> int:
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


def _file_problem(message: str) -> str:
    return "file not found" if message.startswith("input not found") else message


def _id_value(obj: dict[str, Any], id_column: str) -> str | None:
    rid = obj.get(id_column)
    return str(rid) if rid is not None and str(rid).strip() else None


def _make_record(
    obj: dict[str, Any], source: str, rel: str, line: int, text_column: str, id_column: str
) -> Record:
    reason = normalize_reason(obj.get("reason"))
    rid = _id_value(obj, id_column) or derive_note_id(rel, line)
    meta = {k: v for k, v in obj.items() if k not in (text_column, "reason", id_column)}
    cat = obj.get("category")
    category = cat if isinstance(cat, str) and cat else category_of(reason)
    if reason == "good":
        category = "good"
    return Record(obj[text_column], reason, rid, source, line, category, meta)


def iter_jsonl_rows(path: str | Path) -> Any:
    """Yield (line_no, obj | None, problem | None) for every line of a JSONL file; a blank line
    gives (line_no, None, None)."""
    f = sources.expand_inputs([str(path)])[0]
    for line, obj, problem in sources.iter_file(f):
        if obj is sources.BLANK:
            yield line, None, None
        elif obj is None and problem is None:  # JSON `null` is a row (invalid), not a blank line
            yield line, None, check_row(obj)
        else:
            yield line, obj, problem


def _columns(f: sources.InputFile) -> list[str] | None:
    """A parquet file's columns or a CSV/TSV file's header; None for JSONL."""
    if f.format == sources.PARQUET:
        import pyarrow.parquet as pq

        fs, path, _ = sources.filesystem(f.uri)
        with fs.open_input_file(path) as fh:
            return pq.ParquetFile(fh).schema_arrow.names
    if f.format == sources.JSONL:
        return None
    scanner = sources.Scanner(f.format, 1)
    with sources.open_stream(f.uri, f.compression) as fh:
        while scanner.header is None and (block := fh.read(1 << 16)):
            scanner.feed(block)
        if scanner.header is None:
            scanner.finish()
    return scanner.header or []


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


def read_records(
    paths: str | Path | list[str | Path], text_column: str = "note", id_column: str = "id"
) -> ReadResult:
    """Read every row of the given files; invalid rows become Problems, never exceptions.

    Besides files, folders and globs, a `synth:n=N,seed=S,length=short` source generates
    synthetic labelled notes (smoke runs and tests need no data files). A file without a
    `reason` column is unlabelled (scoring input; listed in `unlabelled`): where it has ids (its
    id column exists, or one other than the default `id` is named) every row needs one. A named
    id column (other than `id`) that a CSV/TSV/parquet header lacks is a problem, as is an input
    (a file, folder or glob as given) with no record at all.
    """
    if not isinstance(paths, list):
        paths = [paths]
    records: list[Record] = []
    problems: list[Problem] = []
    seen_hash: dict[str, str] = {}
    seen_id: dict[str, str] = {}
    duplicates: list[tuple[str, str]] = []
    duplicate_ids: list[tuple[str, str, str]] = []
    unlabelled: list[str] = []
    files: list[str] = []
    rows = blanks = 0
    # (spec as given, source, relative name, rows, labelled, has ids)
    inputs: list[tuple[str, str, str, list[tuple[int, Any, str | None]], bool, bool]] = []
    for spec in map(str, paths):
        if spec.startswith(SYNTH_PREFIX):
            files.append(spec)
            inputs.append((spec, spec, spec, synth_rows(spec), True, True))
            continue
        try:
            found = sources.expand_inputs([spec])
        except sources.SourceError as e:
            problems.append(Problem(spec, 0, _file_problem(str(e))))
            continue
        for f in found:
            src = str(f)
            files.append(src)
            try:
                cols = _columns(f)
                if cols is not None and "reason" not in cols:
                    unlabelled.append(src)
                required = [text_column] + ([id_column] if id_column != "id" else [])
                if missing := [c for c in required if cols is not None and c not in cols]:
                    listed = ", ".join(cols or []) or "none"
                    problems.append(
                        Problem(src, 0, f"missing column {missing[0]!r} (columns: {listed})")
                    )
                    continue
                items = list(sources.iter_file(f))
            except (OSError, sources.SourceError, ValueError) as e:
                what = "parquet" if f.format == sources.PARQUET else "file"
                problems.append(Problem(src, 0, f"cannot read {what}: {type(e).__name__}"))
                continue
            objs = [o for _, o, _ in items if isinstance(o, dict)]
            if cols is None:  # JSONL: the keys its rows have
                labelled = any("reason" in o for o in objs)
                has_ids = id_column != "id" or any(id_column in o for o in objs)
                if objs and not labelled:
                    unlabelled.append(src)
            else:
                labelled, has_ids = "reason" in cols, id_column in cols
            inputs.append((spec, src, f.rel, items, labelled, has_ids))
    rows_of: Counter[str] = Counter()
    for spec, src, rel, items, labelled, has_ids in inputs:
        for line, obj, err in items:
            if obj is sources.BLANK:
                blanks += 1
                continue
            rows += 1
            rows_of[spec] += 1
            err = err or check_row(obj, text_column)
            if not err and not labelled and has_ids and _id_value(obj, id_column) is None:
                err = f"{id_column!r} is empty" if id_column in obj else f"missing {id_column!r}"
            if err:
                problems.append(Problem(src, line, err))
                continue
            rec = _make_record(obj, src, rel, line, text_column, id_column)
            pos = f"{src}:{line}"
            h = note_hash(rec.note)
            if h in seen_hash:
                duplicates.append((pos, seen_hash[h]))
            else:
                seen_hash[h] = pos
            if (rid := _id_value(obj, id_column)) is not None:
                if rid in seen_id:
                    duplicate_ids.append((rid, pos, seen_id[rid]))
                else:
                    seen_id[rid] = pos
            records.append(rec)
    for spec in dict.fromkeys(s for s, *_ in inputs):
        if not rows_of[spec]:
            problems.append(Problem(spec, 0, "no records"))
    return ReadResult(records, problems, duplicates, rows, blanks, unlabelled, duplicate_ids, files)


def load_valid(
    paths: str | Path | list[str | Path],
    on_invalid: str = "error",
    text_column: str = "note",
    id_column: str = "id",
) -> ReadResult:
    """Read and stop with every problem listed (on_invalid="error"), or drop bad rows ("skip").
    An input with no record at all stops it in either case, with one line."""
    result = read_records(paths, text_column, id_column)
    if empty := [p for p in result.problems if p.message == "no records"]:
        raise DataError(str(empty[0]))
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
        "duplicate_ids": len(result.duplicate_ids),
        # scoring input: no file has a `reason` column (then good/error say nothing)
        "unlabelled": bool(result.unlabelled) and len(result.unlabelled) == len(result.files),
        "unlabelled_files": len(result.unlabelled),
        "words": percentiles([len(r.note.split()) for r in recs]),
    }
    if tokenizer is not None and recs:
        lengths = [
            len(x) for x in tokenizer([r.note for r in recs], add_special_tokens=False)["input_ids"]
        ]
        summary["tokens"] = percentiles(lengths)
    return summary
