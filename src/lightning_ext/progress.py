"""A rich progress bar that updates at most a few times a second, and does no work in between.

Lightning's RichProgressBar recomputes the metrics shown beside the bar after every training batch.
This one passes a batch's update on to Lightning only when `min_seconds` have passed since the last
one, and always at the last batch; in between it only reads the clock. The bar and its numbers are the
same whenever it is drawn. `refresh_rate` keeps Lightning's meaning (the bar thread's redraws per
second). What it saves, and why `refresh_rate` stays high: docs/speed.md.

It also shows `step_metrics` (the module's step loss, `train/loss`), which the module logs without
`prog_bar=True`: Lightning turns every `prog_bar` value into a Python number after every batch
(`LoggerConnector.on_batch_end` -> `_ResultCollection.metrics`, `.item()`), also on the steps in between
two logged ones, and on a GPU each `.item()` waits for the queued kernels. Here it is read only when the
bar is updated, and shown where Lightning showed it: first after the standard items.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import Any

import lightning as L
from lightning.pytorch.callbacks import RichProgressBar as LightningRichProgressBar
from lightning.pytorch.callbacks.progress.progress_bar import get_standard_metrics
from torch import Tensor


class RichProgressBar(LightningRichProgressBar):
    def __init__(
        self,
        refresh_rate: int = 10,
        min_seconds: float = 0.25,
        step_metrics: Sequence[str] = ("train/loss",),
        **kwargs: Any,
    ) -> None:
        super().__init__(refresh_rate=refresh_rate, **kwargs)
        self.min_seconds, self.step_metrics = min_seconds, tuple(step_metrics)
        self._last_update = float("-inf")

    def on_train_batch_end(
        self, trainer: L.Trainer, pl_module: L.LightningModule, outputs: Any, batch: Any, batch_idx: int
    ) -> None:
        now = time.monotonic()
        if batch_idx + 1 == trainer.num_training_batches or now - self._last_update >= self.min_seconds:
            self._last_update = now
            super().on_train_batch_end(trainer, pl_module, outputs, batch, batch_idx)

    def get_metrics(self, trainer: L.Trainer, pl_module: L.LightningModule) -> dict[str, Any]:
        items = super().get_metrics(trainer, pl_module)
        logged = trainer.callback_metrics
        steps = {
            name: logged[name].item() for name in self.step_metrics if isinstance(logged.get(name), Tensor)
        }
        if not steps:
            return items
        standard = {name: items[name] for name in get_standard_metrics(trainer) if name in items}
        return {**standard, **steps, **items}
