"""Random images in Flowers-17's shape and pipeline, made in memory: for speed measurements.

Flowers-17 has 680 training images (1,020 for a final fit): at batch 256 that is two or three steps an
epoch, too few to time a training step on a GPU. `SyntheticDataModule` holds `train_size` random uint8
images of 256x256 (Flowers-17's decoded size) and serves them through Flowers-17's own batch work
(random or random-resized crops of the model's input, flips, PCA lighting; centre crops for
evaluation), so a step costs what a Flowers-17 step costs, whatever the pixels. Nothing is read or
written; the labels are random, so accuracy means nothing here.

    python -m src.train experiment=alexnet_bn_flowers17 data=synthetic trainer=gpu  # conf/data/synthetic.yaml
"""

from __future__ import annotations

import torch

from src.data.base import TensorSplit
from src.data.catalog import SYNTHETIC
from src.data.flowers17 import Flowers17DataModule, rgb_principal_components

# The random splits by (sizes, seed): a benchmark builds many datamodules of one config,
# and drawing 2 GB of random bytes takes seconds each time.
_MADE: dict[tuple[int, ...], dict[str, TensorSplit]] = {}


class SyntheticDataModule(Flowers17DataModule):
    card = SYNTHETIC

    def __init__(self, *args, train_size: int = 10240, eval_size: int = 1024, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.train_size, self.eval_size = train_size, eval_size

    def prepare_data(self) -> None:  # nothing to download or decode
        pass

    def _random_split(self, count: int, generator: torch.Generator) -> TensorSplit:
        size = self.card.image_size
        shape = (count, self.card.image_channels, size, size)
        images = torch.randint(0, 256, shape, dtype=torch.uint8, generator=generator)
        return TensorSplit(images, torch.randint(0, self.card.num_classes, (count,), generator=generator))

    def setup(self, stage: str | None = None) -> None:
        if self.splits:
            return
        key = (self.train_size, self.eval_size, self.split_seed)
        if key not in _MADE:
            _MADE.clear()  # one set at a time
            generator = torch.Generator().manual_seed(self.split_seed)
            train = self._random_split(self.train_size, generator)
            evaluation = self._random_split(self.eval_size, generator)
            _MADE[key] = {"train": train, "val": evaluation, "test": evaluation}
        self.splits = dict(_MADE[key])
        self.eigenvalues, self.eigenvectors = rgb_principal_components(self.splits["train"].images[:256])
