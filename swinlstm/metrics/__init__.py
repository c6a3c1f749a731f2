"""Per-frame video prediction metrics with the conventions of the papers we compare against.

Public API::

    from swinlstm.metrics import compute, MetricAccumulator, PROTOCOLS, write_metrics
    per_frame = compute(pred, target, metrics=("mse", "mae", "ssim", "psnr"), protocol="default")

``pred``/``target`` are (B, T, C, H, W) floats in [0, 1]; every result is a (T,) tensor of batch
means. ``PROTOCOLS`` maps protocol names to one-line descriptions, ``METRICS`` metric names to
definitions; docs/metrics.md gives the exact formulas and which paper table each protocol matches.
"""

from swinlstm.metrics.accumulate import MetricAccumulator
from swinlstm.metrics.core import DEFAULT_METRICS, compute, per_sample
from swinlstm.metrics.lpips import LPIPS, load_lpips
from swinlstm.metrics.protocols import (
    METRICS,
    PROTOCOL_SPECS,
    PROTOCOLS,
    PSNR_CAP_DB,
    Protocol,
    get_protocol,
)
from swinlstm.metrics.writers import format_summary, write_metrics

__all__ = [
    "DEFAULT_METRICS",
    "LPIPS",
    "METRICS",
    "MetricAccumulator",
    "PROTOCOLS",
    "PROTOCOL_SPECS",
    "PSNR_CAP_DB",
    "Protocol",
    "compute",
    "format_summary",
    "get_protocol",
    "load_lpips",
    "per_sample",
    "write_metrics",
]
