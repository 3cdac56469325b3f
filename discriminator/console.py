"""The jobs' console: the project's own progress on the terminal, everything else in a log file.

A job runs inside `capture(job, log_dir, verbose)`. File descriptors 1 and 2 of the process are
pointed at a pipe that one thread reads line by line; every line goes to the run's log file and
only the project's own lines reach the terminal:

- lines tagged `[train]`, `[tune]`, `[score]`, `[eval]`, `[model]`, `[demo]` or starting with
  `error:` / `warning:`, also when Ray forwards them from a worker (its `(RayTrainWorker pid=..)`
  prefix and colour codes are dropped);
- lines written with `say()` (stage headers, summaries);
- records of the `discriminator` loggers at INFO and above, as `[job] message`.

Everything else (Ray's internals, HF deprecation warnings, `datasets` map bars, bitsandbytes
kernel notices, raw metric dicts, C++ log lines) lands only in the log file, whose path the job
prints at start; `--verbose` shows it all on the terminal as well. Working at the descriptor
level catches what Python-level filters miss: output of C extensions, of child processes and of
Ray's worker-log forwarding. A job never sits silent: after `HEARTBEAT_S` without a line the
console says what is still running and for how long. An uncaught exception prints one line
(type and first line of the message) plus the log's path; the traceback goes to the log.

Nothing here prints note text: the tagged lines are the project's own and carry ids and figures.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import re
import sys
import threading
import time
import traceback
import warnings
from collections.abc import Iterator
from pathlib import Path

from discriminator.files import write_atomic

TAGS = ("train", "tune", "score", "eval", "model", "demo", "data", "floor")
HEARTBEAT_S = 25.0
_ANSI = re.compile(r"\x1b\[[0-9;]*[A-Za-z]")
# Ray's worker-log prefix, e.g. "(RayTrainWorker pid=123, ip=10.0.0.2) ", and its dedup suffix.
_RAY_PREFIX = re.compile(r"^\((?:[\w.:<>-]+ )?pid=\d+(?:, ip=[\w.:-]+)?\) ")
_RAY_REPEAT = re.compile(r" \[repeated \d+x across cluster\]$")
_OWN = re.compile(r"^(?:\[(?:{})\] |error: |config error: |warning: )".format("|".join(TAGS)))
_ERR = ("error: ", "config error: ")  # own lines that go to stderr


def own_line(raw: str) -> str | None:
    """The project's own line inside `raw` (worker prefix and colours dropped), else None."""
    line = _RAY_REPEAT.sub("", _RAY_PREFIX.sub("", _ANSI.sub("", raw).rstrip()))
    return line if _OWN.match(line) else None


class Console:
    """The running capture (one per process at a time)."""

    def __init__(self, job: str, log_path: Path, verbose: bool):
        self.job, self.log_path, self.verbose = job, log_path, verbose
        self.stage = "starting"
        self.started = self.last = time.monotonic()
        # the job's phases (console.stage) and when each began; the first: imports and settings
        self.marks: list[tuple[str, float]] = [("imports and settings", time.time())]
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._log = open(log_path, "a", encoding="utf-8", errors="replace", buffering=1)  # noqa: SIM115
        os.chmod(log_path, 0o600)  # the log sits beside outputs derived from PHI
        self._term = self._term_err = -1
        self._saved: tuple[int, int] | None = None
        self._continues = self._continues_err = False

    # -- output ---------------------------------------------------------------------------------
    def say(self, text: str) -> None:
        """Write `text` to the terminal (errors to its stderr) and the log."""
        with self._lock:
            if not self._log.closed:
                self._log.write(text + "\n")
            if self._term >= 0:
                err = text.startswith(_ERR) or (
                    self._continues_err and self._continues and text[:1].isspace()
                )
                fd = self._term_err if err else self._term
                os.write(fd, (text + "\n").encode("utf-8", "replace"))
            else:
                sys.__stdout__.write(text + "\n")
                sys.__stdout__.flush()
            self.last = time.monotonic()

    def _line(self, raw: str) -> None:
        if not raw.strip() or self._log.closed:
            return
        own = own_line(raw)
        if own is None and self._continues and raw[:1] in (" ", "\t"):
            own = raw.rstrip()  # the indented list under an own line ending in ":"
        elif own is None:
            self._continues = False
        else:
            self._continues = own.endswith(":")
            self._continues_err = own.startswith(_ERR)
        if self.verbose and self._term >= 0:
            with self._lock:
                self._log.write(raw + "\n")
                os.write(self._term, (raw + "\n").encode("utf-8", "replace"))
                self.last = time.monotonic()
        elif own is not None:
            self.say(own)
        else:
            with self._lock:
                self._log.write(raw + "\n")

    # -- plumbing -------------------------------------------------------------------------------
    def _reader(self, fd: int) -> None:
        buf = b""
        while True:
            try:
                chunk = os.read(fd, 65536)
            except OSError:
                break
            if not chunk:
                break
            buf += chunk
            *lines, buf = re.split(rb"\r\n|\r|\n", buf)
            for line in lines:
                self._line(line.decode("utf-8", "replace"))
        if buf:
            self._line(buf.decode("utf-8", "replace"))
        os.close(fd)

    def _heartbeat(self) -> None:
        while not self._stop.wait(1.0):
            now = time.monotonic()
            if now - self.last >= HEARTBEAT_S:
                self.say(f"[{self.job}] ... {self.stage} ({_clock(now - self.started)})")

    def start(self) -> None:
        for stream in (sys.stdout, sys.stderr):
            with contextlib.suppress(Exception):
                stream.flush()
        self._saved = (os.dup(1), os.dup(2))
        self._term, self._term_err = self._saved
        r, w = os.pipe()
        os.dup2(w, 1)
        os.dup2(w, 2)
        os.close(w)
        # Python-level output through the pipe too, line by line and in order, whatever
        # sys.stdout was before (a test runner's capture, a notebook's stream).
        self._streams = (sys.stdout, sys.stderr)
        sys.stdout = open(1, "w", encoding="utf-8", errors="replace", buffering=1, closefd=False)  # noqa: SIM115
        sys.stderr = open(2, "w", encoding="utf-8", errors="replace", buffering=1, closefd=False)  # noqa: SIM115
        self._threads = [
            threading.Thread(target=self._reader, args=(r,), daemon=True, name="console-reader"),
            threading.Thread(target=self._heartbeat, daemon=True, name="console-heartbeat"),
        ]
        for t in self._threads:
            t.start()

    def stop(self) -> None:
        self._stop.set()
        for stream in (sys.stdout, sys.stderr):
            with contextlib.suppress(Exception):
                stream.flush()
        if self._saved:
            sys.stdout, sys.stderr = self._streams
            out, err = self._saved
            os.dup2(out, 1)  # closes our pipe ends; the reader sees EOF once children let go
            os.dup2(err, 2)
            self._threads[0].join(timeout=5)
            os.close(out)
            os.close(err)
            self._saved = None
            self._term = self._term_err = -1
        with self._lock:
            self._log.close()


def _clock(seconds: float) -> str:
    s = int(seconds)
    return f"{s // 60}m{s % 60:02d}s" if s >= 60 else f"{s}s"


_current: Console | None = None


def say(text: str) -> None:
    """A line for the user: through the running capture, else plain stdout."""
    if _current is not None:
        _current.say(text)
    else:
        print(text, flush=True)


def stage(text: str, phase: bool = True) -> str:
    """Name what the job is doing now (the heartbeat line says it while the job is silent); a
    `phase` also starts a new entry in the job's timings (`TIMINGS_ENV`), progress figures do
    not. Returns the stage it replaces ("" without a running capture)."""
    if _current is None:
        return ""
    before, _current.stage = _current.stage, text
    if phase:
        _current.marks.append((text, time.time()))
    return before


# Where a job writes how long each of its phases took (JSON, at its end), when set: the demo
# sets it for each stage and gathers the files into its summary.
TIMINGS_ENV = "DISCRIMINATOR_TIMINGS"


def write_timings(con: Console, path: str) -> None:
    """{job, started, ended, phases: [{phase, seconds}]} of the capture `con` into `path`."""
    ended = time.time()
    ends = [t for _, t in con.marks[1:]] + [ended]
    phases = [
        {"phase": name, "seconds": round(end - start, 2)}
        for (name, start), end in zip(con.marks, ends, strict=True)
    ]
    body = {"job": con.job, "started": con.marks[0][1], "ended": ended, "phases": phases}
    write_atomic(path, json.dumps(body, indent=2) + "\n")


class _TagHandler(logging.Handler):
    """`discriminator.*` log records as the job's own console lines."""

    def __init__(self, job: str):
        super().__init__(logging.INFO)
        self.job = job

    def emit(self, record: logging.LogRecord) -> None:
        try:
            msg = record.getMessage()
            level = "" if record.levelno < logging.WARNING else f"{record.levelname.lower()}: "
            say(f"[{self.job}] {level}{msg}")
        except Exception:  # pragma: no cover - logging must never raise
            self.handleError(record)


def local_log_dir(where: str | os.PathLike | None, fallback: str = "runs/logs") -> Path:
    """`where` when it is a local folder path, else `fallback` (a URI has no local folder); a
    job in an uploaded copy of the code (`ray job submit`) falls back to
    the project's cache folder (`$DISCRIMINATOR_CACHE`, else `~/.cache/clinical-discriminator`)
    under `logs/` instead, since Ray deletes the upload with its session."""
    from discriminator.runtime import uploaded_working_dir

    if where and "://" not in str(where):
        return Path(where)
    if uploaded_working_dir() is not None and not Path(fallback).is_absolute():
        cache = os.environ.get("DISCRIMINATOR_CACHE")
        return Path(cache or Path.home() / ".cache" / "clinical-discriminator") / "logs"
    return Path(fallback)


@contextlib.contextmanager
def capture(job: str, log_dir: str | os.PathLike, verbose: bool = False) -> Iterator[Console]:
    """Run the body with the console filtered as described in the module docstring."""
    global _current
    from discriminator.runtime import UMASK, private_dir

    os.umask(UMASK)  # the job's files (logs, outputs, checkpoints) derive from PHI: owner-only
    if _current is not None:  # nested (a job called from another job's process): share it
        yield _current
        return
    private_dir(log_dir)
    path = Path(log_dir).resolve() / f"{job}-{time.strftime('%Y%m%d-%H%M%S')}-{os.getpid()}.log"
    con = Console(job, path, verbose)
    root = logging.getLogger()
    file_handler = logging.StreamHandler(con._log)
    file_handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    own = logging.getLogger("discriminator")
    tag = _TagHandler(job)
    saved_levels = (root.level, own.level, own.propagate)
    old_hook, old_showwarning = sys.excepthook, warnings.showwarning
    con.start()
    _current = con
    root.addHandler(file_handler)
    if root.level == logging.NOTSET or root.level > logging.INFO:  # keep a DEBUG set before
        root.setLevel(logging.INFO)
    own.addHandler(tag)
    own.setLevel(logging.INFO)
    own.propagate = False  # its records reach the log through say()
    logging.captureWarnings(True)  # Python warnings -> the py.warnings logger -> the log file
    con.say(f"[{job}] log: {path}")

    def hook(exc_type, exc, tb):  # uncaught: one line here, the traceback in the log
        with con._lock:
            con._log.write("".join(traceback.format_exception(exc_type, exc, tb)))
        first = (_ANSI.sub("", str(exc)).strip().splitlines() or [""])[0][:300]
        con.say(f"error: {exc_type.__name__}: {first} (traceback in {path})")

    sys.excepthook = hook
    try:
        yield con
    except BaseException as e:
        if not isinstance(e, SystemExit | KeyboardInterrupt):
            hook(type(e), e, e.__traceback__)
            raise SystemExit(1) from None
        if isinstance(e, KeyboardInterrupt):
            con.say(f"[{job}] interrupted")
        raise
    finally:
        with contextlib.suppress(Exception):  # a local Ray instance ends with the job
            if "ray" in sys.modules and sys.modules["ray"].is_initialized():
                stage("shutting down Ray")
                sys.modules["ray"].shutdown()
        if os.environ.get(TIMINGS_ENV):
            with contextlib.suppress(OSError):
                write_timings(con, os.environ[TIMINGS_ENV])
        _current = None
        sys.excepthook = old_hook
        logging.captureWarnings(False)
        warnings.showwarning = old_showwarning
        root.removeHandler(file_handler)
        own.removeHandler(tag)
        root.setLevel(saved_levels[0])
        own.setLevel(saved_levels[1])
        own.propagate = saved_levels[2]
        con.stop()
