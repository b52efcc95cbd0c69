"""`python -m bench speed`: a warm epoch of the src.train path against a bare PyTorch loop doing the
recipe's work, interleaved, per recipe and batch size; evaluation of both; the data pipeline alone."""

from __future__ import annotations

import inspect
import time
from collections.abc import Callable, Sequence
from typing import Any, NamedTuple

import lightning as L
import torch
from hydra.utils import instantiate
from omegaconf import DictConfig, open_dict
from torch import nn

from bench.common import (
    CPU,
    EpochClock,
    StepWindow,
    WindowCallback,
    autocast,
    bench_config,
    device_of,
    evaluate,
    on_device,
    prepare,
    synchronize,
)

# The rows of `python -m bench speed`: our recipe at three batch sizes, and the study sheet's recipe
# (experiment, batch size; None: the experiment's own).
SPEED_ROWS: tuple[tuple[str, int | None], ...] = (
    ("lenet5_mnist", 64),
    ("lenet5_mnist", 128),
    ("lenet5_mnist", 256),
    ("sheet_lenet5_mnist", None),
)


def bare_schedule(cfg: DictConfig, optimizer: torch.optim.Optimizer, total_steps: int) -> Any | None:
    """The recipe's learning-rate schedule when the module steps it after every batch (one-cycle), made
    as ImageClassifier.configure_optimizers makes it; None for none or one stepped per epoch."""
    if cfg.get("scheduler") is None or cfg.module.scheduler_interval != "step":
        return None
    factory = instantiate(cfg.scheduler)
    extra = {}
    if "total_steps" in inspect.signature(factory).parameters and "total_steps" not in factory.keywords:
        extra["total_steps"] = total_steps
    return factory(optimizer=optimizer, **extra)


def bare_step(
    model: nn.Module,
    inputs: torch.Tensor,
    labels: torch.Tensor,
    criterion: nn.Module,
    optimizer: torch.optim.Optimizer,
    scheduler: Any | None = None,
    device: torch.device = CPU,
    precision: Any = "32-true",
    mark: Callable[[], None] = lambda: None,
) -> None:
    """One training step of the bare loop: forward and loss, backward, the optimizer's and (one-cycle)
    the schedule's step; `mark` is called after the first two (bench.steps times the parts)."""
    with autocast(device, precision):
        loss = criterion(model(inputs), labels)
    mark()
    optimizer.zero_grad(set_to_none=True)
    loss.backward()
    mark()
    optimizer.step()
    if scheduler is not None:
        scheduler.step()


def bare_training_epoch(
    model: nn.Module,
    datamodule: L.LightningDataModule,
    optimizer: torch.optim.Optimizer,
    memory_format: torch.memory_format = torch.contiguous_format,
    criterion: nn.Module | None = None,
    scheduler: Any | None = None,
    device: torch.device = CPU,
    precision: Any = "32-true",
    window: StepWindow | None = None,
) -> float:
    """The minimal loop the Lightning path is measured against, doing the recipe's work and nothing
    else, on the device and in the precision src.train would use: the datamodule's batches (made
    model-ready once per split where that is exact, as in src.train), forward, the recipe's loss,
    backward, the optimizer's step and, for a one-cycle recipe, the schedule's step. Returns images/s.
    `window` profiles some of its steps."""
    criterion, images_seen = criterion or nn.CrossEntropyLoss(), 0
    model.train()
    synchronize(device)
    start = time.perf_counter()
    for step, batch in enumerate(datamodule.train_dataloader()):
        if window is not None:
            window.begin(step, device)
        images, labels = on_device(batch, device)
        inputs = datamodule.to_model_input(images, train=True).contiguous(memory_format=memory_format)
        bare_step(model, inputs, labels, criterion, optimizer, scheduler, device, precision)
        images_seen += len(labels)
        if window is not None:
            window.end(step, device)
    synchronize(device)
    return images_seen / (time.perf_counter() - start)


class EvalClock(EpochClock):
    """EpochClock, and also times the batches of the latest validation run (not the sanity check) and of
    `trainer.test`, each from its first batch's start to its last batch's end: evaluation throughput,
    without the fixed set-up of a loop and the figures drawn after its last batch. (One callback, not
    two: Lightning calls every callback on every step, and the clock should cost the path it times
    as little as it can.)"""

    def __init__(self) -> None:
        super().__init__()
        self.runs: dict[str, list[float]] = {}  # stage -> [images, start, stop] of its latest run

    def _start(self, trainer: L.Trainer, stage: str, batch_idx: int) -> None:
        if not trainer.sanity_checking and batch_idx == 0:
            self.runs[stage] = [0, time.perf_counter(), 0.0]

    def _end(self, trainer: L.Trainer, stage: str, batch: Any) -> None:
        if not trainer.sanity_checking:
            run = self.runs[stage]
            run[0] += len(batch[1])
            run[2] = time.perf_counter()

    def on_validation_batch_start(self, trainer, pl_module, batch, batch_idx, dataloader_idx=0) -> None:
        self._start(trainer, "val", batch_idx)

    def on_validation_batch_end(
        self, trainer, pl_module, outputs, batch, batch_idx, dataloader_idx=0
    ) -> None:
        self._end(trainer, "val", batch)

    def on_test_batch_start(self, trainer, pl_module, batch, batch_idx, dataloader_idx=0) -> None:
        self._start(trainer, "test", batch_idx)

    def on_test_batch_end(self, trainer, pl_module, outputs, batch, batch_idx, dataloader_idx=0) -> None:
        self._end(trainer, "test", batch)

    def images_per_second(self, stage: str) -> float:
        images, start, stop = self.runs[stage]
        return images / (stop - start)


def two_epoch_fit(cfg: DictConfig, window: StepWindow | None = None):
    """Fit the src.train path for 2 epochs with an EvalClock (and `window` over epoch 2's steps)."""
    overrides_cfg = cfg.copy()
    with open_dict(overrides_cfg):
        overrides_cfg.trainer.max_epochs = 2
        overrides_cfg.trainer.min_epochs = 2
    datamodule, module, trainer = prepare(overrides_cfg)
    clock = EvalClock()
    trainer.callbacks.append(clock)
    if window is not None:
        trainer.callbacks.append(WindowCallback(window, epoch=1))
    trainer.fit(module, datamodule=datamodule)
    return datamodule, module, trainer, clock


def lightning_training(cfg: DictConfig, window: StepWindow | None = None) -> dict[str, float]:
    """The src.train path: training images/s of a warm epoch (epoch 2 of 2), evaluation images/s of that
    epoch's validation batches and of trainer.test's batches, and the whole trainer.test call's seconds.
    `window` profiles some steps of epoch 2."""
    datamodule, module, trainer, clock = two_epoch_fit(cfg, window)
    start = time.perf_counter()
    trainer.test(module, datamodule=datamodule, verbose=False)
    return {
        "train": clock.rows[-1]["images_per_second"],
        "eval": clock.images_per_second("val"),
        "test": clock.images_per_second("test"),
        "test_call_seconds": time.perf_counter() - start,
    }


class BareLoop(NamedTuple):
    """What the bare loop trains with, in bare_training_epoch's order."""

    model: nn.Module
    datamodule: L.LightningDataModule
    optimizer: torch.optim.Optimizer
    memory_format: torch.memory_format
    criterion: nn.Module
    scheduler: Any | None
    device: torch.device
    precision: Any


def bare_loop(cfg: DictConfig, epochs: int) -> BareLoop:
    """The recipe's network, datamodule, optimizer, schedule (over `epochs`) and loss for the bare loop,
    on the device and in the precision src.train would use."""
    datamodule, module, _ = prepare(cfg)  # its Trainer sets torch.backends.cudnn.benchmark as src.train's
    device, precision = device_of(cfg), cfg.trainer.get("precision", "32-true")
    model = module.model.to(device)  # already in the module's memory format
    datamodule.batch_device = device
    memory_format = torch.channels_last if cfg.module.channels_last else torch.contiguous_format
    optimizer = instantiate(cfg.optimizer)(params=model.parameters())
    scheduler = bare_schedule(cfg, optimizer, epochs * len(datamodule.train_dataloader()))
    criterion = nn.CrossEntropyLoss(label_smoothing=cfg.module.get("label_smoothing", 0.0))
    return BareLoop(model, datamodule, optimizer, memory_format, criterion, scheduler, device, precision)


def bare_training(cfg: DictConfig, window: StepWindow | None = None) -> dict[str, float]:
    """The same for the bare loop: the same network, optimizer, schedule, loss, datamodule and batches,
    on the same device (batches served from the GPU's memory as for src.train, `data.keep_on_device`),
    in the same precision, with cuDNN's benchmark mode as the trainer set it; then the same validation
    and test splits evaluated. `window` profiles some steps of the warm epoch."""
    loop = bare_loop(cfg, epochs=2)
    model, datamodule, _, memory_format, _, _, device, precision = loop
    bare_training_epoch(*loop)  # epoch 1: warm-up, as for Lightning
    result = {"train": bare_training_epoch(*loop, window=window)}
    for stage, key in (("val", "eval"), ("test", "test")):
        synchronize(device)
        start = time.perf_counter()
        _, count = evaluate(
            model, datamodule, split=stage, memory_format=memory_format, device=device, precision=precision
        )
        result[key] = count / (time.perf_counter() - start)
    return result


def data_pipeline(cfg: DictConfig) -> float:
    """Images/s of the data pipeline alone: batches out of memory, augmented, fitted, normalised (or,
    from a model-ready split, only gathered), a warm epoch."""
    datamodule, _, _ = prepare(cfg)
    datamodule.train_dataloader()  # makes the splits model-ready (once per dataset)
    start, count = time.perf_counter(), 0
    for images, labels in datamodule.train_dataloader():
        datamodule.to_model_input(images, train=True)
        count += len(labels)
    return count / (time.perf_counter() - start)


def speed_row(
    experiment: str, batch_size: int | None, overrides: list[str], repeats: int, extras: bool = True
) -> dict[str, Any]:
    """One recipe at one batch size: `repeats` interleaved pairs (src.train, bare) of a warm epoch each;
    `extras`: also the data pipeline alone."""
    batch = [f"data.batch_size={batch_size}"] if batch_size else []
    name = f"speed_{experiment}" + (f"_{batch_size}" if batch_size else "")
    cfg = bench_config(experiment, [*batch, *overrides], name)
    lightning_runs, bare_runs = [], []
    for _ in range(repeats):  # interleaved, so a slow moment of the machine hits both
        lightning_runs.append(lightning_training(cfg))
        bare_runs.append(bare_training(cfg))
    sides = (("lightning", lightning_runs), ("bare", bare_runs))
    best = {
        kind: {side: max(r[kind] for r in runs) for side, runs in sides} for kind in ("train", "eval", "test")
    }
    # The best of each is the headline; each pair's own ratio shows how much the machine's noise moves it.
    pair_ratios = [
        light["train"] / plain["train"] for light, plain in zip(lightning_runs, bare_runs, strict=True)
    ]
    return {
        "experiment": experiment,
        "batch_size": int(cfg.data.batch_size),
        "overrides": [*batch, *overrides],
        "train_images_per_second": {side: round(v) for side, v in best["train"].items()},
        "train_ratio": round(best["train"]["lightning"] / best["train"]["bare"], 3),
        "train_ratio_per_pair": [round(r, 3) for r in pair_ratios],
        "eval_images_per_second": {side: round(v) for side, v in best["eval"].items()},
        "eval_ratio": round(best["eval"]["lightning"] / best["eval"]["bare"], 3),
        "test_images_per_second": {side: round(v) for side, v in best["test"].items()},
        "test_ratio": round(best["test"]["lightning"] / best["test"]["bare"], 3),
        "test_call_seconds": round(min(r["test_call_seconds"] for r in lightning_runs), 3),
        **({"data_pipeline_images_per_second": round(data_pipeline(cfg))} if extras else {}),
        "all_runs": {"lightning": lightning_runs, "bare": bare_runs},
    }


def run_speed(
    rows: Sequence[tuple[str, int | None]], overrides: list[str], repeats: int = 3
) -> dict[str, Any]:
    return {"rows": [speed_row(e, b, overrides, repeats) for e, b in rows], "repeats": repeats}


def speed_markdown(result: dict[str, Any]) -> list[str]:
    lines = [
        "Training, a warm epoch (images/s):",
        "",
        "| recipe | batch | src.train | bare loop | ratio (best of each) | ratio of each interleaved pair |",
        "|---|---|---|---|---|---|",
    ]
    for r in result["rows"]:
        t, pairs = r["train_images_per_second"], ", ".join(f"{x:.3f}" for x in r["train_ratio_per_pair"])
        lines.append(
            f"| `{r['experiment']}` | {r['batch_size']} | {t['lightning']:,} | {t['bare']:,} | "
            f"{r['train_ratio']:.3f} | {pairs} |"
        )
    lines += [
        "",
        "Evaluation (images/s over the batches; validation: the warm epoch's, with its per-batch confusion "
        "counts; test: with the per-layer statistics of metrics.json):",
        "",
        "| recipe | batch | validation: src.train | bare loop | ratio | test: src.train | bare loop | ratio "
        "| whole `trainer.test` call |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for r in result["rows"]:
        e, t = r["eval_images_per_second"], r["test_images_per_second"]
        lines.append(
            f"| `{r['experiment']}` | {r['batch_size']} | {e['lightning']:,} | {e['bare']:,} | "
            f"{r['eval_ratio']:.3f} | {t['lightning']:,} | {t['bare']:,} | {r['test_ratio']:.3f} | "
            f"{r['test_call_seconds']:.2f} s |"
        )
    pipeline = ", ".join(f"{r['data_pipeline_images_per_second']:,}" for r in result["rows"])
    return [*lines, "", f"Data pipeline alone (a warm epoch of batches), images/s, row by row: {pipeline}."]
