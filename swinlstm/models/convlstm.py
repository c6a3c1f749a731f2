"""ConvLSTM predictors: the ``"convlstm"`` baseline and LMC-Memory's predictor ``"lmc-convlstm"``.

* :class:`ConvLSTMCell`: Shi et al. (2015). Input, forget and output gates and the candidate are
  convolutions of the input ``x`` and the hidden state ``h`` (no peepholes)::

      i, g, f, o = split(W_x * x + W_h * h)          (gate order: LMC-Memory's NPUnit)
      c' = sigmoid(f + forget_bias) c + sigmoid(i) tanh(g)
      h' = sigmoid(o) tanh(c')

* ``"convlstm"`` (:class:`ConvLSTM`): the baseline as benchmarked on Moving MNIST by PredRNN /
  OpenSTL: frames space-to-depth by ``patch_size``, a stack of cells with ``num_hidden`` channels
  and ``filter_size`` kernels, a 1x1 conv back to patches. It computes what OpenSTL's
  ``ConvLSTM_Model`` computes (bias-free convs, no forget bias: OpenSTL defines ``_forget_bias``
  and per-cell ``conv_o`` / ``conv_last`` but never uses them, which is why it reports 15.0M
  parameters for the Moving MNIST config where this network has 11.7M). With
  ``memory_size > 0`` the LMC memory is read at the patch grid and joined before the 1x1 conv.
  Optional scheduled sampling: ``model(frames, out_len, teacher_frames=future,
  teacher_prob=p)`` feeds, at each forecast step after the first, the true frame instead of the
  model's own output with probability ``p`` per sequence (see
  :func:`swinlstm.models.sampling.scheduled_sampling_forward`; the schedule is
  :func:`swinlstm.engine.rules.teacher_prob`).

* ``"lmc-convlstm"`` (:class:`LMCConvLSTM`): LMC-Memory's ``Predictor``: conv encoder to H/4 with
  ``hidden`` (128) channels, four ConvLSTM layers, transposed-conv decoder (sigmoid at the end
  when ``final_sigmoid``, as for their KTH network), and the memory
  (:mod:`swinlstm.models.memory`) when ``memory_size > 0``: the read-out, weighted by channel
  attention from the last cell state, joins the top hidden state at the decoder input.
  Parameter names are the authors' so their checkpoints load as they are. Any frame size works:
  the decoder's output paddings are chosen so that it lands on the encoder's sizes.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from swinlstm.errors import ConfigError
from swinlstm.helpers import as_hw

from . import register_model
from .memory import MemoryPredictor, check_memory_size

LSTMState = tuple[list[torch.Tensor], list[torch.Tensor]]


def check_positive(name: str, value: int) -> None:
    if not isinstance(value, int) or value < 1:
        raise ConfigError(f"{name} must be a positive integer, got {value!r}")


class ConvLSTMCell(nn.Module):
    """One ConvLSTM layer: (x (B, C_in, H, W), h, c (B, C_h, H, W)) -> (h', c')."""

    def __init__(
        self,
        in_channels: int,
        hidden: int,
        kernel_size: int = 3,
        bias: bool = True,
        forget_bias: float = 0.0,
    ) -> None:
        super().__init__()
        if kernel_size % 2 != 1:
            raise ConfigError(
                f"ConvLSTM kernel size must be odd ('same' padding), got {kernel_size}"
            )
        pad = kernel_size // 2
        self.hidden, self.forget_bias = hidden, forget_bias
        self.conv2d_x = nn.Conv2d(in_channels, 4 * hidden, kernel_size, padding=pad, bias=bias)
        self.conv2d_h = nn.Conv2d(hidden, 4 * hidden, kernel_size, padding=pad, bias=bias)

    def forward(
        self, x: torch.Tensor, h: torch.Tensor, c: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        xi, xg, xf, xo = torch.chunk(self.conv2d_x(x), 4, dim=1)
        hi, hg, hf, ho = torch.chunk(self.conv2d_h(h), 4, dim=1)
        f = xf + hf
        if self.forget_bias:
            f = f + self.forget_bias
        c = torch.sigmoid(f) * c + torch.sigmoid(xi + hi) * torch.tanh(xg + hg)
        h = torch.sigmoid(xo + ho) * torch.tanh(c)
        return h, c


def zero_state(
    cells: Sequence[ConvLSTMCell], batch: int, size: tuple[int, int], device=None, dtype=None
) -> LSTMState:
    """Zero (h, c) lists for a stack of cells at feature size (H', W')."""
    hs = [torch.zeros(batch, c.hidden, *size, device=device, dtype=dtype) for c in cells]
    return hs, [torch.zeros_like(h) for h in hs]


def stack_step(cells: Sequence[ConvLSTMCell], x: torch.Tensor, state: LSTMState) -> LSTMState:
    """One step of stacked cells: layer 0 reads ``x``, layer i the new hidden state of i-1."""
    new_h, new_c = [], []
    for cell, h, c in zip(cells, *state):
        h, c = cell(x, h, c)
        new_h.append(h)
        new_c.append(c)
        x = h
    return new_h, new_c


class FramePredictor(MemoryPredictor):
    """The frame geometry checks the ConvLSTM predictors share."""

    def _init_frames(self, img_size: int | Sequence[int], in_chans: int, memory_size: int) -> None:
        """Validate and keep the frame geometry; validate ``memory_size`` (0: no memory)."""
        self.img_size = as_hw(img_size, "img_size")
        check_positive("in_chans", in_chans)
        self.in_chans = in_chans
        check_memory_size(memory_size)


class ConvLSTM(FramePredictor):
    """The ConvLSTM baseline (PredRNN / OpenSTL layout), optional memory at the patch grid.

    Frames (B, C, H, W) -> space-to-depth (B, C p^2, H/p, W/p) -> cells -> 1x1 conv -> depth-to-space.
    """

    def __init__(
        self,
        img_size: int | Sequence[int] = 64,
        in_chans: int = 1,
        patch_size: int = 4,
        num_hidden: Sequence[int] = (128, 128, 128, 128),
        filter_size: int = 5,
        memory_size: int = 0,
        slot_dim: int = 512,
    ) -> None:
        super().__init__()
        self._init_frames(img_size, in_chans, memory_size)
        check_positive("patch_size", patch_size)
        if any(s % patch_size for s in self.img_size):
            raise ConfigError(
                f"img_size {self.img_size} must be divisible by patch_size={patch_size}"
            )
        num_hidden = [int(n) for n in num_hidden]
        if not num_hidden or min(num_hidden) < 1:
            raise ConfigError(f"num_hidden must list positive layer widths, got {num_hidden}")
        self.patch_size = patch_size
        self.feature_size = (self.img_size[0] // patch_size, self.img_size[1] // patch_size)
        patch_chans = in_chans * patch_size**2
        widths = [patch_chans, *num_hidden]
        self.cell_list = nn.ModuleList(
            ConvLSTMCell(widths[i], widths[i + 1], filter_size, bias=False)
            for i in range(len(num_hidden))
        )
        join_chans = self._init_memory(memory_size, num_hidden[-1], patch_size, slot_dim)
        self.conv_last = nn.Conv2d(join_chans, patch_chans, kernel_size=1, bias=False)

    def init_state(self, batch_size, device=None, dtype=None) -> LSTMState:
        return zero_state(self.cell_list, batch_size, self.feature_size, device, dtype)

    def _step(self, frame, state, context=None, decode=True):
        state = stack_step(self.cell_list, F.pixel_unshuffle(frame, self.patch_size), state)
        if not decode:
            return None, state
        h = self.join(state[0][-1], state[1][-1], context)
        return F.pixel_shuffle(self.conv_last(h), self.patch_size), state

    def forward(
        self,
        frames: torch.Tensor,
        out_len: int,
        long_frames: torch.Tensor | None = None,
        phase: int = 2,
        teacher_frames: torch.Tensor | None = None,
        teacher_prob: float = 0.0,
    ) -> torch.Tensor:
        """As :meth:`RecurrentPredictor.forward`; with ``teacher_frames`` (B, >= out_len - 1, C,
        H, W), the true future frames, and ``teacher_prob`` > 0: scheduled sampling (training)."""
        if teacher_frames is None or teacher_prob <= 0:
            return super().forward(frames, out_len, long_frames=long_frames, phase=phase)
        from .sampling import scheduled_sampling_forward

        return scheduled_sampling_forward(
            self, frames, out_len, teacher_frames, teacher_prob, long_frames, phase
        )


def conv_out(size: int) -> int:
    """Size after a 3x3, stride-2, padding-1 conv."""
    return (size - 1) // 2 + 1


def deconv_padding(small: tuple[int, int], big: tuple[int, int]) -> tuple[int, int]:
    """Output padding of a 3x3 stride-2 padding-1 transposed conv taking ``small`` to ``big``."""
    return tuple(b - (2 * s - 1) for s, b in zip(small, big))  # type: ignore[return-value]


class LMCConvLSTM(FramePredictor):
    """LMC-Memory's predictor (Lee et al. 2021); ``memory_size=0`` drops the memory.

    forward returns only the ``out_len`` forecast frames (the authors' training target).
    """

    forecast_only = True

    def __init__(
        self,
        img_size: int | Sequence[int] = 64,
        in_chans: int = 1,
        memory_size: int = 100,
        final_sigmoid: bool = False,
        hidden: int = 128,
        num_layers: int = 4,
        slot_dim: int = 512,
    ) -> None:
        super().__init__()
        self._init_frames(img_size, in_chans, memory_size)
        check_positive("num_layers", num_layers)
        if hidden < 2 or hidden % 2:
            raise ConfigError(f"hidden must be an even integer >= 2, got {hidden}")
        half = (conv_out(self.img_size[0]), conv_out(self.img_size[1]))
        self.feature_size = (conv_out(half[0]), conv_out(half[1]))
        h2 = hidden // 2
        self.encoder = nn.Sequential(
            nn.Conv2d(in_chans, h2, 3, stride=2, padding=1), nn.ELU(),
            nn.Conv2d(h2, h2, 3, stride=1, padding=1), nn.ELU(),
            nn.Conv2d(h2, hidden, 3, stride=2, padding=1), nn.ELU(),
            nn.Conv2d(hidden, hidden, 3, stride=1, padding=1), nn.ELU(),
        )  # fmt: skip
        join_chans = 2 * hidden if memory_size else hidden  # the top hidden state [+ memory]
        self.decoder = nn.Sequential(
            nn.ConvTranspose2d(join_chans, hidden, 3, stride=1, padding=1), nn.ELU(),
            nn.ConvTranspose2d(hidden, h2, 3, stride=2, padding=1,
                               output_padding=deconv_padding(self.feature_size, half)), nn.ELU(),
            nn.ConvTranspose2d(h2, h2, 3, stride=1, padding=1), nn.ELU(),
            nn.ConvTranspose2d(h2, in_chans, 3, stride=2, padding=1,
                               output_padding=deconv_padding(half, self.img_size)),
        )  # fmt: skip
        if final_sigmoid:
            self.decoder.add_module("last_activation", nn.Sigmoid())
        self.convlstm_list = nn.ModuleList(
            ConvLSTMCell(hidden, hidden, kernel_size=3) for _ in range(num_layers)
        )
        self._init_memory(memory_size, hidden, 4, slot_dim)  # last, as the authors (same init)

    def init_state(self, batch_size, device=None, dtype=None) -> LSTMState:
        return zero_state(self.convlstm_list, batch_size, self.feature_size, device, dtype)

    def _step(self, frame, state, context=None, decode=True):
        state = stack_step(self.convlstm_list, self.encoder(frame), state)
        if not decode:
            return None, state
        return self.decoder(self.join(state[0][-1], state[1][-1], context)), state

    def convert_official_state_dict(self, sd: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """The authors' ``Predictor`` keys (``module.`` already stripped) -> ours: the same names.

        Our modules mirror theirs (``encoder``, ``decoder``, ``convlstm_list.i.conv2d_x/h``,
        ``memory.*``, ``attention_func``), so only non-tensor entries are dropped.
        """
        return {k: v for k, v in sd.items() if isinstance(v, torch.Tensor)}


@register_model("convlstm")
def build_convlstm(**config) -> ConvLSTM:
    """``convlstm``: img_size, in_chans, patch_size (4), num_hidden ([128]*4), filter_size (5),
    memory_size (0 = none), slot_dim (512)."""
    return ConvLSTM(**config)


@register_model("lmc-convlstm")
def build_lmc_convlstm(**config) -> LMCConvLSTM:
    """``lmc-convlstm``: img_size, in_chans, memory_size (100; 0 = none), final_sigmoid (False),
    hidden (128), num_layers (4), slot_dim (512). The defaults are the authors' Moving MNIST net."""
    return LMCConvLSTM(**config)
