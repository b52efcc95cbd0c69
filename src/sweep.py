"""Rebuild a multirun's summary: `python -m src.sweep outputs/train/multiruns/<time>`.

Writes `<sweep dir>/summary.json` and `summary.csv` (src/runs/sweep.py, which a multirun runs by itself
when it ends) and prints the best run on val/acc_best, after one line for each job whose files are
damaged (listed in the summary with status "damaged").
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

from src.runs.sweep import write_summary


def main(argv: list[str]) -> None:
    if len(argv) != 1:
        raise SystemExit("usage: python -m src.sweep <sweep dir>")
    summary = write_summary(Path(argv[0]), "val/acc_best")
    for run in summary["runs"]:
        if run["status"] == "damaged":
            print(f"warning: job {run['job']} left out: {run['problem']}", file=sys.stderr)
    print(json.dumps(summary["best"], indent=2))


if __name__ == "__main__":
    main(sys.argv[1:])
