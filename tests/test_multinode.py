"""Ray across two SLURM nodes, and a node lost mid-run, on a real two-node SLURM test cluster.

`tests/slurm/setup.sh --two-node` makes the cluster on this one machine: two nodes (rtn1, rtn2),
each its own network + UTS namespace (own hostname and address, joined by a bridge) running its own
slurmd, 1 CPU each; they share the file system as cluster nodes share NFS. Every job goes through
the project's own launcher, `cluster/submit --nodes 2 --wait`, with token auth on (the default).

What is asserted is what the jobs and the nodes show: the host each Ray Train worker reports, the
network namespace each scorer actor process lives in, the rows and chunks in the output, the step
a resumed run starts from. A node is lost by SIGKILLing every process in its namespace (slurmd,
slurmstepd, raylet, workers), as when a machine crashes; the fixture brings it back afterwards.
"""

from __future__ import annotations

import contextlib
import glob
import json
import os
import re
import shutil
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
from procs import SLURM_SKIP, slurm_tests_allowed

pytestmark = [pytest.mark.slurm, pytest.mark.slow]

REPO = Path(__file__).resolve().parents[1]
SUBMIT = REPO / "cluster" / "submit"
SETUP = REPO / "tests" / "slurm" / "setup.sh"
TEARDOWN = REPO / "tests" / "slurm" / "teardown.sh"
NODE = REPO / "tests" / "slurm" / "node.sh"
VENV_BIN = Path(sys.executable).parent
NODES = ("rtn1", "rtn2")
SLURM_CONF = "/etc/slurm-raytest2/slurm.conf"
# One CPU per node, as SLURM and Ray see it; the two nodes share this machine's memory.
RESOURCES = ["--nodes", "2", "--gpus-per-node", "0", "--cpus-per-node", "1", "--mem", "4G"]
WORKER_LINE = re.compile(
    r"^\[(train|trial [^\]]+)\] worker rank (\d+) of (\d+) on host (\S+) \(node id (\w+)\)$", re.M
)
RESUMED = re.compile(r"resumed from checkpoint at step (\d+)")


# --------------------------------------------------------------------------------------------
# The cluster
# --------------------------------------------------------------------------------------------
def _setup() -> subprocess.CompletedProcess:
    return subprocess.run(
        ["bash", str(SETUP), "--two-node"], capture_output=True, text=True, timeout=300
    )


@pytest.fixture(scope="module")
def two_nodes():
    """The two-node test SLURM: started (or reused) by setup.sh, torn down if we started it."""
    if not slurm_tests_allowed():
        pytest.skip(SLURM_SKIP)
    if os.geteuid() != 0:
        pytest.skip("the two-node test cluster needs root (network namespaces, daemons)")
    proc = _setup()
    if proc.returncode == 3:
        pytest.skip(f"SLURM test cluster cannot be set up here: {proc.stderr.strip()}")
    assert proc.returncode == 0, f"setup.sh --two-node failed:\n{proc.stdout}\n{proc.stderr}"
    started = "SLURM_TEST_CLUSTER=started" in proc.stdout
    yield
    if started and os.environ.get("KEEP_SLURM") != "1":
        subprocess.run(["bash", str(TEARDOWN), "--two-node"], timeout=120, check=False)


@pytest.fixture
def nodes_up(two_nodes):
    """Both nodes idle before the test (a node killed by an earlier test is started again)."""
    proc = _setup()
    assert proc.returncode == 0, f"setup.sh --two-node failed:\n{proc.stdout}\n{proc.stderr}"


@pytest.fixture(scope="module")
def env(two_nodes):
    env = {k: v for k, v in os.environ.items() if not k.startswith(("RAY_", "SLURM_"))}
    env.update(
        SLURM_CONF=SLURM_CONF,
        RAY_AUTH_MODE="token",  # the default: a per-job token every node must read
        RAY_USAGE_STATS_ENABLED="0",
        RAY_CLUSTER_GRACE="20",
        HF_HUB_OFFLINE="1",
        RAY_TRAIN_ENABLE_PRINT_PATCH="0",
        # A worker group that cannot be placed (a lost node) is given up after 20 s, not 60 s.
        RAY_TRAIN_WORKER_GROUP_START_TIMEOUT_S="20",
        # Ray workers give up on a lost head after 15 s (default 60 s), then end the job.
        RAY_gcs_rpc_server_reconnect_timeout_s="15",
        PATH=f"{VENV_BIN}:{os.environ.get('PATH', '')}",
    )
    env.pop("SITE_ENV", None)
    return env


def _node_pids(node: str) -> list[int]:
    out = subprocess.run(
        ["bash", str(NODE), "pids", node], capture_output=True, text=True, timeout=30
    )
    return [int(p) for p in out.stdout.split()]


def _cmdline(pid: int) -> str:
    try:
        return (
            Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        )
    except OSError:
        return ""


def _kill_node(node: str) -> None:
    proc = subprocess.run(
        ["bash", str(NODE), "kill", node], capture_output=True, text=True, timeout=60
    )
    assert proc.returncode == 0, proc.stderr
    assert _node_pids(node) == [], f"processes of {node} survived the kill"


# --------------------------------------------------------------------------------------------
# Jobs
# --------------------------------------------------------------------------------------------
def _job_id(text: str) -> str:
    m = re.search(r"Submitted batch job (\d+)", text)
    assert m, text
    return m.group(1)


class Job:
    """A `cluster/submit --nodes 2 --wait` job running in the background."""

    def __init__(self, env: dict, out_dir: Path, cmd: list[str], *submit_args: str):
        out_dir.mkdir(parents=True, exist_ok=True)
        self.out_dir = out_dir
        self.started = time.monotonic()
        args = [str(SUBMIT), *RESOURCES, "--time", "15:00", "-o", str(out_dir), "--wait"]
        args += submit_args
        self.proc = subprocess.Popen(
            [*args, "--", *cmd],
            env=env,
            cwd=REPO,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        self.id = ""
        line = ""
        deadline = time.monotonic() + 60
        while not self.id and time.monotonic() < deadline:
            line = self.proc.stdout.readline()
            if m := re.search(r"Submitted batch job (\d+)", line):
                self.id = m.group(1)
            elif not line and self.proc.poll() is not None:
                break
        assert self.id, f"no job id from cluster/submit: {line}"
        self.output_file = out_dir / f"ray-cluster-{self.id}.out"

    def output(self) -> str:
        try:
            return self.output_file.read_text(errors="replace")
        except OSError:
            return ""

    def wait(self, timeout: float) -> tuple[int, str]:
        try:
            rest, _ = self.proc.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            subprocess.run(["scancel", self.id], env=_slurm_env(), timeout=30, check=False)
            self.proc.kill()
            raise AssertionError(
                f"job {self.id} still running after {timeout}s:\n{self.output()[-4000:]}"
            ) from None
        self.seconds = time.monotonic() - self.started
        return self.proc.returncode, rest + self.output()


def _slurm_env() -> dict:
    return dict(os.environ, SLURM_CONF=SLURM_CONF)


def run_job(env, out_dir: Path, cmd: list[str], timeout: float = 600) -> tuple[int, str, str]:
    job = Job(env, out_dir, cmd)
    rc, text = job.wait(timeout)
    print(f"job {job.id}: rc {rc} in {job.seconds:.0f}s")
    return rc, text, job.id


def _wait_for(predicate, timeout: float, what: str, job: Job | None = None) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if job is not None and job.proc.poll() is not None:
            raise AssertionError(f"job {job.id} ended while waiting for {what}:\n{job.output()}")
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.5)


def assert_cleaned_up(job_id: str, lost: str | None = None) -> None:
    """Nothing of the job's Ray is left on either node: no process naming its private folders
    (/tmp/ray-<job>.XXXXXX, one per node), no folder, only slurmd in each node's namespace. A
    `lost` node (crashed) keeps its folder, as a crashed machine keeps its local /tmp: removed
    here."""

    def leftovers() -> list[str]:
        found = []
        for d in Path("/proc").iterdir():
            if d.name.isdigit() and f"/tmp/ray-{job_id}." in _cmdline(int(d.name)):
                found.append(f"{d.name}: {_cmdline(int(d.name))[:120]}")
        for node in NODES:
            for pid in _node_pids(node):
                cmd = _cmdline(pid)
                if cmd and not cmd.startswith("/usr/sbin/slurmd"):
                    found.append(f"{node} {pid}: {cmd[:120]}")
        return found

    deadline = time.monotonic() + 40
    while (left := leftovers()) and time.monotonic() < deadline:
        time.sleep(1)
    assert not left, f"job {job_id} left processes behind: {left}"
    folders = glob.glob(f"/tmp/ray-{job_id}.*")
    if lost is not None:  # the crashed node's own folder, and no other
        assert len(folders) <= 1, f"more Ray folders left than the lost node's: {folders}"
        for folder in folders:
            shutil.rmtree(folder, ignore_errors=True)
        folders = []
    assert not folders, f"the job's Ray folders were left behind: {folders}"


def worker_hosts(text: str) -> list[tuple[str, int, int, str, str]]:
    """(tag, rank, world size, host, node id) of every `worker rank R of N on host H` line, on
    the console or in a log file (where Ray's `(RayTrainWorker pid=.., ip=..)` prefix stays)."""
    text = re.sub(r"^\([^)\n]*\) ", "", re.sub(r"\x1b\[[0-9;]*m", "", text), flags=re.M)
    return [(t, int(r), int(n), h, i) for t, r, n, h, i in WORKER_LINE.findall(text)]


def _log_file(text: str, job: str) -> Path:
    m = re.search(rf"^\[{job}\] log: (\S+)$", text, re.M)
    assert m, f"no [{job}] log line in the output"
    return Path(m.group(1))


def _registered_step(run_dir: Path) -> int | None:
    """The global step of the latest checkpoint in Ray Train's index of the run (the one a
    re-run resumes from), None before Ray registered one. A checkpoint folder on disk is not
    enough: Ray registers it once every worker reported it."""
    with contextlib.suppress(OSError, ValueError, KeyError, TypeError):
        snap = json.loads((run_dir / "checkpoint_manager_snapshot.json").read_text())
        name = snap["latest_checkpoint_result"]["checkpoint_dir_name"]
        return json.loads((run_dir / name / "checkpoint" / "trainer_state.json").read_text())[
            "global_step"
        ]
    return None


def train_cmd(tiny: Path, storage: Path, output: Path, *sets: str) -> list[str]:
    cmd = ["python", "-m", "ray_jobs.train", "--config", "ray_jobs/configs/smoke.yaml"]
    for s in (
        f"model.name_or_path={tiny}",
        f"run.storage_path={storage}",
        f"run.output_dir={output}",
        *sets,
    ):
        cmd += ["--set", s]
    return cmd


# A run long enough to lose a node in the middle: a checkpoint every 2 steps, no evaluation.
MAX_STEPS = 8
LONG_RUN = (f"optim.max_steps={MAX_STEPS}", "run.save_steps=2", "data.eval_path=null")


# --------------------------------------------------------------------------------------------
# Tests
# --------------------------------------------------------------------------------------------
def test_two_node_cluster_has_two_hosts_with_their_own_addresses(nodes_up):
    env = _slurm_env()
    sinfo = subprocess.run(
        ["sinfo", "-h", "-N", "-o", "%N %c %t"], env=env, capture_output=True, text=True, timeout=30
    )
    states = sorted(sinfo.stdout.splitlines())
    assert states == ["rtn1 1 idle", "rtn2 1 idle"], sinfo.stdout
    out = subprocess.run(
        [
            "srun",
            "--nodes=2",
            "--ntasks-per-node=1",
            "bash",
            "-c",
            'echo "$(hostname) $(hostname -I)"',
        ],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert out.returncode == 0, out.stderr
    seen = dict(line.split(maxsplit=1) for line in out.stdout.splitlines())
    assert {h: a.strip() for h, a in seen.items()} == {"rtn1": "10.231.0.11", "rtn2": "10.231.0.12"}
    assert os.uname().nodename not in seen


@pytest.fixture(scope="module")
def trained(two_nodes, env, tiny_model_dir, tmp_path_factory):
    """Training through `cluster/submit --nodes 2 --wait` with `run.num_workers=auto`: one Ray
    Train worker per node (the nodes have no GPUs)."""
    tmp = tmp_path_factory.mktemp("mn-train")
    adapter = tmp / "adapter"
    _setup()
    t0 = time.monotonic()
    cmd = train_cmd(tiny_model_dir, tmp / "ray", adapter, "run.num_workers=auto")
    rc, text, job_id = run_job(env, tmp / "slurm", cmd)
    return {"rc": rc, "text": text, "job": job_id, "adapter": adapter, "storage": tmp / "ray",
            "seconds": time.monotonic() - t0}  # fmt: skip


def test_training_puts_one_worker_on_each_node(trained, tiny_model_dir):
    text = trained["text"]
    assert trained["rc"] == 0, text[-6000:]
    assert "all 2 node(s) joined" in text
    assert "[train] training on 2 CPU workers: one on each of 2 nodes" in text
    workers = worker_hosts(text)
    assert sorted((rank, n) for _, rank, n, _, _ in workers) == [(0, 2), (1, 2)], workers
    hosts = {rank: host for _, rank, _, host, _ in workers}
    assert set(hosts.values()) == set(NODES), f"workers did not land one per node: {hosts}"
    assert len({node_id for *_, node_id in workers}) == 2
    # Checkpoints written from both nodes are whole on the shared storage.
    from discriminator.training import check_checkpoint_dir

    checkpoints = sorted((trained["storage"] / "smoke").glob("checkpoint_*/checkpoint"))
    assert checkpoints
    for c in checkpoints:
        check_checkpoint_dir(c)
    adapter = trained["adapter"]
    assert json.loads((adapter / "metrics.json").read_text())["global_step"] == 4
    # The adapter loads onto its base.
    from peft import PeftModel
    from transformers import AutoModelForCausalLM

    base = AutoModelForCausalLM.from_pretrained(str(tiny_model_dir))
    model = PeftModel.from_pretrained(base, str(adapter))
    assert any("lora_B" in name for name, _ in model.named_parameters())
    assert_cleaned_up(trained["job"])
    token = trained["storage"].parent / "slurm" / f"ray-cluster-{trained['job']}.token"
    assert not token.exists(), "the job's token file was left behind"


def test_tune_trials_run_on_both_nodes(nodes_up, env, tiny_model_dir, tmp_path):
    cmd = ["python", "-m", "ray_jobs.tune", "--config", "ray_jobs/configs/smoke_sweep.yaml"]
    for s in (
        f"train.model.name_or_path={tiny_model_dir}",
        f"run.storage_path={tmp_path / 'ray'}",
        "search.num_samples=2",
        "search.max_concurrent_trials=2",
        "train.optim.max_steps=2",  # one report per trial: placement is what is tested
    ):
        cmd += ["--set", s]
    rc, text, job_id = run_job(env, tmp_path / "slurm", cmd)
    assert rc == 0, text[-6000:]
    log = _log_file(text, "tune").read_text(errors="replace")
    hosts: dict[str, set[str]] = {}
    for tag, _rank, _n, host, _ in worker_hosts(log):
        hosts.setdefault(tag, set()).add(host)
    assert len(hosts) == 2, f"expected 2 trials' workers, got {hosts}"
    assert set().union(*hosts.values()) == set(NODES), f"trials did not use both nodes: {hosts}"
    summary = json.loads((tmp_path / "ray" / "smoke-sweep" / "summary.json").read_text())
    assert summary, "no sweep summary"
    assert_cleaned_up(job_id)


def _write_notes(path: Path, records: list[dict]) -> list[str]:
    path.write_text("".join(json.dumps({"id": r["id"], "note": r["note"]}) + "\n" for r in records))
    return [r["id"] for r in records]


def _score_config(path: Path, chunk_rows: int, generate: str = "threshold") -> Path:
    # Two scorer actors of 0.6 CPU on nodes of 1 CPU: at most one fits on a node, and the 0.4
    # CPU left beside it runs the preprocessing tasks.
    path.write_text(
        f"""io:
  chunk_rows: {chunk_rows}
scoring:
  generate: {generate}
  max_new_tokens: 16
  max_prompt_tokens: 1024
  batch_tokens: 4096
  max_batch_size: 8
  rows_per_call: 8
  dtype: float32
resources:
  num_actors: 2
  use_gpu: false
  cpus_per_actor: 0.6
  prep_cpus: 0.4
"""
    )
    return path


def score_cmd(config: Path, adapter: Path, notes: Path, out: Path) -> list[str]:
    return ["python", "-m", "ray_jobs.score", "--config", str(config), "--adapter", str(adapter),
            "--input", str(notes), "--output", str(out)]  # fmt: skip


class ScorerWatch:
    """Which nodes have a Ray Data scorer actor process (`...Scorer...` in the process title),
    polled from the nodes' namespaces while a job runs."""

    def __init__(self):
        self.seen: set[str] = set()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self):
        while not self._stop.wait(0.5):
            for node in NODES:
                if any("Scorer" in _cmdline(p) for p in _node_pids(node)):
                    self.seen.add(node)

    def stop(self) -> set[str]:
        self._stop.set()
        self._thread.join(timeout=10)
        return self.seen


def _read_ids(out: Path) -> list[str]:
    import pyarrow.parquet as pq

    return pq.read_table(out, columns=["note_id"]).column("note_id").to_pylist()


def test_scoring_runs_one_actor_per_node(trained, nodes_up, env, synth_records, tmp_path):
    assert trained["rc"] == 0, "training failed (see test_training_puts_one_worker_on_each_node)"
    notes = tmp_path / "notes.jsonl"
    ids = _write_notes(notes, synth_records[:48])
    out = tmp_path / "scores"
    watch = ScorerWatch()
    rc, text, job_id = run_job(
        env,
        tmp_path / "slurm",
        score_cmd(_score_config(tmp_path / "s.yaml", 8), trained["adapter"], notes, out),
    )
    seen = watch.stop()
    assert rc == 0, text[-6000:]
    assert seen == set(NODES), f"scorer actors ran on {sorted(seen)}, not one per node"
    got = _read_ids(out)
    assert sorted(got) == sorted(ids), "a row was lost or duplicated"
    manifest = json.loads((out / "_manifest.json").read_text())
    assert manifest["rows"] == 48 and manifest["this_run"]["chunks"] == 6
    assert_cleaned_up(job_id)


def _lose_node_mid_training(env, tiny, tmp: Path, *sets: str) -> tuple[Job, int]:
    """Start a long training run on both nodes; once it has a checkpoint, kill node rtn2."""
    storage = tmp / "ray"
    job = Job(env, tmp / "slurm", train_cmd(tiny, storage, tmp / "adapter", *LONG_RUN, *sets))
    _wait_for(
        lambda: len(worker_hosts(job.output())) >= 2 and _registered_step(storage / "smoke"),
        300,
        "the first registered checkpoint",
        job,
    )
    step = _registered_step(storage / "smoke")
    assert step < MAX_STEPS, "the run finished before the node could be lost; make it longer"
    _kill_node("rtn2")
    return job, step


def test_node_lost_mid_training_elastic_run_finishes_on_the_other_node(
    nodes_up, env, tiny_model_dir, tmp_path
):
    job, killed_at = _lose_node_mid_training(
        env, tiny_model_dir, tmp_path, "run.elastic=true", "run.min_workers=1"
    )
    rc, text = job.wait(600)
    print(
        f"elastic run: node lost after step {killed_at}; job {job.id} rc {rc} in {job.seconds:.0f}s"
    )
    assert rc == 0, text[-6000:]
    workers = worker_hosts(text)
    assert {host for _, _, n, host, _ in workers if n == 2} == set(NODES), workers
    after = [(rank, host) for _, rank, n, host, _ in workers if n == 1]
    assert after and all(host == "rtn1" for _, host in after), f"after the loss: {workers}"
    resumed = [int(s) for s in RESUMED.findall(text)]
    assert resumed and min(resumed) >= killed_at > 0, f"resumed at {resumed}, lost at {killed_at}"
    metrics = json.loads((tmp_path / "adapter" / "metrics.json").read_text())
    assert metrics["global_step"] == MAX_STEPS
    assert_cleaned_up(job.id, lost="rtn2")


def test_node_lost_mid_training_fixed_run_fails_clearly_and_resubmit_resumes(
    nodes_up, env, tiny_model_dir, tmp_path
):
    job, killed_at = _lose_node_mid_training(env, tiny_model_dir, tmp_path, "run.max_failures=1")
    rc, text = job.wait(600)
    print(
        f"fixed run: node lost after step {killed_at}; job {job.id} rc {rc} in {job.seconds:.0f}s"
    )
    assert rc != 0, text[-6000:]
    m = re.search(
        r"^\[train\] training failed: the cluster cannot place the run's 2 worker\(s\) x 1 CPU "
        r"any more .*the last checkpoint is at step (\d+) .*re-submit the same command",
        text,
        re.M,
    )
    assert m, text[-6000:]
    last = int(m.group(1))
    assert last >= killed_at > 0
    assert re.search(r"^error: TrainingFailed: training failed", text, re.M), text[-3000:]
    assert not (tmp_path / "adapter" / "metrics.json").exists()
    assert_cleaned_up(job.id, lost="rtn2")

    # The node comes back; the same command, re-submitted, resumes from that checkpoint.
    assert _setup().returncode == 0
    rc, text, job_id = run_job(
        env,
        tmp_path / "slurm",
        train_cmd(
            tiny_model_dir, tmp_path / "ray", tmp_path / "adapter", *LONG_RUN, "run.max_failures=1"
        ),
    )
    assert rc == 0, text[-6000:]
    resumed = [int(s) for s in RESUMED.findall(text)]
    assert resumed == [last], f"the re-submitted run resumed at {resumed}, expected [{last}]"
    steps = [int(s) for s in re.findall(rf"^\[train\] step (\d+)/{MAX_STEPS}", text, re.M)]
    assert steps and min(steps) > last, f"the re-submitted run trained steps {steps}"
    assert {h for _, _, _, h, _ in worker_hosts(text)} == set(NODES)
    metrics = json.loads((tmp_path / "adapter" / "metrics.json").read_text())
    assert metrics["global_step"] == MAX_STEPS
    assert_cleaned_up(job_id)


def test_node_lost_mid_scoring_rerun_completes_exactly_the_missing_chunks(
    trained, nodes_up, env, synth_records, tmp_path
):
    """Two losses. The head node (driver, Ray head, batch script) dies mid-scoring: the job ends
    with chunks missing. The node is back; the re-run scores exactly the missing chunks, and when
    it loses the other node midway it still finishes on the remaining one (Ray Data retries)."""
    assert trained["rc"] == 0, "training failed (see test_training_puts_one_worker_on_each_node)"
    notes = tmp_path / "notes.jsonl"
    ids = _write_notes(notes, synth_records[:64])
    out = tmp_path / "scores"
    total = 16
    cmd = score_cmd(_score_config(tmp_path / "s.yaml", 4), trained["adapter"], notes, out)

    def parts() -> list[Path]:
        return sorted(out.glob("part-*.parquet"))

    # --no-requeue: SLURM would otherwise requeue the job whose batch node failed (a site
    # default), and run it again by itself once the node is back.
    job = Job(env, tmp_path / "slurm", cmd, "--sbatch-arg=--no-requeue")
    _wait_for(lambda: len(parts()) >= 2, 300, "the first parts", job)
    _kill_node("rtn1")
    rc, text = job.wait(300)  # the worker on rtn2 loses the head and cancels the job
    print(f"scoring, head node lost: job {job.id} rc {rc} in {job.seconds:.0f}s")
    assert_cleaned_up(job.id, lost="rtn1")  # the surviving node rtn2 cleaned up after itself
    before = {p.name: p.read_bytes() for p in parts()}
    assert 2 <= len(before) < total, f"{len(before)} parts after losing the head node"
    assert not (out / "_manifest.json").exists() or (
        json.loads((out / "_manifest.json").read_text())["state"] != "complete"
    )

    assert _setup().returncode == 0  # rtn1 is back
    job = Job(env, tmp_path / "slurm2", cmd)
    _wait_for(lambda: len(parts()) >= len(before) + 1, 300, "a part of the re-run", job)
    lost_worker = len(parts()) < total
    if lost_worker:
        _kill_node("rtn2")
    rc, text = job.wait(400)
    print(f"scoring re-run: {len(before)}/{total} parts before, worker node lost: {lost_worker}; "
          f"job {job.id} rc {rc} in {job.seconds:.0f}s")  # fmt: skip
    assert rc == 0, text[-6000:]
    manifest = json.loads((out / "_manifest.json").read_text())
    assert manifest["chunks"] == total and manifest["state"] == "complete"
    assert manifest["this_run"]["chunks"] == total - len(before), (
        manifest["this_run"],
        len(before),
    )
    for name, data in before.items():
        assert (out / name).read_bytes() == data, f"{name} from the first run was rewritten"
    got = _read_ids(out)
    assert len(got) == len(set(got)) == 64 and sorted(got) == sorted(ids)
    assert not list(out.glob(".tmp-*"))
    assert_cleaned_up(job.id, lost="rtn2" if lost_worker else None)
