"""`cluster/runtime-env.yaml`, the runtime environment users submit jobs with, generated.

    discriminator runtime-env > cluster/runtime-env.yaml

`ray job submit --runtime-env cluster/runtime-env.yaml` uploads the working directory (the
checkout) to every node, minus `.gitignore`'d files and the file's `excludes`. Notes are PHI, so
the excludes name every file the readers take as notes (`sources.note_file_patterns()`, derived
from the readers' own suffix lists, so a new reader format is excluded the day it is added)
besides the folders that hold data, outputs and caches. The excludes do not lean on
`.gitignore`: `RAY_RUNTIME_ENV_IGNORE_GITIGNORE=1` turns it off. tests/test_runtime_env.py checks
the committed file equals `runtime_env_yaml()` and packs a checkout with Ray's own packaging.
"""

from __future__ import annotations

import json

from discriminator.sources import note_file_patterns

HEADER = """\
# The runtime environment for `ray job submit --runtime-env cluster/runtime-env.yaml`: the project's
# code is uploaded to the cluster (every node's Ray folder), never its data or runs. Notes are
# PHI: jobs read them from shared storage by path (--input, data.train_path), not from the upload.
#
# Generated: `discriminator runtime-env > cluster/runtime-env.yaml` (discriminator/cluster_env.py);
# do not edit by hand, tests/test_runtime_env.py fails when this file and the generator differ.
# The note patterns are every reader suffix (discriminator.sources FORMAT_SUFFIXES), plain and
# compressed (COMPRESSION_SUFFIXES), in any letter case (Ray's matching is case-sensitive).
"""

# Folders that hold notes, outputs, caches or the environment, wherever they are in the tree.
FOLDERS = (
    ".git/",
    ".venv/",
    "data/",  # notes (config defaults data/train.jsonl, data/eval.jsonl)
    "runs/",  # every job's default output: adapters, Ray storage, scores, reports, SLURM tokens
    "demo/",  # ray_jobs.demo's --output: synthetic notes, runs, report
    ".cache/",  # model and dataset caches (HF_HOME, DISCRIMINATOR_CACHE) if placed in the tree
    "llama3-discriminator*/",  # the Llama configs' relative run.output_dir (adapter, -merged)
)
# Weights, checkpoints and pickles (what training writes; never code), and Ray's token files.
FILES = (
    "*.safetensors",
    "*.bin",
    "*.pt",
    "*.pth",
    "*.ckpt",
    "*.pkl",
    "*.pickle",
    "*.token",
)


def excludes() -> list[str]:
    """The upload's `excludes`: folders, note files of every reader format, weights, tokens."""
    return [*FOLDERS, *note_file_patterns(), *FILES]


def runtime_env_yaml() -> str:
    """The text of cluster/runtime-env.yaml."""
    lines = [HEADER.rstrip("\n"), "working_dir: .", "excludes:"]
    # JSON strings are YAML scalars: quoted, so `*` and `[` read as text, not YAML syntax
    lines += [f"  - {json.dumps(p)}" for p in excludes()]
    return "\n".join(lines) + "\n"
