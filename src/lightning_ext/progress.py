"""A rich progress bar that updates at most a few times a second, and does no work in between.

Lightning's RichProgressBar recomputes the metrics shown beside the bar after every training batch.
This one passes a batch's update on to Lightning only when `min_seconds` have passed since the last
one, and always at the last batch; in between it only reads the clock. The bar and its numbers are the
same whenever it is drawn. `refresh_rate` keeps Lightning's meaning (the bar thread's redraws per
second). What it saves, and why `refresh_rate` stays high: docs/speed.md.
"""

from __future__ import annotations

import time
from typing import Any

import lightning as L
from lightning.pytorch.callbacks import RichProgressBar as LightningRichProgressBar


class RichProgressBar(LightningRichProgressBar):
    def __init__(self, refresh_rate: int = 10, min_seconds: float = 0.25, **kwargs: Any) -> None:
        super().__init__(refresh_rate=refresh_rate, **kwargs)
        self.min_seconds = min_seconds
        self._last_update = float("-inf")

    def on_train_batch_end(
        self, trainer: L.Trainer, pl_module: L.LightningModule, outputs: Any, batch: Any, batch_idx: int
    ) -> None:
        now = time.monotonic()
        if batch_idx + 1 == trainer.num_training_batches or now - self._last_update >= self.min_seconds:
            self._last_update = now
            super().on_train_batch_end(trainer, pl_module, outputs, batch, batch_idx)
