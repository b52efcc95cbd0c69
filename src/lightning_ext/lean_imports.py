"""Keep torchmetrics from importing packages this project never uses through it.

Lightning imports torchmetrics (to read its version), and torchmetrics imports, at import time and
whenever they are installed: torchvision (for its image metrics ARNIQA and DISTS, and torchvision in
turn imports all its models and ops), matplotlib (for `Metric.plot`) and scipy.signal (a compatibility
patch for the SRMR audio metric's third-party dependency). This project uses two of torchmetrics'
metrics (MulticlassAccuracy, MaxMetric) and none of those features, yet every `python -m src.train`
paid for all three imports before its first batch: together about a tenth of its start-up on a
2-core machine.

`install()` adds an import hook that, when torchmetrics is imported in this process, tells torchmetrics
that these three optional packages are absent: torchmetrics then skips those imports, exactly as on a
machine without them. torchvision, matplotlib and scipy stay installed and are imported by whoever
uses them (the CIFAR-10 and Flowers-17 datamodules, src.training.insight's figures, src.report, Optuna);
only torchmetrics' own optional features built on them are unavailable in this process: its image
metrics that need torchvision, `Metric.plot`, and the SRMR metric. Set SRC_FULL_IMPORTS=1 to switch
this off.

Installed by src/__init__.py, so by any `import src.<module>`; it does nothing when torchmetrics was
imported before, and nothing (beyond the imports it saves) when torchmetrics renames these internals:
tests/test_startup.py notices that.
"""

from __future__ import annotations

import importlib.abc
import importlib.machinery
import os
import sys
from collections.abc import Callable, Sequence
from types import ModuleType
from typing import Any

# torchmetrics.utilities.imports: RequirementCache flags, evaluated on first use.
UNAVAILABLE_FLAGS = ("_TORCHVISION_AVAILABLE", "_MATPLOTLIB_AVAILABLE", "_SCIPI_AVAILABLE")
# torchmetrics/__init__.py asks lightning_utilities' package_available() about these.
UNAVAILABLE_PACKAGES = ("scipy",)


class _TorchmetricsHook(importlib.abc.MetaPathFinder):
    """Wraps the loading of `torchmetrics` and `torchmetrics.utilities.imports`; nothing else."""

    def find_spec(self, name: str, path: Sequence[str] | None, target: ModuleType | None = None) -> Any:
        if name not in ("torchmetrics", "torchmetrics.utilities.imports"):
            return None
        spec = importlib.machinery.PathFinder.find_spec(name, path)
        if spec is None or spec.loader is None or not hasattr(spec.loader, "exec_module"):
            return spec
        run = spec.loader.exec_module
        spec.loader.exec_module = _package_init(run) if name == "torchmetrics" else _flags(run)  # type: ignore[method-assign]
        return spec


def _flags(run: Callable[[ModuleType], None]) -> Callable[[ModuleType], None]:
    def exec_module(module: ModuleType) -> None:
        run(module)
        for flag in UNAVAILABLE_FLAGS:
            requirement = getattr(module, flag, None)
            if requirement is not None and hasattr(requirement, "_check_available"):
                requirement.available = False  # RequirementCache caches its answer in `available`
                requirement.message = f"{flag} set to unavailable by src/lightning_ext/lean_imports.py"

    return exec_module


def _package_init(run: Callable[[ModuleType], None]) -> Callable[[ModuleType], None]:
    def exec_module(module: ModuleType) -> None:
        try:
            from lightning_utilities.core import imports  # deferred: only as torchmetrics is imported
        except ImportError:  # pragma: no cover - torchmetrics needs lightning_utilities
            run(module)
            return
        original = imports.package_available
        imports.package_available = lambda name: name not in UNAVAILABLE_PACKAGES and original(name)
        try:
            run(module)  # its `from lightning_utilities.core.imports import package_available` gets ours
        finally:
            imports.package_available = original
            if getattr(module, "package_available", None) is not original:
                module.package_available = original

    return exec_module


def install() -> None:
    """Add the hook (once), unless SRC_FULL_IMPORTS=1 or torchmetrics is already imported."""
    if os.environ.get("SRC_FULL_IMPORTS") == "1" or "torchmetrics" in sys.modules:
        return
    if not any(isinstance(finder, _TorchmetricsHook) for finder in sys.meta_path):
        sys.meta_path.insert(0, _TorchmetricsHook())
