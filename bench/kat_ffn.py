"""Benchmark: KAT's feed-forward block (examples/kat_ffn.mlir, KAT-S sizes,
8 images of 197 tokens) compiled by moka, fused into one loop over row
tiles, against PyTorch eager (rational, F.linear, rational, F.linear) and
against its two bare matrix products (F.linear), side by side.

    PYTHONPATH=python /usr/bin/python3 bench/kat_ffn.py [--rounds 3]
"""

from common import interleaved, median_ms, ratio  # first: configures BLAS

import argparse  # noqa: E402
import importlib.util  # noqa: E402
import os  # noqa: E402

import numpy as np  # noqa: E402
import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402

import moka  # noqa: E402
from moka.reference import relative_error  # noqa: E402

from rational import torch_rational  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))
EXAMPLE = os.path.join(HERE, "..", "examples", "kat_ffn")


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--runs", type=int, default=5)
    p.add_argument("--rounds", type=int, default=3)
    args = p.parse_args()
    torch.set_num_threads(os.cpu_count() or 2)

    spec = importlib.util.spec_from_file_location("kat_ffn", EXAMPLE + ".py")
    example = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(example)
    inputs = example.inputs(np.random.default_rng())
    x, a1, b1, w1, c1, a2, b2, w2, c2 = inputs
    tokens = x.shape[0] * x.shape[1]
    flop = 2.0 * tokens * (w1.size + w2.size)
    out = {}

    def run_moka():
        (out["y"],), ms = moka.run(EXAMPLE + ".mlir", "forward", *inputs,
                                   benchmark=args.runs)
        return ms

    t = [torch.from_numpy(v) for v in inputs]
    tx, ta1, tb1, tw1, tc1, ta2, tb2, tw2, tc2 = t

    def eager():
        h = F.linear(torch_rational(tx, ta1, tb1), tw1, tc1)
        return F.linear(torch_rational(h, ta2, tb2), tw2, tc2)

    h0 = torch.randn(tokens, w1.shape[1])
    h1 = torch.randn(tokens, w2.shape[1])
    times = interleaved({
        "moka": run_moka,
        "eager": lambda: median_ms(eager, args.runs),
        "linear": lambda: median_ms(
            lambda: (F.linear(h0, tw1), F.linear(h1, tw2)), args.runs),
    }, args.rounds)
    err = relative_error(out["y"], example.reference(*inputs)[0])
    best = {k: min(v) for k, v in times.items()}
    print(f"KAT-S feed-forward block on {tokens} tokens (384 -> 1536 -> 384, "
          f"G=8, (5,4)), f32, {torch.get_num_threads()} threads; "
          f"{flop / 1e9:.2f} GFLOP; {args.rounds} interleaved rounds")
    print(f"{'':34}{'best ms':>9}{'GFLOP/s':>9}")
    for key, name in [("moka", "moka (one fused loop)"),
                      ("eager", "torch eager"),
                      ("linear", "the two F.linear alone (oneDNN)")]:
        print(f"{name:34}{best[key]:9.2f}{flop / best[key] / 1e6:9.1f}")
    print(f"rel err {err:.1e}; moka vs eager {ratio(times, 'eager', 'moka'):.1f}x"
          f" faster; moka block throughput / bare matrix products "
          f"{ratio(times, 'linear', 'moka'):.0%}")


if __name__ == "__main__":
    main()
