"""float64 reference implementations of moka's ops, written from the math in
moka's documentation and independent of the compiler."""

import numpy as np


def rational(x, numerator, denominator):
    """Group-rational activation (KAT's GR-KAN) in float64.

    x: [..., C]; numerator: [G, m+1] or [1, m+1]; denominator: [G, n].
    """
    x = np.asarray(x, dtype=np.float64)
    a = np.asarray(numerator, dtype=np.float64)
    b = np.asarray(denominator, dtype=np.float64)
    groups = b.shape[0]
    channels = x.shape[-1]
    if channels % groups:
        raise ValueError("channel count not divisible by the number of groups")
    group_of = np.arange(channels) // (channels // groups)
    a_c = a[np.zeros(channels, dtype=int)] if a.shape[0] == 1 else a[group_of]
    b_c = np.abs(b[group_of])
    p = np.zeros_like(x)
    for i in range(a_c.shape[1]):
        p = p + a_c[:, i] * x ** i
    q = np.ones_like(x)
    ax = np.abs(x)
    for j in range(b_c.shape[1]):
        q = q + b_c[:, j] * ax ** (j + 1)
    return p / q


def relative_error(out, ref):
    """||out - ref|| / ||ref|| in float64; inf if `out` has a NaN where `ref`
    has none."""
    out = np.asarray(out, dtype=np.float64)
    ref = np.asarray(ref, dtype=np.float64)
    if np.isnan(out).any() and not np.isnan(ref).any():
        return float("inf")
    denom = np.linalg.norm(ref)
    return float(np.linalg.norm(out - ref) / (denom if denom else 1.0))
