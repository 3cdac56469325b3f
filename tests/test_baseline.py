"""The TF-IDF floor (`discriminator baseline`): the scorer's parquet format, what evaluate reads,
input rows as the scorer sees them, a planted cue found, the per-kind benchmark's arithmetic."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from discriminator.baseline import (
    BaselineError,
    FloorSettings,
    fit_floor,
    input_files,
    read_input,
    run_floor,
)
from discriminator.cli import main as cli
from discriminator.scoring.schema import MANIFEST, OUTPUT_SCHEMA, PROVENANCE_KEY

REPO = Path(__file__).resolve().parents[1]


def _jsonl(path: Path, rows: list[dict]) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def _table(out: Path):
    parts = sorted(out.glob("part-*.parquet"))
    assert parts, f"no part files in {out}"
    return pq.read_table(parts[0]) if len(parts) == 1 else pq.read_table(out)


def _cue_records(n: int, cue: str = "zzqx") -> list[dict]:
    """Good notes and error notes that differ only by one planted word in the errors."""
    words = "patient admitted with pneumonia treated with ceftriaxone improved discharged home"
    rows = []
    for i in range(n):
        bad = i % 2 == 1
        text = f"{words} day {i % 7} {cue if bad else 'stable'} follow up clinic"
        rows.append({"id": f"n{i}", "note": text, "reason": "Structure error: x" if bad else ""})
    return rows


@pytest.mark.slow
def test_floor_scores_are_read_by_evaluate_alone_and_as_baseline(tmp_path, capfd):
    """synth -> floor (two feature sets, two seeds) -> `python -m ray_jobs.evaluate --scores`,
    then one floor as the other's `--baseline`: the scorer's columns and types, every test note
    scored once, AUROC and the paired difference in metrics.json, no note text on the console."""
    data = tmp_path / "synth"
    assert cli(["synth", "--n", "300", "--seed", "3", "--length", "short", "--out", str(data)]) == 0
    test = data / "test.jsonl"
    test_recs = [json.loads(x) for x in test.read_text().splitlines()]
    capfd.readouterr()
    a, b = tmp_path / "floor-both", tmp_path / "floor-word"
    train = str(data / "train.jsonl")
    assert cli(["baseline", "--train", train, "--input", str(test), "--output", str(a)]) == 0
    assert cli(["baseline", "--train", train, "--input", str(test), "--out", str(b),
                "--features", "word", "--seed", "1"]) == 0  # fmt: skip
    console = capfd.readouterr()
    assert "[floor] wrote 1 part(s)" in console.out
    for r in test_recs + [json.loads(x) for x in (data / "train.jsonl").read_text().splitlines()]:
        assert r["note"][:60] not in console.out + console.err  # ids and counts only

    table = _table(a)
    assert table.schema.remove_metadata() == OUTPUT_SCHEMA  # same columns, same types, same order
    prov = json.loads(table.schema.metadata[PROVENANCE_KEY])
    assert prov["model"] == "tfidf-logreg" and prov["settings"]["features"] == "both"
    rows = table.to_pylist()
    assert sorted(r["note_id"] for r in rows) == sorted(r["id"] for r in test_recs)
    assert {r["status"] for r in rows} == {"ok"} and {r["source"] for r in rows} == {"test.jsonl"}
    assert [r["row"] for r in rows] == list(range(1, len(test_recs) + 1))
    for r in rows:
        assert 0.0 <= r["p_error"] <= 1.0
        assert r["verdict"] == ("error" if r["p_error"] >= 0.5 else "good")
        assert r["category"] == ("good" if r["verdict"] == "good" else None)
    assert {r["verdict"] for r in rows} == {"good", "error"}
    p_a = {r["note_id"]: r["p_error"] for r in rows}
    p_b = {r["note_id"]: r["p_error"] for r in _table(b).to_pylist()}
    assert p_a != p_b  # another feature set, another scoring

    man = json.loads((a / MANIFEST).read_text())
    assert man["state"] == "complete" and man["rows"] == len(test_recs)
    assert man["counts"] == {"ok": len(test_recs)}
    train_n = len((data / "train.jsonl").read_text().splitlines())
    assert man["provenance"]["train"]["records"] == train_n
    assert len(man["provenance"]["train"]["files"][0]["sha256"]) == 64
    assert man["provenance"]["versions"]["scikit-learn"]
    assert man["seconds"]["total"] > 0

    ev = tmp_path / "eval"
    proc = subprocess.run(
        [sys.executable, "-m", "ray_jobs.evaluate", "--labels", str(test), "--scores", str(a),
         "--out", str(ev), "--bootstrap", "200"],
        cwd=REPO, capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert proc.returncode == 0, (proc.stdout + proc.stderr)[-2000:]
    m = json.loads((ev / "metrics.json").read_text())
    assert m["counts"]["evaluated"] == len(test_recs) and m["counts"]["missing_from_scores"] == 0
    assert 0.0 <= m["auroc"] <= 1.0 and m["auroc_ci95"][0] <= m["auroc"] <= m["auroc_ci95"][1]
    assert m["auprc"] is not None and m["n_with_p_error"] == len(test_recs)

    from ray_jobs.evaluate import main as evaluate

    ev2 = tmp_path / "eval-vs"
    argv = ["--labels", str(test), "--scores", str(a), "--baseline", str(b), "--out", str(ev2)]
    assert evaluate([*argv, "--bootstrap", "200"]) == 0
    m2 = json.loads((ev2 / "metrics.json").read_text())
    base = m2["baseline"]
    assert base["provenance"]["provenance.model"] == "tfidf-logreg"
    assert base["notes"] == len(test_recs)
    assert base["auroc"] == pytest.approx(m2["auroc"]) and base["baseline_auroc"] is not None
    assert base["auroc_diff"] == pytest.approx(base["auroc"] - base["baseline_auroc"])
    lo, hi = base["auroc_diff_ci95"]
    assert lo <= base["auroc_diff"] <= hi
    assert not [n for n in m2["notes"] if "scoring versions" in n]


def test_floor_beside_an_adapter_scoring_raises_no_version_note(tmp_path):
    """The floor's p_error is read from no token: against an adapter's scores (scoring version
    v2) the evaluation says nothing about mixed scoring versions, as it does for two adapters."""
    from discriminator.report import evaluate

    recs = _cue_records(40)
    lab = _jsonl(tmp_path / "l.jsonl", recs)
    floor = tmp_path / "floor"
    run_floor([str(lab)], [str(lab)], str(floor))
    adapter = tmp_path / "adapter"
    adapter.mkdir()
    for part in floor.glob("part-*.parquet"):
        (adapter / part.name).write_bytes(part.read_bytes())
    for version in ("v2", "v1"):
        prov = {"prompt_version": "v1", "scoring_version": version, "adapter": None}
        (adapter / MANIFEST).write_text(json.dumps({"format": 2, "provenance": prov}))
        m = evaluate(lab, adapter, tmp_path / f"ev-{version}", n_boot=0, baseline=floor)
        mixed = [n for n in m["notes"] if "scoring versions" in n]
        assert not mixed, version
    other = tmp_path / "adapter-v2"
    other.mkdir()
    for part in floor.glob("part-*.parquet"):
        (other / part.name).write_bytes(part.read_bytes())
    (other / MANIFEST).write_text(json.dumps({"provenance": {"scoring_version": "v2"}}))
    m = evaluate(lab, adapter, tmp_path / "ev-mixed", n_boot=0, baseline=other)
    assert [n for n in m["notes"] if "scoring versions" in n]  # two adapters: still said


def test_floor_finds_a_planted_word_and_is_deterministic():
    """Error notes that carry one word no good note has: the floor separates them completely;
    the same settings give the same scores; word and character features both find it."""
    recs = _cue_records(80)
    notes = [r["note"] for r in recs]
    errors = [bool(r["reason"]) for r in recs]
    test = _cue_records(20, cue="zzqx")
    for features in ("word", "char", "both"):
        floor = fit_floor(notes, errors, FloorSettings(features=features))
        p = floor.score([r["note"] for r in test])
        p_err = [v for v, r in zip(p, test) if r["reason"]]
        p_good = [v for v, r in zip(p, test) if not r["reason"]]
        assert min(p_err) > 0.5 > max(p_good), features
    again = fit_floor(notes, errors, FloorSettings(features="both")).score(notes)
    assert again == fit_floor(notes, errors, FloorSettings(features="both")).score(notes)
    with pytest.raises(BaselineError, match="all good"):
        fit_floor(notes, [False] * len(notes), FloorSettings())


def test_input_rows_as_the_scorer_sees_them(tmp_path):
    """text/id columns honoured; a row without an id gets `<file>:<row>`; a row without text is
    invalid_input (p_error and verdict null, the reason without the text); blank lines skipped."""
    csv = tmp_path / "in" / "a.csv"
    csv.parent.mkdir()
    csv.write_text('nid,text\nx1,"first note, with a comma"\n,second note\nx3,\n')
    jl = tmp_path / "in" / "b.jsonl"
    jl.write_text('{"text": "a note"}\n\n{"other": 1}\n')
    rows = read_input(input_files([str(tmp_path / "in")]), "text", "nid")
    a = [(r.note_id, r.source, r.row, r.status) for r in rows["a.csv"]]
    assert a == [("x1", "a.csv", 1, "ok"), ("a.csv:2", "a.csv", 2, "ok"),
                 ("x3", "a.csv", 3, "invalid_input")]  # fmt: skip
    b = [(r.note_id, r.row, r.status) for r in rows["b.jsonl"]]
    assert b == [("b.jsonl:1", 1, "ok"), ("b.jsonl:3", 3, "invalid_input")]
    assert rows["b.jsonl"][1].error == "missing 'text'"

    train = _jsonl(tmp_path / "train.jsonl", _cue_records(40))
    out = tmp_path / "out"
    man = run_floor([str(train)], [str(tmp_path / "in")], str(out), FloorSettings(
        text_column="text", id_column="nid"))  # fmt: skip
    assert man["counts"] == {"invalid_input": 2, "ok": 3} and len(man["inputs"]) == 2
    got = {r["note_id"]: r for r in pq.read_table(out).to_pylist()}
    assert got["x3"]["p_error"] is None and got["x3"]["verdict"] is None
    assert got["x3"]["error"] and "note" not in got["x3"]["error"].replace("'text'", "")
    assert got["x1"]["p_error"] is not None and got["x1"]["truncated"] is False
    with pytest.raises(BaselineError, match="already holds scores"):
        run_floor([str(train)], [str(csv)], str(out))


def test_cli_errors_exit_2(tmp_path, capfd):
    good_only = _jsonl(
        tmp_path / "g.jsonl", [{"note": f"note {i}", "reason": ""} for i in range(4)]
    )
    argv = ["baseline", "--train", str(good_only), "--input", str(good_only)]
    assert cli([*argv, "--output", str(tmp_path / "o")]) == 2
    assert "both labels" in capfd.readouterr().err
    missing = ["--input", str(tmp_path / "nope.jsonl"), "--out", str(tmp_path / "p")]
    assert cli([*argv[:3], *missing]) == 2
    err = capfd.readouterr()
    assert "not found" in err.err and "[floor] training" not in err.out  # stops before training


# ---------------------------------------------------------------------------------------------
# benchmarks.floor


def test_wilson_and_specificity_threshold():
    from benchmarks.floor import threshold_at_specificity, wilson

    lo, hi = wilson(0, 10)
    assert lo == 0.0 and hi == pytest.approx(0.2775, abs=1e-4)  # the textbook 0/10 interval
    lo, hi = wilson(45, 50)
    assert lo == pytest.approx(0.7864, abs=1e-4) and hi == pytest.approx(0.9565, abs=1e-4)
    assert wilson(0, 0) is None
    p = [i / 100 for i in range(100)]
    t = threshold_at_specificity(p, 0.9)
    assert sum(v < t for v in p) == 90 and sum(v >= t for v in p) == 10
    t = threshold_at_specificity([0.2] * 10, 0.9)  # ties: nothing of the good notes is flagged
    assert t > 0.2


def test_floor_benchmark_reports_every_kind_and_prints_the_table_from_its_json(tmp_path, capsys):
    from benchmarks import floor
    from discriminator.synth import ERROR_KINDS

    out = tmp_path / "floor.json"
    assert floor.main(["--n", "200", "--seed", "2", "--features", "word", "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    rep = json.loads(out.read_text())
    assert {r["kind"] for r in rep["kinds"]} == set(ERROR_KINDS)
    assert sum(r["n"] for r in rep["kinds"]) == rep["cross_validated"]["errors"]
    assert (
        rep["cross_validated"]["notes"] == 200
        and len(rep["git_commit"].removesuffix("-dirty")) == 40
    )
    assert rep["cross_validated"]["specificity"] >= 0.9
    assert rep["versions"]["scikit-learn"] and rep["machine"]["cpus"]
    for r in rep["kinds"]:
        if r["n"]:
            assert r["recall_ci95"][0] <= r["recall"] <= r["recall_ci95"][1]
            assert r["flagged"] == round(r["recall"] * r["n"])
    assert floor.main(["--table", "--out", str(out)]) == 0
    table = capsys.readouterr().out
    assert table.strip() in printed and table.count("\n| ") == len(ERROR_KINDS) + 1
    with pytest.raises(SystemExit) as e:  # no results yet: a usage error, as every --table says
        floor.main(["--table", "--out", str(tmp_path / "none.json")])
    assert e.value.code == 2 and "run the benchmark first" in capsys.readouterr().err
