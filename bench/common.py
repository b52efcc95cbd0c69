"""What every suite of the benchmark shares: the config of a measured run, the machine it ran on, clocks,
the bare loop's device helpers and evaluation, torch.profiler windows, and writing bench/results/."""

from __future__ import annotations

import contextlib
import datetime as dt
import os
import platform
import shutil
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import lightning as L
import torch
from lightning.pytorch.callbacks import WeightAveraging
from omegaconf import DictConfig, open_dict
from torch import nn

from src.config.compose import PROJECT_ROOT, compose_config
from src.lightning_ext.process import prepare_process
from src.training.build import build
from src.training.insight import ImagesPerSecond
from src.training.module import view_averaged
from src.utils.errors import UserError
from src.utils.files import write_json_atomically

RESULTS_DIR = PROJECT_ROOT / "bench" / "results"  # where results go unless `--results-dir` says otherwise
CPU = torch.device("cpu")


def output_dir() -> Path:
    """Where the measured runs write their files: outputs/bench, or $BENCH_OUTPUT_DIR."""
    return Path(os.environ.get("BENCH_OUTPUT_DIR", PROJECT_ROOT / "outputs" / "bench"))


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
    shutil.rmtree(output_dir() / name, ignore_errors=True)  # checkpoints of an earlier benchmark
    with open_dict(cfg):  # loggers, checkpoints and the trainer all write below paths.output_dir
        cfg.paths.output_dir = str(output_dir() / name)
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
            row["test_acc"] = evaluate_as_validation_does(trainer, module, self.evaluate)
        self.rows.append(row)


def evaluate_as_validation_does(trainer: L.Trainer, module: L.LightningModule, evaluate: Callable) -> Any:
    """`evaluate(module)` with the weights validation uses: with a weight-averaging callback (callbacks=ema)
    the averaged ones, swapped in and back by the callback's own validation hooks."""
    averaging = [c for c in trainer.callbacks if isinstance(c, WeightAveraging)]
    for callback in averaging:
        callback.on_validation_epoch_start(trainer, module)
    try:
        return evaluate(module)
    finally:
        for callback in reversed(averaging):
            callback.on_validation_epoch_end(trainer, module)


def is_annotation(event: Any) -> bool:
    """A named range on the GPU's timeline (`Optimizer.step#SGD.step`, `ProfilerStep#3`, record_function
    blocks), not work: it spans the kernels inside it and whatever idle time lies between them."""
    return bool(getattr(event, "is_user_annotation", False)) or "#" in getattr(event, "name", "")


def gpu_busy_seconds(events: Any) -> float:
    """The time a GPU was doing anything (a kernel, a copy) among profiler events: the union of their
    intervals, so work overlapping on several streams counts once; annotations are not work."""
    intervals = sorted(
        (e.time_range.start, e.time_range.end)
        for e in events
        if e.device_type == torch.autograd.DeviceType.CUDA
        and e.time_range.end > e.time_range.start
        and not is_annotation(e)
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
        busy = gpu_busy_seconds(events) if device.type == "cuda" else None
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


def correct_in_batch(model: nn.Module, datamodule: L.LightningDataModule, batch: Any,
                     memory_format: torch.memory_format = torch.contiguous_format,
                     device: torch.device = CPU, precision: Any = "32-true",
                     first_view: bool = False) -> torch.Tensor:  # fmt: skip
    """One batch of the bare evaluation loop (`model` in eval mode, gradients off): the number of images
    it classifies correctly, on the device. Several views of an image (data.flip_eval, ten crops) are
    averaged as the LightningModule does; `first_view`: each image's first view only."""
    images, labels = on_device(batch, device)
    inputs = datamodule.to_model_input(images, train=False)
    if first_view and inputs.ndim == 5:
        inputs = inputs[:, 0]
    with autocast(device, precision):
        logits = view_averaged(lambda x: model(x.contiguous(memory_format=memory_format)), inputs)
    return (logits.argmax(1) == labels).sum()


@torch.no_grad()
def evaluate(model: nn.Module, datamodule: L.LightningDataModule, split: str = "test",
             memory_format: torch.memory_format = torch.contiguous_format,
             device: torch.device = CPU, precision: Any = "32-true",
             first_view: bool = False) -> tuple[float, int]:  # fmt: skip
    """Accuracy of `model` on a split, and the number of images: the bare evaluation loop."""
    was_training = model.training
    model.eval()
    correct = torch.zeros((), dtype=torch.long, device=device)
    total = 0
    for batch in datamodule.loader(split):
        correct += correct_in_batch(model, datamodule, batch, memory_format, device, precision, first_view)
        total += len(batch[1])
    model.train(was_training)
    return int(correct) / total, total


def save(suite: str, result: dict[str, Any], lines: list[str], results_dir: Path = RESULTS_DIR) -> None:
    """<results_dir>/<suite>.json and .md, with the machine and the command; the markdown printed."""
    results_dir.mkdir(parents=True, exist_ok=True)
    command = "python -m bench " + " ".join(sys.argv[1:])
    result = {**result, "machine": machine(), "command": command}
    write_json_atomically(result, results_dir / f"{suite}.json")
    text = "\n".join([*lines, "", machine_line(result["machine"], command)])
    (results_dir / f"{suite}.md").write_text(text + "\n")
    print(text, flush=True)
