"""Train a model: `python -m src.train model=lenet5 data=mnist pooling=min padding=same`.

The command line is checked first (src/config/check.py), before torch and Lightning are imported, so a
mistake is answered at once; Hydra then composes conf/train.yaml with its groups and makes the run
directory, and src/training/fit.py trains, tests and writes metrics.json there.

`main` returns the metric named by `optimized_metric`, so Hydra sweepers (Optuna) can optimise it.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence
from pathlib import Path

import hydra
from omegaconf import DictConfig

from src.config.check import validate_command_line
from src.config.compose import CONFIG_DIR
from src.runs.resume import expand_resume, log_resume_warnings
from src.runs.rundir import RunDir
from src.training import fit
from src.training.distributed import isolated_job, rank_overrides
from src.utils.errors import user_errors

COMMAND = "cnn-train"  # the installed command (pyproject.toml [project.scripts]): shell completion names it


def train(cfg: DictConfig) -> dict:
    """Train and test a composed config in its run directory (`paths.output_dir`); the metrics written."""
    return fit.train(cfg, RunDir(Path(cfg.paths.output_dir)))


# config_path absolute: for the installed command (src.train imported, not run as __main__) Hydra would
# look for a package `conf` instead of the folder beside src/.
@hydra.main(version_base="1.3", config_path=str(CONFIG_DIR), config_name="train")
def main(cfg: DictConfig) -> float | None:
    with user_errors(), isolated_job():  # isolated_job: a fresh DDP process group for each job of a multirun
        log_resume_warnings()  # into train.log, which Hydra has opened by now
        result = train(cfg)
    return fit.objective(result, cfg.get("optimized_metric"))


def hydra_overrides(argv: Sequence[str]) -> list[str]:
    """The command line Hydra is to run for `argv`: `resume=<run dir>` expanded into that run's overrides
    and last checkpoint (src/runs/resume.py), and, in a DDP rank other than global rank 0, Hydra's
    output sent to a scratch directory (src/training/distributed.py)."""
    return rank_overrides(expand_resume(argv))


def cli() -> None:
    with user_errors():
        overrides = hydra_overrides(sys.argv[1:])
        # composes once itself: src/config/check.py says why
        validate_command_line(overrides, program=sys.argv[0], command=COMMAND)
    # Why sys.argv is rewritten: @hydra.main takes its overrides from sys.argv and has no parameter for them,
    # and Hydra's compose API makes no run directory, no multirun and no sweeper. So the expanded command
    # line goes there, once; the run's .hydra/overrides.yaml records it (what a later resume= reads back).
    sys.argv[1:] = overrides
    main()


if __name__ == "__main__":
    cli()
