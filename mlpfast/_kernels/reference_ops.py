"""Fused kernels for the drop-in ``mlpfast.reference.mlp``.

They reproduce the reference trainer's arithmetic exactly as REFERENCE.md states
it, quirks included (``dW`` a sum but ``db`` a mean over the batch; the user's
own derivative, e.g. the factor-2 ``dsigmoid``), compiled without fastmath so
every operation rounds as numpy's does (float64 results within 1e-9 relative).
They run only for callables that ``mlpfast.reference`` recognised by probing;
anything else goes through the user's own functions.

Buffers are flat; ``table`` rows are (n_in, n_out, param offset of W, of b,
activation offset) and ``kinds`` rows are (activation kind, derivative kind).
"""

import math

from .._config import exact_kernel

# What a recognised callable computes (REFERENCE.md's functions and close kin).
IDENTITY, RELU, SIGMOID_CLIPPED, SIGMOID, TANH = range(5)  # activations
ONE, DRELU, DSIGMOID_CLIPPED, DSIGMOID, DTANH = range(5)  # derivatives (x a factor)
CROSS_ENTROPY_CLIPPED = 0  # d_cross_entropy with the eps clip

T_IN, T_OUT, T_W, T_B, T_ACT = range(5)


@exact_kernel
def _sigmoid(z, clipped):
    if clipped:
        z = min(max(z, -500.0), 500.0)
    return 1.0 / (1.0 + math.exp(-z))


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
def forward(x, params, table, kinds, zbuf, abuf):
    """z[k] = a[k-1] @ W[k] + b[k]; a[k] = f_k(z[k]) for all layers (x is a[0])."""
    n = x.shape[0]
    for k in range(table.shape[0]):
        n_in, n_out = table[k, T_IN], table[k, T_OUT]
        w0, b0, off = table[k, T_W], table[k, T_B], table[k, T_ACT] * n
        prev = table[k - 1, T_ACT] * n if k > 0 else 0
        kind = kinds[k, 0]
        for i in range(n):
            for j in range(n_out):
                acc = 0.0
                for p in range(n_in):
                    below = x[i, p] if k == 0 else abuf[prev + i * n_in + p]
                    acc += below * params[w0 + p * n_out + j]
                z = acc + params[b0 + j]
                zbuf[off + i * n_out + j] = z
                abuf[off + i * n_out + j] = _activation(z, kind)


@exact_kernel
def backward(x, y, yhat, params, table, kinds, factors, zbuf, abuf, dzbuf, dabuf, grads,
             da_input):
    """The reference's backward pass with the cross-entropy derivative fused.

    da[L] = -y / clip(yhat, eps) + (1 - y) / clip(1 - yhat, eps); then per layer
    dz = da * f'(z); dW = a_prev^T dz (sum); db = mean(dz, axis=0); da_prev = dz W^T.
    ``da_input`` receives da[0] (n, n_in of layer 1).
    """
    n = x.shape[0]
    eps = 2.220446049250313e-16  # np.finfo(float).eps
    last = table.shape[0] - 1
    off = table[last, T_ACT] * n
    m = table[last, T_OUT]
    for i in range(n):
        for j in range(m):
            t = y[i, j]
            p = yhat[i, j]
            dabuf[off + i * m + j] = -t / max(p, eps) + (1.0 - t) / max(1.0 - p, eps)
    for k in range(last, -1, -1):
        n_in, n_out = table[k, T_IN], table[k, T_OUT]
        w0, b0, off = table[k, T_W], table[k, T_B], table[k, T_ACT] * n
        prev = table[k - 1, T_ACT] * n if k > 0 else 0
        for i in range(n * n_out):
            dzbuf[off + i] = dabuf[off + i] * _derivative(zbuf[off + i], kinds[k, 1],
                                                          factors[k])
        for p in range(n_in):
            for j in range(n_out):
                acc = 0.0
                for i in range(n):
                    below = x[i, p] if k == 0 else abuf[prev + i * n_in + p]
                    acc += below * dzbuf[off + i * n_out + j]
                grads[w0 + p * n_out + j] = acc
        for j in range(n_out):
            acc = 0.0
            for i in range(n):
                acc += dzbuf[off + i * n_out + j]
            grads[b0 + j] = acc / n
        for i in range(n):
            for p in range(n_in):
                acc = 0.0
                for j in range(n_out):
                    acc += dzbuf[off + i * n_out + j] * params[w0 + p * n_out + j]
                if k == 0:
                    da_input[i, p] = acc
                else:
                    dabuf[prev + i * n_in + p] = acc


@exact_kernel
def sgd_update(params, grads, eta):
    """W -= eta * dW; b -= eta * db over the whole flat buffer."""
    for i in range(params.shape[0]):
        params[i] -= eta * grads[i]
