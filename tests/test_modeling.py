"""Model translators, the tiny offline model in 4-bit on CPU, and the 8B shape."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import torch

from discriminator import modeling
from discriminator.config import LoraSection, ModelConfig


def test_bnb_config_translator():
    q = modeling.bnb_config(ModelConfig())
    assert q.load_in_4bit and q.bnb_4bit_quant_type == "nf4"
    assert q.bnb_4bit_use_double_quant is True
    assert q.bnb_4bit_compute_dtype == torch.bfloat16
    assert modeling.bnb_config(ModelConfig(quantization="none")) is None
    q32 = modeling.bnb_config(ModelConfig(dtype="float32", double_quant=False))
    assert q32.bnb_4bit_compute_dtype == torch.float32 and not q32.bnb_4bit_use_double_quant


def test_lora_config_translator():
    lc = modeling.lora_config(LoraSection(r=8, alpha=16, dropout=0.1))
    assert (lc.r, lc.lora_alpha, lc.lora_dropout) == (8, 16, 0.1)
    assert set(lc.target_modules) == {
        "q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"
    }  # fmt: skip
    assert lc.task_type == "CAUSAL_LM"


def test_tiny_model_tokenizer_has_llama_special_tokens(tiny_model_dir):
    tok = modeling.load_tokenizer(str(tiny_model_dir))
    for t in modeling.SPECIAL_TOKENS:
        ids = tok(t, add_special_tokens=False)["input_ids"]
        assert len(ids) == 1, t  # each special token is one id, never split
    assert tok.eos_token == "<|eot_id|>" and tok.pad_token == "<|finetune_right_pad_id|>"
    text = "Admission Date: 2024-05-01. Metoprolol 25 mg PO BID."
    assert tok.decode(tok(text, add_special_tokens=False)["input_ids"]) == text
    assert (tiny_model_dir / "model.safetensors").exists()
    assert not list(tiny_model_dir.glob("*.bin"))


def test_tiny_model_loads_in_4bit_on_cpu(tiny_model_dir):
    import bitsandbytes as bnb

    cfg = ModelConfig(name_or_path=str(tiny_model_dir), quantization="nf4", dtype="float32")
    model = modeling.load_base_model(cfg)
    layer = model.model.layers[0]
    for name in ("q_proj", "k_proj", "v_proj", "o_proj"):
        assert isinstance(getattr(layer.self_attn, name), bnb.nn.Linear4bit)
    for name in ("gate_proj", "up_proj", "down_proj"):
        assert isinstance(getattr(layer.mlp, name), bnb.nn.Linear4bit)
    tok = modeling.load_tokenizer(str(tiny_model_dir))
    ids = tok("Name: Ann", return_tensors="pt")
    with torch.no_grad():
        q_logits = model(**ids).logits
    full = modeling.load_base_model(
        ModelConfig(name_or_path=str(tiny_model_dir), quantization="none", dtype="float32")
    )
    with torch.no_grad():
        f_logits = full(**ids).logits
    assert torch.isfinite(q_logits).all()
    # NF4 is lossy but close: the 4-bit model is the same network. On this random-weight tiny
    # model the logits differ by 0.20-0.31 relative (5-326 tokens, measured); another network
    # (weights not loaded, a wrong layer) differs by about 1 or more.
    rel = (q_logits - f_logits).norm() / f_logits.norm()
    assert rel < 0.35, rel


def test_llama31_8b_shape_has_8b_parameters():
    cfg = modeling.shape_config("llama-3.1-8b")
    n = modeling.count_parameters(cfg)
    assert 8.0e9 < n < 8.1e9, n
    assert cfg.num_key_value_heads == 8 and cfg.rope_scaling["rope_type"] == "llama3"


def test_tiny_pretraining_context_covers_the_discriminator_prompt(tmp_path):
    """The tiny base is pretrained on blocks of `seq_len` tokens; positions past that are never
    trained, and a decision made there reads an untrained part of the model. Every prompt of
    the recipe's note length (system prompt + note + chat template + answer prefix) must fit."""
    from discriminator import prompt
    from discriminator.synth import generate_records

    r = modeling.TINY_RECIPE
    corpus = modeling.build_tiny_corpus(
        r["notes"], r["seed"], r["length"], r["system_prompt_repeats"]
    )
    tok = modeling.load_tokenizer(
        str(modeling.make_tiny_model(tmp_path, corpus, vocab_size=r["vocab_size"], seed=0))
    )
    pre, _ = prompt.answer_ids(tok)
    notes = [x["note"] for x in generate_records(300, seed=11, length=r["length"])]
    ids = tok([prompt.render_prompt(tok, n) for n in notes], add_special_tokens=False)["input_ids"]
    longest = max(len(x) for x in ids) + len(pre)
    assert 400 < longest <= r["pretrain"]["seq_len"], longest


def test_tiny_pretraining_sees_the_answer_format_but_never_a_note_with_its_answer():
    """The pretraining text holds good notes, the system prompt and answers in the JSON format
    on their own (as many "good" as error answers, every category among them), so the base
    knows the format; no text holds both a note and an answer: the decision is the fine-tune's."""
    from discriminator import prompt

    texts = modeling.build_pretrain_corpus(200, seed=0, length="short")
    answers = [t for t in texts if t.startswith(prompt.ANSWER_PREFIX)]
    parsed = [prompt.parse_reason(t) for t in answers]
    good = [a for a in parsed if a.verdict == "good"]
    assert len(answers) == 2 * 50 and len(good) == 50
    assert {a.category for a in parsed if a.verdict == "error"} == set(prompt.CATEGORIES)
    notes = [t for t in texts if t not in answers and t != prompt.SYSTEM_PROMPT]
    assert len(notes) == 200 and not any(prompt.ANSWER_PREFIX in t for t in notes)
    assert texts.count(prompt.SYSTEM_PROMPT) == 2
    assert texts == modeling.build_pretrain_corpus(200, seed=0, length="short")  # deterministic


def test_a_hub_model_not_in_the_cache_says_how_to_download_it_today(monkeypatch, tmp_path):
    """One line: `hf download` into the cache the jobs read, the gated-repo steps, shared storage
    on a cluster, or a local copy; and the `hf` commands it names exist in the installed hub."""
    from huggingface_hub import constants

    hf_home = tmp_path / "hf"
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", True)
    monkeypatch.setattr(constants, "HF_HOME", str(hf_home))
    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(hf_home / "hub"))
    repo = "meta-llama/Llama-3.1-8B-Instruct"
    with pytest.raises(modeling.ModelNotFound) as e:
        modeling.check_model(repo)
    msg = str(e.value)
    assert "\n" not in msg and msg.startswith(f"base model {repo}: not in the local Hugging Face")
    assert f"`HF_HOME={hf_home} hf download {repo}`" in msg
    assert f"licence accepted on https://huggingface.co/{repo}" in msg and "`hf auth login`" in msg
    assert "every node sees" in msg and "model.name_or_path" in msg
    assert "huggingface-cli" not in msg
    # a cache set apart from HF_HOME is the one named
    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(tmp_path / "hub-cache"))
    assert f"`HF_HUB_CACHE={tmp_path / 'hub-cache'} hf download {repo}`" in modeling.download_hint(
        repo
    )
    hf = Path(sys.executable).parent / "hf"
    for cmd in (["download", "--help"], ["auth", "login", "--help"]):
        proc = subprocess.run([str(hf), *cmd], capture_output=True, text=True, timeout=60)
        assert proc.returncode == 0 and "Usage: hf " in proc.stdout, (cmd, proc.stderr)
