"""Typed configs: YAML + overrides, precedence, unknown keys, type checks, seed flags."""

from __future__ import annotations

import argparse
import dataclasses
from pathlib import Path

import pytest

from discriminator import config as C
from discriminator import flags as F

CONFIG_DIR = Path(__file__).resolve().parents[1] / "ray_jobs" / "configs"


def _config_class_for(path: Path) -> str:
    """Config class by file name: *sweep* tune, *score* score, *eval* evaluate, else train."""
    for word, cls in (("sweep", "TuneConfig"), ("score", "ScoreConfig"), ("eval", "EvalConfig")):
        if word in path.stem:
            return cls
    return "TrainConfig"


def test_defaults_are_the_seed_defaults():
    cfg = C.TrainConfig()
    assert cfg.optim.num_train_epochs == 4
    assert cfg.optim.learning_rate == 1e-4
    assert cfg.optim.per_device_train_batch_size == 1
    assert cfg.optim.gradient_accumulation_steps == 16
    assert cfg.lora.r == 16
    assert cfg.lora.target_modules == C.SEVEN_PROJECTIONS
    assert cfg.model.quantization == "nf4"


def test_precedence_default_yaml_cli(tmp_path):
    y = tmp_path / "c.yaml"
    y.write_text("lora:\n  r: 32\n  alpha: 64\noptim:\n  learning_rate: 2e-4\n")
    cfg = C.load_config(C.TrainConfig, y, ["lora.r=8"])
    assert cfg.lora.r == 8  # CLI beats YAML
    assert cfg.lora.alpha == 64  # YAML beats default
    assert cfg.optim.learning_rate == pytest.approx(2e-4)  # "2e-4" string from PyYAML -> float
    assert cfg.lora.dropout == 0.05  # default kept


def test_unknown_key_lists_valid_ones(tmp_path):
    y = tmp_path / "c.yaml"
    y.write_text("lora:\n  rank: 32\n")
    with pytest.raises(C.ConfigError) as e:
        C.load_config(C.TrainConfig, y)
    msg = str(e.value)
    assert "lora.rank" in msg and "r, alpha, dropout, target_modules" in msg
    with pytest.raises(C.ConfigError, match="unknown key 'optimizer'"):
        C.load_config(C.TrainConfig, None, ["optimizer.lr=1"])


@pytest.mark.parametrize(
    "override, fragment",
    [
        ("optim.learning_rate=fast", "expected a number"),
        ("lora.r=2.5", "expected an integer"),
        ("lora.r=true", "expected an integer"),
        ("optim.gradient_checkpointing=yes please", "expected true/false"),
        ("model.quantization=int3", "not one of"),
        ("lora.target_modules=q_proj", "expected a list"),
    ],
)
def test_type_errors(override, fragment):
    with pytest.raises(C.ConfigError, match=fragment):
        C.load_config(C.TrainConfig, None, [override])


def test_set_parses_yaml_values():
    cfg = C.load_config(
        C.TrainConfig,
        None,
        ["data.eval_path=null", "lora.target_modules=[q_proj, v_proj]", "optim.max_steps=3"],
    )
    assert cfg.data.eval_path is None
    assert cfg.lora.target_modules == ["q_proj", "v_proj"]
    assert cfg.optim.max_steps == 3


def test_round_trip_through_dict():
    cfg = C.load_config(C.TrainConfig, None, ["lora.r=4", "run.num_workers=2"])
    again = C.from_dict(C.TrainConfig, C.to_dict(cfg))
    assert again == cfg


def test_seed_flags_map_onto_the_same_config(tmp_path):
    parser = argparse.ArgumentParser()
    F.add_config_args(parser, "lora.r=32")
    F.add_seed_train_flags(parser)
    args = parser.parse_args(
        [
            "--train_data", "train_discriminator.jsonl",
            "--eval_data", "eval_discriminator.jsonl",
            "--output_dir", "./llama3-discriminator-v2",
            "--num_train_epochs", "4",
            "--learning_rate", "1e-4",
            "--per_device_train_batch_size", "1",
            "--gradient_accumulation_steps", "16",
        ]
    )  # fmt: skip
    from_flags = C.load_config(C.TrainConfig, None, args.overrides, F.seed_flags_to_tree(args))
    y = tmp_path / "same.yaml"
    y.write_text(
        "data: {train_path: train_discriminator.jsonl, eval_path: eval_discriminator.jsonl}\n"
        "run: {output_dir: ./llama3-discriminator-v2}\n"
        "optim: {num_train_epochs: 4, learning_rate: 1e-4, per_device_train_batch_size: 1,"
        " gradient_accumulation_steps: 16}\n"
    )
    assert from_flags == C.load_config(C.TrainConfig, y)


def test_set_wins_over_seed_flags():
    parser = argparse.ArgumentParser()
    F.add_config_args(parser, "lora.r=32")
    F.add_seed_train_flags(parser)
    args = parser.parse_args(["--learning_rate", "1e-4", "--set", "optim.learning_rate=3e-4"])
    cfg = C.load_config(C.TrainConfig, None, args.overrides, F.seed_flags_to_tree(args))
    assert cfg.optim.learning_rate == pytest.approx(3e-4)


def test_every_shipped_yaml_loads():
    files = sorted(CONFIG_DIR.glob("*.yaml"))
    assert files, "no configs shipped"
    for path in files:
        cls = getattr(C, _config_class_for(path))
        cfg = C.load_config(cls, path)
        assert dataclasses.is_dataclass(cfg), path
