"""Value checks done once, when a dataset opens its arrays (never per batch).

:func:`finite_range` reads an array in chunks, so a memory-mapped file of any size is read once
with bounded memory, and gives its ``(min, max)``; an array holding NaN or inf is refused with the
file and the index of the first bad value. Frames decoded from images or videos are uint8, and
generated clips are made finite, so only float arrays (custom ``.npy`` / ``.npz``, TaxiBJ) need it.
"""

from __future__ import annotations

import math

import numpy as np

from swinlstm.errors import ConfigError

CHUNK_ELEMENTS = 1 << 24  # values read at a time (64 MiB of float32)


def finite_range(arr: np.ndarray, path: object, key: str | None = None) -> tuple[float, float]:
    """``(min, max)`` of a float array (NaN / inf: ValueError naming the file, the array ``key``
    in it if any, and the index of the first bad value).

    One pass, ``CHUNK_ELEMENTS`` values at a time, in the array's memory order (a memory map is
    read sequentially). An empty array gives ``(0.0, 0.0)``.
    """
    if arr.size == 0:
        return 0.0, 0.0
    order = "F" if arr.flags.f_contiguous and not arr.flags.c_contiguous else "C"
    flat = arr.reshape(-1, order=order)  # a view for contiguous arrays (memory maps included)
    lo, hi = math.inf, -math.inf
    for start, block in _chunks(flat):
        block_lo, block_hi = float(block.min()), float(block.max())  # NaN propagates
        if not (math.isfinite(block_lo) and math.isfinite(block_hi)):
            offset = int(np.flatnonzero(~np.isfinite(block))[0])
            index = [int(i) for i in np.unravel_index(start + offset, arr.shape, order=order)]
            what = f"{key} " if key else ""
            raise ConfigError(
                f"{path}: {what}holds {block[offset]} at index {index} (the first value that is "
                "not finite); replace or drop the clips with NaN / inf"
            )
        lo, hi = min(lo, block_lo), max(hi, block_hi)
    return lo, hi


def _chunks(flat: np.ndarray):
    """``(offset, values)`` of a flat array, ``CHUNK_ELEMENTS`` values read at a time."""
    for start in range(0, flat.size, CHUNK_ELEMENTS):
        yield start, np.asarray(flat[start : start + CHUNK_ELEMENTS])
