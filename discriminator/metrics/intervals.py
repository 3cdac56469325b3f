"""95% intervals that say what the data allow, and the paired difference of two scorers.

Two kinds of figure, two kinds of interval:

- a proportion (recall, precision, specificity, category accuracy, each category's recall) has
  its counts: `k` of `n`, and an exact Clopper-Pearson interval from them. With 2 of 2 that is
  [0.16, 1.00], where a bootstrap would say [1.00, 1.00]. When the resampling unit is a group
  (patient), the interval is widened to the cluster bootstrap's where that is wider: the exact
  one assumes independent notes.
- a figure without counts (AUROC, AUPRC, balanced accuracy, F1) gets a percentile bootstrap.
  Resamples in which it is undefined are counted; above `MAX_UNDEFINED_SHARE` of them the
  interval is withheld (null, with the reason) rather than narrowed to the resamples that
  happened to be defined. One rule for a resample that lacks a class: every figure that needs
  both classes (AUROC, AUPRC, balanced accuracy) is undefined in it.

Resampling draws groups (patients) with replacement and takes all their notes (a cluster
bootstrap) when the data carry a group per note; otherwise it draws notes.

Every interval is a dict: `{"value", "ci95", "method"}`, plus `"k", "n"` for a proportion and
`"resamples", "undefined", "withheld"` for a bootstrap figure.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import numpy as np

from discriminator.metrics.figures import (
    auroc,
    average_precision,
    binary_metrics,
    operating_point,
    ratio,
)
from discriminator.metrics.scores import EvalData
from discriminator.prompt import CATEGORIES, GOOD

CI_LEVEL = 0.95
N_BOOTSTRAP = 1000
BOOTSTRAP_SEED = 0
MAX_UNDEFINED_SHARE = 0.05  # above this share of undefined resamples an interval is withheld
PROPORTIONS = ("precision", "recall", "specificity", "category_accuracy")
BOOTSTRAPPED = ("auroc", "auprc", "balanced_accuracy", "f1")
NEEDS_BOTH_CLASSES = ("auroc", "auprc", "balanced_accuracy")
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


# ---------------------------------------------------------------------------------------------
# Exact intervals of proportions


def _binom_cdf(k: int, n: int, p: float, log_comb: np.ndarray) -> float:
    """P(X <= k) for X ~ Binomial(n, p), summed in log space; `log_comb[j]` is log C(n, j)."""
    if p <= 0.0:
        return 1.0
    if p >= 1.0:
        return 1.0 if k >= n else 0.0
    j = np.arange(k + 1)
    logs = log_comb[: k + 1] + j * math.log(p) + (n - j) * math.log1p(-p)
    top = logs.max()
    return float(min(1.0, math.exp(top) * np.exp(logs - top).sum()))


def _bisect(f: Callable[[float], float]) -> float:
    """The root in [0, 1] of an increasing `f` (60 halvings: exact to double precision)."""
    lo, hi = 0.0, 1.0
    for _ in range(60):
        mid = (lo + hi) / 2
        lo, hi = (mid, hi) if f(mid) < 0 else (lo, mid)
    return (lo + hi) / 2


def exact_interval(k: int, n: int, level: float = CI_LEVEL) -> list[float] | None:
    """Clopper-Pearson interval of k successes in n trials; None when n is 0."""
    if n <= 0:
        return None
    a = (1 - level) / 2
    log_fact = np.r_[0.0, np.cumsum(np.log(np.arange(1, n + 1)))]
    log_comb = log_fact[n] - log_fact - log_fact[::-1]
    # lower: P(X >= k | p) = a; upper: P(X <= k | p) = a
    lo = 0.0 if k == 0 else _bisect(lambda p: (1 - _binom_cdf(k - 1, n, p, log_comb)) - a)
    hi = 1.0 if k == n else _bisect(lambda p: a - _binom_cdf(k, n, p, log_comb))
    return [lo, hi]


def proportion(k: int, n: int, level: float = CI_LEVEL) -> dict[str, Any]:
    """`k` of `n` with its exact interval."""
    return {
        "value": ratio(k, n),
        "k": int(k),
        "n": int(n),
        "ci95": exact_interval(k, n, level),
        "method": "clopper-pearson",
    }


def proportion_counts(data: EvalData, y_pred: np.ndarray | None = None) -> dict[str, tuple]:
    """(k, n) of every proportion on `data` (decisions `y_pred`, else the data's own), per
    category recall under `recall:<category>`."""
    y = np.asarray(data.y_true, bool)
    d = np.asarray(data.y_pred if y_pred is None else y_pred, bool)
    lcat = np.asarray(data.label_category, dtype=object)
    pcat = np.asarray(data.pred_category, dtype=object)
    tp, fp, fn, tn = (int(np.sum(m)) for m in (y & d, ~y & d, y & ~d, ~y & ~d))
    out = {
        "precision": (tp, tp + fp),
        "recall": (tp, tp + fn),
        "specificity": (tn, tn + fp),
    }
    if y_pred is None:  # categories belong to the data's own decisions
        det = y & d & np.isin(lcat, CATEGORIES)
        out["category_accuracy"] = (int((det & (lcat == pcat)).sum()), int(det.sum()))
        for cat in sorted(set(lcat.tolist()) - {GOOD}):
            rows = lcat == cat
            out[f"recall:{cat}"] = (int((rows & d).sum()), int(rows.sum()))
    return out


# ---------------------------------------------------------------------------------------------
# Resampling


def group_codes(data: EvalData) -> np.ndarray | None:
    """Each note's group as an integer code, or None when the unit is the note."""
    if data.groups is None:
        return None
    _, codes = np.unique(np.asarray(data.groups, dtype=object).astype(str), return_inverse=True)
    return codes


def bootstrap_unit(data: EvalData) -> str:
    """What is resampled: `note`, or e.g. `patient_id (338 groups)`."""
    codes = group_codes(data)
    if codes is None:
        return "note"
    return f"{data.group_column} ({len(set(codes.tolist()))} groups)"


def bootstrap_indices(
    n: int,
    n_boot: int = N_BOOTSTRAP,
    seed: int = BOOTSTRAP_SEED,
    groups: np.ndarray | None = None,
) -> list[np.ndarray]:
    """`n_boot` seeded resamples of row indices: `n` notes drawn with replacement, or with
    `groups` (a code per note) the groups drawn with replacement, each bringing all its notes."""
    rng = np.random.default_rng(seed)
    if n == 0:
        return []
    if groups is None:
        return list(rng.integers(0, n, size=(n_boot, n)))
    order = np.argsort(groups, kind="mergesort")
    sizes = np.bincount(groups)
    starts = np.r_[0, np.cumsum(sizes)[:-1]]
    out = []
    for _ in range(n_boot):
        g = rng.integers(0, len(sizes), size=len(sizes))
        lens = sizes[g]
        # row positions in `order`: start of each drawn group + 0..size-1
        offsets = np.arange(lens.sum()) - np.repeat(np.cumsum(lens) - lens, lens)
        out.append(order[np.repeat(starts[g], lens) + offsets])
    return out


def percentile_interval(
    values: list[float | None],
    point: float | None,
    level: float = CI_LEVEL,
    max_undefined: float = MAX_UNDEFINED_SHARE,
) -> dict[str, Any]:
    """A bootstrap figure: `point` and the percentile interval of the defined resamples, or
    no interval (`withheld` says why) when more than `max_undefined` of them are undefined."""
    v = np.array([x for x in values if x is not None], dtype=float)
    undefined = len(values) - int(v.size)
    out: dict[str, Any] = {
        "value": point,
        "ci95": None,
        "method": "percentile bootstrap",
        "resamples": len(values),
        "undefined": undefined,
        "withheld": None,
    }
    if point is None:
        out["withheld"] = "undefined on these notes"
    elif not values:
        out["withheld"] = "no resamples"
    elif undefined > max_undefined * len(values):
        out["withheld"] = (
            f"undefined in {undefined} of {len(values)} resamples "
            f"(more than {max_undefined:.0%}: an interval of the rest would be too narrow)"
        )
    else:
        lo, hi = np.percentile(v, [100 * (1 - level) / 2, 100 * (1 + level) / 2])
        out["ci95"] = [float(lo), float(hi)]
    return out


def resample_figures(y: np.ndarray, pred: np.ndarray, p: np.ndarray) -> dict[str, float | None]:
    """The binary and ranking figures on one set of notes, with the one-class rule: without
    both classes every figure that needs both is undefined."""
    b = binary_metrics(y, pred)
    has_p = ~np.isnan(p)
    out: dict[str, float | None] = {
        k: b[k] for k in ("balanced_accuracy", "precision", "recall", "f1", "specificity")
    }
    out["auroc"] = auroc(y[has_p], p[has_p])
    out["auprc"] = average_precision(y[has_p], p[has_p])
    if y.all() or not y.any():
        out.update(dict.fromkeys(NEEDS_BOTH_CLASSES))
    return out


def _resample_values(data: EvalData, rows: np.ndarray) -> dict[str, float | None]:
    """Every figure (with category accuracy and each category's recall) on resample `rows`."""
    y, d = np.asarray(data.y_true, bool)[rows], np.asarray(data.y_pred, bool)[rows]
    out = resample_figures(y, d, np.asarray(data.p_error, float)[rows])
    lc = np.asarray(data.label_category, dtype=object)[rows]
    pc = np.asarray(data.pred_category, dtype=object)[rows]
    det = y & d & np.isin(lc, CATEGORIES)
    out["category_accuracy"] = ratio(int((det & (lc == pc)).sum()), int(det.sum()))
    for cat in set(lc.tolist()) - {GOOD}:
        n = lc == cat
        out[f"recall:{cat}"] = ratio(int((n & d).sum()), int(n.sum()))
    return out


def _widened(exact: dict[str, Any], boot: dict[str, Any]) -> dict[str, Any]:
    """The exact interval, widened to the cluster bootstrap's where that reaches further."""
    if exact["ci95"] is None or boot["ci95"] is None:
        return exact
    lo, hi = min(exact["ci95"][0], boot["ci95"][0]), max(exact["ci95"][1], boot["ci95"][1])
    if [lo, hi] == exact["ci95"]:
        return exact
    return {**exact, "ci95": [lo, hi], "method": "clopper-pearson widened to cluster bootstrap"}


def confidence_intervals(
    data: EvalData, n_boot: int = N_BOOTSTRAP, seed: int = BOOTSTRAP_SEED
) -> dict[str, Any]:
    """Intervals of the headline figures (`figures`) and each category's recall
    (`per_category_recall`): exact for proportions, a bootstrap over the data's unit (groups
    when it has them, else notes) for the rest; see the module docstring."""
    codes = group_codes(data)
    point = _resample_values(data, np.arange(len(data.y_true)))
    draws = [
        _resample_values(data, rows)
        for rows in bootstrap_indices(len(data.y_true), n_boot, seed, codes)
    ]
    counts = proportion_counts(data)
    cis: dict[str, dict[str, Any]] = {}
    for key in sorted(set(point) | set(counts)):
        boot = percentile_interval([d.get(key) for d in draws], point.get(key))
        if key in counts:
            exact = proportion(*counts[key])
            cis[key] = _widened(exact, boot) if codes is not None and draws else exact
        else:
            cis[key] = boot
    unit = bootstrap_unit(data)
    return {
        "method": (
            f"exact (Clopper-Pearson) for proportions; percentile bootstrap over {unit}, "
            f"{n_boot} resamples, seed {seed}, withheld when over {MAX_UNDEFINED_SHARE:.0%} "
            "are undefined"
        ),
        "level": CI_LEVEL,
        "bootstrap_unit": unit,
        "resamples": n_boot,
        "seed": seed,
        "max_undefined_share": MAX_UNDEFINED_SHARE,
        "figures": {k: cis[k] for k in CI_METRICS if k in cis},
        "per_category_recall": {
            k.split(":", 1)[1]: v for k, v in cis.items() if k.startswith("recall:")
        },
    }


def out_of_bag_operating_point(
    data: EvalData,
    recall: float | None,
    precision: float | None,
    n_boot: int = N_BOOTSTRAP,
    seed: int = BOOTSTRAP_SEED,
) -> dict[str, dict[str, Any]]:
    """Figures at a threshold chosen for a target (`recall` or `precision`) that did not choose
    it: in every resample the threshold is re-chosen on the resample and the figures are taken
    on the notes (groups) it left out. Each figure's value is the median over resamples and
    its interval their percentiles; `threshold` is the spread of the re-chosen thresholds."""
    y, p = np.asarray(data.y_true, bool), np.asarray(data.p_error, float)
    keys = ("precision", "recall", "specificity", "balanced_accuracy", "f1")
    vals: dict[str, list[float | None]] = {k: [] for k in (*keys, "threshold")}
    for rows in bootstrap_indices(len(y), n_boot, seed, group_codes(data)):
        left_out = np.ones(len(y), bool)
        left_out[rows] = False
        chosen = operating_point(y[rows], p[rows], recall=recall, precision=precision)
        if chosen is None or not left_out.any():
            for k in vals:
                vals[k].append(None)
            continue
        t = chosen["threshold"]
        yo, po = y[left_out], p[left_out]
        f = resample_figures(yo, ~np.isnan(po) & (po >= t), po)
        for k in keys:
            vals[k].append(f[k])
        vals["threshold"].append(t)
    out = {}
    for k, v in vals.items():
        defined = [x for x in v if x is not None]
        iv = percentile_interval(v, float(np.median(defined)) if defined else None)
        out[k] = {**iv, "method": "out-of-bag bootstrap, threshold re-chosen per resample"}
    return out


# ---------------------------------------------------------------------------------------------
# Paired difference


def paired_difference(
    a: EvalData, b: EvalData, n_boot: int = N_BOOTSTRAP, seed: int = BOOTSTRAP_SEED
) -> dict[str, Any]:
    """AUROC and balanced accuracy of `a` minus `b` on exactly the notes both scored with a
    p_error (joined by id; the same notes for every figure of both), with a paired bootstrap
    interval: each resample draws the same notes (or groups, `a`'s) for both."""
    where_b = {k: i for i, k in enumerate(b.ids)}
    pa_, pb_ = np.asarray(a.p_error, float), np.asarray(b.p_error, float)
    both = [(i, where_b[k]) for i, k in enumerate(a.ids) if k in where_b]
    kept = [(i, j) for i, j in both if not (math.isnan(pa_[i]) or math.isnan(pb_[j]))]
    ia = np.array([i for i, _ in kept], dtype=int)
    ib = np.array([j for _, j in kept], dtype=int)
    y = np.asarray(a.y_true, bool)[ia]
    groups = None if a.groups is None else [a.groups[i] for i in ia]
    codes = group_codes(EvalData([], y, y, y, [], [], groups=groups, group_column=a.group_column))

    def figures(d: EvalData, idx: np.ndarray, rows: np.ndarray) -> dict[str, float | None]:
        f = resample_figures(
            y[rows], np.asarray(d.y_pred, bool)[idx][rows], np.asarray(d.p_error, float)[idx][rows]
        )
        return {k: f[k] for k in ("auroc", "balanced_accuracy")}

    every = np.arange(len(ia))
    fa, fb = figures(a, ia, every), figures(b, ib, every)
    draws = [(figures(a, ia, r), figures(b, ib, r)) for r in bootstrap_indices(len(ia), n_boot,
                                                                               seed, codes)]  # fmt: skip
    unit = "note" if codes is None else f"{a.group_column} ({len(set(codes.tolist()))} groups)"
    out: dict[str, Any] = {
        "notes": len(kept),
        "dropped": {
            "only_in_scores": len(a.ids) - len(both),
            "only_in_baseline": len(b.ids) - len(both),
            "without_p_error": len(both) - len(kept),
        },
        "bootstrap_unit": unit,
    }
    for k in ("auroc", "balanced_accuracy"):
        out[k] = fa[k]
        out[f"baseline_{k}"] = fb[k]
        diff = None if fa[k] is None or fb[k] is None else fa[k] - fb[k]
        iv = percentile_interval(
            [None if x[k] is None or z[k] is None else x[k] - z[k] for x, z in draws], diff
        )
        out[f"{k}_diff"] = diff
        out[f"{k}_diff_ci95"] = iv["ci95"]
        out[f"{k}_diff_interval"] = iv
    out["method"] = f"paired percentile bootstrap over {unit}, {n_boot} resamples, seed {seed}"
    return out
