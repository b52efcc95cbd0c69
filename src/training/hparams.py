"""A run's config as one flat dict of what tells runs apart: the group choices (`model=lenet5`,
`pooling=min`, ...) and the model, optimizer and schedule settings, epochs, batch size, seed. TensorBoard's
HParams tab (src/training/insight.py) and the trackers (src/training/trackers.py) both show it."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, cast

from omegaconf import DictConfig, OmegaConf

HPARAM_GROUPS = ("model", "data", "pooling", "padding", "optimizer", "scheduler", "experiment")
HPARAM_KEYS = ("seed", "trainer.max_epochs", "data.batch_size", "module.label_smoothing")


def flat_hparams(cfg: DictConfig, choices: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """The config as one flat dict for TensorBoard's HParams tab: the group choices (`model=lenet5`) and
    the values that distinguish runs (model and optimizer settings, epochs, batch size, seed)."""
    choices = dict(choices or {})
    params: dict[str, Any] = {}
    for group in HPARAM_GROUPS:
        value = choices.get(group)
        if value is None and group in ("pooling", "padding") and cfg.get(group):
            value = cfg[group].get("name")
        params[group] = "none" if value is None else str(value)
    for section in ("model", "optimizer", "scheduler"):
        node = cfg.get(section)
        if isinstance(node, DictConfig):
            for key, value in cast(dict[str, Any], OmegaConf.to_container(node, resolve=True)).items():
                # model.pooling / model.padding repeat the choices above
                if not key.startswith("_") and key not in params and not isinstance(value, dict | list):
                    params[f"{section}.{key}"] = value
    for key in HPARAM_KEYS:
        value = OmegaConf.select(cfg, key, default=None)
        if value is not None:
            params[key] = value
    return {k: (v if isinstance(v, int | float | str | bool) else str(v)) for k, v in params.items()}
