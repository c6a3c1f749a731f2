"""TaxiBJ: Beijing taxi inflow / outflow on a 32x32 grid every 30 minutes (2 channels), 4 -> 4.

Reads OpenSTL's ``dataset.npz`` (X_train, Y_train, X_test, Y_test: (N, 4, 2, 32, 32) min-max
scaled to [-1, 1]) and serves clips X ++ Y mapped to [0, 1] by (x + 1) / 2, as OpenSTL does.
:func:`prepare_taxibj` writes that file from the original ``BJ{13..16}_M32x32_T30_InOut.h5`` and
stores the scaling (``scale_min``, ``scale_max``), so metrics can also be reported in flow units:
``flow = x01 * (scale_max - scale_min) + scale_min``.
"""

from __future__ import annotations

import datetime as dt
import logging
from pathlib import Path

import numpy as np

from swinlstm.data.checks import finite_range
from swinlstm.data.common import (
    ClipDataset,
    ClipSpec,
    SplitRequest,
    Splits,
    require_path,
)
from swinlstm.errors import ConfigError, MissingPathError

log = logging.getLogger("swinlstm.data")

KEYS = ("X_train", "Y_train", "X_test", "Y_test")
SLOTS_PER_DAY = 48
TEST_DAYS = 28  # the last four weeks are the test period (ST-ResNet, OpenSTL)


class PairClips(ClipDataset):
    """Clips made of X[i] ++ Y[i] (each (T, C, H, W) in [-1, 1]), served in [0, 1]."""

    def __init__(self, x: np.ndarray, y: np.ndarray, spec, size, channels, with_long):
        super().__init__(spec, size, channels, with_long)
        self.x, self.y = x, y

    def __len__(self) -> int:
        return len(self.x)

    def load_clip(self, index: int) -> np.ndarray:
        clip = np.concatenate([self.x[index], self.y[index]])[: self.spec.total]
        return ((clip.astype(np.float32) + 1.0) * 0.5).transpose(0, 2, 3, 1)


def load_npz(path: Path, spec: ClipSpec) -> dict[str, np.ndarray]:
    """The four arrays of ``dataset.npz``, validated (shape, dtype, range, lengths)."""
    try:
        data = dict(np.load(path))
    except (OSError, ValueError) as err:
        raise ConfigError(f"{path}: cannot read as .npz ({err})") from None
    missing = [k for k in KEYS if k not in data]
    if missing:
        raise ConfigError(f"{path}: missing arrays {missing} (expected {', '.join(KEYS)})")
    for key in KEYS:
        arr = data[key]
        if arr.ndim != 5:
            raise ConfigError(f"{path}: {key} has shape {arr.shape}, expected (N, T, 2, 32, 32)")
        if not np.issubdtype(arr.dtype, np.floating):
            raise ConfigError(
                f"{path}: {key} has dtype {arr.dtype}, expected float scaled to [-1, 1]"
            )
        lo, hi = finite_range(arr, path, key)
        if lo < -1.001 or hi > 1.001:
            raise ConfigError(f"{path}: {key} values span [{lo:.3g}, {hi:.3g}], expected [-1, 1]")
    for split in ("train", "test"):
        x, y = data[f"X_{split}"], data[f"Y_{split}"]
        if len(x) != len(y) or x.shape[2:] != y.shape[2:]:
            raise ConfigError(f"{path}: X_{split} {x.shape} and Y_{split} {y.shape} do not pair up")
        if x.shape[1] + y.shape[1] < spec.total:
            raise ConfigError(
                f"{path}: clips have {x.shape[1]} + {y.shape[1]} frames, fewer than "
                f"short_len + out_len = {spec.total}"
            )
    return data


# the frames this dataset gives when not told otherwise (swinlstm.data.native_frame)
IMG_SIZE = 32
IMG_CHANNEL = 2
CHANNELS = (2,)  # inflow, outflow


def build(req: SplitRequest) -> Splits:
    """TaxiBJ splits from ``dataset.npz`` (``train_dir`` = the file or its folder; ``test_dir``
    defaults to the same file). Validation is the test set, as in OpenSTL."""
    (train_dir, valid_dir, test_dir), spec = req.dirs, req.spec
    common = req.clip_args
    info: dict = {"dataset": "taxibj", "value_range": (0.0, 1.0), "channels": ("inflow", "outflow")}

    def npz_of(path, what):
        p = require_path(path, what)
        if p.is_dir():
            p = p / "dataset.npz"
            if not p.is_file():
                raise MissingPathError(f"{what}: {p} does not exist")
        return p

    train = test = None
    for split, path in (
        ("train", train_dir),
        ("test", test_dir if test_dir is not None else train_dir),
    ):
        if path is None:
            continue
        file = npz_of(path, f"TaxiBJ {split}_dir")
        data = load_npz(file, spec)
        ds = PairClips(data[f"X_{split}"], data[f"Y_{split}"], with_long=split == "train", **common)
        if split == "train":
            train = ds
        else:
            test = ds
        info["source" if split == "train" else "test"] = str(file)
        if "scale_min" in data:
            lo, hi = float(data["scale_min"]), float(data["scale_max"])
            info["scale"] = {"min": lo, "max": hi, "to_flow": f"x01 * {hi - lo:g} + {lo:g}"}
    info.setdefault("scale", "not stored in the file: scores in the [0, 1] scale only")
    valid = test
    if valid_dir is not None:
        file = npz_of(valid_dir, "TaxiBJ valid_dir")
        data = load_npz(file, spec)
        valid = PairClips(data["X_test"], data["Y_test"], with_long=False, **common)
    info["valid"] = str(valid_dir) if valid_dir is not None else "the test set (as OpenSTL)"
    return Splits(train, valid, test, info)


# ------------------------------------------------------------------------------ preparation


def _slot_times(dates: np.ndarray) -> np.ndarray:
    """``b'2013070101'`` (day + 1-based half-hour slot) -> minutes since 2000-01-01."""
    out = np.empty(len(dates), np.int64)
    origin = dt.datetime(2000, 1, 1)
    for i, raw in enumerate(dates):
        s = raw.decode() if isinstance(raw, bytes) else str(raw)
        day = dt.datetime.strptime(s[:8], "%Y%m%d")
        out[i] = int((day - origin).total_seconds() // 60) + (int(s[8:]) - 1) * 30
    return out


def _read_flow_file(path: Path) -> tuple[np.ndarray, np.ndarray]:
    import h5py

    try:
        with h5py.File(path, "r") as f:
            data, dates = f["data"][()], f["date"][()]
    except (OSError, KeyError) as err:
        raise ConfigError(
            f"{path}: not a TaxiBJ flow file with 'data' and 'date' ({err})"
        ) from None
    if data.ndim != 4 or data.shape[1] != 2:
        raise ConfigError(f"{path}: 'data' has shape {data.shape}, expected (N, 2, 32, 32)")
    times = _slot_times(dates)
    days = times // (24 * 60)
    ids, counts = np.unique(days, return_counts=True)
    complete = np.isin(days, ids[counts == SLOTS_PER_DAY])  # ST-ResNet drops incomplete days
    order = np.argsort(times[complete], kind="stable")
    return data[complete][order].astype(np.float32), times[complete][order]


def _holidays(path: Path) -> set[int]:
    origin = dt.datetime(2000, 1, 1)
    days = set()
    for line in path.read_text().split():
        days.add((dt.datetime.strptime(line.strip()[:8], "%Y%m%d") - origin).days)
    return days


def _meteorology(path: Path, times: np.ndarray) -> np.ndarray:
    """(len(times), F) weather features (temperature, wind speed, weather one-hot) per slot."""
    import h5py

    with h5py.File(path, "r") as f:
        mtimes = _slot_times(f["date"][()])
        feats = np.concatenate(
            [f["Temperature"][()][:, None], f["WindSpeed"][()][:, None], f["Weather"][()]], axis=1
        ).astype(np.float32)
    lookup = {t: i for i, t in enumerate(mtimes)}
    out = np.full((len(times), feats.shape[1]), np.nan, np.float32)
    for i, t in enumerate(times):
        if t in lookup:
            out[i] = feats[lookup[t]]
    return out


def prepare_taxibj(
    raw_dir: str | Path, out_file: str | Path, in_len: int = 4, out_len: int = 4
) -> dict:
    """Write OpenSTL's ``dataset.npz`` from the original TaxiBJ files in ``raw_dir``.

    Reads every ``BJ*_M32x32_T30_InOut.h5``, drops incomplete days, takes every run of
    ``in_len + out_len`` consecutive half-hour slots, puts runs inside the last 28 days in the test split
    and runs before them in the train split, min-max scales all to [-1, 1] with the min / max of all used slots, stores those as
    ``scale_min`` / ``scale_max``. With ``BJ_Holiday.txt`` / ``BJ_Meteorology.h5`` present it also
    stores per-frame ``holiday_*`` flags and ``meteo_*`` features. Returns the array shapes.
    """
    raw_dir = require_path(raw_dir, "prepare-taxibj --raw")
    files = sorted(raw_dir.glob("BJ*_M32x32_T30_InOut.h5"))
    if not files:
        raise ConfigError(f"{raw_dir}: no BJ*_M32x32_T30_InOut.h5 files")
    parts = [_read_flow_file(f) for f in files]
    data = np.concatenate([p[0] for p in parts])
    times = np.concatenate([p[1] for p in parts])
    seq = in_len + out_len
    if len(times) < seq:
        raise ConfigError(f"{raw_dir}: only {len(times)} complete slots, fewer than {seq}")
    starts = np.flatnonzero(times[seq - 1 :] - times[: len(times) - seq + 1] == (seq - 1) * 30)
    test_from = times.max() - TEST_DAYS * SLOTS_PER_DAY * 30
    # windows wholly inside the test period / wholly before it (the few straddling ones are dropped)
    test_starts = starts[times[starts] > test_from]
    train_starts = starts[times[starts + seq - 1] <= test_from]
    if not len(train_starts) or not len(test_starts):
        raise ConfigError(f"{raw_dir}: not enough data for both a train and a 28-day test period")
    # min / max over every slot used, so that test clips stay in [-1, 1] too (ST-ResNet fits on
    # the training period only, which lets test values leave the range the loader serves)
    used = np.unique(
        (np.concatenate([train_starts, test_starts])[:, None] + np.arange(seq)).ravel()
    )
    lo, hi = float(data[used].min()), float(data[used].max())
    scaled = (2.0 * (data - lo) / max(hi - lo, 1e-12) - 1.0).astype(np.float32)

    out: dict[str, np.ndarray] = {"scale_min": np.float32(lo), "scale_max": np.float32(hi)}
    holiday = raw_dir / "BJ_Holiday.txt"
    meteo = raw_dir / "BJ_Meteorology.h5"
    holidays = _holidays(holiday) if holiday.is_file() else None
    weather = _meteorology(meteo, times) if meteo.is_file() else None
    for split, st in (("train", train_starts), ("test", test_starts)):
        idx = st[:, None] + np.arange(seq)
        out[f"X_{split}"] = scaled[idx[:, :in_len]]
        out[f"Y_{split}"] = scaled[idx[:, in_len:]]
        out[f"T_{split}"] = times[idx[:, 0]]
        if holidays is not None:
            out[f"holiday_{split}"] = np.isin(times[idx] // (24 * 60), list(holidays))
        if weather is not None:
            out[f"meteo_{split}"] = weather[idx]
    out_file = Path(out_file)
    out_file.parent.mkdir(parents=True, exist_ok=True)
    np.savez(out_file, **out)
    log.info(
        "prepare-taxibj: wrote %s (train %d, test %d)",
        out_file,
        len(train_starts),
        len(test_starts),
    )
    return {k: v.shape for k, v in out.items()}
