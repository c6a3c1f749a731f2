"""Training speed of presets: iterations per second of the real engine (``run_training``).

    python -m swinlstm.bench.train [--presets configs/demo.yaml configs/mmnist_swinlstm_d.yaml]
        [--batch_size 4] [--iterations 12] [--skip 2]

Each preset trains ``--iterations`` iterations with validation off (``--print_freq`` beyond the
end) into a temporary folder; the rate is taken over the iterations after the first ``--skip``
(start-up, first allocations), from the wall-clock time between the ends of training steps, so
it includes data loading and the optimiser steps (two per iteration for memory models).
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time

import lightning.pytorch as pl
import torch

DEFAULT_PRESETS = ["configs/demo.yaml", "configs/mmnist_swinlstm_d.yaml"]


class StepTimes(pl.Callback):
    """Wall-clock time at the end of every training iteration."""

    def __init__(self) -> None:
        self.times: list[float] = []

    def on_train_batch_end(self, *args) -> None:
        self.times.append(time.perf_counter())


def measure(preset: str, batch_size: int | None, iterations: int, skip: int) -> dict:
    from swinlstm.engine.config import RunConfig, load_yaml
    from swinlstm.engine.train import resolve_config, run_training

    cfg = RunConfig.from_dict(load_yaml(preset), preset)
    cfg.optim.iterations, cfg.output.print_freq = iterations, iterations + 1
    cfg.output.progress, cfg.data.workers = False, 0
    if batch_size is not None:
        cfg.data.batch_size = batch_size
    cfg = resolve_config(cfg)
    timer = StepTimes()
    with tempfile.TemporaryDirectory() as out:
        cfg.output.checkpoint_save_dir = out
        result = run_training(cfg, callbacks=[timer])
    gaps = [b - a for a, b in zip(timer.times[skip:], timer.times[skip + 1 :])]
    params = sum(p.numel() for p in result.module.model.parameters())
    return {
        "preset": preset,
        "model": cfg.model.name,
        "params": params,
        "frames": f"{cfg.data.short_len}->{cfg.data.out_len} @ {cfg.data.img_size}",
        "batch": cfg.data.batch_size,
        "median_s_per_it": statistics.median(gaps),
        "it_per_s": 1.0 / statistics.median(gaps),
        "timed": len(gaps),
    }


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m swinlstm.bench.train", description=__doc__)
    p.add_argument("--presets", nargs="+", default=DEFAULT_PRESETS)
    p.add_argument("--batch_size", type=int, default=4, help="0: the preset's own")
    p.add_argument("--iterations", type=int, default=12)
    p.add_argument("--skip", type=int, default=2, help="first iterations left out of the rate")
    args = p.parse_args(argv)
    if args.iterations < args.skip + 2:
        raise SystemExit("--iterations must exceed --skip by at least 2")
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads", flush=True)
    header = f"{'preset':34} {'model':12} {'params':>10} {'frames':>14} {'batch':>5} {'it/s':>8}"
    for preset in args.presets:  # each row printed as soon as it is measured
        r = measure(preset, args.batch_size or None, args.iterations, args.skip)
        print(header)
        print(
            f"{r['preset']:34} {r['model']:12} {r['params']:>10,} {r['frames']:>14} "
            f"{r['batch']:>5} {r['it_per_s']:>8.3f}",
            flush=True,
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
