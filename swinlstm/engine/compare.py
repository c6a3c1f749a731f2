"""Comparing runs: training folders and test result folders side by side, one table, one plot.

A **test result folder** (``metrics.json``, written by ``swinlstm test`` / ``evaluate``) gives each
metric's mean and per-frame values over the forecast horizon; a **training folder**
(``config.yaml`` + ``metrics.csv``) gives its last validation's means, iterations and training
time. Numbers computed under different metric protocols (docs/metrics.md) are not comparable:
:func:`compare` refuses them unless asked to show them side by side, and then says so.
"""

from __future__ import annotations

import csv
import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from swinlstm.engine.config import flat_form, is_nested
from swinlstm.errors import ConfigError, MissingPathError

METRIC_ORDER = ("mse", "mae", "ssim", "psnr", "lpips")


@dataclass
class RunSummary:
    """What one folder says about a run."""

    name: str
    kind: str  # "test" or "train"
    model: str | None
    protocol: str
    parameters: int | None = None
    iterations: int | None = None
    train_seconds: float | None = None
    means: dict[str, float] = field(default_factory=dict)
    per_frame: dict[str, list[float]] = field(default_factory=dict)


def count_parameters(weights: Path) -> int | None:
    """Numbers in a ``model.safetensors`` (read from its header, no model built), or None."""
    if not weights.is_file():
        return None
    from safetensors import safe_open

    total = 0
    with safe_open(str(weights), framework="pt") as f:
        for key in f.keys():
            total += math.prod(f.get_slice(key).get_shape())
    return total


def _weights_beside(path: str | None) -> Path | None:
    if not path:
        return None
    p = Path(path)
    return p / "model.safetensors" if p.is_dir() else p.with_name("model.safetensors")


def read_run(folder: str | Path) -> RunSummary:
    """The :class:`RunSummary` of a test result folder or a training folder."""
    folder = Path(folder)
    if (folder / "metrics.json").is_file():
        return _read_test(folder)
    if (folder / "metrics.csv").is_file() and (folder / "config.yaml").is_file():
        return _read_train(folder)
    raise MissingPathError(
        f"{folder}: neither a test result folder (metrics.json) nor a training folder "
        "(config.yaml + metrics.csv)"
    )


def _read_test(folder: Path) -> RunSummary:
    path = folder / "metrics.json"
    try:
        data = json.loads(path.read_text())
    except json.JSONDecodeError as err:
        raise ConfigError(f"{path}: not valid JSON ({err})") from None
    weights = _weights_beside(data.get("checkpoint"))
    return RunSummary(
        name=folder.name,
        kind="test",
        model=data.get("model"),
        protocol=data.get("protocol", "default"),
        parameters=data.get("parameters") or (count_parameters(weights) if weights else None),
        iterations=data.get("iteration"),
        train_seconds=data.get("train_seconds"),
        means={k: float(v) for k, v in data.get("means", {}).items()},
        per_frame={k: [float(x) for x in v] for k, v in data.get("per_frame", {}).items()},
    )


def _read_train(folder: Path) -> RunSummary:
    import yaml

    config = yaml.safe_load((folder / "config.yaml").read_text()) or {}
    config = flat_form(config) if is_nested(config) else config  # nested: a RunConfig
    with open(folder / "metrics.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    last = rows[-1] if rows else {}
    fixed = {"iteration", "train_seconds", "train_loss", "lr"}
    means = {k: float(v) for k, v in last.items() if k not in fixed and v not in (None, "")}
    seconds = last.get("train_seconds")
    return RunSummary(
        name=folder.name,
        kind="train",
        model=config.get("model"),
        protocol=config.get("protocol") or "default",
        parameters=count_parameters(folder / "model.safetensors"),
        iterations=int(float(last["iteration"])) if last.get("iteration") else None,
        train_seconds=float(seconds) if seconds else None,
        means=means,
    )


def compare(
    folders: list[str | Path], allow_mixed_protocols: bool = False
) -> tuple[list[RunSummary], list[str]]:
    """Read every folder; returns the runs and the metric names in table order.

    Raises ValueError (one line) when the runs' protocols differ, unless
    ``allow_mixed_protocols``."""
    runs = [read_run(f) for f in folders]
    protocols = sorted({r.protocol for r in runs})
    if len(protocols) > 1 and not allow_mixed_protocols:
        listed = ", ".join(f"{r.name}: {r.protocol}" for r in runs)
        raise ConfigError(
            f"the runs' metrics use different protocols ({listed}); their numbers are not "
            "comparable. Compare runs of one protocol, or pass --allow_mixed_protocols"
        )
    names = {k for r in runs for k in r.means}
    metrics = [m for m in METRIC_ORDER if m in names] + sorted(names - set(METRIC_ORDER))
    return runs, metrics


def table_rows(runs: list[RunSummary], metrics: list[str]) -> list[dict[str, str]]:
    """One dict of printable cells per run: identity, then ``<metric>`` (mean over the horizon)
    and ``<metric>@last`` (the last forecast frame, test folders only)."""

    def fmt(v: Any, spec: str = ".4g") -> str:
        return "-" if v is None else format(v, spec)

    rows = []
    for r in runs:
        row = {
            "run": r.name,
            "kind": r.kind,
            "model": r.model or "-",
            "parameters": fmt(r.parameters, ","),
            "iterations": fmt(r.iterations, "d"),
            "train hours": fmt(None if r.train_seconds is None else r.train_seconds / 3600, ".2f"),
            "protocol": r.protocol,
        }
        for m in metrics:
            row[m] = fmt(r.means.get(m))
            last = r.per_frame.get(m)
            row[f"{m}@last"] = fmt(last[-1] if last else None)
        rows.append(row)
    return rows


def markdown(rows: list[dict[str, str]]) -> str:
    head = list(rows[0])
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    lines += ["| " + " | ".join(row[h] for h in head) + " |" for row in rows]
    return "\n".join(lines) + "\n"


def write_outputs(runs: list[RunSummary], metrics: list[str], out_dir: str | Path) -> list[Path]:
    """``compare.md``, ``compare.csv`` and, when any run has per-frame values, ``horizon.png``
    (each metric over the forecast horizon, one line per run)."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    rows = table_rows(runs, metrics)
    written = [out / "compare.md", out / "compare.csv"]
    written[0].write_text(markdown(rows))
    with open(written[1], "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    plotted = [m for m in metrics if any(m in r.per_frame for r in runs)]
    if plotted:
        import matplotlib

        matplotlib.use("Agg", force=False)
        from matplotlib.figure import Figure

        fig = Figure(figsize=(4 * len(plotted), 3.4), layout="constrained")
        for ax, m in zip(fig.subplots(1, len(plotted), squeeze=False)[0], plotted):
            for r in runs:
                if m in r.per_frame:
                    values = r.per_frame[m]
                    ax.plot(range(1, len(values) + 1), values, marker="o", ms=3, label=r.name)
            ax.set_title(
                f"{m} ({runs[0].protocol if len({r.protocol for r in runs}) == 1 else 'mixed protocols'})"
            )
            ax.set_xlabel("forecast step")
            ax.grid(alpha=0.3)
            ax.legend(fontsize=7)
        written.append(out / "horizon.png")
        fig.savefig(written[-1], dpi=100)
    return written
