"""moka.torch.import_module: PyTorch modules imported into moka IR, compiled
with moka.compile and run on a batch size other than the example's, against
the PyTorch module itself evaluated in float64 (a deep copy, .double()), on
fresh random weights and inputs; the IR checked by moka-opt; moka.Module's
files and the safetensors format.

The HF transformers and KAT modules are the stand-ins of torch_models.py
(same class and attribute names and forward computations)."""

import copy
import json
import os
import struct
import subprocess
import sys

import numpy as np
import pytest
import torch
from torch import nn

import moka
import moka.torch
from moka import safetensors
from moka.reference import moe_route

import torch_models as tm

TOLERANCE = 1e-5


@pytest.fixture
def rng():
    """A fresh random generator; torch is seeded from it. The seed is
    printed, so a failure can be reproduced."""
    seed = int(np.random.SeedSequence().entropy % 2**63)
    print(f"seed = {seed}")
    torch.manual_seed(seed % 2**62)
    return np.random.default_rng(seed)


def max_error(out, ref):
    """max |out - ref| / max |ref| in float64; inf for an unexpected NaN."""
    out = np.asarray(out, dtype=np.float64)
    ref = np.asarray(ref, dtype=np.float64)
    if np.isnan(out).any() and not np.isnan(ref).any():
        return float("inf")
    scale = np.abs(ref).max() if ref.size else 0.0
    return float(np.abs(out - ref).max() / (scale or 1.0)) if ref.size \
        else 0.0


def reference(model, *inputs):
    """The model's outputs in float64, as a tuple of numpy arrays."""
    double = copy.deepcopy(model).double()
    with torch.no_grad():
        out = double(*(torch.from_numpy(np.asarray(x, np.float64))
                       for x in inputs))
    out = out if isinstance(out, tuple) else (out,)
    return tuple(o.numpy() for o in out)


def compiled(module, *inputs):
    """Compiles `module` with moka.compile and runs forward on `inputs`;
    returns the results as a tuple."""
    out = moka.compile(module).forward(*inputs)
    return out if isinstance(out, tuple) else (out,)


def check(model, example, inputs, tolerance=TOLERANCE, **options):
    """Imports `model` with `example`, runs the compiled function on
    `inputs` and compares with the float64 reference; returns the results."""
    module = moka.torch.import_module(
        model, tuple(torch.from_numpy(x) for x in example), **options)
    outs = compiled(module, *inputs)
    refs = reference(model, *inputs)
    assert len(outs) == len(refs)
    for out, ref in zip(outs, refs):
        assert out.shape == ref.shape
        assert out.dtype == inputs[0].dtype
        assert max_error(out, ref) <= tolerance
    return outs


def normal(rng, shape, dtype=np.float32, scale=1.0):
    return (rng.standard_normal(shape) * scale).astype(dtype)


def moka_opt(path):
    return subprocess.run([moka.find_tool("moka-opt"), str(path)],
                          capture_output=True, text=True)


# ---------------------------------------------------------------------------
# torch.nn


@pytest.mark.parametrize("lead, run_lead, d, hidden, out, approximate, bias", [
    ((), (), 24, 40, 24, "none", True),
    ((3,), (11,), 16, 64, 8, "none", True),
    ((2, 5), (7, 5), 32, 48, 32, "tanh", False),
    ((2, 3, 4), (5, 3, 4), 8, 96, 12, "none", True),
    ((1, 17), (3, 17), 96, 80, 40, "tanh", True),
])
def test_mlp(rng, lead, run_lead, d, hidden, out, approximate, bias):
    model = nn.Sequential(nn.Linear(d, hidden, bias=bias),
                          nn.GELU(approximate=approximate),
                          nn.Dropout(0.1),
                          nn.Linear(hidden, out, bias=bias)).eval()
    check(model, [normal(rng, lead + (d,))], [normal(rng, run_lead + (d,))])


def test_activations(rng):
    model = nn.Sequential(nn.Linear(16, 32), nn.SiLU(), nn.Identity(),
                          nn.Linear(32, 32), nn.ReLU(),
                          nn.Linear(32, 16), nn.GELU(),
                          nn.Linear(16, 8), nn.GELU(approximate="tanh")).eval()
    check(model, [normal(rng, (4, 16))], [normal(rng, (33, 16), scale=4.0)])


def test_timm_mlp(rng):
    model = tm.Mlp(24, 64, act_layer=nn.SiLU, drop=0.1).eval()
    check(model, [normal(rng, (2, 6, 24))], [normal(rng, (3, 6, 24))])
    with_norm = tm.Mlp(24, 64, norm_layer=nn.LayerNorm).eval()
    with pytest.raises(moka.torch.UnsupportedModuleError,
                       match="LayerNorm at 'norm'"):
        moka.torch.import_module(with_norm, (torch.randn(2, 24),))


def test_float64(rng):
    model = nn.Sequential(nn.Linear(12, 20), nn.SiLU(),
                          nn.Linear(20, 6)).double().eval()
    check(model, [normal(rng, (2, 12), np.float64)],
          [normal(rng, (9, 12), np.float64)], tolerance=1e-12)


def test_static_and_several_dynamic_dims(rng):
    model = nn.Sequential(nn.Linear(8, 16), nn.GELU(),
                          nn.Linear(16, 4)).eval()
    static = moka.torch.import_module(model, (torch.randn(2, 3, 8),),
                                      dynamic_dims=False)
    assert "tensor<2x3x8xf32>" in static.mlir
    x = normal(rng, (2, 3, 8))
    (y,) = compiled(static, x)
    assert max_error(y, reference(model, x)[0]) <= TOLERANCE
    dynamic = moka.torch.import_module(model, (torch.randn(2, 3, 8),),
                                       dynamic_dims=[(0, 1)])
    assert "tensor<?x?x8xf32>" in dynamic.mlir
    x = normal(rng, (5, 7, 8))
    (y,) = compiled(dynamic, x)
    assert max_error(y, reference(model, x)[0]) <= TOLERANCE


# ---------------------------------------------------------------------------
# Mixture of experts


def separated(rng, shape, margin):
    """Random hidden states [*shape] whose tokens all have `margin(tokens)`
    (a per-token gap of the routing decisions) above 1e-3: rows too close
    to a tie are drawn again, so the routing does not depend on rounding."""
    x = normal(rng, shape).reshape(-1, shape[-1])
    for _ in range(100):
        close = margin(x.astype(np.float64)) < 1e-3
        if not close.any():
            return x.reshape(shape)
        x[close] = normal(rng, (int(close.sum()), shape[-1]))
    raise AssertionError("could not draw well-separated routing inputs")


def topk_gap(keys, k):
    """Per row: the k-th largest key minus the (k+1)-th."""
    ordered = -np.sort(-keys, axis=-1)
    if k == keys.shape[-1]:
        return np.full(keys.shape[0], np.inf)
    return ordered[:, k - 1] - ordered[:, k]


def mixtral_block(rng, d, f, e, k):
    model = tm.MixtralSparseMoeBlock(tm.mixtral_config(d, f, e, k)).eval()
    with torch.no_grad():
        model.gate.weight.normal_(0.0, d ** -0.5)
    return model


@pytest.mark.parametrize("shape, run_shape, f, e, k", [
    ((1, 1, 32), (1, 1, 32), 48, 4, 1),
    ((2, 3, 16), (5, 3, 16), 40, 8, 2),
    ((1, 7, 64), (3, 7, 64), 96, 8, 2),
    ((2, 4, 24), (6, 4, 24), 16, 16, 4),
])
def test_mixtral(rng, shape, run_shape, f, e, k):
    model = mixtral_block(rng, shape[-1], f, e, k)
    gate = model.gate.weight.detach().double().numpy()
    example = normal(rng, shape)
    x = separated(rng, run_shape, lambda t: topk_gap(t @ gate.T, k))
    out, logits = check(model, [example], [x])
    assert logits.shape == (x.size // shape[-1], e)
    # The same experts as the float64 routing, for every token.
    ref_logits = x.reshape(-1, shape[-1]).astype(np.float64) @ gate.T
    chosen = np.sort(np.argsort(-logits, axis=-1)[:, :k], axis=-1)
    expected = np.sort(np.argsort(-ref_logits, axis=-1)[:, :k], axis=-1)
    assert (chosen == expected).all()


def test_mixtral_errors(rng):
    config = tm.mixtral_config(16, 32, 4, 2, router_jitter_noise=0.1)
    model = tm.MixtralSparseMoeBlock(config).train()
    with pytest.raises(moka.torch.ConversionError, match="jitter"):
        moka.torch.import_module(model, (torch.randn(1, 2, 16),))
    model.eval()
    model.experts[2].w3 = nn.Linear(16, 24, bias=False)
    with pytest.raises(moka.torch.ConversionError,
                       match=r"not uniform.*experts\[2\]\.w3"):
        moka.torch.import_module(model, (torch.randn(1, 2, 16),))


def deepseek_block(rng, d, f, e, k, n_group, topk_group, shared=1,
                   normalize=True, scale=2.5):
    config = tm.deepseek_v3_config(d, f, e, k, n_group, topk_group,
                                   n_shared_experts=shared,
                                   norm_topk_prob=normalize,
                                   routed_scaling_factor=scale)
    model = tm.DeepseekV3MoE(config).eval()
    with torch.no_grad():
        model.gate.weight.normal_(0.0, d ** -0.5)
        model.gate.e_score_correction_bias.uniform_(-0.05, 0.1)
    return model


def deepseek_margin(model):
    """Per token: the smallest gap of DeepSeek-V3's routing decisions (the
    kept groups, the chosen experts among them), and the k-th key itself:
    HF masks the dropped groups' keys with 0, so a positive k-th key makes
    its choice that of moe.layer (which excludes them)."""
    gate = model.gate
    w = gate.weight.detach().double().numpy()
    bias = gate.e_score_correction_bias.detach().double().numpy()
    e, k = gate.n_routed_experts, gate.top_k
    groups, keep = gate.n_group, gate.topk_group

    def margin(x):
        keys = 1.0 / (1.0 + np.exp(-(x @ w.T))) + bias
        grouped = keys.reshape(len(x), groups, e // groups)
        group_keys = -np.sort(-grouped, axis=-1)[..., :2].sum(-1)
        gap = topk_gap(group_keys, keep) if keep < groups else np.inf
        kept = np.argsort(-group_keys, axis=-1)[:, :keep]
        mask = np.zeros((len(x), groups), bool)
        np.put_along_axis(mask, kept, True, axis=1)
        candidates = np.where(np.repeat(mask, e // groups, axis=1), keys,
                              -np.inf)
        kth = -np.sort(-candidates, axis=-1)[:, k - 1]
        return np.minimum(np.minimum(gap, topk_gap(candidates, k)), kth)
    return margin


@pytest.mark.parametrize("shape, run_shape, f, e, k, groups, keep, shared, "
                         "normalize, scale", [
                             ((1, 2, 32), (3, 5, 32), 16, 16, 4, 4, 2, 1,
                              True, 2.5),
                             ((2, 3, 48), (4, 3, 48), 24, 32, 6, 8, 4, 2,
                              True, 2.5),
                             ((1, 4, 16), (7, 4, 16), 8, 8, 2, 1, 1, 1,
                              False, 1.0),
                             ((2, 2, 64), (2, 9, 64), 32, 16, 3, 2, 1, 1,
                              True, 1.5),
                         ])
def test_deepseek_v3(rng, shape, run_shape, f, e, k, groups, keep, shared,
                     normalize, scale):
    model = deepseek_block(rng, shape[-1], f, e, k, groups, keep, shared,
                           normalize, scale)
    x = separated(rng, run_shape, deepseek_margin(model))
    check(model, [normal(rng, shape)], [x], dynamic_dims=[(0, 1)])
    # The block's own (float32) routing is that of float64 for these inputs.
    gate = model.gate
    with torch.no_grad():
        chosen, _ = gate(torch.from_numpy(x))
    tokens = x.reshape(-1, shape[-1]).astype(np.float64)
    _, expected = moe_route(
        tokens @ gate.weight.detach().double().numpy().T, k,
        scoring="sigmoid", bias=gate.e_score_correction_bias.numpy(),
        n_group=groups, topk_group=keep, group_top2=True)
    assert (np.sort(chosen.numpy(), -1) == np.sort(expected, -1)).all()


def test_deepseek_v3_ir(rng):
    model = deepseek_block(rng, 32, 16, 16, 4, 4, 2)
    text = moka.torch.import_module(model, (torch.randn(2, 3, 32),)).mlir
    assert text.count("moe.layer swiglu") == 1
    for piece in ("bias(", "shared(", "shared_up(", "k = 4 : i64",
                  "scoring = #moe<scoring sigmoid>", "n_group = 4 : i64",
                  "topk_group = 2 : i64",
                  "group_score = #moe<group_score top2_sum>",
                  "normalize = true", "routed_scaling_factor = 2.5 : f64"):
        assert piece in text


# ---------------------------------------------------------------------------
# KAN


@pytest.mark.parametrize("shape, run_shape, groups, order, shared", [
    ((4, 64), (9, 64), 8, (5, 4), True),
    ((2, 5, 48), (3, 5, 48), 4, (5, 4), False),
    ((1, 3, 16), (6, 3, 16), 1, (3, 2), True),
    ((3, 40), (2, 40), 2, (6, 0), False),
    ((2, 7, 96), (1, 7, 96), 8, (4, 5), True),
])
def test_kat_group(rng, shape, run_shape, groups, order, shared):
    model = tm.KAT_Group(groups, order, shared_numerator=shared).eval()
    check(model, [normal(rng, shape)], [normal(rng, run_shape, scale=2.0)])


@pytest.mark.parametrize("shape, run_shape, hidden, out, groups, bias", [
    ((2, 5, 32), (3, 5, 32), 64, 32, 8, True),
    ((4, 48), (13, 48), 96, 16, 4, False),
    ((1, 9, 16), (2, 9, 16), 40, 24, 8, True),
])
def test_kat_block(rng, shape, run_shape, hidden, out, groups, bias):
    model = tm.KAN(shape[-1], hidden, out, num_groups=groups,
                   bias=bias).eval()
    module = moka.torch.import_module(model, (torch.randn(*shape),))
    assert module.mlir.count("kan.layer rational") == 2
    check(model, [normal(rng, shape)], [normal(rng, run_shape)])


def test_kat_block_with_other_activations(rng):
    """A block of the same layout whose activations are not rationals is
    converted module by module."""
    model = tm.KAN(16, 32).eval()
    model.act1, model.act2 = nn.Identity(), nn.GELU()
    check(model, [normal(rng, (2, 16))], [normal(rng, (5, 16))])
    model.norm = nn.LayerNorm(16)
    with pytest.raises(moka.torch.ConversionError, match="norm is LayerNorm"):
        moka.torch.import_module(model, (torch.randn(2, 16),))


def test_kat_in_a_network(rng):
    model = nn.Sequential(nn.Linear(24, 32), tm.KAN(32, 64, num_groups=8),
                          tm.KAT_Group(4), nn.Linear(32, 8)).eval()
    module = moka.torch.import_module(model, (torch.randn(2, 24),))
    assert {"_1.fc1.weight", "_1.act2.weight_denominator",
            "_2.weight_numerator", "_3.bias"} <= set(module.weights)
    check(model, [normal(rng, (2, 24))], [normal(rng, (6, 24))])


# ---------------------------------------------------------------------------
# Converters of one's own, errors


class Scale(nn.Module):
    def __init__(self, channels):
        super().__init__()
        self.alpha = nn.Parameter(torch.randn(channels))
        self.beta = nn.Parameter(torch.randn(channels))

    def forward(self, x):
        return x * self.alpha + self.beta


class Residual(nn.Module):
    def __init__(self, inner):
        super().__init__()
        self.inner = inner

    def forward(self, x):
        return x + self.inner(x)


def convert_scale(emitter, module, x):
    alpha = emitter.weight(module.alpha, "alpha")
    beta = emitter.weight(module.beta, "beta")
    return emitter.elementwise(
        [x, alpha, beta], lambda b, v, a, c: b.add(b.mul(v, a), c))


def convert_residual(emitter, module, x):
    y = emitter.call(module.inner, x, name="inner")
    return emitter.elementwise([x, y], lambda b, u, v: b.add(u, v))


def test_registered_converters(rng):
    moka.torch.register_converter(Scale, convert_scale)
    moka.torch.register_converter("Residual", convert_residual)
    model = nn.Sequential(
        nn.Linear(8, 16), Scale(16),
        Residual(nn.Sequential(nn.SiLU(), nn.Linear(16, 16))),
        nn.Linear(16, 4)).eval()
    module = moka.torch.import_module(model, (torch.randn(3, 8),))
    assert {"_1.alpha", "_1.beta", "_2.inner.1.weight"} <= set(
        module.weights)
    check(model, [normal(rng, (3, 8))], [normal(rng, (10, 8))])


def test_unknown_module():
    model = nn.Sequential(nn.Linear(4, 4),
                          nn.Sequential(nn.ReLU(), nn.LayerNorm(4)))
    with pytest.raises(moka.torch.UnsupportedModuleError,
                       match=r"LayerNorm at '1\.1'.*register_converter"):
        moka.torch.import_module(model.eval(), (torch.randn(2, 4),))
    assert issubclass(moka.torch.UnsupportedModuleError, moka.MokaError)
    assert issubclass(moka.torch.UnsupportedModuleError, ValueError)


def test_module_list_alone():
    with pytest.raises(moka.torch.UnsupportedModuleError,
                       match=r"ModuleList at '<root>'.*no forward"):
        moka.torch.import_module(nn.ModuleList([nn.Linear(4, 4)]),
                                 (torch.randn(2, 4),))


def test_subclass_with_its_own_forward_is_not_assumed():
    class Shifted(nn.Linear):
        def forward(self, x):
            return super().forward(x) + 1.0

    class Plain(nn.Linear):
        pass

    module = moka.torch.import_module(Plain(4, 3), (torch.randn(2, 4),))
    assert "linalg.matmul" in module.mlir
    with pytest.raises(moka.torch.UnsupportedModuleError, match="Shifted"):
        moka.torch.import_module(Shifted(4, 3), (torch.randn(2, 4),))


def test_bad_inputs():
    model = nn.Linear(4, 3)
    with pytest.raises(moka.torch.ConversionError, match="in_features"):
        moka.torch.import_module(model, (torch.randn(2, 5),))
    with pytest.raises(moka.torch.ConversionError, match="float32"):
        moka.torch.import_module(model,
                                 (torch.zeros(2, 4, dtype=torch.int32),))
    with pytest.raises(moka.torch.ConversionError, match="dynamic_dims"):
        moka.torch.import_module(model, (torch.randn(2, 4),),
                                 dynamic_dims=[(0,), (1,)])
    with pytest.raises(moka.torch.ConversionError, match="dropout"):
        moka.torch.import_module(nn.Dropout(0.5).train(),
                                 (torch.randn(2, 4),))


# ---------------------------------------------------------------------------
# The IR, without compiling


def importable_models():
    return {
        "mlp": (nn.Sequential(nn.Linear(16, 32), nn.GELU(),
                              nn.Linear(32, 16)), (2, 3, 16)),
        "vector": (nn.Sequential(nn.Linear(16, 8), nn.ReLU()), (16,)),
        "mixtral": (tm.MixtralSparseMoeBlock(tm.mixtral_config(16, 24, 4, 2)),
                    (1, 3, 16)),
        "deepseek": (tm.DeepseekV3MoE(tm.deepseek_v3_config(16, 8, 8, 2, 2,
                                                             1)), (2, 3, 16)),
        "kat_group": (tm.KAT_Group(4), (2, 3, 16)),
        "kat_block": (tm.KAN(16, 32, num_groups=4), (2, 3, 16)),
    }


@pytest.mark.parametrize("name", list(importable_models()))
def test_ir_verifies(tmp_path, name):
    model, shape = importable_models()[name]
    module = moka.torch.import_module(model.eval(), (torch.randn(*shape),))
    assert "dense<" not in module.mlir  # no weight values in the text
    assert set(module.resources()) == set(module.weights)
    path = tmp_path / f"{name}.mlir"
    module.save(path)
    proc = moka_opt(path)
    assert proc.returncode == 0, proc.stderr


def test_saved_module_runs_with_moka_run(tmp_path, rng):
    """moka-run loads the weights named by the moka.weights attribute."""
    model = nn.Sequential(nn.Linear(8, 16), nn.GELU(), nn.Linear(16, 8))
    module = moka.torch.import_module(model.eval(), (torch.randn(2, 8),))
    module.save(tmp_path / "mlp.mlir")
    x = normal(rng, (5, 8))
    (y,) = moka.run(str(tmp_path / "mlp.mlir"), "forward", x)
    assert max_error(y, reference(model, x)[0]) <= TOLERANCE


def test_inlined_mlir_runs(rng):
    model = tm.MixtralSparseMoeBlock(tm.mixtral_config(16, 24, 4, 2)).eval()
    module = moka.torch.import_module(model, (torch.randn(1, 3, 16),))
    text = module.inlined_mlir()
    assert "dense_resource" not in text
    x = separated(rng, (2, 3, 16), lambda t: topk_gap(
        t @ model.gate.weight.detach().double().numpy().T, 2))
    out, logits = moka.run(text, "forward", x)
    ref_out, ref_logits = reference(model, x)
    assert max_error(out, ref_out) <= TOLERANCE
    assert max_error(logits, ref_logits) <= TOLERANCE


def test_import_moka_without_torch():
    code = "import sys, moka; assert 'torch' not in sys.modules, 'torch'"
    env = dict(os.environ, PYTHONPATH=os.path.dirname(
        os.path.dirname(moka.__file__)))
    proc = subprocess.run([sys.executable, "-c", code], env=env,
                          capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr


# ---------------------------------------------------------------------------
# moka.Module


def test_module_save_load(tmp_path):
    model = tm.KAN(16, 32, num_groups=4).eval()
    module = moka.torch.import_module(model, (torch.randn(2, 16),))
    assert str(module) == module.mlir
    assert module.functions == ["forward"]
    (tmp_path / "out").mkdir()
    weights_path = module.save(tmp_path / "out" / "kat.mlir")
    assert weights_path == str(tmp_path / "out" / "kat.safetensors")
    text = (tmp_path / "out" / "kat.mlir").read_text()
    assert 'module attributes {moka.weights = "kat.safetensors"}' in text
    assert "moka.weights" not in module.mlir
    loaded = moka.Module.load(tmp_path / "out" / "kat.mlir")
    assert loaded.mlir == module.mlir
    assert loaded.functions == ["forward"]
    assert set(loaded.weights) == set(module.weights)
    for key, value in module.weights.items():
        assert loaded.weights[key].dtype == value.dtype
        assert np.array_equal(loaded.weights[key], value)
    assert model.fc1.weight.detach().numpy().tolist() == \
        loaded.weights["fc1.weight"].tolist()
    # Saving a loaded module elsewhere rewrites the attribute.
    loaded.save(tmp_path / "again.mlir")
    assert 'moka.weights = "again.safetensors"' in \
        (tmp_path / "again.mlir").read_text()
    assert moka_opt(tmp_path / "again.mlir").returncode == 0


def test_module_without_weights(tmp_path):
    text = ("func.func @f(%x: tensor<4xf32>) -> tensor<4xf32> {\n"
            "  return %x : tensor<4xf32>\n}\n")
    module = moka.Module(text)
    assert module.functions == ["f"]
    assert module.save(tmp_path / "f.mlir") is None
    assert not (tmp_path / "f.safetensors").exists()
    assert moka.Module.load(tmp_path / "f.mlir").mlir == text


def test_module_keeps_other_attributes(tmp_path):
    text = ('module attributes {test.flag = "a, b", moka.weights = '
            '"old.safetensors"} {\n  func.func @f(%x: tensor<2xf32>) -> '
            'tensor<2xf32> {\n    %w = arith.constant dense_resource<w> : '
            'tensor<2xf32>\n    return %w : tensor<2xf32>\n  }\n}\n')
    module = moka.Module(text, {"w": np.array([1, 2], np.float32)})
    assert module.mlir.startswith('module attributes {test.flag = "a, b"} {')
    module.save(tmp_path / "m.mlir")
    saved = (tmp_path / "m.mlir").read_text()
    assert saved.startswith('module attributes {moka.weights = '
                            '"m.safetensors", test.flag = "a, b"} {')
    assert moka_opt(tmp_path / "m.mlir").returncode == 0


def test_module_errors(tmp_path):
    text = ("func.func @f() -> tensor<2xf32> {\n  %w = arith.constant "
            "dense_resource<w> : tensor<2xf32>\n"
            "  return %w : tensor<2xf32>\n}")
    with pytest.raises(ValueError, match="w"):
        moka.Module(text).save(tmp_path / "x.mlir")
    with pytest.raises(ValueError, match="resource key"):
        moka.Module(text, {"0.w": np.zeros(2, np.float32)})
    path = tmp_path / "y.mlir"
    path.write_text('module attributes {moka.weights = "gone.safetensors"} '
                    '{\n}\n')
    with pytest.raises(ValueError, match="gone.safetensors"):
        moka.Module.load(path)


# ---------------------------------------------------------------------------
# safetensors

ALL_DTYPES = [np.float64, np.float32, np.float16, np.int64, np.int32,
              np.int16, np.int8, np.uint64, np.uint32, np.uint16, np.uint8,
              np.bool_]


def random_tensors(rng):
    tensors = {}
    for i, dtype in enumerate(ALL_DTYPES):
        shape = [(), (0,), (3,), (2, 5), (3, 0, 2), (1, 2, 3, 4)][i % 6]
        values = rng.standard_normal(shape) * 100
        if np.dtype(dtype).kind == "u":
            values = np.abs(values)
        tensors[f"t{i}.{np.dtype(dtype).name}"] = values.astype(dtype)
    tensors["bf"] = moka.BF16Bits.from_float(rng.standard_normal((3, 7)))
    return tensors


def test_safetensors_round_trip(tmp_path, rng):
    tensors = random_tensors(rng)
    safetensors.save(tmp_path / "a.safetensors", tensors,
                     metadata={"format": "np"})
    loaded, metadata = safetensors.load(tmp_path / "a.safetensors",
                                        with_metadata=True)
    assert metadata == {"format": "np"}
    assert set(loaded) == set(tensors)
    for name, value in tensors.items():
        assert loaded[name].dtype == value.dtype, name
        assert loaded[name].shape == value.shape, name
        assert np.array_equal(loaded[name], value), name
    assert isinstance(loaded["bf"], moka.BF16Bits)
    assert np.array_equal(loaded["bf"].to_float32(),
                          moka.from_bf16_bits(tensors["bf"]))


def test_safetensors_layout(tmp_path, rng):
    tensors = random_tensors(rng)
    safetensors.save(tmp_path / "a.safetensors", tensors)
    shuffled = dict(reversed(list(tensors.items())))
    safetensors.save(tmp_path / "b.safetensors", shuffled)
    blob = (tmp_path / "a.safetensors").read_bytes()
    assert blob == (tmp_path / "b.safetensors").read_bytes()
    (size,) = struct.unpack("<Q", blob[:8])
    assert (8 + size) % 64 == 0
    text = blob[8:8 + size].decode()
    assert text.startswith("{") and text.rstrip(" ").endswith("}")
    header = json.loads(text)
    assert list(header) == sorted(header)
    spans = sorted((v["data_offsets"], v["dtype"]) for v in header.values())
    position = 0
    for (begin, end), dtype in spans:
        assert begin == position
        assert begin % safetensors.DTYPES[dtype].itemsize == 0
        position = end
    assert position == len(blob) - 8 - size


def test_safetensors_reads_the_format(tmp_path):
    """A file written by hand from the format's definition."""
    header = {"b": {"dtype": "I32", "shape": [2], "data_offsets": [0, 8]},
              "a": {"dtype": "F16", "shape": [1, 2], "data_offsets": [8, 12]},
              "__metadata__": {"k": "v"}}
    text = json.dumps(header).encode() + b"  "
    data = (struct.pack("<ii", -3, 7) +
            np.array([[1.5, -2.0]], "<f2").tobytes())
    path = tmp_path / "hand.safetensors"
    path.write_bytes(struct.pack("<Q", len(text)) + text + data)
    tensors = safetensors.load(path)
    assert tensors["b"].tolist() == [-3, 7] and tensors["b"].dtype == np.int32
    assert tensors["a"].tolist() == [[1.5, -2.0]]
    assert tensors["a"].dtype == np.float16


def test_safetensors_bf16_from_dtypes(tmp_path):
    bits = moka.to_bf16_bits(np.array([1.0, -2.5, 3.25], np.float32))
    safetensors.save(tmp_path / "w.safetensors", {"w": bits},
                     dtypes={"w": "BF16"})
    blob = (tmp_path / "w.safetensors").read_bytes()
    assert b'"dtype":"BF16"' in blob
    loaded = safetensors.load(tmp_path / "w.safetensors")["w"]
    assert isinstance(loaded, moka.BF16Bits)
    assert loaded.to_float32().tolist() == [1.0, -2.5, 3.25]
    with pytest.raises(ValueError, match="cannot be written as BF16"):
        safetensors.save(tmp_path / "x.safetensors",
                         {"w": np.zeros(2, np.float32)}, dtypes={"w": "BF16"})
    with pytest.raises(ValueError, match="complex64"):
        safetensors.save(tmp_path / "x.safetensors",
                         {"w": np.zeros(2, np.complex64)})


def write_raw(path, header, data=b"", size=None):
    text = json.dumps(header).encode() if isinstance(header, dict) else header
    path.write_bytes(struct.pack("<Q", len(text) if size is None else size)
                     + text + data)
    return path


@pytest.mark.parametrize("header, data, size, message", [
    (None, b"", None, "shorter than the 8-byte"),
    ({}, b"", 1000, "exceeds the"),
    (b"[1, 2]", b"", None, "start with"),
    (b"{not json", b"", None, "not valid JSON"),
    ({"a": {"dtype": "F32", "shape": [2], "data_offsets": [0, 8]}}, b"\0" * 4,
     None, "truncated"),
    ({"a": {"dtype": "F32", "shape": [3], "data_offsets": [0, 8]}}, b"\0" * 8,
     None, "needs 12 bytes"),
    ({"a": {"dtype": "F32", "shape": [1], "data_offsets": [4, 8]}}, b"\0" * 8,
     None, "hole"),
    ({"a": {"dtype": "F32", "shape": [2], "data_offsets": [0, 8]},
      "b": {"dtype": "F32", "shape": [1], "data_offsets": [4, 8]}}, b"\0" * 8,
     None, "overlaps"),
    ({"a": {"dtype": "F32", "shape": [1], "data_offsets": [0, 4]}}, b"\0" * 8,
     None, "after the last tensor"),
    ({"a": {"dtype": "Q7", "shape": [1], "data_offsets": [0, 4]}}, b"\0" * 4,
     None, "unknown dtype"),
    ({"a": {"dtype": "F32", "shape": [1], "data_offsets": [4, 0]}}, b"\0" * 4,
     None, "out of order"),
    ({"a": {"dtype": "F32", "shape": [-1], "data_offsets": [0, 4]}},
     b"\0" * 4, None, "invalid shape"),
    ({"a": {"dtype": "F32", "shape": [1]}}, b"\0" * 4, None, "data_offsets"),
    (b'{"a": {"dtype": "U8", "shape": [1], "data_offsets": [0, 1]}, '
     b'"a": {"dtype": "U8", "shape": [1], "data_offsets": [0, 1]}}', b"\0",
     None, "duplicate"),
])
def test_safetensors_malformed(tmp_path, header, data, size, message):
    path = tmp_path / "bad.safetensors"
    if header is None:
        path.write_bytes(b"\x10\0\0")
    else:
        write_raw(path, header, data, size)
    with pytest.raises(ValueError, match=message):
        safetensors.load(path)


def test_safetensors_truncated_save(tmp_path, rng):
    safetensors.save(tmp_path / "a.safetensors",
                     {"w": normal(rng, (16, 16))})
    blob = (tmp_path / "a.safetensors").read_bytes()
    for cut in (4, 40, len(blob) - 1):
        (tmp_path / "cut.safetensors").write_bytes(blob[:cut])
        with pytest.raises(ValueError, match="not a valid safetensors"):
            safetensors.load(tmp_path / "cut.safetensors")
