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
    assert timeline_ci == pytest.approx([0.0126, 0.9874], abs=1e-4)  # exact, 1 of 2
    phi = per["phi"].pop("recall_interval")  # 1 of 1: not [1, 1]
    assert per["phi"].pop("recall_ci95") == phi["ci95"] == pytest.approx([0.025, 1.0])
    assert (phi["k"], phi["n"], phi["method"]) == (1, 1, "clopper-pearson")
    assert per["timeline"].pop("recall_interval")["k"] == 1
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
        # one class: undefined for every figure that needs both (as in every resample)
        assert m["auprc"] is None and m["balanced_accuracy"] is None and m["recall"] == 0.75
        assert m["recall_interval"]["k"] == 3 and m["recall_interval"]["n"] == 4
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


def _ci(ci: dict, key: str) -> list[float] | None:
    return ci["figures"][key]["ci95"]


def test_intervals_of_a_perfect_scorer():
    y = np.arange(200) % 2 == 0
    ci = M.confidence_intervals(_data(y, y.astype(float)), n_boot=200)
    for k in ("auroc", "balanced_accuracy", "f1"):  # bootstrap: every resample is perfect
        assert _ci(ci, k) == [1.0, 1.0], k
    for k in ("recall", "precision", "specificity", "category_accuracy"):  # 100 of 100: exact
        f = ci["figures"][k]
        assert (f["k"], f["n"]) == (100, 100) and f["ci95"] == pytest.approx(
            [0.9638, 1.0], abs=1e-4
        )
    assert ci["per_category_recall"]["timeline"]["ci95"][0] < 1.0
    assert ci["bootstrap_unit"] == "note"


def test_exact_interval_known_values():
    assert M.exact_interval(2, 2) == pytest.approx([0.1581, 1.0], abs=1e-4)  # 0.025 ** (1/2)
    assert M.exact_interval(0, 10) == pytest.approx([0.0, 0.3085], abs=1e-4)
    assert M.exact_interval(5, 10) == pytest.approx([0.1871, 0.8129], abs=1e-4)
    assert M.exact_interval(0, 0) is None


def test_two_of_two_detected_is_not_certain():
    """2 errors of a category, both detected and named: 2/2, and an interval reaching below 1/2
    (the note-level bootstrap said [1.00, 1.00])."""
    y = [1, 1, 0, 0, 0, 0]
    lcat = ["phi", "phi", "good", "good", "good", "good"]
    m = M.compute_metrics(_data(y, [0.9, 0.8, 0.1, 0.2, 0.3, 0.6], lcat=lcat), n_boot=200)
    acc = m["category_accuracy_interval"]
    assert (acc["value"], acc["k"], acc["n"]) == (1.0, 2, 2) and acc["ci95"][0] < 0.5
    rec = m["per_category"]["phi"]["recall_interval"]
    assert (rec["k"], rec["n"]) == (2, 2) and rec["ci95"][0] < 0.5
    assert m["category_accuracy_ci95"] == acc["ci95"]
    assert "1.000 (2/2) [0.158, 1.000]" in M.figure_text(m, "category_accuracy")
    assert M.figure_text(m["per_category"]["phi"], "recall") == "1.000 (2/2) [0.158, 1.000]"


def test_intervals_of_a_random_scorer_hold_one_half_and_narrow_with_n():
    rng = np.random.default_rng(3)
    widths = {}
    for n in (200, 2000):
        y = rng.random(n) < 0.5
        ci = M.confidence_intervals(_data(y, rng.random(n)), n_boot=300)
        assert _ci(ci, "auroc")[0] < 0.5 < _ci(ci, "auroc")[1], (n, _ci(ci, "auroc"))
        widths[n] = _width(_ci(ci, "auroc"))
    assert widths[2000] < 0.5 * widths[200]  # ~1/sqrt(10) expected


def test_intervals_cover_a_known_mixture():
    """Errors score N(1, 1), good notes N(0, 1): the true AUROC is Phi(1/sqrt 2) = 0.7602."""
    rng = np.random.default_rng(5)
    y = np.r_[np.ones(500, bool), np.zeros(500, bool)]
    p = np.r_[rng.normal(1, 1, 500), rng.normal(0, 1, 500)]
    ci = M.confidence_intervals(_data(y, p, pred=p >= 0.5), n_boot=400)
    assert _ci(ci, "auroc")[0] < 0.7602 < _ci(ci, "auroc")[1], _ci(ci, "auroc")
    assert 0.03 < _width(_ci(ci, "auroc")) < 0.1
    # recall at p >= 0.5 is P(N(1,1) >= 0.5) = 0.6915
    assert _ci(ci, "recall")[0] < 0.6915 < _ci(ci, "recall")[1], _ci(ci, "recall")


def _patients(n_patients: int, per: int, seed: int) -> M.EvalData:
    """`per` notes a patient sharing the label and nearly the same p_error: the notes of a
    patient carry one patient's worth of information."""
    rng = np.random.default_rng(seed)
    y_p = rng.random(n_patients) < 0.5
    p_p = np.clip(0.5 + 0.15 * np.where(y_p, 1, -1) + rng.normal(0, 0.2, n_patients), 0, 1)
    y = np.repeat(y_p, per)
    p = np.repeat(p_p, per) + rng.normal(0, 0.01, n_patients * per)
    d = _data(y, p)
    d.groups = [f"p{i}" for i in np.repeat(np.arange(n_patients), per)]
    d.group_column = "patient_id"
    return d


def test_grouped_bootstrap_is_wider_than_by_note():
    grouped = _patients(40, 10, seed=1)
    by_note = M.EvalData(grouped.ids, grouped.y_true, grouped.y_pred, grouped.p_error,
                         grouped.label_category, grouped.pred_category)  # fmt: skip
    g = M.confidence_intervals(grouped, n_boot=300)
    n = M.confidence_intervals(by_note, n_boot=300)
    assert g["bootstrap_unit"] == "patient_id (40 groups)" and n["bootstrap_unit"] == "note"
    assert g["figures"]["auroc"]["value"] == n["figures"]["auroc"]["value"]
    assert _width(_ci(g, "auroc")) > 2 * _width(_ci(n, "auroc"))  # ~sqrt(10) expected
    # a proportion's exact interval (400 notes) is widened to the cluster bootstrap
    assert _width(_ci(g, "recall")) > _width(_ci(n, "recall"))
    assert g["figures"]["recall"]["method"] == "clopper-pearson widened to cluster bootstrap"
    # every resample draws whole patients
    rows = M.bootstrap_indices(400, 5, 0, np.repeat(np.arange(40), 10))
    for r in rows:
        assert np.all(np.bincount(r // 10, minlength=40) % 10 == 0)


def test_join_takes_the_patient_from_the_labels_or_the_scores(tmp_path):
    rows = [{"id": f"n{i}", "note": "x", "reason": "good" if i % 2 else "Timeline error: y"}
            for i in range(6)]  # fmt: skip
    for i, r in enumerate(rows[:5]):
        r["patient_id"] = f"P{i // 2}"
    recs = read_records(write_labels(tmp_path / "l.jsonl", rows)).records
    scores = scores_of([score_row(r["id"], p=0.1 * i) for i, r in enumerate(rows)])
    d = M.join(recs, scores)
    assert d.group_column == "patient_id" and d.groups[:5] == ["patient_id=P0"] * 2 + [
        "patient_id=P1"] * 2 + ["patient_id=P2"]  # fmt: skip
    assert any("1 note(s) without patient_id" in n for n in d.notes)
    assert M.bootstrap_unit(d) == "patient_id (4 groups)"
    assert M.join(recs, scores, group_column="note").groups is None
    scores.groups["subject_id"] = ["S1", "S1", "S2", "S2", "S3", "S3"]
    plain = read_records(write_labels(tmp_path / "m.jsonl", [
        {k: r[k] for k in ("id", "note", "reason")} for r in rows])).records  # fmt: skip
    assert M.bootstrap_unit(M.join(plain, scores)) == "subject_id (3 groups)"
    with pytest.raises(M.EvalError, match="group column 'hadm_id'"):
        M.join(plain, scores, group_column="hadm_id")


def test_one_class_resample_is_undefined_for_balanced_accuracy_as_for_auroc():
    p = np.array([0.9, 0.2, 0.7])
    for y in (np.ones(3, bool), np.zeros(3, bool)):
        f = M.intervals.resample_figures(y, p >= 0.5, p)
        assert f["auroc"] is None and f["balanced_accuracy"] is None and f["auprc"] is None
    # 1 error in 30 notes: the resamples without it are undefined for both, alike
    y = np.zeros(30, bool)
    y[0] = True
    ci = M.confidence_intervals(_data(y, np.linspace(1, 0, 30)), n_boot=300)["figures"]
    assert ci["auroc"]["undefined"] == ci["balanced_accuracy"]["undefined"] > 0
    assert ci["auroc"]["undefined"] == ci["auprc"]["undefined"]


def test_too_many_undefined_resamples_withhold_the_interval():
    # 1 error in 30 notes: (29/30)^30 = 36% of resamples lack it
    y = np.zeros(30, bool)
    y[0] = True
    m = M.compute_metrics(_data(y, np.linspace(1, 0, 30)), n_boot=300)
    for k in ("auroc", "balanced_accuracy"):
        iv = m[f"{k}_interval"]
        assert m[k] is not None and iv["ci95"] is None and m[f"{k}_ci95"] is None
        assert iv["undefined"] > 0.05 * 300 and "undefined in" in iv["withheld"]
        assert "no interval (undefined in" in M.figure_text(m, k)
    assert M.intervals.percentile_interval([None] * 5 + [0.5] * 95, 0.5)["ci95"] == [0.5, 0.5]
    assert M.intervals.percentile_interval([None] * 6 + [0.5] * 94, 0.5)["ci95"] is None


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


def test_paired_difference_uses_the_same_notes_for_both():
    rng = np.random.default_rng(2)
    y = rng.random(100) < 0.5
    pa_ = np.clip(y * 0.4 + rng.random(100) * 0.6, 0, 1)
    pb = rng.random(100)
    pa_[:10] = np.nan  # a has no p_error on notes 0-9, b none on 10-14
    pb[10:15] = np.nan
    a = _data(y, pa_)
    b = _data(np.r_[y, True], np.r_[pb, 0.5])  # b also scored a note a did not
    b.ids[-1] = "extra"
    out = M.paired_difference(a, b, n_boot=100)
    keep = np.r_[np.zeros(15, bool), np.ones(85, bool)]
    assert out["notes"] == 85
    assert out["dropped"] == {"only_in_scores": 0, "only_in_baseline": 1, "without_p_error": 15}
    assert out["auroc"] == pytest.approx(M.auroc(y[keep], pa_[keep]))
    assert out["baseline_auroc"] == pytest.approx(M.auroc(y[keep], pb[keep]))
    # not each model's own notes
    assert out["auroc"] != pytest.approx(M.auroc(y[~np.isnan(pa_)], pa_[~np.isnan(pa_)]))
    assert "1 only in the baseline, 15 without p_error" in M.dropped_text(out)


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
    assert op["threshold"] == 0.6 and op["flagged"] == 4
    assert op["use"] == "ray_jobs.score --threshold 0.6"
    assert "recall_ci95" in op and "auroc_ci95" in m and m["intervals"]["level"] == 0.95


def _noisy(n: int, seed: int) -> M.EvalData:
    rng = np.random.default_rng(seed)
    y = rng.random(n) < 0.4
    return _data(y, np.clip(0.5 + 0.2 * np.where(y, 1, -1) + rng.normal(0, 0.2, n), 0, 1))


def test_target_recall_is_not_reported_on_the_notes_that_chose_it():
    data = _noisy(150, seed=4)
    chosen = M.operating_point(data.y_true, data.p_error, recall=0.9)
    assert chosen["recall"] >= 0.9  # in-sample: guaranteed, so not a result
    op = M.compute_metrics(data, n_boot=300, target_recall=0.9)["operating_point"]
    assert op["threshold"] == chosen["threshold"]  # the threshold to use
    assert op["threshold_choice"] == "re-chosen per resample, reported out of bag"
    rec = op["recall_interval"]
    assert rec["method"] == "out-of-bag bootstrap, threshold re-chosen per resample"
    assert rec["ci95"][0] < 0.9 < rec["ci95"][1]  # below the target is possible out of sample
    assert rec["undefined"] == 0 and rec["resamples"] == 300
    lo, hi = op["threshold_ci95"]
    assert lo < hi  # the choice varies between resamples, and the interval carries it
    # chosen on a calibration set: the figures are those of the evaluated notes at its threshold
    cal = _noisy(150, seed=5)
    cal.ids = [f"cal{i}" for i in range(150)]  # other notes than the evaluated ones
    op = M.compute_metrics(data, n_boot=100, target_recall=0.9, calibrate_on=cal)[
        "operating_point"]  # fmt: skip
    t = M.operating_point(cal.y_true, cal.p_error, recall=0.9)["threshold"]
    flagged = data.p_error >= t
    tp = int((flagged & data.y_true).sum())
    assert op["threshold"] == t and op["threshold_choice"] == "calibration set"
    assert op["chosen_on"] == "150 calibration notes (0 also evaluated)"
    assert (op["recall_interval"]["k"], op["recall_interval"]["n"]) == (tp, int(data.y_true.sum()))
    assert op["recall"] == tp / data.y_true.sum() != pytest.approx(0.9, abs=1e-9)
