"""Datasets behind one contract: ``build_datasets(name, ...) -> Splits(train, valid, test, info)``.

Items are ``(inputs, targets)`` float32 tensors (short_len, C, H, W) and (out_len, C, H, W) in
[0, 1], targets being frames [short_len, short_len + out_len) of the clip; training items of memory
models (``long_len > 0``) are ``(inputs, targets, long)``. See :mod:`swinlstm.data.common` and
docs/datasets.md. Each dataset module exposes ``build(req: SplitRequest, **options) -> Splits`` (the paths, clip
lengths, checked frame size and channels, seed: :class:`~swinlstm.data.common.SplitRequest`), its
default frames ``IMG_SIZE`` / ``IMG_CHANNEL`` (and ``CHANNELS`` when not 1 or 3), and is imported
only when asked for.
"""

from __future__ import annotations

import importlib
import inspect
from collections.abc import Sequence

from swinlstm.data.common import (
    ClipSpec,
    SplitRequest,
    Splits,
    check_channels,
    parse_img_size,
)
from swinlstm.errors import ConfigError

# dataset name -> module that owns it
DATASETS: dict[str, str] = {
    "movingmnist": "swinlstm.data.moving_mnist",
    "kth": "swinlstm.data.kth",
    "taxibj": "swinlstm.data.taxibj",
    "human36m": "swinlstm.data.human36m",
    "custom": "swinlstm.data.custom",
}

__all__ = [
    "DATASETS",
    "ClipSpec",
    "Splits",
    "build_datasets",
    "dataset_key",
    "held_out_options",
    "native_frame",
]

_ALIASES = {
    "mnist": "movingmnist",
    "mmnist": "movingmnist",
    "human": "human36m",
    "h36m": "human36m",
}


def dataset_key(name: str) -> str:
    """The registry key of ``name`` (``"Moving-MNIST"``, ``"h36m"`` ...); ValueError if unknown."""
    key = name.lower().replace("-", "").replace("_", "")
    key = _ALIASES.get(key, key)
    if key not in DATASETS:
        raise ConfigError(f"unknown dataset {name!r}; choose one of {', '.join(DATASETS)}")
    return key


def _module(name: str):
    return importlib.import_module(DATASETS[dataset_key(name)])


def native_frame(name: str) -> tuple[int | tuple[int, int], int]:
    """``(img_size, img_channel)`` a dataset gives when not told otherwise (Moving MNIST 64 / 1,
    KTH 128 / 1, TaxiBJ 32 / 2, Human3.6M 128 / 3, custom 64 / 1).

    The dataset module's ``IMG_SIZE`` and ``IMG_CHANNEL``: the one place they are written.
    """
    module = _module(name)
    return module.IMG_SIZE, module.IMG_CHANNEL


def held_out_options(name: str, options: dict | None) -> dict:
    """``options`` without those that shape only the training / validation splits (a dataset
    module lists them in ``TRAIN_ONLY_OPTIONS``): what a test set of the same data takes."""
    module = _module(name)
    drop = set(getattr(module, "TRAIN_ONLY_OPTIONS", ()))
    return {k: v for k, v in (options or {}).items() if k not in drop}


def build_datasets(
    name: str,
    train_dir=None,
    valid_dir=None,
    test_dir=None,
    short_len: int = 10,
    out_len: int = 10,
    long_len: int = 0,
    img_size: int | Sequence[int] | None = None,
    img_channel: int | None = None,
    seed: int = 1234,
    **options,
) -> Splits:
    """Train / valid / test datasets of ``name`` (a split without a source is None).

    ``train_dir`` etc. are the CLI's ``--train_data_dir`` etc.: a file or folder; ``options`` are
    the dataset's own (e.g. ``num_digits=[2]``, ``train_samples=10000`` for Moving MNIST). An
    unknown name or option is a ValueError listing what is accepted. ``img_size`` and
    ``img_channel`` default to the dataset's own (Moving MNIST 64 / 1, KTH 128 / 1, TaxiBJ 32 / 2,
    Human3.6M 128 / 3, custom 64 / 1).
    """
    key = dataset_key(name)
    module = _module(key)
    accepted = [
        p.name
        for p in inspect.signature(module.build).parameters.values()
        if p.kind is p.KEYWORD_ONLY
    ]
    unknown = sorted(set(options) - set(accepted))
    if unknown:
        raise ConfigError(f"dataset {key!r} does not take option(s) {unknown}; it takes {accepted}")
    spec = ClipSpec(int(short_len), int(out_len), int(long_len))
    size = parse_img_size(module.IMG_SIZE if img_size is None else img_size)
    channels = module.IMG_CHANNEL if img_channel is None else int(img_channel)
    channels = check_channels(channels, getattr(module, "CHANNELS", (1, 3)))
    req = SplitRequest(train_dir, valid_dir, test_dir, spec, size, channels, int(seed))
    splits = module.build(req, **options)
    splits.info.setdefault("dataset", key)
    splits.info.setdefault("source", None)  # what the training split reads (None: no train split)
    splits.info.update(short_len=spec.short_len, out_len=spec.out_len, long_len=spec.long_len)
    splits.info["samples"] = {
        split: (None if ds is None else len(ds))
        for split, ds in (("train", splits.train), ("valid", splits.valid), ("test", splits.test))
    }
    return splits
