"""Hyperparameter search on Ray Tune: LoRA rank, alpha and learning rate, ASHA early stopping.

Ray Train V2 pattern: every trial is a Tune *function* that builds a `TorchTrainer` from the base
`TrainConfig` plus the trial's sampled values and fits it; `TuneReportCallback` forwards each
Train report (one per checkpoint, carrying eval loss and the checkpoint path) to Tune, where ASHA
decides whether the trial goes on. The data is validated and formatted once on the driver
(`training.data.prepare_data`) and shared with every trial through the object store.

Layout of a sweep, `<run.storage_path>/<run.name>/`:
    trial-<trial id>/        Tune's files for one trial (params, progress, result.json)
    train-runs/<trial id>/   that trial's Ray Train run: checkpoints (`checkpoint_*/checkpoint/`
                             is a loadable PEFT adapter)
    trials.csv  summary.json  best.yaml  best_adapter.txt  best-adapter/  sweep.png
Re-running with the same storage path and name restores the sweep (`Tuner.restore`): finished
trials are kept, unfinished ones continue, and each continues its Train run from its last
checkpoint, because the Train run is named after the (stable) trial id.
"""

from __future__ import annotations

import csv
import importlib.util
import io
import json
import math
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from discriminator import placement
from discriminator.config import TrainConfig, TuneConfig, dump_yaml, from_dict, to_dict
from discriminator.files import write_atomic
from discriminator.placement import AUTO
from discriminator.training import PreparedData

PARAMS = ("r", "learning_rate", "alpha_multiple")
TRAIN_RUNS = "train-runs"
# A Tune trial only waits on its Train run; its workers hold the CPUs/GPUs. `{"CPU": 0}` alone is
# rejected by Tune, hence the token memory request.
TRIAL_RESOURCES = {"CPU": 0, "memory": 64 * 2**20}
STATUS_EARLY_STOPPED = "EARLY_STOPPED"


def log(msg: str) -> None:
    print(f"[tune] {msg}", flush=True)


# ---------------------------------------------------------------------------------------------
# Pure pieces: checks, search space, the config of one trial, concurrency


def check_sweep_config(cfg: TuneConfig) -> None:
    """Errors that would otherwise surface only after the first trials ran."""
    s, a, t = cfg.search, cfg.asha, cfg.train
    problems = []
    if s.num_samples < 1:
        problems.append("search.num_samples must be >= 1")
    if not s.ranks or any(r < 1 for r in s.ranks):
        problems.append(f"search.ranks must be positive integers, got {s.ranks}")
    if not 0 < s.lr_min <= s.lr_max:
        problems.append(f"need 0 < search.lr_min <= search.lr_max, got {s.lr_min}, {s.lr_max}")
    if s.alpha_multiple is not None and s.alpha_multiple <= 0:
        problems.append("search.alpha_multiple must be > 0 (or null)")
    if s.max_concurrent_trials is not None and s.max_concurrent_trials < 1:
        problems.append("search.max_concurrent_trials must be >= 1 (or null for auto)")
    try:
        typed_points(cfg)
    except ValueError as e:
        problems.append(str(e))
    if len(s.points_to_evaluate) > s.num_samples:
        problems.append("search.points_to_evaluate has more points than search.num_samples")
    if a.metric.startswith("eval_") and not t.data.eval_path:
        problems.append(f"asha.metric={a.metric} needs evaluation data: set train.data.eval_path")
    if t.run.save_steps % t.run.eval_steps:
        # Train reports on save; the metric must be fresh at every report.
        problems.append("train.run.save_steps must be a multiple of train.run.eval_steps")
    if not 0 < a.grace_period <= a.max_t:
        problems.append("need 0 < asha.grace_period <= asha.max_t")
    if a.reduction_factor <= 1:
        problems.append("asha.reduction_factor must be > 1")
    if s.algorithm == "optuna" and importlib.util.find_spec("optuna") is None:
        problems.append(
            "search.algorithm=optuna needs the optuna package (pip install optuna); "
            "or use search.algorithm=random"
        )
    if problems:
        raise ValueError("invalid sweep config:\n  " + "\n  ".join(problems))


def typed_points(cfg: TuneConfig) -> list[dict[str, Any]]:
    """`search.points_to_evaluate` with known keys and typed values (YAML reads 1e-4 as text)."""
    types = {"r": int, "learning_rate": float, "alpha_multiple": float}
    out = []
    for i, point in enumerate(cfg.search.points_to_evaluate):
        where = f"search.points_to_evaluate[{i}]"
        unknown = sorted(set(point) - set(PARAMS))
        if unknown:
            raise ValueError(f"{where}: unknown keys {unknown}; valid: {list(PARAMS)}")
        try:
            out.append({k: types[k](v) for k, v in point.items()})
        except (TypeError, ValueError):
            raise ValueError(f"{where}: {point} has a value that is not a number") from None
    return out


def search_space(cfg: TuneConfig) -> dict[str, Any]:
    """Tune param space: rank (choice), learning rate (log-uniform), alpha multiple (fixed)."""
    from ray import tune

    s = cfg.search
    space: dict[str, Any] = {
        "r": tune.choice(list(s.ranks)),
        "learning_rate": (
            tune.loguniform(s.lr_min, s.lr_max) if s.lr_min < s.lr_max else float(s.lr_min)
        ),
    }
    if s.alpha_multiple is not None:
        space["alpha_multiple"] = float(s.alpha_multiple)
    return space


def trial_train_config(base: TrainConfig, params: dict[str, Any]) -> TrainConfig:
    """The base config with the trial's rank, alpha (multiple x rank) and learning rate."""
    cfg = from_dict(TrainConfig, to_dict(base))  # deep copy
    cfg.lora.r = int(params["r"])
    cfg.optim.learning_rate = float(params["learning_rate"])
    multiple = params.get("alpha_multiple")
    if multiple is not None:
        cfg.lora.alpha = max(1, round(float(multiple) * cfg.lora.r))
    return cfg


def trial_workers(train: TrainConfig) -> int:
    """Ray Train workers per trial: `run.num_workers`, where auto means one (in a sweep the
    trials, not the workers, fill the cluster)."""
    n = train.run.num_workers
    return 1 if n == AUTO else int(n)


def auto_concurrency(train: TrainConfig, resources: dict[str, float]) -> int:
    """Trials that fit at once: cluster GPUs // GPUs per trial (CPUs on a CPU-only run)."""
    if train.run.use_gpu:
        per_trial, have, what = trial_workers(train), resources.get("GPU", 0), "GPU"
    else:
        per_trial = trial_workers(train) * train.run.cpus_per_worker
        have, what = resources.get("CPU", 0), "CPU"
    n = int(have // per_trial) if per_trial > 0 else 1
    if n < 1:
        raise ValueError(
            f"one trial needs {per_trial:g} {what} but the cluster has {have:g}; "
            "set search.max_concurrent_trials to wait for an autoscaler"
        )
    return n


def sweep_placement(
    cfg: TuneConfig, concurrency: int, nodes: list[dict[str, float]]
) -> tuple[str, str | None]:
    """What the sweep trains on, said as the train job says it (`training 4 trials at a time on
    1 GPU worker each: 4 GPUs on 1 node`), and a warning when GPUs of the cluster stay idle."""
    run = cfg.train.run
    per = trial_workers(cfg.train)
    kind = "GPU" if run.use_gpu else "CPU"
    worker = f"{per} {kind} worker" + ("" if per == 1 else "s")
    where = placement.describe_gpus(nodes) if run.use_gpu else f"{len(nodes)} node(s)"
    line = f"training {concurrency} trial(s) at a time on {worker} each: {where}"
    gpus = placement.gpu_total(nodes)
    warning = None
    at_once = min(concurrency, cfg.search.num_samples) * per
    if run.use_gpu and at_once < gpus:
        why = (
            f"search.num_samples={cfg.search.num_samples}"
            if cfg.search.num_samples < concurrency
            else f"search.max_concurrent_trials={concurrency}"
        )
        warning = (
            f"warning: {why} x {worker} per trial leaves {gpus - at_once} of the cluster's "
            f"{gpus} GPUs idle"
        )
    elif not run.use_gpu:
        warning = placement.idle_without_gpu(gpus, "train.run.")
    return line, warning


def trial_dirname(trial: Any) -> str:
    return f"trial-{trial.trial_id}"


# ---------------------------------------------------------------------------------------------
# The trial (runs in a Tune trial actor)


def run_trial(
    params: dict[str, Any],
    base: dict[str, Any] | None = None,
    data: PreparedData | None = None,
    train_storage: str | None = None,
) -> None:
    """Tune function trainable: fit one Train run; its reports reach Tune via the callback."""
    from ray import tune
    from ray.tune.integration.ray_train import TuneReportCallback

    from discriminator.training import build_trainer

    assert base is not None and data is not None and train_storage is not None
    trial_id = tune.get_context().get_trial_id()
    cfg = trial_train_config(from_dict(TrainConfig, base), params)
    cfg.run.storage_path, cfg.run.name = train_storage, trial_id
    # Same name on a restored sweep: the Train run continues from its last checkpoint.
    build_trainer(
        cfg,
        data,
        storage_path=train_storage,
        name=trial_id,
        callbacks=[TuneReportCallback()],
        progress_tag=f"trial {trial_id}",
    ).fit()


# ---------------------------------------------------------------------------------------------
# Driver: progress, search algorithm, scheduler, the sweep


def _fmt_params(params: dict[str, Any]) -> str:
    parts = [f"r={params.get('r')}", f"lr={params.get('learning_rate', float('nan')):.3g}"]
    if params.get("alpha_multiple") is not None:
        parts.append(f"alpha={round(params['alpha_multiple'] * params['r'])}")
    return " ".join(parts)


def _progress_callback(metric: str, mode: str) -> Any:
    from ray.tune import Callback

    class ProgressPrinter(Callback):
        """One line per trial start/finish and whenever the best value so far improves."""

        def __init__(self) -> None:
            self.best: tuple[float, str] | None = None

        def on_trial_start(self, iteration, trials, trial, **info):
            log(f"trial {trial.trial_id} started: {_fmt_params(trial.config)}")

        def on_trial_result(self, iteration, trials, trial, result, **info):
            value = result.get(metric)
            if not isinstance(value, (int, float)):
                return
            sign = 1 if mode == "min" else -1
            if self.best is None or sign * value < sign * self.best[0]:
                self.best = (float(value), trial.trial_id)
                log(
                    f"best so far: {metric} {value:.4f} (trial {trial.trial_id}, "
                    f"step {result.get('step')}, {_fmt_params(trial.config)})"
                )

        def on_trial_complete(self, iteration, trials, trial, **info):
            last = trial.last_result or {}
            value = last.get(metric, float("nan"))
            log(f"trial {trial.trial_id} ended at step {last.get('step')} (finished, or stopped "
                f"by ASHA): {metric} {value:.4f}")  # fmt: skip

        def on_trial_error(self, iteration, trials, trial, **info):
            log(f"trial {trial.trial_id} failed (see {trial.path}/error.txt)")

    return ProgressPrinter()


def init_ray_for_sweep(**kwargs: Any) -> Any:
    """Start (or join) Ray so that ASHA's early stops release their CPUs/GPUs.

    A stopped trial's Train run leaves its placement group behind (it belongs to the job, not to
    the killed trial); Ray Train's `PlacementGroupCleaner` removes it through the state API,
    which needs the dashboard and, on a host running several Ray instances, an explicit API
    server address. A local instance therefore starts with the dashboard on a known port and
    hands that address to every worker; a cluster (RAY_ADDRESS) already has its dashboard.
    """
    import socket

    from discriminator.runtime import init_ray

    if os.environ.get("RAY_ADDRESS"):
        return init_ray(**kwargs)
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    env = {"RAY_API_SERVER_ADDRESS": f"http://127.0.0.1:{port}"}
    return init_ray(
        include_dashboard=True,
        dashboard_host="127.0.0.1",
        dashboard_port=port,
        runtime_env={"env_vars": env},
        **kwargs,
    )


def make_search_alg(cfg: TuneConfig, max_concurrent: int) -> Any:
    """Seeded random search or Optuna, limited to `max_concurrent` trials at a time.

    The limit lives here: Tune ignores `TuneConfig(max_concurrent_trials=...)` (with only a log
    warning) when it is given a `BasicVariantGenerator` instance.
    """
    points = typed_points(cfg) or None
    if cfg.search.algorithm == "optuna":
        from ray.tune.search import ConcurrencyLimiter
        from ray.tune.search.optuna import OptunaSearch  # imports optuna lazily

        searcher = OptunaSearch(points_to_evaluate=points, seed=cfg.search.seed)
        return ConcurrencyLimiter(searcher, max_concurrent=max_concurrent)
    from ray.tune.search import BasicVariantGenerator

    return BasicVariantGenerator(
        points_to_evaluate=points, random_state=cfg.search.seed, max_concurrent=max_concurrent
    )


def make_scheduler(cfg: TuneConfig) -> Any:
    from ray.tune.schedulers import ASHAScheduler

    a = cfg.asha
    return ASHAScheduler(
        time_attr=a.time_attr,
        grace_period=a.grace_period,
        reduction_factor=a.reduction_factor,
        max_t=a.max_t,
    )


def sweep_dir(cfg: TuneConfig) -> Path:
    return Path(cfg.run.storage_path).absolute() / cfg.run.name


def _portable_base(train: TrainConfig) -> TrainConfig:
    """Trials run with the trial directory as working directory: make local paths absolute."""
    base = from_dict(TrainConfig, to_dict(train))
    base.run.num_workers = trial_workers(train)
    if Path(base.model.name_or_path).exists():
        base.model.name_or_path = str(Path(base.model.name_or_path).absolute())
    return base


@dataclass
class SweepOutcome:
    sweep_dir: Path
    rows: list[dict[str, Any]]
    best: dict[str, Any] | None
    complete: bool  # False: interrupted (re-run to continue)


def check_restore_safe(out: str | os.PathLike) -> None:
    """Restoring unpickles `tuner.pkl` (and the trials' state) from the sweep folder: refuse a
    sweep folder, or a `tuner.pkl`, that another user owns or that group or others may write."""
    from discriminator.runtime import check_not_shared_writable

    out = Path(out)
    if (out / "tuner.pkl").exists():
        check_not_shared_writable(out, "sweep folder")
        check_not_shared_writable(out / "tuner.pkl", "sweep state")


def run_sweep(cfg: TuneConfig, data: PreparedData) -> SweepOutcome:
    """Run (or restore and finish) the sweep, then write its outputs. Ray must be initialised."""
    import ray
    from ray import tune

    check_sweep_config(cfg)
    out = sweep_dir(cfg)
    base = _portable_base(cfg.train)
    trainable = tune.with_resources(
        tune.with_parameters(
            run_trial, base=to_dict(base), data=data, train_storage=str(out / TRAIN_RUNS)
        ),
        TRIAL_RESOURCES,
    )
    if tune.Tuner.can_restore(out):
        check_restore_safe(out)
        log(f"restoring the sweep in {out} (finished trials are kept)")
        _warn_if_changed(cfg, out)
        tuner = tune.Tuner.restore(str(out), trainable=trainable, resume_errored=True)
    else:
        concurrency = cfg.search.max_concurrent_trials or auto_concurrency(
            cfg.train, ray.cluster_resources()
        )
        log(
            f"sweep {cfg.run.name}: {cfg.search.num_samples} trials, {concurrency} at a time, "
            f"{cfg.search.algorithm} search, ASHA on {cfg.asha.metric} ({cfg.asha.time_attr})"
        )
        line, warning = sweep_placement(cfg, concurrency, placement.cluster_nodes())
        log(line)
        if warning:
            log(warning)
        out.mkdir(parents=True, exist_ok=True)
        (out / "sweep_config.yaml").write_text(dump_yaml(cfg))
        tuner = tune.Tuner(
            trainable,
            param_space=search_space(cfg),
            tune_config=tune.TuneConfig(
                metric=cfg.asha.metric,
                mode=cfg.asha.mode,
                search_alg=make_search_alg(cfg, concurrency),
                scheduler=make_scheduler(cfg),
                num_samples=cfg.search.num_samples,
                trial_dirname_creator=trial_dirname,
            ),
            run_config=tune.RunConfig(
                storage_path=str(out.parent),
                name=out.name,
                callbacks=[_progress_callback(cfg.asha.metric, cfg.asha.mode)],
                verbose=0,  # our callback prints one line per event instead of tables
            ),
        )
    t0 = time.time()
    tuner.fit()
    log(f"tuning loop took {time.time() - t0:,.0f}s")
    return write_outputs(cfg, data, out)


def _warn_if_changed(cfg: TuneConfig, out: Path) -> None:
    saved = out / "sweep_config.yaml"
    if not saved.exists():
        return
    import yaml

    old = yaml.safe_load(saved.read_text()) or {}
    new = to_dict(cfg)
    changed = [k for k in ("search", "asha") if old.get(k) != new.get(k)]
    if changed:
        log(
            f"warning: {', '.join(changed)} differ from the sweep's first run; a restored sweep "
            "keeps its original search space and scheduler (use a new run.name to change them)"
        )


# ---------------------------------------------------------------------------------------------
# Outputs


def _num(x: Any) -> float | None:
    return float(x) if isinstance(x, (int, float)) and math.isfinite(x) else None


def trial_row(
    trial: Any, history: list[dict[str, Any]], cfg: TuneConfig, train_storage: Path
) -> dict[str, Any]:
    """One trials.csv row from a Tune trial and its reported results (oldest first)."""
    metric, sign = cfg.asha.metric, (1 if cfg.asha.mode == "min" else -1)
    params = trial.config
    tcfg = trial_train_config(cfg.train, params)
    scored = [h for h in history if _num(h.get(metric)) is not None]
    best = min(scored, key=lambda h: sign * h[metric]) if scored else None
    last = history[-1] if history else (trial.last_result or {})
    status = trial.status
    if status == "TERMINATED" and history:
        # Tune marks a trial stopped by ASHA `done` just like one that finished, and stops at
        # max_t as well: early means stopped before max_t and before the trainer's last step.
        reached = _num(last.get(cfg.asha.time_attr))
        planned = _planned_steps(history)
        step = _num(last.get("step"))
        if (reached is None or reached < cfg.asha.max_t) and (
            planned is None or step is None or step < planned
        ):
            status = STATUS_EARLY_STOPPED
    return {
        "trial_id": trial.trial_id,
        "status": status,
        "r": tcfg.lora.r,
        "alpha": tcfg.lora.alpha,
        "learning_rate": tcfg.optim.learning_rate,
        f"final_{metric}": _num(last.get(metric)) if history else None,
        f"best_{metric}": _num(best[metric]) if best else None,
        "best_step": best.get("step") if best else None,
        "steps": last.get("step") if history else None,
        "iterations": len(history),
        "checkpoint": _best_checkpoint(history, best),
        "train_run": str(train_storage / trial.trial_id),
    }


def _planned_steps(history: list[dict[str, Any]]) -> int | None:
    """The trainer's planned total steps, from any checkpoint of the run still on disk."""
    for h in reversed(history):
        state = Path(str(h.get("checkpoint_path"))) / "checkpoint" / "trainer_state.json"
        if h.get("checkpoint_path") and state.is_file():
            return json.loads(state.read_text()).get("max_steps")
    return None


def _best_checkpoint(history: list[dict[str, Any]], best: dict[str, Any] | None) -> str | None:
    """The checkpoint reported with the best metric; else the latest one still on disk
    (Train keeps only `num_to_keep`)."""
    candidates = [best] if best else []
    candidates += list(reversed(history))
    for h in candidates:
        path = h.get("checkpoint_path")
        if path and (Path(path) / "checkpoint").is_dir():
            return str(path)
    return None


def write_outputs(cfg: TuneConfig, data: PreparedData, out: Path) -> SweepOutcome:
    from ray.tune import ExperimentAnalysis

    from discriminator import training

    analysis = ExperimentAnalysis(str(out))
    metric, sign = cfg.asha.metric, (1 if cfg.asha.mode == "min" else -1)
    trials = sorted(analysis.trials, key=lambda t: t.trial_id)
    frames = analysis.trial_dataframes
    rows, histories = [], {}
    for t in trials:
        df = frames.get(t.trial_id)
        history = df.to_dict("records") if df is not None and len(df) else []
        histories[t.trial_id] = history
        rows.append(trial_row(t, history, cfg, out / TRAIN_RUNS))
    planned = _planned_trials(cfg, out)
    complete = len(rows) >= planned and all(
        r["status"] in ("TERMINATED", STATUS_EARLY_STOPPED, "ERROR") for r in rows
    )
    _write_csv(out / "trials.csv", rows)
    plot_sweep(rows, histories, metric, out / "sweep.png")

    ranked = [r for r in rows if r[f"best_{metric}"] is not None and r["checkpoint"]]
    best = min(ranked, key=lambda r: sign * r[f"best_{metric}"]) if ranked else None
    summary: dict[str, Any] = {
        "sweep_dir": str(out),
        "metric": metric,
        "mode": cfg.asha.mode,
        "complete": complete,
        "trials": len(rows),
        "status_counts": {
            s: sum(r["status"] == s for r in rows) for s in {r["status"] for r in rows}
        },
        "data": data.stats,
        "best": None,
    }
    if best:
        trial = next(t for t in trials if t.trial_id == best["trial_id"])
        best_cfg = trial_train_config(cfg.train, trial.config)
        best_cfg.run.name = f"{cfg.run.name}-best"
        header = (
            f"# Best trial {best['trial_id']} of sweep {cfg.run.name}: {metric} "
            f"{best[f'best_{metric}']:.4f} at step {best['best_step']}.\n"
            f"# Train it again with: python -m ray_jobs.train --config {out / 'best.yaml'}\n"
        )
        (out / "best.yaml").write_text(header + dump_yaml(best_cfg))
        hf_ckpt = Path(best["checkpoint"]) / "checkpoint"
        (out / "best_adapter.txt").write_text(f"{hf_ckpt}\n")
        adapter = None
        if complete:
            adapter = training.export_adapter(
                best_cfg, hf_ckpt, out / "best-adapter", dict(best), data.stats
            )
        summary["best"] = {
            **best,
            "params": dict(trial.config),
            "checkpoint_adapter": str(hf_ckpt),
            "exported_adapter": str(adapter) if adapter else None,
            "config": str(out / "best.yaml"),
        }
    (out / "summary.json").write_text(json.dumps(summary, indent=2, default=str))
    _print_summary(rows, best, metric, out, complete)
    return SweepOutcome(out, rows, summary["best"], complete)


def _planned_trials(cfg: TuneConfig, out: Path) -> int:
    """num_samples of the sweep's first run (a restored sweep keeps its original plan)."""
    import yaml

    saved = out / "sweep_config.yaml"
    if saved.exists():
        tree = yaml.safe_load(saved.read_text()) or {}
        return int(tree.get("search", {}).get("num_samples", cfg.search.num_samples))
    return cfg.search.num_samples


def _write_csv(path: Path, rows: list[dict[str, Any]]) -> None:
    buf = io.StringIO(newline="")
    if rows:
        writer = csv.DictWriter(buf, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    write_atomic(path, buf.getvalue())


def _print_summary(
    rows: list[dict[str, Any]], best: dict[str, Any] | None, metric: str, out: Path, complete: bool
) -> None:
    for r in rows:
        value = r[f"best_{metric}"]
        log(
            f"  {r['trial_id']}  {r['status']:<13} r={r['r']:<3} alpha={r['alpha']:<4} "
            f"lr={r['learning_rate']:.3g}  best {metric} "
            f"{'n/a' if value is None else f'{value:.4f}'}  steps {r['steps']}"
        )
    if best:
        log(
            f"best: trial {best['trial_id']} ({metric} {best[f'best_{metric}']:.4f}, "
            f"r={best['r']}, alpha={best['alpha']}, lr={best['learning_rate']:.3g})"
        )
    if not complete:
        log("the sweep was interrupted: re-run the same command to continue it")
    log(f"outputs in {out}: trials.csv, summary.json, best.yaml, best-adapter/, sweep.png")


def plot_sweep(
    rows: list[dict[str, Any]],
    histories: dict[str, list[dict[str, Any]]],
    metric: str,
    path: Path,
) -> None:
    """Metric over steps per trial; best metric against rank and against learning rate."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(15, 4.5))
    FigureCanvasAgg(fig)
    ax_curve, ax_rank, ax_lr = fig.subplots(1, 3)
    for r in rows:
        pts = [
            (h.get("step"), h[metric])
            for h in histories.get(r["trial_id"], [])
            if _num(h.get(metric)) is not None and h.get("step") is not None
        ]
        if pts:
            style = "--" if r["status"] == STATUS_EARLY_STOPPED else "-"
            label = f"r={r['r']} lr={r['learning_rate']:.2g}"
            ax_curve.plot(*zip(*pts), style, marker="o", markersize=3, label=label)
    ax_curve.set(xlabel="step", ylabel=metric, title=f"{metric} per trial (dashed: stopped early)")
    if ax_curve.lines:
        ax_curve.legend(fontsize=7)
    scored = [r for r in rows if r[f"best_{metric}"] is not None]
    colors = {"TERMINATED": "tab:blue", STATUS_EARLY_STOPPED: "tab:orange"}
    for ax, key, title in ((ax_rank, "r", "LoRA rank"), (ax_lr, "learning_rate", "learning rate")):
        ax.scatter(
            [r[key] for r in scored],
            [r[f"best_{metric}"] for r in scored],
            c=[colors.get(r["status"], "tab:red") for r in scored],
        )
        ax.set(xlabel=title, ylabel=f"best {metric}", title=f"best {metric} vs {title}")
        ax.set_xscale("log", base=2 if key == "r" else 10)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
