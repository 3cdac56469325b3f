"""The GPU benchmark harness in its CPU smoke mode: every training and scoring mode runs its real
code path (tiny model, NF4 where the mode uses it) for a couple of steps, and the JSON reports
carry the fields a GPU session reads. Plus the one-process-per-mode plumbing."""

from __future__ import annotations

import json
import math

import pytest

from benchmarks import common, gpu, score_gpu, train_gpu

pytestmark = pytest.mark.slow  # ~2 min on a busy 2-core machine: NF4 on CPU is slow


@pytest.fixture(scope="module")
def smoke_reports(tiny_model_dir, tmp_path_factory):
    out = tmp_path_factory.mktemp("bench-out")
    argv = ["all", "--smoke", "--inline", "--model-dir", str(tiny_model_dir), "--out", str(out)]
    argv += ["--steps", "1", "--warmup", "1", "--train-notes", "4"]  # NF4 on CPU is slow
    rc = gpu.main(argv)
    train = sorted(out.glob("train-smoke-cpu-*.json"))
    score = sorted(out.glob("score-smoke-cpu-*.json"))
    assert len(train) == 1 and len(score) == 1, sorted(p.name for p in out.iterdir())
    return rc, json.loads(train[0].read_text()), json.loads(score[0].read_text())


def _header_ok(report: dict, bench: str) -> None:
    assert report["benchmark"] == bench and report["smoke"] is True
    assert report["date"] and report["command"].startswith("python -m benchmarks.gpu all --smoke")
    for pkg in ("torch", "transformers", "trl", "peft", "bitsandbytes", "python"):
        assert report["versions"][pkg], pkg
    assert report["device"]["device"] == "cpu"
    assert "gpu" in report["machine"]


def test_train_smoke_report(smoke_reports):
    rc, train, _ = smoke_reports
    _header_ok(train, "train-smoke")
    res = train["results"]
    assert list(res) == list(train_gpu.MODES)
    failed = {m: r["error"] for m, r in res.items() if "error" in r}
    assert not failed and rc == 0, failed
    assert train["data"]["notes"] == 4
    for mode, r in res.items():
        assert r["mode"] == mode
        assert r["measured_steps"] == 1, mode
        assert r["real_tokens"] > 0 and r["real_tokens_per_s"] > 0, mode
        assert r["step_s_mean"] > 0 and r["step_s_min"] <= r["step_s_median"] <= r["step_s_max"]
        assert math.isfinite(r["final_loss"]) and r["final_loss"] > 0, mode
        assert r["memory"]["peak_rss_gib"] > 0
    # Quantization as the mode says; the project mode runs the project's config.
    assert res["plain-qlora"]["model"]["quantization"] == "nf4"
    assert res["trl-default"]["model"]["quantization"] == "nf4"
    assert res["plain-bf16"]["model"]["quantization"] == "none"
    assert res["project-bf16"]["model"]["quantization"] == "none"
    cfg = res["project"]["settings"]["config"]
    assert cfg["lora"]["r"] == 16 and cfg["optim"]["gradient_checkpointing"] is True
    assert res["project"]["notes_per_step"] == 2  # batch 1 x smoke accumulation 2
    # Real tokens: a padded batch counts fewer tokens than its shape; packing counts them all.
    assert 0 < res["plain-qlora"]["padding_efficiency"] <= 1
    assert res["trl-packing-bfd"]["notes_per_step"] == "packed"
    ratios = train["summary"]["ratios"]
    assert ratios["project/trl-default"] > 0 and ratios["project/plain-qlora"] > 0
    assert any(k.startswith("project/best-trl") for k in ratios)
    assert ratios["project-bf16/plain-bf16"] > 0


def test_score_smoke_report(smoke_reports):
    rc, _, score = smoke_reports
    _header_ok(score, "score-smoke")
    res = score["results"]
    assert list(res) == list(score_gpu.MODES)
    failed = {m: r["error"] for m, r in res.items() if "error" in r}
    assert not failed and rc == 0, failed
    n = gpu.SMOKE["score_notes"]
    assert score["data"]["notes"] == n and 0 <= score["data"]["error_notes"] <= n
    assert score["data"]["prompt_tokens"]["p100"] <= gpu.SMOKE["prompt_tokens"]
    proj, plain = res["project"], res["plain-generate"]
    assert proj["notes"] == plain["notes"] == n
    assert proj["status"] == {"ok": n}
    assert proj["notes_per_s"] > 0 and plain["notes_per_s"] > 0
    assert 0 < proj["threshold"] < 1 and proj["calibration"]["notes"] == n
    assert 1 <= proj["flagged"] < n  # calibrated to ~20%
    assert len(proj["verdicts"]) == n and len(plain["p_error"]) == n
    assert all(0 <= p <= 1 for p in proj["p_error"] + plain["p_error"])
    assert plain["settings"]["quantization"] == "nf4" and plain["generated_tokens"] > 0
    assert score["config"]["overrides"][1].startswith("adapter=")
    summary = score["summary"]
    assert summary["project/plain-generate"] > 0
    assert 0 <= summary["verdict_agreement"] <= 1 and summary["agreement_notes"] == n
    assert summary["same_weights"] is False  # merged float32 vs NF4


def test_random_adapter_has_nonzero_b(tiny_model_dir, tmp_path):
    from safetensors.torch import load_file

    from discriminator.config import LoraSection

    out = common.make_random_adapter(str(tiny_model_dir), str(tmp_path / "a"), LoraSection(r=4))
    tensors = load_file(out / "adapter_model.safetensors")
    b = [t for k, t in tensors.items() if "lora_B" in k]
    assert b and all(t.abs().sum() > 0 for t in b)
    assert len(tensors) == 2 * 7 * 4  # A and B, seven projections, four layers
    assert (out / "adapter_config.json").exists() and (out / "tokenizer_config.json").exists()


def test_isolated_worker_returns_result_or_error(tmp_path):
    ok = common.run_isolated("benchmarks.common:machine_info", {}, tmp_path, "info")
    assert ok["cpus"] >= 1 and ok["process_s"] > 0
    bad = common.run_isolated("benchmarks.common:slug", {"nope": 1}, tmp_path, "bad")
    assert "TypeError" in bad["error"]


def test_window_and_names():
    marks = [(0, 0.0, 0), (1, 1.0, 100), (2, 1.5, 300), (3, 2.5, 400)]
    w = common.window(marks, warmup=1)
    assert w["measured_steps"] == 2 and w["real_tokens"] == 300
    assert w["real_tokens_per_s"] == pytest.approx(200.0) and w["step_s_max"] == 1.0
    with pytest.raises(RuntimeError):
        common.window(marks[:2], warmup=1)
    path = common.report_path("/r", "train", "NVIDIA H100 80GB HBM3", "20250101-000000")
    assert path.name == "train-nvidia-h100-80gb-hbm3-20250101-000000.json"
    assert train_gpu.profiles(["80gb=x.yaml,optim.gradient_checkpointing=false"])["project-80gb"][
        "overrides"
    ] == ["optim.gradient_checkpointing=false"]


@pytest.mark.slow
def test_learning_curve_scores_each_point_and_resumes(tmp_path, capsys):
    """The learning-curve benchmark on a toy size: every point is trained on Ray Train, scored
    and written; a second run with the same arguments trains and scores nothing again."""
    import ray

    from benchmarks import learning
    from discriminator.prompt import CATEGORIES

    out = tmp_path / "curve.json"
    args = ["--models", "tiny", "--decision-weights", "10", "--points", "8", "16",
            "--notes", "80", "--test-notes", "8", "--categories", "structure",
            "--batch-size", "4", "--save-steps", "1",
            "--work", str(tmp_path / "work"), "--out", str(out)]  # fmt: skip
    try:
        assert learning.main(args) == 0
        report = json.loads(out.read_text())
        (curve,) = report["curves"].values()
        assert curve["model"] == "tiny" and curve["decision_weight"] == 10
        points = curve["points"]
        assert [p["examples"] for p in points] == [0, 8, 16]
        assert [p["step"] for p in points] == [0, 2, 4]  # 4 notes a step
        for p in points:
            assert 0 <= p["accuracy"] <= 1 and set(p["recall"]) <= set(CATEGORIES)
        assert out.with_suffix(".png").stat().st_size > 10_000
        capsys.readouterr()
        assert learning.main(args) == 0  # resumed: nothing left to do
        log = capsys.readouterr().out
        assert "training to" not in log and "zero-shot" not in log
        assert json.loads(out.read_text())["curves"] == report["curves"]
    finally:
        ray.shutdown()
