"""Shared fixtures: the tiny offline model (built once per session), env for offline Ray/HF."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
os.environ.setdefault("RAY_TRAIN_ENABLE_PRINT_PATCH", "0")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")

REPO = Path(__file__).resolve().parents[1]


def _has_cuda() -> bool:
    try:
        import torch

        return torch.cuda.is_available()
    except Exception:
        return False


SLOW_TIMEOUT_S = 1800  # per test marked slow (pyproject's `timeout` covers the rest)


def pytest_collection_modifyitems(config, items):
    for item in items:
        if "slow" in item.keywords and item.get_closest_marker("timeout") is None:
            item.add_marker(pytest.mark.timeout(SLOW_TIMEOUT_S))
    if _has_cuda():
        return
    skip = pytest.mark.skip(reason="needs a CUDA GPU")
    for item in items:
        if "gpu" in item.keywords:
            item.add_marker(skip)


@pytest.fixture(scope="session")
def synth_records():
    """A few hundred short synthetic notes (deterministic)."""
    from discriminator.synth import generate_records

    return generate_records(400, seed=0, error_rate=0.5, length="short")


@pytest.fixture(scope="session")
def tiny_model_dir(tmp_path_factory, synth_records) -> Path:
    """The tiny offline Llama (random weights, BPE trained on synthetic notes)."""
    from discriminator import modeling, prompt

    texts = [r["note"] for r in synth_records] + [r["reason"] for r in synth_records]
    texts += [prompt.SYSTEM_PROMPT, prompt.format_answer("good")]
    out = tmp_path_factory.mktemp("tiny-model")
    return modeling.make_tiny_model(out, texts, vocab_size=2048, seed=0)


@pytest.fixture(scope="session")
def lora_adapter_dir(tiny_model_dir, tmp_path_factory) -> Path:
    """A LoRA adapter (r=8) for the tiny model whose B matrices are small random values, so it
    changes outputs (an untrained adapter's B is zero). Safetensors + tokenizer, as training
    exports them."""
    import torch
    from peft import get_peft_model

    from discriminator import modeling
    from discriminator.config import LoraSection, ModelConfig

    base = modeling.load_base_model(
        ModelConfig(name_or_path=str(tiny_model_dir), quantization="none", dtype="float32")
    )
    model = get_peft_model(base, modeling.lora_config(LoraSection(r=8)))
    gen = torch.Generator().manual_seed(0)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if "lora_B" in name:
                p.copy_(torch.randn(p.shape, generator=gen) * 0.05)
    out = tmp_path_factory.mktemp("adapter")
    model.save_pretrained(out, safe_serialization=True)
    modeling.load_tokenizer(str(tiny_model_dir)).save_pretrained(out)
    return out


@pytest.fixture(scope="module")
def ray_local():
    """A private local Ray instance (2 CPUs) for one test module: the jobs' own start-up (a fresh
    0700 folder, loopback, token auth), removed afterwards."""
    from discriminator.runtime import init_ray, shutdown_ray

    init_ray(num_cpus=2, log_to_driver=False)
    yield
    shutdown_ray()
