"""Evaluate scorer output against labelled notes: metrics.json, PNG plots and report.html.

Usage (local, or on the cluster through Ray's job API; no Ray objects are needed):

    python -m ray_jobs.evaluate --labels data/eval.jsonl --scores runs/scores --output runs/eval
    ray job submit --runtime-env cluster/runtime-env.yaml -- python -m ray_jobs.evaluate \
        --labels /shared/eval.jsonl --scores /shared/scores --output /shared/eval --threshold 0.3

Under `ray job submit` the code is uploaded, never notes: every path is absolute, on storage
the head node sees; a relative one stops the job.

Precedence: defaults < --config YAML < --labels/--scores/--output/--threshold/... < --set
(any EvalConfig field, e.g. --set bootstrap=200); a bad value stops the job with one line
`config error: ...`. Labels in other columns (MIMIC-style): --text-column text
--id-column note_id.
Without --threshold the scorer's verdicts decide. The report shows the training curves from the
adapter's metrics.json (--train-metrics, else the adapter named in the scores' _manifest.json)
and a few examples per category with their generated reasons; note text only with --show-text
or for synthetic labels. The output folder is created owner-only; stdout gets a short summary
(counts and metrics, no ids).
"""

from __future__ import annotations

import sys

from discriminator import console
from discriminator.config import ConfigError, EvalConfig, dump_yaml, load_config
from discriminator.console import local_log_dir
from discriminator.data import DataError
from discriminator.flags import (
    add_config_args,
    add_config_flag,
    add_verbose_arg,
    config_error,
    config_targets,
    flags_to_tree,
    job_parser,
)
from discriminator.metrics import EvalError, format_summary
from discriminator.runtime import UploadPathError, check_job_paths

FLAGS = {  # --flag: (EvalConfig field, help)
    "labels": ("labels", "labelled records (JSONL, CSV/TSV, .gz/.zst, parquet)"),
    "scores": ("scores", "folder of the scorer's parquet output"),
    "output": ("out", "output folder for metrics.json and report.html"),
    "threshold": ("threshold", "p_error >= T means error (unset: the scorer's verdicts)"),
    "text-column": ("text_column", "labels column with the note text"),
    "id-column": ("id_column", "labels column joined to the scores' note_id"),
    "train-metrics": (
        "train_metrics",
        "the adapter's metrics.json for the training curves (unset: <adapter>/metrics.json of "
        "the adapter named in the scores' _manifest.json, when there is one)",
    ),
    "target-recall": (
        "target_recall",
        "also report the threshold that reaches recall R (0-1) and the figures",
    ),
    "target-precision": (
        "target_precision",
        "also report the threshold that reaches precision P (0-1) and the figures",
    ),
    "baseline": (
        "baseline",
        "scores of a baseline on the same notes (e.g. score --base-only): side by side, with the "
        "paired difference and its 95%% interval",
    ),
    "group-column": (
        "group_column",
        "resample patients, not notes: the label field or kept score column with each note's "
        "patient (unset: patient_id, else subject_id, when present; 'note': notes)",
    ),
    "calibrate-on": (
        "calibrate_on",
        "choose the --target-* threshold on these scores (e.g. the eval split's) and report it "
        "on --scores (unset: re-chosen in every resample, reported out of bag)",
    ),
    "calibrate-labels": ("calibrate_labels", "labels of --calibrate-on (unset: --labels)"),
    "bootstrap": ("bootstrap", "resamples behind the 95%% intervals (0: none)"),
}
KWARGS: dict[str, dict] = {
    "labels": {"metavar": "PATH"},
    "scores": {"metavar": "DIR"},
    "output": {"metavar": "DIR"},
    "threshold": {"metavar": "T"},
    "text-column": {"metavar": "NAME"},
    "id-column": {"metavar": "NAME"},
    "train-metrics": {"metavar": "PATH"},
    "target-recall": {"metavar": "R"},
    "target-precision": {"metavar": "P"},
    "baseline": {"metavar": "SCORES_DIR"},
    "group-column": {"metavar": "NAME"},
    "calibrate-on": {"metavar": "SCORES_DIR"},
    "calibrate-labels": {"metavar": "PATH"},
    "bootstrap": {"metavar": "N"},
}
ALIASES = {"output": ["--out"]}


def parse_args(argv: list[str] | None = None) -> tuple[EvalConfig, bool, bool]:
    parser = job_parser("python -m ray_jobs.evaluate", __doc__)
    add_config_args(parser, "bootstrap=200")
    for flag, (target, text) in FLAGS.items():
        names = [f"--{flag}", *ALIASES.get(flag, [])]
        add_config_flag(parser, EvalConfig, target, *names, help=text, **KWARGS[flag])
    add_verbose_arg(parser)
    add_config_flag(
        parser, EvalConfig, "show_text", "--show-text", action="store_const", const=True,
        help="show note text (PHI) in the report's examples table; synthetic labels always do",
    )  # fmt: skip
    args = parser.parse_args(argv)
    extra = flags_to_tree(args, config_targets(parser))
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
        return config_error(e)
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
            text_column=cfg.text_column,
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
