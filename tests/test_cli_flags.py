"""One way to say each thing on every job's command line: the program name, `--output` (old
spellings kept as aliases), kebab-case flags (the seed's snake_case ones kept), defaults in
`--help` read from the config dataclasses, a `--set` example each job accepts, and one format
for a config error."""

from __future__ import annotations

import argparse
import importlib
import re
import subprocess
from dataclasses import dataclass
from pathlib import Path

import pytest
import yaml

from discriminator import config as C
from discriminator import flags as F
from discriminator.cli import build_parser

REPO = Path(__file__).resolve().parents[1]
SMOKE = str(REPO / "ray_jobs" / "configs" / "smoke.yaml")
CONFIG_JOBS = ["train", "tune", "score", "evaluate"]


def _help(main, capsys, argv=("--help",)) -> str:
    with pytest.raises(SystemExit) as e:
        main(list(argv))
    assert e.value.code == 0
    return capsys.readouterr().out


def _job(name: str):
    return importlib.import_module(f"ray_jobs.{name}")


@pytest.mark.parametrize("job", [*CONFIG_JOBS, "demo"])
def test_every_job_names_itself_as_it_is_run(job, capsys):
    text = _help(_job(job).main, capsys)
    assert text.startswith(f"usage: python -m ray_jobs.{job} ")


@pytest.mark.parametrize("sub", ["validate", "synth", "import-medec", "make-tiny-model"])
def test_cli_subcommands_name_themselves(sub, capsys):
    from discriminator.cli import main

    assert _help(main, capsys, [sub, "--help"]).startswith(f"usage: discriminator {sub} ")


@pytest.mark.parametrize(
    ("module", "call"),
    [("gpu", "parse_args"), ("learning", "main"), ("score_scale", "main")],
)
def test_benchmarks_name_themselves_and_write_with_output(module, call, capsys):
    mod = importlib.import_module(f"benchmarks.{module}")
    text = _help(getattr(mod, call), capsys)
    assert text.startswith(f"usage: python -m benchmarks.{module} ")
    assert re.search(r"--output (DIR|FILE), --out (DIR|FILE)", text)


@pytest.mark.parametrize("job", CONFIG_JOBS)
def test_every_set_example_in_the_help_is_accepted(job, capsys):
    """Every `--set KEY=VALUE` the help shows (docstring and the --set option) runs through the
    job with --print-config: the examples cannot drift from the config again."""
    text = _help(_job(job).main, capsys)
    examples = re.findall(r"--set\s+([a-z_][\w.]*=\S+?)[),;.]*(?=\s|$)", text)
    option = re.search(r"override one config field, e\.g\.\s+--set\s+(\S+)", text)
    assert option, "the --set option's help gives no example"
    assert option.group(1) in examples
    for example in examples:
        rc = _job(job).main(["--set", example, "--print-config"])
        out, err = capsys.readouterr()
        assert rc == 0, (example, err)
        key, value = example.split("=", 1)
        node = yaml.safe_load(out)
        for part in key.split("."):
            node = node[part]
        assert node == yaml.safe_load(value), (example, node)  # it landed where it says


BAD = {  # job: (argv, what the message names)
    "train": [(["--set", "lora.r=abc"], "lora.r"), (["--learning-rate", "fast"], "learning_rate"),
              (["--set", "optim.warmup_ratio=1.0", "--config", SMOKE], "optim.warmup_ratio")],
    "tune": [(["--set", "search.num_samples=many"], "search.num_samples"),
             (["--set", "search.nope=1"], "search.nope")],
    "score": [(["--threshold", "high"], "scoring.threshold"),
              (["--generate", "sometimes"], "scoring.generate"),
              (["--set", "scoring.batch_tokens=lots"], "scoring.batch_tokens")],
    "evaluate": [(["--bootstrap", "many"], "bootstrap"), (["--bootstrap", "-1"], "--bootstrap"),
                 (["--set", "nope=1"], "nope")],
}  # fmt: skip
CASES = [(job, argv, word) for job, cases in BAD.items() for argv, word in cases]
CASES += [(job, ["--config", "/no/such/config.yaml"], "/no/such/config.yaml") for job in BAD]


@pytest.mark.parametrize(("job", "argv", "word"), CASES)
def test_a_config_error_is_one_line_and_exit_2_in_every_job(job, argv, word, capfd, tmp_path):
    if word == "optim.warmup_ratio":  # refused by the training settings check, after loading
        argv = [*argv, "--set", f"run.storage_path={tmp_path}"]
    else:
        argv = [*argv, "--print-config"]
    rc = _job(job).main(argv)
    out, err = capfd.readouterr()
    lines = err.strip().splitlines()
    assert rc == 2, err
    assert len(lines) == 1 and lines[0].startswith("config error: "), err
    assert word in lines[0]
    assert "usage:" not in err and "Traceback" not in err
    assert all(line.startswith(f"[{job}] log: ") for line in out.strip().splitlines())


def test_train_kebab_flags_and_the_seed_spellings_land_in_the_same_config(capsys):
    train = _job("train").main
    kebab = [
        "--train-data",
        "t.jsonl",
        "--eval-data",
        "e.jsonl",
        "--output",
        "/o",
        "--num-train-epochs",
        "3",
        "--learning-rate",
        "2e-4",
        "--per-device-train-batch-size",
        "2",
        "--gradient-accumulation-steps",
        "8",
    ]
    seed = ["--train_data", "t.jsonl", "--eval_data", "e.jsonl", "--output_dir", "/o",
            "--num_train_epochs", "3", "--learning_rate", "2e-4",
            "--per_device_train_batch_size", "2", "--gradient_accumulation_steps", "8"]  # fmt: skip
    printed = []
    for argv in (kebab, seed, [*kebab[:4], "--output-dir", "/o", *kebab[6:]]):
        assert train([*argv, "--print-config"]) == 0
        printed.append(capsys.readouterr().out)
    assert printed[0] == printed[1] == printed[2]
    cfg = C.from_dict(C.TrainConfig, yaml.safe_load(printed[0]))
    assert (cfg.data.train_path, cfg.data.eval_path, cfg.run.output_dir) == (
        "t.jsonl", "e.jsonl", "/o"
    )  # fmt: skip
    assert cfg.optim.num_train_epochs == 3 and cfg.optim.learning_rate == pytest.approx(2e-4)
    assert (cfg.optim.per_device_train_batch_size, cfg.optim.gradient_accumulation_steps) == (2, 8)
    text = _help(train, capsys)
    assert "--output DIR, --output-dir DIR, --output_dir DIR" in text
    assert "--learning-rate LR, --learning_rate LR" in text


def test_evaluate_output_and_its_old_spelling(capsys):
    evaluate = _job("evaluate").main
    for flag in ("--output", "--out"):
        assert evaluate([flag, "/r/eval", "--print-config"]) == 0
        assert "out: /r/eval" in capsys.readouterr().out
    assert "--output DIR, --out DIR" in _help(evaluate, capsys)


def test_evaluate_label_columns(capsys):
    evaluate = _job("evaluate").main
    assert evaluate(["--text-column", "text", "--id-column", "note_id", "--print-config"]) == 0
    out = capsys.readouterr().out
    assert "text_column: text" in out and "id_column: note_id" in out


@pytest.mark.parametrize("sub", ["synth", "import-medec", "make-tiny-model"])
def test_cli_output_and_its_old_spelling(sub):
    pos = ["notes.csv"] if sub == "import-medec" else []
    for flag in ("--output", "--out"):
        assert build_parser().parse_args([sub, *pos, flag, "/x"]).output == "/x"


def test_demo_output_and_its_old_spelling(capsys):
    assert "--output DIR, --out DIR" in _help(_job("demo").main, capsys)


@pytest.mark.parametrize("flag", ["--output", "--output-dir", "-o", "--output=", "--output-dir="])
def test_submit_output_and_its_old_spellings(flag):
    argv = [flag + "/tmp/subm-x"] if flag.endswith("=") else [flag, "/tmp/subm-x"]
    proc = subprocess.run(
        [str(REPO / "cluster" / "submit"), "--dry-run", *argv, "--persistent"],
        capture_output=True, text=True, timeout=30, cwd=REPO,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    assert "--output=/tmp/subm-x/ray-cluster-%j.out" in proc.stdout


def test_help_shows_config_defaults_read_from_the_dataclass(capsys):
    @dataclass
    class Inner:
        rate: float = 0.25

    @dataclass
    class Outer:
        inner: Inner = None  # type: ignore[assignment]

        def __post_init__(self):
            self.inner = self.inner or Inner(rate=0.75)  # a section's own default wins

    p = F.job_parser("prog", None)
    F.add_config_flag(p, Outer, "inner.rate", "--rate", help="a rate")
    assert "[inner.rate; default: 0.75]" in " ".join(p.format_help().split())
    assert F.flags_to_tree(p.parse_args(["--rate", "x"]), F.config_targets(p)) == {
        "inner": {"rate": "x"}  # left to the config layer to check
    }
    assert F.flags_to_tree(p.parse_args([]), F.config_targets(p)) == {}


@pytest.mark.parametrize(
    ("job", "flag", "default"),
    [
        ("score", "--threshold", C.ScoreConfig().scoring.threshold),
        ("score", "--output", C.ScoreConfig().io.output),
        ("score", "--text-column", C.ScoreConfig().io.text_column),
        ("train", "--learning-rate", C.TrainConfig().optim.learning_rate),
        ("train", "--output", C.TrainConfig().run.output_dir),
        ("evaluate", "--bootstrap", C.EvalConfig().bootstrap),
        ("evaluate", "--output", C.EvalConfig().out),
        ("demo", "--notes", _job("demo").DEMO_NOTES),
    ],
)
def test_job_help_shows_each_default(job, flag, default, capsys):
    options = _help(_job(job).main, capsys).split("\noptions:\n", 1)[1]
    entries = [" ".join(e.split()) for e in re.split(r"\n(?=  -)", options)]
    (entry,) = [e for e in entries if e.startswith(f"{flag} ")]
    assert f"default: {default}" in entry, entry


def test_every_option_with_a_default_shows_it():
    """No option of a job or subcommand hides its default (store_true flags have none)."""
    parser = build_parser()
    subs = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    for name, sub in subs.choices.items():
        text = " ".join(sub.format_help().split())
        for action in sub._actions:
            d = action.default
            if not action.option_strings or d is None or d is False or d == argparse.SUPPRESS:
                continue
            assert "default" in " ".join((action.help or "").split()) or (
                f"(default: {' '.join(map(str, d)) if isinstance(d, list) else d})" in text
            ), (name, action.option_strings)
