"""`python -m benchmarks.gpu budget`: every GPU figure in one command that fits a short allocation.

One command, under 8 minutes wall-clock on a bare H100 (the 8B shape model's build included):

  setup         the shape-only Llama-3.1-8B (random bf16 weights, a BPE tokenizer) into the work
                folder, unless `--model-dir` names a built one
  train         the project's QLoRA path with the 24 GB profile (`llama31_8b_qlora.yaml`) and the
                80 GB profile (`llama31_8b_qlora_80gb.yaml`) against TRL's `SFTTrainer` defaults on
                the same notes; bf16 LoRA, the project's path against the plain loop
  score         the project's scorer merged in bf16 and in 4-bit NF4 against a plain prefill-only
                baseline (bf16 base + unmerged LoRA, one forward per batch) on the same notes,
                with verdict agreement at the project's threshold

Every step runs in its own process (clean CUDA memory statistics; a crash or hang stops only that
step) with a timeout; the whole command has a deadline (`--deadline`, 480 s): a step is given at
most the time left, and one that cannot get at least 60% of its planned time is skipped and said
so in the report. The planned timeline is printed before the first step, the real one at the end;
the JSON report (`<out>/budget[-smoke]-<gpu>-<stamp>.json`) is written after every step, so a cut
command still leaves what it measured.

`--smoke` runs the same steps, processes, timeouts and report on a CPU with a toy model of the same
architecture (`llama-smoke`), for CI.
"""

from __future__ import annotations

import argparse
import json
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from benchmarks import common

DEADLINE_S = 480.0  # the whole command on the GPU machine: 8 minutes
SMOKE_DEADLINE_S = 600.0  # the CPU smoke run (2 busy CPU cores; ~125 s when idle-ish)
MIN_SHARE = 0.6  # a step that cannot get this share of its planned time is skipped
CONFIG_80GB = common.CONFIGS / "llama31_8b_qlora_80gb.yaml"


@dataclass(frozen=True)
class Step:
    kind: str  # setup | train | score
    mode: str
    planned_s: float  # on an H100 80GB (see PLAN_NOTES)
    smoke_s: float  # on 2 CPU cores, toy model


# Planned seconds per step on an H100 (80 GB, PCIe Gen5 host, local NVMe), from these assumptions
# (not measured: no GPU figure of the project exists yet): a fresh Python process imports torch,
# transformers, peft and TRL in ~8 s; the 16 GB shape model loads from the page cache in ~8 s and
# quantizes to NF4 in ~6 s; QLoRA trains at >= 5,000 real tokens/s (24 GB profile), bf16 LoRA at
# >= 12,000; scoring prefills at >= 25 notes/s at ~1k tokens. The build: the tokenizer (~20 s on
# one core), the random weights on the GPU (~5 s), 16 GB of safetensors written (~30 s).
PLAN = (
    Step("setup", "shape-model", 75, 20),
    Step("train", "project", 45, 30),
    Step("train", "project-80gb", 42, 30),
    Step("train", "trl-default", 40, 30),
    Step("train", "plain-bf16", 32, 25),
    Step("train", "project-bf16", 36, 30),
    Step("score", "project", 40, 20),
    Step("score", "project-nf4", 40, 20),
    Step("score", "plain-prefill", 30, 20),
)
TRAIN_MODES = tuple(s.mode for s in PLAN if s.kind == "train")
SCORE_MODES = tuple(s.mode for s in PLAN if s.kind == "score")
# The counts behind the plan: 2 measured optimizer steps after 1 warm-up step (the project's
# 24 GB profile: 16 notes a step; TRL and the plain loop: 4), notes cut to 2,048 prompt tokens;
# 128 scoring notes cut to 1,024 prompt tokens, 32 of them to calibrate the threshold.
COUNTS = {
    "train_notes": 64,
    "steps": 2,
    "warmup": 1,
    "batch": 4,
    "train_prompt_tokens": 2048,
    "score_notes": 128,
    "calib_notes": 32,
    "prompt_tokens": 1024,
    "plain_batch": 16,
    "length": "realistic",
    "corpus_notes": 2000,
}
SMOKE_COUNTS = {
    "train_notes": 4,
    "steps": 1,
    "warmup": 1,
    "batch": 2,
    "train_prompt_tokens": 512,
    "score_notes": 8,
    "calib_notes": 8,
    "prompt_tokens": 512,
    "plain_batch": 4,
    "length": "short",
    "corpus_notes": 200,
}


def timeline(steps: tuple[Step, ...], deadline: float, smoke: bool) -> dict[str, Any]:
    """The planned timeline: each step's start and end (seconds from the command's start) and
    timeout, the planned total and its margin to the deadline."""
    t = 0.0
    rows = []
    for s in steps:
        planned = s.smoke_s if smoke else s.planned_s
        rows.append(
            {
                **asdict(s),
                "planned": planned,
                "start": t,
                "end": t + planned,
                "timeout": step_timeout(planned, deadline - t),
            }
        )
        t += planned
    return {
        "deadline_s": deadline,
        "planned_s": t,
        "margin_s": deadline - t,
        "margin_pct": round(100 * (deadline - t) / deadline, 1),
        "steps": rows,
    }


def step_timeout(planned: float, left: float) -> float | None:
    """Seconds a step may run: twice its plan, at most what is left of the deadline; None when
    what is left is under `MIN_SHARE` of its plan (the step is skipped)."""
    if left < planned * MIN_SHARE:
        return None
    return round(min(2 * planned, left), 1)


def print_timeline(plan: dict[str, Any], title: str) -> None:
    print(f"\n{title}", flush=True)
    rows = [
        [f"{s['kind']} {s['mode']}", f"{s['start']:.0f}", f"{s['end']:.0f}", s.get("timeout")]
        for s in plan["steps"]
    ]
    print(common.table(["step", "from s", "to s", "timeout s"], rows), flush=True)
    print(
        f"planned {plan['planned_s']:.0f}s of the {plan['deadline_s']:.0f}s deadline "
        f"(margin {plan['margin_s']:.0f}s, {plan['margin_pct']}%)",
        flush=True,
    )


def parse_modes(text: str | None) -> tuple[Step, ...]:
    """The plan's steps for `--modes a,b` (the setup step always); an unknown name is an error."""
    if not text:
        return PLAN
    wanted = [m.strip() for m in text.split(",") if m.strip()]
    known = {f"{s.kind}:{s.mode}" for s in PLAN} | {s.mode for s in PLAN}
    unknown = [m for m in wanted if m not in known]
    if unknown:
        raise SystemExit(
            f"unknown mode(s) {', '.join(unknown)}; known: "
            + ", ".join(f"{s.kind}:{s.mode}" for s in PLAN)
        )
    return tuple(
        s for s in PLAN if s.kind == "setup" or s.mode in wanted or f"{s.kind}:{s.mode}" in wanted
    )


def train_profiles(smoke: bool) -> dict[str, dict[str, Any]]:
    from benchmarks.train_gpu import DEFAULT_CONFIG

    cpu = ["optim.optim=adamw_torch"] if smoke else []  # paged 8-bit AdamW needs CUDA
    return {
        "project": {"config": str(DEFAULT_CONFIG), "overrides": cpu},
        "project-80gb": {"config": str(CONFIG_80GB), "overrides": []},
        "project-bf16": {
            "config": str(DEFAULT_CONFIG),
            "overrides": ["model.quantization=none", *cpu],
        },
    }


def run(args: argparse.Namespace, work: Path) -> int:
    t0 = time.perf_counter()
    smoke = args.smoke
    counts = dict(SMOKE_COUNTS if smoke else COUNTS)
    deadline = args.deadline or (SMOKE_DEADLINE_S if smoke else DEADLINE_S)
    steps = parse_modes(args.modes)
    plan = timeline(steps, deadline, smoke)
    print_timeline(plan, f"budget{' --smoke' if smoke else ''}: planned timeline")
    prov = common.provenance()  # date, git_commit, machine, versions: one run, one report
    machine = prov["machine"]
    report: dict[str, Any] = {
        "benchmark": "budget-smoke" if smoke else "budget",
        "smoke": smoke,
        **prov,
        "command": " ".join(["python", "-m", "benchmarks.gpu", *args.argv]),
        "device": None,
        "counts": counts,
        "plan": plan,
        "timeline": [],
        "results": {"setup": {}, "train": {}, "score": {}},
        "summary": {},
    }
    path = common.report_path(args.out, report["benchmark"], machine["gpu"], common.stamp())

    def elapsed() -> float:
        return time.perf_counter() - t0

    def record(step: Step, result: dict[str, Any], start: float) -> None:
        report["results"][step.kind][step.mode] = result
        if report["device"] is None and "device_info" in result:
            report["device"] = result["device_info"]
        status = "skipped" if "skipped" in result else "failed" if "error" in result else "ok"
        report["timeline"].append(
            {
                "step": f"{step.kind} {step.mode}",
                "start": round(start, 1),
                "end": round(elapsed(), 1),
                "status": status,
            }
        )
        report["summary"] = summarize(report["results"])
        report["wall_s"] = round(elapsed(), 1)
        common.write_json(path, report)

    def launch(step: Step, fn: str, kwargs: dict[str, Any]) -> dict[str, Any]:
        planned = step.smoke_s if smoke else step.planned_s
        start = elapsed()
        timeout = step_timeout(planned, deadline - start)
        if timeout is None:
            result = {
                "skipped": f"{deadline - start:.0f}s left of the deadline, planned {planned:.0f}s"
            }
            print(f"\n=== {step.kind} {step.mode}: skipped ({result['skipped']}) ===", flush=True)
        else:
            result = common.run_task(fn, kwargs, work, f"{step.kind} {step.mode}", False, timeout)
        record(step, result, start)
        return result

    # setup: the shape model (the toy one for --smoke), in the work folder unless given
    model_dir = args.model_dir
    setup = steps[0]
    if model_dir and common.shape_model_ready(Path(model_dir)):
        record(setup, {"model_dir": model_dir, "reused": True}, elapsed())
    else:
        model_dir = model_dir or str(work / "shape-model")
        out = launch(
            setup,
            "benchmarks.common:build_shape_model",
            {
                "out_dir": model_dir,
                "corpus_notes": counts["corpus_notes"],
                "shape": "llama-smoke" if smoke else common.SHAPE,
            },
        )
        if "model_dir" not in out:
            print(f"the shape model could not be built: {out}", flush=True)
            return finish(report, path, plan, elapsed(), failed=True)

    train_steps = [s for s in steps if s.kind == "train"]
    if train_steps:
        from benchmarks import train_gpu

        settings = {
            "smoke": smoke,
            "model_dir": model_dir,
            "model": "llama-smoke" if smoke else common.SHAPE,
            "synth": f"synth:n={counts['train_notes']},seed=11,length={counts['length']},error_rate=0.2",
            "steps": counts["steps"],
            "warmup": counts["warmup"],
            "batch": counts["batch"],
            "pack_tokens": 8192,
            "smoke_accum": 2,
            "smoke_overrides": [],  # keep bf16: the GPU's dtype runs on CPU too
            "max_prompt_tokens": counts["train_prompt_tokens"],
            "profiles": train_profiles(smoke),
            "data_path": str(work / "train_data.json"),
        }
        report["train_settings"] = settings
        report["train_data"] = train_gpu.prepare(settings, Path(settings["data_path"]))
        for step in train_steps:
            launch(step, "benchmarks.train_gpu:run_mode", {"mode": step.mode, "s": settings})

    score_steps = [s for s in steps if s.kind == "score"]
    if score_steps:
        from benchmarks import score_gpu

        s = {
            "smoke": smoke,
            "model_dir": model_dir,
            "adapter_dir": str(work / "adapter"),
            "notes_path": str(work / "score_notes.jsonl"),
            "prepared_path": str(work / "score_prepared.parquet"),
            "work": str(work),
            "config": str(score_gpu.DEFAULT_CONFIG),
            "extra_overrides": [],
            "notes": counts["score_notes"],
            "seed": 12,
            "error_rate": 0.2,
            "length": counts["length"],
            "prompt_tokens": counts["prompt_tokens"],
            "flag_rate": 0.2,
            "threshold": None,
            "calib_notes": counts["calib_notes"],
            "plain_notes": None,
            "plain_batch": counts["plain_batch"],
            "plain_new_tokens": 8,
            "plain_quant": "none",  # the same weights as the merged bf16 scorer
        }
        report["score_settings"] = s
        report["score_data"] = score_gpu.prepare(s)
        fns = {
            "project": ("benchmarks.score_gpu:run_project", {}),
            "project-nf4": (
                "benchmarks.score_gpu:run_project",
                {"extra": ["model.quantization=nf4"]},
            ),
            "plain-prefill": ("benchmarks.score_gpu:run_prefill", {}),
        }
        for step in score_steps:
            fn, extra = fns[step.mode]
            # the 4-bit scorer flags at the bf16 scorer's calibrated threshold: one verdict rule
            threshold = report["results"]["score"].get("project", {}).get("threshold")
            launch(step, fn, {"s": {**s, "threshold": threshold}, **extra})
    return finish(report, path, plan, elapsed())


def summarize(results: dict[str, dict[str, Any]]) -> dict[str, Any]:
    from benchmarks import score_gpu, train_gpu

    out: dict[str, Any] = {}
    train = {m: r for m, r in results["train"].items() if "skipped" not in r}
    if train:
        out["train"] = train_gpu.summarize(train)
    score = {m: r for m, r in results["score"].items() if "error" not in r and "skipped" not in r}
    base = score.get("plain-prefill", {})
    sc: dict[str, Any] = {}
    for m in ("project", "project-nf4"):
        r = score.get(m)
        if not r:
            continue
        if base.get("notes_per_s"):
            sc[f"{m}/plain-prefill"] = round(r["notes_per_s"] / base["notes_per_s"], 3)
        if base:
            sc[f"{m} vs plain-prefill"] = score_gpu.agreement(r, base)
        sc[f"{m}_target_notes_per_s"] = {
            "notes_per_s": r["notes_per_s"],
            "target": score_gpu.TARGETS["notes_per_s"],
            "pass": r["notes_per_s"] >= score_gpu.TARGETS["notes_per_s"],
        }
    if score.get("project") and score.get("project-nf4"):
        sc["project-nf4 vs project"] = score_gpu.agreement(score["project-nf4"], score["project"])
    if sc:
        out["score"] = sc
    # GPU: peak reserved CUDA memory; CPU (smoke): the process's peak RSS
    out["peak_gib"] = {
        f"{kind} {m}": (r["memory"].get("peak_reserved_gib") or r["memory"].get("peak_rss_gib"))
        for kind in ("train", "score")
        for m, r in results[kind].items()
        if r.get("memory")
    }
    return out


def finish(
    report: dict[str, Any], path: Path, plan: dict[str, Any], wall: float, failed: bool = False
) -> int:
    report["wall_s"] = round(wall, 1)
    common.write_json(path, report)
    print("\nbudget: real timeline", flush=True)
    planned = {f"{s['kind']} {s['mode']}": s for s in plan["steps"]}
    rows = [
        [
            t["step"],
            f"{planned[t['step']]['start']:.0f}-{planned[t['step']]['end']:.0f}",
            f"{t['start']:.0f}-{t['end']:.0f}",
            t["status"],
        ]
        for t in report["timeline"]
    ]
    print(common.table(["step", "planned s", "real s", "status"], rows), flush=True)
    print(
        f"wall {wall:.0f}s of the {plan['deadline_s']:.0f}s deadline (planned {plan['planned_s']:.0f}s)",
        flush=True,
    )
    print(json.dumps(report["summary"], indent=1, default=str)[:4000], flush=True)
    print(f"wrote {path}", flush=True)
    bad = [t for t in report["timeline"] if t["status"] != "ok"]
    return 1 if failed or bad else 0
