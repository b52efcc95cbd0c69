"""Shared test helpers: tiny datasets in the real file formats, config composition, the real CLI."""

from __future__ import annotations

import atexit
import json
import os
import signal
import subprocess
import sys
import tempfile
import threading
from collections.abc import Sequence
from pathlib import Path

import pytest
from hydra import compose, initialize_config_dir
from hydra.core.global_hydra import GlobalHydra
from hydra.core.hydra_config import HydraConfig
from omegaconf import DictConfig, open_dict

from src.config.compose import CONFIG_DIR, PROJECT_ROOT
from tests.tiny_data import make_tiny_mnist

# `pytest -n 2` (pytest-xdist, the README's test command) runs two tests at once on a 2-core machine.
# Each worker, and every process it starts, then keeps to one torch thread: two 2-thread trainings on
# 2 cores make torch's threads wait for each other (an epoch measured 3.5 s alone, 121 s beside a busy
# process). Set before torch is imported here; subprocesses inherit it.
if os.environ.get("PYTEST_XDIST_WORKER"):
    os.environ.setdefault("OMP_NUM_THREADS", "1")

SHARED_DATA = Path(os.environ.get("DATA_DIR", PROJECT_ROOT.parent / "shared" / "data"))


@pytest.fixture
def tiny_mnist(tmp_path: Path) -> Path:
    return make_tiny_mnist(tmp_path / "data")


def compose_train_config(overrides: Sequence[str], output_dir: Path) -> DictConfig:
    """The config `python -m src.train <overrides>` runs, with its output in `output_dir`."""
    GlobalHydra.instance().clear()
    with initialize_config_dir(config_dir=str(CONFIG_DIR), version_base="1.3"):
        cfg = compose(config_name="train", overrides=list(overrides), return_hydra_config=True)
    with open_dict(cfg):
        cfg.hydra.runtime.output_dir = str(output_dir)
        cfg.hydra.job.num = 0
    HydraConfig.instance().set_config(cfg)
    return cfg


class WarmInterpreter:
    """The client of tests/fork_server.py: runs `python -m <module>` as a fork of a warm process."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.server = subprocess.Popen(
            [sys.executable, "-m", "tests.fork_server"],
            cwd=PROJECT_ROOT,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        self._answer()  # ready once its imports are done
        atexit.register(self.server.kill)

    def _answer(self) -> dict:
        line = self.server.stdout.readline()
        if not line:
            raise RuntimeError(f"tests/fork_server.py ended (exit status {self.server.poll()})")
        return json.loads(line)

    def run(
        self, module: str, args: Sequence[str], env: dict[str, str], timeout: int
    ) -> subprocess.CompletedProcess:
        with self.lock, tempfile.TemporaryDirectory() as tmp:
            out, err = Path(tmp) / "stdout", Path(tmp) / "stderr"
            request = {"module": module, "args": list(args), "cwd": str(PROJECT_ROOT), "env": env}
            request |= {"stdout": str(out), "stderr": str(err)}
            self.server.stdin.write(json.dumps(request) + "\n")
            self.server.stdin.flush()
            command = [sys.executable, "-m", module, *args]
            timed_out = threading.Event()
            timer = threading.Timer(timeout, self._kill, (self._answer()["pid"], timed_out))
            timer.start()
            returncode = self._answer()["returncode"]
            timer.cancel()
            if timed_out.is_set():
                raise subprocess.TimeoutExpired(command, timeout, out.read_text(), err.read_text())
            return subprocess.CompletedProcess(command, returncode, out.read_text(), err.read_text())

    @staticmethod
    def _kill(pid: int, timed_out: threading.Event) -> None:
        timed_out.set()
        os.kill(pid, signal.SIGKILL)


_warm: WarmInterpreter | None = None


def run_cli(
    module: str, *args: str, env: dict[str, str] | None = None, timeout: int = 300, fresh: bool = False
) -> subprocess.CompletedProcess:
    """Run `python -m <module> <args>` as a user would, from the project root: as a fork of a warm
    interpreter (tests/fork_server.py; set TESTS_FRESH_INTERPRETER=1 to turn that off), or in a fresh
    one with fresh=True (DDP, whose launcher starts the other ranks as new processes)."""
    global _warm
    full_env = {**os.environ, "PYTHONWARNINGS": "ignore", **(env or {})}
    if not fresh and os.environ.get("TESTS_FRESH_INTERPRETER") != "1":
        _warm = _warm or WarmInterpreter()
        return _warm.run(module, args, full_env, timeout)
    return subprocess.run(
        [sys.executable, "-m", module, *args],
        cwd=PROJECT_ROOT,
        env=full_env,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def fast_overrides(data_dir: Path, output_dir: Path) -> list[str]:
    """Overrides for a quick run on the tiny data, writing only into `output_dir`."""
    return [
        f"data.data_dir={data_dir}",
        f"paths.cache_dir={output_dir / 'cache'}",
        f"paths.log_dir={output_dir}",
        f"hydra.run.dir={output_dir / 'run'}",
        "data.val_size=64",
        "data.batch_size=32",
        "data.download=false",
        "callbacks.progress_bar=null",
    ]
