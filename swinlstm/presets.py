"""Where a ``--config`` preset is found: the file named, else one of the packaged presets.

The presets live in ``configs/`` of the repository (the paths the docs give, e.g.
``configs/mmnist_swinlstm_b.yaml``); ``swinlstm/configs`` is a link to that folder, so that they
travel as package data in the wheel and are read through :mod:`importlib.resources` by an
installed package run from any folder. ``--config demo``, ``--config demo.yaml``,
``--config configs/demo.yaml`` and ``--config zoo/convlstm_mmnist.yaml`` all name a packaged
preset when no such file is under the current folder.
"""

from __future__ import annotations

from importlib.resources import files
from pathlib import Path, PurePosixPath

from swinlstm.errors import MissingPathError

FOLDER = "configs"  # the presets' folder, in the repository and in the package


def packaged_presets() -> list[str]:
    """Names of the packaged presets, e.g. ``["demo", ..., "zoo/convlstm_mmnist"]``."""
    root = files("swinlstm") / FOLDER
    if not root.is_dir():
        return []
    folders = {"": root, "zoo/": root / "zoo"}
    return sorted(
        prefix + p.name.removesuffix(".yaml")
        for prefix, folder in folders.items()
        if folder.is_dir()
        for p in folder.iterdir()
        if p.name.endswith(".yaml")
    )


def packaged_preset(name: str) -> Path | None:
    """The packaged preset ``name`` (``demo``, ``demo.yaml``, ``configs/demo.yaml``), or None."""
    parts = PurePosixPath(name.replace("\\", "/")).parts
    parts = parts[1:] if parts[:1] == (".",) else parts
    parts = parts[1:] if parts[:1] == (FOLDER,) else parts
    if not parts or ".." in parts:
        return None
    resource = files("swinlstm").joinpath(FOLDER, *parts)
    if not resource.is_file() and not parts[-1].endswith(".yaml"):
        resource = files("swinlstm").joinpath(FOLDER, *parts[:-1], parts[-1] + ".yaml")
    return Path(str(resource)) if resource.is_file() else None


def find_preset(value: str, flag: str = "--config") -> Path:
    """The preset file ``value`` names: that file if it exists, else the packaged preset of that
    name. Raises :class:`MissingPathError` naming ``flag`` and the packaged presets otherwise."""
    path = Path(value)
    if path.is_file():
        return path
    found = packaged_preset(value)
    if found is not None:
        return found
    raise MissingPathError(
        f"{flag} file not found: {value} (packaged presets: {' '.join(packaged_presets())})"
    )


__all__ = ["find_preset", "packaged_preset", "packaged_presets"]
