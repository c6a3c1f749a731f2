"""Input checks and pixel-wise metrics (MSE, MAE, PSNR) per sample and frame.

Every function takes frames ``(B, T, C, H, W)`` and returns a ``(B, T)`` tensor of per-sample,
per-frame values in float64; averaging over the batch is the caller's job.
"""

from __future__ import annotations

import math

import torch

from swinlstm.errors import ConfigError
from swinlstm.metrics.protocols import PSNR_CAP_DB

#: tolerance on the [0, 1] range of targets (float rounding of normalised data)
RANGE_TOL = 1e-4


def check_frames(pred: torch.Tensor, target: torch.Tensor) -> tuple[bool, bool]:
    """Raise ``ValueError`` unless ``pred`` and ``target`` are finite (B, T, C, H, W) tensors of one
    shape with targets in [0, 1]. Returns whether each has values outside [0, 1] (to be clipped).

    One min/max pass per tensor serves every check: a NaN or inf shows in its min or max.
    """
    for name, x in (("pred", pred), ("target", target)):
        if not isinstance(x, torch.Tensor):
            raise ConfigError(f"metrics: {name} must be a torch.Tensor, got {type(x).__name__}")
        if x.ndim != 5:
            raise ConfigError(
                f"metrics: {name} has shape {tuple(x.shape)}; expected 5 dims (B, T, C, H, W)"
            )
        if not x.is_floating_point():
            raise ConfigError(
                f"metrics: {name} has dtype {x.dtype}; expected floats in [0, 1] "
                "(divide uint8 frames by 255)"
            )
    if 0 in pred.shape:
        raise ConfigError(f"metrics: pred has shape {tuple(pred.shape)}; no frames to evaluate")
    if pred.shape != target.shape:
        raise ConfigError(
            f"metrics: pred shape {tuple(pred.shape)} != target shape {tuple(target.shape)}"
        )
    spans = {}
    for name, x in (("pred", pred), ("target", target)):
        lo, hi = (float(v) for v in torch.aminmax(x))
        if not (math.isfinite(lo) and math.isfinite(hi)):
            bad = int((~torch.isfinite(x)).sum())
            raise ConfigError(f"metrics: {name} has {bad} NaN/inf values")
        spans[name] = (lo, hi)
    lo, hi = spans["target"]
    if lo < -RANGE_TOL or hi > 1 + RANGE_TOL:
        raise ConfigError(
            f"metrics: target values span [{lo:.4g}, {hi:.4g}]; expected [0, 1] "
            "(map [-1, 1] data such as TaxiBJ with (x + 1) / 2, uint8 frames with x / 255)"
        )
    return tuple(lo < 0 or hi > 1 for lo, hi in spans.values())


def _diff(pred: torch.Tensor, target: torch.Tensor, out: torch.Tensor | None = None):
    """pred - target in float32 (float64 for float64 inputs), as skimage keeps float32 frames;
    into ``out`` when it has that shape and dtype (a reused buffer saves page-faulting a fresh
    one per call)."""
    dtype = torch.float64 if torch.float64 in (pred.dtype, target.dtype) else torch.float32
    if out is None or out.shape != pred.shape or out.dtype != dtype:
        out = None
    return torch.sub(pred.to(dtype), target.to(dtype), out=out)


def _reduce(err: torch.Tensor, how: str) -> torch.Tensor:
    """(B, T, C, H, W) -> (B, T) float64: ``sum`` or ``mean`` over C, H, W.

    torch's vectorised (cascaded) float32 sum is accurate to ~1e-7 relative here and many times
    faster on CPU than ``sum(dtype=torch.float64)``."""
    flat = err.flatten(2)
    total = flat.sum(-1).double()
    return total if how == "sum" else total / flat.shape[-1]


def sum_squared_error(pred: torch.Tensor, target: torch.Tensor, out=None) -> torch.Tensor:
    """Squared error per sample and frame summed over C*H*W: (B, T) float64. Every MSE reduction
    and PSNR derive from it (``reduce_squared_error``), so one pass serves them all. ``out``: an
    optional work buffer of ``pred``'s shape."""
    return _reduce(_diff(pred, target, out).square_(), "sum")


def reduce_squared_error(total: torch.Tensor, shape: torch.Size, how: str) -> torch.Tensor:
    """``sum_squared_error`` of frames of ``shape`` (B, T, C, H, W) as ``how``: "sum", "mean"
    over C*H*W, or "mean_hw" (the mean times H*W, LMC-Memory's MSE)."""
    if how == "sum":
        return total
    mean = total / (shape[-1] * shape[-2] * shape[-3])
    return mean * (shape[-1] * shape[-2]) if how == "mean_hw" else mean


def squared_error(pred: torch.Tensor, target: torch.Tensor, how: str = "sum") -> torch.Tensor:
    """Squared error per sample and frame, summed (``how="sum"``) or averaged (``"mean"``) over
    C*H*W; ``"mean_hw"`` is the mean times H*W (LMC-Memory's MSE). Returns (B, T) float64."""
    return reduce_squared_error(sum_squared_error(pred, target), pred.shape, how)


def absolute_error(pred: torch.Tensor, target: torch.Tensor, how: str = "sum", out=None):
    """Absolute error per sample and frame, summed or averaged over C*H*W. Returns (B, T)."""
    return _reduce(_diff(pred, target, out).abs_(), how)


def psnr_from_mse(mse: torch.Tensor, peak: float) -> torch.Tensor:
    """PSNR in dB for a given peak value, capped at ``PSNR_CAP_DB`` (mse 0 gives the cap)."""
    psnr = 20 * math.log10(peak) - 10 * torch.log10(mse)
    return psnr.clamp(max=PSNR_CAP_DB)


def psnr(pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """skimage ``peak_signal_noise_ratio(target, pred, data_range=1)`` per sample and frame:
    ``10 log10(1 / mean((pred - target)^2))`` over C*H*W, capped at ``PSNR_CAP_DB``. (B, T)."""
    return psnr_from_mse(squared_error(pred, target, "mean"), 1.0)


def quantize_uint8(x: torch.Tensor) -> torch.Tensor:
    """``np.uint8(x * 255)`` for x in [0, 1]: the product is taken in x's dtype and truncated.

    Values outside [0, 1] are clipped first (numpy's cast of out-of-range floats is undefined).
    """
    return (x.clamp(0, 1) * 255).floor().to(torch.int64)


def psnr_e3d(pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """The E3D-style PSNR quoted by SwinLSTM (and early SimVP/OpenSTL) per sample and frame:

    ``20 log10(255) - 10 log10(mean((uint8(p*255) - uint8(t*255))**2))`` where the difference and
    its square wrap around modulo 256 as numpy uint8 arithmetic does. Capped at ``PSNR_CAP_DB``.
    Returns (B, T) float64.
    """
    diff = (quantize_uint8(pred) - quantize_uint8(target)) % 256
    sq = (diff * diff) % 256
    return psnr_from_mse(sq.double().flatten(2).mean(-1), 255.0)
