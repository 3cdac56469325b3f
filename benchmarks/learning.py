"""Learning curve of the real training path: does fine-tuning turn a base into a discriminator?

    python -m benchmarks.learning                                  # smollm2 + tiny, 2,000 examples
    python -m benchmarks.learning --models tiny --categories structure --points 256 800
    python -m benchmarks.learning --decision-weights 1 10          # plain vs decision-weighted loss
    python -m benchmarks.learning --table [--out FILE] [--models smollm2]   # the table, no run

For every (model, decision weight) it fine-tunes with the training job's own code (TRL
`SFTTrainer` on Ray Train, LoRA on the seven projections, the prompt contract, completion-only
loss; NF4 or plain weights), stopping at each point of `--points` (training examples seen) to
score the held-out test split with the scoring job's `Scorer` (one prefill for p_error, the reason
generated for flagged notes) and the evaluation's metrics: AUROC, balanced accuracy, per-category
recall and the share of detected errors whose reason names the right category. Step 0 is the
base model itself (zero-shot). All runs see the same synthetic notes in the same order. Beside
them, the floor every adapter must beat (`discriminator baseline`: TF-IDF and logistic
regression) is trained on the first N training notes of each point and scored on the same test
notes (curve `floor`, seconds; `--no-floor` leaves it out).

The learning rate is constant after warm-up, so the checkpoint at N examples is the same whatever
the last point is. Resumable: each point's figures are written to the JSON as they come, and a
run that was cut off goes on from the last Ray Train checkpoint and the last scored point when
started again with the same arguments. A PNG of the curves is written beside the JSON.
Every point records the provenance of the run that measured it (date, git_commit, machine,
versions: `common.provenance()`); `this_run` describes the latest invocation.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Any

from benchmarks import common
from discriminator.files import write_atomic
from discriminator.flags import job_parser
from discriminator.numbers import fmt

DEFAULT_OUT = common.RESULTS / "learning_cpu.json"


def _train_config(args: argparse.Namespace, model: str, weight: float, data: Path, max_steps: int):
    from discriminator.config import TrainConfig, load_config

    quant = args.quantization
    sets = [
        f"model.name_or_path={model}",
        f"model.quantization={quant}",
        f"model.dtype={args.dtype}",
        f"lora.r={args.lora_r}",
        f"lora.alpha={2 * args.lora_r}",
        "lora.dropout=0.0",
        f"data.train_path={data / 'train.jsonl'}",
        "data.eval_path=null",
        f"data.max_prompt_tokens={args.max_prompt_tokens}",
        f"optim.max_steps={max_steps}",
        f"optim.learning_rate={args.learning_rate[model]}",
        f"optim.per_device_train_batch_size={args.micro_batch}",
        f"optim.gradient_accumulation_steps={args.batch_size // (args.workers * args.micro_batch)}",
        "optim.warmup_ratio=0.0",
        "optim.lr_scheduler_type=constant",
        "optim.optim=adamw_torch",
        "optim.gradient_checkpointing=false",
        f"optim.decision_weight={weight}",
        f"run.num_workers={args.workers}",
        f"run.use_gpu={str(common.on_cuda()).lower()}",
        "run.cpus_per_worker=1",
        f"run.save_steps={min(args.save_steps, max_steps)}",  # + one at the end of each segment
        "run.logging_steps=5",
        "run.num_to_keep=2",
        "run.max_failures=0",
    ]
    return load_config(TrainConfig, None, sets)


def _score(model: str, adapter: str | None, test: list[dict], args: argparse.Namespace) -> dict:
    """The scorer and the evaluation metrics on the test notes."""
    from discriminator import scoring
    from discriminator.config import ScoreConfig, load_config, to_dict

    cfg = load_config(
        ScoreConfig,
        None,
        [
            f"model.name_or_path={model}",
            "model.quantization=none",
            f"model.dtype={'bfloat16' if common.on_cuda() else 'float32'}",
            f"adapter={adapter}" if adapter else "adapter=null",
            "scoring.generate=threshold",
            f"scoring.max_new_tokens={args.max_new_tokens}",
            f"scoring.max_prompt_tokens={args.max_prompt_tokens}",
            "scoring.batch_tokens=8192",
            "scoring.max_batch_size=8",
        ],
    )
    t0 = time.time()
    scorer = scoring.Scorer(to_dict(cfg), scoring.tokenizer_path(cfg))
    rows = scorer.score_notes([r["note"] for r in test])
    seconds = time.time() - t0
    del scorer
    return _figures(test, rows, seconds)


def _score_floor(train: list[dict], test: list[dict]) -> dict:
    """The bag-of-words floor trained on `train` and read on the test notes, as `_score` does."""
    from discriminator import baseline, prompt

    t0 = time.time()
    floor = baseline.fit_floor(
        [r["note"] for r in train],
        [r["category"] != prompt.GOOD for r in train],
        baseline.FloorSettings(),
    )
    p = floor.score([r["note"] for r in test])
    verdict = ["error" if v >= prompt.DECISION_THRESHOLD else "good" for v in p]
    rows = [{"p_error": v, "verdict": d, "category": None} for v, d in zip(p, verdict)]
    return {**_figures(test, rows, time.time() - t0), "train_seconds": round(time.time() - t0, 1)}


def _figures(test: list[dict], rows: list[dict], seconds: float) -> dict:
    """The evaluation's figures for one scoring (`rows`: verdict, p_error, category per note)."""
    from discriminator import metrics
    from discriminator.data import Record

    scores = metrics.Scores(
        note_id=[r["id"] for r in test],
        status=["ok"] * len(test),
        verdict=[r["verdict"] for r in rows],
        p_error=[r["p_error"] for r in rows],
        category=[r["category"] for r in rows],
        files=0,
    )
    records = [
        Record(
            note="", reason=r["reason"], id=r["id"], source="test", line=i, category=r["category"]
        )
        for i, r in enumerate(test, start=1)
    ]
    m = metrics.compute_metrics(metrics.join(records, scores))
    per = m["per_category"]
    kinds: dict[str, list[bool]] = {}
    for r, row in zip(test, rows):
        kinds.setdefault(r.get("kind") or r["category"], []).append(row["verdict"] == "error")
    return {
        "auroc": m["auroc"],
        "auroc_ci95": m.get("auroc_ci95"),
        "balanced_accuracy": m["balanced_accuracy"],
        "balanced_accuracy_ci95": m.get("balanced_accuracy_ci95"),
        "accuracy": m["accuracy"],
        "category_named": m["category_accuracy"],
        "category_named_ci95": m.get("category_accuracy_ci95"),
        "recall": {c: v["recall"] for c, v in per.items()},
        "named_rate": {c: v["named_rate"] for c, v in per.items()},
        "flagged_by_kind": {k: round(sum(v) / len(v), 3) for k, v in sorted(kinds.items())},
        "flagged_share": float(sum(r["verdict"] == "error" for r in rows) / len(rows)),
        "score_seconds": round(seconds, 1),
        # per test note, in order: intervals and comparisons can be recomputed from these
        "p_error": [r["p_error"] for r in rows],
        "verdicts": "".join("e" if r["verdict"] == "error" else "g" for r in rows),
    }


def _train_to(cfg: Any, prepared: Any, storage: Path, name: str) -> dict:
    """Fit (or resume) the Ray Train run up to cfg.optim.max_steps; train loss + timing."""
    from discriminator import training

    t0 = time.time()
    result = training.build_trainer(cfg, prepared, str(storage), name).fit()
    ckpt = training.latest_checkpoint_dir(result)
    state = json.loads((ckpt / "trainer_state.json").read_text())
    losses = [e["loss"] for e in state["log_history"] if "loss" in e]
    return {
        "checkpoint": str(ckpt),
        "step": state["global_step"],
        "train_loss": losses[-1] if losses else None,
        "tokens_seen": state.get("num_input_tokens_seen"),
        "train_seconds": round(time.time() - t0, 1),
    }


def check_points(args: argparse.Namespace) -> str | None:
    """Why the points cannot be trained as asked (None when they can): each must be a whole
    number of optimizer steps, and the last must fit in the training split (80% of the notes),
    else training would silently repeat examples."""
    odd = [n for n in args.points if n <= 0 or n % args.batch_size]
    if odd:
        return (f"--points {' '.join(map(str, odd))}: each must be a positive multiple of "
                f"--batch-size {args.batch_size} (examples = steps x batch size)")  # fmt: skip
    room = int(0.8 * args.notes)
    if args.points[-1] > room:
        return (f"--points up to {args.points[-1]} need a training split that large: --notes >= "
                f"{-(-args.points[-1] * 10 // 8)} (the training split is 80% of --notes)")  # fmt: skip
    return None


WORK_SETTINGS = "settings.json"


def check_work(work: Path, settings: dict) -> str | None:
    """`--work` holds the data and checkpoints of one set of settings (notes, seed, mix, length,
    learning rates...): another set is refused (None when it matches or `work` is new)."""
    path = work / WORK_SETTINGS
    wanted = json.loads(json.dumps(settings))  # as JSON stores it
    if path.exists():
        old = json.loads(path.read_text())
        if old != wanted:
            diff = sorted(k for k in set(old) | set(wanted) if old.get(k) != wanted.get(k))
            return (f"--work {work} holds data and checkpoints made with other settings "
                    f"({', '.join(diff)}); use another --work or remove it")  # fmt: skip
        return None
    work.mkdir(parents=True, exist_ok=True)
    write_atomic(path, json.dumps(wanted, indent=1) + "\n")
    return None


def begin_run(report: dict) -> None:
    """A new invocation: what described the last one (its end, its duration) no longer holds."""
    for key in ("finished", "seconds_this_run"):
        report.pop(key, None)
    report["started_this_run"] = common.stamp()


def _save(path: Path, report: dict) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    write_atomic(path, json.dumps(report, indent=2) + "\n")
    plot(report, path.with_suffix(".png"))


def run_curve(
    args: argparse.Namespace, report: dict, model: str, weight: float, prov: dict
) -> None:
    """Train and score the points of one curve not in `report` yet, each stamped with `prov`
    (this run's provenance: a resumed curve holds points of several runs)."""
    from discriminator import modeling, training

    key = f"{model} w{weight:g}"
    curve = report["curves"].setdefault(
        key, {"model": model, "decision_weight": weight, "points": []}
    )
    done = {p["examples"] for p in curve["points"]}
    data = Path(args.work) / "data"
    test = [json.loads(x) for x in (data / "test.jsonl").read_text().splitlines()]
    if 0 not in done and args.zero_shot:
        print(f"[learning] {key}: scoring the base model (zero-shot)", flush=True)
        point = {"examples": 0, "step": 0, **_score(model, None, test, args), **prov}
        curve["points"].append(point)
        _save(Path(args.out), report)
        _print(key, point)
    storage = Path(args.work) / "ray"
    name = f"{model}-w{weight:g}".replace(".", "_")
    for n in args.points:
        if n in done:
            continue
        steps = n // args.batch_size
        cfg = _train_config(args, model, weight, data, steps)
        prepared = training.prepare_data(cfg, modeling.load_tokenizer(model))
        print(f"[learning] {key}: training to {n} examples (step {steps})", flush=True)
        trained = _train_to(cfg, prepared, storage, name)
        point = {
            "examples": n,
            **trained,
            **_score(model, trained["checkpoint"], test, args),
            **prov,
        }
        point.pop("checkpoint")
        curve["points"].append(point)
        curve["points"].sort(key=lambda p: p["examples"])
        _save(Path(args.out), report)
        _print(key, point)


FLOOR = "floor"


def run_floor(args: argparse.Namespace, report: dict, prov: dict) -> None:
    """The floor's points not in `report` yet: trained on the first N training notes."""
    curve = report["curves"].setdefault(
        FLOOR, {"model": "floor (tf-idf + logistic regression)", "decision_weight": None,
                "points": []}
    )  # fmt: skip
    done = {p["examples"] for p in curve["points"]}
    data = Path(args.work) / "data"
    train = [json.loads(x) for x in (data / "train.jsonl").read_text().splitlines()]
    test = [json.loads(x) for x in (data / "test.jsonl").read_text().splitlines()]
    for n in args.points:
        if n in done:
            continue
        try:
            point = {"examples": n, **_score_floor(train[:n], test), **prov}
        except ValueError as e:  # the first N notes hold one label: nothing to fit
            print(f"[learning] {FLOOR} @ {n} examples: left out ({e})", flush=True)
            continue
        curve["points"].append(point)
        curve["points"].sort(key=lambda p: p["examples"])
        _save(Path(args.out), report)
        _print(FLOOR, point)


def _print(key: str, p: dict) -> None:
    recall = " ".join(f"{c[:5]} {fmt(v, '.2f')}" for c, v in p["recall"].items())
    print(
        f"[learning] {key} @ {p['examples']} examples: AUROC {fmt(p['auroc'], '.2f')}  balanced "
        f"{fmt(p['balanced_accuracy'], '.2f')}  named {fmt(p['category_named'], '.2f')}  "
        f"recall: {recall}",
        flush=True,
    )


def markdown_table(report: dict, models: list[str] | None = None) -> str:
    """The report's curves as the README's table: each figure with its 95% interval, then the
    provenance of the points shown. `models`: only the curves of these bases."""
    curves = {
        k: c
        for k, c in report["curves"].items()
        if not models or c["model"] in models or k == FLOOR
    }
    from discriminator import metrics, prompt

    rows = [
        "| base, loss | examples | AUROC [95% CI] | balanced acc. [95% CI] | category named "
        "[95% CI] | flagged | recall: clin. / time / PHI / just. / struct. | train s |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for c in curves.values():
        for p in c["points"]:
            weight = c["decision_weight"]
            cells = [
                c["model"] if weight is None else f"{c['model']}, decision weight {weight:g}",
                str(p["examples"]),
                *(metrics.figure_text(p, k, ".2f", "–")
                  for k in ("auroc", "balanced_accuracy", "category_named")),
                fmt(p.get("flagged_share"), ".2f", "–"),
                " / ".join(fmt(p["recall"].get(k), ".2f", "–") for k in prompt.CATEGORIES),
                fmt(p.get("train_seconds"), ".1f", "–"),
            ]  # fmt: skip
            rows.append("| " + " | ".join(cells) + " |")
    shown = common.sections({"benchmark": "learning", "curves": curves})
    return "\n".join(rows) + "\n\n" + common.provenance_text(shown)


def _band(ax: Any, x: list, pts: list[dict], key: str, color: str) -> None:
    """The 95% interval of a figure along the curve, shaded (points without one are gaps)."""
    lo = [p[key][0] if p.get(key) else float("nan") for p in pts]
    hi = [p[key][1] if p.get(key) else float("nan") for p in pts]
    ax.fill_between(x, lo, hi, color=color, alpha=0.15, lw=0)


def plot(report: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    curves = report["curves"]
    if not curves:
        return
    fig, axes = plt.subplots(1, 2 + len(curves), figsize=(5 * (2 + len(curves)), 4))
    for key, c in curves.items():
        pts = c["points"]
        x = [p["examples"] for p in pts]
        (line,) = axes[0].plot(x, [p["auroc"] for p in pts], marker="o", label=f"{key} AUROC")
        _band(axes[0], x, pts, "auroc_ci95", line.get_color())
        (line,) = axes[0].plot(x, [p["balanced_accuracy"] for p in pts], marker="s", ls="--",
                               label=f"{key} balanced acc.")  # fmt: skip
        _band(axes[0], x, pts, "balanced_accuracy_ci95", line.get_color())
        named = [p["category_named"] for p in pts]  # none detected: no point
        axes[1].plot(x, [float("nan") if v is None else v for v in named], marker="o", label=key)
    axes[0].axhline(0.5, color="grey", lw=0.8)
    axes[0].set(title="detection (test split; bands: 95% intervals)",
                xlabel="training examples", ylim=(0, 1))  # fmt: skip
    axes[1].set(title="category named (detected errors)", xlabel="training examples", ylim=(0, 1))
    for ax, (key, c) in zip(axes[2:], curves.items()):
        pts = c["points"]
        x = [p["examples"] for p in pts]
        for cat in sorted({k for p in pts for k in p["recall"]}):
            ax.plot(x, [p["recall"].get(cat) for p in pts], marker=".", label=cat)
        ax.set(title=f"recall by category: {key}", xlabel="training examples", ylim=(0, 1.05))
        ax.legend(fontsize=7)
    axes[0].legend(fontsize=7)
    axes[1].legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def main(argv: list[str] | None = None) -> int:
    p = job_parser("python -m benchmarks.learning", __doc__)
    p.add_argument("--models", nargs="+", default=None,
                   help="bases to train (default: smollm2 tiny); with --table, the curves shown "
                        "(default: all)")  # fmt: skip
    p.add_argument("--decision-weights", nargs="+", type=float, default=[1.0],
                   help="loss weight of the answer's first token (1 = plain SFT)")  # fmt: skip
    p.add_argument("--points", nargs="+", type=int, default=[256, 512, 1024, 2048],
                   help="training examples seen at each scored checkpoint (multiples of "
                        "--batch-size)")  # fmt: skip
    p.add_argument("--notes", type=int, default=2600, help="synthetic notes (80/10/10 split)")
    p.add_argument("--test-notes", type=int, default=100, help="test notes scored at each point")
    p.add_argument("--categories", nargs="+", default=None, help="error categories (all five)")
    p.add_argument("--kinds", nargs="+", default=None, help="error kinds (all of the categories)")
    p.add_argument("--length", default="short", choices=["short", "realistic"])
    p.add_argument(
        "--batch-size", type=int, default=8, help="notes per optimizer step, all workers"
    )
    p.add_argument("--workers", type=int, default=2, help="Ray Train workers")
    p.add_argument("--micro-batch", type=int, default=1,
                   help="notes per worker per forward (the rest is gradient accumulation)")  # fmt: skip
    p.add_argument("--lora-r", type=int, default=16)
    p.add_argument("--lr-smollm2", type=float, default=1e-3)
    p.add_argument("--lr-tiny", type=float, default=3e-3)
    p.add_argument("--quantization", default="none", choices=["none", "nf4"])
    p.add_argument("--dtype", default=None, help="model dtype (float32 on CPU, bfloat16 on GPU)")
    p.add_argument("--max-prompt-tokens", type=int, default=1280)
    p.add_argument("--max-new-tokens", type=int, default=8, help="reason tokens generated")
    p.add_argument("--no-zero-shot", dest="zero_shot", action="store_false")
    p.add_argument("--no-floor", dest="floor", action="store_false",
                   help="leave out the bag-of-words floor's curve")  # fmt: skip
    p.add_argument("--seed", type=int, default=11)
    p.add_argument("--save-steps", type=int, default=10, help="checkpoint interval (resume)")
    p.add_argument("--work", default="runs/learning", help="data and checkpoints (resumable)")
    p.add_argument("--output", "--out", dest="out", default=str(DEFAULT_OUT), metavar="FILE",
                   help="the JSON report")  # fmt: skip
    common.add_table_arg(p)
    args = p.parse_args(argv)
    if args.table:
        return common.print_table(p, args.out, lambda r: markdown_table(r, args.models))
    args.models = args.models or ["smollm2", "tiny"]
    args.dtype = args.dtype or ("bfloat16" if common.on_cuda() else "float32")
    args.learning_rate = {"smollm2": args.lr_smollm2, "tiny": args.lr_tiny}
    for m in args.models:
        args.learning_rate.setdefault(m, args.lr_smollm2)
    args.points = sorted(args.points)
    if args.batch_size % (args.workers * args.micro_batch):
        p.error("--batch-size must be a multiple of --workers x --micro-batch")
    if problem := check_points(args):
        p.error(problem)

    common.set_env()
    from discriminator.runtime import init_ray
    from discriminator.synth import write_splits

    data = Path(args.work) / "data"
    # Curves of other models or weights may be added to a report; anything else makes a new one.
    skip = ("out", "work", "models", "decision_weights", "learning_rate", "table", "floor")
    settings = {k: v for k, v in vars(args).items() if k not in skip}
    if problem := check_work(Path(args.work), settings):
        p.error(problem)
    out = Path(args.out)
    report: dict[str, Any] = {}
    if out.exists():
        report = json.loads(out.read_text())
        old = {k: v for k, v in report.get("settings", {}).items() if k not in skip}
        if old != settings:
            print(f"[learning] {out} was made with other settings; starting a new report")
            report = {}
    if not (data / "test.jsonl").exists():
        write_splits(data, args.notes, seed=args.seed, categories=args.categories,
                     length=args.length, kinds=args.kinds)  # fmt: skip
        test = (data / "test.jsonl").read_text().splitlines()[: args.test_notes]
        (data / "test.jsonl").write_text("\n".join(test) + "\n")
    train_n = len((data / "train.jsonl").read_text().splitlines())
    if args.points[-1] > train_n:  # the split moves readmissions together: check the real size
        p.error(f"--points up to {args.points[-1]} but the training split has {train_n} notes; "
                "raise --notes")  # fmt: skip
    report.setdefault("benchmark", "learning")
    report.setdefault("started", common.stamp())
    begin_run(report)
    report["settings"] = settings
    report.setdefault("learning_rates", {}).update({m: args.learning_rate[m] for m in args.models})
    prov = common.provenance()
    for key in ("device", "versions"):  # an older layout's; they now live in this_run
        report.pop(key, None)
    report["this_run"] = {**prov, "device": common.device_info()}
    report.setdefault("curves", {})
    init_ray()
    t0 = time.time()
    if args.floor:
        run_floor(args, report, prov)
    for model in args.models:
        for weight in args.decision_weights:
            run_curve(args, report, model, weight, prov)
    report["finished"] = common.stamp()
    report["seconds_this_run"] = round(time.time() - t0)
    _save(out, report)
    print(f"[learning] written {out} and {out.with_suffix('.png')}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
