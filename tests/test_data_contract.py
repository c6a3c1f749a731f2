"""The shared contract: clip lengths, target slicing, long clip, resizing, channels, registry errors."""

import numpy as np
import pytest
import torch

from swinlstm.data import DATASETS, build_datasets
from swinlstm.data.common import (
    ClipSpec,
    convert_channels,
    index_windows,
    parse_img_size,
    resize_frames,
    split_clip,
    to_tensor_clip,
)


def _numbered_clip(t):
    """Clip whose frame k is filled with the value k (so slices can be read back)."""
    return torch.arange(t, dtype=torch.float32)[:, None, None, None].expand(t, 1, 2, 2).clone()


@pytest.mark.parametrize("short_len,out_len", [(10, 10), (10, 20), (4, 2), (1, 1)])
def test_targets_are_the_frames_after_the_inputs(short_len, out_len):
    spec = ClipSpec(short_len, out_len)
    inputs, targets = split_clip(_numbered_clip(spec.total), spec, long=False)
    assert inputs[:, 0, 0, 0].tolist() == list(range(short_len))
    assert targets[:, 0, 0, 0].tolist() == list(range(short_len, short_len + out_len))


def test_long_clip_is_a_window_of_the_same_clip():
    spec = ClipSpec(3, 5, long_len=6)
    torch.manual_seed(0)
    starts = set()
    for _ in range(60):
        _, _, long = split_clip(_numbered_clip(spec.total), spec, long=True)
        values = long[:, 0, 0, 0].tolist()
        assert len(values) == 6 and values == list(range(int(values[0]), int(values[0]) + 6))
        starts.add(int(values[0]))
    assert starts == {0, 1, 2}  # uniform over [0, short_len + out_len - long_len]


def test_clip_spec_rejects_bad_lengths():
    with pytest.raises(ValueError, match="short_len"):
        ClipSpec(0, 10)
    with pytest.raises(ValueError, match="long_len=30 is longer than the clip"):
        ClipSpec(10, 10, 30)


def test_img_size_forms():
    assert parse_img_size(64) == (64, 64)
    assert parse_img_size((32, 48)) == (32, 48)
    with pytest.raises(ValueError, match="img_size"):
        parse_img_size((1, 2, 3))
    with pytest.raises(ValueError, match="img_size"):
        parse_img_size(0)
    assert parse_img_size(np.int64(32)) == (32, 32)  # NumPy integers (e.g. from an array)
    for bad in (64.0, "64", None):  # one line naming img_size, not a TypeError or (6, 4)
        with pytest.raises(ValueError, match="img_size must be a positive int or \\(H, W\\)"):
            parse_img_size(bad)


def test_resize_many_frames_matches_per_frame_cv2():
    import cv2

    frames = np.random.default_rng(0).integers(
        0, 255, (300, 12, 10, 3), dtype=np.uint8
    )  # > 128 channels
    out = resize_frames(frames, (6, 5))
    assert out.shape == (300, 6, 5, 3)
    ref = cv2.resize(frames[123], (5, 6), interpolation=cv2.INTER_AREA)
    assert (
        np.abs(out[123].astype(int) - ref).max() <= 1
    )  # cv2 rounds multi-channel area sums alike to 1 level


def test_channels_grey_rgb():
    grey = np.full((2, 3, 3, 1), 100, np.uint8)
    assert convert_channels(grey, 3).shape == (2, 3, 3, 3)
    rgb = np.zeros((1, 2, 2, 3), np.uint8)
    rgb[..., 1] = 255
    assert convert_channels(rgb, 1)[0, 0, 0, 0] == round(0.587 * 255)
    with pytest.raises(ValueError, match="2 channels"):
        convert_channels(np.zeros((1, 2, 2, 2), np.uint8), 3)


def test_to_tensor_clip_range_and_layout():
    frames = np.full((4, 8, 8, 1), 255, np.uint8)
    clip = to_tensor_clip(frames, (4, 4), 3)
    assert clip.shape == (4, 3, 4, 4) and clip.dtype == torch.float32
    assert torch.allclose(clip, torch.ones_like(clip))


def test_index_windows():
    w = index_windows([5, 2, 4], seq_len=3, stride=1)
    assert w.tolist() == [[0, 0], [0, 1], [0, 2], [2, 0], [2, 1]]


def test_registry_errors():
    assert set(DATASETS) == {"movingmnist", "kth", "taxibj", "human36m", "custom"}
    with pytest.raises(ValueError, match="unknown dataset 'nope'.*movingmnist"):
        build_datasets("nope")
    with pytest.raises(ValueError, match="does not take option.*'bogus'"):
        build_datasets("custom", bogus=1)


def test_info_keys_are_uniform(tmp_path):
    np.save(tmp_path / "a.npy", np.zeros((3, 6, 8, 8), np.uint8))
    s = build_datasets("custom", train_dir=tmp_path / "a.npy", short_len=2, out_len=2, img_size=8)
    assert {
        "dataset",
        "source",
        "value_range",
        "samples",
        "short_len",
        "out_len",
        "long_len",
    } <= set(s.info)
    assert s.info["samples"] == {"train": 2 * 3, "valid": 1, "test": None}
    assert s.test is None
