"""Write per-frame metrics as metrics.json, metrics.csv and per_frame.png; one-line summaries."""

from __future__ import annotations

import csv
import json
from collections.abc import Mapping
from pathlib import Path

import torch

from swinlstm.errors import ConfigError
from swinlstm.metrics.protocols import METRICS, Protocol, get_protocol

#: keys write_metrics owns in metrics.json (meta may not override them)
RESERVED = ("protocol", "protocol_description", "definitions", "means", "per_frame", "num_frames")


def _as_lists(per_frame: Mapping[str, torch.Tensor]) -> dict[str, list[float]]:
    """name -> list of floats; all of one length T >= 1."""
    if not per_frame:
        raise ConfigError("write_metrics: per_frame is empty")
    out = {
        k: torch.as_tensor(v, dtype=torch.float64).flatten().tolist() for k, v in per_frame.items()
    }
    lengths = {len(v) for v in out.values()}
    if len(lengths) != 1 or 0 in lengths:
        raise ConfigError(
            f"write_metrics: per-frame arrays must share one non-zero length, got "
            f"{ {k: len(v) for k, v in out.items()} }"
        )
    return out


def format_summary(per_frame: Mapping[str, torch.Tensor], protocol: str = "default") -> list[str]:
    """One line per metric: its mean over the horizon and how it was computed."""
    proto = get_protocol(protocol)
    lines = []
    for name, values in _as_lists(per_frame).items():
        mean = sum(values) / len(values)
        lines.append(f"{name:<10} {mean:12.6g}   [{proto.name}: {_describe(proto, name)}]")
    return lines


def _describe(proto: Protocol, name: str) -> str:
    return proto.describe(name) if name in METRICS else "not a swinlstm.metrics metric"


def _plot(path: Path, per_frame: dict[str, list[float]], title: str) -> None:
    import matplotlib

    matplotlib.use("Agg", force=False)
    from matplotlib.figure import Figure

    n = len(per_frame)
    fig = Figure(figsize=(4 * n, 3.2), layout="constrained")
    axes = fig.subplots(1, n, squeeze=False)[0]
    for ax, (name, values) in zip(axes, per_frame.items()):
        ax.plot(range(1, len(values) + 1), values, marker="o", markersize=3)
        ax.set_title(name)
        ax.set_xlabel("forecast step")
        ax.grid(alpha=0.3)
    fig.suptitle(title)
    fig.savefig(path, dpi=100)


def write_metrics(
    out_dir, per_frame: Mapping[str, torch.Tensor], meta: Mapping | None = None
) -> dict:
    """Write ``metrics.json``, ``metrics.csv`` and ``per_frame.png`` into ``out_dir``.

    Args:
        out_dir: directory (created if needed).
        per_frame: metric name -> (T,) per-frame values (``compute``/``MetricAccumulator``).
        meta: extra JSON-serialisable keys stored at the top level (dataset, model, checkpoint,
            ...); ``meta["protocol"]`` names the protocol (default "default").
    Returns:
        the dict written to metrics.json: ``protocol``, ``protocol_description``, ``definitions``
        (metric -> how computed), ``means``, ``per_frame``, ``num_frames`` and the meta keys.
    """
    meta = dict(meta or {})
    proto = get_protocol(meta.pop("protocol", "default"))
    clash = [k for k in meta if k in RESERVED]
    if clash:
        raise ConfigError(f"write_metrics: meta keys {clash} are reserved for metrics.json itself")
    lists = _as_lists(per_frame)
    steps = len(next(iter(lists.values())))
    result = {
        "protocol": proto.name,
        "protocol_description": proto.description,
        "definitions": {k: _describe(proto, k) for k in lists},
        "means": {k: sum(v) / len(v) for k, v in lists.items()},
        "per_frame": lists,
        "num_frames": steps,
        **meta,
    }
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    (out / "metrics.json").write_text(json.dumps(result, indent=2, default=str) + "\n")
    with open(out / "metrics.csv", "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["frame", *lists])
        for t in range(steps):
            writer.writerow([t + 1, *(repr(v[t]) for v in lists.values())])
    title = " / ".join(str(meta[k]) for k in ("model", "dataset") if k in meta)
    _plot(out / "per_frame.png", lists, f"{title} ({proto.name} protocol)".strip())
    return result
