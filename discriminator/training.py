"""QLoRA SFT on Ray Train: data preparation (driver), the per-worker loop, and the adapter export.

Flow: `prepare_data` (driver: validate, truncate, measure lengths; stops before any worker
starts when the data is invalid) -> `build_trainer` (a `TorchTrainer` whose workers run
`train_loop_per_worker`) -> `fit` -> `export_adapter` (driver: the final adapter directory).

The worker loop is flat: setup_model, setup_data, train (TRL `SFTTrainer`, loss on the completion
only), with `RayTrainReportCallback` turning every Hugging Face checkpoint into a Ray checkpoint,
so a restarted worker group resumes from the last one.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import socket
import subprocess
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from transformers import TrainerCallback

from discriminator import __version__, prompt
from discriminator.config import TrainConfig, dump_yaml, from_dict, to_dict
from discriminator.data import load_valid
from discriminator.runtime import loopback_torch_config, private_dir

ADAPTER_FILES = ("adapter_model.safetensors", "adapter_config.json")


_PROGRESS_TAG = "train"  # "trial <id>" inside a Tune trial: those lines go to the sweep's log


def log0(msg: str) -> None:
    """Print from rank 0 only (the driver shows worker output)."""
    try:
        import ray.train

        if ray.train.get_context().get_world_rank() != 0:
            return
    except Exception:
        pass
    print(f"[{_PROGRESS_TAG}] {msg}", flush=True)


# ---------------------------------------------------------------------------------------------
# Driver side: data


@dataclass
class PreparedData:
    train: list[dict[str, Any]]  # prompt-completion records (+ "id")
    eval: list[dict[str, Any]]
    max_length: int  # prompt + completion tokens of the longest example
    stats: dict[str, Any]


def _prepare_split(
    records: list[Any], tokenizer: Any, max_note_tokens: int
) -> tuple[list, int, int]:
    out, longest, truncated = [], 0, 0
    for rec in records:
        fitted = prompt.fit_note(rec.note, tokenizer, max_note_tokens)
        truncated += fitted.truncated
        pc = prompt.prompt_completion(fitted.note, rec.reason)
        full = tokenizer.apply_chat_template(pc["prompt"] + pc["completion"], tokenize=True)
        if hasattr(full, "keys"):
            full = full["input_ids"]
        longest = max(longest, len(full))
        out.append({"id": rec.id, **pc})
    return out, longest, truncated


def prepare_data(cfg: TrainConfig, tokenizer: Any) -> PreparedData:
    """Validate and format the data on the driver (raises `DataError` naming file:line)."""
    train = load_valid(cfg.data.train_path, cfg.data.on_invalid)
    eval_ = load_valid(cfg.data.eval_path, cfg.data.on_invalid) if cfg.data.eval_path else None
    train_recs = train.records[: cfg.data.max_train_samples]
    eval_recs = eval_.records[: cfg.data.max_eval_samples] if eval_ else []
    budget = cfg.data.max_prompt_tokens - prompt.prompt_overhead(tokenizer)
    if budget < 32:
        raise ValueError(
            f"data.max_prompt_tokens={cfg.data.max_prompt_tokens} leaves {budget} tokens for the "
            "note after the system prompt; raise it"
        )
    train_pc, train_long, train_trunc = _prepare_split(train_recs, tokenizer, budget)
    eval_pc, eval_long, eval_trunc = _prepare_split(eval_recs, tokenizer, budget)
    stats = {
        "train_records": len(train_pc),
        "eval_records": len(eval_pc),
        "train_skipped_invalid": len(train.problems),
        "eval_skipped_invalid": len(eval_.problems) if eval_ else 0,
        "train_truncated": train_trunc,
        "eval_truncated": eval_trunc,
        "duplicates": len(train.duplicates),
    }
    # max_length covers the longest prompt + answer + end of turn: no answer is ever cut.
    return PreparedData(train_pc, eval_pc, max(train_long, eval_long) + 1, stats)


# ---------------------------------------------------------------------------------------------
# Worker side


def _device() -> Any:
    import ray.train.torch

    return ray.train.torch.get_device()


def disable_cpu_inference_repack(model: Any) -> int:
    """Keep bitsandbytes from repacking 4-bit weights for CPU inference during training.

    On CPUs with AVX512-BF16, an eval-mode forward without grad repacks `Linear4bit` weights
    in place; training the same instance afterwards gives silently wrong LoRA gradients. The
    evaluation inside training is exactly that forward, so the fast path is turned off here.
    """
    n = 0
    for module in model.modules():
        if hasattr(module, "support_avx512bf16_for_cpu"):
            module.support_avx512bf16_for_cpu = False
            n += 1
    return n


def setup_model(cfg: TrainConfig, device: Any) -> Any:
    from peft import get_peft_model, prepare_model_for_kbit_training

    from discriminator.modeling import load_base_model, lora_config

    model = load_base_model(cfg.model, device_map={"": device})
    if cfg.model.quantization != "none":
        model = prepare_model_for_kbit_training(
            model,
            use_gradient_checkpointing=cfg.optim.gradient_checkpointing,
            gradient_checkpointing_kwargs={"use_reentrant": False},
        )
        disable_cpu_inference_repack(model)
    model.config.use_cache = False
    return get_peft_model(model, lora_config(cfg.lora))


class ProgressCallback(TrainerCallback):
    """Rank-0 progress line: step, loss, real (non-padding) tokens/s, ETA."""

    def __init__(self) -> None:
        self.t0 = self.last_t = time.time()
        self.last_tokens = 0
        self.start_step = 0

    def on_train_begin(self, args, state, control, **kwargs):
        self.t0 = self.last_t = time.time()
        self.start_step = state.global_step
        self.last_tokens = state.num_input_tokens_seen
        if state.global_step:
            log0(f"resumed from checkpoint at step {state.global_step}")
        log0(f"training to step {state.max_steps}")

    def on_log(self, args, state, control, logs=None, **kwargs):
        if not state.is_world_process_zero or not logs:
            return
        now = time.time()
        if "train_loss" in logs:  # the Trainer's closing summary (mean loss over the run)
            loss = logs.get("train_loss")
            mean = f", mean train loss {loss:.4g}" if isinstance(loss, float) else ""
            log0(f"finished at step {state.global_step} in {now - self.t0:,.0f}s{mean}")
            return
        tokens = state.num_input_tokens_seen
        tps = (tokens - self.last_tokens) / max(now - self.last_t, 1e-9)
        self.last_t, self.last_tokens = now, tokens
        done = state.global_step - self.start_step
        eta = (now - self.t0) / max(done, 1) * (state.max_steps - state.global_step)
        parts = [f"step {state.global_step}/{state.max_steps}"]
        keys = ("loss", "eval_loss", *(f"eval_{k}" for k in FIRST_TOKEN_METRICS), "learning_rate")
        parts += [f"{k} {logs[k]:.4g}" for k in keys if k in logs]
        if "loss" in logs:
            parts.append(f"tokens/s {tps:,.0f}")
        parts.append(f"eta {eta:,.0f}s")
        log0("  ".join(parts))


# ---------------------------------------------------------------------------------------------
# First-token metrics: what scoring reads, measured on the evaluation notes at every evaluation

FIRST_TOKEN_METRICS = ("auroc", "balanced_accuracy", "category_accuracy")


def first_token_scores(
    model: Any, tokenizer: Any, prompts: list[list[dict[str, str]]], batch_size: int = 8
) -> tuple[list[float], list[str]]:
    """(p_error, predicted category) per prompt from one forward pass, exactly as scoring reads
    the answer: prompt + forced answer prefix, p_error over the decision tokens
    (`scoring.decision_probs`), and the category whose label's first token is likeliest."""
    from discriminator.scoring import decision_probs, last_logits

    prefix, good_id = prompt.answer_ids(tokenizer)
    cats = prompt.first_token_ids(tokenizer)
    cat_names = [c for c in cats if c != prompt.GOOD]
    cat_ids = [cats[c] for c in cat_names]
    seqs = []
    for messages in prompts:
        ids = tokenizer.apply_chat_template(messages, add_generation_prompt=True, tokenize=True)
        seqs.append([*(ids["input_ids"] if hasattr(ids, "keys") else ids), *prefix])
    device = next(model.parameters()).device
    p_error: list[float] = []
    predicted: list[str] = []
    step = max(batch_size, 1)
    for start in range(0, len(seqs), step):
        logits = last_logits(model, seqs[start : start + step], tokenizer.pad_token_id, device)
        p_error += decision_probs(logits.numpy(), good_id, cat_ids)[0].tolist()
        # softmax is monotonic: the likeliest category token is the one with the largest logit
        predicted += [cat_names[j] for j in logits[:, cat_ids].argmax(-1).tolist()]
    return p_error, predicted


def first_token_metrics(
    true_categories: list[str], p_error: list[float], predicted: list[str], threshold: float = 0.5
) -> dict[str, float]:
    """AUROC of p_error for "has an error", balanced accuracy at `threshold`, and the share of
    detected errors (true errors with p_error >= threshold) whose first token names the right
    category. Metrics that need a class absent from the set are left out."""
    import numpy as np

    from discriminator.metrics import EvalData, auroc, binary_metrics, category_metrics

    y = np.array([c != prompt.GOOD for c in true_categories], dtype=bool)
    p = np.asarray(p_error, dtype=float)
    data = EvalData([], y, p >= threshold, p, list(true_categories), list(predicted))
    out: dict[str, float] = {}
    if (area := auroc(y, p)) is not None:
        out["auroc"] = area
    out["balanced_accuracy"] = binary_metrics(y, data.y_pred)["balanced_accuracy"]
    # the evaluation report's definition: right category among detected errors
    if (right := category_metrics(data)["category_accuracy"]) is not None:
        out["category_accuracy"] = right
    return out


def decision_weights(labels: Any, offset: int, weight: float) -> Any:
    """Per-position loss weights [batch, T]: `weight` at each row's decision token (the
    `offset`-th label after the first supervised one, i.e. the token after the answer prefix),
    1 elsewhere. `labels` are already shifted to align with the predicted positions."""
    import torch

    w = torch.ones(labels.shape, dtype=torch.float32, device=labels.device)
    supervised = labels != -100
    has = supervised.any(dim=1)
    first = supervised.float().argmax(dim=1)  # first supervised position of each row
    pos = (first + offset).clamp(max=labels.shape[1] - 1)
    rows = torch.arange(labels.shape[0], device=labels.device)[has]
    w[rows, pos[has]] = weight
    return w


def _trainer_class() -> Any:
    import torch
    from trl import SFTTrainer

    class DiscriminatorSFTTrainer(SFTTrainer):
        """TRL's SFTTrainer, plus the first-token metrics in every evaluation's log entry (so
        they reach the progress line, Ray Train's reports, Tune and TensorBoard)."""

        first_token_eval: list[dict[str, Any]] = []  # prompt-completion records
        decision_weight: float = 1.0
        decision_offset: int = 0  # answer-prefix tokens before the decision token

        def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):
            if self.decision_weight == 1.0 or not model.training:
                return super().compute_loss(model, inputs, return_outputs, num_items_in_batch)
            # TRL's fused path (per-token log-probs of the labels), with the decision token of
            # every answer weighted: the same normalisation as TRL's, so weight 1 is plain SFT.
            inputs["use_cache"] = False
            outputs = model(**inputs, fused_lm_head=True)
            labels = inputs["labels"][:, 1:]
            weights = decision_weights(labels, self.decision_offset, self.decision_weight)
            n = outputs.label_mask.sum() if num_items_in_batch is None else num_items_in_batch
            loss = -(outputs.log_probs * weights).sum() / torch.as_tensor(n).clamp(min=1)
            if self.args.average_tokens_across_devices and num_items_in_batch is not None:
                loss = loss * self.accelerator.num_processes
            return (loss, outputs) if return_outputs else loss

        def log(self, logs: dict[str, float], start_time: float | None = None) -> None:
            if "eval_loss" in logs and self.first_token_eval:
                recs = self.first_token_eval
                p, pred = first_token_scores(
                    self.model,
                    self.processing_class,
                    [r["prompt"] for r in recs],
                    self.args.per_device_eval_batch_size,
                )
                truth = [prompt.parse_reason(r["completion"][0]["content"]).category for r in recs]
                for k, v in first_token_metrics(truth, p, pred).items():
                    logs[f"eval_{k}"] = v
            super().log(logs, start_time)

    return DiscriminatorSFTTrainer


def _sft_config(
    cfg: TrainConfig, out_dir: str, max_length: int, has_eval: bool, on_gpu: bool
) -> Any:
    from trl import SFTConfig

    o, r = cfg.optim, cfg.run
    bf16 = on_gpu and cfg.model.dtype == "bfloat16"
    return SFTConfig(
        output_dir=out_dir,
        num_train_epochs=o.num_train_epochs,
        max_steps=o.max_steps,
        learning_rate=o.learning_rate,
        per_device_train_batch_size=o.per_device_train_batch_size,
        per_device_eval_batch_size=o.per_device_eval_batch_size,
        gradient_accumulation_steps=o.gradient_accumulation_steps,
        warmup_steps=o.warmup_ratio,  # a float in [0, 1) is a ratio of the total steps
        lr_scheduler_type=o.lr_scheduler_type,
        weight_decay=o.weight_decay,
        max_grad_norm=o.max_grad_norm,
        optim=o.optim,
        seed=o.seed,
        data_seed=o.seed,
        gradient_checkpointing=o.gradient_checkpointing,
        gradient_checkpointing_kwargs={"use_reentrant": False},
        ddp_find_unused_parameters=False,
        bf16=bf16,
        fp16=False,
        use_cpu=not on_gpu,
        logging_steps=r.logging_steps,
        eval_strategy="steps" if has_eval else "no",
        eval_steps=r.eval_steps if has_eval else None,
        save_strategy="steps",  # RayTrainReportCallback reports only on save
        save_steps=r.save_steps,
        save_total_limit=1,  # local copies; Ray keeps run.num_to_keep in storage
        report_to="none",
        disable_tqdm=True,
        include_num_input_tokens_seen="non_padding",
        max_length=max_length,
        completion_only_loss=True,
        packing=False,
        dataset_num_proc=None,
        dataloader_num_workers=0,
        remove_unused_columns=True,
        save_only_model=False,
    )


def build_sft_trainer(
    cfg: TrainConfig, data: PreparedData, device: Any, work_dir: str, callbacks: list[Any]
) -> Any:
    """TRL `SFTTrainer` on prompt-completion records: loss on the answer (+ end of turn) only;
    each evaluation also logs the first-token metrics (`eval_auroc`, ...) on the eval notes."""
    import torch
    from datasets import Dataset

    from discriminator.modeling import load_tokenizer

    on_gpu = torch.cuda.is_available() and torch.device(device).type == "cuda"
    torch.manual_seed(cfg.optim.seed)
    tokenizer = load_tokenizer(cfg.model.name_or_path)
    model = setup_model(cfg, device)
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    log0(f"model {cfg.model.name_or_path} ({cfg.model.quantization}), {trainable:,} trainable")

    def to_ds(rows: list[dict[str, Any]]) -> Any:
        return Dataset.from_list(
            [{"prompt": r["prompt"], "completion": r["completion"]} for r in rows]
        )

    eval_ds = to_ds(data.eval) if data.eval else None
    trainer = _trainer_class()(
        model=model,
        args=_sft_config(cfg, work_dir, data.max_length, eval_ds is not None, on_gpu),
        train_dataset=to_ds(data.train),
        eval_dataset=eval_ds,
        processing_class=tokenizer,
        callbacks=callbacks,
    )
    trainer.first_token_eval = list(data.eval)
    trainer.decision_weight = cfg.optim.decision_weight
    trainer.decision_offset = len(prompt.answer_ids(tokenizer)[0])
    return trainer


def train_loop_per_worker(loop_config: dict[str, Any]) -> None:
    """Runs on every Ray Train worker. `loop_config`: {"cfg": asdict(TrainConfig), "data": ref}."""
    import ray
    import ray.train
    from ray.train.huggingface.transformers import RayTrainReportCallback

    global _PROGRESS_TAG
    _PROGRESS_TAG = loop_config.get("progress_tag", "train")
    cfg = from_dict(TrainConfig, loop_config["cfg"])
    data: PreparedData = ray.get(loop_config["data"])
    ctx = ray.train.get_context()
    rank = ctx.get_world_rank()
    # Every worker says where it runs (at every start and restart): which node each rank landed
    # on, and, after a lost node, how many workers an elastic run goes on with.
    print(
        f"[{_PROGRESS_TAG}] worker rank {rank} of {ctx.get_world_size()} on host "
        f"{socket.gethostname()} (node id {ray.get_runtime_context().get_node_id()[:12]})",
        flush=True,
    )
    work = tempfile.mkdtemp(prefix="sft-")
    callbacks = [RayTrainReportCallback(), ProgressCallback()]
    if rank == 0 and loop_config.get("tensorboard_dir"):
        from torch.utils.tensorboard import SummaryWriter
        from transformers.integrations import TensorBoardCallback

        callbacks.append(TensorBoardCallback(SummaryWriter(loop_config["tensorboard_dir"])))
    trainer = build_sft_trainer(cfg, data, _device(), work, callbacks)
    resume = None
    checkpoint = ray.train.get_checkpoint()
    if checkpoint:
        resume = resume_dir(checkpoint, os.path.join(work, "resume"))
    trainer.train(resume_from_checkpoint=resume)
    shutil.rmtree(work, ignore_errors=True)


def resume_dir(checkpoint: Any, dest: str) -> str:
    """The HF checkpoint folder to resume from: Ray's latest checkpoint, or, when that one is
    corrupted or partial and the storage is local, the newest earlier good one beside it."""
    from ray.train.huggingface.transformers import RayTrainReportCallback

    sub = RayTrainReportCallback.CHECKPOINT_NAME
    local = type(checkpoint.filesystem).__name__ == "LocalFileSystem"
    try:
        if local:  # check in place: a truncated file is caught before anything is copied
            check_checkpoint_dir(Path(checkpoint.path) / sub)
        path = os.path.join(checkpoint.to_directory(dest), sub)
        check_checkpoint_dir(path)
        return path
    except RuntimeError as e:
        bad = e
    fallback = previous_good_checkpoint(Path(checkpoint.path)) if local else None
    if fallback is None:
        raise RuntimeError(f"{bad}; no earlier good checkpoint to fall back to") from None
    log0(f"{bad}; falling back to the previous good checkpoint {fallback.parent}")
    shutil.rmtree(dest, ignore_errors=True)
    shutil.copytree(fallback, os.path.join(dest, sub))
    return os.path.join(dest, sub)


def previous_good_checkpoint(latest: Path, sub: str = "checkpoint") -> Path | None:
    """The newest `checkpoint_*` folder older than `latest` (Ray names them by timestamp) whose
    HF checkpoint passes `check_checkpoint_dir`."""
    for d in sorted(latest.parent.glob("checkpoint_*"), reverse=True):
        if d.name >= latest.name or not d.is_dir():
            continue
        try:
            check_checkpoint_dir(d / sub)
        except RuntimeError:
            continue
        return d / sub
    return None


def check_checkpoint_dir(path: str | Path) -> None:
    """A clear error for a corrupted or partial checkpoint instead of a deep library trace."""
    p = Path(path)
    missing = [f for f in (*ADAPTER_FILES, "trainer_state.json") if not (p / f).is_file()]
    if missing:
        raise RuntimeError(f"checkpoint {p} is incomplete (missing {', '.join(missing)})")
    try:
        json.loads((p / "trainer_state.json").read_text())
    except (OSError, json.JSONDecodeError) as e:
        raise RuntimeError(f"checkpoint {p} has an unreadable trainer_state.json: {e}") from None
    if problem := _safetensors_problem(p / "adapter_model.safetensors"):
        raise RuntimeError(f"checkpoint {p} has a corrupted adapter_model.safetensors ({problem})")


def _safetensors_problem(path: Path) -> str | None:
    """Why a safetensors file is truncated or malformed (header vs. file size), or None."""
    try:
        size = path.stat().st_size
        with open(path, "rb") as fh:
            n = int.from_bytes(fh.read(8), "little")
            if size < 8 or n > size - 8:
                return f"{size} bytes, header says more"
            header = json.loads(fh.read(n))
        ends = [v["data_offsets"][1] for k, v in header.items() if k != "__metadata__"]
    except (OSError, ValueError, TypeError, KeyError, IndexError, AttributeError) as e:
        return f"unreadable header: {type(e).__name__}"
    if size != 8 + n + max(ends, default=0):
        return f"{size} bytes, expected {8 + n + max(ends, default=0)}"
    return None


def _private_files(folder: Path) -> None:
    for f in folder.iterdir():
        if f.is_file() and not f.is_symlink():
            f.chmod(0o600)


# ---------------------------------------------------------------------------------------------
# Driver side: trainer and export


def build_trainer(
    cfg: TrainConfig,
    data: PreparedData,
    storage_path: str | None = None,
    name: str | None = None,
    callbacks: list[Any] | None = None,
    progress_tag: str = "train",
) -> Any:
    """The `TorchTrainer` for one training run (also one Tune trial, whose workers' progress
    lines are tagged `progress_tag` so the sweep's console shows the sweep's own lines)."""
    import ray
    from ray.train import CheckpointConfig, RunConfig

    scaling = scaling_config(cfg)  # checks run.elastic/min_workers before anything is written
    storage = os.path.abspath(storage_path or cfg.run.storage_path)
    name = name or cfg.run.name
    private_dir(storage)  # checkpoints hold training state: owner-only unless made shared
    private_dir(os.path.join(storage, name))
    has_eval = bool(data.eval)
    run_config = RunConfig(
        storage_path=storage,
        name=name,
        checkpoint_config=CheckpointConfig(
            num_to_keep=cfg.run.num_to_keep,
            checkpoint_score_attribute="eval_loss" if has_eval else None,
            checkpoint_score_order="min",
        ),
        failure_config=failure_config(cfg),
        callbacks=callbacks,
    )
    loop_config = {
        "cfg": to_dict(cfg),
        "data": ray.put(data),
        "tensorboard_dir": os.path.join(storage, name, "tensorboard"),
        "progress_tag": progress_tag,
    }
    trainer = _trainer_class_with_clear_failures()(
        train_loop_per_worker,
        train_loop_config=loop_config,
        scaling_config=scaling,
        run_config=run_config,
        torch_config=loopback_torch_config(),  # local runs: torch's store on 127.0.0.1
    )
    trainer.discriminator_run = (cfg, storage, name)
    return trainer


def scaling_config(cfg: TrainConfig) -> Any:
    """Ray Train's `ScalingConfig`: exactly `run.num_workers`, or with `run.elastic` between
    `run.min_workers` and `run.num_workers` (Ray Train V2's `num_workers=(min, max)`)."""
    from ray.train import ScalingConfig

    r = cfg.run
    if r.num_workers < 1:
        raise ValueError(f"run.num_workers must be >= 1, got {r.num_workers}")
    if r.elastic and not 1 <= r.min_workers <= r.num_workers:
        raise ValueError(
            f"run.elastic needs 1 <= run.min_workers <= run.num_workers, got "
            f"min_workers={r.min_workers}, num_workers={r.num_workers}"
        )
    return ScalingConfig(
        num_workers=(r.min_workers, r.num_workers) if r.elastic else r.num_workers,
        use_gpu=r.use_gpu,
        resources_per_worker={"CPU": r.cpus_per_worker} | ({"GPU": 1} if r.use_gpu else {}),
    )


def failure_config(cfg: TrainConfig) -> Any:
    """`FailureConfig`: `run.max_failures` restarts of the worker group from the last checkpoint.

    A worker group that cannot be placed (a node is gone and the fixed `num_workers` no longer
    fit) is a *controller* failure in Ray Train V2, retried forever by default: the job would hang
    until its time limit. It gets the same budget (at least 1) here, so the run fails with
    `TrainingFailed` instead; an elastic run goes on with fewer workers without it."""
    from ray.train import FailureConfig

    n = cfg.run.max_failures
    return FailureConfig(max_failures=n, controller_failure_limit=-1 if n < 0 else max(n, 1))


class TrainingFailed(RuntimeError):
    """Training stopped for good; the message says why and how to resume."""


def _trainer_class_with_clear_failures() -> type:
    from ray.train.torch import TorchTrainer

    class DiscriminatorTrainer(TorchTrainer):
        """`TorchTrainer` whose `fit()` turns Ray Train's final failure into `TrainingFailed`:
        what failed, the cluster as it is now, and the checkpoint a re-run resumes from."""

        discriminator_run: tuple[TrainConfig, str, str] | None = None

        def fit(self) -> Any:
            from ray.train import TrainingFailedError

            try:
                return super().fit()
            except TrainingFailedError as e:
                if self.discriminator_run is None:
                    raise
                msg = training_failure_message(*self.discriminator_run, e)
                print(f"[train] {msg}", flush=True)  # whole, on the console (the error is cut)
                raise TrainingFailed(msg) from e

    return DiscriminatorTrainer


# Ray Train errors that mean "the workers could not be (re)started on the cluster as it is".
_PLACEMENT_ERRORS = (
    "WorkerGroupStartupTimeoutError",
    "WorkerGroupStartupFailedError",
    "InsufficientClusterResourcesError",
)


def training_failure_message(cfg: TrainConfig, storage: str, name: str, error: Any) -> str:
    """One paragraph for the user (no exception messages: they may echo data): the cause (error
    types only), the cluster now, and where a re-run resumes. Also printed as `[train]` lines."""
    inner = getattr(error, "controller_failure", None) or error
    failures = getattr(inner, "worker_failures", None) or {}
    r = cfg.run
    need = f"{r.num_workers} worker(s) x {r.cpus_per_worker:g} CPU" + (
        " + 1 GPU" if r.use_gpu else ""
    )
    if type(inner).__name__ in _PLACEMENT_ERRORS:
        cause = (
            f"the cluster cannot place the run's {need} any more "
            f"({type(inner).__name__}; was a node lost?)"
        )
    elif failures:
        kinds = ", ".join(
            f"rank {rank}: {type(exc).__name__}" for rank, exc in sorted(failures.items())
        )
        cause = f"Ray Train workers failed ({kinds}) after run.max_failures={r.max_failures}"
    else:
        cause = f"{type(inner).__name__} after run.max_failures={r.max_failures}"
    cluster = _cluster_now()
    step, where = latest_checkpoint_step(Path(storage) / name)
    if step is not None:
        resume = (
            f"the last checkpoint is at step {step} ({where}): re-submit the same command (same "
            "run.storage_path and run.name) to resume from it"
        )
    else:
        resume = "no checkpoint was registered yet: a re-run starts from step 0"
    hint = "" if r.elastic else "; or set run.elastic=true to go on with the workers that fit"
    return f"training failed: {cause}; {cluster}; {resume}{hint}"


def _cluster_now() -> str:
    try:
        import ray

        nodes = [n for n in ray.nodes() if n.get("Alive")]
        res = ray.cluster_resources()
        return (
            f"the cluster now has {len(nodes)} node(s) alive with {res.get('CPU', 0):g} CPU(s), "
            f"{res.get('GPU', 0):g} GPU(s)"
        )
    except Exception:
        return "the cluster state is unknown"


def latest_checkpoint_step(run_dir: Path) -> tuple[int | None, str | None]:
    """Global step and folder of the checkpoint a re-run of a run on local storage resumes from:
    the latest one in Ray Train's index (`checkpoint_manager_snapshot.json`). A checkpoint folder
    written while the run failed, before Ray registered it, is not in the index and does not
    count. (None, None) when no checkpoint is registered or it cannot be read."""
    try:
        snap = json.loads((run_dir / "checkpoint_manager_snapshot.json").read_text())
        folder = run_dir / snap["latest_checkpoint_result"]["checkpoint_dir_name"]
        state = json.loads((folder / "checkpoint" / "trainer_state.json").read_text())
        return int(state["global_step"]), str(folder)
    except (OSError, ValueError, KeyError, TypeError):
        return None, None


def latest_checkpoint_dir(result: Any) -> Path:
    """The HF checkpoint folder inside the run's latest Ray checkpoint."""
    if result.checkpoint is None:
        raise RuntimeError("training finished without a checkpoint (check run.save_steps)")
    return Path(result.checkpoint.path) / "checkpoint"


def _git_sha() -> str | None:
    try:
        out = subprocess.run(
            ["git", "rev-parse", "HEAD"],
            cwd=Path(__file__).resolve().parent,
            capture_output=True,
            text=True,
            timeout=5,
        )
        return out.stdout.strip() or None
    except (OSError, subprocess.SubprocessError):
        return None


def sha256_file(path: str | Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


MODEL_CARD = """# Clinical discharge-note discriminator (LoRA adapter)

Fine-tuned with QLoRA from `{base}` to answer `{{"reason": "good"}}` or a short description of the
error in a hospital discharge note (clinical logic, timeline, PHI/identity, justification,
structure). Prompt version `{prompt_version}`; package `clinical-discriminator` {version}.

- LoRA r={r}, alpha={alpha}, dropout={dropout}, targets {targets}
- base quantization: {quant}; steps: {steps}; final train loss: {train_loss}; eval loss: {eval_loss}
- training records: {n_train}; evaluation records: {n_eval}
- on the evaluation records, read from the answer's first token as scoring does (p_error >= 0.5):
  balanced accuracy {bacc}, AUROC {auroc}, category right for {cat_acc} of the detected errors

```python
from transformers import AutoModelForCausalLM, AutoTokenizer
from peft import PeftModel

model = AutoModelForCausalLM.from_pretrained("{base}", device_map="auto")
model = PeftModel.from_pretrained(model, "{out}")
tokenizer = AutoTokenizer.from_pretrained("{out}")
```

Score note archives with `python -m ray_jobs.score --adapter {out} --input NOTES --output DIR`.
"""


def export_adapter(
    cfg: TrainConfig,
    checkpoint_dir: str | Path,
    out_dir: str | Path,
    metrics: dict[str, Any],
    data_stats: dict[str, Any],
) -> Path:
    """Write the final adapter directory: safetensors adapter, tokenizer + chat template,
    resolved config, prompt version, metrics and a model card."""
    from discriminator.modeling import load_tokenizer

    src, out = Path(checkpoint_dir), Path(out_dir)
    check_checkpoint_dir(src)
    private = private_dir(out)
    for name in ADAPTER_FILES:
        shutil.copy2(src / name, out / name)
    load_tokenizer(cfg.model.name_or_path).save_pretrained(out)
    (out / "train_config.yaml").write_text(dump_yaml(cfg))
    state = json.loads((src / "trainer_state.json").read_text())
    history = state.get("log_history", [])
    train_losses = [h["loss"] for h in history if "loss" in h]
    evals = [h for h in history if "eval_loss" in h]
    eval_losses = [h["eval_loss"] for h in evals]
    summary = {
        "global_step": state.get("global_step"),
        "final_train_loss": train_losses[-1] if train_losses else None,
        "final_eval_loss": eval_losses[-1] if eval_losses else None,
        "best_eval_loss": min(eval_losses) if eval_losses else None,
        # first-token metrics on the evaluation notes at the last evaluation (threshold 0.5)
        **{
            f"final_eval_{k}": evals[-1].get(f"eval_{k}") if evals else None
            for k in FIRST_TOKEN_METRICS
        },
        "num_input_tokens_seen": state.get("num_input_tokens_seen"),
        "data": data_stats,
        "ray_metrics": {k: v for k, v in metrics.items() if isinstance(v, (int, float, str))},
        "log_history": history,
    }
    (out / "metrics.json").write_text(json.dumps(summary, indent=2))
    provenance = {
        "prompt_version": prompt.PROMPT_VERSION,
        "package_version": __version__,
        "git_sha": _git_sha(),
        "base_model": cfg.model.name_or_path,
        "adapter_sha256": sha256_file(out / "adapter_model.safetensors"),
        "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "config": to_dict(cfg),
    }
    (out / "discriminator.json").write_text(json.dumps(provenance, indent=2))

    def fmt(x: Any) -> str:
        return "n/a" if x is None else (f"{x:.4f}" if isinstance(x, float) else str(x))

    (out / "README.md").write_text(
        MODEL_CARD.format(
            base=cfg.model.name_or_path,
            prompt_version=prompt.PROMPT_VERSION,
            version=__version__,
            r=cfg.lora.r,
            alpha=cfg.lora.alpha,
            dropout=cfg.lora.dropout,
            targets=", ".join(cfg.lora.target_modules),
            quant=cfg.model.quantization,
            steps=summary["global_step"],
            train_loss=fmt(summary["final_train_loss"]),
            eval_loss=fmt(summary["final_eval_loss"]),
            bacc=fmt(summary["final_eval_balanced_accuracy"]),
            auroc=fmt(summary["final_eval_auroc"]),
            cat_acc=fmt(summary["final_eval_category_accuracy"]),
            n_train=data_stats.get("train_records"),
            n_eval=data_stats.get("eval_records"),
            out=out,
        )
    )
    if private:
        _private_files(out)
    return out


def merge_adapter(
    base: str, adapter_dir: str | Path, out_dir: str | Path, dtype: str = "bfloat16"
) -> Path:
    """Export base + adapter merged into plain weights (bf16 by default), safetensors."""
    from peft import PeftModel
    from transformers import AutoModelForCausalLM

    from discriminator.modeling import load_tokenizer, resolve_model, torch_dtype

    model = AutoModelForCausalLM.from_pretrained(
        resolve_model(base), dtype=torch_dtype(dtype), use_safetensors=True, trust_remote_code=False
    )
    merged = PeftModel.from_pretrained(model, str(adapter_dir)).merge_and_unload()
    out = Path(out_dir)
    private = private_dir(out)
    merged.save_pretrained(out, safe_serialization=True)
    load_tokenizer(base).save_pretrained(out)
    if private:
        _private_files(out)
    return out
