"""src/lightning_ext/: the private names of Lightning, TensorBoard and torchmetrics this project uses are
all listed in one table, used nowhere else, and still there in the installed versions."""

from __future__ import annotations

import ast
import importlib
import inspect
import logging
import re
from pathlib import Path

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
        *owners, attribute = path.split(".")
        for part in owners if name.instance else path.split("."):
            found = getattr(found, part)
        assigned = rf"self\.{attribute}\s*(:[^=]*)?="  # `self._name = ...` or `self._name: T = ...`
        if name.instance and not re.search(assigned, inspect.getsource(found.__init__)):
            raise AttributeError(f"{found.__name__}.__init__ no longer sets self.{attribute}")
    except (ImportError, AttributeError) as error:
        pytest.fail(f"{name.symbol} is gone from the installed version ({error}); it is used in "
                    f"src/lightning_ext/{name.used_in}: {name.why}")  # fmt: skip


THIRD_PARTY = ("lightning", "lightning_utilities", "torch", "torchmetrics")
# Private names the code reads as data, not as API: torch writes them into a checkpoint's pickle as the
# globals that rebuild tensors, and src/utils/checkpoints.py recognises them there without calling them.
PICKLE_GLOBALS = {"_rebuild_tensor", "_rebuild_parameter"}
TEXT_METHODS = {"endswith", "startswith", "split", "rsplit", "removeprefix", "removesuffix"}  # on text


def is_private(name: str) -> bool:
    """`_name`, not `__dunder__` nor a Hydra key like `_target_`."""
    return name.startswith("_") and not name.startswith("__") and not name.endswith("_")


def own_names(tree: ast.AST) -> set[str]:
    """The private names this project defines itself: functions, classes, variables, arguments,
    attributes it assigns (`self._last_update = ...`)."""
    names = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
            names.add(node.name)
        elif isinstance(node, ast.arg):
            names.add(node.arg)
        elif isinstance(node, ast.Name) and isinstance(node.ctx, ast.Store):
            names.add(node.id)
        elif isinstance(node, ast.Attribute) and isinstance(node.ctx, ast.Store):
            if isinstance(node.value, ast.Name) and node.value.id in ("self", "cls"):
                names.add(node.attr)
        elif isinstance(node, ast.alias) and node.asname:
            names.add(node.asname)
    return {name for name in names if is_private(name)}


def private_uses(path: Path, own: set[str]) -> set[str]:
    """Every private name of another package a module uses, read from its code (prose does not count):
    imported from a third-party package, an attribute read or written, or a string naming one
    (getattr, hasattr, a flag's name)."""
    tree = ast.parse(path.read_text())
    # Text that is no name: the pieces of f"test/{name}_zeros", the argument of k.endswith("_zeros")
    joined = [node for node in ast.walk(tree) if isinstance(node, ast.JoinedStr)]
    text = {id(part) for node in joined for part in node.values}
    calls = [n for n in ast.walk(tree) if isinstance(n, ast.Call) and isinstance(n.func, ast.Attribute)]
    text |= {id(arg) for call in calls if call.func.attr in TEXT_METHODS for arg in call.args}
    used = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and (node.module or "").split(".")[0] in THIRD_PARTY:
            used |= {alias.name for alias in node.names if is_private(alias.name)}
        elif isinstance(node, ast.Attribute) and is_private(node.attr):
            used.add(node.attr)
        elif isinstance(node, ast.Constant) and isinstance(node.value, str) and id(node) not in text:
            used |= {node.value} if node.value.isidentifier() and is_private(node.value) else set()
    return used - own - PICKLE_GLOBALS


def project_own_names() -> set[str]:
    return set().union(*(own_names(ast.parse(p.read_text())) for p in (PROJECT_ROOT / "src").rglob("*.py")))


def test_the_table_names_exactly_the_private_names_the_code_uses():
    """Read from each module's syntax tree: what src/lightning_ext/<module> uses of other packages'
    private names is what PRIVATE_NAMES lists for it, no more, no less; no other module of src/ uses any."""
    own = project_own_names()
    for path in sorted(PACKAGE.glob("*.py")):
        if path.name == "__init__.py":  # the table itself
            continue
        listed = {attribute_name(name) for name in PRIVATE_NAMES if name.used_in == path.name}
        assert private_uses(path, own) == listed, path.name
    outside = [p for p in (PROJECT_ROOT / "src").rglob("*.py") if PACKAGE not in p.parents]
    for path in outside:
        used = private_uses(path, own)
        assert not used, f"{path.relative_to(PROJECT_ROOT)} uses {used}: move the use into src/lightning_ext"


def test_the_reader_sees_code_not_prose(tmp_path):
    """The reader above finds a private name in an import, an attribute and a string, never in a
    docstring or a comment, and leaves the project's own private names alone."""
    module = tmp_path / "m.py"
    module.write_text(
        '"""Mentions _docstring_name."""\n'
        "from lightning.pytorch.core.module import _imported  # _comment_name\n"
        "import torch\n"
        "class A:\n"
        "    def __init__(self):\n"
        "        self._own = torch._attribute\n"
        "        getattr(self, '_by_string')\n"
        "        print('_own', self._own)\n"
        "        print(f'{self}_mean', 'k'.endswith('_zeros'))\n"
    )
    assert private_uses(module, own_names(ast.parse(module.read_text()))) == {
        "_imported",
        "_attribute",
        "_by_string",
    }


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
