"""``swinlstm demo`` end to end on a tiny preset the test writes (the real preset takes minutes)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from evalcli_helpers import require
from PIL import Image

from swinlstm.cli.demo import PRESET, preset_path
from swinlstm.cli.main import run

ROOT = Path(__file__).resolve().parents[1]


def test_preset_found_beside_the_package_or_in_cwd(tmp_path, monkeypatch):
    if (ROOT / PRESET).is_file():
        assert preset_path() == ROOT / PRESET
    with pytest.raises(FileNotFoundError, match="--config file not found"):
        preset_path(str(tmp_path / "none.yaml"))


def test_demo_on_tiny_preset_writes_everything(tmp_path, capsys):
    require("swinlstm.cli.train", "add_parser")
    require("swinlstm.metrics", "MetricAccumulator")
    preset = tmp_path / "tiny.yaml"
    preset.write_text(
        "model: convlstm\nnum_hidden: [4]\nimg_size: 32\nimg_channel: 1\nshort_len: 4\n"
        "out_len: 3\nbatch_size: 2\niterations: 4\nprint_freq: 2\nvalid_batches: 1\n"
        "progress: false\n"
    )
    out = tmp_path / "demo"
    argv = ["demo", "--output", str(out), "--config", str(preset), "--iterations", "2"]
    assert run(argv + ["--test_clips", "4", "--num_frames_to_save", "2"]) == 0
    printed = capsys.readouterr().out
    assert "repeating the last input frame" in printed
    data = json.loads((out / "metrics.json").read_text())
    assert data["mse"] > 0 and data["baseline_last_frame"]["mse"] > 0
    for name in ("metrics.csv", "per_frame.png", "comparison.png"):
        assert (out / name).is_file()
    with Image.open(out / "gifs" / "00001.gif") as im:
        assert im.n_frames == 4 + 3
    assert not (out / "gifs" / "00002.gif").exists()
    assert (out / "checkpoints" / "model.safetensors").is_file()


def test_relative_change_says_higher_when_worse_than_the_baseline():
    from swinlstm.cli.demo import relative_change

    assert relative_change(36.6, 63.3) == "42% lower"
    assert relative_change(288.7, 63.3) == "356% higher"  # not "-356% lower"
    assert relative_change(63.3, 63.3) == "0% lower"
