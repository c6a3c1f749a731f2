"""The memory-lean training Functions (swinlstm.models.layers) give the plain graph's numbers."""

from __future__ import annotations

import pytest
import torch

import swinlstm.models.layers as layers
from swinlstm.models import build_model

B_MINI = dict(embed_dim=8, depths=[3], num_heads=[2], window_size=2)
D_MINI = dict(embed_dim=8, depths_down=[2, 1], depths_up=[1, 2], num_heads=[2, 2], window_size=2)


def _loss_and_grads(model, frames, lean: bool, monkeypatch):
    if not lean:
        monkeypatch.setattr(layers, "lean_autograd", lambda: False)
    model.zero_grad(set_to_none=True)
    torch.manual_seed(1)  # the same stochastic-depth draws on both paths
    out = model(frames, 2)
    (out.square().mean() + out.mean()).backward()
    monkeypatch.undo()
    return out.detach(), {n: p.grad.clone() for n, p in model.named_parameters()}


@pytest.mark.parametrize("name", ["swinlstm-b", "swinlstm-d"])
@pytest.mark.parametrize("drop_path", [0.0, 0.3])
def test_lean_training_matches_plain_graph(name, drop_path, monkeypatch):
    torch.manual_seed(0)
    config = B_MINI if name == "swinlstm-b" else D_MINI
    model = build_model(name, img_size=8, drop_path_rate=drop_path, **config).train()
    frames = torch.rand(2, 3, 1, 8, 8)
    out_lean, g_lean = _loss_and_grads(model, frames, True, monkeypatch)
    out_plain, g_plain = _loss_and_grads(model, frames, False, monkeypatch)
    torch.testing.assert_close(out_lean, out_plain, atol=1e-6, rtol=0)
    assert g_lean.keys() == g_plain.keys()
    for key in g_plain:
        scale = g_plain[key].abs().max().item() + 1e-12
        err = (g_lean[key] - g_plain[key]).abs().max().item()
        assert err <= 1e-4 * scale, (key, err, scale)


def test_lean_path_used_only_when_it_applies(monkeypatch):
    monkeypatch.delenv("TORCH_COMPILE_DISABLE", raising=False)
    with torch.no_grad():
        assert not layers.lean_autograd()
    assert layers.lean_autograd()
    with torch.autocast("cpu", dtype=torch.bfloat16):
        assert not layers.lean_autograd()


def test_lean_attention_gradcheck():
    torch.manual_seed(0)
    heads, n, c = 2, 4, 6
    for mask_batch in (1, 3):
        qkv = torch.randn(3, n, 3 * c, dtype=torch.float64, requires_grad=True)
        mask = torch.randn(mask_batch, heads, n, n, dtype=torch.float64, requires_grad=True)
        w = torch.randn(c, c, dtype=torch.float64, requires_grad=True)
        b = torch.randn(c, dtype=torch.float64, requires_grad=True)

        def fn(qkv, mask, w, b):
            return layers._WindowAttentionCore.apply(qkv, mask, heads, 0.5, w, b)

        assert torch.autograd.gradcheck(fn, (qkv, mask, w, b))


def test_lean_norm_functions_gradcheck():
    torch.manual_seed(0)
    d = torch.float64
    x = torch.randn(2, 4, 6, dtype=d, requires_grad=True)
    inj = torch.randn(2, 4, 6, dtype=d, requires_grad=True)
    norm = torch.nn.LayerNorm(6).double()
    with torch.no_grad():
        norm.weight.uniform_(0.5, 1.5)
        norm.bias.normal_()
    mlp = layers.Mlp(6, 12).double()
    red = torch.nn.Linear(12, 6).double()
    fc = torch.nn.Linear(6, 9).double()
    index = torch.tensor([2, 0, 3, 1])
    scale = torch.tensor([0.0, 2.0], dtype=d).view(2, 1, 1)
    assert torch.autograd.gradcheck(lambda x: layers.norm_mlp_residual(x, norm, mlp, scale), (x,))
    assert torch.autograd.gradcheck(lambda x, i: layers.norm_fuse(x, i, norm, red), (x, inj))
    assert torch.autograd.gradcheck(lambda x: layers.norm_linear(x, index, norm, fc), (x,))
    f = torch.randn(2, 4, 6, dtype=d, requires_grad=True)
    assert torch.autograd.gradcheck(lambda f, c: layers._LSTMGates.apply(f, c), (f, inj))
