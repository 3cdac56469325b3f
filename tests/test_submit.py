"""The jobs as users submit them: a token-auth Ray head started with `ray start --head` on
loopback in a private temp folder (docs/README "A Ray head of your own"), then `ray job submit
--runtime-env cluster/runtime-env.yaml` of train (smoke), tune (smoke sweep), score and evaluate
with absolute paths outside the checkout. Every output lands where it was named, and the head's
runtime folders (the uploaded code) hold no adapter, checkpoint, scores part, report or note
afterwards; a relative output stops the job with one line. Only this test's processes are stopped
(never the host-wide `ray stop`)."""

from __future__ import annotations

import os
import re
import secrets
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest
from procs import kill_leftovers

from discriminator import sources

pytestmark = pytest.mark.slow

REPO = Path(__file__).resolve().parents[1]
RAY = str(Path(sys.executable).parent / "ray")
NOTE_SUFFIXES = tuple(sources.note_suffixes())


def _free_ports(n: int) -> list[int]:
    socks = [socket.socket() for _ in range(n)]
    try:
        for s in socks:
            s.bind(("127.0.0.1", 0))
        return [s.getsockname()[1] for s in socks]
    finally:
        for s in socks:
            s.close()


class Head:
    """A Ray head as the docs start one, with every port given (other Ray instances on the host
    must not collide with it)."""

    def __init__(self, base: Path):
        self.temp = Path(tempfile.mkdtemp(prefix="rs", dir="/tmp"))  # 0700, short socket paths
        token = base / "ray-head.token"
        fd = os.open(token, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        os.write(fd, secrets.token_hex(32).encode())
        os.close(fd)
        gcs, dash, client, agent, agent_grpc, rt_agent, nm, om, metrics = _free_ports(9)
        self.dashboard = f"http://127.0.0.1:{dash}"
        self.env = {k: v for k, v in os.environ.items() if k != "RAY_ADDRESS"}
        self.env.update(
            RAY_AUTH_MODE="token",
            RAY_AUTH_TOKEN_PATH=str(token),
            HF_HUB_OFFLINE="1",
            RAY_USAGE_STATS_ENABLED="0",
            # as with an activated virtualenv: the job's `python` has the project installed
            PATH=f"{Path(sys.executable).parent}:{os.environ.get('PATH', '')}",
        )
        self.proc = subprocess.Popen(
            [
                RAY, "start", "--head", "--block", "--node-ip-address=127.0.0.1",
                f"--port={gcs}", "--dashboard-host=127.0.0.1", f"--dashboard-port={dash}",
                f"--temp-dir={self.temp}", "--num-cpus=2",
                # ports a second Ray on the host would otherwise share
                f"--ray-client-server-port={client}", f"--dashboard-agent-listen-port={agent}",
                f"--dashboard-agent-grpc-port={agent_grpc}", f"--runtime-env-agent-port={rt_agent}",
                f"--node-manager-port={nm}", f"--object-manager-port={om}",
                f"--metrics-export-port={metrics}", "--min-worker-port=20100",
                "--max-worker-port=20400",
            ],
            env=self.env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )  # fmt: skip
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            st = subprocess.run(
                [RAY, "status", f"--address=127.0.0.1:{gcs}"],
                env=self.env, capture_output=True, text=True,
            )  # fmt: skip
            if "Active:" in st.stdout:
                return
            assert self.proc.poll() is None, "ray start --head exited"
            time.sleep(1)
        raise AssertionError("the Ray head did not come up in 120 s")

    def submit(self, *job: str, timeout: float = 600) -> tuple[int, str, float]:
        """`ray job submit --runtime-env cluster/runtime-env.yaml -- python -m <job...>` from
        the repository root; (exit status, output, seconds). The job agent comes up after the
        head: its early "No available agent" refusal is retried."""
        cmd = [RAY, "job", "submit", f"--address={self.dashboard}",
               "--runtime-env", "cluster/runtime-env.yaml", "--", "python", "-m", *job]  # fmt: skip
        for _ in range(30):
            t0 = time.monotonic()
            p = subprocess.run(
                cmd, cwd=REPO, env=self.env, capture_output=True, text=True, timeout=timeout
            )
            out = p.stdout + p.stderr
            if "No available agent" not in out:
                return p.returncode, out, time.monotonic() - t0
            time.sleep(2)
        raise AssertionError(f"the job agent never came up:\n{out[-2000:]}")

    def uploads(self) -> list[Path]:
        """The unpacked working directories of the jobs submitted to this head."""
        found = self.temp.glob("session_2*/runtime_resources/working_dir_files/_ray_pkg_*")
        return [p for p in found if p.is_dir()]

    def stop(self) -> None:
        self.proc.send_signal(signal.SIGTERM)  # this head only
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
        kill_leftovers(str(self.temp))


@pytest.fixture(scope="module")
def head(tmp_path_factory):
    h = Head(tmp_path_factory.mktemp("head"))
    yield h
    h.stop()
    import shutil

    shutil.rmtree(h.temp, ignore_errors=True)


@pytest.fixture(scope="module")
def shared(tmp_path_factory, synth_records):
    """Storage outside the checkout, as a cluster's shared file system: labelled notes in it."""
    import json

    root = tmp_path_factory.mktemp("shared")
    with open(root / "notes.jsonl", "w") as f:
        for r in synth_records[:24]:
            f.write(json.dumps(r) + "\n")
    return root


def _job_lines(out: str) -> list[str]:
    """The job's own console lines inside `ray job submit`'s output."""
    return [ln for ln in out.splitlines() if re.match(r"^(\[\w+\] |error: |warning: )", ln)]


def test_a_relative_output_stops_the_job_in_one_line(head, tiny_model_dir):
    rc, out, seconds = head.submit(
        "ray_jobs.train", "--config", "ray_jobs/configs/smoke.yaml",
        "--set", f"model.name_or_path={tiny_model_dir}",
    )  # fmt: skip
    assert rc != 0 and "failed" in out, out[-3000:]
    # one line (`ray job submit` shows the job's log, and on failure its last lines again)
    errors = sorted({ln for ln in out.splitlines() if ln.startswith("error: ")})
    assert len(errors) == 1, out[-3000:]
    assert errors[0].startswith("error: run.output_dir=runs/smoke-adapter is a relative path")
    assert "absolute path on storage every node sees" in errors[0]
    assert "(also: run.storage_path)" in errors[0]
    assert seconds < 60, f"the refusal took {seconds:.0f}s"
    assert head.uploads() and not [p for p in head.uploads() if (p / "runs").exists()]


def test_train_tune_score_evaluate_land_where_named(head, tiny_model_dir, shared):
    storage, adapter = shared / "ray", shared / "adapter"
    rc, out, _ = head.submit(
        "ray_jobs.train", "--config", "ray_jobs/configs/smoke.yaml",
        "--set", f"model.name_or_path={tiny_model_dir}", "--set", "run.num_workers=auto",
        "--set", f"run.storage_path={storage}", "--set", f"run.output_dir={adapter}",
    )  # fmt: skip
    assert rc == 0 and "succeeded" in out, out[-4000:]
    assert "[train] training on 1 CPU worker: on 1 node" in _job_lines(out), _job_lines(out)
    assert (adapter / "adapter_model.safetensors").is_file()
    assert list((storage / "smoke").glob("checkpoint_*")), "no checkpoint in run.storage_path"
    assert list((storage / "smoke" / "logs").glob("train-*.log")), "no job log beside the run"

    rc, out, _ = head.submit(
        "ray_jobs.tune", "--config", "ray_jobs/configs/smoke_sweep.yaml",
        "--set", f"train.model.name_or_path={tiny_model_dir}", "--set", "search.num_samples=2",
        "--set", f"run.storage_path={storage}",
    )  # fmt: skip
    assert rc == 0 and "succeeded" in out, out[-4000:]
    assert any(
        ln.startswith("[tune] training 2 trial(s) at a time on 1 CPU worker each")
        for ln in _job_lines(out)
    ), _job_lines(out)
    sweep = storage / "smoke-sweep"
    assert (sweep / "trials.csv").is_file() and (sweep / "best.yaml").is_file()
    assert (sweep / "best-adapter" / "adapter_model.safetensors").is_file()

    scores = shared / "scores"
    rc, out, _ = head.submit(
        "ray_jobs.score", "--config", "ray_jobs/configs/smoke_score.yaml",
        "--set", f"model.name_or_path={tiny_model_dir}", "--adapter", str(adapter), "--input", str(shared / "notes.jsonl"), "--output", str(scores),
    )  # fmt: skip
    assert rc == 0 and "succeeded" in out, out[-4000:]
    assert list(scores.glob("part-*.parquet")) and (scores / "_manifest.json").is_file()

    report = shared / "eval"
    rc, out, _ = head.submit(
        "ray_jobs.evaluate", "--labels", str(shared / "notes.jsonl"), "--scores", str(scores),
        "--out", str(report), "--bootstrap", "50",
    )  # fmt: skip
    assert rc == 0 and "succeeded" in out, out[-4000:]
    assert (report / "report.html").is_file() and (report / "metrics.json").is_file()

    # The uploaded code was there (the jobs ran from it) and holds nothing they wrote or read:
    # every file in it is a file of the checkout, and none is note-shaped.
    checkout = set(
        subprocess.run(
            ["git", "ls-files", "--cached", "--others", "--exclude-standard"],
            cwd=REPO, capture_output=True, text=True, check=True,
        ).stdout.split()
    )  # fmt: skip
    packages = head.uploads()
    assert packages and all((p / "ray_jobs" / "train.py").is_file() for p in packages)
    foreign = [
        str(f)
        for p in packages
        for f in p.rglob("*")
        if f.is_file()
        and "__pycache__" not in f.parts
        and (str(f.relative_to(p)) not in checkout or f.name.lower().endswith(NOTE_SUFFIXES))
    ]
    assert not foreign, foreign[:20]
