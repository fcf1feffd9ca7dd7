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

import numpy as np

from .._config import kernel
from .scalars import like
from .vmath import exp, expm1, log1p_unit, tanh

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
HIDDEN_ACTIVATIONS = (
    "identity",
    "relu",
    "leaky_relu",
    "sigmoid",
    "logistic",
    "tanh",
    "elu",
    "softplus",
)

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
        # exp(-|z|) never overflows; both branches are selects, so the loop vectorizes.
        e = exp(-abs(z))
        return one / (one + e) if z >= 0 else e / (one + e)
    if code == TANH:
        return tanh(z)
    if code == ELU:
        return z if z > 0 else expm1(z)
    if code == SOFTPLUS:
        return max(z, like(0.0, z)) + log1p_unit(exp(-abs(z)))
    if code == EXP:
        return exp(z)
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
        return -expm1(-a)
    if code == EXP:
        return a
    return one


# Loops below run over slices (views), not ``buf[offset + i]``: numba's negative-index
# wraparound on a computed index blocks vectorization (3-6x slower, measured).


# Row loops index flat buffers with unsigned offsets (``np.uint64``): numba adds a
# negative-index wraparound test to every signed computed index, which blocks
# vectorization (3-6x slower), and a view per row (a slice) costs NRT reference
# counting: 4.7 us for a 2->64 layer on 32 samples with views, measured.  Unsigned
# and signed ints must not meet in one expression (numba would compute in float64).


@kernel(inline="always")
def axpy_activate(out, o, src, s, w, cols, code):
    """``out[o:o+cols] = f(out[o:o+cols] + w * src[s:s+cols])`` (offsets uint64);
    one loop per code so each vectorizes (a code tested inside the loop kept it
    scalar, 3x slower)."""
    if code == RELU:
        for i in range(cols):
            out[o + i] = activate(out[o + i] + w * src[s + i], RELU)
    elif code == IDENTITY:
        for i in range(cols):
            out[o + i] += w * src[s + i]
    elif code == SIGMOID:
        for i in range(cols):
            out[o + i] = activate(out[o + i] + w * src[s + i], SIGMOID)
    elif code == TANH:
        for i in range(cols):
            out[o + i] = activate(out[o + i] + w * src[s + i], TANH)
    else:
        for i in range(cols):
            out[o + i] = activate(out[o + i] + w * src[s + i], code)


@kernel
def bias_activation_rows(buf, off, ld, n_units, c0, c1, params, b0, code):
    """Feature-major, in place: ``buf[j, c0:c1] = f(buf[j, c0:c1] + b[j])`` per unit j."""
    cols = np.uint64(c1 - c0)
    for j in range(n_units):
        o = np.uint64(off + j * ld + c0)
        bias = params[b0 + j]
        if code == RELU:
            for i in range(cols):
                buf[o + i] = activate(buf[o + i] + bias, RELU)
        elif code == IDENTITY:
            for i in range(cols):
                buf[o + i] += bias
        elif code == SIGMOID:
            for i in range(cols):
                buf[o + i] = activate(buf[o + i] + bias, SIGMOID)
        elif code == TANH:
            for i in range(cols):
                buf[o + i] = activate(buf[o + i] + bias, TANH)
        else:
            for i in range(cols):
                buf[o + i] = activate(buf[o + i] + bias, code)


@kernel
def multiply_by_derivative_rows(delta, acts, off, ld, n_units, c0, c1, code):
    """Feature-major, in place: ``delta[j, c0:c1] *= f'(z)`` from the outputs in ``acts``."""
    if code == IDENTITY:
        return
    cols = np.uint64(c1 - c0)
    zero = like(0.0, delta)
    for j in range(n_units):
        o = np.uint64(off + j * ld + c0)
        if code == RELU:
            for i in range(cols):
                delta[o + i] = delta[o + i] if acts[o + i] > 0 else zero
        elif code == SIGMOID:
            for i in range(cols):
                delta[o + i] *= derivative(acts[o + i], SIGMOID)
        elif code == TANH:
            for i in range(cols):
                delta[o + i] *= derivative(acts[o + i], TANH)
        else:
            for i in range(cols):
                delta[o + i] *= derivative(acts[o + i], code)


@kernel
def output_activation_rows(out, off, r0, r1, m, code):
    """Row-major, in place: apply the output activation to logits rows r0:r1."""
    if code == IDENTITY:
        return
    if code == SOFTMAX:
        for i in range(r0, r1):
            row = out[off + i * m : off + (i + 1) * m]
            peak = row[0]
            for j in range(m):
                peak = max(peak, row[j])
            total = like(0.0, out)
            for j in range(m):
                row[j] = exp(row[j] - peak)
                total += row[j]
            inv = like(1.0, out) / total
            for j in range(m):
                row[j] *= inv
        return
    block = out[off + r0 * m : off + r1 * m]
    for i in range(block.shape[0]):
        block[i] = activate(block[i], code)
