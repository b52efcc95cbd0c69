"""LeNet-5 (LeCun, Bottou, Bengio, Haffner 1998, "Gradient-based learning applied to document recognition").

    input 1x32x32 (MNIST's 28x28 digits padded by 2, so strokes reach the centre of the C3 receptive fields)
    C1  conv 6@5x5   -> 6x28x28       S2  pool 2x2/2 -> 6x14x14
    C3  conv 16@5x5  -> 16x10x10      S4  pool 2x2/2 -> 16x5x5
    C5  120 units fully connected to the 16x5x5 maps (the paper's 5x5 conv on a 5x5 map is exactly that)
    F6  84 units, output: one unit per class

Like every modern re-implementation: plain pooling (the paper's S2/S4 had a trainable coefficient and
bias per map) and full connections (not C3's sparse table). The flatten size is derived from the input
size, pooling and padding, so every combination builds. `norm=batch` (not in the paper) puts a
BatchNorm after each convolution, before its activation. Parameter counts: docs/study.md.
"""

from __future__ import annotations

from collections import OrderedDict

from torch import Tensor, nn

from src.models.geometry import lenet5_plan
from src.models.layers import Network, activation, build_features


class LeNet5(Network):
    def __init__(
        self,
        in_channels: int = 1,
        num_classes: int = 10,
        input_size: int = 32,
        activation_fn: str = "tanh",
        pooling: str = "max",
        padding: str = "valid",
        norm: str = "none",
    ) -> None:
        super().__init__()
        # The layers, their checks and their sizes come from one torch-free plan (src/models/geometry.py),
        # which the config check also walks before torch is imported.
        plan = lenet5_plan(in_channels, num_classes, input_size, activation_fn, pooling, padding, norm)
        self.in_channels, self.input_size, self.num_classes = in_channels, input_size, num_classes
        self.features, flat = build_features(plan)
        self.classifier = nn.Sequential(
            OrderedDict(
                flatten=nn.Flatten(),
                fc1=nn.Linear(flat, 120),
                act3=activation(activation_fn),
                fc2=nn.Linear(120, 84),
                act4=activation(activation_fn),
                fc3=nn.Linear(84, num_classes),
            )
        )

    def forward(self, x: Tensor) -> Tensor:
        return self.classifier(self.features(x))
