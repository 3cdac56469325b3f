"""Scoring throughput: a plain HF `generate` baseline vs the project's `Scorer`, same notes.

Notes: `generate_records(n, error_rate=0.2, length="realistic")` (~300-1,300 words), each cut in
the middle (`prompt.fit_note`) so that its prompt is at most `prompt_tokens` (1,024) tokens, then
prepared once by the project's own `prepare_batch` (chat template, answer prefix, token ids).
Both modes score exactly these token ids. The adapter is a random LoRA (B != 0) saved with PEFT.

  plain-generate  4-bit NF4 base + unmerged LoRA, HF `generate` of 64 new tokens for every note,
                  batches of 32 in input order, left padding. p_error comes from the logits of the
                  first generated position (`p_error_from_logits`, as the scorer computes it).
  project         `scoring.Scorer` in-process with the real config (`ray_jobs/configs/score.yaml`:
                  merged bf16, length-bucketed prefill, generation only for flagged notes), fed
                  `rows_per_call` rows at a time as Ray Data would.

With random weights every note looks alike to the model, so the threshold is calibrated: the
project mode prefills the first `calib_notes` notes (untimed; this is also its warm-up) and sets
`scoring.threshold` to the (1 - flag_rate) quantile of their p_error, so ~20% of notes are
flagged and get a generated reason, as on real data. The same threshold turns the baseline's
p_error into verdicts; the report gives their agreement. (Agreement is exact only when both run
the same weights: NF4 vs merged bf16 moves p_error, so compare like with like, or pass
`--plain-quant none`.) With a real model pass `--threshold` to skip calibration.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

from benchmarks import common

MODES = ("project", "plain-generate")
DEFAULT_CONFIG = common.CONFIGS / "score.yaml"


def overrides(s: dict[str, Any]) -> list[str]:
    out = [
        f"model.name_or_path={s['model_dir']}",
        f"adapter={s['adapter_dir']}",
        f"io.input=[{s['notes_path']}]",
        f"io.output={s['work']}/scored",
    ]
    if s["smoke"]:
        out.append(f"scoring.max_new_tokens={s['plain_new_tokens']}")
    return out + list(s["extra_overrides"])


def load_cfg(s: dict[str, Any]) -> Any:
    from discriminator.config import ScoreConfig, load_config

    return load_config(ScoreConfig, s["config"], overrides(s))


# ---------------------------------------------------------------------------------------------
# Parent: adapter, notes, preparation


def prepare(s: dict[str, Any]) -> dict[str, Any]:
    """Random adapter, notes JSONL, and the prepared token ids (parquet) both modes score."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    from discriminator import prompt, scoring
    from discriminator.config import LoraSection, to_dict
    from discriminator.modeling import load_tokenizer
    from discriminator.synth import generate_records

    common.make_random_adapter(s["model_dir"], s["adapter_dir"], LoraSection(), seed=0)
    tok = load_tokenizer(s["adapter_dir"])
    budget = s["prompt_tokens"] - prompt.prompt_overhead(tok)
    recs = generate_records(
        s["notes"], seed=s["seed"], error_rate=s["error_rate"], length=s["length"]
    )
    cut = 0
    with open(s["notes_path"], "w") as fh:
        for r in recs:
            fitted = prompt.fit_note(r["note"], tok, budget)
            cut += fitted.truncated
            fh.write(json.dumps({"id": r["id"], "note": fitted.note}) + "\n")
    cfg = load_cfg(s)
    t0 = time.perf_counter()
    chunks = scoring.plan_chunks(scoring.expand_inputs(cfg.io.input), cfg.io.chunk_rows)
    items = pa.Table.from_pylist([{**c.__dict__, "part": c.part} for c in chunks])
    tables = [
        scoring.prepare_batch(items.slice(i, 1), to_dict(cfg), scoring.tokenizer_path(cfg))
        for i in range(len(chunks))
    ]
    prepared = pa.concat_tables(tables)
    prep_s = time.perf_counter() - t0
    pq.write_table(prepared, s["prepared_path"])
    lengths = prepared.column("n_tokens").to_pylist()
    return {
        "notes": prepared.num_rows,
        "error_notes": sum(r["reason"] != "good" for r in recs),
        "notes_cut_to_fit": cut,
        "prompt_tokens": common.length_stats(lengths),
        "prepare_notes_per_s_one_cpu": round(prepared.num_rows / prep_s, 1),
    }


# ---------------------------------------------------------------------------------------------
# Workers


def _seqs(path: str, limit: int | None = None) -> list[list[int]]:
    import pyarrow.parquet as pq

    ids = pq.read_table(path, columns=["input_ids"]).column("input_ids").to_pylist()
    return ids[:limit] if limit else ids


def run_project(s: dict[str, Any], extra: list[str] | None = None) -> dict[str, Any]:
    """The project's Scorer, in-process, on the prepared rows (`extra`: config overrides of
    this mode, e.g. `model.quantization=nf4` for the 4-bit scorer)."""
    import numpy as np
    import pyarrow.parquet as pq

    from discriminator import scoring
    from discriminator.config import to_dict

    common.set_env()
    cfg = load_cfg({**s, "extra_overrides": [*s["extra_overrides"], *(extra or [])]})
    prepared = pq.read_table(s["prepared_path"])
    t0 = time.perf_counter()
    scorer = scoring.Scorer(to_dict(cfg), scoring.tokenizer_path(cfg))
    common.sync()
    load_s = time.perf_counter() - t0
    mem_load = common.memory()

    threshold = s["threshold"]
    calib: dict[str, Any] = {}
    seqs = prepared.column("input_ids").to_pylist()
    k = min(s["calib_notes"], len(seqs))
    t0 = time.perf_counter()
    p = []
    sc = cfg.scoring
    for batch in scoring.bucket_batches(
        [len(x) for x in seqs[:k]], sc.batch_tokens, sc.max_batch_size
    ):
        logits = scorer.prefill([seqs[i] for i in batch])
        p += [(i, v) for i, v in zip(batch, scorer.decide(logits)[0])]
    warm_s = time.perf_counter() - t0
    if threshold is None:
        values = np.array([v for _, v in p], dtype=np.float64)
        threshold = float(np.quantile(values, 1.0 - s["flag_rate"]))
        calib = {"notes": k, "flag_rate": s["flag_rate"], "threshold": threshold}
    scorer.cfg.scoring.threshold = threshold  # the calibrated value, as if it were configured

    rows = []
    start = common.now()
    for i in range(0, prepared.num_rows, sc.rows_per_call):
        rows += scorer(prepared.slice(i, sc.rows_per_call)).to_pylist()
    wall = common.now() - start
    status = {}
    for r in rows:
        status[r["status"]] = status.get(r["status"], 0) + 1
    verdicts = "".join("e" if r["verdict"] == "error" else "g" for r in rows)
    return {
        "kind": "project",
        "notes": len(rows),
        "wall_s": round(wall, 3),
        "notes_per_s": round(len(rows) / wall, 3),
        "load_s": round(load_s, 1),
        "warmup_calibration_s": round(warm_s, 2),
        "threshold": threshold,
        "calibration": calib,
        "flagged": verdicts.count("e"),
        "status": status,
        "memory_after_load": mem_load,
        "memory": common.memory(),
        "verdicts": verdicts,
        "p_error": [r["p_error"] for r in rows],
        "settings": {"config": to_dict(cfg)},
    }


def _load_unmerged(s: dict[str, Any]) -> tuple[Any, Any, str, float]:
    """The baselines' model: the base (`plain_quant`) + the adapter unmerged, on the GPU when
    there is one. Returns (tokenizer, model, device, load seconds)."""
    from peft import PeftModel

    from discriminator.config import ModelConfig
    from discriminator.modeling import load_base_model, load_tokenizer

    common.set_env()
    on_gpu = common.on_cuda()
    dev = "cuda:0" if on_gpu else "cpu"
    mcfg = ModelConfig(
        name_or_path=s["model_dir"],
        quantization=s["plain_quant"],
        dtype="bfloat16" if on_gpu else "float32",
    )
    t0 = time.perf_counter()
    tok = load_tokenizer(s["adapter_dir"])
    model = load_base_model(mcfg, device_map={"": dev})
    model = PeftModel.from_pretrained(model, s["adapter_dir"], is_trainable=False).eval()
    common.sync()
    return tok, model, dev, time.perf_counter() - t0


def _baseline(
    s: dict[str, Any], notes: int, wall: float, load_s: float, p_error: list[float],
    settings: dict[str, Any], **figures: Any,
) -> dict[str, Any]:  # fmt: skip
    """A plain baseline's result: throughput, load time, memory, per-note p_error, settings."""
    return {
        "kind": "baseline",
        "notes": notes,
        "wall_s": round(wall, 3),
        "notes_per_s": round(notes / wall, 3),
        "load_s": round(load_s, 1),
        **figures,
        "memory": common.memory(),
        "p_error": p_error,
        "settings": {"quantization": s["plain_quant"], "lora": "unmerged",
                     "batch": s["plain_batch"], **settings, "order": "input"},
    }  # fmt: skip


def run_plain(s: dict[str, Any]) -> dict[str, Any]:
    """Unoptimised baseline: NF4 base + unmerged LoRA, `generate` 64 tokens for every note."""
    import torch
    from transformers import GenerationConfig

    from discriminator.prompt import ANSWER_PREFIX, decision_ids, parse_reason
    from discriminator.scoring import left_pad, p_error_from_logits

    tok, model, dev, load_s = _load_unmerged(s)
    good_id, error_ids = decision_ids(tok)
    eos = {tok.eos_token_id, tok.convert_tokens_to_ids("<|eot_id|>")}
    eos = sorted(i for i in eos if isinstance(i, int) and i != tok.unk_token_id)
    gen = GenerationConfig(
        max_new_tokens=s["plain_new_tokens"],
        do_sample=False,
        num_beams=1,
        eos_token_id=eos,
        pad_token_id=tok.pad_token_id,
        output_logits=True,
        return_dict_in_generate=True,
    )
    seqs = _seqs(s["prepared_path"], s["plain_notes"])

    def batch_generate(batch: list[list[int]], **kw: Any) -> Any:
        ids, mask = left_pad(batch, tok.pad_token_id)
        with torch.inference_mode():
            return ids.shape[1], model.generate(
                input_ids=ids.to(dev), attention_mask=mask.to(dev), generation_config=gen, **kw
            )

    batch_generate(seqs[:2], max_new_tokens=2)  # warm-up: kernels, allocator
    p_error: list[float] = []
    parsed: dict[str, int] = {}
    new_tokens = 0
    b = s["plain_batch"]
    start = common.now()
    for i in range(0, len(seqs), b):
        width, out = batch_generate(seqs[i : i + b])
        logits = out.logits[0].float().cpu().numpy()
        p_error += p_error_from_logits(logits, good_id, error_ids).tolist()
        gen_ids = out.sequences[:, width:]
        new_tokens += int((gen_ids != tok.pad_token_id).sum())
        for text in tok.batch_decode(gen_ids, skip_special_tokens=True):
            v = parse_reason(ANSWER_PREFIX + text).verdict
            parsed[v] = parsed.get(v, 0) + 1
    wall = common.now() - start
    return _baseline(
        s, len(seqs), wall, load_s, p_error,
        {"max_new_tokens": s["plain_new_tokens"], "padding": "left"},
        generated_tokens=new_tokens, parsed_generations=parsed,
    )  # fmt: skip


def run_prefill(s: dict[str, Any]) -> dict[str, Any]:
    """Plain prefill-only baseline: the base (`plain_quant`) + unmerged LoRA, one forward pass
    per batch of `plain_batch` notes in input order, right padding, p_error from the logits at
    each note's last token; no generation, no length bucketing."""
    import torch

    from discriminator.prompt import decision_ids
    from discriminator.scoring import p_error_from_logits

    tok, model, dev, load_s = _load_unmerged(s)
    good_id, error_ids = decision_ids(tok)
    seqs = _seqs(s["prepared_path"], s["plain_notes"])

    def last_logits(batch: list[list[int]]) -> Any:
        width = max(len(x) for x in batch)
        ids = torch.full((len(batch), width), tok.pad_token_id, dtype=torch.long)
        mask = torch.zeros((len(batch), width), dtype=torch.long)
        for i, x in enumerate(batch):  # right padding
            ids[i, : len(x)] = torch.tensor(x)
            mask[i, : len(x)] = 1
        with torch.inference_mode():
            logits = model(input_ids=ids.to(dev), attention_mask=mask.to(dev)).logits
        last = torch.tensor([len(x) - 1 for x in batch], device=logits.device)
        return logits[torch.arange(len(batch), device=logits.device), last].float().cpu().numpy()

    last_logits(seqs[:2])  # warm-up: kernels, allocator
    p_error: list[float] = []
    b = s["plain_batch"]
    start = common.now()
    for i in range(0, len(seqs), b):
        logits = last_logits(seqs[i : i + b])
        p_error += p_error_from_logits(logits, good_id, error_ids).tolist()
    wall = common.now() - start
    return _baseline(
        s, len(seqs), wall, load_s, p_error,
        {"generation": "none (prefill only)", "padding": "right"},
    )  # fmt: skip


def _verdicts(p_error: Any, threshold: float) -> str:
    """`e` (error) or `g` (good) per note: the scorer's rule, p_error >= threshold."""
    return "".join("e" if x >= threshold else "g" for x in p_error)


def agreement(project: dict[str, Any], baseline: dict[str, Any]) -> dict[str, Any]:
    """The baseline's verdicts at the project's threshold, and how often they agree."""
    import numpy as np

    thr = project.get("threshold")
    p = np.array(baseline.get("p_error") or [], dtype=np.float64)
    if thr is None or not len(p) or not project.get("verdicts"):
        return {}
    verdicts = _verdicts(p, thr)
    n = min(len(verdicts), len(project["verdicts"]))
    same = sum(a == b for a, b in zip(verdicts[:n], project["verdicts"][:n]))
    q = np.array(project["p_error"][:n], dtype=np.float64)
    return {
        "verdict_agreement": round(same / n, 4),
        "agreement_notes": n,
        "p_error_max_abs_diff": float(np.max(np.abs(q - p[:n]))),
        "baseline_flagged": verdicts.count("e"),
    }


# ---------------------------------------------------------------------------------------------
# Parent: ratios, agreement, the table

TARGETS = {"notes_per_s": 25.0, "x_plain": 9.0, "verdict_agreement": 1.0}


def summarize(results: dict[str, dict[str, Any]]) -> dict[str, Any]:
    import numpy as np

    proj, plain = results.get("project") or {}, results.get("plain-generate") or {}
    out: dict[str, Any] = {}
    if proj.get("notes_per_s") and plain.get("notes_per_s"):
        out["project/plain-generate"] = round(proj["notes_per_s"] / plain["notes_per_s"], 3)
    thr = proj.get("threshold")
    if plain.get("p_error"):
        p = np.array(plain["p_error"], dtype=np.float64)
        if thr is None:
            thr = float(np.quantile(p, 0.8))
        plain_v = _verdicts(p, thr)  # the baseline's verdicts at the project's threshold
        out["plain-generate"] = {"threshold": thr, "flagged": plain_v.count("e")}
        if proj.get("verdicts"):
            same = agreement({**proj, "threshold": thr}, plain)
            for key in ("verdict_agreement", "agreement_notes", "p_error_max_abs_diff"):
                out[key] = same[key]
            out["same_weights"] = plain["settings"]["quantization"] == _quant(proj)
    if proj and "error" not in proj:
        checks = {
            "notes_per_s": proj.get("notes_per_s"),
            "notes_per_s_pass": (proj.get("notes_per_s") or 0) >= TARGETS["notes_per_s"],
        }
        if "project/plain-generate" in out:
            checks["x_plain_pass"] = out["project/plain-generate"] >= TARGETS["x_plain"]
        if "verdict_agreement" in out:
            checks["agreement_pass"] = out["verdict_agreement"] >= TARGETS["verdict_agreement"]
        out["targets_h100"] = checks
    return out


def _quant(proj: dict[str, Any]) -> str | None:
    return proj.get("settings", {}).get("config", {}).get("model", {}).get("quantization")


def render(results: dict[str, dict[str, Any]], summary: dict[str, Any] | None = None) -> str:
    """The modes as a table; a baseline's flagged count at the project's threshold comes from
    `summary` (`summarize` computes it without changing the results)."""
    ref = (results.get("plain-generate") or {}).get("notes_per_s")
    rows = []
    for m, r in results.items():
        if "error" in r:
            rows.append([m, "FAILED", r["error"][:60], "", "", "", ""])
            continue
        mem = r.get("memory", {})
        nps = r.get("notes_per_s")
        rows.append(
            [
                m,
                r.get("notes"),
                nps,
                mem.get("peak_allocated_gib", mem.get("peak_rss_gib")),
                mem.get("peak_reserved_gib"),
                r.get("flagged", ((summary or {}).get(m) or {}).get("flagged")),
                round(nps / ref, 2) if nps and ref else None,
            ]
        )
    heads = ["mode", "notes", "notes/s", "peak GiB", "reserved", "flagged", "x plain"]
    return common.table(heads, rows)


def compare_reference(results: dict[str, dict[str, Any]], path: str) -> dict[str, Any]:
    """Verdict agreement of this run's project mode with an earlier report's (same notes, same
    threshold: pass the earlier run's threshold with --threshold)."""
    ref = json.loads(Path(path).read_text())["results"].get("project") or {}
    now = (results.get("project") or {}).get("verdicts") or ""
    old = ref.get("verdicts") or ""
    n = min(len(now), len(old))
    if not n:
        return {"reference": path, "error": "no project verdicts to compare"}
    same = sum(a == b for a, b in zip(now[:n], old[:n]))
    return {"reference": path, "notes": n, "verdict_agreement": round(same / n, 4)}
