"""LMC-Memory: the long-term motion-context memory of Lee et al. (CVPR 2021), generalised.

What it computes (one read-out per clip, before the recurrence starts)::

    clip (B, T, C, H, W)
      -> difference frames            (B, T-1, C, H, W)
      -> 3D-conv motion encoder       (B, D, T', H/16, W/16), then mean over T' -> queries (B, D, h, w)
         (phase 1: the *motion-context* encoder on the long clip;
          phase 2: the *motion-matching* encoder on the short input clip)
      -> cosine addressing of ``memory_size`` slots of size D (softmax over slots)
      -> read-out: the softmax-weighted sum of slots, per location   (B, D, h, w)
      -> embedder: transposed convs (x2 each) to the predictor's feature map  (B, C_f, H', W')

``D`` is ``slot_dim`` (512 in the paper); the encoder widths are D/8, D/4, D/2, D, D.

Memory alignment (training, see :mod:`swinlstm.engine.rules`): every iteration first runs
phase 1 (long clip, slots trainable), then phase 2 (short clip, slots frozen), each with its own
optimiser step, so that the matching encoder learns to recall from the short clip the slots the
context encoder wrote from the long one. Inference is phase 2 only: no long clip is needed.

Generalisations beyond the published code (identical numbers at the authors' configurations):

* any number of frame channels (theirs is grey only);
* any frame size: pooling halves a dimension only while it is at least 2 (the authors'
  ``MaxPool3d`` is the same whenever it is defined), and the embedder output is resized
  bilinearly to the requested feature size when the power-of-two arithmetic does not land on it
  (frames that are not multiples of 16);
* short clips: the authors' temporal pooling needs at least 8 difference frames; here time is
  pooled only while T > 1, so 2 frames (1 difference) is enough (TaxiBJ and Human3.6m use 4);
* the read-out can be produced at any ``(C_f, H', W')``: ``out_chans`` and ``feature_stride``
  set the embedder, ``size=`` the exact output size.

How a predictor uses it (``convlstm.MemoryPredictor`` does this for ``convlstm`` and
``lmc-convlstm``; a SwinLSTM does the same on its token grid, a few lines):

1. ``__init__``: ``self.memory = LMCMemory(memory_size, in_chans, out_chans=C_f,
   feature_stride=s)`` and ``self.attention_func = ChannelAttention(C_state, C_f)``;
   the layer that consumes the joined feature takes ``C_h + C_f`` input channels.
2. ``encode_context(frames, long_frames, phase)``: ``return memory_context(self.memory, frames,
   long_frames, phase, size=(H', W'))`` -- the read-out, computed once per clip.
3. each decoded step: ``joined = torch.cat([h, self.attention_func(c, mem)], dim=1)`` where ``c`` is
   the last cell state.

For a SwinLSTM (patch size ``p``, last layer with ``C`` channels on an ``H/p x W/p`` token grid,
``L = H/p * W/p`` tokens): ``LMCMemory(memory_size, in_chans, out_chans=C, feature_stride=p)``,
``ChannelAttention(C, C)``; ``encode_context`` returns
``feature_to_tokens(memory_context(..., size=(H // p, W // p)))`` (B, L, C); at each step
``torch.cat([h, self.attention_func(c, mem)], dim=-1)`` (B, L, 2C) -- ``ChannelAttention`` takes
tokens as they are -- goes into a patch-inflation layer built for ``2C`` input channels.
"""

from __future__ import annotations

import copy
import math
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from swinlstm.errors import ConfigError

from .recurrent import RecurrentPredictor, State

PHASES = (1, 2)


def check_phase(phase: int) -> None:
    """Raise ValueError unless ``phase`` is 1 (long clip, training) or 2 (short clip)."""
    if phase not in PHASES:
        raise ConfigError(
            f"phase must be 1 (long clip through the motion-context encoder, training only) "
            f"or 2 (input clip through the motion-matching encoder), got {phase!r}"
        )


class HalvingMaxPool3d(nn.Module):
    """Max-pool by 2 along every dimension that is at least 2 long (time only if ``pool_time``).

    At sizes where the authors' ``MaxPool3d(kernel=stride=(2|1, 2, 2))`` is defined this is that
    very operation; below (a length of 1) it leaves the dimension as it is instead of failing.
    """

    def __init__(self, pool_time: bool = True) -> None:
        super().__init__()
        self.pool_time = pool_time

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(B, C, T, H, W) -> (B, C, T', H', W'), each halved (floor) when pooled."""
        t, h, w = x.shape[-3:]
        kernel = (2 if self.pool_time and t >= 2 else 1, 2 if h >= 2 else 1, 2 if w >= 2 else 1)
        if kernel == (1, 1, 1):
            return x
        return F.max_pool3d(x, kernel_size=kernel, stride=kernel)

    def extra_repr(self) -> str:
        return f"pool_time={self.pool_time}"


class TimeMean(nn.Module):
    """The mean over time: (B, C, T, H, W) -> (B, C, 1, H, W).

    Eager, this is the authors' ``AdaptiveAvgPool3d((1, None, None))``; while an exporter traces
    it, the same mean as ``x.mean(dim=2)``: the TorchScript ONNX exporter refuses adaptive
    pooling whose output size is not constant, which ``None`` (keep the size) is.
    """

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if torch.jit.is_tracing() or torch.onnx.is_in_onnx_export():
            return x.mean(dim=2, keepdim=True)
        return F.adaptive_avg_pool3d(x, (1, None, None))


def motion_encoder(in_chans: int, slot_dim: int) -> nn.Sequential:
    """The 3D-conv motion encoder: (B, C, T, H, W) -> (B, slot_dim, 1, H/16, W/16).

    Layer indices match the authors' ``nn.Sequential`` (weights at 0, 3, 6, 8, 11, 13).
    """
    if slot_dim % 8:
        raise ConfigError(f"slot_dim must be a multiple of 8, got {slot_dim}")
    w1, w2, w3, w4 = slot_dim // 8, slot_dim // 4, slot_dim // 2, slot_dim

    def conv(cin: int, cout: int) -> nn.Conv3d:
        return nn.Conv3d(cin, cout, kernel_size=3, padding=1)

    return nn.Sequential(
        conv(in_chans, w1), nn.ReLU(), HalvingMaxPool3d(pool_time=False),
        conv(w1, w2), nn.ReLU(), HalvingMaxPool3d(),
        conv(w2, w3), nn.ReLU(), conv(w3, w3), nn.ReLU(), HalvingMaxPool3d(),
        conv(w3, w4), nn.ReLU(), conv(w4, w4), nn.ReLU(), HalvingMaxPool3d(),
        TimeMean(),
    )  # fmt: skip


def memory_embedder(slot_dim: int, out_chans: int, upsample: int) -> nn.Sequential:
    """Transposed convs, each x2 with ReLU, from ``slot_dim`` to ``out_chans`` channels.

    ``upsample`` (a power of two) is the total scale; channels halve each stage down to
    ``out_chans``. ``upsample=1`` is one stride-1 transposed conv. The authors' embedder is
    ``memory_embedder(512, 128, 4)`` (512 -> 256 -> 128).
    """
    if upsample < 1 or upsample & (upsample - 1):
        raise ConfigError(f"upsample must be a power of two >= 1, got {upsample}")
    stages = int(math.log2(upsample))
    layers: list[nn.Module] = []
    if stages == 0:
        return nn.Sequential(nn.ConvTranspose2d(slot_dim, out_chans, 3, 1, 1), nn.ReLU())
    cin = slot_dim
    for i in range(stages):
        cout = out_chans if i == stages - 1 else max(out_chans, slot_dim >> (i + 1))
        layers += [nn.ConvTranspose2d(cin, cout, 3, stride=2, padding=1, output_padding=1)]
        layers += [nn.ReLU()]
        cin = cout
    return nn.Sequential(*layers)


def difference_frames(clip: torch.Tensor) -> torch.Tensor:
    """(B, T, C, H, W) -> (B, T-1, C, H, W): frame t+1 minus frame t."""
    return clip[:, 1:] - clip[:, :-1]


class LMCMemory(nn.Module):
    """Motion encoders, ``memory_size`` x ``slot_dim`` slots, and the embedder.

    Args:
        memory_size: number of slots (> 0).
        in_chans: frame channels.
        out_chans: channels of the read-out handed to the predictor.
        feature_stride: the predictor's feature map is the frame downsampled by this (a power of
            two, at most 16); the embedder upsamples the H/16 queries by ``16 / feature_stride``.
        slot_dim: slot size D (and width of the encoders' last layers).

    Parameter names match the authors' ``Memory`` (``memory_w``, ``motion_matching_encoder``,
    ``motion_context_encoder``, ``embedder``). Both encoders start with the same weights, as theirs.
    """

    query_stride = 16

    def __init__(
        self,
        memory_size: int,
        in_chans: int = 1,
        out_chans: int = 128,
        feature_stride: int = 4,
        slot_dim: int = 512,
    ) -> None:
        super().__init__()
        if memory_size < 1:
            raise ConfigError(f"memory_size must be >= 1 for LMCMemory, got {memory_size}")
        if feature_stride < 1 or self.query_stride % feature_stride:
            raise ConfigError(
                f"feature_stride must divide 16 (1, 2, 4, 8, 16), got {feature_stride}"
            )
        self.memory_size, self.slot_dim, self.out_chans = memory_size, slot_dim, out_chans
        self.motion_matching_encoder = motion_encoder(in_chans, slot_dim)
        self.motion_context_encoder = copy.deepcopy(self.motion_matching_encoder)
        self.embedder = memory_embedder(slot_dim, out_chans, self.query_stride // feature_stride)
        self.memory_w = nn.Parameter(torch.randn(memory_size, slot_dim))

    def query(self, clip: torch.Tensor, phase: int) -> torch.Tensor:
        """(B, T, C, H, W) clip, T >= 2 -> per-location queries (B, D, h, w)."""
        x = difference_frames(clip).transpose(1, 2)  # (B, C, T-1, H, W) for the 3D convs
        encoder = self.motion_context_encoder if phase == 1 else self.motion_matching_encoder
        return encoder(x).squeeze(2)

    def address(self, query: torch.Tensor) -> torch.Tensor:
        """Cosine addressing + read-out: (B, D, h, w) queries -> (B, D, h, w) slot mixtures."""
        b, d, h, w = query.shape
        q = query.permute(0, 2, 3, 1).reshape(-1, d)
        sim = torch.mm(F.normalize(q, dim=1), F.normalize(self.memory_w, dim=1).t())
        read = torch.mm(F.softmax(sim, dim=1), self.memory_w)
        return read.reshape(b, h, w, d).permute(0, 3, 1, 2)

    def forward(
        self, clip: torch.Tensor, phase: int, size: tuple[int, int] | None = None
    ) -> torch.Tensor:
        """The memory feature: (B, T, C, H, W) -> (B, out_chans, H', W').

        ``size=(H', W')`` resizes the embedder output bilinearly when it differs (no-op at the
        authors' sizes); None keeps the embedder's own size.
        """
        check_phase(phase)
        if clip.dim() != 5 or clip.shape[1] < 2:
            raise ConfigError(
                f"the memory needs a (B, T, C, H, W) clip of at least 2 frames (it reads "
                f"difference frames), got shape {tuple(clip.shape)}"
            )
        feature = self.embedder(self.address(self.query(clip, phase)))
        if size is not None and tuple(feature.shape[-2:]) != tuple(size):
            feature = F.interpolate(feature, size=tuple(size), mode="bilinear", align_corners=False)
        return feature


class ChannelAttention(nn.Sequential):
    """Channel attention fusing the memory feature: weights from (cell state, memory feature).

    ``forward(state, memory)`` returns ``memory * w`` with ``w = sigmoid(MLP(avgpool([state,
    memory])))`` one weight per memory channel. Accepts feature maps (B, C, H, W) or tokens
    (B, L, C) (the SwinLSTM layout; the pooling is then the mean over L).
    Layer indices match the authors' ``attention_func`` (Linear at 2 and 4).
    """

    def __init__(self, state_chans: int, memory_chans: int, bottleneck: int = 16) -> None:
        super().__init__(
            nn.AdaptiveAvgPool2d((1, 1)),
            nn.Flatten(),
            nn.Linear(state_chans + memory_chans, bottleneck),
            nn.ReLU(),
            nn.Linear(bottleneck, memory_chans),
            nn.Sigmoid(),
        )

    def weights(self, state: torch.Tensor, memory: torch.Tensor) -> torch.Tensor:
        """(B, C_s, H, W), (B, C_m, H, W) -> (B, C_m) or tokens (B, L_s, C_s), (B, L_m, C_m) -> (B, C_m)."""
        if state.dim() == 4 and memory.dim() == 4:
            pooled = self[1](self[0](torch.cat([state, memory], dim=1)))
        elif state.dim() == 3 and memory.dim() == 3:
            # mean over tokens per input: equal to pooling the concatenation when the token
            # counts agree, and defined when they do not (SwinLSTM-D's last cell is coarser)
            pooled = torch.cat([state.mean(dim=1), memory.mean(dim=1)], dim=1)
        else:
            raise ConfigError(
                "ChannelAttention takes two feature maps (B, C, H, W) or two token tensors "
                f"(B, L, C), got shapes {tuple(state.shape)} and {tuple(memory.shape)}"
            )
        for layer in list(self)[2:]:
            pooled = layer(pooled)
        return pooled

    def forward(self, state: torch.Tensor, memory: torch.Tensor) -> torch.Tensor:  # type: ignore[override]
        """The memory feature weighted per channel, same shape as ``memory``."""
        w = self.weights(state, memory)
        return memory * (w[:, :, None, None] if memory.dim() == 4 else w[:, None, :])


def feature_to_tokens(feature: torch.Tensor) -> torch.Tensor:
    """(B, C, H, W) -> (B, H*W, C), row-major: the token layout of a Swin layer."""
    return feature.flatten(2).transpose(1, 2)


def memory_context(
    memory: LMCMemory | None,
    frames: torch.Tensor,
    long_frames: torch.Tensor | None,
    phase: int,
    size: tuple[int, int] | None = None,
) -> torch.Tensor | None:
    """The per-clip memory feature a predictor's ``encode_context`` returns (None without memory).

    Phase 1 reads ``long_frames`` through the context encoder (ValueError when missing); phase 2
    reads ``frames`` through the matching encoder and ignores ``long_frames``.
    """
    check_phase(phase)
    if memory is None:
        return None
    if phase == 1:
        if long_frames is None:
            raise ConfigError(
                "phase 1 reads the long clip: pass long_frames (B, T_long, C, H, W); "
                "use phase=2 for inference"
            )
        clip = long_frames
    else:
        clip = frames
    if clip.shape[1] < 2:
        which = "long_frames" if phase == 1 else "frames"
        raise ConfigError(
            f"{which} must hold at least 2 frames for the memory (difference frames), "
            f"got T={clip.shape[1]}"
        )
    return memory(clip, phase, size=size)


def check_memory_size(memory_size: int) -> None:
    """Raise ValueError unless ``memory_size`` is an integer >= 0 (0: no memory)."""
    if not isinstance(memory_size, int) or isinstance(memory_size, bool) or memory_size < 0:
        raise ConfigError(
            f"memory_size must be an integer >= 0 (0: no memory), got {memory_size!r}"
        )


@dataclass
class MemoryStreamState:
    """A memory model's streaming state: what :meth:`MemoryPredictor.step` returns.

    ``inner`` is the model's recurrent state (what ``init_state`` makes); ``frames`` (B, T, C, H,
    W), T <= ``stream_context_len``, the last frames streamed without ``feedback``; ``context``
    the memory's read-out of them (reused while outputs are fed back).
    """

    inner: State
    frames: torch.Tensor | None = None
    context: Any = None


class MemoryPredictor(RecurrentPredictor):
    """What every predictor with an (optional) LMC memory shares: the context and the join.

    Subclasses call :meth:`_init_memory` (which sets ``self.memory`` and ``self.attention_func``,
    both None without memory) and set ``self.feature_size`` (H', W'), the size of the feature map
    the read-out joins. The joined feature is ``[h, attention(c, memory)]`` along channels, for
    feature maps (B, C, H', W') and for tokens (B, L, C) alike.
    """

    memory: LMCMemory | None
    attention_func: ChannelAttention | None
    feature_size: tuple[int, int]
    #: frames the memory reads while streaming without a context (the papers' input length;
    #: set it on the model to the input length it was trained with)
    stream_context_len: int = 10

    def _init_memory(
        self,
        memory_size: int,
        chans: int,
        feature_stride: int,
        slot_dim: int,
        state_chans: int | None = None,
    ) -> int:
        """Build the memory for a ``chans``-channel feature map (frame size / ``feature_stride``)
        and its channel attention from a ``state_chans``-channel cell state (default ``chans``);
        returns the channels of the joined map."""
        check_memory_size(memory_size)
        self.memory = self.attention_func = None
        if memory_size == 0:
            return chans
        self.memory = LMCMemory(memory_size, self.in_chans, chans, feature_stride, slot_dim)
        self.attention_func = ChannelAttention(state_chans or chans, chans)
        return 2 * chans

    def encode_context(
        self, frames: torch.Tensor, long_frames: torch.Tensor | None = None, phase: int = 2
    ) -> torch.Tensor | None:
        """The memory feature (B, C_f, H', W') for this clip, or None without memory."""
        check_phase(phase)
        if self.memory is not None and phase == 1 and long_frames is not None:
            self.check_frames(long_frames, name="long_frames")
        return memory_context(self.memory, frames, long_frames, phase, size=self.feature_size)

    def step(
        self, frame: torch.Tensor, state: State, context: Any = None, feedback: bool = False
    ) -> tuple[torch.Tensor, State]:
        """Streaming one frame (B, C, H, W) -> (next frame (B, C, H, W), new state).

        Without memory, or with ``context`` given (``encode_context`` of a clip), this is
        :meth:`RecurrentPredictor.step`. With memory and no ``context``, the memory reads the
        frames streamed so far: the state keeps the last ``stream_context_len`` frames streamed
        with ``feedback=False`` (:class:`MemoryStreamState`), and the read-out is that clip's
        (phase 2); after a single frame, when there is no motion to read yet, it is that frame
        repeated (a still clip). Frames passed with ``feedback=True`` (the model's own outputs)
        are not read: the read-out stays that of the last observed frames. Streaming a clip of
        ``T_in <= stream_context_len`` frames, then feeding each output back with
        ``feedback=True``, therefore gives ``predict``'s forecast exactly; the outputs before
        the last input frame are each read with the frames seen so far, not the whole clip.
        """
        if self.memory is None:
            return super().step(frame, state, context)
        self.check_step_frame(frame)
        stream = state if isinstance(state, MemoryStreamState) else MemoryStreamState(state)
        frames, read = stream.frames, stream.context
        if not feedback:
            keep = self.stream_context_len
            if not isinstance(keep, int) or keep < 1:
                raise ConfigError(f"stream_context_len must be an integer >= 1, got {keep!r}")
            if frames is not None and frames.shape[0] != frame.shape[0]:
                raise ConfigError(
                    f"frame holds a batch of {frame.shape[0]} but the state was streamed with "
                    f"{frames.shape[0]}: start a new state with init_state({frame.shape[0]})"
                )
            frames = frame[:, None] if frames is None else torch.cat([frames, frame[:, None]], 1)
            frames, read = frames[:, -keep:], None
        if context is None:
            if frames is None:
                raise ConfigError(
                    "a memory model's first streamed frame cannot be feedback=True: the memory "
                    "has no observed frame to read yet (or pass context=model.encode_context(clip))"
                )
            if read is None:
                clip = frames if frames.shape[1] >= 2 else frames.expand(-1, 2, -1, -1, -1)
                read = self.encode_context(clip, None, 2)
            context = read
        y, inner = self._step(frame, stream.inner, context, decode=True)
        return y, MemoryStreamState(inner, frames, read)

    def join(self, h: torch.Tensor, c: torch.Tensor, context: torch.Tensor | None) -> torch.Tensor:
        """Top hidden state joined with the attention-weighted memory feature (if any).

        Maps: (B, C, H', W') -> (B, 2C, H', W'); tokens: (B, L, C) -> (B, L, 2C).
        """
        if context is None or self.attention_func is None:
            return h
        return torch.cat([h, self.attention_func(c, context)], dim=1 if h.dim() == 4 else -1)


def feature_stride_for(patch_size: int) -> int:
    """The embedder stride for a predictor whose features are the frame / ``patch_size``: the
    largest power of two <= ``patch_size`` that divides 16 (the read-out is then resized)."""
    stride = 1
    while stride * 2 <= min(patch_size, LMCMemory.query_stride):
        stride *= 2
    return stride


__all__ = [
    "ChannelAttention",
    "MemoryPredictor",
    "MemoryStreamState",
    "check_memory_size",
    "feature_stride_for",
    "HalvingMaxPool3d",
    "TimeMean",
    "LMCMemory",
    "check_phase",
    "difference_frames",
    "feature_to_tokens",
    "memory_context",
    "memory_embedder",
    "motion_encoder",
]
