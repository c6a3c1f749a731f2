"""swinlstm.metrics: equality with scikit-image, each anchor protocol against a hand-written loop of
that anchor's formula, identical frames, streaming accumulation, writers and bad inputs."""

import csv
import json
import warnings

import cv2
import numpy as np
import pytest
import torch
from skimage.metrics import mean_squared_error, peak_signal_noise_ratio, structural_similarity

from swinlstm.metrics import (
    METRICS,
    PROTOCOLS,
    PSNR_CAP_DB,
    MetricAccumulator,
    compute,
    format_summary,
    write_metrics,
)

ALL_BUT_LPIPS = tuple(m for m in METRICS if m != "lpips")


def _frames(b=2, t=3, c=1, h=32, w=32, seed=0, structured=False, noise=0.1):
    """(pred, target) float32 numpy arrays in [0, 1]: random, or moving bars and blobs."""
    rng = np.random.default_rng(seed)
    if structured:
        yy, xx = np.mgrid[0:h, 0:w] / max(h, w)
        base = np.zeros((b, t, c, h, w), np.float32)
        for i in range(b):
            for j in range(t):
                for k in range(c):
                    phase = 0.3 * j + i + 0.5 * k
                    base[i, j, k] = 0.5 + 0.5 * np.sin(8 * xx + 5 * yy + phase)
                    base[i, j, k, h // 4 : h // 2, 2 + j : 8 + j] = 1.0
        target = base
    else:
        target = rng.random((b, t, c, h, w), dtype=np.float32)
    pred = np.clip(target + noise * rng.standard_normal(target.shape), 0, 1).astype(np.float32)
    return pred, target


def _t(*arrays):
    return [torch.from_numpy(np.ascontiguousarray(a)) for a in arrays]


def _loop(fn, pred, target):
    """Hand-written (T,) batch mean of ``fn(pred_frame, target_frame)`` over (B, T, C, H, W)."""
    b, t = pred.shape[:2]
    return np.array([np.mean([fn(pred[i, j], target[i, j]) for i in range(b)]) for j in range(t)])


def _close(got, want, tol=1e-5):
    np.testing.assert_allclose(got.numpy(), want, rtol=tol, atol=tol)


# ----------------------------------------------------------------------------- skimage equality


@pytest.mark.parametrize("structured", [False, True])
@pytest.mark.parametrize("channels", [1, 3])
def test_default_matches_skimage(structured, channels):
    pred, target = _frames(c=channels, structured=structured)
    out = compute(*_t(pred, target), metrics=("ssim", "psnr", "mse_pixel", "mse", "mae"))
    if channels == 1:
        sk_ssim = _loop(
            lambda p, g: structural_similarity(g[0], p[0], data_range=1.0), pred, target
        )
    else:
        sk_ssim = _loop(
            lambda p, g: structural_similarity(g, p, data_range=1.0, channel_axis=0), pred, target
        )
    _close(out["ssim"], sk_ssim)
    _close(
        out["psnr"], _loop(lambda p, g: peak_signal_noise_ratio(g, p, data_range=1.0), pred, target)
    )
    _close(out["mse_pixel"], _loop(mean_squared_error, pred, target))
    p64, g64 = pred.astype(np.float64), target.astype(np.float64)
    _close(out["mse"], ((p64 - g64) ** 2).sum(axis=(2, 3, 4)).mean(0))
    _close(out["mae"], np.abs(p64 - g64).sum(axis=(2, 3, 4)).mean(0))


def test_ssim_float64_inputs_match_skimage_tightly():
    pred, target = (a.astype(np.float64) for a in _frames(h=20, w=27, structured=True, noise=0.3))
    out = compute(*_t(pred, target), metrics=("ssim",))
    want = _loop(lambda p, g: structural_similarity(g[0], p[0], data_range=1.0), pred, target)
    _close(out["ssim"], want, tol=1e-10)


@pytest.mark.parametrize("chunk_bytes", [1, 3 * 4 * 4 * 19 * 26, 1 << 20])
def test_ssim_chunking_and_non_square_frames_match_skimage(monkeypatch, chunk_bytes):
    """The flat shifted-add filter reads across rows, frames and chunk ends: one frame per chunk,
    chunks of 3 frames that leave a remainder, and everything in one chunk give skimage's values
    on non-square frames (H != W), and identical frames still give exactly 1."""
    from swinlstm.metrics import ssim as ssim_module
    from swinlstm.metrics import ssim_cpu

    monkeypatch.setattr(ssim_cpu, "available", lambda x: False)  # the torch filter
    monkeypatch.setattr(ssim_module, "CHUNK_BYTES", chunk_bytes)
    pred, target = _frames(b=4, t=2, c=1, h=19, w=26, structured=True, noise=0.2)
    out = compute(*_t(pred, target), metrics=("ssim",))
    want = _loop(lambda p, g: structural_similarity(g[0], p[0], data_range=1.0), pred, target)
    _close(out["ssim"], want)
    same = compute(*_t(target, target), metrics=("ssim", "ssim_gauss"))
    _close(same["ssim"], np.ones(2), tol=1e-12)
    _close(same["ssim_gauss"], np.ones(2), tol=1e-12)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("shape", [(3, 2, 1, 19, 26), (2, 2, 3, 7, 7), (1, 4, 1, 64, 64)])
def test_compiled_ssim_equals_torch_filter(monkeypatch, dtype, shape):
    """The numba loop (running window sums, float64) and the torch shifted-add filter agree on
    every frame, window-sized frames included, and both give exactly 1 for identical frames."""
    from swinlstm.metrics import ssim as ssim_module
    from swinlstm.metrics import ssim_cpu

    b, t, c, h, w = shape
    pred, target = (torch.from_numpy(a.astype(dtype)) for a in _frames(b, t, c, h, w, noise=0.3))
    assert ssim_cpu.available(pred)
    compiled = ssim_module.ssim(pred, target)
    same = ssim_module.ssim(target, target)
    monkeypatch.setattr(ssim_cpu, "available", lambda x: False)
    plain = ssim_module.ssim(pred, target)
    np.testing.assert_allclose(compiled.numpy(), plain.numpy(), rtol=0, atol=2e-6)
    assert bool((same == 1).all())


# ----------------------------------------------------------------------------- anchor protocols


def _swinlstm_psnr(p, g):
    # SwinLSTM utils.PSNR (quoted from E3D-LSTM); uint8 arithmetic wraps around
    mse = np.mean((np.uint8(p * 255) - np.uint8(g * 255)) ** 2)
    return 20 * np.log10(255) - 10 * np.log10(mse)


def test_swinlstm_protocol_matches_its_formulas():
    pred, target = _frames(t=4, noise=0.2)
    raw = pred + np.float32(0.05)  # SwinLSTM does not clip: MSE/SSIM see raw predictions
    out = compute(*_t(raw, target), metrics=("mse", "mae", "ssim"), protocol="swinlstm")
    # utils.MSE/MAE: np.mean(..., axis=(0, 1)).sum() -> per frame: batch mean of pixel sums
    _close(out["mse"], np.mean((raw - target) ** 2, axis=0).sum(axis=(1, 2, 3)), tol=1e-4)
    _close(out["mae"], np.mean(np.abs(raw - target), axis=0).sum(axis=(1, 2, 3)), tol=1e-4)
    # structural_similarity(target, pred) on float frames, skimage<=0.19: data_range = 2.0
    want = _loop(lambda p, g: structural_similarity(g[0], p[0], data_range=2.0), raw, target)
    _close(out["ssim"], want)
    psnr = compute(*_t(pred, target), metrics=("psnr",), protocol="swinlstm")["psnr"]
    _close(psnr, _loop(_swinlstm_psnr, pred, target))


def test_e3d_psnr_wraps_around_and_inflates():
    pred, target = _frames(t=2, noise=0.15, structured=True)
    e3d = compute(*_t(pred, target), metrics=("psnr", "ssim"), protocol="e3d")
    default = compute(*_t(pred, target), metrics=("psnr", "ssim"))
    _close(e3d["psnr"], _loop(_swinlstm_psnr, pred, target))
    assert (e3d["psnr"] > default["psnr"] + 3).all()
    _close(e3d["ssim"], default["ssim"].numpy(), tol=0)


def test_lmc_protocol_matches_its_formulas():
    pred, target = _frames(t=3, c=3, h=24, w=24, noise=0.2)
    raw = pred * 1.1 - 0.05  # out of range: LMC clamps predictions before every metric
    out = compute(*_t(raw, target), metrics=("mse", "psnr", "ssim"), protocol="lmc")
    clamped = np.clip(raw, 0, 1)
    hwc_p, hwc_g = clamped.transpose(0, 1, 3, 4, 2), target.transpose(0, 1, 3, 4, 2)
    img_size = 24
    _close(out["mse"], _loop(mean_squared_error, hwc_g, hwc_p) * img_size**2, tol=1e-4)
    # peak_signal_noise_ratio(gt, pred) without data_range: 1 for float gt >= 0
    _close(
        out["psnr"], _loop(lambda g, p: peak_signal_noise_ratio(g, p, data_range=1.0), hwc_g, hwc_p)
    )
    # structural_similarity(gt, pred, multichannel=True) on floats: data_range 2.0
    want = _loop(
        lambda g, p: structural_similarity(g, p, data_range=2.0, channel_axis=-1), hwc_g, hwc_p
    )
    _close(out["ssim"], want)


def test_openstl_protocol_matches_its_formulas():
    pred, target = _frames(t=3, c=2, noise=0.2)
    raw = pred * 1.2 - 0.1
    out = compute(*_t(raw, target), metrics=("mse", "mae", "ssim", "psnr"), protocol="openstl")
    # MSE/MAE before clipping: np.mean(..., axis=(0, 1)).sum() per frame
    _close(out["mse"], np.mean((raw - target) ** 2, axis=0).sum(axis=(1, 2, 3)), tol=1e-4)
    _close(out["mae"], np.mean(np.abs(raw - target), axis=0).sum(axis=(1, 2, 3)), tol=1e-4)
    clipped = np.minimum(np.maximum(raw, 0), 1)

    def ssim(p, g):  # cal_ssim(pred.swapaxes(0, 2), true.swapaxes(0, 2), multichannel=True)
        return structural_similarity(
            p.swapaxes(0, 2), g.swapaxes(0, 2), data_range=2.0, channel_axis=-1
        )

    def psnr(p, g):
        mse = np.mean((p.astype(np.float32) - g.astype(np.float32)) ** 2)
        return 20.0 * np.log10(1.0 / np.sqrt(mse))

    _close(out["ssim"], _loop(ssim, clipped, target))
    _close(out["psnr"], _loop(psnr, clipped, target), tol=1e-4)


def test_ssim_gauss_matches_openstl_cv2_formula():
    pred, target = _frames(t=2, c=2, structured=True, noise=0.2)

    def ssim(p, g):  # OpenSTL metrics.SSIM on 0-255 frames, channel-last
        img1, img2 = (x.transpose(1, 2, 0).astype(np.float64) * 255 for x in (p, g))
        c1, c2 = (0.01 * 255) ** 2, (0.03 * 255) ** 2
        k = cv2.getGaussianKernel(11, 1.5)
        win = np.outer(k, k.transpose())

        def f(x):
            return cv2.filter2D(x, -1, win)[5:-5, 5:-5]

        mu1, mu2 = f(img1), f(img2)
        s1, s2, s12 = f(img1**2) - mu1**2, f(img2**2) - mu2**2, f(img1 * img2) - mu1 * mu2
        num = (2 * mu1 * mu2 + c1) * (2 * s12 + c2)
        return (num / ((mu1**2 + mu2**2 + c1) * (s1 + s2 + c2))).mean()

    out = compute(*_t(pred, target), metrics=("ssim_gauss",), protocol="openstl")
    _close(out["ssim_gauss"], _loop(ssim, pred, target))


def test_every_protocol_described_and_named_in_summary():
    assert set(PROTOCOLS) >= {"default", "swinlstm", "lmc", "openstl", "e3d"}
    pred, target = _frames(t=2)
    for name, description in PROTOCOLS.items():
        assert description and "\n" not in description
        out = compute(*_t(pred, target), metrics=ALL_BUT_LPIPS, protocol=name)
        lines = format_summary(out, name)
        assert len(lines) == len(ALL_BUT_LPIPS)
        assert all(f"[{name}:" in line for line in lines)


# ----------------------------------------------------------------------------- identical frames


@pytest.mark.parametrize("protocol", list(PROTOCOLS))
def test_identical_frames(protocol):
    _, target = _frames(c=3, structured=True)
    out = compute(*_t(target, target), metrics=ALL_BUT_LPIPS, protocol=protocol)
    for name in ("mse", "mae", "mse_pixel", "mae_pixel"):
        assert torch.all(out[name] == 0)
    _close(out["ssim"], np.ones(3), tol=1e-12)
    _close(out["ssim_gauss"], np.ones(3), tol=1e-12)
    assert torch.all(out["psnr"] == PSNR_CAP_DB)


def test_output_is_per_frame_batch_mean():
    pred, target = _frames(b=3, t=5)
    out = compute(*[x.requires_grad_() for x in _t(pred, target)])
    assert not any(v.requires_grad for v in out.values())
    assert set(out) == {"mse", "mae", "ssim", "psnr"}
    assert all(v.shape == (5,) for v in out.values())
    single = [compute(*_t(pred[i : i + 1], target[i : i + 1]))["psnr"] for i in range(3)]
    _close(out["psnr"], torch.stack(single).mean(0).numpy(), tol=1e-12)


# ----------------------------------------------------------------------------- accumulation


def test_accumulator_equals_compute_on_concatenation():
    pred, target = _frames(b=7, t=4, structured=True)
    acc = MetricAccumulator(metrics=ALL_BUT_LPIPS, protocol="openstl")
    for lo, hi in ((0, 3), (3, 4), (4, 7)):
        acc.update(*_t(pred[lo:hi], target[lo:hi]))
    assert acc.count == 7
    got = acc.compute()
    want = compute(*_t(pred, target), metrics=ALL_BUT_LPIPS, protocol="openstl")
    for k in want:
        _close(got[k], want[k].numpy(), tol=1e-12)
    acc.reset()
    with pytest.raises(ValueError, match="no samples"):
        acc.compute()


def test_accumulator_state_tensors_sum_like_all_reduce():
    pred, target = _frames(b=5, t=2)
    ranks = [MetricAccumulator(), MetricAccumulator()]
    ranks[0].update(*_t(pred[:2], target[:2]))
    ranks[1].update(*_t(pred[2:], target[2:]))
    states = [r.state_tensors() for r in ranks]
    for key in states[0]:  # what all_reduce(SUM) does, in place on the live tensors
        total = states[0][key] + states[1][key]
        for s in states:
            s[key].copy_(total)
    assert ranks[1].count == 5
    merged = MetricAccumulator()
    merged.load_state_tensors(ranks[0].state_tensors())
    want = compute(*_t(pred, target))
    for k in want:
        _close(ranks[1].compute()[k], want[k].numpy(), tol=1e-12)
        _close(merged.compute()[k], want[k].numpy(), tol=1e-12)


def test_accumulator_rejects_changing_horizon():
    acc = MetricAccumulator(metrics=("mse",))
    acc.update(*_t(*_frames(t=3)))
    with pytest.raises(ValueError, match="frames"):
        acc.update(*_t(*_frames(t=2)))


# ----------------------------------------------------------------------------- writers


def test_writers_produce_json_csv_png(tmp_path):
    pred, target = _frames(t=4)
    per_frame = compute(*_t(pred, target), metrics=("mse", "ssim", "psnr"), protocol="lmc")
    meta = {"protocol": "lmc", "dataset": "mmnist", "model": "swinlstm-b", "checkpoint": "a.pt"}
    result = write_metrics(tmp_path / "out", per_frame, meta)
    data = json.loads((tmp_path / "out" / "metrics.json").read_text())
    assert data == json.loads(json.dumps(result))
    assert data["protocol"] == "lmc" and data["protocol_description"] == PROTOCOLS["lmc"]
    assert data["dataset"] == "mmnist" and data["checkpoint"] == "a.pt"
    assert data["num_frames"] == 4 and len(data["per_frame"]["ssim"]) == 4
    assert data["means"]["psnr"] == pytest.approx(float(per_frame["psnr"].mean()))
    assert "H*W" in data["definitions"]["mse"]
    with open(tmp_path / "out" / "metrics.csv") as f:
        rows = list(csv.reader(f))
    assert rows[0] == ["frame", "mse", "ssim", "psnr"] and len(rows) == 5
    assert float(rows[2][2]) == pytest.approx(float(per_frame["ssim"][1]))
    png = (tmp_path / "out" / "per_frame.png").read_bytes()
    assert png[:8] == b"\x89PNG\r\n\x1a\n" and len(png) > 1000


def test_writers_reject_bad_input(tmp_path):
    with pytest.raises(ValueError, match="reserved"):
        write_metrics(tmp_path, {"mse": torch.zeros(2)}, {"means": 1})
    with pytest.raises(ValueError, match="length"):
        write_metrics(tmp_path, {"mse": torch.zeros(2), "ssim": torch.zeros(3)}, {})
    with pytest.raises(ValueError, match="unknown metrics protocol"):
        write_metrics(tmp_path, {"mse": torch.zeros(2)}, {"protocol": "nope"})


# ----------------------------------------------------------------------------- bad inputs


def test_bad_inputs_raise_clear_errors():
    pred, target = _t(*_frames())
    nan = pred.clone()
    nan[0, 1, 0, 3, 3] = float("nan")
    with pytest.raises(ValueError, match="pred has 1 NaN"):
        compute(nan, target)
    with pytest.raises(ValueError, match=r"expected 5 dims \(B, T, C, H, W\)"):
        compute(pred[0], target[0])
    with pytest.raises(ValueError, match="no frames"):
        compute(pred[:0], target[:0])
    with pytest.raises(ValueError, match="!= target shape"):
        compute(pred[:, :2], target)
    with pytest.raises(ValueError, match="dtype"):
        compute((pred * 255).to(torch.uint8), target)
    with pytest.raises(ValueError, match=r"expected \[0, 1\]"):
        compute(pred, target * 2 - 1)
    with pytest.raises(ValueError, match="unknown metrics"):
        compute(pred, target, metrics=("fvd",))
    with pytest.raises(ValueError, match="unknown metrics protocol"):
        compute(pred, target, protocol="simvp")
    with pytest.raises(ValueError, match="at least 7x7"):
        compute(pred[..., :5, :5], target[..., :5, :5], metrics=("ssim",))


def test_lpips_requested_without_weights_is_skipped(monkeypatch):
    import swinlstm.metrics.core as core

    def no_weights():
        warnings.warn("LPIPS weights not found", stacklevel=2)

    monkeypatch.setattr(core, "load_lpips", no_weights)
    pred, target = _t(*_frames())
    with pytest.warns(UserWarning, match="LPIPS weights not found"):
        out = compute(pred, target, metrics=("mse", "lpips"))
    assert set(out) == {"mse"}


def test_bench_metrics_runs_and_agrees_with_skimage(capsys):
    from swinlstm.bench.metrics import main

    argv = ["--n", "2", "--t", "2", "--size", "32", "--repeats", "1", "--lpips-frames", "0"]
    assert main(argv) == 0
    out = capsys.readouterr().out
    assert "| swinlstm.metrics.compute |" in out and "speedup" in out


def test_chunked_evaluation_equals_whole_batch(monkeypatch):
    import swinlstm.metrics.core as core

    pred, target = _t(*_frames(b=5, t=3, c=3))
    whole = compute(pred, target, metrics=ALL_BUT_LPIPS)
    monkeypatch.setattr(core, "FRAMES_PER_CHUNK", 7)  # 1 sample of 3 frames x 3 channels a chunk
    chunked = compute(pred, target, metrics=ALL_BUT_LPIPS)
    for k in whole:
        _close(chunked[k], whole[k].numpy(), tol=1e-12)


@pytest.mark.parametrize("threads", [1, 2])
def test_compiled_ssim_leaves_torch_thread_count_alone(threads):
    """numba's OpenMP pool shares torch's libgomp; a metric call must not change how many threads
    torch uses afterwards (it did: 1 -> 2, which oversubscribed parallel training runs)."""
    from swinlstm.metrics import ssim as ssim_module

    before = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        x = torch.rand(2, 3, 1, 16, 16)
        ssim_module.ssim(x, x.flip(-1))
        assert torch.get_num_threads() == threads
    finally:
        torch.set_num_threads(before)
