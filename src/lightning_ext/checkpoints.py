"""Checkpoints that are never half-written, and a `last.ckpt` that is always the latest epoch.

AtomicCheckpointIO serialises into a temporary file in the same directory, flushes it to disk, then
renames it over the old file in one step (os.replace is atomic on POSIX).

Lightning's own TorchCheckpointIO serialises into memory first but then writes straight into the
target, so a run killed during that write leaves a truncated `last.ckpt` that a resume cannot read.
With this plugin (conf/trainer/default.yaml: `plugins`) a kill at any moment leaves either the previous
checkpoint or the new one, and at worst a stray `.<name>.*.tmp` that the next save does not mind.
ModelCheckpoint below (conf/callbacks/default.yaml) keeps `last.ckpt` current for `resume=<run dir>`.
"""

from __future__ import annotations

import os
from typing import Any

import lightning as L
from lightning.fabric.plugins import TorchCheckpointIO
from lightning.pytorch.callbacks import ModelCheckpoint as LightningModelCheckpoint
from typing_extensions import override

from src.utils.files import atomic_save


class AtomicCheckpointIO(TorchCheckpointIO):
    """TorchCheckpointIO whose local saves are atomic (remote fsspec URLs keep Lightning's path)."""

    @override
    def save_checkpoint(
        self, checkpoint: dict[str, Any], path: str | os.PathLike, storage_options: Any | None = None
    ) -> None:
        if storage_options is not None or ("://" in str(path) and not str(path).startswith("file://")):
            super().save_checkpoint(checkpoint, path, storage_options)
            return
        atomic_save(checkpoint, str(path).removeprefix("file://"))


class ModelCheckpoint(LightningModelCheckpoint):
    """Lightning's ModelCheckpoint, but `last.ckpt` is rewritten after every epoch.

    Since Lightning 2.5 `save_last=True` rewrites `last.ckpt` only when a top-k checkpoint is saved in
    the same step, so once the monitored metric stops improving `last.ckpt` falls behind, and
    `resume=<run dir>` would silently go back to the best epoch and train those epochs again. The fix
    calls four private methods of Lightning's ModelCheckpoint (PRIVATE_NAMES in __init__.py).
    """

    @property
    @override
    def state_key(self) -> str:
        # Lightning builds this key (the repr of five settings) for every hook it calls on the callback,
        # six times a training step; the settings do not change after __init__, so it is built once.
        key = self.__dict__.get("_state_key")
        if key is None:
            key = self.__dict__["_state_key"] = super().state_key
        return key

    @override
    def on_validation_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        super().on_validation_end(trainer, pl_module)
        if not self._should_save_on_train_epoch_end(trainer):
            self._save_last_if_behind(trainer)

    @override
    def on_train_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        super().on_train_epoch_end(trainer, pl_module)
        if self._should_save_on_train_epoch_end(trainer):
            self._save_last_if_behind(trainer)

    @override
    def on_train_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        # Lightning 2.6 writes last.ckpt here when none was written yet, fast_dev_run or not; every other
        # save of the callback skips fast_dev_run ("nothing saved": conf/trainer/default.yaml).
        if not trainer.fast_dev_run:
            super().on_train_end(trainer, pl_module)

    def _save_last_if_behind(self, trainer: L.Trainer) -> None:
        # _should_skip_saving_checkpoint is also true when this step's checkpoint is already written
        if self.save_last and not self._should_skip_saving_checkpoint(trainer):
            self._save_last_checkpoint(trainer, self._monitor_candidates(trainer))
