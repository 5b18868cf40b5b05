"""Writes the seed corpora of moka's fuzz harnesses.

ir: every split (`// -----`) of every .mlir file under test/ and examples/.
inputs: .npy files of each dtype moka reads (first byte 0) and safetensors
files matching the harness's module, whole and cut short (first byte 1).
"""
import io
import json
import os
import pathlib
import struct
import sys

import numpy as np

root = pathlib.Path(sys.argv[1])
out = pathlib.Path(sys.argv[2])
(out / "ir").mkdir(parents=True, exist_ok=True)
(out / "inputs").mkdir(parents=True, exist_ok=True)

count = 0
for path in sorted(list(root.glob("test/**/*.mlir")) + list(root.glob("examples/*.mlir"))):
    text = path.read_text()
    for i, chunk in enumerate(text.split("// -----")):
        if chunk.strip():
            (out / "ir" / f"{path.stem}-{i}.mlir").write_text(chunk)
            count += 1

rng = np.random.default_rng(0)
arrays = {
    "f32": rng.standard_normal((4, 8)).astype(np.float32),
    "f64": rng.standard_normal((3,)),
    "f16": rng.standard_normal((2, 3)).astype(np.float16),
    "u16": np.arange(6, dtype=np.uint16).reshape(2, 3),
    "i8": np.arange(-3, 3, dtype=np.int8),
    "i32": np.arange(5, dtype=np.int32),
    "i64": np.arange(4, dtype=np.int64).reshape(2, 2),
    "bool": np.array([True, False]),
    "scalar": np.array(1.5, dtype=np.float32),
    "empty": np.zeros((0, 3), dtype=np.float32),
}
for name, array in arrays.items():
    buffer = io.BytesIO()
    np.save(buffer, array)
    (out / "inputs" / f"npy-{name}").write_bytes(b"\x00" + buffer.getvalue())


def safetensors(tensors):
    header, blobs, offset = {}, [], 0
    for name, (dtype, shape, data) in tensors.items():
        header[name] = {"dtype": dtype, "shape": shape,
                        "data_offsets": [offset, offset + len(data)]}
        blobs.append(data)
        offset += len(data)
    encoded = json.dumps(header).encode()
    return struct.pack("<Q", len(encoded)) + encoded + b"".join(blobs)


full = safetensors({
    "w.a": ("F32", [4, 8], np.ones((4, 8), np.float32).tobytes()),
    "w.b": ("F16", [3], np.ones(3, np.float16).tobytes()),
    "c": ("BF16", [2, 2], bytes(8)),
    "d": ("I8", [5], bytes(5)),
    "e": ("F64", [], bytes(8)),
    "z": ("F32", [0, 3], b""),
})
(out / "inputs" / "st-full").write_bytes(b"\x01" + full)
(out / "inputs" / "st-cut").write_bytes(b"\x01" + full[: len(full) - 7])
(out / "inputs" / "st-one").write_bytes(
    b"\x01" + safetensors({"w.a": ("F32", [4, 8], bytes(128))}))
print(f"seeds: {count} IR modules, {len(arrays)} .npy, 3 safetensors")
