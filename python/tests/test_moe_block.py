"""A Mixtral-style MoE block written with moe.route, moe.dispatch,
moe.experts and moe.combine, against a float64 PyTorch reimplementation of
HF transformers' MixtralSparseMoeBlock (softmax over all experts, top-k,
renormalized, SwiGLU experts, weighted sum), and capacity dropping against a
float64 reimplementation of token-order dropping."""

import math

import numpy as np
import pytest
import torch

import moka
from moka.reference import relative_error

BLOCK = """
func.func @block(%x: tensor<?x{d}xf32>, %wg: tensor<{d}x{e}xf32>, %w1: tensor<{e}x{f}x{d}xf32>, %w2: tensor<{e}x{d}x{f}xf32>, %w3: tensor<{e}x{f}x{d}xf32>) -> (tensor<?x{d}xf32>, tensor<?x{k}xi32>) {{
  %c0 = arith.constant 0 : index
  %cst = arith.constant 0.0 : f32
  %t = tensor.dim %x, %c0 : tensor<?x{d}xf32>
  %e0 = tensor.empty(%t) : tensor<?x{e}xf32>
  %z = linalg.fill ins(%cst : f32) outs(%e0 : tensor<?x{e}xf32>) -> tensor<?x{e}xf32>
  %logits = linalg.matmul ins(%x, %wg : tensor<?x{d}xf32>, tensor<{d}x{e}xf32>) outs(%z : tensor<?x{e}xf32>) -> tensor<?x{e}xf32>
  %w, %i = moe.route %logits {{k = {k} : i64, normalize = true}} : tensor<?x{e}xf32> -> tensor<?x{k}xf32>, tensor<?x{k}xi32>
  %rows, %offsets, %slots = moe.dispatch %i {{num_experts = {e} : i64{capacity}}} : tensor<?x{k}xi32> -> tensor<?xi32>, tensor<{e1}xi32>, tensor<?x{k}xi32>
  %y = moe.experts swiglu %x, %rows, %offsets, %w1, %w2 up(%w3 : tensor<{e}x{f}x{d}xf32>) : tensor<?x{d}xf32>, tensor<?xi32>, tensor<{e1}xi32>, tensor<{e}x{f}x{d}xf32>, tensor<{e}x{d}x{f}xf32> -> tensor<?x{d}xf32>
  %out = moe.combine %y, %slots, %w : tensor<?x{d}xf32>, tensor<?x{k}xi32>, tensor<?x{k}xf32> -> tensor<?x{d}xf32>
  return %out, %i : tensor<?x{d}xf32>, tensor<?x{k}xi32>
}}
"""


def block(d, e, f, k, capacity=None):
    cap = f", capacity_factor = {capacity!r} : f64" if capacity else ""
    return BLOCK.format(d=d, e=e, f=f, k=k, e1=e + 1, capacity=cap)


def mixtral_block(x, wg, w1, w2, w3, k, capacity=None):
    """HF MixtralSparseMoeBlock in float64 (wg as [d, E]); with `capacity`,
    each expert keeps its first ceil(capacity * T * k / E) assignments in
    token order."""
    x = torch.tensor(x, dtype=torch.float64)
    wg, w1, w2, w3 = (torch.tensor(a, dtype=torch.float64)
                      for a in (wg, w1, w2, w3))
    t, e = x.shape[0], wg.shape[1]
    weights = torch.softmax(x @ wg, dim=1)
    weights, experts = torch.topk(weights, k, dim=-1)
    weights = weights / weights.sum(dim=-1, keepdim=True)
    keep = torch.ones_like(weights, dtype=torch.bool)
    if capacity is not None:
        cap = math.ceil(capacity * t * k / e)
        used = [0] * e
        for tok in range(t):
            for s in range(k):
                ex = int(experts[tok, s])
                keep[tok, s] = used[ex] < cap
                used[ex] += int(keep[tok, s])
    out = torch.zeros_like(x)
    for ex in range(e):
        tok, slot = torch.where((experts == ex) & keep)
        if len(tok) == 0:
            continue
        cur = x[tok]
        h = torch.nn.functional.silu(cur @ w1[ex].T) * (cur @ w3[ex].T)
        out.index_add_(0, tok, (h @ w2[ex].T) * weights[tok, slot, None])
    return out.numpy(), experts.numpy()


def random_block(rng, t, d, e, f):
    x = rng.standard_normal((t, d)).astype(np.float32)
    wg = rng.standard_normal((d, e)).astype(np.float32)
    w1 = (rng.standard_normal((e, f, d)) / math.sqrt(d)).astype(np.float32)
    w3 = (rng.standard_normal((e, f, d)) / math.sqrt(d)).astype(np.float32)
    w2 = (rng.standard_normal((e, d, f)) / math.sqrt(f)).astype(np.float32)
    return x, wg, w1, w2, w3


@pytest.mark.parametrize("tokens", [1, 16, 130])
def test_mixtral_block(tokens):
    rng = np.random.default_rng()
    d, e, f, k = 64, 8, 96, 2
    x, wg, w1, w2, w3 = random_block(rng, tokens, d, e, f)
    out, experts = moka.run(block(d, e, f, k), "block", x, wg, w1, w2, w3)
    ref, ref_experts = mixtral_block(x, wg, w1, w2, w3, k)
    assert (experts == ref_experts).all()
    assert relative_error(out, ref) <= 1e-5


@pytest.mark.parametrize("capacity", [0.5, 1.0, 1.25])
def test_capacity_dropping(capacity):
    rng = np.random.default_rng()
    d, e, f, k, tokens = 32, 4, 48, 2, 50
    x, wg, w1, w2, w3 = random_block(rng, tokens, d, e, f)
    out, _ = moka.run(block(d, e, f, k, capacity), "block", x, wg, w1, w2,
                      w3)
    ref, _ = mixtral_block(x, wg, w1, w2, w3, k, capacity)
    assert relative_error(out, ref) <= 1e-5


def test_fine_grained():
    """Many small experts with a larger k (DeepSeekMoE's fine grain)."""
    rng = np.random.default_rng()
    d, e, f, k, tokens = 48, 64, 16, 6, 40
    x, wg, w1, w2, w3 = random_block(rng, tokens, d, e, f)
    out, experts = moka.run(block(d, e, f, k), "block", x, wg, w1, w2, w3)
    ref, ref_experts = mixtral_block(x, wg, w1, w2, w3, k)
    assert (experts == ref_experts).all()
    assert relative_error(out, ref) <= 1e-5


DISPATCH = """
func.func @dispatch(%i: tensor<?x{k}xi32>) -> (tensor<?xi32>, tensor<{e1}xi32>, tensor<?x{k}xi32>) {{
  %rows, %offsets, %slots = moe.dispatch %i {{num_experts = {e} : i64{capacity}}} : tensor<?x{k}xi32> -> tensor<?xi32>, tensor<{e1}xi32>, tensor<?x{k}xi32>
  return %rows, %offsets, %slots : tensor<?xi32>, tensor<{e1}xi32>, tensor<?x{k}xi32>
}}
"""


@pytest.mark.parametrize("capacity", [None, 0.75])
def test_dispatch_layout(capacity):
    """rows, offsets and slots as a stable sort by expert in (token, slot)
    order, with the first assignments kept under a capacity."""
    rng = np.random.default_rng()
    t, k, e = 37, 3, 5
    experts = np.stack([rng.permutation(e)[:k] for _ in range(t)]).astype(
        np.int32)
    cap_attr = f", capacity_factor = {capacity!r} : f64" if capacity else ""
    rows, offsets, slots = moka.run(
        DISPATCH.format(k=k, e=e, e1=e + 1, capacity=cap_attr), "dispatch",
        experts)
    cap = math.ceil(capacity * t * k / e) if capacity else t * k
    ref_rows, ref_slots = [], -np.ones((t, k), np.int64)
    ref_offsets = [0]
    for ex in range(e):
        kept = [(tok, s) for tok in range(t) for s in range(k)
                if experts[tok, s] == ex][:cap]
        for tok, s in kept:
            ref_slots[tok, s] = len(ref_rows)
            ref_rows.append(tok)
        ref_offsets.append(len(ref_rows))
    ref_rows += [-1] * (t * k - len(ref_rows))
    assert rows.tolist() == ref_rows
    assert offsets.tolist() == ref_offsets
    assert slots.tolist() == ref_slots.tolist()


def test_dispatch_rejects_bad_expert_index():
    experts = np.array([[0, 7]], np.int32)
    with pytest.raises(moka.MokaError, match="expert index out of range"):
        moka.run(DISPATCH.format(k=2, e=4, e1=5, capacity=""), "dispatch",
                 experts)


GELU_BLOCK = """
func.func @block(%x: tensor<?x32xf32>, %logits: tensor<?x4xf32>, %w1: tensor<4x40x32xf32>, %w2: tensor<4x32x40xf32>, %sh: tensor<?x32xf32>) -> tensor<?x32xf32> {
  %w, %i = moe.route %logits {k = 2 : i64} : tensor<?x4xf32> -> tensor<?x2xf32>, tensor<?x2xi32>
  %rows, %offsets, %slots = moe.dispatch %i {num_experts = 4 : i64} : tensor<?x2xi32> -> tensor<?xi32>, tensor<5xi32>, tensor<?x2xi32>
  %y = moe.experts gelu %x, %rows, %offsets, %w1, %w2 : tensor<?x32xf32>, tensor<?xi32>, tensor<5xi32>, tensor<4x40x32xf32>, tensor<4x32x40xf32> -> tensor<?x32xf32>
  %out = moe.combine %y, %slots, %w shared(%sh : tensor<?x32xf32>) : tensor<?x32xf32>, tensor<?x2xi32>, tensor<?x2xf32> -> tensor<?x32xf32>
  return %out : tensor<?x32xf32>
}
"""


def test_gelu_experts_with_shared_output():
    rng = np.random.default_rng()
    t = 23
    x = rng.standard_normal((t, 32)).astype(np.float32)
    logits = rng.standard_normal((t, 4)).astype(np.float32)
    w1 = (rng.standard_normal((4, 40, 32)) / 6).astype(np.float32)
    w2 = (rng.standard_normal((4, 32, 40)) / 6).astype(np.float32)
    sh = rng.standard_normal((t, 32)).astype(np.float32)
    (out,) = moka.run(GELU_BLOCK, "block", x, logits, w1, w2, sh)
    xt = torch.tensor(x, dtype=torch.float64)
    probs = torch.softmax(torch.tensor(logits, dtype=torch.float64), dim=1)
    weights, experts = torch.topk(probs, 2, dim=-1)
    ref = torch.tensor(sh, dtype=torch.float64).clone()
    for tok in range(t):
        for s in range(2):
            ex = int(experts[tok, s])
            h = torch.nn.functional.gelu(
                xt[tok] @ torch.tensor(w1[ex], dtype=torch.float64).T)
            ref[tok] += weights[tok, s] * (
                h @ torch.tensor(w2[ex], dtype=torch.float64).T)
    assert relative_error(out, ref.numpy()) <= 1e-5


DEEPSEEK = """
func.func @block(%x: tensor<?x{d}xf32>, %wg: tensor<{d}x{e}xf32>, %bias: tensor<{e}xf32>, %w1: tensor<{e}x{f}x{d}xf32>, %w2: tensor<{e}x{d}x{f}xf32>, %w3: tensor<{e}x{f}x{d}xf32>, %s1: tensor<{fs}x{d}xf32>, %s2: tensor<{d}x{fs}xf32>, %s3: tensor<{fs}x{d}xf32>) -> (tensor<?x{d}xf32>, tensor<?x{k}xi32>) {{
  %c0 = arith.constant 0 : index
  %cst = arith.constant 0.0 : f32
  %t = tensor.dim %x, %c0 : tensor<?x{d}xf32>
  %e0 = tensor.empty(%t) : tensor<?x{e}xf32>
  %z = linalg.fill ins(%cst : f32) outs(%e0 : tensor<?x{e}xf32>) -> tensor<?x{e}xf32>
  %logits = linalg.matmul ins(%x, %wg : tensor<?x{d}xf32>, tensor<{d}x{e}xf32>) outs(%z : tensor<?x{e}xf32>) -> tensor<?x{e}xf32>
  %w, %i = moe.route %logits bias(%bias : tensor<{e}xf32>) {{k = {k} : i64, scoring = #moe<scoring sigmoid>, n_group = {g} : i64, topk_group = {tg} : i64, group_score = #moe<group_score top2_sum>, normalize = true, routed_scaling_factor = 2.5 : f64}} : tensor<?x{e}xf32> -> tensor<?x{k}xf32>, tensor<?x{k}xi32>
  %rows, %offsets, %slots = moe.dispatch %i {{num_experts = {e} : i64}} : tensor<?x{k}xi32> -> tensor<?xi32>, tensor<{e1}xi32>, tensor<?x{k}xi32>
  %y = moe.experts swiglu %x, %rows, %offsets, %w1, %w2 up(%w3 : tensor<{e}x{f}x{d}xf32>) : tensor<?x{d}xf32>, tensor<?xi32>, tensor<{e1}xi32>, tensor<{e}x{f}x{d}xf32>, tensor<{e}x{d}x{f}xf32> -> tensor<?x{d}xf32>
  %sh = moe.shared_experts swiglu %x, %s1, %s2 up(%s3 : tensor<{fs}x{d}xf32>) : tensor<?x{d}xf32>, tensor<{fs}x{d}xf32>, tensor<{d}x{fs}xf32> -> tensor<?x{d}xf32>
  %out = moe.combine %y, %slots, %w shared(%sh : tensor<?x{d}xf32>) : tensor<?x{d}xf32>, tensor<?x{k}xi32>, tensor<?x{k}xf32> -> tensor<?x{d}xf32>
  return %out, %i : tensor<?x{d}xf32>, tensor<?x{k}xi32>
}}
"""


def deepseek_v3_moe(x, wg, bias, w1, w2, w3, s1, s2, s3, k, n_group,
                    topk_group):
    """DeepSeek-V3's MoE layer in float64: noaux_tc gate (sigmoid, bias for
    selection, group-limited top-k by top-2 sums, normalized, x2.5), SwiGLU
    routed experts, one shared expert added."""
    from test_moe_route import deepseek_v3_gate
    xt = torch.tensor(x, dtype=torch.float64)
    logits = (xt @ torch.tensor(wg, dtype=torch.float64)).numpy()
    weights, experts = deepseek_v3_gate(logits, bias, k, n_group, topk_group)
    w1, w2, w3, s1, s2, s3 = (torch.tensor(a, dtype=torch.float64)
                              for a in (w1, w2, w3, s1, s2, s3))

    def swiglu(v, a, b, c):
        return (torch.nn.functional.silu(v @ a.T) * (v @ c.T)) @ b.T

    out = swiglu(xt, s1, s2, s3)
    for tok in range(xt.shape[0]):
        for s in range(k):
            ex = int(experts[tok, s])
            out[tok] += weights[tok, s] * swiglu(xt[tok:tok + 1], w1[ex],
                                                 w2[ex], w3[ex])[0]
    return out.numpy(), experts


@pytest.mark.parametrize("tokens", [1, 45])
def test_deepseek_v3_block(tokens):
    rng = np.random.default_rng()
    d, e, f, fs, k, g, tg = 32, 16, 24, 24, 4, 4, 2
    x, wg, w1, w2, w3 = random_block(rng, tokens, d, e, f)
    bias = (rng.standard_normal(e) * 0.1).astype(np.float32)
    s1 = (rng.standard_normal((fs, d)) / math.sqrt(d)).astype(np.float32)
    s3 = (rng.standard_normal((fs, d)) / math.sqrt(d)).astype(np.float32)
    s2 = (rng.standard_normal((d, fs)) / math.sqrt(fs)).astype(np.float32)
    text = DEEPSEEK.format(d=d, e=e, f=f, fs=fs, k=k, g=g, tg=tg, e1=e + 1)
    out, experts = moka.run(text, "block", x, wg, bias, w1, w2, w3, s1, s2,
                            s3)
    ref, ref_experts = deepseek_v3_moe(x, wg, bias, w1, w2, w3, s1, s2, s3,
                                       k, g, tg)
    assert (experts == ref_experts).all()
    assert relative_error(out, ref) <= 1e-5


GATED_SHARED = """
func.func @shared(%x: tensor<?x16xf32>, %s1: tensor<20x16xf32>, %s2: tensor<16x20xf32>, %s3: tensor<20x16xf32>, %g: tensor<1x16xf32>) -> tensor<?x16xf32> {
  %sh = moe.shared_experts swiglu %x, %s1, %s2 up(%s3 : tensor<20x16xf32>) gate(%g : tensor<1x16xf32>) : tensor<?x16xf32>, tensor<20x16xf32>, tensor<16x20xf32> -> tensor<?x16xf32>
  return %sh : tensor<?x16xf32>
}
"""


def test_qwen2_gated_shared_expert():
    rng = np.random.default_rng()
    x = rng.standard_normal((11, 16)).astype(np.float32)
    s1, s3 = (rng.standard_normal((2, 20, 16)) / 4).astype(np.float32)
    s2 = (rng.standard_normal((16, 20)) / 4).astype(np.float32)
    g = rng.standard_normal((1, 16)).astype(np.float32)
    (out,) = moka.run(GATED_SHARED, "shared", x, s1, s2, s3, g)
    xt, t1, t2, t3, tg = (torch.tensor(a, dtype=torch.float64)
                          for a in (x, s1, s2, s3, g))
    ref = (torch.nn.functional.silu(xt @ t1.T) * (xt @ t3.T)) @ t2.T
    ref = ref * torch.sigmoid(xt @ tg.T)
    assert relative_error(out, ref.numpy()) <= 1e-5


LAYER = """
func.func @layer(%x: tensor<?x{d}xf32>, %g: tensor<{e}x{d}xf32>, %w1: tensor<{e}x{f}x{d}xf32>, %w2: tensor<{e}x{d}x{f}xf32>, %w3: tensor<{e}x{f}x{d}xf32>{extra_args}) -> tensor<?x{d}xf32> {{
  %y = moe.layer swiglu %x, %g, %w1, %w2 up(%w3 : tensor<{e}x{f}x{d}xf32>){extra} {{{attrs}}} : tensor<?x{d}xf32>, tensor<{e}x{d}xf32>, tensor<{e}x{f}x{d}xf32>, tensor<{e}x{d}x{f}xf32> -> tensor<?x{d}xf32>
  return %y : tensor<?x{d}xf32>
}}
"""


def test_mixtral_layer_op():
    """The composite op, decomposed by moe-decompose-layers, with HF's gate
    layout [E, d]."""
    rng = np.random.default_rng()
    d, e, f, k, t = 64, 8, 96, 2, 77
    x, wg, w1, w2, w3 = random_block(rng, t, d, e, f)
    gate = np.ascontiguousarray(wg.T)
    text = LAYER.format(d=d, e=e, f=f, extra_args="", extra="",
                        attrs=f"k = {k} : i64, normalize = true")
    (out,) = moka.run(text, "layer", x, gate, w1, w2, w3)
    ref, _ = mixtral_block(x, wg, w1, w2, w3, k)
    assert relative_error(out, ref) <= 1e-5


def deepseek_layer_case(rng, d, e, f, fs, k, t):
    """A DeepSeek-V3-style moe.layer (sigmoid scoring with a bias, 4 groups
    of which 2 by top-2 sums, renormalized, scale 2.5, a shared SwiGLU
    expert of width fs) on fresh random inputs: (module text, its
    arguments, the float64 reference output)."""
    x, wg, w1, w2, w3 = random_block(rng, t, d, e, f)
    bias = (rng.standard_normal(e) * 0.1).astype(np.float32)
    s1 = (rng.standard_normal((fs, d)) / math.sqrt(d)).astype(np.float32)
    s3 = (rng.standard_normal((fs, d)) / math.sqrt(d)).astype(np.float32)
    s2 = (rng.standard_normal((d, fs)) / math.sqrt(fs)).astype(np.float32)
    extra_args = (f", %b: tensor<{e}xf32>, %s1: tensor<{fs}x{d}xf32>, "
                  f"%s2: tensor<{d}x{fs}xf32>, %s3: tensor<{fs}x{d}xf32>")
    extra = (f" bias(%b : tensor<{e}xf32>) shared(%s1, %s2 : "
             f"tensor<{fs}x{d}xf32>, tensor<{d}x{fs}xf32>) shared_up(%s3 : "
             f"tensor<{fs}x{d}xf32>)")
    attrs = (f"k = {k} : i64, scoring = #moe<scoring sigmoid>, n_group = 4 : "
             "i64, topk_group = 2 : i64, group_score = #moe<group_score "
             "top2_sum>, normalize = true, routed_scaling_factor = 2.5 : f64")
    text = LAYER.format(d=d, e=e, f=f, extra_args=extra_args, extra=extra,
                        attrs=attrs)
    inputs = (x, np.ascontiguousarray(wg.T), w1, w2, w3, bias, s1, s2, s3)
    ref, _ = deepseek_v3_moe(x, wg, bias, w1, w2, w3, s1, s2, s3, k, 4, 2)
    return text, inputs, ref


def test_deepseek_v3_layer_op():
    text, inputs, ref = deepseek_layer_case(np.random.default_rng(), d=32,
                                            e=16, f=24, fs=40, k=4, t=29)
    (out,) = moka.run(text, "layer", *inputs)
    assert relative_error(out, ref) <= 1e-5


KAN_MOE = """
func.func @block(%x: tensor<?x32xf32>, %logits: tensor<?x4xf32>, %w1: tensor<4x48x32xf32>, %w2: tensor<4x32x48xf32>, %a1: tensor<4x4x6xf32>, %b1: tensor<4x4x4xf32>, %a2: tensor<4x1x6xf32>, %b2: tensor<4x8x4xf32>) -> tensor<?x32xf32> {
  %w, %i = moe.route %logits {k = 2 : i64, normalize = true} : tensor<?x4xf32> -> tensor<?x2xf32>, tensor<?x2xi32>
  %rows, %offsets, %slots = moe.dispatch %i {num_experts = 4 : i64} : tensor<?x2xi32> -> tensor<?xi32>, tensor<5xi32>, tensor<?x2xi32>
  %y = moe.experts kan %x, %rows, %offsets, %w1, %w2 rationals(%a1, %b1, %a2, %b2 : tensor<4x4x6xf32>, tensor<4x4x4xf32>, tensor<4x1x6xf32>, tensor<4x8x4xf32>) : tensor<?x32xf32>, tensor<?xi32>, tensor<5xi32>, tensor<4x48x32xf32>, tensor<4x32x48xf32> -> tensor<?x32xf32>
  %out = moe.combine %y, %slots, %w : tensor<?x32xf32>, tensor<?x2xi32>, tensor<?x2xf32> -> tensor<?x32xf32>
  return %out : tensor<?x32xf32>
}
"""


@pytest.mark.parametrize("tokens", [3, 70])
def test_gr_kan_experts(tokens):
    """MoE and KAN compose: each expert is KAT's block
    rational2(rational1(x) w1^T) w2^T with its own coefficients (grouped and
    shared numerators), checked against float64."""
    from moka.reference import moe_route, rational
    rng = np.random.default_rng()
    x = rng.standard_normal((tokens, 32)).astype(np.float32)
    logits = rng.standard_normal((tokens, 4)).astype(np.float32)
    w1 = (rng.standard_normal((4, 48, 32)) / 6).astype(np.float32)
    w2 = (rng.standard_normal((4, 32, 48)) / 7).astype(np.float32)
    a1 = (rng.standard_normal((4, 4, 6)) * 0.5).astype(np.float32)
    b1 = (rng.standard_normal((4, 4, 4)) * 0.5).astype(np.float32)
    a2 = (rng.standard_normal((4, 1, 6)) * 0.5).astype(np.float32)
    b2 = (rng.standard_normal((4, 8, 4)) * 0.5).astype(np.float32)
    (out,) = moka.run(KAN_MOE, "block", x, logits, w1, w2, a1, b1, a2, b2)
    weights, experts = moe_route(logits, 2, normalize=True)
    ref = np.zeros((tokens, 32))
    for t in range(tokens):
        for s in range(2):
            e = experts[t, s]
            h = rational(x[t:t + 1], a1[e], b1[e]) @ w1[e].astype(
                np.float64).T
            ref[t] += weights[t, s] * (rational(h, a2[e], b2[e]) @ w2[e].astype(
                np.float64).T)[0]
    assert relative_error(out, ref) <= 1e-5


EXPERTS = """
func.func @experts(%x: tensor<?x{d}x{xt}>, %i: tensor<?x{k}xi32>, %w1: tensor<{e}x{f}x{d}x{wt}>, %w2: tensor<{e}x{d}x{f}x{wt}>{w3arg}) -> (tensor<?x{d}xf32>, tensor<?xi32>) {{
  %rows, %offsets, %slots = moe.dispatch %i {{num_experts = {e} : i64}} : tensor<?x{k}xi32> -> tensor<?xi32>, tensor<{e1}xi32>, tensor<?x{k}xi32>
  %y = moe.experts {kind} %x, %rows, %offsets, %w1, %w2{up} : tensor<?x{d}x{xt}>, tensor<?xi32>, tensor<{e1}xi32>, tensor<{e}x{f}x{d}x{wt}>, tensor<{e}x{d}x{f}x{wt}> -> tensor<?x{d}xf32>
  return %y, %rows : tensor<?x{d}xf32>, tensor<?xi32>
}}
"""


def experts_case(rng, kind, dtype, d, f, e, k, tokens):
    """A dispatch + moe.experts module (EXPERTS) on random inputs: (module,
    inputs, each dispatched row through its expert in float64, the tokens
    of the rows in dispatch order)."""
    x, x64 = _encode(rng.standard_normal((tokens, d)).astype(np.float32),
                     dtype)
    experts = np.array([rng.permutation(e)[:k] for _ in range(tokens)],
                       np.int32).reshape(tokens, k)
    ws = {n: _encode((rng.standard_normal(shape) / math.sqrt(fan)
                      ).astype(np.float32), dtype)
          for n, shape, fan in (("w1", (e, f, d), d), ("w2", (e, d, f), f),
                                ("w3", (e, f, d), d))}
    swiglu = kind == "swiglu"
    module = EXPERTS.format(
        d=d, f=f, e=e, e1=e + 1, k=k, xt=dtype, wt=dtype, kind=kind,
        w3arg=f", %w3: tensor<{e}x{f}x{d}x{dtype}>" if swiglu else "",
        up=f" up(%w3 : tensor<{e}x{f}x{d}x{dtype}>)" if swiglu else "")
    inputs = [x, experts, ws["w1"][0], ws["w2"][0]]
    if swiglu:
        inputs.append(ws["w3"][0])
    w1, w2, w3 = (torch.tensor(ws[n][1]) for n in ("w1", "w2", "w3"))
    xs = torch.tensor(x64)
    order = sorted((int(experts[t, s]), t) for t in range(tokens)
                   for s in range(k))
    ref = np.zeros((tokens * k, d))
    for r, (ex, t) in enumerate(order):
        g = xs[t] @ w1[ex].T
        h = (torch.nn.functional.silu(g) * (xs[t] @ w3[ex].T) if swiglu
             else torch.nn.functional.gelu(g))
        ref[r] = (h @ w2[ex].T).numpy()
    return module, inputs, ref, [t for _, t in order]


def _encode(a, dtype):
    """float32 `a` as moka's input for `dtype`, and its exact float64 value."""
    if dtype == "f32":
        return a, a.astype(np.float64)
    if dtype == "f16":
        h = a.astype(np.float16)
        return h, h.astype(np.float64)
    bits = moka.to_bf16_bits(a)
    return bits, moka.from_bf16_bits(bits).astype(np.float64)


@pytest.mark.parametrize("kind", ["swiglu", "gelu"])
@pytest.mark.parametrize("dtype", ["f32", "f16", "bf16"])
@pytest.mark.parametrize("d,f,e,k,tokens", [
    (48, 80, 4, 2, 1),     # column tiles of 16, one row per expert
    (64, 96, 8, 2, 7),     # tiles of 32, odd segments (pairs and a tail)
    (128, 256, 6, 3, 16),  # tiles of 64
    (32, 48, 2, 2, 130),   # 130 rows per expert: transposed stacks
])
def test_experts_rows(kind, dtype, d, f, e, k, tokens):
    """moe.experts' output rows (dispatch order) against each row's expert
    MLP in float64, for both the in-place kernels (up to 128 rows per
    expert) and the products on transposed stacks beyond, with f32, f16 and
    bf16 activations and weights."""
    module, args, ref, order = experts_case(np.random.default_rng(), kind,
                                            dtype, d, f, e, k, tokens)
    y, rows = moka.run(module, "experts", *args)
    assert rows.tolist() == order
    assert relative_error(y, ref) <= 1e-5


SHARED = """
func.func @shared(%x: tensor<?x{d}x{dt}>, %s1: tensor<{fs}x{d}x{dt}>, %s2: tensor<{d}x{fs}x{dt}>{args}) -> tensor<?x{d}xf32> {{
  %y = moe.shared_experts {kind} %x, %s1, %s2{up}{gate} : tensor<?x{d}x{dt}>, tensor<{fs}x{d}x{dt}>, tensor<{d}x{fs}x{dt}> -> tensor<?x{d}xf32>
  return %y : tensor<?x{d}xf32>
}}
"""


def shared_experts_case(rng, kind, gated, dtype, tokens, d, fs):
    """A moe.shared_experts module on random inputs: (module, inputs, its
    float64 result); the Qwen2-MoE gate sigmoid(x g^T) scales the output
    when `gated`."""
    x, x64 = _encode(rng.standard_normal((tokens, d)).astype(np.float32),
                     dtype)
    w = {n: _encode((rng.standard_normal(shape) / math.sqrt(shape[1])
                     ).astype(np.float32), dtype)
         for n, shape in (("s1", (fs, d)), ("s2", (d, fs)), ("s3", (fs, d)),
                          ("g", (1, d)))}
    swiglu = kind == "swiglu"
    args, up, gate = "", "", ""
    inputs = [x, w["s1"][0], w["s2"][0]]
    if swiglu:
        args += f", %s3: tensor<{fs}x{d}x{dtype}>"
        up = f" up(%s3 : tensor<{fs}x{d}x{dtype}>)"
        inputs.append(w["s3"][0])
    if gated:
        args += f", %g: tensor<1x{d}x{dtype}>"
        gate = f" gate(%g : tensor<1x{d}x{dtype}>)"
        inputs.append(w["g"][0])
    module = SHARED.format(d=d, fs=fs, dt=dtype, args=args, kind=kind, up=up,
                           gate=gate)
    xt = torch.tensor(x64)
    s1, s2, s3, g = (torch.tensor(w[n][1]) for n in ("s1", "s2", "s3", "g"))
    h = (torch.nn.functional.silu(xt @ s1.T) * (xt @ s3.T) if swiglu
         else torch.nn.functional.gelu(xt @ s1.T))
    ref = h @ s2.T
    if gated:
        ref = ref * torch.sigmoid(xt @ g.T)
    return module, inputs, ref.numpy()


@pytest.mark.parametrize("kind,gated", [("swiglu", False), ("swiglu", True),
                                        ("gelu", False)])
@pytest.mark.parametrize("dtype", ["f32", "f16", "bf16"])
@pytest.mark.parametrize("tokens", [1, 5, 128, 140])
def test_shared_experts_rows(kind, gated, dtype, tokens):
    """moe.shared_experts on every token against float64: up to 128 tokens
    through the in-place kernels, beyond through transposed weights."""
    module, inputs, ref = shared_experts_case(
        np.random.default_rng(), kind, gated, dtype, tokens, 32, 48)
    (y,) = moka.run(module, "shared", *inputs)
    assert relative_error(y, ref) <= 1e-5


def test_experts_rows_past_the_segments_are_zero():
    """With capacity dropping: the kept rows through their experts against
    float64, and the rows past the last segment zero (the kernels for few
    rows per expert and the transposed products alike)."""
    rng = np.random.default_rng()
    d, f, e, k = 32, 48, 4, 2
    for tokens in (6, 300):
        x = rng.standard_normal((tokens, d)).astype(np.float32)
        experts = np.zeros((tokens, k), np.int32)
        experts[:, 1] = rng.integers(1, e, tokens)
        w1 = rng.standard_normal((e, f, d)).astype(np.float32)
        w2 = rng.standard_normal((e, d, f)).astype(np.float32)
        module = EXPERTS.format(
            d=d, f=f, e=e, e1=e + 1, k=k, xt="f32", wt="f32", kind="gelu",
            w3arg="", up="").replace(
                "{num_experts = 4 : i64}",
                "{num_experts = 4 : i64, capacity_factor = 0.5 : f64}")
        y, rows = moka.run(module, "experts", x, experts, w1, w2)
        kept = int((rows >= 0).sum())
        assert kept < tokens * k
        assert not y[kept:].any()
        # The kept rows, each through its expert (segments in expert order,
        # the first ceil(0.5 T k / E) assignments of each in token order).
        ref = np.zeros((kept, d))
        order = [(int(experts[t, s]), t) for t in range(tokens)
                 for s in range(k)]
        cap = math.ceil(0.5 * tokens * k / e)
        used = [0] * e
        segments = {ex: [] for ex in range(e)}
        for ex, t in order:
            if used[ex] < cap:
                segments[ex].append(t)
                used[ex] += 1
        r = 0
        for ex in range(e):
            for t in segments[ex]:
                h = torch.nn.functional.gelu(
                    torch.tensor(x[t], dtype=torch.float64)
                    @ torch.tensor(w1[ex], dtype=torch.float64).T)
                ref[r] = (h @ torch.tensor(w2[ex], dtype=torch.float64).T
                          ).numpy()
                r += 1
        assert rows[:kept].tolist() == [t for ex in range(e)
                                        for t in segments[ex]]
        assert relative_error(y[:kept], ref) <= 1e-5


def test_experts_dynamic_model_width():
    """x with a dynamic model width (the weights' is static): both forms
    give the op's type, and the rows are right."""
    rng = np.random.default_rng()
    d, f, e, k = 32, 48, 4, 2
    module = """
func.func @experts(%x: tensor<?x?xf32>, %i: tensor<?x2xi32>, %w1: tensor<4x48x32xf32>, %w2: tensor<4x32x48xf32>, %w3: tensor<4x48x32xf32>) -> tensor<?x?xf32> {
  %rows, %offsets, %slots = moe.dispatch %i {num_experts = 4 : i64} : tensor<?x2xi32> -> tensor<?xi32>, tensor<5xi32>, tensor<?x2xi32>
  %y = moe.experts swiglu %x, %rows, %offsets, %w1, %w2 up(%w3 : tensor<4x48x32xf32>) : tensor<?x?xf32>, tensor<?xi32>, tensor<5xi32>, tensor<4x48x32xf32>, tensor<4x32x48xf32> -> tensor<?x?xf32>
  return %y : tensor<?x?xf32>
}
"""
    w1, w3 = (rng.standard_normal((e, f, d)).astype(np.float32) / 6
              for _ in range(2))
    w2 = rng.standard_normal((e, d, f)).astype(np.float32) / 7
    for tokens in (3, 300):
        x = rng.standard_normal((tokens, d)).astype(np.float32)
        experts = np.stack([rng.permutation(e)[:k] for _ in range(tokens)]
                           ).astype(np.int32)
        (y,) = moka.run(module, "experts", x, experts, w1, w2, w3)
        order = sorted((int(experts[t, s]), t) for t in range(tokens)
                       for s in range(k))
        xs = torch.tensor(x, dtype=torch.float64)
        ref = np.stack([
            ((torch.nn.functional.silu(xs[t] @ torch.tensor(w1[ex]).double().T)
              * (xs[t] @ torch.tensor(w3[ex]).double().T))
             @ torch.tensor(w2[ex]).double().T).numpy() for ex, t in order])
        assert relative_error(y, ref) <= 1e-5


DYNAMIC_SHAPES = """
func.func @experts(%x: tensor<?x?xf32>, %i: tensor<?x2xi32>, %w1: tensor<4x48x32xf32>, %w2: tensor<4x32x48xf32>, %w3: tensor<4x48x32xf32>) -> tensor<?x?xf32> {
  %rows, %offsets, %slots = moe.dispatch %i {num_experts = 4 : i64} : tensor<?x2xi32> -> tensor<?xi32>, tensor<5xi32>, tensor<?x2xi32>
  %y = moe.experts swiglu %x, %rows, %offsets, %w1, %w2 up(%w3 : tensor<4x48x32xf32>) : tensor<?x?xf32>, tensor<?xi32>, tensor<5xi32>, tensor<4x48x32xf32>, tensor<4x32x48xf32> -> tensor<?x?xf32>
  return %y : tensor<?x?xf32>
}
func.func @shared(%x: tensor<?x?xf32>, %s1: tensor<?x?xf32>, %s2: tensor<32x48xf32>) -> tensor<?x?xf32> {
  %y = moe.shared_experts gelu %x, %s1, %s2 : tensor<?x?xf32>, tensor<?x?xf32>, tensor<32x48xf32> -> tensor<?x?xf32>
  return %y : tensor<?x?xf32>
}
func.func @combine(%y: tensor<?x32xf32>, %slots: tensor<?x2xi32>, %w: tensor<?x?xf32>) -> tensor<?x32xf32> {
  %out = moe.combine %y, %slots, %w : tensor<?x32xf32>, tensor<?x2xi32>, tensor<?x?xf32> -> tensor<?x32xf32>
  return %out : tensor<?x32xf32>
}
"""


@pytest.mark.parametrize("function, args, message", [
    ("experts", lambda r: (r((3, 16)), np.array([[0, 1]] * 3, np.int32),
                           r((4, 48, 32)), r((4, 32, 48)), r((4, 48, 32))),
     "moe.experts: the input's and the weights' sizes"),
    ("experts", lambda r: (r((300, 16)), np.array([[0, 1]] * 300, np.int32),
                           r((4, 48, 32)), r((4, 32, 48)), r((4, 48, 32))),
     "moe.experts: the input's and the weights' sizes"),
    ("shared", lambda r: (r((3, 32)), r((48, 16)), r((32, 48))),
     "moe.shared_experts: the input's and the weights' sizes"),
    ("shared", lambda r: (r((3, 32)), r((40, 32)), r((32, 48))),
     "moe.shared_experts: the input's and the weights' sizes"),
    ("combine", lambda r: (r((6, 32)), np.zeros((3, 2), np.int32),
                           r((4, 2))),
     "moe.combine: the slots', weights' and shared output's sizes"),
])
def test_dynamic_size_mismatch_is_a_run_time_error(function, args, message):
    """Sizes that only meet at run time (dynamic dimensions) and disagree
    are a failed run-time check, not a read out of bounds."""
    rng = np.random.default_rng()

    def r(shape):
        return rng.standard_normal(shape).astype(np.float32)

    with pytest.raises(moka.MokaError, match=message):
        moka.run(DYNAMIC_SHAPES, function, *args(r))


INDICES = """
func.func @experts(%x: tensor<?x16xf32>, %rows: tensor<?xi32>, %offsets: tensor<5xi32>, %w1: tensor<4x48x16xf32>, %w2: tensor<4x16x48xf32>) -> tensor<?x16xf32> {
  %y = moe.experts gelu %x, %rows, %offsets, %w1, %w2 : tensor<?x16xf32>, tensor<?xi32>, tensor<5xi32>, tensor<4x48x16xf32>, tensor<4x16x48xf32> -> tensor<?x16xf32>
  return %y : tensor<?x16xf32>
}
func.func @combine(%y: tensor<?x16xf32>, %slots: tensor<?x2xi32>, %w: tensor<?x2xf32>) -> tensor<?x16xf32> {
  %out = moe.combine %y, %slots, %w : tensor<?x16xf32>, tensor<?x2xi32>, tensor<?x2xf32> -> tensor<?x16xf32>
  return %out : tensor<?x16xf32>
}
"""


@pytest.mark.parametrize("rows, offsets, message", [
    ([0, 1, 3, 0, 1, 2], [0, 2, 4, 5, 6], "a row of the segments is not a "
     "token of the input"),
    ([0, 1, 2, 0, 1, -1], [0, 2, 4, 5, 6], "a row of the segments is not a "
     "token of the input"),
    ([0, 1, 2, 0, 1, 2], [0, 2, 1, 5, 6], "the offsets must not decrease"),
    ([0, 1, 2, 0, 1, 2], [0, 2, 4, 5, 7], "the offsets must start at 0 and "
     "end at most at the number of rows"),
    ([0, 1, 2, 0, 1, 2], [1, 2, 4, 5, 6], "the offsets must start at 0 and "
     "end at most at the number of rows"),
    ([0, 1, 2, 0, 1, 7], [0, 2, 4, 5, 5], None),
])
def test_rows_and_offsets_of_a_program_are_checked(rows, offsets, message):
    """Rows and offsets a program passes to moe.experts itself (not from
    moe.dispatch) out of range are a run-time error, not a read out of
    bounds; in range, the experts run on them (rows past offsets[E] are
    unused and their outputs zero)."""
    rng = np.random.default_rng()
    x = rng.standard_normal((3, 16)).astype(np.float32)
    w1 = (rng.standard_normal((4, 48, 16)) / 4).astype(np.float32)
    w2 = (rng.standard_normal((4, 16, 48)) / 7).astype(np.float32)
    args = (x, np.array(rows, np.int32), np.array(offsets, np.int32), w1, w2)
    if message is not None:
        with pytest.raises(moka.MokaError, match="moe.experts: " + message):
            moka.run(INDICES, "experts", *args)
        return
    (y,) = moka.run(INDICES, "experts", *args)
    expected = np.zeros((len(rows), 16))
    for e in range(4):
        for r in range(offsets[e], offsets[e + 1]):
            h = torch.nn.functional.gelu(
                torch.tensor(x[rows[r]], dtype=torch.float64)
                @ torch.tensor(w1[e], dtype=torch.float64).T)
            expected[r] = (h @ torch.tensor(w2[e], dtype=torch.float64).T
                           ).numpy()
    assert relative_error(y, expected) <= 1e-5


@pytest.mark.parametrize("slots, ok", [([[0, 1], [2, -1], [4, 5]], True),
                                       ([[0, 1], [2, 6], [4, 5]], False)])
def test_slots_of_a_program_are_checked(slots, ok):
    """Slots past the experts' output rows are a run-time error; -1 is a
    dropped assignment."""
    rng = np.random.default_rng()
    y = rng.standard_normal((6, 16)).astype(np.float32)
    w = rng.standard_normal((3, 2)).astype(np.float32)
    slots = np.array(slots, np.int32)
    if not ok:
        with pytest.raises(moka.MokaError,
                           match="moe.combine: a slot is not a row of the "
                                 "experts' output"):
            moka.run(INDICES, "combine", y, slots, w)
        return
    (out,) = moka.run(INDICES, "combine", y, slots, w)
    expected = np.stack([
        sum(w[t, s] * y[slots[t, s]].astype(np.float64) for s in range(2)
            if slots[t, s] >= 0) for t in range(3)])
    assert relative_error(out, expected) <= 1e-5
