"""``swinlstm predict``: forecast the frames that follow a video, a folder of frames or a .npy clip.

    swinlstm predict --checkpoint runs/demo/checkpoints --input clip.avi --out_len 10 --output out/

What is read and written: :mod:`swinlstm.engine.predict`.
"""

from __future__ import annotations

import argparse

from swinlstm.cli.common import add_model_args
from swinlstm.cli.loading import add_authors_checkpoint_args, add_checkpoint_arg, checkpoint_model
from swinlstm.engine.config import str2bool

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
    add_authors_checkpoint_args(p)
    add_model_args(p)
    p.set_defaults(func=run_predict)


def run_predict(args: argparse.Namespace) -> int:
    from swinlstm.engine.predict import predict_file

    r = predict_file(
        lambda: checkpoint_model(args),
        args.input,
        args.output,
        short_len=args.short_len,
        out_len=args.out_len,
        stream=args.stream,
        fps=args.fps,
    )
    mode = "streamed through step" if args.stream else "batched"
    print(
        f"{r.model}: {r.short_len} input frames -> {r.out_len} predicted ({mode}); "
        f"wrote {r.output}/pred_*.png, {r.gif.name}, prediction.npy"
    )
    return 0
