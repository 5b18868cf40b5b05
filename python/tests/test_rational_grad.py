"""kan.rational_grad against PyTorch autograd of the reference formula in
float64, and bit-identical coefficient gradients across runs and thread
counts."""

import numpy as np
import pytest
import torch

import moka
from moka.reference import relative_error

GRAD = """
func.func @g(%x: tensor<{xs}xf32>, %dy: tensor<{xs}xf32>, %a: tensor<{ga}x{m1}xf32>, %b: tensor<{g}x{n}xf32>) -> (tensor<{xs}xf32>, tensor<{ga}x{m1}xf32>, tensor<{g}x{n}xf32>) {{
  %dx, %da, %db = kan.rational_grad %x, %dy, %a, %b {{m = {m} : i64, n = {n} : i64}} : tensor<{xs}xf32>, tensor<{ga}x{m1}xf32>, tensor<{g}x{n}xf32>
  return %dx, %da, %db : tensor<{xs}xf32>, tensor<{ga}x{m1}xf32>, tensor<{g}x{n}xf32>
}}
"""


def module(shape, groups, m, n, shared, dynamic):
    dims = ["?" if dynamic else str(d) for d in shape]
    return GRAD.format(xs="x".join(dims), g=groups, ga=1 if shared else groups,
                       m1=m + 1, m=m, n=n)


def torch_reference(x, dy, a, b):
    """Autograd of y = P(x) / Q(x) per group, in float64."""
    xt = torch.tensor(x, dtype=torch.float64, requires_grad=True)
    at = torch.tensor(a, dtype=torch.float64, requires_grad=True)
    bt = torch.tensor(b, dtype=torch.float64, requires_grad=True)
    groups = b.shape[0]
    channels = x.shape[-1]
    group_of = torch.arange(channels) // (channels // groups)
    a_c = at[torch.zeros(channels, dtype=torch.long)] if a.shape[0] == 1 \
        else at[group_of]
    b_c = bt[group_of]
    p = torch.zeros_like(xt)
    for i in range(a.shape[1]):
        p = p + a_c[:, i] * xt ** i
    q = torch.ones_like(xt)
    for j in range(b.shape[1]):
        q = q + b_c[:, j].abs() * xt.abs() ** (j + 1)
    y = p / q
    y.backward(torch.tensor(dy, dtype=torch.float64))
    return (xt.grad.numpy(), at.grad.numpy(),
            bt.grad.numpy() if b.shape[1] else np.zeros(b.shape))


def random_case(rng, shape=None, groups=None):
    if groups is None:
        groups = int(rng.choice([1, 2, 4, 8]))
    if shape is None:
        rank = int(rng.integers(1, 4))
        shape = [int(rng.integers(1, 40)) for _ in range(rank - 1)]
        shape.append(groups * int(rng.integers(1, 50)))
    m, n = int(rng.integers(0, 7)), int(rng.integers(0, 6))
    shared = bool(rng.integers(0, 2))
    x = rng.standard_normal(shape).astype(np.float32) * 2
    dy = rng.standard_normal(shape).astype(np.float32)
    a = rng.standard_normal((1 if shared else groups, m + 1)).astype(np.float32)
    b = rng.standard_normal((groups, n)).astype(np.float32)
    return shape, groups, m, n, shared, x, dy, a, b


@pytest.mark.parametrize("seed", range(6))
def test_grad_matches_autograd(seed):
    rng = np.random.default_rng()
    shape, groups, m, n, shared, x, dy, a, b = random_case(rng)
    dynamic = bool(rng.integers(0, 2))
    dx, da, db = moka.run(module(shape, groups, m, n, shared, dynamic), "g",
                          x, dy, a, b)
    rdx, rda, rdb = torch_reference(x, dy, a, b)
    assert dx.shape == x.shape and da.shape == a.shape and db.shape == b.shape
    assert relative_error(dx, rdx) <= 1e-5
    assert relative_error(da, rda) <= 1e-5
    if n:
        assert relative_error(db, rdb) <= 1e-5


def test_grad_kat_shape_deterministic():
    """KAT's shape: the coefficient gradients reduce 19M elements; two runs
    and one versus two threads give the same bits."""
    rng = np.random.default_rng()
    shape = [32, 197, 3072]
    x = rng.standard_normal(shape).astype(np.float32)
    dy = rng.standard_normal(shape).astype(np.float32)
    a = rng.standard_normal((8, 6)).astype(np.float32)
    b = rng.standard_normal((8, 4)).astype(np.float32)
    text = module(shape, 8, 5, 4, False, dynamic=True)
    first = moka.run(text, "g", x, dy, a, b)
    second = moka.run(text, "g", x, dy, a, b)
    serial = moka.run(text, "g", x, dy, a, b, serial=True)
    for u, v, w in zip(first, second, serial):
        assert u.tobytes() == v.tobytes() == w.tobytes()
    rdx, rda, rdb = torch_reference(x, dy, a, b)
    assert relative_error(first[0], rdx) <= 1e-5
    assert relative_error(first[1], rda) <= 1e-5
    assert relative_error(first[2], rdb) <= 1e-5


def test_grad_empty_batch():
    """No rows: dx is empty and the coefficient gradients are zero."""
    rng = np.random.default_rng()
    x = np.zeros((0, 16), np.float32)
    a = rng.standard_normal((4, 6)).astype(np.float32)
    b = rng.standard_normal((4, 4)).astype(np.float32)
    dx, da, db = moka.run(module([0, 16], 4, 5, 4, False, True), "g",
                          x, x, a, b)
    assert dx.shape == (0, 16)
    assert not da.any() and not db.any()


def test_grad_shape_mismatch():
    """x and dy share a type, but their dynamic sizes can still differ at run
    time: a clear error."""
    rng = np.random.default_rng()
    x = rng.standard_normal((5, 16)).astype(np.float32)
    dy = rng.standard_normal((4, 16)).astype(np.float32)
    a = rng.standard_normal((4, 6)).astype(np.float32)
    b = rng.standard_normal((4, 4)).astype(np.float32)
    with pytest.raises(moka.MokaError, match="shapes of the input and of the "
                       "output gradient differ"):
        moka.run(module([5, 16], 4, 5, 4, False, True), "g", x, dy, a, b)
