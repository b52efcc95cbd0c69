"""Exact resume and clean failure: the pieces src.train and the LightningModule share.

- `expand_resume` (src/resume.py, torch-free): `python -m src.train resume=<run dir> [more overrides]`
  becomes the run's own saved overrides + `hydra.run.dir=<run dir>` + `ckpt_path=<run dir>/checkpoints/
  last.ckpt` + the new overrides (which win), so the resumed run writes into the same directory.
- `rng_state` / `set_rng_state`: the global random generators (torch, CUDA, numpy, Python) as plain
  tensors and lists, so checkpoints stay loadable with `torch.load(..., weights_only=True)`.
  Lightning restores weights, optimizer, scheduler, epoch and step; data order is a pure function of
  (seed, epoch) (src/data/base.py); these states make augmentation and dropout continue the same way.
- `TrainingDiverged`: a non-finite loss, reported in one line with the step.
"""

from __future__ import annotations

import random
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch
from lightning.pytorch.callbacks import Callback

from src.errors import UserError
from src.resume import LAST_CHECKPOINT, expand_resume  # noqa: F401  (torch-free: src.train uses it first)


class TrainingDiverged(UserError):
    """The training loss became NaN or infinite."""


# -------------------------------------------------------------------------------- RNG state
def rng_state() -> dict[str, Any]:
    """The global random generators' states, as tensors and plain Python values."""
    version, python_state, gauss = random.getstate()
    name, keys, pos, has_gauss, cached = np.random.get_state()
    states: dict[str, Any] = {
        "torch": torch.get_rng_state(),
        "python": [version, list(python_state), gauss],
        "numpy": [name, torch.from_numpy(keys.astype(np.int64)), int(pos), int(has_gauss), float(cached)],
    }
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        states["cuda"] = torch.cuda.get_rng_state_all()
    return states


def set_rng_state(states: dict[str, Any]) -> None:
    """Restore what `rng_state` returned (the CUDA part only where there are as many GPUs)."""
    torch.set_rng_state(states["torch"].cpu())
    version, python_state, gauss = states["python"]
    random.setstate((version, tuple(python_state), gauss))
    name, keys, pos, has_gauss, cached = states["numpy"]
    np.random.set_state((name, keys.numpy().astype(np.uint32), pos, has_gauss, cached))
    cuda = states.get("cuda")
    if cuda and torch.cuda.is_available() and len(cuda) == torch.cuda.device_count():
        torch.cuda.set_rng_state_all([state.cpu() for state in cuda])


class EpochPause(Callback):
    """Sleeps `seconds` between two epochs, after the checkpoint of the one that ended: gives a test
    the time to kill a run between two checkpoints. Enable with
    `+callbacks.pause._target_=src.reliability.EpochPause +callbacks.pause.seconds=2`. With `marker`
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
