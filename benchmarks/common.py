"""Shared pieces of the GPU benchmarks: environment, device and version info, CUDA-synced timing,
peak memory, the models (shape-only 8B or tiny, random LoRA adapter), one-mode-per-process
isolation, and JSON reports.

Nothing here imports torch at module level: the parent process of `python -m benchmarks.gpu`
never touches CUDA, so every mode's subprocess starts with a clean device and clean memory stats.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import platform
import re
import resource
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import traceback
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any

from discriminator.files import write_atomic
from discriminator.numbers import fmt, percentiles

REPO = Path(__file__).resolve().parents[1]


@contextlib.contextmanager
def in_repo() -> Any:
    """The repository root as the working directory (contextlib.chdir is Python >= 3.11)."""
    before = os.getcwd()
    os.chdir(REPO)
    try:
        yield
    finally:
        os.chdir(before)


RESULTS = REPO / "benchmarks" / "results"
CONFIGS = REPO / "ray_jobs" / "configs"
PACKAGES = (
    "torch",
    "transformers",
    "trl",
    "peft",
    "bitsandbytes",
    "accelerate",
    "datasets",
    "ray",
    "pyarrow",
    "tokenizers",
)
SHAPE = "llama-3.1-8b"
SHAPE_DISK_GB = 20  # 16 GB of bf16 safetensors + tokenizer + headroom


def set_env() -> None:
    """Offline, quiet libraries (the GPU machine cannot reach the hub)."""
    for key, value in {
        "HF_HUB_OFFLINE": "1",
        "TRANSFORMERS_OFFLINE": "1",
        "HF_DATASETS_OFFLINE": "1",
        "TOKENIZERS_PARALLELISM": "false",
        "RAY_USAGE_STATS_ENABLED": "0",
        "RAY_TRAIN_ENABLE_PRINT_PATCH": "0",
        "PYTORCH_CUDA_ALLOC_CONF": "expandable_segments:True",
    }.items():
        os.environ.setdefault(key, value)


# ---------------------------------------------------------------------------------------------
# Machine, versions, names


def versions() -> dict[str, str | None]:
    out: dict[str, str | None] = {"python": platform.python_version()}
    for name in PACKAGES:
        try:
            out[name] = version(name)
        except PackageNotFoundError:
            out[name] = None
    return out


def cpu_name() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def gpu_name_smi() -> str | None:
    """The first GPU's name from nvidia-smi (no CUDA context in the calling process)."""
    if not shutil.which("nvidia-smi"):
        return None
    try:
        out = subprocess.run(
            ["nvidia-smi", "--query-gpu=name", "--format=csv,noheader"],
            capture_output=True,
            text=True,
            timeout=30,
        )
    except (OSError, subprocess.SubprocessError):
        return None
    names = [ln.strip() for ln in out.stdout.splitlines() if ln.strip()]
    return names[0] if out.returncode == 0 and names else None


def machine_info() -> dict[str, Any]:
    """Host facts the parent can get without CUDA; workers add `device_info()`."""
    return {
        "gpu": gpu_name_smi(),
        "cpu": cpu_name(),
        "cpus": os.cpu_count(),
        "platform": platform.platform(),
    }


def git_commit(repo: Path = REPO) -> str | None:
    """`git rev-parse HEAD` of `repo`, `-dirty` when tracked files have uncommitted changes;
    None outside a git checkout (e.g. a tree copied to a GPU machine).

    Changes under benchmarks/results/ do not count: a benchmark writes its own results file, so
    a resumed or `--skip` run would otherwise always read as dirty.
    """
    try:
        head = subprocess.run(["git", "rev-parse", "HEAD"], cwd=repo, capture_output=True,
                              text=True, timeout=30)  # fmt: skip
        if head.returncode != 0:
            return None
        changed = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no", "--", ".",
             ":(exclude)benchmarks/results"],
            cwd=repo, capture_output=True, text=True, timeout=60,
        )  # fmt: skip
    except (OSError, subprocess.SubprocessError):
        return None
    return head.stdout.strip() + ("-dirty" if changed.stdout.strip() else "")


PROVENANCE_KEYS = ("date", "git_commit", "machine", "versions")


def add_table_arg(parser: Any) -> None:
    """`--table`: print the docs' table from the results file named by --output; run nothing."""
    parser.add_argument("--table", action="store_true",
                        help="print the report in --output as a markdown table; nothing is run")  # fmt: skip


def print_table(parser: Any, path: str | Path, render: Any, missing: str | None = None) -> int:
    """`--table`: `render(report)` of the results file at `path`, printed. A missing file is
    `missing` printed (what the docs show before the first run) or else a usage error."""
    if not Path(path).is_file():
        if missing is None:
            parser.error(f"{path} not found: run the benchmark first")
        print(missing)
        return 0
    print(render(json.loads(Path(path).read_text())))
    return 0


def provenance() -> dict[str, Any]:
    """What a measured section records about its own run: when (ISO date), at which commit, on
    which machine, with which packages. Take it once when the run starts and stamp every
    section the run measures with it; a section kept from an earlier run keeps its own."""
    return {
        "date": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "git_commit": git_commit(),
        "machine": machine_info(),
        "versions": versions(),
    }


# The parts of score_scale.json a run measures or, with --skip, keeps from an earlier run.
SCORE_SCALE_PARTS = ("planning", "stand_in", "mimic", "tiny", "resume")


def sections(report: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """The parts of a results file that each carry their own provenance (PROVENANCE_KEYS).

    learning: every point of every curve (a resumed run adds points to a curve, another run
    adds curves); score_scale: each part (`--skip` keeps parts of an earlier run); any other
    report is written whole by one run, so its top level is its one section.
    """
    kind = report.get("benchmark")
    if kind == "learning":
        return {f"{key} @ {p['examples']}": p
                for key, c in report.get("curves", {}).items() for p in c["points"]}  # fmt: skip
    if kind == "score_scale":
        return {p: report[p] for p in SCORE_SCALE_PARTS if p in report}
    return {"report": report}


def short_commit(commit: str | None) -> str:
    if commit is None:
        return "no git checkout"
    sha, dirty, _ = commit.partition("-dirty")
    return f"commit {sha[:12]}{dirty}"


def provenance_text(sections: dict[str, dict[str, Any]]) -> str:
    """One line under a generated table: the date, commit, machine and main packages of the
    sections shown (sections that agree on all of them are named together)."""
    groups: dict[str, list[str]] = {}
    for name, sec in sections.items():
        m = sec.get("machine") or {}
        where = m.get("gpu") or m.get("cpu") or "unknown machine"
        cores = None if m.get("gpu") else m.get("cpus") or m.get("torch_threads")
        where += f" x {cores} cores" if cores else ""
        v = sec.get("versions") or {}
        pkgs = ", ".join(f"{k} {v[k]}" for k in ("torch", "transformers", "ray") if v.get(k))
        text = f"{str(sec.get('date'))[:10]}, {short_commit(sec.get('git_commit'))}, {where}"
        text += f"; {pkgs}" if pkgs else ""
        text += f" ({sec['provenance']})" if sec.get("provenance") else ""
        groups.setdefault(text, []).append(name)
    if len(groups) == 1:  # one run (or runs alike in all of these): no need to name the parts
        return f"Measured {next(iter(groups))}."
    return "Measured " + "; ".join(f"{', '.join(n)}: {t}" for t, n in groups.items()) + "."


def device_info() -> dict[str, Any]:
    import torch

    if torch.cuda.is_available():
        p = torch.cuda.get_device_properties(0)
        return {
            "device": "cuda",
            "gpu": p.name,
            "gpu_memory_gib": round(p.total_memory / 2**30, 2),
            "capability": f"{p.major}.{p.minor}",
            "cuda": torch.version.cuda,
            "gpu_count": torch.cuda.device_count(),
        }
    return {
        "device": "cpu",
        "gpu": None,
        "cpu": cpu_name(),
        "torch_threads": torch.get_num_threads(),
    }


def shown(path: Path) -> str:
    """`path` relative to the repository when it is inside it (for messages and docs)."""
    path = path.resolve()
    return str(path.relative_to(REPO)) if path.is_relative_to(REPO) else str(path)


def slug(text: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-") or "unknown"


def stamp() -> str:
    return time.strftime("%Y%m%d-%H%M%S")


# ---------------------------------------------------------------------------------------------
# Timing and memory


def on_cuda() -> bool:
    import torch

    return torch.cuda.is_available()


def sync() -> None:
    import torch

    if torch.cuda.is_available():
        torch.cuda.synchronize()


def now() -> float:
    """`time.perf_counter()` after the GPU has finished all queued work."""
    sync()
    return time.perf_counter()


def reset_peak() -> None:
    import torch

    if torch.cuda.is_available():
        torch.cuda.reset_peak_memory_stats()


def memory() -> dict[str, float]:
    """GiB: CUDA allocated/reserved now and their peaks (since the last reset); host peak RSS."""
    out = {"peak_rss_gib": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20, 3)}
    import torch

    if torch.cuda.is_available():
        g = 2**30
        out.update(
            allocated_gib=round(torch.cuda.memory_allocated() / g, 3),
            reserved_gib=round(torch.cuda.memory_reserved() / g, 3),
            peak_allocated_gib=round(torch.cuda.max_memory_allocated() / g, 3),
            peak_reserved_gib=round(torch.cuda.max_memory_reserved() / g, 3),
        )
    return out


def window(marks: list[tuple[int, float, float]], warmup: int) -> dict[str, Any]:
    """Figures over the measured steps from (step, time, cumulative real tokens) marks.

    marks[0] is taken before the first step, marks[k] at the end of step k; the window runs from
    the end of warm-up step `warmup` to the last mark.
    """
    if len(marks) < warmup + 2:
        raise RuntimeError(f"only {len(marks) - 1} step(s) ran; need warmup {warmup} + 1")
    s0, t0, k0 = marks[warmup]
    s1, t1, k1 = marks[-1]
    steps = [b[1] - a[1] for a, b in zip(marks[warmup:-1], marks[warmup + 1 :])]
    wall = t1 - t0
    tokens = k1 - k0
    ordered = sorted(steps)
    return {
        "measured_steps": s1 - s0,
        "warmup_steps": warmup,
        "real_tokens": int(tokens),
        "wall_s": round(wall, 4),
        "real_tokens_per_s": round(tokens / wall, 2) if wall > 0 else None,
        "step_s_mean": round(wall / max(s1 - s0, 1), 4),
        "step_s_median": round(ordered[len(ordered) // 2], 4),
        "step_s_min": round(ordered[0], 4),
        "step_s_max": round(ordered[-1], 4),
    }


def length_stats(values: list[int]) -> dict[str, float]:
    """Mean (1 decimal) and p0/p50/p90/p100 of token lengths."""
    if not values:
        return {}
    return {"mean": round(sum(values) / len(values), 1), **percentiles(values, (0, 50, 90, 100))}


# ---------------------------------------------------------------------------------------------
# Models


def shape_corpus(n: int = 2000) -> list[str]:
    """Text the shape model's BPE tokenizer is trained on: realistic notes, reasons, the prompt."""
    from discriminator.modeling import build_tiny_corpus

    return build_tiny_corpus(n, seed=0, length="realistic")


def build_shape_model(out_dir: str, corpus_notes: int = 2000, shape: str = SHAPE) -> dict[str, Any]:
    """Worker task: a random-weight model of `shape` (Llama-3.1-8B: 16 GB of bf16 safetensors)
    into `out_dir`, atomically."""
    import torch

    from discriminator.modeling import make_shape_model

    final = Path(out_dir)
    final.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=".shape-", dir=final.parent))
    t0 = time.perf_counter()
    device = "cuda" if torch.cuda.is_available() else "cpu"
    make_shape_model(tmp, shape, shape_corpus(corpus_notes), device=device, dtype="bfloat16")
    (tmp / "shape_model.json").write_text(json.dumps({"shape": shape, "seed": 0}) + "\n")
    if final.exists():
        shutil.rmtree(final)
    os.rename(tmp, final)
    return {"model_dir": str(final), "build_s": round(time.perf_counter() - t0, 1)}


def shape_model_ready(path: Path) -> bool:
    return (path / "config.json").exists() and (path / "shape_model.json").exists()


def default_shape_dir() -> Path:
    from discriminator.modeling import cache_dir

    return cache_dir() / f"shape-{SHAPE}"


def disk_free_gb(path: Path) -> float:
    p = path
    while not p.exists():
        p = p.parent
    return shutil.disk_usage(p).free / 1e9


def make_random_adapter(
    base_dir: str, out_dir: str, lora: Any, seed: int = 0, b_std: float = 0.01
) -> Path:
    """A PEFT LoRA adapter for `base_dir` with random A and non-zero random B, saved as
    safetensors with the base's tokenizer (so scoring's merge path does real work).

    Built on the meta device: no base weights are loaded, so it takes seconds even for 8B.
    """
    import torch
    from peft import get_peft_model, get_peft_model_state_dict
    from safetensors.torch import save_file
    from transformers import AutoConfig, AutoModelForCausalLM

    from discriminator.modeling import load_tokenizer, lora_config

    config = AutoConfig.from_pretrained(base_dir)
    with torch.device("meta"):
        base = AutoModelForCausalLM.from_config(config)
    model = get_peft_model(base, lora_config(lora))
    shapes = {k: tuple(v.shape) for k, v in get_peft_model_state_dict(model).items()}
    gen = torch.Generator().manual_seed(seed)
    tensors = {}
    for key, shape in sorted(shapes.items()):
        t = torch.randn(shape, generator=gen)
        if "lora_A" in key:
            t /= math.sqrt(shape[1])
        elif "lora_B" in key:
            t *= b_std
        tensors[key] = t.contiguous()
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    save_file(tensors, str(out / "adapter_model.safetensors"), metadata={"format": "pt"})
    peft_cfg = model.peft_config["default"]
    peft_cfg.base_model_name_or_path = str(base_dir)
    peft_cfg.inference_mode = True
    peft_cfg.save_pretrained(str(out))
    load_tokenizer(str(base_dir)).save_pretrained(out)
    return out


# ---------------------------------------------------------------------------------------------
# One mode per process


def call(fn: str, kwargs: dict[str, Any]) -> dict[str, Any]:
    """Run `module:function(**kwargs)` here; returns its dict plus the device it ran on."""
    import importlib

    mod, name = fn.split(":")
    result = getattr(importlib.import_module(mod), name)(**kwargs)
    if "torch" in sys.modules:  # a task that never imported torch needs no device facts
        result.setdefault("device_info", device_info())
    return result


def sleep_task(seconds: float) -> dict[str, Any]:
    """A task that only waits (the harness's own timeout tests)."""
    time.sleep(seconds)
    return {"slept_s": seconds}


def run_isolated(
    fn: str, kwargs: dict[str, Any], work: Path, label: str, timeout: float | None = None
) -> dict[str, Any]:
    """Run one task in a fresh Python process (clean CUDA memory stats); output streams through.

    A failed or timed-out task gives {"error": ...} instead of raising, so the other modes run.
    """
    work.mkdir(parents=True, exist_ok=True)
    spec, result = work / f"{slug(label)}.spec.json", work / f"{slug(label)}.result.json"
    spec.write_text(json.dumps({"fn": fn, "kwargs": kwargs}))
    result.unlink(missing_ok=True)
    cmd = [sys.executable, "-m", "benchmarks.gpu", "worker", str(spec), str(result)]
    t0 = time.perf_counter()
    # Its own session: a timeout kills the worker and whatever it started.
    proc = subprocess.Popen(cmd, cwd=REPO, start_new_session=True)
    try:
        rc: Any = proc.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
        wall = round(time.perf_counter() - t0, 1)
        return {"error": f"timed out after {timeout:.0f}s", "timed_out": True, "process_s": wall}
    wall = round(time.perf_counter() - t0, 1)
    if result.exists():
        out = json.loads(result.read_text())
        out["process_s"] = wall
        return out
    return {"error": f"worker exited with {rc} after {wall}s (see its output above)"}


def run_task(
    fn: str,
    kwargs: dict[str, Any],
    work: Path,
    label: str,
    inline: bool,
    timeout: float | None = None,
) -> dict[str, Any]:
    print(f"\n=== {label} ===", flush=True)
    if not inline:
        return run_isolated(fn, kwargs, work, label, timeout)
    t0 = time.perf_counter()
    try:
        out = call(fn, kwargs)
    except Exception as e:
        traceback.print_exc()
        return {"error": f"{type(e).__name__}: {e}"[:2000]}
    finally:
        import gc

        gc.collect()
        if on_cuda():
            import torch

            torch.cuda.empty_cache()
    out["process_s"] = round(time.perf_counter() - t0, 1)
    return out


def worker_main(spec_path: str, result_path: str) -> int:
    spec = json.loads(Path(spec_path).read_text())
    try:
        out = call(spec["fn"], spec["kwargs"])
    except Exception as e:
        traceback.print_exc()
        out = {"error": f"{type(e).__name__}: {e}"[:2000]}
    write_atomic(result_path, json.dumps(out, default=str))
    return 0 if "error" not in out else 1


# ---------------------------------------------------------------------------------------------
# Reports


def report_path(out_dir: str | Path, bench: str, gpu: str | None, when: str) -> Path:
    return Path(out_dir) / f"{bench}-{slug(gpu or 'cpu')}-{when}.json"


def write_json(path: Path, report: dict[str, Any]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    return write_atomic(path, json.dumps(report, indent=2, default=str) + "\n")


def table(headers: list[str], rows: list[list[Any]]) -> str:
    cells = [[fmt(c, ".2f", none="-") for c in r] for r in rows]
    widths = [max(len(h), *(len(r[i]) for r in cells)) for i, h in enumerate(headers)]
    line = "  ".join(
        h.ljust(w) if i == 0 else h.rjust(w) for i, (h, w) in enumerate(zip(headers, widths))
    )
    out = [line, "-" * len(line)]
    for r in cells:
        out.append(
            "  ".join(
                c.ljust(w) if i == 0 else c.rjust(w) for i, (c, w) in enumerate(zip(r, widths))
            )
        )
    return "\n".join(out)
