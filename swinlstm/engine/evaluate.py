"""Evaluate a predictor on a test set: metrics streamed over batches, frames, GIFs, a grid.

One pass over the test set: each batch is forecast with ``model.predict`` (inference: no long
clip, memory phase 2), its metrics accumulated (nothing holds all predictions), the naive
repeat-last-input-frame forecast scored beside it (a model that does not beat it has learned
nothing about motion), and the first clips drawn.

Files written into ``result_dir``:

* ``metrics.json``, ``metrics.csv``, ``per_frame.png`` (``swinlstm.metrics.write_metrics``); the
  JSON also holds, at its top level, the headline ``"mse"`` (mean over the horizon) beside
  ``"baseline_last_frame": {"mse": ..., "per_frame": {"mse": [...]}}``, the same protocol's MSE of
  repeating the last input frame;
* with ``make_frame``, for the first ``num_frames_to_save`` clips:
  ``frames/{clip:05d}/{input,gt,pred}_{t:02d}.png`` and ``gifs/{clip:05d}.gif``, and
  ``comparison.png`` (rows ground truth, prediction, abs error) of the first few clips.
"""

from __future__ import annotations

import os
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import torch
from torch.utils.data import DataLoader, Dataset

from swinlstm import viz
from swinlstm.errors import ConfigError
from swinlstm.metrics.core import DEFAULT_METRICS

GRID_CLIPS = 4  # clips in comparison.png


def repeat_last_frame(inputs: torch.Tensor, out_len: int) -> torch.Tensor:
    """The naive forecast: the last input frame, ``out_len`` times. (B, T, C, H, W) -> (B, out_len, C, H, W)."""
    return inputs[:, -1:].expand(-1, out_len, -1, -1, -1)


class FrameWriter:
    """Writes the frames, GIF and comparison grid of the first ``limit`` clips it is shown.

    ``names`` names the forecasts each :meth:`add` gets (one by default, ``pred``): their PNG
    frames are ``frames/<clip>/<name>_xx.png``, and GIFs and the grid show them in that order.
    """

    def __init__(
        self,
        result_dir: str | os.PathLike,
        limit: int,
        fps: float = 4.0,
        names: Sequence[str] = ("pred",),
    ):
        self.root = Path(result_dir)
        self.limit = limit
        self.fps = fps
        self.names = tuple(names)
        self.count = 0
        self.truth: list[torch.Tensor] = []
        self.forecasts: list[list[torch.Tensor]] = [[] for _ in self.names]

    def add(self, inputs: torch.Tensor, targets: torch.Tensor, *preds: torch.Tensor) -> None:
        """One batch (B, T, C, H, W) of inputs, ground truth and each named forecast."""
        if len(preds) != len(self.names):
            raise ConfigError(f"FrameWriter named {self.names} but got {len(preds)} forecasts")
        for b in range(inputs.shape[0]):
            if self.limit >= 0 and self.count >= self.limit:
                return
            clip = f"{self.count:05d}"
            folder = self.root / "frames" / clip
            viz.save_frames(folder, "input", inputs[b])
            viz.save_frames(folder, "gt", targets[b])
            for name, pred in zip(self.names, preds):
                viz.save_frames(folder, name, pred[b])
            viz.save_strip_gif(
                self.root / "gifs" / f"{clip}.gif",
                inputs[b],
                targets[b],
                *(p[b] for p in preds),
                fps=self.fps,
            )
            if len(self.truth) < GRID_CLIPS:
                self.truth.append(targets[b].clone())
                for kept, pred in zip(self.forecasts, preds):
                    kept.append(pred[b].clone())
            self.count += 1

    def close(self) -> None:
        if self.truth:
            viz.save_comparison(self.root / "comparison.png", self.truth, *self.forecasts)


@torch.inference_mode()
def write_forecasts(
    models: dict[str, torch.nn.Module],
    dataset: Dataset,
    out_len: int,
    result_dir: str | os.PathLike,
    limit: int,
    batch_size: int = 8,
) -> None:
    """PNG frames, GIFs and ``comparison.png`` of the first ``limit`` clips of ``dataset``, with
    one forecast per model (named by its key, shown in the order given) beside the ground truth."""
    writer = FrameWriter(result_dir, limit, names=tuple(models))
    for batch in DataLoader(dataset, batch_size=batch_size, shuffle=False):
        if writer.count >= limit:
            break
        inputs, targets = _as_pair(batch)
        preds = [m.eval().predict(inputs, out_len).clamp(0, 1) for m in models.values()]
        writer.add(inputs, targets[:, :out_len], *preds)
    writer.close()


def _as_pair(batch: Any) -> tuple[torch.Tensor, torch.Tensor]:
    if not isinstance(batch, (tuple, list)) or len(batch) < 2:
        raise ConfigError("test set items must be (inputs, targets) or (inputs, targets, long)")
    return batch[0], batch[1]


@torch.inference_mode()
def check_device(device: str | torch.device) -> torch.device:
    """``device`` as a ``torch.device``; ValueError (one line) when it is no device name or this
    machine cannot use it (CUDA or MPS not available, a GPU index beyond those present)."""
    try:
        dev = torch.device(device)
    except (RuntimeError, TypeError):
        raise ConfigError(
            f"--device {device!r} is not a torch device (cpu, cuda, cuda:1, mps)"
        ) from None
    if dev.type == "cuda":
        if not torch.cuda.is_available():
            why = "this PyTorch has no CUDA" if torch.version.cuda is None else "no GPU is visible"
            raise ConfigError(f"--device {device}: CUDA is not available ({why}); use --device cpu")
        if dev.index is not None and dev.index >= torch.cuda.device_count():
            raise ConfigError(
                f"--device {device}: only {torch.cuda.device_count()} CUDA device(s) "
                f"(cuda:0 .. cuda:{torch.cuda.device_count() - 1})"
            )
    if dev.type == "mps" and not torch.backends.mps.is_available():
        raise ConfigError(f"--device {device}: MPS is not available here; use --device cpu")
    return dev


def evaluate(
    model: torch.nn.Module,
    dataset: Dataset,
    out_len: int,
    batch_size: int = 8,
    metrics: Sequence[str] = DEFAULT_METRICS,
    protocol: str = "default",
    result_dir: str | os.PathLike | None = None,
    make_frame: bool = False,
    num_frames_to_save: int = 10,
    max_batches: int | None = None,
    lpips_weights: str | None = None,
    meta: dict | None = None,
    evaluate_metrics: bool = True,
    device: str | torch.device = "cpu",
    workers: int = 0,
    progress_every: float | None = None,
) -> dict[str, Any]:
    """Forecast every clip of ``dataset`` and score it; returns the metrics summary.

    Args:
        model: a ``RecurrentPredictor`` (any model with ``predict(frames, out_len)``).
        dataset: items ``(inputs (T_in, C, H, W), targets (T_out >= out_len, C, H, W))``.
        out_len: frames to forecast; targets are cut to this length.
        metrics, protocol: passed to ``swinlstm.metrics.MetricAccumulator``.
        lpips_weights: LPIPS weights file (``load_lpips``); with "lpips" in ``metrics`` and no
            file, the metrics package searches its usual sources (one warning if none).
        result_dir: where files go (none written when None).
        make_frame: write PNG frames and GIFs of the first ``num_frames_to_save`` clips
            (-1: all) and ``comparison.png``.
        max_batches: stop after this many batches (None: the whole set).
        meta: recorded in ``metrics.json`` (dataset, model, checkpoint, ...).
        evaluate_metrics: False skips the metrics (frames only).
        progress_every: print a progress line to stderr every this many seconds (None: quiet).

    Returns:
        ``{"per_frame": {name: [T values]}, "means": {name: value}, "mse": value,
        "protocol": ..., "baseline_last_frame": {"mse": value, "per_frame": {"mse": [...]}},
        "clips": N}``
        (metrics keys are empty when ``evaluate_metrics`` is False).
    """
    if not isinstance(out_len, int) or out_len < 1:
        raise ConfigError(f"out_len must be an integer >= 1, got {out_len!r}")
    if batch_size < 1:
        raise ConfigError(f"--batch_size must be >= 1, got {batch_size}")
    if make_frame and result_dir is None:
        raise ConfigError("make_frame needs a result directory to write the frames into")
    device = check_device(device)
    model.eval().to(device)
    loader = DataLoader(dataset, batch_size=batch_size, shuffle=False, num_workers=workers)

    acc = base = None
    if evaluate_metrics:
        from swinlstm.metrics import MetricAccumulator, load_lpips

        lpips = load_lpips(lpips_weights, device) if lpips_weights and "lpips" in metrics else None
        acc = MetricAccumulator(metrics=tuple(metrics), protocol=protocol, lpips=lpips)
        base = MetricAccumulator(metrics=("mse",), protocol=protocol)
    writer = FrameWriter(result_dir, num_frames_to_save) if make_frame else None

    clips = 0
    total = len(loader) if max_batches is None else min(len(loader), max_batches)
    start = last = time.perf_counter()
    for i, batch in enumerate(loader):
        if max_batches is not None and i >= max_batches:
            break
        inputs, targets = _as_pair(batch)
        if targets.shape[1] < out_len:
            raise ConfigError(
                f"the test clips hold {targets.shape[1]} target frames but --out_len is {out_len}"
            )
        inputs, targets = inputs.to(device), targets[:, :out_len].to(device)
        preds = model.predict(inputs, out_len)
        if acc is not None:
            acc.update(preds, targets)
            base.update(repeat_last_frame(inputs, out_len), targets)
        if writer is not None:
            writer.add(inputs.cpu(), targets.cpu(), preds.clamp(0, 1).cpu())
        clips += inputs.shape[0]
        now = time.perf_counter()
        if progress_every is not None and (now - last >= progress_every or i + 1 == total):
            last = now
            rate = clips / max(now - start, 1e-9)
            print(
                f"[test] batch {i + 1}/{total}, {clips} clips, {rate:.1f} clips/s", file=sys.stderr
            )
    if clips == 0:
        raise ConfigError("the test set is empty: no clip to evaluate")
    if writer is not None:
        writer.close()

    summary: dict[str, Any] = {"clips": clips, "protocol": protocol, "per_frame": {}, "means": {}}
    if acc is None:
        return summary
    per_frame = acc.compute()
    baseline = base.compute()["mse"]
    summary["per_frame"] = {k: [float(v) for v in t] for k, t in per_frame.items()}
    summary["means"] = {k: float(t.mean()) for k, t in per_frame.items()}
    summary["mse"] = summary["means"]["mse"] if "mse" in per_frame else None
    summary["baseline_last_frame"] = {
        "mse": float(baseline.mean()),
        "per_frame": {"mse": [float(v) for v in baseline]},
    }
    if result_dir is not None:
        from swinlstm.metrics import write_metrics

        info = {
            **(meta or {}),
            "protocol": protocol,
            "clips": clips,
            "out_len": out_len,
            "mse": summary["mse"],
            "baseline_last_frame": summary["baseline_last_frame"],
        }
        write_metrics(result_dir, per_frame, info)
    return summary


def resolve_test_data(
    recorded: dict,
    dataset: str | None = None,
    short_len: int | None = None,
    out_len: int | None = None,
    data_options: dict | None = None,
) -> tuple[str, int, int, dict]:
    """``(dataset, short_len, out_len, data options)`` of a test: those given, else what the
    checkpoint's run recorded (``load_model``'s ``info["data"]``), else Moving MNIST 10 -> 10.

    The recorded data options (less those of the training split only) apply when the dataset is
    the recorded one; ``data_options`` are laid over them.
    """
    from swinlstm.data import dataset_key, held_out_options

    dataset = dataset_key(dataset or recorded.get("dataset") or "movingmnist")
    same = recorded.get("dataset") is not None and dataset_key(recorded["dataset"]) == dataset
    options = held_out_options(dataset, recorded.get("data_options")) if same else {}
    options.update(data_options or {})

    def length(given: int | None, flag: str) -> int:
        return int(given if given is not None else (recorded.get(flag) if same else None) or 10)

    return dataset, length(short_len, "short_len"), length(out_len, "out_len"), options


def build_test_set(
    dataset: str,
    test_dir: str | None,
    short_len: int,
    out_len: int,
    img_size: int | tuple[int, int],
    img_channel: int,
    seed: int,
    options: dict,
) -> tuple[Dataset, str]:
    """The test split of ``dataset`` (clips of ``short_len`` -> ``out_len`` frames) and what it
    was read from (its files, else ``test_dir``); ConfigError (one line) when the dataset reads
    its test set from files and ``test_dir`` is None."""
    from swinlstm.data import build_datasets

    splits = build_datasets(
        dataset,
        test_dir=test_dir,
        short_len=short_len,
        out_len=out_len,
        long_len=0,
        img_size=img_size,
        img_channel=img_channel,
        seed=seed,
        **options,
    )
    if splits.test is None:  # only Moving MNIST generates a test set without files
        raise ConfigError(
            f"--dataset {dataset} reads its test set from files: pass --test_data_dir"
        )
    return splits.test, str(splits.info.get("test", test_dir))


def evaluate_checkpoint(
    load: Callable[[], tuple[torch.nn.Module, dict[str, Any]]],
    *,
    dataset: str | None = None,
    test_data_dir: str | None = None,
    short_len: int | None = None,
    out_len: int | None = None,
    data_options: dict | None = None,
    img_size: int | tuple[int, int] | None = None,
    img_channel: int | None = None,
    seed: int | None = None,
    batch_size: int | None = None,
    metrics: Sequence[str] = DEFAULT_METRICS,
    lpips_weights: str | None = None,
    num_frames_to_save: int = 10,
    max_batches: int | None = None,
    workers: int | None = None,
    **evaluate_kw: Any,
) -> dict[str, Any]:
    """``swinlstm test``: check the counts, ``load()`` the model (``(model, info)`` as
    ``load_checkpoint_model`` returns), build its test set (the lengths, dataset and data
    options given, else those its run recorded: :func:`resolve_test_data`; the model's frame size
    and channels where ``img_size`` / ``img_channel`` are None) and :func:`evaluate` it
    (``evaluate_kw``: protocol, result_dir, make_frame, evaluate_metrics, device). Returns
    ``evaluate``'s summary; a bad count is a ConfigError naming its flag."""
    if max_batches is not None and max_batches < 1:
        raise ConfigError(f"--max_batches must be >= 1, got {max_batches}")
    if num_frames_to_save < -1:
        raise ConfigError(f"--num_frames_to_save must be >= -1, got {num_frames_to_save}")
    for flag, value in (("short_len", short_len), ("out_len", out_len), ("batch_size", batch_size)):
        if value is not None and value < 1:
            raise ConfigError(f"--{flag} must be >= 1, got {value}")
    model, info = load()
    dataset, short_len, out_len, options = resolve_test_data(
        info.get("data") or {}, dataset, short_len, out_len, data_options
    )
    test, source = build_test_set(
        dataset,
        test_data_dir,
        short_len,
        out_len,
        img_size or tuple(model.img_size),
        img_channel or model.in_chans,
        seed if seed is not None else 1234,
        options,
    )
    metrics = list(metrics)
    if lpips_weights and "lpips" not in metrics:
        metrics.append("lpips")
    meta = {
        "dataset": dataset,
        "data_options": options,
        "test_data_dir": test_data_dir,
        "test_set": source,
        "model": info["model"],
        "model_config": info.get("config", {}),
        "checkpoint": info["checkpoint"],
        "checkpoint_format": info.get("format"),
        "short_len": short_len,
    }
    return evaluate(
        model,
        test,
        out_len=out_len,
        batch_size=batch_size if batch_size is not None else 8,
        metrics=metrics,
        num_frames_to_save=num_frames_to_save,
        max_batches=max_batches,
        lpips_weights=lpips_weights,
        meta=meta,
        workers=workers or 0,
        progress_every=10.0,
        **evaluate_kw,
    )
