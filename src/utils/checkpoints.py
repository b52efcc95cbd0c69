"""Is this checkpoint whole, a Lightning checkpoint, and this model's? Answered without torch.

Every checkpoint the project loads goes through `read_checkpoint` first (`resume=`, `ckpt_path=`, the
test after fit, `src.eval`): torch.load does not check the CRC-32s its own zip archive carries, so a
damaged file would end in a traceback or load a flipped weight without a word. The checks: the zip's
directory is there (not truncated), every member matches its CRC-32, `data.pkl` unpickles with every
class replaced by an inert stand-in (nothing imported or run; a tensor becomes its shape) and names no
global outside what `torch.load(weights_only=True)` allows (a file that would run code when loaded is
refused in one line naming the first such global, not left to torch's traceback), it holds what
Lightning writes (and `optimizer_states` to continue training), and (`check_checkpoint`) its weights
have the model's names and shapes. Details: docs/development.md, docs/troubleshooting.md.
"""

from __future__ import annotations

import io
import pickle
import sys
import zipfile
import zlib
from _compat_pickle import IMPORT_MAPPING, NAME_MAPPING
from collections import OrderedDict
from collections.abc import Mapping
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from src.utils.errors import UserError

Shapes = dict[str, tuple[int, ...]]
# ckpt_path values Lightning resolves itself (trainer.fit(ckpt_path="last") etc.): not file names.
LIGHTNING_KEYWORDS = ("last", "best", "hpc", "registry")


class CheckpointError(UserError):
    """A checkpoint that cannot be used: missing, damaged, not a checkpoint, or another model's."""


@dataclass(frozen=True)
class Checkpoint:
    """What a whole checkpoint holds, as far as choosing and checking it needs."""

    path: Path
    epoch: int  # Lightning's epoch index when it was saved: 0 after the first epoch
    global_step: int
    shapes: Shapes  # state_dict: name -> shape

    def describe(self) -> str:
        """e.g. `epoch_001.ckpt, saved after 2 epochs (global step 8)`."""
        epochs = self.epoch + 1
        return (
            f"{self.path}, saved after {epochs} epoch{'s' * (epochs != 1)} (global step {self.global_step})"
        )


# ------------------------------------------------------------------------------- the pickle
class _Inert:
    """Whatever class or function the pickle names (storage types, dtypes, anything from elsewhere):
    built from any arguments, given any state, and doing nothing with them."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        pass

    def __setstate__(self, state: Any) -> None:
        pass


def _shape(storage: Any, offset: Any, size: Any, *rest: Any) -> tuple[int, ...]:
    """torch._utils._rebuild_tensor_v2/_v3 take (storage, offset, size, stride, ...): keep the size."""
    return tuple(int(n) for n in size)


# The globals `torch.load(weights_only=True)` unpickles (torch/_weights_only_unpickler.py:
# `_get_allowed_globals`), as names, so that they are known without importing torch; tests/test_damage.py
# checks that this is exactly torch's list for the installed version.
_DENSE, _SPARSE = ("torch", "torch.cuda"), ("torch.sparse", "torch.cuda.sparse")  # tensor types' modules
_TENSOR_TYPES = ("Byte", "Char", "Short", "Int", "Long", "Half", "Float", "Double", "BFloat16")
_STORAGE_TYPES = (*_TENSOR_TYPES, "Bool", "ComplexFloat", "ComplexDouble")
_DTYPES = (
    "bool", "uint8", "int8", "int16", "int32", "int64", "float16", "float32", "float64", "bfloat16",
    "complex32", "complex64", "complex128", "qint8", "quint8", "qint32", "quint4x2", "quint2x4",
    "float8_e4m3fn", "float8_e4m3fnuz", "float8_e5m2", "float8_e5m2fnuz", "float8_e8m0fnu",
    "float4_e2m1fn_x2", "bcomplex32", "bits1x8", "bits2x4", "bits4x2", "bits8", "bits16", "uint16",
    "uint32", "uint64", *(f"uint{bits}" for bits in range(1, 8)), *(f"int{bits}" for bits in range(1, 8)),
)  # fmt: skip
_REBUILDS = (
    "parameter", "parameter_with_state", "qtensor", "tensor", "tensor_v2", "tensor_v3", "sparse_tensor",
    "meta_tensor_no_storage", "nested_tensor", "wrapper_subclass", "device_tensor_from_numpy",
    "device_tensor_from_cpu_tensor",
)  # fmt: skip
TORCH_SAFE_GLOBALS = frozenset(
    {
        "collections.OrderedDict",
        "collections.Counter",
        "torch.nn.parameter.Parameter",
        "torch.serialization._get_layout",
        "torch.Size",
        "torch.Tensor",
        "torch.device",
        "_codecs.encode",  # bytes
        "builtins.bytearray",
        "builtins.set",
        "builtins.complex",
        "torch._tensor._rebuild_from_type_v2",
        "torch.storage.TypedStorage",
        "torch.storage.UntypedStorage",
        *(f"torch.{dtype}" for dtype in _DTYPES),
        *(f"torch.{scheme}" for scheme in ("per_tensor_affine", "per_tensor_symmetric")),
        *(f"torch.{scheme}" for scheme in ("per_channel_affine", "per_channel_symmetric")),
        "torch.per_channel_affine_float_qparams",
        *(f"torch._utils._rebuild_{kind}" for kind in _REBUILDS),
        *(f"{where}.{kind}Tensor" for where in _DENSE for kind in (*_TENSOR_TYPES, "Bool")),
        *(f"{where}.{kind}Tensor" for where in _SPARSE for kind in _TENSOR_TYPES),
        *(f"{where}.{kind}Storage" for where in _DENSE for kind in _STORAGE_TYPES),
        *(f"torch.{kind}Storage" for kind in ("QUInt8", "QInt8", "QInt32", "QUInt4x2", "QUInt2x4")),
    }
)


def _user_safe_globals() -> set[str]:
    """The globals allowed with `torch.serialization.add_safe_globals` in this process, named as torch
    names them; none when torch is not imported (nothing can have been added)."""
    torch = sys.modules.get("torch")
    if torch is None or not hasattr(torch, "serialization"):
        return set()
    return {
        entry[1] if isinstance(entry, tuple) else f"{entry.__module__}.{entry.__qualname__}"
        for entry in torch.serialization.get_safe_globals()
    }


class _CodeGlobal(Exception):
    """The pickle names a global that `torch.load(weights_only=True)` refuses: the name, `posix.system`."""


class _ShapeUnpickler(pickle.Unpickler):
    """Unpickles a checkpoint's data.pkl into plain dicts, lists, numbers and tensor shapes; a global
    outside `TORCH_SAFE_GLOBALS` (code to run, a class to build) ends it in `_CodeGlobal`."""

    def find_class(self, module: str, name: str) -> Any:
        # Python 2 names, as torch.save's protocol 2 writes some (`__builtin__ set`) and torch maps them
        module, name = NAME_MAPPING.get((module, name), (IMPORT_MAPPING.get(module, module), name))
        full_name = f"{module}.{name}"
        if full_name not in TORCH_SAFE_GLOBALS and full_name not in _user_safe_globals():
            raise _CodeGlobal(full_name)
        if full_name == "collections.OrderedDict":
            return OrderedDict  # state_dicts are OrderedDicts with a `_metadata` attribute
        if module == "torch._utils" and name.startswith("_rebuild_tensor"):
            return _shape
        if module == "torch._utils" and name == "_rebuild_parameter":
            return lambda data, *rest: data
        return _Inert

    def persistent_load(self, pid: Any) -> None:
        return None  # a storage: its bytes are in data/<n>, which the CRC check has read


def _payload(archive: zipfile.ZipFile) -> bytes:
    """The bytes of `<name>/data.pkl`, after checking every member's CRC-32."""
    damaged = archive.testzip()
    if damaged is not None:
        raise CheckpointError(f"is damaged: {damaged} fails its CRC-32 check")
    pickles = [name for name in archive.namelist() if name.endswith("/data.pkl") or name == "data.pkl"]
    if not pickles:
        raise CheckpointError("is a zip archive but not a torch.save file (it holds no data.pkl)")
    return archive.read(pickles[0])


def _unpickle(path: Path) -> Any:
    try:
        with zipfile.ZipFile(path) as archive:
            payload = _payload(archive)
    except zipfile.BadZipFile:
        raise CheckpointError("is truncated or not a checkpoint (no complete zip archive)") from None
    except (OSError, EOFError, zlib.error) as error:
        raise CheckpointError(f"cannot be read ({error})") from None
    try:
        return _ShapeUnpickler(io.BytesIO(payload)).load()
    except _CodeGlobal as refused:
        raise CheckpointError(
            f"would run code when loaded: its data.pkl names {refused}, which torch.load(weights_only=True) "
            "refuses; the file is not used"
        ) from None
    except Exception as error:  # any malformed pickle: its reason, on one line
        raise CheckpointError(
            f"is damaged: its data.pkl does not unpickle ({type(error).__name__})"
        ) from None


def read_checkpoint(path: str | Path, resume: bool = False) -> Checkpoint:
    """The checkpoint at `path` if it is whole and a Lightning checkpoint (with `resume`: one training
    can continue from, with its optimizer state); else CheckpointError, one line naming the file and why."""
    path = Path(path)
    try:
        checkpoint, continuable = _inspect(path)
        if resume and not continuable:
            raise CheckpointError(
                "holds only weights, no optimizer state: it can be tested or evaluated (src.eval), "
                "not continued"
            )
    except CheckpointError as error:
        raise CheckpointError(f"checkpoint {path} {error}") from None
    return replace(checkpoint, path=path)


# What `_inspect` found in each whole file, by (path, size, modification time): one run checks the same
# checkpoint for `resume=`, in the config check and before Lightning loads it, and each check reads
# every byte of it (hundreds of MB for AlexNet with its optimizer state). A rewritten file is read again.
_INSPECTED: dict[tuple[str, int, int], tuple[Checkpoint, bool]] = {}


def _inspect(path: Path) -> tuple[Checkpoint, bool]:
    """The checkpoint at `path` if it is whole and a Lightning checkpoint, and whether it holds optimizer
    state; else CheckpointError (the reason only)."""
    if not path.is_file():
        raise CheckpointError("does not exist" if not path.exists() else "is not a file")
    stat = path.stat()
    key = (str(path.resolve()), stat.st_size, stat.st_mtime_ns)
    if key not in _INSPECTED:
        state = _unpickle(path)
        if not isinstance(state, dict) or not isinstance(state.get("state_dict"), dict):
            raise CheckpointError("is not a Lightning checkpoint (it holds no state_dict)")
        epoch, step = state.get("epoch"), state.get("global_step")
        if not isinstance(epoch, int) or not isinstance(step, int):
            raise CheckpointError("is not a Lightning checkpoint (it records no epoch and global_step)")
        shapes = {name: value for name, value in state["state_dict"].items() if isinstance(value, tuple)}
        _INSPECTED[key] = (Checkpoint(path, epoch, step, shapes), "optimizer_states" in state)
    return _INSPECTED[key]


# ------------------------------------------------------------------------------ the model's
def state_shapes(module: Any) -> Shapes:
    """A torch module's state_dict as name -> shape (what `check_checkpoint` compares with)."""
    return {name: tuple(tensor.shape) for name, tensor in module.state_dict().items()}


def _examples(names: list[str]) -> str:
    return ", ".join(names[:2]) + (f" and {len(names) - 2} more" if len(names) > 2 else "")


def mismatch(found: Shapes, expected: Mapping[str, tuple[int, ...]]) -> str | None:
    """Why weights named and shaped `found` do not fit a model that expects `expected`, or None."""
    missing = sorted(set(expected) - set(found))
    unexpected = sorted(set(found) - set(expected))
    reshaped = [
        f"{name} {'x'.join(map(str, found[name]))} (the model's: {'x'.join(map(str, expected[name]))})"
        for name in expected
        if name in found and found[name] != expected[name]
    ]
    parts = [f"lacks {_examples(missing)}"] if missing else []
    parts += [f"has {_examples(unexpected)}, which the model has not"] if unexpected else []
    parts += [f"holds {_examples(reshaped)}"] if reshaped else []
    return ", ".join(parts) or None


def check_checkpoint(
    path: str | Path, expected: Mapping[str, tuple[int, ...]], resume: bool = False
) -> Checkpoint:
    """`read_checkpoint`, and its weights fit the model (`expected`: `state_shapes(module)`); else
    CheckpointError naming the file and the reason."""
    checkpoint = read_checkpoint(path, resume)
    problem = mismatch(checkpoint.shapes, expected)
    if problem is not None:
        raise CheckpointError(
            f"checkpoint {path} was saved from another model: it {problem}; "
            "give a checkpoint of this model and data (the same model=, padding=, data=)"
        )
    return checkpoint
