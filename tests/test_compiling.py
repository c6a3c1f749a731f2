"""``compile: auto`` (swinlstm.engine.compiling): which runs ``train`` compiles, how the choice is
recorded, and the bad values at the edges. Nothing here compiles (the choice is the point)."""

from __future__ import annotations

import pytest

import swinlstm.engine.compiling as compiling
from swinlstm.engine.compiling import AUTO_MIN_ITERATIONS, auto_compile, settle_compile
from swinlstm.errors import ConfigError

SMALL = {"embed_dim": 64, "depths": [3], "num_heads": [4], "patch_size": 4, "img_size": 64}
LONG = dict(iterations=7000, accelerator="cpu")


@pytest.fixture
def with_compiler(monkeypatch):
    monkeypatch.setattr(compiling, "cxx_compiler", lambda: "g++")


@pytest.mark.parametrize(
    ("name", "config", "run", "on", "why"),
    [
        ("swinlstm-b", SMALL, LONG, True, "64 wide for 7000 iterations"),
        ("swinlstm-d", {**SMALL, "embed_dim": 16}, LONG, True, "16 wide"),
        # the paper's width: the matmuls dominate, compiling was not measured to pay
        ("swinlstm-b", {**SMALL, "embed_dim": 128}, LONG, False, "embed_dim 128 > 64"),
        ("swinlstm-b", {}, LONG, False, "embed_dim 128 > 64"),  # the model's default width
        ("swinlstm-b", {**SMALL, "memory_size": 10}, LONG, False, "memory"),
        ("swinlstm-b", {**SMALL, "checkpointing": True}, LONG, False, "checkpointing"),
        ("swinlstm-b", SMALL, {**LONG, "iterations": AUTO_MIN_ITERATIONS - 1}, False, "1999 iter"),
        ("swinlstm-b", SMALL, {**LONG, "iterations": AUTO_MIN_ITERATIONS}, True, "2000 iter"),
        ("swinlstm-b", SMALL, {**LONG, "accelerator": "cuda"}, False, "not one CPU process"),
        ("swinlstm-b", SMALL, {**LONG, "devices": 2}, False, "not one CPU process"),
        ("swinlstm-b", SMALL, {**LONG, "precision": "bf16-mixed"}, False, "precision bf16"),
        ("convlstm", {}, LONG, False, "no compiled path"),
    ],
)
def test_auto_compiles_only_long_small_swinlstm_runs_on_one_cpu(
    with_compiler, name, config, run, on, why
):
    chosen, reason = auto_compile(name, config, **run)
    assert chosen is on and why in reason


def test_auto_without_a_cxx_compiler_trains_eager(monkeypatch):
    monkeypatch.setattr(compiling.shutil, "which", lambda name: None)
    assert auto_compile("swinlstm-b", SMALL, **LONG) == (False, "no C++ compiler on the PATH")


def test_settle_makes_compile_a_boolean_and_says_when_it_compiles(with_compiler, capsys):
    # unset (train's default) and "auto" are the policy; a long small run compiles, with one line
    for given in ({}, {"compile": "auto"}, {"compile": "AUTO"}):
        out = settle_compile("swinlstm-b", {**SMALL, **given}, **LONG)
        assert out["compile"] is True
    lines = capsys.readouterr().out.strip().splitlines()
    assert len(lines) == 3 and lines[0].startswith("compile: auto -> on (a SwinLSTM 64 wide")
    assert "--compile False trains eager" in lines[0]
    # a short run: eager, silently
    assert (
        settle_compile("swinlstm-b", SMALL, iterations=600, accelerator="cpu")["compile"] is False
    )
    assert capsys.readouterr().out == ""
    # an explicit choice is kept whatever the policy would say
    assert settle_compile("swinlstm-b", {**SMALL, "compile": False}, **LONG)["compile"] is False
    big = {**SMALL, "embed_dim": 128, "compile": "true"}
    assert settle_compile("swinlstm-b", big, iterations=10, accelerator="cpu")["compile"] is True
    # a ConvLSTM has no compile option: its config is left as it is
    assert settle_compile("convlstm", {"num_hidden": [8]}, **LONG) == {"num_hidden": [8]}


def test_a_bad_compile_value_is_one_config_error():
    with pytest.raises(ConfigError, match="compile must be True, False or auto, got 'sometimes'"):
        settle_compile("swinlstm-b", {**SMALL, "compile": "sometimes"}, **LONG)


def test_the_model_takes_only_a_boolean():
    from swinlstm.models import build_model

    with pytest.raises(ConfigError, match="compile must be True or False, got 'auto'"):
        build_model(
            "swinlstm-b", img_size=16, embed_dim=8, depths=[1], num_heads=[2], compile="auto"
        )


def test_train_records_the_choice_in_the_run_model_config(with_compiler, tmp_path, capsys):
    """A new run resolves ``auto`` before the network is built; the checkpoint's
    ``model_config`` (what a resume rebuilds) holds the boolean."""
    from swinlstm.cli.train import config_from_args, standalone_parser
    from swinlstm.engine.train import _prepare_model

    base = (
        "--model swinlstm-b --img_size 16 --embed_dim 16 --depths 1 --heads_number 2 "
        f"--patch_size 2 --accelerator cpu --checkpoint_save_dir {tmp_path}"
    ).split()
    parse = standalone_parser().parse_args
    long_run, _ = _prepare_model(config_from_args(parse([*base, "--iterations", "5000"])))
    assert long_run.hparams.model_config["compile"] is True and long_run.model.compile
    assert "compile: auto -> on" in capsys.readouterr().out
    short, _ = _prepare_model(config_from_args(parse([*base, "--iterations", "50"])))
    assert short.hparams.model_config["compile"] is False and not short.model.compile
    off, _ = _prepare_model(
        config_from_args(parse([*base, "--iterations", "5000", "--compile", "False"]))
    )
    assert off.hparams.model_config["compile"] is False


def test_bad_compile_flag_is_one_line(capsys):
    from swinlstm.cli.main import run

    with pytest.raises(SystemExit) as stop:
        run(["train", "--model", "swinlstm-b", "--compile", "sometimes"])
    assert stop.value.code == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].endswith(
        "argument --compile: expected True, False or auto, got 'sometimes'"
    )
