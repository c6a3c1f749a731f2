"""Flags shared by ``train``, ``test`` and ``predict``, with the authors' names, built from the
settings table (:mod:`swinlstm.engine.config`).

The authors' READMEs pass values like ``--dataset 'movingmnist'`` and ``--make_frame True``;
booleans are parsed properly here (``False``, ``0``, ``no`` are false), unlike ``type=bool``.
List flags take space-separated values (``--depths_down 2 6``) or one comma-separated value
(``--depths_down 2,6``).
"""

from __future__ import annotations

import argparse
from typing import Any

from swinlstm.engine.config import MODEL_OPTIONS, SETTINGS, RunConfig, flatten


def add_flag(group: Any, flags: tuple[str, ...], help: str | None, cli: dict[str, Any]) -> None:
    """One flag of the table; None default, so that "not given" is visible."""
    group.add_argument(*flags, dest=flags[0].lstrip("-"), default=None, help=help, **cli)


def add_section_args(p: argparse.ArgumentParser, section: str, title: str, skip=()) -> Any:
    """The flags of one section of :class:`~swinlstm.engine.config.RunConfig` in a group."""
    g = p.add_argument_group(title)
    for row in SETTINGS:
        if row.section == section and row.name not in skip and row.name != "options":
            add_flag(g, row.flags, row.help, row.cli)
    return g


def add_data_args(p: argparse.ArgumentParser, train: bool = True) -> None:
    """Dataset, paths, frame geometry and sequence lengths (LMC-Memory's / SwinLSTM's names)."""
    skip = () if train else ("train_data_dir", "valid_data_dir", "data_options")
    g = add_section_args(p, "data", "data", skip)
    g.add_argument("--test_data_dir", default=None, help="test data (file or folder)")
    if not train:
        row = next(r for r in SETTINGS if r.name == "data_options")
        help = f"{row.help} (default: those the checkpoint was trained with)"
        add_flag(g, row.flags, help, row.cli)


def add_model_args(p: argparse.ArgumentParser) -> None:
    """Model name and the model's own flags (the authors' names; unset flags keep model defaults)."""
    g = add_section_args(p, "model", "model")
    for option in MODEL_OPTIONS.values():
        add_flag(g, option.flags, option.help, option.cli)


def img_size_of(args: argparse.Namespace) -> int | tuple[int, int] | None:
    size = RunConfig.from_dict({"img_size": getattr(args, "img_size", None)}).data.img_size
    return tuple(size) if isinstance(size, list) else size


def model_config_from_args(args: argparse.Namespace) -> tuple[str, dict[str, Any]]:
    """``(model name, build_model config)`` from parsed flags; only flags that were set are kept."""
    flags = {"model": args.model or "swinlstm-d"}
    for key in (o.flags[0].lstrip("-") for o in MODEL_OPTIONS.values()):
        flags[key] = getattr(args, key, None)
    cfg = RunConfig.from_dict(flags)
    config = {k: flatten(v) for k, v in cfg.model.options.items()}
    size = img_size_of(args)
    if size is not None:
        config["img_size"] = list(size) if isinstance(size, tuple) else size
    if getattr(args, "img_channel", None) is not None:
        config["in_chans"] = args.img_channel
    return cfg.model.name, config
