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
    MAX_UNDEFINED_SHARE,
    N_BOOTSTRAP,
    bootstrap_indices,
    bootstrap_unit,
    confidence_intervals,
    exact_interval,
    out_of_bag_operating_point,
    paired_difference,
    proportion,
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
    "MAX_UNDEFINED_SHARE",
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
    "bootstrap_unit",
    "calibration",
    "category_metrics",
    "category_order",
    "compute_from_labels",
    "compute_metrics",
    "confidence_intervals",
    "count_text",
    "dropped_text",
    "exact_interval",
    "figure_text",
    "format_summary",
    "interval_text",
    "join",
    "label_category",
    "label_key",
    "load_and_compute",
    "operating_point",
    "out_of_bag_operating_point",
    "paired_difference",
    "pr_curve",
    "proportion",
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
    calibrate_on: EvalData | None = None,
) -> dict[str, Any]:
    """Every figure of the evaluation. Each headline figure `<metric>` has its interval
    (`<metric>_interval`: value, ci95, method, and `k`/`n` for a proportion or the resamples
    that were undefined for a bootstrap figure; `<metric>_ci95` repeats the interval or null),
    per category under `recall_interval`. Proportions' exact intervals come without resamples;
    bootstrap ones need `n_boot` > 0. With a target, the operating point that reaches it
    (`operating_point`): chosen on `calibrate_on` when given, else re-chosen in every resample."""
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
        out["balanced_accuracy"] = out["auprc"] = None  # the same rule as in every resample
        notes.append(
            f"all evaluated notes are labelled {only}: AUROC, AUPRC and balanced accuracy are "
            "undefined (null)"
        )
        if not y.any():
            notes.append("no error labels: recall, F1 and best-F1 threshold are null")
    out.update(category_metrics(data))
    out["calibration"] = calibration(y, p)
    if len(data.y_true):
        ci = confidence_intervals(data, n_boot)
        for k, v in ci["figures"].items():
            if v.get("method") == "percentile bootstrap" and n_boot <= 0:
                continue  # no resamples asked for: no bootstrap figure
            out[f"{k}_interval"] = v
            out[f"{k}_ci95"] = v["ci95"]
        for cat, v in out["per_category"].items():
            iv = ci["per_category_recall"].get(cat)
            v["recall_interval"] = iv
            v["recall_ci95"] = iv["ci95"] if iv else None
        out["intervals"] = {
            k: v for k, v in ci.items() if k not in ("figures", "per_category_recall")
        }
        if n_boot <= 0:
            out["intervals"]["method"] = "exact (Clopper-Pearson) for proportions; no bootstrap"
    if target_recall is not None or target_precision is not None:
        out["operating_point"] = _operating_point_metrics(
            data, target_recall, target_precision, n_boot, calibrate_on
        )
        op = out["operating_point"]
        if op.get("threshold") is None:
            notes.append(f"no threshold reaches {op['target']} on {op['chosen_on']}")
    out["ids"] = data.listed_ids
    out["notes"] = notes
    return out


def _operating_point_metrics(
    data: EvalData,
    recall: float | None,
    precision: float | None,
    n_boot: int,
    calibration: EvalData | None,
) -> dict[str, Any]:
    """The threshold that reaches the target, and figures there that did not choose it: on
    `data` at the threshold chosen on `calibration`, or (without one) out of bag: in every
    resample the threshold is re-chosen and the figures are taken on the notes it left out."""
    target = {"recall": recall} if recall is not None else {"precision": precision}
    chooser = data if calibration is None else calibration
    point = operating_point(chooser.y_true, chooser.p_error, recall=recall, precision=precision)
    out: dict[str, Any] = {"target": target, "threshold": None}
    if calibration is not None:
        overlap = len(set(calibration.ids) & set(data.ids))
        out.update(
            threshold_choice="calibration set",
            chosen_on=f"{len(calibration.ids)} calibration notes ({overlap} also evaluated)",
            calibration_notes=len(calibration.ids),
            overlap=overlap,
        )
    else:
        out.update(
            threshold_choice="re-chosen per resample, reported out of bag",
            chosen_on="these notes",
        )
    if point is None:
        return out
    t = point["threshold"]
    p = np.asarray(data.p_error, float)
    flagged = ~np.isnan(p) & (p >= t)
    out.update(threshold=t, flagged=int(flagged.sum()))
    out["use"] = f"ray_jobs.score --threshold {t:.6g}"
    if calibration is not None:
        at = EvalData(
            ids=data.ids, y_true=data.y_true, y_pred=flagged, p_error=data.p_error,
            label_category=data.label_category, pred_category=data.pred_category,
            groups=data.groups, group_column=data.group_column,
        )  # fmt: skip
        ci = confidence_intervals(at, n_boot)["figures"]
        b = binary_metrics(data.y_true, flagged)
        out["confusion"] = b["confusion"]
        out["accuracy"] = b["accuracy"]
        for k in ("balanced_accuracy", "precision", "recall", "f1", "specificity"):
            if ci[k]["method"] == "percentile bootstrap" and n_boot <= 0:
                out[k], out[f"{k}_ci95"] = ci[k]["value"], None
                continue
            out[k], out[f"{k}_interval"], out[f"{k}_ci95"] = ci[k]["value"], ci[k], ci[k]["ci95"]
        if out["overlap"]:
            out["note"] = (
                f"{out['overlap']} evaluated note(s) were also in the calibration set: "
                "their figures are partly in-sample"
            )
        return out
    oob = out_of_bag_operating_point(data, recall, precision, n_boot)
    out["threshold_interval"] = oob.pop("threshold")
    out["threshold_ci95"] = out["threshold_interval"]["ci95"]
    for k, v in oob.items():
        out[k], out[f"{k}_interval"], out[f"{k}_ci95"] = v["value"], v, v["ci95"]
    out["note"] = (
        f"threshold chosen on these notes; the figures are the median over {n_boot} resamples "
        "of the notes each resample left out, the threshold re-chosen in each: in-sample figures "
        f"at p_error >= {t:.4g} would meet the target by construction"
    )
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
    group_column: str | None = None,
    calibrate_on: str | Path | None = None,
    calibrate_labels: ReadResult | None = None,
    **options: Any,
) -> tuple[dict[str, Any], EvalData]:
    """`load_and_compute` on labels already read (`labels_path` only names them in messages).
    `group_column`: what the bootstrap resamples (`join`). `calibrate_on`: scores whose notes
    (labelled by `calibrate_labels`, else by `labels`) choose the operating point's threshold."""
    if empty := [p for p in labels.problems if p.message == "no records"]:
        raise EvalError(str(empty[0]))
    if not labels.records:
        first = "".join(f"\n  {p}" for p in labels.problems[:5])
        raise EvalError(f"no valid label records in {labels_path}{first}")
    wanted = () if group_column in (None, "note") else (group_column,)
    data = join(labels.records, read_scores(scores_dir, wanted), threshold, id_column, group_column)
    if calibrate_on is not None:
        if options.get("target_recall") is None and options.get("target_precision") is None:
            raise EvalError(
                "a calibration set chooses the threshold for a target recall or "
                "precision: give --target-recall or --target-precision with it"
            )
        cal_labels = (calibrate_labels or labels).records
        options["calibrate_on"] = join(
            cal_labels, read_scores(calibrate_on), None, id_column, "note"
        )
        if not options["calibrate_on"].ids:
            raise EvalError(f"no labelled notes with scores in the calibration set {calibrate_on}")
    data.counts["label_invalid_rows"] = len(labels.problems)
    if labels.problems:
        where = ", ".join(f"{p.path}:{p.line}" for p in labels.problems[:5])
        data.notes.append(f"{len(labels.problems)} invalid label row(s) skipped ({where} ...)")
    metrics = compute_metrics(data, threshold, **options)
    metrics["provenance"] = provenance(read_manifest(scores_dir)) or None
    return metrics, data


def interval_text(d: dict[str, Any], key: str, spec: str = ".3f") -> str:
    """`[low, high]` of the 95% interval of `d[key]` (`d[key + "_ci95"]`), `no interval (why)`
    when it was withheld, or empty."""
    ci = d.get(f"{key}_ci95")
    if ci:
        return f"[{ci[0]:{spec}}, {ci[1]:{spec}}]"
    why = (d.get(f"{key}_interval") or {}).get("withheld")
    return f"no interval ({why})" if why and d.get(key) is not None else ""


def count_text(d: dict[str, Any], key: str) -> str:
    """`k/n` behind the proportion `d[key]` (from `d[key + "_interval"]`), or empty."""
    iv = d.get(f"{key}_interval") or {}
    return f"{iv['k']}/{iv['n']}" if "k" in iv and "n" in iv else ""


def figure_text(d: dict[str, Any], key: str, spec: str = ".3f", none: str = "n/a") -> str:
    """`d[key]` as `spec` (`none` when undefined), its `k/n` for a proportion and its 95%
    interval (or why there is none)."""
    text = fmt(d.get(key), spec, none)
    if (kn := count_text(d, key)) and d.get(key) is not None:
        text = f"{text} ({kn})"
    ci = interval_text(d, key, spec)
    return f"{text} {ci}" if ci and d.get(key) is not None else text


def dropped_text(base: dict[str, Any]) -> str:
    """Which notes a paired comparison left out, and why (`paired_difference`'s `dropped`)."""
    d = base.get("dropped") or {}
    parts = [
        f"{d[k]} {what}"
        for k, what in (
            ("only_in_scores", "only in these scores"),
            ("only_in_baseline", "only in the baseline"),
            ("without_p_error", "without p_error in one of them"),
        )
        if d.get(k)
    ]
    return "left out: " + ", ".join(parts) if parts else "none left out"


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
        lines.append(
            f"[brackets: 95% intervals, {m['intervals']['method']}; resampled by "
            f"{m['intervals']['bootstrap_unit']}]"
        )
    if m["best_f1"]:
        b = m["best_f1"]
        lines.append(f"best F1 {fmt(b['f1'])} at p_error >= {b['threshold']:.4g}")
    op = m.get("operating_point")
    if op and op.get("threshold") is not None:
        ((what, value),) = op["target"].items()
        lines.append(
            f"{what} >= {value:g}: p_error >= {op['threshold']:.4g} flags {op['flagged']} note(s);"
            f" precision {fi(op, 'precision')}  recall {fi(op, 'recall')}  balanced "
            f"{fi(op, 'balanced_accuracy')}  (score with --threshold {op['threshold']:.6g}; "
            f"threshold {op['threshold_choice']}, chosen on {op['chosen_on']})"
        )
    base = m.get("baseline")
    if base:
        lines.append(
            f"vs baseline ({base['notes']} notes in both; {dropped_text(base)}): AUROC {fmt(base['auroc'])} vs "
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
