"""The commands: pyproject.toml's installed `cnn-*` commands, shell completion of `cnn-train`, and the flags
of every entry point (a mistake is one line on stderr, exit status 2; `--help` exit 0)."""

from __future__ import annotations

import importlib
import os
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

from src.config.compose import PROJECT_ROOT
from src.train import COMMAND
from tests.conftest import run_cli

ENTRY_POINTS = ("src.eval", "src.summary", "src.sweep", "src.report", "src.predict", "src.export")


def scripts() -> dict[str, str]:
    return tomllib.loads((PROJECT_ROOT / "pyproject.toml").read_text())["project"]["scripts"]


def test_every_entry_point_is_an_installed_command_with_one_prefix():
    commands = scripts()
    modules = {target.split(":")[0] for target in commands.values()}
    assert modules == {"src.train", "src.export", *ENTRY_POINTS}
    assert all(name.startswith("cnn-") for name in commands), commands
    assert commands[COMMAND] == "src.train:cli"  # the name -sc install=bash points to
    for name, target in commands.items():
        module, _, function = target.partition(":")
        assert callable(getattr(importlib.import_module(module), function, None)), f"{name} = {target}"


def console_script(bin_dir: Path, name: str) -> Path:
    """What installing the project writes for `name` (pip/uv's console-script wrapper), calling this
    checkout's function, so no new environment is needed."""
    module, _, function = scripts()[name].partition(":")
    script = bin_dir / name
    script.write_text(
        f"#!{sys.executable}\n"
        "import sys\n"
        f"sys.path.insert(0, {str(PROJECT_ROOT)!r})\n"
        f"from {module} import {function}\n"
        f"sys.exit({function}())\n"
    )
    script.chmod(0o755)
    return script


def complete(bin_dir: Path, line: str) -> list[str]:
    """The words bash offers for `line` (a partial last word) after `eval "$(cnn-train -sc install=bash)"`:
    Hydra's completion function runs `cnn-train -sc query=bash` with COMP_LINE set."""
    words = line.split()
    script = (
        f'eval "$({COMMAND} -sc install=bash)"\n'
        f"COMP_LINE={line!r}; COMP_POINT={len(line)}; COMP_CWORD={len(words) - 1}\n"
        "hydra_bash_completion\n"
        'printf "%s\\n" "${COMPREPLY[@]}"\n'
    )
    env = {**os.environ, "PATH": f"{bin_dir}{os.pathsep}{os.environ['PATH']}", "PYTHONWARNINGS": "ignore"}
    result = subprocess.run(
        ["bash", "--norc", "-c", script], cwd=bin_dir, env=env, capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 0, result.stderr[-2000:]
    return result.stdout.split()


def test_bash_completion_of_the_installed_train_command(tmp_path):
    console_script(tmp_path, COMMAND)
    installed = subprocess.run(
        [str(tmp_path / COMMAND), "-sc", "install=bash"], capture_output=True, text=True, timeout=120
    )
    assert installed.returncode == 0, installed.stderr[-2000:]
    assert installed.stdout.rstrip().endswith(f"-F hydra_bash_completion {COMMAND}")
    assert "model=" in complete(tmp_path, f"{COMMAND} mo")
    assert "data=" in complete(tmp_path, f"{COMMAND} model=lenet5 da")
    assert {"model=alexnet", "model=alexnet_bn"} <= set(complete(tmp_path, f"{COMMAND} model=al"))


def test_python_m_completion_names_the_installed_command():
    result = run_cli("src.train", "-sc", "install=bash")
    assert result.returncode == 2, result.stderr[-2000:]
    assert result.stderr.strip().splitlines() == [
        f"error: shell completion needs the installed command: {COMMAND} -sc install=bash "
        f"(`uv sync` puts {COMMAND} in .venv/bin; `python -m` cannot be completed, Hydra issue #1957)"
    ]


@pytest.mark.parametrize("module", ENTRY_POINTS)
def test_an_unknown_flag_is_one_line_and_help_exits_0(module):
    result = run_cli(module, "--frobnicate", "some_dir")
    assert result.returncode == 2, result.stderr[-2000:]
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr[-2000:]
    assert lines[0].startswith("error: --frobnicate is not an option;"), lines[0]
    assert f"usage: python -m {module}" in lines[0]
    helped = run_cli(module, "--help")
    assert helped.returncode == 0, helped.stderr[-2000:]
    assert helped.stdout.startswith(f"usage: python -m {module}"), helped.stdout[:300]


def test_a_sweep_directory_that_is_not_there_is_one_line(tmp_path):
    result = run_cli("src.sweep", str(tmp_path / "missing"))
    assert result.returncode == 2, result.stderr[-2000:]
    assert result.stderr.strip().splitlines() == [
        f"error: {tmp_path / 'missing'} is not a directory; "
        "give a multirun's (outputs/train/multiruns/<time>)"
    ]


def test_valid_hydra_flags_still_work():
    for args, expected in (
        (["--cfg", "job", "model=alexnet"], "_target_: src.models.AlexNet"),
        (["--cfg", "hydra"], "run:"),
        (["--cfg", "all", "--resolve", "--package", "hydra"], "# @package hydra"),
        (["--info", "searchpath"], "file://"),
        (["--help"], "== Configuration groups =="),
        (["-m", "--help"], "== Configuration groups =="),
    ):
        result = run_cli("src.train", *args)
        assert result.returncode == 0, f"{args}: {result.stderr[-2000:]}"
        assert expected in result.stdout, f"{args}: {result.stdout[:500]}"
