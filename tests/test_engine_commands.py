"""The library functions the thin cli/ calls (issue 15), called without argparse: the SwinLSTM
authors' dialect on a plain dict of flags, and the counts that test / predict / demo refuse
before loading or training anything."""

from __future__ import annotations

import pytest

from swinlstm.engine.dialects import AuthorsSpelling, model_name, swinlstm_train_flags
from swinlstm.errors import ConfigError


def _never_loaded():
    raise AssertionError("a bad count must be refused before the checkpoint is loaded")


def test_dialect_on_a_plain_dict_gives_our_flat_keys(capsys):
    flags = {"model": model_name("SwinLSTM-B"), "train_samples": [[40]], "train_batch_size": 4}
    flags |= {"epochs": 3, "epoch_valid": 1, "device": "cuda:1", "num_frames_input": 5}
    out = swinlstm_train_flags(flags)
    assert type(out["model"]) is str and out["model"] == "swinlstm-b"
    assert isinstance(flags["model"], AuthorsSpelling)  # the given dict is left as it was
    assert (out["iterations"], out["print_freq"], out["batch_size"]) == (30, 10, 4)
    assert (out["accelerator"], out["devices"], out["short_len"]) == ("gpu", "1,", 5)
    assert out["data_options"] == {"train_digits": 40, "train_samples": 40, "valid_samples": 3000}
    assert "3 epochs x 10 iterations" in capsys.readouterr().out


def test_our_own_flags_pass_through_unchanged():
    assert swinlstm_train_flags({"model": "convlstm", "batch_size": 3}) == {
        "model": "convlstm",
        "batch_size": 3,
    }


@pytest.mark.parametrize(
    "flags, message",
    [
        ({"log_train": 0}, "^--log_train must be >= 1, got 0$"),
        ({"train_samples": [[3, 2]]}, "^--train_samples takes N or A B with 0 <= A < B, got 3 2$"),
        ({"device": "cuda:x"}, "^--device takes cpu, cuda or cuda:N, got 'cuda:x'$"),
        ({"epochs": 0}, "^--epochs and --epoch_valid must be >= 1$"),
    ],
)
def test_dialect_mistakes_are_one_line_config_errors(flags, message):
    with pytest.raises(ConfigError, match=message):
        swinlstm_train_flags({"model": model_name("SwinLSTM-D"), **flags})


@pytest.mark.parametrize(
    "kw, message",
    [
        ({"max_batches": 0}, "--max_batches must be >= 1, got 0"),
        ({"num_frames_to_save": -2}, "--num_frames_to_save must be >= -1, got -2"),
        ({"short_len": 0}, "--short_len must be >= 1, got 0"),
        ({"out_len": 0}, "--out_len must be >= 1, got 0"),
        ({"batch_size": 0}, "--batch_size must be >= 1, got 0"),
    ],
)
def test_evaluate_checkpoint_refuses_bad_counts_before_loading(kw, message):
    from swinlstm.engine.evaluate import evaluate_checkpoint

    with pytest.raises(ConfigError, match=f"^{message}$"):
        evaluate_checkpoint(_never_loaded, **kw)


@pytest.mark.parametrize("flag", ["short_len", "out_len"])
def test_predict_file_refuses_bad_lengths_before_loading(tmp_path, flag):
    from swinlstm.engine.predict import predict_file

    with pytest.raises(ConfigError, match=f"^--{flag} must be >= 1, got 0$"):
        predict_file(_never_loaded, "clip.npy", tmp_path, **{flag: 0})


@pytest.mark.parametrize(
    "kw, message",
    [
        ({"iterations": 0}, "--iterations must be >= 1, got 0"),
        ({"test_clips": 0}, "--test_clips must be >= 1, got 0"),
    ],
)
def test_demo_refuses_bad_counts_before_training(tmp_path, kw, message):
    from swinlstm.demo import run_demo

    with pytest.raises(ConfigError, match=f"^{message}$"):
        run_demo(tmp_path / "demo", say=_never_loaded, **kw)
