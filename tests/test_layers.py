import math

import pytest
import torch
import torch.nn.functional as F

from src.models.geometry import conv_output_size, same_padding
from src.models.layers import MinPool2d, SameConv2d, conv2d, pool2d
from src.utils.errors import ConfigError


def test_min_pooling_is_minus_max_of_minus_x():
    x = torch.randn(2, 3, 9, 9)
    pooled = pool2d("min", 3, 2)(x)
    assert isinstance(pool2d("min", 3, 2), MinPool2d)
    assert torch.equal(pooled, -F.max_pool2d(-x, 3, 2))
    # and it really is the minimum of each window
    windows = x.unfold(2, 3, 2).unfold(3, 3, 2)
    assert torch.allclose(pooled, windows.amin(dim=(-1, -2)))


@pytest.mark.parametrize("mode,reference", [("max", F.max_pool2d), ("avg", F.avg_pool2d)])
def test_max_and_avg_pooling_keep_the_models_window(mode, reference):
    x = torch.randn(1, 2, 11, 11)
    assert torch.equal(pool2d(mode, 3, 2)(x), reference(x, 3, 2))
    assert pool2d(mode, 2)(x).shape[-1] == 5  # stride defaults to the window


def test_unknown_pooling_names_the_choices():
    with pytest.raises(ConfigError, match=r"pooling='median' is not supported; choose one of: max, avg, min"):
        pool2d("median", 2)


@pytest.mark.parametrize("kernel", range(1, 12))
@pytest.mark.parametrize("stride", range(1, 5))
@pytest.mark.parametrize("size", [1, 7, 13, 28, 32])
def test_same_padding_output_is_ceil_input_over_stride(kernel, stride, size):
    conv = conv2d(1, 1, kernel, stride, padding="same")
    out = conv(torch.zeros(1, 1, size, size))
    assert out.shape[-2:] == (math.ceil(size / stride),) * 2
    assert conv_output_size(size, kernel, stride, "same") == math.ceil(size / stride)


@pytest.mark.parametrize("kernel", range(1, 12))
@pytest.mark.parametrize("stride", range(1, 5))
def test_valid_output_size(kernel, stride):
    size = 32
    out = conv2d(1, 1, kernel, stride, padding="valid")(torch.zeros(1, 1, size, size))
    assert out.shape[-1] == (size - kernel) // stride + 1 == conv_output_size(size, kernel, stride, "valid")


def test_same_padding_is_asymmetric_like_tensorflow():
    # TensorFlow: input 4, kernel 3, stride 2 -> output 2, total padding 1, all of it after.
    assert same_padding(4, 3, 2) == (0, 1)
    assert same_padding(5, 4, 1) == (1, 2)
    assert same_padding(224, 11, 4) == (3, 4)  # 56 outputs need 7 pixels
    conv = conv2d(1, 1, 4, 1, padding="same")
    assert isinstance(conv, SameConv2d)
    x = torch.randn(1, 1, 5, 5)
    expected = F.conv2d(F.pad(x, (1, 2, 1, 2)), conv.weight, conv.bias)
    assert torch.allclose(conv(x), expected)


def test_same_with_stride_one_and_odd_kernel_uses_the_symmetric_fast_path():
    conv = conv2d(3, 4, 5, padding="same")
    assert type(conv) is torch.nn.Conv2d and conv.padding == (2, 2)


def test_unknown_padding_names_the_choices():
    with pytest.raises(ConfigError, match="padding='full' is not supported; choose one of: valid, same"):
        conv2d(1, 1, 3, padding="full")
