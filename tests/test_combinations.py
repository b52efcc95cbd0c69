"""Any model x any dataset x any pooling x any padding composes and trains (one fast_dev_run batch), with
the layer shapes and parameter count that combination must have, a finite loss, and the data directory
left as it was."""

import itertools
import json
import math

import pytest

from src.config.compose import choices
from src.config.schema import config_problems
from src.train import train
from tests.conftest import compose_train_config
from tests.tiny_data import make_tiny_cifar, make_tiny_flowers, make_tiny_mnist, snapshot

MODELS, DATASETS = ("lenet5", "alexnet"), ("mnist", "cifar10", "flowers17")
POOLINGS, PADDINGS = ("max", "avg", "min"), ("valid", "same")
CLASSES = {"mnist": 10, "cifar10": 10, "flowers17": 17}
LOSSES = ("train/loss_epoch", "val/loss", "test/loss")


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory):
    """All three tiny datasets in one DATA_DIR, and one cache shared by the 36 runs."""
    root = tmp_path_factory.mktemp("data")
    make_tiny_mnist(root), make_tiny_cifar(root), make_tiny_flowers(root)
    return root, tmp_path_factory.mktemp("cache")


# ----------------------------------------------------- what each combination must be, worked out by hand
# From the papers' layer sizes and docs/study.md's size rules, not from src/models: a convolution of kernel
# k and stride s maps n to floor((n - k) / s) + 1 (valid) or ceil(n / s) (same); pooling windows are never
# padded. A layer with fan-in f and o outputs has (f + 1) * o parameters (weights and biases).
def conv_side(n: int, kernel: int, stride: int, padding: str) -> int:
    return math.ceil(n / stride) if padding == "same" else (n - kernel) // stride + 1


def pool_side(n: int, kernel: int, stride: int) -> int:
    return (n - kernel) // stride + 1


def parameters(layers: list[tuple[int, int]]) -> int:
    return sum((fan_in + 1) * outputs for fan_in, outputs in layers)


def lenet5_expected(padding: str, channels: int, classes: int) -> tuple[dict[str, list[int]], int]:
    """LeNet-5 on 32x32: conv 6@5x5, pool 2x2/2, conv 16@5x5, pool 2x2/2, dense 120-84-classes."""
    side1 = pool_side(conv_side(32, 5, 1, padding), 2, 2)
    side2 = pool_side(conv_side(side1, 5, 1, padding), 2, 2)
    shapes = {"features.pool1": [6, side1, side1], "features.pool2": [16, side2, side2]}
    layers = [(channels * 25, 6), (6 * 25, 16), (16 * side2**2, 120), (120, 84), (84, classes)]
    return shapes, parameters(layers)


def alexnet_expected(padding: str, classes: int) -> tuple[dict[str, list[int]], int]:
    """AlexNet on 227x227x3: conv 96@11x11/4, pool 3x3/2, conv 256@5x5, pool, conv 384, 384, 256 @3x3,
    pool, dense 4096-4096-classes (LRN has no parameters)."""
    side1 = pool_side(conv_side(227, 11, 4, padding), 3, 2)
    side2 = pool_side(conv_side(side1, 5, 1, padding), 3, 2)
    side5 = side2
    for _ in range(3):
        side5 = conv_side(side5, 3, 1, padding)
    side5 = pool_side(side5, 3, 2)
    shapes = {"features.pool1": [96, side1, side1], "features.pool2": [256, side2, side2]}
    shapes["features.pool5"] = [256, side5, side5]
    convs = [(3 * 121, 96), (96 * 25, 256), (256 * 9, 384), (384 * 9, 384), (384 * 9, 256)]
    dense = [(256 * side5**2, 4096), (4096, 4096), (4096, classes)]
    return shapes, parameters(convs + dense)


def expected(model: str, data: str, padding: str) -> tuple[dict[str, list[int]], int]:
    if model == "lenet5":
        return lenet5_expected(padding, 1 if data == "mnist" else 3, CLASSES[data])
    return alexnet_expected(padding, CLASSES[data])  # grey images are repeated to 3 channels


def test_the_hand_worked_figures_match_the_papers():
    assert lenet5_expected("valid", 1, 10)[1] == 61_706  # LeCun et al. 1998, with 10 outputs
    assert alexnet_expected("same", 1000)[1] == 62_378_344  # Krizhevsky et al. 2012, one GPU's worth
    assert alexnet_expected("same", 1000)[0]["features.pool5"] == [256, 6, 6]


# -------------------------------------------------------------------------------------------- the runs
def assert_finite_losses(metrics: dict[str, float]) -> None:
    for name in LOSSES:
        assert math.isfinite(metrics[name]), (name, metrics[name])


@pytest.mark.parametrize(
    "model,data,pooling,padding", list(itertools.product(MODELS, DATASETS, POOLINGS, PADDINGS))
)
def test_every_combination_trains_one_batch(data_dir, tmp_path, model, data, pooling, padding):
    data_root, cache = data_dir
    before = snapshot(data_root)
    cfg = compose_train_config(
        [
            f"model={model}", f"data={data}", f"pooling={pooling}", f"padding={padding}",
            f"data.data_dir={data_root}", f"paths.cache_dir={cache}", "data.download=false",
            "data.batch_size=4", "data.eval_batch_size=4", "trainer.fast_dev_run=true",
            "callbacks.progress_bar=null", *(["data.val_size=20"] if data != "flowers17" else []),
        ],
        tmp_path,
    )  # fmt: skip
    result = train(cfg)
    shapes, params = expected(model, data, padding)
    assert result["pooled_shapes"] == shapes
    assert result["params"] == params
    assert_finite_losses(result["metrics"])
    written = json.loads((tmp_path / "metrics.json").read_text())
    assert (written["params"], written["pooled_shapes"]) == (params, shapes)
    assert snapshot(data_root) == before  # the datamodule wrote nothing into DATA_DIR


@pytest.mark.parametrize("experiment", choices("experiment"))
def test_every_experiment_trains_one_batch(data_dir, tmp_path, experiment):
    data_root, cache = data_dir
    small = ["data.batch_size=4", "data.eval_batch_size=4", "trainer.fast_dev_run=true"]
    if "flowers17" not in experiment:
        small.append("data.val_size=20")  # tiny MNIST / CIFAR-10 hold fewer images than the real split
    cfg = compose_train_config(
        [f"experiment={experiment}", f"data.data_dir={data_root}", f"paths.cache_dir={cache}",
         "data.download=false", "callbacks.progress_bar=null", *small],
        tmp_path,
    )  # fmt: skip
    assert config_problems(cfg) == []
    result = train(cfg)
    assert_finite_losses(result["metrics"])
