"""Trainer (every Ray Train worker): the model, the SFT config and trainer, progress, the loop.

The worker loop is flat: setup_model, setup_data, train (TRL `SFTTrainer`, loss on the completion
only, the decision token weighted by `optim.decision_weight`), with `RayTrainReportCallback`
turning every Hugging Face checkpoint into a Ray checkpoint, so a restarted worker group resumes
from the last one (`resume_dir`).
"""

from __future__ import annotations

import os
import shutil
import socket
import tempfile
import time
from pathlib import Path
from typing import Any

from transformers import TrainerCallback

from discriminator import prompt
from discriminator.config import TrainConfig, from_dict
from discriminator.training.checkpoints import check_checkpoint_dir, previous_good_checkpoint
from discriminator.training.data import PreparedData
from discriminator.training.objective import (
    FIRST_TOKEN_METRICS,
    decision_weights,
    first_token_metrics,
    first_token_scores,
)


def log0(msg: str, tag: str = "train") -> None:
    """Print `[tag] msg` from rank 0 only (the driver shows worker output). The tag is "train",
    or "trial <id>" inside a Tune trial: those lines go to the sweep's log."""
    try:
        import ray.train

        if ray.train.get_context().get_world_rank() != 0:
            return
    except Exception:
        pass
    print(f"[{tag}] {msg}", flush=True)


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
    """Rank-0 progress line: step, loss, real (non-padding) tokens/s, ETA, tagged `progress_tag`
    (see `log0`)."""

    def __init__(self, progress_tag: str = "train") -> None:
        self.tag = progress_tag
        self.t0 = self.last_t = time.time()
        self.last_tokens = 0
        self.start_step = 0

    def on_train_begin(self, args, state, control, **kwargs):
        self.t0 = self.last_t = time.time()
        self.start_step = state.global_step
        self.last_tokens = state.num_input_tokens_seen
        if state.global_step:
            log0(f"resumed from checkpoint at step {state.global_step}", self.tag)
        log0(f"training to step {state.max_steps}", self.tag)

    def on_log(self, args, state, control, logs=None, **kwargs):
        if not state.is_world_process_zero or not logs:
            return
        now = time.time()
        if "train_loss" in logs:  # the Trainer's closing summary (mean loss over the run)
            loss = logs.get("train_loss")
            mean = f", mean train loss {loss:.4g}" if isinstance(loss, float) else ""
            log0(f"finished at step {state.global_step} in {now - self.t0:,.0f}s{mean}", self.tag)
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
        log0("  ".join(parts), self.tag)


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


def warmup_steps_arg(cfg: TrainConfig) -> float:
    """`optim.warmup_ratio` as the `warmup_steps` value of transformers' `TrainingArguments`.

    transformers 5 has no `warmup_ratio` argument any more: a float `warmup_steps` in [0, 1) is
    the ratio, turned into ceil(ratio x total steps) warm-up steps once the Trainer knows the total
    (`TrainingArguments.get_warmup_steps`); 1 and above would be read as a number of steps, so a
    ratio there is refused rather than silently meaning one step.
    """
    ratio = cfg.optim.warmup_ratio
    if not 0 <= ratio < 1:
        raise ValueError(
            f"optim.warmup_ratio must be in [0, 1) (a share of the steps), got {ratio}"
        )
    return float(ratio)


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
        warmup_steps=warmup_steps_arg(cfg),  # the ratio: a float < 1 is a share of the steps
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
    cfg: TrainConfig,
    data: PreparedData,
    device: Any,
    work_dir: str,
    callbacks: list[Any],
    progress_tag: str = "train",
) -> Any:
    """TRL `SFTTrainer` on prompt-completion records: loss on the answer (+ end of turn) only;
    each evaluation also logs the first-token metrics (`eval_auroc`, ...) on the eval notes.
    Its model line is tagged `progress_tag` (see `log0`)."""
    import torch
    from datasets import Dataset

    from discriminator.modeling import load_tokenizer

    on_gpu = torch.cuda.is_available() and torch.device(device).type == "cuda"
    torch.manual_seed(cfg.optim.seed)
    tokenizer = load_tokenizer(cfg.model.name_or_path)
    model = setup_model(cfg, device)
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    log0(
        f"model {cfg.model.name_or_path} ({cfg.model.quantization}), {trainable:,} trainable",
        progress_tag,
    )

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
    """Runs on every Ray Train worker. `loop_config`: {"cfg": asdict(TrainConfig), "data": ref,
    "tensorboard_dir": folder, "progress_tag": "train" or "trial <id>" (see `log0`)}."""
    import ray
    import ray.train
    from ray.train.huggingface.transformers import RayTrainReportCallback

    tag = loop_config.get("progress_tag", "train")  # "trial <id>" inside a Tune trial
    cfg = from_dict(TrainConfig, loop_config["cfg"])
    data: PreparedData = ray.get(loop_config["data"])
    ctx = ray.train.get_context()
    rank = ctx.get_world_rank()
    # Every worker says where it runs (at every start and restart): which node each rank landed
    # on, and, after a lost node, how many workers an elastic run goes on with.
    print(
        f"[{tag}] worker rank {rank} of {ctx.get_world_size()} on host "
        f"{socket.gethostname()} (node id {ray.get_runtime_context().get_node_id()[:12]})",
        flush=True,
    )
    work = tempfile.mkdtemp(prefix="sft-")
    callbacks = [RayTrainReportCallback(), ProgressCallback(tag)]
    if rank == 0 and loop_config.get("tensorboard_dir"):
        from torch.utils.tensorboard import SummaryWriter
        from transformers.integrations import TensorBoardCallback

        callbacks.append(TensorBoardCallback(SummaryWriter(loop_config["tensorboard_dir"])))
    trainer = build_sft_trainer(cfg, data, _device(), work, callbacks, tag)
    resume = None
    checkpoint = ray.train.get_checkpoint()
    if checkpoint:
        resume = resume_dir(checkpoint, os.path.join(work, "resume"), tag)
    trainer.train(resume_from_checkpoint=resume)
    shutil.rmtree(work, ignore_errors=True)


def resume_dir(checkpoint: Any, dest: str, progress_tag: str = "train") -> str:
    """The HF checkpoint folder to resume from: Ray's latest checkpoint, or, when that one is
    corrupted or partial and the storage is local, the newest earlier good one beside it (the
    fall-back is logged, tagged `progress_tag`)."""
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
    log0(f"{bad}; falling back to the previous good checkpoint {fallback.parent}", progress_tag)
    shutil.rmtree(dest, ignore_errors=True)
    shutil.copytree(fallback, os.path.join(dest, sub))
    return os.path.join(dest, sub)
