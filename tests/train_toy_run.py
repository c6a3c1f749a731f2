"""Run ``swinlstm.engine.train.train`` on the toy model and data (for subprocess tests).

    python tests/train_toy_run.py OUT_DIR ITERATIONS PRINT_FREQ [RESUME_FILE|-] [DEVICES] [SLEEP]

Prints ``STARTED rank=<r> iteration=<n>`` when training starts and
``RESULT rank=<r> iteration=<n> valid_count=<m>`` per process when done. ``SLEEP`` seconds are
added to every training step, so a test can kill the run in the middle. A run stopped by a signal
or a failure prints ``STOPPED rank=<r> iteration=<n> code=<c>`` and exits with the CLI's code.
"""

from __future__ import annotations

import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import lightning.pytorch as pl  # noqa: E402
import train_helpers  # noqa: E402

from swinlstm.engine.errors import TrainingStopped  # noqa: E402
from swinlstm.engine.train import run_training  # noqa: E402


class Slow(pl.Callback):
    def __init__(self, seconds: float) -> None:
        self.seconds = seconds

    def on_train_start(self, trainer, pl_module) -> None:
        print(f"STARTED rank={trainer.global_rank} iteration={pl_module.iteration}", flush=True)

    def on_train_batch_end(self, *args) -> None:
        time.sleep(self.seconds)


def main() -> None:
    out, iterations, print_freq = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
    resume = sys.argv[4] if len(sys.argv) > 4 and sys.argv[4] != "-" else None
    devices = int(sys.argv[5]) if len(sys.argv) > 5 else 1
    sleep = float(sys.argv[6]) if len(sys.argv) > 6 else 0.0
    config = train_helpers.toy_config(
        out,
        iterations=iterations,
        print_freq=print_freq,
        checkpoint_load_file=resume,
        devices=devices,
        strategy="ddp" if devices > 1 else "auto",
    )
    try:
        module = run_training(
            config,
            train_set=train_helpers.ToyClips(12),
            valid_set=train_helpers.ToyClips(7),
            callbacks=[Slow(sleep)],
        ).module
    except TrainingStopped as stop:
        print(
            f"STOPPED rank={stop.rank} iteration={getattr(stop, 'iteration', -1)} "
            f"code={stop.exit_code} {stop}",
            flush=True,
        )
        sys.exit(stop.exit_code)
    print(
        f"RESULT rank={module.global_rank} iteration={module.iteration} "
        f"valid_count={getattr(module, 'valid_count', -1)}",
        flush=True,
    )


if __name__ == "__main__":
    main()
