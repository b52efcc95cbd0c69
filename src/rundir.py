"""A run directory's state: finished, still running, or stopped before it finished.

A finished run has a `metrics.json` (written last, atomically, by src.train). While it trains, the
process holds an exclusive `flock` on `<run dir>/.running`; the operating system drops that lock when the
process ends however it ends (an error, a kill, a power cut), so another process can tell a run that is
still going from one that died, without any stale state to clean up.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
from collections.abc import Iterator
from pathlib import Path

from src.errors import UserError

METRICS_FILE = "metrics.json"
RUNNING_FILE = ".running"

FINISHED, RUNNING, STOPPED = "finished", "running", "stopped"


@contextlib.contextmanager
def running(run_dir: Path) -> Iterator[None]:
    """Hold the run's `.running` lock for the duration of the block; remove the file afterwards.
    A run directory another process is training in is a UserError (e.g. resume= of a live run)."""
    run_dir.mkdir(parents=True, exist_ok=True)
    path = run_dir / RUNNING_FILE
    handle = path.open("a+")
    try:
        fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        handle.seek(0)
        owner = handle.read().strip() or "?"
        handle.close()
        raise UserError(
            f"{run_dir} is in use: process {owner} is training in it; wait for it or stop it"
        ) from None
    try:
        handle.truncate(0)
        handle.write(f"{os.getpid()}\n")
        handle.flush()
        yield
    finally:
        path.unlink(missing_ok=True)
        handle.close()  # releases the lock


def is_running(run_dir: Path) -> bool:
    """True while some process holds the run's lock."""
    path = run_dir / RUNNING_FILE
    try:
        handle = path.open("r")
    except FileNotFoundError:
        return False
    with handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_SH | fcntl.LOCK_NB)
        except BlockingIOError:
            return True
        return False


def status(run_dir: Path) -> str:
    """FINISHED (metrics.json is there), RUNNING (its process holds the lock), else STOPPED."""
    if (run_dir / METRICS_FILE).is_file():
        return FINISHED
    return RUNNING if is_running(run_dir) else STOPPED
