"""Metrics: golden values on hand-made label/score sets (no model, no Ray)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from discriminator import metrics as M
from discriminator.data import read_records

KNOWN = ([0, 0, 1, 1], [0.1, 0.4, 0.35, 0.8])  # sklearn's docs example: AUROC .75, AP .8333


def write_labels(path: Path, rows: list[dict]) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return path


def score_row(note_id, status="ok", verdict=None, p=None, category=None, reason=None) -> dict:
    if status == "ok" and verdict is None:
        verdict = "error" if p >= 0.5 else "good"
    if category is None:
        category = "good" if verdict in (None, "good") else "other"
    return {
        "note_id": note_id,
        "status": status,
        "verdict": verdict if status == "ok" else None,
        "p_error": p if status == "ok" else None,
        "reason": reason or ("good" if category == "good" else f"{category} error: x"),
        "category": category,
        "n_tokens": 100,
        "truncated": False,
        "error": None if status == "ok" else "boom",
    }


def write_scores(path: Path, rows: list[dict]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    schema = pa.schema(
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
    pq.write_table(pa.Table.from_pylist(rows, schema=schema), path)
    return path


def scores_of(rows: list[dict]) -> M.Scores:
    return M.Scores(
        [r["note_id"] for r in rows],
        [r["status"] for r in rows],
        [r["verdict"] for r in rows],
        [r["p_error"] for r in rows],
        [r["category"] for r in rows],
        1,
    )


# The mixed scenario: TN, FP, TP named, FN, TP misnamed, failed, invalid, missing, extra.
LABELS = [
    {"id": "a", "note": "n a", "reason": ""},
    {"id": "b", "note": "n b", "reason": "good"},
    {"id": "c", "note": "n c", "reason": "Timeline error: x", "category": "timeline"},
    {"id": "d", "note": "n d", "reason": "Timeline error: y", "category": "timeline"},
    {"id": "e", "note": "n e", "reason": "PHI error: z", "category": "phi"},
    {"id": "f", "note": "n f", "reason": "Clinical logic error: w"},
    {"id": "g", "note": "n g", "reason": ""},
    {"id": "h", "note": "n h", "reason": "Clinical logic error: v"},
]
SCORES = [
    score_row("a", p=0.1),
    score_row("b", p=0.7, category="timeline"),
    score_row("c", p=0.9, category="timeline"),
    score_row("d", p=0.3),
    score_row("e", p=0.8, category="clinical_logic"),
    score_row("f", status="failed"),
    score_row("g", status="invalid_input"),
    score_row("z", p=0.2),
]


@pytest.fixture
def records(tmp_path):
    return read_records(write_labels(tmp_path / "labels.jsonl", LABELS)).records


# ---------------------------------------------------------------------------------------------
# Ranking metrics


def test_auroc_and_ap_known_ranking():
    y, p = np.array(KNOWN[0], bool), np.array(KNOWN[1])
    assert M.auroc(y, p) == pytest.approx(0.75)
    assert M.average_precision(y, p) == pytest.approx(0.8333333)


def test_perfect_and_inverted_classifiers():
    y = np.array([0, 0, 0, 1, 1], bool)
    p = np.array([0.1, 0.2, 0.3, 0.8, 0.9])
    assert M.auroc(y, p) == 1.0
    assert M.average_precision(y, p) == 1.0
    assert M.auroc(y, 1 - p) == 0.0
    assert M.average_precision(y, 1 - p) == pytest.approx((1 / 4 + 2 / 5) / 2)


def test_ties_are_ranked_together():
    y = np.array([0, 1, 0, 1], bool)
    assert M.auroc(y, np.full(4, 0.5)) == 0.5
    assert M.average_precision(y, np.full(4, 0.5)) == 0.5
    # pairs: (0.9 vs 0.9) half, (0.9 vs 0.1) 1, (0.2 vs 0.9) 0, (0.2 vs 0.1) 1 -> 2.5 / 4
    y2 = np.array([1, 0, 1, 0], bool)
    p2 = np.array([0.9, 0.9, 0.2, 0.1])
    assert M.auroc(y2, p2) == pytest.approx(0.625)
    # the answer does not depend on the order of tied rows
    assert M.auroc(y2[::-1], p2[::-1]) == pytest.approx(0.625)
    assert M.average_precision(y2, p2) == M.average_precision(y2[[1, 0, 2, 3]], p2[[1, 0, 2, 3]])


def test_auroc_matches_area_under_roc_curve():
    rng = np.random.default_rng(0)
    y = rng.random(300) < 0.4
    p = np.round(rng.random(300) * 0.5 + y * 0.3, 1)  # heavy ties
    fpr, tpr, thr = M.roc_curve(y, p)
    assert fpr[0] == tpr[0] == 0 and fpr[-1] == tpr[-1] == 1 and np.isinf(thr[0])
    area = float(np.sum(np.diff(fpr) * (tpr[1:] + tpr[:-1]) / 2))
    assert M.auroc(y, p) == pytest.approx(area)


def test_best_f1_threshold():
    b = M.best_f1(np.array(KNOWN[0], bool), np.array(KNOWN[1]))
    assert b == {
        "threshold": 0.35,
        "f1": pytest.approx(0.8),
        "precision": pytest.approx(2 / 3),
        "recall": 1.0,
    }
    # among equal F1s the highest threshold wins
    b2 = M.best_f1(np.array([1, 0, 0, 1], bool), np.array([0.9, 0.8, 0.7, 0.6]))
    assert b2["threshold"] == 0.9 and b2["f1"] == pytest.approx(2 / 3)
    assert M.best_f1(np.array([0, 0], bool), np.array([0.1, 0.2])) is None


def test_binary_metrics_and_degenerate_ratios():
    m = M.binary_metrics(np.array([1, 1, 0, 0], bool), np.array([1, 0, 1, 0], bool))
    assert m["accuracy"] == 0.5 and m["precision"] == 0.5 and m["recall"] == 0.5
    assert m["confusion"]["matrix"] == [[1, 1], [1, 1]]
    none = M.binary_metrics(np.array([0, 0], bool), np.array([0, 0], bool))
    assert none["accuracy"] == 1.0 and none["balanced_accuracy"] == 1.0
    assert none["precision"] is None and none["recall"] is None and none["f1"] is None


def test_calibration_bins_and_ece():
    y = np.array([0, 0, 1, 1, 1], bool)
    p = np.array([0.05, 0.15, 0.15, 0.95, 1.0])
    cal = M.calibration(y, p)
    bins = cal["bins"]
    assert len(bins) == 10 and sum(b["count"] for b in bins) == 5
    assert bins[0] == {"lo": 0.0, "hi": 0.1, "count": 1, "mean_p_error": 0.05, "error_rate": 0.0}
    assert bins[1]["count"] == 2 and bins[1]["error_rate"] == 0.5
    assert bins[9]["count"] == 2 and bins[9]["mean_p_error"] == pytest.approx(0.975)  # 1.0 in
    assert bins[5]["count"] == 0 and bins[5]["mean_p_error"] is None
    assert cal["ece"] == pytest.approx(0.05 / 5 + 2 * 0.35 / 5 + 2 * 0.025 / 5)


# ---------------------------------------------------------------------------------------------
# Join + full metrics


def test_mixed_scenario_counts_and_metrics(records):
    data = M.join(records, scores_of(SCORES))
    m = M.compute_metrics(data)
    c = m["counts"]
    assert c["labelled"] == 8 and c["matched"] == 7 and c["score_rows"] == 8
    assert (c["ok"], c["invalid_input"], c["failed"]) == (5, 1, 1)
    assert c["missing_from_scores"] == 1 and c["scores_without_labels"] == 1
    assert c["evaluated"] == 5 and c["label_good"] == 2 and c["label_error"] == 3
    assert m["ids"]["missing_from_scores"] == ["h"]
    assert m["ids"]["scores_without_labels"] == ["z"]
    assert m["ids"]["failed"] == ["f"] and m["ids"]["invalid_input"] == ["g"]
    conf = m["confusion"]
    assert (conf["tn"], conf["fp"], conf["fn"], conf["tp"]) == (1, 1, 1, 2)
    assert m["accuracy"] == pytest.approx(0.6)
    assert m["balanced_accuracy"] == pytest.approx((2 / 3 + 1 / 2) / 2)
    assert m["precision"] == pytest.approx(2 / 3) and m["recall"] == pytest.approx(2 / 3)
    assert m["f1"] == pytest.approx(2 / 3)
    assert m["auroc"] == pytest.approx(5 / 6)
    per = m["per_category"]
    assert list(per) == ["timeline", "phi"]  # canonical order; f and h (failed/missing) absent
    timeline_ci = per["timeline"].pop("recall_ci95")  # 1 of 2 detected: anywhere in [0, 1]
    assert timeline_ci[0] <= 0.5 <= timeline_ci[1] and per["phi"].pop("recall_ci95") == [1.0, 1.0]
    assert per["timeline"] == {"n": 2, "detected": 1, "recall": 0.5, "named": 1, "named_rate": 1.0}
    assert per["phi"] == {"n": 1, "detected": 1, "recall": 1.0, "named": 0, "named_rate": 0.0}
    assert m["category_accuracy"] == 0.5 and m["category_accuracy_n"] == 2
    cc = m["category_confusion"]
    assert cc["rows"] == ["good", "timeline", "phi"]
    assert cc["columns"][:2] == ["good", "clinical_logic"] and cc["columns"][-1] == "other"
    row = dict(zip(cc["columns"], cc["matrix"][cc["rows"].index("good")]))
    assert row["good"] == 1 and row["timeline"] == 1
    json.dumps(m, allow_nan=False)  # serialisable, no NaN


def test_threshold_overrides_verdicts(records):
    m = M.compute_metrics(M.join(records, scores_of(SCORES), threshold=0.75), 0.75)
    conf = m["confusion"]
    assert (conf["tn"], conf["fp"], conf["fn"], conf["tp"]) == (2, 0, 1, 2)
    assert m["decision"] == "p_error >= 0.75"
    # below the scorer's 0.5: d (p .3, verdict good, no reason) is now flagged without a category
    data = M.join(records, scores_of(SCORES), threshold=0.25)
    assert data.pred_category[data.ids.index("d")] == M.NO_REASON
    with pytest.raises(M.EvalError):
        M.join(records, scores_of(SCORES), threshold=1.5)


def test_ids_derived_from_file_and_line(tmp_path):
    recs = read_records(
        write_labels(
            tmp_path / "eval.jsonl",
            [{"note": "x", "reason": ""}, {"note": "y", "reason": "Timeline error: q"}],
        )
    ).records
    rows = [score_row("eval.jsonl:1", p=0.2), score_row("eval.jsonl:2", p=0.6, category="timeline")]
    m = M.compute_metrics(M.join(recs, scores_of(rows)))
    assert m["counts"]["evaluated"] == 2 and m["accuracy"] == 1.0 and m["auroc"] == 1.0


def test_medec_style_labels(tmp_path):
    rows, scores = [], []
    for i in range(6):
        err = i % 2 == 1
        rows.append(
            {
                "id": f"ms-{i}",
                "note": f"text {i}",
                "reason": "wrong dose" if err else "",
                "category": "clinical_logic" if err else "good",
            }
        )
        scores.append(
            score_row(
                f"ms-{i}",
                p=0.9 if i in (1, 3, 4) else 0.1,
                category="clinical_logic" if i in (1, 4) else None,
            )
        )
    recs = read_records(write_labels(tmp_path / "medec.jsonl", rows)).records
    m = M.compute_metrics(M.join(recs, scores_of(scores)))
    assert list(m["per_category"]) == ["clinical_logic"]
    cl = m["per_category"]["clinical_logic"]
    assert cl["n"] == 3 and cl["detected"] == 2 and cl["named"] == 1 and cl["named_rate"] == 0.5
    assert m["category_accuracy"] == 0.5


def test_label_category_synonyms():
    assert M.label_category("timeline") == "timeline"
    assert M.label_category("Timeline") == "timeline"
    assert M.label_category("Pharmacotherapy") == "clinical_logic"
    assert M.label_category("weird") == "other"


@pytest.mark.parametrize("label_error", [False, True])
def test_single_class_does_not_crash(tmp_path, label_error):
    reason = "Timeline error: x" if label_error else ""
    recs = read_records(
        write_labels(
            tmp_path / "l.jsonl", [{"id": str(i), "note": "n", "reason": reason} for i in range(4)]
        )
    ).records
    rows = [score_row(str(i), p=p, category="timeline") for i, p in enumerate([0.1, 0.6, 0.7, 0.9])]
    m = M.compute_metrics(M.join(recs, scores_of(rows)))
    assert m["auroc"] is None and any("AUROC" in n for n in m["notes"])
    if label_error:
        assert m["auprc"] == 1.0 and m["recall"] == 0.75 and m["balanced_accuracy"] == 0.75
    else:
        assert m["auprc"] is None and m["best_f1"] is None and m["recall"] is None
        assert m["accuracy"] == 0.25
    json.dumps(m, allow_nan=False)


def test_nothing_evaluable(records):
    rows = [score_row(r["id"], status="failed") for r in LABELS]
    m = M.compute_metrics(M.join(records, scores_of(rows)))
    assert m["counts"]["failed"] == 8 and m["counts"]["evaluated"] == 0
    assert m["accuracy"] is None and m["auroc"] is None and m["calibration"]["ece"] is None
    assert m["per_category"] == {} and m["category_accuracy"] is None


def test_missing_p_error_is_counted(records):
    rows = [dict(r) for r in SCORES]
    rows[0]["p_error"] = None  # a: verdict still decides
    rows[1]["p_error"], rows[1]["verdict"] = None, None  # b: nothing to decide with
    m = M.compute_metrics(M.join(records, scores_of(rows)))
    assert m["counts"]["no_prediction"] == 1 and m["counts"]["evaluated"] == 4
    assert m["n_with_p_error"] == 3 and m["auroc"] is None  # c, d, e: all errors
    assert any("without p_error" in n for n in m["notes"])


def test_duplicates_counted(records):
    rows = [*SCORES, score_row("a", p=0.99)]
    m = M.compute_metrics(M.join(records, scores_of(rows)))
    assert m["counts"]["duplicate_score_ids"] == 1
    assert m["confusion"]["tn"] == 1  # the first row of `a` was used


# ---------------------------------------------------------------------------------------------
# Reading parquet folders


def test_read_scores_folder_skips_temp_files(tmp_path):
    d = tmp_path / "scores"
    write_scores(d / "part-0.parquet", SCORES[:4])
    write_scores(d / "sub" / "part-1.parquet", SCORES[4:])
    write_scores(d / ".part-2.parquet", [score_row("x", p=0.5)])
    write_scores(d / "_tmp" / "part-3.parquet", [score_row("y", p=0.5)])
    (d / "_manifest.json").write_text(json.dumps({"base_model": "m", "prompt_version": "v1"}))
    s = M.read_scores(d)
    assert s.files == 2 and sorted(s.note_id) == sorted(r["note_id"] for r in SCORES)
    assert M.provenance(M.read_manifest(d)) == {"base_model": "m", "prompt_version": "v1"}
    with pytest.raises(M.EvalError, match="not found"):
        M.read_scores(tmp_path / "nowhere")


def test_read_scores_errors(tmp_path):
    (tmp_path / "empty").mkdir()
    with pytest.raises(M.EvalError, match="no parquet"):
        M.read_scores(tmp_path / "empty")
    pq.write_table(pa.table({"id": ["a"]}), tmp_path / "empty" / "x.parquet")
    with pytest.raises(M.EvalError, match="note_id"):
        M.read_scores(tmp_path / "empty")


def test_category_from_reason_when_column_absent(tmp_path):
    pq.write_table(
        pa.table(
            {
                "note_id": ["a"],
                "status": ["ok"],
                "verdict": ["error"],
                "p_error": [0.9],
                "reason": ["Timeline error: q"],
            }
        ),
        tmp_path / "s.parquet",
    )
    assert M.read_scores(tmp_path).category == ["timeline"]


def test_provenance_flattens_and_orders():
    man = {"rows": 3, "config": {"model": {"name_or_path": "llama"}}, "adapter": {"sha256": "ab"}}
    prov = M.provenance(man)
    assert list(prov)[:2] == ["config.model.name_or_path", "adapter.sha256"]
    assert prov["rows"] == "3"


def test_id_column_joins_on_another_label_column(tmp_path):
    rows = [{"mrn_key": "k1", "note": "x", "reason": ""}, {"note": "y", "reason": ""}]
    recs = read_records(write_labels(tmp_path / "l.jsonl", rows)).records
    scores = scores_of([score_row("k1", p=0.1), score_row("l.jsonl:2", p=0.2)])
    data = M.join(recs, scores, id_column="mrn_key")
    assert sorted(data.ids) == ["k1", "l.jsonl:2"]  # rows without the column fall back to file:line


# ---------------------------------------------------------------------------------------------
# Intervals, paired differences, operating points


def _data(y, p, pred=None, lcat=None) -> M.EvalData:
    y = np.asarray(y, bool)
    p = np.asarray(p, float)
    pred = p >= 0.5 if pred is None else np.asarray(pred, bool)
    lcat = lcat or ["timeline" if v else "good" for v in y]
    return M.EvalData([f"n{i}" for i in range(len(y))], y, pred, p, lcat, list(lcat))


def _width(ci) -> float:
    return ci[1] - ci[0]


def test_intervals_of_a_perfect_scorer_are_points():
    y = np.arange(200) % 2 == 0
    ci = M.confidence_intervals(_data(y, y.astype(float)), n_boot=200)
    for k in ("auroc", "recall", "precision", "specificity", "balanced_accuracy", "f1"):
        assert ci["metrics"][k] == [1.0, 1.0], k
    assert ci["metrics"]["category_accuracy"] == [1.0, 1.0]
    assert ci["per_category_recall"]["timeline"] == [1.0, 1.0]


def test_intervals_of_a_random_scorer_hold_one_half_and_narrow_with_n():
    rng = np.random.default_rng(3)
    widths = {}
    for n in (200, 2000):
        y = rng.random(n) < 0.5
        ci = M.confidence_intervals(_data(y, rng.random(n)), n_boot=300)["metrics"]
        assert ci["auroc"][0] < 0.5 < ci["auroc"][1], (n, ci["auroc"])
        widths[n] = _width(ci["auroc"])
    assert widths[2000] < 0.5 * widths[200]  # ~1/sqrt(10) expected


def test_intervals_cover_a_known_mixture():
    """Errors score N(1, 1), good notes N(0, 1): the true AUROC is Phi(1/sqrt 2) = 0.7602."""
    rng = np.random.default_rng(5)
    y = np.r_[np.ones(500, bool), np.zeros(500, bool)]
    p = np.r_[rng.normal(1, 1, 500), rng.normal(0, 1, 500)]
    ci = M.confidence_intervals(_data(y, p, pred=p >= 0.5), n_boot=400)["metrics"]
    assert ci["auroc"][0] < 0.7602 < ci["auroc"][1], ci["auroc"]
    assert 0.03 < _width(ci["auroc"]) < 0.1
    # recall at p >= 0.5 is P(N(1,1) >= 0.5) = 0.6915
    assert ci["recall"][0] < 0.6915 < ci["recall"][1], ci["recall"]


def test_paired_difference_of_a_model_with_itself_is_zero():
    rng = np.random.default_rng(7)
    y = rng.random(300) < 0.4
    d = _data(y, np.clip(y * 0.3 + rng.random(300) * 0.7, 0, 1))
    out = M.paired_difference(d, d, n_boot=200)
    assert out["notes"] == 300
    assert out["auroc_diff"] == 0.0 and out["auroc_diff_ci95"] == [0.0, 0.0]
    assert out["balanced_accuracy_diff_ci95"] == [0.0, 0.0]
    # a better model on the same notes: a positive difference whose interval excludes 0
    better = _data(y, np.clip(y * 0.8 + rng.random(300) * 0.2, 0, 1))
    worse = _data(y, rng.random(300))
    diff = M.paired_difference(better, worse, n_boot=200)
    assert diff["auroc_diff"] > 0.3 and diff["auroc_diff_ci95"][0] > 0


def test_operating_point_finds_the_threshold_on_a_constructed_case():
    y = [1, 1, 0, 1, 0, 0]
    p = [0.9, 0.8, 0.7, 0.6, 0.5, 0.4]
    assert M.operating_point(y, p, recall=1.0) == {
        "threshold": 0.6,
        "recall": 1.0,
        "precision": 0.75,
    }
    assert M.operating_point(y, p, recall=0.6)["threshold"] == 0.8  # 2 of 3: the fewest flags
    assert M.operating_point(y, p, precision=1.0)["threshold"] == 0.8  # the most errors caught
    assert M.operating_point(y, p, precision=0.75)["threshold"] == 0.6
    assert M.operating_point(y, p, precision=0.76)["threshold"] == 0.8
    assert M.operating_point([0, 0], [0.2, 0.3], recall=0.5) is None  # no errors to find
    m = M.compute_metrics(_data(y, p), n_boot=50, target_recall=1.0)
    op = m["operating_point"]
    assert op["threshold"] == 0.6 and op["flagged"] == 4 and op["recall"] == 1.0
    assert op["precision"] == 0.75 and op["use"] == "ray_jobs.score --threshold 0.6"
    assert "recall_ci95" in op and "auroc_ci95" in m and m["intervals"]["level"] == 0.95
