"""``train(config) -> Path``: one training run on Lightning, used by the CLI and the demo.

What a run writes into ``checkpoint_save_dir``:

* ``last.ckpt`` (every validation, every ``checkpoint_every`` minutes, on SIGINT / SIGTERM and at
  the end) and ``best.ckpt`` (lowest validation MSE): Lightning checkpoints with a top-level
  integer ``iteration``, ``hyper_parameters`` holding ``model_name`` / ``model_config`` as plain
  types and ``train_config`` (the resolved :class:`TrainConfig`);
* ``model.safetensors`` + ``model.json``: the best weights (the last ones if there is no
  validation set), loadable without Lightning or pickle (``swinlstm.engine.checkpoint.load_model``);
* ``config.yaml`` (the resolved configuration), ``metrics.csv`` (train loss, learning rate and
  validation metrics by iteration) and ``tensorboard/`` when tensorboard is installed.

Every file goes to a temporary file that is then renamed; the files one save writes (``last.ckpt``,
``metrics.csv`` and, for a new best, ``best.ckpt``, ``model.safetensors``, ``model.json``) are
renamed only once all are complete, so they change together or not at all. A write that fails
(disk full, read-only, folder removed) raises :class:`~swinlstm.engine.errors.CheckpointWriteError`
and leaves the files from before; only rank 0 writes, every rank stops.

``checkpoint_load_file`` either resumes (a ``.ckpt`` written here: same iteration, optimiser,
schedule, data order and random state) or fine-tunes (``model.safetensors``, a weights-only
``.ckpt`` or an authors' published file: weights only, iteration 0). ``resume`` (or
``checkpoint_load_file="auto"``) resumes from ``last.ckpt`` in ``checkpoint_save_dir`` when there
is one, so that a requeued job can rerun the same command.

SIGINT / SIGTERM finish the current iteration, write ``last.ckpt`` and raise
:class:`~swinlstm.engine.errors.TrainingInterrupted`; a second signal exits at once. A non-finite
loss raises :class:`~swinlstm.engine.errors.TrainingFailed` before anything is written over.
"""

from __future__ import annotations

import copy
import csv
import dataclasses
import json
import math
import os
import shutil
import signal
import sys
import threading
import time
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import lightning.pytorch as pl
import torch
from lightning.fabric.plugins.io.torch_io import TorchCheckpointIO
from lightning.pytorch.callbacks import Callback

from swinlstm.engine.checkpoint import (
    CONFIG_FILE,
    MODEL_FILE,
    RECORDED_DATA,
    atomic_write,
    load_model,
    model_files,
    read_weights_only,
    save_torch,
    temp_path,
    write_failure,
    write_files,
)
from swinlstm.engine.datamodule import PredictionDataModule, shutdown_workers
from swinlstm.engine.errors import (
    CheckpointWriteError,
    TrainingFailed,
    TrainingInterrupted,
    TrainingStopped,
)
from swinlstm.engine.module import PredictionModule
from swinlstm.engine.rules import LONG_LEN
from swinlstm.errors import ConfigError, MissingPathError
from swinlstm.models.official import authors_config

LAST, BEST = "last", "best"
_MISSING = object()


@dataclass
class TrainConfig:
    """Everything a run needs; the ``swinlstm train`` flags map one to one onto these fields.

    Fields that default to None are filled by :func:`resolve_config`: when resuming, from what
    the checkpoint recorded; otherwise ``dataset`` movingmnist, ``model`` swinlstm-d,
    ``short_len`` / ``out_len`` 10, and ``img_size`` / ``img_channel`` the dataset's own
    (:func:`swinlstm.data.native_frame`). ``long_len`` None is resolved by
    :func:`resolved_long_len` once the model is built (memory models: LMC-Memory's 30).
    """

    # data
    dataset: str | None = None
    train_data_dir: str | None = None
    valid_data_dir: str | None = None
    img_size: int | list[int] | None = None
    img_channel: int | None = None
    short_len: int | None = None
    out_len: int | None = None
    long_len: int | None = None  # memory models: None = LMC's 30, at most short_len + out_len
    data_options: dict[str, Any] = field(default_factory=dict)
    batch_size: int = 16
    workers: int = 2
    seed: int = 1234
    # model
    model: str | None = None
    model_config: dict[str, Any] = field(default_factory=dict)
    # optimisation
    lr: float = 1e-4
    weight_decay: float = 0.0
    schedule: str = "none"
    schedule_warmup: int = 0
    min_lr: float = 1e-6
    grad_clip: float = 0.0
    scheduled_sampling: bool = False
    sampling_stop_iter: int = 50000
    sampling_changing_rate: float = 2e-5
    iterations: int = 300000
    iterations_warmup: int = 5000
    alignment_zero_grad: str = "zeros"  # memory models: PyTorch 1.6's zero_grad (the authors')
    # validation and outputs
    print_freq: int = 1000
    log_every: int = 50  # Lightning's log_every_n_steps (metrics.csv / tensorboard loss)
    valid_batches: int | None = None
    valid_batch_size: int | None = None
    valid_metrics: list[str] = field(default_factory=lambda: ["mse", "mae", "ssim", "psnr"])
    protocol: str = "default"
    checkpoint_save_dir: str = "./checkpoints"
    checkpoint_load_file: str | None = None
    checkpoint_every: float = 10.0  # minutes between time-based last.ckpt writes (0: off)
    early_stop: int = 0  # stop after this many validations without a better MSE (0: off)
    resume: bool = False  # resume from checkpoint_save_dir/last.ckpt when it exists
    checkpoint_load: bool | None = (
        None  # LMC's flag: False = do not load the file; None: it decides
    )
    # hardware (Lightning's meanings)
    accelerator: str = "auto"
    devices: int | str = 1
    num_nodes: int = 1
    strategy: str = "auto"
    precision: str = "32-true"
    progress: bool = True

    def validate(self) -> None:
        """Raise ValueError naming the flag for settings no run can use (None: resolved later)."""
        for name in ("short_len", "out_len", "batch_size", "iterations", "print_freq", "num_nodes"):
            if getattr(self, name) is not None and int(getattr(self, name)) < 1:
                raise ConfigError(f"--{name} must be >= 1, got {getattr(self, name)}")
        long_len = self.long_len or 0
        if long_len < 0 or self.iterations_warmup < 0 or self.workers < 0:
            raise ConfigError("--long_len, --iterations_warmup and --workers must be >= 0")
        if None not in (self.short_len, self.out_len) and long_len > self.short_len + self.out_len:
            raise ConfigError(
                f"--long_len {self.long_len} is longer than the clip it is taken from: "
                f"--short_len + --out_len = {self.short_len + self.out_len}"
            )
        if self.lr <= 0:
            raise ConfigError(f"--lr must be > 0, got {self.lr}")
        if self.valid_batches is not None and self.valid_batches < 0:
            raise ConfigError(f"--valid_batches must be >= 0, got {self.valid_batches}")
        if self.early_stop < 0:
            raise ConfigError(
                f"--early_stop must be >= 0 validations (0: off), got {self.early_stop}"
            )
        if not self.checkpoint_every >= 0:
            raise ConfigError(
                f"--checkpoint_every must be >= 0 minutes (0: off), got {self.checkpoint_every}"
            )

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


# settings a resumed run may change; any other that differs from the checkpoint's is refused
RESUME_MAY_CHANGE = frozenset(
    {
        "train_data_dir",
        "valid_data_dir",
        "data_options",  # laid over the recorded ones (resolve_config)
        "workers",
        "model",  # the model is checked on its own (the checkpoint's network is used)
        "model_config",
        "iterations",
        "print_freq",
        "valid_batches",
        "valid_batch_size",
        "valid_metrics",
        "checkpoint_save_dir",
        "checkpoint_load_file",
        "checkpoint_load",
        "checkpoint_every",
        "early_stop",
        "resume",
        "accelerator",
        "devices",
        "num_nodes",
        "strategy",
        "precision",
        "progress",
    }
)


_FIELDS = frozenset(f.name for f in dataclasses.fields(TrainConfig))

# what resolve_config gives the None fields of a new run (img_size / img_channel: the dataset's)
_DEFAULTS = {"dataset": "movingmnist", "model": "swinlstm-d", "short_len": 10, "out_len": 10}


def data_record(cfg: TrainConfig) -> dict[str, Any]:
    """The data a run trains on, as saved beside its weights: ``test`` and ``predict`` and a
    resumed run use it where their flags are silent."""
    record = {k: getattr(cfg, k) for k in RECORDED_DATA}
    record["data_options"] = dict(cfg.data_options)
    return _plain(record)


def resolve_config(config: TrainConfig | dict[str, Any]) -> TrainConfig:
    """A copy of ``config`` with its None fields filled (see :class:`TrainConfig`).

    Resuming a ``.ckpt`` of ours takes the model, its configuration and the data the checkpoint
    records wherever ``config`` is silent; ``data_options`` given are laid over the recorded ones.
    The model is built for the data's frames unless ``model_config`` says otherwise.
    """
    from swinlstm.data import dataset_key, native_frame

    given = as_config(config)
    cfg = dataclasses.replace(
        given, model_config=dict(given.model_config), data_options=dict(given.data_options)
    )
    if cfg.resume or cfg.checkpoint_load_file == "auto":  # now the file itself, or none
        source = _load_source(cfg)
        cfg.checkpoint_load_file, cfg.resume = (str(source) if source else None), False
    ckpt = _resume_checkpoint(cfg)
    if ckpt is not None:
        hp = ckpt["hyper_parameters"]
        saved = dict(hp.get("data") or {})
        saved.setdefault("short_len", hp.get("short_len"))
        saved.setdefault("out_len", hp.get("out_len"))
        saved.setdefault("img_size", hp["model_config"].get("img_size"))
        saved.setdefault("img_channel", hp["model_config"].get("in_chans"))
        saved["model"] = hp["model_name"]
        for key, value in saved.items():
            if key in _FIELDS and key != "data_options" and getattr(cfg, key) is None:
                setattr(cfg, key, value)
        if saved.get("dataset") in (None, cfg.dataset):
            cfg.data_options = {**(saved.get("data_options") or {}), **cfg.data_options}
    for key, value in _DEFAULTS.items():
        if getattr(cfg, key) is None:
            setattr(cfg, key, value)
    cfg.dataset = dataset_key(cfg.dataset)
    if cfg.img_size is None or cfg.img_channel is None:
        size, channels = native_frame(cfg.dataset)
        if cfg.img_size is None:
            cfg.img_size = list(size) if isinstance(size, tuple) else size
        if cfg.img_channel is None:
            cfg.img_channel = channels
    cfg.model_config.setdefault("img_size", cfg.img_size)
    cfg.model_config.setdefault("in_chans", cfg.img_channel)
    if ckpt is not None:
        _check_resume_fits(cfg, ckpt["hyper_parameters"], Path(cfg.checkpoint_load_file))
        cfg.model_config = dict(ckpt["hyper_parameters"]["model_config"])
        _settle_with_run(cfg, ckpt, Path(cfg.checkpoint_load_file))  # the other settings
    return cfg


def _resume_checkpoint(cfg: TrainConfig) -> dict | None:
    source = Path(cfg.checkpoint_load_file) if cfg.checkpoint_load_file else None
    if source is None or not source.is_file() or cfg.checkpoint_load is False:
        return None
    return read_training_checkpoint(source)


def as_config(config: TrainConfig | dict[str, Any]) -> TrainConfig:
    """A :class:`TrainConfig` from itself or a mapping of its fields (unknown keys: an error)."""
    if isinstance(config, TrainConfig):
        return config
    unknown = sorted(set(config) - _FIELDS)
    if unknown:
        raise ConfigError(f"unknown training settings: {', '.join(unknown)}")
    return TrainConfig(**{k: v for k, v in config.items() if v is not None})


class AtomicCheckpointIO(TorchCheckpointIO):
    """Lightning's checkpoint writer, but through a temporary file and a rename (kill -9 safe)."""

    def save_checkpoint(self, checkpoint: dict, path, storage_options=None) -> None:
        atomic_write(path, lambda tmp: save_torch(checkpoint, tmp))


class ProgressBar(Callback):
    """One tqdm bar over iterations (loss, it/s, ETA) and one summary line per validation."""

    def __init__(self, total: int, enabled: bool = True) -> None:
        self.total = total
        self.enabled = enabled
        self.bar = None

    def on_train_start(self, trainer, pl_module) -> None:
        if not (self.enabled and trainer.is_global_zero):
            return
        from tqdm.auto import tqdm

        tty = sys.stdout.isatty()
        self.bar = tqdm(
            total=self.total,
            initial=pl_module.iteration,
            desc="train",
            unit="it",
            dynamic_ncols=True,
            mininterval=0.5 if tty else 30.0,
            file=sys.stdout,
        )

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        if self.bar is not None:
            self.bar.update(1)
            loss = trainer.callback_metrics.get("loss")
            if loss is not None:
                self.bar.set_postfix(loss=f"{float(loss):.4g}", refresh=False)

    def write(self, line: str) -> None:
        if self.bar is not None:
            self.bar.write(line, file=sys.stdout)
        else:
            print(line, flush=True)

    def on_train_end(self, trainer, pl_module) -> None:
        if self.bar is not None:
            self.bar.close()
            self.bar = None

    def on_exception(self, trainer, pl_module, exception: BaseException) -> None:
        self.on_train_end(trainer, pl_module)  # the bar ends before the line saying why


class RunRecorder(Callback):
    """After each validation: a metrics.csv row, a summary line, and whether the validation MSE
    is a new best (``improved``). :class:`RunCheckpoints` writes the files."""

    def __init__(self, directory: Path, bar: ProgressBar, start_iteration: int) -> None:
        self.directory = directory
        self.bar = bar
        self.best = math.inf
        self.best_iteration: int | None = None
        self.since_best = 0  # validations since the best one (what --early_stop counts)
        self.improved = False
        self.rows: list[dict[str, Any]] = []
        self.columns: list[str] = ["iteration", "train_seconds", "train_loss", "lr"]
        self.csv_path = directory / "metrics.csv"
        self._t0 = time.monotonic()
        self._it0 = start_iteration
        self._seconds0 = 0.0  # training seconds before this process (restored on resume)
        if self.csv_path.is_file():  # resumed: keep the rows up to the checkpoint's iteration
            with open(self.csv_path, newline="") as f:
                reader = csv.DictReader(f)
                self.columns = list(reader.fieldnames or self.columns)
                self.rows = [r for r in reader if int(float(r["iteration"])) <= start_iteration]

    def on_train_start(self, trainer, pl_module) -> None:
        self._t0, self._it0 = time.monotonic(), pl_module.iteration

    def seconds(self) -> float:
        """Wall seconds of training so far, summed over every resumed process."""
        return self._seconds0 + time.monotonic() - self._t0

    def state_dict(self) -> dict[str, Any]:
        return {
            "best": float(self.best),
            "best_iteration": self.best_iteration,
            "since_best": self.since_best,
            "train_seconds": self.seconds(),
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.best = float(state.get("best", math.inf))
        self.best_iteration = state.get("best_iteration")
        self.since_best = int(state.get("since_best", 0))
        self._seconds0 = float(state.get("train_seconds", 0.0))

    def csv_file(self) -> tuple[Path, Any]:
        """``(path, write_fn)`` of metrics.csv for :func:`write_files`."""
        columns, rows = list(self.columns), list(self.rows)

        def write(tmp: str) -> None:
            with open(tmp, "w", newline="") as f:
                writer = csv.DictWriter(f, fieldnames=columns, extrasaction="ignore")
                writer.writeheader()
                writer.writerows(rows)

        return self.csv_path, write

    def on_validation_end(self, trainer, pl_module) -> None:
        if trainer.sanity_checking:
            return
        train_loss = pl_module.pop_train_loss()  # collective: every rank calls it
        self.improved = False
        if not trainer.is_global_zero:
            return
        values = {k: float(v.mean()) for k, v in getattr(pl_module, "valid_per_frame", {}).items()}
        lr = trainer.optimizers[0].param_groups[0]["lr"]
        row = {
            "iteration": pl_module.iteration,
            "train_seconds": round(self.seconds(), 1),
            "train_loss": train_loss,
            "lr": lr,
            **values,
        }
        for key in row:
            if key not in self.columns:
                self.columns.append(key)
        self.rows.append(row)
        mse = values.get("mse", math.nan)
        self.improved = mse < self.best
        if self.improved:
            self.best, self.best_iteration, self.since_best = mse, pl_module.iteration, 0
        else:
            self.since_best += 1
        rate = (pl_module.iteration - self._it0) / max(time.monotonic() - self._t0, 1e-9)
        shown = " ".join(f"{k} {v:.4g}" for k, v in values.items())
        self.bar.write(
            f"iter {pl_module.iteration}/{trainer.max_steps // _steps_per_iteration(pl_module)}"
            f" | loss {train_loss:.4g} | val {shown} | best mse {self.best:.4g}"
            f"{' (new)' if self.improved else ''} | {rate:.2f} it/s"
        )


def _say(line: str) -> None:
    """One line on stderr, safe inside a signal handler (no buffered stream involved)."""
    try:
        os.write(2, (line + "\n").encode())
    except OSError:
        pass


class StopSignals:
    """SIGINT / SIGTERM handlers for a run: the first signal asks for a stop after the current
    iteration (``signum``); a second one exits at once (``128 + signal``), killing the DDP
    processes this one started. In a SLURM job, SIGUSR1 (``#SBATCH --signal=USR1@SECONDS``, the
    signal of Lightning's SLURM auto-requeue) stops the same way, then the job is requeued."""

    def __init__(self) -> None:
        self.signum: int | None = None
        self.rank = 0
        self.children: list = []
        self._previous: dict[int, Any] = {}
        self.signals = [signal.SIGINT, signal.SIGTERM]
        if os.environ.get("SLURM_JOB_ID") and hasattr(signal, "SIGUSR1"):
            self.signals.append(signal.SIGUSR1)

    def install(self) -> None:
        if threading.current_thread() is not threading.main_thread():
            return
        for sig in self.signals:
            self._previous.setdefault(sig, signal.getsignal(sig))
            signal.signal(sig, self._handle)

    def restore(self) -> None:
        for sig, handler in self._previous.items():
            signal.signal(sig, signal.SIG_DFL if handler is None else handler)
        self._previous = {}

    def _handle(self, signum: int, frame: Any) -> None:
        name = signal.Signals(signum).name
        if self.signum is not None:
            if self.rank == 0:
                _say(f"second {name}: aborting at once (last.ckpt keeps its last complete save)")
            for proc in self.children:
                try:
                    proc.kill()
                except OSError:
                    pass
            os._exit(128 + signum)
        self.signum = signum
        if self.rank == 0:
            _say(f"{name}: stopping after this iteration to save last.ckpt (again: abort at once)")


class RunCheckpoints(Callback):
    """Writes the run's checkpoint files (see the module docstring) and stops on a signal.

    * after each validation: ``last.ckpt`` and ``metrics.csv``, plus ``best.ckpt`` +
      ``model.safetensors`` + ``model.json`` when the validation MSE is a new best;
    * without validation: all of them every ``print_freq`` iterations (best = latest);
    * every ``checkpoint_every`` minutes: ``last.ckpt`` alone, without validating;
    * on SIGINT / SIGTERM: ``last.ckpt`` after the current iteration (after its validation when
      one is due), then :class:`TrainingInterrupted`;
    * at the end: ``last.ckpt`` (and the best files if none were written).

    Every rank takes part in each save (the checkpoint is gathered collectively); rank 0 writes;
    a write error on rank 0 is raised on every rank. Non-finite weights are never written.
    """

    def __init__(
        self,
        directory: Path,
        config: dict[str, Any],
        recorder: RunRecorder,
        has_valid: bool,
        stops: StopSignals,
    ) -> None:
        self.directory = directory
        self.config = config
        self.recorder = recorder
        self.has_valid = has_valid
        self.stops = stops
        self.print_freq = int(config["print_freq"])
        self.total = int(config["iterations"])
        self.every = float(config["checkpoint_every"]) * 60.0
        self.saved_iteration: int | None = None
        self.stopped_early: dict[str, Any] | None = None
        self.has_best = False
        self._last_save = time.monotonic()

    @property
    def last(self) -> Path:
        return self.directory / f"{LAST}.ckpt"

    def describe_last(self) -> str:
        """Where the last good checkpoint is, for error messages."""
        if self.saved_iteration is None:
            return f"no checkpoint was written in {self.directory}"
        return f"the last good checkpoint is {self.last} (iteration {self.saved_iteration})"

    # ----- hooks ----------------------------------------------------------------------------
    def on_save_checkpoint(self, trainer, pl_module, checkpoint: dict[str, Any]) -> None:
        checkpoint["train_config"] = self.config

    def on_train_start(self, trainer, pl_module) -> None:
        self.stops.rank = trainer.global_rank
        self.stops.children = list(getattr(trainer.strategy.launcher, "procs", None) or [])
        self.stops.install()  # again: Lightning installed its own SIGTERM handler meanwhile
        known = None
        if trainer.is_global_zero:
            known = (_saved_iteration(self.last), (self.directory / MODEL_FILE).is_file())
        self.saved_iteration, self.has_best = trainer.strategy.broadcast(known, src=0)
        self._last_save = time.monotonic()

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        it = pl_module.iteration
        signum, due = self._agreed_flags(trainer)
        if it >= self.total:
            return  # the end: on_train_end saves, a signal now changes nothing
        validating = self.has_valid and it % self.print_freq == 0
        if signum and validating:
            return  # let this iteration's validation run; on_validation_end saves and stops
        periodic = not self.has_valid and it % self.print_freq == 0
        if periodic or signum or (due and not validating):
            self.save(trainer, pl_module, best=periodic)
        if signum:
            raise TrainingInterrupted(signum, it, str(self.last), trainer.global_rank)

    def on_validation_end(self, trainer, pl_module) -> None:
        if trainer.sanity_checking:
            return
        improved = trainer.strategy.broadcast(self.recorder.improved, src=0)  # rank 0 decides
        self.save(trainer, pl_module, best=improved, metrics=True)
        self._early_stop(trainer, pl_module)
        signum, _ = self._agreed_flags(trainer)
        if signum and pl_module.iteration < self.total:
            raise TrainingInterrupted(
                signum, pl_module.iteration, str(self.last), trainer.global_rank
            )

    def on_train_end(self, trainer, pl_module) -> None:
        best = not self.has_valid or not self.has_best
        if self.saved_iteration != pl_module.iteration or best:
            self.save(trainer, pl_module, best=best)

    def _early_stop(self, trainer, pl_module) -> None:
        """After ``early_stop`` validations without a better MSE: record it in
        ``early_stop.json`` and end the run (``best.ckpt`` is its result)."""
        patience = int(self.config.get("early_stop") or 0)
        stale = trainer.strategy.broadcast(self.recorder.since_best, src=0)
        if not patience or stale < patience or pl_module.iteration >= self.total:
            return
        self.stopped_early = {
            "patience": patience,
            "stopped_at_iteration": pl_module.iteration,
            "best_iteration": self.recorder.best_iteration,
            "best_val_mse": self.recorder.best,
        }
        if trainer.is_global_zero:
            record = self.directory / "early_stop.json"
            write_files(
                [(record, lambda tmp: Path(tmp).write_text(json.dumps(self.stopped_early)))]
            )
        trainer.should_stop = True

    # ----- saving ----------------------------------------------------------------------------
    def _agreed_flags(self, trainer) -> tuple[int, bool]:
        """(signal to stop for or 0, time-based save due), the same on every rank."""
        signum = int(self.stops.signum or 0)
        due = self.every > 0 and time.monotonic() - self._last_save >= self.every
        if trainer.world_size > 1 and torch.distributed.is_initialized():
            flags = torch.tensor([signum, int(due)], device=trainer.strategy.root_device)
            torch.distributed.all_reduce(flags, op=torch.distributed.ReduceOp.MAX)
            signum, due = int(flags[0]), bool(flags[1])
        return signum, due

    def save(self, trainer, pl_module, best: bool, metrics: bool = False) -> None:
        """Write last.ckpt (+ metrics.csv, + the best files): collective, rank 0 writes."""
        checkpoint = trainer._checkpoint_connector.dump_checkpoint(weights_only=False)
        failure = None
        if trainer.is_global_zero:
            try:
                self._write(checkpoint, pl_module, best, metrics)
            except TrainingFailed as err:
                failure = (isinstance(err, CheckpointWriteError), str(err))
        failure = trainer.strategy.broadcast(failure, src=0)
        if failure is not None:
            raise (CheckpointWriteError if failure[0] else TrainingFailed)(failure[1])
        self.saved_iteration = pl_module.iteration
        self.has_best = self.has_best or best
        self._last_save = time.monotonic()

    def _write(self, checkpoint: dict, pl_module, best: bool, metrics: bool) -> None:
        it = pl_module.iteration
        bad = _non_finite_parameter(pl_module.model)
        if bad is not None:
            raise TrainingFailed(
                f"the weights are not finite at iteration {it} ({bad}): nothing written over "
                f"them; {self.describe_last()}"
            )
        last = self.last
        files: list = [(last, lambda tmp: save_torch(checkpoint, tmp))]
        if metrics:
            files.append(self.recorder.csv_file())
        if best:
            extra: dict[str, Any] = {"iteration": it, **_data_of(pl_module)}
            if self.has_valid and math.isfinite(self.recorder.best):
                extra["val_mse"] = self.recorder.best
            files.append((self.directory / f"{BEST}.ckpt", lambda tmp: _link(temp_path(last), tmp)))
            files += model_files(pl_module.model, self.directory, extra)
        write_files(files)


def _link(source: Path, target: str) -> None:
    """``target`` with ``source``'s contents: a hard link (no second copy), else a copy."""
    try:
        os.link(source, target)
    except OSError:
        shutil.copyfile(source, target)


def _non_finite_parameter(model: torch.nn.Module) -> str | None:
    """The name of the first parameter or buffer holding NaN / inf, else None."""
    for name, tensor in [*model.named_parameters(), *model.named_buffers()]:
        if tensor.is_floating_point() and not bool(torch.isfinite(tensor).all()):
            return name
    return None


def _data_of(module: PredictionModule) -> dict[str, Any]:
    """``{"data": record}`` of :func:`data_record` for model.json (empty if the module has none)."""
    data = getattr(module.hparams, "data", None)
    return {"data": dict(data)} if data else {}


def resolved_long_len(cfg: TrainConfig, memory: bool) -> int:
    """The long clip's length: 0 without memory; unset, LMC-Memory's ``train.py`` default
    (:data:`~swinlstm.models.training.LONG_LEN`, 30) cut to the clip; else the setting (0: the
    whole clip)."""
    if not memory:
        return 0
    if cfg.long_len is None:
        return min(LONG_LEN, cfg.short_len + cfg.out_len)
    return cfg.long_len


def _steps_per_iteration(module: PredictionModule) -> int:
    return 2 if module.memory else 1


def _saved_iteration(path: Path) -> int | None:
    if not path.is_file():
        return None
    try:
        return int(read_weights_only(path).get("iteration", -1))
    except Exception:
        return None


def read_training_checkpoint(path: Path) -> dict | None:
    """The checkpoint when ``path`` is a resumable Lightning ``.ckpt`` written by us, else None.

    Raises ValueError (refusal) for files that would need arbitrary unpickling.
    """
    if path.suffix != ".ckpt":
        return None
    ckpt = read_weights_only(path)
    if (
        isinstance(ckpt, dict)
        and "loops" in ckpt
        and "model_name" in ckpt.get("hyper_parameters", {})
    ):
        return ckpt
    return None


def _module(cfg: TrainConfig, name: str, model_config: dict, skip_warmup: bool) -> PredictionModule:
    return PredictionModule(
        model_name=name,
        model_config=model_config,
        short_len=cfg.short_len,
        out_len=cfg.out_len,
        lr=cfg.lr,
        weight_decay=cfg.weight_decay,
        iterations=cfg.iterations,
        iterations_warmup=cfg.iterations_warmup,
        schedule=cfg.schedule,
        schedule_warmup=cfg.schedule_warmup,
        min_lr=cfg.min_lr,
        grad_clip=cfg.grad_clip,
        scheduled_sampling=cfg.scheduled_sampling,
        sampling_stop_iter=cfg.sampling_stop_iter,
        sampling_changing_rate=cfg.sampling_changing_rate,
        valid_metrics=list(cfg.valid_metrics),
        protocol=cfg.protocol,
        skip_warmup=skip_warmup,
        seed=cfg.seed,
        alignment_zero_grad=cfg.alignment_zero_grad,
        data=data_record(cfg),
    )


def _load_source(cfg: TrainConfig) -> Path | None:
    """The file ``checkpoint_load_file`` / ``resume`` point at (None: a new run).

    ``resume`` or ``checkpoint_load_file="auto"``: ``checkpoint_save_dir/last.ckpt`` when it
    exists; otherwise the given ``checkpoint_load_file`` (fine-tune or resume from it), or none.
    """
    given = cfg.checkpoint_load_file
    if cfg.resume or given == "auto":
        last = Path(cfg.checkpoint_save_dir) / f"{LAST}.ckpt"
        if last.is_file():
            return last
        if given in (None, "auto"):
            print(f"no {last} yet: starting a new run", flush=True)
            return None
    return Path(given) if given else None


def _settle_with_run(cfg: TrainConfig, ckpt: dict, source: Path) -> None:
    """Resuming: the settings left at their defaults take the checkpoint's run's values; any
    other that differs from them (outside ``RESUME_MAY_CHANGE``) is a ValueError naming it."""
    saved = ckpt.get("train_config")
    if not isinstance(saved, dict):
        return  # written before train_config was stored: only the model is checked
    differ = []
    for f in dataclasses.fields(TrainConfig):
        if f.name in RESUME_MAY_CHANGE or f.name not in saved:
            continue
        now, was = _plain(getattr(cfg, f.name)), _plain(saved[f.name])
        if now == was:
            continue
        default = f.default_factory() if f.default_factory is not dataclasses.MISSING else f.default
        if now == _plain(default):  # not asked for: the run's own value
            setattr(cfg, f.name, copy.deepcopy(saved[f.name]))
        else:
            differ.append(f.name)
    if differ:
        was = ", ".join(f"{k}={saved[k]!r}" for k in differ)
        given = ", ".join(f"{k}={_plain(getattr(cfg, k))!r}" for k in differ)
        raise ConfigError(
            f"{source} was trained with {was}; the flags give {given}: leave them out (or give "
            "the same) to resume, or pass another --checkpoint_save_dir to start a new run"
        )


def _prepare_model(cfg: TrainConfig) -> tuple[PredictionModule, str | None]:
    """The module to train and the checkpoint to resume from (None: a new run)."""
    source = Path(cfg.checkpoint_load_file) if cfg.checkpoint_load_file else None
    if cfg.checkpoint_load is True and source is None:
        raise ConfigError("--checkpoint_load True needs --checkpoint_load_file FILE")
    if cfg.checkpoint_load is False and source is not None:
        # LMC-Memory's train.py loads (and skips warm-up) only with --checkpoint_load True
        print(f"--checkpoint_load False: {source} is not loaded; a new run", flush=True)
        source = None
    if source is not None and not source.exists():
        raise MissingPathError(f"--checkpoint_load_file not found: {source}")
    ckpt = read_training_checkpoint(source) if source is not None and source.is_file() else None
    if ckpt is not None:  # resume: the network is the checkpoint's
        hp = ckpt["hyper_parameters"]  # resolve_config checked the flags against it
        module = _module(
            cfg, hp["model_name"], dict(hp["model_config"]), hp.get("skip_warmup", False)
        )
        return module, str(source)
    # the authors' per-dataset network (LMC-Memory's KTH sigmoid) under the user's own settings
    derived = authors_config(cfg.model, cfg.dataset)
    config = {**derived, **cfg.model_config}
    loaded = info = None
    if source is not None:
        loaded, info = load_model(source, name=cfg.model, config=config)
        if info["format"] != "official":  # our checkpoint records what was derived
            saved = info.get("config", {})
            config.update(
                {k: saved[k] for k in derived if k not in cfg.model_config and k in saved}
            )
    module = _module(cfg, cfg.model, config, skip_warmup=source is not None)
    if loaded is not None:  # fine-tune: weights only
        from swinlstm.models.official import describe_mismatch

        sd = loaded.state_dict()
        problem = describe_mismatch(module.model, sd)
        if problem:
            raise ConfigError(f"{source} ({info['format']}) does not fit the model: {problem}")
        module.model.load_state_dict(sd)
        print(f"fine-tuning from {source} ({info['format']} weights)", flush=True)
    return module, None


def _check_resume_fits(cfg: TrainConfig, hp: dict, source: Path) -> None:
    """One line naming what the flags change of the model a resumed checkpoint trains."""
    saved = hp["model_config"]
    clash = [k for k, v in cfg.model_config.items() if saved.get(k, _MISSING) != _plain(v)]
    if cfg.model != hp["model_name"]:
        clash.insert(0, "model")
    if clash:
        asked = {"model": cfg.model, **cfg.model_config}
        was = {"model": hp["model_name"], **saved}
        diffs = ", ".join(f"{k} {asked[k]} (trained: {was.get(k, 'unset')})" for k in clash)
        raise ConfigError(
            f"{source} was trained as {hp['model_name']}, but the flags change {diffs}: leave "
            "the model flags out to resume (the checkpoint records them), or fine-tune from "
            "its model.safetensors"
        )


def _check_model_fits(module: PredictionModule, cfg: TrainConfig, channels: int) -> None:
    """A clear error when the model's frame size / channels differ from the data's."""
    size = cfg.img_size if isinstance(cfg.img_size, (list, tuple)) else [cfg.img_size] * 2
    size = list(size) * 2 if len(size) == 1 else list(size)
    model_size = list(getattr(module.model, "img_size", size))
    if model_size != size or getattr(module.model, "in_chans", channels) != channels:
        raise ConfigError(
            f"the model takes {model_size[0]}x{model_size[1]} frames with "
            f"{getattr(module.model, 'in_chans', '?')} channels but the data gives "
            f"{size[0]}x{size[1]} with {channels}: check --img_size / --img_channel"
        )


def _resolved_config(cfg: TrainConfig, module: PredictionModule) -> dict[str, Any]:
    """``cfg`` as a dict, with the network actually trained (the checkpoint's when resuming)."""
    data = cfg.to_dict()
    data["model"] = module.hparams.model_name
    data["model_config"] = dict(module.hparams.model_config)
    return data


def _write_config(cfg: TrainConfig, module: PredictionModule, directory: Path) -> None:
    import yaml

    text = yaml.safe_dump(_plain(_resolved_config(cfg, module)), sort_keys=False)
    atomic_write(directory / "config.yaml", lambda p: Path(p).write_text(text))


def _plain(value: Any) -> Any:
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    return value


def _logger(directory: Path) -> Any:
    try:
        import tensorboard  # noqa: F401
    except ImportError:
        return False
    from lightning.pytorch.loggers import TensorBoardLogger

    return TensorBoardLogger(save_dir=str(directory), name="tensorboard", version="")


@dataclass
class TrainResult:
    """What :func:`run_training` leaves: the output folder, the trained module, the trainer."""

    directory: Path
    module: PredictionModule
    trainer: pl.Trainer


def train(
    config: TrainConfig | dict[str, Any],
    train_set: torch.utils.data.Dataset | None = None,
    valid_set: torch.utils.data.Dataset | None = None,
) -> Path:
    """Train as ``config`` says; returns ``checkpoint_save_dir`` (holding the files listed above).

    ``train_set`` / ``valid_set`` replace ``build_datasets`` (programs with their own data).
    """
    return run_training(config, train_set, valid_set).directory


def run_training(
    config: TrainConfig | dict[str, Any],
    train_set: torch.utils.data.Dataset | None = None,
    valid_set: torch.utils.data.Dataset | None = None,
    callbacks: list[Callback] | None = None,
) -> TrainResult:
    """:func:`train`, with extra Lightning ``callbacks`` and the module and trainer returned."""
    cfg = resolve_config(config)
    cfg.validate()
    _check_hardware(cfg)  # before the data is built: a missing GPU is known at once
    directory = Path(cfg.checkpoint_save_dir)
    pl.seed_everything(cfg.seed, workers=True, verbose=False)
    module, resume_from = _prepare_model(cfg)
    cfg = dataclasses.replace(cfg, long_len=resolved_long_len(cfg, module.memory))
    if module.hparams.get("data"):  # the record says the long clip the run trains on
        module.hparams.data["long_len"] = cfg.long_len
    if cfg.scheduled_sampling and module.memory:
        raise ConfigError(
            "--scheduled_sampling True has no effect on a memory model (memory_size > 0 trains "
            "by LMC-Memory's memory alignment): leave it out, or use --memory_size 0"
        )
    data = PredictionDataModule(
        dataset=cfg.dataset,
        data_options={
            "train_dir": cfg.train_data_dir,
            "valid_dir": cfg.valid_data_dir,
            "short_len": cfg.short_len,
            "out_len": cfg.out_len,
            "long_len": cfg.long_len,
            "img_size": cfg.img_size,
            "img_channel": cfg.img_channel,
            "seed": cfg.seed,
            **cfg.data_options,
        },
        batch_size=cfg.batch_size,
        iterations=cfg.iterations,
        seed=cfg.seed,
        workers=cfg.workers,
        valid_batches=cfg.valid_batches,
        valid_batch_size=cfg.valid_batch_size,
        train_set=train_set,
        valid_set=valid_set,
    )
    data.load()
    _check_model_fits(module, cfg, int(data.train_set[0][0].shape[1]))
    has_valid = data.valid_set is not None and cfg.valid_batches != 0

    start = int(read_training_checkpoint(Path(resume_from))["iteration"]) if resume_from else 0
    if start >= cfg.iterations:
        raise ConfigError(
            f"{resume_from} is at iteration {start}: raise --iterations above it to train more"
        )
    steps = _steps_per_iteration(module)
    bar = ProgressBar(cfg.iterations, enabled=cfg.progress)
    recorder = RunRecorder(directory, bar, start)
    stops = StopSignals()
    checkpoints = RunCheckpoints(
        directory, _plain(_resolved_config(cfg, module)), recorder, has_valid, stops
    )
    trainer_args = dict(
        accelerator=cfg.accelerator,
        devices=cfg.devices,
        num_nodes=cfg.num_nodes,
        strategy=cfg.strategy,
        precision=cfg.precision,
        max_steps=cfg.iterations * steps,
        max_epochs=-1,
        val_check_interval=cfg.print_freq if has_valid else None,
        check_val_every_n_epoch=None,
        limit_val_batches=None if has_valid else 0,
        num_sanity_val_steps=0,
        enable_progress_bar=False,
        enable_model_summary=False,
        enable_checkpointing=False,  # RunCheckpoints writes every checkpoint
        use_distributed_sampler=False,
        log_every_n_steps=max(1, min(cfg.log_every, cfg.print_freq, cfg.iterations)),
        logger=_logger(directory),
        callbacks=[bar, recorder, *(callbacks or []), checkpoints],
        plugins=[AtomicCheckpointIO()],
        default_root_dir=str(directory),
    )
    try:
        trainer = pl.Trainer(**trainer_args)
    except Exception as err:  # Lightning's refusals of accelerator / devices / strategy
        if not _is_hardware_refusal(err):
            raise
        raise ConfigError(
            f"{_hardware_flags(cfg)}: {_first_line(err)}; {available_hardware()}"
        ) from None
    if trainer.is_global_zero:
        directory.mkdir(parents=True, exist_ok=True)
        _write_config(cfg, module, directory)
        if resume_from:
            print(f"resuming from {resume_from} at iteration {start}", flush=True)
    stops.install()  # a signal during the set-up stops the run after its first iteration
    try:
        with warnings.catch_warnings():
            warnings.filterwarnings(
                "ignore", message=".*resuming from a checkpoint that ended before"
            )
            warnings.filterwarnings("ignore", message=".*does not have many workers.*")
            warnings.filterwarnings("ignore", message=".*exists and is not empty.*")
            warnings.filterwarnings("ignore", message=".*sync_dist=True.*")  # reduced by the module
            trainer.fit(module, datamodule=data, ckpt_path=resume_from, weights_only=True)
    except FloatingPointError as err:  # the module's non-finite loss: nothing was written over
        failed = TrainingFailed(f"{err}; {checkpoints.describe_last()}")
        failed.rank = trainer.global_rank
        raise failed from None
    except TrainingStopped as err:
        err.rank = trainer.global_rank  # only rank 0 reports
        requeue = getattr(signal, "SIGUSR1", None)
        if isinstance(err, TrainingInterrupted) and err.signum == requeue and err.rank == 0:
            print(slurm_requeue(), file=sys.stderr, flush=True)
        raise
    except OSError as err:  # another writer into the run's folder (the TensorBoard logger)
        name = os.fsdecode(err.filename) if err.filename else ""
        if not name.startswith(str(directory)):
            raise
        failed = CheckpointWriteError(f"cannot write {name}: {write_failure(err, Path(name))}")
        failed.rank = trainer.global_rank
        raise failed from None
    finally:
        stops.restore()
        shutdown_workers()
    if trainer.is_global_zero:
        files = [
            n
            for n in (MODEL_FILE, CONFIG_FILE, f"{LAST}.ckpt", f"{BEST}.ckpt", "config.yaml")
            if (directory / n).is_file()
        ]
        files += ["metrics.csv"] if (directory / "metrics.csv").is_file() else []
        best = f"best validation mse {recorder.best:.4g}" if recorder.rows else "no validation"
        if checkpoints.stopped_early:
            stop = checkpoints.stopped_early
            print(
                f"stopped early at iteration {stop['stopped_at_iteration']}: no better validation "
                f"MSE in {stop['patience']} validations; the result is {BEST}.ckpt (iteration "
                f"{stop['best_iteration']}, early_stop.json)",
                flush=True,
            )
        print(
            f"trained {module.iteration} iterations; {best}; files in {directory} "
            f"({', '.join(files)})",
            flush=True,
        )
    return TrainResult(directory, module, trainer)


def slurm_requeue() -> str:
    """``scontrol requeue`` this SLURM job (an array task: ``JOBID_TASKID``); a line saying so."""
    import subprocess

    array = os.environ.get("SLURM_ARRAY_JOB_ID")
    job = (
        f"{array}_{os.environ.get('SLURM_ARRAY_TASK_ID')}" if array else os.environ["SLURM_JOB_ID"]
    )
    try:
        done = subprocess.run(["scontrol", "requeue", job], capture_output=True, text=True)
    except OSError as err:
        return f"cannot requeue SLURM job {job}: scontrol: {err.strerror}"
    if done.returncode != 0:
        return f"cannot requeue SLURM job {job}: {_first_line(Exception(done.stderr))}"
    return f"requeued SLURM job {job}: it reruns the same command (with --resume it continues)"


def _hardware_flags(cfg: TrainConfig) -> str:
    return f"--accelerator {cfg.accelerator} --devices {cfg.devices} --strategy {cfg.strategy}"


def _first_line(err: BaseException) -> str:
    text = str(err).strip()
    return text.splitlines()[0] if text else type(err).__name__


def _is_hardware_refusal(err: BaseException) -> bool:
    from lightning.fabric.utilities.exceptions import MisconfigurationException

    return isinstance(err, (MisconfigurationException, ValueError, RuntimeError, ImportError))


def available_hardware() -> str:
    """What this machine offers, in the flags' terms (for one-line refusals)."""
    parts = [f"cpu ({os.cpu_count() or 1} cores: --accelerator cpu --devices N runs N processes)"]
    if torch.cuda.is_available():
        n = torch.cuda.device_count()
        parts.append(f"{n} CUDA GPU(s): {torch.cuda.get_device_name(0)} (--accelerator gpu)")
    else:
        parts.append("no CUDA GPU")
    if getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available():
        parts.append("Apple MPS (--accelerator mps --devices 1)")
    return "this machine has " + ", ".join(parts)


def _check_hardware(cfg: TrainConfig) -> None:
    """ValueError (one line) for an accelerator or device count this machine cannot serve."""
    accelerator = str(cfg.accelerator).lower()
    if accelerator in ("gpu", "cuda"):
        count = torch.cuda.device_count() if torch.cuda.is_available() else 0
    elif accelerator == "mps":
        mps = getattr(torch.backends, "mps", None)
        count = 1 if mps is not None and mps.is_available() else 0
    else:
        return  # cpu (any number of processes), auto (Lightning picks), tpu...: Lightning checks
    if count == 0:
        raise ConfigError(f"--accelerator {cfg.accelerator}: not available; {available_hardware()}")
    wanted = cfg.devices
    if isinstance(wanted, int) and wanted > count:
        raise ConfigError(
            f"--devices {wanted} with --accelerator {cfg.accelerator}: only {count} here; "
            f"{available_hardware()}"
        )
