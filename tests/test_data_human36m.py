"""Human3.6M in OpenSTL's layout: list files, step-5 frames, RGB, resizing, bad inputs."""

import numpy as np
import pytest
import torch

from swinlstm.data import build_datasets
from tests.data_writers import ramp_video, write_frames


def _h36m(root, nested=False, frames=45):
    video = ramp_video(frames, 20, 20, channels=3)
    if nested:
        write_frames(root / "images" / "S1_Walking.54138969", video, "{:06d}.jpg", start=1)
    else:
        write_frames(root / "images", video, "S1_Walking.54138969_{:06d}.jpg", start=1)
    (root / "train.txt").write_text(
        "images/S1_Walking.54138969_,1,36\nimages/S1_Walking.54138969_,2,37\n"
    )
    (root / "test.txt").write_text("images/S1_Walking.54138969_,6,41\n")
    return video


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
    s = build_datasets(
        "human36m",
        train_dir=tmp_path / "train.txt",
        short_len=2,
        out_len=2,
        img_size=8,
        img_channel=1,
        long_len=3,
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
