"""Plain nn.Module networks: no training logic here (that lives in src/module.py)."""

from src.models.alexnet import AlexNet, AlexNetBN
from src.models.lenet5 import LeNet5

__all__ = ["AlexNet", "AlexNetBN", "LeNet5"]
