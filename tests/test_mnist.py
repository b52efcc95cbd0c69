import os
import shutil
import stat
import urllib.error

import pytest
import torch

from src.data import files
from src.data.files import download_dir
from src.data.mnist import MNISTDataModule
from src.utils.errors import ConfigError, DataError
from tests.tiny_data import make_tiny_mnist, snapshot


def datamodule(data_dir, cache_dir, **kwargs) -> MNISTDataModule:
    defaults = dict(
        input_size=32,
        input_channels=1,
        batch_size=32,
        val_size=50,
        download=False,
    )
    return MNISTDataModule(str(data_dir), str(cache_dir), **{**defaults, **kwargs})


def read_only(path):
    """chmod a tree read-only. Tests run as root here, which ignores permissions: what proves that nothing
    was written is the before/after snapshot() (names, sizes, mtimes), not this."""
    for root, _dirs, names in os.walk(path):
        for name in names:
            os.chmod(os.path.join(root, name), stat.S_IRUSR)
        os.chmod(root, stat.S_IRUSR | stat.S_IXUSR)


@pytest.mark.parametrize("compress", [False, True])
def test_reads_plain_or_gzipped_idx_from_a_read_only_directory(tmp_path, compress):
    data_dir = make_tiny_mnist(tmp_path / "data", train=200, test=40, compress=compress)
    read_only(data_dir)
    before = snapshot(data_dir)
    dm = datamodule(data_dir, tmp_path / "cache")
    dm.prepare_data()
    dm.setup()
    for loader in (dm.train_dataloader(), dm.val_dataloader(), dm.test_dataloader()):
        next(iter(loader))
    assert snapshot(data_dir) == before  # nothing written, renamed or removed, not even for a moment
    assert {k: len(v) for k, v in dm.splits.items()} == {"train": 150, "val": 50, "test": 40}
    assert dm.splits["train"].images.dtype == torch.uint8
    assert dm.splits["train"].images.shape[1:] == (1, 28, 28)
    # gzipped files are decoded into the checked cache, plain ones are read in place
    assert (tmp_path / "cache" / "MNIST" / "mnist-uint8.pt").exists() == compress


def test_val_size_0_validates_on_test_and_out_of_range_sizes_are_errors(tiny_mnist, tmp_path):
    dm = datamodule(tiny_mnist, tmp_path / "cache", val_size=0)
    dm.setup()
    assert len(dm.splits["train"]) == 256  # every training image trains
    assert dm.splits["val"] is dm.splits["test"]  # and validation is the test split
    too_many = datamodule(tiny_mnist, tmp_path / "cache", val_size=256)
    message = r"^data\.val_size=256 is out of range: must be 0 \(validate on test\) to 255$"
    with pytest.raises(DataError, match=message):
        too_many.setup()
    with pytest.raises(ConfigError, match=r"^data\.val_size=-1 is out of range: must be an integer >= 0"):
        datamodule(tiny_mnist, tmp_path / "cache", val_size=-1)


def test_train_on_val_trains_on_every_training_image_and_keeps_the_same_val_split(tiny_mnist, tmp_path):
    held_out = datamodule(tiny_mnist, tmp_path / "cache")
    final = datamodule(tiny_mnist, tmp_path / "cache", train_on_val=True)
    held_out.setup(), final.setup()
    assert {k: len(v) for k, v in final.splits.items()} == {"train": 256, "val": 50, "test": 64}
    assert torch.equal(final.splits["val"].images, held_out.splits["val"].images)
    both = [*held_out.splits["train"].images, *held_out.splits["val"].images]
    rows = [sorted(bytes(x.numpy()) for x in images) for images in (final.splits["train"].images, both)]
    assert rows[0] == rows[1]
    message = r"^data\.train_on_val=yes is not true or false: must be true or false$"
    with pytest.raises(ConfigError, match=message):
        datamodule(tiny_mnist, tmp_path / "cache", train_on_val="yes")


def test_split_is_deterministic_and_disjoint(tiny_mnist, tmp_path):
    first, second = datamodule(tiny_mnist, tmp_path / "c"), datamodule(tiny_mnist, tmp_path / "c")
    first.setup(), second.setup()
    assert torch.equal(first.splits["val"].images, second.splits["val"].images)
    train_rows = {bytes(x.numpy()) for x in first.splits["train"].images}
    assert not train_rows & {bytes(x.numpy()) for x in first.splits["val"].images}


def test_batches_are_padded_to_32_and_normalised(tiny_mnist, tmp_path):
    dm = datamodule(tiny_mnist, tmp_path / "cache")
    dm.setup()
    images, labels = dm.splits["train"][list(range(32))]
    assert images.shape == (32, 1, 28, 28) and labels.shape == (32,)
    x = dm.to_model_input(images, train=True)
    assert x.shape == (32, 1, 32, 32) and x.dtype == torch.float32
    background = (0 - dm.mean[0]) / dm.std[0]
    assert torch.allclose(x[:, :, :2, :], torch.full_like(x[:, :, :2, :], background))  # the 2-pixel border
    # no augmentation on MNIST: the loaders serve these inputs, made once per split (test_model_ready.py)
    ready, _ = next(iter(dm.train_dataloader()))
    assert ready.shape == (32, 1, 32, 32) and ready.dtype == torch.float32


def test_adapts_to_alexnet_input(tiny_mnist, tmp_path):
    dm = datamodule(tiny_mnist, tmp_path / "cache", input_size=227, input_channels=3)
    dm.setup()
    images, _ = next(iter(dm.val_dataloader()))
    assert dm.to_model_input(images, train=False).shape == (50, 3, 227, 227)


def test_every_training_sample_once_per_epoch_and_ranks_disjoint(tiny_mnist, tmp_path):
    from src.data.base import EpochBatchSampler

    samplers = [EpochBatchSampler(10, 2, shuffle=True, seed=1, rank=r, world_size=2) for r in (0, 1)]
    seen = [i for s in samplers for batch in s for i in batch]
    assert sorted(seen) == list(range(10))
    for s in samplers:
        s.set_epoch(1)
    assert [i for s in samplers for batch in s for i in batch] != seen  # a new order each epoch


def test_missing_data_names_the_files_and_data_dir(tmp_path):
    dm = datamodule(tmp_path / "nowhere", tmp_path / "cache")
    with pytest.raises(DataError, match=r"MNIST not found: expected train-images-idx3-ubyte.* DATA_DIR"):
        dm.prepare_data()


def test_corrupt_gzip_is_a_data_error(tmp_path):
    data_dir = make_tiny_mnist(tmp_path / "data", compress=True)
    (data_dir / "MNIST" / "raw" / "train-images-idx3-ubyte.gz").write_bytes(b"not gzip")
    with pytest.raises(DataError, match="cannot decompress .*train-images-idx3-ubyte.gz"):
        datamodule(data_dir, tmp_path / "cache").prepare_data()
    assert not list((tmp_path / "cache").rglob("*.tmp"))  # nothing half-written


def fake_mirror(source_raw):
    """A download_url that serves the tiny .gz files from `source_raw` and records what it fetched."""
    fetched = []

    def download_url(url, root, filename, md5=None):
        fetched.append(url)
        shutil.copyfile(source_raw / filename, os.path.join(root, filename))

    return download_url, fetched


def test_download_goes_into_the_data_dir_and_is_read_from_there(tmp_path, monkeypatch):
    source = make_tiny_mnist(tmp_path / "mirror", train=200, test=40, compress=True) / "MNIST" / "raw"
    download_url, fetched = fake_mirror(source)
    monkeypatch.setattr(files, "download_url", download_url)
    data_dir = tmp_path / "data"  # absent, as ./data is on a fresh clone
    dm = datamodule(data_dir, tmp_path / "cache", download=True)
    dm.prepare_data()
    dm.setup()
    assert sorted(path.name for path in (data_dir / "MNIST" / "raw").iterdir()) == sorted(
        f"{name}.gz" for name in ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte",
                                  "train-images-idx3-ubyte", "train-labels-idx1-ubyte")
    )  # fmt: skip
    assert len(fetched) == 4 and all(url.startswith("https://") for url in fetched)
    assert {k: len(v) for k, v in dm.splits.items()} == {"train": 150, "val": 50, "test": 40}
    datamodule(data_dir, tmp_path / "cache", download=True).prepare_data()
    assert len(fetched) == 4  # a second run finds the files and downloads nothing


def test_download_falls_back_to_the_cache_when_data_dir_cannot_be_written(tmp_path):
    blocker = tmp_path / "a-file"
    blocker.write_text("")
    assert download_dir(blocker / "data", tmp_path / "cache") == tmp_path / "cache"
    assert download_dir(tmp_path / "data", tmp_path / "cache") == tmp_path / "data"


def test_failed_download_tries_every_mirror_and_says_why(tmp_path, monkeypatch):
    tried = []

    def offline(url, *args, **kwargs):
        tried.append(url)
        raise urllib.error.URLError("no network here")

    monkeypatch.setattr(files, "download_url", offline)
    expected = r"MNIST not found.*DATA_DIR.*download failed.*no network here"
    with pytest.raises(DataError, match=expected) as caught:
        datamodule(tmp_path / "data", tmp_path / "cache", download=True).prepare_data()
    assert "\n" not in str(caught.value)
    assert len(tried) == 2  # both of torchvision's mirrors, for the first file
    assert [path for path in tmp_path.rglob("*") if path.is_file()] == []  # nothing half-downloaded
