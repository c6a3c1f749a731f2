"""The benchmarks' bookkeeping: the compiling first call is not timed, a row without training
shows '-' and writes null (valid JSON), without running the real (large) networks."""

from __future__ import annotations

import json
import sys
import time

import pytest
import torch

import swinlstm.bench.models as bench_models
from swinlstm.bench.data import timed_rates
from swinlstm.errors import ConfigError

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


# ----------------------------------------------------------------------------------------------
# The small configurations (issue 19) and the authors' baseline measured in the same process
# ----------------------------------------------------------------------------------------------
#: row -> (token grid after the patch embedding, default batches), as MODELS' comments say
SMALL_ROWS = {
    "swinlstm-b-small": ((16, 16), (8,)),  # the first row, batch 8
    "swinlstm-d-small": ((32, 32), (4,)),  # the second row, batch 4
    "swinlstm-b-tiny": ((8, 8), (1, 16)),
    "swinlstm-b-wide": ((16, 16), (1, 4)),
    "swinlstm-d-tiny": ((16, 16), (16,)),
}

#: a stand-in for the authors' SwinLSTM_B.py (their call signature; their code is not in the
#: repository): a 3x3 conv that sleeps SLEEP s per frame and logs each sequence it starts
STAND_IN_B = """
import time

import torch
from torch import nn

LOG = {log!r}
SLEEP = {sleep!r}


class SwinLSTM(nn.Module):
    def __init__(self, img_size, patch_size, in_chans, embed_dim, depths, num_heads,
                 window_size, drop_rate, attn_drop_rate, drop_path_rate):
        super().__init__()
        self.conv = nn.Conv2d(in_chans, in_chans, 3, padding=1)

    def forward(self, x, states):
        if states[0] is None:  # a sequence's first frame
            with open(LOG, "a") as f:
                f.write("authors " + ("train" if torch.is_grad_enabled() else "infer") + "\\n")
        time.sleep(SLEEP)
        y = self.conv(x)
        return y, [y] * len(states)
"""

#: a stand-in for SwinLSTM_D.py: records its constructor's arguments and the states it is given
STAND_IN_D = """
from torch import nn

ARGS = []
CALLS = []


class SwinLSTM(nn.Module):
    def __init__(self, img_size, patch_size, in_chans, embed_dim, depths_downsample,
                 depths_upsample, num_heads, window_size):
        super().__init__()
        ARGS.extend([img_size, patch_size, in_chans, embed_dim, depths_downsample,
                     depths_upsample, num_heads, window_size])
        self.conv = nn.Conv2d(in_chans, in_chans, 3, padding=1)

    def forward(self, x, states_down, states_up):
        CALLS.append((tuple(x.shape), len(states_down), len(states_up)))
        y = self.conv(x)
        return y, [y] * len(states_down), [y] * len(states_up)
"""


@pytest.fixture
def authors_modules(monkeypatch):
    """Each test imports its own stand-ins: no cached SwinLSTM_B / _D, sys.path restored."""
    monkeypatch.setattr(sys, "path", list(sys.path))
    for name in ("SwinLSTM_B", "SwinLSTM_D"):
        sys.modules.pop(name, None)
    yield
    for name in ("SwinLSTM_B", "SwinLSTM_D"):
        sys.modules.pop(name, None)


def test_small_rows_build_with_the_token_grids_their_comments_give():
    from swinlstm.models import build_model

    assert bench_models.SMALL == list(SMALL_ROWS)
    for name, (grid, batches) in SMALL_ROWS.items():
        bench = bench_models.MODELS[name]
        model = build_model(bench.name, **bench.options)
        assert (model.grid, model.patch_size, model.in_chans) == (grid, 2, 1), name
        assert bench.batches == batches and bench.applies("authors"), name
        # the range: embed 16-64, 1-4 blocks per level, 8x8-32x32 tokens, batch 1-16
        depths = [*bench.options.get("depths", []), *bench.options.get("depths_down", [])]
        depths += bench.options.get("depths_up", [])
        assert 16 <= model.embed_dim <= 64 and all(1 <= d <= 4 for d in depths), name
        assert 8 <= min(grid) <= max(grid) <= 32 and all(1 <= b <= 16 for b in batches), name
    small_b = bench_models.MODELS["swinlstm-b-small"].config
    assert (small_b["img_size"], small_b["embed_dim"], small_b["depths"]) == (32, 32, [2])
    assert (small_b["num_heads"], small_b["window_size"]) == ([4], 4)
    small_d = bench_models.MODELS["swinlstm-d-small"].config
    assert (small_d["img_size"], small_d["embed_dim"], small_d["num_heads"]) == (64, 32, [4, 8])
    assert (small_d["depths_down"], small_d["depths_up"]) == ([2, 2], [2, 2])


def test_small_flag_selects_the_small_rows_and_the_default_stays_the_papers():
    assert bench_models._parse(["--small"]).models == list(SMALL_ROWS)
    assert bench_models._parse([]).models == bench_models.PAPER
    assert "swinlstm-b-small" not in bench_models.PAPER and "convlstm" in bench_models.PAPER
    both = bench_models._parse(["--models", "convlstm", "swinlstm-b-tiny", "--small"]).models
    rest = [m for m in SMALL_ROWS if m != "swinlstm-b-tiny"]
    assert both == ["convlstm", "swinlstm-b-tiny", *rest]  # the named first, each row once
    assert bench_models._parse(["--small"]).batch is None  # each row's own batches


def test_authors_baseline_patch_size_must_be_2():
    wide = bench_models.BenchModel("swinlstm-b", dict(img_size=16, patch_size=4, depths=[1]))
    assert not wide.applies("authors") and wide.applies("fp32")
    with pytest.raises(ConfigError, match="patch_size must be 2"):
        bench_models._AuthorsNet("/nonexistent", "swinlstm-b", wide.config)


def _fake_row(spec):
    """What a worker returns, without measuring (the driver's bookkeeping only)."""
    row = dict(
        params=30_000, flops=1e9, infer_s=0.5, train_s=2.0, peak_infer_mb=10.0,
        peak_train_mb=50.0, **dict.fromkeys(bench_models.VERSUS_FIELDS),
    )  # fmt: skip
    if spec["mode"] == "compile":
        row.update(flops=None, compile_infer_s=30.0, compile_train_s=90.0)
    if spec["mode"] == "authors":
        row.update(flops=2e9)
    if spec["versus_authors"]:
        row.update(authors_infer_s=0.6, authors_train_s=3.0)
        row.update(infer_vs_authors=1.2, train_vs_authors=1.5)
        if spec["mode"] == "compile":
            row.update(infer_vs_authors_10min=1.1, train_vs_authors_10min=1.25)
    return row


def _table(out: str) -> dict[tuple[str, str, str], list[str]]:
    """(model, batch, mode) -> the cells of each table line of ``out``."""
    rows = {}
    for line in out.splitlines():
        if line.startswith("| ") and not line.startswith("| model"):
            cells = [c.strip() for c in line.strip().strip("|").split("|")]
            rows[tuple(cells[:3])] = cells
    return rows


def test_rows_run_at_their_own_batches_with_ratio_columns_and_compile_note(
    tmp_path, monkeypatch, capsys
):
    (tmp_path / "SwinLSTM_B.py").write_text("")  # only looked for: the workers are faked
    specs = []
    monkeypatch.setattr(bench_models, "matmul_gflops", lambda threads, dtype: 100.0)
    monkeypatch.setattr(bench_models, "_spawn", lambda spec: specs.append(spec) or _fake_row(spec))
    out = tmp_path / "rows.json"
    argv = ["--models", "swinlstm-b-small", "convlstm", "--modes", "fp32", "compile"]
    assert bench_models.main([*argv, "--baseline-authors", str(tmp_path), "--json", str(out)]) == 0
    text = capsys.readouterr().out
    # the small row at the issue's batch 8, convlstm at the paper rows' 1 and 4; authors first
    runs = [(s["model"], s["batch"], s["mode"], s["versus_authors"]) for s in specs]
    assert runs == [
        ("swinlstm-b-small", 8, "authors", False),
        ("swinlstm-b-small", 8, "fp32", True),
        ("swinlstm-b-small", 8, "compile", True),
        ("convlstm", 1, "fp32", False),
        ("convlstm", 4, "fp32", False),
    ]
    assert "| infer vs authors | train vs authors |" in text.splitlines()[2]
    table = _table(text)
    assert table["swinlstm-b-small", "8", "fp32"][-2:] == ["1.20", "1.50"]
    assert table["swinlstm-b-small", "8", "compile"][-2:] == ["1.20", "1.50"]
    assert table["swinlstm-b-small", "8", "authors"][-2:] == ["-", "-"]
    assert table["convlstm", "1", "fp32"][-2:] == ["-", "-"]  # no authors' baseline
    # a compile row counts no FLOPs: it shows our fp32 row's per sequence, not the authors'
    assert table["swinlstm-b-small", "8", "compile"][4] == "0.125"
    assert table["swinlstm-b-small", "8", "authors"][4] == "0.25"
    note = [line for line in text.splitlines() if line.startswith("# swinlstm-b-small batch 8")]
    assert len(note) == 1 and "30.0 s (inference) + 90.0 s (training)" in note[0]
    assert "infer 1.10, train 1.25" in note[0]
    rows = _strict_json(out.read_text())["rows"]
    assert rows[2]["compile_train_s"] == 90.0 and rows[2]["train_vs_authors_10min"] == 1.25
    assert rows[1]["train_vs_authors"] == 1.5 and rows[3]["train_vs_authors"] is None


def test_interleaved_authors_baseline_runs_both_in_one_process(
    tmp_path, monkeypatch, capsys, authors_modules
):
    import swinlstm.models

    log, sleep = tmp_path / "calls.log", 0.15
    (tmp_path / "SwinLSTM_B.py").write_text(STAND_IN_B.format(log=str(log), sleep=sleep))
    build = swinlstm.models.build_model

    def logged_build(name, **options):  # ours logs each sequence it starts, as the stand-in
        model = build(name, **options)

        def hook(module, inputs):
            with open(log, "a") as f:
                f.write("ours " + ("train" if torch.is_grad_enabled() else "infer") + "\n")

        model.register_forward_pre_hook(hook)
        return model

    monkeypatch.setattr(swinlstm.models, "build_model", logged_build)
    monkeypatch.setattr(bench_models, "matmul_gflops", lambda threads, dtype: 1.0)
    monkeypatch.setattr(  # the row in this process, through JSON as from the subprocess
        bench_models, "_spawn", lambda spec: json.loads(json.dumps(bench_models.run_row(spec)))
    )
    out = tmp_path / "rows.json"
    argv = ["--models", "swinlstm-b-tiny", "--batch", "1", "--modes", "fp32", "--steps", "1"]
    argv += ["--warmup", "0", "--threads", "1", "--in-len", "2", "--out-len", "1"]
    argv += ["--baseline-authors", str(tmp_path), "--json", str(out)]
    assert bench_models.main(argv) == 0
    # the authors' own row: first calls, one timed round, the FLOP count; then our row: our first
    # calls (peak memory) alone, theirs, then the timed round alternating, our FLOP count
    assert log.read_text().split("\n")[:-1] == [
        *["authors infer", "authors train", "authors train", "authors infer", "authors infer"],
        *["ours infer", "ours train", "authors infer", "authors train"],
        *["authors train", "ours train", "authors infer", "ours infer"],
        "ours infer",
    ]
    ours = _table(capsys.readouterr().out)["swinlstm-b-tiny", "1", "fp32"]
    assert float(ours[-2]) > 1 and float(ours[-1]) > 1  # the sleeping stand-in is slower
    row = _strict_json(out.read_text())["rows"][1]
    assert row["authors_infer_s"] >= 2 * sleep and row["authors_train_s"] >= 2 * sleep
    assert row["infer_vs_authors"] == pytest.approx(row["authors_infer_s"] / row["infer_s"])
    assert row["train_vs_authors"] == pytest.approx(row["authors_train_s"] / row["train_s"])
    assert row["compile_train_s"] is None and row["train_vs_authors_10min"] is None


def test_authors_net_runs_swinlstm_d_with_their_signature(tmp_path, authors_modules):
    (tmp_path / "SwinLSTM_D.py").write_text(STAND_IN_D)
    config = bench_models.MODELS["swinlstm-d-small"].config
    net = bench_models._AuthorsNet(str(tmp_path), "swinlstm-d", config)
    stand_in = sys.modules["SwinLSTM_D"]
    assert stand_in.ARGS == [64, 2, 1, 32, [2, 2], [2, 2], [4, 8], 4]
    out = net(torch.rand(2, 3, 1, 64, 64), 2)  # (B, T, C, H, W), 2 frames out
    assert out.shape == (2, 3 - 1 + 2, 1, 64, 64)
    assert stand_in.CALLS == [((2, 1, 64, 64), 2, 2)] * 4  # one frame a call, both levels' states


@pytest.mark.parametrize(
    ("make", "argv", "says"),
    [
        (False, [], "no directory"),
        (True, ["--models", "swinlstm-d-small"], "SwinLSTM_D.py"),
    ],
)
def test_bad_baseline_authors_dir_is_one_line(tmp_path, capsys, make, argv, says):
    from swinlstm.cli.main import run

    folder = tmp_path / "refcode"
    if make:
        folder.mkdir()
        (folder / "SwinLSTM_B.py").write_text("")  # the -D row needs SwinLSTM_D.py
    assert run(["bench", "models", *argv, "--baseline-authors", str(folder)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "--baseline-authors" in err[0] and says in err[0]


@pytest.mark.parametrize(
    ("argv", "says"),
    [
        (["--models", "swinlstm-b-huge"], "--models: invalid choice: 'swinlstm-b-huge'"),
        (["--modes", "fp64"], "--modes: unknown modes ['fp64']"),
        (["--modes", "authors"], "needs --baseline-authors DIR"),
        (["--warmup", "-1"], "--warmup must be >= 0"),
    ],
)
def test_bad_bench_models_flag_is_one_line(capsys, argv, says):
    from swinlstm.cli.main import run

    assert run(["bench", "models", *argv]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and says in err[0]


def test_bad_flag_run_as_a_module_is_one_line():
    """``python -m swinlstm.bench.models`` (the form docs/benchmarks.md quotes) answers a bad
    flag as the CLI does: one line, exit 2, no traceback."""
    import subprocess

    r = subprocess.run(
        [sys.executable, "-m", "swinlstm.bench.models", "--bogus"], capture_output=True, text=True
    )
    assert r.returncode == 2, r.stderr
    assert r.stderr.strip().splitlines() == [
        "swinlstm bench models: error: unrecognized arguments: --bogus "
        "(see swinlstm bench models --help)"
    ]


def test_compile_seconds_and_the_ten_minute_ratio():
    # untimed calls: the first (compiling) and a warm-up, beyond the 1 s median step
    assert bench_models.compile_seconds([10.0, 1.5, 0.5], 1.0) == pytest.approx(9.5)
    assert bench_models.run_ratio(2.0, 1.0, 0.0) == pytest.approx(2.0)  # no compile: step ratio
    # 300 authors' steps in 600 s; ours take 1000 s compile + 300 s
    assert bench_models.run_ratio(2.0, 1.0, 1000.0) == pytest.approx(600 / 1300)
    assert bench_models.run_ratio(900.0, 1.0, 9.0) == pytest.approx(900 / 10)  # at least 1 step


def test_zoo_row_is_the_zoo_preset_network_and_runs_only_by_name():
    """``swinlstm-b-zoo`` times the network of configs/zoo/swinlstm_b_mmnist.yaml (where
    ``compile: auto`` was measured): its options are the preset's, not a copy that can drift."""
    from pathlib import Path

    from swinlstm.cli.train import config_from_args, standalone_parser

    preset = Path(__file__).resolve().parents[1] / "configs/zoo/swinlstm_b_mmnist.yaml"
    cfg = config_from_args(standalone_parser().parse_args(["--config", str(preset)]))
    row = bench_models.MODELS["swinlstm-b-zoo"]
    assert cfg.model.name == row.name
    preset_network = {k: v for k, v in cfg.model.options.items() if k != "memory_size"}
    assert cfg.model.options["memory_size"] == 0 and "memory_size" not in row.options
    assert {**preset_network, "in_chans": 1} == row.options
    assert row.batches[0] == cfg.data.batch_size  # the preset's batch first
    assert "swinlstm-b-zoo" not in bench_models.PAPER + bench_models.SMALL
    assert bench_models._parse(["--models", "swinlstm-b-zoo"]).models == ["swinlstm-b-zoo"]
