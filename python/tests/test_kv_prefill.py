"""kv.prefill_attention (attention within a block, optionally causal, GQA)
against a float64 reference on fresh random inputs."""

import numpy as np
import pytest

import moka
from moka.reference import prefill_attention


def ir(b, hq, hkv, d, elt, causal):
    attr = "{causal}" if causal else ""
    tq = f"tensor<{b}x{hq}x?x{d}xf32>"
    tk = f"tensor<{b}x{hkv}x?x{d}x{elt}>"
    return f"""
func.func @f(%q: {tq}, %k: {tk}, %v: {tk}) -> {tq} {{
  %o = kv.prefill_attention %q, %k, %v {attr} : {tq}, {tk}, {tk} -> {tq}
  return %o : {tq}
}}"""


@pytest.mark.parametrize("causal", [True, False])
@pytest.mark.parametrize("elt,dtype", [("f32", np.float32),
                                       ("f16", np.float16)])
@pytest.mark.parametrize("b,hq,hkv,d", [(1, 4, 4, 16), (2, 8, 2, 32)])
def test_prefill_attention(causal, elt, dtype, b, hq, hkv, d):
    lib = moka.compile(ir(b, hq, hkv, d, elt, causal))
    rng = np.random.default_rng(hq * 31 + d + causal)
    for t in [1, 7, 100]:
        q = rng.standard_normal((b, hq, t, d)).astype(np.float32)
        k = rng.standard_normal((b, hkv, t, d)).astype(dtype)
        v = rng.standard_normal((b, hkv, t, d)).astype(dtype)
        out = lib.f(q, k, v)
        ref = prefill_attention(q, k, v, causal)
        assert np.abs(out - ref).max() / np.abs(ref).max() <= 1e-5


def test_token_count_mismatch_is_an_error():
    lib = moka.compile(ir(1, 4, 4, 16, "f32", True))
    q = np.ones((1, 4, 5, 16), np.float32)
    k = np.ones((1, 4, 6, 16), np.float32)
    with pytest.raises(moka.MokaError, match="different token counts"):
        lib.f(q, k, k)
