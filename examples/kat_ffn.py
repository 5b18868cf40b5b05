"""Inputs and float64 reference of examples/kat_ffn.mlir."""

import numpy as np

from moka.reference import rational

FUNCTION = "forward"
TOLERANCE = 1e-5


def inputs(rng):
    x = rng.standard_normal((8, 197, 384)).astype(np.float32)

    def coefficients():
        return ((rng.standard_normal((8, 6)) * 0.5).astype(np.float32),
                (rng.standard_normal((8, 4)) * 0.5).astype(np.float32))

    def linear(cin, cout):
        bound = 1.0 / np.sqrt(cin)
        return (rng.uniform(-bound, bound, (cout, cin)).astype(np.float32),
                rng.uniform(-bound, bound, cout).astype(np.float32))

    a1, b1 = coefficients()
    w1, c1 = linear(384, 1536)
    a2, b2 = coefficients()
    w2, c2 = linear(1536, 384)
    return [x, a1, b1, w1, c1, a2, b2, w2, c2]


def reference(x, a1, b1, w1, c1, a2, b2, w2, c2):
    h = rational(x, a1, b1) @ w1.astype(np.float64).T + c1
    return [rational(h, a2, b2) @ w2.astype(np.float64).T + c2]
