"""Writers of tiny datasets in their real on-disk formats, shared by tests/test_data_*.py."""

from __future__ import annotations

import datetime as dt
import gzip
from pathlib import Path

import cv2
import numpy as np


def write_idx(path: Path, images: np.ndarray) -> Path:
    """MNIST idx3 file (gzip when the name ends in .gz)."""
    n, rows, cols = images.shape
    header = b"".join(int(v).to_bytes(4, "big") for v in (2051, n, rows, cols))
    raw = header + images.astype(np.uint8).tobytes()
    path.write_bytes(gzip.compress(raw) if path.suffix == ".gz" else raw)
    return path


def write_frames(
    folder: Path, frames: np.ndarray, pattern: str = "frame_{:05d}.png", start: int = 0
) -> list[Path]:
    """(T, H, W[, 3]) uint8 frames as image files (RGB given, BGR written as cv2 wants)."""
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for i, frame in enumerate(frames):
        path = folder / pattern.format(i + start)
        img = frame if frame.ndim == 2 else cv2.cvtColor(frame, cv2.COLOR_RGB2BGR)
        assert cv2.imwrite(str(path), img)
        paths.append(path)
    return paths


def write_avi(path: Path, frames: np.ndarray, fps: float = 25.0) -> Path:
    """(T, H, W, 3) uint8 RGB frames as an MJPG .avi."""
    return write_video(path, frames, fps)


def write_video(path: Path, frames: np.ndarray, fps: float = 25.0, fourcc: str = "MJPG") -> Path:
    """(T, H, W, 3) uint8 RGB frames as a video of codec ``fourcc`` (``mp4v`` for an .mp4)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    h, w = frames.shape[1:3]
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*fourcc), fps, (w, h))
    assert writer.isOpened()
    for frame in frames:
        writer.write(cv2.cvtColor(frame, cv2.COLOR_RGB2BGR))
    writer.release()
    return path


def ramp_video(t: int, h: int, w: int, channels: int = 3, seed: int = 0) -> np.ndarray:
    """Frames whose mean brightness grows with time (so frame order is checkable), uint8."""
    rng = np.random.default_rng(seed)
    base = np.linspace(20, 220, t)[:, None, None, None]
    noise = rng.integers(0, 10, (t, h, w, channels))
    out = np.clip(base + noise, 0, 255).astype(np.uint8)
    return out[..., 0] if channels == 1 else out


def write_kth(root: Path, person: int, action: str, frames: np.ndarray, d: int = 1, first: int = 1):
    """KTH's action-folder layout: ``root/action/personPP_action_dD_uncomp/image_NNNN.jpg``
    (numbered from ``first``), as the PredRNN / OpenSTL preprocessing leaves it. The folder."""
    folder = Path(root) / action / f"person{person:02d}_{action}_d{d}_uncomp"
    write_frames(folder, frames, "image_{:04d}.jpg", start=first)
    return folder


def write_taxibj_npz(path, n=6, t_in=4, t_out=4, **over):
    """OpenSTL's TaxiBJ dataset.npz: X/Y_train (n, t, 2, 32, 32), X/Y_test (3, ...) in [-1, 1]."""
    rng = np.random.default_rng(0)
    arrays = {
        "X_train": rng.uniform(-1, 1, (n, t_in, 2, 32, 32)).astype(np.float32),
        "Y_train": rng.uniform(-1, 1, (n, t_out, 2, 32, 32)).astype(np.float32),
        "X_test": rng.uniform(-1, 1, (3, t_in, 2, 32, 32)).astype(np.float32),
        "Y_test": rng.uniform(-1, 1, (3, t_out, 2, 32, 32)).astype(np.float32),
    }
    arrays.update(over)
    np.savez(path, **arrays)
    return arrays


def write_human36m(root, nested=False, frames=45, size=20):
    """OpenSTL's Human3.6m layout: images/ of one RGB video, train.txt (2 clips), test.txt (1)."""
    video = ramp_video(frames, size, size, channels=3)
    if nested:
        write_frames(root / "images" / "S1_Walking.54138969", video, "{:06d}.jpg", start=1)
    else:
        write_frames(root / "images", video, "S1_Walking.54138969_{:06d}.jpg", start=1)
    (root / "train.txt").write_text(
        "images/S1_Walking.54138969_,1,36\nimages/S1_Walking.54138969_,2,37\n"
    )
    (root / "test.txt").write_text("images/S1_Walking.54138969_,6,41\n")
    return video


def write_taxibj_flows(path, first_day: dt.date, days: int, grid=4, drop_slot=None) -> None:
    """An original TaxiBJ ``BJ*_M32x32_T30_InOut.h5``: ``days`` days of 48 half-hour slots from
    ``first_day`` (slot ``drop_slot`` = (day, slot) left out), flows (2, grid, grid) numbering the
    slots (day * 48 + slot), and their ``date`` strings (YYYYMMDDSS)."""
    import h5py

    dates, data = [], []
    for d in range(days):
        day = first_day + dt.timedelta(days=d)
        for slot in range(1, 49):
            if drop_slot == (d, slot):
                continue
            dates.append(f"{day:%Y%m%d}{slot:02d}".encode())
            data.append(np.full((2, grid, grid), d * 48 + slot, np.float64))
    with h5py.File(path, "w") as f:
        f["data"] = np.stack(data)
        f["date"] = np.array(dates)
