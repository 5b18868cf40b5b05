"""Fused KAN blocks compute the same numbers as their float64 references:
KAT's feed-forward block (fc1 -> rational -> fc2 with both rationals fused
into one loop over row tiles) at batch sizes whose 197 rows per image leave
partial row tiles and partial register tiles, serial and parallel."""

import importlib.util
import os

import numpy as np
import pytest

import moka
from moka.reference import relative_error

EXAMPLES = os.path.join(os.path.dirname(__file__), "..", "..", "examples")


def load_example(name):
    spec = importlib.util.spec_from_file_location(
        name, os.path.join(EXAMPLES, name + ".py"))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.parametrize("batch,serial", [(1, False), (3, True), (2, False)])
def test_kat_ffn_block(batch, serial):
    example = load_example("kat_ffn")
    inputs = example.inputs(np.random.default_rng())
    inputs[0] = inputs[0][:batch]
    (y,) = moka.run(os.path.join(EXAMPLES, "kat_ffn.mlir"), example.FUNCTION,
                    *inputs, serial=serial)
    (ref,) = example.reference(*inputs)
    assert y.shape == ref.shape
    assert relative_error(y, ref) <= 1e-5


EPILOGUE = """
func.func @epi(%x: tensor<?x48xf32>, %w: tensor<48x40xf32>, %a: tensor<4x6xf32>, %b: tensor<4x4xf32>) -> tensor<?x40xf32> {
  %cst = arith.constant 0.0 : f32
  %c0 = arith.constant 0 : index
  %n = tensor.dim %x, %c0 : tensor<?x48xf32>
  %e = tensor.empty(%n) : tensor<?x40xf32>
  %z = linalg.fill ins(%cst : f32) outs(%e : tensor<?x40xf32>) -> tensor<?x40xf32>
  %p = linalg.matmul ins(%x, %w : tensor<?x48xf32>, tensor<48x40xf32>) outs(%z : tensor<?x40xf32>) -> tensor<?x40xf32>
  %y = kan.rational %p, %a, %b : tensor<?x40xf32>, tensor<4x6xf32>, tensor<4x4xf32>
  return %y : tensor<?x40xf32>
}
"""


@pytest.mark.parametrize("rows", [1, 130, 301])
def test_rational_epilogue_of_matmul(rows):
    """A user's linalg.matmul followed by kan.rational: the product is fused
    into the rational's row tiles (epilogue) and the numbers are unchanged."""
    from moka.reference import rational
    rng = np.random.default_rng()
    x = rng.standard_normal((rows, 48)).astype(np.float32)
    w = (rng.standard_normal((48, 40)) / 7).astype(np.float32)
    a = rng.standard_normal((4, 6)).astype(np.float32)
    b = rng.standard_normal((4, 4)).astype(np.float32)
    (y,) = moka.run(EPILOGUE, "epi", x, w, a, b)
    ref = rational(x.astype(np.float64) @ w.astype(np.float64), a, b)
    assert relative_error(y, ref) <= 1e-5


@pytest.mark.parametrize("shape,perm", [((3, 70, 45), (0, 2, 1)),
                                        ((64, 48), (1, 0)),
                                        ((5, 16, 33), (2, 1, 0))])
def test_transpose_kernel(shape, perm):
    """Transposes (the weight packing of layers and experts) copy every
    element exactly, partial 16 x 16 tiles included."""
    out_shape = tuple(shape[p] for p in perm)
    ts = "x".join(map(str, shape))
    to = "x".join(map(str, out_shape))
    text = f"""
func.func @t(%w: tensor<{ts}xf32>) -> tensor<{to}xf32> {{
  %e = tensor.empty() : tensor<{to}xf32>
  %t = linalg.transpose ins(%w : tensor<{ts}xf32>) outs(%e : tensor<{to}xf32>) permutation = {list(perm)}
  return %t : tensor<{to}xf32>
}}
"""
    w = np.random.default_rng().standard_normal(shape).astype(np.float32)
    (t,) = moka.run(text, "t", w)
    assert np.array_equal(t, w.transpose(perm))
