"""Opening the weight files users hand us: one ValueError line naming the file and what is wrong.

Every place that reads a checkpoint, a ``.safetensors`` or its JSON goes through these, so that
each command says the same thing about the same bad file, and none shows a library's traceback:

* :func:`load_torch_weights`: ``torch.load(weights_only=True)``, telling apart a file that is
  truncated or corrupt (or no PyTorch file at all) from an intact one whose pickle holds Python
  objects beyond tensors, which would need arbitrary unpickling (refused: it can run code);
* :func:`load_safetensors`: a truncated or corrupt ``.safetensors``;
* :func:`read_json`: a JSON file that does not parse, with its line and column.

This module sits below models/, metrics/ and engine/ (it imports none of them).
"""

from __future__ import annotations

import json
import os
import pickle
import re
from pathlib import Path
from typing import Any

import torch

from swinlstm.errors import ConfigError

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


__all__ = [
    "corrupt_file",
    "first_line",
    "load_safetensors",
    "load_torch_weights",
    "read_json",
    "unpickling_refused",
]
