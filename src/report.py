"""Compare finished runs: tables and plots for a sweep (or a single run), with mean ± std over seeds.

    python -m src.report outputs/train/multiruns/2026-11-25_17-17-52
    python -m src.report outputs/train/runs/2026-11-25_17-00-44
    python -m src.report <sweep dir> --pair pooling=min,max --pair padding=same,valid --by model.activation_fn

Writes report.md, report.png (and, for runs over several seeds, report_groups.png) into the given
directory and prints the tables; what it reads and computes: src/runs/report.py.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence
from pathlib import Path

from src.runs.report import report
from src.utils.cli import ArgumentParser
from src.utils.errors import user_errors


def main(argv: Sequence[str] | None = None) -> None:
    parser = ArgumentParser("src.report", description=__doc__.splitlines()[0])
    parser.add_argument("run_dir", type=Path, help="a run directory or a multirun (sweep) directory")
    parser.add_argument("--pair", action="append", metavar="KEY=A,B", help="paired difference A - B")
    parser.add_argument("--by", metavar="KEY", help="paired differences per value of this override")
    args = parser.parse_args(argv)
    with user_errors():
        print(report(args.run_dir, args.pair, args.by))
        print(f"\nwrote {args.run_dir / 'report.md'} and its figures")


if __name__ == "__main__":
    main(sys.argv[1:])
