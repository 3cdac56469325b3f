"""Plan (driver): expand files/folders/globs on any filesystem and cut them into resumable chunks."""

from __future__ import annotations

import hashlib
import os
import re
from dataclasses import dataclass
from typing import Any

import pyarrow as pa

from discriminator.data import JSONL_SUFFIXES, PARQUET_SUFFIXES
from discriminator.scoring.schema import ScoreError


def _filesystem(uri: str) -> tuple[Any, str, str]:
    """(pyarrow filesystem, path inside it, prefix that turns a path back into a URI)."""
    import pyarrow.fs as pafs

    if "://" not in uri:
        return pafs.LocalFileSystem(), os.path.abspath(uri), ""
    scheme = uri.split("://", 1)[0]
    try:
        fs, path = pafs.FileSystem.from_uri(uri)
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError, ValueError):
        import fsspec  # any fsspec filesystem (gcsfs, adlfs, ...) through pyarrow's adapter
        from pyarrow.fs import FSSpecHandler, PyFileSystem

        ffs, path = fsspec.core.url_to_fs(uri)
        fs = PyFileSystem(FSSpecHandler(ffs))
    if scheme == "file":
        return fs, path, "file://"
    return fs, path, f"{scheme}://"


def _is_local(fs: Any) -> bool:
    return type(fs).__name__ == "LocalFileSystem"


def _glob_regex(pattern: str) -> re.Pattern[str]:
    out, i = [], 0
    while i < len(pattern):
        if pattern.startswith("**/", i):
            out.append("(?:.*/)?")
            i += 3
        elif pattern.startswith("**", i):
            out.append(".*")
            i += 2
        elif pattern[i] == "*":
            out.append("[^/]*")
            i += 1
        elif pattern[i] == "?":
            out.append("[^/]")
            i += 1
        elif pattern[i] == "[" and "]" in pattern[i + 1 :]:
            j = pattern.index("]", i + 1)
            out.append("[" + pattern[i + 1 : j].replace("!", "^", 1) + "]")
            i = j + 1
        else:
            out.append(re.escape(pattern[i]))
            i += 1
    return re.compile("".join(out) + r"\Z")


def _supported(path: str) -> bool:
    name = path.rsplit("/", 1)[-1]
    return not name.startswith((".", "_")) and name.endswith(JSONL_SUFFIXES + PARQUET_SUFFIXES)


def expand_inputs(specs: list[str]) -> list[str]:
    """Files, folders (their JSONL/parquet files, recursively) and globs -> sorted file URIs."""
    import pyarrow.fs as pafs

    files: list[str] = []
    for spec in specs:
        fs, path, prefix = _filesystem(spec)
        if any(ch in path for ch in "*?["):
            parts = path.split("/")
            k = next(i for i, p in enumerate(parts) if any(ch in p for ch in "*?["))
            base = "/".join(parts[:k]) or "/"
            rx = _glob_regex(path)
            infos = fs.get_file_info(pafs.FileSelector(base, recursive=True, allow_not_found=True))
            found = sorted(
                i.path for i in infos if i.type == pafs.FileType.File and rx.match(i.path)
            )
            found = [p for p in found if _supported(p)]
            if not found:
                raise ScoreError(f"no JSONL/parquet files match {spec}")
            files += [prefix + p for p in found]
            continue
        info = fs.get_file_info(path)
        if info.type == pafs.FileType.Directory:
            infos = fs.get_file_info(pafs.FileSelector(path, recursive=True))
            found = sorted(i.path for i in infos if i.type == pafs.FileType.File)
            found = [p for p in found if _supported(p)]
            if not found:
                raise ScoreError(f"no JSONL/parquet files in folder {spec}")
            files += [prefix + p for p in found]
        elif info.type == pafs.FileType.File:
            if not path.endswith(JSONL_SUFFIXES + PARQUET_SUFFIXES):
                raise ScoreError(f"unsupported file type: {spec} (JSONL or parquet)")
            files.append(prefix + path)
        else:
            raise ScoreError(f"input not found: {spec}")
    seen: set[str] = set()
    return [f for f in files if not (f in seen or seen.add(f))]


@dataclass(frozen=True)
class Chunk:
    """A resumable unit of input: lines [first, first + count) of one file."""

    uri: str
    kind: str  # jsonl | parquet
    first: int  # 1-based first line / row
    count: int  # physical lines (blank ones included) or parquet rows
    byte_start: int = 0  # jsonl only
    byte_end: int = 0

    @property
    def part(self) -> str:
        key = f"{self.uri}|{self.first}|{self.count}".encode()
        return f"part-{hashlib.sha256(key).hexdigest()[:20]}"


def _index_jsonl(fs: Any, path: str, chunk_rows: int) -> list[tuple[int, int, int, int]]:
    """(first line, lines, byte start, byte end) per chunk, from one streaming pass."""
    cuts = [0]
    lines = pos = 0
    next_cut = chunk_rows
    last = b"\n"
    with fs.open_input_stream(path) as fh:
        while True:
            block = fh.read(1 << 22)
            if not block:
                break
            n = block.count(b"\n")
            if lines + n < next_cut:
                lines += n
            else:
                i = -1
                for _ in range(n):
                    i = block.find(b"\n", i + 1)
                    lines += 1
                    if lines == next_cut:
                        cuts.append(pos + i + 1)
                        next_cut += chunk_rows
            pos += len(block)
            last = block[-1:]
    if last != b"\n":
        lines += 1  # last line without a newline
    if cuts[-1] == pos and len(cuts) > 1:
        cuts.pop()
    out = []
    for k, start in enumerate(cuts):
        end = cuts[k + 1] if k + 1 < len(cuts) else pos
        count = chunk_rows if k + 1 < len(cuts) else lines - k * chunk_rows
        if count > 0:
            out.append((k * chunk_rows + 1, count, start, end))
    return out


def plan_chunks(files: list[str], chunk_rows: int) -> list[Chunk]:
    import pyarrow.parquet as pq

    chunks: list[Chunk] = []
    for uri in files:
        fs, path, _ = _filesystem(uri)
        if path.endswith(PARQUET_SUFFIXES):
            try:
                with fs.open_input_file(path) as fh:
                    n = pq.ParquetFile(fh).metadata.num_rows
            except Exception as e:
                raise ScoreError(f"cannot read parquet {uri}: {type(e).__name__}") from None
            chunks += [
                Chunk(uri, "parquet", s + 1, min(chunk_rows, n - s))
                for s in range(0, n, chunk_rows)
            ]
        else:
            chunks += [Chunk(uri, "jsonl", *c) for c in _index_jsonl(fs, path, chunk_rows)]
    return chunks
