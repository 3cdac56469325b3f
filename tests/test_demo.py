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
