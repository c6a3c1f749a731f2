"""Saving and loading models, whatever file a user hands us.

Formats recognised by :func:`load_model`:

* ``model.safetensors`` + ``model.json`` (``{"model": name, "config": {...}}``) written by
  :func:`save_model`: loads without Lightning or pickle;
* our Lightning ``.ckpt`` (``state_dict`` with ``model.`` keys, ``hyper_parameters`` holding
  ``model_name`` and ``model_config``), read with ``weights_only=True``;
* a directory holding either of those (``model.safetensors`` first, then ``best.ckpt``, ``last.ckpt``);
* an authors' published file (SwinLSTM ``trained_model_state_dict``, LMC-Memory ``.pt``): a plain
  state dict; the network is built from the ``name`` and ``config`` the caller passes (CLI flags).
"""

from __future__ import annotations

import errno
import json
import os
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

from torch import nn

from swinlstm.engine.config import flat_form, is_nested
from swinlstm.engine.errors import CheckpointWriteError
from swinlstm.errors import ConfigError, MissingPathError
from swinlstm.files import load_safetensors, load_torch_weights, read_json
from swinlstm.models import build_model, load_official
from swinlstm.models.official import read_state_dict
from swinlstm.umask import apply_umask

MODEL_FILE = "model.safetensors"
CONFIG_FILE = "model.json"
RUN_CONFIG = "config.yaml"
# what a training run records of its data (``data`` in model.json and in the .ckpt's
# hyper_parameters, besides ``data_options``)
RECORDED_DATA = ("dataset", "img_size", "img_channel", "short_len", "out_len", "long_len")


def atomic_write(path: str | os.PathLike, write_fn, mkdir: bool = True) -> None:
    """Call ``write_fn(tmp_path)``, then rename onto ``path``: a kill never leaves half a file.

    The file gets the umask's mode (0644 under umask 022) whatever mode ``write_fn`` created.
    ``mkdir=False``: a missing folder is an error (a run's folder that vanished is not remade).
    Failures raise :class:`CheckpointWriteError` (see :func:`write_files`).
    """
    path = Path(path)
    if mkdir:
        path.parent.mkdir(parents=True, exist_ok=True)
    write_files([(path, write_fn)])


def write_files(files: list[tuple[Path, Callable[[str], None]]]) -> None:
    """Write each ``(path, write_fn)`` to a temporary file beside it, then rename them all.

    All the files change or none does: the renames start only when every temporary file is
    complete. An ``OSError`` (disk full, read-only, folder removed) raises
    :class:`CheckpointWriteError` naming the file and the reason; the files from before and no
    temporary file are left.
    """
    temps: list[Path] = []
    try:
        for path, write_fn in files:
            path = Path(path)
            tmp = temp_path(path)
            temps.append(tmp)
            try:
                write_fn(str(tmp))
                apply_umask(tmp)
            except OSError as err:
                raise CheckpointWriteError(
                    f"cannot write {path}: {write_failure(err, path)}; "
                    "the files from before are unchanged"
                ) from None
        for (path, _), tmp in zip(files, temps):
            try:
                os.replace(tmp, path)
            except OSError as err:
                raise CheckpointWriteError(
                    f"cannot write {path}: {write_failure(err, Path(path))}"
                ) from None
    finally:
        for tmp in temps:
            try:
                tmp.unlink(missing_ok=True)
            except OSError:
                pass


def temp_path(path: str | os.PathLike) -> Path:
    """The temporary file :func:`write_files` writes before renaming onto ``path``."""
    path = Path(path)
    return path.with_name(f".{path.name}.tmp-{os.getpid()}")


def write_failure(err: OSError, path: Path) -> str:
    """Why writing ``path`` failed, in words a user can act on."""
    if not path.parent.is_dir():
        gone = path.parent
        while gone.parent != gone and not gone.parent.is_dir():
            gone = gone.parent
        return f"the folder {gone} no longer exists"
    if err.errno == errno.ENOSPC:
        try:
            free = shutil.disk_usage(path.parent).free
        except OSError:
            return "no space left on device"
        return f"no space left on device ({free / 2**20:.1f} MiB free)"
    if err.errno == errno.EROFS:
        return "read-only file system"
    if err.errno in (errno.EACCES, errno.EPERM):
        return "permission denied"
    return err.strerror or str(err)


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


def read_weights_only(path: Path) -> Any:
    """``torch.load(path, weights_only=True)``; ValueError (one line) when the file is truncated
    or corrupt, or needs arbitrary unpickling (:func:`swinlstm.files.load_torch_weights`)."""
    return load_torch_weights(path)


def _load_ckpt(path: Path) -> tuple[dict, dict]:
    ckpt = read_weights_only(path)
    return ckpt, ckpt.get("hyper_parameters", {}) if isinstance(ckpt, dict) else {}


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
    if path.suffix == ".safetensors":
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
    else:
        ckpt, hparams = _load_ckpt(path) if path.suffix == ".ckpt" else (None, {})
        if ckpt is not None and isinstance(ckpt, dict) and "model_name" in hparams:
            model = _build(hparams["model_name"], hparams.get("model_config"), eager)
            sd = {
                k[len("model.") :]: v
                for k, v in ckpt["state_dict"].items()
                if k.startswith("model.")
            }
            _load_exact(model, sd, path)
            info = {
                "format": "ckpt",
                "model": hparams["model_name"],
                "config": hparams.get("model_config", {}),
                "iteration": int(ckpt.get("iteration", ckpt.get("global_step", 0))),
                "data": hparams.get("data") or {},
            }
        else:
            if name is None:
                raise ConfigError(
                    f"{path} is a plain state dict (an authors' checkpoint?): pass --model and the "
                    "model flags it was trained with"
                )
            model = _build(name, config, eager)
            load_official(model, read_state_dict(path) if ckpt is None else _state_of(ckpt, path))
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


def _state_of(ckpt: Any, path: Path) -> dict:
    if isinstance(ckpt, dict) and isinstance(ckpt.get("state_dict"), dict):
        ckpt = ckpt["state_dict"]
    if not isinstance(ckpt, dict):
        raise ConfigError(f"{path}: holds no state dict")
    return ckpt


def _load_exact(model: nn.Module, sd: dict, path: Path) -> None:
    from swinlstm.models.official import describe_mismatch

    problem = describe_mismatch(model, sd)
    if problem:
        raise ConfigError(f"{path} does not fit the model it names: {problem}")
    model.load_state_dict(sd, strict=False)
