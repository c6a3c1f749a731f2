"""The typed run configuration (swinlstm.engine.config): its two forms, the flags built from its
table, presets, config.yaml, and resuming a run written in the flat form of older code."""

from __future__ import annotations

import glob
from pathlib import Path

import pytest
import torch
import yaml

from swinlstm.cli.main import run
from swinlstm.cli.train import config_from_args, standalone_parser
from swinlstm.engine.config import (
    FLAT_KEYS,
    MODEL_OPTIONS,
    OPTION_KEYS,
    SETTINGS,
    DataConfig,
    RunConfig,
    load_yaml,
    model_options_for_data,
)
from swinlstm.errors import ConfigError
from tests.train_helpers import ToyClips, toy_config

ROOT = Path(__file__).resolve().parents[1]
PRESETS = sorted(glob.glob(str(ROOT / "configs" / "*.yaml")))
PRESETS += sorted(glob.glob(str(ROOT / "configs" / "zoo" / "*.yaml")))

FLAT = {
    "dataset": "movingmnist",
    "model": "swinlstm-b",
    "img_size": 32,
    "short_len": 4,
    "out_len": 6,
    "memory_size": 0,
    "patch_size": 2,
    "embed_dim": 8,
    "depths": [2],
    "heads_number": [2],
    "window_size": 4,
    "batch_size": 4,
    "lr": 0.0005,
    "schedule": "cosine",
    "print_freq": 50,
    "log_train": 5,
    "accelerator": "cpu",
    "data_options": {"train_samples": 100, "valid_samples": 10},
}
NESTED = {
    "data": {
        "dataset": "movingmnist",
        "img_size": 32,
        "short_len": 4,
        "out_len": 6,
        "batch_size": 4,
        "data_options": {"train_samples": 100, "valid_samples": 10},
    },
    "model": {
        "name": "swinlstm-b",
        "options": {
            "memory_size": 0,
            "patch_size": 2,
            "embed_dim": 8,
            "depths": [2],
            "num_heads": [2],
            "window_size": 4,
        },
    },
    "optim": {"lr": 0.0005, "schedule": "cosine"},
    "output": {"print_freq": 50, "log_every": 5},
    "hardware": {"accelerator": "cpu"},
}


def _write(path: Path, data: dict) -> str:
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return str(path)


def _train_cfg(argv: list[str]) -> RunConfig:
    return config_from_args(standalone_parser().parse_args(argv))


def test_flat_and_nested_forms_give_the_same_run_config(tmp_path):
    assert RunConfig.from_dict(FLAT) == RunConfig.from_dict(NESTED)
    cfg = RunConfig.from_dict(FLAT)
    assert cfg.model.options["num_heads"] == [2] and cfg.output.log_every == 5
    assert cfg.data.batch_size == 4 and cfg.optim.lr == 0.0005
    flat = _train_cfg(["--config", _write(tmp_path / "flat.yaml", FLAT)])
    nested = _train_cfg(["--config", _write(tmp_path / "nested.yaml", NESTED)])
    assert flat == nested
    # resolved: the model is built for the data's frames
    assert (nested.model.options["img_size"], nested.model.options["in_chans"]) == (32, 1)


def test_flags_win_over_the_preset(tmp_path):
    preset = _write(tmp_path / "nested.yaml", NESTED)
    cfg = _train_cfg(
        ["--config", preset, "--lr", "0.002", "--window_size", "2", "--print_freq", "7"]
    )
    assert (cfg.optim.lr, cfg.model.options["window_size"], cfg.output.print_freq) == (0.002, 2, 7)
    assert cfg.model.options["embed_dim"] == 8 and cfg.optim.schedule == "cosine"  # the preset's
    # another model with the preset's options of SwinLSTM: one line naming them
    swin = "--depths --embed_dim --heads_number --window_size do not apply to model convlstm"
    with pytest.raises(ConfigError, match=swin):
        _train_cfg(["--config", preset, "--model", "convlstm"])


@pytest.mark.parametrize("form", [FLAT, NESTED])
def test_data_options_given_are_laid_over_the_presets(tmp_path, form):
    preset = _write(tmp_path / "preset.yaml", form)
    argv = ["--config", preset, "--data_options", "valid_samples=3", "digit_size=14"]
    cfg = _train_cfg(argv)
    assert cfg.data.data_options == {"train_samples": 100, "valid_samples": 3, "digit_size": 14}


@pytest.mark.parametrize(
    "data, key",
    [
        ({"lr": 0.1, "learning_rate": 3}, "learning_rate"),
        ({"optim": {"learning_rate": 3}, "data": {}}, "optim.learning_rate"),
    ],
)
def test_an_unknown_key_is_one_line_naming_it_and_the_file(tmp_path, capsys, data, key):
    path = _write(tmp_path / "bad.yaml", data)
    with pytest.raises(ConfigError, match=f"^{path}: unknown keys {key}$"):
        _train_cfg(["--config", path])
    with pytest.raises(ConfigError, match=f"^unknown training settings: {key}$"):
        RunConfig.from_dict(data)
    assert run(["train", "--config", path]) == 2
    err = capsys.readouterr().err
    assert err.strip().splitlines() == [f"swinlstm train: error: {path}: unknown keys {key}"]


def _train_actions():
    parser = standalone_parser()
    authors = next(g for g in parser._action_groups if "SwinLSTM authors" in (g.title or ""))
    theirs = {a.dest for a in authors._group_actions}
    return parser, theirs


def test_every_setting_has_a_flag_and_every_train_flag_a_setting():
    parser, theirs = _train_actions()
    dests = {a.dest for a in parser._actions}
    for row in SETTINGS:
        if row.name == "options":  # the model's options have a flag each (MODEL_OPTIONS)
            continue
        assert row.dest in dests, f"{row.section}.{row.name}"
        assert row.help, f"{row.section}.{row.name} has no help"
    for option in MODEL_OPTIONS.values():
        assert option.flags[0].lstrip("-") in dests
    # ours map onto a setting; theirs (the SwinLSTM authors' configs.py) onto ours in
    # engine/dialects.py; --test_data_dir is their configs.py's too (test reads it)
    others = {"help", "config", "test_data_dir"}
    for action in parser._actions:
        if action.dest in others or action.dest in theirs:
            continue
        assert action.dest in FLAT_KEYS or action.dest in OPTION_KEYS, action.dest


def test_no_setting_is_listed_twice():
    rows = [(row.section, row.name) for row in SETTINGS]
    assert len(rows) == len(set(rows))
    flags = [f for row in SETTINGS for f in row.flags] + [
        f for o in MODEL_OPTIONS.values() for f in o.flags
    ]
    assert len(flags) == len(set(flags))


def test_config_yaml_round_trips(tmp_path):
    cfg = RunConfig.from_dict(FLAT)
    cfg.hardware.devices = "0,"
    cfg.output.valid_metrics = ["mse", "ssim"]
    text = yaml.safe_dump(cfg.to_dict(), sort_keys=False)
    again = RunConfig.from_dict(yaml.safe_load(text))
    assert again == cfg and again.to_dict() == cfg.to_dict()
    assert list(cfg.to_dict()) == ["data", "model", "optim", "output", "hardware"]
    # and --config takes a run's config.yaml back
    from swinlstm.engine.train import resolve_config

    assert _train_cfg(["--config", _write(tmp_path / "config.yaml", cfg.to_dict())]) == (
        resolve_config(cfg)
    )


@pytest.mark.parametrize("preset", PRESETS, ids=lambda p: Path(p).name)
def test_every_preset_loads_into_a_run_config(preset):
    cfg = RunConfig.from_dict(yaml.safe_load(Path(preset).read_text()), preset)
    cfg.validate()
    assert cfg.model.name is not None and cfg.data.dataset is not None


# what today's TrainConfig.to_dict wrote into config.yaml and checkpoints: the flat form
OLD_FLAT = {
    "dataset": "movingmnist",
    "train_data_dir": None,
    "valid_data_dir": None,
    "img_size": 16,
    "img_channel": 1,
    "short_len": 3,
    "out_len": 2,
    "long_len": 0,
    "data_options": {},
    "batch_size": 2,
    "workers": 0,
    "seed": 1234,
    "model": "toy",
    "model_config": {"img_size": 16, "in_chans": 1},
    "lr": 0.01,
    "weight_decay": 0.0,
    "schedule": "none",
    "schedule_warmup": 0,
    "min_lr": 1e-6,
    "grad_clip": 0.0,
    "scheduled_sampling": False,
    "sampling_stop_iter": 50000,
    "sampling_changing_rate": 2e-5,
    "iterations": 4,
    "iterations_warmup": 5000,
    "alignment_zero_grad": "zeros",
    "print_freq": 2,
    "log_every": 50,
    "valid_batches": None,
    "valid_batch_size": None,
    "valid_metrics": ["mse", "mae", "ssim", "psnr"],
    "protocol": "default",
    "checkpoint_save_dir": "./checkpoints",
    "checkpoint_load_file": None,
    "checkpoint_every": 10.0,
    "early_stop": 0,
    "resume": False,
    "checkpoint_load": None,
    "accelerator": "cpu",
    "devices": 1,
    "num_nodes": 1,
    "strategy": "auto",
    "precision": "32-true",
    "progress": False,
}


def test_the_old_flat_form_loads():
    cfg = RunConfig.from_dict(OLD_FLAT)
    assert (cfg.model.name, cfg.model.options) == ("toy", {"img_size": 16, "in_chans": 1})
    assert (cfg.data.batch_size, cfg.optim.lr, cfg.output.log_every) == (2, 0.01, 50)
    assert cfg.hardware.accelerator == "cpu" and cfg.output.progress is False


def test_a_run_written_by_the_old_code_resumes(tmp_path):
    from swinlstm.engine.train import run_training

    # a nested mapping is accepted as well as a RunConfig or the flat form
    nested = RunConfig.from_dict(toy_config(tmp_path)).to_dict()
    run_training(nested, ToyClips(8), ToyClips(3))
    assert yaml.safe_load((tmp_path / "config.yaml").read_text())["data"]["batch_size"] == 2
    # make it the old code's: flat train_config in last.ckpt and a flat config.yaml
    last = tmp_path / "last.ckpt"
    ckpt = torch.load(last, weights_only=True)
    ckpt["train_config"] = dict(OLD_FLAT, checkpoint_save_dir=str(tmp_path))
    torch.save(ckpt, last)
    (tmp_path / "config.yaml").write_text(yaml.safe_dump(ckpt["train_config"]))
    # settings left out take the old run's (batch_size 2, not the default 16); iterations may grow
    silent = toy_config(tmp_path, iterations=6, resume=True)
    del silent["batch_size"]
    result = run_training(silent, ToyClips(8), ToyClips(3))
    assert result.module.iteration == 6
    written = RunConfig.from_dict(yaml.safe_load((tmp_path / "config.yaml").read_text()))
    assert written.data.batch_size == 2 and written.optim.iterations == 6
    # a setting a resumed run may not change is refused, naming it (old record too)
    ckpt = torch.load(last, weights_only=True)
    ckpt["train_config"] = dict(OLD_FLAT, checkpoint_save_dir=str(tmp_path), iterations=6)
    torch.save(ckpt, last)
    changed = toy_config(tmp_path, iterations=8, resume=True, lr=5e-3)
    with pytest.raises(ConfigError, match="was trained with lr=0.01; the flags give lr=0.005"):
        run_training(changed, ToyClips(8), ToyClips(3))


def test_the_model_is_built_for_the_datas_frames_unless_its_options_say_otherwise():
    data = DataConfig(img_size=[32, 48], img_channel=3)
    assert model_options_for_data({"window_size": 4}, data) == {
        "window_size": 4,
        "img_size": [32, 48],
        "in_chans": 3,
    }
    assert model_options_for_data({"img_size": 16}, data)["img_size"] == 16


@pytest.mark.parametrize(
    "change, message",
    [
        ({"lr": 0}, "--lr must be > 0, got 0"),
        ({"short_len": 0}, "--short_len must be >= 1, got 0"),
        ({"long_len": 9, "short_len": 2, "out_len": 3}, "--long_len 9 is longer than the clip"),
        ({"early_stop": -1}, "--early_stop must be >= 0 validations"),
        ({"checkpoint_every": -1.0}, "--checkpoint_every must be >= 0 minutes"),
        ({"img_size": [1, 2, 3]}, "--img_size takes H or H W, got"),
    ],
)
def test_settings_no_run_can_use_are_one_line_naming_the_flag(change, message):
    with pytest.raises(ConfigError, match=message):
        RunConfig.from_dict({**FLAT, **change}).validate()


def test_bench_train_measures_a_preset_through_the_engine(tmp_path):
    from swinlstm.bench.train import measure

    preset = {
        "model": "convlstm",
        "img_size": 16,
        "short_len": 2,
        "out_len": 3,
        "patch_size": 4,
        "num_hidden": [4],
        "filter_size": 3,
        "accelerator": "cpu",
        "data_options": {"train_samples": 2, "valid_samples": 1, "digit_size": 14},
    }
    row = measure(_write(tmp_path / "tiny.yaml", preset), 1, 4, 1)
    assert (row["model"], row["frames"], row["batch"], row["timed"]) == (
        "convlstm",
        "2->3 @ 16",
        1,
        2,
    )


def test_nothing_below_the_cli_imports_it():
    import re

    # an import statement, or a module name in a string (importlib)
    imports = re.compile(r"(import|from) swinlstm(\.cli\b| import cli\b)|[\"']swinlstm\.cli")
    for layer in ("engine", "bench", "models", "data", "metrics"):
        for path in sorted((ROOT / "swinlstm" / layer).rglob("*.py")):
            assert not imports.search(path.read_text()), path


def test_a_variant_name_is_its_base_model_with_its_published_options():
    from swinlstm.models import VARIANTS

    cfg = RunConfig.from_dict({"model": "swinlstm-d-mmnist", "window_size": 2})
    assert cfg.model.name == "swinlstm-d"  # checkpoints and resume see the base name
    published = dict(VARIANTS["swinlstm-d-mmnist"].options)
    assert cfg.model.options == {**published, "window_size": 2}  # given options win
    sized = RunConfig.from_dict({"model": "swinlstm-b-mmnist", "img_size": 32, "img_channel": 3})
    assert "img_size" not in sized.model.options and "in_chans" not in sized.model.options


def test_presets_name_variants_and_train_the_same_network_as_before():
    # the options each preset wrote out before it named its variant (configs.py values)
    cfg = RunConfig.from_dict(load_yaml("configs/mmnist_swinlstm_d.yaml"))
    assert cfg.model.name == "swinlstm-d"
    assert {
        k: cfg.model.options[k]
        for k in ("patch_size", "embed_dim", "depths_down", "depths_up", "num_heads")
    } == dict(patch_size=2, embed_dim=128, depths_down=[2, 6], depths_up=[6, 2], num_heads=[4, 8])
    assert cfg.model.options["window_size"] == 4 and cfg.model.options["drop_path_rate"] == 0.1
    kth = RunConfig.from_dict(load_yaml("configs/kth_10_40_lmc.yaml"))
    assert kth.model.name == "lmc-convlstm" and kth.model.options["final_sigmoid"] is True
