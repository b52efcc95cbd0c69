"""`python -m bench scaling`: training images/s of the bare step on random inputs, against batch size
and torch threads, for both networks."""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any

import torch
from hydra.utils import instantiate
from torch import nn

from bench.common import bench_config

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
