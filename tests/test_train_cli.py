"""The seed's two train.py commands, every preset, the demo preset and bad flags, end to end."""

from __future__ import annotations

import glob
import os
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch

from swinlstm.cli.train import config_from_args, standalone_parser
from swinlstm.engine.config import RunConfig
from swinlstm.models import build_model

ROOT = Path(__file__).resolve().parents[1]
PRESETS = sorted(glob.glob(str(ROOT / "configs" / "*.yaml")))

# tiny SwinLSTM-D (the default model) for the seed commands
TINY_D = [
    "--patch_size", "2", "--embed_dim", "8", "--depths_down", "1", "1", "--depths_up", "1", "1",
    "--heads_number", "2", "2", "--window_size", "2",
]  # fmt: skip


def _swinlstm_has_memory() -> bool:
    try:
        build_model("swinlstm-d", img_size=16, patch_size=2, embed_dim=8, depths_down=[1, 1],
                    depths_up=[1, 1], num_heads=[2, 2], window_size=2, memory_size=2)  # fmt: skip
    except ValueError as err:
        return "not available" not in str(err)
    return True


# The seed commands train the default model (swinlstm-d) with --memory_size > 0: SwinLSTM with
# the LMC memory (issue 6). Until the model registry offers it, these are expected failures; once
# it does, they must pass (strict).
needs_swinlstm_memory = pytest.mark.xfail(
    not _swinlstm_has_memory(),
    reason="swinlstm-d with memory_size > 0 is not in this build yet (issue 6)",
    strict=True,
)


def write_frame_folders(root: Path, videos: int, frames: int, size: int, pattern: str) -> Path:
    """LMC-Memory's layout: ``root/<video>/<frame>.png`` of a bright square moving right."""
    rng = np.random.default_rng(videos * 31 + frames)
    for v in range(videos):
        folder = root / pattern.format(v=v)
        folder.mkdir(parents=True)
        y, x = rng.integers(0, size // 2, 2)
        for t in range(frames):
            img = np.zeros((size, size), np.uint8)
            xx = (x + t) % (size - size // 4)
            img[y : y + size // 4, xx : xx + size // 4] = 255
            assert cv2.imwrite(str(folder / f"frame_{t:05d}.png"), img)
    return root


def run_train(args: list[str], timeout: int = 300) -> subprocess.CompletedProcess:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(ROOT), env.get("PYTHONPATH", "")])
    return subprocess.run(
        [sys.executable, str(ROOT / "train.py"), *args],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


SEED_MODELS = [
    pytest.param(TINY_D, "swinlstm-d", id="swinlstm-d", marks=needs_swinlstm_memory),
    pytest.param(["--model", "lmc-convlstm"], "lmc-convlstm", id="lmc-convlstm"),
]


@pytest.mark.parametrize("model_flags, model_name", SEED_MODELS)
def test_seed_command_movingmnist(tmp_path, model_flags, model_name):
    train_dir = write_frame_folders(tmp_path / "train", 2, 16, 16, "video_{v:05d}")
    valid_dir = write_frame_folders(tmp_path / "valid", 1, 16, 16, "video_{v:05d}")
    out = tmp_path / "checkpoints"
    # the seed's command with its quoting, tiny sizes, --iterations 2 and a tiny model
    done = run_train(
        [
            "--dataset",
            "movingmnist",
            "--train_data_dir",
            str(train_dir),
            "--valid_data_dir",
            str(valid_dir),
            "--checkpoint_save_dir",
            str(out),
            "--img_size",
            "16",
            "--img_channel",
            "1",
            "--memory_size",
            "4",
            "--short_len",
            "4",
            "--long_len",
            "6",
            "--out_len",
            "4",
            "--batch_size",
            "2",
            "--lr",
            "0.0002",
            "--iterations",
            "2",
            "--print_freq",
            "2",
            "--workers",
            "0",
            "--progress",
            "False",
            *model_flags,
        ]  # fmt: skip
    )
    assert done.returncode == 0, done.stderr[-3000:]
    ckpt = torch.load(out / "last.ckpt", weights_only=True)
    assert ckpt["iteration"] == 2
    assert ckpt["hyper_parameters"]["model_name"] == model_name
    assert ckpt["hyper_parameters"]["model_config"]["memory_size"] == 4
    for name in ("best.ckpt", "model.safetensors", "model.json", "config.yaml", "metrics.csv"):
        assert (out / name).is_file(), name


@pytest.mark.parametrize("model_flags, model_name", SEED_MODELS)
def test_seed_command_kth_via_swinlstm_train(tmp_path, model_flags, model_name):
    # the preprocessed archive's layout: persons 01-16 train, 17-25 validation/test
    root = tmp_path / "kth"
    write_frame_folders(root / "boxing", 2, 14, 32, "person01_boxing_d{v}_uncomp")
    write_frame_folders(root / "walking", 1, 14, 32, "person17_walking_d{v}_uncomp")
    out = tmp_path / "ck"
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(ROOT), env.get("PYTHONPATH", "")])
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "swinlstm.cli.main",
            "train",
            "--dataset",
            "'kth'".strip("'"),
            "--train_data_dir",
            str(root),
            "--valid_data_dir",
            str(root),
            "--checkpoint_save_dir",
            str(out),
            "--img_size",
            "16",
            "--img_channel",
            "1",
            "--memory_size",
            "4",
            "--short_len",
            "4",
            "--long_len",
            "8",
            "--out_len",
            "8",
            "--batch_size",
            "2",
            "--lr",
            "0.0002",
            "--iterations",
            "2",
            "--print_freq",
            "1",
            "--workers",
            "0",
            "--valid_batches",
            "1",
            "--progress",
            "False",
            *model_flags,
        ],  # fmt: skip
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    assert torch.load(out / "last.ckpt", weights_only=True)["iteration"] == 2
    rows = (out / "metrics.csv").read_text().splitlines()
    assert [r.split(",")[0] for r in rows[1:]] == ["1", "2"]


def test_custom_frames_larger_than_the_model(tmp_path):
    # the report of issue 21: a folder of 240x320 frames, --img_size 32 (a non-integer shrink,
    # which OpenCV 5 refused on many channels at once)
    rng = np.random.default_rng(0)
    folder = tmp_path / "frames"
    folder.mkdir()
    for t in range(12):
        img = rng.integers(0, 256, (240, 320, 3), dtype=np.uint8)
        assert cv2.imwrite(str(folder / f"{t:04d}.jpg"), img)
    out = tmp_path / "ck"
    done = run_train(
        ["--dataset", "custom", "--train_data_dir", str(folder), "--img_size", "32",
         "--img_channel", "3", "--short_len", "2", "--out_len", "2", "--model", "convlstm",
         "--patch_size", "4", "--num_hidden", "4", "--filter_size", "3", "--batch_size", "2",
         "--iterations", "2", "--print_freq", "1", "--workers", "0", "--valid_batches", "1",
         "--progress", "False", "--checkpoint_save_dir", str(out)]
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
    assert torch.load(out / "last.ckpt", weights_only=True)["iteration"] == 2


@pytest.mark.parametrize("preset", PRESETS, ids=[Path(p).stem for p in PRESETS])
def test_every_preset_builds_its_model(preset):
    cfg = config_from_args(standalone_parser().parse_args(["--config", preset]))
    assert isinstance(cfg, RunConfig)
    cfg.validate()
    model = build_model(cfg.model.name, **cfg.model.options)
    size = cfg.data.img_size if isinstance(cfg.data.img_size, list) else [cfg.data.img_size] * 2
    assert list(model.img_size) == size
    assert model.in_chans == cfg.data.img_channel
    assert sum(p.numel() for p in model.parameters()) > 0


def _one_line_exit_2(done: subprocess.CompletedProcess, needle: str) -> None:
    assert done.returncode == 2, (done.stdout[-1000:], done.stderr[-2000:])
    lines = [line for line in done.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, done.stderr
    assert needle in lines[0], lines[0]


def test_bad_flag_unknown_dataset():
    _one_line_exit_2(run_train(["--dataset", "'ucf'"]), "invalid choice")


def test_bad_flag_long_len_over_clip(tmp_path):
    done = run_train(
        ["--short_len", "4", "--out_len", "4", "--long_len", "9", "--memory_size", "4"]
    )
    _one_line_exit_2(done, "--long_len 9 is longer")


def test_bad_flag_img_size_not_fitting_the_model(tmp_path):
    done = run_train(
        ["--model", "convlstm", "--img_size", "30", "--patch_size", "4", "--iterations", "1",
         "--checkpoint_save_dir", str(tmp_path)]
    )  # fmt: skip
    _one_line_exit_2(done, "must be divisible by patch_size=4")


def test_bad_flag_missing_data_dir(tmp_path):
    done = run_train(
        ["--dataset", "kth", "--train_data_dir", str(tmp_path / "nowhere"), "--img_size", "16",
         *TINY_D, "--checkpoint_save_dir", str(tmp_path / "o")]
    )  # fmt: skip
    _one_line_exit_2(done, "nowhere")


def test_bad_preset_key(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("lr: 0.1\nlearning_rate: 3\n")
    _one_line_exit_2(run_train(["--config", str(bad)]), "unknown keys learning_rate")


def test_resume_and_checkpoint_every_flags(tmp_path, capsys):
    cfg = config_from_args(standalone_parser().parse_args([]))
    assert cfg.output.resume is False and cfg.output.checkpoint_every == 10.0
    out = tmp_path / "out"
    args = ["--resume", "--checkpoint_every", "2.5", "--checkpoint_save_dir", str(out)]
    cfg = config_from_args(standalone_parser().parse_args(args))
    # resolved: no last.ckpt yet, so a new run (the flag becomes the file it found, or none)
    assert cfg.output.checkpoint_every == 2.5 and cfg.output.checkpoint_load_file is None
    assert f"no {out / 'last.ckpt'} yet: starting a new run" in capsys.readouterr().out
    args = ["--checkpoint_load_file", "auto", "--checkpoint_save_dir", str(out)]
    assert (
        config_from_args(standalone_parser().parse_args(args)).output.checkpoint_load_file is None
    )


def test_resume_command_is_the_command_run_with_resume_added(monkeypatch):
    import shutil as sh

    from swinlstm.cli.train import resume_command

    monkeypatch.setattr(sh, "which", lambda name: None)
    py = sys.executable
    assert resume_command(["train.py", "--lr", "1e-4", "--checkpoint_save_dir", "my runs"]) == (
        f"{py} train.py --lr 1e-4 --checkpoint_save_dir 'my runs' --resume"
    )
    main = str(ROOT / "swinlstm" / "cli" / "main.py")
    assert (
        resume_command([main, "train", "--resume"]) == f"{py} -m swinlstm.cli.main train --resume"
    )
    assert resume_command(["/opt/bin/swinlstm", "train"]) == "/opt/bin/swinlstm train --resume"


def test_a_failed_run_is_one_line_and_exit_1(monkeypatch, capsys):
    import swinlstm.engine.train as engine
    from swinlstm.cli.main import run
    from swinlstm.engine.errors import TrainingFailed

    def fail(config):
        raise TrainingFailed("training loss is nan at iteration 7; the last good checkpoint is x")

    monkeypatch.setattr(engine, "train", fail)
    assert run(["train", "--iterations", "1"]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert err == [
        "swinlstm train: error: training loss is nan at iteration 7; the last good checkpoint is x"
    ]


@pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has a CUDA GPU")
def test_bad_flag_accelerator_gpu_without_one(tmp_path):
    done = run_train(["--model", "convlstm", "--img_size", "16", "--patch_size", "4",
                      "--accelerator", "gpu", "--checkpoint_save_dir", str(tmp_path)])  # fmt: skip
    _one_line_exit_2(done, "--accelerator gpu: not available; this machine has cpu")
