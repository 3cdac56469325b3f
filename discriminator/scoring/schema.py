"""Scoring's shared vocabulary: output/internal row schemas, statuses, the manifest's name, errors."""

from __future__ import annotations

import logging

import pyarrow as pa

from discriminator.sources import BLANK as BLANK  # the scoring package uses this name

log = logging.getLogger(__name__)


MANIFEST = "_manifest.json"


PROVENANCE_KEY = b"discriminator.provenance"


OUTPUT_SCHEMA = pa.schema(
    [
        ("note_id", pa.string()),
        ("source", pa.string()),  # the input file, relative to its input root
        ("row", pa.int64()),  # its line (JSONL) or row (CSV/TSV after the header, parquet)
        ("status", pa.string()),
        ("verdict", pa.string()),
        ("p_error", pa.float64()),
        ("off_decision", pa.float64()),  # first-token mass on neither "good" nor a category
        ("reason", pa.string()),
        ("category", pa.string()),
        ("n_tokens", pa.int64()),
        ("truncated", pa.bool_()),
        ("error", pa.string()),
    ]
)


# Internal columns travel with each row until the driver writes it.
_ROUTE = [("_part", pa.string()), ("_row", pa.int64())]


PREP_SCHEMA = pa.schema(
    [
        *_ROUTE,
        ("note_id", pa.string()),
        ("source", pa.string()),
        ("row", pa.int64()),
        ("status", pa.string()),  # pending | invalid_input | blank
        ("error", pa.string()),
        ("input_ids", pa.list_(pa.int32())),
        ("n_tokens", pa.int64()),
        ("truncated", pa.bool_()),
        ("note", pa.string()),  # null unless keep_text
        ("_keep", pa.string()),  # JSON list of the io.keep_columns values, null if none
    ]
)


SCORED_SCHEMA = pa.schema([*_ROUTE, *OUTPUT_SCHEMA, ("note", pa.string()), ("_keep", pa.string())])


def output_schema(
    keep_columns: list[str] | tuple[str, ...] = (), keep_text: bool = False
) -> pa.Schema:
    """The part files' schema: the output columns, the kept metadata columns (text), the note."""
    schema = OUTPUT_SCHEMA
    for name in keep_columns:
        schema = schema.append(pa.field(name, pa.string()))
    return schema.append(pa.field("note", pa.string())) if keep_text else schema


KEPT = "kept"  # --retry-failed: a row whose earlier result stays (internal status)


class ScoreError(RuntimeError):
    """A scoring job that cannot start or finish (bad input spec, mismatched output dir)."""


def scrub_error(exc: BaseException, phase: str) -> str:
    """An error message without input text: exception type and where it happened."""
    name = type(exc).__name__
    if "OutOfMemory" in name or isinstance(exc, MemoryError):
        return f"{name}: out of memory during {phase}"
    return f"{name} during {phase}"
