"""Where notes come from: input files, their formats, record boundaries and record parsing.

Filesystems, inputs (files, folders, globs) named relative to their root, file formats (JSONL,
CSV, TSV, parquet; gzip/zstd), record boundaries and record parsing.

Scoring (`discriminator.scoring`) and the training/validation reader (`discriminator.data`) share
this module, so a file reads the same way everywhere and a derived id (`2019/notes.jsonl:5`)
means the same row in the scores and in the labels.

Records and their numbers
  - JSONL: one record per physical line; its number is the line (blank lines are numbered but
    are not rows). A UTF-8 byte-order mark on line 1 is ignored.
  - CSV/TSV: a header row, then one record per row; its number is the row after the header
    (1 = the first data row). Fields may be quoted (RFC 4180: `"a ""quoted"" word"`) and a quoted
    field may span lines; CRLF line ends and a byte-order mark are accepted. Values are text.
  - parquet: one record per row, numbered from 1.

Boundaries are found without parsing (`Scanner`: newlines, and for CSV/TSV newlines outside
quotes, found with numpy a block at a time), so a file is cut into chunks in one streaming pass.
"""

from __future__ import annotations

import csv
import io
import json
import os
import posixpath
import re
import sys
from dataclasses import dataclass
from typing import Any

import numpy as np
import pyarrow as pa

JSONL, CSV, TSV, PARQUET = "jsonl", "csv", "tsv", "parquet"
FORMAT_SUFFIXES = {
    ".jsonl": JSONL,
    ".json": JSONL,
    ".ndjson": JSONL,
    ".csv": CSV,
    ".tsv": TSV,
    ".parquet": PARQUET,
    ".pq": PARQUET,
}
COMPRESSION_SUFFIXES = {".gz": "gzip", ".zst": "zstd", ".zstd": "zstd"}
DELIMITERS = {CSV: ",", TSV: "\t"}
SUPPORTED = "JSONL, CSV or TSV (plain, .gz or .zst) or parquet"
BLOCK = 1 << 22
MAX_HEADER_BYTES = 1 << 20

BLANK = "<blank line>"  # a blank line is numbered but is not a row (JSON `null` is one)

csv.field_size_limit(min(sys.maxsize, 2**31 - 1))  # a note may be far over csv's 128 kB default


def note_suffixes() -> list[str]:
    """Every file-name ending the readers take as notes: each `FORMAT_SUFFIXES` suffix, plain and
    with each `COMPRESSION_SUFFIXES` suffix (compressed parquet too, which `file_kind` refuses:
    harmless where the list is used to keep notes out)."""
    return [fmt + comp for fmt in FORMAT_SUFFIXES for comp in ("", *COMPRESSION_SUFFIXES)]


def note_file_patterns() -> list[str]:
    """Glob patterns for every file name the readers take as notes (`note_suffixes`), e.g.
    `*.[cC][sS][vV].[gG][zZ]`.

    The patterns are gitwildmatch (what Ray's `excludes`, `.gitignore` and `.rayignore` read),
    which is case-sensitive, while `file_kind` matches suffixes case-blind: every letter is a
    `[xX]` class so `NOTES.CSV` and `notes.Csv` match too. `cluster/runtime-env.yaml` excludes
    them (`discriminator runtime-env`), so a note file never travels with a job's upload."""

    def any_case(suffix: str) -> str:
        return "".join(f"[{c.lower()}{c.upper()}]" if c.isalpha() else c for c in suffix)

    return [f"*{any_case(suffix)}" for suffix in note_suffixes()]


class SourceError(ValueError):
    """An input that cannot be listed or read (not found, unsupported, ambiguous names)."""


def file_kind(name: str) -> tuple[str, str | None] | None:
    """(format, compression or None) from a file name, or None when unsupported."""
    low = name.lower()
    compression = None
    for suffix, codec in COMPRESSION_SUFFIXES.items():
        if low.endswith(suffix):
            compression, low = codec, low[: -len(suffix)]
            break
    for suffix, fmt in FORMAT_SUFFIXES.items():
        if low.endswith(suffix):
            return (fmt, compression) if not (fmt == PARQUET and compression) else None
    return None


def filesystem(uri: str) -> tuple[Any, str, str]:
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
    return fs, path, f"{scheme}://"


def file_sha256(uri: str | os.PathLike) -> str:
    """SHA-256 of a file's bytes (compressed bytes as stored), on any filesystem."""
    import hashlib

    fs, path, _ = filesystem(str(uri))
    sha = hashlib.sha256()
    with fs.open_input_stream(path, compression=None) as fh:
        while block := fh.read(BLOCK):
            sha.update(block)
    return sha.hexdigest()


def is_local(fs: Any) -> bool:
    return type(fs).__name__ == "LocalFileSystem"


def glob_regex(pattern: str) -> re.Pattern[str]:
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


def listed(path: str) -> bool:
    """Whether a file found in a folder or by a glob is an input (hidden and `_` files are not)."""
    name = path.rsplit("/", 1)[-1]
    return not name.startswith((".", "_")) and file_kind(name) is not None


@dataclass(frozen=True)
class InputFile:
    """One input file: its URI, the root it was found under and its path relative to that root
    (`2019/notes.jsonl` under the folder given; a file given by name: its name)."""

    uri: str
    rel: str
    root: str
    format: str
    compression: str | None = None
    display: str = ""  # the path as the user wrote it (messages)

    def __str__(self) -> str:
        return self.display or self.uri


def expand_inputs(specs: list[str]) -> list[InputFile]:
    """Files, folders (their supported files, recursively) and globs -> input files, sorted
    within each spec. Two files that would get the same relative name are refused."""
    import pyarrow.fs as pafs

    files: list[InputFile] = []
    for spec in specs:
        fs, path, prefix = filesystem(spec)
        given = spec.rstrip("/") if "://" not in spec else ""
        if any(ch in path for ch in "*?["):
            parts = path.split("/")
            k = next(i for i, p in enumerate(parts) if any(ch in p for ch in "*?["))
            root = "/".join(parts[:k]) or "/"
            rx = glob_regex(path)
            infos = fs.get_file_info(pafs.FileSelector(root, recursive=True, allow_not_found=True))
            found = sorted(
                i.path for i in infos if i.type == pafs.FileType.File and rx.match(i.path)
            )
            found = [p for p in found if listed(p)]
            if not found:
                raise SourceError(f"no {SUPPORTED} files match {spec}")
            gparts = given.split("/")
            given_root = "/".join(
                gparts[: next(i for i, p in enumerate(gparts) if any(c in p for c in "*?["))]
            )
        else:
            info = fs.get_file_info(path)
            if info.type == pafs.FileType.Directory:
                root, given_root = path, given
                infos = fs.get_file_info(pafs.FileSelector(path, recursive=True))
                found = sorted(i.path for i in infos if i.type == pafs.FileType.File)
                found = [p for p in found if listed(p)]
                if not found:
                    raise SourceError(f"no {SUPPORTED} files in folder {spec}")
            elif info.type == pafs.FileType.File:
                if file_kind(path) is None:
                    raise SourceError(f"unsupported file type: {spec} ({SUPPORTED})")
                root, found = posixpath.dirname(path), [path]
                given_root = os.path.dirname(given) if given else ""
            else:
                raise SourceError(f"input not found: {spec}")
        for p in found:
            rel = p[len(root) :].lstrip("/") if p.startswith(root) else posixpath.basename(p)
            fmt, compression = file_kind(p)  # type: ignore[misc]
            display = os.path.join(given_root, rel) if given else prefix + p
            files.append(InputFile(prefix + p, rel, prefix + root, fmt, compression, display))
    # One entry per real file (symlink loops, a file given twice): the one with the shortest
    # name, so a folder that links back to its root names its files as the root does.
    best: dict[str, InputFile] = {}
    for f in files:
        key = os.path.realpath(f.uri) if "://" not in f.uri else f.uri
        cur = best.get(key)
        if cur is None or (f.rel.count("/"), f.rel) < (cur.rel.count("/"), cur.rel):
            best[key] = f
    kept = {id(f) for f in best.values()}
    unique: list[InputFile] = []
    by_rel: dict[str, InputFile] = {}
    for f in files:
        if id(f) not in kept:
            continue
        if (other := by_rel.get(f.rel)) is not None:
            raise SourceError(
                f"{other} and {f} would both be named {f.rel} in note ids and the manifest; "
                "give the folder that holds both (or a glob under it) instead"
            )
        by_rel[f.rel] = f
        unique.append(f)
    return unique


def open_stream(uri: str, compression: str | None) -> Any:
    """A readable (decompressed) stream of a file."""
    fs, path, _ = filesystem(uri)
    return fs.open_input_stream(path, compression=compression)


def derive_note_id(source: str, line: int) -> str:
    """The id of a row without one: the file's path relative to its input root, and its record
    number (`2019/notes.jsonl:5`)."""
    return f"{source}:{line}"


# ---------------------------------------------------------------------------------------------
# Boundaries


class Scanner:
    """Finds record boundaries in a byte stream fed block by block and cuts it into chunks of
    `chunk_rows` records: `(first record, count, byte start, byte end)`, byte offsets counted
    from the start of the (decompressed) stream. CSV/TSV: the header record comes first and is
    not counted; a newline ends a record only outside quotes (quote parity, RFC 4180).

    `keep=True` also hands each chunk's bytes to `feed`'s caller (staging, whole-file reads);
    memory is then bounded by one chunk. A scan can continue a file from `pos`/`first` (the
    appended part of a grown file), with `header` already known."""

    def __init__(
        self,
        fmt: str,
        chunk_rows: int,
        *,
        pos: int = 0,
        first: int = 1,
        keep: bool = False,
        header: list[str] | None = None,
    ):
        self.fmt, self.chunk_rows, self.keep = fmt, chunk_rows, keep
        self.quoted = fmt in DELIMITERS
        self.need_header = self.quoted and header is None
        self.header = header
        self._head = bytearray()
        self.parity = 0
        self.pos = pos  # bytes seen (absolute)
        self.start = pos  # byte start of the chunk being filled
        self.first = first  # record number of its first record
        self.n = 0  # records in it so far
        self.last_end = pos  # byte after the last record terminator
        self.records = first - 1  # records numbered so far
        self.buf = bytearray()
        self.data_start = pos

    def feed(self, block: bytes) -> list[tuple[int, int, int, int, bytes | None]]:
        out: list[tuple[int, int, int, int, bytes | None]] = []
        if not block:
            return out
        a = np.frombuffer(block, dtype=np.uint8)
        nl = np.flatnonzero(a == 10)
        if self.quoted:
            q = np.flatnonzero(a == 34)
            ends = nl[((self.parity + np.searchsorted(q, nl)) & 1) == 0]
            self.parity = (self.parity + len(q)) & 1
        else:
            ends = nl
        off = 0
        if self.need_header:
            if not len(ends):
                self._head += block
                if len(self._head) > MAX_HEADER_BYTES:
                    raise SourceError("no header row found in the first 1 MB")
                self.pos += len(block)
                return out
            e = int(ends[0]) + 1
            self._head += block[:e]
            self.header = parse_header(bytes(self._head), self.fmt)
            self.need_header = False
            ends, off = ends[1:], e
            self.start = self.last_end = self.data_start = self.pos + e
        if len(ends):
            self.last_end = self.pos + int(ends[-1]) + 1
        for j in range(self.chunk_rows - self.n - 1, len(ends), self.chunk_rows):
            e = int(ends[j]) + 1
            data = None
            if self.keep:
                self.buf += block[off:e]
                data, self.buf = bytes(self.buf), bytearray()
            end = self.pos + e
            out.append((self.first, self.chunk_rows, self.start, end, data))
            self.first += self.chunk_rows
            self.start, off = end, e
        self.n = (self.n + len(ends)) % self.chunk_rows
        self.records += len(ends)
        if self.keep:
            self.buf += block[off:]
        self.pos += len(block)
        return out

    def finish(self) -> list[tuple[int, int, int, int, bytes | None]]:
        """The last, partial chunk; a final record without a terminator counts."""
        if self.need_header:  # header only (or empty)
            if self._head.strip():
                self.header = parse_header(bytes(self._head), self.fmt)
            self.start = self.last_end = self.data_start = self.pos
            return []
        if self.pos > self.last_end:
            self.n += 1
            self.records += 1
        if not self.n:
            return []
        data = bytes(self.buf) if self.keep else None
        chunk = (self.first, self.n, self.start, self.pos, data)
        self.first += self.n
        self.n, self.buf = 0, bytearray()
        return [chunk]

    @property
    def tail_open(self) -> bool:
        """The stream ends inside a record (no newline after the last one)."""
        return self.pos > self.last_end


def parse_header(raw: bytes, fmt: str) -> list[str]:
    if raw.startswith(b"\xef\xbb\xbf"):
        raw = raw[3:]
    text = raw.decode("utf-8", "replace")
    rows = list(csv.reader(io.StringIO(text, newline=""), delimiter=DELIMITERS[fmt]))
    names = rows[0] if rows else []
    if not names or not any(n.strip() for n in names):
        raise SourceError("the first row is empty (a header row with column names is needed)")
    return [n.strip() for n in names]


# ---------------------------------------------------------------------------------------------
# Parsing: a chunk's bytes -> (record number, object | BLANK, problem | None) per record


Parsed = list[tuple[int, Any, str | None]]


def parse_jsonl(data: bytes, first: int, count: int) -> Parsed:
    raws = data.split(b"\n")
    if data.endswith(b"\n") or not data:
        raws.pop()
    if len(raws) != count:
        raise SourceError("the file changed while it was read (line count differs)")
    out: Parsed = []
    for k, raw in enumerate(raws):
        line = first + k
        if line == 1 and raw.startswith(b"\xef\xbb\xbf"):
            raw = raw[3:]
        try:
            text = raw.decode("utf-8")
        except UnicodeDecodeError as e:
            if not raw.strip():
                out.append((line, BLANK, None))
            else:
                out.append((line, None, f"invalid UTF-8 at byte {e.start}"))
            continue
        if not text.strip():
            out.append((line, BLANK, None))
            continue
        try:
            out.append((line, json.loads(text), None))
        except json.JSONDecodeError as e:
            out.append((line, None, f"not valid JSON ({e.msg} at column {e.colno})"))
        except RecursionError:
            out.append((line, None, "not valid JSON (nested too deeply)"))
        except ValueError:  # e.g. an integer of more digits than Python converts
            out.append((line, None, "not valid JSON (a value out of range)"))
    return out


def parse_delimited(data: bytes, fmt: str, header: list[str], first: int, count: int) -> Parsed:
    """CSV/TSV records -> dicts keyed by the header; values are text, an empty field is null.
    A chunk that does not split into its planned records (unbalanced quotes) makes every one of
    its records invalid, never a different number of rows."""
    text = data.decode("utf-8", "surrogateescape")
    try:
        records = list(
            csv.reader(io.StringIO(text, newline=""), delimiter=DELIMITERS[fmt], strict=False)
        )
    except csv.Error as e:
        records, why = None, f"not valid {fmt.upper()} ({type(e).__name__})"
    else:
        why = f"not valid {fmt.upper()}: its quotes do not balance near here"
    if records is None or len(records) != count:
        return [(first + k, None, why) for k in range(count)]
    out: Parsed = []
    width = len(header)
    for k, fields in enumerate(records):
        row = first + k
        if not fields or fields == [""]:
            out.append((row, BLANK, None))
            continue
        try:
            "".join(fields).encode("utf-8")
        except UnicodeEncodeError:
            out.append((row, None, "invalid UTF-8"))
            continue
        if len(fields) != width:
            out.append((row, None, f"{len(fields)} fields, the header has {width}"))
            continue
        out.append((row, {h: (v if v != "" else None) for h, v in zip(header, fields)}, None))
    return out


def parse_chunk(data: bytes, fmt: str, first: int, count: int, header: list[str] | None) -> Parsed:
    if fmt == JSONL:
        return parse_jsonl(data, first, count)
    return parse_delimited(data, fmt, header or [], first, count)


def parquet_rows(table: pa.Table, first: int) -> Parsed:
    """Rows of an arrow table; a string that is not valid UTF-8 makes its row invalid."""
    try:
        rows = table.to_pylist()
    except UnicodeDecodeError:
        rows = []
        for k in range(table.num_rows):
            try:
                rows.append(table.slice(k, 1).to_pylist()[0])
            except UnicodeDecodeError:
                rows.append(UnicodeDecodeError)
    return [
        (first + k, None, "invalid UTF-8") if r is UnicodeDecodeError else (first + k, r, None)
        for k, r in enumerate(rows)
    ]


def iter_file(f: InputFile, chunk_rows: int = 4096) -> Any:
    """Every record of a file, in order, a chunk at a time (bounded memory): yields
    (record number, object | BLANK | None, problem | None)."""
    if f.format == PARQUET:
        import pyarrow.parquet as pq

        fs, path, _ = filesystem(f.uri)
        with fs.open_input_file(path) as fh:
            pf = pq.ParquetFile(fh, pre_buffer=False, buffer_size=1 << 20)
            first = 1
            for batch in pf.iter_batches(batch_size=chunk_rows):
                yield from parquet_rows(pa.Table.from_batches([batch]), first)
                first += batch.num_rows
        return
    scanner = Scanner(f.format, chunk_rows, keep=True)
    with open_stream(f.uri, f.compression) as fh:
        while block := fh.read(BLOCK):
            for first, count, _, _, data in scanner.feed(block):
                yield from parse_chunk(data, f.format, first, count, scanner.header)
        for first, count, _, _, data in scanner.finish():
            yield from parse_chunk(data, f.format, first, count, scanner.header)


def keep_value(value: Any) -> str | None:
    """A kept metadata column's value as text (JSON for non-strings; null stays null)."""
    if value is None:
        return None
    if isinstance(value, str):  # an unpaired surrogate cannot go into parquet: escape it
        return value.encode("utf-8", "backslashreplace").decode("utf-8")
    try:
        return json.dumps(value, default=str, ensure_ascii=False)
    except (TypeError, ValueError):
        return str(value)
