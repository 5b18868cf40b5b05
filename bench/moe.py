"""Benchmark: MoE blocks compiled by moka (one moe.layer) against PyTorch
eager, side by side in interleaved rounds, at T in {1, 16, 256, 2048}:

  mixtral   E=8, k=2, d=1024, ffn=2048, SwiGLU, softmax, renormalized;
            eager as HF transformers' MixtralSparseMoeBlock (a loop over
            experts with index_add_).
  fine      fine-grained: E=64, k=6, d=1024, ffn=256 (small experts),
            softmax, not renormalized; the same eager loop.
  deepseek  DeepSeek-V3-style: E=64, k=6, d=1024, ffn=256, sigmoid scoring,
            selection bias, n_group=8 / topk_group=4 (top-2 sums),
            renormalized, scaled by 2.5, one shared SwiGLU expert (ffn=256);
            eager as HF's DeepseekV3MoE (noaux_tc gate, loop over experts,
            shared expert added), with the experts of dropped groups masked
            by -inf as in DeepSeek-V3's inference code and moka (HF masks
            them with 0, which differs only when a bias makes a key
            negative).

Both contenders run in this process and rotate through copies of the
weights that together exceed the CPU caches, so that every call reads its
weights from memory, as in a model whose layers each have their own.
Floors, per round (the machine's speed drifts within a run; x floor is
the median over rounds): for T <= 16, the bytes of the weights that must
be read once (the distinct experts the tokens select, the shared expert
and the router) at the round's copy bandwidth, measured on buffers larger
than the caches; for larger T, the larger of that and the active FLOPs at
the round's BLAS throughput (a [2048, d] x [d, f] product). rel err: moka against a float64 evaluation of the same block
(moka.reference.moe_layer).

    PYTHONPATH=python /usr/bin/python3 bench/moe.py [--cases mixtral,fine,deepseek]
        [--tokens 1,16,256,2048]
"""

from common import (copy_timer, interleaved, median_ms,  # first: BLAS
                    ratio, rotating, rotation, round_bandwidths)

import argparse  # noqa: E402
import os  # noqa: E402

import numpy as np  # noqa: E402
import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402

import moka  # noqa: E402
from moka.reference import moe_layer, moe_route, relative_error  # noqa: E402

MODULE = """
func.func @moe(%x: tensor<?x{d}xf32>, %gate: tensor<{e}x{d}xf32>, %w1: tensor<{e}x{f}x{d}xf32>, %w2: tensor<{e}x{d}x{f}xf32>, %w3: tensor<{e}x{f}x{d}xf32>{extra_args}) -> tensor<?x{d}xf32> {{
  %y = moe.layer swiglu %x, %gate, %w1, %w2 up(%w3 : tensor<{e}x{f}x{d}xf32>){extra} {{{attrs}}} : tensor<?x{d}xf32>, tensor<{e}x{d}xf32>, tensor<{e}x{f}x{d}xf32>, tensor<{e}x{d}x{f}xf32> -> tensor<?x{d}xf32>
  return %y : tensor<?x{d}xf32>
}}
"""

CASES = {
    "mixtral": dict(e=8, k=2, d=1024, f=2048, normalize=True),
    "fine": dict(e=64, k=6, d=1024, f=256, normalize=False),
    "deepseek": dict(e=64, k=6, d=1024, f=256, normalize=True, fs=256,
                     n_group=8, topk_group=4, scale=2.5),
}


def torch_experts(x, weights, experts, w1, w2, w3, out):
    """The loop over experts of HF's Mixtral/DeepseekV3 blocks: out +=
    weights * SwiGLU expert of each selected token."""
    mask = F.one_hot(experts, num_classes=w1.shape[0]).permute(2, 1, 0)
    for e in range(w1.shape[0]):
        idx, top = torch.where(mask[e])
        if idx.numel() == 0:
            continue
        cur = x[top]
        h = F.silu(F.linear(cur, w1[e])) * F.linear(cur, w3[e])
        out.index_add_(0, top, F.linear(h, w2[e]) * weights[top, idx, None])
    return out


def torch_mixtral(x, gate, w1, w2, w3, k, normalize):
    """HF MixtralSparseMoeBlock.forward, eager."""
    weights = F.softmax(F.linear(x, gate), dim=1, dtype=torch.float)
    weights, experts = torch.topk(weights, k, dim=-1)
    if normalize:
        weights /= weights.sum(dim=-1, keepdim=True)
    return torch_experts(x, weights, experts, w1, w2, w3, torch.zeros_like(x))


def torch_deepseek(x, gate, w1, w2, w3, k, bias, s1, s2, s3, n_group,
                   topk_group, scale):
    """HF DeepseekV3MoE.forward, eager: noaux_tc gate, routed experts, the
    shared expert."""
    t, e = x.shape[0], gate.shape[0]
    scores = F.linear(x, gate).sigmoid()
    choice = scores + bias
    group_scores = choice.view(t, n_group, -1).topk(2, dim=-1)[0].sum(dim=-1)
    group_idx = torch.topk(group_scores, k=topk_group, dim=-1,
                           sorted=False)[1]
    group_mask = torch.zeros_like(group_scores).scatter_(1, group_idx, 1)
    score_mask = group_mask.unsqueeze(-1).expand(
        t, n_group, e // n_group).reshape(t, -1)
    choice = choice.masked_fill(~score_mask.bool(), float("-inf"))
    experts = torch.topk(choice, k=k, dim=-1, sorted=False)[1]
    weights = scores.gather(1, experts)
    weights = weights / (weights.sum(dim=-1, keepdim=True) + 1e-20) * scale
    shared = F.linear(F.silu(F.linear(x, s1)) * F.linear(x, s3), s2)
    return torch_experts(x, weights, experts, w1, w2, w3, shared)


def bench_case(name, cfg, tokens, args, copy, rng):
    e, k, d, f = cfg["e"], cfg["k"], cfg["d"], cfg["f"]
    deepseek = "fs" in cfg
    gate = (rng.standard_normal((e, d)) / np.sqrt(d)).astype(np.float32)
    w1 = (rng.standard_normal((e, f, d)) / np.sqrt(d)).astype(np.float32)
    w2 = (rng.standard_normal((e, d, f)) / np.sqrt(f)).astype(np.float32)
    w3 = (rng.standard_normal((e, f, d)) / np.sqrt(d)).astype(np.float32)
    attrs = f"k = {k} : i64, normalize = {str(cfg['normalize']).lower()}"
    extra_args = extra = ""
    inputs = [gate, w1, w2, w3]
    route = dict(normalize=cfg["normalize"])
    shared_bytes = 0
    if deepseek:
        fs = cfg["fs"]
        bias = (rng.standard_normal(e) * 0.1).astype(np.float32)
        s1 = (rng.standard_normal((fs, d)) / np.sqrt(d)).astype(np.float32)
        s3 = (rng.standard_normal((fs, d)) / np.sqrt(d)).astype(np.float32)
        s2 = (rng.standard_normal((d, fs)) / np.sqrt(fs)).astype(np.float32)
        inputs += [bias, s1, s2, s3]
        extra_args = (f", %b: tensor<{e}xf32>, %s1: tensor<{fs}x{d}xf32>, "
                      f"%s2: tensor<{d}x{fs}xf32>, %s3: tensor<{fs}x{d}xf32>")
        extra = (f" bias(%b : tensor<{e}xf32>) shared(%s1, %s2 : "
                 f"tensor<{fs}x{d}xf32>, tensor<{d}x{fs}xf32>) shared_up(%s3 "
                 f": tensor<{fs}x{d}xf32>)")
        attrs += (f", scoring = #moe<scoring sigmoid>, n_group = "
                  f"{cfg['n_group']} : i64, topk_group = {cfg['topk_group']} "
                  f": i64, group_score = #moe<group_score top2_sum>, "
                  f"routed_scaling_factor = {cfg['scale']} : f64")
        route.update(scoring="sigmoid", bias=bias, n_group=cfg["n_group"],
                     topk_group=cfg["topk_group"], group_top2=True,
                     scale=cfg["scale"])
        shared_bytes = 3 * d * fs * 4
    module = MODULE.format(d=d, e=e, f=f, extra_args=extra_args, extra=extra,
                           attrs=attrs)
    # Copies of the weights to rotate through, so that no call finds its
    # weights in the CPU caches; both contenders use the same copies.
    weight_sets = [inputs] + [[np.copy(a) for a in inputs] for _ in range(
        rotation(sum(a.nbytes for a in inputs)) - 1)]
    torch_sets = [[torch.from_numpy(a) for a in ws] for ws in weight_sets]
    tin = torch_sets[0]
    lib = moka.compile(module)
    expert_bytes = 3 * d * f * 4
    big = torch.randn(2048, d)
    big_product = lambda: F.linear(big, tin[1][0])  # noqa: E731

    print(f"\n{name}: E={e} k={k} d={d} ffn={f}"
          + (f", shared ffn={cfg['fs']}" if deepseek else ""))
    print(f"{'T':>6}{'moka ms':>10}{'eager ms':>10}{'GB/s':>6}{'floor ms':>10}"
          f"{'x floor':>9}{'vs eager':>10}{'rel err':>10}")
    for t in tokens:
        x = rng.standard_normal((t, d)).astype(np.float32)
        tx = torch.from_numpy(x)
        out = {}

        def run_moka(i):
            out["y"] = lib.moe(x, *weight_sets[i])

        def eager(i):
            w = torch_sets[i]
            if deepseek:
                return torch_deepseek(tx, *w[:4], k, *w[4:], cfg["n_group"],
                                      cfg["topk_group"], cfg["scale"])
            return torch_mixtral(tx, *w[:4], k, cfg["normalize"])
        n = len(weight_sets)
        contenders = {
            "moka": lambda: median_ms(rotating(run_moka, n), args.runs),
            "eager": lambda: median_ms(rotating(eager, n), args.runs),
        }
        if t > 16:
            contenders["blas"] = lambda: median_ms(big_product, args.runs)
        contenders["copy"] = copy
        times = interleaved(contenders, args.rounds)
        # Small batches: the weights read once. Large ones: the active FLOPs
        # at the best BLAS throughput.
        logits = x.astype(np.float64) @ gate.T.astype(np.float64)
        active = len(np.unique(moe_route(logits, k, **route)[1]))
        floor_bytes = active * expert_bytes + shared_bytes + gate.nbytes
        flops = 2.0 * t * (k * 3 * d * f + (shared_bytes // 4))
        # Each round's floor: its copy bandwidth and, for t > 16, its BLAS
        # throughput.
        floors = []
        for r, bw in enumerate(round_bandwidths(times)):
            fl = floor_bytes / bw * 1e3
            if t > 16:
                rate = 2.0 * 2048 * d * f / (times["blas"][r] * 1e-3)
                fl = max(fl, flops / rate * 1e3)
            floors.append(fl)
        floor = float(np.median(floors))
        x_floor = float(np.median(np.array(times["moka"]) / floors))
        shared = (inputs[5], inputs[6], inputs[7]) if deepseek else None
        ref = moe_layer(x, gate, w1, w2, w3, k, shared=shared, **route)
        err = relative_error(out["y"], ref)
        best = min(times["moka"])
        bw = float(np.median(round_bandwidths(times)))
        print(f"{t:>6}{best:10.2f}{min(times['eager']):10.2f}{bw / 1e9:6.1f}"
              f"{floor:10.2f}{x_floor:9.2f}"
              f"{ratio(times, 'eager', 'moka'):9.1f}x{err:10.1e}")


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--cases", default="mixtral,fine,deepseek")
    p.add_argument("--tokens", default="1,16,256,2048")
    p.add_argument("--runs", type=int, default=5)
    p.add_argument("--rounds", type=int, default=3)
    args = p.parse_args()
    torch.set_num_threads(os.cpu_count() or 2)
    rng = np.random.default_rng()

    copy = copy_timer()
    print(f"MoE blocks, SwiGLU experts, f32, {torch.get_num_threads()} "
          f"threads; {args.rounds} interleaved rounds. GB/s: copy bandwidth "
          "(median over rounds); x floor: median over rounds of moka / the "
          "round's floor; vs eager: median over rounds of eager / moka")
    tokens = [int(v) for v in args.tokens.split(",")]
    for name in args.cases.split(","):
        if name not in CASES:
            p.error(f"unknown case {name!r} (choose from {', '.join(CASES)})")
        bench_case(name, CASES[name], tokens, args, copy, rng)


if __name__ == "__main__":
    main()
