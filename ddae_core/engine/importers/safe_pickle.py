"""A restricted unpickler for NVlabs network pickles: tensors and plain values out, nothing run.

Those pickles (`torch_utils.persistence`) store each network class's module source and execute it when
loaded. Here every global the pickle names is looked up in an allow-list of stand-ins: a persistent
object becomes a `Record` of its class name and state (its stored source is never read), a tensor is
rebuilt from the bytes of its storage by this module's own parser of torch's legacy storage format,
and anything else ends the read with one sentence naming what was asked for.
"""

from __future__ import annotations

import io
import pickle
import struct
from collections import OrderedDict
from dataclasses import dataclass, field
from typing import Any

import torch

STORAGE_DTYPES = {"FloatStorage": torch.float32, "HalfStorage": torch.float16, "BFloat16Storage": torch.bfloat16,
                  "DoubleStorage": torch.float64, "LongStorage": torch.int64, "IntStorage": torch.int32,
                  "ShortStorage": torch.int16, "CharStorage": torch.int8, "ByteStorage": torch.uint8,
                  "BoolStorage": torch.bool}
LEGACY_MAGIC = 0x1950A86A20F9469CFC6C
LEGACY_PROTOCOL = 1001


class RefusedPickle(Exception):
    """The pickle asks for something outside the allow-list, or is damaged; str() is the reason."""


@dataclass
class Record:
    """A persistent object (`_reconstruct_persistent_obj`) or a torch container: its class name and state."""

    class_name: str
    state: dict = field(default_factory=dict)

    def __setstate__(self, state: Any) -> None:    # BUILD of a stand-in container
        if not isinstance(state, dict):
            raise RefusedPickle(f"a {self.class_name} carries a {type(state).__name__} as its state")
        self.state = state


def _persistent_record(meta: Any) -> Record:
    if not (isinstance(meta, dict) and meta.get("type") == "class" and isinstance(meta.get("class_name"), str)
            and isinstance(meta.get("state"), dict)):
        raise RefusedPickle("a persistence record is not a class record with a name and a state")
    return Record(meta["class_name"], meta["state"])


def _module_record(name: str) -> type:
    """The stand-in class NEWOBJ instantiates for a torch container (ModuleDict, ...): an empty Record of it."""

    class Container(Record):
        def __new__(cls, *args: Any) -> Container:
            if args:
                raise RefusedPickle(f"a torch {name} is built with arguments")
            record = object.__new__(cls)
            record.class_name, record.state = name, {}
            return record

        def __init__(self, *args: Any) -> None:
            pass

    Container.__name__ = Container.__qualname__ = name
    return Container


class _PlainDict(dict):
    """dnnlib's EasyDict, as the plain dict it is."""


@dataclass
class _NumpyDtype:
    code: str
    byteorder: str = "<"

    def __setstate__(self, state: Any) -> None:
        if isinstance(state, tuple) and len(state) > 1 and state[1] in "<>|=":
            self.byteorder = state[1]


NUMPY_SCALARS = {"f8": "d", "f4": "f", "i8": "q", "i4": "i", "b1": "?"}


def _numpy_dtype(code: Any, *args: Any) -> _NumpyDtype:
    if code not in NUMPY_SCALARS:
        raise RefusedPickle(f"a numpy value of dtype {code!r}")
    return _NumpyDtype(code)


def _numpy_scalar(dtype: Any, data: Any = None) -> float | int | bool:
    if not isinstance(dtype, _NumpyDtype) or not isinstance(data, bytes):
        raise RefusedPickle("a numpy scalar without its bytes")
    order = ">" if dtype.byteorder == ">" else "<"
    try:
        return struct.unpack(order + NUMPY_SCALARS[dtype.code], data)[0]
    except struct.error:
        raise RefusedPickle("a numpy scalar of the wrong size") from None


def _rebuild_tensor(storage: Any, offset: Any, size: Any, stride: Any, requires_grad: Any = False,
                    hooks: Any = None, metadata: Any = None) -> torch.Tensor:
    if not isinstance(storage, torch.Tensor) or not _ints(size) or not _ints(stride) or len(size) != len(stride) \
            or not _ints([offset]) or offset < 0 or any(n < 0 for n in (*size, *stride)):
        raise RefusedPickle("a tensor record is malformed")
    last = offset + sum((n - 1) * s for n, s in zip(size, stride)) if all(size) else offset - 1
    count = 1
    for n in size:
        count *= n
    if last >= storage.numel() or count > storage.numel():
        raise RefusedPickle(f"a tensor of shape {list(size)} reaches past its storage of {storage.numel()} values")
    return storage.as_strided(tuple(size), tuple(stride), offset)


def _ints(values: Any) -> bool:
    return isinstance(values, (tuple, list)) and all(isinstance(v, int) and not isinstance(v, bool) for v in values)


def _rebuild_parameter(data: Any, requires_grad: Any = False, hooks: Any = None, *state: Any) -> torch.Tensor:
    if not isinstance(data, torch.Tensor):
        raise RefusedPickle("a parameter record holds no tensor")
    return data


class _Unpickler(pickle.Unpickler):
    allowed: dict[tuple[str, str], Any] = {}

    def find_class(self, module: str, name: str) -> Any:
        target = self.allowed.get((module, name))
        if target is None:
            raise RefusedPickle(f"it asks for {module}.{name}, which is not a tensor, a network record or a plain "
                                "value, so it was not loaded")
        return target

    def persistent_load(self, pid: Any) -> Any:
        raise RefusedPickle("it holds a persistent reference, which network pickles do not")


class _StorageUnpickler(_Unpickler):
    """Reads one legacy torch.save pickle, whose only object is a storage named by a persistent id."""

    allowed = {("torch", name): name for name in STORAGE_DTYPES}

    def __init__(self, file: io.BytesIO):
        super().__init__(file)
        self.wanted: dict[str, tuple[torch.dtype, int]] = {}

    def persistent_load(self, pid: Any) -> Any:
        # ('storage', storage type, key, location, numel, view metadata); views are not written by pickle.
        if not (isinstance(pid, tuple) and len(pid) == 6 and pid[0] == "storage" and pid[1] in STORAGE_DTYPES
                and isinstance(pid[2], str) and isinstance(pid[4], int) and pid[4] >= 0 and pid[5] is None):
            raise RefusedPickle("a tensor's storage record is malformed")
        self.wanted[pid[2]] = (STORAGE_DTYPES[pid[1]], pid[4])
        return pid[2]


class _PlainUnpickler(_Unpickler):
    allowed = {}


def storage_from_bytes(data: Any) -> torch.Tensor:
    """`torch.storage._load_from_bytes`: the legacy torch.save of one storage -> a flat tensor of its values."""
    if not isinstance(data, bytes):
        raise RefusedPickle("a tensor's storage is not bytes")
    f = io.BytesIO(data)
    try:
        magic, protocol, info = (_PlainUnpickler(f).load() for _ in range(3))
        if magic != LEGACY_MAGIC or protocol != LEGACY_PROTOCOL or not isinstance(info, dict) \
                or not info.get("little_endian", False):
            raise RefusedPickle("a tensor's storage is not in torch's little-endian legacy format")
        reader = _StorageUnpickler(f)
        key = reader.load()
        keys = _PlainUnpickler(f).load()
    except (pickle.UnpicklingError, EOFError, ValueError, TypeError, IndexError, KeyError) as exc:
        raise RefusedPickle(f"a tensor's storage is damaged ({exc.__class__.__name__})") from None
    if not (isinstance(key, str) and keys == [key] and key in reader.wanted):
        raise RefusedPickle("a tensor's storage does not hold exactly one storage")
    dtype, numel = reader.wanted[key]
    count = int.from_bytes(f.read(8), "little")
    raw = f.read(numel * dtype.itemsize)
    if count != numel or len(raw) != numel * dtype.itemsize:
        raise RefusedPickle(f"a tensor's storage claims {numel} values but holds {len(raw) // dtype.itemsize}")
    return torch.frombuffer(bytearray(raw), dtype=dtype) if raw else torch.empty(0, dtype=dtype)


class NetworkUnpickler(_Unpickler):
    """The allow-list for NVlabs persistence pickles (EDM, StyleGAN): see the module docstring."""

    allowed = {
        ("torch_utils.persistence", "_reconstruct_persistent_obj"): _persistent_record,
        ("torch._utils", "_rebuild_tensor_v2"): _rebuild_tensor,
        ("torch._utils", "_rebuild_parameter"): _rebuild_parameter,
        ("torch._utils", "_rebuild_parameter_with_state"): _rebuild_parameter,
        ("torch.storage", "_load_from_bytes"): storage_from_bytes,
        ("collections", "OrderedDict"): OrderedDict,
        ("dnnlib.util", "EasyDict"): _PlainDict,
        ("builtins", "set"): set,
        ("builtins", "frozenset"): frozenset,
        ("numpy", "dtype"): _numpy_dtype,
        ("numpy.core.multiarray", "scalar"): _numpy_scalar,
        ("numpy._core.multiarray", "scalar"): _numpy_scalar,
        **{("torch.nn.modules.container", name): _module_record(name)
           for name in ("ModuleDict", "ModuleList", "Sequential")},
    }


def load(file: io.BufferedIOBase) -> Any:
    """The pickle's contents with stand-ins for every allowed global; RefusedPickle for anything else."""
    try:
        return NetworkUnpickler(file).load()
    except RefusedPickle:
        raise
    except RecursionError:
        raise RefusedPickle("it nests too deeply") from None
    except (pickle.UnpicklingError, EOFError, ValueError, TypeError, IndexError, KeyError, AttributeError,
            struct.error, UnicodeDecodeError, MemoryError, OverflowError) as exc:
        raise RefusedPickle(f"it is truncated or damaged ({exc.__class__.__name__})") from None
