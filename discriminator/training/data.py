"""Data (driver): validated records to prompt-completion examples, and their longest length.

Runs before Ray starts: invalid data stops the job here, naming file:line, and no worker starts.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from discriminator import prompt
from discriminator.config import TrainConfig
from discriminator.data import load_valid


@dataclass
class PreparedData:
    train: list[dict[str, Any]]  # prompt-completion records (+ "id")
    eval: list[dict[str, Any]]
    max_length: int  # prompt + completion tokens of the longest example
    stats: dict[str, Any]


def _prepare_split(
    records: list[Any], tokenizer: Any, max_note_tokens: int
) -> tuple[list, int, int]:
    out, longest, truncated = [], 0, 0
    for rec in records:
        fitted = prompt.fit_note(rec.note, tokenizer, max_note_tokens)
        truncated += fitted.truncated
        pc = prompt.prompt_completion(fitted.note, rec.reason)
        full = tokenizer.apply_chat_template(pc["prompt"] + pc["completion"], tokenize=True)
        if hasattr(full, "keys"):
            full = full["input_ids"]
        longest = max(longest, len(full))
        out.append({"id": rec.id, **pc})
    return out, longest, truncated


def prepare_data(cfg: TrainConfig, tokenizer: Any) -> PreparedData:
    """Validate and format the data on the driver (raises `DataError` naming file:line)."""
    d = cfg.data
    train = load_valid(d.train_path, d.on_invalid, d.text_column, d.id_column)
    eval_ = (
        load_valid(d.eval_path, d.on_invalid, d.text_column, d.id_column) if d.eval_path else None
    )
    train_recs = train.records[: cfg.data.max_train_samples]
    eval_recs = eval_.records[: cfg.data.max_eval_samples] if eval_ else []
    budget = cfg.data.max_prompt_tokens - prompt.prompt_overhead(tokenizer)
    if budget < 32:
        raise ValueError(
            f"data.max_prompt_tokens={cfg.data.max_prompt_tokens} leaves {budget} tokens for the "
            "note after the system prompt; raise it"
        )
    train_pc, train_long, train_trunc = _prepare_split(train_recs, tokenizer, budget)
    eval_pc, eval_long, eval_trunc = _prepare_split(eval_recs, tokenizer, budget)
    stats = {
        "train_records": len(train_pc),
        "eval_records": len(eval_pc),
        "train_skipped_invalid": len(train.problems),
        "eval_skipped_invalid": len(eval_.problems) if eval_ else 0,
        "train_truncated": train_trunc,
        "eval_truncated": eval_trunc,
        "duplicates": len(train.duplicates),
    }
    # max_length covers the longest prompt + answer + end of turn: no answer is ever cut.
    return PreparedData(train_pc, eval_pc, max(train_long, eval_long) + 1, stats)
