"""MNIST: 60,000 training and 10,000 test digits, 28x28 grey, read from the official IDX files.

Where the files are looked for: `<data_dir>/MNIST/raw/` (torchvision's layout), each of the four IDX
files either plain or as the official `.gz`. The source directory may be read-only: anything that has
to be decompressed goes into `<cache_dir>/MNIST/raw/`. When the files are absent and `download` is on,
the four official `.gz` files are downloaded (md5-checked, from torchvision's mirrors) into
`<data_dir>/MNIST/raw/`, or into the cache when `data_dir` is read-only; when that fails too, one line
says what is missing and where.

The files are read here (`read_idx`, a few lines; what torchvision.datasets.MNIST reads too), so a run
on MNIST does not import torchvision; only a download does (its mirrors and md5 sums).

LeCun et al. feed LeNet-5 32x32 images: the 28x28 digits padded by 2 pixels of background. The
training set is split deterministically into 55,000 for training and 5,000 for validation.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import torch
from torch import Tensor

from src.data.base import InMemoryDataModule, TensorSplit
from src.data.catalog import MNIST
from src.data.files import download_atomically, download_dir, gunzip_atomically
from src.utils.errors import DataError

MNIST_FILES = (
    "train-images-idx3-ubyte",
    "train-labels-idx1-ubyte",
    "t10k-images-idx3-ubyte",
    "t10k-labels-idx1-ubyte",
)


def locate_mnist(data_dir: Path, cache_dir: Path) -> Path | None:
    """Return a torchvision root whose MNIST/raw/ holds the four plain IDX files, or None.

    Plain files in `data_dir` are used where they are; `.gz` files are decompressed into the cache.
    """
    source, cache = data_dir / "MNIST" / "raw", cache_dir / "MNIST" / "raw"
    if all((source / name).is_file() for name in MNIST_FILES):
        return data_dir
    for name in MNIST_FILES:
        if (cache / name).is_file():
            continue
        if (source / name).is_file():
            cache.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(source / name, cache / name)
        elif (source / f"{name}.gz").is_file():
            gunzip_atomically(source / f"{name}.gz", cache / name)
        else:
            return None
    return cache_dir


def read_idx(path: Path, ndim: int) -> Tensor:
    """A uint8 IDX file (LeCun's format: magic 0x0000080N, N big-endian int32 sizes, then the bytes) as
    a tensor of those sizes; a file that is not one, or is cut short, is a ValueError naming it."""
    data = path.read_bytes()
    header = 4 * (ndim + 1)
    if len(data) < header or data[:4] != bytes((0, 0, 0x08, ndim)):
        raise ValueError(f"{path.name} is not a {ndim}-dimensional uint8 IDX file")
    shape = [int.from_bytes(data[4 * i : 4 * i + 4], "big") for i in range(1, ndim + 1)]
    count = 1
    for size in shape:
        count *= size
    if len(data) - header < count:
        raise ValueError(f"{path.name} is cut short: {len(data) - header} of {count} bytes")
    return torch.frombuffer(bytearray(data[header : header + count]), dtype=torch.uint8).view(shape)


def read_split(raw: Path, prefix: str) -> tuple[Tensor, Tensor]:
    """uint8 images (N, 28, 28) and int64 labels of `train` or `t10k`."""
    images = read_idx(raw / f"{prefix}-images-idx3-ubyte", 3)
    labels = read_idx(raw / f"{prefix}-labels-idx1-ubyte", 1).long()
    return images, labels


def download_mnist(target: Path) -> None:
    """The four official .gz files into `<target>/MNIST/raw/`, each md5-checked, from the first
    mirror that answers."""
    from torchvision.datasets import MNIST  # its mirrors and md5 sums: only a download imports torchvision

    raw = target / "MNIST" / "raw"
    for filename, md5 in MNIST.resources:
        if (raw / filename).is_file():
            continue
        errors = []
        for mirror in MNIST.mirrors:
            try:
                download_atomically(f"{mirror}{filename}", raw / filename, md5=md5)
                break
            except Exception as error:  # no network, a proxy, a bad mirror: try the next one
                errors.append(f"{mirror}: {error}")
        else:
            raise OSError("; ".join(errors))


def _missing_message(data_dir: Path) -> str:
    return (
        f"MNIST not found: expected {', '.join(MNIST_FILES)} (plain or .gz) in {data_dir / 'MNIST' / 'raw'}; "
        "put them there or point DATA_DIR (or data.data_dir=...) at the directory that holds MNIST/raw/"
    )


class MNISTDataModule(InMemoryDataModule):
    card = MNIST
    mean = (0.1307,)
    std = (0.3081,)
    pad_from = MNIST.image_size  # 28: padded by 2 to LeNet-5's 32, not resized

    def __init__(self, *args, val_size: int = 5000, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.card.check({"val_size": val_size})
        self.val_size = val_size

    def _root(self) -> Path:
        root = locate_mnist(self.data_dir, self.cache_dir)
        if root is not None:
            return root
        if not self.download:
            raise DataError(_missing_message(self.data_dir))
        target = download_dir(self.data_dir, self.cache_dir)
        try:
            download_mnist(target)
        except Exception as error:  # no network, a proxy, a bad mirror: all end the same way
            raise DataError(f"{_missing_message(self.data_dir)} (download failed: {error})") from error
        root = locate_mnist(target, self.cache_dir)
        if root is None:  # pragma: no cover - download_mnist fetched all four files
            raise DataError(_missing_message(target))
        return root

    def find_data(self) -> None:
        self._root()

    def setup(self, stage: str | None = None) -> None:
        if self.splits:
            return
        raw = self._root() / "MNIST" / "raw"
        try:
            (train_images, train_labels), (test_images, test_labels) = (
                read_split(raw, "train"),
                read_split(raw, "t10k"),
            )
        except (RuntimeError, ValueError, OSError) as error:
            raise DataError(f"cannot read MNIST from {raw}: {error}") from error
        for prefix, images, labels in (
            ("train", train_images, train_labels),
            ("t10k", test_images, test_labels),
        ):
            if len(images) != len(labels):
                raise DataError(
                    f"{raw / f'{prefix}-images-idx3-ubyte'} holds {len(images)} images but "
                    f"{raw / f'{prefix}-labels-idx1-ubyte'} {len(labels)} labels; "
                    "replace them with the official files"
                )
        test_split = TensorSplit(test_images.unsqueeze(1), test_labels)
        self.splits = self.holdout_splits(train_images.unsqueeze(1), train_labels, test_split, self.val_size)
