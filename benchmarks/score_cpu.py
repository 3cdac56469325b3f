"""CPU scoring throughput: the Ray Data pipeline vs a plain in-process loop, same notes and batches.

    python -m benchmarks.score_cpu --notes 64
    python -m benchmarks.score_cpu --table      # the table from the JSON, no run

Builds the tiny offline model and a random LoRA adapter in a temp dir, writes N synthetic notes,
then measures on the same machine in the same run:
  - in-process: the same `prepare_batch` + `Scorer` called in a loop in this process (no Ray),
    with as many torch threads as one scorer actor gets (`resources.cpus_per_actor`);
  - pipeline: `run_scoring` end to end (Ray Data, one scorer actor, parquet written), at N notes
    and at 10x N notes, with the peak resident memory of the driver plus every process of the
    local Ray cluster (sampled from /proc every 0.2 s).
Pipeline times include starting the actor and loading the model (the fixed cost that a real
archive amortises); the in-process row reports its load time separately.
Writes benchmarks/results/score_cpu.json with the run's provenance (date, git_commit, machine,
versions); `--table` prints it as the README's markdown table without running anything.
"""

from __future__ import annotations

import json
import os
import shutil
import sys
import tempfile
import threading
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("RAY_TRAIN_ENABLE_PRINT_PATCH", "0")
os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")

from benchmarks import archive, common
from benchmarks.common import provenance, provenance_text
from discriminator.files import write_atomic
from discriminator.flags import job_parser
from discriminator.numbers import fmt

REPO = Path(__file__).resolve().parents[1]


def make_notes(n: int, seed: int = 0) -> list[str]:
    return archive.make_notes(n, seed=seed, words=(80, 400))


def build_model(root: Path) -> tuple[Path, Path]:
    import torch
    from peft import get_peft_model

    from discriminator import modeling, prompt
    from discriminator.config import LoraSection, ModelConfig

    texts = [*make_notes(300, seed=1), prompt.SYSTEM_PROMPT, prompt.format_answer("good")]
    base_dir = modeling.make_tiny_model(root / "tiny", texts, vocab_size=2048, seed=0)
    base = modeling.load_base_model(
        ModelConfig(name_or_path=str(base_dir), quantization="none", dtype="float32")
    )
    model = get_peft_model(base, modeling.lora_config(LoraSection(r=8)))
    with torch.no_grad():
        for name, p in model.named_parameters():
            if "lora_B" in name:
                p.normal_(0, 0.05)
    model.save_pretrained(root / "adapter", safe_serialization=True)
    modeling.load_tokenizer(str(base_dir)).save_pretrained(root / "adapter")
    return base_dir, root / "adapter"


class PeakRSS:
    """Peak of (driver RSS + RSS of every process whose command line names `marker`)."""

    def __init__(self, marker: str):
        self.marker, self.peak, self._stop = marker.encode(), 0, threading.Event()

    @staticmethod
    def rss(pid: int | str) -> int:
        """A process's resident memory in bytes (0 when it is gone)."""
        try:
            for line in Path(f"/proc/{pid}/status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) * 1024
        except OSError:
            pass
        return 0

    def _split(self) -> tuple[int, int]:
        """(RSS of this process, RSS of the processes naming the marker), in bytes."""
        me = others = 0
        for pid in os.listdir("/proc"):
            if not pid.isdigit():
                continue
            try:
                mine = int(pid) == os.getpid()
                if not mine and self.marker not in Path(f"/proc/{pid}/cmdline").read_bytes():
                    continue
            except OSError:
                continue
            rss = self.rss(pid)
            me, others = (me + rss, others) if mine else (me, others + rss)
        return me, others

    def _record(self) -> None:
        self.peak = max(self.peak, sum(self._split()))

    def __enter__(self) -> PeakRSS:
        def loop() -> None:
            while not self._stop.is_set():
                self._record()
                self._stop.wait(0.2)

        self._thread = threading.Thread(target=loop, daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()


def in_process(cfg, n_notes: int) -> dict:
    import pyarrow as pa
    import torch

    from discriminator import scoring
    from discriminator.config import to_dict

    torch.set_num_threads(max(1, int(cfg.resources.cpus_per_actor)))  # what one actor gets
    tok = scoring.tokenizer_path(cfg)
    t0 = time.perf_counter()
    scorer = scoring.Scorer(to_dict(cfg), tok)
    load_s = time.perf_counter() - t0
    chunks = scoring.plan_chunks(scoring.expand_inputs(cfg.io.input), cfg.io.chunk_rows)
    t0 = time.perf_counter()
    items = pa.Table.from_pylist([{**c.__dict__, "part": c.part} for c in chunks])
    prepared = pa.concat_tables(
        [scoring.prepare_batch(items.slice(i, 1), to_dict(cfg), tok) for i in range(len(chunks))]
    )
    rows = 0
    for start in range(0, prepared.num_rows, cfg.scoring.rows_per_call):
        rows += scorer(prepared.slice(start, cfg.scoring.rows_per_call)).num_rows
    wall = time.perf_counter() - t0
    assert rows == n_notes
    return {"mode": "in-process", "notes": rows, "load_s": load_s, "wall_s": wall}


def pipeline(cfg, n_notes: int, marker: str) -> dict:
    from discriminator import scoring

    with PeakRSS(marker) as mem:
        t0 = time.perf_counter()
        manifest = scoring.run_scoring(cfg)
        wall = time.perf_counter() - t0
    assert manifest["rows"] == n_notes and manifest["counts"] == {"ok": n_notes}
    return {"mode": "ray-data", "notes": n_notes, "wall_s": wall, "peak_rss_mb": mem.peak / 2**20}


def markdown_table(report: dict) -> str:
    """The README's table: each mode's notes, wall time, throughput, load time and peak RSS."""
    lines = ["| mode | notes | wall (s) | notes/s | model load (s) | peak RSS (MB) |",
             "|---|---|---|---|---|---|"]  # fmt: skip
    names = {"in-process": "in-process loop (baseline)", "ray-data": "Ray Data pipeline"}
    for r in report["results"]:
        cells = [names.get(r["mode"], r["mode"]), f"{r['notes']:,}", fmt(r["wall_s"], ".1f"),
                 fmt(r["notes"] / r["wall_s"], ".1f"), fmt(r.get("load_s"), ".2f", "–"),
                 fmt(r.get("peak_rss_mb"), ",.0f", "–")]  # fmt: skip
        lines.append("| " + " | ".join(cells) + " |")
    s = report["settings"]
    note = (f"Model {s['model']}, `scoring.generate={s['generate']}`, batching of "
            f"`{s['batching']}`, one actor of {s['actor_cpus']} CPU; pipeline times include the "
            "actor's start and model load.")  # fmt: skip
    return "\n".join(lines) + "\n\n" + note + " " + provenance_text({"score_cpu": report})


def main(argv: list[str] | None = None) -> int:
    ap = job_parser("python -m benchmarks.score_cpu", __doc__)
    ap.add_argument("--notes", type=int, default=64, help="notes for the throughput comparison")
    ap.add_argument("--generate", default="never", choices=["never", "threshold", "always"])
    ap.add_argument(
        "--output", "--out", dest="out", default=str(REPO / "benchmarks/results/score_cpu.json"),
        metavar="FILE", help="the JSON report",
    )  # fmt: skip
    common.add_table_arg(ap)
    args = ap.parse_args(argv)
    if args.table:
        return common.print_table(ap, args.out, markdown_table)
    prov = provenance()  # before the run: the tree and packages it measures

    import ray

    from discriminator.config import ScoreConfig, load_config

    root = Path(tempfile.mkdtemp(prefix="sb", dir="/tmp"))
    base_dir, adapter = build_model(root)
    from discriminator.runtime import init_ray, ray_folder

    init_ray(num_cpus=2, log_to_driver=False)  # a private local instance
    ray_tmp = str(ray_folder())  # its processes name this folder
    results = []
    for mult in (1, 10):
        n = args.notes * mult
        path = root / f"notes{n}.jsonl"
        path.write_text("".join(json.dumps({"note": t}) + "\n" for t in make_notes(n, seed=mult)))
        cfg = load_config(
            ScoreConfig,
            REPO / "ray_jobs/configs/smoke_score.yaml",
            [f"model.name_or_path={base_dir}", f"adapter={adapter}",
             f"scoring.generate={args.generate}", f"io.input=[{path}]",
             f"io.output={root / f'out{n}'}"],
        )  # fmt: skip
        if mult == 1:
            results.append(in_process(cfg, n))
        results.append(pipeline(cfg, n, ray_tmp))
    ray.shutdown()
    shutil.rmtree(root, ignore_errors=True)

    print(
        f"{'mode':<11} {'notes':>6} {'wall s':>8} {'notes/s':>8} {'load s':>7} {'peak RSS MB':>12}"
    )
    for r in results:
        r["notes_per_s"] = r["notes"] / r["wall_s"]
        print(f"{r['mode']:<11} {r['notes']:>6} {r['wall_s']:>8.2f} {r['notes_per_s']:>8.2f} "
              f"{r.get('load_s', float('nan')):>7.2f} {r.get('peak_rss_mb', float('nan')):>12.0f}")  # fmt: skip
    report = {
        "benchmark": "score_cpu",
        **prov,
        "settings": {
            "notes": args.notes,
            "generate": args.generate,
            "model": "tiny (4 layers)",
            "batching": "smoke_score.yaml",
            "actor_cpus": 1,
            "torch_threads": 1,
        },
        "results": results,
    }
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    write_atomic(args.out, json.dumps(report, indent=2) + "\n")
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
