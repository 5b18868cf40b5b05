"""float64 references and comparison helpers for the numerical edge cases
(test_edge_cases.py, docs/numerical-edge-cases.md).

Everything here is written from the math (shared/docs/semantics.md, the op
descriptions) and IEEE-754, independently of the compiler. Where a formula
has several evaluation orders that differ at infinities, the one the spec
names is used (Horner's rule for the rational). moka.reference is reused
where its float64 evaluation already is the defining formula."""

import numpy as np

F32_MAX = float(np.finfo(np.float32).max)
F32_TINY = float(np.finfo(np.float32).tiny)          # smallest normal
F32_SUB = float(np.finfo(np.float32).smallest_subnormal)


# ---------------------------------------------------------------------------
# Comparisons.


def special_mismatch(out, ref):
    """Positions where `out` and `ref` disagree on the IEEE class of a
    value: NaN vs not NaN, +inf, -inf. Returns a boolean array."""
    out = np.asarray(out, dtype=np.float64)
    ref = np.asarray(ref, dtype=np.float64)
    return ((np.isnan(out) != np.isnan(ref))
            | (np.isposinf(out) != np.isposinf(ref))
            | (np.isneginf(out) != np.isneginf(ref)))


def assert_same_specials(out, ref, what="output"):
    """NaN exactly where `ref` has NaN, +inf / -inf exactly where it has
    them (NaN == NaN)."""
    bad = special_mismatch(out, ref)
    if bad.any():
        idx = tuple(np.argwhere(bad)[0])
        raise AssertionError(
            f"{what}: {int(bad.sum())} of {bad.size} elements have the wrong "
            f"IEEE class, first at {idx}: got {np.asarray(out)[idx]!r}, "
            f"expected {np.asarray(ref)[idx]!r}")


def assert_close(out, ref, rtol=1e-5, atol=0.0, what="output"):
    """Same special values (assert_same_specials), and every finite element
    within `atol + rtol * |ref|`."""
    out = np.asarray(out, dtype=np.float64)
    ref = np.asarray(ref, dtype=np.float64)
    assert out.shape == ref.shape, f"{what}: shape {out.shape} != {ref.shape}"
    assert_same_specials(out, ref, what)
    fin = np.isfinite(ref)
    err = np.abs(out[fin] - ref[fin])
    tol = atol + rtol * np.abs(ref[fin])
    if (err > tol).any():
        i = int(np.argmax(err - tol))
        where = tuple(np.argwhere(fin)[i])
        raise AssertionError(
            f"{what}: {int((err > tol).sum())} finite elements off, worst at "
            f"{where}: got {out[where]!r}, expected {ref[where]!r}")


def norm_rel_error(out, ref):
    """||out - ref|| / ||ref|| over finite reference elements (float64)."""
    out = np.asarray(out, dtype=np.float64)
    ref = np.asarray(ref, dtype=np.float64)
    fin = np.isfinite(ref)
    d = np.linalg.norm(ref[fin])
    return float(np.linalg.norm(out[fin] - ref[fin]) / (d if d else 1.0))


def assert_close_norm(out, ref, tol=1e-5, what="output"):
    """Same special values, and a norm-relative error <= tol over the finite
    elements (for reductions with cancellation)."""
    assert np.shape(out) == np.shape(ref), what
    assert_same_specials(out, ref, what)
    err = norm_rel_error(out, ref)
    assert err <= tol, f"{what}: norm-relative error {err:.3e} > {tol:.0e}"


# ---------------------------------------------------------------------------
# kan.rational: Horner's rule, as the spec says, in float64 and emulated in
# float32 (for the class of results whose intermediates overflow f32).


def _per_channel(x, numerator, denominator):
    b = np.asarray(denominator, dtype=np.float64)
    a = np.asarray(numerator, dtype=np.float64)
    groups, channels = b.shape[0], x.shape[-1]
    assert channels % groups == 0
    group_of = np.arange(channels) // max(channels // groups, 1)
    a_c = a[np.zeros(channels, dtype=int)] if a.shape[0] == 1 else a[group_of]
    return a_c, np.abs(b[group_of])


def rational_horner(x, numerator, denominator, dtype=np.float64):
    """y = P(x) / Q(x) by Horner's rule in `dtype` arithmetic:
    P = (((a_m x + a_{m-1}) x + ...) x + a_0,
    Q = ((|b_n| |x| + |b_{n-1}|) |x| + ... + |b_1|) |x| + 1.
    Returns (y, largest |intermediate| seen in float64), the second to tell
    whether an f32 evaluation overflows."""
    x = np.asarray(x, dtype=dtype)
    a_c, b_c = _per_channel(x, numerator, denominator)
    a_c, b_c = a_c.astype(dtype), b_c.astype(dtype)
    big = np.zeros(x.shape)
    with np.errstate(all="ignore"):
        p = np.broadcast_to(a_c[:, -1], x.shape).astype(dtype)
        for i in range(a_c.shape[1] - 2, -1, -1):
            p = (p * x).astype(dtype) + a_c[:, i]
            big = np.maximum(big, np.abs(p.astype(np.float64)))
        ax = np.abs(x)
        if b_c.shape[1] == 0:
            q = np.ones_like(x)
        else:
            q = np.broadcast_to(b_c[:, -1], x.shape).astype(dtype)
            for j in range(b_c.shape[1] - 2, -1, -1):
                q = (q * ax).astype(dtype) + b_c[:, j]
                big = np.maximum(big, np.abs(q.astype(np.float64)))
            q = (q * ax).astype(dtype) + dtype(1)
            big = np.maximum(big, np.abs(q.astype(np.float64)))
        y = (p / q).astype(dtype)
    return y, np.where(np.isfinite(x), big, 0.0)


def rational_grad(x, dy, numerator, denominator):
    """kan.rational_grad in float64, the formulas of semantics §1 (P, R by
    Horner's rule; Q, S likewise on |x|): returns (dx, da, db)."""
    x = np.asarray(x, dtype=np.float64)
    dy = np.asarray(dy, dtype=np.float64)
    a = np.asarray(numerator, dtype=np.float64)
    b = np.asarray(denominator, dtype=np.float64)
    groups, channels = b.shape[0], x.shape[-1]
    m, n = a.shape[1] - 1, b.shape[1]
    group_of = np.arange(channels) // (channels // groups)
    a_c = a[np.zeros(channels, dtype=int)] if a.shape[0] == 1 else a[group_of]
    b_c = np.abs(b[group_of])
    with np.errstate(all="ignore"):
        p = np.broadcast_to(a_c[:, m], x.shape).copy()
        for i in range(m - 1, -1, -1):
            p = p * x + a_c[:, i]
        r = np.zeros_like(x)
        if m >= 1:
            r = np.broadcast_to(m * a_c[:, m], x.shape).copy()
            for i in range(m - 1, 0, -1):
                r = r * x + i * a_c[:, i]
        ax = np.abs(x)
        q = np.ones_like(x)
        s = np.zeros_like(x)
        if n:
            q = np.broadcast_to(b_c[:, n - 1], x.shape).copy()
            for j in range(n - 2, -1, -1):
                q = q * ax + b_c[:, j]
            q = q * ax + 1.0
            s = np.broadcast_to(n * b_c[:, n - 1], x.shape).copy()
            for j in range(n - 1, 0, -1):
                s = s * ax + j * b_c[:, j - 1]
            s = np.sign(x) * s
        dx = dy * (r / q - p * s / q ** 2)
        rows_x = x.reshape(-1, channels)
        rows_dy = dy.reshape(-1, channels)
        rows_p = p.reshape(-1, channels)
        rows_q = q.reshape(-1, channels)
        da = np.zeros(a.shape)
        db = np.zeros(b.shape)
        for g in range(groups):
            cols = group_of == g
            xs, dys = rows_x[:, cols], rows_dy[:, cols]
            ps, qs = rows_p[:, cols], rows_q[:, cols]
            for i in range(m + 1):
                power = np.ones_like(xs) if i == 0 else xs ** i
                term = (dys * power / qs).sum()
                da[0 if a.shape[0] == 1 else g, i] += term
            for j in range(n):
                db[g, j] = (dys * (-ps / qs ** 2) * np.sign(b[g, j])
                            * np.abs(xs) ** (j + 1)).sum()
    return dx, da, db


# ---------------------------------------------------------------------------
# Attention whose masked keys take no part (math: a sum over the allowed
# keys only, so NaN in a masked key or value cannot reach the output).


def causal_attention(q, k, v, causal=True, scale=None):
    """q [B, H_q, T, D], k, v [B, H_kv, T, D], float64; query i uses keys
    0..i (causal) or all; max-subtracted softmax over the allowed keys only."""
    q, k, v = (np.asarray(a, dtype=np.float64) for a in (q, k, v))
    bsz, hq, t, d = q.shape
    g = hq // k.shape[1]
    scale = 1.0 / np.sqrt(d) if scale is None else scale
    out = np.zeros_like(q)
    with np.errstate(all="ignore"):
        for b in range(bsz):
            for h in range(hq):
                for i in range(t):
                    last = i + 1 if causal else t
                    kk, vv = k[b, h // g, :last], v[b, h // g, :last]
                    s = kk @ q[b, h, i] * scale
                    p = np.exp(s - s.max())
                    out[b, h, i] = (p / p.sum()) @ vv
    return out


def attend(q, keys, values, scale):
    """softmax(q keys^T scale) values for one query [D] over keys [n, D],
    float64, max-subtracted (the IEEE evaluation: a +inf score or an all
    -inf row gives NaN)."""
    with np.errstate(all="ignore"):
        s = np.asarray(keys, np.float64) @ np.asarray(q, np.float64) * scale
        p = np.exp(s - s.max())
        return (p / p.sum()) @ np.asarray(values, np.float64)


# ---------------------------------------------------------------------------
# Router selection with float32 keys.


def route_f32_keys(logits, k, scoring="softmax", bias=None, normalize=False,
                   scale=1.0):
    """The router of semantics §2 with scores computed in float64 and then
    rounded to float32, keys = f32(score + bias) as moka's f32 arithmetic
    forms them, so that scores that underflow f32 tie at 0 and the tie goes
    to the lower index. Order: keys descending, ties to the lower index, NaN
    keys after every number (numpy's stable argsort, as
    moka.reference.moe_route). Returns (weights float64, experts, keys32)."""
    x = np.asarray(logits, dtype=np.float64)
    with np.errstate(all="ignore"):
        if scoring == "softmax":
            e = np.exp(x - x.max(axis=1, keepdims=True))
            scores = e / e.sum(axis=1, keepdims=True)
        else:
            scores = 1.0 / (1.0 + np.exp(-x))
        s32 = scores.astype(np.float32)
        keys = s32 if bias is None else (s32 + np.asarray(bias, np.float32))
        keys = keys.astype(np.float32)
        experts = np.argsort(-keys, axis=-1, kind="stable")[:, :k]
        weights = np.take_along_axis(s32.astype(np.float64), experts, axis=1)
        if normalize:
            weights = weights / weights.sum(axis=1, keepdims=True)
    return weights * scale, experts, keys


# ---------------------------------------------------------------------------
# MoE experts in float64.


def silu(x):
    with np.errstate(all="ignore"):
        return x / (1.0 + np.exp(-x))


def gelu(x):
    from math import erf
    verf = np.vectorize(erf, otypes=[np.float64])
    with np.errstate(all="ignore"):
        return 0.5 * x * (1.0 + verf(x / np.sqrt(2.0)))


def expert_mlp(kind, x, w1, w2, w3=None):
    """One expert on rows x [R, d] in float64: swiglu or gelu."""
    x, w1, w2 = (np.asarray(a, np.float64) for a in (x, w1, w2))
    with np.errstate(all="ignore"):
        if kind == "swiglu":
            h = silu(x @ w1.T) * (x @ np.asarray(w3, np.float64).T)
        else:
            h = gelu(x @ w1.T)
        return h @ w2.T


def experts_reference(kind, x, rows, offsets, w1, w2, w3=None):
    """moe.experts in float64: permuted row r holds token rows[r] and
    belongs to the expert whose segment contains r; rows past the last
    segment are zero."""
    out = np.zeros((len(rows), x.shape[1]))
    for e in range(len(offsets) - 1):
        lo, hi = int(offsets[e]), int(offsets[e + 1])
        if hi > lo:
            out[lo:hi] = expert_mlp(kind, x[rows[lo:hi]], w1[e], w2[e],
                                    None if w3 is None else w3[e])
    return out
