"""`python -m src.train resume=<run dir> [more overrides]`: continue a run where it stopped.

The command line becomes the run's own saved overrides (`<run dir>/.hydra/overrides.yaml`) +
`hydra.run.dir=<run dir>` + `ckpt_path=<run dir>/checkpoints/last.ckpt` + the new overrides (which
win), so the resumed run writes into the same directory with the same config. Torch-free: src.train
expands (and checks) `resume=` before anything heavy is imported. What makes the continuation exact
is in src/training/reliability.py.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from src.runs.rundir import RunDir, override_key
from src.utils.errors import ConfigError


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
    if not run.last_checkpoint.is_file():
        raise ConfigError(
            f"resume={run.path} has no checkpoint to continue from: {run.last_checkpoint} is missing "
            "(the run stopped before its first epoch ended, or ran with callbacks=none); start it again"
        )
    forced = [f"hydra.run.dir={run.path}", f"ckpt_path={run.last_checkpoint}"]
    new_keys = {override_key(arg) for arg in [*rest, *forced] if "=" in arg}
    kept = [arg for arg in run.read_overrides() if override_key(arg) not in new_keys]
    return [*kept, *forced, *rest]
