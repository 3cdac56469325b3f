"""Import the public MEDEC benchmark (CC BY 4.0) into the training/eval record format.

MEDEC (Ben Abacha et al., MEDIQA-CORR 2024; repository abachaa/MEDEC) holds short clinical texts,
each correct or with one medical error (diagnosis, management, treatment, pharmacotherapy,
causal organism) and the erroneous sentence. Those errors need medical knowledge, so they map to
our `clinical_logic` category. Every output row keeps the attribution in `source`/`license`.
"""

from __future__ import annotations

import csv
import json
from pathlib import Path
from typing import Any

ATTRIBUTION = (
    "MEDEC benchmark (Ben Abacha et al., MEDIQA-CORR 2024, github.com/abachaa/MEDEC), CC BY 4.0"
)
LICENSE = "CC-BY-4.0"

_TYPE_WORDS = {
    "diagnosis": "wrong diagnosis",
    "management": "wrong management",
    "treatment": "wrong treatment",
    "pharmacotherapy": "wrong pharmacotherapy",
    "causalorganism": "wrong causal organism",
}
MAX_WORDS = 50


def _clip_words(text: str, n: int) -> str:
    words = text.split()
    return " ".join(words) if len(words) <= n else " ".join(words[:n]) + " ..."


def medec_reason(error_type: str, error_sentence: str, corrected: str) -> str:
    """A reviewer-style reason naming the error type and quoting the wrong sentence (<= 50 words)."""
    what = _TYPE_WORDS.get(error_type.strip().lower(), f"{error_type.strip() or 'medical'} error")
    head = f"Clinical logic error: {what} in"
    budget = MAX_WORDS - len(head.split()) - 4
    quote = _clip_words(error_sentence.strip(), max(budget // 2, 8))
    fix = _clip_words(corrected.strip(), max(budget - len(quote.split()), 4)) if corrected else ""
    reason = f'{head} "{quote}"'
    if fix:
        reason += f'; expected "{fix}"'
    return reason


def convert_medec(csv_path: str | Path) -> tuple[list[dict[str, Any]], int]:
    """Rows of the MEDEC CSV as records; returns (records, skipped empty rows)."""
    records: list[dict[str, Any]] = []
    skipped = 0
    with open(csv_path, newline="", encoding="utf-8-sig") as fh:
        for row in csv.DictReader(fh):
            text_id = (row.get("Text ID") or "").strip()
            text = (row.get("Text") or "").strip()
            if not text_id or not text:
                skipped += 1
                continue
            is_error = (row.get("Error Flag") or "").strip() == "1"
            etype = (row.get("Error Type") or "").strip()
            rec: dict[str, Any] = {
                "id": text_id,
                "note": text,
                "reason": "good",
                "category": "good",
                "medec_error_type": etype if is_error else None,
                "source": ATTRIBUTION,
                "license": LICENSE,
            }
            if is_error:
                rec["reason"] = medec_reason(
                    etype, row.get("Error Sentence") or "", row.get("Corrected Sentence") or ""
                )
                rec["category"] = "clinical_logic"
            records.append(rec)
    return records, skipped


def write_jsonl(records: list[dict[str, Any]], out: str | Path) -> None:
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    with open(out, "w", encoding="utf-8") as fh:
        for rec in records:
            fh.write(json.dumps(rec, ensure_ascii=False) + "\n")
