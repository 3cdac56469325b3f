"""Objective: the decision-weighted loss weights and the first-token metrics read at evaluation.

The metrics are what scoring reads, measured on the evaluation notes at every evaluation: p_error
over the decision tokens after the forced answer prefix, and the category whose label's first
token is likeliest.
"""

from __future__ import annotations

from typing import Any

from discriminator import prompt

FIRST_TOKEN_METRICS = ("auroc", "balanced_accuracy", "category_accuracy")


def first_token_scores(
    model: Any, tokenizer: Any, prompts: list[list[dict[str, str]]], batch_size: int = 8
) -> tuple[list[float], list[str]]:
    """(p_error, predicted category) per prompt from one forward pass, exactly as scoring reads
    the answer: prompt + forced answer prefix, p_error over the decision tokens
    (`scoring.decision_probs`), and the category whose label's first token is likeliest."""
    from discriminator.scoring import decision_probs, last_logits

    prefix, _ = prompt.answer_ids(tokenizer)
    good_id, cat_ids = prompt.decision_ids(tokenizer)
    seqs = []
    for messages in prompts:
        ids = tokenizer.apply_chat_template(messages, add_generation_prompt=True, tokenize=True)
        seqs.append([*(ids["input_ids"] if hasattr(ids, "keys") else ids), *prefix])
    device = next(model.parameters()).device
    p_error: list[float] = []
    predicted: list[str] = []
    step = max(batch_size, 1)
    for start in range(0, len(seqs), step):
        logits = last_logits(model, seqs[start : start + step], tokenizer.pad_token_id, device)
        p_error += decision_probs(logits.numpy(), good_id, cat_ids)[0].tolist()
        # softmax is monotonic: the likeliest category token is the one with the largest logit
        predicted += [prompt.CATEGORIES[j] for j in logits[:, cat_ids].argmax(-1).tolist()]
    return p_error, predicted


def first_token_metrics(
    true_categories: list[str],
    p_error: list[float],
    predicted: list[str],
    threshold: float = prompt.DECISION_THRESHOLD,
) -> dict[str, float]:
    """AUROC of p_error for "has an error", balanced accuracy at `threshold`, and the share of
    detected errors (true errors with p_error >= threshold) whose first token names the right
    category. Metrics that need a class absent from the set are left out."""
    import numpy as np

    from discriminator.metrics import EvalData, auroc, binary_metrics, category_metrics

    y = np.array([c != prompt.GOOD for c in true_categories], dtype=bool)
    p = np.asarray(p_error, dtype=float)
    data = EvalData([], y, p >= threshold, p, list(true_categories), list(predicted))
    out: dict[str, float] = {}
    if (area := auroc(y, p)) is not None:
        out["auroc"] = area
    if y.any() and not y.all():  # as in evaluation: it needs both classes, like AUROC
        out["balanced_accuracy"] = binary_metrics(y, data.y_pred)["balanced_accuracy"]
    # the evaluation report's definition: right category among detected errors
    if (right := category_metrics(data)["category_accuracy"]) is not None:
        out["category_accuracy"] = right
    return out


def decision_weights(labels: Any, offset: int, weight: float) -> Any:
    """Per-position loss weights [batch, T]: `weight` at each row's decision token (the
    `offset`-th label after the first supervised one, i.e. the token after the answer prefix),
    1 elsewhere. `labels` are already shifted to align with the predicted positions."""
    import torch

    w = torch.ones(labels.shape, dtype=torch.float32, device=labels.device)
    supervised = labels != -100
    has = supervised.any(dim=1)
    first = supervised.float().argmax(dim=1)  # first supervised position of each row
    pos = (first + offset).clamp(max=labels.shape[1] - 1)
    rows = torch.arange(labels.shape[0], device=labels.device)[has]
    w[rows, pos[has]] = weight
    return w
