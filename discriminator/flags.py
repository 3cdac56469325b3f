"""Command-line flags shared by the jobs (`python -m ray_jobs.<job>`) and `discriminator`.

One spelling per thing: kebab-case flags, `--output` for whatever a command writes, `--config`
and `--set KEY=VALUE` for the typed config. A flag that sets a config field leaves its value to
the config layer (`load_config` type-checks it), so a bad value reads the same whether it came
from the YAML, `--set` or the flag: one line `config error: <message>` and exit 2
(`config_error`). Help shows every default; a config flag's default is read from the dataclass.
"""

from __future__ import annotations

import argparse
import sys
from typing import Any

from discriminator.config import _set_path


class DefaultsFormatter(argparse.HelpFormatter):
    """Every option's default appended to its help (unless the help already speaks of it)."""

    def _get_help_string(self, action: argparse.Action) -> str:
        text = action.help or ""
        default = action.default
        shown = not (
            default is None or default is False or default == [] or default == "==SUPPRESS=="
        )
        if "default" in text or not action.option_strings or not shown:
            return text
        value = (
            " ".join(map(str, action.default))
            if isinstance(action.default, list)
            else "%(default)s"
        )
        return f"{text} (default: {value})"


class HelpFormatter(DefaultsFormatter, argparse.RawDescriptionHelpFormatter):
    """The description (a job's module docstring) as written, defaults in the options' help."""


def job_parser(prog: str, doc: str | None) -> argparse.ArgumentParser:
    return argparse.ArgumentParser(prog=prog, description=doc, formatter_class=HelpFormatter)


def config_default(cls: type, target: str) -> Any:
    """The default of a dotted field (`scoring.threshold`) of a config dataclass, as a default
    instance has it (a section's own default_factory included)."""
    node: Any = cls()
    for name in target.split("."):
        node = getattr(node, name)
    return node


def _shown(value: Any) -> str | None:
    if value is None or value is False or value == []:
        return None
    if value is True:
        return "true"
    return ",".join(map(str, value)) if isinstance(value, list) else str(value)


def add_config_flag(
    parser: argparse.ArgumentParser | Any,
    cls: type,
    target: str,
    *flags: str,
    help: str,
    **kwargs: Any,
) -> None:
    """A flag that sets config field `target` (dest = the dotted field; unset flags stay None so
    they do not override the YAML). No `type=`: the config layer checks the value."""
    default = _shown(config_default(cls, target))
    shown = f"; default: {default}" if default is not None else ""
    if kwargs.get("action") not in ("store_const",):
        kwargs.setdefault("metavar", "VALUE")
    action = parser.add_argument(
        *flags, dest=target, default=None, help=f"{help} [{target}{shown}]", **kwargs
    )
    action.config_field = True


def flags_to_tree(args: argparse.Namespace, targets: list[str]) -> dict[str, Any]:
    """The config flags the user gave, as a nested dict for `load_config(extra=...)`."""
    tree: dict[str, Any] = {}
    for target in targets:
        value = getattr(args, target, None)
        if value is not None:
            _set_path(tree, target, value)
    return tree


def config_targets(parser: argparse.ArgumentParser) -> list[str]:
    """The config fields of every flag `add_config_flag` added to `parser`."""
    return [a.dest for a in parser._actions if getattr(a, "config_field", False)]


def add_config_args(parser: argparse.ArgumentParser, example: str) -> None:
    """`--config`, `--set` (with an example this job accepts: a test runs it) and
    `--print-config`."""
    parser.add_argument("--config", metavar="YAML", help="YAML config file (see ray_jobs/configs/)")
    parser.add_argument(
        "--set",
        dest="overrides",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help=f"override one config field, e.g. --set {example} (repeatable; wins over the YAML "
        "and the flags)",
    )
    parser.add_argument(
        "--print-config", action="store_true", help="print the resolved config and exit"
    )


def add_verbose_arg(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "-v",
        "--verbose",
        action="store_true",
        help="show library output too (Ray, transformers, datasets); it always goes to the run's log",
    )


def add_output_arg(parser: argparse.ArgumentParser | Any, help: str, *old: str, **kw: Any) -> None:
    """`--output`, with the command's old spellings (`--out`, ...) kept as aliases."""
    parser.add_argument("--output", *old, help=help, **kw)


def config_error(e: ValueError) -> int:
    """The one format of a config error in every job: one line on stderr, exit 2."""
    message = " ".join(str(e).split("\n"))
    print(f"config error: {message}", file=sys.stderr)
    return 2


# The seed's flags (finetune_discriminator.py), in kebab-case, with the seed's snake_case
# spellings kept as aliases; all land in TrainConfig.
SEED_TRAIN_FLAGS: dict[str, tuple[str, str, str]] = {  # flag: (config field, metavar, help)
    "train-data": ("data.train_path", "PATH", "training records (JSONL, CSV/TSV, parquet)"),
    "eval-data": ("data.eval_path", "PATH", "evaluation records (same formats)"),
    "output": ("run.output_dir", "DIR", "folder the final adapter is written to"),
    "num-train-epochs": ("optim.num_train_epochs", "N", "passes over the training set"),
    "learning-rate": ("optim.learning_rate", "LR", "peak learning rate"),
    "per-device-train-batch-size": (
        "optim.per_device_train_batch_size",
        "N",
        "notes per worker per micro-batch",
    ),
    "gradient-accumulation-steps": (
        "optim.gradient_accumulation_steps",
        "N",
        "micro-batches per optimizer step",
    ),
}
SEED_ALIASES = {"output": ["--output-dir", "--output_dir"]}


def add_seed_train_flags(parser: argparse.ArgumentParser) -> None:
    from discriminator.config import TrainConfig

    group = parser.add_argument_group(
        "seed flags (finetune_discriminator.py's; its snake_case spellings work too)"
    )
    for flag, (target, metavar, text) in SEED_TRAIN_FLAGS.items():
        aliases = SEED_ALIASES.get(flag, [f"--{flag.replace('-', '_')}"])
        add_config_flag(
            group, TrainConfig, target, f"--{flag}", *aliases, metavar=metavar, help=text
        )


def seed_flags_to_tree(args: argparse.Namespace) -> dict[str, Any]:
    return flags_to_tree(args, [target for target, *_ in SEED_TRAIN_FLAGS.values()])
