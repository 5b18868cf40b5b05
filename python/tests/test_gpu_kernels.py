"""The GPU kernels of moe.experts and moe.shared_experts
(convert-moe-to-linalg's `gpu-kernels`), of kv.decode_attention
(convert-kv-to-linalg's `gpu-kernels`) and of contractions
(moka-tile-gpu-contractions), in their CPU form (moka-gpu-codegen with
`workgroup-memory=false`): the same loops over blocks and threads, tiles,
staging, bounds checks and epilogues that moka-map-forall-to-gpu maps to a
GPU, run on the CPU with each thread loop run to completion before the next
(what the barrier after each guarantees on a GPU), against float64. These
run on every machine. Each test also runs on the GPU itself (`device` "cuda":
the module through moka-gpu-pipeline), skipped where there is none."""

import math
import os
import subprocess

import numpy as np
import pytest
import torch

import moka
from moka import reference as ref
from moka.reference import relative_error
from moka.tools import cuda_devices, find_tool

from moka.reference import kv_append, kv_empty
from moka.reference import prefill_attention
from test_kv import (LATENT, TOL, attend_ir, cache_type, check_attention,
                     latent_attend_ir, latent_data, rel_err)
from test_kv_prefill import ir as prefill_ir
from test_moe_block import (EXPERTS, _encode, block,
                            deepseek_layer_case, experts_case, mixtral_block,
                            random_block, shared_experts_case)


def gpu_form(module):
    """`module` after the GPU pipeline's first stage (moka-gpu-codegen),
    with the tiles in default memory."""
    lowered = subprocess.run(
        [find_tool("moka-opt"), "-",
         "--moka-gpu-codegen=workgroup-memory=false"],
        input=module, capture_output=True, text=True, check=True).stdout
    assert "#gpu.block<z>" in lowered and "#gpu.thread<linear_dim_0>" in lowered
    return lowered


@pytest.fixture(params=["cpu", pytest.param("cuda", marks=pytest.mark.skipif(
    cuda_devices() == 0, reason="no CUDA GPU on this machine"))])
def device(request):
    """Where the kernels run: "cpu" (their CPU form) or "cuda"."""
    return request.param


def run(module, function, *inputs, device):
    if device == "cuda":
        return moka.run(module, function, *inputs, device="cuda")
    return moka.run(gpu_form(module), function, *inputs)


class Compiled:
    """`module` compiled once in its CPU form, or run on the GPU per call."""

    def __init__(self, module, device):
        self.module, self.device = module, device
        self.lib = moka.compile(gpu_form(module)) if device == "cpu" else None

    def __getattr__(self, function):
        if self.lib is not None:
            return getattr(self.lib, function)

        def call(*inputs):
            results = moka.run(self.module, function, *inputs, device="cuda")
            return results[0] if len(results) == 1 else results
        return call


@pytest.mark.parametrize("kind", ["swiglu", "gelu"])
@pytest.mark.parametrize("dtype", ["f32", "f16", "bf16"])
@pytest.mark.parametrize("d,f,e,k,tokens", [
    (48, 80, 4, 2, 1),      # one row per expert, partial column tiles
    (72, 100, 8, 2, 37),    # d and f not multiples of the tiles or steps
    (64, 128, 3, 2, 150),   # segments of more than one row tile
    (130, 40, 5, 3, 9),     # d over two column tiles, f under one step
    (32, 48, 4, 2, 0),      # no tokens
])
def test_experts_rows(kind, dtype, d, f, e, k, tokens, device):
    module, args, ref, order = experts_case(np.random.default_rng(), kind,
                                            dtype, d, f, e, k, tokens)
    y, rows = run(module, "experts", *args, device=device)
    assert rows.tolist() == order
    assert relative_error(y, ref) <= 1e-5


def test_experts_rows_past_the_segments_are_zero(device):
    """Capacity dropping: kept rows against float64, the rest zero."""
    rng = np.random.default_rng()
    d, f, e, k, tokens = 40, 56, 4, 2, 90
    x = rng.standard_normal((tokens, d)).astype(np.float32)
    experts = np.zeros((tokens, k), np.int32)
    experts[:, 1] = rng.integers(1, e, tokens)
    ws = {n: _encode((rng.standard_normal(shape) / math.sqrt(shape[2])
                      ).astype(np.float32), "f32")
          for n, shape in (("w1", (e, f, d)), ("w2", (e, d, f)),
                           ("w3", (e, f, d)))}
    module = EXPERTS.format(
        d=d, f=f, e=e, e1=e + 1, k=k, xt="f32", wt="f32", kind="gelu",
        w3arg="", up="").replace(
            "{num_experts = 4 : i64}",
            "{num_experts = 4 : i64, capacity_factor = 0.5 : f64}")
    y, rows = run(module, "experts", x, experts, ws["w1"][0], ws["w2"][0],
                  device=device)
    kept = int((rows >= 0).sum())
    assert 0 < kept < tokens * k
    assert not y[kept:].any()
    cap = math.ceil(0.5 * tokens * k / e)
    used = [0] * e
    order = []
    for t in range(tokens):
        for s in range(k):
            ex = int(experts[t, s])
            if used[ex] < cap:
                used[ex] += 1
                order.append((ex, t))
    order.sort()
    w1, w2 = torch.tensor(ws["w1"][1]), torch.tensor(ws["w2"][1])
    ref = np.stack([
        (torch.nn.functional.gelu(torch.tensor(x[t], dtype=torch.float64)
                                  @ w1[ex].T) @ w2[ex].T).numpy()
        for ex, t in order])
    assert rows[:kept].tolist() == [t for _, t in order]
    assert relative_error(y[:kept], ref) <= 1e-5


@pytest.mark.parametrize("kind,gated", [("swiglu", False), ("swiglu", True),
                                        ("gelu", False)])
@pytest.mark.parametrize("dtype", ["f32", "bf16"])
@pytest.mark.parametrize("tokens", [0, 1, 70, 129])
def test_shared_experts_rows(kind, gated, dtype, tokens, device):
    module, inputs, ref = shared_experts_case(
        np.random.default_rng(), kind, gated, dtype, tokens, 96, 80)
    (y,) = run(module, "shared", *inputs, device=device)
    assert relative_error(y, ref) <= 1e-5


@pytest.mark.parametrize("tokens", [1, 16, 130])
def test_mixtral_block(tokens, device):
    """The whole block (route, dispatch, the expert kernels, combine) against
    HF's MixtralSparseMoeBlock in float64, experts chosen identically."""
    rng = np.random.default_rng()
    d, e, f, k = 64, 8, 96, 2
    x, wg, w1, w2, w3 = random_block(rng, tokens, d, e, f)
    out, chosen = run(block(d, e, f, k), "block", x, wg, w1, w2, w3,
                      device=device)
    ref, ref_chosen = mixtral_block(x, wg, w1, w2, w3, k)
    assert (np.sort(chosen, 1) == np.sort(ref_chosen, 1)).all()
    assert relative_error(out, ref) <= 1e-5


@pytest.mark.parametrize("fmt,shape", [
    ("f32", (1, 4, 1, 300, 64)),    # MHA; lengths across chunks of 256
    ("f16", (2, 2, 4, 600, 128)),   # GQA, two sequences
    ("i8", (1, 2, 8, 640, 128)),
    ("i4", (2, 2, 4, 1024, 128)),
    ("i2", (1, 3, 16, 384, 32)),    # 16 query heads per key/value head
    ("bf16", (1, 2, 2, 320, 24)),   # head size not a multiple of 32
    ("f32", (1, 2, 3, 300, 20)),    # keys staged with a partial last round
    ("f16", (1, 1, 2, 260, 320)),   # head size over the 256 threads
])
def test_decode_attention(fmt, shape, device):
    """Every length of check_attention's list (0, 1, the window's edges,
    the capacity)."""
    b, h, g, s, d = shape
    t = cache_type(fmt, (b, h, s, d))
    check_attention(t, g, None, seed=None,
                    lib=Compiled(attend_ir(t, g * h), device))


EXAMPLES = os.path.join(os.path.dirname(__file__), "..", "..", "examples")


def test_kat_block(device):
    """KAT's feed-forward block (two rational KAN layers, whose products
    become tiled contractions over three loops of rows and two of columns)
    against float64."""
    rng = np.random.default_rng()
    f = np.float32
    x = rng.standard_normal((2, 197, 384)).astype(f)
    coefficients = [((rng.standard_normal((8, 6)) * 0.3).astype(f),
                     (rng.standard_normal((8, 4)) * 0.3).astype(f))
                    for _ in range(2)]
    (a1, b1), (a2, b2) = coefficients
    w1 = (rng.standard_normal((1536, 384)) / 20).astype(f)
    w2 = (rng.standard_normal((384, 1536)) / 40).astype(f)
    c1 = (rng.standard_normal(1536) * .1).astype(f)
    c2 = (rng.standard_normal(384) * .1).astype(f)
    with open(os.path.join(EXAMPLES, "kat_ffn.mlir")) as source:
        module = source.read()
    (y,) = run(module, "forward", x, a1, b1, w1, c1, a2, b2, w2, c2,
               device=device)
    h = ref.kan_layer("rational", x, w1, c1, numerator=a1, denominator=b1)
    expected = ref.kan_layer("rational", h, w2, c2, numerator=a2,
                             denominator=b2)
    assert relative_error(y, expected) <= 1e-5


CONTRACTION = """
func.func @f(%a: tensor<{a}>, %b: tensor<{b}>, %c: tensor<{c}>) -> tensor<{c}> {{
  %y = linalg.generic {{indexing_maps = [{maps}], iterator_types = [{iters}]}}
      ins(%a, %b : tensor<{a}>, tensor<{b}>) outs(%c : tensor<{c}>) {{
  ^bb0(%x: {ta}, %w: {tb}, %acc: f32):
    {body}
    linalg.yield %s : f32
  }} -> tensor<{c}>
  return %y : tensor<{c}>
}}
"""


@pytest.mark.parametrize("case", [
    # C[m, n] += A[m, k] B[k, n]: B's rows along the columns.
    dict(a=(70, 45), b=(45, 130), c=(70, 130), ein="mk,kn->mn"),
    # C[m, n] += A[m, k] B[n, k] (weights as stored), f16 weights.
    dict(a=(3, 100), b=(65, 100), c=(3, 65), ein="mk,nk->mn", tb="f16"),
    # Batched, with the batch in the middle of the output and bf16 rows.
    dict(a=(2, 33, 40), b=(2, 40, 17), c=(33, 2, 17), ein="bmk,bkn->mbn",
         ta="bf16"),
    # Two row loops, two reduction loops.
    dict(a=(5, 13, 6, 7), b=(6, 7, 90), c=(5, 13, 90), ein="pqrs,rsn->pqn"),
    # A transposed left operand (A[k, m]), dynamic rows.
    dict(a=(50, 77), b=(50, 9), c=(77, 9), ein="km,kn->mn", dynamic=(1, 0)),
    # Dynamic rows, none of them.
    dict(a=(0, 40), b=(40, 24), c=(0, 24), ein="mk,kn->mn", dynamic=(0, 0)),
])
def test_contractions(case, device):
    """linalg contractions through moka-tile-gpu-contractions (rows, columns,
    reductions and batches of several loops; operands in either order along
    memory; narrow input types) against float64, accumulating onto a
    non-zero init."""
    rng = np.random.default_rng()
    ein = case["ein"]
    ins, out = ein.split("->")
    ia, ib = ins.split(",")
    loops = sorted(set(ia + ib + out), key=(ia + ib + out).index)
    loops = [l for l in loops if l in out] + [l for l in loops if l not in out]
    dim = {l: f"d{i}" for i, l in enumerate(loops)}
    amap = lambda s: ("affine_map<(" + ", ".join(dim[l] for l in loops)
                      + ") -> (" + ", ".join(dim[l] for l in s) + ")>")
    ta, tb = case.get("ta", "f32"), case.get("tb", "f32")
    body = []
    xa, xb = "%x", "%w"
    if ta != "f32":
        body.append(f"%xe = arith.extf %x : {ta} to f32")
        xa = "%xe"
    if tb != "f32":
        body.append(f"%we = arith.extf %w : {tb} to f32")
        xb = "%we"
    body += [f"%p = arith.mulf {xa}, {xb} : f32", "%s = arith.addf %acc, %p : f32"]
    dynamic = case.get("dynamic")  # (dimension of a, of c) left dynamic

    def shape(dims, t, dyn=None):
        return "x".join("?" if i == dyn else str(n)
                        for i, n in enumerate(dims)) + f"x{t}"
    module = CONTRACTION.format(
        a=shape(case["a"], ta, dynamic and dynamic[0]),
        b=shape(case["b"], tb),
        c=shape(case["c"], "f32", dynamic and dynamic[1]),
        ta=ta, tb=tb, maps=", ".join([amap(ia), amap(ib), amap(out)]),
        iters=", ".join('"parallel"' if l in out else '"reduction"'
                        for l in loops),
        body="\n    ".join(body))
    assert "= linalg.generic" not in gpu_form(module).split("func.func @f")[1]
    a, a64 = _encode(rng.standard_normal(case["a"]).astype(np.float32), ta)
    b, b64 = _encode(rng.standard_normal(case["b"]).astype(np.float32), tb)
    c = rng.standard_normal(case["c"]).astype(np.float32)
    (y,) = run(module, "f", a, b, c, device=device)
    expected = c.astype(np.float64) + np.einsum(ein, a64, b64)
    assert relative_error(y, expected) <= 1e-5


@pytest.mark.parametrize("n", [1, 37, 256])
def test_latent_attention(n, device):
    """A latent cache with up-projections: its reconstruction and attention
    products through moka-tile-gpu-contractions."""
    t = LATENT
    rng = np.random.default_rng()
    c, uk, uv = latent_data(rng, t, n)
    storage = kv_append(kv_empty(t), t, c)
    q = rng.standard_normal((2, 4, 32)).astype(np.float32)
    (o,) = run(latent_attend_ir(t), "attend", q, *storage, uk, uv,
               device=device)
    assert rel_err(o, ref.kv_latent_attention(q, c, uk, uv)) <= TOL


@pytest.mark.parametrize("causal", [True, False])
@pytest.mark.parametrize("elt,dtype", [("f32", np.float32),
                                       ("f16", np.float16)])
def test_prefill_attention(causal, elt, dtype, device):
    """Prefill attention's score product through moka-tile-gpu-contractions."""
    b, hq, hkv, d = 2, 8, 2, 32
    lib = Compiled(prefill_ir(b, hq, hkv, d, elt, causal), device)
    rng = np.random.default_rng()
    for t in [1, 7, 100]:
        q = rng.standard_normal((b, hq, t, d)).astype(np.float32)
        k = rng.standard_normal((b, hkv, t, d)).astype(dtype)
        v = rng.standard_normal((b, hkv, t, d)).astype(dtype)
        expected = prefill_attention(q, k, v, causal)
        assert rel_err(lib.f(q, k, v), expected) <= TOL


def test_deepseek_v3_layer(device):
    """The DeepSeek-V3-style composite layer (sigmoid scoring with a bias,
    group-limited selection, scale 2.5, a shared expert) with its products
    as GPU kernels, against a float64 reimplementation."""
    module, inputs, expected = deepseek_layer_case(
        np.random.default_rng(), d=48, e=16, f=40, fs=56, k=4, t=70)
    (out,) = run(module, "layer", *inputs, device=device)
    assert relative_error(out, expected) <= 1e-5
