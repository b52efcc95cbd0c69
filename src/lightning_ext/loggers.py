"""Lightning's tracker loggers, adjusted where their defaults get in the way."""

from __future__ import annotations

from typing import Any


def drop_anonymous(logger: Any) -> Any:
    """Lightning always passes wandb.init `anonymous` (None by default), which W&B >= 0.20 answers with a
    deprecation warning on the console; None is W&B's default anyway, so it is not passed."""
    init = getattr(logger, "_wandb_init", {})  # WandbLogger's keyword arguments for wandb.init
    if init.get("anonymous") is None:
        init.pop("anonymous", None)
    return logger
