"""Plan (driver): inputs -> a record of each file (size, time, fingerprint, chunks) -> chunks.

Every input file is recorded in the manifest (`entry`): its path relative to its input root
(`source`), size, modification time, SHA-256 of its bytes, record count, and its chunks. A re-run
compares the files it finds with that record (`reconcile`): a file whose size and time are
unchanged is taken as it was (no re-read); otherwise its content decides whether it is the same
(touched only), grown (uncompressed JSONL/CSV/TSV whose recorded bytes are unchanged, rows
appended: new chunks follow the old ones) or changed. Chunks are never re-cut, so a part file
always holds the same rows. A new output's chunks hold `io.chunk_rows` records, or fewer when
that would leave scorer actors without a chunk (`chunk_rows_for`); the manifest records the size
used, and later runs into the output (resume, update, retry) cut new files and rows with it.

How a chunk is read (`layout`):
  - `bytes`: plain JSONL/CSV/TSV: the chunk's byte range, found in the planning pass (`Scanner`);
  - `rows`: parquet whose row groups are at most a chunk: the row groups the chunk touches;
  - `staged`: gzip/zstd files and parquet with larger row groups cannot be read a chunk at a
    time; one streaming pass writes each chunk as a piece under `<output>/_staging/` (lz4 bytes,
    or a small parquet file) that a task then reads alone. Memory stays bounded by a chunk;
    staging is removed when the output is complete and made again if a re-run needs it.
"""

from __future__ import annotations

import hashlib
import logging
import time
from dataclasses import dataclass
from typing import Any

import pyarrow as pa

from discriminator.scoring.schema import ScoreError
from discriminator.sources import (
    BLOCK,
    PARQUET,
    InputFile,
    Scanner,
    SourceError,
    file_sha256,
    filesystem,
)

log = logging.getLogger(__name__)

STAGING = "_staging"

__all__ = [
    "MIN_CHUNK_ROWS",
    "STAGING",
    "Chunk",
    "InputFile",
    "chunk_rows_for",
    "chunks_of",
    "expand_inputs",
    "file_sha256",
    "filesystem",
    "plan_chunks",
    "plan_inputs",
    "reconcile",
    "stage",
]


# The fewest rows a re-cut for idle actors gives a chunk (`chunk_rows_for`): below it a chunk's
# task and part file cost more than another actor saves.
MIN_CHUNK_ROWS = 16


def chunk_rows_for(records: int, chunks: int, actors: int, chunk_rows: int) -> int:
    """The chunk size for a new output: `chunk_rows` (`io.chunk_rows`, the most), or finer when
    the inputs cut that way give fewer chunks than there are scorer actors: records shared
    evenly by the actors (ceil(records / actors)), or by as many as get `MIN_CHUNK_ROWS` rows
    each. Such a cut gives at most files + actors chunks (a file's last chunk may be short), so
    it never makes thousands."""
    want = min(actors, max(1, records // MIN_CHUNK_ROWS))
    if want <= chunks or records <= 0:
        return chunk_rows
    return min(chunk_rows, -(-records // want))


def expand_inputs(specs: list[str]) -> list[InputFile]:
    """`sources.expand_inputs`, its errors as `ScoreError` (one line for the user)."""
    from discriminator import sources

    try:
        return sources.expand_inputs(specs)
    except SourceError as e:
        raise ScoreError(str(e)) from None


@dataclass(frozen=True)
class Chunk:
    """A resumable unit of input: records [first, first + count) of one file."""

    uri: str
    kind: str  # jsonl | csv | tsv | parquet
    first: int  # 1-based first record (line for JSONL)
    count: int  # records (blank lines included)
    byte_start: int = 0  # text formats: offsets in the (decompressed) file
    byte_end: int = 0
    source: str = ""  # the file's path relative to its input root
    staged: str = ""  # URI of the staged piece, when the file is read through staging
    header: tuple[str, ...] = ()  # CSV/TSV column names

    @property
    def part(self) -> str:
        key = f"{self.source or self.uri}|{self.first}|{self.count}".encode()
        return f"part-{hashlib.sha256(key).hexdigest()[:20]}"


class _Hashing:
    """A read-only file object that hashes what is read through it (compressed bytes)."""

    def __init__(self, fh: Any):
        self.fh, self.sha, self.n, self.closed = fh, hashlib.sha256(), 0, False

    def read(self, n: int = -1) -> bytes:
        data = self.fh.read(n) if n is not None and n >= 0 else self.fh.read()
        self.sha.update(data)
        self.n += len(data)
        return data

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return False

    def writable(self) -> bool:
        return False

    def close(self) -> None:
        self.closed = True


class _Said:
    """A `[score]` line every 10 s while a long file is read."""

    def __init__(self, what: str):
        self.what, self.t0 = what, time.monotonic()
        self.shown = self.t0

    def __call__(self, nbytes: int, rows: int) -> None:
        now = time.monotonic()
        if now - self.shown >= 10:
            self.shown = now
            log.info(
                "%s: %.2f GB, %s rows read (%.0fs)",
                self.what,
                nbytes / 1e9,
                f"{rows:,}",
                now - self.t0,
            )


def _stat(f: InputFile) -> tuple[int, int]:
    fs, path, _ = filesystem(f.uri)
    info = fs.get_file_info(path)
    mtime = info.mtime_ns if info.mtime_ns is not None else 0
    return int(info.size or 0), int(mtime)


def _parquet_layout(f: InputFile, chunk_rows: int) -> tuple[int, str, list[str]]:
    import pyarrow.parquet as pq

    fs, path, _ = filesystem(f.uri)
    try:
        with fs.open_input_file(path) as fh:
            pf = pq.ParquetFile(fh)
            meta, names = pf.metadata, pf.schema_arrow.names
    except Exception as e:
        raise ScoreError(f"cannot read parquet {f}: {type(e).__name__}") from None
    groups = [meta.row_group(g).num_rows for g in range(meta.num_row_groups)]
    layout = "rows" if max(groups, default=0) <= chunk_rows else "staged"
    return meta.num_rows, layout, names


def _piece_dir(entry: dict) -> str:
    """A staged file's folder, named by its path, size and time (known before it is read, so
    pieces go straight to their place; a file that changes gets another folder)."""
    key = f"{entry['source']}|{entry['size']}|{entry['mtime_ns']}"
    return f"{STAGING}/{hashlib.sha256(key.encode()).hexdigest()[:20]}"


def _piece_name(entry: dict, first: int) -> str:
    return f"{first:012d}.{'parquet' if entry['format'] == PARQUET else 'lz4'}"


def _scan_text(
    f: InputFile,
    chunk_rows: int,
    out: Any,
    entry: dict | None = None,
) -> dict:
    """One streaming pass over a JSONL/CSV/TSV file: fingerprint, records, chunks; a compressed
    file also writes its pieces to staging. `entry`: continue a grown file after its recorded
    bytes (verified by their fingerprint)."""
    fs, path, _ = filesystem(f.uri)
    size, mtime = _stat(f)
    staged = f.compression is not None
    folder = _piece_dir({"source": f.rel, "size": size, "mtime_ns": mtime})
    if staged:
        out.makedirs(folder)
    said = _Said(f"{'staging' if staged else 'reading'} {f.rel}")
    old_chunks = [list(c) for c in entry["chunks"]] if entry else []
    with fs.open_input_stream(path, compression=None) as raw:
        pos, first, header = 0, 1, None
        hashing = _Hashing(raw)
        if entry is not None:  # the recorded prefix, then what follows it
            left = entry["size"]
            while left > 0 and (block := hashing.read(min(BLOCK, left))):
                left -= len(block)
            if hashing.sha.copy().hexdigest() != entry["sha256"]:
                raise _Changed(f"its first {entry['size']:,} bytes differ from the last run")
            pos, first, header = entry["size"], entry["records"] + 1, entry.get("header")
            if entry.get("tail_open"):  # the last recorded line had no newline: it must end here
                nxt = hashing.read(1)
                if nxt == b"\r":
                    nxt = hashing.read(1)
                    pos += 1
                if nxt != b"\n":
                    raise _Changed("its last recorded line was extended")
                pos += 1
        stream = (
            pa.CompressedInputStream(pa.PythonFile(hashing, mode="r"), f.compression)
            if staged
            else hashing
        )
        scanner = Scanner(f.format, chunk_rows, pos=pos, first=first, keep=staged, header=header)
        chunks: list[list[int]] = []

        def take(got: list) -> None:
            for c_first, count, start, end, data in got:
                chunks.append([c_first, count, start, end])
                if data is not None:
                    pending.append((c_first, data))

        pending: list[tuple[int, bytes]] = []
        while block := stream.read(BLOCK):
            take(scanner.feed(block))
            if pending:
                _write_pieces(out, folder, pending)
            said(hashing.n, scanner.records)
        take(scanner.finish())
        if pending:
            _write_pieces(out, folder, pending)
    sha = hashing.sha.hexdigest()
    if staged and hashing.n != size:
        raise ScoreError(f"{f.rel} changed while it was read; re-run")
    return {
        "source": f.rel,
        "uri": f.uri,
        "format": f.format,
        "compression": f.compression,
        "size": hashing.n,  # the bytes fingerprinted (a growing file: what was read)
        "mtime_ns": mtime,
        "sha256": sha,
        "records": scanner.records,
        "tail_open": scanner.tail_open,
        "header": scanner.header,
        "layout": "staged" if staged else "bytes",
        "chunks": old_chunks + chunks,
    }


class _Changed(Exception):
    """A recorded file whose content is not what the last run read."""


def _write_pieces(out: Any, folder: str, pending: list[tuple[int, bytes]]) -> None:
    for c_first, data in pending:
        name = f"{folder}/{c_first:012d}.lz4"
        out.write_atomic(name, pa.compress(data, codec="lz4", asbytes=True), fsync=False)
    pending.clear()


def plan_file(f: InputFile, chunk_rows: int, out: Any) -> dict:
    """A new file's record: fingerprint and chunks (compressed files: staged in the same pass)."""
    if f.format != PARQUET:
        return _scan_text(f, chunk_rows, out)
    size, mtime = _stat(f)
    rows, layout, names = _parquet_layout(f, chunk_rows)
    return {
        "source": f.rel,
        "uri": f.uri,
        "format": PARQUET,
        "compression": None,
        "size": size,
        "mtime_ns": mtime,
        "sha256": file_sha256(f.uri),
        "records": rows,
        "tail_open": False,
        "header": names,
        "layout": layout,
        "chunks": [[s + 1, min(chunk_rows, rows - s), 0, 0] for s in range(0, rows, chunk_rows)],
    }


def reconcile(
    files: list[InputFile],
    previous: list[dict] | None,
    chunk_rows: int,
    out: Any,
    update: bool,
    where: str,
) -> tuple[list[dict], dict[str, int]]:
    """The record of every input file for this run, checked against the last run's.

    Returns (entries in input order, what changed: counts of added/grown files and new chunks).
    Stops (ScoreError, one line per difference and the way out) when the inputs differ from the
    last run's and `update` is off, or when a recorded file was changed in place or removed."""
    old = {e["source"]: e for e in previous or []}
    entries: list[dict] = []
    diffs: list[tuple[str, str]] = []  # (kind, line)
    news = {"added": 0, "grown": 0}
    for f in files:
        e = old.pop(f.rel, None)
        if e is None:
            if previous is not None and not update:
                diffs.append(("added", f"added: {f.rel} (not in the last run)"))
                continue
            entries.append(plan_file(f, chunk_rows, out))
            news["added"] += previous is not None
            continue
        size, mtime = _stat(f)
        if size == e["size"] and mtime == e["mtime_ns"]:
            entries.append({**e, "uri": f.uri})
            continue
        appendable = e["format"] != PARQUET and not e.get("compression")
        if size > e["size"] and appendable:
            try:
                grown = _scan_text(f, chunk_rows, out, entry=e)
            except _Changed as why:
                diffs.append(("changed", f"changed: {f.rel} ({why})"))
                continue
            if not update:
                more = grown["records"] - e["records"]
                diffs.append(("grown", f"grown: {f.rel} ({more:,} row(s) appended)"))
                continue
            entries.append(grown)
            news["grown"] += 1
            continue
        if size == e["size"] and file_sha256(f.uri) == e["sha256"]:  # touched, not changed
            entries.append({**e, "uri": f.uri, "mtime_ns": mtime})
            continue
        how = (
            "shorter than in the last run"
            if size < e["size"]
            else "its bytes differ from the last run"
            if size == e["size"] or appendable
            else "a compressed or parquet file can only be scored again whole"
        )
        diffs.append(("changed", f"changed: {f.rel} ({how})"))
    for rel in old:
        diffs.append(("removed", f"removed: {rel} (scored in the last run, not found now)"))
    refused = [line for kind, line in diffs if kind in ("changed", "removed")]
    if refused:
        raise ScoreError(
            f"the inputs differ from the last run into {where}:\n"
            + "\n".join(f"  {line}" for line in (refused if update else [x for _, x in diffs]))
            + "\n  a file changed in place or removed cannot be scored again into this output: "
            "restore it, or score into a new --output"
        )
    if diffs:
        raise ScoreError(
            f"the inputs differ from the last run into {where}:\n"
            + "\n".join(f"  {line}" for _, line in diffs)
            + "\n  re-run with --update to score the new files and appended rows into it"
        )
    return entries, news


def plan_inputs(
    files: list[InputFile],
    previous: list[dict] | None,
    chunk_rows: int,
    out: Any,
    update: bool,
    where: str,
    actors: int | None = None,
) -> tuple[list[dict], dict[str, int], int]:
    """`reconcile` the inputs with the last run's record; returns (entries, news, the chunk size
    used). `chunk_rows`: the size the output was cut with (a new output: `io.chunk_rows`). A new
    output (`previous` None) whose files give fewer chunks than `actors` is planned again with
    the finer size of `chunk_rows_for`."""
    if previous is None:
        out.remove_tree(STAGING)  # pieces of a run stopped while planning: cut anew
    entries, news = reconcile(files, previous, chunk_rows, out, update, where)
    if previous is not None or not actors:
        return entries, news, chunk_rows
    records = sum(e["records"] for e in entries)
    n_chunks = sum(len(e["chunks"]) for e in entries)
    finer = chunk_rows_for(records, n_chunks, actors, chunk_rows)
    if finer == chunk_rows:
        return entries, news, chunk_rows
    log.info(
        "%s row(s) make %d chunk(s) of io.chunk_rows=%d for %d scorer actors: "
        "cut into chunks of %d rows so that every actor has work",
        f"{records:,}",
        n_chunks,
        chunk_rows,
        actors,
        finer,
    )
    out.remove_tree(STAGING)
    entries, news = reconcile(files, None, finer, out, update, where)
    return entries, news, finer


def chunks_of(entries: list[dict], out: Any) -> list[Chunk]:
    chunks: list[Chunk] = []
    for e in entries:
        folder = _piece_dir(e) if e["layout"] == "staged" else ""
        header = tuple(e.get("header") or ()) if e["format"] != PARQUET else ()
        for first, count, start, end in e["chunks"]:
            staged = out.uri_of(f"{folder}/{_piece_name(e, first)}") if folder else ""
            chunks.append(
                Chunk(e["uri"], e["format"], first, count, start, end, e["source"], staged, header)
            )
    return chunks


def stage(
    entry: dict, chunks: list[Chunk], out: Any, columns: list[str] | None, chunk_rows: int
) -> int:
    """Write the staged pieces that `chunks` need and that are missing; returns pieces written.
    The file is read once, streaming; its fingerprint must still be the recorded one."""
    folder = _piece_dir(entry)
    want = {c.first for c in chunks if c.source == entry["source"]}
    have = {n.split(".", 1)[0] for n in out.names(folder)}
    missing = sorted(f for f in want if f"{f:012d}" not in have)
    if not missing:
        return 0
    f = InputFile(entry["uri"], entry["source"], "", entry["format"], entry.get("compression"))
    log.info("staging %s (%d chunk(s))", entry["source"], len(missing))
    out.makedirs(folder)
    if entry["format"] != PARQUET:
        fresh = _scan_text(f, chunk_rows, out)  # every piece again: one pass either way
        if fresh["sha256"] != entry["sha256"]:
            raise ScoreError(f"{entry['source']} changed since it was planned; re-run")
        if [c[:2] for c in fresh["chunks"]] != [c[:2] for c in entry["chunks"]]:
            raise ScoreError(
                f"{entry['source']}: its pieces were cut differently from its recorded chunks; "
                "score into a new --output"
            )
        return len(missing)
    import pyarrow.parquet as pq

    if file_sha256(f.uri) != entry["sha256"]:
        raise ScoreError(f"{entry['source']} changed since it was planned; re-run")
    fs, path, _ = filesystem(f.uri)
    by_first = {c[0]: c[1] for c in entry["chunks"]}
    todo, written, row = set(missing), 0, 1
    buf: list[pa.RecordBatch] = []
    n_buf = 0
    said = _Said(f"staging {entry['source']}")
    with fs.open_input_file(path) as fh:
        pf = pq.ParquetFile(fh, pre_buffer=False, buffer_size=1 << 20)
        names = pf.schema_arrow.names
        cols = names if columns is None else [c for c in columns if c in names]
        for batch in pf.iter_batches(batch_size=min(chunk_rows, 8192), columns=cols):
            buf.append(batch)
            n_buf += batch.num_rows
            while row in by_first and n_buf >= by_first[row]:
                count = by_first[row]
                table = pa.Table.from_batches(buf, schema=batch.schema)
                head, rest = table.slice(0, count), table.slice(count)
                if row in todo:
                    sink = pa.BufferOutputStream()
                    pq.write_table(head, sink, compression="lz4")
                    out.write_atomic(
                        f"{folder}/{row:012d}.parquet", sink.getvalue().to_pybytes(), fsync=False
                    )
                    written += 1
                buf, n_buf = rest.combine_chunks().to_batches(), rest.num_rows
                row += count
                said(0, row - 1)
    return written


def plan_chunks(
    files: list[InputFile] | list[str], chunk_rows: int, out: Any = None
) -> list[Chunk]:
    """Chunks of files planned from scratch (no manifest; tools and tests). Staged files need
    `out` (where their pieces go)."""
    if files and isinstance(files[0], str):
        files = expand_inputs(list(files))  # type: ignore[arg-type]
    if out is None:  # where staged pieces of compressed files go
        import tempfile

        from discriminator.scoring.write import Output

        out = Output(tempfile.mkdtemp(prefix="plan-"))
    entries = [plan_file(f, chunk_rows, out) for f in files]  # type: ignore[arg-type]
    chunks = chunks_of(entries, out)
    for e in entries:
        if e["layout"] == "staged":
            stage(e, chunks, out, None, chunk_rows)
    return chunks
