"""A tiny model and dataset for the engine's tests (no dependency on the real models or data).

``toy`` is a one-convolution recurrent predictor registered in the model registry; ``ToyClips``
is an in-memory set of moving-square clips. Importing this module registers ``toy``.
"""

from __future__ import annotations

import torch
from torch import nn
from torch.utils.data import Dataset

from swinlstm.models import RecurrentPredictor, register_model


class ToyPredictor(RecurrentPredictor):
    """h' = tanh(conv([frame, h])); next frame = sigmoid(conv(h')). Shapes as RecurrentPredictor."""

    def __init__(self, img_size: int = 16, in_chans: int = 1, hidden: int = 4) -> None:
        super().__init__()
        size = img_size if isinstance(img_size, (list, tuple)) else [img_size, img_size]
        self.img_size = (int(size[0]), int(size[-1]))
        self.in_chans = in_chans
        self.hidden = hidden
        self.cell = nn.Conv2d(in_chans + hidden, hidden, 3, padding=1)
        self.out = nn.Conv2d(hidden, in_chans, 1)

    def init_state(self, batch_size, device=None, dtype=None):
        return torch.zeros(batch_size, self.hidden, *self.img_size, device=device, dtype=dtype)

    def _step(self, frame, state, context=None, decode=True):
        h = torch.tanh(self.cell(torch.cat([frame, state], dim=1)))
        return (torch.sigmoid(self.out(h)) if decode else None), h


@register_model("toy")
def build_toy(**config) -> ToyPredictor:
    return ToyPredictor(**config)


class ToyClips(Dataset):
    """``n`` clips of a bright square moving one pixel per frame: items (inputs, targets)."""

    def __init__(self, n: int = 16, short_len: int = 3, out_len: int = 2, size: int = 16) -> None:
        g = torch.Generator().manual_seed(n)
        t = short_len + out_len
        clips = torch.zeros(n, t, 1, size, size)
        for i in range(n):
            y, x = torch.randint(0, size - 4, (2,), generator=g).tolist()
            for k in range(t):
                xx = (x + k) % (size - 4)
                clips[i, k, 0, y : y + 4, xx : xx + 4] = 1.0
        self.clips = clips
        self.short_len = short_len

    def __len__(self) -> int:
        return len(self.clips)

    def __getitem__(self, i: int):
        c = self.clips[i]
        return c[: self.short_len], c[self.short_len :]


def toy_config(out, **kw) -> dict:
    """A tiny training config of ``toy`` on CPU writing into ``out`` (the flat form of RunConfig)."""
    cfg = {
        "model": "toy",
        "model_config": {"img_size": 16, "in_chans": 1},
        "img_size": 16,
        "short_len": 3,
        "out_len": 2,
        "batch_size": 2,
        "iterations": 4,
        "print_freq": 2,
        "checkpoint_save_dir": str(out),
        "workers": 0,
        "accelerator": "cpu",
        "lr": 1e-2,
        "progress": False,
    }
    cfg.update(kw)
    return cfg
