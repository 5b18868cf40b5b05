"""Runs @block(x, a1, b1, w1, a2, b2, w2) of a module with moka and checks it
against the float64 reference of the KAN block

    y = rational2(rational1(x) @ w1) @ w2    (w1, w2 as [Cin, Cout])

on fresh random inputs. Prints PASS/FAIL and exits non-zero on failure."""

import argparse
import sys

import numpy as np

import moka
from moka.reference import rational, relative_error

p = argparse.ArgumentParser()
p.add_argument("module")
p.add_argument("--rows", type=int, required=True)
p.add_argument("--cin", type=int, required=True)
p.add_argument("--hidden", type=int, required=True)
p.add_argument("--cout", type=int, required=True)
p.add_argument("--groups", type=int, default=8)
p.add_argument("--tol", type=float, default=1e-5)
args = p.parse_args()

rng = np.random.default_rng()
g = args.groups
x = rng.standard_normal((args.rows, args.cin)).astype(np.float32)
a1 = (rng.standard_normal((g, 6)) * 0.5).astype(np.float32)
b1 = (rng.standard_normal((g, 4)) * 0.5).astype(np.float32)
w1 = (rng.standard_normal((args.cin, args.hidden)) /
      np.sqrt(args.cin)).astype(np.float32)
a2 = (rng.standard_normal((g, 6)) * 0.5).astype(np.float32)
b2 = (rng.standard_normal((g, 4)) * 0.5).astype(np.float32)
w2 = (rng.standard_normal((args.hidden, args.cout)) /
      np.sqrt(args.hidden)).astype(np.float32)
(y,) = moka.run(args.module, "block", x, a1, b1, w1, a2, b2, w2)
ref = rational(rational(x, a1, b1) @ w1.astype(np.float64), a2, b2) \
    @ w2.astype(np.float64)
err = relative_error(y, ref)
status = "PASS" if err <= args.tol and y.shape == ref.shape else "FAIL"
print(f"{status} block rows={args.rows} rel_err={err:.3e} tol={args.tol:.0e}")
sys.exit(0 if status == "PASS" else 1)
