"""Flags shared by ``train``, ``test`` and ``predict``, with the authors' names.

The authors' READMEs pass values like ``--dataset 'movingmnist'`` and ``--make_frame True``;
booleans are parsed properly here (``False``, ``0``, ``no`` are false), unlike ``type=bool``.
List flags take space-separated values (``--depths_down 2 6``) or one comma-separated value
(``--depths_down 2,6``).
"""

from __future__ import annotations

import argparse
from typing import Any

from swinlstm.errors import ConfigError
from swinlstm.presets import find_preset

DATASETS = ("movingmnist", "kth", "taxibj", "human36m", "custom")
MODELS = ("swinlstm-b", "swinlstm-d", "convlstm", "lmc-convlstm")

# flag -> model config key (only flags the user set are passed; the model's defaults do the rest)
MODEL_FLAGS = {
    "patch_size": "patch_size",
    "embed_dim": "embed_dim",
    "depths": "depths",
    "depths_down": "depths_down",
    "depths_up": "depths_up",
    "heads_number": "num_heads",
    "window_size": "window_size",
    "mlp_ratio": "mlp_ratio",
    "drop_rate": "drop_rate",
    "attn_drop_rate": "attn_drop_rate",
    "drop_path_rate": "drop_path_rate",
    "num_hidden": "num_hidden",
    "filter_size": "filter_size",
    "final_sigmoid": "final_sigmoid",
    "checkpointing": "checkpointing",
    "compile": "compile",
}
SWIN_ONLY = {
    "embed_dim",
    "depths",
    "depths_down",
    "depths_up",
    "num_heads",
    "window_size",
    "mlp_ratio",
}
SWIN_ONLY |= {"drop_rate", "attn_drop_rate", "drop_path_rate", "checkpointing", "compile"}
CONV_ONLY = {"num_hidden", "filter_size"}


def str2bool(value: str | bool) -> bool:
    """``True/true/1/yes/y/on`` -> True, ``False/false/0/no/n/off`` -> False, else an error."""
    if isinstance(value, bool):
        return value
    v = str(value).strip().lower()
    if v in ("true", "1", "yes", "y", "on"):
        return True
    if v in ("false", "0", "no", "n", "off"):
        return False
    raise argparse.ArgumentTypeError(f"expected a boolean (True/False, 1/0, yes/no), got {value!r}")


def int_list(value: str) -> list[int]:
    """One list-flag token: ``"2"`` -> [2], ``"2,6"`` -> [2, 6]."""
    try:
        return [int(v) for v in str(value).replace(" ", "").split(",") if v]
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"expected integers like 2 6 or 2,6, got {value!r}"
        ) from None


def flatten(values: list | None) -> list[int] | None:
    """Join the tokens of an ``nargs='+'`` list flag parsed with :func:`int_list`."""
    if values is None:
        return None
    out: list[int] = []
    for v in values:
        out.extend(v if isinstance(v, list) else [v])
    return out


def add_data_args(p: argparse.ArgumentParser, train: bool = True) -> None:
    """Dataset, paths, frame geometry and sequence lengths (LMC-Memory's / SwinLSTM's names)."""
    g = p.add_argument_group("data")
    g.add_argument(
        "--dataset",
        default=None,
        type=str.lower,
        choices=DATASETS,
        help="(a preset's or checkpoint's own, else movingmnist)",
    )
    if train:
        g.add_argument("--train_data_dir", default=None, help="training data (file or folder)")
        g.add_argument("--valid_data_dir", default=None, help="validation data (file or folder)")
    g.add_argument("--test_data_dir", default=None, help="test data (file or folder)")
    g.add_argument(
        "--img_size",
        type=int,
        nargs="+",
        default=None,
        help="frame size: H (square) or H W (default: the dataset's own)",
    )
    g.add_argument(
        "--img_channel",
        type=int,
        default=None,
        help="channels of a frame, 1 grey, 3 RGB (default: the dataset's own)",
    )
    g.add_argument("--short_len", type=int, default=None, help="input frames")
    g.add_argument("--long_len", type=int, default=None, help="long-term frames (memory models)")
    g.add_argument("--out_len", type=int, default=None, help="predicted frames")
    g.add_argument("--batch_size", type=int, default=None)
    g.add_argument("--workers", type=int, default=None, help="data loading processes")
    g.add_argument("--seed", type=int, default=None)
    g.add_argument(
        "--data_options",
        nargs="+",
        default=None,
        metavar="KEY=VALUE",
        help="the dataset's own options, e.g. num_digits=[1,2] train_samples=2000"
        + ("" if train else " (default: those the checkpoint was trained with)"),
    )


def data_options_of(value: Any) -> dict[str, Any]:
    """``--data_options k=v ...`` (values read as YAML) or a preset's mapping -> dict."""
    import yaml

    if value is None:
        return {}
    if isinstance(value, dict):
        return dict(value)
    out: dict[str, Any] = {}
    for item in value:
        key, sep, text = str(item).partition("=")
        if not sep or not key:
            raise ConfigError(f"--data_options takes KEY=VALUE items, got {item!r}")
        out[key.strip()] = yaml.safe_load(text)
    return out


def add_model_args(p: argparse.ArgumentParser) -> None:
    """Model name and the model's own flags (the authors' names; unset flags keep model defaults)."""
    g = p.add_argument_group("model")
    g.add_argument(
        "--model", default=None, type=str.lower, choices=MODELS, help="default swinlstm-d"
    )
    g.add_argument("--memory_size", type=int, default=None, help="LMC memory slots; 0 = no memory")
    g.add_argument("--patch_size", type=int, default=None)
    g.add_argument("--embed_dim", type=int, default=None)
    g.add_argument("--depths", type=int_list, nargs="+", default=None, help="SwinLSTM-B blocks")
    g.add_argument(
        "--depths_down", type=int_list, nargs="+", default=None, help="SwinLSTM-D down path"
    )
    g.add_argument("--depths_up", type=int_list, nargs="+", default=None, help="SwinLSTM-D up path")
    g.add_argument(
        "--heads_number", "--num_heads", dest="heads_number", type=int_list, nargs="+", default=None
    )
    g.add_argument("--window_size", type=int, default=None)
    g.add_argument("--mlp_ratio", type=float, default=None)
    g.add_argument("--drop_rate", type=float, default=None)
    g.add_argument("--attn_drop_rate", type=float, default=None)
    g.add_argument("--drop_path_rate", type=float, default=None)
    g.add_argument(
        "--num_hidden", type=int_list, nargs="+", default=None, help="ConvLSTM hidden channels"
    )
    g.add_argument("--filter_size", type=int, default=None, help="ConvLSTM kernel size")
    g.add_argument(
        "--final_sigmoid", type=str2bool, default=None, help="lmc-convlstm output sigmoid"
    )
    g.add_argument("--checkpointing", type=str2bool, default=None, help="activation checkpointing")
    g.add_argument("--compile", type=str2bool, default=None, help="torch.compile the step")


def img_size_of(args: argparse.Namespace) -> int | tuple[int, int] | None:
    size = getattr(args, "img_size", None)
    if size is None:
        return None
    if isinstance(size, int):
        return size
    if len(size) == 1:
        return size[0]
    if len(size) == 2:
        return (size[0], size[1])
    raise argparse.ArgumentTypeError(f"--img_size takes H or H W, got {size}")


def model_config_from_args(args: argparse.Namespace) -> tuple[str, dict[str, Any]]:
    """``(model name, build_model config)`` from parsed flags; only flags that were set are kept."""
    name = args.model or "swinlstm-d"
    config: dict[str, Any] = {}
    size = img_size_of(args)
    if size is not None:
        config["img_size"] = list(size) if isinstance(size, tuple) else size
    if getattr(args, "img_channel", None) is not None:
        config["in_chans"] = args.img_channel
    if getattr(args, "memory_size", None) is not None:
        config["memory_size"] = args.memory_size
    for flag, key in MODEL_FLAGS.items():
        value = getattr(args, flag, None)
        if value is None:
            continue
        if isinstance(value, list):
            value = flatten(value)
        config[key] = value
    family_swin = name.startswith("swinlstm")
    wrong = (CONV_ONLY if family_swin else SWIN_ONLY) & set(config)
    if wrong:
        flags = sorted(f for f, k in MODEL_FLAGS.items() if k in wrong)
        raise ConfigError(f"--{' --'.join(flags)} do not apply to model {name}")
    return name, config


def load_yaml_config(path: str) -> dict[str, Any]:
    """Read a ``--config`` YAML preset: a flat mapping of flag names to values."""
    import yaml

    path = str(find_preset(path))  # the file, else a packaged preset of that name
    with open(path) as f:
        try:
            data = yaml.safe_load(f) or {}
        except yaml.YAMLError as err:
            raise ConfigError(f"{path}: not valid YAML ({str(err).splitlines()[0]})") from None
    if not isinstance(data, dict):
        raise ConfigError(
            f"{path}: expected a mapping of flag names to values, got {type(data).__name__}"
        )
    return data


def apply_config_defaults(
    parser: argparse.ArgumentParser, argv: list[str] | None
) -> argparse.ArgumentParser:
    """If ``argv`` has ``--config FILE``, make the file's values the parser defaults.

    Flags given on the command line still override the file. Unknown keys are an error that
    names the file and the key.
    """
    pre = argparse.ArgumentParser(add_help=False)
    pre.add_argument("--config", default=None)
    known, _ = pre.parse_known_args(argv)
    if not known.config:
        return parser
    data = load_yaml_config(known.config)
    dests = {a.dest for a in parser._actions}
    unknown = sorted(k for k in data if k not in dests)
    if unknown:
        raise ConfigError(f"{known.config}: unknown keys {', '.join(unknown)}")
    for key, value in data.items():
        if (
            key in ("depths", "depths_down", "depths_up", "heads_number", "num_hidden")
            and value is not None
        ):
            value = [[int(v)] for v in (value if isinstance(value, list) else int_list(str(value)))]
        if key == "img_size" and isinstance(value, int):
            value = [value]
        parser.set_defaults(**{key: value})
    return parser
