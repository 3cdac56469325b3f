"""The HTML page: every metric, table and plot reference, HTML-escaped."""

from __future__ import annotations

import html
import math
from typing import Any

from discriminator import metrics as M
from discriminator import numbers
from discriminator.report.extras import (
    EXAMPLES_PER_GROUP,
    KINDS,
    Example,
    Extras,
    TrainingCurves,
)


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
        return [
            f"<h2>Operating point</h2><p>No threshold reaches {what} {value:g} on "
            f"{html.escape(op['chosen_on'])}.</p>"
        ]
    rows = [
        [k.replace("_", " "), op[k], M.count_text(op, k), M.interval_text(op, k)]
        for k in ("precision", "recall", "specificity", "balanced_accuracy", "f1")
    ]
    spread = M.interval_text(op, "threshold", ".4g")
    return [
        f"<h2>Operating point: {what} &ge; {value:g}</h2>",
        f"<p>p_error &ge; <b>{op['threshold']:.6g}</b> (chosen on "
        f"{html.escape(op['chosen_on'])}) flags {op['flagged']} evaluated note(s); score with "
        f"<code>{html.escape(op['use'])}</code>.</p>",
        f"<p>Threshold: <b>{html.escape(op['threshold_choice'])}</b>"
        + (f"; re-chosen thresholds span {spread}" if spread else "")
        + ". The figures below did not choose the threshold.</p>",
        *([f"<p class='muted'>{html.escape(op['note'])}.</p>"] if op.get("note") else []),
        _table(["metric", "value", "k/n", "95% interval"], rows),
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
        f"<p>Baseline: {what} ({base['notes']} notes scored by both, the same notes for both "
        f"figures; {html.escape(M.dropped_text(base))}; {html.escape(base['method'])}).</p>",
        _table(["metric", "these scores", "baseline", "difference", "95% interval"], rows),
    ]


def render_html(m: dict[str, Any], plots: dict[str, bytes], extras: Extras | None = None) -> str:
    ex = extras or Extras()
    c = m["counts"]
    b = m["best_f1"] or {}
    headline = [
        ["accuracy", m["accuracy"], "", ""],
        *[
            [name, m[k], M.count_text(m, k), M.interval_text(m, k)]
            for name, k in (
                ("balanced accuracy", "balanced_accuracy"),
                ("precision (error)", "precision"),
                ("recall (error)", "recall"),
                ("specificity", "specificity"),
                ("F1 (error)", "f1"),
                ("AUROC", "auroc"),
                ("AUPRC", "auprc"),
            )
        ],
        ["best F1 / at p_error >=", f"{fmt(b.get('f1'))} / {fmt(b.get('threshold'))}", "", ""],
        ["category accuracy (detected errors)", m["category_accuracy"],
         M.count_text(m, "category_accuracy"), M.interval_text(m, "category_accuracy")],
        ["ECE (10 bins)", m["calibration"]["ece"], "", ""],
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
        _table(["metric", "value", "k/n", "95% interval"], headline),
        *(
            [
                f"<p class='muted'>Intervals: {html.escape(m['intervals']['method'])}. Resampled "
                f"by <b>{html.escape(m['intervals']['bootstrap_unit'])}</b>.</p>"
            ]
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
            [
                "label category",
                "error notes",
                "detected",
                "recall",
                "k/n",
                "95% interval",
                "category named",
                "named rate",
            ],
            [
                [
                    k,
                    v["n"],
                    v["detected"],
                    v["recall"],
                    M.count_text(v, "recall"),
                    M.interval_text(v, "recall"),
                    v["named"],
                    v["named_rate"],
                ]
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
