"""The training engine on a toy model: outputs, checkpoint contents, data order, refusals."""

from __future__ import annotations

import argparse
import csv

import pytest
import torch
import yaml
from train_helpers import ToyClips, toy_config

from swinlstm.engine.checkpoint import load_model
from swinlstm.engine.config import RunConfig
from swinlstm.engine.datamodule import IterationSampler, ShardSampler
from swinlstm.engine.train import run_training, train


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    out = tmp_path_factory.mktemp("run")
    result = run_training(toy_config(out), ToyClips(8), ToyClips(5))
    return out, result


def test_run_writes_every_file(trained):
    out, result = trained
    for name in ("last.ckpt", "best.ckpt", "model.safetensors", "model.json", "config.yaml"):
        assert (out / name).is_file(), name
    assert (out / "tensorboard").is_dir()
    assert not list(out.glob("*-v*.ckpt")) and not list(out.glob(".*tmp*"))
    rows = list(csv.DictReader(open(out / "metrics.csv")))
    assert [int(r["iteration"]) for r in rows] == [2, 4]
    assert {"train_loss", "lr", "mse", "mae", "ssim", "psnr"} <= set(rows[0])
    assert result.module.valid_count == 5  # every validation clip counted once
    config = yaml.safe_load(open(out / "config.yaml"))
    assert config["model"]["name"] == "toy" and config["optim"]["iterations"] == 4
    assert config["model"]["options"] == {"img_size": 16, "in_chans": 1}


def test_checkpoint_has_iteration_and_plain_hyper_parameters(trained):
    out, _ = trained
    ckpt = torch.load(out / "last.ckpt", map_location="cpu", weights_only=True)
    assert type(ckpt["iteration"]) is int and ckpt["iteration"] == 4
    hp = ckpt["hyper_parameters"]
    assert hp["model_name"] == "toy" and type(hp["model_config"]) is dict
    assert hp["model_config"] == {"img_size": 16, "in_chans": 1}
    model, info = load_model(out / "last.ckpt")
    assert info["format"] == "ckpt" and info["iteration"] == 4
    model2, info2 = load_model(out)  # the folder: model.safetensors, no Lightning needed
    assert info2["format"] == "safetensors" and info2["model"] == "toy"
    x = torch.rand(1, 3, 1, 16, 16)
    assert model2.predict(x, 2).shape == (1, 2, 1, 16, 16)


def test_best_weights_are_the_lowest_validation_mse(trained):
    out, _ = trained
    rows = list(csv.DictReader(open(out / "metrics.csv")))
    best_it = min(rows, key=lambda r: float(r["mse"]))["iteration"]
    best = torch.load(out / "best.ckpt", map_location="cpu", weights_only=True)
    assert best["iteration"] == int(best_it)


def test_fine_tune_from_safetensors_starts_at_zero(trained, tmp_path):
    out, _ = trained
    result = run_training(
        toy_config(
            tmp_path,
            iterations=1,
            print_freq=1,
            checkpoint_load_file=str(out / "model.safetensors"),
        ),
        ToyClips(8),
        ToyClips(2),
    )
    assert result.module.iteration == 1
    assert torch.load(tmp_path / "last.ckpt", weights_only=True)["iteration"] == 1


def test_resume_past_the_end_is_refused(trained, tmp_path):
    out, _ = trained
    with pytest.raises(ValueError, match="iteration 4: raise --iterations"):
        train(toy_config(tmp_path, checkpoint_load_file=str(out / "last.ckpt")), ToyClips(8))


def test_resume_with_another_model_config_is_refused(trained, tmp_path):
    out, _ = trained
    cfg = toy_config(tmp_path, iterations=6, checkpoint_load_file=str(out / "last.ckpt"))
    cfg["model_config"] = {"img_size": 16, "in_chans": 1, "hidden": 8}
    with pytest.raises(ValueError, match="was trained as toy"):
        train(cfg, ToyClips(8))


def test_pickled_object_checkpoint_is_refused(tmp_path):
    bad = tmp_path / "evil.ckpt"
    torch.save({"state_dict": {}, "args": argparse.Namespace(lr=1)}, bad)
    with pytest.raises(ValueError, match="arbitrary unpickling are refused"):
        train(toy_config(tmp_path / "o", checkpoint_load_file=str(bad)), ToyClips(8))


def test_missing_checkpoint_file(tmp_path):
    with pytest.raises(FileNotFoundError, match="--checkpoint_load_file not found"):
        train(toy_config(tmp_path, checkpoint_load_file=str(tmp_path / "no.ckpt")), ToyClips(8))


@pytest.mark.parametrize(
    "change, message",
    [
        ({"long_len": 9}, "--long_len 9 is longer"),
        ({"iterations": 0}, "--iterations must be >= 1"),
        ({"lr": 0.0}, "--lr must be > 0"),
        ({"bogus": 1}, "unknown training settings: bogus"),
    ],
)
def test_bad_settings(tmp_path, change, message):
    with pytest.raises(ValueError, match=message):
        train(toy_config(tmp_path, **change), ToyClips(8))


def test_frames_not_fitting_the_model(tmp_path):
    cfg = toy_config(tmp_path)
    cfg["model_config"] = {"img_size": 8, "in_chans": 1}
    with pytest.raises(ValueError, match="model takes 8x8 frames"):
        train(cfg, ToyClips(8))


def test_default_config_validates():
    RunConfig().validate()


def test_sampler_resumed_is_the_suffix_of_the_full_order():
    full = list(IterationSampler(10, 3, 12, seed=7))
    assert len(full) == 36
    resumed = list(IterationSampler(10, 3, 12, seed=7, start_batch=5))
    assert resumed == full[15:]
    assert len(IterationSampler(10, 3, 12, seed=7, start_batch=5)) == 36
    # each pass over the data is a permutation
    assert sorted(full[:10]) == list(range(10)) and sorted(full[10:20]) == list(range(10))
    assert full[:10] != list(range(10))


def test_sampler_ranks_split_each_global_batch():
    one = list(IterationSampler(9, 4, 6, seed=1, world_size=1, rank=0))
    r0 = list(IterationSampler(9, 2, 6, seed=1, world_size=2, rank=0))
    r1 = list(IterationSampler(9, 2, 6, seed=1, world_size=2, rank=1))
    for b in range(6):
        assert one[4 * b : 4 * b + 4] == r0[2 * b : 2 * b + 2] + r1[2 * b : 2 * b + 2]


def test_shard_sampler_covers_every_item_once():
    shards = [list(ShardSampler(11, r, 3, limit=None)) for r in range(3)]
    assert sorted(sum(shards, [])) == list(range(11))
    assert list(ShardSampler(11, 0, 1, limit=4)) == [0, 1, 2, 3]


def test_warmup_cosine_factor():
    from swinlstm.engine.module import WarmupCosine

    f = WarmupCosine(total=10, warmup=2, floor=0.1)
    assert f(0) == 0.5 and f(1) == 1.0
    assert f(2) == pytest.approx(1.0) and f(10) == pytest.approx(0.1)
    assert all(f(i) >= f(i + 1) for i in range(2, 12))


def test_cosine_schedule_state_resumes(tmp_path):
    result = run_training(
        toy_config(tmp_path, schedule="cosine", schedule_warmup=1, min_lr=1e-4),
        ToyClips(8),
        ToyClips(2),
    )
    ckpt = torch.load(tmp_path / "last.ckpt", weights_only=True)
    assert ckpt["lr_schedulers"][0]["last_epoch"] == 4
    assert result.trainer.optimizers[0].param_groups[0]["lr"] == pytest.approx(1e-4)


def test_memory_model_takes_two_optimiser_steps_per_iteration(tmp_path):
    """convlstm with an LMC memory: manual optimisation, phase 1 moves the memory slots."""
    from swinlstm.engine.rules import memory_slots

    config = toy_config(tmp_path, iterations=2, print_freq=2, iterations_warmup=1)
    config.update(
        model="convlstm",
        model_config={
            "img_size": 16,
            "in_chans": 1,
            "patch_size": 4,
            "num_hidden": [4],
            "filter_size": 3,
            "memory_size": 3,
            "slot_dim": 8,
        },
    )
    result = run_training(config, ToyClips(8), ToyClips(2))
    module = result.module
    assert module.memory and not module.automatic_optimization
    assert module.iteration == 2 and result.trainer.global_step == 4
    # the same seed builds the same initial slots: training (phase 1) has moved them
    import lightning.pytorch as pl

    from swinlstm.models import build_model

    pl.seed_everything(1234, verbose=False)
    initial = memory_slots(build_model("convlstm", **config["model_config"]))[0]
    trained_slots = memory_slots(module.model)[0]
    assert not torch.allclose(initial, trained_slots)
    ckpt = torch.load(tmp_path / "last.ckpt", weights_only=True)
    assert ckpt["iteration"] == 2


def test_early_stop_after_patience_validations_without_a_better_mse(tmp_path, capsys):
    import json

    out = tmp_path / "run"
    # lr 1e-30: updates below float32's resolution, so the validation MSE never improves
    config = toy_config(out, iterations=10, print_freq=1, early_stop=2, lr=1e-30)
    run_training(config, ToyClips(8), ToyClips(4))
    record = json.loads((out / "early_stop.json").read_text())
    assert record["patience"] == 2 and record["stopped_at_iteration"] == 3
    assert record["best_iteration"] == 1
    assert "stopped early at iteration 3" in capsys.readouterr().out
    rows = list(csv.DictReader(open(out / "metrics.csv")))
    assert [int(r["iteration"]) for r in rows] == [1, 2, 3]
    assert json.loads((out / "model.json").read_text())["iteration"] == 1  # best.ckpt's weights
    saved = yaml.safe_load((out / "config.yaml").read_text())
    assert saved["output"]["early_stop"] == 2

    with pytest.raises(ValueError, match="--early_stop must be >= 0"):
        run_training({**config, "early_stop": -1}, ToyClips(8), ToyClips(4))
