"""Inputs and float64 reference of examples/kat_rational.mlir."""

import numpy as np

from moka.reference import rational

FUNCTION = "forward"
TOLERANCE = 1e-6


def inputs(rng):
    x = rng.standard_normal((32, 197, 3072)).astype(np.float32)
    # Coefficients of the scale of KAT's GELU-initialized rationals.
    numerator = (rng.standard_normal((8, 6)) * 0.5).astype(np.float32)
    denominator = (rng.standard_normal((8, 4)) * 0.5).astype(np.float32)
    return [x, numerator, denominator]


def reference(x, numerator, denominator):
    return [rational(x, numerator, denominator)]
