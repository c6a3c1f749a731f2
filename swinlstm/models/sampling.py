"""Scheduled sampling: run any :class:`RecurrentPredictor` with true frames fed back at random.

The probability schedule over iterations (a training rule) is
:func:`swinlstm.engine.rules.teacher_prob`; this module only runs the network with a given
probability, so ConvLSTM's ``forward(..., teacher_frames=, teacher_prob=)`` can offer it.
"""

from __future__ import annotations

import torch

from swinlstm.errors import ConfigError

from .recurrent import RecurrentPredictor


def scheduled_sampling_forward(
    model: RecurrentPredictor,
    frames: torch.Tensor,
    out_len: int,
    teacher_frames: torch.Tensor,
    teacher_prob: float,
    long_frames: torch.Tensor | None = None,
    phase: int = 2,
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    """``model.forward`` where forecast step k >= 1 is fed ``teacher_frames[:, k-1]`` (the true
    frame) instead of the model's own output, with probability ``teacher_prob`` per sequence.

    ``teacher_frames``: (B, >= out_len - 1, C, H, W), the frames after the input. With
    ``teacher_prob=0`` this is exactly ``model.forward``. Same output shape as ``forward``.
    """
    model.check_frames(frames)
    if not isinstance(out_len, int) or out_len < 1:
        raise ConfigError(f"out_len must be an integer >= 1, got {out_len!r}")
    model.check_frames(teacher_frames, name="teacher_frames")
    if teacher_frames.shape[0] != frames.shape[0] or teacher_frames.shape[1] < out_len - 1:
        raise ConfigError(
            f"teacher_frames must be (B={frames.shape[0]}, >= out_len - 1 = {out_len - 1}, C, H, W), "
            f"got {tuple(teacher_frames.shape)}"
        )
    if not 0.0 <= teacher_prob <= 1.0:
        raise ConfigError(f"teacher_prob must be in [0, 1], got {teacher_prob}")
    return RecurrentPredictor.forward(
        _TeacherForced(model, frames.shape[1], teacher_frames, teacher_prob, generator),
        frames,
        out_len,
        long_frames=long_frames,
        phase=phase,
    )


class _TeacherForced:
    """``model`` seen by the shared recurrence with its input mixed at forecast steps k >= 1.

    Everything but ``_step`` (and the call count of ``_input_steps``) is the model's own, so the recurrence is the one of
    :class:`RecurrentPredictor` (a proxy, the model itself is not changed); the model's
    ``_whole_forward`` would skip the mixed steps, so the proxy has none.
    """

    def __init__(self, model, t_in, teacher_frames, prob, generator) -> None:
        self._model, self._t_in, self._teacher, self._prob = model, t_in, teacher_frames, prob
        self._generator, self._calls = generator, 0

    def __getattr__(self, name: str):
        return getattr(self._model, name)

    def _whole_forward(self, *args, **kwargs) -> None:
        return None  # step by step: the recurrence must reach _step

    def _input_steps(self, frames, state, context=None, decode=True):
        self._calls += frames.shape[1]  # the input frames are never mixed
        return self._model._input_steps(frames, state, context, decode)

    def _step(self, frame, state, context=None, decode=True):
        k = self._calls - self._t_in + 1  # forecast step fed by this call (0: last input frame)
        self._calls += 1
        if k >= 1:
            b = frame.shape[0]
            use_true = torch.rand(b, generator=self._generator) < self._prob
            mask = use_true.to(frame.device, frame.dtype).view(b, 1, 1, 1)
            frame = mask * self._teacher[:, k - 1] + (1 - mask) * frame
        return self._model._step(frame, state, context, decode)


__all__ = ["scheduled_sampling_forward"]
