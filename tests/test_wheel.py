"""The wheel: built offline from the sources, it ships the presets and zoo files, declares what the
code imports, and its ``swinlstm demo`` runs from a folder outside the repository; ``--config``
finds a packaged preset by name."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import sysconfig
import zipfile
from email.parser import Parser
from pathlib import Path

import pytest

from swinlstm.errors import MissingPathError
from swinlstm.presets import find_preset, packaged_preset, packaged_presets

ROOT = Path(__file__).resolve().parents[1]
PRESETS = sorted(p.relative_to(ROOT / "configs") for p in (ROOT / "configs").rglob("*.yaml"))
ENTRIES = sorted(
    p.relative_to(ROOT / "swinlstm")
    for p in (ROOT / "swinlstm" / "zoo" / "entries").glob("*/*")
    if p.is_file()
)


def _run(cmd: list[str], cwd: Path, env: dict[str, str] | None = None, timeout: int = 120):
    done = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout)
    assert done.returncode == 0, f"{cmd}: rc {done.returncode}\n{done.stdout}\n{done.stderr}"
    return done


@pytest.fixture(scope="module")
def wheel(tmp_path_factory) -> Path:
    """``pip wheel --no-deps --no-build-isolation --no-index`` of a copy of the sources (the
    build writes its build/ folder in the copy, not in the repository)."""
    tmp = tmp_path_factory.mktemp("wheel")
    src = tmp / "src"
    src.mkdir()
    for name in ("pyproject.toml", "README.md"):
        shutil.copy2(ROOT / name, src / name)
    shutil.copytree(ROOT / "configs", src / "configs")
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc")
    shutil.copytree(ROOT / "swinlstm", src / "swinlstm", symlinks=True, ignore=ignore)
    pip = [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "--no-index"]
    _run([*pip, "-q", "-w", str(tmp / "dist"), str(src)], cwd=tmp)
    (built,) = (tmp / "dist").glob("swinlstm-*.whl")
    return built


@pytest.fixture(scope="module")
def venv(wheel, tmp_path_factory) -> Path:
    """A fresh venv that sees the test venv's packages (torch, lightning ...) but not its
    editable swinlstm, with the wheel installed ``--no-deps``."""
    env_dir = tmp_path_factory.mktemp("venv") / "env"
    _run([sys.executable, "-m", "venv", "--without-pip", str(env_dir)], cwd=env_dir.parent)
    python = env_dir / "bin" / "python"
    own = _run(
        [str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"], env_dir
    )
    # the test venv's site-packages as a plain path (what --system-site-packages gives a venv
    # made from the system Python): its .pth files, the editable install among them, are not run
    (Path(own.stdout.strip()) / "test_venv.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    pip = [sys.executable, "-m", "pip", "--python", str(python), "install", "-q"]
    _run([*pip, "--no-deps", "--no-index", str(wheel)], cwd=env_dir.parent)
    return env_dir


def _clean_env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PYTHONHOME")}
    env["MPLBACKEND"] = "Agg"
    return env


def test_wheel_lists_the_presets_and_zoo_files(wheel):
    names = set(zipfile.ZipFile(wheel).namelist())
    assert PRESETS and Path("demo.yaml") in PRESETS and Path("zoo/convlstm_mmnist.yaml") in PRESETS
    for preset in PRESETS:
        assert f"swinlstm/configs/{preset.as_posix()}" in names
    for entry in ENTRIES:  # the shipped zoo entries, where the tree has any
        assert f"swinlstm/{entry.as_posix()}" in names
    assert "swinlstm/cli/main.py" in names and not any(n.startswith("tests/") for n in names)


def test_wheel_declares_what_the_code_imports(wheel):
    with zipfile.ZipFile(wheel) as zf:
        (meta,) = [n for n in zf.namelist() if n.endswith(".dist-info/METADATA")]
        message = Parser().parsestr(zf.read(meta).decode())
    required = [r.split(";")[0].strip() for r in message.get_all("Requires-Dist")]
    base = {r.split(">")[0].split("<")[0].split("=")[0] for r in required if "extra" not in r}
    assert {"torch", "lightning", "numpy", "pyyaml", "tqdm", "safetensors"} <= base
    assert not {"einops", "rich"} & base
    assert {"onnx", "lpips", "wandb", "mlflow", "tensorboard", "loggers", "dev"} <= set(
        message.get_all("Provides-Extra")
    )


def test_installed_wheel_reads_its_own_presets_from_any_folder(venv, tmp_path):
    python = str(venv / "bin" / "python")
    code = (
        "import swinlstm, swinlstm.presets as p; print(swinlstm.__file__); "
        "print(p.find_preset('demo')); print(p.find_preset('configs/zoo/convlstm_mmnist.yaml'))"
    )
    lines = _run([python, "-c", code], cwd=tmp_path, env=_clean_env()).stdout.split()
    assert all(line.startswith(str(venv)) for line in lines), lines
    assert lines[1].endswith("swinlstm/configs/demo.yaml")
    help_text = _run([str(venv / "bin" / "swinlstm"), "demo", "--help"], tmp_path, _clean_env())
    assert "--iterations" in help_text.stdout


@pytest.mark.slow
def test_installed_wheel_runs_a_tiny_demo_outside_the_repository(venv, tmp_path):
    cmd = [str(venv / "bin" / "swinlstm"), "demo", "--output", "out", "--iterations", "1"]
    cmd += ["--test_clips", "2", "--num_frames_to_save", "1"]
    done = _run(cmd, cwd=tmp_path, env=_clean_env(), timeout=300)
    assert f"training {venv}" in done.stdout  # the packaged preset, not a clone's
    assert (tmp_path / "out" / "metrics.json").is_file()
    assert (tmp_path / "out" / "checkpoints" / "model.safetensors").is_file()


def test_config_names_a_packaged_preset(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # no configs/ here: the packaged ones answer
    demo = packaged_preset("demo")
    assert demo is not None and demo.name == "demo.yaml" and demo.is_file()
    for name in ("demo", "demo.yaml", "configs/demo.yaml", "./configs/demo.yaml"):
        assert find_preset(name) == demo
    assert find_preset("zoo/convlstm_mmnist").name == "convlstm_mmnist.yaml"
    assert "demo" in packaged_presets() and "zoo/swinlstm_b_mmnist" in packaged_presets()


def test_a_file_of_that_name_wins_over_the_packaged_preset(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "configs").mkdir()
    (tmp_path / "configs" / "demo.yaml").write_text("iterations: 3\n")
    assert find_preset("configs/demo.yaml") == Path("configs/demo.yaml")


@pytest.mark.parametrize("name", ["nope", "configs/nope.yaml", "../configs/demo", ""])
def test_an_unknown_preset_is_one_line_naming_the_flag(name, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    with pytest.raises(MissingPathError) as err:
        find_preset(name)
    message = str(err.value)
    assert message.startswith(f"--config file not found: {name} (packaged presets: ")
    assert "demo" in message and "\n" not in message


def test_train_cli_reads_a_packaged_preset_by_name(tmp_path, monkeypatch):
    from swinlstm.engine.config import load_yaml

    monkeypatch.chdir(tmp_path)
    assert load_yaml("demo")["model"] == "swinlstm-b"
