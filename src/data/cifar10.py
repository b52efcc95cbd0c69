"""CIFAR-10: 50,000 training and 10,000 test images, 32x32 colour, 10 classes, read with torchvision.

Where the data is looked for, in order:
1. `<data_dir>/cifar-10-batches-py/` already extracted: read where it is (it may be read-only);
2. `<cache_dir>/cifar10/cifar-10-batches-py/`, extracted by an earlier run;
3. `cifar-10-python.tar.gz` in `<data_dir>` (or downloaded into `<cache_dir>/cifar10/` when `download`
   is on): extracted into the cache, never into `data_dir`.

Extraction goes into a temporary directory inside the cache that is renamed when complete, so a crash
or a damaged archive never leaves a half-extracted dataset that a later run would take for whole.

The training set is split deterministically (`split_seed`) into 45,000 for training and 5,000 for
validation; training batches get the usual augmentation: random 32x32 crops of the image zero-padded
by 4 pixels, and random horizontal flips.
"""

from __future__ import annotations

import gzip
import os
import pickle
import shutil
import tarfile
import tempfile
import zlib
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import Tensor
from torchvision.datasets import CIFAR10
from torchvision.datasets.utils import download_url

from src.data.base import InMemoryDataModule, TensorSplit
from src.errors import DataError

ARCHIVE = CIFAR10.filename  # cifar-10-python.tar.gz
FOLDER = CIFAR10.base_folder  # cifar-10-batches-py
FILES = tuple(name for name, _ in CIFAR10.train_list + CIFAR10.test_list) + (CIFAR10.meta["filename"],)

# Errors that mean "this archive is damaged", as opposed to "the cache is not writable".
CORRUPT_ARCHIVE = (tarfile.TarError, EOFError, zlib.error, gzip.BadGzipFile)


# ------------------------------------------------------------------------- shared file helpers
def download_atomically(url: str, target: Path, md5: str | None = None) -> None:
    """torchvision's `download_url` into a scratch directory beside `target`, renamed when complete.

    `download_url` writes straight into its destination, so an interrupted download would otherwise
    leave a truncated file that the next run finds and takes for the real one.
    """
    target.parent.mkdir(parents=True, exist_ok=True)
    scratch = Path(tempfile.mkdtemp(dir=target.parent, prefix=f".{target.name}."))
    try:
        download_url(url, str(scratch), filename=target.name, md5=md5)
        os.replace(scratch / target.name, target)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


def extract_folder_atomically(archive: Path, folder: str, target: Path) -> None:
    """Unpack `<folder>/` of a tarball to `target`: into a scratch directory first, then one rename."""
    target.parent.mkdir(parents=True, exist_ok=True)
    scratch = Path(tempfile.mkdtemp(dir=target.parent, prefix=f".{target.name}."))
    try:
        with tarfile.open(archive, "r:gz") as tar:
            tar.extractall(scratch, filter="data")  # "data": no absolute paths, links out, devices
        if not (scratch / folder).is_dir():
            raise DataError(f"{archive} holds no {folder}/ folder; replace it with the official file")
        os.replace(scratch / folder, target)
    except CORRUPT_ARCHIVE as error:
        raise DataError(f"cannot extract {archive}: {error}; replace it with the official file") from error
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


# ----------------------------------------------------------------------------- augmentation
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


# ----------------------------------------------------------------------------------- reading
class UncheckedCIFAR10(CIFAR10):
    """torchvision's CIFAR10 reader without its md5 check of every batch file.

    The check pins the exact official bytes, so small files written in the same pickle format (the
    tests) would be refused; a damaged real file still fails, when it is unpickled. `check_integrity`
    with md5=None only asks that the file exists.
    """

    train_list = [[name, None] for name, _ in CIFAR10.train_list]
    test_list = [[name, None] for name, _ in CIFAR10.test_list]
    meta = {**CIFAR10.meta, "md5": None}


def _is_complete(folder: Path) -> bool:
    return all((folder / name).is_file() for name in FILES)


def _missing_message(data_dir: Path) -> str:
    return (
        f"CIFAR-10 not found: expected {ARCHIVE} (or an extracted {FOLDER}/) in {data_dir}; "
        "put it there or point DATA_DIR (or data.data_dir=...) at the directory that holds it"
    )


def locate_cifar10(data_dir: Path, cache_dir: Path, download: bool) -> Path:
    """Return a torchvision root whose `cifar-10-batches-py/` is complete (see the module docstring)."""
    cache = cache_dir / "cifar10"
    for root in (data_dir, cache):
        if _is_complete(root / FOLDER):
            return root
    archive = data_dir / ARCHIVE
    if not archive.is_file():
        archive = cache / ARCHIVE
    if not archive.is_file():
        if not download:
            raise DataError(_missing_message(data_dir))
        try:
            download_atomically(CIFAR10.url, archive, md5=CIFAR10.tgz_md5)
        except Exception as error:  # no network, a proxy, a bad mirror: all end the same way
            raise DataError(f"{_missing_message(data_dir)} (download failed: {error})") from error
    extract_folder_atomically(archive, FOLDER, cache / FOLDER)
    if not _is_complete(cache / FOLDER):
        shutil.rmtree(cache / FOLDER)  # leave nothing a later run would take for a whole dataset
        raise DataError(f"{archive} lacks some of {', '.join(FILES)}; replace it with the official file")
    return cache


def read_cifar10(root: Path, train: bool) -> tuple[Tensor, Tensor]:
    """uint8 images (N, 3, 32, 32) and int64 labels of one official split."""
    try:
        dataset = UncheckedCIFAR10(root, train=train)
    except (pickle.UnpicklingError, EOFError, KeyError, ValueError, TypeError, OSError) as error:
        raise DataError(f"cannot read CIFAR-10 from {root / FOLDER}: {error!r}") from error
    images = torch.from_numpy(dataset.data).permute(0, 3, 1, 2).contiguous()  # NHWC numpy -> NCHW
    labels = torch.as_tensor(dataset.targets, dtype=torch.long)
    if labels.numel() and not 0 <= int(labels.min()) <= int(labels.max()) <= 9:
        found = f"{int(labels.min())}..{int(labels.max())}"
        raise DataError(f"CIFAR-10 labels in {root / FOLDER} must be 0..9, found {found}")
    return images, labels


# -------------------------------------------------------------------------------- datamodule
class CIFAR10DataModule(InMemoryDataModule):
    mean = (0.4914, 0.4822, 0.4465)
    # The per-channel std of all training pixels; the often-copied (0.2023, 0.1994, 0.2010) is the
    # mean of the per-image stds instead.
    std = (0.2470, 0.2435, 0.2616)
    class_names = ("airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck")

    def __init__(self, *args, val_size: int = 5000, augmentation: bool = True, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.val_size, self.augmentation = val_size, augmentation

    def prepare_data(self) -> None:
        locate_cifar10(self.data_dir, self.cache_dir, self.download)

    def setup(self, stage: str | None = None) -> None:
        if self.splits:
            return
        root = locate_cifar10(self.data_dir, self.cache_dir, self.download)
        images, labels = read_cifar10(root, train=True)
        if not 0 < self.val_size < len(labels):
            raise DataError(f"data.val_size={self.val_size} must be between 1 and {len(labels) - 1}")
        order = torch.randperm(len(labels), generator=torch.Generator().manual_seed(self.split_seed))
        val_index, train_index = order[: self.val_size], order[self.val_size :]
        self.splits = {
            "train": TensorSplit(images[train_index], labels[train_index]),
            "val": TensorSplit(images[val_index], labels[val_index]),
            "test": TensorSplit(*read_cifar10(root, train=False)),
        }

    def augment(self, images: Tensor) -> Tensor:
        """Random 32x32 crops of the image zero-padded by 4, and random horizontal flips."""
        return random_crops(images, size=images.shape[-1], padding=4) if self.augmentation else images
