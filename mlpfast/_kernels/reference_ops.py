"""Fused kernels for the drop-in ``mlpfast.reference.mlp``.

They reproduce the reference trainer's arithmetic as REFERENCE.md states it,
quirks included (``dW`` a sum but ``db`` a mean over the batch; the user's own
derivative, e.g. the factor-2 ``dsigmoid``), in the same order of operations per
element.  Sums over samples may be vectorized (reassociated), as BLAS's are in the
reference; nothing else is approximated, so float64 results agree with numpy's to
~1e-15 per step (the REFERENCE.md table is reproduced to 1e-9 after 150 steps).
They run only for callables that ``mlpfast.reference`` recognised by probing;
anything else goes through the user's own functions.

Buffers are **feature-major**: layer l's ``z``/``a``/``dz``/``da`` block is
``n_out x n`` (one row per unit), so every elementwise pass runs along a
contiguous row of samples; the user sees ``z[l]`` as the (n, n_out) transpose view.
``table`` rows are (n_in, n_out, param offset of W, of b, row offset of the block)
and ``kinds`` rows (activation kind, derivative kind).
"""

import math

from .._config import exact_kernel
from .vmath import exp64

# What a recognised callable computes (REFERENCE.md's functions and close kin).
IDENTITY, RELU, SIGMOID_CLIPPED, SIGMOID, TANH = range(5)  # activations
ONE, DRELU, DSIGMOID_CLIPPED, DSIGMOID, DTANH = range(5)  # derivatives (x a factor)
CROSS_ENTROPY_CLIPPED = 0  # d_cross_entropy with the eps clip

T_IN, T_OUT, T_W, T_B, T_ROW = range(5)
_EPS = 2.220446049250313e-16  # np.finfo(float).eps
# Below this magnitude integer targets convert to float64 exactly and -y, 1 - y
# neither round nor wrap around, so float64 arithmetic equals numpy's int arithmetic.
_EXACT_LIMIT = 2.0**52


@exact_kernel
def _sigmoid(z, clipped):
    if clipped:
        z = min(max(z, -500.0), 500.0)
        # Vectorizable exp (vmath): within ~1e-15 of numpy's in this range.
        return 1.0 / (1.0 + exp64(-z))
    return 1.0 / (1.0 + math.exp(-z))  # unclipped: exp may overflow to inf, as numpy's


@exact_kernel
def _activation(z, kind):
    if kind == RELU:
        return max(0.0, z) if z == z else z  # np.maximum propagates NaN
    if kind == SIGMOID_CLIPPED:
        return _sigmoid(z, True)
    if kind == SIGMOID:
        return _sigmoid(z, False)
    if kind == TANH:
        return math.tanh(z)
    return z


@exact_kernel
def _derivative(z, kind, factor):
    if kind == DRELU:
        return 1.0 if z > 0 else 0.0
    if kind == DSIGMOID_CLIPPED or kind == DSIGMOID:
        s = _sigmoid(z, kind == DSIGMOID_CLIPPED)
        return factor * s * (1.0 - s)
    if kind == DTANH:
        t = math.tanh(z)
        return factor * (1.0 - t * t)
    return factor


@exact_kernel
def _activate_row(z, a, kind):
    """a = f(z) along a row; one loop per kind so each vectorizes on its own."""
    n = z.shape[0]
    if kind == RELU:
        for i in range(n):
            a[i] = _activation(z[i], RELU)
    elif kind == SIGMOID_CLIPPED:
        for i in range(n):
            a[i] = _activation(z[i], SIGMOID_CLIPPED)
    elif kind == SIGMOID:
        for i in range(n):
            a[i] = _activation(z[i], SIGMOID)
    elif kind == TANH:
        for i in range(n):
            a[i] = _activation(z[i], TANH)
    else:
        for i in range(n):
            a[i] = z[i]


@exact_kernel
def _derivative_row(dz, da, z, kind, factor):
    """dz = da * f'(z) along a row, one loop per kind."""
    n = z.shape[0]
    if kind == DRELU:
        for i in range(n):
            dz[i] = da[i] * _derivative(z[i], DRELU, factor)
    elif kind == DSIGMOID_CLIPPED:
        for i in range(n):
            dz[i] = da[i] * _derivative(z[i], DSIGMOID_CLIPPED, factor)
    elif kind == DSIGMOID:
        for i in range(n):
            dz[i] = da[i] * _derivative(z[i], DSIGMOID, factor)
    elif kind == DTANH:
        for i in range(n):
            dz[i] = da[i] * _derivative(z[i], DTANH, factor)
    else:
        for i in range(n):
            dz[i] = da[i] * factor


@exact_kernel
def forward(x, params, table, kinds, zbuf, abuf, xT):
    """z[l] = a[l-1] @ W[l] + b[l]; a[l] = f_l(z[l]) for every layer (x is a[0]).

    ``zbuf``/``abuf``: (sum of widths, n) feature-major; ``xT``: (n_in, n) scratch.
    """
    n, d = x.shape
    for p in range(d):
        column = xT[p]
        for i in range(n):
            column[i] = x[i, p]
    for l in range(table.shape[0]):
        n_in, n_out = table[l, T_IN], table[l, T_OUT]
        w0, b0, r0 = table[l, T_W], table[l, T_B], table[l, T_ROW]
        below = xT if l == 0 else abuf[table[l - 1, T_ROW] : table[l - 1, T_ROW] + n_in]
        kind = kinds[l, 0]
        for j in range(n_out):
            z = zbuf[r0 + j]
            w = params[w0 + j]
            first = below[0]
            for i in range(n):
                z[i] = w * first[i]
            for p in range(1, n_in):
                w = params[w0 + p * n_out + j]
                src = below[p]
                for i in range(n):
                    z[i] += w * src[i]
            b = params[b0 + j]
            for i in range(n):
                z[i] += b
            _activate_row(z, abuf[r0 + j], kind)


@exact_kernel
def backward(y, yhat, params, table, kinds, factors, zbuf, abuf, xT, dzbuf, dabuf, grads, da_input):
    """The reference's backward pass with the cross-entropy derivative fused.

    da[L] = -y / clip(yhat, eps) + (1 - y) / clip(1 - yhat, eps); then per layer
    dz = da * f'(z); dW = a_prev^T dz (sum); db = mean(dz, axis=0); da_prev = dz W^T.
    ``da_input`` receives da[0], feature-major (n_in of layer 1, n).
    """
    n = y.shape[0]
    last = table.shape[0] - 1
    r_last = table[last, T_ROW]
    largest = 0.0
    for j in range(table[last, T_OUT]):
        da = dabuf[r_last + j]
        for i in range(n):
            t = y[i, j]
            largest = max(largest, abs(t * 1.0))  # in float: abs(INT64_MIN) wraps
            p = yhat[i, j]
            da[i] = -t / max(p, _EPS) + (1.0 - t) / max(1.0 - p, _EPS)
    if largest >= _EXACT_LIMIT:
        # Integer targets this large round (or wrap around) differently in numpy's
        # integer arithmetic: the caller redoes the step on the numpy path.
        return False
    for l in range(last, -1, -1):
        n_in, n_out = table[l, T_IN], table[l, T_OUT]
        w0, b0, r0 = table[l, T_W], table[l, T_B], table[l, T_ROW]
        below = xT if l == 0 else abuf[table[l - 1, T_ROW] : table[l - 1, T_ROW] + n_in]
        kind, factor = kinds[l, 1], factors[l]
        # f'(z) = c s (1 - s) with s the layer's own sigmoid output: reuse a[l]
        # (bitwise the same s the derivative would recompute) instead of exp again.
        reuse_sigmoid = (kind == DSIGMOID_CLIPPED and kinds[l, 0] == SIGMOID_CLIPPED) or (
            kind == DSIGMOID and kinds[l, 0] == SIGMOID
        )
        for j in range(n_out):
            dz, da, z = dzbuf[r0 + j], dabuf[r0 + j], zbuf[r0 + j]
            if reuse_sigmoid:
                a = abuf[r0 + j]
                for i in range(n):
                    dz[i] = da[i] * (factor * a[i] * (1.0 - a[i]))
            else:
                _derivative_row(dz, da, z, kind, factor)
            total = 0.0
            for i in range(n):
                total += dz[i]
            grads[b0 + j] = total / n
            for p in range(n_in):
                src = below[p]
                acc = 0.0
                for i in range(n):
                    acc += src[i] * dz[i]
                grads[w0 + p * n_out + j] = acc
        target = da_input if l == 0 else dabuf[table[l - 1, T_ROW] : table[l - 1, T_ROW] + n_in]
        for p in range(n_in):
            out = target[p]
            w = params[w0 + p * n_out]
            dz = dzbuf[r0]
            for i in range(n):
                out[i] = dz[i] * w
            for j in range(1, n_out):
                w = params[w0 + p * n_out + j]
                dz = dzbuf[r0 + j]
                for i in range(n):
                    out[i] += dz[i] * w
    return True


@exact_kernel
def sgd_update(params, grads, eta):
    """W -= eta * dW; b -= eta * db over the whole flat buffer."""
    for i in range(params.shape[0]):
        params[i] -= eta * grads[i]
