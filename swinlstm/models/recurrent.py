"""The one recurrence every predictor shares.

A predictor is fed frames one at a time. Over an input clip of ``T_in`` frames it is fed
frames ``0 .. T_in-2`` (each output predicts the next input frame), then the last input frame,
then each of its own outputs, ``out_len`` steps in all. This is the authors' recurrence for
SwinLSTM (``functions.py``) and, step for step, LMC-Memory's (``model.py``).

Subclasses implement only what differs between models:

* ``init_state(batch_size, device, dtype)`` -> the state before the first frame (zeros);
* ``_step(frame, state, context, decode)`` -> ``(next_frame or None, state)``, one recurrent step;
* optionally ``_input_steps(frames, state, context, decode)``: the teacher-forced steps at once
  (by default ``_step`` over each frame);
* optionally ``encode_context(frames, long_frames, phase)`` -> a per-clip context (the
  LMC-Memory read-out) that every step sees. Models without memory return ``None``;
* optionally ``_whole_forward(frames, out_len, long_frames, phase)``: ``forward``'s result
  computed at once (SwinLSTM's compiled graph of the whole recurrence), or None (the default)
  for the shared recurrence.

:meth:`RecurrentPredictor.forecast` runs the same recurrence (:func:`recurrence`) and yields the
forecast frames one at a time, as they come (streaming).

``forecast_only = True`` marks models whose forward returns only the ``out_len`` forecast frames
(LMC-Memory's training loss uses only those); otherwise forward returns all ``T_in - 1 + out_len``
outputs, the SwinLSTM paper's loss target.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import torch
from torch import nn

from swinlstm.errors import ConfigError

State = Any


class RecurrentPredictor(nn.Module):
    """Base class of every frame predictor: ``forward``, ``predict``, ``forecast``,
    ``init_state``, ``step``.

    Shapes: frames are ``(B, T, C, H, W)`` float tensors in [0, 1]; one frame is ``(B, C, H, W)``.
    Subclasses set ``self.in_chans`` and ``self.img_size`` (``(H, W)``) in ``__init__``.
    """

    forecast_only: bool = False
    in_chans: int
    img_size: tuple[int, int]

    # ----- what subclasses implement -------------------------------------------------------
    def init_state(
        self,
        batch_size: int,
        device: torch.device | str | None = None,
        dtype: torch.dtype | None = None,
    ) -> State:
        """The recurrent state before the first frame, for ``batch_size`` sequences."""
        raise NotImplementedError

    def _step(
        self, frame: torch.Tensor, state: State, context: Any = None, decode: bool = True
    ) -> tuple[torch.Tensor | None, State]:
        """One step: ``frame`` (B, C, H, W) -> (next frame (B, C, H, W) or None, new state).

        ``decode=False`` lets a model skip producing a frame nobody will use.
        """
        raise NotImplementedError

    def encode_context(
        self, frames: torch.Tensor, long_frames: torch.Tensor | None = None, phase: int = 2
    ) -> Any:
        """Per-clip context read once before the recurrence (memory models); None otherwise."""
        return None

    def _input_steps(
        self, frames: torch.Tensor, state: State, context: Any = None, decode: bool = True
    ) -> tuple[list[torch.Tensor], State]:
        """The teacher-forced steps: ``_step`` over each frame of ``frames`` (B, T, C, H, W) in
        turn -> (the T next frames (B, C, H, W) if ``decode``, else [], new state).

        A model may override it to run once over all T frames what the recurrence does not need
        step by step (SwinLSTM embeds all frames in one call and decodes after the loop); the
        result must equal the loop's.
        """
        outputs = []
        for t in range(frames.shape[1]):
            y, state = self._step(frames[:, t], state, context, decode=decode)
            if decode and y is not None:
                outputs.append(y)
        return outputs, state

    # ----- the shared recurrence ------------------------------------------------------------
    def check_frames(self, frames: torch.Tensor, name: str = "frames") -> None:
        """Raise ValueError unless ``frames`` is (B, T, C, H, W) with this model's C, H, W."""
        if not isinstance(frames, torch.Tensor) or frames.dim() != 5:
            shape = tuple(frames.shape) if isinstance(frames, torch.Tensor) else type(frames)
            raise ConfigError(f"{name} must be a (B, T, C, H, W) tensor, got shape {shape}")
        _, t, c, h, w = frames.shape
        if t < 1:
            raise ConfigError(f"{name} must hold at least 1 frame, got T={t}")
        if c != self.in_chans:
            raise ConfigError(
                f"{name} has {c} channels but the model expects in_chans={self.in_chans}"
            )
        if (h, w) != tuple(self.img_size):
            raise ConfigError(
                f"{name} are {h}x{w} but the model was built for img_size={tuple(self.img_size)} (H, W)"
            )

    def forward(
        self,
        frames: torch.Tensor,
        out_len: int,
        long_frames: torch.Tensor | None = None,
        phase: int = 2,
    ) -> torch.Tensor:
        """Run the recurrence over ``frames`` (B, T_in, C, H, W) and ``out_len`` forecast steps.

        Returns (B, T_in - 1 + out_len, C, H, W): the predictions of frames 1 .. T_in - 1 + out_len
        of the clip, or (B, out_len, C, H, W) when ``forecast_only``.
        """
        self._check_call(frames, out_len)
        whole = self._whole_forward(frames, out_len, long_frames, phase)
        if whole is not None:
            return whole
        outputs = recurrence(self, frames, out_len, long_frames, phase, with_inputs=True)
        return torch.stack(list(outputs), dim=1)

    def _whole_forward(
        self, frames: torch.Tensor, out_len: int, long_frames: torch.Tensor | None, phase: int
    ) -> torch.Tensor | None:
        """``forward``'s output (its arguments, checked) computed at once, equal to the
        recurrence's; None (here) to run the recurrence step by step."""
        return None

    def forecast(
        self,
        frames: torch.Tensor,
        out_len: int,
        long_frames: torch.Tensor | None = None,
        phase: int = 2,
    ) -> Iterator[torch.Tensor]:
        """Streaming: yield the ``out_len`` forecast frames (B, C, H, W) one at a time, each as
        soon as it is computed, after ``frames`` (B, T_in, C, H, W).

        The same recurrence as :meth:`forward` (the input frames are not decoded): stacked, the
        frames are :meth:`predict`'s forecast.
        """
        self._check_call(frames, out_len)
        return recurrence(self, frames, out_len, long_frames, phase, with_inputs=False)

    def _check_call(self, frames: torch.Tensor, out_len: int) -> None:
        self.check_frames(frames)
        if not isinstance(out_len, int) or out_len < 1:
            raise ConfigError(f"out_len must be an integer >= 1, got {out_len!r}")

    def predict(
        self,
        frames: torch.Tensor,
        out_len: int,
        long_frames: torch.Tensor | None = None,
        phase: int = 2,
    ) -> torch.Tensor:
        """The forecast only: (B, T_in, C, H, W) -> (B, out_len, C, H, W)."""
        return self.forward(frames, out_len, long_frames=long_frames, phase=phase)[:, -out_len:]

    def step(
        self, frame: torch.Tensor, state: State, context: Any = None, feedback: bool = False
    ) -> tuple[torch.Tensor, State]:
        """Streaming: feed one frame (B, C, H, W), get the next frame and the new state.

        ``state`` is what :meth:`init_state` or the previous ``step`` returned. Feeding a clip
        frame by frame, then each output back, equals ``forward``. ``feedback=True`` marks a
        frame as the model's own output fed back; only memory models use it (see
        :meth:`swinlstm.models.memory.MemoryPredictor.step`).
        """
        self.check_step_frame(frame)
        y, state = self._step(frame, state, context, decode=True)
        return y, state

    def check_step_frame(self, frame: torch.Tensor) -> None:
        """Raise ValueError unless ``frame`` is one (B, C, H, W) frame of this model's C, H, W."""
        if not isinstance(frame, torch.Tensor) or frame.dim() != 4:
            shape = tuple(frame.shape) if isinstance(frame, torch.Tensor) else type(frame)
            raise ConfigError(f"step takes one frame (B, C, H, W), got shape {shape}")
        self.check_frames(frame.unsqueeze(1), name="frame")


def recurrence(
    model: RecurrentPredictor,
    frames: torch.Tensor,
    out_len: int,
    long_frames: torch.Tensor | None,
    phase: int,
    with_inputs: bool,
) -> Iterator[torch.Tensor]:
    """The recurrence: teacher forcing over ``frames`` (B, T_in, C, H, W), then ``out_len``
    steps fed their own output; yields each output frame (B, C, H, W) as it comes.

    ``with_inputs``: the outputs of the input steps too (decoded unless ``forecast_only``);
    otherwise they are neither decoded nor yielded. ``model`` is what provides ``_step``,
    ``init_state`` and ``encode_context``: a predictor, or a proxy of one that changes its
    steps' inputs (scheduled sampling, :mod:`swinlstm.models.sampling`).
    """
    decode_inputs = with_inputs and not model.forecast_only
    context = model.encode_context(frames, long_frames, phase)
    state = model.init_state(frames.shape[0], device=frames.device, dtype=frames.dtype)
    outputs, state = model._input_steps(frames[:, :-1], state, context, decode=decode_inputs)
    yield from outputs
    x = frames[:, -1]
    for _ in range(out_len):
        x, state = model._step(x, state, context, decode=True)
        yield x
