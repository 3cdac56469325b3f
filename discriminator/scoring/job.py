"""The job: the adapter's provenance, the run's identity, resources and `run_scoring`."""

from __future__ import annotations

import json
import logging
import time
from collections import Counter
from dataclasses import asdict
from pathlib import Path
from typing import Any

from discriminator.config import ScoreConfig, to_dict
from discriminator.prompt import (
    PROMPT_VERSION,
    SCORING_VERSION,
    decision_ids,
    prompt_overhead,
)
from discriminator.scoring.plan import (
    STAGING,
    chunks_of,
    expand_inputs,
    file_sha256,
    plan_inputs,
    stage,
)
from discriminator.scoring.prepare import prepare_batch, tokenizer_for, tokenizer_path
from discriminator.scoring.schema import MANIFEST, OUTPUT_SCHEMA, ScoreError
from discriminator.scoring.scorer import Scorer, check_adapter
from discriminator.scoring.write import (
    Output,
    collect,
    failed_rows,
    progress_counter,
    read_output,
)

log = logging.getLogger(__name__)


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
        adapter_sha = file_sha256(str(Path(cfg.adapter) / "adapter_model.safetensors"))
    return {
        "base_model": cfg.model.name_or_path,
        "adapter": str(Path(cfg.adapter).resolve()) if cfg.adapter else None,
        "adapter_sha256": adapter_sha,
        "scored_with": "base model and adapter" if cfg.adapter else "base model only (zero-shot)",
        "prompt_version": PROMPT_VERSION,
        "scoring_version": SCORING_VERSION,
        "package_version": package_version(),
        "config": to_dict(cfg),
    }


def _identity(prov: dict[str, Any]) -> dict[str, Any]:
    """What must match for a re-run to continue an output directory."""
    c = prov["config"]
    keep = ("text_column", "id_column", "keep_text", "keep_columns", "chunk_rows")
    return {
        "base_model": prov["base_model"],
        "adapter_sha256": prov["adapter_sha256"],
        "prompt_version": prov["prompt_version"],
        "scoring_version": prov.get("scoring_version"),
        "model": c["model"],
        "io": {k: c["io"].get(k, []) for k in keep},
        "scoring": {
            k: v
            for k, v in c["scoring"].items()
            if k not in ("batch_tokens", "max_batch_size", "rows_per_call")
        },
    }


def _resources(cfg: ScoreConfig) -> tuple[bool, int]:
    import ray

    gpus = int(ray.cluster_resources().get("GPU", 0))
    r = cfg.resources
    use_gpu = gpus > 0 if r.use_gpu == "auto" else bool(r.use_gpu)
    if use_gpu and gpus == 0:
        raise ScoreError("resources.use_gpu is true but the Ray cluster has no GPUs")
    n = r.num_actors or (max(1, int(gpus / r.gpus_per_actor)) if use_gpu else 1)
    # Ray Data runs preparation inside the scorer actors when both ask for the same CPUs and no
    # GPU; otherwise in separate CPU tasks, which must find a CPU the actors leave free or the
    # job waits forever.
    fused = not use_gpu and r.prep_cpus == r.cpus_per_actor
    cpus = float(ray.cluster_resources().get("CPU", 0))
    if not fused and n * r.cpus_per_actor + r.prep_cpus > cpus:
        raise ScoreError(
            f"{n} scorer actor(s) x resources.cpus_per_actor={r.cpus_per_actor} leave less than "
            f"resources.prep_cpus={r.prep_cpus} of the cluster's {cpus:g} CPUs for preparation; "
            "lower num_actors or cpus_per_actor, or set prep_cpus equal to cpus_per_actor"
        )
    return use_gpu, n


FORMAT = 2  # manifest layout: 2 records every input file (size, time, fingerprint, chunks)


def _check_columns(cfg: ScoreConfig, entries: list[dict]) -> None:
    """Columns a file's header or schema lacks: when no input has the text column the job stops
    (naming the columns it has); otherwise such a file's rows are invalid and it is said once,
    like a kept column a file lacks (its values are null)."""
    io = cfg.io
    reserved = set(OUTPUT_SCHEMA.names) | {"note"}
    if clash := [k for k in io.keep_columns if k in reserved]:
        raise ScoreError(
            f"--keep-columns {', '.join(clash)}: the output already has such a column "
            "(--keep-text copies the note text)"
        )
    known = [e for e in entries if e.get("header")]
    lacking = [e for e in known if io.text_column not in e["header"]]
    if lacking and len(lacking) == len(known) and len(known) == len(entries):
        e = lacking[0]
        raise ScoreError(
            f"{e['source']} has no column {io.text_column!r} (its columns: "
            f"{', '.join(e['header'])}); set --text-column"
        )
    for e in lacking:
        log.warning("%s has no column %r: its rows are invalid_input", e["source"], io.text_column)
    for e in known:
        if missing := [k for k in io.keep_columns if k not in e["header"]]:
            log.warning("%s has no column %s: kept as null", e["source"], ", ".join(missing))


def run_scoring(cfg: ScoreConfig, scorer: type = Scorer) -> dict[str, Any]:
    """Score `cfg.io.input` into `cfg.io.output` (resuming; `io.update`: adding what is new);
    returns the manifest. `scorer` is the actor class (a `Scorer`; benchmarks pass one whose
    forward is a stand-in)."""
    import ray

    if not cfg.io.input:
        raise ScoreError("no input: pass --input PATH (files, folders or globs)")
    started = time.time()
    prov = provenance(cfg)
    tok_path = tokenizer_path(cfg)
    tok = tokenizer_for(tok_path)
    try:  # p_error is read over the decision tokens; no second rule under the same version
        decision_ids(tok)
    except ValueError as e:
        raise ScoreError(
            f"{tok_path}: this tokenizer cannot be scored with scoring version {SCORING_VERSION} "
            f"({e}); the answer's first token must tell good and each category apart"
        ) from None
    overhead = prompt_overhead(tok)
    if cfg.scoring.max_prompt_tokens < overhead + 16:
        raise ScoreError(
            f"scoring.max_prompt_tokens={cfg.scoring.max_prompt_tokens} leaves no room for a "
            f"note (template + system prompt take {overhead} tokens)"
        )
    out = Output(cfg.io.output)
    previous = out.read_text(MANIFEST)
    names = out.names()
    done = {n.removesuffix(".parquet") for n in names if n.startswith("part-")}
    old: dict[str, Any] | None = None
    if previous is not None:
        old = json.loads(previous)
        if old.get("format") != FORMAT:
            raise ScoreError(
                f"{cfg.io.output} was written by an earlier version of the scorer (its manifest "
                "records no input files); score into a new --output"
            )
        was = old.get("identity", {}).get("scoring_version") or "v1"
        if was != SCORING_VERSION:
            raise ScoreError(
                f"{cfg.io.output} holds scores read with scoring version {was}; this package "
                f"reads p_error with version {SCORING_VERSION} (over the decision tokens), so "
                "the two must not be mixed: score into a new --output"
            )
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
    t_plan = time.monotonic()
    # The chunk size this output was cut with: recorded by its first run (an output written
    # before the record: io.chunk_rows, which the identity check has just matched). A new
    # output is cut for the scorer actors this run starts.
    chunk_rows = int(old.get("chunk_rows") or cfg.io.chunk_rows) if old else cfg.io.chunk_rows
    actors = _resources(cfg) if old is None else None
    entries, news, chunk_rows = plan_inputs(
        files,
        old["inputs"] if old else None,
        chunk_rows,
        out,
        cfg.io.update,
        cfg.io.output,
        actors=actors[1] if actors else None,
    )
    _check_columns(cfg, entries)
    chunks = chunks_of(entries, out)
    planned = {ch.part for ch in chunks}
    if unplanned := sorted(done - planned):  # never leave rows no input accounts for
        raise ScoreError(
            f"{cfg.io.output} holds {len(unplanned)} part file(s) that no recorded input "
            f"accounts for (e.g. {unplanned[0]}.parquet); use a new --output"
        )
    retry = failed_rows(out, done) if cfg.io.retry_failed else {}
    if cfg.io.retry_failed:
        n_failed = sum(len(v) for v in retry.values())
        log.info(
            "--retry-failed: %d failed row(s) in %d part(s) to score again", n_failed, len(retry)
        )
    todo = [ch for ch in chunks if ch.part not in done or ch.part in retry]
    columns = [cfg.io.text_column, cfg.io.id_column, *cfg.io.keep_columns]
    for e in entries:  # staged files whose pieces this run needs and lacks (a resume, a retry)
        if e["layout"] == "staged" and any(ch.source == e["source"] for ch in todo):
            stage(e, todo, out, columns, chunk_rows)
    manifest: dict[str, Any] = {
        "format": FORMAT,
        "state": "running",
        "identity": _identity(prov),
        "provenance": prov,
        "inputs": entries,
        "chunk_rows": chunk_rows,  # the size the chunks were cut with (<= io.chunk_rows)
        "chunks": len(chunks),
        "started": time.strftime("%Y-%m-%dT%H:%M:%S%z", time.localtime(started)),
    }
    out.write_atomic(MANIFEST, json.dumps(manifest, indent=1).encode())
    log.info(
        "%d input file(s), %d chunk(s), %d already done (planned in %.1fs)",
        len(files),
        len(chunks),
        len(chunks) - len(todo),
        time.monotonic() - t_plan,
    )
    if old is not None and cfg.io.update:
        if todo:
            log.info(
                "--update: %d new file(s), %d grown, %s row(s) to score",
                news["added"],
                news["grown"],
                f"{sum(ch.count for ch in todo):,}",
            )
        else:
            log.info("--update: nothing new since the last run")

    scored = 0
    seen: dict[str, int] = {}
    if todo:
        use_gpu, n_actors = actors or _resources(cfg)
        n_actors = min(n_actors, len(todo))  # a resume of a few chunks loads no idle models
        counter = progress_counter()
        cfg_dict = to_dict(cfg)
        items = [
            {
                **asdict(ch),
                "header": list(ch.header),
                "part": ch.part,
                "retry": ch.part in retry,
                "only": retry.get(ch.part, []),
            }
            for ch in todo
        ]
        ds = ray.data.from_items(items, override_num_blocks=len(items))
        ds = ds.map_batches(
            prepare_batch,
            fn_kwargs={"cfg": cfg_dict, "tokenizer": tok_path, "progress": counter},
            batch_size=1,
            batch_format="pyarrow",
            num_cpus=cfg.resources.prep_cpus,
        )
        ds = ds.map_batches(
            scorer,
            fn_constructor_kwargs={"cfg": cfg_dict, "tokenizer": tok_path, "progress": counter},
            batch_size=None,  # one task per chunk: rows stream out chunk by chunk
            batch_format="pyarrow",
            # One chunk in flight per actor: with Ray Data's default (2) the actor ready first
            # took both chunks of a 925-row file cut for 2 actors while the other stood idle
            # (seen on 2 CPUs); a queued chunk now waits for whichever actor is free first.
            compute=ray.data.ActorPoolStrategy(size=n_actors, max_tasks_in_flight_per_actor=1),
            num_cpus=cfg.resources.cpus_per_actor,
            num_gpus=cfg.resources.gpus_per_actor if use_gpu else 0,
        )
        scored = collect(
            ds,
            todo,
            out,
            cfg.io.keep_text,
            json.dumps(prov).encode(),
            retry,
            counter,
            tuple(cfg.io.keep_columns),
        )
        try:
            seen = ray.get(counter.noted.remote(), timeout=30)
        except Exception as e:  # the counter was lost with its node: the scores are all there
            log.warning("the job's counter did not answer (%s): slow paths not counted", e)
            seen = {
                "notes scored with their slow paths uncounted (the job's counter was lost)": scored
            }
        for what, n in seen.items():
            log.warning("%s: %s", what, f"{n:,}")

    table = read_output(cfg.io.output, columns=["note_id", "status", "truncated", "off_decision"])
    ids = Counter(table.column("note_id").to_pylist())
    dups = sorted(i for i, n in ids.items() if n > 1)
    if dups:
        log.warning("%d note_id value(s) occur more than once (see %s)", len(dups), MANIFEST)
    out.remove_tree(STAGING)  # made again if a later run needs it
    elapsed = time.time() - started
    manifest.update(
        state="complete",
        rows=table.num_rows,
        counts=dict(sorted(Counter(table.column("status").to_pylist()).items())),
        truncated=sum(1 for t in table.column("truncated").to_pylist() if t),
        off_decision=off_decision_summary(table.column("off_decision").to_pylist()),
        duplicate_note_ids={"count": len(dups), "examples": dups[:20]},
        this_run={
            "chunks": len(todo),
            "rows": scored,
            "seconds": round(elapsed, 3),
            "notes_per_s": round(scored / elapsed, 3) if elapsed else None,
            "slow_paths": seen,
        },
        finished=time.strftime("%Y-%m-%dT%H:%M:%S%z"),
    )
    out.write_atomic(MANIFEST, json.dumps(manifest, indent=1).encode())
    return manifest


def off_decision_summary(values: list[float | None]) -> dict[str, Any]:
    """Mean and max of the first-token mass off the decision tokens over the scored rows, and
    how many rows put more than half of it there (a model that has not learned the answer
    format: its p_error rests on the little mass left)."""
    v = [x for x in values if x is not None]
    if not v:
        return {"rows": 0, "mean": None, "max": None, "over_half": 0}
    return {
        "rows": len(v),
        "mean": round(sum(v) / len(v), 6),
        "max": round(max(v), 6),
        "over_half": sum(1 for x in v if x > 0.5),
    }
