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


def silu(x):
    x = np.asarray(x, dtype=np.float64)
    return x / (1.0 + np.exp(-x))


def bspline_basis(x, grid_size=5, order=3, grid_min=-1.0, grid_max=1.0):
    """efficient-kan's B-spline bases (Cox-de Boor on the extended uniform
    grid), float64: [..., C] -> [..., C, grid_size + order]."""
    x = np.asarray(x, dtype=np.float64)[..., None]
    h = (grid_max - grid_min) / grid_size
    grid = np.arange(-order, grid_size + order + 1, dtype=np.float64) * h
    grid = grid + grid_min
    bases = ((x >= grid[:-1]) & (x < grid[1:])).astype(np.float64)
    for k in range(1, order + 1):
        bases = ((x - grid[:-(k + 1)]) / (grid[k:-1] - grid[:-(k + 1)])
                 * bases[..., :-1]
                 + (grid[k + 1:] - x) / (grid[k + 1:] - grid[1:(-k)])
                 * bases[..., 1:])
    return bases


def rbf_basis(x, grid_size=8, grid_min=-2.0, grid_max=2.0):
    """FastKAN's Gaussian radial basis, float64: [..., C] -> [..., C, K]."""
    x = np.asarray(x, dtype=np.float64)[..., None]
    centres = np.linspace(grid_min, grid_max, grid_size)
    h = (grid_max - grid_min) / (grid_size - 1)
    return np.exp(-(((x - centres) / h) ** 2))


def chebyshev_basis(x, degree=3):
    """ChebyKAN's basis cos(k acos(tanh x)), float64: [..., C, degree + 1]."""
    t = np.tanh(np.asarray(x, dtype=np.float64))[..., None]
    return np.cos(np.arange(degree + 1) * np.arccos(np.clip(t, -1.0, 1.0)))


def fourier_basis(x, grid_size=5):
    """FourierKAN's basis, cos(kx) for k = 1..F then sin(kx), float64."""
    x = np.asarray(x, dtype=np.float64)[..., None]
    k = np.arange(1, grid_size + 1)
    return np.concatenate([np.cos(k * x), np.sin(k * x)], axis=-1)


def kan_layer(basis, x, weight, bias=None, base_weight=None, numerator=None,
              denominator=None, **params):
    """A KAN layer in float64: sum_k phi_k(x) @ W_k (+ silu(x) @ W_base^T)
    (+ bias). `weight` is [Cout, Cin] for the rational basis, else
    [Cout, Cin, K]."""
    x64 = np.asarray(x, dtype=np.float64)
    w = np.asarray(weight, dtype=np.float64)
    if basis == "rational":
        y = rational(x64, numerator, denominator) @ w.T
    else:
        phi = {"bspline": bspline_basis, "rbf": rbf_basis,
               "chebyshev": chebyshev_basis,
               "fourier": fourier_basis}[basis](x64, **params)
        y = np.einsum("...ik,oik->...o", phi, w)
    if base_weight is not None:
        y = y + silu(x64) @ np.asarray(base_weight, dtype=np.float64).T
    if bias is not None:
        y = y + np.asarray(bias, dtype=np.float64)
    return y


def _silu(x):
    return x / (1.0 + np.exp(-x))


def _swiglu(x, w1, w2, w3):
    return (_silu(x @ w1.T) * (x @ w3.T)) @ w2.T


def _topk(keys, k):
    """Indices of the k largest keys per row, descending, ties to the lower
    index."""
    return np.argsort(-keys, axis=-1, kind="stable")[:, :k]


def moe_route(logits, k, scoring="softmax", bias=None, n_group=1,
              topk_group=1, group_top2=False, normalize=False, scale=1.0):
    """The router of semantics §2 in float64: (weights[T, k], experts[T, k])."""
    x = np.asarray(logits, dtype=np.float64)
    if scoring == "softmax":
        e = np.exp(x - x.max(axis=1, keepdims=True))
        scores = e / e.sum(axis=1, keepdims=True)
    else:
        scores = 1.0 / (1.0 + np.exp(-x))
    keys = scores + (0.0 if bias is None else np.asarray(bias, np.float64))
    t, n = keys.shape
    if n_group > 1 and topk_group < n_group:
        grouped = keys.reshape(t, n_group, n // n_group)
        if group_top2:
            top = -np.sort(-grouped, axis=-1)[..., :2]
            group_keys = top.sum(axis=-1)
        else:
            group_keys = grouped.max(axis=-1)
        kept = _topk(group_keys, topk_group)
        mask = np.zeros((t, n_group), bool)
        np.put_along_axis(mask, kept, True, axis=1)
        keys = np.where(np.repeat(mask, n // n_group, axis=1), keys, -np.inf)
    experts = _topk(keys, k)
    weights = np.take_along_axis(scores, experts, axis=1)
    if normalize:
        weights = weights / weights.sum(axis=1, keepdims=True)
    return weights * scale, experts


def moe_layer(x, gate, w1, w2, w3, k, shared=None, **route):
    """A mixture-of-experts layer in float64 with SwiGLU experts: HF's
    MixtralSparseMoeBlock with the defaults, DeepSeek-V3's MoE with sigmoid
    scoring, bias, groups, scaling and `shared = (s1, s2, s3)`. `gate` is the
    router weight [E, d]."""
    x = np.asarray(x, dtype=np.float64)
    w1, w2, w3 = (np.asarray(a, np.float64) for a in (w1, w2, w3))
    weights, experts = moe_route(x @ np.asarray(gate, np.float64).T, k,
                                 **route)
    out = np.zeros_like(x)
    if shared is not None:
        out += _swiglu(x, *(np.asarray(a, np.float64) for a in
                            (shared[0], shared[1], shared[2])))
    for e in range(w1.shape[0]):
        tok, slot = np.nonzero(experts == e)
        if len(tok):
            out[tok] += weights[tok, slot, None] * _swiglu(x[tok], w1[e],
                                                           w2[e], w3[e])
    return out
