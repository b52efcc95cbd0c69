"""LeNet-5 and AlexNet with PyTorch Lightning + Hydra."""
