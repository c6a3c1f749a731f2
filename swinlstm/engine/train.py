"""``train(config) -> Path``: one training run on Lightning, used by the CLI and the demo.

What a run writes into ``checkpoint_save_dir``:

* ``last.ckpt`` (every validation, every ``checkpoint_every`` minutes, on SIGINT / SIGTERM and at
  the end) and ``best.ckpt`` (lowest validation MSE): Lightning checkpoints with a top-level
  integer ``iteration``, ``hyper_parameters`` holding ``model_name`` / ``model_config`` as plain
  types and ``train_config`` (the resolved :class:`~swinlstm.engine.config.RunConfig`, nested form);
* ``model.safetensors`` + ``model.json``: the best weights (the last ones if there is no
  validation set), loadable without Lightning or pickle (``swinlstm.engine.checkpoint.load_model``);
* ``config.yaml`` (the resolved configuration, nested form), ``metrics.csv`` (train loss, learning
  rate and validation metrics by iteration) and the ``logger`` records (:mod:`swinlstm.engine.loggers`:
  ``tensorboard/`` when tensorboard is installed, unless ``logger`` names others).

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
from dataclasses import dataclass
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
from swinlstm.engine.compiling import settle_compile
from swinlstm.engine.config import (
    DEFAULT_MODEL,
    RUN_DEFAULTS,
    SETTINGS,
    DataConfig,
    RunConfig,
    model_options_for_data,
    nested_form,
    plain,
)
from swinlstm.engine.datamodule import PredictionDataModule, shutdown_workers
from swinlstm.engine.errors import (
    CheckpointWriteError,
    TrainingFailed,
    TrainingInterrupted,
    TrainingStopped,
)
from swinlstm.engine.loggers import build_loggers, logger_callbacks
from swinlstm.engine.module import PredictionModule
from swinlstm.engine.rules import LONG_LEN
from swinlstm.errors import ConfigError, MissingPathError
from swinlstm.helpers import as_hw
from swinlstm.models.official import authors_config

LAST, BEST = "last", "best"
_MISSING = object()


def data_record(cfg: RunConfig) -> dict[str, Any]:
    """The data a run trains on, as saved beside its weights: ``test`` and ``predict`` and a
    resumed run use it where their flags are silent."""
    record = {k: getattr(cfg.data, k) for k in RECORDED_DATA}
    record["data_options"] = dict(cfg.data.data_options)
    return plain(record)


def resolve_config(config: RunConfig | dict[str, Any]) -> RunConfig:
    """A copy of ``config`` with its None fields filled (see :class:`DataConfig`).

    Resuming a ``.ckpt`` of ours takes the model, its configuration and the data the checkpoint
    records wherever ``config`` is silent; ``data_options`` given are laid over the recorded ones.
    The model is built for the data's frames unless ``model.options`` say otherwise
    (:func:`~swinlstm.engine.config.model_options_for_data`).
    """
    from swinlstm.data import dataset_key, native_frame

    cfg = RunConfig.of(config).copy()
    out = cfg.output
    if out.resume or out.checkpoint_load_file == "auto":  # now the file itself, or none
        source = _load_source(cfg)
        out.checkpoint_load_file, out.resume = (str(source) if source else None), False
    ckpt = _resume_checkpoint(cfg)
    if ckpt is not None:
        hp = ckpt["hyper_parameters"]
        saved = dict(hp.get("data") or {})
        saved.setdefault("short_len", hp.get("short_len"))
        saved.setdefault("out_len", hp.get("out_len"))
        saved.setdefault("img_size", hp["model_config"].get("img_size"))
        saved.setdefault("img_channel", hp["model_config"].get("in_chans"))
        for key, value in saved.items():
            if key in _DATA_FIELDS and key != "data_options" and getattr(cfg.data, key) is None:
                setattr(cfg.data, key, value)
        if cfg.model.name is None:
            cfg.model.name = hp["model_name"]
        if saved.get("dataset") in (None, cfg.data.dataset):
            cfg.data.data_options = {**(saved.get("data_options") or {}), **cfg.data.data_options}
    for key, value in RUN_DEFAULTS.items():
        if getattr(cfg.data, key) is None:
            setattr(cfg.data, key, value)
    cfg.model.name = cfg.model.name or DEFAULT_MODEL
    cfg.data.dataset = dataset_key(cfg.data.dataset)
    if cfg.data.img_size is None or cfg.data.img_channel is None:
        size, channels = native_frame(cfg.data.dataset)
        if cfg.data.img_size is None:
            cfg.data.img_size = list(size) if isinstance(size, tuple) else size
        if cfg.data.img_channel is None:
            cfg.data.img_channel = channels
    cfg.model.options = model_options_for_data(cfg.model.options, cfg.data)
    if ckpt is not None:
        _check_resume_fits(cfg, ckpt["hyper_parameters"], Path(out.checkpoint_load_file))
        cfg.model.options = dict(ckpt["hyper_parameters"]["model_config"])
        _settle_with_run(cfg, ckpt, Path(out.checkpoint_load_file))  # the other settings
    return cfg


_DATA_FIELDS = frozenset(f.name for f in dataclasses.fields(DataConfig))


def _resume_checkpoint(cfg: RunConfig) -> dict | None:
    source = Path(cfg.output.checkpoint_load_file) if cfg.output.checkpoint_load_file else None
    if source is None or not source.is_file() or cfg.output.checkpoint_load is False:
        return None
    return read_training_checkpoint(source)


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
        self.print_freq = int(config["output"]["print_freq"])
        self.total = int(config["optim"]["iterations"])
        self.every = float(config["output"]["checkpoint_every"]) * 60.0
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
        patience = int(self.config["output"]["early_stop"] or 0)
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


def resolved_long_len(cfg: RunConfig, memory: bool) -> int:
    """The long clip's length: 0 without memory; unset, LMC-Memory's ``train.py`` default
    (:data:`~swinlstm.engine.rules.LONG_LEN`, 30) cut to the clip; else the setting (0: the
    whole clip)."""
    if not memory:
        return 0
    if cfg.data.long_len is None:
        return min(LONG_LEN, cfg.data.short_len + cfg.data.out_len)
    return cfg.data.long_len


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


def _module(cfg: RunConfig, name: str, model_config: dict, skip_warmup: bool) -> PredictionModule:
    """The LightningModule of ``cfg``: the network, every optimisation setting, what it trains on."""
    return PredictionModule(
        model_name=name,
        model_config=model_config,
        short_len=cfg.data.short_len,
        out_len=cfg.data.out_len,
        valid_metrics=list(cfg.output.valid_metrics),
        protocol=cfg.output.protocol,
        skip_warmup=skip_warmup,
        seed=cfg.data.seed,
        data=data_record(cfg),
        **dataclasses.asdict(cfg.optim),
    )


def _load_source(cfg: RunConfig) -> Path | None:
    """The file ``checkpoint_load_file`` / ``resume`` point at (None: a new run).

    ``resume`` or ``checkpoint_load_file="auto"``: ``checkpoint_save_dir/last.ckpt`` when it
    exists; otherwise the given ``checkpoint_load_file`` (fine-tune or resume from it), or none.
    """
    given = cfg.output.checkpoint_load_file
    if cfg.output.resume or given == "auto":
        last = Path(cfg.output.checkpoint_save_dir) / f"{LAST}.ckpt"
        if last.is_file():
            return last
        if given in (None, "auto"):
            print(f"no {last} yet: starting a new run", flush=True)
            return None
    return Path(given) if given else None


def _settle_with_run(cfg: RunConfig, ckpt: dict, source: Path) -> None:
    """Resuming: the settings left at their defaults take the checkpoint's run's values; any
    other that differs from them (a setting whose row says ``resume=False``) is a ConfigError
    naming it. The run's record may be nested (this code) or flat (older runs)."""
    saved = ckpt.get("train_config")
    if not isinstance(saved, dict):
        return  # written before train_config was stored: only the model is checked
    recorded = nested_form(saved, str(source))
    differ = []
    for row in SETTINGS:
        if row.resume or row.name not in recorded[row.section]:
            continue
        section = getattr(cfg, row.section)
        now, was = plain(getattr(section, row.name)), plain(recorded[row.section][row.name])
        if now == was:
            continue
        if now == plain(row.default):  # not asked for: the run's own value
            setattr(section, row.name, copy.deepcopy(was))
        else:
            differ.append((row, now, was))
    if differ:
        was = ", ".join(f"{row.dest}={old!r}" for row, _, old in differ)
        given = ", ".join(f"{row.dest}={now!r}" for row, now, _ in differ)
        raise ConfigError(
            f"{source} was trained with {was}; the flags give {given}: leave them out (or give "
            "the same) to resume, or pass another --checkpoint_save_dir to start a new run"
        )


def _prepare_model(cfg: RunConfig) -> tuple[PredictionModule, str | None]:
    """The module to train and the checkpoint to resume from (None: a new run)."""
    source = Path(cfg.output.checkpoint_load_file) if cfg.output.checkpoint_load_file else None
    if cfg.output.checkpoint_load is True and source is None:
        raise ConfigError("--checkpoint_load True needs --checkpoint_load_file FILE")
    if cfg.output.checkpoint_load is False and source is not None:
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
    derived = authors_config(cfg.model.name, cfg.data.dataset)
    config = settle_compile(
        cfg.model.name,
        {**derived, **cfg.model.options},
        iterations=cfg.optim.iterations,
        accelerator=cfg.hardware.accelerator,
        devices=cfg.hardware.devices,
        num_nodes=cfg.hardware.num_nodes,
        precision=cfg.hardware.precision,
    )
    loaded = info = None
    if source is not None:
        loaded, info = load_model(source, name=cfg.model.name, config=config)
        if info["format"] != "official":  # our checkpoint records what was derived
            saved = info.get("config", {})
            config.update(
                {k: saved[k] for k in derived if k not in cfg.model.options and k in saved}
            )
    module = _module(cfg, cfg.model.name, config, skip_warmup=source is not None)
    if loaded is not None:  # fine-tune: weights only
        from swinlstm.models.official import describe_mismatch

        sd = loaded.state_dict()
        problem = describe_mismatch(module.model, sd)
        if problem:
            raise ConfigError(f"{source} ({info['format']}) does not fit the model: {problem}")
        module.model.load_state_dict(sd)
        print(f"fine-tuning from {source} ({info['format']} weights)", flush=True)
    return module, None


def _check_resume_fits(cfg: RunConfig, hp: dict, source: Path) -> None:
    """One line naming what the flags change of the model a resumed checkpoint trains."""
    saved = hp["model_config"]
    clash = [k for k, v in cfg.model.options.items() if saved.get(k, _MISSING) != plain(v)]
    if cfg.model.name != hp["model_name"]:
        clash.insert(0, "model")
    if clash:
        asked = {"model": cfg.model.name, **cfg.model.options}
        was = {"model": hp["model_name"], **saved}
        diffs = ", ".join(f"{k} {asked[k]} (trained: {was.get(k, 'unset')})" for k in clash)
        raise ConfigError(
            f"{source} was trained as {hp['model_name']}, but the flags change {diffs}: leave "
            "the model flags out to resume (the checkpoint records them), or fine-tune from "
            "its model.safetensors"
        )


def _check_model_fits(module: PredictionModule, cfg: RunConfig, channels: int) -> None:
    """A clear error when the model's frame size / channels differ from the data's."""
    size = list(as_hw(cfg.data.img_size, "--img_size"))
    model_size = list(getattr(module.model, "img_size", size))
    if model_size != size or getattr(module.model, "in_chans", channels) != channels:
        raise ConfigError(
            f"the model takes {model_size[0]}x{model_size[1]} frames with "
            f"{getattr(module.model, 'in_chans', '?')} channels but the data gives "
            f"{size[0]}x{size[1]} with {channels}: check --img_size / --img_channel"
        )


def _resolved_config(cfg: RunConfig, module: PredictionModule) -> dict[str, Any]:
    """``cfg`` in the nested form, with the network actually trained (the checkpoint's when resuming)."""
    data = cfg.to_dict()
    data["model"] = {
        "name": module.hparams.model_name,
        "options": plain(module.hparams.model_config),
    }
    return data


def _write_config(cfg: RunConfig, module: PredictionModule, directory: Path) -> None:
    import yaml

    text = yaml.safe_dump(plain(_resolved_config(cfg, module)), sort_keys=False)
    atomic_write(directory / "config.yaml", lambda p: Path(p).write_text(text))


@dataclass
class TrainResult:
    """What :func:`run_training` leaves: the output folder, the trained module, the trainer."""

    directory: Path
    module: PredictionModule
    trainer: pl.Trainer


def train(
    config: RunConfig | dict[str, Any],
    train_set: torch.utils.data.Dataset | None = None,
    valid_set: torch.utils.data.Dataset | None = None,
) -> Path:
    """Train as ``config`` says; returns ``checkpoint_save_dir`` (holding the files listed above).

    ``train_set`` / ``valid_set`` replace ``build_datasets`` (programs with their own data).
    """
    return run_training(config, train_set, valid_set).directory


def run_training(
    config: RunConfig | dict[str, Any],
    train_set: torch.utils.data.Dataset | None = None,
    valid_set: torch.utils.data.Dataset | None = None,
    callbacks: list[Callback] | None = None,
) -> TrainResult:
    """:func:`train`, with extra Lightning ``callbacks`` and the module and trainer returned."""
    cfg = resolve_config(config)
    cfg.validate()
    _check_hardware(cfg)  # before the data is built: a missing GPU is known at once
    directory = Path(cfg.output.checkpoint_save_dir)
    pl.seed_everything(cfg.data.seed, workers=True, verbose=False)
    module, resume_from = _prepare_model(cfg)
    cfg.data.long_len = resolved_long_len(cfg, module.memory)
    if module.hparams.get("data"):  # the record says the long clip the run trains on
        module.hparams.data["long_len"] = cfg.data.long_len
    if cfg.optim.scheduled_sampling and module.memory:
        raise ConfigError(
            "--scheduled_sampling True has no effect on a memory model (memory_size > 0 trains "
            "by LMC-Memory's memory alignment): leave it out, or use --memory_size 0"
        )
    data = PredictionDataModule(
        dataset=cfg.data.dataset,
        data_options={
            "train_dir": cfg.data.train_data_dir,
            "valid_dir": cfg.data.valid_data_dir,
            "short_len": cfg.data.short_len,
            "out_len": cfg.data.out_len,
            "long_len": cfg.data.long_len,
            "img_size": cfg.data.img_size,
            "img_channel": cfg.data.img_channel,
            "seed": cfg.data.seed,
            **cfg.data.data_options,
        },
        batch_size=cfg.data.batch_size,
        iterations=cfg.optim.iterations,
        seed=cfg.data.seed,
        workers=cfg.data.workers,
        valid_batches=cfg.output.valid_batches,
        valid_batch_size=cfg.output.valid_batch_size,
        train_set=train_set,
        valid_set=valid_set,
    )
    data.load()
    _check_model_fits(module, cfg, int(data.train_set[0][0].shape[1]))
    has_valid = data.valid_set is not None and cfg.output.valid_batches != 0

    start = int(read_training_checkpoint(Path(resume_from))["iteration"]) if resume_from else 0
    if start >= cfg.optim.iterations:
        raise ConfigError(
            f"{resume_from} is at iteration {start}: raise --iterations above it to train more"
        )
    steps = _steps_per_iteration(module)
    bar = ProgressBar(cfg.optim.iterations, enabled=cfg.output.progress)
    loggers = build_loggers(cfg.output.logger, directory, plain(_resolved_config(cfg, module)))
    recorder = RunRecorder(directory, bar, start)
    stops = StopSignals()
    checkpoints = RunCheckpoints(
        directory, plain(_resolved_config(cfg, module)), recorder, has_valid, stops
    )
    trainer_args = dict(
        accelerator=cfg.hardware.accelerator,
        devices=cfg.hardware.devices,
        num_nodes=cfg.hardware.num_nodes,
        strategy=cfg.hardware.strategy,
        precision=cfg.hardware.precision,
        max_steps=cfg.optim.iterations * steps,
        max_epochs=-1,
        val_check_interval=cfg.output.print_freq if has_valid else None,
        check_val_every_n_epoch=None,
        limit_val_batches=None if has_valid else 0,
        num_sanity_val_steps=0,
        enable_progress_bar=False,
        enable_model_summary=False,
        enable_checkpointing=False,  # RunCheckpoints writes every checkpoint
        use_distributed_sampler=False,
        log_every_n_steps=max(
            1, min(cfg.output.log_every, cfg.output.print_freq, cfg.optim.iterations)
        ),
        logger=loggers or False,
        callbacks=[bar, recorder, *logger_callbacks(loggers), *(callbacks or []), checkpoints],
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


def _hardware_flags(cfg: RunConfig) -> str:
    return f"--accelerator {cfg.hardware.accelerator} --devices {cfg.hardware.devices} --strategy {cfg.hardware.strategy}"


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


def _check_hardware(cfg: RunConfig) -> None:
    """ValueError (one line) for an accelerator or device count this machine cannot serve."""
    accelerator = str(cfg.hardware.accelerator).lower()
    if accelerator in ("gpu", "cuda"):
        count = torch.cuda.device_count() if torch.cuda.is_available() else 0
    elif accelerator == "mps":
        mps = getattr(torch.backends, "mps", None)
        count = 1 if mps is not None and mps.is_available() else 0
    else:
        return  # cpu (any number of processes), auto (Lightning picks), tpu...: Lightning checks
    if count == 0:
        raise ConfigError(
            f"--accelerator {cfg.hardware.accelerator}: not available; {available_hardware()}"
        )
    wanted = cfg.hardware.devices
    if isinstance(wanted, int) and wanted > count:
        raise ConfigError(
            f"--devices {wanted} with --accelerator {cfg.hardware.accelerator}: only {count} here; "
            f"{available_hardware()}"
        )
