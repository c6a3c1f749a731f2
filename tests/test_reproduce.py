"""`swinlstm reproduce cpu` end to end on a tiny budget: report, assets, resume."""

import json

import pytest

from swinlstm.cli.main import run


@pytest.mark.slow
def test_reproduce_tiny_writes_report_and_resumes(tmp_path, capsys):
    out, report = tmp_path / "runs", tmp_path / "docs" / "results.md"
    argv = [
        "reproduce", "cpu", "--output", str(out), "--results", str(report),
        "--settings", "10-10", "--models", "convlstm", "swinlstm-d+memory",
        "--iterations", "2", "--batch_size", "2", "--img_size", "16", "--test_clips", "4",
        "--jobs", "1",
    ]  # fmt: skip
    assert run(argv) == 0
    text = report.read_text()
    assert (
        "## 10 -> 10 frames" in text and "| convlstm |" in text and "| swinlstm-d+memory |" in text
    )
    assert "| repeat last frame |" in text and "| empty (all-black) frames |" in text
    assert "## What it shows" in text and "Forecasting empty frames scores MSE" in text
    assert "Moving digits from built-in digits (5,000 real MNIST digits" in text
    assert (report.parent / "results" / "per_frame_10-10.png").stat().st_size > 0
    result = json.loads((out / "10-10" / "convlstm" / "result.json").read_text())
    assert result["iterations"] == 2 and result["params"] > 0
    assert set(result["means"]) >= {"mse", "mae", "ssim", "psnr"}
    # a second call finds every run done and only rewrites the report
    capsys.readouterr()
    assert run(argv) == 0
    assert capsys.readouterr().out.count("done earlier") == 2


@pytest.mark.slow
def test_reproduce_runs_jobs_in_parallel_processes(tmp_path):
    """Two runs at a time in worker processes; 10 -> 30 gets half the iterations."""
    out, report = tmp_path / "runs", tmp_path / "results.md"
    argv = [
        "reproduce", "cpu", "--output", str(out), "--results", str(report),
        "--models", "swinlstm-b", "--iterations", "2", "--batch_size", "1", "--img_size", "16",
        "--test_clips", "2", "--jobs", "2", "--threads", "1",
    ]  # fmt: skip
    assert run(argv) == 0
    text = report.read_text()
    assert "## 10 -> 10 frames" in text and "## 10 -> 30 frames" in text
    assert "2 at 10 -> 10, 1 at 10 -> 30" in text and "2 run(s) at a time" in text
    iterations = [
        json.loads((out / s / "swinlstm-b" / "result.json").read_text())["iterations"]
        for s in ("10-10", "10-30")
    ]
    assert iterations == [2, 1]


def test_reproduce_rejects_bad_budget(tmp_path, capsys):
    assert run(["reproduce", "cpu", "--iterations", "0", "--output", str(tmp_path)]) == 2
    assert "--iterations" in capsys.readouterr().err
    assert run(["reproduce", "cpu", "--jobs", "0", "--output", str(tmp_path)]) == 2
    assert "--jobs" in capsys.readouterr().err


def test_train_clock_counts_interrupted_sessions(tmp_path):
    """A run killed mid-training keeps the seconds written by the heartbeat; the next session
    adds its own to them (the table's training time is the sum)."""
    import time

    from swinlstm.engine.reproduce import TrainClock

    path = tmp_path / "run" / "train_seconds.json"
    clock = TrainClock(path, every=0.05)
    with clock:
        time.sleep(0.3)
        first = json.loads(path.read_text())["seconds"]  # written while still running
        now = clock.seconds()
    assert 0.05 <= first <= now  # (upper bounds only loose: a loaded machine may be slow)
    assert 0.3 <= clock.seconds() < 10
    path.write_text(json.dumps({"seconds": 100.0}))  # as left by a killed earlier session
    with TrainClock(path, every=10) as again:
        time.sleep(0.1)
    assert 100.1 <= again.seconds() < 110 and json.loads(path.read_text())["seconds"] >= 100.1


def test_findings_state_each_claim_whichever_way_it_comes_out():
    from swinlstm.engine.reproduce import findings

    def result(model, per_frame_mse, ssim):
        return {
            "model": model,
            "means": {"mse": sum(per_frame_mse) / len(per_frame_mse), "ssim": ssim},
            "per_frame": {"mse": per_frame_mse},
            "baseline_last_frame": {"mse": 50.0},
        }

    results = {
        "10-30": [
            result("convlstm", [10, 20, 30], 0.7),
            result("swinlstm-d", [8, 16, 24], 0.8),  # better than convlstm: agrees
            result("lmc-convlstm", [12, 24, 36], 0.6),  # worse than convlstm: does not agree
            result("swinlstm-d+memory", [60, 60, 60], 0.5),  # worse than repeating the frame
        ]
    }
    text = "\n".join(findings(results, blank={"10-30": 61.0}))
    assert "MSE ranking (best first): swinlstm-d 16, convlstm 20, lmc-convlstm 24" in text
    assert "Not beaten by: swinlstm-d+memory." in text
    assert (
        "swinlstm-d vs convlstm: MSE 16 vs 20 (-20%), SSIM 0.800 vs 0.700; last 1 frame(s) MSE "
        "24 vs 30 (-20%): agrees with the claim for Swin blocks" in text
    )
    assert "lmc-convlstm vs convlstm: MSE 24 vs 20 (+20%)" in text
    assert "does not agree with the claim for the LMC memory" in text
    assert "swinlstm-b" not in text  # a model that did not run is not compared
    assert "Forecasting empty frames scores MSE 61. Within 5% of it" in text
    assert "mostly black targets): swinlstm-d+memory." in text
    far = "\n".join(findings(results, blank={"10-30": 1000.0}))
    assert "Every model is more than 5% below it." in far


def test_findings_say_worse_than_empty_frames_not_within_5_percent():
    """A model far above the empty-frames MSE (775.9 vs 157.9) is not 'within 5% of' it."""
    from swinlstm.engine.reproduce import findings

    def result(model, mse):
        return {
            "model": model,
            "means": {"mse": mse, "ssim": 0.5},
            "per_frame": {"mse": [mse]},
            "baseline_last_frame": {"mse": 100.0},
        }

    results = {"10-10": [result("convlstm", 775.9), result("swinlstm-b", 155.0)]}
    text = "\n".join(findings(results, blank={"10-10": 157.9}))
    assert "Within 5% of it (" in text and "mostly black targets): swinlstm-b." in text
    assert "Worse than empty frames (over 5% above): convlstm." in text
    assert "targets): convlstm" not in text and "targets): swinlstm-b, convlstm" not in text
