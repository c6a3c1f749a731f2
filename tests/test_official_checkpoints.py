"""The authors' checkpoint formats through ``predict``/``test``/``export``.

The SwinLSTM files are built from the golden vectors (tests/data/swinlstm_{b,d}_tiny.npz: the
authors' own state dicts at tiny sizes and their outputs); the LMC-Memory ones from its golden
weights (tests/lmc_helpers.py, lmc_memory_tiny.npz) and from its published key list and shapes
(tests/data/official_keys.json), with ``module.`` prefixes, as ``nn.DataParallel`` saved them.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from evalcli_helpers import require

from swinlstm.cli.main import run
from swinlstm.models.official import official_family

DATA = Path(__file__).parent / "data"
ROOT = Path(__file__).resolve().parents[1]
B_FLAGS = "--img_size 16 --img_channel 1 --patch_size 2 --embed_dim 32 --depths 4 --heads_number 2 --window_size 4"
D_FLAGS = (
    "--img_size 32 --img_channel 1 --patch_size 2 --embed_dim 16 --depths_down 2 2 "
    "--depths_up 2 2 --heads_number 2 4 --window_size 4"
)


def golden(name: str) -> dict[str, np.ndarray]:
    path = DATA / f"swinlstm_{name}_tiny.npz"
    if not path.is_file():
        pytest.skip(f"{path.name} not in tests/data yet (the models' golden vectors)")
    pytest.importorskip("swinlstm.models.swinlstm", reason="needs the SwinLSTM models")
    z = np.load(path)
    return {k: z[k] for k in z.files}


def authors_file(z: dict, path: Path, prefix: str = "") -> Path:
    """Save the golden state dict as the authors did: a plain torch.save of the state dict."""
    sd = {
        prefix + k[len("state_dict/") :]: torch.from_numpy(v)
        for k, v in z.items()
        if k.startswith("state_dict/")
    }
    torch.save(sd, path)
    return path


def lmc_shapes() -> dict[str, list[int]]:
    """The published LMC-Memory Moving MNIST keys and shapes (tests/data/official_keys.json)."""
    keys = json.loads((DATA / "official_keys.json").read_text())
    return keys["lmc-memory-movingmnist"]["state_dict"]


def test_family_recognised_from_key_names():
    assert official_family(["ST.patch_embed.proj.weight", "ST.layers.0.Swin.x"]) == "swinlstm-b"
    assert official_family(["Downsample.patch_embed.proj.weight"]) == "swinlstm-d"
    assert official_family(["module." + k for k in lmc_shapes()]) == "lmc-convlstm"
    assert official_family(["foo.weight"]) is None


def test_swinlstm_b_authors_file_predicts_their_output(tmp_path):
    z = golden("b")
    ckpt = authors_file(z, tmp_path / "swinlstm_b.pth")
    np.save(tmp_path / "clip.npy", z["input"][0])  # (6, 1, 16, 16) float in [0, 1]
    argv = ["predict", "--checkpoint", str(ckpt), "--input", str(tmp_path / "clip.npy")]
    argv += [
        "--short_len",
        "6",
        "--out_len",
        "4",
        "--output",
        str(tmp_path / "out"),
    ] + B_FLAGS.split()
    assert run(argv) == 0
    pred = np.load(tmp_path / "out" / "prediction.npy")
    np.testing.assert_allclose(pred, np.clip(z["output"][0, -4:], 0, 1), atol=1e-5)


def test_swinlstm_d_trained_model_state_dict_through_test_command(tmp_path, capsys):
    require("swinlstm.metrics", "MetricAccumulator")
    require("swinlstm.data", "build_datasets")
    z = golden("d")
    ckpt = authors_file(z, tmp_path / "trained_model_state_dict")  # the published file's name
    clips = np.clip(
        np.rint(np.concatenate([z["input"], z["output"][:, -4:]], axis=1) * 255), 0, 255
    )
    np.save(tmp_path / "mnist_test_seq.npy", clips[:, :, 0].astype(np.uint8).transpose(1, 0, 2, 3))
    argv = ["test", "--checkpoint_load_file", str(ckpt), "--test_data_dir", str(tmp_path)]
    argv += ["--test_result_dir", str(tmp_path / "r"), "--short_len", "6", "--out_len", "4"]
    assert run(argv + D_FLAGS.split() + ["--memory_size", "100"]) == 0
    result = json.loads((tmp_path / "r" / "metrics.json").read_text())
    # the targets are the model's own forecast (quantised to uint8): near-perfect scores
    assert result["mse"] < 1.0
    assert "swinlstm-d" in capsys.readouterr().out or result.get("model") in (None, "swinlstm-d")


def test_authors_file_of_another_size_is_one_line_exit_2(tmp_path, capsys):
    z = golden("b")
    ckpt = authors_file(z, tmp_path / "swinlstm_b.pth")
    np.save(tmp_path / "clip.npy", z["input"][0])
    argv = [
        "predict",
        "--checkpoint",
        str(ckpt),
        "--input",
        str(tmp_path / "clip.npy"),
        "--short_len",
        "6",
    ]
    flags = B_FLAGS.replace("--embed_dim 32", "--embed_dim 16").split()
    assert run(argv + ["--output", str(tmp_path / "o")] + flags) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "shape mismatches" in err and "swinlstm_b.pth" in err


def test_authors_file_for_another_model_is_one_line_exit_2(tmp_path, capsys):
    z = golden("b")
    ckpt = authors_file(z, tmp_path / "swinlstm_b.pth")
    argv = [
        "export",
        "--checkpoint",
        str(ckpt),
        "--onnx",
        str(tmp_path / "x.onnx"),
        "--model",
        "swinlstm-d",
    ]
    assert run(argv + D_FLAGS.split()) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "missing keys" in err


def test_swinlstm_b_onnx_export_parity(tmp_path, capsys):
    z = golden("b")
    ckpt = authors_file(z, tmp_path / "b.pth", prefix="module.")  # DataParallel-style keys too
    argv = ["export", "--checkpoint", str(ckpt), "--onnx", str(tmp_path / "b.onnx")]
    assert run(argv + ["--short_len", "6", "--out_len", "4"] + B_FLAGS.split()) == 0
    out = capsys.readouterr().out
    err = float(out.split("max abs difference ")[1].split()[0])
    assert err <= 1e-4

    import onnxruntime as ort

    session = ort.InferenceSession(str(tmp_path / "b.onnx"), providers=["CPUExecutionProvider"])
    got = session.run(None, {"frames": z["input"]})[0]
    np.testing.assert_allclose(got, z["output"][:, -4:], atol=1e-4)  # the authors' numbers


def test_pickled_file_is_refused(tmp_path, capsys):
    import argparse

    path = tmp_path / "evil.pt"
    torch.save({"obj": argparse.Namespace(a=1)}, path)  # needs arbitrary unpickling
    assert run(["export", "--checkpoint", str(path), "--onnx", str(tmp_path / "x.onnx")]) == 2
    assert "unpickling are refused" in capsys.readouterr().err


@pytest.mark.slow
def test_seed_command_exactly_as_written_on_an_lmc_memory_file(tmp_path):
    """The authors' Moving MNIST test command, run as a script, on a file in LMC-Memory's
    published layout (every key ``module.``-prefixed, the published shapes, random weights)."""
    pytest.importorskip("swinlstm.models.convlstm", reason="needs the LMC-Memory model")
    require("swinlstm.metrics", "MetricAccumulator")
    require("swinlstm.data", "build_datasets")
    from test_eval_cli import write_frame_folders

    shapes = lmc_shapes()
    gen = torch.Generator().manual_seed(0)
    sd = {"module." + k: torch.randn(*s, generator=gen) * 0.02 for k, s in shapes.items()}
    ckpt = tmp_path / "trained_model.pt"
    torch.save(sd, ckpt)
    data = write_frame_folders(tmp_path / "test", n=1, t=40, size=64)
    result = tmp_path / "results"
    command = (
        f"{sys.executable} test.py --dataset 'movingmnist' --make_frame True --test_data_dir {data} "
        f"--test_result_dir {result} --checkpoint_load_file {ckpt} --img_size 64 --img_channel 1 "
        "--memory_size 100 --short_len 10 --out_len 30 --batch_size 8"
    )
    out = subprocess.run(command, shell=True, cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert out.returncode == 0, out.stderr
    metrics = json.loads((result / "metrics.json").read_text())
    assert metrics["model"] == "lmc-convlstm" and metrics["checkpoint_format"] == "official"
    assert metrics["num_frames"] == 30
    assert len(list((result / "frames" / "00000").glob("pred_*.png"))) == 30


@pytest.mark.parametrize("dataset", ["movingmnist", "kth"])
def test_lmc_memory_authors_file_predicts_their_output(tmp_path, dataset):
    """LMC-Memory's golden weights saved as their DataParallel file; inference is phase 2 with no
    long clip, which is what their test.py runs."""
    lmc_helpers = pytest.importorskip("lmc_helpers", reason="needs the LMC-Memory golden helpers")
    z = np.load(DATA / "lmc_memory_tiny.npz")
    ckpt = tmp_path / "trained_model.pt"
    torch.save({f"module.{k}": v for k, v in lmc_helpers.golden_state_dict().items()}, ckpt)
    np.save(tmp_path / "clip.npy", z["input"][0])  # uint8 (10, 1, 32, 32)
    argv = ["predict", "--checkpoint", str(ckpt), "--input", str(tmp_path / "clip.npy")]
    argv += ["--out_len", "3", "--output", str(tmp_path / "o"), "--img_size", "32"]
    argv += ["--memory_size", "10", "--final_sigmoid", str(dataset == "kth")]
    assert run(argv) == 0
    pred = np.load(tmp_path / "o" / "prediction.npy")
    expected = np.clip(z[f"output_{dataset}_phase2"][0], 0, 1)
    np.testing.assert_allclose(pred, expected, atol=1e-5)


def test_authors_file_tested_on_kth_is_built_for_kth_frames(tmp_path):
    """No --img_size / --img_channel: the LMC-Memory network is built for KTH's 128x128 grey."""
    lmc_helpers = pytest.importorskip("lmc_helpers", reason="needs the LMC-Memory golden helpers")
    from tests.data_writers import ramp_video, write_frames

    ckpt = tmp_path / "trained_model.pt"
    torch.save({f"module.{k}": v for k, v in lmc_helpers.golden_state_dict().items()}, ckpt)
    folder = tmp_path / "kth" / "boxing" / "person17_boxing_d1_uncomp"
    write_frames(folder, ramp_video(5, 24, 32, channels=1), "image_{:04d}.jpg", start=1)
    argv = ["test", "--dataset", "kth", "--checkpoint", str(ckpt), "--test_data_dir"]
    argv += [str(tmp_path / "kth"), "--memory_size", "10", "--final_sigmoid", "True"]
    argv += ["--short_len", "3", "--out_len", "2", "--test_result_dir", str(tmp_path / "r")]
    assert run(argv) == 0
    meta = json.loads((tmp_path / "r" / "metrics.json").read_text())
    assert meta["model_config"]["img_size"] == 128 and meta["model_config"]["in_chans"] == 1
