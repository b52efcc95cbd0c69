"""The benchmark: how accurate and how fast, measured on this machine, written where the README reads it.

    python -m src.bench accuracy                     # LeNet-5/MNIST recipe: accuracy, time to 99.0 %
    python -m src.bench accuracy --experiment seed_lenet5_mnist
    python -m src.bench speed                        # src.train's path vs a bare PyTorch loop, per batch size
    python -m src.bench startup                      # seconds to the first answer (errors, first batch)
    python -m src.bench startup --root ../before --label before   # the same for another checkout
    python -m src.bench keras                        # the seed's Keras LeNet-5 beside the same here
    python -m src.bench scaling                      # images/s against batch size and threads
    python -m src.bench all                          # accuracy, speed, startup, keras, scaling (`make bench`)
    python -m src.bench gpu --results-dir DIR        # the GPU check (scripts/gpu_check.sh)

Extra Hydra overrides go at the end: `python -m src.bench accuracy trainer.max_epochs=5`.

accuracy: trains through the same code as `python -m src.train` (same config, same LightningModule,
default callbacks); after every epoch it evaluates the test set outside the timed part, to record when
the test accuracy first reaches each target.
speed: one row per recipe and batch size (SPEED_ROWS: lenet5_mnist at 64, 128, 256 and the seed's
recipe); per row, in one process, interleaved (L, bare, L, bare, L, bare; best of each; `--repeats`),
one warm training epoch of (a) the full Lightning + Hydra path and (b) a minimal hand-written loop
doing the recipe's work over the same model, datamodule, loss, optimizer, schedule, batch size and
threads; evaluation images/s of both over the validation and the test batches; the data pipeline alone.
startup: fresh interpreters, best of `--repeats`: each config mistake of MISTAKES (exit status 2), a
missing dataset, `python -c "import torch"` / `"import src, lightning"`, `python -m src.summary`, and
`python -m src.train debug=fast` to its first training batch and to its end; `-X importtime`'s top
entries. `--root` times another checkout (e.g. `git worktree add ../before <commit>`) with this
interpreter; `--label` names its column (results: startup_<label>.json; startup.md shows them all).
keras: the seed's Keras LeNet-5 (bench/keras_lenet5.py, TensorFlow CPU in a throw-away uv environment)
beside the same network and recipe as a bare loop and through src.train, and beside our own recipe;
and, when DATA_DIR holds CIFAR-10, the seed's 2-epoch CIFAR-10 run in both (test accuracy over three
seeds and training images/s).
scaling: training images/s of the bare step against batch size and torch threads, for both networks.
gpu: LeNet-5 through `python -m src.train` with trainer=gpu and trainer=ddp, AlexNet's speed against the
bare loop at three batch sizes, a profile of its step, the Flowers-17 final fit's epoch time (see "gpu
check" below and scripts/gpu_check.sh).

Results: bench/results/<suite>.json, <suite>.md (and scaling.png), with machine, versions and date.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import inspect
import json
import math
import os
import platform
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import traceback
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import lightning as L
import torch
from hydra.utils import instantiate
from omegaconf import DictConfig, open_dict
from torch import nn

from src.config.compose import PROJECT_ROOT, compose_config
from src.lightning_ext.process import prepare_process
from src.runs.rundir import RunDir
from src.training.build import build
from src.training.insight import ImagesPerSecond
from src.utils.errors import UserError, user_errors
from src.utils.files import write_json_atomically

RESULTS_DIR = PROJECT_ROOT / "bench" / "results"
CPU = torch.device("cpu")
OUTPUT_DIR = Path(os.environ.get("BENCH_OUTPUT_DIR", PROJECT_ROOT / "outputs" / "bench"))
TARGETS = (0.99, 0.992, 0.993)


# ------------------------------------------------------------------------------------- plumbing
def machine() -> dict[str, Any]:
    cpuinfo = Path("/proc/cpuinfo")
    names = [line.split(":", 1)[1].strip() for line in cpuinfo.read_text().splitlines()
             if line.startswith("model name")] if cpuinfo.exists() else []  # fmt: skip
    return {
        "cpu": names[0] if names else platform.processor(),
        "cores": os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
        "gpu": torch.cuda.get_device_name() if torch.cuda.is_available() else None,
        "python": platform.python_version(),
        "torch": torch.__version__,
        "lightning": L.__version__,
        "date": dt.date.today().isoformat(),
    }


def machine_line(m: dict[str, Any], command: str) -> str:
    return (
        f"`{command}` on {m['date']}: {m['cpu']}, {m['cores']} cores, {m['torch_threads']} torch threads, "
        f"{m['gpu'] or 'no GPU'}; Python {m['python']}, torch {m['torch']}, lightning {m['lightning']}."
    )


def bench_config(experiment: str, overrides: list[str], name: str) -> DictConfig:
    """The experiment's config as src.train composes it, writing into outputs/bench/<name>."""
    cfg = compose_config([f"experiment={experiment}", *overrides])
    shutil.rmtree(OUTPUT_DIR / name, ignore_errors=True)  # checkpoints of an earlier benchmark
    with open_dict(cfg):  # loggers, checkpoints and the trainer all write below paths.output_dir
        cfg.paths.output_dir = str(OUTPUT_DIR / name)
    return cfg


def prepare(cfg: DictConfig) -> tuple[L.LightningDataModule, L.LightningModule, L.Trainer]:
    prepare_process()
    if cfg.get("threads"):
        torch.set_num_threads(cfg.threads)
    L.seed_everything(cfg.seed, workers=True, verbose=False)
    datamodule, module, trainer = build(cfg)
    datamodule.setup("fit")
    return datamodule, module, trainer


class EpochClock(ImagesPerSecond):
    """Times the training epochs, stopping at each epoch's last training batch as ImagesPerSecond does:
    Lightning validates before `on_train_epoch_end`, and validation is not training time. Optionally
    tests after each epoch, off the clock."""

    def __init__(self, evaluate: Callable[[nn.Module], float] | None = None) -> None:
        self.evaluate, self.rows, self.trained_images, self.trained_seconds = evaluate, [], 0, 0.0

    def on_train_epoch_end(self, trainer: L.Trainer, module: L.LightningModule) -> None:
        seconds = self.epoch_seconds()
        self.trained_seconds += seconds
        self.trained_images += self.images
        row = {
            "epoch": trainer.current_epoch + 1,
            "train_seconds": round(self.trained_seconds, 2),
            "images_per_second": round(self.images / seconds),
        }
        if self.evaluate is not None:
            row["test_acc"] = self.evaluate(module)
        self.rows.append(row)


def _busy_seconds(events: Any) -> float:
    """The time a GPU was doing anything (a kernel, a copy) among profiler events: the union of their
    intervals, so work overlapping on several streams counts once."""
    intervals = sorted(
        (e.time_range.start, e.time_range.end)
        for e in events
        if e.device_type == torch.autograd.DeviceType.CUDA and e.time_range.end > e.time_range.start
    )
    busy, until = 0.0, float("-inf")
    for start, end in intervals:
        if end > until:
            busy += end - max(start, until)
            until = end
    return busy / 1e6  # the profiler counts microseconds


class StepWindow:
    """torch.profiler over `steps` consecutive training steps after the first `skip`: the wall time per
    step against the time the GPU was busy in it, and the operators that took the time. A GPU busy for
    nearly the whole step is the limit; one idle for much of it waits for the host (Python, launches,
    copies)."""

    def __init__(self, skip: int, steps: int) -> None:
        self.skip, self.steps = skip, steps
        self.result: dict[str, Any] | None = None
        self._profile: torch.profiler.profile | None = None
        self._start = 0.0

    def begin(self, step: int, device: torch.device) -> None:
        if step != self.skip or self.result is not None:
            return
        synchronize(device)
        activities = [torch.profiler.ProfilerActivity.CPU]
        if device.type == "cuda":
            activities.append(torch.profiler.ProfilerActivity.CUDA)
        self._profile = torch.profiler.profile(activities=activities)
        self._profile.start()
        self._start = time.perf_counter()

    def end(self, step: int, device: torch.device) -> None:
        if self._profile is None or step != self.skip + self.steps - 1:
            return
        synchronize(device)
        wall = time.perf_counter() - self._start
        self._profile.stop()
        events = self._profile.events()
        averages = self._profile.key_averages()
        sort_by = "self_cpu_time_total"
        if device.type == "cuda":
            new_name = bool(averages) and hasattr(averages[0], "self_device_time_total")  # torch >= 2.4
            sort_by = "self_device_time_total" if new_name else "self_cuda_time_total"
        busy = _busy_seconds(events) if device.type == "cuda" else None
        self.result = {
            "steps": self.steps,
            "first_step": self.skip,
            "wall_ms_per_step": round(1000 * wall / self.steps, 3),
            "gpu_busy_ms_per_step": None if busy is None else round(1000 * busy / self.steps, 3),
            "gpu_busy_share": None if busy is None else round(busy / wall, 3),
            "top_operators": averages.table(sort_by=sort_by, row_limit=20, max_name_column_width=60),
        }
        self._profile = None


class WindowCallback(L.Callback):
    """Runs a StepWindow over the training steps of one epoch of a Lightning fit."""

    def __init__(self, window: StepWindow, epoch: int) -> None:
        self.window, self.epoch = window, epoch

    def on_train_batch_start(self, trainer: L.Trainer, module: L.LightningModule, batch: Any, batch_idx: int):
        if trainer.current_epoch == self.epoch:
            self.window.begin(batch_idx, module.device)

    def on_train_batch_end(self, trainer, module, outputs, batch, batch_idx: int) -> None:
        if trainer.current_epoch == self.epoch:
            self.window.end(batch_idx, module.device)


def device_of(cfg: DictConfig) -> torch.device:
    """The device src.train's trainer runs a one-device config on: the (first) GPU for a GPU trainer."""
    return torch.device("cuda") if str(cfg.trainer.accelerator) in ("gpu", "cuda") else torch.device("cpu")


def autocast(device: torch.device, precision: Any) -> contextlib.AbstractContextManager:
    """What Lightning's precision plugin wraps the forward pass in, for the bare loop."""
    if str(precision) in ("32-true", "32"):
        return contextlib.nullcontext()
    if str(precision) == "bf16-mixed":
        return torch.autocast(device.type, dtype=torch.bfloat16)
    raise UserError(f"the bare loop runs trainer.precision=32-true or bf16-mixed, not {precision}")


def synchronize(device: torch.device) -> None:
    """Wait for the device's queued work (a GPU runs asynchronously: the clock must include it)."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def on_device(batch: tuple[torch.Tensor, torch.Tensor], device: torch.device) -> tuple[torch.Tensor, ...]:
    """A batch moved as Lightning moves it (a no-op when the datamodule serves it from the device)."""
    return tuple(t.to(device, non_blocking=device.type == "cuda") for t in batch)


@torch.no_grad()
def evaluate(model: nn.Module, datamodule: L.LightningDataModule, split: str = "test",
             memory_format: torch.memory_format = torch.contiguous_format,
             device: torch.device = CPU, precision: Any = "32-true") -> tuple[float, int]:  # fmt: skip
    """Accuracy of `model` on a split, and the number of images: the bare evaluation loop."""
    was_training = model.training
    model.eval()
    correct = torch.zeros((), dtype=torch.long, device=device)
    total = 0
    for batch in datamodule.loader(split):
        images, labels = on_device(batch, device)
        inputs = datamodule.to_model_input(images, train=False).contiguous(memory_format=memory_format)
        with autocast(device, precision):
            logits = model(inputs)
        correct += (logits.argmax(1) == labels).sum()
        total += len(labels)
    model.train(was_training)
    return int(correct) / total, total


# ------------------------------------------------------------------------------------- accuracy
def run_accuracy(experiment: str, overrides: list[str]) -> dict[str, Any]:
    cfg = bench_config(experiment, ["callbacks.progress_bar=null", *overrides], f"accuracy_{experiment}")
    datamodule, module, trainer = prepare(cfg)
    clock = EpochClock(lambda m: round(evaluate(m, datamodule)[0], 4))
    trainer.callbacks.append(clock)
    trainer.fit(module, datamodule=datamodule)
    reached = {f"{t:.1%}": next((r["train_seconds"] for r in clock.rows if r["test_acc"] >= t), None)
               for t in TARGETS}  # fmt: skip
    return {
        "experiment": experiment,
        "overrides": overrides,
        "final_test_acc": clock.rows[-1]["test_acc"],
        "best_test_acc": max(r["test_acc"] for r in clock.rows),
        "epochs": len(clock.rows),
        "train_seconds": round(clock.trained_seconds, 2),
        "train_images_per_second": round(clock.trained_images / clock.trained_seconds),
        "train_images": clock.trained_images,
        "seconds_to_test_acc": reached,
        "per_epoch": clock.rows,
        "batch_size": cfg.data.batch_size,
    }


def accuracy_markdown(results: list[dict[str, Any]]) -> list[str]:
    header = "| experiment | final test acc | epochs | train time | images/s | training time to test acc |"
    lines = [header, "|---|---|---|---|---|---|"]
    for r in results:
        to_target = ", ".join(f"{k}: {v:.1f} s" if v is not None else f"{k}: not reached"
                              for k, v in r["seconds_to_test_acc"].items())  # fmt: skip
        lines.append(
            f"| `{r['experiment']}` | {r['final_test_acc']:.2%} | {r['epochs']} | "
            f"{r['train_seconds']:.1f} s | {r['train_images_per_second']:,} | {to_target} |"
        )
    return lines


# ---------------------------------------------------------------------------------------- speed
# The rows of `python -m src.bench speed`: our recipe at three batch sizes, and the seed's recipe
# (experiment, batch size; None: the experiment's own).
SPEED_ROWS: tuple[tuple[str, int | None], ...] = (
    ("lenet5_mnist", 64),
    ("lenet5_mnist", 128),
    ("lenet5_mnist", 256),
    ("seed_lenet5_mnist", None),
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
        with autocast(device, precision):
            loss = criterion(model(inputs), labels)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        if scheduler is not None:
            scheduler.step()
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


def bare_training(cfg: DictConfig, window: StepWindow | None = None) -> dict[str, float]:
    """The same for the bare loop: the same network, optimizer, schedule, loss, datamodule and batches,
    on the same device (batches served from the GPU's memory as for src.train, `data.keep_on_device`),
    in the same precision, with cuDNN's benchmark mode as the trainer set it; then the same validation
    and test splits evaluated. `window` profiles some steps of the warm epoch."""
    datamodule, module, _ = prepare(cfg)  # its Trainer sets torch.backends.cudnn.benchmark as src.train's
    device, precision = device_of(cfg), cfg.trainer.get("precision", "32-true")
    model = module.model.to(device)  # already in the module's memory format
    datamodule.batch_device = device
    memory_format = torch.channels_last if cfg.module.channels_last else torch.contiguous_format
    optimizer = instantiate(cfg.optimizer)(params=model.parameters())
    scheduler = bare_schedule(cfg, optimizer, 2 * len(datamodule.train_dataloader()))
    criterion = nn.CrossEntropyLoss(label_smoothing=cfg.module.get("label_smoothing", 0.0))
    loop = (model, datamodule, optimizer, memory_format, criterion, scheduler, device, precision)
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


# -------------------------------------------------------------------------------------- startup
# What `python -m src.bench startup` times, each the best of `repeats` runs of a fresh interpreter:
# the mistakes the config check answers (exit status 2), the answer to a missing dataset, src.summary,
# and src.train debug=fast (end to end, and up to its first training batch).
MISTAKES: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("unknown group choice", ("pooling=median",)),
    ("unknown key", ("trainer.max_epoch=3",)),
    ("wrong type", ("data.batch_size=abc",)),
    ("out of range", ("optimizer.lr=-1",)),
    ("input too small", ("model.input_size=8",)),
    ("missing resume directory", ("resume=outputs/train/runs/no-such-run",)),
    ("misspelled optimized_metric", ("optimized_metric=val/accuracy",)),
)
IMPORTS = (("import torch", "import torch"), ("import src, lightning", "import src, lightning"))
# Put on the PYTHONPATH of the timed run: a callback that notes when the first training batch starts
# (CLOCK_MONOTONIC is one clock for all processes). Outside the project, so that it times any checkout.
FIRST_BATCH_CLOCK = """
import time

from lightning.pytorch.callbacks import Callback


class FirstBatchClock(Callback):
    def __init__(self, path):
        self.path = path

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx):
        if batch_idx == 0 and trainer.current_epoch == 0:
            with open(self.path, "a") as handle:
                handle.write(f"{time.monotonic()}\\n")
"""


def timed(command: list[str], root: Path, env: dict[str, str] | None = None) -> tuple[float, int, str]:
    """Wall seconds of a fresh process (from before it starts to its exit), its exit status and the
    last line of its stderr."""
    start = time.monotonic()
    done = subprocess.run(
        command, cwd=root, capture_output=True, text=True, env={**os.environ, **(env or {})}
    )
    seconds = time.monotonic() - start
    last = (done.stderr.strip().splitlines() or [""])[-1]
    return seconds, done.returncode, last


def best_of(
    repeats: int, command: list[str], root: Path, expect: int, env: dict[str, str] | None = None
) -> dict[str, Any]:
    """The best of `repeats` runs; a run that does not end with `expect` is an error (one line)."""
    runs = [timed(command, root, env) for _ in range(repeats)]
    for _, code, last in runs:
        if code != expect:
            raise UserError(f"`{' '.join(command[1:])}` in {root} ended with {code}, not {expect}: {last}")
    return {
        "seconds": round(min(r[0] for r in runs), 3),
        "all": [round(r[0], 3) for r in runs],
        "answer": runs[0][2],
    }


def importtime_top(
    command: list[str], root: Path, env: dict[str, str] | None = None, top: int = 8
) -> list[dict[str, Any]]:
    """`python -X importtime <command>`: the top-level imports with the largest cumulative times."""
    done = subprocess.run(
        [command[0], "-X", "importtime", *command[1:]],
        cwd=root,
        capture_output=True,
        text=True,
        env={**os.environ, **(env or {})},
    )
    entries = []
    for line in done.stderr.splitlines():
        match = re.match(r"^import time:\s+(\d+) \|\s+(\d+) \| (\S+)$", line)  # one space: top level
        if match:
            entries.append({"module": match[3], "seconds": round(int(match[2]) / 1e6, 3)})
    return sorted(entries, key=lambda e: -e["seconds"])[:top]


def run_startup(
    root: Path, repeats: int = 3, overrides: Sequence[str] = (), data_dir: str | None = None
) -> dict[str, Any]:
    """Seconds to the answer, each the best of `repeats` fresh interpreters, of the checkout `root` (this
    project by default; another checkout, e.g. an older commit's, is timed with this interpreter).
    `overrides` go to the runs that read data (debug=fast, the missing dataset)."""
    python = sys.executable
    data_dir = data_dir or os.environ.get("DATA_DIR") or str(PROJECT_ROOT / "data")
    with tempfile.TemporaryDirectory(prefix="bench-startup-") as scratch:
        scratch_dir = Path(scratch)
        (scratch_dir / "empty").mkdir()
        (scratch_dir / "_first_batch_clock.py").write_text(FIRST_BATCH_CLOCK)
        quiet = [f"hydra.run.dir={scratch_dir / 'run'}", f"paths.log_dir={scratch_dir / 'outputs'}"]
        with_data = [*quiet, *overrides]
        errors = {
            name: best_of(repeats, [python, "-m", "src.train", *args, *quiet], root, expect=2)
            for name, args in MISTAKES
        }
        missing = best_of(
            repeats, [python, "-m", "src.train", "data.download=false", *with_data,
                      f"paths.cache_dir={scratch_dir / 'empty'}"], root, expect=2,
            env={"DATA_DIR": str(scratch_dir / "empty")},
        )  # fmt: skip
        imports = {name: best_of(repeats, [python, "-c", code], root, expect=0) for name, code in IMPORTS}
        summary_command = [python, "-m", "src.summary", "model=lenet5"]
        summary = best_of(repeats, summary_command, root, expect=0)
        clock_file = scratch_dir / "first_batch.txt"
        train_command = [
            python, "-m", "src.train", "debug=fast", *with_data,
            "+callbacks.first_batch_clock._target_=_first_batch_clock.FirstBatchClock",
            f"+callbacks.first_batch_clock.path={clock_file}",
        ]  # fmt: skip
        env = {
            "DATA_DIR": data_dir,
            "PYTHONPATH": os.pathsep.join(filter(None, [scratch, os.environ.get("PYTHONPATH")])),
        }
        first_batch, whole = [], []
        for _ in range(repeats):
            clock_file.unlink(missing_ok=True)
            start = time.monotonic()
            seconds, code, last = timed(train_command, root, env)
            if code != 0:
                raise UserError(f"`src.train debug=fast` in {root} ended with {code}: {last}")
            first_batch.append(float(clock_file.read_text().split()[0]) - start)
            whole.append(seconds)
        return {
            "root": str(root),
            "commit": git_commit(root),
            "errors": errors,
            "error_seconds_worst": max(e["seconds"] for e in errors.values()),
            "missing_data": missing,
            "imports": imports,
            "summary": summary,
            "train_fast_dev_run": {
                "first_batch_seconds": round(min(first_batch), 3),
                "seconds": round(min(whole), 3),
                "all": {
                    "first_batch": [round(x, 3) for x in first_batch],
                    "whole": [round(x, 3) for x in whole],
                },
            },
            "importtime_train": importtime_top(
                [python, "-m", "src.train", "debug=fast", *with_data], root, env
            ),
            "importtime_summary": importtime_top(summary_command, root),
            "repeats": repeats,
            "overrides": list(overrides),
        }


STARTUP_LABELS = ("before", "after")  # the README's columns, in this order; other labels follow


def startup_markdown(results: dict[str, dict[str, Any]]) -> list[str]:
    """One column per label (e.g. before / after): seconds to the answer, then -X importtime's top."""
    labels = sorted(results, key=lambda k: (STARTUP_LABELS.index(k) if k in STARTUP_LABELS else 99, k))
    header = (
        "| what the user runs | "
        + " | ".join(f"{label} (`{results[label].get('commit') or '?'}`)" for label in labels)
        + " |"
    )
    lines = [header, "|---|" + "---|" * len(labels)]

    def row(title: str, pick: Callable[[dict[str, Any]], Any]) -> None:
        cells = []
        for label in labels:
            try:
                cells.append(f"{pick(results[label]):.2f} s")
            except (KeyError, TypeError):
                cells.append("–")
        lines.append(f"| {title} | " + " | ".join(cells) + " |")

    for name, args in MISTAKES:
        row(f"`python -m src.train {' '.join(args)}` ({name})", lambda r, n=name: r["errors"][n]["seconds"])
    row(
        "`DATA_DIR=<empty> python -m src.train data.download=false` (no MNIST, empty cache)",
        lambda r: r["missing_data"]["seconds"],
    )
    row("`python -m src.summary model=lenet5`", lambda r: r["summary"]["seconds"])
    row(
        "`python -m src.train debug=fast`: to its first training batch",
        lambda r: r["train_fast_dev_run"]["first_batch_seconds"],
    )
    row("`python -m src.train debug=fast`: end to end", lambda r: r["train_fast_dev_run"]["seconds"])
    for name, _ in IMPORTS:
        row(f'`python -c "{name}"`', lambda r, n=name: r["imports"][n]["seconds"])
    lines += ["", "`python -X importtime`, the top-level imports with the largest cumulative times (s):", ""]
    for key, title in (("importtime_train", "src.train debug=fast"), ("importtime_summary", "src.summary")):
        for label in labels:
            entries = results[label].get(key) or []
            listed = ", ".join(f"`{e['module']}` {e['seconds']:.2f}" for e in entries)
            lines.append(f"- {title}, {label}: {listed}")
    return lines


def save_startup(label: str, result: dict[str, Any]) -> None:
    """bench/results/startup_<label>.json, and startup.md from every startup_*.json there."""
    RESULTS_DIR.mkdir(parents=True, exist_ok=True)
    command = "python -m src.bench " + " ".join(sys.argv[1:])
    write_json_atomically(
        {**result, "machine": machine(), "command": command}, RESULTS_DIR / f"startup_{label}.json"
    )
    results = {
        path.stem.removeprefix("startup_"): json.loads(path.read_text())
        for path in sorted(RESULTS_DIR.glob("startup_*.json"))
    }
    machines = [f"{name}: {machine_line(r['machine'], r['command'])}" for name, r in sorted(results.items())]
    text = "\n".join([*startup_markdown(results), "", *machines])
    (RESULTS_DIR / "startup.md").write_text(text + "\n")
    print(text, flush=True)


def git_commit(root: Path) -> str | None:
    done = subprocess.run(
        ["git", "-C", str(root), "rev-parse", "--short", "HEAD"], capture_output=True, text=True
    )
    return done.stdout.strip() or None


# ---------------------------------------------------------------------------------------- keras
# TensorFlow is not a dependency: the seed's Keras LeNet-5 runs in a throw-away uv environment.
# scripts/uv finds (or installs) uv wherever it is, as the Makefile does.
KERAS_COMMAND = [str(PROJECT_ROOT / "scripts" / "uv"), "run", "--no-project", "--python", "3.11",
                 "--with", "tensorflow-cpu==2.21.0", "python", "bench/keras_lenet5.py"]  # fmt: skip
CIFAR10_SEEDS = (42, 1, 2)


def keras_speed(data_dir: str, out: Path, extra: list[str] | None = None) -> dict[str, Any]:
    """Run bench/keras_lenet5.py (seed LeNet-5, batch 128) and return its JSON result."""
    out.parent.mkdir(parents=True, exist_ok=True)
    command = [*KERAS_COMMAND, "--data-dir", data_dir, "--out", str(out), *(extra or [])]
    done = subprocess.run(command, cwd=PROJECT_ROOT, capture_output=True, text=True)
    if done.returncode != 0:
        last = (done.stderr.strip().splitlines() or ["(no output)"])[-1]
        raise UserError(f"the Keras benchmark failed ({' '.join(command)}): {last}")
    return json.loads(out.read_text())


def run_keras(overrides: list[str], keras_extra: list[str] | None = None, repeats: int = 3) -> dict[str, Any]:
    """Training images/s of the seed's LeNet-5 in Keras beside the same recipe here, bare and src.train,
    and beside our own recipe (ReLU, max pooling, batch 256) through src.train."""
    seed = bench_config("seed_lenet5_mnist", overrides, "keras_seed")
    ours = bench_config("lenet5_mnist", overrides, "keras_ours")
    keras = keras_speed(str(seed.data.data_dir), OUTPUT_DIR / "keras_raw.json", keras_extra)
    runs = {"bare": [], "seed": [], "ours": []}
    for _ in range(repeats):  # Keras: its best of 3 warm epochs; here: the best of `repeats`, interleaved
        runs["bare"].append(bare_training(seed)["train"])
        runs["seed"].append(lightning_training(seed)["train"])
        runs["ours"].append(lightning_training(ours)["train"])
    rows = [
        ("seed LeNet-5 (tanh, average pooling, Adam)", f"Keras {keras['keras']} / TensorFlow "
         f"{keras['tensorflow']} CPU, `model.fit`", 128, keras["images_per_second"]),
        ("the same network and recipe", "bare PyTorch loop", seed.data.batch_size, max(runs["bare"])),
        ("the same network and recipe", "src.train `experiment=seed_lenet5_mnist`", seed.data.batch_size,
         max(runs["seed"])),
        ("our recipe (ReLU, max pooling, one-cycle)", "src.train `experiment=lenet5_mnist`",
         ours.data.batch_size, max(runs["ours"])),
    ]  # fmt: skip
    return {
        "keras": keras,
        "all_runs": runs,
        "cifar10": run_keras_cifar10(overrides, keras_extra),
        "rows": [
            {
                "recipe": r,
                "framework": f,
                "batch_size": b,
                "images_per_second": round(v),
                "vs_keras": round(v / keras["images_per_second"], 3),
            }
            for r, f, b, v in rows
        ],  # fmt: skip
    }


def fit_and_test(cfg: DictConfig) -> dict[str, float]:
    """A whole src.train run (fit, then test the last weights): test accuracy and the images/s of the
    last training epoch."""
    datamodule, module, trainer = prepare(cfg)
    clock = EpochClock()
    trainer.callbacks.append(clock)
    trainer.fit(module, datamodule=datamodule)
    trainer.test(module, datamodule=datamodule, verbose=False)
    acc = float(trainer.callback_metrics["test/acc"])
    return {"test_acc": round(acc, 4), "images_per_second": clock.rows[-1]["images_per_second"]}


def mean_std(values: list[float]) -> tuple[float, float]:
    mean = sum(values) / len(values)
    spread = (sum((v - mean) ** 2 for v in values) / (len(values) - 1)) ** 0.5 if len(values) > 1 else 0.0
    return mean, spread


def run_keras_cifar10(overrides: list[str], keras_extra: list[str] | None = None) -> dict[str, Any]:
    """The seed's CIFAR-10 run (tanh, average pooling, Adam, batch 128, 2 epochs, all 50,000 training
    images) in Keras and through src.train `experiment=seed_lenet5_cifar10`, for each of CIFAR10_SEEDS."""
    first = bench_config("seed_lenet5_cifar10", overrides, "keras_cifar10")
    data_dir = Path(str(first.data.data_dir))
    if not any((data_dir / name).exists() for name in ("cifar-10-python.tar.gz", "cifar-10-batches-py")):
        return {"skipped": f"no CIFAR-10 in {data_dir}"}
    epochs = ["--epochs", str(first.trainer.max_epochs), "--batch-size", str(first.data.batch_size)]
    keras_runs, ours = [], []
    for seed in CIFAR10_SEEDS:  # interleaved, as everywhere in this benchmark
        extra = ["--dataset", "cifar10", *epochs, "--seed", str(seed), *(keras_extra or [])]
        keras = keras_speed(str(data_dir), OUTPUT_DIR / f"keras_cifar10_{seed}.json", extra)
        keras_runs.append(keras)
        cfg = bench_config("seed_lenet5_cifar10", [*overrides, f"seed={seed}"], f"keras_cifar10_{seed}")
        ours.append(fit_and_test(cfg))
    keras_name = f"Keras {keras_runs[0]['keras']} / TensorFlow {keras_runs[0]['tensorflow']} CPU, `model.fit`"
    keras_results = [
        {"test_acc": k["test_acc_after_epochs"], "images_per_second": k["images_per_second"]}
        for k in keras_runs
    ]
    rows = [
        cifar10_row(keras_name, keras_results),
        cifar10_row("src.train `experiment=seed_lenet5_cifar10`", ours),
    ]
    for row in rows:
        row["vs_keras"] = round(row["images_per_second"] / rows[0]["images_per_second"], 3)
    return {
        "seeds": list(CIFAR10_SEEDS),
        "epochs": int(first.trainer.max_epochs),
        "batch_size": int(first.data.batch_size),
        "keras_runs": keras_runs,
        "ours": ours,
        "rows": rows,
    }


def cifar10_row(framework: str, runs: list[dict[str, float]]) -> dict[str, Any]:
    """Test accuracy over the seeds (mean, std, each) and the best training images/s."""
    mean, std = mean_std([r["test_acc"] for r in runs])
    return {
        "framework": framework,
        "test_acc_mean": round(mean, 4),
        "test_acc_std": round(std, 4),
        "test_acc": [r["test_acc"] for r in runs],
        "images_per_second": max(r["images_per_second"] for r in runs),
    }


def keras_markdown(result: dict[str, Any]) -> list[str]:
    lines = ["| recipe | framework | batch | training images/s | × Keras |", "|---|---|---|---|---|"]
    for r in result["rows"]:
        lines.append(f"| {r['recipe']} | {r['framework']} | {r['batch_size']} | "
                     f"{r['images_per_second']:,} | {r['vs_keras']:.2f} |")  # fmt: skip
    cifar = result.get("cifar10") or {}
    if "rows" not in cifar:
        return [*lines, "", f"CIFAR-10: {cifar.get('skipped', 'not run')}."]
    lines += [
        "",
        "The seed's CIFAR-10 run: LeNet-5 on colour 32x32 (tanh, average pooling, valid padding, Adam 1e-3), "
        f"{cifar['epochs']} epochs of all 50,000 training images, batch {cifar['batch_size']}, "
        f"seeds {', '.join(map(str, cifar['seeds']))}:",
        "",
        "| framework | test acc (mean ± std) | each seed | training images/s (best epoch) | × Keras |",
        "|---|---|---|---|---|",
    ]
    for r in cifar["rows"]:
        each = ", ".join(f"{a:.2%}" for a in r["test_acc"])
        lines.append(f"| {r['framework']} | {r['test_acc_mean']:.2%} ± {r['test_acc_std']:.2%} | {each} | "
                     f"{r['images_per_second']:,} | {r['vs_keras']:.2f} |")  # fmt: skip
    return lines


# -------------------------------------------------------------------------------------- scaling
SCALING = {  # network -> (experiment, batch sizes); AlexNet stops at 256: 1024 images of 227x227 per step
    "lenet5": ("lenet5_mnist", (32, 64, 128, 256, 512, 1024)),  # would take minutes a step here
    "alexnet": ("alexnet_flowers17", (32, 64, 128, 256)),
}


def step_images_per_second(model: nn.Module, batch: torch.Tensor, labels: torch.Tensor, steps: int) -> float:
    optimizer = torch.optim.SGD(model.parameters(), lr=1e-3, momentum=0.9)
    criterion = nn.CrossEntropyLoss()
    for index in range(steps + 1):  # the first step warms up the allocator and kernels
        if index == 1:
            start = time.perf_counter()
        loss = criterion(model(batch), labels)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
    return steps * len(labels) / (time.perf_counter() - start)


def run_scaling(overrides: list[str]) -> dict[str, Any]:
    rows = []
    for network, (experiment, batch_sizes) in SCALING.items():
        cfg = bench_config(experiment, overrides, "scaling")
        model = instantiate(cfg.model)
        size, channels = model.input_size, model.in_channels
        for threads in (1, 2):
            torch.set_num_threads(threads)
            for batch_size in batch_sizes:
                batch = torch.randn(batch_size, channels, size, size)
                labels = torch.randint(0, model.num_classes, (batch_size,))
                steps = max(2, 4096 // batch_size) if network == "lenet5" else 2
                speed = step_images_per_second(model, batch, labels, steps)
                rows.append({"network": network, "threads": threads, "batch_size": batch_size,
                             "images_per_second": round(speed, 1)})  # fmt: skip
    torch.set_num_threads(os.cpu_count() or 1)
    return {"rows": rows}


def scaling_plot(result: dict[str, Any], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, len(SCALING), figsize=(10, 4))
    for ax, network in zip(axes, SCALING, strict=True):
        for threads in (1, 2):
            rows = [r for r in result["rows"] if r["network"] == network and r["threads"] == threads]
            ax.plot([r["batch_size"] for r in rows], [r["images_per_second"] for r in rows], "o-",
                    label=f"{threads} thread{'s' if threads > 1 else ''}")  # fmt: skip
        ax.set(xscale="log", xlabel="batch size", ylabel="training images/s (bare step, NCHW)", title=network)
        ax.set_xticks(
            [r["batch_size"] for r in result["rows"] if r["network"] == network and r["threads"] == 1]
        )
        ax.xaxis.set_major_formatter(matplotlib.ticker.ScalarFormatter())
        ax.xaxis.set_minor_formatter(matplotlib.ticker.NullFormatter())
        ax.grid(alpha=0.3)
        ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def scaling_markdown(result: dict[str, Any]) -> list[str]:
    lines = ["| network | threads | " + " | ".join(f"batch {b}" for b in SCALING["lenet5"][1]) + " |",
             "|---|---|" + "---|" * len(SCALING["lenet5"][1])]  # fmt: skip
    for network in SCALING:
        for threads in (1, 2):
            speeds = {r["batch_size"]: r["images_per_second"] for r in result["rows"]
                      if r["network"] == network and r["threads"] == threads}  # fmt: skip
            cells = [f"{speeds[b]:,.0f}" if b in speeds else "–" for b in SCALING["lenet5"][1]]
            lines.append(f"| {network} | {threads} | " + " | ".join(cells) + " |")
    return lines


# ------------------------------------------------------------------------------------ gpu check
# What scripts/gpu_check.sh measures in one call on a lent GPU machine, in order of importance (a step
# that would start past the time budget is skipped, and every step's result is written as it comes).
# "tiny": the same steps on the CPU, on stand-in data, in seconds: the script's own test.
ALEXNET = "alexnet_bn_flowers17"
FLOWERS_FINAL = "alexnet_bn_flowers17_final"
GPU_CHECK: dict[str, dict[str, Any]] = {
    "full": {
        "trainer": ["trainer=gpu"],
        "ddp": ["trainer=ddp", "trainer.devices=1"],
        "mnist": {"train": 60000, "test": 10000},
        "lenet": [],
        "batches": (128, 64, 256),
        "synthetic": ["data.train_size=8192", "data.eval_size=1024"],
        "repeats": 2,
        "window": (10, 20),  # torch.profiler: 20 steps of the warm epoch, after 10
        "flowers_epochs": 6,
        "flowers": [],
    },
    "tiny": {
        "trainer": ["trainer=cpu"],
        "ddp": ["trainer=ddp_sim", "trainer.devices=1"],
        "mnist": {"train": 256, "test": 64},
        "lenet": ["data.val_size=64", "data.batch_size=32"],
        "batches": (4, 2),
        # AlexNet on 67x67 inputs (its smallest): the CPU trains it at 227x227 at a few images/s
        "synthetic": [
            "data.train_size=8",
            "data.eval_size=4",
            "data.eval_batch_size=4",
            "model.input_size=67",
        ],
        "repeats": 1,
        "window": (0, 2),
        "flowers_epochs": 2,
        "flowers": [
            "+trainer.limit_train_batches=2",
            "+trainer.limit_val_batches=1",
            "data.eval_batch_size=4",
            "model.input_size=67",
        ],  # fmt: skip
    },
}
# No checkpoints (AlexNet's are 0.5 GB, a second or more each), not even Lightning's default one: in the
# speed runs they would be written between the epochs, off the clock, costing the check time only.
NO_CHECKPOINTS = ["callbacks.model_checkpoint=null", "+trainer.enable_checkpointing=false"]
INSTRUMENTS = (
    "WindowCallback",
    "EpochClock",
    "EpochWallClock",
)  # the bench's own callbacks: not in a profile


class EpochWallClock(L.Callback):
    """Wall time of whole epochs: training, validation, checkpoints and the epoch-end callbacks."""

    def __init__(self) -> None:
        self.marks: list[float] = []

    def on_train_epoch_start(self, trainer: L.Trainer, module: L.LightningModule) -> None:
        self.marks.append(time.perf_counter())

    def on_train_end(self, trainer: L.Trainer, module: L.LightningModule) -> None:
        self.marks.append(time.perf_counter())

    def seconds(self) -> list[float]:
        return [round(b - a, 3) for a, b in zip(self.marks, self.marks[1:], strict=False)]


def profile_rows(profiler: Any, per: int, top: int, min_calls: int = 1) -> list[dict[str, Any]]:
    """Lightning's SimpleProfiler as rows: action, calls, median ms, total s, ms per `per` (a step, an
    epoch); only actions called at least `min_calls` times, the `top` largest totals."""
    rows = []
    for action, durations in profiler.recorded_durations.items():
        if len(durations) < min_calls or any(name in action for name in INSTRUMENTS):
            continue
        total = math.fsum(durations)
        name = re.sub(r"\{.*\}", "", action)  # ModelCheckpoint{'monitor': ...}.on_… -> ModelCheckpoint.on_…
        median = statistics.median(durations)
        rows.append({"action": name, "calls": len(durations), "median_ms": round(1000 * median, 3),
                     "total_s": round(total, 3), "ms_per": round(1000 * total / max(per, 1), 3)})  # fmt: skip
    return sorted(rows, key=lambda row: -row["total_s"])[:top]


def gpu_data(mode: str, data_dir: Path) -> dict[str, Any]:
    """The MNIST and Flowers-17 to use: DATA_DIR's, or stand-ins of the same files and sizes written by
    tests/tiny_data.py (MNIST: bright bars on noise; Flowers-17: 1,360 one-colour JPEGs, decoded to the
    same 256x256 tensors). A device call carries 64 MiB at most: Flowers-17's archive (57 MiB), not MNIST."""
    from src.data.mnist import MNIST_FILES
    from tests.tiny_data import make_tiny_flowers, make_tiny_mnist  # the writers of the real file formats

    standins = OUTPUT_DIR / "gpu_check_data" / mode
    raw = data_dir / "MNIST" / "raw"
    if mode == "full" and all((raw / f).is_file() or (raw / f"{f}.gz").is_file() for f in MNIST_FILES):
        mnist, mnist_kind = data_dir, "MNIST"
    else:
        size = GPU_CHECK[mode]["mnist"]
        mnist = make_tiny_mnist(standins / "mnist", size["train"], size["test"], compress=False)
        mnist_kind = f"a stand-in of MNIST's shape ({size['train']:,} + {size['test']:,} synthetic images)"
    if mode == "full" and (data_dir / "flowers17" / "17flowers.tgz").is_file():
        flowers, flowers_kind = data_dir, "Flowers-17 (17flowers.tgz)"
    else:
        flowers = standins / "flowers17"
        if not (flowers / "flowers17" / "17flowers.tgz").is_file():
            make_tiny_flowers(flowers)
        flowers_kind = "a stand-in of Flowers-17's shape (1,360 one-colour JPEGs)"
    return {
        "mnist": str(mnist),
        "mnist_kind": mnist_kind,
        "flowers": str(flowers),
        "flowers_kind": flowers_kind,
    }


def cli_run(name: str, overrides: list[str], paths: list[str], results_dir: Path) -> dict[str, Any]:
    """`python -m src.train <overrides>` as a user runs it; its metrics.json goes to <results>/<name>.json."""
    run_dir = OUTPUT_DIR / f"gpu_check_{name}"
    shutil.rmtree(run_dir, ignore_errors=True)
    command = [sys.executable, "-m", "src.train", *overrides, *paths, f"hydra.run.dir={run_dir}",
               "callbacks.progress_bar=null"]  # fmt: skip
    start = time.perf_counter()
    done = subprocess.run(command, cwd=PROJECT_ROOT, capture_output=True, text=True)
    wall = time.perf_counter() - start
    print(done.stdout[-1500:], done.stderr[-1500:], sep="\n", flush=True)
    if done.returncode != 0:
        raise UserError(f"{' '.join(command)} ended with status {done.returncode}: {done.stderr[-1500:]}")
    run = RunDir(run_dir)
    shutil.copy(run.metrics_file, results_dir / f"{name}.json")
    metrics = run.read_metrics()
    backend = re.search(r"distributed_backend=(\w+)", done.stdout + done.stderr)
    return {
        "command": "python -m src.train " + " ".join(overrides),
        "wall_seconds": round(wall, 1),
        "fit_seconds": metrics["fit_seconds"],
        "epochs": metrics["epochs"],
        "test_acc": metrics["metrics"].get("test/acc"),
        "train_images_per_second": metrics["metrics"].get("train/images_per_second"),
        "distributed_backend": backend[1] if backend else None,
    }


def alexnet_overrides(mode: str, batch: int, on_device: bool = True) -> list[str]:
    settings = GPU_CHECK[mode]
    return [*settings["trainer"], "data=synthetic", *settings["synthetic"], f"data.batch_size={batch}",
            f"data.keep_on_device={str(on_device).lower()}", *NO_CHECKPOINTS]  # fmt: skip


def alexnet_speed(mode: str, batch: int, on_device: bool = True) -> dict[str, Any]:
    """src.train against the bare loop for AlexNet on 227x227 (bf16, NHWC on a GPU), one batch size."""
    result = speed_row(
        ALEXNET, None, alexnet_overrides(mode, batch, on_device), GPU_CHECK[mode]["repeats"], extras=False
    )
    gpu = GPU_CHECK[mode]["trainer"] == ["trainer=gpu"]
    return {**result, "batches_from": "GPU memory" if on_device and gpu else "host memory"}


def alexnet_profile(mode: str, batch: int) -> dict[str, Any]:
    """Where a step's time goes: Lightning's hooks (profiler=simple), and torch.profiler's wall time per
    step against the GPU's busy time, for src.train and for the bare loop."""
    cfg = bench_config(ALEXNET, [*alexnet_overrides(mode, batch), "profiler=simple"], "gpu_check_profile")
    skip, steps = GPU_CHECK[mode]["window"]
    lightning_window, bare_window = StepWindow(skip, steps), StepWindow(skip, steps)
    _, _, trainer, clock = two_epoch_fit(cfg, lightning_window)
    per_step = trainer.num_training_batches
    bare_speed = bare_training(cfg, bare_window)["train"]
    return {
        "batch_size": batch,
        "lightning_images_per_second": clock.rows[-1]["images_per_second"],
        "bare_images_per_second": round(bare_speed),
        "hooks": profile_rows(trainer.profiler, per=2 * per_step, top=14, min_calls=2 * per_step),
        "lightning_window": lightning_window.result,
        "bare_window": bare_window.result,
    }


def flowers_epochs(mode: str, flowers_dir: str) -> dict[str, Any]:
    """Epoch time of the Flowers-17 final fit (train + val, 1,020 images an epoch): each epoch's wall
    time, its training part, and what the rest went to (profiler=simple)."""
    settings = GPU_CHECK[mode]
    extra = NO_CHECKPOINTS if mode == "tiny" else []  # on the GPU the epoch time includes its checkpoints
    epochs = f"trainer.max_epochs={settings['flowers_epochs']}"
    overrides = [*settings["trainer"], f"data.data_dir={flowers_dir}", epochs, "profiler=simple",
                 *settings["flowers"], *extra]  # fmt: skip
    cfg = bench_config(FLOWERS_FINAL, overrides, "gpu_check_flowers17")
    datamodule, module, trainer = prepare(cfg)  # decodes the archive into the cache first, off the clock
    clock, wall = EpochClock(), EpochWallClock()
    trainer.callbacks.extend([clock, wall])
    trainer.fit(module, datamodule=datamodule)
    epochs = wall.seconds()
    later = epochs[1:] or epochs
    return {
        "experiment": FLOWERS_FINAL,
        "overrides": overrides,
        "epochs": len(epochs),
        "epoch_seconds": epochs,
        "median_epoch_seconds": round(statistics.median(later), 3),  # after the first (cuDNN's search)
        "train_seconds": [
            round(r["train_seconds"] - p, 3)
            for r, p in zip(clock.rows, [0.0] + [r["train_seconds"] for r in clock.rows], strict=False)
        ],  # fmt: skip
        "train_images_per_second": [r["images_per_second"] for r in clock.rows],
        "train_images": clock.trained_images // max(len(clock.rows), 1),
        "profile": profile_rows(trainer.profiler, per=len(epochs), top=12),
    }


def run_gpu_check(
    results_dir: Path, mode: str, budget_s: float | None, only: Sequence[str] = ()
) -> dict[str, Any]:
    """Every measurement of the GPU check (or those named in `only`, e.g. to finish a check that ran out
    of time), each written to <results dir> as soon as it is done."""
    results_dir.mkdir(parents=True, exist_ok=True)
    settings, started = GPU_CHECK[mode], time.monotonic()
    if mode == "full" and not torch.cuda.is_available():
        raise UserError(
            "the GPU check needs a CUDA GPU (no GPU here: scripts/gpu_check.sh --tiny runs it on the CPU)"
        )
    data_dir = Path(os.environ.get("DATA_DIR", PROJECT_ROOT / "data")).expanduser()
    report: dict[str, Any] = {"mode": mode, "machine": machine(), "budget_s": budget_s, "steps": {}}
    if torch.cuda.is_available():
        report["machine"]["cuda"] = torch.version.cuda

    def step(name: str, measure: Callable[[], Any]) -> None:
        if only and name not in only and name != "data":
            return
        if budget_s is not None and time.monotonic() - started > budget_s:
            report["steps"][name] = {"skipped": f"over the {budget_s:.0f} s budget"}
        else:
            print(f"--- gpu check: {name} ({time.monotonic() - started:.0f} s in)", flush=True)
            start = time.perf_counter()
            try:
                report["steps"][name] = {"result": measure()}
            except Exception as error:  # one failed measurement must not lose the others
                traceback.print_exc()
                report["steps"][name] = {"error": f"{type(error).__name__}: {error}"[-3000:]}
            report["steps"][name]["seconds"] = round(time.perf_counter() - start, 1)
        write_gpu_report(report, results_dir)

    data: dict[str, Any] = {}
    step("data", lambda: data.update(gpu_data(mode, data_dir)) or dict(data))
    mnist = [
        f"data.data_dir={data.get('mnist')}",
        "data.download=false",
        f"paths.cache_dir={OUTPUT_DIR / 'gpu_check_cache'}",
    ]
    lenet = ["experiment=lenet5_mnist", "trainer.max_epochs=1", *settings["lenet"]]
    step("lenet5_gpu", lambda: cli_run("lenet5_gpu", [*lenet, *settings["trainer"]], mnist, results_dir))
    step("lenet5_ddp", lambda: cli_run("lenet5_ddp", [*lenet, *settings["ddp"]], mnist, results_dir))
    first, *others = settings["batches"]
    step(f"alexnet_b{first}", lambda: alexnet_speed(mode, first))
    step(f"alexnet_b{first}_host", lambda: alexnet_speed(mode, first, on_device=False))
    step("alexnet_profile", lambda: alexnet_profile(mode, first))
    step("flowers17_epochs", lambda: flowers_epochs(mode, data["flowers"]))
    for batch in others:
        step(f"alexnet_b{batch}", lambda batch=batch: alexnet_speed(mode, batch))
    report["seconds"] = round(time.monotonic() - started, 1)
    write_gpu_report(report, results_dir)
    return report


def _cell(value: Any, spec: str = ",.0f") -> str:
    return "–" if value is None else format(value, spec)


def _lenet_lines(ok: dict[str, Any]) -> list[str]:
    kind = ok.get("data", {}).get("mnist_kind", "?")
    lines = [f"LeNet-5 (`experiment=lenet5_mnist trainer.max_epochs=1`) on {kind}:", "",
             "| command | epochs | test acc | fit time | training images/s | backend |",
             "|---|---|---|---|---|---|"]  # fmt: skip
    for r in (ok[name] for name in ("lenet5_gpu", "lenet5_ddp") if name in ok):
        lines.append(f"| `{r['command']}` | {r['epochs']} | {_cell(r['test_acc'], '.2%')} | "
                     f"{r['fit_seconds']:.1f} s | {_cell(r['train_images_per_second'])} | "
                     f"{r['distributed_backend'] or '–'} |")  # fmt: skip
    return lines


def _speed_lines(ok: dict[str, Any], trainer: str) -> list[str]:
    speeds = sorted((r for name, r in ok.items() if name.startswith("alexnet_b")),
                    key=lambda r: (r["batch_size"], r["batches_from"]))  # fmt: skip
    if not speeds:
        return []
    lines = [f"AlexNet (`experiment={ALEXNET} data=synthetic {trainer}`: 227x227 crops of 256x256 images; "
             "no checkpoints), training images/s of a warm epoch, the best of the interleaved runs:", "",
             "| batch | batches from | src.train | bare loop | ratio | ratio of each pair |",
             "|---|---|---|---|---|---|"]  # fmt: skip
    for r in speeds:
        t, pairs = r["train_images_per_second"], ", ".join(f"{x:.3f}" for x in r["train_ratio_per_pair"])
        lines.append(f"| {r['batch_size']} | {r['batches_from']} | {t['lightning']:,} | {t['bare']:,} | "
                     f"{r['train_ratio']:.3f} | {pairs} |")  # fmt: skip
    return lines


def _profile_lines(p: dict[str, Any], first_step: int) -> tuple[list[str], list[str]]:
    lines = [f"Where a step of batch {p['batch_size']} goes: torch.profiler over steps {first_step}+ of the "
             "warm epoch (GPU busy: any kernel or copy running):", "",
             "| loop | images/s | wall ms/step | GPU busy ms/step | GPU busy share |",
             "|---|---|---|---|---|"]  # fmt: skip
    text = []
    loops = (("src.train", p["lightning_window"], p["lightning_images_per_second"]),
             ("bare loop", p["bare_window"], p["bare_images_per_second"]))  # fmt: skip
    for label, window, speed in loops:
        if window:
            lines.append(f"| {label} | {speed:,} | {window['wall_ms_per_step']:.2f} | "
                         f"{_cell(window['gpu_busy_ms_per_step'], '.2f')} | "
                         f"{_cell(window['gpu_busy_share'], '.0%')} |")  # fmt: skip
            text += [f"== torch.profiler, {label}, batch {p['batch_size']}, {window['steps']} steps",
                     window["top_operators"], ""]  # fmt: skip
    lines += ["", "src.train's step by Lightning's hooks (`profiler=simple`, host time):", "",
              "| action | calls | median ms | ms per step |", "|---|---|---|---|"]  # fmt: skip
    lines += [
        f"| `{h['action']}` | {h['calls']} | {h['median_ms']:.3f} | {h['ms_per']:.3f} |" for h in p["hooks"]
    ]
    return lines, text


def _flowers_lines(f: dict[str, Any], kind: str, trainer: str) -> list[str]:
    def each(values: list[float], spec: str) -> str:
        return ", ".join(format(v, spec) for v in values)

    lines = [f"Flowers-17 final fit (`experiment={FLOWERS_FINAL} {trainer}`) on {kind}, "
             f"{f['train_images']:,} training images an epoch: epochs of {each(f['epoch_seconds'], '.2f')} s "
             f"(median after the first {f['median_epoch_seconds']:.2f} s), of which training "
             f"{each(f['train_seconds'], '.2f')} s ({each(f['train_images_per_second'], ',')} images/s). "
             "Where an epoch goes (`profiler=simple`, host time):", "",
             "| action | calls | median ms | ms per epoch |", "|---|---|---|---|"]  # fmt: skip
    return lines + [f"| `{h['action']}` | {h['calls']} | {h['median_ms']:.3f} | {h['ms_per']:.1f} |"
                    for h in f["profile"]]  # fmt: skip


def gpu_markdown(report: dict[str, Any]) -> tuple[list[str], list[str]]:
    """The tables of the GPU check (README-ready), and torch.profiler's operator tables for profile.txt."""
    m, steps, settings = report["machine"], report["steps"], GPU_CHECK[report["mode"]]
    ok = {name: s["result"] for name, s in steps.items() if "result" in s}
    trainer = " ".join(settings["trainer"])
    cuda = f" (CUDA {m['cuda']})" if m.get("cuda") else ""
    lines = [f"# GPU check: {m['gpu'] or 'no GPU (--tiny, on the CPU)'}", "",
             f"`scripts/gpu_check.sh` on {m['date']}: {m['gpu'] or m['cpu']}; Python {m['python']}, "
             f"torch {m['torch']}{cuda}, lightning {m['lightning']}; "
             f"{report.get('seconds', '…')} s in all."]  # fmt: skip
    lines += [
        f"- **{name}**: {s.get('error') or s.get('skipped')}"
        for name, s in steps.items()
        if "result" not in s
    ]
    lines += ["", *_lenet_lines(ok), "", *_speed_lines(ok, trainer)]
    text: list[str] = []
    if "alexnet_profile" in ok:
        profile_lines, text = _profile_lines(ok["alexnet_profile"], settings["window"][0])
        lines += ["", *profile_lines]
    if "flowers17_epochs" in ok:
        kind = ok.get("data", {}).get("flowers_kind", "?")
        lines += ["", *_flowers_lines(ok["flowers17_epochs"], kind, trainer)]
    return lines, text


def write_gpu_report(report: dict[str, Any], results_dir: Path) -> None:
    """<results>/gpu_check.json, gpu_check.md and profile.txt: rewritten after every step."""
    write_json_atomically(report | {"command": "scripts/gpu_check.sh"}, results_dir / "gpu_check.json")
    lines, profile = gpu_markdown(report)
    (results_dir / "gpu_check.md").write_text("\n".join(lines) + "\n")
    if profile:
        (results_dir / "profile.txt").write_text("\n".join(profile) + "\n")


# ----------------------------------------------------------------------------------------- main
def save(suite: str, result: dict[str, Any], lines: list[str]) -> None:
    RESULTS_DIR.mkdir(parents=True, exist_ok=True)
    command = "python -m src.bench " + " ".join(sys.argv[1:])
    result = {**result, "machine": machine(), "command": command}
    write_json_atomically(result, RESULTS_DIR / f"{suite}.json")
    text = "\n".join([*lines, "", machine_line(result["machine"], command)])
    (RESULTS_DIR / f"{suite}.md").write_text(text + "\n")
    print(text, flush=True)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("suite", choices=("accuracy", "speed", "startup", "keras", "scaling", "all", "gpu"))
    parser.add_argument(
        "--experiment",
        action="append",
        help="accuracy/speed: experiment(s) to run (default: lenet5_mnist and seed_lenet5_mnist for "
        "accuracy; for speed, lenet5_mnist at batch 64, 128, 256 and seed_lenet5_mnist)",
    )
    parser.add_argument("--repeats", type=int, default=3, help="speed, startup: interleaved pairs / best of")
    parser.add_argument(
        "--root",
        type=Path,
        default=PROJECT_ROOT,
        help="startup: the checkout to time (e.g. an older commit's)",
    )
    parser.add_argument("--label", default="after", help="startup: its column, e.g. before or after")
    parser.add_argument("--results-dir", type=Path, help="gpu: where its files go (scripts/gpu_check.sh)")
    parser.add_argument(
        "--tiny", action="store_true", help="gpu: the same steps on the CPU, tiny stand-in data"
    )
    parser.add_argument("--budget-s", type=float, help="gpu: start no measurement after this many seconds")
    parser.add_argument(
        "--only", default="", help="gpu: only these measurements, e.g. flowers17_epochs,alexnet_b256"
    )
    parser.add_argument("overrides", nargs="*", help="Hydra overrides for every run")
    args = parser.parse_intermixed_args(argv)
    if args.suite == "gpu":
        with user_errors():
            mode = "tiny" if args.tiny else "full"
            only = [name for name in args.only.split(",") if name]
            report = run_gpu_check(args.results_dir or RESULTS_DIR / "gpu_check", mode, args.budget_s, only)
        failed = [name for name, s in report["steps"].items() if "error" in s]
        print("\n".join(gpu_markdown(report)[0]), flush=True)
        if failed:
            raise SystemExit(f"error: the GPU check failed in: {', '.join(failed)}")
        return
    suites = ("accuracy", "speed", "startup", "keras", "scaling") if args.suite == "all" else (args.suite,)
    with user_errors():
        if "accuracy" in suites:
            experiments = args.experiment or ["lenet5_mnist", "seed_lenet5_mnist"]
            results = [run_accuracy(e, args.overrides) for e in experiments]
            save("accuracy", {"runs": results}, accuracy_markdown(results))
        if "speed" in suites:
            rows = [(e, None) for e in args.experiment] if args.experiment else SPEED_ROWS
            result = run_speed(rows, args.overrides, args.repeats)
            save("speed", result, speed_markdown(result))
        if "startup" in suites:
            if not re.fullmatch(r"[\w-]+", args.label):
                raise UserError(f"--label={args.label} must be letters, digits, _ or -")
            save_startup(args.label, run_startup(args.root.resolve(), args.repeats, args.overrides))
        if "keras" in suites:
            result = run_keras(args.overrides)
            save("keras", result, keras_markdown(result))
        if "scaling" in suites:
            result = run_scaling(args.overrides)
            scaling_plot(result, RESULTS_DIR / "scaling.png")
            save("scaling", result, [*scaling_markdown(result), "", "![scaling](bench/results/scaling.png)"])


if __name__ == "__main__":
    main()
