"""What each network is made of, as plain data, and what it does to an image's size: no torch here.

Each network's feature extractor is described once, by a plan function (`lenet5_plan`, `alexnet_plan`,
`alexnet_bn_plan`) that returns its layers as `Layer` records (kind, channels, kernel, stride, padding,
pooling mode, activation). The nn.Modules build their `features` from the plan (src/models/layers.py)
and size their first dense layer with `Plan.output_shape()`; the config check (src/config/check.py)
walks the same plan before torch is imported, with the same one-line messages.

Size arithmetic (one spatial dimension, input n): valid convolution or pooling with kernel k, stride s:
floor((n - k) / s) + 1, nothing when n < k (the feature map "vanishes"); same convolution: ceil(n / s);
adaptive average pooling to a: a; everything else keeps n.
"""

from __future__ import annotations

import inspect
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from src.utils.errors import ConfigError

# What a pooling window reduces to, and how a convolution pads (module doc of src/models/layers.py): the
# modes the layers implement. The command line's choices are the files of conf/pooling/ and conf/padding/,
# one per mode (`pooling=min` selects conf/pooling/min.yaml, `name: min`); tests/test_config.py checks
# that the two agree, so a new mode is added here and as one file there.
POOLING_MODES = ("max", "avg", "min")
PADDING_MODES = ("valid", "same", "paper")
ACTIVATIONS = ("tanh", "scaled_tanh", "relu", "sigmoid", "elu", "silu", "gelu")


class InputTooSmallError(ConfigError):
    """The input image is too small for the network: some feature map shrinks to nothing."""


def pair(value: int | Sequence[int]) -> tuple[int, int]:
    return (value, value) if isinstance(value, int) else (int(value[0]), int(value[1]))


def check_choice(kind: str, value: Any, allowed: Sequence[Any]) -> Any:
    """Return `value` if allowed, else raise a one-line ConfigError naming it and the choices."""
    if value not in allowed:
        raise ConfigError(f"{kind}={value!r} is not supported; choose one of: {', '.join(map(str, allowed))}")
    return value


def resolve_padding(padding: str, paper_choice: str) -> str:
    """`paper` means: pad this layer as the original paper did (`paper_choice`)."""
    check_choice("padding", padding, PADDING_MODES)
    return paper_choice if padding == "paper" else padding


def same_padding(size: int, kernel: int, stride: int, dilation: int = 1) -> tuple[int, int]:
    """TensorFlow's "same" padding along one dimension: (before, after)."""
    effective_kernel = (kernel - 1) * dilation + 1
    out = math.ceil(size / stride)
    total = max((out - 1) * stride + effective_kernel - size, 0)
    return total // 2, total - total // 2


def conv_output_size(size: int, kernel: int, stride: int, padding: str) -> int:
    """Output size of a convolution (or pooling) along one dimension for `valid` or `same`."""
    if padding == "same":
        return math.ceil(size / stride)
    return (size - kernel) // stride + 1


def uses_symmetric_padding(kernel: int, stride: int) -> bool:
    """`same` padding that nn.Conv2d's own `padding=k // 2` gives exactly: stride 1, odd kernel."""
    return stride == 1 and kernel % 2 == 1


# ------------------------------------------------------------------------------------------ layers
_POOL_TYPES = {"max": "MaxPool2d", "avg": "AvgPool2d", "min": "MinPool2d"}
_ACTIVATION_TYPES = {"tanh": "Tanh", "scaled_tanh": "ScaledTanh", "relu": "ReLU", "sigmoid": "Sigmoid",
                     "elu": "ELU", "silu": "SiLU", "gelu": "GELU"}  # fmt: skip


@dataclass(frozen=True)
class Layer:
    """One layer of a feature extractor. `kind` is conv | pool | act | lrn | batchnorm | adaptive_avgpool
    | identity; `mode` is the pooling mode (pool) or the activation's name (act)."""

    name: str
    kind: str
    channels: int = 0  # conv: output channels; batchnorm: channels normalised
    kernel: int = 1
    stride: int = 1
    padding: str = "valid"
    groups: int = 1
    mode: str = ""
    inplace: bool = False
    output: int = 0  # adaptive_avgpool: the output side

    @property
    def type_name(self) -> str:
        """The class name of the nn.Module src/models/layers.py builds for this layer (used in messages)."""
        if self.kind == "conv":
            if self.padding == "same" and not uses_symmetric_padding(self.kernel, self.stride):
                return "SameConv2d"
            return "Conv2d"
        if self.kind == "pool":
            return _POOL_TYPES[self.mode]
        if self.kind == "act":
            return _ACTIVATION_TYPES[self.mode]
        return {
            "lrn": "LocalResponseNorm",
            "batchnorm": "BatchNorm2d",
            "adaptive_avgpool": "AdaptiveAvgPool2d",
            "identity": "Identity",
        }[self.kind]

    def output_side(self, size: int) -> int | None:
        """The output size along one dimension, or None where the layer cannot run (input < kernel)."""
        if self.kind in ("conv", "pool"):
            if self.kind == "conv" and self.padding == "same":
                return math.ceil(size / self.stride)
            return None if size < self.kernel else conv_output_size(size, self.kernel, self.stride, "valid")
        if self.kind == "adaptive_avgpool":
            return self.output
        return size

    def output_channels(self, channels: int) -> int:
        return self.channels if self.kind == "conv" else channels


def conv(
    name: str, channels: int, kernel: int, stride: int = 1, padding: str = "valid", groups: int = 1
) -> Layer:
    check_choice("padding", padding, ("valid", "same"))
    return Layer(
        name, "conv", channels=channels, kernel=kernel, stride=stride, padding=padding, groups=groups
    )


def pool(name: str, mode: str, kernel: int, stride: int | None = None) -> Layer:
    check_choice("pooling", mode, POOLING_MODES)
    return Layer(name, "pool", kernel=kernel, stride=kernel if stride is None else stride, mode=mode)


def act(name: str, activation: str, inplace: bool = False) -> Layer:
    check_choice("activation", activation, ACTIVATIONS)
    return Layer(name, "act", mode=activation, inplace=inplace)


@dataclass(frozen=True)
class Plan:
    """A network's feature extractor (`features`, then `pool`, e.g. AlexNet's `avgpool`) for one
    input: `in_channels` x `input_size` x `input_size` (or a (height, width) pair)."""

    in_channels: int
    input_size: int | tuple[int, int]
    features: tuple[Layer, ...]
    pool: tuple[Layer, ...] = field(default=())

    def _walk(self, height: int, width: int) -> tuple[tuple[int, int, int], Layer | None]:
        channels = self.in_channels
        for layer in (*self.features, *self.pool):
            h, w = layer.output_side(height), layer.output_side(width)
            if h is None or w is None or min(h, w) < 1:
                return (channels, height, width), layer
            channels, height, width = layer.output_channels(channels), h, w
        return (channels, height, width), None

    def output_shape(self) -> tuple[int, int, int]:
        """(C, H, W) after `features` and `pool`, or InputTooSmallError naming the layer where the map
        vanishes and the smallest square input that works."""
        height, width = pair(self.input_size)
        shape, failing = self._walk(height, width)
        if failing is None:
            return shape
        smallest = next((n for n in range(1, 1025) if self._walk(n, n)[1] is None), None)
        raise InputTooSmallError(
            f"input {height}x{width} is too small: the feature map vanishes at layer "
            f"{failing.name} ({failing.type_name}); the smallest input that works is {smallest}x{smallest}"
        )


# ------------------------------------------------------------------------------------------- plans
LENET5_NORMS = ("none", "batch")
ALEXNET_NORMS = ("lrn", "batch", "none")


def lenet5_plan(
    in_channels: int = 1,
    num_classes: int = 10,
    input_size: int = 32,
    activation_fn: str = "tanh",
    pooling: str = "max",
    padding: str = "valid",
    norm: str = "none",
) -> Plan:
    """LeNet-5 (src/models/lenet5.py): conv 6@5x5 -> [BatchNorm] -> activation -> pool 2x2/2, then the
    same with 16 maps: conv1 [bn1] act1 pool1 conv2 [bn2] act2 pool2."""
    check_choice("model.norm", norm, LENET5_NORMS)
    pad = resolve_padding(padding, paper_choice="valid")
    layers: list[Layer] = []
    for index, channels in ((1, 6), (2, 16)):
        layers.append(conv(f"conv{index}", channels, 5, padding=pad))
        if norm == "batch":
            layers.append(Layer(f"bn{index}", "batchnorm", channels=channels))
        layers += [act(f"act{index}", activation_fn), pool(f"pool{index}", pooling, 2)]
    return Plan(in_channels, input_size, tuple(layers))


def alexnet_plan(
    in_channels: int = 3,
    num_classes: int = 1000,
    input_size: int = 227,
    pooling: str = "max",
    padding: str = "paper",
    norm: str = "lrn",
    groups: int = 1,
    dropout: float = 0.5,
    adaptive_pool: int | None = None,
) -> Plan:
    """AlexNet (src/models/alexnet.py): five convolutions, ReLU, LRN after the first two (or BatchNorm
    before every ReLU), overlapping 3x3/2 max pooling after 1, 2 and 5; `padding=paper` leaves conv1
    unpadded and pads conv2-5 to keep their size."""
    check_choice("model.norm", norm, ALEXNET_NORMS)
    check_choice("model.groups", groups, (1, 2))
    pad1, pad = resolve_padding(padding, "valid"), resolve_padding(padding, "same")
    # (name, out channels, kernel, stride, padding, groups, normalise?, pool?)
    table = [
        ("1", 96, 11, 4, pad1, 1, True, True),
        ("2", 256, 5, 1, pad, groups, True, True),
        ("3", 384, 3, 1, pad, 1, False, False),
        ("4", 384, 3, 1, pad, groups, False, False),
        ("5", 256, 3, 1, pad, groups, False, True),
    ]
    layers: list[Layer] = []
    for name, out, kernel, stride, conv_pad, conv_groups, normalise, pooled in table:
        layers.append(conv(f"conv{name}", out, kernel, stride, conv_pad, conv_groups))
        # LRN follows the ReLU (paper, section 3.3); BatchNorm goes between conv and ReLU.
        if norm == "batch":
            layers.append(Layer(f"bn{name}", "batchnorm", channels=out))
        layers.append(act(f"relu{name}", "relu", inplace=True))
        if norm == "lrn" and normalise:
            layers.append(Layer(f"lrn{name}", "lrn"))
        if pooled:
            layers.append(pool(f"pool{name}", pooling, 3, 2))
    head = (
        Layer("avgpool", "adaptive_avgpool", output=adaptive_pool)
        if adaptive_pool
        else Layer("avgpool", "identity")
    )
    return Plan(in_channels, input_size, tuple(layers), (head,))


def alexnet_bn_plan(
    in_channels: int = 3,
    num_classes: int = 17,
    input_size: int = 224,
    pooling: str = "max",
    padding: str = "paper",
    dropout: float = 0.4,
) -> Plan:
    """The study sheet's Keras AlexNet (src/models/alexnet.py, AlexNetBN): conv -> ReLU -> [pool] ->
    BatchNorm; `padding=paper`: conv1 valid, conv2 same, conv3-5 valid, as the study sheet's Keras model."""
    pad1 = resolve_padding(padding, "valid")
    pad2 = resolve_padding(padding, "same")
    pad3 = resolve_padding(padding, "valid")
    # (name, out channels, kernel, stride, padding, pool?)
    table = [
        ("1", 96, 11, 4, pad1, True),
        ("2", 256, 5, 1, pad2, True),
        ("3", 384, 3, 1, pad3, False),
        ("4", 384, 3, 1, pad3, False),
        ("5", 256, 3, 1, pad3, True),
    ]
    layers: list[Layer] = []
    for name, out, kernel, stride, conv_pad, pooled in table:
        layers += [conv(f"conv{name}", out, kernel, stride, conv_pad), act(f"relu{name}", "relu")]
        if pooled:
            layers.append(pool(f"pool{name}", pooling, 3, 2))
        layers.append(Layer(f"bn{name}", "batchnorm", channels=out))
    return Plan(in_channels, input_size, tuple(layers), (Layer("avgpool", "identity"),))


# The networks of src/models by class name; their constructors take exactly the plan's arguments
# (tests/test_models.py checks the signatures).
PLANS: dict[str, Callable[..., Plan]] = {
    "LeNet5": lenet5_plan,
    "AlexNet": alexnet_plan,
    "AlexNetBN": alexnet_bn_plan,
}


def plan_for_target(target: str) -> tuple[str, Callable[..., Plan]] | None:
    """(class name, plan function) for a Hydra `_target_` naming one of src/models' networks
    (`src.models.LeNet5`, `src.models.lenet5.LeNet5`, ...), else None."""
    module, _, name = target.rpartition(".")
    if name in PLANS and (module == "src.models" or module.startswith("src.models.")):
        return name, PLANS[name]
    return None


def check_network(target: str, arguments: dict[str, Any]) -> bool:
    """Check a model config without building it: argument names, choices and the input size, with the
    messages the constructor would give. False when `target` is not one of src/models' networks (the
    caller then builds it on torch's meta device instead)."""
    found = plan_for_target(target)
    if found is None:
        return False
    name, plan = found
    parameters = inspect.signature(plan).parameters
    for key in arguments:
        if key not in parameters:
            raise ConfigError(f"{name}.__init__() got an unexpected keyword argument '{key}'")
    plan(**arguments).output_shape()
    return True
