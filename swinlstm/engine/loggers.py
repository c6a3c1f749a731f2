"""``--logger csv tensorboard wandb mlflow``: where a training run's records go, besides its files.

Every logger is Lightning's own (``lightning.pytorch.loggers``) and records the same things: the
resolved configuration (hyperparameters), the train loss (``loss``, every ``log_every``
iterations), the learning rate (``lr-Adam``, Lightning's ``LearningRateMonitor``) and the
validation metrics (``val/mse``, ``val/ssim`` ...).

* ``csv``: the run's ``metrics.csv`` (train loss, learning rate and validation metrics by
  validation) and ``config.yaml``, which every run writes whatever ``--logger`` says: the plots,
  ``swinlstm compare`` and resuming read them. No Lightning logger is added for it (a second CSV
  would say the same thing twice).
* ``tensorboard``: ``TensorBoardLogger`` into ``DIR/tensorboard/``.
* ``wandb``: ``WandbLogger`` (project ``swinlstm``, run name = the folder's name, files under
  ``DIR``; ``WANDB_MODE=offline`` keeps it on disk, ``WANDB_DIR`` moves it); needs
  ``pip install 'swinlstm[wandb]'``.
* ``mlflow``: ``MLFlowLogger`` (experiment ``swinlstm``, run name = the folder's name) to
  ``MLFLOW_TRACKING_URI``, else a local file store ``DIR/mlruns``; needs
  ``pip install 'swinlstm[mlflow]'``.

Not given (``None``): what a run always did, ``metrics.csv`` plus ``tensorboard/`` when the
tensorboard package is installed (silently none when it is not). A logger named explicitly whose
package is missing is one :class:`~swinlstm.errors.ConfigError` line saying what to install.
"""

from __future__ import annotations

import importlib.util
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from lightning.pytorch.callbacks import Callback, LearningRateMonitor
from lightning.pytorch.loggers import Logger

from swinlstm.errors import ConfigError

LOGGERS = ("csv", "tensorboard", "wandb", "mlflow")
DEFAULT_LOGGERS = ("csv", "tensorboard")  # tensorboard only where it is installed
PROJECT = "swinlstm"  # the W&B project and the MLflow experiment
# the package each logger imports, and the pip extra that installs it
_PACKAGES = {
    "tensorboard": ("tensorboard", "tensorboard"),
    "wandb": ("wandb", "wandb"),
    "mlflow": ("mlflow", "mlflow"),  # the mlflow-skinny distribution
}


def check_logger_names(names: Sequence[str] | str | None) -> tuple[str, ...]:
    """``names`` as a tuple of known logger names (``None``: :data:`DEFAULT_LOGGERS`).

    Raises :class:`ConfigError` (one line naming ``--logger``) for an unknown name, an empty
    list, or a chosen logger whose package is not installed.
    """
    if names is None:
        return DEFAULT_LOGGERS
    names = [names] if isinstance(names, str) else list(names)
    unknown = [n for n in names if n not in LOGGERS]
    if unknown or not names:
        raise ConfigError(
            f"--logger takes one or several of {' '.join(LOGGERS)}, got {' '.join(names) or '[]'}"
        )
    for name in names:
        if name in _PACKAGES and not _installed(name):
            package, extra = _PACKAGES[name]
            raise ConfigError(
                f"--logger {name} needs the {package} package: pip install 'swinlstm[{extra}]'"
            )
    return tuple(dict.fromkeys(names))


def _installed(name: str) -> bool:
    return importlib.util.find_spec(_PACKAGES[name][0]) is not None


def build_loggers(
    names: Sequence[str] | str | None, directory: Path | str, hparams: dict[str, Any]
) -> list[Logger]:
    """Lightning loggers for ``names`` (see the module docstring) writing for the run's folder
    ``directory``, each holding the run's resolved configuration ``hparams`` at once.

    Raises :class:`ConfigError` as :func:`check_logger_names` does.
    """
    directory = Path(directory)
    loggers = [
        _LOGGER_MAKERS[name](directory)
        for name in check_logger_names(names)
        if name != "csv" and _installed(name)  # csv: metrics.csv, which the run writes itself
    ]
    for logger in loggers:
        logger.log_hyperparams(hparams)
    return loggers


def _tensorboard(directory: Path) -> Logger:
    from lightning.pytorch.loggers import TensorBoardLogger

    return TensorBoardLogger(save_dir=str(directory), name="tensorboard", version="")


def _wandb(directory: Path) -> Logger:
    from lightning.pytorch.loggers import WandbLogger

    save_dir = os.environ.get("WANDB_DIR") or str(directory)
    Path(save_dir).mkdir(parents=True, exist_ok=True)
    return WandbLogger(project=PROJECT, name=directory.resolve().name, save_dir=save_dir)


def _mlflow(directory: Path) -> Logger:
    from lightning.pytorch.loggers import MLFlowLogger

    uri = os.environ.get("MLFLOW_TRACKING_URI")
    if not uri:  # the run's own file store (mlflow-skinny has no SQL backend)
        uri = (directory.resolve() / "mlruns").as_uri()
        os.environ.setdefault("MLFLOW_ALLOW_FILE_STORE", "true")  # MLflow 3 asks for the opt-in
    return MLFlowLogger(
        experiment_name=PROJECT, run_name=directory.resolve().name, tracking_uri=uri
    )


_LOGGER_MAKERS = {"tensorboard": _tensorboard, "wandb": _wandb, "mlflow": _mlflow}


class _OneConfigRecord(Callback):
    """Keeps the resolved configuration the loggers' one record of hyperparameters (Lightning
    would log the module's own ``hparams`` beside it, and MLflow refuses a parameter logged twice
    with two values), and ends a W&B run when training ends so its files are complete."""

    def setup(self, trainer, pl_module, stage: str) -> None:
        pl_module._log_hyperparams = False  # what save_hyperparameters(logger=False) sets

    def teardown(self, trainer, pl_module, stage: str) -> None:
        for logger in trainer.loggers:
            if type(logger).__name__ == "WandbLogger" and logger._experiment is not None:
                logger.experiment.finish()


def logger_callbacks(loggers: Sequence[Logger]) -> list[Callback]:
    """The callbacks the ``loggers`` need: the learning rate every step, one configuration
    record. None without loggers (``metrics.csv`` has its own learning rate column)."""
    if not loggers:
        return []
    return [LearningRateMonitor(logging_interval="step"), _OneConfigRecord()]


__all__ = [
    "DEFAULT_LOGGERS",
    "LOGGERS",
    "build_loggers",
    "check_logger_names",
    "logger_callbacks",
]
