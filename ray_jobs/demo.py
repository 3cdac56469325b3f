"""The embedded default: the whole pipeline on this machine, no GPU, no cluster, no downloads.

    make demo                      # or: python -m ray_jobs.demo [--skip-tune] [--output demo]

Stages, each the same command the README lists for running it alone:
  1. discriminator synth           synthetic labelled discharge notes (train/eval/test)
  2. python -m ray_jobs.train      QLoRA on the tiny offline model, local Ray, 2 CPU workers, 4-bit
  3. python -m ray_jobs.tune       a small Ray Tune sweep (skip with --skip-tune)
  4. python -m ray_jobs.score      Ray Data scoring of the held-out split to parquet
  5. python -m ray_jobs.score      the same notes scored by the base model alone (--base-only)
  6. discriminator baseline        the bag-of-words floor (TF-IDF + logistic regression) trained
                                   on the training split, the same notes scored
  7. python -m ray_jobs.evaluate   metrics.json + report.html, with 95% intervals and the
                                   adapter's gain over its base (--baseline)
  8. python -m ray_jobs.evaluate   the adapter beside the floor (OUT/report-floor)

Where the time went is printed at the end and written to OUT/summary.json: each stage's wall time
and, inside each job, its phases (imports and settings, building the tiny base on first use,
starting Ray, training / sweeping / scoring, shutting down).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

from discriminator.console import TIMINGS_ENV
from discriminator.flags import add_output_arg, job_parser
from discriminator.runtime import set_env_defaults

DEMO_CONFIG = "ray_jobs/configs/demo.yaml"
# The demo's data mix: the error kinds the tiny base learns within the demo's budget (measured;
# README "The local demo"). `--kinds` or `--categories` choose others.
DEMO_NOTES = 1000
DEMO_KINDS = ["truncated_note"]
# The sweep shows Tune at work (trials side by side, ASHA, the best adapter kept), not a search:
# two trials, run at once on the 2 CPUs.
DEMO_TRIALS = 2


def _stage(n: int, total: int, title: str, cmd: list[str], timings: Path) -> dict:
    """Run one stage; returns its timings: the wall time, and the phases the job itself recorded
    (console.TIMINGS_ENV), preceded by the process's start (before the job's console begins)."""
    print(f"\n==> [{n}/{total}] {title}\n    $ {' '.join(cmd)}", flush=True)
    timings.unlink(missing_ok=True)
    t0 = time.time()
    proc = subprocess.run(cmd, env={**os.environ, TIMINGS_ENV: str(timings)})
    wall = time.time() - t0
    if proc.returncode != 0:
        print(f"demo: stage '{title}' failed (exit {proc.returncode})", file=sys.stderr)
        sys.exit(proc.returncode)
    print(f"    done in {wall:,.0f}s", flush=True)
    phases = []
    if timings.exists():
        job = json.loads(timings.read_text())
        phases = [{"phase": "process start", "seconds": round(job["started"] - t0, 2)}]
        phases += [p for p in job["phases"] if p["seconds"] >= 0.05]
        phases.append({"phase": "exit", "seconds": round(t0 + wall - job["ended"], 2)})
    return {"stage": title, "seconds": round(wall, 2), "phases": phases}


def _time_line(stages: list[dict]) -> str:
    """`train 150s (building the tiny base model 64s, starting Ray 6s), ...`: each stage and its
    phases of 5 s or more."""
    parts = []
    for st in stages:
        big = [f"{p['phase']} {p['seconds']:,.0f}s" for p in st["phases"] if p["seconds"] >= 5]
        parts.append(
            f"{st['short']} {st['seconds']:,.0f}s" + (f" ({', '.join(big)})" if big else "")
        )
    return "; ".join(parts)


def main(argv: list[str] | None = None) -> int:
    parser = job_parser("python -m ray_jobs.demo", __doc__)
    add_output_arg(
        parser, "folder for data, runs and reports", "--out", default="demo", metavar="DIR"
    )
    parser.add_argument("--skip-tune", action="store_true", help="leave out the Tune sweep")
    parser.add_argument(
        "--notes", type=int, default=DEMO_NOTES, help="synthetic notes (train/eval/test 80/10/10)"
    )
    parser.add_argument(
        "--kinds",
        nargs="+",
        default=None,
        help=f"error kinds in the synthetic notes (default: {' '.join(DEMO_KINDS)})",
    )
    parser.add_argument(
        "--categories",
        nargs="+",
        default=None,
        help="error categories instead of kinds (all their kinds; e.g. all five categories)",
    )
    parser.add_argument(
        "-v",
        "--verbose",
        action="store_true",
        help="show each stage's library output too (it always goes to the stage's log file)",
    )
    args = parser.parse_args(argv)
    if args.kinds is None and args.categories is None:
        args.kinds = DEMO_KINDS
    mix = ["--kinds", *args.kinds] if args.kinds else []
    mix += ["--categories", *args.categories] if args.categories else []
    set_env_defaults()
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    out = Path(args.output).resolve()
    data, runs = out / "data", out / "runs"
    py = sys.executable
    t0 = time.time()
    n = str(args.notes)

    stages: list[tuple[str, list[str]]] = [
        (
            "synthetic notes",
            [str(Path(py).parent / "discriminator"), "synth", "--n", n, "--seed", "7", "--length", "short",
             *mix, "--output", str(data)],
        ),
        (
            "QLoRA fine-tune on Ray Train",
            [py, "-m", "ray_jobs.train", "--config", DEMO_CONFIG,
             "--set", f"data.train_path={data / 'train.jsonl'}",
             "--set", f"data.eval_path={data / 'eval.jsonl'}",
             "--set", f"run.storage_path={runs}", "--set", f"run.output_dir={out / 'adapter'}"],
        ),
    ]  # fmt: skip
    if not args.skip_tune:
        stages.append(
            (
                "Ray Tune mini-sweep",
                [py, "-m", "ray_jobs.tune", "--config", "ray_jobs/configs/smoke_sweep.yaml",
                 "--set", f"run.storage_path={runs}", "--set", f"search.num_samples={DEMO_TRIALS}"],
            )
        )  # fmt: skip
    stages += [
        (
            "Ray Data scoring of the held-out notes",
            [py, "-m", "ray_jobs.score", "--config", "ray_jobs/configs/smoke_score.yaml",
             "--adapter", str(out / "adapter"), "--input", str(data / "test.jsonl"),
             "--output", str(out / "scores")],
        ),
        (
            "the base model alone on the same notes (zero-shot baseline)",
            [py, "-m", "ray_jobs.score", "--config", "ray_jobs/configs/smoke_score.yaml",
             "--base-only", "--input", str(data / "test.jsonl"),
             "--output", str(out / "scores-base"), "--generate", "never"],
        ),
        (
            "the bag-of-words floor on the same notes",
            [str(Path(py).parent / "discriminator"), "baseline",
             "--train", str(data / "train.jsonl"), "--input", str(data / "test.jsonl"),
             "--output", str(out / "scores-floor")],
        ),
        (
            "evaluation report",
            [py, "-m", "ray_jobs.evaluate", "--labels", str(data / "test.jsonl"),
             "--scores", str(out / "scores"), "--baseline", str(out / "scores-base"),
             "--output", str(out / "report")],
        ),
        (
            "the adapter beside the floor",
            [py, "-m", "ray_jobs.evaluate", "--labels", str(data / "test.jsonl"),
             "--scores", str(out / "scores"), "--baseline", str(out / "scores-floor"),
             "--output", str(out / "report-floor")],
        ),
    ]  # fmt: skip
    from discriminator import modeling

    cache = "warm" if (modeling.cache_dir() / f"tiny-{modeling.tiny_key()}").exists() else "cold"
    total, timed = len(stages), []
    (out / "timings").mkdir(parents=True, exist_ok=True)
    for i, (title, cmd) in enumerate(stages, start=1):
        if args.verbose and "-m" in cmd:
            cmd = [*cmd, "--verbose"]
        short = cmd[cmd.index("-m") + 1].split(".")[-1] if "-m" in cmd else cmd[1]
        short += "-base" if "--base-only" in cmd else ""
        short += "-floor" if str(out / "report-floor") in cmd else ""
        st = _stage(i, total, title, cmd, out / "timings" / f"{i}-{short}.json")
        timed.append({"short": short, **st})

    from discriminator.files import write_atomic
    from discriminator.metrics import figure_text
    from discriminator.numbers import fmt

    metrics = json.loads((out / "report" / "metrics.json").read_text())
    floor = json.loads((out / "report-floor" / "metrics.json").read_text()).get("baseline") or {}
    seconds = time.time() - t0
    summary = {
        "seconds": round(seconds, 1),
        "model_cache": cache,  # cold: the tiny base was built (and pretrained) in this run
        "notes": args.notes,
        "stages": timed,
        "metrics": {k: metrics.get(k) for k in ("balanced_accuracy", "auroc", "category_accuracy")},
        "baseline_auroc": (metrics.get("baseline") or {}).get("baseline_auroc"),
        "floor_auroc": floor.get("baseline_auroc"),
        "bootstrap_unit": (metrics.get("intervals") or {}).get("bootstrap_unit"),
    }
    write_atomic(out / "summary.json", json.dumps(summary, indent=2) + "\n")
    print(f"\nDemo finished in {seconds:,.0f}s ({cache} model cache)")
    print(f"  time:     {_time_line(timed)}")
    print(f"  timings:  {out / 'summary.json'}")
    print(f"  adapter:  {out / 'adapter'}")
    print(f"  scores:   {out / 'scores'}")
    print(f"  report:   {out / 'report' / 'report.html'}")

    print(
        f"  balanced accuracy {figure_text(metrics, 'balanced_accuracy')}  F1 {fmt(metrics.get('f1'))}"
        f"  AUROC {figure_text(metrics, 'auroc')}  category accuracy "
        f"{figure_text(metrics, 'category_accuracy')}  (95% intervals, resampled by "
        f"{(metrics.get('intervals') or {}).get('bootstrap_unit', 'note')})"
    )
    if base := metrics.get("baseline"):
        print(
            f"  the base model alone: AUROC {fmt(base['baseline_auroc'])}; the adapter's gain "
            f"{figure_text(base, 'auroc_diff')} AUROC, {figure_text(base, 'balanced_accuracy_diff')} "
            "balanced accuracy"
        )
    if floor:
        print(
            f"  the bag-of-words floor: AUROC {fmt(floor.get('baseline_auroc'))}; the adapter's "
            f"gain {figure_text(floor, 'auroc_diff')} AUROC ({out / 'report-floor'})"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
