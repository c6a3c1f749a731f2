"""swinlstm.helpers and swinlstm.errors: the shared pieces every layer uses."""

import numpy as np
import pytest
import torch

from swinlstm.errors import ConfigError, MissingPathError
from swinlstm.helpers import as_hw, mix_seed


@pytest.mark.parametrize(
    "size, hw",
    [(64, (64, 64)), ((64, 48), (64, 48)), ([32], (32, 32)), (np.int64(8), (8, 8))],
)
def test_as_hw_accepts_an_int_or_h_w(size, hw):
    assert as_hw(size) == hw
    assert all(type(v) is int for v in as_hw(size))
    assert as_hw(torch.Size([3, 5])) == (3, 5)


@pytest.mark.parametrize("bad", [64.0, "64", None, (1, 2, 3), (0, 4), (-1,), (True, 2), ()])
def test_as_hw_refuses_other_sizes_naming_the_setting(bad):
    with pytest.raises(ConfigError, match=r"^patch_size must be a positive int or \(H, W\)"):
        as_hw(bad, "patch_size")


def test_mix_seed_is_the_engine_formula_and_separates_runs():
    assert mix_seed(1234, 5) == 1234 * 1000003 + 5
    seeds = {mix_seed(s, o) for s in range(20) for o in range(1000)}
    assert len(seeds) == 20 * 1000  # no two (seed, offset) pairs meet below the stride


def test_config_errors_are_value_errors_and_missing_paths_file_not_found():
    assert issubclass(ConfigError, ValueError)
    err = MissingPathError("--input x.npy: no such file")
    assert isinstance(err, ConfigError) and isinstance(err, FileNotFoundError)
