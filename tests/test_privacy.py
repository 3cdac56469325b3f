"""Privacy and safe loading: no note text in logs, owner-only files, a Ray nobody else reaches.

A canary note through train -> score -> evaluate with debug logging, owner-only permissions, pickle
refusal, trust_remote_code never on. See RELIABILITY.md."""

from __future__ import annotations

import ast
import json
import os
import re
import subprocess
import sys
import uuid
from pathlib import Path

import pyarrow.parquet as pq
import pytest
from procs import Watch, exposed, job_env, kill_leftovers

from discriminator import scoring, training
from discriminator.config import ScoreConfig
from discriminator.runtime import private_dir

REPO = Path(__file__).resolve().parents[1]
SMOKE = REPO / "ray_jobs" / "configs" / "smoke.yaml"
SMOKE_SCORE = REPO / "ray_jobs" / "configs" / "smoke_score.yaml"
SOURCE_DIRS = ("discriminator", "ray_jobs", "benchmarks")

# Runs a job's main() with Python logging at DEBUG for every logger (root), so any log call
# anywhere in the driver (ours, transformers, datasets, ray, urllib3...) is emitted.
DEBUG_MAIN = (
    "import logging, runpy, sys; logging.basicConfig(level=logging.DEBUG); "
    "sys.argv = sys.argv[1:]; runpy.run_module(sys.argv[0], run_name='__main__')"
)


def _job(module: str, args: list[str], env: dict, timeout: int = 400) -> str:
    proc = subprocess.run(
        [sys.executable, "-c", DEBUG_MAIN, module, *args],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    output = proc.stdout + proc.stderr
    assert proc.returncode == 0, f"{module} failed:\n{output[-3000:]}"
    # The console holds the job's own lines; everything else is in the log file it names first.
    m = re.search(r"^\[\w+\] log: (\S+)$", proc.stdout, re.M)
    assert m, output[-3000:]
    return output + "\n" + Path(m.group(1)).read_text(errors="replace")


def _files(*roots: Path) -> list[Path]:
    return [p for r in roots if r.exists() for p in r.rglob("*") if p.is_file()]


def _parquet_strings(path: Path) -> str:
    """Every value and metadata of a parquet file as text (pages may be compressed on disk)."""
    f = pq.ParquetFile(path)
    meta = b"".join(k + v for k, v in (f.schema_arrow.metadata or {}).items())
    return f.read().to_pandas().to_json() + meta.decode("utf-8", "replace")


def _leaks(marker: str, files: list[Path]) -> list[str]:
    found = []
    for p in files:
        blob = p.read_bytes()
        if marker.encode() in blob or (p.suffix == ".parquet" and marker in _parquet_strings(p)):
            found.append(str(p))
    return found


@pytest.fixture(scope="module")
def canary_run(tmp_path_factory):
    """Train (2 steps) -> score (with and without --keep-text) -> evaluate, on notes that all
    carry one unique marker, with debug logging on. Returns paths and captured output."""
    from discriminator.synth import generate_records

    canary = f"CANARY-{uuid.uuid4().hex}"
    d = tmp_path_factory.mktemp("canary")
    recs = generate_records(24, seed=5, error_rate=0.5, length="short")
    for r in recs:
        head, _, tail = r["note"].partition("\n")
        r["note"] = f"{head}\nReferral note {canary} from clinic.\n{tail}"
    files = {"train": recs[:16], "eval": recs[16:]}
    for name, rows in files.items():
        with open(d / f"{name}.jsonl", "w") as fh:
            for r in rows:
                fh.write(json.dumps({k: r[k] for k in ("id", "note", "reason")}) + "\n")
    # scoring input: the eval notes plus bad rows that carry the marker
    bad = [{"note": 5, "text": canary}, {"id": "x", "note": ""}, {"reason": canary}]
    lines = [json.dumps(x) for x in bad] + [f"not json {canary}", f'["{canary}"]']
    (d / "score.jsonl").write_text(
        (d / "eval.jsonl").read_text() + "\n".join(lines) + "\n", encoding="utf-8"
    )

    ray_tmp = Path(f"/tmp/rp{os.getpid()}")  # short: Ray's socket paths must stay short
    dirs = {
        "ray_tmp": ray_tmp,
        "tmpdir": d / "tmp",  # TMPDIR: the trainer's local checkpoint copies
        "hf_cache": d / "hf",  # datasets/transformers caches
        "storage": d / "ray",
        "adapter": d / "adapter",
        "scores": d / "scores",
        "scores_keep": d / "scores-keep",
        "eval": d / "eval",
    }
    dirs["tmpdir"].mkdir()
    env = job_env(
        str(ray_tmp),
        TMPDIR=str(dirs["tmpdir"]),
        HF_DATASETS_CACHE=str(dirs["hf_cache"] / "datasets"),
        TRANSFORMERS_VERBOSITY="debug",
        DATASETS_VERBOSITY="debug",
        RAY_KEEP_TMPDIR="1",  # Ray's own logs stay, to be searched for the marker
    )
    outputs = {}
    home_token = Path.home() / ".ray" / "auth_token"  # Ray's default token file
    had_home_token = home_token.exists()
    watch = Watch(ray_tmp)  # listeners and folder modes while the jobs run
    watch.start()
    try:
        outputs["train"] = _job(
            "ray_jobs.train",
            ["--config", str(SMOKE)]
            + [
                x
                for s in (
                    f"data.train_path={d / 'train.jsonl'}",
                    f"data.eval_path={d / 'eval.jsonl'}",
                    f"run.storage_path={dirs['storage']}",
                    f"run.output_dir={dirs['adapter']}",
                    "optim.max_steps=2",
                    "run.save_steps=2",
                    "run.eval_steps=2",
                    "run.num_workers=1",
                )
                for x in ("--set", s)
            ],
            env,
        )
        score_args = ["--config", str(SMOKE_SCORE), "--adapter", str(dirs["adapter"])]
        score_args += ["--input", str(d / "score.jsonl"), "--generate", "always"]
        score_args += ["--set", "model.name_or_path=tiny", "--set", "io.chunk_rows=4"]
        outputs["score"] = _job(
            "ray_jobs.score", [*score_args, "--output", str(dirs["scores"])], env
        )
        outputs["score_keep"] = _job(
            "ray_jobs.score",
            [*score_args, "--output", str(dirs["scores_keep"]), "--keep-text"],
            env,
        )
        outputs["evaluate"] = _job(
            "ray_jobs.evaluate",
            [
                "--labels",
                str(d / "eval.jsonl"),
                "--scores",
                str(dirs["scores"]),
                "--out",
                str(dirs["eval"]),
            ],
            env,
        )
    finally:
        watch.stop()
        kill_leftovers(str(ray_tmp))
    yield {
        "canary": canary,
        "dirs": dirs,
        "outputs": outputs,
        "watch": watch,
        "home_token_made": home_token.exists() and not had_home_token,
    }
    import shutil

    shutil.rmtree(ray_tmp, ignore_errors=True)


@pytest.mark.slow
def test_canary_note_never_reaches_logs_checkpoints_or_reports(canary_run):
    canary, dirs, outputs = canary_run["canary"], canary_run["dirs"], canary_run["outputs"]
    for job, text in outputs.items():
        assert canary not in text, f"{job} printed the note marker"
    assert "DEBUG" in outputs["train"]  # debug logging really was on
    ray_logs = _files(dirs["ray_tmp"])
    assert any("/logs/" in str(p) for p in ray_logs), "no Ray log files were written"
    checked = _files(
        dirs["ray_tmp"],  # every Ray session file: logs, worker output, spilled objects if any
        dirs["tmpdir"],
        dirs["hf_cache"],
        dirs["storage"],  # checkpoints: trainer_state.json, configs, tensorboard events, weights
        dirs["adapter"],
        dirs["scores"],
        dirs["eval"],
    )
    assert any(p.name == "trainer_state.json" for p in checked)
    assert any("tfevents" in p.name for p in checked)
    assert {"metrics.json", "report.html"} <= {p.name for p in checked}
    assert _leaks(canary, checked) == []
    # --keep-text is the one way note text reaches an output, and only into the parquet parts
    keep = _files(dirs["scores_keep"])
    assert _leaks(canary, keep) and all(
        p.suffix == ".parquet" for p in map(Path, _leaks(canary, keep))
    )
    kept = scoring.read_output(str(dirs["scores_keep"]))
    assert any(canary in (n or "") for n in kept.column("note").to_pylist())


@pytest.mark.slow
def test_outputs_and_run_dirs_are_owner_only(canary_run):
    dirs = canary_run["dirs"]
    for key in ("storage", "adapter", "scores", "scores_keep", "eval"):
        assert dirs[key].stat().st_mode & 0o777 == 0o700, key
    assert (dirs["storage"] / "smoke").stat().st_mode & 0o777 == 0o700
    for key in ("adapter", "scores", "scores_keep", "eval"):
        for f in dirs[key].rglob("*"):  # the jobs' log folders and files included
            assert f.stat().st_mode & 0o777 == (0o700 if f.is_dir() else 0o600), f
    # Checkpoints, TensorBoard events, the trainer's scratch copies, the datasets cache: written
    # by the jobs' processes (umask 077), nothing readable or writable by group or others.
    for key in ("storage", "tmpdir", "hf_cache"):
        loose = [f for f in dirs[key].rglob("*") if not f.is_symlink() and f.stat().st_mode & 0o077]
        assert loose == [], loose[:5]


def test_private_dir_and_export_modes(tiny_model_dir, tmp_path):
    from test_faults import _fake_checkpoint

    from discriminator.config import TrainConfig, load_config

    ckpt = _fake_checkpoint(tmp_path / "ck", 2)
    cfg = load_config(TrainConfig, SMOKE, [f"model.name_or_path={tiny_model_dir}"])
    out = training.export_adapter(cfg, ckpt, tmp_path / "new" / "adapter", {}, {})
    assert out.stat().st_mode & 0o777 == 0o700
    assert all(f.stat().st_mode & 0o777 == 0o600 for f in out.iterdir())
    shared = tmp_path / "shared"
    shared.mkdir(mode=0o755)
    shared.chmod(0o755)  # configured on purpose: kept, files follow the umask
    assert private_dir(shared) is False and shared.stat().st_mode & 0o777 == 0o755
    training.export_adapter(cfg, ckpt, shared, {}, {})
    assert shared.stat().st_mode & 0o777 == 0o755


# ---------------------------------------------------------------------------------------------
# Safe loading


class _Evil:
    """Unpickling this runs a command (creates a marker file)."""

    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


def _evil_pickle(path: Path, marker: Path) -> Path:
    import torch

    torch.save({"python": _Evil(marker), "w": torch.zeros(2)}, path)
    return path


@pytest.mark.parametrize("name", ["adapter_model.bin", "adapter.pt", "weights.pth", "x.pkl"])
def test_pickle_adapter_is_refused_and_never_unpickled(tmp_path, name):
    adapter = tmp_path / "adapter"
    adapter.mkdir()
    (adapter / "adapter_config.json").write_text("{}")
    marker = tmp_path / "pwned"
    _evil_pickle(adapter / name, marker)
    with pytest.raises(scoring.ScoreError, match=rf"pickle files refused: {re.escape(name)}"):
        scoring.check_adapter(str(adapter))
    cfg = ScoreConfig(adapter=str(adapter))
    cfg.io.input, cfg.io.output = ["x.jsonl"], str(tmp_path / "out")
    with pytest.raises(scoring.ScoreError, match=r"adapter_model\.safetensors not found"):
        scoring.run_scoring(cfg)  # refused before Ray or any model is touched
    assert not marker.exists()


def test_scorer_loads_safetensors_and_ignores_a_stray_pickle(
    tiny_model_dir, lora_adapter_dir, tmp_path
):
    import shutil

    from discriminator.config import ScoreConfig, load_config, to_dict

    adapter = Path(shutil.copytree(lora_adapter_dir, tmp_path / "adapter"))  # gets a stray pickle
    marker = tmp_path / "pwned"
    _evil_pickle(adapter / "adapter_model.bin", marker)
    cfg = load_config(
        ScoreConfig, SMOKE_SCORE, [f"model.name_or_path={tiny_model_dir}", f"adapter={adapter}"]
    )
    scorer = scoring.Scorer(to_dict(cfg), str(adapter))  # PEFT reads the safetensors file
    assert scorer.model is not None
    assert not marker.exists()  # the pickle next to it was never opened


def test_training_resume_unpickles_only_with_weights_only(tiny_model_dir, tmp_path):
    """transformers 5.24 loads rng_state*.pth / optimizer.pt / scheduler.pt with
    torch.load(weights_only=True): a malicious pickle in a checkpoint is refused, not run."""
    import pickle

    from discriminator.config import TrainConfig, load_config
    from discriminator.modeling import load_tokenizer

    cfg = load_config(
        TrainConfig,
        SMOKE,
        [
            f"model.name_or_path={tiny_model_dir}",
            "model.quantization=none",
            "data.train_path=synth:n=4,seed=1,length=short",
            "data.eval_path=null",
        ],
    )
    data = training.prepare_data(cfg, load_tokenizer(str(tiny_model_dir)))
    trainer = training.build_sft_trainer(cfg, data, "cpu", str(tmp_path / "work"), [])
    ckpt = tmp_path / "checkpoint-2"
    ckpt.mkdir()
    marker = tmp_path / "pwned"
    _evil_pickle(ckpt / "rng_state.pth", marker)
    with pytest.raises(pickle.UnpicklingError, match="Weights only load failed"):
        trainer._load_rng_state(str(ckpt))
    _evil_pickle(ckpt / "optimizer.pt", marker)
    _evil_pickle(ckpt / "scheduler.pt", marker)
    trainer.create_optimizer_and_scheduler(num_training_steps=2)
    with pytest.raises(pickle.UnpicklingError, match="Weights only load failed"):
        trainer._load_optimizer_and_scheduler(str(ckpt))
    assert not marker.exists()


def _sources() -> list[Path]:
    return [p for d in SOURCE_DIRS for p in sorted((REPO / d).rglob("*.py"))]


def test_trust_remote_code_is_never_enabled_and_no_unsafe_unpickling():
    files = _sources()
    assert len(files) > 10
    for p in files:
        text = p.read_text()
        for m in re.finditer(r"""trust_remote_code["']?\s*[=:]\s*(\w+)""", text):
            assert m.group(1) == "False", f"{p}: {m.group(0)}"
        assert not re.search(r"\bpickle\.loads?\(|\bjoblib\.load\(|\bdill\.load", text), p
        for m in re.finditer(r"torch\.load\(([^)]*)\)", text):
            assert "weights_only=True" in m.group(1), f"{p}: {m.group(0)}"
        # no Auto*.from_pretrained call (code, not docs) turns trust_remote_code on
        for call in ast.walk(ast.parse(text)):
            if not (
                isinstance(call, ast.Call)
                and isinstance(call.func, ast.Attribute)
                and call.func.attr == "from_pretrained"
                and isinstance(call.func.value, ast.Name)
                and call.func.value.id.startswith("Auto")
            ):
                continue
            kw = {k.arg: k.value for k in call.keywords}
            where = f"{p}:{call.lineno}"
            if None in kw:  # **kwargs: modeling.load_base_model builds them just above
                assert '"trust_remote_code": False' in text, where
            elif "trust_remote_code" in kw:  # absent: transformers' default, False
                value = kw["trust_remote_code"]
                assert isinstance(value, ast.Constant) and value.value is False, where


def test_model_loaders_pass_trust_remote_code_false(tiny_model_dir, monkeypatch):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from discriminator import modeling
    from discriminator.config import ModelConfig

    seen = []
    for cls in (AutoModelForCausalLM, AutoTokenizer):
        real = cls.from_pretrained

        def spy(*a, _real=real, **kw):
            seen.append(kw.get("trust_remote_code", "unset"))
            return _real(*a, **kw)

        monkeypatch.setattr(cls, "from_pretrained", spy)
    modeling.load_tokenizer(str(tiny_model_dir))
    modeling.load_base_model(
        ModelConfig(name_or_path=str(tiny_model_dir), quantization="none", dtype="float32")
    )
    assert seen and all(v is False for v in seen), seen


def test_cluster_defaults_dashboard_on_loopback_and_token_auth():
    """Static check of cluster/ defaults (the live checks are in tests/test_slurm.py)."""
    site = (REPO / "cluster" / "site.env").read_text()
    sbatch = (REPO / "cluster" / "ray-cluster.sbatch").read_text()
    assert "RAY_AUTH_MODE=${RAY_AUTH_MODE:-token}" in site
    assert "export RAY_AUTH_MODE=${RAY_AUTH_MODE:-token}" in sbatch
    assert "--dashboard-host=127.0.0.1" in sbatch
    assert not re.search(r"--dashboard-host[= ](?!127\.0\.0\.1)", sbatch)


# ---------------------------------------------------------------------------------------------
# Who can reach a job's Ray: folders, listeners, tokens


@pytest.mark.slow
def test_jobs_ray_folders_private_listeners_on_loopback(canary_run):
    """During the train, score and evaluate jobs: each local Ray ran in its own fresh 0700
    folder (its token 0600 inside), nothing in it reachable by other users, every listener of
    the jobs' processes on 127.0.0.1."""
    watch = canary_run["watch"]
    folders = sorted(Path(f) for f in watch.folders)
    assert len(folders) >= 3, folders  # train, score, score --keep-text (kept: RAY_KEEP_TMPDIR)
    for folder in folders:
        assert re.fullmatch(r"ray-[a-z0-9_]{8}", folder.name), folder
        st = folder.stat()
        assert st.st_uid == os.getuid() and st.st_mode & 0o777 == 0o700, folder
        assert (folder / "token").stat().st_mode & 0o777 == 0o600
        assert any((folder / "ray").rglob("*.log")), f"no Ray logs under {folder}"
        assert exposed(folder) == []
    assert not watch.exposed, sorted(watch.exposed)[:10]
    names = {name for _, _, name in watch.listeners}
    assert {"gcs_server", "raylet"} <= names, names  # the sampler did see the jobs' Ray
    assert watch.public() == []
    assert not canary_run["home_token_made"], "a job wrote ~/.ray/auth_token"


@pytest.fixture()
def token_env(monkeypatch):
    """Leave the process's Ray auth settings as they were."""
    for key in ("RAY_ADDRESS", "RAY_AUTH_TOKEN", "RAY_AUTH_TOKEN_PATH"):
        monkeypatch.delenv(key, raising=False)
    return monkeypatch


def test_token_files_are_exclusive_private_and_checked(tmp_path, token_env):
    from discriminator.runtime import PrivacyError, check_token_file, init_ray, write_token

    token = write_token(tmp_path / "token")
    assert token.stat().st_mode & 0o777 == 0o600 and len(token.read_text()) == 64
    assert check_token_file(token) == token
    with pytest.raises(FileExistsError):  # O_EXCL: never an existing file...
        write_token(token)
    (tmp_path / "link").symlink_to(tmp_path / "elsewhere")
    with pytest.raises(FileExistsError):  # ... nor a planted link
        write_token(tmp_path / "link")
    assert not (tmp_path / "elsewhere").exists()
    token.chmod(0o640)
    with pytest.raises(PrivacyError, match=r"readable or writable by other users.*chmod 600"):
        check_token_file(token)
    token.chmod(0o600)
    (tmp_path / "alias").symlink_to(token)
    with pytest.raises(PrivacyError, match="not a regular file"):
        check_token_file(tmp_path / "alias")
    if os.getuid() == 0:  # another owner (CI runs as root)
        os.chown(token, 65534, 65534)
        with pytest.raises(PrivacyError, match="belongs to another user"):
            check_token_file(token)
        os.chown(token, 0, 0)
    # A user-supplied token path is checked before any connection is tried.
    token.chmod(0o644)
    token_env.setenv("RAY_ADDRESS", "127.0.0.1:1")
    token_env.setenv("RAY_AUTH_TOKEN_PATH", str(token))
    with pytest.raises(PrivacyError, match=str(token)):
        init_ray()


def test_private_folders_refuse_shared_parents(tmp_path):
    from discriminator.runtime import PrivacyError, make_private_dir

    names = {make_private_dir(tmp_path).name for _ in range(3)}
    assert len(names) == 3 and all(re.fullmatch(r"ray-[a-z0-9_]{8}", n) for n in names)
    assert all((tmp_path / n).stat().st_mode & 0o777 == 0o700 for n in names)
    made = make_private_dir(tmp_path / "new" / "base")  # a missing base is made owner-only
    assert (tmp_path / "new").stat().st_mode & 0o777 == 0o700
    assert made.parent.stat().st_mode & 0o777 == 0o700
    shared = tmp_path / "shared"
    shared.mkdir()
    shared.chmod(0o777)
    with pytest.raises(PrivacyError, match=r"writable by other users.*no sticky bit"):
        make_private_dir(shared)
    shared.chmod(0o1777)  # like /tmp: others cannot rename or replace what is made in it
    assert make_private_dir(shared).stat().st_mode & 0o777 == 0o700
    if os.getuid() == 0:
        other = tmp_path / "other"
        other.mkdir()
        os.chown(other, 65534, 65534)
        with pytest.raises(PrivacyError, match="belongs to another user"):
            make_private_dir(other)


def test_tune_restore_refuses_sweep_state_others_can_write(tmp_path):
    from discriminator.runtime import PrivacyError
    from discriminator.tuning import check_restore_safe

    sweep = tmp_path / "sweep"
    sweep.mkdir(mode=0o700)
    check_restore_safe(sweep)  # nothing to restore
    (sweep / "tuner.pkl").write_bytes(b"state")
    (sweep / "tuner.pkl").chmod(0o600)
    check_restore_safe(sweep)
    (sweep / "tuner.pkl").chmod(0o666)
    with pytest.raises(PrivacyError, match=r"sweep state .*tuner.pkl is writable by other users"):
        check_restore_safe(sweep)
    (sweep / "tuner.pkl").chmod(0o600)
    sweep.chmod(0o775)
    with pytest.raises(PrivacyError, match=r"sweep folder .* is writable by other users"):
        check_restore_safe(sweep)


# gRPC methods that each Ray server answers (harmless reads; empty requests): a server that
# does not check the token answers one of them; one that does answers UNAUTHENTICATED.
RAY_METHODS = (
    "/ray.rpc.NodeInfoGcsService/GetAllNodeInfo",
    "/ray.rpc.NodeManagerService/GetNodeStats",
    "/ray.rpc.ObjectManagerService/Pull",
    "/ray.rpc.CoreWorkerService/GetCoreWorkerStats",
    "/ray.rpc.LogService/ListLogs",
)


def _probe(port: int) -> str:
    """How a listener on 127.0.0.1 answers a client without the token: 'refused' (HTTP 401/403
    or gRPC UNAUTHENTICATED), 'metrics' (Ray's own Prometheus counters), or what it said."""
    import http.client

    import grpc

    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
    try:
        conn.request("GET", "/")
        resp = conn.getresponse()
        body = resp.read(200)
        if resp.status in (401, 403):
            return "refused"
        if resp.status == 200 and body.startswith(b"# HELP"):
            return "metrics"
        return f"HTTP {resp.status}"
    except (http.client.HTTPException, OSError):
        pass  # not HTTP/1: a gRPC server
    finally:
        conn.close()
    codes = []
    with grpc.insecure_channel(f"127.0.0.1:{port}") as channel:
        for method in RAY_METHODS:
            try:
                channel.unary_unary(method)(b"", timeout=5)
                codes.append("OK")
            except grpc.RpcError as e:
                codes.append(e.code().name)
    if "UNAUTHENTICATED" in codes and "OK" not in codes:
        return "refused"
    return f"gRPC {codes}"


def test_local_ray_listens_on_loopback_and_refuses_clients_without_the_token(ray_local):
    """The jobs' local Ray: every listener on 127.0.0.1; every server that takes requests (GCS,
    raylet, object manager, workers, agents) refuses a client without the token. Ray's
    autoscaler and dashboard Prometheus counters (no switch turns them off) answer anyone on
    this machine, read-only."""
    import psutil
    import ray

    from discriminator.runtime import ray_folder

    @ray.remote
    def pid() -> int:
        return os.getpid()

    ray.get([pid.remote() for _ in range(2)])  # workers up
    folder = ray_folder()
    assert folder is not None and folder.stat().st_mode & 0o777 == 0o700
    assert os.environ["RAY_AUTH_TOKEN_PATH"] == str(folder / "token")
    me = psutil.Process()
    procs = {p.pid: p.name() for p in me.children(recursive=True)} | {me.pid: "driver"}
    found = {}
    for c in psutil.net_connections("inet"):
        if c.status == psutil.CONN_LISTEN and c.pid in procs:
            assert c.laddr.ip in ("127.0.0.1", "::ffff:127.0.0.1"), (c, procs[c.pid])
            found[c.laddr.port] = (procs[c.pid], _probe(c.laddr.port))
    answers = {p: a for p, (_, a) in found.items()}
    unexpected = {p: x for p, x in found.items() if x[1] not in ("refused", "metrics")}
    assert not unexpected, unexpected
    refused = {name for name, a in found.values() if a == "refused"}
    assert {"gcs_server", "raylet", "ray::IDLE"} <= refused | {n.split()[0] for n in refused}, found
    assert sorted(p for p, a in answers.items() if a == "metrics") == [44217, 44227], found


def test_score_job_refuses_a_loose_token_file_in_one_line(tiny_model_dir, tmp_path):
    token = tmp_path / "token"
    token.write_text("0" * 64)
    token.chmod(0o644)
    (tmp_path / "notes.jsonl").write_text('{"note": "Discharged home."}\n')
    env = {k: v for k, v in os.environ.items() if not k.startswith("RAY_")}
    env.update(RAY_ADDRESS="127.0.0.1:1", RAY_AUTH_MODE="token", RAY_AUTH_TOKEN_PATH=str(token))
    proc = subprocess.run(
        [sys.executable, "-m", "ray_jobs.score", "--config", str(SMOKE_SCORE),
         "--set", f"model.name_or_path={tiny_model_dir}",
         "--input", str(tmp_path / "notes.jsonl"), "--output", str(tmp_path / "out")],
        cwd=REPO, env=env, capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert proc.returncode == 1, proc.stdout + proc.stderr
    assert f"error: token file {token} is readable or writable by other users" in proc.stderr
    assert "Traceback" not in proc.stdout + proc.stderr
