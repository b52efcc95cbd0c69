"""One run, from its composed config to metrics.json: the story src/train.py tells, as functions.

    seed -> datamodule (its data found first) -> network -> LightningModule -> callbacks, loggers -> Trainer
    (src/training/build.py) -> fit -> test the best checkpoint (or the last: test_checkpoint=last)
    -> config.yaml and metrics.json in the run directory, and one result line

Every checkpoint is checked before Lightning loads it (`ckpt_path=`, the tested one): whole, a Lightning
checkpoint, this model's (src/utils/checkpoints.py), else one line naming the file and the reason.
torch and Lightning are imported inside `train`, so that composing and checking a command line stays quick.
"""

from __future__ import annotations

import contextlib
import time
from typing import TYPE_CHECKING, Any

from hydra.core.hydra_config import HydraConfig
from hydra.utils import instantiate
from omegaconf import DictConfig

from src.lightning_ext.process import launch_ranks_with, prepare_process
from src.training.build import build
from src.training.distributed import child_command, launch_rank
from src.training.trackers import closing, log_config, log_result
from src.utils.checkpoints import LIGHTNING_KEYWORDS, check_checkpoint, state_shapes
from src.utils.files import NoSpaceError

if TYPE_CHECKING:
    import lightning as L

    from src.runs.rundir import RunDir
    from src.training.module import ImageClassifier


def train(cfg: DictConfig, run: RunDir) -> dict[str, Any]:
    """Fit and test; return the metrics that were written to `run`'s metrics.json."""
    # deferred: torch and Lightning take seconds to import (config errors are answered before them)
    import lightning as L
    import torch

    prepare_process()
    launch_ranks_with(child_command)  # DDP ranks: this job's overrides in this job's directory
    if cfg.get("threads"):
        torch.set_num_threads(cfg.threads)
    if cfg.get("seed") is not None:
        L.seed_everything(cfg.seed, workers=True, verbose=False)

    datamodule = instantiate(cfg.data)
    if launch_rank() == 0:
        # A missing dataset is reported (or downloaded) now, before the network, loggers and Trainer are
        # built; the Trainer calls prepare_data again, which then only finds the files.
        datamodule.prepare_data()
    datamodule, module, trainer = build(cfg, datamodule)
    # Rank 0 holds the run directory's lock while it trains (src/runs/rundir.py: src.report tells a run
    # that is still going from one that died); the other ranks write nothing of their own. The trackers'
    # runs (W&B, MLflow: src/training/trackers.py) end with the block, as failed if it raised.
    try:
        with run.running() if trainer.is_global_zero else contextlib.nullcontext(), closing(trainer):
            return fit_and_test(cfg, datamodule, module, trainer, run)
    except NoSpaceError as error:  # a checkpoint or metrics.json: the files written before are whole
        raise NoSpaceError(
            f"{error}; then resume={run.path} continues from its last whole checkpoint"
        ) from None


def tested_checkpoint(trainer: L.Trainer, which: str) -> str | None:
    """The checkpoint to test: the best on val/acc, or the last epoch's (for a run that trained on its
    validation split, where "best" would select nothing). None: the weights in memory."""
    from src.lightning_ext.checkpoints import checkpoint_paths  # deferred: imports Lightning

    best, last = checkpoint_paths(trainer)
    return (best if which == "best" else last) or None


def checked(path: str | None, module: L.LightningModule, resume: bool = False) -> str | None:
    """`path`, once it is known to be a whole checkpoint of this module (with `resume`: one training can
    continue from): src/utils/checkpoints.py, else a one-line error naming the file and the reason.
    None and Lightning's own keywords (`ckpt_path=last`) are Lightning's to resolve."""
    if path is None or path in LIGHTNING_KEYWORDS:
        return path
    check_checkpoint(path, state_shapes(module), resume)
    return path


def fit_and_test(
    cfg: DictConfig,
    datamodule: L.LightningDataModule,
    module: ImageClassifier,
    trainer: L.Trainer,
    run: RunDir,
) -> dict[str, Any]:
    """Fit, test the chosen checkpoint, and (rank 0) write config.yaml and metrics.json."""
    # deferred: import torch and Lightning
    from lightning.pytorch.callbacks import WeightAveraging

    from src.models.shapes import pooled_shapes
    from src.training.insight import log_hparams

    shapes = pooled_shapes(module.model)  # before training: on the CPU, one image, the weights untouched
    if trainer.is_global_zero:
        run.write_config(cfg)

    log_config(trainer, cfg)  # the trackers' hyper-parameters: the resolved config, group choices first
    start = time.perf_counter()
    trainer.fit(module, datamodule=datamodule, ckpt_path=checked(cfg.get("ckpt_path"), module, resume=True))
    fit_seconds = time.perf_counter() - start
    if not any(name.startswith("val/") for name in trainer.callback_metrics):
        # Resumed from a checkpoint of its last epoch (it stopped after training, e.g. when metrics.json
        # could not be written): nothing was trained, so the final weights are validated again.
        trainer.validate(module, datamodule=datamodule, verbose=False)
    metrics = {k: float(v) for k, v in trainer.callback_metrics.items() if k.startswith(("train/", "val/"))}

    tested = None
    if cfg.get("test", True):
        tested = checked(tested_checkpoint(trainer, cfg.get("test_checkpoint", "best")), module)
        # With weight averaging (callbacks=ema) a checkpoint's state_dict holds the averaged weights, which
        # validation chose it by; the callback, still there after fit, would load the current ones instead.
        trainer.callbacks[:] = [c for c in trainer.callbacks if not isinstance(c, WeightAveraging)]  # type: ignore[attr-defined]
        trainer.test(module, datamodule=datamodule, ckpt_path=tested, verbose=False)
        metrics.update({k: float(v) for k, v in trainer.callback_metrics.items() if k.startswith("test/")})

    result = {
        "metrics": metrics,
        "epochs": trainer.current_epoch,
        "global_step": trainer.global_step,
        "fit_seconds": round(fit_seconds, 3),
        "tested_checkpoint": tested,
        "params": sum(p.numel() for p in module.parameters()),
        "pooled_shapes": shapes,
        "overrides": list(HydraConfig.get().overrides.task) if HydraConfig.initialized() else [],
    }
    log_hparams(trainer, cfg, metrics)  # TensorBoard's HParams tab: this run's config + final metrics
    log_result(trainer, result)  # the trackers: final metrics, the best checkpoint's path
    if trainer.is_global_zero:
        run.write_metrics(result)
        summary = ", ".join(f"{k} {metrics[k]:.4f}" for k in ("test/loss", "test/acc") if k in metrics)
        epochs = f"{trainer.current_epoch} epochs in {fit_seconds:.1f} s"
        print(f"{summary or 'no test run'} | {epochs} | {run.path}")
    return result


def objective(result: dict[str, Any], name: str | None) -> float | None:
    """The value a sweeper optimises: metrics[optimized_metric]."""
    if not name:
        return None
    return result["metrics"][name]
