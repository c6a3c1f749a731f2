"""A model's forecast as an ONNX graph, for fixed lengths, checked against PyTorch.

The graph maps ``frames`` (B, short_len, C, H, W) to ``forecast`` (B, out_len, C, H, W): the
recurrence is unrolled for the given lengths (ONNX has no cheaper way to express a loop whose
body is a Swin block). The batch axis is dynamic. The TorchScript-based exporter is used
(``dynamo=False``): the dynamo exporter needs the ``onnxscript`` package, which is not a
dependency. :func:`check_onnx` runs the written graph with onnxruntime (when installed) on a
random clip and compares it with PyTorch.
"""

from __future__ import annotations

import contextlib
import os
import re
import sys
import tempfile
import warnings
from pathlib import Path

import torch
from torch import nn

from swinlstm.errors import ConfigError


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


def check_onnx(model: nn.Module, path: str | Path, short_len: int, out_len: int) -> float | None:
    """:func:`onnx_parity` of the graph at ``path``; None when onnxruntime is not installed."""
    try:
        import onnxruntime  # noqa: F401
    except ImportError:
        return None
    return onnx_parity(model, path, short_len, out_len)


def refuse_if_differs(path: str | Path, err: float, tolerance: float) -> None:
    """A graph that differs from PyTorch by ``err`` > ``tolerance`` computes no model: remove it
    and raise ConfigError (one line) saying by how much it differed."""
    if err > tolerance:
        Path(path).unlink(missing_ok=True)
        raise ConfigError(
            f"the exported graph differs from PyTorch by {err:.2e} > --tolerance "
            f"{tolerance:g}: {path} removed"
        )


__all__ = ["Forecaster", "check_onnx", "export_onnx", "onnx_parity", "refuse_if_differs"]
