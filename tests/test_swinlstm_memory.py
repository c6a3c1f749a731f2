"""SwinLSTM with LMC-Memory: the read-out joins the last tokens before patch inflation."""

import pytest
import torch

from swinlstm.engine.rules import alignment_loss, loss_targets, memory_alignment_step
from swinlstm.models import build_model

TINY = {
    "swinlstm-b": dict(depths=[2], num_heads=[2]),
    "swinlstm-d": dict(depths_down=[2, 2], depths_up=[2, 2], num_heads=[2, 4]),
}


def tiny(name, memory_size=6, img_size=16, **kw):
    torch.manual_seed(0)
    cfg = dict(img_size=img_size, patch_size=2, in_chans=1, embed_dim=8, window_size=4)
    cfg.update(TINY[name], **kw)
    return build_model(name, memory_size=memory_size, slot_dim=16, **cfg)


@pytest.fixture(autouse=True, scope="module")
def one_thread():
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


@pytest.mark.parametrize("name", sorted(TINY))
@pytest.mark.parametrize("img_size", [16, (12, 20)])
def test_shapes_both_phases(name, img_size):
    model = tiny(name, img_size=img_size)
    h, w = model.img_size
    x, long = torch.rand(2, 4, 1, h, w), torch.rand(2, 7, 1, h, w)
    assert model(x, 3, long_frames=long, phase=1).shape == (2, 6, 1, h, w)
    assert model(x, 3).shape == (2, 6, 1, h, w)
    assert model.predict(x, 3).shape == (2, 3, 1, h, w)


@pytest.mark.parametrize("name", sorted(TINY))
def test_memory_changes_the_output_and_no_memory_builds_nothing(name):
    plain = tiny(name, memory_size=0)
    assert plain.memory is None and plain.attention_func is None
    with_memory = tiny(name)
    # the network before the memory is built in the same order: same weights
    own = with_memory.state_dict()
    for key, value in plain.state_dict().items():
        if not key.startswith("inflate."):
            assert torch.equal(value, own[key]), key
    assert (
        own["inflate.proj.weight"].shape[0]
        == 2 * plain.state_dict()["inflate.proj.weight"].shape[0]
    )


@pytest.mark.parametrize("name", sorted(TINY))
def test_phase_1_trains_slots_and_context_encoder_phase_2_the_matching_encoder(name):
    model = tiny(name)
    x, long, future = (
        torch.rand(2, 4, 1, 16, 16),
        torch.rand(2, 7, 1, 16, 16),
        torch.rand(2, 3, 1, 16, 16),
    )
    target = loss_targets(model, x, future)
    alignment_loss(model(x, 3, long_frames=long, phase=1), target).backward()
    mem = model.memory
    assert mem.memory_w.grad is not None and mem.memory_w.grad.abs().sum() > 0
    assert mem.motion_context_encoder[0].weight.grad is not None
    assert mem.motion_matching_encoder[0].weight.grad is None
    assert model.attention_func[2].weight.grad is not None
    model.zero_grad(set_to_none=True)
    mem.memory_w.requires_grad_(False)
    alignment_loss(model(x, 3, phase=2), target).backward()
    assert mem.memory_w.grad is None
    assert mem.motion_matching_encoder[0].weight.grad is not None


@pytest.mark.parametrize("mode", ["none", "zeros"])
@pytest.mark.parametrize("name", sorted(TINY))
def test_alignment_step_moves_slots_in_phase_1_only(name, mode):
    """none (PyTorch >= 2): phase 2 leaves the slots exactly; zeros (PyTorch 1.6, the authors'
    runs): Adam's momentum moves them in phase 2 too."""
    model = tiny(name)
    opt = torch.optim.Adam(model.parameters(), lr=1e-2)
    x, long, future = (
        torch.rand(2, 4, 1, 16, 16),
        torch.rand(2, 7, 1, 16, 16),
        torch.rand(2, 3, 1, 16, 16),
    )
    slots = model.memory.memory_w
    snapshots = []
    real_step = opt.step

    def recording_step(*a, **kw):
        before = slots.detach().clone()
        out = real_step(*a, **kw)
        snapshots.append((before, slots.detach().clone()))
        return out

    opt.step = recording_step
    for _ in range(2):
        targets = loss_targets(model, x, future)
        losses = memory_alignment_step(model, opt, x, targets, long, 3, zero_grad=mode)
    assert set(losses) == {"loss_p1", "loss_p2", "loss"}
    assert not torch.equal(*snapshots[2])  # phase 1
    # phase 2, with Adam momentum on the slots
    assert torch.equal(*snapshots[3]) is (mode == "none")


@pytest.mark.parametrize("name", sorted(TINY))
def test_streaming_with_memory_context_equals_forward(name):
    model = tiny(name).eval()
    x = torch.rand(1, 4, 1, 16, 16)
    with torch.no_grad():
        full = model(x, 2)
        context = model.encode_context(x)
        state = model.init_state(1)
        outs = []
        for t in range(4):
            y, state = model.step(x[:, t], state, context)
            outs.append(y)
        y, state = model.step(outs[-1], state, context)
        outs.append(y)
    torch.testing.assert_close(torch.stack(outs, 1), full, atol=1e-5, rtol=0)


def test_bad_memory_inputs_are_clear_errors():
    model = tiny("swinlstm-d")
    x = torch.rand(1, 4, 1, 16, 16)
    with pytest.raises(ValueError, match="phase 1 reads the long clip"):
        model(x, 2, phase=1)
    with pytest.raises(ValueError, match="phase must be 1"):
        model(x, 2, phase=3)
    with pytest.raises(ValueError, match="long_frames has 3 channels"):
        model(x, 2, long_frames=torch.rand(1, 6, 3, 16, 16), phase=1)
    with pytest.raises(ValueError, match="memory_size must be an integer >= 0"):
        tiny("swinlstm-b", memory_size=-1)
