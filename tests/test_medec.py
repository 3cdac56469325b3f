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
    printed = capsys.readouterr().out
    assert "data: MEDEC benchmark" in printed and "CC BY 4.0" in printed
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
        assert "CC BY 4.0" in r["source"] and r["license"] == "CC-BY-4.0"
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


MEDEC_FORMAT_CSV = (
    "Text ID,Text,Sentences,Error Flag,Error Type,Error Sentence ID,Error Sentence,"
    "Corrected Sentence,Corrected Text\n"
    'h-1,"Pt has fever. Given X.",,1,pharmacotherapy,1,Given X.,Given Y.,\n'
    'h-2,"All fine.",,0,NA,-1,NA,NA,\n'
)


def _import(tmp_path: Path, capsys, name: str, *flags: str) -> tuple[list[dict], str]:
    csv = tmp_path / name
    csv.write_text(MEDEC_FORMAT_CSV)
    out = tmp_path / f"{name}.jsonl"
    assert main(["import-medec", str(csv), "--out", str(out), *flags]) == 0
    rows = [json.loads(x) for x in out.read_text().splitlines()]
    assert len(rows) == 2
    return rows, capsys.readouterr().out


def _attribution(rows: list[dict]) -> tuple[str, str]:
    pairs = {(r["source"], r["license"]) for r in rows}
    assert len(pairs) == 1  # every row carries the same attribution
    return pairs.pop()


def test_import_medec_format_file_from_elsewhere_is_not_attributed_to_medec(tmp_path, capsys):
    from discriminator.medec import ATTRIBUTION

    rows, printed = _import(tmp_path, capsys, "ward-review.csv")
    source, license = _attribution(rows)
    assert (source, license) == ("MEDEC-format data from ward-review.csv", "unknown")
    assert "data: MEDEC-format data from ward-review.csv (license: unknown)" in printed
    assert "CC BY 4.0" not in printed and ATTRIBUTION not in printed


def test_import_medec_named_file_gets_medec_attribution(tmp_path, capsys):
    from discriminator.medec import ATTRIBUTION, LICENSE

    rows, printed = _import(tmp_path, capsys, "MEDEC-UW-TestSet.csv")
    assert _attribution(rows) == (ATTRIBUTION, LICENSE)
    assert f"data: {ATTRIBUTION} (license: {LICENSE})" in printed


def test_import_medec_source_and_license_flags(tmp_path, capsys):
    from discriminator.medec import ATTRIBUTION, LICENSE

    rows, printed = _import(
        tmp_path, capsys, "x.csv", "--source", "Ward 7 review set", "--license", "internal-only"
    )
    assert _attribution(rows) == ("Ward 7 review set", "internal-only")
    assert "data: Ward 7 review set (license: internal-only)" in printed
    # a source alone: the license is unknown, even for a file named like MEDEC's
    rows, printed = _import(tmp_path, capsys, "MEDEC-copy.csv", "--source", "Ward 7 review set")
    assert _attribution(rows) == ("Ward 7 review set", "unknown")
    assert "CC BY 4.0" not in printed
    # a license alone keeps the file-name rule for the source
    rows, _ = _import(tmp_path, capsys, "y.csv", "--license", "CC0-1.0")
    assert _attribution(rows) == ("MEDEC-format data from y.csv", "CC0-1.0")
    # `--source medec`: a renamed copy of the benchmark
    rows, printed = _import(tmp_path, capsys, "renamed.csv", "--source", "MEDEC")
    assert _attribution(rows) == (ATTRIBUTION, LICENSE)
    assert "CC BY 4.0" in printed


def test_import_medec_help_explains_the_rule(capsys):
    with pytest.raises(SystemExit):
        main(["import-medec", "--help"])
    text = " ".join(capsys.readouterr().out.split())
    assert "--source" in text and "--license" in text and "MEDEC-" in text and "unknown" in text


@pytest.mark.slow
@pytest.mark.skipif(not MEDEC.exists(), reason="shared MEDEC sample not present")
def test_medec_import_score_evaluate_end_to_end(tmp_path, tiny_model_dir, lora_adapter_dir):
    """The public benchmark through the real jobs: import, Ray Data scoring, evaluation report."""
    import html.parser
    import os
    import re
    import subprocess
    import sys

    import pyarrow.parquet as pq

    repo = Path(__file__).resolve().parents[1]
    env = {k: v for k, v in os.environ.items() if k != "RAY_ADDRESS"}
    env.update(HF_HUB_OFFLINE="1", RAY_TRAIN_ENABLE_PRINT_PATCH="0")

    def run(*args: str) -> str:
        proc = subprocess.run(
            [sys.executable, *args], cwd=repo, env=env, capture_output=True, text=True, timeout=600
        )
        assert proc.returncode == 0, (proc.stdout + proc.stderr)[-3000:]
        return proc.stdout + proc.stderr

    full = tmp_path / "medec.jsonl"
    run("-m", "discriminator.cli", "import-medec", str(MEDEC), "--out", str(full))
    # a 60-note slice keeps CPU time low; the import itself is checked on all 574 rows above
    sample = tmp_path / "medec-60.jsonl"
    sample.write_text("".join(full.read_text().splitlines(keepends=True)[:60]))
    scores, report = tmp_path / "scores", tmp_path / "report"
    run(
        "-m", "ray_jobs.score", "--config", "ray_jobs/configs/smoke_score.yaml",
        "--set", f"model.name_or_path={tiny_model_dir}", "--adapter", str(lora_adapter_dir),
        "--input", str(sample), "--output", str(scores),
    )  # fmt: skip
    table = pq.read_table(scores)
    assert sorted(table.column("note_id").to_pylist()) == sorted(
        json.loads(x)["id"] for x in sample.read_text().splitlines()
    )
    assert set(table.column("status").to_pylist()) == {"ok"}
    out = run("-m", "ray_jobs.evaluate", "--labels", str(sample), "--scores", str(scores),
              "--out", str(report))  # fmt: skip
    metrics = json.loads((report / "metrics.json").read_text())
    assert metrics["counts"]["evaluated"] == 60 and metrics["counts"]["missing_from_scores"] == 0
    assert "clinical_logic" in metrics["per_category"]
    assert "report:" in out
    page = (report / "report.html").read_text()
    parser = html.parser.HTMLParser()
    parser.feed(page)  # well-formed enough to parse
    images = re.findall(r'src="([^"]+\.png)"', page)
    assert images and all((report / src).is_file() for src in images)
