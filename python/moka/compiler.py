"""Ahead-of-time compilation from Python: ``moka.compile``.

``compile`` runs ``mokac --emit=shared-lib`` and loads the library with
ctypes. The library's functions become attributes of the returned
:class:`Library`; they take numpy arrays and return numpy arrays (a tuple
when a function has several results). Arguments are checked by the
library's C interface (dtype, rank, dimensions; see ``moka/moka.h``) and
problems raise :class:`moka.MokaError` with its message.
"""

import ctypes
import os
import re
import subprocess
import tempfile

import numpy as np

from .tools import MokaError, find_tool

MAX_RANK = 8

# moka_dtype values (moka/moka.h) and the numpy dtypes that carry them.
_DTYPES = {
    "f32": (1, np.dtype(np.float32)),
    "f64": (2, np.dtype(np.float64)),
    "f16": (3, np.dtype(np.float16)),
    "bf16": (4, np.dtype(np.uint16)),  # raw bfloat16 bits
    "i1": (5, np.dtype(np.bool_)),
    "i8": (6, np.dtype(np.int8)),
    "i32": (7, np.dtype(np.int32)),
    "i64": (8, np.dtype(np.int64)),
}
_BY_CODE = {code: (name, dt) for name, (code, dt) in _DTYPES.items()}

_STATUS = {1: "invalid argument", 2: "out of memory", 3: "run-time check failed"}


class _Tensor(ctypes.Structure):
    _fields_ = [
        ("data", ctypes.c_void_p),
        ("dtype", ctypes.c_int),
        ("rank", ctypes.c_int32),
        ("shape", ctypes.c_int64 * MAX_RANK),
        ("owner", ctypes.c_void_p),
    ]


class TensorType:
    """A function argument or result type: dtype name and shape (None for a
    dynamic dimension)."""

    def __init__(self, text):
        m = re.fullmatch(r"(\w+)\[([^\]]*)\]", text)
        if not m or m.group(1) not in _DTYPES:
            raise MokaError(f"unreadable tensor type '{text}' in the manifest")
        self.dtype_name = m.group(1)
        self.code, self.dtype = _DTYPES[self.dtype_name]
        dims = m.group(2)
        self.shape = tuple(None if d == "?" else int(d)
                           for d in dims.split("x")) if dims else ()

    def __repr__(self):
        dims = "x".join("?" if d is None else str(d) for d in self.shape)
        return f"{self.dtype_name}[{dims}]"


def _split_types(text):
    return [TensorType(t) for t in re.findall(r"\w+\[[^\]]*\]", text)]


class _Owner:
    """Keeps a result buffer alive while numpy arrays view it."""

    def __init__(self, lib, tensor):
        self._release = lib.moka_tensor_release
        self._tensor = tensor

    def __del__(self):
        self._release(ctypes.byref(self._tensor))


class Function:
    """One compiled function; call it with numpy arrays."""

    def __init__(self, library, c_name, signature):
        m = re.fullmatch(r"(\w+)\((.*)\)->\((.*)\)", signature)
        if not m:
            raise MokaError(f"unreadable signature '{signature}'")
        self.name = m.group(1)
        self.inputs = _split_types(m.group(2))
        self.results = _split_types(m.group(3))
        self._library = library
        self._fn = getattr(library._dll, c_name)
        self._fn.restype = ctypes.c_int
        self._fn.argtypes = [ctypes.POINTER(_Tensor)] * (
            len(self.inputs) + len(self.results))

    def __repr__(self):
        return (f"<moka function {self.name}({', '.join(map(repr, self.inputs))})"
                f" -> ({', '.join(map(repr, self.results))})>")

    def __call__(self, *args):
        if len(args) != len(self.inputs):
            raise MokaError(f"{self.name} takes {len(self.inputs)} arguments, "
                            f"{len(args)} given")
        arrays, tensors = [], []
        for i, (arg, expected) in enumerate(zip(args, self.inputs)):
            array = arg if isinstance(arg, np.ndarray) else np.asarray(
                arg, dtype=expected.dtype)
            if array.dtype != expected.dtype:
                raise MokaError(
                    f"{self.name}: argument #{i} has dtype {array.dtype}, "
                    f"expected {expected} (numpy {expected.dtype})")
            if array.ndim > MAX_RANK:
                raise MokaError(f"{self.name}: argument #{i} has rank "
                                f"{array.ndim}, expected {expected}")
            # (np.ascontiguousarray would turn a 0-d array into a 1-d one.)
            if not array.flags.c_contiguous:
                array = array.copy(order="C")
            arrays.append(array)
            t = _Tensor()
            t.data = array.ctypes.data if array.size else None
            t.dtype = expected.code
            t.rank = array.ndim
            for d, size in enumerate(array.shape):
                t.shape[d] = size
            tensors.append(t)
        outs = [_Tensor() for _ in self.results]
        pointers = [ctypes.byref(t) for t in tensors + outs]
        status = self._fn(*pointers)
        if status != 0:
            message = self._library._dll.moka_last_error().decode()
            raise MokaError(message or _STATUS.get(status, f"status {status}"))
        results = tuple(self._to_numpy(t) for t in outs)
        return results[0] if len(results) == 1 else results

    def _to_numpy(self, tensor):
        name, dtype = _BY_CODE[tensor.dtype]
        shape = tuple(tensor.shape[d] for d in range(tensor.rank))
        count = int(np.prod(shape, dtype=np.int64))
        if count == 0 or not tensor.data:
            self._library._dll.moka_tensor_release(ctypes.byref(tensor))
            return np.zeros(shape, dtype=dtype)
        buffer = (ctypes.c_char * (count * dtype.itemsize)).from_address(
            tensor.data)
        array = np.frombuffer(buffer, dtype=dtype).reshape(shape)
        # The array's base chain ends at the ctypes buffer; tying the owner
        # to it releases the runtime's buffer when the last view is gone.
        buffer._moka_owner = _Owner(self._library._dll, tensor)
        return array


class Library:
    """A compiled model: its public functions are attributes."""

    def __init__(self, path, tempdir=None):
        self.path = path
        self._tempdir = tempdir  # removed with the library
        self._dll = ctypes.CDLL(path)
        # Check that this is a model library before looking up the runtime:
        # another library lacks its symbols (an AttributeError from ctypes).
        # Candidate names come from the file's strings (which also hold
        # internal names, e.g. in sanitizer builds): keep the exported ones.
        manifests = [s for s in _exported_manifests(path)
                     if hasattr(self._dll, s)]
        if len(manifests) != 1:
            raise MokaError(f"'{path}' is not a moka model library")
        try:
            self._dll.moka_last_error.restype = ctypes.c_char_p
            self._dll.moka_tensor_release.argtypes = [
                ctypes.POINTER(_Tensor)]
            self._dll.moka_tensor_release.restype = None
            manifest_fn = getattr(self._dll, manifests[0])
        except AttributeError as e:
            raise MokaError(f"'{path}' is not a moka model library ({e})") \
                from None
        manifest_fn.restype = ctypes.c_char_p
        self.functions = {}
        for line in manifest_fn().decode().splitlines():
            c_name, signature = line.split(" ", 1)
            fn = Function(self, c_name, signature)
            self.functions[fn.name] = fn

    def __getattr__(self, name):
        functions = self.__dict__.get("functions", {})
        if name in functions:
            return functions[name]
        raise AttributeError(
            f"the model has no function '{name}' (it has: "
            f"{', '.join(sorted(functions)) or 'none'})")

    def __dir__(self):
        return list(super().__dir__()) + list(self.functions)


def _exported_manifests(path):
    """Names of the `*_moka_manifest` symbols a library exports."""
    with open(path, "rb") as f:
        data = f.read()
    return sorted(set(m.decode() for m in
                      re.findall(rb"([A-Za-z_][A-Za-z0-9_]*_moka_manifest)\x00",
                                 data)))


def compile(source, target="host", *, name=None, weights=None, cpu=None,
            opt_level=3, serial=False, timeout=600):
    """Compiles `source` into a native library and loads it.

    `source` is a path to a ``.mlir`` file, MLIR text, or a
    :class:`moka.Module`. `target` is ``"host"`` or ``"x86_64"`` (with
    `cpu`). Weights come from the module (``moka.weights`` attribute or a
    `weights` safetensors path). Returns a :class:`Library`.
    """
    if target not in ("host", "x86_64"):
        raise MokaError(f"unsupported target '{target}' (moka.compile loads "
                        "the library into this process: host or x86_64)")
    tmp = tempfile.TemporaryDirectory(prefix="moka-")
    if hasattr(source, "save") and hasattr(source, "mlir"):
        path = os.path.join(tmp.name, "model.mlir")
        source.save(path)
    elif isinstance(source, os.PathLike) or (
            isinstance(source, str) and "\n" not in source
            and source.endswith(".mlir")):
        path = os.fspath(source)
        if not os.path.isfile(path):
            raise MokaError(f"no such file: '{path}'")
    elif isinstance(source, str):
        path = os.path.join(tmp.name, "model.mlir")
        with open(path, "w") as f:
            f.write(source)
    else:
        raise MokaError("moka.compile takes a path, MLIR text or a "
                        f"moka.Module, not {type(source).__name__}")
    out = os.path.join(tmp.name, "libmodel.so")
    args = [find_tool("mokac"), path, "-o", out, "--emit=shared-lib",
            f"--target={target}", f"-O{int(opt_level)}"]
    if name:
        args.append(f"--name={name}")
    if weights:
        args.append(f"--weights={os.fspath(weights)}")
    if cpu:
        args.append(f"--cpu={cpu}")
    if serial:
        args.append("--serial")
    proc = subprocess.run(args, capture_output=True, text=True,
                          timeout=timeout)
    if proc.returncode != 0:
        raise MokaError(proc.stderr.strip() or
                        f"mokac exited with {proc.returncode}")
    return Library(out, tempdir=tmp)
