"""The names of the metrics src/training/module.py logs: those a sweeper's `optimized_metric` may use.

Kept apart from the LightningModule so that src/config/check.py can check `optimized_metric` before torch and
Lightning are imported.
"""

LOGGED_METRICS = (
    "train/loss", "train/loss_epoch", "train/acc",
    "val/loss", "val/acc", "val/acc_best", "test/loss", "test/acc",
)  # fmt: skip
