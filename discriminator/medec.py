"""Import the public MEDEC benchmark (CC BY 4.0) into the training/eval record format.

MEDEC (Ben Abacha et al., MEDIQA-CORR 2024; repository abachaa/MEDEC) holds short clinical texts,
each correct or with one medical error (diagnosis, management, treatment, pharmacotherapy,
causal organism) and the erroneous sentence. Those errors need medical knowledge, so they map to
our `clinical_logic` category. Every output row carries an attribution in `source`/`license`.

Which attribution: `--source`/`--license` when given (`--source medec` names MEDEC itself);
otherwise MEDEC's own (CC BY 4.0) only when the file name starts with `MEDEC-`, as the benchmark's
files do (`MEDEC-MS-ValidationSet-...csv`, `MEDEC-UW-...`). Any other file is MEDEC-format data of
unknown origin: "MEDEC-format data from <file name>", license "unknown". The rule looks at the
name only, so a renamed copy of MEDEC needs `--source medec`.
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
UNKNOWN_LICENSE = "unknown"
MEDEC_FILE_PREFIX = "MEDEC-"

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


def is_medec_file(csv_path: str | Path) -> bool:
    """The file is one of MEDEC's own: its name starts with `MEDEC-` (any case)."""
    return Path(csv_path).name.upper().startswith(MEDEC_FILE_PREFIX)


def attribution(
    csv_path: str | Path, source: str | None = None, license: str | None = None
) -> tuple[str, str]:
    """(source, license) stamped on every row of `csv_path` (the rule is in the module docstring).

    `source` "medec" (any case) means MEDEC's attribution; a license given alone keeps the
    file-name rule for the source. MEDEC's license is the default only with MEDEC's source."""
    src = (source or "").strip()
    lic = (license or "").strip() or None
    if src.lower() == "medec" or (not src and is_medec_file(csv_path)):
        return ATTRIBUTION, lic or LICENSE
    if not src:
        src = f"MEDEC-format data from {Path(csv_path).name}"
    return src, lic or UNKNOWN_LICENSE


def convert_medec(
    csv_path: str | Path, source: str | None = None, license: str | None = None
) -> tuple[list[dict[str, Any]], int]:
    """Rows of a MEDEC-format CSV as records; returns (records, skipped empty rows).

    `source`/`license`: the attribution written into every row (see `attribution`)."""
    src, lic = attribution(csv_path, source, license)
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
                "source": src,
                "license": lic,
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
