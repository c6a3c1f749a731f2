"""The ``--checkpoint`` and ``--dataset`` flags of ``test``/``predict``/``export``, and the call
that loads the model they name (:func:`swinlstm.zoo.load_checkpoint_model`: our
checkpoints checked against the flags, the authors' files built from them).
"""

from __future__ import annotations

import argparse
from typing import Any

from torch import nn

from swinlstm.cli.common import img_size_of, model_config_from_args


def add_checkpoint_arg(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--checkpoint_load_file",
        "--checkpoint",
        dest="checkpoint",
        required=True,
        help="model.safetensors, a .ckpt, a run directory, an authors' published file, or "
        "zoo:NAME (swinlstm zoo lists them)",
    )


def add_authors_checkpoint_args(p: argparse.ArgumentParser) -> None:
    """``--img_size``, ``--img_channel`` and ``--dataset`` for commands without data flags
    (predict, export): the authors' files do not record them, and are built as the authors' code
    builds them for that dataset (LMC-Memory's KTH network ends in a sigmoid)."""
    from swinlstm.engine.config import DATASETS

    p.add_argument(
        "--img_size", type=int, nargs="+", default=None, help="authors' checkpoints: frame size"
    )
    p.add_argument(
        "--img_channel", type=int, default=None, help="authors' checkpoints: frame channels"
    )
    p.add_argument(
        "--dataset",
        default=None,
        type=str.lower,
        choices=DATASETS,
        help="authors' checkpoints: the dataset the network was trained on (its frame size and "
        "channels where --img_size/--img_channel are silent; lmc-convlstm: kth adds the output "
        "sigmoid, as their model.py)",
    )


def checkpoint_model(args: argparse.Namespace) -> tuple[nn.Module, dict[str, Any]]:
    """:func:`swinlstm.zoo.load_checkpoint_model` of the parsed flags."""
    from swinlstm.zoo import load_checkpoint_model

    def flags_config(family: str | None) -> tuple[str, dict[str, Any]]:
        # the model flags, checked against the family an authors' file was recognised as
        return model_config_from_args(
            argparse.Namespace(**{**vars(args), "model": args.model or family})
        )

    return load_checkpoint_model(
        args.checkpoint,
        flags_config,
        model=args.model,
        dataset=getattr(args, "dataset", None),
        img_size=img_size_of(args),
        img_channel=getattr(args, "img_channel", None),
    )
