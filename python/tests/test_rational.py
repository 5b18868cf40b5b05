"""kan.rational compiled by moka and run from Python, against the float64
reference, on fresh random inputs and varied shapes."""

import numpy as np
import pytest

import moka
from moka.reference import rational, relative_error

RATIONAL = """
func.func @f(%x: tensor<{xshape}x{dt}>, %a: tensor<{ga}x{m1}xf32>, %b: tensor<{g}x{n}xf32>) -> tensor<{xshape}x{dt}> {{
  %y = kan.rational %x, %a, %b {{m = {m} : i64, n = {n} : i64}} : tensor<{xshape}x{dt}>, tensor<{ga}x{m1}xf32>, tensor<{g}x{n}xf32>
  return %y : tensor<{xshape}x{dt}>
}}
"""


def module(shape, groups, m, n, shared=False, dtype="f32", dynamic=False):
    dims = ["?" if dynamic else str(d) for d in shape]
    return RATIONAL.format(xshape="x".join(dims), dt=dtype, g=groups,
                           ga=1 if shared else groups, m1=m + 1, m=m, n=n)


@pytest.mark.parametrize("seed", range(4))
def test_random_shapes_f32(seed):
    rng = np.random.default_rng()
    rank = int(rng.integers(1, 5))
    groups = int(rng.choice([1, 2, 4, 8]))
    shape = [int(rng.integers(1, 6)) for _ in range(rank - 1)]
    shape.append(groups * int(rng.integers(1, 100)))
    m, n = int(rng.integers(0, 7)), int(rng.integers(0, 6))
    shared = bool(rng.integers(0, 2))
    dynamic = bool(rng.integers(0, 2))
    x = rng.standard_normal(shape).astype(np.float32) * 3
    a = rng.standard_normal((1 if shared else groups, m + 1)).astype(np.float32)
    b = rng.standard_normal((groups, n)).astype(np.float32)
    (y,) = moka.run(module(shape, groups, m, n, shared, dynamic=dynamic), "f",
                    x, a, b)
    assert y.shape == tuple(shape) and y.dtype == np.float32
    assert relative_error(y, rational(x, a, b)) <= 1e-6


def test_f16_storage():
    rng = np.random.default_rng()
    shape = [7, 96]
    x = rng.standard_normal(shape).astype(np.float16)
    a = rng.standard_normal((8, 6)).astype(np.float32)
    b = rng.standard_normal((8, 4)).astype(np.float32)
    (y,) = moka.run(module(shape, 8, 5, 4, dtype="f16"), "f", x, a, b)
    assert y.dtype == np.float16
    assert relative_error(y, rational(x, a, b)) <= 1e-3


def test_bf16_storage():
    rng = np.random.default_rng()
    shape = [5, 64]
    x = moka.to_bf16_bits(rng.standard_normal(shape).astype(np.float32))
    a = rng.standard_normal((8, 6)).astype(np.float32)
    b = rng.standard_normal((8, 4)).astype(np.float32)
    (y,) = moka.run(module(shape, 8, 5, 4, dtype="bf16"), "f", x, a, b)
    assert y.dtype == np.uint16
    ref = rational(moka.from_bf16_bits(x), a, b)
    assert relative_error(moka.from_bf16_bits(y), ref) <= 8e-3


def test_special_values():
    # NaN stays NaN; infinities do not crash (they give NaN: inf/inf);
    # magnitudes whose m-th power fits in f32, zero and denormals are exact
    # to f32 accuracy.
    x = np.array([[np.nan, np.inf, -np.inf, 0.0, 1e6, -1e-30, 1e-40, 2.0]],
                 dtype=np.float32)
    a = np.ones((1, 6), np.float32)
    b = np.ones((1, 4), np.float32)
    (y,) = moka.run(module([1, 8], 1, 5, 4), "f", x, a, b)
    assert np.isnan(y[0, 0])
    finite = slice(3, 8)
    assert np.all(np.isfinite(y[0, finite]))
    ref = rational(x[:, finite].astype(np.float64), a, b)
    assert relative_error(y[:, finite], ref) <= 1e-6


def test_dtype_mismatch_is_an_error():
    x = np.ones((2, 8), np.float64)
    a = np.ones((8, 6), np.float32)
    b = np.ones((8, 4), np.float32)
    with pytest.raises(moka.MokaError, match="has dtype '<f8'"):
        moka.run(module([2, 8], 8, 5, 4), "f", x, a, b)


def test_bf16_bits_round_trip():
    v = np.array([1.0, -2.5, 3.140625, np.inf], np.float32)
    assert np.array_equal(moka.from_bf16_bits(moka.to_bf16_bits(v)), v)
