"""Reading `torch.save` files with numpy only (no PyTorch install).

A `torch.save` file (PyTorch >= 1.6) is a zip archive: `<name>/data.pkl` pickles the saved
object and names each tensor's storage by a key whose raw little-endian bytes sit in
`<name>/data/<key>`. `load_torch_file` unpickles with an allow-list, as
`torch.load(weights_only=True)` does (nothing outside it can run), and rebuilds every tensor
as a numpy array from its storage, offset, shape and strides. The allow-list also admits
`argparse.Namespace`, which official training scripts save beside the weights (DiT's
`train.py` stores its `args`).
"""

import argparse
import collections
import pickle
import zipfile

import ml_dtypes
import numpy as np

STORAGE_DTYPES = {
    "DoubleStorage": np.float64,
    "FloatStorage": np.float32,
    "HalfStorage": np.float16,
    "BFloat16Storage": ml_dtypes.bfloat16,
    "LongStorage": np.int64,
    "IntStorage": np.int32,
    "ShortStorage": np.int16,
    "CharStorage": np.int8,
    "ByteStorage": np.uint8,
    "BoolStorage": np.bool_,
    "ComplexFloatStorage": np.complex64,
    "ComplexDoubleStorage": np.complex128,
}


class _StorageType:
    def __init__(self, dtype):
        self.dtype = np.dtype(dtype)


def _rebuild_tensor(storage, offset, shape, strides, *_):
    """A tensor view of `storage` (a 1-D array), copied out: [*shape]."""
    itemsize = storage.dtype.itemsize
    view = np.lib.stride_tricks.as_strided(
        storage[offset:], shape=tuple(shape), strides=[s * itemsize for s in strides],
        writeable=False,
    )  # fmt: skip
    return np.array(view)


def _rebuild_parameter(data, *_):
    return data


_ALLOWED = {
    ("collections", "OrderedDict"): collections.OrderedDict,
    ("argparse", "Namespace"): argparse.Namespace,
    ("torch._utils", "_rebuild_tensor_v2"): _rebuild_tensor,
    ("torch._utils", "_rebuild_parameter"): _rebuild_parameter,
    ("torch._utils", "_rebuild_parameter_with_state"): _rebuild_parameter,
    **{("torch", name): _StorageType(dtype) for name, dtype in STORAGE_DTYPES.items()},
}


class _Unpickler(pickle.Unpickler):
    def __init__(self, file, archive: zipfile.ZipFile, prefix: str, path: str):
        super().__init__(file)
        self._archive, self._prefix, self._path = archive, prefix, path
        self._storages: dict[str, np.ndarray] = {}

    def find_class(self, module, name):
        if (module, name) not in _ALLOWED:
            raise pickle.UnpicklingError(
                f"{self._path}: {module}.{name} is not allowed in a weights file (only "
                "tensors, dicts, lists, numbers, strings and argparse.Namespace are read)"
            )
        return _ALLOWED[module, name]

    def persistent_load(self, pid):
        kind, storage_type, key, _location, numel = pid
        if kind != "storage" or not isinstance(storage_type, _StorageType):
            raise pickle.UnpicklingError(f"{self._path}: unknown persistent object {pid!r}")
        if key not in self._storages:
            raw = self._archive.read(f"{self._prefix}data/{key}")
            self._storages[key] = np.frombuffer(raw, storage_type.dtype, count=numel)
        return self._storages[key]


def load_torch_file(path: str):
    """The object `torch.save` wrote to `path`, every tensor as a numpy array."""
    if not zipfile.is_zipfile(path):
        raise ValueError(
            f"{path} is not a zip-format torch.save file (PyTorch >= 1.6 writes one; re-save "
            "older files with torch.save, or convert them to .safetensors)"
        )
    with zipfile.ZipFile(path) as archive:
        pickles = [n for n in archive.namelist() if n.endswith("data.pkl")]
        if len(pickles) != 1:
            raise ValueError(f"{path}: expected one data.pkl in the archive, found {pickles}")
        prefix = pickles[0][: -len("data.pkl")]
        if prefix + "byteorder" in archive.namelist():
            if archive.read(prefix + "byteorder").decode() != "little":
                raise ValueError(f"{path}: big-endian torch files are not supported")
        with archive.open(pickles[0]) as f:
            return _Unpickler(f, archive, prefix, path).load()
