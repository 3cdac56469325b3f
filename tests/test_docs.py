"""The docs cannot drift: every command they give is parsed by its own program, the site builds
with `mkdocs build --strict` (a broken link or anchor fails), and the README stays a front page."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import docs_check
import pytest
from docs_check import ROOT, DocCommandError

EXAMPLES = [ex for path in docs_check.doc_files() for ex in docs_check.examples(path)]


def _where(example) -> str:  # type: ignore[no-untyped-def]
    return f"{Path(example.path).relative_to(ROOT)}:{example.line}"


@pytest.mark.parametrize("example", EXAMPLES, ids=_where)
def test_every_command_in_the_docs_is_accepted_by_its_program(example) -> None:  # type: ignore[no-untyped-def]
    example.evaluate()


def test_the_docs_have_commands_to_check() -> None:
    pages = {Path(ex.path).relative_to(ROOT).as_posix() for ex in EXAMPLES}
    assert "README.md" in pages
    assert len(EXAMPLES) >= 10


def _page(tmp_path: Path, block: str) -> list:  # type: ignore[type-arg]
    page = tmp_path / "page.md"
    page.write_text(f"# A page\n\nSome prose.\n\n```bash\n{block}\n```\n")
    return docs_check.examples(page)


@pytest.mark.parametrize(
    ("block", "why"),
    [
        (
            "python -m ray_jobs.train --config ray_jobs/configs/smoke.yaml --no-such-flag",
            "unrecognized",
        ),
        ("python -m ray_jobs.train --config ray_jobs/configs/gone.yaml", "gone.yaml"),
        (
            "python -m ray_jobs.score --adapter /shared/a --input x --output y --set lora.r=32",
            "lora",
        ),
        ("python -m ray_jobs.tune --set search.no_such_key=3", "no_such_key"),
        ("python -m ray_jobs.evaluate --labels a --scores b --no-such-flag", "unrecognized"),
        ("discriminator synth --n 10 --out data --no-such-flag", "unrecognized"),
        ("ray job submit --no-such-option -- python -m ray_jobs.train", "no-such-option"),
        (
            "ray job submit --runtime-env cluster/runtime-env.yaml -- \\\n"
            "    python -m ray_jobs.train --set lora.rank=8",
            "rank",
        ),
        ("make no-such-target", "no-such-target"),
        ("cluster/submit --nodes 2 --no-such-flag -- python -m ray_jobs.train", "no-such-flag"),
        ("sbatch cluster/gone.sbatch", "gone.sbatch"),
        ("frobnicate --all", "does not know"),
    ],
)
def test_a_broken_command_fails_naming_the_page_and_line(tmp_path, block, why) -> None:  # type: ignore[no-untyped-def]
    (example,) = _page(tmp_path, block)
    with pytest.raises(DocCommandError) as e:
        example.evaluate()
    assert f"{tmp_path / 'page.md'}:5" in str(e.value)  # the fence's line
    assert why in str(e.value)


def test_good_commands_pass_the_same_checks(tmp_path: Path) -> None:
    block = "\n".join(
        [
            "# comments, continuations and chains are understood",
            "python -m ray_jobs.train --config ray_jobs/configs/smoke.yaml \\",
            "    --set lora.r=32 && echo done",
            "python -m ray_jobs.score --adapter /shared/adapter --input /shared/notes \\",
            "    --output /shared/scores --text-column text --id-column note_id",
            "ray job submit --runtime-env cluster/runtime-env.yaml -- python -m ray_jobs.tune \\",
            "    --config ray_jobs/configs/smoke_sweep.yaml",
            "cluster/submit --nodes 2 -- python -m ray_jobs.train --config ray_jobs/configs/smoke.yaml",
            "make demo",
            "discriminator synth --n 100 --seed 1 --out data",
        ]
    )
    (example,) = _page(tmp_path, block)
    example.evaluate()


def test_a_block_after_the_run_mark_is_run(tmp_path: Path) -> None:
    page = tmp_path / "page.md"
    good = "discriminator synth --n 20 --seed 3 --out data\ndiscriminator validate data/train.jsonl"
    bad = (
        "discriminator synth --n 20 --seed 3 --out data\ndiscriminator validate data/nothing.jsonl"
    )
    page.write_text(
        f"# Run\n\n<!-- docs-check: run -->\n```bash\n{good}\n```\n\n"
        f"<!-- docs-check: run -->\n```bash\n{bad}\n```\n\n```bash\n{bad}\n```\n"
    )
    ran, fails, parsed_only = docs_check.examples(page)
    ran.evaluate()
    with pytest.raises(DocCommandError, match=r"page.md:10 \(run\).*exited 1: .*nothing.jsonl"):
        fails.evaluate()
    parsed_only.evaluate()  # the same commands, not run: the parser accepts them


def test_shell_text_becomes_commands() -> None:
    got = docs_check.commands(
        "# a comment\nexport A=1\nray job submit \\\n  --no-wait -- python -m x --y 2>&1 | tee log\n"
        "ssh -N -L 8265:localhost:8265 $(cat runs/slurm/host) && echo ok\n"
    )
    assert got == [
        ["export", "A=1"],
        ["ray", "job", "submit", "--no-wait", "--", "python", "-m", "x", "--y"],
        ["tee", "log"],
        ["ssh", "-N", "-L", "8265:localhost:8265", "SUBST"],
        ["echo", "ok"],
    ]


def test_the_readme_is_a_front_page() -> None:
    lines = (ROOT / "README.md").read_text().splitlines()
    assert len(lines) <= 260, f"README.md has {len(lines)} lines: the manual lives in docs/"


@pytest.mark.skipif(not (ROOT / "mkdocs.yml").exists(), reason="no mkdocs.yml")
def test_the_docs_site_builds_strict(tmp_path: Path) -> None:
    mkdocs = shutil.which("mkdocs", path=str(Path(sys.executable).parent))
    assert mkdocs, "mkdocs is a dev dependency (pyproject.toml)"
    run = subprocess.run(
        [mkdocs, "build", "--strict", "--site-dir", str(tmp_path / "site")],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
    assert (tmp_path / "site" / "index.html").exists()
