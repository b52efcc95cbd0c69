"""`python -m src.bench steps`: where the time of one training step goes, src.train against a bare step.

`src.bench speed` compares whole epochs, which this 2-core virtual machine's noise moves by ±20 %. Here
both sides share every moment instead: during a src.train fit, after each of Lightning's training steps
a callback runs one bare step (a twin of the network and optimizer, the same batch) and times its
parts, and each of Lightning's steps is cut at its hooks into the same parts. The medians over a warm
epoch say which part of the step Lightning makes slower and by how much:

- data: fetching the next batch (Lightning: from the end of one step to the start of the next, which
  also holds its per-step bookkeeping: the learning-rate schedule, logging, the validation check);
- before: `on_train_batch_start` to the module's `training_step` (moving the batch, hooks);
- forward: the `training_step` (the network, the loss, and what the module keeps per step);
- backward: to `on_after_backward` (zeroing the gradients, the backward pass, the hooks around it);
- optimizer: to the end of `on_train_batch_end` (the optimizer's step, gradient clipping, the hooks
  of every callback after the step); the bare step also steps a per-step schedule here.
"""

from __future__ import annotations

import copy
import statistics
import time
from collections.abc import Iterator, Sequence
from typing import Any

import lightning as L
import torch
from hydra.utils import instantiate
from omegaconf import DictConfig, open_dict
from torch import nn

from src.benchmark.common import bench_config, device_of, prepare
from src.benchmark.speed import bare_schedule, bare_step

PARTS = ("data", "before", "forward", "backward", "optimizer")


def durations(parts: Sequence[str], marks: Sequence[float]) -> dict[str, float]:
    """Each part's seconds: from its mark to the next (one mark more than parts)."""
    return {part: end - start for part, start, end in zip(parts, marks, marks[1:], strict=False)}


class StepParts(L.Callback):
    """Times the parts of Lightning's training steps in epoch `epoch`, and after each one a twin bare
    step on the same batch. Append it last: its `on_train_batch_end` then ends the optimizer part after
    every other callback's."""

    def __init__(self, cfg: DictConfig, epoch: int = 1) -> None:
        self.cfg, self.epoch = cfg, epoch
        self.lightning: list[dict[str, float]] = []
        self.bare: list[dict[str, float]] = []
        self._marks: dict[str, float] = {}
        self._step_end: float | None = None

    def on_train_start(self, trainer: L.Trainer, module: L.LightningModule) -> None:
        self.model = copy.deepcopy(module.model)
        self.optimizer = instantiate(self.cfg.optimizer)(params=self.model.parameters())
        self.scheduler = bare_schedule(self.cfg, self.optimizer, trainer.estimated_stepping_batches)
        self.criterion = nn.CrossEntropyLoss(label_smoothing=self.cfg.module.get("label_smoothing", 0.0))
        self.device, self.precision = device_of(self.cfg), self.cfg.trainer.get("precision", "32-true")
        self.batches = self._endless(trainer.datamodule)
        training_step = module.training_step

        def timed_training_step(*args: Any, **kwargs: Any) -> Any:
            self._marks["forward"] = time.perf_counter()
            loss = training_step(*args, **kwargs)
            self._marks["backward"] = time.perf_counter()
            return loss

        module.training_step = timed_training_step  # an instance attribute: this module only

    @staticmethod
    def _endless(datamodule: L.LightningDataModule) -> Iterator[Any]:
        while True:
            yield from datamodule.train_dataloader()

    def _measuring(self, trainer: L.Trainer) -> bool:
        return trainer.current_epoch == self.epoch

    def on_train_batch_start(self, trainer, module, batch, batch_idx: int) -> None:
        now = time.perf_counter()
        if self._measuring(trainer) and self._step_end is not None and batch_idx > 0:
            self.lightning[-1]["data"] = now - self._step_end
        self._marks = {"before": now}

    def on_after_backward(self, trainer: L.Trainer, module: L.LightningModule) -> None:
        self._marks["optimizer"] = time.perf_counter()

    def on_train_batch_end(self, trainer, module, outputs, batch, batch_idx: int) -> None:
        if self._measuring(trainer):
            marks = [*(self._marks[part] for part in PARTS[1:]), time.perf_counter()]
            self.lightning.append(
                {part: b - a for part, a, b in zip(PARTS[1:], marks, marks[1:], strict=False)}
            )
            self.bare.append(self._bare_step(batch))
        self._step_end = time.perf_counter()

    def _bare_step(self, batch: tuple[torch.Tensor, torch.Tensor]) -> dict[str, float]:
        """One step of the bare loop (src.benchmark.speed.bare_training_epoch) on `batch`, in parts."""
        start = time.perf_counter()
        next(self.batches)
        marks = [start, time.perf_counter()]
        images, labels = batch
        if self.cfg.module.channels_last:
            images = images.contiguous(memory_format=torch.channels_last)
        marks.append(time.perf_counter())  # "before": the memory format only

        def mark() -> None:
            marks.append(time.perf_counter())

        bare_step(self.model, images, labels, self.criterion, self.optimizer, self.scheduler,
                  self.device, self.precision, mark)  # fmt: skip
        marks.append(time.perf_counter())
        return durations(PARTS, marks)


def median_ms(steps: Sequence[dict[str, float]], part: str) -> float:
    return 1000 * statistics.median(step[part] for step in steps if part in step)


def steps_row(experiment: str, batch_size: int | None, overrides: list[str]) -> dict[str, Any]:
    """Fit the experiment for 2 epochs with a StepParts over epoch 2; median milliseconds per part."""
    batch = [f"data.batch_size={batch_size}"] if batch_size else []
    cfg = bench_config(experiment, [*batch, *overrides], f"steps_{experiment}_{batch_size}")
    with open_dict(cfg):
        cfg.trainer.max_epochs = cfg.trainer.min_epochs = 2
    datamodule, module, trainer = prepare(cfg)
    parts = StepParts(cfg)
    trainer.callbacks.append(parts)
    trainer.fit(module, datamodule=datamodule)
    complete = [step for step in parts.lightning if "data" in step]
    sides = {"lightning": complete, "bare": parts.bare}
    table = {side: {part: round(median_ms(s, part), 3) for part in PARTS} for side, s in sides.items()}
    totals = {side: round(1000 * statistics.median(sum(s.values()) for s in steps), 3)
              for side, steps in sides.items()}  # fmt: skip
    return {
        "experiment": experiment,
        "batch_size": int(cfg.data.batch_size),
        "steps": len(complete),
        "median_ms": table,
        "median_step_ms": totals,
        "step_ratio": round(totals["bare"] / totals["lightning"], 3),
    }


def run_steps(rows: Sequence[tuple[str, int | None]], overrides: list[str]) -> dict[str, Any]:
    return {"rows": [steps_row(e, b, overrides) for e, b in rows]}


def steps_markdown(result: dict[str, Any]) -> list[str]:
    header = " | ".join(f"{part}: src.train / bare" for part in PARTS)
    lines = [
        "Median milliseconds per part of a training step (a warm epoch; each src.train step followed by "
        "a bare step on the same batch):",
        "",
        f"| recipe | batch | {header} | whole step: src.train / bare | bare ÷ src.train |",
        "|---|---|" + "---|" * len(PARTS) + "---|---|",
    ]
    for r in result["rows"]:
        light, bare = r["median_ms"]["lightning"], r["median_ms"]["bare"]
        cells = " | ".join(f"{light[p]:.3f} / {bare[p]:.3f}" for p in PARTS)
        total = r["median_step_ms"]
        lines.append(
            f"| `{r['experiment']}` | {r['batch_size']} | {cells} | "
            f"{total['lightning']:.3f} / {total['bare']:.3f} | {r['step_ratio']:.3f} |"
        )
    return lines
