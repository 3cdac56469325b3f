"""Process helpers shared by the tests that start their own Ray clusters and kill them."""

from __future__ import annotations

import contextlib
import os
import signal
from pathlib import Path


def job_env(ray_tmp: str, **extra: str) -> dict[str, str]:
    """Environment for a job subprocess on its own private Ray instance under `ray_tmp`."""
    env = {k: v for k, v in os.environ.items() if k != "RAY_ADDRESS"}
    env.update(
        RAY_AUTH_MODE="disabled",
        HF_HUB_OFFLINE="1",
        RAY_TRAIN_ENABLE_PRINT_PATCH="0",
        RAY_USAGE_STATS_ENABLED="0",
        RAY_TMPDIR=ray_tmp,
        **extra,
    )
    return env


def kill_leftovers(marker: str) -> None:
    """SIGKILL every process whose command line names `marker` (a test's own Ray temp dir).

    Only the test's own processes match, so other Ray instances on the host are left alone
    (never `ray stop`: it is host-wide)."""
    for pid in os.listdir("/proc"):
        if not pid.isdigit():
            continue
        try:
            cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
        except OSError:
            continue
        if marker.encode() in cmdline:
            with contextlib.suppress(ProcessLookupError):
                os.kill(int(pid), signal.SIGKILL)
