"""A finished run's network, rebuilt from the run's saved config and loaded from its checkpoint: what
src.eval and src.predict start from. The checkpoint is checked first (src/utils/checkpoints.py) and
read with `torch.load(weights_only=True)`: tensors and plain values only, never pickled code."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import yaml
from hydra.utils import instantiate
from omegaconf import DictConfig, OmegaConf

from src.runs.rundir import RUN_CONFIG_KEYS, RunDir
from src.utils.checkpoints import check_checkpoint, state_shapes
from src.utils.errors import UserError

if TYPE_CHECKING:
    import lightning as L

    from src.data.base import InMemoryDataModule
    from src.training.module import ImageClassifier


def load_run_config(run: RunDir, overrides: Sequence[str] = ()) -> DictConfig:
    """The run's saved config with `key=value` overrides applied (struct mode: no new keys)."""
    cfg = run.read_config(needs=RUN_CONFIG_KEYS)
    OmegaConf.set_struct(cfg, True)
    for override in overrides:
        key, sep, value = override.partition("=")
        if not sep or not key:
            raise UserError(f"{override!r} is not key=value")
        if OmegaConf.select(cfg, key, default=KeyError) is KeyError:
            raise UserError(f"{key} is not a key of the run's config")
        OmegaConf.update(cfg, key, yaml_value(value), merge=True)
    return cfg


def yaml_value(text: str) -> Any:
    """`3` -> 3, `true` -> True, `null` -> None, anything else stays a string (as Hydra reads values)."""
    try:
        return yaml.safe_load(text)
    except yaml.YAMLError:
        return text


def load_trained(
    run: RunDir, overrides: Sequence[str] = (), ckpt_path: Path | None = None
) -> tuple[DictConfig, InMemoryDataModule, ImageClassifier, Path]:
    """(config, datamodule, module with the checkpoint's weights, checkpoint): the run's tested checkpoint
    (metrics.json's, else last.ckpt) or `ckpt_path`; one UserError line when it cannot be used."""
    import torch  # deferred: imports torch (a bad run directory is answered before it)

    cfg = load_run_config(run, overrides)
    checkpoint_path = ckpt_path or run.tested_checkpoint()
    datamodule = instantiate(cfg.data)
    module = instantiate(cfg.module, model=instantiate(cfg.model))
    check_checkpoint(checkpoint_path, state_shapes(module))
    try:
        checkpoint = torch.load(checkpoint_path, map_location="cpu", weights_only=True)
    except Exception as error:  # a truncated file, or one that would need pickled code
        raise UserError(f"cannot load {checkpoint_path}: {str(error).splitlines()[0]}") from error
    module.load_state_dict(checkpoint["state_dict"])
    return cfg, datamodule, module.eval(), Path(checkpoint_path)


def evaluation_trainer(callbacks: Sequence[L.Callback] = ()) -> L.Trainer:
    """A Trainer that only evaluates or predicts: one device (a GPU when there), no logger, no
    checkpoints, no progress bar, no model summary."""
    import lightning as L  # deferred: imports torch

    quiet: dict[str, Any] = {
        "enable_checkpointing": False,
        "enable_progress_bar": False,
        "enable_model_summary": False,
    }
    return L.Trainer(accelerator="auto", devices=1, logger=False, callbacks=list(callbacks), **quiet)


def top_classes(probabilities: Any, names: Sequence[str], k: int) -> list[list[tuple[str, float]]]:
    """Each row's `k` most probable (class name, probability), most probable first."""
    top = probabilities.topk(min(k, probabilities.shape[1]), dim=1)
    return [[(names[int(i)], float(p)) for p, i in zip(ps, idx, strict=True)]
            for ps, idx in zip(top.values, top.indices, strict=True)]  # fmt: skip
