"""Shared test helpers: tiny datasets in the real file formats, config composition, the real CLI."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path

import pytest
from hydra import compose, initialize_config_dir
from hydra.core.global_hydra import GlobalHydra
from hydra.core.hydra_config import HydraConfig
from omegaconf import DictConfig, open_dict

from src.config import CONFIG_DIR, PROJECT_ROOT
from tests.tiny_data import make_tiny_mnist

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


def run_cli(
    module: str, *args: str, env: dict[str, str] | None = None, timeout: int = 300
) -> subprocess.CompletedProcess:
    """Run `python -m <module> <args>` as a user would, from the project root."""
    full_env = {**os.environ, "PYTHONWARNINGS": "ignore", **(env or {})}
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
