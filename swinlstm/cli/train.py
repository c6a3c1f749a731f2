"""``swinlstm train`` and the root ``train.py``: the authors' flags, presets, resume, many GPUs.

    python train.py --dataset 'movingmnist' --train_data_dir PATH --valid_data_dir PATH \\
      --checkpoint_save_dir './checkpoints' --img_size 64 --img_channel 1 --memory_size 100 \\
      --short_len 10 --long_len 30 --out_len 30 --batch_size 128 --lr 0.0002 --iterations 300000

``--config FILE.yaml`` supplies defaults (flat: flag names as keys, or nested as a run's
config.yaml); flags given on the command line win. The flags are built from the settings table of
:mod:`swinlstm.engine.config`; each defaults to None here so that "not given" is visible; the
defaults of a run are those of :class:`~swinlstm.engine.config.RunConfig` and of the model.
"""

from __future__ import annotations

import argparse
import os
import shlex
import shutil
import sys
import types

from swinlstm.cli.common import add_data_args, add_model_args, add_section_args
from swinlstm.cli.swinlstm_flags import add_swinlstm_train_args
from swinlstm.engine.config import GROUPS, RunConfig
from swinlstm.engine.dialects import train_config

DESCRIPTION = "Train a model (SwinLSTM-B/-D, ConvLSTM, LMC-Memory) with PyTorch Lightning."


def _one_line_error(self: argparse.ArgumentParser, message: str) -> None:
    """argparse errors as one line (``<prog>: error: ...``), exit code 2, no usage block."""
    self.exit(2, f"{self.prog}: error: {message}\n")


def add_train_args(p: argparse.ArgumentParser) -> None:
    """Every ``train`` flag (data, model, optimisation, outputs, hardware)."""
    p.error = types.MethodType(_one_line_error, p)
    p.add_argument(
        "--config",
        default=None,
        help="YAML preset (flag: value) or a run's config.yaml; flags given win",
    )
    add_data_args(p, train=True)
    add_model_args(p)
    for section in ("optim", "output", "hardware"):
        add_section_args(p, section, GROUPS[section])
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


def config_from_args(args: argparse.Namespace) -> RunConfig:
    """The resolved :class:`~swinlstm.engine.config.RunConfig` of parsed flags (preset applied)."""
    return train_config(vars(args))


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
