"""TaxiBJ: OpenSTL's dataset.npz, its validation, and prepare-taxibj from the original .h5 files."""

import datetime as dt

import h5py
import numpy as np
import pytest

from swinlstm.cli.main import run
from swinlstm.data import build_datasets
from swinlstm.data.taxibj import prepare_taxibj
from tests.data_writers import write_taxibj_flows as _write_bj
from tests.data_writers import write_taxibj_npz as _npz

TAXIBJ = dict(img_size=32, img_channel=2)  # its own frames, written out


def test_items_are_x_then_y_in_unit_range(tmp_path):
    arrays = _npz(tmp_path / "dataset.npz")
    s = build_datasets("taxibj", train_dir=tmp_path, short_len=4, out_len=4, long_len=6, **TAXIBJ)
    assert len(s.train) == 6 and len(s.test) == 3 and s.valid is s.test
    x, y, long = s.train[2]
    assert x.shape == (4, 2, 32, 32) and y.shape == (4, 2, 32, 32) and long.shape == (6, 2, 32, 32)
    np.testing.assert_allclose(x.numpy(), (arrays["X_train"][2] + 1) / 2, atol=1e-6)
    np.testing.assert_allclose(y.numpy(), (arrays["Y_train"][2] + 1) / 2, atol=1e-6)
    assert s.info["scale"].startswith("not stored")


def test_short_len_not_four_still_slices_targets_after_inputs(tmp_path):
    arrays = _npz(tmp_path / "dataset.npz")
    s = build_datasets(
        "taxibj", train_dir=tmp_path / "dataset.npz", short_len=3, out_len=2, **TAXIBJ
    )
    x, y = s.test[1]
    clip = (np.concatenate([arrays["X_test"][1], arrays["Y_test"][1]]) + 1) / 2
    np.testing.assert_allclose(x.numpy(), clip[:3], atol=1e-6)
    np.testing.assert_allclose(y.numpy(), clip[3:5], atol=1e-6)


def _with(arr, bad):
    """``arr`` as float32 with ``bad`` at index (2, 3, 1, 7, 9)."""
    arr = arr.astype(np.float32)
    arr[2, 3, 1, 7, 9] = bad
    return arr


def test_bad_npz(tmp_path):
    kw = dict(img_size=32, img_channel=2, short_len=4, out_len=4)
    cases = {
        "missing.npz": ({"X_train": np.zeros((1, 4, 2, 32, 32), np.float32)}, "missing arrays"),
        "shape.npz": (
            {**_npz(tmp_path / "a.npz"), "X_test": np.zeros((3, 4, 32, 32), np.float32)},
            "X_test has shape",
        ),
        "dtype.npz": (
            {**_npz(tmp_path / "b.npz"), "X_train": np.zeros((6, 4, 2, 32, 32), np.uint8)},
            "dtype uint8",
        ),
        "range.npz": (
            {**_npz(tmp_path / "c.npz"), "Y_train": np.full((6, 4, 2, 32, 32), 5.0, np.float32)},
            "span",
        ),
        "nan.npz": (
            {**_npz(tmp_path / "d.npz"), "X_test": _with(np.zeros((3, 4, 2, 32, 32)), np.nan)},
            "X_test holds nan at index \\[2, 3, 1, 7, 9\\]",
        ),
        "inf.npz": (
            {**_npz(tmp_path / "e.npz"), "Y_train": _with(np.zeros((6, 4, 2, 32, 32)), -np.inf)},
            "Y_train holds -inf at index \\[2, 3, 1, 7, 9\\]",
        ),
    }
    for name, (arrays, msg) in cases.items():
        np.savez(tmp_path / name, **arrays)
        with pytest.raises(ValueError, match=f"{name}: .*{msg}"):
            build_datasets("taxibj", train_dir=tmp_path / name, **kw)
    with pytest.raises(ValueError, match="fewer than short_len \\+ out_len = 10"):
        build_datasets("taxibj", train_dir=tmp_path / "a.npz", short_len=5, out_len=5, **TAXIBJ)
    with pytest.raises(ValueError, match="img_channel=1 is not supported"):
        build_datasets("taxibj", train_dir=tmp_path / "a.npz", img_channel=1)
    with pytest.raises(FileNotFoundError, match="nowhere does not exist"):
        build_datasets("taxibj", train_dir=tmp_path / "nowhere", img_channel=2)
    (tmp_path / "empty").mkdir()
    with pytest.raises(FileNotFoundError, match="empty/dataset.npz does not exist"):
        build_datasets("taxibj", train_dir=tmp_path / "empty", img_channel=2)


def test_prepare_taxibj_from_h5(tmp_path):
    raw = tmp_path / "raw"
    raw.mkdir()
    _write_bj(
        raw / "BJ13_M32x32_T30_InOut.h5", dt.date(2013, 7, 1), 3, drop_slot=(1, 5)
    )  # day 2 incomplete
    _write_bj(raw / "BJ14_M32x32_T30_InOut.h5", dt.date(2014, 3, 1), 30)
    (raw / "BJ_Holiday.txt").write_text("20140302\n20140315\n")
    with h5py.File(raw / "BJ_Meteorology.h5", "w") as f:
        dates = [
            f"{dt.date(2014, 3, 1) + dt.timedelta(days=d):%Y%m%d}{s:02d}".encode()
            for d in range(30)
            for s in range(1, 49)
        ]
        f["date"] = np.array(dates)
        f["Temperature"] = np.arange(len(dates), dtype=np.float64)
        f["WindSpeed"] = np.ones(len(dates))
        f["Weather"] = np.zeros((len(dates), 17))
    assert run(["data", "prepare-taxibj", "--raw", str(raw)]) == 0
    z = np.load(raw / "dataset.npz")
    # BJ13: days 1 and 3 complete but not adjacent: 2 x (48 - 7) windows; BJ14: 2 days before the test period
    n_test = 28 * 48 - 7
    assert z["X_test"].shape == (n_test, 4, 2, 4, 4)
    assert z["X_train"].shape[0] == 2 * 41 + (2 * 48 - 7)  # windows wholly before the last 28 days
    assert z["X_train"].min() >= -1 and z["X_train"].max() <= 1
    x0 = z["X_train"][0, :, 0, 0, 0]
    flow = (x0 + 1) / 2 * (z["scale_max"] - z["scale_min"]) + z["scale_min"]
    np.testing.assert_allclose(flow, [1, 2, 3, 4], rtol=1e-5)  # first day, slots 1-4
    assert z["holiday_test"].shape == (n_test, 8) and z["holiday_train"].any()
    assert z["meteo_test"].shape == (n_test, 8, 19)
    s = build_datasets("taxibj", train_dir=raw, short_len=4, out_len=4, img_size=4, img_channel=2)
    assert "x01 *" in s.info["scale"]["to_flow"]


def test_prepare_taxibj_errors(tmp_path):
    with pytest.raises(ValueError, match="no BJ\\*_M32x32_T30_InOut.h5"):
        prepare_taxibj(tmp_path, tmp_path / "o.npz")
    (tmp_path / "BJ13_M32x32_T30_InOut.h5").write_bytes(b"junk")
    with pytest.raises(ValueError, match="BJ13_M32x32_T30_InOut.h5: not a TaxiBJ flow file"):
        prepare_taxibj(tmp_path, tmp_path / "o.npz")
