"""Dense layers: the three matmuls of back-propagation, the forward pass and the
delta recursion over a block of rows.

All buffers are flat; a layer's ``W`` (n_in, n_out), ``b`` (n_out,) and its output
block are reshaped views taken here, so one kernel serves every architecture.
The per-layer table ``layout`` (see ``mlpfast/_layout.py``) has one row per layer:

    N_IN, N_OUT, W_OFFSET, B_OFFSET, ACTIVATION, ACT_OFFSET

``ACT_OFFSET`` locates the layer's output block in the activation (and delta)
workspace, which holds ``capacity`` rows per layer.

The matmuls go to BLAS (numba's ``np.dot`` with an ``out`` buffer: no allocation)
unless a dimension is tiny, where BLAS's call overhead dominates and a loop the
compiler vectorizes is faster (NUMBA_NOTES.md: 2-5x on tiny shapes).  BLAS here is
single-threaded by policy (mlpfast/_threads.py): parallelism comes from splitting
the minibatch's rows across Numba threads, each running this code on its block.
"""

import numpy as np

from .._config import kernel
from .activations import bias_activation, multiply_by_derivative
from .scalars import like

N_IN, N_OUT, W_OFFSET, B_OFFSET, ACTIVATION, ACT_OFFSET = range(6)
LAYOUT_COLUMNS = 6

# Below these sizes the hand-written loops beat a BLAS call (see asv Dense.time_*).
SMALL_INNER = 8
SMALL_WORK = 4096


@kernel
def _use_loops(n, k, m):
    return k <= SMALL_INNER or m <= SMALL_INNER or n * k * m <= SMALL_WORK


@kernel
def matmul(a, b, out):
    """out = a @ b."""
    n, k = a.shape
    m = b.shape[1]
    if _use_loops(n, k, m):
        zero = like(0.0, out)
        for i in range(n):
            for j in range(m):
                out[i, j] = zero
            for p in range(k):
                aip = a[i, p]
                for j in range(m):
                    out[i, j] += aip * b[p, j]
    else:
        np.dot(a, b, out)


@kernel
def matmul_tn(a, d, out):
    """out = a.T @ d (the weight gradient: a sum over the rows of a block)."""
    n, k = a.shape
    m = d.shape[1]
    if _use_loops(n, k, m):
        zero = like(0.0, out)
        for p in range(k):
            for j in range(m):
                out[p, j] = zero
        for i in range(n):
            for p in range(k):
                aip = a[i, p]
                for j in range(m):
                    out[p, j] += aip * d[i, j]
    else:
        np.dot(a.T, d, out)


@kernel
def matmul_nt(d, w, out):
    """out = d @ w.T (the delta recursion)."""
    n, m = d.shape
    k = w.shape[0]
    if _use_loops(n, k, m):
        for i in range(n):
            for p in range(k):
                acc = like(0.0, out)
                for j in range(m):
                    acc += d[i, j] * w[p, j]
                out[i, p] = acc
    else:
        np.dot(d, w.T, out)


@kernel
def weights_of(params, layout, k):
    row = layout[k]
    return params[row[W_OFFSET]:row[W_OFFSET] + row[N_IN] * row[N_OUT]].reshape(
        row[N_IN], row[N_OUT])


@kernel
def bias_of(params, layout, k):
    row = layout[k]
    return params[row[B_OFFSET]:row[B_OFFSET] + row[N_OUT]]


@kernel
def block_of(buffer, layout, k, r0, r1):
    """Rows r0:r1 of layer k's block in an activation or delta workspace."""
    width = layout[k, N_OUT]
    start = layout[k, ACT_OFFSET] + r0 * width
    return buffer[start:start + (r1 - r0) * width].reshape(r1 - r0, width)


@kernel
def forward_block(inputs, params, layout, acts, r0, r1, final, final_code):
    """Forward pass of rows r0:r1 (``inputs`` and ``final`` hold exactly those rows).

    Hidden layers write their outputs into their blocks of ``acts``; the last
    layer writes into ``final`` with activation ``final_code`` (identity when the
    fused output loss needs the logits).
    """
    n_layers = layout.shape[0]
    current = inputs
    for k in range(n_layers - 1):
        out = block_of(acts, layout, k, r0, r1)
        matmul(current, weights_of(params, layout, k), out)
        bias_activation(out, bias_of(params, layout, k), layout[k, ACTIVATION])
        current = out
    last = n_layers - 1
    matmul(current, weights_of(params, layout, last), final)
    bias_activation(final, bias_of(params, layout, last), final_code)


@kernel
def backward_block(inputs, params, grads, layout, acts, deltas, r0, r1):
    """Back-propagate rows r0:r1, whose output delta is already in ``deltas``.

    Writes this block's weight and bias gradients (sums over its rows) into
    ``grads``, and the delta recursion ``(d_k W_k^T) * f'(z_{k-1})`` into ``deltas``.
    """
    n_layers = layout.shape[0]
    for k in range(n_layers - 1, -1, -1):
        d = block_of(deltas, layout, k, r0, r1)
        if k == 0:
            below = inputs
        else:
            below = block_of(acts, layout, k - 1, r0, r1)
        row = layout[k]
        grad_w = grads[row[W_OFFSET]:row[W_OFFSET] + row[N_IN] * row[N_OUT]].reshape(
            row[N_IN], row[N_OUT])
        matmul_tn(below, d, grad_w)
        grad_b = grads[row[B_OFFSET]:row[B_OFFSET] + row[N_OUT]]
        grad_b[:] = 0
        for i in range(d.shape[0]):
            for j in range(d.shape[1]):
                grad_b[j] += d[i, j]
        if k > 0:
            d_below = block_of(deltas, layout, k - 1, r0, r1)
            matmul_nt(d, weights_of(params, layout, k), d_below)
            multiply_by_derivative(d_below, below, layout[k - 1, ACTIVATION])
