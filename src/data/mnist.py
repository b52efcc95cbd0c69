"""MNIST: 60,000 training and 10,000 test digits, 28x28 grey, read from the official IDX files.

The four IDX files are read from `<data_dir>/MNIST/raw/`, plain or `.gz` (downloaded, md5-checked,
when absent and `download` is on); gzipped ones are decoded once into the cache (src/data/cache.py).
`read_idx` reads them here, so a run on MNIST does not import torchvision (only a download does).
Where each file is looked for: docs/data.md.

LeCun et al. feed LeNet-5 32x32 images: the 28x28 digits padded by 2 pixels of background. The
training set is split deterministically into 55,000 for training and 5,000 for validation.
"""

from __future__ import annotations

from pathlib import Path

import torch
from torch import Tensor

from src.data.base import InMemoryDataModule, TensorSplit
from src.data.cache import fingerprint, load_or_build
from src.data.catalog import MNIST
from src.data.files import download_atomically, download_dir, gunzip
from src.utils.errors import DataError

MNIST_FILES = (
    "train-images-idx3-ubyte",
    "train-labels-idx1-ubyte",
    "t10k-images-idx3-ubyte",
    "t10k-labels-idx1-ubyte",
)


def locate_mnist(data_dir: Path, cache_dir: Path) -> dict[str, Path] | None:
    """Each IDX file's source (MNIST_FILES -> path), or None when one is missing: plain or `.gz` in
    `<data_dir>/MNIST/raw/`, else a `.gz` in `<cache_dir>/MNIST/raw/` (a download). Plain files in the
    cache are never sources: nothing there checks them."""
    source, cache = data_dir / "MNIST" / "raw", cache_dir / "MNIST" / "raw"
    found: dict[str, Path] = {}
    for name in MNIST_FILES:
        candidates = (source / name, source / f"{name}.gz", cache / f"{name}.gz")
        path = next((path for path in candidates if path.is_file()), None)
        if path is None:
            return None
        found[name] = path
    return found


def parse_idx(data: bytes, path: Path, ndim: int) -> Tensor:
    """A uint8 IDX file's bytes (LeCun's format: magic 0x0000080N, N big-endian int32 sizes, then the
    bytes) as a tensor of those sizes; bytes that are not one, or are cut short, are a ValueError."""
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


def read_idx(path: Path, ndim: int) -> Tensor:
    """An IDX file, plain or gzipped (decompressed in memory); a damaged one is a DataError naming it."""
    try:
        return parse_idx(gunzip(path) if path.suffix == ".gz" else path.read_bytes(), path, ndim)
    except (OSError, ValueError) as error:
        raise DataError(f"cannot read MNIST from {path.parent}: {error}") from error


def read_split(sources: dict[str, Path], prefix: str) -> tuple[Tensor, Tensor]:
    """uint8 images (N, 28, 28) and int64 labels of `train` or `t10k`, as many of each."""
    image_file, label_file = sources[f"{prefix}-images-idx3-ubyte"], sources[f"{prefix}-labels-idx1-ubyte"]
    images, labels = read_idx(image_file, 3), read_idx(label_file, 1).long()
    if len(images) != len(labels):
        raise DataError(
            f"{image_file} holds {len(images)} images but {label_file} {len(labels)} labels; "
            "replace them with the official files"
        )
    return images, labels


def decode(sources: dict[str, Path]) -> dict[str, Tensor]:
    (train_images, train_labels), (test_images, test_labels) = (
        read_split(sources, "train"),
        read_split(sources, "t10k"),
    )
    return {
        "train_images": train_images, "train_labels": train_labels,
        "test_images": test_images, "test_labels": test_labels,
    }  # fmt: skip


def load_mnist(sources: dict[str, Path], cache_dir: Path) -> dict[str, Tensor]:
    """The decoded files: read in place when all are plain, else from the checked cache (module doc)."""
    cache = cache_dir / "MNIST"
    if not any(path.suffix == ".gz" for path in sources.values()):
        return decode(sources)
    return load_or_build(
        cache / "mnist-uint8.pt", fingerprint(sources.values()), lambda: decode(sources), "MNIST"
    )


def download_mnist(target: Path) -> None:
    """The four official .gz files into `<target>/MNIST/raw/`, each md5-checked, from the first
    mirror that answers."""
    # deferred: torchvision (its mirrors and md5 sums), only for a download
    from torchvision.datasets import MNIST

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

    def __init__(self, *args, val_size: int = 5000, train_on_val: bool = False, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.card.check({"val_size": val_size, "train_on_val": train_on_val})
        self.val_size, self.train_on_val = val_size, train_on_val

    def _sources(self) -> dict[str, Path]:
        sources = locate_mnist(self.data_dir, self.cache_dir)
        if sources is not None:
            return sources
        if not self.download:
            raise DataError(_missing_message(self.data_dir))
        target = download_dir(self.data_dir, self.cache_dir)
        try:
            download_mnist(target)
        except Exception as error:  # no network, a proxy, a bad mirror: all end the same way
            raise DataError(f"{_missing_message(self.data_dir)} (download failed: {error})") from error
        sources = locate_mnist(target, self.cache_dir)
        if sources is None:  # pragma: no cover - download_mnist fetched all four files
            raise DataError(_missing_message(target))
        return sources

    def find_data(self) -> dict[str, Tensor]:
        return load_mnist(self._sources(), self.cache_dir)  # decodes into the cache once, on one process

    def setup(self, stage: str | None = None) -> None:
        if self.splits:
            return
        data = self.found()
        test_split = TensorSplit(data["test_images"].unsqueeze(1), data["test_labels"])
        train_images = data["train_images"].unsqueeze(1)
        self.splits = self.holdout_splits(
            train_images, data["train_labels"], test_split, self.val_size, self.train_on_val
        )
