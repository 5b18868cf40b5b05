"""Inputs and float64 reference of examples/deepseek_moe.mlir."""

import numpy as np

from moka.reference import moe_layer

FUNCTION = "forward"
TOLERANCE = 1e-5


def inputs(rng):
    d, e, f, fs = 512, 64, 256, 512
    x = rng.standard_normal((128, d)).astype(np.float32)
    gate = (rng.standard_normal((e, d)) / np.sqrt(d)).astype(np.float32)
    w1 = (rng.standard_normal((e, f, d)) / np.sqrt(d)).astype(np.float32)
    w2 = (rng.standard_normal((e, d, f)) / np.sqrt(f)).astype(np.float32)
    w3 = (rng.standard_normal((e, f, d)) / np.sqrt(d)).astype(np.float32)
    bias = (rng.standard_normal(e) * 0.01).astype(np.float32)
    s1 = (rng.standard_normal((fs, d)) / np.sqrt(d)).astype(np.float32)
    s2 = (rng.standard_normal((d, fs)) / np.sqrt(fs)).astype(np.float32)
    s3 = (rng.standard_normal((fs, d)) / np.sqrt(d)).astype(np.float32)
    return [x, gate, w1, w2, w3, bias, s1, s2, s3]


def reference(x, gate, w1, w2, w3, bias, s1, s2, s3):
    return [moe_layer(x, gate, w1, w2, w3, 6, shared=(s1, s2, s3),
                      scoring="sigmoid", bias=bias, n_group=8, topk_group=4,
                      group_top2=True, normalize=True, scale=2.5)]
