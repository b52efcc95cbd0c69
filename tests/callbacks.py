"""Callbacks that only tests use, named by `_target_` on a test's command line."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

from lightning.pytorch.callbacks import Callback


class LearningRates(Callback):
    """Records the learning rate the optimizer has as each training step starts, and writes
    {global step: lr} as JSON into `path` when the fit ends: what a schedule really did, step by step.
    Enable with `+callbacks.lr_probe._target_=tests.callbacks.LearningRates`
    `+callbacks.lr_probe.path=<file>`."""

    def __init__(self, path: str) -> None:
        self.path, self.rates = Path(path), {}

    def on_train_batch_start(self, trainer: Any, pl_module: Any, batch: Any, batch_idx: int) -> None:
        self.rates[trainer.global_step] = trainer.optimizers[0].param_groups[0]["lr"]

    def on_fit_end(self, trainer: Any, pl_module: Any) -> None:
        self.path.write_text(json.dumps(self.rates))


class EpochPause(Callback):
    """Sleeps `seconds` between two epochs, after the checkpoint of the one that ended: gives a test
    the time to kill a run between two checkpoints. Enable with
    `+callbacks.pause._target_=tests.callbacks.EpochPause +callbacks.pause.seconds=2`. With `marker`
    (`+callbacks.pause.marker=<file>`), global rank 0 writes the number of epochs done into that file
    as its pause starts, so a test can wait for the file instead of guessing a time.

    The pause is at the start of every epoch but the first: Lightning runs ModelCheckpoint's
    `on_train_epoch_end` (where it saves) after every other callback's, so a pause there would come
    before the epoch's checkpoint."""

    def __init__(self, seconds: float = 1.0, marker: str | None = None) -> None:
        self.seconds, self.marker = seconds, marker

    def on_train_epoch_start(self, trainer: Any, pl_module: Any) -> None:
        if trainer.current_epoch == 0:
            return
        if self.marker and trainer.is_global_zero:
            scratch = Path(f"{self.marker}.tmp")
            scratch.write_text(f"{trainer.current_epoch}\n")
            scratch.replace(self.marker)  # whole or absent, never half-written
        time.sleep(self.seconds)


class DamageBestCheckpoint(Callback):
    """Cuts the best checkpoint in half once fit has ended, before the test loads it: what a disk error
    between the two would leave. Enable with
    `+callbacks.damage._target_=tests.callbacks.DamageBestCheckpoint`."""

    def on_fit_end(self, trainer: Any, pl_module: Any) -> None:
        best = Path(trainer.checkpoint_callback.best_model_path)
        best.write_bytes(best.read_bytes()[: best.stat().st_size // 2])
