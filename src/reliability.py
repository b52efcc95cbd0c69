"""Exact resume and clean failure: the pieces src.train and the LightningModule share.

- `expand_resume`: `python -m src.train resume=<run dir> [more overrides]` becomes the run's own saved
  overrides (`<run dir>/.hydra/overrides.yaml`) + `hydra.run.dir=<run dir>` +
  `ckpt_path=<run dir>/checkpoints/last.ckpt` + the new overrides (which win), so the resumed run
  writes into the same directory with the same config.
- `rng_state` / `set_rng_state`: the global random generators (torch, CUDA, numpy, Python) as plain
  tensors and lists, so checkpoints stay loadable with `torch.load(..., weights_only=True)`.
  Lightning restores weights, optimizer, scheduler, epoch and step; data order is a pure function of
  (seed, epoch) (src/data/base.py); these states make augmentation and dropout continue the same way.
- `TrainingDiverged`: a non-finite loss, reported in one line with the step.
"""

from __future__ import annotations

import random
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
import yaml
from lightning.pytorch.callbacks import Callback

from src.errors import ConfigError, UserError

LAST_CHECKPOINT = Path("checkpoints") / "last.ckpt"


class TrainingDiverged(UserError):
    """The training loss became NaN or infinite."""


# ----------------------------------------------------------------------------------- resume
def _key(override: str) -> str:
    return override.split("=", 1)[0].lstrip("+~")


def expand_resume(argv: Sequence[str]) -> list[str]:
    """The command line with `resume=<run dir>` replaced by what continuing that run takes."""
    resumes = [arg for arg in argv if arg.startswith("resume=")]
    if not resumes:
        return list(argv)
    if len(resumes) > 1:
        raise ConfigError("resume= is given more than once; name one run directory")
    run_dir = Path(resumes[0].split("=", 1)[1]).expanduser().resolve()
    rest = [arg for arg in argv if not arg.startswith("resume=")]
    if any(arg in ("-m", "--multirun") for arg in rest):
        raise ConfigError("resume= continues one run; it cannot be combined with -m/--multirun")
    saved_file, checkpoint = run_dir / ".hydra" / "overrides.yaml", run_dir / LAST_CHECKPOINT
    if not saved_file.is_file():
        raise ConfigError(
            f"resume={run_dir} is not a run directory: {saved_file} is missing; "
            "pass the directory a run printed (outputs/train/runs/<time>)"
        )
    if not checkpoint.is_file():
        raise ConfigError(
            f"resume={run_dir} has no checkpoint to continue from: {checkpoint} is missing "
            "(the run stopped before its first epoch ended, or ran with callbacks=none); start it again"
        )
    try:
        saved = yaml.safe_load(saved_file.read_text()) or []
    except (OSError, yaml.YAMLError) as error:
        raise ConfigError(f"cannot read {saved_file}: {error}") from None
    if not isinstance(saved, list) or not all(isinstance(item, str) for item in saved):
        raise ConfigError(f"{saved_file} is not a list of overrides; it was not written by Hydra")
    forced = [f"hydra.run.dir={run_dir}", f"ckpt_path={checkpoint}"]
    new_keys = {_key(arg) for arg in [*rest, *forced] if "=" in arg}
    kept = [arg for arg in saved if _key(arg) not in new_keys]
    return [*kept, *forced, *rest]


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
