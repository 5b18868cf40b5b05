"""The kv dialect (docs/kv.md): compressed KV caches and decode attention.

Caches cross function boundaries as their storage tensors (docs/kv.md,
"Storage"); the tests build storage with the numpy reference
(moka.reference.kv_*), run moka on it, and compare:

- kv.empty + kv.append against the reference bit for bit on the valid
  regions of every storage tensor (codes, scales, minima, window, length);
- appends across calls (storage out, storage back in), one token at a time
  and in chunks, at every step;
- the capacity check, and lengths outside [0, S] in storage passed in
  (run-time errors, never an access out of bounds);
- kv.decode_attention against float64 attention over the reference's
  dequantized cache (max abs error / max abs reference <= 1e-5);
- latent caches with up-projections, and their absorbed form;
- the verifier rules.

The first part tests the reference itself and needs no compiler.
"""

import functools
import os
import re
import subprocess
import tempfile

import numpy as np
import pytest

import moka
from moka import reference as ref
from moka.reference import (KVCacheType, kv_append, kv_attention,
                            kv_dequantized, kv_empty, kv_pack, kv_unpack,
                            kv_valid)

TOL = 1e-5


def quantized(shape, fmt, gt, gc, r):
    return KVCacheType(shape, fmt, key_group=gt, value_group=gc, window=r)


def rel_err(y, expected):
    expected = np.asarray(expected, dtype=np.float64)
    scale = max(float(np.abs(expected).max(initial=0.0)), 1e-30)
    return float(np.abs(np.asarray(y, np.float64) - expected).max(
        initial=0.0)) / scale


def random_kv(rng, b, h, t, d, outliers=True):
    """Keys with per-channel offsets and scales (as real keys have), values
    plain Gaussian, float32."""
    k = rng.standard_normal((b, h, t, d))
    if outliers:
        k = k * rng.uniform(0.2, 4.0, d) + rng.standard_normal(d)
    v = rng.standard_normal((b, h, t, d))
    return k.astype(np.float32), v.astype(np.float32)


def assert_storage_equal(got, expected, t):
    """Same number, shapes and dtypes of storage tensors; equal length;
    the valid regions equal bit for bit (floats compared as values, so
    +0 == -0)."""
    types = t.storage_types()
    got = [np.asarray(a) for a in got]
    assert len(got) == len(types), f"{len(got)} storage tensors"
    for a, (name, shape, dt) in zip(got, types):
        assert a.shape == shape and a.dtype == dt, (
            f"{name}: got {a.shape} {a.dtype}, expected {shape} {dt}")
    assert int(got[-1]) == int(expected[-1]), "length"
    for (name, _, _), a, e in zip(types, kv_valid(got, t),
                                  kv_valid(expected, t)):
        if not np.array_equal(a, e):
            bad = np.argwhere(a != e)
            raise AssertionError(
                f"{name}: {len(bad)} of {a.size} elements differ, first at "
                f"{tuple(bad[0])}: {a[tuple(bad[0])]} vs "
                f"{e[tuple(bad[0])]}")


# ---------------------------------------------------------------------------
# The reference itself (no compiler needed).


def test_reference_type_rules():
    ok = quantized((1, 8, 4096, 128), "i4", 32, 32, 128)
    assert ok.mlir == ("!kv.cache<1x8x4096x128, i4, key_group = 32, "
                       "value_group = 32, window = 128>")
    assert KVCacheType((1, 32, 4096, 128), "f32", rank=512).mlir == (
        "!kv.cache<1x32x4096x128, f32, rank = 512>")
    bad = [
        dict(shape=(1, 2, 32, 16), fmt="f64"),
        dict(shape=(1, 2, 32, 16), fmt="i3", key_group=4, value_group=8,
             window=8),
        dict(shape=(1, 2, 32, 16), fmt="i4", key_group=4, value_group=8),
        dict(shape=(1, 2, 32, 16), fmt="i4", key_group=4, value_group=8,
             window=8, rank=4),
        dict(shape=(1, 2, 32, 16), fmt="f32", key_group=4),
        dict(shape=(1, 2, 32, 16), fmt="i4", key_group=4, value_group=6,
             window=8),
        dict(shape=(1, 2, 30, 16), fmt="i4", key_group=4, value_group=8,
             window=8),
        dict(shape=(1, 2, 32, 16), fmt="i4", key_group=8, value_group=8,
             window=4),
        dict(shape=(1, 2, 32, 16), fmt="i4", key_group=8, value_group=8,
             window=64),
        dict(shape=(1, 2, 32, 16), fmt="i4", key_group=8, value_group=8,
             window=12),
        dict(shape=(1, 2, 32, 2), fmt="i2", key_group=4, value_group=2,
             window=8),
        dict(shape=(1, 2, 32, 16), fmt="f32", rank=0),
        dict(shape=(1, 0, 32, 16), fmt="f32"),
    ]
    for params in bad:
        with pytest.raises(ValueError):
            KVCacheType(**params)


def test_reference_storage_layout():
    t = quantized((2, 3, 64, 16), "i4", 8, 4, 16)
    shapes = [(n, s, d.name) for n, s, d in t.storage_types()]
    assert shapes == [
        ("kcodes", (2, 3, 64, 8), "int8"), ("kscale", (2, 3, 8, 16),
                                            "float32"),
        ("kmin", (2, 3, 8, 16), "float32"), ("vcodes", (2, 3, 64, 8), "int8"),
        ("vscale", (2, 3, 64, 4), "float32"), ("vmin", (2, 3, 64, 4),
                                               "float32"),
        ("wk", (2, 3, 16, 16), "float32"), ("wv", (2, 3, 16, 16), "float32"),
        ("length", (), "int64")]
    empty = kv_empty(t)
    assert all(not a.any() for a in empty) and empty[-1].shape == ()
    f = kv_empty((1, 2, 8, 4), "bf16")
    assert [a.dtype for a in f] == [np.uint16, np.uint16, np.int64]
    lat = kv_empty((1, 2, 8, 4), "f16", rank=3)
    assert [a.shape for a in lat] == [(1, 8, 3), ()]


@pytest.mark.parametrize("bits", [8, 4, 2])
def test_reference_packing(bits):
    rng = np.random.default_rng(bits)
    codes = rng.integers(0, 2 ** bits, (3, 5, 32)).astype(np.uint8)
    packed = kv_pack(codes, bits)
    assert packed.dtype == np.int8 and packed.shape == (3, 5, 32 * bits // 8)
    assert np.array_equal(kv_unpack(packed, bits, 32), codes)
    # The layout, spelled out: channel d at byte d*b/8, bit (d*b)%8.
    u = packed.view(np.uint8)
    for d in range(32):
        byte, bit = d * bits // 8, d * bits % 8
        assert np.array_equal((u[..., byte] >> bit) & (2 ** bits - 1),
                              codes[..., d])
    if bits == 4:
        assert kv_pack(np.array([1, 2]), 4).view(np.uint8)[0] == 0x21
    if bits == 2:
        assert kv_pack(np.array([1, 2, 3, 0]), 2).view(np.uint8)[0] == 0x39
    if bits == 8:
        assert kv_pack(np.array([200]), 8)[0] == -56


def _quantize_scalar(xs, bits):
    """Independent scalar f32 quantization of one group."""
    xs = [np.float32(x) for x in xs]
    mn, mx = min(xs), max(xs)
    scale = np.float32(mx - mn) / np.float32(2 ** bits - 1)
    out = []
    for x in xs:
        if scale == 0:
            out.append(0)
            continue
        y = np.float32(np.float32(x - mn) / scale)
        q = int(np.rint(y))
        out.append(min(max(q, 0), 2 ** bits - 1))
    return out, np.float32(scale), np.float32(mn)


@pytest.mark.parametrize("bits", [8, 4, 2])
def test_reference_quantization_f32(bits):
    rng = np.random.default_rng(10 + bits)
    x = (rng.standard_normal((7, 6)) * 3 + 1).astype(np.float32)
    codes, scale, mn = ref.kv_quantize(x, bits, axis=0)
    assert scale.dtype == np.float32 and mn.dtype == np.float32
    for c in range(6):
        q, s, m = _quantize_scalar(x[:, c], bits)
        assert list(codes[:, c]) == q
        assert scale[0, c] == s and mn[0, c] == m
    # Round half to even; a constant group has scale 0 and codes 0.
    levels = 2 ** bits - 1
    group = np.array([0, levels, 0.5, 1.5, 2.5], np.float32)
    codes, scale, mn = ref.kv_quantize(group, bits, axis=0)
    assert scale[0] == 1 and list(codes) == [0, levels, 0, 2, 2]
    codes, scale, mn = ref.kv_quantize(np.full(4, -1.25, np.float32), bits, 0)
    assert scale[0] == 0 and not codes.any() and mn[0] == -1.25
    # |x - x_hat| <= scale / 2 (up to f32 rounding of the division).
    xk = (rng.standard_normal((2, 3, 8, 16)) * 5).astype(np.float32)
    codes, scale, mn = ref.kv_quantize_keys(xk, bits)
    back = ref.kv_dequantize(codes, scale[..., None, :], mn[..., None, :])
    assert np.all(np.abs(back - xk) <= scale[..., None, :] * 0.5001 + 1e-6)
    codes, scale, mn = ref.kv_quantize_values(xk, bits, 4)
    assert codes.shape == xk.shape and scale.shape == (2, 3, 8, 4)


def test_reference_window_rule():
    t = quantized((1, 1, 64, 4), "i8", 4, 4, 12)
    rng = np.random.default_rng(0)
    k, v = random_kv(rng, 1, 1, 64, 4)
    st = kv_empty(t)
    nc = w = 0
    for n in range(1, 65):
        st = kv_append(st, t, k[:, :, n - 1:n], v[:, :, n - 1:n])
        if w == 12:  # the window rule, by hand
            nc, w = nc + 4, w - 4
        w += 1
        assert (t.compressed(n), t.windowed(n)) == (nc, w)
        assert int(st[-1]) == n
        # The window holds the newest w tokens exactly, oldest first.
        assert np.array_equal(st[6][:, :, :w], k[:, :, nc:n])
        assert np.array_equal(st[7][:, :, :w], v[:, :, nc:n])
    with pytest.raises(ref.KVCapacityError, match="capacity"):
        kv_append(st, t, k[:, :, :1], v[:, :, :1])


@pytest.mark.parametrize("fmt", ["i8", "i4", "i2"])
def test_reference_chunks_equal_single_tokens(fmt):
    t = quantized((2, 3, 96, 16), fmt, 8, 8, 24)
    rng = np.random.default_rng(1)
    k, v = random_kv(rng, 2, 3, 96, 16)
    one = kv_empty(t)
    for i in range(96):
        one = kv_append(one, t, k[:, :, i:i + 1], v[:, :, i:i + 1])
    chunked, n = kv_empty(t), 0
    for size in [0, 5, 19, 1, 24, 0, 30, 17]:
        chunked = kv_append(chunked, t, k[:, :, n:n + size],
                            v[:, :, n:n + size])
        n += size
    assert n == 96
    assert_storage_equal(chunked, one, t)
    whole = kv_append(kv_empty(t), t, k, v)
    for a, b in zip(whole, one):
        assert np.array_equal(a, b)
    keys, values = kv_dequantized(whole, t)
    assert np.array_equal(keys[:, :, -t.windowed(96):],
                          k[:, :, -t.windowed(96):])
    levels = 2 ** t.bits - 1
    krange = [k[:, :, j:j + 8].max(2) - k[:, :, j:j + 8].min(2)
              for j in range(0, t.compressed(96), 8)]
    bound = np.repeat(np.stack(krange, 2), 8, axis=2) / levels * 0.5001
    assert np.all(np.abs(keys[:, :, :t.compressed(96)]
                         - k[:, :, :t.compressed(96)]) <= bound + 1e-6)


def test_reference_float_caches():
    rng = np.random.default_rng(2)
    k, v = random_kv(rng, 1, 2, 5, 8)
    for fmt, conv in [("f32", lambda x: x),
                      ("f16", lambda x: x.astype(np.float16)),
                      ("bf16", moka.to_bf16_bits)]:
        t = KVCacheType((1, 2, 16, 8), fmt)
        st = kv_append(kv_empty(t), t, k, v)
        assert np.array_equal(st[0][:, :, :5], conv(k))
        assert not st[0][:, :, 5:].any() and int(st[2]) == 5
        keys, _ = kv_dequantized(st, t)
        assert keys.shape == (1, 2, 5, 8)
    t = KVCacheType((2, 4, 16, 8), "f32", rank=6)
    c = rng.standard_normal((2, 7, 6)).astype(np.float32)
    st = kv_append(kv_empty(t), t, c)
    assert np.array_equal(st[0][:, :7], c) and int(st[1]) == 7
    with pytest.raises(ref.KVCapacityError):
        kv_append(st, t, np.zeros((2, 10, 6), np.float32))


def test_reference_attention():
    rng = np.random.default_rng(3)
    q = rng.standard_normal((2, 8, 16))
    k, v = random_kv(rng, 2, 2, 40, 16)
    # GQA is MHA over repeat_kv'd heads (query head h uses kv head h // g).
    o = ref.kv_decode_attention(q, k, v)
    o_rep = ref.kv_decode_attention(q, np.repeat(k, 4, axis=1),
                                    np.repeat(v, 4, axis=1))
    assert np.allclose(o, o_rep, rtol=0, atol=1e-14)
    s = np.einsum("bhd,bhnd->bhn", q, np.repeat(k, 4, 1).astype(np.float64))
    p = np.exp(s / 4.0 - (s / 4.0).max(-1, keepdims=True))
    p /= p.sum(-1, keepdims=True)
    assert np.allclose(o, np.einsum("bhn,bhnd->bhd", p, np.repeat(v, 4, 1)),
                       atol=1e-13)
    assert not ref.kv_decode_attention(q, k[:, :, :0], v[:, :, :0]).any()
    t = quantized((2, 2, 64, 16), "i4", 8, 8, 16)
    st = kv_append(kv_empty(t), t, k, v)
    keys, values = kv_dequantized(st, t)
    assert np.allclose(kv_attention(q, st, t, scale=0.3),
                       ref.kv_decode_attention(q, keys, values, 0.3),
                       atol=1e-14)
    assert not kv_attention(q, kv_empty(t), t).any()
    # Latent: the absorbed form equals the up-projected one.
    c = rng.standard_normal((2, 30, 12))
    uk, uv = rng.standard_normal((2, 12, 8, 16)) / np.sqrt(12)
    direct = ref.kv_latent_attention(q, c, uk, uv)
    assert np.allclose(direct, ref.kv_latent_attention_absorbed(q, c, uk, uv),
                       atol=1e-12)
    tl = KVCacheType((2, 8, 32, 16), "f32", rank=12)
    stl = kv_append(kv_empty(tl), tl, c.astype(np.float32))
    assert np.allclose(kv_attention(q, stl, tl, up_k=uk, up_v=uv),
                       ref.kv_latent_attention(q, c.astype(np.float32), uk,
                                               uv), atol=1e-12)


def test_moka_run_counts_cache_results():
    from moka.tools import _count_results
    t = quantized((1, 2, 32, 16), "i4", 4, 8, 8)
    ir = f"""
!f = !kv.cache<1x2x32x16, f16>
func.func @a() -> {t.mlir} {{ return }}
func.func @b() -> (!f, tensor<3xf32>, !kv.cache<1x2x8x4, f32, rank = 3>) {{ return }}
"""
    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "m.mlir")
        with open(path, "w") as f:
            f.write(ir)
        assert _count_results(path, "a") == 9
        assert _count_results(path, "b") == 3 + 1 + 2


# ---------------------------------------------------------------------------
# Compiled: IR builders.


def tensor(*dims, dtype="f32"):
    return "tensor<" + "x".join("?" if d is None else str(d)
                                for d in dims) + f"x{dtype}>"


def fill_ir(t, tokens, dtype="f32", dynamic=False):
    """@fill(k, v) -> cache: kv.append(kv.empty, k, v)."""
    b, h, _, d = t.shape
    tk = tensor(b, h, None if dynamic else tokens, d, dtype=dtype)
    return f"""
func.func @fill(%k: {tk}, %v: {tk}) -> {t.mlir} {{
  %c0 = kv.empty : {t.mlir}
  %c1 = kv.append %c0, %k, %v : {t.mlir}, {tk}, {tk}
  return %c1 : {t.mlir}
}}
"""


def step_ir(t, dtype="f32"):
    """@step(cache, k, v) -> cache, any token count."""
    b, h, _, d = t.shape
    tk = tensor(b, h, None, d, dtype=dtype)
    return f"""
func.func @step(%c: {t.mlir}, %k: {tk}, %v: {tk}) -> {t.mlir} {{
  %c1 = kv.append %c, %k, %v : {t.mlir}, {tk}, {tk}
  return %c1 : {t.mlir}
}}
"""


def scale_attr(scale):
    return "" if scale is None else f" {{scale = {scale:.17e} : f64}}"


def attend_ir(t, hq, scale=None):
    """@attend(q, cache) -> o."""
    b, _, _, d = t.shape
    tq = tensor(b, hq, d)
    return f"""
func.func @attend(%q: {tq}, %c: {t.mlir}) -> {tq} {{
  %o = kv.decode_attention %q, %c{scale_attr(scale)} : {tq}, {t.mlir} -> {tq}
  return %o : {tq}
}}
"""


def latent_fill_ir(t):
    tc = tensor(t.shape[0], None, t.rank, dtype="f32")
    return f"""
func.func @lfill(%c: {tc}) -> {t.mlir} {{
  %e = kv.empty : {t.mlir}
  %c1 = kv.append %e, %c : {t.mlir}, {tc}
  return %c1 : {t.mlir}
}}
"""


def latent_attend_ir(t, scale=None):
    b, h, _, d = t.shape
    tq, tu = tensor(b, h, d), tensor(t.rank, h, d)
    return f"""
func.func @attend(%q: {tq}, %c: {t.mlir}, %uk: {tu}, %uv: {tu}) -> {tq} {{
  %o = kv.decode_attention %q, %c up(%uk, %uv : {tu}, {tu}){scale_attr(scale)} : {tq}, {t.mlir} -> {tq}
  return %o : {tq}
}}
"""


@functools.lru_cache(maxsize=None)
def compiled(ir):
    return moka.compile(ir)


# ---------------------------------------------------------------------------
# kv.empty + kv.append: bit-exact storage.

# (B, H, T, D, G_t, G_c, R, S)
FILL_CASES = [
    (1, 2, 5, 16, 4, 8, 8, 32),      # T < R: window only
    (2, 1, 8, 16, 4, 8, 8, 32),      # T == R
    (2, 3, 9, 16, 4, 4, 8, 32),      # T == R + 1: first flush
    (1, 2, 15, 32, 4, 16, 8, 32),    # T == R + G_t + 3
    (1, 2, 32, 8, 4, 8, 8, 32),      # T == S, G_c == D
    (1, 1, 37, 16, 8, 16, 8, 40),    # G_t == R
    (1, 1, 64, 64, 16, 32, 64, 64),  # R == S == T: all in the window
    (1, 1, 13, 4, 4, 4, 4, 16),      # one byte per int2 row
    (1, 2, 300, 128, 32, 32, 128, 512),
]


@pytest.mark.parametrize("fmt", ["i8", "i4", "i2"])
@pytest.mark.parametrize("case", FILL_CASES,
                         ids=lambda c: "B{}H{}T{}D{}Gt{}Gc{}R{}S{}".format(*c))
def test_fill_quantized_bit_exact(fmt, case):
    b, h, tokens, d, gt, gc, r, s = case
    t = quantized((b, h, s, d), fmt, gt, gc, r)
    rng = np.random.default_rng(sum(case) + t.bits)
    k, v = random_kv(rng, b, h, tokens, d)
    got = moka.run(fill_ir(t, tokens), "fill", k, v)
    assert_storage_equal(got, kv_append(kv_empty(t), t, k, v), t)


@pytest.mark.parametrize("fmt", ["i8", "i4", "i2"])
def test_fill_dynamic_tokens_and_edge_values(fmt):
    """Dynamic T; groups with ties at half a step (round half to even),
    constant channels and tokens (scale 0), negative values."""
    t = quantized((1, 2, 32, 16), fmt, 4, 8, 8)
    levels = 2 ** t.bits - 1
    rng = np.random.default_rng(5)
    k, v = random_kv(rng, 1, 2, 20, 16)
    # Key group 0 (tokens 0..3): channel 0 spans [0, levels] with halves,
    # channel 1 is constant, channel 2 negative with halves.
    k[0, 0, :4, 0] = [0, levels, 0.5, 2.5]
    k[0, 0, :4, 1] = 3.25
    k[0, 0, :4, 2] = [-levels, 0, -1.5, -levels + 0.5]
    # Token 1's first value group: exact halves; token 2's: constant.
    v[0, 1, 1, :8] = [0, levels, 0.5, 1.5, 2.5, 3.5, 1, 0]
    v[0, 1, 2, :8] = -7.0
    ir = fill_ir(t, 20, dynamic=True)
    expected = kv_append(kv_empty(t), t, k, v)
    assert_storage_equal(moka.run(ir, "fill", k, v), expected, t)
    codes = kv_unpack(expected[0], t.bits, 16)
    assert list(codes[0, 0, :4, 0]) == [0, levels, 0, 2]
    assert not codes[0, 0, :4, 1].any() and expected[1][0, 0, 0, 1] == 0
    # Fewer tokens through the same function.
    expected = kv_append(kv_empty(t), t, k[:, :, :3], v[:, :, :3])
    assert_storage_equal(moka.run(ir, "fill", k[:, :, :3], v[:, :, :3]),
                         expected, t)


@pytest.mark.parametrize("fmt", ["f32", "f16", "bf16"])
@pytest.mark.parametrize("tokens", [7, 48])
def test_fill_float(fmt, tokens):
    t = KVCacheType((2, 3, 48, 32), fmt)
    rng = np.random.default_rng(tokens)
    k, v = random_kv(rng, 2, 3, tokens, 32)
    got = moka.run(fill_ir(t, tokens), "fill", k, v)
    assert_storage_equal(got, kv_append(kv_empty(t), t, k, v), t)


def test_fill_float_in_element_type():
    """f16 keys into an f16 cache; bf16 bits into a bf16 cache."""
    rng = np.random.default_rng(6)
    k, v = random_kv(rng, 1, 2, 9, 16)
    for fmt, dtype, conv in [("f16", "f16", lambda x: x.astype(np.float16)),
                             ("bf16", "bf16", moka.to_bf16_bits)]:
        t = KVCacheType((1, 2, 16, 16), fmt)
        kk, vv = conv(k), conv(v)
        got = moka.run(fill_ir(t, 9, dtype=dtype), "fill", kk, vv)
        assert_storage_equal(got, kv_append(kv_empty(t), t, kk, vv), t)


@pytest.mark.parametrize("fmt", ["f32", "f16"])
def test_fill_latent(fmt):
    t = KVCacheType((2, 4, 64, 16), fmt, rank=24)
    rng = np.random.default_rng(7)
    c = rng.standard_normal((2, 40, 24)).astype(np.float32)
    got = moka.run(latent_fill_ir(t), "lfill", c)
    assert_storage_equal(got, kv_append(kv_empty(t), t, c), t)


# ---------------------------------------------------------------------------
# Appends across calls.


def _steps(t, lib, schedule, seed):
    b, h, s, d = t.shape
    rng = np.random.default_rng(seed)
    k, v = random_kv(rng, b, h, sum(schedule), d)
    storage = kv_empty(t)
    expected = kv_empty(t)
    n = 0
    for size in schedule:
        kk, vv = k[:, :, n:n + size], v[:, :, n:n + size]
        storage = list(lib.step(*storage, kk, vv))
        expected = kv_append(expected, t, kk, vv)
        n += size
        assert_storage_equal(storage, expected, t)
    assert int(storage[-1]) == n


@pytest.mark.parametrize("fmt", ["i8", "i4", "i2"])
def test_append_one_token_at_a_time(fmt):
    t = quantized((2, 2, 64, 16), fmt, 8, 8, 16)
    _steps(t, compiled(step_ir(t)), [1] * 64, seed=t.bits)


@pytest.mark.parametrize("fmt", ["i8", "i4", "i2"])
def test_append_chunks(fmt):
    t = quantized((1, 3, 160, 32), fmt, 8, 16, 24)
    schedule = [3, 0, 21, 1, 24, 9, 8, 40, 1, 1, 17, 35]
    assert sum(schedule) == 160
    _steps(t, compiled(step_ir(t)), schedule, seed=20 + t.bits)


@pytest.mark.parametrize("fmt", ["f32", "f16", "bf16"])
def test_append_chunks_float(fmt):
    t = KVCacheType((2, 2, 40, 8), fmt)
    _steps(t, compiled(step_ir(t)), [1, 4, 0, 15, 1, 19], seed=30)


def test_append_across_moka_run_calls():
    """The same with moka-run: results in the expanded storage order."""
    t = quantized((1, 2, 32, 16), "i4", 4, 8, 8)
    rng = np.random.default_rng(8)
    k, v = random_kv(rng, 1, 2, 14, 16)
    storage, expected, n = kv_empty(t), kv_empty(t), 0
    for size in [7, 2, 5]:
        kk, vv = k[:, :, n:n + size], v[:, :, n:n + size]
        storage = moka.run(step_ir(t), "step", *storage, kk, vv)
        expected = kv_append(expected, t, kk, vv)
        assert len(storage) == 9
        assert_storage_equal(storage, expected, t)
        n += size


# ---------------------------------------------------------------------------
# Capacity.


@pytest.mark.parametrize("t", [
    quantized((1, 2, 32, 16), "i4", 4, 8, 8),
    KVCacheType((1, 2, 32, 16), "f16"),
], ids=["i4", "f16"])
def test_capacity_is_a_run_time_error(t):
    lib = compiled(step_ir(t))
    rng = np.random.default_rng(9)
    k, v = random_kv(rng, 1, 2, 33, 16)
    storage = list(lib.step(*kv_empty(t), k[:, :, :30], v[:, :, :30]))
    with pytest.raises(moka.MokaError, match="capacity"):
        lib.step(*storage, k[:, :, 30:33], v[:, :, 30:33])
    # The library is still usable, and S tokens exactly fit.
    full = list(lib.step(*storage, k[:, :, 30:32], v[:, :, 30:32]))
    expected = kv_append(kv_empty(t), t, k[:, :, :32], v[:, :, :32])
    assert_storage_equal(full, expected, t)
    with pytest.raises(moka.MokaError, match="capacity"):
        lib.step(*full, k[:, :, :1], v[:, :, :1])
    with pytest.raises(moka.MokaError, match="capacity"):
        moka.run(fill_ir(t, 33, dynamic=True), "fill", k, v)


def test_capacity_latent():
    t = KVCacheType((1, 2, 16, 8), "f32", rank=4)
    with pytest.raises(moka.MokaError, match="capacity"):
        moka.run(latent_fill_ir(t), "lfill", np.zeros((1, 17, 4), np.float32))


def test_capacity_static_token_count():
    """More tokens than the capacity in a static shape: rejected (at compile
    time or at run time), never written out of bounds."""
    t = quantized((1, 1, 16, 8), "i8", 4, 8, 8)
    k = np.ones((1, 1, 17, 8), np.float32)
    with pytest.raises(moka.MokaError, match="capacity"):
        moka.run(fill_ir(t, 17), "fill", k, k)


@pytest.mark.parametrize("t", [
    quantized((1, 2, 64, 16), "i4", 8, 8, 16),
    KVCacheType((1, 2, 64, 16), "f32"),
], ids=["i4", "f32"])
@pytest.mark.parametrize("length", [65, 1 << 40, -1])
def test_invalid_length_is_an_error(t, length):
    """Storage comes from the host: a length outside [0, S] is a run-time
    error (message naming the length or capacity), neither a read nor a
    write out of bounds. (docs/kv.md does not say this; moka's contract,
    "validate arguments and return errors, never crash", does.) Run through
    moka-run so that a crash cannot take pytest down."""
    storage = kv_empty(t)
    storage[-1] = np.array(length, np.int64)
    q = np.ones((1, 2, 16), np.float32)
    with pytest.raises(moka.MokaError, match=r"length|capacity"):
        moka.run(attend_ir(t, 2), "attend", q, *storage)
    k = np.ones((1, 2, 1, 16), np.float32)
    with pytest.raises(moka.MokaError, match=r"length|capacity"):
        moka.run(step_ir(t), "step", *storage, k, k)


# ---------------------------------------------------------------------------
# Decode attention.

# (B, H_kv, g, S, D): MHA and GQA (H_q = 4 H_kv).
ATTENTION_SHAPES = [(1, 4, 1, 256, 64), (2, 2, 4, 1024, 128),
                    (1, 8, 4, 512, 128)]


def cache_type(fmt, shape):
    if fmt in ("i8", "i4", "i2"):
        return quantized(shape, fmt, 32, 32, 128)
    return KVCacheType(shape, fmt)


def lengths(t):
    s = t.capacity
    return sorted({0, 1, 5, 127, 128, 129, 128 + 32 + 3, 2 * 128 + 17,
                   s - 7, s} & set(range(s + 1)))


def check_attention(t, g, scale, seed, lib=None):
    """Decode attention at every length of lengths(t), fresh queries each,
    against float64 attention over the dequantized cache; `lib` runs
    attend_ir (by default the module compiled for the host)."""
    b, h, s, d = t.shape
    lib = lib or compiled(attend_ir(t, g * h, scale))
    rng = np.random.default_rng(seed)
    k, v = random_kv(rng, b, h, s, d)
    storage = kv_empty(t)
    for n in lengths(t):
        storage = kv_append(storage, t, k[:, :, int(storage[-1]):n],
                            v[:, :, int(storage[-1]):n])
        q = rng.standard_normal((b, g * h, d)).astype(np.float32)
        o = lib.attend(q, *storage)
        assert o.shape == q.shape and o.dtype == np.float32
        if n == 0:
            assert not o.any(), "no tokens: the output is zero"
            continue
        keys, values = kv_dequantized(storage, t)
        expected = ref.kv_decode_attention(q, keys, values, scale)
        err = rel_err(o, expected)
        assert err <= TOL, f"n={n}: rel err {err:.2e}"


@pytest.mark.parametrize("fmt", ["f32", "f16", "i8", "i4", "i2"])
@pytest.mark.parametrize("shape", ATTENTION_SHAPES[:2],
                         ids=["mha", "gqa"])
def test_decode_attention(fmt, shape):
    b, h, g, s, d = shape
    t = cache_type(fmt, (b, h, s, d))
    check_attention(t, g, None, seed=s + t.bits)


@pytest.mark.parametrize("g", [2, 8, 16])
@pytest.mark.parametrize("fmt,d", [("f32", 16), ("f32", 24), ("i4", 32),
                                   ("i2", 32), ("i8", 64)])
def test_decode_attention_group_sizes(fmt, d, g):
    """More query heads per key/value head (2, 8, 16) and head sizes whose
    rows are not whole 16-lane vectors (8 and 24 lanes) or are one (16)."""
    t = cache_type(fmt, (1, 2, 320, d))
    check_attention(t, g, None, seed=g * d + t.bits)


@pytest.mark.parametrize("fmt", ["f32", "bf16", "i4"])
def test_decode_attention_explicit_scale(fmt):
    b, h, g, s, d = ATTENTION_SHAPES[2]
    t = cache_type(fmt, (b, h, s, d))
    check_attention(t, g, 0.05, seed=40)


@pytest.mark.parametrize("fmt", ["f32", "i8", "i4"])
def test_decode_attention_long_cache(fmt):
    """A long cache (S = 8192, few heads): errors that grow with the number
    of tokens (accumulation, a split of the dequantization's affine map
    into separate sums) show here first."""
    t = cache_type(fmt, (1, 2, 8192, 128))
    lib = compiled(attend_ir(t, 8))
    rng = np.random.default_rng(80 + t.bits)
    k, v = random_kv(rng, 1, 2, 8192, 128)
    for n in [8192 - 5, 8192]:
        storage = kv_append(kv_empty(t), t, k[:, :, :n], v[:, :, :n])
        q = rng.standard_normal((1, 8, 128)).astype(np.float32)
        err = rel_err(lib.attend(q, *storage), kv_attention(q, storage, t))
        assert err <= TOL, f"n={n}: rel err {err:.2e}"


def test_append_then_attend_in_one_function():
    t = quantized((1, 2, 256, 64), "i4", 32, 32, 64)
    tk, tq = tensor(1, 2, None, 64), tensor(1, 8, 64)
    ir = f"""
func.func @f(%c: {t.mlir}, %k: {tk}, %v: {tk}, %q: {tq}) -> ({t.mlir}, {tq}) {{
  %c1 = kv.append %c, %k, %v : {t.mlir}, {tk}, {tk}
  %o = kv.decode_attention %q, %c1 : {tq}, {t.mlir} -> {tq}
  return %c1, %o : {t.mlir}, {tq}
}}
"""
    lib = compiled(ir)
    rng = np.random.default_rng(11)
    k, v = random_kv(rng, 1, 2, 200, 64)
    storage, expected, n = kv_empty(t), kv_empty(t), 0
    for size in [70, 1, 129]:
        q = rng.standard_normal((1, 8, 64)).astype(np.float32)
        kk, vv = k[:, :, n:n + size], v[:, :, n:n + size]
        *storage, o = lib.f(*storage, kk, vv, q)
        expected = kv_append(expected, t, kk, vv)
        n += size
        assert_storage_equal(storage, expected, t)
        assert rel_err(o, kv_attention(q, expected, t)) <= TOL


# ---------------------------------------------------------------------------
# Latent caches.

LATENT = KVCacheType((2, 4, 256, 32), "f32", rank=64)


def latent_data(rng, t, n):
    b, h, _, d = t.shape
    c = rng.standard_normal((b, n, t.rank)).astype(np.float32)
    uk = (rng.standard_normal((t.rank, h, d)) / np.sqrt(t.rank)).astype(
        np.float32)
    uv = (rng.standard_normal((t.rank, h, d)) / np.sqrt(t.rank)).astype(
        np.float32)
    return c, uk, uv


@pytest.mark.parametrize("n", [0, 1, 37, 256])
def test_latent_attention(n):
    t = LATENT
    rng = np.random.default_rng(50 + n)
    c, uk, uv = latent_data(rng, t, n)
    storage = kv_append(kv_empty(t), t, c)
    q = rng.standard_normal((2, 4, 32)).astype(np.float32)
    o = compiled(latent_attend_ir(t)).attend(q, *storage, uk, uv)
    if n == 0:
        assert not o.any()
        return
    assert rel_err(o, ref.kv_latent_attention(q, c, uk, uv)) <= TOL


def test_latent_absorbed_form():
    """kv-absorb-latent-projections: attention on the latent, same numbers."""
    t = LATENT
    ir = latent_attend_ir(t)
    proc = subprocess.run([moka.find_tool("moka-opt"),
                           "--kv-absorb-latent-projections"],
                          input=ir, capture_output=True, text=True,
                          timeout=300)
    assert proc.returncode == 0, proc.stderr
    absorbed = proc.stdout
    assert "kv.decode_attention" in absorbed
    assert not re.search(r"kv\.decode_attention[^\n]*\bup\s*\(", absorbed), (
        "the up-projections are still on the attention")
    rng = np.random.default_rng(60)
    c, uk, uv = latent_data(rng, t, 200)
    storage = kv_append(kv_empty(t), t, c)
    q = rng.standard_normal((2, 4, 32)).astype(np.float32)
    expected = ref.kv_latent_attention(q, c, uk, uv)
    assert np.allclose(expected,
                       ref.kv_latent_attention_absorbed(q, c, uk, uv),
                       atol=1e-12)
    (o_absorbed,) = moka.run(absorbed, "attend", q, *storage, uk, uv)
    (o_direct,) = moka.run(ir, "attend", q, *storage, uk, uv)
    assert rel_err(o_absorbed, expected) <= TOL
    assert rel_err(o_direct, expected) <= TOL


@pytest.mark.parametrize("scale", [None, 0.1])
def test_latent_attention_without_up(scale):
    """Attention on the latent itself (keys = values = c for every query
    head); the default scale is 1 / sqrt(D) of the cache type."""
    t = LATENT
    b, tq = 2, tensor(2, 6, t.rank)
    ir = f"""
func.func @attend(%q: {tq}, %c: {t.mlir}) -> {tq} {{
  %o = kv.decode_attention %q, %c{scale_attr(scale)} : {tq}, {t.mlir} -> {tq}
  return %o : {tq}
}}
"""
    rng = np.random.default_rng(70)
    c, _, _ = latent_data(rng, t, 100)
    storage = kv_append(kv_empty(t), t, c)
    q = rng.standard_normal((b, 6, t.rank)).astype(np.float32)
    (o,) = moka.run(ir, "attend", q, *storage)
    expected = kv_attention(q, storage, t, scale=scale)
    assert rel_err(o, expected) <= TOL


# ---------------------------------------------------------------------------
# Verifier rules: each violation is a compile error with a useful message.

Q4 = "!kv.cache<1x2x32x16, i4, key_group = 4, value_group = 8, window = 8>"


def verify(ir):
    """Parses and verifies `ir` with moka-opt; MokaError with its message
    when that fails."""
    proc = subprocess.run([moka.find_tool("moka-opt")], input=ir,
                          capture_output=True, text=True, timeout=300)
    if proc.returncode != 0:
        raise moka.MokaError(proc.stderr.strip())
    return proc.stdout


def _empty_fn(cache):
    return f"""
func.func @f() -> {cache} {{
  %c = kv.empty : {cache}
  return %c : {cache}
}}
"""


TYPE_ERRORS = [
    ("f64", "!kv.cache<1x2x32x16, f64>", r"format|f64"),
    ("i3", "!kv.cache<1x2x32x16, i3, key_group = 4, value_group = 8, "
     "window = 8>", r"bit|format|i3"),
    ("no_window", "!kv.cache<1x2x32x16, i4, key_group = 4, value_group = 8>",
     r"window"),
    ("quantized_rank", "!kv.cache<1x2x32x16, i4, key_group = 4, "
     "value_group = 8, window = 8, rank = 4>", r"rank|latent"),
    ("float_groups", "!kv.cache<1x2x32x16, f32, key_group = 4>",
     r"quantized|key_group"),
    ("value_group", "!kv.cache<1x2x32x16, i4, key_group = 4, "
     "value_group = 6, window = 8>", r"value.group|G_c"),
    ("key_group", "!kv.cache<1x2x30x16, i4, key_group = 4, value_group = 8, "
     "window = 8>", r"key.group|G_t"),
    ("window_lt_group", "!kv.cache<1x2x32x16, i4, key_group = 8, "
     "value_group = 8, window = 4>", r"window"),
    ("window_gt_capacity", "!kv.cache<1x2x32x16, i4, key_group = 8, "
     "value_group = 8, window = 64>", r"window|capacity"),
    ("window_multiple", "!kv.cache<1x2x32x16, i4, key_group = 8, "
     "value_group = 8, window = 12>", r"window"),
    ("bytes", "!kv.cache<1x2x32x2, i2, key_group = 4, value_group = 2, "
     "window = 8>", r"byte|bit"),
    ("rank_zero", "!kv.cache<1x2x32x16, f32, rank = 0>", r"rank"),
    ("rank_negative", "!kv.cache<1x2x32x16, f32, rank = -3>", r"rank"),
    ("zero_size", "!kv.cache<1x0x32x16, f32>", r"positive|size"),
    ("three_sizes", "!kv.cache<2x32x16, f32>", r"shape|B x H x S x D|sizes"),
]


@pytest.mark.parametrize("cache,message", [c[1:] for c in TYPE_ERRORS],
                         ids=[c[0] for c in TYPE_ERRORS])
def test_type_verifier(cache, message):
    with pytest.raises(moka.MokaError, match=re.compile(message, re.I)):
        verify(_empty_fn(cache))


F4 = "!kv.cache<1x4x32x16, f32>"
L4 = "!kv.cache<1x4x32x16, f32, rank = 8>"
OP_ERRORS = [
    ("gqa_heads", F4, "%q: tensor<1x6x16xf32>",
     "kv.decode_attention %q, %c : tensor<1x6x16xf32>, {c} -> "
     "tensor<1x6x16xf32>", r"H_q|heads"),
    ("query_size", F4, "%q: tensor<1x4x8xf32>",
     "kv.decode_attention %q, %c : tensor<1x4x8xf32>, {c} -> "
     "tensor<1x4x8xf32>", r"query|head size"),
    ("result_type", F4, "%q: tensor<1x4x16xf32>",
     "kv.decode_attention %q, %c : tensor<1x4x16xf32>, {c} -> "
     "tensor<1x8x16xf32>", r"result"),
    ("scale", F4, "%q: tensor<1x4x16xf32>",
     "kv.decode_attention %q, %c {{scale = -1.0 : f64}} : "
     "tensor<1x4x16xf32>, {c} -> tensor<1x4x16xf32>", r"scale"),
    ("append_heads", F4, "%k: tensor<1x2x?x16xf32>",
     "kv.append %c, %k, %k : {c}, tensor<1x2x?x16xf32>, "
     "tensor<1x2x?x16xf32>", r"keys|heads|shape"),
    ("append_tokens", F4, "%k: tensor<1x4x3x16xf32>, %v: tensor<1x4x2x16xf32>",
     "kv.append %c, %k, %v : {c}, tensor<1x4x3x16xf32>, "
     "tensor<1x4x2x16xf32>", r"token|values"),
    ("append_no_values", F4, "%k: tensor<1x4x3x16xf32>",
     "kv.append %c, %k : {c}, tensor<1x4x3x16xf32>", r"values"),
    ("append_f64", F4, "%k: tensor<1x4x3x16xf64>",
     "kv.append %c, %k, %k : {c}, tensor<1x4x3x16xf64>, "
     "tensor<1x4x3x16xf64>", r"f32|float|type"),
    ("latent_two_operands", L4, "%k: tensor<1x3x8xf32>",
     "kv.append %c, %k, %k : {c}, tensor<1x3x8xf32>, tensor<1x3x8xf32>",
     r"latent"),
    ("latent_width", L4, "%k: tensor<1x3x7xf32>",
     "kv.append %c, %k : {c}, tensor<1x3x7xf32>", r"latent|rank"),
    ("up_on_float_cache", F4, "%q: tensor<1x4x16xf32>, "
     "%u: tensor<8x4x16xf32>",
     "kv.decode_attention %q, %c up(%u, %u : tensor<8x4x16xf32>, "
     "tensor<8x4x16xf32>) : tensor<1x4x16xf32>, {c} -> tensor<1x4x16xf32>",
     r"latent|up"),
    ("up_shape", L4, "%q: tensor<1x4x16xf32>, %u: tensor<8x4x12xf32>",
     "kv.decode_attention %q, %c up(%u, %u : tensor<8x4x12xf32>, "
     "tensor<8x4x12xf32>) : tensor<1x4x16xf32>, {c} -> tensor<1x4x16xf32>",
     r"up"),
    ("up_query_heads", L4, "%q: tensor<1x8x16xf32>, %u: tensor<8x4x16xf32>",
     "kv.decode_attention %q, %c up(%u, %u : tensor<8x4x16xf32>, "
     "tensor<8x4x16xf32>) : tensor<1x8x16xf32>, {c} -> tensor<1x8x16xf32>",
     r"query|H_q|heads"),
    ("latent_query_width", L4, "%q: tensor<1x4x16xf32>",
     "kv.decode_attention %q, %c : tensor<1x4x16xf32>, {c} -> "
     "tensor<1x4x16xf32>", r"query|rank"),
]


@pytest.mark.parametrize("cache,args,op,message",
                         [c[1:] for c in OP_ERRORS],
                         ids=[c[0] for c in OP_ERRORS])
def test_op_verifier(cache, args, op, message):
    ir = f"""
func.func @f(%c: {cache}, {args}) {{
  %r = {op.format(c=cache)}
  return
}}
"""
    with pytest.raises(moka.MokaError, match=re.compile(message, re.I)):
        verify(ir)
