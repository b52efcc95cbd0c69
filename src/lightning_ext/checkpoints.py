"""Checkpoints that are never half-written, and where the best and the last one are.

AtomicCheckpointIO serialises into a temporary file in the same directory, flushes it to disk, then
renames it over the old file in one step (os.replace is atomic on POSIX), so a run killed at any moment
leaves either the previous checkpoint or the new one (conf/trainer/default.yaml: `plugins`).

Which checkpoints are kept is Lightning's public ModelCheckpoint, twice (conf/callbacks/default.yaml): the
best epoch on val/acc, and `last.ckpt`, monitoring nothing, so rewritten after every epoch. Why not
Lightning's own TorchCheckpointIO and `save_last=True`: docs/development.md.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import lightning as L
from lightning.fabric.plugins import TorchCheckpointIO
from lightning.pytorch.callbacks import ModelCheckpoint
from typing_extensions import override

from src.utils.files import atomic_save


class AtomicCheckpointIO(TorchCheckpointIO):
    """TorchCheckpointIO whose local saves are atomic (remote fsspec URLs keep Lightning's path)."""

    @override
    def save_checkpoint(
        self, checkpoint: dict[str, Any], path: str | Path, storage_options: Any | None = None
    ) -> None:
        if storage_options is not None or ("://" in str(path) and not str(path).startswith("file://")):
            super().save_checkpoint(checkpoint, path, storage_options)
            return
        atomic_save(checkpoint, str(path).removeprefix("file://"))


def checkpoint_paths(trainer: L.Trainer) -> tuple[str, str]:
    """(best, last): the best checkpoint on the monitored metric, and the newest one (conf/callbacks/
    default.yaml: `model_checkpoint` keeps the best, `last_checkpoint`, monitoring nothing, last.ckpt);
    "" for one that no callback wrote."""
    best = last = ""
    for callback in trainer.checkpoint_callbacks:
        if not isinstance(callback, ModelCheckpoint):
            continue
        if callback.monitor is None:  # keeps its newest save_top_k checkpoints: the newest is the last
            last = last or callback.best_model_path
        else:
            best = best or callback.best_model_path
        last = callback.last_model_path or last  # save_last=True, if a config asks for it
    return best, last
