"""Helpers of the ConvLSTM / LMC-Memory tests: the golden-vector recipe and a one-thread fixture.

The recipe of tests/data/lmc_memory_tiny.npz:

The authors' network has 34M parameters, too many to store; its weights are instead drawn here
from a fixed NumPy seed (PCG64 streams are stable across NumPy versions), key by key in sorted
order, and the .npz keeps per-key checksums to catch any drift.
"""

import json
from pathlib import Path

import numpy as np
import pytest
import torch

DATA = Path(__file__).resolve().parent / "data"
IMG, BATCH, SHORT_LEN, LONG_LEN, OUT_LEN, MEMORY_SIZE = 32, 1, 10, 16, 3, 10
WEIGHT_SEED, INPUT_SEED = 2021, 7


def golden_shapes() -> dict[str, tuple[int, ...]]:
    """The authors' Predictor keys and shapes with ``memory_size = MEMORY_SIZE``."""
    sd = json.loads((DATA / "official_keys.json").read_text())["lmc-memory-movingmnist"]
    shapes = {k: tuple(v) for k, v in sd["state_dict"].items()}
    shapes["memory.memory_w"] = (MEMORY_SIZE, shapes["memory.memory_w"][1])
    return shapes


def golden_state_dict() -> dict[str, torch.Tensor]:
    """Weights N(0, 1/fan) with fan = prod(shape[1:]), biases N(0, 0.1^2), slots N(0, 1)."""
    rng = np.random.default_rng(WEIGHT_SEED)
    out = {}
    for key, shape in sorted(golden_shapes().items()):
        x = rng.standard_normal(shape, dtype=np.float32)
        if key.endswith("memory_w"):
            scale = 1.0
        elif len(shape) == 1:
            scale = 0.1
        else:
            scale = 1.0 / np.sqrt(np.prod(shape[1:]))
        out[key] = torch.from_numpy(x * np.float32(scale))
    return out


def checksums(sd: dict[str, torch.Tensor]) -> np.ndarray:
    """Sum of |w| per key, sorted by key (float64)."""
    return np.array([sd[k].double().abs().sum().item() for k in sorted(sd)])


def fingerprints(sd: dict[str, torch.Tensor]) -> np.ndarray:
    """(n_keys, 2): sum and sum of |w| per key, sorted by key (float64)."""
    return np.array(
        [[sd[k].double().sum().item(), sd[k].double().abs().sum().item()] for k in sorted(sd)]
    )


def golden_inputs() -> tuple[np.ndarray, np.ndarray]:
    """8-bit frames (uint8): the short input (B, SHORT_LEN, 1, IMG, IMG) and the long clip."""
    rng = np.random.default_rng(INPUT_SEED)
    short = rng.integers(0, 256, (BATCH, SHORT_LEN, 1, IMG, IMG), dtype=np.uint8)
    long = rng.integers(0, 256, (BATCH, LONG_LEN, 1, IMG, IMG), dtype=np.uint8)
    return short, long


@pytest.fixture(autouse=True, scope="module")
def one_thread():
    """Tiny models gain nothing from threads; on shared cores they lose a lot (oversubscription)."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)
