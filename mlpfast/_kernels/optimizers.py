"""The optimizer table and in-place updates over the flat parameter buffer.

Plain SGD reaches this module only under the GRADIENT_SUM thread split and in
the unrolled kernels of small networks (see ``train.py``): otherwise its step is
fused into the weight-gradient product (``W <- (1 - lr l2) W - lr A^T D``, see
``dense.py``).
The other optimizers get the gradient of a block of rows of W in the flat
gradient buffer and update those rows here, in the same thread, right after.
Optimizer state is a flat buffer too: ``state[0]`` is the velocity (momentum) or
first moment (adam), ``state[1]`` the second moment (adam).

The formulas are scikit-learn's (``sklearn/neural_network/_stochastic_optimizers.py``),
so the estimators reproduce its training dynamics:

- sgd:       p -= lr g
- momentum:  v = mu v - lr g;  p += v
- nesterov:  v = mu v - lr g;  p += mu v - lr g
- adam:      m = b1 m + (1 - b1) g;  v = b2 v + (1 - b2) g^2;
             p -= lr_t m / (sqrt(v) + eps),  lr_t = lr sqrt(1 - b2^t) / (1 - b1^t)

The update also returns sum(p^2) over the range: the next minibatch's L2 loss term.
"""

import math

from .._config import kernel
from .dense import N_IN, N_OUT, W_OFFSET
from .scalars import like

SGD = 0
MOMENTUM = 1
NESTEROV = 2
ADAM = 3
GRADIENT_ONLY = 4  # compute the gradient into the buffer, change nothing

OPTIMIZERS = {"sgd": SGD, "momentum": MOMENTUM, "nesterov": NESTEROV, "adam": ADAM}
STATE_ROWS = {SGD: 0, MOMENTUM: 1, NESTEROV: 1, ADAM: 2, GRADIENT_ONLY: 0}

# Indices into the float64 ``coefs`` array passed to the update.
LR, L2, MU, BETA1, BETA2, EPSILON = range(6)
N_COEFS = 6


@kernel
def update_range(params, grads, state, lo, hi, optimizer, coefs, l2, lr):
    """Apply the optimizer to params[lo:hi] with gradient grads[lo:hi] (+ l2 * p).

    Returns sum(p^2) over the range after the update.
    """
    lr = like(lr, params)
    l2 = like(l2, params)
    mu = like(coefs[MU], params)
    b1 = like(coefs[BETA1], params)
    b2 = like(coefs[BETA2], params)
    eps = like(coefs[EPSILON], params)
    one = like(1.0, params)
    sumsq = 0.0
    # Slices, not params[lo + i]: computed indices block vectorization (wraparound).
    ps = params[lo:hi]
    gs = grads[lo:hi]
    if optimizer == SGD:
        for i in range(hi - lo):
            p = ps[i] - lr * (gs[i] + l2 * ps[i])
            ps[i] = p
            sumsq += p * p
    elif optimizer == MOMENTUM or optimizer == NESTEROV:
        vs = state[0, lo:hi]
        nesterov = optimizer == NESTEROV
        for i in range(hi - lo):
            g = gs[i] + l2 * ps[i]
            v = mu * vs[i] - lr * g
            vs[i] = v
            p = ps[i] + (mu * v - lr * g if nesterov else v)
            ps[i] = p
            sumsq += p * p
    elif optimizer == ADAM:
        ms = state[0, lo:hi]
        vs = state[1, lo:hi]
        for i in range(hi - lo):
            g = gs[i] + l2 * ps[i]
            m = b1 * ms[i] + (one - b1) * g
            v = b2 * vs[i] + (one - b2) * g * g
            ms[i] = m
            vs[i] = v
            p = ps[i] - lr * m / (math.sqrt(v) + eps)
            ps[i] = p
            sumsq += p * p
    return sumsq


@kernel
def sumsq_range(params, lo, hi):
    total = 0.0
    block = params[lo:hi]
    for i in range(hi - lo):
        total += block[i] * block[i]
    return total


@kernel
def weights_sumsq(params, layout):
    total = 0.0
    for k in range(layout.shape[0]):
        w0 = layout[k, W_OFFSET]
        total += sumsq_range(params, w0, w0 + layout[k, N_IN] * layout[k, N_OUT])
    return total


@kernel
def all_finite(params):
    for i in range(params.shape[0]):
        if not math.isfinite(params[i]):
            return False
    return True
