"""Accuracy and size of the kv cache formats (docs/kv.md), from the numpy
reference alone (no compiler): for f16, i8, i4 and i2 caches (quantized:
window R = 128, key group G_t = 32 tokens, value group G_c = 32 channels),
H = 32 heads, D = 128, S = 4096 tokens held, the decode-attention output
over the format's (dequantized) cache against the output over the
unquantized f32 cache, both in float64. This is the error of the format
itself (semantics §3: reported, not hidden), not of the compiled kernel.

Data: Gaussian keys and values; and keys with per-channel scales and
offsets plus a few outlier channels per head (as real keys have: KIVI's
reason to quantize keys per channel), values Gaussian.

Bytes per token: all storage bytes of the cache type divided by its capacity
S (per layer, all heads; scales, minima and the window amortized):

    float:     2 H D e                      (e = 4 for f32, 2 for f16)
    quantized: H (2 D b / 8 + 2*4 D / G_t + 2*4 D / G_c) + 2*4 H R D / S + 8 / S

(codes of keys and values; key scale + min per channel per key group; value
scale + min per token per value group; the f32 window of R keys and values;
the i64 length).

    PYTHONPATH=python /usr/bin/python3 bench/kv_accuracy.py
"""

import argparse

import numpy as np

from moka.reference import (KVCacheType, kv_append, kv_decode_attention,
                            kv_dequantized, kv_empty)


def keys_values(rng, kind, h, s, d):
    v = rng.standard_normal((1, h, s, d))
    k = rng.standard_normal((1, h, s, d))
    if kind == "outlier keys":
        scale = np.exp(0.5 * rng.standard_normal((h, 1, d)))
        for i in range(h):  # 4 outlier channels per head, 10-20x larger
            scale[i, 0, rng.choice(d, 4, replace=False)] *= rng.uniform(
                10, 20, 4)
        offset = rng.standard_normal((h, 1, d)) * 2
        k = k * scale + offset
    return k.astype(np.float32), v.astype(np.float32)


def cache_type(fmt, h, s, d, window, group):
    if fmt in ("f32", "f16"):
        return KVCacheType((1, h, s, d), fmt)
    return KVCacheType((1, h, s, d), fmt, key_group=group, value_group=group,
                       window=window)


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--heads", type=int, default=32)
    p.add_argument("--head-size", type=int, default=128)
    p.add_argument("--capacity", type=int, default=4096)
    p.add_argument("--window", type=int, default=128)
    p.add_argument("--group", type=int, default=32)
    p.add_argument("--queries", type=int, default=8,
                   help="random queries per head")
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args()
    h, d, s = args.heads, args.head_size, args.capacity
    nq = args.queries
    rng = np.random.default_rng(args.seed)
    formats = ["f16", "i8", "i4", "i2"]

    print(f"kv cache formats: H={h} D={d} S={s} tokens held; quantized: "
          f"R={args.window} G_t=G_c={args.group}; {nq} random queries per "
          "head; attention error vs the unquantized f32 cache, float64")
    print()
    print("| data | format | bytes/token | vs f16 | key err | value err "
          "| attn rel err (Frobenius) | attn max err / max |")
    print("| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: |")
    f16_bytes = cache_type("f16", h, s, d, 0, 0).storage_bytes() / s
    for kind in ["gaussian", "outlier keys"]:
        k, v = keys_values(rng, kind, h, s, d)
        # nq queries per head as one batch of H * nq query heads: query
        # head h * nq + j attends with kv head h.
        q = rng.standard_normal((1, h * nq, d))
        exact = kv_decode_attention(q, k, v)
        k64, v64 = k.astype(np.float64), v.astype(np.float64)
        for fmt in formats:
            t = cache_type(fmt, h, s, d, args.window, args.group)
            storage = kv_append(kv_empty(t), t, k, v)
            keys, values = kv_dequantized(storage, t)
            out = kv_decode_attention(q, keys, values)
            key_err = np.linalg.norm(keys - k64) / np.linalg.norm(k64)
            value_err = np.linalg.norm(values - v64) / np.linalg.norm(v64)
            fro = np.linalg.norm(out - exact) / np.linalg.norm(exact)
            mx = np.abs(out - exact).max() / np.abs(exact).max()
            per_token = t.storage_bytes() / s
            print(f"| {kind} | {fmt} | {per_token:,.0f} | "
                  f"{per_token / f16_bytes:.3f} | {key_err:.2e} | "
                  f"{value_err:.2e} | {fro:.2e} | {mx:.2e} |")
    print()
    print("bytes/token: storage bytes of the cache type / S; quantized = "
          "H (2 D b/8 + 8 D/G_t + 8 D/G_c) + 8 H R D / S + 8 / S; "
          "float = 2 H D e (+ 8 / S). key/value err: ||x_hat - x|| / ||x|| "
          "over all cached tokens (the window's tokens are exact).")


if __name__ == "__main__":
    main()
