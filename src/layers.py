"""The building blocks that the pooling and padding choices swap in and out.

Both networks are built from these factories, so `pooling=min` or `padding=same` on the command line
changes every pooling / convolution layer of whichever model is chosen, and nothing else.

Pooling (`max | avg | min`): the model fixes the window and stride (2x2/2 for LeNet-5, the overlapping
3x3/2 for AlexNet); the choice only decides what the window reduces to. Min pooling has no PyTorch
layer: min(x) = -max(-x), so it is a max pooling of the negated input, negated back.

Padding (`valid | same`) follows TensorFlow/Keras:
- valid: no padding, output = floor((input - kernel) / stride) + 1;
- same: output = ceil(input / stride) for any kernel and stride. The total padding needed is
  max((output - 1) * stride + kernel - input, 0); half of it goes before, the rest (one more pixel
  when the total is odd) after, which is why TensorFlow's "same" can be asymmetric.
- paper: each layer padded as in the original paper (the model says which layers those are).
"""

from __future__ import annotations

import copy
import math
from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from src.errors import ConfigError

POOLING_MODES = ("max", "avg", "min")
PADDING_MODES = ("valid", "same", "paper")
ACTIVATIONS = ("tanh", "scaled_tanh", "relu", "sigmoid")


def _pair(value: int | Sequence[int]) -> tuple[int, int]:
    return (value, value) if isinstance(value, int) else (int(value[0]), int(value[1]))


def check_choice(kind: str, value: str, allowed: Sequence[str]) -> str:
    """Return `value` if allowed, else raise a one-line ConfigError naming it and the choices."""
    if value not in allowed:
        raise ConfigError(f"{kind}={value!r} is not supported; choose one of: {', '.join(map(str, allowed))}")
    return value


# ---------------------------------------------------------------------------------------- padding
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
    if stride == 1 and kernel_size % 2 == 1:  # symmetric and size-independent: the fast path
        return nn.Conv2d(in_channels, out_channels, kernel_size, 1, padding=kernel_size // 2, groups=groups)
    return SameConv2d(in_channels, out_channels, kernel_size, stride, padding=0, groups=groups)


def resolve_padding(padding: str, paper_choice: str) -> str:
    """`paper` means: pad this layer as the original paper did (`paper_choice`)."""
    check_choice("padding", padding, PADDING_MODES)
    return paper_choice if padding == "paper" else padding


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
    return {"tanh": nn.Tanh, "scaled_tanh": ScaledTanh, "relu": nn.ReLU, "sigmoid": nn.Sigmoid}[name]()


# ------------------------------------------------------------------------------- input-size checks
class InputTooSmallError(ConfigError):
    """The input image is too small for the network: some feature map shrinks to nothing."""


def _first_failing_layer(meta_features: nn.Sequential, shape: tuple[int, ...]) -> str | None:
    """Run a meta tensor (shapes only, no compute) through `features`; name the layer that fails."""
    x = torch.empty(shape, device="meta")
    for name, layer in meta_features.named_children():
        try:
            x = layer(x)
        except RuntimeError:
            return f"{name} ({type(layer).__name__})"
        if min(x.shape[-2:]) < 1:
            return f"{name} ({type(layer).__name__})"
    return None


def feature_shape(features: nn.Sequential, in_channels: int, input_size: int | Sequence[int]) -> torch.Size:
    """Output shape (C, H, W) of `features` for one input image, or InputTooSmallError.

    The shapes are computed on PyTorch's "meta" device (no memory, no arithmetic). The error names
    the layer where the feature map vanishes and the smallest square input that works.
    """
    meta_features = copy.deepcopy(features).to("meta")
    h, w = _pair(input_size)
    failing = _first_failing_layer(meta_features, (1, in_channels, h, w))
    if failing is not None:
        fits = (
            n for n in range(1, 1025) if _first_failing_layer(meta_features, (1, in_channels, n, n)) is None
        )
        smallest = next(fits, None)
        raise InputTooSmallError(
            f"input {h}x{w} is too small: the feature map vanishes at layer {failing}; "
            f"the smallest input that works is {smallest}x{smallest}"
        )
    return meta_features(torch.empty((1, in_channels, h, w), device="meta")).shape[1:]
