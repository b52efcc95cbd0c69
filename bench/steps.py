"""`python -m bench steps`: where the time of one training step goes, src.train against a bare step.

`bench speed` compares whole epochs, which this 2-core virtual machine's noise moves by ±20 %. Here
both sides share every moment instead: during a src.train fit, after each of Lightning's training steps
a callback runs one bare step (a twin of the network and optimizer, the same batch) and times its
parts, and each of Lightning's steps is cut at its hooks into the same parts. The medians over a warm
epoch say which part of the step Lightning makes slower and by how much:

- data: fetching the next batch (Lightning: from the end of one step to the start of the next, which
  also holds its per-step bookkeeping: the learning-rate schedule, logging, the validation check);
- before: `on_train_batch_start` to the module's `training_step` (moving the batch, hooks);
- forward: the `training_step` (the network, the loss, and what the module keeps per step);
- backward: to `on_after_backward` (zeroing the gradients, the backward pass, the hooks around it);
- optimizer: to the end of `on_train_batch_end` (the optimizer's step, gradient clipping, the hooks
  of every callback after the step); the bare step also steps a per-step schedule here.

Two more comparisons, each also interleaved with bare twins:

- a plain LightningModule (`PlainClassifier`: the network, the loss, the optimizer and schedule, and
  nothing else; a Trainer with no callbacks, logger or checkpoints) trains the same recipe: its ratio to
  the bare loop is what Lightning's own loop costs, and src.train's ratio divided by it what this
  project adds on top of Lightning;
- after the fit, src.train validates and tests a few times; each evaluation batch (from the end of the
  one before: fetching, moving, the hooks, the step, the callbacks) is followed by a bare evaluation
  batch of the same split (bench.common.correct_in_batch).
"""

from __future__ import annotations

import copy
import statistics
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from functools import partial
from typing import Any

import lightning as L
import torch
from hydra.utils import instantiate
from omegaconf import DictConfig, open_dict
from torch import nn

from bench.common import bench_config, correct_in_batch, device_of, prepare
from bench.speed import bare_schedule, bare_step

PARTS = ("data", "before", "forward", "backward", "optimizer")
STAGES = ("val", "test")  # evaluation: validation and test batches
EVAL_REPEATS = 3  # trainer.validate and trainer.test calls after the fit


def durations(parts: Sequence[str], marks: Sequence[float]) -> dict[str, float]:
    """Each part's seconds: from its mark to the next (one mark more than parts)."""
    return {part: end - start for part, start, end in zip(parts, marks, marks[1:], strict=False)}


class StepParts(L.Callback):
    """Times the parts of Lightning's training steps in epoch `epoch`, and after each one a twin bare
    step on the same batch; times every validation and test batch, and after each one a bare evaluation
    batch of the same split. Append it last: its `on_*_batch_end` then end each part and batch after
    every other callback's."""

    def __init__(self, cfg: DictConfig, epoch: int = 1) -> None:
        self.cfg, self.epoch = cfg, epoch
        self.lightning: list[dict[str, float]] = []
        self.bare: list[dict[str, float]] = []
        self.eval_seconds: dict[str, dict[str, list[float]]] = {
            side: {stage: [] for stage in STAGES} for side in ("lightning", "bare")
        }
        self._marks: dict[str, float] = {}
        self._step_end: float | None = None
        self._eval_end: float | None = None

    def on_train_start(self, trainer: L.Trainer, module: L.LightningModule) -> None:
        self.model = copy.deepcopy(module.model)
        self.optimizer = instantiate(self.cfg.optimizer)(params=self.model.parameters())
        self.scheduler = bare_schedule(self.cfg, self.optimizer, trainer.estimated_stepping_batches)
        self.criterion = nn.CrossEntropyLoss(label_smoothing=self.cfg.module.get("label_smoothing", 0.0))
        self.device, self.precision = device_of(self.cfg), self.cfg.trainer.get("precision", "32-true")
        self.datamodule = trainer.datamodule
        self.batches = self._endless(self.datamodule.train_dataloader)
        self.eval_batches = {stage: self._endless(partial(self.datamodule.loader, stage)) for stage in STAGES}
        training_step = module.training_step

        def timed_training_step(*args: Any, **kwargs: Any) -> Any:
            self._marks["forward"] = time.perf_counter()
            loss = training_step(*args, **kwargs)
            self._marks["backward"] = time.perf_counter()
            return loss

        module.training_step = timed_training_step  # an instance attribute: this module only

    @staticmethod
    def _endless(loader: Callable[[], Iterable[Any]]) -> Iterator[Any]:
        while True:
            yield from loader()

    def _measuring(self, trainer: L.Trainer) -> bool:
        return trainer.current_epoch == self.epoch

    def on_train_batch_start(self, trainer, module, batch, batch_idx: int) -> None:
        now = time.perf_counter()
        if self._measuring(trainer) and self._step_end is not None and batch_idx > 0:
            self.lightning[-1]["data"] = now - self._step_end
        self._marks = {"before": now}

    def on_after_backward(self, trainer: L.Trainer, module: L.LightningModule) -> None:
        self._marks["optimizer"] = time.perf_counter()

    def on_train_batch_end(self, trainer, module, outputs, batch, batch_idx: int) -> None:
        if self._measuring(trainer):
            marks = [*(self._marks[part] for part in PARTS[1:]), time.perf_counter()]
            self.lightning.append(
                {part: b - a for part, a, b in zip(PARTS[1:], marks, marks[1:], strict=False)}
            )
            self.bare.append(self._bare_step(batch))
        self._step_end = time.perf_counter()

    def _bare_step(self, batch: tuple[torch.Tensor, torch.Tensor]) -> dict[str, float]:
        """One step of the bare loop (bench.speed.bare_training_epoch) on `batch`, in parts."""
        start = time.perf_counter()
        next(self.batches)
        marks = [start, time.perf_counter()]
        images, labels = batch
        if self.cfg.module.channels_last:
            images = images.contiguous(memory_format=torch.channels_last)
        marks.append(time.perf_counter())  # "before": the memory format only

        def mark() -> None:
            marks.append(time.perf_counter())

        bare_step(self.model, images, labels, self.criterion, self.optimizer, self.scheduler,
                  self.device, self.precision, mark)  # fmt: skip
        marks.append(time.perf_counter())
        return durations(PARTS, marks)

    # ---- evaluation: each batch from the end of the one before (a run's first batch, which also holds
    # the loop's set-up, is left out), then a bare batch of the same split
    def on_validation_batch_start(self, trainer, module, batch, batch_idx: int, *args: Any) -> None:
        if batch_idx == 0:
            self._eval_end = None

    on_test_batch_start = on_validation_batch_start

    def on_validation_batch_end(self, trainer: L.Trainer, *args: Any) -> None:
        self._eval_batch_end(trainer, "val")

    def on_test_batch_end(self, trainer: L.Trainer, *args: Any) -> None:
        self._eval_batch_end(trainer, "test")

    def _eval_batch_end(self, trainer: L.Trainer, stage: str) -> None:
        now = time.perf_counter()
        if trainer.sanity_checking or not hasattr(self, "model"):
            return
        if self._eval_end is not None:
            self.eval_seconds["lightning"][stage].append(now - self._eval_end)
            self.eval_seconds["bare"][stage].append(self._bare_eval_batch(stage))
        self._eval_end = time.perf_counter()

    def _bare_eval_batch(self, stage: str) -> float:
        """Seconds of one batch of the bare evaluation loop (bench.common.evaluate's)."""
        memory_format = torch.channels_last if self.cfg.module.channels_last else torch.contiguous_format
        self.model.eval()
        start = time.perf_counter()
        with torch.no_grad():
            correct_in_batch(self.model, self.datamodule, next(self.eval_batches[stage]), memory_format,
                             self.device, self.precision)  # fmt: skip
        seconds = time.perf_counter() - start
        self.model.train()
        return seconds


def median_ms(steps: Sequence[dict[str, float]], part: str) -> float:
    return 1000 * statistics.median(step[part] for step in steps if part in step)


class PlainClassifier(L.LightningModule):
    """The least LightningModule a recipe needs: forward, loss, the optimizer and the per-step schedule
    (made as the bare loop makes them). No logging, no metrics, no hooks of its own."""

    def __init__(self, cfg: DictConfig, network: nn.Module) -> None:
        super().__init__()
        self.cfg = cfg
        self.memory_format = torch.channels_last if cfg.module.channels_last else torch.contiguous_format
        self.model = network.to(memory_format=self.memory_format)
        self.criterion = nn.CrossEntropyLoss(label_smoothing=cfg.module.get("label_smoothing", 0.0))

    def training_step(self, batch: tuple[torch.Tensor, torch.Tensor], batch_idx: int) -> torch.Tensor:
        images, labels = batch
        return self.criterion(self.model(images.contiguous(memory_format=self.memory_format)), labels)

    def configure_optimizers(self) -> Any:
        optimizer = instantiate(self.cfg.optimizer)(params=self.parameters())
        scheduler = bare_schedule(self.cfg, optimizer, self.trainer.estimated_stepping_batches)
        if scheduler is None:
            return optimizer
        return {"optimizer": optimizer, "lr_scheduler": {"scheduler": scheduler, "interval": "step"}}


def plain_fit(
    cfg: DictConfig,
    datamodule: L.LightningDataModule,
    module_class: type[PlainClassifier] = PlainClassifier,
    parts: StepParts | None = None,
) -> StepParts:
    """Train the recipe for 2 epochs as a PlainClassifier (or `module_class`, a variant of it) under a
    Trainer with Lightning's defaults, less what src.train's `callbacks=none logger=none` also leaves out
    (checkpoints, progress bar, logger) and validation; its steps and their bare twins timed as
    src.train's are (by `parts`, a StepParts of the config's by default)."""
    L.seed_everything(cfg.seed, workers=True, verbose=False)
    parts = parts or StepParts(cfg)
    trainer = L.Trainer(
        accelerator=cfg.trainer.accelerator, devices=1, precision=cfg.trainer.get("precision", "32-true"),
        max_epochs=2, limit_val_batches=0, num_sanity_val_steps=0, logger=False, enable_checkpointing=False,
        enable_progress_bar=False, enable_model_summary=False, callbacks=[parts],
        default_root_dir=cfg.paths.output_dir,
    )  # fmt: skip
    trainer.fit(module_class(cfg, instantiate(cfg.model)), datamodule=datamodule)
    return parts


def step_medians(parts: StepParts) -> dict[str, Any]:
    """Median milliseconds per part and per whole step, both sides, and bare ÷ Lightning (step time)."""
    sides = {"lightning": [step for step in parts.lightning if "data" in step], "bare": parts.bare}
    totals = {side: round(1000 * statistics.median(sum(s.values()) for s in steps), 3)
              for side, steps in sides.items()}  # fmt: skip
    return {
        "steps": len(sides["lightning"]),
        "median_ms": {
            side: {part: round(median_ms(s, part), 3) for part in PARTS} for side, s in sides.items()
        },
        "median_step_ms": totals,
        "step_ratio": round(totals["bare"] / totals["lightning"], 3),
    }


def eval_medians(parts: StepParts) -> dict[str, Any]:
    """Per split: median milliseconds of an evaluation batch, both sides, and bare ÷ src.train."""
    result = {}
    for stage in STAGES:
        light, bare = (parts.eval_seconds[side][stage] for side in ("lightning", "bare"))
        if light:
            ms = {"lightning": 1000 * statistics.median(light), "bare": 1000 * statistics.median(bare)}
            result[stage] = {
                "batches": len(light),
                "median_batch_ms": {side: round(v, 3) for side, v in ms.items()},
                "ratio": round(ms["bare"] / ms["lightning"], 3),
            }
    return result


def steps_row(
    experiment: str, batch_size: int | None, overrides: list[str], repeats: int = 1
) -> dict[str, Any]:
    """`repeats` times, interleaved: fit the experiment for 2 epochs with a StepParts over epoch 2, then
    fit it as a PlainClassifier; after the first fit, validate and test it EVAL_REPEATS times. Median
    milliseconds per part and per batch; the best fit of each kind, and src.train ÷ plain per pair."""
    batch = [f"data.batch_size={batch_size}"] if batch_size else []
    fits, plains, evaluation = [], [], {}
    for repeat in range(repeats):
        cfg = bench_config(experiment, [*batch, *overrides], f"steps_{experiment}_{batch_size}_{repeat}")
        with open_dict(cfg):
            cfg.trainer.max_epochs = cfg.trainer.min_epochs = 2
        datamodule, module, trainer = prepare(cfg)
        parts = StepParts(cfg)
        trainer.callbacks.append(parts)
        trainer.fit(module, datamodule=datamodule)
        if repeat == 0:
            for _ in range(EVAL_REPEATS):
                trainer.validate(module, datamodule=datamodule, verbose=False)
                trainer.test(module, datamodule=datamodule, verbose=False)
            evaluation = eval_medians(parts)
        fits.append(step_medians(parts))
        plains.append(step_medians(plain_fit(cfg, datamodule)))
    best, plain = (max(runs, key=lambda run: run["step_ratio"]) for runs in (fits, plains))
    return {
        "experiment": experiment,
        "batch_size": int(cfg.data.batch_size),
        **best,
        "plain": plain,
        # images/s of src.train ÷ images/s of the plain LightningModule, from the two interleaved ratios
        "over_plain": round(best["step_ratio"] / plain["step_ratio"], 3),
        "over_plain_per_pair": [
            round(fit["step_ratio"] / reference["step_ratio"], 3)
            for fit, reference in zip(fits, plains, strict=True)
        ],
        "eval": evaluation,
    }


def run_steps(
    rows: Sequence[tuple[str, int | None]], overrides: list[str], repeats: int = 1
) -> dict[str, Any]:
    return {"repeats": repeats, "rows": [steps_row(e, b, overrides, repeats) for e, b in rows]}


def steps_markdown(result: dict[str, Any]) -> list[str]:
    header = " | ".join(f"{part}: src.train / bare" for part in PARTS)
    lines = [
        "Median milliseconds per part of a training step (a warm epoch; each src.train step followed by "
        "a bare step on the same batch; the best of the fits):",
        "",
        f"| recipe | batch | {header} | whole step: src.train / bare | bare ÷ src.train |",
        "|---|---|" + "---|" * len(PARTS) + "---|---|",
    ]
    for r in result["rows"]:
        light, bare = r["median_ms"]["lightning"], r["median_ms"]["bare"]
        cells = " | ".join(f"{light[p]:.3f} / {bare[p]:.3f}" for p in PARTS)
        total = r["median_step_ms"]
        lines.append(
            f"| `{r['experiment']}` | {r['batch_size']} | {cells} | "
            f"{total['lightning']:.3f} / {total['bare']:.3f} | {r['step_ratio']:.3f} |"
        )
    lines += [
        "",
        "Against a plain LightningModule (the network, the loss, the optimizer and schedule; no callbacks, "
        "logger or checkpoints), each fit with its own bare twins; ratios of images/s "
        f"({result['repeats']} fit{'s' * (result['repeats'] != 1)} of each, interleaved; the best of each):",
        "",
        "| recipe | batch | plain Lightning step / its bare twin (ms) | plain Lightning ÷ bare "
        "| src.train ÷ bare | src.train ÷ plain Lightning | the same, pair by pair |",
        "|---|---|---|---|---|---|---|",
    ]
    for r in result["rows"]:
        plain = r["plain"]
        light, bare = plain["median_step_ms"]["lightning"], plain["median_step_ms"]["bare"]
        pairs = ", ".join(f"{ratio:.3f}" for ratio in r["over_plain_per_pair"])
        lines.append(
            f"| `{r['experiment']}` | {r['batch_size']} | {light:.3f} / {bare:.3f} | "
            f"{plain['step_ratio']:.3f} | {r['step_ratio']:.3f} | {r['over_plain']:.3f} | {pairs} |"
        )
    lines += [
        "",
        f"Evaluation batches of src.train (the fit's validation, then {EVAL_REPEATS} trainer.validate and "
        "trainer.test calls), each followed by a bare batch of the same split; median ms:",
        "",
        "| recipe | batch (training) | validation: src.train / bare | bare ÷ src.train "
        "| test: src.train / bare | bare ÷ src.train |",
        "|---|---|---|---|---|---|",
    ]
    for r in result["rows"]:
        cells = []
        for stage in STAGES:
            e = r["eval"].get(stage)
            ms = e and e["median_batch_ms"]
            cells += [f"{ms['lightning']:.3f} / {ms['bare']:.3f}", f"{e['ratio']:.3f}"] if e else ["–", "–"]
        lines.append(f"| `{r['experiment']}` | {r['batch_size']} | " + " | ".join(cells) + " |")
    return lines
