"""Checkpoints that are never half-written: serialised into a temporary file in the same directory,
flushed to disk, then renamed over the old file in one step (os.replace is atomic on POSIX).

Lightning's own TorchCheckpointIO serialises into memory first but then writes straight into the
target, so a run killed during that write leaves a truncated `last.ckpt` that a resume cannot read.
With this plugin (conf/trainer/default.yaml: `plugins`) a kill at any moment leaves either the previous
checkpoint or the new one, and at worst a stray `.<name>.*.tmp` that the next save does not mind.
"""

from __future__ import annotations

from typing import Any

from lightning.fabric.plugins import TorchCheckpointIO
from lightning.fabric.utilities.types import _PATH
from typing_extensions import override

from src.data.files import atomic_save


class AtomicCheckpointIO(TorchCheckpointIO):
    """TorchCheckpointIO whose local saves are atomic (remote fsspec URLs keep Lightning's path)."""

    @override
    def save_checkpoint(
        self, checkpoint: dict[str, Any], path: _PATH, storage_options: Any | None = None
    ) -> None:
        if storage_options is not None or ("://" in str(path) and not str(path).startswith("file://")):
            super().save_checkpoint(checkpoint, path, storage_options)
            return
        atomic_save(checkpoint, str(path).removeprefix("file://"))
