"""LeNet-5 and AlexNet with PyTorch Lightning + Hydra."""

from src import lean_imports

lean_imports.install()  # torchmetrics without torchvision, matplotlib, scipy.signal (see src/lean_imports.py)
