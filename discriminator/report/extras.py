"""What the page shows beyond the metrics: training curves, examples per category, provenance."""

from __future__ import annotations

import json
import math
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from discriminator import metrics as M
from discriminator.data import Record

EXAMPLES_PER_GROUP = 5
TRAIN_METRICS = "metrics.json"  # in the adapter folder, written by training.export.export_adapter


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
# What the page gets


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
