"""`python -m src.train resume=<run dir> [more overrides]`: continue a run where it stopped.

The command line becomes the run's own saved overrides (`<run dir>/.hydra/overrides.yaml`) +
`hydra.run.dir=<run dir>` + `ckpt_path=<run dir>/checkpoints/last.ckpt` + the new overrides (which
win), so the resumed run writes into the same directory with the same config. Torch-free: src.train
expands (and checks) `resume=` before anything heavy is imported. What makes the continuation exact
is in src/reliability.py.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import yaml

from src.errors import ConfigError

LAST_CHECKPOINT = Path("checkpoints") / "last.ckpt"


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
