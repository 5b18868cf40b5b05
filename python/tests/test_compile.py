"""moka.compile: ahead-of-time libraries with the C interface, called from
Python on numpy arrays, checked against float64 numpy references."""

import gc
import os
import time

import numpy as np
import pytest

import moka
from moka import reference, safetensors

ROOT = os.path.join(os.path.dirname(__file__), "..", "..")
EXAMPLES = os.path.join(ROOT, "examples")

MATMUL = """
func.func @mm(%a: tensor<?x?xf32>, %b: tensor<?x?xf32>) -> tensor<?x?xf32> {
  %c0 = arith.constant 0 : index
  %c1 = arith.constant 1 : index
  %m = tensor.dim %a, %c0 : tensor<?x?xf32>
  %n = tensor.dim %b, %c1 : tensor<?x?xf32>
  %e = tensor.empty(%m, %n) : tensor<?x?xf32>
  %z = arith.constant 0.0 : f32
  %f = linalg.fill ins(%z : f32) outs(%e : tensor<?x?xf32>) -> tensor<?x?xf32>
  %r = linalg.matmul ins(%a, %b : tensor<?x?xf32>, tensor<?x?xf32>)
                     outs(%f : tensor<?x?xf32>) -> tensor<?x?xf32>
  return %r : tensor<?x?xf32>
}

// Results that alias an argument or a constant are copied out.
func.func @passthrough(%x: tensor<?x4xf64>) -> (tensor<?x4xf64>, tensor<2xi64>, tensor<?x4xf64>) {
  %k = arith.constant dense<[7, -9]> : tensor<2xi64>
  return %x, %k, %x : tensor<?x4xf64>, tensor<2xi64>, tensor<?x4xf64>
}
"""


def rel_err(y, ref):
    ref = np.asarray(ref, dtype=np.float64)
    scale = max(np.abs(ref).max(), 1e-30)
    return np.abs(y.astype(np.float64) - ref).max() / scale


@pytest.fixture(scope="module")
def mm_lib():
    return moka.compile(MATMUL)


@pytest.mark.parametrize("m,k,n", [(1, 1, 1), (5, 7, 3), (64, 130, 33),
                                   (129, 256, 40)])
def test_matmul_dynamic_shapes(mm_lib, m, k, n):
    rng = np.random.default_rng(m * 1000 + k + n)
    a = rng.standard_normal((m, k)).astype(np.float32)
    b = rng.standard_normal((k, n)).astype(np.float32)
    y = mm_lib.mm(a, b)
    assert y.shape == (m, n) and y.dtype == np.float32
    assert rel_err(y, a.astype(np.float64) @ b) < 1e-5


def test_dimension_mismatch_is_an_error(mm_lib):
    a = np.ones((4, 5), np.float32)
    b = np.ones((6, 3), np.float32)
    with pytest.raises(moka.MokaError, match="shape mismatch: dimension 1 of "
                       "operand #0 and dimension 0 of operand #1 of "
                       "linalg.matmul"):
        mm_lib.mm(a, b)
    # The library is still usable after a failed check.
    assert mm_lib.mm(a, np.ones((5, 3), np.float32)).shape == (4, 3)


def test_argument_errors(mm_lib):
    a = np.ones((4, 5), np.float32)
    with pytest.raises(moka.MokaError, match="has dtype float64"):
        mm_lib.mm(a.astype(np.float64), a.T.copy())
    with pytest.raises(moka.MokaError, match="has rank 1, expected f32"):
        mm_lib.mm(np.ones(5, np.float32), a)
    with pytest.raises(moka.MokaError, match="takes 2 arguments, 1 given"):
        mm_lib.mm(a)
    with pytest.raises(AttributeError, match="no function 'nope'"):
        mm_lib.nope


def test_non_contiguous_and_empty_inputs(mm_lib):
    rng = np.random.default_rng(3)
    a = rng.standard_normal((9, 6)).astype(np.float32)
    b = rng.standard_normal((3, 6)).astype(np.float32).T  # a strided view
    assert rel_err(mm_lib.mm(a, b), a.astype(np.float64) @ b) < 1e-5
    y = mm_lib.mm(np.zeros((0, 6), np.float32), b)
    assert y.shape == (0, 3)


def test_aliasing_and_constant_results(mm_lib):
    x = np.arange(12, dtype=np.float64).reshape(3, 4)
    y0, k, y1 = mm_lib.passthrough(x)
    assert np.array_equal(y0, x) and np.array_equal(y1, x)
    assert k.dtype == np.int64 and list(k) == [7, -9]
    # Results own their buffers: changing one changes nothing else.
    y0[0, 0] = 100
    assert x[0, 0] == 0 and y1[0, 0] == 0
    del y0, y1, k
    gc.collect()


def test_results_outlive_the_library():
    lib = moka.compile(MATMUL)
    y = lib.mm(np.ones((2, 3), np.float32), np.ones((3, 2), np.float32))
    del lib
    gc.collect()
    assert np.array_equal(y, np.full((2, 2), 3, np.float32))


def test_weights_from_safetensors(tmp_path):
    rng = np.random.default_rng(11)
    w = rng.standard_normal((16, 8)).astype(np.float32)
    bias = rng.standard_normal(16).astype(np.float32)
    safetensors.save(tmp_path / "lin.safetensors", {"w": w, "b": bias})
    (tmp_path / "lin.mlir").write_text("""
module attributes {moka.weights = "lin.safetensors"} {
  func.func @forward(%x: tensor<?x8xf32>) -> tensor<?x16xf32> {
    %w = arith.constant dense_resource<w> : tensor<16x8xf32>
    %b = arith.constant dense_resource<b> : tensor<16xf32>
    %c0 = arith.constant 0 : index
    %n = tensor.dim %x, %c0 : tensor<?x8xf32>
    %e = tensor.empty(%n) : tensor<?x16xf32>
    %bb = linalg.broadcast ins(%b : tensor<16xf32>) outs(%e : tensor<?x16xf32>) dimensions = [0]
    %y = linalg.matmul indexing_maps = [affine_map<(m, n, k) -> (m, k)>,
                                        affine_map<(m, n, k) -> (n, k)>,
                                        affine_map<(m, n, k) -> (m, n)>]
        ins(%x, %w : tensor<?x8xf32>, tensor<16x8xf32>)
        outs(%bb : tensor<?x16xf32>) -> tensor<?x16xf32>
    return %y : tensor<?x16xf32>
  }
}
""")
    lib = moka.compile(str(tmp_path / "lin.mlir"))
    x = rng.standard_normal((37, 8)).astype(np.float32)
    ref = x.astype(np.float64) @ w.T.astype(np.float64) + bias
    assert rel_err(lib.forward(x), ref) < 1e-5
    # The weights are in the library: the file is no longer needed.
    os.remove(tmp_path / "lin.safetensors")
    assert rel_err(lib.forward(x), ref) < 1e-5
    with pytest.raises(moka.MokaError, match="cannot read weights file"):
        moka.compile(str(tmp_path / "lin.mlir"))


def test_compile_errors(tmp_path):
    with pytest.raises(moka.MokaError, match="no such file"):
        moka.compile(str(tmp_path / "missing.mlir"))
    with pytest.raises(moka.MokaError, match="failed to verify"):
        moka.compile("func.func @f(%x: tensor<2xf32>) -> tensor<3xf32> {\n"
                     "  return %x : tensor<2xf32>\n}\n")
    with pytest.raises(moka.MokaError, match="could not be parsed"):
        moka.compile("func.func @f(%x: tensor<2xf32>) -> tensor<2xf32> {\n"
                     "  return %x : tensor<2xf32\n}\n")
    with pytest.raises(moka.MokaError, match="unsupported target 'nvptx'"):
        moka.compile(MATMUL, target="nvptx")
    with pytest.raises(moka.MokaError, match="takes a path, MLIR text"):
        moka.compile(42)


def test_kat_block_example_matches_reference():
    lib = moka.compile(os.path.join(EXAMPLES, "kat_ffn.mlir"))
    rng = np.random.default_rng(5)
    f = np.float32
    x = rng.standard_normal((2, 197, 384)).astype(f)
    a1, b1 = (rng.standard_normal((8, 6)) * .3).astype(f), (
        rng.standard_normal((8, 4)) * .3).astype(f)
    w1 = (rng.standard_normal((1536, 384)) / 20).astype(f)
    c1 = rng.standard_normal(1536).astype(f) * .1
    a2, b2 = (rng.standard_normal((8, 6)) * .3).astype(f), (
        rng.standard_normal((8, 4)) * .3).astype(f)
    w2 = (rng.standard_normal((384, 1536)) / 40).astype(f)
    c2 = rng.standard_normal(384).astype(f) * .1
    y = lib.forward(x, a1, b1, w1, c1, a2, b2, w2, c2)
    h = reference.kan_layer("rational", x, w1, c1, numerator=a1,
                            denominator=b1)
    ref = reference.kan_layer("rational", h, w2, c2, numerator=a2,
                              denominator=b2)
    assert rel_err(y, ref) < 1e-5


@pytest.mark.parametrize("example", ["kat_ffn.mlir", "mixtral_moe.mlir"])
def test_compile_time_is_reported(example, capsys):
    """Compile time of the examples (reported, not asserted: see
    docs/benchmarks.md for the figures)."""
    start = time.perf_counter()
    moka.compile(os.path.join(EXAMPLES, example))
    elapsed = time.perf_counter() - start
    with capsys.disabled():
        print(f"\n  moka.compile({example}): {elapsed:.2f} s")


@pytest.mark.parametrize("order", ["%a, %b", "%b, %a"])
def test_reshape_with_two_dynamic_sizes_in_a_group(order):
    # LLVM 22's expand-strided-metadata cannot lower this expand_shape by
    # itself (moka-lower-dynamic-expand-shape does).
    lib = moka.compile(f"""
func.func @forward(%x: tensor<?x?x8xf32>) -> tensor<?x?x8xf32> {{
  %c0 = arith.constant 0 : index
  %c1 = arith.constant 1 : index
  %a = tensor.dim %x, %c0 : tensor<?x?x8xf32>
  %b = tensor.dim %x, %c1 : tensor<?x?x8xf32>
  %v = tensor.collapse_shape %x [[0, 1], [2]] : tensor<?x?x8xf32> into tensor<?x8xf32>
  %r = tensor.expand_shape %v [[0, 1], [2]] output_shape [{order}, 8]
      : tensor<?x8xf32> into tensor<?x?x8xf32>
  return %r : tensor<?x?x8xf32>
}}
""")
    x = np.random.default_rng(0).standard_normal((3, 5, 8)).astype(np.float32)
    expected = x if order == "%a, %b" else x.reshape(5, 3, 8)
    assert np.array_equal(lib.forward(x), expected)
