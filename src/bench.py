"""The benchmark: how accurate and how fast, measured on this machine, written where the README reads it.

    python -m src.bench                       # LeNet-5 / MNIST recipe (experiment=lenet5_mnist)
    python -m src.bench --experiment seed_lenet5_mnist --name seed
    python -m src.bench -- trainer.max_epochs=5   # extra Hydra overrides after --

It trains through the same code path as `python -m src.train` (same config, same LightningModule),
and after every epoch evaluates the test set, outside the timed part, to record when the test accuracy
first reaches each target. Results: bench/results/<name>.json and a markdown table on stdout (and in
bench/results/<name>.md), with the machine, versions and date.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform
import sys
import time
from pathlib import Path
from typing import Any

import lightning as L
import torch
from omegaconf import open_dict

from src.config import PROJECT_ROOT, compose_config, user_errors
from src.train import build, quiet_lightning, write_json_atomically

RESULTS_DIR = PROJECT_ROOT / "bench" / "results"
TARGETS = (0.99, 0.992, 0.993)


class EpochClock(L.Callback):
    """Times the training epochs (not validation) and tests after each one, outside the clock."""

    def __init__(self, datamodule: L.LightningDataModule) -> None:
        self.datamodule, self.rows, self.trained_seconds, self.images = datamodule, [], 0.0, 0
        self._start = 0.0

    def on_train_epoch_start(self, trainer: L.Trainer, module: L.LightningModule) -> None:
        self._start = time.perf_counter()

    def on_train_batch_end(self, trainer, module, outputs, batch, batch_idx) -> None:  # noqa: ANN001
        self.images += len(batch[1])

    def on_train_epoch_end(self, trainer: L.Trainer, module: L.LightningModule) -> None:
        self.trained_seconds += time.perf_counter() - self._start
        self.rows.append({"epoch": trainer.current_epoch + 1, "train_seconds": round(self.trained_seconds, 2),
                          "test_acc": self.test_accuracy(module)})

    @torch.no_grad()
    def test_accuracy(self, module: L.LightningModule) -> float:
        was_training = module.training
        module.eval()
        correct = total = 0
        for images, labels in self.datamodule.test_dataloader():
            logits = module(self.datamodule.to_model_input(images.to(module.device), train=False))
            correct += (logits.argmax(1).cpu() == labels).sum().item()
            total += len(labels)
        module.train(was_training)
        return round(correct / total, 4)


def machine() -> dict[str, Any]:
    cpu = next((line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines()
                if line.startswith("model name")), platform.processor()) if Path("/proc/cpuinfo").exists() else ""
    return {
        "cpu": cpu,
        "cores": os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
        "gpu": torch.cuda.get_device_name() if torch.cuda.is_available() else None,
        "python": platform.python_version(),
        "torch": torch.__version__,
        "lightning": L.__version__,
        "date": dt.date.today().isoformat(),
    }


def run(experiment: str, overrides: list[str], output_dir: Path) -> dict[str, Any]:
    cfg = compose_config([f"experiment={experiment}", "callbacks.progress_bar=null", "logger=none", *overrides])
    with open_dict(cfg):
        cfg.paths.output_dir = str(output_dir)
        cfg.trainer.default_root_dir = str(output_dir)
        cfg.callbacks.model_checkpoint.dirpath = str(output_dir / "checkpoints")
    quiet_lightning()
    if cfg.get("threads"):
        torch.set_num_threads(cfg.threads)
    L.seed_everything(cfg.seed, workers=True, verbose=False)
    datamodule, module, trainer = build(cfg)
    clock = EpochClock(datamodule)
    trainer.callbacks.append(clock)
    datamodule.setup("fit")
    trainer.fit(module, datamodule=datamodule)
    best = clock.rows[-1]["test_acc"]
    reached = {f"{t:.1%}": next((r["train_seconds"] for r in clock.rows if r["test_acc"] >= t), None) for t in TARGETS}
    return {
        "experiment": experiment,
        "overrides": overrides,
        "final_test_acc": best,
        "epochs": len(clock.rows),
        "train_seconds": round(clock.trained_seconds, 2),
        "train_images_per_second": round(clock.images / clock.trained_seconds),
        "seconds_to_test_acc": reached,
        "per_epoch": clock.rows,
        "batch_size": cfg.data.batch_size,
        "machine": machine(),
        "command": "python -m src.bench " + " ".join(sys.argv[1:]),
    }


def markdown(result: dict[str, Any]) -> str:
    m = result["machine"]
    to_target = ", ".join(f"{k} after {v:.1f} s" if v is not None else f"{k} not reached"
                          for k, v in result["seconds_to_test_acc"].items())
    return "\n".join([
        "| experiment | test acc | epochs | train time | images/s | time to test accuracy |",
        "|---|---|---|---|---|---|",
        f"| `{result['experiment']}` | {result['final_test_acc']:.2%} | {result['epochs']} | "
        f"{result['train_seconds']:.1f} s | {result['train_images_per_second']:,} | {to_target} |",
        "",
        f"`{result['command']}` on {m['date']}: {m['cpu']}, {m['cores']} cores, {m['torch_threads']} torch "
        f"threads, {m['gpu'] or 'no GPU'}; Python {m['python']}, torch {m['torch']}, lightning {m['lightning']}.",
    ])


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--experiment", default="lenet5_mnist")
    parser.add_argument("--name", default=None, help="results file name (default: the experiment)")
    parser.add_argument("overrides", nargs="*", help="Hydra overrides")
    args = parser.parse_args(argv)
    name = args.name or args.experiment
    with user_errors():
        result = run(args.experiment, args.overrides, PROJECT_ROOT / "outputs" / "bench" / name)
    write_json_atomically(result, RESULTS_DIR / f"{name}.json")
    table = markdown(result)
    (RESULTS_DIR / f"{name}.md").write_text(table + "\n")
    print(table)


if __name__ == "__main__":
    main()
