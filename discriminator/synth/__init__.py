"""Synthetic US hospital discharge summaries with labelled error injection.

Notes are rendered from structured patient stories (`story*.py`) in several house styles
(`render.py`); error notes carry exactly one injected error (`inject.py`, 34 kinds over the five
categories of `discriminator.prompt`), good notes include hard negatives (unusual but correct:
held-then-resumed drugs with a reason, ruled-out diagnoses, same-day discharges, pending labs,
de-identification placeholders, ...). Pure standard library, deterministic for a seed.

Public API:
    generate_records(n, seed=0, error_rate=0.5, categories=None, length="realistic")
    write_splits(out_dir, n, seed=0, error_rate=0.5, categories=None, length="realistic",
                 fractions=(0.8, 0.1, 0.1))
    ERROR_KINDS            kind -> category id
    check_consistency(record_or_story) -> list of problems (empty for a good note)
"""

from __future__ import annotations

from .generate import check_consistency, generate_records, write_splits
from .inject import ERROR_KINDS, KINDS_BY_CATEGORY
from .story import HARD_NEGATIVES

__all__ = [
    "ERROR_KINDS",
    "HARD_NEGATIVES",
    "KINDS_BY_CATEGORY",
    "check_consistency",
    "generate_records",
    "write_splits",
]
