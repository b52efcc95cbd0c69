"""src/lightning_ext/: the private names of Lightning, TensorBoard and torchmetrics this project uses are
all listed in one table, used nowhere else, and still there in the installed versions."""

from __future__ import annotations

import importlib
import logging

import pytest

from src.config.compose import PROJECT_ROOT
from src.lightning_ext import PRIVATE_NAMES, PrivateName

PACKAGE = PROJECT_ROOT / "src" / "lightning_ext"


def attribute_name(name: PrivateName) -> str:
    """The private name itself: `_save_last_checkpoint` of `...:ModelCheckpoint._save_last_checkpoint`."""
    return name.symbol.partition(":")[2].rpartition(".")[2]


@pytest.mark.parametrize("name", PRIVATE_NAMES, ids=lambda name: name.symbol)
def test_each_private_name_is_still_there(name):
    """One case per symbol: an upgrade that removes one fails here, naming it, before a run does."""
    module_name, _, path = name.symbol.partition(":")
    try:
        found = importlib.import_module(module_name)
        for part in path.split("."):
            found = getattr(found, part)
    except (ImportError, AttributeError) as error:
        pytest.fail(f"{name.symbol} is gone from the installed version ({error}); it is used in "
                    f"src/lightning_ext/{name.used_in}: {name.why}")  # fmt: skip


def test_the_table_names_every_use_and_nothing_else_uses_them():
    for name in PRIVATE_NAMES:
        assert attribute_name(name) in (PACKAGE / name.used_in).read_text(), name.symbol
    outside = [p for p in (PROJECT_ROOT / "src").rglob("*.py") if PACKAGE not in p.parents]
    for path in outside:
        text = path.read_text()
        used = [name.symbol for name in PRIVATE_NAMES if attribute_name(name) in text]
        assert not used, f"{path.relative_to(PROJECT_ROOT)} uses {used}: move the use into src/lightning_ext"


def test_process_changes_are_made_once():
    """A multirun trains several runs in one process: each change to Lightning is made once."""
    from lightning.pytorch.strategies.launchers import subprocess_script

    from src.lightning_ext.process import launch_ranks_with, prepare_process
    from src.training.distributed import child_command

    rank_zero = logging.getLogger("lightning.pytorch.utilities.rank_zero")
    for _ in range(3):
        prepare_process()
        launch_ranks_with(child_command)
    assert len(rank_zero.filters) == 1
    assert subprocess_script._hydra_subprocess_cmd is child_command


@pytest.mark.parametrize("profiler", [None, "simple"])
def test_fits_write_hook_names_and_profile_hooks_the_cheap_way(tiny_mnist, tmp_path, monkeypatch, profiler):
    """lean_steps.py: Lightning still names the hook it calls in `_current_fx_name`, and every such write
    of a fit takes CheapHookName's shortcut, none nn.Module.__setattr__; with no profiler chosen the trainer
    has the QuietProfiler, with one chosen that one."""
    import torch
    from lightning.pytorch.profilers import SimpleProfiler

    from src.lightning_ext import lean_steps
    from src.training.build import build
    from tests.conftest import compose_train_config, fast_overrides

    writes = {"shortcut": 0, "nn.Module": 0}

    def counting(setattr_, kind):
        def counted(self, name, value):
            writes[kind] += name == lean_steps.HOOK_NAME_ATTRIBUTE
            setattr_(self, name, value)

        return counted

    monkeypatch.setattr(lean_steps.CheapHookName, "__setattr__",
                        counting(lean_steps.CheapHookName.__setattr__, "shortcut"))  # fmt: skip
    monkeypatch.setattr(torch.nn.Module, "__setattr__", counting(torch.nn.Module.__setattr__, "nn.Module"))
    overrides = [*fast_overrides(tiny_mnist, tmp_path), "trainer.max_epochs=1", "logger=none"]
    cfg = compose_train_config([*overrides, *([f"profiler={profiler}"] if profiler else [])], tmp_path)
    datamodule, module, trainer = build(cfg)
    trainer.fit(module, datamodule=datamodule)
    steps = trainer.global_step
    assert steps > 0 and writes["shortcut"] >= 10 * steps, writes  # set and restored around each hook
    assert writes["nn.Module"] == 0, writes
    if profiler is None:
        assert isinstance(trainer.profiler, lean_steps.QuietProfiler)
        assert trainer.profiler.profile("training_step") is trainer.profiler.profile("backward")
    else:
        assert isinstance(trainer.profiler, SimpleProfiler)
        assert "run_training_batch" in trainer.profiler.recorded_durations
