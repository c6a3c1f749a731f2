"""Moving MNIST: digits bouncing on a canvas, generated on the fly, plus the standard test file.

Dynamics as the SwinLSTM authors' generator: each digit starts at a uniform position in the free
range, moves in a uniform direction by ``step_length`` of the free range per frame, and at a border
is clamped and its velocity component flipped; overlapping digits combine by pixel-wise max.
The generator is vectorised over samples, digits and frames and its
random numbers come from a counter-based hash of (seed, index, draw), so sample ``i`` of a seed is
the same on every run, machine and batch composition.
"""

from __future__ import annotations

import functools
import gzip
import logging
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch

from swinlstm.data.common import (
    ArrayWindows,
    ClipDataset,
    ClipSpec,
    Splits,
    check_channels,
    frame_folder_windows,
    index_windows,
    list_frame_folders,
    parse_img_size,
    require_path,
    split_clip,
)

log = logging.getLogger("swinlstm.data")

IDX_NAMES = ("train-images-idx3-ubyte.gz", "train-images-idx3-ubyte")
TEST_NAME = "mnist_test_seq.npy"
BUILTIN_SOURCE = "built-in digits (scikit-learn load_digits, upsampled 8x8 -> 28x28)"
TEST_SEED = 20230101  # the generated test set never depends on the user's seed


# ------------------------------------------------------------------------------ digit sources


def read_idx_images(path: Path) -> np.ndarray:
    """(N, rows, cols) uint8 images of an MNIST idx3 file (plain or .gz)."""
    opener = gzip.open if path.suffix == ".gz" else open
    try:
        with opener(path, "rb") as f:
            raw = f.read()
    except (OSError, EOFError) as err:
        raise ValueError(f"{path}: cannot read ({err})") from None
    if len(raw) < 16 or int.from_bytes(raw[:4], "big") != 2051:
        raise ValueError(f"{path}: not an idx3 image file (magic number 2051 missing)")
    n, rows, cols = (int.from_bytes(raw[i : i + 4], "big") for i in (4, 8, 12))
    if len(raw) - 16 != n * rows * cols:
        raise ValueError(
            f"{path}: truncated idx file ({len(raw) - 16} bytes for {n}x{rows}x{cols} images)"
        )
    return np.frombuffer(raw, np.uint8, offset=16).reshape(n, rows, cols)


@functools.lru_cache(maxsize=2)
def builtin_digits(digit_size: int = 28) -> np.ndarray:
    """scikit-learn's 1797 8x8 UCI digits as (N, digit_size, digit_size) uint8, MNIST-like: the
    glyph is upsampled to 20/28 of the box and centred, as MNIST digits are."""
    import cv2
    from sklearn.datasets import load_digits

    images = load_digits().images.astype(np.float32) * (255.0 / 16.0)
    inner = max(1, round(digit_size * 20 / 28))
    pad = (digit_size - inner) // 2
    out = np.zeros((len(images), digit_size, digit_size), np.uint8)
    for i, img in enumerate(images):
        up = cv2.resize(img, (inner, inner), interpolation=cv2.INTER_CUBIC)
        out[i, pad : pad + inner, pad : pad + inner] = np.clip(np.rint(up), 0, 255)
    out.setflags(write=False)  # cached: shared by every caller
    return out


def find_idx_file(path: Path) -> Path | None:
    if path.is_file():
        return path
    for name in IDX_NAMES:
        if (path / name).is_file():
            return path / name
    return None


# ------------------------------------------------------------------------------ the generator


def _hash_uniform(seed: int, index: np.ndarray, draws: int) -> np.ndarray:
    """(len(index), draws) uniforms in [0, 1) from a splitmix64 hash of (seed, index, draw)."""
    mask = (1 << 64) - 1  # uint64 arithmetic wraps; the per-draw keys are made with Python ints
    key = (seed & mask) * 0x9E3779B97F4A7C15
    draw = np.array([(key + j * 0x8CB92BA72F3D8DD7) & mask for j in range(draws)], np.uint64)
    z = index.astype(np.uint64)[:, None] * np.uint64(0xD1B54A32D192ED03) + draw
    z ^= z >> np.uint64(30)
    z *= np.uint64(0xBF58476D1CE4E5B9)
    z ^= z >> np.uint64(27)
    z *= np.uint64(0x94D049BB133111EB)
    z ^= z >> np.uint64(31)
    z >>= np.uint64(11)
    return z * (1.0 / (1 << 53))


def trajectories(u: np.ndarray, steps: int, step_length: float) -> tuple[np.ndarray, np.ndarray]:
    """Positions in [0, 1] of (B, D) digits for ``steps`` frames, from uniforms u (B, D, 3) =
    (x, y, angle), following the authors' rule: move by the velocity, and at a border clamp the
    position and flip that velocity component. Returns y, x of shape (B, D, steps).

    Closed form, no loop over time: along one axis a digit moves freely until its first hit, after
    which it shuttles between the walls, taking ``n = ceil(1 / |v|)`` frames per crossing and
    starting each crossing exactly on a wall. It equals the frame-by-frame loop up to float
    rounding (the loop sums the steps where this multiplies them); only when a distance is an
    exact multiple of the step (e.g. an exactly axis-aligned direction, probability ~0 for random
    angles) can the loop's rounding put a bounce one frame later.
    """
    b, d = u.shape[:2]
    p0 = u[..., 1::-1, None]  # (B, D, 2, 1) = (y, x)
    theta = u[..., 2] * (2 * np.pi)
    v = np.empty((b, d, 2, 1))
    np.sin(theta, out=v[:, :, 0, 0])
    np.cos(theta, out=v[:, :, 1, 0])
    v *= step_length
    k = np.arange(1, steps + 1, dtype=np.float64)  # frame t is after k = t + 1 moves
    speed = np.maximum(np.abs(v), 1e-12)
    rising = v > 0
    # moves until the first hit (at 1 when rising, at 0 when falling); at least one
    first = np.maximum(1.0, np.ceil(np.where(rising, 1.0 - p0, p0) / speed))
    crossing = np.ceil(1.0 / speed)  # moves from one wall to the other
    after = k - first  # moves since the first hit (>= 0 from then on)
    bounced = np.maximum(after, 0.0)
    # whole numbers well below 2**53, so floor division and remainder are exact
    laps = np.floor(bounced / crossing)
    within = (bounced - laps * crossing) * speed
    wall = (laps.astype(np.int64) & 1) != rising  # True: the wall at 1 was hit last
    bouncing = np.where(wall, 1.0 - within, within)
    track = np.where(after < 0, p0 + k * v, bouncing)
    return track[:, :, 0], track[:, :, 1]


def paste(glyphs: np.ndarray, offsets: np.ndarray, canvas: tuple[int, int]) -> np.ndarray:
    """Clips (B, T, H, W) of glyphs (B, D, S, S) moving over a zero canvas: glyph d of clip b has
    its top-left pixel at flat offset ``offsets[b, d, t]`` (= top * W + left) in frame t, and
    overlapping glyphs combine by pixel-wise max.

    A glyph laid out with the canvas' row stride (zeros between its rows, harmless under max) is
    one contiguous run of (S - 1) * W + S pixels, so each paste is one row of a view of the clips
    as all their runs of that length: the rows at the offsets are set (first glyph) or max-ed.
    """
    b, dmax, size = glyphs.shape[:3]
    h, w = canvas
    frames = offsets.shape[-1]
    run = (size - 1) * w + size
    rows = np.zeros((b, dmax, size, w), glyphs.dtype)
    rows[..., :size] = glyphs
    rows = rows.reshape(b, dmax, 1, size * w)[..., :run]  # (B, D, 1, run)
    out = np.zeros((b, frames, h, w), glyphs.dtype)
    runs = np.ndarray((out.size - run + 1, run), out.dtype, out, 0, (out.itemsize,) * 2)
    at = offsets + np.arange(0, out.size, h * w).reshape(b, 1, frames)  # (B, D, T) run starts
    runs[at[:, 0]] = rows[:, 0]
    for d in range(1, dmax):
        covered = runs[at[:, d]]  # a copy (B, T, run), max-ed in place: one temporary
        runs[at[:, d]] = np.maximum(covered, rows[:, d], out=covered)
    return out


def generate(
    digits: np.ndarray,
    indices: np.ndarray,
    seed: int,
    frames: int,
    canvas: tuple[int, int] = (64, 64),
    num_digits: Sequence[int] = (2,),
    step_length: float = 0.1,
) -> np.ndarray:
    """Moving MNIST clips (len(indices), frames, H, W) uint8, deterministic per (seed, index)."""
    h, w = canvas
    size = digits.shape[-1]
    if size > h or size > w:
        raise ValueError(
            f"canvas {h}x{w} is smaller than the {size}x{size} digits; use img_size >= {size}"
        )
    counts = np.asarray(list(num_digits), np.int64)
    dmax = int(counts.max())
    b = len(indices)
    u = _hash_uniform(seed, np.asarray(indices), 1 + 4 * dmax)
    which = np.minimum((u[:, 1 : 1 + dmax] * len(digits)).astype(np.int64), len(digits) - 1)
    glyphs = digits[which]  # (B, D, S, S), a copy
    if len(counts) > 1:  # a clip of n digits pastes its digits n.. as zeros
        n_per = counts[np.minimum((u[:, 0] * len(counts)).astype(np.int64), len(counts) - 1)]
        glyphs[np.arange(dmax) >= n_per[:, None]] = 0
    ys, xs = trajectories(u[:, 1 + dmax :].reshape(b, dmax, 3), frames, step_length)
    top = (ys * (h - size)).astype(np.int64)  # truncation, as the authors' astype(int32)
    left = (xs * (w - size)).astype(np.int64)
    return paste(glyphs, top * w + left, canvas)


class GeneratedMovingMNIST(ClipDataset):
    """``samples`` generated clips; with ``resample`` each call draws fresh clips (training, as the
    authors), otherwise item i is fixed by (seed, i) (validation / test)."""

    chunk = 32  # __getitems__ generates at most this many clips per vectorised call

    def __init__(
        self,
        digits: np.ndarray,
        samples: int,
        seed: int,
        spec: ClipSpec,
        size: tuple[int, int],
        channels: int,
        with_long: bool,
        num_digits: Sequence[int] = (2,),
        step_length: float = 0.1,
        resample: bool = False,
    ):
        super().__init__(spec, size, channels, with_long)
        if samples < 1:
            raise ValueError(f"Moving MNIST: the number of samples must be >= 1, got {samples}")
        if not num_digits or min(num_digits) < 1:
            raise ValueError(
                f"num_digits must be a non-empty list of counts >= 1, got {num_digits!r}"
            )
        self.digits = digits
        self.samples = samples
        self.seed = seed
        self.num_digits = tuple(int(n) for n in num_digits)
        self.step_length = step_length
        self.resample = resample

    def __len__(self) -> int:
        return self.samples

    def _seed(self) -> int:
        if not self.resample:
            return self.seed
        return self.seed ^ int(torch.randint(0, 2**62, ()).item())

    def clips(self, indices: Sequence[int]) -> np.ndarray:
        """uint8 clips (len(indices), short_len + out_len, H, W) in one vectorised call; with
        ``resample`` each call draws a fresh seed from torch's RNG."""
        return generate(
            self.digits,
            np.asarray(indices, np.int64),
            self._seed(),
            self.spec.total,
            self.size,
            self.num_digits,
            self.step_length,
        )

    def load_clip(self, index: int) -> np.ndarray:
        return self.clips([index])[0][..., None]

    def __getitems__(self, indices: Sequence[int]) -> list[tuple[torch.Tensor, ...]]:
        """Batched fetch used by DataLoader: per ``chunk`` clips, one vectorised generation and one
        uint8 -> float division for the whole (chunk, T, C, H, W) block, whose views are the items
        (numpy's division of the block was measured faster than torch's or one per clip)."""
        items = []
        for lo in range(0, len(indices), self.chunk):
            clips = self.clips(indices[lo : lo + self.chunk])[:, :, None]
            block = torch.from_numpy(np.divide(clips, np.float32(255.0), dtype=np.float32))
            if self.channels == 3:
                block = block.expand(-1, -1, 3, -1, -1)
            items.extend(split_clip(clip, self.spec, self.with_long) for clip in block)
        return items

    def __getitem__(self, index: int) -> tuple[torch.Tensor, ...]:
        if not -len(self) <= index < len(self):
            raise IndexError(f"index {index} out of range for {len(self)} samples")
        return self.__getitems__([index % len(self)])[0]


# ------------------------------------------------------------------------------ the test file


def load_test_seq(path: Path, spec: ClipSpec) -> np.ndarray:
    """``mnist_test_seq.npy`` (T, N, H, W) uint8 as a (N, T, H, W, 1) view, validated."""
    try:
        arr = np.load(path, mmap_mode="r")
    except (OSError, ValueError) as err:
        raise ValueError(f"{path}: cannot read as .npy ({err})") from None
    if arr.ndim != 4:
        raise ValueError(
            f"{path}: expected shape (T, N, H, W) like (20, 10000, 64, 64), got {arr.shape}"
        )
    if arr.dtype != np.uint8:
        raise ValueError(f"{path}: expected dtype uint8 (0..255), got {arr.dtype}")
    if arr.shape[0] < spec.total:
        raise ValueError(
            f"{path}: sequences have {arr.shape[0]} frames, fewer than short_len + out_len = {spec.total}"
        )
    return arr.transpose(1, 0, 2, 3)[..., None]


def _test_from_path(path: Path, spec, size, channels) -> tuple[ClipDataset, str]:
    npy = path if path.is_file() else path / TEST_NAME
    if npy.is_file():
        arr = load_test_seq(npy, spec)
        windows = index_windows([arr.shape[1]] * arr.shape[0], spec.total, spec.total)
        windows = windows[windows[:, 1] == 0]  # the first short_len + out_len frames of each
        return ArrayWindows(arr, windows, spec, size, channels, with_long=False), str(npy)
    if list_frame_folders(path):
        return frame_folder_windows(
            path, spec, size, channels, train=False
        ), f"frame folders {path}"
    raise ValueError(f"{path}: no {TEST_NAME} and no video_xxxxx/ frame folders")


def _n_train_digits(n_digits: int, train_digits: int | None) -> int:
    """Digits reserved for training clips: MNIST's first 10000 (authors), else 10/13 of the source."""
    n_train = train_digits or (10000 if n_digits >= 13000 else round(n_digits * 10 / 13))
    if not 0 < n_train < n_digits:
        raise ValueError(
            f"train_digits={n_train} must leave digits for validation (source has {n_digits})"
        )
    return n_train


def build(
    train_dir=None,
    valid_dir=None,
    test_dir=None,
    *,
    spec: ClipSpec,
    img_size=64,
    img_channel: int = 1,
    seed: int = 1234,
    num_digits: Sequence[int] = (2,),
    step_length: float = 0.1,
    digit_size: int = 28,
    train_samples: int = 10000,
    valid_samples: int = 3000,
    test_samples: int = 10000,
    train_digits: int | None = None,
    test_seed: int = TEST_SEED,
    resample: bool = True,
) -> Splits:
    """Moving MNIST splits. Digits come from ``train-images-idx3-ubyte[.gz]`` (file or folder) or,
    without one, the built-in scikit-learn digits; the first ``train_digits`` images (default
    10000 of MNIST as the authors, 10/13 of a smaller source) feed the training clips, the rest
    validation and the generated test set. ``train_dir`` may instead be LMC-Memory's frame folders.
    """
    size = parse_img_size(img_size)
    channels = check_channels(img_channel)
    if isinstance(num_digits, int):
        num_digits = [num_digits]
    info: dict = {"dataset": "movingmnist", "value_range": (0.0, 1.0), "canvas": size}
    common = dict(spec=spec, size=size, channels=channels)

    digits, source = None, BUILTIN_SOURCE
    train = valid = None
    if train_dir is not None:
        path = require_path(train_dir, "Moving MNIST train_dir")
        idx = find_idx_file(path)
        if idx is not None:
            digits, source = read_idx_images(idx), f"MNIST digits from {idx}"
        elif path.is_dir() and list_frame_folders(path):
            train = frame_folder_windows(path, train=True, **common)
            source = f"frame folders {path} (LMC-Memory layout)"
        else:
            raise ValueError(
                f"{path}: neither an MNIST train-images-idx3-ubyte[.gz] file nor a folder of "
                "video_xxxxx/frame_xxxxx.png frame folders"
            )
    if train is None:
        if digits is None:
            digits = builtin_digits(digit_size)
        if digits.shape[-1] > min(size):
            raise ValueError(f"img_size {size} is smaller than the {digits.shape[-1]}px digits")
        n_train = _n_train_digits(len(digits), train_digits)
        gen = dict(num_digits=num_digits, step_length=step_length, **common)
        train = GeneratedMovingMNIST(
            digits[:n_train], train_samples, seed, with_long=True, resample=resample, **gen
        )
        held_out = digits[n_train:]
        if valid_dir is None:
            valid = GeneratedMovingMNIST(held_out, valid_samples, seed + 1, with_long=False, **gen)
            info["valid"] = f"{valid_samples} generated clips (seed {seed + 1}, held-out digits)"
        info["digits"] = f"{n_train} train / {len(held_out)} held-out"
    log.info("Moving MNIST: training source is %s", source)
    info["source"] = source

    if valid_dir is not None:
        valid, info["valid"] = _test_from_path(
            require_path(valid_dir, "Moving MNIST valid_dir"), **common
        )
    if test_dir is not None:
        test, info["test"] = _test_from_path(
            require_path(test_dir, "Moving MNIST test_dir"), **common
        )
    else:
        test_digits = builtin_digits(digit_size) if digits is None else digits
        n_train = _n_train_digits(len(test_digits), train_digits)
        test = GeneratedMovingMNIST(
            test_digits[n_train:],
            test_samples,
            test_seed,
            with_long=False,
            num_digits=num_digits,
            step_length=step_length,
            **common,
        )
        info["test"] = f"{test_samples} generated clips (fixed seed {test_seed}, held-out digits)"
    log.info("Moving MNIST: test set is %s", info["test"])
    return Splits(train, valid, test, info)
