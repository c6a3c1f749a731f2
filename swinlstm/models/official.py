"""Load the authors' published checkpoints into our models.

The published files are plain ``state_dict``s (SwinLSTM: ``Pretrained/trained_model_state_dict``;
LMC-Memory: saved from ``nn.DataParallel``, so every key starts with ``module.``). They also hold
buffers we rebuild ourselves (``relative_position_index``, ``attn_mask``).

What is generic lives here: reading the file safely, stripping the prefix, dropping rebuilt
buffers, and one error message listing every missing / unexpected key and shape mismatch.
What is specific to a network lives on the model: a model whose parameter names differ from the
authors' defines ``convert_official_state_dict(sd) -> sd`` that renames keys to its own and drops
the authors' parameters it does not build (unused ones).
"""

from __future__ import annotations

import os
from collections.abc import Mapping

import torch
from torch import nn

from swinlstm.errors import ConfigError, MissingPathError
from swinlstm.files import load_torch_weights

IGNORED_BUFFERS = ("relative_position_index", "attn_mask")


def read_state_dict(path: str | os.PathLike) -> dict[str, torch.Tensor]:
    """Read a checkpoint file with ``weights_only=True``; one clear error for anything else."""
    path = os.fspath(path)
    if not os.path.isfile(path):
        raise MissingPathError(f"checkpoint file not found: {path}")
    return as_state_dict(load_torch_weights(path), path)  # one line for a bad file


def as_state_dict(obj: object, path: str | os.PathLike) -> dict[str, torch.Tensor]:
    """The state dict a loaded checkpoint ``obj`` holds (itself, or under ``state_dict``,
    ``model_state_dict`` or ``model``); ValueError naming ``path`` when it holds none."""
    if isinstance(obj, Mapping):
        for key in ("state_dict", "model_state_dict", "model"):
            if key in obj and isinstance(obj[key], Mapping):
                obj = obj[key]
                break
    if not isinstance(obj, Mapping) or not all(isinstance(v, torch.Tensor) for v in obj.values()):
        raise ConfigError(f"{path}: holds no state dict of tensors")
    return dict(obj)


#: LMC-Memory's own top-level modules (their ``model.py``), which name its keys
LMC_PREFIXES = ("memory", "attention_func", "encoder.")


def official_family(keys: list[str]) -> str | None:
    """The model family of an authors' state dict from its key names, or None if unknown: the
    key prefixes the SwinLSTM models convert (``official_prefixes``), else LMC-Memory's."""
    from swinlstm.models.swinlstm import SwinLSTMB, SwinLSTMD

    keys = list(strip_prefix(dict.fromkeys(keys)))
    families = (
        ("swinlstm-b", tuple(SwinLSTMB.official_prefixes)),
        ("swinlstm-d", (*SwinLSTMD.official_prefixes, *SwinLSTMD.official_unused)),
        ("lmc-convlstm", LMC_PREFIXES),
    )
    for name, prefixes in families:
        if any(k.startswith(prefixes) for k in keys):
            return name
    return None


def strip_prefix(
    sd: Mapping[str, torch.Tensor], prefix: str = "module."
) -> dict[str, torch.Tensor]:
    """Drop ``prefix`` from every key that has it (``nn.DataParallel`` / DDP checkpoints)."""
    return {(k[len(prefix) :] if k.startswith(prefix) else k): v for k, v in sd.items()}


def official_to_ours(model: nn.Module, sd: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """The authors' state dict in our model's key layout (prefix and rebuilt buffers removed)."""
    sd = strip_prefix(sd)
    sd = {k: v for k, v in sd.items() if k.rsplit(".", 1)[-1] not in IGNORED_BUFFERS}
    convert = getattr(model, "convert_official_state_dict", None)
    return convert(sd) if convert is not None else sd


def describe_mismatch(model: nn.Module, sd: Mapping[str, torch.Tensor]) -> str:
    """Empty when ``sd`` fits ``model`` exactly, else a message listing every difference."""
    own = model.state_dict()
    own = {k: v for k, v in own.items() if k.rsplit(".", 1)[-1] not in IGNORED_BUFFERS}
    missing = sorted(set(own) - set(sd))
    unexpected = sorted(set(sd) - set(own))
    shapes = [
        f"{k}: checkpoint {tuple(sd[k].shape)} vs model {tuple(own[k].shape)}"
        for k in sorted(set(own) & set(sd))
        if tuple(sd[k].shape) != tuple(own[k].shape)
    ]
    parts = []
    if missing:
        parts.append(
            f"missing keys ({len(missing)}): {', '.join(missing[:10])}"
            + (" ..." if len(missing) > 10 else "")
        )
    if unexpected:
        parts.append(
            f"unexpected keys ({len(unexpected)}): {', '.join(unexpected[:10])}"
            + (" ..." if len(unexpected) > 10 else "")
        )
    if shapes:
        parts.append(
            f"shape mismatches ({len(shapes)}): {'; '.join(shapes[:10])}"
            + (" ..." if len(shapes) > 10 else "")
        )
    return "; ".join(parts)


def load_official(model: nn.Module, state_dict_or_path, strict: bool = True) -> nn.Module:
    """Load an authors' checkpoint (path or state dict) into ``model``; returns ``model``.

    Raises ValueError naming every missing/unexpected key and shape mismatch when the file is for
    another configuration (say, another ``embed_dim``).
    """
    source = "state dict"
    if isinstance(state_dict_or_path, (str, os.PathLike)):
        source = os.fspath(state_dict_or_path)
        sd = read_state_dict(state_dict_or_path)
    elif isinstance(state_dict_or_path, Mapping):
        sd = dict(state_dict_or_path)
    else:
        raise TypeError(f"expected a path or a state dict, got {type(state_dict_or_path).__name__}")
    sd = official_to_ours(model, sd)
    problem = describe_mismatch(model, sd)
    if problem and strict:
        raise ConfigError(f"{source} does not fit {type(model).__name__}: {problem}")
    own = model.state_dict()
    model.load_state_dict(
        {k: v for k, v in sd.items() if k in own and own[k].shape == v.shape}, strict=False
    )
    return model


def authors_config(name: str, dataset: str | None) -> dict:
    """Settings the authors' code derives from ``--dataset`` rather than a flag of its own.

    LMC-Memory's ``model.py`` ends the decoder in a Sigmoid when ``--dataset kth`` and not for
    Moving MNIST, so ``lmc-convlstm`` gets ``final_sigmoid = dataset == "kth"``. Callers merge it
    under the user's own settings (an explicit ``final_sigmoid`` wins); a checkpoint of ours
    records the value and is never re-derived.
    """
    if name == "lmc-convlstm" and dataset is not None:
        return {"final_sigmoid": str(dataset).lower() == "kth"}
    return {}
