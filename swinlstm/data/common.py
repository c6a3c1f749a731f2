"""The one contract every dataset follows: clips, windows, resizing, channels, the long clip.

A dataset item is ``(inputs, targets)`` of float32 tensors in [0, 1]: inputs (short_len, C, H, W)
are frames [0, short_len) of a clip of ``short_len + out_len`` frames and targets (out_len, C, H, W)
are frames [short_len, short_len + out_len) (never ``clip[out_len:]``, which the SwinLSTM
authors' loader and OpenSTL's Human3.6m loader use and which is wrong when the two lengths differ). Training items of memory
models (``long_len > 0``) carry a third tensor, the long clip (long_len, C, H, W): as in LMC-Memory's
``train.py``, ``long_len`` consecutive frames of the same clip starting at a uniformly drawn
position in [0, short_len + out_len - long_len] (LMC draws one start per batch; here each item draws
its own from torch's RNG, which DataLoader seeds per worker and epoch).
"""

from __future__ import annotations

import logging
import os
import re
import warnings
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.utils.data import Dataset

from swinlstm.data.checks import finite_range
from swinlstm.errors import ConfigError, MissingPathError
from swinlstm.helpers import as_hw

log = logging.getLogger("swinlstm.data")

IMAGE_EXTS = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff")
VIDEO_EXTS = (".avi", ".mp4", ".mov", ".mkv", ".mpg", ".mpeg", ".webm")
_CV_CHANNELS = 4  # channels per cv2.resize call: OpenCV 5 takes no more for INTER_AREA


@dataclass(frozen=True)
class ClipSpec:
    """Frame counts of one sample: ``short_len`` inputs, ``out_len`` targets, ``long_len`` memory."""

    short_len: int = 10
    out_len: int = 10
    long_len: int = 0

    def __post_init__(self) -> None:
        for name in ("short_len", "out_len"):
            value = getattr(self, name)
            if not isinstance(value, int) or value < 1:
                raise ConfigError(f"{name} must be a positive integer, got {value!r}")
        if not isinstance(self.long_len, int) or self.long_len < 0:
            raise ConfigError(f"long_len must be an integer >= 0, got {self.long_len!r}")
        if self.long_len > self.total:
            raise ConfigError(
                f"long_len={self.long_len} is longer than the clip short_len + out_len = "
                f"{self.total}: the long clip is taken inside the clip (as LMC-Memory does)"
            )

    @property
    def total(self) -> int:
        return self.short_len + self.out_len


@dataclass
class Splits:
    """What :func:`swinlstm.data.build_datasets` returns: the three splits and a description."""

    train: Dataset | None
    valid: Dataset | None
    test: Dataset | None
    info: dict[str, Any] = field(default_factory=dict)


def parse_img_size(img_size: int | Sequence[int]) -> tuple[int, int]:
    """``64`` or ``(H, W)`` -> ``(H, W)`` (:func:`swinlstm.helpers.as_hw`, NumPy integers too);
    anything else is a ConfigError naming the value."""
    if isinstance(img_size, np.integer):
        img_size = int(img_size)
    if not isinstance(img_size, (int, Sequence)) or isinstance(img_size, str):
        raise ConfigError(f"img_size must be a positive int or (H, W), got {img_size!r}")
    return as_hw(img_size, "img_size")


def check_channels(img_channel: int, allowed: Sequence[int] = (1, 3)) -> int:
    if img_channel not in allowed:
        raise ConfigError(
            f"img_channel={img_channel!r} is not supported here; use one of {list(allowed)}"
        )
    return int(img_channel)


@dataclass(frozen=True)
class SplitRequest:
    """What :func:`swinlstm.data.build_datasets` asks of a dataset module's ``build``.

    ``train_dir`` / ``valid_dir`` / ``test_dir``: a file or folder each (None: no such source);
    ``spec``: the clip lengths; ``size`` (H, W) and ``channels``: the frames every item has,
    already checked (defaults: the module's ``IMG_SIZE`` / ``IMG_CHANNEL``, allowed channels:
    its ``CHANNELS``); ``seed``: of the module's random choices (generated clips, held-out part).
    """

    train_dir: str | os.PathLike | None
    valid_dir: str | os.PathLike | None
    test_dir: str | os.PathLike | None
    spec: ClipSpec
    size: tuple[int, int]
    channels: int
    seed: int = 1234

    @property
    def dirs(self) -> tuple:
        """``(train_dir, valid_dir, test_dir)``."""
        return self.train_dir, self.valid_dir, self.test_dir

    @property
    def clip_args(self) -> dict[str, Any]:
        """``spec``, ``size``, ``channels``: the arguments every :class:`ClipDataset` takes."""
        return {"spec": self.spec, "size": self.size, "channels": self.channels}


def resize_frames(frames: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """Resize (T, H, W, C) frames to ``size`` = (H', W'): any T, C, dtype cv2 takes, any direction.

    Each axis on its own: area averaging where it shrinks (``cv2.INTER_AREA``: the mean of the
    source pixels an output pixel covers, partly covered ones weighted by their share), bilinear
    where it grows (``cv2.INTER_LINEAR``, pixel centres aligned). When one axis shrinks and the
    other grows (KTH's 120x160 -> 128x128) the shrinking axis goes first, in float32, then the other,
    so it is still averaged (cv2's INTER_AREA alone would sample it) and integers are rounded once.
    cv2 gets one frame and at most 4 channels per call, which OpenCV 4.x and 5.x all accept (5.0
    refuses INTER_AREA on more than 4 channels at a non-integer factor). This is the one resize of
    the package: every loader, ``prepare-kth`` and ``swinlstm predict`` use it.
    """
    t, h, w, c = frames.shape
    out_h, out_w = int(size[0]), int(size[1])
    if (h, w) == (out_h, out_w):
        return frames
    import cv2

    if (out_h <= h) == (out_w <= w):  # one pass: both axes shrink, or both grow
        passes = [((out_h, out_w), cv2.INTER_AREA if out_h <= h else cv2.INTER_LINEAR)]
    else:  # the shrinking axis first
        mid = (out_h, w) if out_h < h else (h, out_w)
        passes = [(mid, cv2.INTER_AREA), ((out_h, out_w), cv2.INTER_LINEAR)]
    two = len(passes) == 2
    out = np.empty((t, out_h, out_w, c), frames.dtype)
    for k in range(t):  # frame by frame: memory stays one frame whatever the clip's size
        for i in range(0, c, _CV_CHANNELS):
            x = frames[k, :, :, i : i + _CV_CHANNELS] if c > _CV_CHANNELS else frames[k]
            if two:
                x = x.astype(np.float32)
            for (ph, pw), interp in passes:
                x = cv2.resize(np.ascontiguousarray(x), (pw, ph), interpolation=interp)
            x = x.reshape(out_h, out_w, -1)
            if two and out.dtype.kind in "ui":  # means of in-range values: rounding suffices
                x = np.rint(x)
            out[k, :, :, i : i + _CV_CHANNELS] = x
    return out


def convert_channels(frames: np.ndarray, channels: int) -> np.ndarray:
    """(T, H, W, C) -> (T, H, W, channels): grey is repeated to RGB, RGB(A) -> grey by BT.601 luma,
    RGBA -> RGB drops alpha. Integer frames stay in their dtype (luma rounded)."""
    c = frames.shape[-1]
    if c == channels:
        return frames
    if c == 1 and channels == 3:
        return np.repeat(frames, 3, axis=-1)
    if c in (3, 4) and channels == 1:
        luma = frames[..., :3].astype(np.float32) @ np.array([0.299, 0.587, 0.114], np.float32)
        if np.issubdtype(frames.dtype, np.integer):
            info = np.iinfo(frames.dtype)
            luma = np.clip(np.rint(luma), info.min, info.max).astype(frames.dtype)
        return luma[..., None]
    if c == 4 and channels == 3:
        return frames[..., :3]
    raise ConfigError(f"cannot convert frames with {c} channels to img_channel={channels}")


#: integer frame dtypes and the value that maps to 1.0 (16-bit PNG / TIFF frames are uint16)
FRAME_SCALES = {np.dtype(np.uint8): 255.0, np.dtype(np.uint16): 65535.0}


def to_tensor_clip(frames: np.ndarray, size: tuple[int, int], channels: int) -> torch.Tensor:
    """(T, H, W, C) frames -> float32 tensor (T, channels, H', W') in [0, 1].

    uint8 frames are divided by 255, uint16 (16-bit PNG / TIFF) by 65535 (their own range: not
    clipped, not wrapped), float frames are taken as [0, 1]. Channels are reduced before resizing
    and added after it, so the resize handles as few channels as possible."""
    if frames.dtype not in FRAME_SCALES and not np.issubdtype(frames.dtype, np.floating):
        raise ConfigError(f"frames of dtype {frames.dtype}: use uint8, uint16 or float in [0, 1]")
    if frames.dtype.kind == "f" and frames.dtype != np.float32:
        frames = frames.astype(np.float32)
    if channels < frames.shape[-1]:
        frames = convert_channels(frames, channels)
    frames = resize_frames(frames, size)
    frames = convert_channels(frames, channels)
    frames = frames.transpose(0, 3, 1, 2)
    if frames.dtype == np.uint8:
        return unit_float(frames)
    if frames.dtype == np.uint16:
        scale = FRAME_SCALES[frames.dtype]
        return torch.from_numpy(np.ascontiguousarray(frames, dtype=np.float32)).div_(scale)
    return torch.from_numpy(np.ascontiguousarray(frames)).clamp_(0.0, 1.0)


def unit_float(frames: np.ndarray) -> torch.Tensor:
    """uint8 array -> float32 tensor in [0, 1]. Call it on one clip (or one part of a clip) at a
    time: small conversions stay in cache and are several times faster than one per batch."""
    if not frames.flags.writeable or not frames.flags.c_contiguous:
        frames = np.array(frames)  # torch.from_numpy wants writable, contiguous memory
    return torch.from_numpy(frames).div(255.0)


def split_clip(clip, spec: ClipSpec, long: bool, convert=None) -> tuple:
    """(short_len + out_len, ...) clip -> (inputs, targets) or (inputs, targets, long), each part
    passed through ``convert`` when given (e.g. :func:`unit_float` on uint8 frames: converting the
    parts separately keeps every allocation small, which is much faster than one big one)."""
    parts = [clip[: spec.short_len], clip[spec.short_len : spec.total]]
    if long and spec.long_len > 0:
        start = int(torch.randint(0, spec.total - spec.long_len + 1, ()).item())
        parts.append(clip[start : start + spec.long_len])
    return tuple(parts) if convert is None else tuple(convert(p) for p in parts)


class ClipDataset(Dataset):
    """Base of every dataset: subclasses give ``__len__`` and ``load_clip(i)`` -> (T, H, W, C) frames.

    ``load_clip`` returns ``spec.total`` frames as uint8 (0..255), uint16 (0..65535) or float in
    [0, 1]; this class converts channels, resizes to ``size`` (:func:`to_tensor_clip`) and splits
    into inputs / targets (/ long clip when ``with_long``).
    """

    def __init__(self, spec: ClipSpec, size: tuple[int, int], channels: int, with_long: bool):
        self.spec = spec
        self.size = size
        self.channels = channels
        self.with_long = with_long and spec.long_len > 0

    def load_clip(self, index: int) -> np.ndarray:  # pragma: no cover - abstract
        raise NotImplementedError

    def __len__(self) -> int:  # pragma: no cover - abstract
        raise NotImplementedError

    def __getitem__(self, index: int) -> tuple[torch.Tensor, ...]:
        if not -len(self) <= index < len(self):
            raise IndexError(f"index {index} out of range for {len(self)} samples")
        frames = self.load_clip(index % len(self))
        clip = to_tensor_clip(frames, self.size, self.channels)
        return split_clip(clip, self.spec, self.with_long)


# ---------------------------------------------------------------------------------- windows


def window_starts(n_frames: int, seq_len: int, stride: int) -> np.ndarray:
    """Start indices of every window of ``seq_len`` frames taken every ``stride`` frames."""
    if n_frames < seq_len:
        return np.zeros(0, np.int64)
    return np.arange(0, n_frames - seq_len + 1, stride, dtype=np.int64)


def index_windows(lengths: Sequence[int], seq_len: int, stride: int) -> np.ndarray:
    """(N, 2) array of (video, start) for every window of every video."""
    rows = [
        np.stack([np.full(len(s), v, np.int64), s], axis=1)
        for v, n in enumerate(lengths)
        if len(s := window_starts(n, seq_len, stride))
    ]
    return np.concatenate(rows) if rows else np.zeros((0, 2), np.int64)


def warn_skipped(what: str, names: Sequence[str], reason: str) -> None:
    """One warning naming every skipped item (the first 10, then a count)."""
    if not names:
        return
    shown = ", ".join(str(n) for n in names[:10])
    more = f" and {len(names) - 10} more" if len(names) > 10 else ""
    warnings.warn(f"skipped {len(names)} {what} ({reason}): {shown}{more}", stacklevel=3)


# ------------------------------------------------------------------------------- file access


def require_path(path: str | os.PathLike | None, what: str) -> Path:
    if path is None:
        raise ConfigError(f"{what}: no path given")
    p = Path(path).expanduser()
    if not p.exists():
        raise MissingPathError(f"{what}: {p} does not exist")
    return p


def _natural_key(name: str) -> tuple:
    return tuple(int(t) if t.isdigit() else t for t in re.split(r"(\d+)", name))


def list_images(folder: Path) -> list[Path]:
    """Image files of ``folder``, in natural order (frame_2 before frame_10)."""
    return sorted(
        (p for p in folder.iterdir() if p.suffix.lower() in IMAGE_EXTS and p.is_file()),
        key=lambda p: _natural_key(p.name),
    )


def list_frame_folders(root: Path) -> list[Path]:
    """Subfolders of ``root`` that hold at least one image, in natural order."""
    return sorted(
        (d for d in root.iterdir() if d.is_dir() and any(list_images(d))),
        key=lambda p: _natural_key(p.name),
    )


def read_image(path: str | os.PathLike, grey: bool | None) -> np.ndarray:
    """One image file as (H, W, C): grey (C = 1) when ``grey``, RGB (C = 3) when not, as stored
    (1 for a grey file, 3 for a colour one) when None. Alpha is dropped; 16-bit PNG / TIFF stay
    uint16 (see :data:`FRAME_SCALES`), 8-bit files are uint8, float TIFFs float32. A file cv2
    cannot decode, or of another depth, is a ValueError naming it."""
    import cv2

    mode = {True: cv2.IMREAD_GRAYSCALE, False: cv2.IMREAD_COLOR, None: cv2.IMREAD_ANYCOLOR}[grey]
    img = cv2.imread(str(path), mode | cv2.IMREAD_ANYDEPTH)
    if img is None:
        raise ConfigError(f"{path}: cannot decode image (missing, corrupt or not an image)")
    if img.dtype not in FRAME_SCALES and img.dtype != np.float32:
        raise ConfigError(f"{path}: {img.dtype} pixels; use 8- or 16-bit images (or float32 TIFF)")
    if img.ndim == 2:
        return img[..., None]
    return cv2.cvtColor(img, cv2.COLOR_BGR2RGB)


def read_frames(paths: Sequence[str | os.PathLike], grey: bool | None) -> np.ndarray:
    """Image files -> (T, H, W, C) frames (see :func:`read_image`); they must agree in shape and
    depth, and float ones lie in [0, 1] (a ValueError naming the folder otherwise)."""
    frames = [read_image(p, grey) for p in paths]
    kinds = {(f.shape, str(f.dtype)) for f in frames}
    if len(kinds) > 1:
        raise ConfigError(
            f"{Path(paths[0]).parent}: frames of different shapes or depths {sorted(kinds)}"
        )
    clip = np.stack(frames)
    if clip.dtype == np.float32:
        check_values(clip, Path(paths[0]).parent)  # float TIFFs: [0, 1] like float arrays
    return clip


def check_values(arr: np.ndarray, path: str | os.PathLike, key: str | None = None) -> None:
    """uint8, uint16 or float in [0, 1]; anything else is a ValueError naming ``path`` (and the
    array ``key`` in it). Floats are read once, in chunks; NaN / inf name the first bad index."""
    if arr.dtype in FRAME_SCALES:
        return
    if not np.issubdtype(arr.dtype, np.floating):
        raise ConfigError(
            f"{path}: dtype {arr.dtype}; use uint8 (0..255), uint16 (0..65535) or float in [0, 1]"
        )
    lo, hi = finite_range(arr, path, key)
    if not (0.0 <= lo and hi <= 1.0):
        raise ConfigError(
            f"{path}: float values span [{lo:.4g}, {hi:.4g}]; scale them to [0, 1] first"
        )


def read_npy_clip(path: str | os.PathLike) -> np.ndarray:
    """One clip saved as .npy, (T, H, W), (T, H, W, C) or (T, C, H, W) with C in 1..4 -> (T, H, W,
    C): uint8, uint16, or float32 in [0, 1]."""
    try:
        x = np.load(path, allow_pickle=False)
    except Exception as err:
        raise ConfigError(f"{path}: not a readable .npy array ({err})") from None
    if x.ndim == 3:
        x = x[..., None]
    elif x.ndim == 4 and x.shape[1] in (1, 2, 3, 4) and x.shape[-1] not in (1, 3, 4):
        x = np.moveaxis(x, 1, -1)
    if x.ndim != 4 or x.shape[-1] not in (1, 2, 3, 4):
        raise ConfigError(
            f"{path}: expected one clip (T, H, W), (T, H, W, C) or (T, C, H, W), got shape "
            f"{x.shape} (for an array of many clips, save the one to forecast)"
        )
    check_values(x, path)
    return x if x.dtype in FRAME_SCALES else x.astype(np.float32)


def read_clip(path: str | os.PathLike, grey: bool | None = None) -> np.ndarray:
    """A video file, a folder of frames (natural order) or a .npy clip as (T, H, W, C) frames,
    read as the datasets read them: grey (C = 1) when ``grey``, RGB when False, as stored when
    None (videos: RGB). Frames are uint8, uint16 (16-bit images or .npy) or float32 in [0, 1]."""
    path = Path(path)
    if not path.exists():
        raise MissingPathError(f"{path} does not exist")
    if path.is_dir():
        files = list_images(path)
        if not files:
            raise ConfigError(f"{path}: holds no image ({', '.join(IMAGE_EXTS)})")
        return read_frames(files, grey)
    if path.suffix.lower() == ".npy":
        return read_npy_clip(path)
    if path.suffix.lower() in VIDEO_EXTS:
        return read_video(path, grey=bool(grey))
    raise ConfigError(
        f"{path}: unsupported input; give a video ({', '.join(VIDEO_EXTS)}), "
        "a folder of frames or a .npy clip"
    )


def count_video_frames(path: Path) -> int:
    """Number of frames OpenCV can decode from ``path`` (0 if it cannot open or decode it)."""
    import cv2

    cap = cv2.VideoCapture(str(path))
    try:
        if not cap.isOpened():
            return 0
        n = 0
        while cap.grab():
            n += 1
        return n
    finally:
        cap.release()


def read_video(
    path: Path, start: int = 0, count: int | None = None, grey: bool = False
) -> np.ndarray:
    """Frames [start, start + count) of a video as (T, H, W, C) uint8 (RGB or grey)."""
    import cv2

    cap = cv2.VideoCapture(str(path))
    frames = []
    try:
        if not cap.isOpened():
            raise ConfigError(f"{path}: cannot open video (corrupt or unsupported codec)")
        if start:
            cap.set(cv2.CAP_PROP_POS_FRAMES, start)
        while count is None or len(frames) < count:
            ok, frame = cap.read()
            if not ok:
                break
            if grey:
                frames.append(cv2.cvtColor(frame, cv2.COLOR_BGR2GRAY)[..., None])
            else:
                frames.append(cv2.cvtColor(frame, cv2.COLOR_BGR2RGB))
    finally:
        cap.release()
    if not frames or (count is not None and len(frames) < count):
        raise ConfigError(
            f"{path}: could decode only {len(frames)} frames from frame {start} "
            f"(wanted {count if count is not None else 'at least 1'}); corrupt or truncated video"
        )
    return np.stack(frames)


# ---------------------------------------------------------------------------- generic datasets


class Windows(ClipDataset):
    """Clips at ``windows``, an (N, 2) array of (sequence, start) rows; each subclass holds the
    sequences (frame paths, an array, video files) and reads a clip of them in ``load_clip``."""

    def __init__(
        self,
        windows: np.ndarray,
        spec: ClipSpec,
        size: tuple[int, int],
        channels: int,
        with_long: bool,
    ):
        super().__init__(spec, size, channels, with_long)
        self.windows = windows

    def __len__(self) -> int:
        return len(self.windows)


class FrameWindows(Windows):
    """Windows over videos stored as lists of frame image paths (one folder per video)."""

    def __init__(self, videos: Sequence[Sequence[str]], *args, step: int = 1, **kwargs):
        super().__init__(*args, **kwargs)
        self.videos = [list(map(str, v)) for v in videos]
        self.step = step

    def load_clip(self, index: int) -> np.ndarray:
        video, start = self.windows[index]
        stop = start + self.spec.total * self.step
        return read_frames(self.videos[video][start : stop : self.step], grey=self.channels == 1)


class ArrayWindows(Windows):
    """Windows over an array of sequences (N, T, H, W, C): uint8, or float already in [0, 1]."""

    def __init__(self, array: np.ndarray, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.array = array

    def load_clip(self, index: int) -> np.ndarray:
        seq, start = self.windows[index]
        return np.array(self.array[seq, start : start + self.spec.total])  # copy out of a memmap


class VideoWindows(Windows):
    """Windows over video files read with OpenCV (seek + decode ``spec.total`` frames)."""

    def __init__(self, files: Sequence[Path], *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.files = [Path(f) for f in files]

    def load_clip(self, index: int) -> np.ndarray:
        video, start = self.windows[index]
        return read_video(self.files[video], int(start), self.spec.total, grey=self.channels == 1)


def frame_folder_windows(
    root: Path,
    spec: ClipSpec,
    size: tuple[int, int],
    channels: int,
    train: bool,
    stride: int | None = None,
) -> FrameWindows:
    """LMC-Memory's layout ``root/video_xxxxx/frame_xxxxx.{png,jpg}``: every window when
    training (stride 1), non-overlapping windows otherwise; short videos skipped with a warning."""
    folders = list_frame_folders(root)
    if not folders:
        raise ConfigError(
            f"{root}: no subfolders with image frames (expected root/video_xxxxx/frame_xxxxx.png)"
        )
    videos = [list_images(f) for f in folders]
    stride = stride or (1 if train else spec.total)
    windows = index_windows([len(v) for v in videos], spec.total, stride)
    short = [f.name for f, v in zip(folders, videos) if len(v) < spec.total]
    warn_skipped("videos", short, f"fewer than short_len + out_len = {spec.total} frames")
    if len(windows) == 0:
        raise ConfigError(f"{root}: no video has short_len + out_len = {spec.total} frames")
    return FrameWindows(videos, windows, spec, size, channels, with_long=train)
