"""The evaluation report: `metrics.json`, PNG plots and `report.html` in one owner-only folder.

`evaluate()` is the library entry point (used by `ray_jobs/evaluate.py` and the CLI): read labels
and scores, compute metrics (`metrics.py`), write everything. The page references the PNGs beside
it by relative name, so the folder can be copied or served as a whole. Plots use matplotlib's Agg
canvas directly (no pyplot global state, no display). Like the metrics, the report contains ids,
categories and numbers, never note text or generated reasons (both may carry PHI).
"""

from __future__ import annotations

import html
import io
import json
import os
from pathlib import Path
from typing import Any

import numpy as np

from discriminator import metrics as M
from discriminator.runtime import private_dir

PLOTS = (
    "confusion.png",
    "roc.png",
    "pr.png",
    "category_recall.png",
    "p_error_hist.png",
    "calibration.png",
)


# ---------------------------------------------------------------------------------------------
# Owner-only output (notes are PHI and these folders sit on shared clusters)


def write_private(path: Path, data: bytes) -> None:
    """Write a 0o600 file atomically (temp file beside it, then rename)."""
    tmp = path.with_name(f".{path.name}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        os.fchmod(fd, 0o600)
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    os.replace(tmp, path)


# ---------------------------------------------------------------------------------------------
# Plots


def _figure(width: float = 5.0, height: float = 4.0) -> Any:
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(width, height), dpi=100)
    FigureCanvasAgg(fig)
    return fig


def _png(fig: Any) -> bytes:
    buf = io.BytesIO()
    fig.tight_layout()
    fig.savefig(buf, format="png")
    return buf.getvalue()


def plot_confusion(m: dict[str, Any]) -> bytes:
    mat = np.asarray(m["confusion"]["matrix"])
    fig = _figure(4.2, 3.6)
    ax = fig.add_subplot()
    ax.imshow(mat, cmap="Blues")
    for (i, j), v in np.ndenumerate(mat):
        color = "white" if v > mat.max() / 2 else "black"
        ax.text(j, i, str(v), ha="center", va="center", color=color, fontsize=14)
    ax.set_xticks([0, 1], ["good", "error"])
    ax.set_yticks([0, 1], ["good", "error"])
    ax.set_xlabel("predicted")
    ax.set_ylabel("label")
    ax.set_title("Confusion matrix")
    return _png(fig)


def _operating_point(m: dict[str, Any]) -> tuple[float | None, float | None]:
    c = m["confusion"]
    fpr = M._ratio(c["fp"], c["fp"] + c["tn"])
    return fpr, m["recall"]


def plot_roc(y: np.ndarray, p: np.ndarray, m: dict[str, Any]) -> bytes:
    fpr, tpr, _ = M.roc_curve(y, p)
    fig = _figure()
    ax = fig.add_subplot()
    ax.plot(fpr, tpr, lw=2, label=f"AUROC {m['auroc']:.3f}")
    ax.plot([0, 1], [0, 1], ls="--", color="grey", lw=1, label="chance")
    x, yv = _operating_point(m)
    if x is not None and yv is not None:
        ax.plot([x], [yv], "o", color="C3", label=f"operating point ({m['decision']})")
    ax.set_xlabel("false positive rate")
    ax.set_ylabel("true positive rate (recall)")
    ax.set_xlim(-0.01, 1.01)
    ax.set_ylim(-0.01, 1.01)
    ax.set_title("ROC")
    ax.legend(loc="lower right", fontsize=8)
    return _png(fig)


def plot_pr(y: np.ndarray, p: np.ndarray, m: dict[str, Any]) -> bytes:
    precision, recall, _ = M.pr_curve(y, p)
    fig = _figure()
    ax = fig.add_subplot()
    ax.step(
        np.r_[0.0, recall],
        np.r_[precision[0], precision],
        where="pre",
        lw=2,
        label=f"AUPRC {m['auprc']:.3f}",
    )
    ax.axhline(m["prevalence"], ls="--", color="grey", lw=1, label="prevalence")
    if m["best_f1"]:
        b = m["best_f1"]
        ax.plot(
            [b["recall"]],
            [b["precision"]],
            "o",
            color="C3",
            label=f"best F1 {b['f1']:.3f} at p >= {b['threshold']:.3g}",
        )
    ax.set_xlabel("recall")
    ax.set_ylabel("precision")
    ax.set_xlim(-0.01, 1.01)
    ax.set_ylim(-0.01, 1.05)
    ax.set_title("Precision-recall (error = positive)")
    ax.legend(loc="lower left", fontsize=8)
    return _png(fig)


def plot_category_recall(m: dict[str, Any]) -> bytes:
    cats = list(m["per_category"])
    recall = [m["per_category"][c]["recall"] or 0.0 for c in cats]
    named = [m["per_category"][c]["named_rate"] for c in cats]
    fig = _figure(6.0, 0.6 * len(cats) + 1.5)
    ax = fig.add_subplot()
    pos = np.arange(len(cats))
    ax.barh(pos, recall, color="C0", label="recall (flagged as error)")
    ax.barh(
        pos,
        [(n or 0.0) * r for n, r in zip(named, recall)],
        height=0.35,
        color="C2",
        label="flagged and category named",
    )
    for i, c in enumerate(cats):
        ax.text(
            recall[i] + 0.02,
            i,
            f"{recall[i]:.2f} (n={m['per_category'][c]['n']})",
            va="center",
            fontsize=8,
        )
    ax.set_yticks(pos, cats)
    ax.invert_yaxis()
    ax.set_xlim(0, 1.3)
    ax.set_xticks(np.linspace(0, 1, 6))
    ax.set_xlabel("share of the category's error notes")
    ax.set_title("Per-category recall")
    ax.legend(loc="upper center", bbox_to_anchor=(0.5, -0.2), ncol=2, fontsize=7)
    return _png(fig)


def plot_hist(y: np.ndarray, p: np.ndarray) -> bytes:
    fig = _figure(5.5, 3.8)
    ax = fig.add_subplot()
    bins = np.linspace(0, 1, 21)
    for mask, name, color in ((~y, "labelled good", "C0"), (y, "labelled error", "C3")):
        if mask.any():
            ax.hist(p[mask], bins=bins, alpha=0.6, color=color, label=f"{name} (n={mask.sum()})")
    ax.set_xlabel("p_error")
    ax.set_ylabel("notes")
    ax.set_title("p_error by label")
    ax.legend(fontsize=8)
    return _png(fig)


def plot_calibration(m: dict[str, Any]) -> bytes:
    bins = [b for b in m["calibration"]["bins"] if b["count"]]
    fig = _figure()
    ax = fig.add_subplot()
    ax.plot([0, 1], [0, 1], ls="--", color="grey", lw=1, label="perfect calibration")
    x = [b["mean_p_error"] for b in bins]
    yv = [b["error_rate"] for b in bins]
    sizes = [20 + 200 * b["count"] / m["calibration"]["n"] for b in bins]
    ax.plot(x, yv, color="C0", lw=1)
    ax.scatter(x, yv, s=sizes, color="C0", zorder=3, label="bins (size = count)")
    ece = m["calibration"]["ece"]
    ax.set_title(f"Calibration (ECE {ece:.3f})")
    ax.set_xlabel("mean p_error in bin")
    ax.set_ylabel("observed error rate")
    ax.set_xlim(-0.01, 1.01)
    ax.set_ylim(-0.01, 1.01)
    ax.legend(loc="upper left", fontsize=8)
    return _png(fig)


def render_plots(m: dict[str, Any], data: M.EvalData) -> dict[str, bytes]:
    """name -> PNG bytes, only for plots that are defined on this data."""
    has_p = ~np.isnan(data.p_error)
    y, p = data.y_true[has_p], data.p_error[has_p]
    out: dict[str, bytes] = {}
    if len(data.y_true):
        out["confusion.png"] = plot_confusion(m)
    if m["auroc"] is not None:
        out["roc.png"] = plot_roc(y, p, m)
        out["pr.png"] = plot_pr(y, p, m)
    if m["per_category"]:
        out["category_recall.png"] = plot_category_recall(m)
    if y.size:
        out["p_error_hist.png"] = plot_hist(y, p)
        out["calibration.png"] = plot_calibration(m)
    return out


# ---------------------------------------------------------------------------------------------
# HTML


def fmt(x: Any) -> str:
    """How numbers appear in the page (tests look for these strings)."""
    if x is None:
        return "n/a"
    if isinstance(x, float):
        return f"{x:.3f}"
    return html.escape(str(x))


def _table(header: list[str], rows: list[list[Any]]) -> str:
    head = "".join(f"<th>{html.escape(str(h))}</th>" for h in header)
    body = "".join("<tr>" + "".join(f"<td>{fmt(v)}</td>" for v in r) + "</tr>" for r in rows)
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def _img(name: str, plots: dict[str, bytes], alt: str, missing: str) -> str:
    if name in plots:
        return f'<img src="{name}" alt="{html.escape(alt)}">'
    return f'<p class="muted">{html.escape(alt)}: {html.escape(missing)}</p>'


_CSS = """body{font-family:system-ui,sans-serif;margin:2em;max-width:1100px;color:#222}
table{border-collapse:collapse;margin:.5em 0 1.5em}td,th{border:1px solid #ccc;padding:3px 8px;
text-align:right}th{background:#f3f3f3}td:first-child,th:first-child{text-align:left}
img{max-width:100%;margin:.5em 1em .5em 0;vertical-align:top}.muted{color:#777}
.grid{display:flex;flex-wrap:wrap}h2{margin-top:1.5em;border-bottom:1px solid #ddd}"""


def render_html(m: dict[str, Any], plots: dict[str, bytes]) -> str:
    c = m["counts"]
    b = m["best_f1"] or {}
    headline = [
        ["accuracy", m["accuracy"]],
        ["balanced accuracy", m["balanced_accuracy"]],
        ["precision (error)", m["precision"]],
        ["recall (error)", m["recall"]],
        ["F1 (error)", m["f1"]],
        ["AUROC", m["auroc"]],
        ["AUPRC", m["auprc"]],
        ["best F1 / at p_error >=", f"{fmt(b.get('f1'))} / {fmt(b.get('threshold'))}"],
        ["category accuracy (detected errors)", m["category_accuracy"]],
        ["ECE (10 bins)", m["calibration"]["ece"]],
    ]
    conf = m["confusion"]
    cc = m["category_confusion"]
    per = m["per_category"]
    cal = m["calibration"]["bins"]
    parts = [
        "<!doctype html><html><head><meta charset='utf-8'>",
        "<title>Discriminator evaluation</title>",
        f"<style>{_CSS}</style></head><body>",
        "<h1>Discriminator evaluation</h1>",
        f"<p>Decision: <b>{html.escape(m['decision'])}</b>. Error is the positive class. "
        "Rows whose status is not <code>ok</code> are counted but not scored.</p>",
        "<h2>Headline metrics</h2>",
        _table(["metric", "value"], headline),
        "<h2>Counts</h2>",
        _table(["count", "rows"], [[k, v] for k, v in c.items()]),
    ]
    if m["notes"]:
        items = "".join(f"<li>{html.escape(n)}</li>" for n in m["notes"])
        parts.append(f"<h2>Notes</h2><ul>{items}</ul>")
    parts += [
        "<h2>Confusion matrix</h2><div class='grid'>",
        _table(
            ["label \\ predicted", "good", "error"],
            [["good", *conf["matrix"][0]], ["error", *conf["matrix"][1]]],
        ),
        _img("confusion.png", plots, "confusion matrix", "no evaluated rows"),
        "</div><h2>Ranking</h2><div class='grid'>",
        _img("roc.png", plots, "ROC curve", "undefined with a single class"),
        _img("pr.png", plots, "precision-recall curve", "undefined with a single class"),
        _img("p_error_hist.png", plots, "p_error histogram", "no p_error values"),
        "</div><h2>Per-category recall</h2>",
        _table(
            ["label category", "error notes", "detected", "recall", "category named", "named rate"],
            [
                [k, v["n"], v["detected"], v["recall"], v["named"], v["named_rate"]]
                for k, v in per.items()
            ],
        ),
        _img("category_recall.png", plots, "per-category recall", "no error labels"),
        "<p class='muted'>Named rate: share of detected errors whose reason names the label's "
        "category; null for labels without a known category.</p>",
        "<h2>Category confusion (label x predicted)</h2>",
        _table(
            ["label \\ predicted", *cc["columns"]],
            [[r, *row] for r, row in zip(cc["rows"], cc["matrix"])],
        ),
        f"<p class='muted'>{M.NO_REASON}: flagged by the threshold, but the scorer generated "
        "no reason for it.</p>",
        "<h2>Calibration</h2><div class='grid'>",
        _table(
            ["bin", "count", "mean p_error", "error rate"],
            [
                [f"{x['lo']:.1f}-{x['hi']:.1f}", x["count"], x["mean_p_error"], x["error_rate"]]
                for x in cal
            ],
        ),
        _img("calibration.png", plots, "calibration", "no p_error values"),
        "</div>",
    ]
    prov = m.get("provenance")
    parts.append("<h2>Provenance</h2>")
    if prov:
        parts.append(_table(["field (manifest.json)", "value"], [[k, v] for k, v in prov.items()]))
    else:
        parts.append("<p class='muted'>No manifest.json beside the scores.</p>")
    parts.append("</body></html>")
    return "\n".join(parts)


def write_report(m: dict[str, Any], data: M.EvalData, out_dir: str | Path) -> Path:
    """PNGs + report.html into `out_dir`; stale plots from an earlier run are removed."""
    out = Path(out_dir)
    private_dir(out)
    plots = render_plots(m, data)
    for name in PLOTS:
        if name in plots:
            write_private(out / name, plots[name])
        else:
            (out / name).unlink(missing_ok=True)
    page = out / "report.html"
    write_private(page, render_html(m, plots).encode("utf-8"))
    return page


def evaluate(
    labels_path: str | Path,
    scores_dir: str | Path,
    out_dir: str | Path,
    threshold: float | None = None,
    id_column: str = "id",
) -> dict[str, Any]:
    """Labels + scores -> `metrics.json`, plots and `report.html` in `out_dir`; returns metrics."""
    m, data = M.load_and_compute(labels_path, scores_dir, threshold, id_column)
    out = Path(out_dir)
    private_dir(out)
    write_private(out / "metrics.json", json.dumps(m, indent=2, allow_nan=False).encode("utf-8"))
    write_report(m, data, out)
    return m
