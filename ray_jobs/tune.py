"""Search LoRA rank, alpha and learning rate with Ray Tune (ASHA early stopping on eval loss).

On this machine (starts a local Ray instance):
    python -m ray_jobs.tune --config ray_jobs/configs/smoke_sweep.yaml
On a Ray cluster (the code is uploaded, never notes: data and storage are absolute paths on
storage every node sees; one worker per trial and as many trials at a time as the GPUs hold):
    ray job submit --runtime-env cluster/runtime-env.yaml -- python -m ray_jobs.tune \\
        --config ray_jobs/configs/llama31_8b_sweep.yaml --set run.storage_path=/shared/ray \\
        --set train.data.train_path=/shared/train.jsonl --set train.data.eval_path=/shared/eval.jsonl
Outputs go to <run.storage_path>/<run.name>/: trials.csv, summary.json, best.yaml (train config of
the best trial), best-adapter/, sweep.png. Re-running the same command resumes an interrupted
sweep; finished trials are not run again. Any field: --set search.num_samples=8 (the trials'
training config under train., e.g. --set train.lora.dropout=0.1); a bad value stops the job with
one line `config error: ...`.
"""

from __future__ import annotations

import sys

from discriminator import console
from discriminator.config import ConfigError, TuneConfig, dump_yaml, load_config
from discriminator.console import local_log_dir
from discriminator.data import DataError
from discriminator.flags import add_config_args, add_verbose_arg, config_error, job_parser
from discriminator.runtime import UploadPathError, check_job_paths


def main(argv: list[str] | None = None) -> int:
    parser = job_parser("python -m ray_jobs.tune", __doc__)
    add_config_args(parser, "search.num_samples=8")
    add_verbose_arg(parser)
    args = parser.parse_args(argv)
    try:
        cfg = load_config(TuneConfig, args.config, args.overrides)
    except ConfigError as e:
        return config_error(e)
    if args.print_config:
        print(dump_yaml(cfg), end="")
        return 0
    try:  # under `ray job submit`: nothing written into, or read from, the uploaded code
        check_job_paths(
            {"run.storage_path": cfg.run.storage_path},
            {"train.data.train_path": cfg.train.data.train_path,
             "train.data.eval_path": cfg.train.data.eval_path},
        )  # fmt: skip
    except UploadPathError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2

    log_dir = local_log_dir(f"{cfg.run.storage_path}/{cfg.run.name}/logs")
    with console.capture("tune", log_dir, args.verbose):
        return _run(cfg)


def _run(cfg: TuneConfig) -> int:
    from discriminator import training, tuning
    from discriminator.modeling import ModelNotFound, check_model, load_tokenizer

    try:  # everything checked before Ray starts: a bad config or bad data runs no trial
        console.stage("checking the sweep, the base model and the data")
        tuning.check_sweep_config(cfg)
        tuning.check_restore_safe(tuning.sweep_dir(cfg))
        check_model(cfg.train.model.name_or_path)
        data = training.prepare_data(cfg.train, load_tokenizer(cfg.train.model.name_or_path))
    except (ValueError, DataError, ModelNotFound) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    s = data.stats
    print(
        f"[tune] data: {s['train_records']} train / {s['eval_records']} eval notes; "
        f"longest example {data.max_length} tokens",
        flush=True,
    )
    console.stage("starting Ray")
    try:
        tuning.init_ray_for_sweep()
    except ValueError as e:  # PrivacyError: a token file or temp folder others could reach
        print(f"error: {e}", file=sys.stderr)
        return 2
    console.stage("sweeping")
    outcome = tuning.run_sweep(cfg, data)
    return 0 if outcome.complete else 130


if __name__ == "__main__":
    sys.exit(main())
