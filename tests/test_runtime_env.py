"""`ray job submit --runtime-env cluster/runtime-env.yaml` uploads code, never notes.

The committed YAML is what `discriminator runtime-env` generates (so it cannot lag the readers),
and a copy of the checkout, planted with note files of every reader suffix (plain, compressed,
any letter case) at several depths, is packed by Ray's own job-submission client exactly as
`ray job submit` packs it: no note, output or weight file is in the zip, the project's code is.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
import uuid
import zipfile
from pathlib import Path
from types import SimpleNamespace

import pytest
import yaml

from discriminator import cluster_env, data, sources

REPO = Path(__file__).resolve().parents[1]
YAML = "cluster/runtime-env.yaml"

# Reader suffixes: the formats (sources, and data's own lists) times plain and each compression.
FORMATS = sorted({*sources.FORMAT_SUFFIXES, *data.JSONL_SUFFIXES, *data.PARQUET_SUFFIXES})
PAIRS = [(f, c) for f in FORMATS for c in ("", *sources.COMPRESSION_SUFFIXES)]
NOTE_SUFFIXES = [f + c for f, c in PAIRS]
# Top level (the Llama configs' default train_path), data/, a nested fixture folder, and inside a
# code package: a note file is left out wherever it lies.
DEPTHS = ("", "data/", "tests/fixtures/x/", "discriminator/exports/2019/")
# What jobs write or cache in the tree by default: outputs, weights, tokens, caches.
OUTPUTS = (
    "runs/llama3-discriminator/adapter_config.json",
    "runs/llama3-discriminator/adapter_model.safetensors",
    "runs/ray/discriminator-sweep/tuner.pkl",
    "runs/slurm/ray-cluster-7.token",
    "runs/scores/_manifest.json",
    "demo/report/metrics.json",
    "demo/data/train.jsonl",
    "llama3-discriminator/adapter_model.safetensors",
    "llama3-discriminator-merged/model-00001-of-00004.safetensors",
    "llama3-discriminator-v2/tokenizer_config.json",
    ".cache/huggingface/hub/models--x/blobs/0123",
    ".cache/clinical-discriminator/tiny-abc/pytorch_model.bin",
    ".venv/bin/python",
    "ray-cluster-8.token",
)
CODE = (
    "ray_jobs/train.py",
    "ray_jobs/score.py",
    "ray_jobs/__init__.py",
    "discriminator/__init__.py",
    "discriminator/sources.py",
    "discriminator/cluster_env.py",
    "pyproject.toml",
    YAML,
)


def _case_variants(name: str) -> set[str]:
    return {name, name.upper(), name.title()}


def _is_note_name(name: str) -> bool:
    return name.lower().endswith(tuple(NOTE_SUFFIXES))


def _checkout_copy(dest: Path) -> list[str]:
    """The checkout as a user has it: tracked and untracked-but-not-ignored files, + .gitignore."""
    try:
        out = subprocess.run(
            ["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
            cwd=REPO,
            capture_output=True,
            check=True,
        ).stdout
    except (OSError, subprocess.CalledProcessError):
        pytest.skip("not a git checkout")
    files = sorted({f for f in out.decode().split("\0") if f and (REPO / f).is_file()})
    for f in files:
        (dest / f).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(REPO / f, dest / f)
    assert ".gitignore" in files
    return files


def _pack_as_job_submit(work: Path, tmp_path: Path, monkeypatch) -> dict[str, bytes]:
    """Pack `work` with Ray's JobSubmissionClient: `ray job submit --runtime-env YAML` run in
    `work`, every step its own (YAML parse, default excludes, .gitignore, the zip) except the
    HTTP PUT, which is captured."""
    from ray.dashboard.modules.dashboard_sdk import parse_runtime_env_args
    from ray.job_submission import JobSubmissionClient

    class Capture(JobSubmissionClient):
        def __init__(self):  # no cluster: nothing to connect to
            self.uploads: dict[str, bytes] = {}

        def _package_exists(self, package_uri):
            return False

        def _do_request(self, method, endpoint, *, data=None, **kwargs):
            assert method == "PUT", (method, endpoint)
            self.uploads[endpoint] = data
            return SimpleNamespace(status_code=200)

    monkeypatch.chdir(work)
    runtime_env = parse_runtime_env_args(runtime_env=YAML)
    client = Capture()
    client._upload_working_dir_if_needed(runtime_env)
    assert runtime_env["working_dir"].startswith("gcs://_ray_pkg_"), runtime_env
    [(endpoint, blob)] = client.uploads.items()
    assert endpoint.endswith(runtime_env["working_dir"].split("://")[1]), endpoint
    pkg = tmp_path / "pkg.zip"
    pkg.write_bytes(blob)
    with zipfile.ZipFile(pkg) as z:
        return {n: z.read(n) for n in z.namelist() if not n.endswith("/")}


def test_committed_runtime_env_is_the_generated_one():
    committed = (REPO / YAML).read_text()
    assert committed == cluster_env.runtime_env_yaml(), (
        f"{YAML} lags the readers: regenerate it with `discriminator runtime-env > {YAML}`"
    )
    assert yaml.safe_load(committed) == {"working_dir": ".", "excludes": cluster_env.excludes()}
    proc = subprocess.run(
        [sys.executable, "-m", "discriminator.cli", "runtime-env"],
        cwd=REPO,
        capture_output=True,
        text=True,
        check=True,
    )
    assert proc.stdout == committed


def test_the_canaries_are_what_the_readers_read():
    """Every canary suffix is one the readers take (compressed parquet aside, which they refuse
    and the upload leaves out all the same): the packing test covers the readers' formats."""
    for fmt, comp in PAIRS:
        refused = sources.FORMAT_SUFFIXES[fmt] == sources.PARQUET and comp
        for name in _case_variants(f"notes{fmt}{comp}"):
            assert (sources.file_kind(name) is None) == bool(refused), name


@pytest.mark.parametrize("gitignore", [True, False], ids=["gitignore", "IGNORE_GITIGNORE=1"])
def test_job_submit_uploads_code_and_no_note_file(tmp_path, monkeypatch, gitignore):
    monkeypatch.delenv("RAY_OVERRIDE_RUNTIME_ENV_DEFAULT_EXCLUDES", raising=False)
    if gitignore:
        monkeypatch.delenv("RAY_RUNTIME_ENV_IGNORE_GITIGNORE", raising=False)
    else:  # the user turned .gitignore off: the YAML's excludes alone keep notes out
        monkeypatch.setenv("RAY_RUNTIME_ENV_IGNORE_GITIGNORE", "1")
    work = tmp_path / "checkout"
    tracked = _checkout_copy(work)
    marker = f"PHI-CANARY-{uuid.uuid4().hex}".encode()  # not in any file of the repository
    canaries = [
        f"{depth}{name}"
        for depth in DEPTHS
        for suffix in NOTE_SUFFIXES
        for name in _case_variants(f"notes{suffix}")
    ]
    for f in (*canaries, *OUTPUTS):
        (work / f).parent.mkdir(parents=True, exist_ok=True)
        (work / f).write_bytes(b'{"note": "' + marker + b'", "reason": ""}\n')

    packed = _pack_as_job_submit(work, tmp_path, monkeypatch)

    leaked = sorted(n for n in packed if n in canaries or n in OUTPUTS or marker in packed[n])
    assert leaked == [], f"uploaded with the job: {leaked}"
    assert [n for n in packed if _is_note_name(n)] == []
    assert set(CODE) <= set(packed), sorted(set(CODE) - set(packed))
    configs = [f for f in tracked if f.startswith("ray_jobs/configs/") and f.endswith(".yaml")]
    assert configs and set(configs) <= set(packed)
    # every tracked file goes except note-shaped ones (test fixtures, benchmark reports)
    missing = sorted(f for f in tracked if f not in packed and not _is_note_name(f))
    assert missing == [], missing
    assert packed[YAML] == (REPO / YAML).read_bytes()
