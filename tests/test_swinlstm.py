"""SwinLSTM-B / -D: the authors' numbers, their checkpoints, and everything beyond their code.

Golden vectors (tests/data/swinlstm_{b,d}_tiny.npz) and the published key lists
(tests/data/official_keys.json) come from running the authors' SwinLSTM_B.py / SwinLSTM_D.py.
"""

from __future__ import annotations

import json
from pathlib import Path
from unittest import mock

import numpy as np
import pytest
import torch

from swinlstm.models import build_model, load_official
from swinlstm.models.chunked import CPU_PLAIN_MAX_WIDTH
from swinlstm.models.layers import (
    MASK_VALUE,
    PatchEmbed,
    PatchExpanding,
    PatchInflate,
    PatchMerging,
    WindowAttention,
    WindowLayout,
    _KeyMajorAttention,
    _Reorder,
    inverse_permutation,
    reorder,
)
from swinlstm.models.official import official_to_ours
from swinlstm.models.recurrent import RecurrentPredictor
from swinlstm.models.swinlstm import (
    SwinLSTMB,
    SwinLSTMCell,
    SwinLSTMD,
    compile_options,
    padded_grid,
)

DATA = Path(__file__).parent / "data"

# The golden vectors' networks: the Moving MNIST variants (patch 2, 1 channel, window 4) made
# smaller; build them with build_model("swinlstm-b-mmnist", **B_TINY) / ("swinlstm-d-mmnist", ...).
B_TINY = dict(img_size=16, embed_dim=32, depths=[4], num_heads=[2])
D_TINY = dict(img_size=32, embed_dim=16, depths_down=[2, 2], depths_up=[2, 2], num_heads=[2, 4])
# Smaller still, for the property tests.
B_MINI = dict(embed_dim=8, depths=[3], num_heads=[2], window_size=2)
D_MINI = dict(embed_dim=8, depths_down=[2, 1], depths_up=[1, 2], num_heads=[2, 2], window_size=2)


@pytest.fixture(autouse=True)
def one_thread():
    """Tiny models on a shared 2-core machine run far faster on one thread."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def golden(name: str):
    z = np.load(DATA / f"swinlstm_{name}_tiny.npz")
    sd = {
        k[len("state_dict/") :]: torch.from_numpy(z[k])
        for k in z.files
        if k.startswith("state_dict/")
    }
    return torch.from_numpy(z["input"]), torch.from_numpy(z["output"]), sd


def official_keys(name: str) -> dict:
    return json.loads((DATA / "official_keys.json").read_text())[name]


def random_official(name: str) -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(0)
    return {
        k: torch.randn(shape, generator=g) if shape else torch.randn((), generator=g)
        for k, shape in official_keys(name)["state_dict"].items()
    }


def run_forward(model, frames, out_len):
    with torch.no_grad():
        return model(frames, out_len)


# ------------------------------------------------------------------------------------------
# Equivalence with the authors' networks
# ------------------------------------------------------------------------------------------
@pytest.mark.parametrize("chunked", [True, False])  # every kernel the policy can pick
@pytest.mark.parametrize(("name", "config"), [("b", B_TINY), ("d", D_TINY)])
def test_golden_equivalence(name, config, chunked):
    frames, expected, sd = golden(name)
    model = build_model(f"swinlstm-{name}-mmnist", **config).eval()
    model.chunked = chunked
    load_official(model, sd)
    out = run_forward(model, frames, 4)
    assert out.shape == expected.shape
    assert (out - expected).abs().max().item() <= 1e-5


@pytest.mark.parametrize(("name", "config"), [("b", B_TINY), ("d", D_TINY)])
def test_golden_with_module_prefix_and_file(name, config, tmp_path):
    frames, expected, sd = golden(name)
    path = tmp_path / "trained_model_state_dict"
    torch.save({f"module.{k}": v for k, v in sd.items()}, path)
    model = load_official(build_model(f"swinlstm-{name}-mmnist", **config).eval(), path)
    assert (run_forward(model, frames[:, :3], 1) - expected[:, 2:3]).abs().max() > 0  # sanity
    assert (run_forward(model, frames, 4) - expected).abs().max().item() <= 1e-5


@pytest.mark.parametrize("name", ["swinlstm-b", "swinlstm-d"])
@pytest.mark.parametrize("suffix", ["", "-mmnist"])
def test_official_key_set_loads_at_paper_config(name, suffix):
    """The published key layout (with buffers, every `red`, D's up-path embed) fits the defaults
    and the Moving MNIST variants (the paper's configuration)."""
    sd = random_official(name)
    model = build_model(name + suffix)
    load_official(model, sd)
    converted = official_to_ours(model, sd)
    own = model.state_dict()
    assert set(own) == set(converted)
    for k, v in own.items():
        assert torch.equal(v, converted[k]), k
    # Exactly the never-used parameters are left out: odd blocks' `red` and D's up-path embed.
    n_red_unused = sum(1 for k in sd if k.endswith("red.weight")) - sum(
        1 for k in own if k.endswith("red.weight")
    )
    assert n_red_unused > 0
    assert sum(p.numel() for p in model.parameters()) < official_keys(name)["params"]
    with pytest.raises(ValueError, match="unexpected keys"):
        load_official(model, {**sd, "ST.extra.weight": torch.zeros(1)})


def test_paper_config_parameter_count():
    """Official count minus the unused `red` Linears (and D's unused up-path embedding)."""
    b = build_model("swinlstm-b-mmnist")
    red = 2 * 128 * 128 + 128
    assert sum(p.numel() for p in b.parameters()) == official_keys("swinlstm-b")["params"] - 6 * red
    d = build_model("swinlstm-d-mmnist")
    unused = sum(
        int(np.prod(s))
        for k, s in official_keys("swinlstm-d")["state_dict"].items()
        if k.startswith("Upsample.patch_embed.")
    )
    red_d = sum(
        2 * c * c + c
        for c, depth in ((128, 2), (256, 6), (512, 2), (256, 6))
        for _ in range(depth // 2)
    )
    assert (
        sum(p.numel() for p in d.parameters())
        == official_keys("swinlstm-d")["params"] - unused - red_d
    )


def test_checkpoint_of_other_config_lists_mismatches():
    sd = random_official("swinlstm-b")
    model = build_model("swinlstm-b", embed_dim=64)
    with pytest.raises(ValueError) as err:
        load_official(model, sd)
    msg = str(err.value)
    assert "shape mismatches" in msg and "(128" in msg and "(64" in msg
    with pytest.raises(ValueError, match="missing keys"):
        load_official(build_model("swinlstm-b", depths=[14]), sd)


def test_drop_path_schedule_is_the_authors():
    b = build_model("swinlstm-b", **B_MINI, drop_path_rate=0.2)
    assert [blk.drop_path.drop_prob for blk in b.layers[0].blocks] == [0.2] * 3
    d = build_model("swinlstm-d", **D_MINI, drop_path_rate=0.3)

    def rates(cell):
        return [round(getattr(blk.drop_path, "drop_prob", 0.0), 6) for blk in cell.blocks]

    assert [rates(c) for c in d.down] == [[0.0, 0.15], [0.3]]
    # up cell 0 = deepest, uses depths_up[1] = 2 blocks, rates read backwards
    assert [rates(c) for c in d.up] == [[0.3, 0.15], [0.0]]


# ------------------------------------------------------------------------------------------
# Window geometry
# ------------------------------------------------------------------------------------------
def test_layout_rules():
    assert WindowLayout.build((8, 8), 4) == WindowLayout((8, 8), (4, 4), (2, 2))
    assert WindowLayout.build((4, 4), 4) == WindowLayout((4, 4), (4, 4), (0, 0))  # authors' rule
    assert WindowLayout.build((2, 2), 4) == WindowLayout((2, 2), (2, 2), (0, 0))
    assert WindowLayout.build((2, 8), 4) == WindowLayout((2, 8), (2, 4), (0, 2))
    with pytest.raises(ValueError, match="not divisible"):
        WindowLayout.build((6, 8), 4)
    assert padded_grid(12, 1, 4, 0) == 12
    assert padded_grid(30, 2, 4, 0) == 16  # 15 tokens -> 16
    assert padded_grid(60, 1, 4, 2) == 64  # 30 at level 1 is neither <= 4 nor a multiple


def test_shift_index_is_roll_and_partition():
    layout = WindowLayout.build((8, 12), 4)
    grid = torch.arange(96).view(8, 12)
    tokens = layout.partition(grid)  # window order
    shifted = tokens[layout.shift_index()]
    expected = layout.partition(torch.roll(grid, (-2, -2), (0, 1)))
    assert torch.equal(shifted, expected)
    mask = layout.shift_mask()
    assert mask.shape == (6, 16, 16) and set(mask.unique().tolist()) == {0.0, MASK_VALUE}
    assert (mask[0] == 0).all()  # the first window holds one region only


@pytest.mark.parametrize("way", ["eager", "function", "compiled"])
def test_reorder_is_index_select_with_its_gradient(way):
    """reorder (in compiled graphs an autograd.Function whose gradient is the gather by the
    inverse permutation) gives index_select's values and index_select's gradient (an
    index_add) bit for bit, along every dim."""
    torch.manual_seed(0)
    x = torch.randn(3, 5, 7)
    fn = {
        "eager": reorder,
        "function": _Reorder.apply,  # what compiled graphs trace, run eagerly
        "compiled": torch.compile(reorder, fullgraph=True),
    }[way]
    for dim in range(3):
        index = torch.randperm(x.shape[dim])
        inverse = inverse_permutation(index)
        assert torch.equal(index[inverse], torch.arange(x.shape[dim]))
        a, b = x.clone().requires_grad_(), x.clone().requires_grad_()
        got, expected = fn(a, dim, index, inverse), b.index_select(dim, index)
        assert torch.equal(got, expected)
        weights = torch.randn_like(got)
        (got * weights).sum().backward()
        (expected * weights).sum().backward()
        assert torch.equal(a.grad, b.grad)


@pytest.mark.parametrize("grid", [(8, 8), (16, 8), (8, 16)])
def test_layers_reorder_by_permutations_with_their_inverses(grid):
    """Every index a layer reorders tokens or pixels by is a permutation, and the inverse it
    keeps for the gradient undoes it (a wrong inverse would give wrong gradients silently)."""
    fine, coarse = WindowLayout.build(grid, 4), WindowLayout.build((grid[0] // 2, grid[1] // 2), 4)
    cell = SwinLSTMCell(8, fine, 2, 2, 4.0, 0.0, 0.0, [0.0, 0.0])
    inflate, embed = PatchInflate(2, 8, 1, fine), PatchEmbed(2, 3, 8, fine)
    merge, expand = PatchMerging(8, fine, coarse), PatchExpanding(16, coarse, fine)
    pairs = [
        (cell.shift_index, cell.unshift_index),
        (inflate.position, inflate.order),
        (merge.index, merge.inverse),
        (expand.index, expand.inverse),
        (embed.pixels, embed.pixels_inverse),
    ]
    for index, inverse in pairs:
        n = index.numel()
        assert torch.equal(index.sort().values, torch.arange(n))
        assert torch.equal(index[inverse], torch.arange(n))


@pytest.mark.parametrize(
    ("grid", "patch", "chans"), [((16, 16), 2, 1), ((8, 12), 4, 3), ((4, 8), 1, 2), ((2, 2), 3, 1)]
)
def test_patch_embed_is_the_strided_conv_in_window_order(grid, patch, chans):
    """The gather + matmul computes the authors' conv (kernel = stride = patch), tokens in
    window order, forward and gradients (to the pixels too: fed-back forecasts are inputs)."""
    torch.manual_seed(0)
    layout = WindowLayout.build(grid, 4)
    embed = PatchEmbed(patch, chans, 8, layout)
    frames = torch.rand(3, chans, grid[0] * patch, grid[1] * patch, requires_grad=True)
    conv = torch.nn.functional.conv2d(frames, embed.proj.weight, embed.proj.bias, stride=patch)
    expected = embed.norm(conv.flatten(2).index_select(2, layout.order()).transpose(1, 2))
    got = embed(frames)
    assert got.shape == (3, grid[0] * grid[1], 8)
    assert torch.allclose(got, expected, atol=1e-6)
    weights = torch.rand_like(got)
    wanted = torch.autograd.grad((expected * weights).sum(), (frames, embed.proj.weight))
    grads = torch.autograd.grad((got * weights).sum(), (frames, embed.proj.weight))
    for a, b in zip(grads, wanted):
        assert torch.allclose(a, b, atol=1e-5)


@pytest.mark.parametrize("mask_rows", [1, 6])  # the bias alone; bias + shift mask per window
@pytest.mark.parametrize("head_dim", [8, 32])
def test_key_major_attention_is_softmax_attention(mask_rows, head_dim):
    """Compiled cells' attention (scores key-major, its own backward) computes the usual
    softmax(Q K^T / sqrt(d) + mask) V: outputs and the gradients of q, k, v and the mask."""
    torch.manual_seed(0)
    q, k, v = (torch.randn(6, 2, 16, head_dim, requires_grad=True) for _ in range(3))
    mask = torch.randn(mask_rows, 2, 16, 16).masked_fill(
        torch.rand(mask_rows, 2, 16, 16) < 0.3, MASK_VALUE
    )
    mask.requires_grad_(True)
    attn = (q @ k.transpose(-2, -1) * head_dim**-0.5 + mask).softmax(-1)
    expected = attn @ v
    got = _KeyMajorAttention.apply(q, k, v, mask.transpose(-2, -1))
    assert got.shape == (6, 2, head_dim, 16)
    assert torch.allclose(got.transpose(-2, -1), expected, atol=1e-6)
    weights = torch.randn_like(expected)
    wanted = torch.autograd.grad((expected * weights).sum(), (q, k, v, mask))
    grads = torch.autograd.grad((got.transpose(-2, -1) * weights).sum(), (q, k, v, mask))
    for a, b in zip(grads, wanted):
        assert a.shape == b.shape and torch.allclose(a, b, atol=1e-5)


@pytest.mark.parametrize(
    ("grid", "patch", "chans"), [((16, 16), 2, 1), ((4, 6), 2, 3), ((4, 8), 4, 2), ((3, 3), 1, 2)]
)
def test_patch_inflate_taps_are_the_transposed_conv(grid, patch, chans):
    """The compiled graphs' patch inflation (token taps summed per pixel) computes the
    transposed convolution: outputs and gradients to the tokens and the kernel."""
    torch.manual_seed(0)
    layout = WindowLayout.build(grid, 4 if grid[0] % 4 == 0 and grid[1] % 4 == 0 else 1)
    inflate = PatchInflate(patch, 8, chans, layout)
    tokens = torch.randn(2, grid[0] * grid[1], 8, requires_grad=True)
    expected = inflate(tokens)
    got = inflate._taps(tokens)
    assert got.shape == expected.shape == (2, chans, grid[0] * patch, grid[1] * patch)
    assert torch.allclose(got, expected, atol=1e-5)
    weights = torch.randn_like(expected)
    params = (tokens, inflate.proj.weight, inflate.proj.bias)
    wanted = torch.autograd.grad((expected * weights).sum(), params)
    grads = torch.autograd.grad((got * weights).sum(), params)
    for a, b in zip(grads, wanted):
        assert torch.allclose(a, b, atol=1e-4, rtol=1e-5)


def test_compile_options_pick_the_cpu_small_matrix_kernels_quietly():
    options = compile_options(torch.device("cpu"))
    assert options["max_autotune"] and options["max_autotune_gemm_backends"] == "CPP,ATEN"
    assert options["autotune_num_choices_displayed"] == 0  # no tables in a run's output
    assert compile_options(torch.device("cuda")) is None  # Inductor's defaults elsewhere


# ------------------------------------------------------------------------------------------
# Beyond the authors' code
# ------------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("name", "config", "size"),
    [
        ("swinlstm-b", B_MINI, (24, 40)),
        ("swinlstm-d", D_MINI, (24, 40)),
        ("swinlstm-b", B_MINI, (13, 21)),
        ("swinlstm-d", D_MINI, (18, 11)),
    ],
)
def test_any_frame_shape(name, config, size):
    torch.manual_seed(0)
    model = build_model(name, img_size=size, in_chans=3, **config).eval()
    frames = torch.rand(2, 3, 3, *size)
    out = run_forward(model, frames, 2)
    assert out.shape == (2, 4, 3, *size)
    assert torch.isfinite(out).all() and (out >= 0).all() and (out <= 1).all()


def test_padding_is_zero_padding_then_crop():
    """A model padding 13x21 equals the same weights at the padded size on zero-padded input."""
    torch.manual_seed(0)
    small = build_model("swinlstm-b", img_size=(13, 21), **B_MINI).eval()
    assert small.padded_size == (16, 24)  # 7x11 tokens -> 8x12, a multiple of the window 2
    big = build_model("swinlstm-b", img_size=small.padded_size, **B_MINI).eval()
    big.load_state_dict(small.state_dict())
    frame = torch.rand(2, 1, 13, 21)
    with torch.no_grad():
        y_small, _ = small.step(frame, small.init_state(2))
        padded = torch.nn.functional.pad(frame, (0, 3, 0, 3))
        y_big, _ = big.step(padded, big.init_state(2))
    assert torch.allclose(y_small, y_big[..., :13, :21], atol=1e-6)


@pytest.mark.parametrize("patch", [1, 2, 4])
@pytest.mark.parametrize("name", ["swinlstm-b", "swinlstm-d"])
def test_patch_sizes(name, patch):
    config = B_MINI if name == "swinlstm-b" else D_MINI
    model = build_model(name, img_size=16, patch_size=patch, in_chans=2, **config).eval()
    assert model.inflate.proj.kernel_size == (2 * patch - 1,) * 2
    out = run_forward(model, torch.rand(1, 2, 2, 16, 16), 1)
    assert out.shape == (1, 2, 2, 16, 16)


@pytest.mark.parametrize("name", ["swinlstm-b", "swinlstm-d"])
def test_single_input_frame_and_single_output(name):
    config = B_MINI if name == "swinlstm-b" else D_MINI
    model = build_model(name, img_size=8, **config).eval()
    frames = torch.rand(3, 1, 1, 8, 8)
    out = run_forward(model, frames, 1)
    assert out.shape == (3, 1, 1, 8, 8)
    assert torch.allclose(model.predict(frames, 1), out, atol=1e-6)


@pytest.mark.parametrize("name", ["swinlstm-b", "swinlstm-d"])
def test_step_by_step_equals_forward(name):
    torch.manual_seed(0)
    config = B_MINI if name == "swinlstm-b" else D_MINI
    model = build_model(name, img_size=(8, 12), **config).eval()
    frames = torch.rand(2, 3, 1, 8, 12)
    expected = run_forward(model, frames, 3)
    with torch.no_grad():
        state = model.init_state(2)
        outs = []
        for t in range(3):
            y, state = model.step(frames[:, t], state)
            outs.append(y)
        for _ in range(2):
            y, state = model.step(y, state)
            outs.append(y)
    assert torch.allclose(torch.stack(outs, 1), expected, atol=1e-6)


@pytest.mark.parametrize("chunked", [True, False])
@pytest.mark.parametrize(
    "name, extra",
    [("swinlstm-b", {}), ("swinlstm-d", {}), ("swinlstm-b", dict(memory_size=4, slot_dim=8))],
)
def test_batched_input_steps_equal_the_step_loop(name, extra, chunked):
    """Embedding all input frames at once, the first cell's input mixing for all steps (plain
    layers) and decoding after the loop give the step-by-step recurrence's outputs and
    gradients, on both kernels, with padding (8x12 frames) and with a memory read-out."""
    torch.manual_seed(0)
    config = B_MINI if name == "swinlstm-b" else D_MINI
    model = build_model(name, img_size=(8, 12), drop_path_rate=0.0, **config, **extra)
    model.chunked = chunked
    frames = torch.rand(2, 4, 1, 8, 12)

    def run(loop: bool):
        if loop:  # the base class's teacher-forced loop: one _step per frame
            model._input_steps = lambda *a, **k: RecurrentPredictor._input_steps(model, *a, **k)
        model.zero_grad(set_to_none=True)
        out = model(frames, 3)
        (out.square().mean() + out.mean()).backward()
        model.__dict__.pop("_input_steps", None)
        grads = {n: p.grad.clone() for n, p in model.named_parameters() if p.grad is not None}
        return out.detach(), grads

    out_b, g_b = run(loop=False)
    out_l, g_l = run(loop=True)
    torch.testing.assert_close(out_b, out_l, atol=1e-6, rtol=0)
    assert g_b.keys() == g_l.keys() and len(g_l) > 10
    for key in g_l:
        scale = g_l[key].abs().max().item() + 1e-12
        assert (g_b[key] - g_l[key]).abs().max().item() <= 1e-5 * scale, key


def test_premix_is_the_x_half_of_the_mixing_linear():
    """red(cat(norm1(x), norm1(h))) == premix(x, 0) + the h half, and == x half + premix(h, 1)."""
    torch.manual_seed(0)
    model = build_model("swinlstm-b", img_size=8, **B_MINI)
    blk = model.layers[0].blocks[0]
    x, h = torch.randn(2, 16, 8), torch.randn(2, 16, 8)
    full = blk.red(torch.cat((blk.norm1(x), blk.norm1(h)), dim=-1))
    torch.testing.assert_close(blk._mix_half(h, 1, blk.premix(x, 0)), full)
    torch.testing.assert_close(blk._mix_half(x, 0, blk.premix(h, 1)), full)


def test_masks_built_once_per_forward(monkeypatch):
    model = build_model("swinlstm-d", img_size=8, **D_MINI).eval()
    calls = []
    original = WindowAttention.attention_mask

    def counting(self, *args, **kwargs):
        calls.append(self)
        return original(self, *args, **kwargs)

    monkeypatch.setattr(WindowAttention, "attention_mask", counting)
    run_forward(model, torch.rand(1, 4, 1, 8, 8), 3)
    n_blocks = sum(len(c.blocks) for c in model.cells())
    assert len(calls) == n_blocks  # not n_blocks * 6 steps


def test_streaming_state_sees_optimizer_updates():
    """The mask cache in a state is rebuilt when a bias table changes between two steps."""
    model = build_model("swinlstm-b", img_size=8, **B_MINI).eval()
    frame = torch.rand(1, 1, 8, 8)
    table = model.layers[0].blocks[0].attn.relative_position_bias_table
    with torch.no_grad():
        _, state = model.step(frame, model.init_state(1))
        before = state.masks._masks[0].blocks[0].clone()
        table.add_(1.0)
        _, state = model.step(frame, state)
    after = state.masks._masks[0].blocks[0]
    assert torch.allclose(after, before + 1.0)


# ------------------------------------------------------------------------------------------
# Training paths
# ------------------------------------------------------------------------------------------
@pytest.mark.parametrize("name", ["swinlstm-b", "swinlstm-d"])
def test_every_parameter_gets_a_gradient(name):
    torch.manual_seed(0)
    config = B_MINI if name == "swinlstm-b" else D_MINI
    model = build_model(name, img_size=8, **config).train()
    out = model(torch.rand(2, 2, 1, 8, 8), 2)
    out.square().mean().backward()
    unused = [n for n, p in model.named_parameters() if p.grad is None]
    assert unused == []


@pytest.mark.parametrize("name", ["swinlstm-b", "swinlstm-d"])
def test_checkpointing_same_numbers(name):
    torch.manual_seed(0)
    config = B_MINI if name == "swinlstm-b" else D_MINI
    plain = build_model(name, img_size=8, drop_path_rate=0.0, **config).train()
    ckpt = build_model(name, img_size=8, drop_path_rate=0.0, checkpointing=True, **config).train()
    ckpt.load_state_dict(plain.state_dict())
    frames = torch.rand(2, 3, 1, 8, 8)
    grads = []
    outs = []
    for model in (plain, ckpt):
        out = model(frames, 2)
        out.square().mean().backward()
        outs.append(out.detach())
        grads.append([p.grad.clone() for p in model.parameters()])
    assert torch.allclose(outs[0], outs[1], atol=1e-6)
    for a, b in zip(*grads):
        assert torch.allclose(a, b, atol=1e-6)


@pytest.mark.slow  # torch.compile of the steps: about 90-150 s a case on the shared 2-core machine
@pytest.mark.parametrize("way", ["sequence", "unrolled", "per-step"])
def test_compile_same_numbers(way):
    torch.manual_seed(0)
    # 8x8 tokens in 2x2 windows: shifted blocks; two teacher-forced steps and two fed-back ones,
    # compiled each way a network can take: forward as one graph (narrow, few blocks), the
    # teacher-forced steps as one graph (narrow) or each step's cells (the paper's widths),
    # then each fed-back step whole
    # (training compiles the whole sequence only without random draws: no stochastic depth)
    config = dict(B_MINI, drop_path_rate=0.0 if way == "sequence" else 0.1)
    plain = build_model("swinlstm-b", img_size=16, **config).eval()
    compiled = build_model("swinlstm-b", img_size=16, compile=True, **config).eval()
    compiled.load_state_dict(plain.state_dict())
    assert compiled.compiles_sequence()  # 8 channels wide, 3 blocks
    if way != "sequence":  # as a deeper narrow network runs them
        compiled.compiles_sequence = lambda: False
    if way == "per-step":  # as a network wider than CPU_PLAIN_MAX_WIDTH runs them
        compiled.unrolls_input_steps = lambda: False
    frames = torch.rand(2, 3, 1, 16, 16)
    expected = run_forward(plain, frames, 2)
    got = run_forward(compiled, frames, 2)
    assert torch.allclose(expected, got, atol=1e-5)
    plain.train(), compiled.train()  # and training: outputs and gradients
    torch.manual_seed(1)
    plain(frames, 2).square().mean().backward()
    torch.manual_seed(1)
    compiled(frames, 2).square().mean().backward()
    for (name, p), q in zip(plain.named_parameters(), compiled.parameters()):
        assert torch.allclose(p.grad, q.grad, atol=1e-5, rtol=1e-4), name


@pytest.mark.slow  # compiles a training step (forward and backward graphs): about 15 s cold
def test_compiled_training_graphs_load_from_the_cache():
    # A new process must load the training graphs from AOTAutograd's cache, not trace and
    # partition them again (at B small that was about 15 s of each run's warm-up): nothing in the
    # graphs may make the cache pass them by (an autocast region did; our autograd.Functions
    # do unless allowed). A second compile after Dynamo's reset stands for the new process.
    from torch._dynamo.utils import counters

    torch.manual_seed(0)
    config = dict(B_MINI, drop_path_rate=0.0)
    plain = build_model("swinlstm-b", img_size=16, **config).train()
    frames = torch.rand(2, 3, 1, 16, 16)
    plain(frames, 2).square().mean().backward()
    for attempt in ("compiles", "loads"):
        torch._dynamo.reset()
        counters.clear()
        compiled = build_model("swinlstm-b", img_size=16, compile=True, **config).train()
        compiled.load_state_dict(plain.state_dict())
        compiled(frames, 2).square().mean().backward()
        aot = dict(counters["aot_autograd"])
        assert aot.get("autograd_cache_bypass", 0) == 0, (attempt, aot)
        for (name, p), q in zip(plain.named_parameters(), compiled.parameters()):
            assert torch.allclose(p.grad, q.grad, atol=1e-5, rtol=1e-4), (attempt, name)
    assert aot.get("autograd_cache_hit", 0) >= 1, aot


def _as_traced(fn, *args):
    with mock.patch("torch.compiler.is_compiling", return_value=True):
        return fn(*args)


STEP_GRAPHS = ["_pixels_step", "_pixels_step"]  # each fed-back step whole, 2 of them


@pytest.mark.parametrize(
    "name, config, forward_graphs, stream_graphs",
    [
        # narrow, 3 blocks: forward as one graph; streaming, the teacher-forced steps as one
        ("swinlstm-b", B_MINI, ["_sequence"], ["_teacher_forced", *STEP_GRAPHS]),
        # narrow, 6 blocks (all cells): the teacher-forced steps as one graph either way
        (
            "swinlstm-d",
            D_MINI,
            ["_teacher_forced", *STEP_GRAPHS],
            ["_teacher_forced", *STEP_GRAPHS],
        ),
        # wider than CPU_PLAIN_MAX_WIDTH: each teacher-forced step's cells (at the paper's widths
        # the unrolled teacher-forced graph compiled 2.1-2.6x longer)
        (
            "swinlstm-b",
            dict(B_MINI, embed_dim=CPU_PLAIN_MAX_WIDTH + 8),
            ["_tokens_step", *STEP_GRAPHS],
            ["_tokens_step", *STEP_GRAPHS],
        ),
        # with LMC memory: the read-out joins every step inside the one graph
        (
            "swinlstm-b",
            dict(B_MINI, memory_size=4),
            ["_sequence"],
            ["_teacher_forced", *STEP_GRAPHS],
        ),
    ],
    ids=["b-narrow", "d-narrow", "b-wide", "b-memory"],
)
def test_compiled_pieces_by_size(name, config, forward_graphs, stream_graphs):
    # what a compiled network hands to torch.compile, recorded without compiling
    model = build_model(name, img_size=16, compile=True, **config).eval()
    compiled = []

    def record(fn):  # stands in for torch.compile: runs fn as if traced
        compiled.append(fn.__name__)
        return lambda *args: _as_traced(fn, *args)

    model._compiled = record
    frames = torch.rand(1, 3, 1, 16, 16)
    expected = model(frames, 2)
    assert compiled == forward_graphs
    compiled.clear()
    streamed = torch.stack(list(model.forecast(frames, 2)), dim=1)
    assert compiled == stream_graphs
    # the same recurrence every way (the traced code runs eagerly here)
    assert torch.allclose(expected[:, -2:], streamed, atol=1e-6)
    model.compile = False
    assert torch.allclose(model(frames, 2), expected, atol=1e-6)


def test_training_with_random_draws_keeps_the_pieces():
    # stochastic depth drawn inside the whole-sequence graph gave gradients 0.4 % off: training
    # with draws takes the pieces; without draws (or in eval) the whole sequence
    model = build_model("swinlstm-b", img_size=16, compile=True, **B_MINI)
    assert model.drop_path_rate > 0
    assert model.eval().compiles_sequence() and not model.train().compiles_sequence()
    still = build_model("swinlstm-b", img_size=16, compile=True, **dict(B_MINI, drop_path_rate=0.0))
    assert still.train().compiles_sequence()
    dropout = build_model("swinlstm-b", img_size=16, compile=True, **dict(B_MINI, drop_rate=0.1))
    assert not dropout.train().compiles_sequence()


def test_dropout_options_honoured_by_d():
    model = build_model("swinlstm-d", img_size=8, drop_rate=0.3, attn_drop_rate=0.2, **D_MINI)
    blk = model.up[0].blocks[0]
    assert blk.mlp.drop.p == 0.3 and blk.attn.proj_drop.p == 0.3 and blk.attn.attn_drop == 0.2
    frames = torch.rand(1, 2, 1, 8, 8)
    torch.manual_seed(0)
    a = model.train()(frames, 1)
    b = model(frames, 1)
    assert not torch.allclose(a, b)
    model.eval()
    assert torch.equal(run_forward(model, frames, 1), run_forward(model, frames, 1))
    # attention dropout alone also changes the training output
    only_attn = build_model(
        "swinlstm-d", img_size=8, attn_drop_rate=0.5, drop_path_rate=0.0, **D_MINI
    )
    only_attn.train()
    assert not torch.allclose(only_attn(frames, 1), only_attn(frames, 1))


@pytest.mark.parametrize(
    ("name", "config"), [("swinlstm-b-mmnist", B_TINY), ("swinlstm-d-mmnist", D_TINY)]
)
def test_bf16_autocast_finite_and_close(name, config):
    torch.manual_seed(0)
    model = build_model(name, **config).eval()
    size = config["img_size"]
    frames = torch.rand(2, 4, 1, size, size)
    with torch.no_grad():
        ref = model.predict(frames, 2)
        with torch.autocast("cpu", dtype=torch.bfloat16):
            low = model.predict(frames, 2)
    assert low.dtype == torch.float32 and torch.isfinite(low).all()
    assert (low - ref).abs().max().item() <= 1e-2
    # masks under autocast are finite in bf16 (no -inf)
    state = model.init_state(1)
    masks = state.masks.get(model.cells(), torch.bfloat16, 1, chunked=False)
    assert all(torch.isfinite(m).all() for cell in masks for m in cell.blocks)


# ------------------------------------------------------------------------------------------
# Bad input
# ------------------------------------------------------------------------------------------
def test_bad_frames_and_out_len():
    model = build_model("swinlstm-b", img_size=(8, 12), in_chans=2, **B_MINI)
    with pytest.raises(ValueError, match=r"\(B, T, C, H, W\).*\(2, 2, 8, 12\)"):
        model(torch.rand(2, 2, 8, 12), 1)
    with pytest.raises(ValueError, match="3 channels.*in_chans=2"):
        model(torch.rand(1, 2, 3, 8, 12), 1)
    with pytest.raises(ValueError, match=r"8x8.*\(8, 12\)"):
        model(torch.rand(1, 2, 2, 8, 8), 1)
    with pytest.raises(ValueError, match="out_len.*0"):
        model(torch.rand(1, 2, 2, 8, 12), 0)
    with pytest.raises(ValueError, match=r"one frame.*\(1, 2, 2, 8, 12\)"):
        model.step(torch.rand(1, 2, 2, 8, 12), model.init_state(1))


@pytest.mark.parametrize(
    ("name", "config", "match"),
    [
        ("swinlstm-b", dict(img_size=0), "img_size"),
        ("swinlstm-b", dict(img_size=(8, 8, 8)), "img_size"),
        ("swinlstm-b", dict(patch_size=0), "patch_size"),
        ("swinlstm-b", dict(embed_dim=10, num_heads=[4]), "not divisible by num_heads=4"),
        ("swinlstm-b", dict(depths=[2, 2], num_heads=[4]), "num_heads needs one entry"),
        ("swinlstm-b", dict(drop_path_rate=1.5), "drop_path_rate"),
        ("swinlstm-b", dict(memory_size=-1), "memory_size must be an integer >= 0"),
        ("swinlstm-b", dict(depths_down=[2]), "unknown config keys.*depths_down"),
        ("swinlstm-d", dict(depths_down=[2, 2], depths_up=[2]), "depths_up"),
        ("swinlstm-d", dict(num_heads=[4]), "num_heads needs one entry per level"),
        ("swinlstm-d", dict(depths_down=[]), "depths_down"),
    ],
)
def test_bad_config(name, config, match):
    with pytest.raises(ValueError, match=match):
        build_model(name, **config)


def test_classes_registered():
    assert isinstance(build_model("swinlstm-b", img_size=8, **B_MINI), SwinLSTMB)
    assert isinstance(build_model("swinlstm_d", img_size=8, **D_MINI), SwinLSTMD)


def test_compiled_model_copies_and_pickles(tmp_path):
    import copy

    model = build_model("swinlstm-b", img_size=8, compile=True, **B_MINI)
    model._cells_step()  # the compiled wrapper exists (compilation itself is lazy)
    clone = copy.deepcopy(model)
    assert "_compiled_fns" not in clone.__dict__
    torch.save(model, tmp_path / "m.pt")
    assert "_compiled_fns" in model.__dict__


# ------------------------------------------------------------------------------------------
# Named variants
# ------------------------------------------------------------------------------------------
def test_variants_build_their_base_with_their_options():
    from swinlstm.models import VARIANTS, list_models

    assert set(VARIANTS) <= set(list_models())
    assert {"swinlstm-d-mmnist", "swinlstm-b-taxibj", "lmc-convlstm-kth"} <= set(VARIANTS)
    for name, variant in VARIANTS.items():
        assert variant.source, name  # every variant says where its values come from
        model = build_model(name)
        assert (model.model_name, model.model_config) == (variant.base, dict(variant.options))
        assert model.variant == name
        # what a checkpoint saves rebuilds the same network without the variant's name
        again = build_model(model.model_name, **model.model_config)
        assert {k: v.shape for k, v in again.state_dict().items()} == {
            k: v.shape for k, v in model.state_dict().items()
        }


def test_variant_options_are_overridable_and_read_only():
    from swinlstm.models import VARIANTS

    model = build_model("SwinLSTM_B_TaxiBJ", depths=[2], img_size=16)
    assert model.model_name == "swinlstm-b" and len(model.layers[0].blocks) == 2
    assert model.img_size == (16, 16) and model.in_chans == 2 and model.window_size == 8
    assert VARIANTS["swinlstm-b-taxibj"].options["depths"] == [12]  # the override did not leak
    with pytest.raises(TypeError):
        VARIANTS["swinlstm-b-taxibj"].options["depths"] = [1]
    assert build_model("swinlstm-b", embed_dim=8, depths=[1], num_heads=[2]).variant is None


def test_unknown_model_lists_the_variants():
    from swinlstm.errors import ConfigError

    with pytest.raises(ConfigError, match="swinlstm-d-mmnist") as err:
        build_model("swinlstm-d-mnist")
    assert "unknown model 'swinlstm-d-mnist'" in str(err.value) and "lmc-convlstm-kth" in str(
        err.value
    )
    with pytest.raises(ConfigError, match="unknown config keys"):
        build_model("swinlstm-d-mmnist", depths=[2])  # -B's option on a -D variant
