"""Scoring at archive scale: the pipeline's own capacity, planning, memory and resume, on 2 cores.

    python -m benchmarks.score_scale                        # everything (~1 h 15 min)
    python -m benchmarks.score_scale --notes 20000 --files 40 --tiny-notes 400 \
        --mimic-notes 5000                                  # a quick look
    python -m benchmarks.score_scale --skip stand-in resume # keep those parts from --out
    python -m benchmarks.score_scale --table [scale|mimic]  # the markdown tables, no run

Makes a synthetic archive once (`--data`, default /tmp/score-scale: word-salad notes of 300-900
words, the realistic profile's length, half JSONL and half parquet files, two bad rows in each;
`benchmarks/archive.py`), then in one run and one local Ray instance:

  1. planning: `plan_chunks` over the 10k subset and the whole archive (every JSONL file is
     streamed once to find chunk offsets; parquet row counts come from the footers);
  2. the pipeline's own capacity: the real `run_scoring` job (read, validate, chat template,
     tokenize, bucket, route to the actor, write parts) on the 10k subset and on the whole archive,
     with the model's forward replaced by a constant-time stand-in defined HERE (`StandInScorer`;
     the library has no such mode): notes/s, peak RSS of the driver and of the Ray workers,
     object-store spill, files and parts written, rows in vs out;
  2b. MIMIC-IV-Note's shape (`--mimic-notes`, default all 331,794 of v2.2; `--mimic-words` 1,800
     on average, a long tail): one `discharge.csv.gz` in its eight-column layout, the same notes
     as one parquet file written with a single row group (pandas'/pyarrow's default below 1M
     rows) and as JSONL, each scored by the stand-in job (`--keep-columns subject_id,hadm_id`):
     notes/s of each (staging included), the largest process's peak RSS, rows in and out;
  3. the tiny model on `--tiny-notes` notes (default 10,000, so start-up weighs little): Ray Data (`run_scoring`, one scorer actor) against the
     in-process loop (`Scorer.score_notes`, the same notes, one CPU's torch threads as the actor
     gets; both timed from the start, model load included, Ray's own start-up excluded), the time
     to the first part file (from the job's start, and from the end of the first scorer actor's
     start-up: process, imports, model load) against the time one actor takes to score one chunk
     once loaded, and the longest gap between the progress lines the job shows;
  4. resume at scale: a stand-in run on the whole archive interrupted halfway (SIGINT, then SIGKILL
     of the driver process), then re-run: rows out, duplicates, parts written twice, the re-run's
     planning time.

Writes JSON (default benchmarks/results/score_scale.json) after every step, so an interrupted
benchmark keeps what it measured. One key per part (planning, stand_in, mimic, tiny, resume),
each with its figures and the provenance of the run that measured it (date, git_commit, machine,
versions, note); `this_run` is the provenance of the latest run and the parts it measured.
`--skip PART...` does not run those parts and keeps them from --out as they were.
`--table [scale|mimic]` prints the docs' tables from --out (both by default) without running
anything.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

import numpy as np

from benchmarks import archive
from benchmarks.common import SCORE_SCALE_PARTS, provenance, provenance_text
from benchmarks.score_cpu import PeakRSS
from discriminator import scoring
from discriminator.files import write_atomic
from discriminator.flags import job_parser
from discriminator.numbers import fmt

REPO = Path(__file__).resolve().parents[1]


def mark_ready(output: str) -> None:
    """Note (beside the output) the wall-clock time a scorer actor finished its start-up."""
    with open(f"{output}.ready", "a") as fh:
        fh.write(f"{time.time()}\n")


class TimedScorer(scoring.Scorer):
    """The real scorer, noting when its start-up (process, imports, model load) is done and
    when each call (one chunk: its preparation ran just before, in the same actor) starts and
    ends."""

    def __init__(self, cfg: dict, tokenizer: str, progress: Any = None):
        super().__init__(cfg, tokenizer, progress)
        mark_ready(self.cfg.io.output)

    def __call__(self, batch: Any) -> Any:
        t0 = time.time()
        out = super().__call__(batch)
        with open(f"{self.cfg.io.output}.calls", "a") as fh:
            fh.write(f"{t0} {time.time()}\n")
        return out


def actor_times(output: str, t0_wall: float) -> dict[str, Any]:
    """What the scorer actors noted, from the job's start: the first one's end of start-up
    (`mark_ready`), and with `TimedScorer` the first call's start and end and the median call
    (one chunk scored by one actor, in the job itself)."""
    ready_file, calls_file = Path(f"{output}.ready"), Path(f"{output}.calls")
    ready = [float(x) for x in ready_file.read_text().split()] if ready_file.exists() else []
    times: dict[str, Any] = {"scorer_ready_s": round(min(ready) - t0_wall, 2) if ready else None}
    if not calls_file.exists():
        return times
    calls = sorted(tuple(map(float, line.split())) for line in calls_file.read_text().splitlines())
    return {
        **times,
        "first_call_start_s": round(calls[0][0] - t0_wall, 2),
        "first_call_end_s": round(calls[0][1] - t0_wall, 2),
        "chunk_call_median_s": round(float(np.median([b - a for a, b in calls])), 2),
        "chunk_calls": len(calls),
    }


class StandInScorer(scoring.Scorer):
    """The scorer actor with a constant-time forward: everything around the model stays real
    (batching, bucketing, rows, statuses); every note gets the same logits (p_error 0.1)."""

    def __init__(self, cfg: dict, tokenizer: str, progress: Any = None):
        self.setup(cfg, tokenizer, progress)  # everything the real scorer has but its model
        vocab = len(self.tok)
        self._row = np.full(vocab, -30.0, dtype=np.float32)  # ~no mass off the decision
        self._row[self.good_id] = np.log(0.9)  # P(good) 0.9, the categories 0.1 between them
        self._row[self.error_ids] = np.log(0.1 / len(self.error_ids))
        mark_ready(self.cfg.io.output)

    def prefill(self, seqs: list[list[int]]) -> np.ndarray:
        return np.broadcast_to(self._row, (len(seqs), self._row.shape[0]))

    def generate(self, seqs: list[list[int]], first: list[int] | None = None) -> list[str]:
        return ["good"] * len(seqs)


class Peak(PeakRSS):
    """Peak RSS of this process and, separately, of every process whose command line names
    `marker` (the local Ray instance's temp dir), and of the largest single one of them all,
    sampled every 0.2 s."""

    def __init__(self, marker: str):
        super().__init__(marker)
        self.driver = self.workers = self.largest = 0

    def _record(self) -> None:
        driver, workers = self._split()
        self.driver, self.workers = max(self.driver, driver), max(self.workers, workers)
        self.largest = max(self.largest, driver, self._largest())

    def _largest(self) -> int:
        """The largest RSS among this process's descendants (the local Ray instance: GCS,
        raylet, and the workers and actors, which rename themselves `ray::...`, so their command
        lines no longer name the marker)."""
        parent: dict[int, int] = {}
        for pid in os.listdir("/proc"):
            if not pid.isdigit():
                continue
            try:
                stat = Path(f"/proc/{pid}/stat").read_text()
            except OSError:
                continue
            parent[int(pid)] = int(stat.rsplit(")", 1)[1].split()[1])
        mine = {os.getpid()}
        grew = True
        while grew:
            kids = {p for p, pp in parent.items() if pp in mine and p not in mine}
            grew = bool(kids)
            mine |= kids
        return max((self.rss(pid) for pid in mine - {os.getpid()}), default=0)


class ProgressTimes(logging.Handler):
    """Times of the progress lines the job shows (`[score] ... rows scored ...`)."""

    def __init__(self) -> None:
        super().__init__(logging.INFO)
        self.times: list[float] = []

    def emit(self, record: logging.LogRecord) -> None:
        if "rows scored" in record.getMessage():
            self.times.append(time.monotonic())


def first_part_time(out: Path, t0: float, stop: threading.Event, box: dict) -> None:
    while not stop.is_set():
        if out.exists() and any(n.startswith("part-") for n in os.listdir(out)):
            box["first_part_s"] = round(time.monotonic() - t0, 2)
            return
        time.sleep(0.05)


def spilled_mb() -> float | None:
    try:
        from ray._private.internal_api import memory_summary

        text = memory_summary(stats_only=True)
    except Exception:
        return None
    import re

    m = re.search(r"Spilled (\d+) MiB", text)
    return float(m.group(1)) if m else 0.0


def score_cfg(inputs: list[str], output: Path, model: str, chunk_rows: int, **sets: Any) -> Any:
    from discriminator.config import ScoreConfig, load_config

    overrides = [f"model.name_or_path={model}", "adapter=null", f"io.chunk_rows={chunk_rows}"]
    overrides += [f"{k.replace('__', '.')}={v}" for k, v in sets.items()]
    cfg = load_config(ScoreConfig, REPO / "ray_jobs/configs/smoke_score.yaml", overrides)
    cfg.io.input = list(inputs)
    cfg.io.output = str(output)
    return cfg


def run_pipeline(cfg: Any, marker: str, scorer: type, expect_rows: int) -> dict[str, Any]:
    progress = ProgressTimes()
    logging.getLogger("discriminator").addHandler(progress)
    logging.getLogger("discriminator").setLevel(logging.INFO)
    stop, box = threading.Event(), {}
    t0, t0_wall = time.monotonic(), time.time()
    watcher = threading.Thread(
        target=first_part_time, args=(Path(cfg.io.output), t0, stop, box), daemon=True
    )
    watcher.start()
    try:
        with Peak(marker) as peak:
            manifest = scoring.run_scoring(cfg, scorer=scorer)
            wall = time.monotonic() - t0
    finally:
        stop.set()
        logging.getLogger("discriminator").removeHandler(progress)
    out = Path(cfg.io.output)
    rows_out = manifest["rows"]
    gaps = np.diff([t0, *progress.times]) if progress.times else np.array([wall])
    times = actor_times(cfg.io.output, t0_wall)
    ready_s = times.pop("scorer_ready_s")
    result = {
        "wall_s": round(wall, 2),
        "notes_per_s": round(rows_out / wall, 1),
        "rows_out": rows_out,
        "rows_expected": expect_rows,
        "counts": manifest["counts"],
        "duplicate_note_ids": manifest["duplicate_note_ids"]["count"],
        "files": len(manifest["inputs"]),
        "truncated": manifest.get("truncated"),
        "parts_written": len([n for n in os.listdir(out) if n.startswith("part-")]),
        "chunks": manifest["chunks"],
        "driver_peak_rss_mb": round(peak.driver / 2**20, 1),
        "workers_peak_rss_mb": round(peak.workers / 2**20, 1),
        "largest_process_peak_rss_mb": round(peak.largest / 2**20, 1),
        "object_store_spilled_mb": spilled_mb(),
        "first_part_s": box.get("first_part_s"),
        # from the first scorer actor's end of start-up (process, imports, model load)
        "scorer_ready_s": ready_s,
        "first_part_after_ready_s": (
            round(box["first_part_s"] - ready_s, 2)
            if ready_s is not None and "first_part_s" in box
            else None
        ),
        **times,
        "progress_lines": len(progress.times),
        "longest_progress_gap_s": round(float(gaps.max()), 2),
    }
    print(f"  {json.dumps(result)}", flush=True)
    return result


def plan_time(inputs: list[str], chunk_rows: int) -> tuple[float, int]:
    t0 = time.monotonic()
    chunks = scoring.plan_chunks(scoring.expand_inputs(inputs), chunk_rows)
    return round(time.monotonic() - t0, 3), len(chunks)


def in_process(cfg: Any, notes: list[str]) -> dict[str, Any]:
    import torch

    from discriminator.config import to_dict

    torch.set_num_threads(max(1, int(cfg.resources.cpus_per_actor)))  # what one actor gets
    t0 = time.monotonic()  # like the job's wall time: the model load is part of the run
    scorer = scoring.Scorer(to_dict(cfg), scoring.tokenizer_path(cfg))
    t1 = time.monotonic()
    rows = scorer.score_notes(notes)
    wall = time.monotonic() - t0
    assert len(rows) == len(notes)
    return {
        "wall_s": round(wall, 2),
        "load_s": round(t1 - t0, 2),
        "notes_per_s": round(len(notes) / wall, 2),
        "notes_per_s_after_load": round(len(notes) / (wall - (t1 - t0)), 2),
    }


def resume_at_scale(inputs: list[str], model: str, chunk_rows: int, out: Path, rows_in: int):
    """Interrupt a stand-in run halfway (SIGINT, then SIGKILL), re-run, check the output."""
    code = (
        "import sys, json, ray.cloudpickle; import benchmarks.score_scale as S;"
        "ray.cloudpickle.register_pickle_by_value(S); StandInScorer, score_cfg = S.StandInScorer, S.score_cfg;"
        "from discriminator import scoring; from discriminator.runtime import init_ray;"
        "init_ray(num_cpus=2);"
        f"cfg = score_cfg({inputs!r}, {str(out)!r}, {model!r}, {chunk_rows});"
        "m = scoring.run_scoring(cfg, scorer=StandInScorer);"
        "print(json.dumps({k: m[k] for k in ('rows', 'this_run')}))"
    )
    env = {**os.environ, "RAY_ADDRESS": ""}
    env.pop("RAY_ADDRESS")
    n_chunks = len(scoring.plan_chunks(scoring.expand_inputs(inputs), chunk_rows))
    target = max(1, n_chunks // 2)
    proc = subprocess.Popen([sys.executable, "-c", code], cwd=REPO, env=env,
                            start_new_session=True, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)  # fmt: skip
    try:
        while proc.poll() is None:
            if out.exists() and sum(n.startswith("part-") for n in os.listdir(out)) >= target:
                break
            time.sleep(0.1)
        proc.send_signal(signal.SIGINT)
        try:
            proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            proc.kill()  # the driver only; its Ray instance goes down with it or is reaped below
            proc.wait()
    finally:
        if proc.poll() is None:
            proc.kill()
        with contextlib.suppress(ProcessLookupError):  # its local Ray instance: same session
            os.killpg(proc.pid, signal.SIGKILL)
        time.sleep(1)
    first = {n: (out / n).stat().st_mtime_ns for n in os.listdir(out) if n.startswith("part-")}
    t0 = time.monotonic()
    rerun = subprocess.run([sys.executable, "-c", code], cwd=REPO, env=env, capture_output=True,
                           text=True, timeout=3600)  # fmt: skip
    wall = time.monotonic() - t0
    assert rerun.returncode == 0, rerun.stderr[-3000:]
    table = scoring.read_output(str(out), columns=["note_id"])
    ids = table.column("note_id").to_pylist()
    rewritten = sum((out / n).stat().st_mtime_ns != t for n, t in first.items())
    t_plan, _ = plan_time(inputs, chunk_rows)
    return {
        "chunks": n_chunks,
        "parts_before_rerun": len(first),
        "rows_out": len(ids),
        "rows_in": rows_in,
        "unique_ids": len(set(ids)),
        "parts_rewritten": rewritten,
        "rerun_wall_s": round(wall, 1),  # the whole process: Python, imports, Ray's start
        "rerun_job": json.loads(rerun.stdout.strip().splitlines()[-1])["this_run"],
        "rerun_planning_s": t_plan,
    }


MIMIC_RUNS = ("csv_gz", "parquet_1rg", "jsonl")


def mimic_case(args: Any, model: str, work: Path, ray_tmp: str) -> dict[str, Any]:
    """The same MIMIC-shaped notes as discharge.csv.gz, a one-row-group parquet file and JSONL,
    each scored by the real job with the stand-in forward, two actors (one CPU each)."""
    data = Path(args.data) / f"mimic-{args.mimic_notes}-{args.mimic_words}"
    if not (data / "DONE").exists():
        print(f"making the MIMIC-shaped archive in {data} ...", flush=True)
        shutil.rmtree(data, ignore_errors=True)
        t0 = time.monotonic()
        made = archive.write_mimic(data, args.mimic_notes, seed=3, mean_words=args.mimic_words,
                                   jsonl=True, parquet=True)  # fmt: skip
        made["seconds"] = round(time.monotonic() - t0, 1)
        (data / "DONE").write_text(json.dumps(made))
    made = json.loads((data / "DONE").read_text())
    sets = {"scoring__max_prompt_tokens": args.mimic_prompt_tokens,
            "resources__num_actors": args.actors, "resources__cpus_per_actor": args.cpus_per_actor,
            "io__text_column": "text", "io__id_column": "note_id",
            "io__keep_columns": "[subject_id,hadm_id]"}  # fmt: skip
    result: dict[str, Any] = {"notes": made["notes"], "mean_words": made["mean_words"],
                              "bytes": made["bytes"], "settings": sets}  # fmt: skip
    # warm-up: Ray's worker pool and the actors' first start, paid before any of the three
    head = work / "mimic-warmup.jsonl"
    with open(made["paths"]["jsonl"], "rb") as fh:
        head.write_bytes(b"".join(fh.readline() for _ in range(2 * args.chunk_rows)))
    scoring.run_scoring(score_cfg([str(head)], work / "mimic-warmup", model, args.chunk_rows,
                                  **sets), scorer=StandInScorer)  # fmt: skip
    for name, key in (("csv_gz", "csv_gz"), ("parquet_1rg", "parquet"), ("jsonl", "jsonl")):
        print(f"MIMIC-shaped, {name}, {made['notes']:,} notes ...", flush=True)
        out = work / f"mimic-{name}"
        cfg = score_cfg([made["paths"][key]], out, model, args.chunk_rows, **sets)
        r = run_pipeline(cfg, ray_tmp, StandInScorer, made["notes"])
        ids = scoring.read_output(str(out), columns=["note_id"]).column("note_id").to_pylist()
        r["unique_ids"] = len(set(ids))
        result[name] = r
        shutil.rmtree(out, ignore_errors=True)
    return result


def merge(old: dict[str, Any] | None, new: dict[str, Any]) -> dict[str, Any]:
    """The report a run writes: the parts it measured (in `new`, with its `this_run`) and, from
    `old` (the earlier report, with --skip), every part it did not measure, untouched, with the
    provenance of the run that measured it."""
    out = {"benchmark": "score_scale", "this_run": new["this_run"]}
    for part in SCORE_SCALE_PARTS:
        if part in new or (old and part in old):
            out[part] = new[part] if part in new else old[part]  # type: ignore[index]
    return out


# What each figure aims at (the targets the benchmark checks the pipeline against).
AIMS = {
    "planning": "< 30 s",
    "stand_in": "≥ 1,000 notes/s",
    "rss": "< 1.5 GB, flat",
    "rows": "equal, no duplicate id",
    "tiny": "≥ 0.95x at ≥ 10,000 notes",
    "first_part": "≤ 2 chunks",
    "gap": "~10 s",
    "resume": "exact",
}


def _n(x: Any, spec: str = ",.0f") -> str:
    """A figure as text (`spec` for ints too), "–" when missing."""
    return fmt(float(x) if isinstance(x, int) else x, spec, "–")


def figures_table(report: dict[str, Any]) -> str:
    """The archive-scale figures as a markdown table, each row naming the part it comes from,
    and the provenance of those parts."""
    rows: list[tuple[str, str, str, str]] = []
    if p := report.get("planning"):
        a = p["archive"]
        rows.append((f"planning, {a['notes']:,} notes in {a['files']} files",
                     f"{_n(p['s_100k'], '.2f')} s; the 10k subset: {_n(p['s_10k'], '.2f')} s",
                     AIMS["planning"], "planning"))  # fmt: skip
    if (st := report.get("stand_in")) and "100k" in st:
        big, sm = st["100k"], st["10k"]
        rows += [
            ("stand-in pipeline, whole archive / 10k subset",
             f"**{_n(big['notes_per_s'])} notes/s** ({_n(big['wall_s'], '.1f')} s, the scorer "
             f"ready at {_n(big['scorer_ready_s'], '.1f')} s) / {_n(sm['notes_per_s'])} notes/s "
             f"({_n(sm['wall_s'], '.1f')} s, ready at {_n(sm['scorer_ready_s'], '.1f')} s)",
             AIMS["stand_in"], "stand_in"),
            ("driver peak RSS, 10k / whole archive",
             f"{_n(sm['driver_peak_rss_mb'])} / {_n(big['driver_peak_rss_mb'])} MB (workers "
             f"{_n(sm['workers_peak_rss_mb'])} / {_n(big['workers_peak_rss_mb'])} MB), spilled "
             f"{_n(big['object_store_spilled_mb'])} MB", AIMS["rss"], "stand_in"),
            ("rows in / out, whole archive",
             f"{_n(big['rows_expected'])} / {_n(big['rows_out'])} "
             f"({_n(big['counts'].get('invalid_input', 0))} `invalid_input`), "
             f"{big['duplicate_note_ids']} duplicate ids", AIMS["rows"], "stand_in"),
        ]  # fmt: skip
    if t := report.get("tiny"):
        rd, ip = t["ray_data"], t["in_process"]
        rows += [
            (f"`tiny`, {t['notes']:,} notes, {t['chunk_rows']:,}-row chunks: Ray Data / "
             "in-process",
             f"{_n(rd['notes_per_s'], '.1f')} / {_n(ip['notes_per_s'], '.1f')} notes/s "
             f"({_n(rd['wall_s'])} / {_n(ip['wall_s'])} s), **{t['ray_data_vs_in_process']:.2f}x**;"
             f" the scorer ready {_n(rd['scorer_ready_s'], '.1f')} s after the start (the loop "
             f"loads its model in {_n(ip['load_s'], '.1f')} s); one chunk takes "
             f"{_n(rd.get('chunk_call_median_s'))} s in the actor, {_n(t['one_chunk_s'])} s in "
             "the loop", AIMS["tiny"], "tiny"),
            ("first part file (`tiny`)",
             f"{_n(rd['first_part_s'], '.1f')} s after the job's start, "
             f"{_n(rd['first_part_after_ready_s'], '.1f')} s after the scorer is ready",
             AIMS["first_part"], "tiny"),
            ("longest gap between progress lines (`tiny`)",
             f"{_n(rd['longest_progress_gap_s'], '.1f')} s", AIMS["gap"], "tiny"),
        ]  # fmt: skip
    if r := report.get("resume"):
        rows.append((f"resume: SIGINT then SIGKILL of the driver at {r['parts_before_rerun']} of "
                     f"{r['chunks']} parts, re-run",
                     f"{_n(r['rows_out'])} rows of {_n(r['rows_in'])}, {_n(r['unique_ids'])} "
                     f"unique ids, {r['parts_rewritten']} parts written twice; re-run "
                     f"{_n(r['rerun_wall_s'])} s as a whole process", AIMS["resume"],
                     "resume"))  # fmt: skip
    lines = ["| figure | measured | aim | part |", "|---|---|---|---|"]
    lines += [f"| {a} | {b} | {c} | {d} |" for a, b, c, d in rows]
    shown = {p: report[p] for p in SCORE_SCALE_PARTS if p in {row[3] for row in rows}}
    return "\n".join(lines) + "\n\n" + provenance_text(shown)


def mimic_table(report: dict[str, Any]) -> str:
    """The MIMIC-shaped case: the same notes as JSONL, csv.gz and one-row-group parquet."""
    m = report["mimic"]
    lines = [
        "| input | whole job (s) | notes/s | vs JSONL | largest process, peak RSS (MB) | rows out "
        "| duplicate ids | scorers ready after (s) |",
        "|---|---|---|---|---|---|---|---|",
    ]
    base = m["jsonl"]["notes_per_s"]
    for key, name in (("jsonl", "`discharge.jsonl`"), ("csv_gz", "`discharge.csv.gz`"),
                      ("parquet_1rg", "`discharge.parquet`, one row group")):  # fmt: skip
        r = m[key]
        lines.append(
            f"| {name} | {_n(r['wall_s'], '.1f')} | {_n(r['notes_per_s'], '.1f')} | "
            f"{r['notes_per_s'] / base:.2f}x | {_n(r['largest_process_peak_rss_mb'])} | "
            f"{_n(r['rows_out'])} of {_n(r['rows_expected'])} | {r['duplicate_note_ids']} | "
            f"{_n(r['scorer_ready_s'], '.1f')} |"
        )
    note = (f"{m['notes']:,} notes, {m['mean_words']:,.0f} words on average; "
            f"`scoring.max_prompt_tokens={m['settings']['scoring__max_prompt_tokens']}`.")  # fmt: skip
    return "\n".join(lines) + "\n\n" + note + " " + provenance_text({"mimic": m})


TABLES = {"scale": figures_table, "mimic": mimic_table}


def main(argv: list[str] | None = None) -> int:
    ap = job_parser("python -m benchmarks.score_scale", __doc__)
    ap.add_argument("--notes", type=int, default=100_000, help="notes in the whole archive")
    ap.add_argument("--files", type=int, default=200, help="files in the archive")
    ap.add_argument("--small", type=int, default=10_000, help="notes in the subset (memory)")
    ap.add_argument("--tiny-notes", type=int, default=10_000, help="notes for the tiny-model runs")
    ap.add_argument("--mimic-notes", type=int, default=331_794, help="MIMIC-shaped case: notes")
    ap.add_argument("--mimic-words", type=int, default=archive.MIMIC_WORDS, help="mean words")
    ap.add_argument("--mimic-prompt-tokens", type=int, default=8192,
                    help="MIMIC-shaped case: scoring.max_prompt_tokens")  # fmt: skip
    ap.add_argument("--chunk-rows", type=int, default=1024, help="io.chunk_rows (the default)")
    ap.add_argument("--max-prompt-tokens", type=int, default=3072, help="stand-in runs' budget")
    ap.add_argument("--actors", type=int, default=2, help="stand-in scorer actors")
    ap.add_argument("--cpus-per-actor", type=float, default=1.0, help="CPUs per stand-in actor")
    ap.add_argument("--data", default="/tmp/score-scale", help="where the archive is made once")
    ap.add_argument(
        "--output", "--out", dest="out", default=str(REPO / "benchmarks/results/score_scale.json"),
        metavar="FILE", help="the JSON report",
    )  # fmt: skip
    ap.add_argument("--skip", nargs="*", default=[], choices=["stand-in", "mimic", "tiny", "resume"],
                    help="parts not to run; their figures in --output are kept")  # fmt: skip
    ap.add_argument("--note", default=None, help="conditions to record with the figures")
    ap.add_argument("--table", nargs="?", const="all", choices=[*TABLES, "all"],
                    help="print the markdown tables from --out (scale: the archive-scale figures; "
                         "mimic: the MIMIC-shaped case; both by default); nothing is run")  # fmt: skip
    args = ap.parse_args(argv)
    if args.table:
        if not Path(args.out).exists():
            ap.error(f"{args.out} not found: run the benchmark first")
        report = json.loads(Path(args.out).read_text())
        names = list(TABLES) if args.table == "all" else [args.table]
        print("\n\n".join(TABLES[n](report) for n in names if n != "mimic" or "mimic" in report))
        return 0

    out_path = Path(args.out)
    # a partial run keeps the parts it skips, each with its own provenance
    old = json.loads(out_path.read_text()) if args.skip and out_path.exists() else None
    if old is not None and "this_run" not in old:
        ap.error(f"{out_path} has no per-part provenance (an older layout): nothing to keep")
    import ray
    import ray.cloudpickle

    # The stand-in lives here, not in the library: ship its code to the workers by value.
    ray.cloudpickle.register_pickle_by_value(sys.modules[StandInScorer.__module__])
    from discriminator.modeling import resolve_model

    data = Path(args.data) / f"archive-{args.notes}-{args.files}"
    if not (data / "DONE").exists():
        print(f"making the archive in {data} ...", flush=True)
        shutil.rmtree(data, ignore_errors=True)
        t0 = time.monotonic()
        made = archive.write_archive(data / "files", args.notes, args.files)
        made["seconds"] = round(time.monotonic() - t0, 1)
        (data / "DONE").write_text(json.dumps({k: v for k, v in made.items() if k != "files"}))
    info = json.loads((data / "DONE").read_text())
    files = sorted(str(p) for p in (data / "files").iterdir())
    k_small = max(2, len(files) * args.small // args.notes)
    small, rows_small = files[:k_small], None
    prov = provenance()  # this run's: every part it measures is stamped with it
    setup = {"archive": {"notes": args.notes, "files": len(files), "rows_in": info["rows_in"],
                         "bad_rows": info["bad"], "words_per_note": list(archive.REALISTIC_WORDS)},
             "chunk_rows": args.chunk_rows}  # fmt: skip
    run: dict[str, Any] = {"benchmark": "score_scale",
                           "this_run": {**prov, "measured": [], "note": args.note}}  # fmt: skip

    def record(part: str, figures: dict[str, Any]) -> None:
        """`part` as measured by this run, stamped with this run's provenance; then written."""
        run[part] = {**figures, **prov, "note": args.note}
        if part not in run["this_run"]["measured"]:
            run["this_run"]["measured"].append(part)
        out_path.parent.mkdir(parents=True, exist_ok=True)
        write_atomic(out_path, json.dumps(merge(old, run), indent=2) + "\n")

    model = resolve_model("tiny")
    work = Path(tempfile.mkdtemp(prefix="ss", dir="/tmp"))
    try:
        # 1. planning
        t10, _ = plan_time(small, args.chunk_rows)
        t100, n_chunks = plan_time(files, args.chunk_rows)
        print(f"planning: {t100}s for {n_chunks} chunks", flush=True)
        record("planning", {**setup, "s_10k": t10, "s_100k": t100, "chunks_100k": n_chunks})
        from discriminator.runtime import init_ray, ray_folder

        init_ray(num_cpus=2, log_to_driver=False)  # a private local instance
        ray_tmp = str(ray_folder())  # its processes name this folder
        # 2. the pipeline's own capacity (stand-in forward)
        import pyarrow.parquet as pq

        if "stand-in" not in args.skip:
            rows_small = 0
            for f in small:
                if f.endswith(".parquet"):
                    rows_small += pq.ParquetFile(f).metadata.num_rows
                else:
                    rows_small += sum(
                        1 for line in Path(f).read_bytes().split(b"\n") if line.strip()
                    )
            print(f"stand-in pipeline, {len(small)} files ...", flush=True)
            stand_in = {"scoring__max_prompt_tokens": args.max_prompt_tokens,
                        "resources__num_actors": args.actors,
                        "resources__cpus_per_actor": args.cpus_per_actor}  # fmt: skip
            r10 = run_pipeline(
                score_cfg(small, work / "s10k", model, args.chunk_rows, **stand_in), ray_tmp,
                StandInScorer, rows_small,
            )  # fmt: skip
            record("stand_in", {**setup, "settings": stand_in, "10k": r10})
            print(f"stand-in pipeline, {len(files)} files ...", flush=True)
            r100 = run_pipeline(
                score_cfg(files, work / "s100k", model, args.chunk_rows, **stand_in), ray_tmp,
                StandInScorer, info["rows_in"],
            )  # fmt: skip
            record("stand_in", {**setup, "settings": stand_in, "10k": r10, "100k": r100})
            shutil.rmtree(work / "s10k", ignore_errors=True)
            shutil.rmtree(work / "s100k", ignore_errors=True)
        # 2b. MIMIC-IV-Note's shape: one discharge.csv.gz, the same notes as one parquet file
        # with a single row group and as JSONL, in one run (stand-in forward)
        if "mimic" not in args.skip:
            m = mimic_case(args, model, work, ray_tmp)
            record("mimic", {
                **m,
                "csv_vs_jsonl": round(m["csv_gz"]["notes_per_s"] / m["jsonl"]["notes_per_s"], 3),
                "parquet_1rg_vs_jsonl": round(
                    m["parquet_1rg"]["notes_per_s"] / m["jsonl"]["notes_per_s"], 3),
                "peak_rss_mb": max(m[k]["largest_process_peak_rss_mb"] for k in MIMIC_RUNS),
                "rows_out": min(m[k]["rows_out"] for k in MIMIC_RUNS),
            })  # fmt: skip
        # 3. the tiny model: Ray Data vs the in-process loop, the same notes
        if "tiny" not in args.skip:
            n = args.tiny_notes
            tiny_files = archive.write_archive(work / "tiny-in", n, 4, seed=5, bad_per_file=0)
            notes = []
            for f in tiny_files["files"]:
                if f.endswith(".parquet"):
                    notes += pq.read_table(f).column("note").to_pylist()
                else:
                    lines = Path(f).read_text(encoding="utf-8").splitlines()
                    notes += [json.loads(x)["note"] for x in lines if x.strip()]
            chunk = args.chunk_rows  # the job's default: a chunk per scorer call
            # rows_per_call = a chunk: each call sorts its whole chunk by length before bucketing,
            # as the loop sorts all its notes (the smoke config's 32 pads more)
            cfg = score_cfg(tiny_files["files"], work / "tiny-out", model, chunk,
                            scoring__generate="never", scoring__rows_per_call=chunk)  # fmt: skip
            print(f"tiny model, Ray Data, {n} notes, {chunk}-row chunks ...", flush=True)
            rd = run_pipeline(cfg, ray_tmp, TimedScorer, n)
            ray.shutdown()
            print(f"tiny model, in-process, {n} notes ...", flush=True)
            ip = in_process(cfg, notes)
            record("tiny", {"notes": n, "chunk_rows": chunk, "ray_data": rd, "in_process": ip,
                            # one chunk scored by one actor once loaded (what the in-process
                            # loop, given the actor's CPUs, takes per chunk)
                            "one_chunk_s": round(chunk / ip["notes_per_s_after_load"], 2),
                            "ray_data_vs_in_process": round(rd["notes_per_s"] / ip["notes_per_s"],
                                                            3)})  # fmt: skip
        if ray.is_initialized():
            ray.shutdown()
        # 4. resume at scale
        if "resume" not in args.skip:
            print("resume: interrupt halfway, then re-run ...", flush=True)
            r = resume_at_scale(files, model, args.chunk_rows, work / "resume", info["rows_in"])
            record("resume", {**setup, **r})
    finally:
        if ray.is_initialized():
            ray.shutdown()
        shutil.rmtree(work, ignore_errors=True)
    print(figures_table(merge(old, run)))
    print(f"wrote {out_path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
