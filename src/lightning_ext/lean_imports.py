"""Keep torchmetrics from importing packages this project never uses through it.

Lightning imports torchmetrics, and torchmetrics imports torchvision, matplotlib and scipy.signal
whenever they are installed, for features this project never uses (image metrics, `Metric.plot`, an
audio metric). `install()` adds an import hook that tells torchmetrics, in this process only, that
these three are absent, so it skips those imports; whoever else uses them still imports them.
SRC_FULL_IMPORTS=1 switches it off. Installed by src/__init__.py; tests/test_startup.py notices when
torchmetrics renames these internals. What it saves: docs/speed.md; how it works: docs/development.md.
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
        # this one spec's loader runs our wrapper (a plain function in place of its method)
        spec.loader.exec_module = _package_init(run) if name == "torchmetrics" else _flags(run)  # type: ignore[assignment]
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
        # a plain function in place of the lru_cache-wrapped one, while torchmetrics imports
        imports.package_available = lambda name: name not in UNAVAILABLE_PACKAGES and original(name)  # type: ignore[assignment]
        try:
            run(module)  # its `from lightning_utilities.core.imports import package_available` gets ours
        finally:
            imports.package_available = original
            if getattr(module, "package_available", None) is not original:
                module.__dict__["package_available"] = original

    return exec_module


def install() -> None:
    """Add the hook (once), unless SRC_FULL_IMPORTS=1 or torchmetrics is already imported."""
    if os.environ.get("SRC_FULL_IMPORTS") == "1" or "torchmetrics" in sys.modules:
        return
    if not any(isinstance(finder, _TorchmetricsHook) for finder in sys.meta_path):
        sys.meta_path.insert(0, _TorchmetricsHook())
