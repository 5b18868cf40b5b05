"""moe.route against float64 PyTorch reimplementations of HF transformers'
Mixtral router and DeepSeek-V3's gate (and variants: group max, no
normalization, softmax with bias), on fresh random logits: the same experts
for every token, in the same order, and the same weights."""

import numpy as np
import pytest
import torch

import moka
from moka.reference import relative_error

ROUTE = """
func.func @route(%l: tensor<?x{e}xf32>{bias_arg}) -> (tensor<?x{k}xf32>, tensor<?x{k}xi32>) {{
  %w, %i = moe.route %l{bias} {{{attrs}}} : tensor<?x{e}xf32> -> tensor<?x{k}xf32>, tensor<?x{k}xi32>
  return %w, %i : tensor<?x{k}xf32>, tensor<?x{k}xi32>
}}
"""


def module(e, k, bias=False, **attrs):
    items = [f"k = {k} : i64"]
    for key, value in attrs.items():
        if key in ("scoring", "group_score"):
            items.append(f"{key} = #moe<{key} {value}>")
        elif isinstance(value, bool):
            items.append(f"{key} = {str(value).lower()}")
        elif isinstance(value, float):
            items.append(f"{key} = {value!r} : f64")
        else:
            items.append(f"{key} = {value} : i64")
    return ROUTE.format(
        e=e, k=k, attrs=", ".join(items),
        bias_arg=f", %b: tensor<{e}xf32>" if bias else "",
        bias=f" bias(%b : tensor<{e}xf32>)" if bias else "")


def mixtral_router(logits, k):
    """HF MixtralSparseMoeBlock's routing, float64, with ties going to the
    lower expert index (torch.topk leaves their order unspecified; equal
    logits are common in f16)."""
    weights = torch.softmax(torch.tensor(logits, dtype=torch.float64),
                            dim=1).numpy()
    experts = np.argsort(-weights, axis=1, kind="stable")[:, :k]
    weights = np.take_along_axis(weights, experts, axis=1)
    weights = weights / weights.sum(axis=-1, keepdims=True)
    return weights, experts


def deepseek_v3_gate(logits, bias, k, n_group, topk_group, group_top2=True,
                     scoring="sigmoid", normalize=True, scale=2.5):
    """DeepSeek-V3's gate (noaux_tc), float64; experts outside the kept
    groups are excluded (-inf), as in DeepSeek-V3's inference code."""
    x = torch.tensor(logits, dtype=torch.float64)
    scores = torch.sigmoid(x) if scoring == "sigmoid" else torch.softmax(x, 1)
    choice = scores + (torch.tensor(bias, dtype=torch.float64)
                       if bias is not None else 0)
    t, e = choice.shape
    grouped = choice.view(t, n_group, e // n_group)
    if group_top2:
        group_scores = grouped.topk(2, dim=-1)[0].sum(dim=-1)
    else:
        group_scores = grouped.max(dim=-1).values
    group_idx = torch.topk(group_scores, k=topk_group, dim=-1)[1]
    mask = torch.zeros_like(group_scores).scatter_(1, group_idx, 1)
    mask = mask.unsqueeze(-1).expand(t, n_group, e // n_group).reshape(t, e)
    masked = choice.masked_fill(~mask.bool(), float("-inf"))
    experts = torch.topk(masked, k=k, dim=-1)[1]
    weights = scores.gather(1, experts)
    if normalize:
        weights = weights / weights.sum(dim=-1, keepdim=True)
    return (weights * scale).numpy(), experts.numpy()


@pytest.mark.parametrize("tokens", [1, 7, 300])
def test_mixtral(tokens):
    rng = np.random.default_rng()
    logits = rng.standard_normal((tokens, 8)).astype(np.float32)
    w, e = moka.run(module(8, 2, normalize=True), "route", logits)
    rw, re = mixtral_router(logits, 2)
    assert e.dtype == np.int32 and (e == re).all()
    assert relative_error(w, rw) <= 1e-5


@pytest.mark.parametrize("tokens", [1, 33, 257])
def test_deepseek_v3(tokens):
    rng = np.random.default_rng()
    logits = rng.standard_normal((tokens, 256)).astype(np.float32)
    bias = (rng.standard_normal(256) * 0.1).astype(np.float32)
    text = module(256, 8, bias=True, scoring="sigmoid", n_group=8,
                  topk_group=4, group_score="top2_sum", normalize=True,
                  routed_scaling_factor=2.5)
    w, e = moka.run(text, "route", logits, bias)
    rw, re = deepseek_v3_gate(logits, bias, 8, 8, 4)
    assert (e == re).all()
    assert relative_error(w, rw) <= 1e-5


@pytest.mark.parametrize("seed", range(4))
def test_random_configurations(seed):
    rng = np.random.default_rng()
    groups = int(rng.choice([1, 2, 4]))
    per_group = int(rng.integers(2, 9))
    e = groups * per_group
    keep = int(rng.integers(1, groups + 1))
    k = int(rng.integers(1, keep * per_group + 1))
    scoring = str(rng.choice(["softmax", "sigmoid"]))
    top2 = bool(rng.integers(0, 2))
    normalize = bool(rng.integers(0, 2))
    scale = float(rng.choice([1.0, 2.5, 16.0]))
    use_bias = bool(rng.integers(0, 2))
    tokens = int(rng.integers(1, 100))
    logits = rng.standard_normal((tokens, e)).astype(np.float32)
    bias = (rng.standard_normal(e) * 0.3).astype(np.float32)
    text = module(e, k, bias=use_bias, scoring=scoring, n_group=groups,
                  topk_group=keep,
                  group_score="top2_sum" if top2 else "max",
                  normalize=normalize, routed_scaling_factor=scale)
    args = (logits, bias) if use_bias else (logits,)
    w, idx = moka.run(text, "route", *args)
    rw, re = deepseek_v3_gate(logits, bias if use_bias else None, k, groups,
                              keep, top2, scoring, normalize, scale)
    assert (idx == re).all()
    assert relative_error(w, rw) <= 1e-5


def test_ties_go_to_the_lower_index():
    logits = np.zeros((3, 6), np.float32)
    logits[1, [1, 4]] = 2.0
    w, e = moka.run(module(6, 3), "route", logits)
    assert e.tolist() == [[0, 1, 2], [1, 4, 0], [0, 1, 2]]
    assert np.allclose(w[0], 1 / 6)


def test_f16_logits():
    """Logits stored in f16 are scored in f32: the same choice as the
    float64 reference on the rounded logits."""
    rng = np.random.default_rng()
    logits = rng.standard_normal((50, 8)).astype(np.float16)
    text = module(8, 2, normalize=True).replace("tensor<?x8xf32>",
                                                "tensor<?x8xf16>")
    w, e = moka.run(text, "route", logits)
    rw, re = mixtral_router(logits.astype(np.float64), 2)
    assert (e == re).all()
    assert relative_error(w, rw) <= 1e-5
