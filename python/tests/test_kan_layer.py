"""kan.layer over every basis, compiled by moka and run from Python, against
float64 references (efficient-kan, FastKAN, ChebyKAN, FourierKAN and KAT
formulations) on fresh random inputs, shapes and parameters."""

import numpy as np
import pytest

import moka
from moka.reference import kan_layer, relative_error

BASES = ["rational", "bspline", "rbf", "chebyshev", "fourier"]


def num_functions(basis, p):
    return {"rational": 1,
            "bspline": p.get("grid_size", 5) + p.get("order", 3),
            "rbf": p.get("grid_size", 8),
            "chebyshev": p.get("degree", 3) + 1,
            "fourier": 2 * p.get("grid_size", 5)}[basis]


def attr_text(params):
    items = []
    for key, value in params.items():
        if isinstance(value, float):
            items.append(f"{key} = {value!r} : f64")
        else:
            items.append(f"{key} = {value} : i64")
    return "{" + ", ".join(items) + "}" if items else ""


def layer_module(basis, lead, cin, cout, params, bias, base, groups=None,
                 dynamic=False, dtype="f32"):
    """Text of a function @f(x, w[, bias][, base][, num, den]) -> y."""
    dims = ["?" if dynamic else str(d) for d in lead]
    xt = f"tensor<{'x'.join(dims + [str(cin)])}x{dtype}>"
    yt = f"tensor<{'x'.join(dims + [str(cout)])}x{dtype}>"
    k = num_functions(basis, params)
    wt = (f"tensor<{cout}x{cin}x{dtype}>" if basis == "rational"
          else f"tensor<{cout}x{cin}x{k}x{dtype}>")
    args = [f"%x: {xt}", f"%w: {wt}"]
    extra = ""
    if bias:
        args.append(f"%b: tensor<{cout}x{dtype}>")
        extra += f" bias(%b : tensor<{cout}x{dtype}>)"
    if base:
        args.append(f"%wb: tensor<{cout}x{cin}x{dtype}>")
        extra += f" base(%wb : tensor<{cout}x{cin}x{dtype}>)"
    if basis == "rational":
        g, m, n = groups
        args += [f"%num: tensor<{g}x{m + 1}xf32>", f"%den: tensor<{g}x{n}xf32>"]
        extra += (f" coefficients(%num, %den : tensor<{g}x{m + 1}xf32>, "
                  f"tensor<{g}x{n}xf32>)")
    return (f"func.func @f({', '.join(args)}) -> {yt} {{\n"
            f"  %y = kan.layer {basis} %x, %w{extra} {attr_text(params)} "
            f": {xt}, {wt} -> {yt}\n"
            f"  return %y : {yt}\n}}\n")


def random_params(basis, rng):
    if basis == "bspline":
        lo = float(rng.uniform(-3, 0))
        return {"grid_size": int(rng.integers(1, 9)),
                "order": int(rng.integers(0, 4)),
                "grid_min": lo, "grid_max": lo + float(rng.uniform(0.5, 4))}
    if basis == "rbf":
        lo = float(rng.uniform(-3, 0))
        return {"grid_size": int(rng.integers(2, 10)),
                "grid_min": lo, "grid_max": lo + float(rng.uniform(0.5, 4))}
    if basis == "chebyshev":
        return {"degree": int(rng.integers(0, 8))}
    if basis == "fourier":
        return {"grid_size": int(rng.integers(1, 7))}
    return {}


def run_layer(basis, rng, lead, cin, cout, params, bias, base, dynamic,
              serial=False):
    groups = None
    arrays = []
    k = num_functions(basis, params)
    x = rng.standard_normal(lead + [cin]).astype(np.float32) * 1.5
    if basis == "rational":
        g = int(rng.choice([d for d in (1, 2, 4, 8) if cin % d == 0]))
        m, n = int(rng.integers(1, 7)), int(rng.integers(0, 6))
        groups = (g, m, n)
        w = rng.standard_normal((cout, cin)).astype(np.float32) / np.sqrt(cin)
    else:
        w = (rng.standard_normal((cout, cin, k)).astype(np.float32)
             / np.sqrt(cin * k))
    arrays = [x, w]
    b = wb = num = den = None
    if bias:
        b = rng.standard_normal(cout).astype(np.float32)
        arrays.append(b)
    if base:
        wb = rng.standard_normal((cout, cin)).astype(np.float32) / np.sqrt(cin)
        arrays.append(wb)
    if basis == "rational":
        g, m, n = groups
        num = rng.standard_normal((g, m + 1)).astype(np.float32)
        den = rng.standard_normal((g, n)).astype(np.float32)
        arrays += [num, den]
    text = layer_module(basis, lead, cin, cout, params, bias, base, groups,
                        dynamic)
    (y,) = moka.run(text, "f", *arrays, serial=serial)
    ref = kan_layer(basis, x, w, b, wb, num, den, **params)
    assert y.shape == ref.shape and y.dtype == np.float32
    return relative_error(y, ref)


@pytest.mark.parametrize("basis", BASES)
@pytest.mark.parametrize("seed", range(3))
def test_layer_random(basis, seed):
    rng = np.random.default_rng()
    lead = [int(rng.integers(1, 5)) for _ in range(int(rng.integers(0, 3)))]
    cin = int(rng.choice([8, 16, 24, 40]))
    cout = int(rng.integers(1, 50))
    bias = bool(rng.integers(0, 2))
    base = basis != "rational" and bool(rng.integers(0, 2))
    dynamic = bool(rng.integers(0, 2))
    err = run_layer(basis, rng, lead, cin, cout, random_params(basis, rng),
                    bias, base, dynamic)
    assert err <= 1e-5


@pytest.mark.parametrize("basis", BASES)
def test_layer_defaults_large(basis):
    """Default parameters, a batch large enough to be split over threads and
    fused in several row tiles, serial and parallel."""
    rng = np.random.default_rng()
    for serial in (False, True):
        err = run_layer(basis, rng, [300], 64, 96, {}, True,
                        basis != "rational", dynamic=True, serial=serial)
        assert err <= 1e-5


@pytest.mark.parametrize("basis", ["rational", "bspline", "chebyshev"])
@pytest.mark.parametrize("dtype", ["f16", "bf16"])
def test_layer_low_precision(basis, dtype):
    """f16 / bf16 storage, f32 arithmetic and accumulation: within the
    low-precision tolerance of the float64 reference on the rounded
    inputs."""
    rng = np.random.default_rng()
    cin, cout, lead = 32, 24, [37]
    params = {}
    k = num_functions(basis, params)
    groups = (4, 5, 4) if basis == "rational" else None

    def rounded(a):
        if dtype == "f16":
            return a.astype(np.float16)
        return moka.to_bf16_bits(a)

    def widened(a):
        if dtype == "f16":
            return a.astype(np.float64)
        return moka.from_bf16_bits(a).astype(np.float64)

    x = rounded(rng.standard_normal(lead + [cin]).astype(np.float32))
    wshape = (cout, cin) if basis == "rational" else (cout, cin, k)
    w = rounded((rng.standard_normal(wshape) / np.sqrt(cin * k))
                .astype(np.float32))
    b = rounded(rng.standard_normal(cout).astype(np.float32))
    arrays = [x, w, b]
    num = den = None
    if basis == "rational":
        num = rng.standard_normal((4, 6)).astype(np.float32)
        den = rng.standard_normal((4, 4)).astype(np.float32)
        arrays += [num, den]
    text = layer_module(basis, lead, cin, cout, params, True, False, groups,
                        dtype=dtype)
    (y,) = moka.run(text, "f", *arrays)
    ref = kan_layer(basis, widened(x), widened(w), widened(b), None, num, den)
    assert relative_error(widened(y), ref) <= 1e-2


DYNAMIC = """
func.func @f(%x: tensor<?x?xf32>, %w: tensor<?x?x8xf32>, %b: tensor<?xf32>, %wb: tensor<?x?xf32>) -> tensor<?x?xf32> {
  %y = kan.layer bspline %x, %w bias(%b : tensor<?xf32>) base(%wb : tensor<?x?xf32>) : tensor<?x?xf32>, tensor<?x?x8xf32> -> tensor<?x?xf32>
  return %y : tensor<?x?xf32>
}
"""


@pytest.mark.parametrize("bad,message", [
    ("weight", "weight input channels differ from the input's"),
    ("bias", "bias size differs from the output channels"),
    ("base_rows", "base_weight rows differ from the output channels"),
    ("base_cols", "base_weight columns differ from the input channels"),
])
def test_layer_dynamic_shape_mismatch(bad, message):
    """Dimensions that only meet at run time are checked: a clear error, not
    an out-of-bounds read."""
    rng = np.random.default_rng()
    x = rng.standard_normal((5, 24)).astype(np.float32)
    w = rng.standard_normal((40, 20 if bad == "weight" else 24, 8))
    b = rng.standard_normal(39 if bad == "bias" else 40)
    wb = rng.standard_normal((41 if bad == "base_rows" else 40,
                              23 if bad == "base_cols" else 24))
    with pytest.raises(moka.MokaError, match=message):
        moka.run(DYNAMIC, "f", x, w.astype(np.float32), b.astype(np.float32),
                 wb.astype(np.float32))


def test_layer_empty_batch():
    rng = np.random.default_rng()
    x = np.zeros((0, 24), np.float32)
    w = rng.standard_normal((40, 24, 8)).astype(np.float32)
    b = rng.standard_normal(40).astype(np.float32)
    wb = rng.standard_normal((40, 24)).astype(np.float32)
    (y,) = moka.run(DYNAMIC, "f", x, w, b, wb)
    assert y.shape == (0, 40)


def test_rational_layer_dynamic_channels_not_divisible():
    """A dynamic input channel count that is no multiple of the groups is
    caught at run time inside the fused tile, not read out of bounds."""
    text = """
func.func @f(%x: tensor<?x?xf32>, %w: tensor<?x?xf32>, %n: tensor<4x6xf32>, %d: tensor<4x4xf32>) -> tensor<?x?xf32> {
  %y = kan.layer rational %x, %w coefficients(%n, %d : tensor<4x6xf32>, tensor<4x4xf32>) : tensor<?x?xf32>, tensor<?x?xf32> -> tensor<?x?xf32>
  return %y : tensor<?x?xf32>
}
"""
    rng = np.random.default_rng()
    x = rng.standard_normal((5, 30)).astype(np.float32)
    w = rng.standard_normal((7, 30)).astype(np.float32)
    n = rng.standard_normal((4, 6)).astype(np.float32)
    d = rng.standard_normal((4, 4)).astype(np.float32)
    with pytest.raises(moka.MokaError, match="not divisible by the number of "
                       "groups"):
        moka.run(text, "f", x, w, n, d)
