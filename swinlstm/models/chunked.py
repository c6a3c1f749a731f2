"""The Swin block's chunked kernel: fast on the CPU, lean in training; and the one policy
(:func:`use_chunked`) that decides where it runs.

:class:`~swinlstm.models.layers.SwinBlock` computes, for tokens x (B, L, C) in window order::

    y  = norm1(x)                      or  red(cat(norm1(x), norm1(inject)))   (mixing blocks)
    x1 = x + dp1 * unshift(proj(attn(shift(y))))
    out = x1 + dp2 * fc2(gelu(fc1(norm2(x1))))

(dp1, dp2: per-sample stochastic-depth factors). Every step but the attention is per token and
the attention is per window, so the block can run over *chunks of rows* of the flattened
(B * L, C) tokens, each chunk a whole number of windows of one sample or a whole number of
samples. In inference a chunk of about 1024 rows stays in the CPU's caches from the first
LayerNorm to the last residual add, so the matmuls keep their in-cache speed and the
elementwise work (GELU in place) reads cache rather than memory; the attention of 16-token
windows runs as three batched matmuls instead of the fused CPU SDPA kernel (about 3x faster at
these sizes); biases are added in passes that happen anyway (the reorder of q, k, v by head,
the residual the projections accumulate onto). A shifted block gathers its rows straight from
the unshifted tokens and scatters its results back (the cyclic shift is a permutation of
tokens), so it needs no shifted copy.

Training runs the same chunks (of up to 2048 rows) inside one autograd Function. It saves the matmul outputs (q, k, v by head, the
attention weights, x1, fc1's output and a mixing block's y: about 9.5 token-widths per block)
and recomputes the LayerNorms, GELU and the attention output in backward, chunk by chunk;
weight gradients accumulate over the chunks in place. That is under half the training memory
of the authors' code (docs/benchmarks.md).

The plain kernel (``SwinBlock``'s own layers, PyTorch's SDPA) stays for what this one does not
do: autocast, ``torch.compile`` and exporters' tracing, dropout in training; :func:`use_chunked`
is the one place that says so.

Words: *chunked* is this kernel; a block *mixes* a second input into its attention branch (the
authors' x/h fusion, Linear ``red``); the memory read-out *joins* the last state
(:meth:`swinlstm.models.memory.MemoryPredictor.join`).
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from typing import NamedTuple

import torch
import torch.nn.functional as F

#: rows (tokens) per chunk on the CPU, in inference and in training (measured best at the
#: paper's sizes: one block's forward + backward at batch 4 took 85-95 ms at 1024-2048 rows,
#: 96-112 ms in one 4096-row chunk, 104-107 ms through the plain layers); other devices take
#: the whole batch at once
CPU_CHUNK_ROWS = 1024
CPU_TRAIN_CHUNK_ROWS = 2048

#: on the CPU, networks whose first level is at most this wide run the plain layers: measured
#: (2 threads, 10 -> 10, fastest of 5) at embed 32 / 64 the plain layers took 0.9-1.06x the
#: chunked kernel's training step and 0.71-0.88x its inference (the chunked kernel's Python
#: and chunk bookkeeping is a fixed cost per block; the first cell's input mixing is computed
#: for all teacher-forced steps at once only on the plain layers), at embed 128 they were
#: within noise in training (0.92-1.09x) and up to 1.1x slower in inference, and the chunked
#: kernel's training memory is under half (docs/benchmarks.md)
CPU_PLAIN_MAX_WIDTH = 64


def use_chunked(
    x: torch.Tensor, dropout: bool = False, compiled: bool = False, width: int | None = None
) -> bool:
    """The one policy (as timm's ``use_fused_attn``): whether a Swin block on ``x`` runs the
    chunked kernel (and the SwinLSTM cell its lean gate update) rather than the plain layers.

    Yes in fp32 / fp64 without autocast, outside ``torch.compile`` (``compiled``: the caller
    decides for a function it compiles) and exporters' traces (they record plain ops, not
    in-place chunk writes), except on the CPU for a network whose first level is ``width`` <=
    :data:`CPU_PLAIN_MAX_WIDTH` channels wide (small networks: the plain layers are faster
    there); with gradients recorded on every device (the lean backward) unless ``dropout`` is
    active (this kernel has none); in inference on the CPU only (elsewhere PyTorch's fused
    SDPA kernels serve inference well).
    """
    device = x.device.type
    if compiled or torch.is_autocast_enabled(device) or torch.compiler.is_compiling():
        return False
    if torch.jit.is_tracing() or torch.onnx.is_in_onnx_export():
        return False
    if x.dtype not in (torch.float32, torch.float64):
        return False
    if device == "cpu" and width is not None and width <= CPU_PLAIN_MAX_WIDTH:
        return False
    if torch.is_grad_enabled():
        return not dropout
    return device == "cpu"


def default_chunk_rows(device: torch.device, grad: bool) -> int | None:
    """The chunk size (rows) for a block on ``device``; None: one chunk."""
    if device.type != "cpu":
        return None
    return CPU_TRAIN_CHUNK_ROWS if grad else CPU_CHUNK_ROWS


@dataclass(frozen=True)
class Chunk:
    """Rows ``r0:r1`` of the flattened tokens: samples ``b0:b1`` and windows ``w0:w1`` of the
    (repeated) mask."""

    r0: int
    r1: int
    b0: int
    b1: int
    w0: int
    w1: int


@functools.lru_cache(maxsize=256)
def chunk_plan(
    batch: int, length: int, window_tokens: int, rows: int | None
) -> tuple[int, tuple[Chunk, ...]]:
    """Split ``batch`` samples of ``length`` tokens into chunks of at most ``rows`` rows.

    Returns ``(k, chunks)``: ``k`` samples per chunk when a sample fits in a chunk (the mask is
    then repeated k times), else 1 and chunks of whole windows of one sample (the largest
    number of windows that divides the sample's and fits). ``rows=None``: one chunk.
    """
    n_win = length // window_tokens
    rows = batch * length if rows is None else max(window_tokens, rows)
    if length <= rows:
        k = min(batch, rows // length)
        chunks = [
            Chunk(b * length, min(b + k, batch) * length, b, min(b + k, batch), 0,
                  (min(b + k, batch) - b) * n_win)
            for b in range(0, batch, k)
        ]  # fmt: skip
        return k, tuple(chunks)
    per = max(w for w in range(1, n_win + 1) if n_win % w == 0 and w * window_tokens <= rows)
    chunks = [
        Chunk(b * length + w * window_tokens, b * length + (w + per) * window_tokens, b, b + 1,
              w, w + per)
        for b in range(batch)
        for w in range(0, n_win, per)
    ]  # fmt: skip
    return 1, tuple(chunks)


class BlockWeights(NamedTuple):
    """A Swin block's parameters, by name (``red_*`` None for a block that does not mix)."""

    norm1_weight: torch.Tensor
    norm1_bias: torch.Tensor
    qkv_weight: torch.Tensor
    qkv_bias: torch.Tensor
    proj_weight: torch.Tensor
    proj_bias: torch.Tensor
    norm2_weight: torch.Tensor
    norm2_bias: torch.Tensor
    fc1_weight: torch.Tensor
    fc1_bias: torch.Tensor
    fc2_weight: torch.Tensor
    fc2_bias: torch.Tensor
    red_weight: torch.Tensor | None = None
    red_bias: torch.Tensor | None = None


@dataclass(frozen=True)
class BlockSpec:
    """What the chunked kernel needs besides tensors with gradients."""

    heads: int
    window_tokens: int
    eps1: float
    eps2: float
    k: int  # samples per chunk (mask repeats)
    chunks: tuple[Chunk, ...]
    gather: torch.Tensor | None  # (B * L,) row of each shifted-order token, or None


def _rows(t: torch.Tensor, gather: torch.Tensor | None, c: Chunk) -> torch.Tensor:
    """Rows of chunk ``c`` of a flat (B * L, C) tensor, in the block's (shifted) order."""
    return t[c.r0 : c.r1] if gather is None else t.index_select(0, gather[c.r0 : c.r1])


def _scaled(t: torch.Tensor, factor: torch.Tensor | None, c: Chunk) -> torch.Tensor:
    """``t`` (rows, C) times the chunk's per-sample factors (B, 1, 1) (in place), or ``t``."""
    if factor is not None:
        t.view(c.b1 - c.b0, -1, t.shape[-1]).mul_(factor[c.b0 : c.b1])
    return t


def _times(t: torch.Tensor, factor: torch.Tensor | None, c: Chunk) -> torch.Tensor:
    """``t`` (rows, C) times the chunk's per-sample factors (B, 1, 1), as a new tensor; or ``t``."""
    if factor is None:
        return t
    return (t.view(c.b1 - c.b0, -1, t.shape[-1]) * factor[c.b0 : c.b1]).view(t.shape)


def _heads(t: torch.Tensor, windows: int, spec: BlockSpec, parts: int) -> torch.Tensor:
    """(rows, parts * C) token-major -> (parts, windows * heads, N, d) head-major (a copy)."""
    n, h = spec.window_tokens, spec.heads
    d = t.shape[-1] // parts // h
    t = t.view(windows, n, parts, h, d).permute(2, 0, 3, 1, 4)
    return t.reshape(parts, windows * h, n, d)


def _tokens(t: torch.Tensor, windows: int, spec: BlockSpec) -> torch.Tensor:
    """(parts, windows * heads, N, d) -> (rows, parts * C): the inverse of :func:`_heads`."""
    parts, _, n, d = t.shape
    t = t.view(parts, windows, spec.heads, n, d).permute(1, 3, 0, 2, 4)
    return t.reshape(windows * n, parts * spec.heads * d)


def _heads_with_bias(qkv, bias, windows: int, spec: BlockSpec, out=None):
    """q, k, v (each (windows * heads, N, d)) from the bias-free projection (rows, 3C): the
    bias is added in the same pass that reorders tokens by head (into ``out`` if given)."""
    n, h = spec.window_tokens, spec.heads
    d = qkv.shape[-1] // 3 // h
    if out is None:
        out = qkv.new_empty(3, windows * h, n, d)
    src = qkv.view(windows, n, 3, h, d).permute(2, 0, 3, 1, 4)
    torch.add(src, bias.view(3, 1, h, 1, d), out=out.view(3, windows, h, n, d))
    return out.unbind(0)


def _residual(x, a, w, b, factor, c: Chunk, out=None):
    """``x + factor * (a @ w.T + b)`` (rows, C), into ``out`` if given. Without a factor, the
    residual and the bias are summed first and the matmul accumulates onto them."""
    if factor is None:
        return torch.add(x, b, out=out).addmm_(a, w.t())
    return _scaled(torch.addmm(b, a, w.t(), out=out), factor, c).add_(x)


def _tile_mask(mask: torch.Tensor, windows: int) -> torch.Tensor:
    """(m, heads, N, N) with m = 1 or nW -> (windows * heads, N, N): the mask of every window
    of ``k`` consecutive samples (a view when it already is)."""
    _, heads, n, _ = mask.shape
    return mask.unsqueeze(0).expand(windows // mask.shape[0], *mask.shape).reshape(-1, n, n)


def _norm(x: torch.Tensor, w: torch.Tensor, b: torch.Tensor, eps: float):
    """LayerNorm over the last dim -> (out, mean, rstd)."""
    return torch.ops.aten.native_layer_norm(x, (x.shape[-1],), w, b, eps)


def _norm_backward(grad, x, mean, rstd, w, b):
    """(d x, d weight, d bias) of :func:`_norm`."""
    return torch.ops.aten.native_layer_norm_backward(
        grad, x, (x.shape[-1],), mean, rstd, w, b, [True, True, True]
    )


def _branch_input(x_c, inj_c, w, spec, out=None):
    """The attention branch's input y (rows, C): norm1(x), or ``inject`` mixed in (written to
    ``out`` if given)."""
    n1 = _norm(x_c, w.norm1_weight, w.norm1_bias, spec.eps1)[0]
    if w.red_weight is None:
        return n1
    ni = _norm(inj_c, w.norm1_weight, w.norm1_bias, spec.eps1)[0]
    return torch.addmm(w.red_bias, torch.cat((n1, ni), dim=1), w.red_weight.t(), out=out)


def block_forward(x, inject, mask, dp1, dp2, spec: BlockSpec, w: BlockWeights, save: bool):
    """The block over all chunks. x, inject (B, L, C); mask (nW or 1, heads, N, N) additive
    (the attention mask of every window of one sample, or of all windows).

    ``w``: the block's :class:`BlockWeights`. Returns ``(out (B, L, C), saved)``; ``saved`` holds what
    backward needs when ``save`` (else None).
    """
    b, length, c = x.shape
    n, heads = spec.window_tokens, spec.heads
    scale = (c // heads) ** -0.5
    xf = x.reshape(b * length, c)
    injf = None if inject is None else inject.reshape(b * length, c)
    mask3 = _tile_mask(mask, spec.k * length // n)
    out = torch.empty_like(xf)
    saved = None
    if save:
        rows = b * length
        saved = dict(
            qkv=xf.new_empty(3, rows // n * heads, n, c // heads),  # q, k, v by head
            p=xf.new_empty(rows // n * heads, n, n),
            x1=xf.new_empty(rows, c),
            h=xf.new_empty(rows, w.fc1_weight.shape[0]),
            y=xf.new_empty(rows, c) if w.red_weight is not None else None,
        )
    for ch in spec.chunks:
        windows = (ch.r1 - ch.r0) // n

        def slot(key: str, lo: int = ch.r0, hi: int = ch.r1) -> torch.Tensor | None:
            """Where this chunk's ``key`` is kept for backward (None: a temporary)."""
            return None if saved is None or saved[key] is None else saved[key][lo:hi]

        x_c = _rows(xf, spec.gather, ch)
        inj_c = None if injf is None else injf[ch.r0 : ch.r1]
        y = _branch_input(x_c, inj_c, w, spec, out=slot("y"))
        hs = slice(ch.r0 // n * heads, ch.r1 // n * heads)  # this chunk's (window, head) rows
        q, k, v = _heads_with_bias(
            torch.mm(y, w.qkv_weight.t()),
            w.qkv_bias,
            windows,
            spec,
            None if saved is None else saved["qkv"][:, hs],
        )
        s = torch.baddbmm(mask3[ch.w0 * heads : ch.w1 * heads], q, k.transpose(1, 2), alpha=scale)
        p = (
            torch.softmax(s, dim=-1)
            if saved is None
            else torch.softmax(s, dim=-1, out=saved["p"][hs])
        )
        o = _tokens(torch.bmm(p, v).unsqueeze(0), windows, spec)
        x1 = _residual(x_c, o, w.proj_weight, w.proj_bias, dp1, ch, out=slot("x1"))
        z = _norm(x1, w.norm2_weight, w.norm2_bias, spec.eps2)[0]
        hid = torch.addmm(w.fc1_bias, z, w.fc1_weight.t(), out=slot("h"))
        g = F.gelu(hid) if save else torch.ops.aten.gelu_(hid)
        direct = out[ch.r0 : ch.r1] if spec.gather is None else None  # unshifted: write in place
        res = _residual(x1, g, w.fc2_weight, w.fc2_bias, dp2, ch, out=direct)
        if direct is None:
            out.index_copy_(0, spec.gather[ch.r0 : ch.r1], res)
    return out.view(b, length, c), saved


def block_backward(
    d_out, x, inject, mask, dp1, dp2, spec: BlockSpec, w: BlockWeights, saved, need_inject
):
    """Gradients of :func:`block_forward`: (d x, d inject, d mask, d weights as BlockWeights)."""
    b, length, c = x.shape
    n, heads = spec.window_tokens, spec.heads
    scale = (c // heads) ** -0.5
    xf = x.reshape(b * length, c)
    injf = None if inject is None else inject.reshape(b * length, c)
    gf = d_out.reshape(b * length, c)
    dx = torch.empty_like(xf)
    d_inj = torch.empty_like(xf) if need_inject and injf is not None else None
    dw = BlockWeights(*(None if t is None else torch.zeros_like(t) for t in w))  # their grads
    tiles = spec.k * length // n  # windows of the tiled mask
    d_mask = mask.new_zeros(tiles * heads, n, n)
    for ch in spec.chunks:
        windows = (ch.r1 - ch.r0) // n
        rs = slice(ch.r0, ch.r1)
        g_out = _rows(gf, spec.gather, ch)
        # MLP branch: out = x1 + dp2 * fc2(gelu(fc1(norm2(x1))))
        x1, hid = saved["x1"][rs], saved["h"][rs]
        d_m = _times(g_out, dp2, ch)
        dw.fc2_weight.addmm_(d_m.t(), F.gelu(hid))
        dw.fc2_bias.add_(d_m.sum(0))
        d_h = torch.ops.aten.gelu_backward(d_m.mm(w.fc2_weight), hid)
        z, mean2, rstd2 = _norm(x1, w.norm2_weight, w.norm2_bias, spec.eps2)
        dw.fc1_weight.addmm_(d_h.t(), z)
        dw.fc1_bias.add_(d_h.sum(0))
        d_x1, gw, gb = _norm_backward(
            d_h.mm(w.fc1_weight), x1, mean2, rstd2, w.norm2_weight, w.norm2_bias
        )
        dw.norm2_weight.add_(gw)
        dw.norm2_bias.add_(gb)
        d_x1 += g_out
        # attention branch: x1 = x + dp1 * proj(softmax(q k^T * scale + mask) v)
        d_a = _times(d_x1, dp1, ch)
        hs = slice(ch.r0 // n * heads, ch.r1 // n * heads)
        q, k, v = saved["qkv"][:, hs].unbind(0)
        p = saved["p"][hs]
        dw.proj_weight.addmm_(d_a.t(), _tokens(torch.bmm(p, v).unsqueeze(0), windows, spec))
        dw.proj_bias.add_(d_a.sum(0))
        d_o = _heads(d_a.mm(w.proj_weight), windows, spec, 1)[0]
        d_qkv_h = torch.empty((3, *q.shape), dtype=q.dtype, device=q.device)
        torch.bmm(p.transpose(1, 2), d_o, out=d_qkv_h[2])
        d_s = torch.bmm(d_o, v.transpose(1, 2))
        d_s -= (d_s * p).sum(-1, keepdim=True)
        d_s *= p
        d_mask[ch.w0 * heads : ch.w1 * heads] += d_s
        torch.bmm(d_s, k, out=d_qkv_h[0]).mul_(scale)
        torch.bmm(d_s.transpose(1, 2), q, out=d_qkv_h[1]).mul_(scale)
        d_qkv = _tokens(d_qkv_h, windows, spec)
        x_c = _rows(xf, spec.gather, ch)
        n1, mean1, rstd1 = _norm(x_c, w.norm1_weight, w.norm1_bias, spec.eps1)
        if w.red_weight is None:
            y = n1
        else:
            y = saved["y"][rs]
            inj_c = injf[rs]
            ni, mean_i, rstd_i = _norm(inj_c, w.norm1_weight, w.norm1_bias, spec.eps1)
        dw.qkv_weight.addmm_(d_qkv.t(), y)
        dw.qkv_bias.add_(d_qkv.sum(0))
        d_y = d_qkv.mm(w.qkv_weight)
        if w.red_weight is not None:
            dw.red_weight.addmm_(d_y.t(), torch.cat((n1, ni), dim=1))
            dw.red_bias.add_(d_y.sum(0))
            d_cat = d_y.mm(w.red_weight)
            d_y = d_cat[:, :c]
            d_i, gw, gb = _norm_backward(
                d_cat[:, c:], inj_c, mean_i, rstd_i, w.norm1_weight, w.norm1_bias
            )
            dw.norm1_weight.add_(gw)
            dw.norm1_bias.add_(gb)
            if d_inj is not None:
                d_inj[rs] = d_i
        d_x, gw, gb = _norm_backward(d_y, x_c, mean1, rstd1, w.norm1_weight, w.norm1_bias)
        dw.norm1_weight.add_(gw)
        dw.norm1_bias.add_(gb)
        if spec.gather is None:
            torch.add(d_x, d_x1, out=dx[rs])
        else:
            dx.index_copy_(0, spec.gather[rs], d_x.add_(d_x1))
    d_mask = d_mask.view(tiles // mask.shape[0], *mask.shape).sum(0)
    d_inj = None if d_inj is None else d_inj.view(b, length, c)
    return dx.view(b, length, c), d_inj, d_mask, dw


class _ChunkedBlock(torch.autograd.Function):
    """:func:`block_forward` with :func:`block_backward` as its gradient; the weights come as
    the fields of :class:`BlockWeights`, in their order (autograd takes tensors, not tuples)."""

    @staticmethod
    def forward(ctx, x, inject, mask, dp1, dp2, spec, *weights):
        w = BlockWeights(*weights)
        out, saved = block_forward(x, inject, mask, dp1, dp2, spec, w, save=True)
        keys = [k for k, v in saved.items() if v is not None]
        ctx.keys, ctx.spec = keys, spec
        ctx.save_for_backward(x, inject, mask, dp1, dp2, *w, *(saved[k] for k in keys))
        return out

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx, d_out):
        t = ctx.saved_tensors
        x, inject, mask, dp1, dp2 = t[:5]
        n = len(BlockWeights._fields)
        w = BlockWeights(*t[5 : 5 + n])
        saved = dict(zip(ctx.keys, t[5 + n :]))
        saved.setdefault("y", None)
        d_x, d_inj, d_mask, dw = block_backward(
            d_out.contiguous(), x, inject, mask, dp1, dp2, ctx.spec, w, saved,
            need_inject=ctx.needs_input_grad[1],
        )  # fmt: skip
        return (d_x, d_inj, d_mask, None, None, None, *dw)


def chunked_block(x, inject, mask, dp1, dp2, spec: BlockSpec, w: BlockWeights) -> torch.Tensor:
    """(B, L, C) -> (B, L, C) through the chunked kernel; an autograd Function when gradients are
    recorded, the plain chunk loop (in-place GELU, nothing saved) otherwise."""
    x = x.contiguous()
    inject = None if inject is None else inject.contiguous()
    if torch.is_grad_enabled():
        return _ChunkedBlock.apply(x, inject, mask, dp1, dp2, spec, *w)
    return block_forward(x, inject, mask, dp1, dp2, spec, w, save=False)[0]
