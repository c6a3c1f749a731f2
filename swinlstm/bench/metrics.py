"""``swinlstm bench metrics``: batched SSIM + PSNR + MSE against a per-frame scikit-image loop
(same values asserted), and LPIPS frames per second.

    swinlstm bench metrics [--n 1000] [--t 10] [--size 64] [--lpips-frames 512]
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import torch

TOL = 1e-5


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="swinlstm bench metrics", description=__doc__.split("\n")[0])
    p.add_argument("--n", type=int, default=1000, help="sequences (default 1000)")
    p.add_argument("--t", type=int, default=10, help="frames per sequence (default 10)")
    p.add_argument("--size", type=int, default=64, help="frame side (default 64)")
    p.add_argument("--lpips-frames", type=int, default=512, help="frames for LPIPS fps (0: skip)")
    p.add_argument("--device", default="cpu", help="torch device for swinlstm.metrics")
    p.add_argument("--repeats", type=int, default=3, help="best of this many torch runs")
    p.add_argument("--threads", type=int, default=0, help="torch CPU threads (0: torch default)")
    p.add_argument("--seed", type=int, default=0)
    return p


def _data(n: int, t: int, size: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """float32 (n, t, 1, size, size) targets with moving structure, and noisy predictions."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:size, 0:size] / size
    phase = rng.random((n, 1, 1, 1, 1)) * 6 + np.arange(t).reshape(1, t, 1, 1, 1) * 0.3
    target = (0.5 + 0.5 * np.sin(10 * xx + 6 * yy + phase)).astype(np.float32)
    noise = rng.standard_normal(target.shape, dtype=np.float32)
    pred = np.clip(target + 0.1 * noise, 0, 1).astype(np.float32)
    return pred, target


def skimage_loop(pred: np.ndarray, target: np.ndarray) -> dict[str, np.ndarray]:
    """Per-frame batch means of skimage SSIM, PSNR and MSE (data_range 1), one frame at a time."""
    from skimage.metrics import mean_squared_error, peak_signal_noise_ratio, structural_similarity

    n, t = pred.shape[:2]
    out = {k: np.zeros(t) for k in ("ssim", "psnr", "mse_pixel")}
    for i in range(n):
        for j in range(t):
            p, g = pred[i, j, 0], target[i, j, 0]
            out["ssim"][j] += structural_similarity(g, p, data_range=1.0) / n
            out["psnr"][j] += peak_signal_noise_ratio(g, p, data_range=1.0) / n
            out["mse_pixel"][j] += mean_squared_error(g, p) / n
    return out


def _lpips_fps(frames: int, size: int, device: str) -> str:
    from swinlstm.metrics.lpips import load_lpips, lpips_frames

    model = load_lpips(device=device)
    if model is None:
        return "skipped (no LPIPS weights)"
    x = torch.rand(1, frames, 1, size, size)
    y = (x + 0.1 * torch.randn_like(x)).clamp(0, 1)
    lpips_frames(model, x[:, :8].to(device), y[:, :8].to(device))  # warm-up
    start = time.perf_counter()
    lpips_frames(model, x.to(device), y.to(device))
    if device.startswith("cuda"):
        torch.cuda.synchronize()
    return f"{frames / (time.perf_counter() - start):.0f} frames/s"


def main(argv: list[str] | None = None) -> int:
    from swinlstm.metrics import compute

    args = _parser().parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    pred, target = _data(args.n, args.t, args.size, args.seed)
    frames = args.n * args.t
    p, g = torch.from_numpy(pred).to(args.device), torch.from_numpy(target).to(args.device)
    names = ("ssim", "psnr", "mse_pixel")
    compute(p[:2], g[:2], metrics=names)  # warm-up
    best = float("inf")
    for _ in range(args.repeats):
        start = time.perf_counter()
        ours = compute(p, g, metrics=names)
        if args.device.startswith("cuda"):
            torch.cuda.synchronize()
        best = min(best, time.perf_counter() - start)
    start = time.perf_counter()
    ref = skimage_loop(pred, target)
    loop = time.perf_counter() - start
    worst = max(float(np.abs(ours[k].cpu().numpy() - ref[k]).max()) for k in names)
    print(f"SSIM + PSNR + MSE on ({args.n}, {args.t}, 1, {args.size}, {args.size}) float32 frames")
    print(f"torch threads {torch.get_num_threads()}, device {args.device}")
    print("| method | time (s) | frames/s | speedup |")
    print("|---|---|---|---|")
    print(f"| scikit-image per-frame loop | {loop:.3f} | {frames / loop:.0f} | 1.0x |")
    print(f"| swinlstm.metrics.compute | {best:.3f} | {frames / best:.0f} | {loop / best:.1f}x |")
    print(f"max |difference| per-frame mean: {worst:.2e} (tolerance {TOL:g})")
    if args.lpips_frames:
        fps = _lpips_fps(args.lpips_frames, args.size, args.device)
        print(f"LPIPS (AlexNet v0.1) on {args.size}x{args.size} grey frames: {fps}")
    if worst > TOL:
        print("FAIL: values differ from scikit-image")
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
