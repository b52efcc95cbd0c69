"""Any model x any dataset x any pooling x any padding composes and trains (one fast_dev_run batch)."""

import itertools
import json

import pytest

from src.config.compose import choices
from src.config.schema import config_problems
from src.train import train
from tests.conftest import compose_train_config
from tests.tiny_data import make_tiny_cifar, make_tiny_flowers, make_tiny_mnist

MODELS, DATASETS = ("lenet5", "alexnet"), ("mnist", "cifar10", "flowers17")
POOLINGS, PADDINGS = ("max", "avg", "min"), ("valid", "same")


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory):
    """All three tiny datasets in one DATA_DIR, and one cache shared by the 36 runs."""
    root = tmp_path_factory.mktemp("data")
    make_tiny_mnist(root), make_tiny_cifar(root), make_tiny_flowers(root)
    return root, tmp_path_factory.mktemp("cache")


@pytest.mark.parametrize(
    "model,data,pooling,padding", list(itertools.product(MODELS, DATASETS, POOLINGS, PADDINGS))
)
def test_every_combination_trains_one_batch(data_dir, tmp_path, model, data, pooling, padding):
    data_root, cache = data_dir
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
    assert result["global_step"] == 1
    assert 0.0 <= result["metrics"]["test/acc"] <= 1.0
    written = json.loads((tmp_path / "metrics.json").read_text())
    assert written["params"] == result["params"] > 0


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
    assert result["global_step"] == 1 and 0.0 <= result["metrics"]["test/acc"] <= 1.0
