"""The jobs' console: own lines on the terminal, library noise in the run's log file."""

from __future__ import annotations

import json
import logging
import os
import re
import subprocess
import sys
import time
import warnings
from pathlib import Path

import pytest

from discriminator import console

# Lines the jobs' consoles used to drown in (seen on a fresh clone's `make demo`).
NOISE = [
    "(PlacementGroupCleaner pid=20688) Failed to query Ray Train Controller actor state. "
    "State API may be temporarily unavailable. Continuing to monitor.",
    "(RayTrainWorker pid=20725) /x/transformers/modeling_utils.py:3312: FutureWarning: "
    "`is_gradient_checkpointing` is deprecated and will be removed in v6.",
    "Failed to load CPU gemm_4bit_forward from kernels-community: No module named 'kernels'.",
    "\x1b[36m(RayTrainWorker pid=20725)\x1b[0m Tokenizing train dataset:  50%|#####| 16/32",
    "(RayTrainWorker pid=20725) {'loss': '5.519', 'grad_norm': '2.438', 'learning_rate': '0.001'}",
    "(RayTrainWorker pid=20753) Reporting training result 2: TrainingReport(metrics={'loss': 5.0})",
    "2026-12-03 16:18:08,839\tINFO worker.py:2038 -- Started a local Ray instance.",
]


@pytest.mark.parametrize("line", NOISE)
def test_noise_is_not_an_own_line(line):
    assert console.own_line(line) is None


@pytest.mark.parametrize(
    ("raw", "own"),
    [
        ("[train] step 2/4  loss 5.078", "[train] step 2/4  loss 5.078"),
        (
            "\x1b[36m(RayTrainWorker pid=20725)\x1b[0m [train] step 1/4  loss 5.5",
            "[train] step 1/4  loss 5.5",
        ),
        (
            "(RayTrainWorker pid=7, ip=10.0.0.2) [train] training to step 4"
            "\x1b[32m [repeated 2x across cluster]\x1b[0m",
            "[train] training to step 4",
        ),
        ("(_map_worker pid=9) [score] warning: scoring failed", "[score] warning: scoring failed"),
        ("error: base model x: no such directory", "error: base model x: no such directory"),
    ],
)
def test_own_lines_are_kept_without_ray_prefix(raw, own):
    assert console.own_line(raw) == own


def _log_path(text: str, job: str) -> Path:
    m = re.search(rf"^\[{job}\] log: (\S+)$", text, re.M)
    assert m, text[-2000:]
    return Path(m.group(1))


def test_capture_splits_console_and_log(tmp_path, capfd, monkeypatch):
    monkeypatch.setattr(console, "HEARTBEAT_S", 0.5)
    with console.capture("train", tmp_path / "logs"):
        print(NOISE[0])
        print("[train] step 1/2  loss 1.0")
        os.write(2, (NOISE[2] + "\n").encode())  # C-level stderr, e.g. bitsandbytes
        subprocess.run([sys.executable, "-c", f"print({NOISE[4]!r})"], check=True)  # a child
        logging.getLogger("discriminator.scoring").info("3 chunk(s) planned")
        logging.getLogger("discriminator.scoring").warning("output is readable by others")
        logging.getLogger("a.library").info("Reporting training result 1")
        with warnings.catch_warnings():
            warnings.simplefilter("always")
            warnings.warn("`is_gradient_checkpointing` is deprecated", FutureWarning, stacklevel=1)
        console.stage("waiting for workers")
        time.sleep(1.6)  # silent longer than the heartbeat
        print("[train] adapter written to x")
    out = capfd.readouterr()
    shown = (out.out + out.err).splitlines()
    log = _log_path(out.out, "train")
    assert log.parent == tmp_path / "logs" and oct(log.stat().st_mode & 0o777) == "0o600"
    assert "[train] step 1/2  loss 1.0" in shown and "[train] adapter written to x" in shown
    assert "[train] 3 chunk(s) planned" in shown
    assert "[train] warning: output is readable by others" in shown
    assert any(re.fullmatch(r"\[train\] \.\.\. waiting for workers \(\d+s\)", s) for s in shown)
    for line in shown:
        assert console.own_line(line) == line, line  # nothing else reached the console
    text = log.read_text()
    for needle in (NOISE[0], NOISE[2], NOISE[4], "Reporting training result 1", "FutureWarning"):
        assert needle in text, needle
    assert "[train] step 1/2  loss 1.0" in text  # the log is the whole story


def test_phases_are_timed_when_asked_and_progress_figures_are_not_phases(tmp_path, monkeypatch):
    timings = tmp_path / "timings.json"
    monkeypatch.setenv(console.TIMINGS_ENV, str(timings))
    t0 = time.time()
    with console.capture("score", tmp_path / "logs"):
        assert console.stage("checking the base model") == "starting"
        time.sleep(0.3)
        console.stage("scoring")
        console.stage("scoring: 1/2 rows scored", phase=False)  # a figure, not a phase
        time.sleep(0.2)
        assert console.stage("scoring", phase=False) == "scoring: 1/2 rows scored"
    got = json.loads(timings.read_text())
    assert got["job"] == "score" and t0 <= got["started"] <= got["ended"] <= time.time()
    names = [p["phase"] for p in got["phases"]]
    assert names == ["imports and settings", "checking the base model", "scoring"]
    seconds = {p["phase"]: p["seconds"] for p in got["phases"]}
    assert seconds["checking the base model"] >= 0.3 and seconds["scoring"] >= 0.2
    total = sum(seconds.values())
    assert abs(total - (got["ended"] - got["started"])) < 0.05  # the phases cover the job
    assert console.stage("outside a job") == ""  # no capture: nothing to name or time


def test_nothing_is_timed_unless_asked(tmp_path, monkeypatch):
    monkeypatch.delenv(console.TIMINGS_ENV, raising=False)
    with console.capture("eval", tmp_path / "logs"):
        console.stage("reading")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["logs"]


def test_verbose_shows_everything(tmp_path, capfd):
    with console.capture("score", tmp_path, verbose=True):
        print(NOISE[1])
        print("[score] 1/1 rows scored")
    out = capfd.readouterr().out
    assert NOISE[1] in out and "[score] 1/1 rows scored" in out


def test_uncaught_error_is_one_line_with_traceback_in_log(tmp_path):
    code = (
        "from discriminator import console\n"
        f"with console.capture('tune', {str(tmp_path)!r}):\n"
        "    def deep():\n"
        "        raise RuntimeError('trial crashed\\nsecond line')\n"
        "    deep()\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert proc.returncode == 1
    lines = [s for s in (proc.stdout + proc.stderr).splitlines() if s.strip()]
    assert len(lines) == 2, lines  # the log's path, then the error
    assert lines[1].startswith("error: RuntimeError: trial crashed (traceback in ")
    assert "Traceback" not in proc.stdout + proc.stderr
    text = _log_path(proc.stdout, "tune").read_text()
    assert "Traceback" in text and "in deep" in text


def test_an_error_with_an_indented_list_reaches_the_console_whole(tmp_path, capfd):
    with console.capture("train", tmp_path):
        print("error: 2 invalid row(s); fix them or use --on-invalid skip:", file=sys.stderr)
        print("  data.jsonl:2: not valid JSON", file=sys.stderr)
        print("  data.jsonl:3: 'note' must be a string", file=sys.stderr)
        print("  an unrelated indented library line")  # after a non-own line: hidden
        print(NOISE[0])
        print("    also hidden")
    err = capfd.readouterr().err
    assert "  data.jsonl:2: not valid JSON" in err and "data.jsonl:3: 'note'" in err
    assert "also hidden" not in err
