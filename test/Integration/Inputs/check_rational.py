"""Runs a kan.rational function with moka-run on fresh random inputs and
compares it with the float64 reference. Prints PASS or FAIL with the relative
error; exits non-zero on FAIL."""

import argparse
import sys

import numpy as np

import moka
from moka.reference import rational, relative_error

p = argparse.ArgumentParser()
p.add_argument("module")
p.add_argument("--function", required=True)
p.add_argument("--shape", required=True, help="input shape, e.g. 4x6")
p.add_argument("--dtype", default="f32", choices=["f32", "f16", "bf16"])
p.add_argument("--coeff-dtype", default="f32", choices=["f32", "f16", "bf16"])
p.add_argument("--groups", type=int, default=8)
p.add_argument("--m", type=int, default=5)
p.add_argument("--n", type=int, default=4)
p.add_argument("--shared", action="store_true",
               help="one numerator row for all groups")
p.add_argument("--tol", type=float, default=1e-6)
p.add_argument("--serial", action="store_true")
args = p.parse_args()

rng = np.random.default_rng()
shape = [int(d) for d in args.shape.split("x")] if args.shape else []
x = rng.standard_normal(shape) * 2.0
a = rng.standard_normal((1 if args.shared else args.groups, args.m + 1))
b = rng.standard_normal((args.groups, args.n))


def storage(array, dtype):
    """The array as moka-run takes it, and the values it then represents."""
    if dtype == "f32":
        s = array.astype(np.float32)
        return s, s.astype(np.float64)
    if dtype == "f16":
        s = array.astype(np.float16)
        return s, s.astype(np.float64)
    bits = moka.to_bf16_bits(array.astype(np.float32))
    return bits, moka.from_bf16_bits(bits).astype(np.float64)


xs, xv = storage(x, args.dtype)
as_, av = storage(a, args.coeff_dtype)
bs, bv = storage(b, args.coeff_dtype)
(y,) = moka.run(args.module, args.function, xs, as_, bs, serial=args.serial)
if args.dtype == "bf16":
    if y.dtype != np.uint16:
        print(f"FAIL: bf16 result came back as {y.dtype}")
        sys.exit(1)
    y = moka.from_bf16_bits(y)
if tuple(y.shape) != tuple(shape):
    print(f"FAIL: result shape {y.shape}, expected {tuple(shape)}")
    sys.exit(1)
ref = rational(xv, av, bv)
err = relative_error(y, ref)
status = "PASS" if err <= args.tol else "FAIL"
print(f"{status} {args.function} shape={args.shape} rel_err={err:.3e} "
      f"tol={args.tol:.0e}")
sys.exit(0 if status == "PASS" else 1)
