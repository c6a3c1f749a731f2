"""The demo pipeline (``swinlstm demo``, ``make demo``): train the ``demo`` preset on built-in
digits, test it, compare it with the best shipped zoo entry, draw it. It sits above the engine
and the zoo, which it uses, and below the CLI, which prints what it returns.

1. trains ``configs/demo.yaml`` (a small model on Moving MNIST made from the built-in MNIST
   digits: no download) into ``OUTPUT/checkpoints/``;
2. evaluates the best checkpoint on the fixed generated Moving MNIST test set (and the best
   shipped zoo model of the same clip lengths and frames on the same clips, into ``OUTPUT/zoo/``);
3. writes ``OUTPUT/``: ``metrics.json`` / ``metrics.csv`` / ``per_frame.png``, ``frames/``,
   ``gifs/``, ``comparison.png``, ``input_clip.npy`` (the first test clip's inputs, which
   ``swinlstm predict --input`` reads).

Where the preset is found: the one given if any (a file, or a packaged preset's name:
:func:`swinlstm.presets.find_preset`); else ``configs/demo.yaml`` of the source tree the package
was imported from (a clone, or an editable install as ``make`` makes); else the packaged
``demo`` preset (an installed wheel, run from any folder).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from swinlstm.errors import ConfigError
from swinlstm.presets import find_preset

PRESET = Path("configs") / "demo.yaml"


def preset_path(explicit: str | None = None) -> Path:
    """The demo preset file (see the module docstring for the search order)."""
    import swinlstm

    source_tree = Path(swinlstm.__file__).resolve().parents[1] / PRESET
    if not explicit and source_tree.is_file():
        return source_tree
    return find_preset(explicit or str(PRESET))


@dataclass
class DemoResult:
    """What :func:`run_demo` did: the fresh model's test summary (``evaluate``'s dict), the zoo
    entry's beside it (None when no entry fits), and where everything is."""

    summary: dict[str, Any]
    train_seconds: float
    output: Path
    checkpoint_dir: Path
    input_clip: Path
    short_len: int
    out_len: int
    models: list[str] = field(default_factory=list)  # forecasts drawn, in the order drawn
    zoo_name: str | None = None
    zoo_summary: dict[str, Any] | None = None


def run_demo(
    output: str | Path = "runs/demo",
    config: str | None = None,
    iterations: int | None = None,
    test_clips: int = 256,
    num_frames_to_save: int = 8,
    say: Callable[[str], None] = print,
) -> DemoResult:
    """Train the demo preset (``config``: see :func:`preset_path`) into ``output/checkpoints``,
    test it on ``test_clips`` generated clips, compare it with the best fitting zoo entry and
    draw ``num_frames_to_save`` clips; ``say`` gets one line per stage. ConfigError (one line)
    on bad counts."""
    from swinlstm.engine.checkpoint import load_model
    from swinlstm.engine.config import RunConfig, flat_form, load_yaml
    from swinlstm.engine.evaluate import evaluate, write_forecasts
    from swinlstm.engine.train import resolve_config, train
    from swinlstm.zoo import best_shipped
    from swinlstm.zoo import load as load_zoo
    from swinlstm.zoo.card import builtin_test_set

    if iterations is not None and iterations < 1:
        raise ConfigError(f"--iterations must be >= 1, got {iterations}")
    if test_clips < 1:
        raise ConfigError(f"--test_clips must be >= 1, got {test_clips}")
    preset = preset_path(config)
    out = Path(output)
    ckpt_dir = out / "checkpoints"
    cfg = RunConfig.from_dict(load_yaml(str(preset)), str(preset))
    cfg.output.checkpoint_save_dir = str(ckpt_dir)
    if iterations is not None:
        cfg.optim.iterations = iterations
    cfg = resolve_config(cfg)

    say(f"[demo] 1/2 training {preset} into {ckpt_dir}")
    start = time.perf_counter()
    train(cfg)
    train_s = time.perf_counter() - start

    best = ckpt_dir / "best.ckpt"
    model, info = load_model(best if best.is_file() else ckpt_dir)
    short_len, out_len, batch_size = cfg.data.short_len, cfg.data.out_len, cfg.data.batch_size
    test_set = builtin_test_set(flat_form(cfg.to_dict()), test_clips, model)
    say(f"[demo] 2/2 testing {info['model']} on {test_clips} generated test clips")
    common = dict(out_len=out_len, batch_size=batch_size, progress_every=10.0)
    summary = evaluate(
        model,
        test_set,
        result_dir=out,
        meta={
            "dataset": "movingmnist (generated test set)",
            "model": info["model"],
            "model_config": info.get("config", {}),
            "checkpoint": str(best if best.is_file() else ckpt_dir),
            "preset": str(preset),
            "train_seconds": round(train_s, 1),
        },
        **common,
    )
    models = {"fresh": model}
    result = DemoResult(summary, train_s, out, ckpt_dir, out / "input_clip.npy", short_len, out_len)
    entry = best_shipped(short_len, out_len)
    if entry is not None:
        zoo_model, _ = load_zoo(entry.name)
        if (
            tuple(zoo_model.img_size) == tuple(model.img_size)
            and zoo_model.in_chans == model.in_chans
        ):
            say(f"[demo] testing zoo:{entry.name} on the same clips")
            result.zoo_summary = evaluate(
                zoo_model,
                test_set,
                result_dir=out / "zoo",
                meta={"dataset": "movingmnist (generated test set)", "zoo": entry.name},
                **common,
            )
            result.zoo_name = entry.name
            models = {"zoo": zoo_model, **models}
        else:
            say(f"[demo] zoo:{entry.name} forecasts other frames than the preset; not compared")
    save_input_clip(test_set, result.input_clip)
    if num_frames_to_save > 0:
        write_forecasts(models, test_set, out_len, out, num_frames_to_save, batch_size)
    result.models = list(models)
    return result


def save_input_clip(test_set, path: Path) -> Path:
    """The input frames of the first test clip as a uint8 (T, H, W, C) .npy, which
    ``swinlstm predict --input`` reads."""
    import numpy as np
    import torch

    inputs = test_set[0][0]  # (T, C, H, W) in [0, 1]
    path.parent.mkdir(parents=True, exist_ok=True)
    frames = inputs.permute(0, 2, 3, 1).mul(255).round().clamp(0, 255).to(torch.uint8)
    np.save(path, frames.numpy())
    return path


def relative_change(value: float, reference: float) -> str:
    """``"N% lower"`` or ``"N% higher"``: ``value`` against ``reference`` (> 0)."""
    change = 100 * (value - reference) / reference
    return f"{abs(change):.0f}% {'higher' if change > 0 else 'lower'}"
