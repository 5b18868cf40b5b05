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


# Larger than the last-level cache of the machines these run on (on the
# project's EPYC VMs, reads of 64-96 MB still run at 1.5-2x the memory's
# bandwidth: they hit the cache). Bandwidths are measured on buffers this
# large, and inputs smaller than this are rotated (see `rotation`).
CACHE_BYTES = 512 << 20


def rotation(nbytes, budget=None):
    """How many copies of inputs of `nbytes` to rotate through so that a
    call never finds its inputs in the caches: enough to cover CACHE_BYTES
    (1 for inputs that large), fewer if `budget` bytes cannot hold them."""
    copies = max(1, -(-CACHE_BYTES // max(nbytes, 1)))
    if budget is not None:
        copies = max(1, min(copies, int(budget // max(nbytes, 1))))
    return copies


def rotating(fn, copies):
    """A callable that calls `fn(i)` with i = 0, 1, ..., copies - 1, 0, ...
    in turn."""
    state = {"i": 0}

    def call():
        i = state["i"]
        state["i"] = (i + 1) % copies
        return fn(i)
    return call


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


def copy_timer(runs=3):
    """A contender for `interleaved`: the median time of PyTorch's `copy_` of
    CACHE_BYTES, from memory to memory. With it in the rounds, each round
    has its own floor, and `floor_ratio` cancels the bandwidth's drift."""
    import torch
    src = torch.randn(CACHE_BYTES // 4)
    dst = torch.empty_like(src)
    return lambda: median_ms(lambda: dst.copy_(src), runs)


def round_bandwidths(times):
    """Bytes read plus written per second in each round of a `copy_timer`
    contender named "copy"."""
    return [2 * CACHE_BYTES / (ms * 1e-3) for ms in times["copy"]]


def floor_ratio(times, name, floor_bytes):
    """Median over rounds of `name`'s time over the round's floor: moving
    `floor_bytes` at the round's copy bandwidth."""
    return float(np.median([
        ms / (floor_bytes / bw * 1e3)
        for ms, bw in zip(times[name], round_bandwidths(times))]))


def ratio(times, a, b):
    """Median over rounds of times[a] / times[b]."""
    return float(np.median(np.array(times[a]) / np.array(times[b])))
