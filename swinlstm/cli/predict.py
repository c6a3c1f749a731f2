"""``swinlstm predict``: forecast the frames that follow a video, a folder of frames or a .npy clip.

    swinlstm predict --checkpoint runs/demo/checkpoints --input clip.avi --out_len 10 --output out/

The input is read, and its last ``--short_len`` frames resized to the model's frame size and
converted to its channel count, by the datasets' own code (``swinlstm.data.common.read_clip`` and
``to_tensor_clip``: 16-bit frames by their range, RGBA to RGB, area averaging down), then
forecast. Written into ``--output``:
``input_{t:02d}.png`` (the frames the model saw), ``pred_{t:02d}.png``, ``prediction.gif``
(input, then forecast) and ``prediction.npy`` (float32 (out_len, C, H, W) in [0, 1]).
``--stream`` takes the forecast frame by frame as the recurrence yields them
(``RecurrentPredictor.forecast``) instead of one batched ``predict``: the forecast is the same.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

from swinlstm.cli.common import add_model_args, str2bool
from swinlstm.cli.loading import add_checkpoint_arg, add_dataset_arg, checkpoint_model
from swinlstm.errors import ConfigError, MissingPathError

HELP = "forecast the next frames of a video file, a folder of frames or a .npy clip"


def add_parser(subparsers) -> None:
    p = subparsers.add_parser("predict", help=HELP, description=HELP)
    add_checkpoint_arg(p)
    p.add_argument("--input", required=True, help="video file, folder of frames or .npy clip")
    p.add_argument("--output", required=True, help="folder for the PNGs, GIF and .npy")
    p.add_argument(
        "--out_len", type=int, default=None, help="frames to forecast (the run's, else 10)"
    )
    p.add_argument(
        "--short_len",
        type=int,
        default=None,
        help="input frames the model sees (the run's, else 10)",
    )
    p.add_argument(
        "--stream",
        type=str2bool,
        nargs="?",
        const=True,
        default=False,
        help="forecast frame by frame",
    )
    p.add_argument("--fps", type=float, default=4.0, help="GIF frame rate")
    # model flags: only needed for the authors' checkpoints, which do not record them
    p.add_argument(
        "--img_size", type=int, nargs="+", default=None, help="authors' checkpoints: frame size"
    )
    p.add_argument(
        "--img_channel", type=int, default=None, help="authors' checkpoints: frame channels"
    )
    add_dataset_arg(p)
    add_model_args(p)
    p.set_defaults(func=run_predict)


def run_predict(args: argparse.Namespace) -> int:
    import torch

    from swinlstm import viz

    for flag in ("out_len", "short_len"):
        if getattr(args, flag) is not None and getattr(args, flag) < 1:
            raise ConfigError(f"--{flag} must be >= 1, got {getattr(args, flag)}")
    from swinlstm.data.common import read_clip, to_tensor_clip

    model, info = checkpoint_model(args)
    recorded = info.get("data") or {}
    for flag in ("out_len", "short_len"):  # the lengths the run trained with, else 10
        if getattr(args, flag) is None:
            setattr(args, flag, int(recorded.get(flag) or 10))
    if not Path(args.input).exists():
        raise MissingPathError(f"--input not found: {args.input}")
    # read and fitted exactly as the datasets do: grey models read grey frames (as FrameWindows)
    clip = read_clip(args.input, grey=model.in_chans == 1)
    if clip.shape[0] < args.short_len:
        raise ConfigError(
            f"{args.input}: holds {clip.shape[0]} frames, --short_len {args.short_len} needs at least "
            f"{args.short_len}"
        )
    frames = to_tensor_clip(clip[-args.short_len :], tuple(model.img_size), model.in_chans).numpy()
    x = torch.from_numpy(frames)[None]
    with torch.inference_mode():
        if args.stream:  # each frame as soon as it is computed, the same recurrence as predict
            preds = torch.stack(list(model.forecast(x, args.out_len)), dim=1)
        else:
            preds = model.predict(x, args.out_len)
    preds = preds[0].clamp(0, 1)

    out = Path(args.output)
    viz.save_frames(out, "input", frames)
    viz.save_frames(out, "pred", preds)
    both = np.concatenate([frames, preds.numpy()])
    gif = viz.write_gif(
        out / "prediction.gif", viz.with_time_bar(viz.to_rgb_uint8(both), len(frames)), args.fps
    )
    np.save(out / "prediction.npy", preds.numpy().astype(np.float32))
    mode = "streamed through step" if args.stream else "batched"
    print(
        f"{info['model']}: {args.short_len} input frames -> {args.out_len} predicted ({mode}); "
        f"wrote {out}/pred_*.png, {gif.name}, prediction.npy"
    )
    return 0
