"""What every dataset here shares: images kept in memory as uint8 tensors, served a whole batch at a time.

- each split is one uint8 tensor (N, C, H, W) plus a label tensor, decoded once;
- the sampler yields lists of indices and the dataset answers with `images[indices]` in one gather,
  so a DataLoader with `batch_size=None` and no workers delivers ready batches;
- per-pixel work (augmentation, resizing, grey <-> colour, normalisation) runs on the whole batch in
  `on_after_batch_transfer`, on the GPU when there is one; splits without augmentation are made
  model-ready once (`model_ready`), and on a GPU every split is kept there (`keep_on_device`).

Data order is a pure function of (seed, epoch); in DDP each rank takes its own slice of the same
permutation. Why not a torchvision Dataset with per-sample transforms: docs/development.md; what
model-ready splits save: docs/speed.md.
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any, ClassVar

import lightning as L
import torch
import torch.nn.functional as F
from torch import Tensor
from torch.utils.data import DataLoader, Dataset, Sampler

from src.data.catalog import DatasetCard
from src.utils.errors import ConfigError, DataError


class TensorSplit(Dataset):
    """One split held in memory; indexed by a list of indices it returns a whole batch.

    `images` are uint8 (N, C, H, W), or with `model_ready=True` float inputs the network takes as they
    are (InMemoryDataModule.model_ready makes those)."""

    def __init__(self, images: Tensor, labels: Tensor, model_ready: bool = False) -> None:
        if model_ready and not images.is_floating_point():
            raise ValueError(f"model-ready images must be floating point, got {images.dtype}")
        if not model_ready and (images.dtype != torch.uint8 or images.ndim != 4):
            raise ValueError(f"images must be uint8 (N, C, H, W), got {images.dtype} {tuple(images.shape)}")
        self.images, self.labels, self.model_ready = images, labels, model_ready

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, indices: Sequence[int]) -> tuple[Tensor, Tensor]:
        index = torch.as_tensor(indices)
        if self.images.device.type == "cuda":  # the indices to the GPU without waiting for the copy
            index = index.pin_memory().to(self.images.device, non_blocking=True)
        elif self.images.device != index.device:
            index = index.to(self.images.device)
        return self.images[index], self.labels[index]

    def to(self, device: torch.device) -> TensorSplit:
        return TensorSplit(self.images.to(device), self.labels.to(device), model_ready=self.model_ready)


class EpochBatchSampler(Sampler[list[int]]):
    """Batches of indices; the order depends only on (seed, epoch), and rank r of w takes every w-th one.

    For training (`shuffle=True`) every rank gets the same number of batches (the permutation is cut
    to a multiple of the world size), which DDP needs to keep its gradient all-reduces in step.
    """

    def __init__(
        self,
        size: int,
        batch_size: int,
        shuffle: bool,
        seed: int = 0,
        drop_last: bool = False,
        rank: int = 0,
        world_size: int = 1,
    ) -> None:
        self.size, self.batch_size, self.shuffle, self.seed = size, batch_size, shuffle, seed
        self.drop_last, self.rank, self.world_size = drop_last, rank, world_size
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:  # Lightning calls this at the start of every epoch
        self.epoch = epoch

    def _indices(self) -> Tensor:
        if self.shuffle:
            generator = torch.Generator().manual_seed(self.seed * 1_000_003 + self.epoch)
            order = torch.randperm(self.size, generator=generator)
            order = order[: self.size - self.size % self.world_size]
        else:
            order = torch.arange(self.size)
        return order[self.rank :: self.world_size]

    def __iter__(self) -> Iterator[list[int]]:
        indices = self._indices().tolist()
        stop = len(indices) - len(indices) % self.batch_size if self.drop_last else len(indices)
        for start in range(0, stop, self.batch_size):
            yield indices[start : start + self.batch_size]

    def __len__(self) -> int:
        count = len(self._indices())
        return count // self.batch_size if self.drop_last else math.ceil(count / self.batch_size)


def fit_to_input(images: Tensor, size: int, channels: int, pad_from: int | None = None) -> Tensor:
    """Adapt a float batch to the model's input: spatial size first, then channels.

    `pad_from`: when the images are `pad_from` pixels and the model wants `pad_from + 2k`, pad by k
    (LeCun's 28 -> 32 for MNIST) instead of resizing, which would blur the strokes.
    """
    height, width = images.shape[-2:]
    if (height, width) != (size, size):
        margin = size - height
        if pad_from == height == width and margin > 0 and margin % 2 == 0:
            images = F.pad(images, (margin // 2,) * 4)
        else:
            images = F.interpolate(
                images, size=(size, size), mode="bilinear", antialias=True, align_corners=False
            )
    have = images.shape[1]
    if have == channels:
        return images
    if have == 1:
        return images.expand(-1, channels, -1, -1)
    if channels == 1 and have == 3:  # ITU-R 601 luma, as PIL's convert("L")
        weights = torch.tensor([0.299, 0.587, 0.114], device=images.device, dtype=images.dtype)
        return (images * weights.view(1, 3, 1, 1)).sum(1, keepdim=True)
    raise ConfigError(f"cannot turn {have}-channel images into the model's {channels} input channels")


def random_crops(images: Tensor, size: int, padding: int = 0, flip: bool = True) -> Tensor:
    """A random `size` x `size` window of each image (zero-padded by `padding` first), mirrored
    left-right with probability 1/2: one gather for the whole batch, no Python loop over samples.

    Each image gets its own row indices `top + 0..size-1` and column indices `left + 0..size-1`
    (reversed when it is flipped); advanced indexing with (N,1,1,1), (1,C,1,1), (N,1,S,1) and (N,1,1,S)
    index tensors broadcasts them to the (N, C, S, S) output.
    """
    if padding:
        images = F.pad(images, (padding,) * 4)
    count, channels, height, width = images.shape
    device = images.device
    steps = torch.arange(size, device=device)
    rows = torch.randint(0, height - size + 1, (count, 1), device=device) + steps
    cols = torch.randint(0, width - size + 1, (count, 1), device=device) + steps
    if flip:
        cols = torch.where(torch.rand(count, 1, device=device) < 0.5, cols.flip(1), cols)
    batch = torch.arange(count, device=device).view(count, 1, 1, 1)
    channel = torch.arange(channels, device=device).view(1, channels, 1, 1)
    return images[batch, channel, rows.view(count, 1, size, 1), cols.view(count, 1, 1, size)]


def shifted_views(images: Tensor, pixels: int) -> Tensor:
    """(N, C, H, W) -> (N, 3, C, H, W): each image, then it moved `pixels` down-right and up-left with
    zeros filling in: windows that random crops of the zero-padded image also give in training (the
    CIFAR-10 speedruns' test-time translations)."""
    height, width = images.shape[-2:]
    padded = F.pad(images, (pixels,) * 4)
    far = 2 * pixels
    moved = (padded[..., :height, :width], padded[..., far : far + height, far : far + width])
    return torch.stack([images, *moved], dim=1)


def random_resized_crops(
    images: Tensor, size: int, min_area: float, ratio: tuple[float, float] = (3 / 4, 4 / 3)
) -> Tensor:
    """Scale augmentation (Szegedy et al. 2014, torchvision's RandomResizedCrop), for a float batch:
    each image gets a random window covering `min_area`..1 of its area, with aspect ratio drawn
    log-uniformly from `ratio`, resized to `size` x `size` and mirrored left-right with probability 1/2.

    One `grid_sample` for the whole batch: an image's window is an affine map of the output grid, in
    the [-1, 1] coordinates `affine_grid` uses, so the window's half-widths are its scale factors and
    its centre the translation (a negative x scale mirrors it). A window that would stick out of the
    image (a wide window of a large area) is clamped to the image's side, instead of torchvision's
    re-draws.
    """
    count = len(images)
    device = images.device
    area = torch.empty(count, device=device).uniform_(min_area, 1.0)
    log_ratio = torch.empty(count, device=device).uniform_(math.log(ratio[0]), math.log(ratio[1]))
    aspect = log_ratio.exp()
    width = (area * aspect).sqrt().clamp(max=1.0)  # fractions of the image's width / height
    height = (area / aspect).sqrt().clamp(max=1.0)
    centre_x = (torch.rand(count, device=device) * 2 - 1) * (1 - width)
    centre_y = (torch.rand(count, device=device) * 2 - 1) * (1 - height)
    mirror = torch.where(torch.rand(count, device=device) < 0.5, -1.0, 1.0)
    theta = torch.zeros(count, 2, 3, device=device)
    theta[:, 0, 0], theta[:, 0, 2] = width * mirror, centre_x
    theta[:, 1, 1], theta[:, 1, 2] = height, centre_y
    grid = F.affine_grid(theta, [count, images.shape[1], size, size], align_corners=False)
    return F.grid_sample(images, grid, mode="bilinear", padding_mode="border", align_corners=False)


class InMemoryDataModule(L.LightningDataModule):
    """Base for the datasets here: subclasses fill `self.splits` with uint8 TensorSplits in `setup()`.

    Per-batch work happens in `on_after_batch_transfer`: `augment` (training only, dataset-specific),
    `eval_view` (validation/test, e.g. a centre crop), then `fit_to_input` and normalisation.

    What the dataset is (its classes, channels, the limits of its options) is its `card`
    (src/data/catalog.py); the constructor checks the options against it.
    """

    card: ClassVar[DatasetCard]
    mean: tuple[float, ...] = (0.5,)
    std: tuple[float, ...] = (0.5,)
    pad_from: int | None = None  # see fit_to_input
    ready_budget_bytes: int = 1 << 30  # model-ready copies of a split up to this size (float32)
    READY_CHUNK = 8192  # images made ready at a time (bounds the temporary memory)

    def __init__(
        self,
        data_dir: str,
        cache_dir: str,
        input_size: int,
        input_channels: int,
        batch_size: int = 128,
        eval_batch_size: int = 1000,
        seed: int = 0,
        split_seed: int = 0,
        download: bool = True,
        keep_on_device: bool = True,
        flip_eval: bool = False,
        shift_eval: int = 0,
    ) -> None:
        super().__init__()
        options = dict(batch_size=batch_size, eval_batch_size=eval_batch_size, split_seed=split_seed)
        options.update(download=download, keep_on_device=keep_on_device, flip_eval=flip_eval)
        options.update(shift_eval=shift_eval)
        self.card.check(options, input_size)
        self.data_dir, self.cache_dir = Path(data_dir).expanduser(), Path(cache_dir).expanduser()
        self.input_size, self.input_channels = input_size, input_channels
        self.batch_size, self.eval_batch_size = batch_size, eval_batch_size
        self.seed, self.split_seed, self.download = seed, split_seed, download
        # Validation and test average each image's prediction with its mirror image's (flip_eval: for
        # datasets whose classes a horizontal flip keeps, e.g. CIFAR-10; not digits).
        self.flip_eval = flip_eval
        # ... and with each image moved `shift_eval` pixels down-right and up-left (0: not; shifted_views).
        self.shift_eval = shift_eval
        self.splits: dict[str, TensorSplit] = {}  # in host memory
        # Where batches are served from: the trainer's device (a GPU: a copy of each split made there once,
        # `keep_on_device`), else `batch_device` (bench's bare loop sets it), else host memory.
        self.keep_on_device, self.batch_device = keep_on_device, None
        self._device_splits: dict[tuple[str, str, bool], tuple[TensorSplit, TensorSplit]] = {}
        self._prepared, self._found = False, None
        self._ready: dict[tuple[int, str], tuple[TensorSplit, TensorSplit]] = {}

    @property
    def class_names(self) -> tuple[str, ...]:
        return self.card.class_names

    def label_names(self, count: int) -> list[str]:
        """Names for a network's `count` outputs: the class names, or the output indices where the
        network was given another number of classes (`model.num_classes=...`)."""
        names = list(self.class_names)
        return names if len(names) == count else [str(i) for i in range(count)]

    def prepare_data(self) -> None:
        """Find the dataset (download, decompress or decode it into the cache if need be), once per
        process: src.train calls this before it builds the Trainer, so that a missing dataset is
        reported first, and the Trainer calls it again."""
        if not self._prepared:
            self._found = self.find_data()
            self._prepared = True

    def find_data(self) -> Any:
        """What prepare_data does (subclasses): find the dataset and return it decoded (setup takes it
        from `found`); raise DataError when it is missing or damaged."""

    def found(self) -> Any:
        """The dataset as `find_data` returns it: kept from prepare_data in this process (once), else
        found now (DDP calls prepare_data on one process per node only)."""
        found, self._found = self._found, None
        return found if found is not None else self.find_data()

    def holdout_splits(
        self, images: Tensor, labels: Tensor, test: TensorSplit, val_size: int, train_on_val: bool = False
    ) -> dict[str, TensorSplit]:
        """train/val/test from a training set and a test split: `val_size` training images, drawn with
        `split_seed` (the same ones for every run), are held out for validation. `val_size=0` trains on
        all of them and validates on the test set, as the study sheet's Keras runs did (their "validation"
        accuracy is a test accuracy: fine for a reproduction, not for model selection). `train_on_val`
        (the final fit of a recipe chosen on validation) trains on every training image, the validation
        images included: val/acc then measures training fit, and nothing may select on it."""
        if val_size == 0:
            return {"train": TensorSplit(images, labels), "val": test, "test": test}
        if val_size >= len(labels):  # the lower limit is the card's rule, checked in __init__
            raise DataError(
                f"data.val_size={val_size} is out of range: must be 0 (validate on test) to {len(labels) - 1}"
            )
        order = torch.randperm(len(labels), generator=torch.Generator().manual_seed(self.split_seed))
        val_index, train_index = order[:val_size], (order if train_on_val else order[val_size:])
        return {
            "train": TensorSplit(images[train_index], labels[train_index]),
            "val": TensorSplit(images[val_index], labels[val_index]),
            "test": test,
        }

    # ---------------------------------------------------------------------------------- loaders
    def _rank_and_world(self) -> tuple[int, int]:
        trainer = self.trainer
        return (trainer.global_rank, trainer.world_size) if trainer is not None else (0, 1)

    def serving_device(self) -> torch.device:
        """The device batches come from: the accelerator's (GPU) with `keep_on_device`, else the host."""
        strategy = getattr(self.trainer, "strategy", None)  # None outside a Trainer (src.eval, the bench)
        device = strategy.root_device if strategy is not None else self.batch_device
        if not self.keep_on_device or device is None or torch.device(device).type != "cuda":
            return torch.device("cpu")
        return torch.device(device)

    def served_split(self, split: str, train: bool = False) -> TensorSplit:
        """`splits[split]` (made model-ready where that is exact: `model_ready`) on `serving_device()`:
        copied there once, on first use."""
        ready = self.model_ready(self.splits[split], train)
        device = self.serving_device()
        if device.type == "cpu":
            return ready
        key = (split, str(device), ready.model_ready)
        if key not in self._device_splits or self._device_splits[key][0] is not ready:
            self._device_splits[key] = (ready, ready.to(device))
        return self._device_splits[key][1]

    def loader(self, split: str, train: bool = False) -> DataLoader:
        """The batches of `split` in this process's share: shuffled and augmented (`train`), or in order."""
        rank, world_size = self._rank_and_world()
        dataset = self.served_split(split, train)
        sampler = EpochBatchSampler(
            len(dataset),
            self.batch_size if train else self.eval_batch_size,
            shuffle=train,
            seed=self.seed,
            drop_last=train and len(dataset) // world_size > self.batch_size,
            rank=rank,
            world_size=world_size,
        )
        # Its own generator: creating an iterator draws a (here unused) worker seed, which would otherwise
        # come from the global RNG, whose stream augmentation uses and a resumed run must continue exactly.
        generator = torch.Generator().manual_seed(self.seed)
        return DataLoader(dataset, batch_size=None, sampler=sampler, num_workers=0, generator=generator)

    def train_dataloader(self) -> DataLoader:
        return self.loader("train", train=True)

    def val_dataloader(self) -> DataLoader:
        return self.loader("val", train=False)

    def test_dataloader(self) -> DataLoader:
        return self.loader("test", train=False)

    # ------------------------------------------------------------------------------ batch work
    def static_inputs(self, train: bool) -> bool:
        """Whether `to_model_input(images, train)` is the same every time for an image (no random
        augmentation): then a split is made model-ready once instead of batch by batch. True where a
        subclass overrides none of augment (for train), eval_view (for evaluation), pixels_to_model_input."""
        base = InMemoryDataModule
        if type(self).pixels_to_model_input is not base.pixels_to_model_input:
            return False
        return type(self).augment is base.augment if train else type(self).eval_view is base.eval_view

    def model_ready(self, split: TensorSplit, train: bool) -> TensorSplit:
        """`split` with its images made model-ready once (the same `to_model_input`, for the whole split),
        when that is exact (`static_inputs`), fits `ready_budget_bytes`, and is worth it (not for the
        few batches of fast_dev_run); else `split` itself, made ready batch by batch."""
        if split.model_ready or not self.static_inputs(train):
            return split
        # fast_dev_run: set on the Trainer by Lightning's debugging set-up, not declared on the class
        if self.trainer is not None and self.trainer.fast_dev_run:  # type: ignore[attr-defined]
            return split
        if len(split) * self.input_channels * self.input_size**2 * 4 > self.ready_budget_bytes:
            return split
        view = "any" if self.static_inputs(not train) else ("train" if train else "eval")
        key = (id(split), view)
        cached = self._ready.get(key)
        if cached is None or cached[0] is not split:
            chunks = [
                self.to_model_input(split.images[start : start + self.READY_CHUNK], train).contiguous()
                for start in range(0, len(split), self.READY_CHUNK)
            ]
            cached = (split, TensorSplit(torch.cat(chunks), split.labels, model_ready=True))
            self._ready[key] = cached
        return cached[1]

    def augment(self, images: Tensor) -> Tensor:
        """Training-time augmentation of a float batch in [0, 1]; none by default."""
        return images

    def eval_view(self, images: Tensor) -> Tensor:
        """What validation and test see (e.g. a centre crop); the images as they are by default."""
        return images

    def to_model_input(self, images: Tensor, train: bool) -> Tensor:
        """uint8 batch (N, C, H, W) -> normalised float batch in the model's input size and channels;
        with `flip_eval` and/or `shift_eval`, for evaluation (N, views, C, H, W): each image first, then its
        mirror image and/or its shifted copies, whose predictions the LightningModule averages. A float
        batch comes from a model-ready split (`model_ready`) and is returned as it is."""
        if images.is_floating_point():
            return images
        return self.pixels_to_model_input(images.float().div_(255), train, self.testing_or_predicting())

    def testing_or_predicting(self) -> bool:
        """Whether the batch is for the test (or src.predict, which classifies as the test does)."""
        return self.trainer is not None and (self.trainer.testing or self.trainer.predicting)

    def pixels_to_model_input(self, x: Tensor, train: bool = False, test_view: bool = False) -> Tensor:
        """`to_model_input` of a float batch of pixels in [0, 1] (src.export folds this into the model);
        `test_view`: the test's own view where a datamodule has one (Flowers-17's ten crops)."""
        x = self.augment(x) if train else self.eval_view(x)
        shifts = 0 if train else self.shift_eval
        if shifts:  # the shifted copies go through the rest as images of their own
            x = shifted_views(x, shifts)
            views, x = x.shape[1], x.flatten(0, 1)
        mean = torch.tensor(self.mean, device=x.device).view(1, -1, 1, 1)
        std = torch.tensor(self.std, device=x.device).view(1, -1, 1, 1)
        x = fit_to_input(x, self.input_size, x.shape[1], self.pad_from)
        x = (x - mean) / std
        x = fit_to_input(x, self.input_size, self.input_channels)
        if shifts:
            x = x.unflatten(0, (-1, views))
        if self.flip_eval and not train:
            x = torch.cat([x, x.flip(-1)], dim=1) if shifts else torch.stack([x, x.flip(-1)], dim=1)
        return x

    def on_after_batch_transfer(
        self, batch: tuple[Tensor, Tensor], dataloader_idx: int
    ) -> tuple[Tensor, Tensor]:
        images, labels = batch
        if images.is_floating_point():  # from a model-ready split: nothing left to do per batch
            return batch
        training = self.trainer is not None and self.trainer.training
        return self.to_model_input(images, train=training).contiguous(), labels
