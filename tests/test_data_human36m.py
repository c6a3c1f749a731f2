"""Human3.6M in OpenSTL's layout: list files, step-5 frames, RGB, resizing, bad inputs."""

import cv2
import numpy as np
import pytest
import torch

from swinlstm.cli.main import run
from swinlstm.data import build_datasets
from swinlstm.data.human36m import prepare_human36m
from tests.data_writers import ramp_video, write_frames
from tests.data_writers import write_human36m as _h36m


@pytest.mark.parametrize("nested", [False, True])
def test_step_five_clips(tmp_path, nested):
    video = _h36m(tmp_path, nested)
    s = build_datasets(
        "human36m", train_dir=tmp_path, short_len=4, out_len=4, img_size=20, img_channel=3
    )
    assert len(s.train) == 2 and len(s.test) == 1 and s.valid is s.test
    x, y = s.test[0]
    assert x.shape == (4, 3, 20, 20) and y.shape == (4, 3, 20, 20)
    # frame numbers 6, 11, ..., 41 (1-based files) -> video index 5, 10, ...; targets are 26..41
    expected = video[[25, 30, 35, 40]].mean(axis=(1, 2, 3)) / 255
    assert np.allclose(y.mean(dim=(1, 2, 3)).numpy(), expected, atol=0.02)


def test_resize_and_grey(tmp_path):
    _h36m(tmp_path)
    lengths = dict(short_len=2, out_len=2, long_len=3)
    s = build_datasets(
        "human36m", train_dir=tmp_path / "train.txt", **lengths, img_size=8, img_channel=1
    )
    x, y, long = s.train[0]
    assert x.shape == (2, 1, 8, 8) and long.shape == (3, 1, 8, 8)
    assert s.test is not None and x.dtype == torch.float32


def test_bad_inputs(tmp_path):
    _h36m(tmp_path)
    (tmp_path / "bad.txt").write_text("images/S1_Walking.54138969_;12\n")
    with pytest.raises(ValueError, match="bad.txt:1: expected 'prefix,begin'"):
        build_datasets("human36m", train_dir=tmp_path / "bad.txt", test_dir=tmp_path)
    (tmp_path / "miss.txt").write_text("images/S9_Eating.1_,1\n")
    with pytest.raises(
        FileNotFoundError,
        match="miss.txt: first frame of the list not found at .*S9_Eating.1_000001.jpg",
    ):
        build_datasets("human36m", train_dir=tmp_path / "miss.txt", test_dir=tmp_path)
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(FileNotFoundError, match="train.txt does not exist"):
        build_datasets("human36m", train_dir=empty)
    s = build_datasets(
        "human36m", train_dir=tmp_path, short_len=4, out_len=6, img_size=20, img_channel=3
    )
    with pytest.raises(ValueError, match="S1_Walking.54138969_000046.jpg: cannot decode"):
        s.test[0]  # frames past the end of the video


def _tar_frames(folder, name="S1_Walking.54138969", frames=45, side=40):
    """Frames as in the H36M image tars: flat ``S1_Walking.54138969_000001.jpg`` files."""
    return write_frames(folder, ramp_video(frames, side, side, 3), name + "_{:06d}.jpg", start=1)


def test_prepare_writes_the_layout_the_lists_name(tmp_path):
    raw = tmp_path / "images_source"
    _tar_frames(raw / "S1")  # in a folder, as some unpackings leave them
    small = _tar_frames(raw, "S5_Eating.60457274", frames=2, side=8)  # flat, smaller than size
    (raw / "S5_Eating.60457274_000003.jpg").write_bytes(b"not a jpeg")
    (raw / "notes.jpg").write_bytes(b"ignored: not a frame name")
    with pytest.warns(UserWarning, match=r"skipped 1 H36M frames \(unreadable\): S5_Eating"):
        n = prepare_human36m(raw, tmp_path, size=20, workers=2)
    assert n == 47
    images = tmp_path / "images"
    assert cv2.imread(str(images / "S1_Walking.54138969_000045.jpg")).shape == (20, 20, 3)
    assert (images / small[0].name).read_bytes() == small[0].read_bytes()  # copied as is
    (tmp_path / "train.txt").write_text("images/S1_Walking.54138969_,1,71\r\n")
    (tmp_path / "test.txt").write_text("images/S1_Walking.54138969_,6,76\r\n")
    s = build_datasets("human36m", train_dir=tmp_path, short_len=4, out_len=4, img_size=20)  # RGB
    assert s.train[0][0].shape == (4, 3, 20, 20) and len(s.test) == 1


def test_prepare_cli_and_bad_inputs(tmp_path, capsys):
    raw = tmp_path / "raw"
    _tar_frames(raw, frames=3)
    assert run(["data", "prepare-human36m", "--raw", str(raw), "--out", str(tmp_path)]) == 0
    assert "wrote 3 frames" in capsys.readouterr().out
    empty = tmp_path / "empty"
    empty.mkdir()
    assert run(["data", "prepare-human36m", "--raw", str(empty), "--out", str(tmp_path)]) == 2
    assert "no H36M frames" in capsys.readouterr().err
    assert run(["data", "prepare-human36m", "--raw", str(tmp_path / "nope"), "--out", "x"]) == 2
    assert "prepare-human36m --raw" in capsys.readouterr().err
    with pytest.raises(ValueError, match="--size must be >= 1"):
        prepare_human36m(raw, tmp_path, size=0)
