"""Two CPU processes (DDP over gloo): both ranks train, metrics are reduced, one checkpoint."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
import torch

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.slow
def test_two_process_ddp_on_cpu(tmp_path):
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(ROOT), env.get("PYTHONPATH", "")])
    for var in ("RANK", "LOCAL_RANK", "WORLD_SIZE", "MASTER_ADDR", "MASTER_PORT"):
        env.pop(var, None)
    out = tmp_path / "ddp"
    done = subprocess.run(
        [sys.executable, str(ROOT / "tests" / "train_toy_run.py"), str(out), "4", "2", "-", "2"],
        env=env,
        capture_output=True,
        text=True,
        timeout=400,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    results = re.findall(r"RESULT rank=(\d) iteration=(\d+) valid_count=(\d+)", done.stdout)
    assert sorted(r[0] for r in results) == ["0", "1"], done.stdout
    # both ranks ran every iteration; the 7 validation clips (4 + 3) were counted once in all
    assert all(r[1] == "4" and r[2] == "7" for r in results), results
    ckpts = sorted(p.name for p in out.glob("*.ckpt"))
    assert ckpts == ["best.ckpt", "last.ckpt"]
    assert torch.load(out / "last.ckpt", weights_only=True)["iteration"] == 4
    assert done.stdout.count("trained 4 iterations") == 1  # one summary: rank 0 only
