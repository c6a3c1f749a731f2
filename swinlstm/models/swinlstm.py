"""SwinLSTM-B and SwinLSTM-D (Tang et al., ICCV 2023) as :class:`RecurrentPredictor`s.

The networks compute what the authors' ``SwinLSTM_B.py`` / ``SwinLSTM_D.py`` compute (their
published weights load through :func:`swinlstm.models.load_official`), and beyond them accept
any frame shape (padded to what patching and windows need, cropped back), patch sizes other than
2, any channel count, activation checkpointing and ``torch.compile``.

SwinLSTM with LMC-Memory (``memory_size > 0``; no published code has it): the memory of
:mod:`swinlstm.models.memory` reads the clip once (phase 2: the input clip; phase 1 in training:
the long clip), and its read-out is brought to the first level's token grid (frame / patch,
``embed_dim`` channels, in window order). At every decoded step the last cell's state ``c``
weights the read-out's channels (the same channel attention as LMC-Memory's), and the weighted
read-out is concatenated with the last tokens before patch inflation, which therefore takes
``2 * embed_dim`` channels. SwinLSTM-D's last cell sits one level deeper (``2 * embed_dim``
channels on a coarser grid): the attention pools each input over its own tokens, so the sizes
need not agree. Training uses the same two-phase memory alignment as LMC-Memory
(:func:`swinlstm.engine.rules.memory_alignment_step`).

Layout: tokens are ``(B, L, C)`` in window order (see :mod:`swinlstm.models.layers`), the
recurrent state is one ``(h, c)`` pair of such tensors per cell.
"""

from __future__ import annotations

import functools
import inspect
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, NamedTuple

import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.checkpoint import checkpoint

from swinlstm.errors import ConfigError
from swinlstm.helpers import as_hw

from . import register_model
from .chunked import CPU_PLAIN_MAX_WIDTH, use_chunked
from .layers import (
    PatchEmbed,
    PatchExpanding,
    PatchInflate,
    PatchMerging,
    SwinBlock,
    WindowLayout,
    inverse_permutation,
    lstm_gates,
)
from .memory import MemoryPredictor, check_memory_size, feature_stride_for


# ----------------------------------------------------------------------------------------------
# The cell
# ----------------------------------------------------------------------------------------------
class SwinLSTMCell(nn.Module):
    """F = SwinBlocks(x_t, h_{t-1}); gate = sigmoid(F); c = gate (c + tanh F); h = gate tanh c.

    Block 0 mixes h_{t-1} into x_t; every later even block mixes x_t in again; odd blocks
    attend in shifted windows. ``forward(x, h, c, masks)`` with x, h, c (B, L, dim) and
    ``masks`` the cell's :class:`CellMasks` -> (h, c).
    """

    def __init__(
        self,
        dim: int,
        layout: WindowLayout,
        depth: int,
        num_heads: int,
        mlp_ratio: float,
        drop: float,
        attn_drop: float,
        drop_path: Sequence[float],
    ):
        super().__init__()
        self.layout = layout
        self.blocks = nn.ModuleList(
            SwinBlock(
                dim,
                layout,
                num_heads,
                shifted=j % 2 == 1,
                mix=j % 2 == 0,
                mlp_ratio=mlp_ratio,
                drop=drop,
                attn_drop=attn_drop,
                drop_path=drop_path[j],
            )
            for j in range(depth)
        )
        if layout.shifted:
            shift_index = layout.shift_index()
            unshift_index = inverse_permutation(shift_index)
            self.register_buffer("shift_index", shift_index, persistent=False)
            self.register_buffer("unshift_index", unshift_index, persistent=False)
            self.register_buffer("shift_mask", layout.shift_mask(), persistent=False)
        else:
            self.shift_index = self.unshift_index = self.shift_mask = None

    def attention_masks(self, dtype: torch.dtype, batch_size: int = 1) -> list[torch.Tensor]:
        """Each block's additive attention mask (relative-position bias + shift mask)."""
        return [blk.attn.attention_mask(self.shift_mask, dtype, batch_size) for blk in self.blocks]

    def forward(
        self,
        x: torch.Tensor,
        h: torch.Tensor,
        c: torch.Tensor,
        masks: CellMasks,
        premixed: Sequence[torch.Tensor | None] | None = None,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """``premixed`` (plain layers): :meth:`premix` of this step's x, computed ahead."""
        # Under autocast the matmuls run in low precision; the residual stream, gates and states
        # stay in the state's dtype (the frames' dtype), which keeps bf16 within 1e-2 of fp32.
        f = x = x.to(h.dtype)
        for j, blk in enumerate(self.blocks):
            inject = h if j == 0 else (x if j % 2 == 0 else None)
            known = None
            if premixed is not None and premixed[j] is not None:
                known = (0, premixed[j]) if j == 0 else (1, premixed[j])
                inject = h if j == 0 else None
            f = blk(
                f, masks.blocks[j], inject, self.shift_index, self.unshift_index, masks.chunked,
                known,
            )  # fmt: skip
        return lstm_gates(f, c, lean=masks.chunked)

    def premix(self, x: torch.Tensor) -> list[torch.Tensor | None]:
        """Each block's part of its mixing from the cell input x (..., L, dim), any number of
        steps at once: block 0 mixes x as its first input, later even blocks as their second;
        None for blocks that do not mix."""
        return [
            None if blk.red is None else blk.premix(x, 0 if j == 0 else 1)
            for j, blk in enumerate(self.blocks)
        ]


# ----------------------------------------------------------------------------------------------
# State and the per-forward mask cache
# ----------------------------------------------------------------------------------------------
class CellMasks(NamedTuple):
    """One cell's attention masks for a step, laid out for the kernel they serve: ``chunked``
    (:func:`~swinlstm.models.chunked.use_chunked`'s answer for this step) masks have batch size
    1, the plain layers' are repeated over the batch."""

    blocks: tuple[torch.Tensor, ...]  # one per block, (B * nW or nW or 1, heads, N, N)
    chunked: bool


class AttentionMaskCache:
    """Every block's attention mask, computed once and reused by all later time steps.

    Keyed by (dtype, batch size, kernel, grad mode, inference mode, versions of the bias tables,
    device): an optimiser step between two streaming steps, or switching autocast, rebuilds the
    masks; nothing else does. One lives in each recurrent state, so a forward pass builds the
    masks once.
    """

    def __init__(self) -> None:
        self._key: tuple | None = None
        self._masks: list[CellMasks] = []

    def get(
        self, cells: Sequence[SwinLSTMCell], dtype: torch.dtype, batch_size: int, chunked: bool
    ) -> list[CellMasks]:
        tables = [blk.attn.relative_position_bias_table for cell in cells for blk in cell.blocks]
        batch_size = 1 if chunked else batch_size
        key = (
            dtype,
            batch_size,
            chunked,
            torch.is_grad_enabled(),
            torch.is_inference_mode_enabled(),
            tuple(t._version for t in tables),
            tables[0].device if tables else None,
        )
        if key != self._key:
            self._masks = [
                CellMasks(tuple(cell.attention_masks(dtype, batch_size)), chunked) for cell in cells
            ]
            self._key = key
        return self._masks


@dataclass
class SwinLSTMState:
    """Recurrent state: ``hidden[i] = (h, c)`` of cell i, each (B, L_i, C_i) in window order."""

    hidden: list[tuple[torch.Tensor, torch.Tensor]]
    masks: AttentionMaskCache = field(default_factory=AttentionMaskCache)


# ----------------------------------------------------------------------------------------------
# Shared network logic
# ----------------------------------------------------------------------------------------------
def _positive_ints(value: Sequence[int], name: str) -> list[int]:
    value = [value] if isinstance(value, int) else list(value)
    if not value or not all(isinstance(v, int) and v >= 1 for v in value):
        raise ConfigError(f"{name} must be a non-empty list of positive ints, got {value!r}")
    return value


def _check_rate(value: float, name: str) -> float:
    if not 0.0 <= float(value) < 1.0:
        raise ConfigError(f"{name} must be in [0, 1), got {value!r}")
    return float(value)


def padded_grid(size: int, patch: int, window: int, levels: int) -> int:
    """Smallest token-grid length >= ceil(size / patch) that every level can partition.

    Level i (0..levels) has length g / 2**i, which must be an integer and either fit in one
    window or be a multiple of the window (what the authors' code needs).
    """
    g = -(-size // patch)
    while True:
        if g % (2**levels) == 0 and all(
            (g >> i) <= window or (g >> i) % window == 0 for i in range(levels + 1)
        ):
            return g
        g += 1


#: the most blocks (all cells together) of a network whose compiled ``forward`` is one graph
#: (:meth:`SwinLSTMBase.compiles_sequence`)
SEQUENCE_MAX_BLOCKS = 4


class SwinLSTMBase(MemoryPredictor):
    """What SwinLSTM-B and -D share: config checks, padding, state, masks, checkpoint, compile.

    Subclasses build ``self.patch_embed``, ``self.inflate`` and the cells (``self.cells()``
    lists them in state order) and implement ``_tokens_step(tokens, hidden, masks)``.

    ``chunked`` is the one switch between the blocks' kernels: None (default) lets
    :func:`~swinlstm.models.chunked.use_chunked` decide at each step (see :meth:`uses_chunked`),
    True / False forces the chunked kernel / the plain layers.
    """

    chunked: bool | None = None

    #: the authors' key prefixes -> ours (see :meth:`convert_official_state_dict`)
    official_prefixes: dict[str, str] = {}
    #: the authors' parameters our network does not build (never used by their forward)
    official_unused: tuple[str, ...] = ()

    def __init__(
        self,
        img_size: int | tuple[int, int] = 64,
        patch_size: int = 2,
        in_chans: int = 1,
        embed_dim: int = 128,
        num_heads: Sequence[int] = (4, 8),
        window_size: int = 4,
        mlp_ratio: float = 4.0,
        drop_rate: float = 0.0,
        attn_drop_rate: float = 0.0,
        drop_path_rate: float = 0.1,
        checkpointing: bool = False,
        compile: bool = False,
        memory_size: int = 0,
        slot_dim: int = 512,
        *,
        levels: int,
    ) -> None:
        """Options every SwinLSTM shares (defaults: the authors' Moving MNIST configuration).

        ``levels`` is the number of patch merges (0 for -B); the frame is padded so that every
        level's token grid is even and fits the windows, and outputs are cropped back.
        """
        super().__init__()
        self.img_size = as_hw(img_size, "img_size")
        for name, v in (
            ("patch_size", patch_size),
            ("in_chans", in_chans),
            ("embed_dim", embed_dim),
            ("window_size", window_size),
        ):
            if not isinstance(v, int) or v < 1:
                raise ConfigError(f"{name} must be a positive int, got {v!r}")
        if not mlp_ratio > 0:
            raise ConfigError(f"mlp_ratio must be > 0, got {mlp_ratio!r}")
        check_memory_size(memory_size)
        self.num_heads = _positive_ints(num_heads, "num_heads")
        self.patch_size = patch_size
        self.in_chans = in_chans
        self.embed_dim = embed_dim
        self.window_size = window_size
        self.mlp_ratio = float(mlp_ratio)
        self.drop_rate = _check_rate(drop_rate, "drop_rate")
        self.attn_drop_rate = _check_rate(attn_drop_rate, "attn_drop_rate")
        self.drop_path_rate = _check_rate(drop_path_rate, "drop_path_rate")
        self.checkpointing = bool(checkpointing)
        if not isinstance(compile, bool):  # ``auto`` is swinlstm train's to decide
            raise ConfigError(f"compile must be True or False, got {compile!r}")
        self.compile = compile
        self.memory_size = memory_size
        self.slot_dim = slot_dim
        grid = tuple(padded_grid(n, patch_size, window_size, levels) for n in self.img_size)
        self.grid = grid
        self.padded_size = (grid[0] * patch_size, grid[1] * patch_size)
        self.feature_size = grid  # where the memory read-out joins: the first level's tokens

    def _init_memory_for(self, state_chans: int) -> int:
        """The LMC memory on the first level's token grid (none when ``memory_size`` is 0);
        returns the channels patch inflation takes (``embed_dim``, doubled with memory)."""
        stride = feature_stride_for(self.patch_size)
        return self._init_memory(
            self.memory_size, self.embed_dim, stride, self.slot_dim, state_chans=state_chans
        )

    def encode_context(self, frames, long_frames=None, phase: int = 2):
        """The memory read-out as first-level tokens (B, L, embed_dim) in window order, or None."""
        feature = super().encode_context(frames, long_frames, phase)
        if feature is None:
            return None
        return self.layout(0).partition(feature.permute(2, 3, 0, 1)).permute(1, 0, 2)

    def layout(self, level: int) -> WindowLayout:
        """Window layout of the token grid after ``level`` patch merges."""
        return WindowLayout.build((self.grid[0] >> level, self.grid[1] >> level), self.window_size)

    def cells(self) -> list[SwinLSTMCell]:
        raise NotImplementedError

    # ----- state ---------------------------------------------------------------------------
    def init_state(self, batch_size, device=None, dtype=None) -> SwinLSTMState:
        """Zero (h, c) for every cell, plus an empty attention-mask cache."""
        if device is None or dtype is None:
            ref = self.patch_embed.proj.weight
            device = ref.device if device is None else device
            dtype = ref.dtype if dtype is None else dtype
        hidden = []
        for cell in self.cells():
            length = cell.layout.grid[0] * cell.layout.grid[1]
            dim = cell.blocks[0].norm1.normalized_shape[0]
            zeros = torch.zeros(batch_size, length, dim, device=device, dtype=dtype)
            hidden.append((zeros, torch.zeros_like(zeros)))  # apart: one compiled graph
        return SwinLSTMState(hidden)

    # ----- one step ------------------------------------------------------------------------
    def _masks(self, state: SwinLSTMState, frame: torch.Tensor) -> list[CellMasks]:
        """Every cell's attention masks for a step on ``frame`` (B, C, H, W), from the state's
        cache: its compute dtype, batch size and kernel (:meth:`uses_chunked`)."""
        dtype, chunked = self._compute_dtype(frame), self.uses_chunked(frame)
        return state.masks.get(self.cells(), dtype, frame.shape[0], chunked)

    def _step(self, frame, state: SwinLSTMState, context: Any = None, decode: bool = True):
        masks = self._masks(state, frame)
        y, hidden = self._core(frame, state.hidden, masks, context, decode)
        return y, SwinLSTMState(hidden, state.masks)

    @staticmethod
    def _compute_dtype(frame: torch.Tensor) -> torch.dtype:
        """The dtype the blocks compute in for ``frame``: autocast's, else the frame's."""
        device = frame.device.type
        if torch.is_autocast_enabled(device):
            return torch.get_autocast_dtype(device)
        return frame.dtype

    def uses_chunked(self, frame: torch.Tensor) -> bool:
        """Whether this step's blocks run the chunked kernel: :attr:`chunked` if set, else
        :func:`~swinlstm.models.chunked.use_chunked` for ``frame`` (dropout active in training,
        ``compile``, the width ``embed_dim``)."""
        if self.chunked is not None:
            return bool(self.chunked)
        dropout = self.training and (self.drop_rate > 0 or self.attn_drop_rate > 0)
        return use_chunked(frame, dropout=dropout, compiled=self.compile, width=self.embed_dim)

    def _compiled(self, fn):
        """``fn`` (a method of pure tensor code) under ``torch.compile`` for this instance, made
        on first use (kept out of pickles/copies)."""
        cache = self.__dict__.setdefault("_compiled_fns", {})
        if fn.__name__ not in cache:
            device = self.patch_embed.proj.weight.device
            options = compile_options(device)
            cache[fn.__name__] = _cacheable(torch.compile(fn, dynamic=False, options=options))
        return cache[fn.__name__]

    def unrolls_input_steps(self) -> bool:
        """With ``compile``: whether the teacher-forced steps compile as one unrolled graph
        (:meth:`_teacher_forced`) rather than one compiled call of the cells per step.

        Yes for networks at most :data:`~swinlstm.models.chunked.CPU_PLAIN_MAX_WIDTH` (64)
        channels wide, where the per-call costs of many small steps are worth removing (B small,
        B wide, D small: inference 7-10 % faster, training 3-5 %); no at the paper's widths, where
        the unrolled graph (9 steps x 12-16 blocks) compiles for minutes (paper SwinLSTM-B into an
        empty cache: 142 + 393 s for inference + training, against 52 + 127 s per step; -D 214 +
        534 s against 92 + 202 s) and its training step was no faster (B 1.12x against 1.13x the
        authors', D 1.07x both ways; docs/benchmarks.md, "Compiling at the paper's sizes").
        """
        return self.embed_dim <= CPU_PLAIN_MAX_WIDTH

    def compiles_sequence(self) -> bool:
        """With ``compile``: whether ``forward`` compiles the whole recurrence, teacher-forced and
        fed-back steps, as one graph (:meth:`_sequence`).

        Yes where the teacher-forced steps unroll (:meth:`unrolls_input_steps`) and the cells
        hold at most :data:`SEQUENCE_MAX_BLOCKS` blocks in all. Measured against the unrolled
        teacher-forced graph plus one compiled call per fed-back step (docs/benchmarks.md, "One
        graph for the whole sequence"): B small (2 blocks) infers 9-10 % faster and, without
        random draws, trains 3 % faster, for 170 s of compiling into an empty cache; D small
        (8 blocks) trained no faster and took 14.5 minutes to compile.

        Not in training with dropout or stochastic depth: there the one graph's gradients were
        up to 0.4 % off the eager model's (outputs equal; without draws, equal to 1e-6), through
        Inductor's in-place buffer reuse (``inplace_buffers`` off, they agree, but the step was
        no faster than the pieces'), so those steps keep the pieces.
        """
        blocks = sum(len(cell.blocks) for cell in self.cells())
        rates = (self.drop_path_rate, self.drop_rate, self.attn_drop_rate)
        draws = self.training and any(rate > 0 for rate in rates)
        return self.unrolls_input_steps() and blocks <= SEQUENCE_MAX_BLOCKS and not draws

    def _cells_step(self):
        """:meth:`_tokens_step` (the cells of one step: pure tensor code), or with ``compile``
        its compiled form (not inside a graph being compiled: there the plain code is traced)."""
        if self.compile and not torch.compiler.is_compiling():
            return self._compiled(self._tokens_step)
        return self._tokens_step

    def __getstate__(self):
        state = dict(super().__getstate__())
        state.pop("_compiled_fns", None)  # bound to this instance; rebuilt lazily
        return state

    def _whole_forward(self, frames, out_len, long_frames, phase):
        """With ``compile`` on a network that :meth:`compiles_sequence` (and at least 2 input
        frames): ``forward``'s whole recurrence as one compiled graph (:meth:`_sequence`), the
        same numbers; else None (the shared recurrence runs)."""
        if not (self.compile and self.compiles_sequence() and frames.shape[1] >= 2):
            return None
        context = self.encode_context(frames, long_frames, phase)
        state = self.init_state(frames.shape[0], device=frames.device, dtype=frames.dtype)
        masks = self._masks(state, frames[:, 0])
        return self._compiled(self._sequence)(frames, out_len, state.hidden, masks, context)

    def _sequence(self, frames, out_len: int, hidden, masks, context) -> torch.Tensor:
        """The recurrence of :func:`~swinlstm.models.recurrent.recurrence` as pure tensor code:
        the teacher-forced steps over frames 0 .. T-2 (:meth:`_teacher_forced`), then ``out_len``
        steps from the last frame, each fed its own output (:meth:`_pixels_step`).
        (B, T, C, H, W) frames -> (B, T - 1 + out_len, C, H, W)."""
        b, t = frames.shape[:2]
        inputs, hidden = self._teacher_forced(frames[:, :-1], hidden, masks, context, True)
        outputs = list(inputs.view(t - 1, b, *frames.shape[2:]).unbind(0))
        x = frames[:, -1]
        for _ in range(out_len):
            x, hidden = self._pixels_step(x, hidden, masks, context)
            outputs.append(x)
        return torch.stack(outputs, dim=1)

    def _core(self, frame, hidden, masks, context, decode):
        """Pixels -> tokens -> cells -> (memory join) -> pixels (:meth:`_pixels_step`; with
        ``compile``, compiled as a whole), or without ``decode`` the cells alone."""
        if decode:
            step = self._compiled(self._pixels_step) if self.compile else self._pixels_step
            return step(frame, hidden, masks, context)
        return None, self._cells_step()(self._embed(frame), hidden, masks)[1]

    def _pixels_step(self, frame, hidden, masks, context):
        """One whole step as pure tensor code: (next frame, new hidden)."""
        tokens, hidden = self._tokens_step(self._embed(frame), hidden, masks)
        return self._decode(self.join(tokens, hidden[-1][1], context), frame.dtype), hidden

    def _input_steps(self, frames, state: SwinLSTMState, context: Any = None, decode: bool = True):
        """The teacher-forced steps with the per-frame work batched (:meth:`_teacher_forced`);
        with ``compile``, all of them compiled as one graph where :meth:`unrolls_input_steps`,
        else each step's cells compiled (:meth:`_cells_step`)."""
        t = frames.shape[1]
        if t < 2:
            return super()._input_steps(frames, state, context, decode)
        masks = self._masks(state, frames[:, 0])
        run = self._teacher_forced
        if self.compile and self.unrolls_input_steps():
            run = self._compiled(self._teacher_forced)
        outputs, hidden = run(frames, state.hidden, masks, context, decode)
        state = SwinLSTMState(hidden, state.masks)
        if not decode:
            return [], state
        return list(outputs.view(t, frames.shape[0], *frames.shape[2:])), state

    def _teacher_forced(self, frames, hidden, masks, context, decode):
        """The T teacher-forced steps over ``frames`` (B, T, C, H, W) as pure tensor code, the
        per-frame work done once for all of them: the frames are embedded in one call, the
        first cell's mixing of them (the x-half of ``red(cat(norm1(x), norm1(h)))``,
        :meth:`SwinLSTMCell.premix`) is one matmul per mixing block on the plain layers, and
        their outputs are decoded in one call after the loop (none of this is fed back).
        Returns (the T * B decoded frames (T * B, C, H, W) or None, new hidden)."""
        b, t = frames.shape[:2]
        tokens = self._embed(frames.transpose(0, 1).reshape(t * b, *frames.shape[2:]))
        tokens = tokens.view(t, b, *tokens.shape[1:])
        # the first cell's mixing of its input, for all steps in one matmul per mixing block
        pre = None if masks[0].chunked else self.cells()[0].premix(tokens)
        if pre is not None:  # unbind, not index: one backward (a stack), not one zeroed
            pre = [None if p is None else p.unbind(0) for p in pre]  # (T, ...) buffer per step
        tops, step = [], self._cells_step()
        for i, x in enumerate(tokens.unbind(0)):
            premixed = None if pre is None else [None if p is None else p[i] for p in pre]
            top, hidden = step(x, hidden, masks, premixed)
            if decode:
                tops.append(self.join(top, hidden[-1][1], context))
        if not decode:
            return None, hidden
        return self._decode(torch.cat(tops), frames.dtype), hidden

    def _embed(self, frame: torch.Tensor) -> torch.Tensor:
        """(N, C, H, W) frames -> (N, L, embed_dim) first-level tokens (padded as needed)."""
        h, w = self.img_size
        ph, pw = self.padded_size[0] - h, self.padded_size[1] - w
        if ph or pw:
            frame = F.pad(frame, (0, pw, 0, ph))
        return self.patch_embed(frame)

    def _decode(self, tokens: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
        """(N, L, C) last tokens (joined with the memory read-out) -> (N, C_in, H, W) frames."""
        y = self.inflate(tokens).to(dtype)
        h, w = self.img_size
        if self.padded_size != (h, w):
            y = y[..., :h, :w]
        return torch.sigmoid(y)

    def _run_cell(self, index: int, x, hidden, masks: Sequence[CellMasks], premixed=None):
        cell = self.cells()[index]
        h, c = hidden[index]
        if self.checkpointing and torch.is_grad_enabled():
            return checkpoint(cell, x, h, c, masks[index], premixed, use_reentrant=False)
        return cell(x, h, c, masks[index], premixed)

    # ----- the authors' checkpoints --------------------------------------------------------
    def convert_official_state_dict(self, sd: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """The authors' key layout -> ours; drops the parameters their forward never uses."""
        own = self.state_dict()
        out = {}
        for key, value in sd.items():
            if key.startswith(self.official_unused):
                continue
            for theirs, ours in self.official_prefixes.items():
                if key.startswith(theirs):
                    key = ours + key[len(theirs) :]
                    break
            key = key.replace(".Swin.layers.", ".blocks.")
            if ".red." in key and key not in own:
                continue  # the mixing Linear of a block that never mixes
            out[key] = value
        return out


def _cacheable(compiled: Callable[..., Any]) -> Callable[..., Any]:
    """``compiled`` (a ``torch.compile``'d function) with its graphs, inference and training,
    kept in AOTAutograd's cache, so that a new process loads them instead of tracing and
    partitioning them again.

    The graphs hold this package's own ``autograd.Function`` s (:func:`~.layers.reorder`, the
    key-major attention), which AOTAutograd leaves out of its cache unless told: Dynamo traces
    their forward and backward into the graph, so the cache key covers them. With every kernel
    cached, a new process's first inference + training step took 9 + 14 s without, 4.5 + 3.4 s
    with at B small batch 8, 17.5 + 58 s against 8.8 + 13 s at D small batch 4
    (docs/benchmarks.md, "Cached warm-ups"). The option is set around each call (10-11 us), as
    a compile can happen at any call (a guard that fails).
    """
    import torch._functorch.config as functorch_config

    @functools.wraps(compiled)
    def call(*args, **kwargs):
        with functorch_config.patch(autograd_cache_allow_custom_autograd_functions=True):
            return compiled(*args, **kwargs)

    return call


def compile_options(device: torch.device) -> dict[str, Any] | None:
    """Inductor options for the compiled steps on ``device``.

    On the CPU the batched matmuls of window attention (16 tokens, head widths of 8-32) run
    4-9x faster as Inductor's own C++ small-matrix kernels than as the BLAS library's batched
    call (measured at the small models' shapes: 0.02-0.03 ms against 0.11-0.21 ms), so the CPU
    lets Inductor choose between the two by timing them (``max_autotune`` with the ``CPP`` and
    ``ATEN`` backends). The timing costs a few seconds per matmul shape once: the choice is
    cached with the kernels (``$SWINLSTM_CACHE/inductor``); its tables are not printed.
    Elsewhere: Inductor's defaults.
    """
    if torch.device(device).type != "cpu":
        return None
    return {
        "max_autotune": True,
        "max_autotune_gemm_backends": "CPP,ATEN",
        "autotune_num_choices_displayed": 0,
        "max_autotune_report_choices_stats": False,
    }


def _drop_path_schedule(rate: float, depths: Sequence[int]) -> list[list[float]]:
    """The authors' stochastic-depth rule: linear 0 -> rate over all blocks, split per cell."""
    rates = [x.item() for x in torch.linspace(0, rate, sum(depths))]
    out, start = [], 0
    for d in depths:
        out.append(rates[start : start + d])
        start += d
    return out


# ----------------------------------------------------------------------------------------------
# SwinLSTM-B
# ----------------------------------------------------------------------------------------------
class SwinLSTMB(SwinLSTMBase):
    """SwinLSTM-B: patch embed -> SwinLSTM cells at one resolution -> patch inflation -> sigmoid.

    Cell i has ``depths[i]`` blocks and ``num_heads[i]`` heads (with the paper's ``depths=[12]``
    only ``num_heads[0]`` is used). Every block has stochastic depth ``drop_path_rate``, as in
    the authors' code. The other options are :class:`SwinLSTMBase`'s.
    """

    official_prefixes = {
        "ST.patch_embed.": "patch_embed.",
        "ST.PatchInflated.ConvT.": "inflate.proj.",
        "ST.layers.": "layers.",
    }

    def __init__(self, depths: Sequence[int] = (12,), **config: Any):
        super().__init__(levels=0, **config)
        depths = _positive_ints(depths, "depths")
        num_heads = self.num_heads
        if len(num_heads) < len(depths):
            raise ConfigError(
                f"num_heads needs one entry per cell: depths={depths} but num_heads={num_heads}"
            )
        layout = self.layout(0)
        patch_size, in_chans, embed_dim = self.patch_size, self.in_chans, self.embed_dim
        rates = (self.mlp_ratio, self.drop_rate, self.attn_drop_rate)
        self.patch_embed = PatchEmbed(patch_size, in_chans, embed_dim, layout)
        self.layers = nn.ModuleList(
            SwinLSTMCell(embed_dim, layout, d, num_heads[i], *rates, [self.drop_path_rate] * d)
            for i, d in enumerate(depths)
        )
        inflate_chans = self._init_memory_for(state_chans=embed_dim)
        self.inflate = PatchInflate(patch_size, inflate_chans, in_chans, layout)

    def cells(self) -> list[SwinLSTMCell]:
        return list(self.layers)

    def _tokens_step(self, x, hidden, masks, premixed=None):
        new = []
        for i in range(len(self.layers)):
            h, c = self._run_cell(i, x, hidden, masks, premixed if i == 0 else None)
            new.append((h, c))
            x = h
        return x, new


# ----------------------------------------------------------------------------------------------
# SwinLSTM-D
# ----------------------------------------------------------------------------------------------
class SwinLSTMD(SwinLSTMBase):
    """SwinLSTM-D: patch embed -> (cell, patch merging) per level -> (cell, patch expanding) per
    level -> patch inflation -> sigmoid.

    With L = len(depths_down) levels: down cell i works at embed_dim * 2**i channels with
    ``depths_down[i]`` blocks and ``num_heads[i]`` heads; up cell i works at the grid of L - i
    merges, with ``depths_up[L-1-i]`` blocks and ``num_heads[L-1-i]`` heads (the authors'
    indexing). Stochastic depth rises linearly over the down path, and over the up path read
    from its deepest cell (the authors' schedule); ``drop_rate`` and ``attn_drop_rate`` are
    honoured (the authors' network ignores them). The other options are :class:`SwinLSTMBase`'s.
    """

    official_prefixes = {
        "Downsample.patch_embed.": "patch_embed.",
        "Downsample.layers.": "down.",
        "Downsample.downsample.": "merge.",
        "Upsample.layers.": "up.",
        "Upsample.upsample.": "expand.",
        "Upsample.Unembed.Conv.": "inflate.proj.",
    }
    official_unused = ("Upsample.patch_embed.",)

    def __init__(
        self, depths_down: Sequence[int] = (2, 6), depths_up: Sequence[int] = (6, 2), **config: Any
    ):
        depths_down = _positive_ints(depths_down, "depths_down")
        depths_up = _positive_ints(depths_up, "depths_up")
        levels = len(depths_down)
        if len(depths_up) != levels:
            raise ConfigError(
                f"depths_up must have one entry per level like depths_down={depths_down}, "
                f"got depths_up={depths_up}"
            )
        super().__init__(levels=levels, **config)
        num_heads = self.num_heads
        if len(num_heads) < levels:
            raise ConfigError(
                f"num_heads needs one entry per level ({levels}), got num_heads={num_heads}"
            )
        patch_size, in_chans, embed_dim = self.patch_size, self.in_chans, self.embed_dim
        rates = (self.mlp_ratio, self.drop_rate, self.attn_drop_rate)
        self.patch_embed = PatchEmbed(patch_size, in_chans, embed_dim, self.layout(0))
        dpr_down = _drop_path_schedule(self.drop_path_rate, depths_down)
        self.down = nn.ModuleList(
            SwinLSTMCell(
                embed_dim * 2**i, self.layout(i), depths_down[i], num_heads[i], *rates, dpr_down[i]
            )
            for i in range(levels)
        )
        self.merge = nn.ModuleList(
            PatchMerging(embed_dim * 2**i, self.layout(i), self.layout(i + 1))
            for i in range(levels)
        )
        dpr_up = _drop_path_schedule(self.drop_path_rate, depths_up)
        self.up = nn.ModuleList()
        self.expand = nn.ModuleList()
        for i in range(levels):
            k = levels - 1 - i  # the authors index depths_up and num_heads from the deep end
            level = levels - i
            self.up.append(
                SwinLSTMCell(
                    embed_dim * 2**level,
                    self.layout(level),
                    depths_up[k],
                    num_heads[k],
                    *rates,
                    dpr_up[k][::-1],
                )  # fmt: skip
            )
            self.expand.append(
                PatchExpanding(embed_dim * 2**level, self.layout(level), self.layout(level - 1))
            )
        inflate_chans = self._init_memory_for(state_chans=2 * embed_dim)  # last up cell's width
        self.inflate = PatchInflate(patch_size, inflate_chans, in_chans, self.layout(0))

    def cells(self) -> list[SwinLSTMCell]:
        return [*self.down, *self.up]

    def _tokens_step(self, x, hidden, masks, premixed=None):
        new = []
        levels = len(self.down)
        for i in range(levels):
            h, c = self._run_cell(i, x, hidden, masks, premixed if i == 0 else None)
            new.append((h, c))
            x = self.merge[i](h)
        for i in range(levels):
            h, c = self._run_cell(levels + i, x, hidden, masks)
            new.append((h, c))
            x = self.expand[i](h)
        return x, new


def _build(cls: type[SwinLSTMBase], config: dict[str, Any]) -> SwinLSTMBase:
    own = inspect.signature(cls.__init__).parameters
    base = inspect.signature(SwinLSTMBase.__init__).parameters
    accepted = [p for p in (*own, *base) if p not in ("self", "config", "levels")]
    unknown = sorted(set(config) - set(accepted))
    if unknown:
        raise ConfigError(
            f"{cls.__name__} got unknown config keys {unknown}; accepted: {', '.join(accepted)}"
        )
    return cls(**config)


@register_model("swinlstm-b")
def build_swinlstm_b(**config) -> SwinLSTMB:
    """SwinLSTM-B; defaults are the authors' Moving MNIST configuration."""
    return _build(SwinLSTMB, config)


@register_model("swinlstm-d")
def build_swinlstm_d(**config) -> SwinLSTMD:
    """SwinLSTM-D; defaults are the authors' Moving MNIST configuration."""
    return _build(SwinLSTMD, config)
