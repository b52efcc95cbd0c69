"""Flowers-17 on an archive in the official layout: 1360 tiny one-colour JPEGs, so every decoded image
can be traced back to its number (and hence its class)."""

from __future__ import annotations

import os
import stat
import urllib.error
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
import torch
from scipy.io import savemat

from src.data import files, flowers17
from src.data.base import random_resized_crops
from src.data.flowers17 import (
    CLASSES,
    Flowers17,
    Flowers17DataModule,
    decoded_cache_file,
    pca_lighting,
    stratified_split,
)
from src.utils.errors import ConfigError, DataError
from tests.conftest import SHARED_DATA
from tests.tiny_data import snapshot, tiny_flowers_jpegs, write_tgz

EXPECTED_CLASSES = (
    "daffodil", "snowdrop", "lily valley", "bluebell", "crocus", "iris", "tigerlily", "tulip", "fritillary",
    "sunflower", "daisy", "colts' foot", "dandelion", "cowslip", "buttercup", "windflower", "pansy",
)  # fmt: skip


# ------------------------------------------------------------------------------- fixtures
@pytest.fixture(scope="module")
def colours() -> np.ndarray:
    return np.random.default_rng(0).integers(0, 256, (1360, 3), dtype=np.uint8)


@pytest.fixture(scope="module")
def jpegs(colours) -> dict[int, bytes]:
    return tiny_flowers_jpegs(colours)


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory, jpegs):
    """<data_dir>/flowers17/17flowers.tgz, chmod'ed read-only (root ignores that, hence snapshot())."""
    root = tmp_path_factory.mktemp("data")
    archive = write_tgz(root / "flowers17" / "17flowers.tgz", jpegs)
    archive.chmod(stat.S_IRUSR)
    for directory in (archive.parent, root):
        directory.chmod(stat.S_IRUSR | stat.S_IXUSR)
    yield root
    for directory in (root, archive.parent):
        directory.chmod(stat.S_IRWXU)


@pytest.fixture(scope="module")
def cache_dir(tmp_path_factory, data_dir):
    """A cache holding the decoded archive, shared by the tests that do not test decoding itself."""
    cache = tmp_path_factory.mktemp("cache")
    Flowers17(data_dir, cache_dir=cache)
    return cache


def make(data_dir: Path, cache_dir: Path, **overrides) -> Flowers17DataModule:
    kwargs = dict(input_size=227, input_channels=3, batch_size=8)
    kwargs.update(eval_batch_size=10, download=False)
    return Flowers17DataModule(str(data_dir), str(cache_dir), **{**kwargs, **overrides})


# ---------------------------------------------------------------------------- the dataset
def test_1360_images_80_a_class_in_number_order(data_dir, cache_dir, colours):
    dataset = Flowers17(data_dir, cache_dir=cache_dir)
    assert dataset.classes == CLASSES == EXPECTED_CLASSES
    assert len(dataset) == 1360 and dataset.data.shape == (1360, 3, 256, 256)
    assert torch.bincount(dataset.targets).tolist() == [80] * 17
    assert dataset.targets[79] == 0 and dataset.targets[80] == 1 and dataset.targets[1359] == 16
    centres = dataset.data[:, :, 128, 128].int()
    assert (centres - torch.from_numpy(colours).int()).abs().max() <= 8  # image i is entry i - 1


def test_decoding_happens_once_then_the_cache_is_loaded(data_dir, cache_dir, monkeypatch):
    before = snapshot(data_dir)
    cached = decoded_cache_file(cache_dir)
    written = cached.stat().st_mtime_ns

    def no_archive_reads(*args, **kwargs):
        raise AssertionError("the archive was opened although its decoded images are cached")

    monkeypatch.setattr(flowers17.tarfile, "open", no_archive_reads)
    datamodule = make(data_dir, cache_dir)
    datamodule.prepare_data()
    datamodule.setup()
    assert cached.stat().st_mtime_ns == written
    assert [p.name for p in (cache_dir / "flowers17").iterdir()] == [cached.name]
    assert snapshot(data_dir) == before


def test_a_replaced_archive_is_decoded_again(tmp_path, jpegs, caplog):
    archive = write_tgz(tmp_path / "data" / "17flowers.tgz", jpegs)
    cached = decoded_cache_file(tmp_path / "cache")
    first = Flowers17(tmp_path / "data", cache_dir=tmp_path / "cache")
    recolour = {1: jpegs[2]}  # image 1 now looks like image 2
    write_tgz(archive, {**jpegs, **recolour})
    os.utime(archive, ns=(archive.stat().st_atime_ns, archive.stat().st_mtime_ns + 10**9))
    with caplog.at_level("WARNING"):
        second = Flowers17(tmp_path / "data", cache_dir=tmp_path / "cache")
    assert "was built from other source files; rebuilding it" in caplog.text
    assert torch.equal(second.data[0], first.data[1]) and not torch.equal(second.data[0], first.data[0])
    assert [p.name for p in (tmp_path / "cache" / "flowers17").iterdir()] == [cached.name]


def test_wrong_image_count_is_a_clear_error(tmp_path, jpegs):
    write_tgz(tmp_path / "flowers17" / "17flowers.tgz", {n: jpegs[n] for n in range(1, 1201)})
    with pytest.raises(DataError, match=r"17flowers.tgz holds 1200 images, expected 1360 \(80 per class\)"):
        Flowers17(tmp_path, cache_dir=tmp_path / "cache")
    assert not (tmp_path / "cache").exists()


def test_a_gap_in_the_numbering_is_a_clear_error(tmp_path, jpegs):
    renumbered = {(1361 if n == 5 else n): jpeg for n, jpeg in jpegs.items()}
    write_tgz(tmp_path / "17flowers.tgz", renumbered)
    with pytest.raises(DataError, match="lacks jpg/image_0005.jpg"):
        Flowers17(tmp_path, cache_dir=tmp_path / "cache")


def test_damaged_archive_and_undecodable_jpeg_name_the_file(tmp_path, jpegs):
    archive = tmp_path / "17flowers.tgz"
    archive.write_bytes(b"not a tgz" * 100)
    with pytest.raises(DataError, match="17flowers.tgz.*replace it") as caught:
        Flowers17(tmp_path, cache_dir=tmp_path / "cache")
    assert "\n" not in str(caught.value)
    write_tgz(archive, {**jpegs, 1: b"\xff\xd8 not really a JPEG"})
    with pytest.raises(DataError, match="cannot decode jpg/image_0001.jpg in .*17flowers.tgz"):
        Flowers17(tmp_path, cache_dir=tmp_path / "cache")
    assert not (tmp_path / "cache").exists()


def test_missing_archive_says_what_where_and_DATA_DIR(tmp_path):
    with pytest.raises(DataError) as caught:
        make(tmp_path, tmp_path / "cache").setup()
    message = str(caught.value)
    assert "17flowers.tgz" in message and str(tmp_path / "flowers17") in message and "DATA_DIR" in message
    assert "\n" not in message


def test_failed_download_adds_the_reason(tmp_path, monkeypatch):
    def offline(*args, **kwargs):
        raise urllib.error.URLError("no network here")

    monkeypatch.setattr(files, "download_url", offline)  # what download_atomically calls
    with pytest.raises(DataError, match=r"DATA_DIR.*download failed.*no network here"):
        make(tmp_path, tmp_path / "cache", download=True).prepare_data()
    # the download went for the (writable) data directory, and left no partial file anywhere
    assert [path.name for path in tmp_path.rglob("*") if path.is_file()] == []


# ----------------------------------------------------------------------------------- splits
def test_default_split_is_stratified_40_20_20_and_seeded(data_dir, cache_dir):
    first, again, other = (make(data_dir, cache_dir, split_seed=seed) for seed in (0, 0, 1))
    for datamodule in (first, again, other):
        datamodule.setup()
    sizes = {name: len(split) for name, split in first.splits.items()}
    assert sizes == {"train": 680, "val": 340, "test": 340}
    for name, per_class in (("train", 40), ("val", 20), ("test", 20)):
        assert torch.bincount(first.splits[name].labels, minlength=17).tolist() == [per_class] * 17
        assert torch.equal(first.splits[name].images, again.splits[name].images)
    assert not torch.equal(first.splits["test"].images, other.splits["test"].images)
    indices = stratified_split(torch.arange(1360) // 80, seed=0)
    assert torch.equal(torch.cat(list(indices.values())).sort().values, torch.arange(1360))  # a partition


def test_train_on_val_trains_on_60_a_class_and_leaves_the_test_split_alone(data_dir, cache_dir):
    plain, final = make(data_dir, cache_dir), make(data_dir, cache_dir, train_on_val=True)
    plain.setup(), final.setup()
    assert torch.bincount(final.splits["train"].labels, minlength=17).tolist() == [60] * 17
    joined = torch.cat([plain.splits["train"].images, plain.splits["val"].images])
    assert torch.equal(final.splits["train"].images, joined)
    for name in ("val", "test"):
        assert torch.equal(final.splits[name].images, plain.splits[name].images)


def test_official_datasplits_mat_is_used_when_present(tmp_path, data_dir, cache_dir):
    local = tmp_path / "data" / "flowers17"
    local.mkdir(parents=True)
    (local / "17flowers.tgz").symlink_to(data_dir / "flowers17" / "17flowers.tgz")  # same cache key
    numbers = np.arange(1, 1361, dtype=np.float64).reshape(17, 80)  # 1-based, as in the official file
    splits = {}
    for k in (1, 2, 3):
        rolled = np.roll(numbers, 20 * k, axis=1)
        splits.update({f"trn{k}": rolled[:, :40].reshape(1, -1), f"val{k}": rolled[:, 40:60].reshape(1, -1)})
        splits[f"tst{k}"] = rolled[:, 60:].reshape(1, -1)
    savemat(local / "datasplits.mat", splits)
    datamodule = make(tmp_path / "data", cache_dir, split_index=2)
    datamodule.setup()
    dataset = Flowers17(data_dir, cache_dir)
    expected_test = torch.from_numpy(splits["tst2"].ravel().astype(np.int64) - 1)
    assert torch.equal(datamodule.splits["test"].images, dataset.data[expected_test])
    assert len(datamodule.splits["train"]) == 680


def test_split_index_needs_the_mat_file_and_must_be_1_to_3(data_dir, cache_dir):
    with pytest.raises(DataError, match="datasplits.mat"):
        make(data_dir, cache_dir, split_index=1).setup()
    with pytest.raises(ConfigError, match="split_index"):
        make(data_dir, cache_dir, split_index=4)


# ------------------------------------------------------------------------------ batch work
@pytest.mark.parametrize(
    ("input_size", "input_channels", "crop"),
    [(224, 3, 224), (227, 3, 227), (32, 3, 224), (32, 1, 224)],  # AlexNet-ish, AlexNet, LeNet, grey LeNet
)
def test_train_eval_and_ten_crop_shapes(tmp_path, input_size, input_channels, crop):
    datamodule = make(tmp_path, tmp_path, input_size=input_size, input_channels=input_channels)
    datamodule.ten_crop_test = True
    images = torch.randint(0, 256, (4, 3, 256, 256), dtype=torch.uint8)
    assert datamodule.augment(images.float() / 255).shape == (4, 3, crop, crop)
    assert datamodule.eval_view(images).shape == (4, 3, crop, crop)
    model_input = (4, input_channels, input_size, input_size)
    assert datamodule.to_model_input(images, train=True).shape == model_input
    centre = datamodule.to_model_input(images, train=False)  # no trainer: one centre crop
    assert centre.shape == model_input
    datamodule.trainer = SimpleNamespace(training=False, testing=False, predicting=False)  # validating
    assert datamodule.on_after_batch_transfer((images, torch.zeros(4)), 0)[0].shape == model_input
    datamodule.trainer = SimpleNamespace(training=False, testing=False, predicting=True)  # as the test
    predicted = datamodule.on_after_batch_transfer((images, torch.zeros(4)), 0)[0]
    datamodule.trainer = SimpleNamespace(training=False, testing=True, predicting=False)
    ten = datamodule.on_after_batch_transfer((images, torch.zeros(4)), 0)[0]
    assert ten.shape == (4, 10, input_channels, input_size, input_size) and torch.equal(predicted, ten)
    assert torch.allclose(ten[:, 4], centre)  # the centre crop
    assert torch.allclose(ten[:, 5:], ten[:, :5].flip(-1), atol=1e-5)  # then the five mirrored


def test_random_resized_crops_take_windows_of_a_quarter_to_all_of_the_image():
    # Two channels that hold each pixel's own column and row: a crop's values say where it was taken.
    size, out = 64, 16
    columns = torch.arange(size, dtype=torch.float32).expand(400, 1, size, size)
    images = torch.cat([columns, columns.transpose(-1, -2)], dim=1)
    torch.manual_seed(0)
    crops = random_resized_crops(images, out, min_area=0.25)
    assert crops.shape == (400, 2, out, out)
    assert crops.min() >= 0 and crops.max() <= size - 1  # inside the image
    # Output pixel centres span (1 - 1/out) of the window; border samples may be clamped by half a pixel.
    width = (crops[:, 0, 0, -1] - crops[:, 0, 0, 0]).abs() / (1 - 1 / out) / size
    height = (crops[:, 1, -1, 0] - crops[:, 1, 0, 0]) / (1 - 1 / out) / size
    area, aspect = width * height, width / height
    tolerance = 1.5 / size
    assert area.min() >= 0.25 - 2 * tolerance and area.max() <= 1 + 2 * tolerance
    assert area.min() < 0.3 and area.max() > 0.9  # the whole range is drawn
    assert aspect.min() >= 3 / 4 - 4 * tolerance and aspect.max() <= 4 / 3 + 4 * tolerance
    mirrored = crops[:, 0, 0, -1] < crops[:, 0, 0, 0]
    assert 0.35 < mirrored.float().mean() < 0.65


def test_min_crop_area_switches_training_to_random_resized_crops(tmp_path):
    images = torch.rand(4, 3, 256, 256)
    torch.manual_seed(0)
    fixed = make(tmp_path, tmp_path).augment(images)
    torch.manual_seed(0)
    resized = make(tmp_path, tmp_path, min_crop_area=0.5).augment(images)
    assert fixed.shape == resized.shape == (4, 3, 227, 227)
    assert not torch.allclose(fixed, resized)
    for bad in (0, 1.5):
        message = rf"data.min_crop_area={bad} is out of range: must be 0 < min_crop_area <= 1 or null"
        with pytest.raises(ConfigError, match=message):
            make(tmp_path, tmp_path, min_crop_area=bad)


def test_ten_crop_is_off_by_default(tmp_path):
    datamodule = make(tmp_path, tmp_path)
    datamodule.trainer = SimpleNamespace(training=False, testing=True)
    images = torch.randint(0, 256, (2, 3, 256, 256), dtype=torch.uint8)
    assert datamodule.on_after_batch_transfer((images, torch.zeros(2)), 0)[0].shape == (2, 3, 227, 227)


def test_pca_lighting_shifts_each_image_by_one_colour(data_dir, cache_dir):
    datamodule = make(data_dir, cache_dir)
    datamodule.setup()
    values, vectors = datamodule.eigenvalues, datamodule.eigenvectors
    assert values.shape == (3,) and (values >= 0).all()
    assert torch.allclose(vectors.T @ vectors, torch.eye(3), atol=1e-5)
    images = torch.rand(8, 3, 20, 20)
    shift = pca_lighting(images, values, vectors) - images
    assert torch.allclose(shift, shift[:, :, :1, :1].expand_as(shift), atol=1e-6)
    assert shift[:, :, 0, 0].abs().sum() > 0


def test_a_real_ten_crop_test_averages_the_crops_and_draws_its_mistakes(
    data_dir, cache_dir, tmp_path, monkeypatch
):
    """src.train with data.ten_crop_test=true: trainer.test's batches are (N, 10, C, H, W), the corners and
    centre then their mirror images; test/acc and test/loss are those of the softmax averaged over the
    ten crops; the confusion matrix and the mistakes (insight.py's branch for multi-crop batches) are drawn
    from them."""
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    from src.train import train
    from src.training.module import ImageClassifier
    from tests.conftest import compose_train_config

    batches, test_step = [], ImageClassifier.test_step

    def by_hand(self, batch, batch_idx):  # the averaged prediction, worked out crop by crop
        images, labels = batch
        if images.ndim == 5:
            with torch.no_grad():
                each = torch.stack([self(images[:, crop]).softmax(-1) for crop in range(10)], 1)
            batches.append((images, labels, each))
        else:
            batches.append((images, labels, None))
        return test_step(self, batch, batch_idx)

    monkeypatch.setattr(ImageClassifier, "test_step", by_hand)
    # The tiny archive's images are one colour each: ramps added to the test images in memory (brighter to
    # the right and to the bottom) make the ten crops of an image, and so their predictions, differ.
    setup, pattern = Flowers17DataModule.setup, torch.arange(256) // 2 + torch.arange(256)[:, None] // 4

    def patterned(self, stage=None):
        unpatterned = not self.splits
        setup(self, stage)
        if unpatterned:
            test = self.splits["test"]
            test.images = (test.images.int() // 4 + pattern).to(torch.uint8)

    monkeypatch.setattr(Flowers17DataModule, "setup", patterned)
    overrides = [
        "model=lenet5", "data=flowers17", f"data.data_dir={data_dir}", f"paths.cache_dir={cache_dir}",
        "data.download=false", "data.ten_crop_test=true", "data.batch_size=16", "data.eval_batch_size=20",
        "trainer.max_epochs=1", "+trainer.limit_train_batches=2", "+trainer.limit_val_batches=1",
        "+trainer.limit_test_batches=2", "callbacks.progress_bar=null",
    ]  # fmt: skip
    metrics = train(compose_train_config(overrides, tmp_path))["metrics"]

    assert [tuple(images.shape) for images, _, _ in batches] == [(20, 10, 3, 32, 32)] * 2
    images = torch.cat([images for images, _, _ in batches])
    assert torch.allclose(images[:, 5:], images[:, :5].flip(-1), atol=1e-5)  # the mirrored five
    assert not torch.allclose(images[:, 0], images[:, 3])  # two corners: different views
    labels = torch.cat([labels for _, labels, _ in batches])
    each = torch.cat([each for _, _, each in batches])  # (N, 10 crops, 17 classes)
    assert (each - each[:, 4:5]).abs().amax() > 0.01  # the crops' predictions differ from the centre's
    mean = each.mean(1)
    assert metrics["test/acc"] == pytest.approx((mean.argmax(1) == labels).float().mean().item())
    expected_loss = torch.nn.functional.nll_loss(mean.clamp_min(1e-12).log(), labels).item()
    assert metrics["test/loss"] == pytest.approx(expected_loss, rel=1e-5)
    events = EventAccumulator(str(tmp_path / "tensorboard"), size_guidance={"images": 0})
    events.Reload()
    assert {"confusion_matrix/test", "mistakes/test"} <= set(events.Tags()["images"])


# ------------------------------------------------------------------------------- real data
@pytest.mark.slow
def test_real_flowers17(tmp_path):
    archive = SHARED_DATA / "flowers17" / "17flowers.tgz"
    if not archive.is_file():
        pytest.skip(f"{archive} is absent (set DATA_DIR to the directory that holds flowers17/)")
    dataset = Flowers17(SHARED_DATA, cache_dir=tmp_path / "cache")  # the cache in tmp, never in shared/
    assert len(dataset) == 1360 and dataset.data.shape == (1360, 3, 256, 256)
    assert torch.bincount(dataset.targets).tolist() == [80] * 17
    assert dataset.archive == archive
    datamodule = make(SHARED_DATA, tmp_path / "cache")
    datamodule.setup()
    assert {name: len(split) for name, split in datamodule.splits.items()} == {
        "train": 680,
        "val": 340,
        "test": 340,
    }
