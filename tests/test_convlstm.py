"""ConvLSTM predictors: shapes, the cell, scheduled sampling, bad input, and overfitting a batch."""

import pytest
import torch
from lmc_helpers import one_thread  # noqa: F401 (autouse fixture)

from swinlstm.engine.rules import teacher_prob
from swinlstm.models import build_model
from swinlstm.models.convlstm import ConvLSTMCell
from swinlstm.models.sampling import scheduled_sampling_forward


def tiny_convlstm(**kw):
    cfg = dict(img_size=8, in_chans=1, patch_size=2, num_hidden=[6, 6], filter_size=3)
    cfg.update(kw)
    return build_model("convlstm", **cfg)


def tiny_lmc(**kw):
    cfg = dict(img_size=16, in_chans=1, memory_size=3, hidden=8, slot_dim=16, num_layers=2)
    cfg.update(kw)
    return build_model("lmc-convlstm", **cfg)


# ----- shapes ------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "cfg",
    [
        dict(),
        dict(in_chans=3, img_size=(8, 12), patch_size=4, num_hidden=[4, 5, 6]),
        dict(patch_size=1, num_hidden=[4], filter_size=5),
        dict(memory_size=3, slot_dim=16),
        dict(memory_size=2, slot_dim=16, in_chans=2, img_size=(16, 8)),
    ],
)
@pytest.mark.parametrize("t_in", [1, 4])
def test_convlstm_shapes(cfg, t_in):
    model = tiny_convlstm(**cfg)
    c, (h, w) = model.in_chans, model.img_size
    x = torch.rand(2, t_in, c, h, w)
    if cfg.get("memory_size") and t_in == 1:  # the memory reads difference frames
        with pytest.raises(ValueError, match="at least 2 frames"):
            model(x, 3)
        return
    assert model(x, 3).shape == (2, t_in - 1 + 3, c, h, w)
    assert model.predict(x, 2).shape == (2, 2, c, h, w)
    if cfg.get("memory_size"):
        long = torch.rand(2, 5, c, h, w)
        assert model(x, 3, long_frames=long, phase=1).shape == (2, t_in + 2, c, h, w)


@pytest.mark.parametrize(
    "cfg",
    [
        dict(),
        dict(memory_size=0),
        dict(in_chans=3, img_size=(18, 22)),  # not multiples of 4 or 16
        dict(img_size=(10, 6), memory_size=2),
        dict(final_sigmoid=True),
    ],
)
@pytest.mark.parametrize("t_in", [2, 4])
def test_lmc_convlstm_shapes(cfg, t_in):
    model = tiny_lmc(**cfg)
    c, (h, w) = model.in_chans, model.img_size
    x, long = torch.rand(2, t_in, c, h, w), torch.rand(2, 6, c, h, w)
    for phase in (1, 2):
        out = model(x, 3, long_frames=long, phase=phase)
        assert out.shape == (2, 3, c, h, w)  # forecast only
    assert model.predict(x, 2).shape == (2, 2, c, h, w)
    if cfg.get("final_sigmoid"):
        assert ((out > 0) & (out < 1)).all()


def test_authors_movingmnist_config():
    model = build_model(
        "lmc-convlstm", img_size=64, in_chans=1, memory_size=100, final_sigmoid=False
    )
    assert model.forecast_only and model.feature_size == (16, 16)
    assert tuple(model.memory.memory_w.shape) == (100, 512)
    assert not isinstance(model.decoder[-1], torch.nn.Sigmoid)
    x = torch.rand(1, 10, 1, 64, 64)
    with torch.no_grad():
        assert model.encode_context(x).shape == (1, 128, 16, 16)


def test_step_streaming_equals_forward():
    torch.manual_seed(0)
    model = tiny_convlstm().eval()
    x = torch.rand(1, 3, 1, 8, 8)
    with torch.no_grad():
        full = model(x, 2)
        state, outs = model.init_state(1), []
        for t in range(3):
            y, state = model.step(x[:, t], state)
            outs.append(y)
        y, state = model.step(y, state)
        outs.append(y)
    assert torch.allclose(torch.stack(outs, 1), full, atol=1e-6)


def test_cell_equations():
    cell = ConvLSTMCell(2, 3, kernel_size=3, bias=True, forget_bias=1.0)
    x, h, c = torch.randn(1, 2, 4, 4), torch.randn(1, 3, 4, 4), torch.randn(1, 3, 4, 4)
    gx, gh = cell.conv2d_x(x), cell.conv2d_h(h)
    i, g, f, o = (gx + gh).chunk(4, 1)
    c_ref = torch.sigmoid(f + 1.0) * c + torch.sigmoid(i) * torch.tanh(g)
    h_ref = torch.sigmoid(o) * torch.tanh(c_ref)
    h2, c2 = cell(x, h, c)
    assert torch.allclose(c2, c_ref, atol=1e-6) and torch.allclose(h2, h_ref, atol=1e-6)
    with pytest.raises(ValueError, match="odd"):
        ConvLSTMCell(2, 3, kernel_size=4)


# ----- scheduled sampling ------------------------------------------------------------------------
def test_scheduled_sampling_extremes():
    torch.manual_seed(0)
    model = tiny_convlstm().eval()
    x, future = torch.rand(2, 3, 1, 8, 8), torch.rand(2, 3, 1, 8, 8)
    with torch.no_grad():
        free = model(x, 3)
        assert torch.equal(model(x, 3, teacher_frames=future, teacher_prob=0.0), free)
        assert torch.allclose(scheduled_sampling_forward(model, x, 3, future, 0.0), free)
        forced = model(x, 3, teacher_frames=future, teacher_prob=1.0)
        # always fed the true frames: the same as running over the longer clip
        assert torch.allclose(forced, model(torch.cat([x, future[:, :2]], 1), 1), atol=1e-6)
        gen = torch.Generator().manual_seed(1)
        mixed = scheduled_sampling_forward(model, x, 3, future, 0.5, generator=gen)
    assert mixed.shape == free.shape


def test_teacher_prob_schedule():
    assert teacher_prob(0) == pytest.approx(1 - 2e-5)
    assert teacher_prob(24999) == pytest.approx(0.5)
    assert teacher_prob(49999) == pytest.approx(0.0)
    assert teacher_prob(60000) == 0.0
    assert teacher_prob(10, stop_iter=100, rate=0.01) == pytest.approx(0.89)


def test_scheduled_sampling_bad_teacher_frames():
    model = tiny_convlstm()
    x = torch.rand(1, 3, 1, 8, 8)
    with pytest.raises(ValueError, match="teacher_frames must be"):
        model(x, 4, teacher_frames=torch.rand(1, 2, 1, 8, 8), teacher_prob=0.5)
    with pytest.raises(ValueError, match="channels"):
        model(x, 2, teacher_frames=torch.rand(1, 2, 2, 8, 8), teacher_prob=0.5)
    with pytest.raises(ValueError, match="teacher_prob"):
        model(x, 2, teacher_frames=torch.rand(1, 2, 1, 8, 8), teacher_prob=1.5)


# ----- bad input ---------------------------------------------------------------------------------
@pytest.mark.parametrize("make", [tiny_convlstm, tiny_lmc])
def test_bad_frames(make):
    model = make()
    c, (h, w) = model.in_chans, model.img_size
    with pytest.raises(ValueError, match=r"\(B, T, C, H, W\)"):
        model(torch.rand(2, c, h, w), 2)
    with pytest.raises(ValueError, match="in_chans=1"):
        model(torch.rand(1, 3, 2, h, w), 2)
    with pytest.raises(ValueError, match="img_size"):
        model(torch.rand(1, 3, c, h + 1, w), 2)
    for bad in (0, -1, 2.0):
        with pytest.raises(ValueError, match="out_len"):
            model(torch.rand(1, 3, c, h, w), bad)


def test_bad_memory_inputs():
    model = tiny_lmc()
    x = torch.rand(1, 3, 1, 16, 16)
    with pytest.raises(ValueError, match="phase 1 reads the long clip"):
        model(x, 2, phase=1)
    with pytest.raises(ValueError, match="phase must be 1"):
        model(x, 2, phase=3)
    with pytest.raises(ValueError, match="long_frames has 2 channels"):
        model(x, 2, long_frames=torch.rand(1, 5, 2, 16, 16), phase=1)
    with pytest.raises(ValueError, match="long_frames must hold at least 2"):
        model(x, 2, long_frames=torch.rand(1, 1, 1, 16, 16), phase=1)
    with pytest.raises(ValueError, match="frames must hold at least 2"):
        model(x[:, :1], 2)
    # without memory there is nothing to read: one frame and no long clip are fine
    assert tiny_lmc(memory_size=0)(x[:, :1], 2, phase=1).shape == (1, 2, 1, 16, 16)


@pytest.mark.parametrize(
    "name,cfg,match",
    [
        ("convlstm", dict(img_size=10, patch_size=4), "divisible by patch_size"),
        ("convlstm", dict(num_hidden=[]), "num_hidden"),
        ("convlstm", dict(filter_size=4), "odd"),
        ("convlstm", dict(memory_size=-1), "memory_size"),
        ("convlstm", dict(in_chans=0), "in_chans"),
        ("convlstm", dict(patch_size=3, img_size=9, memory_size=2), "feature_stride"),
        ("lmc-convlstm", dict(hidden=7), "hidden"),
        ("lmc-convlstm", dict(memory_size=-2), "memory_size"),
        ("lmc-convlstm", dict(img_size=(0, 4)), "img_size"),
    ],
)
def test_bad_config(name, cfg, match):
    with pytest.raises(ValueError, match=match):
        build_model(name, **cfg)


# ----- learning ----------------------------------------------------------------------------------
def test_convlstm_overfits_one_batch():
    torch.manual_seed(0)
    model = tiny_convlstm(num_hidden=[16])
    t = torch.linspace(0, 1, 5).view(1, 5, 1, 1, 1)
    xs = torch.linspace(0, 1, 8)
    clip = torch.sigmoid(10 * (xs.view(1, 1, 1, 1, 8) - 0.2 - 0.5 * t)).expand(2, 5, 1, 8, 8)
    opt = torch.optim.Adam(model.parameters(), lr=1e-2)
    losses = []
    for _ in range(300):
        loss = torch.nn.functional.mse_loss(model(clip[:, :3], 2), clip[:, 1:])
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
        if losses[-1] < losses[0] / 10:
            break
    assert losses[-1] < losses[0] / 10, (losses[0], losses[-1])
