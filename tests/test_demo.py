"""The demo learns: a floor on what the tiny pretrained base + the real QLoRA path achieve.

A smaller, in-process variant of `make demo` (no Ray, one process): synthetic short notes, the
cached `tiny` base (built and pretrained on plain note text on first use), a QLoRA fine-tune
with the demo's config (4-bit NF4 base, LoRA on all seven projections, the real prompt and chat
template, TRL's completion-only loss), the adapter saved and loaded back from safetensors, and the
real scorer's p_error from the first answer token. The base never saw the discrimination task, so
a broken template, loss mask, adapter save/load or first-token scoring lands at chance and fails.
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

import numpy as np
import pytest

from discriminator import modeling, scoring, training
from discriminator.config import ScoreConfig, TrainConfig, load_config, to_dict
from discriminator.metrics import auroc
from discriminator.synth import write_splits
from ray_jobs.demo import DEMO_KINDS

REPO = Path(__file__).resolve().parents[1]

# The demo's floor: 0.75 balanced accuracy, the category named for 60% of detected errors. This
# smaller run (600 notes, no Ray) is held to the same floor.
N_NOTES = 600
MIN_BALANCED_ACCURACY = 0.75
MIN_CATEGORY_ACCURACY = 0.60


@pytest.mark.slow
def test_demo_model_learns_to_discriminate(tmp_path):
    t0 = time.time()
    data = tmp_path / "data"
    write_splits(data, N_NOTES, seed=7, kinds=DEMO_KINDS, length="short")
    demo = load_config(TrainConfig, str(REPO / "ray_jobs/configs/demo.yaml"))
    # One process stands in for the demo's two Ray workers: twice the per-device batch.
    cfg = load_config(
        TrainConfig,
        str(REPO / "ray_jobs/configs/demo.yaml"),
        [
            f"data.train_path={data / 'train.jsonl'}",
            "data.eval_path=null",
            f"optim.per_device_train_batch_size={2 * demo.optim.per_device_train_batch_size}",
            f"run.save_steps={demo.optim.max_steps}",
        ],
    )
    assert cfg.model.name_or_path == "tiny" and cfg.model.quantization == "nf4"
    tok = modeling.load_tokenizer(cfg.model.name_or_path)  # builds + pretrains on a cold cache
    prepared = training.prepare_data(cfg, tok)
    trainer = training.build_sft_trainer(cfg, prepared, "cpu", str(tmp_path / "work"), [])
    trainer.train()
    adapter = tmp_path / "adapter"
    trainer.save_model(str(adapter))
    del trainer

    score_cfg = load_config(
        ScoreConfig,
        str(REPO / "ray_jobs/configs/smoke_score.yaml"),
        [f"adapter={adapter}"],
    )
    scorer = scoring.Scorer(to_dict(score_cfg), score_cfg.model.name_or_path)
    test = [json.loads(line) for line in (data / "test.jsonl").read_text().splitlines()]
    rows = scorer.score_notes([r["note"] for r in test])

    y = np.array([r["category"] != "good" for r in test])
    p = np.array([row["p_error"] for row in rows])
    pred = p >= score_cfg.scoring.threshold
    balanced = ((pred & y).sum() / y.sum() + (~pred & ~y).sum() / (~y).sum()) / 2
    detected = [
        (r["category"], row["category"])
        for r, row in zip(test, rows)
        if r["category"] != "good" and row["verdict"] == "error"
    ]
    category_accuracy = np.mean([want == got for want, got in detected]) if detected else 0.0
    summary = {
        "balanced_accuracy": round(float(balanced), 3),
        "auroc": round(float(auroc(y, p)), 3),
        "category_accuracy": round(float(category_accuracy), 3),
        "errors_detected": len(detected),
        "test_notes": len(test),
        "seconds": round(time.time() - t0),
    }
    print(summary)
    assert balanced >= MIN_BALANCED_ACCURACY, summary
    assert category_accuracy >= MIN_CATEGORY_ACCURACY, summary


# What used to drown the demo's console (a fresh clone's `make demo`: 909 lines for 5 stages).
NOISE = (
    "PlacementGroupCleaner",
    "FutureWarning",
    "gemm_4bit_forward",
    "Tokenizing train dataset",
    "Reporting training result",
    "'grad_norm':",
    "Started a local Ray instance",
    "logging_progress",
)


@pytest.mark.slow
def test_demo_console_is_short_and_noise_goes_to_the_stage_logs(tmp_path):
    import re
    import subprocess
    import sys

    from discriminator import console

    out = tmp_path / "demo"
    env = {k: v for k, v in os.environ.items() if k != "RAY_ADDRESS"}
    env.update(RAY_USAGE_STATS_ENABLED="0", HF_HUB_OFFLINE="1")
    proc = subprocess.run(
        [sys.executable, "-m", "ray_jobs.demo", "--out", str(out), "--notes", "400"],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=1500,
    )
    shown = proc.stdout + proc.stderr
    assert proc.returncode == 0, shown[-3000:]
    lines = shown.splitlines()
    assert len(lines) < 150, len(lines)
    for noise in NOISE:
        assert noise not in shown, noise
    for stage in ("train", "tune", "score", "eval"):
        assert re.search(rf"^\[{stage}\] log: ", shown, re.M), stage
    steps = load_config(TrainConfig, str(REPO / "ray_jobs/configs/demo.yaml")).optim.max_steps
    assert f"[train] step {steps}/{steps}" in shown and "Demo finished" in shown
    # where the time went: every stage, and inside each job its start-up and its phases
    summary = json.loads((out / "summary.json").read_text())
    assert [st["short"] for st in summary["stages"]] == [
        "synth", "train", "tune", "score", "score-base", "baseline", "evaluate", "evaluate-floor"
    ]  # fmt: skip
    assert sum(st["seconds"] for st in summary["stages"]) <= summary["seconds"]
    for st in summary["stages"]:
        if st["short"] in ("synth", "baseline"):  # no job console: wall time only
            assert st["phases"] == [], st
            continue
        phases = [ph["phase"] for ph in st["phases"]]
        assert phases[0] == "process start" and phases[-1] == "exit", st
        assert abs(sum(ph["seconds"] for ph in st["phases"]) - st["seconds"]) < 1.0, st
    for st in summary["stages"][1:5]:
        assert "starting Ray" in [ph["phase"] for ph in st["phases"]], st
    assert summary["model_cache"] in ("cold", "warm")
    assert (
        summary["metrics"]["auroc"]
        == json.loads((out / "report/metrics.json").read_text())["auroc"]
    )
    assert re.search(r"^  time: +synth \d+s; train \d+s", shown, re.M)
    # the report: intervals, and the adapter against its base model zero-shot
    metrics = json.loads((out / "report" / "metrics.json").read_text())
    assert metrics["auroc_ci95"] and metrics["balanced_accuracy_ci95"]
    base = metrics["baseline"]
    assert base["notes"] == metrics["counts"]["evaluated"] and base["auroc_diff_ci95"]
    assert "the base model alone: AUROC" in shown
    # and beside the bag-of-words floor, on exactly the same notes
    floor = json.loads((out / "report-floor" / "metrics.json").read_text())["baseline"]
    assert summary["floor_auroc"] == floor["baseline_auroc"] is not None
    assert floor["notes"] == metrics["counts"]["evaluated"]
    assert "the bag-of-words floor: AUROC" in shown
    page = (out / "report" / "report.html").read_text()
    assert "Against the baseline" in page and "95% interval" in page
    logs = {
        job: Path(re.search(rf"^\[{job}\] log: (\S+)$", shown, re.M).group(1)).read_text()
        for job in ("train", "tune", "score")
    }
    for noise in ("PlacementGroupCleaner", "FutureWarning", "Reporting training result"):
        assert noise in logs["train"] + logs["tune"], noise
    assert "Started a local Ray instance" in logs["score"]
    # every console line is the demo's own or a job's own
    for line in lines:
        own = console.own_line(line)
        assert (
            own == line
            or line.startswith(("==> ", "    $ ", "    done in", "wrote ", "  "))
            or line in ("", "Demo finished")
            or line.startswith("Demo finished")
        ), line
