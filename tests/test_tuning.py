"""Ray Tune sweep: search space, trial configs, concurrency, ASHA early stops, outputs, resume."""

from __future__ import annotations

import csv
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from types import SimpleNamespace

import pytest
import yaml

from discriminator import tuning
from discriminator.config import ConfigError, TrainConfig, TuneConfig, load_config

REPO = Path(__file__).resolve().parents[1]


def _cfg(*overrides: str) -> TuneConfig:
    return load_config(TuneConfig, REPO / "ray_jobs/configs/smoke_sweep.yaml", list(overrides))


# ---------------------------------------------------------------------------------------------
# Pure logic (no Ray cluster)


def test_search_space_from_config():
    from ray.tune.search.sample import Categorical, Float

    space = tuning.search_space(_cfg("search.ranks=[4, 8, 16]", "search.alpha_multiple=2"))
    assert isinstance(space["r"], Categorical) and space["r"].categories == [4, 8, 16]
    assert isinstance(space["learning_rate"], Float)
    assert (space["learning_rate"].lower, space["learning_rate"].upper) == (1e-4, 1e-2)
    assert "LogUniform" in type(space["learning_rate"].sampler).__name__
    assert space["alpha_multiple"] == 2.0
    fixed = tuning.search_space(
        _cfg("search.alpha_multiple=null", "search.lr_min=3e-4", "search.lr_max=3e-4")
    )
    assert "alpha_multiple" not in fixed and fixed["learning_rate"] == 3e-4


def test_trial_config_applies_rank_alpha_lr_and_leaves_base_alone():
    base = _cfg().train
    cfg = tuning.trial_train_config(base, {"r": 32, "learning_rate": "2e-4", "alpha_multiple": 2})
    assert isinstance(cfg, TrainConfig)
    assert (cfg.lora.r, cfg.lora.alpha, cfg.optim.learning_rate) == (32, 64, 2e-4)
    assert cfg.model == base.model and cfg.data == base.data and cfg.run == base.run
    assert base.lora.r == 16 and base.optim.learning_rate == 1e-4  # base not mutated
    keep = tuning.trial_train_config(base, {"r": 8, "learning_rate": 1e-3})
    assert keep.lora.alpha == base.lora.alpha  # no multiple: alpha stays as configured


def test_auto_concurrency():
    gpu = _cfg("train.run.use_gpu=true", "train.run.num_workers=1").train
    assert tuning.auto_concurrency(gpu, {"GPU": 8.0, "CPU": 64.0}) == 8
    two_gpu = _cfg("train.run.use_gpu=true", "train.run.num_workers=2").train
    assert tuning.auto_concurrency(two_gpu, {"GPU": 8.0, "CPU": 64.0}) == 4
    cpu = _cfg().train  # 1 worker x 1 CPU
    assert tuning.auto_concurrency(cpu, {"CPU": 2.0}) == 2
    with pytest.raises(ValueError, match="needs 1 GPU but the cluster has 0"):
        tuning.auto_concurrency(gpu, {"CPU": 2.0})


@pytest.mark.parametrize(
    "overrides, fragment",
    [
        (["search.lr_min=1e-3", "search.lr_max=1e-4"], "lr_min <= search.lr_max"),
        (["search.ranks=[]"], "search.ranks"),
        (["search.points_to_evaluate=[{rank: 8}]"], "unknown keys ['rank']"),
        (["search.points_to_evaluate=[{r: eight}]"], "not a number"),
        (["train.data.eval_path=null"], "needs evaluation data"),
        (["train.run.save_steps=3"], "multiple of train.run.eval_steps"),
        (["asha.reduction_factor=1"], "reduction_factor"),
        (["search.algorithm=optuna"], "pip install optuna"),
    ],
)
def test_invalid_sweep_configs_fail_before_any_trial(overrides, fragment):
    if "optuna" in fragment:
        pytest.importorskip("ray")
        import importlib.util

        if importlib.util.find_spec("optuna") is not None:
            pytest.skip("optuna is installed")
    with pytest.raises(ValueError, match=fragment.replace("[", r"\[").replace("]", r"\]")):
        tuning.check_sweep_config(_cfg(*overrides))


def test_unknown_sweep_key_is_a_config_error():
    with pytest.raises(ConfigError, match="valid keys here"):
        _cfg("search.rank=[8]")


def test_points_are_typed():
    cfg = _cfg("search.points_to_evaluate=[{r: '16', learning_rate: '1e-4'}]")
    assert tuning.typed_points(cfg) == [{"r": 16, "learning_rate": 1e-4}]


def test_trial_row_tells_early_stops_from_finished_trials(tmp_path):
    cfg = _cfg()  # ASHA on training_iteration, max_t 2
    trial = SimpleNamespace(
        trial_id="abc_00000",
        status="TERMINATED",
        config={"r": 4, "learning_rate": 1e-3, "alpha_multiple": 2.0},
        last_result={},
    )
    ckpt = tmp_path / "ckpt1"
    (ckpt / "checkpoint").mkdir(parents=True)
    (ckpt / "checkpoint" / "trainer_state.json").write_text('{"global_step": 2, "max_steps": 4}')
    first = {"step": 2, "eval_loss": 5.0, "training_iteration": 1, "done": False}
    stopped = tuning.trial_row(trial, [{**first, "checkpoint_path": str(ckpt)}], cfg, tmp_path)
    assert stopped["status"] == tuning.STATUS_EARLY_STOPPED
    assert (stopped["r"], stopped["alpha"], stopped["iterations"]) == (4, 8, 1)
    assert stopped["checkpoint"] == str(ckpt)
    history = [first, {"step": 4, "eval_loss": 5.5, "training_iteration": 2, "done": True}]
    done = tuning.trial_row(trial, history, cfg, tmp_path)
    assert done["status"] == "TERMINATED"
    assert (done["final_eval_loss"], done["best_eval_loss"], done["best_step"]) == (5.5, 5.0, 2)
    # Training that ends before max_t (fewer steps than ASHA's horizon) is not an early stop.
    (ckpt / "checkpoint" / "trainer_state.json").write_text('{"global_step": 2, "max_steps": 2}')
    short = tuning.trial_row(trial, [{**first, "checkpoint_path": str(ckpt)}], cfg, tmp_path)
    assert short["status"] == "TERMINATED"


# ---------------------------------------------------------------------------------------------
# Sweeps on the tiny model (Ray, CPU)


def _write_sweep_yaml(path: Path, model_dir: Path, storage: Path, **sections) -> Path:
    tree = yaml.safe_load((REPO / "ray_jobs/configs/smoke_sweep.yaml").read_text())
    tree["train"]["model"]["name_or_path"] = str(model_dir)
    tree["run"] = {"storage_path": str(storage), "name": "sweep"}
    for section, values in sections.items():
        tree[section].update(values)
    path.write_text(yaml.safe_dump(tree))
    return path


@pytest.fixture(scope="module")
def ray_cluster():
    import ray

    tuning.init_ray_for_sweep(num_cpus=2)
    yield
    ray.shutdown()


def _prepare(cfg: TuneConfig):
    from discriminator.modeling import load_tokenizer
    from discriminator.training import prepare_data

    return prepare_data(cfg.train, load_tokenizer(cfg.train.model.name_or_path))


def _read_csv(path: Path) -> list[dict[str, str]]:
    with path.open() as fh:
        return list(csv.DictReader(fh))


@pytest.mark.slow
def test_sweep_asha_stops_a_hopeless_trial_and_writes_outputs(
    tmp_path, tiny_model_dir, ray_cluster
):
    # Two trials that learn run first; the two with a learning rate of 1e-9 cannot improve on
    # the untrained eval loss, so ASHA (grace 1, factor 2) stops them at the first rung, where
    # the cutoff is the median of the better trials' losses.
    points = [
        {"r": 4, "learning_rate": 1e-2},
        {"r": 4, "learning_rate": 5e-3},
        {"r": 8, "learning_rate": 1e-9},
        {"r": 4, "learning_rate": 1e-9},
    ]
    path = _write_sweep_yaml(
        tmp_path / "sweep.yaml",
        tiny_model_dir,
        tmp_path / "ray",
        search={"points_to_evaluate": points, "max_concurrent_trials": 2},
    )
    cfg = load_config(TuneConfig, path)
    outcome = tuning.run_sweep(cfg, _prepare(cfg))
    out = tmp_path / "ray" / "sweep"
    assert outcome.complete and outcome.sweep_dir == out

    rows = _read_csv(out / "trials.csv")
    assert len(rows) == 4
    hopeless = [r for r in rows if float(r["learning_rate"]) < 1e-6]
    assert len(hopeless) == 2
    for r in hopeless:
        assert r["status"] == tuning.STATUS_EARLY_STOPPED, rows
        assert r["iterations"] == "1"
    good = [r for r in rows if float(r["learning_rate"]) > 1e-6]
    assert any(r["status"] == "TERMINATED" and r["iterations"] == "2" for r in good), rows

    best = load_config(TrainConfig, out / "best.yaml")
    summary = json.loads((out / "summary.json").read_text())
    assert summary["best"]["learning_rate"] > 1e-3
    assert best.optim.learning_rate == pytest.approx(summary["best"]["learning_rate"])
    assert (best.lora.r, best.lora.alpha) == (summary["best"]["r"], 2 * summary["best"]["r"])
    assert best.model.name_or_path == str(tiny_model_dir)
    assert (out / "sweep.png").stat().st_size > 10_000
    ckpt_adapter = Path((out / "best_adapter.txt").read_text().strip())
    assert ckpt_adapter == Path(summary["best"]["checkpoint"]) / "checkpoint"

    import torch
    from peft import PeftModel
    from transformers import AutoModelForCausalLM

    for adapter in (out / "best-adapter", ckpt_adapter):
        base = AutoModelForCausalLM.from_pretrained(tiny_model_dir, dtype=torch.float32)
        model = PeftModel.from_pretrained(base, str(adapter))
        assert model.peft_config["default"].r == best.lora.r
        with torch.no_grad():
            logits = model(input_ids=torch.tensor([[1, 2, 3]])).logits
        assert logits.shape[:2] == (1, 3) and torch.isfinite(logits).all()


def _state_trials(sweep: Path) -> list[dict]:
    """Trials recorded in Tune's experiment state file (id and status)."""
    state = json.loads(max(sweep.glob("experiment_state-*.json")).read_text())
    trials = []
    for trial_json, _meta in state["trial_data"]:
        t = json.loads(trial_json)
        trials.append({"trial_id": t["trial_id"], "status": t["status"]})
    return trials


@pytest.mark.slow
def test_interrupted_sweep_resumes_without_rerunning_finished_trials(
    tmp_path, tiny_model_dir, ray_cluster
):
    path = _write_sweep_yaml(
        tmp_path / "sweep.yaml",
        tiny_model_dir,
        tmp_path / "ray",
        search={"num_samples": 2, "max_concurrent_trials": 1},
    )
    sweep = tmp_path / "ray" / "sweep"
    log_path = tmp_path / "first.log"
    env = {**os.environ, "RAY_TRAIN_ENABLE_PRINT_PATCH": "0"}
    env.pop("RAY_ADDRESS", None)
    env["HF_HUB_OFFLINE"] = "1"
    with log_path.open("w") as log:
        proc = subprocess.Popen(
            [sys.executable, "-m", "ray_jobs.tune", "--config", str(path)],
            cwd=REPO,
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    try:
        deadline = time.time() + 240
        while time.time() < deadline and proc.poll() is None:
            if " ended at step" in log_path.read_text(errors="replace"):
                break
            time.sleep(1)
        assert proc.poll() is None, log_path.read_text()[-3000:]
        proc.send_signal(signal.SIGINT)  # like Ctrl-C or `ray job stop`: Tune saves its state
        rc = proc.wait(timeout=120)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert rc == 130, log_path.read_text()[-3000:]  # interrupted, not complete

    before = _state_trials(sweep)
    finished = [t["trial_id"] for t in before if t["status"] == "TERMINATED"]
    assert finished, before
    reports = {t: (sweep / f"trial-{t}" / "result.json").read_text() for t in finished}
    ckpts = {t: sorted(os.listdir(sweep / tuning.TRAIN_RUNS / t)) for t in finished}

    cfg = load_config(TuneConfig, path)
    outcome = tuning.run_sweep(cfg, _prepare(cfg))  # the same command again: restores
    assert outcome.complete
    rows = _read_csv(sweep / "trials.csv")
    assert len(rows) == 2
    assert {t["trial_id"] for t in before} <= {r["trial_id"] for r in rows}
    assert all(r["status"] in ("TERMINATED", tuning.STATUS_EARLY_STOPPED) for r in rows), rows
    for t in finished:  # finished trials were not run again
        assert (sweep / f"trial-{t}" / "result.json").read_text() == reports[t]
        assert sorted(os.listdir(sweep / tuning.TRAIN_RUNS / t)) == ckpts[t]
    assert (sweep / "best-adapter" / "adapter_model.safetensors").is_file()
