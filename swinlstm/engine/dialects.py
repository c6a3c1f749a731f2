"""The SwinLSTM authors' flag dialect (their ``configs.py``) turned into our flat settings.

    python train.py --model SwinLSTM-B --train_data_dir ./data/train-images-idx3-ubyte.gz \\
      --train_batch_size 16 --epochs 2000 --epoch_valid 10 --res_dir ./results

The functions here take a plain dict of flag values (argparse ``dest`` -> value, None: not given)
and return a new dict of our flat keys (:data:`swinlstm.engine.config.FLAT_KEYS`). A run written
in their dialect (any flag of :data:`THEIR_FLAGS` that is not ours too, or ``--model
SwinLSTM-B|SwinLSTM-D`` spelled as they spell it: :class:`AuthorsSpelling`) takes their
``configs.py`` defaults (:data:`DEFAULTS`) for every setting it does not give; any other run keeps
ours (LMC-Memory's ``train.py`` defaults). Each of their flags maps onto one of ours; giving both
with different values is one ConfigError naming the two.

``--epochs`` and ``--epoch_valid`` count epochs of ``--train_samples`` clips: an epoch is
``train_samples // train_batch_size`` iterations (their loader drops the last partial batch).
"""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import Any

from swinlstm.engine.config import (
    FLAT_KEYS,
    OPTION_KEYS,
    RunConfig,
    data_options_of,
    flat_form,
    int_list,
    load_yaml,
    nested_form,
)
from swinlstm.errors import ConfigError, MissingPathError

Flags = dict[str, Any]

AUTHORS_MODELS = ("SwinLSTM-B", "SwinLSTM-D")
MNIST_FILE = "./data/train-images-idx3-ubyte.gz"  # configs.py --train_data_dir default
PRETRAINED = "./Pretrained/trained_model_state_dict"  # their test.py's checkpoint
TEST_FILE = "./data/mnist_test_seq.npy"  # configs.py --test_data_dir default

# configs.py defaults, ours where the flag is shared (None: ours already equals theirs)
DEFAULTS: Flags = {
    "dataset": "movingmnist",
    "model": "swinlstm-d",
    "checkpoint_save_dir": "./results",  # --res_dir
    "seed": 1234,
    "short_len": 10,  # --num_frames_input
    "out_len": 10,  # --num_frames_output
    "img_size": [64],  # --input_img_size / --input_size
    "img_channel": 1,  # --input_channels
    "memory_size": 0,  # no LMC memory in their network
    "batch_size": 16,  # --train_batch_size
    "valid_batch_size": 16,
    "workers": 8,  # --num_workers
    "lr": 1e-4,
}
EPOCHS, EPOCH_VALID = 2000, 10
TRAIN_SAMPLES, VALID_SAMPLES = [0, 10000], [10000, 13000]

# their flag -> our flag of the same meaning (train and test; train only)
SHARED = {
    "num_frames_input": "short_len",
    "num_frames_output": "out_len",
    "input_channels": "img_channel",
    "num_workers": "workers",
}
TRAIN_ONLY = {"train_batch_size": "batch_size", "res_dir": "checkpoint_save_dir"}

_INTS = {"type": int_list, "nargs": "+"}
# their configs.py flags: argparse options and help (a parser skips those it already has)
THEIR_FLAGS: dict[str, tuple[dict[str, Any], str]] = {
    "num_frames_input": ({"type": int}, "= --short_len (10)"),
    "num_frames_output": ({"type": int}, "= --out_len (10)"),
    "input_img_size": ({"type": int}, "= --img_size (64)"),
    "input_size": (_INTS, "canvas: = --img_size (64 64)"),
    "input_channels": ({"type": int}, "= --img_channel (1)"),
    "image_size": (_INTS, "digit size (28 28)"),
    "step_length": ({"type": float}, "digit speed (0.1)"),
    "num_objects": (_INTS, "digits per clip ([2])"),
    "train_samples": (
        _INTS,
        "MNIST digits [A, B) of the training clips, B - A clips an epoch (0 10000; N = 0 N)",
    ),
    "valid_samples": (_INTS, "validation clips: B - A of them (10000 13000)"),
    "train_batch_size": ({"type": int}, "= --batch_size (16)"),
    "test_batch_size": ({"type": int}, "test.py's batch; training ignores it"),
    "num_workers": ({"type": int}, "= --workers (8)"),
    "epochs": ({"type": int}, "epochs of --train_samples clips (2000)"),
    "epoch_valid": ({"type": int}, "validate every N epochs (10)"),
    "log_train": ({"type": int}, "log the loss every N iterations"),
    "log_valid": ({"type": int}, "their per-batch validation log; ignored"),
    "device": ({}, "cuda:0, cuda, cpu: = --accelerator/--devices"),
    "res_dir": ({}, "= --checkpoint_save_dir (./results)"),
    # configs.py is shared by their train.py and test.py: test takes every flag too
    "train_data_dir": ({}, "train.py's digits; test ignores it"),
    "valid_batch_size": ({"type": int}, "train.py's; test ignores it"),
    "lr": ({"type": float}, "train.py's; test ignores it"),
}
# their flags that are not ours too (any of them given: their dialect)
OWN_FLAGS = tuple(f for f in THEIR_FLAGS if f not in ("train_data_dir", "valid_batch_size", "lr"))


class AuthorsSpelling(str):
    """A model name given as the SwinLSTM authors spell it (``SwinLSTM-B``)."""


def model_name(value: str) -> str:
    """A ``--model`` value in lower case, remembering the authors' spelling (their dialect)."""
    if value in AUTHORS_MODELS:
        return AuthorsSpelling(value.lower())
    return value.lower()


def is_swinlstm_run(flags: Flags, shared: tuple[str, ...] = ()) -> bool:
    """True when the flags are written in the SwinLSTM authors' dialect (``shared``: flags of
    theirs that the command has too, which therefore tell nothing)."""
    return isinstance(flags.get("model"), AuthorsSpelling) or any(
        flags.get(f) is not None for f in OWN_FLAGS if f not in shared
    )


def with_preset(flags: Flags) -> Flags:
    """``flags`` with the ``config`` preset file's values filled in where no flag was given (its
    ``data_options`` under those given)."""
    if not flags.get("config"):
        return flags
    preset = flat_form(nested_form(load_yaml(flags["config"]), flags["config"]))
    given = {k: v for k, v in flags.items() if v is not None}
    merged = {**flags, **preset, **given}
    if "data_options" in preset and "data_options" in given:
        merged["data_options"] = {
            **data_options_of(preset["data_options"]),
            **data_options_of(given["data_options"]),
        }
    return merged


def _plain_model(flags: Flags) -> Flags:
    flags = dict(flags)
    if flags.get("model") is not None:
        flags["model"] = str.__str__(flags["model"])  # a plain str (YAML, hyper-parameters)
    return flags


def swinlstm_test_flags(flags: Flags) -> Flags:
    """``test`` flags with the authors' turned into ours: their test.py's checkpoint and test
    file where none is given, ``test_batch_size`` = ``batch_size``, their metrics (protocol
    ``swinlstm``); other runs unchanged. Returns a new dict."""
    dialect = is_swinlstm_run(flags, shared=("device",)) or (
        flags.get("checkpoint") is None and os.path.isfile(PRETRAINED)
    )
    flags = _plain_model(flags)
    if flags.get("checkpoint") is None:
        if not dialect:
            raise ConfigError(
                "--checkpoint_load_file is required (or run where the SwinLSTM authors' "
                f"{PRETRAINED} is)"
            )
        if not os.path.isfile(PRETRAINED):
            raise MissingPathError(
                f"{PRETRAINED} not found (their test.py's checkpoint): pass --checkpoint_load_file"
            )
        flags["checkpoint"] = PRETRAINED
    if not dialect:
        flags["protocol"] = flags.get("protocol") or "default"
        return flags
    _map_flags(flags, {**SHARED, "test_batch_size": "batch_size"})
    if flags.get("res_dir") is not None:
        flags["test_result_dir"] = flags["res_dir"]
    if flags.get("test_data_dir") is None and os.path.isfile(TEST_FILE):
        flags["test_data_dir"] = TEST_FILE
    flags["batch_size"] = flags.get("batch_size") or DEFAULTS["batch_size"]
    if flags.get("workers") is None:
        flags["workers"] = DEFAULTS["workers"]
    flags["protocol"] = flags.get("protocol") or "swinlstm"  # their utils.compute_metrics
    return flags


def swinlstm_train_flags(flags: Flags, preset: Callable[[Flags], Flags] = with_preset) -> Flags:
    """``train`` flags with the authors' turned into ours, then ``preset`` (the ``config`` file),
    then their defaults where still unset (their dialect only). Returns a new dict."""
    dialect = is_swinlstm_run(flags)
    flags = _plain_model(flags)
    if not dialect:
        return preset(flags)
    _map_flags(flags, TRAIN_ONLY | SHARED)
    if flags.get("device") is not None:
        accel, devices = _device(flags["device"])
        _set(flags, "device", "accelerator", accel)
        _set(flags, "device", "devices", devices)
    if flags.get("log_train") is not None and flags["log_train"] < 1:
        raise ConfigError(f"--log_train must be >= 1, got {flags['log_train']}")
    flags = preset(flags)
    for key, value in DEFAULTS.items():
        if flags.get(key) is None:
            flags[key] = value
    if (
        flags.get("train_data_dir") is None
        and flags["dataset"] == "movingmnist"
        and os.path.isfile(MNIST_FILE)
    ):
        flags["train_data_dir"] = MNIST_FILE  # configs.py's default, where it exists
    if flags.get("precision") is None and _on_cuda(flags):
        flags["precision"] = "16-mixed"  # their torch.cuda.amp autocast + GradScaler
    _data_options(flags)
    _iterations(flags)
    return flags


def _flat(value: Any) -> list[int] | None:
    if value is None:
        return None
    out: list[int] = []
    for v in value if isinstance(value, list) else [value]:
        out.extend(v if isinstance(v, list) else [v])
    return out


def _shown(value: Any) -> Any:
    return " ".join(map(str, _flat(value))) if isinstance(value, list) else value


def _set(flags: Flags, theirs: str, ours: str, value: Any) -> None:
    """Our flag ``ours`` := ``value`` (from their ``theirs``); both given differently: an error."""
    given = flags.get(ours)
    if given is not None and str(_shown(given)) != str(_shown(value)):
        raise ConfigError(
            f"--{theirs} {_shown(flags.get(theirs))} and --{ours} {_shown(given)} disagree "
            "(the same setting, their name and ours): give one"
        )
    flags[ours] = value


def _map_flags(flags: Flags, pairs: dict[str, str]) -> None:
    """Each of their flags given onto ours (``pairs``), and their two frame sizes onto
    ``img_size``; a clash with our flag given is an error (:func:`_set`)."""
    for theirs, ours in pairs.items():
        if flags.get(theirs) is not None:
            _set(flags, theirs, ours, flags[theirs])
    for theirs in ("input_img_size", "input_size"):
        if flags.get(theirs) is not None:
            _set(flags, theirs, "img_size", [_square(theirs, flags[theirs])])


def _range(name: str, value: Any) -> tuple[int, int]:
    """``--train_samples A B`` or ``N`` (= 0 N): the digit range [A, B)."""
    v = _flat(value)
    if len(v) == 1:
        v = [0, v[0]]
    if len(v) != 2 or not 0 <= v[0] < v[1]:
        raise ConfigError(f"--{name} takes N or A B with 0 <= A < B, got {' '.join(map(str, v))}")
    return v[0], v[1]


def _square(name: str, value: Any) -> int:
    v = _flat(value)
    if len(v) == 2 and v[0] == v[1]:
        v = v[:1]
    if len(v) != 1 or v[0] < 1:
        raise ConfigError(f"--{name} takes one size or two equal ones (their generator), got {v}")
    return v[0]


def _device(value: str) -> tuple[str, int | str]:
    """Their ``--device`` (torch's spelling) as Lightning's accelerator and devices."""
    text = str(value).strip().lower()
    kind, _, index = text.partition(":")
    if kind == "cpu":
        return "cpu", 1
    if kind in ("cuda", "gpu", "mps"):
        accel = "mps" if kind == "mps" else "gpu"
        if not index:
            return accel, 1
        if index.isdigit():
            return accel, f"{int(index)},"  # Lightning: the GPU with this index
    raise ConfigError(f"--device takes cpu, cuda or cuda:N, got {value!r}")


def _on_cuda(flags: Flags) -> bool:
    if flags.get("accelerator") not in (None, "auto", "gpu", "cuda"):
        return False
    import torch

    return torch.cuda.is_available()


def _data_options(flags: Flags) -> None:
    """Their Moving MNIST generator flags as the dataset's options (``data_options``)."""
    given = data_options_of(flags.get("data_options"))
    theirs: Flags = {}
    if flags.get("image_size") is not None:
        theirs["digit_size"] = _square("image_size", flags["image_size"])
    if flags.get("step_length") is not None:
        theirs["step_length"] = flags["step_length"]
    if flags.get("num_objects") is not None:
        theirs["num_digits"] = _flat(flags["num_objects"])
    a, b = _range("train_samples", flags.get("train_samples") or TRAIN_SAMPLES)
    if a != 0:
        raise ConfigError(
            f"--train_samples {a} {b}: the training clips take the first digits of the file "
            "(give 0 B, or N)"
        )
    if flags.get("train_samples") is not None:
        theirs["train_digits"] = b
    theirs["train_samples"] = b - a
    c, d = _range("valid_samples", flags.get("valid_samples") or VALID_SAMPLES)
    theirs["valid_samples"] = d - c
    if flags["dataset"] != "movingmnist":
        given_theirs = [f for f in ("image_size", "step_length", "num_objects") if flags.get(f)]
        if given_theirs:
            raise ConfigError(
                f"--{' --'.join(given_theirs)} are the Moving MNIST generator's; "
                f"--dataset is {flags['dataset']}"
            )
        flags["data_options"] = given
        return
    for key, value in theirs.items():
        if key in given and given[key] != value:
            raise ConfigError(
                f"--data_options {key}={given[key]} and the authors' flags ({key}={value}) "
                "disagree: give one"
            )
    flags["data_options"] = {**theirs, **given}


def _iterations(flags: Flags) -> None:
    """``epochs`` / ``epoch_valid`` as iterations of ``train_samples // batch_size``."""
    dataset, epochs_given, every_given = (
        flags["dataset"],
        flags.get("epochs"),
        flags.get("epoch_valid"),
    )
    if dataset != "movingmnist" and (epochs_given or every_given):
        raise ConfigError(
            "--epochs and --epoch_valid count epochs of --train_samples Moving MNIST clips; "
            f"for --dataset {dataset} give --iterations and --print_freq"
        )
    if dataset != "movingmnist":
        return
    per_epoch = flags["data_options"]["train_samples"] // flags["batch_size"]
    if per_epoch < 1:
        raise ConfigError(
            f"--train_samples gives {flags['data_options']['train_samples']} clips, fewer than "
            f"one batch of --train_batch_size {flags['batch_size']}"
        )
    epochs = epochs_given if epochs_given is not None else EPOCHS
    every = every_given if every_given is not None else EPOCH_VALID
    if epochs < 1 or every < 1:
        raise ConfigError("--epochs and --epoch_valid must be >= 1")
    for theirs, ours, value in (
        ("epochs", "iterations", epochs * per_epoch),
        ("epoch_valid", "print_freq", every * per_epoch),
    ):
        given = flags.get(ours)
        if given is not None and flags.get(theirs) is not None and given != value:
            raise ConfigError(
                f"--{theirs} {flags[theirs]} ({value} iterations of {per_epoch}) and "
                f"--{ours} {given} disagree: give one"
            )
        if given is None:
            flags[ours] = value
    print(
        f"SwinLSTM authors' flags: {flags['iterations'] // per_epoch} epochs x {per_epoch} "
        f"iterations = {flags['iterations']} iterations, validation every {flags['print_freq']} "
        f"iterations, outputs in {flags['checkpoint_save_dir']}",
        flush=True,
    )


def train_config(flags: Flags) -> RunConfig:
    """The resolved :class:`~swinlstm.engine.config.RunConfig` of ``train`` flags (argparse
    ``dest`` -> value): their dialect translated, the preset applied, unknown keys dropped."""
    from swinlstm.engine.train import resolve_config

    flags = swinlstm_train_flags(flags)
    known = {k: v for k, v in flags.items() if k in FLAT_KEYS or k in OPTION_KEYS}
    return resolve_config(RunConfig.from_dict(known))
