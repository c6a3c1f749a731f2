"""Small helpers every layer shares (as timm's ``layers/helpers.py``): one copy of each.

* :func:`as_hw`: a frame or patch size given as ``64`` or ``(64, 48)`` -> ``(H, W)``;
* :func:`mix_seed`: one integer seed for a stream derived from the run's seed (sampling order,
  scheduled sampling), so that every stream is reproducible from ``--seed`` alone.

No imports from the package: models/, data/, metrics/, engine/ and cli/ may all use it.
"""

from __future__ import annotations

from collections.abc import Sequence
from numbers import Integral

from swinlstm.errors import ConfigError

SEED_STRIDE = 1000003  # a prime: seeds of different runs never meet for offsets below it


def as_hw(size: int | Sequence[int], name: str = "img_size") -> tuple[int, int]:
    """``64`` -> ``(64, 64)``; ``(64, 48)`` or ``[64, 48]`` -> ``(64, 48)``.

    Raises :class:`~swinlstm.errors.ConfigError` naming ``name`` unless the size is one or two
    positive integers.
    """
    if isinstance(size, Integral):
        values: tuple = (size, size)
    elif isinstance(size, Sequence) and not isinstance(size, str):
        values = tuple(size)
    else:
        raise ConfigError(f"{name} must be a positive int or (H, W), got {size!r}")
    if len(values) == 1:
        values = (values[0], values[0])
    if len(values) != 2 or not all(
        isinstance(v, Integral) and not isinstance(v, bool) and v >= 1 for v in values
    ):
        raise ConfigError(f"{name} must be a positive int or (H, W), got {size!r}")
    return int(values[0]), int(values[1])


def mix_seed(seed: int, offset: int) -> int:
    """The seed of stream ``offset`` of a run seeded with ``seed``: ``seed * 1000003 + offset``."""
    return int(seed) * SEED_STRIDE + int(offset)


__all__ = ["SEED_STRIDE", "as_hw", "mix_seed"]
