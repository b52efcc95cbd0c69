"""`python -m tests.fsize_limit <bytes> [--at-metrics] <module> <args...>`: `python -m <module> <args...>`
with no file allowed to grow past <bytes>, as if the disk were full.

The limit is the kernel's RLIMIT_FSIZE (`ulimit -f`): a write past it fails with EFBIG, as one on a full
disk fails with ENOSPC, and the file it was writing is cut there. By default the kernel also sends
SIGXFSZ, which kills the process; ignored, the write raises OSError instead, which is what the code
under test must handle. With `--at-metrics` the limit holds only while src.train writes metrics.json
(the disk is full just then, after the last checkpoint): metrics.json is smaller than files written
before it, so no limit from the start could spare those and stop it; and lifted afterwards, it lets the
error line reach the test's output file, which is larger than such a limit.

Run through tests/conftest.py's `run_cli`, the limit applies to that one forked child only.
"""

from __future__ import annotations

import resource
import runpy
import signal
import sys


def limit_file_size(size: int) -> None:
    signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
    _, hard = resource.getrlimit(resource.RLIMIT_FSIZE)
    resource.setrlimit(resource.RLIMIT_FSIZE, (size, hard))


def limit_at_metrics(size: int) -> None:
    """Hold the limit while RunDir.write_metrics runs, and only then."""
    from src.runs.rundir import RunDir

    write_metrics = RunDir.write_metrics
    _, hard = resource.getrlimit(resource.RLIMIT_FSIZE)

    def write_metrics_on_a_full_disk(self, result):
        limit_file_size(size)
        try:
            return write_metrics(self, result)
        finally:
            resource.setrlimit(resource.RLIMIT_FSIZE, (hard, hard))

    RunDir.write_metrics = write_metrics_on_a_full_disk


def main(argv: list[str]) -> None:
    size, *rest = argv
    if rest[0] == "--at-metrics":
        limit_at_metrics(int(size))
        rest = rest[1:]
    else:
        limit_file_size(int(size))
    module, *args = rest
    sys.argv = [module, *args]
    runpy.run_module(module, run_name="__main__", alter_sys=True)


if __name__ == "__main__":
    main(sys.argv[1:])
