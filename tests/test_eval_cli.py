"""``test.py`` / ``swinlstm test``: the authors' README commands on tiny models and data the
tests write in the real on-disk layouts; every output file checked; bad inputs give one line."""

from __future__ import annotations

import csv
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from evalcli_helpers import ToyPredictor, require  # noqa: E402,F401  (registers "toy-eval")
from PIL import Image

from swinlstm.cli.main import run
from swinlstm.engine.checkpoint import save_model
from swinlstm.models import build_model

require("swinlstm.metrics", "MetricAccumulator")
require("swinlstm.data", "build_datasets")

from swinlstm.cli import test as test_cli  # noqa: E402
from swinlstm.engine.evaluate import evaluate, repeat_last_frame  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]


# ----- data in the real layouts ---------------------------------------------------------------
def moving_squares(n: int, t: int, size: int, seed: int = 0) -> np.ndarray:
    """uint8 (n, t, size, size): one bright square per clip bouncing at a random velocity."""
    rng = np.random.default_rng(seed)
    out = np.zeros((n, t, size, size), np.uint8)
    side = max(2, size // 6)
    for i in range(n):
        y, x = rng.integers(0, size - side, 2)
        vy, vx = rng.choice([-2, -1, 1, 2], 2)
        for k in range(t):
            out[i, k, y : y + side, x : x + side] = 255
            y, x = y + vy, x + vx
            if not 0 <= y <= size - side:
                vy, y = -vy, int(np.clip(y, 0, size - side))
            if not 0 <= x <= size - side:
                vx, x = -vx, int(np.clip(x, 0, size - side))
    return out


def write_mnist_test_seq(path: Path, n: int = 5, t: int = 20, size: int = 64) -> Path:
    """The standard test file's format: uint8 (T, N, H, W), time first."""
    np.save(path, moving_squares(n, t, size).transpose(1, 0, 2, 3))
    return path


def write_frame_folders(root: Path, n: int, t: int, size: int) -> Path:
    """LMC-Memory's layout: root/video_xxxxx/frame_xxxxx.png."""
    import cv2

    for i, clip in enumerate(moving_squares(n, t, size, seed=1)):
        folder = root / f"video_{i:05d}"
        folder.mkdir(parents=True)
        for k, frame in enumerate(clip):
            cv2.imwrite(str(folder / f"frame_{k:05d}.png"), frame)
    return root


def write_kth(root: Path, t: int, size: int = 32) -> Path:
    """KTH's action-folder layout, test persons only: {action}/person17_{action}_d1_uncomp/."""
    import cv2

    for i, action in enumerate(("boxing", "walking")):
        folder = root / action / f"person{17 + i}_{action}_d1_uncomp"
        folder.mkdir(parents=True)
        for k, frame in enumerate(moving_squares(1, t, size, seed=2 + i)[0]):
            cv2.imwrite(str(folder / f"image_{k + 1:04d}.jpg"), frame)
    return root


def toy_checkpoint(directory: Path, img_size: int, in_chans: int = 1) -> Path:
    torch.manual_seed(0)
    save_model(build_model("toy-eval", img_size=img_size, in_chans=in_chans), directory)
    return directory / "model.safetensors"


# ----- output checks --------------------------------------------------------------------------
def check_outputs(
    result: Path, clips: int, t_in: int, t_out: int, metrics=("mse", "mae", "ssim", "psnr")
):
    data = json.loads((result / "metrics.json").read_text())
    for m in metrics:
        assert m in data["means"], f"{m} missing from metrics.json"
    assert data["baseline_last_frame"]["mse"] > 0
    assert len(data["baseline_last_frame"]["per_frame"]["mse"]) == t_out
    with open(result / "metrics.csv") as f:
        rows = list(csv.reader(f))
    assert rows[0][0] == "frame" and set(metrics) <= set(rows[0])
    assert [int(r[0]) for r in rows[1:]] == list(range(1, t_out + 1))  # one row per forecast frame
    assert Image.open(result / "per_frame.png").format == "PNG"
    frames = sorted((result / "frames").iterdir())
    assert [p.name for p in frames] == [f"{i:05d}" for i in range(clips)]
    for folder in frames:
        names = sorted(p.name for p in folder.iterdir())
        expected = [
            f"{kind}_{t:02d}.png"
            for kind, n in (("gt", t_out), ("input", t_in), ("pred", t_out))
            for t in range(n)
        ]
        assert names == sorted(expected)
        with Image.open(folder / "pred_00.png") as im:
            assert im.format == "PNG"
    gifs = sorted((result / "gifs").iterdir())
    assert [p.name for p in gifs] == [f"{i:05d}.gif" for i in range(clips)]
    for g in gifs:
        with Image.open(g) as im:
            assert im.format == "GIF" and im.n_frames == t_in + t_out
    assert Image.open(result / "comparison.png").format == "PNG"
    return data


# ----- the seed commands ----------------------------------------------------------------------
def real_checkpoint(directory: Path, img_size: int) -> Path:
    """A tiny real ConvLSTM (our safetensors format): the seed commands run it as a script."""
    torch.manual_seed(0)
    model = build_model(
        "convlstm", img_size=img_size, in_chans=1, patch_size=4, num_hidden=[8], filter_size=3
    )
    save_model(model, directory)
    return directory / "model.safetensors"


def run_script(command: str) -> subprocess.CompletedProcess:
    """Run ``command`` through the shell from the repository root (quotes as a user types them)."""
    out = subprocess.run(command, shell=True, cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert out.returncode == 0, out.stderr
    return out


def test_seed_command_movingmnist_as_written(tmp_path):
    """The authors' Moving MNIST test command, verbatim but for the paths (10 -> 30 frames)."""
    data = write_frame_folders(tmp_path / "mnist_test", n=3, t=40, size=64)
    ckpt = real_checkpoint(tmp_path / "ckpt", 64)
    result = tmp_path / "results"
    out = run_script(
        f"{sys.executable} test.py --dataset 'movingmnist' --make_frame True --test_data_dir {data} "
        f"--test_result_dir {result} --checkpoint_load_file {ckpt} --img_size 64 --img_channel 1 "
        "--memory_size 100 --short_len 10 --out_len 30 --batch_size 8"
    )
    metrics = check_outputs(result, clips=3, t_in=10, t_out=30)
    assert metrics["model"] == "convlstm" and metrics["num_frames"] == 30
    assert "baseline" in out.stdout and str(result) in out.stdout
    for name in ("mse", "mae", "ssim", "psnr"):  # one line per metric, with its protocol
        assert any(line.startswith(name) and "[default" in line for line in out.stdout.splitlines())


def test_seed_command_kth_as_written(tmp_path):
    """The authors' KTH test command (128 px, 10 -> 40) on KTH's action-folder layout."""
    data = write_kth(tmp_path / "kth", t=50, size=32)
    ckpt = real_checkpoint(tmp_path / "ckpt", 128)
    result = tmp_path / "results"
    run_script(
        f"{sys.executable} test.py --dataset 'kth' --make_frame True --test_data_dir {data} "
        f"--test_result_dir {result} --checkpoint_load_file {ckpt} --img_size 128 "
        "--memory_size 100 --short_len 10 --out_len 40 --batch_size 8"
    )
    check_outputs(result, clips=2, t_in=10, t_out=40)


def test_mnist_test_seq_file_and_num_frames_bound(tmp_path, capsys):
    npy = write_mnist_test_seq(tmp_path / "mnist_test_seq.npy", n=5)
    ckpt = toy_checkpoint(tmp_path / "ckpt", 32)
    result = tmp_path / "r"
    argv = ["test", "--dataset", "movingmnist", "--test_data_dir", str(npy), "--test_result_dir"]
    argv += [str(result), "--checkpoint_load_file", str(ckpt), "--img_size", "32", "--short_len"]
    argv += ["10", "--out_len", "10", "--batch_size", "2", "--make_frame", "yes"]
    assert run(argv + ["--num_frames_to_save", "2"]) == 0
    check_outputs(result, clips=2, t_in=10, t_out=10)  # frames of 2 clips, metrics over all 5
    assert "evaluated 5 clips" in capsys.readouterr().out


def test_make_frame_false_writes_no_frames_and_evaluate_false_no_metrics(tmp_path):
    npy = write_mnist_test_seq(tmp_path / "mnist_test_seq.npy", n=2)
    ckpt = toy_checkpoint(tmp_path / "ckpt", 32)
    base = ["test", "--test_data_dir", str(tmp_path), "--checkpoint", str(ckpt), "--img_size", "32"]
    assert run(base + ["--test_result_dir", str(tmp_path / "a"), "--make_frame", "False"]) == 0
    assert (tmp_path / "a" / "metrics.json").is_file() and not (tmp_path / "a" / "frames").exists()
    argv = base + [
        "--test_result_dir",
        str(tmp_path / "b"),
        "--make_frame",
        "1",
        "--evaluate",
        "no",
    ]
    assert run(argv) == 0
    assert (tmp_path / "b" / "gifs").is_dir() and not (tmp_path / "b" / "metrics.json").exists()
    assert npy.is_file()


# ----- evaluate() -----------------------------------------------------------------------------
class ListSet(torch.utils.data.Dataset):
    def __init__(self, items):
        self.items = items

    def __len__(self):
        return len(self.items)

    def __getitem__(self, i):
        return self.items[i]


def test_evaluate_baseline_is_repeat_last_frame_and_max_batches(tmp_path):
    clips = torch.from_numpy(moving_squares(6, 8, 16)).float().div(255).unsqueeze(2)
    ds = ListSet([(c[:4], c[4:]) for c in clips])
    model = build_model("toy-eval", img_size=16, in_chans=1)
    res = evaluate(model, ds, out_len=4, batch_size=2, max_batches=2, result_dir=tmp_path)
    assert res["clips"] == 4
    expected = (
        ((repeat_last_frame(clips[:4, :4], 4) - clips[:4, 4:]) ** 2).sum(dim=(2, 3, 4)).mean(0)
    )
    np.testing.assert_allclose(
        res["baseline_last_frame"]["per_frame"]["mse"], expected.numpy(), rtol=1e-5
    )
    assert json.loads((tmp_path / "metrics.json").read_text())["baseline_last_frame"][
        "mse"
    ] == pytest.approx(float(expected.mean()), rel=1e-5)


def test_evaluate_targets_shorter_than_out_len(tmp_path):
    ds = ListSet([(torch.rand(4, 1, 16, 16), torch.rand(2, 1, 16, 16))])
    with pytest.raises(ValueError, match="2 target frames but --out_len is 3"):
        evaluate(build_model("toy-eval", img_size=16), ds, out_len=3)


# ----- bad inputs: one line, exit 2 -------------------------------------------------------------
def one_line_error(capsys) -> str:
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1, err
    assert err.startswith("swinlstm test: error:")
    return err


def test_missing_checkpoint(tmp_path, capsys):
    argv = [
        "--checkpoint_load_file",
        str(tmp_path / "nope.ckpt"),
        "--test_result_dir",
        str(tmp_path),
    ]
    assert test_cli.main(argv) == 2
    assert "checkpoint not found" in one_line_error(capsys)


def test_checkpoint_of_another_size(tmp_path, capsys):
    write_mnist_test_seq(tmp_path / "mnist_test_seq.npy", n=2)
    ckpt = toy_checkpoint(tmp_path / "ckpt", 32)
    argv = [
        "--test_data_dir",
        str(tmp_path),
        "--checkpoint_load_file",
        str(ckpt),
        "--img_size",
        "64",
    ]
    assert test_cli.main(argv + ["--test_result_dir", str(tmp_path / "r")]) == 2
    assert "32x32 frames, but --img_size is 64x64" in one_line_error(capsys)
    assert (
        test_cli.main(argv[:-2] + ["--img_channel", "3", "--test_result_dir", str(tmp_path / "r")])
        == 2
    )
    assert "1-channel" in one_line_error(capsys)


def test_checkpoint_of_another_model(tmp_path, capsys):
    ckpt = toy_checkpoint(tmp_path / "ckpt", 32)
    argv = [
        "--checkpoint_load_file",
        str(ckpt),
        "--model",
        "convlstm",
        "--test_result_dir",
        str(tmp_path),
    ]
    assert test_cli.main(argv) == 2
    assert "holds a toy-eval model, not the --model convlstm" in one_line_error(capsys)


def test_test_dir_with_too_short_clips(tmp_path, capsys):
    npy = write_mnist_test_seq(tmp_path / "mnist_test_seq.npy", n=2, t=20)
    ckpt = toy_checkpoint(tmp_path / "ckpt", 32)
    argv = ["--test_data_dir", str(npy), "--checkpoint_load_file", str(ckpt), "--img_size", "32"]
    argv += ["--short_len", "10", "--out_len", "30", "--test_result_dir", str(tmp_path / "r")]
    assert test_cli.main(argv) == 2
    assert "fewer than short_len + out_len = 40" in one_line_error(capsys)


def test_make_frame_rejects_non_boolean(capsys):
    with pytest.raises(SystemExit) as exc:
        test_cli.main(["--checkpoint", "x", "--make_frame", "maybe"])
    assert exc.value.code == 2
    assert "expected a boolean" in capsys.readouterr().err


@pytest.mark.parametrize(
    "dataset, chans", [("kth", 1), ("taxibj", 2), ("human36m", 3), ("custom", 1)]
)
def test_dataset_read_from_files_needs_test_data_dir(tmp_path, capsys, dataset, chans):
    ckpt = toy_checkpoint(tmp_path / "ckpt", 32, in_chans=chans)
    argv = ["--dataset", dataset, "--checkpoint_load_file", str(ckpt), "--img_size", "32"]
    assert test_cli.main(argv + ["--test_result_dir", str(tmp_path / "r")]) == 2
    err = one_line_error(capsys)
    assert f"--dataset {dataset} reads its test set from files: pass --test_data_dir" in err


@pytest.mark.parametrize(
    "device, cuda, message",
    [
        ("cuda", False, "--device cuda: CUDA is not available"),
        ("cuda:3", True, "--device cuda:3: only 1 CUDA device(s)"),
        ("gpu0", False, "--device 'gpu0' is not a torch device"),
    ],
)
def test_device_this_machine_cannot_use(tmp_path, capsys, monkeypatch, device, cuda, message):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: cuda)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 1)
    write_mnist_test_seq(tmp_path / "mnist_test_seq.npy", n=2)
    ckpt = toy_checkpoint(tmp_path / "ckpt", 64)
    argv = ["--test_data_dir", str(tmp_path), "--checkpoint_load_file", str(ckpt)]
    argv += ["--device", device, "--test_result_dir", str(tmp_path / "r")]
    assert test_cli.main(argv) == 2
    assert message in one_line_error(capsys)


# ----- corrupt files: one line naming the file and what is wrong, exit 2 ------------------------
class Opaque:  # a class a weights-only load refuses to rebuild
    pass


def corrupt_checkpoint(tmp_path: Path, kind: str) -> Path:
    """A bad checkpoint of ``kind``; the model.safetensors ones sit beside a valid model.json."""
    weights = toy_checkpoint(tmp_path / "ckpt", 64)
    if kind == "truncated safetensors":
        weights.write_bytes(weights.read_bytes()[:5])
        return weights
    if kind == "corrupt safetensors":
        weights.write_bytes(weights.read_bytes()[:-7])
        return tmp_path / "ckpt"
    if kind == "broken model.json":
        (tmp_path / "ckpt" / "model.json").write_text('{"model": "toy-eval", "config": {')
        return weights
    if kind == "model.json without a model":
        (tmp_path / "ckpt" / "model.json").write_text('{"config": {}}')
        return weights
    path = tmp_path / "bad.ckpt"
    if kind == "truncated ckpt":
        torch.save({"state_dict": {"w": torch.zeros(64)}}, path)
        path.write_bytes(path.read_bytes()[:200])
    elif kind == "pickled pt":
        path = tmp_path / "bad.pt"
        torch.save({"w": torch.zeros(2), "extra": Opaque()}, path)
    elif kind == "text ckpt":
        path.write_text("not a checkpoint\n")
    return path


@pytest.mark.parametrize(
    "kind, message",
    [
        ("truncated safetensors", "is truncated or corrupt, not a readable .safetensors file"),
        ("corrupt safetensors", "is truncated or corrupt, not a readable .safetensors file"),
        ("broken model.json", "model.json: not valid JSON (Expecting"),
        ("model.json without a model", 'model.json: expected {"model": name'),
        ("truncated ckpt", "bad.ckpt: is truncated or corrupt, or not a PyTorch checkpoint"),
        ("text ckpt", "bad.ckpt: is truncated or corrupt, or not a PyTorch checkpoint"),
        ("pickled pt", "bad.pt: holds Python objects beyond tensors (test_eval_cli.Opaque)"),
    ],
)
def test_corrupt_checkpoint_is_one_line_naming_the_file(tmp_path, capsys, kind, message):
    path = corrupt_checkpoint(tmp_path, kind)
    argv = ["--checkpoint_load_file", str(path), "--test_result_dir", str(tmp_path / "r")]
    assert test_cli.main(argv + ["--max_batches", "1"]) == 2
    err = one_line_error(capsys)
    assert message in err and "\x1b" not in err, err
    if kind != "pickled pt":
        assert "unpickling" not in err  # corruption is not blamed on pickling


@pytest.mark.parametrize(
    "name, content, message",
    [
        ("w.txt", b"hello, these are not weights\n", "is truncated or corrupt"),
        ("w.ckpt", b"hello, these are not weights\n", "is truncated or corrupt"),
        ("w.safetensors", b"\x05\x00", "not a readable .safetensors file"),
    ],
)
def test_corrupt_lpips_weights_is_one_line_naming_the_file(
    tmp_path, capsys, name, content, message
):
    write_mnist_test_seq(tmp_path / "mnist_test_seq.npy", n=2)
    (tmp_path / name).write_bytes(content)
    argv = ["--test_data_dir", str(tmp_path), "--lpips_weights", str(tmp_path / name)]
    argv += ["--checkpoint_load_file", str(toy_checkpoint(tmp_path / "ckpt", 64))]
    assert test_cli.main(argv + ["--test_result_dir", str(tmp_path / "r")]) == 2
    err = one_line_error(capsys)
    assert f"{tmp_path / name}: " in err and message in err, err


# ----- the data a run of ours recorded --------------------------------------------------------
@pytest.fixture(scope="module")
def small_run(tmp_path_factory) -> Path:
    """A finished 1-iteration run: 16 px Moving MNIST with 14 px digits, 2 -> 3 frames."""
    from tests.run_helpers import train_small_run

    out = tmp_path_factory.mktemp("small") / "run"
    assert train_small_run(out) == 0
    return out


def _test_meta(tmp_path: Path, checkpoint: Path, *flags: str, options=("test_samples=2",)):
    result = tmp_path / "r"
    argv = ["test", "--checkpoint", str(checkpoint), "--test_result_dir", str(result), *flags]
    assert run([*argv, "--data_options", *options]) == 0
    return json.loads((result / "metrics.json").read_text())


@pytest.mark.parametrize("name", ["model.safetensors", "last.ckpt", "best.ckpt", "."])
def test_test_uses_the_data_its_checkpoint_recorded(small_run, tmp_path, name):
    meta = _test_meta(tmp_path, small_run / name)
    assert meta["dataset"] == "movingmnist" and meta["clips"] == 2
    assert meta["data_options"] == {"digit_size": 14, "test_samples": 2}  # not the 28 px default
    assert meta["short_len"] == 2 and meta["out_len"] == 3


def test_flags_win_over_the_recorded_data(small_run, tmp_path):
    flags = ["--short_len", "3", "--out_len", "1"]
    meta = _test_meta(tmp_path, small_run, *flags, options=("digit_size=10", "test_samples=1"))
    assert meta["data_options"] == {"digit_size": 10, "test_samples": 1}
    assert meta["short_len"] == 3 and meta["out_len"] == 1


def test_run_written_before_the_record_reads_its_config_yaml(small_run, tmp_path):
    import shutil

    run_dir = tmp_path / "old"
    shutil.copytree(small_run, run_dir)
    meta = json.loads((run_dir / "model.json").read_text())
    del meta["data"]
    (run_dir / "model.json").write_text(json.dumps(meta))
    meta = _test_meta(tmp_path, run_dir / "model.safetensors")
    assert meta["data_options"] == {"digit_size": 14, "test_samples": 2}
    assert meta["short_len"] == 2 and meta["out_len"] == 3


@pytest.mark.parametrize("flag", ["--short_len", "--out_len", "--batch_size"])
def test_zero_lengths_and_batch_are_refused(small_run, tmp_path, capsys, flag):
    argv = ["--checkpoint", str(small_run), "--test_result_dir", str(tmp_path), flag, "0"]
    assert test_cli.main(argv) == 2
    assert f"{flag} must be >= 1, got 0" in one_line_error(capsys)


def test_only_what_was_done_is_printed(small_run, tmp_path, capsys):
    argv = ["test", "--checkpoint", str(small_run), "--test_result_dir", str(tmp_path / "a")]
    argv += ["--data_options", "test_samples=2", "--make_frame", "True"]
    assert run([*argv, "--num_frames_to_save", "0"]) == 0
    out = capsys.readouterr().out
    assert "evaluated 2 clips" in out and "frames:" not in out and "GIFs" not in out
    assert run([*argv, "--evaluate", "False"]) == 0
    out = capsys.readouterr().out
    assert "evaluated" not in out and "metrics.json" not in out
    assert "forecast 2 clips; no metrics" in out and "frames:" in out


def test_predict_takes_the_runs_lengths(small_run, tmp_path):
    clip = tmp_path / "clip.npy"
    np.save(clip, moving_squares(1, 8, 16)[0])
    out = tmp_path / "p"
    assert (
        run(["predict", "--checkpoint", str(small_run), "--input", str(clip), "--output", str(out)])
        == 0
    )
    assert np.load(out / "prediction.npy").shape == (3, 1, 16, 16)  # the run's out_len 3
    assert sorted(p.name for p in out.glob("input_*.png")) == ["input_00.png", "input_01.png"]
    argv = ["predict", "--checkpoint", str(small_run), "--input", str(clip), "--output", str(out)]
    assert run([*argv, "--out_len", "5"]) == 0
    assert np.load(out / "prediction.npy").shape == (5, 1, 16, 16)


def test_resolve_test_data_takes_the_given_then_the_recorded_then_10_10():
    from swinlstm.engine.evaluate import resolve_test_data

    recorded = {"dataset": "movingmnist", "short_len": 5, "out_len": 7}
    assert resolve_test_data({}) == ("movingmnist", 10, 10, {})
    assert resolve_test_data(recorded)[:3] == ("movingmnist", 5, 7)
    assert resolve_test_data(recorded, short_len=3)[:3] == ("movingmnist", 3, 7)
    # another dataset than the recorded one: nothing recorded applies
    assert resolve_test_data(recorded, dataset="kth")[1:3] == (10, 10)
    assert resolve_test_data({}, data_options={"digits": 1})[3] == {"digits": 1}


def test_read_checkpoint_tells_ours_from_the_authors_files(tmp_path):
    from swinlstm.engine.checkpoint import official_keys, read_checkpoint

    model = build_model("convlstm", img_size=16, in_chans=1, patch_size=4, num_hidden=[4])
    sd = model.state_dict()
    save_model(model, tmp_path / "run")
    ours = {"state_dict": {f"model.{k}": v for k, v in sd.items()}}
    ours["hyper_parameters"] = {"model_name": "convlstm", "model_config": {}}
    torch.save(ours, tmp_path / "ours.ckpt")
    torch.save(sd, tmp_path / "theirs.pt")
    torch.save({"state_dict": sd}, tmp_path / "theirs.ckpt")  # a .ckpt naming no model
    assert read_checkpoint(tmp_path / "run" / "model.safetensors") == ("safetensors", None)
    assert read_checkpoint(tmp_path / "ours.ckpt")[0] == "ckpt"
    for name in ("theirs.pt", "theirs.ckpt"):
        kind, contents = read_checkpoint(tmp_path / name)
        assert kind == "official" and contents.keys() == sd.keys()
    assert official_keys(tmp_path / "run") is None and official_keys(tmp_path / "ours.ckpt") is None
    assert official_keys(tmp_path / "theirs.pt") == list(sd)
