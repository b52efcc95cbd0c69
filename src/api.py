"""The project from Python (a notebook, a script): train a run and use a trained one.

    from src.api import load_run, train      # or: from src import load_run
    result = train(["model=lenet5", "data=mnist", "trainer.max_epochs=1"], output_dir="outputs/nb")
    run = load_run("outputs/nb")
    run.predict(["seven.png"], topk=3)     # [[("7", 0.99), ("9", 0.004), ("2", 0.001)]]

`train` composes and checks the overrides exactly as `python -m src.train` does, without a Hydra
command line; `load_run` rebuilds a finished run (src/runs/trained.py) for `.model`, `.classes`,
`.config`, `.preprocess(images)` and `.predict(paths or images)`.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from hydra import compose, initialize_config_dir
from hydra.core.global_hydra import GlobalHydra
from hydra.core.hydra_config import HydraConfig
from omegaconf import DictConfig, open_dict
from torch import Tensor, nn

from src.config.check import validate_command_line
from src.config.compose import CONFIG_DIR
from src.data.images import read_image
from src.runs.rundir import RunDir
from src.runs.trained import load_trained, top_classes
from src.training import fit


def train(overrides: Sequence[str], output_dir: str | Path) -> dict[str, Any]:
    """Train and test like `python -m src.train <overrides>`, into `output_dir`; the metrics written to
    its metrics.json. A mistake in the overrides raises the CLI's one-line error (a UserError)."""
    validate_command_line(list(overrides))
    GlobalHydra.instance().clear()
    with initialize_config_dir(config_dir=str(CONFIG_DIR), version_base="1.3"):
        cfg = compose(config_name="train", overrides=list(overrides), return_hydra_config=True)
    with open_dict(cfg):
        cfg.hydra.runtime.output_dir = str(Path(output_dir).resolve())
        cfg.hydra.job.num = 0
    HydraConfig.instance().set_config(cfg)  # paths.output_dir and the trackers read it, as in a CLI run
    return fit.train(cfg, RunDir(Path(output_dir)))


@dataclass
class Run:
    """A finished run, ready to classify: its network in eval mode and how its images are converted."""

    path: Path
    config: DictConfig
    module: Any  # the LightningModule (src/training/module.py)
    datamodule: Any
    classes: list[str]

    @property
    def model(self) -> nn.Module:
        return self.module.model

    def preprocess(self, images: Tensor) -> Tensor:
        """uint8 images (N, C, H, W) as the dataset holds them -> the model's input, as in the test (with
        its ten crops or mirror images where the run tested so: (N, views, C, H, W))."""
        return self.datamodule.pixels_to_model_input(images.float() / 255, test_view=True)

    def read(self, path: str | Path) -> Tensor:
        """An image file as the dataset holds its images (src/data/images.py)."""
        card = self.datamodule.card
        return torch.from_numpy(read_image(Path(path), card.image_channels, card.image_size).copy())

    def predict(self, items: Sequence[str | Path] | Tensor, topk: int = 1) -> list[list[tuple[str, float]]]:
        """The top-k (class, probability) of each image: files, or a uint8 batch (N, C, H, W)."""
        images = items if isinstance(items, Tensor) else torch.stack([self.read(item) for item in items])
        with torch.no_grad():
            probabilities = self.module(self.preprocess(images)).softmax(dim=-1)
        return top_classes(probabilities, self.classes, topk)


def load_run(path: str | Path, ckpt_path: str | Path | None = None) -> Run:
    """A finished run (its tested checkpoint, else last.ckpt, or `ckpt_path`), in eval mode on the CPU."""
    config, datamodule, module, _ = load_trained(
        RunDir(Path(path)), (), Path(ckpt_path) if ckpt_path else None
    )
    classes = datamodule.label_names(module.model.num_classes)
    return Run(Path(path), config, module, datamodule, classes)
