"""Writes the .npy files of the moka-run bad-input tests into DIR:
make-bad-npy.py DIR (lit's RUN lines cannot hold '%' formatting)."""
import os
import sys

import numpy as np

d = sys.argv[1]
os.makedirs(d, exist_ok=True)


def p(name):
    return os.path.join(d, name)


def raw(name, descr, shape, nbytes, fortran=False, key="descr"):
    """A version-1 .npy file with a hand-written header and nbytes of data."""
    header = "{'%s': '%s', 'fortran_order': %s, 'shape': %s, }" % (
        key, descr, fortran, shape)
    header += " " * ((64 - (10 + len(header) + 1) % 64) % 64) + "\n"
    with open(p(name), "wb") as f:
        f.write(b"\x93NUMPY\x01\x00" + len(header).to_bytes(2, "little") +
                header.encode() + b"\0" * nbytes)


# Good inputs of @rational / @dynamic (Inputs/rational.mlir).
np.save(p("x.npy"), np.ones((4, 16), np.float32))
np.save(p("a.npy"), np.ones((8, 6), np.float32))
np.save(p("b.npy"), np.ones((8, 4), np.float32))
np.save(p("x0.npy"), np.ones((0, 16), np.float32))
np.save(p("scalar.npy"), np.float32(1))
np.save(p("bool.npy"), np.ones((4, 16), np.bool_))
np.save(p("u8.npy"), np.ones(4, np.uint8))
np.save(p("i16.npy"), np.ones(4, np.int16))
np.save(p("f4.npy"), np.ones(4, np.float32))
np.save(p("small.npy"), np.ones(2, np.float32))
# Expert indices of Inputs/dispatch.mlir (4 experts): negative, too large.
np.save(p("experts-negative.npy"), np.array([[0, -1], [1, 0]], np.int32))
np.save(p("experts-large.npy"), np.array([[0, 2**31 - 1], [1, 0]], np.int32))
# Malformed or unsupported .npy files.
raw("big-endian.npy", ">f4", "(4, 16)", 256)
raw("object.npy", "|O", "(4, 16)", 256)
raw("complex.npy", "<c8", "(4, 16)", 512)
raw("negative.npy", "<f4", "(-4, 16)", 256)
raw("no-descr.npy", "<f4", "(4, 16)", 256, key="dtype")
raw("bad-dim.npy", "<f4", "(4, x)", 256)
with open(p("short-header.npy"), "wb") as f:  # header length past the end
    f.write(b"\x93NUMPY\x01\x00\xff\xff{'descr'")
with open(p("version9.npy"), "wb") as f:
    f.write(b"\x93NUMPY\x09\x00\x10\x00" + b" " * 16)
open(p("empty.npy"), "wb").close()
# Shapes whose element count overflows 64 bits: 4 * (2^62 + 8) wraps to 32
# elements, which the 128 bytes of data hold; and a size past INT64_MAX.
raw("overflow.npy", "<f4", "(4, %d)" % (2**62 + 8), 128)
raw("huge-dim.npy", "<f4", "(99999999999999999999999, 16)", 64)
