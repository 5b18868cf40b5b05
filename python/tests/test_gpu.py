"""moka's ops compiled for and run on an NVIDIA GPU (moka-run --device=cuda),
against float64 references on fresh random inputs. Skipped, with the reason
shown, where no CUDA device is present."""

import os

import numpy as np
import pytest

import moka
from moka import reference
from moka.tools import cuda_devices

pytestmark = pytest.mark.skipif(cuda_devices() == 0,
                                reason="no CUDA GPU on this machine")


EXAMPLES = os.path.join(os.path.dirname(__file__), "..", "..", "examples")


def rel_err(y, ref):
    return np.abs(y.astype(np.float64) - ref).max() / np.abs(ref).max()


def coefficients(rng, groups=8):
    return ((rng.standard_normal((groups, 6)) * 0.3).astype(np.float32),
            (rng.standard_normal((groups, 4)) * 0.3).astype(np.float32))


@pytest.mark.parametrize("shape", [(1, 64), (37, 384), (4, 197, 768)])
def test_rational(shape):
    rng = np.random.default_rng(sum(shape))
    x = rng.standard_normal(shape).astype(np.float32)
    a, b = coefficients(rng)
    dims = "x".join(str(d) for d in shape)
    ir = f"""
func.func @f(%x: tensor<{dims}xf32>, %a: tensor<8x6xf32>, %b: tensor<8x4xf32>) -> tensor<{dims}xf32> {{
  %y = kan.rational %x, %a, %b : tensor<{dims}xf32>, tensor<8x6xf32>, tensor<8x4xf32>
  return %y : tensor<{dims}xf32>
}}"""
    (y,) = moka.run(ir, "f", x, a, b, device="cuda")
    assert rel_err(y, reference.rational(x, a, b)) < 1e-5


def test_kat_block():
    rng = np.random.default_rng(1)
    f = np.float32
    x = rng.standard_normal((2, 197, 384)).astype(f)
    a1, b1 = coefficients(rng)
    a2, b2 = coefficients(rng)
    w1 = (rng.standard_normal((1536, 384)) / 20).astype(f)
    w2 = (rng.standard_normal((384, 1536)) / 40).astype(f)
    c1 = (rng.standard_normal(1536) * .1).astype(f)
    c2 = (rng.standard_normal(384) * .1).astype(f)
    (y,) = moka.run(os.path.join(EXAMPLES, "kat_ffn.mlir"), "forward", x, a1, b1, w1, c1,
                    a2, b2, w2, c2, device="cuda")
    h = reference.kan_layer("rational", x, w1, c1, numerator=a1,
                            denominator=b1)
    ref = reference.kan_layer("rational", h, w2, c2, numerator=a2,
                              denominator=b2)
    assert rel_err(y, ref) < 1e-5


@pytest.mark.parametrize("tokens", [1, 16, 300])
def test_mixtral_block(tokens):
    rng = np.random.default_rng(tokens)
    f = np.float32
    x = rng.standard_normal((tokens, 1024)).astype(f)
    gate = (rng.standard_normal((8, 1024)) / 32).astype(f)
    w1 = (rng.standard_normal((8, 2048, 1024)) / 32).astype(f)
    w2 = (rng.standard_normal((8, 1024, 2048)) / 45).astype(f)
    w3 = (rng.standard_normal((8, 2048, 1024)) / 32).astype(f)
    (y,) = moka.run(os.path.join(EXAMPLES, "mixtral_moe.mlir"), "forward", x, gate, w1,
                    w2, w3, device="cuda")
    ref = reference.moe_layer(x, gate, w1, w2, w3, 2, normalize=True)
    assert rel_err(y, ref) < 1e-5


@pytest.mark.parametrize("fmt", ["f32", "i4"])
def test_kv_append_and_decode_attention(fmt):
    from moka.reference import (kv_append, kv_attention, kv_cache_type,
                                kv_empty)
    quantized = fmt.startswith("i")
    t = kv_cache_type((1, 8, 1024, 128), fmt,
                      key_group=32 if quantized else None,
                      value_group=32 if quantized else None,
                      window=128 if quantized else None)
    ir = f"""
func.func @fill(%k: tensor<1x8x?x128xf32>, %v: tensor<1x8x?x128xf32>) -> {t.mlir} {{
  %c0 = kv.empty : {t.mlir}
  %c1 = kv.append %c0, %k, %v : {t.mlir}, tensor<1x8x?x128xf32>, tensor<1x8x?x128xf32>
  return %c1 : {t.mlir}
}}
func.func @attend(%q: tensor<1x32x128xf32>, %c: {t.mlir}) -> tensor<1x32x128xf32> {{
  %o = kv.decode_attention %q, %c : tensor<1x32x128xf32>, {t.mlir} -> tensor<1x32x128xf32>
  return %o : tensor<1x32x128xf32>
}}"""
    rng = np.random.default_rng(3)
    k = rng.standard_normal((1, 8, 700, 128)).astype(np.float32)
    v = rng.standard_normal((1, 8, 700, 128)).astype(np.float32)
    storage = moka.run(ir, "fill", k, v, device="cuda")
    expected = kv_append(kv_empty(t), t, k, v)
    assert int(storage[-1]) == 700
    q = rng.standard_normal((1, 32, 128)).astype(np.float32)
    (o,) = moka.run(ir, "attend", q, *storage, device="cuda")
    assert rel_err(o, kv_attention(q, expected, t)) < 1e-5
