"""Rebuild a multirun's summary: `python -m src.sweep outputs/train/multiruns/<time>`.

Writes `<sweep dir>/summary.json` and `summary.csv` (src/runs/sweep.py, which a multirun runs by itself
when it ends) and prints the best run on val/acc_best.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

from src.runs.sweep import write_summary


def main(argv: list[str]) -> None:
    if len(argv) != 1:
        raise SystemExit("usage: python -m src.sweep <sweep dir>")
    print(json.dumps(write_summary(Path(argv[0]), "val/acc_best")["best"], indent=2))


if __name__ == "__main__":
    main(sys.argv[1:])
