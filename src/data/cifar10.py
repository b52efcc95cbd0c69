"""CIFAR-10: 50,000 training and 10,000 test images, 32x32 colour, 10 classes, read with torchvision.

The data is read from the extracted `cifar-10-batches-py/` in `data_dir`, else from the official
`cifar-10-python.tar.gz` (downloaded when absent and `download` is on), and its six pickles decoded
once into the cache (src/data/cache.py); where each file is looked for: docs/data.md.

The training set is split deterministically (`split_seed`) into 45,000 for training and 5,000 for
validation; training batches get the usual augmentation: random 32x32 crops of the image zero-padded
by 4 pixels (`crop_padding`; 0: flips only), and random horizontal flips.
"""

from __future__ import annotations

import logging
import pickle
import shutil
import tempfile
from pathlib import Path

import torch
from torch import Tensor
from torchvision.datasets import CIFAR10

from src.data import catalog
from src.data.base import InMemoryDataModule, TensorSplit, random_crops
from src.data.cache import fingerprint, load_or_build
from src.data.files import download_atomically, download_dir, extract_folder_atomically
from src.utils.errors import DataError

ARCHIVE = CIFAR10.filename  # cifar-10-python.tar.gz
FOLDER = CIFAR10.base_folder  # cifar-10-batches-py
FILES = tuple(name for name, _ in CIFAR10.train_list + CIFAR10.test_list) + (CIFAR10.meta["filename"],)
log = logging.getLogger(__name__)


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


def find_sources(data_dir: Path, cache_dir: Path, download: bool) -> list[Path]:
    """What CIFAR-10 can be decoded from, first choice first: an extracted `cifar-10-batches-py/` in
    `data_dir`, the archive (downloading it if there is neither and `download` is on)."""
    cache = cache_dir / "cifar10"
    folder = [data_dir / FOLDER] if _is_complete(data_dir / FOLDER) else []
    archive = next((path for path in (data_dir / ARCHIVE, cache / ARCHIVE) if path.is_file()), None)
    if folder or archive is not None:
        return folder + ([archive] if archive is not None else [])
    if not download:
        raise DataError(_missing_message(data_dir))
    archive = download_dir(data_dir, cache) / ARCHIVE
    try:
        download_atomically(CIFAR10.url, archive, md5=CIFAR10.tgz_md5)
    except Exception as error:  # no network, a proxy, a bad mirror: all end the same way
        raise DataError(f"{_missing_message(data_dir)} (download failed: {error})") from error
    return [archive]


def decode(source: Path, cache: Path) -> dict[str, Tensor]:
    """The official splits as uint8 (N, 3, 32, 32) images and labels, from a folder or the archive
    (extracted into a scratch folder of the cache, removed afterwards)."""
    if source.is_dir():
        return _read_splits(source.parent)
    cache.mkdir(parents=True, exist_ok=True)
    scratch = Path(tempfile.mkdtemp(dir=cache, prefix=".extract-"))
    try:
        extract_folder_atomically(source, FOLDER, scratch / FOLDER)
        if not _is_complete(scratch / FOLDER):
            raise DataError(f"{source} lacks some of {', '.join(FILES)}; replace it with the official file")
        return _read_splits(scratch)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


def _read_splits(root: Path) -> dict[str, Tensor]:
    train_images, train_labels = read_cifar10(root, train=True)
    test_images, test_labels = read_cifar10(root, train=False)
    return {
        "train_images": train_images, "train_labels": train_labels,
        "test_images": test_images, "test_labels": test_labels,
    }  # fmt: skip


def decode_first(sources: list[Path], cache: Path) -> dict[str, Tensor]:
    """`decode` the first source that can be read; one line for each that cannot, while another is left."""
    for source, fallback in zip(sources, [*sources[1:], None], strict=True):
        try:
            return decode(source, cache)
        except DataError as error:
            if fallback is None:
                raise
            log.warning("CIFAR-10: %s; reading %s instead", error, fallback)
    raise AssertionError("no source given")  # pragma: no cover - find_sources returns at least one


def load_cifar10(data_dir: Path, cache_dir: Path, download: bool) -> dict[str, Tensor]:
    """The decoded splits, from the cache when it holds a whole copy of these sources (module doc)."""
    sources = find_sources(data_dir, cache_dir, download)
    files = [path for source in sources for path in _files(source)]
    cache = cache_dir / "cifar10"
    return load_or_build(
        cache / "cifar10-uint8.pt", fingerprint(files), lambda: decode_first(sources, cache), "CIFAR-10"
    )


def _files(source: Path) -> list[Path]:
    """The files a source is: the extracted folder's pickles, or the archive."""
    return [source / name for name in FILES] if source.is_dir() else [source]


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
    card = catalog.CIFAR10
    mean = (0.4914, 0.4822, 0.4465)
    # The per-channel std of all training pixels; the often-copied (0.2023, 0.1994, 0.2010) is the
    # mean of the per-image stds instead.
    std = (0.2470, 0.2435, 0.2616)

    def __init__(
        self,
        *args,
        val_size: int = 5000,
        train_on_val: bool = False,
        augmentation: bool = True,
        crop_padding: int = 4,
        **kwargs,
    ) -> None:
        super().__init__(*args, **kwargs)
        options = dict(val_size=val_size, train_on_val=train_on_val)
        self.card.check({**options, "augmentation": augmentation, "crop_padding": crop_padding})
        self.val_size, self.train_on_val, self.augmentation = val_size, train_on_val, augmentation
        self.crop_padding = crop_padding

    def find_data(self) -> dict[str, Tensor]:
        return load_cifar10(self.data_dir, self.cache_dir, self.download)

    def setup(self, stage: str | None = None) -> None:
        if self.splits:
            return
        data = self.found()
        test = TensorSplit(data["test_images"], data["test_labels"])
        self.splits = self.holdout_splits(
            data["train_images"], data["train_labels"], test, self.val_size, self.train_on_val
        )

    def static_inputs(self, train: bool) -> bool:
        return not (train and self.augmentation)  # evaluation, and training without augmentation

    def augment(self, images: Tensor) -> Tensor:
        """Random 32x32 crops of the image zero-padded by `crop_padding`, and random horizontal flips."""
        if not self.augmentation:
            return images
        return random_crops(images, size=images.shape[-1], padding=self.crop_padding)
