"""Tests for discriminator.synth: labelled synthetic discharge notes.

A few thousand notes are generated once per module; every test asserts behaviour on them (spans
really in the text, good notes really consistent, labels parse back, splits really disjoint).
Failures name record ids only, never note text (notes are PHI-like).
"""

from __future__ import annotations

import json
from collections import Counter

import pytest

from discriminator.prompt import (
    CATEGORIES,
    CATEGORY_LABELS,
    category_of,
    format_answer,
    parse_reason,
)
from discriminator.synth import (
    ERROR_KINDS,
    HARD_NEGATIVES,
    KINDS_BY_CATEGORY,
    check_consistency,
    generate_records,
    write_splits,
)
from discriminator.synth.check import TEMPLATE_TOKEN, check_text
from discriminator.synth.generate import build_record

N_SHORT = 2000
N_REAL = 600


@pytest.fixture(scope="module")
def short() -> list[dict]:
    return generate_records(N_SHORT, seed=11, length="short")


@pytest.fixture(scope="module")
def real() -> list[dict]:
    return generate_records(N_REAL, seed=12, length="realistic")


@pytest.fixture(scope="module")
def both(short, real) -> list[dict]:
    return short + real


def words(rec: dict) -> int:
    return len(rec["note"].split())


def test_record_schema(both):
    for r in both:
        assert set(r) == {"id", "patient_id", "note", "reason", "category", "kind", "meta"}
        assert r["category"] in (*CATEGORIES, "good")
        if r["category"] == "good":
            assert (r["reason"], r["kind"]) == ("good", "good"), r["id"]
        else:
            assert ERROR_KINDS[r["kind"]] == r["category"], r["id"]
    assert len({r["id"] for r in both}) == len(both)


def test_error_spans_are_in_the_text(both):
    errors = [r for r in both if r["category"] != "good"]
    assert len(errors) > 1000
    for r in errors:
        meta = r["meta"]
        assert meta["altered"] and meta["altered"] in r["note"], r["id"]
        if meta["original"] is not None:
            # The original span was in the good twin and one occurrence of it is gone (the same
            # words may remain elsewhere, e.g. an unchanged admission medication list).
            good, _ = build_record(meta["seed"], meta["index"], meta["length"], None)
            assert meta["original"] != meta["altered"], r["id"]
            assert meta["original"] in good["note"], r["id"]
            assert r["note"].count(meta["original"]) < good["note"].count(meta["original"]), r["id"]


def test_error_note_differs_from_its_good_twin_only_locally(short):
    # Rebuilding record i as a good note gives the same story: the error note must differ from
    # it, and for story-level errors the note outside the changed section stays identical.
    for r in [r for r in short if r["category"] != "good"][:200]:
        good, _ = build_record(11, r["meta"]["index"], "short", None)
        assert good["note"] != r["note"], r["id"]
        assert good["patient_id"] == r["patient_id"]
        if "section" in r["meta"]:
            head = good["note"][:40]
            assert r["note"].startswith(head) or r["meta"]["section"] == "header", r["id"]


def test_good_notes_pass_consistency(both):
    good = [r for r in both if r["category"] == "good"]
    assert len(good) > 1000
    for r in good:
        assert check_consistency(r) == [], r["id"]
        assert not TEMPLATE_TOKEN.search(r["note"]), r["id"]


def test_checker_flags_error_notes(both):
    errors = [r for r in both if r["category"] != "good"]
    missed = [r["id"] for r in errors if not check_consistency(r)]
    assert len(missed) <= 0.02 * len(errors), missed[:10]


def test_text_checker_alone_flags_structure_errors(short):
    # Without metadata only the text is checked; structure and header errors must still show.
    text_kinds = {
        "missing_section",
        "empty_section",
        "duplicated_section",
        "sections_out_of_order",
        "template_token",
        "truncated_note",
        "admit_after_discharge",
        "age_dob_mismatch",
        "mrn_mismatch",
        "name_mismatch_footer",
        "sex_mismatch",
        "followup_before_discharge",
    }
    recs = [r for r in short if r["kind"] in text_kinds]
    assert len(recs) > 100
    for r in recs:
        assert check_consistency({"note": r["note"]}), r["id"]


def test_deterministic_bytes_and_seed_dependence():
    a = generate_records(60, seed=5, length="short")
    b = generate_records(60, seed=5, length="short")
    c = generate_records(60, seed=6, length="short")
    dump = lambda rs: "\n".join(json.dumps(r, ensure_ascii=False) for r in rs)  # noqa: E731
    assert dump(a) == dump(b)
    assert dump(a) != dump(c)
    assert sum(x["note"] != y["note"] for x, y in zip(a, c, strict=True)) > 55
    # Records do not depend on n: a shorter run is a prefix of a longer one.
    assert dump(generate_records(25, seed=5, length="short")) == dump(a[:25])


@pytest.mark.parametrize("rate", [0.0, 0.1, 0.3, 0.5, 0.77, 1.0])
def test_error_rate_is_respected(rate):
    n = 137
    recs = generate_records(n, seed=3, error_rate=rate, length="short")
    n_err = sum(r["category"] != "good" for r in recs)
    assert abs(n_err - rate * n) <= 1


def test_categories_balanced(both, short):
    counts = Counter(r["category"] for r in short if r["category"] != "good")
    assert set(counts) == set(CATEGORIES)
    assert max(counts.values()) - min(counts.values()) <= 1
    assert sum(r["category"] == "good" for r in short) == N_SHORT // 2


def test_categories_restrict():
    recs = generate_records(200, seed=4, categories=["timeline", "phi"], length="short")
    counts = Counter(r["category"] for r in recs)
    assert set(counts) == {"good", "timeline", "phi"}
    assert abs(counts["timeline"] - counts["phi"]) <= 1
    assert all(
        ERROR_KINDS[r["kind"]] in ("timeline", "phi") for r in recs if r["category"] != "good"
    )


def test_kinds_restrict_errors_to_those_kinds():
    kinds = ["template_token", "truncated_note", "implausible_vital"]
    recs = generate_records(120, seed=4, length="short", kinds=kinds)
    got = Counter(r["kind"] for r in recs if r["category"] != "good")
    # 30 structure errors split between two kinds, about 1:2 (seeds 4-9: 7 to 19 template
    # tokens): each is drawn, the exact split moves with any change to the stories
    assert set(got) == set(kinds) and min(got.values()) >= 5
    assert {r["category"] for r in recs} == {"good", "structure", "clinical_logic"}
    # a kind that does not apply to every note is drawn again for those notes
    one = generate_records(1000, seed=7, length="short", kinds=["truncated_note"])
    assert Counter(r["kind"] for r in one) == {"good": 500, "truncated_note": 500}
    with pytest.raises(ValueError, match="unknown error kinds"):
        generate_records(10, kinds=["nope"])
    with pytest.raises(ValueError, match="are of categories"):
        generate_records(10, kinds=["template_token"], categories=["timeline"])


def test_reasons_are_labelled_short_and_parse(both):
    for r in both:
        reason = r["reason"]
        if r["category"] == "good":
            assert parse_reason(reason).verdict == "good"
            continue
        assert reason.startswith(CATEGORY_LABELS[r["category"]] + " error: "), r["id"]
        assert len(reason.split()) <= 50, r["id"]
        assert category_of(reason) == r["category"], r["id"]
        parsed = parse_reason(reason)
        assert (parsed.verdict, parsed.category) == ("error", r["category"]), r["id"]
        assert parse_reason(format_answer(reason)).category == r["category"], r["id"]


def test_reasons_are_varied(both):
    # Several phrasings per kind, and reasons quote the facts (not one fixed string per kind).
    by_kind: dict[str, set[str]] = {}
    for r in both:
        if r["category"] != "good":
            by_kind.setdefault(r["kind"], set()).add(r["reason"])
    common = [k for k, v in by_kind.items() if len(v) >= 5]
    assert len(common) >= 25
    assert all(len(by_kind[k]) >= 5 for k in common)


def test_at_least_30_kinds(both):
    assert len(ERROR_KINDS) >= 30
    assert set(ERROR_KINDS.values()) == set(CATEGORIES)
    assert all(len(KINDS_BY_CATEGORY[c]) >= 5 for c in CATEGORIES)
    seen = {r["kind"] for r in both if r["category"] != "good"}
    assert len(seen) >= 30, sorted(set(ERROR_KINDS) - seen)


def test_hard_negatives_appear_in_good_notes(both):
    seen = Counter(h for r in both if r["category"] == "good" for h in r["meta"]["hard_negatives"])
    assert set(HARD_NEGATIVES) <= set(seen), sorted(set(HARD_NEGATIVES) - set(seen))
    assert any("[**" in r["note"] and "___" in r["note"] for r in both if r["category"] == "good")


def test_length_profiles(short, real):
    s = sorted(words(r) for r in short if r["category"] == "good")
    w = sorted(words(r) for r in real if r["category"] == "good")
    pct = lambda v, q: v[int(q * (len(v) - 1))]  # noqa: E731
    assert s[0] >= 120 and pct(s, 0.95) <= 350 and s[-1] <= 400
    assert w[0] >= 300 and pct(w, 0.5) >= 500 and pct(w, 0.95) >= 900 and w[-1] <= 4000


def test_short_notes_carry_what_error_kinds_need(short):
    from discriminator.synth.check import detect_style, sections_of

    for r in short[:300]:
        if r["category"] != "good":
            continue
        layout, _ = detect_style(r["note"])
        secs = sections_of(r["note"], layout)
        assert {
            "allergies",
            "hpi",
            "course",
            "dc_meds",
            "adm_meds",
            "dx",
            "followup",
            "results",
        } <= set(secs), r["id"]
        assert ", MD" in r["note"][-300:], r["id"]


def test_write_splits(tmp_path):
    stats = write_splits(tmp_path, 300, seed=9, length="short")
    recs = {}
    patients = {}
    for name in ("train", "eval", "test"):
        path = tmp_path / f"{name}.jsonl"
        lines = path.read_text(encoding="utf-8").splitlines()
        rows = [json.loads(line) for line in lines]
        assert len(rows) == stats["splits"][name]["n"] > 0
        for row in rows:
            recs[row["id"]] = row
        patients[name] = {row["patient_id"] for row in rows}
    assert len(recs) == 300
    assert not patients["train"] & patients["eval"]
    assert not patients["train"] & patients["test"]
    assert not patients["eval"] & patients["test"]
    assert 200 <= stats["splits"]["train"]["n"] <= 260
    # Readmissions exist, so splitting by patient is not the same as splitting by record.
    assert sum(len(v) for v in patients.values()) < 300
    on_disk = json.loads((tmp_path / "stats.json").read_text(encoding="utf-8"))
    assert on_disk == stats
    assert stats["all"]["words"]["p50"] > 0
    assert sum(stats["all"]["categories"].values()) == 300


def test_invalid_arguments():
    with pytest.raises(ValueError, match="categories"):
        generate_records(3, categories=["spelling"])
    with pytest.raises(ValueError, match="length"):
        generate_records(3, length="long")
    with pytest.raises(ValueError, match="error_rate"):
        generate_records(3, error_rate=1.5)


def test_check_text_flags_edited_good_note(short):
    r = next(r for r in short if r["category"] == "good")
    assert check_text(r["note"]) == []
    cut = r["note"][: len(r["note"]) // 2]
    assert check_text(cut)
    assert check_text(r["note"] + "\n{{PATIENT_NAME}}\n")
