"""Training throughput on a GPU: the project's training path against plain and TRL baselines.

Plain transformers + PEFT loops, TRL `SFTTrainer` baselines, and the project's training path
(`discriminator.training.trainer.build_sft_trainer`, what every Ray Train worker runs), on the
same synthetic notes with a realistic length mix.

Every mode trains `warmup + steps` optimizer steps and reports, over the `steps` after warm-up:
real (non-padding) input tokens/s, step time, final loss, and the process's peak CUDA memory
(allocated and reserved, model load included). Modes (`MODES`):

  plain-qlora       4-bit NF4 base + LoRA, a hand-written loop: fixed batches of `batch` notes in
                    data order, right-padded to the longest, gradient checkpointing, torch AdamW.
  trl-default       SFTTrainer with TRL's defaults (batch `batch`, grad-ckpt, bf16), the same 4-bit
                    base and LoRA config; max_length = the longest example, so nothing is cut.
  trl-padding-free  the same with `padding_free=True` (one flattened sequence per batch).
  trl-packing-bfd   `packing=True`, best-fit-decreasing bins of `pack_tokens` tokens, batch 1.
  project           `build_sft_trainer` with the default QLoRA config
                    (`ray_jobs/configs/llama31_8b_qlora.yaml`: batch 1 x accumulation 16, paged
                    8-bit AdamW, grad-ckpt): one optimizer step is 16 notes.
  plain-bf16        the plain loop on a bf16 base (LoRA, no quantization).
  project-bf16      the project path with `model.quantization=none`.
Extra project profiles (e.g. an 80 GB QLoRA config) are added with `--profile NAME=CONFIG.yaml`.
"""

from __future__ import annotations

import json
import tempfile
from pathlib import Path
from typing import Any

from benchmarks import common

MODES = (
    "plain-qlora",
    "trl-default",
    "trl-padding-free",
    "trl-packing-bfd",
    "project",
    "plain-bf16",
    "project-bf16",
)
DEFAULT_CONFIG = common.CONFIGS / "llama31_8b_qlora.yaml"
# What CPU smoke runs change in the project's config (paged 8-bit AdamW and bf16 need CUDA).
SMOKE_OVERRIDES = ["model.dtype=float32", "optim.optim=adamw_torch"]


def profiles(extra: list[str]) -> dict[str, dict[str, Any]]:
    """Project modes: name -> {config, overrides}. `extra`: NAME=CONFIG[,key=value...]."""
    out = {
        "project": {"config": str(DEFAULT_CONFIG), "overrides": []},
        "project-bf16": {"config": str(DEFAULT_CONFIG), "overrides": ["model.quantization=none"]},
    }
    for item in extra:
        name, _, rest = item.partition("=")
        path, *overrides = rest.split(",")
        if not name or not path:
            raise SystemExit(f"--profile {item!r}: expected NAME=CONFIG.yaml[,key=value...]")
        out[name if name.startswith("project") else f"project-{name}"] = {
            "config": str(Path(path).resolve()),
            "overrides": overrides,
        }
    return out


def base_overrides(s: dict[str, Any], extra: list[str]) -> list[str]:
    """Overrides every mode's config gets: this model, the benchmark's data and step count, no
    evaluation or checkpoints, a log line per step."""
    out = [
        f"model.name_or_path={s['model_dir']}",
        f"data.train_path={s['synth']}",
        "data.eval_path=null",
        f"optim.max_steps={s['warmup'] + s['steps']}",
        "run.save_steps=100000000",
        "run.logging_steps=1",
    ]
    out.append(f"data.max_prompt_tokens={s['max_prompt_tokens']}")
    if s["smoke"]:
        out += [
            *s.get("smoke_overrides", SMOKE_OVERRIDES),
            f"optim.gradient_accumulation_steps={s['smoke_accum']}",
        ]
    return out + list(extra)


def load_cfg(s: dict[str, Any], profile: dict[str, Any]) -> Any:
    from discriminator.config import TrainConfig, load_config

    overrides = base_overrides(s, profile["overrides"])
    return load_config(TrainConfig, profile["config"], overrides)


# ---------------------------------------------------------------------------------------------
# Parent: the notes, once for every mode


def prepare(s: dict[str, Any], out_path: Path) -> dict[str, Any]:
    """Format the benchmark's notes with the project's `prepare_data` (default profile) and save
    them for the workers; returns length statistics."""
    from discriminator.modeling import load_tokenizer
    from discriminator.training import prepare_data

    cfg = load_cfg(s, profiles([])["project"])
    tok = load_tokenizer(cfg.model.name_or_path)
    data = prepare_data(cfg, tok)
    lengths = [len(_tokenize(tok, r)[0]) for r in data.train]
    out_path.write_text(
        json.dumps({"train": data.train, "max_length": data.max_length, "stats": data.stats})
    )
    return {
        "notes": len(data.train),
        "error_notes": sum(
            r["completion"][0]["content"] != '{"reason": "good"}' for r in data.train
        ),
        "example_tokens": common.length_stats(lengths),
        "max_length": data.max_length,
        "truncated": data.stats.get("train_truncated"),
    }


def _tokenize(tok: Any, rec: dict[str, Any]) -> tuple[list[int], list[int]]:
    """(input ids, labels) of one prompt-completion record: loss on the completion only."""

    def ids(x: Any) -> list[int]:
        return list(x["input_ids"] if hasattr(x, "keys") else x)

    full = ids(tok.apply_chat_template(rec["prompt"] + rec["completion"], tokenize=True))
    prompt = ids(tok.apply_chat_template(rec["prompt"], add_generation_prompt=True, tokenize=True))
    n = 0
    while n < min(len(prompt), len(full)) and prompt[n] == full[n]:
        n += 1
    return full, [-100] * n + full[n:]


def _load_data(path: str) -> Any:
    from discriminator.training import PreparedData

    d = json.loads(Path(path).read_text())
    return PreparedData(d["train"], [], d["max_length"], d["stats"])


# ---------------------------------------------------------------------------------------------
# Workers


def _timer_callback(warmup: int) -> Any:
    import time

    from transformers import TrainerCallback

    class StepTimer(TrainerCallback):
        """(step, time, real tokens seen) at train begin and at the end of every step."""

        def __init__(self) -> None:
            self.marks: list[tuple[int, float, float]] = []
            self.losses: list[float] = []
            self.warmup = warmup

        def on_train_begin(self, args, state, control, **kwargs):
            common.sync()
            self.marks = [(state.global_step, time.perf_counter(), state.num_input_tokens_seen)]

        def on_step_end(self, args, state, control, **kwargs):
            t = common.now()
            self.marks.append((state.global_step, t, state.num_input_tokens_seen))

        def on_log(self, args, state, control, logs=None, **kwargs):
            if logs and "loss" in logs:
                self.losses.append(float(logs["loss"]))

    return StepTimer()


def run_mode(mode: str, s: dict[str, Any]) -> dict[str, Any]:
    """Worker entry: one training mode, start to finish, in this process."""
    import time

    import torch

    from discriminator.modeling import load_tokenizer

    common.set_env()
    torch.manual_seed(0)
    common.reset_peak()
    t0 = time.perf_counter()
    data = _load_data(s["data_path"])
    prof = s["profiles"].get(mode) or s["profiles"]["project"]
    cfg = load_cfg(s, prof)
    tok = load_tokenizer(cfg.model.name_or_path)
    if mode.startswith("plain"):
        if mode == "plain-bf16":
            cfg.model.quantization = "none"
        out = _plain(cfg, data, tok, s)
    elif mode.startswith("trl"):
        out = _trl(mode, cfg, data, tok, s)
    else:
        out = _project(cfg, data, s)
    out["mode"] = mode
    out["total_s"] = round(time.perf_counter() - t0, 1)
    out["memory"] = common.memory()
    out["model"] = {
        "quantization": cfg.model.quantization,
        "dtype": cfg.model.dtype,
        "attn_implementation": cfg.model.attn_implementation,
        "lora_r": cfg.lora.r,
        "lora_targets": list(cfg.lora.target_modules),
    }
    return out


def _device() -> str:
    return "cuda:0" if common.on_cuda() else "cpu"


def _plain(cfg: Any, data: Any, tok: Any, s: dict[str, Any]) -> dict[str, Any]:
    """transformers + PEFT, no Trainer: the unoptimised reference loop."""
    import time

    import torch
    from peft import get_peft_model, prepare_model_for_kbit_training

    from discriminator.modeling import load_base_model, lora_config

    on_gpu = common.on_cuda()
    t0 = time.perf_counter()
    model = load_base_model(cfg.model, device_map={"": _device()})
    if cfg.model.quantization != "none":
        model = prepare_model_for_kbit_training(
            model,
            use_gradient_checkpointing=True,
            gradient_checkpointing_kwargs={"use_reentrant": False},
        )
    else:
        model.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
        model.enable_input_require_grads()
    model.config.use_cache = False
    model = get_peft_model(model, lora_config(cfg.lora))
    load_s = time.perf_counter() - t0
    params = [p for p in model.parameters() if p.requires_grad]
    opt = torch.optim.AdamW(params, lr=cfg.optim.learning_rate, fused=on_gpu)
    examples = [_tokenize(tok, r) for r in data.train]
    b = s["batch"]
    batches = [examples[i : i + b] for i in range(0, len(examples) - b + 1, b)]
    pad = tok.pad_token_id
    marks: list[tuple[int, float, float]] = []
    losses, tokens, padded = [], 0, 0
    model.train()
    marks.append((0, common.now(), 0))
    for step in range(s["warmup"] + s["steps"]):
        batch = batches[step % len(batches)]
        width = max(len(x) for x, _ in batch)
        ids = torch.full((len(batch), width), pad, dtype=torch.long)
        labels = torch.full((len(batch), width), -100, dtype=torch.long)
        mask = torch.zeros((len(batch), width), dtype=torch.long)
        for i, (x, y) in enumerate(batch):
            ids[i, : len(x)] = torch.tensor(x)
            labels[i, : len(y)] = torch.tensor(y)
            mask[i, : len(x)] = 1
        dev = _device()
        with torch.autocast("cuda", dtype=torch.bfloat16, enabled=on_gpu):
            loss = model(
                input_ids=ids.to(dev), attention_mask=mask.to(dev), labels=labels.to(dev)
            ).loss
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, cfg.optim.max_grad_norm)
        opt.step()
        opt.zero_grad(set_to_none=True)
        losses.append(float(loss.detach()))
        tokens += int(mask.sum())
        padded += mask.numel()
        marks.append((step + 1, common.now(), tokens))
    return {
        "kind": "baseline",
        **common.window(marks, s["warmup"]),
        "load_s": round(load_s, 1),
        "notes_per_step": b,
        "padding_efficiency": round(tokens / padded, 4),
        "final_loss": losses[-1],
        "losses": losses,
        "settings": {
            "batch": b,
            "gradient_checkpointing": True,
            "optimizer": "torch AdamW" + (" fused" if on_gpu else ""),
            "autocast": "bf16" if on_gpu else None,
            "learning_rate": cfg.optim.learning_rate,
        },
    }


def _trl(mode: str, cfg: Any, data: Any, tok: Any, s: dict[str, Any]) -> dict[str, Any]:
    """TRL SFTTrainer with its defaults (plus what the benchmark needs: steps, logging, no saves,
    counting non-padding tokens); the model is the same base + LoRA config as the project's."""
    import time

    from datasets import Dataset
    from trl import SFTConfig, SFTTrainer

    from discriminator.modeling import load_base_model, lora_config

    on_gpu = common.on_cuda()
    t0 = time.perf_counter()
    model = load_base_model(cfg.model, device_map={"": _device()})
    kwargs: dict[str, Any] = {
        "per_device_train_batch_size": s["batch"],
        "max_length": data.max_length,
    }
    if mode == "trl-padding-free":
        kwargs.update(padding_free=True, max_length=None)  # notes are already within max_length
    elif mode == "trl-packing-bfd":
        kwargs.update(
            packing=True,
            packing_strategy="bfd",
            max_length=s["pack_tokens"],
            per_device_train_batch_size=1,
        )
    work = tempfile.mkdtemp(prefix="bench-trl-")
    args = SFTConfig(
        output_dir=work,
        max_steps=s["warmup"] + s["steps"],
        logging_steps=1,
        save_strategy="no",
        report_to="none",
        disable_tqdm=True,
        include_num_input_tokens_seen="non_padding",
        bf16=on_gpu,
        use_cpu=not on_gpu,
        dataloader_num_workers=0,
        seed=0,
        **kwargs,
    )
    timer = _timer_callback(s["warmup"])
    ds = Dataset.from_list(
        [{"prompt": r["prompt"], "completion": r["completion"]} for r in data.train]
    )
    trainer = SFTTrainer(
        model=model,
        args=args,
        train_dataset=ds,
        processing_class=tok,
        peft_config=lora_config(cfg.lora),
        callbacks=[timer],
    )
    load_s = time.perf_counter() - t0
    trainer.train()
    w = common.window(timer.marks, s["warmup"])
    steps = w["measured_steps"] + s["warmup"]
    return {
        "kind": "baseline",
        **w,
        "load_s": round(load_s, 1),
        "notes_per_step": "packed" if args.packing else s["batch"],
        "final_loss": timer.losses[-1] if timer.losses else None,
        "losses": timer.losses,
        "settings": {
            **{k: v for k, v in kwargs.items()},
            "gradient_checkpointing": args.gradient_checkpointing,
            "optim": str(args.optim),
            "learning_rate": args.learning_rate,
            "bf16": args.bf16,
            "steps_run": steps,
        },
    }


def _project(cfg: Any, data: Any, s: dict[str, Any]) -> dict[str, Any]:
    """The project's per-worker path: `build_sft_trainer` + `trainer.train()` (no Ray around it:
    the Ray Train report callback only acts on checkpoint saves, which the benchmark turns off)."""
    import time

    from discriminator.config import to_dict
    from discriminator.training import ProgressCallback, build_sft_trainer

    t0 = time.perf_counter()
    timer = _timer_callback(s["warmup"])
    work = tempfile.mkdtemp(prefix="bench-project-")
    trainer = build_sft_trainer(cfg, data, _device(), work, [ProgressCallback(), timer])
    load_s = time.perf_counter() - t0
    trainer.train()
    o = cfg.optim
    return {
        "kind": "project",
        **common.window(timer.marks, s["warmup"]),
        "load_s": round(load_s, 1),
        "notes_per_step": o.per_device_train_batch_size * o.gradient_accumulation_steps,
        "final_loss": timer.losses[-1] if timer.losses else None,
        "losses": timer.losses,
        "settings": {"config": to_dict(cfg)},
    }


# ---------------------------------------------------------------------------------------------
# Parent: ratios and the table

# Issue 9 targets on an H100 80GB (real tokens/s; peak reserved GiB).
TARGETS = {
    "project": {"real_tokens_per_s": 5000, "peak_reserved_gib_below": 20.0},
    "project-bf16": {"real_tokens_per_s": 12000},
    "project-80gb": {"real_tokens_per_s": 8000},
}


def summarize(results: dict[str, dict[str, Any]]) -> dict[str, Any]:
    def tps(mode: str) -> float | None:
        r = results.get(mode) or {}
        return r.get("real_tokens_per_s")

    ratios: dict[str, Any] = {}
    trl = {m: tps(m) for m in results if m.startswith("trl") and tps(m)}
    best = max(trl, key=trl.get) if trl else None
    for m in results:
        if not m.startswith("project") or not tps(m):
            continue
        base = "plain-bf16" if "bf16" in m else "plain-qlora"
        if tps(base):
            ratios[f"{m}/{base}"] = round(tps(m) / tps(base), 3)
        if tps("trl-default"):
            ratios[f"{m}/trl-default"] = round(tps(m) / tps("trl-default"), 3)
        if best:
            ratios[f"{m}/best-trl ({best})"] = round(tps(m) / trl[best], 3)
    checks: dict[str, Any] = {}
    for m, t in TARGETS.items():
        r = results.get(m)
        if not r or "error" in r:
            continue
        c = {"real_tokens_per_s": r.get("real_tokens_per_s"), "target": t["real_tokens_per_s"]}
        c["pass"] = (r.get("real_tokens_per_s") or 0) >= t["real_tokens_per_s"]
        if "peak_reserved_gib_below" in t:
            peak = r.get("memory", {}).get("peak_reserved_gib")
            c["peak_reserved_gib"] = peak
            c["pass"] = c["pass"] and peak is not None and peak < t["peak_reserved_gib_below"]
        checks[m] = c
    return {"ratios": ratios, "targets_h100": checks}


def render(results: dict[str, dict[str, Any]]) -> str:
    ref = (results.get("trl-default") or {}).get("real_tokens_per_s")
    rows = []
    for m, r in results.items():
        if "error" in r:
            rows.append([m, "FAILED", r["error"][:60], "", "", "", "", ""])
            continue
        mem = r.get("memory", {})
        tps = r.get("real_tokens_per_s")
        rows.append(
            [
                m,
                tps,
                r.get("step_s_mean"),
                r.get("notes_per_step"),
                mem.get("peak_allocated_gib", mem.get("peak_rss_gib")),
                mem.get("peak_reserved_gib"),
                r.get("final_loss"),
                round(tps / ref, 2) if tps and ref else None,
            ]
        )
    heads = [
        "mode",
        "real tok/s",
        "step s",
        "notes/step",
        "peak GiB",
        "reserved",
        "loss",
        "x trl-def",
    ]
    return common.table(heads, rows)
