"""Decoded datasets in the cache: built once from the source files, checked whenever they are read.

Decoding is the slow part of loading a dataset (JPEGs, pickles, .gz files), so every dataset does it
once and saves the result, plain uint8/int64 tensors, here. Each entry records its `layout` (the cache
format's version), its `source` (names, sizes and modification times of the files it was built from)
and a `crc32` of every tensor's bytes. `load_or_build` returns the tensors when all three match;
otherwise it says in one line why, rebuilds the entry and the run goes on. Writes are atomic
(src/utils/files.py); a cache without room is said in one line too. More: docs/data.md.
"""

from __future__ import annotations

import logging
import zlib
from collections.abc import Callable, Iterable
from pathlib import Path

import torch
from torch import Tensor

from src.utils.files import NoSpaceError, atomic_save

LAYOUT = 1
log = logging.getLogger(__name__)


def fingerprint(paths: Iterable[Path]) -> str:
    """What identifies the source files: each one's name, size and modification time."""
    parts = []
    for path in paths:
        stat = path.stat()
        parts.append(f"{path.name}:{stat.st_size}:{stat.st_mtime_ns}")
    return ";".join(parts)


def checksum(tensor: Tensor) -> int:
    """CRC-32 of a CPU tensor's bytes (about 1 GB/s)."""
    return zlib.crc32(tensor.contiguous().view(torch.uint8).numpy().data)


def problem_with(state: object, source: str) -> str | None:
    """Why a loaded cache entry cannot be used, or None when it is whole and current."""
    if not isinstance(state, dict) or state.get("layout") != LAYOUT:
        return "was written by an older version of this code"
    if state.get("source") != source:
        return "was built from other source files"
    tensors, sums = state.get("tensors"), state.get("crc32")
    if not isinstance(tensors, dict) or not isinstance(sums, dict) or set(tensors) != set(sums):
        return "is incomplete"
    damaged = [name for name, tensor in tensors.items() if checksum(tensor) != sums[name]]
    return f"is damaged ({', '.join(damaged)} fail their checksum)" if damaged else None


def load_or_build(
    path: Path, source: str, build: Callable[[], dict[str, Tensor]], what: str
) -> dict[str, Tensor]:
    """The tensors cached at `path` if they are whole and were built from `source`; else `build()`
    them, save them with their checksums, and return them. `what` names the dataset in the message."""
    if path.is_file():
        try:
            # mmap: pages are read as the tensors are used (the checksum reads them once, into the page
            # cache the training then uses), with no copy through Python.
            state = torch.load(path, weights_only=True, mmap=True)
            problem = problem_with(state, source)
        except Exception as error:  # truncated zip, garbage, a pickle from elsewhere: all unreadable
            problem = f"cannot be read ({type(error).__name__}: {str(error).splitlines()[0][:120]})"
        if problem is None:
            return state["tensors"]
        log.warning("%s: the cached copy %s %s; rebuilding it from the source", what, path, problem)
    tensors = build()
    sums = {name: checksum(tensor) for name, tensor in tensors.items()}
    try:
        atomic_save({"layout": LAYOUT, "source": source, "crc32": sums, "tensors": tensors}, path)
    except NoSpaceError as error:  # the data is in memory: this run goes on, the next decodes again
        log.warning("%s: not cached, %s", what, error)
    return tensors
