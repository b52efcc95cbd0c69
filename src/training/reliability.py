"""Exact resume and clean failure: what the LightningModule (src/training/module.py) keeps in its
checkpoints and raises. (`resume=<run dir>` itself, the command line it becomes: src/runs/resume.py.)

- `rng_state` / `set_rng_state`: the global random generators (torch, CUDA, numpy, Python) as plain
  tensors and lists, so checkpoints stay loadable with `torch.load(..., weights_only=True)`.
  Lightning restores weights, optimizer, scheduler, epoch and step; data order is a pure function of
  (seed, epoch) (src/data/base.py); these states make augmentation and dropout continue the same way.
- `TrainingDiverged`: a non-finite loss, reported in one line with the step.
"""

from __future__ import annotations

import random
from typing import Any, cast

import numpy as np
import torch

from src.utils.errors import UserError


class TrainingDiverged(UserError):
    """The training loss became NaN or infinite."""


# -------------------------------------------------------------------------------- RNG state
def rng_state() -> dict[str, Any]:
    """The global random generators' states, as tensors and plain Python values."""
    version, python_state, gauss = random.getstate()
    legacy = cast(tuple[str, np.ndarray, int, int, float], np.random.get_state())  # legacy=True: a tuple
    name, keys, pos, has_gauss, cached = legacy
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
