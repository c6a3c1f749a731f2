"""Data for training: ``build_datasets`` behind a Lightning data module with a resumable order.

The training order is one deterministic stream of indices: the concatenation of a fresh
permutation of the training set per pass, each drawn from ``seed + pass``. Iteration ``i`` takes
the ``i``-th global batch of that stream (``batch_size x world_size`` indices; rank ``r`` takes its
``r``-th slice). A run resumed at iteration ``i`` therefore sees exactly the batches the
uninterrupted run would have seen, on any number of processes, with no sampler state to save:
the iteration number is the state.

Validation shards the validation set over the ranks (rank ``r`` takes items ``r, r + W, ...``);
the module reduces the sums across ranks, so every item is counted once.
"""

from __future__ import annotations

import functools
import os
import signal
import weakref
from collections.abc import Iterator
from typing import Any

import lightning.pytorch as pl
import torch
from torch.utils.data import DataLoader, Dataset, Sampler
from torch.utils.data.dataloader import _MultiProcessingDataLoaderIter

from swinlstm.errors import ConfigError


class IterationSampler(Sampler[int]):
    """Indices of global batches ``start_batch .. total_batches - 1`` of the seeded stream.

    ``len()`` is ``total_batches * batch_size`` whatever ``start_batch`` is, so a loader built at
    iteration ``i`` still reports the whole run's length (progress counters stay consistent).
    """

    def __init__(
        self,
        num_items: int,
        batch_size: int,
        total_batches: int,
        seed: int = 1234,
        start_batch: int = 0,
        rank: int = 0,
        world_size: int = 1,
        shuffle: bool = True,
    ) -> None:
        if num_items < 1:
            raise ConfigError("the training set is empty")
        if not 0 <= rank < world_size:
            raise ConfigError(f"rank {rank} outside world size {world_size}")
        self.num_items = num_items
        self.batch_size = batch_size
        self.total_batches = total_batches
        self.seed = seed
        self.start_batch = start_batch
        self.rank = rank
        self.world_size = world_size
        self.shuffle = shuffle

    def _order(self, epoch: int) -> torch.Tensor:
        if not self.shuffle:
            return torch.arange(self.num_items)
        g = torch.Generator().manual_seed(self.seed + epoch)
        return torch.randperm(self.num_items, generator=g)

    def __iter__(self) -> Iterator[int]:
        global_batch = self.batch_size * self.world_size
        epoch, order = -1, None
        for b in range(self.start_batch, self.total_batches):
            first = b * global_batch + self.rank * self.batch_size
            for pos in range(first, first + self.batch_size):
                e, i = divmod(pos, self.num_items)
                if e != epoch:
                    epoch, order = e, self._order(e)
                yield int(order[i])

    def __len__(self) -> int:
        return self.total_batches * self.batch_size


class ShardSampler(Sampler[int]):
    """Items ``rank, rank + W, ...`` of the first ``limit`` items (all when ``limit`` is None)."""

    def __init__(
        self, num_items: int, rank: int = 0, world_size: int = 1, limit: int | None = None
    ) -> None:
        self.indices = list(range(min(num_items, limit) if limit else num_items))[rank::world_size]

    def __iter__(self) -> Iterator[int]:
        return iter(self.indices)

    def __len__(self) -> int:
        return len(self.indices)


class _Loader(DataLoader):
    """A DataLoader that remembers its worker iterators, so :func:`shutdown_workers` can end
    them: workers ignore SIGTERM (see ``_worker_init``), so Python's exit, which ends leftover
    workers with SIGTERM and then waits for them, would wait forever for one still running."""

    live: weakref.WeakSet = weakref.WeakSet()

    def _get_iterator(self):
        iterator = super()._get_iterator()
        if isinstance(iterator, _MultiProcessingDataLoaderIter):
            _Loader.live.add(iterator)
        return iterator


def shutdown_workers() -> None:
    """End the loader workers still running (after a run, whichever way it ended)."""
    for iterator in list(_Loader.live):
        iterator._shutdown_workers()
    _Loader.live = weakref.WeakSet()


def _worker_init(worker_id: int, rank: int = 0) -> None:
    """Loader workers ignore SIGINT / SIGTERM: the main process stops the run (and them) after
    the current iteration; a worker dying first would turn a clean stop into a crash. Then
    Lightning's per-worker seeding, as Lightning adds it when a loader has no ``worker_init_fn``.
    """
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    if int(os.environ.get("PL_SEED_WORKERS", 0)):
        from lightning.fabric.utilities.seed import pl_worker_init_function

        pl_worker_init_function(worker_id, rank=rank)


class PredictionDataModule(pl.LightningDataModule):
    """Training / validation loaders over ``swinlstm.data.build_datasets`` (or given datasets).

    Args:
        dataset: dataset name for ``build_datasets`` (ignored when ``train_set`` is given).
        data_options: keyword arguments of ``build_datasets`` (dirs, lengths, size, channels, seed).
        batch_size: per-process batch size.
        iterations: training iterations of the whole run (the sampler's length).
        seed: seed of the training order.
        workers: loader processes.
        valid_batches: at most this many validation batches per process (None: the whole set).
        train_set / valid_set: ready datasets (tests, programs with their own data).
    """

    def __init__(
        self,
        dataset: str = "movingmnist",
        data_options: dict[str, Any] | None = None,
        batch_size: int = 16,
        iterations: int = 1000,
        seed: int = 1234,
        workers: int = 0,
        valid_batches: int | None = None,
        valid_batch_size: int | None = None,
        train_set: Dataset | None = None,
        valid_set: Dataset | None = None,
    ) -> None:
        super().__init__()
        self.dataset = dataset
        self.data_options = dict(data_options or {})
        self.batch_size = batch_size
        self.valid_batch_size = valid_batch_size or batch_size
        self.iterations = iterations
        self.seed = seed
        self.workers = workers
        self.valid_batches = valid_batches
        self.train_set = train_set
        self.valid_set = valid_set
        self.info: dict[str, Any] = {}

    def load(self) -> None:
        """Build the datasets now (errors in paths or sizes surface before training starts)."""
        if self.train_set is not None:
            return
        from swinlstm.data import build_datasets

        splits = build_datasets(self.dataset, **self.data_options)
        if splits.train is None:
            raise ConfigError(
                f"dataset {self.dataset!r} gave no training set: pass --train_data_dir"
            )
        self.train_set, self.valid_set = splits.train, splits.valid
        self.info = dict(getattr(splits, "info", {}) or {})

    def setup(self, stage: str | None = None) -> None:
        self.load()

    def _rank_world(self) -> tuple[int, int]:
        trainer = self.trainer
        if trainer is None:
            return 0, 1
        return trainer.global_rank, trainer.world_size

    def _start_iteration(self) -> int:
        module = self.trainer.lightning_module if self.trainer is not None else None
        return int(getattr(module, "iteration", 0))

    def train_dataloader(self) -> DataLoader:
        rank, world = self._rank_world()
        start = self._start_iteration()
        sampler = IterationSampler(
            len(self.train_set),
            self.batch_size,
            self.iterations,
            seed=self.seed,
            start_batch=start,
            rank=rank,
            world_size=world,
        )
        # Workers' random streams (datasets drawing random clips) depend on seed, rank and the
        # iteration the loader starts at: reproducible for a given run and resume point.
        generator = torch.Generator().manual_seed(self.seed * 1000003 + start * 97 + rank)
        return _Loader(
            self.train_set,
            batch_size=self.batch_size,
            sampler=sampler,
            num_workers=self.workers,
            generator=generator,
            worker_init_fn=functools.partial(_worker_init, rank=rank),
            persistent_workers=self.workers > 0,
            drop_last=True,
        )

    def val_dataloader(self) -> DataLoader | list:
        if self.valid_set is None:
            return []
        rank, world = self._rank_world()
        limit = (
            self.valid_batches * self.valid_batch_size * world
            if self.valid_batches is not None
            else None
        )
        sampler = ShardSampler(len(self.valid_set), rank, world, limit)
        return _Loader(
            self.valid_set,
            batch_size=self.valid_batch_size,
            sampler=sampler,
            num_workers=self.workers,
            worker_init_fn=functools.partial(_worker_init, rank=rank),
            shuffle=False,
        )
