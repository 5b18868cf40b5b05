"""Reading and writing the safetensors format with numpy only.

A safetensors file is

- 8 bytes: ``N``, the header size, an unsigned little-endian 64-bit integer;
- ``N`` bytes: a UTF-8 JSON object ``{name: {"dtype": ..., "shape": [...],
  "data_offsets": [begin, end]}, ...}``, optionally with a ``"__metadata__"``
  entry mapping strings to strings, padded at the end with spaces;
- the data: every tensor's bytes, row-major and little-endian, at
  ``[begin, end)`` relative to the end of the header. The tensors cover the
  data exactly, with no hole and no overlap.

Files written here are deterministic: the header's names are sorted, and the
header is padded so that the data starts at a multiple of 64 bytes of the
file. Tensors are laid out in order of decreasing element size, then name,
so that each starts at a multiple of its element size (as the reference
implementation does): a reader that maps the file can use the data in place.

bfloat16 has no numpy dtype. A bf16 tensor is held as its raw bits in a
:class:`BF16Bits` array (a ``uint16`` ndarray that is marked as bf16):
:func:`load` returns one for each ``BF16`` tensor, and :func:`save` writes any
``BF16Bits`` as ``BF16``. Plain ``uint16`` arrays can be written as ``BF16``
with ``dtypes={name: "BF16"}``.
"""

import json
import os
import struct

import numpy as np

__all__ = ["BF16Bits", "save", "load", "DTYPES"]


class BF16Bits(np.ndarray):
    """A ``uint16`` array holding the raw bits of bfloat16 values.

    ``BF16Bits(bits)`` marks existing bits (any integer array, viewed or
    converted as ``uint16``); :meth:`from_float` rounds floats to bfloat16
    (nearest even); :meth:`to_float32` returns the values.
    """

    def __new__(cls, bits):
        array = np.asarray(bits)
        if array.dtype != np.uint16:
            if array.dtype.kind not in "iu" and array.dtype != np.float16:
                raise ValueError("BF16Bits holds raw bfloat16 bits: give an "
                                 "integer array, or use BF16Bits.from_float")
            array = (array.view(np.uint16) if array.dtype.itemsize == 2
                     else array.astype(np.uint16))
        return array.view(cls)

    @classmethod
    def from_float(cls, values):
        """Rounds `values` to bfloat16 (nearest even, NaN kept) and returns
        their bits."""
        from .tools import to_bf16_bits
        return cls(to_bf16_bits(values))

    def to_float32(self):
        """The float32 values of these bits, as a plain ndarray."""
        from .tools import from_bf16_bits
        return from_bf16_bits(np.asarray(self).view(np.uint16))


# safetensors dtype name -> numpy dtype (little-endian). BF16 is stored in a
# uint16 container (see BF16Bits).
DTYPES = {
    "F64": np.dtype("<f8"),
    "F32": np.dtype("<f4"),
    "F16": np.dtype("<f2"),
    "BF16": np.dtype("<u2"),
    "I64": np.dtype("<i8"),
    "I32": np.dtype("<i4"),
    "I16": np.dtype("<i2"),
    "I8": np.dtype("i1"),
    "U64": np.dtype("<u8"),
    "U32": np.dtype("<u4"),
    "U16": np.dtype("<u2"),
    "U8": np.dtype("u1"),
    "BOOL": np.dtype("?"),
}

_NAME_OF = {
    np.dtype("f8"): "F64", np.dtype("f4"): "F32", np.dtype("f2"): "F16",
    np.dtype("i8"): "I64", np.dtype("i4"): "I32", np.dtype("i2"): "I16",
    np.dtype("i1"): "I8", np.dtype("u8"): "U64", np.dtype("u4"): "U32",
    np.dtype("u2"): "U16", np.dtype("u1"): "U8", np.dtype("?"): "BOOL",
}

_HEADER_ALIGNMENT = 64
# The reference implementation's limit; a larger header is surely corrupt.
_MAX_HEADER = 100 * 1024 * 1024


def _dtype_name(name, array, dtypes):
    explicit = (dtypes or {}).get(name)
    if isinstance(array, BF16Bits):
        if explicit not in (None, "BF16"):
            raise ValueError(f"tensor '{name}' is BF16Bits but dtypes says "
                             f"{explicit}")
        return "BF16"
    if explicit is not None:
        if explicit not in DTYPES:
            raise ValueError(f"unknown safetensors dtype {explicit!r} for "
                             f"'{name}' (known: {', '.join(DTYPES)})")
        fits = (array.dtype.kind in "iu" and array.dtype.itemsize == 2
                if explicit == "BF16"
                else array.dtype.newbyteorder("<") == DTYPES[explicit])
        if not fits:
            raise ValueError(f"tensor '{name}' of dtype {array.dtype} "
                             f"cannot be written as {explicit}")
        return explicit
    key = array.dtype.newbyteorder("=")
    if key not in _NAME_OF:
        raise ValueError(f"tensor '{name}' has dtype {array.dtype}, which "
                         "safetensors cannot hold")
    return _NAME_OF[key]


def save(path, tensors, *, dtypes=None, metadata=None):
    """Writes `tensors` ({name: array}) to the safetensors file `path`.

    `dtypes` maps names to safetensors dtype names where the array's own
    dtype does not say it (``"BF16"`` for ``uint16`` bits); `metadata` is an
    optional {str: str} stored as ``__metadata__``.
    """
    if metadata is not None:
        if not all(isinstance(k, str) and isinstance(v, str)
                   for k, v in metadata.items()):
            raise ValueError("safetensors metadata must map strings to "
                             "strings")
    entries = []
    for name, value in tensors.items():
        if not isinstance(name, str) or not name:
            raise ValueError(f"tensor names must be non-empty strings, got "
                             f"{name!r}")
        if name == "__metadata__":
            raise ValueError("'__metadata__' is reserved by safetensors")
        array = value if isinstance(value, np.ndarray) else np.asarray(value)
        dtype = _dtype_name(name, array, dtypes)
        data = np.ascontiguousarray(array).astype(DTYPES[dtype], copy=False)
        entries.append((name, dtype, array.shape, data))
    # Larger elements first keeps every tensor aligned to its element size.
    entries.sort(key=lambda e: (-DTYPES[e[1]].itemsize, e[0]))
    header, offset = {}, 0
    for name, dtype, shape, data in entries:
        header[name] = {"dtype": dtype, "shape": [int(d) for d in shape],
                        "data_offsets": [offset, offset + data.nbytes]}
        offset += data.nbytes
    if metadata is not None:
        header["__metadata__"] = dict(metadata)
    text = json.dumps(header, sort_keys=True, separators=(",", ":"),
                      ensure_ascii=False).encode("utf-8")
    # Pad with spaces so that the data starts 64-byte aligned in the file.
    size = len(text) + (-(8 + len(text)) % _HEADER_ALIGNMENT)
    text += b" " * (size - len(text))
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", size))
        f.write(text)
        for _, _, _, data in entries:
            f.write(data.tobytes())


def _reject_duplicates(pairs):
    seen = {}
    for key, value in pairs:
        if key in seen:
            raise ValueError(f"duplicate key '{key}'")
        seen[key] = value
    return seen


def load(path, *, with_metadata=False):
    """Reads the safetensors file `path` into {name: array}.

    Arrays share one writable buffer read from the file; ``BF16`` tensors
    come back as :class:`BF16Bits`. With ``with_metadata=True`` returns
    ``(tensors, metadata)``. Raises ``ValueError`` naming the problem for a
    truncated or malformed file.
    """
    where = os.fspath(path)
    with open(path, "rb") as f:
        blob = bytearray(f.read())

    def bad(message):
        return ValueError(f"{where}: not a valid safetensors file: {message}")

    if len(blob) < 8:
        raise bad(f"{len(blob)} bytes, shorter than the 8-byte header size")
    (size,) = struct.unpack_from("<Q", blob, 0)
    if size > _MAX_HEADER:
        raise bad(f"header size {size} exceeds {_MAX_HEADER} bytes")
    if 8 + size > len(blob):
        raise bad(f"header size {size} exceeds the {len(blob) - 8} bytes "
                  "after the size field (truncated file?)")
    raw = bytes(blob[8:8 + size])
    if not raw.startswith(b"{"):
        raise bad("the header does not start with '{'")
    try:
        header = json.loads(raw.decode("utf-8"),
                            object_pairs_hook=_reject_duplicates)
    except (UnicodeDecodeError, ValueError) as e:
        raise bad(f"the header is not valid JSON ({e})") from None
    if not isinstance(header, dict):
        raise bad("the header is not a JSON object")
    metadata = header.pop("__metadata__", None)
    if metadata is not None and not (
            isinstance(metadata, dict) and
            all(isinstance(v, str) for v in metadata.values())):
        raise bad("__metadata__ must map strings to strings")
    data = memoryview(blob)[8 + size:]
    spans, tensors = [], {}
    for name, info in header.items():
        if not isinstance(info, dict) or set(info) != {"dtype", "shape",
                                                       "data_offsets"}:
            raise bad(f"entry '{name}' must have exactly dtype, shape and "
                      "data_offsets")
        dtype, shape, offsets = (info["dtype"], info["shape"],
                                 info["data_offsets"])
        if dtype not in DTYPES:
            raise bad(f"tensor '{name}' has unknown dtype {dtype!r}")
        if not (isinstance(shape, list) and all(
                isinstance(d, int) and not isinstance(d, bool) and d >= 0
                for d in shape)):
            raise bad(f"tensor '{name}' has an invalid shape {shape!r}")
        if not (isinstance(offsets, list) and len(offsets) == 2 and all(
                isinstance(o, int) and not isinstance(o, bool)
                for o in offsets)):
            raise bad(f"tensor '{name}' has invalid data_offsets {offsets!r}")
        begin, end = offsets
        if not 0 <= begin <= end:
            raise bad(f"tensor '{name}' has data_offsets [{begin}, {end}] "
                      "out of order")
        if end > len(data):
            raise bad(f"tensor '{name}' ends at byte {end} of a "
                      f"{len(data)}-byte data section (truncated file?)")
        count = 1
        for d in shape:
            count *= d
        expected = count * DTYPES[dtype].itemsize
        if end - begin != expected:
            raise bad(f"tensor '{name}' of dtype {dtype} and shape {shape} "
                      f"needs {expected} bytes, its data_offsets span "
                      f"{end - begin}")
        spans.append((begin, end, name))
        array = np.frombuffer(data[begin:end], dtype=DTYPES[dtype])
        array = array.reshape(shape)
        tensors[name] = BF16Bits(array) if dtype == "BF16" else array
    # The tensors must tile the data section: no hole, no overlap, no tail.
    position = 0
    for begin, end, name in sorted(spans):
        if begin != position:
            what = "overlaps another tensor" if begin < position else (
                f"leaves a hole at bytes [{position}, {begin})")
            raise bad(f"tensor '{name}' {what}")
        position = end
    if position != len(data):
        raise bad(f"{len(data) - position} bytes after the last tensor")
    if with_metadata:
        return tensors, metadata
    return tensors
