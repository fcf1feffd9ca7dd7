"""The optimizer table and in-place updates over the flat parameter buffer.

Gradients arrive as ``grads[t, :]`` partial sums, one row per block of rows that
a thread processed; the update sums them, adds the L2 term (weights only) and
applies the optimizer in one pass over the buffer, so the reduction costs no
extra sweep.  Optimizer state is a flat buffer too: ``state[0]`` is the velocity
(momentum) or first moment (adam), ``state[1]`` the second moment (adam).

The formulas are scikit-learn's (``sklearn/neural_network/_stochastic_optimizers.py``),
so the estimators reproduce its training dynamics:

- sgd:       p -= lr g
- momentum:  v = mu v - lr g;  p += v
- nesterov:  v = mu v - lr g;  p += mu v - lr g
- adam:      m = b1 m + (1 - b1) g;  v = b2 v + (1 - b2) g^2;
             p -= lr_t m / (sqrt(v) + eps),  lr_t = lr sqrt(1 - b2^t) / (1 - b1^t)

The update also returns sum(p^2) over the weights (the next minibatch's L2 loss
term) and over everything (not finite = the step diverged), fused into the pass.
"""

import math

from .._config import kernel
from .dense import B_OFFSET, N_IN, N_OUT, W_OFFSET
from .scalars import like

SGD = 0
MOMENTUM = 1
NESTEROV = 2
ADAM = 3

OPTIMIZERS = {"sgd": SGD, "momentum": MOMENTUM, "nesterov": NESTEROV, "adam": ADAM}
STATE_ROWS = {SGD: 0, MOMENTUM: 1, NESTEROV: 1, ADAM: 2}

# Indices into the float64 ``coefs`` array passed to the update.
LR, L2, MU, BETA1, BETA2, EPSILON = range(6)
N_COEFS = 6


@kernel
def update_range(params, grads, n_parts, state, lo, hi, optimizer, coefs, l2, lr):
    """Update params[lo:hi]; return (sum of p^2 over the range)."""
    lr = like(lr, params)
    l2 = like(l2, params)
    mu = like(coefs[MU], params)
    b1 = like(coefs[BETA1], params)
    b2 = like(coefs[BETA2], params)
    eps = like(coefs[EPSILON], params)
    one = like(1.0, params)
    sumsq = 0.0
    for i in range(lo, hi):
        g = grads[0, i]
        for t in range(1, n_parts):
            g += grads[t, i]
        p = params[i]
        g += l2 * p
        if optimizer == SGD:
            p -= lr * g
        elif optimizer == MOMENTUM:
            v = mu * state[0, i] - lr * g
            state[0, i] = v
            p += v
        elif optimizer == NESTEROV:
            v = mu * state[0, i] - lr * g
            state[0, i] = v
            p += mu * v - lr * g
        else:
            m = b1 * state[0, i] + (one - b1) * g
            v = b2 * state[1, i] + (one - b2) * g * g
            state[0, i] = m
            state[1, i] = v
            p -= lr * m / (math.sqrt(v) + eps)
        params[i] = p
        sumsq += p * p
    return sumsq


@kernel
def update_chunk(params, grads, n_parts, state, layout, lo, hi, optimizer, coefs, lr, l2):
    """Update params[lo:hi], splitting it at layer boundaries (L2 on weights only).

    Returns (sum of squared weights, sum of squared parameters) over the chunk.
    ``lr`` is this minibatch's step (adam's bias-corrected one for adam); ``l2`` the
    coefficient of the L2 gradient term, ``alpha / sum(sample_weight)`` of the batch.
    """
    weights_sumsq = 0.0
    all_sumsq = 0.0
    for k in range(layout.shape[0]):
        w0 = layout[k, W_OFFSET]
        w1 = w0 + layout[k, N_IN] * layout[k, N_OUT]
        s, e = max(lo, w0), min(hi, w1)
        if s < e:
            part = update_range(params, grads, n_parts, state, s, e, optimizer, coefs, l2, lr)
            weights_sumsq += part
            all_sumsq += part
        b0 = layout[k, B_OFFSET]
        s, e = max(lo, b0), min(hi, b0 + layout[k, N_OUT])
        if s < e:
            all_sumsq += update_range(params, grads, n_parts, state, s, e, optimizer, coefs,
                                      0.0, lr)
    return weights_sumsq, all_sumsq


@kernel
def weights_sumsq(params, layout):
    total = 0.0
    for k in range(layout.shape[0]):
        w0 = layout[k, W_OFFSET]
        for i in range(w0, w0 + layout[k, N_IN] * layout[k, N_OUT]):
            total += params[i] * params[i]
    return total
