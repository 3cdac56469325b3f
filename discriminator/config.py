"""Typed job configs: nested dataclasses, loaded from YAML, overridden by `--set a.b=c`.

Precedence is default < YAML < command line. Unknown keys are errors that list the valid ones,
and values are type-checked (PyYAML reads `2e-4` as a string; a float field accepts it, a typo
such as `2e-4x` is an error). Ray passes configs to workers as dicts: send `to_dict(cfg)` and
rebuild with `from_dict(TrainConfig, d)` on the worker.
"""

from __future__ import annotations

import dataclasses
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, TypeVar

import yaml

from discriminator.prompt import DECISION_THRESHOLD

T = TypeVar("T")

SEVEN_PROJECTIONS = ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"]


class ConfigError(ValueError):
    """A config file or override that does not fit its dataclass."""


# ---------------------------------------------------------------------------------------------
# Sections


@dataclass
class ModelConfig:
    name_or_path: str = "meta-llama/Llama-3.1-8B-Instruct"
    """Hub id or local directory of the base model (tokenizer is loaded from the same place)."""
    quantization: Literal["nf4", "none"] = "nf4"
    """nf4: 4-bit QLoRA base (bitsandbytes); none: base weights in `dtype` (bf16 LoRA)."""
    double_quant: bool = True
    """Quantize the 4-bit quantization constants too (saves ~0.4 bit/parameter)."""
    dtype: Literal["bfloat16", "float16", "float32"] = "bfloat16"
    """Compute dtype of the 4-bit layers and dtype of unquantized weights."""
    attn_implementation: str = "sdpa"
    """Attention kernel passed to transformers (sdpa, eager, flash_attention_2)."""


@dataclass
class LoraSection:
    r: int = 16
    """LoRA rank."""
    alpha: int = 32
    """LoRA scaling numerator (scale = alpha / r)."""
    dropout: float = 0.05
    """Dropout on the LoRA input."""
    target_modules: list[str] = field(default_factory=lambda: list(SEVEN_PROJECTIONS))
    """Linear layers that get adapters: all attention and MLP projections by default."""


@dataclass
class DataConfig:
    train_path: str = "data/train.jsonl"
    """Training records: JSONL, CSV/TSV (plain, .gz, .zst) or parquet with the note text
    (`text_column`) and `reason` columns."""
    eval_path: str | None = "data/eval.jsonl"
    """Evaluation records (same format); null to skip evaluation."""
    on_invalid: Literal["error", "skip"] = "error"
    """error: stop before training and list every bad row; skip: drop and count them."""
    text_column: str = "note"
    """Column (JSONL key) holding the note text, as scoring's `io.text_column` (MIMIC: text)."""
    id_column: str = "id"
    """Column holding the note id, as scoring's `io.id_column` (MIMIC: note_id); rows without
    one get `<file>:<line>`."""
    max_prompt_tokens: int = 3072
    """Prompt budget (system prompt + note); longer notes are cut in the middle."""
    max_train_samples: int | None = None
    """Use only the first N training records (smoke runs)."""
    max_eval_samples: int | None = None
    """Use only the first N evaluation records."""


@dataclass
class OptimConfig:
    num_train_epochs: float = 4.0
    """Passes over the training set (the seed's default)."""
    max_steps: int = -1
    """Stop after this many optimizer steps; -1 means use num_train_epochs."""
    learning_rate: float = 1e-4
    """Peak learning rate."""
    per_device_train_batch_size: int = 1
    """Notes per worker per micro-batch."""
    gradient_accumulation_steps: int = 16
    """Micro-batches per optimizer step."""
    per_device_eval_batch_size: int = 1
    """Notes per worker per evaluation batch."""
    warmup_ratio: float = 0.03
    """Fraction of steps with linear warm-up, in [0, 1)."""
    lr_scheduler_type: str = "cosine"
    """transformers scheduler name."""
    weight_decay: float = 0.0
    """AdamW weight decay."""
    max_grad_norm: float = 1.0
    """Gradient clipping norm."""
    gradient_checkpointing: bool = True
    """Non-reentrant activation checkpointing: about -35% memory, +33% compute."""
    optim: str = "paged_adamw_8bit"
    """Optimizer name for transformers (paged_adamw_8bit on GPU; adamw_torch on CPU)."""
    decision_weight: float = 1.0
    """Loss weight of the answer's first token, the decision (good or the error's category);
    1 is plain SFT, where it is one of ~20-40 answer tokens."""
    seed: int = 42
    """Seed for data order, LoRA init and dropout."""


@dataclass
class RunConfig:
    output_dir: str = "runs/llama3-discriminator"
    """Where the final adapter directory is written (a job submitted with `ray job submit`
    needs an absolute path on storage every node sees)."""
    storage_path: str = "runs/ray"
    """Ray Train storage (a shared filesystem on a cluster, absolute under `ray job submit`):
    checkpoints live here."""
    name: str = "discriminator-train"
    """Run name; re-running with the same name resumes from its last checkpoint."""
    num_workers: int | Literal["auto"] = "auto"
    """Ray Train workers; auto: one per GPU the cluster has (with use_gpu false, one per node),
    and in a sweep one per trial, so that the trials fill the cluster. With `elastic`, the most
    workers."""
    elastic: bool = False
    """Elastic training (Ray Train V2, `ScalingConfig(num_workers=(min_workers, num_workers))`):
    start with as many workers as the cluster can place, at least `min_workers`; when a node is
    lost, continue on the remaining workers from the last checkpoint (and grow again when
    resources return). Off: exactly `num_workers`, and a lost node fails the run with a clear
    message once they cannot all be placed again; re-running resumes from the checkpoint."""
    min_workers: int = 1
    """Fewest workers an elastic run trains on (1 <= min_workers <= num_workers)."""
    use_gpu: bool = True
    """Place each worker on a GPU."""
    cpus_per_worker: float = 1.0
    """CPUs reserved per worker."""
    max_failures: int = 3
    """Worker-group restarts from the last checkpoint before the run fails."""
    save_steps: int = 50
    """Checkpoint every N optimizer steps."""
    eval_steps: int = 50
    """Evaluate every N optimizer steps (also the checkpoint cadence when eval is on)."""
    logging_steps: int = 10
    """Log loss, tokens/s and ETA every N steps."""
    num_to_keep: int = 2
    """Checkpoints kept (best by eval loss when evaluating, else latest)."""
    merge: bool = False
    """Also export a merged bf16 model next to the adapter (`<output_dir>-merged`)."""


@dataclass
class TrainConfig:
    """Config of `ray_jobs.train`: QLoRA SFT on Ray Train."""

    model: ModelConfig = field(default_factory=ModelConfig)
    lora: LoraSection = field(default_factory=LoraSection)
    data: DataConfig = field(default_factory=DataConfig)
    optim: OptimConfig = field(default_factory=OptimConfig)
    run: RunConfig = field(default_factory=RunConfig)


# ---------------------------------------------------------------------------------------------
# Loading


def to_dict(cfg: Any) -> dict[str, Any]:
    return dataclasses.asdict(cfg)


def _field_types(cls: type) -> dict[str, Any]:
    return typing.get_type_hints(cls)


def _coerce(value: Any, tp: Any, where: str) -> Any:
    origin = typing.get_origin(tp)
    args = typing.get_args(tp)
    if tp is Any:
        return value
    if origin in (typing.Union, types.UnionType):
        if value is None and type(None) in args:
            return None
        errors = []
        for arg in args:
            if arg is type(None):
                continue
            try:
                return _coerce(value, arg, where)
            except ConfigError as e:
                errors.append(str(e))
        raise ConfigError(errors[0] if errors else f"{where}: cannot be null")
    if origin is Literal:
        if value not in args:
            raise ConfigError(f"{where}: {value!r} is not one of {list(args)}")
        return value
    if origin is list:
        if not isinstance(value, list):
            raise ConfigError(f"{where}: expected a list, got {type(value).__name__}")
        return [_coerce(v, args[0] if args else Any, f"{where}[{i}]") for i, v in enumerate(value)]
    if origin is dict:
        if not isinstance(value, dict):
            raise ConfigError(f"{where}: expected a mapping, got {type(value).__name__}")
        return dict(value)
    if dataclasses.is_dataclass(tp):
        if isinstance(value, tp):
            return value
        if not isinstance(value, dict):
            raise ConfigError(f"{where}: expected a mapping, got {type(value).__name__}")
        return from_dict(tp, value, where)
    if tp is bool:
        if isinstance(value, bool):
            return value
        raise ConfigError(f"{where}: expected true/false, got {value!r}")
    if tp is int:
        if isinstance(value, bool):
            raise ConfigError(f"{where}: expected an integer, got {value!r}")
        if isinstance(value, int):
            return value
        if isinstance(value, float) and value.is_integer():
            return int(value)
        if isinstance(value, str):
            try:
                return int(value)
            except ValueError:
                pass
        raise ConfigError(f"{where}: expected an integer, got {value!r}")
    if tp is float:
        if isinstance(value, bool):
            raise ConfigError(f"{where}: expected a number, got {value!r}")
        if isinstance(value, (int, float)):
            return float(value)
        if isinstance(value, str):
            try:
                return float(value)  # PyYAML reads `2e-4` as a string
            except ValueError:
                pass
        raise ConfigError(f"{where}: expected a number, got {value!r}")
    if tp is str:
        if isinstance(value, str):
            return value
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return str(value)
        raise ConfigError(f"{where}: expected a string, got {type(value).__name__}")
    raise ConfigError(f"{where}: unsupported type {tp!r}")


def from_dict(cls: type[T], data: dict[str, Any], where: str = "") -> T:
    """Build a dataclass from a (nested) mapping; unknown keys and wrong types are errors."""
    if not isinstance(data, dict):
        raise ConfigError(f"{where or cls.__name__}: expected a mapping")
    hints = _field_types(cls)
    valid = [f.name for f in dataclasses.fields(cls)]
    kwargs = {}
    for key, value in data.items():
        path = f"{where}.{key}" if where else str(key)
        if key not in valid:
            raise ConfigError(f"unknown key {path!r}; valid keys here: {', '.join(valid)}")
        kwargs[key] = _coerce(value, hints[key], path)
    return cls(**kwargs)


def _set_path(tree: dict[str, Any], dotted: str, value: Any) -> None:
    parts = dotted.split(".")
    node = tree
    for p in parts[:-1]:
        child = node.get(p)
        if not isinstance(child, dict):
            child = {}
            node[p] = child
        node = child
    node[parts[-1]] = value


def _deep_merge(base: dict[str, Any], extra: dict[str, Any]) -> dict[str, Any]:
    out = dict(base)
    for k, v in extra.items():
        if isinstance(v, dict) and isinstance(out.get(k), dict):
            out[k] = _deep_merge(out[k], v)
        else:
            out[k] = v
    return out


def parse_override(item: str) -> tuple[str, Any]:
    """`a.b=c` -> ("a.b", c) with c parsed as YAML (numbers, bools, lists, null)."""
    if "=" not in item:
        raise ConfigError(f"--set expects key=value, got {item!r}")
    key, raw = item.split("=", 1)
    key = key.strip()
    if not key:
        raise ConfigError(f"--set expects key=value, got {item!r}")
    try:
        value = yaml.safe_load(raw) if raw.strip() else ""
    except yaml.YAMLError:
        value = raw
    return key, value


def load_config(
    cls: type[T],
    path: str | Path | None = None,
    overrides: list[str] | None = None,
    extra: dict[str, Any] | None = None,
) -> T:
    """default < YAML file < `extra` (mapped CLI flags) < `overrides` (`--set a.b=c`)."""
    tree = config_tree(path, overrides, extra)
    try:
        return from_dict(cls, tree)
    except ConfigError as e:
        where = f"{path}: " if path else ""
        raise ConfigError(f"{where}{e}") from None


def config_tree(
    path: str | Path | None = None,
    overrides: list[str] | None = None,
    extra: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """The user's settings as a nested dict (YAML < flags < `--set`), before defaults: what the
    user chose explicitly, e.g. to fill the rest from an adapter's provenance."""
    tree: dict[str, Any] = {}
    if path is not None:
        try:
            text = Path(path).read_text(encoding="utf-8")
        except OSError as e:
            raise ConfigError(f"cannot read config {path}: {e.strerror}") from None
        loaded = yaml.safe_load(text) or {}
        if not isinstance(loaded, dict):
            raise ConfigError(f"{path}: top level must be a mapping")
        tree = loaded
    if extra:
        tree = _deep_merge(tree, extra)
    for item in overrides or []:
        key, value = parse_override(item)
        _set_path(tree, key, value)
    return tree


def dump_yaml(cfg: Any) -> str:
    return yaml.safe_dump(to_dict(cfg), sort_keys=False)


@dataclass
class EvalConfig:
    """Config of `ray_jobs.evaluate`: labelled records + scorer output -> metrics and report."""

    labels: str = "data/eval.jsonl"
    """Labelled records (JSONL, CSV/TSV, parquet) with the note text (`text_column`) and `reason`,
    optional id (`id_column`) and `category`."""
    scores: str = "runs/scores"
    """Folder of the scorer's parquet output (every `*.parquet` under it; `manifest.json` read)."""
    out: str = "runs/eval"
    """Where metrics.json, report.html and the PNG plots go (created owner-only)."""
    threshold: float | None = None
    """Flag a note as error when p_error >= threshold; null: use the scorer's verdicts."""
    text_column: str = "note"
    """Labels column holding the note text (as scoring's `io.text_column`; MIMIC-IV-Note: text)."""
    id_column: str = "id"
    """Labels column holding the note id, joined to the scores' `note_id` (rows without one use
    `<file>:<line>`, as scoring does; as scoring's `io.id_column`)."""
    train_metrics: str | None = None
    """The adapter's metrics.json for the report's training curves; null: the one in the adapter
    folder named by the scores' `_manifest.json` (`provenance.adapter`), if there is one."""
    show_text: bool = False
    """Show note text in the report's examples table (PHI!). Synthetic labels always show it."""
    bootstrap: int = 1000
    """Resamples of the notes behind every 95% interval (seeded); 0: no intervals."""
    target_recall: float | None = None
    """Report the threshold that reaches this recall on the labels (and the figures there)."""
    target_precision: float | None = None
    """Report the threshold that reaches this precision on the labels (and the figures there)."""
    baseline: str | None = None
    """Another scorer output on the same notes (e.g. the base model, `score --base-only`): both
    side by side, with the paired difference of AUROC and balanced accuracy and its interval."""
    group_column: str | None = None
    """What the bootstrap resamples: a label field or kept score column naming each note's
    patient (all its notes drawn together); null: `patient_id`, else `subject_id`, when the data
    carry one, else notes; `note`: notes."""
    calibrate_on: str | None = None
    """Scores (e.g. of the eval split) on which the target's threshold is chosen; the figures are
    then taken on `scores`. null: re-chosen in every resample, figures out of bag."""
    calibrate_labels: str | None = None
    """Labels of `calibrate_on`; null: `labels` (joined by id)."""


# ---------------------------------------------------------------------------------------------
# Scoring (ray_jobs.score)


@dataclass
class ScoreIOSection:
    input: list[str] = field(default_factory=list)
    """Input files, folders or globs: JSONL, CSV, TSV (plain, .gz or .zst) or parquet; local
    paths or URIs (file://, s3://)."""
    output: str = "runs/scores"
    """Output directory: parquet parts + _manifest.json. Re-running into it resumes."""
    text_column: str = "note"
    """Column (JSONL key) holding the note text."""
    id_column: str = "id"
    """Column holding the note id; rows without one get `<file>:<line or row>`, the file's path
    relative to the input root it was found under (`2019/notes.jsonl:5`)."""
    keep_columns: list[str] = field(default_factory=list)
    """Input columns copied into the output as text (e.g. subject_id, hadm_id, charttime)."""
    keep_text: bool = False
    """Copy the note text into the output (`note` column). Off by default: notes are PHI."""
    chunk_rows: int = 1024
    """Most input rows per chunk, the resumable unit; each chunk becomes one part file, written
    atomically. Small inputs are cut finer so that every scorer actor has work (a new output
    whose inputs give fewer chunks than actors: about rows / actors per chunk, at least 16); the
    size used is recorded in the output's manifest and kept by every later run into it."""
    retry_failed: bool = False
    """Re-score the rows of an existing output whose status is `failed`, in place (one row per
    input is kept); missing chunks are scored as on any resume."""
    update: bool = False
    """Score what is new since the last run into this output: new files and rows appended to
    grown files. Without it, a re-run continues only over exactly the same inputs."""


@dataclass
class ScoringSection:
    generate: Literal["always", "never", "threshold"] = "threshold"
    """Generate the reason for notes over the threshold, for every note, or never."""
    threshold: float = DECISION_THRESHOLD
    """Verdict is `error` when p_error >= threshold."""
    max_new_tokens: int = 96
    """Greedy decoding budget for the reason (50 words fit in ~80 tokens)."""
    max_prompt_tokens: int = 3072
    """Prompt budget (template + system prompt + note + answer prefix); longer notes are cut."""
    batch_tokens: int = 32768
    """Padded tokens per forward pass (length-bucketed sub-batches)."""
    max_batch_size: int = 64
    """Most notes per forward pass."""
    rows_per_call: int = 256
    """Rows sorted by length and bucketed together (split by `batch_tokens`) inside one scorer
    call; a call gets one chunk (`io.chunk_rows` rows)."""
    merge: bool = True
    """Merge the adapter into unquantized base weights (faster); a 4-bit base stays unmerged."""
    dtype: Literal["auto", "bfloat16", "float16", "float32"] = "auto"
    """Weights dtype for scoring; auto: model.dtype on GPU, float32 on CPU."""


@dataclass
class ScoreResources:
    num_actors: int | None = None
    """Scorer actors; null: one per GPU in the cluster (one without GPUs)."""
    use_gpu: bool | Literal["auto"] = "auto"
    """Put each scorer on a GPU; auto: when the cluster has GPUs."""
    cpus_per_actor: float = 1.0
    """CPUs reserved per scorer actor (keep one CPU free for preprocessing on small machines)."""
    gpus_per_actor: float = 1.0
    """GPUs per scorer actor when use_gpu (one model per GPU)."""
    prep_cpus: float = 1.0
    """CPUs per preprocessing task (read, validate, chat-format, tokenize)."""


@dataclass
class ScoreConfig:
    """Config of `ray_jobs.score`: batch scoring with Ray Data."""

    model: ModelConfig = field(default_factory=lambda: ModelConfig(quantization="none"))
    adapter: str | None = None
    """PEFT adapter directory (safetensors); null scores the base model alone."""
    io: ScoreIOSection = field(default_factory=ScoreIOSection)
    scoring: ScoringSection = field(default_factory=ScoringSection)
    resources: ScoreResources = field(default_factory=ScoreResources)


# ---------------------------------------------------------------------------------------------
# Hyperparameter search (ray_jobs.tune)


@dataclass
class SearchSection:
    num_samples: int = 8
    """Trials to run (points_to_evaluate count towards it)."""
    ranks: list[int] = field(default_factory=lambda: [8, 16, 32, 64])
    """LoRA ranks to choose from (uniformly)."""
    lr_min: float = 5e-5
    """Lower bound of the learning rate (log-uniform)."""
    lr_max: float = 5e-4
    """Upper bound of the learning rate (log-uniform)."""
    alpha_multiple: float | None = 2.0
    """LoRA alpha = multiple x rank; null keeps the base config's lora.alpha for every rank."""
    points_to_evaluate: list[dict[str, Any]] = field(default_factory=list)
    """Trials run first, in order, e.g. the seed recipe {r: 16, learning_rate: 1e-4}."""
    algorithm: Literal["random", "optuna"] = "random"
    """random: Tune's seeded random search; optuna: TPE (needs `pip install optuna`)."""
    max_concurrent_trials: int | None = None
    """Trials at a time; null: cluster GPUs // GPUs per trial (CPUs // CPUs per trial on CPU)."""
    seed: int = 0
    """Seed of the search algorithm (the trials' training seed is train.optim.seed)."""


@dataclass
class AshaSection:
    metric: str = "eval_loss"
    """Metric reported by the trials that ranks them."""
    mode: Literal["min", "max"] = "min"
    """Whether a lower or higher metric is better."""
    time_attr: Literal["training_iteration", "step", "epoch"] = "training_iteration"
    """Progress measure: evaluations reported (training_iteration), optimizer steps or epochs."""
    grace_period: float = 1.0
    """No trial is stopped before this much progress (in time_attr units)."""
    reduction_factor: float = 2.0
    """At each rung only the best 1/reduction_factor of trials continue."""
    max_t: float = 4.0
    """Progress at which every trial stops (the full training length in time_attr units)."""


@dataclass
class SweepRunSection:
    storage_path: str = "runs/ray"
    """Tune storage (a shared filesystem on a cluster): the sweep lives in <storage_path>/<name>."""
    name: str = "discriminator-sweep"
    """Sweep name; re-running with the same storage_path and name resumes the sweep."""


@dataclass
class TuneConfig:
    """Config of `ray_jobs.tune`: a Ray Tune search over LoRA rank, alpha and learning rate."""

    train: TrainConfig = field(default_factory=TrainConfig)
    """Base training config of every trial (the search overrides lora.r/alpha, learning rate)."""
    search: SearchSection = field(default_factory=SearchSection)
    """Search space, algorithm and concurrency."""
    asha: AshaSection = field(default_factory=AshaSection)
    """ASHA early stopping."""
    run: SweepRunSection = field(default_factory=SweepRunSection)
    """Where the sweep is stored and what it is called."""
