"""Bad input never crashes validation or scoring.

Property-based tests (hypothesis) and one real scoring job on the fixed nasty corpus in
tests/nasty/. See RELIABILITY.md."""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from collections import Counter
from dataclasses import asdict
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from discriminator import data, scoring
from discriminator.config import ScoreConfig, load_config, to_dict

REPO = Path(__file__).resolve().parents[1]
NASTY = Path(__file__).resolve().parent / "nasty"
CANARY = "CANARY-HYP-0d9e"
SETTINGS = settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow], derandomize=True
)

# ---------------------------------------------------------------------------------------------
# Strategies: JSONL files made of nasty lines

text_any = st.text(max_size=30) | st.text(
    st.characters(categories=["Cs", "Zs", "Zl", "Cc", "Co", "So"]), max_size=6
)
json_scalar = st.none() | st.booleans() | st.integers() | st.floats() | text_any
json_value = st.recursive(
    json_scalar,
    lambda c: st.lists(c, max_size=3) | st.dictionaries(st.text(max_size=5), c, max_size=3),
    max_leaves=6,
)
note_value = (
    text_any.map(lambda t: f"{t} {CANARY} {t}")
    | st.sampled_from(["", "  ", "\n\t", "\u3000", None, 0, 1.5, True, [], {}])
    | json_value
)
record = st.fixed_dictionaries(
    {"note": note_value},
    optional={"id": json_scalar, "reason": st.none() | text_any | st.integers(), "x": json_value},
)
missing_note = st.fixed_dictionaries({"text": text_any}, optional={"id": json_scalar})
raw_line = (
    record.map(lambda r: json.dumps(r).encode())
    | missing_note.map(lambda r: json.dumps(r).encode())
    | json_value.map(lambda v: json.dumps(v).encode())
    | st.binary(max_size=24).map(lambda b: b.replace(b"\n", b""))
    | st.sampled_from(
        [
            b"",
            b"   ",
            b"\r",
            b"\t\r",
            b"[",
            b"{",
            b'{"note": "x"',
            b"\xff\xfe",
            b"\xef\xbb\xbf",
            b"[" * 2000,
            b"NaN",
            b'{"note": NaN}',
            b'{"note": "a\\ud800b"}',
        ]
    )
)
jsonl_bytes = st.tuples(
    st.booleans(),  # BOM
    st.lists(st.tuples(raw_line, st.sampled_from([b"\n", b"\r\n"])), max_size=10),
    st.booleans(),  # final newline
).map(
    lambda t: (
        (b"\xef\xbb\xbf" if t[0] else b"")
        + b"".join(r + e for r, e in t[1])[: None if t[2] or not t[1] else -len(t[1][-1][1])]
    )
)


def oracle(content: bytes) -> dict[int, str]:
    """What each physical line is, independently of the code under test:
    blank | invalid | valid_score (a scorable note) | valid (also a valid training record)."""
    lines = content.split(b"\n")
    if content.endswith(b"\n") or not content:
        lines.pop()
    out: dict[int, str] = {}
    for i, raw in enumerate(lines, start=1):
        if i == 1 and raw.startswith(b"\xef\xbb\xbf"):
            raw = raw[3:]
        try:
            text = raw.decode("utf-8")
        except UnicodeDecodeError:
            out[i] = "invalid"
            continue
        if not text.strip():
            out[i] = "blank"
            continue
        try:
            obj = json.loads(text)
        except (ValueError, RecursionError):
            out[i] = "invalid"
            continue

        def ok_text(s) -> bool:
            try:
                s.encode("utf-8")
                return True
            except UnicodeEncodeError:
                return False

        note = obj.get("note") if isinstance(obj, dict) else None
        if not (isinstance(note, str) and note.strip() and ok_text(note)):
            out[i] = "invalid"
            continue
        reason = obj.get("reason")
        good_reason = reason is None or (isinstance(reason, str) and ok_text(reason))
        out[i] = "valid" if good_reason else "valid_score"
    return out


def _file(content: bytes, suffix: str = ".jsonl") -> Path:
    d = Path(tempfile.mkdtemp(prefix="hyp-"))
    p = d / f"notes{suffix}"
    p.write_bytes(content)
    return p


# ---------------------------------------------------------------------------------------------
# Validation (data.py)


@SETTINGS
@given(json_value | record | missing_note)
def test_check_row_never_raises_and_never_echoes_the_note(obj):
    why = data.check_row(obj)
    assert why is None or (isinstance(why, str) and why)
    assert why is None or CANARY not in why
    note = obj.get("note") if isinstance(obj, dict) else None
    if why is None:
        assert isinstance(note, str) and note.strip()
        note.encode("utf-8")  # never lets an unencodable note through


@SETTINGS
@given(jsonl_bytes)
def test_read_records_names_every_bad_row_and_never_crashes(content):
    path = _file(content)
    try:
        want = oracle(content)
        rows = list(data.iter_jsonl_rows(path))
        assert [r[0] for r in rows] == list(want)  # every physical line, in order, once
        result = data.read_records(path)
        bad = {p.line for p in result.problems if p.line}
        assert bad == {i for i, k in want.items() if k in ("invalid", "valid_score")}
        if not result.rows_seen:  # no record at all (empty, or blank lines only): one problem
            assert [str(p) for p in result.problems] == [f"{path}: no records"]
        assert {r.line for r in result.records} == {i for i, k in want.items() if k == "valid"}
        assert result.rows_seen == len(bad) + len(result.records)
        assert result.blank_lines == sum(k == "blank" for k in want.values())
        for p in result.problems:
            where = f"{path}:{p.line}: " if p.line else f"{path}: "
            assert str(p).startswith(where) and p.message and ":0:" not in str(p)
            assert CANARY not in str(p)
        if result.problems:
            with pytest.raises(data.DataError) as e:
                data.load_valid(path)
            assert CANARY not in str(e.value)
            for p in result.problems[:200]:
                assert str(p) in str(e.value)
    finally:
        shutil.rmtree(path.parent)


# ---------------------------------------------------------------------------------------------
# Scoring: planning, reading and preparation (the pure, per-chunk functions)


@pytest.fixture(scope="module")
def score_cfg(tiny_model_dir) -> dict:
    cfg = load_config(
        ScoreConfig,
        REPO / "ray_jobs/configs/smoke_score.yaml",
        [f"model.name_or_path={tiny_model_dir}"],
    )
    return to_dict(cfg)


def prepare(files: list[str], cfg: dict, chunk_rows: int) -> list[dict]:
    chunks = scoring.plan_chunks(scoring.expand_inputs(files), chunk_rows)
    items = [{**asdict(ch), "part": ch.part} for ch in chunks]
    out = []
    for item in items:  # as Ray Data calls it: batch_size=1
        table = scoring.prepare_batch(
            pa.Table.from_pylist([item]), cfg, cfg["model"]["name_or_path"]
        )
        assert table.schema == scoring.PREP_SCHEMA
        out += table.to_pylist()
    return out


@SETTINGS
@given(jsonl_bytes, st.integers(1, 5))
def test_scoring_prepares_exactly_one_row_per_line_with_the_right_status(
    score_cfg, content, chunk_rows
):
    path = _file(content)
    try:
        want = oracle(content)
        rows = prepare([str(path)], score_cfg, chunk_rows)
        assert [r["_row"] for r in rows] == list(want)  # each line once, across chunk borders
        status = {"blank": "blank", "invalid": "invalid_input"}
        for r in rows:
            expect = status.get(want[r["_row"]], "pending")
            assert r["status"] == expect, (r["_row"], r["status"], r["error"])
            assert r["note"] is None  # no keep_text: no note text travels on
            if expect == "invalid_input":
                assert r["error"] and CANARY not in r["error"]
            if expect != "blank":
                assert r["note_id"]
                r["note_id"].encode("utf-8")  # writable to parquet
            if expect == "pending":
                assert 0 < r["n_tokens"] <= score_cfg["scoring"]["max_prompt_tokens"]
        # the output ids: derived ids are unique; blanks never count
        derived = [r["note_id"] for r in rows if r["note_id"] and r["note_id"].startswith("notes")]
        assert len(derived) == len(set(derived))
    finally:
        shutil.rmtree(path.parent)


@SETTINGS
@given(
    st.lists(
        st.one_of(st.none(), text_any.map(lambda t: f"{t}{CANARY}"), st.just(""), st.just("  \n")),
        min_size=0,
        max_size=9,
    ),
    st.booleans(),
    st.integers(1, 4),
    st.integers(1, 4),
)
def test_scoring_parquet_with_nulls_and_missing_columns(
    score_cfg, notes, with_note_column, chunk_rows, group
):
    d = Path(tempfile.mkdtemp(prefix="hyp-"))
    try:
        cols = {"id": [f"r{i}" for i in range(len(notes))]}
        cols["note" if with_note_column else "body"] = pa.array(notes, pa.string())
        pq.write_table(pa.table(cols), d / "t.parquet", row_group_size=group)
        rows = prepare([str(d / "t.parquet")], score_cfg, chunk_rows)
        assert [r["note_id"] for r in rows] == cols["id"]
        for r, note in zip(rows, notes):
            ok = with_note_column and isinstance(note, str) and note.strip() != ""
            ok = ok and data.unpaired_surrogate(note) == 0
            assert r["status"] == ("pending" if ok else "invalid_input"), (note, r)
            if not with_note_column:
                assert r["error"] == "missing 'note'"
        rr = data.read_records(d / "t.parquet")
        if not with_note_column:
            assert [str(p) for p in rr.problems] == [
                f"{d / 't.parquet'}: missing column 'note' (columns: id, body)"
            ]
    finally:
        shutil.rmtree(d)


# ---------------------------------------------------------------------------------------------
# The fixed nasty corpus


@pytest.fixture(scope="module")
def corpus(tmp_path_factory) -> tuple[Path, dict]:
    """tests/nasty plus what cannot be committed: a 10 MB note, a folder named `*.jsonl`, an
    integer too large for Python, invalid UTF-8 inside a parquet string, a folder symlink loop."""
    d = tmp_path_factory.mktemp("nasty") / "in"
    shutil.copytree(NASTY, d, ignore=shutil.ignore_patterns("refused", "*.py", "__pycache__"))
    expected = json.loads((d / "expected.json").read_text())
    (d / "expected.json").unlink()
    big = "Name: Big. " + ("word " * 2_100_000) + CANARY  # ~10 MB: cut before it is tokenized
    (d / "big.jsonl").write_text(json.dumps({"id": "big", "note": big}) + "\n")
    expected["rows"].append(["big", "ok"])
    huge_int = "9" * 5000  # more digits than Python converts
    (d / "huge_int.jsonl").write_text(
        f'{{"id": "hi", "note": "fine"}}\n{{"note": "b", "id": {huge_int}}}\n'
    )
    expected["rows"] += [["hi", "ok"], ["huge_int.jsonl:2", "invalid_input"]]
    expected["problems"].append(["huge_int.jsonl", 2, "not valid JSON (a value out of range)"])
    offsets = pa.py_buffer(b"".join(i.to_bytes(4, "little") for i in (0, 2, 4)))
    notes = pa.Array.from_buffers(pa.string(), 2, [None, offsets, pa.py_buffer(b"ok\xff\xfe")])
    pq.write_table(pa.table({"note": notes, "id": ["u1", "u2"]}), d / "bad_utf8.parquet")
    expected["rows"] += [["u1", "ok"], ["bad_utf8.parquet:2", "invalid_input"]]
    expected["problems"].append(["bad_utf8.parquet", 2, "invalid UTF-8"])
    (d / "loop").mkdir()
    (d / "loop" / "again").symlink_to("..")  # a folder that contains itself: each file once
    (d / "folder.jsonl").mkdir()
    (d / "folder.jsonl" / "inner.jsonl").write_text(json.dumps({"note": "inner " + CANARY}) + "\n")
    expected["rows"].append(["folder.jsonl/inner.jsonl:1", "ok"])  # relative to the input root
    return d, expected


def test_validation_of_the_nasty_corpus_lists_every_bad_row(corpus):
    d, expected = corpus
    result = data.read_records(d)  # a folder: jsonl/ndjson/parquet/pq files, others ignored
    got = {(Path(p.path).name, p.line): p.message for p in result.problems}
    for name, line, message in expected["problems"]:
        assert message in got.get((name, line), ""), (name, line, got.get((name, line)))
    assert len(got) == len(expected["problems"])
    assert not any("readme" in p.path for p in result.problems)
    text = "\n".join(map(str, result.problems))
    assert CANARY not in text
    assert {r.id for r in result.records} >= {"big", "dup", "7", "q0", "q4"}
    assert [(a.rsplit(":", 1)[1], b.rsplit(":", 1)[1]) for a, b in result.duplicates] == [
        ("26", "2")  # identical note text is reported (a hash, never the text)
    ]
    with pytest.raises(data.DataError) as e:
        data.load_valid(d)
    assert CANARY not in str(e.value)


def test_unreadable_inputs_give_a_clear_file_level_error(tmp_path):
    bad = NASTY / "refused" / "corrupt.parquet"
    r = data.read_records(bad)
    assert [str(p) for p in r.problems] == [f"{bad}: cannot read parquet: ArrowInvalid"]
    with pytest.raises(scoring.ScoreError, match=f"cannot read parquet {bad}: ArrowInvalid"):
        scoring.plan_chunks([str(bad)], 4)
    r = data.read_records(tmp_path / "missing.jsonl")
    assert [p.message for p in r.problems] == ["file not found"]
    empty = data.read_records(NASTY / "empty.jsonl")
    assert empty.rows_seen == 0
    assert [str(p) for p in empty.problems] == [f"{NASTY / 'empty.jsonl'}: no records"]
    with pytest.raises(data.DataError) as e:
        data.load_valid(NASTY / "empty.jsonl")
    assert str(e.value) == f"{NASTY / 'empty.jsonl'}: no records"  # one line


@pytest.mark.slow
def test_scoring_job_on_the_nasty_corpus_gives_one_row_per_input_row(
    ray_local, tiny_model_dir, lora_adapter_dir, corpus, tmp_path
):
    d, expected = corpus
    adapter = lora_adapter_dir
    cfg = load_config(
        ScoreConfig,
        REPO / "ray_jobs/configs/smoke_score.yaml",
        [f"model.name_or_path={tiny_model_dir}", f"adapter={adapter}", "io.chunk_rows=7"],
    )
    cfg.io.input, cfg.io.output = [str(d)], str(tmp_path / "out")
    manifest = scoring.run_scoring(cfg)
    table = scoring.read_output(cfg.io.output)
    assert table.schema.names == scoring.OUTPUT_SCHEMA.names  # no note column
    got = Counter(zip(table.column("note_id").to_pylist(), table.column("status").to_pylist()))
    assert got == Counter(tuple(r) for r in expected["rows"])
    assert manifest["duplicate_note_ids"]["count"] == 1  # "dup", reported, not rewritten
    rows = table.to_pylist()
    for r in rows:
        assert (r["status"] == "ok") == (r["verdict"] is not None)
        assert (r["status"] == "ok") == (r["error"] is None)
    big = next(r for r in rows if r["note_id"] == "big")
    assert big["truncated"] is True and big["n_tokens"] <= cfg.scoring.max_prompt_tokens
    for f in Path(cfg.io.output).iterdir():
        assert CANARY.encode() not in f.read_bytes()
        assert b"CANARY-NASTY" not in f.read_bytes()
    assert os.stat(cfg.io.output).st_mode & 0o777 == 0o700


def test_a_note_far_over_the_budget_is_cut_before_it_is_rendered_or_tokenized(
    tiny_model_dir, synth_records, monkeypatch, tmp_path
):
    """A 10 MB note is cut by characters first: no render and no tokenizer call sees more than
    a few budgets' worth of characters, and the prompt it gets is the one the whole note would
    give; so is training's cut (`fit_note`)."""
    from discriminator import prompt
    from discriminator.modeling import load_tokenizer
    from discriminator.scoring import prepare as prep

    tok = load_tokenizer(str(tiny_model_dir))
    budget = 1024  # prompt tokens (the system prompt and template take some)
    text = "\n".join(r["note"] for r in synth_records[:200])
    huge = (text * (10_000_000 // len(text) + 1))[:10_000_000]
    seen: list[int] = []  # characters each tokenizer call or render was given
    real_call, real_render = type(tok).__call__, prep.render_prompt

    def call(self, text, *a, **k):
        seen.append(sum(map(len, text)) if isinstance(text, list) else len(text))
        return real_call(self, text, *a, **k)

    def render(tokenizer, note):
        seen.append(len(note))
        return real_render(tokenizer, note)

    monkeypatch.setattr(type(tok), "__call__", call)
    monkeypatch.setattr(prep, "render_prompt", render)
    (cut, truncated), (_, short_cut) = prep.fit_prompts(
        tok, [huge, "Discharged home in stable condition."], budget
    )
    assert truncated and not short_cut and len(cut) <= budget
    limit = 2 * budget * prompt.CHARS_PER_TOKEN_BOUND
    assert seen and max(seen) < limit, max(seen)
    # The same prompt as without the character cut (bounded here by a note 50x over).
    note = huge[: 50 * budget * 4]
    fast = prep.fit_prompt(tok, note, budget)
    monkeypatch.setattr(prompt, "CHARS_PER_TOKEN_BOUND", 10**9)
    assert prep.fit_prompt(tok, note, budget) == fast
    whole = prompt.fit_note(note, tok, budget)
    monkeypatch.undo()
    assert prompt.fit_note(note, tok, budget).note == whole.note
