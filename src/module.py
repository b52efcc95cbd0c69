"""ImageClassifier's old import path. It lives in src/training/module.py; the run configs saved before it
moved (outputs/*/config.yaml, `module._target_: src.module.ImageClassifier`) name this path, and
`python -m src.eval <run dir>` instantiates those configs."""

from src.training.module import ImageClassifier

__all__ = ["ImageClassifier"]
