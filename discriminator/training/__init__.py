"""QLoRA SFT on Ray Train: data preparation (driver), the per-worker loop, and the adapter export.

Run
  1. Data (driver, before Ray starts): `prepare_data` validates the records, cuts long notes to the
     prompt budget and formats prompt-completion examples; invalid data stops the job here.
  2. Job (driver): `build_trainer` gives the `TorchTrainer` whose workers run
     `train_loop_per_worker`; its `fit()` raises `TrainingFailed` with a message for the user when
     the run fails for good.
  3. Trainer (every worker): `setup_model`, then TRL's `SFTTrainer` (`build_sft_trainer`) with the
     decision-weighted loss and the first-token metrics at every evaluation; each Hugging Face
     checkpoint becomes a Ray checkpoint, so a restarted worker group resumes from the last one.
  4. Export (driver): `export_adapter` writes the final adapter folder from the run's latest
     checkpoint; `merge_adapter` the merged model.

Modules, in run order: `data` (records -> prompt-completion examples), `job` (Ray Train scaling,
failures, `build_trainer`), `trainer` (the per-worker loop: model, SFT config, trainer class,
progress lines), `objective` (the loss weights and the first-token metrics), `checkpoints`
(validating a checkpoint, the one to resume from), `export` (adapter folder, model card, merge).
"""

from __future__ import annotations

from discriminator.training.checkpoints import (
    ADAPTER_FILES,
    check_checkpoint_dir,
    latest_checkpoint_dir,
    latest_checkpoint_step,
    previous_good_checkpoint,
)
from discriminator.training.data import PreparedData, prepare_data
from discriminator.training.export import MODEL_CARD, export_adapter, merge_adapter
from discriminator.training.job import (
    TrainingFailed,
    build_trainer,
    check_settings,
    failure_config,
    resolve_workers,
    scaling_config,
    training_failure_message,
)
from discriminator.training.objective import (
    FIRST_TOKEN_METRICS,
    decision_weights,
    first_token_metrics,
    first_token_scores,
)
from discriminator.training.trainer import (
    ProgressCallback,
    build_sft_trainer,
    disable_cpu_inference_repack,
    log0,
    resume_dir,
    setup_model,
    train_loop_per_worker,
    warmup_steps_arg,
)

__all__ = [
    "ADAPTER_FILES",
    "FIRST_TOKEN_METRICS",
    "MODEL_CARD",
    "PreparedData",
    "ProgressCallback",
    "TrainingFailed",
    "build_sft_trainer",
    "build_trainer",
    "check_checkpoint_dir",
    "check_settings",
    "decision_weights",
    "disable_cpu_inference_repack",
    "export_adapter",
    "failure_config",
    "first_token_metrics",
    "first_token_scores",
    "latest_checkpoint_dir",
    "latest_checkpoint_step",
    "log0",
    "merge_adapter",
    "prepare_data",
    "previous_good_checkpoint",
    "resolve_workers",
    "resume_dir",
    "scaling_config",
    "setup_model",
    "train_loop_per_worker",
    "training_failure_message",
    "warmup_steps_arg",
]
