"""The SwinLSTM authors' ``configs.py`` flags, declared on ``train`` and ``test`` from the table
:data:`swinlstm.engine.dialects.THEIR_FLAGS`; :mod:`swinlstm.engine.dialects` turns them into ours.
"""

from __future__ import annotations

import argparse

from swinlstm.engine.dialects import PRETRAINED, THEIR_FLAGS, model_name


def add_swinlstm_train_args(p: argparse.ArgumentParser) -> None:
    """Their ``configs.py`` flags, in a group of their own (``--help`` lists them by their names);
    those the parser already has (train's --valid_batch_size, test's --device) mean the same."""
    for action in p._actions:
        if action.dest == "model":
            action.type = model_name
            action.help = f"{action.help}; their SwinLSTM-B / SwinLSTM-D too"
    g = p.add_argument_group(
        "the SwinLSTM authors' flags (their configs.py; any of them, or --model SwinLSTM-B, "
        "selects their defaults)"
    )
    for name, (cli, help) in THEIR_FLAGS.items():
        if f"--{name}" not in p._option_string_actions:
            g.add_argument(f"--{name}", default=None, help=help, **cli)


def add_swinlstm_test_args(p: argparse.ArgumentParser) -> None:
    """``test``: their configs.py flags too (their test.py reads the same parser), and
    ``--checkpoint_load_file`` optional: their test.py reads ``./Pretrained/...``."""
    add_swinlstm_train_args(p)
    for action in p._actions:
        if action.dest == "checkpoint":
            action.required = False
            action.help = f"{action.help} (default: {PRETRAINED}, as the SwinLSTM authors' test.py)"
        if action.dest == "protocol":
            action.default = None  # "default", or "swinlstm" for their commands
