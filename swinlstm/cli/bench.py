"""``swinlstm bench {models,data,metrics}``: benchmarks that print a table (not tests)."""

from __future__ import annotations

import argparse
import importlib

BENCHES = ("models", "data", "metrics")


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "bench",
        help="run a benchmark and print its table",
        description="Benchmarks: each prints a table; extra arguments go to the benchmark.",
    )
    p.add_argument("which", choices=BENCHES, help="what to benchmark")
    p.add_argument("rest", nargs=argparse.REMAINDER, help="arguments for that benchmark")
    p.set_defaults(func=_run)


def _run(args: argparse.Namespace) -> int:
    module = importlib.import_module(f"swinlstm.bench.{args.which}")
    return int(module.main(args.rest) or 0)
