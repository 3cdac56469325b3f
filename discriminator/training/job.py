"""Job (driver): the run's `TorchTrainer`, its scaling, failure budget and failure message.

`build_trainer` checks the scaling (`run.elastic`, `run.min_workers`) and makes the run's folders
owner-only before anything is written; its `fit()` turns Ray Train's final failure into
`TrainingFailed`, whose message names the cause, the cluster now and the checkpoint a re-run
resumes from.
"""

from __future__ import annotations

import dataclasses
import os
from pathlib import Path
from typing import Any

from discriminator import placement
from discriminator.config import TrainConfig, from_dict, to_dict
from discriminator.placement import AUTO, WorkerPlan
from discriminator.runtime import loopback_torch_config, private_dir
from discriminator.training.checkpoints import latest_checkpoint_step
from discriminator.training.data import PreparedData
from discriminator.training.trainer import train_loop_per_worker, warmup_steps_arg


def check_settings(cfg: TrainConfig) -> None:
    """The run's settings that need no data, model or cluster (workers, elasticity, warm-up),
    checked: ValueError naming the key. The train job calls it before reading the model and the
    data; `build_trainer` before it writes anything. `run.num_workers: auto` is resolved on the
    cluster (`resolve_workers`)."""
    r = cfg.run
    if r.num_workers != AUTO and r.num_workers < 1:
        raise ValueError(f"run.num_workers must be >= 1 or auto, got {r.num_workers}")
    if r.elastic and (
        r.min_workers < 1 or (r.num_workers != AUTO and r.min_workers > r.num_workers)
    ):
        raise ValueError(
            f"run.elastic needs 1 <= run.min_workers <= run.num_workers, got "
            f"min_workers={r.min_workers}, num_workers={r.num_workers}"
        )
    warmup_steps_arg(cfg)


def resolve_workers(
    cfg: TrainConfig, nodes: list[dict[str, float]] | None = None
) -> tuple[TrainConfig, WorkerPlan]:
    """The config with `run.num_workers` as a number for the cluster it runs on (`auto`: one
    worker per GPU, or per node without GPUs) and the plan's line and warning for the console.
    Ray must be initialised unless `nodes` is given."""
    check_settings(cfg)
    plan = placement.resolve(cfg.run, "training", nodes)
    out = from_dict(TrainConfig, to_dict(cfg))
    out.run.num_workers = plan.num_workers
    if out.run.elastic:
        if out.run.min_workers > plan.num_workers:
            raise ValueError(
                f"run.min_workers={out.run.min_workers} is more than the {plan.num_workers} "
                f"worker(s) run.num_workers={cfg.run.num_workers} gives on this cluster"
            )
        plan = dataclasses.replace(
            plan,
            line=plan.line.replace(" on ", " on up to ", 1)
            + f", at least {out.run.min_workers} (elastic)",
        )
    return out, plan


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

    if cfg.run.num_workers == AUTO:
        cfg = resolve_workers(cfg)[0]
    scaling = scaling_config(cfg)  # checked before anything is written
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

    check_settings(cfg)
    r = cfg.run
    if r.num_workers == AUTO:
        raise ValueError("run.num_workers=auto: resolve it on the cluster first (resolve_workers)")
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
