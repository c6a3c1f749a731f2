"""``swinlstm demo`` end to end on a tiny preset the test writes (the real preset takes minutes)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from evalcli_helpers import require
from PIL import Image

from swinlstm.cli.main import run
from swinlstm.demo import PRESET, preset_path

ROOT = Path(__file__).resolve().parents[1]


def tiny_preset(tmp_path: Path) -> Path:
    """A preset that trains in seconds (4 -> 3 frames of 32x32, a 4-channel ConvLSTM)."""
    preset = tmp_path / "tiny.yaml"
    preset.write_text(
        "model: convlstm\nnum_hidden: [4]\nimg_size: 32\nimg_channel: 1\nshort_len: 4\n"
        "out_len: 3\nbatch_size: 2\niterations: 2\nprint_freq: 2\nvalid_batches: 1\n"
        "progress: false\n"
    )
    return preset


def test_preset_found_beside_the_package_or_in_cwd(tmp_path, monkeypatch):
    if (ROOT / PRESET).is_file():
        assert preset_path() == ROOT / PRESET
    with pytest.raises(FileNotFoundError, match="--config file not found"):
        preset_path(str(tmp_path / "none.yaml"))


def test_demo_on_tiny_preset_writes_everything(tmp_path, capsys):
    require("swinlstm.cli.train", "add_parser")
    require("swinlstm.metrics", "MetricAccumulator")
    preset = tiny_preset(tmp_path)
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


def test_demo_shows_the_best_zoo_model_beside_the_fresh_one(tmp_path, capsys, monkeypatch):
    import numpy as np

    from swinlstm import zoo
    from swinlstm.engine.checkpoint import save_model
    from swinlstm.models import build_model

    root = tmp_path / "entries"
    for name, mse in (("worse", 900.0), ("best", 100.0), ("other-horizon", 1.0)):
        model = build_model("convlstm", img_size=32, in_chans=1, num_hidden=[4], patch_size=4)
        save_model(model, root / name)
        horizon = 5 if name == "other-horizon" else 3  # not scored on this preset's clips
        card = {"clips": {"short_len": 4, "out_len": horizon}, "test": {"mse": mse}}
        (root / name / "card.json").write_text(json.dumps(card))
    monkeypatch.setattr(zoo, "ENTRIES_DIR", root)
    preset = tiny_preset(tmp_path)
    out = tmp_path / "demo"
    argv = ["demo", "--output", str(out), "--config", str(preset), "--test_clips", "4"]
    assert run(argv + ["--num_frames_to_save", "2"]) == 0
    printed = capsys.readouterr().out
    assert "zoo:best" in printed and "zoo:worse" not in printed
    command = next(line for line in printed.splitlines() if "swinlstm predict" in line)
    argv = command.split("yourself: swinlstm ")[1].split()
    assert run(argv) == 0  # the printed command runs, on the clip the demo wrote
    assert (out / "predict" / "prediction.npy").is_file()
    assert "repeating the last input frame" in printed
    assert json.loads((out / "zoo" / "metrics.json").read_text())["zoo"] == "best"
    assert sorted(p.name[:5] for p in (out / "frames" / "00000").glob("*_00.png")) == [
        "fresh",
        "gt_00",
        "input",
        "zoo_0",
    ]
    with Image.open(out / "gifs" / "00000.gif") as im:  # last input | truth | zoo | fresh
        im.seek(im.n_frames - 1)
        frame = np.asarray(im.convert("RGB"))
    assert frame.shape[1] == 4 * 32 + 3 * 2  # four panels, 2 px separators
    with Image.open(out / "comparison.png") as im:  # truth, zoo, zoo error, fresh, fresh error
        assert im.size[1] == 2 * (5 * 32 + 4 * 2) + 2 * 2


def test_relative_change_says_higher_when_worse_than_the_baseline():
    from swinlstm.demo import relative_change

    assert relative_change(36.6, 63.3) == "42% lower"
    assert relative_change(288.7, 63.3) == "356% higher"  # not "-356% lower"
    assert relative_change(63.3, 63.3) == "0% lower"
