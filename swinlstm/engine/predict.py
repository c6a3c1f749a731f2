"""Forecast the frames that follow a video, a folder of frames or a .npy clip, and write them.

The input is read, and its last ``short_len`` frames resized to the model's frame size and
converted to its channel count, by the datasets' own code (``swinlstm.data.common.read_clip`` and
``to_tensor_clip``: 16-bit frames by their range, RGBA to RGB, area averaging down), then
forecast. Written into the output folder: ``input_{t:02d}.png`` (the frames the model saw),
``pred_{t:02d}.png``, ``prediction.gif`` (input, then forecast) and ``prediction.npy`` (float32
(out_len, C, H, W) in [0, 1]). ``stream`` takes the forecast frame by frame as the recurrence
yields them (``RecurrentPredictor.forecast``) instead of one batched ``predict``: the forecast is
the same.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from torch import nn

from swinlstm.errors import ConfigError, MissingPathError


@dataclass
class Prediction:
    """What :func:`predict_file` wrote: the model's name, the lengths used, the files."""

    model: str
    short_len: int
    out_len: int
    output: Path
    gif: Path


def predict_file(
    load: Callable[[], tuple[nn.Module, dict[str, Any]]],
    input: str,
    output: str | Path,
    short_len: int | None = None,
    out_len: int | None = None,
    stream: bool = False,
    fps: float = 4.0,
) -> Prediction:
    """``load()`` a model (``(model, info)`` as ``load_checkpoint_model`` returns), forecast
    ``out_len`` frames after the last ``short_len`` of ``input`` (None: the lengths its run
    trained with, else 10) and write them into ``output``. A bad length or input is a
    ConfigError (MissingPathError for a missing input) naming its flag."""
    import torch

    from swinlstm import viz
    from swinlstm.data.common import read_clip, to_tensor_clip

    for flag, value in (("out_len", out_len), ("short_len", short_len)):
        if value is not None and value < 1:
            raise ConfigError(f"--{flag} must be >= 1, got {value}")
    model, info = load()
    recorded = info.get("data") or {}
    out_len = out_len if out_len is not None else int(recorded.get("out_len") or 10)
    short_len = short_len if short_len is not None else int(recorded.get("short_len") or 10)
    if not Path(input).exists():
        raise MissingPathError(f"--input not found: {input}")
    # read and fitted exactly as the datasets do: grey models read grey frames (as FrameWindows)
    clip = read_clip(input, grey=model.in_chans == 1)
    if clip.shape[0] < short_len:
        raise ConfigError(
            f"{input}: holds {clip.shape[0]} frames, --short_len {short_len} needs at least "
            f"{short_len}"
        )
    frames = to_tensor_clip(clip[-short_len:], tuple(model.img_size), model.in_chans).numpy()
    x = torch.from_numpy(frames)[None]  # (1, short_len, C, H, W)
    with torch.inference_mode():
        if stream:  # each frame as soon as it is computed, the same recurrence as predict
            preds = torch.stack(list(model.forecast(x, out_len)), dim=1)
        else:
            preds = model.predict(x, out_len)
    preds = preds[0].clamp(0, 1)  # (out_len, C, H, W)

    out = Path(output)
    viz.save_frames(out, "input", frames)
    viz.save_frames(out, "pred", preds)
    both = np.concatenate([frames, preds.numpy()])
    gif = viz.write_gif(
        out / "prediction.gif", viz.with_time_bar(viz.to_rgb_uint8(both), len(frames)), fps
    )
    np.save(out / "prediction.npy", preds.numpy().astype(np.float32))
    return Prediction(info["model"], short_len, out_len, out, gif)
