"""Evaluate scorer output against labelled notes: metrics.json, PNG plots and report.html.

Usage (local, or on the cluster through Ray's job API; no Ray objects are needed):

    python -m ray_jobs.evaluate --labels data/eval.jsonl --scores runs/scores --out runs/eval
    ray job submit --runtime-env cluster/runtime-env.yaml -- python -m ray_jobs.evaluate \
        --labels /shared/eval.jsonl --scores /shared/scores --out /shared/eval --threshold 0.3

Under `ray job submit` the code is uploaded, never notes: every path is absolute, on storage
the head node sees; a relative one stops the job.

Precedence: defaults < --config YAML < --labels/--scores/--out/--threshold/... < --set key=value.
Without --threshold the scorer's verdicts decide. The report shows the training curves from the
adapter's metrics.json (--train-metrics, else the adapter named in the scores' _manifest.json)
and a few examples per category with their generated reasons; note text only with --show-text
or for synthetic labels. The output folder is created owner-only; stdout gets a short summary
(counts and metrics, no ids).
"""

from __future__ import annotations

import argparse
import sys

from discriminator import console
from discriminator.config import (
    ConfigError,
    EvalConfig,
    add_config_args,
    add_verbose_arg,
    dump_yaml,
    load_config,
)
from discriminator.console import local_log_dir
from discriminator.data import DataError
from discriminator.metrics import EvalError, format_summary
from discriminator.runtime import UploadPathError, check_job_paths


def parse_args(argv: list[str] | None = None) -> tuple[EvalConfig, bool, bool]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_config_args(parser)
    parser.add_argument("--labels", help="labelled records (JSONL or parquet)")
    parser.add_argument("--scores", help="folder of the scorer's parquet output")
    parser.add_argument("--out", help="output folder for metrics.json and report.html")
    parser.add_argument("--threshold", type=float, help="p_error >= T means error")
    parser.add_argument(
        "--train-metrics",
        metavar="PATH",
        help="the adapter's metrics.json for the training curves (default: <adapter>/metrics.json "
        "of the adapter named in the scores' _manifest.json, when there is one)",
    )
    parser.add_argument(
        "--target-recall",
        type=float,
        metavar="R",
        help="also report the threshold that reaches recall R (0-1) and the figures there",
    )
    parser.add_argument(
        "--target-precision",
        type=float,
        metavar="P",
        help="also report the threshold that reaches precision P (0-1) and the figures there",
    )
    parser.add_argument(
        "--baseline",
        metavar="SCORES_DIR",
        help="scores of a baseline on the same notes (e.g. score --base-only): side by side, "
        "with the paired difference and its 95%% interval",
    )
    parser.add_argument(
        "--group-column",
        metavar="NAME",
        help="resample patients, not notes: the label field or kept score column with each "
        "note's patient (default: patient_id, else subject_id, when present; 'note': notes)",
    )
    parser.add_argument(
        "--calibrate-on",
        metavar="SCORES_DIR",
        help="choose the --target-* threshold on these scores (e.g. the eval split's) and report "
        "it on --scores (default: re-chosen in every resample, reported out of bag)",
    )
    parser.add_argument(
        "--calibrate-labels", metavar="PATH", help="labels of --calibrate-on (default: --labels)"
    )
    parser.add_argument(
        "--bootstrap",
        type=int,
        metavar="N",
        help="resamples behind the 95%% intervals (default 1000; 0: none)",
    )
    add_verbose_arg(parser)
    parser.add_argument(
        "--show-text",
        action="store_true",
        default=None,
        help="show note text (PHI) in the report's examples table; synthetic labels always do",
    )
    args = parser.parse_args(argv)
    keys = ("labels", "scores", "out", "threshold", "train_metrics", "show_text",
            "target_recall", "target_precision", "baseline", "bootstrap",
            "group_column", "calibrate_on", "calibrate_labels")  # fmt: skip
    flags = {k: getattr(args, k) for k in keys}
    extra = {k: v for k, v in flags.items() if v is not None}
    cfg = load_config(EvalConfig, args.config, args.overrides, extra)
    for name in ("target_recall", "target_precision"):
        value = getattr(cfg, name)
        if value is not None and not 0 < value <= 1:
            raise ConfigError(f"--{name.replace('_', '-')} must be in (0, 1] (got {value})")
    if cfg.target_recall is not None and cfg.target_precision is not None:
        raise ConfigError("give --target-recall or --target-precision, not both")
    if cfg.bootstrap < 0:
        raise ConfigError(f"--bootstrap must be 0 or more (got {cfg.bootstrap})")
    return cfg, args.print_config, args.verbose


def main(argv: list[str] | None = None) -> int:
    try:
        cfg, print_only, verbose = parse_args(argv)
    except ConfigError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    if print_only:
        print(dump_yaml(cfg), end="")
        return 0
    try:  # under `ray job submit`: nothing written into, or read from, the uploaded code
        check_job_paths(
            {"out": cfg.out},
            {"labels": cfg.labels, "scores": cfg.scores, "baseline": cfg.baseline,
             "train_metrics": cfg.train_metrics, "calibrate_on": cfg.calibrate_on,
             "calibrate_labels": cfg.calibrate_labels},
        )  # fmt: skip
    except UploadPathError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    with console.capture("eval", local_log_dir(f"{cfg.out}/logs"), verbose):
        return _run(cfg)


def _run(cfg: EvalConfig) -> int:
    try:
        from discriminator.report import evaluate

        metrics = evaluate(
            cfg.labels,
            cfg.scores,
            cfg.out,
            cfg.threshold,
            cfg.id_column,
            train_metrics=cfg.train_metrics,
            show_text=cfg.show_text,
            n_boot=cfg.bootstrap,
            target_recall=cfg.target_recall,
            target_precision=cfg.target_precision,
            baseline=cfg.baseline,
            group_column=cfg.group_column,
            calibrate_on=cfg.calibrate_on,
            calibrate_labels=cfg.calibrate_labels,
        )
    except (ConfigError, DataError, EvalError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    for line in format_summary(metrics).splitlines():
        console.say(f"[eval] {line}")
    console.say(f"[eval] report: {cfg.out}/report.html")
    return 0


if __name__ == "__main__":
    sys.exit(main())
