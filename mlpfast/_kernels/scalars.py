"""Typed constants for kernels that serve float32 and float64 from one source.

A float literal in a kernel is float64 and silently promotes float32 arithmetic
(``0.01 * x``, ``max(x, 0)``, ``1 + x``): measured 1.3-1.7x slower on float32 loops
(NUMBA_NOTES.md), and the results stop being float32 arithmetic.  Kernels write
``like(0.01, x)`` instead: the constant in the dtype of ``x`` (a scalar or an array).
"""

import numpy as np
from numba import types
from numba.extending import overload


def like(value, reference):
    """``value`` converted to the floating type of ``reference`` (pure-Python fallback)."""
    dtype = reference.dtype if hasattr(reference, "dtype") else np.float64
    return dtype.type(value)


@overload(like, inline="always")
def _like_overload(value, reference):
    kind = reference.dtype if isinstance(reference, types.Array) else reference
    if kind == types.float32:
        return lambda value, reference: np.float32(value)
    return lambda value, reference: np.float64(value)
