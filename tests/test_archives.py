"""Archives as users hold them: formats, same-named files, re-runs, `--update`, MIMIC layout.

Every format reads the same records, ids never collide across folders, re-runs over changed inputs
give exactly one current row per note or stop before scoring, `--update` adds what is new (and
resumes when interrupted), MIMIC-IV-Note's `discharge.csv.gz` scores as it ships."""

from __future__ import annotations

import csv
import gzip
import io
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from procs import job_env, kill_leftovers

from benchmarks.archive import jl, make_notes, write_mimic
from discriminator import data, scoring, sources
from discriminator.config import ScoreConfig, load_config

REPO = Path(__file__).resolve().parents[1]
SMOKE = REPO / "ray_jobs/configs/smoke_score.yaml"
COLS = ["id", "note", "reason"]


def cfg_for(tiny_model_dir, adapter, inputs, output, **sets) -> ScoreConfig:
    overrides = [f"model.name_or_path={tiny_model_dir}", f"adapter={adapter}", "io.chunk_rows=5"]
    overrides += [f"{k.replace('__', '.')}={v}" for k, v in sets.items()]
    cfg = load_config(ScoreConfig, SMOKE, overrides)
    cfg.io.input, cfg.io.output = [str(p) for p in inputs], str(output)
    return cfg


def snapshot(out: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(out.iterdir()) if p.is_file()}


def rows_of(out: Path) -> list[dict]:
    return scoring.read_output(str(out)).to_pylist()


def assert_current(out: Path, want: dict[str, tuple[str, int]]) -> list[dict]:
    """Exactly one row per input note (note_id -> (source, row)), nothing else."""
    rows = rows_of(out)
    ids = [r["note_id"] for r in rows]
    assert len(ids) == len(set(ids)), "a duplicated row"
    assert {r["note_id"]: (r["source"], r["row"]) for r in rows} == want
    manifest = json.loads((out / scoring.MANIFEST).read_text())
    assert manifest["state"] == "complete" and manifest["rows"] == len(want)
    assert not (out / scoring.STAGING).exists()
    return rows


# ---------------------------------------------------------------------------------------------
# Formats: the same records from every format, compression and row-group layout


RECORDS = [
    {"id": "a", "note": 'Name: ___\r\nplain, with "quotes" and a comma', "reason": ""},
    {"id": None, "note": "two\nlines ___ here", "reason": "Timeline error: x"},
    {"id": "c", "note": "tab\there", "reason": None},
    {"id": None, "note": "ünïcode — note", "reason": "good"},
    {"id": "e", "note": "last " * 50, "reason": ""},
]


def write_formats(folder: Path) -> dict[str, Path]:
    folder.mkdir(parents=True, exist_ok=True)
    paths: dict[str, Path] = {}
    lines = b"".join(jl({k: v for k, v in r.items() if v is not None}) for r in RECORDS)
    paths["jsonl"] = folder / "n.jsonl"
    paths["jsonl"].write_bytes(lines)
    paths["jsonl.gz"] = folder / "n2.jsonl.gz"
    paths["jsonl.gz"].write_bytes(
        gzip.compress(lines[:40]) + gzip.compress(lines[40:])
    )  # 2 members
    paths["jsonl.zst"] = folder / "n3.ndjson.zst"
    paths["jsonl.zst"].write_bytes(pa.compress(lines, codec="zstd", asbytes=True))
    for name, delim, comp in (("csv", ",", None), ("tsv", "\t", None), ("csv.gz", ",", "gz"),
                              ("tsv.zst", "\t", "zst")):  # fmt: skip
        buf = io.StringIO(newline="")
        w = csv.writer(buf, delimiter=delim, lineterminator="\r\n")
        w.writerow(["id", "note", "reason"])
        w.writerows([[r["id"] or "", r["note"], r["reason"] or ""] for r in RECORDS])
        raw = ("\ufeff" + buf.getvalue()).encode()  # a byte-order mark, CRLF
        if comp == "gz":
            raw = gzip.compress(raw)
        elif comp == "zst":
            raw = pa.compress(raw, codec="zstd", asbytes=True)
        paths[name] = folder / f"n4-{name.replace('.', '-')}.{name}"
        paths[name].write_bytes(raw)
    table = pa.Table.from_pylist(RECORDS)
    paths["parquet-1rg"] = folder / "n5.parquet"
    pq.write_table(table, paths["parquet-1rg"])  # pyarrow's default: one row group
    paths["parquet-rg2"] = folder / "n6.parquet"
    pq.write_table(table, paths["parquet-rg2"], row_group_size=2)
    return paths


def test_every_format_reads_the_same_records(tmp_path, capsys):
    paths = write_formats(tmp_path / "in")
    want = [(k + 1, r["note"], r["id"]) for k, r in enumerate(RECORDS)]
    for name, path in paths.items():
        for chunk_rows in (1, 2, 4, 100):
            out = scoring.Output(str(tmp_path / f"stage-{name}-{chunk_rows}"))
            chunks = scoring.plan_chunks([str(path)], chunk_rows, out)
            assert sum(c.count for c in chunks) == len(RECORDS), (name, chunk_rows)
            got = []
            for c in chunks:
                item = {**c.__dict__, "header": list(c.header)}
                got += [(n, o["note"], o.get("id")) for n, o, p in scoring.read_chunk(item, COLS)]
            assert got == want, (name, chunk_rows)
            # compressed files and a row group larger than a chunk go through staging
            groups = {"parquet-1rg": 5, "parquet-rg2": 2}.get(name, 0)
            staged = name.endswith((".gz", ".zst")) or chunk_rows < groups
            assert all(bool(c.staged) == staged for c in chunks), (name, chunk_rows)
        # the training/validation reader: the same notes, ids and reasons
        result = data.read_records(path)
        assert not result.problems, (name, [str(p) for p in result.problems])
        rel = path.name
        assert [(r.note, r.id) for r in result.records] == [
            (n, i if i else f"{rel}:{k}") for k, n, i in want
        ]
        assert [r.reason == "good" for r in result.records] == [
            not (r["reason"] or "").strip() or r["reason"] == "good" for r in RECORDS
        ]
    from discriminator.cli import main

    assert main(["validate", str(paths["csv.gz"]), str(paths["parquet-1rg"])]) == 0
    assert "rows 10" in capsys.readouterr().out


def test_bad_csv_rows_are_rows_and_broken_quoting_stops_nothing(tmp_path):
    def read(content: bytes, chunk_rows: int) -> list:
        p = tmp_path / "bad.csv"
        p.write_bytes(content)
        chunks = scoring.plan_chunks([str(p)], chunk_rows, scoring.Output(str(tmp_path / "o")))
        items = [{**c.__dict__, "header": list(c.header)} for c in chunks]
        return [r for item in items for r in scoring.read_chunk(item, [])]

    got = read(b'id,note\n1,ok\n2,too,many\n\n3,"never closed\n4,x\n', 2)
    assert [r[0] for r in got] == [1, 2, 3, 4]  # every record once, numbered after the header
    assert got[0][1] == {"id": "1", "note": "ok"}
    assert got[1][2] == "3 fields, the header has 2"
    assert got[2][1] is sources.BLANK  # a blank line is numbered, not a row
    assert got[3][1] == {"id": "3", "note": "never closed\n4,x\n"}  # the rest: one record
    # a stray quote inside an unquoted field: its records cannot be told apart, so the chunk's
    # planned records all become invalid rows (never a different number of rows)
    got = read(b'id,note\n1,a"b\n2,c\n3,d\n', 10)
    assert [(r[0], r[2]) for r in got] == [
        (1, "not valid CSV: its quotes do not balance near here")
    ]


def test_symlink_loops_huge_integers_and_bad_utf8_in_parquet_are_rows_not_crashes(tmp_path):
    (tmp_path / "in" / "sub").mkdir(parents=True)
    big = "9" * 5000  # more digits than Python converts to int
    (tmp_path / "in" / "sub" / "a.jsonl").write_text(
        f'{{"note": "a"}}\n{{"note": "b", "id": {big}}}\n'
    )
    (tmp_path / "in" / "sub" / "loop").symlink_to("..")  # a folder that contains itself
    offsets = pa.py_buffer(b"".join(i.to_bytes(4, "little") for i in (0, 2, 4)))
    notes = pa.Array.from_buffers(pa.string(), 2, [None, offsets, pa.py_buffer(b"ok\xff\xfe")])
    pq.write_table(pa.table({"note": notes, "id": ["x", "y"]}), tmp_path / "in" / "bad.parquet")
    files = scoring.expand_inputs([str(tmp_path / "in")])
    assert [f.rel for f in files] == ["bad.parquet", "sub/a.jsonl"]  # each real file once
    result = data.read_records(tmp_path / "in")
    assert result.rows_seen == 4 and [(Path(p.path).name, p.line, p.message) for p in result.problems] == [
        ("bad.parquet", 2, "invalid UTF-8"),
        ("a.jsonl", 2, "not valid JSON (a value out of range)"),
    ]  # fmt: skip
    out = scoring.Output(str(tmp_path / "o"))
    got = [
        (c.source, n, problem)
        for c in scoring.plan_chunks(files, 1, out)
        for n, _, problem in scoring.read_chunk({**c.__dict__, "header": list(c.header)}, COLS)
    ]
    assert got == [("bad.parquet", 1, None), ("bad.parquet", 2, "invalid UTF-8"),
                   ("sub/a.jsonl", 1, None),
                   ("sub/a.jsonl", 2, "not valid JSON (a value out of range)")]  # fmt: skip


# ---------------------------------------------------------------------------------------------
# Ids and provenance


def test_same_file_names_in_two_folders_never_collide(
    ray_local, tiny_model_dir, lora_adapter_dir, tmp_path
):
    for year, seed in (("2019", 1), ("2020", 2)):
        (tmp_path / "in" / year).mkdir(parents=True)
        notes = make_notes(9, seed=seed, words=30)
        (tmp_path / "in" / year / "notes.jsonl").write_bytes(
            b"".join(jl({"note": n}) for n in notes)
        )
    cfg = cfg_for(tiny_model_dir, lora_adapter_dir, [tmp_path / "in"], tmp_path / "out")
    manifest = scoring.run_scoring(cfg)
    want = {f"{y}/notes.jsonl:{k}": (f"{y}/notes.jsonl", k) for y in ("2019", "2020")
            for k in range(1, 10)}  # fmt: skip
    rows = assert_current(tmp_path / "out", want)
    assert manifest["duplicate_note_ids"]["count"] == 0
    assert [(e["source"], e["records"]) for e in manifest["inputs"]] == [
        ("2019/notes.jsonl", 9), ("2020/notes.jsonl", 9)
    ]  # fmt: skip
    # the labels reader derives the same ids, so evaluation joins every row
    labels = data.read_records(tmp_path / "in")
    assert {r.id for r in labels.records} == {r["note_id"] for r in rows}
    # the same names given as two files would collide: refused before anything is read
    with pytest.raises(scoring.ScoreError, match=r"would both be named notes\.jsonl"):
        scoring.expand_inputs([str(tmp_path / "in/2019/notes.jsonl"),
                               str(tmp_path / "in/2020/notes.jsonl")])  # fmt: skip


# ---------------------------------------------------------------------------------------------
# Re-runs


def test_reruns_give_one_current_row_per_note_or_stop_before_scoring(
    ray_local, tiny_model_dir, lora_adapter_dir, tmp_path
):
    src, out = tmp_path / "in", tmp_path / "out"
    src.mkdir()
    notes = make_notes(30, seed=7, words=25)
    a = src / "a.jsonl"
    a.write_bytes(b"".join(jl({"note": n}) for n in notes[:12]))

    def run(update: bool = False, inputs=None) -> dict:
        cfg = cfg_for(tiny_model_dir, lora_adapter_dir, inputs or [src], out, io__update=update)
        return scoring.run_scoring(cfg)

    def refused(match: str, update: bool = False, inputs=None) -> str:
        before = snapshot(out)
        with pytest.raises(scoring.ScoreError, match=match) as e:
            run(update, inputs)
        assert snapshot(out) == before  # nothing scored, nothing rewritten
        return str(e.value)

    def want(**files: int) -> dict[str, tuple[str, int]]:
        return {
            f"{f}.jsonl:{k}": (f"{f}.jsonl", k) for f, n in files.items() for k in range(1, n + 1)
        }

    m = run()
    assert_current(out, want(a=12)) and m["this_run"]["rows"] == 12
    assert m["this_run"]["slow_paths"] == {}  # the batch tokenization and prompt head held
    # unchanged archive: nothing to score, with or without --update
    assert run()["this_run"]["rows"] == 0
    assert run(update=True)["this_run"]["rows"] == 0
    # a file grown by appended rows: refused without --update, then exactly the new rows
    with open(a, "ab") as fh:
        fh.write(b"".join(jl({"note": n}) for n in notes[12:18]))
    why = refused("differ from the last run")
    assert "grown: a.jsonl (6 row(s) appended)" in why and "--update" in why
    parts_before = snapshot(out)
    m = run(update=True)
    assert m["this_run"]["rows"] == 6
    assert_current(out, want(a=18))
    for (
        name,
        body,
    ) in parts_before.items():  # the old parts (the old last one too) stay as they were
        if name.startswith("part-"):
            assert (out / name).read_bytes() == body
    # a file added: refused without --update, scored with it
    b = src / "b.jsonl"
    b.write_bytes(b"".join(jl({"note": n}) for n in notes[18:22]))
    assert "added: b.jsonl" in refused("differ from the last run")
    assert run(update=True)["this_run"]["rows"] == 4
    assert_current(out, want(a=18, b=4))
    # a file edited in place (same size): refused even with --update, naming it
    original = a.read_bytes()
    a.write_bytes(original.replace(b"patient", b"PATIENT", 1))
    assert "changed: a.jsonl" in refused("changed in place or removed", update=True)
    assert "changed: a.jsonl" in refused("changed: a.jsonl")
    # restored (a new modification time, the same bytes): the same input, nothing to score
    a.write_bytes(original)
    os.utime(a, ns=(time.time_ns(), time.time_ns() + 10**9))
    assert run(update=True)["this_run"]["rows"] == 0
    # a file removed: refused, naming it
    b.rename(tmp_path / "b.jsonl")
    assert "removed: b.jsonl" in refused("removed", update=True)
    (tmp_path / "b.jsonl").rename(b)
    # another input into the same output: refused with every difference
    other = tmp_path / "other"
    other.mkdir()
    (other / "c.jsonl").write_bytes(jl({"note": notes[29]}))
    why = refused("differ from the last run", inputs=[other])
    assert "added: c.jsonl" in why and "removed: a.jsonl" in why and "removed: b.jsonl" in why
    assert_current(out, want(a=18, b=4))


def test_compressed_and_parquet_files_that_change_are_refused(
    ray_local, tiny_model_dir, lora_adapter_dir, tmp_path
):
    paths = write_formats(tmp_path / "in")
    keep = {k: paths[k] for k in ("csv.gz", "parquet-1rg")}
    for k, p in paths.items():
        if k not in keep:
            p.unlink()
    cfg = cfg_for(tiny_model_dir, lora_adapter_dir, [tmp_path / "in"], tmp_path / "out",
                  io__chunk_rows=2)  # fmt: skip
    m = scoring.run_scoring(cfg)
    assert m["rows"] == 10 and [e["layout"] for e in m["inputs"]] == ["staged", "staged"]
    gz = keep["csv.gz"]
    gz.write_bytes(gzip.compress(gzip.decompress(gz.read_bytes()) + b"f,more,\r\n"))  # grown
    cfg.io.update = True
    with pytest.raises(scoring.ScoreError, match=r"changed: n4-csv-gz.csv.gz \(a compressed or"):
        scoring.run_scoring(cfg)


# ---------------------------------------------------------------------------------------------
# MIMIC-IV-Note as it ships


@pytest.mark.slow  # a whole `python -m ray_jobs.score` job in a subprocess, with its own Ray
def test_mimic_iv_note_discharge_csv_gz_as_it_ships(
    ray_local, tiny_model_dir, lora_adapter_dir, tmp_path
):
    made = write_mimic(tmp_path / "note", 24, seed=5, mean_words=300, jsonl=True)
    csv_gz = Path(made["paths"]["csv_gz"])
    assert gzip.decompress(csv_gz.read_bytes()).startswith(
        b"note_id,subject_id,hadm_id,note_type,note_seq,charttime,storetime,text\n"
    )
    out = tmp_path / "scores"
    ray_tmp = tempfile.mkdtemp(prefix="rm", dir="/tmp")
    cmd = [sys.executable, "-m", "ray_jobs.score", "--config", str(SMOKE),
           "--adapter", str(lora_adapter_dir), "--input", str(csv_gz), "--output", str(out),
           "--set", f"model.name_or_path={tiny_model_dir}", "--set", "io.text_column=text",
           "--set", "io.id_column=note_id", "--keep-columns", "subject_id,hadm_id"]  # fmt: skip
    try:
        done = subprocess.run(cmd, cwd=REPO, env=job_env(ray_tmp), capture_output=True,
                              text=True, timeout=300)  # fmt: skip
    finally:
        kill_leftovers(ray_tmp)
        shutil.rmtree(ray_tmp, ignore_errors=True)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    rows = rows_of(out)
    notes = [json.loads(x) for x in Path(made["paths"]["jsonl"]).read_text().splitlines()]
    assert [(r["note_id"], r["source"], r["row"], r["subject_id"], r["hadm_id"]) for r in
            sorted(rows, key=lambda r: r["row"])] == [
        (n["note_id"], "discharge.csv.gz", k, str(n["subject_id"]), str(n["hadm_id"]))
        for k, n in enumerate(notes, start=1)
    ]  # fmt: skip
    assert all(r["status"] == "ok" for r in rows)
    cut = sum(r["truncated"] for r in rows)
    assert 0 < cut < len(rows)  # the long tail is cut to the prompt budget, and said
    assert f"{cut:,} cut to the prompt budget" in done.stdout
    for f in out.rglob("*"):  # note text never reaches the output or the log
        if f.is_file():
            assert b"Brief Hospital Course" not in f.read_bytes()
    # the same notes as JSONL give the same scores: the format changes nothing
    cfg = cfg_for(tiny_model_dir, lora_adapter_dir, [made["paths"]["jsonl"]], tmp_path / "j",
                  io__text_column="text", io__id_column="note_id", io__chunk_rows=16)  # fmt: skip
    scoring.run_scoring(cfg)
    other = {r["note_id"]: r["p_error"] for r in rows_of(tmp_path / "j")}
    for r in rows:
        assert r["p_error"] == pytest.approx(other[r["note_id"]], rel=1e-4)


def test_validate_checks_mimic_iv_note_as_it_ships_as_scoring_input(tmp_path, capsys):
    """`discriminator validate --text-column text --id-column note_id discharge.csv.gz`: the
    columns MIMIC-IV-Note ships, no labels; checked as scoring input, rows numbered as scoring
    numbers them."""
    from discriminator.cli import main

    made = write_mimic(tmp_path / "note", 12, seed=3, mean_words=200)
    csv_gz = made["paths"]["csv_gz"]
    assert main(["validate", "--text-column", "text", "--id-column", "note_id", csv_gz]) == 0
    out = capsys.readouterr().out
    assert out.startswith("unlabelled scoring input (no 'reason' column; note text in 'text'")
    assert "rows 12  valid 12  invalid 0" in out and "Brief Hospital Course" not in out
