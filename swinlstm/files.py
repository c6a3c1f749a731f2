"""Opening the weight files users hand us: one ValueError line naming the file and what is wrong.

Every place that reads a checkpoint, a ``.safetensors`` or its JSON goes through these, so that
each command says the same thing about the same bad file, and none shows a library's traceback:

* :func:`load_torch_weights`: ``torch.load(weights_only=True)``, telling apart a file that is
  truncated or corrupt (or no PyTorch file at all) from an intact one whose pickle holds Python
  objects beyond tensors, which would need arbitrary unpickling (refused: it can run code);
* :func:`load_safetensors`: a truncated or corrupt ``.safetensors``;
* :func:`read_json`: a JSON file that does not parse, with its line and column.

Where downloaded and derived files are kept: :func:`cache_dir` (published weights, LPIPS
weights, the compiled-kernel cache).

And the one way files are written whole or not at all: :func:`write_files` (several files, all
or none) and :func:`atomic_write` (one), which raise :class:`FileWriteError` naming the file and
the reason (the engine maps it to its ``CheckpointWriteError``).

This module sits below models/, metrics/ and engine/ (it imports none of them).
"""

from __future__ import annotations

import errno
import json
import os
import pickle
import re
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch

from swinlstm.errors import ConfigError
from swinlstm.umask import apply_umask

ANSI_ESCAPE = re.compile(r"\x1b\[[0-9;]*m")
CORRUPT = "is truncated or corrupt, or not a PyTorch checkpoint"


def first_line(err: BaseException) -> str:
    """The first line of an exception's message, ANSI colour codes removed (or its type)."""
    text = ANSI_ESCAPE.sub("", str(err)).strip().strip("'\"")
    return text.splitlines()[0].strip() if text else type(err).__name__


def unpickling_refused(path: str | os.PathLike, what: str) -> ConfigError:
    """The error for an intact file that needs ``what`` unpickled (a class or function)."""
    return ConfigError(
        f"{path}: holds Python objects beyond tensors ({what}); files that need arbitrary "
        "unpickling are refused (it could run code from the file): save its state_dict() "
        "with torch.save instead"
    )


def corrupt_file(path: str | os.PathLike, err: BaseException | str) -> ConfigError:
    """The error for a file that cannot be parsed at all (``err`` says where it broke)."""
    detail = err if isinstance(err, str) else first_line(err)
    return ConfigError(f"{path}: {CORRUPT} ({detail})")


def load_torch_weights(path: str | os.PathLike) -> Any:
    """``torch.load(path, map_location="cpu", weights_only=True)``; ValueError (one line) naming
    ``path`` when it is truncated or corrupt, or needs arbitrary unpickling."""
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as err:
        text = ANSI_ESCAPE.sub("", str(err))
        needs = re.search(r"Unsupported global: GLOBAL ([\w.]+)", text)
        if needs:
            raise unpickling_refused(path, needs.group(1)) from None
        operand = re.search(r"Unsupported operand \d+", text)
        raise corrupt_file(path, operand.group(0) if operand else first_line(err)) from None
    except EOFError:
        raise corrupt_file(path, "it ends early") from None
    except RuntimeError as err:
        text = first_line(err)
        if "PytorchStreamReader" in text or "zip" in text or "archive" in text:
            raise corrupt_file(path, "an incomplete zip archive") from None
        raise corrupt_file(path, text) from None
    except (KeyError, ValueError, TypeError, UnicodeDecodeError, IndexError) as err:
        raise corrupt_file(path, f"{type(err).__name__}: {first_line(err)}") from None


def load_safetensors(path: str | os.PathLike) -> dict[str, torch.Tensor]:
    """``safetensors.torch.load_file(path)``; ValueError (one line) when it is truncated or
    corrupt."""
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    try:
        return load_file(str(path))
    except SafetensorError as err:
        raise ConfigError(
            f"{path}: is truncated or corrupt, not a readable .safetensors file ({first_line(err)})"
        ) from None


def read_json(path: str | os.PathLike) -> Any:
    """The parsed JSON of ``path``; ValueError (one line) naming the file, line and column."""
    try:
        return json.loads(Path(path).read_text())
    except json.JSONDecodeError as err:
        raise ConfigError(
            f"{path}: not valid JSON ({err.msg} at line {err.lineno}, column {err.colno})"
        ) from None
    except UnicodeDecodeError:
        raise ConfigError(f"{path}: not valid JSON (not UTF-8 text)") from None


class FileWriteError(OSError):
    """A file that could not be written whole (disk full, read-only, folder gone): one line
    naming it and the reason; the file from before, if any, is unchanged."""


def atomic_write(
    path: str | os.PathLike, write_fn: Callable[[str], None], mkdir: bool = True
) -> None:
    """Call ``write_fn(tmp_path)``, then rename onto ``path``: a kill never leaves half a file.

    The file gets the umask's mode (0644 under umask 022) whatever mode ``write_fn`` created.
    ``mkdir=False``: a missing folder is an error (a run's folder that vanished is not remade).
    Failures raise :class:`FileWriteError` (see :func:`write_files`).
    """
    path = Path(path)
    if mkdir:
        path.parent.mkdir(parents=True, exist_ok=True)
    write_files([(path, write_fn)])


def write_files(files: list[tuple[Path, Callable[[str], None]]]) -> None:
    """Write each ``(path, write_fn)`` to a temporary file beside it, then rename them all.

    All the files change or none does: the renames start only when every temporary file is
    complete. An ``OSError`` (disk full, read-only, folder removed) raises
    :class:`FileWriteError` naming the file and the reason; the files from before and no
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
                raise FileWriteError(
                    f"cannot write {path}: {write_failure(err, path)}; "
                    "the files from before are unchanged"
                ) from None
        for (path, _), tmp in zip(files, temps):
            try:
                os.replace(tmp, path)
            except OSError as err:
                raise FileWriteError(
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


__all__ = [
    "FileWriteError",
    "atomic_write",
    "corrupt_file",
    "first_line",
    "load_safetensors",
    "load_torch_weights",
    "read_json",
    "temp_path",
    "unpickling_refused",
    "write_failure",
    "write_files",
]


def cache_dir() -> Path:
    """Where downloaded and derived files are kept: ``$SWINLSTM_CACHE``, else
    ``~/.cache/swinlstm``."""
    return Path(os.environ.get("SWINLSTM_CACHE") or Path.home() / ".cache" / "swinlstm")
