"""Prepare (Ray Data CPU tasks): read a chunk's rows, validate, chat-format, fit and tokenize."""

from __future__ import annotations

import collections
import functools
import json
import logging
import weakref
from pathlib import Path
from typing import Any

import pyarrow as pa

from discriminator.config import ScoreConfig, from_dict
from discriminator.data import check_row
from discriminator.prompt import (
    answer_ids,
    fit_note,
    precut_chars,
    prompt_overhead,
    render_prompt,
)
from discriminator.scoring.schema import BLANK, KEPT, PREP_SCHEMA, ScoreError, scrub_error
from discriminator.sources import (
    PARQUET,
    Parsed,
    SourceError,
    derive_note_id,
    filesystem,
    keep_value,
    parquet_rows,
    parse_chunk,
)

log = logging.getLogger(__name__)

# Slow paths this process took and errors it survived, by what happened (a count of notes or
# of tokenizers): sent to the job's counter actor with each prepared batch (`prepare_batch`), and
# said once in the job's summary, so a fallback that costs a quarter of the CPU is never silent.
SEEN: collections.Counter[str] = collections.Counter()
_SENT: collections.Counter[str] = collections.Counter()
SLOW_TOKENIZATION = "notes tokenized one at a time (the batch tokenization failed)"
NO_HEAD = "tokenizers whose prompt head could not be rendered (no prompt-prefix reuse)"
HEAD_MERGES = "tokenizers that merge across the prompt head (no prompt-prefix reuse)"


@functools.lru_cache(maxsize=2)
def tokenizer_for(path: str) -> Any:
    """The tokenizer at `path`, loaded once per process (the two most recent paths kept)."""
    from discriminator.modeling import load_tokenizer

    return load_tokenizer(path)


def tokenizer_path(cfg: ScoreConfig) -> str:
    """The adapter's tokenizer (saved with its chat template by training), else the base's."""
    if cfg.adapter and (Path(cfg.adapter) / "tokenizer_config.json").exists():
        return cfg.adapter
    return cfg.model.name_or_path


def read_chunk(chunk: dict, columns: list[str]) -> Parsed:
    """(record number, object | BLANK | None, problem | None) for every record of a chunk, read
    alone: its byte range, its parquet row groups, or its staged piece. `columns`: the parquet
    columns wanted (the others are not read)."""
    kind, first, count = chunk["kind"], chunk["first"], chunk["count"]
    if chunk.get("staged"):
        fs, path, _ = filesystem(chunk["staged"])
        if kind == PARQUET:
            import pyarrow.parquet as pq

            with fs.open_input_file(path) as fh:
                table = pq.read_table(fh)
            return parquet_rows(table, first)
        with fs.open_input_stream(path, compression=None) as fh:
            packed = fh.read()
        size = chunk["byte_end"] - chunk["byte_start"]
        data = pa.decompress(packed, decompressed_size=size, codec="lz4", asbytes=True)
        return parse_chunk(data, kind, first, count, list(chunk.get("header") or ()))
    fs, path, _ = filesystem(chunk["uri"])
    if kind == PARQUET:
        import pyarrow.parquet as pq

        with fs.open_input_file(path) as fh:
            pf = pq.ParquetFile(fh)
            names = pf.schema_arrow.names
            cols = [c for c in columns if c in names]
            start, stop = first - 1, first - 1 + count
            groups, offset, first_row = [], 0, None
            for g in range(pf.metadata.num_row_groups):
                n = pf.metadata.row_group(g).num_rows
                if offset + n > start and offset < stop:
                    groups.append(g)
                    first_row = offset if first_row is None else first_row
                offset += n
            table = pf.read_row_groups(groups, columns=cols) if cols else None
        if table is None:
            return [(first + k, {}, None) for k in range(count)]
        return parquet_rows(table.slice(start - first_row, count), first)
    with fs.open_input_file(path) as fh:
        fh.seek(chunk["byte_start"])
        data = fh.read(chunk["byte_end"] - chunk["byte_start"])
    try:
        return parse_chunk(data, kind, first, count, list(chunk.get("header") or ()))
    except SourceError as e:
        raise ScoreError(f"{chunk['uri']}: {e}") from None


def _note_problem(obj: Any, text_col: str) -> str | None:
    if not isinstance(obj, dict):
        return check_row(obj)
    if text_col not in obj:
        return f"missing {text_col!r}"
    problem = check_row({"note": obj[text_col]})
    return problem.replace("'note'", repr(text_col)) if problem else None


def fit_prompt(tokenizer: Any, note: str, max_prompt_tokens: int) -> tuple[list[int], bool]:
    """Token ids of prompt + answer prefix within the budget, and whether the note was cut."""
    prefix, overhead = _template(tokenizer)
    budget = max_prompt_tokens - overhead
    while True:
        fitted = fit_note(note, tokenizer, max(budget, 4))
        ids = tokenizer(render_prompt(tokenizer, fitted.note), add_special_tokens=False)
        ids = list(ids["input_ids"]) + prefix
        # Tokens can merge differently inside the template: shave until the prompt fits.
        if len(ids) <= max_prompt_tokens or budget <= 4:
            return ids, fitted.truncated
        budget -= len(ids) - max_prompt_tokens


PER_TOKENIZER_CACHE = 4  # tokenizers a process keeps a computed value for (one in a job)


def _once(table: dict[int, tuple[Any, Any]], tokenizer: Any, make: Any) -> Any:
    """`make(tokenizer)`, computed once per tokenizer object. Keyed by id and checked by a weak
    reference (a new tokenizer at a reused id is not given another's value, and the cache never
    keeps a tokenizer alive); at most `PER_TOKENIZER_CACHE` entries, the oldest dropped first."""
    key = id(tokenizer)
    hit = table.get(key)
    if hit is None or hit[0]() is not tokenizer:
        hit = (weakref.ref(tokenizer), make(tokenizer))
        table.pop(key, None)
        table[key] = hit
        for dead in [k for k, (ref, _) in table.items() if ref() is None]:
            del table[dead]
        while len(table) > PER_TOKENIZER_CACHE:
            del table[next(iter(table))]
    return hit[1]


_TEMPLATE: dict[int, tuple[Any, tuple[list[int], int]]] = {}  # id -> (ref, (prefix, overhead))


def _template(tokenizer: Any) -> tuple[list[int], int]:
    """(answer prefix ids, template overhead) of a tokenizer, computed once."""
    return _once(_TEMPLATE, tokenizer, lambda t: (answer_ids(t)[0], prompt_overhead(t)))


class PromptHead:
    """The text every rendered prompt starts with, up to and including the last added token
    (`<|end_header_id|>`) before the note, and its ids, tokenized once per tokenizer.

    Added tokens are split off before the tokenizer's model sees the text, so the ids of
    head + rest are head's ids + rest's ids, provided the token does not strip the whitespace
    after it and nothing normalizes across it. That is checked, not assumed: the first notes
    a tokenizer sees are also tokenized whole, and one difference turns the head off for it.
    The system prompt and template are ~240 tokens of every prompt, a quarter of a typical
    note's tokenization, the pipeline's largest CPU cost."""

    CHECK_NOTES = 8

    def __init__(self, tokenizer: Any):
        self.text, self.ids, self.checked = "", [], 0
        try:
            a, b = render_prompt(tokenizer, "A"), render_prompt(tokenizer, "B")
        except Exception as e:  # each prompt is then tokenized whole: slower, same ids
            SEEN[NO_HEAD] += 1
            log.warning("prompt head not rendered (%s): no prompt-prefix reuse", type(e).__name__)
            return
        common = a[: next((i for i, (x, y) in enumerate(zip(a, b)) if x != y), min(len(a), len(b)))]
        ends = [
            common.rfind(t.content) + len(t.content)
            for t in tokenizer.added_tokens_decoder.values()
            if t.content and not t.rstrip and t.content in common
        ]
        if ends and max(ends) > 0:
            self.text = common[: max(ends)]
            self.ids = list(tokenizer(self.text, add_special_tokens=False)["input_ids"])

    def encode(self, tokenizer: Any, rendered: list[str]) -> list[list[int]]:
        k = len(self.text)
        split = [r[k:] if k and r.startswith(self.text) else None for r in rendered]
        tails = tokenizer([r if t is None else t for r, t in zip(rendered, split)],
                          add_special_tokens=False)["input_ids"]  # fmt: skip
        out = [list(ids) if t is None else [*self.ids, *ids] for ids, t in zip(tails, split)]
        if k and self.checked < self.CHECK_NOTES:
            n = min(len(rendered), self.CHECK_NOTES - self.checked)
            whole = tokenizer(rendered[:n], add_special_tokens=False)["input_ids"]
            self.checked += n
            if [list(w) for w in whole] != out[:n]:
                log.warning("prompt prefix reuse disabled: this tokenizer merges across it")
                SEEN[HEAD_MERGES] += 1
                self.text, self.ids = "", []
                return [
                    list(ids) for ids in tokenizer(rendered, add_special_tokens=False)["input_ids"]
                ]
        return out


_HEADS: dict[int, tuple[Any, PromptHead]] = {}  # id(tokenizer) -> (weak ref, its head)


def prompt_head(tokenizer: Any) -> PromptHead:
    """The tokenizer's prompt head, tokenized once per tokenizer object."""
    return _once(_HEADS, tokenizer, PromptHead)


def fit_prompts(
    tokenizer: Any, notes: list[str], max_prompt_tokens: int
) -> list[tuple[list[int], bool] | BaseException]:
    """`fit_prompt` for many notes with one tokenizer call: every prompt is rendered and
    tokenized whole (its fixed head's ids reused, `PromptHead`); a note whose prompt fits is done
    (its ids are exactly what `fit_prompt` gives); the rest go through `fit_prompt` (cut in the
    middle). A note that cannot be tokenized gets its exception in its place, so one bad note
    never fails its neighbours."""
    prefix, overhead = _template(tokenizer)
    out: list[Any] = [None] * len(notes)
    # A note far over the budget is never rendered or tokenized whole: `fit_prompt` cuts it.
    limit = precut_chars(max_prompt_tokens - overhead)
    far = [len(n) > limit for n in notes]
    whole = [i for i, f in enumerate(far) if not f]
    encoded: list[Any] = [None] * len(notes)
    try:
        rendered = [render_prompt(tokenizer, notes[i]) for i in whole]
        for i, ids in zip(whole, prompt_head(tokenizer).encode(tokenizer, rendered), strict=True):
            encoded[i] = ids
    except Exception as e:  # every note then goes through `fit_prompt` on its own
        SEEN[SLOW_TOKENIZATION] += len(whole)
        log.warning(
            "batch tokenization failed (%s): %d note(s) tokenized one at a time",
            type(e).__name__,
            len(whole),
        )
        encoded = [None] * len(notes)
    for i, note in enumerate(notes):
        ids = encoded[i]
        if ids is not None and len(ids) + len(prefix) <= max_prompt_tokens:
            out[i] = ([*ids, *prefix], False)
            continue
        try:
            out[i] = fit_prompt(tokenizer, note, max_prompt_tokens)
        except Exception as e:
            out[i] = e
    return out


def prepare_batch(batch: pa.Table, cfg: dict, tokenizer: str, progress: Any = None) -> pa.Table:
    """Ray Data map: chunk descriptors -> one prepared row per physical line/row. `progress`:
    the job's counter actor, told what slow paths this process took (`SEEN`)."""
    c = from_dict(ScoreConfig, cfg)
    tok = tokenizer_for(tokenizer)
    text_col, id_col = c.io.text_column, c.io.id_column
    keep = list(c.io.keep_columns)
    rows: list[dict] = []
    for chunk in batch.to_pylist():
        source = chunk.get("source") or chunk["uri"].rsplit("/", 1)[-1]
        only = set(chunk.get("only") or ()) if chunk.get("retry") else None
        position = -1  # index among the chunk's rows (blank lines are not rows)
        for line, obj, problem in read_chunk(chunk, [text_col, id_col, *keep]):
            row = {"_part": chunk["part"], "_row": line, "input_ids": None, "n_tokens": None}
            row.update(truncated=None, note=None, error=None, source=source, row=line, _keep=None)
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
            if keep and isinstance(obj, dict):
                values = [keep_value(obj.get(k)) for k in keep]
                row["_keep"] = json.dumps(values)
            problem = problem or _note_problem(obj, text_col)
            if problem:
                rows.append({**row, "status": "invalid_input", "error": problem})
                continue
            row["note"] = obj[text_col]  # tokenized below, for the whole batch at once
            row["status"] = "pending"
            rows.append(row)
    pending = [r for r in rows if r["status"] == "pending"]
    fitted = fit_prompts(tok, [r["note"] for r in pending], c.scoring.max_prompt_tokens)
    for row, got in zip(pending, fitted):
        if isinstance(got, BaseException):  # one untokenizable note must not fail its chunk
            log.warning(
                "tokenization failed for note_id=%s: %s", row["note_id"], type(got).__name__
            )
            row.update(status="failed", error=scrub_error(got, "tokenization"))
        else:
            ids, truncated = got
            row.update(input_ids=ids, n_tokens=len(ids), truncated=truncated)
        if not c.io.keep_text:
            row["note"] = None
    report_seen(progress)
    return pa.Table.from_pylist(rows, schema=PREP_SCHEMA)


def report_seen(progress: Any) -> None:
    """Send what `SEEN` gained since the last report to the job's counter (waited for: it is
    rare, and the driver reads the counter as soon as the last batch is done)."""
    new = SEEN - _SENT
    if progress is None or not new:
        return
    import ray

    try:
        ray.get(progress.note.remote(dict(new)), timeout=30)
    except Exception as e:  # the counter is lost or slow: the batch is scored all the same
        log.warning("slow paths not reported to the job (%s): %s", type(e).__name__, dict(new))
        return
    _SENT.update(new)
