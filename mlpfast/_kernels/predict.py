"""Inference: the forward pass over many rows, in parallel blocks of rows.

Each of ``n_blocks`` threads takes a contiguous range of rows and pushes it
through the network ``chunk`` rows at a time, using its own slice of the
workspace ``acts`` (shape (n_blocks, chunk * sum of hidden widths)), so memory
stays bounded however many rows are predicted.  The last layer writes straight
into ``out``.
"""

from numba import prange

from .._config import parallel_kernel, kernel
from .dense import ACTIVATION, forward_block


@kernel
def _forward_range(X, params, layout, acts, out, r0, r1, chunk, activate_output):
    last = layout.shape[0] - 1
    code = layout[last, ACTIVATION] if activate_output else 0
    for c0 in range(r0, r1, chunk):
        c1 = min(c0 + chunk, r1)
        forward_block(X[c0:c1], params, layout, acts, 0, c1 - c0, out[c0:c1], code)


@parallel_kernel
def forward_rows(X, params, layout, acts, out, chunk, activate_output):
    """``out = network(X)``; logits only when ``activate_output`` is False."""
    n = X.shape[0]
    n_blocks = acts.shape[0]
    if n_blocks <= 1:
        _forward_range(X, params, layout, acts[0], out, 0, n, chunk, activate_output)
        return
    for t in prange(n_blocks):
        _forward_range(X, params, layout, acts[t], out, t * n // n_blocks,
                       (t + 1) * n // n_blocks, chunk, activate_output)
