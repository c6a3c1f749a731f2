"""Batched SSIM matching scikit-image's ``structural_similarity`` and OpenSTL's Gaussian ``SSIM``.

Both evaluate the SSIM map only where the window lies inside the frame (skimage crops
``(win - 1) // 2`` pixels from each border, OpenSTL slices ``[5:-5, 5:-5]``), so a valid
(unpadded) filter is exact and the border mode never matters. Colour frames give the mean of the
per-channel SSIMs, as skimage with ``channel_axis`` does.

Why it is fast on a CPU: the four maps (x, y, x^2 + y^2, xy) of a chunk of frames lie in one flat
buffer, and the separable window is applied to the whole buffer with shifted adds (a shift of 1
sums along W, a shift of W along H; the uniform window by doubling: 4 adds per axis for 7 taps).
Each operation is one long contiguous loop; the positions whose window runs over a row or frame
end are computed but never read. The SSIM formula works on window *sums* with its constants folded
into the input maps (a dozen elementwise operations), and every operation writes into work buffers
that are allocated once per call and reused for each chunk. Filtered in float32 (float64 for
float64 inputs); the per-frame means are returned in float64.

On the CPU the uniform window runs as one compiled loop instead (:mod:`ssim_cpu`, numba).
"""

from __future__ import annotations

import math

import torch

from swinlstm.errors import ConfigError
from swinlstm.metrics import ssim_cpu

K1, K2 = 0.01, 0.03
#: bytes of one work buffer (four maps of a chunk of frames): about a core's L2 cache
CHUNK_BYTES = 1 << 20


def _work_dtype(x: torch.Tensor) -> torch.dtype:
    """float64 inputs are filtered in float64, everything else in float32."""
    return torch.float64 if x.dtype == torch.float64 else torch.float32


def gaussian_kernel(size: int = 11, sigma: float = 1.5, dtype=torch.float64) -> torch.Tensor:
    """Normalised 1-D Gaussian (as ``cv2.getGaussianKernel(size, sigma)``), shape (size,)."""
    x = torch.arange(size, dtype=dtype) - (size - 1) / 2
    k = torch.exp(-(x**2) / (2 * sigma**2))
    return k / k.sum()


def _window_sum(src: torch.Tensor, taps, stride: int, dst: torch.Tensor, tmp) -> int:
    """``dst[i] = sum_k taps[k] * src[i + k * stride]`` for the n = len(src) - (len - 1) * stride
    first positions of the flat tensor ``src``; returns n. ``taps`` is a list of floats, or an int
    ``win`` for ``win`` taps of 1 (summed by doubling: 2 * log2(win) adds instead of win - 1).
    ``dst`` and the flat buffers in ``tmp`` (log2(win) of them for an int) must not overlap ``src``.
    """
    if not isinstance(taps, int):
        n = src.numel() - (len(taps) - 1) * stride
        out = dst[:n]
        torch.mul(src[:n], taps[0], out=out)
        for k, w in enumerate(taps[1:], start=1):
            out.add_(src[k * stride : k * stride + n], alpha=w)
        return n
    win = taps
    n = src.numel() - (win - 1) * stride
    pieces = [src]  # pieces[j]: sums of 2**j consecutive taps
    while 2 ** len(pieces) <= win:
        prev, width = pieces[-1], 2 ** (len(pieces) - 1)
        m = prev.numel() - width * stride
        pieces.append(
            torch.add(
                prev[:m], prev[width * stride : width * stride + m], out=tmp[len(pieces) - 1][:m]
            )
        )
    # win as a sum of distinct powers of two, widest first, at increasing offsets
    parts, offset = [], 0
    for j in reversed(range(len(pieces))):
        if win - offset >= 2**j:
            parts.append(pieces[j][offset * stride : offset * stride + n])
            offset += 2**j
    out = dst[:n]
    if len(parts) == 1:
        out.copy_(parts[0])
    else:
        torch.add(parts[0], parts[1], out=out)
        for part in parts[2:]:
            out.add_(part)
    return n


class _Workspace:
    """Flat work buffers for chunks of ``frames`` (h, w) frames: ``maps`` holds the four input
    maps and the filter output, ``tmp`` the partial sums and the formula's temporaries."""

    def __init__(self, frames: int, h: int, w: int, n_tmp: int, dtype, device):
        size = 4 * frames * h * w
        self.maps = torch.empty(size, dtype=dtype, device=device)
        self.mid = torch.empty(size, dtype=dtype, device=device)
        self.tmp = [torch.empty(size, dtype=dtype, device=device) for _ in range(max(2, n_tmp))]


def _ssim_sums(
    x: torch.Tensor,
    y: torch.Tensor,
    taps,
    total: float,
    scale: float,
    c1: float,
    c2: float,
    cov_norm: float,
    ws: _Workspace,
) -> torch.Tensor:
    """Sum over the valid region of the SSIM map of (N, H, W) images ``x * scale`` and
    ``y * scale``, per image -> (N,) in the work dtype.

    With window sums S (``total`` = sum of the 2-D window weights, means u = S / total):
    SSIM = (2 ux uy + C1)(2 cov (uxy - ux uy) + C2) / ((ux^2 + uy^2 + C1)(cov (uxx + uyy - ux^2 -
    uy^2) + C2)). The four factors times total^2 / 2, 2 total^2, total^2 and total^2 (the ratio is
    unchanged) need only the window sums of x, y, cov total (x^2 + y^2) + C2 and
    2 (2 cov total xy + C2) (all frames times ``scale``), which are filtered together.
    """
    n, h, w = x.shape
    ntaps = taps if isinstance(taps, int) else len(taps)
    hv, wv = h - ntaps + 1, w - ntaps + 1
    size = n * h * w
    maps = ws.maps[: 4 * size]
    m0, m1, m2, m3 = maps.view(4, n, h, w)
    # x = y must give exactly 1 (as skimage): m3 = 2 m2 bitwise then, so only exactly rounded
    # products and power-of-two scalings here (no fused multiply-adds)
    torch.mul(x, scale, out=m0)
    torch.mul(y, scale, out=m1)
    a = cov_norm * total * scale * scale
    torch.mul(x, x, out=m2).add_(torch.mul(y, y, out=m3)).mul_(a).add_(c2 * total)
    torch.mul(x, y, out=m3).mul_(4 * a).add_(2 * c2 * total)

    n_h = _window_sum(maps, taps, 1, ws.mid, ws.tmp)  # along W
    _window_sum(ws.mid[:n_h], taps, w, ws.maps, ws.tmp)  # along H, back into maps
    sx, sy, s2, s3 = ws.maps[: 4 * size].view(4, n, h, w)[..., :hv, :wv]
    k = c1 * total * total
    p, q, r = (buf[: n * hv * wv].view(n, hv, wv) for buf in (ws.tmp[0], ws.tmp[1], ws.mid))
    torch.mul(sx, sy, out=p)
    s3.sub_(p, alpha=4 * cov_norm)  # (2 cov (uxy - ux uy) + C2) total^2 * 2
    p.add_(k / 2)  # (2 ux uy + C1) total^2 / 2
    torch.mul(sx, sx, out=q).add_(torch.mul(sy, sy, out=r))
    s2.sub_(q, alpha=cov_norm)  # (cov (uxx + uyy - ux^2 - uy^2) + C2) total^2
    q.add_(k)  # (ux^2 + uy^2 + C1) total^2
    return p.mul_(s3).div_(q.mul_(s2)).sum((-1, -2))


def _per_frame(pred: torch.Tensor, target: torch.Tensor, taps, **kw) -> torch.Tensor:
    """``_ssim_sums`` over chunks of (B, T, C, H, W) frames, as the mean of the SSIM map averaged
    over channels. Returns (B, T) float64."""
    b, t, c, h, w = pred.shape
    win = taps if isinstance(taps, int) else len(taps)
    if h < win or w < win:
        raise ConfigError(f"metrics: SSIM needs frames of at least {win}x{win}, got {h}x{w}")
    dtype = _work_dtype(pred)
    p = pred.reshape(-1, h, w)
    q = target.reshape(-1, h, w)
    area = (h - win + 1) * (w - win + 1)
    if isinstance(taps, int) and kw["scale"] == 1.0 and ssim_cpu.available(pred):
        kw = dict(c1=kw["c1"], c2=kw["c2"], cov_norm=kw["cov_norm"])
        sums = ssim_cpu.ssim_sums(p.to(dtype), q.to(dtype), taps, **kw)
        return (sums / area).view(b, t, c).mean(-1)
    itemsize = torch.finfo(dtype).bits // 8
    chunk = max(1, min(len(p), CHUNK_BYTES // (4 * h * w * itemsize)))
    n_tmp = max(1, int(math.log2(win))) if isinstance(taps, int) else 2
    ws = _Workspace(chunk, h, w, n_tmp, dtype, pred.device)
    out = torch.empty(len(p), dtype=dtype, device=pred.device)
    for i in range(0, len(p), chunk):
        x, y = p[i : i + chunk].to(dtype), q[i : i + chunk].to(dtype)
        out[i : i + len(x)] = _ssim_sums(x, y, taps, ws=ws, **kw)
    return (out.double() / area).view(b, t, c).mean(-1)


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
    return _per_frame(
        pred,
        target,
        win_size,
        total=float(np_),
        scale=1.0,
        c1=(K1 * data_range) ** 2,
        c2=(K2 * data_range) ** 2,
        cov_norm=np_ / (np_ - 1) if use_sample_covariance else 1.0,
    )


def ssim_gaussian(pred: torch.Tensor, target: torch.Tensor, size: int = 11, sigma: float = 1.5):
    """OpenSTL's ``SSIM(pred, true)`` per sample and frame: frames scaled to 0-255, Gaussian
    ``size`` x ``size`` window (sigma 1.5), population covariance, C1 = (0.01*255)^2,
    C2 = (0.03*255)^2, mean over the valid region and channels. Returns (B, T) float64."""
    return _per_frame(
        pred,
        target,
        gaussian_kernel(size, sigma).tolist(),
        total=1.0,
        scale=255.0,
        c1=(K1 * 255) ** 2,
        c2=(K2 * 255) ** 2,
        cov_norm=1.0,
    )


__all__ = ["ssim", "ssim_gaussian", "gaussian_kernel"]
