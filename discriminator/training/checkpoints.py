"""Checkpoints: validating a Hugging Face checkpoint folder and finding the one to resume from.

Shared by the worker (resume, with a fall-back to the newest earlier good checkpoint), the job
(the step a re-run resumes from, named in a failure message) and the export (the final checkpoint).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

ADAPTER_FILES = ("adapter_model.safetensors", "adapter_config.json")


def previous_good_checkpoint(latest: Path, sub: str = "checkpoint") -> Path | None:
    """The newest `checkpoint_*` folder older than `latest` (Ray names them by timestamp) whose
    HF checkpoint passes `check_checkpoint_dir`."""
    for d in sorted(latest.parent.glob("checkpoint_*"), reverse=True):
        if d.name >= latest.name or not d.is_dir():
            continue
        try:
            check_checkpoint_dir(d / sub)
        except RuntimeError:
            continue
        return d / sub
    return None


def check_checkpoint_dir(path: str | Path) -> None:
    """A clear error for a corrupted or partial checkpoint instead of a deep library trace."""
    p = Path(path)
    missing = [f for f in (*ADAPTER_FILES, "trainer_state.json") if not (p / f).is_file()]
    if missing:
        raise RuntimeError(f"checkpoint {p} is incomplete (missing {', '.join(missing)})")
    try:
        json.loads((p / "trainer_state.json").read_text())
    except (OSError, json.JSONDecodeError) as e:
        raise RuntimeError(f"checkpoint {p} has an unreadable trainer_state.json: {e}") from None
    if problem := _safetensors_problem(p / "adapter_model.safetensors"):
        raise RuntimeError(f"checkpoint {p} has a corrupted adapter_model.safetensors ({problem})")


def _safetensors_problem(path: Path) -> str | None:
    """Why a safetensors file is truncated or malformed (header vs. file size), or None."""
    try:
        size = path.stat().st_size
        with open(path, "rb") as fh:
            n = int.from_bytes(fh.read(8), "little")
            if size < 8 or n > size - 8:
                return f"{size} bytes, header says more"
            header = json.loads(fh.read(n))
        ends = [v["data_offsets"][1] for k, v in header.items() if k != "__metadata__"]
    except (OSError, ValueError, TypeError, KeyError, IndexError, AttributeError) as e:
        return f"unreadable header: {type(e).__name__}"
    if size != 8 + n + max(ends, default=0):
        return f"{size} bytes, expected {8 + n + max(ends, default=0)}"
    return None


def latest_checkpoint_step(run_dir: Path) -> tuple[int | None, str | None]:
    """Global step and folder of the checkpoint a re-run of a run on local storage resumes from:
    the latest one in Ray Train's index (`checkpoint_manager_snapshot.json`). A checkpoint folder
    written while the run failed, before Ray registered it, is not in the index and does not
    count. (None, None) when no checkpoint is registered or it cannot be read."""
    try:
        snap = json.loads((run_dir / "checkpoint_manager_snapshot.json").read_text())
        folder = run_dir / snap["latest_checkpoint_result"]["checkpoint_dir_name"]
        state = json.loads((folder / "checkpoint" / "trainer_state.json").read_text())
        return int(state["global_step"]), str(folder)
    except (OSError, ValueError, KeyError, TypeError):
        return None, None


def latest_checkpoint_dir(result: Any) -> Path:
    """The HF checkpoint folder inside the run's latest Ray checkpoint."""
    if result.checkpoint is None:
        raise RuntimeError("training finished without a checkpoint (check run.save_steps)")
    return Path(result.checkpoint.path) / "checkpoint"
