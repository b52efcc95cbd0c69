"""The benchmark: how accurate and how fast, measured on this machine, written where the README reads it.

    python -m src.bench accuracy                     # LeNet-5/MNIST recipe: accuracy, time to 99.0 %
    python -m src.bench accuracy --experiment seed_lenet5_mnist
    python -m src.bench speed                        # src.train's path vs a bare PyTorch loop
    python -m src.bench keras                        # the seed's Keras LeNet-5 beside the same here
    python -m src.bench scaling                      # images/s against batch size and threads
    python -m src.bench all                          # all four (this is `make bench`)

Extra Hydra overrides go at the end: `python -m src.bench accuracy trainer.max_epochs=5`.

accuracy: trains through the same code as `python -m src.train` (same config, same LightningModule,
default callbacks); after every epoch it evaluates the test set outside the timed part, to record when
the test accuracy first reaches each target.
speed: in one process, interleaved (L, bare, L, bare, L, bare; best of each), one warm training epoch of
(a) the full Lightning + Hydra path and (b) a minimal hand-written loop over the same model, data
pipeline, batch size and threads; evaluation images/s of both; the data pipeline alone; and the start-up
time of `python -m src.train … trainer.fast_dev_run=true`.
keras: the seed's Keras LeNet-5 (bench/keras_lenet5.py, TensorFlow CPU in a throw-away uv environment)
beside the same network and recipe as a bare loop and through src.train, and beside our own recipe;
and, when DATA_DIR holds CIFAR-10, the seed's 2-epoch CIFAR-10 run in both (test accuracy over three
seeds and training images/s).
scaling: training images/s of the bare step against batch size and torch threads, for both networks.

Results: bench/results/<suite>.json, <suite>.md (and scaling.png), with machine, versions and date.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform
import shutil
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import lightning as L
import torch
from hydra.utils import instantiate
from omegaconf import DictConfig, open_dict
from torch import nn

from src.config import PROJECT_ROOT, compose_config, user_errors
from src.errors import UserError
from src.insight import ImagesPerSecond
from src.train import build, quiet_lightning, skip_nvml_probe_without_driver, write_json_atomically

RESULTS_DIR = PROJECT_ROOT / "bench" / "results"
OUTPUT_DIR = PROJECT_ROOT / "outputs" / "bench"
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
    quiet_lightning()
    skip_nvml_probe_without_driver()
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


@torch.no_grad()
def evaluate(model: nn.Module, datamodule: L.LightningDataModule, split: str = "test",
             memory_format: torch.memory_format = torch.contiguous_format) -> tuple[float, int]:  # fmt: skip
    """Accuracy of `model` on a split, and the number of images: the bare evaluation loop."""
    was_training = model.training
    model.eval()
    correct = total = 0
    for images, labels in datamodule._loader(split, train=False):
        logits = model(datamodule.to_model_input(images, train=False).contiguous(memory_format=memory_format))
        correct += int((logits.argmax(1) == labels).sum())
        total += len(labels)
    model.train(was_training)
    return correct / total, total


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
def bare_training_epoch(model: nn.Module, datamodule: L.LightningDataModule, optimizer: torch.optim.Optimizer,
                        memory_format: torch.memory_format = torch.contiguous_format) -> float:  # fmt: skip
    """The minimal loop the Lightning path is measured against; returns images/s."""
    criterion, images_seen = nn.CrossEntropyLoss(), 0
    model.train()
    start = time.perf_counter()
    for images, labels in datamodule.train_dataloader():
        inputs = datamodule.to_model_input(images, train=True).contiguous(memory_format=memory_format)
        loss = criterion(model(inputs), labels)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        images_seen += len(labels)
    return images_seen / (time.perf_counter() - start)


def lightning_training(cfg: DictConfig) -> tuple[float, float]:
    """Warm training epoch images/s of the src.train path (epoch 2 of 2), and its test images/s."""
    overrides_cfg = cfg.copy()
    with open_dict(overrides_cfg):
        overrides_cfg.trainer.max_epochs = 2
        overrides_cfg.trainer.min_epochs = 2
    datamodule, module, trainer = prepare(overrides_cfg)
    clock = EpochClock()
    trainer.callbacks.append(clock)
    trainer.fit(module, datamodule=datamodule)
    start = time.perf_counter()
    trainer.test(module, datamodule=datamodule, verbose=False)
    test_images = len(datamodule.splits["test"])
    return clock.rows[-1]["images_per_second"], test_images / (time.perf_counter() - start)


def bare_training(cfg: DictConfig) -> tuple[float, float]:
    """The same for the bare loop: the same network, optimizer, datamodule and batches."""
    datamodule, module, _ = prepare(cfg)
    model = module.model  # already in the module's memory format
    memory_format = torch.channels_last if cfg.module.channels_last else torch.contiguous_format
    optimizer = instantiate(cfg.optimizer)(params=model.parameters())
    bare_training_epoch(model, datamodule, optimizer, memory_format)  # epoch 1: warm-up, as for Lightning
    speed = bare_training_epoch(model, datamodule, optimizer, memory_format)
    start = time.perf_counter()
    _, count = evaluate(model, datamodule, memory_format=memory_format)
    return speed, count / (time.perf_counter() - start)


def data_pipeline(cfg: DictConfig) -> float:
    """Images/s of the data pipeline alone: batches out of memory, augmented, fitted, normalised."""
    datamodule, _, _ = prepare(cfg)
    start, count = time.perf_counter(), 0
    for images, labels in datamodule.train_dataloader():
        datamodule.to_model_input(images, train=True)
        count += len(labels)
    return count / (time.perf_counter() - start)


def startup_seconds(experiment: str, overrides: list[str]) -> float:
    """Wall time of a whole `python -m src.train … trainer.fast_dev_run=true` (imports, config, 3 batches)."""
    start = time.perf_counter()
    run_dir = f"hydra.run.dir={OUTPUT_DIR / 'startup'}"
    command = [sys.executable, "-m", "src.train", f"experiment={experiment}", "trainer.fast_dev_run=true",
               "callbacks.progress_bar=null", run_dir, *overrides]  # fmt: skip
    subprocess.run(command, cwd=PROJECT_ROOT, check=True, capture_output=True)
    return time.perf_counter() - start


def run_speed(experiment: str, overrides: list[str], repeats: int = 3) -> dict[str, Any]:
    cfg = bench_config(experiment, overrides, f"speed_{experiment}")
    lightning_runs, bare_runs = [], []
    for _ in range(repeats):  # interleaved, so a slow moment of the machine hits both
        lightning_runs.append(lightning_training(cfg))
        bare_runs.append(bare_training(cfg))
    lightning = max(r[0] for r in lightning_runs), max(r[1] for r in lightning_runs)
    bare = max(r[0] for r in bare_runs), max(r[1] for r in bare_runs)
    # The best of each is the headline; each pair's own ratio shows how much the machine's noise moves it.
    pair_ratios = [light[0] / plain[0] for light, plain in zip(lightning_runs, bare_runs, strict=True)]
    return {
        "experiment": experiment,
        "overrides": overrides,
        "batch_size": cfg.data.batch_size,
        "train_images_per_second": {"lightning": round(lightning[0]), "bare": round(bare[0])},
        "train_ratio": round(lightning[0] / bare[0], 3),
        "train_ratio_per_pair": [round(r, 3) for r in pair_ratios],
        "eval_images_per_second": {"lightning": round(lightning[1]), "bare": round(bare[1])},
        "eval_ratio": round(lightning[1] / bare[1], 3),
        "data_pipeline_images_per_second": round(data_pipeline(cfg)),
        "startup_seconds": round(startup_seconds(experiment, overrides), 2),
        "all_runs": {"lightning": lightning_runs, "bare": bare_runs},
    }


def speed_markdown(r: dict[str, Any]) -> list[str]:
    t, e, pairs = r["train_images_per_second"], r["eval_images_per_second"], r["train_ratio_per_pair"]
    return [
        f"`{r['experiment']}`, batch {r['batch_size']}:",
        "",
        "| measure | src.train (Lightning + Hydra) | bare PyTorch loop | ratio |",
        "|---|---|---|---|",
        f"| training images/s (warm epoch) | {t['lightning']:,} | {t['bare']:,} | {r['train_ratio']:.3f} |",
        f"| training ratio of each interleaved pair | | | {', '.join(f'{x:.3f}' for x in pairs)} |",
        f"| evaluation images/s (test set) | {e['lightning']:,} | {e['bare']:,} | {r['eval_ratio']:.3f} |",
        f"| data pipeline alone, images/s | {r['data_pipeline_images_per_second']:,} | | |",
        f"| start-up: `python -m src.train … fast_dev_run=true` | {r['startup_seconds']:.1f} s | | |",
    ]


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
        runs["bare"].append(bare_training(seed)[0])
        runs["seed"].append(lightning_training(seed)[0])
        runs["ours"].append(lightning_training(ours)[0])
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
    parser.add_argument("suite", choices=("accuracy", "speed", "keras", "scaling", "all"))
    parser.add_argument(
        "--experiment",
        action="append",
        help="accuracy/speed: experiment(s) to run "
        "(default: lenet5_mnist and seed_lenet5_mnist for accuracy, lenet5_mnist for speed)",
    )
    parser.add_argument("overrides", nargs="*", help="Hydra overrides for every run")
    args = parser.parse_intermixed_args(argv)
    suites = ("accuracy", "speed", "keras", "scaling") if args.suite == "all" else (args.suite,)
    with user_errors():
        if "accuracy" in suites:
            experiments = args.experiment or ["lenet5_mnist", "seed_lenet5_mnist"]
            results = [run_accuracy(e, args.overrides) for e in experiments]
            save("accuracy", {"runs": results}, accuracy_markdown(results))
        if "speed" in suites:
            result = run_speed((args.experiment or ["lenet5_mnist"])[0], args.overrides)
            save("speed", result, speed_markdown(result))
        if "keras" in suites:
            result = run_keras(args.overrides)
            save("keras", result, keras_markdown(result))
        if "scaling" in suites:
            result = run_scaling(args.overrides)
            scaling_plot(result, RESULTS_DIR / "scaling.png")
            save("scaling", result, [*scaling_markdown(result), "", "![scaling](bench/results/scaling.png)"])


if __name__ == "__main__":
    main()
