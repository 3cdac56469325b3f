"""Metrics of the discriminator: labelled records joined with the scorer's parquet output.

Pure numpy + pyarrow: no plotting (that is `report.py`), no Ray. The join key is the record id
(the `id` column, else `derive_note_id(source, line)`, which is what the scorer writes as
`note_id` for rows without an id). Rows whose status is not `ok` are counted but left out of the
classification metrics. Ranking metrics (AUROC, AUPRC, best-F1 threshold) are tie-aware: notes
with equal `p_error` are ranked together, never in file order. Nothing here reads or returns
note text or generated reasons (PHI); only ids, labels, categories and numbers.
"""

from __future__ import annotations

import json
import math
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from discriminator.data import ReadResult, read_records
from discriminator.numbers import fmt
from discriminator.prompt import CATEGORIES, GOOD, OTHER, category_of

NO_REASON = "no_reason"  # predicted error (threshold override) but the scorer wrote no reason
CANONICAL = (GOOD, *CATEGORIES, OTHER)
N_CALIBRATION_BINS = 10
MAX_LISTED_IDS = 20


class EvalError(ValueError):
    """Scores or labels that cannot be evaluated (missing files or columns)."""


# ---------------------------------------------------------------------------------------------
# Reading


@dataclass
class Scores:
    """The scorer's output, one entry per row (columns as lists)."""

    note_id: list[str]
    status: list[str]
    verdict: list[str | None]
    p_error: list[float | None]
    category: list[str | None]
    files: int


def score_files(scores_dir: str | Path) -> list[Path]:
    """Every `*.parquet` under the folder (recursively), skipping `.`/`_` temp files and folders."""
    root = Path(scores_dir)
    if root.is_file():
        return [root]
    if not root.is_dir():
        raise EvalError(f"scores folder not found: {root}")
    files = [
        f
        for f in sorted(root.rglob("*.parquet"))
        if f.is_file() and not any(p.startswith((".", "_")) for p in f.relative_to(root).parts)
    ]
    if not files:
        raise EvalError(f"no parquet files under {root}")
    return files


def read_scores(scores_dir: str | Path) -> Scores:
    import pyarrow.parquet as pq

    files = score_files(scores_dir)
    out = Scores([], [], [], [], [], len(files))
    for f in files:
        names = set(pq.ParquetFile(f).schema_arrow.names)
        for required in ("note_id", "status"):
            if required not in names:
                raise EvalError(f"{f}: missing column {required!r} (is this scorer output?)")
        # `reason` only when `category` is absent: it is generated text about the note (PHI).
        wanted = ["note_id", "status", "verdict", "p_error", "category"]
        if "category" not in names and "reason" in names:
            wanted.append("reason")
        table = pq.read_table(f, columns=[c for c in wanted if c in names])
        n = table.num_rows

        def col(name: str, t: Any = table, n: int = n) -> list[Any]:
            return t.column(name).to_pylist() if name in t.column_names else [None] * n

        out.note_id += [str(x) for x in col("note_id")]
        out.status += [str(x) if x is not None else "failed" for x in col("status")]
        out.verdict += col("verdict")
        out.p_error += col("p_error")
        if "category" in table.column_names:
            out.category += col("category")
        else:
            out.category += [None if r is None else category_of(r) for r in col("reason")]
    return out


MANIFEST = "_manifest.json"  # written by discriminator.scoring beside the parquet parts


def read_manifest(scores_dir: str | Path) -> dict[str, Any] | None:
    path = Path(scores_dir) / MANIFEST
    if not path.is_file():
        return None
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {"manifest": "unreadable"}
    return data if isinstance(data, dict) else {"manifest": "not a JSON object"}


_PROVENANCE_FIRST = ("model", "adapter", "prompt", "version", "sha", "hash", "created", "git")


def provenance(manifest: dict[str, Any] | None, limit: int = 60) -> dict[str, str]:
    """Scalar manifest fields as `dotted.key -> text`; model/adapter/prompt/version ones first."""
    if not manifest:
        return {}
    flat: dict[str, str] = {}

    def walk(node: Any, prefix: str) -> None:
        if isinstance(node, dict):
            for k, v in node.items():
                walk(v, f"{prefix}.{k}" if prefix else str(k))
        elif isinstance(node, list):
            if all(not isinstance(v, (dict, list)) for v in node) and len(node) <= 10:
                flat[prefix] = ", ".join(map(str, node))
        else:
            text = "null" if node is None else str(node)
            flat[prefix] = text if len(text) <= 200 else text[:197] + "..."

    walk(manifest, "")
    first = [k for k in flat if any(w in k.lower() for w in _PROVENANCE_FIRST)]
    rest = [k for k in flat if k not in first]
    return {k: flat[k] for k in (first + rest)[:limit]}


# ---------------------------------------------------------------------------------------------
# Join


@dataclass
class EvalData:
    """The evaluated rows (labelled, status ok, with a prediction) as aligned arrays."""

    ids: list[str]
    y_true: np.ndarray  # bool: the label says error
    y_pred: np.ndarray  # bool: predicted error
    p_error: np.ndarray  # float, NaN where the scorer gave none
    label_category: list[str]
    pred_category: list[str]
    counts: dict[str, int] = field(default_factory=dict)
    listed_ids: dict[str, list[str]] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)


def label_category(category: str) -> str:
    """Label categories as ids: known ids pass, synonyms map ("Timeline" -> timeline), else other."""
    if category in CANONICAL:
        return category
    return category_of(f"{category} error: x")


def _to_float(x: Any) -> float:
    if x is None:
        return math.nan
    try:
        return float(x)
    except (TypeError, ValueError):
        return math.nan


def label_key(rec: Any, id_column: str = "id") -> str:
    """The id a label record is joined on (the scores' `note_id`)."""
    return str(rec.id if id_column == "id" else rec.meta.get(id_column, rec.id))


def join(
    records: list[Any],
    scores: Scores,
    threshold: float | None = None,
    id_column: str = "id",
) -> EvalData:
    """Match labels to score rows by id; count what does not match or is not ok.

    threshold None: the scorer's verdict decides (p_error >= 0.5 where a verdict is missing);
    otherwise a note is predicted error when p_error >= threshold.
    """
    if threshold is not None and not 0.0 <= threshold <= 1.0:
        raise EvalError(f"threshold must lie in [0, 1], got {threshold}")
    labels: dict[str, Any] = {}
    dup_labels = 0
    for rec in records:
        key = label_key(rec, id_column)
        if key in labels:
            dup_labels += 1
            continue
        labels[key] = rec
    rows: dict[str, int] = {}
    dup_scores = 0
    for i, nid in enumerate(scores.note_id):
        if nid in rows:
            dup_scores += 1
            continue
        rows[nid] = i

    status_counts: Counter[str] = Counter()
    listed: dict[str, list[str]] = {"missing_from_scores": [], "invalid_input": [], "failed": []}
    ids, y_true, y_pred, p, lcat, pcat = [], [], [], [], [], []
    missing = no_prediction = 0
    for key, rec in labels.items():
        i = rows.get(key)
        if i is None:
            missing += 1
            listed["missing_from_scores"].append(key)
            continue
        status = scores.status[i]
        status_counts[status if status in ("ok", "invalid_input", "failed") else "other"] += 1
        if status != "ok":
            listed.setdefault(status, []).append(key)
            continue
        pe = _to_float(scores.p_error[i])
        verdict = scores.verdict[i]
        if threshold is not None:
            pred = None if math.isnan(pe) else bool(pe >= threshold)
        elif verdict in ("good", "error"):
            pred = verdict == "error"
        else:
            pred = None if math.isnan(pe) else bool(pe >= 0.5)
        if pred is None:
            no_prediction += 1
            continue
        cat = scores.category[i]
        if not pred:
            cat = GOOD
        elif not cat or cat == GOOD:
            cat = NO_REASON
        ids.append(key)
        y_true.append(rec.category != GOOD)
        y_pred.append(pred)
        p.append(pe)
        lcat.append(label_category(rec.category))
        pcat.append(str(cat))

    extra = [nid for nid in rows if nid not in labels]
    listed["scores_without_labels"] = extra
    counts = {
        "labelled": len(labels),
        "duplicate_label_ids": dup_labels,
        "score_rows": len(scores.note_id),
        "score_files": scores.files,
        "duplicate_score_ids": dup_scores,
        "matched": len(labels) - missing,
        "ok": status_counts["ok"],
        "invalid_input": status_counts["invalid_input"],
        "failed": status_counts["failed"],
        "other_status": status_counts["other"],
        "missing_from_scores": missing,
        "scores_without_labels": len(extra),
        "no_prediction": no_prediction,
        "evaluated": len(ids),
        "label_good": int(len(ids) - sum(y_true)),
        "label_error": int(sum(y_true)),
    }
    notes = []
    if dup_labels:
        notes.append(f"{dup_labels} duplicate label id(s): the first record of each was used")
    if dup_scores:
        notes.append(f"{dup_scores} duplicate score row id(s): the first row of each was used")
    if no_prediction:
        notes.append(f"{no_prediction} ok row(s) had no verdict/p_error and were left out")
    return EvalData(
        ids=ids,
        y_true=np.asarray(y_true, dtype=bool),
        y_pred=np.asarray(y_pred, dtype=bool),
        p_error=np.asarray(p, dtype=float),
        label_category=lcat,
        pred_category=pcat,
        counts=counts,
        listed_ids={k: sorted(v)[:MAX_LISTED_IDS] for k, v in listed.items()},
        notes=notes,
    )


# ---------------------------------------------------------------------------------------------
# Metrics (each takes arrays; None where undefined)


def _ratio(num: float, den: float) -> float | None:
    return float(num) / float(den) if den else None


def binary_metrics(y_true: np.ndarray, y_pred: np.ndarray) -> dict[str, Any]:
    """Accuracy, balanced accuracy, precision/recall/F1 with error as the positive class."""
    y_true = np.asarray(y_true, dtype=bool)
    y_pred = np.asarray(y_pred, dtype=bool)
    tp = int(np.sum(y_true & y_pred))
    fp = int(np.sum(~y_true & y_pred))
    fn = int(np.sum(y_true & ~y_pred))
    tn = int(np.sum(~y_true & ~y_pred))
    recall = _ratio(tp, tp + fn)
    specificity = _ratio(tn, tn + fp)
    present = [r for r in (recall, specificity) if r is not None]
    return {
        "accuracy": _ratio(tp + tn, tp + tn + fp + fn),
        # mean recall over the classes present (sklearn's convention with one class)
        "balanced_accuracy": sum(present) / len(present) if present else None,
        "precision": _ratio(tp, tp + fp),
        "recall": recall,
        "specificity": specificity,
        "f1": _ratio(2 * tp, 2 * tp + fp + fn),
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
# Intervals: a seeded percentile bootstrap over notes

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
    out["category_accuracy"] = _ratio(int((tp & (lc == pc)).sum()), int(tp.sum()))
    for cat in set(lc.tolist()) - {GOOD}:
        n = lc == cat
        out[f"recall:{cat}"] = _ratio(int((n & dr).sum()), int(n.sum()))
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


def _category_order(values: set[str]) -> list[str]:
    return [c for c in CANONICAL if c in values] + sorted(values - set(CANONICAL))


def category_metrics(data: EvalData) -> dict[str, Any]:
    """Per-category recall and "reason names the right category"; the category x predicted table."""
    per: dict[str, Any] = {}
    lcat = np.asarray(data.label_category, dtype=object)
    pcat = np.asarray(data.pred_category, dtype=object)
    for cat in _category_order(set(data.label_category) - {GOOD}):
        rows = lcat == cat
        detected = rows & data.y_pred
        n_det = int(detected.sum())
        named = int((detected & (pcat == cat)).sum())
        judged = cat in CATEGORIES  # `other` / unknown label categories cannot be matched
        per[cat] = {
            "n": int(rows.sum()),
            "detected": n_det,
            "recall": _ratio(n_det, int(rows.sum())),
            "named": named if judged else None,
            "named_rate": _ratio(named, n_det) if judged else None,
        }
    tp = data.y_true & data.y_pred & np.isin(lcat, CATEGORIES)
    n_match = int((tp & (lcat == pcat)).sum())
    row_names = _category_order(set(data.label_category))
    col_names = _category_order(set(data.pred_category) | set(CANONICAL))
    matrix = [[int(np.sum((lcat == r) & (pcat == c))) for c in col_names] for r in row_names]
    return {
        "per_category": per,
        "category_accuracy": _ratio(n_match, int(tp.sum())),
        "category_accuracy_n": int(tp.sum()),
        "category_confusion": {"rows": row_names, "columns": col_names, "matrix": matrix},
    }


def compute_metrics(
    data: EvalData,
    threshold: float | None = None,
    n_boot: int = N_BOOTSTRAP,
    target_recall: float | None = None,
    target_precision: float | None = None,
) -> dict[str, Any]:
    """Every figure of the evaluation; with `n_boot` > 0 each headline figure also has its 95%
    interval (`<metric>_ci95`, per category `recall_ci95`); with a target, the operating point
    that reaches it (`operating_point`)."""
    notes = list(data.notes)
    out: dict[str, Any] = {
        "counts": data.counts,
        "threshold": threshold,
        "decision": "verdict" if threshold is None else f"p_error >= {threshold}",
    }
    out.update(binary_metrics(data.y_true, data.y_pred))
    has_p = ~np.isnan(data.p_error)
    y, p = data.y_true[has_p], data.p_error[has_p]
    out["n_with_p_error"] = int(has_p.sum())
    if has_p.sum() < len(has_p):
        notes.append(f"{len(has_p) - int(has_p.sum())} row(s) without p_error left out of AUROC")
    out["auroc"] = auroc(y, p)
    out["auprc"] = average_precision(y, p)
    out["prevalence"] = float(y.mean()) if y.size else None
    out["best_f1"] = best_f1(y, p)
    if y.size == 0:
        notes.append("no evaluated rows: every metric is null")
    elif out["auroc"] is None:
        only = "error" if y.all() else "good"
        notes.append(f"all evaluated notes are labelled {only}: AUROC is undefined (null)")
        if not y.any():
            notes.append("no error labels: AUPRC, recall, F1 and best-F1 threshold are null")
    out.update(category_metrics(data))
    out["calibration"] = calibration(y, p)
    if n_boot > 0 and len(data.y_true):
        ci = confidence_intervals(data, n_boot)
        for k, v in ci["metrics"].items():
            out[f"{k}_ci95"] = v
        for cat, v in out["per_category"].items():
            v["recall_ci95"] = ci["per_category_recall"].get(cat)
        out["intervals"] = {"method": ci["method"], "level": ci["level"]}
    if target_recall is not None or target_precision is not None:
        out["operating_point"] = _operating_point_metrics(
            data, target_recall, target_precision, n_boot
        )
        if out["operating_point"].get("threshold") is None:
            notes.append(f"no threshold reaches {out['operating_point']['target']}")
    out["ids"] = data.listed_ids
    out["notes"] = notes
    return out


def _operating_point_metrics(
    data: EvalData, recall: float | None, precision: float | None, n_boot: int
) -> dict[str, Any]:
    """The threshold that reaches the target and the binary figures (with intervals) there."""
    target = {"recall": recall} if recall is not None else {"precision": precision}
    point = operating_point(data.y_true, data.p_error, recall=recall, precision=precision)
    out: dict[str, Any] = {"target": target, "threshold": None}
    if point is None:
        return out
    t = point["threshold"]
    p = np.asarray(data.p_error, float)
    flagged = ~np.isnan(p) & (p >= t)
    at = EvalData(
        ids=data.ids, y_true=data.y_true, y_pred=flagged, p_error=data.p_error,
        label_category=data.label_category, pred_category=data.pred_category,
    )  # fmt: skip
    b = binary_metrics(data.y_true, flagged)
    out.update(threshold=t, flagged=int(flagged.sum()))
    for k in ("balanced_accuracy", "precision", "recall", "f1", "specificity", "accuracy"):
        out[k] = b[k]
    out["confusion"] = b["confusion"]
    if n_boot > 0:
        ci = confidence_intervals(at, n_boot)["metrics"]
        for k in ("balanced_accuracy", "precision", "recall", "f1", "specificity"):
            out[f"{k}_ci95"] = ci[k]
    out["use"] = f"ray_jobs.score --threshold {t:.6g}"
    return out


def load_and_compute(
    labels_path: str | Path,
    scores_dir: str | Path,
    threshold: float | None = None,
    id_column: str = "id",
) -> tuple[dict[str, Any], EvalData]:
    """Read labels and scores, join, compute. Returns (metrics, the evaluated rows)."""
    return compute_from_labels(
        read_records(labels_path), labels_path, scores_dir, threshold, id_column
    )


def compute_from_labels(
    labels: ReadResult,
    labels_path: str | Path,
    scores_dir: str | Path,
    threshold: float | None = None,
    id_column: str = "id",
    **options: Any,
) -> tuple[dict[str, Any], EvalData]:
    """`load_and_compute` on labels already read (`labels_path` only names them in messages)."""
    if not labels.records:
        first = "".join(f"\n  {p}" for p in labels.problems[:5])
        raise EvalError(f"no valid label records in {labels_path}{first}")
    data = join(labels.records, read_scores(scores_dir), threshold, id_column)
    data.counts["label_invalid_rows"] = len(labels.problems)
    if labels.problems:
        where = ", ".join(f"{p.path}:{p.line}" for p in labels.problems[:5])
        data.notes.append(f"{len(labels.problems)} invalid label row(s) skipped ({where} ...)")
    metrics = compute_metrics(data, threshold, **options)
    metrics["provenance"] = provenance(read_manifest(scores_dir)) or None
    return metrics, data


def interval_text(d: dict[str, Any], key: str) -> str:
    """`[low, high]` of the 95% interval of `d[key]` (`d[key + "_ci95"]`), or empty."""
    ci = d.get(f"{key}_ci95")
    return f"[{ci[0]:.3f}, {ci[1]:.3f}]" if ci else ""


def figure_text(d: dict[str, Any], key: str) -> str:
    """`d[key]` to 3 decimals (n/a when undefined) and its 95% interval when there is one."""
    text = fmt(d.get(key))
    ci = interval_text(d, key)
    return f"{text} {ci}" if ci else text


def format_summary(m: dict[str, Any]) -> str:
    """A few lines for stdout: counts and headline metrics (numbers only, never note text)."""
    fi = figure_text

    c = m["counts"]
    lines = [
        f"labelled {c['labelled']}  evaluated {c['evaluated']} (good {c['label_good']}, "
        f"error {c['label_error']})  invalid_input {c['invalid_input']}  failed {c['failed']}  "
        f"missing {c['missing_from_scores']}  unlabelled scores {c['scores_without_labels']}",
        f"decision {m['decision']}: accuracy {fmt(m['accuracy'])}  balanced "
        f"{fi(m, 'balanced_accuracy')}  precision {fi(m, 'precision')}  recall {fi(m, 'recall')}"
        f"  F1 {fi(m, 'f1')}",
        f"AUROC {fi(m, 'auroc')}  AUPRC {fi(m, 'auprc')}  ECE {fmt(m['calibration']['ece'])}  "
        f"category accuracy {fi(m, 'category_accuracy')}",
    ]
    if m.get("intervals"):
        lines.append(f"[brackets: 95% intervals, {m['intervals']['method']}]")
    if m["best_f1"]:
        b = m["best_f1"]
        lines.append(f"best F1 {fmt(b['f1'])} at p_error >= {b['threshold']:.4g}")
    op = m.get("operating_point")
    if op and op.get("threshold") is not None:
        ((what, value),) = op["target"].items()
        lines.append(
            f"{what} >= {value:g}: p_error >= {op['threshold']:.4g} flags {op['flagged']} note(s);"
            f" precision {fi(op, 'precision')}  recall {fi(op, 'recall')}  balanced "
            f"{fi(op, 'balanced_accuracy')}  (score with --threshold {op['threshold']:.6g})"
        )
    base = m.get("baseline")
    if base:
        lines.append(
            f"vs baseline ({base['notes']} notes in both): AUROC {fmt(base['auroc'])} vs "
            f"{fmt(base['baseline_auroc'])}, difference {fi(base, 'auroc_diff')}; balanced accuracy "
            f"{fmt(base['balanced_accuracy'])} vs {fmt(base['baseline_balanced_accuracy'])}, "
            f"difference {fi(base, 'balanced_accuracy_diff')}"
        )
    for cat, v in m["per_category"].items():
        lines.append(
            f"  {cat:<15} n={v['n']:<5} recall {fi(v, 'recall')}  named {fmt(v['named_rate'])}"
        )
    lines += [f"note: {n}" for n in m["notes"]]
    return "\n".join(lines)
