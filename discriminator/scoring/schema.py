"""Scoring's shared vocabulary: output/internal row schemas, statuses, the manifest's name, errors."""

from __future__ import annotations

import logging

import pyarrow as pa

log = logging.getLogger(__name__)


MANIFEST = "_manifest.json"


PROVENANCE_KEY = b"discriminator.provenance"


OUTPUT_SCHEMA = pa.schema(
    [
        ("note_id", pa.string()),
        ("status", pa.string()),
        ("verdict", pa.string()),
        ("p_error", pa.float64()),
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
        ("status", pa.string()),  # pending | invalid_input | blank
        ("error", pa.string()),
        ("input_ids", pa.list_(pa.int32())),
        ("n_tokens", pa.int64()),
        ("truncated", pa.bool_()),
        ("note", pa.string()),  # null unless keep_text
    ]
)


SCORED_SCHEMA = pa.schema([*_ROUTE, *OUTPUT_SCHEMA, ("note", pa.string())])


BLANK = "<blank line>"  # _read_chunk's marker: a blank line is not a row (JSON `null` is one)


KEPT = "kept"  # --retry-failed: a row whose earlier result stays (internal status)


class ScoreError(RuntimeError):
    """A scoring job that cannot start or finish (bad input spec, mismatched output dir)."""


def scrub_error(exc: BaseException, phase: str) -> str:
    """An error message without input text: exception type and where it happened."""
    name = type(exc).__name__
    if "OutOfMemory" in name or isinstance(exc, MemoryError):
        return f"{name}: out of memory during {phase}"
    return f"{name} during {phase}"
