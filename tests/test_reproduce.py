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
    assert "| repeat last frame |" in text
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
