"""``compute``: every requested metric per sample and frame under one protocol."""

from __future__ import annotations

from collections.abc import Sequence

import torch

from swinlstm.errors import ConfigError
from swinlstm.metrics import basic, ssim
from swinlstm.metrics.lpips import LPIPS, load_lpips, lpips_frames
from swinlstm.metrics.protocols import METRICS, Protocol, get_protocol

DEFAULT_METRICS = ("mse", "mae", "ssim", "psnr")


def check_metrics(metrics: Sequence[str]) -> tuple[str, ...]:
    """Validate metric names (a single string is one name)."""
    names = (metrics,) if isinstance(metrics, str) else tuple(metrics)
    unknown = [m for m in names if m not in METRICS]
    if unknown or not names:
        raise ConfigError(
            f"unknown metrics {unknown or names!r}; choose from: {', '.join(METRICS)}"
        )
    return names


def resolve_lpips(metrics: tuple[str, ...], lpips: LPIPS | None) -> LPIPS | None:
    """The LPIPS model to use: ``lpips`` if given, else ``load_lpips()`` when LPIPS is asked for
    (None, with one warning, when no weights are found)."""
    if "lpips" not in metrics or lpips is not None:
        return lpips
    return load_lpips()


#: frames (times channels) evaluated together: bounds temporaries to a few MB at 64x64, which
#: stays in cache and avoids page-faulting fresh full-size buffers for every operation
FRAMES_PER_CHUNK = 256


@torch.no_grad()
def per_sample(
    pred: torch.Tensor,
    target: torch.Tensor,
    metrics: Sequence[str] = DEFAULT_METRICS,
    protocol: str | Protocol = "default",
    lpips: LPIPS | None = None,
) -> dict[str, torch.Tensor]:
    """Metrics per sample and frame: name -> (B, T) float64 tensor.

    ``lpips`` is left out of the result when no LPIPS model is given (``compute`` and the
    accumulator load one for you). Samples are evaluated in chunks of about
    ``FRAMES_PER_CHUNK`` frames.
    """
    names = check_metrics(metrics)
    proto = get_protocol(protocol)
    clip_pred, clip_target = basic.check_frames(pred, target)
    step = max(1, FRAMES_PER_CHUNK // (pred.shape[1] * pred.shape[2]))
    parts = []
    work = torch.empty(0)  # difference buffer, reused by every chunk of the same shape
    for i in range(0, pred.shape[0], step):
        p, t = pred[i : i + step], target[i : i + step]
        clipped = p.clamp(0, 1) if clip_pred else p
        t = t.clamp(0, 1) if clip_target else t
        if work.shape != p.shape:
            work = torch.empty(p.shape, dtype=_error_dtype(p, t), device=p.device)
        parts.append(_metrics(p, clipped, t, names, proto, lpips, work))
    return {k: torch.cat([part[k] for part in parts]) for k in parts[0]}


def _error_dtype(pred: torch.Tensor, target: torch.Tensor) -> torch.dtype:
    """The dtype pixel errors are taken in (``basic._diff``'s)."""
    return torch.float64 if torch.float64 in (pred.dtype, target.dtype) else torch.float32


def _metrics(
    pred: torch.Tensor,
    clipped: torch.Tensor,
    target: torch.Tensor,
    names: tuple[str, ...],
    proto: Protocol,
    lpips: LPIPS | None,
    work: torch.Tensor | None = None,
) -> dict[str, torch.Tensor]:
    """``per_sample`` on one chunk of validated frames; ``clipped`` is ``pred`` clipped to [0, 1]
    and ``target`` already lies in [0, 1]; ``work`` a buffer of the chunk's shape for errors."""
    p_mse = clipped if proto.clip_mse else pred
    p_rest = clipped if proto.clip_rest else pred
    out: dict[str, torch.Tensor] = {}
    sq_totals: dict[int, torch.Tensor] = {}  # MSEs and PSNR of one input share one pass

    def sq_error(p: torch.Tensor, how: str) -> torch.Tensor:
        if id(p) not in sq_totals:
            sq_totals[id(p)] = basic.sum_squared_error(p, target, work)
        return basic.reduce_squared_error(sq_totals[id(p)], p.shape, how)

    for name in names:
        if name == "mse":
            out[name] = sq_error(p_mse, proto.mse_reduction)
        elif name == "mae":
            out[name] = basic.absolute_error(p_mse, target, "sum", work)
        elif name == "mse_pixel":
            out[name] = sq_error(p_mse, "mean")
        elif name == "mae_pixel":
            out[name] = basic.absolute_error(p_mse, target, "mean", work)
        elif name == "ssim":
            out[name] = ssim.ssim(p_rest, target, data_range=proto.ssim_data_range)
        elif name == "ssim_gauss":
            out[name] = ssim.ssim_gaussian(p_rest, target)
        elif name == "psnr":
            if proto.psnr == "e3d":
                out[name] = basic.psnr_e3d(p_rest, target)
            else:
                out[name] = basic.psnr_from_mse(sq_error(p_rest, "mean"), 1.0)
        elif name == "lpips" and lpips is not None:
            out[name] = lpips_frames(lpips, p_rest, target, rescale=proto.lpips_rescale)
    return out


def compute(pred, target, metrics=DEFAULT_METRICS, protocol="default", lpips=None) -> dict:
    """Per-frame metrics of predictions against targets, averaged over the batch: the arguments
    of :func:`per_sample`, except that a missing LPIPS model is loaded when "lpips" is asked for.

    Args:
        pred, target: (B, T, C, H, W) float frames in [0, 1] (predictions may stray outside;
            each protocol clips them as its anchor does).
        metrics: names from ``swinlstm.metrics.METRICS`` (a sequence of str).
        protocol: a name from ``swinlstm.metrics.PROTOCOLS`` (see docs/metrics.md) or a
            ``Protocol``.
        lpips: an ``LPIPS`` model or None; when "lpips" is requested and none is given, ``load_lpips()``
            is tried and LPIPS is left out (with one warning) if no weights are found.
    Returns:
        ``dict[str, torch.Tensor]``: metric name -> (T,) float64 tensor of batch means per frame.
    Raises:
        ValueError: wrong shapes or dtypes, NaN/inf values, targets outside [0, 1], unknown
            metric or protocol names.
    """
    names = check_metrics(metrics)
    values = per_sample(pred, target, names, protocol, resolve_lpips(names, lpips))
    return {k: v.mean(0) for k, v in values.items()}
