"""Would Lightning's manual optimization bring a LightningModule to the bare loop's speed? The plain
LightningModule of `bench steps` (bench/steps.py, PlainClassifier) trained three ways,
interleaved, each step followed by a bare twin step on the same batch (docs/speed.md):

- automatic: Lightning's automatic optimization (the closure, the optimizer and zero-grad hooks);
- manual: `automatic_optimization = False`; `training_step` zeroes the gradients, calls
  `self.manual_backward(loss)` and the LightningOptimizer's `step()`, and steps a per-step schedule;
- raw: manual optimization with the torch optimizer and `loss.backward()` themselves, past Lightning's
  optimizer wrapper and precision plugin. A measurement only: Lightning then counts no optimizer steps
  (`trainer.global_step` stays 0, so step-based logging, checkpoints and max_steps would break) and
  half precision would lose its gradient scaler.

Whatever still separates `raw` from the bare loop is Lightning's loop between steps (the batch
fetcher, the transfer hooks, `on_train_batch_start`/`_end`, the logger connector, the validation
check), which no LightningModule can leave out.

    DATA_DIR=../shared/data uv run python scripts/manual_optimization_ab.py [--batch-sizes 64 128 256]
        [--repeats 3]
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run as a script: the project's src/
from bench import steps  # noqa: E402
from bench.common import bench_config, machine, machine_line, prepare  # noqa: E402


class ManualClassifier(steps.PlainClassifier):
    """PlainClassifier under manual optimization, through Lightning's optimizer wrapper."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.automatic_optimization = False

    def _backward_and_step(self, loss: torch.Tensor) -> None:
        optimizer = self.optimizers()
        optimizer.zero_grad(set_to_none=True)
        self.manual_backward(loss)
        optimizer.step()
        if (scheduler := self.lr_schedulers()) is not None:
            scheduler.step()

    def training_step(self, batch: tuple[torch.Tensor, torch.Tensor], batch_idx: int) -> torch.Tensor:
        loss = super().training_step(batch, batch_idx)
        self._backward_and_step(loss)
        return loss.detach()


class RawClassifier(ManualClassifier):
    """ManualClassifier with the torch optimizer, schedule and backward themselves."""

    def on_train_start(self) -> None:
        configs = self.trainer.lr_scheduler_configs
        self.raw = self.trainer.optimizers[0], configs[0].scheduler if configs else None

    def _backward_and_step(self, loss: torch.Tensor) -> None:
        optimizer, scheduler = self.raw
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        if scheduler is not None:
            scheduler.step()


class WholeSteps(steps.StepParts):
    """StepParts for modules whose step ends inside `training_step` (no `on_after_backward` for the raw
    one): only the whole step is compared, so the missing marks are set at the step's end."""

    def on_train_batch_end(self, trainer, module, outputs, batch, batch_idx: int) -> None:
        for part in steps.PARTS[2:]:
            self._marks.setdefault(part, self._marks["before"])
        super().on_train_batch_end(trainer, module, outputs, batch, batch_idx)


VARIANTS = {"automatic": steps.PlainClassifier, "manual": ManualClassifier, "raw": RawClassifier}


def fit(cfg: Any, datamodule: Any, module_class: type[steps.PlainClassifier]) -> float:
    """One fit of `bench steps`' plain LightningModule as `module_class`: bare ÷ Lightning."""
    parts = steps.plain_fit(cfg, datamodule, module_class, WholeSteps(cfg))
    return steps.step_medians(parts)["step_ratio"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch-sizes", type=int, nargs="+", default=[64, 128, 256])
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    print("| batch | " + " | ".join(f"{name}: bare ÷ Lightning, pair by pair" for name in VARIANTS) + " |")
    print("|---|" + "---|" * len(VARIANTS))
    for batch_size in args.batch_sizes:
        cfg = bench_config("lenet5_mnist", [f"data.batch_size={batch_size}"], f"manual_ab_{batch_size}")
        datamodule = prepare(cfg)[0]
        ratios: dict[str, list[float]] = {name: [] for name in VARIANTS}
        for _ in range(args.repeats):
            for name, module_class in VARIANTS.items():
                ratios[name].append(fit(cfg, datamodule, module_class))
        cells = (", ".join(f"{ratio:.3f}" for ratio in values) for values in ratios.values())
        print(f"| {batch_size} | " + " | ".join(cells) + " |", flush=True)
    print("\n" + machine_line(machine(), "python scripts/manual_optimization_ab.py"))


if __name__ == "__main__":
    main()
