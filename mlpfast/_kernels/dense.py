"""Dense layers: the three products of back-propagation on flat buffers.

Layout (chosen by measurement, see README "Performance"):

- Hidden activations and deltas are **feature-major**: layer k's block is
  ``n_out x capacity`` (one row per unit, one column per sample), so every
  elementwise pass (bias, activation, derivative) runs along contiguous rows of
  samples and vectorizes even when a layer has 3 units, and a thread's block of
  samples is a column range addressed through a leading dimension.
- The output layer's logits and delta are **row-major** (``capacity x m``), so the
  softmax/log-loss runs per sample and inference writes straight into ``out``.
- The input is either rows of X (row-major, leading dimension ``n_features``) or,
  for layers computed by hand loops, a feature-major transposed copy.

The per-layer table ``layout`` (``mlpfast/_layout.py``) has one row per layer:
``N_IN, N_OUT, W_OFFSET, B_OFFSET, ACTIVATION, ACT_OFFSET``.

Products go to BLAS (:func:`blas.gemm`, single-threaded by policy) unless the layer
is narrow (``min(n_in, n_out) <= SMALL``), where loops that run along the sample
dimension beat BLAS's call overhead: 1000x2 @ 2x4 in 0.3 us by loops vs 2.1 us via
np.dot on the project machine.
"""

import numpy as np

from .._config import kernel
from .activations import axpy_activate, bias_activation_rows, multiply_by_derivative_rows
from .blas import NOTRANS, TRANS, gemm
from .scalars import like

N_IN, N_OUT, W_OFFSET, B_OFFSET, ACTIVATION, ACT_OFFSET = range(6)
LAYOUT_COLUMNS = 6

SMALL = 8


@kernel
def narrow(n_in, n_out):
    """True when a layer is computed by hand loops rather than BLAS."""
    return min(n_in, n_out) <= SMALL


# --------------------------------------------------------------------------- forward
@kernel
def hidden_forward(src, s_off, s_ld, s_rowmajor, params, layout, k, out, o_off, o_ld, c0, c1):
    """Feature-major ``out[:, c0:c1] = f(W_k^T S[:, c0:c1] + b_k)`` for hidden layer k.

    ``S`` is feature-major (unit p, sample i at s_off + p s_ld + i) unless
    ``s_rowmajor`` (sample i, feature p at s_off + i s_ld + p: rows of X).
    """
    n_in, n_out = layout[k, N_IN], layout[k, N_OUT]
    w0, b0 = layout[k, W_OFFSET], layout[k, B_OFFSET]
    cols = c1 - c0
    if cols <= 0:
        return
    if narrow(n_in, n_out) and not s_rowmajor:
        # One pass per (unit, input) pair, with the bias folded into the first and
        # the activation into the last: no separate init or activation sweep.
        # Unsigned offsets, no views: see activations.py.
        code = layout[k, ACTIVATION]
        n = np.uint64(cols)
        for j in range(n_out):
            o = np.uint64(o_off + j * o_ld + c0)
            bias = params[b0 + j]
            w = params[w0 + j]
            first = np.uint64(s_off + c0)
            if n_in == 1:
                for i in range(n):
                    out[o + i] = bias
                axpy_activate(out, o, src, first, w, n, code)
                continue
            for i in range(n):
                out[o + i] = w * src[first + i] + bias
            for p in range(1, n_in - 1):
                w = params[w0 + p * n_out + j]
                sp = np.uint64(s_off + p * s_ld + c0)
                for i in range(n):
                    out[o + i] += w * src[sp + i]
            p = n_in - 1
            last = np.uint64(s_off + p * s_ld + c0)
            axpy_activate(out, o, src, last, params[w0 + p * n_out + j], n, code)
        return
    # Rows of X (row-major) enter transposed; feature-major blocks as they are.
    tb = TRANS if s_rowmajor else NOTRANS
    b_off = s_off + c0 * s_ld if s_rowmajor else s_off + c0
    gemm(
        TRANS,
        tb,
        n_out,
        cols,
        n_in,
        1.0,
        params,
        w0,
        n_out,
        src,
        b_off,
        s_ld,
        0.0,
        out,
        o_off + c0,
        o_ld,
    )
    bias_activation_rows(out, o_off, o_ld, n_out, c0, c1, params, b0, layout[k, ACTIVATION])


@kernel
def output_logits(src, s_off, s_ld, s_rowmajor, params, layout, k, out, o_off, r0, r1):
    """Row-major ``out[r0:r1, :] = S[:, r0:r1]^T W_k + b_k`` (logits; no activation)."""
    n_in, m = layout[k, N_IN], layout[k, N_OUT]
    w0, b0 = layout[k, W_OFFSET], layout[k, B_OFFSET]
    rows = r1 - r0
    if rows <= 0:
        return
    if narrow(n_in, m) and not s_rowmajor:
        n = np.uint64(rows)
        stride = np.uint64(m)
        for j in range(m):
            # Logit (i, j) sits at o_off + (r0 + i) m + j: stride m (1 for one output).
            o = np.uint64(o_off + r0 * m + j)
            bias = params[b0 + j]
            for i in range(n):
                out[o + i * stride] = bias
            for p in range(n_in):
                w = params[w0 + p * m + j]
                sp = np.uint64(s_off + p * s_ld + r0)
                if m == 1:  # contiguous: let it vectorize
                    for i in range(n):
                        out[o + i] += w * src[sp + i]
                else:
                    for i in range(n):
                        out[o + i * stride] += w * src[sp + i]
        return
    ta = NOTRANS if s_rowmajor else TRANS
    a_off = s_off + r0 * s_ld if s_rowmajor else s_off + r0
    gemm(
        ta,
        NOTRANS,
        rows,
        m,
        n_in,
        1.0,
        src,
        a_off,
        s_ld,
        params,
        w0,
        m,
        0.0,
        out,
        o_off + r0 * m,
        m,
    )
    for i in range(r0, r1):
        for j in range(m):
            out[o_off + i * m + j] += params[b0 + j]


# --------------------------------------------------------------------------- backward
@kernel
def delta_below(params, layout, k, d, d_off, d_ld, d_rowmajor, acts, below, b_off, b_ld, c0, c1):
    """Feature-major ``below[:, c0:c1] = (W_k D[:, c0:c1]) * f'_{k-1}(a_{k-1})``.

    ``D`` is layer k's delta: row-major (``d_rowmajor``, the output layer, leading
    dimension m) or feature-major; ``acts`` holds a_{k-1} at ``b_off`` (same layout
    as ``below``).  (A row-major block with one column is also a feature-major one:
    callers pass m == 1 output deltas as feature-major, so loops stay contiguous.)
    """
    n_in, n_out = layout[k, N_IN], layout[k, N_OUT]
    w0 = layout[k, W_OFFSET]
    cols = c1 - c0
    if cols <= 0:
        return
    if narrow(n_in, n_out) and not d_rowmajor:
        # Feature-major D: one pass per (input, unit) pair, the first assigning (no
        # zero-fill).  (Fusing f'(a) into the last pass measured slower in place,
        # 2.2 us against 0.6 us for a 64 <- 1 layer on 32 samples, though not in
        # isolation: kept as a separate sweep below.)
        n = np.uint64(cols)
        for p in range(n_in):
            o = np.uint64(b_off + p * b_ld + c0)
            first = np.uint64(d_off + c0)
            w = params[w0 + p * n_out]
            for i in range(n):
                below[o + i] = w * d[first + i]
            for j in range(1, n_out):
                w = params[w0 + p * n_out + j]
                dj = np.uint64(d_off + j * d_ld + c0)
                for i in range(n):
                    below[o + i] += w * d[dj + i]
    elif narrow(n_in, n_out):  # row-major D (several outputs): stride m
        n = np.uint64(cols)
        ld = np.uint64(d_ld)
        zero = like(0.0, below)
        for p in range(n_in):
            o = np.uint64(b_off + p * b_ld + c0)
            for i in range(n):
                below[o + i] = zero
            for j in range(n_out):
                w = params[w0 + p * n_out + j]
                dj = np.uint64(d_off + c0 * d_ld + j)
                for i in range(n):
                    below[o + i] += w * d[dj + i * ld]
    else:
        tb = TRANS if d_rowmajor else NOTRANS
        dd_off = d_off + c0 * d_ld if d_rowmajor else d_off + c0
        gemm(
            NOTRANS,
            tb,
            n_in,
            cols,
            n_out,
            1.0,
            params,
            w0,
            n_out,
            d,
            dd_off,
            d_ld,
            0.0,
            below,
            b_off + c0,
            b_ld,
        )
    multiply_by_derivative_rows(below, acts, b_off, b_ld, n_in, c0, c1, layout[k - 1, ACTIVATION])


@kernel
def weight_gradient(
    src,
    s_off,
    s_ld,
    s_rowmajor,
    d,
    d_off,
    d_ld,
    d_rowmajor,
    n_samples,
    layout,
    k,
    p0,
    p1,
    alpha,
    beta,
    target,
    t_off,
):
    """Rows p0:p1 of ``target_W <- alpha S D^T + beta target_W`` over all samples.

    With ``target`` the parameters, alpha = -lr and beta = 1 - lr * l2 this is the
    whole SGD step for those rows (no gradient buffer); with a gradient buffer,
    alpha = 1 and beta = 0 it is the plain gradient.  ``t_off`` is where layer k's
    W starts in ``target``.
    """
    n_in, n_out = layout[k, N_IN], layout[k, N_OUT]
    rows = p1 - p0
    if rows <= 0:
        return
    if narrow(n_in, n_out) and not s_rowmajor:
        a = like(alpha, target)
        b = like(beta, target)
        n = np.uint64(n_samples)
        ld = np.uint64(d_ld)
        for p in range(p0, p1):
            sp = np.uint64(s_off + p * s_ld)
            for j in range(n_out):
                acc = like(0.0, target)
                if d_rowmajor:
                    dj = np.uint64(d_off + j)
                    for i in range(n):
                        acc += src[sp + i] * d[dj + i * ld]
                else:
                    dj = np.uint64(d_off + j * d_ld)
                    for i in range(n):
                        acc += src[sp + i] * d[dj + i]
                idx = t_off + p * n_out + j
                # beta == 0 means "overwrite" (as in BLAS): 0 * NaN left over from a
                # diverged step must not leak into a fresh gradient.
                target[idx] = a * acc if beta == 0 else a * acc + b * target[idx]
        return
    ta = TRANS if s_rowmajor else NOTRANS
    a_off = s_off + p0 if s_rowmajor else s_off + p0 * s_ld
    tb = NOTRANS if d_rowmajor else TRANS
    gemm(
        ta,
        tb,
        rows,
        n_out,
        n_samples,
        alpha,
        src,
        a_off,
        s_ld,
        d,
        d_off,
        d_ld,
        beta,
        target,
        t_off + p0 * n_out,
        n_out,
    )


@kernel
def bias_gradient(d, d_off, d_ld, d_rowmajor, n_samples, j0, j1, out, o_off):
    """out[o_off + j] = sum over samples of D[j, :] for j in j0:j1."""
    n = np.uint64(n_samples)
    ld = np.uint64(d_ld)
    for j in range(j0, j1):
        acc = like(0.0, out)
        if d_rowmajor:
            dj = np.uint64(d_off + j)
            for i in range(n):
                acc += d[dj + i * ld]
        else:
            dj = np.uint64(d_off + j * d_ld)
            for i in range(n):
                acc += d[dj + i]
        out[o_off + j] = acc
