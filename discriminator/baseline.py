"""The floor every adapter must beat: TF-IDF + logistic regression over the notes' words.

    discriminator baseline --train data/train.jsonl --input data/test.jsonl --output runs/floor

A bag-of-n-grams model sees only which words (or character runs) a note contains, never their
meaning or order beyond two words; what it finds is a surface cue in the data, not clinical
reasoning. It is trained on labelled records (the jobs' record format and readers: JSONL, CSV,
TSV or parquet, `synth:` sources), scores the input files, and writes its scores in the scorer's
parquet format (`discriminator.scoring.schema.OUTPUT_SCHEMA`, one part per input file, a
`_manifest.json` beside them), so `ray_jobs.evaluate --scores DIR` and `--baseline DIR` read it
as they read an adapter's. A second logistic regression on the training errors names the
category of a flagged note. Seconds on a laptop CPU for thousands of notes.

Nothing here prints or logs note text: ids, counts and timings only.
"""

from __future__ import annotations

import json
import platform
import time
from collections import Counter
from dataclasses import asdict, dataclass
from importlib.metadata import PackageNotFoundError, version
from typing import Any, Literal

from discriminator import sources
from discriminator.data import check_row, read_records
from discriminator.prompt import GOOD
from discriminator.scoring.schema import MANIFEST, OUTPUT_SCHEMA, PROVENANCE_KEY

MODEL = "tfidf-logreg"
Features = Literal["word", "char", "both"]
PACKAGES = ("scikit-learn", "scipy", "numpy", "pyarrow")


class BaselineError(ValueError):
    """Training data or an output folder the floor cannot use."""


@dataclass
class FloorSettings:
    """How the floor is built; recorded in the manifest."""

    features: Features = "both"
    """word: word 1-2-grams; char: character 3-5-grams within word bounds; both: side by side."""
    seed: int = 0
    """Seeds the solver (lbfgs is deterministic; kept so a change of solver stays seeded)."""
    threshold: float = 0.5
    """Verdict `error` when p_error >= threshold (class-balanced, so 0.5 is the natural cut)."""
    text_column: str = "note"
    """The input's note column (training records always use `note`)."""
    id_column: str = "id"
    """The input's id column; a row without one gets `<file>:<row>` as the scorer gives it."""


def feature_spec(features: Features) -> dict[str, Any]:
    """The vectorizers' settings by name (the manifest records these)."""
    # sublinear_tf: a word said ten times is not ten times the evidence; min_df=2 drops
    # one-off tokens (ids, dates), which only memorise training notes.
    word = {"analyzer": "word", "ngram_range": [1, 2], "min_df": 2, "sublinear_tf": True}
    char = {"analyzer": "char_wb", "ngram_range": [3, 5], "min_df": 2, "sublinear_tf": True}
    spec = {"word": {"word": word}, "char": {"char": char}, "both": {"word": word, "char": char}}
    if features not in spec:
        raise BaselineError(f"features must be word, char or both (got {features!r})")
    return spec[features]


def build_vectorizer(features: Features) -> Any:
    from sklearn.feature_extraction.text import TfidfVectorizer
    from sklearn.pipeline import FeatureUnion

    parts = [
        (name, TfidfVectorizer(**{**kw, "ngram_range": tuple(kw["ngram_range"])}))
        for name, kw in feature_spec(features).items()
    ]
    return FeatureUnion(parts)


def _logreg(seed: int) -> Any:
    from sklearn.linear_model import LogisticRegression

    return LogisticRegression(class_weight="balanced", max_iter=2000, C=1.0, random_state=seed)


@dataclass
class Floor:
    """A trained floor: the vectorizer and the error detector. It names no category: a flagged
    note's category is null, as the scorer writes it when no reason is generated (a namer over
    the same features reached 0.32-0.39 category accuracy on 5 categories and tripled the fit)."""

    vectorizer: Any
    detector: Any
    settings: FloorSettings

    def score(self, notes: list[str]) -> list[float]:
        """p_error per note."""
        if not notes:
            return []
        p = self.detector.predict_proba(self.vectorizer.transform(notes))
        return [float(v) for v in p[:, list(self.detector.classes_).index(1)]]


def fit_floor(notes: list[str], errors: list[bool], settings: FloorSettings) -> Floor:
    """Train on notes and whether each has an error."""
    y = [int(e) for e in errors]
    if len(set(y)) < 2:
        only = "error" if y and y[0] else "good"
        raise BaselineError(f"the training records are all {only}: the floor needs both labels")
    vec = build_vectorizer(settings.features)
    detector = _logreg(settings.seed).fit(vec.fit_transform(notes), y)
    return Floor(vec, detector, settings)


# ---------------------------------------------------------------------------------------------
# Reading


@dataclass
class Row:
    """One input row as the scorer would see it (no text kept after scoring)."""

    note_id: str
    source: str
    row: int
    status: str  # ok | invalid_input
    error: str | None
    text: str | None


def input_files(specs: list[str]) -> list[sources.InputFile]:
    """The input files (folders and globs expanded), as the scorer finds them."""
    try:
        return sources.expand_inputs(specs)
    except sources.SourceError as e:
        raise BaselineError(str(e)) from None


def read_input(
    files: list[sources.InputFile], text_column: str, id_column: str
) -> dict[str, list[Row]]:
    """Input rows by file (relative name, as the scorer records `source`); blank lines skipped,
    unreadable rows `invalid_input` with the reason (never the text)."""
    out: dict[str, list[Row]] = {}
    for f in files:
        rows = out.setdefault(f.rel, [])
        for line, obj, problem in sources.iter_file(f):
            if obj is sources.BLANK:
                continue
            rid = obj.get(id_column) if isinstance(obj, dict) else None
            rid = str(rid) if rid is not None and str(rid).strip() else None
            note_id = rid or sources.derive_note_id(f.rel, line)
            if problem is None and isinstance(obj, dict) and text_column not in obj:
                problem = f"missing {text_column!r}"
            if problem is None:
                text = obj.get(text_column) if isinstance(obj, dict) else None
                problem = check_row({"note": text}) if isinstance(obj, dict) else check_row(obj)
                problem = problem.replace("'note'", repr(text_column)) if problem else None
            if problem:
                rows.append(Row(note_id, f.rel, line, "invalid_input", problem, None))
            else:
                rows.append(Row(note_id, f.rel, line, "ok", None, obj[text_column]))
    return out


def read_training(specs: list[str]) -> tuple[list[str], list[bool], dict[str, Any]]:
    """(notes, has an error, counts) of the training records; invalid rows are skipped and
    counted (their positions are logged by `discriminator validate`, not here)."""
    result = read_records(list(specs))
    if not result.records:
        raise BaselineError(f"no valid training records in {', '.join(specs)}")
    notes = [r.note for r in result.records]
    errors = [r.category != GOOD for r in result.records]
    counts = {
        "records": len(notes),
        "good": errors.count(False),
        "error": sum(errors),
        "invalid_skipped": len(result.problems),
    }
    return notes, errors, counts


# ---------------------------------------------------------------------------------------------
# Writing


def _part_rows(rows: list[Row], p: dict[int, float], threshold: float) -> list[dict]:
    """Output rows (`OUTPUT_SCHEMA`) as the scorer writes them with `generate: never`; `p`:
    p_error by position among `rows` (the ok ones)."""
    out = []
    for k, r in enumerate(rows):
        ok = r.status == "ok"
        cat = (GOOD if p[k] < threshold else None) if ok else None
        out.append(
            {
                "note_id": r.note_id,
                "source": r.source,
                "row": r.row,
                "status": r.status,
                "verdict": (GOOD if cat == GOOD else "error") if ok else None,
                "p_error": p.get(k),
                "off_decision": None,  # no decision tokens: a classifier's probability
                "reason": GOOD if cat == GOOD else None,  # no generated reason
                "category": cat,
                "n_tokens": None,
                "truncated": False if ok else None,  # the whole note is read, never cut
                "error": r.error,
            }
        )
    return out


def _part_bytes(rows: list[dict], meta: bytes) -> bytes:
    import pyarrow as pa
    import pyarrow.parquet as pq

    table = pa.Table.from_pylist(rows, schema=OUTPUT_SCHEMA)
    table = table.replace_schema_metadata({PROVENANCE_KEY: meta})
    sink = pa.BufferOutputStream()
    pq.write_table(table, sink)
    return sink.getvalue().to_pybytes()


def package_versions() -> dict[str, str | None]:
    out: dict[str, str | None] = {"python": platform.python_version()}
    for name in ("clinical-discriminator", *PACKAGES):
        try:
            out[name] = version(name)
        except PackageNotFoundError:
            out[name] = None
    return out


def _train_files(specs: list[str]) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    for spec in specs:
        if spec.startswith("synth:"):
            out.append({"source": spec})
            continue
        for f in sources.expand_inputs([spec]):
            out.append({"source": str(f), "sha256": sources.file_sha256(f.uri)})
    return out


def say(text: str) -> None:
    print(f"[floor] {text}", flush=True)


def run_floor(
    train: list[str], inputs: list[str], output: str, settings: FloorSettings | None = None
) -> dict[str, Any]:
    """Train the floor on `train`, score `inputs`, write parts and `_manifest.json` to `output`
    (a new or empty folder); returns the manifest."""
    from discriminator.scoring.write import Output

    s = settings or FloorSettings()
    feature_spec(s.features)  # a bad name stops before any reading
    t0 = time.perf_counter()
    started = time.strftime("%Y-%m-%dT%H:%M:%S%z")
    out = Output(output)
    if out.exists(MANIFEST) or any(n.startswith("part-") for n in out.names()):
        raise BaselineError(f"{output} already holds scores; use a new --output")

    files = input_files(inputs)  # a missing input stops before the training
    notes, errors, train_counts = read_training(train)
    t_read = time.perf_counter()
    say(
        f"training on {train_counts['records']:,} records ({train_counts['good']:,} good, "
        f"{train_counts['error']:,} error; {train_counts['invalid_skipped']} invalid skipped)"
    )
    floor = fit_floor(notes, errors, s)
    del notes
    t_fit = time.perf_counter()
    n_features = len(floor.vectorizer.get_feature_names_out())
    say(f"trained {MODEL} ({s.features}: {n_features:,} features) in {t_fit - t_read:.1f}s")

    by_file = read_input(files, s.text_column, s.id_column)
    n_rows = sum(len(v) for v in by_file.values())
    say(f"scoring {n_rows:,} row(s) in {len(by_file)} file(s)")
    prov = {
        "model": MODEL,
        "scored_with": f"{MODEL} floor (bag of n-grams; no language model)",
        "settings": asdict(s),
        "features": feature_spec(s.features),
        "n_features": n_features,
        "classifier": {"name": "LogisticRegression", "class_weight": "balanced", "C": 1.0},
        "names_category": False,
        "train": {"files": _train_files(train), **train_counts},
        "versions": package_versions(),
    }
    meta = json.dumps(prov).encode()
    statuses: dict[str, int] = {}
    inputs_done: list[dict[str, Any]] = []
    t_score = 0.0
    for k, (rel, rows) in enumerate(sorted(by_file.items())):
        ts = time.perf_counter()
        ok = [i for i, r in enumerate(rows) if r.status == "ok"]
        p = floor.score([rows[i].text or "" for i in ok])
        for r in rows:
            r.text = None  # scored: the note is not kept
            statuses[r.status] = statuses.get(r.status, 0) + 1
        t_score += time.perf_counter() - ts
        part = f"part-{k:05d}"
        rows_out = _part_rows(rows, dict(zip(ok, p)), s.threshold)
        out.write_atomic(f"{part}.parquet", _part_bytes(rows_out, meta))
        inputs_done.append({"source": rel, "rows": len(rows), "part": part})
    ids = Counter(r.note_id for rows in by_file.values() for r in rows)
    dups = sorted(i for i, n in ids.items() if n > 1)
    total = time.perf_counter() - t0
    manifest = {
        "state": "complete",
        "scorer": MODEL,
        "provenance": prov,
        "inputs": inputs_done,
        "rows": n_rows,
        "counts": dict(sorted(statuses.items())),
        "duplicate_note_ids": {"count": len(dups), "examples": dups[:20]},
        "seconds": {
            "read_train": round(t_read - t0, 3),
            "fit": round(t_fit - t_read, 3),
            "score": round(t_score, 3),
            "total": round(total, 3),
        },
        "started": started,
        "finished": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
    }
    out.write_atomic(MANIFEST, json.dumps(manifest, indent=1).encode())
    if dups:
        say(f"warning: {len(dups)} note_id value(s) occur more than once (see {MANIFEST})")
    say(
        f"wrote {len(inputs_done)} part(s), {n_rows:,} row(s) "
        f"({', '.join(f'{k} {v}' for k, v in manifest['counts'].items()) or 'none'}) to {output} "
        f"in {total:.1f}s"
    )
    return manifest


__all__ = [
    "MODEL",
    "BaselineError",
    "Floor",
    "FloorSettings",
    "fit_floor",
    "input_files",
    "read_input",
    "read_training",
    "run_floor",
]
