"""Runs that must stop cleanly: a loss that blows up, non-finite weights, a checkpoint write that
fails (full disk, read-only, folder removed), hardware this machine lacks; plus the time-based
checkpoint and ``resume``. Each leaves the files from before intact and says so in one line."""

from __future__ import annotations

import errno
import json
import math
import re
import shutil
import signal
import subprocess
from pathlib import Path

import lightning.pytorch as pl
import pytest
import torch
from safetensors.torch import load_file
from train_helpers import ToyClips, toy_config

from swinlstm.engine.checkpoint import write_files
from swinlstm.engine.errors import CheckpointWriteError, TrainingFailed
from swinlstm.engine.train import _check_hardware, run_training, train

FILES = ("last.ckpt", "best.ckpt", "model.safetensors", "model.json", "metrics.csv")


class At(pl.Callback):
    """Calls ``action(trainer, module)`` at the end of training iteration ``iteration``."""

    def __init__(self, iteration: int, action) -> None:
        self.iteration, self.action = iteration, action

    def on_train_batch_end(self, trainer, pl_module, *args) -> None:
        if pl_module.iteration == self.iteration:
            self.action(trainer, pl_module)


def _run_until(out: Path, at: At, **config):
    """A toy training into ``out`` (8 iterations, validating every 2) that ``at`` interrupts."""
    config = {"iterations": 8, "print_freq": 2, **config}
    return run_training(toy_config(out, **config), ToyClips(8), ToyClips(3), callbacks=[at])


def _snapshot(out: Path) -> dict[str, bytes]:
    return {n: (out / n).read_bytes() for n in FILES if (out / n).is_file()}


def _iteration(path: Path) -> int:
    return torch.load(path, map_location="cpu", weights_only=True)["iteration"]


def _assert_consistent_and_finite(out: Path) -> None:
    """best.ckpt, model.safetensors and model.json hold the same weights, all finite."""
    best = torch.load(out / "best.ckpt", map_location="cpu", weights_only=True)
    meta = json.loads((out / "model.json").read_text())
    assert meta["iteration"] == best["iteration"]
    weights = load_file(str(out / "model.safetensors"))
    for key, value in weights.items():
        assert torch.isfinite(value).all(), key
        torch.testing.assert_close(best["state_dict"][f"model.{key}"], value)
    last = torch.load(out / "last.ckpt", map_location="cpu", weights_only=True)
    assert all(torch.isfinite(v).all() for v in last["state_dict"].values())
    assert not list(out.glob(".*tmp*"))


# ----- bad numbers ----------------------------------------------------------------------------


def test_a_learning_rate_that_blows_up_stops_at_the_first_nan_loss(tmp_path):
    def blow_up(trainer, module):
        for group in trainer.optimizers[0].param_groups:
            group["lr"] = 1e38

    with pytest.raises(TrainingFailed) as info:
        _run_until(tmp_path, At(4, blow_up), iterations=40)
    message = str(info.value)
    found = re.search(r"training loss is (nan|inf) at iteration (\d+).*last good checkpoint is "
                      r"(\S+) \(iteration (\d+)\)", message)  # fmt: skip
    assert found, message
    failed_at, good = int(found[2]), int(found[4])
    assert 4 < failed_at < 40 and 4 <= good < failed_at
    assert found[3] == str(tmp_path / "last.ckpt") and _iteration(tmp_path / "last.ckpt") == good
    _assert_consistent_and_finite(tmp_path)


def test_non_finite_weights_are_never_written_over_a_good_checkpoint(tmp_path):
    saved = {}

    def poison(trainer, module):
        saved.update(_snapshot(tmp_path))
        with torch.no_grad():
            module.model.out.bias.fill_(math.inf)

    with pytest.raises(TrainingFailed, match=r"weights are not finite at iteration 4 \(out.bias\)"):
        _run_until(tmp_path, At(4, poison))
    assert _snapshot(tmp_path) == saved and _iteration(tmp_path / "last.ckpt") == 2
    _assert_consistent_and_finite(tmp_path)


# ----- writes that fail -------------------------------------------------------------------------


def test_write_files_changes_all_files_or_none(tmp_path):
    a, b = tmp_path / "a", tmp_path / "b"
    write_files([(a, lambda p: Path(p).write_text("1")), (b, lambda p: Path(p).write_text("1"))])

    def full(p):
        Path(p).write_text("partial")
        raise OSError(errno.ENOSPC, "No space left on device")

    with pytest.raises(CheckpointWriteError, match=rf"cannot write {b}: no space left on device"):
        write_files([(a, lambda p: Path(p).write_text("2")), (b, full)])
    assert a.read_text() == "1" and b.read_text() == "1"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a", "b"]  # no temporary file left


def test_enospc_while_writing_a_new_best_changes_none_of_the_files(tmp_path, monkeypatch):
    import safetensors.torch

    saved = {}

    def fill_disk(trainer, module):
        saved.update(_snapshot(tmp_path))

        def no_space(*args, **kwargs):
            raise OSError(errno.ENOSPC, "No space left on device")

        monkeypatch.setattr(safetensors.torch, "save", no_space)

    with pytest.raises(CheckpointWriteError, match=r"model.safetensors: no space left on device"):
        _run_until(tmp_path, At(3, fill_disk))
    assert saved and _snapshot(tmp_path) == saved  # last, best, weights, json, csv: all of 2
    _assert_consistent_and_finite(tmp_path)


def test_folder_removed_mid_run_is_an_error_not_recreated(tmp_path):
    out = tmp_path / "run"
    with pytest.raises(CheckpointWriteError, match=rf"the folder {out} no longer exists"):
        _run_until(out, At(3, lambda t, m: shutil.rmtree(out)), checkpoint_every=0)
    assert not out.exists()  # not silently made again (an unmounted disk stays unmounted)


@pytest.fixture
def small_disk(tmp_path):
    """A 2 MiB tmpfs mounted by the test (root only)."""
    mount = tmp_path / "disk"
    mount.mkdir()
    done = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=2m", "tmpfs", str(mount)], capture_output=True
    )
    if done.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here (needs root): {done.stderr.decode().strip()}")
    yield mount
    subprocess.run(["umount", "-l", str(mount)], check=False)


def test_a_full_disk_stops_with_the_files_from_before(small_disk):
    out = small_disk / "run"
    saved = {}

    def fill(trainer, module):
        saved.update(_snapshot(out))
        try:
            with open(small_disk / "filler", "wb") as f:
                while True:
                    f.write(b"\0" * 4096)
                    f.flush()
        except OSError:  # full
            pass

    with pytest.raises(CheckpointWriteError, match=r"cannot write .*: no space left on device"):
        _run_until(out, At(3, fill))
    assert saved and _snapshot(out) == saved and _iteration(out / "last.ckpt") == 2
    _assert_consistent_and_finite(out)


def test_a_read_only_disk_stops_with_the_files_from_before(small_disk):
    out = small_disk / "run"
    saved = {}

    def read_only(trainer, module):
        saved.update(_snapshot(out))
        subprocess.run(["mount", "-o", "remount,ro", str(small_disk)], check=True)

    with pytest.raises(CheckpointWriteError, match=r"cannot write .*: read-only file system"):
        _run_until(out, At(3, read_only))
    assert saved and _snapshot(out) == saved
    _assert_consistent_and_finite(out)


# ----- hardware ---------------------------------------------------------------------------------


@pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has a CUDA GPU")
@pytest.mark.parametrize("accelerator", ["gpu", "cuda"])
def test_gpu_flags_without_a_gpu(tmp_path, accelerator):
    from swinlstm.engine.config import RunConfig

    with pytest.raises(ValueError, match=rf"--accelerator {accelerator}: not available; this "
                       r"machine has cpu \(\d+ cores.*no CUDA GPU"):  # fmt: skip
        _check_hardware(RunConfig.of(toy_config(tmp_path, accelerator=accelerator)))


def test_mps_without_mps(tmp_path):
    from swinlstm.engine.config import RunConfig

    if getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available():
        pytest.skip("this machine has MPS")
    with pytest.raises(ValueError, match=r"--accelerator mps: not available; this machine has"):
        _check_hardware(RunConfig.of(toy_config(tmp_path, accelerator="mps")))


@pytest.mark.parametrize(
    "change, needle",
    [
        ({"strategy": "bogus"}, "--strategy bogus"),
        ({"devices": 0}, "--devices 0"),
    ],
)
def test_strategy_or_devices_lightning_refuses_is_one_line(tmp_path, change, needle):
    with pytest.raises(ValueError) as info:
        train(toy_config(tmp_path, **change), ToyClips(8))
    message = str(info.value)
    assert needle in message and "this machine has cpu" in message and "\n" not in message


# ----- time-based checkpoint and resume ---------------------------------------------------------


class SavedIterations(pl.Callback):
    """The iteration in last.ckpt at the start of each training batch."""

    def __init__(self, out: Path) -> None:
        self.out, self.seen = out, []

    def on_train_batch_start(self, trainer, pl_module, *args) -> None:
        path = self.out / "last.ckpt"
        self.seen.append(_iteration(path) if path.is_file() else None)


@pytest.mark.parametrize("minutes, expected", [(1e-9, [None, 1, 2, 3, 4]), (0, [None] * 5)])
def test_checkpoint_every_writes_last_ckpt_without_validating(tmp_path, minutes, expected):
    seen = SavedIterations(tmp_path)
    # what the process had before (SIGINT is ignored, not Python's default, in a process started
    # in the background by a shell without job control)
    before = signal.getsignal(signal.SIGINT), signal.getsignal(signal.SIGTERM)
    run_training(
        toy_config(tmp_path, iterations=5, print_freq=100, checkpoint_every=minutes),
        ToyClips(8),
        ToyClips(3),
        callbacks=[seen],
    )
    assert seen.seen == expected
    # the run's signal handlers are gone once it ends (Lightning restores its own first)
    assert (signal.getsignal(signal.SIGINT), signal.getsignal(signal.SIGTERM)) == before
    assert not (tmp_path / "metrics.csv").exists()  # no validation ran
    assert _iteration(tmp_path / "last.ckpt") == 5


def test_bad_checkpoint_every(tmp_path):
    with pytest.raises(ValueError, match="--checkpoint_every must be >= 0"):
        train(toy_config(tmp_path, checkpoint_every=-1), ToyClips(8))


@pytest.mark.parametrize("how", [{"resume": True}, {"checkpoint_load_file": "auto"}])
def test_resume_starts_fresh_then_continues_from_last_ckpt(tmp_path, capsys, how):
    first = run_training(toy_config(tmp_path, **how), ToyClips(8), ToyClips(3))
    assert first.module.iteration == 4
    assert f"no {tmp_path / 'last.ckpt'} yet: starting a new run" in capsys.readouterr().out
    again = run_training(toy_config(tmp_path, iterations=6, **how), ToyClips(8), ToyClips(3))
    assert f"resuming from {tmp_path / 'last.ckpt'} at iteration 4" in capsys.readouterr().out
    assert again.module.iteration == 6 and again.trainer.global_step == 6
    rows = (tmp_path / "metrics.csv").read_text().splitlines()
    assert [r.split(",")[0] for r in rows[1:]] == ["2", "4", "6"]


def test_resume_prefers_last_ckpt_over_the_fine_tune_file(tmp_path):
    source = tmp_path / "src"
    run_training(toy_config(source), ToyClips(8), ToyClips(3))
    out = tmp_path / "out"
    cfg = toy_config(out, resume=True, checkpoint_load_file=str(source / "model.safetensors"))
    assert run_training(cfg, ToyClips(8), ToyClips(3)).module.iteration == 4  # fine-tuned
    cfg["iterations"] = 5
    assert run_training(cfg, ToyClips(8), ToyClips(3)).module.iteration == 5  # resumed at 4


def test_resume_refuses_a_checkpoint_trained_with_other_settings(tmp_path):
    run_training(toy_config(tmp_path), ToyClips(8), ToyClips(3))
    changed = toy_config(tmp_path, iterations=6, resume=True, lr=5e-3, batch_size=4)
    with pytest.raises(ValueError) as info:
        train(changed, ToyClips(8), ToyClips(3))
    message = str(info.value)
    assert "was trained with batch_size=2, lr=0.01; the flags give batch_size=4, lr=0.005" in (
        message
    )
    assert "\n" not in message
    # settings a resumed run may change are accepted
    fine = toy_config(tmp_path, iterations=6, resume=True, print_freq=3, checkpoint_every=1)
    assert run_training(fine, ToyClips(8), ToyClips(3)).module.iteration == 6


def test_resume_takes_the_runs_settings_where_left_at_their_defaults(tmp_path):
    import yaml

    run_training(toy_config(tmp_path, batch_size=4, seed=7), ToyClips(8), ToyClips(3))
    silent = toy_config(tmp_path, iterations=6, resume=True)
    del silent["batch_size"]  # RunConfig's 16 / 1234: not asked for, so the run's 4 / 7
    result = run_training(silent, ToyClips(8), ToyClips(3))
    assert result.module.iteration == 6
    config = yaml.safe_load((tmp_path / "config.yaml").read_text())
    assert config["data"]["batch_size"] == 4 and config["data"]["seed"] == 7
