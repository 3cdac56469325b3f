"""Batch scoring of note archives with Ray Data: read -> prepare (CPU) -> scorer actors -> parquet.

Pipeline
  1. Plan (driver): expand files/folders/globs on any pyarrow (or fsspec) filesystem and cut every
     input file into deterministic chunks of `io.chunk_rows` lines (JSONL, by byte offsets found
     in one streaming pass) or rows (parquet, from the footer). A chunk is named by a hash of
     (file URI, first line, line count), so the same input gives the same chunk names every run.
  2. Prepare (Ray Data CPU tasks, `prepare_batch`): read the chunk's bytes and split lines
     ourselves, so EVERY non-blank line becomes exactly one row even when it is not JSON or not
     UTF-8; validate (bad rows -> `invalid_input`), chat-format with `render_prompt`, cut long notes
     in the middle with `fit_note` to the prompt budget, tokenize, append the forced answer prefix.
  3. Score (Ray Data actor pool, `Scorer`): one model per GPU (fractional CPUs per actor without
     GPUs). Rows are sorted by length and split into sub-batches under a token budget (length
     bucketing), left-padded; ONE prefill of prompt + answer prefix gives `p_error` from the
     last-position logits (`p_error_from_logits`). The reason is generated greedily only where
     needed (`scoring.generate`).
  4. Write (driver): result rows are grouped by chunk; a complete chunk is written as one parquet
     part `part-<chunk>.parquet` (tmp file + atomic rename, 0o600) carrying the provenance in its
     file metadata. `_manifest.json` (provenance, counts, inputs, timing) sits in the output
     directory; its `_` prefix keeps `pyarrow.parquet.read_table(output_dir)` working.

Resume: re-running with the same output directory skips every chunk whose part file exists and
scores the rest. Parts appear only by atomic rename, so a killed run leaves either a whole part or
none (stray `.tmp-*` files are removed on start); there are no duplicates because a chunk's rows
are always written together. We do not use Ray Data's own checkpointing
(`ray.data.checkpoint.CheckpointConfig`, present in 2.60): it filters rows by an id column at read
time, but our JSONL ids are derived from line numbers that a plain read does not know, user ids
may collide, and its per-block checkpoint is written after the data file, so a kill in between
duplicates rows on resume. A re-run refuses an output directory written with a different model,
adapter, prompt version or scoring settings.

Ids: `note_id` is the id column's value (stringified) when present and non-empty, else
`derive_note_id(file, line)` (`notes.jsonl:17`). Ids are never rewritten; duplicates (colliding
user ids, or same-named files in different folders) are counted and listed in the manifest and
logged as a warning, because silently renaming a user's ids would be worse.

Failures: an exception while scoring a sub-batch retries its rows one by one; rows that still fail
become `status="failed"` with `error` = exception type + phase (never the message, which may echo
input). Note text never reaches logs, errors or the progress output.
"""

from __future__ import annotations

import functools
import hashlib
import json
import logging
import os
import re
import time
import uuid
from collections import Counter
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa

from discriminator.config import ScoreConfig, from_dict, to_dict
from discriminator.data import JSONL_SUFFIXES, PARQUET_SUFFIXES, check_row, derive_note_id
from discriminator.prompt import (
    ANSWER_PREFIX,
    CATEGORIES,
    GOOD,
    OTHER,
    PROMPT_VERSION,
    answer_ids,
    first_token_ids,
    fit_note,
    parse_reason,
    prompt_overhead,
    render_prompt,
)

log = logging.getLogger(__name__)

MANIFEST = "_manifest.json"
PROVENANCE_KEY = b"discriminator.provenance"

OUTPUT_SCHEMA = pa.schema(
    [
        ("note_id", pa.string()),
        ("status", pa.string()),
        ("verdict", pa.string()),
        ("p_error", pa.float64()),
        ("reason", pa.string()),
        ("category", pa.string()),
        ("n_tokens", pa.int64()),
        ("truncated", pa.bool_()),
        ("error", pa.string()),
    ]
)
# Internal columns travel with each row until the driver writes it.
_ROUTE = [("_part", pa.string()), ("_row", pa.int64())]
PREP_SCHEMA = pa.schema(
    [
        *_ROUTE,
        ("note_id", pa.string()),
        ("status", pa.string()),  # pending | invalid_input | blank
        ("error", pa.string()),
        ("input_ids", pa.list_(pa.int32())),
        ("n_tokens", pa.int64()),
        ("truncated", pa.bool_()),
        ("note", pa.string()),  # null unless keep_text
    ]
)
SCORED_SCHEMA = pa.schema([*_ROUTE, *OUTPUT_SCHEMA, ("note", pa.string())])


BLANK = "<blank line>"  # _read_chunk's marker: a blank line is not a row (JSON `null` is one)
KEPT = "kept"  # --retry-failed: a row whose earlier result stays (internal status)


class ScoreError(RuntimeError):
    """A scoring job that cannot start or finish (bad input spec, mismatched output dir)."""


# ---------------------------------------------------------------------------------------------
# Pure post-processing


def p_error_from_logits(logits: Any, good_id: int) -> np.ndarray:
    """1 - softmax(logits)[good_id] per row of last-position logits [batch, vocab] (float64)."""
    x = np.asarray(logits, dtype=np.float64)
    x = x - x.max(axis=-1, keepdims=True)
    log_p_good = x[:, good_id] - np.log(np.exp(x).sum(axis=-1))
    return 1.0 - np.exp(log_p_good)


def forced_first_tokens(logits: Any, candidate_ids: list[int]) -> np.ndarray:
    """Per row of last-position logits [batch, vocab], the likeliest of `candidate_ids`.

    A note the prefill flags (p_error >= threshold) can still have "good" as its single likeliest
    first token while the error categories together hold more mass; greedy decoding would then
    contradict the verdict. Generation for a flagged note therefore starts from the likeliest
    error-category token, so its reason and category follow the verdict.
    """
    x = np.asarray(logits, dtype=np.float64)[:, candidate_ids]
    return np.asarray(candidate_ids, dtype=np.int64)[x.argmax(axis=-1)]


def left_pad(seqs: list[list[int]], pad_id: int) -> tuple[Any, Any]:
    """(ids, attention mask) as [batch, width] long tensors, padded on the left so every
    sequence ends at the last column."""
    import torch

    width = max(len(s) for s in seqs)
    ids = torch.full((len(seqs), width), pad_id, dtype=torch.long)
    mask = torch.zeros((len(seqs), width), dtype=torch.long)
    for i, s in enumerate(seqs):
        ids[i, width - len(s) :] = torch.tensor(s, dtype=torch.long)
        mask[i, width - len(s) :] = 1
    return ids, mask


def last_logits(model: Any, seqs: list[list[int]], pad_id: int, device: Any) -> Any:
    """Float32 CPU logits [batch, vocab] at the last position of each sequence, from one
    left-padded forward pass (scoring's prefill; training's first-token metrics)."""
    import torch

    ids, mask = left_pad(seqs, pad_id)
    # Left padding shifts positions; pass them explicitly so padding changes nothing.
    pos = (mask.cumsum(-1) - 1).clamp(min=0)
    with torch.inference_mode():
        out = model(
            input_ids=ids.to(device),
            attention_mask=mask.to(device),
            position_ids=pos.to(device),
            use_cache=False,
            logits_to_keep=1,
        )
    return out.logits[:, -1, :].float().cpu()


def bucket_batches(lengths: list[int], batch_tokens: int, max_batch_size: int) -> list[list[int]]:
    """Indices sorted by length, cut so that padded tokens (n * longest) <= batch_tokens.

    A row longer than the budget gets a batch of its own. Sorting first keeps padding small.
    """
    order = sorted(range(len(lengths)), key=lambda i: lengths[i])
    batches: list[list[int]] = []
    cur: list[int] = []
    for i in order:
        longest = lengths[i]  # sorted ascending: the newcomer is the longest
        if cur and ((len(cur) + 1) * longest > batch_tokens or len(cur) >= max_batch_size):
            batches.append(cur)
            cur = []
        cur.append(i)
    if cur:
        batches.append(cur)
    return batches


def finish_row(
    p_error: float,
    generated: str | None,
    mode: str,
    threshold: float,
    decided: str | None = None,
) -> dict:
    """verdict / reason / category of one scored note.

    `generated` is the decoded continuation after the forced answer prefix (None when not
    generated). threshold/never: the verdict comes from p_error. always: from the parsed
    generation (p_error decides only when the generation cannot be parsed). `decided`: the
    category whose first token a flagged note's generation was started from; it names the
    category when the generated reason does not parse to one.
    """
    verdict = "error" if p_error >= threshold else "good"
    if generated is None:
        if verdict == "good":
            return {"verdict": "good", "reason": GOOD, "category": GOOD}
        return {"verdict": "error", "reason": None, "category": None}
    parsed = parse_reason(ANSWER_PREFIX + generated)
    if decided is not None and verdict == "error":
        category = parsed.category if parsed.category in CATEGORIES else decided
        return {"verdict": "error", "reason": parsed.reason or None, "category": category}
    if mode == "always" and parsed.verdict != "unparsed":
        verdict = parsed.verdict
    if parsed.verdict == "unparsed":
        return {
            "verdict": verdict,
            "reason": None,
            "category": OTHER if verdict == "error" else GOOD,
        }
    if verdict == "error" and parsed.verdict == "good":
        # The prefill says error but greedy decoding says good: keep the verdict, say so.
        return {"verdict": "error", "reason": None, "category": OTHER}
    return {"verdict": verdict, "reason": parsed.reason, "category": parsed.category}


def scrub_error(exc: BaseException, phase: str) -> str:
    """An error message without input text: exception type and where it happened."""
    name = type(exc).__name__
    if "OutOfMemory" in name or isinstance(exc, MemoryError):
        return f"{name}: out of memory during {phase}"
    return f"{name} during {phase}"


# ---------------------------------------------------------------------------------------------
# Input planning (driver)


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


# ---------------------------------------------------------------------------------------------
# Preparation (Ray Data CPU stage)


@functools.lru_cache(maxsize=2)
def _tokenizer(path: str) -> Any:
    from discriminator.modeling import load_tokenizer

    return load_tokenizer(path)


def tokenizer_path(cfg: ScoreConfig) -> str:
    """The adapter's tokenizer (saved with its chat template by training), else the base's."""
    if cfg.adapter and (Path(cfg.adapter) / "tokenizer_config.json").exists():
        return cfg.adapter
    return cfg.model.name_or_path


def _read_chunk(chunk: dict, text_col: str, id_col: str) -> list[tuple[int, Any, str | None]]:
    """(line, object or None, problem or None) for every physical line/row of a chunk.

    Blank lines come back as (line, BLANK, None) so the driver can count the chunk complete.
    """
    fs, path, _ = _filesystem(chunk["uri"])
    out: list[tuple[int, Any, str | None]] = []
    if chunk["kind"] == "parquet":
        import pyarrow.parquet as pq

        with fs.open_input_file(path) as fh:
            pf = pq.ParquetFile(fh)
            names = pf.schema_arrow.names
            cols = [c for c in (text_col, id_col) if c in names]
            start, stop = chunk["first"] - 1, chunk["first"] - 1 + chunk["count"]
            groups, offset, first_row = [], 0, None
            for g in range(pf.metadata.num_row_groups):
                n = pf.metadata.row_group(g).num_rows
                if offset + n > start and offset < stop:
                    groups.append(g)
                    first_row = offset if first_row is None else first_row
                offset += n
            table = pf.read_row_groups(groups, columns=cols) if cols else None
        if table is not None:
            rows = table.slice(start - first_row, chunk["count"]).to_pylist()
        else:
            rows = [{} for _ in range(chunk["count"])]
        for k, row in enumerate(rows):
            out.append((chunk["first"] + k, row, None))
        return out
    with fs.open_input_file(path) as fh:
        fh.seek(chunk["byte_start"])
        data = fh.read(chunk["byte_end"] - chunk["byte_start"])
    raws = data.split(b"\n")
    if data.endswith(b"\n"):
        raws.pop()
    if len(raws) != chunk["count"]:
        raise ScoreError(f"{chunk['uri']} changed while scoring (line count differs)")
    for k, raw in enumerate(raws):
        line = chunk["first"] + k
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
    return out


def _note_problem(obj: Any, text_col: str) -> str | None:
    if not isinstance(obj, dict):
        return check_row(obj)
    if text_col not in obj:
        return f"missing {text_col!r}"
    problem = check_row({"note": obj[text_col]})
    return problem.replace("'note'", repr(text_col)) if problem else None


def fit_prompt(tokenizer: Any, note: str, max_prompt_tokens: int) -> tuple[list[int], bool]:
    """Token ids of prompt + answer prefix within the budget, and whether the note was cut."""
    prefix, _ = answer_ids(tokenizer)
    budget = max_prompt_tokens - prompt_overhead(tokenizer)
    while True:
        fitted = fit_note(note, tokenizer, max(budget, 4))
        ids = tokenizer(render_prompt(tokenizer, fitted.note), add_special_tokens=False)
        ids = list(ids["input_ids"]) + prefix
        # Tokens can merge differently inside the template: shave until the prompt fits.
        if len(ids) <= max_prompt_tokens or budget <= 4:
            return ids, fitted.truncated
        budget -= len(ids) - max_prompt_tokens


def prepare_batch(batch: pa.Table, cfg: dict, tokenizer: str) -> pa.Table:
    """Ray Data map: chunk descriptors -> one prepared row per physical line/row."""
    c = from_dict(ScoreConfig, cfg)
    tok = _tokenizer(tokenizer)
    text_col, id_col = c.io.text_column, c.io.id_column
    rows: list[dict] = []
    for chunk in batch.to_pylist():
        source = chunk["uri"].rsplit("/", 1)[-1]
        only = set(chunk.get("only") or ()) if chunk.get("retry") else None
        position = -1  # index among the chunk's rows (blank lines are not rows)
        for line, obj, problem in _read_chunk(chunk, text_col, id_col):
            row = {"_part": chunk["part"], "_row": line, "input_ids": None, "n_tokens": None}
            row.update(truncated=None, note=None, error=None)
            if obj is BLANK:
                rows.append({**row, "note_id": None, "status": "blank"})
                continue
            position += 1
            if only is not None and position not in only:  # --retry-failed: the old row stays
                rows.append({**row, "note_id": None, "status": KEPT})
                continue
            rid = obj.get(id_col) if isinstance(obj, dict) else None
            note_id = str(rid) if rid is not None and str(rid).strip() else None
            if note_id is not None:  # an unpaired surrogate cannot go into parquet: escape it
                note_id = note_id.encode("utf-8", "backslashreplace").decode("utf-8")
            row["note_id"] = note_id or derive_note_id(source, line)
            problem = problem or _note_problem(obj, text_col)
            if problem:
                rows.append({**row, "status": "invalid_input", "error": problem})
                continue
            note = obj[text_col]
            try:
                ids, truncated = fit_prompt(tok, note, c.scoring.max_prompt_tokens)
            except Exception as e:  # one untokenizable note must not fail its whole chunk
                log.warning(
                    "tokenization failed for note_id=%s: %s", row["note_id"], type(e).__name__
                )
                rows.append({**row, "status": "failed", "error": scrub_error(e, "tokenization")})
                continue
            row.update(input_ids=ids, n_tokens=len(ids), truncated=truncated, status="pending")
            if c.io.keep_text:
                row["note"] = note
            rows.append(row)
    return pa.Table.from_pylist(rows, schema=PREP_SCHEMA)


# ---------------------------------------------------------------------------------------------
# The scorer (Ray Data actor)


def _resolve_dtype(cfg: ScoreConfig, on_gpu: bool) -> str:
    if cfg.scoring.dtype != "auto":
        return cfg.scoring.dtype
    return cfg.model.dtype if on_gpu else "float32"  # CPUs: fp32 is faster and exact


class Scorer:
    """Load base + adapter once (`__init__`); score one batch of prepared rows (`__call__`)."""

    def __init__(self, cfg: dict, tokenizer: str):
        import torch
        from transformers import GenerationConfig

        from discriminator.modeling import load_base_model, load_tokenizer

        self.cfg = c = from_dict(ScoreConfig, cfg)
        self.torch = torch
        self.device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
        on_gpu = self.device.type == "cuda"
        dtype = _resolve_dtype(c, on_gpu)
        self.tok = load_tokenizer(tokenizer)
        model = load_base_model(c.model, device_map={"": 0} if on_gpu else None, dtype=dtype)
        if c.adapter:
            from peft import PeftModel

            check_adapter(c.adapter)
            model = PeftModel.from_pretrained(model, c.adapter, is_trainable=False)
            if c.scoring.merge and c.model.quantization == "none":
                model = model.merge_and_unload()  # one matmul per layer instead of three
        self.model = model.eval()
        self.prefix, self.good_id = answer_ids(self.tok)
        try:  # the tokens an error answer starts with ("Timeline", "PHI", ...)
            firsts = first_token_ids(self.tok)
            self.error_ids = [firsts[c] for c in CATEGORIES]
            self.category_of_id = {firsts[c]: c for c in CATEGORIES}
        except ValueError:  # labels share a first token: any token but "good"
            self.error_ids = [i for i in range(len(self.tok)) if i != self.good_id]
            self.category_of_id = {}
        eos = {self.tok.eos_token_id}
        eos |= {self.tok.convert_tokens_to_ids(t) for t in ("<|eot_id|>", "<|end_of_text|>")}
        eos = sorted(i for i in eos if isinstance(i, int) and i != self.tok.unk_token_id)
        self.gen_config = GenerationConfig(
            max_new_tokens=c.scoring.max_new_tokens,
            do_sample=False,
            num_beams=1,
            eos_token_id=eos,
            pad_token_id=self.tok.pad_token_id,
        )

    def prefill(self, seqs: list[list[int]]) -> np.ndarray:
        """Last-position logits [batch, vocab] from one forward pass over prompt + answer prefix."""
        return last_logits(self.model, seqs, self.tok.pad_token_id, self.device).numpy()

    def generate(self, seqs: list[list[int]], first: list[int] | None = None) -> list[str]:
        """Greedy continuation after the forced answer prefix, decoded. With `first`, each
        sequence's answer starts with that token (included in the decoded text)."""
        forced = 0 if first is None else 1
        if first is not None:
            seqs = [[*s, int(f)] for s, f in zip(seqs, first)]
        ids, mask = (t.to(self.device) for t in left_pad(seqs, self.tok.pad_token_id))
        with self.torch.inference_mode():
            out = self.model.generate(
                input_ids=ids, attention_mask=mask, generation_config=self.gen_config
            )
        return self.tok.batch_decode(out[:, ids.shape[1] - forced :], skip_special_tokens=True)

    def _score(self, seqs: list[list[int]]) -> list[dict]:
        mode, threshold = self.cfg.scoring.generate, self.cfg.scoring.threshold
        phase = "prefill"
        try:
            logits = self.prefill(seqs)
            p = p_error_from_logits(logits, self.good_id)
            want = [
                i
                for i in range(len(seqs))
                if mode == "always" or (mode == "threshold" and p[i] >= threshold)
            ]
            texts: dict[int, str] = {}
            decided: dict[int, str] = {}
            if want:
                phase = "generation"
                first = None
                if mode == "threshold":  # the verdict is the prefill's: the reason must follow it
                    first = forced_first_tokens(logits[want], self.error_ids)
                    decided = {
                        i: c
                        for i, f in zip(want, first.tolist())
                        if (c := self.category_of_id.get(f))
                    }
                texts = dict(zip(want, self.generate([seqs[i] for i in want], first)))
        except Exception as e:
            e.add_note(phase)
            raise
        return [
            {
                "p_error": float(p[i]),
                **finish_row(float(p[i]), texts.get(i), mode, threshold, decided.get(i)),
            }
            for i in range(len(seqs))
        ]

    def score_notes(self, notes: list[str]) -> list[dict]:
        """Score note texts in this process (prompt budget, length buckets); rows in input order.
        The loop benchmarks and tests run without Ray Data."""
        s = self.cfg.scoring
        seqs = [fit_prompt(self.tok, note, s.max_prompt_tokens)[0] for note in notes]
        rows: list[dict] = [{} for _ in seqs]
        for batch in bucket_batches([len(x) for x in seqs], s.batch_tokens, s.max_batch_size):
            for i, row in zip(batch, self._score([seqs[i] for i in batch])):
                rows[i] = row
        return rows

    def __call__(self, batch: pa.Table) -> pa.Table:
        rows = batch.to_pylist()
        todo = [i for i, r in enumerate(rows) if r["status"] == "pending"]
        lengths = [len(rows[i]["input_ids"]) for i in todo]
        s = self.cfg.scoring
        for sub in bucket_batches(lengths, s.batch_tokens, s.max_batch_size):
            idx = [todo[j] for j in sub]
            try:
                results = self._score([rows[i]["input_ids"] for i in idx])
            except Exception:
                results = []
                for i in idx:  # one bad row must not fail its neighbours
                    try:
                        results += self._score([rows[i]["input_ids"]])
                    except Exception as e:
                        phase = e.__notes__[-1] if getattr(e, "__notes__", None) else "scoring"
                        log.warning(
                            "scoring failed for note_id=%s: %s",
                            rows[i]["note_id"],
                            type(e).__name__,
                        )
                        results.append({"status": "failed", "error": scrub_error(e, phase)})
                        self._free()
            for i, res in zip(idx, results):
                rows[i].update({"status": "ok", **res})
        out = []
        for r in rows:
            out.append({name: r.get(name) for name in SCORED_SCHEMA.names})
        return pa.Table.from_pylist(out, schema=SCORED_SCHEMA)

    def _free(self) -> None:
        if self.device.type == "cuda":
            self.torch.cuda.empty_cache()


PICKLE_SUFFIXES = (".bin", ".pt", ".pth", ".pkl", ".pickle", ".ckpt")


def check_adapter(path: str) -> None:
    """Adapters load from safetensors only; pickle weights are refused."""
    p = Path(path)
    if not (p / "adapter_config.json").exists():
        raise ScoreError(f"{path}: not a PEFT adapter directory (no adapter_config.json)")
    if not (p / "adapter_model.safetensors").exists():
        pickled = sorted(f.name for f in p.iterdir() if f.suffix in PICKLE_SUFFIXES)
        why = f" (pickle files refused: {', '.join(pickled)})" if pickled else ""
        raise ScoreError(f"{path}: adapter_model.safetensors not found{why}")


def _same_base(a: str, b: str) -> bool:
    """Same base model: equal names, or a local copy named like the hub model
    (`/shared/models/Llama-3.1-8B-Instruct` for `meta-llama/Llama-3.1-8B-Instruct`)."""
    if a == b or Path(a.rstrip("/")).name.lower() == Path(b.rstrip("/")).name.lower():
        return True
    from discriminator.modeling import SMOLLM2, TINY, resolve_model

    if {a, b} & {TINY, SMOLLM2}:  # `tiny` and the cached folder it resolves to
        return Path(resolve_model(a)).resolve() == Path(resolve_model(b)).resolve()
    return False


def apply_adapter_provenance(tree: dict[str, Any]) -> list[str]:
    """Fill the scoring config's base model from the adapter it scores with.

    `tree` is the user's own settings (`config.config_tree`). The adapter's `discriminator.json`
    (written by the train job) names the base model, its quantization and the prompt version;
    `model.name_or_path`, `model.quantization` and `model.double_quant` are taken from it unless
    the user set them. A base model or prompt version the user forces against the adapter is
    refused (`ScoreError`, one line with both values); another quantization is allowed (a QLoRA
    adapter is commonly served on the unquantized base) and reported. Returns lines for the user.
    """
    adapter = tree.get("adapter")
    if not adapter:
        return []
    check_adapter(adapter)
    p = Path(adapter)
    notes: list[str] = []
    model = tree.setdefault("model", {})
    if not isinstance(model, dict):
        return notes
    if (p / "discriminator.json").exists():
        try:
            prov = json.loads((p / "discriminator.json").read_text())
            trained = dict(prov["config"]["model"])
            version = prov["prompt_version"]
        except (OSError, ValueError, KeyError, TypeError):
            raise ScoreError(f"{adapter}/discriminator.json is unreadable or incomplete") from None
        if version != PROMPT_VERSION:
            raise ScoreError(
                f"the adapter was trained with prompt version {version}; this package renders "
                f"prompt version {PROMPT_VERSION} (score with the package version that trained it)"
            )
    else:  # a PEFT adapter trained elsewhere: only its base is known
        try:
            cfg = json.loads((p / "adapter_config.json").read_text())
        except (OSError, ValueError):
            raise ScoreError(f"{adapter}/adapter_config.json is unreadable") from None
        base = cfg.get("base_model_name_or_path")
        trained = {"name_or_path": base} if base else {}
        notes.append(f"{adapter} has no discriminator.json: base model from adapter_config.json")
    base = trained.get("name_or_path")
    forced = model.get("name_or_path")
    if base and forced and not _same_base(str(forced), str(base)):
        raise ScoreError(
            f"model.name_or_path is {forced} but the adapter was trained on {base}; drop the "
            "setting to use the adapter's base"
        )
    for key in ("name_or_path", "quantization", "double_quant"):
        if key in trained and key not in model:
            model[key] = trained[key]
    q, tq = model.get("quantization"), trained.get("quantization")
    if tq and q and q != tq:
        notes.append(f"adapter trained on the {tq} base; scoring with quantization {q} (as set)")
    return notes


# ---------------------------------------------------------------------------------------------
# Output and provenance (driver)


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def package_version() -> str:
    import discriminator

    version = getattr(discriminator, "__version__", None)
    if version:
        return str(version)
    from importlib.metadata import PackageNotFoundError
    from importlib.metadata import version as dist_version

    try:
        return dist_version("clinical-discriminator")
    except PackageNotFoundError:
        return "unknown"


def provenance(cfg: ScoreConfig) -> dict[str, Any]:
    adapter_sha = None
    if cfg.adapter:
        check_adapter(cfg.adapter)
        adapter_sha = _sha256(Path(cfg.adapter) / "adapter_model.safetensors")
    return {
        "base_model": cfg.model.name_or_path,
        "adapter": str(Path(cfg.adapter).resolve()) if cfg.adapter else None,
        "adapter_sha256": adapter_sha,
        "prompt_version": PROMPT_VERSION,
        "package_version": package_version(),
        "config": to_dict(cfg),
    }


def _identity(prov: dict[str, Any]) -> dict[str, Any]:
    """What must match for a re-run to continue an output directory."""
    c = prov["config"]
    keep = ("text_column", "id_column", "keep_text", "chunk_rows")
    return {
        "base_model": prov["base_model"],
        "adapter_sha256": prov["adapter_sha256"],
        "prompt_version": prov["prompt_version"],
        "model": c["model"],
        "io": {k: c["io"][k] for k in keep},
        "scoring": {
            k: v
            for k, v in c["scoring"].items()
            if k not in ("batch_tokens", "max_batch_size", "rows_per_call")
        },
    }


class _Output:
    """The output directory on any pyarrow filesystem; owner-only permissions when local."""

    def __init__(self, uri: str):
        self.uri = uri
        self.fs, self.path, _ = _filesystem(uri)
        self.local = _is_local(self.fs)
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

    def names(self) -> list[str]:
        import pyarrow.fs as pafs

        infos = self.fs.get_file_info(pafs.FileSelector(self.path, allow_not_found=True))
        return sorted(i.base_name for i in infos if i.type == pafs.FileType.File)

    def write_atomic(self, name: str, data: bytes) -> None:
        final, tmp = self.join(name), self.join(f".tmp-{name}-{uuid.uuid4().hex[:8]}")
        if self.local:
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            with os.fdopen(fd, "wb") as fh:
                fh.write(data)
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


def _part_bytes(rows: list[dict], keep_text: bool, meta: bytes) -> bytes:
    import pyarrow.parquet as pq

    schema = OUTPUT_SCHEMA.append(pa.field("note", pa.string())) if keep_text else OUTPUT_SCHEMA
    table = pa.Table.from_pylist(rows, schema=schema).replace_schema_metadata(
        {PROVENANCE_KEY: meta}
    )
    sink = pa.BufferOutputStream()
    pq.write_table(table, sink)
    return sink.getvalue().to_pybytes()


def read_output(output: str, columns: list[str] | None = None) -> pa.Table:
    """All part files of an output directory as one table."""
    import pyarrow.parquet as pq

    out = _Output(output)
    parts = [n for n in out.names() if n.startswith("part-") and n.endswith(".parquet")]
    tables = []
    for n in parts:
        with out.fs.open_input_file(out.join(n)) as fh:
            tables.append(pq.read_table(fh, columns=columns))
    if not tables:
        return OUTPUT_SCHEMA.empty_table()
    return pa.concat_tables(tables, promote_options="default")


# ---------------------------------------------------------------------------------------------
# The job


def _resources(cfg: ScoreConfig) -> tuple[bool, int]:
    import ray

    gpus = int(ray.cluster_resources().get("GPU", 0))
    r = cfg.resources
    use_gpu = gpus > 0 if r.use_gpu == "auto" else bool(r.use_gpu)
    if use_gpu and gpus == 0:
        raise ScoreError("resources.use_gpu is true but the Ray cluster has no GPUs")
    n = r.num_actors or (max(1, int(gpus / r.gpus_per_actor)) if use_gpu else 1)
    return use_gpu, n


def run_scoring(cfg: ScoreConfig) -> dict[str, Any]:
    """Score `cfg.io.input` into `cfg.io.output` (resuming); returns the manifest."""
    import ray

    if not cfg.io.input:
        raise ScoreError("no input: pass --input PATH (files, folders or globs)")
    started = time.time()
    prov = provenance(cfg)
    tok_path = tokenizer_path(cfg)
    overhead = prompt_overhead(_tokenizer(tok_path))
    if cfg.scoring.max_prompt_tokens < overhead + 16:
        raise ScoreError(
            f"scoring.max_prompt_tokens={cfg.scoring.max_prompt_tokens} leaves no room for a "
            f"note (template + system prompt take {overhead} tokens)"
        )
    out = _Output(cfg.io.output)
    previous = out.read_text(MANIFEST)
    names = out.names()
    done = {n.removesuffix(".parquet") for n in names if n.startswith("part-")}
    if previous is not None:
        old = json.loads(previous)
        if old.get("identity") != _identity(prov):
            diff = [k for k, v in _identity(prov).items() if old.get("identity", {}).get(k) != v]
            raise ScoreError(
                f"{cfg.io.output} holds scores from a different job (differs in: "
                f"{', '.join(diff)}); use a new --output"
            )
    elif done:
        raise ScoreError(f"{cfg.io.output} has part files but no {MANIFEST}; use a new --output")
    if stale := out.remove_stale_tmp():
        log.info("removed %d unfinished temporary file(s) from an interrupted run", stale)

    files = expand_inputs(cfg.io.input)
    chunks = plan_chunks(files, cfg.io.chunk_rows)
    retry = _failed_rows(out, done) if cfg.io.retry_failed else {}
    if cfg.io.retry_failed:
        n_failed = sum(len(v) for v in retry.values())
        log.info(
            "--retry-failed: %d failed row(s) in %d part(s) to score again", n_failed, len(retry)
        )
    todo = [ch for ch in chunks if ch.part not in done or ch.part in retry]
    manifest: dict[str, Any] = {
        "state": "running",
        "identity": _identity(prov),
        "provenance": prov,
        "inputs": files,
        "chunks": len(chunks),
        "started": time.strftime("%Y-%m-%dT%H:%M:%S%z", time.localtime(started)),
    }
    out.write_atomic(MANIFEST, json.dumps(manifest, indent=2).encode())
    log.info(
        "%d input file(s), %d chunk(s), %d already done",
        len(files),
        len(chunks),
        len(chunks) - len(todo),
    )

    scored = 0
    if todo:
        use_gpu, n_actors = _resources(cfg)
        cfg_dict = to_dict(cfg)
        items = [
            {
                **asdict(ch),
                "part": ch.part,
                "retry": ch.part in retry,
                "only": retry.get(ch.part, []),
            }
            for ch in todo
        ]
        ds = ray.data.from_items(items, override_num_blocks=len(items))
        ds = ds.map_batches(
            prepare_batch,
            fn_kwargs={"cfg": cfg_dict, "tokenizer": tok_path},
            batch_size=1,
            batch_format="pyarrow",
            num_cpus=cfg.resources.prep_cpus,
        )
        ds = ds.map_batches(
            Scorer,
            fn_constructor_kwargs={"cfg": cfg_dict, "tokenizer": tok_path},
            batch_size=cfg.scoring.rows_per_call,
            batch_format="pyarrow",
            compute=ray.data.ActorPoolStrategy(size=n_actors),
            num_cpus=cfg.resources.cpus_per_actor,
            num_gpus=cfg.resources.gpus_per_actor if use_gpu else 0,
        )
        scored = _collect(ds, todo, out, cfg.io.keep_text, json.dumps(prov).encode(), retry)

    table = read_output(cfg.io.output, columns=["note_id", "status"])
    ids = Counter(table.column("note_id").to_pylist())
    dups = sorted(i for i, n in ids.items() if n > 1)
    if dups:
        log.warning("%d note_id value(s) occur more than once (see %s)", len(dups), MANIFEST)
    elapsed = time.time() - started
    manifest.update(
        state="complete",
        rows=table.num_rows,
        counts=dict(sorted(Counter(table.column("status").to_pylist()).items())),
        duplicate_note_ids={"count": len(dups), "examples": dups[:20]},
        this_run={
            "chunks": len(todo),
            "rows": scored,
            "seconds": round(elapsed, 3),
            "notes_per_s": round(scored / elapsed, 3) if elapsed else None,
        },
        finished=time.strftime("%Y-%m-%dT%H:%M:%S%z"),
    )
    out.write_atomic(MANIFEST, json.dumps(manifest, indent=2).encode())
    return manifest


class _Progress:
    """`[score] rows/total, parts, notes/s, ETA` on the console, at most every `every` seconds."""

    def __init__(self, total: int, parts: int, every: float = 5.0):
        self.total, self.parts_total, self.every = total, parts, every
        self.done = self.parts = 0
        self.t0 = self.shown = time.monotonic()

    def rows(self, n: int) -> None:
        self.done += n
        self.show()

    def part(self) -> None:
        self.parts += 1
        self.show()

    def show(self, final: bool = False) -> None:
        now = time.monotonic()
        if not final and now - self.shown < self.every:
            return
        self.shown = now
        rate = self.done / max(now - self.t0, 1e-9)
        eta = (self.total - self.done) / rate if rate > 0 else float("nan")
        eta_s = f", eta {eta:,.0f}s" if rate > 0 and not final else ""
        log.info(
            "%s/%s rows scored, %d/%d parts written, %.1f notes/s%s",
            f"{self.done:,}",
            f"{self.total:,}",
            self.parts,
            self.parts_total,
            rate,
            eta_s,
        )


def _failed_rows(out: _Output, done: set[str]) -> dict[str, list[int]]:
    """part -> positions of its rows whose status is `failed` (parts without any are left out)."""
    import pyarrow.parquet as pq

    found: dict[str, list[int]] = {}
    for part in sorted(done):
        with out.fs.open_input_file(out.join(f"{part}.parquet")) as fh:
            status = pq.read_table(fh, columns=["status"]).column("status").to_pylist()
        if positions := [k for k, s in enumerate(status) if s == "failed"]:
            found[part] = positions
    return found


def _merge_retried(out: _Output, part: str, rows: list[dict], cols: list[str]) -> list[dict]:
    """The part's earlier rows with the re-scored ones in their places (same order, same count)."""
    import pyarrow.parquet as pq

    with out.fs.open_input_file(out.join(f"{part}.parquet")) as fh:
        old = pq.read_table(fh).to_pylist()
    if len(old) != len(rows):
        raise ScoreError(f"{part}: input rows changed since the first run; use a new --output")
    return [{k: o.get(k) for k in cols} if r["status"] == KEPT else r for o, r in zip(old, rows)]


def _collect(
    ds: Any,
    todo: list[Chunk],
    out: _Output,
    keep_text: bool,
    meta: bytes,
    retry: dict[str, list[int]] | None = None,
) -> int:
    """Stream scored rows to the driver; write each chunk once all its rows have arrived."""
    expected = {ch.part: ch.count for ch in todo}
    pending: dict[str, list[dict]] = {}
    cols = [*OUTPUT_SCHEMA.names, *(["note"] if keep_text else [])]
    written = 0
    progress = _Progress(sum(expected.values()), len(expected))
    for batch in ds.iter_batches(batch_size=None, batch_format="pyarrow"):
        progress.rows(batch.num_rows)
        for row in batch.to_pylist():
            pending.setdefault(row["_part"], []).append(row)
        for part in [p for p, rows in pending.items() if len(rows) == expected[p]]:
            rows = sorted(pending.pop(part), key=lambda r: r["_row"])
            rows = [{k: r[k] for k in cols} for r in rows if r["status"] != "blank"]
            if retry and part in retry:
                rows = _merge_retried(out, part, rows, cols)
                written += len(retry[part])
            else:
                written += len(rows)
            out.write_atomic(f"{part}.parquet", _part_bytes(rows, keep_text, meta))
            progress.part()
    progress.show(final=True)
    if pending:  # cannot happen unless a stage dropped rows; never write a partial chunk
        raise ScoreError(f"{len(pending)} chunk(s) incomplete after scoring; re-run to finish")
    return written
