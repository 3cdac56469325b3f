"""Metrics of the discriminator: labelled records joined with the scorer's parquet output.

Pure numpy + pyarrow: no plotting (that is `discriminator.report`), no Ray. The join key is the
record id (the `id` column, else `derive_note_id(source, line)`, which is what the scorer writes
as `note_id` for rows without an id). Rows whose status is not `ok` are counted but left out of
the classification metrics. Ranking metrics (AUROC, AUPRC, best-F1 threshold) are tie-aware: notes
with equal `p_error` are ranked together, never in file order. Nothing here reads or returns
note text or generated reasons (PHI); only ids, labels, categories and numbers.

This module computes the whole evaluation (`compute_metrics`) and its console summary, and
re-exports the parts: `scores` (reading the scores, joining them to labels), `figures` (each
metric on arrays) and `intervals` (the bootstrap intervals and the paired difference).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from discriminator.data import ReadResult, read_records
from discriminator.metrics.figures import (
    N_CALIBRATION_BINS,
    auroc,
    average_precision,
    best_f1,
    binary_metrics,
    calibration,
    category_metrics,
    category_order,
    operating_point,
    pr_curve,
    ratio,
    roc_curve,
)
from discriminator.metrics.intervals import (
    BOOTSTRAP_SEED,
    CI_LEVEL,
    CI_METRICS,
    N_BOOTSTRAP,
    bootstrap_indices,
    confidence_intervals,
    paired_difference,
)
from discriminator.metrics.scores import (
    CANONICAL,
    MANIFEST,
    MAX_LISTED_IDS,
    NO_REASON,
    EvalData,
    EvalError,
    Scores,
    join,
    label_category,
    label_key,
    provenance,
    read_manifest,
    read_scores,
    score_files,
)
from discriminator.numbers import fmt

__all__ = [
    "BOOTSTRAP_SEED",
    "CANONICAL",
    "CI_LEVEL",
    "CI_METRICS",
    "MANIFEST",
    "MAX_LISTED_IDS",
    "NO_REASON",
    "N_BOOTSTRAP",
    "N_CALIBRATION_BINS",
    "EvalData",
    "EvalError",
    "Scores",
    "auroc",
    "average_precision",
    "best_f1",
    "binary_metrics",
    "bootstrap_indices",
    "calibration",
    "category_metrics",
    "category_order",
    "compute_from_labels",
    "compute_metrics",
    "confidence_intervals",
    "figure_text",
    "format_summary",
    "interval_text",
    "join",
    "label_category",
    "label_key",
    "load_and_compute",
    "operating_point",
    "paired_difference",
    "pr_curve",
    "provenance",
    "ratio",
    "read_manifest",
    "read_scores",
    "roc_curve",
    "score_files",
]


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
    if empty := [p for p in labels.problems if p.message == "no records"]:
        raise EvalError(str(empty[0]))
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


def interval_text(d: dict[str, Any], key: str, spec: str = ".3f") -> str:
    """`[low, high]` of the 95% interval of `d[key]` (`d[key + "_ci95"]`), or empty."""
    ci = d.get(f"{key}_ci95")
    return f"[{ci[0]:{spec}}, {ci[1]:{spec}}]" if ci else ""


def figure_text(d: dict[str, Any], key: str, spec: str = ".3f", none: str = "n/a") -> str:
    """`d[key]` as `spec` (`none` when undefined) and its 95% interval when there is one."""
    text = fmt(d.get(key), spec, none)
    ci = interval_text(d, key, spec)
    return f"{text} {ci}" if ci and d.get(key) is not None else text


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
            f"{fmt(base['baseline_auroc'])}, difference {fi(base, 'auroc_diff')}; balanced "
            f"accuracy {fmt(base['balanced_accuracy'])} vs "
            f"{fmt(base['baseline_balanced_accuracy'])}, "
            f"difference {fi(base, 'balanced_accuracy_diff')}"
        )
    for cat, v in m["per_category"].items():
        lines.append(
            f"  {cat:<15} n={v['n']:<5} recall {fi(v, 'recall')}  named {fmt(v['named_rate'])}"
        )
    lines += [f"note: {n}" for n in m["notes"]]
    return "\n".join(lines)
