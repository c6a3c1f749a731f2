"""Why a training run stopped early: exceptions the CLI turns into one line and an exit code.

No heavy imports here: ``swinlstm.cli.main`` imports this module to map the exceptions.

* :class:`TrainingInterrupted`: SIGINT / SIGTERM; ``last.ckpt`` holds the iteration reached;
  exit code ``128 + signal`` (130 for SIGINT, 143 for SIGTERM), as a shell reports a killed job.
* :class:`TrainingFailed`: a non-finite loss or weights, or a checkpoint that could not be
  written; the files from before are intact; exit code 1.
"""

from __future__ import annotations


class TrainingStopped(Exception):
    """A run that ended before ``--iterations``; ``exit_code`` is what the CLI returns."""

    exit_code = 1
    rank = 0  # the global rank that raised it (set by the engine): only rank 0 reports


class TrainingFailed(TrainingStopped):
    """Training cannot go on (non-finite loss or weights, a checkpoint write that failed)."""


class CheckpointWriteError(TrainingFailed):
    """A file of the run could not be written (disk full, read-only, folder gone)."""


class TrainingInterrupted(TrainingStopped):
    """Stopped by a signal after the current iteration, with ``last.ckpt`` written.

    Attributes: ``signum``, ``iteration`` (reached and saved), ``checkpoint`` (its path),
    ``rank`` (the process's global rank: only rank 0 reports).
    """

    def __init__(self, signum: int, iteration: int, checkpoint: str, rank: int = 0) -> None:
        import signal

        self.signum, self.iteration, self.checkpoint, self.rank = (
            signum,
            iteration,
            checkpoint,
            rank,
        )
        self.exit_code = 128 + int(signum)
        name = signal.Signals(signum).name
        super().__init__(f"{name}: stopped at iteration {iteration}, saved in {checkpoint}")
