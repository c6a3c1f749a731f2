"""``swinlstm predict``: forecast the frames that follow a video, a folder of frames or a .npy clip.

    swinlstm predict --checkpoint runs/demo/checkpoints --input clip.avi --out_len 10 --output out/

The last ``--short_len`` frames of the input are resized to the model's frame size and converted
to its channel count exactly as the datasets are (``swinlstm.data.common``), then forecast. Written into ``--output``:
``input_{t:02d}.png`` (the frames the model saw), ``pred_{t:02d}.png``, ``prediction.gif``
(input, then forecast) and ``prediction.npy`` (float32 (out_len, C, H, W) in [0, 1]).
``--stream`` feeds the frames one at a time through the model's ``step`` API (as a live camera
would) instead of one batched ``predict``: the forecast is the same.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

from swinlstm.cli.common import add_model_args, str2bool
from swinlstm.cli.loading import add_checkpoint_arg, load_checkpoint_model

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
        "--stream", type=str2bool, nargs="?", const=True, default=False, help="feed frames via step"
    )
    p.add_argument("--fps", type=float, default=4.0, help="GIF frame rate")
    # model flags: only needed for the authors' checkpoints, which do not record them
    p.add_argument(
        "--img_size", type=int, nargs="+", default=None, help="authors' checkpoints: frame size"
    )
    p.add_argument(
        "--img_channel", type=int, default=None, help="authors' checkpoints: frame channels"
    )
    add_model_args(p)
    p.set_defaults(func=run_predict)


# ----- reading a clip ------------------------------------------------------------------------
def read_npy(path: Path) -> np.ndarray:
    """One clip (T, H, W), (T, H, W, C) or (T, C, H, W), C in 1..4 -> (T, H, W, C), uint8 or
    float32 in [0, 1]."""
    try:
        x = np.load(path, allow_pickle=False)
    except Exception as err:
        raise ValueError(f"{path}: not a readable .npy array ({err})") from None
    if x.ndim == 3:
        x = x[..., None]
    elif x.ndim == 4 and x.shape[1] in (1, 2, 3, 4) and x.shape[-1] not in (1, 3, 4):
        x = np.moveaxis(x, 1, -1)
    if x.ndim != 4 or x.shape[-1] not in (1, 2, 3, 4):
        raise ValueError(
            f"{path}: expected one clip (T, H, W), (T, H, W, C) or (T, C, H, W), got shape "
            f"{x.shape} (for an array of many clips, save the one to forecast)"
        )
    if x.dtype == np.uint8:
        return x
    if not np.issubdtype(x.dtype, np.floating):
        raise ValueError(f"{path}: expected uint8 or float values, got {x.dtype}")
    x = x.astype(np.float32)
    if not np.isfinite(x).all() or x.min() < 0 or x.max() > 1:
        raise ValueError(f"{path}: float clips must hold values in [0, 1]")
    return x


def read_clip(path: str | Path) -> np.ndarray:
    """A video file, a folder of frames (natural order) or a .npy clip as (T, H, W, C), uint8
    (or float32 in [0, 1] from a float .npy). Readers shared with ``swinlstm.data``."""
    from swinlstm.data.common import IMAGE_EXTS, VIDEO_EXTS, list_images, read_frames, read_video

    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"--input not found: {path}")
    if path.is_dir():
        files = list_images(path)
        if not files:
            raise ValueError(f"{path}: holds no image ({', '.join(IMAGE_EXTS)})")
        return read_frames(files, grey=False)
    if path.suffix.lower() == ".npy":
        return read_npy(path)
    if path.suffix.lower() in VIDEO_EXTS:
        return read_video(path)
    raise ValueError(
        f"{path}: unsupported input; give a video ({', '.join(VIDEO_EXTS)}), "
        "a folder of frames or a .npy clip"
    )


def fit_clip(clip: np.ndarray, size: tuple[int, int], channels: int) -> np.ndarray:
    """(T, H, W, C) -> float32 (T, channels, size[0], size[1]) in [0, 1]: the data package's
    resizing (area down, bilinear up) and grey/RGB conversion."""
    from swinlstm.data.common import to_tensor_clip

    return to_tensor_clip(clip, tuple(size), channels).numpy()


# ----- forecasting ---------------------------------------------------------------------------
def forecast(model, frames, out_len: int, stream: bool = False):
    """Forecast ``out_len`` frames after ``frames`` (B, T, C, H, W) -> (B, out_len, C, H, W).

    ``stream=True`` feeds the input frames one by one through ``model.step``, then each
    prediction back, which is what ``predict`` computes in one call.
    """
    import torch

    with torch.inference_mode():
        if not stream:
            return model.predict(frames, out_len)
        context = model.encode_context(frames, None, 2)
        state = model.init_state(frames.shape[0], device=frames.device, dtype=frames.dtype)
        y = None
        for t in range(frames.shape[1]):
            y, state = model.step(frames[:, t], state, context)
        outputs = [y]
        for _ in range(out_len - 1):
            y, state = model.step(y, state, context)
            outputs.append(y)
        return torch.stack(outputs, dim=1)


def run_predict(args: argparse.Namespace) -> int:
    import torch

    from swinlstm import viz

    for flag in ("out_len", "short_len"):
        if getattr(args, flag) is not None and getattr(args, flag) < 1:
            raise ValueError(f"--{flag} must be >= 1, got {getattr(args, flag)}")
    model, info = load_checkpoint_model(args)
    recorded = info.get("data") or {}
    for flag in ("out_len", "short_len"):  # the lengths the run trained with, else 10
        if getattr(args, flag) is None:
            setattr(args, flag, int(recorded.get(flag) or 10))
    clip = read_clip(args.input)
    if clip.shape[0] < args.short_len:
        raise ValueError(
            f"{args.input}: holds {clip.shape[0]} frames, --short_len {args.short_len} needs at least "
            f"{args.short_len}"
        )
    frames = fit_clip(clip[-args.short_len :], tuple(model.img_size), model.in_chans)
    x = torch.from_numpy(frames)[None]
    preds = forecast(model, x, args.out_len, stream=args.stream)[0].clamp(0, 1)

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
