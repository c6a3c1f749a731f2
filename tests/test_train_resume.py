"""Stop a real training process (kill -9, SIGTERM, SIGINT, twice SIGINT, DDP), resume from
last.ckpt: same step, same data, same result; the CLI's resume line reruns the job."""

from __future__ import annotations

import csv
import os
import re
import shlex
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file
from train_helpers import ToyClips, toy_config

from swinlstm.engine.train import run_training

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = ROOT / "tests" / "train_toy_run.py"


def _env() -> dict:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(ROOT), env.get("PYTHONPATH", "")])
    for var in ("RANK", "LOCAL_RANK", "WORLD_SIZE", "MASTER_ADDR", "MASTER_PORT"):
        env.pop(var, None)  # a DDP run starts its own ranks
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
    _assert_same_weights_as_uninterrupted(out, tmp_path / "ref", iterations=20, print_freq=5)


def _assert_same_weights_as_uninterrupted(out: Path, ref: Path, iterations: int, print_freq: int):
    run_training(
        toy_config(ref, iterations=iterations, print_freq=print_freq),
        ToyClips(12),
        ToyClips(7),
    )
    a, b = load_file(str(out / "model.safetensors")), load_file(str(ref / "model.safetensors"))
    for key in b:
        torch.testing.assert_close(a[key], b[key], rtol=1e-5, atol=1e-6)
    a, b = (torch.load(d / "last.ckpt", weights_only=True)["state_dict"] for d in (out, ref))
    for key in b:
        torch.testing.assert_close(a[key], b[key], rtol=1e-5, atol=1e-6)


def _start(args: list[str], log: Path, **kw) -> subprocess.Popen:
    """A process in its own session (a terminal's Ctrl-C reaches its whole group), output to log."""
    return subprocess.Popen(
        args,
        env=_env(),
        stdout=open(log, "w"),
        stderr=subprocess.STDOUT,
        start_new_session=True,
        **kw,
    )


def _wait_for(proc: subprocess.Popen, log: Path, pattern: str, timeout: float = 240) -> re.Match:
    deadline = time.time() + timeout
    while True:
        found = re.search(pattern, log.read_text())
        if found:
            return found
        assert proc.poll() is None, f"ended before {pattern!r}: {log.read_text()[-3000:]}"
        assert time.time() < deadline, f"no {pattern!r} within {timeout} s"
        time.sleep(0.1)


def _toy(out: Path, iterations: int, print_freq: int, resume: str = "-", devices: int = 1,
         sleep: float = 0.0) -> list[str]:  # fmt: skip
    return [sys.executable, str(SCRIPT), str(out), str(iterations), str(print_freq), resume,
            str(devices), str(sleep)]  # fmt: skip


@pytest.mark.slow
def test_sigterm_saves_the_iteration_reached_and_resumes_to_the_same_weights(tmp_path):
    out, log = tmp_path / "run", tmp_path / "log"
    proc = _start(_toy(out, 12, 5, sleep=0.15), log)
    _wait_for(proc, log, r"STARTED rank=0")
    while _saved_iteration(out / "last.ckpt") is None:  # past the first validation (5)
        assert proc.poll() is None, log.read_text()[-3000:]
        time.sleep(0.05)
    time.sleep(0.3)  # inside the next print_freq window
    proc.send_signal(signal.SIGTERM)  # a scheduler's stop: the main process only
    assert proc.wait(timeout=60) == 143, log.read_text()[-3000:]
    stopped = int(re.search(r"STOPPED rank=0 iteration=(\d+) code=143", log.read_text())[1])
    assert 5 < stopped < 12
    assert _saved_iteration(out / "last.ckpt") == stopped  # not the last print_freq multiple
    assert not list(out.glob(".*tmp*"))

    done = subprocess.run(
        _toy(out, 12, 5, str(out / "last.ckpt")), env=_env(), capture_output=True, text=True,
        timeout=300,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-2000:]
    assert f"resuming from {out / 'last.ckpt'} at iteration {stopped}" in done.stdout
    assert "RESULT rank=0 iteration=12" in done.stdout
    rows = list(csv.DictReader(open(out / "metrics.csv")))
    assert [int(r["iteration"]) for r in rows] == [5, 10]
    _assert_same_weights_as_uninterrupted(out, tmp_path / "ref", iterations=12, print_freq=5)


@pytest.mark.slow
def test_a_second_sigint_aborts_at_once(tmp_path):
    out, log = tmp_path / "run", tmp_path / "log"
    proc = _start(_toy(out, 100, 50, sleep=3.0), log)  # each iteration takes 3 s
    _wait_for(proc, log, r"STARTED rank=0")
    time.sleep(0.5)
    os.killpg(proc.pid, signal.SIGINT)
    _wait_for(proc, log, r"SIGINT: stopping after this iteration")
    began = time.time()
    os.killpg(proc.pid, signal.SIGINT)
    assert proc.wait(timeout=30) == 130
    assert time.time() - began < 2.0  # did not wait for the 3 s iteration to end
    text = log.read_text()
    assert "second SIGINT: aborting at once" in text and "STOPPED" not in text
    assert not (out / "last.ckpt").exists()


@pytest.mark.slow
def test_sigterm_to_rank_0_stops_every_ddp_rank_with_one_checkpoint(tmp_path):
    out, log = tmp_path / "ddp", tmp_path / "log"
    proc = _start(_toy(out, 1000, 1000, devices=2, sleep=0.2), log)
    _wait_for(proc, log, r"STARTED rank=1")
    _wait_for(proc, log, r"STARTED rank=0")
    time.sleep(1.0)
    proc.send_signal(signal.SIGTERM)  # kill -TERM <rank 0>: rank 1 learns it at the next step
    assert proc.wait(timeout=120) == 143, log.read_text()[-3000:]
    deadline = time.time() + 60
    while "STOPPED rank=1" not in log.read_text():
        assert time.time() < deadline, log.read_text()[-3000:]
        time.sleep(0.1)
    text = log.read_text()
    its = {int(i) for i in re.findall(r"STOPPED rank=\d iteration=(\d+) code=143", text)}
    assert len(its) == 1 and sorted(re.findall(r"STOPPED rank=(\d)", text)) == ["0", "1"]
    assert _saved_iteration(out / "last.ckpt") == its.pop()
    assert sorted(p.name for p in out.iterdir() if p.name.endswith("ckpt")) == ["last.ckpt"]
    assert not list(out.glob(".*tmp*"))


@pytest.mark.slow
def test_cli_ctrl_c_then_the_printed_command_then_kill_term(tmp_path):
    """As a user: Ctrl-C (SIGINT to the whole group, loader workers included), rerun the command
    the run printed, stop that with kill -TERM; each continues where the last one stopped."""
    import numpy as np

    clips = tmp_path / "clips.npy"
    np.save(clips, (np.random.default_rng(0).random((6, 12, 16, 16)) * 255).astype(np.uint8))
    out = tmp_path / "run"
    args = [
        sys.executable, "-m", "swinlstm.cli.main", "train", "--dataset", "custom",
        "--train_data_dir", str(clips), "--model", "convlstm", "--num_hidden", "4",
        "--filter_size", "3", "--patch_size", "4", "--img_size", "16", "--short_len", "3",
        "--out_len", "2", "--batch_size", "2", "--iterations", "100000", "--print_freq", "10",
        "--workers", "1", "--accelerator", "cpu", "--progress", "False",
        "--checkpoint_save_dir", str(out),
    ]  # fmt: skip
    log = tmp_path / "first.log"
    proc = _start(args, log, cwd=tmp_path)
    _wait_for(proc, log, r"iter 10/100000")
    os.killpg(proc.pid, signal.SIGINT)  # what Ctrl-C in a terminal does
    assert proc.wait(timeout=60) == 130, log.read_text()[-3000:]
    lines = re.findall(r"interrupted at iteration (\d+); resume with: (.*)", log.read_text())
    assert len(lines) == 1, log.read_text()[-3000:]
    first, command = int(lines[0][0]), lines[0][1]
    assert first >= 10 and _saved_iteration(out / "last.ckpt") == first
    assert shlex.split(command)[-1] == "--resume"

    log = tmp_path / "second.log"
    proc = _start(shlex.split(command), log, cwd=tmp_path)  # the exact command printed
    _wait_for(proc, log, rf"resuming from {re.escape(str(out))}/last.ckpt at iteration {first}")
    _wait_for(proc, log, r"iter \d+/100000")  # a validation after the resumed start
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(timeout=60) == 143, log.read_text()[-3000:]
    second = int(re.search(r"interrupted at iteration (\d+); resume with", log.read_text())[1])
    assert second > first and _saved_iteration(out / "last.ckpt") == second
    assert "Traceback" not in log.read_text()


@pytest.mark.slow
def test_slurm_sigusr1_saves_then_requeues_the_job(tmp_path):
    """Under SLURM, ``--signal=USR1@SECONDS`` (Lightning's requeue signal): save, scontrol requeue."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    calls = tmp_path / "scontrol.calls"
    fake = bin_dir / "scontrol"
    fake.write_text(f'#!/bin/sh\necho "$@" >> {calls}\n')
    fake.chmod(0o755)
    out, log = tmp_path / "run", tmp_path / "log"
    env = {"SLURM_JOB_ID": "4242", "PATH": f"{bin_dir}{os.pathsep}{os.environ['PATH']}"}
    proc = subprocess.Popen(
        _toy(out, 1000, 1000, sleep=0.1), env={**_env(), **env}, stdout=open(log, "w"),
        stderr=subprocess.STDOUT,
    )  # fmt: skip
    _wait_for(proc, log, r"STARTED rank=0")
    time.sleep(0.5)
    proc.send_signal(signal.SIGUSR1)
    assert proc.wait(timeout=60) == 128 + signal.SIGUSR1, log.read_text()[-3000:]
    stopped = int(re.search(r"STOPPED rank=0 iteration=(\d+)", log.read_text())[1])
    assert _saved_iteration(out / "last.ckpt") == stopped > 0
    assert calls.read_text().split() == ["requeue", "4242"]
    assert "requeued SLURM job 4242" in log.read_text()


STOP_IN_VALIDATION = """
import os, signal, sys
sys.path.insert(0, {tests!r})
import lightning.pytorch as pl
from train_helpers import ToyClips, toy_config
from swinlstm.engine.errors import TrainingInterrupted
from swinlstm.engine.train import run_training

class TermInValidation(pl.Callback):
    def on_validation_start(self, trainer, pl_module):
        if pl_module.iteration == 4:
            os.kill(os.getpid(), signal.SIGTERM)

try:
    run_training(toy_config({out!r}, iterations=100, print_freq=2, workers=2), ToyClips(8),
                 ToyClips(5), callbacks=[TermInValidation()])
except TrainingInterrupted as stop:
    print("STOPPED", stop.iteration, flush=True)
    sys.exit(stop.exit_code)
"""


@pytest.mark.slow
def test_sigterm_during_validation_with_loader_workers_exits(tmp_path):
    """The validation finishes, last.ckpt is written, and the process exits: the loader workers
    (which ignore SIGTERM) are ended, not waited for at Python's exit."""
    out = tmp_path / "run"
    code = STOP_IN_VALIDATION.format(tests=str(ROOT / "tests"), out=str(out))
    done = subprocess.run(
        [sys.executable, "-c", code], env=_env(), capture_output=True, text=True, timeout=300
    )
    assert done.returncode == 143, done.stderr[-3000:]
    assert "STOPPED 4" in done.stdout
    assert _saved_iteration(out / "last.ckpt") == 4
    assert [r["iteration"] for r in csv.DictReader(open(out / "metrics.csv"))] == ["2", "4"]
