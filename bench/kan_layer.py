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

from common import interleaved, median_ms, ratio  # first: configures BLAS

import argparse  # noqa: E402
import os  # noqa: E402

import numpy as np  # noqa: E402
import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402

import moka  # noqa: E402
from moka.reference import rational, relative_error  # noqa: E402

from rational import torch_rational  # noqa: E402

MODULE = """
func.func @layer(%x: tensor<?x{cin}xf32>, %w: tensor<{cout}x{cin}xf32>, %b: tensor<{cout}xf32>, %num: tensor<{g}x6xf32>, %den: tensor<{g}x4xf32>) -> tensor<?x{cout}xf32> {{
  %y = kan.layer rational %x, %w bias(%b : tensor<{cout}xf32>) coefficients(%num, %den : tensor<{g}x6xf32>, tensor<{g}x4xf32>) : tensor<?x{cin}xf32>, tensor<{cout}x{cin}xf32> -> tensor<?x{cout}xf32>
  return %y : tensor<?x{cout}xf32>
}}
"""


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--runs", type=int, default=5)
    p.add_argument("--rounds", type=int, default=3)
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
    out = {}

    def run_moka():
        (out["y"],), ms = moka.run(module, "layer", x, w, b, a, d,
                                   benchmark=args.runs)
        return ms

    tx, tw, tb = map(torch.from_numpy, (x, w, b))
    ta, td = torch.from_numpy(a), torch.from_numpy(d)
    act = torch_rational(tx, ta, td)
    an, wt = act.numpy(), np.ascontiguousarray(w.T)
    times = interleaved({
        "moka": run_moka,
        "eager": lambda: median_ms(
            lambda: F.linear(torch_rational(tx, ta, td), tw, tb), args.runs),
        "linear": lambda: median_ms(lambda: F.linear(act, tw), args.runs),
        "blas": lambda: median_ms(lambda: an @ wt, args.runs),
    }, args.rounds)

    ref = rational(x, a, d) @ w.astype(np.float64).T + b
    moka_err = relative_error(out["y"], ref)
    eager_err = relative_error(
        F.linear(torch_rational(tx, ta, td), tw, tb).numpy(), ref)
    best = {k: min(v) for k, v in times.items()}
    bare = "linear" if best["linear"] <= best["blas"] else "blas"

    def gflops(ms):
        return flop / (ms * 1e-3) / 1e9

    blas = os.environ.get("OPENBLAS_CORETYPE", "auto")
    names = {"moka": "moka kan.layer (fused)",
             "eager": "torch eager rational + F.linear",
             "linear": "F.linear alone (oneDNN)",
             "blas": f"x @ W^T alone (OpenBLAS, {blas})"}
    print(f"GR-KAN layer {cin}->{cout} on {t} tokens, f32, G={g}, (5,4), "
          f"{threads} threads; {flop / 1e9:.1f} GFLOP; {args.rounds} "
          f"interleaved rounds of median-of-{args.runs}")
    print(f"{'':36}{'best ms':>9}{'GFLOP/s':>9}{'rel err':>10}")
    for key, name in names.items():
        err = {"moka": f"{moka_err:10.1e}", "eager": f"{eager_err:10.1e}"}
        print(f"{name:36}{best[key]:9.2f}{gflops(best[key]):9.1f}"
              f"{err.get(key, ''):>10}")
    print(f"moka layer throughput / bare matrix product ({names[bare]}): "
          f"{ratio(times, bare, 'moka'):.0%} (median of per-round ratios; "
          f"goal >= 85%)")
    print(f"moka vs PyTorch eager: {ratio(times, 'eager', 'moka'):.1f}x "
          f"faster")


if __name__ == "__main__":
    main()
