"""Write (driver): whole chunks to atomic parquet parts, progress, retries of failed rows."""

from __future__ import annotations

import json
import logging
import os
import threading
import time
import uuid
from typing import Any

import pyarrow as pa

from discriminator import console
from discriminator.scoring.plan import Chunk
from discriminator.scoring.schema import (
    KEPT,
    OUTPUT_SCHEMA,
    PROVENANCE_KEY,
    ScoreError,
    output_schema,
)
from discriminator.sources import filesystem, is_local

log = logging.getLogger(__name__)


class Output:
    """The output directory on any pyarrow filesystem; owner-only permissions when local."""

    def __init__(self, uri: str):
        self.uri = uri
        self.fs, self.path, self.prefix = filesystem(uri)
        self.local = is_local(self.fs)
        if self.local:
            existed = os.path.isdir(self.path)
            os.makedirs(self.path, mode=0o700, exist_ok=True)
            if not existed:
                os.chmod(self.path, 0o700)
            elif os.stat(self.path).st_mode & 0o077:
                log.warning("output directory %s is readable by others (notes are PHI)", uri)
        else:
            self.fs.create_dir(self.path, recursive=True)

    def join(self, name: str) -> str:
        return f"{self.path.rstrip('/')}/{name}"

    def uri_of(self, name: str) -> str:
        return self.prefix + self.join(name)

    def names(self, sub: str = "") -> list[str]:
        import pyarrow.fs as pafs

        where = self.join(sub) if sub else self.path
        infos = self.fs.get_file_info(pafs.FileSelector(where, allow_not_found=True))
        return sorted(i.base_name for i in infos if i.type == pafs.FileType.File)

    def exists(self, name: str) -> bool:
        import pyarrow.fs as pafs

        return self.fs.get_file_info(self.join(name)).type != pafs.FileType.NotFound

    def makedirs(self, sub: str) -> None:
        if self.local:
            os.makedirs(self.join(sub), mode=0o700, exist_ok=True)
        else:
            self.fs.create_dir(self.join(sub), recursive=True)

    def remove_tree(self, sub: str) -> None:
        if self.exists(sub):
            self.fs.delete_dir(self.join(sub))

    def move(self, src: str, dst: str) -> None:
        self.fs.move(self.join(src), self.join(dst))

    def write_atomic(self, name: str, data: bytes, fsync: bool = True) -> None:
        folder, _, base = name.rpartition("/")
        tmp = (
            f"{folder}/.tmp-{base}-{uuid.uuid4().hex[:8]}"
            if folder
            else f".tmp-{base}-{uuid.uuid4().hex[:8]}"
        )
        final, tmp = self.join(name), self.join(tmp)
        if self.local:
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            with os.fdopen(fd, "wb") as fh:
                fh.write(data)
                if fsync:
                    fh.flush()
                    os.fsync(fh.fileno())
            os.replace(tmp, final)
        else:  # object stores publish whole objects; move is the best rename there is
            with self.fs.open_output_stream(tmp) as fh:
                fh.write(data)
            self.fs.move(tmp, final)

    def read_text(self, name: str) -> str | None:
        if name not in self.names():
            return None
        with self.fs.open_input_stream(self.join(name)) as fh:
            return fh.read().decode("utf-8")

    def remove_stale_tmp(self) -> int:
        stale = [n for n in self.names() if n.startswith(".tmp-")]
        for n in stale:
            self.fs.delete_file(self.join(n))
        return len(stale)


def _part_bytes(
    rows: list[dict], keep_text: bool, meta: bytes, keep: tuple[str, ...] = ()
) -> bytes:
    import pyarrow.parquet as pq

    schema = output_schema(keep, keep_text)
    table = pa.Table.from_pylist(rows, schema=schema).replace_schema_metadata(
        {PROVENANCE_KEY: meta}
    )
    sink = pa.BufferOutputStream()
    pq.write_table(table, sink)
    return sink.getvalue().to_pybytes()


def read_output(output: str, columns: list[str] | None = None) -> pa.Table:
    """All part files of an output directory as one table."""
    import pyarrow.parquet as pq

    out = Output(output)
    parts = [n for n in out.names() if n.startswith("part-") and n.endswith(".parquet")]
    tables = []
    for n in parts:
        with out.fs.open_input_file(out.join(n)) as fh:
            tables.append(pq.read_table(fh, columns=columns))
    if not tables:
        return OUTPUT_SCHEMA.empty_table()
    return pa.concat_tables(tables, promote_options="default")


def progress_counter() -> Any:
    """A zero-CPU actor the scorer actors add their scored rows to, so the driver's progress
    moves while a chunk is still being scored (rows reach the driver a whole chunk at a time).
    It lives on the driver's node, so losing another node does not lose it; every call to it is
    one the job can do without (`_Progress._poll`, `prepare.report_seen`, `job.run_scoring`)."""
    import ray
    from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

    @ray.remote(num_cpus=0)
    class Counter:
        def __init__(self) -> None:
            self.n = 0
            self.seen: dict[str, int] = {}

        def add(self, n: int) -> None:
            self.n += n

        def get(self) -> int:
            return self.n

        def note(self, counts: dict[str, int]) -> None:
            """Slow paths taken, errors survived (`prepare.SEEN`), summed over the processes."""
            for k, v in counts.items():
                self.seen[k] = self.seen.get(k, 0) + v

        def noted(self) -> dict[str, int]:
            return dict(sorted(self.seen.items()))

    here = NodeAffinitySchedulingStrategy(ray.get_runtime_context().get_node_id(), soft=True)
    return Counter.options(scheduling_strategy=here).remote()


def _console_stage() -> str:
    """What the running console's heartbeat says the job is doing ("" without a console)."""
    con = console._current
    return con.stage if con is not None else ""


class _Progress:
    """`[score] rows/total, parts, notes/s, ETA` on the console when the rows scored (from the
    actors' counter, polled every `every` seconds) or the parts written have changed, at most
    every `every` seconds; never the same figures twice (the console's heartbeat covers a
    silence, and says the last figures: `console.stage`)."""

    def __init__(self, total: int, parts: int, counter: Any = None, every: float = 5.0):
        self.total, self.parts_total, self.every = total, parts, every
        self.counter = counter
        self.done = self.scored = self.parts = self.poll_failures = 0
        self.t0 = self.shown = time.monotonic()
        self.said = (0, 0)  # (rows, parts) of the last line
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._stage = _console_stage()
        if counter is not None:
            threading.Thread(target=self._poll, daemon=True, name="score-progress").start()

    def _poll(self) -> None:
        import ray

        while not self._stop.wait(self.every):
            try:
                self.scored = int(ray.get(self.counter.get.remote(), timeout=self.every))
            except Exception:  # a slow or lost counter: the figures lag, the job goes on
                self.poll_failures += 1
                continue
            self.show()

    def rows(self, n: int) -> None:
        self.done += n
        self.show()

    def part(self) -> None:
        self.parts += 1
        self.show()

    def close(self) -> None:
        self._stop.set()
        if self.poll_failures:
            log.warning(
                "the progress counter did not answer %d time(s): the progress figures lagged",
                self.poll_failures,
            )
        self.show(final=True)
        console.stage(self._stage, phase=False)

    def figures(self) -> tuple[int, int]:
        return max(self.done, min(self.scored, self.total)), self.parts

    def show(self, final: bool = False) -> None:
        with self._lock:
            now = time.monotonic()
            done, parts = self.figures()
            if (done, parts) == self.said or (not final and now - self.shown < self.every):
                return  # unchanged, or too soon: the next poll says it
            self.shown, self.said = now, (done, parts)
            rate = done / max(now - self.t0, 1e-9)
            eta = (self.total - done) / rate if rate > 0 else float("nan")
            eta_s = f", eta {eta:,.0f}s" if rate > 0 and not final else ""
            line = f"{done:,}/{self.total:,} rows scored, {parts}/{self.parts_total} parts written"
            console.stage(f"{self._stage}: {line}" if self._stage else line, phase=False)
            log.info("%s, %.1f notes/s%s", line, rate, eta_s)


def failed_rows(out: Output, done: set[str]) -> dict[str, list[int]]:
    """part -> positions of its rows whose status is `failed` (parts without any are left out)."""
    import pyarrow.parquet as pq

    found: dict[str, list[int]] = {}
    for part in sorted(done):
        with out.fs.open_input_file(out.join(f"{part}.parquet")) as fh:
            status = pq.read_table(fh, columns=["status"]).column("status").to_pylist()
        if positions := [k for k, s in enumerate(status) if s == "failed"]:
            found[part] = positions
    return found


def _merge_retried(out: Output, part: str, rows: list[dict], cols: list[str]) -> list[dict]:
    """The part's earlier rows with the re-scored ones in their places (same order, same count)."""
    import pyarrow.parquet as pq

    with out.fs.open_input_file(out.join(f"{part}.parquet")) as fh:
        old = pq.read_table(fh).to_pylist()
    if len(old) != len(rows):
        raise ScoreError(f"{part}: input rows changed since the first run; use a new --output")
    return [{k: o.get(k) for k in cols} if r["status"] == KEPT else r for o, r in zip(old, rows)]


def _output_row(r: dict, keep: tuple[str, ...], keep_text: bool) -> dict:
    row = {k: r[k] for k in OUTPUT_SCHEMA.names}
    if keep:
        values = json.loads(r["_keep"]) if r.get("_keep") else [None] * len(keep)
        row.update(zip(keep, values))
    if keep_text:
        row["note"] = r.get("note")
    return row


def collect(
    ds: Any,
    todo: list[Chunk],
    out: Output,
    keep_text: bool,
    meta: bytes,
    retry: dict[str, list[int]] | None = None,
    counter: Any = None,
    keep: tuple[str, ...] = (),
) -> int:
    """Stream scored rows to the driver; write each chunk once all its rows have arrived."""
    expected = {ch.part: ch.count for ch in todo}
    pending: dict[str, list[dict]] = {}
    cols = output_schema(keep, keep_text).names
    written = 0
    progress = _Progress(sum(expected.values()), len(expected), counter)
    try:
        # prefetch_batches=0: with Ray Data's default (1) a chunk's rows are handed over only
        # once the next chunk has arrived, so every part was written one chunk late (measured:
        # 2.7 s after its scorer call ended, against 0.15 s now).
        for batch in ds.iter_batches(batch_size=None, batch_format="pyarrow", prefetch_batches=0):
            progress.rows(batch.num_rows)
            for row in batch.to_pylist():
                pending.setdefault(row["_part"], []).append(row)
            for part in [p for p, rows in pending.items() if len(rows) == expected[p]]:
                rows = sorted(pending.pop(part), key=lambda r: r["_row"])
                rows = [_output_row(r, keep, keep_text) for r in rows if r["status"] != "blank"]
                if retry and part in retry:
                    rows = _merge_retried(out, part, rows, cols)
                    written += len(retry[part])
                else:
                    written += len(rows)
                out.write_atomic(f"{part}.parquet", _part_bytes(rows, keep_text, meta, keep))
                progress.part()
    finally:
        progress.close()
    if pending:  # cannot happen unless a stage dropped rows; never write a partial chunk
        raise ScoreError(f"{len(pending)} chunk(s) incomplete after scoring; re-run to finish")
    return written
