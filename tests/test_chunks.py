"""Chunk sizes for the scorer actors, the scorer's sub-batches and the progress line (no Ray).

A small input cut with `io.chunk_rows` gave one chunk, so of two scorer actors one stood idle;
a sub-batch of 64 notes on a slow CPU model kept `rows scored` at 0 for ~90 s; the progress
line repeated the same figures every 5 s. The job-level run is in test_scoring.py
(`test_small_file_is_cut_for_every_actor_and_later_runs_keep_its_chunks`).
"""

from __future__ import annotations

import csv
import gzip
import logging
import time
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from benchmarks.archive import make_notes
from discriminator import scoring
from discriminator.config import ScoreConfig, from_dict, to_dict
from discriminator.scoring.write import _Progress

COLS = ["note", "id"]


def write_csv(path: Path, notes: list[str], start: int = 0) -> Path:
    with open(path, "w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["id", "note"])
        for k, note in enumerate(notes):
            w.writerow([f"n{start + k}", note])
    return path


def read_all(chunks: list[scoring.Chunk]) -> list[tuple[int, str]]:
    got = []
    for c in chunks:
        item = {**c.__dict__, "header": list(c.header)}
        got += [(n, o["id"]) for n, o, _ in scoring.read_chunk(item, COLS)]
    return got


# ---------------------------------------------------------------------------------------------
# The chunk size


def test_chunk_rows_for_gives_every_actor_a_chunk_within_bounds():
    f = scoring.chunk_rows_for
    assert f(925, 1, 2, 1024) == 463  # MEDEC's test split on 2 actors: 463 + 462
    assert f(925, 1, 1, 1024) == 1024  # one actor: as configured
    assert f(3000, 3, 3, 1024) == 1024  # enough chunks already
    assert f(3000, 3, 4, 1024) == 750  # fewer chunks than actors: shared evenly
    assert f(925, 1, 2, 16) == 16  # io.chunk_rows stays the most
    assert f(20, 1, 2, 1024) == 1024  # 20 rows: not 16 + 4 (the floor)
    assert f(40, 1, 2, 1024) == 20
    assert f(925, 1, 1000, 1024) == 17  # many actors: not 925 one-row chunks
    assert f(0, 0, 2, 1024) == 1024
    for records in range(1, 5000, 53):
        for actors in (1, 2, 3, 8, 64, 500):
            chunks = -(-records // 1024)
            size = f(records, chunks, actors, 1024)
            assert min(1024, scoring.MIN_CHUNK_ROWS) <= size <= 1024, (records, actors)
            if chunks >= actors:
                assert size == 1024
                continue
            # as many chunks as actors that can each get MIN_CHUNK_ROWS rows (ceil(r / s) may
            # lose a few of many actors, at most 1 in MIN_CHUNK_ROWS + 1)
            want = min(actors, max(1, records // scoring.MIN_CHUNK_ROWS))
            got = -(-records // size)
            assert got >= want * scoring.MIN_CHUNK_ROWS / (scoring.MIN_CHUNK_ROWS + 1)
            if actors <= scoring.MIN_CHUNK_ROWS:
                assert got >= want, (records, actors, size)


@pytest.mark.parametrize("kind", ["csv", "csv.gz", "parquet"])
def test_a_new_output_is_cut_for_the_actors_and_a_recorded_one_is_not(kind, tmp_path):
    """925 rows on 2 actors: two chunks that read every row once (plain text by byte range, a
    gzip file and a one-row-group parquet through staged pieces); the same files planned as a
    recorded output's keep the size given (the recorded one), whatever the actors."""
    notes = make_notes(925, seed=1, words=(5, 12))
    src = write_csv(tmp_path / "n.csv", notes)
    path = tmp_path / f"n.{kind}"
    if kind == "csv.gz":
        path.write_bytes(gzip.compress(src.read_bytes()))
    elif kind == "parquet":
        ids = [f"n{k}" for k in range(925)]
        pq.write_table(pa.table({"id": ids, "note": notes}), path)  # one row group of 925
    files = scoring.expand_inputs([str(path)])
    out = scoring.Output(str(tmp_path / "out"))
    entries, _, size = scoring.plan_inputs(files, None, 1024, out, False, "out", actors=2)
    assert size == 463 and [c[1] for c in entries[0]["chunks"]] == [463, 462]
    chunks = scoring.chunks_of(entries, out)
    for e in entries:
        if e["layout"] == "staged":
            scoring.stage(e, chunks, out, None, size)
    assert all(bool(c.staged) == (kind != "csv") for c in chunks)
    assert read_all(chunks) == [(k + 1, f"n{k}") for k in range(925)]

    other = scoring.Output(str(tmp_path / "one-actor"))
    _, _, one = scoring.plan_inputs(files, None, 1024, other, False, "o", actors=1)
    assert one == 1024
    again, _, kept = scoring.plan_inputs(files, entries, 463, out, False, "o", actors=None)
    assert kept == 463 and again[0]["chunks"] == entries[0]["chunks"]


def test_files_together_share_the_actors(tmp_path):
    """Several small files: the total decides; each file keeps its own chunks."""
    for k, n in enumerate((300, 200, 100)):
        write_csv(tmp_path / f"f{k}.csv", make_notes(n, seed=k, words=5), start=1000 * k)
    files = scoring.expand_inputs([str(tmp_path)])
    out = scoring.Output(str(tmp_path.parent / f"{tmp_path.name}-out"))
    entries, _, size = scoring.plan_inputs(files, None, 1024, out, False, "o", actors=8)
    assert size == 75  # ceil(600 / 8)
    counts = [[c[1] for c in e["chunks"]] for e in entries]
    assert counts == [[75] * 4, [75, 75, 50], [75, 25]]
    assert read_all(scoring.chunks_of(entries, out)) == [
        (r + 1, f"n{1000 * k + r}") for k, n in enumerate((300, 200, 100)) for r in range(n)
    ]


def test_a_grown_file_is_cut_with_the_recorded_size(tmp_path):
    """--update of an output cut at 463: the appended rows follow in chunks of 463."""
    path = write_csv(tmp_path / "n.csv", make_notes(925, seed=2, words=5))
    files = scoring.expand_inputs([str(path)])
    out = scoring.Output(str(tmp_path / "out"))
    entries, _, size = scoring.plan_inputs(files, None, 1024, out, False, "o", actors=2)
    with open(path, "a", newline="") as fh:
        csv.writer(fh).writerows([[f"n{925 + k}", "more"] for k in range(600)])
    grown, news, kept = scoring.plan_inputs(files, entries, size, out, True, "o")
    assert kept == 463 and news["grown"] == 1
    assert [(c[0], c[1]) for c in grown[0]["chunks"]] == [
        (1, 463), (464, 462), (926, 463), (1389, 137)
    ]  # fmt: skip


# ---------------------------------------------------------------------------------------------
# The scorer's sub-batches


class SlowForward(scoring.Scorer):
    """The scorer around a forward that takes `per_row` seconds a row (no model, no tokenizer),
    reporting to a list instead of the progress actor."""

    def __init__(self, per_row: float, **scoring_sets):
        cfg = ScoreConfig()
        cfg.scoring.generate = "never"
        for k, v in scoring_sets.items():
            setattr(cfg.scoring, k, v)
        self.cfg = from_dict(ScoreConfig, to_dict(cfg))
        self.per_row, self.sizes, self.reports = per_row, [], []
        self.progress = self  # `add.remote(n)` below
        self.add = self
        self.unreported, self.reported_at, self.s_per_token = 0, 0.0, None
        self.REPORT_EVERY_S = 0.0

    def remote(self, n: int) -> None:
        self.reports.append(n)

    def score_batch(self, seqs):
        self.sizes.append(len(seqs))
        time.sleep(self.per_row * len(seqs))
        return [
            {"p_error": 0.1, "off_decision": 0.0, "verdict": "good", "reason": "good",
             "category": "good"}
            for _ in seqs
        ]  # fmt: skip


def _prepared(n: int) -> pa.Table:
    rows = [{"_part": "p", "_row": k + 1, "note_id": f"n{k}", "status": "pending", "error": None,
             "input_ids": [7] * (100 + k % 5), "n_tokens": 100 + k % 5, "truncated": False,
             "note": None} for k in range(n)]  # fmt: skip
    return pa.Table.from_pylist(rows, schema=scoring.PREP_SCHEMA)


def test_a_slow_forward_gets_short_sub_batches_that_report_as_they_go():
    """64 rows that one sub-batch would take whole (max_batch_size 64, a large token budget):
    at 20 ms a row and a 0.1 s aim, rows reach the counter a few at a time, every row once."""
    scorer = SlowForward(0.02, max_batch_size=64, batch_tokens=1 << 20, rows_per_call=256)
    scorer.BATCH_SECONDS = 0.1
    out = scorer(_prepared(64)).to_pylist()
    assert [r["status"] for r in out] == ["ok"] * 64 and sum(scorer.reports) == 64
    assert scorer.sizes[0] == scorer.PROBE_ROWS  # before any speed is known
    assert len(scorer.sizes) >= 8 and max(scorer.sizes[1:]) <= 10, scorer.sizes
    assert len(scorer.reports) == len(scorer.sizes)  # one report per sub-batch here


def test_a_fast_forward_keeps_the_configured_sub_batches():
    scorer = SlowForward(0.0, max_batch_size=16, batch_tokens=1 << 20, rows_per_call=256)
    scorer(_prepared(4))  # the probe: the speed is known from here on
    assert scorer.sizes == [4] and scorer.s_per_token is not None
    scorer.sizes.clear()
    scorer(_prepared(64))
    assert scorer.sizes == [16, 16, 16, 16]
    # the token budget still cuts as before (bucket_batches)
    scorer = SlowForward(0.0, max_batch_size=64, batch_tokens=420, rows_per_call=256)
    scorer.s_per_token = 1e-9
    scorer(_prepared(12))
    lengths = [100 + k % 5 for k in range(12)]
    assert scorer.sizes == [len(b) for b in scoring.bucket_batches(lengths, 420, 64)]


# ---------------------------------------------------------------------------------------------
# The progress line


def test_progress_says_only_changed_figures_and_not_more_often_than_every(caplog):
    caplog.set_level(logging.INFO, logger="discriminator.scoring.write")
    p = _Progress(total=100, parts=2, every=0.5)

    def lines() -> list[str]:
        return [r.getMessage().split(", ")[0:2] for r in caplog.records]

    time.sleep(0.6)
    p.show()  # nothing scored yet: no line (the console's heartbeat covers the wait)
    assert lines() == []
    p.scored = 10
    p.show()
    p.scored = 20
    p.show()  # too soon after the last line: said on the next poll
    assert lines() == [["10/100 rows scored", "0/2 parts written"]]
    time.sleep(0.6)
    p.show()
    time.sleep(0.6)
    p.show()  # unchanged: not said again
    p.rows(50)  # rows reached the driver
    p.part()  # too soon: said at the end
    p.close()  # the last figures, once
    p.close()
    assert lines() == [
        ["10/100 rows scored", "0/2 parts written"],
        ["20/100 rows scored", "0/2 parts written"],
        ["50/100 rows scored", "0/2 parts written"],
        ["50/100 rows scored", "1/2 parts written"],
    ]
