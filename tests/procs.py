"""Process helpers shared by the tests that start their own Ray clusters and kill them."""

from __future__ import annotations

import contextlib
import os
import signal
from pathlib import Path


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
