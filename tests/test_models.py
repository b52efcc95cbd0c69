import pytest
import torch

from src.models import AlexNet, AlexNetBN, LeNet5
from src.models.alexnet import keras_param_count
from src.models.geometry import (
    ACTIVATIONS,
    PLANS,
    InputTooSmallError,
    alexnet_bn_plan,
    alexnet_plan,
    check_network,
    lenet5_plan,
)
from src.models.shapes import layer_rows, pooled_shapes


def count(model: torch.nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def test_lenet5_parameter_counts_match_the_paper_setup():
    assert count(LeNet5(in_channels=1, input_size=32, padding="valid")) == 61_706
    # the study sheet's CIFAR run:
    assert count(LeNet5(in_channels=3, input_size=32, padding="valid")) == 62_006


def test_lenet5_batch_norm_adds_two_batchnorms_before_the_activations():
    model = LeNet5(in_channels=3, padding="same", norm="batch", activation_fn="relu")
    names = [name for name, _ in model.features.named_children()]
    assert names == ["conv1", "bn1", "act1", "pool1", "conv2", "bn2", "act2", "pool2"]
    # 2 x (gamma, beta) per map: 2 * (6 + 16) more parameters than without
    assert count(model) == count(LeNet5(in_channels=3, padding="same", activation_fn="relu")) + 2 * (6 + 16)
    with pytest.raises(ValueError, match="model.norm='lrn' is not supported; choose one of: none, batch"):
        LeNet5(norm="lrn")


@pytest.mark.parametrize(("padding", "pool1", "pool2"), [("valid", 14, 5), ("same", 16, 8)])
def test_pooled_shapes_are_what_padding_leaves(padding, pool1, pool2):
    model = LeNet5(padding=padding)
    model.train()
    assert pooled_shapes(model) == {"features.pool1": [6, pool1, pool1], "features.pool2": [16, pool2, pool2]}
    assert model.training  # measuring did not switch it to eval mode


# flatten size after conv/pool/conv/pool: valid 32 -> 5x5, 28 -> 4x4; same 32 -> 8x8, 28 -> 7x7
@pytest.mark.parametrize("pooling", ["max", "avg", "min"])
@pytest.mark.parametrize(
    "padding,size,side",
    [
        ("valid", 32, 5),
        ("valid", 28, 4),
        ("same", 32, 8),
        ("same", 28, 7),
        ("paper", 32, 5),
        ("paper", 28, 4),
    ],
)
def test_lenet5_builds_for_every_pooling_padding_and_size(pooling, padding, size, side):
    model = LeNet5(input_size=size, pooling=pooling, padding=padding)
    assert model(torch.randn(4, 1, size, size)).shape == (4, 10)
    assert model.features(torch.zeros(1, 1, size, size)).shape == (1, 16, side, side)
    assert count(model) == 61_706 - 400 * 120 + 16 * side * side * 120


def test_alexnet_parameter_counts_match_the_paper():
    assert count(AlexNet(num_classes=1000, groups=2, norm="lrn")) == 60_965_224
    assert count(AlexNet(num_classes=1000, groups=1)) == 62_378_344


def test_alexnet_feature_maps_at_227():
    rows = {row.name: row.shape for row in layer_rows(AlexNet(num_classes=17))}
    sides = [
        rows[f"features.{name}"][-1]
        for name in ("conv1", "pool1", "conv2", "pool2", "conv3", "conv4", "conv5", "pool5")
    ]
    assert sides == [55, 27, 27, 13, 13, 13, 13, 6]
    assert rows["classifier.flatten"] == (9216,)


@pytest.mark.parametrize("norm", ["lrn", "batch", "none"])
@pytest.mark.parametrize("pooling", ["max", "avg", "min"])
def test_alexnet_options_build_and_run(norm, pooling):
    model = AlexNet(num_classes=17, norm=norm, pooling=pooling, groups=2)
    assert model(torch.randn(2, 3, 227, 227)).shape == (2, 17)


def test_alexnet_bn_matches_the_keras_parameter_count():
    model = AlexNetBN(num_classes=17, input_size=224)
    assert keras_param_count(model) == 24_834_833
    assert count(model) == 24_815_697  # Keras' "trainable" count


def test_too_small_input_names_the_layer_and_the_smallest_size():
    with pytest.raises(
        InputTooSmallError,
        match=r"input 32x32 is too small: .* layer pool2 .* smallest input that works is 67x67",
    ):
        AlexNet(input_size=32)
    with pytest.raises(InputTooSmallError, match=r"layer conv2 .* 16x16"):
        LeNet5(input_size=8)


# ---------------------------------------------------------------------- the torch-free plans
# src/models/geometry.py describes each network once; the nn.Modules are built from it and the config
# check walks it before torch is imported. These tests hold the two to each other.
LENET5_OPTIONS = [{}, {"padding": "same"}, {"norm": "batch"}, *({"activation_fn": a} for a in ACTIVATIONS)]
NETWORKS = [
    (LeNet5, lenet5_plan, LENET5_OPTIONS),
    (AlexNet, alexnet_plan, [{}, {"norm": "batch", "groups": 2}, {"padding": "same", "adaptive_pool": 6}]),
    (AlexNetBN, alexnet_bn_plan, [{}, {"padding": "valid"}, {"padding": "same", "pooling": "min"}]),
]


@pytest.mark.parametrize(("network", "plan"), [(n, p) for n, p, _ in NETWORKS])
def test_each_network_takes_exactly_its_plans_arguments(network, plan):
    import inspect

    constructor = list(inspect.signature(network.__init__).parameters.values())[1:]  # without self
    assert constructor == list(inspect.signature(plan).parameters.values())
    assert PLANS[network.__name__] is plan


@pytest.mark.parametrize(("network", "plan", "options"), NETWORKS)
def test_the_layers_built_are_the_plans_layers(network, plan, options):
    for extra in options:
        model, layers = network(**extra), plan(**extra)
        built = list(model.features.named_children()) + ([("avgpool", model.avgpool)] if layers.pool else [])
        assert [name for name, _ in built] == [layer.name for layer in (*layers.features, *layers.pool)]
        assert [type(m).__name__ for _, m in built] == [x.type_name for x in (*layers.features, *layers.pool)]


@pytest.mark.parametrize("padding", ["valid", "same", "paper"])
@pytest.mark.parametrize("pooling", ["max", "min"])
@pytest.mark.parametrize(("network", "plan", "sizes"), [
    (LeNet5, lenet5_plan, [1, 4, 12, 15, 16, 17, 28, 32, 33]),
    (AlexNet, alexnet_plan, [31, 63, 66, 67, 68, 99, 227]),
    (AlexNetBN, alexnet_bn_plan, [31, 66, 67, 90, 99, 100, 101, 224]),
])  # fmt: skip
def test_plan_shapes_are_the_networks_shapes(network, plan, sizes, pooling, padding):
    """The plan's output shape is what the built network's features (and avgpool) output, and a size
    too small for one is too small for the other, with the same message."""
    for size in sizes:
        arguments = {"input_size": size, "pooling": pooling, "padding": padding}
        try:
            shape = plan(**arguments).output_shape()
        except InputTooSmallError as error:
            with pytest.raises(InputTooSmallError) as built, torch.device("meta"):
                network(**arguments)
            assert str(built.value) == str(error)
            continue
        with torch.device("meta"):  # shapes only: no memory for AlexNet's 60 M weights, no arithmetic
            model = network(**arguments).eval()
            out = model.features(torch.zeros(1, model.in_channels, size, size))
            out = model.avgpool(out) if hasattr(model, "avgpool") else out
        assert tuple(out.shape[1:]) == shape, (size, pooling, padding)


def test_rectangular_inputs_and_the_first_layer_that_fails():
    assert lenet5_plan(input_size=(32, 64)).output_shape() == (16, 5, 13)
    with pytest.raises(InputTooSmallError, match=r"^input 32x12 is too small: .* layer conv2 \(Conv2d\)"):
        lenet5_plan(input_size=(32, 12)).output_shape()
    with pytest.raises(InputTooSmallError, match=r"layer pool2 \(MinPool2d\); .* is 16x16$"):
        lenet5_plan(input_size=15, pooling="min").output_shape()


def test_a_config_check_of_a_network_needs_no_torch_and_gives_its_messages():
    from src.utils.errors import ConfigError

    assert check_network("src.models.LeNet5", {"input_size": 32, "pooling": "avg"})
    assert check_network("src.models.alexnet.AlexNetBN", {})
    assert not check_network("torchvision.models.AlexNet", {})  # not ours: built on the meta device instead
    with pytest.raises(
        ConfigError, match=r"^LeNet5.__init__\(\) got an unexpected keyword argument 'width'$"
    ):
        check_network("src.models.LeNet5", {"width": 2})
    with pytest.raises(ConfigError, match=r"^model.groups=3 is not supported; choose one of: 1, 2$"):
        check_network("src.models.AlexNet", {"groups": 3})
    with pytest.raises(ConfigError, match=r"^pooling='median' is not supported"):
        check_network("src.models.LeNet5", {"pooling": "median"})
