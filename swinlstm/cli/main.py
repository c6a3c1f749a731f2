"""The ``swinlstm`` command: one argparse tree whose subcommands live in their own modules.

Each subcommand module ``swinlstm.cli.<name>`` defines ``add_parser(subparsers)`` (which sets
``func`` on its parser) and keeps heavy imports inside the function that runs it, so
``swinlstm --help`` stays fast.
"""

from __future__ import annotations

import argparse
import importlib
import importlib.util
import os
import sys

from swinlstm import __version__
from swinlstm.engine.errors import TrainingStopped
from swinlstm.errors import ConfigError

# subcommand name -> module (in the order --help lists them)
SUBCOMMANDS = {
    "train": "swinlstm.cli.train",
    "test": "swinlstm.cli.test",
    "predict": "swinlstm.cli.predict",
    "export": "swinlstm.cli.export",
    "demo": "swinlstm.cli.demo",
    "data": "swinlstm.cli.data",
    "bench": "swinlstm.cli.bench",
    "reproduce": "swinlstm.cli.reproduce",
    "zoo": "swinlstm.cli.zoo",
    "compare": "swinlstm.cli.compare",
}


class OneLineParser(argparse.ArgumentParser):
    """An argparse parser whose usage errors are one line (``prog: error: ...``), exit code 2.

    Subcommand parsers inherit the class (``add_subparsers`` uses the parent's type).
    """

    def error(self, message: str):  # type: ignore[override]
        self.exit(2, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


def build_parser() -> argparse.ArgumentParser:
    parser = OneLineParser(
        prog="swinlstm",
        description="Spatiotemporal prediction with SwinLSTM, ConvLSTM and LMC-Memory.",
    )
    parser.add_argument("--version", action="version", version=f"swinlstm {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for module in SUBCOMMANDS.values():
        if importlib.util.find_spec(module) is None:
            continue
        importlib.import_module(module).add_parser(sub)
    return parser


def run(argv: list[str] | None = None, parser: argparse.ArgumentParser | None = None) -> int:
    """Parse ``argv`` and run the chosen subcommand; returns the exit code."""
    parser = parser or build_parser()
    args = parser.parse_args(argv)
    if getattr(args, "func", None) is None:
        parser.print_help()
        return 0
    from swinlstm.files import cache_dir  # imports torch: not for --help

    # compiled kernels (``compile: true``) are cached under the project's cache, kept across
    # reboots (PyTorch's default is a folder in /tmp): a new run on this machine reuses them
    os.environ.setdefault("TORCHINDUCTOR_CACHE_DIR", str(cache_dir() / "inductor"))
    try:
        return int(args.func(args) or 0)
    except ConfigError as err:  # a user's mistake; anything else is a bug: its traceback
        print(f"swinlstm {args.command}: error: {err}", file=sys.stderr)
        return 2
    except TrainingStopped as err:  # interrupted (128 + signal) or failed (1): one line, rank 0
        if getattr(err, "rank", 0) == 0:
            print(f"swinlstm {args.command}: error: {err}", file=sys.stderr)
        return err.exit_code
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130


def main(argv: list[str] | None = None) -> None:
    sys.exit(run(argv))


if __name__ == "__main__":
    main()
