"""Report: files, permissions, PNGs, headline numbers, training curves, examples per category,
note text only when allowed; the evaluate entrypoint."""

from __future__ import annotations

import json
import re
import shutil
import stat
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from discriminator.report import EXAMPLES_PER_GROUP, PLOTS, evaluate, fmt, is_synthetic
from ray_jobs.evaluate import main, parse_args

CANARY = "CANARY-7f3a-SMITH"  # in every note and label reason: never in the report
REASON = "GENREASON-<b>&"  # in the generated reasons: in the examples table, escaped
CATS = ["clinical_logic", "timeline", "phi", "justification", "structure"]


def make_inputs(tmp_path: Path, n: int = 60, single_class: bool = False) -> tuple[Path, Path]:
    """Labels with a canary in every note and reason; noisy scores in two parquet parts."""
    rng = np.random.default_rng(1)
    labels, scores = [], []
    for i in range(n):
        cat = "good" if single_class or i % 2 == 0 else CATS[i % 5]
        labels.append(
            {
                "id": f"n{i}",
                "note": f"Patient {CANARY} admitted. Note {i}.",
                "reason": "" if cat == "good" else f"{cat} error: {CANARY}",
                "category": cat,
            }
        )
        p = float(np.clip(rng.normal(0.7 if cat != "good" else 0.3, 0.2), 0, 1))
        status = "failed" if i == 5 else "invalid_input" if i == 7 else "ok"
        pred_cat = (cat if rng.random() < 0.7 else "other") if cat != "good" else "timeline"
        ok = status == "ok"
        scores.append(
            {
                "note_id": f"n{i}",
                "status": status,
                "verdict": ("error" if p >= 0.5 else "good") if ok else None,
                "p_error": p if ok else None,
                "reason": (f"Timeline error: {REASON} {i}" if p >= 0.5 else "good") if ok else "",
                "category": (pred_cat if p >= 0.5 else "good") if ok else "other",
                "n_tokens": 120,
                "truncated": False,
                "error": None if ok else "boom",
            }
        )
    lab = tmp_path / "labels.jsonl"
    lab.write_text("".join(json.dumps(r) + "\n" for r in labels[:-1]), encoding="utf-8")
    scores.append({**scores[0], "note_id": "unlabelled"})
    d = tmp_path / "scores"
    d.mkdir()
    half = len(scores) // 2
    pq.write_table(pa.Table.from_pylist(scores[:half]), d / "part-00000.parquet")
    pq.write_table(pa.Table.from_pylist(scores[half:]), d / "part-00001.parquet")
    manifest = {
        "base_model": "meta-llama/Llama-3.1-8B-Instruct",
        "adapter_sha256": "abc123",
        "prompt_version": "v1",
        "package_version": "0.1.0",
    }
    (d / "_manifest.json").write_text(json.dumps(manifest))
    return lab, d


def referenced_pngs(page: str) -> set[str]:
    return set(re.findall(r'<img src="([^"]+\.png)"', page))


def check_report(out: Path, m: dict) -> str:
    page = (out / "report.html").read_text(encoding="utf-8")
    on_disk = {p.name for p in out.glob("*.png")}
    assert referenced_pngs(page) == on_disk  # every PNG is shown, every image exists
    for name in on_disk:
        data = (out / name).read_bytes()
        assert data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) > 5000, name
    for key in ("accuracy", "balanced_accuracy", "precision", "recall", "f1", "auroc", "auprc"):
        assert f"<td>{fmt(m[key])}</td>" in page, key
    assert CANARY not in page
    assert REASON not in page  # only escaped
    metrics_text = (out / "metrics.json").read_text(encoding="utf-8")
    assert CANARY not in metrics_text and "GENREASON" not in metrics_text
    return page


def test_full_report(tmp_path):
    lab, d = make_inputs(tmp_path)
    out = tmp_path / "eval" / "run1"
    m = evaluate(lab, d, out)
    assert json.loads((out / "metrics.json").read_text()) == m
    page = check_report(out, m)
    # every plot but the training curves (no adapter in this manifest)
    assert {p.name for p in out.glob("*.png")} == set(PLOTS) - {"training_curves.png"}
    assert "No training metrics: no adapter named in the scores&#x27; _manifest.json" in page
    assert "Note text is not shown" in page and "<details>" not in page
    assert "GENREASON-&lt;b&gt;&amp;" in page  # generated reasons, escaped
    c = m["counts"]
    assert c["failed"] == 1 and c["invalid_input"] == 1
    assert c["scores_without_labels"] == 2  # n59 and "unlabelled"
    assert c["missing_from_scores"] == 0 and c["labelled"] == 59 and c["evaluated"] == 57
    assert set(m["per_category"]) == set(CATS) and 0.5 < m["auroc"] <= 1.0
    assert "abc123" in page and "prompt_version" in page  # provenance from _manifest.json
    assert "Category confusion" in page and "Calibration" in page
    # owner-only outputs
    assert stat.S_IMODE(out.stat().st_mode) == 0o700
    for f in out.iterdir():
        assert stat.S_IMODE(f.stat().st_mode) == 0o600, f.name
    assert not [f for f in out.iterdir() if f.name.startswith(".")]  # no temp files left


def test_single_class_report_and_stale_plots(tmp_path):
    lab, d = make_inputs(tmp_path, n=20, single_class=True)
    out = tmp_path / "eval"
    out.mkdir()
    (out / "roc.png").write_bytes(b"stale")  # from an earlier run with both classes
    m = evaluate(lab, d, out)
    assert m["auroc"] is None
    page = check_report(out, m)
    assert not (out / "roc.png").exists() and "undefined with a single class" in page
    assert "AUROC, AUPRC and balanced accuracy are undefined" in page


def test_threshold_changes_decision(tmp_path):
    lab, d = make_inputs(tmp_path)
    low = evaluate(lab, d, tmp_path / "low", threshold=0.0)
    assert low["recall"] == 1.0 and low["decision"] == "p_error >= 0.0"
    assert low["auroc"] == evaluate(lab, d, tmp_path / "default")["auroc"]


def test_entrypoint(tmp_path, capfd):
    lab, d = make_inputs(tmp_path)
    out = tmp_path / "cli"
    rc = main(["--labels", str(lab), "--scores", str(d), "--out", str(out), "--threshold", "0.4"])
    assert rc == 0
    text = capfd.readouterr().out
    assert "AUROC" in text and "report.html" in text and CANARY not in text
    assert "[eval] log: " in text and list((out / "logs").glob("eval-*.log"))
    assert json.loads((out / "metrics.json").read_text())["threshold"] == 0.4
    assert main(["--labels", str(lab), "--scores", str(tmp_path / "nope"), "--out", str(out)]) == 2
    assert "not found" in capfd.readouterr().err


def test_config_precedence(tmp_path):
    y = tmp_path / "eval.yaml"
    y.write_text("labels: a.jsonl\nscores: s\nthreshold: 0.3\n")
    cfg, _, _ = parse_args(["--config", str(y)])
    assert (cfg.labels, cfg.scores, cfg.out, cfg.threshold) == ("a.jsonl", "s", "runs/eval", 0.3)
    cfg, _, _ = parse_args(["--config", str(y), "--threshold", "0.6", "--set", "out=o"])
    assert cfg.threshold == 0.6 and cfg.out == "o"
    cfg, _, _ = parse_args(["--config", str(y), "--threshold", "0.6", "--set", "threshold=0.7"])
    assert cfg.threshold == 0.7
    with pytest.raises(Exception, match="valid keys"):
        parse_args(["--set", "treshold=0.5"])


# ---------------------------------------------------------------------------------------------
# Training curves


def write_adapter_metrics(adapter: Path) -> Path:
    """An adapter's metrics.json as `training.export_adapter` writes it (Trainer log_history)."""
    adapter.mkdir(parents=True, exist_ok=True)
    history = []
    for step in range(10, 101, 10):
        history.append({"epoch": step / 100, "grad_norm": 1.0, "learning_rate": 1e-4,
                        "loss": 2.0 / step ** 0.5, "step": step})  # fmt: skip
        if step % 50 == 0:
            history.append({"epoch": step / 100, "eval_loss": 1.5 - step / 200,
                            "eval_auroc": 0.5 + step / 400, "eval_balanced_accuracy": 0.6,
                            "eval_runtime": 1.2, "step": step})  # fmt: skip
    history.append({"epoch": 1.0, "step": 100, "total_flos": 1.0, "train_loss": 0.4,
                    "train_runtime": 30.0})  # fmt: skip
    summary = {
        "global_step": 100,
        "final_train_loss": history[-3]["loss"],
        "final_eval_loss": 1.0,
        "data": {"train": {"n": 80}},
        "log_history": history,
    }
    path = adapter / "metrics.json"
    path.write_text(json.dumps(summary, indent=2))
    return path


def test_training_curves_from_given_metrics(tmp_path):
    lab, d = make_inputs(tmp_path)
    given = write_adapter_metrics(tmp_path / "adapter")
    out = tmp_path / "eval"
    m = evaluate(lab, d, out, train_metrics=given)
    page = check_report(out, m)
    assert (out / "training_curves.png").is_file()
    assert '<img src="training_curves.png"' in page
    assert f"<code>{given}</code> (given)" in page
    assert "<td>last logged step</td><td>100</td>" in page
    assert f"<td>final eval loss</td><td>{fmt(1.0)}</td>" in page
    assert f"<td>final eval AUROC (first token)</td><td>{fmt(0.75)}</td>" in page
    assert f"<td>final train loss</td><td>{fmt(2.0 / 100**0.5)}</td>" in page
    assert "training" not in json.dumps(m)  # metrics.json unchanged by the curves


def test_training_curves_found_through_the_manifest(tmp_path):
    lab, d = make_inputs(tmp_path)
    adapter = tmp_path / "runs" / "adapter"
    write_adapter_metrics(adapter)
    manifest = {
        "state": "done",
        "identity": {"base_model": "identity-model"},
        "provenance": {
            "base_model": "HuggingFaceTB/SmolLM2-135M-Instruct",
            "adapter": str(adapter),
            "adapter_sha256": "feedbeef",
            "prompt_version": "v7",
        },
    }
    (d / "_manifest.json").write_text(json.dumps(manifest))
    out = tmp_path / "eval"
    m = evaluate(lab, d, out)
    page = check_report(out, m)
    assert (out / "training_curves.png").is_file()
    assert f"<code>{adapter / 'metrics.json'}</code> (found beside the adapter" in page
    # provenance at the top, before the metrics
    top = page[: page.index("Headline metrics")]
    for value in ("HuggingFaceTB/SmolLM2-135M-Instruct", str(adapter), "feedbeef", "v7"):
        assert f"<td>{value}</td>" in top, value
    assert "identity-model" not in top
    # the adapter is gone: the section says so, the stale plot is removed
    (adapter / "metrics.json").unlink()
    m = evaluate(lab, d, out)
    page = check_report(out, m)
    assert not (out / "training_curves.png").exists()
    assert "No training metrics: the adapter named in _manifest.json has no metrics.json" in page


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("{not json", "not valid JSON"),
        ('["a list"]', "has no log_history list"),
        ('{"log_history": "x"}', "has no log_history list"),
        ('{"log_history": [{"step": "ten", "loss": 1}, {"loss": 2.0}, 3]}', "has no loss"),
        (None, "file not found"),
    ],
)
def test_training_curves_missing_or_malformed(tmp_path, content, message):
    lab, d = make_inputs(tmp_path, n=20)
    path = tmp_path / "metrics.json"
    if content is not None:
        path.write_text(content)
    out = tmp_path / "eval"
    m = evaluate(lab, d, out, train_metrics=path)
    page = check_report(out, m)
    assert not (out / "training_curves.png").exists()
    section = page[page.index("Training curves") : page.index("Examples per category")]
    assert message in section and f"<code>{path}</code>" in section


# ---------------------------------------------------------------------------------------------
# Examples per category


def write_case(tmp_path: Path, labels: list[dict], scores: list[dict]) -> tuple[Path, Path]:
    lab = tmp_path / "labels.jsonl"
    lab.write_text("".join(json.dumps(r) + "\n" for r in labels), encoding="utf-8")
    d = tmp_path / "scores"
    d.mkdir()
    pq.write_table(pa.Table.from_pylist(scores), d / "part-00000.parquet")
    return lab, d


def score_row(nid: str, p: float, category: str) -> dict:
    error = p >= 0.5
    return {
        "note_id": nid,
        "status": "ok",
        "verdict": "error" if error else "good",
        "p_error": p,
        "reason": f"{category} error: why-{nid}" if error else "good",
        "category": category if error else "good",
    }


def example_rows(page: str) -> list[tuple[str, str, str]]:
    return re.findall(r"<tr data-category='([^']*)' data-kind='([^']*)' data-id='([^']*)'>", page)


def test_examples_table_groups_and_order(tmp_path):
    labels, scores = [], []
    # timeline: 7 detected (p 0.93 ... 0.63), 2 missed (p 0.2, 0.1)
    for k in range(7):
        labels.append({"id": f"t-det-{k}", "note": f"{CANARY} {k}", "reason": "Timeline error: x"})
        scores.append(score_row(f"t-det-{k}", 0.93 - k / 20, "timeline"))
    for k, p in enumerate((0.2, 0.1)):
        labels.append(
            {"id": f"t-miss-{k}", "note": f"{CANARY} m{k}", "reason": "Timeline error: y"}
        )
        scores.append(score_row(f"t-miss-{k}", p, "timeline"))
    # phi: 1 detected whose reason names another category
    labels.append({"id": "phi-det", "note": f"{CANARY} phi", "reason": "PHI error: name"})
    scores.append(score_row("phi-det", 0.8, "structure"))
    # good notes: 3 false alarms named structure, 1 named timeline, 4 true negatives
    for k, p in enumerate((0.55, 0.95, 0.7)):
        labels.append({"id": f"fa-{k}", "note": f"{CANARY} fa{k}", "reason": ""})
        scores.append(score_row(f"fa-{k}", p, "structure"))
    labels.append({"id": "fa-t", "note": f"{CANARY} fat", "reason": ""})
    scores.append(score_row("fa-t", 0.6, "timeline"))
    for k in range(4):
        labels.append({"id": f"tn-{k}", "note": f"{CANARY} tn{k}", "reason": ""})
        scores.append(score_row(f"tn-{k}", 0.1, "good"))
    lab, d = write_case(tmp_path, labels, scores)
    out = tmp_path / "eval"
    m = evaluate(lab, d, out)
    page = check_report(out, m)
    rows = example_rows(page)
    # categories in canonical order (timeline before phi before structure); kinds in order
    assert rows == [
        *[("timeline", "detected", f"t-det-{k}") for k in range(EXAMPLES_PER_GROUP)],
        ("timeline", "missed", "t-miss-1"),  # lowest p_error first: most confident miss
        ("timeline", "missed", "t-miss-0"),
        ("timeline", "false_alarm", "fa-t"),
        ("phi", "detected", "phi-det"),
        ("structure", "false_alarm", "fa-1"),
        ("structure", "false_alarm", "fa-2"),
        ("structure", "false_alarm", "fa-0"),
    ]
    assert "t-det-5" not in page and "tn-0" not in page  # over the limit / true negatives
    assert "detected 7, missed 2, false alarm 1" in page  # group sizes beside the heading
    # each row: p_error, predicted category and the generated reason of that note
    row = page[page.index("data-id='phi-det'") :].split("</tr>")[0]
    assert f"<td>{fmt(0.8)}</td>" in row and "<td>structure</td>" in row
    assert "structure error: why-phi-det" in row
    miss = page[page.index("data-id='t-miss-1'") :].split("</tr>")[0]
    assert f"<td>{fmt(0.1)}</td>" in miss and "<td>good</td>" in miss
    assert "Note text is not shown" in page and CANARY not in page


def test_examples_escape_ids_and_reasons(tmp_path):
    nasty = "<img src=x onerror=alert(1)>"
    labels = [
        {"id": f"id-{nasty}", "note": f"{CANARY} a", "reason": "Timeline error: x"},
        {"id": "ok-1", "note": f"{CANARY} b", "reason": ""},
    ]
    scores = [
        {**score_row(f"id-{nasty}", 0.9, "timeline"), "reason": f"Timeline error: {nasty}"},
        score_row("ok-1", 0.2, "good"),
    ]
    lab, d = write_case(tmp_path, labels, scores)
    out = tmp_path / "eval"
    evaluate(lab, d, out, show_text=True)
    page = (out / "report.html").read_text()
    assert nasty not in page and html_escape(nasty) in page
    assert "<script" not in page


def html_escape(text: str) -> str:
    import html

    return html.escape(text)


# ---------------------------------------------------------------------------------------------
# Note text: synthetic labels or --show-text only


def synthetic_case(tmp_path: Path, keep_meta: bool = True) -> tuple[Path, Path, list[dict]]:
    from discriminator.synth import generate_records

    recs = generate_records(12, seed=3, error_rate=0.5, length="short")
    rng = np.random.default_rng(0)
    scores = []
    for r in recs:
        bad = r["category"] != "good"
        p = float(np.clip(rng.normal(0.7 if bad else 0.35, 0.25), 0.01, 0.99))
        scores.append(score_row(r["id"], p, r["category"] if bad else "timeline"))
    labels = recs if keep_meta else [{k: r[k] for k in ("id", "note", "reason")} for r in recs]
    lab, d = write_case(tmp_path, labels, scores)
    return lab, d, recs


def shown_notes(page: str, recs: list[dict]) -> list[str]:
    return [r["id"] for r in recs if html_escape(r["note"]) in page]


def test_note_text_shown_for_synthetic_labels(tmp_path):
    lab, d, recs = synthetic_case(tmp_path)
    out = tmp_path / "eval"
    evaluate(lab, d, out)
    page = (out / "report.html").read_text()
    listed = {nid for _, _, nid in example_rows(page)}
    assert listed and set(shown_notes(page, recs)) == listed  # the examples' notes, no others
    assert "<b>Note text is shown</b>: the labels are synthetic" in page
    assert page.count("<details>") == len(example_rows(page))


def test_note_text_hidden_for_real_labels_unless_asked(tmp_path):
    lab, d, recs = synthetic_case(tmp_path, keep_meta=False)  # ids synth-*, no generator fields
    out = tmp_path / "eval"
    evaluate(lab, d, out)
    page = (out / "report.html").read_text()
    assert example_rows(page)
    assert shown_notes(page, recs) == [] and "<details>" not in page
    for r in recs:  # not even a line of a note
        for line in r["note"].splitlines():
            if len(line) > 30:
                assert html_escape(line) not in page
    assert "Note text is not shown" in page
    # --show-text: the examples' notes appear
    evaluate(lab, d, out, show_text=True)
    page = (out / "report.html").read_text()
    listed = {nid for _, _, nid in example_rows(page)}
    assert listed and set(shown_notes(page, recs)) == listed
    assert "<b>Note text is shown</b>: asked for with --show-text" in page
    # metrics.json never has note text
    text = (out / "metrics.json").read_text()
    assert not [r for r in recs if r["note"][:60] in text]


def test_is_synthetic_needs_the_generator_fields(tmp_path):
    from discriminator.data import read_records
    from discriminator.synth import generate_records

    recs = generate_records(3, seed=1, length="short")

    def records(rows: list[dict]) -> list:
        path = tmp_path / "r.jsonl"
        path.write_text("".join(json.dumps(r) + "\n" for r in rows))
        return read_records(path).records

    assert is_synthetic(records(recs))
    assert not is_synthetic(records([{k: r[k] for k in ("id", "note", "reason")} for r in recs]))
    assert not is_synthetic(records([*recs, {"id": "x", "note": "n", "reason": ""}]))
    wrong = {**recs[0], "id": "synth-1-2"}  # id does not match its meta (index 0)
    assert not is_synthetic(records([wrong]))
    assert not is_synthetic(records([{**recs[0], "kind": None} | {"meta": "x"}]))
    assert not is_synthetic([])


def test_entrypoint_flags(tmp_path):
    lab, d, recs = synthetic_case(tmp_path, keep_meta=False)
    given = write_adapter_metrics(tmp_path / "adapter")
    out = tmp_path / "cli"
    base = ["--labels", str(lab), "--scores", str(d), "--out", str(out)]
    assert main(base) == 0
    page = (out / "report.html").read_text()
    assert not shown_notes(page, recs) and not (out / "training_curves.png").exists()
    assert main([*base, "--show-text", "--train-metrics", str(given)]) == 0
    page = (out / "report.html").read_text()
    assert shown_notes(page, recs) and (out / "training_curves.png").is_file()
    cfg, _, _ = parse_args([*base, "--show-text", "--train-metrics", "m.json"])
    assert cfg.show_text is True and cfg.train_metrics == "m.json"
    y = tmp_path / "eval.yaml"
    y.write_text("show_text: true\ntrain_metrics: a/metrics.json\n")
    cfg, _, _ = parse_args(["--config", str(y)])  # no flag: the YAML's values stay
    assert cfg.show_text is True and cfg.train_metrics == "a/metrics.json"
    cfg, _, _ = parse_args([])
    assert cfg.show_text is False and cfg.train_metrics is None


def test_intervals_operating_point_and_baseline_in_json_console_and_page(tmp_path, capfd):
    lab, d = make_inputs(tmp_path)
    base_dir = tmp_path / "base"
    shutil.copytree(d, base_dir)
    for part in base_dir.glob("part-*.parquet"):  # a baseline that ranks at random
        t = pq.read_table(part).to_pylist()
        rng = np.random.default_rng(11)
        for r in t:
            if r["p_error"] is not None:
                r["p_error"] = float(rng.random())
                r["verdict"] = "error" if r["p_error"] >= 0.5 else "good"
        pq.write_table(pa.Table.from_pylist(t), part)
    # the baseline was scored with this package's p_error; the scores' manifest records none (v1)
    (base_dir / "_manifest.json").write_text(
        json.dumps({"base_model": "base-only", "provenance": {"scoring_version": "v2"}})
    )
    out = tmp_path / "eval"
    argv = ["--labels", str(lab), "--scores", str(d), "--out", str(out)]
    rc = main([*argv, "--target-recall", "0.9", "--baseline", str(base_dir), "--bootstrap", "300"])
    assert rc == 0
    m = json.loads((out / "metrics.json").read_text())
    lo, hi = m["auroc_ci95"]
    assert lo <= m["auroc"] <= hi and hi - lo > 0
    assert (
        m["balanced_accuracy_ci95"][0] <= m["balanced_accuracy"] <= m["balanced_accuracy_ci95"][1]
    )
    op = m["operating_point"]
    assert (
        op["target"] == {"recall": 0.9}
        and op["use"] == f"ray_jobs.score --threshold {op['threshold']:.6g}"
    )
    # chosen on these notes: the figures are out of bag, the threshold re-chosen per resample
    assert op["threshold_choice"] == "re-chosen per resample, reported out of bag"
    assert op["recall_interval"]["method"].startswith("out-of-bag")
    assert m["intervals"]["bootstrap_unit"] == "note"  # no patient in these labels
    base = m["baseline"]
    assert base["notes"] == m["counts"]["evaluated"] and base["scores"] == str(base_dir)
    assert base["dropped"] == {"only_in_scores": 0, "only_in_baseline": 0, "without_p_error": 0}
    assert base["auroc_diff"] == pytest.approx(base["auroc"] - base["baseline_auroc"])
    assert base["auroc_diff_ci95"][0] <= base["auroc_diff"] <= base["auroc_diff_ci95"][1]
    assert base["provenance"]["base_model"] == "base-only"
    assert any("different scoring versions (v1, v2)" in n for n in m["notes"])
    text = capfd.readouterr().out
    assert "95% intervals" in text and "recall >= 0.9: p_error >=" in text
    assert "vs baseline (" in text and CANARY not in text
    page = (out / "report.html").read_text(encoding="utf-8")
    assert "95% interval" in page and "Operating point: recall" in page
    assert "re-chosen per resample, reported out of bag" in page
    assert "The figures below did not choose the threshold" in page
    assert "Resampled by <b>note</b>" in page
    assert "Against the baseline" in page and CANARY not in page and "none left out" in page
    for bad in (
        ["--target-recall", "1.5"],
        ["--target-recall", "0.9", "--target-precision", "0.5"],
        ["--calibrate-on", str(base_dir)],  # a calibration set without a target
        ["--group-column", "hadm_id"],  # in neither labels nor scores
    ):
        assert main([*argv, *bad]) == 2


def test_calibrate_on_another_set_reports_the_threshold_there(tmp_path):
    """--calibrate-on: the threshold comes from the calibration scores; the figures are the
    evaluated notes' at that threshold, with their counts."""
    (tmp_path / "cal").mkdir()
    cal_lab, cal_dir = make_inputs(tmp_path / "cal", n=60)
    rng = np.random.default_rng(2)
    labels, scores = [], []
    for i in range(40):  # other notes (ids e*), other scores
        bad = i % 2 == 1
        labels.append({"id": f"e{i}", "note": "x", "reason": "Timeline error: y" if bad else ""})
        scores.append(score_row(f"e{i}", float(np.clip(rng.normal(0.6 if bad else 0.4, 0.2),
                                                       0, 1)), "timeline"))  # fmt: skip
    lab, d = write_case(tmp_path, labels, scores)
    out = tmp_path / "eval"
    argv = ["--labels", str(lab), "--scores", str(d), "--out", str(out), "--target-recall", "0.9"]
    assert main([*argv, "--calibrate-on", str(cal_dir), "--calibrate-labels", str(cal_lab)]) == 0
    m = json.loads((out / "metrics.json").read_text())
    op = m["operating_point"]
    assert op["threshold_choice"] == "calibration set" and op["overlap"] == 0
    p = np.array([s["p_error"] for s in scores])
    y = np.arange(40) % 2 == 1
    tp = int(((p >= op["threshold"]) & y).sum())
    assert op["recall_interval"]["k"] == tp and op["recall_interval"]["n"] == 20
    page = (out / "report.html").read_text()
    assert f"{tp}/20" in page and "calibration set" in page


def test_small_counts_show_their_denominator(tmp_path):
    """2 of 2 timeline errors detected and named: the page says 2/2 and an interval that
    reaches below 1/2; AUROC's interval is withheld when too many resamples lack a class."""
    labels = [{"id": f"g{i}", "note": "x", "reason": ""} for i in range(10)]
    labels += [{"id": f"t{i}", "note": "x", "reason": "Timeline error: y"} for i in range(2)]
    scores = [score_row(f"g{i}", 0.1 + 0.03 * i, "timeline") for i in range(10)]
    scores += [score_row(f"t{i}", 0.9, "timeline") for i in range(2)]
    lab, d = write_case(tmp_path, labels, scores)
    m = evaluate(lab, d, tmp_path / "eval", n_boot=300)
    t = m["per_category"]["timeline"]["recall_interval"]
    assert (t["k"], t["n"]) == (2, 2) and t["ci95"][0] < 0.5
    assert m["category_accuracy_interval"]["k"] == 2 and m["category_accuracy_ci95"][0] < 0.5
    page = (tmp_path / "eval" / "report.html").read_text()
    assert "<td>2/2</td>" in page and "<td>[0.158, 1.000]</td>" in page
    # (10/12)^12 = 11% of resamples have no error: AUROC's interval is withheld, not narrowed
    assert m["auroc_ci95"] is None and "undefined in" in m["auroc_interval"]["withheld"]
    assert "no interval (undefined in" in page


def test_synthetic_labels_resample_patients(tmp_path):
    from discriminator.synth import generate_records

    recs = generate_records(40, seed=3, error_rate=0.5, length="short")
    patients = {r["patient_id"] for r in recs}
    assert len(patients) < len(recs)  # several notes per patient
    rng = np.random.default_rng(0)
    scores = [
        score_row(r["id"], float(rng.random()), "timeline" if r["category"] == "good" else
                  r["category"]) for r in recs
    ]  # fmt: skip
    lab, d = write_case(tmp_path, recs, scores)
    m = evaluate(lab, d, tmp_path / "eval", n_boot=50)
    assert m["intervals"]["bootstrap_unit"] == f"patient_id ({len(patients)} groups)"
    page = (tmp_path / "eval" / "report.html").read_text()
    assert f"Resampled by <b>patient_id ({len(patients)} groups)</b>" in page
    m = evaluate(lab, d, tmp_path / "eval2", n_boot=50, group_column="note")
    assert m["intervals"]["bootstrap_unit"] == "note"
