"""Training: loss mask, invariants in-process, and the Ray Train job (2 CPU workers, 4-bit)."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch

from discriminator import console, training
from discriminator.config import TrainConfig, load_config
from discriminator.modeling import load_tokenizer

REPO = Path(__file__).resolve().parents[1]
SMOKE = REPO / "ray_jobs" / "configs" / "smoke.yaml"


def _env() -> dict[str, str]:
    env = dict(os.environ)
    env.update(HF_HUB_OFFLINE="1", RAY_TRAIN_ENABLE_PRINT_PATCH="0")
    env.pop("RAY_ADDRESS", None)
    return env


@pytest.fixture(scope="module")
def data_files(tmp_path_factory, synth_records):
    d = tmp_path_factory.mktemp("train-data")
    for name, rows in (("train", synth_records[:32]), ("eval", synth_records[32:40])):
        with open(d / f"{name}.jsonl", "w") as fh:
            for r in rows:
                fh.write(json.dumps({k: r[k] for k in ("id", "note", "reason")}) + "\n")
    return d


def _cfg(model_dir, data_dir, *overrides: str) -> TrainConfig:
    return load_config(
        TrainConfig,
        SMOKE,
        [
            f"model.name_or_path={model_dir}",
            f"data.train_path={data_dir / 'train.jsonl'}",
            f"data.eval_path={data_dir / 'eval.jsonl'}",
            *overrides,
        ],
    )


def test_loss_mask_is_the_answer_plus_end_of_turn(tiny_model_dir, data_files, tmp_path):
    cfg = _cfg(tiny_model_dir, data_files)
    tok = load_tokenizer(str(tiny_model_dir))
    data = training.prepare_data(cfg, tok)
    trainer = training.build_sft_trainer(cfg, data, "cpu", str(tmp_path), [])
    rows = [trainer.train_dataset[i] for i in range(4)]
    batch = trainer.data_collator(rows)
    for i, rec in enumerate(data.train[:4]):
        ids, labels = batch["input_ids"][i], batch["labels"][i]
        answer = rec["completion"][0]["content"]
        assert tok.decode(ids[labels != -100]) == answer + "<|eot_id|>"
        # the supervised tokens are one contiguous run at the end of the real tokens
        where = (labels != -100).nonzero().flatten()
        assert (where.diff() == 1).all()
        assert int(where[-1]) == int(batch["attention_mask"][i].sum()) - 1


def test_decision_weight_lands_on_the_answers_first_token(tiny_model_dir, data_files, tmp_path):
    from discriminator import prompt

    cfg = _cfg(tiny_model_dir, data_files, "optim.decision_weight=10")
    tok = load_tokenizer(str(tiny_model_dir))
    data = training.prepare_data(cfg, tok)
    trainer = training.build_sft_trainer(cfg, data, "cpu", str(tmp_path), [])
    batch = trainer.data_collator([trainer.train_dataset[i] for i in range(8)])
    labels = batch["labels"][:, 1:]  # aligned with the predicted positions, as in the loss
    w = training.decision_weights(labels, trainer.decision_offset, trainer.decision_weight)
    decisions = set(prompt.first_token_ids(tok).values())
    for i, rec in enumerate(data.train[:8]):
        (pos,) = (w[i] == 10).nonzero().flatten().tolist()  # exactly one weighted position
        want = prompt.parse_reason(rec["completion"][0]["content"]).category
        assert want in (prompt.GOOD, *prompt.CATEGORIES)
        assert int(labels[i, pos]) == prompt.first_token_ids(tok)[want] in decisions
    assert int((w != 1).sum()) == 8
    # the weighted loss: weight 1 equals TRL's own loss on the same batch
    model = trainer.model.train()
    inputs = {k: v for k, v in batch.items()}
    trainer.decision_weight = 1.0  # TRL's own path
    plain = trainer.compute_loss(model, dict(inputs))
    trainer.decision_weight = 1.000001  # ours, with (almost) no weight
    same = trainer.compute_loss(model, dict(inputs))
    trainer.decision_weight = 10.0
    heavier = trainer.compute_loss(model, dict(inputs))
    assert same.item() == pytest.approx(plain.item(), rel=1e-4)
    assert heavier.item() > plain.item()


def test_trainer_warms_up_over_the_configured_share_of_steps(tiny_model_dir, data_files, tmp_path):
    """`optim.warmup_ratio` is a share of the run's steps (transformers 5 takes it as a float
    `warmup_steps` < 1): 0.25 of 8 steps is a linear warm-up over 2 steps, then the decay."""
    from itertools import pairwise

    cfg = _cfg(tiny_model_dir, data_files, "optim.warmup_ratio=0.25", "optim.max_steps=8")
    data = training.prepare_data(cfg, load_tokenizer(str(tiny_model_dir)))
    trainer = training.build_sft_trainer(cfg, data, "cpu", str(tmp_path), [])
    assert trainer.args.warmup_steps == 0.25 and trainer.args.get_warmup_steps(8) == 2
    trainer.create_optimizer_and_scheduler(num_training_steps=8)
    lrs = []
    for _ in range(8):  # the learning rate of each optimizer step, as training steps them
        lrs.append(trainer.lr_scheduler.get_last_lr()[0])
        trainer.optimizer.step()
        trainer.lr_scheduler.step()
    peak = cfg.optim.learning_rate
    assert lrs[:3] == pytest.approx([0.0, peak / 2, peak])
    assert all(b < a for a, b in pairwise(lrs[2:]))  # cosine decay after the warm-up


@pytest.mark.parametrize("ratio", ["1.0", "3", "-0.1"])
def test_warmup_ratio_outside_0_1_is_refused_before_anything_is_written(tmp_path, ratio):
    """A float `warmup_steps` >= 1 would be read as a number of steps (1.0: one step, not the
    whole run): refused, naming the key, before the run's folders are made."""
    cfg = load_config(TrainConfig, SMOKE, [f"optim.warmup_ratio={ratio}"])
    with pytest.raises(ValueError, match=r"optim\.warmup_ratio must be in \[0, 1\)"):
        training.warmup_steps_arg(cfg)
    data = training.PreparedData([], [], 0, {})
    with pytest.raises(ValueError, match=r"optim\.warmup_ratio"):
        training.build_trainer(cfg, data, storage_path=str(tmp_path / "ray"))
    assert not (tmp_path / "ray").exists()


def test_train_job_says_a_bad_setting_before_reading_model_or_data(tmp_path, capfd):
    """The job checks its settings first: one `error:` line, no model or data read, no Ray."""
    import ray

    from ray_jobs import train

    missing = tmp_path / "no-such-data.jsonl"  # never reached: the setting is refused first
    rc = train.main(["--config", str(SMOKE), "--train_data", str(missing),
                     "--set", "optim.warmup_ratio=1.0", "--set", "model.name_or_path=/nowhere"])  # fmt: skip
    err = capfd.readouterr().err
    assert rc == 2
    assert "error: optim.warmup_ratio must be in [0, 1)" in err and "Traceback" not in err
    assert "nowhere" not in err and str(missing) not in err
    assert not ray.is_initialized()


def test_max_length_never_cuts_an_answer(tiny_model_dir, data_files):
    cfg = _cfg(tiny_model_dir, data_files, "data.max_prompt_tokens=600")
    tok = load_tokenizer(str(tiny_model_dir))
    data = training.prepare_data(cfg, tok)
    assert data.stats["train_truncated"] > 0  # short budget: notes were cut in the middle
    for rec in data.train:
        full = tok.apply_chat_template(rec["prompt"] + rec["completion"], tokenize=True)
        full = full["input_ids"] if hasattr(full, "keys") else full
        assert len(full) < data.max_length
        assert len(full) <= 600 + 120  # prompt budget + answer


def _raw(t: torch.Tensor) -> torch.Tensor:
    # 4-bit weights are packed bytes stored as floats (NaN bit patterns included): compare bytes
    return t.detach().contiguous().view(torch.uint8).clone()


def _quantized_state(model) -> dict[str, torch.Tensor]:
    return {n: _raw(p) for n, p in model.named_parameters() if not p.requires_grad}


def test_lora_changes_base_does_not_and_loss_falls(tiny_model_dir, data_files, tmp_path):
    cfg = _cfg(
        tiny_model_dir,
        data_files,
        "data.max_train_samples=2",
        "data.eval_path=null",
        "optim.max_steps=20",
        "optim.learning_rate=3e-3",
        "optim.per_device_train_batch_size=2",
        "run.save_steps=1000",
        "run.logging_steps=1",
    )
    data = training.prepare_data(cfg, load_tokenizer(str(tiny_model_dir)))
    trainer = training.build_sft_trainer(cfg, data, "cpu", str(tmp_path), [])
    model = trainer.model
    base_before = _quantized_state(model)
    lora_before = {n: p.detach().clone() for n, p in model.named_parameters() if p.requires_grad}
    assert lora_before and all("lora_" in n for n in lora_before)
    trainer.train()
    for n, p in model.named_parameters():
        if n in base_before:
            assert torch.equal(_raw(p), base_before[n]), f"base weight {n} changed"
    changed = [
        n
        for n, p in model.named_parameters()
        if n in lora_before and not torch.equal(p.detach(), lora_before[n])
    ]
    assert len(changed) == len(lora_before)
    losses = [h["loss"] for h in trainer.state.log_history if "loss" in h]
    assert losses[-1] < 0.7 * losses[0], losses


def test_training_after_eval_keeps_correct_lora_gradients(tiny_model_dir, data_files):
    """The bitsandbytes CPU trap: an eval-mode forward must not change later LoRA gradients."""
    cfg = _cfg(tiny_model_dir, data_files)
    tok = load_tokenizer(str(tiny_model_dir))
    ids = tok("Name: Ann Lee. Admission Date: 2024-05-01.", return_tensors="pt")["input_ids"]

    def grads(run_eval_first: bool) -> dict[str, torch.Tensor]:
        torch.manual_seed(0)
        model = training.setup_model(cfg, "cpu")
        for n, p in model.named_parameters():  # non-zero B so A gets gradients too
            if "lora_B" in n:
                torch.nn.init.normal_(p, std=0.02)
        if run_eval_first:
            model.eval()
            with torch.no_grad():
                model(input_ids=ids)
        model.train()
        model(input_ids=ids, labels=ids).loss.backward()
        return {n: p.grad.clone() for n, p in model.named_parameters() if p.grad is not None}

    fresh, after_eval = grads(False), grads(True)
    assert fresh.keys() == after_eval.keys() and fresh
    for n in fresh:
        rel = (fresh[n] - after_eval[n]).norm() / (fresh[n].norm() + 1e-12)
        assert rel < 1e-4, (n, float(rel))


def test_invalid_data_stops_before_any_worker(tmp_path, capfd):
    import ray

    from ray_jobs import train

    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"note": "fine", "reason": ""}\nnot json\n{"note": 7}\n')
    rc = train.main(
        ["--config", str(SMOKE), "--train_data", str(bad), "--set", "data.eval_path=null"]
    )
    err = capfd.readouterr().err
    assert rc == 2
    assert f"{bad}:2: not valid JSON" in err and f"{bad}:3: 'note' must be a string" in err
    assert not ray.is_initialized()


def test_print_config_resolves_seed_flags(capsys):
    from ray_jobs import train

    rc = train.main(
        ["--config", str(SMOKE), "--learning_rate", "2e-4", "--output_dir", "x", "--print-config"]
    )
    out = capsys.readouterr().out
    assert rc == 0 and "learning_rate: 0.0002" in out and "output_dir: x" in out


def _run_train(args: list[str], timeout: int = 400) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "ray_jobs.train", *args],
        cwd=REPO,
        env=_env(),
        capture_output=True,
        text=True,
        timeout=timeout,
    )


@pytest.mark.slow
def test_smoke_job_trains_with_two_workers_and_exports(tmp_path):
    from peft import PeftModel
    from transformers import AutoModelForCausalLM

    out = tmp_path / "adapter"
    proc = _run_train(
        [
            "--config", str(SMOKE),
            "--set", f"run.storage_path={tmp_path / 'ray'}",
            "--set", f"run.output_dir={out}",
            "--merge",
        ]
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-3000:]
    shown = proc.stdout + proc.stderr
    # The console holds the job's own lines; the library's go to the run's log file.
    assert "[train] step 4/4" in shown and f"[train] adapter written to {out}" in shown
    for line in shown.splitlines():
        assert console.own_line(line) == line, line
    m = re.search(r"^\[train\] log: (\S+)$", proc.stdout, re.M)
    assert m and Path(m.group(1)).parent == tmp_path / "ray" / "smoke" / "logs"
    log = Path(m.group(1)).read_text()
    assert "from rank 1" in log  # two Ray Train workers reported
    for noise in (
        "Started a local Ray instance",
        "Reporting training result",
        "FutureWarning",
        "Tokenizing train dataset",
        "Failed to load CPU gemm_4bit_forward",
    ):
        assert noise in log and noise not in shown, noise
    for name in (
        "adapter_model.safetensors",
        "adapter_config.json",
        "tokenizer.json",
        "tokenizer_config.json",
        "chat_template.jinja",
        "train_config.yaml",
        "metrics.json",
        "discriminator.json",
        "README.md",
    ):
        assert (out / name).is_file(), name
    assert not list(out.glob("*.bin")) and not list(out.glob("*.pt"))
    prov = json.loads((out / "discriminator.json").read_text())
    assert prov["prompt_version"] == "v1" and len(prov["adapter_sha256"]) == 64
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["global_step"] == 4 and metrics["final_eval_loss"] is not None
    assert 0 <= metrics["final_eval_balanced_accuracy"] <= 1  # first-token metrics, every eval
    assert "eval_auroc" in log and "eval_balanced_accuracy" in log
    assert list((tmp_path / "ray" / "smoke" / "tensorboard").glob("events.out.tfevents.*"))
    # the seed's inference snippet: base + PeftModel.from_pretrained(dir)
    base_path = json.loads((out / "adapter_config.json").read_text())["base_model_name_or_path"]
    model = PeftModel.from_pretrained(AutoModelForCausalLM.from_pretrained(base_path), str(out))
    assert any("lora_B" in n and p.abs().sum() > 0 for n, p in model.named_parameters())
    merged = Path(f"{out}-merged")
    assert (merged / "model.safetensors").is_file() and (merged / "config.json").is_file()


def _read(path: Path) -> str:
    try:
        return path.read_text()
    except OSError:
        return ""


def _ray_train_workers(pid: int) -> list:
    import psutil

    found = []
    for child in psutil.Process(pid).children(recursive=True):
        try:
            if "RayTrainWorker" in " ".join(child.cmdline()):
                found.append(child)
        except psutil.Error:
            continue
    return found


@pytest.mark.slow
def test_killed_worker_resumes_from_last_checkpoint(tmp_path):
    storage = tmp_path / "ray"
    args = [
        "--config", str(SMOKE),
        "--set", f"run.storage_path={storage}",
        "--set", f"run.output_dir={tmp_path / 'adapter'}",
        "--set", "optim.max_steps=30",
        "--set", "run.num_workers=2",
    ]  # fmt: skip
    proc = subprocess.Popen(
        [sys.executable, "-m", "ray_jobs.train", *args],
        cwd=REPO,
        env=_env(),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        deadline = time.time() + 300
        snapshot = storage / "smoke" / "checkpoint_manager_snapshot.json"
        # a checkpoint folder appears before Ray has registered it: wait for the registration
        while time.time() < deadline and "checkpoint_" not in _read(snapshot):
            assert proc.poll() is None, proc.stdout.read()[-3000:]
            time.sleep(0.5)
        workers = _ray_train_workers(proc.pid)
        assert workers, "no Ray Train worker process found"
        workers[0].send_signal(signal.SIGKILL)  # a real process kill mid-training
        output, _ = proc.communicate(timeout=400)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 0, output[-3000:]
    resumed = [int(m) for m in re.findall(r"resumed from checkpoint at step (\d+)", output)]
    assert resumed and min(resumed) >= 2, output[-3000:]
    metrics = json.loads((tmp_path / "adapter" / "metrics.json").read_text())
    assert metrics["global_step"] == 30
    steps = [h["step"] for h in metrics["log_history"] if "loss" in h]
    assert steps == sorted(steps) and steps[-1] == 30  # continued, not restarted


def test_first_token_metrics_from_scores():
    truth = ["good", "good", "timeline", "phi", "structure", "good"]
    p = [0.1, 0.7, 0.9, 0.8, 0.2, 0.3]
    pred = ["timeline", "phi", "timeline", "timeline", "structure", "phi"]
    m = training.first_token_metrics(truth, p, pred)
    # errors {0.9, 0.8, 0.2} vs good {0.1, 0.7, 0.3}: 3 + 3 + 1 of 9 pairs ranked right
    assert m["auroc"] == pytest.approx(7 / 9)
    # recall 2/3, specificity 2/3
    assert m["balanced_accuracy"] == pytest.approx(2 / 3)
    # detected errors: timeline (right), phi (named timeline: wrong)
    assert m["category_accuracy"] == pytest.approx(1 / 2)
    only_good = training.first_token_metrics(["good", "good"], [0.2, 0.9], ["phi", "phi"])
    # one class: what needs both is left out, balanced accuracy as AUROC (evaluation's rule)
    assert only_good == {}


def test_first_token_scores_match_an_unpadded_forward(tiny_model_dir, lora_adapter_dir):
    """The training-time metric reads p_error exactly as scoring does: left padding in a batch
    changes nothing, it is taken over the decision tokens after the forced answer prefix, and
    the scorer gives the same p_error for the same notes and model."""
    from peft import PeftModel
    from transformers import AutoModelForCausalLM

    from discriminator import prompt, scoring
    from discriminator.config import ScoreConfig, from_dict, to_dict
    from discriminator.synth import generate_records

    tok = load_tokenizer(str(tiny_model_dir))
    base = AutoModelForCausalLM.from_pretrained(str(tiny_model_dir), dtype=torch.float32)
    model = PeftModel.from_pretrained(base, str(lora_adapter_dir)).eval()
    notes = [r["note"][: 200 + 150 * i] for i, r in enumerate(generate_records(4, seed=3))]
    p_error, predicted = training.first_token_scores(
        model, tok, [prompt.to_messages(n) for n in notes], batch_size=4
    )
    prefix, good_id = prompt.answer_ids(tok)
    cats = prompt.first_token_ids(tok)
    errs = [cats[c] for c in prompt.CATEGORIES]
    for note, p, cat in zip(notes, p_error, predicted):
        ids = tok(prompt.render_prompt(tok, note), add_special_tokens=False)["input_ids"] + prefix
        with torch.no_grad():
            probs = model(input_ids=torch.tensor([ids])).logits[0, -1].double().softmax(-1)
        p_err = probs[errs].sum().item()
        assert p == pytest.approx(p_err / (p_err + probs[good_id].item()), abs=1e-5)
        best = max((c for c in cats if c != prompt.GOOD), key=lambda c: probs[cats[c]].item())
        assert cat == best
    assert len(set(round(p, 6) for p in p_error)) > 1  # the notes are told apart
    # the scoring job's reading of the same notes with the same model (merged, as it scores)
    cfg = from_dict(ScoreConfig, {"model": {"name_or_path": str(tiny_model_dir),
                                            "quantization": "none", "dtype": "float32"},
                                  "adapter": str(lora_adapter_dir)})  # fmt: skip
    rows = scoring.Scorer(to_dict(cfg), str(tiny_model_dir)).score_notes(notes)
    np.testing.assert_allclose([r["p_error"] for r in rows], p_error, rtol=1e-4, atol=1e-6)


def test_progress_lines_carry_the_tag_they_are_given(capsys):
    """A run's lines read `[train] ...`, a Tune trial's `[trial <id>] ...`: the tag is passed to
    the progress callback, not kept in a module global, so one process can show both."""
    from types import SimpleNamespace

    state = SimpleNamespace(
        global_step=2, max_steps=4, num_input_tokens_seen=0, is_world_process_zero=True
    )
    trial = training.ProgressCallback("trial 1a2b")
    trial.on_train_begin(None, state, None)
    training.log0("outside any trial")
    run = training.ProgressCallback()
    run.on_log(None, state, None, logs={"loss": 1.5})
    trial.on_log(None, state, None, logs={"train_loss": 1.25})
    lines = capsys.readouterr().out.splitlines()
    assert lines[:3] == [
        "[trial 1a2b] resumed from checkpoint at step 2",
        "[trial 1a2b] training to step 4",
        "[train] outside any trial",
    ]
    assert re.fullmatch(r"\[train\] step 2/4  loss 1\.5  tokens/s \S+  eta \S+s", lines[3])
    assert re.fullmatch(
        r"\[trial 1a2b\] finished at step 2 in \S+s, mean train loss 1\.25", lines[4]
    )
    assert len(lines) == 5
