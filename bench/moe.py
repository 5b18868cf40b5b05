"""Benchmark: a Mixtral-style MoE block (E=8, k=2, d=1024, ffn=2048,
SwiGLU) compiled by moka (one moe.layer) against PyTorch eager written as in
HF transformers' MixtralSparseMoeBlock (a loop over experts with
index_add_), side by side, at T in {1, 16, 256, 2048}.

Floors: for T <= 16, the bytes of the selected experts' weights read once at
the measured copy bandwidth (at most min(E, T*k) experts); for larger T, the
larger of that and the active FLOPs at the measured rate of one bare
[T*k/E, d] x [d, f] matrix product in the best BLAS here.

    PYTHONPATH=python /usr/bin/python3 bench/moe.py [--tokens 1,16,256,2048]
"""

from common import interleaved, median_ms, ratio  # first: configures BLAS

import argparse  # noqa: E402
import os  # noqa: E402

import numpy as np  # noqa: E402
import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402

import moka  # noqa: E402
from moka.reference import moe_layer, relative_error  # noqa: E402

MODULE = """
func.func @moe(%x: tensor<?x{d}xf32>, %gate: tensor<{e}x{d}xf32>, %w1: tensor<{e}x{f}x{d}xf32>, %w2: tensor<{e}x{d}x{f}xf32>, %w3: tensor<{e}x{f}x{d}xf32>) -> tensor<?x{d}xf32> {{
  %y = moe.layer swiglu %x, %gate, %w1, %w2 up(%w3 : tensor<{e}x{f}x{d}xf32>) {{k = {k} : i64, normalize = true}} : tensor<?x{d}xf32>, tensor<{e}x{d}xf32>, tensor<{e}x{f}x{d}xf32>, tensor<{e}x{d}x{f}xf32> -> tensor<?x{d}xf32>
  return %y : tensor<?x{d}xf32>
}}
"""


def torch_mixtral(x, gate, w1, w2, w3, k):
    """HF MixtralSparseMoeBlock.forward, eager."""
    logits = F.linear(x, gate)
    weights = F.softmax(logits, dim=1, dtype=torch.float)
    weights, experts = torch.topk(weights, k, dim=-1)
    weights /= weights.sum(dim=-1, keepdim=True)
    out = torch.zeros_like(x)
    mask = F.one_hot(experts, num_classes=gate.shape[0]).permute(2, 1, 0)
    for e in range(gate.shape[0]):
        idx, top = torch.where(mask[e])
        if idx.numel() == 0:
            continue
        cur = x[top]
        h = F.silu(F.linear(cur, w1[e])) * F.linear(cur, w3[e])
        out.index_add_(0, top, F.linear(h, w2[e]) * weights[top, idx, None])
    return out


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--tokens", default="1,16,256,2048")
    p.add_argument("--runs", type=int, default=5)
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--experts", type=int, default=8)
    p.add_argument("--k", type=int, default=2)
    p.add_argument("--d", type=int, default=1024)
    p.add_argument("--ffn", type=int, default=2048)
    args = p.parse_args()
    torch.set_num_threads(os.cpu_count() or 2)
    e, k, d, f = args.experts, args.k, args.d, args.ffn
    rng = np.random.default_rng()
    gate = (rng.standard_normal((e, d)) / np.sqrt(d)).astype(np.float32)
    w1 = (rng.standard_normal((e, f, d)) / np.sqrt(d)).astype(np.float32)
    w2 = (rng.standard_normal((e, d, f)) / np.sqrt(f)).astype(np.float32)
    w3 = (rng.standard_normal((e, f, d)) / np.sqrt(d)).astype(np.float32)
    tg, t1, t2, t3 = map(torch.from_numpy, (gate, w1, w2, w3))
    module = MODULE.format(d=d, e=e, f=f, k=k)
    expert_bytes = 3 * d * f * 4

    big = torch.randn(8 << 20)
    dst = torch.empty_like(big)
    copy_ms = min(median_ms(lambda: dst.copy_(big), 5) for _ in range(3))
    bandwidth = 2 * big.numel() * 4 / (copy_ms * 1e-3)

    print(f"MoE block E={e} k={k} d={d} ffn={f} SwiGLU, f32, "
          f"{torch.get_num_threads()} threads; {args.rounds} interleaved "
          f"rounds; copy bandwidth {bandwidth / 1e9:.1f} GB/s")
    print(f"{'T':>6}{'moka ms':>10}{'eager ms':>10}{'floor ms':>10}"
          f"{'x floor':>9}{'vs eager':>10}{'rel err':>10}")
    for t in [int(v) for v in args.tokens.split(",")]:
        x = rng.standard_normal((t, d)).astype(np.float32)
        tx = torch.from_numpy(x)
        out = {}

        def run_moka():
            (out["y"],), ms = moka.run(module, "moe", x, gate, w1, w2, w3,
                                       benchmark=args.runs)
            return ms

        rows = max(1, t * k // e)
        a = torch.randn(rows, d)
        bare = lambda: F.linear(a, t1[0])  # noqa: E731
        times = interleaved({
            "moka": run_moka,
            "eager": lambda: median_ms(
                lambda: torch_mixtral(tx, tg, t1, t2, t3, k), args.runs),
            "bare": lambda: median_ms(bare, args.runs),
        }, args.rounds)
        # Small batches: the selected experts' weights read once. Large
        # ones: the active FLOPs at the rate of a bare per-expert product.
        active = min(e, t * k)
        bytes_floor = active * expert_bytes / bandwidth * 1e3
        flop_rate = 2.0 * rows * d * f / (min(times["bare"]) * 1e-3)
        flop_floor = 2.0 * t * k * 3 * d * f / flop_rate * 1e3
        floor = bytes_floor if t <= 16 else max(bytes_floor, flop_floor)
        ref = moe_layer(x, gate, w1, w2, w3, k, normalize=True)
        err = relative_error(out["y"], ref)
        best = min(times["moka"])
        print(f"{t:>6}{best:10.2f}{min(times['eager']):10.2f}{floor:10.2f}"
              f"{best / floor:9.2f}{ratio(times, 'eager', 'moka'):9.1f}x"
              f"{err:10.1e}")


if __name__ == "__main__":
    main()
