"""The embedded default: the whole pipeline on this machine, no GPU, no cluster, no downloads.

    make demo                      # or: python -m ray_jobs.demo [--skip-tune] [--out demo]

Stages, each the same command the README lists for running it alone:
  1. discriminator synth           synthetic labelled discharge notes (train/eval/test)
  2. python -m ray_jobs.train      QLoRA on the tiny offline model, local Ray, 2 CPU workers, 4-bit
  3. python -m ray_jobs.tune       a small Ray Tune sweep (skip with --skip-tune)
  4. python -m ray_jobs.score      Ray Data scoring of the held-out split to parquet
  5. python -m ray_jobs.score      the same notes scored by the base model alone (--base-only)
  6. python -m ray_jobs.evaluate   metrics.json + report.html, with 95% intervals and the
                                   adapter's gain over its base (--baseline)
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

from discriminator.runtime import set_env_defaults

DEMO_CONFIG = "ray_jobs/configs/demo.yaml"
# The demo's data mix: the error kinds the tiny base learns within the demo's budget (measured;
# README "The local demo"). `--kinds` or `--categories` choose others.
DEMO_NOTES = 1000
DEMO_KINDS = ["truncated_note"]


def _stage(n: int, total: int, title: str, cmd: list[str]) -> None:
    print(f"\n==> [{n}/{total}] {title}\n    $ {' '.join(cmd)}", flush=True)
    t0 = time.time()
    proc = subprocess.run(cmd)
    if proc.returncode != 0:
        print(f"demo: stage '{title}' failed (exit {proc.returncode})", file=sys.stderr)
        sys.exit(proc.returncode)
    print(f"    done in {time.time() - t0:,.0f}s", flush=True)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m ray_jobs.demo",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--out", default="demo", help="folder for data, runs and reports")
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
    out = Path(args.out).resolve()
    data, runs = out / "data", out / "runs"
    py = sys.executable
    t0 = time.time()
    n = str(args.notes)

    stages: list[tuple[str, list[str]]] = [
        (
            "synthetic notes",
            [str(Path(py).parent / "discriminator"), "synth", "--n", n, "--seed", "7", "--length", "short",
             *mix, "--out", str(data)],
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
                 "--set", f"run.storage_path={runs}"],
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
            "evaluation report",
            [py, "-m", "ray_jobs.evaluate", "--labels", str(data / "test.jsonl"),
             "--scores", str(out / "scores"), "--baseline", str(out / "scores-base"),
             "--out", str(out / "report")],
        ),
    ]  # fmt: skip
    total = len(stages)
    for i, (title, cmd) in enumerate(stages, start=1):
        if args.verbose and "-m" in cmd:
            cmd = [*cmd, "--verbose"]
        _stage(i, total, title, cmd)

    from discriminator.metrics import figure_text
    from discriminator.numbers import fmt

    metrics = json.loads((out / "report" / "metrics.json").read_text())
    print(f"\nDemo finished in {time.time() - t0:,.0f}s")
    print(f"  adapter:  {out / 'adapter'}")
    print(f"  scores:   {out / 'scores'}")
    print(f"  report:   {out / 'report' / 'report.html'}")

    print(
        f"  balanced accuracy {figure_text(metrics, 'balanced_accuracy')}  F1 {fmt(metrics.get('f1'))}"
        f"  AUROC {figure_text(metrics, 'auroc')}  category accuracy "
        f"{fmt(metrics.get('category_accuracy'))}  (95% intervals)"
    )
    if base := metrics.get("baseline"):
        print(
            f"  the base model alone: AUROC {fmt(base['baseline_auroc'])}; the adapter's gain "
            f"{figure_text(base, 'auroc_diff')} AUROC, {figure_text(base, 'balanced_accuracy_diff')} "
            "balanced accuracy"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
