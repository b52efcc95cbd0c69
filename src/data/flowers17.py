"""Oxford Flowers-17 (Nilsback & Zisserman 2006): 1,360 colour photos, 17 classes of 80, JPEGs of
varying size, read from the official `17flowers.tgz`; image i belongs to class (i - 1) // 80.

As in the AlexNet paper, each image's short side is resized to 256 and the central 256x256 square kept,
once: the result is saved in the cache (src/data/cache.py). Splits: the official `datasplits.mat`
(40/20/20 images a class) when it lies beside the archive, else a stratified 40/20/20 split drawn with
`split_seed`; `train_on_val` trains on train + val. Per batch, training gets the paper's augmentation
(random crops, flips, PCA colour lighting; random-resized crops with `min_crop_area`), evaluation the
centre crop, or ten crops with `ten_crop_test`. Where the archive is looked for: docs/data.md.
"""

from __future__ import annotations

import io
import re
import tarfile
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from torch import Tensor

from src.data.base import InMemoryDataModule, TensorSplit, random_crops, random_resized_crops
from src.data.cache import fingerprint, load_or_build
from src.data.catalog import FLOWERS17
from src.data.files import CORRUPT_ARCHIVE, download_atomically, download_dir
from src.data.images import square
from src.utils.errors import DataError

CLASSES = FLOWERS17.class_names  # in the order of the images' numbers
PER_CLASS = 80
NUM_IMAGES = len(CLASSES) * PER_CLASS  # 1360
ARCHIVE = "17flowers.tgz"
URL = "https://www.robots.ox.ac.uk/~vgg/data/flowers/17/17flowers.tgz"
SPLITS_FILE = "datasplits.mat"
DECODED_SIZE = FLOWERS17.image_size  # 256: the AlexNet paper's 256x256 images
MIN_CROP = 224  # the paper's crop; smaller models get a 224 crop resized to their input
JPEG_NAME = re.compile(r"(?:\./)?jpg/image_(\d+)\.jpg")


# ----------------------------------------------------------------------------- the archive
def find_archive(data_dir: Path, cache_dir: Path) -> Path | None:
    candidates = (data_dir / "flowers17" / ARCHIVE, data_dir / ARCHIVE, cache_dir / "flowers17" / ARCHIVE)
    return next((path for path in candidates if path.is_file()), None)


def _missing_message(data_dir: Path) -> str:
    return (
        f"Flowers-17 not found: expected {ARCHIVE} in {data_dir / 'flowers17'} or {data_dir}; "
        "put it there or point DATA_DIR (or data.data_dir=...) at the directory that holds flowers17/"
    )


def read_jpegs(archive: Path) -> dict[int, bytes]:
    """The still-encoded JPEGs of the archive, by image number: one sequential pass, nothing on disk."""
    jpegs: dict[int, bytes] = {}
    try:
        with tarfile.open(archive, "r:gz") as tar:
            for member in tar:
                match = JPEG_NAME.fullmatch(member.name)
                handle = tar.extractfile(member) if match and member.isfile() else None
                if match and handle is not None:  # a regular file always has a handle
                    jpegs[int(match[1])] = handle.read()
    except CORRUPT_ARCHIVE as error:
        raise DataError(f"cannot read {archive}: {error}; replace it with the official file") from error
    return jpegs


def check_numbering(numbers: set[int], archive: Path) -> None:
    """Classes come from the numbers, so they must be exactly 1..1360."""
    if len(numbers) != NUM_IMAGES:
        raise DataError(
            f"{archive} holds {len(numbers)} images, expected {NUM_IMAGES} ({PER_CLASS} per class)"
        )
    missing = sorted(set(range(1, NUM_IMAGES + 1)) - numbers)
    if missing:
        raise DataError(f"{archive} lacks jpg/image_{missing[0]:04d}.jpg but holds images numbered past it")


def decode_square(jpeg: bytes, size: int) -> np.ndarray:
    """Decode a JPEG, resize its short side to `size` and keep the central `size` x `size` square."""
    with Image.open(io.BytesIO(jpeg)) as image:
        return square(image, 3, size)


def decode_archive(archive: Path, size: int = DECODED_SIZE) -> tuple[Tensor, Tensor]:
    """All images as uint8 (1360, 3, size, size), in number order, and their class indices."""
    jpegs = read_jpegs(archive)
    check_numbering(set(jpegs), archive)
    images = torch.empty(NUM_IMAGES, 3, size, size, dtype=torch.uint8)
    # Filled through numpy, whose strided copy is single-threaded: torch's copy_ hands each image to its
    # thread pool, which on a busy machine costs milliseconds an image instead of ~0.1 ms.
    array = images.numpy()
    for number, jpeg in jpegs.items():
        try:
            array[number - 1] = decode_square(jpeg, size)
        except (OSError, ValueError, Image.DecompressionBombError) as error:
            member = f"jpg/image_{number:04d}.jpg"
            raise DataError(
                f"cannot decode {member} in {archive}: {error}; replace it with the official file"
            ) from error
    return images, torch.arange(NUM_IMAGES) // PER_CLASS


def decoded_cache_file(cache_dir: Path, size: int = DECODED_SIZE) -> Path:
    """Where the decoded archive is kept (src/data/cache.py records which archive it came from)."""
    return cache_dir / "flowers17" / f"17flowers-{size}px.pt"


def load_or_decode(archive: Path, cache_dir: Path) -> tuple[Tensor, Tensor]:
    """The decoded archive from the cache, decoding (and caching) it first if need be; an entry that is
    damaged or was decoded from another archive is decoded again."""
    cached = decoded_cache_file(cache_dir)

    def decode() -> dict[str, Tensor]:
        images, labels = decode_archive(archive)
        return {"images": images, "labels": labels}

    state = load_or_build(cached, fingerprint([archive]), decode, "Flowers-17")
    return state["images"], state["labels"]


class Flowers17:
    """Oxford Flowers-17, decoded: `Flowers17(root, cache_dir=..., download=True)`.

    `root` is searched for the archive (see the module docstring) and may be read-only; the decoded
    images go into `cache_dir` (default: `root`). `data` is uint8 (1360, 3, 256, 256), `targets` int64
    (1360,), `archive` the file they were decoded from; the datamodule below splits and augments them.
    """

    classes = CLASSES

    def __init__(self, root: str | Path, cache_dir: str | Path | None = None, download: bool = False) -> None:
        self.root_dir = Path(root).expanduser()
        self.cache_dir = Path(cache_dir).expanduser() if cache_dir is not None else self.root_dir
        self.archive = self._archive(download)
        self.data, self.targets = load_or_decode(self.archive, self.cache_dir)

    def _archive(self, download: bool) -> Path:
        archive = find_archive(self.root_dir, self.cache_dir)
        if archive is not None:
            return archive
        if not download:
            raise DataError(_missing_message(self.root_dir))
        target = download_dir(self.root_dir, self.cache_dir) / "flowers17" / ARCHIVE
        try:
            download_atomically(URL, target)  # no md5: the count check below catches a wrong file
        except Exception as error:  # no network, a proxy, a moved page: all end the same way
            raise DataError(f"{_missing_message(self.root_dir)} (download failed: {error})") from error
        return target

    def __len__(self) -> int:
        return len(self.targets)


# ---------------------------------------------------------------------------------- splits
def find_splits_file(archive: Path, data_dir: Path) -> Path | None:
    candidates = (archive.parent / SPLITS_FILE, data_dir / "flowers17" / SPLITS_FILE, data_dir / SPLITS_FILE)
    return next((path for path in candidates if path.is_file()), None)


def official_split(mat_file: Path, split_index: int) -> dict[str, Tensor]:
    """Split `split_index` (1..3) of datasplits.mat: keys trn<k>, val<k>, tst<k>, 1-based numbers."""
    from scipy.io import loadmat  # deferred: scipy, only to read datasplits.mat

    try:
        mat = loadmat(mat_file)
        split = {
            name: torch.from_numpy(mat[f"{key}{split_index}"].astype(np.int64).ravel()) - 1
            for name, key in (("train", "trn"), ("val", "val"), ("test", "tst"))
        }
    except (OSError, ValueError, KeyError, TypeError) as error:
        raise DataError(f"cannot read split {split_index} from {mat_file}: {error!r}") from error
    for name, index in split.items():
        if index.numel() == 0 or not 0 <= int(index.min()) <= int(index.max()) < NUM_IMAGES:
            raise DataError(f"{mat_file}: split {split_index} {name} must number images 1..{NUM_IMAGES}")
    return split


def stratified_split(labels: Tensor, seed: int, sizes: tuple[int, ...] = (40, 20, 20)) -> dict[str, Tensor]:
    """Per class, a seeded permutation of its images cut into train/val/test of `sizes`."""
    by_class = torch.stack([torch.nonzero(labels == c).squeeze(1) for c in range(len(CLASSES))])
    generator = torch.Generator().manual_seed(seed)
    shuffle = torch.rand(by_class.shape, generator=generator).argsort(dim=1)  # a permutation per row
    parts = by_class.gather(1, shuffle).split(list(sizes), dim=1)
    return {name: part.flatten() for name, part in zip(("train", "val", "test"), parts, strict=True)}


# ------------------------------------------------------------------------------ batch work
def rgb_principal_components(images: Tensor, stride: int = 4) -> tuple[Tensor, Tensor]:
    """Eigenvalues (3,) and eigenvectors (3, 3, one a column) of the covariance of RGB values in
    [0, 1], over every `stride`-th pixel of each row and column (plenty for a 3x3 covariance)."""
    pixels = images[:, :, ::stride, ::stride].transpose(0, 1).reshape(3, -1).double().div(255)
    eigenvalues, eigenvectors = torch.linalg.eigh(torch.cov(pixels))
    return eigenvalues.float(), eigenvectors.float()


def pca_lighting(images: Tensor, eigenvalues: Tensor, eigenvectors: Tensor, std: float = 0.1) -> Tensor:
    """Krizhevsky et al.'s colour augmentation: add sum_i alpha_i * lambda_i * p_i to every pixel of an
    image, with alpha_i ~ N(0, std) drawn per image; lambda_i, p_i from the training pixels' PCA."""
    alpha = torch.randn(len(images), 3, device=images.device) * std
    shift = (alpha * eigenvalues.to(images.device)) @ eigenvectors.to(images.device).T  # (N, 3)
    return images + shift.view(-1, 3, 1, 1)


def centre_crop(images: Tensor, size: int) -> Tensor:
    top, left = (images.shape[-2] - size) // 2, (images.shape[-1] - size) // 2
    return images[..., top : top + size, left : left + size]


def ten_crops(images: Tensor, size: int) -> Tensor:
    """(N, C, H, W) -> (N, 10, C, size, size): the four corners and the centre, then all five mirrored."""
    height, width = images.shape[-2:]
    corners = [(0, 0), (0, width - size), (height - size, 0), (height - size, width - size)]
    crops = [images[..., y : y + size, x : x + size] for y, x in corners] + [centre_crop(images, size)]
    five = torch.stack(crops, dim=1)
    return torch.cat([five, five.flip(-1)], dim=1)


# ------------------------------------------------------------------------------ datamodule
class Flowers17DataModule(InMemoryDataModule):
    card = FLOWERS17
    mean = (0.485, 0.456, 0.406)  # ImageNet's: 680 training images give no better estimate worth having
    std = (0.229, 0.224, 0.225)

    def __init__(
        self,
        *args,
        split_index: int | None = None,
        ten_crop_test: bool = False,
        augmentation: bool = True,
        min_crop_area: float | None = None,
        train_on_val: bool = False,
        **kwargs,
    ) -> None:
        super().__init__(*args, **kwargs)  # checks input_size against the decoded images (the card)
        options = dict(split_index=split_index, ten_crop_test=ten_crop_test, augmentation=augmentation)
        more = dict(min_crop_area=min_crop_area, train_on_val=train_on_val, flip_eval=self.flip_eval)
        self.card.check({**options, **more, "shift_eval": self.shift_eval})
        self.split_index, self.ten_crop_test, self.augmentation = split_index, ten_crop_test, augmentation
        self.min_crop_area, self.train_on_val = min_crop_area, train_on_val
        # The paper's crop: the model's own input from 224 up (227 for AlexNet), else 224 then resized.
        self.crop_size = max(self.input_size, MIN_CROP)
        self.eigenvalues, self.eigenvectors = torch.ones(3), torch.eye(3)  # set from the data in setup()

    def find_data(self) -> Flowers17:
        return Flowers17(self.data_dir, cache_dir=self.cache_dir, download=self.download)  # decodes once

    def _split(self, dataset: Flowers17) -> dict[str, Tensor]:
        mat_file = find_splits_file(dataset.archive, self.data_dir)
        if mat_file is not None:
            return official_split(mat_file, self.split_index or 1)
        if self.split_index is not None:
            raise DataError(
                f"data.split_index={self.split_index} needs the official {SPLITS_FILE} beside "
                f"{dataset.archive}; put it there or set data.split_index=null"
            )
        return stratified_split(dataset.targets, self.split_seed)

    def setup(self, stage: str | None = None) -> None:
        if self.splits:
            return
        dataset = self.found()
        indices = self._split(dataset)
        if self.train_on_val:  # the final fit of a chosen recipe: 60 images a class; val/acc then
            indices["train"] = torch.cat([indices["train"], indices["val"]])  # measures training fit only
        self.splits = {
            name: TensorSplit(dataset.data[index], dataset.targets[index]) for name, index in indices.items()
        }
        self.eigenvalues, self.eigenvectors = rgb_principal_components(self.splits["train"].images)

    def augment(self, images: Tensor) -> Tensor:
        """Random crops with horizontal flips, then PCA colour lighting (the AlexNet paper's two). With
        `min_crop_area`, the crops are random-resized: min_crop_area..1 of the 256x256 image, resized."""
        if not self.augmentation:
            return self.eval_view(images)
        if self.min_crop_area is None:
            crops = random_crops(images, self.crop_size)
        else:
            crops = random_resized_crops(images, self.crop_size, self.min_crop_area)
        return pca_lighting(crops, self.eigenvalues, self.eigenvectors)

    def eval_view(self, images: Tensor) -> Tensor:
        return centre_crop(images, self.crop_size)

    def pixels_to_model_input(self, x: Tensor, train: bool = False, test_view: bool = False) -> Tensor:
        """As the base class; for a ten-crop test (N, 10, C, H, W), each crop fitted and normalised."""
        if train or not (test_view and self.ten_crop_test):
            return super().pixels_to_model_input(x, train)
        crops = ten_crops(x, self.crop_size)  # (N, 10, C, S, S)
        # Each crop takes the usual evaluation path (its centre crop of size S is itself).
        return super().pixels_to_model_input(crops.flatten(0, 1)).unflatten(0, crops.shape[:2])
