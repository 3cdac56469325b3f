"""Process helpers shared by the tests that start their own Ray clusters and kill them."""

from __future__ import annotations

import contextlib
import ipaddress
import os
import signal
import stat
import threading
from pathlib import Path

# The SLURM tests install and start system services (as root: SLURM and munge from apt, network
# namespaces and a bridge, lines in /etc/hosts): only on CI or when asked.
SLURM_OPT_IN = "DISCRIMINATOR_TEST_SLURM"
SLURM_SKIP = (
    "the SLURM tests install and start SLURM and munge (apt), network namespaces and /etc/hosts "
    f"entries as root; run them with {SLURM_OPT_IN}=1 (CI=true does too)"
)


def slurm_tests_allowed() -> bool:
    return os.environ.get("CI") == "true" or os.environ.get(SLURM_OPT_IN) == "1"


def job_env(ray_tmp: str, **extra: str) -> dict[str, str]:
    """Environment for a job subprocess on its own private Ray instance under `ray_tmp`."""
    env = {k: v for k, v in os.environ.items() if k != "RAY_ADDRESS"}
    env.update(
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


def exposed(root: Path) -> list[str]:
    """Paths in the tree at `root` (root included) that another user could read or write: a
    path is reachable by group (or others) when every folder from `root` down to it lets group
    (others) search it, and exposed when it is reachable and its own mode lets them read or
    write it. Links are skipped (their mode means nothing)."""
    found = []

    def walk(path: Path, reach: dict[str, bool]) -> None:
        try:
            st = path.lstat()
        except OSError:  # removed while walking
            return
        if stat.S_ISLNK(st.st_mode):
            return
        mode = st.st_mode
        for who, rw in (("group", 0o060), ("others", 0o006)):
            if reach[who] and mode & rw:
                found.append(f"{path} ({who}: mode {stat.S_IMODE(mode):o})")
        if stat.S_ISDIR(mode):
            inner = {
                "group": reach["group"] and bool(mode & 0o010),
                "others": reach["others"] and bool(mode & 0o001),
            }
            try:
                children = list(path.iterdir())
            except OSError:
                return
            for child in children:
                walk(child, inner)

    walk(root, {"group": True, "others": True})
    return found


class Watch(threading.Thread):
    """While a test's jobs run: every listening socket of this process's descendants, and the
    paths other users could reach in each private Ray folder (`ray-*`) under `ray_tmp`."""

    def __init__(self, ray_tmp: Path, interval: float = 0.5) -> None:
        super().__init__(daemon=True)
        self.ray_tmp, self.interval = Path(ray_tmp), interval
        self.listeners: set[tuple[str, int, str]] = set()
        self.folders: set[str] = set()
        self.exposed: set[str] = set()
        self._done = threading.Event()

    def public(self) -> list[tuple[str, int, str]]:
        return sorted(
            x
            for x in self.listeners
            if not ipaddress.ip_address(x[0].removeprefix("::ffff:")).is_loopback
        )

    def sample(self) -> None:
        import psutil

        me = psutil.Process()
        pids = {p.pid: p for p in me.children(recursive=True)}
        for c in psutil.net_connections("inet"):
            if c.status == psutil.CONN_LISTEN and c.pid in pids:
                with contextlib.suppress(psutil.Error):
                    self.listeners.add((c.laddr.ip, c.laddr.port, pids[c.pid].name()))
        for folder in self.ray_tmp.glob("ray-*"):
            self.folders.add(str(folder))
            self.exposed.update(exposed(folder))

    def run(self) -> None:
        while not self._done.is_set():
            with contextlib.suppress(Exception):
                self.sample()
            self._done.wait(self.interval)

    def stop(self) -> None:
        self._done.set()
        self.join(timeout=30)
