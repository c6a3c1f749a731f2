"""Models: one registry, ``build_model(name, **config)``, and the authors' checkpoint loader.

Each model module registers its builders with :func:`register_model` when imported; the registry
imports the module that owns a name on first use, so importing ``swinlstm.models`` stays cheap.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable

from torch import nn

from swinlstm.errors import ConfigError

from .recurrent import RecurrentPredictor

# name -> module that registers it
_OWNERS = {
    "swinlstm-b": "swinlstm.models.swinlstm",
    "swinlstm-d": "swinlstm.models.swinlstm",
    "convlstm": "swinlstm.models.convlstm",
    "lmc-convlstm": "swinlstm.models.convlstm",
}
_BUILDERS: dict[str, Callable[..., nn.Module]] = {}


def register_model(name: str) -> Callable[[Callable[..., nn.Module]], Callable[..., nn.Module]]:
    """Decorator: register ``fn(**config) -> nn.Module`` under ``name``."""

    def deco(fn: Callable[..., nn.Module]) -> Callable[..., nn.Module]:
        _BUILDERS[name] = fn
        return fn

    return deco


def list_models() -> list[str]:
    """Names accepted by :func:`build_model`."""
    return sorted(set(_OWNERS) | set(_BUILDERS))


def build_model(name: str, **config) -> RecurrentPredictor:
    """Build a model by name, e.g. ``build_model("swinlstm-d", img_size=64, in_chans=1)``.

    The returned model carries ``model_name`` and ``model_config`` (the arguments given here),
    which checkpoints save beside the weights.
    """
    key = name.lower().replace("_", "-")
    if key not in _OWNERS and key not in _BUILDERS:
        raise ConfigError(f"unknown model {name!r}; choose one of {', '.join(list_models())}")
    if key not in _BUILDERS:
        importlib.import_module(_OWNERS[key])
    model = _BUILDERS[key](**config)
    # What rebuilds this model from a checkpoint without flags (see engine/checkpoint.py).
    model.model_name = key
    model.model_config = dict(config)
    return model


def load_official(model: nn.Module, state_dict_or_path, strict: bool = True):
    """Load the authors' published checkpoint (a path or a state dict) into ``model``."""
    from .official import load_official as _load

    return _load(model, state_dict_or_path, strict=strict)


__all__ = ["RecurrentPredictor", "build_model", "list_models", "load_official", "register_model"]
