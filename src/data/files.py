"""Dataset files: downloads and archives, unpacked so that a crash or a damaged download never leaves a
half-written file (and .gz files decompressed in memory).

Every writer here puts its output in a temporary name beside the target and renames it into place
(`os.replace` is atomic on one filesystem; src/utils/files.py): a later run either finds the whole file
or none.
"""

from __future__ import annotations

import gzip
import os
import shutil
import tarfile
import tempfile
import zlib
from pathlib import Path

from src.utils.errors import DataError

# Errors that mean "this archive is damaged", as opposed to "the cache is not writable".
CORRUPT_ARCHIVE = (tarfile.TarError, EOFError, zlib.error, gzip.BadGzipFile)


def download_url(url: str, root: str, filename: str | None = None, md5: str | None = None) -> None:
    """torchvision's `download_url` (redirects, md5 check), imported only when something is downloaded."""
    # deferred: torchvision, only when something is downloaded
    from torchvision.datasets.utils import download_url as torchvision_download_url

    torchvision_download_url(url, root, filename=filename, md5=md5)


def download_atomically(url: str, target: Path, md5: str | None = None) -> None:
    """torchvision's `download_url` into a scratch directory beside `target`, renamed when complete.

    `download_url` writes straight into its destination, so an interrupted download would otherwise
    leave a truncated file that the next run finds and takes for the real one.
    """
    target.parent.mkdir(parents=True, exist_ok=True)
    scratch = Path(tempfile.mkdtemp(dir=target.parent, prefix=f".{target.name}."))
    try:
        download_url(url, str(scratch), filename=target.name, md5=md5)
        os.replace(scratch / target.name, target)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


def download_dir(data_dir: Path, cache_dir: Path) -> Path:
    """Where a dataset download goes: into `data_dir` (the default `./data`), so that it sits where the
    next run looks first and `make clean` (which empties the cache) keeps it; into `cache_dir` when
    `data_dir` cannot be written (a read-only shared copy)."""
    try:
        data_dir.mkdir(parents=True, exist_ok=True)
    except OSError:
        return cache_dir
    return data_dir if os.access(data_dir, os.W_OK | os.X_OK) else cache_dir


def extract_folder_atomically(archive: Path, folder: str, target: Path) -> None:
    """Unpack `<folder>/` of a tarball to `target`: into a scratch directory first, then one rename."""
    target.parent.mkdir(parents=True, exist_ok=True)
    scratch = Path(tempfile.mkdtemp(dir=target.parent, prefix=f".{target.name}."))
    try:
        with tarfile.open(archive, "r:gz") as tar:
            tar.extractall(scratch, filter="data")  # "data": no absolute paths, links out, devices
        if not (scratch / folder).is_dir():
            raise DataError(f"{archive} holds no {folder}/ folder; replace it with the official file")
        os.replace(scratch / folder, target)
    except CORRUPT_ARCHIVE as error:
        raise DataError(f"cannot extract {archive}: {error}; replace it with the official file") from error
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


def gunzip(source: Path) -> bytes:
    """The decompressed bytes of `source` (.gz); a damaged file is a DataError naming it."""
    try:
        return gzip.decompress(source.read_bytes())
    except (OSError, EOFError, zlib.error) as error:
        raise DataError(f"cannot decompress {source}: {error}; replace it with the official file") from error
