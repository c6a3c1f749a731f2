"""The benchmarks' bookkeeping: the compiling first call is not timed, a row without training
shows '-' and writes null (valid JSON), without running the real (large) networks."""

from __future__ import annotations

import json
import time

import pytest

import swinlstm.bench.models as bench_models
from swinlstm.bench.data import timed_rates

TINY = bench_models.BenchModel(
    "convlstm",
    dict(img_size=16, in_chans=1, patch_size=4, num_hidden=[4], filter_size=3),
    swin=False,
)


def test_bench_data_does_not_time_the_first_compiling_call():
    calls = []

    def compiles_first():
        if not calls:  # the generator's first call compiles: 0.3 s of CPU
            end = time.process_time() + 0.3
            while time.process_time() < end:
                pass
        calls.append(1)

    rates = timed_rates({"x": (compiles_first, 1, 2)}, rounds=1)
    assert len(calls) == 1 + 2  # one warm-up call, then one round of 2 calls
    assert rates["x"] > 100  # 2 items in far less than the 0.3 s of the first call


def _strict_json(text: str):
    def no_nan(name):
        raise ValueError(f"invalid JSON constant {name}")

    return json.loads(text, parse_constant=no_nan)


def test_bench_models_no_train_row_is_dash_and_null(tmp_path, monkeypatch, capsys):
    monkeypatch.setitem(bench_models.MODELS, "convlstm", TINY)
    monkeypatch.setattr(bench_models, "matmul_gflops", lambda threads, dtype: 1.0)
    monkeypatch.setattr(  # the row in this process, through JSON as from the subprocess
        bench_models, "_spawn", lambda spec: json.loads(json.dumps(bench_models.run_row(spec)))
    )
    out = tmp_path / "rows.json"
    argv = ["--models", "convlstm", "--batch", "1", "--modes", "fp32", "--no-train"]
    argv += ["--steps", "1", "--warmup", "0", "--threads", "1", "--json", str(out)]
    assert bench_models.main(argv) == 0
    row = [line for line in capsys.readouterr().out.splitlines() if line.startswith("| convlstm")]
    cells = [c.strip() for c in row[0].strip("|").split("|")]
    infer_mb, train_s, train_mb = cells[7], cells[6], cells[8]
    assert train_s == "-" and train_mb == "-" and infer_mb != "-"
    data = _strict_json(out.read_text())  # no NaN: valid JSON
    assert data["rows"][0]["train_s"] is None and data["rows"][0]["peak_train_mb"] is None
    assert data["rows"][0]["infer_s"] > 0


@pytest.mark.parametrize("value", [float("nan"), float("inf")])
def test_json_safe_maps_non_finite_to_null(value):
    assert bench_models._json_safe({"a": [1.0, value]}) == {"a": [1.0, None]}
