"""The one contract every dataset follows: clips, windows, resizing, channels, the long clip.

A dataset item is ``(inputs, targets)`` of float32 tensors in [0, 1]: inputs (short_len, C, H, W)
are frames [0, short_len) of a clip of ``short_len + out_len`` frames and targets (out_len, C, H, W)
are frames [short_len, short_len + out_len) (never ``clip[out_len:]``, which the authors' and
OpenSTL's loaders use and which is wrong when the two lengths differ). Training items of memory
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

log = logging.getLogger("swinlstm.data")

IMAGE_EXTS = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff")
VIDEO_EXTS = (".avi", ".mp4", ".mov", ".mkv", ".mpg", ".mpeg", ".webm")
_MAX_CV_CHANNELS = 128  # cv2.resize takes at most this many channels per call (OpenCV 5: 128)


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
                raise ValueError(f"{name} must be a positive integer, got {value!r}")
        if not isinstance(self.long_len, int) or self.long_len < 0:
            raise ValueError(f"long_len must be an integer >= 0, got {self.long_len!r}")
        if self.long_len > self.total:
            raise ValueError(
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
    """``64`` or ``(H, W)`` -> ``(H, W)``; anything else is a ValueError naming the value."""
    if isinstance(img_size, (int, np.integer)):
        size = (int(img_size), int(img_size))
    elif isinstance(img_size, Sequence) and len(img_size) == 2:
        size = (int(img_size[0]), int(img_size[1]))
    else:
        raise ValueError(f"img_size must be an int or (H, W), got {img_size!r}")
    if min(size) < 1:
        raise ValueError(f"img_size must be positive, got {img_size!r}")
    return size


def check_channels(img_channel: int, allowed: Sequence[int] = (1, 3)) -> int:
    if img_channel not in allowed:
        raise ValueError(
            f"img_channel={img_channel!r} is not supported here; use one of {list(allowed)}"
        )
    return int(img_channel)


def resize_frames(frames: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """Resize (T, H, W, C) frames to ``size`` = (H, W): area averaging down, bilinear up.

    All frames go through cv2 in as few calls as possible by stacking time into channels.
    """
    t, h, w, c = frames.shape
    if (h, w) == size:
        return frames
    interp = cv2_interp(shrink=size[0] * size[1] < h * w)
    import cv2

    stacked = np.ascontiguousarray(frames.transpose(1, 2, 0, 3).reshape(h, w, t * c))
    chunks = [
        cv2.resize(
            np.ascontiguousarray(stacked[..., i : i + _MAX_CV_CHANNELS]),
            (size[1], size[0]),
            interpolation=interp,
        )
        for i in range(0, t * c, _MAX_CV_CHANNELS)
    ]
    chunks = [ch[..., None] if ch.ndim == 2 else ch for ch in chunks]
    out = np.concatenate(chunks, axis=-1) if len(chunks) > 1 else chunks[0]
    return out.reshape(size[0], size[1], t, c).transpose(2, 0, 1, 3)


def cv2_interp(shrink: bool) -> int:
    import cv2

    return cv2.INTER_AREA if shrink else cv2.INTER_LINEAR


def convert_channels(frames: np.ndarray, channels: int) -> np.ndarray:
    """(T, H, W, C) -> (T, H, W, channels): grey is repeated to RGB, RGB -> grey by BT.601 luma."""
    c = frames.shape[-1]
    if c == channels:
        return frames
    if c == 1 and channels == 3:
        return np.repeat(frames, 3, axis=-1)
    if c in (3, 4) and channels == 1:
        luma = frames[..., :3].astype(np.float32) @ np.array([0.299, 0.587, 0.114], np.float32)
        if frames.dtype == np.uint8:
            luma = np.clip(np.rint(luma), 0, 255).astype(np.uint8)
        return luma[..., None]
    if c == 4 and channels == 3:
        return frames[..., :3]
    raise ValueError(f"cannot convert frames with {c} channels to img_channel={channels}")


def to_tensor_clip(frames: np.ndarray, size: tuple[int, int], channels: int) -> torch.Tensor:
    """(T, H, W, C) uint8 or float frames in [0, 1] -> float32 tensor (T, channels, H', W') in [0, 1]."""
    frames = convert_channels(frames, channels)
    if frames.dtype != np.uint8 and frames.dtype != np.float32:
        frames = frames.astype(np.float32)
    frames = resize_frames(frames, size)
    frames = frames.transpose(0, 3, 1, 2)
    if frames.dtype == np.uint8:
        return unit_float(frames)
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

    ``load_clip`` returns ``spec.total`` frames as uint8 (0..255) or float in [0, 1]; this class
    converts channels, resizes to ``size`` and splits into inputs / targets (/ long clip when
    ``with_long``).
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
        raise ValueError(f"{what}: no path given")
    p = Path(path).expanduser()
    if not p.exists():
        raise FileNotFoundError(f"{what}: {p} does not exist")
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


def read_image(path: str | os.PathLike, grey: bool) -> np.ndarray:
    """(H, W, 1) grey or (H, W, 3) RGB uint8; a file cv2 cannot decode is a ValueError naming it."""
    import cv2

    img = cv2.imread(str(path), cv2.IMREAD_GRAYSCALE if grey else cv2.IMREAD_COLOR)
    if img is None:
        raise ValueError(f"{path}: cannot decode image (missing, corrupt or not an image)")
    return img[..., None] if grey else cv2.cvtColor(img, cv2.COLOR_BGR2RGB)


def read_frames(paths: Sequence[str | os.PathLike], grey: bool) -> np.ndarray:
    frames = [read_image(p, grey) for p in paths]
    shapes = {f.shape for f in frames}
    if len(shapes) > 1:
        raise ValueError(f"{Path(paths[0]).parent}: frames of different sizes {sorted(shapes)}")
    return np.stack(frames)


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
            raise ValueError(f"{path}: cannot open video (corrupt or unsupported codec)")
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
        raise ValueError(
            f"{path}: could decode only {len(frames)} frames from frame {start} "
            f"(wanted {count if count is not None else 'at least 1'}); corrupt or truncated video"
        )
    return np.stack(frames)


# ---------------------------------------------------------------------------- generic datasets


class FrameWindows(ClipDataset):
    """Windows over videos stored as lists of frame image paths (one folder per video)."""

    def __init__(
        self,
        videos: Sequence[Sequence[str]],
        windows: np.ndarray,
        spec: ClipSpec,
        size: tuple[int, int],
        channels: int,
        with_long: bool,
        step: int = 1,
    ):
        super().__init__(spec, size, channels, with_long)
        self.videos = [list(map(str, v)) for v in videos]
        self.windows = windows
        self.step = step

    def __len__(self) -> int:
        return len(self.windows)

    def load_clip(self, index: int) -> np.ndarray:
        video, start = self.windows[index]
        stop = start + self.spec.total * self.step
        return read_frames(self.videos[video][start : stop : self.step], grey=self.channels == 1)


class ArrayWindows(ClipDataset):
    """Windows over an array of sequences (N, T, H, W, C): uint8, or float already in [0, 1]."""

    def __init__(
        self,
        array: np.ndarray,
        windows: np.ndarray,
        spec: ClipSpec,
        size: tuple[int, int],
        channels: int,
        with_long: bool,
    ):
        super().__init__(spec, size, channels, with_long)
        self.array = array
        self.windows = windows

    def __len__(self) -> int:
        return len(self.windows)

    def load_clip(self, index: int) -> np.ndarray:
        seq, start = self.windows[index]
        return np.array(self.array[seq, start : start + self.spec.total])  # copy out of a memmap


class VideoWindows(ClipDataset):
    """Windows over video files read with OpenCV (seek + decode ``spec.total`` frames)."""

    def __init__(
        self,
        files: Sequence[Path],
        windows: np.ndarray,
        spec: ClipSpec,
        size: tuple[int, int],
        channels: int,
        with_long: bool,
    ):
        super().__init__(spec, size, channels, with_long)
        self.files = [Path(f) for f in files]
        self.windows = windows

    def __len__(self) -> int:
        return len(self.windows)

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
        raise ValueError(
            f"{root}: no subfolders with image frames (expected root/video_xxxxx/frame_xxxxx.png)"
        )
    videos = [list_images(f) for f in folders]
    stride = stride or (1 if train else spec.total)
    windows = index_windows([len(v) for v in videos], spec.total, stride)
    short = [f.name for f, v in zip(folders, videos) if len(v) < spec.total]
    warn_skipped("videos", short, f"fewer than short_len + out_len = {spec.total} frames")
    if len(windows) == 0:
        raise ValueError(f"{root}: no video has short_len + out_len = {spec.total} frames")
    return FrameWindows(videos, windows, spec, size, channels, with_long=train)
