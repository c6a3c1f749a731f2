"""Issue 16: the authors' commands, data layouts and weights give the authors' networks and clips.

Golden values come from the authors' own code (tests/data/lmc_memory_tiny.npz, README there);
their code is never imported here.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch
from lmc_helpers import golden_state_dict, one_thread  # noqa: F401

from swinlstm.cli.main import run

DATA = Path(__file__).parent / "data"


def write_video(folder: Path, frames: np.ndarray) -> Path:
    """(T, H, W) uint8 frames as LMC-Memory's ``folder/frame_xxxxx.png`` (lossless)."""
    folder.mkdir(parents=True)
    for t, frame in enumerate(frames):
        assert cv2.imwrite(str(folder / f"frame_{t:05d}.png"), frame)
    return folder


def authors_lmc_file(path: Path) -> Path:
    """The golden weights saved as the authors' ``nn.DataParallel`` state dict."""
    torch.save({f"module.{k}": v for k, v in golden_state_dict().items()}, path)
    return path


# ----- 1. LMC-Memory's KTH network ends in a sigmoid -----------------------------------------


def test_lmc_kth_test_command_gives_their_forecast(tmp_path):
    """Their README's KTH test command (tiny sizes): --dataset kth alone gives their KTH network
    (final sigmoid), on their video-folder layout; the forecast is their Predictor(dataset='kth')."""
    z = np.load(DATA / "lmc_memory_tiny.npz")
    short = z["input"][0, :, 0]  # (10, 32, 32) uint8
    future = np.random.default_rng(3).integers(0, 256, (3, 32, 32), dtype=np.uint8)
    data = tmp_path / "kth_test"
    write_video(data / "person17_walking_d1", np.concatenate([short, future]))
    ckpt = authors_lmc_file(tmp_path / "trained_file_kth.pt")
    result = tmp_path / "results"
    argv = ["--dataset", "kth", "--make_frame", "True", "--test_data_dir", str(data)]
    argv += ["--test_result_dir", str(result), "--checkpoint_load_file", str(ckpt)]
    argv += ["--img_size", "32", "--img_channel", "1", "--memory_size", "10"]
    argv += ["--short_len", "10", "--out_len", "3", "--batch_size", "8"]
    from swinlstm.cli.test import main

    assert main(argv) == 0
    theirs = z["output_kth_phase2"][0, :, 0]  # in (0, 1): the sigmoid
    target = future.astype(np.float32) / 255
    metrics = json.loads((result / "metrics.json").read_text())
    assert metrics["clips"] == 1  # a video of exactly short_len + out_len frames: one clip
    mse = np.asarray(metrics["per_frame"]["mse"], np.float64)
    # the default protocol: squared error summed over the frame's pixels
    expected = ((theirs.astype(np.float64) - target) ** 2).reshape(3, -1).sum(1)
    np.testing.assert_allclose(mse, expected, rtol=1e-5)
    pngs = sorted((result / "frames").rglob("pred_*.png"))
    assert len(pngs) == 3
    written = np.stack([cv2.imread(str(p), cv2.IMREAD_GRAYSCALE) for p in pngs]) / 255
    assert np.abs(written - theirs).max() <= 1 / 255 + 1e-6


def has_sigmoid(model: torch.nn.Module) -> bool:
    return isinstance(model.decoder[-1], torch.nn.Sigmoid)


@pytest.mark.parametrize(
    "flags, dataset",
    [
        (["--dataset", "kth"], "kth"),
        (["--dataset", "kth", "--final_sigmoid", "False"], "movingmnist"),
    ],
    ids=["derived", "explicit-wins"],
)
def test_lmc_predict_derives_the_sigmoid_from_dataset(tmp_path, flags, dataset):
    z = np.load(DATA / "lmc_memory_tiny.npz")
    ckpt = authors_lmc_file(tmp_path / "trained_file_kth.pt")
    np.save(tmp_path / "clip.npy", z["input"][0])
    argv = ["predict", "--checkpoint", str(ckpt), "--input", str(tmp_path / "clip.npy")]
    argv += ["--out_len", "3", "--output", str(tmp_path / "o"), "--img_size", "32"]
    assert run([*argv, "--memory_size", "10", *flags]) == 0
    pred = np.load(tmp_path / "o" / "prediction.npy")
    expected = np.clip(z[f"output_{dataset}_phase2"][0], 0, 1)
    np.testing.assert_allclose(pred, expected, atol=1e-5)


def test_lmc_export_and_test_parsers_derive_the_sigmoid(tmp_path):
    from swinlstm.cli.loading import checkpoint_model
    from swinlstm.cli.main import build_parser

    ckpt = authors_lmc_file(tmp_path / "trained_file_kth.pt")
    common = ["--checkpoint", str(ckpt), "--img_size", "32", "--memory_size", "10"]
    parser = build_parser()
    for argv, sigmoid in (
        (["export", "--onnx", "x.onnx", "--dataset", "kth", *common], True),
        (["export", "--onnx", "x.onnx", *common], False),
        (["test", "--dataset", "kth", *common], True),
        (["test", "--dataset", "movingmnist", *common], False),
    ):
        model, info = checkpoint_model(parser.parse_args(argv))
        assert has_sigmoid(model) is sigmoid, argv
        assert info["config"].get("final_sigmoid", False) is sigmoid


def test_lmc_train_derives_the_sigmoid_and_our_checkpoint_keeps_its_own(tmp_path):
    from swinlstm.cli.train import config_from_args, standalone_parser
    from swinlstm.engine.checkpoint import save_model
    from swinlstm.engine.train import _prepare_model
    from swinlstm.models import build_model

    base = ["--model", "lmc-convlstm", "--img_size", "32", "--memory_size", "2"]
    parse = standalone_parser().parse_args
    module, _ = _prepare_model(config_from_args(parse([*base, "--dataset", "kth"])))
    assert has_sigmoid(module.model) and module.hparams.model_config["final_sigmoid"] is True
    module, _ = _prepare_model(config_from_args(parse([*base, "--dataset", "movingmnist"])))
    assert not has_sigmoid(module.model)
    cfg = config_from_args(parse([*base, "--dataset", "kth", "--final_sigmoid", "False"]))
    assert not has_sigmoid(_prepare_model(cfg)[0].model)
    # fine-tuning from a checkpoint of ours: the network it records, whatever --dataset says
    ours = build_model("lmc-convlstm", img_size=32, memory_size=2, final_sigmoid=False)
    save_model(ours, tmp_path / "run")
    flags = [*base, "--dataset", "kth", "--checkpoint_load_file", str(tmp_path / "run")]
    assert not has_sigmoid(_prepare_model(config_from_args(parse(flags)))[0].model)


# ----- 4. The SwinLSTM authors' own training flags --------------------------------------------


def _train_cfg(argv: list[str]):
    from swinlstm.cli.train import config_from_args, standalone_parser

    return config_from_args(standalone_parser().parse_args(argv))


def test_swinlstm_model_flag_alone_resolves_their_configs_defaults():
    """`python train.py --model SwinLSTM-B` with configs.py's defaults: their network, clips,
    batch, 2000 epochs of 10000 clips (625 iterations each), validation every 10 epochs,
    ./results; not LMC-Memory's 300000 iterations into ./checkpoints."""
    cfg = _train_cfg(["--model", "SwinLSTM-B"])
    assert (cfg.model.name, cfg.data.dataset, cfg.data.short_len, cfg.data.out_len) == (
        "swinlstm-b",
        "movingmnist",
        10,
        10,
    )
    assert cfg.model.options == {"img_size": 64, "in_chans": 1, "memory_size": 0}
    assert (
        cfg.data.batch_size,
        cfg.output.valid_batch_size,
        cfg.data.workers,
        cfg.optim.lr,
        cfg.data.seed,
    ) == (
        16,
        16,
        8,
        1e-4,
        1234,
    )
    assert (cfg.optim.iterations, cfg.output.print_freq) == (2000 * 625, 10 * 625)
    assert cfg.output.checkpoint_save_dir == "./results"
    assert cfg.data.data_options == {"train_samples": 10000, "valid_samples": 3000}
    assert _train_cfg(["--model", "SwinLSTM-D"]).model.name == "swinlstm-d"
    # our own spelling keeps our (LMC-Memory's train.py) defaults
    ours = _train_cfg(["--model", "swinlstm-b"])
    assert (ours.optim.iterations, ours.output.checkpoint_save_dir) == (300000, "./checkpoints")


def test_swinlstm_flags_map_to_ours():
    cfg = _train_cfg(
        ["--model", "SwinLSTM-D", "--num_frames_input", "4", "--num_frames_output", "6",
         "--input_img_size", "32", "--input_size", "32", "32", "--input_channels", "1",
         "--image_size", "14", "14", "--step_length", "0.2", "--num_objects", "1", "2",
         "--train_samples", "0", "40", "--valid_samples", "40", "50", "--train_batch_size", "4",
         "--valid_batch_size", "5", "--test_batch_size", "7", "--num_workers", "0",
         "--epochs", "3", "--epoch_valid", "2", "--log_train", "5", "--log_valid", "60",
         "--device", "cpu", "--res_dir", "out/r", "--seed", "7", "--lr", "0.001"]
    )  # fmt: skip
    assert (cfg.data.short_len, cfg.data.out_len, cfg.data.img_size, cfg.data.img_channel) == (
        4,
        6,
        32,
        1,
    )
    assert cfg.data.data_options == {
        "digit_size": 14, "step_length": 0.2, "num_digits": [1, 2], "train_digits": 40,
        "train_samples": 40, "valid_samples": 10,
    }  # fmt: skip
    assert (cfg.data.batch_size, cfg.output.valid_batch_size, cfg.data.workers) == (4, 5, 0)
    assert (cfg.optim.iterations, cfg.output.print_freq) == (
        3 * 10,
        2 * 10,
    )  # 40 clips // 4 = 10 an epoch
    assert (
        cfg.output.log_every,
        cfg.hardware.accelerator,
        cfg.hardware.devices,
        cfg.output.checkpoint_save_dir,
    ) == (
        5,
        "cpu",
        1,
        "out/r",
    )
    assert (cfg.data.seed, cfg.optim.lr) == (7, 0.001)
    assert (
        _train_cfg(["--device", "cuda:1"]).hardware.devices == "1,"
    )  # Lightning: the GPU of index 1


@pytest.mark.parametrize(
    "argv, message",
    [
        (["--num_frames_input", "10", "--short_len", "8"], "--num_frames_input 10 and --short_len 8 disagree"),
        (["--input_img_size", "64", "--img_size", "32"], "--input_img_size 64 and --img_size 32 disagree"),
        (["--res_dir", "a", "--checkpoint_save_dir", "b"], "--res_dir a and --checkpoint_save_dir b"),
        (["--epochs", "2", "--iterations", "7"], "--epochs 2 .* and --iterations 7 disagree"),
        (["--train_samples", "5", "10"], "take the first digits"),
        (["--train_samples", "4", "--train_batch_size", "8"], "fewer than one batch"),
        (["--device", "tpu"], "--device takes cpu, cuda or cuda:N"),
        (["--image_size", "28", "20"], "--image_size takes one size or two equal"),
        (["--epochs", "2", "--dataset", "kth"], "--epochs and --epoch_valid count epochs"),
    ],
)  # fmt: skip
def test_swinlstm_flags_conflicting_with_ours_are_one_clear_error(argv, message, capsys):
    from swinlstm.cli.train import main

    with pytest.raises(SystemExit) as exit_:
        main(argv)
    assert exit_.value.code == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and re.search(message, err), err


def test_swinlstm_training_command_runs_with_their_flags(tmp_path):
    """Their configs.py flags end to end (tiny overrides): the .gz digits, the .npy test file,
    epochs of train_samples clips as iterations, validation every epoch_valid epochs, res_dir."""
    from data_writers import write_idx

    from swinlstm.cli.train import main

    digits = np.random.default_rng(0).integers(0, 256, (20, 28, 28), dtype=np.uint8)
    (tmp_path / "data").mkdir()
    gz = write_idx(tmp_path / "data" / "train-images-idx3-ubyte.gz", digits)
    np.save(tmp_path / "data" / "mnist_test_seq.npy", np.zeros((20, 2, 16, 16), np.uint8))
    res = tmp_path / "results"
    argv = [
        "--model", "SwinLSTM-B", "--device", "cpu", "--res_dir", str(res), "--seed", "1234",
        "--num_frames_input", "3", "--num_frames_output", "2", "--image_size", "8",
        "--input_size", "16", "--step_length", "0.1", "--num_objects", "2",
        "--train_samples", "0", "4", "--valid_samples", "4", "6",
        "--train_data_dir", str(gz), "--test_data_dir", str(tmp_path / "data" / "mnist_test_seq.npy"),
        "--input_channels", "1", "--input_img_size", "16", "--patch_size", "2", "--embed_dim", "8",
        "--depths", "1", "--heads_number", "2", "--window_size", "2", "--drop_rate", "0.",
        "--attn_drop_rate", "0.", "--drop_path_rate", "0.1", "--train_batch_size", "2",
        "--valid_batch_size", "2", "--test_batch_size", "2", "--num_workers", "0",
        "--epochs", "2", "--epoch_valid", "1", "--log_train", "1", "--log_valid", "60",
        "--lr", "0.0001", "--progress", "False",
    ]  # fmt: skip
    with pytest.raises(SystemExit) as exit_:
        main(argv)
    assert exit_.value.code == 0
    assert torch.load(res / "last.ckpt", weights_only=True)["iteration"] == 4  # 2 epochs x 2
    rows = (res / "metrics.csv").read_text().splitlines()
    assert [r.split(",")[0] for r in rows[1:]] == ["2", "4"]  # every epoch (2 iterations)
    import yaml

    saved = yaml.safe_load((res / "config.yaml").read_text())
    assert saved["model"]["name"] == "swinlstm-b" and saved["model"]["options"]["embed_dim"] == 8
    assert saved["data"]["data_options"]["train_digits"] == 4 and saved["data"]["short_len"] == 3


# ----- 5. LMC-Memory's optimiser semantics ------------------------------------------------------


@pytest.mark.parametrize("mode, slot_steps", [(None, 4), ("zeros", 4), ("none", 2)])
def test_training_run_zero_grad_mode_reaches_adam(tmp_path, mode, slot_steps):
    """Through the train flags: by default (zeros, their PyTorch 1.6) Adam steps the slots in both
    phases of each of the 2 iterations and its momentum moves them in phase 2; with none, once."""
    from train_helpers import ToyClips

    from swinlstm.cli.train import config_from_args, standalone_parser
    from swinlstm.engine.rules import memory_slots
    from swinlstm.engine.train import run_training

    argv = ["--model", "lmc-convlstm", "--img_size", "16", "--memory_size", "3"]
    argv += ["--short_len", "3", "--out_len", "2", "--batch_size", "2", "--iterations", "2"]
    argv += ["--print_freq", "2", "--iterations_warmup", "0", "--workers", "0"]
    argv += ["--accelerator", "cpu", "--progress", "False", "--long_len", "4"]
    argv += ["--checkpoint_save_dir", str(tmp_path)]
    argv += [] if mode is None else ["--alignment_zero_grad", mode]
    cfg = config_from_args(standalone_parser().parse_args(argv))
    cfg.model.options.update(hidden=8, slot_dim=8, num_layers=1)
    result = run_training(cfg, ToyClips(8), ToyClips(2))
    assert result.module.hparams.alignment_zero_grad == (mode or "zeros")
    slots = memory_slots(result.module.model)[0]
    state = result.trainer.optimizers[0].state[slots]
    assert float(state["step"]) == slot_steps


# ----- 6. Smaller divergences -------------------------------------------------------------------


def test_long_len_left_out_is_lmc_default_30():
    from swinlstm.engine.config import RunConfig
    from swinlstm.engine.train import resolved_long_len

    assert RunConfig().data.long_len is None
    cfg = _train_cfg(["--model", "lmc-convlstm", "--short_len", "10", "--out_len", "30"])
    assert resolved_long_len(cfg, memory=True) == 30  # LMC's train.py default
    cfg = _train_cfg(["--model", "lmc-convlstm", "--short_len", "4", "--out_len", "4"])
    assert resolved_long_len(cfg, memory=True) == 8  # at most the clip
    cfg = _train_cfg(["--model", "lmc-convlstm", "--long_len", "0"])
    assert resolved_long_len(cfg, memory=True) == 0  # asked for: the whole clip
    assert resolved_long_len(cfg, memory=False) == 0


def test_warmup_uses_the_first_short_len_plus_10_frames_even_with_a_data_long_clip(monkeypatch):
    """The authors' warm-up long clip is frames 0 .. short_len + 10 whatever --long_len gives."""
    import swinlstm.engine.module as module_mod

    seen = {}

    def record(model, opt, inputs, targets, long, out_len, **kw):
        seen.update(long=long, out_len=out_len)
        return {"loss": 0.0}

    monkeypatch.setattr(module_mod, "memory_alignment_step", record)
    module = module_mod.PredictionModule(
        "lmc-convlstm",
        {"img_size": 16, "memory_size": 2, "hidden": 4, "slot_dim": 8, "num_layers": 1},
        short_len=3,
        out_len=10,
        iterations_warmup=5,
    )
    module.optimizers = lambda: None
    module.lr_schedulers = lambda: None
    clip = torch.arange(13.0).view(1, 13, 1, 1, 1).expand(2, 13, 1, 16, 16) / 13
    long = clip[:, 7:11]  # the data's random 4-frame window, shorter than short_len + 10
    module._memory_step(clip[:, :3], clip[:, 3:], long)
    assert seen["out_len"] == 10 and torch.equal(seen["long"], clip[:, :13])
    module.iteration = 5  # after warm-up: the data's long clip
    module._memory_step(clip[:, :3], clip[:, 3:], long)
    assert torch.equal(seen["long"], long)


def test_checkpoint_load_false_does_not_load_the_file(tmp_path):
    from swinlstm.engine.checkpoint import save_model
    from swinlstm.engine.train import _prepare_model
    from swinlstm.models import build_model

    small = {"img_size": 16, "memory_size": 2, "hidden": 4, "slot_dim": 8, "num_layers": 1}
    torch.manual_seed(5)
    saved = build_model("lmc-convlstm", **small)
    save_model(saved, tmp_path / "run")
    base = ["--model", "lmc-convlstm", "--checkpoint_load_file", str(tmp_path / "run")]

    def prepared(flags):
        cfg = _train_cfg([*base, *flags])
        cfg.model.options.update(small)
        return _prepare_model(cfg)[0]

    def same(module) -> bool:
        return torch.equal(module.model.memory.memory_w, saved.memory.memory_w)

    module = prepared(["--checkpoint_load", "False"])
    assert not same(module) and module.hparams.skip_warmup is False  # their warm-up runs
    for flags in (["--checkpoint_load", "True"], []):
        module = prepared(flags)
        assert same(module) and module.hparams.skip_warmup is True
    with pytest.raises(ValueError, match="--checkpoint_load True needs --checkpoint_load_file"):
        _prepare_model(_train_cfg(["--model", "lmc-convlstm", "--checkpoint_load", "True"]))


def test_openstl_moving_mnist_preset_trains_on_every_digit(tmp_path, caplog):
    import yaml
    from data_writers import write_idx

    from swinlstm.data import build_datasets

    preset = yaml.safe_load((DATA.parent.parent / "configs" / "mmnist_convlstm.yaml").read_text())
    assert preset["data_options"]["train_digits"] == "all"  # OpenSTL's load_mnist: all 60000
    digits = np.random.default_rng(1).integers(0, 256, (30, 28, 28), dtype=np.uint8)
    gz = write_idx(tmp_path / "train-images-idx3-ubyte.gz", digits)
    s = build_datasets("movingmnist", train_dir=gz, short_len=2, out_len=2, train_digits="all")
    assert s.info["digits"].startswith("30 train")
    assert "reuse the training digits" in caplog.text


def test_lmc_kth_train_command_on_their_layout(tmp_path, capsys):
    """Their README's KTH training command (tiny sizes) on their video-folder layout: every
    window trains, non-overlapping ones validate, and the KTH network ends in the sigmoid."""
    from swinlstm.cli.train import main

    rng = np.random.default_rng(0)
    for split, n in (("train", 9), ("valid", 8)):
        for v in range(2):
            write_video(
                tmp_path / split / f"video_{v:05d}",
                rng.integers(0, 256, (n, 16, 16)).astype(np.uint8),
            )
    out = tmp_path / "checkpoints"
    argv = ["--dataset", "kth", "--train_data_dir", str(tmp_path / "train")]
    argv += ["--valid_data_dir", str(tmp_path / "valid"), "--checkpoint_save_dir", str(out)]
    argv += ["--img_size", "16", "--img_channel", "1", "--memory_size", "4"]
    argv += ["--short_len", "2", "--long_len", "4", "--out_len", "2", "--batch_size", "2"]
    argv += ["--lr", "0.0002", "--iterations", "2", "--model", "lmc-convlstm", "--print_freq", "2"]
    argv += ["--workers", "0", "--progress", "False"]
    with pytest.raises(SystemExit) as exit_:
        main(argv)
    assert exit_.value.code == 0, capsys.readouterr().err
    ckpt = torch.load(out / "last.ckpt", weights_only=True)
    assert ckpt["iteration"] == 2
    assert ckpt["hyper_parameters"]["model_config"]["final_sigmoid"] is True
    import yaml

    saved = yaml.safe_load((out / "config.yaml").read_text())
    assert saved["data"]["long_len"] == 4 and saved["optim"]["alignment_zero_grad"] == "zeros"


def test_swinlstm_test_command_with_their_defaults_and_flags(tmp_path, monkeypatch, capsys):
    """Their test.py, run where their files are (./Pretrained/trained_model_state_dict,
    ./data/mnist_test_seq.npy) with only their configs.py flags: their network, their metrics."""
    z = np.load(DATA / "swinlstm_d_tiny.npz")
    sd = {
        k[len("state_dict/") :]: torch.from_numpy(z[k])
        for k in z.files
        if k.startswith("state_dict/")
    }
    (tmp_path / "Pretrained").mkdir()
    torch.save(sd, tmp_path / "Pretrained" / "trained_model_state_dict")
    clips = np.concatenate([z["input"], z["output"][:, -4:]], axis=1)  # targets: their forecast
    (tmp_path / "data").mkdir()
    seq = np.clip(np.rint(clips * 255), 0, 255)[:, :, 0].astype(np.uint8).transpose(1, 0, 2, 3)
    np.save(tmp_path / "data" / "mnist_test_seq.npy", seq)
    monkeypatch.chdir(tmp_path)
    from swinlstm.cli.test import main

    argv = ["--num_frames_input", "6", "--num_frames_output", "4", "--input_img_size", "32"]
    argv += ["--input_channels", "1", "--patch_size", "2", "--embed_dim", "16"]
    argv += ["--depths_down", "2", "2", "--depths_up", "2", "2", "--heads_number", "2", "4"]
    argv += [
        "--window_size",
        "4",
        "--test_batch_size",
        "2",
        "--num_workers",
        "0",
        "--device",
        "cpu",
    ]
    argv += ["--res_dir", "./results", "--seed", "1234", "--epochs", "2000", "--lr", "0.0001"]
    assert main(argv) == 0, capsys.readouterr().err
    metrics = json.loads((tmp_path / "results" / "metrics.json").read_text())
    assert metrics["model"] == "swinlstm-d" and metrics["checkpoint_format"] == "official"
    assert metrics["protocol"] == "swinlstm" and metrics["clips"] == 2
    assert metrics["mse"] < 1.0  # the targets are the authors' own forecast (8-bit)
    # elsewhere, without their files, the checkpoint is still required: one line
    monkeypatch.chdir(tmp_path / "data")
    assert main(["--dataset", "movingmnist"]) == 2
    assert "--checkpoint_load_file is required" in capsys.readouterr().err
