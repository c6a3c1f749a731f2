"""Training rules the engine applies: LMC-Memory's memory alignment and warm-up, scheduled sampling.

Memory alignment, as the authors' ``train.py`` does it, one iteration::

    b = alignment_clips(clip, iteration, short_len, long_len, out_len, warmup, rng)
    targets = loss_targets(model, b.short, b.future)
    losses = memory_alignment_step(model, optimizer, b.short, targets, b.long, b.out_len)

* warm-up: the first ``warmup`` iterations predict only 10 frames, and the long clip is then the
  first ``short_len + 10`` frames (pass ``warmup=0`` when resuming from a checkpoint, as they do);
* otherwise the long clip is ``long_len`` frames starting at a uniform random position in
  ``0 .. short_len + out_len - long_len``;
* phase 1: the model reads the long clip (motion-context encoder), memory slots trainable,
  loss L1 + L2 (means), ``zero_grad``, backward, ``optimizer.step()``;
* phase 2: the model reads the short clip (motion-matching encoder), slots frozen
  (``requires_grad=False``), same loss, its own step.

How gradients are reset before each backward (``zero_grad``) decides what the optimiser does to
the parameters a phase does not train (the frozen slots, the encoder it does not use):

* ``"zeros"`` (default): filled with zeros, as ``optimizer.zero_grad()`` did on the PyTorch 1.6
  the authors trained their published networks with. Adam then still moves those parameters by
  its momentum, and every parameter that ever had a gradient takes both steps of an iteration.
* ``"none"``: set to None, ``zero_grad()`` on PyTorch >= 2: Adam leaves them exactly as they are.

The optimiser covers every parameter (Adam, lr 2e-4 in the paper). A Lightning module with
manual optimisation passes ``backward=self.manual_backward``.

Scheduled sampling (ConvLSTM baseline, OpenSTL's schedule): :func:`teacher_prob` gives the
probability of feeding the true frame at an iteration;
:func:`swinlstm.models.sampling.scheduled_sampling_forward` (a way to run the network, so it
lives with the networks) runs any :class:`RecurrentPredictor` with it.

Here, not in ``models/``: these rules call ``zero_grad`` / ``step`` or decide what an iteration
trains; ``models/`` holds networks only.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from swinlstm.errors import ConfigError
from swinlstm.models.memory import LMCMemory
from swinlstm.models.recurrent import RecurrentPredictor

WARMUP_LEN = 10
LONG_LEN = 30  # LMC-Memory's train.py --long_len default


def warmup_out_len(iteration: int, warmup: int, out_len: int, warmup_len: int = WARMUP_LEN) -> int:
    """Frames to predict at ``iteration`` (0-based): ``warmup_len`` during the first ``warmup``
    iterations (never more than ``out_len``), ``out_len`` after."""
    if out_len < 1:
        raise ConfigError(f"out_len must be >= 1, got {out_len}")
    return min(warmup_len, out_len) if iteration < warmup else out_len


@dataclass
class AlignmentBatch:
    """One iteration's clips: short input, long clip, future target, frames to predict."""

    short: torch.Tensor  # (B, short_len, C, H, W)
    long: torch.Tensor  # (B, long, C, H, W)
    future: torch.Tensor  # (B, out_len, C, H, W)
    out_len: int


def alignment_clips(
    clip: torch.Tensor,
    iteration: int,
    short_len: int,
    long_len: int,
    out_len: int,
    warmup: int = 0,
    rng: np.random.Generator | None = None,
) -> AlignmentBatch:
    """Cut a training clip (B, >= short_len + out_len, C, H, W) as the authors' train.py does."""
    if clip.dim() != 5 or clip.shape[1] < short_len + out_len:
        raise ConfigError(
            f"training clip must be (B, T, C, H, W) with T >= short_len + out_len = "
            f"{short_len + out_len}, got shape {tuple(clip.shape)}"
        )
    if not 2 <= long_len <= short_len + out_len:
        raise ConfigError(
            f"long_len must be in 2 .. short_len + out_len = {short_len + out_len}, got {long_len}"
        )
    n = warmup_out_len(iteration, warmup, out_len)
    short = clip[:, :short_len]
    future = clip[:, short_len : short_len + n]
    if iteration < warmup:
        long = clip[:, : short_len + n]
    else:
        rng = np.random.default_rng() if rng is None else rng
        start = int(rng.integers(0, short_len + out_len - long_len + 1))
        long = clip[:, start : start + long_len]
    return AlignmentBatch(short, long, future, n)


def loss_targets(
    model: RecurrentPredictor, short: torch.Tensor, future: torch.Tensor
) -> torch.Tensor:
    """What ``model(short, out_len)`` is compared with: the future for forecast-only models
    (LMC-Memory), else frames 1 .. T_in - 1 of the input followed by the future (SwinLSTM)."""
    if getattr(model, "forecast_only", False):
        return future
    return torch.cat([short[:, 1:], future], dim=1)


def alignment_loss(pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """L1 + L2 (both means), the authors' loss in each phase."""
    if pred.shape != target.shape:
        raise ConfigError(
            f"prediction {tuple(pred.shape)} and target {tuple(target.shape)} differ; "
            "build targets with loss_targets(model, short, future)"
        )
    return F.l1_loss(pred, target) + F.mse_loss(pred, target)


def memory_slots(model: nn.Module) -> list[nn.Parameter]:
    """The slot matrices (``memory_w``) of every LMCMemory inside ``model``."""
    return [m.memory_w for m in model.modules() if isinstance(m, LMCMemory)]


ZERO_GRAD_MODES = ("zeros", "none")


def check_zero_grad(mode: str) -> str:
    if mode not in ZERO_GRAD_MODES:
        raise ConfigError(
            f"--alignment_zero_grad must be zeros (PyTorch 1.6, the authors') or none "
            f"(PyTorch >= 2), got {mode!r}"
        )
    return mode


def _phase_step(
    model, optimizer, inputs, targets, long, out_len, phase, backward, zero_grad
) -> float:
    pred = model(inputs, out_len, long_frames=long, phase=phase)
    loss = alignment_loss(pred, targets)
    optimizer.zero_grad(set_to_none=zero_grad == "none")
    backward(loss)
    optimizer.step()
    return float(loss.detach())


def memory_alignment_step(
    model: RecurrentPredictor,
    optimizer: torch.optim.Optimizer,
    inputs: torch.Tensor,
    targets: torch.Tensor,
    long: torch.Tensor | None,
    out_len: int,
    backward: Callable[[torch.Tensor], None] | None = None,
    zero_grad: str = "zeros",
) -> dict[str, float]:
    """One memory-alignment iteration (phase 1 then phase 2, two optimiser steps).

    ``zero_grad``: ``"zeros"`` (PyTorch 1.6's ``zero_grad``, the authors' runs) or ``"none"``
    (PyTorch >= 2's); see the module docstring.

    Returns ``{"loss_p1", "loss_p2", "loss"}`` (``loss`` = their sum, what the authors log).
    A model without memory gets one ordinary step: ``{"loss_p2", "loss"}``.
    """
    backward = backward or (lambda loss: loss.backward())
    check_zero_grad(zero_grad)
    slots = memory_slots(model)
    model.train()
    losses: dict[str, float] = {}
    if slots:
        if long is None:
            raise ConfigError("memory alignment needs the long clip (phase 1): pass long")
        before = [p.requires_grad for p in slots]
        try:
            for p in slots:
                p.requires_grad_(True)
            losses["loss_p1"] = _phase_step(
                model, optimizer, inputs, targets, long, out_len, 1, backward, zero_grad
            )
            for p in slots:
                p.requires_grad_(False)
            losses["loss_p2"] = _phase_step(
                model, optimizer, inputs, targets, None, out_len, 2, backward, zero_grad
            )
        finally:
            for p, flag in zip(slots, before):
                p.requires_grad_(flag)
    else:
        losses["loss_p2"] = _phase_step(
            model, optimizer, inputs, targets, None, out_len, 2, backward, zero_grad
        )
    losses["loss"] = sum(losses.values())
    return losses


def teacher_prob(iteration: int, stop_iter: int = 50000, rate: float = 2e-5) -> float:
    """Scheduled sampling: probability of feeding the true frame, OpenSTL's linear decay
    (1 - rate per iteration, 0 from ``stop_iter`` on)."""
    if iteration >= stop_iter:
        return 0.0
    return max(0.0, 1.0 - (iteration + 1) * rate)


__all__ = [
    "LONG_LEN",
    "WARMUP_LEN",
    "AlignmentBatch",
    "alignment_clips",
    "alignment_loss",
    "check_zero_grad",
    "loss_targets",
    "memory_alignment_step",
    "memory_slots",
    "teacher_prob",
    "warmup_out_len",
]
