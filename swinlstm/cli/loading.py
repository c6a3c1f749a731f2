"""Loading the model a ``test``/``predict``/``export`` command names, with its flags checked.

Our checkpoints (``model.safetensors``, ``.ckpt``, a run directory) record the model and its
configuration: flags are then only checked against them, so that a checkpoint of another model
or frame size is refused with one clear line rather than failing deep inside a forward pass.
The authors' files record no configuration: the model family is recognised from the key names
(SwinLSTM-B ``ST.``, SwinLSTM-D ``Downsample.``/``Upsample.``, LMC-Memory ``module.`` keys) and
the network is built from the flags, for ``--dataset``'s own frame size and channels where
``--img_size`` / ``--img_channel`` are silent.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from torch import nn

from swinlstm.cli.common import img_size_of, model_config_from_args
from swinlstm.errors import ConfigError, MissingPathError
from swinlstm.models.official import authors_config


def add_checkpoint_arg(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--checkpoint_load_file",
        "--checkpoint",
        dest="checkpoint",
        required=True,
        help="model.safetensors, a .ckpt, a run directory, an authors' published file, or "
        "zoo:NAME (swinlstm zoo lists them)",
    )


def add_dataset_arg(p: argparse.ArgumentParser) -> None:
    """``--dataset`` for commands without data flags (predict, export): the authors' files are
    built as the authors' code builds them for that dataset (LMC-Memory's KTH network ends in a
    sigmoid)."""
    from swinlstm.cli.common import DATASETS

    p.add_argument(
        "--dataset",
        default=None,
        type=str.lower,
        choices=DATASETS,
        help="authors' checkpoints: the dataset the network was trained on (its frame size and "
        "channels where --img_size/--img_channel are silent; lmc-convlstm: kth adds the output "
        "sigmoid, as their model.py)",
    )


def official_family(keys: list[str]) -> str | None:
    """The model family of an authors' state dict from its key names, or None if unknown."""
    keys = [k[len("module.") :] if k.startswith("module.") else k for k in keys]
    if any(k.startswith("ST.") for k in keys):
        return "swinlstm-b"
    if any(k.startswith(("Downsample.", "Upsample.")) for k in keys):
        return "swinlstm-d"
    if any(k.startswith(("memory", "attention_func", "encoder.")) for k in keys):
        return "lmc-convlstm"
    return None


def _official_keys(path: Path) -> list[str] | None:
    """Keys of ``path`` when it is a plain state dict (an authors' file), else None."""
    if path.is_dir() or path.suffix == ".safetensors":
        return None
    from swinlstm.models.official import read_state_dict

    if path.suffix == ".ckpt":
        from swinlstm.files import load_torch_weights

        obj = load_torch_weights(path)  # one line naming the file if it cannot be read
        if isinstance(obj, dict) and "model_name" in obj.get("hyper_parameters", {}):
            return None
    return list(read_state_dict(path))


def load_checkpoint_model(args: argparse.Namespace) -> tuple[nn.Module, dict[str, Any]]:
    """The model of ``args.checkpoint`` (eval mode) and ``load_model``'s info, flags checked.

    The model is built without ``torch.compile`` whatever its checkpoint records (``eager``):
    ``test``, ``predict`` and ``export`` run it once, and exporters cannot trace compiled code.
    """
    from swinlstm.engine.checkpoint import load_model
    from swinlstm.zoo import PREFIX, entry, resolve

    if str(args.checkpoint).startswith(PREFIX):
        path, name, config = resolve(args.checkpoint)
        if name is not None:  # an authors' file: the entry names the network it was trained as
            model, info = load_model(path, name, config)
            _check_flags_fit(args, model, info, path)
            return model, {**info, "zoo": entry(args.checkpoint).name}
        args.checkpoint = str(path)
    path = Path(args.checkpoint)
    if not path.exists():
        raise MissingPathError(f"checkpoint not found: {path}")
    keys = _official_keys(path)
    if keys is not None and args.model is None:
        family = official_family(keys)
        if family is None:
            raise ConfigError(
                f"{path}: a plain state dict of no known model; pass --model and its flags"
            )
        args.model = family
    name, config = model_config_from_args(args)
    config = {**authors_config(name, getattr(args, "dataset", None)), **config}
    if keys is not None and getattr(args, "dataset", None):  # the dataset's own frames
        from swinlstm.data import native_frame

        size, channels = native_frame(args.dataset)
        config.setdefault("img_size", list(size) if isinstance(size, tuple) else size)
        config.setdefault("in_chans", channels)
    if not name.startswith("lmc"):
        config.pop("memory_size", None)  # the authors' commands pass it for every model
    try:
        model, info = load_model(path, name, config, eager=True)
    except ValueError as err:
        if keys is None:
            raise
        raise ConfigError(
            f"{path}: {err} (an authors' file records no configuration: the {name} network is "
            "built from the flags; pass those it was trained with)"
        ) from None
    if keys is None:
        _check_flags_fit(args, model, info, path)
    return model, info


def _check_flags_fit(
    args: argparse.Namespace, model: nn.Module, info: dict[str, Any], path: Path
) -> None:
    """Refuse flags that contradict what our checkpoint records."""
    if args.model is not None and args.model != info["model"]:
        raise ConfigError(
            f"{path} holds a {info['model']} model, not the --model {args.model} asked"
        )
    size = img_size_of(args)
    if size is not None:
        size = (size, size) if isinstance(size, int) else tuple(size)
        if size != tuple(model.img_size):
            raise ConfigError(
                f"{path} was trained on {model.img_size[0]}x{model.img_size[1]} frames, "
                f"but --img_size is {size[0]}x{size[1]}"
            )
    channels = getattr(args, "img_channel", None)
    if channels is not None and channels != model.in_chans:
        raise ConfigError(
            f"{path} was trained on {model.in_chans}-channel frames, but --img_channel is {channels}"
        )
