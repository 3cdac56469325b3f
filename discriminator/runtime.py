"""Process environment for the jobs: quiet, offline-friendly defaults and Ray start-up."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

# Defaults a user can still override in their environment.
ENV_DEFAULTS = {
    # Ray's print patch makes `datasets` fingerprinting dump bytecode into worker logs.
    "RAY_TRAIN_ENABLE_PRINT_PATCH": "0",
    "TOKENIZERS_PARALLELISM": "false",
    "RAY_USAGE_STATS_ENABLED": "0",
}


def set_env_defaults() -> None:
    for key, value in ENV_DEFAULTS.items():
        os.environ.setdefault(key, value)


def init_ray(**kwargs: Any) -> Any:
    """Connect to RAY_ADDRESS (a cluster, or the job's cluster under `ray job submit`), else
    start a local instance. Workers started locally inherit this process's environment."""
    set_env_defaults()
    import ray

    if ray.is_initialized():
        return ray.get_runtime_context()
    kwargs.setdefault("log_to_driver", True)
    if not os.environ.get("RAY_ADDRESS"):
        kwargs.setdefault("include_dashboard", False)
    return ray.init(**kwargs)


def private_dir(path: str | Path) -> bool:
    """Create a local folder (and missing parents) owner-only (0o700): clusters are shared and
    outputs derive from PHI. Returns whether the folder is private; an existing folder keeps its mode
    (it may be shared on purpose)."""
    p = Path(path)
    missing = []
    while not p.exists():  # every folder made here is private, the parents too
        missing.append(p)
        p = p.parent
    for d in reversed(missing):
        d.mkdir(mode=0o700, exist_ok=True)
        d.chmod(0o700)  # mkdir's mode is masked by the umask
    return not (Path(path).stat().st_mode & 0o077)
