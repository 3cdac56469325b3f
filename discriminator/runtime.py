"""Process environment for the jobs: quiet defaults, private files, a Ray nobody else can reach.

Quiet, offline-friendly defaults; owner-only files (umask 077); and a Ray that nobody else on the
machine can reach.

A local Ray instance (no RAY_ADDRESS) runs in a fresh owner-only folder with an unpredictable name
(`<RAY_TMPDIR or /tmp>/ray-XXXXXXXX`, mode 0700); Ray's own temp tree is `ray/` inside it, so the
modes Ray gives its folders (it makes them 0777 on purpose) cannot expose anything. Every listener
binds to 127.0.0.1, and token authentication is on with a per-run token written in that folder
(O_EXCL, 0600). The folder is removed when the process exits (kept with RAY_KEEP_TMPDIR=1, to
read Ray's own logs).
"""

from __future__ import annotations

import atexit
import contextlib
import os
import secrets
import shutil
import stat
import tempfile
from pathlib import Path
from typing import Any

# Defaults a user can still override in their environment.
ENV_DEFAULTS = {
    # Ray's print patch makes `datasets` fingerprinting dump bytecode into worker logs.
    "RAY_TRAIN_ENABLE_PRINT_PATCH": "0",
    "TOKENIZERS_PARALLELISM": "false",
    "RAY_USAGE_STATS_ENABLED": "0",
}
# Files a job writes (outputs, logs, checkpoints, Ray's logs and spilled objects) derive from
# PHI: owner-only, whatever the user's umask.
UMASK = 0o077
# Ray's temp folder inside the private one (short: Ray's socket paths must stay < 107 bytes).
RAY_SUBDIR = "ray"
TOKEN_FILE = "token"


_local_folder: Path | None = None  # the private folder of this process's local instance
_exit_hook: list[bool] = []
# What a local instance sets in this process's environment, restored when it stops.
_RAY_ENV = ("RAY_AUTH_TOKEN", "RAY_AUTH_MODE", "RAY_AUTH_TOKEN_PATH")
_saved_env: dict[str, str | None] = {}


class PrivacyError(ValueError):
    """A folder or file other users could read or replace."""


def set_env_defaults() -> None:
    """The job process's defaults: quiet libraries and owner-only files (umask 077)."""
    os.umask(UMASK)
    for key, value in ENV_DEFAULTS.items():
        os.environ.setdefault(key, value)


def check_parent_dir(path: str | Path, what: str) -> Path:
    """`path` as a folder to create private folders in: it must exist, belong to this user (or
    root), and, when group or others may write it, carry the sticky bit (like /tmp), so nobody
    else can rename or replace what is made in it."""
    p = Path(path)
    try:
        st = p.stat()
    except OSError as e:
        raise PrivacyError(f"{what} {p}: {e.strerror}") from None
    if not stat.S_ISDIR(st.st_mode):
        raise PrivacyError(f"{what} {p} is not a folder")
    if st.st_uid not in (os.getuid(), 0):
        raise PrivacyError(
            f"{what} {p} belongs to another user (uid {st.st_uid}); use a folder of yours"
        )
    if st.st_mode & 0o022 and not st.st_mode & stat.S_ISVTX:
        raise PrivacyError(
            f"{what} {p} is writable by other users (mode {st.st_mode & 0o7777:o}, no sticky bit); "
            "use a folder only you can write"
        )
    return p


def check_token_file(path: str | Path) -> Path:
    """A token file the user names: a regular file (not a link), owned by this user, readable by
    nobody else; refused with one line otherwise."""
    p = Path(path).expanduser()
    try:
        st = p.lstat()
    except OSError as e:
        raise PrivacyError(f"token file {p}: {e.strerror}") from None
    if stat.S_ISLNK(st.st_mode) or not stat.S_ISREG(st.st_mode):
        raise PrivacyError(f"token file {p} is not a regular file (a link or a device is refused)")
    if st.st_uid != os.getuid():
        raise PrivacyError(f"token file {p} belongs to another user (uid {st.st_uid})")
    if st.st_mode & 0o077:
        raise PrivacyError(
            f"token file {p} is readable or writable by other users (mode {st.st_mode & 0o777:o}); "
            f"run: chmod 600 {p}"
        )
    return p


def check_not_shared_writable(path: str | Path, what: str) -> None:
    """Refuse (one line) a file or folder that another user owns or that group or others may
    write: what is loaded from it (a pickle) could be someone else's."""
    p = Path(path)
    st = p.stat()
    if st.st_uid != os.getuid():
        raise PrivacyError(
            f"{what} {p} belongs to another user (uid {st.st_uid}); refusing to load it"
        )
    if st.st_mode & 0o022:
        raise PrivacyError(
            f"{what} {p} is writable by other users (mode {st.st_mode & 0o7777:o}); refusing to load "
            f"it (run: chmod go-w {p})"
        )


def write_token(path: str | Path) -> Path:
    """A fresh random token in a new file (O_EXCL: never an existing file or link), mode 0600."""
    p = Path(path)
    fd = os.open(p, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600)
    try:
        os.fchmod(fd, 0o600)
        os.write(fd, secrets.token_hex(32).encode())
        os.fsync(fd)
    finally:
        os.close(fd)
    return p


def make_private_dir(base: str | Path | None = None, prefix: str = "ray-") -> Path:
    """A fresh folder with an unpredictable name under `base` (RAY_TMPDIR, else /tmp; made
    owner-only when missing), mode 0700. `base` must be a folder others cannot tamper with (see
    `check_parent_dir`)."""
    base = Path(base or os.environ.get("RAY_TMPDIR") or "/tmp")
    if not base.exists():
        private_dir(base)
    check_parent_dir(base, "Ray temp folder")
    d = Path(tempfile.mkdtemp(prefix=prefix, dir=base))
    d.chmod(0o700)
    return d


def _token_in_use() -> None:
    """Refuse a token file Ray would read that others can read or replace (connecting to a
    cluster: RAY_AUTH_TOKEN_PATH, else Ray's default ~/.ray/auth_token)."""
    if os.environ.get("RAY_AUTH_TOKEN") or os.environ.get("RAY_AUTH_MODE") == "disabled":
        return
    if os.environ.get("RAY_AUTH_TOKEN_PATH"):
        check_token_file(os.environ["RAY_AUTH_TOKEN_PATH"])
        return
    default = Path.home() / ".ray" / "auth_token"
    if default.exists():
        check_token_file(default)


def _private_local_ray() -> Path:
    """Prepare a private local instance: the folder, its token, loopback-only addresses, token
    auth for this process and every process it starts. Returns Ray's temp folder."""
    folder = make_private_dir()
    token = write_token(folder / TOKEN_FILE)
    _saved_env.update({k: os.environ.get(k) for k in _RAY_ENV if k not in _saved_env})
    os.environ.pop("RAY_AUTH_TOKEN", None)  # would override the file
    os.environ["RAY_AUTH_MODE"] = "token"
    os.environ["RAY_AUTH_TOKEN_PATH"] = str(token)
    # Ray binds its servers to the node's address; on Linux it resolves "127.0.0.1" to the
    # machine's outward address unless clusters are off, as they are on macOS and Windows. The
    # variable reaches Ray's child processes; the constant is already read in this process.
    os.environ["RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER"] = "0"
    # No metrics export server (unauthenticated HTTP) on each node; set
    # RAY_enable_metrics_collection=1 to have one (on 127.0.0.1).
    os.environ.setdefault("RAY_enable_metrics_collection", "0")
    import ray._private.ray_constants as ray_constants
    from ray._raylet import AuthenticationTokenLoader, Config

    ray_constants.ENABLE_RAY_CLUSTER = False
    Config.initialize("")  # Ray read RAY_AUTH_MODE when it was imported
    AuthenticationTokenLoader.instance().reset_cache()

    global _local_folder
    _local_folder = folder
    if not _exit_hook:
        atexit.register(shutdown_ray)  # runs before Ray's own exit hook (registered earlier)
        _exit_hook.append(True)
    return folder / RAY_SUBDIR


def shutdown_ray() -> None:
    """Stop Ray and remove this process's private local folder (unless RAY_KEEP_TMPDIR=1)."""
    global _local_folder
    import ray

    with contextlib.suppress(Exception):
        ray.shutdown()
    folder, _local_folder = _local_folder, None
    if folder is not None and os.environ.get("RAY_KEEP_TMPDIR") != "1":
        shutil.rmtree(folder, ignore_errors=True)
    if _saved_env:  # the token was this instance's: the process's own settings again
        for key, value in _saved_env.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value
        _saved_env.clear()
        with contextlib.suppress(Exception):
            from ray._raylet import AuthenticationTokenLoader, Config

            Config.initialize("")
            AuthenticationTokenLoader.instance().reset_cache()


def init_ray(**kwargs: Any) -> Any:
    """Connect to RAY_ADDRESS (a cluster, or the job's cluster under `ray job submit`), else
    start a private local instance (see the module docstring). Workers started locally inherit
    this process's environment."""
    set_env_defaults()
    import ray

    if ray.is_initialized():
        return ray.get_runtime_context()
    kwargs.setdefault("log_to_driver", True)
    if os.environ.get("RAY_ADDRESS"):
        _token_in_use()
    else:
        kwargs.setdefault("include_dashboard", False)
        kwargs["_temp_dir"] = str(_private_local_ray())  # always the private folder
    return ray.init(**kwargs)


def ray_folder() -> Path | None:
    """The private folder of this process's local Ray instance (None when connected to a
    cluster or not started)."""
    return _local_folder


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


# ---------------------------------------------------------------------------------------------
# torch.distributed's rendezvous store on loopback


def _is_loopback(host: str) -> bool:
    import ipaddress

    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return host == "localhost"


def _loopback_store(hostname, port, rank, world_size, timeout, use_libuv=True):
    """torch's `_create_c10d_store`, except that rank 0 serves the store on 127.0.0.1 when
    the master address is loopback (every rank on this machine: a private local instance).
    torch binds the store to every interface, where anyone on the network could reach it."""
    import socket

    from torch.distributed import TCPStore

    if rank != 0 or not _is_loopback(hostname) or os.environ.get("TORCHELASTIC_USE_AGENT_STORE"):
        return _torch_store[0](hostname, port, rank, world_size, timeout, use_libuv)
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", port))
    sock.listen(2048)
    return TCPStore(
        "127.0.0.1", port, world_size, True, timeout, master_listen_fd=sock.detach(),
        use_libuv=use_libuv,
    )  # fmt: skip


_torch_store: list[Any] = []


def _use_loopback_store() -> None:
    """In a Ray Train worker, before its process group starts (see `loopback_torch_config`)."""
    import importlib

    # the module (torch.distributed also exports a function of that name)
    rendezvous = importlib.import_module("torch.distributed.rendezvous")
    if not _torch_store:
        _torch_store.append(rendezvous._create_c10d_store)
        rendezvous._create_c10d_store = _loopback_store


def loopback_torch_config(**kwargs: Any) -> Any:
    """Ray Train's `TorchConfig` whose process-group start serves torch's rendezvous store on
    127.0.0.1 when the workers' master address is loopback (a local instance; a cluster is
    unchanged: its ranks must reach the store across nodes)."""
    from ray.train.torch import TorchConfig
    from ray.train.torch.config import _TorchBackend

    class _Backend(_TorchBackend):
        def on_start(self, worker_group: Any, backend_config: Any) -> None:
            worker_group.execute(_use_loopback_store)
            super().on_start(worker_group, backend_config)

    class _Config(TorchConfig):
        @property
        def backend_cls(self) -> type:
            return _Backend

    return _Config(**kwargs)


# ---------------------------------------------------------------------------------------------
# Jobs submitted with `ray job submit`: they run in an uploaded copy of the code

# Ray's job supervisor gives the entrypoint its runtime environment in this variable.
_JOB_CONFIG_ENV = "RAY_JOB_CONFIG_JSON_ENV_VAR"
_UPLOAD_MARK = f"{os.sep}runtime_resources{os.sep}working_dir_files{os.sep}"


class UploadPathError(ValueError):
    """A job in an uploaded working directory was given a path that resolves inside it."""


def uploaded_working_dir() -> Path | None:
    """The uploaded copy of the code this process runs in (the working directory of a job
    submitted with a runtime environment's `working_dir`, e.g. `--runtime-env
    cluster/runtime-env.yaml`), else None. Ray deletes that folder with its session, and only
    code is uploaded into it (cluster/runtime-env.yaml leaves notes and outputs out)."""
    import json

    cwd = Path.cwd()
    if _UPLOAD_MARK in f"{cwd}{os.sep}":
        return cwd
    with contextlib.suppress(ValueError, TypeError, AttributeError):
        job = json.loads(os.environ.get(_JOB_CONFIG_ENV) or "{}")
        if (job.get("runtime_env") or {}).get("working_dir"):
            return cwd
    return None


def _inside(path: Path, folder: Path) -> bool:
    try:
        path.resolve().relative_to(folder.resolve())
        return True
    except ValueError:
        return False


def check_job_paths(
    outputs: dict[str, str | None], inputs: dict[str, str | list[str] | None]
) -> None:
    """In an uploaded working directory (`uploaded_working_dir`), refuse with one line a path
    setting that resolves inside the upload: an output there is deleted with the Ray session,
    and notes are never uploaded. `outputs` and `inputs` map setting names (`run.output_dir`) to
    their values, checked in that order; URIs (`s3://...`) and synthetic specs (`synth:...`) pass.
    Local runs (no upload) keep relative paths."""
    upload = uploaded_working_dir()
    if upload is None:
        return
    found: list[tuple[str, str, bool]] = []
    for is_output, settings in ((True, outputs), (False, inputs)):
        for name, value in settings.items():
            for v in value if isinstance(value, list) else [value]:
                if not v or "://" in v or v.startswith("synth:"):
                    continue
                p = Path(v).expanduser()
                if not p.is_absolute() or _inside(p, upload):
                    found.append((name, v, is_output))
                    break
    if not found:
        return
    name, value, is_output = found[0]
    where = (
        f"is a relative path, and this job runs in an uploaded copy of the code ({upload})"
        if not Path(value).expanduser().is_absolute()
        else f"lies in the uploaded copy of the code this job runs in ({upload})"
    )
    why = (
        "which Ray deletes with its session: nothing written there is kept"
        if is_output
        else "into which notes and data are never uploaded"
    )
    also = f" (also: {', '.join(n for n, _, _ in found[1:])})" if len(found) > 1 else ""
    example = f"/shared/{Path(value).name or 'path'}"
    raise UploadPathError(
        f"{name}={value} {where}, {why}; give an absolute path on storage every node sees, "
        f"e.g. --set {name}={example}{also}"
    )
