"""Pictures of clips: frames to PNG, input | ground truth | prediction GIFs, comparison grids.

Everything here takes float frames in [0, 1] shaped ``(T, C, H, W)`` (one clip) or
``(C, H, W)`` (one frame), as the rest of the package does, and converts to uint8 only when
writing. Frames with 1 channel are grey, 3 channels RGB; any other channel count (TaxiBJ's
inflow/outflow) is shown as its channels side by side in grey.

The per-frame metric plot lives with the metrics (``swinlstm.metrics``), not here.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch

from swinlstm.errors import ConfigError

# GIF layout
SEPARATOR = 2  # pixels of white between panels / between clips in a grid
BAR_HEIGHT = 3  # time bar under a GIF frame
INPUT_COLOUR = (60, 180, 75)  # time bar while the input is shown
FORECAST_COLOUR = (230, 25, 75)  # time bar while the forecast is shown


def _numpy(frames: torch.Tensor | np.ndarray) -> np.ndarray:
    if isinstance(frames, torch.Tensor):
        frames = frames.detach().float().cpu().numpy()
    return np.asarray(frames, dtype=np.float32)


def to_uint8(frames: torch.Tensor | np.ndarray) -> np.ndarray:
    """Float frames in [0, 1] (..., C, H, W) -> uint8 (..., H, W, 3) or (..., H, W) for grey.

    Values are clipped to [0, 1] and rounded. Channel counts other than 1 and 3 are laid out
    side by side as grey: (..., C, H, W) -> (..., H, C * W).
    """
    x = _numpy(frames)
    if x.ndim < 3:
        raise ConfigError(f"frames must be (..., C, H, W), got shape {x.shape}")
    if not np.isfinite(x).all():
        raise ConfigError("frames hold NaN or inf values: cannot draw them")
    x = np.rint(np.clip(x, 0.0, 1.0) * 255.0).astype(np.uint8)
    c = x.shape[-3]
    if c == 1:
        return x[..., 0, :, :]
    if c == 3:
        return np.moveaxis(x, -3, -1)
    return np.concatenate([x[..., i, :, :] for i in range(c)], axis=-1)


def to_rgb_uint8(frames: torch.Tensor | np.ndarray) -> np.ndarray:
    """Float frames (..., C, H, W) in [0, 1] -> uint8 RGB (..., H, W', 3) (grey repeated)."""
    image = to_uint8(frames)
    if frames.shape[-3] == 3:
        return image
    return np.repeat(image[..., None], 3, axis=-1)


def save_png(path: str | os.PathLike, frame: torch.Tensor | np.ndarray) -> Path:
    """Write one float frame (C, H, W) in [0, 1] as an 8-bit PNG (grey or RGB)."""
    import imageio.v3 as iio

    image = to_uint8(frame)
    if image.ndim not in (2, 3):
        raise ConfigError(f"save_png takes one frame (C, H, W), got shape {tuple(frame.shape)}")
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    iio.imwrite(path, image, extension=".png")
    return path


def save_frames(
    directory: str | os.PathLike, prefix: str, frames: torch.Tensor | np.ndarray
) -> list[Path]:
    """Write a clip (T, C, H, W) as ``directory/{prefix}_{t:02d}.png``, t = 0 .. T-1."""
    return [save_png(Path(directory) / f"{prefix}_{t:02d}.png", f) for t, f in enumerate(frames)]


def _panel_row(panels: Sequence[np.ndarray]) -> np.ndarray:
    """RGB panels (H, W_i, 3) side by side with white separators."""
    h = panels[0].shape[0]
    sep = np.full((h, SEPARATOR, 3), 255, np.uint8)
    row: list[np.ndarray] = []
    for i, p in enumerate(panels):
        if i:
            row.append(sep)
        row.append(p)
    return np.concatenate(row, axis=1)


def strip_frames(
    inputs: torch.Tensor | np.ndarray,
    targets: torch.Tensor | np.ndarray,
    *preds: torch.Tensor | np.ndarray,
) -> np.ndarray:
    """The frames of an input | ground truth | prediction(s) animation, uint8 (T_in + T_out, H', W', 3).

    Frame k < T_in shows input k in the first panel (the others are black: nothing is forecast
    yet); frame T_in + j shows the last input frame, ground truth j and each prediction's frame j,
    one panel per prediction given. A bar under the panels grows with time (green over the input,
    red over the forecast), which also keeps every GIF frame distinct so that no GIF writer
    merges them.
    """
    inp, gt = to_rgb_uint8(inputs), to_rgb_uint8(targets)
    prs = [to_rgb_uint8(p) for p in preds]
    if (
        not prs
        or inp.ndim != 4
        or gt.shape[1:] != inp.shape[1:]
        or any(p.shape != gt.shape for p in prs)
    ):
        raise ConfigError(
            f"inputs, targets and predictions must be clips of equal frame size with as many "
            f"targets as predictions; got {tuple(inp.shape)}, {tuple(gt.shape)}, "
            f"{[tuple(p.shape) for p in prs]}"
        )
    t_in, t_out = inp.shape[0], gt.shape[0]
    black = [np.zeros_like(inp[0])] * (1 + len(prs))
    rows = [_panel_row([inp[k], *black]) for k in range(t_in)]
    rows += [_panel_row([inp[-1], gt[j], *(p[j] for p in prs)]) for j in range(t_out)]
    return with_time_bar(np.stack(rows), t_in)


def with_time_bar(frames: np.ndarray, t_in: int) -> np.ndarray:
    """Add a bar under each uint8 RGB frame (N, H, W, 3) that grows with time.

    Green while ``k < t_in`` (input), red after (forecast). Consecutive frames always differ, so
    GIF writers never merge two of them into one.
    """
    n, _, w, _ = frames.shape
    bar = np.zeros((n, BAR_HEIGHT, w, 3), np.uint8)
    for k in range(n):
        length = max(1, int(round((k + 1) * w / n)))
        bar[k, :, :length] = INPUT_COLOUR if k < t_in else FORECAST_COLOUR
    return np.concatenate([frames, bar], axis=1)


def write_gif(path: str | os.PathLike, frames: np.ndarray, fps: float = 4.0) -> Path:
    """Write uint8 frames (N, H, W, 3) as a looping GIF."""
    import imageio.v3 as iio

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    iio.imwrite(path, frames, extension=".gif", duration=1000.0 / fps, loop=0)
    return path


def save_strip_gif(
    path: str | os.PathLike,
    inputs: torch.Tensor | np.ndarray,
    targets: torch.Tensor | np.ndarray,
    *preds: torch.Tensor | np.ndarray,
    fps: float = 4.0,
) -> Path:
    """GIF of :func:`strip_frames`: input | ground truth | prediction(s) over T_in + T_out frames."""
    return write_gif(path, strip_frames(inputs, targets, *preds), fps=fps)


def error_map(targets: torch.Tensor | np.ndarray, preds: torch.Tensor | np.ndarray) -> np.ndarray:
    """|target - prediction| averaged over channels, coloured (``inferno``): (T, H, W, 3) uint8.

    The colour scale is fixed (0 black .. 1 yellow) so that maps of different clips compare.
    """
    import matplotlib

    err = np.abs(_numpy(targets) - np.clip(_numpy(preds), 0.0, 1.0)).mean(axis=-3)
    rgba = matplotlib.colormaps["inferno"](np.clip(err, 0.0, 1.0))
    return np.rint(rgba[..., :3] * 255).astype(np.uint8)


def comparison_grid(
    targets: Sequence[torch.Tensor | np.ndarray], *forecasts: Sequence[torch.Tensor | np.ndarray]
) -> np.ndarray:
    """One uint8 RGB image: for each clip, a ground-truth row, then for each forecast its
    prediction and its abs error rows; columns are time.

    ``targets`` and each of ``forecasts`` are sequences of clips (T, C, H, W), one per clip (e.g.
    ``comparison_grid(truth, model_a, model_b)``); clips are stacked vertically with a white gap.
    """
    if len(targets) == 0 or not forecasts or any(len(f) != len(targets) for f in forecasts):
        raise ConfigError(
            f"need as many predicted as true clips (>= 1), got {len(targets)} and "
            f"{[len(f) for f in forecasts]}"
        )
    blocks = []
    for i, gt in enumerate(targets):
        truth = to_rgb_uint8(gt)
        rows = [truth]
        for forecast in forecasts:
            pred = to_rgb_uint8(forecast[i])
            if truth.shape != pred.shape:
                raise ConfigError(
                    f"a true clip {tuple(gt.shape)} and its prediction {tuple(forecast[i].shape)} "
                    "differ in shape"
                )
            err = error_map(gt, forecast[i])
            if err.shape[2] != truth.shape[2]:  # channels side by side: repeat the mean error
                err = np.tile(err, (1, 1, truth.shape[2] // err.shape[2], 1))
            rows += [pred, err]
        blocks.append(_stack([_panel_row(list(r)) for r in rows], SEPARATOR))
    return _stack(blocks, 2 * SEPARATOR)


def _stack(images: list[np.ndarray], gap: int) -> np.ndarray:
    """RGB images stacked vertically, padded to one width, with ``gap`` white rows between."""
    width = max(im.shape[1] for im in images)
    out: list[np.ndarray] = []
    for i, im in enumerate(images):
        if i:
            out.append(np.full((gap, width, 3), 255, np.uint8))
        out.append(np.pad(im, ((0, 0), (0, width - im.shape[1]), (0, 0)), constant_values=255))
    return np.concatenate(out, axis=0)


def save_comparison(
    path: str | os.PathLike,
    targets: Sequence[torch.Tensor | np.ndarray],
    *forecasts: Sequence[torch.Tensor | np.ndarray],
) -> Path:
    """Write :func:`comparison_grid` as a PNG."""
    import imageio.v3 as iio

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    iio.imwrite(path, comparison_grid(targets, *forecasts), extension=".png")
    return path
