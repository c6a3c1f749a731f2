"""Streaming per-frame means over a test set, without holding the predictions.

Distributed use: every rank updates its own accumulator, then sums the state before computing::

    acc = MetricAccumulator(("mse", "ssim"), protocol="default")
    for pred, target in loader:
        acc.update(pred, target)
    for t in acc.state_tensors().values():   # the live tensors: reduced in place
        torch.distributed.all_reduce(t, op=torch.distributed.ReduceOp.SUM)
    per_frame = acc.compute()

``state_tensors()`` returns ``{"count": (1,), "sum/<metric>": (T,)}`` float64 tensors on the device
of the first batch; ``load_state_tensors`` takes such a dict back (e.g. after all_gather + sum).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

from swinlstm.errors import ConfigError
from swinlstm.metrics.core import DEFAULT_METRICS, check_metrics, per_sample, resolve_lpips
from swinlstm.metrics.lpips import LPIPS
from swinlstm.metrics.protocols import get_protocol


class MetricAccumulator:
    """Sums of per-sample, per-frame metric values and the number of samples seen.

    Args:
        metrics: metric names (``swinlstm.metrics.METRICS``).
        protocol: protocol name (``swinlstm.metrics.PROTOCOLS``).
        lpips: LPIPS model; loaded once here when "lpips" is requested and none is given (left
            out, with one warning, if no weights are found).
    """

    def __init__(
        self,
        metrics: Sequence[str] = DEFAULT_METRICS,
        protocol: str = "default",
        lpips: LPIPS | None = None,
    ) -> None:
        self.metrics = check_metrics(metrics)
        self.protocol = get_protocol(protocol).name
        self.lpips = resolve_lpips(self.metrics, lpips)
        self.reset()

    def reset(self) -> None:
        """Forget every sample seen."""
        self._sums: dict[str, torch.Tensor] = {}
        self._count: torch.Tensor | None = None

    def update(self, pred: torch.Tensor, target: torch.Tensor) -> None:
        """Add a batch of (B, T, C, H, W) predictions and targets."""
        values = per_sample(pred, target, self.metrics, self.protocol, self.lpips)
        steps = pred.shape[1]
        if self._count is None:
            self._count = torch.zeros(1, dtype=torch.float64, device=pred.device)
            self._sums = {
                k: torch.zeros(steps, dtype=torch.float64, device=pred.device) for k in values
            }
        first = next(iter(self._sums.values()))
        if steps != first.shape[0]:
            raise ConfigError(
                f"MetricAccumulator: batch has {steps} frames but earlier batches had "
                f"{first.shape[0]}; reset() between forecast horizons"
            )
        for k, v in values.items():
            self._sums[k] += v.sum(0).to(self._sums[k].device)
        self._count += pred.shape[0]

    @property
    def count(self) -> int:
        """Number of samples (sequences) seen."""
        return 0 if self._count is None else int(self._count.item())

    def compute(self) -> dict[str, torch.Tensor]:
        """metric name -> (T,) per-frame means over every sample seen."""
        if not self.count:
            raise ConfigError("MetricAccumulator.compute(): no samples seen; call update() first")
        return {k: (s / self._count).cpu() for k, s in self._sums.items()}

    def state_tensors(self) -> dict[str, torch.Tensor]:
        """The live sum/count tensors (all_reduce them with SUM in place; see module docstring)."""
        if self._count is None:
            raise ConfigError("MetricAccumulator.state_tensors(): no samples seen yet")
        return {"count": self._count, **{f"sum/{k}": s for k, s in self._sums.items()}}

    def load_state_tensors(self, state: dict[str, torch.Tensor]) -> None:
        """Replace the state by ``state`` (the format ``state_tensors`` returns)."""
        if "count" not in state:
            raise ConfigError("MetricAccumulator.load_state_tensors: state has no 'count' entry")
        self._count = state["count"].detach().clone().double().view(1)
        self._sums = {
            k.removeprefix("sum/"): v.detach().clone().double()
            for k, v in state.items()
            if k.startswith("sum/")
        }
