"""The local demo, cold, as a benchmark: its stage timings and quality with their provenance.

    python -m benchmarks.demo --note "idle 2-core machine"   # ~5 min on 2 cores
    python -m benchmarks.demo --table                        # the table from the JSON, no run
    python -m benchmarks.demo --table --brief                # the README's line

Runs `python -m ray_jobs.demo --output DIR` with `DISCRIMINATOR_CACHE` pointed at an empty temporary
folder, so the `tiny` base is built and pretrained in the run (a cold model cache, as on first
use), then records the demo's own `DIR/summary.json` (each stage's wall time and phases, the cache
state, the held-out metrics and the base model's AUROC) with the provenance taken before the run
(date, git_commit, machine, versions) into benchmarks/results/demo_cpu.json. Timings mean little
on a machine that is busy with anything else: say what the machine was doing with `--note`.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

from benchmarks import common
from discriminator.flags import job_parser
from discriminator.numbers import fmt

DEFAULT_OUT = common.RESULTS / "demo_cpu.json"


def run_demo(work: Path, cache: Path) -> dict[str, Any]:
    """The demo into `work` with its model cache in `cache`; returns its summary.json."""
    env = {**os.environ, "DISCRIMINATOR_CACHE": str(cache)}
    cmd = [sys.executable, "-m", "ray_jobs.demo", "--output", str(work)]
    subprocess.run(cmd, cwd=common.REPO, env=env, check=True)
    return json.loads((work / "summary.json").read_text())


def record(summary: dict[str, Any], prov: dict[str, Any], note: str | None, out: Path) -> dict:
    """The report: the demo's summary beside the provenance of the run that made it."""
    report = {"benchmark": "demo", **prov, "command": "python -m ray_jobs.demo", "note": note,
              "summary": summary}  # fmt: skip
    common.write_json(out, report)
    return report


def markdown_table(report: dict[str, Any]) -> str:
    """Each stage's wall time and its phases of 5 s or more, the whole run, then the quality."""
    s = report["summary"]
    lines = ["| stage | seconds | phases of 5 s or more |", "|---|---|---|"]
    for st in s["stages"]:
        big = ", ".join(f"{p['phase']} {p['seconds']:,.0f}" for p in st["phases"]
                        if p["seconds"] >= 5)  # fmt: skip
        lines.append(f"| {st['short']} | {st['seconds']:,.0f} | {big} |")
    lines.append(f"| **whole demo** ({s['model_cache']} model cache) | **{s['seconds']:,.0f}** | |")
    m = s["metrics"]
    quality = (f"Held-out test split of the {s['notes']:,} synthetic notes: balanced accuracy "
               f"{fmt(m.get('balanced_accuracy'), '.2f')}, AUROC {fmt(m.get('auroc'), '.2f')}, "
               f"category named for {fmt(m.get('category_accuracy'), '.2f')} of detected errors; "
               f"the base model alone: AUROC {fmt(s.get('baseline_auroc'), '.2f')}"
               + (f"; the bag-of-words floor: AUROC {fmt(s['floor_auroc'], '.2f')}"
                  if "floor_auroc" in s else "") + ".")  # fmt: skip
    tail = [quality, common.provenance_text({"demo": report})]
    tail += [f"Conditions: {report['note']}."] if report.get("note") else []
    return "\n".join(lines) + "\n\n" + " ".join(tail)


def brief(report: dict[str, Any]) -> str:
    """One line for the README: the cold demo's time and its held-out AUROC beside its floors."""
    s = report["summary"]
    m = s["metrics"]
    floor = f", bag-of-words floor {fmt(s['floor_auroc'], '.2f')}" if "floor_auroc" in s else ""
    return (
        f"The demo, cold on {common.provenance_text({'demo': report})[len('Measured ') : -1]}: "
        f"{s['seconds'] / 60:.1f} min after set-up; held-out AUROC {fmt(m.get('auroc'), '.2f')} "
        f"(the base alone {fmt(s.get('baseline_auroc'), '.2f')}{floor})."
    )


def main(argv: list[str] | None = None) -> int:
    p = job_parser("python -m benchmarks.demo", __doc__)
    p.add_argument("--output", "--out", dest="out", default=str(DEFAULT_OUT), metavar="FILE",
                   help="the results JSON")  # fmt: skip
    p.add_argument("--work", default=None, help="the demo's folder (default: a temporary one)")
    p.add_argument("--note", default=None, help="conditions to record with the figures")
    common.add_table_arg(p)
    p.add_argument("--brief", action="store_true", help="with --table: one line (the README's)")
    args = p.parse_args(argv)
    if args.table:
        missing = (f"No demo figures yet: `{common.shown(Path(args.out))}` does not exist "
                   "(`python -m benchmarks.demo` writes it).")  # fmt: skip
        return common.print_table(p, args.out, brief if args.brief else markdown_table, missing)
    prov = common.provenance()  # before the run: the tree and packages it measures
    scratch = Path(tempfile.mkdtemp(prefix="demo-bench-"))
    try:
        work = Path(args.work) if args.work else scratch / "demo"
        summary = run_demo(work, scratch / "cache")  # an empty cache: cold
        report = record(summary, prov, args.note, Path(args.out))
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    print(markdown_table(report))
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
