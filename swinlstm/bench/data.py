"""``swinlstm bench data``: samples/s of every dataset loader (0 and 2 workers) on small data it writes
to a temporary folder, the Moving MNIST generator against a per-sample loop written like the
authors' (the baseline, below), and clips/s of resizing real-size clips to the model."""

from __future__ import annotations

import argparse
import functools
import random
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import DataLoader

# ------------------------------------------------------------------ baseline: the authors' way


def authors_track(
    x: float, y: float, theta: float, frames: int, step: float = 0.1
) -> tuple[np.ndarray, np.ndarray]:
    """Positions y, x in [0, 1] of one digit from its draws, with a Python loop per frame and
    numpy scalars, as in the SwinLSTM repository (also the tests' reference for the generator)."""
    vy, vx = np.sin(theta), np.cos(theta)
    ys, xs = np.zeros(frames), np.zeros(frames)
    for i in range(frames):
        y += vy * step
        x += vx * step
        if x <= 0.0:
            x, vx = 0.0, -vx
        if x >= 1.0:
            x, vx = 1.0, -vx
        if y <= 0.0:
            y, vy = 0.0, -vy
        if y >= 1.0:
            y, vy = 1.0, -vy
        ys[i], xs[i] = y, x
    return ys, xs


def _baseline_trajectory(
    frames: int, free: int, step: float = 0.1
) -> tuple[np.ndarray, np.ndarray]:
    """One digit's pixel path from fresh draws, as the authors' ``_get_random_trajectory``."""
    x, y, theta = random.random(), random.random(), random.random() * 2 * np.pi
    ys, xs = authors_track(x, y, theta, frames, step)
    return (free * ys).astype(np.int32), (free * xs).astype(np.int32)


def baseline_clip(digits: np.ndarray, total: int = 20, canvas: int = 64) -> np.ndarray:
    """One clip (total, canvas, canvas, 1) float32 built per digit and per frame in Python, the
    authors' way (float32 canvas, a slice-max per digit and frame)."""
    size = digits.shape[-1]
    data = np.zeros((total, canvas, canvas), dtype=np.float32)
    for _ in range(random.choice([2])):
        tops, lefts = _baseline_trajectory(total, canvas - size)
        digit = digits[np.random.randint(0, len(digits))]
        for t in range(total):
            top, left = tops[t], lefts[t]
            data[t, top : top + size, left : left + size] = np.maximum(
                data[t, top : top + size, left : left + size], digit
            )
    return data[..., np.newaxis]


def baseline_item(digits: np.ndarray, short_len: int = 10, out_len: int = 10):
    """(inputs, targets) as the authors' __getitem__: permute + contiguous + / 255 on each half."""
    data = baseline_clip(digits, short_len + out_len)
    inputs = torch.from_numpy(data[:short_len]).permute(0, 3, 1, 2).contiguous()
    targets = torch.from_numpy(data[short_len:]).permute(0, 3, 1, 2).contiguous()
    return inputs / 255.0, targets / 255.0


class BaselineMovingMNIST(torch.utils.data.Dataset):
    """The baseline as a map-style dataset (one sample per __getitem__), for the DataLoader row."""

    def __init__(self, digits: np.ndarray, samples: int):
        self.digits, self.samples = digits, samples

    def __len__(self) -> int:
        return self.samples

    def __getitem__(self, index: int):
        return baseline_item(self.digits)


def best_rate(fn, items_per_call: int, calls: int, rounds: int) -> float:
    """Items per CPU-second of this process (``time.process_time``, so time the shared machine
    gives to other jobs is not counted), fastest of ``rounds`` timings. Only for single-threaded
    work in this process (torch is set to one thread)."""
    best = float("inf")
    for _ in range(rounds):
        keep = []  # results stay alive as a DataLoader batch would keep them
        start = time.process_time()
        for _ in range(calls):
            keep.append(fn())
        best = min(best, time.process_time() - start)
    return items_per_call * calls / max(best, 1e-9)


def timed_rates(timed: dict, rounds: int) -> dict[str, float]:
    """``{name: items per CPU-second}`` of ``timed`` (name -> (fn, items per call, calls)):
    one untimed call of each first (the generator compiles on its first call), then
    ``rounds`` interleaved rounds, best kept (the machine is shared)."""
    for fn, _, _ in timed.values():
        fn()
    rates = {k: 0.0 for k in timed}
    for _ in range(rounds):
        for key, (fn, per_call, n_calls) in timed.items():
            rates[key] = max(rates[key], best_rate(fn, per_call, n_calls, 1))
    return rates


# ------------------------------------------------------------------------------ small data


def _write_small_data(root: Path) -> dict[str, dict]:
    """Small files of every format; returns build_datasets kwargs per dataset."""
    import cv2

    rng = np.random.default_rng(0)

    def frames(t, h, w, c=1):
        return rng.integers(0, 255, (t, h, w) if c == 1 else (t, h, w, c), dtype=np.uint8)

    def save(folder, clip, pattern):
        folder.mkdir(parents=True, exist_ok=True)
        for i, f in enumerate(clip, start=1):
            cv2.imwrite(str(folder / pattern.format(i)), f)

    for person in (1, 2, 17):
        for action in ("boxing", "running"):
            save(
                root / "kth" / action / f"person{person:02d}_{action}_d1_uncomp",
                frames(60, 120, 160),
                "image_{:04d}.jpg",
            )
    for cam in ("54138969", "55011271"):
        save(root / "h36m" / "images", frames(80, 256, 256, 3), f"S1_Walking.{cam}_{{:06d}}.jpg")
    lines = [
        f"images/S1_Walking.{cam}_,{b}" for cam in ("54138969", "55011271") for b in range(1, 40, 2)
    ]
    (root / "h36m" / "train.txt").write_text("\n".join(lines))
    (root / "h36m" / "test.txt").write_text("\n".join(lines[:8]))
    taxi = {
        k: rng.uniform(-1, 1, (256, 4, 2, 32, 32)).astype(np.float32)
        for k in ("X_train", "Y_train", "X_test", "Y_test")
    }
    np.savez(root / "taxibj.npz", **taxi)
    np.save(root / "custom.npy", frames(32, 40, 64, 64))
    return {
        "movingmnist": dict(train_samples=10000),
        "kth": dict(train_dir=root / "kth", img_size=128, short_len=10, out_len=10),
        "taxibj": dict(
            train_dir=root / "taxibj.npz", img_size=32, img_channel=2, short_len=4, out_len=4
        ),
        "human36m": dict(
            train_dir=root / "h36m", img_size=128, img_channel=3, short_len=4, out_len=4
        ),
        "custom": dict(train_dir=root / "custom.npy", img_size=64),
    }


def _loader_rate(dataset, workers: int, batch: int, samples: int) -> float:
    """samples/s of iterating ``samples`` items (first batch, i.e. worker start-up, not counted)."""
    loader = DataLoader(
        dataset, batch_size=batch, shuffle=True, num_workers=workers, drop_last=True
    )
    n, start = 0, None
    for _ in loader:
        if start is None:
            start = time.perf_counter()
            continue
        n += batch
        if n >= samples:
            break
    return n / (time.perf_counter() - start)


#: (label, (T, H, W, C) of one clip, model frame size): the sizes users feed the loaders
RESIZE_CASES = (
    ("1280x720 RGB video", (20, 720, 1280, 3), (64, 64)),
    ("Human3.6m 256 RGB", (8, 256, 256, 3), (128, 128)),
    ("Human3.6m 1000 RGB", (8, 1000, 1000, 3), (128, 128)),
    ("KTH 160x120 grey", (20, 120, 160, 1), (128, 128)),
)


def resize_rows(rounds: int = 3, seconds: float = 0.25) -> list[tuple[str, str, str, float]]:
    """(label, clip, size, clips per CPU-second) of ``to_tensor_clip`` (resize + conversion to
    [0, 1] floats, what each loader and predict do per clip) on random uint8 clips, cv2 on one
    thread, best of ``rounds`` timings of about ``seconds`` each."""
    import cv2

    from swinlstm.data.common import to_tensor_clip

    threads = cv2.getNumThreads()
    cv2.setNumThreads(1)
    rows = []
    try:
        for label, shape, size in RESIZE_CASES:
            clip = np.random.default_rng(0).integers(0, 256, shape, dtype=np.uint8)
            start = time.process_time()
            to_tensor_clip(clip, size, shape[-1])  # warm-up, and how many calls fill `seconds`
            calls = max(1, int(seconds / max(time.process_time() - start, 1e-6)))
            one = functools.partial(to_tensor_clip, clip, size, shape[-1])
            rate = best_rate(one, 1, calls, rounds)
            dims = f"{shape[0]} x {shape[1]}x{shape[2]}x{shape[3]}"
            rows.append((label, dims, f"{size[0]}x{size[1]}", rate))
    finally:
        cv2.setNumThreads(threads)
    return rows


def print_resize_rows(rounds: int) -> None:
    print(f"Resizing real-size uint8 clips; 1 thread; CPU time, best of {rounds} rounds")
    print(f"| {'clip':<20} | {'T x HxWxC':<20} | {'to':<7} | {'clips/s':>8} | {'frames/s':>8} |")
    print(f"|{'-' * 22}|{'-' * 22}|{'-' * 9}|{'-' * 10}|{'-' * 10}|")
    for label, dims, size, rate in resize_rows(rounds):
        frames = rate * int(dims.split(" x ")[0])
        print(f"| {label:<20} | {dims:<20} | {size:<7} | {rate:>8.1f} | {frames:>8.0f} |")
    print("to_tensor_clip: area averaging down / bilinear up, then float32 in [0, 1].\n")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="swinlstm bench data", description=__doc__)
    parser.add_argument("--samples", type=int, default=512, help="samples timed per loader")
    parser.add_argument("--batch", type=int, default=16)
    parser.add_argument("--workers", type=int, nargs="+", default=[0, 2])
    parser.add_argument("--baseline-samples", type=int, default=48, help="samples per timing round")
    parser.add_argument("--rounds", type=int, default=30, help="timing rounds (best kept)")
    parser.add_argument(
        "--only",
        choices=("mnist", "resize", "loaders"),
        nargs="+",
        default=("mnist", "resize", "loaders"),
        help="tables to print (default: all)",
    )
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    if "mnist" in args.only:
        print_mnist_rows(args)
    if "resize" in args.only:
        print_resize_rows(rounds=3)
    if "loaders" in args.only:
        print_loader_rows(args)
    return 0


def print_mnist_rows(args: argparse.Namespace) -> None:
    from swinlstm.data.common import ClipSpec
    from swinlstm.data.moving_mnist import GeneratedMovingMNIST, builtin_digits

    digits = builtin_digits().train.copy()
    # as for training: a fresh seed per call; clips, items and batches all come from the dataset
    ours = GeneratedMovingMNIST(
        digits, 10000, 0, ClipSpec(10, 10), (64, 64), 1, with_long=False, resample=True
    )
    batch = list(range(args.batch))
    random.seed(0)
    np.random.seed(0)
    calls = args.baseline_samples // args.batch + 1
    timed = {  # name -> (function, samples per call, calls per round)
        "clip_base": (lambda: baseline_clip(digits), 1, args.baseline_samples),
        "clip_ours": (lambda: ours.clips(batch), args.batch, calls),
        "item_base": (lambda: baseline_item(digits), 1, args.baseline_samples),
        "item_ours": (lambda: ours.__getitems__(batch), args.batch, calls),
    }
    rates = timed_rates(timed, args.rounds)
    loader_base = max(
        _loader_rate(BaselineMovingMNIST(digits, 10000), 0, args.batch, args.samples)
        for _ in range(3)
    )
    loader_ours = max(_loader_rate(ours, 0, args.batch, args.samples) for _ in range(3))
    print(
        f"Moving MNIST, 10 -> 10 frames, 64x64, 2 digits; 1 process, 1 thread; CPU time, best of {args.rounds} rounds"
    )
    head = ("what", "baseline: authors-style loop", f"vectorised, batch {args.batch}", "speed-up")
    print(f"| {head[0]:<10} | {head[1]:>28} | {head[2]:>28} | {head[3]:>8} |")
    print(f"|{'-' * 12}|{'-' * 30}|{'-' * 30}|{'-' * 10}|")
    for label, base, fast in (
        ("clips", rates["clip_base"], rates["clip_ours"]),
        ("items", rates["item_base"], rates["item_ours"]),
        ("DataLoader", loader_base, loader_ours),
    ):
        print(
            f"| {label:<10} | {base:>18.0f} samples/s | {fast:>18.0f} samples/s | {fast / base:>7.1f}x |"
        )
    print("clips: the generator's output (baseline float32 canvas, ours uint8); items: float32")
    print("(inputs, targets) tensors in [0, 1]; DataLoader: batches of items, 0 workers.\n")


def print_loader_rows(args: argparse.Namespace) -> None:
    from swinlstm.data import build_datasets

    print(f"Loaders: samples/s over {args.samples} samples, batch {args.batch}")
    print(
        f"| {'dataset':<12} | {'frames':<18} | "
        + " | ".join(f"{w} workers" for w in args.workers)
        + " |"
    )
    print(f"|{'-' * 14}|{'-' * 20}|" + "|".join("-" * 11 for _ in args.workers) + "|")
    with tempfile.TemporaryDirectory() as tmp:
        configs = _write_small_data(Path(tmp))
        for name, kwargs in configs.items():
            train = build_datasets(name, **kwargs).train
            x = train[0][0]
            shape = f"{x.shape[0]}+..x{x.shape[1]}x{x.shape[2]}x{x.shape[3]}"
            rates = [_loader_rate(train, w, args.batch, args.samples) for w in args.workers]
            print(f"| {name:<12} | {shape:<18} | " + " | ".join(f"{r:>9.0f}" for r in rates) + " |")


if __name__ == "__main__":
    raise SystemExit(main())
