"""Benchmark: decode attention over a KV cache (one query token per
sequence), moka's kv.decode_attention (moka.compile of

    func.func @attend(%q: tensor<BxH_qxDxf32>, %c: !kv.cache<...>) -> tensor<BxH_qxDxf32>

with the cache's storage built by the numpy reference and passed in) against
PyTorch eager f32 attention, softmax(q K^T / sqrt(D)) V with HF's repeat_kv
for grouped-query attention, side by side in interleaved rounds.

Cases: H_q = 32, D = 128, multi-head (H_kv = 32) and grouped-query
(H_kv = 8); S in {1024, 4096, 32768} tokens held (full cache); batch 1 and
8; cache formats f32, i8 and i4 (quantized: window 128, key group 32,
value group 32). For quantized caches PyTorch's column is the same attention
over the unquantized f32 cache (what one would otherwise run), and
`torch-dq` is PyTorch dequantizing the same quantized storage and attending
(as benchmarks.md's int8 row; one run per round, it is slow).

Floor: the bytes of the cache storage valid at n = S (codes, scales, minima,
window, or the float keys and values), plus q and o, read/written once at
the copy bandwidth measured in each round on buffers larger than the caches
(the bandwidth drifts within a run: x floor is the median over rounds).
Caches smaller than that are rotated: each contender cycles through copies
of its cache that together exceed the CPU caches, so that every call reads
its cache from memory, as in a model whose layers each have their own.

Memory: the f32 keys and values of the largest case (B=8, S=32768, H_kv=32)
take 8.6 GB, and PyTorch's repeat_kv copies g times that of the GQA cache; a
contender that would not fit in the memory available (MemAvailable x
--mem-fraction) is skipped, and the table says so.

    PYTHONPATH=python /usr/bin/python3 bench/kv.py [--seq 1024,4096,32768] \
        [--batch 1,8] [--formats f32,i8,i4] [--kv-heads 32,8]
"""

from common import (copy_timer, floor_ratio, interleaved,  # first: BLAS
                    median_ms, ratio, rotating, rotation, round_bandwidths)

import argparse  # noqa: E402
import gc  # noqa: E402
import math  # noqa: E402
import os  # noqa: E402

import numpy as np  # noqa: E402
import torch  # noqa: E402

import moka  # noqa: E402
from moka.reference import (KVCacheType, kv_append, kv_attention,  # noqa: E402
                            kv_empty, relative_error)

MODULE = """
func.func @attend(%q: tensor<{b}x{hq}x{d}xf32>, %c: {cache}) -> tensor<{b}x{hq}x{d}xf32> {{
  %o = kv.decode_attention %q, %c : tensor<{b}x{hq}x{d}xf32>, {cache} -> tensor<{b}x{hq}x{d}xf32>
  return %o : tensor<{b}x{hq}x{d}xf32>
}}
"""


def repeat_kv(x, n_rep):
    """HF transformers' repeat_kv: [B, H_kv, S, D] -> [B, H_kv n_rep, S, D]."""
    b, h, s, d = x.shape
    if n_rep == 1:
        return x
    return x[:, :, None, :, :].expand(b, h, n_rep, s, d).reshape(
        b, h * n_rep, s, d)


def torch_attention(q, k, v):
    """Eager f32 decode attention: q [B, H_q, D], k, v [B, H_kv, S, D]."""
    g = q.shape[1] // k.shape[1]
    k, v = repeat_kv(k, g), repeat_kv(v, g)
    s = torch.matmul(q.unsqueeze(2), k.transpose(-1, -2)) / math.sqrt(
        q.shape[-1])
    return torch.matmul(torch.softmax(s, dim=-1), v).squeeze(2)


def torch_unpack(codes, bits):
    """int8 packed codes [..., P] -> float codes [..., P 8 / bits]."""
    u = codes.view(torch.uint8)
    if bits == 8:
        return u.to(torch.float32)
    per = 8 // bits
    parts = [(u >> (i * bits)) & (2 ** bits - 1) for i in range(per)]
    return torch.stack(parts, dim=-1).flatten(-2).to(torch.float32)


def torch_dequant_attention(q, storage, t):
    """PyTorch eager over a quantized cache's storage: unpack and dequantize
    the compressed part (statistics broadcast, not repeated), append the
    window, attend."""
    kc, ks, km, vc, vs, vm, wk, wv, length = storage
    n = int(length)
    nc, w = t.compressed(n), t.windowed(n)
    gt, gc = t.key_group, t.value_group
    b, h, _, d = t.shape
    keys = torch_unpack(kc[:, :, :nc], t.bits).view(b, h, nc // gt, gt, d)
    keys = torch.addcmul(km[:, :, :nc // gt, None], keys,
                         ks[:, :, :nc // gt, None]).view(b, h, nc, d)
    values = torch_unpack(vc[:, :, :nc], t.bits).view(b, h, nc, d // gc, gc)
    values = torch.addcmul(vm[:, :, :nc, :, None], values,
                           vs[:, :, :nc, :, None]).view(b, h, nc, d)
    keys = torch.cat([keys, wk[:, :, :w]], dim=2)
    values = torch.cat([values, wv[:, :, :w]], dim=2)
    return torch_attention(q, keys, values)


def mem_available():
    with open("/proc/meminfo") as f:
        for line in f:
            if line.startswith("MemAvailable:"):
                return int(line.split()[1]) * 1024
    return 0


def cache_type(fmt, b, h, s, d):
    if fmt in ("f32", "f16"):
        return KVCacheType((b, h, s, d), fmt)
    return KVCacheType((b, h, s, d), fmt, key_group=32, value_group=32,
                       window=128)


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--seq", default="1024,4096,32768")
    p.add_argument("--batch", default="1,8")
    p.add_argument("--formats", default="f32,i8,i4")
    p.add_argument("--heads", type=int, default=32)
    p.add_argument("--kv-heads", default="32,8")
    p.add_argument("--head-size", type=int, default=128)
    p.add_argument("--runs", type=int, default=5)
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--mem-fraction", type=float, default=0.7)
    args = p.parse_args()
    torch.set_num_threads(os.cpu_count() or 2)
    hq, d = args.heads, args.head_size
    formats = args.formats.split(",")
    rng = np.random.default_rng()

    copy = copy_timer()
    budget = mem_available() * args.mem_fraction

    print(f"decode attention H_q={hq} D={d}, f32 queries, "
          f"{torch.get_num_threads()} threads; {args.rounds} interleaved "
          f"rounds of {args.runs} runs; memory budget {budget / 1e9:.1f} GB "
          f"({args.mem_fraction:.0%} of available)")
    print(f"{'fmt':>4}{'B':>3}{'Hq/Hkv':>8}{'S':>7}{'moka ms':>10}"
          f"{'torch ms':>10}{'torch-dq':>10}{'GB/s':>6}{'floor ms':>10}"
          f"{'x floor':>9}{'vs torch':>10}{'rel err':>10}")
    notes = []
    libs = {}
    for hkv in [int(x) for x in args.kv_heads.split(",")]:
        g = hq // hkv
        for b in [int(x) for x in args.batch.split(",")]:
            for s in [int(x) for x in args.seq.split(",")]:
                base = 2 * b * hkv * s * d * 4  # f32 keys + values
                if base > budget:
                    notes.append(f"B={b} H_kv={hkv} S={s}: skipped, the f32 "
                                 f"keys and values alone take "
                                 f"{base / 1e9:.1f} GB")
                    continue
                k = rng.standard_normal((b, hkv, s, d), dtype=np.float32)
                v = rng.standard_normal((b, hkv, s, d), dtype=np.float32)
                tk, tv = torch.from_numpy(k), torch.from_numpy(v)
                torch_extra = 2 * (g if g > 1 else 0) * b * hkv * s * d * 4
                for fmt in formats:
                    ts = None
                    t = cache_type(fmt, b, hkv, s, d)
                    row = f"{fmt:>4}{b:>3}{f'{hq}/{hkv}':>8}{s:>7}"
                    if fmt == "f32":
                        storage = [k, v, np.array(s, np.int64)]
                        extra = 0
                    else:
                        extra = t.storage_bytes()
                        if base + extra > budget:
                            notes.append(f"{row.strip()}: skipped ("
                                         f"{(base + extra) / 1e9:.1f} GB)")
                            continue
                        storage = kv_append(kv_empty(t), t, k, v,
                                            inplace=True)
                    q = rng.standard_normal((b, hq, d), dtype=np.float32)
                    tq = torch.from_numpy(q)
                    ir = MODULE.format(b=b, hq=hq, d=d, cache=t.mlir)
                    if ir not in libs:
                        libs[ir] = moka.compile(ir)
                    lib = libs[ir]
                    out = {}

                    # Copies to rotate through, so that no call finds its
                    # cache in the CPU caches; moka's and PyTorch's share
                    # the memory left.
                    spare = max(0, budget - base - extra - torch_extra) / 2
                    sbytes = sum(np.asarray(a).nbytes for a in storage)
                    storages = [storage] + [
                        [np.copy(a) for a in storage]
                        for _ in range(rotation(sbytes, sbytes + spare) - 1)]
                    kvs = [(tk, tv)] + [
                        (tk.clone(), tv.clone())
                        for _ in range(rotation(base, base + spare) - 1)]

                    def run_moka(i):
                        out["o"] = lib.attend(q, *storages[i])
                    contenders = {"moka": lambda: median_ms(
                        rotating(run_moka, len(storages)), args.runs)}
                    if base + extra + torch_extra <= budget:
                        contenders["torch"] = lambda: median_ms(
                            rotating(lambda i: torch_attention(tq, *kvs[i]),
                                     len(kvs)), args.runs)
                    else:
                        notes.append(f"{row.strip()}: PyTorch skipped "
                                     "(repeat_kv copies "
                                     f"{torch_extra / 1e9:.1f} GB)")
                    if fmt != "f32":
                        dq_extra = 2.5 * base + torch_extra
                        if base + extra + dq_extra <= budget:
                            ts = [torch.from_numpy(np.asarray(a))
                                  for a in storage]
                            # A slow peer: one run per round.
                            contenders["dq"] = lambda: median_ms(
                                lambda: torch_dequant_attention(tq, ts, t),
                                1)
                        else:
                            notes.append(f"{row.strip()}: torch-dq skipped")
                    contenders["copy"] = copy
                    times = interleaved(contenders, args.rounds)
                    expected = kv_attention(q, storage, t)
                    err = relative_error(out["o"], expected)
                    floor_bytes = t.storage_bytes(s) + 2 * q.nbytes
                    bandwidth = float(np.median(round_bandwidths(times)))
                    floor = floor_bytes / bandwidth * 1e3
                    best = min(times["moka"])

                    def col(name):
                        return (f"{min(times[name]):10.2f}" if name in times
                                else f"{'-':>10}")
                    speedup = (f"{ratio(times, 'torch', 'moka'):9.1f}x"
                               if "torch" in times else f"{'-':>10}")
                    print(f"{row}{best:10.2f}{col('torch')}{col('dq')}"
                          f"{bandwidth / 1e9:6.1f}{floor:10.2f}"
                          f"{floor_ratio(times, 'moka', floor_bytes):9.2f}"
                          f"{speedup}"
                          f"{err:10.1e}", flush=True)
                    storage = storages = kvs = out = ts = None
                    gc.collect()
                k = v = tk = tv = None
                gc.collect()
    print("torch: PyTorch eager f32 attention over the unquantized cache; "
          "torch-dq: PyTorch dequantizing the quantized storage, then "
          "attending; GB/s: copy bandwidth (median over rounds); x floor: "
          "median over rounds of moka / the round's floor; vs torch: median "
          "over rounds of torch / moka; rel err: "
          "moka vs float64 attention over the dequantized cache "
          "(||o - ref|| / ||ref||).")
    for note in notes:
        print("note:", note)


if __name__ == "__main__":
    main()
