"""Check the commands the docs give: every ```bash block of README.md and docs/ is parsed.

Each command in a block is handed to the program's own parser, so a renamed flag, a `--set` key
the job rejects or a config file that is gone fails the docs test with the page and line:

- `python -m ray_jobs.<job>` (train, tune, score, evaluate): the job's `main` with
  `--print-config` appended, so the job's argument parser *and* its config resolver run (score's
  `--adapter` is stood in for by an empty adapter with the same provenance when it does not exist
  here); the demo and every other `python -m <module>` of this project: the module's own
  argparse parser (stopped right after parsing).
- `discriminator <command>`: the CLI's parser; `ray ...` (`ray job submit`, `ray start`, ...):
  Ray's own click commands, parsed, never run; the entrypoint after `--` is checked in turn.
- `cluster/submit ...`: the script itself with `--dry-run` (prints the sbatch line, submits
  nothing); `sbatch ... cluster/ray-cluster.sbatch -- COMMAND`: the script exists, COMMAND checked.
- `make TARGET`: the target exists in the Makefile.
- A block right after `<!-- docs-check: run -->` is also run, commands in order, in a fresh
  folder (cheap commands only: the suite runs the jobs themselves elsewhere).
- Other tools a user runs (ssh, pip, git, ...) are not ours to parse: any argument naming a file
  of this repository must exist. A program the checker does not know fails the test, so a new
  kind of command cannot slip into the docs unchecked.
"""

from __future__ import annotations

import argparse
import contextlib
import importlib
import inspect
import io
import json
import os
import re
import shlex
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

from benchmarks.common import REPO as ROOT
from benchmarks.common import in_repo

DOC_FILES = ["README.md", "docs/**/*.md", "benchmarks/README.md"]
CONFIG_JOBS = {"train", "tune", "score", "evaluate"}  # they take --print-config
REPO_DIRS = ("cluster/", "ray_jobs/", "benchmarks/", "tests/", "discriminator/", "docs/")
# Programs a user runs that this project does not define: only their repo paths are checked.
EXTERNAL = {
    "ssh", "scp", "rsync", "pip", "pip3", "git", "hf", "huggingface-cli", "nvidia-smi", "squeue",
    "scancel", "sinfo", "srun", "salloc", "sacct", "scontrol", "module", "source", ".", "cat",
    "ls", "tail", "head", "less", "mkdir", "chmod", "cp", "mv", "rm", "echo", "cd", "export",
    "tee", "grep", "watch", "du", "wc", "zstd", "gzip", "zcat", "tar", "curl", "sudo", "apt-get",
    "unset", "mkdocs", "jq", "sort", "xargs", "kill", "true", "test", "env", "uv", "conda",
    "umask", "$EDITOR", "vi", "nano", "ulimit", "df", "free", "nproc",
}  # fmt: skip
PYTHONS = {"python", "python3", ".venv/bin/python", "$(BIN)/python"}
SEPARATORS = {"|", "||", "&&", ";", "&"}


class DocCommandError(AssertionError):
    """A command in the docs that its own program rejects."""


def doc_files() -> list[Path]:
    files: list[Path] = []
    for pattern in DOC_FILES:
        files += sorted(p for p in ROOT.glob(pattern) if p.is_file())
    return files


# ---------------------------------------------------------------------------------------------
# Shell text -> commands


def commands(block: str) -> list[list[str]]:
    """The commands of a bash block, each as argv: continuations joined, comments dropped,
    `$(...)` replaced by one word, chains (`&&`, `|`, `;`) split, redirections dropped."""
    text = re.sub(r"\\\n", " ", block)
    out: list[list[str]] = []
    for line in text.splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        line = re.sub(r"\$\([^()]*\)", "SUBST", line)
        line = re.sub(r"\s(\d|&)?(>>?|<)(&\d|\s*[^\s|&;]+)", " ", line)  # redirections
        lexer = shlex.shlex(line, posix=True, punctuation_chars="|&;<>")
        lexer.whitespace_split = True
        lexer.commenters = "#"
        argv: list[str] = []
        for tok in lexer:
            if tok in SEPARATORS:
                if argv:
                    out.append(argv)
                argv = []
            else:
                argv.append(tok)
        if argv:
            out.append(argv)
    return out


# ---------------------------------------------------------------------------------------------
# Checking one command


def check_command(argv: list[str], tmp: Path) -> None:
    """Raise DocCommandError unless `argv` is accepted by the program it names."""
    while argv and re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*=.*", argv[0]):  # VAR=value command
        argv = argv[1:]
    if not argv:
        return
    prog, args = argv[0], argv[1:]
    if prog in PYTHONS:
        return _check_python(args, tmp)
    if prog == "discriminator":
        return _parse_only("discriminator.cli", args)
    if prog == "ray":
        return _check_ray(args, tmp)
    if prog == "pytest":
        return _check_python(["-m", "pytest", *args], tmp)
    if prog == "make":
        return _check_make(args)
    if prog in ("cluster/submit", "./cluster/submit"):
        return _check_submit(args, tmp)
    if prog == "sbatch":
        return _check_sbatch(args, tmp)
    if prog in ("bash", "sh") and args and args[0].startswith("cluster/"):
        return check_command(args, tmp)
    if prog == "discriminator-check":  # pragma: no cover - reserved name, never in docs
        return
    if prog in EXTERNAL:
        return _check_repo_paths(args)
    raise DocCommandError(
        f"`{prog}`: a program the docs check does not know; teach tests/docs_check.py to check "
        "it (or say it in prose, not in a bash block)"
    )


def _check_repo_paths(args: list[str]) -> None:
    for a in args:
        value = a.split("=", 1)[-1]
        if value.startswith(REPO_DIRS) and "*" not in value and not (ROOT / value).exists():
            raise DocCommandError(f"{value}: no such file in the repository")


def _check_python(args: list[str], tmp: Path) -> None:
    if args[:1] == ["-c"]:
        return
    if args[:1] != ["-m"] or len(args) < 2:
        if args and args[0].endswith(".py"):
            _check_repo_paths(args[:1])
            return
        raise DocCommandError(f"python {' '.join(args[:2])}: the docs run modules with `python -m`")
    module, rest = args[1], args[2:]
    if module in ("pip", "venv", "pytest"):
        return _check_repo_paths([a.split("::")[0] for a in rest])
    if module == "discriminator.cli":
        return _parse_only(module, rest)
    if module.startswith("ray_jobs.") and module.split(".")[1] in CONFIG_JOBS:
        return _check_config_job(module, rest, tmp)
    if module.startswith(("ray_jobs.", "benchmarks.", "discriminator.")):
        return _parse_only(module, rest)
    raise DocCommandError(f"python -m {module}: not a module of this project")


class _Parsed(Exception):
    pass


@contextlib.contextmanager
def _stop_after_parsing() -> Iterator[None]:
    """argparse parses as usual, then stops the program before it does anything."""
    original = argparse.ArgumentParser.parse_args

    def parse_args(self, args=None, namespace=None):  # type: ignore[no-untyped-def]
        original(self, args, namespace)
        raise _Parsed

    argparse.ArgumentParser.parse_args = parse_args  # type: ignore[method-assign]
    try:
        yield
    finally:
        argparse.ArgumentParser.parse_args = original  # type: ignore[method-assign]


def _call_main(module: str, args: list[str]) -> tuple[int, str]:
    """Run `module.main` on `args` in-process; (exit status, stderr)."""
    main = importlib.import_module(module).main
    err = io.StringIO()
    saved = sys.argv
    try:
        with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(err):
            if inspect.signature(main).parameters:
                status = main(args)
            else:  # a main() that reads sys.argv
                sys.argv = [module, *args]
                status = main()
    except SystemExit as e:
        status = e.code if isinstance(e.code, int) else (0 if e.code is None else 2)
    finally:
        sys.argv = saved
    return int(status or 0), err.getvalue()


def _last_lines(err: str, n: int = 3) -> str:
    """The end of a program's stderr: the error, not the usage dump before it."""
    lines = [line for line in err.strip().splitlines() if not line.startswith((" ", "usage:"))]
    return "\n  ".join(lines[-n:]) or err.strip()[-500:]


def _parse_only(module: str, args: list[str]) -> None:
    with _stop_after_parsing():
        try:
            status, err = _call_main(module, args)
        except _Parsed:
            return
    if status != 0:
        raise DocCommandError(f"{module} rejects the command: {_last_lines(err)}")


def _check_config_job(module: str, args: list[str], tmp: Path) -> None:
    if "--help" in args or "-h" in args:
        return _parse_only(module, args)
    if module == "ray_jobs.score":
        args = _stand_in_adapter(args, tmp)
    status, err = _call_main(module, [*args, "--print-config"])
    if status != 0:
        raise DocCommandError(f"{module} rejects the command: {_last_lines(err)}")


def _stand_in_adapter(args: list[str], tmp: Path) -> list[str]:
    """An `--adapter` that is not here (a cluster path, a placeholder) becomes an empty adapter
    with the same provenance the train job writes, so score's config resolver runs in full."""
    from discriminator.config import ModelConfig
    from discriminator.prompt import PROMPT_VERSION

    args = list(args)
    for i, a in enumerate(args):
        name, _, value = a.partition("=")
        if name != "--adapter":
            continue
        if not value:
            if i + 1 >= len(args):
                return args
            value = args[i + 1]
        if Path(value).exists():
            return args
        adapter = tmp / "stand-in-adapter"
        adapter.mkdir(exist_ok=True)
        base = _configured_base(args) or ModelConfig().name_or_path
        (adapter / "adapter_config.json").write_text(json.dumps({"base_model_name_or_path": base}))
        (adapter / "adapter_model.safetensors").write_bytes(b"")
        provenance = {"config": {"model": {"name_or_path": base}}, "prompt_version": PROMPT_VERSION}
        (adapter / "discriminator.json").write_text(json.dumps(provenance))
        if a == "--adapter":
            args[i + 1] = str(adapter)
        else:
            args[i] = f"--adapter={adapter}"
        return args
    return args


def _configured_base(args: list[str]) -> str | None:
    """The base model the command's --config and --set name, if any (the adapter's would be)."""
    from discriminator.config import ConfigError, config_tree

    ns = argparse.ArgumentParser(add_help=False)
    ns.add_argument("--config")
    ns.add_argument("--set", dest="overrides", action="append", default=[])
    known, _ = ns.parse_known_args(args)
    try:
        tree = config_tree(known.config, known.overrides, {})
    except (ConfigError, OSError):
        return None  # the job itself says what is wrong
    model = tree.get("model")
    return model.get("name_or_path") if isinstance(model, dict) else None


def _check_ray(args: list[str], tmp: Path) -> None:
    import click
    from ray.scripts.scripts import cli

    command: click.Command = cli
    ctx = click.Context(cli, info_name="ray")
    rest = list(args)
    try:
        while isinstance(command, click.Group) and rest:
            name = rest.pop(0)
            sub = command.get_command(ctx, name)
            if sub is None:
                raise DocCommandError(f"ray: no such command {name!r}")
            command = sub
            ctx = command.make_context(name, list(rest), parent=ctx, resilient_parsing=False)
            if not isinstance(command, click.Group):
                break
            rest = ctx.protected_args + ctx.args
    except click.exceptions.Exit:
        return  # --help
    except click.ClickException as e:
        raise DocCommandError(f"ray {' '.join(args[:2])}: {e.format_message()}") from None
    params = ctx.params
    if params.get("runtime_env") and not (ROOT / params["runtime_env"]).exists():
        raise DocCommandError(f"{params['runtime_env']}: no such runtime-env file")
    if params.get("entrypoint"):
        check_command(list(params["entrypoint"]), tmp)


def _check_make(args: list[str]) -> None:
    targets = set(re.findall(r"^([A-Za-z][\w.-]*):", (ROOT / "Makefile").read_text(), re.M))
    for a in args:
        if "=" in a or a.startswith("-"):
            continue
        if a not in targets:
            raise DocCommandError(f"make {a}: no such target in the Makefile")


def _split_entrypoint(args: list[str]) -> tuple[list[str], list[str]]:
    if "--" in args:
        i = args.index("--")
        return args[:i], args[i + 1 :]
    return args, []


def _check_submit(args: list[str], tmp: Path) -> None:
    own, entry = _split_entrypoint(args)
    if "--help" in own or "-h" in own:
        return
    run = subprocess.run(
        [
            "bash",
            str(ROOT / "cluster/submit"),
            "--dry-run",
            "--output-dir",
            str(tmp / "slurm"),
            *args,
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
    )
    if run.returncode != 0:
        raise DocCommandError(f"cluster/submit rejects the command: {run.stderr.strip()}")
    if entry:
        check_command(entry, tmp)


def _check_sbatch(args: list[str], tmp: Path) -> None:
    own, entry = _split_entrypoint(args)
    scripts = [a for a in own if a.endswith(".sbatch")]
    if not scripts:
        raise DocCommandError("sbatch: the docs submit cluster/ray-cluster.sbatch")
    _check_repo_paths(scripts)
    if entry:
        check_command(entry, tmp)


# ---------------------------------------------------------------------------------------------
# Sybil: one example per ```bash block, evaluated with the checks above


RUN_MARK = "<!-- docs-check: run -->"
RUN_TIMEOUT_S = 180


def runs(example) -> bool:  # type: ignore[no-untyped-def]
    """A block right after `<!-- docs-check: run -->` is run, not only parsed."""
    before = example.document.text[: example.start].rstrip().splitlines()
    return bool(before) and before[-1].strip() == RUN_MARK


def run_block(block: str, scratch: Path) -> None:
    """Run a block's commands in order in `scratch` (the repository's configs and cluster
    scripts linked in), as a user would in a fresh folder; fail on the first non-zero exit."""
    for name in ("ray_jobs", "cluster"):
        (scratch / name).symlink_to(ROOT / name)
    bin_dir = Path(sys.executable).parent
    env = {k: v for k, v in os.environ.items() if k != "RAY_ADDRESS"}
    env.update(
        PATH=f"{bin_dir}:{env.get('PATH', '')}",
        HF_HUB_OFFLINE="1",
        RAY_USAGE_STATS_ENABLED="0",
        RAY_TMPDIR=str(scratch),
    )
    for argv in commands(block):
        argv = [sys.executable if a in PYTHONS and i == 0 else a for i, a in enumerate(argv)]
        run = subprocess.run(
            argv, cwd=scratch, env=env, capture_output=True, text=True, timeout=RUN_TIMEOUT_S
        )
        if run.returncode != 0:
            raise DocCommandError(
                f"`{' '.join(argv[:4])} ...` exited {run.returncode}: "
                + _last_lines(run.stderr or run.stdout)
            )


def evaluate_block(example) -> None:  # type: ignore[no-untyped-def]
    """Sybil evaluator: check every command of the block (and run it after the run mark);
    fail naming page and line."""
    path = Path(example.path).resolve()
    where = f"{path.relative_to(ROOT) if path.is_relative_to(ROOT) else path}:{example.line}"
    with tempfile.TemporaryDirectory(prefix="docs-check-") as tmp:
        for argv in commands(example.parsed):
            try:
                with in_repo():
                    check_command(argv, Path(tmp))
            except DocCommandError as e:
                shown = " ".join(argv)
                shown = shown if len(shown) <= 160 else shown[:157] + "..."
                raise DocCommandError(f"{where}: `{shown}`\n  {e}") from None
    if runs(example):
        with tempfile.TemporaryDirectory(prefix="docs-run-") as tmp:
            try:
                run_block(example.parsed, Path(tmp))
            except DocCommandError as e:
                raise DocCommandError(f"{where} (run): {e}") from None


def parser():  # type: ignore[no-untyped-def]
    from sybil.parsers.markdown import CodeBlockParser

    return CodeBlockParser(language="bash", evaluator=evaluate_block)


def examples(path: Path) -> list:  # type: ignore[type-arg]
    from sybil import Document

    return list(Document.parse(str(path), parser()))
