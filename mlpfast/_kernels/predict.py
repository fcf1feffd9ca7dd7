"""Inference: the forward pass over many rows, in parallel blocks of rows.

Each of ``n_blocks`` threads takes a contiguous range of rows and pushes it through
the network ``chunk`` rows at a time, in its own row of the workspaces (``acts``:
the hidden layers' feature-major blocks; ``xT``: the transposed input when the
first layer is narrow), so memory stays bounded however many rows are predicted.
The output layer writes its row-major result straight into ``out``.
"""

from numba import prange

from .._config import kernel, parallel_kernel
from .activations import output_activation_rows
from .dense import ACT_OFFSET, ACTIVATION, N_IN, N_OUT, hidden_forward, narrow, output_logits


@kernel
def _forward_range(Xf, params, layout, acts, xT, out, r0, r1, chunk, activate_output):
    n_layers = layout.shape[0]
    d = layout[0, N_IN]
    m = layout[n_layers - 1, N_OUT]
    first_narrow = narrow(d, layout[0, N_OUT])
    for c0 in range(r0, r1, chunk):
        cols = min(chunk, r1 - c0)
        if first_narrow:
            rows = Xf[c0 * d : (c0 + cols) * d]
            for p in range(d):
                column = xT[p * chunk : p * chunk + cols]
                for i in range(cols):
                    column[i] = rows[i * d + p]
            src, s_off, s_ld, s_rowmajor = xT, 0, chunk, False
        else:
            src, s_off, s_ld, s_rowmajor = Xf, c0 * d, d, True
        for k in range(n_layers - 1):
            off = layout[k, ACT_OFFSET]
            hidden_forward(
                src, s_off, s_ld, s_rowmajor, params, layout, k, acts, off, chunk, 0, cols
            )
            src, s_off, s_ld, s_rowmajor = acts, off, chunk, False
        last = n_layers - 1
        output_logits(src, s_off, s_ld, s_rowmajor, params, layout, last, out, c0 * m, 0, cols)
        if activate_output:
            output_activation_rows(out, c0 * m, 0, cols, m, layout[last, ACTIVATION])


@parallel_kernel
def forward_rows(Xf, params, layout, acts, xT, outf, chunk, activate_output):
    """``out = network(X)`` for flat row-major ``Xf`` and ``outf``; logits only when
    not ``activate_output``.

    ``acts``: (n_blocks, chunk * hidden width); ``xT``: (n_blocks, chunk * n_features).
    """
    n = Xf.shape[0] // layout[0, N_IN]
    n_blocks = acts.shape[0]
    if n_blocks <= 1:
        _forward_range(Xf, params, layout, acts[0], xT[0], outf, 0, n, chunk, activate_output)
        return
    for t in prange(n_blocks):
        _forward_range(
            Xf,
            params,
            layout,
            acts[t],
            xT[t],
            outf,
            t * n // n_blocks,
            (t + 1) * n // n_blocks,
            chunk,
            activate_output,
        )
