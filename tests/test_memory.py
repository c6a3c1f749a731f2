"""LMC-Memory: the authors' numbers, their checkpoints, memory alignment, and the generalisations."""

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from lmc_helpers import (  # noqa: F401 (one_thread: autouse fixture)
    DATA,
    OUT_LEN,
    checksums,
    fingerprints,
    golden_state_dict,
    one_thread,
)
from torch import nn

from swinlstm.engine.rules import (
    alignment_clips,
    alignment_loss,
    loss_targets,
    memory_alignment_step,
    memory_slots,
    warmup_out_len,
)
from swinlstm.models import build_model, load_official
from swinlstm.models.memory import (
    ChannelAttention,
    HalvingMaxPool3d,
    LMCMemory,
    feature_to_tokens,
    memory_embedder,
)


def tiny_lmc(**kw):
    cfg = dict(img_size=16, in_chans=1, memory_size=4, hidden=8, slot_dim=16, num_layers=1)
    cfg.update(kw)
    return build_model("lmc-convlstm", **cfg)


# ----- equivalence with the authors' code (golden vectors, see tests/data/README.md) -------------
@pytest.fixture(scope="module")
def golden():
    data = np.load(DATA / "lmc_memory_tiny.npz")
    sd = golden_state_dict()
    np.testing.assert_allclose(checksums(sd), data["checksums"], rtol=1e-6)
    return data, sd


@pytest.mark.parametrize("dataset", ["movingmnist", "kth"])
@pytest.mark.parametrize("phase", [1, 2])
def test_matches_authors_outputs(golden, dataset, phase):
    data, sd = golden
    model = build_model(
        "lmc-convlstm", img_size=32, in_chans=1, memory_size=10, final_sigmoid=dataset == "kth"
    ).eval()
    load_official(model, {f"module.{k}": v for k, v in sd.items()})
    short = torch.from_numpy(data["input"].astype(np.float32) / 255)
    long = torch.from_numpy(data["long_input"].astype(np.float32) / 255)
    with torch.no_grad():
        out = model(short, OUT_LEN, long_frames=long, phase=phase)
    expected = torch.from_numpy(data[f"output_{dataset}_phase{phase}"])
    assert out.shape == expected.shape
    assert (out - expected).abs().max() <= 1e-5
    # the two phases really differ (different encoders), so this test tells them apart
    other = data[f"output_{dataset}_phase{3 - phase}"]
    assert np.abs(other - expected.numpy()).max() > 1e-3


def test_one_alignment_iteration_matches_authors_training(golden):
    """One iteration of their train.py loop (phase 1, phase 2, Adam 2e-4) gives the same weights."""
    data, sd = golden
    model = build_model("lmc-convlstm", img_size=32, in_chans=1, memory_size=10)
    model.load_state_dict(sd)
    optimizer = torch.optim.Adam(model.parameters(), lr=2e-4)
    short = torch.from_numpy(data["input"].astype(np.float32) / 255)
    long = torch.from_numpy(data["long_input"].astype(np.float32) / 255)
    losses = memory_alignment_step(
        model, optimizer, short, long[:, -OUT_LEN:], long, OUT_LEN, zero_grad="none"
    )  # the golden file was made with PyTorch 2's zero_grad()
    np.testing.assert_allclose(
        [losses["loss_p1"], losses["loss_p2"]], data["train_losses"], rtol=1e-5
    )
    np.testing.assert_allclose(
        fingerprints(model.state_dict()), data["train_fingerprints"], rtol=1e-5, atol=1e-4
    )


@pytest.mark.parametrize("mode", ["zeros", "none"])
def test_two_alignment_iterations_match_authors_loop_with_that_zero_grad(golden, mode):
    """Their loop with ``zero_grad(set_to_none=False)`` (PyTorch 1.6, their runs: Adam moves the
    frozen slots and unused encoder by momentum, two steps per iteration for every parameter)
    or ``set_to_none=True`` (PyTorch >= 2), two iterations (tests/data/lmc_memory_zero_grad.npz)."""
    data, sd = golden
    ref = np.load(DATA / "lmc_memory_zero_grad.npz")
    model = build_model("lmc-convlstm", img_size=32, in_chans=1, memory_size=10)
    model.load_state_dict(sd)
    optimizer = torch.optim.Adam(model.parameters(), lr=2e-4)
    short = torch.from_numpy(data["input"].astype(np.float32) / 255)
    long = torch.from_numpy(data["long_input"].astype(np.float32) / 255)
    losses = []
    for _ in range(2):
        out = memory_alignment_step(
            model, optimizer, short, long[:, -OUT_LEN:], long, OUT_LEN, zero_grad=mode
        )
        losses += [out["loss_p1"], out["loss_p2"]]
    np.testing.assert_allclose(losses, ref[f"train_losses_{mode}"], rtol=1e-5)
    np.testing.assert_allclose(
        fingerprints(model.state_dict()), ref[f"train_fingerprints_{mode}"], rtol=1e-5, atol=1e-4
    )
    names = {id(p): k for k, p in model.named_parameters()}
    steps = {names[id(p)]: float(st["step"]) for p, st in optimizer.state.items()}
    np.testing.assert_array_equal(
        [steps.get(k, 0.0) for k in sorted(model.state_dict())], ref[f"train_steps_{mode}"]
    )


def test_zero_grad_mode_default_is_the_authors_and_bad_mode_is_an_error():
    import inspect

    from swinlstm.engine.config import RunConfig
    from swinlstm.engine.module import PredictionModule

    assert inspect.signature(memory_alignment_step).parameters["zero_grad"].default == "zeros"
    assert RunConfig().optim.alignment_zero_grad == "zeros"
    assert inspect.signature(PredictionModule).parameters["alignment_zero_grad"].default == "zeros"
    with pytest.raises(ValueError, match="--alignment_zero_grad must be zeros"):
        memory_alignment_step(tiny_lmc(), None, None, None, None, 1, zero_grad="sometimes")


# ----- published checkpoints -------------------------------------------------------------------
@pytest.mark.parametrize("which,sigmoid", [("movingmnist", False), ("kth", True)])
def test_official_key_sets_load(which, sigmoid):
    spec = json.loads((DATA / "official_keys.json").read_text())[f"lmc-memory-{which}"]
    gen = torch.Generator().manual_seed(0)
    sd = {f"module.{k}": torch.randn(s, generator=gen) for k, s in spec["state_dict"].items()}
    model = build_model(
        "lmc-convlstm", img_size=64, in_chans=1, memory_size=100, final_sigmoid=sigmoid
    )
    assert sum(p.numel() for p in model.parameters()) == spec["params"]
    load_official(model, sd)
    assert torch.equal(model.memory.memory_w, sd["module.memory.memory_w"])
    assert torch.equal(model.attention_func[4].bias, sd["module.attention_func.4.bias"])


def test_official_checkpoint_into_model_without_memory_is_a_clear_error():
    spec = json.loads((DATA / "official_keys.json").read_text())["lmc-memory-movingmnist"]
    sd = {k: torch.zeros(s) for k, s in spec["state_dict"].items() if not k.startswith("memory.")}
    model = build_model("lmc-convlstm", img_size=16, memory_size=0)
    with pytest.raises(ValueError, match="unexpected keys.*attention_func"):
        load_official(model, sd)


# ----- the pieces --------------------------------------------------------------------------------
@pytest.mark.parametrize("shape", [(1, 2, 9, 16, 12), (1, 2, 2, 2, 2), (1, 2, 5, 7, 3)])
def test_halving_pool_is_maxpool3d_where_that_is_defined(shape):
    x = torch.randn(shape)
    assert torch.equal(HalvingMaxPool3d()(x), nn.MaxPool3d(2, 2)(x))
    assert torch.equal(HalvingMaxPool3d(pool_time=False)(x), nn.MaxPool3d((1, 2, 2), (1, 2, 2))(x))


def test_halving_pool_keeps_length_one_dimensions():
    x = torch.randn(1, 2, 1, 1, 6)
    assert HalvingMaxPool3d()(x).shape == (1, 2, 1, 1, 3)


def test_authors_embedder_layout_and_bad_upsample():
    emb = memory_embedder(512, 128, 4)
    assert [tuple(m.weight.shape) for m in emb if hasattr(m, "weight")] == [
        (512, 256, 3, 3),
        (256, 128, 3, 3),
    ]
    with pytest.raises(ValueError, match="power of two"):
        memory_embedder(512, 128, 3)
    with pytest.raises(ValueError, match="feature_stride"):
        LMCMemory(4, feature_stride=3)
    with pytest.raises(ValueError, match="memory_size"):
        LMCMemory(0)


@pytest.mark.parametrize(
    "frames,size,stride,chans",
    [((2, 64, 64), None, 2, 24), ((4, 40, 24), (13, 9), 4, 8), ((3, 8, 8), None, 1, 8)],
)
def test_readout_at_any_feature_resolution(frames, size, stride, chans):
    t, h, w = frames
    mem = LMCMemory(3, in_chans=2, out_chans=chans, feature_stride=stride, slot_dim=16)
    out = mem(torch.rand(2, t, 2, h, w), phase=2, size=size)
    if size is None:  # the embedder's own size: queries at H/16 (at least 1), times 16 / stride
        size = (max(h // 16, 1) * 16 // stride, max(w // 16, 1) * 16 // stride)
    assert out.shape == (2, chans, *size)


def test_readout_mixes_slots():
    mem = LMCMemory(5, out_chans=8, slot_dim=16)
    query = torch.randn(2, 16, 3, 4)
    with torch.no_grad():
        mem.memory_w.copy_(torch.arange(16.0).expand(5, 16))  # every slot the same
    assert torch.allclose(
        mem.address(query), torch.arange(16.0).view(1, 16, 1, 1).expand(2, 16, 3, 4)
    )
    with torch.no_grad():  # a query aligned with one slot weighs it most
        mem.memory_w.copy_(torch.eye(5, 16) * 3)
    read = mem.address(mem.memory_w[2].view(1, 16, 1, 1))
    assert read.flatten().argmax() == 2


def test_channel_attention_maps_and_tokens_agree():
    att = ChannelAttention(6, 4)
    state, memory = torch.randn(2, 6, 3, 5), torch.randn(2, 4, 3, 5)
    fused = att(state, memory)
    assert fused.shape == memory.shape
    tokens = att(feature_to_tokens(state), feature_to_tokens(memory))
    assert torch.allclose(tokens, feature_to_tokens(fused), atol=1e-6)
    w = att.weights(state, memory)
    assert w.shape == (2, 4) and ((w > 0) & (w < 1)).all()
    with pytest.raises(ValueError, match="feature maps"):
        att(state, feature_to_tokens(memory))


# ----- memory alignment --------------------------------------------------------------------------
def test_phase_1_trains_slots_and_context_encoder_phase_2_neither():
    model = tiny_lmc()
    short, long, future = (
        torch.rand(2, 4, 1, 16, 16),
        torch.rand(2, 8, 1, 16, 16),
        torch.rand(2, 3, 1, 16, 16),
    )
    alignment_loss(model(short, 3, long_frames=long, phase=1), future).backward()
    mem = model.memory
    assert mem.memory_w.grad is not None and mem.memory_w.grad.abs().sum() > 0
    assert mem.motion_context_encoder[0].weight.grad is not None
    assert mem.motion_matching_encoder[0].weight.grad is None
    model.zero_grad(set_to_none=True)
    mem.memory_w.requires_grad_(False)  # what memory_alignment_step does in phase 2
    alignment_loss(model(short, 3, phase=2), future).backward()
    assert mem.memory_w.grad is None
    assert mem.motion_context_encoder[0].weight.grad is None
    assert mem.motion_matching_encoder[0].weight.grad is not None


def test_alignment_step_freezes_slots_in_phase_2_even_with_adam():
    torch.manual_seed(0)
    model = tiny_lmc()
    opt = torch.optim.Adam(model.parameters(), lr=1e-2)
    slots = model.memory.memory_w
    seen = []
    real_step = opt.step

    def recording_step(*a, **kw):
        seen.append((slots.grad is not None, slots.detach().clone()))
        out = real_step(*a, **kw)
        seen[-1] += (slots.detach().clone(),)
        return out

    opt.step = recording_step
    short, long, future = (
        torch.rand(2, 4, 1, 16, 16),
        torch.rand(2, 8, 1, 16, 16),
        torch.rand(2, 3, 1, 16, 16),
    )
    for _ in range(2):  # the second iteration has Adam momentum on the slots
        losses = memory_alignment_step(model, opt, short, future, long, 3, zero_grad="none")
    assert set(losses) == {"loss_p1", "loss_p2", "loss"}
    assert losses["loss"] == pytest.approx(losses["loss_p1"] + losses["loss_p2"])
    grads = [g for g, _, _ in seen]
    assert grads == [True, False, True, False]
    assert not torch.equal(seen[2][1], seen[2][2])  # phase 1 moves the slots
    assert torch.equal(seen[3][1], seen[3][2])  # phase 2 leaves them exactly as they are
    assert slots.requires_grad  # restored


def test_alignment_step_without_memory_is_one_step():
    model = tiny_lmc(memory_size=0)
    assert memory_slots(model) == []
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    losses = memory_alignment_step(
        model, opt, torch.rand(1, 3, 1, 16, 16), torch.rand(1, 2, 1, 16, 16), None, 2
    )
    assert set(losses) == {"loss_p2", "loss"}
    with pytest.raises(ValueError, match="long clip"):
        memory_alignment_step(
            tiny_lmc(), opt, torch.rand(1, 3, 1, 16, 16), torch.rand(1, 2, 1, 16, 16), None, 2
        )


def test_warmup_length():
    assert [warmup_out_len(i, 3, 30) for i in range(5)] == [10, 10, 10, 30, 30]
    assert warmup_out_len(0, 5, 4) == 4  # never more than out_len
    assert warmup_out_len(0, 0, 30) == 30  # no warm-up (resumed training)
    with pytest.raises(ValueError, match="out_len"):
        warmup_out_len(0, 5, 0)


def test_alignment_clips_follow_the_authors():
    clip = torch.arange(40.0).view(1, 40, 1, 1, 1).expand(2, 40, 1, 4, 4)
    b = alignment_clips(clip, 0, 10, 30, 30, warmup=5)  # warm-up: 10 frames, long = first 20
    assert b.out_len == 10 and b.short.shape[1] == 10
    assert b.long[0, :, 0, 0, 0].tolist() == list(range(20))
    assert b.future[0, :, 0, 0, 0].tolist() == list(range(10, 20))
    rng = np.random.default_rng(0)
    starts = set()
    for _ in range(200):
        b = alignment_clips(clip, 5, 10, 30, 30, warmup=5, rng=rng)
        assert b.out_len == 30 and b.long.shape[1] == 30 and b.future.shape[1] == 30
        first = int(b.long[0, 0, 0, 0, 0])
        assert torch.equal(b.long[0, :, 0, 0, 0], torch.arange(first, first + 30.0))
        starts.add(first)
    assert starts == set(range(11))
    with pytest.raises(ValueError, match="long_len"):
        alignment_clips(clip, 5, 10, 41, 30)
    with pytest.raises(ValueError, match="short_len \\+ out_len"):
        alignment_clips(clip[:, :20], 5, 10, 10, 30)


def test_loss_targets():
    short, future = torch.rand(1, 4, 1, 8, 8), torch.rand(1, 3, 1, 8, 8)
    assert loss_targets(tiny_lmc(), short, future) is future
    conv = build_model("convlstm", img_size=8, patch_size=2, num_hidden=[4], filter_size=3)
    target = loss_targets(conv, short, future)
    assert torch.equal(target, torch.cat([short[:, 1:], future], 1))
    assert conv(short, 3).shape == target.shape
    with pytest.raises(ValueError, match="differ"):
        alignment_loss(torch.zeros(1, 2), torch.zeros(1, 3))


def test_memory_model_overfits_one_batch():
    torch.manual_seed(0)
    model = tiny_lmc(hidden=16, memory_size=4, slot_dim=32, num_layers=1)
    t = torch.linspace(0, 1, 5).view(1, 5, 1, 1, 1)
    xs = torch.linspace(0, 1, 16)
    clip = torch.sigmoid(10 * (xs.view(1, 1, 1, 1, 16) - 0.3 - 0.4 * t)).expand(2, 5, 1, 16, 16)
    short, future = clip[:, :3], clip[:, 3:]
    opt = torch.optim.Adam(model.parameters(), lr=1e-2)
    first = memory_alignment_step(model, opt, short, future, clip, 2)["loss_p2"]
    for _ in range(200):
        last = memory_alignment_step(model, opt, short, future, clip, 2)["loss_p2"]
        if last < first / 10:
            break
    assert last < first / 10, (first, last)


def test_checkpoint_round_trips(tmp_path):
    from swinlstm.engine.checkpoint import load_model, save_model

    torch.manual_seed(0)
    x = torch.rand(1, 3, 1, 16, 16)
    for model in (
        tiny_lmc(final_sigmoid=True),
        build_model("convlstm", img_size=16, patch_size=4, num_hidden=[4, 4], filter_size=3),
    ):
        save_model(model, tmp_path / model.model_name)
        loaded, info = load_model(tmp_path / model.model_name)
        assert info["model"] == model.model_name
        with torch.no_grad():
            assert torch.equal(loaded.predict(x, 2), model.eval().predict(x, 2))
    # an authors' file (saved from nn.DataParallel) through the same entry point
    model = tiny_lmc()
    torch.save({f"module.{k}": v for k, v in model.state_dict().items()}, tmp_path / "theirs.pt")
    cfg = dict(model.model_config)
    loaded, info = load_model(tmp_path / "theirs.pt", name="lmc-convlstm", config=cfg)
    assert info["format"] == "official"
    with torch.no_grad():
        assert torch.equal(loaded.predict(x, 2), model.eval().predict(x, 2))


# ----- streaming a memory model without a context ---------------------------------------------
MEMORY_MODELS = {
    "lmc-convlstm": dict(hidden=8, num_layers=1),
    "convlstm": dict(patch_size=4, num_hidden=[8], filter_size=3),
    "swinlstm-b": dict(embed_dim=8, depths=[2], num_heads=[2]),
    "swinlstm-d": dict(embed_dim=8, depths_down=[2, 2], depths_up=[2, 2], num_heads=[2, 4]),
}


def tiny_memory_model(name, img_size=16):
    torch.manual_seed(0)
    cfg = dict(img_size=img_size, in_chans=1, memory_size=4, slot_dim=16, **MEMORY_MODELS[name])
    return build_model(name, **cfg).eval()


def stream(model, inputs, out_len, context=None):
    """Stream ``inputs`` (B, T, C, H, W), then feed back ``out_len - 1`` outputs with feedback."""
    state = model.init_state(inputs.shape[0])
    for t in range(inputs.shape[1]):
        y, state = model.step(inputs[:, t], state, context)
    outputs = [y]
    for _ in range(out_len - 1):
        y, state = model.step(y, state, context, feedback=True)
        outputs.append(y)
    return torch.stack(outputs, 1), state


@pytest.mark.parametrize("name", sorted(MEMORY_MODELS))
def test_streaming_without_context_is_predict(name):
    model = tiny_memory_model(name)
    x = torch.rand(2, 5, 1, 16, 16)
    with torch.no_grad():
        streamed, state = stream(model, x, 3)
        # to float rounding: predict embeds the input frames in one call and mixes them in one
        # matmul (SwinLSTM's batched teacher-forced steps), streaming one frame per call
        torch.testing.assert_close(streamed, model.predict(x, 3), atol=1e-6, rtol=0)
    assert torch.equal(state.frames, x)  # the observed frames, not the fed-back outputs


@pytest.mark.parametrize("name", ["lmc-convlstm", "swinlstm-d"])
def test_streaming_memory_reads_the_last_frames_seen_and_a_still_first_frame(name):
    model = tiny_memory_model(name)
    model.stream_context_len = 3
    x = torch.rand(1, 5, 1, 16, 16)
    with torch.no_grad():
        y, _ = model.step(x[:, 0], model.init_state(1))
        still = model.encode_context(x[:, [0, 0]])
        assert torch.equal(y, model.step(x[:, 0], model.init_state(1), still)[0])
        streamed, state = stream(model, x, 2)
        assert state.frames.shape[1] == 3
        explicit, _ = stream(model, x, 2, context=model.encode_context(x[:, -3:]))
        assert torch.equal(streamed, explicit)
        # without feedback=True, the outputs join what the memory reads
        state = model.init_state(1)
        for t in range(5):
            y, state = model.step(x[:, t], state)
        _, state = model.step(y, state)
        assert torch.equal(state.frames[:, -1], y)


def test_streaming_refuses_feedback_first_another_batch_and_a_bad_context_len():
    model = tiny_memory_model("lmc-convlstm")
    with pytest.raises(ValueError, match="first streamed frame cannot be feedback=True"):
        model.step(torch.rand(1, 1, 16, 16), model.init_state(1), feedback=True)
    _, state = model.step(torch.rand(2, 1, 16, 16), model.init_state(2))
    with pytest.raises(ValueError, match="frame holds a batch of 1 but the state was streamed"):
        model.step(torch.rand(1, 1, 16, 16), state)
    model.stream_context_len = 0
    with pytest.raises(ValueError, match="stream_context_len must be an integer >= 1"):
        model.step(torch.rand(1, 1, 16, 16), model.init_state(1))


def readme_python_api() -> str:
    """The code block of the README's "Python API" section."""
    text = (Path(__file__).resolve().parents[1] / "README.md").read_text()
    lines = text.split("## Python API\n\n", 1)[1].splitlines()
    end = next(i for i, line in enumerate(lines) if line and not line.startswith("    "))
    return "\n".join(line[4:] for line in lines[:end])


@pytest.mark.parametrize("name", sorted(MEMORY_MODELS))
def test_readme_streaming_snippet_runs_for_every_memory_model(name):
    code = readme_python_api()
    build = next(line for line in code.splitlines() if line.startswith("model = build_model("))
    namespace = {"MODEL": tiny_memory_model(name, img_size=64)}
    exec(code.replace(build, "model = MODEL"), namespace)
    streamed = torch.stack(namespace["streamed"], 1)  # to float rounding (see above)
    torch.testing.assert_close(streamed, namespace["forecast"], atol=1e-6, rtol=0)
