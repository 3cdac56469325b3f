"""Batch scoring of note archives with Ray Data: read -> prepare (CPU) -> scorer actors -> parquet.

Pipeline
  1. Plan (driver): expand files/folders/globs on any pyarrow (or fsspec) filesystem
     (`discriminator.sources`: JSONL, CSV, TSV, plain or gzip/zstd, and parquet; each file named
     by its path relative to the root it was found under), record each file (size, time,
     SHA-256, rows) and cut it into deterministic chunks of at most `io.chunk_rows` records (a
     new output whose inputs would leave scorer actors without a chunk is cut finer,
     `plan.chunk_rows_for`; the size used is recorded in the manifest and kept by every later
     run into that output): plain text by byte offsets found in one streaming pass, parquet
     with small row groups by its footer; compressed files and parquet with larger row groups
     are streamed once into chunk-sized pieces under `<output>/_staging/`. A chunk is named by a hash of (relative path, first
     record, count); chunks are recorded in the manifest and never re-cut (`plan.reconcile`
     compares a re-run's files with the record: same, grown, added, changed, removed).
  2. Prepare (Ray Data CPU tasks, `prepare_batch`): read the chunk's bytes (or piece) and split
     records ourselves, so EVERY non-blank record becomes exactly one row even when it is not
     JSON or not UTF-8; validate (bad rows -> `invalid_input`), chat-format with `render_prompt`, cut long notes
     in the middle with `fit_note` to the prompt budget, tokenize, append the forced answer prefix.
  3. Score (Ray Data actor pool, `Scorer`): one model per GPU (fractional CPUs per actor without
     GPUs). Rows are sorted by length and split into sub-batches under a token budget (length
     bucketing) of about `Scorer.BATCH_SECONDS` each at the measured speed (so a slow model
     still reports scored rows during a chunk), left-padded; ONE prefill of prompt + answer
     prefix gives `p_error` from the last-position logits (`p_error_from_logits`). The reason is
     generated greedily only where needed (`scoring.generate`).
  4. Write (driver): result rows are grouped by chunk; a complete chunk is written as one parquet
     part `part-<chunk>.parquet` (tmp file + atomic rename, 0o600) carrying the provenance in its
     file metadata. `_manifest.json` (provenance, counts, inputs, timing) sits in the output
     directory; its `_` prefix keeps `pyarrow.parquet.read_table(output_dir)` working.

Modules, in the order the data flows: `plan` (inputs -> chunks), `prepare` (chunk -> prepared
rows), `scorer` (the actor: prepared rows -> scored rows), `write` (scored rows -> parquet parts,
progress, retries), `job` (`run_scoring`: provenance, identity, resources, the Ray Data graph);
`schema` holds the row schemas and statuses they share.

Resume: re-running with the same output directory skips every chunk whose part file exists and
scores the rest. Parts appear only by atomic rename, so a killed run leaves either a whole part or
none (stray `.tmp-*` files are removed on start); there are no duplicates because a chunk's rows
are always written together. We do not use Ray Data's own checkpointing
(`ray.data.checkpoint.CheckpointConfig`, present in 2.60): it filters rows by an id column at read
time, but our JSONL ids are derived from line numbers that a plain read does not know, user ids
may collide, and its per-block checkpoint is written after the data file, so a kill in between
duplicates rows on resume. A re-run refuses an output directory written with a different model,
adapter, prompt version or scoring settings, and continues only over the same input files;
`io.update` adds new files and rows appended to grown plain-text files (new chunks after the
recorded ones); a file changed in place or removed is refused, naming it.

Ids: `note_id` is the id column's value (stringified) when present and non-empty, else
`derive_note_id(source, row)` (`2019/notes.jsonl:17`), unique across folders because `source` is
the path relative to the input root. Every row also carries `source` and `row`. User ids are never
rewritten; repeated ones are counted and listed in the manifest and logged as a warning.

Failures: an exception while scoring a sub-batch retries its rows one by one; rows that still fail
become `status="failed"` with `error` = exception type + phase (never the message, which may echo
input). Note text never reaches logs, errors or the progress output.
"""

from __future__ import annotations

from discriminator.scoring.job import (
    apply_adapter_provenance,
    off_decision_summary,
    package_version,
    provenance,
    run_scoring,
)
from discriminator.scoring.plan import (
    MIN_CHUNK_ROWS,
    STAGING,
    Chunk,
    chunk_rows_for,
    chunks_of,
    expand_inputs,
    file_sha256,
    plan_chunks,
    plan_inputs,
    reconcile,
    stage,
)
from discriminator.scoring.prepare import (
    fit_prompt,
    fit_prompts,
    prepare_batch,
    prompt_head,
    read_chunk,
    tokenizer_for,
    tokenizer_path,
)
from discriminator.scoring.schema import (
    BLANK,
    KEPT,
    MANIFEST,
    OUTPUT_SCHEMA,
    PREP_SCHEMA,
    PROVENANCE_KEY,
    SCORED_SCHEMA,
    ScoreError,
    scrub_error,
)
from discriminator.scoring.scorer import (
    PICKLE_SUFFIXES,
    Scorer,
    bucket_batches,
    check_adapter,
    decision_probs,
    finish_row,
    forced_first_tokens,
    last_logits,
    left_pad,
    p_error_from_logits,
)
from discriminator.scoring.write import (
    Output,
    collect,
    failed_rows,
    read_output,
)

__all__ = [
    "BLANK",
    "KEPT",
    "MANIFEST",
    "MIN_CHUNK_ROWS",
    "OUTPUT_SCHEMA",
    "PICKLE_SUFFIXES",
    "PREP_SCHEMA",
    "PROVENANCE_KEY",
    "SCORED_SCHEMA",
    "STAGING",
    "Chunk",
    "Output",
    "ScoreError",
    "Scorer",
    "apply_adapter_provenance",
    "bucket_batches",
    "check_adapter",
    "chunk_rows_for",
    "chunks_of",
    "collect",
    "decision_probs",
    "expand_inputs",
    "failed_rows",
    "file_sha256",
    "finish_row",
    "fit_prompt",
    "fit_prompts",
    "forced_first_tokens",
    "last_logits",
    "left_pad",
    "off_decision_summary",
    "p_error_from_logits",
    "package_version",
    "plan_chunks",
    "plan_inputs",
    "prepare_batch",
    "prompt_head",
    "provenance",
    "read_chunk",
    "read_output",
    "reconcile",
    "run_scoring",
    "scrub_error",
    "stage",
    "tokenizer_for",
    "tokenizer_path",
]
