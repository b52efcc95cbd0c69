"""The building blocks that the pooling and padding choices swap in and out.

Both networks are built from these factories, so `pooling=min` or `padding=same` on the command line
changes every pooling / convolution layer of whichever model is chosen, and nothing else.

Pooling (`max | avg | min`): the model fixes the window and stride (2x2/2 for LeNet-5, 3x3/2 for
AlexNet); the choice decides what the window reduces to. Min pooling is -max(-x).
Padding (`valid | same | paper`), as TensorFlow/Keras: valid pads nothing; same gives ceil(input / stride)
for any kernel, padding max((output - 1) * stride + kernel - input, 0) in total, half before and the
rest (one more pixel when odd) after, so "same" can be asymmetric; paper pads as the original paper.
"""

from __future__ import annotations

from collections import OrderedDict

import torch
import torch.nn.functional as F
from torch import nn

from src.models.geometry import (
    ACTIVATIONS,
    POOLING_MODES,
    Layer,
    Plan,
    check_choice,
    same_padding,
    uses_symmetric_padding,
)


class Network(nn.Module):
    """What every network here (LeNet5, AlexNet, AlexNetBN) keeps besides its layers: the image it takes
    (channels, side) and its number of classes, read by the training module and src/models/shapes.py."""

    in_channels: int
    input_size: int
    num_classes: int


class SameConv2d(nn.Conv2d):
    """Conv2d with TensorFlow's "same" padding, computed from the input size at each call.

    When the padding is symmetric and independent of the input size (stride 1, odd kernel) we use
    nn.Conv2d's own padding instead: `conv2d()` below picks that faster path.
    """

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        (kh, kw), (sh, sw), (dh, dw) = self.kernel_size, self.stride, self.dilation
        top, bottom = same_padding(x.shape[-2], kh, sh, dh)
        left, right = same_padding(x.shape[-1], kw, sw, dw)
        if top or bottom or left or right:
            x = F.pad(x, (left, right, top, bottom))
        return super().forward(x)


def conv2d(
    in_channels: int,
    out_channels: int,
    kernel_size: int,
    stride: int = 1,
    padding: str = "valid",
    groups: int = 1,
) -> nn.Conv2d:
    """A convolution with `valid` or TensorFlow-`same` padding."""
    check_choice("padding", padding, ("valid", "same"))
    if padding == "valid":
        return nn.Conv2d(in_channels, out_channels, kernel_size, stride, padding=0, groups=groups)
    if uses_symmetric_padding(kernel_size, stride):  # symmetric and size-independent: the fast path
        return nn.Conv2d(in_channels, out_channels, kernel_size, 1, padding=kernel_size // 2, groups=groups)
    return SameConv2d(in_channels, out_channels, kernel_size, stride, padding=0, groups=groups)


# ---------------------------------------------------------------------------------------- pooling
class MinPool2d(nn.MaxPool2d):
    """Min pooling: min over the window = -max(-x). Keeps the darkest / most negative response."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return -super().forward(-x)


def pool2d(mode: str, kernel_size: int, stride: int | None = None) -> nn.Module:
    """A pooling layer of the chosen kind with the model's window and stride (no padding)."""
    check_choice("pooling", mode, POOLING_MODES)
    stride = kernel_size if stride is None else stride
    if mode == "avg":
        return nn.AvgPool2d(kernel_size, stride)
    return (nn.MaxPool2d if mode == "max" else MinPool2d)(kernel_size, stride)


# ------------------------------------------------------------------------------------ activations
class ScaledTanh(nn.Module):
    """LeCun et al. 1998, appendix A: f(a) = 1.7159 tanh(2a/3), so that f(+-1) = +-1."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return 1.7159 * torch.tanh(x * (2.0 / 3.0))


def activation(name: str) -> nn.Module:
    check_choice("activation", name, ACTIVATIONS)
    kinds = {"tanh": nn.Tanh, "scaled_tanh": ScaledTanh, "relu": nn.ReLU, "sigmoid": nn.Sigmoid,
             "elu": nn.ELU, "silu": nn.SiLU, "gelu": nn.GELU}  # fmt: skip
    return kinds[name]()


# ------------------------------------------------------------------------------- from a plan
def build_layer(layer: Layer, in_channels: int) -> nn.Module:
    """The nn.Module for one layer of a network's plan (src/models/geometry.py), reading `in_channels`."""
    if layer.kind == "conv":
        return conv2d(in_channels, layer.channels, layer.kernel, layer.stride, layer.padding, layer.groups)
    if layer.kind == "pool":
        return pool2d(layer.mode, layer.kernel, layer.stride)
    if layer.kind == "act":
        return nn.ReLU(inplace=True) if layer.mode == "relu" and layer.inplace else activation(layer.mode)
    if layer.kind == "lrn":
        return nn.LocalResponseNorm(size=5, alpha=1e-4, beta=0.75, k=2.0)
    if layer.kind == "batchnorm":
        return nn.BatchNorm2d(layer.channels)
    if layer.kind == "adaptive_avgpool":
        return nn.AdaptiveAvgPool2d(layer.output)
    if layer.kind == "identity":
        return nn.Identity()
    raise ValueError(f"unknown layer kind {layer.kind!r}")


def build_features(plan: Plan) -> tuple[nn.Sequential, int]:
    """A network's `features` from its plan, and how many values their output (after `plan.pool`)
    flattens to: the inputs of the first dense layer."""
    channels, height, width = plan.output_shape()  # first: an input too small fails before any weight
    features = nn.Sequential(OrderedDict(build_layers(plan.features, plan.in_channels)))
    return features, channels * height * width


def build_layers(layers: tuple[Layer, ...], in_channels: int) -> list[tuple[str, nn.Module]]:
    """(name, module) pairs for a run of layers, each reading the previous one's channels."""
    built = []
    for layer in layers:
        built.append((layer.name, build_layer(layer, in_channels)))
        in_channels = layer.output_channels(in_channels)
    return built
