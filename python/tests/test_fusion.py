"""Fused KAN blocks compute the same numbers as their float64 references:
KAT's feed-forward block (fc1 -> rational -> fc2 with both rationals fused
into one loop over row tiles) at batch sizes whose 197 rows per image leave
partial row tiles and partial register tiles, serial and parallel."""

import importlib.util
import os

import numpy as np
import pytest

import moka
from moka.reference import relative_error

EXAMPLES = os.path.join(os.path.dirname(__file__), "..", "..", "examples")


def load_example(name):
    spec = importlib.util.spec_from_file_location(
        name, os.path.join(EXAMPLES, name + ".py"))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.parametrize("batch,serial", [(1, False), (3, True), (2, False)])
def test_kat_ffn_block(batch, serial):
    example = load_example("kat_ffn")
    inputs = example.inputs(np.random.default_rng())
    inputs[0] = inputs[0][:batch]
    (y,) = moka.run(os.path.join(EXAMPLES, "kat_ffn.mlir"), example.FUNCTION,
                    *inputs, serial=serial)
    (ref,) = example.reference(*inputs)
    assert y.shape == ref.shape
    assert relative_error(y, ref) <= 1e-5
