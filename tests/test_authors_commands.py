"""Issue 16: the authors' commands, data layouts and weights give the authors' networks and clips.

Golden values come from the authors' own code (tests/data/lmc_memory_tiny.npz, README there);
their code is never imported here.
"""

from __future__ import annotations

import json
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
    from swinlstm.cli.loading import load_checkpoint_model
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
        model, info = load_checkpoint_model(parser.parse_args(argv))
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
