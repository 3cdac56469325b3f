"""Numbers for people: percentiles of a list of counts, and a number as short text."""

from __future__ import annotations

import math
from typing import Any, Literal


def percentiles(
    values: list[int],
    qs: tuple[int, ...] = (0, 50, 90, 99, 100),
    method: Literal["nearest", "inverted_cdf"] = "nearest",
) -> dict[str, int]:
    """`p<q>` -> the q-th percentile of `values` for each q in `qs` ({} for no values); always
    one of the values, picked from the sorted list by `method` (named like numpy.percentile's):

    - "nearest": the one at index round(q / 100 * (n - 1)) (Python's round: halves to even);
    - "inverted_cdf": the nearest-rank percentile, the ceil(q / 100 * n)-th smallest (the
      smallest for q = 0).
    """
    if not values:
        return {}
    s = sorted(values)
    n = len(s)
    if method == "nearest":
        at = [round(q / 100 * (n - 1)) for q in qs]
    elif method == "inverted_cdf":
        at = [max(0, math.ceil(q / 100 * n) - 1) for q in qs]
    else:
        raise ValueError(f"method must be 'nearest' or 'inverted_cdf', got {method!r}")
    return {f"p{q}": s[min(n - 1, i)] for q, i in zip(qs, at)}


def fmt(x: Any, spec: str = ".3f", none: str = "n/a") -> str:
    """`x` as text: a float with the format `spec`, None as `none`, anything else as str()."""
    if x is None:
        return none
    if isinstance(x, float):
        return format(x, spec)
    return str(x)
