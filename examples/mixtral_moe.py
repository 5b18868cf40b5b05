"""Inputs and float64 reference of examples/mixtral_moe.mlir."""

import numpy as np

from moka.reference import moe_layer

FUNCTION = "forward"
TOLERANCE = 1e-5


def inputs(rng):
    d, e, f = 1024, 8, 2048
    x = rng.standard_normal((256, d)).astype(np.float32)
    gate = (rng.standard_normal((e, d)) / np.sqrt(d)).astype(np.float32)
    w1 = (rng.standard_normal((e, f, d)) / np.sqrt(d)).astype(np.float32)
    w2 = (rng.standard_normal((e, d, f)) / np.sqrt(f)).astype(np.float32)
    w3 = (rng.standard_normal((e, f, d)) / np.sqrt(d)).astype(np.float32)
    return [x, gate, w1, w2, w3]


def reference(x, gate, w1, w2, w3):
    return [moe_layer(x, gate, w1, w2, w3, 2, normalize=True)]
