"""Benchmark: a GR-KAN layer (rational, then linear) compiled by moka, fused,
against PyTorch eager and against the bare matrix product in the best BLAS
of this machine, side by side in one run.

    y = rational(x) @ W^T + bias,  x[6304, 3072], W[768, 3072], G = 8, (5, 4)

Peers: PyTorch eager (the rational by Horner's rule, then F.linear);
F.linear alone (oneDNN in PyTorch); numpy's x @ W^T alone (OpenBLAS, with
OPENBLAS_CORETYPE=SkylakeX when the CPU has AVX-512, because its detection
fails in these VMs). Reports GFLOP/s and moka's whole layer as a fraction of
the best bare matrix product (the goal: >= 85%, the activation nearly free).

    PYTHONPATH=python /usr/bin/python3 bench/kan_layer.py [--runs 7]
"""

import os

if "avx512f" in open("/proc/cpuinfo").read():
    os.environ.setdefault("OPENBLAS_CORETYPE", "SkylakeX")

import argparse  # noqa: E402

import numpy as np  # noqa: E402
import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402

import moka  # noqa: E402
from moka.reference import rational, relative_error  # noqa: E402

from rational import median_ms, torch_rational  # noqa: E402

MODULE = """
func.func @layer(%x: tensor<?x{cin}xf32>, %w: tensor<{cout}x{cin}xf32>, %b: tensor<{cout}xf32>, %num: tensor<{g}x6xf32>, %den: tensor<{g}x4xf32>) -> tensor<?x{cout}xf32> {{
  %y = kan.layer rational %x, %w bias(%b : tensor<{cout}xf32>) coefficients(%num, %den : tensor<{g}x6xf32>, tensor<{g}x4xf32>) : tensor<?x{cin}xf32>, tensor<{cout}x{cin}xf32> -> tensor<?x{cout}xf32>
  return %y : tensor<?x{cout}xf32>
}}
"""


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--runs", type=int, default=7)
    p.add_argument("--tokens", type=int, default=6304)
    p.add_argument("--cin", type=int, default=3072)
    p.add_argument("--cout", type=int, default=768)
    p.add_argument("--groups", type=int, default=8)
    args = p.parse_args()
    threads = os.cpu_count() or 2
    torch.set_num_threads(threads)

    rng = np.random.default_rng()
    t, cin, cout, g = args.tokens, args.cin, args.cout, args.groups
    x = rng.standard_normal((t, cin)).astype(np.float32)
    w = (rng.standard_normal((cout, cin)) / np.sqrt(cin)).astype(np.float32)
    b = rng.standard_normal(cout).astype(np.float32)
    a = (rng.standard_normal((g, 6)) * 0.5).astype(np.float32)
    d = (rng.standard_normal((g, 4)) * 0.5).astype(np.float32)
    flop = 2.0 * t * cin * cout

    module = MODULE.format(cin=cin, cout=cout, g=g)
    (y,), moka_ms = moka.run(module, "layer", x, w, b, a, d,
                             benchmark=args.runs)
    ref = rational(x, a, d) @ w.astype(np.float64).T + b
    moka_err = relative_error(y, ref)

    tx, tw, tb = map(torch.from_numpy, (x, w, b))
    ta, td = torch.from_numpy(a), torch.from_numpy(d)
    eager_ms = median_ms(lambda: F.linear(torch_rational(tx, ta, td), tw, tb),
                         args.runs)
    eager_err = relative_error(
        F.linear(torch_rational(tx, ta, td), tw, tb).numpy(), ref)
    act = torch_rational(tx, ta, td)
    linear_ms = median_ms(lambda: F.linear(act, tw), args.runs)
    an, wt = act.numpy(), np.ascontiguousarray(w.T)
    blas_ms = median_ms(lambda: an @ wt, args.runs)
    best_ms = min(linear_ms, blas_ms)

    def gflops(ms):
        return flop / (ms * 1e-3) / 1e9

    print(f"GR-KAN layer {cin}->{cout} on {t} tokens, f32, G={g}, (5,4), "
          f"{threads} threads, median of {args.runs}; "
          f"{flop / 1e9:.1f} GFLOP")
    print(f"{'':34}{'ms':>9}{'GFLOP/s':>9}{'rel err':>10}")
    print(f"{'moka kan.layer (fused)':34}{moka_ms:9.2f}{gflops(moka_ms):9.1f}"
          f"{moka_err:10.1e}")
    print(f"{'torch eager rational + F.linear':34}{eager_ms:9.2f}"
          f"{gflops(eager_ms):9.1f}{eager_err:10.1e}")
    print(f"{'F.linear alone (oneDNN)':34}{linear_ms:9.2f}"
          f"{gflops(linear_ms):9.1f}")
    blas = os.environ.get("OPENBLAS_CORETYPE", "auto")
    print(f"{'numpy x @ W^T alone (BLAS, ' + blas + ')':34}{blas_ms:9.2f}"
          f"{gflops(blas_ms):9.1f}")
    print(f"moka layer / best bare matrix product throughput: "
          f"{best_ms / moka_ms:.0%}  (goal >= 85%)")
    print(f"moka is {eager_ms / moka_ms:.1f}x faster than PyTorch eager")


if __name__ == "__main__":
    main()
