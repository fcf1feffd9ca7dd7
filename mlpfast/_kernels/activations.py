"""The activation table and the fused bias + activation pass.

Every activation is listed once in :data:`ACTIVATIONS` (name -> integer code).
Kernels receive the code, never a function object: a dispatcher passed into a
cached kernel defeats the cache (numba #6264) and costs 2.4x on a 128x512 ReLU
(NUMBA_NOTES.md).

Derivatives are written in terms of the layer's *output* ``a = f(z)``, so the
training kernels store one buffer per layer instead of ``z`` and ``a``.  That is
why the table holds only activations with that property (all of scikit-learn's,
plus leaky ReLU, ELU and softplus); one without it (GELU) would need ``z`` kept.

Adding an activation: give it the next code, add it to ``ACTIVATIONS``, add its
forward formula to :func:`activate` and its derivative to :func:`derivative`, and
add it to ``tests/oracle.py``; the finite-difference tests pick it up from the table.
"""

import math

from .._config import kernel
from .scalars import like

IDENTITY = 0
RELU = 1
LEAKY_RELU = 2
SIGMOID = 3
TANH = 4
ELU = 5
SOFTPLUS = 6
EXP = 7  # output activation of the Poisson loss
SOFTMAX = 8  # output layer only, always paired with categorical cross-entropy

ACTIVATIONS = {
    "identity": IDENTITY,
    "relu": RELU,
    "leaky_relu": LEAKY_RELU,
    "sigmoid": SIGMOID,
    "logistic": SIGMOID,  # scikit-learn's name
    "tanh": TANH,
    "elu": ELU,
    "softplus": SOFTPLUS,
    "exp": EXP,
    "softmax": SOFTMAX,
}
CANONICAL_NAMES = {code: name for name, code in ACTIVATIONS.items() if name != "logistic"}
# Activations a hidden layer may use (softmax and exp are output-only).
HIDDEN_ACTIVATIONS = ("identity", "relu", "leaky_relu", "sigmoid", "logistic", "tanh",
                      "elu", "softplus")

LEAKY_SLOPE = 0.01


@kernel
def activate(z, code):
    """f(z) for every elementwise code (not softmax)."""
    one = like(1.0, z)
    if code == RELU:
        return z if z > 0 else like(0.0, z)
    if code == LEAKY_RELU:
        return z if z > 0 else z * like(LEAKY_SLOPE, z)
    if code == SIGMOID:
        # Branch on the sign so exp never overflows.
        if z >= 0:
            return one / (one + math.exp(-z))
        e = math.exp(z)
        return e / (one + e)
    if code == TANH:
        return math.tanh(z)
    if code == ELU:
        return z if z > 0 else math.expm1(z)
    if code == SOFTPLUS:
        return max(z, like(0.0, z)) + math.log1p(math.exp(-abs(z)))
    if code == EXP:
        return math.exp(z)
    return z


@kernel
def derivative(a, code):
    """f'(z) written in terms of the output a = f(z)."""
    one = like(1.0, a)
    if code == RELU:
        return one if a > 0 else like(0.0, a)
    if code == LEAKY_RELU:
        return one if a > 0 else like(LEAKY_SLOPE, a)
    if code == SIGMOID:
        return a * (one - a)
    if code == TANH:
        return one - a * a
    if code == ELU:
        return one if a > 0 else a + one
    if code == SOFTPLUS:
        return -math.expm1(-a)
    if code == EXP:
        return a
    return one


@kernel
def bias_activation(z, bias, code):
    """In place: ``z[i, :] = f(z[i, :] + bias)`` for a block of rows."""
    rows, cols = z.shape
    if code == RELU:
        # The hot case, kept as a branch-free loop that LLVM vectorizes.
        zero = like(0.0, z)
        for i in range(rows):
            for j in range(cols):
                z[i, j] = max(z[i, j] + bias[j], zero)
    elif code == IDENTITY:
        for i in range(rows):
            for j in range(cols):
                z[i, j] += bias[j]
    elif code == SOFTMAX:
        for i in range(rows):
            peak = z[i, 0] + bias[0]
            for j in range(cols):
                z[i, j] += bias[j]
                peak = max(peak, z[i, j])
            total = like(0.0, z)
            for j in range(cols):
                z[i, j] = math.exp(z[i, j] - peak)
                total += z[i, j]
            inv = like(1.0, z) / total
            for j in range(cols):
                z[i, j] *= inv
    else:
        for i in range(rows):
            for j in range(cols):
                z[i, j] = activate(z[i, j] + bias[j], code)


@kernel
def multiply_by_derivative(delta, a, code):
    """In place: ``delta *= f'(z)``, with f'(z) computed from the output ``a``."""
    rows, cols = delta.shape
    if code == IDENTITY:
        return
    if code == RELU:
        zero = like(0.0, delta)
        for i in range(rows):
            for j in range(cols):
                delta[i, j] = delta[i, j] if a[i, j] > 0 else zero
    else:
        for i in range(rows):
            for j in range(cols):
                delta[i, j] *= derivative(a[i, j], code)

