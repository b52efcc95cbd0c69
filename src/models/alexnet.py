"""AlexNet (Krizhevsky, Sutskever, Hinton 2012, "ImageNet Classification with Deep Convolutional
Neural Networks"), laid out like torchvision's: `features` / `avgpool` / `classifier`.

    input 3x227x227 (the paper says 224; only 227 gives its 55x55 first maps)
    conv1 96@11x11 /4 -> ReLU -> LRN -> max pool 3x3/2      55 -> 27
    conv2 256@5x5     -> ReLU -> LRN -> max pool 3x3/2      27 -> 13
    conv3 384@3x3 -> ReLU, conv4 384@3x3 -> ReLU, conv5 256@3x3 -> ReLU -> max pool 3x3/2   13 -> 6
    dropout 0.5 -> FC 4096 -> ReLU -> dropout 0.5 -> FC 4096 -> ReLU -> FC classes

Pooling windows overlap (3x3 with stride 2); LRN: size 5, alpha 1e-4, beta 0.75, k 2. `groups=2`
restores the paper's split across two GPUs (conv2, conv4, conv5 see only their own half's maps);
`padding=paper` pads conv2-5 "same" and leaves conv1 unpadded. Parameter counts: docs/results.md.
"""

from __future__ import annotations

from collections import OrderedDict

from torch import Tensor, nn

from src.models.geometry import alexnet_bn_plan, alexnet_plan
from src.models.layers import Network, build_features, build_layer


class AlexNet(Network):
    def __init__(
        self,
        in_channels: int = 3,
        num_classes: int = 1000,
        input_size: int = 227,
        pooling: str = "max",
        padding: str = "paper",
        norm: str = "lrn",
        groups: int = 1,
        dropout: float = 0.5,
        adaptive_pool: int | None = None,
    ) -> None:
        super().__init__()
        # The layers, their checks and their sizes come from one torch-free plan (src/models/geometry.py),
        # which the config check also walks before torch is imported.
        plan = alexnet_plan(
            in_channels, num_classes, input_size, pooling, padding, norm, groups, dropout, adaptive_pool
        )
        self.in_channels, self.input_size, self.num_classes = in_channels, input_size, num_classes
        self.features, flat = build_features(plan)
        self.avgpool = build_layer(plan.pool[0], 0)  # avgpool: Identity or AdaptiveAvgPool2d
        self.classifier = nn.Sequential(
            OrderedDict(
                flatten=nn.Flatten(),
                drop6=nn.Dropout(dropout),
                fc6=nn.Linear(flat, 4096),
                relu6=nn.ReLU(inplace=True),
                drop7=nn.Dropout(dropout),
                fc7=nn.Linear(4096, 4096),
                relu7=nn.ReLU(inplace=True),
                fc8=nn.Linear(4096, num_classes),
            )
        )

    def forward(self, x: Tensor) -> Tensor:
        return self.classifier(self.avgpool(self.features(x)))


class AlexNetBN(Network):
    """The study sheet's Keras "AlexNet" for Flowers-17 (a popular tutorial variant, not the paper's network).

    conv1 96@11x11/4 valid -> pool 3x3/2 -> BN; conv2 256@5x5 same -> pool -> BN;
    conv3 384@3x3, conv4 384@3x3, conv5 256@3x3 (valid, each -> BN; conv5 -> pool -> BN);
    FC 4096 -> dropout 0.4 -> BN, FC 4096 -> dropout 0.4 -> BN, FC classes. ReLU after every layer.
    At 224x224x3 and 17 classes Keras reports 24,834,833 parameters (24,815,697 trainable + the
    BatchNorm moving mean and variance): `keras_param_count()` counts the same way.
    """

    def __init__(
        self,
        in_channels: int = 3,
        num_classes: int = 17,
        input_size: int = 224,
        pooling: str = "max",
        padding: str = "paper",
        dropout: float = 0.4,
    ) -> None:
        super().__init__()
        plan = alexnet_bn_plan(in_channels, num_classes, input_size, pooling, padding, dropout)
        self.in_channels, self.input_size, self.num_classes = in_channels, input_size, num_classes
        self.features, flat = build_features(plan)
        self.avgpool = build_layer(plan.pool[0], 0)  # avgpool: Identity or AdaptiveAvgPool2d
        self.classifier = nn.Sequential(
            OrderedDict(
                flatten=nn.Flatten(),
                fc6=nn.Linear(flat, 4096),
                relu6=nn.ReLU(),
                drop6=nn.Dropout(dropout),
                bn6=nn.BatchNorm1d(4096),
                fc7=nn.Linear(4096, 4096),
                relu7=nn.ReLU(),
                drop7=nn.Dropout(dropout),
                bn7=nn.BatchNorm1d(4096),
                fc8=nn.Linear(4096, num_classes),
            )
        )

    def forward(self, x: Tensor) -> Tensor:
        return self.classifier(self.avgpool(self.features(x)))


def keras_param_count(model: nn.Module) -> int:
    """Parameters as Keras counts them: weights plus BatchNorm moving mean and variance."""
    buffers = sum(b.numel() for n, b in model.named_buffers() if n.endswith(("running_mean", "running_var")))
    return sum(p.numel() for p in model.parameters()) + buffers
