"""moka: compile and run moka IR from Python on numpy arrays.

``moka.compile`` compiles a module ahead of time (``mokac``) into a native
library whose functions take and return numpy arrays; ``moka.run`` runs one
function through ``moka-run`` with arrays passed as ``.npy`` files. bf16 has no numpy dtype: bf16 tensors are passed and
returned as ``uint16`` arrays holding the raw bits (see :func:`to_bf16_bits`
and :func:`from_bf16_bits`).

A :class:`Module` is MLIR text plus its weights, saved as a ``.mlir`` file and
a safetensors file beside it (:mod:`moka.safetensors`). ``moka.torch`` imports
PyTorch modules into one (``moka.torch.import_module``); it is loaded, with
torch, only when first used, so ``import moka`` does not need torch.
"""

import importlib

from .compiler import Library, compile
from .module import Module
from .safetensors import BF16Bits
from .tools import MokaError, find_tool, run, from_bf16_bits, to_bf16_bits

__all__ = ["MokaError", "Module", "BF16Bits", "Library", "compile",
           "find_tool", "run", "from_bf16_bits", "to_bf16_bits"]


def __getattr__(name):
    # `moka.torch` imports torch: load it on first use only.
    if name == "torch":
        return importlib.import_module(".torch", __name__)
    raise AttributeError(f"module 'moka' has no attribute '{name}'")
