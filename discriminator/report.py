"""The evaluation report: `metrics.json`, PNG plots and `report.html` in one owner-only folder.

`evaluate()` is the library entry point (used by `ray_jobs/evaluate.py` and the CLI): read labels
and scores, compute metrics (`metrics.py`), write everything. The page references the PNGs beside
it by relative name, so the folder can be copied or served as a whole. Plots use matplotlib's Agg
canvas directly (no pyplot global state, no display).

What the page holds, and when:

- the scores' provenance (base model, adapter, prompt version from the scores' `_manifest.json`)
  at the top, when the manifest is there; the whole flattened manifest at the bottom;
- the metrics and plots: ids, categories and numbers only;
- training curves (train loss, eval loss, eval AUROC by step) from the adapter's `metrics.json`
  (`log_history`, written by `training.export_adapter`): the file given (`train_metrics`), else
  `<provenance.adapter>/metrics.json` when the manifest names an adapter folder that has one. A
  missing or unreadable file is said in the section; the rest of the report is still written;
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

import html
import io
import json
import math
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from discriminator import metrics as M
from discriminator import numbers
from discriminator.data import Record, read_records
from discriminator.files import write_atomic
from discriminator.runtime import private_dir

PLOTS = (
    "confusion.png",
    "roc.png",
    "pr.png",
    "category_recall.png",
    "p_error_hist.png",
    "calibration.png",
    "training_curves.png",
)
EXAMPLES_PER_GROUP = 5
TRAIN_METRICS = "metrics.json"  # in the adapter folder, written by training.export_adapter


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


# ---------------------------------------------------------------------------------------------
# Training curves (the adapter's metrics.json)


@dataclass
class TrainingCurves:
    """Points by step from a Trainer `log_history`; `message` says why there are none."""

    source: str | None = None  # the metrics.json read, or None when none was found
    how: str = ""  # "given" | "found beside the adapter named in _manifest.json"
    train_loss: list[tuple[float, float]] = field(default_factory=list)
    eval_loss: list[tuple[float, float]] = field(default_factory=list)
    eval_auroc: list[tuple[float, float]] = field(default_factory=list)
    message: str | None = None

    @property
    def has_points(self) -> bool:
        return bool(self.train_loss or self.eval_loss or self.eval_auroc)


def _number(x: Any) -> float | None:
    if isinstance(x, bool) or not isinstance(x, (int, float)):
        return None
    return float(x) if math.isfinite(x) else None


def curves_from_history(history: list[Any]) -> dict[str, list[tuple[float, float]]]:
    """(step, value) for `loss`, `eval_loss`, `eval_auroc`; entries without a numeric step or
    with non-numeric values are skipped."""
    out: dict[str, list[tuple[float, float]]] = {"loss": [], "eval_loss": [], "eval_auroc": []}
    for entry in history:
        if not isinstance(entry, dict):
            continue
        step = _number(entry.get("step"))
        if step is None:
            continue
        for key, points in out.items():
            v = _number(entry.get(key))
            if v is not None:
                points.append((step, v))
    return out


def find_train_metrics(given: str | Path | None, scores_dir: str | Path) -> tuple[Path | None, str]:
    """The adapter's metrics.json: the one given, else `<provenance.adapter>/metrics.json`."""
    if given:
        return Path(given), "given"
    manifest = M.read_manifest(scores_dir) or {}
    prov = manifest.get("provenance")
    adapter = prov.get("adapter") if isinstance(prov, dict) else None
    if isinstance(adapter, str) and adapter:
        path = Path(adapter) / TRAIN_METRICS
        if path.is_file():
            return path, "found beside the adapter named in _manifest.json"
        return None, f"the adapter named in _manifest.json has no {TRAIN_METRICS}"
    return None, "no adapter named in the scores' _manifest.json"


def load_training_curves(given: str | Path | None, scores_dir: str | Path) -> TrainingCurves:
    path, how = find_train_metrics(given, scores_dir)
    if path is None:
        return TrainingCurves(how=how, message=f"No training metrics: {how}.")
    cur = TrainingCurves(source=str(path), how=how)
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        cur.message = "Training metrics file not found."
        return cur
    except (OSError, UnicodeDecodeError) as e:
        cur.message = f"Training metrics file unreadable ({type(e).__name__})."
        return cur
    except ValueError:
        cur.message = "Training metrics file is not valid JSON."
        return cur
    history = data.get("log_history") if isinstance(data, dict) else None
    if not isinstance(history, list):
        cur.message = "Training metrics file has no log_history list."
        return cur
    points = curves_from_history(history)
    cur.train_loss, cur.eval_loss, cur.eval_auroc = (
        points["loss"],
        points["eval_loss"],
        points["eval_auroc"],
    )
    if not cur.has_points:
        cur.message = "Training metrics log_history has no loss, eval_loss or eval_auroc by step."
    return cur


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


# ---------------------------------------------------------------------------------------------
# Examples per category


_SYNTH_ID = re.compile(r"synth-(\d+)-(\d+)")


def is_synthetic(records: list[Record]) -> bool:
    """Every record is one `discriminator.synth` wrote: it has `kind` and a `meta` object, and
    its id is `synth-<meta.seed>-<meta.index>` (the generator's own id). Ids alone do not count:
    a real data set may reuse them, and converted files keep ids but drop the metadata."""
    if not records:
        return False
    for rec in records:
        meta = rec.meta.get("meta")
        match = _SYNTH_ID.fullmatch(rec.id)
        if not (isinstance(meta, dict) and "kind" in rec.meta and match):
            return False
        if (str(meta.get("seed")), str(meta.get("index"))) != match.groups():
            return False
    return True


KINDS = (
    ("detected", "correct detections (label error, flagged)"),
    ("missed", "misses (label error, not flagged)"),
    ("false_alarm", "false alarms (label good, flagged; grouped by the reason's category)"),
)


@dataclass
class Example:
    category: str  # the label category; the predicted one for false alarms
    kind: str  # detected | missed | false_alarm
    note_id: str
    p_error: float
    pred_category: str
    reason: str | None = None
    note: str | None = None


def select_examples(
    data: M.EvalData, per_group: int = EXAMPLES_PER_GROUP
) -> tuple[list[Example], dict[tuple[str, str], int]]:
    """Up to `per_group` rows per (category, kind), most confident first: highest p_error for
    detections and false alarms, lowest for misses (rows without p_error last, then by id).
    Returns (examples in category order then KINDS order, total rows per group)."""
    groups: dict[tuple[str, str], list[int]] = {}
    for i in range(len(data.ids)):
        if data.y_true[i]:
            key = (data.label_category[i], "detected" if data.y_pred[i] else "missed")
        elif data.y_pred[i]:
            key = (data.pred_category[i], "false_alarm")
        else:
            continue
        groups.setdefault(key, []).append(i)
    cats = M.category_order({c for c, _ in groups})
    order = [k for k, _ in KINDS]
    examples: list[Example] = []
    totals: dict[tuple[str, str], int] = {}
    for cat in cats:
        for kind in order:
            rows = groups.get((cat, kind))
            if not rows:
                continue
            sign = 1.0 if kind == "missed" else -1.0

            def rank(i: int, sign: float = sign) -> tuple[bool, float, str]:
                p = float(data.p_error[i])
                return (math.isnan(p), sign * p if not math.isnan(p) else 0.0, data.ids[i])

            totals[(cat, kind)] = len(rows)
            for i in sorted(rows, key=rank)[:per_group]:
                examples.append(
                    Example(cat, kind, data.ids[i], float(data.p_error[i]), data.pred_category[i])
                )
    return examples, totals


def read_reasons(scores_dir: str | Path, ids: set[str]) -> dict[str, str | None]:
    """The generated `reason` of the first score row of each id in `ids` (and nothing else)."""
    import pyarrow.parquet as pq

    out: dict[str, str | None] = {}
    for f in M.score_files(scores_dir):
        names = set(pq.ParquetFile(f).schema_arrow.names)
        if "note_id" not in names:
            continue
        table = pq.read_table(f, columns=[c for c in ("note_id", "reason") if c in names])
        nids = table.column("note_id").to_pylist()
        reasons = table.column("reason").to_pylist() if "reason" in names else [None] * len(nids)
        for nid, reason in zip(nids, reasons):
            nid = str(nid)
            if nid in ids and nid not in out:
                out[nid] = None if reason is None else str(reason)
    return out


# ---------------------------------------------------------------------------------------------
# HTML


def fmt(x: Any) -> str:
    """How a value appears in the page (tests look for these strings): `numbers.fmt`, escaped."""
    return html.escape(numbers.fmt(x))


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
.grid{display:flex;flex-wrap:wrap}h2{margin-top:1.5em;border-bottom:1px solid #ddd}
td.text{text-align:left;max-width:40em}pre{white-space:pre-wrap;font-size:85%}"""


@dataclass
class Extras:
    """What the page shows beyond the metrics: training curves and examples."""

    curves: TrainingCurves | None = None
    examples: list[Example] = field(default_factory=list)
    totals: dict[tuple[str, str], int] = field(default_factory=dict)
    text_shown: str | None = None  # why note text is shown; None: it is not
    provenance: list[list[str]] = field(default_factory=list)  # provenance_summary


_TOP_PROVENANCE = (
    ("base model", "base_model"),
    ("adapter", "adapter"),
    ("adapter sha256", "adapter_sha256"),
    ("prompt version", "prompt_version"),
)


def provenance_summary(manifest: dict[str, Any] | None) -> list[list[str]]:
    """[label, value] for base model, adapter (+ sha256) and prompt version: from the manifest's
    `provenance` object as the scorer writes it, else its top level."""
    if not isinstance(manifest, dict):
        return []
    prov = manifest.get("provenance")
    rows = []
    for label, key in _TOP_PROVENANCE:
        for where in (prov, manifest):
            if isinstance(where, dict) and where.get(key) not in (None, ""):
                value = where[key]
                rows.append([label, value if isinstance(value, str) else json.dumps(value)])
                break
    return rows


def _training_html(cur: TrainingCurves | None, plots: dict[str, bytes]) -> list[str]:
    parts = ["<h2 id='training'>Training curves</h2>"]
    if cur is None:
        return [*parts, "<p class='muted'>No training metrics.</p>"]
    if cur.source:
        parts.append(
            f"<p class='muted'>From <code>{html.escape(cur.source)}</code> "
            f"({html.escape(cur.how)}).</p>"
        )
    if cur.message:
        parts.append(f"<p class='muted'>{html.escape(cur.message)}</p>")
    if cur.has_points:

        def last(pts: list[tuple[float, float]]) -> float | None:
            return pts[-1][1] if pts else None

        steps = [s for pts in (cur.train_loss, cur.eval_loss, cur.eval_auroc) for s, _ in pts]
        parts.append(
            _table(
                ["training", "value"],
                [
                    ["last logged step", int(max(steps))],
                    ["final train loss", last(cur.train_loss)],
                    ["final eval loss", last(cur.eval_loss)],
                    ["best eval loss", min((v for _, v in cur.eval_loss), default=None)],
                    ["final eval AUROC (first token)", last(cur.eval_auroc)],
                ],
            )
        )
        parts.append(_img("training_curves.png", plots, "training curves", "no points to plot"))
    return parts


def _examples_html(ex: Extras) -> list[str]:
    parts = [
        "<h2 id='examples'>Examples per category</h2>",
        f"<p class='muted'>Per label category, up to {EXAMPLES_PER_GROUP} of each: "
        + "; ".join(html.escape(d) for _, d in KINDS)
        + ". Most confident first (highest p_error; lowest for misses). The reason is the "
        "scorer's generated text.</p>",
    ]
    if ex.text_shown:
        parts.append(f"<p><b>Note text is shown</b>: {html.escape(ex.text_shown)}.</p>")
    else:
        parts.append(
            "<p class='muted'>Note text is not shown (the labels are not synthetic; "
            "<code>--show-text</code> shows it).</p>"
        )
    if not ex.examples:
        return [*parts, "<p class='muted'>No detections, misses or false alarms.</p>"]
    header = ["example", "note id", "p_error", "predicted category", "reason (generated)"]
    if ex.text_shown:
        header.append("note")
    by_cat: dict[str, list[Example]] = {}
    for e in ex.examples:
        by_cat.setdefault(e.category, []).append(e)
    label = dict(KINDS)
    for cat, rows in by_cat.items():
        shown = ", ".join(
            f"{k.replace('_', ' ')} {ex.totals[(cat, k)]}"
            for k, _ in KINDS
            if (cat, k) in ex.totals
        )
        parts.append(
            f"<h3>{html.escape(cat)} <span class='muted'>({html.escape(shown)})</span></h3>"
        )
        head = "".join(f"<th>{html.escape(h)}</th>" for h in header)
        body = []
        for e in rows:
            kind = html.escape(e.kind.replace("_", " "))
            reason = html.escape(e.reason) if e.reason else "<span class='muted'>none</span>"
            cells = [
                f"<td title='{html.escape(label[e.kind])}'>{kind}</td>",
                f"<td>{html.escape(e.note_id)}</td>",
                f"<td>{fmt(None if math.isnan(e.p_error) else e.p_error)}</td>",
                f"<td>{html.escape(e.pred_category)}</td>",
                f"<td class='text'>{reason}</td>",
            ]
            if ex.text_shown:
                note = e.note or ""
                cells.append(
                    f"<td class='text'><details><summary>{len(note.split())} words</summary>"
                    f"<pre>{html.escape(note)}</pre></details></td>"
                )
            attrs = (
                f" data-category='{html.escape(cat, quote=True)}' data-kind='{e.kind}'"
                f" data-id='{html.escape(e.note_id, quote=True)}'"
            )
            body.append(f"<tr{attrs}>{''.join(cells)}</tr>")
        parts.append(
            f"<table class='examples'><thead><tr>{head}</tr></thead>"
            f"<tbody>{''.join(body)}</tbody></table>"
        )
    return parts


def _operating_point_html(op: dict[str, Any] | None) -> list[str]:
    if not op:
        return []
    ((what, value),) = op["target"].items()
    if op.get("threshold") is None:
        return [f"<h2>Operating point</h2><p>No threshold reaches {what} {value:g}.</p>"]
    rows = [
        [k.replace("_", " "), op[k], M.interval_text(op, k)]
        for k in ("precision", "recall", "specificity", "balanced_accuracy", "f1")
    ]
    return [
        f"<h2>Operating point: {what} &ge; {value:g}</h2>",
        f"<p>p_error &ge; <b>{op['threshold']:.6g}</b> flags {op['flagged']} note(s); score with "
        f"<code>{html.escape(op['use'])}</code>.</p>",
        _table(["metric", "value", "95% interval"], rows),
    ]


def _baseline_html(base: dict[str, Any] | None) -> list[str]:
    if not base:
        return []
    rows = [
        ["AUROC", base["auroc"], base["baseline_auroc"], base["auroc_diff"],
         M.interval_text(base, "auroc_diff")],
        ["balanced accuracy", base["balanced_accuracy"], base["baseline_balanced_accuracy"],
         base["balanced_accuracy_diff"], M.interval_text(base, "balanced_accuracy_diff")],
    ]  # fmt: skip
    prov = base.get("provenance") or {}
    names = [
        prov.get(k) for k in ("model.name_or_path", "adapter") if prov.get(k) not in (None, "null")
    ]
    what = html.escape(" + ".join(names) or base["scores"])
    return [
        "<h2>Against the baseline</h2>",
        f"<p>Baseline: {what} ({base['notes']} notes scored by both; {html.escape(base['method'])}"
        ").</p>",
        _table(["metric", "these scores", "baseline", "difference", "95% interval"], rows),
    ]


def render_html(m: dict[str, Any], plots: dict[str, bytes], extras: Extras | None = None) -> str:
    ex = extras or Extras()
    c = m["counts"]
    b = m["best_f1"] or {}
    headline = [
        ["accuracy", m["accuracy"], ""],
        ["balanced accuracy", m["balanced_accuracy"], M.interval_text(m, "balanced_accuracy")],
        ["precision (error)", m["precision"], M.interval_text(m, "precision")],
        ["recall (error)", m["recall"], M.interval_text(m, "recall")],
        ["specificity", m["specificity"], M.interval_text(m, "specificity")],
        ["F1 (error)", m["f1"], M.interval_text(m, "f1")],
        ["AUROC", m["auroc"], M.interval_text(m, "auroc")],
        ["AUPRC", m["auprc"], M.interval_text(m, "auprc")],
        ["best F1 / at p_error >=", f"{fmt(b.get('f1'))} / {fmt(b.get('threshold'))}", ""],
        ["category accuracy (detected errors)", m["category_accuracy"],
         M.interval_text(m, "category_accuracy")],
        ["ECE (10 bins)", m["calibration"]["ece"], ""],
    ]  # fmt: skip
    conf = m["confusion"]
    cc = m["category_confusion"]
    per = m["per_category"]
    cal = m["calibration"]["bins"]
    parts = [
        "<!doctype html><html><head><meta charset='utf-8'>",
        "<title>Discriminator evaluation</title>",
        f"<style>{_CSS}</style></head><body>",
        "<h1>Discriminator evaluation</h1>",
        *([_table(["scores from", "value"], ex.provenance)] if ex.provenance else []),
        f"<p>Decision: <b>{html.escape(m['decision'])}</b>. Error is the positive class. "
        "Rows whose status is not <code>ok</code> are counted but not scored.</p>",
        "<h2>Headline metrics</h2>",
        _table(["metric", "value", "95% interval"], headline),
        *(
            [f"<p class='muted'>Intervals: {html.escape(m['intervals']['method'])}.</p>"]
            if m.get("intervals")
            else []
        ),
        *_operating_point_html(m.get("operating_point")),
        *_baseline_html(m.get("baseline")),
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
        *_training_html(ex.curves, plots),
        *_examples_html(ex),
    ]
    prov = m.get("provenance")
    parts.append("<h2>Provenance</h2>")
    if prov:
        parts.append(_table(["field (manifest.json)", "value"], [[k, v] for k, v in prov.items()]))
    else:
        parts.append("<p class='muted'>No manifest.json beside the scores.</p>")
    parts.append("</body></html>")
    return "\n".join(parts)


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


def build_extras(
    data: M.EvalData,
    records: list[Record],
    scores_dir: str | Path,
    id_column: str = "id",
    train_metrics: str | Path | None = None,
    show_text: bool = False,
) -> Extras:
    """Training curves and examples (with reasons, and note text when allowed) for the page."""
    examples, totals = select_examples(data)
    reasons = read_reasons(scores_dir, {e.note_id for e in examples}) if examples else {}
    text_shown = None
    if show_text:
        text_shown = "asked for with --show-text"
    elif is_synthetic(records):
        text_shown = "the labels are synthetic (generated by discriminator synth)"
    notes: dict[str, str] = {}
    if text_shown:
        wanted = {e.note_id for e in examples}
        for rec in records:
            key = M.label_key(rec, id_column)
            if key in wanted and key not in notes:  # the first record of an id, as in the join
                notes[key] = rec.note
    for e in examples:
        e.reason = reasons.get(e.note_id)
        e.note = notes.get(e.note_id) if text_shown else None
    return Extras(
        curves=load_training_curves(train_metrics, scores_dir),
        examples=examples,
        totals=totals,
        text_shown=text_shown,
        provenance=provenance_summary(M.read_manifest(scores_dir)),
    )


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
) -> dict[str, Any]:
    """Labels + scores -> `metrics.json`, plots and `report.html` in `out_dir`; returns metrics.

    `train_metrics`: the adapter's metrics.json for the training curves (default: found through
    the scores' manifest). `show_text`: note text in the examples table even for real labels.
    `n_boot`: resamples behind the 95% intervals. `target_recall` / `target_precision`: the
    operating point that reaches it. `baseline`: another scorer output on the same notes."""
    labels = read_records(labels_path)
    m, data = M.compute_from_labels(
        labels, labels_path, scores_dir, threshold, id_column, n_boot=n_boot,
        target_recall=target_recall, target_precision=target_precision,
    )  # fmt: skip
    if baseline is not None:
        base = M.join(labels.records, M.read_scores(baseline), threshold, id_column)
        manifests = [M.read_manifest(d) for d in (scores_dir, baseline)]
        versions = {  # none recorded: an output from before scoring versions (v1)
            str((man.get("provenance") or {}).get("scoring_version") or "v1")
            for man in manifests
            if man
        }
        if len(versions) > 1:
            m["notes"].append(
                "the scores and the baseline read p_error with different scoring versions "
                f"({', '.join(sorted(versions))}): re-score both with this package to compare"
            )
        m["baseline"] = {
            "scores": str(baseline),
            "provenance": M.provenance(M.read_manifest(baseline)) or None,
            **M.paired_difference(data, base, n_boot),
        }
    out = Path(out_dir)
    private_dir(out)
    write_atomic(out / "metrics.json", json.dumps(m, indent=2, allow_nan=False), private=True)
    extras = build_extras(data, labels.records, scores_dir, id_column, train_metrics, show_text)
    write_report(m, data, out, extras)
    return m
