"""Labelled record generation and patient-disjoint train/eval/test splits.

Record `i` of seed `s` depends only on (s, i, length, its planned category): `generate_records(100)`
is a prefix of `generate_records(200)`, and any record can be rebuilt from its metadata (the
checker does this to run the story-level checks on a record).
"""

from __future__ import annotations

import json
import math
import random
from dataclasses import asdict
from pathlib import Path
from typing import Any

from ..numbers import percentiles
from ..prompt import CATEGORIES, GOOD
from .check import check_story, check_text
from .inject import ERROR_KINDS, inject
from .render import pick_style, render
from .story import HARD_NEGATIVES, Story, make_patient
from .story_build import build_story

LENGTHS = ("realistic", "short")
_BLOCK = 20  # errors are placed exactly round(error_rate * 20) per block of 20 records
_READMIT = 0.15  # share of records that are another admission of an earlier patient


def _patient_index(seed: int, i: int) -> int:
    # Follow readmission links back to the first admission; each link looks 1-5 records back.
    while i > 0:
        rng = random.Random(f"synth:{seed}:{i}:readmit")
        if rng.random() >= _READMIT:
            return i
        i = max(0, i - rng.randint(1, 5))
    return i


def plan(n: int, seed: int, error_rate: float, categories: list[str]) -> list[str | None]:
    """Category of each record (None = good): exact error counts per block, round-robin
    categories over error records, error positions shuffled within each block."""
    out: list[str | None] = []
    j = 0
    for b in range(math.ceil(n / _BLOCK)):
        k = math.floor((b + 1) * _BLOCK * error_rate + 1e-9) - math.floor(
            b * _BLOCK * error_rate + 1e-9
        )
        pos = set(random.Random(f"synth:{seed}:plan:{b}").sample(range(_BLOCK), k))
        for t in range(_BLOCK):
            if t in pos:
                out.append(categories[j % len(categories)])
                j += 1
            else:
                out.append(None)
    return out[:n]


def build_record(
    seed: int, i: int, length: str, category: str | None, kinds: frozenset[str] | None = None
) -> tuple[dict[str, Any], Story]:
    """Record `i` and the story it was rendered from (the corrupted story for story errors)."""
    rng = random.Random(f"synth:{seed}:{i}")
    pidx = _patient_index(seed, i)
    pid = f"synth-{seed}-p{pidx}"
    patient = make_patient(random.Random(f"synth:{seed}:patient:{pidx}"), pid)
    hn = rng.choice(HARD_NEGATIVES) if rng.random() < 0.35 else None
    story = build_story(rng, patient, length, hn)
    style = pick_style(rng)
    meta: dict[str, Any] = {
        "seed": seed,
        "index": i,
        "length": length,
        "style": asdict(style),
        "hard_negatives": list(story.hard_negatives),
    }
    if category is None:
        note, reason, kind = render(story, style), GOOD, GOOD
    else:
        inj = inject(story, style, category, random.Random(f"synth:{seed}:{i}:inject"), kinds)
        for attempt in range(1, 8 if kinds else 1):  # a chosen kind may not apply at first draw
            if inj is not None:
                break
            rng_t = random.Random(f"synth:{seed}:{i}:inject:{attempt}")
            inj = inject(story, style, category, rng_t, kinds)
        if inj is None:  # every category has kinds that always apply; this is a bug
            which = f"{category} error of kinds {sorted(kinds)}" if kinds else f"{category} error"
            raise RuntimeError(f"no {which} applies to record synth-{seed}-{i}")
        note, reason, kind = inj.note, inj.reason, inj.kind
        story = inj.meta.pop("_story", story)
        meta.update(inj.meta)
    rec = {
        "id": f"synth-{seed}-{i}",
        "patient_id": pid,
        "note": note,
        "reason": reason,
        "category": category or GOOD,
        "kind": kind,
        "meta": meta,
    }
    return rec, story


def _validate(
    n: int,
    error_rate: float,
    categories: list[str] | None,
    length: str,
    kinds: list[str] | None = None,
) -> list[str]:
    """The categories to inject (those of `kinds` when kinds are given)."""
    if kinds:
        bad = [k for k in kinds if k not in ERROR_KINDS]
        if bad:
            raise ValueError(f"unknown error kinds {bad}; valid: {sorted(ERROR_KINDS)}")
        of_kinds = sorted({ERROR_KINDS[k] for k in kinds}, key=CATEGORIES.index)
        if categories and set(categories) != set(of_kinds):
            raise ValueError(f"kinds {list(kinds)} are of categories {of_kinds}, not {categories}")
        categories = of_kinds
    if n < 0:
        raise ValueError(f"n must be >= 0, got {n}")
    if not 0.0 <= error_rate <= 1.0:
        raise ValueError(f"error_rate must be in [0, 1], got {error_rate}")
    if length not in LENGTHS:
        raise ValueError(f"length must be one of {LENGTHS}, got {length!r}")
    cats = list(categories) if categories else list(CATEGORIES)
    bad = [c for c in cats if c not in CATEGORIES]
    if bad:
        raise ValueError(f"unknown categories {bad}; valid: {list(CATEGORIES)}")
    return cats


def generate_records(
    n: int,
    seed: int = 0,
    error_rate: float = 0.5,
    categories: list[str] | None = None,
    length: str = "realistic",
    kinds: list[str] | None = None,
) -> list[dict[str, Any]]:
    """`n` labelled synthetic discharge notes (see the module docstring of the package).
    `kinds` restricts the injected errors to those kinds (and so to their categories)."""
    cats = _validate(n, error_rate, categories, length, kinds)
    only = frozenset(kinds) if kinds else None
    return [
        build_record(seed, i, length, c, only)[0]
        for i, c in enumerate(plan(n, seed, error_rate, cats))
    ]


def check_consistency(record_or_story: dict[str, Any] | Story) -> list[str]:
    """Problems in a record or story; empty for a good note.

    A Story gets the full story-level check. A record gets the text-level check, plus the
    story-level one when the record can be rebuilt from its metadata and still has the same
    text (i.e. it was generated here and not edited since).
    """
    if isinstance(record_or_story, Story):
        return check_story(record_or_story)
    rec = record_or_story
    problems = check_text(rec["note"])
    meta = rec.get("meta") or {}
    if {"seed", "index", "length"} <= meta.keys():
        cat = rec.get("category")
        rebuilt, story = build_record(
            meta["seed"], meta["index"], meta["length"], None if cat in (None, GOOD) else cat
        )
        if rebuilt["note"] == rec["note"]:
            problems += [p for p in check_story(story) if p not in problems]
    return problems


def _word_counts(values: list[int]) -> dict[str, int]:
    """min, nearest-rank p5..p95, max."""
    if not values:
        return {}
    inner = percentiles(values, (5, 25, 50, 75, 95), method="inverted_cdf")
    return {"min": min(values), **inner, "max": max(values)}


def stats_of(records: list[dict[str, Any]]) -> dict[str, Any]:
    cats: dict[str, int] = {}
    kinds: dict[str, int] = {}
    hns: dict[str, int] = {}
    for r in records:
        cats[r["category"]] = cats.get(r["category"], 0) + 1
        kinds[r["kind"]] = kinds.get(r["kind"], 0) + 1
        for h in r["meta"].get("hard_negatives", []):
            if r["category"] == GOOD:
                hns[h] = hns.get(h, 0) + 1
    return {
        "n": len(records),
        "categories": dict(sorted(cats.items())),
        "kinds": dict(sorted(kinds.items())),
        "hard_negatives": dict(sorted(hns.items())),
        "words": _word_counts([len(r["note"].split()) for r in records]),
    }


def write_splits(
    out_dir: str | Path,
    n: int,
    seed: int = 0,
    error_rate: float = 0.5,
    categories: list[str] | None = None,
    length: str = "realistic",
    fractions: tuple[float, float, float] = (0.8, 0.1, 0.1),
    kinds: list[str] | None = None,
) -> dict[str, Any]:
    """Write train/eval/test JSONL (patient-disjoint) and stats.json; return the stats."""
    if len(fractions) != 3 or min(fractions) < 0 or abs(sum(fractions) - 1) > 1e-6:
        raise ValueError(
            f"fractions must be three non-negative numbers summing to 1, got {fractions}"
        )
    records = generate_records(n, seed, error_rate, categories, length, kinds)
    by_patient: dict[str, list[dict[str, Any]]] = {}
    for r in records:
        by_patient.setdefault(r["patient_id"], []).append(r)
    pids = sorted(by_patient)
    random.Random(f"synth:{seed}:split").shuffle(pids)
    # Fill splits in turn up to their share of records; readmissions travel with their patient.
    bounds = [fractions[0] * n, (fractions[0] + fractions[1]) * n]
    splits: dict[str, list[dict[str, Any]]] = {"train": [], "eval": [], "test": []}
    done = 0
    for pid in pids:
        name = "train" if done < bounds[0] else "eval" if done < bounds[1] else "test"
        splits[name].extend(by_patient[pid])
        done += len(by_patient[pid])
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    stats: dict[str, Any] = {
        "seed": seed,
        "n": n,
        "error_rate": error_rate,
        "length": length,
        "categories": _validate(n, error_rate, categories, length, kinds),
        "kinds": sorted(kinds) if kinds else None,
        "fractions": list(fractions),
        "splits": {},
    }
    for name, recs in splits.items():
        recs.sort(key=lambda r: r["meta"]["index"])
        with open(out / f"{name}.jsonl", "w", encoding="utf-8") as fh:
            for r in recs:
                fh.write(json.dumps(r, ensure_ascii=False) + "\n")
        stats["splits"][name] = stats_of(recs)
    stats["all"] = stats_of(records)
    with open(out / "stats.json", "w", encoding="utf-8") as fh:
        json.dump(stats, fh, indent=2)
        fh.write("\n")
    return stats
