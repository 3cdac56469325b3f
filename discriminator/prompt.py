"""The prompt contract: system prompt, chat messages, answer format, truncation, parsing.

One module serves training, scoring and tests, so what the model is trained on is exactly what it
is asked at scoring time. Pure functions: no model, no Ray. A tokenizer is only needed for the
token budget (`fit_note`) and for locating the answer's first token (`answer_ids`).
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Any, Literal

PROMPT_VERSION = "v1"
# How a score is read from the answer's first token. v1: p_error = 1 - P("good"). v2: p_error is
# taken over the decision tokens, P(errors) / (P("good") + P(errors)), with the mass on other
# tokens kept as `off_decision`. Recorded with every score output; a resume never mixes versions.
SCORING_VERSION = "v2"
# The verdict's default: a note is an error when p_error >= DECISION_THRESHOLD (scoring, training's
# first-token metrics, evaluation of scores without a verdict).
DECISION_THRESHOLD = 0.5

# category id -> the label that starts a reason ("Timeline error: ...").
CATEGORY_LABELS: dict[str, str] = {
    "clinical_logic": "Clinical logic",
    "timeline": "Timeline",
    "phi": "PHI",
    "justification": "Justification",
    "structure": "Structure",
}
CATEGORIES: tuple[str, ...] = tuple(CATEGORY_LABELS)
OTHER = "other"
GOOD = "good"

# Words a reviewer (or a user's dataset) may use instead of our labels; matched on the text before
# the first colon, so "Formatting error: ..." still parses as `structure`.
_SYNONYMS: dict[str, tuple[str, ...]] = {
    "clinical_logic": (
        "clinical logic",
        "clinical",
        "logic",
        "medication",
        "pharmacotherapy",
        "diagnosis",
        "management",
        "treatment",
        "causalorganism",
        "causal organism",
        "lab",
        "dose",
        "dosage",
        "allergy",
        "laterality",
    ),
    "timeline": ("timeline", "date", "dates", "temporal", "chronology", "time"),
    "phi": ("phi", "identity", "identifier", "demographic", "name", "patient identity"),
    "justification": (
        "justification",
        "missing justification",
        "contradiction",
        "indication",
        "unjustified",
        "inconsistency",
    ),
    "structure": (
        "structure",
        "structural",
        "format",
        "formatting",
        "template",
        "section",
        "truncation",
        "truncated",
    ),
}

SYSTEM_PROMPT = """You are a clinical documentation reviewer. Read the hospital discharge note \
and decide whether it contains an error of one of these kinds:
- Clinical logic error: drug given despite an allergy, lab value contradicting its \
interpretation, dose out of range, left/right swapped, diagnosis contradicting the work-up.
- Timeline error: impossible dates or order, such as admission after discharge, a procedure \
outside the stay, follow-up before discharge, age not matching date of birth.
- PHI error: identity inconsistent within the note: name, age, sex or pronouns, MRN.
- Justification error: a new drug without indication, a diagnosis never discussed, a drug \
stopped in the text but still on the discharge list.
- Structure error: a required section missing or empty, duplicated or out-of-order sections, \
unfilled template tokens, a truncated note.
De-identification placeholders such as ___ or [**Name**] are not errors.
Answer with JSON only: {"reason": "good"} if the note has no error, otherwise \
{"reason": "<Kind> error: <what conflicts with what>"} in at most 50 words."""

TRUNCATION_MARKER = "\n[... note truncated ...]\n"


def to_messages(note: str) -> list[dict[str, str]]:
    """System + user turns for one note (the prompt)."""
    return [{"role": "system", "content": SYSTEM_PROMPT}, {"role": "user", "content": note}]


def normalize_reason(reason: Any) -> str:
    """Empty, whitespace-only, null or missing reasons mean "good" (the seed's rule)."""
    if reason is None:
        return GOOD
    text = str(reason).strip()
    if not text or text.lower() == GOOD:
        return GOOD
    return text


def format_answer(reason: Any) -> str:
    """The assistant turn: compact JSON `{"reason": "..."}`."""
    return json.dumps({"reason": normalize_reason(reason)}, ensure_ascii=False)


# The part of every answer before the reason text; scoring forces it and reads the next token.
ANSWER_PREFIX = '{"reason": "'


def prompt_completion(note: str, reason: Any) -> dict[str, list[dict[str, str]]]:
    """A TRL prompt-completion record (conversational): loss falls on the completion only."""
    return {
        "prompt": to_messages(note),
        "completion": [{"role": "assistant", "content": format_answer(reason)}],
    }


def category_of(reason: str) -> str:
    """Category id of a reason: `good`, one of CATEGORIES, or `other`."""
    reason = normalize_reason(reason)
    if reason == GOOD:
        return GOOD
    head = reason.split(":", 1)[0].strip().lower() if ":" in reason[:60] else ""
    head = re.sub(r"\b(error|errors|issue|problem|hallucination|inconsistency)\b", "", head)
    head = " ".join(head.split())
    if head:
        for cat, words in _SYNONYMS.items():
            if head in words:
                return cat
        for cat, words in _SYNONYMS.items():
            if any(re.search(rf"\b{re.escape(w)}\b", head) for w in words):
                return cat
    return OTHER


@dataclass(frozen=True)
class Parsed:
    verdict: Literal["good", "error", "unparsed"]
    category: str
    reason: str


def parse_reason(text: str | None) -> Parsed:
    """Parse any model output into (verdict, category, reason).

    Handles valid JSON, JSON surrounded by extra text, broken/unterminated JSON and bare text.
    Empty output gives verdict `unparsed`.
    """
    text = (text or "").strip()
    if not text:
        return Parsed("unparsed", OTHER, "")
    reason = _extract_reason(text)
    reason = " ".join(reason.split())
    if not reason:
        return Parsed("unparsed", OTHER, "")
    if normalize_reason(reason) == GOOD or re.fullmatch(r"good[.!]?", reason, re.IGNORECASE):
        return Parsed("good", GOOD, GOOD)
    return Parsed("error", category_of(reason), reason)


def _extract_reason(text: str) -> str:
    # 1. a JSON object anywhere in the text
    for match in re.finditer(r"\{.*?\}", text, re.DOTALL):
        try:
            obj = json.loads(match.group(0))
        except json.JSONDecodeError:
            continue
        if isinstance(obj, dict) and "reason" in obj:
            value = obj["reason"]
            return value if isinstance(value, str) else json.dumps(value)
    # 2. broken JSON: `"reason": "...` without its end
    m = re.search(r'"reason"\s*:\s*"((?:[^"\\]|\\.)*)', text, re.DOTALL)
    if m:
        raw = m.group(1)
        try:
            return json.loads(f'"{raw}"')
        except json.JSONDecodeError:
            return raw.replace('\\"', '"')
    # 3. bare text: strip stray JSON punctuation
    return text.strip().strip("{}").strip()


# ---------------------------------------------------------------------------------------------
# Token budget


@dataclass(frozen=True)
class Fitted:
    note: str
    truncated: bool
    note_tokens: int  # tokens of the original note


# No tokenizer in use averages near this many characters per token on notes (Llama-3: about 4),
# so a note longer than this per token of its budget is far over it: `precut` shortens it by
# characters before anything renders or tokenizes the whole of it.
CHARS_PER_TOKEN_BOUND = 16


def precut_chars(max_note_tokens: int) -> int:
    """The characters a note keeps when `precut`; a longer note is far over its budget."""
    return max(max_note_tokens, 1) * CHARS_PER_TOKEN_BOUND


def precut(note: str, max_note_tokens: int, head_fraction: float = 0.5) -> str:
    """A note far over its token budget, cut in the middle by characters (marker included) to
    `CHARS_PER_TOKEN_BOUND` characters per budget token; others unchanged. The head and tail
    that `fit_note` keeps lie well inside the two parts, so its result is the same, at the cost
    of tokenizing this much instead of the whole note (a 10 MB note: ~100 KB)."""
    limit = precut_chars(max_note_tokens)
    if len(note) <= limit:
        return note
    head = max(int(limit * head_fraction), 1)
    return note[:head] + TRUNCATION_MARKER + note[len(note) - (limit - head) :]


def fit_note(note: str, tokenizer: Any, max_note_tokens: int, head_fraction: float = 0.5) -> Fitted:
    """Cut a note longer than `max_note_tokens` in the middle, with a visible marker.

    The header (identity, dates) and the end (discharge meds, follow-up, signature) carry most of
    the checks, so both ends are kept. Cuts fall on token boundaries via the offset mapping. A
    note far over the budget is first cut by characters (`precut`); its `note_tokens` then
    counts the tokens of what was kept.
    """
    short = precut(note, max_note_tokens, head_fraction)
    enc = tokenizer(short, add_special_tokens=False, return_offsets_mapping=True)
    offsets = enc["offset_mapping"]
    n = len(offsets)
    if n <= max_note_tokens:
        return Fitted(short, short is not note, n)
    note = short
    marker_tokens = len(tokenizer(TRUNCATION_MARKER, add_special_tokens=False)["input_ids"])
    keep = max(max_note_tokens - marker_tokens - 2, 2)
    head = max(int(keep * head_fraction), 1)
    tail = max(keep - head, 1)
    head_end = offsets[head - 1][1]
    tail_start = offsets[n - tail][0]
    return Fitted(note[:head_end] + TRUNCATION_MARKER + note[tail_start:], True, n)


def prompt_overhead(tokenizer: Any) -> int:
    """Tokens the chat template and system prompt add around an empty note (+ answer prefix)."""
    ids = tokenizer.apply_chat_template(to_messages(""), add_generation_prompt=True, tokenize=True)
    if isinstance(ids, dict) or hasattr(ids, "keys"):
        ids = ids["input_ids"]
    prefix = tokenizer(ANSWER_PREFIX, add_special_tokens=False)["input_ids"]
    return len(ids) + len(prefix)


def render_prompt(tokenizer: Any, note: str) -> str:
    """The prompt string (chat template with the assistant header), without the answer prefix."""
    return tokenizer.apply_chat_template(
        to_messages(note), add_generation_prompt=True, tokenize=False
    )


def answer_ids(tokenizer: Any) -> tuple[list[int], int]:
    """(ids of the forced answer prefix, id of the first token of "good" after it).

    Found by tokenizing a good and an error answer and taking their common prefix, so it is
    right for any BPE (Llama-3's or the tiny model's), whatever merges it learned.
    """
    good = tokenizer(format_answer(GOOD), add_special_tokens=False)["input_ids"]
    bad = tokenizer(format_answer("Timeline error: x"), add_special_tokens=False)["input_ids"]
    n = 0
    while n < min(len(good), len(bad)) and good[n] == bad[n]:
        n += 1
    return list(good[:n]), int(good[n])


def first_token_ids(tokenizer: Any) -> dict[str, int]:
    """Category id -> the token the answer starts with after the prefix (`good` included).

    The answer's first token is the decision: `good`, or the first token of a category's label
    ("Timeline", "PHI", ...). Labels that share a first token are a tokenizer problem and raise.
    """
    prefix, good_id = answer_ids(tokenizer)
    ids = {GOOD: good_id}
    for cat, label in CATEGORY_LABELS.items():
        enc = tokenizer(format_answer(f"{label} error: x"), add_special_tokens=False)["input_ids"]
        if list(enc[: len(prefix)]) != prefix:
            raise ValueError(f"the {label!r} answer does not start with the common answer prefix")
        ids[cat] = int(enc[len(prefix)])
    if len(set(ids.values())) != len(ids):
        raise ValueError(f"categories share a first answer token: {ids}")
    return ids


def decision_ids(tokenizer: Any) -> tuple[int, list[int]]:
    """(the first token of "good", the error categories' first tokens in `CATEGORIES` order):
    the decision tokens p_error is read over. Raises as `first_token_ids` does."""
    ids = first_token_ids(tokenizer)
    return ids[GOOD], [ids[c] for c in CATEGORIES]
