"""The report's PNG plots, drawn on matplotlib's Agg canvas (no pyplot global state, no display)."""

from __future__ import annotations

import io
from typing import Any

import numpy as np

from discriminator import metrics as M
from discriminator.report.extras import TrainingCurves

PLOTS = (
    "confusion.png",
    "roc.png",
    "pr.png",
    "category_recall.png",
    "p_error_hist.png",
    "calibration.png",
    "training_curves.png",
)


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
    fpr = M.ratio(c["fp"], c["fp"] + c["tn"])
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


def plot_training(cur: TrainingCurves) -> bytes:
    """Losses by step (left) and eval AUROC by step (right, when logged)."""
    panels = 2 if cur.eval_auroc else 1
    fig = _figure(5.0 * panels + 0.5, 3.8)
    ax = fig.add_subplot(1, panels, 1)
    for pts, name, style in (
        (cur.train_loss, "train loss", "-"),
        (cur.eval_loss, "eval loss", "o-"),
    ):
        if pts:
            ax.plot(*zip(*pts), style, lw=1.5, ms=4, label=name)
    ax.set_xlabel("step")
    ax.set_ylabel("loss")
    ax.set_title("Loss by step")
    if cur.train_loss or cur.eval_loss:
        ax.legend(fontsize=8)
    if cur.eval_auroc:
        ax2 = fig.add_subplot(1, panels, 2)
        ax2.plot(*zip(*cur.eval_auroc), "o-", color="C2", lw=1.5, ms=4, label="eval AUROC")
        ax2.axhline(0.5, ls="--", color="grey", lw=1, label="chance")
        ax2.set_ylim(-0.01, 1.01)
        ax2.set_xlabel("step")
        ax2.set_ylabel("AUROC (first token)")
        ax2.set_title("Eval AUROC by step")
        ax2.legend(fontsize=8, loc="lower right")
    return _png(fig)
