"""Train a model: `python -m src.train model=lenet5 data=mnist pooling=min padding=same`.

Everything is built from the composed config (conf/train.yaml and its groups) with
hydra.utils.instantiate; this file only wires the pieces together:

    seed -> datamodule -> network -> LightningModule -> callbacks, loggers -> Trainer
    fit -> test the best checkpoint (or the last: test_checkpoint=last) -> metrics.json in the run directory

The return value of `main` is the metric named by `optimized_metric`, so Hydra sweepers (Optuna) can
minimise / maximise it.

Start-up: `cli()` checks the command line (src/config.py) before torch and Lightning are imported, so
a mistake is answered at once; those imports (10-20 s on a small machine) happen inside `train()`,
and what only some runs need (TensorBoard, matplotlib, torchvision) is imported where it is used.
"""

from __future__ import annotations

import contextlib
import ctypes
import json
import logging
import os
import sys
import time
import warnings
from pathlib import Path
from typing import TYPE_CHECKING, Any

import hydra
from hydra.core.hydra_config import HydraConfig
from hydra.utils import instantiate
from omegaconf import DictConfig, OmegaConf

from src.config import user_errors, validate_command_line
from src.data.files import atomic_open
from src.distributed import install_child_command, isolated_job, launch_rank, rank_overrides
from src.resume import expand_resume
from src.rundir import running

if TYPE_CHECKING:
    import lightning as L


def quiet_lightning() -> None:
    """Drop Lightning's advertising tips and a deprecation warning it raises against itself."""
    logging.getLogger("lightning.pytorch.utilities.rank_zero").addFilter(
        lambda record: "💡 Tip" not in record.getMessage()
    )
    warnings.filterwarnings("ignore", message=r".*isinstance\(treespec, LeafSpec\).*")


def skip_nvml_probe_without_driver() -> None:
    """lightning.fabric sets PYTORCH_NVML_BASED_CUDA_CHECK=1 (a fork-safe GPU check). Without an NVIDIA
    driver, torch then retries loading libnvidia-ml inside every optimizer.step(), as a failed probe is
    not cached: 0.25 ms a step, 4 % of a LeNet-5 step on a 2-core CPU. No driver means no GPU whose CUDA
    state a fork could spoil, so the plain check is used instead."""
    if os.environ.get("PYTORCH_NVML_BASED_CUDA_CHECK") != "1":
        return
    try:
        ctypes.CDLL("libnvidia-ml.so.1")
    except OSError:
        os.environ["PYTORCH_NVML_BASED_CUDA_CHECK"] = "0"


def write_json_atomically(data: dict[str, Any], path: Path) -> None:
    """JSON that is never half-written (src/data/files.py: atomic_open)."""
    with atomic_open(path, "w") as handle:
        json.dump(data, handle, indent=2, sort_keys=True)
        handle.write("\n")


def instantiate_dict(cfg: DictConfig | None) -> list[Any]:
    """Instantiate every `_target_` entry of a config dict (callbacks, loggers)."""
    if not cfg:
        return []
    return [instantiate(node) for node in cfg.values() if isinstance(node, DictConfig) and "_target_" in node]


def build(
    cfg: DictConfig, datamodule: L.LightningDataModule | None = None
) -> tuple[L.LightningDataModule, L.LightningModule, L.Trainer]:
    """Instantiate datamodule (unless given), network + LightningModule and Trainer from the config."""
    from lightning.pytorch.callbacks import LearningRateMonitor

    datamodule = instantiate(cfg.data) if datamodule is None else datamodule
    network = instantiate(cfg.model)
    module = instantiate(cfg.module, model=network)
    # fast_dev_run replaces every logger with a DummyLogger: building them would only import TensorBoard.
    loggers = [] if cfg.trainer.get("fast_dev_run") else instantiate_dict(cfg.get("logger"))
    callbacks = instantiate_dict(cfg.get("callbacks"))
    if not loggers:  # the learning-rate monitor has nowhere to write without a logger (logger=none)
        callbacks = [c for c in callbacks if not isinstance(c, LearningRateMonitor)]
    if any(type(c).__module__ == "src.insight" for c in callbacks):
        from src.insight import group_insight

        callbacks = group_insight(callbacks)  # one callback for Lightning to call on every step
    trainer = instantiate(cfg.trainer, callbacks=callbacks, logger=loggers or False)
    return datamodule, module, trainer


def tested_checkpoint(trainer: L.Trainer, which: str) -> str | None:
    """The checkpoint to test: the best on val/acc, or the last epoch's (for a run that trained on its
    validation split, where "best" would select nothing). None: the weights in memory."""
    callback = trainer.checkpoint_callback
    if callback is None:
        return None
    path = callback.best_model_path if which == "best" else callback.last_model_path
    return path or None


def train(cfg: DictConfig) -> dict[str, Any]:
    """Fit and test; return the metrics that were written to metrics.json."""
    import lightning as L  # first: importing it sets the env var skip_nvml_probe_without_driver reads
    import torch

    from src.trackers import closing

    quiet_lightning()
    skip_nvml_probe_without_driver()
    install_child_command()  # DDP children: this job's overrides in this job's directory (src/distributed.py)
    if cfg.get("threads"):
        torch.set_num_threads(cfg.threads)
    if cfg.get("seed") is not None:
        L.seed_everything(cfg.seed, workers=True, verbose=False)
    output_dir = Path(cfg.paths.output_dir)

    datamodule = instantiate(cfg.data)
    if launch_rank() == 0:
        # A missing dataset is reported (or downloaded) now, before the network, loggers and Trainer are
        # built; the Trainer calls prepare_data again, which then only finds the files.
        datamodule.prepare_data()
    datamodule, module, trainer = build(cfg, datamodule)
    # Rank 0 holds the run directory's lock while it trains (src/rundir.py: src.report tells a run that is
    # still going from one that died); the other ranks write nothing of their own. The trackers' runs
    # (W&B, MLflow: src/trackers.py) end with the block, as failed if it raised.
    with running(output_dir) if trainer.is_global_zero else contextlib.nullcontext(), closing(trainer):
        return fit_and_test(cfg, datamodule, module, trainer, output_dir)


def fit_and_test(
    cfg: DictConfig,
    datamodule: L.LightningDataModule,
    module: L.LightningModule,
    trainer: L.Trainer,
    output_dir: Path,
) -> dict[str, Any]:
    """Fit, test the chosen checkpoint, and (rank 0) write config.yaml and metrics.json."""
    from src.insight import log_hparams
    from src.models.shapes import pooled_shapes
    from src.trackers import log_config, log_result

    shapes = pooled_shapes(module.model)  # before training: on the CPU, one image, the weights untouched
    if trainer.is_global_zero:
        (output_dir / "config.yaml").write_text(OmegaConf.to_yaml(cfg, resolve=True))

    log_config(trainer, cfg)  # the trackers' hyper-parameters: the resolved config, group choices first
    start = time.perf_counter()
    trainer.fit(module, datamodule=datamodule, ckpt_path=cfg.get("ckpt_path"))
    fit_seconds = time.perf_counter() - start
    metrics = {k: float(v) for k, v in trainer.callback_metrics.items() if k.startswith(("train/", "val/"))}

    tested = None
    if cfg.get("test", True):
        tested = tested_checkpoint(trainer, cfg.get("test_checkpoint", "best"))
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
        write_json_atomically(result, output_dir / "metrics.json")
        summary = ", ".join(f"{k} {metrics[k]:.4f}" for k in ("test/loss", "test/acc") if k in metrics)
        epochs = f"{trainer.current_epoch} epochs in {fit_seconds:.1f} s"
        print(f"{summary or 'no test run'} | {epochs} | {output_dir}")
    return result


def objective(result: dict[str, Any], name: str | None) -> float | None:
    """The value a sweeper optimises: metrics[optimized_metric]."""
    if not name:
        return None
    return result["metrics"][name]


@hydra.main(version_base="1.3", config_path="../conf", config_name="train")
def main(cfg: DictConfig) -> float | None:
    with user_errors(), isolated_job():  # isolated_job: a fresh DDP process group for each job of a multirun
        result = train(cfg)
    return objective(result, cfg.get("optimized_metric"))


def cli() -> None:
    with user_errors():
        sys.argv[1:] = expand_resume(sys.argv[1:])  # resume=<run dir>: that run's overrides + last.ckpt
        sys.argv[1:] = rank_overrides(sys.argv[1:])  # DDP ranks > 0 write no run directory of their own
        validate_command_line(sys.argv[1:])
    main()


if __name__ == "__main__":
    cli()
