"""Benchmark: kan.rational compiled by moka vs PyTorch eager, side by side.

GR-KAN rational on x[32, 197, 3072] f32, G = 8, (m, n) = (5, 4). Prints the
median times, their ratio and the fraction of the memory-bandwidth floor
(read x + write y at the copy bandwidth measured in the same run).

    PYTHONPATH=python /usr/bin/python3 bench/rational.py [--runs 7]
"""

from common import median_ms  # first: configures BLAS

import argparse  # noqa: E402
import os  # noqa: E402

import numpy as np  # noqa: E402
import torch  # noqa: E402

import moka  # noqa: E402
from moka.reference import rational, relative_error  # noqa: E402

MODULE = """
func.func @rational(%x: tensor<{s}xf32>, %a: tensor<{g}x6xf32>, %b: tensor<{g}x4xf32>) -> tensor<{s}xf32> {{
  %y = kan.rational %x, %a, %b : tensor<{s}xf32>, tensor<{g}x6xf32>, tensor<{g}x4xf32>
  return %y : tensor<{s}xf32>
}}
"""


def torch_rational(x, a, b):
    """PyTorch eager GR-KAN rational: Horner's rule on broadcast coefficients,
    as KAT's reference code computes it."""
    groups = b.shape[0]
    shape = x.shape
    xg = x.view(*shape[:-1], groups, shape[-1] // groups)
    ag = a.view(groups, 1, -1) if a.shape[0] > 1 else a.view(1, 1, -1)
    bg = b.abs().view(groups, 1, -1)
    p = ag[..., -1]
    for i in range(a.shape[1] - 2, -1, -1):
        p = p * xg + ag[..., i]
    ax = xg.abs()
    q = bg[..., -1]
    for j in range(b.shape[1] - 2, -1, -1):
        q = q * ax + bg[..., j]
    q = q * ax + 1
    return (p / q).view(shape)


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--runs", type=int, default=7)
    p.add_argument("--shape", default="32x197x3072")
    p.add_argument("--groups", type=int, default=8)
    args = p.parse_args()
    torch.set_num_threads(os.cpu_count() or 2)

    shape = [int(d) for d in args.shape.split("x")]
    rng = np.random.default_rng()
    x = rng.standard_normal(shape).astype(np.float32)
    a = (rng.standard_normal((args.groups, 6)) * 0.5).astype(np.float32)
    b = (rng.standard_normal((args.groups, 4)) * 0.5).astype(np.float32)
    nbytes = 2 * x.nbytes

    # Copy bandwidth of this machine now (bytes read + written).
    tx = torch.from_numpy(x)
    ty = torch.empty_like(tx)
    copy_ms = median_ms(lambda: ty.copy_(tx), 15)
    bandwidth = nbytes / (copy_ms * 1e-3)
    floor_ms = nbytes / bandwidth * 1e3

    module = MODULE.format(s="x".join(map(str, shape)), g=args.groups)
    (y,), moka_ms = moka.run(module, "rational", x, a, b,
                             benchmark=args.runs)
    ta, tb = torch.from_numpy(a), torch.from_numpy(b)
    torch_ms = median_ms(lambda: torch_rational(tx, ta, tb), args.runs)
    ref = rational(x, a, b)
    moka_err = relative_error(y, ref)
    torch_err = relative_error(torch_rational(tx, ta, tb).numpy(), ref)

    print(f"kan.rational x[{args.shape}] f32, G={args.groups}, (m,n)=(5,4), "
          f"{torch.get_num_threads()} threads, median of {args.runs}")
    print(f"copy bandwidth (torch copy_, read+write): {bandwidth / 1e9:.1f} GB/s"
          f" -> floor {floor_ms:.2f} ms")
    print(f"{'':14}{'ms':>9}{'x floor':>9}{'of floor':>10}{'rel err':>10}")
    print(f"{'moka':14}{moka_ms:9.2f}{moka_ms / floor_ms:9.2f}"
          f"{floor_ms / moka_ms:10.0%}{moka_err:10.1e}")
    print(f"{'torch eager':14}{torch_ms:9.2f}{torch_ms / floor_ms:9.2f}"
          f"{floor_ms / torch_ms:10.0%}{torch_err:10.1e}")
    print(f"moka is {torch_ms / moka_ms:.1f}x faster than PyTorch eager")


if __name__ == "__main__":
    main()
