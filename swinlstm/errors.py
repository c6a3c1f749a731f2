"""The exceptions for a user's mistake: the only ones the CLI turns into one line and exit code 2.

A :class:`ConfigError` names the flag, the file or the shape that is wrong and says what would be
right. Every check at an edge (flags, YAML presets, files users hand us, data shapes) raises it;
any other exception is a bug in our code or a library and keeps its traceback.

No imports: every layer (models/, data/, metrics/, engine/, cli/) may raise these.
"""

from __future__ import annotations


class ConfigError(ValueError):
    """A mistake in a flag, a preset, a file or a shape the user gave (a ``ValueError``)."""


class MissingPathError(ConfigError, FileNotFoundError):
    """A file or folder the user named does not exist (also a ``FileNotFoundError``)."""


__all__ = ["ConfigError", "MissingPathError"]
