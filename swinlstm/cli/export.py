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
import contextlib
import os
import re
import sys
import tempfile
import warnings
from pathlib import Path

import torch
from torch import nn

from swinlstm.cli.common import add_model_args
from swinlstm.cli.loading import add_checkpoint_arg, add_dataset_arg, load_checkpoint_model
from swinlstm.errors import ConfigError

HELP = "export a checkpoint's forecast (fixed lengths) to ONNX and check it with onnxruntime"


class Forecaster(nn.Module):
    """``frames (B, short_len, C, H, W) -> forecast (B, out_len, C, H, W)`` for one out_len."""

    def __init__(self, model: nn.Module, out_len: int):
        super().__init__()
        self.model = model
        self.out_len = out_len

    def forward(self, frames: torch.Tensor) -> torch.Tensor:
        return self.model.predict(frames, self.out_len)


def export_onnx(
    model: nn.Module,
    path: str | Path,
    short_len: int,
    out_len: int,
    batch_size: int = 1,
    opset: int = 17,
) -> Path:
    """Write the forecast graph of ``model`` to ``path`` (ONNX); returns the path."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    wrapper = Forecaster(model.eval(), out_len).eval()
    h, w = model.img_size
    example = torch.rand(batch_size, short_len, model.in_chans, h, w)
    with warnings.catch_warnings(), torch.no_grad(), _graph_dump_dropped():
        warnings.simplefilter("ignore")  # the TorchScript exporter's deprecation and tracer notes
        try:
            torch.onnx.export(
                wrapper,
                (example,),
                str(path),
                dynamo=False,
                input_names=["frames"],
                output_names=["forecast"],
                dynamic_axes={"frames": {0: "batch"}, "forecast": {0: "batch"}},
                opset_version=opset,
                do_constant_folding=True,
            )
        except torch.onnx.errors.UnsupportedOperatorError as err:
            needed = re.search(r"added in version (\d+)", str(err))
            if needed is None:
                raise  # an operator no opset has: our bug
            op = re.search(r"operator '([^']+)'", str(err))
            raise ConfigError(
                f"--opset {opset} is too old for this model: {op.group(1) if op else 'an operator'}"
                f" needs opset >= {needed.group(1)} (pass --opset {needed.group(1)} or more)"
            ) from None
    return path


@contextlib.contextmanager
def _graph_dump_dropped():
    """Send what is written to file descriptor 1 meanwhile to a temporary file, then drop it:
    the TorchScript exporter prints its whole graph (hundreds of KB) to C++ stdout on failure."""
    sys.stdout.flush()
    saved = os.dup(1)
    with tempfile.TemporaryFile() as sink:
        os.dup2(sink.fileno(), 1)
        try:
            yield
        finally:
            sys.stdout.flush()
            os.dup2(saved, 1)
            os.close(saved)


def onnx_parity(
    model: nn.Module, path: str | Path, short_len: int, out_len: int, batch_size: int = 2
) -> float:
    """Max abs difference between onnxruntime and PyTorch on a random clip (seeded)."""
    import onnxruntime as ort

    h, w = model.img_size
    gen = torch.Generator().manual_seed(0)
    x = torch.rand(batch_size, short_len, model.in_chans, h, w, generator=gen)
    with torch.no_grad():
        ref = model.predict(x, out_len).numpy()
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    got = session.run(["forecast"], {"frames": x.numpy()})[0]
    if got.shape != ref.shape:
        raise ConfigError(f"ONNX output shape {got.shape} differs from PyTorch's {ref.shape}")
    return float(abs(got - ref).max())


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
    p.add_argument(
        "--img_size", type=int, nargs="+", default=None, help="authors' checkpoints: frame size"
    )
    p.add_argument(
        "--img_channel", type=int, default=None, help="authors' checkpoints: frame channels"
    )
    add_dataset_arg(p)
    add_model_args(p)
    p.set_defaults(func=run_export)


def run_export(args: argparse.Namespace) -> int:
    if args.short_len < 1 or args.out_len < 1:
        raise ConfigError("--short_len and --out_len must be >= 1")
    if Path(args.onnx).suffix.lower() != ".onnx":
        raise ConfigError(f"--onnx must name a .onnx file, got {args.onnx}")
    model, info = load_checkpoint_model(args)
    path = export_onnx(model, args.onnx, args.short_len, args.out_len, opset=args.opset)
    print(
        f"wrote {path}: {info['model']} frames (batch, {args.short_len}, {model.in_chans}, "
        f"{model.img_size[0]}, {model.img_size[1]}) -> forecast (batch, {args.out_len}, ...)"
    )
    try:
        import onnxruntime  # noqa: F401
    except ImportError:
        print("onnxruntime is not installed: parity not checked (pip install onnxruntime)")
        return 0
    err = onnx_parity(model, path, args.short_len, args.out_len)
    print(f"onnxruntime vs PyTorch: max abs difference {err:.2e} (tolerance {args.tolerance:g})")
    if err > args.tolerance:
        path.unlink(missing_ok=True)  # a graph that does not compute the model is no output
        raise ConfigError(
            f"the exported graph differs from PyTorch by {err:.2e} > --tolerance "
            f"{args.tolerance:g}: {path} removed"
        )
    return 0
