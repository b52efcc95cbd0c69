"""LeNet-5 and AlexNet with PyTorch Lightning + Hydra. From Python: `from src import load_run`, and
`from src.api import train` (src/api.py; `src.train` is the command's module)."""

from typing import Any

from src.lightning_ext import lean_imports

lean_imports.install()  # torchmetrics without torchvision, matplotlib, scipy.signal (see that module)


def __getattr__(name: str) -> Any:
    """`load_run` (src/api.py) on first use, so that `import src.<module>` stays light."""
    if name == "load_run":
        from src import api  # deferred: imports torch (every command imports src before its checks)

        return getattr(api, name)
    raise AttributeError(f"module 'src' has no attribute {name!r}")
