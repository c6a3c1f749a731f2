"""The chunked Swin kernel (swinlstm.models.chunked) computes what the plain layers compute.

Outputs and every parameter's gradient are compared with the plain module path (PyTorch's SDPA,
autograd through nn layers) for each way rows can be chunked: one chunk, several chunks of
windows of one sample, several samples per chunk with a partial last chunk.
"""

from __future__ import annotations

import pytest
import torch

import swinlstm.models.layers as layers
from swinlstm.models import build_model
from swinlstm.models.chunked import (
    CPU_PLAIN_MAX_WIDTH,
    BlockSpec,
    BlockWeights,
    _ChunkedBlock,
    chunk_plan,
)

B_MINI = dict(embed_dim=8, depths=[3], num_heads=[2], window_size=2)
D_MINI = dict(embed_dim=8, depths_down=[2, 1], depths_up=[1, 2], num_heads=[2, 2], window_size=2)

# img 16, patch 2: 8x8 = 64 tokens per sample at level 0, windows of 2x2 = 4 tokens.
CHUNKINGS = {
    "one chunk": 1 << 20,
    "one window per chunk": 4,
    "two windows per chunk": 8,
    "two samples per chunk, partial last": 2 * 64,
    "cpu default": None,
}


def _set_chunks(model, rows):
    for m in model.modules():
        if isinstance(m, layers.SwinBlock):
            m.chunk_rows = rows


def _run(model, frames, chunked: bool, monkeypatch):
    """Inference output, training output and gradients, on the chunked or the plain path."""
    monkeypatch.setattr(model, "chunked", chunked)  # forced: the policy picks plain at this width
    model.eval()
    with torch.no_grad():
        infer = model(frames, 2)
    model.train()
    model.zero_grad(set_to_none=True)
    torch.manual_seed(1)  # the same stochastic-depth draws on both paths
    out = model(frames, 2)
    (out.square().mean() + out.mean()).backward()
    monkeypatch.undo()
    return infer, out.detach(), {n: p.grad.clone() for n, p in model.named_parameters()}


@pytest.mark.parametrize("name", ["swinlstm-b", "swinlstm-d"])
@pytest.mark.parametrize("drop_path", [0.0, 0.3])
@pytest.mark.parametrize("chunking", list(CHUNKINGS))
def test_chunked_matches_plain_layers(name, drop_path, chunking, monkeypatch):
    torch.manual_seed(0)
    config = B_MINI if name == "swinlstm-b" else D_MINI
    model = build_model(name, img_size=16, drop_path_rate=drop_path, **config)
    frames = torch.rand(3, 3, 1, 16, 16)
    _set_chunks(model, CHUNKINGS[chunking])
    inf_f, out_f, g_f = _run(model, frames, True, monkeypatch)
    inf_p, out_p, g_p = _run(model, frames, False, monkeypatch)
    torch.testing.assert_close(inf_f, inf_p, atol=1e-6, rtol=0)
    torch.testing.assert_close(out_f, out_p, atol=1e-6, rtol=0)
    assert g_f.keys() == g_p.keys()
    for key in g_p:
        scale = g_p[key].abs().max().item() + 1e-12
        err = (g_f[key] - g_p[key]).abs().max().item()
        assert err <= 1e-4 * scale, (key, err, scale)


def test_chunked_path_used_only_where_it_applies():
    wide = dict(B_MINI, embed_dim=CPU_PLAIN_MAX_WIDTH + 8)
    model = build_model("swinlstm-b", img_size=8, **wide)
    frame = torch.rand(1, 1, 8, 8)
    assert model.train().uses_chunked(frame)
    with torch.no_grad():
        assert model.eval().uses_chunked(frame)
        assert not model.uses_chunked(frame.half())
    with torch.autocast("cpu", dtype=torch.bfloat16):
        assert not model.uses_chunked(frame)
    dropout = build_model(
        "swinlstm-d", img_size=8, drop_rate=0.1, **dict(D_MINI, embed_dim=CPU_PLAIN_MAX_WIDTH + 8)
    )
    assert not dropout.train().uses_chunked(frame)
    with torch.no_grad():
        assert dropout.eval().uses_chunked(frame)
    compiled = build_model("swinlstm-b", img_size=8, compile=True, **wide)
    assert not compiled.uses_chunked(frame)
    # small networks run the plain layers on the CPU, in training and inference; forced works
    narrow = build_model("swinlstm-b", img_size=8, **B_MINI)
    assert not narrow.train().uses_chunked(frame)
    with torch.no_grad():
        assert not narrow.eval().uses_chunked(frame)
    narrow.chunked = True
    assert narrow.uses_chunked(frame)


@pytest.mark.parametrize(
    "batch, length, rows", [(3, 64, 2), (3, 64, 128), (5, 16, 40), (2, 64, None)]
)
def test_chunk_plan_partitions_rows_into_whole_windows(batch, length, rows):
    n = 4
    k, chunks = chunk_plan(batch, length, n, rows)
    covered = torch.zeros(batch * length, dtype=torch.int64)
    n_win = length // n
    for ch in chunks:
        covered[ch.r0 : ch.r1] += 1
        assert ch.r0 % n == 0 and ch.r1 % n == 0
        assert ch.r1 - ch.r0 <= max(n, rows or batch * length)
        assert ch.b0 == ch.r0 // length and ch.b1 == -(-ch.r1 // length)
        assert (ch.w1 - ch.w0) * n == ch.r1 - ch.r0  # mask windows match the rows
        assert ch.w0 == (ch.r0 // n) % n_win and ch.w1 <= k * n_win
    assert bool((covered == 1).all())
    if rows is not None and rows >= length:
        assert k == min(batch, rows // length)


def test_chunked_block_gradcheck():
    """Every input's gradient, shifted and fusing blocks, stochastic depth, several chunks."""
    torch.manual_seed(0)
    d = torch.float64
    b, length, c, heads, n = 2, 8, 4, 2, 4

    def params(mix):
        shapes = [(c,), (c,), (3 * c, c), (3 * c,), (c, c), (c,), (c,), (c,),
                  (2 * c, c), (2 * c,), (c, 2 * c), (c,)]  # fmt: skip
        if mix:
            shapes += [(c, 2 * c), (c,)]
        wts = [torch.randn(s, dtype=d, requires_grad=True) for s in shapes]
        return wts + ([] if mix else [None, None])

    x = torch.randn(b, length, c, dtype=d, requires_grad=True)
    inject = torch.randn(b, length, c, dtype=d, requires_grad=True)
    dp1 = torch.tensor([0.0, 2.0], dtype=d).view(2, 1, 1)
    dp2 = torch.tensor([1.5, 0.5], dtype=d).view(2, 1, 1)
    gather = torch.tensor([1, 0, 3, 2, 5, 4, 7, 6])
    gather = torch.cat([gather, gather + length])
    for mix, shifted, rows in ((True, False, 8), (False, True, 4), (False, True, 1 << 10)):
        wts = params(mix)
        mask = torch.randn(length // n if shifted else 1, heads, n, n, dtype=d, requires_grad=True)
        k, chunks = chunk_plan(b, length, n, rows)
        spec = BlockSpec(heads, n, 1e-5, 1e-5, k, tuple(chunks), gather if shifted else None)
        inj = inject if mix else None
        tensors = [t for t in (x, inj, mask, *wts) if t is not None]

        def fn(*ts, inj=inj, wts=wts, spec=spec):
            it = iter(ts)
            xx = next(it)
            ii = None if inj is None else next(it)
            mm = next(it)
            ww = [None if w is None else next(it) for w in wts]
            return _ChunkedBlock.apply(xx, ii, mm, dp1, dp2, spec, *BlockWeights(*ww))

        assert torch.autograd.gradcheck(fn, tensors), (mix, shifted, rows)


def test_lstm_gates_gradcheck():
    torch.manual_seed(0)
    f = torch.randn(2, 4, 6, dtype=torch.float64, requires_grad=True)
    c = torch.randn(2, 4, 6, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(lambda f, c: layers._LSTMGates.apply(f, c), (f, c))
