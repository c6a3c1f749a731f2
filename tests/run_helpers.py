"""A seconds-long ``swinlstm train`` run for the CLI tests (no model registered here)."""

from __future__ import annotations

# the flags of a seconds-long CLI training: a tiny ConvLSTM, one iteration, no progress bar
TINY_CONV = ["--model", "convlstm", "--patch_size", "4", "--num_hidden", "4", "--filter_size", "3"]
QUICK = [
    "--print_freq", "1", "--batch_size", "1", "--valid_batches", "1", "--workers", "0",
    "--progress", "False", "--accelerator", "cpu",
]  # fmt: skip


def train_small_run(out, *extra: str) -> int:
    """``swinlstm train`` of a tiny ConvLSTM for one iteration on 16 px Moving MNIST with 14 px
    built-in digits, 2 -> 3 frames, into ``out``; ``extra`` flags are appended. Returns the exit
    code."""
    from swinlstm.cli.main import run

    data = ["--data_options", "train_samples=2", "valid_samples=1", "digit_size=14"]
    argv = ["train", *data, "--img_size", "16", "--short_len", "2", "--out_len", "3"]
    argv += [*TINY_CONV, *QUICK, "--iterations", "1", "--checkpoint_save_dir", str(out)]
    return run([*argv, *extra])
