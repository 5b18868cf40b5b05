"""moka: compile and run moka IR from Python on numpy arrays.

The compiler is driven through its command-line tools (``moka-run``); arrays
travel as ``.npy`` files. bf16 has no numpy dtype: bf16 tensors are passed and
returned as ``uint16`` arrays holding the raw bits (see :func:`to_bf16_bits`
and :func:`from_bf16_bits`).
"""

from .tools import MokaError, find_tool, run, from_bf16_bits, to_bf16_bits

__all__ = ["MokaError", "find_tool", "run", "from_bf16_bits", "to_bf16_bits"]
