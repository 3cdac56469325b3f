"""On a CUDA GPU (about 2 minutes; skipped without one): training, scoring and merge on the device.

The project's QLoRA trainer on NF4 weights, the scorer's prefill and generation, and the bf16
merge, each on the device.

    python -m pytest -m gpu tests/test_gpu.py
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest

pytestmark = pytest.mark.gpu

REPO = Path(__file__).resolve().parents[1]
SMOKE = REPO / "ray_jobs" / "configs" / "smoke.yaml"
SMOKE_SCORE = REPO / "ray_jobs" / "configs" / "smoke_score.yaml"


@pytest.fixture(scope="module")
def cuda():
    import torch

    if not torch.cuda.is_available():
        pytest.skip("needs a CUDA GPU")
    return torch.device("cuda:0")


def test_qlora_steps_on_nf4_weights_on_cuda(cuda, tiny_model_dir, synth_records, tmp_path):
    """A few optimizer steps of the project's trainer with the GPU settings (NF4 base, bf16
    compute, paged 8-bit AdamW, gradient checkpointing): finite loss, LoRA weights on the GPU
    and changed, the base weights still 4-bit."""
    import bitsandbytes as bnb
    import torch

    from discriminator import training
    from discriminator.config import TrainConfig, load_config
    from discriminator.modeling import load_tokenizer

    data_path = tmp_path / "train.jsonl"
    data_path.write_text(
        "".join(
            json.dumps({k: r[k] for k in ("id", "note", "reason")}) + "\n"
            for r in synth_records[:24]
        )
    )
    cfg = load_config(
        TrainConfig,
        SMOKE,
        [
            f"model.name_or_path={tiny_model_dir}",
            f"data.train_path={data_path}",
            "data.eval_path=null",
            "model.quantization=nf4",
            "model.dtype=bfloat16",
            "optim.optim=paged_adamw_8bit",
            "optim.gradient_checkpointing=true",
            "optim.max_steps=3",
            "run.save_steps=100000",
        ],
    )
    data = training.prepare_data(cfg, load_tokenizer(str(tiny_model_dir)))
    trainer = training.build_sft_trainer(cfg, data, cuda, str(tmp_path / "work"), [])
    lora = {n: p.detach().clone() for n, p in trainer.model.named_parameters() if p.requires_grad}
    assert lora and all(p.device.type == "cuda" for p in lora.values())
    result = trainer.train()
    assert math.isfinite(result.training_loss) and result.training_loss > 0
    after = dict(trainer.model.named_parameters())
    assert any(not torch.equal(after[n].detach(), v) for n, v in lora.items())
    assert any(isinstance(m, bnb.nn.Linear4bit) for m in trainer.model.modules())
    assert torch.cuda.max_memory_allocated() > 0


def test_scorer_prefill_and_generation_on_cuda(cuda, tiny_model_dir, lora_adapter_dir):
    """The scorer on the GPU (merged bf16): its prefill matches a plain forward of the merged
    model on the same device, and generation after the forced answer prefix returns text."""
    import numpy as np
    import torch

    from discriminator import scoring
    from discriminator.config import ScoreConfig, load_config, to_dict
    from discriminator.modeling import load_tokenizer
    from discriminator.prompt import ANSWER_PREFIX, render_prompt

    cfg = load_config(
        ScoreConfig,
        SMOKE_SCORE,
        [f"model.name_or_path={tiny_model_dir}", f"adapter={lora_adapter_dir}",
         "model.quantization=none", "model.dtype=bfloat16", "scoring.threshold=0.0"],
    )  # fmt: skip
    scorer = scoring.Scorer(to_dict(cfg), scoring.tokenizer_path(cfg))
    assert scorer.device.type == "cuda"
    assert next(scorer.model.parameters()).device.type == "cuda"
    tok = load_tokenizer(str(lora_adapter_dir))
    notes = [
        "Patient discharged home in stable condition.",
        "Admitted 2024-03-01, left 2024-02-27.",
    ]
    seqs = [
        tok(render_prompt(tok, n) + ANSWER_PREFIX, add_special_tokens=False)["input_ids"]
        for n in notes
    ]
    logits = scorer.prefill(seqs)
    assert logits.shape[0] == 2 and np.isfinite(logits).all()
    with torch.inference_mode():
        one = scorer.model(input_ids=torch.tensor([seqs[0]], device=cuda)).logits[0, -1]
    np.testing.assert_allclose(logits[0], one.float().cpu().numpy(), rtol=0.05, atol=0.05)
    texts = scorer.generate(seqs)
    assert len(texts) == 2 and all(isinstance(t, str) for t in texts)


def test_bf16_merge_matches_the_unmerged_adapter_on_cuda(
    cuda, tiny_model_dir, lora_adapter_dir, tmp_path
):
    """`merge_adapter` (bf16): the merged model's logits on the GPU match base + unmerged
    adapter's within bf16 rounding."""
    import torch
    from peft import PeftModel
    from transformers import AutoModelForCausalLM

    from discriminator.training import merge_adapter

    merged_dir = merge_adapter(str(tiny_model_dir), lora_adapter_dir, tmp_path / "merged")
    ids = torch.arange(5, 69, device=cuda).unsqueeze(0)
    merged = AutoModelForCausalLM.from_pretrained(merged_dir, dtype=torch.bfloat16).to(cuda)
    base = AutoModelForCausalLM.from_pretrained(str(tiny_model_dir), dtype=torch.bfloat16)
    unmerged = PeftModel.from_pretrained(base.to(cuda), str(lora_adapter_dir)).eval()
    with torch.inference_mode():
        a = merged(input_ids=ids).logits.float()
        b = unmerged(input_ids=ids).logits.float()
    assert next(merged.parameters()).dtype == torch.bfloat16
    assert (a - b).abs().max().item() < 0.1 * b.abs().max().item()
