"""Batch scoring: pure post-processing, input planning, the scorer, the Ray Data job, resume.

Tolerance: the Ray Data pipeline merges the adapter (float32 on CPU) and runs left-padded,
length-bucketed batches; the reference runs the unmerged adapter one note at a time. Both are
float32, so P(good) = 1 - p_error agrees to a relative 1e-4 (seen: ~1e-6), and greedy
generations are identical.
"""

from __future__ import annotations

import json
import os
import random
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from procs import kill_leftovers

from benchmarks.archive import jl, make_notes
from discriminator import scoring
from discriminator.config import ScoreConfig, load_config, to_dict
from discriminator.prompt import ANSWER_PREFIX, PROMPT_VERSION, SCORING_VERSION, parse_reason

REPO = Path(__file__).resolve().parents[1]
REL_TOL = 1e-4


def write_jsonl(path: Path, lines: list[bytes]) -> Path:
    path.write_bytes(b"".join(lines))
    return path


# ---------------------------------------------------------------------------------------------
# Fixtures


@pytest.fixture(scope="module")
def adapter_dir(lora_adapter_dir) -> Path:
    return lora_adapter_dir


def smoke_cfg(tiny_model_dir, adapter_dir, inputs, output, **sets) -> ScoreConfig:
    overrides = [f"model.name_or_path={tiny_model_dir}", f"adapter={adapter_dir}"]
    overrides += [f"{k.replace('__', '.')}={v}" for k, v in sets.items()]
    cfg = load_config(ScoreConfig, REPO / "ray_jobs/configs/smoke_score.yaml", overrides)
    cfg.io.input = [str(p) for p in inputs]
    cfg.io.output = str(output)
    return cfg


@pytest.fixture(scope="module")
def mixed_input(tmp_path_factory) -> tuple[Path, dict]:
    """Good rows, an id column, blank lines, bad rows and a note far over the prompt budget."""
    d = tmp_path_factory.mktemp("mixed")
    notes = make_notes(6)
    lines = [jl({"note": n}) for n in notes[:3]]
    lines += [b"\n", b"   \n"]  # blank: not rows
    lines += [jl({"id": "A-1", "note": notes[3]}), jl({"id": 17, "note": notes[4]})]
    lines += [jl({"note": ""}), jl({"note": "   "}), jl({"note": 5}), jl({"text": "x"})]
    lines += [b"not json at all\n", b"\xff\xfe\x00 not utf-8\n", b"[1, 2]\n", b"null\n"]
    lines += [jl({"note": " ".join(make_notes(1, seed=9, words=4000))})]  # far over budget
    lines += [json.dumps({"note": notes[5]}).encode()]  # last line without newline
    path = write_jsonl(d / "notes.jsonl", lines)
    expect = {
        "notes.jsonl:1": "ok", "notes.jsonl:2": "ok", "notes.jsonl:3": "ok",
        "A-1": "ok", "17": "ok",
        "notes.jsonl:8": "invalid_input", "notes.jsonl:9": "invalid_input",
        "notes.jsonl:10": "invalid_input", "notes.jsonl:11": "invalid_input",
        "notes.jsonl:12": "invalid_input", "notes.jsonl:13": "invalid_input",
        "notes.jsonl:14": "invalid_input", "notes.jsonl:15": "invalid_input",
        "notes.jsonl:16": "ok", "notes.jsonl:17": "ok",
    }  # fmt: skip
    return path, expect


# ---------------------------------------------------------------------------------------------
# Pure functions


def test_p_error_is_taken_over_the_decision_tokens():
    """p_error = P(errors) / (P(good) + P(errors)); the rest of the mass is off_decision."""
    import torch

    v, good, errs = 50, 7, [3, 11, 20, 30, 41]
    p, off = scoring.decision_probs(np.zeros((1, v)), good, errs)
    assert p[0] == pytest.approx(5 / 6) and off[0] == pytest.approx(1 - 6 / v)
    sure_good = np.zeros((1, v))
    sure_good[0, good] = 1e4  # also checks the max-shift: no overflow
    sure_bad = np.zeros((1, v))
    sure_bad[0, 3] = 1e4
    assert scoring.p_error_from_logits(sure_good, good, errs)[0] == pytest.approx(0.0, abs=1e-12)
    assert scoring.p_error_from_logits(sure_bad, good, errs)[0] == pytest.approx(1.0)
    # nearly all mass on another token: off_decision ~1, and p_error still reads the little
    # that is left on the decision tokens (in log space: nothing underflows to 0/0)
    elsewhere = np.zeros((1, v))
    elsewhere[0, 0] = 1e4
    elsewhere[0, good] = 2.0
    p, off = scoring.decision_probs(elsewhere, good, errs)
    assert off[0] == pytest.approx(1.0) and p[0] == pytest.approx(5 / (5 + np.exp(2.0)))
    # an undertrained model: most mass off the decision, errors hold more of what remains;
    # 1 - P(good) would call it error-heavy for the wrong reason
    probs = np.full((1, v), 1e-9)
    probs[0, 0], probs[0, good], probs[0, errs] = 0.9, 0.08, 0.004
    p, off = scoring.decision_probs(np.log(probs), good, errs)
    assert p[0] == pytest.approx(0.02 / 0.10, rel=1e-5) and off[0] == pytest.approx(0.9, rel=1e-5)
    logits = torch.randn(4, v, generator=torch.Generator().manual_seed(0)) * 5
    sm = torch.softmax(logits.double(), -1).numpy()
    want = sm[:, errs].sum(-1) / (sm[:, errs].sum(-1) + sm[:, good])
    got, off = scoring.decision_probs(logits.numpy(), good, errs)
    np.testing.assert_allclose(got, want, rtol=1e-9)
    np.testing.assert_allclose(off, 1 - sm[:, errs].sum(-1) - sm[:, good], rtol=1e-9, atol=1e-12)


def test_a_tokenizer_whose_labels_share_a_first_token_is_refused_before_scoring(
    tiny_model_dir, tmp_path, monkeypatch
):
    """p_error has one definition per scoring version: no silent `1 - P(good)` fallback."""
    from discriminator.scoring import job

    def shared(tokenizer):
        raise ValueError("categories share a first answer token: {'good': 5, 'Timeline': 9, ...}")

    monkeypatch.setattr(job, "decision_ids", shared)
    notes = tmp_path / "notes.jsonl"
    notes.write_bytes(b"".join(jl({"note": n}) for n in make_notes(2)))
    cfg = load_config(
        ScoreConfig,
        REPO / "ray_jobs/configs/smoke_score.yaml",
        [f"model.name_or_path={tiny_model_dir}"],
    )
    cfg.io.input, cfg.io.output = [str(notes)], str(tmp_path / "out")
    with pytest.raises(scoring.ScoreError, match=r"cannot be scored with scoring version v2"):
        scoring.run_scoring(cfg)
    assert not (tmp_path / "out" / "_manifest.json").exists()


def test_off_decision_summary():
    s = scoring.off_decision_summary([0.1, None, 0.7, 0.4])
    assert s == {"rows": 3, "mean": pytest.approx(0.4), "max": 0.7, "over_half": 1}
    assert scoring.off_decision_summary([None]) == {
        "rows": 0, "mean": None, "max": None, "over_half": 0,
    }  # fmt: skip


def test_bucket_batches_respects_budget_and_covers_every_row():
    rng = random.Random(0)
    lengths = [rng.randint(5, 300) for _ in range(200)] + [5000]
    batches = scoring.bucket_batches(lengths, batch_tokens=1024, max_batch_size=8)
    flat = [i for b in batches for i in b]
    assert sorted(flat) == list(range(len(lengths)))  # every row exactly once
    assert [lengths[i] for i in flat] == sorted(lengths)  # length-sorted: little padding
    for b in batches:
        assert len(b) <= 8
        assert len(b) * max(lengths[i] for i in b) <= 1024 or len(b) == 1
    assert [lengths[i] for i in batches[-1]] == [5000]  # over budget: alone
    assert scoring.bucket_batches([], 10, 2) == []


def test_finish_row_modes():
    f = scoring.finish_row
    assert f(0.2, None, "threshold", 0.5) == {
        "verdict": "good",
        "reason": "good",
        "category": "good",
    }
    gen = 'Timeline error: discharge before admission."}'
    assert f(0.9, gen, "threshold", 0.5) == {
        "verdict": "error",
        "reason": "Timeline error: discharge before admission.",
        "category": "timeline",
    }
    assert f(0.9, None, "never", 0.5) == {"verdict": "error", "reason": None, "category": None}
    # always: the generation decides; p_error only when the generation cannot be parsed
    assert f(0.9, 'good"}', "always", 0.5)["verdict"] == "good"
    assert f(0.1, gen, "always", 0.5)["verdict"] == "error"
    assert f(0.9, "", "always", 0.5)["verdict"] == "error"
    # threshold: prefill says error, decoding says good -> keep the verdict, no reason invented
    assert f(0.9, 'good"}', "threshold", 0.5) == {
        "verdict": "error",
        "reason": None,
        "category": "other",
    }


def test_forced_first_token_is_the_likeliest_error_category():
    # "good" is the single likeliest token (0.40) but the error tokens hold 0.60: flagged at 0.5
    good, cats = 0, [3, 5, 7]
    probs = np.full((2, 10), 1e-6)
    probs[0, [good, 3, 5, 7]] = [0.40, 0.15, 0.35, 0.10]
    probs[1, [good, 3, 5, 7]] = [0.05, 0.20, 0.05, 0.70]
    logits = np.log(probs)
    assert list(scoring.p_error_from_logits(logits, good, cats) >= 0.5) == [True, True]
    assert scoring.forced_first_tokens(logits, cats).tolist() == [5, 7]  # never `good`
    # the decided category names the row when the generated reason does not parse to one
    row = scoring.finish_row(0.6, "Tim garbage", "threshold", 0.5, decided="timeline")
    assert row == {"verdict": "error", "reason": "Tim garbage", "category": "timeline"}
    row = scoring.finish_row(0.6, 'PHI error: name differs."}', "threshold", 0.5, decided="phi")
    assert row["category"] == "phi" and row["reason"] == "PHI error: name differs."


def test_flagged_notes_get_a_reason_that_follows_the_verdict(tiny_model_dir, adapter_dir, tmp_path):
    """Every note flagged by the prefill gets a reason starting from the likeliest error-category
    token, and that category, even where greedy decoding alone would start elsewhere."""
    import torch

    from discriminator.prompt import CATEGORIES, first_token_ids

    cfg = smoke_cfg(tiny_model_dir, adapter_dir, [], tmp_path / "o", scoring__threshold=0.0)
    scorer = scoring.Scorer(to_dict(cfg), scoring.tokenizer_path(cfg))
    seqs = [
        scoring.fit_prompt(scorer.tok, n, cfg.scoring.max_prompt_tokens)[0]
        for n in make_notes(6, seed=5)
    ]
    rows = scorer.score_batch(seqs)
    firsts = first_token_ids(scorer.tok)
    logits = scoring.last_logits(scorer.model, seqs, scorer.tok.pad_token_id, torch.device("cpu"))
    greedy = logits.argmax(-1).tolist()
    by_cat = logits[:, [firsts[c] for c in CATEGORIES]].argmax(-1).tolist()
    assert any(g not in firsts.values() for g in greedy)  # plain greedy would not start with one
    for row, want in zip(rows, by_cat):
        assert row["verdict"] == "error" and row["category"] == CATEGORIES[want]
        token = scorer.tok.decode([firsts[CATEGORIES[want]]]).strip()
        assert row["reason"] and row["reason"].startswith(token)


def test_scrub_error_never_echoes_the_message():
    e = ValueError("patient John Smith MRN 123")
    msg = scoring.scrub_error(e, "prefill")
    assert msg == "ValueError during prefill" and "John" not in msg


# ---------------------------------------------------------------------------------------------
# Input planning and reading


def test_plan_reads_every_line_once_across_chunks(tmp_path):
    lines = [jl({"note": f"n{i}"}) for i in range(10)]
    lines[3] = b"\r\n"  # blank (CRLF)
    lines[6] = b"broken {\n"
    lines.append(b'{"note": "no newline"}')
    p = write_jsonl(tmp_path / "a.jsonl", lines)
    for chunk_rows in (1, 3, 4, 11, 100):
        chunks = scoring.plan_chunks(scoring.expand_inputs([str(p)]), chunk_rows)
        got = []
        for ch in chunks:
            got += scoring.read_chunk({**ch.__dict__}, ["note", "id"])
        assert [g[0] for g in got] == list(range(1, 12)), chunk_rows
        assert got[3][1] is scoring.BLANK and "not valid JSON" in got[6][2]
        assert got[10][1] == {"note": "no newline"}
        assert len({ch.part for ch in chunks}) == len(chunks)
    # parquet with several row groups, chunks across group boundaries
    table = pa.table({"note": [f"p{i}" for i in range(25)], "id": list(range(25))})
    pq.write_table(table, tmp_path / "b.parquet", row_group_size=7)
    chunks = scoring.plan_chunks([str(tmp_path / "b.parquet")], 10)
    rows = [r for ch in chunks for r in scoring.read_chunk({**ch.__dict__}, ["note", "id"])]
    assert [r[1]["note"] for r in rows] == [f"p{i}" for i in range(25)]
    assert [r[0] for r in rows] == list(range(1, 26))


def test_expand_inputs_files_folders_globs_and_uris(tmp_path):
    (tmp_path / "sub").mkdir()
    for name in ("a.jsonl", "sub/b.jsonl", "sub/c.parquet", "sub/_skip.jsonl", "x.txt"):
        (tmp_path / name).write_bytes(b"")
    rels = ["a.jsonl", "sub/b.jsonl", "sub/c.parquet"]
    want = [str(tmp_path / n) for n in rels]

    def found(spec: str) -> list[tuple[str, str]]:
        return [(f.uri, f.rel) for f in scoring.expand_inputs([spec])]

    assert found(str(tmp_path)) == list(zip(want, rels))  # named relative to the folder given
    assert found(f"{tmp_path}/**/*.jsonl") == list(zip(want, rels))[:2]  # to the glob's base
    assert found(f"{tmp_path}/*.jsonl") == [(want[0], "a.jsonl")]
    assert found(f"file://{tmp_path}/sub") == [(f"file://{want[1]}", "b.jsonl"),
                                               (f"file://{want[2]}", "c.parquet")]  # fmt: skip
    assert found(str(tmp_path / "sub" / "b.jsonl")) == [(want[1], "b.jsonl")]  # a file: its name
    with pytest.raises(scoring.ScoreError, match="not found"):
        scoring.expand_inputs([str(tmp_path / "missing.jsonl")])
    with pytest.raises(scoring.ScoreError, match="unsupported"):
        scoring.expand_inputs([str(tmp_path / "x.txt")])


def test_shipped_configs_load_and_cli_precedence(capsys):
    from ray_jobs import score

    for name in ("score.yaml", "smoke_score.yaml"):
        load_config(ScoreConfig, REPO / "ray_jobs/configs" / name)
    argv = ["--config", str(REPO / "ray_jobs/configs/score.yaml"), "--threshold", "0.3"]
    argv += ["--input", "a.jsonl", "b/", "--keep-text", "--print-config"]
    assert score.main(argv) == 0
    printed = capsys.readouterr().out
    assert "threshold: 0.3" in printed and "keep_text: true" in printed
    assert score.main([*argv, "--set", "scoring.threshold=0.7"]) == 0  # --set wins over flags
    assert "threshold: 0.7" in capsys.readouterr().out
    assert score.main(["--set", "scoring.nope=1", "--print-config"]) == 2


# ---------------------------------------------------------------------------------------------
# The scorer, in-process


def test_failed_batch_retries_rows_and_marks_only_the_bad_one(
    tiny_model_dir, adapter_dir, tmp_path
):
    cfg = smoke_cfg(tiny_model_dir, adapter_dir, [], tmp_path / "o", scoring__generate="never")
    tok = scoring.tokenizer_path(cfg)
    scorer = scoring.Scorer(to_dict(cfg), tok)
    notes = make_notes(4, seed=3)
    rows = []
    for i, note in enumerate(notes):
        ids, trunc = scoring.fit_prompt(scorer.tok, note, cfg.scoring.max_prompt_tokens)
        rows.append({"_part": "p", "_row": i + 1, "note_id": f"n{i}", "status": "pending",
                     "error": None, "input_ids": ids, "n_tokens": len(ids), "truncated": trunc,
                     "note": None})  # fmt: skip
    batch = pa.Table.from_pylist(rows, schema=scoring.PREP_SCHEMA)
    clean = scorer(batch).to_pylist()
    assert [r["status"] for r in clean] == ["ok"] * 4

    poison = rows[2]["input_ids"]
    real_prefill = scorer.prefill

    def faulty(seqs):
        if any(s == poison for s in seqs):
            raise RuntimeError(f"boom: {notes[2]}")  # a message that echoes input
        return real_prefill(seqs)

    scorer.prefill = faulty
    got = scorer(batch).to_pylist()
    assert [r["status"] for r in got] == ["ok", "ok", "failed", "ok"]
    assert got[2]["error"] == "RuntimeError during prefill"
    assert got[2]["verdict"] is None and got[2]["p_error"] is None
    for a, b in zip(got, clean):
        if a["status"] == "ok":  # neighbours scored alone match their batched scores
            assert a["p_error"] == pytest.approx(b["p_error"], rel=1e-6)


ODD_NOTES = ["  leading space", "trailing \n\n", "<|eot_id|> a special token inside",
             "\n\nnewlines first", "é unicode 💊", "", " ", "word " * 4000]  # fmt: skip


def test_fit_prompts_reuses_the_prompt_head_and_gives_the_ids_of_whole_tokenization(
    tiny_model_dir,
):
    """The template's fixed head is tokenized once per tokenizer; every prompt's ids are still
    exactly those of tokenizing it whole (`fit_prompt`), fitted or cut to the budget."""
    from discriminator.modeling import load_tokenizer
    from discriminator.scoring import prepare

    tok = load_tokenizer(str(tiny_model_dir))
    notes = make_notes(40, seed=7, words=(50, 400)) + ODD_NOTES
    for budget in (3072, 300):
        got = scoring.fit_prompts(tok, notes, budget)
        assert got == [scoring.fit_prompt(tok, n, budget) for n in notes]
    head = prepare.prompt_head(tok)
    assert len(head.ids) > 100, "the system prompt should be in the reused head"
    assert head.text.endswith("<|end_header_id|>")
    assert (
        head.checked == prepare.PromptHead.CHECK_NOTES
    )  # checked on the first notes, then trusted


def test_prompt_head_is_turned_off_when_the_tokenizer_merges_across_it(tiny_model_dir, caplog):
    from discriminator.modeling import load_tokenizer
    from discriminator.prompt import render_prompt
    from discriminator.scoring import prepare

    tok = load_tokenizer(str(tiny_model_dir))
    head = prepare.PromptHead(tok)
    full = render_prompt(tok, "A")
    cut = full.index("clinical") + 3  # inside a word: its tokens merge across the cut
    head.text = full[:cut]
    head.ids = list(tok(head.text, add_special_tokens=False)["input_ids"])
    notes = make_notes(3, seed=8)
    rendered = [render_prompt(tok, n) for n in notes]
    with caplog.at_level("WARNING", logger="discriminator.scoring.prepare"):
        got = head.encode(tok, rendered)
    assert got == [list(x) for x in tok(rendered, add_special_tokens=False)["input_ids"]]
    assert head.text == "" and "prompt prefix reuse disabled" in caplog.text
    assert prepare.SEEN[prepare.HEAD_MERGES] >= 1  # and said in the job's summary


class _NoBatches:
    """A tokenizer that fails on a list of texts (one at a time still works)."""

    def __init__(self, tok):
        self._tok = tok

    def __getattr__(self, name):
        return getattr(self._tok, name)

    def __call__(self, text, **kw):
        if isinstance(text, list):
            raise RuntimeError("batch tokenization broke")
        return self._tok(text, **kw)


def test_a_failed_batch_tokenization_is_counted_and_said_not_swallowed(tiny_model_dir, caplog):
    """The slow per-note path gives the same ids, and the notes that took it are counted
    (`prepare.SEEN`, sent to the job's counter and printed in its summary) and logged."""
    from discriminator.modeling import load_tokenizer
    from discriminator.scoring import prepare

    tok = load_tokenizer(str(tiny_model_dir))
    notes = make_notes(5, seed=3)
    before = prepare.SEEN[prepare.SLOW_TOKENIZATION]
    with caplog.at_level("WARNING", logger="discriminator.scoring.prepare"):
        got = scoring.fit_prompts(_NoBatches(tok), notes, 3072)
    assert got == [scoring.fit_prompt(tok, n, 3072) for n in notes]
    assert prepare.SEEN[prepare.SLOW_TOKENIZATION] - before == 5
    assert "5 note(s) tokenized one at a time" in caplog.text


def test_slow_paths_reach_the_counter_and_a_lost_counter_fails_no_batch(ray_local, caplog):
    import ray

    from discriminator.scoring import prepare

    counter = scoring.write.progress_counter()
    prepare.SEEN["a test's slow path"] += 3
    prepare.report_seen(counter)
    assert ray.get(counter.noted.remote())["a test's slow path"] == 3
    prepare.report_seen(counter)  # only what is new since the last report is sent
    assert ray.get(counter.noted.remote())["a test's slow path"] == 3
    ray.kill(counter)  # its node lost: the batch goes on, the counts are said in the log
    prepare.SEEN["a test's slow path"] += 1
    with caplog.at_level("WARNING", logger="discriminator.scoring.prepare"):
        prepare.report_seen(counter)
    assert "slow paths not reported to the job" in caplog.text
    del prepare.SEEN["a test's slow path"], prepare._SENT["a test's slow path"]


def test_per_tokenizer_caches_keep_no_tokenizer_alive_and_stay_bounded():
    import gc
    import weakref

    from discriminator.scoring import prepare

    class Tok:
        pass

    table: dict = {}
    made = []
    keep = [Tok() for _ in range(prepare.PER_TOKENIZER_CACHE + 3)]
    for t in keep:
        prepare._once(table, t, lambda t: made.append(t) or len(made))
    assert len(table) == prepare.PER_TOKENIZER_CACHE  # the oldest were dropped
    assert prepare._once(table, keep[-1], lambda t: 99) == len(keep)  # computed once
    gone = Tok()
    ref = weakref.ref(gone)
    prepare._once(table, gone, lambda t: 0)
    del gone, made[:]
    gc.collect()
    assert ref() is None, "the cache kept a dead tokenizer alive"


def test_scorer_counts_progress_in_few_calls_and_loses_none(
    ray_local, tiny_model_dir, adapter_dir, tmp_path
):
    """The progress counter gets every scored row, but not one remote call per bucket."""
    import ray

    cfg = smoke_cfg(tiny_model_dir, adapter_dir, [], tmp_path / "o", scoring__generate="never",
                    scoring__max_batch_size=1)  # fmt: skip
    counter = scoring.write.progress_counter()
    scorer = scoring.Scorer(to_dict(cfg), scoring.tokenizer_path(cfg), progress=counter)
    rows = []
    for i, note in enumerate(make_notes(6, seed=4)):
        ids, trunc = scoring.fit_prompt(scorer.tok, note, cfg.scoring.max_prompt_tokens)
        rows.append({"_part": "p", "_row": i + 1, "note_id": f"n{i}", "status": "pending",
                     "error": None, "input_ids": ids, "n_tokens": len(ids), "truncated": trunc,
                     "note": None})  # fmt: skip
    scorer(pa.Table.from_pylist(rows, schema=scoring.PREP_SCHEMA))  # 6 buckets of one row
    assert ray.get(counter.get.remote()) == 6  # flushed at the end of the chunk

    scorer.REPORT_EVERY_S = float("inf")
    scorer.reported_at = 0.0
    for _ in range(50):
        scorer.report_scored(1)
    assert ray.get(counter.get.remote()) == 6  # nothing sent between reports
    scorer.report_scored(0, flush=True)
    assert ray.get(counter.get.remote()) == 56

    scorer.REPORT_EVERY_S = 0.0  # due every time: each count goes out at once
    scorer.report_scored(3)
    assert ray.get(counter.get.remote()) == 59


# ---------------------------------------------------------------------------------------------
# The Ray Data job


def test_pipeline_statuses_ids_provenance(
    ray_local, tiny_model_dir, adapter_dir, mixed_input, tmp_path
):
    path, expect = mixed_input
    cfg = smoke_cfg(tiny_model_dir, adapter_dir, [path], tmp_path / "out1")
    cfg.io.chunk_rows = 4
    manifest = scoring.run_scoring(cfg)
    t = scoring.read_output(str(tmp_path / "out1"))
    assert t.schema.names == scoring.OUTPUT_SCHEMA.names  # no note text without --keep-text
    rows = {r["note_id"]: r for r in t.to_pylist()}
    assert t.num_rows == len(expect) == len(rows)  # one row per non-blank line, unique ids
    assert {k: r["status"] for k, r in rows.items()} == expect
    for r in rows.values():
        if r["status"] == "ok":
            assert r["verdict"] in ("good", "error") and 0 <= r["p_error"] <= 1
            assert 0 <= r["off_decision"] <= 1
            assert r["n_tokens"] <= cfg.scoring.max_prompt_tokens and r["error"] is None
        else:
            assert r["verdict"] is None and r["error"]
    assert rows["notes.jsonl:16"]["truncated"] is True
    assert rows["notes.jsonl:1"]["truncated"] is False
    assert rows["notes.jsonl:8"]["error"] == "'note' is empty"
    assert "UTF-8" in rows["notes.jsonl:13"]["error"]
    assert manifest["counts"] == {"invalid_input": 8, "ok": 7}
    assert manifest["duplicate_note_ids"]["count"] == 0
    assert manifest["off_decision"]["rows"] == 7  # the ok rows
    assert 0 <= manifest["off_decision"]["mean"] <= manifest["off_decision"]["max"] <= 1

    # provenance: parquet file metadata and the manifest
    out = tmp_path / "out1"
    parts = sorted(out.glob("part-*.parquet"))
    meta = json.loads(pq.read_schema(parts[0]).metadata[scoring.PROVENANCE_KEY])
    assert meta["adapter_sha256"] == scoring.file_sha256(
        str(adapter_dir / "adapter_model.safetensors")
    )
    assert meta["prompt_version"] == PROMPT_VERSION and meta["base_model"] == str(tiny_model_dir)
    assert meta["package_version"] and meta["config"]["io"]["chunk_rows"] == 4
    on_disk = json.loads((out / scoring.MANIFEST).read_text())
    assert on_disk["provenance"] == meta and on_disk["state"] == "complete"
    assert [(e["uri"], e["source"]) for e in on_disk["inputs"]] == [(str(path), path.name)]
    assert (
        on_disk["inputs"][0]["sha256"] == scoring.file_sha256(str(path)) and on_disk["rows"] == 15
    )
    # PHI: owner-only files and directory
    assert (out.stat().st_mode & 0o777) == 0o700
    assert all((p.stat().st_mode & 0o777) == 0o600 for p in out.iterdir())

    # same input, a fresh output directory: identical ids and scores
    cfg.io.output = str(tmp_path / "out2")
    scoring.run_scoring(cfg)
    again = {r["note_id"]: r for r in scoring.read_output(cfg.io.output).to_pylist()}
    assert again.keys() == rows.keys()
    for k, r in rows.items():
        assert again[k]["status"] == r["status"] and again[k]["verdict"] == r["verdict"]

    # a re-run into a finished directory scores nothing; a different job there is refused
    cfg.io.output = str(out)
    assert scoring.run_scoring(cfg)["this_run"]["rows"] == 0
    cfg.scoring.threshold = 0.9
    with pytest.raises(scoring.ScoreError, match="different job"):
        scoring.run_scoring(cfg)
    # an output read with the earlier p_error definition (1 - P(good)) is never continued
    cfg.scoring.threshold = 0.5
    old = json.loads((out / scoring.MANIFEST).read_text())
    assert old["identity"]["scoring_version"] == SCORING_VERSION == "v2"
    del old["identity"]["scoring_version"], old["provenance"]["scoring_version"]
    (out / scoring.MANIFEST).write_text(json.dumps(old))
    with pytest.raises(scoring.ScoreError, match=r"scoring version v1.*new --output"):
        scoring.run_scoring(cfg)


def reference(tiny_model_dir, adapter_dir, notes, max_prompt_tokens, max_new_tokens):
    """Plain transformers + peft, no Ray: unmerged adapter, float32, one note at a time."""
    import torch
    from peft import PeftModel
    from transformers import AutoModelForCausalLM, AutoTokenizer, GenerationConfig

    from discriminator.prompt import (
        CATEGORIES,
        answer_ids,
        first_token_ids,
        fit_note,
        prompt_overhead,
        render_prompt,
    )

    tok = AutoTokenizer.from_pretrained(adapter_dir)
    base = AutoModelForCausalLM.from_pretrained(tiny_model_dir, dtype=torch.float32)
    model = PeftModel.from_pretrained(base, adapter_dir).eval()
    prefix, good = answer_ids(tok)
    errs = [first_token_ids(tok)[c] for c in CATEGORIES]

    def read(logits):  # p_error over the decision tokens, off_decision: by hand, in float64
        probs = torch.softmax(logits[0, -1].double(), -1)
        p_good, p_errs = probs[good].item(), probs[errs].sum().item()
        return p_errs / (p_good + p_errs), 1 - p_good - p_errs

    eos = [tok.convert_tokens_to_ids(t) for t in ("<|eot_id|>", "<|end_of_text|>")]
    gen = GenerationConfig(max_new_tokens=max_new_tokens, do_sample=False, eos_token_id=eos,
                           pad_token_id=tok.pad_token_id)  # fmt: skip
    out = []
    for note in notes:
        fitted = fit_note(note, tok, max_prompt_tokens - prompt_overhead(tok))
        ids = tok(render_prompt(tok, fitted.note), add_special_tokens=False)["input_ids"] + prefix
        x = torch.tensor([ids])
        with torch.no_grad():
            p_error, off = read(model(x).logits)
            with model.disable_adapter():
                p_error_base, _ = read(model(x).logits)
            text = tok.decode(model.generate(x, generation_config=gen)[0, len(ids) :],
                              skip_special_tokens=True)  # fmt: skip
        out.append({"p_error": p_error, "off": off, "p_error_base": p_error_base, "text": text})
    return out


def test_retry_failed_rescores_only_failed_rows_in_place(
    ray_local, tiny_model_dir, adapter_dir, mixed_input, tmp_path
):
    path, expect = mixed_input
    out = tmp_path / "out"
    cfg = smoke_cfg(tiny_model_dir, adapter_dir, [path], out, io__chunk_rows=4)
    scoring.run_scoring(cfg)
    before = {p.name: p.read_bytes() for p in out.glob("part-*.parquet")}
    first = {r["note_id"]: r for r in scoring.read_output(str(out)).to_pylist()}
    # An earlier run's failure (an OOM, a bad node): the row is kept with status failed.
    victim = next(
        p
        for p in sorted(out.glob("part-*.parquet"))
        if pq.read_table(p).column("status").to_pylist().count("ok") >= 2
    )
    table = pq.read_table(victim)
    rows = table.to_pylist()
    ok = [k for k, r in enumerate(rows) if r["status"] == "ok"]
    k = ok[-1]
    failed_id = rows[k]["note_id"]
    rows[k].update(status="failed", verdict=None, p_error=None, reason=None, category=None,
                   error="RuntimeError during prefill")  # fmt: skip
    pq.write_table(pa.Table.from_pylist(rows, schema=table.schema), victim)

    cfg.io.retry_failed = True
    manifest = scoring.run_scoring(cfg)
    assert manifest["this_run"]["rows"] == 1 and manifest["this_run"]["chunks"] == 1
    after = {r["note_id"]: r for r in scoring.read_output(str(out)).to_pylist()}
    assert sorted(after) == sorted(first) and len(after) == len(expect)  # one row per input
    assert after[failed_id]["status"] == "ok"
    assert after[failed_id]["p_error"] == pytest.approx(first[failed_id]["p_error"], rel=1e-5)
    for note_id, row in after.items():
        if note_id != failed_id:
            assert row == first[note_id]
    assert [r["note_id"] for r in pq.read_table(victim).to_pylist()] == [
        r["note_id"] for r in rows
    ]  # input order kept inside the part
    for name, data in before.items():
        if name != victim.name:
            assert (out / name).read_bytes() == data  # other parts untouched
    assert scoring.run_scoring(cfg)["this_run"]["rows"] == 0  # nothing failed any more


def _provenance_adapter(src: Path, dst: Path, base: str, quantization: str = "none") -> Path:
    """`src`'s adapter files with the provenance file the train job writes beside them."""
    shutil.copytree(src, dst)
    model = {"name_or_path": base, "quantization": quantization, "double_quant": True}
    prov = {"prompt_version": PROMPT_VERSION, "base_model": base, "config": {"model": model}}
    (dst / "discriminator.json").write_text(json.dumps(prov))
    return dst


def _score_job(args: list[str], tmp_path: Path, timeout: int = 300) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k != "RAY_ADDRESS"}
    ray_tmp = tempfile.mkdtemp(prefix="rp", dir="/tmp")
    env.update(RAY_TMPDIR=ray_tmp, RAY_USAGE_STATS_ENABLED="0")
    env.update(HF_HUB_OFFLINE="1")
    try:
        return subprocess.run([sys.executable, "-m", "ray_jobs.score", *args], cwd=REPO, env=env,
                              capture_output=True, text=True, timeout=timeout)  # fmt: skip
    finally:
        kill_leftovers(ray_tmp)
        shutil.rmtree(ray_tmp, ignore_errors=True)


@pytest.mark.slow
def test_score_with_only_adapter_input_output_takes_the_adapters_base(
    tiny_model_dir, adapter_dir, tmp_path
):
    adapter = _provenance_adapter(adapter_dir, tmp_path / "adapter", str(tiny_model_dir))
    notes = write_jsonl(tmp_path / "n.jsonl", [jl({"note": n}) for n in make_notes(5, seed=2)])
    out = tmp_path / "scores"
    args = ["--adapter", str(adapter), "--input", str(notes), "--output", str(out)]
    proc = _score_job(args, tmp_path)
    assert proc.returncode == 0, (proc.stdout + proc.stderr)[-3000:]
    assert f"[score] base {tiny_model_dir} (none) + adapter" in proc.stdout
    t = scoring.read_output(str(out))
    assert sorted(t.column("note_id").to_pylist()) == [f"n.jsonl:{i}" for i in range(1, 6)]
    assert set(t.column("status").to_pylist()) == {"ok"}
    manifest = json.loads((out / scoring.MANIFEST).read_text())
    assert manifest["provenance"]["base_model"] == str(tiny_model_dir)
    # the same rows as scoring with the base named explicitly (in-process reference)
    ref = scoring.Scorer(to_dict(smoke_cfg(tiny_model_dir, adapter_dir, [], tmp_path / "x")),
                         str(adapter)).score_notes(make_notes(5, seed=2))  # fmt: skip
    got = sorted(t.to_pylist(), key=lambda r: int(r["note_id"].split(":")[1]))
    for r, want in zip(got, ref):
        assert r["p_error"] == pytest.approx(want["p_error"], abs=1e-4)


@pytest.mark.slow
def test_base_only_scores_without_the_adapter_the_config_names(
    tiny_model_dir, adapter_dir, tmp_path
):
    """`--base-only`: the base model zero-shot even when the config names an adapter (the
    baseline for `evaluate --baseline`); its provenance says so; with --adapter it is refused."""
    notes = write_jsonl(tmp_path / "n.jsonl", [jl({"note": n}) for n in make_notes(4, seed=3)])
    cfg = tmp_path / "with-adapter.yaml"
    cfg.write_text(
        (REPO / "ray_jobs/configs/smoke_score.yaml").read_text() + f"adapter: {adapter_dir}\n"
    )
    out = tmp_path / "base"
    args = ["--config", str(cfg), "--set", f"model.name_or_path={tiny_model_dir}",
            "--input", str(notes), "--output", str(out), "--generate", "never"]  # fmt: skip
    proc = _score_job([*args, "--base-only"], tmp_path)
    assert proc.returncode == 0, (proc.stdout + proc.stderr)[-3000:]
    assert "no adapter (zero-shot)" in proc.stdout
    prov = json.loads((out / scoring.MANIFEST).read_text())["provenance"]
    assert prov["adapter"] is None and prov["scored_with"] == "base model only (zero-shot)"
    t = scoring.read_output(str(out))
    assert t.num_rows == 4 and set(t.column("status").to_pylist()) == {"ok"}
    base_cfg = load_config(
        ScoreConfig,
        REPO / "ray_jobs/configs/smoke_score.yaml",
        [f"model.name_or_path={tiny_model_dir}", "adapter=null", "scoring.generate=never"],
    )
    ref = scoring.Scorer(to_dict(base_cfg), str(tiny_model_dir)).score_notes(make_notes(4, seed=3))
    got = sorted(t.to_pylist(), key=lambda r: int(r["note_id"].split(":")[1]))
    for r, want in zip(got, ref):  # the base's own p_error, not the adapter's
        assert r["p_error"] == pytest.approx(want["p_error"], abs=1e-4)
    bad = _score_job([*args, "--base-only", "--adapter", str(adapter_dir)], tmp_path, 120)
    assert bad.returncode == 2 and "--base-only scores without an adapter" in bad.stderr


@pytest.mark.parametrize(
    ("base", "sets", "needle"),
    [
        # the adapter names a hub model that is not in the (offline) cache
        ("meta-llama/Llama-3.1-8B-Instruct", [], "not in the local Hugging Face cache"),
        # the user points at a folder that does not exist
        ("/models/tiny", ["--set", "model.name_or_path=/other/llama"], "model.name_or_path is"),
    ],
)
def test_unreachable_or_mismatched_base_fails_fast_with_one_line(
    adapter_dir, tmp_path, base, sets, needle
):
    adapter = _provenance_adapter(adapter_dir, tmp_path / "adapter", base)
    notes = write_jsonl(tmp_path / "n.jsonl", [jl({"note": "x y z"})])
    args = ["--adapter", str(adapter), "--input", str(notes), "--output", str(tmp_path / "o")]
    t0 = time.monotonic()
    proc = _score_job([*args, *sets], tmp_path, timeout=60)
    assert time.monotonic() - t0 < 30
    assert proc.returncode != 0
    errors = [s for s in proc.stderr.splitlines() if s.strip()]
    assert len(errors) == 1 and errors[0].startswith("error: ") and needle in errors[0], errors
    assert "Traceback" not in proc.stdout + proc.stderr and len(proc.stdout.splitlines()) <= 2


def test_missing_base_folder_fails_fast(tmp_path):
    notes = write_jsonl(tmp_path / "n.jsonl", [jl({"note": "x y z"})])
    args = ["--set", "model.name_or_path=/nonexistent/llama", "--input", str(notes)]
    proc = _score_job([*args, "--output", str(tmp_path / "o")], tmp_path, timeout=60)
    assert proc.returncode != 0
    assert "error: base model /nonexistent/llama: no such directory" in proc.stderr


def test_pipeline_matches_plain_transformers_reference(
    ray_local, tiny_model_dir, adapter_dir, tmp_path
):
    notes = make_notes(5, seed=1, words=30) + make_notes(3, seed=2, words=120)
    path = write_jsonl(
        tmp_path / "ref.jsonl", [jl({"id": f"r{i}", "note": n}) for i, n in enumerate(notes)]
    )
    cfg = smoke_cfg(
        tiny_model_dir, adapter_dir, [path], tmp_path / "out", scoring__generate="always"
    )
    cfg.scoring.max_batch_size = 4  # several length buckets, left padding inside each
    scoring.run_scoring(cfg)
    got = {r["note_id"]: r for r in scoring.read_output(cfg.io.output).to_pylist()}
    ref = reference(str(tiny_model_dir), str(adapter_dir), notes,
                    cfg.scoring.max_prompt_tokens, cfg.scoring.max_new_tokens)  # fmt: skip
    for i, want in enumerate(ref):
        row = got[f"r{i}"]
        assert row["status"] == "ok"
        assert row["p_error"] == pytest.approx(want["p_error"], rel=REL_TOL)
        assert row["off_decision"] == pytest.approx(want["off"], rel=REL_TOL, abs=1e-9)
        # the adapter is really applied: the base alone gives a different answer, far outside the
        # tolerance the pipeline is held to (the small random adapter moves p_error ~1%)
        assert abs(want["p_error_base"] - want["p_error"]) > 20 * REL_TOL * want["p_error"]
        parsed = parse_reason(ANSWER_PREFIX + want["text"])
        if parsed.verdict != "unparsed":
            assert (row["verdict"], row["reason"]) == (parsed.verdict, parsed.reason)
        else:
            assert row["reason"] is None


# ---------------------------------------------------------------------------------------------
# Many files of both formats, bad rows, an interrupted run (the archive-scale shape, small)


def test_many_files_both_formats_one_row_per_input(ray_local, tiny_model_dir, tmp_path):
    from benchmarks.archive import write_archive
    from benchmarks.score_scale import StandInScorer

    made = write_archive(tmp_path / "in", 120, 8, words=(20, 60), bad_per_file=2)
    cfg = load_config(
        ScoreConfig,
        REPO / "ray_jobs/configs/smoke_score.yaml",
        [f"model.name_or_path={tiny_model_dir}", "io.chunk_rows=7"],
    )
    cfg.io.input, cfg.io.output = [str(tmp_path / "in")], str(tmp_path / "out")
    import ray.cloudpickle

    import benchmarks.score_scale

    ray.cloudpickle.register_pickle_by_value(benchmarks.score_scale)
    manifest = scoring.run_scoring(cfg, scorer=StandInScorer)
    t = scoring.read_output(cfg.io.output)
    ids = t.column("note_id").to_pylist()
    assert len(ids) == made["rows_in"] == len(set(ids))  # one row per input row, none twice
    assert manifest["counts"] == {"invalid_input": made["bad"], "ok": made["good"]}
    good = {i for i in ids if i.startswith("a")}
    assert good == {f"a{f}-{k}" for f in range(8) for k in range(15)}


def test_each_part_is_written_as_its_chunk_is_scored_not_a_chunk_later(
    ray_local, tiny_model_dir, tmp_path
):
    """Rows stream to parquet chunk by chunk: the first part is on disk before the scorer has
    finished the second chunk (Ray Data's default prefetch held every chunk back until the next
    one arrived)."""
    import ray.cloudpickle

    import benchmarks.score_scale
    from benchmarks.archive import write_archive
    from benchmarks.score_scale import TimedScorer

    write_archive(tmp_path / "in", 72, 1, words=(60, 80), bad_per_file=0)
    cfg = load_config(
        ScoreConfig,
        REPO / "ray_jobs/configs/smoke_score.yaml",
        [f"model.name_or_path={tiny_model_dir}", "io.chunk_rows=24", "scoring.generate=never"],
    )
    cfg.io.input, cfg.io.output = [str(tmp_path / "in")], str(tmp_path / "out")
    ray.cloudpickle.register_pickle_by_value(benchmarks.score_scale)
    scoring.run_scoring(cfg, scorer=TimedScorer)
    calls = sorted(
        tuple(map(float, line.split()))
        for line in Path(f"{cfg.io.output}.calls").read_text().splitlines()
    )
    parts = sorted(p.stat().st_mtime for p in (tmp_path / "out").glob("part-*.parquet"))
    assert len(calls) == len(parts) >= 3
    assert parts[0] < calls[1][1], f"first part at {parts[0]}, calls {calls}"


class BarrierScorer(scoring.Scorer):
    """The real scorer; each call (one chunk) first waits, up to 60 s, until two actor processes
    have started a call, so a chunk queued behind another on one actor fails the test."""

    def __call__(self, batch: pa.Table) -> pa.Table:
        seen = Path(f"{self.cfg.io.output}.actors")
        seen.mkdir(exist_ok=True)
        (seen / str(os.getpid())).touch()
        until = time.monotonic() + 60
        while len(list(seen.iterdir())) < 2 and time.monotonic() < until:
            time.sleep(0.1)
        return super().__call__(batch)


def _csv(path: Path, ids: list[str], notes: list[str]) -> Path:
    import pyarrow.csv as pa_csv

    pa_csv.write_csv(pa.table({"id": ids, "note": notes}), path)
    return path


@pytest.mark.slow
def test_small_file_is_cut_for_every_actor_and_later_runs_keep_its_chunks(
    ray_local, tiny_model_dir, tmp_path
):
    """925 rows (MEDEC's test split) with io.chunk_rows=1024 on 2 scorer actors: two chunks, one
    on each actor, one output row per input row; a resume, an --update and a --retry-failed of
    that output (on 1 actor) keep the recorded chunk size, so no part is cut differently. The
    later runs plan for real and score with the constant-time forward (`StandInScorer`)."""
    import ray.cloudpickle

    import benchmarks.score_scale
    from benchmarks.score_scale import StandInScorer

    ray.cloudpickle.register_pickle_by_value(benchmarks.score_scale)

    ids = [f"n{k}" for k in range(925)]
    first = _csv(tmp_path / "a.csv", ids, make_notes(925, seed=5, words=(8, 20)))
    out = tmp_path / "out"
    cfg = load_config(
        ScoreConfig,
        REPO / "ray_jobs/configs/smoke_score.yaml",
        [f"model.name_or_path={tiny_model_dir}", "io.chunk_rows=1024", "scoring.generate=never",
         "resources.num_actors=2", "resources.cpus_per_actor=0.5", "resources.prep_cpus=0.5"],
    )  # fmt: skip
    cfg.io.input, cfg.io.output = [str(first)], str(out)
    ray.cloudpickle.register_pickle_by_value(sys.modules[__name__])
    m = scoring.run_scoring(cfg, scorer=BarrierScorer)
    assert (m["chunk_rows"], m["chunks"], m["identity"]["io"]["chunk_rows"]) == (463, 2, 1024)
    assert [c[1] for c in m["inputs"][0]["chunks"]] == [463, 462]
    assert len(list(Path(f"{out}.actors").iterdir())) == 2  # each actor scored a chunk
    parts = sorted(p.name for p in out.glob("part-*.parquet"))
    got = scoring.read_output(str(out)).column("note_id").to_pylist()
    assert len(parts) == 2 and sorted(got) == sorted(ids)  # one row per input row

    # resume: a part the last run did not write is scored again, the same rows under its name
    (out / parts[1]).unlink()
    m = scoring.run_scoring(cfg, scorer=StandInScorer)
    assert m["this_run"]["chunks"] == 1 and m["this_run"]["rows"] in (462, 463)
    assert sorted(p.name for p in out.glob("part-*.parquet")) == parts
    assert sorted(scoring.read_output(str(out)).column("note_id").to_pylist()) == sorted(ids)

    # --update with a new file, on one actor: cut like the first (463), not by io.chunk_rows
    more = [f"m{k}" for k in range(500)]
    second = _csv(tmp_path / "b.csv", more, make_notes(500, seed=6, words=(8, 20)))
    cfg.io.input, cfg.io.update, cfg.resources.num_actors = [str(first), str(second)], True, 1
    m = scoring.run_scoring(cfg, scorer=StandInScorer)
    assert m["chunk_rows"] == 463 and [c[1] for c in m["inputs"][1]["chunks"]] == [463, 37]
    assert m["this_run"]["rows"] == 500 and m["rows"] == 1425

    # --retry-failed of the finished output (nothing failed): the same 4 chunks, nothing to do
    cfg.io.update, cfg.io.retry_failed = False, True
    m = scoring.run_scoring(cfg)
    assert (m["this_run"]["rows"], m["chunks"], m["chunk_rows"]) == (0, 4, 463)
    got = scoring.read_output(str(out)).column("note_id").to_pylist()
    assert len(got) == len(set(got)) == 1425

    # an output written before the record (cut by io.chunk_rows): its rows appended later are
    # cut by io.chunk_rows too
    old_out = tmp_path / "old"
    third = _csv(tmp_path / "c.csv", ids[:40], make_notes(40, seed=7, words=(8, 20)))
    cfg.io.input, cfg.io.output, cfg.io.retry_failed = [str(third)], str(old_out), False
    scoring.run_scoring(cfg, scorer=StandInScorer)
    manifest = json.loads((old_out / scoring.MANIFEST).read_text())
    del manifest["chunk_rows"]
    (old_out / scoring.MANIFEST).write_text(json.dumps(manifest))
    with open(third, "a") as fh:
        fh.writelines(f'"x{k}","a note"\n' for k in range(1100))
    cfg.io.update = True
    m = scoring.run_scoring(cfg, scorer=StandInScorer)
    assert [c[1] for c in m["inputs"][0]["chunks"]] == [40, 1024, 76] and m["rows"] == 1140


@pytest.mark.slow
def test_interrupted_then_killed_driver_resumes_to_one_row_per_input(tiny_model_dir, tmp_path):
    from benchmarks.archive import write_archive
    from benchmarks.score_scale import resume_at_scale

    made = write_archive(tmp_path / "in", 1200, 12, words=(20, 60), bad_per_file=2)
    got = resume_at_scale(made["files"], str(tiny_model_dir), 16, tmp_path / "out", made["rows_in"])
    assert 0 < got["parts_before_rerun"] < got["chunks"]  # interrupted part-way
    assert got["rows_out"] == got["unique_ids"] == made["rows_in"]
    assert got["parts_rewritten"] == 0  # no part written twice


def test_actors_that_leave_no_cpu_for_preparation_are_refused(
    ray_local, tiny_model_dir, mixed_input, tmp_path
):
    path, _ = mixed_input  # 2 CPUs: 2 actors x 1 CPU leave nothing for a 0.5-CPU task
    cfg = smoke_cfg(tiny_model_dir, None, [path], tmp_path / "o", resources__num_actors=2,
                    resources__prep_cpus=0.5, adapter="null")  # fmt: skip
    with pytest.raises(scoring.ScoreError, match=r"leave less than resources\.prep_cpus=0\.5"):
        scoring.run_scoring(cfg)
