"""`make setup` as a new user meets it: a machine with Python and make, but no uv anywhere.

The Makefile calls uv through scripts/uv, which looks uv up when a recipe needs it (after installing it),
not when the Makefile is read: `pip install uv` puts the binary in the Python's own bin/, which need not
be on PATH.
"""

from __future__ import annotations

import os
import re
import shutil
import stat
import subprocess
import sys
from pathlib import Path

import pytest

from src.config.compose import PROJECT_ROOT

SYSTEM_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
UV_SCRIPT = PROJECT_ROOT / "scripts" / "uv"


def uv_cache_dir() -> str:
    """The uv cache this test session's own `uv sync` filled (shared, so the new .venv is hard links)."""
    if os.environ.get("UV_CACHE_DIR"):
        return os.environ["UV_CACHE_DIR"]
    cache_home = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return str(Path(cache_home) / "uv")


# What a machine's own set-up puts in the environment to reach the package registry (CA bundles, proxies,
# pip/uv index settings): a new user has these too, so the bare environment below keeps them.
NETWORK_SETTINGS = re.compile(
    r"SSL_CERT_(FILE|DIR)|.*_CA_BUNDLE|.*CA_CERTS.*|PIP_.*|UV_.*|(HTTPS?|NO|ALL)_PROXY", re.IGNORECASE
)


def network_settings() -> dict[str, str]:
    return {name: value for name, value in os.environ.items() if NETWORK_SETTINGS.fullmatch(name)}


def copy_checkout(target: Path) -> Path:
    """The repository's files as a clone has them (tracked and new, not ignored), with their modes."""
    listed = subprocess.run(
        ["git", "ls-files", "--cached", "--others", "--exclude-standard", "-z"],
        cwd=PROJECT_ROOT, capture_output=True, check=True,
    ).stdout.decode().split("\0")  # fmt: skip
    for name in filter(None, listed):
        source = PROJECT_ROOT / name
        if source.is_file():
            (target / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, target / name)
    return target


def write_script(path: Path, body: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("#!/bin/sh\n" + body + "\n")
    path.chmod(path.stat().st_mode | stat.S_IXUSR)
    return path


@pytest.mark.slow
def test_make_setup_works_the_first_time_without_uv(tmp_path):
    base_python = getattr(sys, "_base_executable", sys.executable)
    venv = tmp_path / "python"
    subprocess.run([base_python, "-m", "venv", str(venv)], check=True)
    home = tmp_path / "home"
    home.mkdir()
    path = f"{venv / 'bin'}:{SYSTEM_PATH}"
    assert shutil.which("uv", path=path) is None, "this test needs a PATH without uv"
    assert not (home / ".local" / "bin" / "uv").exists()
    repo = copy_checkout(tmp_path / "repo")
    bare = {"PATH": path, "HOME": str(home), "UV_CACHE_DIR": uv_cache_dir(), "LANG": "C.UTF-8"}
    env = {**network_settings(), **bare}

    setup = subprocess.run(["make", "setup"], cwd=repo, env=env, capture_output=True, text=True, timeout=1200)
    assert setup.returncode == 0, setup.stdout + setup.stderr
    assert "uv not found: installing it" in setup.stderr
    check = "import torch, lightning, hydra; print(torch.__version__)"
    imported = subprocess.run(
        [str(repo / ".venv" / "bin" / "python"), "-c", check], env=env, capture_output=True, text=True
    )
    assert imported.returncode == 0, imported.stderr
    assert imported.stdout.startswith("2.14.1")
    # Installed with bytecode (pyproject's tool.uv compile-bytecode): a Python that may not write .pyc
    # files (PYTHONDONTWRITEBYTECODE=1, as on these machines) does not compile torch on every start.
    site = next((repo / ".venv" / "lib").glob("python3.*")) / "site-packages"
    for package in ("torch", "lightning"):
        assert list((site / package / "__pycache__").glob("__init__.cpython-*.pyc")), package

    again = subprocess.run(["make", "setup"], cwd=repo, env=env, capture_output=True, text=True, timeout=600)
    assert again.returncode == 0, again.stderr  # uv is there now: found, not installed again
    assert "installing" not in again.stderr


@pytest.mark.parametrize(
    ("where", "found"),
    [("standalone installer (~/.local/bin)", "uv-standalone"), ("pip (python3 -m uv)", "uv-module"),
     ("on PATH", "uv-path")],
)  # fmt: skip
def test_scripts_uv_finds_uv_wherever_it_was_installed(tmp_path, where, found):
    home, bin_dir = tmp_path / "home", tmp_path / "bin"
    bin_dir.mkdir()
    # A python3 whose `-m uv` works only in the pip case, and that can install nothing.
    module_uv = 'echo "uv-module $*"; exit 0' if where.startswith("pip") else "exit 1"
    write_script(bin_dir / "python3", f'if [ "$1 $2" = "-m uv" ]; then shift 2; {module_uv}; fi; exit 1')
    if where.startswith("standalone"):
        write_script(home / ".local" / "bin" / "uv", 'echo "uv-standalone $*"')
    if where == "on PATH":
        write_script(bin_dir / "uv", 'echo "uv-path $*"')
    env = {"PATH": f"{bin_dir}:/usr/bin:/bin", "HOME": str(home)}
    result = subprocess.run([str(UV_SCRIPT), "sync", "--frozen"], env=env, capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == f"{found} sync --frozen"
    assert "installing" not in result.stderr


def test_scripts_uv_says_so_when_uv_cannot_be_installed(tmp_path):
    bin_dir = tmp_path / "bin"
    write_script(bin_dir / "python3", "exit 1")  # pip fails, and there is no uv module
    write_script(bin_dir / "curl", "exit 6")  # no network for the standalone installer
    env = {"PATH": f"{bin_dir}:/usr/bin:/bin", "HOME": str(tmp_path / "home")}
    result = subprocess.run([str(UV_SCRIPT), "sync"], env=env, capture_output=True, text=True)
    assert result.returncode == 127
    assert "uv not found: installing it" in result.stderr
    assert result.stderr.strip().splitlines()[-1].startswith("error: could not install uv")
