"""The Lightning module that trains any registered predictor.

Two procedures, chosen by the model:

* **SwinLSTM / ConvLSTM** (no memory): the SwinLSTM paper's loss, MSE over every frame the model
  outputs (``T_in - 1 + out_len`` frames: each output predicts the next frame of the clip), one
  optimiser step per iteration (Lightning's automatic optimisation).
* **Memory models** (``memory_size > 0``): LMC-Memory's memory alignment. Each iteration takes two
  optimiser steps (manual optimisation): phase 1 reads the memory from the long clip (memory slots
  trained), phase 2 from the short clip only (slots frozen by the model), each on L1 + L2 loss.
  For the first ``iterations_warmup`` iterations only the first 10 frames are predicted, and the
  long clip is the first ``short_len + 10`` frames, as the authors' ``train.py``.

``iteration`` counts completed iterations (not optimiser steps): it is saved as a top-level integer
in every checkpoint, and the data module starts its order there when a run is resumed.
Validation predicts ``out_len`` frames from the inputs (phase 2) and sums per-sample, per-frame
metrics in a :class:`swinlstm.metrics.accumulate.MetricAccumulator` (the ``protocol`` decides
whether predictions are clipped to [0, 1] first: the default protocol computes MSE / MAE on the
raw predictions and clips only for SSIM / PSNR); the sums are reduced over processes, so the
logged ``val/<metric>`` are means over the whole validation set.
"""

from __future__ import annotations

import math
from typing import Any

import lightning.pytorch as pl
import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from swinlstm.engine.rules import (
    alignment_clips,
    check_zero_grad,
    loss_targets,
    memory_alignment_step,
    memory_slots,
    teacher_prob,
    warmup_out_len,
)
from swinlstm.errors import ConfigError
from swinlstm.helpers import mix_seed
from swinlstm.metrics.accumulate import MetricAccumulator
from swinlstm.metrics.core import DEFAULT_METRICS
from swinlstm.models import build_model
from swinlstm.models.sampling import scheduled_sampling_forward


def is_memory_model(model: nn.Module) -> bool:
    """True when ``model`` has an LMC memory (``memory_size > 0``): two-phase training."""
    return bool(memory_slots(model))


def mse_loss(output: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """The SwinLSTM paper's loss: mean squared error over every output frame."""
    return F.mse_loss(output, target)


class WarmupCosine:
    """lr factor: linear from 0 over ``warmup`` iterations, then cosine from 1 to ``floor``."""

    def __init__(self, total: int, warmup: int = 0, floor: float = 0.0) -> None:
        self.total, self.warmup, self.floor = total, warmup, floor

    def __call__(self, it: int) -> float:
        if it < self.warmup:
            return (it + 1) / self.warmup
        progress = min(1.0, (it - self.warmup) / max(1, self.total - self.warmup))
        return self.floor + (1 - self.floor) * 0.5 * (1 + math.cos(math.pi * progress))


class PredictionModule(pl.LightningModule):
    """Trains ``build_model(model_name, **model_config)``; all hyper-parameters are plain types.

    Args:
        model_name, model_config: what ``build_model`` takes (saved in ``hyper_parameters``, which
            ``swinlstm.engine.checkpoint.load_model`` reads).
        short_len, out_len: input and predicted frames.
        lr: Adam learning rate; ``weight_decay``: Adam's L2 penalty.
        iterations: training iterations (the schedule's length).
        iterations_warmup: LMC-Memory warm-up iterations (memory models only).
        schedule: ``none``, ``cosine`` (linear warm-up over ``schedule_warmup`` iterations, then
            cosine to ``min_lr``) or ``onecycle`` (``OneCycleLR`` peaking at ``lr``).
        grad_clip: max gradient norm (0: no clipping).
        scheduled_sampling: feed true frames instead of the model's own during the forecast with
            a probability decaying linearly by ``sampling_changing_rate`` per iteration, 0 from
            ``sampling_stop_iter`` (PredRNN / OpenSTL's schedule for ConvLSTM).
        valid_metrics: metric names for ``swinlstm.metrics.compute``; ``mse`` is always added
            (the best checkpoint is the one of lowest ``val/mse``).
        protocol: metric protocol for ``swinlstm.metrics.compute``.
        skip_warmup: fine-tuning from trained weights (the authors skip warm-up then).
        alignment_zero_grad: memory models: ``zeros`` (gradients zero-filled between the two
            steps, PyTorch 1.6's ``zero_grad``, with which the published LMC-Memory networks were
            trained: Adam's momentum still moves the frozen slots) or ``none`` (PyTorch >= 2's).
        seed: seeds the long-clip windows drawn here (when the data gives none).
        data: what the run trains on (``swinlstm.engine.train.data_record``: dataset, frame
            size, lengths, data options), recorded in the checkpoint for ``test`` and resuming.
    """

    def __init__(
        self,
        model_name: str,
        model_config: dict[str, Any],
        short_len: int = 10,
        out_len: int = 10,
        lr: float = 1e-4,
        weight_decay: float = 0.0,
        iterations: int = 1000,
        iterations_warmup: int = 0,
        schedule: str = "none",
        schedule_warmup: int = 0,
        min_lr: float = 1e-6,
        grad_clip: float = 0.0,
        scheduled_sampling: bool = False,
        sampling_stop_iter: int = 50000,
        sampling_changing_rate: float = 2e-5,
        valid_metrics: tuple[str, ...] | list[str] = DEFAULT_METRICS,
        protocol: str = "default",
        skip_warmup: bool = False,
        seed: int = 1234,
        alignment_zero_grad: str = "zeros",
        data: dict[str, Any] | None = None,
    ) -> None:
        super().__init__()
        check_zero_grad(alignment_zero_grad)
        if schedule not in ("none", "cosine", "onecycle"):
            raise ConfigError(f"--schedule must be none, cosine or onecycle, got {schedule!r}")
        if schedule == "cosine" and not 0 < min_lr <= lr:
            raise ConfigError(f"--min_lr must be in (0, --lr={lr}], got {min_lr}")
        self.save_hyperparameters()
        # val/mse picks the best checkpoint: computed whatever valid_metrics name
        self.valid_metrics = tuple(dict.fromkeys(["mse", *valid_metrics]))
        self.model = build_model(model_name, **model_config)
        self.memory = is_memory_model(self.model)
        self.automatic_optimization = not self.memory
        self.iteration = 0
        self._reset_train_loss()
        self._valid: MetricAccumulator | None = None  # made at the first validation (LPIPS)

    # ----- optimisation ---------------------------------------------------------------------
    def configure_optimizers(self) -> Any:
        hp = self.hparams
        opt = torch.optim.Adam(self.model.parameters(), lr=hp.lr, weight_decay=hp.weight_decay)
        total = max(1, int(hp.iterations))
        if hp.schedule == "cosine":
            sched = torch.optim.lr_scheduler.LambdaLR(
                opt, WarmupCosine(total, hp.schedule_warmup, hp.min_lr / hp.lr)
            )
        elif hp.schedule == "onecycle":
            sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=hp.lr, total_steps=total + 1)
        else:
            return opt
        return {"optimizer": opt, "lr_scheduler": {"scheduler": sched, "interval": "step"}}

    def configure_gradient_clipping(
        self, optimizer, gradient_clip_val=None, gradient_clip_algorithm=None
    ) -> None:
        if self.hparams.grad_clip > 0:
            self.clip_gradients(optimizer, self.hparams.grad_clip, "norm")

    # ----- training ---------------------------------------------------------------------------
    def _split(self, batch) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor | None]:
        if len(batch) == 3:
            return batch[0], batch[1], batch[2]
        return batch[0], batch[1], None

    def training_step(self, batch, batch_idx: int) -> torch.Tensor | None:
        inputs, targets, long = self._split(batch)
        if self.memory:
            loss = self._memory_step(inputs, targets, long)
        else:
            output = self._forward_train(inputs, targets)
            loss = mse_loss(output, loss_targets(self.model, inputs, targets))
        bad = (~torch.isfinite(loss.detach())).float()
        if self._reduce_sum(bad.reshape(1)).item() > 0:  # every rank stops at the same step
            raise FloatingPointError(
                f"training loss is {loss.item()} at iteration {self.iteration + 1}: lower --lr, "
                "set --grad_clip, or use --precision 32-true"
            )
        self._loss_sum += loss.detach().float()
        self._loss_count += 1
        self.log("loss", loss.detach(), prog_bar=True, on_step=True, on_epoch=False)
        # counted here, not in on_train_batch_end: callbacks' on_train_batch_end run before the
        # module's, and a checkpoint written there must hold the iterations completed
        self.iteration += 1
        return loss if self.automatic_optimization else None

    def _forward_train(self, inputs: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        hp = self.hparams
        if not hp.scheduled_sampling:
            return self.model(inputs, targets.shape[1])
        prob = teacher_prob(self.iteration, hp.sampling_stop_iter, hp.sampling_changing_rate)
        g = torch.Generator().manual_seed(mix_seed(hp.seed, self.iteration))
        return scheduled_sampling_forward(
            self.model, inputs, targets.shape[1], targets, prob, generator=g
        )

    def _memory_step(
        self, inputs: torch.Tensor, targets: torch.Tensor, long: torch.Tensor | None
    ) -> torch.Tensor:
        """Phase 1 (long clip, memory trained) then phase 2 (short clip only): two steps."""
        hp = self.hparams
        warmup = 0 if hp.skip_warmup else hp.iterations_warmup
        out_len = warmup_out_len(self.iteration, warmup, targets.shape[1])
        if self.iteration < warmup or long is None:
            # warm-up: the clip's first short_len + 10 frames, whatever long clip the data
            # gives (the authors' train.py); no long clip from the data: a window drawn from a
            # generator seeded by the iteration (reproducible on resume)
            clip = torch.cat([inputs, targets], dim=1)
            rng = np.random.default_rng(mix_seed(hp.seed, self.iteration))
            long = alignment_clips(
                clip,
                self.iteration,
                inputs.shape[1],
                clip.shape[1],
                targets.shape[1],
                warmup=warmup,
                rng=rng,
            ).long
        targets = loss_targets(self.model, inputs, targets[:, :out_len])
        opt = self.optimizers()

        def backward(loss: torch.Tensor) -> None:
            self.manual_backward(loss)
            if hp.grad_clip > 0:
                self.clip_gradients(opt, hp.grad_clip, "norm")

        losses = memory_alignment_step(
            self.model,
            opt,
            inputs,
            targets,
            long,
            out_len,
            backward=backward,
            zero_grad=hp.get("alignment_zero_grad", "zeros"),
        )
        sched = self.lr_schedulers()
        if sched is not None:
            sched.step()
        return torch.tensor(losses["loss"], device=inputs.device)

    def _reset_train_loss(self) -> None:
        self._loss_sum = torch.zeros(())
        self._loss_count = 0

    def pop_train_loss(self) -> float:
        """Mean training loss since the last call, averaged over processes (nan if none)."""
        stats = torch.stack(
            [self._loss_sum.detach().float().cpu(), torch.tensor(float(self._loss_count))]
        ).to(self.device)
        stats = self._reduce_sum(stats)
        self._reset_train_loss()
        return float(stats[0] / stats[1]) if stats[1] > 0 else math.nan

    # ----- validation ---------------------------------------------------------------------------
    def _reset_valid(self) -> MetricAccumulator:
        """The validation accumulator, emptied (made on first use: it may load LPIPS once)."""
        if self._valid is None:
            self._valid = MetricAccumulator(self.valid_metrics, protocol=self.hparams.protocol)
        self._valid.reset()
        return self._valid

    def on_validation_epoch_start(self) -> None:
        self._reset_valid()

    def validation_step(self, batch, batch_idx: int) -> None:
        inputs, targets, _ = self._split(batch)
        pred = self.model.predict(inputs, targets.shape[1])  # the protocol clips as its anchor
        acc = self._valid if self._valid is not None else self._reset_valid()
        acc.update(pred.float(), targets.float())

    def _reduce_sum(self, tensor: torch.Tensor) -> torch.Tensor:
        if self.trainer is not None and self.trainer.world_size > 1:
            return self.trainer.strategy.reduce(tensor, reduce_op="sum")
        return tensor

    def on_validation_epoch_end(self) -> None:
        if self.trainer.sanity_checking:
            self._reset_valid()
            return
        acc = self._valid
        self.valid_per_frame: dict[str, torch.Tensor] = {}
        self.valid_count = 0
        if acc is None or not acc.count:
            return
        # sums over processes, so the means are over the whole validation set
        acc.load_state_tensors({k: self._reduce_sum(t) for k, t in acc.state_tensors().items()})
        # metrics the accumulator could not give (LPIPS without weights) are left out
        self.valid_per_frame = {name: v.float() for name, v in acc.compute().items()}
        for name, per_frame in self.valid_per_frame.items():
            self.log(f"val/{name}", float(per_frame.mean()), sync_dist=False)
        self.valid_count = acc.count
        acc.reset()

    # ----- checkpoints ------------------------------------------------------------------------
    def on_save_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        checkpoint["iteration"] = int(self.iteration)
        rng = {"torch": torch.get_rng_state()}
        if torch.cuda.is_available() and torch.cuda.is_initialized():
            rng["cuda"] = torch.cuda.get_rng_state_all()
        checkpoint["rng_state"] = rng

    def on_load_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        self.iteration = int(checkpoint.get("iteration", 0))
        rng = checkpoint.get("rng_state") or {}
        if "torch" in rng:
            torch.set_rng_state(rng["torch"].cpu())
        if "cuda" in rng and torch.cuda.is_available():
            torch.cuda.set_rng_state_all(rng["cuda"])
