"""``swinlstm train`` and the root ``train.py``: the authors' flags, presets, resume, many GPUs.

    python train.py --dataset 'movingmnist' --train_data_dir PATH --valid_data_dir PATH \\
      --checkpoint_save_dir './checkpoints' --img_size 64 --img_channel 1 --memory_size 100 \\
      --short_len 10 --long_len 30 --out_len 30 --batch_size 128 --lr 0.0002 --iterations 300000

``--config FILE.yaml`` supplies defaults (flag names as keys); flags given on the command line win.
Every flag defaults to None here so that "not given" is visible; the defaults of a run are those of
:class:`swinlstm.engine.train.TrainConfig` and of the model.
"""

from __future__ import annotations

import argparse
import os
import shlex
import shutil
import sys
import types
from typing import Any

from swinlstm.cli.common import (
    add_data_args,
    add_model_args,
    apply_config_defaults,
    data_options_of,
    img_size_of,
    model_config_from_args,
    str2bool,
)
from swinlstm.cli.swinlstm_flags import add_swinlstm_train_args, resolve_swinlstm_flags

DESCRIPTION = "Train a model (SwinLSTM-B/-D, ConvLSTM, LMC-Memory) with PyTorch Lightning."


def _one_line_error(self: argparse.ArgumentParser, message: str) -> None:
    """argparse errors as one line (``<prog>: error: ...``), exit code 2, no usage block."""
    self.exit(2, f"{self.prog}: error: {message}\n")


def add_train_args(p: argparse.ArgumentParser) -> None:
    """Every ``train`` flag (data, model, optimisation, outputs, hardware)."""
    p.error = types.MethodType(_one_line_error, p)
    p.add_argument("--config", default=None, help="YAML preset (flag: value); flags override it")
    add_data_args(p, train=True)
    add_model_args(p)
    g = p.add_argument_group("optimisation")
    g.add_argument("--lr", type=float, default=None, help="Adam learning rate (1e-4)")
    g.add_argument("--weight_decay", type=float, default=None, help="Adam weight decay (0)")
    g.add_argument(
        "--schedule", default=None, choices=("none", "cosine", "onecycle"), help="lr schedule"
    )
    g.add_argument(
        "--schedule_warmup", type=int, default=None, help="cosine: linear lr warm-up iterations"
    )
    g.add_argument("--min_lr", type=float, default=None, help="cosine: final lr (1e-6)")
    g.add_argument("--grad_clip", type=float, default=None, help="max gradient norm (0: off)")
    g.add_argument(
        "--scheduled_sampling",
        type=str2bool,
        default=None,
        help="feed true frames with a decaying probability (ConvLSTM baseline; False)",
    )
    g.add_argument("--sampling_stop_iter", type=int, default=None, help="(50000)")
    g.add_argument("--sampling_changing_rate", type=float, default=None, help="(2e-5)")
    g.add_argument("--iterations", type=int, default=None, help="training iterations (300000)")
    g.add_argument(
        "--iterations_warmup",
        type=int,
        default=None,
        help="memory models: iterations predicting only 10 frames (5000)",
    )
    g.add_argument(
        "--alignment_zero_grad",
        default=None,
        choices=("zeros", "none"),
        help="memory models: gradients between the two steps zero-filled (PyTorch 1.6, the "
        "authors' published runs: Adam's momentum still moves frozen slots; default) or None "
        "(PyTorch >= 2: they stand still)",
    )
    g = p.add_argument_group("validation and outputs")
    g.add_argument(
        "--print_freq", type=int, default=None, help="validate + checkpoint every N iterations"
    )
    g.add_argument(
        "--valid_batches", type=int, default=None, help="validation batches per process (all)"
    )
    g.add_argument("--valid_batch_size", type=int, default=None, help="(--batch_size)")
    g.add_argument(
        "--valid_metrics",
        nargs="+",
        default=None,
        help="metrics (mse mae ssim psnr); mse is always computed: it picks best.ckpt",
    )
    g.add_argument("--protocol", default=None, help="metric protocol (default)")
    g.add_argument("--checkpoint_save_dir", default=None, help="output folder (./checkpoints)")
    g.add_argument(
        "--checkpoint_load_file",
        default=None,
        help="last.ckpt to resume; model.safetensors or an authors' file to fine-tune",
    )
    g.add_argument(
        "--checkpoint_load",
        type=str2bool,
        default=None,
        help="LMC-Memory's flag: False = do not load --checkpoint_load_file (a new run, with "
        "warm-up), True = load it (needs the file); not given: --checkpoint_load_file decides",
    )
    g.add_argument(
        "--checkpoint_every",
        type=float,
        default=None,
        metavar="MINUTES",
        help="also write last.ckpt every MINUTES, without validating (10; 0: off)",
    )
    g.add_argument(
        "--early_stop",
        type=int,
        default=None,
        metavar="PATIENCE",
        help="stop after PATIENCE validations without a better validation MSE; best.ckpt is "
        "the result (0: off)",
    )
    g.add_argument(
        "--resume",
        action="store_const",
        const=True,
        default=None,
        help="continue from last.ckpt in --checkpoint_save_dir if there is one, else start "
        "(same as --checkpoint_load_file auto): a requeued job reruns the same command",
    )
    g.add_argument("--progress", type=str2bool, default=None, help="progress bar (True)")
    g.add_argument(
        "--logger",
        nargs="+",
        default=None,
        metavar="NAME",
        help="csv, tensorboard, wandb, mlflow: one or several (csv tensorboard; csv is the "
        "run's metrics.csv, always written)",
    )
    g = p.add_argument_group("hardware (Lightning's meanings)")
    g.add_argument("--accelerator", default=None, help="auto, cpu, gpu, cuda, mps (auto)")
    g.add_argument("--devices", default=None, help="devices per node: 4, -1 (all), auto (1)")
    g.add_argument("--num_nodes", type=int, default=None, help="machines (1)")
    g.add_argument("--strategy", default=None, help="auto, ddp, ddp_spawn, fsdp ... (auto)")
    g.add_argument(
        "--precision", default=None, help="32-true, bf16-mixed, 16-mixed, 64-true (32-true)"
    )
    add_swinlstm_train_args(p)


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("train", help="train a model", description=DESCRIPTION)
    add_train_args(p)
    p.set_defaults(func=_run)


def standalone_parser(prog: str = "train.py") -> argparse.ArgumentParser:
    """The parser of the root ``train.py`` (the same flags as ``swinlstm train``)."""
    p = argparse.ArgumentParser(prog=prog, description=DESCRIPTION)
    add_train_args(p)
    p.set_defaults(func=_run, command="train")
    return p


def with_config(args: argparse.Namespace) -> argparse.Namespace:
    """``args`` with the ``--config`` file's values filled in where no flag was given."""
    if not getattr(args, "config", None):
        return args
    preset = apply_config_defaults(standalone_parser(), ["--config", args.config])
    defaults = preset.parse_args(["--config", args.config])
    merged = vars(defaults).copy()
    merged.update({k: v for k, v in vars(args).items() if v is not None})
    if defaults.data_options is not None and args.data_options is not None:
        merged["data_options"] = {
            **data_options_of(defaults.data_options),
            **data_options_of(args.data_options),
        }
    return argparse.Namespace(**merged)


def _devices(value: Any) -> int | str:
    if value is None:
        return 1
    text = str(value)
    try:
        return int(text)
    except ValueError:
        return text


def config_from_args(args: argparse.Namespace):
    """A :class:`~swinlstm.engine.train.TrainConfig` from parsed flags (preset applied)."""
    from swinlstm.engine.train import TrainConfig, resolve_config

    args = resolve_swinlstm_flags(args, with_config)  # their configs.py flags, then the preset
    _, model_config = model_config_from_args(args)
    size = img_size_of(args)
    values: dict[str, Any] = {
        "dataset": args.dataset,
        "train_data_dir": args.train_data_dir,
        "valid_data_dir": args.valid_data_dir,
        "img_size": list(size) if isinstance(size, tuple) else size,
        "img_channel": args.img_channel,
        "short_len": args.short_len,
        "out_len": args.out_len,
        "long_len": args.long_len,
        "batch_size": args.batch_size,
        "workers": args.workers,
        "seed": args.seed,
        "model": args.model,  # None: the checkpoint's when resuming, else swinlstm-d
        "model_config": model_config,
        "devices": _devices(args.devices),
        "data_options": data_options_of(args.data_options),
    }
    for key in (
        "lr",
        "weight_decay",
        "schedule",
        "schedule_warmup",
        "min_lr",
        "grad_clip",
        "scheduled_sampling",
        "sampling_stop_iter",
        "sampling_changing_rate",
        "iterations",
        "iterations_warmup",
        "alignment_zero_grad",
        "print_freq",
        "valid_batches",
        "valid_batch_size",
        "valid_metrics",
        "protocol",
        "checkpoint_save_dir",
        "checkpoint_load_file",
        "checkpoint_every",
        "early_stop",
        "resume",
        "checkpoint_load",
        "accelerator",
        "num_nodes",
        "strategy",
        "precision",
        "progress",
        "logger",
    ):
        values[key] = getattr(args, key)
    values["log_every"] = getattr(args, "log_train", None)
    return resolve_config(TrainConfig(**{k: v for k, v in values.items() if v is not None}))


def resume_command(argv: list[str] | None = None) -> str:
    """The command line that was run (``sys.argv``), with ``--resume`` added, shell-quoted."""
    argv = list(sys.argv if argv is None else argv)
    prog, rest = argv[0], argv[1:]
    path = os.path.realpath(prog)
    package = os.path.dirname(os.path.dirname(os.path.realpath(__file__)))  # .../swinlstm
    if path.startswith(package + os.sep) and path.endswith(".py"):  # python -m swinlstm...
        module = os.path.relpath(path[:-3], os.path.dirname(package)).replace(os.sep, ".")
        head = [_python(), "-m", module.removesuffix(".__main__")]
    elif prog.endswith(".py"):  # python train.py
        head = [_python(), prog]
    else:  # the swinlstm console script
        name = os.path.basename(prog)
        found = shutil.which(name)
        head = [name if found and os.path.realpath(found) == path else prog]
    if "--resume" not in rest:
        rest.append("--resume")
    return shlex.join(head + rest)


def _python() -> str:
    found = shutil.which("python")
    same = found and os.path.realpath(found) == os.path.realpath(sys.executable)
    return "python" if same else sys.executable


def _run(args: argparse.Namespace) -> int:
    from swinlstm.engine.errors import TrainingInterrupted
    from swinlstm.engine.train import train

    try:
        train(config_from_args(args))
    except TrainingInterrupted as stop:
        if stop.rank == 0:
            print(
                f"interrupted at iteration {stop.iteration}; resume with: {resume_command()}",
                file=sys.stderr,
                flush=True,
            )
        return stop.exit_code
    return 0


def main(argv: list[str] | None = None) -> None:
    """Entry point of the root ``train.py``: one line and exit code 2 on a user mistake."""
    from swinlstm.cli.main import run

    sys.exit(run(argv, standalone_parser()))
