"""``swinlstm demo`` (``make demo``): train the ``demo`` preset on built-in digits, test it, draw it.

    swinlstm demo --output runs/demo [--iterations N]

The pipeline is :func:`swinlstm.demo.run_demo`; this prints its numbers: the demo's MSE
beside the MSE of repeating the last input frame (``"baseline_last_frame"`` in ``metrics.json``).
"""

from __future__ import annotations

import argparse

HELP = "train the small demo model on built-in digits, evaluate it and write runs/demo/"


def add_parser(subparsers) -> None:
    p = subparsers.add_parser("demo", help=HELP, description=HELP)
    p.add_argument("--output", default="runs/demo", help="folder of the demo's files")
    p.add_argument("--config", default=None, help="preset to train (default configs/demo.yaml)")
    p.add_argument("--iterations", type=int, default=None, help="override the preset's iterations")
    p.add_argument(
        "--test_clips", type=int, default=256, help="test clips evaluated (fixed generated set)"
    )
    p.add_argument("--num_frames_to_save", type=int, default=8, help="clips drawn as frames/GIFs")
    p.set_defaults(func=_run)


def _run(args: argparse.Namespace) -> int:
    from swinlstm.cli.test import print_summary
    from swinlstm.demo import relative_change, run_demo

    r = run_demo(
        args.output, args.config, args.iterations, args.test_clips, args.num_frames_to_save
    )
    out, summary = r.output, r.summary
    print_summary(summary, str(out), make_frame=args.num_frames_to_save > 0)
    mse, base = summary["mse"], summary["baseline_last_frame"]["mse"]
    zoo = r.zoo_summary
    zoo_line = zoo and f"zoo:{r.zoo_name} {zoo['mse']:.2f} (SSIM {zoo['means']['ssim']:.3f}); "
    fresh = (
        f"this demo's model after {r.train_seconds / 60:.1f} min of training {mse:.2f} "
        f"(SSIM {summary['means']['ssim']:.3f}, {relative_change(mse, base)} than the baseline)"
    )
    print(
        f"[demo] MSE per frame: {zoo_line or ''}{fresh}; repeating the last input frame {base:.2f}"
    )
    shown = " | ".join(["last input", "ground truth", *r.models])
    print(
        f"[demo] {out}/comparison.png rows per clip: truth, then each forecast and its error "
        f"({', '.join(r.models)}); gifs/: {shown}"
    )
    print(
        f"[demo] forecast a clip yourself: swinlstm predict --checkpoint "
        f"{'zoo:' + r.zoo_name if zoo else r.checkpoint_dir} --input {r.input_clip} "
        f"--short_len {r.short_len} --out_len {r.out_len} --output {out / 'predict'}"
    )
    return 0
