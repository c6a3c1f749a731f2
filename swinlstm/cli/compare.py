"""``swinlstm compare DIR...``: training or test result folders side by side.

    swinlstm compare runs/test_convlstm runs/test_swinlstm --output runs/compare

Prints one table (model, parameters, iterations, training time, each metric's mean over the
horizon and its value at the last forecast frame, the protocol) and writes it as
``compare.md`` / ``compare.csv``, with ``horizon.png`` (each metric over the forecast horizon,
one line per run). Runs scored under different metric protocols are refused unless
``--allow_mixed_protocols``, and then the table and the plot say so.
"""

from __future__ import annotations

import argparse

HELP = "compare training / test result folders: one table and one plot over the horizon"


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("compare", help=HELP, description=HELP)
    p.add_argument("folders", nargs="+", help="training folders or test result folders")
    p.add_argument("--output", default="compare", help="folder for compare.md/.csv, horizon.png")
    p.add_argument(
        "--allow_mixed_protocols",
        action="store_true",
        help="show runs scored under different metric protocols side by side",
    )
    p.set_defaults(func=_run)


def _run(args: argparse.Namespace) -> int:
    from swinlstm.engine.compare import compare, markdown, table_rows, write_outputs

    runs, metrics = compare(args.folders, allow_mixed_protocols=args.allow_mixed_protocols)
    print(markdown(table_rows(runs, metrics)), end="")
    if len({r.protocol for r in runs}) > 1:
        print("note: these runs use different metric protocols; their numbers are not comparable")
    files = write_outputs(runs, metrics, args.output)
    print("written: " + ", ".join(str(f) for f in files))
    return 0
