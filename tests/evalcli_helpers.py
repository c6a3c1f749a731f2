"""Helpers of the evaluation/CLI tests: a tiny predictor registered as ``toy``, ``require``.

One 3x3 convolution and a leaky state: fast, deterministic, and stateful, so that streaming
through ``step`` versus one ``predict`` call is a real check.
"""

from __future__ import annotations

import torch
from torch import nn

from swinlstm.models import RecurrentPredictor, register_model


class ToyPredictor(RecurrentPredictor):
    def __init__(self, img_size: int = 16, in_chans: int = 1):
        super().__init__()
        self.img_size = (img_size, img_size)
        self.in_chans = in_chans
        self.conv = nn.Conv2d(in_chans, in_chans, 3, padding=1)

    def init_state(self, batch_size, device=None, dtype=None):
        h, w = self.img_size
        return torch.zeros(batch_size, self.in_chans, h, w, device=device, dtype=dtype)

    def _step(self, frame, state, context=None, decode=True):
        state = 0.5 * state + 0.5 * self.conv(frame)
        return torch.sigmoid(state), state


@register_model("toy-eval")
def toy(**config) -> ToyPredictor:
    return ToyPredictor(**config)


def require(module: str, name: str) -> None:
    """Skip the calling test (or module) unless ``module`` provides ``name`` (a part of the
    project another branch is adding)."""
    import importlib

    import pytest

    try:
        found = hasattr(importlib.import_module(module), name)
    except ImportError:
        found = False
    if not found:
        pytest.skip(f"needs {module}.{name}", allow_module_level=True)
