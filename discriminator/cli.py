"""`discriminator`: local tasks that need no cluster.

  discriminator validate FILE...             check what a job reads (labelled records, or
                                             scoring input without labels), print a summary
  discriminator synth --n N --output DIR     synthetic labelled discharge notes (train/eval/test)
  discriminator import-medec CSV --output F  convert the public MEDEC benchmark
  discriminator make-tiny-model --output DIR the tiny offline base model for tests and the demo
  discriminator runtime-env                  cluster/runtime-env.yaml (what `ray job submit` uploads)

MIMIC-IV-Note as scoring input: discriminator validate --text-column text --id-column note_id
discharge.csv.gz. What a command writes is named with --output (--out works too).

The jobs that use Ray (train, tune, score, evaluate) are `python -m ray_jobs.<job>`.
"""

from __future__ import annotations

import argparse
import json
import os
import sys

from discriminator.config import ScoreConfig
from discriminator.flags import DefaultsFormatter, add_output_arg, config_default
from discriminator.prompt import DECISION_THRESHOLD
from discriminator.runtime import UMASK


def _sub(sub: argparse._SubParsersAction, name: str, **kw: object) -> argparse.ArgumentParser:
    """A subcommand (`discriminator <name>`) whose help shows every default."""
    return sub.add_parser(name, formatter_class=DefaultsFormatter, **kw)


def _validate(args: argparse.Namespace) -> int:
    from discriminator.data import read_records, summarize

    result = read_records(args.files, args.text_column, args.id_column)
    tok = None
    if args.tokenizer:
        from discriminator.modeling import load_tokenizer

        tok = load_tokenizer(args.tokenizer)
    summary = summarize(result, tok)
    for p in result.problems:
        print(p)
    for later, first in result.duplicates[:50]:
        print(f"duplicate note: {later} repeats {first}")
    for _, later, first in result.duplicate_ids[:50]:
        print(f"duplicate id: {later} repeats the {args.id_column!r} of {first}")
    if args.json:
        print(json.dumps(summary, indent=2))
        return 1 if result.problems else 0
    counts = (
        f"rows {summary['rows']}  valid {summary['valid']}  invalid {summary['invalid']}  "
        f"duplicates {summary['duplicates']}  duplicate ids {summary['duplicate_ids']}"
    )
    if summary["unlabelled"]:
        print(
            f"unlabelled scoring input (no 'reason' column; note text in {args.text_column!r}, "
            f"ids in {args.id_column!r}): {counts}"
        )
    else:
        print(f"{counts}  good {summary['good']}  error {summary['error']}")
        if result.unlabelled:
            print("unlabelled (no 'reason' column, every row counts as good): "
                  + ", ".join(result.unlabelled))  # fmt: skip
    if summary["categories"]:
        print("categories: " + ", ".join(f"{k} {v}" for k, v in summary["categories"].items()))
    for unit in ("words", "tokens"):
        if summary.get(unit):
            print(
                f"note length ({unit}): " + "  ".join(f"{k} {v}" for k, v in summary[unit].items())
            )
    return 1 if result.problems else 0


def _synth(args: argparse.Namespace) -> int:
    from discriminator.synth import write_splits

    stats = write_splits(
        args.output,
        args.n,
        seed=args.seed,
        error_rate=args.error_rate,
        categories=args.categories,
        length=args.length,
        kinds=args.kinds,
    )
    splits = stats.get("splits", {})
    sizes = ", ".join(
        f"{k} {v.get('n', v) if isinstance(v, dict) else v}" for k, v in splits.items()
    )
    print(f"wrote {args.output}/{{train,eval,test}}.jsonl and stats.json ({sizes or args.n} notes)")
    return 0


def _import_medec(args: argparse.Namespace) -> int:
    from discriminator.medec import attribution, convert_medec, write_jsonl

    source, license = attribution(args.csv, args.source, args.license)
    records, skipped = convert_medec(args.csv, source, license)
    write_jsonl(records, args.output)
    n_err = sum(r["category"] != "good" for r in records)
    print(
        f"wrote {len(records)} records to {args.output} ({n_err} with an error, {skipped} empty rows skipped)"
    )
    print(f"data: {source} (license: {license})")
    return 0


def _make_tiny_model(args: argparse.Namespace) -> int:
    from discriminator import modeling

    texts = modeling.build_tiny_corpus(args.notes, args.seed, args.length)
    out = modeling.make_tiny_model(args.output, texts, vocab_size=args.vocab_size, seed=args.seed)
    print(f"tiny model written to {out}")
    return 0


def _runtime_env(args: argparse.Namespace) -> int:
    from discriminator.cluster_env import runtime_env_yaml

    sys.stdout.write(runtime_env_yaml())
    return 0


def _baseline(args: argparse.Namespace) -> int:
    from discriminator.baseline import FloorSettings, run_floor

    settings = FloorSettings(
        args.features, args.seed, args.threshold, args.text_column, args.id_column
    )
    run_floor(args.train, args.input, args.output, settings)
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="discriminator",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    p = _sub(
        sub,
        "validate",
        help="check what the jobs read: labelled records (training, evaluation) or, without a "
        "'reason' column, scoring input; exit 1 if any row or file is invalid",
        description="Check records as the jobs read them (same formats, columns and row "
        "numbers as scoring). With a 'reason' column: labelled records for training and "
        "evaluation. Without one: unlabelled scoring input; every row needs its note text and, "
        "where the file has ids, its id. Problems print as path:line: why; an input with no "
        "record is one. Duplicate notes and ids are listed. MIMIC-IV-Note: "
        "discriminator validate --text-column text --id-column note_id discharge.csv.gz",
    )
    p.add_argument(
        "files",
        nargs="+",
        help="JSONL, CSV or TSV (plain, .gz or .zst) or parquet files, folders or globs",
    )
    p.add_argument(
        "--text-column",
        default=config_default(ScoreConfig, "io.text_column"),
        metavar="NAME",
        help="column with the note text (as score's --text-column, train's data.text_column)",
    )
    p.add_argument(
        "--id-column",
        default=config_default(ScoreConfig, "io.id_column"),
        metavar="NAME",
        help="column with the note id (as score's --id-column, train's data.id_column)",
    )
    p.add_argument("--tokenizer", help="tokenizer/model dir: adds note lengths in tokens")
    p.add_argument("--json", action="store_true", help="print the summary as JSON")
    p.set_defaults(func=_validate)

    p = _sub(sub, "synth", help="write synthetic labelled discharge notes")
    p.add_argument("--n", type=int, default=1000, help="number of notes (all splits)")
    p.add_argument("--seed", type=int, default=0, help="random seed (same seed, same bytes)")
    add_output_arg(p, "output folder", "--out", required=True, metavar="DIR")
    p.add_argument("--error-rate", type=float, default=0.5, help="share of notes with an error")
    p.add_argument(
        "--categories",
        nargs="+",
        default=None,
        help="restrict injected errors to these categories (default: all five)",
    )
    p.add_argument(
        "--kinds",
        nargs="+",
        default=None,
        help="restrict injected errors to these kinds, e.g. template_token truncated_note "
        "(default: all 34; `discriminator.synth.ERROR_KINDS` lists them)",
    )
    p.add_argument(
        "--length",
        choices=["realistic", "short"],
        default="realistic",
        help="realistic: hundreds to thousands of words; short: ~120-350 words (CPU demos)",
    )
    p.set_defaults(func=_synth)

    p = _sub(
        sub,
        "baseline",
        help="the floor: TF-IDF + logistic regression trained on labelled notes, scores written "
        "in the scorer's parquet format (for ray_jobs.evaluate --scores / --baseline)",
    )
    p.add_argument("--train", nargs="+", required=True, help="labelled records to train on")
    p.add_argument(
        "--input", nargs="+", required=True, help="notes to score (files, folders, globs)"
    )
    add_output_arg(p, "new output folder", "--out", required=True, metavar="DIR")
    p.add_argument(
        "--features",
        choices=["word", "char", "both"],
        default="both",
        help="word 1-2-grams, character 3-5-grams, or both",
    )
    p.add_argument("--seed", type=int, default=0, help="random seed")
    p.add_argument(
        "--threshold",
        type=float,
        default=DECISION_THRESHOLD,
        help="verdict error when p_error >= T",
    )
    p.add_argument("--text-column", default="note", help="the input's note column")
    p.add_argument("--id-column", default="id", help="the input's id column")
    p.set_defaults(func=_baseline)

    p = _sub(
        sub,
        "import-medec",
        help="convert the MEDEC benchmark CSV (or a MEDEC-format CSV) to JSONL records",
        description="Convert a MEDEC-format CSV to JSONL records. Every row is stamped with an "
        "attribution (`source`, `license`). Without --source, a file whose name starts with "
        "MEDEC- (the benchmark's own files) gets MEDEC's attribution and CC-BY-4.0; any other "
        "file gets 'MEDEC-format data from <file name>' and license 'unknown'.",
    )
    p.add_argument("csv", help="MEDEC CSV (e.g. MEDEC-MS-ValidationSet-...-ErrorType.csv)")
    add_output_arg(p, "output JSONL file", "--out", required=True, metavar="FILE")
    p.add_argument(
        "--source",
        help="attribution written into every row, e.g. 'Hospital X review set 2024'; "
        "'medec' = MEDEC's own attribution (for a renamed copy of the benchmark). "
        "Default: decided by the file name (see above)",
    )
    p.add_argument(
        "--license",
        help="license written into every row (default: CC-BY-4.0 with MEDEC's attribution, "
        "otherwise 'unknown')",
    )
    p.set_defaults(func=_import_medec)

    p = _sub(sub, "make-tiny-model", help="build the tiny offline base model")
    add_output_arg(p, "output folder", "--out", required=True, metavar="DIR")
    p.add_argument(
        "--notes", type=int, default=2000, help="synthetic notes to train the tokenizer on"
    )
    p.add_argument("--vocab-size", type=int, default=4096, help="BPE vocabulary size")
    p.add_argument("--length", choices=["realistic", "short"], default="short", help="note length")
    p.add_argument("--seed", type=int, default=0, help="random seed")
    p.set_defaults(func=_make_tiny_model)

    p = _sub(
        sub,
        "runtime-env",
        help="print cluster/runtime-env.yaml: `ray job submit`'s upload, without notes or runs",
        description="Print the runtime environment for `ray job submit --runtime-env`: the "
        "checkout as working_dir, excluding every note file the readers accept (any format, "
        "plain or compressed, any letter case), data/runs/demo/cache folders, weights and "
        "tokens. Regenerate with `discriminator runtime-env > cluster/runtime-env.yaml`.",
    )
    p.set_defaults(func=_runtime_env)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    os.umask(UMASK)  # what the commands write (imported notes, splits, reports) is owner-only
    try:
        return args.func(args)
    except (ValueError, OSError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
