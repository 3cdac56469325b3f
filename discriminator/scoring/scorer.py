"""Score (Ray Data actors): one prefill per note for p_error, greedy reasons where needed."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa

from discriminator.config import ScoreConfig, from_dict
from discriminator.prompt import (
    ANSWER_PREFIX,
    CATEGORIES,
    GOOD,
    OTHER,
    answer_ids,
    decision_ids,
    parse_reason,
)
from discriminator.scoring.prepare import fit_prompts, prompt_head, tokenizer_for
from discriminator.scoring.schema import SCORED_SCHEMA, ScoreError, scrub_error

log = logging.getLogger(__name__)


def decision_probs(
    logits: Any, good_id: int, error_ids: list[int]
) -> tuple[np.ndarray, np.ndarray]:
    """(p_error, off_decision) per row of last-position logits [batch, vocab], float64.

    The answer's first token is the decision: `good` or the first token of an error category.
    p_error = P(errors) / (P(good) + P(errors)), the error share of the mass on the decision
    tokens; off_decision = 1 - P(good) - P(errors), the mass on every other token (a diagnostic:
    high when the model has not learned the answer format). Computed in log space, so no mass
    underflows. There is no other rule: a tokenizer whose labels share a first token is refused
    before scoring starts (`run_scoring`), so one scoring version means one definition.
    """
    x = np.asarray(logits, dtype=np.float64)
    log_z = _logsumexp(x)
    log_good = x[:, good_id]
    log_err = _logsumexp(x[:, error_ids])
    log_decision = np.logaddexp(log_good, log_err)
    p_error = np.exp(log_err - log_decision)
    off = -np.expm1(np.minimum(log_decision - log_z, 0.0))
    return p_error, off


def p_error_from_logits(logits: Any, good_id: int, error_ids: list[int]) -> np.ndarray:
    """p_error per row of last-position logits (see `decision_probs`)."""
    return decision_probs(logits, good_id, error_ids)[0]


def _logsumexp(x: np.ndarray) -> np.ndarray:
    m = x.max(axis=-1, keepdims=True)
    return (m + np.log(np.exp(x - m).sum(axis=-1, keepdims=True)))[:, 0]


def forced_first_tokens(logits: Any, candidate_ids: list[int]) -> np.ndarray:
    """Per row of last-position logits [batch, vocab], the likeliest of `candidate_ids`.

    A note the prefill flags (p_error >= threshold) can still have "good" as its single likeliest
    first token while the error categories together hold more mass; greedy decoding would then
    contradict the verdict. Generation for a flagged note therefore starts from the likeliest
    error-category token, so its reason and category follow the verdict.
    """
    x = np.asarray(logits, dtype=np.float64)[:, candidate_ids]
    return np.asarray(candidate_ids, dtype=np.int64)[x.argmax(axis=-1)]


def left_pad(seqs: list[list[int]], pad_id: int) -> tuple[Any, Any]:
    """(ids, attention mask) as [batch, width] long tensors, padded on the left so every
    sequence ends at the last column."""
    import torch

    width = max(len(s) for s in seqs)
    ids = torch.full((len(seqs), width), pad_id, dtype=torch.long)
    mask = torch.zeros((len(seqs), width), dtype=torch.long)
    for i, s in enumerate(seqs):
        ids[i, width - len(s) :] = torch.tensor(s, dtype=torch.long)
        mask[i, width - len(s) :] = 1
    return ids, mask


def last_logits(model: Any, seqs: list[list[int]], pad_id: int, device: Any) -> Any:
    """Float32 CPU logits [batch, vocab] at the last position of each sequence, from one
    left-padded forward pass (scoring's prefill; training's first-token metrics)."""
    import torch

    ids, mask = left_pad(seqs, pad_id)
    # Left padding shifts positions; pass them explicitly so padding changes nothing.
    pos = (mask.cumsum(-1) - 1).clamp(min=0)
    with torch.inference_mode():
        out = model(
            input_ids=ids.to(device),
            attention_mask=mask.to(device),
            position_ids=pos.to(device),
            use_cache=False,
            logits_to_keep=1,
        )
    return out.logits[:, -1, :].float().cpu()


def bucket_batches(lengths: list[int], batch_tokens: int, max_batch_size: int) -> list[list[int]]:
    """Indices sorted by length, cut so that padded tokens (n * longest) <= batch_tokens.

    A row longer than the budget gets a batch of its own. Sorting first keeps padding small.
    """
    return list(cut_sorted(lengths, lambda: (batch_tokens, max_batch_size)))


def cut_sorted(lengths: list[int], limits: Callable[[], tuple[int, int]]) -> Iterator[list[int]]:
    """Yield the indices of `lengths`, sorted by length, one batch at a time: each batch as long
    as `batch_end` allows under `limits()` = (padded-token budget, most rows), asked again before
    every batch (the scorer's limits follow the speed it measures)."""
    order = sorted(range(len(lengths)), key=lambda i: lengths[i])
    ascending = [lengths[i] for i in order]
    start = 0
    while start < len(order):
        end = batch_end(ascending, start, *limits())
        yield order[start:end]
        start = end


def batch_end(ascending: list[int], start: int, batch_tokens: int, max_batch_size: int) -> int:
    """End of the sub-batch that starts at `start` of lengths sorted ascending: as many rows as
    keep padded tokens (n * longest, the last row's length) <= batch_tokens and n <=
    max_batch_size; at least one row."""
    end = start + 1
    while (
        end < len(ascending)
        and end - start < max_batch_size
        and (end - start + 1) * ascending[end] <= batch_tokens
    ):
        end += 1
    return end


def finish_row(
    p_error: float,
    generated: str | None,
    mode: str,
    threshold: float,
    decided: str | None = None,
) -> dict:
    """verdict / reason / category of one scored note.

    `generated` is the decoded continuation after the forced answer prefix (None when not
    generated). threshold/never: the verdict comes from p_error. always: from the parsed
    generation (p_error decides only when the generation cannot be parsed). `decided`: the
    category whose first token a flagged note's generation was started from; it names the
    category when the generated reason does not parse to one.
    """
    verdict = "error" if p_error >= threshold else "good"
    if generated is None:
        if verdict == "good":
            return {"verdict": "good", "reason": GOOD, "category": GOOD}
        return {"verdict": "error", "reason": None, "category": None}
    parsed = parse_reason(ANSWER_PREFIX + generated)
    if decided is not None and verdict == "error":
        category = parsed.category if parsed.category in CATEGORIES else decided
        return {"verdict": "error", "reason": parsed.reason or None, "category": category}
    if mode == "always" and parsed.verdict != "unparsed":
        verdict = parsed.verdict
    if parsed.verdict == "unparsed":
        return {
            "verdict": verdict,
            "reason": None,
            "category": OTHER if verdict == "error" else GOOD,
        }
    if verdict == "error" and parsed.verdict == "good":
        # The prefill says error but greedy decoding says good: keep the verdict, say so.
        return {"verdict": "error", "reason": None, "category": OTHER}
    return {"verdict": verdict, "reason": parsed.reason, "category": parsed.category}


def _resolve_dtype(cfg: ScoreConfig, on_gpu: bool) -> str:
    if cfg.scoring.dtype != "auto":
        return cfg.scoring.dtype
    return cfg.model.dtype if on_gpu else "float32"  # CPUs: fp32 is faster and exact


class Scorer:
    """Load base + adapter once (`__init__`); score one batch of prepared rows (`__call__`)."""

    def __init__(self, cfg: dict, tokenizer: str, progress: Any = None):
        from discriminator.modeling import load_base_model

        self.setup(cfg, tokenizer, progress)
        c = self.cfg
        on_gpu = self.device.type == "cuda"
        dtype = _resolve_dtype(c, on_gpu)
        model = load_base_model(c.model, device_map={"": 0} if on_gpu else None, dtype=dtype)
        if c.adapter:
            from peft import PeftModel

            check_adapter(c.adapter)
            model = PeftModel.from_pretrained(model, c.adapter, is_trainable=False)
            if c.scoring.merge and c.model.quantization == "none":
                model = model.merge_and_unload()  # one matmul per layer instead of three
        self.model = model.eval()

    def setup(self, cfg: dict, tokenizer: str, progress: Any = None) -> None:
        """Everything but the model: config, device, tokenizer, the decision tokens, generation
        settings, the progress counter. `__init__` calls it, then loads the model; a scorer
        with another forward (the benchmarks' constant-time stand-in) calls it alone."""
        import torch
        from transformers import GenerationConfig

        self.cfg = c = from_dict(ScoreConfig, cfg)
        self.progress = progress  # an actor counting scored rows for the driver's progress
        self.unreported, self.reported_at = 0, 0.0
        self.s_per_token: float | None = None  # measured seconds per padded token (sub_batches)
        self.torch = torch
        self.device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
        # The one the preparation step uses (cached per process): when Ray Data runs it in this
        # actor, the tokenizer is loaded and its prompt head tokenized once, here, not on the
        # first chunk.
        self.tok = tokenizer_for(tokenizer)
        prompt_head(self.tok)
        self.prefix, self.good_id = answer_ids(self.tok)
        # The tokens an error answer starts with ("Timeline", "PHI", ...): what p_error is read
        # over, and what a flagged note's reason starts from.
        # (labels that share a first token were refused before scoring: `run_scoring`)
        _, self.error_ids = decision_ids(self.tok)
        self.category_of_id = dict(zip(self.error_ids, CATEGORIES))
        self.first_candidates = self.error_ids
        eos = {self.tok.eos_token_id}
        eos |= {self.tok.convert_tokens_to_ids(t) for t in ("<|eot_id|>", "<|end_of_text|>")}
        eos = sorted(i for i in eos if isinstance(i, int) and i != self.tok.unk_token_id)
        self.gen_config = GenerationConfig(
            max_new_tokens=c.scoring.max_new_tokens,
            do_sample=False,
            num_beams=1,
            eos_token_id=eos,
            pad_token_id=self.tok.pad_token_id,
        )

    def decide(self, logits: Any) -> tuple[np.ndarray, np.ndarray]:
        """(p_error, off_decision) per row of prefill logits (`decision_probs`)."""
        return decision_probs(logits, self.good_id, self.error_ids)

    def prefill(self, seqs: list[list[int]]) -> np.ndarray:
        """Last-position logits [batch, vocab] from one forward pass over prompt + answer prefix."""
        return last_logits(self.model, seqs, self.tok.pad_token_id, self.device).numpy()

    def generate(self, seqs: list[list[int]], first: list[int] | None = None) -> list[str]:
        """Greedy continuation after the forced answer prefix, decoded. With `first`, each
        sequence's answer starts with that token (included in the decoded text)."""
        forced = 0 if first is None else 1
        if first is not None:
            seqs = [[*s, int(f)] for s, f in zip(seqs, first)]
        ids, mask = (t.to(self.device) for t in left_pad(seqs, self.tok.pad_token_id))
        with self.torch.inference_mode():
            out = self.model.generate(
                input_ids=ids, attention_mask=mask, generation_config=self.gen_config
            )
        return self.tok.batch_decode(out[:, ids.shape[1] - forced :], skip_special_tokens=True)

    def score_batch(self, seqs: list[list[int]]) -> list[dict]:
        mode, threshold = self.cfg.scoring.generate, self.cfg.scoring.threshold
        phase = "prefill"
        try:
            logits = self.prefill(seqs)
            p, off = self.decide(logits)
            want = [
                i
                for i in range(len(seqs))
                if mode == "always" or (mode == "threshold" and p[i] >= threshold)
            ]
            texts: dict[int, str] = {}
            decided: dict[int, str] = {}
            if want:
                phase = "generation"
                first = None
                if mode == "threshold":  # the verdict is the prefill's: the reason must follow it
                    first = forced_first_tokens(logits[want], self.first_candidates)
                    decided = {
                        i: c
                        for i, f in zip(want, first.tolist())
                        if (c := self.category_of_id.get(f))
                    }
                texts = dict(zip(want, self.generate([seqs[i] for i in want], first)))
        except Exception as e:
            e.add_note(phase)
            raise
        return [
            {
                "p_error": float(p[i]),
                "off_decision": float(off[i]),
                **finish_row(float(p[i]), texts.get(i), mode, threshold, decided.get(i)),
            }
            for i in range(len(seqs))
        ]

    def score_notes(self, notes: list[str]) -> list[dict]:
        """Score note texts in this process (prompt budget, length buckets); rows in input order.
        The loop benchmarks and tests run without Ray Data."""
        s = self.cfg.scoring
        fitted = fit_prompts(self.tok, notes, s.max_prompt_tokens)
        for got in fitted:
            if isinstance(got, BaseException):
                raise got
        seqs = [got[0] for got in fitted]
        rows: list[dict] = [{} for _ in seqs]
        for batch in bucket_batches([len(x) for x in seqs], s.batch_tokens, s.max_batch_size):
            for i, row in zip(batch, self.score_batch([seqs[i] for i in batch])):
                rows[i] = row
        return rows

    # Sub-batches are kept to about this many seconds each (prefill and generation) at the speed
    # measured on the earlier ones, so rows reach the progress counter during a chunk even where
    # a forward is slow: on a 2-core machine SmolLM2-135M took ~90 s per sub-batch of 64 MEDEC
    # notes (max_batch_size 64), and the job's "rows scored" stood still that long. A GPU meets
    # `batch_tokens` / `max_batch_size` first; on a CPU, smaller batches cost nothing (prefill
    # is compute-bound: one thread, 1.4 s per note at 8 notes a batch, 1.8 s at 64).
    BATCH_SECONDS = 10.0
    PROBE_ROWS = 4  # the first sub-batch of an actor, before any speed is known

    def sub_batches(self, lengths: list[int]) -> Iterator[list[int]]:
        """Yield the indices of each sub-batch of one group of rows (`lengths`: their token
        counts): sorted by length, cut under `batch_tokens` / `max_batch_size` and under the
        padded tokens that take `BATCH_SECONDS` at the speed measured so far (`timed`)."""
        s = self.cfg.scoring

        def limits() -> tuple[int, int]:
            if self.s_per_token is None:
                return s.batch_tokens, min(s.max_batch_size, self.PROBE_ROWS)
            return min(s.batch_tokens, int(self.BATCH_SECONDS / self.s_per_token)), s.max_batch_size

        return cut_sorted(lengths, limits)

    def timed(self, padded_tokens: int, seconds: float) -> None:
        """Note a sub-batch's speed (an average that halves the weight of older ones)."""
        if padded_tokens <= 0 or seconds <= 0:
            return
        now = seconds / padded_tokens
        self.s_per_token = now if self.s_per_token is None else (self.s_per_token + now) / 2

    def __call__(self, batch: pa.Table) -> pa.Table:
        rows = batch.to_pylist()
        pending = [i for i, r in enumerate(rows) if r["status"] == "pending"]
        s = self.cfg.scoring
        groups = [pending[g : g + s.rows_per_call] for g in range(0, len(pending), s.rows_per_call)]
        subs = (  # each group of rows_per_call rows is sorted by length and bucketed
            [todo[j] for j in sub]
            for todo in groups
            for sub in self.sub_batches([len(rows[i]["input_ids"]) for i in todo])
        )
        for idx in subs:
            seqs = [rows[i]["input_ids"] for i in idx]
            t0 = time.monotonic()
            try:
                results = self.score_batch(seqs)
                self.timed(len(seqs) * max(map(len, seqs)), time.monotonic() - t0)
            except Exception:
                results = []
                for i in idx:  # one bad row must not fail its neighbours
                    try:
                        results += self.score_batch([rows[i]["input_ids"]])
                    except Exception as e:
                        phase = e.__notes__[-1] if getattr(e, "__notes__", None) else "scoring"
                        log.warning(
                            "scoring failed for note_id=%s: %s",
                            rows[i]["note_id"],
                            type(e).__name__,
                        )
                        results.append({"status": "failed", "error": scrub_error(e, phase)})
                        self._free()
            for i, res in zip(idx, results):
                rows[i].update({"status": "ok", **res})
            self.report_scored(len(idx))
        self.report_scored(0, flush=True)
        out = []
        for r in rows:
            out.append({name: r.get(name) for name in SCORED_SCHEMA.names})
        return pa.Table.from_pylist(out, schema=SCORED_SCHEMA)

    REPORT_EVERY_S = 1.0

    def report_scored(self, n: int, flush: bool = False) -> None:
        """Add scored rows to the progress counter, at most once a second (and at the end of a
        chunk): one remote call per small bucket cost the actors and the counter ~10% of the
        CPU when the forward is fast."""
        if self.progress is None:
            return
        self.unreported += n
        now = time.monotonic()
        if self.unreported and (flush or now - self.reported_at >= self.REPORT_EVERY_S):
            self.progress.add.remote(self.unreported)
            self.unreported, self.reported_at = 0, now

    def _free(self) -> None:
        if self.device.type == "cuda":
            self.torch.cuda.empty_cache()


PICKLE_SUFFIXES = (".bin", ".pt", ".pth", ".pkl", ".pickle", ".ckpt")


def check_adapter(path: str) -> None:
    """Adapters load from safetensors only; pickle weights are refused."""
    p = Path(path)
    if not (p / "adapter_config.json").exists():
        raise ScoreError(f"{path}: not a PEFT adapter directory (no adapter_config.json)")
    if not (p / "adapter_model.safetensors").exists():
        pickled = sorted(f.name for f in p.iterdir() if f.suffix in PICKLE_SUFFIXES)
        why = f" (pickle files refused: {', '.join(pickled)})" if pickled else ""
        raise ScoreError(f"{path}: adapter_model.safetensors not found{why}")
