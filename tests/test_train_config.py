"""How ``train`` resolves its settings: presets over flag defaults, typed flags over presets, each
dataset's own frame size and channels, and a resumed run's model and data from its checkpoint."""

from __future__ import annotations

import glob
import json
import shutil
from pathlib import Path

import pytest
import torch

from swinlstm.cli.main import build_parser, run
from swinlstm.cli.train import config_from_args, standalone_parser
from swinlstm.data import DATASETS, native_frame
from swinlstm.engine.config import FLAT_KEYS, OPTION_KEYS, load_yaml
from swinlstm.models import VARIANTS, build_model
from tests.data_writers import ramp_video, write_frames, write_human36m, write_taxibj_npz
from tests.run_helpers import QUICK, TINY_CONV, train_small_run

ROOT = Path(__file__).resolve().parents[1]
PRESETS = sorted(glob.glob(str(ROOT / "configs" / "*.yaml")))


def _parsers():
    """The root ``train.py`` parser and the ``swinlstm train`` subparser."""
    sub = next(a for a in build_parser()._actions if a.dest == "command").choices["train"]
    return {"train.py": standalone_parser(), "swinlstm train": sub}


def _resolved_value(cfg, key):
    if key in OPTION_KEYS:
        return cfg.model.options[OPTION_KEYS[key]]
    section, name = FLAT_KEYS[key]
    return getattr(getattr(cfg, section), name)


def _preset_value(key, value):
    """A preset's value as RunConfig holds it (``img_size: [64]`` is 64; a named variant is its
    base model with the variant's options)."""
    if key == "img_size" and isinstance(value, list) and len(value) == 1:
        return value[0]
    if key == "model" and value in VARIANTS:
        return VARIANTS[value].base
    return value


@pytest.mark.parametrize("parser", ["train.py", "swinlstm train"])
@pytest.mark.parametrize("preset", PRESETS, ids=[Path(p).stem for p in PRESETS])
def test_every_preset_key_reaches_the_config(preset, parser):
    """No flag default overrides a preset: its dataset and every other key are the run's."""
    cfg = config_from_args(_parsers()[parser].parse_args(["--config", preset]))
    values = load_yaml(preset)
    for key, value in values.items():
        assert _resolved_value(cfg, key) == _preset_value(key, value), key
    assert cfg.data.dataset == values["dataset"]
    if values["model"] in VARIANTS:  # and the options of the variant it names, under its own
        given = {OPTION_KEYS[k] for k in values if k in OPTION_KEYS}
        for option, value in VARIANTS[values["model"]].options.items():
            assert option in given or cfg.model.options[option] == value, option


@pytest.mark.parametrize("parser", ["train.py", "swinlstm train"])
def test_a_typed_flag_wins_over_the_preset(parser):
    preset = str(ROOT / "configs" / "kth_10_20.yaml")
    argv = ["--config", preset, "--dataset", "movingmnist", "--img_size", "32", "--out_len", "5"]
    cfg = config_from_args(_parsers()[parser].parse_args(argv))
    assert (cfg.data.dataset, cfg.data.img_size, cfg.data.out_len) == ("movingmnist", 32, 5)
    assert cfg.model.options["img_size"] == 32 and cfg.model.name == "swinlstm-b"
    # a typed value equal to the old flag default still wins
    cfg = config_from_args(standalone_parser().parse_args(["--config", preset, "--lr", "1e-4"]))
    assert cfg.data.dataset == "kth" and cfg.optim.lr == 1e-4


def test_no_train_flag_has_a_default():
    """A default would be indistinguishable from a typed flag and override a preset's value."""
    for name, parser in _parsers().items():
        for action in parser._actions:
            if action.dest not in ("help", "func", "command"):
                assert action.default is None, (name, action.dest, action.default)


@pytest.mark.parametrize("name", list(DATASETS))
def test_flags_silent_mean_the_datasets_own_frame(name):
    cfg = config_from_args(standalone_parser().parse_args(["--dataset", name]))
    size, channels = native_frame(name)
    assert (cfg.data.img_size, cfg.data.img_channel) == (size, channels)
    assert (cfg.model.options["img_size"], cfg.model.options["in_chans"]) == (size, channels)
    model = build_model(cfg.model.name, **cfg.model.options)
    assert tuple(model.img_size) == (size, size) and model.in_chans == channels
    cfg = config_from_args(
        standalone_parser().parse_args(
            ["--dataset", name, "--img_size", "16", "--img_channel", "3"]
        )
    )
    assert (cfg.data.img_size, cfg.data.img_channel, cfg.model.options["in_chans"]) == (16, 3, 3)


def test_native_frames_are_those_the_datasets_give():
    assert {d: native_frame(d) for d in DATASETS} == {
        "movingmnist": (64, 1),
        "kth": (128, 1),
        "taxibj": (32, 2),
        "human36m": (128, 3),
        "custom": (64, 1),
    }


# ----- training on each dataset at its own size -----------------------------------------------
def _kth(root: Path) -> list[str]:
    for person in (1, 17):
        folder = root / "boxing" / f"person{person:02d}_boxing_d1_uncomp"
        write_frames(folder, ramp_video(6, 24, 32, channels=1), "image_{:04d}.jpg", start=1)
    return ["--train_data_dir", str(root), "--valid_data_dir", str(root)]


def _taxibj(root: Path) -> list[str]:
    root.mkdir()
    write_taxibj_npz(root / "dataset.npz", n=2)
    return ["--train_data_dir", str(root), "--short_len", "4", "--out_len", "4"]


def _human36m(root: Path) -> list[str]:
    write_human36m(root)
    return ["--train_data_dir", str(root), "--short_len", "4", "--out_len", "4"]


def _movingmnist(root: Path) -> list[str]:
    return ["--data_options", "train_samples=2", "valid_samples=1", "digit_size=14"]


WRITERS = {"movingmnist": _movingmnist, "kth": _kth, "taxibj": _taxibj, "human36m": _human36m}


@pytest.mark.parametrize("name", list(WRITERS))
def test_train_builds_the_model_for_each_datasets_frames(tmp_path, name):
    out = tmp_path / "run"
    data = WRITERS[name](tmp_path / "data")
    lengths = [] if "--short_len" in data else ["--short_len", "2", "--out_len", "2"]
    argv = ["train", "--dataset", name, *data, *lengths, *TINY_CONV, *QUICK, "--iterations", "1"]
    assert run([*argv, "--checkpoint_save_dir", str(out)]) == 0
    size, channels = native_frame(name)
    meta = json.loads((out / "model.json").read_text())
    assert (meta["config"]["img_size"], meta["config"]["in_chans"]) == (size, channels)
    assert meta["data"]["dataset"] == name
    assert (meta["data"]["img_size"], meta["data"]["img_channel"]) == (size, channels)
    hp = torch.load(out / "last.ckpt", weights_only=True)["hyper_parameters"]
    assert hp["data"] == meta["data"]


# ----- resuming takes the model from the checkpoint ---------------------------------------------
@pytest.fixture(scope="module")
def small_run(tmp_path_factory) -> Path:
    """A finished 1-iteration ConvLSTM run on 16 px Moving MNIST, 2 -> 3 frames."""
    out = tmp_path_factory.mktemp("small") / "run"
    assert train_small_run(out) == 0
    return out


def test_resume_without_model_flags_takes_the_checkpoints(small_run, tmp_path, capsys):
    out = tmp_path / "run"
    shutil.copytree(small_run, out)
    argv = ["train", "--checkpoint_load_file", str(out / "last.ckpt"), "--iterations", "2"]
    cfg = config_from_args(standalone_parser().parse_args(argv[1:]))
    assert cfg.model.name == "convlstm" and cfg.model.options["num_hidden"] == [4]
    assert (cfg.data.img_size, cfg.data.short_len, cfg.data.out_len) == (16, 2, 3)
    assert cfg.data.data_options == {"train_samples": 2, "valid_samples": 1, "digit_size": 14}
    assert run([*argv, *QUICK, "--checkpoint_save_dir", str(out)]) == 0, capsys.readouterr().err
    assert torch.load(out / "last.ckpt", weights_only=True)["iteration"] == 2


@pytest.mark.parametrize(
    "flags, needle",
    [
        (["--model", "swinlstm-d"], "model swinlstm-d (trained: convlstm)"),
        (["--model", "convlstm", "--num_hidden", "8"], "num_hidden [8] (trained: [4])"),
        (["--img_size", "32"], "img_size 32 (trained: 16)"),
    ],
)
def test_resume_with_a_contradicting_flag_is_one_line(small_run, tmp_path, capsys, flags, needle):
    out = tmp_path / "run"
    shutil.copytree(small_run, out)
    argv = ["train", "--checkpoint_load_file", str(out / "last.ckpt"), "--iterations", "2", *flags]
    assert run([*argv, "--checkpoint_save_dir", str(out), "--progress", "False"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and needle in err and "leave the model flags out" in err, err


def test_valid_metrics_without_mse_still_pick_the_best(tmp_path):
    """val/mse is always computed: ModelCheckpoint monitors it, best.ckpt is written."""
    out = tmp_path / "run"
    assert train_small_run(out, "--valid_metrics", "ssim", "psnr") == 0
    assert (out / "best.ckpt").is_file() and (out / "model.safetensors").is_file()
    header = (out / "metrics.csv").read_text().splitlines()[0].split(",")
    assert {"mse", "ssim", "psnr"} <= set(header) and "mae" not in header
    assert json.loads((out / "model.json").read_text())["val_mse"] > 0


def test_scheduled_sampling_with_a_memory_model_is_refused(tmp_path, capsys):
    flags = ["--memory_size", "2", "--scheduled_sampling", "True"]
    assert train_small_run(tmp_path / "run", *flags) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "--scheduled_sampling True has no effect on a memory" in err


def test_training_ends_without_lightnings_weights_only_line(tmp_path, caplog):
    """last.ckpt saved at the end (iteration 3, last validation at 2) says weights_only itself."""
    import logging

    caplog.set_level(logging.INFO)
    out = tmp_path / "run"
    assert train_small_run(out, "--iterations", "3", "--print_freq", "2") == 0
    assert torch.load(out / "last.ckpt", weights_only=True)["iteration"] == 3
    assert "`Trainer.fit` stopped" in caplog.text  # Lightning's log is captured here
    assert "weights_only" not in caplog.text


def test_early_stop_flag_reaches_the_config_and_defaults_off():
    assert config_from_args(standalone_parser().parse_args([])).output.early_stop == 0
    cfg = config_from_args(standalone_parser().parse_args(["--early_stop", "3"]))
    assert cfg.output.early_stop == 3
