"""Plain nn.Module networks: no training logic here (that lives in src/training/module.py).

The classes are loaded on first use (`src.models.LeNet5`, as Hydra's `_target_` names them), so that
the torch-free parts of this package (src/models/geometry.py: the layer plans and their shape
arithmetic) can be imported without importing torch.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from src.models.alexnet import AlexNet, AlexNetBN
    from src.models.lenet5 import LeNet5

__all__ = ["AlexNet", "AlexNetBN", "LeNet5"]
_HOMES = {"AlexNet": "src.models.alexnet", "AlexNetBN": "src.models.alexnet", "LeNet5": "src.models.lenet5"}


def __getattr__(name: str) -> Any:
    if name in _HOMES:
        return getattr(importlib.import_module(_HOMES[name]), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
