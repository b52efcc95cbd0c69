"""Shared test helpers: tiny datasets in the real file formats, config composition, the real CLI."""

from __future__ import annotations

import gzip
import os
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pytest
from hydra import compose, initialize_config_dir
from hydra.core.global_hydra import GlobalHydra
from hydra.core.hydra_config import HydraConfig
from omegaconf import DictConfig, open_dict

from src.config import CONFIG_DIR, PROJECT_ROOT

SHARED_DATA = Path(os.environ.get("DATA_DIR", PROJECT_ROOT.parent / "shared" / "data"))


def write_idx(path: Path, array: np.ndarray, compress: bool = False) -> None:
    """Write an IDX file (LeCun's MNIST format): magic (0, 0, 0x08 = uint8, ndim), big-endian dims, data."""
    header = bytes([0, 0, 0x08, array.ndim]) + b"".join(int(d).to_bytes(4, "big") for d in array.shape)
    payload = header + array.astype(np.uint8).tobytes()
    if compress:
        path = path.with_name(path.name + ".gz")
        path.write_bytes(gzip.compress(payload))
    else:
        path.write_bytes(payload)


def make_tiny_mnist(
    root: Path, train: int = 256, test: int = 64, compress: bool = True, seed: int = 0
) -> Path:
    """A learnable toy MNIST in torchvision's layout: class k is a bright bar at row 2k + 3."""
    raw = root / "MNIST" / "raw"
    raw.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    for prefix, count in (("train", train), ("t10k", test)):
        labels = rng.integers(0, 10, count)
        images = rng.integers(0, 60, (count, 28, 28))
        for image, label in zip(images, labels, strict=True):
            image[2 * label + 3 : 2 * label + 6, 4:24] = 255
        write_idx(raw / f"{prefix}-images-idx3-ubyte", images, compress)
        write_idx(raw / f"{prefix}-labels-idx1-ubyte", labels, compress)
    return root


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
