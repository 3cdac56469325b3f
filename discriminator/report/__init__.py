"""The evaluation report: `metrics.json`, PNG plots and `report.html` in one owner-only folder.

`evaluate()` is the library entry point (used by `ray_jobs/evaluate.py` and the CLI): read labels
and scores, compute metrics (`discriminator.metrics`), write everything. The page references the
PNGs beside it by relative name, so the folder can be copied or served as a whole. Plots use
matplotlib's Agg canvas directly (no pyplot global state, no display).

This module writes the folder (`evaluate`, `write_report`) and re-exports the parts: `extras`
(training curves, examples per category, the provenance summary), `plots` (the PNGs) and `page`
(the HTML).

What the page holds, and when:

- the scores' provenance (base model, adapter, prompt version from the scores' `_manifest.json`)
  at the top, when the manifest is there; the whole flattened manifest at the bottom;
- the metrics and plots: ids, categories and numbers only;
- training curves (train loss, eval loss, eval AUROC by step) from the adapter's `metrics.json`
  (`log_history`, written by `training.export.export_adapter`): the file given
  (`train_metrics`), else `<provenance.adapter>/metrics.json` when the manifest names an adapter
  folder that has one. A missing or unreadable file is said in the section; the rest of the
  report is still written;
- examples per label category (detections, misses, false alarms; the most confident
  `EXAMPLES_PER_GROUP` of each) with note id, `p_error` and the **generated reason**, which is
  text about the note and may quote it: the folder is owner-only for that reason;
- **note text** only in that examples table, and only when asked (`show_text`) or when the
  labels are synthetic (`is_synthetic`: every record has the fields `discriminator.synth` writes,
  `kind` and `meta`, with an id `synth-<meta.seed>-<meta.index>`). Otherwise no note text.

`metrics.json` stays numbers, ids and categories: no reasons, no note text. Everything that goes
into the page is HTML-escaped.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from discriminator import metrics as M
from discriminator.data import read_records
from discriminator.files import write_atomic
from discriminator.report.extras import (
    EXAMPLES_PER_GROUP,
    KINDS,
    TRAIN_METRICS,
    Example,
    Extras,
    TrainingCurves,
    build_extras,
    curves_from_history,
    find_train_metrics,
    is_synthetic,
    load_training_curves,
    provenance_summary,
    read_reasons,
    select_examples,
)
from discriminator.report.page import fmt, render_html
from discriminator.report.plots import (
    PLOTS,
    plot_calibration,
    plot_category_recall,
    plot_confusion,
    plot_hist,
    plot_pr,
    plot_roc,
    plot_training,
    render_plots,
)
from discriminator.runtime import private_dir

__all__ = [
    "EXAMPLES_PER_GROUP",
    "KINDS",
    "PLOTS",
    "TRAIN_METRICS",
    "Example",
    "Extras",
    "TrainingCurves",
    "build_extras",
    "curves_from_history",
    "evaluate",
    "find_train_metrics",
    "fmt",
    "is_synthetic",
    "load_training_curves",
    "plot_calibration",
    "plot_category_recall",
    "plot_confusion",
    "plot_hist",
    "plot_pr",
    "plot_roc",
    "plot_training",
    "provenance_summary",
    "read_reasons",
    "render_html",
    "render_plots",
    "select_examples",
    "write_report",
]


def write_report(
    m: dict[str, Any], data: M.EvalData, out_dir: str | Path, extras: Extras | None = None
) -> Path:
    """PNGs + report.html into `out_dir`; stale plots from an earlier run are removed."""
    out = Path(out_dir)
    private_dir(out)
    plots = render_plots(m, data)
    if extras is not None and extras.curves is not None and extras.curves.has_points:
        plots["training_curves.png"] = plot_training(extras.curves)
    for name in PLOTS:
        if name in plots:
            write_atomic(out / name, plots[name], private=True)
        else:
            (out / name).unlink(missing_ok=True)
    page = out / "report.html"
    write_atomic(page, render_html(m, plots, extras), private=True)
    return page


def evaluate(
    labels_path: str | Path,
    scores_dir: str | Path,
    out_dir: str | Path,
    threshold: float | None = None,
    id_column: str = "id",
    train_metrics: str | Path | None = None,
    show_text: bool = False,
    n_boot: int = M.N_BOOTSTRAP,
    target_recall: float | None = None,
    target_precision: float | None = None,
    baseline: str | Path | None = None,
    group_column: str | None = None,
    calibrate_on: str | Path | None = None,
    calibrate_labels: str | Path | None = None,
    text_column: str = "note",
) -> dict[str, Any]:
    """Labels + scores -> `metrics.json`, plots and `report.html` in `out_dir`; returns metrics.

    `text_column` / `id_column`: the labels' note text and id columns (as scoring's `io.*`).

    `train_metrics`: the adapter's metrics.json for the training curves (default: found through
    the scores' manifest). `show_text`: note text in the examples table even for real labels.
    `n_boot`: resamples behind the 95% intervals. `target_recall` / `target_precision`: the
    operating point that reaches it. `baseline`: another scorer output on the same notes.
    `group_column`: what the bootstrap resamples (None: `patient_id`/`subject_id` when the data
    have one, else notes; "note": notes). `calibrate_on` (+ `calibrate_labels`, default the
    labels): scores on which the operating point's threshold is chosen."""
    labels = read_records(labels_path, text_column, id_column)
    cal_labels = (
        read_records(calibrate_labels, text_column, id_column) if calibrate_labels else None
    )
    m, data = M.compute_from_labels(
        labels, labels_path, scores_dir, threshold, id_column, group_column=group_column,
        calibrate_on=calibrate_on, calibrate_labels=cal_labels, n_boot=n_boot,
        target_recall=target_recall, target_precision=target_precision,
    )  # fmt: skip
    if baseline is not None:
        base = M.join(labels.records, M.read_scores(baseline), threshold, id_column, "note")
        base_manifest = M.read_manifest(baseline)
        versions = {  # none recorded: an output from before scoring versions (v1)
            str((man.get("provenance") or {}).get("scoring_version") or "v1")
            for man in (M.read_manifest(scores_dir), base_manifest)
            if man and not man.get("scorer")  # `discriminator baseline`: p_error read from no token
        }
        if len(versions) > 1:
            m["notes"].append(
                "the scores and the baseline read p_error with different scoring versions "
                f"({', '.join(sorted(versions))}): re-score both with this package to compare"
            )
        m["baseline"] = {
            "scores": str(baseline),
            "provenance": M.provenance(base_manifest) or None,
            **M.paired_difference(data, base, n_boot),
        }
    out = Path(out_dir)
    private_dir(out)
    write_atomic(out / "metrics.json", json.dumps(m, indent=2, allow_nan=False), private=True)
    extras = build_extras(data, labels.records, scores_dir, id_column, train_metrics, show_text)
    write_report(m, data, out, extras)
    return m
