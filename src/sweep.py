"""Rebuild a multirun's summary: `python -m src.sweep outputs/train/multiruns/<time>`.

Writes `<sweep dir>/summary.json` and `summary.csv` (src/runs/sweep.py, which a multirun runs by itself
when it ends) and prints the best run: on the sweep's own `optimized_metric`, in its sweeper's direction
(both read from the `multirun.yaml` Hydra saved in the sweep directory), else on val/acc_best. A multirun
whose job failed ends before it writes its summary; this writes it, the failed job included. A job whose
files are damaged gets one line and status "damaged" in the summary.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import cast

from omegaconf import DictConfig, OmegaConf

from src.runs.sweep import sweep_settings, write_summary
from src.utils.cli import ArgumentParser
from src.utils.errors import UserError, user_errors

DEFAULT_METRIC = "val/acc_best"  # conf/train.yaml's optimized_metric


def saved_settings(sweep_dir: Path) -> tuple[str | None, str | None]:
    """The metric and direction the sweep optimised, as its multirun.yaml records them."""
    saved = sweep_dir / "multirun.yaml"
    if not saved.is_file():
        return DEFAULT_METRIC, None
    return sweep_settings(cast(DictConfig, OmegaConf.load(saved)))  # a mapping, as Hydra writes it


def main(argv: Sequence[str] | None = None) -> None:
    parser = ArgumentParser("src.sweep", description=__doc__.splitlines()[0])
    parser.add_argument("sweep_dir", type=Path, help="a multirun directory (outputs/train/multiruns/<time>)")
    sweep_dir = parser.parse_args(argv).sweep_dir
    with user_errors():
        if not sweep_dir.is_dir():
            raise UserError(
                f"{sweep_dir} is not a directory; give a multirun's (outputs/train/multiruns/<time>)"
            )
        summary = write_summary(sweep_dir, *saved_settings(sweep_dir))
    for run in summary["runs"]:
        if run["status"] == "damaged":
            print(f"warning: job {run['job']} left out: {run['problem']}", file=sys.stderr)
    print(json.dumps(summary["best"], indent=2))


if __name__ == "__main__":
    main(sys.argv[1:])
