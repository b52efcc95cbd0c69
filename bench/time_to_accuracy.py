"""`python -m bench time_to_accuracy`: how many training images, and how many training seconds, until a
recipe's test accuracy first reaches each threshold, over several seeds (mean ± std), and its final
accuracy; a plot of test accuracy against images seen.

The recipe trains through src.train's own code (bench.common.prepare). Every `every` training images the
test split is evaluated off the clock, with the weights validation uses (the averaged ones under
callbacks=ema). The clock counts training steps only: not these tests, not Lightning's validation.
Variants (`--variant NAME=override,override`) are the recipe with changes, for an ablation table;
`--bare` adds the recipe in the bare loop of bench/speed.py (same network, batches, optimizer, schedule
and loss, no Lightning), tested the same way.
"""

from __future__ import annotations

import statistics
import time
from pathlib import Path
from typing import Any

import lightning as L
import torch
from torch import nn

from bench.common import (
    bench_config,
    evaluate,
    evaluate_as_validation_does,
    on_device,
    prepare,
    synchronize,
)
from bench.speed import bare_loop, bare_step

# Per experiment: the thresholds of the test accuracy, and how often (training images) it is tested.
RECIPES: dict[str, dict[str, Any]] = {
    "lenet5_mnist": {"thresholds": (0.99, 0.992, 0.993), "every": 5_000},
    "lenet5_mnist_one_epoch": {"thresholds": (0.98, 0.985, 0.99), "every": 5_000},
    "lenet5_cifar10": {"thresholds": (0.70, 0.75, 0.78, 0.80), "every": 45_000},
}


def test_accuracies(model: nn.Module, datamodule: L.LightningDataModule, **options: Any) -> dict[str, float]:
    """The test accuracy (with the datamodule's test views); with data.flip_eval or data.shift_eval also
    the accuracy of each image alone, without its mirror image or shifted copies (the one-view accuracy)."""
    accuracies = {"test_acc": evaluate(model, datamodule, **options)[0]}
    if getattr(datamodule, "flip_eval", False) or getattr(datamodule, "shift_eval", 0):
        accuracies["test_acc_one_view"] = evaluate(model, datamodule, first_view=True, **options)[0]
    return accuracies


class TestTimeline(L.Callback):
    """Tests the model every `every` training images (and after the last step), off the clock; keeps
    (images, training seconds, test accuracy) points."""

    def __init__(self, datamodule: L.LightningDataModule, every: int) -> None:
        self.datamodule, self.every = datamodule, every
        self.points: list[dict[str, float]] = []
        self.images, self.seconds, self.last_tested = 0, 0.0, 0
        self._started: float | None = None  # the running step's start
        self._since: float | None = None  # the previous step's end, within an epoch and after no test

    def _now(self, module: L.LightningModule) -> float:
        if module.device.type == "cuda":
            torch.cuda.synchronize(module.device)  # the queued kernels belong to the step
        return time.perf_counter()

    def on_train_epoch_start(self, trainer: L.Trainer, module: L.LightningModule) -> None:
        self._since = None  # the time since the previous epoch's last step was validation's

    def on_train_batch_start(self, trainer, module, batch, batch_idx) -> None:  # noqa: ANN001
        now = self._now(module)
        if self._since is not None:  # fetching this batch: training time too
            self.seconds += now - self._since
        self._started = now

    def on_train_batch_end(self, trainer, module, outputs, batch, batch_idx) -> None:  # noqa: ANN001
        assert self._started is not None
        self.seconds += self._now(module) - self._started
        self.images += len(batch[1])
        self._since = time.perf_counter()
        if self.images - self.last_tested >= self.every:
            self._test(trainer, module)

    def on_train_end(self, trainer: L.Trainer, module: L.LightningModule) -> None:
        if self.images != self.last_tested:
            self._test(trainer, module)

    def _accuracies(self, module: L.LightningModule) -> dict[str, float]:
        return test_accuracies(module, self.datamodule)

    def _test(self, trainer: L.Trainer, module: L.LightningModule) -> None:
        accuracies = evaluate_as_validation_does(trainer, module, self._accuracies)
        self.points.append({"images": self.images, "seconds": round(self.seconds, 3), **accuracies})
        self.last_tested = self.images
        self._since = None  # the test is not training time


def run_one(experiment: str, overrides: list[str], seed: int, every: int) -> dict[str, Any]:
    """One training run of the recipe with `seed`: its timeline of test accuracies."""
    cfg = bench_config(experiment, ["callbacks.progress_bar=null", f"seed={seed}", *overrides],
                       f"time_to_accuracy_{experiment}")  # fmt: skip
    datamodule, module, trainer = prepare(cfg)
    datamodule.setup("test")
    timeline = TestTimeline(datamodule, every)
    trainer.callbacks.append(timeline)  # type: ignore[attr-defined]
    trainer.fit(module, datamodule=datamodule)
    return {"seed": seed, "epochs": int(cfg.trainer.max_epochs), "points": timeline.points}


def run_bare(experiment: str, overrides: list[str], seed: int, every: int) -> dict[str, Any]:
    """The same recipe and seed in the bare loop (bench/speed.py: the same network, datamodule, batches,
    optimizer, schedule and loss, none of Lightning), tested the same way: its timeline."""
    cfg = bench_config(experiment, [f"seed={seed}", *overrides], f"time_to_accuracy_bare_{experiment}")
    epochs = int(cfg.trainer.max_epochs)
    loop = bare_loop(cfg, epochs)
    model, datamodule, optimizer, memory_format, criterion, scheduler, device, precision = loop
    datamodule.setup("test")
    points: list[dict[str, float]] = []
    images, seconds = 0, 0.0

    def test() -> None:  # off the clock
        options = dict(memory_format=memory_format, device=device, precision=precision)
        accuracies = test_accuracies(model, datamodule, **options)
        points.append({"images": images, "seconds": round(seconds, 3), **accuracies})

    for _ in range(epochs):
        model.train()
        for batch in datamodule.train_dataloader():
            synchronize(device)
            start = time.perf_counter()
            inputs, labels = on_device(batch, device)
            inputs = datamodule.to_model_input(inputs, train=True).contiguous(memory_format=memory_format)
            bare_step(model, inputs, labels, criterion, optimizer, scheduler, device, precision)
            synchronize(device)
            seconds += time.perf_counter() - start
            images += len(labels)
            if images - (points[-1]["images"] if points else 0) >= every:
                test()
    if not points or points[-1]["images"] != images:
        test()
    return {"seed": seed, "epochs": epochs, "points": points}


def first_reaching(points: list[dict[str, float]], threshold: float) -> dict[str, float] | None:
    return next((p for p in points if p["test_acc"] >= threshold), None)


def mean_std(values: list[float]) -> tuple[float, float]:
    return statistics.fmean(values), statistics.stdev(values) if len(values) > 1 else 0.0


def summarise(name: str, experiment: str, runs: list[dict[str, Any]], thresholds: tuple) -> dict[str, Any]:
    """Mean ± std over the seeds: final accuracy, and images and seconds to each threshold (over the
    seeds that reached it; `reached` says how many did)."""
    row: dict[str, Any] = {"variant": name, "experiment": experiment, "seeds": [r["seed"] for r in runs]}
    row["final_test_acc"] = mean_std([r["points"][-1]["test_acc"] for r in runs])
    if all("test_acc_one_view" in r["points"][-1] for r in runs):  # flip/shift_eval: the image alone
        row["final_test_acc_one_view"] = mean_std([r["points"][-1]["test_acc_one_view"] for r in runs])
    row["train_images"] = runs[0]["points"][-1]["images"]
    row["train_seconds"] = mean_std([r["points"][-1]["seconds"] for r in runs])
    for threshold in thresholds:
        hits = [hit for r in runs if (hit := first_reaching(r["points"], threshold))]
        row[f"{threshold:.1%}"] = {
            "reached": len(hits),
            "images": mean_std([h["images"] for h in hits]) if hits else None,
            "seconds": mean_std([h["seconds"] for h in hits]) if hits else None,
        }
    return row


def run_time_to_accuracy(
    experiment: str,
    overrides: list[str],
    seeds: list[int],
    variants: dict[str, list[str]],
    every: int | None = None,
    bare: bool = False,
) -> dict[str, Any]:
    recipe = RECIPES.get(experiment, {"thresholds": (0.5, 0.75, 0.9), "every": 10_000})
    thresholds, every = tuple(recipe["thresholds"]), int(every or recipe["every"])
    rows, runs = [], {}
    for changes in variants.values():  # a mistake in any variant is an error before the first run
        bench_config(experiment, [*overrides, *changes], f"time_to_accuracy_{experiment}")
    for name, changes in {"recipe": [], **variants}.items():
        runs[name] = [run_one(experiment, [*overrides, *changes], seed, every) for seed in seeds]
        rows.append(summarise(name, experiment, runs[name], thresholds) | {"overrides": changes})
    if bare:  # the recipe without Lightning: what src.train's path costs in images and seconds
        runs["bare loop"] = [run_bare(experiment, overrides, seed, every) for seed in seeds]
        rows.append(summarise("bare loop", experiment, runs["bare loop"], thresholds) | {"overrides": []})
    return {"experiment": experiment, "thresholds": thresholds, "every": every, "rows": rows, "runs": runs,
            "overrides": overrides}  # fmt: skip


def _pm(value: tuple[float, float] | None, form: str) -> str:
    return "–" if value is None else f"{value[0]:{form}} ± {value[1]:{form}}"


def time_to_accuracy_markdown(result: dict[str, Any]) -> list[str]:
    thresholds = [f"{t:.1%}" for t in result["thresholds"]]
    one_view = any("final_test_acc_one_view" in row for row in result["rows"])
    columns = ["variant", "final test acc", *(["one view"] if one_view else []), "images", "train s"]
    header = "| " + " | ".join([*columns, *(f"to {t}: images, s" for t in thresholds)])
    lines = [
        f"`{result['experiment']}`, test accuracy every {result['every']:,} training images, "
        f"{len(result['rows'][0]['seeds'])} seeds (mean ± std; where not every seed reached a threshold, "
        "the count says how many did):",
        "",
        header + " |",
        "|---" * (4 + one_view + len(thresholds)) + "|",
    ]
    for row in result["rows"]:
        final = row["final_test_acc"]
        name = row["variant"] + (f" (`{' '.join(row['overrides'])}`)" if row["overrides"] else "")
        cells = [name, f"{final[0]:.2%} ± {final[1]:.2%}"]
        if one_view:
            cells.append(_pm(row.get("final_test_acc_one_view"), ".2%"))
        cells += [f"{row['train_images']:,}", _pm(row["train_seconds"], ".1f")]
        for t in thresholds:
            hit, seeds = row[t], len(row["seeds"])
            text = (
                f"{_pm(hit['images'], ',.0f')}, {_pm(hit['seconds'], '.1f')}"
                if hit["reached"]
                else "not reached"
            )
            cells.append(text if hit["reached"] in (0, seeds) else f"{text} ({hit['reached']}/{seeds})")
        lines.append("| " + " | ".join(cells) + " |")
    return lines


def time_to_accuracy_plot(result: dict[str, Any], path: Path) -> None:
    import matplotlib  # deferred: matplotlib only for the plot

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt  # deferred: after choosing the backend

    fig, ax = plt.subplots(figsize=(7, 4))
    for colour, (name, runs) in enumerate(result["runs"].items()):
        for index, run in enumerate(runs):
            points = run["points"]
            ax.plot([p["images"] for p in points], [p["test_acc"] for p in points], color=f"C{colour}",
                    alpha=0.8, label=name if index == 0 else None)  # fmt: skip
    for threshold in result["thresholds"]:
        ax.axhline(threshold, color="grey", lw=0.5, ls="--")
    best = max(p["test_acc"] for runs in result["runs"].values() for run in runs for p in run["points"])
    ax.set(xlabel="training images seen", ylabel="test accuracy", title=result["experiment"])
    ax.set_ylim(min(result["thresholds"]) - 0.02, min(1.0, max(best, *result["thresholds"]) + 0.005))
    ax.grid(alpha=0.3)
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
