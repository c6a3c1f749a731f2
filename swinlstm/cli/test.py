"""``swinlstm test`` and the root ``test.py``: evaluate a checkpoint on a test set.

Runs the authors' README commands as written, e.g.::

    python test.py --dataset 'movingmnist' --make_frame True --test_data_dir PATH \\
      --test_result_dir PATH --checkpoint_load_file PATH --img_size 64 --img_channel 1 \\
      --memory_size 100 --short_len 10 --out_len 30 --batch_size 8
"""

from __future__ import annotations

import argparse

from swinlstm.cli.common import add_data_args, add_model_args, img_size_of
from swinlstm.cli.loading import add_checkpoint_arg, checkpoint_model
from swinlstm.cli.swinlstm_flags import add_swinlstm_test_args
from swinlstm.engine.config import data_options_of, str2bool
from swinlstm.metrics.core import DEFAULT_METRICS

HELP = "evaluate a checkpoint on a test set; write metrics, frames and GIFs"


def configure(p: argparse.ArgumentParser) -> argparse.ArgumentParser:
    add_data_args(p, train=False)
    add_model_args(p)
    add_checkpoint_arg(p)
    g = p.add_argument_group("evaluation")
    g.add_argument("--test_result_dir", default="./test_results", help="where files are written")
    g.add_argument(
        "--make_frame",
        type=str2bool,
        default=False,
        help="write PNG frames, GIFs and comparison.png (True/False)",
    )
    g.add_argument(
        "--num_frames_to_save",
        type=int,
        default=10,
        help="clips whose frames and GIFs --make_frame writes (-1: all)",
    )
    g.add_argument("--evaluate", type=str2bool, default=True, help="compute metrics (True/False)")
    g.add_argument(
        "--metrics",
        nargs="+",
        default=list(DEFAULT_METRICS),
        help="metrics to compute (add lpips for LPIPS)",
    )
    g.add_argument("--protocol", default="default", help="metric protocol (conventions of a paper)")
    g.add_argument("--lpips_weights", default=None, help="LPIPS weights file (adds lpips)")
    g.add_argument("--max_batches", type=int, default=None, help="stop after this many batches")
    g.add_argument("--device", default="cpu", help="torch device, e.g. cpu or cuda")
    add_swinlstm_test_args(p)
    return p


def add_parser(subparsers) -> None:
    p = subparsers.add_parser("test", help=HELP, description=HELP)
    configure(p)
    p.set_defaults(func=run_test)


def run_test(args: argparse.Namespace) -> int:
    from swinlstm.engine.dialects import swinlstm_test_flags
    from swinlstm.engine.evaluate import evaluate_checkpoint

    args = argparse.Namespace(**swinlstm_test_flags(vars(args)))  # the authors' configs.py flags
    summary = evaluate_checkpoint(
        lambda: checkpoint_model(args),
        dataset=args.dataset,
        test_data_dir=args.test_data_dir,
        short_len=args.short_len,
        out_len=args.out_len,
        data_options=data_options_of(args.data_options),
        img_size=img_size_of(args),
        img_channel=args.img_channel,
        seed=args.seed,
        batch_size=args.batch_size,
        metrics=args.metrics,
        lpips_weights=args.lpips_weights,
        num_frames_to_save=args.num_frames_to_save,
        max_batches=args.max_batches,
        workers=args.workers,
        protocol=args.protocol,
        result_dir=args.test_result_dir,
        make_frame=args.make_frame,
        evaluate_metrics=args.evaluate,
        device=args.device,
    )
    print_summary(summary, args.test_result_dir, args.make_frame and args.num_frames_to_save != 0)
    return 0


def print_summary(summary: dict, result_dir: str, make_frame: bool) -> None:
    """One line per metric with its protocol, the baseline, and where the files are (only the
    lines of what was done: no metric lines without metrics, no frame paths without frames)."""
    import torch

    from swinlstm.metrics import format_summary

    if summary["per_frame"]:
        print(f"evaluated {summary['clips']} clips")
        per_frame = {k: torch.tensor(v) for k, v in summary["per_frame"].items()}
        for line in format_summary(per_frame, summary["protocol"]):
            print(line)
        base = summary["baseline_last_frame"]["mse"]
        print(
            f"{'baseline':<10} {base:12.6g}   [mse of repeating the last input frame, same protocol]"
        )
        print(f"metrics: {result_dir}/metrics.json, metrics.csv, per_frame.png")
    else:
        print(f"forecast {summary['clips']} clips; no metrics (--evaluate False)")
    if make_frame:
        print(
            f"frames: {result_dir}/frames/, GIFs: {result_dir}/gifs/, grid: {result_dir}/comparison.png"
        )


def main(argv: list[str] | None = None) -> int:
    """Entry of the root ``test.py``: the ``test`` subcommand with errors as one line, exit 2."""
    from swinlstm.cli.main import run

    parser = argparse.ArgumentParser(prog="test.py", description=HELP)
    configure(parser)
    parser.set_defaults(func=run_test, command="test")
    return run(argv, parser=parser)
