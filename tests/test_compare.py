"""``swinlstm compare``: test and training folders in one table and one plot; mixed protocols."""

from __future__ import annotations

import csv

import torch
from PIL import Image

from swinlstm.cli.main import run
from swinlstm.engine.checkpoint import save_model
from swinlstm.engine.compare import count_parameters
from swinlstm.metrics import write_metrics
from swinlstm.models import build_model


def _test_folder(path, mse, protocol="default", model=None):
    """A test result folder as ``swinlstm test`` writes it (its writer), beside its weights."""
    ckpt = path.parent / f"{path.name}_ckpt"
    if model is not None:
        save_model(model, ckpt)
    per_frame = {"mse": torch.tensor(mse), "ssim": torch.tensor([0.9, 0.8, 0.7])}
    meta = {
        "model": "convlstm",
        "protocol": protocol,
        "checkpoint": str(ckpt / "model.safetensors"),
    }
    write_metrics(path, per_frame, meta)
    return path


def test_compare_test_and_training_folders(tmp_path, capsys):
    model = build_model("convlstm", img_size=32, in_chans=1, num_hidden=[4], patch_size=4)
    a = _test_folder(tmp_path / "a", [10.0, 20.0, 30.0], model=model)
    b = _test_folder(tmp_path / "b", [5.0, 15.0, 40.0])
    preset = tmp_path / "tiny.yaml"
    preset.write_text(
        "model: convlstm\nnum_hidden: [4]\nimg_size: 32\nshort_len: 3\nout_len: 2\n"
        "batch_size: 2\niterations: 2\nprint_freq: 2\nvalid_batches: 1\nprogress: false\n"
        "data_options: {train_samples: 4, valid_samples: 2}\n"
    )
    train = tmp_path / "train_run"
    assert run(["train", "--config", str(preset), "--checkpoint_save_dir", str(train)]) == 0
    capsys.readouterr()
    out = tmp_path / "cmp"
    assert run(["compare", str(a), str(b), str(train), "--output", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "| run | kind | model | parameters |" in printed
    rows = list(csv.DictReader(open(out / "compare.csv")))
    assert [r["run"] for r in rows] == ["a", "b", "train_run"]
    assert rows[0]["mse"] == "20" and rows[0]["mse@last"] == "30" and rows[1]["mse@last"] == "40"
    n = sum(p.numel() for p in model.parameters())
    assert rows[0]["parameters"] == f"{n:,}" and rows[1]["parameters"] == "-"
    assert rows[2]["kind"] == "train" and rows[2]["iterations"] == "2" and rows[2]["mse"] != "-"
    assert rows[2]["parameters"] == f"{count_parameters(train / 'model.safetensors'):,}"
    assert float(rows[2]["train hours"]) >= 0 and rows[2]["mse@last"] == "-"
    assert (out / "compare.md").read_text().count("\n") == 5  # header, rule, three runs
    with Image.open(out / "horizon.png") as im:
        assert im.size[0] > 400  # one panel per metric with per-frame values (mse, ssim)


def test_mixed_protocols_are_refused_or_shown_with_a_note(tmp_path, capsys):
    a = _test_folder(tmp_path / "a", [1.0, 2.0, 3.0])
    b = _test_folder(tmp_path / "b", [1.0, 2.0, 3.0], protocol="lmc")
    assert run(["compare", str(a), str(b), "--output", str(tmp_path / "o")]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "different protocols (a: default, b: lmc)" in err
    argv = ["compare", str(a), str(b), "--output", str(tmp_path / "o"), "--allow_mixed_protocols"]
    assert run(argv) == 0
    assert "not comparable" in capsys.readouterr().out


def test_a_folder_of_neither_kind_is_one_line(tmp_path, capsys):
    (tmp_path / "empty").mkdir()
    bad = tmp_path / "bad"
    bad.mkdir()
    (bad / "metrics.json").write_text("{not json")
    assert run(["compare", str(tmp_path / "empty")]) == 2
    assert "neither a test result folder" in capsys.readouterr().err
    assert run(["compare", str(bad)]) == 2
    assert "metrics.json: not valid JSON" in capsys.readouterr().err
