"""Score note archives with a fine-tuned adapter: Ray Data -> parquet (+ _manifest.json).

    ray job submit --working-dir . -- python -m ray_jobs.score --adapter DIR --input PATH --output DIR

PATH: JSONL or parquet files, folders or globs, local or URIs (file://, s3://, ...); several may be
given. Every input row gives one output row (status ok / invalid_input / failed); re-running with
the same --output finishes only the missing chunks. CPU smoke run (tiny model in runs/tiny):
    python -m ray_jobs.score --config ray_jobs/configs/smoke_score.yaml --adapter A --input F --output O
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys

os.environ.setdefault("RAY_TRAIN_ENABLE_PRINT_PATCH", "0")
os.environ.setdefault("HF_HUB_OFFLINE", "1")

from discriminator.config import ConfigError, ScoreConfig, add_config_args, dump_yaml, load_config

FLAGS = {  # --flag: (config field, help)
    "adapter": ("adapter", "PEFT adapter directory (safetensors), e.g. the train job's output"),
    "input": ("io.input", "JSONL/parquet files, folders or globs (local paths or URIs)"),
    "output": ("io.output", "output directory; an existing one is resumed"),
    "text-column": ("io.text_column", "column with the note text (default: note)"),
    "id-column": ("io.id_column", "column with the note id (default: id; else file:line)"),
    "generate": ("scoring.generate", "generate the reason for all / none / notes >= threshold"),
    "threshold": ("scoring.threshold", "verdict is error when p_error >= T (default 0.5)"),
    "keep-text": ("io.keep_text", "copy note text into the output (off: notes are PHI)"),
}
KWARGS: dict[str, dict] = {
    "input": {"nargs": "+"},
    "keep-text": {"action": "store_true", "default": None},
    "generate": {"choices": ["always", "never", "threshold"]},
    "threshold": {"type": float},
}


def parse_args(argv: list[str] | None) -> tuple[argparse.Namespace, dict]:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    add_config_args(p)
    for flag, (target, text) in FLAGS.items():
        p.add_argument(f"--{flag}", help=f"{text} [{target}]", **KWARGS.get(flag, {}))
    args = p.parse_args(argv)
    extra: dict = {}
    for flag, (target, _) in FLAGS.items():
        if (value := getattr(args, flag.replace("-", "_"))) is not None:
            *heads, leaf = target.split(".")
            node = extra
            for h in heads:
                node = node.setdefault(h, {})
            node[leaf] = value
    return args, extra


def main(argv: list[str] | None = None) -> int:
    args, extra = parse_args(argv)
    try:
        cfg = load_config(ScoreConfig, args.config, args.overrides, extra)
    except ConfigError as e:
        print(f"config error: {e}", file=sys.stderr)
        return 2
    if args.print_config:
        print(dump_yaml(cfg), end="")
        return 0
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    import ray

    from discriminator.scoring import ScoreError, run_scoring

    ray.init()  # RAY_ADDRESS if set, else a local cluster
    try:
        manifest = run_scoring(cfg)
    except ScoreError as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    keys = ("rows", "counts", "duplicate_note_ids", "this_run")
    print(json.dumps({"output": cfg.io.output, **{k: manifest[k] for k in keys}}, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
