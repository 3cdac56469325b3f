"""`discriminator`: local tasks that need no cluster.

  discriminator validate FILE...          check training/eval records, print a summary
  discriminator synth --n N --out DIR     synthetic labelled discharge notes (train/eval/test)
  discriminator import-medec CSV --out F  convert the public MEDEC benchmark
  discriminator make-tiny-model --out DIR the tiny offline base model for tests and the demo
  discriminator runtime-env               cluster/runtime-env.yaml (what `ray job submit` uploads)

The jobs that use Ray (train, tune, score, evaluate) are `python -m ray_jobs.<job>`.
"""

from __future__ import annotations

import argparse
import json
import os
import sys

from discriminator.runtime import UMASK


def _validate(args: argparse.Namespace) -> int:
    from discriminator.data import read_records, summarize

    result = read_records(args.files)
    tok = None
    if args.tokenizer:
        from discriminator.modeling import load_tokenizer

        tok = load_tokenizer(args.tokenizer)
    summary = summarize(result, tok)
    for p in result.problems:
        print(f"invalid: {p}")
    for later, first in result.duplicates[:50]:
        print(f"duplicate note: {later} repeats {first}")
    if args.json:
        print(json.dumps(summary, indent=2))
    else:
        print(
            f"rows {summary['rows']}  valid {summary['valid']}  invalid {summary['invalid']}  "
            f"good {summary['good']}  error {summary['error']}  duplicates {summary['duplicates']}"
        )
        if summary["categories"]:
            print("categories: " + ", ".join(f"{k} {v}" for k, v in summary["categories"].items()))
        for unit in ("words", "tokens"):
            if summary.get(unit):
                print(
                    f"note length ({unit}): "
                    + "  ".join(f"{k} {v}" for k, v in summary[unit].items())
                )
    return 1 if result.problems else 0


def _synth(args: argparse.Namespace) -> int:
    from discriminator.synth import write_splits

    stats = write_splits(
        args.out,
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
    print(f"wrote {args.out}/{{train,eval,test}}.jsonl and stats.json ({sizes or args.n} notes)")
    return 0


def _import_medec(args: argparse.Namespace) -> int:
    from discriminator.medec import attribution, convert_medec, write_jsonl

    source, license = attribution(args.csv, args.source, args.license)
    records, skipped = convert_medec(args.csv, source, license)
    write_jsonl(records, args.out)
    n_err = sum(r["category"] != "good" for r in records)
    print(
        f"wrote {len(records)} records to {args.out} ({n_err} with an error, {skipped} empty rows skipped)"
    )
    print(f"data: {source} (license: {license})")
    return 0


def _make_tiny_model(args: argparse.Namespace) -> int:
    from discriminator import modeling

    texts = modeling.build_tiny_corpus(args.notes, args.seed, args.length)
    out = modeling.make_tiny_model(args.out, texts, vocab_size=args.vocab_size, seed=args.seed)
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

    p = sub.add_parser(
        "validate", help="check labelled records (JSONL/CSV/TSV/parquet); exit 1 if any is invalid"
    )
    p.add_argument(
        "files",
        nargs="+",
        help="JSONL, CSV or TSV (plain, .gz or .zst) or parquet files, folders or globs",
    )
    p.add_argument("--tokenizer", help="tokenizer/model dir: adds note lengths in tokens")
    p.add_argument("--json", action="store_true", help="print the summary as JSON")
    p.set_defaults(func=_validate)

    p = sub.add_parser("synth", help="write synthetic labelled discharge notes")
    p.add_argument("--n", type=int, default=1000, help="number of notes (all splits)")
    p.add_argument("--seed", type=int, default=0, help="random seed (same seed, same bytes)")
    p.add_argument("--out", required=True, help="output folder")
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

    p = sub.add_parser(
        "baseline",
        help="the floor: TF-IDF + logistic regression trained on labelled notes, scores written "
        "in the scorer's parquet format (for ray_jobs.evaluate --scores / --baseline)",
    )
    p.add_argument("--train", nargs="+", required=True, help="labelled records to train on")
    p.add_argument(
        "--input", nargs="+", required=True, help="notes to score (files, folders, globs)"
    )
    p.add_argument("--output", "--out", dest="output", required=True, help="new output folder")
    p.add_argument(
        "--features",
        choices=["word", "char", "both"],
        default="both",
        help="word 1-2-grams, character 3-5-grams, or both (default)",
    )
    p.add_argument("--seed", type=int, default=0, help="random seed")
    p.add_argument("--threshold", type=float, default=0.5, help="verdict error when p_error >= T")
    p.add_argument("--text-column", default="note", help="the input's note column")
    p.add_argument("--id-column", default="id", help="the input's id column")
    p.set_defaults(func=_baseline)

    p = sub.add_parser(
        "import-medec",
        help="convert the MEDEC benchmark CSV (or a MEDEC-format CSV) to JSONL records",
        description="Convert a MEDEC-format CSV to JSONL records. Every row is stamped with an "
        "attribution (`source`, `license`). Without --source, a file whose name starts with "
        "MEDEC- (the benchmark's own files) gets MEDEC's attribution and CC-BY-4.0; any other "
        "file gets 'MEDEC-format data from <file name>' and license 'unknown'.",
    )
    p.add_argument("csv", help="MEDEC CSV (e.g. MEDEC-MS-ValidationSet-...-ErrorType.csv)")
    p.add_argument("--out", required=True, help="output JSONL file")
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

    p = sub.add_parser("make-tiny-model", help="build the tiny offline base model")
    p.add_argument("--out", required=True, help="output folder")
    p.add_argument(
        "--notes", type=int, default=2000, help="synthetic notes to train the tokenizer on"
    )
    p.add_argument("--vocab-size", type=int, default=4096, help="BPE vocabulary size")
    p.add_argument("--length", choices=["realistic", "short"], default="short")
    p.add_argument("--seed", type=int, default=0)
    p.set_defaults(func=_make_tiny_model)

    p = sub.add_parser(
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
