"""The GPU benchmark harness in its CPU smoke mode: every training and scoring mode runs its real
code path (tiny model, NF4 where the mode uses it) for a couple of steps, and the JSON reports
carry the fields a GPU session reads. Plus the one-process-per-mode plumbing."""

from __future__ import annotations

import json
import math

import pytest

from benchmarks import budget, common, gpu, score_gpu, train_gpu

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
    assert report["machine"]["gpu"] is None  # no nvidia-smi on the CPU machine


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
        assert set(report["curves"]) == {"tiny w10", "floor"}
        curve = report["curves"]["tiny w10"]
        assert curve["model"] == "tiny" and curve["decision_weight"] == 10
        # the bag-of-words floor on the same test notes, trained on the first N training notes
        floor = report["curves"]["floor"]["points"]
        assert floor and {p["examples"] for p in floor} <= {8, 16}
        assert all(len(p["p_error"]) == 8 and p["category_named"] in (None, 0) for p in floor)
        points = curve["points"]
        assert [p["examples"] for p in points] == [0, 8, 16]
        assert [p["step"] for p in points] == [0, 2, 4]  # 4 notes a step
        for p in points:
            assert 0 <= p["accuracy"] <= 1 and set(p["recall"]) <= set(CATEGORIES)
            assert len(p["p_error"]) == len(p["verdicts"]) == 8  # per test note, kept
            for key in ("auroc_ci95", "balanced_accuracy_ci95", "category_named_ci95"):
                ci = p[key]  # null where the figure is undefined in most resamples
                assert ci is None or 0 <= ci[0] <= ci[1] <= 1, (key, ci)
            assert p["balanced_accuracy_ci95"] is not None
        assert out.with_suffix(".png").stat().st_size > 10_000
        capsys.readouterr()
        assert learning.main(args) == 0  # resumed: nothing left to do
        log = capsys.readouterr().out
        assert "training to" not in log and "zero-shot" not in log
        assert json.loads(out.read_text())["curves"] == report["curves"]
        # the README's table, from the report alone: one row per point, intervals beside figures
        assert learning.main([*args, "--table"]) == 0
        table = capsys.readouterr().out.strip().splitlines()
        # header, the floor's and 3 adapter points, then a blank line and the provenance
        assert len(table) == 2 + len(floor) + 3 + 2 and "AUROC [95% CI]" in table[0]
        assert table[2].startswith("| floor (tf-idf + logistic regression) |")
        assert table[-1].startswith(f"Measured {points[0]['date'][:10]}, commit ")
        bal = points[1]["balanced_accuracy_ci95"]
        row = table[2 + len(floor) + 1]
        assert f"{points[1]['balanced_accuracy']:.2f} [{bal[0]:.2f}, {bal[1]:.2f}]" in row
    finally:
        ray.shutdown()


# ---------------------------------------------------------------------------------------------
# budget: every GPU figure in one command that fits a short allocation


def test_budget_plan_fits_eight_minutes_with_a_margin():
    plan = budget.timeline(budget.PLAN, budget.DEADLINE_S, smoke=False)
    assert plan["deadline_s"] == 480 and plan["planned_s"] <= 0.9 * 480, plan["planned_s"]
    assert plan["steps"][0]["mode"] == "shape-model"  # the build is in the budget
    assert {"project", "project-80gb", "trl-default", "plain-bf16", "project-bf16"} == set(
        budget.TRAIN_MODES
    )
    assert {"project", "project-nf4", "plain-prefill"} == set(budget.SCORE_MODES)
    for s in plan["steps"]:  # every step has a timeout, and none runs past the deadline
        assert s["timeout"] is not None and s["start"] + s["timeout"] <= 480, s
    # the deadline rules: twice the plan at most, never past the deadline, skipped when too late
    assert budget.step_timeout(40, 1000) == 80
    assert budget.step_timeout(40, 50) == 50
    assert budget.step_timeout(40, 23) is None  # under 60% of the plan left


def test_unknown_modes_are_errors():
    with pytest.raises(SystemExit, match=r"unknown mode.*nope"):
        budget.parse_modes("score:project,nope")
    picked = budget.parse_modes("score:project,trl-default")
    assert [(s.kind, s.mode) for s in picked] == [
        ("setup", "shape-model"), ("train", "trl-default"), ("score", "project")
    ]  # fmt: skip
    args = gpu.parse_args(["train", "--smoke", "--modes", "project,projetc"])
    with pytest.raises(SystemExit, match="projetc"):
        gpu.chosen_modes(args, list(train_gpu.MODES))  # one valid name no longer hides a typo
    assert gpu.parse_args(["train"]).timeout == 900  # every mode has a timeout by default


def test_a_step_past_its_timeout_is_killed_and_reported(tmp_path):
    import time

    t0 = time.perf_counter()
    out = common.run_isolated("benchmarks.common:sleep_task", {"seconds": 60}, tmp_path, "s", 3)
    assert out["timed_out"] is True and out["error"] == "timed out after 3s"
    assert time.perf_counter() - t0 < 30


def test_budget_with_no_time_left_skips_and_says_so(tmp_path):
    out = tmp_path / "out"
    rc = gpu.main(["budget", "--smoke", "--deadline", "5", "--out", str(out)])
    (path,) = out.glob("budget-smoke-cpu-*.json")
    report = json.loads(path.read_text())
    assert rc == 1
    assert report["timeline"] == [
        {"step": "setup shape-model", "start": report["timeline"][0]["start"],
         "end": report["timeline"][0]["end"], "status": "skipped"}
    ]  # fmt: skip
    assert "left of the deadline" in report["results"]["setup"]["shape-model"]["skipped"]


@pytest.fixture(scope="module")
def budget_report(tmp_path_factory):
    out = tmp_path_factory.mktemp("budget-out")
    rc = gpu.main(["budget", "--smoke", "--out", str(out)])
    (path,) = out.glob("budget-smoke-cpu-*.json")
    return rc, json.loads(path.read_text())


def test_budget_smoke_runs_every_step_in_its_own_process(budget_report):
    """`budget --smoke`: the GPU run's path on CPU: the shape-model build, one process per step
    with its timeout, the JSON after every step, the summary the GPU session reads."""
    rc, report = budget_report
    assert rc == 0, report["timeline"]
    assert report["benchmark"] == "budget-smoke" and report["machine"]["gpu"] is None
    assert [t["step"] for t in report["timeline"]] == [f"{s.kind} {s.mode}" for s in budget.PLAN]
    assert all(t["status"] == "ok" for t in report["timeline"])
    assert report["wall_s"] <= report["plan"]["deadline_s"]
    setup = report["results"]["setup"]["shape-model"]
    assert setup["build_s"] > 0 and setup["model_dir"].endswith("shape-model")  # built here
    for kind in ("train", "score"):
        for mode, r in report["results"][kind].items():
            assert r["process_s"] > 0 and "error" not in r, (kind, mode)  # its own process
    train = report["results"]["train"]
    assert train["project-80gb"]["settings"]["config"]["optim"]["optim"] == "adamw_torch_fused"
    assert train["project-80gb"]["notes_per_step"] == 4 * 2  # batch 4 x smoke accumulation 2
    assert train["project"]["model"]["dtype"] == "bfloat16"  # the GPU dtype, on CPU too
    assert train["project-bf16"]["model"]["quantization"] == "none"
    for mode in budget.TRAIN_MODES:
        assert train[mode]["real_tokens_per_s"] > 0, mode
    ratios = report["summary"]["train"]["ratios"]
    assert ratios["project/trl-default"] > 0 and ratios["project-80gb/trl-default"] > 0
    assert ratios["project-bf16/plain-bf16"] > 0
    score = report["results"]["score"]
    n = budget.SMOKE_COUNTS["score_notes"]
    assert score["project"]["notes"] == score["plain-prefill"]["notes"] == n
    assert score["project-nf4"]["settings"]["config"]["model"]["quantization"] == "nf4"
    assert score["project-nf4"]["threshold"] == score["project"]["threshold"]  # one verdict rule
    same = report["summary"]["score"]["project vs plain-prefill"]
    assert same["agreement_notes"] == n and same["verdict_agreement"] == 1.0  # same weights
    assert report["summary"]["score"]["project/plain-prefill"] > 0
    assert all(v > 0 for v in report["summary"]["peak_gib"].values())


def test_pack_check_counts_the_tree_and_the_pack(tmp_path, capsys):
    """What travels to an offline GPU machine: the repository's files plus the package pack,
    under the limit (the tree alone leaves room for the ~42 MB pack)."""
    tree = gpu.travelling_bytes(common.REPO)
    assert 0 < tree < 12 * 1024 * 1024, tree
    pack = tmp_path / "site.tar.xz"
    with open(pack, "wb") as fh:  # sparse: only its size matters
        fh.truncate(45 * 1024 * 1024)
    assert gpu.main(["pack-check", "--pack", str(pack)]) == 0
    assert "of 60 MiB" in capsys.readouterr().out
    with open(pack, "wb") as fh:
        fh.truncate(70 * 1024 * 1024)
    assert gpu.main(["pack-check", "--pack", str(pack)]) == 1
    assert "over the limit" in capsys.readouterr().err


def test_learning_points_must_be_whole_steps_inside_the_training_split(tmp_path, capsys):
    from benchmarks import learning

    work = ["--work", str(tmp_path / "w"), "--out", str(tmp_path / "c.json")]
    with pytest.raises(SystemExit):  # 250 notes at 8 a step would train 248 and say 250
        learning.main(["--points", "250", "--batch-size", "8", *work])
    assert "positive multiple of --batch-size 8" in capsys.readouterr().err
    with pytest.raises(SystemExit):  # 900 of 1,000 notes: past the 800-note training split
        learning.main(["--points", "896", "--notes", "1000", *work])
    assert "--notes >= 1120" in capsys.readouterr().err
    assert not (tmp_path / "w").exists()  # refused before anything was written


def test_learning_work_folder_belongs_to_one_set_of_settings(tmp_path):
    from benchmarks import learning

    work = tmp_path / "w"
    assert learning.check_work(work, {"notes": 80, "seed": 1, "lr_tiny": 0.003}) is None
    assert learning.check_work(work, {"notes": 80, "seed": 1, "lr_tiny": 0.003}) is None
    problem = learning.check_work(work, {"notes": 160, "seed": 1, "lr_tiny": 0.01})
    assert problem and "other settings (lr_tiny, notes)" in problem
    report = {"finished": "yesterday", "seconds_this_run": 5, "curves": {}}
    learning.begin_run(report)
    assert "finished" not in report and "seconds_this_run" not in report
    assert report["started_this_run"]
