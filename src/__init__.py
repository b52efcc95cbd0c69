"""LeNet-5 and AlexNet with PyTorch Lightning + Hydra."""

from src.lightning_ext import lean_imports

lean_imports.install()  # torchmetrics without torchvision, matplotlib, scipy.signal (see that module)
