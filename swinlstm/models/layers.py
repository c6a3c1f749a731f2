"""Swin building blocks for SwinLSTM: window attention, Swin block, patch embed/merge/expand/inflate.

Token layout. Every token sequence here is ``(B, L, C)`` in *window order*: the ``L = H * W``
tokens of an ``H x W`` grid are listed window by window (windows in raster order), and inside a
window in raster order. Window attention is then a plain reshape, with no partition or reverse
copy; a shifted block needs one gather to the shifted windows and one back (a precomputed
permutation that also does the cyclic shift). Per-token layers (LayerNorm, Linear, MLP) do not
care about the order. Patch embedding, merging, expanding and inflation gather straight between
the window orders of two grids with precomputed indices; in compiled graphs each such
permutation takes its gradient as the gather by its inverse (:func:`reorder`).

:class:`WindowLayout` holds these facts for one grid; the index tensors and the shift mask are
non-persistent buffers of the module that owns the grid (built once per resolution, moved with
the module to its device), so nothing is recomputed per block or per time step.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from swinlstm.errors import ConfigError

from .chunked import (
    BlockSpec,
    BlockWeights,
    chunk_plan,
    chunked_block,
    default_chunk_rows,
)

# Additive value of masked-out (cross-region) pairs in shifted windows: the authors' -100, which
# stays finite in float16/bfloat16 (exp(-100) is 0 to float32 precision).
MASK_VALUE = -100.0


# ----------------------------------------------------------------------------------------------
# Geometry
# ----------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class WindowLayout:
    """Window partition of an ``H x W`` token grid.

    Per axis, the window is ``min(window_size, size)`` and the shift of shifted blocks is
    ``window_size // 2``, or 0 when the axis fits in one window. On square grids this is exactly
    the authors' rule (window ``min(resolution)`` and no shift when the grid is not larger than
    the window).
    """

    grid: tuple[int, int]
    window: tuple[int, int]
    shift: tuple[int, int]

    @classmethod
    def build(cls, grid: tuple[int, int], window_size: int) -> WindowLayout:
        h, w = grid
        window = (min(window_size, h), min(window_size, w))
        shift = tuple(0 if n <= window_size else window_size // 2 for n in grid)
        if h % window[0] or w % window[1]:
            raise ConfigError(f"token grid {h}x{w} is not divisible by the window {window}")
        return cls((h, w), window, shift)

    @property
    def shifted(self) -> bool:
        return any(self.shift)

    @property
    def num_windows(self) -> int:
        return (self.grid[0] // self.window[0]) * (self.grid[1] // self.window[1])

    @property
    def window_tokens(self) -> int:
        return self.window[0] * self.window[1]

    def partition(self, grid_values: torch.Tensor) -> torch.Tensor:
        """(H, W, ...) -> (L, ...) in window order."""
        (h, w), (wh, ww) = self.grid, self.window
        rest = grid_values.shape[2:]
        x = grid_values.reshape(h // wh, wh, w // ww, ww, *rest).transpose(1, 2)
        return x.reshape(h * w, *rest)

    def order(self) -> torch.Tensor:
        """(L,) raster index of each window-order position."""
        return self.partition(torch.arange(self.grid[0] * self.grid[1]).view(self.grid))

    def position(self) -> torch.Tensor:
        """(H, W) window-order position of each grid cell (inverse of :meth:`order`)."""
        return inverse_permutation(self.order()).view(self.grid)

    def shift_index(self) -> torch.Tensor:
        """(L,) gather index: window-order tokens -> tokens of the cyclically shifted windows."""
        rolled = torch.roll(self.position(), shifts=(-self.shift[0], -self.shift[1]), dims=(0, 1))
        return self.partition(rolled)

    def shift_mask(self) -> torch.Tensor:
        """(nW, N, N) additive mask of the shifted windows: 0 inside a region, -100 across."""
        regions = torch.zeros(self.grid)
        cuts = [
            (slice(0, -w), slice(-w, -s), slice(-s, None)) if s else (slice(None),)
            for w, s in zip(self.window, self.shift)
        ]
        label = 0
        for hs in cuts[0]:
            for ws in cuts[1]:
                regions[hs, ws] = label
                label += 1
        ids = self.partition(regions).view(self.num_windows, self.window_tokens)
        differ = ids.unsqueeze(1) != ids.unsqueeze(2)
        return torch.zeros(differ.shape).masked_fill(differ, MASK_VALUE)

    def relative_position_index(self) -> torch.Tensor:
        """(N, N) index into the ``(2wh-1)(2ww-1)`` relative-position bias table."""
        wh, ww = self.window
        coords = torch.stack(
            torch.meshgrid(torch.arange(wh), torch.arange(ww), indexing="ij")
        ).flatten(1)
        rel = coords[:, :, None] - coords[:, None, :]
        return (rel[0] + wh - 1) * (2 * ww - 1) + (rel[1] + ww - 1)


def inverse_permutation(index: torch.Tensor) -> torch.Tensor:
    """(n,) permutation -> (n,) the permutation that undoes it."""
    inverse = torch.empty_like(index)
    inverse[index] = torch.arange(index.numel(), device=index.device)
    return inverse


class _Reorder(torch.autograd.Function):
    """``x.index_select(dim, index)`` for a permutation ``index``; its gradient is the gather by
    the inverse permutation. (index_select's own gradient is an index_add, which compiled CPU
    code performs as atomic adds one element at a time: forward + backward of a (4, 256, 64)
    reorder compiled took 247 us that way against 90 us as two gathers.)"""

    @staticmethod
    def forward(ctx, x, dim: int, index: torch.Tensor, inverse: torch.Tensor):
        ctx.dim = dim
        ctx.save_for_backward(inverse)
        return x.index_select(dim, index)

    @staticmethod
    def backward(ctx, grad):
        (inverse,) = ctx.saved_tensors
        return grad.index_select(ctx.dim, inverse), None, None, None


def reorder(x: torch.Tensor, dim: int, index: torch.Tensor, inverse: torch.Tensor) -> torch.Tensor:
    """x (..., n, ...) with its entries along ``dim`` taken in the order of the permutation
    ``index``; ``inverse`` is :func:`inverse_permutation` of it (precomputed by the caller).

    In compiled graphs through :class:`_Reorder` (compiled training steps 7-11 % faster at the
    small models' sizes); eager code keeps ``index_select``, whose eager ``index_add`` is a
    plain loop (eager training was 1-2 % slower through the ``autograd.Function``)."""
    if torch.compiler.is_compiling():
        return _Reorder.apply(x, dim, index, inverse)
    return x.index_select(dim, index)


# ----------------------------------------------------------------------------------------------
# Small layers
# ----------------------------------------------------------------------------------------------
class DropPath(nn.Module):
    """Stochastic depth: drop the whole residual branch per sample, scale survivors by 1/keep."""

    def __init__(self, drop_prob: float = 0.0):
        super().__init__()
        self.drop_prob = float(drop_prob)

    def factor(self, x: torch.Tensor) -> torch.Tensor | None:
        """The per-sample factor (B, 1, ...) this call would multiply ``x`` by; None if inactive."""
        if self.drop_prob == 0.0 or not self.training:
            return None
        keep = 1.0 - self.drop_prob
        return x.new_empty((x.shape[0],) + (1,) * (x.dim() - 1)).bernoulli_(keep).div_(keep)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        factor = self.factor(x)
        return x if factor is None else x * factor

    def extra_repr(self) -> str:
        return f"drop_prob={self.drop_prob}"


class Mlp(nn.Module):
    """Linear -> GELU -> dropout -> Linear -> dropout, on (..., C)."""

    def __init__(self, dim: int, hidden: int, drop: float = 0.0):
        super().__init__()
        self.fc1 = nn.Linear(dim, hidden)
        self.act = nn.GELU()
        self.fc2 = nn.Linear(hidden, dim)
        self.drop = nn.Dropout(drop)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.drop(self.fc2(self.drop(self.act(self.fc1(x)))))


# ----------------------------------------------------------------------------------------------
# The LSTM update, lean in training
# ----------------------------------------------------------------------------------------------
class _LSTMGates(torch.autograd.Function):
    """The SwinLSTM cell update from the blocks' output F and the old cell state c::

        gate = sigmoid(F); c' = gate * (c + tanh F); h' = gate * tanh c'

    saving F and c only (the plain graph keeps four token-widths of intermediates per step);
    backward recomputes the gates."""

    @staticmethod
    def forward(ctx, f, c):
        gate = torch.sigmoid(f)
        c_new = gate * (c + torch.tanh(f))
        h = gate * torch.tanh(c_new)
        ctx.save_for_backward(f, c)
        return h, c_new

    @staticmethod
    def backward(ctx, d_h, d_c):
        f, c = ctx.saved_tensors
        gate = torch.sigmoid(f)
        tf = torch.tanh(f)
        tc = torch.tanh(gate * (c + tf))
        d_c = d_c + d_h * gate * (1 - tc * tc)
        d_gate = d_h * tc + d_c * (c + tf)
        d_f = d_gate * gate * (1 - gate) + d_c * gate * (1 - tf * tf)
        return d_f, d_c * gate


def lstm_gates(
    f: torch.Tensor, c: torch.Tensor, lean: bool = False
) -> tuple[torch.Tensor, torch.Tensor]:
    """(h', c') of the SwinLSTM cell from F and c (any equal shapes); ``lean``: with gradients
    recorded, save only F and c and recompute the gates in backward (the cell asks for it
    where its blocks run the chunked kernel, :func:`~swinlstm.models.chunked.use_chunked`)."""
    if lean and torch.is_grad_enabled():
        return _LSTMGates.apply(f, c)
    gate = torch.sigmoid(f)
    c = gate * (c + torch.tanh(f))
    return gate * torch.tanh(c), c


# ----------------------------------------------------------------------------------------------
# Attention
# ----------------------------------------------------------------------------------------------
class WindowAttention(nn.Module):
    """Multi-head self-attention inside windows, with a learned relative-position bias.

    ``forward(x, mask)``: x (B, L, C) in window order, mask the additive attention mask from
    :meth:`attention_mask` -> (B, L, C).
    """

    def __init__(
        self,
        dim: int,
        layout: WindowLayout,
        num_heads: int,
        attn_drop: float = 0.0,
        proj_drop: float = 0.0,
        shifted: bool = False,
    ):
        super().__init__()
        if dim % num_heads:
            raise ConfigError(f"embedding dim {dim} is not divisible by num_heads={num_heads}")
        self.num_heads = num_heads
        self.window_tokens = layout.window_tokens
        self.shifted = shifted
        wh, ww = layout.window
        self.relative_position_bias_table = nn.Parameter(
            torch.zeros((2 * wh - 1) * (2 * ww - 1), num_heads)
        )
        self.register_buffer(
            "relative_position_index", layout.relative_position_index(), persistent=False
        )
        self.qkv = nn.Linear(dim, 3 * dim)
        self.attn_drop = float(attn_drop)
        self.proj = nn.Linear(dim, dim)
        self.proj_drop = nn.Dropout(proj_drop)
        nn.init.trunc_normal_(self.relative_position_bias_table, std=0.02, a=-2.0, b=2.0)

    def attention_mask(
        self, shift_mask: torch.Tensor | None, dtype: torch.dtype, batch_size: int = 1
    ) -> torch.Tensor:
        """Additive attention mask in the 4-D layout PyTorch's fused CPU SDPA kernel takes: the bias
        (1, heads, N, N), or for a shifted block bias + shift mask repeated over the batch,
        (B * nW, heads, N, N)."""
        n = self.window_tokens
        bias = self.relative_position_bias_table[self.relative_position_index.view(-1)]
        bias = bias.view(n, n, self.num_heads).permute(2, 0, 1)
        if self.shifted and shift_mask is not None:
            return (bias + shift_mask.unsqueeze(1)).to(dtype).repeat(batch_size, 1, 1, 1)
        return bias.unsqueeze(0).to(dtype).contiguous()

    def forward(self, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        b, length, c = x.shape
        n, heads = self.window_tokens, self.num_heads
        qkv = self.qkv(x).view(b * (length // n), n, 3, heads, c // heads).permute(2, 0, 3, 1, 4)
        q, k, v = qkv.unbind(0)  # (B * nW, heads, N, d)
        dropout = self.attn_drop if self.training else 0.0
        if torch.compiler.is_compiling() and not dropout:
            # key-major scores, see _KeyMajorAttention: (B * nW, heads, d, N) out, transposed
            out = _KeyMajorAttention.apply(q, k, v, mask.transpose(-2, -1)).permute(0, 3, 1, 2)
        elif mask.requires_grad and not dropout:
            # a mask that needs its gradient (the learned bias, in training) sends SDPA to its
            # math fallback, which adds a guard for fully masked rows (isneginf / all / where) per
            # call; the same math without it
            attn = torch.matmul(q * q.shape[-1] ** -0.5, k.transpose(-2, -1)) + mask
            out = (attn.softmax(-1) @ v).transpose(1, 2)
        else:
            out = F.scaled_dot_product_attention(q, k, v, attn_mask=mask, dropout_p=dropout)
            out = out.transpose(1, 2)
        return self.proj_drop(self.proj(out.reshape(b, length, c)))  # out: (B * nW, N, heads, d)


class _KeyMajorAttention(torch.autograd.Function):
    """Window attention for compiled cells, its scores kept key-major: ``S^T = K Q^T / sqrt(d)
    + mask^T`` (keys down the rows), softmax down each column, ``O^T = V^T softmax(S^T)``.

    ``apply(q, k, v, mask_t)``: q, k, v (G, heads, N, d), ``mask_t`` the additive mask
    transposed, (G or 1, heads, N, N) -> ``O^T`` (G, heads, d, N). The same numbers as
    ``softmax(Q K^T / sqrt(d) + mask) V`` (up to float rounding), laid out so that every batched
    matmul, forward and the backward written here, has a row-major left operand and N (the
    window's tokens, 16 at window 4) output columns: the form the compiler's small-matrix CPU
    kernel takes (``compile_options`` in swinlstm.py). In the usual layout the product with V
    has d output columns (8 in the small models: half a 16-float vector) and autograd's
    backward takes transposed left operands; both went to the BLAS library's batched call,
    3-4x slower at these sizes. Compiled B small (batch 8): training steps 10 % and
    inference 18 % faster with it (interleaved A/B, median of 11).

    The softmax keeps its exponents at or above -80: the shifted windows' mask (-100) puts
    pairs across regions near exp(-100) = 4e-44, a subnormal float, which x86 CPUs compute on
    a microcode path about 100x slower; such a softmax ran 4x slower than one without (0.48
    against 0.12 ms for 16,384 rows of 16; compiled B tiny at batch 16, whose shifted windows
    are mostly masked, trained 7 % faster without them). Their weight becomes exp(-80) =
    2e-35 instead, which changes no output beyond 1e-30.
    """

    @staticmethod
    def forward(ctx, q, k, v, mask_t):
        qs = q * q.shape[-1] ** -0.5
        s = k @ qs.transpose(-2, -1) + mask_t  # (G, heads, N_k, N_q)
        # softmax down the keys, exponents kept at or above -80 (subnormals: see above)
        e = (s - s.amax(-2, keepdim=True)).clamp_min(-80.0).exp()
        p = e / e.sum(-2, keepdim=True)
        ctx.save_for_backward(qs, k, v, p)
        ctx.mask_shape = mask_t.shape if ctx.needs_input_grad[3] else None
        return v.transpose(-2, -1) @ p

    @staticmethod
    def backward(ctx, d_out_t):
        qs, k, v, p = ctx.saved_tensors
        d_out_t = d_out_t.contiguous()  # (G, heads, d, N_q)
        d_v_t = d_out_t @ p.transpose(-2, -1).contiguous()  # (d, N_k)
        d_p = v @ d_out_t  # (N_k, N_q)
        d_s = p * (d_p - (p * d_p).sum(-2, keepdim=True))  # softmax backward, down the keys
        d_q_t = k.transpose(-2, -1).contiguous() @ d_s  # (d, N_q)
        d_k_t = qs.transpose(-2, -1).contiguous() @ d_s.transpose(-2, -1).contiguous()
        d_mask = None
        if ctx.mask_shape is not None:
            d_mask = d_s if d_s.shape == ctx.mask_shape else d_s.sum(0, keepdim=True)
        scale = qs.shape[-1] ** -0.5
        return (
            d_q_t.transpose(-2, -1) * scale,
            d_k_t.transpose(-2, -1),
            d_v_t.transpose(-2, -1),
            d_mask,
        )


class SwinBlock(nn.Module):
    """Pre-LN Swin block; ``mix=True`` adds the authors' mixing of a second input (their x/h
    "fusion").

    ``forward(x, mask, inject=None, shift_index=None, unshift_index=None, chunked=False)``:
    x (B, L, C) -> (B, L, C). With ``inject`` (B, L, C), the attention branch reads
    ``red(cat(norm1(x), norm1(inject)))`` instead of ``norm1(x)`` (the residual stays ``x``).
    ``chunked`` picks the kernel: the chunked one of :mod:`swinlstm.models.chunked` (from
    :meth:`weights`) or the plain layers; both compute the same (``use_chunked`` decides).
    """

    def __init__(
        self,
        dim: int,
        layout: WindowLayout,
        num_heads: int,
        shifted: bool,
        mix: bool,
        mlp_ratio: float = 4.0,
        drop: float = 0.0,
        attn_drop: float = 0.0,
        drop_path: float = 0.0,
    ):
        super().__init__()
        self.shifted = shifted and layout.shifted
        self.norm1 = nn.LayerNorm(dim)
        self.attn = WindowAttention(dim, layout, num_heads, attn_drop, drop, self.shifted)
        self.drop_path = DropPath(drop_path) if drop_path > 0 else nn.Identity()
        self.norm2 = nn.LayerNorm(dim)
        self.mlp = Mlp(dim, int(dim * mlp_ratio), drop)
        self.red = nn.Linear(2 * dim, dim) if mix else None
        #: rows (tokens) per chunk of the chunked kernel; None: the device's default
        self.chunk_rows: int | None = None

    def forward(
        self,
        x: torch.Tensor,
        mask: torch.Tensor,
        inject: torch.Tensor | None = None,
        shift_index: torch.Tensor | None = None,
        unshift_index: torch.Tensor | None = None,
        chunked: bool = False,
        premixed: tuple[int, torch.Tensor] | None = None,
    ) -> torch.Tensor:
        """``chunked``: the chunked kernel (mask of batch size 1 from
        :meth:`WindowAttention.attention_mask`); else the plain layers (mask for this batch).
        ``premixed`` (plain layers only): ``(side, premix(t, side))`` for the input on ``side``
        (0: ``x``, 1: ``inject``) computed ahead (``inject`` may then be None when side is 1)."""
        if chunked:
            if premixed is not None:
                raise ValueError("the chunked kernel mixes its inputs itself: no premixed term")
            return self._chunked(x, mask, inject, shift_index)
        if premixed is not None:
            side, term = premixed  # the mixing Linear's part from input `side` (0: x, 1: inject)
            other = inject if side == 0 else x
            y = self._mix_half(other, 1 - side, term)
        elif inject is not None:
            y = self.red(torch.cat((self.norm1(x), self.norm1(inject)), dim=-1))
        else:
            y = self.norm1(x)
        if self.shifted:
            y = reorder(y, 1, shift_index, unshift_index)
        y = self.attn(y, mask)
        if self.shifted:
            y = reorder(y, 1, unshift_index, shift_index)
        x = x + self.drop_path(y)
        return x + self.drop_path(self.mlp(self.norm2(x)))

    def premix(self, t: torch.Tensor, side: int) -> torch.Tensor:
        """The mixing Linear's part from one of its inputs, bias included: t (..., L, C) ->
        norm1(t) @ red.weight[:, side * C : (side + 1) * C].T + red.bias, so that
        ``red(cat(norm1(x), norm1(inject)))`` is that of x (side 0) plus :meth:`_mix_half` of
        inject, or the reverse. Any number of tokens: a step-independent input's part is
        computed once for all steps."""
        return self._mix_half(t, side, self.red.bias)

    def _mix_half(self, t: torch.Tensor, side: int, add: torch.Tensor) -> torch.Tensor:
        """``add + norm1(t) @ W_side.T`` (W_side: red's weight columns for input ``side``)."""
        c = t.shape[-1]
        w = self.red.weight[:, side * c : (side + 1) * c]
        n = self.norm1(t).reshape(-1, c)
        return torch.addmm(add.reshape(-1, c) if add.dim() > 1 else add, n, w.t()).view(t.shape)

    def weights(self) -> BlockWeights:
        """This block's parameters by name, as the chunked kernel takes them."""
        attn, mlp, red = self.attn, self.mlp, self.red
        return BlockWeights(
            self.norm1.weight, self.norm1.bias, attn.qkv.weight, attn.qkv.bias,
            attn.proj.weight, attn.proj.bias, self.norm2.weight, self.norm2.bias,
            mlp.fc1.weight, mlp.fc1.bias, mlp.fc2.weight, mlp.fc2.bias,
            None if red is None else red.weight, None if red is None else red.bias,
        )  # fmt: skip

    def _chunked(self, x, mask, inject, shift_index) -> torch.Tensor:
        b, length, c = x.shape
        n = self.attn.window_tokens
        rows = self.chunk_rows or default_chunk_rows(x.device, torch.is_grad_enabled())
        k, chunks = chunk_plan(b, length, n, rows)
        gather = None
        if self.shifted:
            offsets = torch.arange(b, device=x.device).mul_(length).unsqueeze(1)
            gather = (offsets + shift_index).view(-1)
        spec = BlockSpec(self.attn.num_heads, n, self.norm1.eps, self.norm2.eps, k, chunks, gather)
        if isinstance(self.drop_path, DropPath):  # drawn in the plain kernel's order
            dp1, dp2 = self.drop_path.factor(x), self.drop_path.factor(x)
        else:
            dp1 = dp2 = None
        return chunked_block(x, inject, mask, dp1, dp2, spec, self.weights())


# ----------------------------------------------------------------------------------------------
# Resolution changes
# ----------------------------------------------------------------------------------------------
def _autocast_off(x: torch.Tensor) -> contextlib.AbstractContextManager:
    """A context that turns autocast off for ``x``'s device, where it is on.

    Where autocast is off already this enters nothing: an autocast region in a compiled graph
    (even a disabling one) makes AOTAutograd bypass its cache, so each new process would trace
    and partition the graphs again. (The other reason it did, our ``autograd.Function`` s, is
    lifted where the model compiles; both gone, a cached warm-up is about 15 s shorter at B
    small, 54 s at D small: docs/benchmarks.md, "Cached warm-ups".)
    """
    if torch.is_autocast_enabled(x.device.type):
        return torch.autocast(x.device.type, enabled=False)
    return contextlib.nullcontext()


def _full_precision(layer: nn.Module, x: torch.Tensor) -> torch.Tensor:
    """Run a pixel-side layer (few FLOPs, sets the output's precision) outside autocast."""
    with _autocast_off(x):
        return layer(x.to(layer.weight.dtype))


class PatchEmbed(nn.Module):
    """(B, C_in, H, W) pixels -> (B, L, C) tokens in window order: conv (stride = patch) + LN.

    H, W are the layout's grid times the patch. The conv's kernel equals its stride, so it is
    computed as what it is: each token's patch (C_in * p * p pixels, gathered straight into
    window order by one index) times the kernel, one matmul. The conv layer keeps the
    parameters (the authors' keys and shapes); its own forward, a strided convolution, was
    slower, and its backward to the pixels (which training needs, the fed-back forecasts being
    inputs) 20-60x slower than the matmul's at the small models' sizes.
    """

    def __init__(self, patch_size: int, in_chans: int, embed_dim: int, layout: WindowLayout):
        super().__init__()
        self.proj = nn.Conv2d(in_chans, embed_dim, kernel_size=patch_size, stride=patch_size)
        self.norm = nn.LayerNorm(embed_dim)
        (gh, gw), p = layout.grid, patch_size
        # pixel index (in a flattened (C_in, H, W) frame) of each token's patch entries, in the
        # kernel's (C_in, p, p) order, tokens in window order: one gather. (A view, permute and
        # WindowLayout.partition give the same with two copies and no index, but forward +
        # backward took 1.5x as long at 32x32 frames; the index is as many int64 as pixels.)
        rows = torch.arange(gh * p).view(gh, p, 1, 1) * (gw * p)
        cols = torch.arange(gw * p).view(1, 1, gw, p)
        pixel = (rows + cols).permute(0, 2, 1, 3)  # (gh, gw, p, p)
        chans = torch.arange(in_chans).view(in_chans, 1, 1) * (gh * p * gw * p)
        pixels = layout.partition(pixel.reshape(gh, gw, 1, p * p) + chans.view(1, 1, -1, 1))
        self.register_buffer("pixels", pixels.reshape(-1), persistent=False)
        self.register_buffer("pixels_inverse", inverse_permutation(self.pixels), persistent=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        weight, b = self.proj.weight, x.shape[0]
        with _autocast_off(x):  # few FLOPs; sets the precision
            patches = reorder(
                x.to(weight.dtype).reshape(b, -1), 1, self.pixels, self.pixels_inverse
            )
            x = F.linear(patches.view(b, -1, weight[0].numel()), weight.flatten(1), self.proj.bias)
        return self.norm(x)


class PatchInflate(nn.Module):
    """(B, L, C) tokens in window order -> (B, C_out, H*p, W*p): transposed conv.

    Kernel ``2p - 1``, padding and output padding ``p - 1``: for the authors' patch 2 this is
    their 3x3 / stride 2 / padding 1 / output padding 1 layer; other patch sizes scale it.
    """

    def __init__(self, patch_size: int, embed_dim: int, out_chans: int, layout: WindowLayout):
        super().__init__()
        p = patch_size
        self.proj = nn.ConvTranspose2d(
            embed_dim,
            out_chans,
            kernel_size=2 * p - 1,
            stride=p,
            padding=p - 1,
            output_padding=p - 1,
        )
        self.grid = layout.grid
        self.register_buffer("position", layout.position().view(-1), persistent=False)
        self.register_buffer("order", layout.order(), persistent=False)  # its inverse

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if torch.compiler.is_compiling():
            return self._taps(x)
        b, _, c = x.shape
        x = reorder(x, 1, self.position, self.order).transpose(1, 2).reshape(b, c, *self.grid)
        return _full_precision(self.proj, x)

    def _taps(self, x: torch.Tensor) -> torch.Tensor:
        """The same transposed convolution, for compiled graphs: one matmul gives every token
        its (2p-1)^2 kernel taps, and each output pixel sums the taps that reach it.

        With stride p, padding p - 1 and kernel 2p - 1, output row ``p*i + a`` (0 <= a < p)
        takes kernel row ``a + p - 1`` of token row i and, for a >= 1, kernel row ``a - 1``
        of token row i + 1 (none past the last row); columns alike. As a compiled graph this is
        one small matmul and one fused kernel each way; the library's transposed convolution
        of these shapes (a few MFLOP) costs about 0.2 ms a call forward and again backward,
        which the compiled training step pays at every fed-back frame.
        """
        b, _, c = x.shape
        (h, w), p = self.grid, self.proj.stride[0]
        weight = self.proj.weight  # (C, C_out, k, k), k = 2p - 1
        c_out, k = weight.shape[1], weight.shape[2]
        with _autocast_off(x):
            x = reorder(x.to(weight.dtype), 1, self.position, self.order).view(b, h, w, c)
            t = (x @ weight.reshape(c, -1)).view(b, h, w, c_out, k, k)
        rows = t[..., p - 1 :, :]  # kernel row a + p - 1 of token row i, for output row a
        if p > 1:  # + kernel row a - 1 of token row i + 1, for a >= 1
            rows = rows + F.pad(t[:, 1:, :, :, : p - 1, :], (0, 0, 1, 0, 0, 0, 0, 0, 0, 1))
        y = rows[..., p - 1 :]  # the same over columns
        if p > 1:
            y = y + F.pad(rows[:, :, 1:, :, :, : p - 1], (1, 0, 0, 0, 0, 0, 0, 1))
        y = y + self.proj.bias.view(c_out, 1, 1)
        return y.permute(0, 3, 1, 4, 2, 5).reshape(b, c_out, h * p, w * p)


class PatchMerging(nn.Module):
    """(B, L, C) on grid H x W -> (B, L/4, 2C) on grid H/2 x W/2 (both in window order).

    Each output token concatenates the 2x2 input tokens in the order (0,0), (1,0), (0,1), (1,1)
    (row, column offsets), then LayerNorm(4C) and a bias-free Linear(4C, 2C).
    """

    def __init__(self, dim: int, fine: WindowLayout, coarse: WindowLayout):
        super().__init__()
        self.norm = nn.LayerNorm(4 * dim)
        self.reduction = nn.Linear(4 * dim, 2 * dim, bias=False)
        pos = fine.position()
        quads = [pos[dh::2, dw::2] for dh, dw in ((0, 0), (1, 0), (0, 1), (1, 1))]
        index = coarse.partition(torch.stack(quads, dim=-1))  # (L/4, 4)
        self.register_buffer("index", index.reshape(-1), persistent=False)
        self.register_buffer("inverse", inverse_permutation(self.index), persistent=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, length, c = x.shape
        x = reorder(x, 1, self.index, self.inverse).view(b, length // 4, 4 * c)
        return self.reduction(self.norm(x))


class PatchExpanding(nn.Module):
    """(B, L, C) on grid H x W -> (B, 4L, C/2) on grid 2H x 2W (both in window order).

    Bias-free Linear(C, 2C); the channels of each token split as (row offset, column offset,
    C/2) into its 2x2 children; then LayerNorm(C/2).
    """

    def __init__(self, dim: int, coarse: WindowLayout, fine: WindowLayout):
        super().__init__()
        self.expand = nn.Linear(dim, 2 * dim, bias=False)
        self.norm = nn.LayerNorm(dim // 2)
        h, w = fine.grid
        rows = torch.arange(h).view(h, 1)
        cols = torch.arange(w).view(1, w)
        child = 4 * coarse.position()[rows // 2, cols // 2] + 2 * (rows % 2) + cols % 2
        self.register_buffer("index", fine.partition(child), persistent=False)
        self.register_buffer("inverse", inverse_permutation(self.index), persistent=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, length, c = x.shape
        x = reorder(self.expand(x).view(b, 4 * length, c // 2), 1, self.index, self.inverse)
        return self.norm(x)
