"""``swinlstm reproduce cpu``: the paper's comparison at CPU scale, resumable, into docs/results.md.

The pipeline (its models, settings and report) is :mod:`swinlstm.engine.reproduce`; this module
parses its flags and prints the report.
"""

from __future__ import annotations

import argparse

from swinlstm.engine.reproduce import MODELS, SETTINGS, Plan, reproduce


def add_parser(sub: argparse._SubParsersAction) -> None:
    plan = Plan()  # the defaults
    p = sub.add_parser(
        "reproduce",
        help="reproduce the papers' comparison at CPU scale (docs/results.md)",
        description=__doc__.split("\n\n")[0],
    )
    p.add_argument("scale", choices=["cpu"], help="cpu: the ~2-hour CPU-scale comparison")
    p.add_argument("--output", default=plan.output, help="run folder (resumable)")
    p.add_argument("--results", default=plan.results, help="the Markdown report to write")
    p.add_argument(
        "--mnist",
        default=plan.mnist,
        help="train-images-idx3-ubyte[.gz] (default: built-in digits)",
    )
    p.add_argument("--settings", nargs="+", default=plan.settings, choices=list(SETTINGS))
    p.add_argument("--models", nargs="+", default=plan.models, choices=list(MODELS))
    p.add_argument(
        "--iterations",
        type=int,
        default=plan.iterations,
        help="training iterations per model at 10 -> 10 (10 -> 30 runs get half)",
    )
    p.add_argument("--batch_size", type=int, default=plan.batch_size)
    p.add_argument("--lr", type=float, default=plan.lr)
    p.add_argument("--img_size", type=int, default=plan.img_size)
    p.add_argument(
        "--test_clips", type=int, default=plan.test_clips, help="fixed generated test clips"
    )
    p.add_argument("--seed", type=int, default=plan.seed)
    p.add_argument(
        "--lpips_weights", default=plan.lpips_weights, help="LPIPS weights (default: searched)"
    )
    p.add_argument("--jobs", type=int, default=plan.jobs, help="runs trained at the same time")
    p.add_argument(
        "--threads", type=int, default=plan.threads, help="torch threads per run (0: cores / jobs)"
    )
    p.set_defaults(func=run_reproduce)


def run_reproduce(args: argparse.Namespace) -> int:
    plan = Plan(**{name: getattr(args, name) for name in Plan.__dataclass_fields__})
    path = reproduce(plan)
    print(path.read_text())
    print(f"report: {path}")
    return 0
