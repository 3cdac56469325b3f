"""The scorer's output read (parquet parts, manifest, provenance) and joined to labels by id."""

from __future__ import annotations

import json
import math
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from discriminator.prompt import CATEGORIES, DECISION_THRESHOLD, GOOD, OTHER, category_of

GROUP_COLUMNS = ("patient_id", "subject_id")  # tried in order when no group column is named
NO_REASON = "no_reason"  # predicted error (threshold override) but the scorer wrote no reason
CANONICAL = (GOOD, *CATEGORIES, OTHER)
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
    groups: dict[str, list[Any]] = field(default_factory=dict)
    """Group columns the scorer kept (`GROUP_COLUMNS`, or the one asked for), by name."""


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


def read_scores(scores_dir: str | Path, group_columns: tuple[str, ...] = ()) -> Scores:
    """The scorer's output; `group_columns` (e.g. `subject_id` kept by `--keep-columns`) are
    read as well where a file has them."""
    import pyarrow.parquet as pq

    files = score_files(scores_dir)
    out = Scores([], [], [], [], [], len(files))
    wanted_groups = tuple(dict.fromkeys((*GROUP_COLUMNS, *group_columns)))
    for f in files:
        names = set(pq.ParquetFile(f).schema_arrow.names)
        for required in ("note_id", "status"):
            if required not in names:
                raise EvalError(f"{f}: missing column {required!r} (is this scorer output?)")
        # `reason` only when `category` is absent: it is generated text about the note (PHI).
        wanted = ["note_id", "status", "verdict", "p_error", "category"]
        if "category" not in names and "reason" in names:
            wanted.append("reason")
        wanted += [g for g in wanted_groups if g in names and g not in wanted]
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
        for g in wanted_groups:
            if g in table.column_names or g in out.groups:
                out.groups.setdefault(g, [None] * (len(out.note_id) - n)).extend(col(g))
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
    groups: list[str] | None = None  # each note's group (patient): None resamples notes
    group_column: str = "note"  # where `groups` came from


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
    group_column: str | None = None,
) -> EvalData:
    """Match labels to score rows by id; count what does not match or is not ok.

    group_column: what the bootstrap resamples (`resolve_groups`): None picks the first of
    `GROUP_COLUMNS` the labels' metadata or the scores carry, else notes; "note": notes.

    threshold None: the scorer's verdict decides (p_error >= DECISION_THRESHOLD where a verdict
    is missing);
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
    ids, y_true, y_pred, p, lcat, pcat, used = [], [], [], [], [], [], []
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
            pred = None if math.isnan(pe) else bool(pe >= DECISION_THRESHOLD)
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
        used.append((rec, i))

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
    column, groups, ungrouped = resolve_groups(used, scores, group_column)
    if ungrouped:
        notes.append(f"{ungrouped} note(s) without {column}: each resampled as its own group")
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
        groups=groups,
        group_column=column,
    )


def resolve_groups(
    used: list[tuple[Any, int]], scores: Scores, group_column: str | None
) -> tuple[str, list[str] | None, int]:
    """(column, each evaluated note's group, notes without one) for the evaluated (record, score
    row) pairs: the label's metadata first, then the scores' column of that name. A note
    without a value is its own group. ("note", None, 0) when the unit is the note."""
    if group_column == "note":
        return "note", None, 0

    def values(name: str) -> list[Any]:
        col = scores.groups.get(name)
        return [
            rec.meta.get(name) if rec.meta.get(name) is not None else (col[i] if col else None)
            for rec, i in used
        ]

    names = GROUP_COLUMNS if group_column is None else (group_column,)
    for name in names:
        vals = values(name)
        if any(v is not None for v in vals):
            missing = sum(v is None for v in vals)
            groups = [f"{name}={v}" if v is not None else f"note#{k}" for k, v in enumerate(vals)]
            return name, groups, missing
    if group_column is not None and used:
        raise EvalError(
            f"group column {group_column!r} is in neither the labels' fields nor the scores' "
            "columns (give --group-column note to resample notes)"
        )
    return "note", None, 0
