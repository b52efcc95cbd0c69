"""Splits made model-ready once (src/data/base.py, `model_ready`) give the batches the per-batch path gives,
bit for bit, in the same order; augmented training batches stay per batch."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from src.data.cifar10 import CIFAR10DataModule
from src.data.mnist import MNISTDataModule
from tests.tiny_data import make_tiny_mnist, write_cifar_archive


def mnist(data_dir: Path, cache_dir: Path, **overrides) -> MNISTDataModule:
    kwargs = dict(input_size=32, input_channels=1, batch_size=32)
    kwargs.update(val_size=50, download=False, eval_batch_size=40, seed=3)
    datamodule = MNISTDataModule(str(data_dir), str(cache_dir), **{**kwargs, **overrides})
    datamodule.setup()
    return datamodule


def batches(datamodule, split: str, train: bool, epoch: int = 0) -> list[tuple[torch.Tensor, torch.Tensor]]:
    """What the network gets: each batch after on_after_batch_transfer (training: the train view)."""
    loader = datamodule.loader(split, train=train)
    loader.sampler.set_epoch(epoch)  # EpochBatchSampler, as Lightning sets it each epoch
    out = []
    for images, labels in loader:
        out.append((datamodule.to_model_input(images, train=train).contiguous(), labels))
    return out


@pytest.mark.parametrize(("input_size", "input_channels"), [(32, 1), (28, 1), (227, 3), (64, 3)])
def test_model_ready_mnist_batches_are_the_per_batch_ones(tmp_path, input_size, input_channels):
    data = make_tiny_mnist(tmp_path / "data", train=200, test=60)
    size = dict(input_size=input_size, input_channels=input_channels)
    ready = mnist(data, tmp_path / "cache", **size)
    per_batch = mnist(data, tmp_path / "cache", **size)
    per_batch.ready_budget_bytes = 0  # nothing fits: every batch is made ready on its own
    for split, train in (("train", True), ("val", False), ("test", False)):
        for epoch in (0, 1):
            got, expected = batches(ready, split, train, epoch), batches(per_batch, split, train, epoch)
            assert len(got) == len(expected) > 0
            for (x, y), (x0, y0) in zip(got, expected, strict=True):
                assert torch.equal(y, y0)
                assert x.dtype == x0.dtype == torch.float32 and torch.equal(x, x0), (split, epoch)
                assert x.shape[1:] == (input_channels, input_size, input_size)
    # the ready loaders really serve float inputs, the per-batch ones uint8 images
    assert next(iter(ready.train_dataloader()))[0].dtype == torch.float32
    assert next(iter(per_batch.train_dataloader()))[0].dtype == torch.uint8


def test_a_split_is_made_ready_once_and_shared_by_its_loaders(tmp_path):
    data = make_tiny_mnist(tmp_path / "data", train=200, test=60)
    datamodule = mnist(data, tmp_path / "cache", val_size=0)  # val and test: the same split
    first = datamodule.loader("val", train=False).dataset
    assert first.model_ready and first is datamodule.loader("test", train=False).dataset
    assert first is datamodule.loader("test", train=True).dataset  # no augmentation: one view
    assert datamodule.splits["test"].images.dtype == torch.uint8  # the raw split is kept as it was


def test_on_after_batch_transfer_passes_model_ready_batches_through(tmp_path):
    data = make_tiny_mnist(tmp_path / "data", train=200, test=60)
    datamodule = mnist(data, tmp_path / "cache")
    batch = next(iter(datamodule.val_dataloader()))
    assert datamodule.on_after_batch_transfer(batch, 0) is batch


def test_augmented_training_stays_per_batch_and_evaluation_is_made_ready(tmp_path):
    write_cifar_archive(tmp_path / "cifar-10-python.tar.gz")
    kwargs = dict(input_size=32, input_channels=3, batch_size=16)
    augmented = CIFAR10DataModule(
        str(tmp_path), str(tmp_path / "cache"), val_size=10, download=False, **kwargs
    )
    augmented.setup()
    assert next(iter(augmented.train_dataloader()))[0].dtype == torch.uint8  # random crops: per batch
    assert next(iter(augmented.val_dataloader()))[0].dtype == torch.float32
    plain, per_batch = (
        CIFAR10DataModule(
            str(tmp_path), str(tmp_path / "cache"), val_size=10, download=False, augmentation=False, **kwargs
        )
        for _ in range(2)
    )
    plain.setup(), per_batch.setup()
    per_batch.ready_budget_bytes = 0
    assert next(iter(plain.train_dataloader()))[0].dtype == torch.float32
    got, expected = batches(plain, "train", True), batches(per_batch, "train", True)
    assert all(torch.equal(x, x0) for (x, _), (x0, _) in zip(got, expected, strict=True))


def test_fast_dev_run_makes_nothing_ready(tmp_path):
    class FastDevRun:
        fast_dev_run = True
        global_rank, world_size = 0, 1

    data = make_tiny_mnist(tmp_path / "data", train=200, test=60)
    datamodule = mnist(data, tmp_path / "cache")
    datamodule.trainer = FastDevRun()
    assert next(iter(datamodule.train_dataloader()))[0].dtype == torch.uint8
