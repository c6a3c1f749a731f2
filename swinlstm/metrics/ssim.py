"""Batched SSIM matching scikit-image's ``structural_similarity`` and OpenSTL's Gaussian ``SSIM``.

Both evaluate the SSIM map only where the window lies inside the frame (skimage crops
``(win - 1) // 2`` pixels from each border, OpenSTL slices ``[5:-5, 5:-5]``), so a valid
(unpadded) filter is exact and the border mode never matters. Colour frames give the mean of the
per-channel SSIMs, as skimage with ``channel_axis`` does. Filtered in float32 (float64 for float64
inputs) in small chunks; the SSIM map is averaged in float64.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

K1, K2 = 0.01, 0.03
#: frames (times channels) filtered at once: small chunks keep the five maps in cache
CHUNK = 32


def _work_dtype(x: torch.Tensor) -> torch.dtype:
    """float64 inputs are filtered in float64, everything else in float32."""
    return torch.float64 if x.dtype == torch.float64 else torch.float32


def _box_filter(maps: torch.Tensor, win: int) -> torch.Tensor:
    """Valid ``win x win`` mean of (M, N, H, W) maps -> (M, N, H-win+1, W-win+1).

    float32: a depthwise convolution with the N frames as channels (rounding independent of the
    frame size; on CPU several times faster than grouping over the M maps); float64: two running
    sums (exact enough in double precision, and float64 convolutions are slow on CPU).
    """
    n = maps.shape[1]
    if maps.dtype == torch.float64:
        c = F.pad(maps.cumsum(-2), (0, 0, 1, 0))
        c = c[..., win:, :] - c[..., :-win, :]
        c = F.pad(c.cumsum(-1), (1, 0))
        return (c[..., win:] - c[..., :-win]).mul_(1.0 / win**2)
    kernel = maps.new_full((n, 1, win, win), 1.0 / win**2)
    return F.conv2d(maps, kernel, groups=n)


def gaussian_kernel(size: int = 11, sigma: float = 1.5, dtype=torch.float64) -> torch.Tensor:
    """Normalised 1-D Gaussian (as ``cv2.getGaussianKernel(size, sigma)``), shape (size,)."""
    x = torch.arange(size, dtype=dtype) - (size - 1) / 2
    k = torch.exp(-(x**2) / (2 * sigma**2))
    return k / k.sum()


def _gauss_filter(maps: torch.Tensor, kernel: torch.Tensor) -> torch.Tensor:
    """Valid separable Gaussian filtering of (M, N, H, W) maps (frames as channels)."""
    n = maps.shape[1]
    k = kernel.to(maps)
    x = F.conv2d(maps, k.view(1, 1, -1, 1).expand(n, 1, -1, 1), groups=n)
    return F.conv2d(x, k.view(1, 1, 1, -1).expand(n, 1, 1, -1), groups=n)


def _ssim_map_mean(
    x: torch.Tensor, y: torch.Tensor, filt, c1: float, c2: float, cov_norm: float
) -> torch.Tensor:
    """Mean SSIM map per image of (N, H, W) images ``x``, ``y`` -> (N,) float64.

    S = (2 ux uy + C1)(2 vxy + C2) / ((ux^2 + uy^2 + C1)(vx + vy + C2)) with
    v* = cov_norm * (windowed second moment - product of means). Only vx + vy is needed, so four
    maps are filtered (x, y, x^2 + y^2, xy); the rest is evaluated in place.
    """
    maps = torch.stack((x, y, x * x + y * y, x * y))
    ux, uy, uxx_yy, uxy = filt(maps)
    uxuy = ux * uy
    num = uxy.sub_(uxuy).mul_(2 * cov_norm).add_(c2).mul_(uxuy.mul_(2).add_(c1))
    means_sq = ux.square_().add_(uy.square_())
    den = uxx_yy.sub_(means_sq).mul_(cov_norm).add_(c2).mul_(means_sq.add_(c1))
    return num.div_(den).flatten(1).mean(-1).double()


def _per_frame(pred: torch.Tensor, target: torch.Tensor, win: int, fn) -> torch.Tensor:
    """Apply ``fn`` ((N, H, W), (N, H, W)) -> (N,) over chunks of (B, T, C, H, W) frames and
    average over channels. Returns (B, T) float64."""
    b, t, c, h, w = pred.shape
    if h < win or w < win:
        raise ValueError(f"metrics: SSIM needs frames of at least {win}x{win}, got {h}x{w}")
    dtype = _work_dtype(pred)
    p = pred.reshape(-1, h, w)
    q = target.reshape(-1, h, w)
    out = [
        fn(p[i : i + CHUNK].to(dtype), q[i : i + CHUNK].to(dtype)) for i in range(0, len(p), CHUNK)
    ]
    return torch.cat(out).view(b, t, c).mean(-1)


def ssim(
    pred: torch.Tensor,
    target: torch.Tensor,
    data_range: float = 1.0,
    win_size: int = 7,
    use_sample_covariance: bool = True,
) -> torch.Tensor:
    """skimage ``structural_similarity(target, pred, data_range=..., channel_axis=...)`` per sample
    and frame: uniform ``win_size`` window, covariances scaled by NP / (NP - 1) (skimage's
    default sample covariance), K1 = 0.01, K2 = 0.03.

    Args:
        pred, target: (B, T, C, H, W) frames.
        data_range: 1.0 for [0, 1] frames; 2.0 reproduces skimage <= 0.19 on floats without
            ``data_range`` (SwinLSTM, OpenSTL, LMC-Memory).
    Returns:
        (B, T) float64, the mean over channels of the per-channel SSIM.
    """
    np_ = win_size**2
    cov_norm = np_ / (np_ - 1) if use_sample_covariance else 1.0
    c1, c2 = (K1 * data_range) ** 2, (K2 * data_range) ** 2

    def fn(x, y):
        return _ssim_map_mean(x, y, lambda m: _box_filter(m, win_size), c1, c2, cov_norm)

    return _per_frame(pred, target, win_size, fn)


def ssim_gaussian(pred: torch.Tensor, target: torch.Tensor, size: int = 11, sigma: float = 1.5):
    """OpenSTL's ``SSIM(pred, true)`` per sample and frame: frames scaled to 0-255, Gaussian
    ``size`` x ``size`` window (sigma 1.5), population covariance, C1 = (0.01*255)^2,
    C2 = (0.03*255)^2, mean over the valid region and channels. Returns (B, T) float64."""
    kernel = gaussian_kernel(size, sigma)
    c1, c2 = (K1 * 255) ** 2, (K2 * 255) ** 2

    def fn(x, y):
        return _ssim_map_mean(
            x * 255, y * 255, lambda m: _gauss_filter(m, kernel), c1, c2, cov_norm=1.0
        )

    return _per_frame(pred, target, size, fn)


__all__ = ["ssim", "ssim_gaussian", "gaussian_kernel"]
