"""``swinlstm export``: the forecast of a checkpoint as an ONNX graph, for fixed lengths.

    swinlstm export --checkpoint runs/demo/checkpoints --onnx demo.onnx --short_len 10 --out_len 10

The graph maps ``frames`` (batch, short_len, C, H, W) to ``forecast`` (batch, out_len, C, H, W):
the recurrence is unrolled for the given lengths (ONNX has no cheaper way to express a loop
whose body is a Swin block). The batch axis is dynamic. The TorchScript-based exporter is used
(``dynamo=False``): the dynamo exporter needs the ``onnxscript`` package, which is not a
dependency. After writing, the graph is run with onnxruntime (when installed) on a random clip
and compared with PyTorch; the maximum absolute difference is printed and must stay within
``--tolerance``.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from swinlstm.cli.common import add_model_args
from swinlstm.cli.loading import add_authors_checkpoint_args, add_checkpoint_arg, checkpoint_model
from swinlstm.errors import ConfigError

HELP = "export a checkpoint's forecast (fixed lengths) to ONNX and check it with onnxruntime"


def add_parser(subparsers) -> None:
    p = subparsers.add_parser("export", help=HELP, description=HELP)
    add_checkpoint_arg(p)
    p.add_argument("--onnx", required=True, help="output .onnx file")
    p.add_argument("--short_len", type=int, default=10, help="input frames of the graph")
    p.add_argument("--out_len", type=int, default=10, help="forecast frames of the graph")
    p.add_argument("--opset", type=int, default=17, help="ONNX opset version")
    p.add_argument(
        "--tolerance", type=float, default=1e-4, help="max abs difference onnxruntime vs torch"
    )
    add_authors_checkpoint_args(p)
    add_model_args(p)
    p.set_defaults(func=run_export)


def run_export(args: argparse.Namespace) -> int:
    if args.short_len < 1 or args.out_len < 1:
        raise ConfigError("--short_len and --out_len must be >= 1")
    if Path(args.onnx).suffix.lower() != ".onnx":
        raise ConfigError(f"--onnx must name a .onnx file, got {args.onnx}")
    from swinlstm.engine.export import check_onnx, export_onnx, refuse_if_differs

    model, info = checkpoint_model(args)
    path = export_onnx(model, args.onnx, args.short_len, args.out_len, opset=args.opset)
    print(
        f"wrote {path}: {info['model']} frames (batch, {args.short_len}, {model.in_chans}, "
        f"{model.img_size[0]}, {model.img_size[1]}) -> forecast (batch, {args.out_len}, ...)"
    )
    err = check_onnx(model, path, args.short_len, args.out_len)
    if err is None:
        print("onnxruntime is not installed: parity not checked (pip install onnxruntime)")
        return 0
    print(f"onnxruntime vs PyTorch: max abs difference {err:.2e} (tolerance {args.tolerance:g})")
    refuse_if_differs(path, err, args.tolerance)
    return 0
