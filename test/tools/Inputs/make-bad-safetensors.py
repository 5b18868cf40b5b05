"""Writes malformed safetensors files for the weight `bias` (f32[3]) of
Inputs/weighted.mlir into DIR: make-bad-safetensors.py DIR."""
import json
import os
import struct
import sys

d = sys.argv[1]
os.makedirs(d, exist_ok=True)


def raw(name, header, data=b"", size=None):
    text = json.dumps(header).encode() if isinstance(header, dict) else header
    with open(os.path.join(d, name), "wb") as f:
        f.write(struct.pack("<Q", len(text) if size is None else size) +
                text + data)


def bias(**fields):
    entry = {"dtype": "F32", "shape": [3], "data_offsets": [0, 12]}
    entry.update(fields)
    return {"bias": entry}


with open(os.path.join(d, "short.safetensors"), "wb") as f:
    f.write(b"\x10\0\0")
raw("not-json.safetensors", b"{not json")
raw("array.safetensors", b"[1, 2]")
raw("entry.safetensors", {"bias": 3})
raw("no-offsets.safetensors", {"bias": {"dtype": "F32", "shape": [3]}},
    b"\0" * 12)
raw("dtype.safetensors", bias(dtype="Q7"), b"\0" * 12)
raw("negative-dim.safetensors", bias(shape=[-3]), b"\0" * 12)
raw("float-dim.safetensors", bias(shape=[3.5]), b"\0" * 12)
raw("overflow.safetensors", bias(shape=[2**40, 2**40]), b"\0" * 12)
raw("size.safetensors", bias(data_offsets=[0, 8]), b"\0" * 12)
raw("negative-offset.safetensors", bias(data_offsets=[-4, 8]), b"\0" * 12)
raw("reversed-offsets.safetensors", bias(data_offsets=[12, 0]), b"\0" * 12)
raw("header-size.safetensors", {}, b"", 2**64 - 1)
# The good entry last: a reader that keeps the last duplicate accepts it.
raw("duplicate.safetensors",
    b'{"bias": {"dtype": "F32", "shape": [4], "data_offsets": [0, 16]}, '
    b'"bias": {"dtype": "F32", "shape": [3], "data_offsets": [0, 12]}}',
    b"\0" * 16)
raw("good.safetensors", bias(), b"\0" * 12)
raw("bool.safetensors", {"flag": {"dtype": "BOOL", "shape": [2],
                                  "data_offsets": [0, 2]}}, b"\1\0")
