"""Benchmark: the rational's backward (dx and the coefficient gradients)
compiled by moka vs PyTorch eager autograd, side by side in one run.

x[32, 197, 3072] f32, G = 8, (m, n) = (5, 4). The memory floor reads x and
dy and writes dx once, at the copy bandwidth measured in the same run; the
coefficient gradients are reductions that add no traffic. Goal: moka within
1.5x of the floor.

    PYTHONPATH=python /usr/bin/python3 bench/rational_grad.py [--runs 7]
"""

from common import interleaved, median_ms, ratio  # first: configures BLAS

import argparse  # noqa: E402
import os  # noqa: E402

import numpy as np  # noqa: E402
import torch  # noqa: E402

import moka  # noqa: E402
from moka.reference import relative_error  # noqa: E402

from rational import torch_rational  # noqa: E402

MODULE = """
func.func @grad(%x: tensor<{s}xf32>, %dy: tensor<{s}xf32>, %a: tensor<{g}x6xf32>, %b: tensor<{g}x4xf32>) -> (tensor<{s}xf32>, tensor<{g}x6xf32>, tensor<{g}x4xf32>) {{
  %dx, %da, %db = kan.rational_grad %x, %dy, %a, %b : tensor<{s}xf32>, tensor<{g}x6xf32>, tensor<{g}x4xf32>
  return %dx, %da, %db : tensor<{s}xf32>, tensor<{g}x6xf32>, tensor<{g}x4xf32>
}}
"""


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--runs", type=int, default=5)
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--shape", default="32x197x3072")
    p.add_argument("--groups", type=int, default=8)
    args = p.parse_args()
    torch.set_num_threads(os.cpu_count() or 2)

    shape = [int(d) for d in args.shape.split("x")]
    rng = np.random.default_rng()
    x = rng.standard_normal(shape).astype(np.float32)
    dy = rng.standard_normal(shape).astype(np.float32)
    a = (rng.standard_normal((args.groups, 6)) * 0.5).astype(np.float32)
    b = (rng.standard_normal((args.groups, 4)) * 0.5).astype(np.float32)
    nbytes = 3 * x.nbytes

    tx, tdy = torch.from_numpy(x), torch.from_numpy(dy)
    ty = torch.empty_like(tx)
    module = MODULE.format(s="x".join(map(str, shape)), g=args.groups)
    out = {}

    def run_moka():
        out["grads"], ms = moka.run(module, "grad", x, dy, a, b,
                                    benchmark=args.runs)
        return ms

    def torch_backward():
        xt = tx.clone().requires_grad_(True)
        at = torch.from_numpy(a).requires_grad_(True)
        bt = torch.from_numpy(b).requires_grad_(True)
        torch_rational(xt, at, bt).backward(tdy)
        return xt.grad, at.grad, bt.grad

    # The floor: x and dy read, dx written once, at the copy bandwidth
    # (read + write) measured in the same round.
    times = interleaved({
        "copy": lambda: median_ms(lambda: ty.copy_(tx), 2 * args.runs),
        "moka": run_moka,
        "torch": lambda: median_ms(torch_backward, 1),
    }, args.rounds)
    times["floor"] = [c * nbytes / (2 * x.nbytes) for c in times["copy"]]
    floor_ms = min(times["floor"])
    bandwidth = 2 * x.nbytes / (min(times["copy"]) * 1e-3)
    moka_ms, torch_ms = min(times["moka"]), min(times["torch"])
    dx, da, db = out["grads"]

    # float64 autograd reference for the check.
    x64 = torch.from_numpy(x).double().requires_grad_(True)
    a64 = torch.from_numpy(a).double().requires_grad_(True)
    b64 = torch.from_numpy(b).double().requires_grad_(True)
    torch_rational(x64, a64, b64).backward(torch.from_numpy(dy).double())
    errs = [relative_error(dx, x64.grad.numpy()),
            relative_error(da, a64.grad.numpy()),
            relative_error(db, b64.grad.numpy())]

    print(f"kan.rational_grad x[{args.shape}] f32, G={args.groups}, (5,4), "
          f"{torch.get_num_threads()} threads; {args.rounds} interleaved "
          f"rounds")
    print(f"copy bandwidth (read+write): {bandwidth / 1e9:.1f} GB/s -> floor "
          f"{floor_ms:.2f} ms (read x, dy; write dx)")
    print(f"{'':22}{'best ms':>9}{'x floor':>9}")
    print(f"{'moka':22}{moka_ms:9.2f}{ratio(times, 'moka', 'floor'):9.2f}")
    print(f"{'torch eager autograd':22}{torch_ms:9.2f}"
          f"{ratio(times, 'torch', 'floor'):9.2f}")
    print(f"rel err dx {errs[0]:.1e}, da {errs[1]:.1e}, db {errs[2]:.1e}")
    print(f"moka vs PyTorch eager: {ratio(times, 'torch', 'moka'):.1f}x "
          f"faster; x floor is the median of per-round ratios "
          f"(goal: within 1.5x)")


if __name__ == "__main__":
    main()
