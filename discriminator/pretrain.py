"""A short causal-LM pretraining of the tiny model on plain note text: the stand-in for Llama's.

The tiny model starts from random weights; a few minutes of next-token prediction on synthetic
discharge notes (plus generic text such as the reasons' vocabulary) give it what a real base
brings to fine-tuning: embeddings, the notes' layout, and copying between the header, the
narrative and the footer. It never sees the discrimination task (no chat template, no system
prompt + note + answer), so a discriminator built on it only works when the QLoRA path
(template, loss mask, adapter save/load, first-token scoring) is right.

Plain torch loop, fp32, CPU, deterministic for a seed: texts are tokenized, joined with the
end-of-text token into one stream, cut into fixed-length blocks and visited in a seeded order.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class PretrainConfig:
    steps: int = 300
    batch_size: int = 8  # blocks per step
    seq_len: int = 256  # tokens per block
    learning_rate: float = 3e-3
    warmup: int = 20
    weight_decay: float = 0.01
    max_grad_norm: float = 1.0
    seed: int = 0
    threads: int = 0  # torch intra-op threads; 0 keeps the process default
    log_every: int = 25


def token_blocks(texts: Sequence[str], tokenizer: Any, seq_len: int, eos_id: int) -> Any:
    """All texts as one stream (each followed by `eos_id`) cut into [n, seq_len] blocks."""
    import torch

    stream: list[int] = []
    for enc in tokenizer(list(texts), add_special_tokens=False)["input_ids"]:
        stream.extend(enc)
        stream.append(eos_id)
    n = len(stream) // seq_len
    if n == 0:
        raise ValueError(f"pretraining corpus has {len(stream)} tokens, fewer than one block")
    return torch.tensor(stream[: n * seq_len], dtype=torch.long).view(n, seq_len)


def pretrain(
    model: Any,
    tokenizer: Any,
    texts: Sequence[str],
    cfg: PretrainConfig,
    log: Callable[[str], None] | None = print,
) -> dict[str, Any]:
    """Train `model` in place with next-token prediction on `texts`; returns a summary."""
    import torch

    if cfg.steps <= 0:
        return {"steps": 0}
    prev_threads = torch.get_num_threads()
    if cfg.threads > 0:
        torch.set_num_threads(cfg.threads)
    try:
        torch.manual_seed(cfg.seed)
        eos = tokenizer.convert_tokens_to_ids("<|end_of_text|>")
        blocks = token_blocks(texts, tokenizer, cfg.seq_len, eos)
        gen = torch.Generator().manual_seed(cfg.seed)
        order = torch.cat(
            [
                torch.randperm(len(blocks), generator=gen)
                for _ in range(math.ceil(cfg.steps * cfg.batch_size / len(blocks)))
            ]
        )
        decay = [p for n, p in model.named_parameters() if p.ndim >= 2]
        no_decay = [p for n, p in model.named_parameters() if p.ndim < 2]
        opt = torch.optim.AdamW(
            [
                {"params": decay, "weight_decay": cfg.weight_decay},
                {"params": no_decay, "weight_decay": 0.0},
            ],
            lr=cfg.learning_rate,
            betas=(0.9, 0.95),
        )

        def lr_at(step: int) -> float:  # linear warm-up, cosine decay to 10%
            if step < cfg.warmup:
                return cfg.learning_rate * (step + 1) / cfg.warmup
            t = (step - cfg.warmup) / max(cfg.steps - cfg.warmup, 1)
            return cfg.learning_rate * (0.1 + 0.45 * (1 + math.cos(math.pi * t)))

        model.train()
        model.config.use_cache = False
        t0, losses = time.time(), []
        if log:
            log(
                f"[pretrain] {len(blocks)} blocks of {cfg.seq_len} tokens; "
                f"{cfg.steps} steps x {cfg.batch_size} blocks"
            )
        for step in range(cfg.steps):
            for group in opt.param_groups:
                group["lr"] = lr_at(step)
            batch = blocks[order[step * cfg.batch_size : (step + 1) * cfg.batch_size]]
            loss = model(input_ids=batch, labels=batch).loss
            opt.zero_grad(set_to_none=True)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), cfg.max_grad_norm)
            opt.step()
            losses.append(loss.item())
            done = step + 1
            if log and (done % cfg.log_every == 0 or done == cfg.steps):
                el = time.time() - t0
                recent = losses[-cfg.log_every :]
                log(
                    f"[pretrain] step {done}/{cfg.steps}  loss {sum(recent) / len(recent):.3f}  "
                    f"tokens/s {done * cfg.batch_size * cfg.seq_len / el:,.0f}  "
                    f"eta {el / done * (cfg.steps - done):,.0f}s"
                )
        model.eval()
        tail = losses[-cfg.log_every :]
        return {
            "steps": cfg.steps,
            "blocks": len(blocks),
            "final_loss": sum(tail) / len(tail),
            "seconds": round(time.time() - t0, 1),
        }
    finally:
        torch.set_num_threads(prev_threads)
