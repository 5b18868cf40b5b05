"""Timing helpers shared by the benchmarks.

The machines are shared virtual machines whose speed drifts by a factor of
two within seconds, so the contenders are measured in interleaved rounds:
each round times every contender once (a median over a few runs), and the
report gives each contender's best round and the median over rounds of the
per-round ratios, which cancels the drift that hits both sides of a round
alike.

Importing this module also configures the peers' BLAS (see below).
"""

import os
import time

# Peers at their best: OpenBLAS's core detection fails in these VMs and loses
# several times; it must be told the core type before numpy or PyTorch load
# it. Import this module first.
if "avx512f" in open("/proc/cpuinfo").read():
    os.environ.setdefault("OPENBLAS_CORETYPE", "SkylakeX")

import numpy as np  # noqa: E402


def median_ms(fn, runs):
    """Median wall time of `fn()` over `runs` calls, after one warm-up."""
    fn()
    times = []
    for _ in range(runs):
        t0 = time.perf_counter()
        fn()
        times.append((time.perf_counter() - t0) * 1e3)
    return float(np.median(times))


def interleaved(contenders, rounds):
    """`contenders`: name -> callable returning milliseconds for one
    measurement. Returns name -> list of per-round times."""
    times = {name: [] for name in contenders}
    for _ in range(rounds):
        for name, measure in contenders.items():
            times[name].append(measure())
    return times


def copy_bandwidth():
    """Bytes read plus written per second by PyTorch's `copy_` of 32 MB
    (the best of three medians of five copies)."""
    import torch
    big = torch.randn(8 << 20)
    dst = torch.empty_like(big)
    copy_ms = min(median_ms(lambda: dst.copy_(big), 5) for _ in range(3))
    return 2 * big.numel() * 4 / (copy_ms * 1e-3)


def ratio(times, a, b):
    """Median over rounds of times[a] / times[b]."""
    return float(np.median(np.array(times[a]) / np.array(times[b])))
