"""The floor per error kind: which of the 34 synthetic error kinds a bag of n-grams finds.

    python -m benchmarks.floor --n 6000 --seed 11 --length short
    python -m benchmarks.floor --table          # the Markdown table from the results file alone

Generates `discriminator synth` records (same seed, same notes and splits as the command), then
measures the TF-IDF + logistic regression floor (`discriminator.baseline`) two ways:

- held out: trained on the synth `train` split, scored on its `test` split (patient-disjoint,
  as `discriminator synth` writes them): the AUROC `ray_jobs.evaluate` would report;
- per kind: 5-fold cross-validation grouped by patient, so every note is scored by a model that
  never saw it or its patient's other admissions. In each fold the threshold is the one that
  keeps `--specificity` (default 90%) of that fold's good notes below it; a kind's recall is the
  share of its notes flagged there, with a Wilson 95% interval from k/n. A bag of words with no
  cue for a kind flags it as often as a good note, 1 - specificity (10%); a kind whose interval
  lies wholly above that carries a surface cue. Per-kind AUROC (its notes against every good
  note, out-of-fold scores pooled) is given beside it.

Writes benchmarks/results/floor_cpu.json (date, git commit, machine, package versions).
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import time
from pathlib import Path
from typing import Any

from benchmarks import common
from benchmarks.common import RESULTS
from discriminator.baseline import FloorSettings, feature_spec, fit_floor, package_versions
from discriminator.files import write_atomic
from discriminator.flags import job_parser

REPO = Path(__file__).resolve().parents[1]
OUT = RESULTS / "floor_cpu.json"
FOLDS = 5
Z95 = 1.959963984540054


def wilson(k: int, n: int, z: float = Z95) -> list[float] | None:
    """Wilson score interval of a proportion k/n (None for n = 0)."""
    if n == 0:
        return None
    p = k / n
    den = 1 + z * z / n
    mid = (p + z * z / (2 * n)) / den
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / den
    # k = 0 (k = n): the bound is 0 (1) exactly; the formula leaves a rounding error there
    return [0.0 if k == 0 else mid - half, 1.0 if k == n else mid + half]


def auroc_interval(auc: float, n_pos: int, n_neg: int, z: float = Z95) -> list[float]:
    """Hanley & McNeil (1982) 95% interval of an AUROC from its value and class sizes."""
    q1, q2 = auc / (2 - auc), 2 * auc * auc / (1 + auc)
    var = (auc * (1 - auc) + (n_pos - 1) * (q1 - auc**2) + (n_neg - 1) * (q2 - auc**2)) / (
        n_pos * n_neg
    )
    half = z * math.sqrt(max(var, 0.0))
    return [max(0.0, auc - half), min(1.0, auc + half)]


def threshold_at_specificity(p_good: list[float], specificity: float) -> float:
    """The lowest threshold t with at least `specificity` of the good notes' p_error below t
    (a note is flagged when p_error >= t)."""
    s = sorted(p_good)
    k = min(len(s) - 1, math.ceil(specificity * len(s)) - 1)
    above = [v for v in s if v > s[k]]
    return (s[k] + above[0]) / 2 if above else math.nextafter(s[k], math.inf)


def _auc(y: list[int], p: list[float]) -> float | None:
    """The evaluation's AUROC (Mann-Whitney, average ranks for ties; None with one class)."""
    from discriminator.metrics import auroc

    return auroc(y, p)


def synth_splits(n: int, seed: int, length: str) -> dict[str, list[dict]]:
    """The records of `discriminator synth --n N --seed S --length L`, by split."""
    import tempfile

    from discriminator.synth import write_splits

    with tempfile.TemporaryDirectory(prefix="floor-") as tmp:
        write_splits(tmp, n, seed=seed, length=length)
        return {
            name: [json.loads(line) for line in open(f"{tmp}/{name}.jsonl", encoding="utf-8")]
            for name in ("train", "eval", "test")
        }


def held_out(splits: dict[str, list[dict]], settings: FloorSettings) -> dict[str, Any]:
    """Train on the train split, score the test split."""
    train, test = splits["train"], splits["test"]
    floor = fit_floor([r["note"] for r in train], [r["kind"] != "good" for r in train], settings)
    p = floor.score([r["note"] for r in test])
    y = [int(r["kind"] != "good") for r in test]
    auc = _auc(y, p)
    return {
        "train": len(train),
        "test": len(test),
        "test_errors": sum(y),
        "auroc": auc,
        "auroc_ci95": auroc_interval(auc, sum(y), len(y) - sum(y)) if auc is not None else None,
    }


def cross_validated(
    records: list[dict], settings: FloorSettings, specificity: float
) -> tuple[list[float], list[bool], list[float]]:
    """Out-of-fold p_error per record, whether it is flagged at its fold's threshold, and the
    fold thresholds (5 folds grouped by patient)."""
    from sklearn.model_selection import GroupKFold

    notes = [r["note"] for r in records]
    errors = [r["kind"] != "good" for r in records]
    groups = [r["patient_id"] for r in records]
    p = [math.nan] * len(records)
    flagged = [False] * len(records)
    thresholds = []
    for k, (tr, te) in enumerate(GroupKFold(FOLDS).split(notes, errors, groups)):
        t0 = time.perf_counter()
        floor = fit_floor([notes[i] for i in tr], [errors[i] for i in tr], settings)
        scored = floor.score([notes[i] for i in te])
        for i, v in zip(te, scored):
            p[i] = v
        t = threshold_at_specificity([p[i] for i in te if not errors[i]], specificity)
        thresholds.append(t)
        for i in te:
            flagged[i] = p[i] >= t
        print(f"[floor] fold {k + 1}/{FOLDS}: {len(tr)} train, {len(te)} scored "
              f"in {time.perf_counter() - t0:.1f}s", flush=True)  # fmt: skip
    return p, flagged, thresholds


def per_kind(
    records: list[dict], p: list[float], flagged: list[bool]
) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """Recall (Wilson 95%) and AUROC per error kind; specificity and AUROC over all notes."""
    from discriminator.synth import ERROR_KINDS

    good = [i for i, r in enumerate(records) if r["kind"] == "good"]
    p_good = [p[i] for i in good]
    rows = []
    for kind, category in ERROR_KINDS.items():
        idx = [i for i, r in enumerate(records) if r["kind"] == kind]
        k = sum(flagged[i] for i in idx)
        auc = _auc([0] * len(good) + [1] * len(idx), p_good + [p[i] for i in idx])
        rows.append(
            {
                "kind": kind,
                "category": category,
                "n": len(idx),
                "flagged": k,
                "recall": k / len(idx) if idx else None,
                "recall_ci95": wilson(k, len(idx)),
                "auroc": auc,
            }
        )
    rows.sort(key=lambda r: (-1 if r["recall"] is None else -r["recall"], r["kind"]))
    spec_k = sum(not flagged[i] for i in good)
    y = [int(r["kind"] != "good") for r in records]
    auc = _auc(y, p)
    overall = {
        "notes": len(records),
        "good": len(good),
        "errors": len(records) - len(good),
        "specificity": spec_k / len(good),
        "specificity_ci95": wilson(spec_k, len(good)),
        "recall": sum(flagged[i] for i in range(len(records)) if y[i]) / max(1, sum(y)),
        "auroc": auc,
        "auroc_ci95": auroc_interval(auc, sum(y), len(good)) if auc is not None else None,
    }
    return rows, overall


def run(args: argparse.Namespace) -> dict[str, Any]:
    t0 = time.perf_counter()
    settings = FloorSettings(features=args.features, seed=args.seed)
    splits = synth_splits(args.n, args.seed, args.length)
    records = sorted(
        (r for recs in splits.values() for r in recs), key=lambda r: r["meta"]["index"]
    )
    t_gen = time.perf_counter() - t0
    print(f"[floor] {len(records)} synthetic notes in {t_gen:.1f}s", flush=True)
    t1 = time.perf_counter()
    split = held_out(splits, settings)
    print(f"[floor] held-out test split: AUROC {split['auroc']:.3f} "
          f"({time.perf_counter() - t1:.1f}s)", flush=True)  # fmt: skip
    t2 = time.perf_counter()
    p, flagged, thresholds = cross_validated(records, settings, args.specificity)
    kinds, overall = per_kind(records, p, flagged)
    overall["fold_thresholds"] = thresholds
    return {
        "benchmark": "floor",
        **common.provenance(),
        "versions": {**common.versions(), **package_versions()},
        "settings": {
            "n": args.n,
            "seed": args.seed,
            "length": args.length,
            "model": "tfidf-logreg",
            "features": args.features,
            "feature_spec": feature_spec(args.features),
            "folds": FOLDS,
            "grouped_by": "patient_id",
            "specificity": args.specificity,
            "threshold": f"per fold, the lowest p_error that keeps {args.specificity:.0%} of "
            "that fold's good notes below it",
            "chance_recall": round(1 - args.specificity, 6),
        },
        "held_out": split,
        "cross_validated": overall,
        "kinds": kinds,
        "seconds": {
            "generate": round(t_gen, 2),
            "held_out": round(t2 - t1, 2),
            "cross_validated": round(time.perf_counter() - t2, 2),
            "total": round(time.perf_counter() - t0, 2),
        },
    }


def _pct(x: float | None) -> str:
    return "n/a" if x is None else f"{100 * x:.0f}%"


def markdown(report: dict[str, Any]) -> str:
    s, cv, ho = report["settings"], report["cross_validated"], report["held_out"]
    chance = s["chance_recall"]
    lines = [
        f"Floor ({s['model']}, {s['features']} features) on `discriminator synth --n {s['n']} "
        f"--seed {s['seed']} --length {s['length']}`. " + common.provenance_text({"floor": report}),
        "",
        f"- Held-out test split ({ho['train']} train, {ho['test']} test): AUROC "
        f"{ho['auroc']:.3f} [{ho['auroc_ci95'][0]:.3f}, {ho['auroc_ci95'][1]:.3f}]",
        f"- {s['folds']}-fold cross-validation by patient ({cv['notes']} notes): AUROC "
        f"{cv['auroc']:.3f} [{cv['auroc_ci95'][0]:.3f}, {cv['auroc_ci95'][1]:.3f}]; threshold per "
        f"fold at {s['specificity']:.0%} specificity on good notes (reached "
        f"{cv['specificity']:.1%}); recall by chance {chance:.0%}",
        "",
        "| kind | category | n | recall at 90% spec. | 95% interval | AUROC | cue |",
        "|---|---|---:|---:|---|---:|---|",
    ]
    for r in report["kinds"]:
        lo, hi = r["recall_ci95"] or (None, None)
        cue = "yes" if lo is not None and lo > chance else ""
        auc = "n/a" if r["auroc"] is None else f"{r['auroc']:.2f}"
        lines.append(
            f"| {r['kind']} | {r['category']} | {r['n']} | {_pct(r['recall'])} | "
            f"{_pct(lo)}-{_pct(hi)} | {auc} | {cue} |"
        )
    lines.append("")
    lines.append(
        "cue: the 95% interval of the recall lies wholly above chance (a bag of n-grams finds "
        "the kind more often than it flags a good note)."
    )
    return "\n".join(lines).replace("90% spec.", f"{s['specificity']:.0%} spec.")


def main(argv: list[str] | None = None) -> int:
    p = job_parser("python -m benchmarks.floor", __doc__)
    p.add_argument("--n", type=int, default=6000, help="synthetic notes (all splits)")
    p.add_argument("--seed", type=int, default=11)
    p.add_argument("--length", choices=["realistic", "short"], default="short")
    p.add_argument("--features", choices=["word", "char", "both"], default="both")
    p.add_argument("--specificity", type=float, default=0.9,
                   help="share of good notes kept below each fold's threshold")  # fmt: skip
    p.add_argument("--output", "--out", dest="out", type=Path, default=OUT, metavar="FILE",
                   help="results JSON")  # fmt: skip
    common.add_table_arg(p)
    args = p.parse_args(argv)
    if args.table:
        return common.print_table(p, args.out, markdown)
    if not 0 < args.specificity < 1:
        print("error: --specificity must be between 0 and 1", file=sys.stderr)
        return 2
    report = run(args)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    write_atomic(args.out, json.dumps(report, indent=2) + "\n")
    print(markdown(report))
    print(f"[floor] wrote {args.out} in {report['seconds']['total']:.0f}s", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
