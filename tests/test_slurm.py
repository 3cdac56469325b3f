"""cluster/ (Ray on SLURM) against a real one-node SLURM started by tests/slurm/setup.sh.

Every job gets its own ports (a free block, not Ray's defaults) so nothing collides with other
Ray instances on the host, and a separate "bystander" Ray head checks that shutting a job's
cluster down never touches other Ray processes (no `ray stop`).

The smoke training and scoring jobs run under SLURM in the last test.
"""

from __future__ import annotations

import contextlib
import glob
import os
import random
import re
import shutil
import signal
import socket
import stat
import subprocess
import sys
import time
from pathlib import Path

import pytest
from procs import SLURM_SKIP, exposed, slurm_tests_allowed

from discriminator.runtime import write_token

REPO = Path(__file__).resolve().parents[1]
CLUSTER = REPO / "cluster"
SUBMIT = CLUSTER / "submit"
VENV_BIN = Path(sys.executable).parent

# A quick job for the cluster mechanics; the real smoke jobs run in the last test.
ENTRYPOINT = [
    "python",
    "-c",
    "import ray; ray.init(); r = ray.cluster_resources(); print(r); "
    "assert r['CPU'] >= 1, r; print('RAY_OK')",
]
ENTRYPOINT_OK = "RAY_OK"

SHELL_SCRIPTS = [
    CLUSTER / "ray-cluster.sbatch",
    CLUSTER / "submit",
    CLUSTER / "site.env",
    CLUSTER / "pack-offline",
    *sorted((REPO / "tests" / "slurm").glob("*.sh")),
]


# --------------------------------------------------------------------------------------------
# Without SLURM: shell lint and the launcher's option handling
# --------------------------------------------------------------------------------------------
def test_shellcheck_clean(request):
    if shutil.which("shellcheck") is None:
        # tests/slurm/setup.sh installs shellcheck with SLURM (as root, e.g. on CI): a fresh
        # machine has it only once the module's SLURM fixture has run, so run it first here.
        with contextlib.suppress(pytest.skip.Exception):
            request.getfixturevalue("slurm")
    if shutil.which("shellcheck") is None:
        pytest.skip("shellcheck not installed")
    proc = subprocess.run(
        ["shellcheck", *map(str, SHELL_SCRIPTS)], capture_output=True, text=True, timeout=120
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_no_early_exiting_grep_at_the_end_of_a_pipe_under_pipefail():
    """`cmd | grep -q X` under `set -o pipefail`: grep -q exits at the first match, cmd may then
    die of SIGPIPE, and the pipeline reports failure although X was there (this made
    setup.sh --two-node add an address the bridge already had, and fail, on a CI run)."""
    pipe_grep_q = re.compile(r"\|\s*grep\s+-[a-zA-Z]*q")
    found = []
    for path in SHELL_SCRIPTS:
        text = path.read_text()
        if "pipefail" not in text:
            continue
        for n, line in enumerate(text.splitlines(), 1):
            if not line.lstrip().startswith("#") and pipe_grep_q.search(line):
                found.append(f"{path.relative_to(REPO)}:{n}: {line.strip()}")
    assert not found, "grep -q at the end of a pipe under pipefail:\n" + "\n".join(found)


def test_scripts_have_usage_headers():
    for path in SHELL_SCRIPTS:
        head = path.read_text().splitlines()[:12]
        assert any("Usage:" in line for line in head), f"{path} has no usage header"


def _dry_run(*args: str) -> str:
    proc = subprocess.run(
        [str(SUBMIT), "--dry-run", "-o", "/tmp", *args],
        capture_output=True,
        text=True,
        timeout=30,
        cwd=REPO,
    )
    assert proc.returncode == 0, proc.stderr
    return proc.stdout


def test_submit_dry_run_options():
    out = _dry_run(
        *("--nodes", "2", "--gpus-per-node", "4", "--cpus-per-node", "16", "--mem", "64G"),
        *("--time", "8:00:00", "-p", "gpu", "-C", "a5000|a5500", "--wait"),
        *("--", "python", "-m", "ray_jobs.train", "--config", "x.yaml"),
    )
    for opt in ("--nodes=2", "--ntasks-per-node=1", "--cpus-per-task=16", "--gres=gpu:4"):
        assert opt in out
    for opt in ("--mem=64G", "--time=8:00:00", "--partition=gpu", "--wait"):
        assert opt in out
    assert r"--constraint=a5000\|a5500" in out
    assert out.rstrip().endswith("ray-cluster.sbatch -- python -m ray_jobs.train --config x.yaml")
    # No GPUs: no --gres at all (SLURM rejects gres the node does not have).
    assert "--gres" not in _dry_run("--gpus-per-node", "0", "--persistent")


def test_submit_usage_errors():
    def run(*args):
        return subprocess.run([str(SUBMIT), *args], capture_output=True, text=True, timeout=30)

    assert run("--help").returncode == 0 and "Usage:" in run("--help").stdout
    proc = run("--gpus-per-node", "0")
    assert proc.returncode == 2 and "after '--', or --persistent" in proc.stderr
    proc = run("--persistent", "--", "true")
    assert proc.returncode == 2 and "takes no command" in proc.stderr
    proc = run("--nodes", "zero", "--", "true")
    assert proc.returncode == 2 and "--nodes" in proc.stderr
    proc = run("--bogus")
    assert proc.returncode == 2 and "unknown option '--bogus'" in proc.stderr


# --------------------------------------------------------------------------------------------
# Against a real SLURM
# --------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def slurm():
    """The one-node test SLURM: started (or reused) by setup.sh, stopped again if we started it."""
    if not slurm_tests_allowed():
        pytest.skip(SLURM_SKIP)
    if os.geteuid() != 0 and shutil.which("sbatch") is None:
        pytest.skip("SLURM is not installed and installing it needs root")
    proc = subprocess.run(
        ["bash", str(REPO / "tests/slurm/setup.sh")],
        capture_output=True,
        text=True,
        timeout=300,
    )
    if proc.returncode == 3:
        pytest.skip(f"SLURM test cluster cannot be set up here: {proc.stderr.strip()}")
    assert proc.returncode == 0, f"tests/slurm/setup.sh failed:\n{proc.stdout}\n{proc.stderr}"
    started = "SLURM_TEST_CLUSTER=started" in proc.stdout
    yield
    if started and os.environ.get("KEEP_SLURM") != "1":
        subprocess.run(["bash", str(REPO / "tests/slurm/teardown.sh")], timeout=60, check=False)


def _port_block(n: int) -> int:
    """A base port with n free consecutive ports (checked by binding)."""
    rng = random.Random()
    for _ in range(200):
        base = rng.randrange(20000, 60000 - n)
        socks = []
        try:
            for p in range(base, base + n):
                s = socket.socket()
                socks.append(s)
                s.bind(("0.0.0.0", p))
            return base
        except OSError:
            continue
        finally:
            for s in socks:
                s.close()
    raise RuntimeError("no free port block")


def _ray_port_env() -> dict[str, str]:
    base = _port_block(120)
    names = [
        "RAY_GCS_PORT",
        "RAY_NODE_MANAGER_PORT",
        "RAY_OBJECT_MANAGER_PORT",
        "RAY_DASHBOARD_AGENT_LISTEN_PORT",
        "RAY_DASHBOARD_AGENT_GRPC_PORT",
        "RAY_METRICS_EXPORT_PORT",
        "RAY_RUNTIME_ENV_AGENT_PORT",
        "RAY_CLIENT_SERVER_PORT",
        "RAY_DASHBOARD_PORT",
    ]
    env = {name: str(base + i) for i, name in enumerate(names)}
    env["RAY_MIN_WORKER_PORT"] = str(base + 20)
    env["RAY_MAX_WORKER_PORT"] = str(base + 119)
    env["RAY_PORT_OFFSET"] = "0"
    return env


@pytest.fixture(scope="module")
def job_env(slurm, tmp_path_factory):
    env = {k: v for k, v in os.environ.items() if not k.startswith(("RAY_", "SLURM_"))}
    env.update(_ray_port_env())
    env["RAY_USAGE_STATS_ENABLED"] = "0"  # RAY_AUTH_MODE: the scripts' default (token)
    env["RAY_CLUSTER_GRACE"] = "20"
    env["PATH"] = f"{VENV_BIN}:{env.get('PATH', '')}"
    env.pop("SITE_ENV", None)
    return env


def _job_ray_pids(job_id: str) -> list[int]:
    """PIDs whose command line names the job's private Ray folder (/tmp/ray-<jobid>.XXXXXX)."""
    pat = re.compile(rf"/tmp/ray-{job_id}\.\w+(/|\s|$)")
    pids = []
    for d in Path("/proc").iterdir():
        if not d.name.isdigit() or int(d.name) == os.getpid():
            continue
        try:
            cmd = (d / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
        if pat.search(cmd):
            pids.append(int(d.name))
    return pids


@pytest.fixture(scope="module")
def bystander_ray(job_env, tmp_path_factory):
    """Another Ray head on this host (other ports); every SLURM job must leave it alone."""
    env = dict(job_env)
    env.update(_ray_port_env())
    env["RAY_GRACEFUL_SHUTDOWN_DRAIN_TIMEOUT_S"] = "1"
    tmp = Path(f"/tmp/rt-by-{os.getpid()}")
    shutil.rmtree(tmp, ignore_errors=True)
    token_dir = tmp_path_factory.mktemp("bystander-token")
    env.update(RAY_AUTH_MODE="token", RAY_AUTH_TOKEN_PATH=str(write_token(token_dir / "token")))
    log = open(tmp_path_factory.mktemp("bystander") / "ray.log", "w")  # noqa: SIM115
    gcs = f"127.0.0.1:{env['RAY_GCS_PORT']}"
    proc = subprocess.Popen(
        [
            str(VENV_BIN / "ray"),
            "start",
            "--head",
            "--block",
            "--num-cpus=0",
            "--include-dashboard=false",
            f"--temp-dir={tmp}",
            f"--port={env['RAY_GCS_PORT']}",
            f"--node-manager-port={env['RAY_NODE_MANAGER_PORT']}",
            f"--object-manager-port={env['RAY_OBJECT_MANAGER_PORT']}",
            f"--dashboard-agent-listen-port={env['RAY_DASHBOARD_AGENT_LISTEN_PORT']}",
            f"--dashboard-agent-grpc-port={env['RAY_DASHBOARD_AGENT_GRPC_PORT']}",
            f"--metrics-export-port={env['RAY_METRICS_EXPORT_PORT']}",
            f"--runtime-env-agent-port={env['RAY_RUNTIME_ENV_AGENT_PORT']}",
            f"--ray-client-server-port={env['RAY_CLIENT_SERVER_PORT']}",
            f"--min-worker-port={env['RAY_MIN_WORKER_PORT']}",
            f"--max-worker-port={env['RAY_MAX_WORKER_PORT']}",
        ],
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    deadline = time.monotonic() + 90
    while True:
        st = subprocess.run(
            [str(VENV_BIN / "ray"), "status", f"--address={gcs}"],
            env=env,
            capture_output=True,
            text=True,
            timeout=60,
        )
        if "Active:" in st.stdout:
            break
        assert proc.poll() is None, "bystander Ray head exited during start-up"
        assert time.monotonic() < deadline, "bystander Ray head did not start"
        time.sleep(1)
    pids = _all_pids_with(str(tmp))
    assert proc.pid in pids

    def check_alive():
        dead = [p for p in pids if not Path(f"/proc/{p}").exists()]
        assert not dead, f"bystander Ray processes were killed: {dead}"

    yield check_alive
    proc.send_signal(signal.SIGTERM)
    try:
        proc.wait(timeout=30)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()
    log.close()
    shutil.rmtree(tmp, ignore_errors=True)


def _all_pids_with(text: str) -> list[int]:
    out = []
    for d in Path("/proc").iterdir():
        if d.name.isdigit():
            try:
                if text.encode() in (d / "cmdline").read_bytes():
                    out.append(int(d.name))
            except OSError:
                pass
    return out


SMALL = ["--gpus-per-node", "0", "--cpus-per-node", "1", "--mem", "1G", "--time", "5:00"]
# The smoke jobs: two Ray Train CPU workers, a few GB for the tiny model and Ray.
WHOLE_NODE = ["--gpus-per-node", "0", "--cpus-per-node", "2", "--mem", "6G", "--time", "15:00"]


def _submit(
    env, out_dir: Path, *args: str, timeout: float = 30, resources: list[str] = SMALL
) -> subprocess.CompletedProcess:
    return subprocess.run(
        [str(SUBMIT), *resources, "-o", str(out_dir), *args],
        env=env,
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def _job_id(text: str) -> str:
    m = re.search(r"Submitted batch job (\d+)", text)
    assert m, text
    return m.group(1)


def submit_and_wait(
    cmd, *, env, out_dir: Path, timeout: float = 150, resources: list[str] = SMALL
) -> tuple[int, str]:
    """`cluster/submit --wait ... -- cmd` through real `sbatch --wait`.

    Returns (sbatch's exit status = the job's, submit's output + the job's output file).
    """
    proc = _submit(env, out_dir, "--wait", "--", *cmd, timeout=timeout, resources=resources)
    text = proc.stdout + proc.stderr
    job_id = _job_id(text)
    job_out = out_dir / f"ray-cluster-{job_id}.out"
    if job_out.exists():
        text += job_out.read_text(errors="replace")
    return proc.returncode, text


def _wait_job_gone(job_id: str, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        q = subprocess.run(
            ["squeue", "-h", "-j", job_id, "-o", "%T"], capture_output=True, text=True, timeout=30
        )
        if q.returncode != 0 or not q.stdout.strip():
            return
        time.sleep(1)
    raise AssertionError(f"job {job_id} still in the queue after {timeout}s")


def _wait_for(predicate, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.5)


def _assert_job_cleaned_up(job_id: str, out_dir: Path) -> None:
    # sbatch --wait can return while slurmstepd still finishes; allow a moment.
    _wait_for(lambda: not _job_ray_pids(job_id), 30, f"Ray processes of job {job_id} to exit")
    assert not glob.glob(f"/tmp/ray-{job_id}.*"), "the job's Ray temp dir was left behind"
    assert not (out_dir / f"ray-cluster-{job_id}.address").exists()
    assert not (out_dir / f"ray-cluster-{job_id}.token").exists()


@pytest.mark.slurm
def test_job_runs_on_ray_and_cleans_up(job_env, bystander_ray, tmp_path):
    rc, out = submit_and_wait(ENTRYPOINT, env=job_env, out_dir=tmp_path)
    assert rc == 0, out
    assert ENTRYPOINT_OK in out
    assert "all 1 node(s) joined" in out and "the command exited with status 0" in out
    job_id = _job_id(out)
    _assert_job_cleaned_up(job_id, tmp_path)
    assert f"Ray cluster of job {job_id} stopped" in out
    bystander_ray()


@pytest.mark.slurm
def test_failing_entrypoint_gives_failing_job(job_env, bystander_ray, tmp_path):
    cmd = ["python", "-c", "import sys; print('FAILING'); sys.exit(3)"]
    rc, out = submit_and_wait(cmd, env=job_env, out_dir=tmp_path)
    assert rc == 3, out
    assert "FAILING" in out and "the command exited with status 3" in out
    job_id = _job_id(out)
    _assert_job_cleaned_up(job_id, tmp_path)
    jobcomp = Path("/var/log/slurm/jobcomp.log")
    if jobcomp.exists():  # the test cluster's jobcomp/filetxt keeps each job's exit code
        _wait_for(lambda: f"JobId={job_id} " in jobcomp.read_text(), 15, "jobcomp record")
        line = next(x for x in jobcomp.read_text().splitlines() if f"JobId={job_id} " in x)
        assert "JobState=FAILED" in line and "ExitCode=3:0" in line, line
    bystander_ray()


def _grpc_code(addr: str, method: str, token: str | None = None) -> str:
    """The status of one gRPC call with an empty request, with or without the token."""
    import grpc

    meta = [("authorization", f"Bearer {token}")] if token else None
    with grpc.insecure_channel(addr) as channel:
        try:
            channel.unary_unary(method)(b"", timeout=20, metadata=meta)
            return "OK"
        except grpc.RpcError as e:
            return e.code().name


@pytest.mark.slurm
def test_persistent_cluster_with_token_auth(job_env, bystander_ray, tmp_path):
    """No command: the cluster stays up for `ray job submit` (token auth on), until scancel."""
    env = dict(job_env, RAY_AUTH_MODE="token")
    proc = _submit(env, tmp_path, "--persistent")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    job_id = _job_id(proc.stdout)
    address = tmp_path / f"ray-cluster-{job_id}.address"
    job_out = tmp_path / f"ray-cluster-{job_id}.out"
    try:
        _wait_for(address.exists, 120, f"the address file of job {job_id}")
        info = dict(
            line.split("=", 1)
            for line in address.read_text().splitlines()
            if "=" in line and not line.startswith("#")
        )
        assert info["RAY_DASHBOARD_URL"] == f"http://127.0.0.1:{env['RAY_DASHBOARD_PORT']}"
        token = Path(info["RAY_AUTH_TOKEN_PATH"])
        assert stat.S_IMODE(token.stat().st_mode) == 0o600
        client_env = dict(env, RAY_AUTH_TOKEN_PATH=str(token))
        submit_cmd = [str(VENV_BIN / "ray"), "job", "submit", "--address"]
        submit_cmd += [info["RAY_DASHBOARD_URL"], "--", "python", "-c"]
        submit_cmd += ["import ray; ray.init(); print('JOB_OK', ray.cluster_resources()['CPU'])"]
        sub = subprocess.run(
            submit_cmd, env=client_env, capture_output=True, text=True, timeout=120
        )
        assert sub.returncode == 0, sub.stdout + sub.stderr
        assert "JOB_OK 1.0" in sub.stdout
        # Without the token the cluster refuses the client.
        bad = subprocess.run(
            [str(VENV_BIN / "ray"), "job", "list", "--address", info["RAY_DASHBOARD_URL"]],
            env=dict(env, RAY_AUTH_TOKEN="0" * 64),
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert bad.returncode != 0
        # ... and so do GCS and the Ray client server, the other ports a client can use: a
        # wrong token is refused by a real client, no token by a bare gRPC call, which the
        # right token gets through.
        gcs = info["RAY_ADDRESS"]
        probe = subprocess.run(
            [sys.executable, "-c", f"import ray; ray.init(address={gcs!r}); print('JOINED')"],
            env=dict(env, RAY_AUTH_TOKEN="0" * 64),
            capture_output=True,
            text=True,
            timeout=150,
        )
        said = probe.stdout + probe.stderr
        assert probe.returncode != 0 and "JOINED" not in said, said[-2000:]
        assert re.search(r"InvalidAuthToken|Unauthenticated", said), said[-2000:]
        client = f"{info['RAY_HEAD_IP']}:{info['RAY_CLIENT_SERVER_PORT']}"
        for addr, method in (
            (gcs, "/ray.rpc.NodeInfoGcsService/GetAllNodeInfo"),
            (client, "/ray.rpc.RayletDriver/ClusterInfo"),
        ):
            assert _grpc_code(addr, method) == "UNAUTHENTICATED", addr
            assert _grpc_code(addr, method, token.read_text().strip()) != "UNAUTHENTICATED", addr
        # The job's Ray folder: private, nothing in it reachable by other users.
        (folder,) = glob.glob(f"/tmp/ray-{job_id}.*")
        assert stat.S_IMODE(os.stat(folder).st_mode) == 0o700
        assert any(Path(folder).rglob("*.log")), "no Ray logs in the job's folder"
        assert exposed(Path(folder)) == []
        out_mode = stat.S_IMODE(job_out.stat().st_mode)
        assert out_mode & 0o077 == 0, f"job output mode {out_mode:o}"
    finally:
        subprocess.run(["scancel", job_id], timeout=30, check=False)
    _wait_job_gone(job_id)
    _assert_job_cleaned_up(job_id, tmp_path)
    text = job_out.read_text()
    assert "received SIGTERM" in text and f"Ray cluster of job {job_id} stopped" in text
    bystander_ray()


@pytest.mark.slurm
def test_sigterm_reaches_entrypoint_before_teardown(job_env, bystander_ray, tmp_path):
    """SIGTERM to the batch shell (as with --signal=B:TERM before the time limit) is forwarded
    to the command, which can write its checkpoint before Ray is torn down."""
    marker = tmp_path / "checkpoint-marker"
    code = (
        "import signal, sys, time, ray\n"
        "ray.init()\n"
        "def on_term(*_):\n"
        "    assert ray.cluster_resources()['CPU'] >= 1  # Ray is still up\n"
        f"    open({str(marker)!r}, 'w').write('saved')\n"
        "    sys.exit(0)\n"
        "signal.signal(signal.SIGTERM, on_term)\n"
        "print('READY' + '!', flush=True)\n"  # 'READY!' only appears once the handler is set
        "time.sleep(300)\n"
    )
    proc = _submit(job_env, tmp_path, "--", "python", "-c", code)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    job_id = _job_id(proc.stdout)
    job_out = tmp_path / f"ray-cluster-{job_id}.out"
    try:
        _wait_for(lambda: job_out.exists() and "READY!" in job_out.read_text(), 120, "the command")
        # SLURM 22.05: --batch signals only the batch shell, like --signal=B:TERM@120 does.
        subprocess.run(["scancel", "--signal=TERM", "--batch", job_id], timeout=30, check=True)
        _wait_job_gone(job_id)
    finally:
        subprocess.run(["scancel", job_id], timeout=30, check=False)
    assert marker.read_text() == "saved"
    text = job_out.read_text()
    assert "sending SIGTERM to the command" in text, text
    # (A Ray driver exits 143 here even after sys.exit(0) in its handler; the status is passed on.)
    assert re.search(r"the command exited with status \d+ after SIGTERM", text), text
    _assert_job_cleaned_up(job_id, tmp_path)
    bystander_ray()


@pytest.mark.slurm
@pytest.mark.slow
def test_smoke_training_then_scoring_under_slurm(job_env, tmp_path, synth_records):
    """A real sbatch job trains the smoke adapter on Ray; a second one scores notes with it."""
    import json

    import pyarrow.parquet as pq

    env = dict(job_env, HF_HUB_OFFLINE="1", RAY_TRAIN_ENABLE_PRINT_PATCH="0")
    adapter = tmp_path / "adapter"
    train = [
        "python", "-m", "ray_jobs.train", "--config", "ray_jobs/configs/smoke.yaml",
        "--set", f"run.storage_path={tmp_path / 'ray'}", "--set", f"run.output_dir={adapter}",
    ]  # fmt: skip
    rc, out = submit_and_wait(train, env=env, out_dir=tmp_path, timeout=600, resources=WHOLE_NODE)
    assert rc == 0, out[-4000:]
    assert "[train] worker rank 1 of 2 on host" in out  # both workers ran in the allocation
    assert (adapter / "adapter_model.safetensors").is_file()
    assert json.loads((adapter / "metrics.json").read_text())["global_step"] == 4
    _assert_job_cleaned_up(_job_id(out), tmp_path)

    notes = tmp_path / "notes.jsonl"
    notes.write_text(
        "".join(json.dumps({"id": r["id"], "note": r["note"]}) + "\n" for r in synth_records[:12])
    )
    score = [
        "python", "-m", "ray_jobs.score", "--config", "ray_jobs/configs/smoke_score.yaml",
        "--adapter", str(adapter), "--input", str(notes), "--output", str(tmp_path / "scores"),
    ]  # fmt: skip
    rc, out = submit_and_wait(score, env=env, out_dir=tmp_path, timeout=600, resources=WHOLE_NODE)
    assert rc == 0, out[-4000:]
    table = pq.read_table(tmp_path / "scores")
    assert sorted(table.column("note_id").to_pylist()) == sorted(
        r["id"] for r in synth_records[:12]
    )
    assert set(table.column("status").to_pylist()) == {"ok"}
    _assert_job_cleaned_up(_job_id(out), tmp_path)


@pytest.mark.slurm
def test_shared_temp_folders_and_loose_token_files_are_refused(job_env, tmp_path):
    """A RAY_TMPDIR others may write (no sticky bit) or a token file others may read stops the
    job before Ray starts, with one line naming it."""
    shared = Path(f"/tmp/rs{os.getpid()}")  # short: the folder's path length is checked first
    shutil.rmtree(shared, ignore_errors=True)
    shared.mkdir()
    shared.chmod(0o777)
    loose = tmp_path / "loose.token"
    loose.write_text("0" * 64)
    loose.chmod(0o644)
    for extra, line in (
        ({"RAY_TMPDIR": str(shared)}, f"RAY_TMPDIR {shared} is writable by other users"),
        (
            {"RAY_AUTH_TOKEN_PATH": str(loose)},
            f"token file {loose} is readable or writable by other users",
        ),
    ):
        rc, out = submit_and_wait(ENTRYPOINT, env=dict(job_env, **extra), out_dir=tmp_path / "out")
        assert rc != 0 and line in out, out[-2000:]
        assert ENTRYPOINT_OK not in out and "Ray head is up" not in out
    assert list(shared.iterdir()) == []
    shared.rmdir()
