"""Jobs as users submit them, without a cluster: `run.num_workers: auto` on the nodes a cluster
has, the lines that say what a run trains on, and the refusal of paths inside an uploaded copy
of the code (`ray job submit --runtime-env ...`)."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
import yaml

from discriminator import placement, tuning
from discriminator.config import TrainConfig, TuneConfig, load_config
from discriminator.console import local_log_dir
from discriminator.runtime import UploadPathError, check_job_paths, uploaded_working_dir
from discriminator.training import resolve_workers, scaling_config

REPO = Path(__file__).resolve().parents[1]
CONFIGS = REPO / "ray_jobs" / "configs"


def gpu_nodes(*gpus: int, cpus: float = 16) -> list[dict[str, float]]:
    return [{"CPU": cpus, "GPU": float(g), "memory": 1e11} if g else {"CPU": cpus} for g in gpus]


def test_auto_trains_one_worker_per_gpu_of_the_cluster():
    plan = placement.plan_workers("auto", True, 4, gpu_nodes(4, 4))
    assert plan.num_workers == 8
    assert plan.line == "training on 8 workers: 4 GPUs on each of 2 nodes"
    assert plan.warning is None
    uneven = placement.plan_workers("auto", True, 1, gpu_nodes(4, 2, 0))
    assert (uneven.num_workers, uneven.line) == (6, "training on 6 workers: 4 + 2 GPUs on 2 nodes")
    one = placement.plan_workers("auto", True, 1, gpu_nodes(1))
    assert one.line == "training on 1 worker: 1 GPU on 1 node"


def test_auto_without_gpus_is_one_worker_per_node():
    plan = placement.plan_workers("auto", False, 1, [{"CPU": 1.0}, {"CPU": 1.0}])
    assert (plan.num_workers, plan.line) == (2, "training on 2 CPU workers: one on each of 2 nodes")
    assert placement.plan_workers("auto", False, 1, [{"CPU": 2.0}]).num_workers == 1
    # a node without a CPU for the worker is not counted
    assert placement.plan_workers("auto", False, 2, [{"CPU": 1.0}, {"CPU": 4.0}]).num_workers == 1
    with pytest.raises(ValueError, match=r"no GPUs: set run\.use_gpu=false"):
        placement.plan_workers("auto", True, 1, [{"CPU": 8.0}])


def test_auto_counts_the_gpus_the_cpus_can_feed():
    plan = placement.plan_workers("auto", True, 8, gpu_nodes(4, cpus=16))
    assert plan.num_workers == 2
    assert "run.cpus_per_worker=8 leaves 2 of the cluster's 4 GPUs" in plan.warning


def test_explicit_workers_that_leave_gpus_idle_say_so():
    plan = placement.plan_workers(1, True, 4, gpu_nodes(4, 4))
    assert plan.num_workers == 1
    assert plan.line == (
        "training on 1 GPU worker (run.num_workers=1) of the cluster's 4 GPUs on each of 2 nodes"
    )
    assert plan.warning == (
        "warning: run.num_workers=1 leaves 7 of the cluster's 8 GPUs idle; set "
        "run.num_workers=auto to train on all of them"
    )
    assert placement.plan_workers(8, True, 4, gpu_nodes(4, 4)).warning is None
    assert (
        "needs 16 GPUs and the cluster has 8"
        in placement.plan_workers(16, True, 1, gpu_nodes(4, 4)).warning
    )
    cpu_on_gpus = placement.plan_workers(2, False, 1, gpu_nodes(4))
    assert "run.use_gpu=false leaves the cluster's 4 GPUs idle" in cpu_on_gpus.warning
    assert placement.plan_workers(2, False, 1, [{"CPU": 2.0}]).warning is None


def test_resolve_workers_gives_a_number_and_checks_elasticity():
    cfg = load_config(TrainConfig, None, ["run.num_workers=auto"])
    resolved, plan = resolve_workers(cfg, gpu_nodes(4, 4))
    assert resolved.run.num_workers == 8 and cfg.run.num_workers == "auto"  # not mutated
    assert scaling_config(resolved).num_workers == 8
    with pytest.raises(ValueError, match="resolve it on the cluster first"):
        scaling_config(cfg)
    elastic = load_config(TrainConfig, None, ["run.elastic=true", "run.min_workers=2"])
    resolved, plan = resolve_workers(elastic, gpu_nodes(4, 4))
    assert scaling_config(resolved).num_workers == (2, 8)
    assert (
        plan.line == "training on up to 8 workers: 4 GPUs on each of 2 nodes, at least 2 (elastic)"
    )
    with pytest.raises(ValueError, match=r"run\.min_workers=2 is more than the 1 worker"):
        resolve_workers(elastic, gpu_nodes(1))
    with pytest.raises(ValueError, match=r"run\.num_workers must be >= 1 or auto"):
        resolve_workers(load_config(TrainConfig, None, ["run.num_workers=0"]), gpu_nodes(1))


def test_every_gpu_config_trains_on_every_gpu_of_the_cluster():
    """Every shipped config that trains on GPUs leaves run.num_workers at auto."""
    seen = 0
    for path in sorted(CONFIGS.glob("*.yaml")):
        tree = yaml.safe_load(path.read_text())
        if "sweep" in path.stem:
            run = load_config(TuneConfig, path).train.run
        elif "score" in path.stem or "run" not in tree:
            continue
        else:
            run = load_config(TrainConfig, path).run
        if run.use_gpu:
            seen += 1
            assert run.num_workers == "auto", f"{path.name}: run.num_workers={run.num_workers}"
    assert seen >= 3


def test_a_sweep_runs_one_worker_per_trial_and_says_where():
    cfg = load_config(TuneConfig, CONFIGS / "llama31_8b_sweep.yaml")
    assert tuning.trial_workers(cfg.train) == 1
    assert tuning.auto_concurrency(cfg.train, {"GPU": 8.0, "CPU": 64.0}) == 8
    line, warning = tuning.sweep_placement(cfg, 8, gpu_nodes(4, 4))
    assert line == "training 8 trial(s) at a time on 1 GPU worker each: 4 GPUs on each of 2 nodes"
    assert warning is None
    line, warning = tuning.sweep_placement(cfg, 2, gpu_nodes(4, 4))
    assert warning == (
        "warning: search.max_concurrent_trials=2 x 1 GPU worker per trial leaves 6 of the "
        "cluster's 8 GPUs idle"
    )


# ---------------------------------------------------------------------------------------------
# Paths under `ray job submit`


@pytest.fixture
def upload(tmp_path, monkeypatch):
    """This process as the entrypoint of a submitted job: the working directory is an uploaded
    copy of the code and Ray's job config names the working_dir."""
    folder = tmp_path / "session_1" / "runtime_resources" / "working_dir_files" / "_ray_pkg_ab12"
    folder.mkdir(parents=True)
    monkeypatch.chdir(folder)
    job = {"runtime_env": {"working_dir": "gcs://_ray_pkg_ab12.zip"}, "metadata": {}}
    monkeypatch.setenv("RAY_JOB_CONFIG_JSON_ENV_VAR", json.dumps(job))
    return folder


def test_local_runs_keep_relative_paths(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("RAY_JOB_CONFIG_JSON_ENV_VAR", raising=False)
    assert uploaded_working_dir() is None
    check_job_paths({"run.output_dir": "runs/x"}, {"data.train_path": "data/train.jsonl"})
    assert local_log_dir("s3://bucket/out") == Path("runs/logs")


def test_an_upload_is_found_by_its_job_config_or_its_folder(upload, monkeypatch):
    assert uploaded_working_dir() == upload
    monkeypatch.delenv("RAY_JOB_CONFIG_JSON_ENV_VAR")
    assert uploaded_working_dir() == upload  # the runtime_resources folder alone tells
    monkeypatch.chdir(upload.parents[3])
    assert uploaded_working_dir() is None


def test_relative_outputs_in_an_upload_stop_with_one_line(upload):
    with pytest.raises(UploadPathError) as e:
        check_job_paths(
            {"run.output_dir": "runs/smoke-adapter", "run.storage_path": "runs/ray"},
            {"data.train_path": "synth:n=32,seed=1", "data.eval_path": None},
        )
    msg = str(e.value)
    assert "\n" not in msg
    assert msg.startswith("run.output_dir=runs/smoke-adapter is a relative path")
    assert "Ray deletes with its session" in msg
    assert "absolute path on storage every node sees" in msg
    assert "--set run.output_dir=/shared/smoke-adapter" in msg
    assert msg.endswith("(also: run.storage_path)")


def test_relative_or_uploaded_inputs_in_an_upload_stop(upload, tmp_path):
    with pytest.raises(UploadPathError, match=r"^data.train_path=train_discriminator.jsonl .*"
                       "notes and data are never uploaded"):  # fmt: skip
        check_job_paths(
            {"run.output_dir": "/shared/a"}, {"data.train_path": "train_discriminator.jsonl"}
        )
    inside = str(upload / "data" / "notes.jsonl")
    with pytest.raises(UploadPathError, match="lies in the uploaded copy of the code"):
        check_job_paths({"io.output": str(tmp_path / "out")}, {"io.input": ["/shared/a", inside]})
    # absolute paths outside the upload, URIs and synthetic specs pass
    check_job_paths(
        {"io.output": str(tmp_path / "out"), "out": "s3://bucket/eval"},
        {"io.input": ["/shared/a.csv.gz", "gs://b/c.parquet"], "data": "synth:n=8", "x": None},
    )


def test_a_uri_output_logs_outside_the_upload(upload):
    log_dir = local_log_dir("s3://bucket/scores")
    assert log_dir.is_absolute() and upload not in log_dir.parents


@pytest.mark.parametrize(
    "job, argv, setting",
    [
        ("train", ["--config", str(CONFIGS / "smoke.yaml")], "run.output_dir=runs/smoke-adapter"),
        ("tune", ["--config", str(CONFIGS / "smoke_sweep.yaml")], "run.storage_path=runs/ray"),
        ("score", ["--base-only", "--input", "/shared/n.csv", "--output", "scores"], "io.output="),
        ("evaluate", ["--labels", "/shared/l.jsonl", "--scores", "/shared/s"], "out=runs/eval"),
    ],
)
def test_every_job_refuses_before_any_work(upload, capsys, job, argv, setting):
    """Each job's main, as the submitted entrypoint: exit 2, one `error:` line naming the
    setting, nothing written in the upload (no log folder, no output)."""
    import importlib

    main = importlib.import_module(f"ray_jobs.{job}").main
    assert main(argv) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith(f"error: {setting}"), err
    assert "absolute path on storage every node sees" in err[0]
    assert not any(upload.iterdir()), sorted(os.listdir(upload))
