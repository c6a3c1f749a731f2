"""The package installs, the console script answers, and the model registry refuses bad names."""

import subprocess
import sys

import pytest

import swinlstm
from swinlstm.cli.main import run
from swinlstm.models import build_model, list_models


def test_version_flag(capsys):
    with pytest.raises(SystemExit) as exc:
        run(["--version"])
    assert exc.value.code == 0
    assert swinlstm.__version__ in capsys.readouterr().out


def test_help_lists_subcommands(capsys):
    assert run([]) == 0
    assert "usage: swinlstm" in capsys.readouterr().out


def test_console_script_entry_point():
    out = subprocess.run(
        [sys.executable, "-m", "swinlstm.cli.main", "--help"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert out.returncode == 0, out.stderr
    assert "Spatiotemporal prediction" in out.stdout


def test_unknown_model_name_is_a_clear_error():
    with pytest.raises(ValueError, match="unknown model 'nope'.*swinlstm-d"):
        build_model("nope")
    assert {"swinlstm-b", "swinlstm-d", "convlstm", "lmc-convlstm"} <= set(list_models())


def test_usage_errors_are_one_line_with_exit_code_2(capsys):
    with pytest.raises(SystemExit) as exc:
        run(["train", "--bogus"])
    assert exc.value.code == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "unrecognized arguments: --bogus" in err


def test_compiled_kernels_are_cached_under_the_project_cache(monkeypatch, tmp_path, capsys):
    """A subcommand points PyTorch's compiled-kernel cache at $SWINLSTM_CACHE/inductor (kept
    across reboots, unlike PyTorch's /tmp default), unless the user chose one."""
    import os

    monkeypatch.setenv("SWINLSTM_CACHE", str(tmp_path))
    monkeypatch.delenv("TORCHINDUCTOR_CACHE_DIR", raising=False)
    assert run(["zoo"]) == 0
    assert os.environ["TORCHINDUCTOR_CACHE_DIR"] == str(tmp_path / "inductor")
    monkeypatch.setenv("TORCHINDUCTOR_CACHE_DIR", str(tmp_path / "mine"))
    assert run(["zoo"]) == 0
    assert os.environ["TORCHINDUCTOR_CACHE_DIR"] == str(tmp_path / "mine")
