"""Kill -9 in the middle of training, resume from last.ckpt: same step, same data, same result."""

from __future__ import annotations

import csv
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file
from train_helpers import ToyClips

from swinlstm.engine.train import run_training

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = ROOT / "tests" / "train_toy_run.py"


def _env() -> dict:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(ROOT), env.get("PYTHONPATH", "")])
    return env


def _saved_iteration(path: Path) -> int | None:
    try:
        return torch.load(path, map_location="cpu", weights_only=True)["iteration"]
    except Exception:
        return None


@pytest.mark.slow
def test_resume_after_kill_continues_at_the_same_step(tmp_path):
    out = tmp_path / "run"
    proc = subprocess.Popen(
        [sys.executable, str(SCRIPT), str(out), "20", "5", "-", "1", "0.25"],
        env=_env(),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.time() + 240
        while _saved_iteration(out / "last.ckpt") is None:
            assert proc.poll() is None, "training ended before writing a checkpoint"
            assert time.time() < deadline, "no checkpoint within 240 s"
            time.sleep(0.1)
        time.sleep(0.6)  # kill somewhere inside the next print_freq window
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait()
    killed_at = _saved_iteration(out / "last.ckpt")  # loads: never truncated
    assert killed_at is not None and killed_at % 5 == 0 and 5 <= killed_at < 20

    done = subprocess.run(
        [sys.executable, str(SCRIPT), str(out), "20", "5", str(out / "last.ckpt")],
        env=_env(),
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    assert "RESULT rank=0 iteration=20" in done.stdout
    assert _saved_iteration(out / "last.ckpt") == 20
    rows = list(csv.DictReader(open(out / "metrics.csv")))
    assert [int(r["iteration"]) for r in rows] == [5, 10, 15, 20]
    losses = [float(r["train_loss"]) for r in rows]
    assert losses[-1] < losses[0]
    seconds = [float(r["train_seconds"]) for r in rows]  # summed over the killed and resumed runs
    assert 0 < seconds[0] and all(a <= b for a, b in zip(seconds, seconds[1:]))

    # the same run without the kill ends with the same weights (data order, optimiser, RNG)
    ref = tmp_path / "ref"
    run_training(
        {
            "model": "toy",
            "model_config": {"img_size": 16, "in_chans": 1},
            "img_size": 16,
            "short_len": 3,
            "out_len": 2,
            "batch_size": 2,
            "iterations": 20,
            "print_freq": 5,
            "checkpoint_save_dir": str(ref),
            "workers": 0,
            "accelerator": "cpu",
            "lr": 1e-2,
            "progress": False,
        },
        ToyClips(12),
        ToyClips(7),
    )
    a, b = load_file(str(out / "model.safetensors")), load_file(str(ref / "model.safetensors"))
    for key in b:
        torch.testing.assert_close(a[key], b[key], rtol=1e-5, atol=1e-6)
