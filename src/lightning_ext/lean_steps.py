"""Two costs Lightning pays around every hook it calls, made cheaper without changing what it does.

A training step of Lightning's loop calls some fifty hooks (the module's, the strategy's, every
callback's, implemented or not). Around each one Lightning

- opens `trainer.profiler.profile(<hook>)`, which for the default no-op profiler is still a generator
  turned context manager that calls `start` and `stop`, which do nothing: ~2.5 µs a hook on a 2-core
  machine. `QuietProfiler.profile` returns one shared `nullcontext` instead.
- sets the module's `_current_fx_name` to the hook's name, and back (`_call_lightning_module_hook`,
  `_call_callback_hooks` and `_call_strategy_hook` of lightning.pytorch.trainer.call): ~40 attribute
  writes a step, each through `nn.Module.__setattr__`, which first checks whether the value is a
  parameter, a module or a buffer (~3.5 µs). A hook's name is none of these: `CheapHookName` stores it
  directly, as `nn.Module.__setattr__` would in the end.

Together 0.25-0.55 ms of a LeNet-5 step at batch 64 (~7 ms) on the 2-core machine
(scripts/lean_steps_ab.py); `python -m src.bench steps` measures what Lightning's loop still adds.
tests/test_lightning_ext.py checks that Lightning still names the attribute so and that runs take both
paths.
"""

from __future__ import annotations

import contextlib
from typing import Any

from lightning.pytorch.profilers import PassThroughProfiler

HOOK_NAME_ATTRIBUTE = "_current_fx_name"  # LightningModule's: the hook Lightning is calling, for self.log
_NOTHING = contextlib.nullcontext()  # reusable and reentrant


class QuietProfiler(PassThroughProfiler):
    """Lightning's default profiler (it records nothing), without a context manager built per hook."""

    def profile(self, action_name: str) -> contextlib.nullcontext:  # type: ignore[override]
        return _NOTHING


class CheapHookName:
    """Mixin for a LightningModule (first among its bases): Lightning's hook-name writes skip
    `nn.Module.__setattr__`'s checks; every other attribute goes through them as before."""

    def __setattr__(self, name: str, value: Any) -> None:
        if name == HOOK_NAME_ATTRIBUTE:
            object.__setattr__(self, name, value)
        else:
            super().__setattr__(name, value)
