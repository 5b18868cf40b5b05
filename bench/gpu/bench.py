"""moka's GPU code against PyTorch on the same GPU, in one run.

Rows: the KAT rational x[32, 197, 3072] (memory-bound: fraction of the
measured device-to-device copy bandwidth), a Mixtral-style MoE block
(E=8, k=2, d=1024, ffn=2048; fraction of the measured f32 matrix peak on
the active FLOPs) and decode attention over an f16 cache (H=32, D=128,
S=4096; against `scaled_dot_product_attention`; fraction of the copy
bandwidth on the cache bytes). moka runs through `moka-run --device=cuda
--benchmark` (median over runs, host overhead included); PyTorch eager and,
where it works, `torch.compile`, timed with CUDA events.
"""

import os
import re
import subprocess
import sys
import tempfile

import numpy as np
import torch

from moka import reference
from moka.tools import find_tool

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
RUNS = 20


def cuda_ms(fn, runs=RUNS):
    fn()
    torch.cuda.synchronize()
    start, stop = torch.cuda.Event(True), torch.cuda.Event(True)
    times = []
    for _ in range(runs):
        start.record()
        fn()
        stop.record()
        torch.cuda.synchronize()
        times.append(start.elapsed_time(stop))
    return float(np.median(times))


def copy_bandwidth():
    x = torch.empty(1 << 28, dtype=torch.float32, device="cuda")
    ms = cuda_ms(lambda: x.clone())
    return 2 * x.numel() * 4 / (ms * 1e-3)


def matmul_peak():
    a = torch.randn(8192, 8192, device="cuda")
    ms = cuda_ms(lambda: a @ a, runs=5)
    return 2 * 8192 ** 3 / (ms * 1e-3)


def moka_ms(module, function, arrays, tmp):
    """Runs `function` of `module` on the GPU; returns (results, median ms)."""
    args = [find_tool("moka-run"), module, f"--function={function}",
            "--device=cuda", f"--benchmark={RUNS}"]
    for i, a in enumerate(arrays):
        path = os.path.join(tmp, f"in{i}.npy")
        np.save(path, np.ascontiguousarray(a))
        args.append(f"--input=@{path}")
    out = os.path.join(tmp, "out.npy")
    args.append(f"--output=@{out}")
    proc = subprocess.run(args, capture_output=True, text=True)
    if proc.returncode != 0:
        sys.exit(f"moka-run failed:\n{proc.stdout}{proc.stderr}")
    m = re.search(r"median ([0-9.]+) ms", proc.stdout)
    return np.load(out), float(m.group(1))


def compiled(fn):
    try:
        c = torch.compile(fn)
        return c
    except Exception as e:  # PyTorch without a working compiler
        print(f"torch.compile unavailable: {e}")
        return None


def rel_err(y, ref):
    return float(np.abs(y.astype(np.float64) - ref).max() / np.abs(ref).max())


def main():
    torch.manual_seed(0)
    rng = np.random.default_rng(0)
    bw = copy_bandwidth()
    peak = matmul_peak()
    print(f"device: {torch.cuda.get_device_name()}; copy bandwidth "
          f"{bw / 1e9:.0f} GB/s (read + write); f32 matmul {peak / 1e12:.1f} "
          "TFLOP/s")
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        # Rational.
        x = rng.standard_normal((32, 197, 3072)).astype(np.float32)
        a = (rng.standard_normal((8, 6)) * .3).astype(np.float32)
        b = (rng.standard_normal((8, 4)) * .3).astype(np.float32)
        y, ms = moka_ms(os.path.join(ROOT, "examples", "kat_rational.mlir"),
                        "forward", [x, a, b], tmp)
        err = rel_err(y, reference.rational(x, a, b))
        xt, at, bt = (torch.from_numpy(v).cuda() for v in (x, a, b))

        def rational(x, a, b):
            # P(x) / (1 + sum_j |b_j| |x|^j) per group, by Horner's rule.
            g = x.view(*x.shape[:-1], 8, -1)
            ax = g.abs()
            num = a[:, 5, None]
            for j in range(4, -1, -1):
                num = num * g + a[:, j, None]
            den = b[:, 3, None].abs()
            for j in range(2, -1, -1):
                den = den * ax + b[:, j, None].abs()
            return (num / (1 + den * ax)).view_as(x)
        eager = cuda_ms(lambda: rational(xt, at, bt))
        comp = compiled(rational)
        comp_ms = cuda_ms(lambda: comp(xt, at, bt)) if comp else float("nan")
        floor = 2 * x.nbytes / bw * 1e3
        rows.append(("rational 32x197x3072", ms, eager, comp_ms,
                     f"{floor / ms:.0%} of copy bw", err))

        # Mixtral-style MoE block, T = 256.
        t, d, f, e = 256, 1024, 2048, 8
        xm = rng.standard_normal((t, d)).astype(np.float32)
        gate = (rng.standard_normal((e, d)) / 32).astype(np.float32)
        w1 = (rng.standard_normal((e, f, d)) / 32).astype(np.float32)
        w2 = (rng.standard_normal((e, d, f)) / 45).astype(np.float32)
        w3 = (rng.standard_normal((e, f, d)) / 32).astype(np.float32)
        y, ms = moka_ms(os.path.join(ROOT, "examples", "mixtral_moe.mlir"),
                        "forward", [xm, gate, w1, w2, w3], tmp)
        err = rel_err(y, reference.moe_layer(xm, gate, w1, w2, w3, 2,
                                             normalize=True))
        T = [torch.from_numpy(v).cuda() for v in (xm, gate, w1, w2, w3)]

        def moe(x, gate, w1, w2, w3):
            probs = torch.softmax(x @ gate.T, -1)
            wts, idx = probs.topk(2, -1)
            wts = wts / wts.sum(-1, keepdim=True)
            out = torch.zeros_like(x)
            for j in range(e):
                tok, slot = (idx == j).nonzero(as_tuple=True)
                h = torch.nn.functional.silu(x[tok] @ w1[j].T) * (x[tok] @ w3[j].T)
                out.index_add_(0, tok, (h @ w2[j].T) * wts[tok, slot, None])
            return out
        eager = cuda_ms(lambda: moe(*T))
        comp = compiled(moe)
        try:
            comp_ms = cuda_ms(lambda: comp(*T)) if comp else float("nan")
        except Exception as ex:
            print(f"torch.compile failed on the MoE block: {ex}")
            comp_ms = float("nan")
        flops = 2 * t * 2 * 3 * d * f
        rows.append(("Mixtral MoE T=256", ms, eager, comp_ms,
                     f"{flops / (ms * 1e-3) / peak:.0%} of f32 peak", err))

        # Decode attention over an f16 cache.
        h, dh, s = 32, 128, 4096
        ir = os.path.join(tmp, "attend.mlir")
        cache = f"!kv.cache<1x{h}x{s}x{dh}, f16>"
        with open(ir, "w") as fh:
            fh.write(f"func.func @attend(%q: tensor<1x{h}x{dh}xf32>, %c: {cache})"
                     f" -> tensor<1x{h}x{dh}xf32> {{\n"
                     f"  %o = kv.decode_attention %q, %c : tensor<1x{h}x{dh}xf32>,"
                     f" {cache} -> tensor<1x{h}x{dh}xf32>\n"
                     f"  return %o : tensor<1x{h}x{dh}xf32>\n}}\n")
        k = rng.standard_normal((1, h, s, dh)).astype(np.float16)
        v = rng.standard_normal((1, h, s, dh)).astype(np.float16)
        q = rng.standard_normal((1, h, dh)).astype(np.float32)
        y, ms = moka_ms(ir, "attend", [q, k, v, np.array(s, np.int64)], tmp)
        ref = reference.kv_decode_attention(q, k.astype(np.float64),
                                            v.astype(np.float64))
        err = rel_err(y, ref)
        qt = torch.from_numpy(q).cuda().half()[:, :, None]
        kt, vt = torch.from_numpy(k).cuda(), torch.from_numpy(v).cuda()
        sdpa = torch.nn.functional.scaled_dot_product_attention
        eager = cuda_ms(lambda: sdpa(qt, kt, vt))
        comp = compiled(sdpa)
        comp_ms = cuda_ms(lambda: comp(qt, kt, vt)) if comp else float("nan")
        floor = (k.nbytes + v.nbytes) / (bw / 2) * 1e3
        rows.append(("decode attention f16 S=4096", ms, eager, comp_ms,
                     f"{floor / ms:.0%} of read bw", err))

    print("| workload | moka ms | torch eager ms | torch.compile ms | "
          "moka vs eager | moka vs compile | moka reaches | rel. err |")
    print("| --- | --- | --- | --- | --- | --- | --- | --- |")
    for name, ms, eager, comp_ms, reach, err in rows:
        print(f"| {name} | {ms:.3f} | {eager:.3f} | {comp_ms:.3f} | "
              f"{eager / ms:.2f}x | {comp_ms / ms:.2f}x | {reach} | {err:.1e} |")


if __name__ == "__main__":
    main()
