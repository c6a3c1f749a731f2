"""The SwinLSTM authors' training flags (their ``configs.py``), accepted by ``train`` as they mean.

    python train.py --model SwinLSTM-B --train_data_dir ./data/train-images-idx3-ubyte.gz \\
      --train_batch_size 16 --epochs 2000 --epoch_valid 10 --res_dir ./results

A run written in their dialect (any flag below, or ``--model SwinLSTM-B|SwinLSTM-D`` spelled as
they spell it) takes their ``configs.py`` defaults (:data:`DEFAULTS`) for every setting it does not
give; any other run keeps ours (LMC-Memory's ``train.py`` defaults). Each of their flags maps onto
one of ours; giving both with different values is one error naming the two.

``--epochs`` and ``--epoch_valid`` count epochs of ``--train_samples`` clips: an epoch is
``train_samples // train_batch_size`` iterations (their loader drops the last partial batch).
"""

from __future__ import annotations

import argparse
import os
from typing import Any

from swinlstm.cli.common import int_list
from swinlstm.errors import ConfigError, MissingPathError

AUTHORS_MODELS = ("SwinLSTM-B", "SwinLSTM-D")
MNIST_FILE = "./data/train-images-idx3-ubyte.gz"  # configs.py --train_data_dir default

# configs.py defaults, ours where the flag is shared (None: ours already equals theirs)
DEFAULTS: dict[str, Any] = {
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
# their configs.py flags: argparse options and help (the group skips those ours already has)
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


def _model_name(value: str) -> str:
    """``--model``'s type: lower case, remembering the authors' spelling (their dialect)."""
    if value in AUTHORS_MODELS:
        return AuthorsSpelling(value.lower())
    return value.lower()


class AuthorsSpelling(str):
    """A model name given as the SwinLSTM authors spell it (``SwinLSTM-B``)."""


class _Group:
    """An argument group that skips flags its parser already has (train's --valid_batch_size
    and test's --device are theirs too, with the same meaning)."""

    def __init__(self, p: argparse.ArgumentParser, title: str) -> None:
        self.p, self.g = p, p.add_argument_group(title)

    def add_argument(self, flag: str, **kw) -> None:
        if flag not in self.p._option_string_actions:
            self.g.add_argument(flag, **kw)


def add_swinlstm_train_args(p: argparse.ArgumentParser) -> None:
    """Their ``configs.py`` flags, in a group of their own (``--help`` lists them by their names)."""
    for action in p._actions:
        if action.dest == "model":
            action.type = _model_name
            action.help = f"{action.help}; their SwinLSTM-B / SwinLSTM-D too"
    g = _Group(
        p,
        "the SwinLSTM authors' flags (their configs.py; any of them, or --model SwinLSTM-B, "
        "selects their defaults)",
    )
    for name, (cli, help) in THEIR_FLAGS.items():
        g.add_argument(f"--{name}", default=None, help=help, **cli)


PRETRAINED = "./Pretrained/trained_model_state_dict"  # their test.py's checkpoint
TEST_FILE = "./data/mnist_test_seq.npy"  # configs.py --test_data_dir default


def add_swinlstm_test_args(p: argparse.ArgumentParser) -> None:
    """``test``: their configs.py flags too (their test.py reads the same parser), and
    ``--checkpoint_load_file`` optional: their test.py reads ``./Pretrained/...``."""
    add_swinlstm_train_args(p)
    for action in p._actions:
        if action.dest == "checkpoint":
            action.required = False
            action.help = f"{action.help} (default: {PRETRAINED}, as the SwinLSTM authors' test.py)"
        if action.dest == "protocol":
            action.default = None  # "default", or "swinlstm" for their commands


def resolve_swinlstm_test_flags(args: argparse.Namespace) -> argparse.Namespace:
    """``test`` args with the authors' flags turned into ours: their test.py's checkpoint and
    test file where none is given, ``--test_batch_size`` = ``--batch_size``, their metrics
    (``--protocol swinlstm``); other runs unchanged."""
    args = argparse.Namespace(**vars(args))
    dialect = is_swinlstm_run(args, shared=("device",)) or (
        args.checkpoint is None and os.path.isfile(PRETRAINED)
    )
    if args.model is not None:
        args.model = str.__str__(args.model)
    if args.checkpoint is None:
        if not dialect:
            raise ConfigError(
                "--checkpoint_load_file is required (or run where the SwinLSTM authors' "
                f"{PRETRAINED} is)"
            )
        if not os.path.isfile(PRETRAINED):
            raise MissingPathError(
                f"{PRETRAINED} not found (their test.py's checkpoint): pass --checkpoint_load_file"
            )
        args.checkpoint = PRETRAINED
    if not dialect:
        args.protocol = args.protocol or "default"
        return args
    _map_flags(args, {**SHARED, "test_batch_size": "batch_size"})
    if args.res_dir is not None:
        args.test_result_dir = args.res_dir
    if args.test_data_dir is None and os.path.isfile(TEST_FILE):
        args.test_data_dir = TEST_FILE
    args.batch_size = args.batch_size or DEFAULTS["batch_size"]
    args.workers = DEFAULTS["workers"] if args.workers is None else args.workers
    args.protocol = args.protocol or "swinlstm"  # their utils.compute_metrics
    return args


# their flags that are not ours too (any of them given: their dialect)
OWN_FLAGS = tuple(f for f in THEIR_FLAGS if f not in ("train_data_dir", "valid_batch_size", "lr"))


def is_swinlstm_run(args: argparse.Namespace, shared: tuple[str, ...] = ()) -> bool:
    """True when the command is written in the SwinLSTM authors' dialect (``shared``: flags of
    theirs that the command has too, which therefore tell nothing)."""
    return isinstance(getattr(args, "model", None), AuthorsSpelling) or any(
        getattr(args, f, None) is not None for f in OWN_FLAGS if f not in shared
    )


def _flat(value: Any) -> list[int] | None:
    if value is None:
        return None
    out: list[int] = []
    for v in value if isinstance(value, list) else [value]:
        out.extend(v if isinstance(v, list) else [v])
    return out


def _set(args: argparse.Namespace, theirs: str, ours: str, value: Any) -> None:
    """Our flag ``ours`` := ``value`` (from their ``theirs``); both given differently: an error."""
    given = getattr(args, ours, None)
    if given is not None and str(_shown(given)) != str(_shown(value)):
        raise ConfigError(
            f"--{theirs} {_shown(getattr(args, theirs))} and --{ours} {_shown(given)} disagree "
            "(the same setting, their name and ours): give one"
        )
    setattr(args, ours, value)


def _map_flags(args: argparse.Namespace, pairs: dict[str, str]) -> None:
    """Each of their flags given onto ours (``pairs``), and their two frame sizes onto
    ``--img_size``; a clash with our flag given is an error (:func:`_set`)."""
    for theirs, ours in pairs.items():
        if getattr(args, theirs) is not None:
            _set(args, theirs, ours, getattr(args, theirs))
    for theirs in ("input_img_size", "input_size"):
        if getattr(args, theirs) is not None:
            _set(args, theirs, "img_size", [_square(theirs, getattr(args, theirs))])


def _shown(value: Any) -> Any:
    return " ".join(map(str, _flat(value))) if isinstance(value, list) else value


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


def resolve_swinlstm_flags(args: argparse.Namespace, with_config) -> argparse.Namespace:
    """``args`` with the authors' flags turned into ours, then ``with_config`` (the preset), then
    their defaults where still unset (their dialect only). Returns a new namespace."""
    args = argparse.Namespace(**vars(args))
    dialect = is_swinlstm_run(args)
    if args.model is not None:
        args.model = str.__str__(args.model)  # a plain str (YAML, hyper-parameters)
    if not dialect:
        return with_config(args)
    _map_flags(args, TRAIN_ONLY | SHARED)
    if args.device is not None:
        accel, devices = _device(args.device)
        _set(args, "device", "accelerator", accel)
        _set(args, "device", "devices", devices)
    if args.log_train is not None and args.log_train < 1:
        raise ConfigError(f"--log_train must be >= 1, got {args.log_train}")
    args = with_config(args)
    for key, value in DEFAULTS.items():
        if getattr(args, key, None) is None:
            setattr(args, key, value)
    if args.train_data_dir is None and args.dataset == "movingmnist" and os.path.isfile(MNIST_FILE):
        args.train_data_dir = MNIST_FILE  # configs.py's default, where it exists
    if args.precision is None and _on_cuda(args):
        args.precision = "16-mixed"  # their torch.cuda.amp autocast + GradScaler
    _data_options(args)
    _iterations(args)
    return args


def _on_cuda(args: argparse.Namespace) -> bool:
    if args.accelerator not in (None, "auto", "gpu", "cuda"):
        return False
    import torch

    return torch.cuda.is_available()


def _data_options(args: argparse.Namespace) -> None:
    """Their Moving MNIST generator flags as the dataset's options (``--data_options``)."""
    from swinlstm.cli.train import data_options_of

    given = data_options_of(args.data_options)
    theirs: dict[str, Any] = {}
    if args.image_size is not None:
        theirs["digit_size"] = _square("image_size", args.image_size)
    if args.step_length is not None:
        theirs["step_length"] = args.step_length
    if args.num_objects is not None:
        theirs["num_digits"] = _flat(args.num_objects)
    a, b = _range("train_samples", args.train_samples or TRAIN_SAMPLES)
    if a != 0:
        raise ConfigError(
            f"--train_samples {a} {b}: the training clips take the first digits of the file "
            "(give 0 B, or N)"
        )
    if args.train_samples is not None:
        theirs["train_digits"] = b
    theirs["train_samples"] = b - a
    c, d = _range("valid_samples", args.valid_samples or VALID_SAMPLES)
    theirs["valid_samples"] = d - c
    if args.dataset != "movingmnist":
        given_theirs = [f for f in ("image_size", "step_length", "num_objects") if getattr(args, f)]
        if given_theirs:
            raise ConfigError(
                f"--{' --'.join(given_theirs)} are the Moving MNIST generator's; "
                f"--dataset is {args.dataset}"
            )
        args.data_options = given
        return
    for key, value in theirs.items():
        if key in given and given[key] != value:
            raise ConfigError(
                f"--data_options {key}={given[key]} and the authors' flags ({key}={value}) "
                "disagree: give one"
            )
    args.data_options = {**theirs, **given}


def _iterations(args: argparse.Namespace) -> None:
    """``--epochs`` / ``--epoch_valid`` as iterations of ``train_samples // batch_size``."""
    if args.dataset != "movingmnist" and (args.epochs or args.epoch_valid):
        raise ConfigError(
            "--epochs and --epoch_valid count epochs of --train_samples Moving MNIST clips; "
            f"for --dataset {args.dataset} give --iterations and --print_freq"
        )
    if args.dataset != "movingmnist":
        return
    per_epoch = args.data_options["train_samples"] // args.batch_size
    if per_epoch < 1:
        raise ConfigError(
            f"--train_samples gives {args.data_options['train_samples']} clips, fewer than one "
            f"batch of --train_batch_size {args.batch_size}"
        )
    epochs = args.epochs if args.epochs is not None else EPOCHS
    every = args.epoch_valid if args.epoch_valid is not None else EPOCH_VALID
    if epochs < 1 or every < 1:
        raise ConfigError("--epochs and --epoch_valid must be >= 1")
    for theirs, ours, value in (
        ("epochs", "iterations", epochs * per_epoch),
        ("epoch_valid", "print_freq", every * per_epoch),
    ):
        given = getattr(args, ours, None)
        if given is not None and getattr(args, theirs) is not None and given != value:
            raise ConfigError(
                f"--{theirs} {getattr(args, theirs)} ({value} iterations of {per_epoch}) and "
                f"--{ours} {given} disagree: give one"
            )
        if given is None:
            setattr(args, ours, value)
    print(
        f"SwinLSTM authors' flags: {args.iterations // per_epoch} epochs x {per_epoch} iterations "
        f"= {args.iterations} iterations, validation every {args.print_freq} iterations, "
        f"outputs in {args.checkpoint_save_dir}",
        flush=True,
    )
