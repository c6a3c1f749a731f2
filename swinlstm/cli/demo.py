"""``swinlstm demo`` (``make demo``): train the ``demo`` preset on built-in digits, test it, draw it.

    swinlstm demo --output runs/demo [--iterations N]

1. trains ``configs/demo.yaml`` (a small model on Moving MNIST made from scikit-learn's built-in
   digits: no download) into ``runs/demo/checkpoints/``;
2. evaluates the best checkpoint on the fixed generated Moving MNIST test set;
3. writes ``runs/demo/``: ``metrics.json`` / ``metrics.csv`` / ``per_frame.png``, ``frames/``,
   ``gifs/``, ``comparison.png``, and prints the demo's MSE beside the MSE of repeating the last
   input frame (``"baseline_last_frame"`` in ``metrics.json``).

Where the preset is found: ``--config`` if given (a file, or a packaged preset's name:
:func:`swinlstm.presets.find_preset`); else ``configs/demo.yaml`` of the source tree the package
was imported from (a clone, or an editable install as ``make`` makes); else the packaged
``demo`` preset (an installed wheel, run from any folder).
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

from swinlstm.errors import ConfigError
from swinlstm.presets import find_preset

HELP = "train the small demo model on built-in digits, evaluate it and write runs/demo/"
PRESET = Path("configs") / "demo.yaml"


def preset_path(explicit: str | None = None) -> Path:
    """The demo preset file (see the module docstring for the search order)."""
    import swinlstm

    source_tree = Path(swinlstm.__file__).resolve().parents[1] / PRESET
    if not explicit and source_tree.is_file():
        return source_tree
    return find_preset(explicit or str(PRESET))


def add_parser(subparsers) -> None:
    p = subparsers.add_parser("demo", help=HELP, description=HELP)
    p.add_argument("--output", default="runs/demo", help="folder of the demo's files")
    p.add_argument("--config", default=None, help="preset to train (default configs/demo.yaml)")
    p.add_argument("--iterations", type=int, default=None, help="override the preset's iterations")
    p.add_argument(
        "--test_clips", type=int, default=256, help="test clips evaluated (fixed generated set)"
    )
    p.add_argument("--num_frames_to_save", type=int, default=8, help="clips drawn as frames/GIFs")
    p.set_defaults(func=run_demo)


def run_demo(args: argparse.Namespace) -> int:
    from swinlstm.cli.test import print_summary
    from swinlstm.engine.checkpoint import load_model
    from swinlstm.engine.config import RunConfig, flat_form, load_yaml
    from swinlstm.engine.evaluate import evaluate, write_forecasts
    from swinlstm.engine.train import resolve_config, train
    from swinlstm.zoo import best_shipped
    from swinlstm.zoo import load as load_zoo
    from swinlstm.zoo.card import builtin_test_set

    if args.iterations is not None and args.iterations < 1:
        raise ConfigError(f"--iterations must be >= 1, got {args.iterations}")
    if args.test_clips < 1:
        raise ConfigError(f"--test_clips must be >= 1, got {args.test_clips}")
    preset = preset_path(args.config)
    out = Path(args.output)
    ckpt_dir = out / "checkpoints"
    cfg = RunConfig.from_dict(load_yaml(str(preset)), str(preset))
    cfg.output.checkpoint_save_dir = str(ckpt_dir)
    if args.iterations is not None:
        cfg.optim.iterations = args.iterations
    cfg = resolve_config(cfg)

    print(f"[demo] 1/2 training {preset} into {ckpt_dir}")
    start = time.perf_counter()
    train(cfg)
    train_s = time.perf_counter() - start

    best = ckpt_dir / "best.ckpt"
    model, info = load_model(best if best.is_file() else ckpt_dir)
    short_len, out_len, batch_size = cfg.data.short_len, cfg.data.out_len, cfg.data.batch_size
    test_set = builtin_test_set(flat_form(cfg.to_dict()), args.test_clips, model)
    print(f"[demo] 2/2 testing {info['model']} on {args.test_clips} generated test clips")
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
    zoo_line = None
    entry = best_shipped(short_len, out_len)
    if entry is not None:
        zoo_model, _ = load_zoo(entry.name)
        if (
            tuple(zoo_model.img_size) == tuple(model.img_size)
            and zoo_model.in_chans == model.in_chans
        ):
            print(f"[demo] testing zoo:{entry.name} on the same clips")
            zoo_summary = evaluate(
                zoo_model,
                test_set,
                result_dir=out / "zoo",
                meta={"dataset": "movingmnist (generated test set)", "zoo": entry.name},
                **common,
            )
            models = {"zoo": zoo_model, **models}
            zoo_line = f"zoo:{entry.name} {zoo_summary['mse']:.2f} (SSIM {zoo_summary['means']['ssim']:.3f})"
        else:
            print(f"[demo] zoo:{entry.name} forecasts other frames than the preset; not compared")
    clip = save_input_clip(test_set, out / "input_clip.npy")
    if args.num_frames_to_save > 0:
        write_forecasts(models, test_set, out_len, out, args.num_frames_to_save, batch_size)
    print_summary(summary, str(out), make_frame=args.num_frames_to_save > 0)
    mse, base = summary["mse"], summary["baseline_last_frame"]["mse"]
    fresh = (
        f"this demo's model after {train_s / 60:.1f} min of training {mse:.2f} "
        f"(SSIM {summary['means']['ssim']:.3f}, {relative_change(mse, base)} than the baseline)"
    )
    print(
        f"[demo] MSE per frame: {zoo_line + '; ' if zoo_line else ''}{fresh}; "
        f"repeating the last input frame {base:.2f}"
    )
    shown = " | ".join(["last input", "ground truth", *models])
    print(
        f"[demo] {out}/comparison.png rows per clip: truth, then each forecast and its error "
        f"({', '.join(models)}); gifs/: {shown}"
    )
    print(
        f"[demo] forecast a clip yourself: swinlstm predict --checkpoint "
        f"{'zoo:' + entry.name if zoo_line else ckpt_dir} --input {clip} --short_len {short_len} "
        f"--out_len {out_len} --output {out / 'predict'}"
    )
    return 0


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
