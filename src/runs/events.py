"""Whether a run's TensorBoard event files are whole, without TensorBoard. Stdlib only.

An event file is a sequence of TFRecords: an 8-byte length, the masked CRC-32C of those 8 bytes, the
record (a serialized Event), its masked CRC-32C. TensorBoard's reader (EventAccumulator, through
`tensorboard.backend.event_processing.event_file_loader`) stops at the first record that is cut short or
fails a CRC and says so only at DEBUG level: a truncated file reads as its whole records before the cut
with no sign, an empty one (0 bytes) as no events at all. So a reader of event files (src.report,
src.sweep, scripts/screenshots.py, scripts/study_feature_maps.py) checks them here first and names a
damaged one. "Damaged" is any such file, even when records before the damage were read: what TensorBoard
shows of it ends there (src.report keeps the run, whose metrics.json is whole, and says so).

The check walks every record's framing: each length's CRC, and that the file ends exactly where its last
record does (truncation, the usual damage: a killed writer, a full disk, a copy cut short). A record up to
`CHECKED_BYTES` (scalars, text, hyperparameters) has its own CRC checked too; a larger one (an image) only
its length, since CRC-32C in Python is ~3 MB/s: a flipped byte inside an image goes unnoticed here, while
TensorBoard stops reading at it.
"""

from __future__ import annotations

import functools
import struct
from pathlib import Path

EVENT_FILES = "events.out.tfevents.*"
CHECKED_BYTES = 64 * 1024
_HEADER = 12  # uint64 length + uint32 masked CRC of it
_FOOTER = 4  # uint32 masked CRC of the record


@functools.cache
def _table() -> tuple[int, ...]:
    table = []
    for byte in range(256):
        crc = byte
        for _ in range(8):
            crc = (crc >> 1) ^ 0x82F63B78 if crc & 1 else crc >> 1  # CRC-32C (Castagnoli), reflected
        table.append(crc)
    return tuple(table)


def masked_crc32c(data: bytes) -> int:
    """TFRecord's checksum: CRC-32C, rotated right by 15 bits plus a constant."""
    table, crc = _table(), 0xFFFFFFFF
    for byte in data:
        crc = table[(crc ^ byte) & 0xFF] ^ (crc >> 8)
    crc ^= 0xFFFFFFFF
    return (((crc >> 15) | (crc << 17)) + 0xA282EAD8) & 0xFFFFFFFF


def event_file_problem(path: Path) -> str | None:
    """Why the event file `path` is damaged, as one clause naming it; None when it is whole."""
    try:
        size = path.stat().st_size
        if size == 0:
            return f"{path} is empty (0 bytes): its writer stopped before writing a record"
        with path.open("rb") as handle:
            return _walk(path, handle, size)
    except OSError as error:
        return f"{path} cannot be read ({error.strerror or error})"


def _walk(path: Path, handle, size: int) -> str | None:
    offset = records = 0
    while offset < size:
        read_before = (
            f"TensorBoard reads only the {records} records before it"
            if records
            else "TensorBoard reads none of it"
        )
        header = handle.read(_HEADER)
        if len(header) < _HEADER:
            return f"{path} is truncated at byte {size}: a record's length is cut short; {read_before}"
        (length,), (crc,) = struct.unpack("<Q", header[:8]), struct.unpack("<I", header[8:])
        if masked_crc32c(header[:8]) != crc:
            return f"{path} is damaged at byte {offset}: a record's length fails its CRC; {read_before}"
        end = offset + _HEADER + length + _FOOTER
        if end > size:
            return (
                f"{path} is truncated at byte {size}: its record at byte {offset} needs {end - offset} "
                f"bytes; {read_before}"
            )
        if length <= CHECKED_BYTES:
            data, (crc,) = handle.read(length), struct.unpack("<I", handle.read(_FOOTER))
            if masked_crc32c(data) != crc:
                return f"{path} is damaged at byte {offset}: a record fails its CRC; {read_before}"
        else:
            handle.seek(end)
        offset, records = end, records + 1
    return None


def event_file_problems(log_dir: Path) -> list[str]:
    """One clause per damaged event file directly in `log_dir` (where TensorBoard's logger writes)."""
    return [p for p in map(event_file_problem, sorted(log_dir.glob(EVENT_FILES))) if p]
