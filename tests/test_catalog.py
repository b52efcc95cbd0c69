"""src/data/catalog.py: each datamodule's card is the one the config and its check read."""

from __future__ import annotations

import pytest
from hydra.errors import InstantiationException
from hydra.utils import get_class, instantiate
from omegaconf import OmegaConf

from src.config.compose import choices
from src.data.catalog import DATASETS, dataset_for_target
from src.utils.errors import ConfigError
from tests.conftest import compose_train_config


@pytest.mark.parametrize("data", choices("data"))
def test_each_datamodule_carries_the_card_its_config_reads(tmp_path, data):
    cfg = compose_train_config([f"data={data}"], tmp_path)
    card = dataset_for_target(cfg.data._target_)
    assert card is not None and get_class(cfg.data._target_).card is card
    assert DATASETS[cfg.data._target_.rpartition(".")[2]] is card
    model = OmegaConf.to_container(cfg.model, resolve=True)  # ${dataset:num_classes}, ...
    assert (model["num_classes"], model["in_channels"]) == (card.num_classes, card.image_channels)
    assert instantiate(cfg.data).class_names == card.class_names


@pytest.mark.parametrize(
    "overrides",
    [
        "data.split_index=4",
        "data.min_crop_area=0",
        "data.batch_size=0",
        "model.input_size=300",
        "+data.flip_eval=true data.ten_crop_test=true",  # the ten crops hold the mirror images already
        "+data.shift_eval=2 data.ten_crop_test=true",  # ... and the corner crops are shifted views
        "+data.shift_eval=9",
    ],
)
def test_a_datamodule_and_the_config_check_answer_with_the_same_clause(tmp_path, overrides):
    """One rule, one home: the card's clause, whether the command line or Python asks."""
    from src.config.schema import config_problems

    cfg = compose_train_config(["data=flowers17", "model=alexnet", *overrides.split()], tmp_path)
    (clause,) = config_problems(cfg)
    assert clause.startswith(overrides.split("=")[0].lstrip("+"))
    with pytest.raises(InstantiationException) as error:  # Hydra's wrapper around the constructor's error
        instantiate(cfg.data)
    assert isinstance(error.value.__cause__, ConfigError) and str(error.value.__cause__) == clause
