"""What a network does to the shape of one image, layer by layer (src.summary prints it; src.train keeps
the pooling layers' shapes in metrics.json, so src.report can show what `padding=same` changes)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import torch
from torch import nn

if TYPE_CHECKING:
    from src.models.layers import Network


@dataclass
class LayerRow:
    name: str
    kind: str
    shape: tuple[int, ...]
    params: int


def layer_rows(model: Network) -> list[LayerRow]:
    """Run one example image through `model`; one row per leaf layer, in execution order."""
    rows: list[LayerRow] = []

    def record(name: str):
        def hook(module: nn.Module, _inputs: object, output: torch.Tensor) -> None:
            params = sum(p.numel() for p in module.parameters(recurse=False))
            rows.append(LayerRow(name, type(module).__name__, tuple(output.shape[1:]), params))

        return hook

    leaves = [(n, m) for n, m in model.named_modules() if n and not list(m.children())]
    handles = [module.register_forward_hook(record(name)) for name, module in leaves]
    was_training = model.training
    try:
        model.eval()
        with torch.no_grad():
            model(torch.zeros(1, model.in_channels, model.input_size, model.input_size))
    finally:
        for handle in handles:
            handle.remove()
        model.train(was_training)
    return rows


def pooled_shapes(model: Network) -> dict[str, list[int]]:
    """Output shape (C, H, W) of every pooling layer, e.g. {"features.pool2": [16, 5, 5]}."""
    return {row.name: list(row.shape) for row in layer_rows(model) if "Pool" in row.kind}
