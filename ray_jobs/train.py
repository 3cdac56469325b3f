"""Fine-tune the discriminator: QLoRA SFT of Llama-3.1-8B-Instruct on Ray Train.

On this machine (starts a local Ray instance):
    python -m ray_jobs.train --config ray_jobs/configs/smoke.yaml
On a Ray cluster (the code is uploaded, never notes: data, storage and output are absolute
paths on storage every node sees; run.num_workers auto trains on every GPU of the cluster):
    ray job submit --runtime-env cluster/runtime-env.yaml -- python -m ray_jobs.train \\
        --config ray_jobs/configs/llama31_8b_qlora.yaml --set data.train_path=/shared/train.jsonl \\
        --set data.eval_path=/shared/eval.jsonl --set run.storage_path=/shared/ray \\
        --output /shared/llama3-discriminator
The seed's flags work and land in the same config (its snake_case spellings, --train_data,
--output_dir, ..., are accepted too):
    python -m ray_jobs.train --train-data train.jsonl --eval-data eval.jsonl \\
        --output ./llama3-discriminator-v2 --num-train-epochs 4 --learning-rate 1e-4 \\
        --per-device-train-batch-size 1 --gradient-accumulation-steps 16
Any other field: --set lora.r=32 (MIMIC-style columns: --set data.text_column=text
--set data.id_column=note_id). A bad value stops the job with one line `config error: ...`.
Re-running with the same run.name and run.storage_path resumes from the last checkpoint.
"""

from __future__ import annotations

import sys

from discriminator import console
from discriminator.config import ConfigError, TrainConfig, dump_yaml, load_config
from discriminator.console import local_log_dir
from discriminator.data import DataError
from discriminator.flags import (
    add_config_args,
    add_seed_train_flags,
    add_verbose_arg,
    config_error,
    job_parser,
    seed_flags_to_tree,
)
from discriminator.runtime import PrivacyError, UploadPathError, check_job_paths, init_ray


def main(argv: list[str] | None = None) -> int:
    parser = job_parser("python -m ray_jobs.train", __doc__)
    add_config_args(parser, "lora.r=32")
    add_seed_train_flags(parser)
    parser.add_argument("--merge", action="store_true", help="also export a merged bf16 model")
    add_verbose_arg(parser)
    args = parser.parse_args(argv)
    try:
        cfg = load_config(TrainConfig, args.config, args.overrides, seed_flags_to_tree(args))
    except ConfigError as e:
        return config_error(e)
    cfg.run.merge = cfg.run.merge or args.merge
    if args.print_config:
        print(dump_yaml(cfg), end="")
        return 0
    try:  # under `ray job submit`: nothing written into, or read from, the uploaded code
        check_job_paths(
            {"run.output_dir": cfg.run.output_dir, "run.storage_path": cfg.run.storage_path},
            {"data.train_path": cfg.data.train_path, "data.eval_path": cfg.data.eval_path},
        )
    except UploadPathError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2

    log_dir = local_log_dir(f"{cfg.run.storage_path}/{cfg.run.name}/logs")
    with console.capture("train", log_dir, args.verbose):
        return _run(cfg)


def _run(cfg: TrainConfig) -> int:
    from discriminator import training
    from discriminator.modeling import ModelNotFound, check_model, load_tokenizer

    try:  # settings first: a bad value is said before the model and the data are read
        training.check_settings(cfg)
    except ValueError as e:
        return config_error(e)
    try:  # validated before Ray starts: a missing model or bad data never reaches a worker
        console.stage("checking the base model and the data")
        check_model(cfg.model.name_or_path)
        data = training.prepare_data(cfg, load_tokenizer(cfg.model.name_or_path))
    except (DataError, ModelNotFound) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    s = data.stats
    print(
        f"[train] data: {s['train_records']} train / {s['eval_records']} eval notes "
        f"({s['train_skipped_invalid'] + s['eval_skipped_invalid']} invalid skipped, "
        f"{s['train_truncated'] + s['eval_truncated']} truncated, {s['duplicates']} duplicates); "
        f"longest example {data.max_length} tokens",
        flush=True,
    )
    console.stage("starting Ray")
    try:
        init_ray()
    except PrivacyError as e:  # a token file or temp folder other users could reach
        print(f"error: {e}", file=sys.stderr)
        return 2
    try:  # run.num_workers auto: every GPU of the cluster (one worker per node without GPUs)
        cfg, plan = training.resolve_workers(cfg)
    except ValueError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    print(f"[train] {plan.line}", flush=True)
    if plan.warning:
        print(f"[train] {plan.warning}", flush=True)
    console.stage(plan.line)
    result = training.build_trainer(cfg, data).fit()
    console.stage("exporting the adapter")
    out = training.export_adapter(
        cfg, training.latest_checkpoint_dir(result), cfg.run.output_dir, result.metrics, data.stats
    )
    print(f"[train] adapter written to {out}", flush=True)
    if cfg.run.merge:
        console.stage("merging the adapter into the base")
        merged = training.merge_adapter(cfg.model.name_or_path, out, f"{out}-merged")
        print(f"[train] merged model written to {merged}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
