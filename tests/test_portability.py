"""src/ imports where POSIX-only modules are missing (Windows): every module of the package is imported in
a process whose src/ modules cannot import fcntl, termios, resource, pwd or grp, and without os.fchmod.
What stays POSIX-only: docs/development.md ("Platforms")."""

from __future__ import annotations

import subprocess
import sys

from src.config.compose import PROJECT_ROOT

IMPORT_ALL = r"""
import builtins, importlib, os, pkgutil, sys, tempfile
from pathlib import Path

POSIX_ONLY = {"fcntl", "termios", "resource", "pwd", "grp", "posix"}
real_import = builtins.__import__

def windows_like_import(name, globals=None, locals=None, fromlist=(), level=0):
    importer = (globals or {}).get("__name__") or ""
    if level == 0 and name.split(".")[0] in POSIX_ONLY and importer.split(".")[0] == "src":
        raise ImportError(f"{importer} imports {name}, which Windows lacks")
    return real_import(name, globals, locals, fromlist, level)

builtins.__import__ = windows_like_import  # only src/'s own imports: torch may use pwd on POSIX
del os.fchmod
import src
failed = []
for module in pkgutil.walk_packages(src.__path__, "src."):
    try:
        importlib.import_module(module.name)
    except Exception as error:
        failed.append(f"{module.name}: {type(error).__name__}: {error}")
if failed:
    sys.exit("\n".join(failed))
from src.utils.files import atomic_open  # the fchmod-less path: the mode open() would have given
with tempfile.TemporaryDirectory() as folder:
    with atomic_open(Path(folder) / "f.txt", "w") as handle:
        handle.write("x")
    mask = os.umask(0); os.umask(mask)
    assert (Path(folder) / "f.txt").stat().st_mode & 0o777 == 0o666 & ~mask
print(f"imported {len(list(pkgutil.walk_packages(src.__path__, 'src.')))} modules")
"""


def test_every_module_of_src_imports_without_posix_only_modules():
    result = subprocess.run(
        [sys.executable, "-c", IMPORT_ALL],
        cwd=PROJECT_ROOT,
        capture_output=True,
        text=True,
        timeout=600,
        env={"PYTHONWARNINGS": "ignore", "OMP_NUM_THREADS": "1", "PATH": ""},
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert result.stdout.startswith("imported "), result.stdout
