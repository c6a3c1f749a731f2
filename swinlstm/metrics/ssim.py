"""Batched SSIM matching scikit-image's ``structural_similarity`` and OpenSTL's Gaussian ``SSIM``.

Both evaluate the SSIM map only where the window lies inside the frame (skimage crops
``(win - 1) // 2`` pixels from each border, OpenSTL slices ``[5:-5, 5:-5]``), so a valid
(unpadded) filter is exact and the border mode never matters. Colour frames give the mean of the
per-channel SSIMs, as skimage with ``channel_axis`` does. Computed in float64, in chunks.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

K1, K2 = 0.01, 0.03
#: frames (times channels) filtered at once: bounds the float64 work memory to ~100 MB at 64x64
CHUNK = 1024


def _box_filter(maps: torch.Tensor, win: int) -> torch.Tensor:
    """Valid ``win x win`` mean of (N, M, H, W) maps, separable. -> (N, M, H-win+1, W-win+1)."""
    return F.avg_pool2d(F.avg_pool2d(maps, (win, 1), stride=1), (1, win), stride=1)


def gaussian_kernel(size: int = 11, sigma: float = 1.5, dtype=torch.float64) -> torch.Tensor:
    """Normalised 1-D Gaussian (as ``cv2.getGaussianKernel(size, sigma)``), shape (size,)."""
    x = torch.arange(size, dtype=dtype) - (size - 1) / 2
    k = torch.exp(-(x**2) / (2 * sigma**2))
    return k / k.sum()


def _gauss_filter(maps: torch.Tensor, kernel: torch.Tensor) -> torch.Tensor:
    """Valid separable Gaussian filtering of (N, M, H, W) maps."""
    n, m, h, w = maps.shape
    k = kernel.to(maps)
    x = maps.reshape(n * m, 1, h, w)
    x = F.conv2d(x, k.view(1, 1, -1, 1))
    x = F.conv2d(x, k.view(1, 1, 1, -1))
    return x.reshape(n, m, x.shape[-2], x.shape[-1])


def _ssim_map_mean(
    x: torch.Tensor, y: torch.Tensor, filt, c1: float, c2: float, cov_norm: float
) -> torch.Tensor:
    """Mean SSIM map per image of (N, H, W) float64 images ``x``, ``y`` -> (N,)."""
    maps = torch.stack((x, y, x * x, y * y, x * y), dim=1)
    ux, uy, uxx, uyy, uxy = filt(maps).unbind(1)
    vx = cov_norm * (uxx - ux * ux)
    vy = cov_norm * (uyy - uy * uy)
    vxy = cov_norm * (uxy - ux * uy)
    num = (2 * ux * uy + c1) * (2 * vxy + c2)
    den = (ux * ux + uy * uy + c1) * (vx + vy + c2)
    return (num / den).flatten(1).mean(-1)


def _per_frame(pred: torch.Tensor, target: torch.Tensor, win: int, fn) -> torch.Tensor:
    """Apply ``fn`` ((N, H, W), (N, H, W)) -> (N,) over chunks of (B, T, C, H, W) frames and
    average over channels. Returns (B, T) float64."""
    b, t, c, h, w = pred.shape
    if h < win or w < win:
        raise ValueError(f"metrics: SSIM needs frames of at least {win}x{win}, got {h}x{w}")
    p = pred.reshape(-1, h, w)
    q = target.reshape(-1, h, w)
    out = [
        fn(p[i : i + CHUNK].double(), q[i : i + CHUNK].double()) for i in range(0, len(p), CHUNK)
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
