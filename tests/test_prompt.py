"""The prompt contract: golden strings, parsing, truncation, answer tokens."""

from __future__ import annotations

import json

import pytest

from discriminator import prompt as P


def test_answer_is_compact_json_and_empty_means_good():
    assert P.format_answer("") == '{"reason": "good"}'
    assert P.format_answer(None) == '{"reason": "good"}'
    assert P.format_answer("   ") == '{"reason": "good"}'
    assert P.format_answer("Good") == '{"reason": "good"}'
    assert (
        P.format_answer("Timeline error: admission after discharge.")
        == '{"reason": "Timeline error: admission after discharge."}'
    )
    assert P.format_answer('PHI error: "Ann" vs "Anne"') == json.dumps(
        {"reason": 'PHI error: "Ann" vs "Anne"'}
    )


def test_messages_and_prompt_completion_golden():
    rec = P.prompt_completion("Name: X", "")
    assert rec == {
        "prompt": [
            {"role": "system", "content": P.SYSTEM_PROMPT},
            {"role": "user", "content": "Name: X"},
        ],
        "completion": [{"role": "assistant", "content": '{"reason": "good"}'}],
    }
    assert P.PROMPT_VERSION == "v1"
    for label in P.CATEGORY_LABELS.values():
        assert f"{label} error:" in P.SYSTEM_PROMPT


def test_rendered_prompt_golden(tiny_model_dir):
    from discriminator.modeling import load_tokenizer

    tok = load_tokenizer(str(tiny_model_dir))
    text = P.render_prompt(tok, "Name: X")
    assert text == (
        "<|begin_of_text|><|start_header_id|>system<|end_header_id|>\n\n"
        + P.SYSTEM_PROMPT
        + "<|eot_id|><|start_header_id|>user<|end_header_id|>\n\nName: X<|eot_id|>"
        "<|start_header_id|>assistant<|end_header_id|>\n\n"
    )


@pytest.mark.parametrize(
    "text, verdict, category, reason",
    [
        ('{"reason": "good"}', "good", "good", "good"),
        ('{"reason": "Good."}', "good", "good", "good"),
        (
            '{"reason": "Timeline error: discharge 2024-05-02 precedes admission 2024-05-05."}',
            "error",
            "timeline",
            "Timeline error: discharge 2024-05-02 precedes admission 2024-05-05.",
        ),
        (
            'Sure! {"reason": "PHI error: name Ann Lee vs Anne Li."} Hope this helps',
            "error",
            "phi",
            "PHI error: name Ann Lee vs Anne Li.",
        ),
        (
            '{"reason": "Structure error: missing Discharge Medications',
            "error",
            "structure",
            "Structure error: missing Discharge Medications",
        ),
        ('{"reason": "Clinical logic error: \\"PCN\\" allergy', "error", "clinical_logic",
         'Clinical logic error: "PCN" allergy'),
        ("Formatting error: template token left", "error", "structure",
         "Formatting error: template token left"),
        ("Missing justification: metoprolol has no indication", "error", "justification",
         "Missing justification: metoprolol has no indication"),
        ("The note looks wrong somewhere", "error", "other", "The note looks wrong somewhere"),
        ("", "unparsed", "other", ""),
        ("   ", "unparsed", "other", ""),
        ('{"reason": ""}', "unparsed", "other", ""),
        ('{"reason": 5}', "error", "other", "5"),
    ],
)  # fmt: skip
def test_parse_reason(text, verdict, category, reason):
    got = P.parse_reason(text)
    assert (got.verdict, got.category, got.reason) == (verdict, category, reason)


def test_parse_round_trip_for_every_category():
    for cat, label in P.CATEGORY_LABELS.items():
        reason = f"{label} error: something conflicts with something else."
        got = P.parse_reason(P.format_answer(reason))
        assert got.verdict == "error" and got.category == cat and got.reason == reason


def test_fit_note_keeps_short_notes(tiny_model_dir):
    from discriminator.modeling import load_tokenizer

    tok = load_tokenizer(str(tiny_model_dir))
    fitted = P.fit_note("Name: X\nAllergies: none", tok, 100)
    assert fitted == P.Fitted("Name: X\nAllergies: none", False, fitted.note_tokens)


def test_fit_note_cuts_the_middle(tiny_model_dir):
    from discriminator.modeling import load_tokenizer

    tok = load_tokenizer(str(tiny_model_dir))
    note = "HEADER Name: Ann Lee\n" + "filler words here. " * 400 + "\nSIGNATURE Dr Smith"
    fitted = P.fit_note(note, tok, 120)
    assert fitted.truncated and fitted.note_tokens > 120
    assert fitted.note.startswith("HEADER Name: Ann Lee")
    assert fitted.note.endswith("SIGNATURE Dr Smith")
    assert P.TRUNCATION_MARKER in fitted.note
    n = len(tok(fitted.note, add_special_tokens=False)["input_ids"])
    assert n <= 120


def test_answer_ids_locate_the_first_answer_token(tiny_model_dir):
    from discriminator.modeling import load_tokenizer

    tok = load_tokenizer(str(tiny_model_dir))
    prefix, good_id = P.answer_ids(tok)
    good = tok(P.format_answer("good"), add_special_tokens=False)["input_ids"]
    bad = tok(P.format_answer("Structure error: x"), add_special_tokens=False)["input_ids"]
    assert good[: len(prefix)] == prefix == bad[: len(prefix)]
    assert good[len(prefix)] == good_id != bad[len(prefix)]
    assert tok.decode(prefix) == P.ANSWER_PREFIX
    assert P.prompt_overhead(tok) > len(tok(P.SYSTEM_PROMPT)["input_ids"])


def test_first_token_ids_name_each_category(tiny_model_dir):
    from discriminator.modeling import load_tokenizer

    tok = load_tokenizer(str(tiny_model_dir))
    ids = P.first_token_ids(tok)
    assert set(ids) == {P.GOOD, *P.CATEGORIES}
    assert len(set(ids.values())) == len(ids)  # one token per decision
    assert ids[P.GOOD] == P.answer_ids(tok)[1]
    for cat, label in P.CATEGORY_LABELS.items():
        assert label.startswith(tok.decode([ids[cat]]).strip())
