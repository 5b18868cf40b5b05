"""Numerical edge cases through every op family: NaN, +/-inf, denormals,
very large magnitudes and empty dimensions (docs/numerical-edge-cases.md
gives, per family, the expected behaviour and the test that checks it).

Expectations come from the math (shared/docs/semantics.md, the op
descriptions) evaluated in float64, or, where the spec prescribes f32
arithmetic whose intermediates overflow, from IEEE-754 f32 evaluation of the
formula the spec names; never from what moka happens to output. Inputs are
fresh random arrays with fixed seeds. Everything runs through `moka.run`
(a subprocess), so a crash or a hang fails one test instead of pytest.

Cases that show a bug in moka are kept asserting the correct behaviour and
marked `xfail(strict=True, reason="BUG: ...")`."""

import numpy as np
import pytest

import moka
from moka import reference as ref
from moka.reference import (KVCacheType, kv_append, kv_attention, kv_empty,
                            kv_unpack, kv_valid)

import edge_reference as er
import test_kan_layer
import test_kv
import test_kv_prefill
import test_moe_block
import test_moe_route
import test_rational
import test_rational_grad

F32_MAX = er.F32_MAX


def run(text, function, *args, timeout=120):
    """moka.run in a subprocess; a hang becomes a test failure."""
    return moka.run(text, function, *args, timeout=timeout)


def f32(a):
    return np.asarray(a, dtype=np.float32)


def sprinkle(rng, x, fraction, values):
    """x with `fraction` of its elements replaced by the special `values`
    (in turn), at random positions; returns (x, positions)."""
    x = x.copy()
    flat = x.reshape(-1)
    count = max(len(values), int(fraction * flat.size))
    pos = rng.choice(flat.size, count, replace=False)
    for i, p in enumerate(pos):
        flat[p] = values[i % len(values)]
    return x, pos


# ===========================================================================
# kan.rational


RATIONAL_CONFIGS = {
    # name: (groups, m, n, shared numerator, zero leading coefficient)
    "m5n4_g4": (4, 5, 4, False, False),
    "m5n4_shared": (4, 5, 4, True, False),
    "m3n0": (2, 3, 0, False, False),      # Q = 1: infinities survive
    "m0n3": (2, 0, 3, False, False),      # P = a0: 0 at infinity
    "m4n2_zero_lead": (1, 4, 2, False, True),  # 0 * inf = NaN in Horner
}


@pytest.mark.parametrize("config", list(RATIONAL_CONFIGS))
@pytest.mark.parametrize("seed", [0, 1])
def test_rational_nan_inf(config, seed):
    """NaN and +/-inf inputs: NaN exactly where Horner's rule in float64
    gives NaN (every NaN input, inf/inf, 0*inf, inf-inf), the same infinities
    with the same sign, every other element unaffected (1e-5)."""
    groups, m, n, shared, zero_lead = RATIONAL_CONFIGS[config]
    rng = np.random.default_rng(100 + seed)
    x = f32(rng.standard_normal((7, 32)) * 3)
    x, _ = sprinkle(rng, x, 0.15, [np.nan, np.inf, -np.inf])
    a = f32(rng.standard_normal((1 if shared else groups, m + 1)))
    if zero_lead:
        a[:, -1] = 0
    b = f32(rng.standard_normal((groups, n)))
    (y,) = run(test_rational.module([7, 32], groups, m, n, shared), "f",
               x, a, b)
    expected, _ = er.rational_horner(x, a, b)
    scale = np.abs(expected[np.isfinite(expected)]).max()
    er.assert_close(y, expected, rtol=1e-5, atol=1e-6 * scale)
    # Each NaN input gives NaN in its own element, and only there.
    assert np.isnan(y[np.isnan(x)]).all()


LARGE_EXPONENTS = [2, 4, 6, 7, 9, 12, 15, 20, 30, 37]


@pytest.mark.parametrize("config", ["m5n4_g4", "m3n0", "m0n3", "m4n2"])
def test_rational_large_magnitudes(config):
    """|x| from 1e2 to 1e37 and near f32 max. Where no intermediate of
    Horner's rule leaves the f32 range, y is within 1e-5 of float64. Where
    one does (x^m beyond 3.4e38), the spec's f32 evaluation overflows: the
    result is the IEEE f32 value of the same Horner steps (+/-inf when only
    P overflows, +/-0 when only Q does, NaN for inf/inf), never a finite
    number other than that."""
    groups, m, n = {"m5n4_g4": (4, 5, 4), "m3n0": (2, 3, 0),
                    "m0n3": (2, 0, 3), "m4n2": (1, 4, 2)}[config]
    rng = np.random.default_rng(7)
    mags = [10.0 ** e for e in LARGE_EXPONENTS] + [1.7e38, 3.4e38]
    vals = np.array([s * v for v in mags for s in (1, -1)])
    x = f32(np.resize(vals, (3, 16 * groups)))
    a = f32(rng.uniform(0.3, 1.5, (groups, m + 1))
            * rng.choice([-1, 1], (groups, m + 1)))
    b = f32(rng.uniform(0.3, 1.5, (groups, n)))
    (y,) = run(test_rational.module(list(x.shape), groups, m, n), "f",
               x, a, b)
    y64, big = er.rational_horner(x, a, b)
    y32, _ = er.rational_horner(x, a, b, dtype=np.float32)
    fits = big < F32_MAX / 16
    over = big > F32_MAX * 16
    assert (fits | over).all(), "test inputs too close to the f32 boundary"
    # Results that fit: float64 accuracy (f32 result of the exact value,
    # which may underflow to a subnormal or 0).
    er.assert_close(y[fits], np.float32(y64[fits]), rtol=1e-5,
                    atol=er.F32_SUB, what="no overflow")
    # Overflowing intermediates: the f32 IEEE class (and +/-0).
    er.assert_close(y[over], y32[over], rtol=0, atol=0, what="f32 overflow")


@pytest.mark.parametrize("case", ["subnormal_out", "subnormal_in_normal_out",
                                  "subnormal_coefficients"])
def test_rational_denormals(case):
    """Denormal f32 inputs/outputs/coefficients are not flushed to zero:
    1e-5 of float64 (documented: moka keeps IEEE gradual underflow)."""
    rng = np.random.default_rng(11)
    shape = (4, 16)
    if case == "subnormal_coefficients":
        x = f32(rng.uniform(1, 8, shape) * rng.choice([-1, 1], shape))
        a = f32([[0.0, 1.4e-39]] * 2)
        b = np.zeros((2, 0), np.float32)
        m, n = 1, 0
    else:
        x = f32(rng.uniform(1e-39, 1.1e-38, shape)
                * rng.choice([-1, 1], shape))
        assert (np.abs(x) < er.F32_TINY).all() and (x != 0).all()
        a = f32(rng.uniform(-1, 1, (2, 6)))
        a[:, 0] = 0
        a[:, 1] = rng.uniform(0.5, 1, 2) * (
            1e10 if case == "subnormal_in_normal_out" else 1)
        b = f32(rng.uniform(-1, 1, (2, 4)))
        m, n = 5, 4
    (y,) = run(test_rational.module(list(shape), 2, m, n), "f", x, a, b)
    expected, _ = er.rational_horner(x, a, b)
    if case != "subnormal_in_normal_out":
        assert (np.abs(expected) < er.F32_TINY).all()
    er.assert_close(y, expected, rtol=1e-5)


@pytest.mark.parametrize("dtype", ["f16", "bf16"])
def test_rational_low_precision_denormals_and_specials(dtype):
    """f16/bf16 storage: subnormals of the storage type go through exactly
    (identity rational y = x), NaN stays NaN, +/-inf and the largest finite
    values keep their class; results beyond the storage range round to
    +/-inf."""
    if dtype == "f16":
        sub = np.array([6e-8, -6e-8, 3e-6, -5.9e-5, 1e-5, 2e-7], np.float16)
        special = np.array([np.nan, np.inf, -np.inf, 65504, -65504, 0],
                           np.float16)
        x = np.concatenate([sub, special]).reshape(1, 12)
        to64 = lambda v: np.asarray(v).astype(np.float64)  # noqa: E731
    else:
        vals = np.array([1e-40, -1e-40, 5e-39, -9e-39, 2e-45, 1.1e-38,
                         np.nan, np.inf, -np.inf, 3.38e38, -3.38e38, 0],
                        np.float32)
        x = moka.to_bf16_bits(vals).reshape(1, 12)
        to64 = lambda v: moka.from_bf16_bits(v).astype(np.float64)  # noqa
    a = f32([[0, 1]])
    b = np.zeros((1, 0), np.float32)
    (y,) = run(test_rational.module([1, 12], 1, 1, 0, dtype=dtype), "f",
               x, a, b)
    assert y.dtype == x.dtype
    er.assert_close(to64(y), to64(x), rtol=0, what="identity")
    # Doubling: 65504 * 2 and 3.38e38 * 2 overflow the storage type.
    a2 = f32([[0, 2]])
    (y2,) = run(test_rational.module([1, 12], 1, 1, 0, dtype=dtype), "f",
                x, a2, b)
    with np.errstate(all="ignore"):
        doubled = 2 * to64(x)
        if dtype == "f16":
            expected = doubled.astype(np.float16).astype(np.float64)
        else:
            expected = to64(moka.to_bf16_bits(doubled.astype(np.float32)))
    er.assert_close(to64(y2), expected, rtol=0, what="doubled")


@pytest.mark.parametrize("shape,dynamic", [
    ([0, 16], False), ([0, 16], True), ([3, 0, 16], False),
    ([4, 0], True), ([0], True), ([4, 0], False), ([0], False),
], ids=["T0_static", "T0_dynamic", "3x0x16", "C0_dynamic", "rank1_0_dynamic",
        "C0_static", "rank1_0_static"])
def test_rational_empty(shape, dynamic):
    """Empty inputs (no rows, or no channels: C = 0 is divisible by G) give
    an empty result of the same shape, no crash."""
    groups = 1 if shape[-1] == 0 or len(shape) == 1 else 2
    a = f32(np.ones((groups, 6)))
    b = f32(np.ones((groups, 4)))
    x = np.zeros(shape, np.float32)
    (y,) = run(test_rational.module(shape, groups, 5, 4, dynamic=dynamic),
               "f", x, a, b)
    assert y.shape == tuple(shape) and y.dtype == np.float32


# ===========================================================================
# kan.rational_grad


@pytest.mark.parametrize("shared", [False, True])
def test_rational_grad_nan_inf(shared):
    """NaN/inf in x and NaN/inf in dy: dx is special exactly where the
    float64 formulas of semantics §1 are (x = +/-inf gives R/Q = inf/inf =
    NaN); da[g, i] and db[g, j] are NaN/inf exactly for the groups (all
    groups, for a shared numerator's da) whose terms are, e.g. da[g, 0] =
    sum dy / Q stays finite for x = inf (dy / inf = 0) while da[g, i > 0]
    is NaN (inf / inf). Clean groups are unaffected. Documented difference
    of evaluation order: for dy = +/-inf the formula as written gives
    dx = +/-inf, the algebraically equal t R - u S (t = dy/Q, u = dy P/Q^2)
    gives inf - inf = NaN; either non-finite value is accepted there."""
    rng = np.random.default_rng(21)
    groups, shape = 8, (6, 32)
    x = f32(rng.standard_normal(shape) * 2)
    dy = f32(rng.standard_normal(shape))
    x[0, 1] = np.nan        # group 0
    x[1, 6] = np.inf        # group 1
    x[2, 9] = -np.inf       # group 2
    dy[3, 14] = np.nan      # group 3
    dy[4, 17] = np.inf      # group 4
    a = f32(rng.standard_normal((1 if shared else groups, 6)))
    b = f32(rng.standard_normal((groups, 4)))
    dx, da, db = run(test_rational_grad.module(list(shape), groups, 5, 4,
                                               shared, False), "g",
                     x, dy, a, b)
    rdx, rda, rdb = er.rational_grad(x, dy, a, b)
    assert not np.isfinite(dx[4, 17])
    dx[4, 17] = rdx[4, 17]
    er.assert_close(dx, rdx, rtol=1e-5, atol=1e-6, what="dx")
    for name, got, want in (("da", da, rda), ("db", db, rdb)):
        scale = np.abs(want[np.isfinite(want)]).max(initial=1.0)
        er.assert_close(got, want, rtol=1e-5, atol=1e-5 * scale, what=name)
    if not shared:
        assert np.isfinite(da[1, 0]) and np.isnan(da[1, 1:]).all()
        assert np.isfinite(da[5:]).all() and np.isfinite(db[5:]).all()


GRAD_A = f32(np.random.default_rng(22).uniform(0.2, 1, (2, 6)))
GRAD_B = f32(np.random.default_rng(23).uniform(0.2, 1, (2, 4)))


def test_rational_grad_large_magnitudes():
    """Positive x from 1e2 to 1e6 (P, Q and every term within f32; Q^2 is
    not, so it must not be formed): dx, da, db within 1e-5 of float64."""
    rng = np.random.default_rng(24)
    x = f32(10.0 ** rng.uniform(2, 6, (4, 16)))
    dy = f32(rng.uniform(0.5, 1, (4, 16)))
    text = test_rational_grad.module([4, 16], 2, 5, 4, False, False)
    got = run(text, "g", x, dy, GRAD_A, GRAD_B)
    for name, g, w in zip(("dx", "da", "db"), got,
                          er.rational_grad(x, dy, GRAD_A, GRAD_B)):
        er.assert_close(g, w, rtol=1e-5, atol=0, what=name)


def test_rational_grad_overflowing_magnitudes():
    """x from 1e8 to 3e38 (x^5 or Q beyond f32): every output that depends
    on such an element is either correct (1e-5 of float64, inf where the
    float64 value exceeds f32) or non-finite -- never a wrong finite
    number; the other group is exact."""
    rng = np.random.default_rng(24)
    x = f32(10.0 ** rng.uniform(2, 6, (4, 16)))
    dy = f32(rng.uniform(0.5, 1, (4, 16)))
    x[0, :8] = f32([1e8, 1e12, 1e20, 1e30, 1e37, 3e38, 1e9, 2e10])
    text = test_rational_grad.module([4, 16], 2, 5, 4, False, False)
    got = run(text, "g", x, dy, GRAD_A, GRAD_B)
    expected = er.rational_grad(x, dy, GRAD_A, GRAD_B)
    for name, g, w in zip(("dx", "da", "db"), got, expected):
        with np.errstate(over="ignore"):
            w32 = w.astype(np.float32).astype(np.float64)
        ok = ~np.isfinite(g) | np.isclose(g, w32, rtol=1e-5, atol=0)
        assert ok.all(), f"{name}: wrong finite values {g[~ok]} vs {w[~ok]}"
    er.assert_close(got[0][1:], expected[0][1:], rtol=1e-5, what="dx rows")
    er.assert_close(got[1][1], expected[1][1], rtol=1e-5, what="da group 1")
    er.assert_close(got[2][1], expected[2][1], rtol=1e-5, what="db group 1")


def test_rational_grad_denormals():
    """Subnormal x (positive, no cancellation): dx, da and db within 1e-5
    of float64; da[:, 1] = sum dy x / Q is made of subnormal products, so
    flushing to zero would show."""
    rng = np.random.default_rng(23)
    x = f32(rng.uniform(1e-39, 1.1e-38, (2, 8)))
    dy = f32(rng.uniform(0.5, 1, (2, 8)))
    a = f32(rng.uniform(0.2, 1, (1, 6)))
    b = f32(rng.uniform(0.2, 1, (1, 4)))
    got = run(test_rational_grad.module([2, 8], 1, 5, 4, False, False), "g",
              x, dy, a, b)
    for name, g, w in zip(("dx", "da", "db"), got,
                          er.rational_grad(x, dy, a, b)):
        er.assert_close(g, w, rtol=1e-5, atol=1e-43, what=name)
    assert got[1][0, 1] != 0 and got[2][0, 0] != 0


@pytest.mark.parametrize("shape,dynamic", [
    ([0, 16], False), ([0, 16], True), ([4, 0], True), ([4, 0], False),
], ids=["T0_static", "T0_dynamic", "C0_dynamic", "C0_static"])
def test_rational_grad_empty(shape, dynamic):
    """No elements: dx empty, the coefficient gradients (empty sums) 0."""
    groups = 2 if shape[-1] else 1
    a = f32(np.ones((groups, 6)))
    b = f32(np.ones((groups, 4)))
    x = np.zeros(shape, np.float32)
    dx, da, db = run(test_rational_grad.module(shape, groups, 5, 4, False,
                                               dynamic), "g", x, x, a, b)
    assert dx.shape == tuple(shape)
    assert not da.any() and not db.any()


# ===========================================================================
# kan.layer (five bases)


def layer_reference(basis, x, w, bias=None, base=None, num=None, den=None,
                    **params):
    """kan.layer in float64 (moka.reference.kan_layer), with two choices
    made explicit: the rational is Horner's rule (spec), and the Fourier
    argument k x is formed in f32 (the spec computes in f32; cos/sin of
    that f32 number are evaluated exactly), which matters only for |x| so
    large that cos(kx) is ill-conditioned."""
    x64 = np.asarray(x, np.float64)
    with np.errstate(all="ignore"):
        if basis == "rational":
            phi = er.rational_horner(x, num, den)[0]
            y = phi @ np.asarray(w, np.float64).T
        elif basis == "fourier":
            grid = params.get("grid_size", 5)
            k = np.arange(1, grid + 1, dtype=np.float32)
            arg = (f32(x)[..., None] * k).astype(np.float64)
            phi = np.concatenate([np.cos(arg), np.sin(arg)], axis=-1)
            y = np.einsum("...ik,oik->...o", phi, np.asarray(w, np.float64))
        else:
            return ref.kan_layer(basis, x, w, bias, base, **params)
        if base is not None:
            y = y + ref.silu(x64) @ np.asarray(base, np.float64).T
        if bias is not None:
            y = y + np.asarray(bias, np.float64)
    return y


def layer_case(basis, rng, x, cout=5, base=True, params=None, groups=2,
               weight_scale=None):
    """Runs kan.layer on x [T, Cin]; returns (y, float64 reference)."""
    params = params or {}
    t, cin = x.shape
    k = test_kan_layer.num_functions(basis, params)
    wshape = (cout, cin) if basis == "rational" else (cout, cin, k)
    if weight_scale is None:
        w = f32(rng.standard_normal(wshape) / np.sqrt(cin * k))
    else:
        w = f32(rng.uniform(*weight_scale, wshape)
                * rng.choice([-1, 1], wshape))
    bias = None if weight_scale else f32(rng.standard_normal(cout))
    base = base and basis != "rational"
    wb = f32(rng.standard_normal((cout, cin)) / np.sqrt(cin)) if base else None
    num = den = None
    arrays = [x, w] + ([bias] if bias is not None else []) + (
        [wb] if base else [])
    if basis == "rational":
        num = f32(rng.standard_normal((groups, 6)))
        den = f32(rng.standard_normal((groups, 4)))
        arrays += [num, den]
    text = test_kan_layer.layer_module(
        basis, [t], cin, cout, params, bias is not None, base,
        (groups, 5, 4) if basis == "rational" else None)
    (y,) = run(text, "f", *arrays)
    return y, layer_reference(basis, x, w, bias, wb, num, den, **params)


LAYER_CASES = [("rational", {}, False), ("bspline", {}, True),
               ("bspline", {}, False), ("bspline", {"order": 0}, False),
               ("rbf", {}, True), ("rbf", {}, False),
               ("chebyshev", {}, True), ("fourier", {}, True),
               ("fourier", {}, False)]
LAYER_IDS = [f"{b}{'_order0' if p else ''}{'_base' if s else ''}"
             for b, p, s in LAYER_CASES]


@pytest.mark.parametrize("basis,params,base", LAYER_CASES, ids=LAYER_IDS)
def test_layer_nan_input(basis, params, base):
    """A NaN input element makes its whole output row NaN (every output of
    the row depends on it), other rows exact. Documented exception that the
    float64 formula shares: an order-0 B-spline without base branch is an
    indicator, and NaN lies in no interval, so it contributes 0 (as
    efficient-kan's comparisons do)."""
    rng = np.random.default_rng(31)
    x = f32(rng.standard_normal((6, 8)))
    x[2, 5] = np.nan
    y, expected = layer_case(basis, rng, x, base=base, params=params)
    er.assert_close(y, expected, rtol=1e-5, atol=1e-5)
    if params.get("order") == 0 and not base:
        assert np.isfinite(y).all()
    else:
        assert np.isnan(y[2]).all()


@pytest.mark.parametrize("basis,params,base", LAYER_CASES, ids=LAYER_IDS)
def test_layer_infinite_input(basis, params, base):
    """+/-inf inputs give what the float64 evaluation of the basis formula
    gives (IEEE): rational inf/inf = NaN; B-spline (order >= 1) inf * 0 =
    NaN in Cox-de Boor, order 0 contributes 0; RBF exp(-inf) = 0;
    Chebyshev tanh(+/-inf) = +/-1; Fourier cos(inf) = NaN; SiLU(+inf) =
    inf, SiLU(-inf) = -inf / inf = NaN. Other rows exact."""
    rng = np.random.default_rng(32)
    x = f32(rng.standard_normal((5, 8)))
    x[1, 3] = np.inf
    x[3, 0] = -np.inf
    y, expected = layer_case(basis, rng, x, base=base, params=params)
    er.assert_close(y, expected, rtol=1e-5, atol=1e-5)
    er.assert_close(np.delete(y, [1, 3], 0), np.delete(expected, [1, 3], 0),
                    rtol=1e-5, atol=1e-5, what="finite rows")


@pytest.mark.parametrize("basis,params,base", LAYER_CASES[1:],
                         ids=LAYER_IDS[1:])
def test_layer_large_input(basis, params, base):
    """|x| up to 1e35: B-splines are 0 outside the grid, RBFs 0
    (exp(-huge) = 0), Chebyshev +/-1, SiLU(x) = x or -0; Fourier is
    cos/sin of the f32 product k x (ill-conditioned in x, exact for that
    argument). 1e-5 of float64 (norm over the row, which a 1e35 base term
    dominates). The rational basis: test_rational_large_magnitudes."""
    rng = np.random.default_rng(33)
    x = f32(rng.standard_normal((6, 8)))
    x[0, :] = f32([1e30, -1e30, 1e35, -1e35, 1e10, -1e10, 12345.678, 1e20])
    x[3, 2] = f32(-7e20)
    x[5, 6] = f32(3e34)
    y, expected = layer_case(basis, rng, x, base=base, params=params)
    assert np.isfinite(y).all()
    for r in range(x.shape[0]):
        err = er.norm_rel_error(y[r], expected[r])
        assert err <= 1e-5, f"row {r}: {err:.2e}"


@pytest.mark.parametrize("basis,params,base", LAYER_CASES, ids=LAYER_IDS)
def test_layer_denormals(basis, params, base):
    """Subnormal inputs (phi(x) ~ phi(0), SiLU(x) = x/2 subnormal) and
    subnormal weights (every product subnormal, sums near the normal
    range): norm-relative 1e-5 of float64, so flushing to zero would
    show."""
    rng = np.random.default_rng(34)
    x = f32(rng.standard_normal((4, 8)))
    x[1] = f32(rng.uniform(1e-40, 1e-38, 8) * rng.choice([-1, 1], 8))
    y, expected = layer_case(basis, rng, x, base=base, params=params)
    er.assert_close_norm(y, expected, 1e-5, "subnormal inputs")
    y, expected = layer_case(basis, rng, x, base=False, params=params,
                             weight_scale=(2e-39, 1.1e-38))
    assert np.abs(expected).max() < 1e-33
    er.assert_close_norm(y, expected, 1e-5, "subnormal weights")


LAYER_EMPTY = [("rational", "T0_static"), ("rational", "T0_dynamic"),
               ("bspline", "T0_static"), ("rbf", "T0_dynamic"),
               ("chebyshev", "T0_static"), ("fourier", "T0_dynamic"),
               ("rational", "Cin0_dynamic"), ("bspline", "Cin0_dynamic"),
               ("rbf", "Cin0_dynamic"), ("rational", "Cin0_static"),
               ("bspline", "Cin0_static"), ("rational", "Cout0"),
               ("chebyshev", "Cout0")]


@pytest.mark.parametrize("basis,case", LAYER_EMPTY, ids=lambda v: v)
def test_layer_empty(basis, case):
    """No rows: an empty [0, Cout] result. No input channels: every sum is
    empty, y = bias. No output channels: an empty [T, 0] result."""
    t, cin, cout = {"T0": (0, 8, 6), "Cin0": (3, 0, 6),
                    "Cout0": (3, 8, 0)}[case.split("_")[0]]
    dynamic = case.endswith("dynamic")
    k = test_kan_layer.num_functions(basis, {})
    wshape = (cout, cin) if basis == "rational" else (cout, cin, k)
    bias = f32(np.arange(cout) + 1)
    arrays = [np.zeros((t, cin), np.float32), f32(np.ones(wshape)), bias]
    groups = 2 if cin else 1
    if basis == "rational":
        arrays += [f32(np.ones((groups, 6))), f32(np.ones((groups, 4)))]
    text = test_kan_layer.layer_module(
        basis, [t], cin, cout, {}, True, False,
        (groups, 5, 4) if basis == "rational" else None,
        dynamic=dynamic and t == 0)
    if dynamic and cin == 0:
        text = text.replace(f"<{t}x0x", f"<{t}x?x").replace(
            f"<{cout}x0x", f"<{cout}x?x")
    (y,) = run(text, "f", *arrays)
    assert y.shape == (t, cout)
    assert np.array_equal(y, np.broadcast_to(bias, (t, cout)))


# ===========================================================================
# moe.route


def route(logits, k, bias=None, timeout=120, **attrs):
    text = test_moe_route.module(logits.shape[1], k, bias=bias is not None,
                                 **attrs)
    args = (logits,) if bias is None else (logits, bias)
    return run(text, "route", *args, timeout=timeout)


def check_route(w, e, expected_w, expected_e, num_experts):
    assert e.dtype == np.int32
    assert ((e >= 0) & (e < num_experts)).all(), f"out of range: {e}"
    for row in e:
        assert len(set(row.tolist())) == len(row), f"duplicates: {row}"
    assert np.array_equal(e, expected_e), f"{e} vs {expected_e}"
    er.assert_close(w, expected_w, rtol=1e-5, atol=0, what="weights")


@pytest.mark.parametrize("scoring,normalize", [("softmax", True),
                                               ("softmax", False),
                                               ("sigmoid", True),
                                               ("sigmoid", False)])
@pytest.mark.parametrize("magnitude", [1e4, 1e30, 3e38])
def test_route_huge_logits(scoring, normalize, magnitude):
    """Logits of 1e4 .. near f32 max: softmax is max-subtracted (no exp
    overflow), sigmoid saturates to exactly 0 or 1; scores whose float64
    value underflows f32 are 0 and tie, the tie going to the lower index
    (semantics: ties to the lower index) -- so the selection is the float64
    one on f32-rounded keys."""
    rng = np.random.default_rng(41)
    logits = f32(np.clip(rng.standard_normal((64, 8)) * magnitude,
                         -F32_MAX, F32_MAX))
    w, e = route(logits, 3, scoring=scoring, normalize=normalize)
    ew, ee, _ = er.route_f32_keys(logits, 3, scoring, normalize=normalize)
    check_route(w, e, ew, ee, 8)


def test_route_sigmoid_extremes():
    """Sigmoid scores at the bottom of f32: logits in [-88.7, -87.4] give
    subnormal scores, kept to 1e-5 (exp near its overflow, then a
    subnormal quotient); logits <= -104 give 0 (the exact score is below
    half the smallest subnormal); +/-inf logits give exactly 1 and 0."""
    rng = np.random.default_rng(42)
    sub = f32(rng.uniform(-88.7, -87.4, (16, 8)))
    w, e = route(sub, 4, scoring="sigmoid")
    ew, ee = ref.moe_route(sub, 4, scoring="sigmoid")
    assert (np.abs(w) < er.F32_TINY).all() and (w > 0).all()
    check_route(w, e, ew, ee, 8)
    logits = f32(rng.standard_normal((4, 8)))
    logits[0, 3] = np.inf
    logits[1, 0] = -np.inf
    logits[2, :] = -np.inf
    logits[3, :] = f32(-1e4)
    w, e = route(logits, 3, scoring="sigmoid")
    with np.errstate(all="ignore"):
        ew, ee = ref.moe_route(logits, 3, scoring="sigmoid")
    check_route(w, e, ew, ee, 8)
    assert w[0, 0] == 1 and e[0, 0] == 3


def test_route_sigmoid_normalize_all_zero():
    """normalize with every chosen score 0 (sigmoid of -1e4 underflows, in
    f32 and float64 alike): the weights are 0/0 = NaN (IEEE), the experts
    still the lowest indices (a tie at 0), all in range."""
    logits = np.full((3, 8), -1e4, np.float32)
    logits[1, 5] = 0.0
    w, e = route(logits, 2, scoring="sigmoid", normalize=True)
    with np.errstate(all="ignore"):
        ew, ee = ref.moe_route(logits, 2, scoring="sigmoid", normalize=True)
    check_route(w, e, ew, ee, 8)
    assert np.isnan(w[[0, 2]]).all() and np.array_equal(e[0], [0, 1])


def test_route_infinite_bias():
    """bias only selects: +inf bias forces an expert in first, -inf keeps
    one out; the weights are the unbiased scores, finite and exact."""
    rng = np.random.default_rng(43)
    logits = f32(rng.standard_normal((20, 6)))
    bias = np.zeros(6, np.float32)
    bias[4], bias[1] = np.inf, -np.inf
    for scoring in ("softmax", "sigmoid"):
        w, e = route(logits, 3, bias=bias, scoring=scoring, normalize=True)
        ew, ee = ref.moe_route(logits, 3, scoring=scoring, bias=bias,
                               normalize=True)
        check_route(w, e, ew, ee, 6)
        assert (e[:, 0] == 4).all() and not (e == 1).any()
        assert np.isfinite(w).all()


def test_route_neg_inf_softmax_logits():
    """-inf logits in softmax scoring: exp(-inf - max) = 0 exactly, the
    expert can only be chosen after every finite one (tie at 0 to the
    lower index); the others' scores are exact."""
    rng = np.random.default_rng(44)
    logits = f32(rng.standard_normal((10, 8)))
    logits[:, [2, 5]] = -np.inf
    logits[3, [0, 1, 3, 4]] = -np.inf       # two finite experts left
    w, e = route(logits, 3, normalize=True)
    ew, ee = ref.moe_route(logits, 3, normalize=True)
    check_route(w, e, ew, ee, 8)
    assert sorted(e[3, :2].tolist()) == [6, 7]
    assert e[3, 2] == 0 and w[3, 2] == 0


def test_route_denormal_logits_and_bias():
    """Subnormal logits are indistinguishable from 0 after exp (in float64
    too): uniform scores, ties to the lower index; a subnormal bias cannot
    break a tie (0.125 + 1e-40 == 0.125)."""
    rng = np.random.default_rng(45)
    logits = f32(rng.uniform(-1e-38, 1e-38, (5, 8)))
    bias = f32(rng.uniform(1e-40, 1e-39, 8))
    w, e = route(logits, 3, bias=bias, normalize=False)
    ew, ee = ref.moe_route(logits, 3, bias=bias)
    check_route(w, e, ew, ee, 8)
    assert (e == [0, 1, 2]).all()


def route_nan_case(case):
    rng = np.random.default_rng(46)
    logits = f32(rng.standard_normal((6, 8)))
    attrs = {}
    if case == "sigmoid_nan_not_first":
        logits[0, 3] = logits[2, 6] = logits[4, 1] = np.nan
        attrs = dict(scoring="sigmoid")
    elif case == "sigmoid_nan_at_expert0":
        logits[0, 0] = logits[3, 0] = np.nan
        attrs = dict(scoring="sigmoid")
    elif case == "sigmoid_fewer_than_k_numbers":
        logits[1, 2:] = np.nan
        attrs = dict(scoring="sigmoid")
    elif case == "softmax_nan_logit":
        logits[0, 3] = np.nan           # the whole row's scores are NaN
        attrs = dict(normalize=True)
    elif case == "softmax_pos_inf_logit":
        logits[2, 5] = np.inf           # inf - inf = NaN: row NaN (IEEE)
    elif case == "softmax_all_neg_inf":
        logits[4, :] = -np.inf          # -inf - (-inf) = NaN: row NaN
    return logits, attrs


ROUTE_NAN_CASES = ["sigmoid_nan_not_first", "sigmoid_nan_at_expert0",
                   "sigmoid_fewer_than_k_numbers", "softmax_nan_logit",
                   "softmax_pos_inf_logit", "softmax_all_neg_inf"]


@pytest.mark.parametrize("case", ROUTE_NAN_CASES)
def test_route_nan_keys(case):
    """NaN selection keys (a NaN logit; softmax rows with +inf or only
    -inf logits, which IEEE makes NaN). Decision (documented): NaN ranks
    after every number, ties among NaN to the lower index -- the order of
    moka.reference.moe_route (numpy's stable argsort). Every index is in
    [0, E) and distinct per token, the result is deterministic (two runs,
    serial and parallel), the weights are the chosen scores (NaN for NaN
    scores), and tokens without NaN are unaffected."""
    logits, attrs = route_nan_case(case)
    text = test_moe_route.module(8, 3, **attrs)
    w, e = route(logits, 3, **attrs)
    with np.errstate(all="ignore"):
        ew, ee = ref.moe_route(logits, 3, **attrs)
    assert ((e >= 0) & (e < 8)).all(), f"indices out of range: {e}"
    check_route(w, e, ew, ee, 8)
    w2, e2 = run(text, "route", logits)
    w3, e3 = moka.run(text, "route", logits, serial=True, timeout=120)
    assert np.array_equal(e, e2) and np.array_equal(e, e3)
    assert np.array_equal(w, w2, equal_nan=True)
    assert np.array_equal(w, w3, equal_nan=True)


@pytest.mark.parametrize("group_score", ["max", "top2_sum"])
def test_route_grouped_nan_keys(group_score):
    """Group-limited routing with NaN keys: whatever rank a NaN group key
    gets, the experts are in [0, E), distinct, within at most topk_group
    groups, deterministic, and tokens without NaN are exactly the float64
    reference's."""
    rng = np.random.default_rng(47)
    logits = f32(rng.standard_normal((6, 8)))
    logits[0, 0] = np.nan
    logits[1, :] = np.nan
    logits[2, 2:4] = np.nan
    logits[3, 4:] = np.nan
    attrs = dict(scoring="sigmoid", n_group=4, topk_group=2,
                 group_score=group_score)
    w, e = route(logits, 2, timeout=30, **attrs)
    assert ((e >= 0) & (e < 8)).all()
    for row in e:
        assert len(set(row.tolist())) == 2
        assert len(set((row // 2).tolist())) <= 2
    w2, e2 = route(logits, 2, timeout=30, **attrs)
    assert np.array_equal(e, e2)
    clean = [4, 5]
    ew, ee = ref.moe_route(logits[clean], 2, scoring="sigmoid", n_group=4,
                           topk_group=2,
                           group_top2=group_score == "top2_sum")
    check_route(w[clean], e[clean], ew, ee, 8)


@pytest.mark.parametrize("attrs", [
    dict(normalize=True), dict(scoring="sigmoid", n_group=4, topk_group=2,
                               group_score="top2_sum", normalize=True,
                               routed_scaling_factor=2.5)],
    ids=["softmax", "grouped_sigmoid"])
def test_route_empty(attrs):
    """T = 0 tokens: empty [0, k] weights and experts."""
    w, e = route(np.zeros((0, 8), np.float32), 2, **attrs)
    assert w.shape == (0, 2) and e.shape == (0, 2) and e.dtype == np.int32


# ===========================================================================
# moe.dispatch


def dispatch(experts, e, capacity=None):
    cap = f", capacity_factor = {capacity!r} : f64" if capacity else ""
    return run(test_moe_block.DISPATCH.format(k=experts.shape[1], e=e,
                                              e1=e + 1, capacity=cap),
               "dispatch", experts)


@pytest.mark.parametrize("capacity", [None, 1.0])
def test_dispatch_empty(capacity):
    """No tokens: rows and slots empty, every segment empty (offsets 0);
    the capacity ceil(f * 0 * k / E) = 0 drops nothing that exists."""
    rows, offsets, slots = dispatch(np.zeros((0, 2), np.int32), 4, capacity)
    assert rows.shape == (0,) and slots.shape == (0, 2)
    assert offsets.tolist() == [0] * 5


@pytest.mark.parametrize("target", [0, 3])
def test_dispatch_experts_without_tokens(target):
    """Every token to one expert (the first or the last): the other
    segments are empty, offsets exact; with capacity 1.0 (ceil(T k / E))
    the first ones in token order are kept."""
    t, k, e = 9, 1, 4
    experts = np.full((t, k), target, np.int32)
    rows, offsets, slots = dispatch(experts, e)
    assert rows.tolist() == list(range(t))
    assert offsets.tolist() == [0] * (target + 1) + [t] * (e - target)
    assert slots[:, 0].tolist() == list(range(t))
    rows, offsets, slots = dispatch(experts, e, 1.0)
    cap = -(-t * k // e)
    assert rows.tolist() == list(range(cap)) + [-1] * (t - cap)
    assert offsets.tolist() == [0] * (target + 1) + [cap] * (e - target)
    assert slots[:, 0].tolist() == list(range(cap)) + [-1] * (t - cap)


@pytest.mark.parametrize("bad", [-1, 4, 2 ** 31 - 1, -2 ** 31])
def test_dispatch_rejects_out_of_range(bad):
    """An expert index outside [0, E) (what a faulty router could hand
    over) is a run-time error, never an out-of-bounds write."""
    experts = np.array([[0, 1], [2, bad], [3, 0]], np.int32)
    with pytest.raises(moka.MokaError, match="expert index out of range"):
        dispatch(experts, 4)


# ===========================================================================
# moe.experts, moe.shared_experts, moe.combine


EXPERTS = """
func.func @x(%x: tensor<?x8xf32>, %rows: tensor<?xi32>, %off: tensor<5xi32>, %w1: tensor<4x12x8xf32>, %w2: tensor<4x8x12xf32>{w3arg}) -> tensor<?x8xf32> {{
  %y = moe.experts {kind} %x, %rows, %off, %w1, %w2{up} : tensor<?x8xf32>, tensor<?xi32>, tensor<5xi32>, tensor<4x12x8xf32>, tensor<4x8x12xf32> -> tensor<?x8xf32>
  return %y : tensor<?x8xf32>
}}
"""


def experts_ir(kind):
    swiglu = kind == "swiglu"
    return EXPERTS.format(
        kind=kind, w3arg=", %w3: tensor<4x12x8xf32>" if swiglu else "",
        up=" up(%w3 : tensor<4x12x8xf32>)" if swiglu else "")


def experts_case(kind, x, rows, offsets, seed=0, scale=1.0):
    rng = np.random.default_rng(seed)
    w1 = f32(rng.standard_normal((4, 12, 8)) / np.sqrt(8) * scale)
    w3 = f32(rng.standard_normal((4, 12, 8)) / np.sqrt(8) * scale)
    w2 = f32(rng.standard_normal((4, 8, 12)) / np.sqrt(12) * scale)
    args = [x, np.asarray(rows, np.int32), np.asarray(offsets, np.int32),
            w1, w2] + ([w3] if kind == "swiglu" else [])
    (y,) = run(experts_ir(kind), "x", *args)
    expected = er.experts_reference(kind, x, np.asarray(rows), offsets, w1,
                                    w2, w3 if kind == "swiglu" else None)
    return y, expected


@pytest.mark.parametrize("kind", ["swiglu", "gelu"])
def test_experts_nan_and_inf_rows(kind):
    """A NaN input element makes exactly the permuted rows that gather its
    token NaN (every channel, through the down projection); a +/-inf
    element gives what float64 gives (NaN here: inf - inf in the products
    / SiLU(-inf), GELU(-inf) = -inf * 0); other rows exact; rows past the
    last segment zero."""
    rng = np.random.default_rng(51)
    x = f32(rng.standard_normal((6, 8)))
    x[2, 3] = np.nan
    x[4, 0] = np.inf
    x[5, 7] = -np.inf
    rows = [0, 2, 4, 1, 3, 5, 2, -1, -1, -1, -1, -1]
    offsets = [0, 0, 3, 7, 7]     # experts 0 and 3 get no rows
    y, expected = experts_case(kind, x, rows, offsets, seed=52)
    er.assert_close(y, expected, rtol=1e-5, atol=1e-6)
    assert np.isnan(y[[1, 6]]).all()
    assert (y[7:] == 0).all()
    assert np.isfinite(y[[0, 3, 4]]).all()


@pytest.mark.parametrize("kind", ["swiglu", "gelu"])
@pytest.mark.parametrize("scale", [1e3, 1e6, 1e12])
def test_experts_large_inputs(kind, scale):
    """Pre-activations of +/-1e3 .. 1e13: SiLU/GELU saturate to x or 0
    (exp of large arguments 0 or inf, the polynomial erf clamped to +/-1),
    1e-5 of float64 (norm per row), as long as the result fits f32; where
    float64 exceeds f32 max, the result is non-finite."""
    rng = np.random.default_rng(53)
    x = f32(rng.standard_normal((5, 8)) * scale)
    rows = [0, 1, 2, 3, 4, 0, 2, 4, -1, -1]
    offsets = [0, 2, 5, 8, 8]
    y, expected = experts_case(kind, x, rows, offsets, seed=54)
    fits = np.abs(expected).max(axis=1) < F32_MAX / 16
    for r in np.nonzero(fits)[0]:
        err = er.norm_rel_error(y[r], expected[r])
        assert err <= 1e-5, f"row {r}: {err:.2e}"
    assert not np.isfinite(y[~fits & (np.abs(expected).max(axis=1)
                                      > 16 * F32_MAX)]).all(axis=1).any()


@pytest.mark.parametrize("kind", ["swiglu", "gelu"])
def test_experts_denormals(kind):
    """Subnormal inputs: GELU(h) = h/2 + O(h^2) stays subnormal and so does
    its down projection (norm-relative 1e-5, no flush to zero); SwiGLU's
    product of two subnormals underflows to 0 in float64 too."""
    rng = np.random.default_rng(55)
    x = f32(rng.uniform(1e-39, 1e-38, (4, 8)) * rng.choice([-1, 1], (4, 8)))
    rows = [0, 1, 2, 3, 3, 2, -1, -1]
    offsets = [0, 1, 4, 6, 6]
    y, expected = experts_case(kind, x, rows, offsets, seed=56, scale=4.0)
    if kind == "swiglu":
        # silu(g) u ~ 1e-77: 0 in f32, as the f32 rounding of float64.
        assert np.abs(expected).max() < 1e-60 and not y.any()
        return
    assert 0 < np.abs(expected).max() < 1e-35
    assert y.any()
    er.assert_close_norm(y, expected, 1e-5)


def test_kan_experts_specials():
    """GR-KAN experts (moe.experts kan, KAT's block per expert): a NaN or
    +/-inf feature of a token makes its output row NaN (rational(+/-inf) =
    inf/inf), other tokens exact (float64, Horner's rule); subnormal
    features are not flushed (1e-5)."""
    rng = np.random.default_rng(59)
    t = 9
    x = f32(rng.standard_normal((t, 32)))
    x[2, 7] = np.nan
    x[5, 0] = np.inf
    x[6, 31] = -np.inf
    x[8] = f32(rng.uniform(1e-39, 1e-38, 32))
    logits = f32(rng.standard_normal((t, 4)))
    w1 = f32(rng.standard_normal((4, 48, 32)) / 6)
    w2 = f32(rng.standard_normal((4, 32, 48)) / 7)
    a1 = f32(rng.standard_normal((4, 4, 6)) * 0.5)
    b1 = f32(rng.standard_normal((4, 4, 4)) * 0.5)
    a2 = f32(rng.standard_normal((4, 1, 6)) * 0.5)
    b2 = f32(rng.standard_normal((4, 8, 4)) * 0.5)
    (out,) = run(test_moe_block.KAN_MOE, "block", x, logits, w1, w2, a1, b1,
                 a2, b2)
    weights, experts = ref.moe_route(logits, 2, normalize=True)
    expected = np.zeros((t, 32))
    for tok in range(t):
        for s in range(2):
            e = experts[tok, s]
            with np.errstate(all="ignore"):
                h = er.rational_horner(x[tok:tok + 1], a1[e], b1[e])[0] @ \
                    w1[e].astype(np.float64).T
                y = er.rational_horner(h, a2[e], b2[e])[0] @ \
                    w2[e].astype(np.float64).T
            expected[tok] += weights[tok, s] * y[0]
    assert np.isnan(expected[[2, 5, 6]]).all()
    er.assert_close(out, expected, rtol=1e-5, atol=1e-5)


def test_experts_empty():
    """No tokens and no rows: an empty result, whatever the weights."""
    y, _ = experts_case("swiglu", np.zeros((0, 8), np.float32), [], [0] * 5,
                        seed=58)
    assert y.shape == (0, 8)


COMBINE = """
func.func @c(%y: tensor<?x4xf32>, %s: tensor<?x2xi32>, %w: tensor<?x2xf32>, %sh: tensor<?x4xf32>) -> tensor<?x4xf32> {
  %o = moe.combine %y, %s, %w shared(%sh : tensor<?x4xf32>) : tensor<?x4xf32>, tensor<?x2xi32>, tensor<?x2xf32> -> tensor<?x4xf32>
  return %o : tensor<?x4xf32>
}
"""


def combine_reference(y, slots, w, shared):
    out = np.asarray(shared, np.float64).copy()
    with np.errstate(all="ignore"):
        for t in range(slots.shape[0]):
            for s in range(slots.shape[1]):
                if slots[t, s] >= 0:
                    out[t] += float(w[t, s]) * y[slots[t, s]].astype(
                        np.float64)
    return out


def test_combine_specials():
    """A dropped slot (-1) contributes nothing, even with a NaN or inf
    weight (the sum is over kept slots); a NaN expert row reaches exactly
    the tokens whose kept slots point at it; weight 0 times an infinite
    row is NaN (IEEE 0 * inf); rows nobody points at are never read."""
    rng = np.random.default_rng(61)
    y = f32(rng.standard_normal((8, 4)))
    y[3] = np.nan
    y[5, 2] = np.inf
    y[7] = np.nan                     # past the last segment, unused
    slots = np.array([[0, -1], [1, 2], [-1, -1], [3, 4], [6, 5], [5, 0]],
                     np.int32)
    w = f32(rng.uniform(0.1, 1, (6, 2)))
    w[0, 1] = np.nan
    w[2] = [np.inf, np.nan]
    w[5, 0] = 0.0
    shared = f32(rng.standard_normal((6, 4)))
    (out,) = run(COMBINE, "c", y, slots, w, shared)
    expected = combine_reference(y, slots, w, shared)
    er.assert_close(out, expected, rtol=1e-6, atol=1e-6)
    assert np.isfinite(out[[0, 1, 2]]).all() and np.isnan(out[3]).all()
    assert np.isnan(out[5, 2]) and np.isposinf(out[4, 2]) == (w[4, 1] > 0)


def test_combine_empty():
    (out,) = run(COMBINE, "c", np.zeros((0, 4), np.float32),
                 np.zeros((0, 2), np.int32), np.zeros((0, 2), np.float32),
                 np.zeros((0, 4), np.float32))
    assert out.shape == (0, 4)


def test_shared_experts_gated_extremes():
    """Qwen2-style gated shared expert: a NaN token row is NaN and only it;
    gate logits of +/-1e4 saturate sigmoid to exactly 1 / 0 (no exp
    overflow into NaN); large inputs 1e-5 of float64; T = 0 empty."""
    rng = np.random.default_rng(62)
    x = f32(rng.standard_normal((7, 16)))
    x[1, 4] = np.nan
    s1, s3 = f32(rng.standard_normal((2, 20, 16)) / 4)
    s2 = f32(rng.standard_normal((16, 20)) / 4)
    g = f32(rng.standard_normal((1, 16)))
    x[3] = g[0] * f32(1e4 / (g @ g.T)[0, 0])          # gate logit +1e4
    x[4] = -x[3]                                       # gate logit -1e4
    x[5] *= f32(1e3)

    def expected_of(xx):
        xx = np.asarray(xx, np.float64)
        with np.errstate(all="ignore"):
            h = er.silu(xx @ s1.T.astype(np.float64)) * (xx @ s3.T)
            gate = 1.0 / (1.0 + np.exp(-(xx @ g.T.astype(np.float64))))
            return (h @ s2.T.astype(np.float64)) * gate
    (out,) = run(test_moe_block.GATED_SHARED, "shared", x, s1, s2, s3, g)
    expected = expected_of(x)
    assert np.isnan(out[1]).all() and np.isfinite(np.delete(out, 1, 0)).all()
    for r in [0, 2, 3, 4, 5, 6]:
        err = er.norm_rel_error(out[r], expected[r])
        assert err <= 1e-5, f"row {r}: {err:.2e}"
    assert (out[4] == 0).all()
    (out,) = run(test_moe_block.GATED_SHARED, "shared",
                 np.zeros((0, 16), np.float32), s1, s2, s3, g)
    assert out.shape == (0, 16)


# ===========================================================================
# Whole MoE blocks (route -> dispatch -> experts -> combine) and moe.layer


def layer_text(d, e, f, attrs, bias=False):
    extra_args = f", %b: tensor<{e}xf32>" if bias else ""
    extra = f" bias(%b : tensor<{e}xf32>)" if bias else ""
    return test_moe_block.LAYER.format(d=d, e=e, f=f, extra_args=extra_args,
                                       extra=extra, attrs=attrs)


@pytest.mark.parametrize("special", [np.nan, np.inf])
def test_block_special_token_isolated(special):
    """A NaN (or inf) feature of one token: that token's output row is NaN,
    every other token's output is exactly the float64 block's on the other
    tokens (experts run on rows independently; the router is per token)."""
    rng = np.random.default_rng(71)
    d, e, f, k, t = 16, 4, 24, 2, 12
    x, wg, w1, w2, w3 = test_moe_block.random_block(rng, t, d, e, f)
    x[3, 5] = special
    out, experts = run(test_moe_block.block(d, e, f, k), "block",
                       x, wg, w1, w2, w3)
    assert ((experts >= 0) & (experts < e)).all()
    assert np.isnan(out[3]).all()
    expected, _ = test_moe_block.mixtral_block(np.delete(x, 3, 0), wg, w1,
                                               w2, w3, k)
    assert ref.relative_error(np.delete(out, 3, 0), expected) <= 1e-5


@pytest.mark.parametrize("variant", ["block", "block_capacity", "layer",
                                     "layer_bias_sigmoid"])
def test_block_empty(variant):
    """T = 0: an empty [0, d] output (and [0, k] experts), for the written
    out block, with capacity, and for the composite moe.layer."""
    rng = np.random.default_rng(72)
    d, e, f, k = 16, 4, 24, 2
    x, wg, w1, w2, w3 = test_moe_block.random_block(rng, 0, d, e, f)
    if variant.startswith("block"):
        cap = 1.0 if variant == "block_capacity" else None
        out, experts = run(test_moe_block.block(d, e, f, k, cap), "block",
                           x, wg, w1, w2, w3)
        assert experts.shape == (0, k)
    else:
        bias = variant == "layer_bias_sigmoid"
        attrs = ("k = 2 : i64, normalize = true" + (
            ", scoring = #moe<scoring sigmoid>" if bias else ""))
        args = [x, np.ascontiguousarray(wg.T), w1, w2, w3] + (
            [f32(rng.standard_normal(e))] if bias else [])
        (out,) = run(layer_text(d, e, f, attrs, bias), "layer", *args)
    assert out.shape == (0, d)


@pytest.mark.parametrize("tokens,capacity", [(1, None), (2, None), (3, 1.0),
                                             (1, 0.25)])
def test_block_experts_without_tokens(tokens, capacity):
    """Few tokens over 8 experts (k = 1 or 2): most experts get zero rows;
    the output is still exactly the float64 block (with token-order
    capacity dropping)."""
    rng = np.random.default_rng(73 + tokens)
    d, e, f, k = 16, 8, 24, 2 if tokens > 1 else 1
    x, wg, w1, w2, w3 = test_moe_block.random_block(rng, tokens, d, e, f)
    out, experts = run(test_moe_block.block(d, e, f, k, capacity), "block",
                       x, wg, w1, w2, w3)
    expected, ee = test_moe_block.mixtral_block(x, wg, w1, w2, w3, k,
                                                capacity)
    assert np.array_equal(experts, ee)
    assert ref.relative_error(out, expected) <= 1e-5


@pytest.mark.parametrize("magnitude", [1e4, 1e30])
def test_block_huge_router_logits(magnitude):
    """Router logits of 1e4 .. 1e30 (given as the block's input): softmax
    is one-hot in f32, the zero-weight slots tie and go to the lower index,
    and contribute exactly 0; the output equals the float64 block with
    f32-rounded routing (1e-5)."""
    rng = np.random.default_rng(74)
    t = 20
    x = f32(rng.standard_normal((t, 32)))
    logits = f32(rng.standard_normal((t, 4)) * magnitude)
    w1 = f32(rng.standard_normal((4, 40, 32)) / 6)
    w2 = f32(rng.standard_normal((4, 32, 40)) / 6)
    sh = f32(rng.standard_normal((t, 32)))
    (out,) = run(test_moe_block.GELU_BLOCK, "block", x, logits, w1, w2, sh)
    weights, experts, _ = er.route_f32_keys(logits, 2)
    expected = sh.astype(np.float64)
    for tok in range(t):
        for s in range(2):
            e = experts[tok, s]
            expected[tok] += weights[tok, s] * er.expert_mlp(
                "gelu", x[tok:tok + 1], w1[e], w2[e])[0]
    assert ref.relative_error(out, expected) <= 1e-5


# ===========================================================================
# kv: append / quantization


def fill(t, k, v):
    return run(test_kv.fill_ir(t, k.shape[2]), "fill", k, v)


def as_f64(a, fmt):
    if fmt == "bf16":
        return moka.from_bf16_bits(a).astype(np.float64)
    return np.asarray(a).astype(np.float64)


SPECIAL_VALUES = [np.nan, np.inf, -np.inf, 1e30, -1e30, 3.4e38, 65504.0,
                  65520.0, 1e5, 1e-40, -1e-40, 1e-45, 6e-8, 3e-8, 1e-5,
                  1.1754942e-38]


@pytest.mark.parametrize("fmt", ["f32", "f16", "bf16"])
def test_kv_append_float_specials(fmt):
    """A float cache stores keys and values converted to its element type
    by IEEE round to nearest even: NaN stays NaN, +/-inf stay, values
    beyond the f16/bf16 range become +/-inf (65520 -> inf in f16, 3.4e38
    -> inf in bf16), subnormals of the target type are kept (f16: 6e-8),
    below half its smallest subnormal they become 0; f32 is bit-exact."""
    t = KVCacheType((1, 2, 16, 16), fmt)
    rng = np.random.default_rng(81)
    k = f32(np.stack([np.resize(rng.permutation(SPECIAL_VALUES), (3, 16))
                      for _ in range(2)])[None])
    v = f32(k[..., ::-1])
    got = fill(t, k, v)
    with np.errstate(all="ignore"):
        expected = kv_append(kv_empty(t), t, k, v)
    for name, a, b in zip("kv", got[:2], expected[:2]):
        er.assert_close(as_f64(a[:, :, :3], fmt), as_f64(b[:, :, :3], fmt),
                        rtol=0, what=name)
    assert int(got[2]) == 3


@pytest.mark.parametrize("fmt", ["i8", "i4", "i2"])
def test_kv_quantize_denormals_and_large_ranges(fmt):
    """Key/value groups of subnormals (scale = range / (2^b - 1) is
    subnormal too) and groups spanning +/-1e38 (range 2e38, still finite):
    codes, scales, minima and window bit-exact with the f32 reference
    (moka does not flush subnormals)."""
    t = test_kv.quantized((1, 2, 32, 16), fmt, 4, 8, 8)
    rng = np.random.default_rng(82)
    k = f32(rng.standard_normal((1, 2, 20, 16)) * 1e-39)
    v = f32(rng.standard_normal((1, 2, 20, 16)) * 1e-39)
    k[0, 1, :4] = f32(rng.uniform(-1e38, 1e38, (4, 16)))
    v[0, 1, 5] = f32(rng.uniform(-1e38, 1e38, 16))
    got = fill(t, k, v)
    test_kv.assert_storage_equal(got, kv_append(kv_empty(t), t, k, v), t)


def nonfinite_groups(fmt):
    """A quantized cache (one key group of 4 tokens compressed) whose key
    channels 0 (NaN), 2 (+inf), 4 (-inf) and 6 (both infinities) and one
    value group of token 1 hold non-finite values; channels 1, 3, 5, 7
    (sharing bytes with them under int4/int2 packing) are finite."""
    t = test_kv.quantized((1, 1, 32, 8), fmt, 4, 4, 8)
    rng = np.random.default_rng(83)
    k = f32(rng.standard_normal((1, 1, 12, 8)))
    v = f32(rng.standard_normal((1, 1, 12, 8)))
    k[0, 0, 1, 0] = np.nan
    k[0, 0, 2, 2] = np.inf
    k[0, 0, 0, 4] = -np.inf
    k[0, 0, 3, 6], k[0, 0, 1, 6] = np.inf, -np.inf
    v[0, 0, 1, 1] = np.nan
    v[0, 0, 2, 5] = np.inf
    return t, k, v


@pytest.mark.parametrize("fmt", [
"i8", "i4", "i2"])
def test_kv_quantize_nonfinite_group(fmt):
    """Quantizing a group that holds NaN or +/-inf (docs/kv.md gives them
    no meaning). Decision, from the spec's f32 formulas with IEEE min/max
    propagating NaN: the group's statistics are NaN (NaN inside), or scale
    = +inf with min finite (+inf inside) or min = -inf; bit-exact with the
    reference. The codes of such a group's elements are unspecified (any
    value in [0, 2^b - 1]). Every other group, channel and token --
    including channels packed into the same byte -- is bit-exact, and the
    window is stored as given."""
    t, k, v = nonfinite_groups(fmt)
    got = fill(t, k, v)
    with np.errstate(all="ignore"):
        expected = kv_append(kv_empty(t), t, k, v)
    names = [n for n, _, _ in t.storage_types()]
    gv, ev = kv_valid(got, t), kv_valid(expected, t)
    for name in ("kscale", "kmin", "vscale", "vmin", "wk", "wv"):
        i = names.index(name)
        assert np.array_equal(gv[i], ev[i], equal_nan=True), name
    kcodes = kv_unpack(gv[0], t.bits, 8)
    kexp = kv_unpack(ev[0], t.bits, 8)
    finite_channels = [1, 3, 5, 7]
    assert np.array_equal(kcodes[..., finite_channels],
                          kexp[..., finite_channels]), "key codes"
    vcodes = kv_unpack(gv[3], t.bits, 8)
    vexp = kv_unpack(ev[3], t.bits, 8)
    clean = np.ones(vcodes.shape, bool)
    clean[0, 0, 1, 0:4] = clean[0, 0, 2, 4:8] = False
    assert np.array_equal(vcodes[clean], vexp[clean]), "value codes"


# ===========================================================================
# kv.decode_attention


def attend(t, q, storage, scale=None):
    (o,) = run(test_kv.attend_ir(t, q.shape[1], scale), "attend", q,
               *storage)
    return o


def cache_with(fmt, n, rng, s=64, d=16, h=2):
    if fmt in ("i8", "i4", "i2"):
        t = test_kv.quantized((1, h, s, d), fmt, 8, 8, 16)
    else:
        t = KVCacheType((1, h, s, d), fmt)
    k, v = test_kv.random_kv(rng, 1, h, n, d)
    return t, k, v


def decode_expected(q, storage, t, scale=None):
    with np.errstate(all="ignore"):
        return kv_attention(q, storage, t, scale=scale)


@pytest.mark.parametrize("fmt", ["f32", "f16", "i4"])
@pytest.mark.parametrize("special", [
    "nan_query", "inf_query", "nan_key_window", "nan_key_compressed",
    "pos_inf_score", "nan_value_window", "nan_value_compressed", "neg_inf_score_one_token"])
def test_decode_specials(fmt, special):
    """Where a special value reaches the output of decode attention
    (float64 max-subtracted softmax, IEEE): a NaN in query head h makes
    head h's output NaN (all channels); an inf in it gives +/-inf scores
    and so NaN (inf - inf); a NaN key (or a NaN key statistic) makes every
    query head of its kv head NaN; a +inf score gives NaN (inf - inf); a
    NaN value in channel c makes channel c NaN (a quantized compressed
    token: its whole value group) for that kv head's query heads, other
    channels exact; a -inf score just removes its token. Unaffected heads
    are exact (1e-5)."""
    rng = np.random.default_rng(91)
    n = 50                      # quantized: 40 compressed + 10 window
    t, k, v = cache_with(fmt, n, rng)
    j = 45 if t.quantized else 7    # a window token: finite statistics
    hq = 4
    q = f32(rng.standard_normal((1, hq, 16)))
    if special == "nan_query":
        q[0, 1, 5] = np.nan
    elif special == "inf_query":
        q[0, 2, 0] = np.inf
    elif special.startswith("nan_key"):
        k[0, 0, 45 if special.endswith("window") else 3, 2] = np.nan
    elif special == "pos_inf_score":
        k[0, 1, j, 4] = np.inf
        q[0, 2:, 4] = np.abs(q[0, 2:, 4]) + 0.1     # both heads of kv 1
    elif special.startswith("nan_value"):
        v[0, 1, 45 if special.endswith("window") else 3, 5] = np.nan
    elif special == "neg_inf_score_one_token":
        k[0, 0, j, 4] = np.inf
        q[0, :2, 4] = -np.abs(q[0, :2, 4]) - 0.1    # -inf score, heads 0, 1
    with np.errstate(all="ignore"):
        storage = kv_append(kv_empty(t), t, k, v)
    o = attend(t, q, storage)
    expected = decode_expected(q, storage, t)
    assert np.isnan(expected).any() or special.startswith("neg")
    er.assert_close(o, expected, rtol=1e-5, atol=1e-5 * np.nanmax(
        np.abs(expected)))


@pytest.mark.parametrize("fmt", ["f32", "i8"])
@pytest.mark.parametrize("where,n", [
    ("first_chunk", 1100), ("last_chunk", 1100), ("all_but_first", 1100),
    ("all_but_first", 300), ("all_tokens", 1100), ("all_tokens", 300)])
def test_decode_neg_inf_scores(fmt, where, n):
    """-inf scores (a -inf key channel against a positive query entry)
    take their tokens out of the softmax; when a whole 512-token chunk is
    -inf the output is the attention over the other chunks (float64). All
    tokens -inf is 0/0: undefined; decision (documented): the output is
    either NaN (the IEEE formula) or 0 (the 'no tokens' convention), never
    another number."""
    rng = np.random.default_rng(92)
    if fmt == "f32":
        t = KVCacheType((1, 2, 2048, 16), "f32")
    else:
        t = test_kv.quantized((1, 2, 2048, 16), "i8", 32, 16, 128)
    k, v = test_kv.random_kv(rng, 1, 2, n, 16)
    q = f32(rng.standard_normal((1, 4, 16)))
    q[0, :2, 0] = np.abs(q[0, :2, 0]) + 0.5
    masked = {"first_chunk": slice(0, 512), "last_chunk": slice(1024, n),
              "all_but_first": slice(1 if fmt == "f32" else 32, n),
              "all_tokens": slice(0, n)}[where]
    if fmt == "f32":
        k[0, 0, masked, 0] = -np.inf
        storage = kv_append(kv_empty(t), t, k, v)
    else:
        # Quantized: -inf keys would make their statistics non-finite;
        # write -inf into the dequantization minimum of the key groups
        # instead (x_hat = code * scale + min = -inf), window keys directly.
        storage = kv_append(kv_empty(t), t, k, v)
        nc = t.compressed(n)
        lo, hi = masked.start, masked.stop
        for g in range(nc // 32):
            if lo <= g * 32 and (g + 1) * 32 <= hi:
                storage[2][0, 0, g, 0] = -np.inf
            else:
                assert not (lo < (g + 1) * 32 and g * 32 < hi)
        for j in range(max(lo, nc), hi):
            storage[6][0, 0, j - nc, 0] = -np.inf
    o = attend(t, q, storage)
    expected = decode_expected(q, storage, t)
    er.assert_close(o[0, 2:], expected[0, 2:], rtol=1e-5, atol=1e-6,
                    what="other kv head")
    if where == "all_tokens":
        assert np.isnan(o[0, :2]).all() or (o[0, :2] == 0).all()
    else:
        er.assert_close(o, expected, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("fmt", ["f32", "i8", "i4"])
@pytest.mark.parametrize("n", [300, 1300])
def test_decode_huge_scores(fmt, n):
    """Scores up to ~1e5 that overflow exp without max-subtraction
    (exp(89) is already inf in f32): integer queries and keys and scale 1
    make every score exact in f32 (quantized key groups span exactly 2^b - 1
    integers, so scale 1 and x_hat exact), so the only errors are exp and
    the sums: 1e-5 of float64, across the 512-token chunks' merge."""
    rng = np.random.default_rng(93 + n)
    d, s = 16, 2048
    if fmt == "f32":
        t = KVCacheType((1, 2, s, d), "f32")
    else:
        t = test_kv.quantized((1, 2, s, d), fmt, 32, 16, 128)
    if t.quantized:
        levels = 2 ** t.bits - 1
        base = rng.integers(-300, 300, (1, 2, n // 32 + 1, 1, d))
        k = base + rng.integers(0, levels + 1, (1, 2, n // 32 + 1, 32, d))
        k[:, :, :, 0] = base[:, :, :, 0]
        k[:, :, :, 1] = base[:, :, :, 0] + levels
        k = f32(k.reshape(1, 2, -1, d)[:, :, :n])
    else:
        k = f32(rng.integers(-300, 300, (1, 2, n, d)))
    v = f32(rng.standard_normal((1, 2, n, d)))
    q = f32(rng.integers(-20, 21, (1, 4, d)))
    storage = kv_append(kv_empty(t), t, k, v)
    if t.quantized:
        assert (storage[1][:, :, :t.compressed(n) // 32] == 1).all()
    o = attend(t, q, storage, scale=1.0)
    expected = kv_attention(q, storage, t, scale=1.0)
    scores = np.einsum("bhd,bhnd->bhn", q.astype(np.float64),
                       np.repeat(kv_dequantized_keys(storage, t), 2, 1))
    assert np.abs(scores).max() > 1e3
    assert test_kv.rel_err(o, expected) <= 1e-5


def kv_dequantized_keys(storage, t):
    return ref.kv_dequantized(storage, t)[0]


@pytest.mark.parametrize("fmt", ["f32", "f16", "bf16", "i8", "i4", "i2"])
def test_decode_ignores_storage_beyond_length(fmt):
    """Only the valid regions of the storage are defined (docs/kv.md):
    NaN/inf garbage in rows past n, codes/statistics past n_c, window rows
    past w must not reach the output (no masked multiply by 0)."""
    rng = np.random.default_rng(94)
    t, k, v = cache_with(fmt, 45, rng)
    storage = kv_append(kv_empty(t), t, k, v)
    q = f32(rng.standard_normal((1, 4, 16)))
    expected = kv_attention(q, storage, t)
    n = 45
    if t.quantized:
        nc, w = t.compressed(n), t.windowed(n)
        junk = np.nan
        storage[0][:, :, nc:] = -1
        storage[3][:, :, nc:] = -1
        storage[1][:, :, nc // 8:] = junk
        storage[2][:, :, nc // 8:] = np.inf
        storage[4][:, :, nc:] = junk
        storage[5][:, :, nc:] = -np.inf
        storage[6][:, :, w:] = junk
        storage[7][:, :, w:] = np.inf
    else:
        bad = {"f32": np.nan, "f16": np.nan,
               "bf16": moka.to_bf16_bits(f32([np.nan]))[0]}[fmt]
        storage[0][:, :, n:] = bad
        storage[1][:, :, n:] = bad
    o = attend(t, q, storage)
    assert test_kv.rel_err(o, expected) <= 1e-5


@pytest.mark.parametrize("fmt", ["f32", "i4"])
def test_decode_empty_cache(fmt):
    """n = 0: the output is zero (docs/kv.md), whatever the query (NaN
    included: no output depends on it) and whatever the undefined storage
    holds."""
    rng = np.random.default_rng(95)
    t, _, _ = cache_with(fmt, 0, rng)
    storage = kv_empty(t)
    for a in storage[:-1]:
        if a.dtype.kind == "f":
            a[...] = np.nan
    q = f32(rng.standard_normal((1, 4, 16)))
    q[0, 0, 0] = np.nan
    o = attend(t, q, storage)
    assert o.shape == (1, 4, 16) and (o == 0).all()


def latent_case(up, rng):
    """(text, q, extra operands, cache type) of a latent decode."""
    t = KVCacheType((1, 2, 64, 16), "f32", rank=8)
    rng = np.random.default_rng(96)
    uk = f32(rng.standard_normal((8, 2, 16)) / np.sqrt(8))
    uv = f32(rng.standard_normal((8, 2, 16)) / np.sqrt(8))
    if up:
        text = test_kv.latent_attend_ir(t)
        q = f32(rng.standard_normal((1, 2, 16)))
        extra = [uk, uv]
    else:
        tq = test_kv.tensor(1, 3, 8)
        text = f"""
func.func @attend(%q: {tq}, %c: {t.mlir}) -> {tq} {{
  %o = kv.decode_attention %q, %c : {tq}, {t.mlir} -> {tq}
  return %o : {tq}
}}
"""
        q = f32(rng.standard_normal((1, 3, 8)))
        extra = []
        uk = uv = None
    return text, q, extra, t, uk, uv


@pytest.mark.parametrize("up", [True, False])
def test_decode_latent_empty(up):
    """Latent caches (with and without up-projections): n = 0 gives zero,
    even with NaN in the undefined storage."""
    text, q, extra, t, _, _ = latent_case(up, np.random.default_rng(96))
    storage = kv_empty(t)
    storage[0][...] = np.nan
    (o,) = run(text, "attend", q, *storage, *extra)
    assert (o == 0).all()


@pytest.mark.parametrize("up", [True, False])
def test_decode_latent_nan_token(up):
    """A NaN in the latent of one token makes every head's output NaN
    (each head attends to every token, through keys and values); the same
    cache without it is exact."""
    text, q, extra, t, uk, uv = latent_case(up, np.random.default_rng(96))
    c = f32(np.random.default_rng(97).standard_normal((1, 20, 8)))
    storage = kv_append(kv_empty(t), t, c)
    (o,) = run(text, "attend", q, *storage, *extra)
    assert test_kv.rel_err(o, kv_attention(q, storage, t, up_k=uk,
                                           up_v=uv)) <= 1e-5
    storage[0][0, 11, 3] = np.nan
    (o,) = run(text, "attend", q, *storage, *extra)
    assert np.isnan(o).all()


@pytest.mark.parametrize("fmt", ["f32", "i8", "i4"])
def test_decode_denormal_cache(fmt):
    """Subnormal keys and values (quantized: subnormal scales and minima):
    the output, a weighted mean of subnormal values, is subnormal and
    within 1e-5 of float64 (no flush to zero)."""
    rng = np.random.default_rng(97)
    t, k, v = cache_with(fmt, 40, rng)
    k, v = f32(k * 1e-39), f32(v * 2e-39)
    storage = kv_append(kv_empty(t), t, k, v)
    q = f32(rng.standard_normal((1, 4, 16)) * 1e38)
    o = attend(t, q, storage)
    expected = kv_attention(q, storage, t)
    assert np.abs(expected).max() < er.F32_TINY
    assert test_kv.rel_err(o, expected) <= 1e-5


@pytest.mark.parametrize("magnitude", [
    1e34, pytest.param(3e38, marks=pytest.mark.xfail(strict=True, reason=(
        "LIMITATION (overflow, not a wrong finite number): the per-chunk "
        "unnormalized sum of e^(s - m) v over up to 512 tokens overflows "
        "f32 for |v| > FLT_MAX / 512, giving inf where the softmax average "
        "of values <= 3e38 is <= 3e38")))])
def test_decode_huge_values(magnitude):
    """Values near the top of f32: the output is a convex combination of
    them, so it is representable; 1e-5 of float64."""
    rng = np.random.default_rng(98)
    t = KVCacheType((1, 2, 1024, 16), "f32")
    k, _ = test_kv.random_kv(rng, 1, 2, 600, 16)
    v = f32(rng.uniform(0.5, 1, (1, 2, 600, 16)) * magnitude)
    storage = kv_append(kv_empty(t), t, k, v)
    q = f32(rng.standard_normal((1, 4, 16)) * 0.01)
    o = attend(t, q, storage)
    expected = kv_attention(q, storage, t)
    assert np.isfinite(o).all()
    assert test_kv.rel_err(o, expected) <= 1e-5


# ===========================================================================
# kv.prefill_attention


def prefill(q, k, v, causal=True, static=False):
    b, hq, t, d = q.shape
    text = test_kv_prefill.ir(b, hq, k.shape[1], d, "f32", causal)
    if static:
        text = text.replace("x?x", f"x{t}x")
    (o,) = run(text, "f", q, k, v)
    return o


@pytest.mark.parametrize("causal", [True, False])
@pytest.mark.parametrize("static", [False, True])
def test_prefill_empty(causal, static):
    """T = 0: an empty [B, H_q, 0, D] output."""
    z = np.zeros
    o = prefill(z((1, 4, 0, 16), np.float32), z((1, 2, 0, 16), np.float32),
                z((1, 2, 0, 16), np.float32), causal, static)
    assert o.shape == (1, 4, 0, 16)


@pytest.mark.parametrize("special,causal", [
    ("nan_query", True), ("nan_query", False), ("nan_key", True),
    ("nan_key", False), ("nan_value", True), ("nan_value", False), ("neg_inf_key", True), ("neg_inf_key", False)])
def test_prefill_specials(special, causal):
    """Exact reach of a special value (float64, softmax over the allowed
    keys only): NaN in q[h, i] -> row i of head h NaN; NaN in k[hk, j] ->
    rows i >= j (causal; all rows otherwise) of hk's query heads NaN, rows
    i < j exact; NaN in v[hk, j, c] -> channel c of those rows; a -inf key
    channel against positive query entries removes those keys (key 0 stays,
    so every row has one)."""
    rng = np.random.default_rng(101)
    t = 8
    q = f32(rng.standard_normal((1, 4, t, 16)))
    k = f32(rng.standard_normal((1, 2, t, 16)))
    v = f32(rng.standard_normal((1, 2, t, 16)))
    if special == "nan_query":
        q[0, 2, 3, 0] = np.nan
    elif special == "nan_key":
        k[0, 0, 5, 3] = np.nan
    elif special == "nan_value":
        v[0, 1, 5, 3] = np.nan
    else:
        k[0, 0, 1:, 0] = -np.inf
        q[0, :2, :, 0] = np.abs(q[0, :2, :, 0]) + 0.1
    o = prefill(q, k, v, causal)
    expected = er.causal_attention(q, k, v, causal)
    er.assert_close(o, expected, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("causal", [True, False])
def test_prefill_huge_and_denormal(causal):
    """Scores up to ~1e5 (integer q and k, exact in f32; exp would
    overflow without max-subtraction) and subnormal values: 1e-5 of
    float64."""
    rng = np.random.default_rng(102)
    t = 37
    q = f32(rng.integers(-20, 21, (1, 4, t, 16)) * 4.0)   # scale 1/4 exact
    k = f32(rng.integers(-300, 300, (1, 2, t, 16)))
    v = f32(rng.standard_normal((1, 2, t, 16)))
    o = prefill(q, k, v, causal)
    expected = er.causal_attention(q, k, v, causal)
    assert np.abs(q[0, 0] @ k[0, 0].T).max() > 1e4
    assert np.abs(o - expected).max() / np.abs(expected).max() <= 1e-5
    vs = f32(v * 1e-39)
    o = prefill(q * f32(1e-3), k, vs, causal)
    expected = er.causal_attention(q * f32(1e-3), k, vs, causal)
    assert np.abs(expected).max() < er.F32_TINY
    assert np.abs(o - expected).max() / np.abs(expected).max() <= 1e-5
