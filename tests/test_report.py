"""Report: files, permissions, PNGs, headline numbers, no note text; the evaluate entrypoint."""

from __future__ import annotations

import json
import re
import stat
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from discriminator.report import PLOTS, evaluate, fmt
from ray_jobs.evaluate import main, parse_args

CANARY = "CANARY-7f3a-SMITH"
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
                "reason": (f"Timeline error: {CANARY}" if p >= 0.5 else "good") if ok else "",
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
    assert CANARY not in (out / "metrics.json").read_text(encoding="utf-8")
    return page


def test_full_report(tmp_path):
    lab, d = make_inputs(tmp_path)
    out = tmp_path / "eval" / "run1"
    m = evaluate(lab, d, out)
    assert json.loads((out / "metrics.json").read_text()) == m
    page = check_report(out, m)
    assert {p.name for p in out.glob("*.png")} == set(PLOTS)
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
    assert "AUROC is undefined" in page


def test_threshold_changes_decision(tmp_path):
    lab, d = make_inputs(tmp_path)
    low = evaluate(lab, d, tmp_path / "low", threshold=0.0)
    assert low["recall"] == 1.0 and low["decision"] == "p_error >= 0.0"
    assert low["auroc"] == evaluate(lab, d, tmp_path / "default")["auroc"]


def test_entrypoint(tmp_path, capsys):
    lab, d = make_inputs(tmp_path)
    out = tmp_path / "cli"
    rc = main(["--labels", str(lab), "--scores", str(d), "--out", str(out), "--threshold", "0.4"])
    assert rc == 0
    text = capsys.readouterr().out
    assert "AUROC" in text and "report.html" in text and CANARY not in text
    assert json.loads((out / "metrics.json").read_text())["threshold"] == 0.4
    assert main(["--labels", str(lab), "--scores", str(tmp_path / "nope"), "--out", str(out)]) == 2
    assert "not found" in capsys.readouterr().err


def test_config_precedence(tmp_path):
    y = tmp_path / "eval.yaml"
    y.write_text("labels: a.jsonl\nscores: s\nthreshold: 0.3\n")
    cfg, _ = parse_args(["--config", str(y)])
    assert (cfg.labels, cfg.scores, cfg.out, cfg.threshold) == ("a.jsonl", "s", "runs/eval", 0.3)
    cfg, _ = parse_args(["--config", str(y), "--threshold", "0.6", "--set", "out=o"])
    assert cfg.threshold == 0.6 and cfg.out == "o"
    cfg, _ = parse_args(["--config", str(y), "--threshold", "0.6", "--set", "threshold=0.7"])
    assert cfg.threshold == 0.7
    with pytest.raises(Exception, match="valid keys"):
        parse_args(["--set", "treshold=0.5"])
