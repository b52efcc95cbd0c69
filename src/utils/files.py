"""Files written so that a crash never leaves a half-written one: checkpoints, metrics.json, dataset caches.

Every writer here puts its output in a temporary name beside the target and renames it into place
(`os.replace` is atomic on one filesystem): a later reader either finds the whole file or none.
"""

from __future__ import annotations

import contextlib
import json
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Any


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


@contextlib.contextmanager
def atomic_open(path: str | os.PathLike, mode: str = "wb") -> Iterator[IO]:
    """Open `.<name>.<random>.tmp` beside `path` for writing; when the block ends without an error the
    file is flushed to disk and renamed onto `path` in one step, otherwise it is removed. Every
    "atomic" writer of the project (checkpoints, metrics.json, dataset caches) goes through here."""
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.", suffix=".tmp")
    try:
        os.fchmod(fd, 0o666 & ~_umask())  # mkstemp's 0600 -> what open() would have given
        with os.fdopen(fd, mode) as handle:
            yield handle
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, target)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def atomic_save(obj: object, path: str | os.PathLike) -> None:
    """torch.save that never leaves a half-written file."""
    import torch

    with atomic_open(path) as handle:
        torch.save(obj, handle)


def write_json_atomically(data: dict[str, Any], path: str | os.PathLike) -> None:
    """JSON (sorted keys, indented) that is never half-written."""
    with atomic_open(path, "w") as handle:
        json.dump(data, handle, indent=2, sort_keys=True)
        handle.write("\n")
