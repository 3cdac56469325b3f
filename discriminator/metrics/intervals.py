"""95% intervals from a seeded bootstrap over notes, and the paired difference of two scorers."""

from __future__ import annotations

from typing import Any

import numpy as np

from discriminator.metrics.figures import auroc, average_precision, binary_metrics, ratio
from discriminator.metrics.scores import EvalData
from discriminator.prompt import CATEGORIES, GOOD

CI_LEVEL = 0.95
N_BOOTSTRAP = 1000
BOOTSTRAP_SEED = 0
CI_METRICS = (
    "auroc",
    "auprc",
    "balanced_accuracy",
    "precision",
    "recall",
    "f1",
    "specificity",
    "category_accuracy",
)


def _resample_values(
    y: np.ndarray,
    pred: np.ndarray,
    p: np.ndarray,
    lcat: np.ndarray,
    pcat: np.ndarray,
    rows: np.ndarray,
) -> dict[str, float | None]:
    """The CI metrics (and per-category recall) on one resample `rows` of the notes."""
    yr, dr, pr = y[rows], pred[rows], p[rows]
    b = binary_metrics(yr, dr)
    has_p = ~np.isnan(pr)
    out: dict[str, float | None] = {k: b[k] for k in ("balanced_accuracy", "precision", "recall",
                                                     "f1", "specificity")}  # fmt: skip
    out["auroc"] = auroc(yr[has_p], pr[has_p])
    out["auprc"] = average_precision(yr[has_p], pr[has_p])
    lc, pc = lcat[rows], pcat[rows]
    tp = yr & dr & np.isin(lc, CATEGORIES)
    out["category_accuracy"] = ratio(int((tp & (lc == pc)).sum()), int(tp.sum()))
    for cat in set(lc.tolist()) - {GOOD}:
        n = lc == cat
        out[f"recall:{cat}"] = ratio(int((n & dr).sum()), int(n.sum()))
    return out


def _interval(values: list[float | None], level: float = CI_LEVEL) -> list[float] | None:
    v = np.array([x for x in values if x is not None], dtype=float)
    if v.size < 0.5 * len(values) or v.size == 0:  # undefined in most resamples
        return None
    lo, hi = np.percentile(v, [100 * (1 - level) / 2, 100 * (1 + level) / 2])
    return [float(lo), float(hi)]


def bootstrap_indices(n: int, n_boot: int = N_BOOTSTRAP, seed: int = BOOTSTRAP_SEED) -> np.ndarray:
    """`n_boot` resamples of `n` notes with replacement (seeded: the same intervals each run)."""
    return (
        np.random.default_rng(seed).integers(0, n, size=(n_boot, n)) if n else np.zeros((0, 0), int)
    )


def confidence_intervals(
    data: EvalData, n_boot: int = N_BOOTSTRAP, seed: int = BOOTSTRAP_SEED
) -> dict[str, Any]:
    """95% intervals of the CI metrics and of each category's recall: the 2.5th and 97.5th
    percentiles over `n_boot` seeded resamples of the evaluated notes (None where a metric is
    undefined in most resamples, e.g. AUROC with one class)."""
    y, pred = np.asarray(data.y_true, bool), np.asarray(data.y_pred, bool)
    p = np.asarray(data.p_error, float)
    lcat = np.asarray(data.label_category, dtype=object)
    pcat = np.asarray(data.pred_category, dtype=object)
    draws = [
        _resample_values(y, pred, p, lcat, pcat, rows)
        for rows in bootstrap_indices(len(y), n_boot, seed)
    ]
    keys = {k for d in draws for k in d}
    cis = {k: _interval([d.get(k) for d in draws]) for k in sorted(keys)}
    return {
        "method": f"percentile bootstrap over notes, {n_boot} resamples, seed {seed}",
        "level": CI_LEVEL,
        "metrics": {k: cis.get(k) for k in CI_METRICS},
        "per_category_recall": {
            k.split(":", 1)[1]: v for k, v in cis.items() if k.startswith("recall:")
        },
    }


def paired_difference(
    a: EvalData, b: EvalData, n_boot: int = N_BOOTSTRAP, seed: int = BOOTSTRAP_SEED
) -> dict[str, Any]:
    """AUROC and balanced accuracy of `a` minus `b` on the notes both scored (joined by id),
    with a paired bootstrap 95% interval: each resample draws the same notes for both."""
    where_b = {k: i for i, k in enumerate(b.ids)}
    common_ids = [(i, where_b[k]) for i, k in enumerate(a.ids) if k in where_b]
    ia = np.array([i for i, _ in common_ids], dtype=int)
    ib = np.array([j for _, j in common_ids], dtype=int)
    ya = np.asarray(a.y_true, bool)[ia]

    def figures(d: EvalData, idx: np.ndarray, rows: np.ndarray | None) -> dict[str, float | None]:
        sel = idx if rows is None else idx[rows]
        y = ya if rows is None else ya[rows]
        p = np.asarray(d.p_error, float)[sel]
        has_p = ~np.isnan(p)
        return {
            "auroc": auroc(y[has_p], p[has_p]),
            "balanced_accuracy": binary_metrics(y, np.asarray(d.y_pred, bool)[sel])[
                "balanced_accuracy"
            ],
        }

    out: dict[str, Any] = {"notes": len(common_ids)}
    fa, fb = figures(a, ia, None), figures(b, ib, None)
    draws = [
        (figures(a, ia, r), figures(b, ib, r)) for r in bootstrap_indices(len(ia), n_boot, seed)
    ]
    for k in ("auroc", "balanced_accuracy"):
        out[k] = fa[k]
        out[f"baseline_{k}"] = fb[k]
        out[f"{k}_diff"] = None if fa[k] is None or fb[k] is None else fa[k] - fb[k]
        out[f"{k}_diff_ci95"] = _interval(
            [None if x[k] is None or z[k] is None else x[k] - z[k] for x, z in draws]
        )
    out["method"] = f"paired percentile bootstrap over notes, {n_boot} resamples, seed {seed}"
    return out
