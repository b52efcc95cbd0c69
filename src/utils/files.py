"""Files written so that a crash never leaves a half-written one: checkpoints, metrics.json, dataset caches.

Every writer here puts its output in a temporary name beside the target and renames it into place
(`os.replace` is atomic on one filesystem): a later reader either finds the whole file or none.

A write that runs out of room (a full disk, a spent quota, the process's file-size limit) fails before
the rename, so the file it would have replaced stays as it was; it ends in a `NoSpaceError` naming the
file, one line, whatever layer it passed through (torch.save turns the OSError into a RuntimeError).
"""

from __future__ import annotations

import contextlib
import errno
import json
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Any, cast

from src.utils.errors import UserError

# What the kernel answers when a file cannot grow: the disk is full (ENOSPC), the user's quota is spent
# (EDQUOT), or the file would pass the process's size limit (EFBIG: `ulimit -f`, RLIMIT_FSIZE).
NO_SPACE = (errno.ENOSPC, errno.EDQUOT, errno.EFBIG)


class NoSpaceError(UserError):
    """A file that could not be written for lack of room; the file it was to replace is intact."""


def no_space_cause(error: BaseException) -> OSError | None:
    """The out-of-room OSError behind `error` (itself, or what it was raised from or while handling)."""
    seen: BaseException | None = error
    while seen is not None:
        if isinstance(seen, OSError) and seen.errno in NO_SPACE:
            return seen
        seen = seen.__cause__ or seen.__context__
    return None


def _no_space_error(target: Path, cause: OSError) -> NoSpaceError:
    kept = "the previous file is kept" if target.exists() else "nothing was written"
    return NoSpaceError(
        f"cannot write {target}: {cause.strerror} ({errno.errorcode[cast(int, cause.errno)]}); {kept}; "
        "free some space (or raise the file-size limit)"
    )


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
        permissions = 0o666 & ~_umask()  # mkstemp's 0600 -> what open() would have given
        if hasattr(os, "fchmod"):
            os.fchmod(fd, permissions)
        else:  # Windows (no fchmod; chmod sets only the read-only flag there)
            os.chmod(tmp, permissions)
        with os.fdopen(fd, mode) as handle:
            yield handle
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, target)
    except BaseException as error:
        Path(tmp).unlink(missing_ok=True)
        cause = no_space_cause(error)
        if cause is not None:
            raise _no_space_error(target, cause) from error
        raise


def atomic_save(obj: object, path: str | os.PathLike) -> None:
    """torch.save that never leaves a half-written file."""
    import torch  # deferred: torch, only to save a checkpoint

    with atomic_open(path) as handle:
        torch.save(obj, handle)


def write_json_atomically(data: dict[str, Any], path: str | os.PathLike) -> None:
    """JSON (sorted keys, indented) that is never half-written."""
    with atomic_open(path, "w") as handle:
        json.dump(data, handle, indent=2, sort_keys=True)
        handle.write("\n")
