"""The user's own videos: frame folders, video files or one array, cut into sliding windows.

A path (``--train_data_dir``, ``--valid_data_dir``, ``--test_data_dir``) may be

* a ``.npy`` / ``.npz`` array (N, T, H, W), (N, T, H, W, C) or (N, T, C, H, W), uint8 (0..255),
  uint16 (0..65535) or float in [0, 1] (``layout=`` settles an ambiguous shape, ``key=`` picks an npz array);
* a folder of video files (.avi, .mp4, ... read by OpenCV), or a single video file;
* a folder of frame folders (``root/clip_a/0001.png ...``), or one folder of frames.

Training takes every window of short_len + out_len frames (``stride`` frames apart, default 1);
validation and test take non-overlapping windows. Without ``valid_dir`` a fixed ``valid_fraction``
of the sequences (chosen by ``seed``) is held out for validation; a single sequence is split in time.
"""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np

from swinlstm.data.common import (
    IMAGE_EXTS,
    VIDEO_EXTS,
    ArrayWindows,
    ClipDataset,
    ClipSpec,
    FrameWindows,
    SplitRequest,
    Splits,
    VideoWindows,
    check_values,
    count_video_frames,
    list_frame_folders,
    list_images,
    require_path,
    warn_skipped,
)
from swinlstm.errors import ConfigError

LAYOUTS = ("NTHW", "NTHWC", "NTCHW")

# one sequence: (source index, first frame, end frame)
Unit = tuple[int, int, int]


def guess_layout(shape: tuple[int, ...], path: Path) -> str:
    if len(shape) == 4:
        return "NTHW"
    if len(shape) != 5:
        raise ConfigError(
            f"{path}: array of shape {shape}; expected (N, T, H, W), (N, T, H, W, C) or (N, T, C, H, W)"
        )
    last, third = shape[4] in (1, 2, 3, 4), shape[2] in (1, 2, 3, 4)
    if last and not third:
        return "NTHWC"
    if third and not last:
        return "NTCHW"
    raise ConfigError(
        f"{path}: cannot tell (N, T, H, W, C) from (N, T, C, H, W) in shape {shape}; pass layout="
    )


def load_array(path: Path, layout: str | None, key: str | None) -> np.ndarray:
    """The array at ``path`` as a (N, T, H, W, C) view, dtype and value range validated."""
    try:
        if path.suffix == ".npz":
            with np.load(path) as z:
                names = list(z.keys())
                if key is None and len(names) != 1:
                    raise ConfigError(f"{path}: holds arrays {names}; pass key= to pick one")
                if (key or names[0]) not in names:
                    raise ConfigError(f"{path}: no array {key!r}; it holds {names}")
                arr = z[key or names[0]]
        else:
            arr = np.load(path, mmap_mode="r")
    except (OSError, EOFError) as err:
        raise ConfigError(f"{path}: cannot read array ({err})") from None
    if layout is not None and layout.upper() not in LAYOUTS:
        raise ConfigError(f"layout={layout!r}: use one of {LAYOUTS}")
    layout = layout.upper() if layout else guess_layout(arr.shape, path)
    if arr.ndim != len(layout):
        raise ConfigError(f"{path}: shape {arr.shape} does not match layout {layout}")
    check_values(arr, path, key)
    if layout == "NTHW":
        return arr[..., None]
    if layout == "NTCHW":
        return arr.transpose(0, 1, 3, 4, 2)
    return arr


class Source:
    """One path's sequences: ``units`` (source, lo, hi) plus a factory of windowed datasets."""

    def __init__(self, path: Path, layout: str | None = None, key: str | None = None):
        self.path = path
        self.kind, self.items, lengths = self._scan(path, layout, key)
        self.units: list[Unit] = [(i, 0, n) for i, n in enumerate(lengths)]
        self.names = [self._name(i) for i in range(len(lengths))]

    def _name(self, i: int) -> str:
        if self.kind == "array":
            return f"{self.path}[{i}]"
        return str(self.items[i] if self.kind == "video" else Path(self.items[i][0]).parent)

    @staticmethod
    def _scan(path: Path, layout, key):
        if path.is_file():
            if path.suffix.lower() in (".npy", ".npz"):
                arr = load_array(path, layout, key)
                return "array", arr, [arr.shape[1]] * arr.shape[0]
            if path.suffix.lower() in VIDEO_EXTS:
                return "video", [path], [_video_length(path)]
            raise ConfigError(
                f"{path}: not a .npy/.npz array or a video file ({', '.join(VIDEO_EXTS)})"
            )
        videos = sorted(p for p in path.iterdir() if p.suffix.lower() in VIDEO_EXTS)
        if videos:
            lengths = [count_video_frames(v) for v in videos]
            bad = [v.name for v, n in zip(videos, lengths) if n == 0]
            warn_skipped("videos", bad, "OpenCV cannot open or decode them")
            kept = [(v, n) for v, n in zip(videos, lengths) if n > 0]
            if not kept:
                raise ConfigError(f"{path}: none of the {len(videos)} video files can be decoded")
            return "video", [v for v, _ in kept], [n for _, n in kept]
        folders = list_frame_folders(path)
        if folders:
            frames = [list_images(f) for f in folders]
            return "frames", frames, [len(f) for f in frames]
        frames = list_images(path)
        if frames:
            return "frames", [frames], [len(frames)]
        raise ConfigError(
            f"{path}: empty: no video files, frame folders or images ({', '.join(IMAGE_EXTS)})"
        )

    def dataset(
        self, units: list[Unit], spec, size, channels, train: bool, stride: int
    ) -> ClipDataset:
        step = stride if train else spec.total
        rows = [(src, s) for src, lo, hi in units for s in range(lo, hi - spec.total + 1, step)]
        windows = np.asarray(rows, np.int64).reshape(-1, 2)
        cls = {"array": ArrayWindows, "video": VideoWindows, "frames": FrameWindows}[self.kind]
        return cls(self.items, windows, spec, size, channels, with_long=train)


def _video_length(path: Path) -> int:
    n = count_video_frames(path)
    if n == 0:
        raise ConfigError(
            f"{path}: OpenCV cannot open or decode this video (corrupt or unsupported codec)"
        )
    return n


def _long_enough(source: Source, spec: ClipSpec) -> list[Unit]:
    units = [u for u in source.units if u[2] - u[1] >= spec.total]
    short = [source.names[u[0]] for u in source.units if u[2] - u[1] < spec.total]
    warn_skipped("sequences", short, f"fewer than short_len + out_len = {spec.total} frames")
    if not units:
        raise ConfigError(
            f"{source.path}: no sequence has short_len + out_len = {spec.total} frames"
        )
    return units


def hold_out(
    units: list[Unit], fraction: float, seed: int, min_len: int
) -> tuple[list[Unit], list[Unit]]:
    """Fixed (train, valid) split: whole sequences chosen by ``seed``, or the end of a single one."""
    if len(units) >= 2:
        n_val = min(len(units) - 1, max(1, round(fraction * len(units))))
        picked = set(np.random.default_rng(seed).permutation(len(units))[:n_val].tolist())
        return [u for i, u in enumerate(units) if i not in picked], [
            units[i] for i in sorted(picked)
        ]
    src, lo, hi = units[0]
    cut = hi - max(min_len, round(fraction * (hi - lo)))
    if cut - lo < min_len:
        return units, []
    return [(src, lo, cut)], [(src, cut, hi)]


# the frames this dataset gives when not told otherwise (swinlstm.data.native_frame)
IMG_SIZE = 64
IMG_CHANNEL = 1


def build(
    req: SplitRequest,
    *,
    stride: int = 1,
    valid_fraction: float = 0.1,
    layout: str | None = None,
    key: str | None = None,
) -> Splits:
    """Splits of the user's own data (see the module docstring for what a path may be)."""
    if stride < 1:
        raise ConfigError(f"stride must be >= 1, got {stride}")
    (train_dir, valid_dir, test_dir), spec, seed = req.dirs, req.spec, req.seed
    common = dict(req.clip_args, stride=stride)
    info: dict = {"dataset": "custom", "value_range": (0.0, 1.0)}

    def load(path, what):
        return Source(require_path(path, f"custom {what}"), layout, key)

    train = valid = test = None
    if train_dir is not None:
        src = load(train_dir, "train_dir")
        units = _long_enough(src, spec)
        info["source"] = f"{src.kind} {src.path}"
        if valid_dir is None:
            units, val_units = hold_out(units, valid_fraction, seed, spec.total)
            if val_units:
                valid = src.dataset(val_units, train=False, **common)
                info["valid"] = f"{len(val_units)} held-out sequence(s) of {src.path} (seed {seed})"
            else:
                warnings.warn(
                    f"{src.path}: too short to hold out a validation part; no validation set",
                    stacklevel=2,
                )
        train = src.dataset(units, train=True, **common)
    if valid_dir is not None:
        src = load(valid_dir, "valid_dir")
        valid = src.dataset(_long_enough(src, spec), train=False, **common)
        info["valid"] = f"{src.kind} {src.path}"
    if test_dir is not None:
        src = load(test_dir, "test_dir")
        test = src.dataset(_long_enough(src, spec), train=False, **common)
        info["test"] = f"{src.kind} {src.path}"
    return Splits(train, valid, test, info)
