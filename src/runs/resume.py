"""`python -m src.train resume=<run dir> [more overrides]`: continue a run where it stopped.

The command line becomes the run's own saved overrides (`<run dir>/.hydra/overrides.yaml`) +
`hydra.run.dir=<run dir>` + `ckpt_path=<run dir>/checkpoints/last.ckpt` + the new overrides (which
win), so the resumed run writes into the same directory with the same config. Torch-free: src.train
expands (and checks) `resume=` before anything heavy is imported. What makes the continuation exact
is in src/training/reliability.py.

`last.ckpt` is checked before it is used (src/utils/checkpoints.py: whole, every byte matching its
CRC-32, no global that `torch.load(weights_only=True)` refuses, a Lightning checkpoint with optimizer
state). A damaged one, or one that would run code when loaded, is passed over for the newest whole
checkpoint of the run (the best-so-far `epoch_NNN.ckpt`), in one line on stderr, which
`log_resume_warnings` also writes into the run's train.log once Hydra has opened it; when none is
whole, one line says so and nothing starts.
"""

from __future__ import annotations

import logging
import sys
from collections.abc import Sequence
from pathlib import Path

from src.runs.rundir import RunDir, override_key
from src.utils.checkpoints import CheckpointError, read_checkpoint
from src.utils.errors import ConfigError

log = logging.getLogger(__name__)
# The warnings `resume_checkpoint` printed: src.train expands resume= before Hydra sets up logging (and
# before Hydra knows the run directory), so they wait here for `log_resume_warnings`.
_UNLOGGED: list[str] = []


def expand_resume(argv: Sequence[str]) -> list[str]:
    """The command line with `resume=<run dir>` replaced by what continuing that run takes."""
    resumes = [arg for arg in argv if arg.startswith("resume=")]
    if not resumes:
        return list(argv)
    if len(resumes) > 1:
        raise ConfigError("resume= is given more than once; name one run directory")
    run = RunDir(Path(resumes[0].split("=", 1)[1]).expanduser().resolve())
    rest = [arg for arg in argv if not arg.startswith("resume=")]
    if any(arg in ("-m", "--multirun") for arg in rest):
        raise ConfigError("resume= continues one run; it cannot be combined with -m/--multirun")
    if not run.overrides_file.is_file():
        raise ConfigError(
            f"resume={run.path} is not a run directory: {run.overrides_file} is missing; "
            "pass the directory a run printed (outputs/train/runs/<time>)"
        )
    forced = [f"hydra.run.dir={run.path}", f"ckpt_path={resume_checkpoint(run)}"]
    new_keys = {override_key(arg) for arg in [*rest, *forced] if "=" in arg}
    kept = [arg for arg in run.read_overrides() if override_key(arg) not in new_keys]
    return [*kept, *forced, *rest]


def resume_checkpoint(run: RunDir) -> Path:
    """`last.ckpt` when it is whole; else the newest whole checkpoint of the run, said on stderr."""
    others = sorted(path for path in run.checkpoints.glob("*.ckpt") if path != run.last_checkpoint)
    if not run.last_checkpoint.is_file() and not others:
        raise ConfigError(
            f"resume={run.path} has no checkpoint to continue from: {run.last_checkpoint} is missing "
            "(the run stopped before its first epoch ended, or ran with callbacks=none); start it again"
        )
    try:
        return read_checkpoint(run.last_checkpoint, resume=True).path
    except CheckpointError as error:
        damaged = error
    whole, problems = [], [str(damaged)]
    for path in others:
        try:
            whole.append(read_checkpoint(path, resume=True))
        except CheckpointError as error:
            problems.append(str(error))
    if not whole:
        raise ConfigError(
            f"resume={run.path} has no whole checkpoint to continue from: {'; '.join(problems)}; "
            "start the run again without resume="
        )
    newest = max(whole, key=lambda checkpoint: (checkpoint.global_step, checkpoint.epoch))
    message = f"{damaged}; resume continues from {newest.describe()}"
    print(f"warning: {message}", file=sys.stderr)
    _UNLOGGED.append(message)
    return newest.path


def log_resume_warnings() -> None:
    """Write the warnings that expanding `resume=` printed into the log files Hydra opened for the run
    (its train.log, a WARNING of this module's logger): they belong to the run that resumes. Call it once
    Hydra has set up logging (in the task function). Only the files: the console had them on stderr."""
    files = [handler for handler in logging.getLogger().handlers if isinstance(handler, logging.FileHandler)]
    while _UNLOGGED:
        record = log.makeRecord(log.name, logging.WARNING, __file__, 0, _UNLOGGED.pop(0), (), None)
        for handler in files:
            handler.handle(record)
