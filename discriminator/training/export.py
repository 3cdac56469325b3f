"""Export (driver): the final adapter folder with its provenance and model card, and the merge."""

from __future__ import annotations

import json
import shutil
import subprocess
import time
from pathlib import Path
from typing import Any

from discriminator import __version__, numbers, prompt
from discriminator.config import TrainConfig, dump_yaml, to_dict
from discriminator.runtime import private_dir
from discriminator.sources import file_sha256
from discriminator.training.checkpoints import ADAPTER_FILES, check_checkpoint_dir
from discriminator.training.objective import FIRST_TOKEN_METRICS


def _git_sha() -> str | None:
    try:
        out = subprocess.run(
            ["git", "rev-parse", "HEAD"],
            cwd=Path(__file__).resolve().parent,
            capture_output=True,
            text=True,
            timeout=5,
        )
        return out.stdout.strip() or None
    except (OSError, subprocess.SubprocessError):
        return None


MODEL_CARD = """# Clinical discharge-note discriminator (LoRA adapter)

Fine-tuned with QLoRA from `{base}` to answer `{{"reason": "good"}}` or a short description of the
error in a hospital discharge note (clinical logic, timeline, PHI/identity, justification,
structure). Prompt version `{prompt_version}`; package `clinical-discriminator` {version}.

- LoRA r={r}, alpha={alpha}, dropout={dropout}, targets {targets}
- base quantization: {quant}; steps: {steps}; final train loss: {train_loss}; eval loss: {eval_loss}
- training records: {n_train}; evaluation records: {n_eval}
- on the evaluation records, read from the answer's first token as scoring does (p_error >= 0.5):
  balanced accuracy {bacc}, AUROC {auroc}, category right for {cat_acc} of the detected errors

```python
from transformers import AutoModelForCausalLM, AutoTokenizer
from peft import PeftModel

model = AutoModelForCausalLM.from_pretrained("{base}", device_map="auto")
model = PeftModel.from_pretrained(model, "{out}")
tokenizer = AutoTokenizer.from_pretrained("{out}")
```

Score note archives with `python -m ray_jobs.score --adapter {out} --input NOTES --output DIR`.
"""


def export_adapter(
    cfg: TrainConfig,
    checkpoint_dir: str | Path,
    out_dir: str | Path,
    metrics: dict[str, Any],
    data_stats: dict[str, Any],
) -> Path:
    """Write the final adapter directory: safetensors adapter, tokenizer + chat template,
    resolved config, prompt version, metrics and a model card."""
    from discriminator.modeling import load_tokenizer

    src, out = Path(checkpoint_dir), Path(out_dir)
    check_checkpoint_dir(src)
    private = private_dir(out)
    for name in ADAPTER_FILES:
        shutil.copy2(src / name, out / name)
    load_tokenizer(cfg.model.name_or_path).save_pretrained(out)
    (out / "train_config.yaml").write_text(dump_yaml(cfg))
    state = json.loads((src / "trainer_state.json").read_text())
    history = state.get("log_history", [])
    train_losses = [h["loss"] for h in history if "loss" in h]
    evals = [h for h in history if "eval_loss" in h]
    eval_losses = [h["eval_loss"] for h in evals]
    summary = {
        "global_step": state.get("global_step"),
        "final_train_loss": train_losses[-1] if train_losses else None,
        "final_eval_loss": eval_losses[-1] if eval_losses else None,
        "best_eval_loss": min(eval_losses) if eval_losses else None,
        # first-token metrics on the evaluation notes at the last evaluation (threshold 0.5)
        **{
            f"final_eval_{k}": evals[-1].get(f"eval_{k}") if evals else None
            for k in FIRST_TOKEN_METRICS
        },
        "num_input_tokens_seen": state.get("num_input_tokens_seen"),
        "data": data_stats,
        "ray_metrics": {k: v for k, v in metrics.items() if isinstance(v, (int, float, str))},
        "log_history": history,
    }
    (out / "metrics.json").write_text(json.dumps(summary, indent=2))
    provenance = {
        "prompt_version": prompt.PROMPT_VERSION,
        "package_version": __version__,
        "git_sha": _git_sha(),
        "base_model": cfg.model.name_or_path,
        "adapter_sha256": file_sha256(out / "adapter_model.safetensors"),
        "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "config": to_dict(cfg),
    }
    (out / "discriminator.json").write_text(json.dumps(provenance, indent=2))

    def fmt(x: Any) -> str:
        return numbers.fmt(x, ".4f")

    (out / "README.md").write_text(
        MODEL_CARD.format(
            base=cfg.model.name_or_path,
            prompt_version=prompt.PROMPT_VERSION,
            version=__version__,
            r=cfg.lora.r,
            alpha=cfg.lora.alpha,
            dropout=cfg.lora.dropout,
            targets=", ".join(cfg.lora.target_modules),
            quant=cfg.model.quantization,
            steps=summary["global_step"],
            train_loss=fmt(summary["final_train_loss"]),
            eval_loss=fmt(summary["final_eval_loss"]),
            bacc=fmt(summary["final_eval_balanced_accuracy"]),
            auroc=fmt(summary["final_eval_auroc"]),
            cat_acc=fmt(summary["final_eval_category_accuracy"]),
            n_train=data_stats.get("train_records"),
            n_eval=data_stats.get("eval_records"),
            out=out,
        )
    )
    if private:
        _private_files(out)
    return out


def merge_adapter(
    base: str, adapter_dir: str | Path, out_dir: str | Path, dtype: str = "bfloat16"
) -> Path:
    """Export base + adapter merged into plain weights (bf16 by default), safetensors."""
    from peft import PeftModel
    from transformers import AutoModelForCausalLM

    from discriminator.modeling import load_tokenizer, resolve_model, torch_dtype

    model = AutoModelForCausalLM.from_pretrained(
        resolve_model(base), dtype=torch_dtype(dtype), use_safetensors=True, trust_remote_code=False
    )
    merged = PeftModel.from_pretrained(model, str(adapter_dir)).merge_and_unload()
    out = Path(out_dir)
    private = private_dir(out)
    merged.save_pretrained(out, safe_serialization=True)
    load_tokenizer(base).save_pretrained(out)
    if private:
        _private_files(out)
    return out


def _private_files(folder: Path) -> None:
    for f in folder.iterdir():
        if f.is_file() and not f.is_symlink():
            f.chmod(0o600)
