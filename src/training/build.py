"""Everything a run trains with, instantiated from its composed config (conf/train.yaml and its groups):

    datamodule (cfg.data) -> network (cfg.model) -> LightningModule (cfg.module) -> callbacks, loggers
    -> Trainer (cfg.trainer)

src.train uses it for a run, bench for its measurements.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from hydra.utils import instantiate
from omegaconf import DictConfig

if TYPE_CHECKING:
    import lightning as L

    from src.training.module import ImageClassifier


def instantiate_dict(cfg: DictConfig | None) -> list[Any]:
    """Instantiate every `_target_` entry of a config dict (callbacks, loggers)."""
    if not cfg:
        return []
    return [instantiate(node) for node in cfg.values() if isinstance(node, DictConfig) and "_target_" in node]


def build(
    cfg: DictConfig, datamodule: L.LightningDataModule | None = None
) -> tuple[L.LightningDataModule, ImageClassifier, L.Trainer]:
    """Instantiate datamodule (unless given), network + LightningModule and Trainer from the config."""
    # deferred: Lightning and torch (config errors are answered before them)
    from lightning.pytorch.callbacks import LearningRateMonitor

    from src.training.insight import group_insight

    datamodule = instantiate(cfg.data) if datamodule is None else datamodule
    network = instantiate(cfg.model)
    module = instantiate(cfg.module, model=network)
    # fast_dev_run replaces every logger with a DummyLogger: building them would only import TensorBoard.
    loggers = [] if cfg.trainer.get("fast_dev_run") else instantiate_dict(cfg.get("logger"))
    callbacks = instantiate_dict(cfg.get("callbacks"))
    if not loggers:  # the learning-rate monitor has nowhere to write without a logger (logger=none)
        callbacks = [c for c in callbacks if not isinstance(c, LearningRateMonitor)]
    callbacks = group_insight(callbacks)  # one callback for Lightning to call on every step
    extra = lightning_defaults(cfg, callbacks)
    trainer = instantiate(cfg.trainer, callbacks=callbacks, logger=loggers or False, **extra)
    return datamodule, module, trainer


def lightning_defaults(cfg: DictConfig, callbacks: list[L.Callback]) -> dict[str, Any]:
    """What the Trainer would add by itself, decided by the config instead.

    Lightning adds a ModelCheckpoint and a progress bar of its own when the callbacks hold none; here the
    `callbacks` group is the whole list: `callbacks=none` means no checkpoints (the test then uses the
    final weights) and `callbacks.progress_bar=null` no bar, unless trainer.enable_checkpointing /
    trainer.enable_progress_bar say otherwise."""
    from lightning.pytorch.callbacks import ModelCheckpoint, ProgressBar  # deferred: Lightning

    present = {
        "enable_checkpointing": any(isinstance(c, ModelCheckpoint) for c in callbacks),
        "enable_progress_bar": any(isinstance(c, ProgressBar) for c in callbacks),
    }
    chosen = {flag: on for flag, on in present.items() if cfg.trainer.get(flag) is None}
    return chosen
