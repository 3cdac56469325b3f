"""Each figure from arrays (None where undefined): classes, ranking, calibration, categories."""

from __future__ import annotations

from typing import Any

import numpy as np

from discriminator.metrics.scores import CANONICAL, EvalData
from discriminator.prompt import CATEGORIES, GOOD

N_CALIBRATION_BINS = 10


def ratio(num: float, den: float) -> float | None:
    """num / den as a float; None when den is 0."""
    return float(num) / float(den) if den else None


def binary_metrics(y_true: np.ndarray, y_pred: np.ndarray) -> dict[str, Any]:
    """Accuracy, balanced accuracy, precision/recall/F1 with error as the positive class."""
    y_true = np.asarray(y_true, dtype=bool)
    y_pred = np.asarray(y_pred, dtype=bool)
    tp = int(np.sum(y_true & y_pred))
    fp = int(np.sum(~y_true & y_pred))
    fn = int(np.sum(y_true & ~y_pred))
    tn = int(np.sum(~y_true & ~y_pred))
    recall = ratio(tp, tp + fn)
    specificity = ratio(tn, tn + fp)
    present = [r for r in (recall, specificity) if r is not None]
    return {
        "accuracy": ratio(tp + tn, tp + tn + fp + fn),
        # mean recall over the classes present (sklearn's convention with one class)
        "balanced_accuracy": sum(present) / len(present) if present else None,
        "precision": ratio(tp, tp + fp),
        "recall": recall,
        "specificity": specificity,
        "f1": ratio(2 * tp, 2 * tp + fp + fn),
        "confusion": {
            "labels": [GOOD, "error"],
            "matrix": [[tn, fp], [fn, tp]],  # rows: label, columns: prediction
            "tn": tn,
            "fp": fp,
            "fn": fn,
            "tp": tp,
        },
    }


def _ranked(y_true: np.ndarray, scores: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(distinct thresholds descending, true positives, false positives at p >= each)."""
    y = np.asarray(y_true, dtype=bool)
    s = np.asarray(scores, dtype=float)
    order = np.argsort(-s, kind="mergesort")
    s, y = s[order], y[order]
    last_of_group = np.r_[np.flatnonzero(np.diff(s)), len(s) - 1]  # ties share one point
    tps = np.cumsum(y)[last_of_group]
    fps = np.cumsum(~y)[last_of_group]
    return s[last_of_group], tps, fps


def roc_curve(y_true: np.ndarray, scores: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(fpr, tpr, thresholds), starting at (0, 0) with threshold +inf. Needs both classes."""
    thr, tps, fps = _ranked(y_true, scores)
    n_pos, n_neg = tps[-1], fps[-1]
    if n_pos == 0 or n_neg == 0:
        raise ValueError("ROC needs both classes")
    return np.r_[0.0, fps / n_neg], np.r_[0.0, tps / n_pos], np.r_[np.inf, thr]


def auroc(y_true: np.ndarray, scores: np.ndarray) -> float | None:
    """Area under ROC (Mann-Whitney U with average ranks for ties); None with one class."""
    y = np.asarray(y_true, dtype=bool)
    s = np.asarray(scores, dtype=float)
    n_pos, n_neg = int(y.sum()), int((~y).sum())
    if n_pos == 0 or n_neg == 0:
        return None
    _, inverse, counts = np.unique(s, return_inverse=True, return_counts=True)
    starts = np.cumsum(counts) - counts
    ranks = (starts + (counts + 1) / 2.0)[inverse]  # 1-based average ranks
    u = ranks[y].sum() - n_pos * (n_pos + 1) / 2.0
    return float(u / (n_pos * n_neg))


def pr_curve(y_true: np.ndarray, scores: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(precision, recall, thresholds) at each distinct threshold, highest first."""
    thr, tps, fps = _ranked(y_true, scores)
    if tps[-1] == 0:
        raise ValueError("PR curve needs positives")
    return tps / (tps + fps), tps / tps[-1], thr


def average_precision(y_true: np.ndarray, scores: np.ndarray) -> float | None:
    """AUPRC as average precision: sum over thresholds of (recall step) x precision."""
    y = np.asarray(y_true, dtype=bool)
    if y.size == 0 or not y.any():
        return None
    precision, recall, _ = pr_curve(y, scores)
    return float(np.sum(np.diff(np.r_[0.0, recall]) * precision))


def best_f1(y_true: np.ndarray, scores: np.ndarray) -> dict[str, float] | None:
    """The threshold t (flag p_error >= t) with the highest F1; the highest t among equals."""
    y = np.asarray(y_true, dtype=bool)
    if y.size == 0 or not y.any():
        return None
    thr, tps, fps = _ranked(y, scores)
    f1 = 2 * tps / (2 * tps + fps + (tps[-1] - tps))
    i = int(np.argmax(f1))
    return {
        "threshold": float(thr[i]),
        "f1": float(f1[i]),
        "precision": float(tps[i] / (tps[i] + fps[i])),
        "recall": float(tps[i] / tps[-1]),
    }


def calibration(
    y_true: np.ndarray, scores: np.ndarray, n_bins: int = N_CALIBRATION_BINS
) -> dict[str, Any]:
    """Equal-width bins over [0, 1] (the last one closed): mean p_error, error rate, count; ECE."""
    y = np.asarray(y_true, dtype=bool)
    s = np.clip(np.asarray(scores, dtype=float), 0.0, 1.0)
    idx = np.minimum((s * n_bins).astype(int), n_bins - 1)
    bins, ece = [], 0.0
    for b in range(n_bins):
        mask = idx == b
        n = int(mask.sum())
        mean_p = float(s[mask].mean()) if n else None
        rate = float(y[mask].mean()) if n else None
        if n:
            ece += n / len(s) * abs(mean_p - rate)
        bins.append(
            {
                "lo": b / n_bins,
                "hi": (b + 1) / n_bins,
                "count": n,
                "mean_p_error": mean_p,
                "error_rate": rate,
            }
        )
    return {"bins": bins, "ece": float(ece) if len(s) else None, "n": len(s)}


# ---------------------------------------------------------------------------------------------
# Operating points


def operating_point(
    y_true: np.ndarray,
    scores: np.ndarray,
    recall: float | None = None,
    precision: float | None = None,
) -> dict[str, Any] | None:
    """The threshold t (flag p_error >= t) that reaches a target on these labels: with `recall`
    the highest t whose recall is at least that (fewest notes flagged); with `precision` the
    lowest t whose precision is at least that (most errors caught). None if no t reaches it."""
    y = np.asarray(y_true, dtype=bool)
    s = np.asarray(scores, dtype=float)
    keep = ~np.isnan(s)
    y, s = y[keep], s[keep]
    if not y.any():
        return None
    thr, tps, fps = _ranked(y, s)
    rec, prec = tps / tps[-1], tps / (tps + fps)
    if recall is not None:
        ok = np.flatnonzero(rec >= recall - 1e-12)
        i = int(ok[0]) if ok.size else None  # thresholds descend: the first is the highest
    else:
        ok = np.flatnonzero(prec >= precision - 1e-12)
        i = int(ok[-1]) if ok.size else None
    if i is None:
        return None
    return {"threshold": float(thr[i]), "recall": float(rec[i]), "precision": float(prec[i])}


def category_order(values: set[str]) -> list[str]:
    """The categories in `values`: the known ones in CANONICAL order, then the others sorted."""
    return [c for c in CANONICAL if c in values] + sorted(values - set(CANONICAL))


def category_metrics(data: EvalData) -> dict[str, Any]:
    """Per-category recall and "reason names the right category"; the category x predicted table."""
    per: dict[str, Any] = {}
    lcat = np.asarray(data.label_category, dtype=object)
    pcat = np.asarray(data.pred_category, dtype=object)
    for cat in category_order(set(data.label_category) - {GOOD}):
        rows = lcat == cat
        detected = rows & data.y_pred
        n_det = int(detected.sum())
        named = int((detected & (pcat == cat)).sum())
        judged = cat in CATEGORIES  # `other` / unknown label categories cannot be matched
        per[cat] = {
            "n": int(rows.sum()),
            "detected": n_det,
            "recall": ratio(n_det, int(rows.sum())),
            "named": named if judged else None,
            "named_rate": ratio(named, n_det) if judged else None,
        }
    tp = data.y_true & data.y_pred & np.isin(lcat, CATEGORIES)
    n_match = int((tp & (lcat == pcat)).sum())
    row_names = category_order(set(data.label_category))
    col_names = category_order(set(data.pred_category) | set(CANONICAL))
    matrix = [[int(np.sum((lcat == r) & (pcat == c))) for c in col_names] for r in row_names]
    return {
        "per_category": per,
        "category_accuracy": ratio(n_match, int(tp.sum())),
        "category_accuracy_n": int(tp.sum()),
        "category_confusion": {"rows": row_names, "columns": col_names, "matrix": matrix},
    }
