"""The user's own data: arrays in three layouts, video files, frame folders, held-out validation."""

import numpy as np
import pytest
import torch

from swinlstm.data import build_datasets
from tests.data_writers import ramp_video, write_avi, write_frames

KW = dict(short_len=2, out_len=3, img_size=8)


def _seqs(n=4, t=7, h=8, w=8):
    """(N, T, H, W) uint8 whose frame k of sequence i has value 10 * k + i."""
    arr = np.zeros((n, t, h, w), np.uint8)
    arr[:] = (10 * np.arange(t)[None, :] + np.arange(n)[:, None])[..., None, None]
    return arr


@pytest.mark.parametrize("layout", ["NTHW", "NTHWC", "NTCHW"])
def test_array_layouts_and_slicing(tmp_path, layout):
    arr = _seqs()
    stored = {"NTHW": arr, "NTHWC": arr[..., None], "NTCHW": arr[:, :, None]}[layout]
    np.save(tmp_path / "a.npy", stored)
    s = build_datasets("custom", train_dir=tmp_path / "a.npy", test_dir=tmp_path / "a.npy", **KW)
    assert len(s.test) == 4  # one non-overlapping window of 5 in each 7-frame sequence
    x, y = s.test[2]
    assert x.shape == (2, 1, 8, 8) and y.shape == (3, 1, 8, 8)
    assert (x[:, 0, 0, 0] * 255).round().tolist() == [2, 12]
    assert (y[:, 0, 0, 0] * 255).round().tolist() == [22, 32, 42]


def test_float_npz_and_fixed_validation(tmp_path):
    arr = _seqs(n=10).astype(np.float32) / 255
    np.savez(tmp_path / "a.npz", clips=arr)
    a = build_datasets("custom", train_dir=tmp_path / "a.npz", seed=3, long_len=4, **KW)
    b = build_datasets("custom", train_dir=tmp_path / "a.npz", seed=3, **KW)
    assert (
        len(a.valid) == 1 and len(a.train) == 9 * 3
    )  # 1 of 10 held out; stride 1 -> 3 windows each
    assert torch.equal(a.valid[0][0], b.valid[0][0])
    held = round(float(a.valid[0][0][0, 0, 0, 0]) * 255) % 10
    train_ids = {round(float(a.train[i][0][0, 0, 0, 0]) * 255) % 10 for i in range(len(a.train))}
    assert held not in train_ids
    assert a.train[0][2].shape == (4, 1, 8, 8)


def test_single_sequence_split_in_time(tmp_path):
    np.save(tmp_path / "one.npy", _seqs(n=1, t=60))
    s = build_datasets("custom", train_dir=tmp_path / "one.npy", **KW)
    assert len(s.valid) == 1 and len(s.train) == 54 - 5 + 1  # last 6 of 60 frames held out
    with pytest.warns(UserWarning, match="too short to hold out"):
        s = build_datasets(
            "custom", train_dir=tmp_path / "one.npy", short_len=20, out_len=20, img_size=8
        )
    assert s.valid is None


def test_bad_arrays(tmp_path):
    cases = {
        "dim.npy": (np.zeros((2, 3, 4), np.uint8), "expected \\(N, T, H, W\\)"),
        "ambig.npy": (np.zeros((2, 6, 3, 8, 3), np.uint8), "cannot tell"),
        "dtype.npy": (np.zeros((2, 6, 8, 8), np.int32), "dtype int32"),
        "range.npy": (np.full((2, 6, 8, 8), 3.0, np.float32), "span \\[3, 3\\]"),
        "short.npy": (
            np.zeros((2, 4, 8, 8), np.uint8),
            "no sequence has short_len \\+ out_len = 5",
        ),
    }
    for name, (arr, msg) in cases.items():
        np.save(tmp_path / name, arr)
        with pytest.raises(ValueError, match=f"{name}.*{msg}"):
            with pytest.warns(UserWarning) if name == "short.npy" else _nothing():
                build_datasets("custom", train_dir=tmp_path / name, **KW)
    np.save(tmp_path / "ok.npy", np.zeros((2, 6, 3, 8, 3), np.uint8))
    s = build_datasets("custom", test_dir=tmp_path / "ok.npy", layout="NTHWC", img_channel=3, **KW)
    assert s.test[0][0].shape == (2, 3, 8, 8)
    np.savez(
        tmp_path / "two.npz", a=np.zeros((1, 6, 8, 8), np.uint8), b=np.zeros((1, 6, 8, 8), np.uint8)
    )
    with pytest.raises(ValueError, match="holds arrays \\['a', 'b'\\]; pass key="):
        build_datasets("custom", train_dir=tmp_path / "two.npz", **KW)
    (tmp_path / "x.txt").write_text("hi")
    with pytest.raises(ValueError, match="x.txt: not a .npy/.npz array or a video file"):
        build_datasets("custom", train_dir=tmp_path / "x.txt", **KW)


class _nothing:
    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False


def test_video_folder_with_a_corrupt_file(tmp_path):
    write_avi(tmp_path / "vids" / "a.avi", ramp_video(12, 16, 16))
    write_avi(tmp_path / "vids" / "b.avi", ramp_video(6, 16, 16, seed=1))
    (tmp_path / "vids" / "c.avi").write_bytes(b"corrupt")
    with pytest.warns(UserWarning, match="skipped 1 videos .*c.avi"):
        s = build_datasets("custom", test_dir=tmp_path / "vids", img_channel=3, **KW)
    assert len(s.test) == 2 + 1
    x, y = s.test[1]
    assert x.shape == (2, 3, 8, 8) and float(y.mean()) > float(x.mean())
    with pytest.raises(ValueError, match="c.avi: OpenCV cannot open or decode"):
        build_datasets("custom", test_dir=tmp_path / "vids" / "c.avi", **KW)


def test_frame_folders_single_folder_and_empty(tmp_path):
    for v in range(3):
        write_frames(
            tmp_path / "clips" / f"clip_{v}", ramp_video(6, 10, 10, channels=1, seed=v), "{:d}.png"
        )
    s = build_datasets("custom", train_dir=tmp_path / "clips", valid_dir=tmp_path / "clips", **KW)
    assert len(s.train) == 3 * 2 and len(s.valid) == 3
    single = build_datasets("custom", test_dir=tmp_path / "clips" / "clip_0", **KW)
    assert len(single.test) == 1
    (tmp_path / "empty").mkdir()
    with pytest.raises(ValueError, match="empty: empty: no video files"):
        build_datasets("custom", train_dir=tmp_path / "empty", **KW)
    with pytest.raises(FileNotFoundError, match="custom train_dir: .*missing does not exist"):
        build_datasets("custom", train_dir=tmp_path / "missing", **KW)


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_nan_or_inf_in_an_array_is_refused_with_the_file_and_first_index(tmp_path, bad):
    arr = _seqs(n=3).astype(np.float32) / 255
    arr[1, 4, 2, 5] = bad
    arr[2, 0, 0, 0] = bad  # a later one: the first is reported
    np.save(tmp_path / "a.npy", arr)
    with pytest.raises(ValueError, match=rf"a.npy: holds {bad} at index \[1, 4, 2, 5\]"):
        build_datasets("custom", train_dir=tmp_path / "a.npy", **KW)
    np.savez(tmp_path / "b.npz", clips=arr)
    with pytest.raises(ValueError, match=r"b.npz: clips holds .* at index \[1, 4, 2, 5\]"):
        build_datasets("custom", valid_dir=tmp_path / "b.npz", key="clips", **KW)


def test_a_memory_mapped_array_is_checked_once_in_chunks(tmp_path, monkeypatch):
    """The check reads the file chunk by chunk (never whole) and finds a NaN in the last chunk."""
    import swinlstm.data.checks as checks

    arr = _seqs(n=5, t=7).astype(np.float32) / 255
    arr[4, 6, 7, 7] = np.nan  # the very last value
    np.save(tmp_path / "a.npy", arr)
    sizes = []
    real = checks._chunks

    def spy(flat):
        assert isinstance(flat, np.memmap)  # a view of the file, not a copy in memory
        for start, block in real(flat):
            sizes.append(block.size)
            yield start, block

    monkeypatch.setattr(checks, "CHUNK_ELEMENTS", 100)
    monkeypatch.setattr(checks, "_chunks", spy)
    with pytest.raises(ValueError, match=r"holds nan at index \[4, 6, 7, 7\]"):
        build_datasets("custom", train_dir=tmp_path / "a.npy", **KW)
    assert max(sizes) == 100 and sum(sizes) == arr.size  # one pass, in chunks


def test_fortran_ordered_arrays_report_the_right_index(tmp_path):
    from swinlstm.data.checks import finite_range

    arr = np.asfortranarray(np.zeros((3, 4, 5), np.float32))
    arr[2, 1, 3] = np.inf
    with pytest.raises(ValueError, match=r"x: holds inf at index \[2, 1, 3\]"):
        finite_range(arr, "x")
    assert finite_range(np.ones((0, 2), np.float32), "x") == (0.0, 0.0)
