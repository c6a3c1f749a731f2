"""docs/tutorial.md runs: every ```bash command and ```python block, in order, on small stand-ins
of the files it names (made here), with the iteration counts shrunk by flags appended."""

from __future__ import annotations

import contextlib
import io
import json
import re
import shlex
from pathlib import Path

import cv2
import numpy as np
import pytest

from swinlstm.cli.main import run

ROOT = Path(__file__).resolve().parents[1]
TUTORIAL = ROOT / "docs" / "tutorial.md"
BLOCK = re.compile(r"^```(bash|python)\n(.*?)^```", re.S | re.M)
# appended to the doc's commands (argparse: the last value of a flag wins): fewer, smaller steps
SHRINK = {
    "train": ["--iterations", "1", "--print_freq", "1", "--batch_size", "2"]
    + ["--valid_batches", "1", "--valid_batch_size", "2", "--workers", "0", "--progress", "False"],
    "test": ["--max_batches", "1", "--batch_size", "2", "--workers", "0"],
}


def tutorial_steps() -> list[tuple[str, str, int]]:
    """(kind, text, line) of each step: a bash command (continuations joined) or a python block."""
    text = TUTORIAL.read_text()
    steps = []
    for match in BLOCK.finditer(text):
        kind, body = match.groups()
        line = text[: match.start()].count("\n") + 2
        if kind == "python":
            steps.append(("python", body, line))
            continue
        for command in body.replace("\\\n", " ").splitlines():
            if command.strip() and not command.strip().startswith("#"):
                steps.append(("bash", command.strip(), line))
    return steps


def _moving_square(t: int, h: int, w: int, c: int, seed: int) -> np.ndarray:
    """uint8 (T, H, W, C): a bright square moving one pixel per frame over noise."""
    rng = np.random.default_rng(seed)
    frames = rng.integers(0, 40, (t, h, w, c), dtype=np.uint8)
    y, x = int(rng.integers(0, h - 8)), int(rng.integers(0, w - 8))
    for k in range(t):
        xx = (x + k) % (w - 8)
        frames[k, y : y + 8, xx : xx + 8] = 230
    return frames


def _write_video(path: Path, frames: np.ndarray) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    h, w = frames.shape[1:3]
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), 10, (w, h))
    assert writer.isOpened(), "OpenCV cannot write MJPG .avi here"
    for frame in frames:
        writer.write(frame)
    writer.release()


def make_stand_ins(root: Path) -> None:
    """Small versions of every file the tutorial names (sizes unlike the model's: resized)."""
    for i in range(3):
        _write_video(root / "my_videos" / f"clip_{i}.avi", _moving_square(22, 48, 64, 3, i))
    _write_video(root / "my_test_videos" / "walk.avi", _moving_square(22, 48, 64, 3, 9))
    for i in range(3):
        folder = root / "my_frames" / f"clip_{i:03d}"
        folder.mkdir(parents=True)
        for k, frame in enumerate(_moving_square(11, 60, 100, 3, 10 + i)):
            cv2.imwrite(str(folder / f"{k + 1:04d}.png"), frame)
    clips = np.stack([_moving_square(20, 64, 64, 1, 20 + i)[..., 0] for i in range(4)])
    np.save(root / "clips.npy", clips)  # (N, T, H, W) uint8
    rng = np.random.default_rng(0)
    np.save(root / "flows.npy", rng.gamma(2.0, 60.0, (5, 8, 2, 32, 32)).astype(np.float32))
    np.save(root / "series.npy", rng.normal(20.0, 5.0, (5, 24, 60)).astype(np.float32))


STEPS = tutorial_steps()


def test_the_tutorial_shows_every_step():
    bash = [text for kind, text, _ in STEPS if kind == "bash"]
    subcommands = [shlex.split(c)[1] for c in bash]
    assert {"train", "test", "predict"} <= set(subcommands)
    assert sum(kind == "python" for kind, _, _ in STEPS) >= 3
    assert all(c.startswith("swinlstm ") for c in bash), "a command the test cannot run"


@pytest.mark.slow  # 185 s at load average 8 on this 2-core machine (six trainings of one step)
def test_every_tutorial_step_runs(tmp_path, monkeypatch):
    make_stand_ins(tmp_path)
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("MPLBACKEND", "Agg")
    for kind, text, line in STEPS:
        where = f"docs/tutorial.md:{line}"
        if kind == "python":
            with contextlib.redirect_stdout(io.StringIO()) as printed:
                exec(compile(text, where, "exec"), {"__name__": "__tutorial__"})
            if "build_model" in text:  # the patch / window table: 48x80 patch 4 window 4 unpadded
                assert "(48, 80) patch 4 window 4 -> tokens (12, 20) padded frame (48, 80)" in (
                    printed.getvalue()
                )
                assert "(48, 80) patch 4 window 8 -> tokens (16, 24)" in printed.getvalue()
            continue
        argv = shlex.split(text, comments=True)[1:]
        assert run(argv + SHRINK.get(argv[0], [])) == 0, f"{where}: {text}"
    # what the tutorial says each step leaves
    for run_dir in ("videos", "frames", "array", "flows", "series"):
        assert (tmp_path / "runs" / run_dir / "model.safetensors").is_file(), run_dir
    assert (tmp_path / "runs" / "frames" / "tensorboard").is_dir()
    metrics = json.loads((tmp_path / "runs" / "videos_test" / "metrics.json").read_text())
    assert "mse" in json.dumps(metrics)
    forecast = np.load(tmp_path / "runs" / "forecast" / "prediction.npy")
    assert forecast.shape == (10, 1, 64, 64) and 0 <= forecast.min() <= forecast.max() <= 1
    series_frames = np.load(tmp_path / "series_frames.npy")
    assert series_frames.shape == (5, 24, 8, 8) and series_frames.max() <= 1
    assert np.all(series_frames[..., -1, 4:] == 0)  # 60 values, then 4 zeros
    flows01 = np.load(tmp_path / "flows01.npy")
    assert flows01.min() == 0 and flows01.max() == pytest.approx(1)
    assert (tmp_path / "runs" / "compare").is_dir()
