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


# ---------------------------------------------------------------------------
# kv: compressed key/value caches (docs/kv.md, semantics §3).
#
# A cache is simulated by its storage, the list of numpy arrays that stands
# for a `!kv.cache<...>` value at function boundaries, in the order and with
# the dtypes of docs/kv.md. Quantization is done in float32 arithmetic
# exactly as the spec writes it, so codes, scales and minima are bit-exact
# with a compiled f32 implementation; everything downstream of the storage
# (dequantization, attention) is float64.

_KV_FLOAT = {"f32": np.dtype(np.float32), "f16": np.dtype(np.float16),
             "bf16": np.dtype(np.uint16)}  # bf16: raw bits, as moka.run
_KV_BITS = {"i8": 8, "i4": 4, "i2": 2}


class KVCapacityError(ValueError):
    """Appending beyond a cache's capacity (kv.append's run-time error)."""


class KVCacheType:
    """The parameters of `!kv.cache<BxHxSxD, fmt[, key_group = G_t,
    value_group = G_c, window = R][, rank = r]>`, checked by the verifier
    rules of docs/kv.md (ValueError otherwise)."""

    def __init__(self, shape, fmt, key_group=None, value_group=None,
                 window=None, rank=None):
        shape = tuple(int(s) for s in shape)
        if len(shape) != 4:
            raise ValueError("cache shape must be B x H x S x D")
        if any(s <= 0 for s in shape):
            raise ValueError("cache sizes must be positive")
        if fmt not in _KV_FLOAT and fmt not in _KV_BITS:
            raise ValueError(f"unsupported cache format {fmt!r} "
                             "(f32, f16, bf16, i8, i4 or i2)")
        self.shape, self.fmt = shape, fmt
        self.key_group, self.value_group = key_group, value_group
        self.window, self.rank = window, rank
        groups = (key_group, value_group, window)
        if rank is not None and rank <= 0:
            raise ValueError("rank must be positive")
        b, h, s, d = shape
        if fmt in _KV_FLOAT:
            if any(p is not None for p in groups):
                raise ValueError("key_group, value_group and window apply to "
                                 "quantized caches only")
            return
        if rank is not None:
            raise ValueError("a latent cache stores a float format")
        if any(p is None or p <= 0 for p in groups):
            raise ValueError("a quantized cache needs positive key_group, "
                             "value_group and window")
        if d % value_group:
            raise ValueError("D is not divisible by the value group")
        if s % key_group:
            raise ValueError("S is not divisible by the key group")
        if not key_group <= window <= s or window % key_group:
            raise ValueError("the window must be a multiple of the key group "
                             "between G_t and S")
        if d * self.bits % 8:
            raise ValueError("D codes do not fill whole bytes")

    @property
    def quantized(self):
        return self.fmt in _KV_BITS

    @property
    def latent(self):
        return self.rank is not None

    @property
    def bits(self):
        return _KV_BITS.get(self.fmt, 0)

    @property
    def capacity(self):
        return self.shape[2]

    @property
    def head_size(self):
        return self.shape[3]

    @property
    def mlir(self):
        """The type's MLIR text."""
        text = f"!kv.cache<{'x'.join(map(str, self.shape))}, {self.fmt}"
        if self.quantized:
            text += (f", key_group = {self.key_group}, value_group = "
                     f"{self.value_group}, window = {self.window}")
        if self.latent:
            text += f", rank = {self.rank}"
        return text + ">"

    def __repr__(self):
        return self.mlir

    def storage_types(self):
        """[(name, shape, numpy dtype)] of the storage, in the spec's order."""
        b, h, s, d = self.shape
        length = ("length", (), np.dtype(np.int64))
        if self.latent:
            return [("c", (b, s, self.rank), _KV_FLOAT[self.fmt]), length]
        if not self.quantized:
            e = _KV_FLOAT[self.fmt]
            return [("k", (b, h, s, d), e), ("v", (b, h, s, d), e), length]
        p = d * self.bits // 8
        f32, i8 = np.dtype(np.float32), np.dtype(np.int8)
        kstat = (b, h, s // self.key_group, d)
        vstat = (b, h, s, d // self.value_group)
        win = (b, h, self.window, d)
        return [("kcodes", (b, h, s, p), i8), ("kscale", kstat, f32),
                ("kmin", kstat, f32), ("vcodes", (b, h, s, p), i8),
                ("vscale", vstat, f32), ("vmin", vstat, f32),
                ("wk", win, f32), ("wv", win, f32), length]

    def compressed(self, n):
        """n_c: tokens in the compressed part when the cache holds n."""
        if not self.quantized or n <= self.window:
            return 0
        g = self.key_group
        return g * (-(-(n - self.window) // g))

    def windowed(self, n):
        """w: tokens in the full-precision window when the cache holds n."""
        return n - self.compressed(n) if self.quantized else 0

    def storage_bytes(self, n=None):
        """Bytes of the storage: all of it (n None), or the part valid when
        the cache holds n tokens (what attention must read)."""
        types = self.storage_types()
        if n is None:
            return sum(int(np.prod(s, dtype=np.int64)) * dt.itemsize
                       for _, s, dt in types)
        b, h, _, d = self.shape
        if self.latent:
            return b * n * self.rank * _KV_FLOAT[self.fmt].itemsize + 8
        if not self.quantized:
            return 2 * b * h * n * d * _KV_FLOAT[self.fmt].itemsize + 8
        nc, w = self.compressed(n), self.windowed(n)
        p = d * self.bits // 8
        return b * h * (2 * nc * p + 2 * 4 * (nc // self.key_group) * d
                        + 2 * 4 * nc * (d // self.value_group)
                        + 2 * 4 * w * d) + 8


def kv_cache_type(shape, fmt=None, key_group=None, value_group=None,
                  window=None, rank=None):
    """A KVCacheType (passed through if `shape` already is one)."""
    if isinstance(shape, KVCacheType):
        return shape
    if isinstance(shape, dict):
        return KVCacheType(**shape)
    return KVCacheType(shape, fmt, key_group, value_group, window, rank)


def _f32_to_bf16_bits(x):
    """float32 -> bfloat16 bits, round to nearest even (moka.to_bf16_bits)."""
    x = np.ascontiguousarray(x, dtype=np.float32)
    bits = x.view(np.uint32)
    rounding = ((bits >> 16) & 1) + np.uint32(0x7FFF)
    out = ((bits + rounding) >> 16).astype(np.uint16)
    out[np.isnan(x)] = 0x7FC0
    return out


def _bf16_bits_to_f32(bits):
    return (np.asarray(bits, dtype=np.uint16).astype(np.uint32) << 16).view(
        np.float32)


def _as_f32(x):
    """Appended keys/values as float32: f32 as is, f16 exactly; uint16
    arrays are bf16 bits."""
    x = np.asarray(x)
    if x.dtype == np.uint16:
        return _bf16_bits_to_f32(x)
    return x.astype(np.float32, copy=False)


def _to_storage(x, fmt):
    """Appended float keys/values in a float cache's element type: f32 to
    f16/bf16 rounds to nearest even; f16 and bf16 inputs are exact in f32."""
    x32 = _as_f32(x)
    if fmt == "f32":
        return x32
    if fmt == "f16":
        return x32.astype(np.float16)
    return _f32_to_bf16_bits(x32)


def _from_storage(x, fmt):
    """A float cache's stored elements as float64."""
    if fmt == "bf16":
        return _bf16_bits_to_f32(x).astype(np.float64)
    return np.asarray(x).astype(np.float64)


def kv_quantize(x, bits, axis):
    """Asymmetric min-max quantization over `axis` in float32 arithmetic,
    exactly as docs/kv.md: mn = min, mx = max, scale = (mx - mn) / (2^b - 1),
    q = clamp(roundeven((x - mn) / scale), 0, 2^b - 1), q = 0 where
    scale == 0. Returns (codes uint8, scale f32, mn f32), the statistics
    with `axis` kept (size 1)."""
    x = np.asarray(x, dtype=np.float32)
    levels = np.float32(2 ** bits - 1)
    mn = x.min(axis=axis, keepdims=True)
    mx = x.max(axis=axis, keepdims=True)
    scale = (mx - mn) / levels
    with np.errstate(divide="ignore", invalid="ignore"):
        q = np.rint((x - mn) / scale)  # rint: round half to even
    q = np.clip(q, np.float32(0), levels)
    q = np.where(scale == 0, np.float32(0), q)
    return q.astype(np.uint8), scale, mn


def kv_quantize_keys(x, bits):
    """Keys of one key group [..., G_t, D]: statistics per channel over the
    group's tokens. Returns (codes [..., G_t, D], scale [..., D], mn)."""
    codes, scale, mn = kv_quantize(x, bits, axis=-2)
    return codes, scale[..., 0, :], mn[..., 0, :]


def kv_quantize_values(x, bits, group):
    """Values [..., D]: statistics per token over groups of `group`
    channels. Returns (codes [..., D], scale [..., D / group], mn)."""
    x = np.asarray(x, dtype=np.float32)
    d = x.shape[-1]
    grouped = x.reshape(*x.shape[:-1], d // group, group)
    codes, scale, mn = kv_quantize(grouped, bits, axis=-1)
    return codes.reshape(x.shape), scale[..., 0], mn[..., 0]


def kv_pack(codes, bits):
    """Packs codes [..., D] (0 .. 2^b - 1) into int8 bytes [..., D b / 8]:
    channel d goes to byte d b / 8 at bit (d b) % 8 (int4: even channel in
    the low nibble; int8: the code's bit pattern)."""
    codes = np.asarray(codes)
    if codes.size and (codes.min() < 0 or codes.max() >= 2 ** bits):
        raise ValueError(f"codes out of range for {bits} bits")
    per = 8 // bits
    d = codes.shape[-1]
    if d % per:
        raise ValueError("D codes do not fill whole bytes")
    c = codes.astype(np.uint32).reshape(*codes.shape[:-1], d // per, per)
    shifts = (np.arange(per, dtype=np.uint32) * bits)
    packed = (c << shifts).sum(axis=-1).astype(np.uint8)
    return packed.view(np.int8)


def kv_unpack(packed, bits, d):
    """The inverse of kv_pack: int8 (or uint8) bytes [..., P] -> codes
    [..., d] as uint8."""
    packed = np.asarray(packed)
    if packed.dtype == np.int8:
        packed = packed.view(np.uint8)
    packed = packed.astype(np.uint8)
    per = 8 // bits
    shifts = (np.arange(per, dtype=np.uint8) * bits)
    mask = np.uint8(2 ** bits - 1)
    codes = (packed[..., None] >> shifts) & mask
    codes = codes.reshape(*packed.shape[:-1], packed.shape[-1] * per)
    return codes[..., :d]


def kv_dequantize(codes, scale, mn):
    """x_hat = q * scale + mn, in float64 (statistics broadcast by the
    caller)."""
    return (np.asarray(codes, np.float64) * np.asarray(scale, np.float64)
            + np.asarray(mn, np.float64))


def kv_empty(shape, fmt=None, key_group=None, value_group=None, window=None,
             rank=None):
    """The storage of an empty cache (zeros; length a 0-d int64 array)."""
    t = kv_cache_type(shape, fmt, key_group, value_group, window, rank)
    return [np.zeros(s, dt) for _, s, dt in t.storage_types()]


def _check_storage(storage, t):
    types = t.storage_types()
    if len(storage) != len(types):
        raise ValueError(f"{t.mlir} has {len(types)} storage tensors, "
                         f"{len(storage)} given")
    for a, (name, shape, dt) in zip(storage, types):
        a = np.asarray(a)
        if a.shape != shape or a.dtype != dt:
            raise ValueError(f"storage tensor {name}: expected {shape} "
                             f"{dt}, got {a.shape} {a.dtype}")
    n = int(storage[-1])
    if not 0 <= n <= t.capacity:
        raise ValueError(f"storage length {n} outside [0, {t.capacity}]")
    return n


def _flush(st, t, nc):
    """Moves the oldest G_t window tokens into the compressed part as key
    group nc / G_t and shifts the window down."""
    kc, ks, km, vc, vs, vm, wk, wv, _ = st
    g, bits, r = t.key_group, t.bits, t.window
    codes, scale, mn = kv_quantize_keys(wk[:, :, :g], bits)
    kc[:, :, nc:nc + g] = kv_pack(codes, bits)
    ks[:, :, nc // g] = scale
    km[:, :, nc // g] = mn
    codes, scale, mn = kv_quantize_values(wv[:, :, :g], bits, t.value_group)
    vc[:, :, nc:nc + g] = kv_pack(codes, bits)
    vs[:, :, nc:nc + g] = scale
    vm[:, :, nc:nc + g] = mn
    for w in (wk, wv):
        w[:, :, :r - g] = w[:, :, g:].copy()
        w[:, :, r - g:] = 0


def kv_append(storage, t, k, v=None, inplace=False):
    """kv.append on storage: returns the new storage (a new list of arrays;
    with inplace=True the given arrays are updated and returned).

    Float caches: keys/values [B, H, T, D] are stored at rows [n, n + T)
    (converted to the element type). Latent caches: `k` is c[B, T, r].
    Quantized caches follow the window rule token by token: a token that
    arrives when the window holds R tokens first flushes the oldest G_t of
    them (keys quantized per channel as one key group, values per token in
    groups of G_c channels). Tokens that only fill the window are copied in
    runs, which is the same thing. Rows outside the valid regions are zero.
    Raises KVCapacityError ("kv.append: ... capacity") past S tokens."""
    t = kv_cache_type(t)
    n = _check_storage(storage, t)
    st = list(storage) if inplace else [np.array(a, copy=True)
                                        for a in storage]
    b, h, s, d = t.shape
    if t.latent:
        if v is not None:
            raise ValueError("a latent cache appends one tensor c[B, T, r]")
        c = np.asarray(k)
        if c.ndim != 3 or c.shape[0] != b or c.shape[2] != t.rank:
            raise ValueError(f"latent must be {b} x T x {t.rank}, got "
                             f"{c.shape}")
        count = c.shape[1]
    else:
        k, v = np.asarray(k), np.asarray(v)
        for name, x in (("keys", k), ("values", v)):
            if x.ndim != 4 or x.shape[:2] != (b, h) or x.shape[3] != d:
                raise ValueError(f"{name} must be {b} x {h} x T x {d}, got "
                                 f"{x.shape}")
        if k.shape != v.shape:
            raise ValueError("keys and values hold different token counts")
        count = k.shape[2]
    if n + count > s:
        raise KVCapacityError(f"kv.append: {n} + {count} tokens exceed the "
                              f"capacity {s}")
    if t.latent:
        st[0][:, n:n + count] = _to_storage(c, t.fmt)
    elif not t.quantized:
        st[0][:, :, n:n + count] = _to_storage(k, t.fmt)
        st[1][:, :, n:n + count] = _to_storage(v, t.fmt)
    else:
        k32, v32 = _as_f32(k), _as_f32(v)
        wk, wv = st[6], st[7]
        nc = t.compressed(n)
        w = n - nc
        i = 0
        while i < count:
            if w == t.window:
                _flush(st, t, nc)
                nc += t.key_group
                w -= t.key_group
            m = min(t.window - w, count - i)
            wk[:, :, w:w + m] = k32[:, :, i:i + m]
            wv[:, :, w:w + m] = v32[:, :, i:i + m]
            w += m
            i += m
        assert nc == t.compressed(n + count) and w == t.windowed(n + count)
    st[-1] = np.array(n + count, dtype=np.int64)
    return st


def kv_valid(storage, t):
    """The valid regions of the storage tensors (spec order): the parts the
    spec defines for the cache's length (rows [0, n_c) of codes and value
    statistics, key groups [0, n_c / G_t), window rows [0, w), rows [0, n)
    of a float or latent cache, the length)."""
    t = kv_cache_type(t)
    n = int(storage[-1])
    if t.latent:
        return [storage[0][:, :n], storage[1]]
    if not t.quantized:
        return [storage[0][:, :, :n], storage[1][:, :, :n], storage[2]]
    nc, w = t.compressed(n), t.windowed(n)
    ng = nc // t.key_group
    kc, ks, km, vc, vs, vm, wk, wv, ln = storage
    return [kc[:, :, :nc], ks[:, :, :ng], km[:, :, :ng], vc[:, :, :nc],
            vs[:, :, :nc], vm[:, :, :nc], wk[:, :, :w], wv[:, :, :w], ln]


def _kv_head(storage, t, b, h):
    """Float64 keys and values [n, D] of sequence b, kv head h."""
    n = int(storage[-1])
    if not t.quantized:
        return (_from_storage(storage[0][b, h, :n], t.fmt),
                _from_storage(storage[1][b, h, :n], t.fmt))
    kc, ks, km, vc, vs, vm, wk, wv, _ = storage
    nc, w = t.compressed(n), t.windowed(n)
    d, g, gc, bits = t.head_size, t.key_group, t.value_group, t.bits
    kq = kv_unpack(kc[b, h, :nc], bits, d).reshape(nc // g, g, d)
    keys = kv_dequantize(kq, ks[b, h, :nc // g, None, :],
                         km[b, h, :nc // g, None, :]).reshape(nc, d)
    vq = kv_unpack(vc[b, h, :nc], bits, d).reshape(nc, d // gc, gc)
    values = kv_dequantize(vq, vs[b, h, :nc, :, None],
                           vm[b, h, :nc, :, None]).reshape(nc, d)
    return (np.concatenate([keys, wk[b, h, :w].astype(np.float64)]),
            np.concatenate([values, wv[b, h, :w].astype(np.float64)]))


def kv_dequantized(storage, t):
    """The n cached tokens in float64: (keys, values) [B, H, n, D], the
    compressed part dequantized (x_hat = q scale + mn) followed by the window;
    for a latent cache the latent c [B, n, r]."""
    t = kv_cache_type(t)
    n = _check_storage(storage, t)
    if t.latent:
        return _from_storage(storage[0][:, :n], t.fmt)
    b, h, _, d = t.shape
    keys = np.empty((b, h, n, d))
    values = np.empty((b, h, n, d))
    for i in range(b):
        for j in range(h):
            keys[i, j], values[i, j] = _kv_head(storage, t, i, j)
    return keys, values


def _attend(q, keys, values, scale):
    """softmax(q keys^T scale) values for q [g, D], keys [n, D], float64."""
    s = (q @ keys.T) * scale
    s -= s.max(axis=-1, keepdims=True)
    p = np.exp(s)
    p /= p.sum(axis=-1, keepdims=True)
    return p @ values


def kv_decode_attention(q, keys, values, scale=None):
    """Decode attention in float64: q [B, H_q, D], keys [B, H_kv, n, D],
    values [B, H_kv, n, Dv]; query head h attends with kv head h // g
    (H_q = g H_kv); scale defaults to 1 / sqrt(D); zero output when n == 0.
    Returns [B, H_q, Dv]."""
    q = np.asarray(q, dtype=np.float64)
    return _grouped_attention(
        q, keys.shape[1], keys.shape[2], values.shape[3], q.shape[2], scale,
        lambda b, h: (np.asarray(keys[b, h], np.float64),
                      np.asarray(values[b, h], np.float64)))


def _grouped_attention(q, hkv, n, dv, d, scale, head):
    """Attention of q [B, H_q, D] where query head h uses key/value head
    h // (H_q / H_kv), whose keys and values `head(b, h)` returns; scale
    defaults to 1 / sqrt(d); zero output when n == 0."""
    bsz, hq = q.shape[:2]
    if hq % hkv:
        raise ValueError("H_q is not a multiple of H_kv")
    g = hq // hkv
    scale = 1.0 / np.sqrt(d) if scale is None else float(scale)
    out = np.zeros((bsz, hq, dv))
    if n == 0:
        return out
    for b in range(bsz):
        for h in range(hkv):
            keys, values = head(b, h)
            out[b, h * g:(h + 1) * g] = _attend(q[b, h * g:(h + 1) * g],
                                                keys, values, scale)
    return out


def kv_latent_keys_values(c, up_k, up_v):
    """K, V [B, H, n, D] of a latent c [B, n, r]: K = c @ up_k per head."""
    c = np.asarray(c, dtype=np.float64)
    return (np.einsum("bnr,rhd->bhnd", c, np.asarray(up_k, np.float64)),
            np.einsum("bnr,rhd->bhnd", c, np.asarray(up_v, np.float64)))


def kv_latent_attention(q, c, up_k, up_v, scale=None):
    """Decode attention over a latent cache with up-projections, float64:
    q [B, H, D], c [B, n, r], up_k/up_v [r, H, D]; scale 1 / sqrt(D)."""
    keys, values = kv_latent_keys_values(c, up_k, up_v)
    return kv_decode_attention(q, keys, values, scale)


def kv_latent_attention_absorbed(q, c, up_k, up_v, scale=None):
    """The same, with the up-projections absorbed (what
    kv-absorb-latent-projections produces): q' = q up_k^T per head,
    attention on the latent (keys = values = c, every head), o = o' up_v.
    The scale stays 1 / sqrt(D) of the original head size."""
    q = np.asarray(q, dtype=np.float64)
    up_k = np.asarray(up_k, np.float64)
    up_v = np.asarray(up_v, np.float64)
    scale = 1.0 / np.sqrt(up_k.shape[2]) if scale is None else scale
    c = np.asarray(c, dtype=np.float64)[:, None]
    qa = np.einsum("bhd,rhd->bhr", q, up_k)
    oa = kv_decode_attention(qa, c, c, scale)
    return np.einsum("bhr,rhd->bhd", oa, up_v)


def kv_attention(q, storage, t, scale=None, up_k=None, up_v=None):
    """kv.decode_attention on storage in float64, one (sequence, head) at a
    time, so that long caches need no dequantized copy of the whole cache.
    Latent caches: with up_k/up_v the up-projected attention (q [B, H, D]),
    without them attention on the latent itself (q [B, H_q, r]) with scale
    defaulting to 1 / sqrt(D) of the cache type."""
    t = kv_cache_type(t)
    n = _check_storage(storage, t)
    q = np.asarray(q, dtype=np.float64)
    if t.latent:
        c = _from_storage(storage[0][:, :n], t.fmt)
        if up_k is not None:
            return kv_latent_attention(q, c, up_k, up_v, scale)
        scale = 1.0 / np.sqrt(t.head_size) if scale is None else scale
        return kv_decode_attention(q, c[:, None], c[:, None], scale)
    d = t.head_size
    return _grouped_attention(q, t.shape[1], n, d, d, scale,
                              lambda b, h: _kv_head(storage, t, b, h))


def prefill_attention(q, k, v, causal=True, scale=None):
    """Attention within a block in float64: q [B, H_q, T, D], k and v
    [B, H_kv, T, D]; query head h uses key/value head h // (H_q / H_kv);
    with `causal`, query i attends to keys 0..i. Returns [B, H_q, T, D]."""
    q, k, v = (np.asarray(a, dtype=np.float64) for a in (q, k, v))
    _, hq, t, d = q.shape
    g = hq // k.shape[1]
    scale = 1.0 / np.sqrt(d) if scale is None else scale
    out = np.zeros_like(q)
    future = np.triu(np.ones((t, t), dtype=bool), 1)
    for h in range(hq):
        s = q[:, h] @ k[:, h // g].transpose(0, 2, 1) * scale
        if causal:
            s = np.where(future[None], -np.inf, s)
        p = np.exp(s - s.max(-1, keepdims=True))
        out[:, h] = (p / p.sum(-1, keepdims=True)) @ v[:, h // g]
    return out
