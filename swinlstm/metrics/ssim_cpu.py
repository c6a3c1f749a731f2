"""SSIM per frame on the CPU as one compiled loop (numba), for :mod:`swinlstm.metrics.ssim`.

The torch implementation in ``ssim.py`` runs about 30 elementwise passes over a chunk of frames;
here each frame is read once. For every output row the window sums of x, y, x^2 + y^2 and xy
down each column are kept as running column sums (a slide down adds one row and removes one); their
prefix sums along the row give every window sum as one difference, and the SSIM formula runs
over the row with no loop-carried dependency, so the compiler vectorises it. Sums are kept in float64 (skimage filters float32 frames in float32; the results agree
to ~1e-6). Frames are spread over threads with ``prange``.

Only the uniform window (skimage's default, the metric every table reports) runs here; the
Gaussian variant and non-CPU tensors keep the torch path. The kernel is compiled on first use
and cached on disk by numba (``cache=True``); it uses torch's thread count. Without numba
everything falls back to torch.
"""

from __future__ import annotations

import numpy as np
import torch

try:  # numba is a dependency; a broken install only costs speed
    import numba
except ImportError:  # pragma: no cover - exercised only where numba is missing
    numba = None


def available(x: torch.Tensor) -> bool:
    """Whether the compiled kernel can take ``x`` (a CPU float tensor, numba importable)."""
    return (
        numba is not None and x.device.type == "cpu" and x.dtype in (torch.float32, torch.float64)
    )


def _ssim_rows(x, y, win, c1, c2, cov_norm, out):  # pragma: no cover - compiled by numba
    """out[f] = sum over the valid region of the SSIM map of frames x[f], y[f] (N, H, W)."""
    n, h, w = x.shape
    wv = w - win + 1
    inv = 1.0 / (win * win)
    for f in numba.prange(n):
        col = np.zeros((4, w))  # window sums down each column of x, y, x^2 + y^2, xy
        pre = np.zeros((4, w + 1))  # their prefix sums along the row
        row = np.empty(wv)
        for i in range(h):
            for j in range(w):
                a = np.float64(x[f, i, j])
                b = np.float64(y[f, i, j])
                col[0, j] += a
                col[1, j] += b
                col[2, j] += a * a + b * b
                col[3, j] += a * b
            if i >= win:  # drop the row that left the window
                for j in range(w):
                    a = np.float64(x[f, i - win, j])
                    b = np.float64(y[f, i - win, j])
                    col[0, j] -= a
                    col[1, j] -= b
                    col[2, j] -= a * a + b * b
                    col[3, j] -= a * b
            if i < win - 1:
                continue
            for m in range(4):
                for j in range(w):
                    pre[m, j + 1] = pre[m, j] + col[m, j]
            for j in range(wv):  # no loop-carried dependency: vectorised
                ux = (pre[0, j + win] - pre[0, j]) * inv
                uy = (pre[1, j + win] - pre[1, j]) * inv
                sq = ux * ux + uy * uy
                # x = y makes num and den equal bit for bit (scalings by 2 are exact)
                var = cov_norm * ((pre[2, j + win] - pre[2, j]) * inv - sq)
                cov = cov_norm * ((pre[3, j + win] - pre[3, j]) * inv - ux * uy)
                row[j] = ((2.0 * ux * uy + c1) * (2.0 * cov + c2)) / ((sq + c1) * (var + c2))
            for j in range(wv):
                out[f] += row[j]


_kernel = None if numba is None else numba.njit(parallel=True, cache=True)(_ssim_rows)


def ssim_sums(
    x: torch.Tensor, y: torch.Tensor, win: int, c1: float, c2: float, cov_norm: float
) -> torch.Tensor:
    """Sum over the valid region of the SSIM map of (N, H, W) frames, uniform ``win`` window
    -> (N,) float64 (see ``ssim._ssim_sums`` for the torch version)."""
    xa = x.detach().contiguous().numpy()
    ya = y.detach().to(x.dtype).contiguous().numpy()
    out = np.zeros(len(xa))
    threads = torch.get_num_threads()
    numba.set_num_threads(max(1, min(threads, numba.config.NUMBA_NUM_THREADS)))
    try:
        _kernel(xa, ya, win, c1, c2, cov_norm, out)
    finally:
        # numba's OpenMP layer shares torch's libgomp and sets this thread's OpenMP thread count
        # to its pool size: without this, torch would run every later op on all cores (seen:
        # two 1-thread training runs slowed ~5x by oversubscription after their first validation)
        torch.set_num_threads(threads)
    return torch.from_numpy(out)
