"""Saving and loading models, whatever file a user hands us.

Formats recognised by :func:`load_model`:

* ``model.safetensors`` + ``model.json`` (``{"model": name, "config": {...}}``) written by
  :func:`save_model`: loads without Lightning or pickle;
* our Lightning ``.ckpt`` (``state_dict`` with ``model.`` keys, ``hyper_parameters`` holding
  ``model_name`` and ``model_config``), read with ``weights_only=True``;
* a directory holding either of those (``model.safetensors`` first, then ``best.ckpt``, ``last.ckpt``);
* an authors' published file (SwinLSTM ``trained_model_state_dict``, LMC-Memory ``.pt``): a plain
  state dict; the network is built from the ``name`` and ``config`` the caller passes (CLI flags).

:func:`read_checkpoint` is the one place that tells these kinds apart.
:func:`load_checkpoint_model` is what ``test``, ``predict`` and ``export`` load: ``zoo:NAME`` too,
the authors' files recognised by their keys, our checkpoints checked against the flags.
Writing goes through :mod:`swinlstm.files` (:func:`write_files`: all or none).
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from torch import nn

from swinlstm import files
from swinlstm.engine.config import flat_form, is_nested
from swinlstm.engine.errors import CheckpointWriteError
from swinlstm.errors import ConfigError, MissingPathError
from swinlstm.files import load_safetensors, load_torch_weights, read_json
from swinlstm.files import temp_path as temp_path  # engine/train.py's names for them
from swinlstm.files import write_failure as write_failure
from swinlstm.models import build_model, load_official
from swinlstm.models.official import as_state_dict, read_state_dict

MODEL_FILE = "model.safetensors"
CONFIG_FILE = "model.json"
RUN_CONFIG = "config.yaml"
# what a training run records of its data (``data`` in model.json and in the .ckpt's
# hyper_parameters, besides ``data_options``)
RECORDED_DATA = ("dataset", "img_size", "img_channel", "short_len", "out_len", "long_len")


def atomic_write(path: str | os.PathLike, write_fn, mkdir: bool = True) -> None:
    """:func:`swinlstm.files.atomic_write`, failures raised as :class:`CheckpointWriteError`
    (a training run stops on them)."""
    with _as_checkpoint_error():
        files.atomic_write(path, write_fn, mkdir=mkdir)


def write_files(files_: list[tuple[Path, Callable[[str], None]]]) -> None:
    """:func:`swinlstm.files.write_files` (all the files change or none does), failures raised
    as :class:`CheckpointWriteError` naming the file and the reason."""
    with _as_checkpoint_error():
        files.write_files(files_)


@contextmanager
def _as_checkpoint_error():
    try:
        yield
    except files.FileWriteError as err:
        raise CheckpointWriteError(str(err)) from None


def save_torch(obj: Any, path: str) -> None:
    """``torch.save`` through a file object, flushed to disk (write errors come as OSError)."""
    import torch

    with open(path, "wb") as f:
        torch.save(obj, f)
        f.flush()
        os.fsync(f.fileno())


def _jsonable(value: Any) -> Any:
    if isinstance(value, tuple):
        return [_jsonable(v) for v in value]
    if isinstance(value, list):
        return [_jsonable(v) for v in value]
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    return value


def model_meta(model: nn.Module) -> dict[str, Any]:
    """``{"model": name, "config": {...}}`` of a model made by ``build_model``."""
    name = getattr(model, "model_name", None)
    if name is None:
        raise ConfigError(
            "the model was not made by swinlstm.models.build_model: no model_name to save"
        )
    return {"model": name, "config": _jsonable(getattr(model, "model_config", {}))}


def model_files(
    model: nn.Module, directory: str | os.PathLike, extra: dict | None = None
) -> list[tuple[Path, Callable[[str], None]]]:
    """``(path, write_fn)`` of ``model.safetensors`` and ``model.json`` for :func:`write_files`."""
    from safetensors.torch import save as to_bytes

    directory = Path(directory)
    meta = model_meta(model)
    if extra:
        meta.update(_jsonable(extra))
    sd = {k: v.detach().contiguous().cpu() for k, v in model.state_dict().items()}
    text = json.dumps(meta, indent=2)
    return [
        (directory / MODEL_FILE, lambda p: Path(p).write_bytes(to_bytes(sd))),
        (directory / CONFIG_FILE, lambda p: Path(p).write_text(text)),
    ]


def save_model(model: nn.Module, directory: str | os.PathLike, extra: dict | None = None) -> Path:
    """Write ``model.safetensors`` and ``model.json`` into ``directory`` (both or neither)."""
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    write_files(model_files(model, directory, extra))
    return directory / MODEL_FILE


#: ``torch.load(path, weights_only=True)``, one line naming a bad file (engine/train.py's name)
read_weights_only = load_torch_weights


def read_checkpoint(path: Path) -> tuple[str, Any]:
    """What checkpoint file ``path`` is, and what it holds (the one place that tells them apart):

    * ``("safetensors", None)``: our ``model.safetensors`` (its ``model.json`` beside it);
    * ``("ckpt", checkpoint)``: our Lightning ``.ckpt`` (``hyper_parameters`` name the model);
    * ``("official", state dict)``: any other file, an authors' plain state dict.

    ValueError (one line) naming the file when it is truncated, corrupt or holds no state dict.
    """
    if path.suffix == ".safetensors":
        return "safetensors", None
    if path.suffix != ".ckpt":
        return "official", read_state_dict(path)
    ckpt = load_torch_weights(path)
    hparams = ckpt.get("hyper_parameters", {}) if isinstance(ckpt, dict) else {}
    if isinstance(hparams, dict) and "model_name" in hparams:
        return "ckpt", ckpt
    return "official", as_state_dict(ckpt, path)


def _resolve(path: Path) -> Path:
    if path.is_dir():
        for name in (MODEL_FILE, "best.ckpt", "last.ckpt"):
            if (path / name).is_file():
                return path / name
        raise MissingPathError(f"{path}: holds no {MODEL_FILE}, best.ckpt or last.ckpt")
    if not path.is_file():
        raise MissingPathError(f"checkpoint not found: {path}")
    return path


def _build(name: str, config: dict | None, eager: bool) -> nn.Module:
    """``build_model(name, **config)``; ``eager`` builds it with a recorded ``compile`` off."""
    config = dict(config or {})
    if eager and config.get("compile"):
        config["compile"] = False
    return build_model(name, **config)


def load_model(
    path: str | os.PathLike,
    name: str | None = None,
    config: dict | None = None,
    eager: bool = False,
) -> tuple[nn.Module, dict[str, Any]]:
    """Load a model from any supported checkpoint; returns ``(model in eval mode, info)``.

    ``info`` has ``format`` (``safetensors``, ``ckpt`` or ``official``), ``model``, ``config`` (as
    recorded) and, for our checkpoints, the ``iteration`` reached and ``data``: what the run
    trained on (``RECORDED_DATA`` and ``data_options``, from model.json / the .ckpt, else the
    run's config.yaml beside the file; {} if none). ``name``/``config`` are needed only for the
    authors' files, which do not record their network's configuration.
    ``eager=True`` builds the network without ``torch.compile`` even when its configuration
    records ``compile: true`` (a run trained with ``--compile True``): exporters cannot trace a
    compiled function, and evaluation would pay the compile time for one pass.
    """
    path = _resolve(Path(path))
    kind, contents = read_checkpoint(path)
    if kind == "safetensors":
        meta_path = path.with_name(CONFIG_FILE)
        if not meta_path.is_file():
            raise MissingPathError(
                f"{path}: needs {meta_path.name} beside it (model name and config)"
            )
        meta = read_json(meta_path)
        if not (
            isinstance(meta, dict)
            and isinstance(meta.get("model"), str)
            and isinstance(meta.get("config", {}), dict)
        ):
            raise ConfigError(
                f'{meta_path}: expected {{"model": name, "config": {{...}}}}, as save_model writes'
            )
        weights = load_safetensors(path)
        model = _build(meta["model"], meta.get("config"), eager)
        _load_exact(model, weights, path)
        info = {"format": "safetensors", **meta}
    elif kind == "ckpt":
        hparams = contents["hyper_parameters"]
        model = _build(hparams["model_name"], hparams.get("model_config"), eager)
        sd = {
            k[len("model.") :]: v
            for k, v in contents["state_dict"].items()
            if k.startswith("model.")
        }
        _load_exact(model, sd, path)
        info = {
            "format": "ckpt",
            "model": hparams["model_name"],
            "config": hparams.get("model_config", {}),
            "iteration": int(contents.get("iteration", contents.get("global_step", 0))),
            "data": hparams.get("data") or {},
        }
    else:
        if name is None:
            raise ConfigError(
                f"{path} is a plain state dict (an authors' checkpoint?): pass --model and the "
                "model flags it was trained with"
            )
        model = _build(name, config, eager)
        load_official(model, contents)
        info = {"format": "official", "model": name, "config": dict(config or {})}
    if info["format"] != "official" and not info.get("data"):
        info["data"] = run_config_data(path.parent / RUN_CONFIG)
    model.eval()
    return model, info


def run_config_data(path: Path) -> dict[str, Any]:
    """The data entries of a run's ``config.yaml`` (runs written before checkpoints recorded
    them); {} when there is no readable file."""
    import yaml

    try:
        config = yaml.safe_load(path.read_text()) if path.is_file() else None
    except (OSError, yaml.YAMLError):
        return {}
    if not isinstance(config, dict):
        return {}
    config = flat_form(config) if is_nested(config) else config  # nested: a RunConfig
    keys = (*RECORDED_DATA, "data_options")
    return {k: config[k] for k in keys if config.get(k) is not None}


def _load_exact(model: nn.Module, sd: dict, path: Path) -> None:
    from swinlstm.models.official import describe_mismatch

    problem = describe_mismatch(model, sd)
    if problem:
        raise ConfigError(f"{path} does not fit the model it names: {problem}")
    model.load_state_dict(sd, strict=False)


def official_keys(path: Path) -> list[str] | None:
    """The keys of ``path`` when it is an authors' plain state dict, else None (our formats)."""
    if path.is_dir():
        return None
    kind, contents = read_checkpoint(path)
    return list(contents) if kind == "official" else None


def load_checkpoint_model(
    checkpoint: str | os.PathLike,
    flags_config: Callable[[str | None], tuple[str, dict[str, Any]]],
    model: str | None = None,
    dataset: str | None = None,
    img_size: int | tuple[int, int] | None = None,
    img_channel: int | None = None,
) -> tuple[nn.Module, dict[str, Any]]:
    """The model a ``test``/``predict``/``export`` names (eval mode) and ``load_model``'s info.

    ``checkpoint`` is anything :func:`load_model` reads (``zoo:NAME``:
    :func:`swinlstm.zoo.load_checkpoint_model`). Our checkpoints record
    their model: ``model`` (the name asked for), ``img_size`` and ``img_channel`` are then only
    checked against them, so that a checkpoint of another model or frame size is refused with
    one line rather than failing deep inside a forward pass. The authors' files record no
    configuration: the family is recognised from the key names
    (:func:`swinlstm.models.official.official_family`) unless ``model`` names it, and the network
    is built from ``flags_config(family)`` -> ``(name, build config)`` (the command's model
    flags, checked against that family), for ``dataset``'s own frame size and channels where the
    flags are silent. ``info["checkpoint"]`` is the file or folder read.

    The model is built without ``torch.compile`` whatever its checkpoint records (``eager``):
    these commands run it once, and exporters cannot trace compiled code.
    """
    from swinlstm.models.official import authors_config, official_family

    path = Path(checkpoint)
    if not path.exists():
        raise MissingPathError(f"checkpoint not found: {path}")
    keys = official_keys(path)
    family = None
    if keys is not None and model is None:
        family = official_family(keys)
        if family is None:
            raise ConfigError(
                f"{path}: a plain state dict of no known model; pass --model and its flags"
            )
    name, config = flags_config(model or family)
    config = {**authors_config(name, dataset), **config}
    if keys is not None and dataset:  # the dataset's own frames
        from swinlstm.data import native_frame

        size, channels = native_frame(dataset)
        config.setdefault("img_size", list(size) if isinstance(size, tuple) else size)
        config.setdefault("in_chans", channels)
    if not name.startswith("lmc"):
        config.pop("memory_size", None)  # the authors' commands pass it for every model
    try:
        built, info = load_model(path, name, config, eager=True)
    except ValueError as err:
        if keys is None:
            raise
        raise ConfigError(
            f"{path}: {err} (an authors' file records no configuration: the {name} network is "
            "built from the flags; pass those it was trained with)"
        ) from None
    if keys is None:
        check_flags_fit(path, built, info, model, img_size, img_channel)
    return built, {**info, "checkpoint": str(checkpoint)}


def check_flags_fit(
    path: Path,
    model: nn.Module,
    info: dict[str, Any],
    name: str | None = None,
    img_size: int | tuple[int, int] | None = None,
    img_channel: int | None = None,
) -> None:
    """Refuse a model ``name``, frame size or channel count that contradicts what the checkpoint
    at ``path`` records (ConfigError, one line)."""
    from swinlstm.helpers import as_hw

    if name is not None and name != info["model"]:
        raise ConfigError(f"{path} holds a {info['model']} model, not the --model {name} asked")
    if img_size is not None:
        size = as_hw(img_size, "--img_size")
        if size != tuple(model.img_size):
            raise ConfigError(
                f"{path} was trained on {model.img_size[0]}x{model.img_size[1]} frames, "
                f"but --img_size is {size[0]}x{size[1]}"
            )
    if img_channel is not None and img_channel != model.in_chans:
        raise ConfigError(
            f"{path} was trained on {model.in_chans}-channel frames, but --img_channel is "
            f"{img_channel}"
        )
