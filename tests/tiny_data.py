"""Tiny datasets written in the real file formats, so the real readers are what the tests exercise."""

from __future__ import annotations

import gzip
import io
import pickle
import tarfile
from pathlib import Path

import numpy as np
from PIL import Image

from src.data.catalog import CIFAR10


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


def _batch(rng: np.random.Generator, count: int, name: str) -> dict:
    # The official files are Python 2 pickles whose keys torchvision reads, with encoding="latin1", as
    # str ("data", "labels"); rows are 3072 bytes: 1024 red, 1024 green, 1024 blue, each row-major.
    return {
        "batch_label": name,
        "labels": rng.integers(0, 10, count).tolist(),
        "data": rng.integers(0, 256, (count, 3072), dtype=np.uint8),
        "filenames": [f"{name}_{i}.png" for i in range(count)],
    }


def write_cifar_archive(
    path: Path, seed: int = 0, per_batch: int = 20, test_size: int = 30
) -> dict[str, dict]:
    """cifar-10-python.tar.gz with 5 x per_batch training and test_size test images; returns the batches."""
    rng = np.random.default_rng(seed)
    batches = {f"data_batch_{k}": _batch(rng, per_batch, f"training batch {k}") for k in range(1, 6)}
    batches["test_batch"] = _batch(rng, test_size, "testing batch 1")
    meta = {"label_names": list(CIFAR10.class_names), "num_cases_per_batch": per_batch}
    with tarfile.open(path, "w:gz") as tar:
        for name, content in {**batches, "batches.meta": meta}.items():
            blob = pickle.dumps(content, protocol=2)
            info = tarfile.TarInfo(f"cifar-10-batches-py/{name}")
            info.size = len(blob)
            tar.addfile(info, io.BytesIO(blob))
    return batches


def tiny_flowers_jpegs(colours: np.ndarray, textured: bool = False) -> dict[int, bytes]:
    """image_0001 … image_1360: landscape 16x12 and portrait 12x16 in turn, each one plain colour, or
    (`textured`) that colour plus noise, so that crops of one image differ."""
    encoded, rng = {}, np.random.default_rng(0)
    for number, colour in enumerate(colours, start=1):
        width, height = (16, 12) if number % 2 else (12, 16)
        pixels = np.broadcast_to(colour, (height, width, 3)).astype(np.int16)
        if textured:
            pixels = pixels + rng.integers(-60, 61, pixels.shape)
        buffer = io.BytesIO()
        Image.fromarray(pixels.clip(0, 255).astype(np.uint8)).save(buffer, format="JPEG", quality=95)
        encoded[number] = buffer.getvalue()
    return encoded


def write_tgz(path: Path, jpegs: dict[int, bytes]) -> Path:
    """17flowers.tgz as distributed: jpg/files.txt and jpg/image_NNNN.jpg."""
    path.parent.mkdir(parents=True, exist_ok=True)
    names = [f"image_{number:04d}.jpg" for number in jpegs]
    members = {"jpg/files.txt": "\n".join(names).encode() + b"\n"}
    members.update({f"jpg/{name}": jpeg for name, jpeg in zip(names, jpegs.values(), strict=True)})
    with tarfile.open(path, "w:gz") as tar:
        for name, blob in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(blob)
            tar.addfile(info, io.BytesIO(blob))
    return path


def snapshot(directory: Path) -> list[tuple[str, int, int]]:
    entries = [directory, *sorted(directory.rglob("*"))]
    return [(str(p.relative_to(directory)), p.stat().st_size, p.stat().st_mtime_ns) for p in entries]


def make_tiny_flowers(root: Path, seed: int = 0, textured: bool = False) -> Path:
    """<root>/flowers17/17flowers.tgz with 1360 tiny one-colour (or `textured`) JPEGs; returns root."""
    colours = np.random.default_rng(seed).integers(0, 256, (1360, 3), dtype=np.uint8)
    write_tgz(root / "flowers17" / "17flowers.tgz", tiny_flowers_jpegs(colours, textured))
    return root


def make_tiny_cifar(root: Path, seed: int = 0) -> Path:
    """<root>/cifar-10-python.tar.gz with 100 training and 30 test images; returns root."""
    root.mkdir(parents=True, exist_ok=True)
    write_cifar_archive(root / "cifar-10-python.tar.gz", seed)
    return root
