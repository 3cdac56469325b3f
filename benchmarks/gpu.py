"""GPU benchmark harness: training and scoring throughput of the project vs plain baselines.

    python -m benchmarks.gpu all --output benchmarks/results           # on a CUDA machine
    python -m benchmarks.gpu all --smoke --output /tmp/bench           # CPU smoke (tiny model)

Subcommands: `budget` (every figure in one command that fits 8 minutes on a bare H100, the
model build included: benchmarks/budget.py; start here), `setup` (build the shape-only
Llama-3.1-8B once: random bf16 weights, 16 GB on disk, a BPE tokenizer trained on synthetic
notes), `train` (benchmarks/train_gpu.py), `score` (benchmarks/score_gpu.py), `all` (the three in
turn). Each mode runs in its own Python process
(clean CUDA memory statistics; one crash does not stop the others); `--inline` runs them in this
process instead (CPU smoke tests). Each of `train` / `score` writes
`<out>/<train|score>-<gpu-slug>-<YYYYmmdd-HHMMSS>.json` (updated after every mode, so a run cut
short still leaves its finished modes) and prints a table with every mode's ratio to its baseline
measured in the same run. See benchmarks/README.md.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import tempfile
from pathlib import Path
from typing import Any

from benchmarks import budget, common
from discriminator.flags import job_parser
from discriminator.numbers import fmt

common.set_env()

SMOKE = {
    "train_notes": 8,
    "steps": 2,
    "warmup": 1,
    "batch": 2,
    "pack_tokens": 2048,
    "length": "short",
    "train_prompt_tokens": 512,
    "score_notes": 8,
    "plain_batch": 4,
    "plain_new_tokens": 4,
    "prompt_tokens": 512,
    "calib_notes": 8,
}
FULL = {
    "train_notes": 256,
    "steps": 8,
    "warmup": 2,
    "batch": 4,
    "pack_tokens": 8192,
    "length": "realistic",
    "train_prompt_tokens": 3072,
    "score_notes": 1024,
    "plain_batch": 32,
    "plain_new_tokens": 64,
    "prompt_tokens": 1024,
    "calib_notes": 128,
}


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    ap = job_parser("python -m benchmarks.gpu", __doc__)
    ap.add_argument("command", choices=["setup", "train", "score", "all", "budget", "pack-check"])
    g = ap.add_argument_group("common")
    g.add_argument("--smoke", action="store_true", help="CPU smoke: tiny model, tiny counts")
    g.add_argument(
        "--output", "--out", dest="out", default=str(common.RESULTS), metavar="DIR",
        help="folder for the JSON reports",
    )  # fmt: skip
    g.add_argument("--model-dir", help="shape model folder (default: the cache; built if missing)")
    g.add_argument("--modes", help="comma-separated subset of the modes (default: all)")
    g.add_argument("--inline", action="store_true", help="run modes in this process")
    g.add_argument(
        "--timeout",
        type=float,
        default=900.0,
        help="seconds per mode before it is killed (default 900; budget: planned from --deadline)",
    )
    g.add_argument(
        "--deadline",
        type=float,
        help=f"budget: seconds for the whole command (default {budget.DEADLINE_S:g}; "
        f"--smoke: {budget.SMOKE_DEADLINE_S:g})",
    )
    g.add_argument("--work-dir", help="scratch folder (default: a new temp folder, removed)")
    g.add_argument("--length", choices=["short", "realistic"], help="synthetic note length mix")
    g.add_argument("--pack", default=".devpack/site.tar.xz", help="pack-check: the package pack")
    g.add_argument(
        "--limit-mib", type=float, default=60.0, help="pack-check: what may travel, in MiB"
    )
    t = ap.add_argument_group("train")
    t.add_argument("--steps", type=int, help="measured optimizer steps per mode")
    t.add_argument("--warmup", type=int, help="optimizer steps before the measurement")
    t.add_argument("--batch", type=int, help="notes per step of the plain and TRL modes")
    t.add_argument("--pack-tokens", type=int, help="tokens per packed sequence (trl-packing-bfd)")
    t.add_argument("--train-notes", type=int, help="notes in the training pool")
    t.add_argument(
        "--train-prompt-tokens", type=int, help="data.max_prompt_tokens (longer notes are cut)"
    )
    t.add_argument(
        "--profile",
        action="append",
        default=[],
        metavar="NAME=CONFIG[,key=value...]",
        help="extra project mode from a training config (e.g. project-80gb=cfg.yaml)",
    )
    s = ap.add_argument_group("score")
    s.add_argument("--score-notes", type=int, help="notes scored by both modes (default 1024)")
    s.add_argument("--plain-notes", type=int, help="score only the first N notes in the baseline")
    s.add_argument("--plain-batch", type=int)
    s.add_argument("--plain-new-tokens", type=int)
    s.add_argument("--plain-quant", default="nf4", choices=["nf4", "none"])
    s.add_argument("--prompt-tokens", type=int, help="cut notes so prompts fit this many tokens")
    s.add_argument("--error-rate", type=float, default=0.2, help="error notes among the notes")
    s.add_argument("--flag-rate", type=float, default=0.2, help="calibrated share of flagged notes")
    s.add_argument("--threshold", type=float, help="fixed scoring threshold (no calibration)")
    s.add_argument("--calib-notes", type=int)
    s.add_argument("--score-config", default=str(common.CONFIGS / "score.yaml"))
    s.add_argument("--score-set", action="append", default=[], metavar="KEY=VALUE")
    s.add_argument("--reference", help="earlier score report: compare project verdicts with it")
    args = ap.parse_args(argv)
    args.argv = list(sys.argv[1:] if argv is None else argv)
    defaults = SMOKE if args.smoke else FULL
    for key, value in defaults.items():
        if getattr(args, key, None) is None:
            setattr(args, key, value)
    return args


def ensure_model(args: argparse.Namespace, work: Path) -> str:
    if args.smoke:
        from discriminator.modeling import resolve_model

        return args.model_dir or resolve_model("tiny")
    path = Path(args.model_dir) if args.model_dir else common.default_shape_dir()
    if common.shape_model_ready(path) or (args.model_dir and (path / "config.json").exists()):
        print(f"shape model: {path}", flush=True)
        return str(path)
    if common.gpu_name_smi() is None:
        raise SystemExit("no NVIDIA GPU found (nvidia-smi): use --smoke on a CPU machine")
    free = common.disk_free_gb(path)
    print(
        f"building the shape-only {common.SHAPE} model into {path}: ~16 GB of bf16 safetensors "
        f"({free:.0f} GB free there; needs ~{common.SHAPE_DISK_GB} GB)",
        flush=True,
    )
    if free < common.SHAPE_DISK_GB:
        print(f"WARNING: only {free:.0f} GB free; pass --model-dir on a bigger disk", flush=True)
    out = common.run_task(
        "benchmarks.common:build_shape_model",
        {"out_dir": str(path)},
        work,
        "setup",
        inline=False,
    )
    if "error" in out:
        raise SystemExit(f"building the shape model failed: {out['error']}")
    print(f"built {path} in {out['build_s']}s", flush=True)
    return str(path)


def chosen_modes(args: argparse.Namespace, available: list[str]) -> list[str]:
    if not args.modes:
        return available
    wanted = [m.strip() for m in args.modes.split(",") if m.strip()]
    unknown = [m for m in wanted if m not in available]
    if unknown:
        raise SystemExit(f"unknown mode(s) {', '.join(unknown)}; known: {', '.join(available)}")
    return [m for m in available if m in wanted]


def _report(bench: str, args: argparse.Namespace, settings: dict, data: dict) -> dict[str, Any]:
    return {
        "benchmark": bench,
        "smoke": args.smoke,
        **common.provenance(),  # date, git_commit, machine, versions: one run, one report
        "command": " ".join(["python", "-m", "benchmarks.gpu", *args.argv]),
        "device": None,
        "config": settings,
        "data": data,
        "results": {},
        "summary": {},
    }


def _record(report: dict, mode: str, result: dict, path: Path, summarize: Any) -> None:
    report["results"][mode] = result
    if report["device"] is None and "device_info" in result:
        report["device"] = result["device_info"]
    report["summary"] = summarize(report["results"])
    common.write_json(path, report)


def run_train(args: argparse.Namespace, model_dir: str, work: Path) -> tuple[dict, Path]:
    from benchmarks import train_gpu

    profs = train_gpu.profiles(args.profile)
    settings = {
        "smoke": args.smoke,
        "model_dir": model_dir,
        "model": "tiny" if args.smoke else common.SHAPE,
        "synth": f"synth:n={args.train_notes},seed=11,length={args.length},error_rate={args.error_rate}",
        "steps": args.steps,
        "warmup": args.warmup,
        "batch": args.batch,
        "pack_tokens": args.pack_tokens,
        "smoke_accum": 2,
        "max_prompt_tokens": args.train_prompt_tokens,
        "profiles": profs,
        "data_path": str(work / "train_data.json"),
    }
    data = train_gpu.prepare(settings, Path(settings["data_path"]))
    print(f"training notes: {data}", flush=True)
    report = _report("train" + ("-smoke" if args.smoke else ""), args, settings, data)
    report["config"]["smoke_overrides"] = train_gpu.SMOKE_OVERRIDES if args.smoke else []
    path = common.report_path(
        args.out, report["benchmark"], report["machine"]["gpu"], common.stamp()
    )
    modes = list(train_gpu.MODES) + [p for p in profs if p not in train_gpu.MODES]
    for mode in chosen_modes(args, modes):
        out = common.run_task(
            "benchmarks.train_gpu:run_mode",
            {"mode": mode, "s": settings},
            work,
            f"train {mode}",
            args.inline,
            args.timeout,
        )
        _record(report, mode, out, path, train_gpu.summarize)
    common.write_json(path, report)
    return report, path


def run_score(args: argparse.Namespace, model_dir: str, work: Path) -> tuple[dict, Path]:
    from benchmarks import score_gpu

    settings = {
        "smoke": args.smoke,
        "model_dir": model_dir,
        "model": "tiny" if args.smoke else common.SHAPE,
        "adapter_dir": str(work / "adapter"),
        "notes_path": str(work / "score_notes.jsonl"),
        "prepared_path": str(work / "score_prepared.parquet"),
        "work": str(work),
        "config": args.score_config,
        "extra_overrides": args.score_set,
        "notes": args.score_notes,
        "seed": 12,
        "error_rate": args.error_rate,
        "length": args.length,
        "prompt_tokens": args.prompt_tokens,
        "flag_rate": args.flag_rate,
        "threshold": args.threshold,
        "calib_notes": args.calib_notes,
        "plain_notes": args.plain_notes,
        "plain_batch": args.plain_batch,
        "plain_new_tokens": args.plain_new_tokens,
        "plain_quant": args.plain_quant,
    }
    data = score_gpu.prepare(settings)
    print(f"scoring notes: {data}", flush=True)
    report = _report("score" + ("-smoke" if args.smoke else ""), args, settings, data)
    report["config"]["overrides"] = score_gpu.overrides(settings)
    path = common.report_path(
        args.out, report["benchmark"], report["machine"]["gpu"], common.stamp()
    )
    fns = {"project": "run_project", "plain-generate": "run_plain"}
    for mode in chosen_modes(args, list(score_gpu.MODES)):
        out = common.run_task(
            f"benchmarks.score_gpu:{fns[mode]}",
            {"s": settings},
            work,
            f"score {mode}",
            args.inline,
            args.timeout,
        )
        _record(report, mode, out, path, score_gpu.summarize)
    if args.reference:
        report["summary"]["reference"] = score_gpu.compare_reference(
            report["results"], args.reference
        )
    common.write_json(path, report)
    return report, path


def travelling_bytes(root: Path) -> int:
    """Bytes of what travels with a working tree: the files git tracks and the untracked ones
    it does not ignore (as they are on disk)."""
    import subprocess

    names = subprocess.run(
        ["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
        cwd=root, capture_output=True, check=True,
    ).stdout.split(b"\0")  # fmt: skip
    total = 0
    for name in filter(None, names):
        p = root / name.decode()
        if p.is_file() and not p.is_symlink():
            total += p.stat().st_size
    return total


def pack_check(args: argparse.Namespace) -> int:
    """The repository plus the package pack (cluster/pack-offline) against the transfer limit."""
    root = common.REPO
    tree = travelling_bytes(root)
    pack = Path(args.pack) if Path(args.pack).is_absolute() else root / args.pack
    size = pack.stat().st_size if pack.exists() else 0
    mib = 1024 * 1024
    total = (tree + size) / mib
    where = str(pack) if size else "none yet: run cluster/pack-offline"
    print(
        f"tree {tree / mib:.1f} MiB + pack {size / mib:.1f} MiB ({where}) = {total:.1f} MiB "
        f"of {args.limit_mib:g} MiB"
    )
    if total > args.limit_mib:
        print(f"over the limit by {total - args.limit_mib:.1f} MiB", file=sys.stderr)
        return 1
    return 0


NO_GPU_REPORT = "No GPU figures yet: `benchmarks/results/` holds no GPU report."


def gpu_reports(folder: Path) -> list[dict[str, Any]]:
    """The newest non-smoke GPU report of each benchmark (budget, train, score) in `folder`."""
    latest: dict[str, dict[str, Any]] = {}
    for path in sorted(folder.glob("*.json")):  # the stamp in the name sorts by time
        r = json.loads(path.read_text())
        if r.get("benchmark") in ("budget", "train", "score") and not r.get("smoke"):
            latest[r["benchmark"]] = r
    return list(latest.values())


def markdown_table(reports: list[dict[str, Any]]) -> str:
    """Each mode's throughput and peak GPU memory, from the newest GPU reports."""
    if not reports:
        return NO_GPU_REPORT
    lines = ["| report | step | mode | throughput | peak reserved (GiB) |", "|---|---|---|---|---|"]
    for rep in reports:
        kinds = (
            rep["results"] if rep["benchmark"] == "budget" else {rep["benchmark"]: rep["results"]}
        )
        for kind, modes in kinds.items():
            for mode, r in modes.items():
                if kind == "setup":
                    continue
                speed = (f"{fmt(r.get('real_tokens_per_s'), ',.0f', '–')} real tokens/s"
                         if kind == "train" else f"{fmt(r.get('notes_per_s'), ',.1f', '–')} notes/s")  # fmt: skip
                speed = f"error: {r['error'][:60]}" if "error" in r else speed
                mem = fmt((r.get("memory") or {}).get("peak_reserved_gib"), ".1f", "–")
                lines.append(f"| {rep['benchmark']} | {kind} | {mode} | {speed} | {mem} |")
    shown = {f"{r['benchmark']} report": r for r in reports}
    return "\n".join(lines) + "\n\n" + common.provenance_text(shown)


def main(argv: list[str] | None = None) -> int:
    if argv is None:
        argv = sys.argv[1:]
    if argv[:1] == ["worker"]:
        return common.worker_main(argv[1], argv[2])
    if argv[:1] == ["--table"]:  # the docs' table from the newest reports; nothing is run
        out = argv[argv.index("--out") + 1] if "--out" in argv else common.RESULTS
        print(markdown_table(gpu_reports(Path(out))))
        return 0
    args = parse_args(argv)
    if args.command == "pack-check":
        return pack_check(args)
    work = Path(args.work_dir or tempfile.mkdtemp(prefix="bench-gpu-"))
    work.mkdir(parents=True, exist_ok=True)
    failed = False
    if args.command == "budget":
        from benchmarks import budget

        try:
            return budget.run(args, work)
        finally:
            if not args.work_dir:
                shutil.rmtree(work, ignore_errors=True)
    try:
        model_dir = ensure_model(args, work)
        done: list[tuple[str, dict, Path]] = []
        if args.command in ("train", "all"):
            from benchmarks import train_gpu

            report, path = run_train(args, model_dir, work)
            done.append((train_gpu.render(report["results"]), report, path))
        if args.command in ("score", "all"):
            from benchmarks import score_gpu

            report, path = run_score(args, model_dir, work)
            done.append((score_gpu.render(report["results"], report.get("summary")), report, path))
        for text, report, path in done:
            dev = report["device"] or {}
            print(f"\n{report['benchmark']} on {dev.get('gpu') or dev.get('cpu') or 'cpu'}")
            print(text)
            for key, value in report["summary"].items():
                print(f"  {key}: {value}")
            print(f"wrote {path}")
            failed |= any("error" in r for r in report["results"].values())
    finally:
        if not args.work_dir:
            shutil.rmtree(work, ignore_errors=True)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
