"""Models: one registry, ``build_model(name, **config)``, and the authors' checkpoint loader.

Each model module registers its builders with :func:`register_model` when imported; the registry
imports the module that owns a name on first use, so importing ``swinlstm.models`` stays cheap.
Named variants (:mod:`swinlstm.models.variants`, e.g. ``swinlstm-d-mmnist``) are a base model
plus the options of a published configuration.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable

from torch import nn

from swinlstm.errors import ConfigError

from .recurrent import RecurrentPredictor
from .variants import VARIANTS

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
    """Names accepted by :func:`build_model`: the base models and the named variants."""
    return sorted(set(_OWNERS) | set(_BUILDERS) | set(VARIANTS))


def resolve_model(name: str) -> tuple[str, dict]:
    """``(base model, options)`` of a name: a variant's base and options, or a base model and
    ``{}``. Raises :class:`ConfigError` listing the names for an unknown one."""
    key = name.lower().replace("_", "-")
    if key in VARIANTS:
        return VARIANTS[key].base, dict(VARIANTS[key].options)
    if key not in _OWNERS and key not in _BUILDERS:
        raise ConfigError(f"unknown model {name!r}; choose one of {', '.join(list_models())}")
    return key, {}


def build_model(name: str, **config) -> RecurrentPredictor:
    """Build a model by name, e.g. ``build_model("swinlstm-d", img_size=64, in_chans=1)`` or
    ``build_model("swinlstm-d-mmnist")``; keyword options override a variant's.

    The returned model carries ``model_name`` (the base model), ``model_config`` (every option
    given, a variant's included) and ``variant`` (the variant's name, or None); checkpoints save
    the first two beside the weights, so they rebuild without knowing the variant.
    """
    key, options = resolve_model(name)
    config = {**options, **config}
    if key not in _BUILDERS:
        importlib.import_module(_OWNERS[key])
    model = _BUILDERS[key](**config)
    # What rebuilds this model from a checkpoint without flags (see engine/checkpoint.py).
    model.model_name = key
    model.model_config = dict(config)
    model.variant = name.lower().replace("_", "-") if options else None
    return model


def load_official(model: nn.Module, state_dict_or_path, strict: bool = True):
    """Load the authors' published checkpoint (a path or a state dict) into ``model``."""
    from .official import load_official as _load

    return _load(model, state_dict_or_path, strict=strict)


__all__ = [
    "VARIANTS",
    "RecurrentPredictor",
    "build_model",
    "list_models",
    "load_official",
    "register_model",
    "resolve_model",
]
