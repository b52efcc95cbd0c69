"""CIFAR-10 datamodule on a tiny archive written in the real format, in a read-only data directory."""

from __future__ import annotations

import hashlib
import stat
import tarfile
import urllib.error
from pathlib import Path

import pytest
import torch

from src.data import cifar10, files
from src.data.base import random_crops
from src.data.cifar10 import CIFAR10DataModule
from src.utils.errors import DataError
from tests.conftest import SHARED_DATA
from tests.tiny_data import snapshot, write_cifar_archive

PER_BATCH, TEST_SIZE, VAL_SIZE = 20, 30, 10


@pytest.fixture
def read_only_data(tmp_path: Path):
    """A data directory holding the archive, chmod'ed read-only (root ignores that, hence snapshot())."""
    data_dir = tmp_path / "data"
    data_dir.mkdir()
    batches = write_cifar_archive(data_dir / "cifar-10-python.tar.gz")
    (data_dir / "cifar-10-python.tar.gz").chmod(stat.S_IRUSR | stat.S_IRGRP | stat.S_IROTH)
    data_dir.chmod(stat.S_IRUSR | stat.S_IXUSR | stat.S_IRGRP | stat.S_IXGRP)
    yield data_dir, batches
    data_dir.chmod(stat.S_IRWXU)  # let pytest clean up


def make(data_dir: Path, cache_dir: Path, **overrides) -> CIFAR10DataModule:
    kwargs = dict(input_size=32, input_channels=3, batch_size=16)
    kwargs.update(val_size=VAL_SIZE, download=False)
    return CIFAR10DataModule(str(data_dir), str(cache_dir), **{**kwargs, **overrides})


def test_splits_come_from_the_cache_and_nothing_is_written_into_data_dir(read_only_data, tmp_path):
    data_dir, batches = read_only_data
    before = snapshot(data_dir)
    datamodule = make(data_dir, tmp_path / "cache")
    datamodule.prepare_data()
    datamodule.setup()
    sizes = {name: len(split) for name, split in datamodule.splits.items()}
    assert sizes == {"train": 5 * PER_BATCH - VAL_SIZE, "val": VAL_SIZE, "test": TEST_SIZE}
    assert snapshot(data_dir) == before
    # decoded once into one cache file; the extracted pickles are gone
    assert [p.name for p in (tmp_path / "cache" / "cifar10").iterdir()] == ["cifar10-uint8.pt"]
    # uint8 NCHW, pixel for pixel the rows of the file (1024 R, 1024 G, 1024 B).
    test = datamodule.splits["test"]
    assert test.images.dtype == torch.uint8 and test.images.shape == (TEST_SIZE, 3, 32, 32)
    expected = torch.from_numpy(batches["test_batch"]["data"]).view(TEST_SIZE, 3, 32, 32)
    assert torch.equal(test.images, expected)
    assert test.labels.tolist() == batches["test_batch"]["labels"]


def test_validation_split_depends_only_on_split_seed(read_only_data, tmp_path):
    data_dir, _ = read_only_data
    first, again, other = (make(data_dir, tmp_path / "cache", split_seed=s) for s in (0, 0, 1))
    for datamodule in (first, again, other):
        datamodule.setup()
    assert torch.equal(first.splits["val"].images, again.splits["val"].images)
    assert not torch.equal(first.splits["val"].images, other.splits["val"].images)
    train_and_val = torch.cat([first.splits["train"].images, first.splits["val"].images])
    assert len(torch.unique(train_and_val.flatten(1), dim=0)) == 5 * PER_BATCH  # disjoint, all used


def test_an_extracted_folder_is_read_where_it_is(read_only_data, tmp_path):
    data_dir, _ = read_only_data
    extracted = tmp_path / "extracted"
    with tarfile.open(data_dir / "cifar-10-python.tar.gz") as tar:
        tar.extractall(extracted, filter="data")
    before = snapshot(extracted)
    datamodule = make(extracted, tmp_path / "other-cache")
    datamodule.setup()
    assert len(datamodule.splits["test"]) == TEST_SIZE
    assert snapshot(extracted) == before
    assert [p.name for p in (tmp_path / "other-cache" / "cifar10").iterdir()] == ["cifar10-uint8.pt"]


def test_later_runs_load_the_decoded_cache_and_rebuild_it_when_damaged(
    read_only_data, tmp_path, monkeypatch, caplog
):
    data_dir, _ = read_only_data
    first = make(data_dir, tmp_path / "cache")
    first.setup()
    cached = tmp_path / "cache" / "cifar10" / "cifar10-uint8.pt"

    def no_decoding(*args):
        raise AssertionError("decoded again although the cache is whole")

    monkeypatch.setattr(cifar10, "decode", no_decoding)
    second = make(data_dir, tmp_path / "cache")
    second.setup()  # from the cache alone
    assert torch.equal(second.splits["test"].images, first.splits["test"].images)
    monkeypatch.undo()

    cached.write_bytes(cached.read_bytes()[: cached.stat().st_size // 2])  # a copy cut short
    third = make(data_dir, tmp_path / "cache")
    with caplog.at_level("WARNING"):
        third.setup()
    assert torch.equal(third.splits["test"].images, first.splits["test"].images)
    [line] = [record.getMessage() for record in caplog.records]
    assert f"CIFAR-10: the cached copy {cached} cannot be read" in line and "rebuilding it" in line


@pytest.mark.parametrize(
    ("input_size", "input_channels"),
    [(32, 3), (32, 1), (227, 3)],  # colour LeNet, grey LeNet, AlexNet
)
def test_batches_come_out_at_the_model_input(read_only_data, tmp_path, input_size, input_channels):
    data_dir, _ = read_only_data
    datamodule = make(data_dir, tmp_path / "cache", input_size=input_size, input_channels=input_channels)
    datamodule.setup()
    images, labels = next(iter(datamodule.train_dataloader()))
    expected = (len(labels), input_channels, input_size, input_size)
    for train in (True, False):
        x = datamodule.to_model_input(images, train=train)
        assert x.dtype == torch.float32 and x.shape == expected
    x, _ = datamodule.on_after_batch_transfer((images, labels), 0)  # no trainer: evaluation
    assert x.shape == expected


@pytest.mark.parametrize("crop_padding", [4, 2, 0])
def test_augment_is_a_random_padded_crop_with_flips(tmp_path, crop_padding):
    torch.manual_seed(0)
    images = torch.rand(16, 3, 32, 32)
    augmented = make(tmp_path, tmp_path, crop_padding=crop_padding).augment(images)
    assert augmented.shape == images.shape
    assert not torch.equal(augmented, images)
    padded = torch.nn.functional.pad(images, (crop_padding,) * 4)
    offsets = range(2 * crop_padding + 1)
    for source, result in zip(padded, augmented, strict=True):  # each is one of the views
        views = [
            window.flip(-1) if flip else window
            for top in offsets
            for left in offsets
            for window in [source[:, top : top + 32, left : left + 32]]
            for flip in (False, True)
        ]
        assert any(torch.equal(view, result) for view in views)


def test_random_crops_without_padding_or_flip_are_windows():
    images = torch.arange(2 * 1 * 6 * 6, dtype=torch.float32).view(2, 1, 6, 6)
    crops = random_crops(images, size=4, flip=False)
    assert crops.shape == (2, 1, 4, 4)
    for image, crop in zip(images, crops, strict=True):
        top, left = divmod(int(crop[0, 0, 0] - image[0, 0, 0]), 6)
        assert torch.equal(crop, image[:, top : top + 4, left : left + 4])


@pytest.mark.parametrize("damage", ["truncated", "garbage"])
def test_a_damaged_archive_names_the_file_and_leaves_no_extraction(tmp_path, damage):
    data_dir = tmp_path / "data"
    data_dir.mkdir()
    archive = data_dir / "cifar-10-python.tar.gz"
    write_cifar_archive(archive)
    blob = archive.read_bytes()
    archive.write_bytes(blob[: len(blob) // 2] if damage == "truncated" else b"not an archive" * 64)
    with pytest.raises(DataError, match="cifar-10-python.tar.gz") as caught:
        make(data_dir, tmp_path / "cache").setup()
    assert "replace it" in str(caught.value) and "\n" not in str(caught.value)
    assert list((tmp_path / "cache" / "cifar10").iterdir()) == []  # no half-extracted folder, no scratch


def test_missing_archive_says_what_where_and_DATA_DIR(tmp_path):
    with pytest.raises(DataError) as caught:
        make(tmp_path, tmp_path / "cache").setup()
    message = str(caught.value)
    assert "cifar-10-python.tar.gz" in message and str(tmp_path) in message and "DATA_DIR" in message
    assert "\n" not in message


def test_failed_download_is_the_same_one_line_plus_the_reason(tmp_path, monkeypatch):
    def offline(*args, **kwargs):
        raise urllib.error.URLError("no network here")

    monkeypatch.setattr(files, "download_url", offline)
    with pytest.raises(DataError, match=r"DATA_DIR.*download failed.*no network here") as caught:
        make(tmp_path, tmp_path / "cache", download=True).setup()
    assert "\n" not in str(caught.value)
    # the download went for the (writable) data directory, and left no partial file anywhere
    assert [path.name for path in tmp_path.rglob("*") if path.is_file()] == []


# The official md5 of every file inside the archive (the ones torchvision checks), and the first labels.
OFFICIAL_MD5 = {
    "data_batch_1": "c99cafc152244af753f735de768cd75f", "data_batch_2": "d4bba439e000b95fd0a9bffe97cbabec",
    "data_batch_3": "54ebc095f3ab1f0389bbae665268c751", "data_batch_4": "634d18415352ddfa80567beed471001a",
    "data_batch_5": "482c414d41f54cd18b22e5b47cb7c3cb", "test_batch": "40351d587109b95175f43aff81a1287e",
    "batches.meta": "5ff9c542aee3614f3951f8cda6e48888",
}  # fmt: skip


@pytest.mark.slow
def test_real_cifar10(tmp_path):
    archive = SHARED_DATA / "cifar-10-python.tar.gz"
    if not archive.is_file():
        pytest.skip(f"{archive} is absent (set DATA_DIR to the directory that holds it)")
    with tarfile.open(archive) as tar:  # the repacked archive holds the official files
        found = {
            Path(member.name).name: hashlib.md5(tar.extractfile(member).read()).hexdigest()
            for member in tar
            if member.isfile() and Path(member.name).name in OFFICIAL_MD5
        }
    assert found == OFFICIAL_MD5
    datamodule = make(archive.parent, tmp_path / "cache", val_size=0)
    datamodule.setup()
    train, test = datamodule.splits["train"], datamodule.splits["test"]
    assert (len(train), len(test)) == (50_000, 10_000)
    assert train.images.shape == (50_000, 3, 32, 32) and train.images.dtype == torch.uint8
    assert torch.bincount(train.labels).tolist() == [5000] * 10
    assert torch.bincount(test.labels).tolist() == [1000] * 10
    assert train.labels[:10].tolist() == [6, 9, 9, 4, 1, 1, 2, 7, 8, 3]
    assert test.labels[:10].tolist() == [3, 8, 8, 0, 6, 6, 1, 6, 3, 1]
    assert [p.name for p in (tmp_path / "cache" / "cifar10").iterdir()] == ["cifar10-uint8.pt"]
    held_out = make(archive.parent, tmp_path / "cache", val_size=5000)
    held_out.setup()  # from the decoded cache
    sizes = {name: len(split) for name, split in held_out.splits.items()}
    assert sizes == {"train": 45_000, "val": 5_000, "test": 10_000}
    labels = torch.cat([held_out.splits["train"].labels, held_out.splits["val"].labels])
    assert torch.bincount(labels).tolist() == [5000] * 10


def test_flip_eval_gives_each_evaluated_image_with_its_mirror_image(read_only_data, tmp_path):
    data_dir, _ = read_only_data
    plain, flipped = (make(data_dir, tmp_path / "cache", flip_eval=f) for f in (False, True))
    for datamodule in (plain, flipped):
        datamodule.setup()
    images = plain.splits["test"].images[:4]
    single = plain.to_model_input(images, train=False)
    pair = flipped.to_model_input(images, train=False)
    assert pair.shape == (4, 2, 3, 32, 32)
    assert torch.equal(pair[:, 0], single) and torch.equal(pair[:, 1], single.flip(-1))
    torch.manual_seed(0)
    assert flipped.to_model_input(images, train=True).shape == (4, 3, 32, 32)  # training: one image

    from src.models import LeNet5
    from src.training.module import ImageClassifier

    module = ImageClassifier(LeNet5(in_channels=3), optimizer=torch.optim.Adam).eval()
    with torch.no_grad():  # the module averages the two predictions' probabilities
        averaged = module(pair).exp()
        expected = (module(single).softmax(-1) + module(single.flip(-1)).softmax(-1)) / 2
    assert torch.allclose(averaged, expected, atol=1e-6)


def test_shift_eval_adds_each_image_moved_down_right_and_up_left(read_only_data, tmp_path):
    """data.shift_eval=N: each evaluated image, then it moved N pixels down-right and up-left with black
    (zero pixels) filling in, as a random crop of the zero-padded image would show it; with flip_eval the
    mirror image of each of those follows. The first view stays the image alone (the one-view accuracy)."""
    data_dir, _ = read_only_data
    options = [{}, {"shift_eval": 1}, {"shift_eval": 1, "flip_eval": True}]
    plain, shifted, both = (make(data_dir, tmp_path / "cache", **o) for o in options)
    for datamodule in (plain, shifted, both):
        datamodule.setup()
    images = plain.splits["test"].images[:4]
    single = plain.to_model_input(images, train=False)
    views = shifted.to_model_input(images, train=False)
    assert views.shape == (4, 3, 3, 32, 32)
    assert torch.equal(views[:, 0], single)
    down_right, up_left = views[:, 1], views[:, 2]
    assert torch.allclose(down_right[..., 1:, 1:], single[..., :-1, :-1])
    assert torch.allclose(up_left[..., :-1, :-1], single[..., 1:, 1:])
    black = plain.to_model_input(torch.zeros_like(images[:1]), train=False)[0, :, 0, 0]  # a zero pixel
    assert torch.allclose(down_right[..., 0, :], black.view(1, 3, 1).expand(4, 3, 32))
    assert torch.allclose(up_left[..., :, -1], black.view(1, 3, 1).expand(4, 3, 32))
    six = both.to_model_input(images, train=False)
    assert six.shape == (4, 6, 3, 32, 32)
    assert torch.equal(six[:, :3], views) and torch.equal(six[:, 3:], views.flip(-1))
    torch.manual_seed(0)
    assert both.to_model_input(images, train=True).shape == (4, 3, 32, 32)  # training: one image
