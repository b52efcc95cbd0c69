"""A run's directory: the names of its files, and every reading and writing of them. Torch-free.

    outputs/train/runs/<time>/                  (hydra.run.dir; in a multirun, <sweep dir>/<job number>)
    ├── checkpoints/epoch_NNN.ckpt, last.ckpt   Lightning's ModelCheckpoint (conf/callbacks/default.yaml)
    ├── tensorboard/                            the TensorBoard logger (conf/logger/tensorboard.yaml)
    ├── .hydra/{config,hydra,overrides}.yaml    Hydra: the composed config and the command line's overrides
    ├── config.yaml, metrics.json, eval_<split>.json   src.train (metrics.json last: finished), src.eval
    └── .running                                locked by the training process while it runs

Everything that reads a run reads it through `RunDir` (tests/test_rundir.py checks conf/ agrees with
the names here); a file that does not parse is a `RunFileError` naming it. A run is FINISHED, RUNNING
or STOPPED: how the `.running` lock tells them apart: docs/development.md.
"""

from __future__ import annotations

import contextlib
import json
import os
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml
from omegaconf import DictConfig, OmegaConf

from src.config.compose import register_resolvers
from src.utils.errors import ConfigError, UserError
from src.utils.files import atomic_open, write_json_atomically

FINISHED, RUNNING, STOPPED = "finished", "running", "stopped"
# What every config src.train saves holds, and what src.eval rebuilds the run from.
RUN_CONFIG_KEYS = ("data", "model", "module")

# The `.running` lock (docs/development.md): the training process holds an exclusive lock on the file for
# as long as it trains; the operating system drops it when the process ends however it ends. The lock is
# filelock's `lock_descriptor`, the primitive of its `FileLock` on a descriptor of ours: `flock` on POSIX,
# `LockFileEx` on byte 0 on Windows; both are released by the kernel when the holder dies, which is the
# whole point (a `SoftFileLock` would outlive a killed run). Neither platform has a portable shared lock,
# so a reader asks "is a run live here?" with a non-blocking *exclusive* attempt that it drops at once:
# it fails only while someone else holds the lock. Two such probes (or a probe and a starting run) can
# meet for the microseconds a probe holds it, so every attempt is retried over `_LOCK_PAUSES` (~0.2 s):
# a live run holds the lock for its whole run and fails them all, a probe never holds it that long.
_LOCK_PAUSES = (0.0, 0.01, 0.02, 0.05, 0.1)


def _try_lock(fd: int) -> bool:
    """Take the exclusive lock on `fd` without waiting for a holder; False while another one holds it."""
    from filelock import lock_descriptor  # deferred: filelock (~60 ms), only where a lock is taken

    for pause in _LOCK_PAUSES:
        time.sleep(pause)
        if lock_descriptor(fd, blocking=False):
            return True
    return False


def _unlock(fd: int) -> None:
    from filelock import unlock_descriptor  # deferred: filelock (~60 ms), only where a lock is taken

    unlock_descriptor(fd)  # Windows asks for it before the close; on POSIX the close would do


class RunFileError(ConfigError):
    """A file of a run directory (metrics.json, .hydra/, config.yaml) that is damaged or not a run's."""


def _reason(error: Exception) -> str:
    """A parser's error as a short clause: its kind and first line (YAML's: the problem and its line)."""
    mark, problem = getattr(error, "problem_mark", None), getattr(error, "problem", None)
    text = problem or next(iter(str(error).splitlines()), "")
    where = f" at line {mark.line + 1}" if mark is not None else ""
    return f"{type(error).__name__}: {text}{where}"


@dataclass(frozen=True)
class RunDir:
    path: Path

    # ------------------------------------------------------------------------------------- files
    @property
    def metrics_file(self) -> Path:
        return self.path / "metrics.json"

    @property
    def config_file(self) -> Path:
        return self.path / "config.yaml"

    @property
    def hydra_dir(self) -> Path:
        return self.path / ".hydra"

    @property
    def overrides_file(self) -> Path:
        return self.hydra_dir / "overrides.yaml"

    @property
    def checkpoints(self) -> Path:
        return self.path / "checkpoints"

    @property
    def last_checkpoint(self) -> Path:
        return self.checkpoints / "last.ckpt"

    @property
    def tensorboard(self) -> Path:
        return self.path / "tensorboard"

    def eval_file(self, split: str) -> Path:
        return self.path / f"eval_{split}.json"

    def is_run(self) -> bool:
        """A run that finished (metrics.json) or at least started (Hydra wrote .hydra/)."""
        return self.metrics_file.is_file() or self.hydra_dir.is_dir()

    # ------------------------------------------------------------------------------------ reading
    def read_metrics(self) -> dict[str, Any] | None:
        """metrics.json as src.train wrote it, or None when the run has not finished."""
        if not self.metrics_file.is_file():
            return None
        try:
            data = json.loads(self.metrics_file.read_text())
        except (OSError, UnicodeDecodeError, json.JSONDecodeError) as error:
            raise RunFileError(f"{self.metrics_file} is damaged ({_reason(error)})") from None
        if not isinstance(data, dict) or not isinstance(data.get("metrics"), dict):
            raise RunFileError(f'{self.metrics_file} is damaged: it holds no "metrics" object')
        wrong = [name for name, value in data["metrics"].items() if not isinstance(value, int | float)]
        if wrong:
            raise RunFileError(f"{self.metrics_file} is damaged: {', '.join(wrong)} are not numbers")
        return data

    def read_overrides(self) -> list[str]:
        """The overrides of the command line that started the run (`.hydra/overrides.yaml`; [] without)."""
        if not self.overrides_file.is_file():
            return []
        try:
            saved = yaml.safe_load(self.overrides_file.read_text()) or []
        except (OSError, UnicodeDecodeError, yaml.YAMLError) as error:
            raise RunFileError(f"{self.overrides_file} is damaged ({_reason(error)})") from None
        if not isinstance(saved, list) or not all(isinstance(item, str) for item in saved):
            raise RunFileError(
                f"{self.overrides_file} is not a list of overrides; it was not written by Hydra"
            )
        return saved

    def overrides(self, metrics: dict[str, Any] | None = None) -> list[str]:
        """The run's overrides: those metrics.json records (give it when already read), else Hydra's file."""
        metrics = self.read_metrics() if metrics is None else metrics
        return list((metrics or {}).get("overrides") or []) or self.read_overrides()

    def read_config(self, needs: Sequence[str] = ()) -> DictConfig:
        """The run's saved config: config.yaml (resolved), else .hydra/config.yaml (as composed); one that
        lacks a key of `needs` (e.g. RUN_CONFIG_KEYS, cut short) is damaged."""
        if not self.path.is_dir():
            raise UserError(f"{self.path} is not a directory; give the directory of a finished run")
        path = next((p for p in (self.config_file, self.hydra_dir / "config.yaml") if p.is_file()), None)
        if path is None:
            raise UserError(
                f"{self.path} is not a run directory: it has no config.yaml or .hydra/config.yaml"
            )
        register_resolvers()  # .hydra/config.yaml may name them
        try:
            cfg = OmegaConf.load(path)
        except (OSError, UnicodeDecodeError, yaml.YAMLError) as error:
            raise RunFileError(f"{path} is damaged ({_reason(error)})") from None
        if not isinstance(cfg, DictConfig):
            raise RunFileError(f"{path} is damaged: it holds a list, not a config")
        missing = [key for key in needs if key not in cfg]
        if missing:
            raise RunFileError(
                f"{path} is damaged: it lacks {', '.join(missing)}, which every run's config has"
            )
        return cfg

    def tested_checkpoint(self) -> Path:
        """The checkpoint the run's test used (metrics.json's tested_checkpoint, also looked up in
        checkpoints/ when the run was moved), else checkpoints/last.ckpt."""
        try:
            tested = (self.read_metrics() or {}).get("tested_checkpoint")
        except RunFileError as error:
            raise RunFileError(f"{error}; name the checkpoint to use with ckpt_path=<file>") from None
        candidates = [Path(tested), self.checkpoints / Path(tested).name] if tested else []
        for path in [*candidates, self.last_checkpoint]:
            if path.is_file():
                return path
        raise UserError(
            f"no checkpoint in {self.path}: "
            "neither metrics.json's tested_checkpoint nor checkpoints/last.ckpt"
        )

    def status(self) -> str:
        """FINISHED (metrics.json is there), RUNNING (its process holds the lock), else STOPPED."""
        if self.metrics_file.is_file():
            return FINISHED
        return RUNNING if self.is_running() else STOPPED

    def is_running(self) -> bool:
        """True while some process holds the run's lock (a non-blocking exclusive probe: `_try_lock`)."""
        try:
            handle = self._running_file.open("rb")
        except FileNotFoundError:
            return False
        with handle:
            if not _try_lock(handle.fileno()):
                return True
            _unlock(handle.fileno())
            return False

    # ------------------------------------------------------------------------------------ writing
    def write_config(self, cfg: DictConfig) -> None:
        with atomic_open(self.config_file, "w") as handle:
            handle.write(OmegaConf.to_yaml(cfg, resolve=True))

    def write_metrics(self, result: dict[str, Any]) -> None:
        """metrics.json, whole or not at all: its presence is what marks the run finished."""
        write_json_atomically(result, self.metrics_file)

    def write_eval(self, split: str, result: dict[str, Any]) -> Path:
        path = self.eval_file(split)
        with atomic_open(path, "w") as handle:
            handle.write(json.dumps(result, indent=2) + "\n")  # in the result's order: classes as numbered
        return path

    @property
    def _running_file(self) -> Path:
        return self.path / ".running"

    @contextlib.contextmanager
    def running(self) -> Iterator[None]:
        """Hold the run's `.running` lock for the duration of the block; remove the file afterwards.
        A run directory another process is training in is a UserError (e.g. resume= of a live run)."""
        self.path.mkdir(parents=True, exist_ok=True)
        while True:
            handle = self._running_file.open("a+")
            if not _try_lock(handle.fileno()):
                owner = _read_owner(handle)
                handle.close()
                raise UserError(
                    f"{self.path} is in use: process {owner} is training in it; wait for it or stop it"
                )
            if _still_there(handle, self._running_file):
                break
            handle.close()  # its holder removed it while we waited for it (POSIX): lock the new one
        try:
            handle.truncate(0)
            handle.write(f"\n{os.getpid()}\n")  # from byte 1: Windows bars other handles from byte 0
            handle.flush()
            yield
        finally:
            try:  # POSIX: removed while still locked, so it is never the file of a run started since
                self._running_file.unlink(missing_ok=True)
                removed = True
            except PermissionError:  # Windows removes no open file: after the close, then
                removed = False
            _unlock(handle.fileno())
            handle.close()  # releases the lock
            if not removed:
                with contextlib.suppress(OSError):  # open in a probe or the next run: it stays, unlocked
                    self._running_file.unlink(missing_ok=True)


def _still_there(handle, path: Path) -> bool:
    """Whether `path` is still the file `handle` holds open."""
    try:
        return os.path.samestat(os.fstat(handle.fileno()), os.stat(path))
    except FileNotFoundError:
        return False


def _read_owner(handle) -> str:
    """The PID the lock's holder wrote into `.running`, or "?" (not yet written, or unreadable)."""
    for start in (0, 1):  # Windows: byte 0 is locked against reads through any other handle
        try:
            handle.seek(start)
            return handle.read().strip() or "?"
        except OSError:
            continue
    return "?"


def override_key(override: str) -> str:
    """The key an override sets: `+model.width=2` -> `model.width`."""
    return override.split("=", 1)[0].lstrip("+~")


def find_runs(root: Path) -> list[RunDir]:
    """Every run at or below `root` (a directory holding metrics.json or .hydra/), in path order."""
    found = {p.parent for p in root.rglob("metrics.json") if p.is_file()}
    found |= {p.parent for p in root.rglob(".hydra") if p.is_dir()}
    return [RunDir(path) for path in sorted(found)]
