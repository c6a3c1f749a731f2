"""The model zoo: shipped entries reproduce their cards; published files are fetched, checked
and built as the authors' networks; offline is one line; a run becomes an entry with a card."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import pytest
import torch

from swinlstm import zoo
from swinlstm.cli.main import run
from swinlstm.zoo.card import SUBSET, score

DATA = Path(__file__).parent / "data"
KEYS = {  # zoo entry -> its key list in tests/data/official_keys.json
    "swinlstm-d-mmnist-authors": "swinlstm-d",
    "lmc-memory-mmnist-authors": "lmc-memory-movingmnist",
    "lmc-memory-kth-authors": "lmc-memory-kth",
}


def authors_file(entry: str, path: Path) -> Path:
    """A file with the authors' published keys and shapes (random values), saved as they did."""
    shapes = json.loads((DATA / "official_keys.json").read_text())[KEYS[entry]]["state_dict"]
    gen = torch.Generator().manual_seed(0)
    sd = {k: torch.randn(tuple(s), generator=gen) * 0.02 for k, s in shapes.items()}
    for k, s in shapes.items():  # integer buffers stay integers
        if k.endswith("relative_position_index"):
            sd[k] = torch.zeros(tuple(s), dtype=torch.long)
    torch.save(sd, path)
    return path


@pytest.fixture
def served(tmp_path, monkeypatch):
    """Point a published entry at a local file:// address (its checksum set to the file's)."""

    def serve(name: str, sha1: str | None = "auto") -> Path:
        src = authors_file(name, tmp_path / f"src-{name}.pt")
        pub = zoo.PUBLISHED[name].published
        pub = dataclasses.replace(
            pub, url=src.as_uri(), git_sha1=zoo.git_sha1(src) if sha1 == "auto" else sha1
        )
        monkeypatch.setitem(
            zoo.PUBLISHED, name, dataclasses.replace(zoo.PUBLISHED[name], published=pub)
        )
        return src

    monkeypatch.setenv("SWINLSTM_CACHE", str(tmp_path / "cache"))
    return serve


@pytest.mark.parametrize("name", sorted(KEYS))
def test_published_file_is_fetched_checked_and_built_as_its_network(served, tmp_path, name):
    served(name)
    model, info = zoo.load(name)
    pub = zoo.PUBLISHED[name].published
    assert info["format"] == "official" and info["model"] == pub.model and info["zoo"] == name
    assert (tmp_path / "cache" / pub.filename).is_file()  # cached: the next load reads it
    assert tuple(model.img_size) == (pub.config["img_size"],) * 2
    if name == "lmc-memory-kth-authors":  # LMC's model.py adds a sigmoid for KTH
        assert isinstance(model.decoder[-1], torch.nn.Sigmoid)
    with torch.no_grad():
        out = model.predict(torch.rand(1, 2, 1, *model.img_size), out_len=1)  # paper sizes: short
    assert out.shape == (1, 1, 1, *model.img_size) and torch.isfinite(out).all()


def test_published_checksum_mismatch_discards_the_file(served, tmp_path, capsys):
    served("swinlstm-d-mmnist-authors", sha1="0" * 40)
    assert run(["zoo", "fetch", "swinlstm-d-mmnist-authors"]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "checksum mismatch" in err and "expected 0000" in err
    assert not (tmp_path / "cache" / "swinlstm-d-mmnist-authors.pt").exists()


def test_offline_published_entry_is_one_line_naming_what_to_fetch(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("SWINLSTM_CACHE", str(tmp_path / "cache"))
    pub = dataclasses.replace(
        zoo.PUBLISHED["lmc-memory-kth-authors"].published, url="http://127.0.0.1:9/none.pt"
    )
    monkeypatch.setitem(
        zoo.PUBLISHED,
        "lmc-memory-kth-authors",
        dataclasses.replace(zoo.PUBLISHED["lmc-memory-kth-authors"], published=pub),
    )
    argv = ["test", "--checkpoint", "zoo:lmc-memory-kth-authors", "--dataset", "movingmnist"]
    assert run(argv) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "could not reach http://127.0.0.1:9/none.pt" in err
    assert str(tmp_path / "cache" / "trained_file_kth.pt") in err


def test_unknown_entry_lists_the_names(capsys):
    assert run(["predict", "--checkpoint", "zoo:nope", "--input", "x.npy", "--output", "o"]) == 2
    err = capsys.readouterr().err
    assert "no zoo entry 'nope'" in err and "lmc-memory-kth-authors" in err


def test_zoo_lists_every_entry(capsys):
    assert run(["zoo"]) == 0
    out = capsys.readouterr().out
    for name in zoo.entries():
        assert name in out


def test_a_run_becomes_an_entry_with_its_card(tmp_path, capsys):
    preset = tmp_path / "tiny.yaml"
    preset.write_text(
        "model: swinlstm-b\nimg_size: 64\npatch_size: 8\nembed_dim: 8\ndepths: [1]\n"
        "heads_number: [1]\nwindow_size: 4\nshort_len: 3\nout_len: 2\nbatch_size: 2\n"
        "iterations: 2\nprint_freq: 1\nvalid_batches: 1\nprogress: false\n"
        "data_options: {train_samples: 8, valid_samples: 2}\n"
    )
    runs = tmp_path / "run"
    assert run(["train", "--config", str(preset), "--checkpoint_save_dir", str(runs)]) == 0
    root = tmp_path / "entries"
    argv = ["zoo", "add", str(runs), "--name", "tiny", "--config", str(preset), "--command"]
    argv += ["swinlstm train --config tiny.yaml", "--description", "a tiny test entry"]
    assert run(argv + ["--test_clips", "8", "--root", str(root)]) == 0
    card = json.loads((root / "tiny" / "card.json").read_text())
    assert card["command"] == "swinlstm train --config tiny.yaml" and card["iterations"] == 2
    assert [p["iteration"] for p in card["curve"]] == [1, 2] and card["train_seconds"] > 0
    assert card["test"]["clips"] == 8 and card["subset"]["clips"] == SUBSET
    assert card["test"]["baseline_last_frame_mse"] > 0
    md = (root / "tiny" / "card.md").read_text()
    assert "swinlstm train --config tiny.yaml" in md and "repeating the last input frame" in md
    entries = zoo.shipped_entries(root)
    assert list(entries) == ["tiny"] and entries["tiny"].kind == "shipped"

    # a second stage fine-tunes the entry's weights; --after keeps the first stage on the card
    runs2 = tmp_path / "run2"
    weights = str(root / "tiny" / "model.safetensors")
    argv2 = ["train", "--config", str(preset), "--checkpoint_save_dir", str(runs2)]
    assert run(argv2 + ["--checkpoint_load_file", weights, "--lr", "1e-5"]) == 0
    argv2 = ["zoo", "add", str(runs2), "--name", "tiny", "--config", str(preset), "--command"]
    argv2 += ["swinlstm train --lr 1e-5", "--description", "a tiny test entry", "--after"]
    assert run(argv2 + ["tiny", "--test_clips", "8", "--root", str(root)]) == 0
    card2 = json.loads((root / "tiny" / "card.json").read_text())
    stages = card2["stages"]
    assert [st["command"] for st in stages] == [card["command"], "swinlstm train --lr 1e-5"]
    assert card2["iterations"] == 4 and [p["iteration"] for p in card2["curve"]] == [1, 2, 3, 4]
    assert card2["train_seconds"] == pytest.approx(sum(st["train_seconds"] for st in stages))
    assert (
        card2["curve"][2]["train_seconds"] > card["train_seconds"] and card2["best_iteration"] > 2
    )
    assert "Trained in 2 stages" in (root / "tiny" / "card.md").read_text()
    assert run(argv2 + ["nope", "--root", str(root)]) == 2
    assert "--after nope: no shipped zoo entry" in capsys.readouterr().err


@pytest.mark.parametrize("name", sorted(zoo.shipped_entries()) or ["(none shipped yet)"])
def test_shipped_entry_reproduces_its_card_and_beats_the_baseline(name):
    if name not in zoo.shipped_entries():
        pytest.skip("no shipped zoo entry in swinlstm/zoo/entries yet")
    e = zoo.entry(name)
    model, info = zoo.load(name)
    weights = e.shipped / "model.safetensors"
    assert weights.stat().st_size <= 5 * 2**20  # the zoo's size limit per entry
    got = score(model, e.card["clips"], SUBSET)
    want = e.card["subset"]
    assert got["mse"] == pytest.approx(want["mse"], rel=1e-4)
    assert got["mse"] < got["baseline_last_frame_mse"]
    assert e.card["test"]["mse"] < e.card["test"]["baseline_last_frame_mse"]
