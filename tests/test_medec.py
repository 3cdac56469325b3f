"""MEDEC import on the shared public sample (CC BY 4.0)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from discriminator.cli import main
from discriminator.data import read_records
from discriminator.prompt import parse_reason

MEDEC = (
    Path(__file__).resolve().parents[2]
    / "shared/data/medec/MEDEC-MS-ValidationSet-with-GroundTruth-and-ErrorType.csv"
)


@pytest.mark.skipif(not MEDEC.exists(), reason="shared MEDEC sample not present")
def test_import_medec_sample(tmp_path, capsys):
    out = tmp_path / "medec.jsonl"
    assert main(["import-medec", str(MEDEC), "--out", str(out)]) == 0
    assert "CC BY 4.0" in capsys.readouterr().out
    rows = [json.loads(x) for x in out.read_text().splitlines()]
    assert len(rows) == 574
    errors = [r for r in rows if r["category"] != "good"]
    assert len(errors) == 319
    first = next(r for r in rows if r["id"] == "ms-val-0")
    assert "Neisseria gonorrhoeae" in first["reason"] and "causal organism" in first["reason"]
    for r in errors:
        parsed = parse_reason(r["reason"])
        assert parsed.category == "clinical_logic"
        assert len(r["reason"].split()) <= 52  # 50 words + quote ellipses
        assert "CC BY 4.0" in r["source"]
    # the output is valid training data
    result = read_records(out)
    assert not result.problems and len(result.records) == 574


def test_medec_converter_skips_empty_rows(tmp_path):
    from discriminator.medec import convert_medec

    csv = tmp_path / "m.csv"
    csv.write_text(
        "Text ID,Text,Sentences,Error Flag,Error Type,Error Sentence ID,Error Sentence,"
        "Corrected Sentence,Corrected Text\n"
        'a-1,"Pt has fever. Given X.",,1,pharmacotherapy,1,Given X.,Given Y.,\n'
        'a-2,"All fine.",,0,NA,-1,NA,NA,\n'
        ",,,,,,,,\n"
    )
    records, skipped = convert_medec(csv)
    assert skipped == 1
    assert [r["category"] for r in records] == ["clinical_logic", "good"]
    assert records[0]["reason"].startswith("Clinical logic error: wrong pharmacotherapy")
