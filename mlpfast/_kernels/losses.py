"""The loss table and the fused output layer.

One pass over the output logits ``z`` computes the loss of each row and the
output delta ``dL/dz``: the activation and the loss are fused, so sigmoid +
binary cross-entropy and softmax + categorical cross-entropy give the stable
``p - y`` and a loss computed from the logits (no ``log(0)``).

A loss is a *kind* (the formula, below) plus two scales chosen in Python, so the
same kernel serves mlpfast's conventions and scikit-learn's:

=====================  ==============  ==================  ======================
name                   kind            loss per row        delta (before scale)
=====================  ==============  ==================  ======================
mse                    SQUARED         sum_j (a - y)^2     2 (a - y) f'(a)
binary_crossentropy    LOGISTIC        sum_j bce(z, y)     sigmoid(z) - y
categorical_...        SOFTMAX         -sum_j y log p      p sum_j(y) - y
poisson                POISSON         sum_j a - y log a   a - y   (a = exp z)
=====================  ==============  ==================  ======================

The batch loss is ``loss_scale * sum_i w_i l_i / sum_i w_i`` and the delta is
``grad_scale * w_i (...) / sum_i w_i``; see ``mlpfast/_losses.py`` for the scales.
"""

import math

from .._config import kernel
from .activations import EXP, SIGMOID, SOFTMAX, activate, derivative
from .scalars import like
from .vmath import exp, log1p_unit, log_at_least_one

SQUARED = 0
LOGISTIC = 1
SOFTMAX_CE = 2
POISSON = 3

# The output activation each kind implies (None: any elementwise activation).
KIND_ACTIVATION = {SQUARED: None, LOGISTIC: SIGMOID, SOFTMAX_CE: SOFTMAX, POISSON: EXP}


@kernel(inline="always")  # a tuple-returning call is not inlined by LLVM: 9x slower loop
def _logistic(v, t, one):
    """(loss, sigmoid(v) - t) of the log-loss from the logit v: stable, vectorizable."""
    e = exp(-abs(v))
    loss = log1p_unit(e) + max(v, like(0.0, v)) - v * t
    p = one / (one + e) if v >= 0 else e / (one + e)
    return loss, p - t


@kernel(inline="always")
def _softmax_exps(zs, ys, ds, zr, m):
    """Row at ``zr``: ``ds[j] = exp(z_j - peak)``; returns (sum_j of those,
    sum_j y_j, sum_j y_j (z_j - peak)).  The row's loss is
    ``sum_j(y_j) log(norm) - sum_j y_j (z_j - peak)``."""
    peak = zs[zr]
    for j in range(1, m):
        peak = max(peak, zs[zr + j])
    norm = like(0.0, zs)
    target_mass = like(0.0, zs)
    dot = like(0.0, zs)
    for j in range(m):
        e = exp(zs[zr + j] - peak)
        ds[zr + j] = e
        norm += e
        t = ys[zr + j]
        target_mass += t
        dot += t * (zs[zr + j] - peak)
    return norm, target_mass, dot


@kernel(inline="always")
def _softmax_loss(norm, target_mass, dot):
    # norm >= 1 (the peak's own term is exp(0)); max() keeps log's domain under rounding
    return target_mass * log_at_least_one(max(norm, like(1.0, norm))) - dot


@kernel(inline="always")
def _softmax_delta(ds, ys, zr, m, norm, target_mass, row_scale):
    """``ds[j] = row_scale (p_j sum(y) - y_j)``, with ``p_j = ds[j] / norm``."""
    c = row_scale * target_mass / norm
    for j in range(m):
        ds[zr + j] = c * ds[zr + j] - row_scale * ys[zr + j]


@kernel(inline="always")
def _softmax_rows(zs, ys, ds, w, w_off, use_weights, r0, rows, m, scale):
    """Softmax + cross-entropy of ``rows`` rows: sum_i w_i l_i, deltas into ``ds``.

    Four rows at a time: a row's normalizer, its log and its division are a chain
    of dependent operations that one row alone cannot overlap; four independent
    chains side by side took 7.7 us against 12.2 one row at a time (200 x 10
    float64, one thread, Zen 4), 13.7 us with the former two exps per element.
    """
    total = 0.0
    one = like(1.0, zs)
    i = 0
    while i + 4 <= rows:
        z0, z1, z2, z3 = i * m, (i + 1) * m, (i + 2) * m, (i + 3) * m
        n0, t0, d0 = _softmax_exps(zs, ys, ds, z0, m)
        n1, t1, d1 = _softmax_exps(zs, ys, ds, z1, m)
        n2, t2, d2 = _softmax_exps(zs, ys, ds, z2, m)
        n3, t3, d3 = _softmax_exps(zs, ys, ds, z3, m)
        w0 = w[w_off + r0 + i] if use_weights else one
        w1 = w[w_off + r0 + i + 1] if use_weights else one
        w2 = w[w_off + r0 + i + 2] if use_weights else one
        w3 = w[w_off + r0 + i + 3] if use_weights else one
        total += (
            w0 * _softmax_loss(n0, t0, d0)
            + w1 * _softmax_loss(n1, t1, d1)
            + w2 * _softmax_loss(n2, t2, d2)
            + w3 * _softmax_loss(n3, t3, d3)
        )
        _softmax_delta(ds, ys, z0, m, n0, t0, scale * w0)
        _softmax_delta(ds, ys, z1, m, n1, t1, scale * w1)
        _softmax_delta(ds, ys, z2, m, n2, t2, scale * w2)
        _softmax_delta(ds, ys, z3, m, n3, t3, scale * w3)
        i += 4
    while i < rows:
        zr = i * m
        norm, target_mass, dot = _softmax_exps(zs, ys, ds, zr, m)
        wi = w[w_off + r0 + i] if use_weights else one
        total += wi * _softmax_loss(norm, target_mass, dot)
        _softmax_delta(ds, ys, zr, m, norm, target_mass, scale * wi)
        i += 1
    return total


@kernel
def output_loss_and_delta(
    z, z_off, y, y_off, w, w_off, use_weights, r0, r1, m, kind, act_code, delta_scale, delta, d_off
):
    """Scaled dL/dz of rows r0:r1 into ``delta``; return sum_i w_i l_i (float64).

    Row-major flat buffers: logit (i, j) at z[z_off + i m + j], target at
    y[y_off + i m + j], delta at delta[d_off + i m + j], weight at w[w_off + i]
    (read only when ``use_weights``).  ``delta_scale`` is ``grad_scale / sum(w)``
    for the whole minibatch.
    """
    total = 0.0
    one = like(1.0, z)
    scale = like(delta_scale, z)
    count = (r1 - r0) * m
    zs = z[z_off + r0 * m : z_off + r0 * m + count]
    ys = y[y_off + r0 * m : y_off + r0 * m + count]
    ds = delta[d_off + r0 * m : d_off + r0 * m + count]
    if kind == LOGISTIC and not use_weights:
        # Every element independent: one flat loop the compiler vectorizes.
        for e in range(count):
            loss, g = _logistic(zs[e], ys[e], one)
            total += loss
            ds[e] = scale * g
        return total
    if kind == SOFTMAX_CE:
        return _softmax_rows(zs, ys, ds, w, w_off, use_weights, r0, r1 - r0, m, scale)
    for i in range(r1 - r0):
        wi = w[w_off + r0 + i] if use_weights else one
        row_scale = scale * wi
        zr = yr = dr = i * m
        row_loss = 0.0
        if kind == LOGISTIC:
            for j in range(m):
                loss, g = _logistic(zs[zr + j], ys[yr + j], one)
                row_loss += loss
                ds[dr + j] = row_scale * g
        elif kind == POISSON:
            for j in range(m):
                a = exp(zs[zr + j])
                t = ys[yr + j]
                # y log(y / a) - y + a, with 0 log 0 = 0 (scikit-learn's poisson_loss).
                if t > 0:
                    row_loss += t * (math.log(t) - zs[zr + j]) - t + a
                else:
                    row_loss += a
                ds[dr + j] = row_scale * (a - t)
        else:  # SQUARED, with any elementwise output activation
            for j in range(m):
                a = activate(zs[zr + j], act_code)
                diff = a - ys[yr + j]
                row_loss += diff * diff
                ds[dr + j] = row_scale * diff * derivative(a, act_code)
        total += wi * row_loss
    return total


class LossSpec:
    """How a named loss maps onto a kernel kind and its two scales.

    ``loss_scale = loss_factor / (m if loss_per_output else 1)`` and likewise for
    the gradient, where m is the number of outputs; both are then divided by the
    minibatch's total sample weight inside the kernel.
    """

    def __init__(self, kind, loss_factor, grad_factor, loss_per_output, grad_per_output):
        self.kind = kind
        self.loss_factor = loss_factor
        self.grad_factor = grad_factor
        self.loss_per_output = loss_per_output
        self.grad_per_output = grad_per_output

    def scales(self, n_outputs):
        loss = self.loss_factor / (n_outputs if self.loss_per_output else 1)
        grad = self.grad_factor / (n_outputs if self.grad_per_output else 1)
        return loss, grad


LOSSES = {
    # mlpfast's own conventions (Network): means over all elements / over samples.
    "mse": LossSpec(SQUARED, 1.0, 2.0, True, True),
    "binary_crossentropy": LossSpec(LOGISTIC, 1.0, 1.0, True, True),
    "categorical_crossentropy": LossSpec(SOFTMAX_CE, 1.0, 1.0, False, False),
    "poisson": LossSpec(POISSON, 1.0, 1.0, False, False),
    # scikit-learn's conventions (the estimators): half squared error averaged over
    # outputs but a gradient that is not; log-loss summed over outputs.
    "squared_error": LossSpec(SQUARED, 0.5, 1.0, True, False),
    "log_loss": LossSpec(LOGISTIC, 1.0, 1.0, False, False),
}
