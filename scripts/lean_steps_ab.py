"""What src/lightning_ext/lean_steps.py saves a training step: `src.bench steps`' measurement of
lenet5_mnist at batch 64, with its two changes on and off in turn, interleaved (docs/speed.md).

    DATA_DIR=../shared/data uv run python scripts/lean_steps_ab.py [--pairs 3]
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import torch
from lightning.pytorch.profilers import PassThroughProfiler

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run as a script: the project's src/
from src.benchmark import steps  # noqa: E402
from src.lightning_ext import lean_steps  # noqa: E402


def switch(on: bool, lean: tuple) -> None:
    """lean_steps' two changes on (as shipped) or off (Lightning's own behaviour)."""
    hook_name_setattr, quiet_profile = lean
    lean_steps.CheapHookName.__setattr__ = (
        hook_name_setattr if on else lambda self, name, value: torch.nn.Module.__setattr__(self, name, value)
    )
    lean_steps.QuietProfiler.profile = quiet_profile if on else PassThroughProfiler.profile


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pairs", type=int, default=3)
    args = parser.parse_args()
    lean = (lean_steps.CheapHookName.__setattr__, lean_steps.QuietProfiler.profile)
    for pair in range(args.pairs):
        for on in (True, False):
            switch(on, lean)
            row = steps.steps_row("lenet5_mnist", 64, [])
            total, state = row["median_step_ms"], "on " if on else "off"
            print(
                f"pair {pair + 1}, lean_steps {state}: src.train {total['lightning']:.3f} ms, "
                f"bare {total['bare']:.3f} ms, bare / src.train {row['step_ratio']:.3f}",
                flush=True,
            )
    switch(True, lean)


if __name__ == "__main__":
    main()
