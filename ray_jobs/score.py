"""Score note archives with a fine-tuned adapter: Ray Data -> parquet (+ _manifest.json).

    ray job submit --runtime-env cluster/runtime-env.yaml -- python -m ray_jobs.score \\
        --adapter /shared/ADAPTER --input /shared/PATH --output /shared/OUT

Under `ray job submit` the code is uploaded, never notes: --adapter, --input and --output are
absolute paths (or URIs) on storage every node sees; a relative one stops the job.

PATH: JSONL, CSV or TSV files (plain, .gz or .zst) or parquet; files, folders or globs, local or
URIs (file://, s3://, ...); several may be given. Every input row gives one output row (status ok /
invalid_input / failed) with its source file and row number. The manifest records every input
file; re-running with the same --output finishes the missing chunks of the same inputs, --update
also scores new files and rows appended since, --retry-failed re-scores the failed rows.
MIMIC-IV-Note:
    python -m ray_jobs.score --adapter A --input note/discharge.csv.gz --output O \\
        --text-column text --id-column note_id --keep-columns subject_id,hadm_id
The base model, its quantization and the prompt version come from the adapter's discriminator.json
(set model.name_or_path only to point at a local copy of that base). Any other field: --set
scoring.batch_tokens=16384; a bad value stops the job with one line `config error: ...`. CPU smoke run:
    python -m ray_jobs.score --config ray_jobs/configs/smoke_score.yaml --adapter A --input F --output O
The console shows the job's progress; library output goes to <output>/_logs/ (-v shows it too).
"""

from __future__ import annotations

import argparse
import os
import sys

os.environ.setdefault("RAY_TRAIN_ENABLE_PRINT_PATCH", "0")
os.environ.setdefault("HF_HUB_OFFLINE", "1")

from discriminator import console
from discriminator.config import ConfigError, ScoreConfig, config_tree, dump_yaml, from_dict
from discriminator.console import local_log_dir
from discriminator.flags import (
    add_config_args,
    add_config_flag,
    add_verbose_arg,
    config_error,
    config_targets,
    flags_to_tree,
    job_parser,
)
from discriminator.runtime import UploadPathError, check_job_paths, private_dir

FLAGS = {  # --flag: (config field, help)
    "adapter": ("adapter", "PEFT adapter directory (safetensors), e.g. the train job's output"),
    "input": (
        "io.input",
        "JSONL/CSV/TSV (.gz, .zst)/parquet files, folders or globs (paths or URIs)",
    ),
    "output": ("io.output", "output directory; an existing one is resumed"),
    "text-column": ("io.text_column", "column with the note text"),
    "id-column": ("io.id_column", "column with the note id (rows without one: <file>:<row>)"),
    "generate": ("scoring.generate", "generate the reason for all / none / notes >= threshold"),
    "threshold": ("scoring.threshold", "verdict is error when p_error >= T"),
    "keep-text": ("io.keep_text", "copy note text into the output (off: notes are PHI)"),
    "keep-columns": ("io.keep_columns", "input columns copied into the output, e.g. a,b"),
    "retry-failed": ("io.retry_failed", "re-score rows whose status is failed, in place"),
    "update": ("io.update", "score new files and appended rows into an existing --output"),
}
KWARGS: dict[str, dict] = {
    "input": {"nargs": "+", "metavar": "PATH"},
    "output": {"metavar": "DIR"},
    "adapter": {"metavar": "DIR"},
    "keep-text": {"action": "store_const", "const": True},
    "retry-failed": {"action": "store_const", "const": True},
    "update": {"action": "store_const", "const": True},
    "text-column": {"metavar": "NAME"},
    "id-column": {"metavar": "NAME"},
    "keep-columns": {
        "type": lambda v: [c.strip() for c in v.split(",") if c.strip()],
        "metavar": "A,B",
    },
    "generate": {"metavar": "{always,never,threshold}"},
    "threshold": {"metavar": "T"},
}


def parse_args(argv: list[str] | None) -> tuple[argparse.Namespace, dict]:
    p = job_parser("python -m ray_jobs.score", __doc__)
    add_config_args(p, "scoring.batch_tokens=16384")
    add_verbose_arg(p)
    for flag, (target, text) in FLAGS.items():
        add_config_flag(p, ScoreConfig, target, f"--{flag}", help=text, **KWARGS.get(flag, {}))
    p.add_argument(
        "--base-only",
        action="store_true",
        help="score with the base model alone (zero-shot, no adapter, whatever the config says): "
        "the baseline for `ray_jobs.evaluate --baseline`; base from --set model.name_or_path "
        "or the config",
    )
    args = p.parse_args(argv)
    if args.base_only and args.adapter:
        p.error("--base-only scores without an adapter: drop --adapter")
    return args, flags_to_tree(args, config_targets(p))


def main(argv: list[str] | None = None) -> int:
    args, extra = parse_args(argv)
    from discriminator.scoring import ScoreError, apply_adapter_provenance

    try:  # the base model, its quantization and the prompt version follow the adapter
        tree = config_tree(args.config, args.overrides, extra)
        if args.base_only:
            tree["adapter"] = None
        notes = apply_adapter_provenance(tree)
        cfg = from_dict(ScoreConfig, tree)
    except ConfigError as e:
        return config_error(e)
    except ScoreError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    if args.print_config:
        print(dump_yaml(cfg), end="")
        return 0
    try:  # under `ray job submit`: nothing written into, or read from, the uploaded code
        check_job_paths(
            {"io.output": cfg.io.output}, {"io.input": cfg.io.input, "adapter": cfg.adapter}
        )
    except UploadPathError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    if "://" not in cfg.io.output:
        private_dir(cfg.io.output)
    log_dir = local_log_dir(f"{cfg.io.output}/_logs")
    with console.capture("score", log_dir, args.verbose):
        for line in notes:
            print(f"[score] {line}", flush=True)
        return _run(cfg)


def _run(cfg: ScoreConfig) -> int:
    from discriminator.modeling import ModelNotFound, check_model
    from discriminator.runtime import PrivacyError, init_ray
    from discriminator.scoring import ScoreError, run_scoring

    adapter = f" + adapter {cfg.adapter}" if cfg.adapter else ", no adapter (zero-shot)"
    print(f"[score] base {cfg.model.name_or_path} ({cfg.model.quantization}){adapter}", flush=True)
    try:
        console.stage("checking the base model")
        check_model(cfg.model.name_or_path)
        console.stage("starting Ray")
        init_ray()  # RAY_ADDRESS if set, else a local cluster
        console.stage("scoring")
        manifest = run_scoring(cfg)
    except (ScoreError, ModelNotFound, PrivacyError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    c = manifest["counts"]
    run = manifest["this_run"]
    print(
        f"[score] {manifest['rows']:,} rows in {cfg.io.output} ("
        + ", ".join(f"{k} {v:,}" for k, v in c.items())
        + (f"; {manifest['truncated']:,} cut to the prompt budget" if manifest["truncated"] else "")
        + f"); this run: {run['rows']:,} rows in {run['seconds']:,.0f}s"
        + (f", {run['notes_per_s']:.1f} notes/s" if run["notes_per_s"] else ""),
        flush=True,
    )
    for what, n in run.get("slow_paths", {}).items():
        print(f"[score] warning: {n:,} {what}", flush=True)
    if dups := manifest["duplicate_note_ids"]["count"]:
        print(f"[score] warning: {dups} note_id value(s) occur more than once", flush=True)
    off = manifest["off_decision"]
    if off["over_half"]:
        print(
            f"[score] warning: {off['over_half']:,} of {off['rows']:,} scored note(s) put over half "
            f"of the answer's first-token probability on neither 'good' nor an error category "
            f"(mean {off['mean']:.3f}): the model may not have learned the answer format",
            flush=True,
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
