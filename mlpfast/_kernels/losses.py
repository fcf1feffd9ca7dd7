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

SQUARED = 0
LOGISTIC = 1
SOFTMAX_CE = 2
POISSON = 3

# The output activation each kind implies (None: any elementwise activation).
KIND_ACTIVATION = {SQUARED: None, LOGISTIC: SIGMOID, SOFTMAX_CE: SOFTMAX, POISSON: EXP}


@kernel
def output_loss_and_delta(z, y, weights, use_weights, kind, act_code, delta_scale, delta):
    """Fill ``delta`` with the scaled dL/dz of a block of rows; return sum_i w_i l_i.

    ``z``: the output layer's pre-activations (rows, m); ``y``: targets (rows, m);
    ``weights``: per-row sample weights (read only when ``use_weights``).
    ``delta_scale`` already holds ``grad_scale / sum(w)`` for the whole minibatch.
    """
    rows, cols = z.shape
    total = 0.0
    one = like(1.0, z)
    zero = like(0.0, z)
    for i in range(rows):
        w = weights[i] if use_weights else one
        scale = delta_scale * w
        row_loss = 0.0
        if kind == LOGISTIC:
            for j in range(cols):
                v = z[i, j]
                t = y[i, j]
                e = math.exp(-abs(v))
                # log(1 + exp(-|v|)) + max(v, 0) - v t: the stable log-loss from logits.
                row_loss += math.log1p(e) + max(v, zero) - v * t
                p = one / (one + e) if v >= 0 else e / (one + e)
                delta[i, j] = scale * (p - t)
        elif kind == SOFTMAX_CE:
            peak = z[i, 0]
            for j in range(cols):
                peak = max(peak, z[i, j])
            norm = zero
            for j in range(cols):
                norm += math.exp(z[i, j] - peak)
            log_norm = peak + math.log(norm)
            target_mass = zero
            for j in range(cols):
                target_mass += y[i, j]
                row_loss -= y[i, j] * (z[i, j] - log_norm)
            for j in range(cols):
                p = math.exp(z[i, j] - log_norm)
                delta[i, j] = scale * (p * target_mass - y[i, j])
        elif kind == POISSON:
            for j in range(cols):
                a = math.exp(z[i, j])
                t = y[i, j]
                # y log(y / a) - y + a, with 0 log 0 = 0 (scikit-learn's poisson_loss).
                if t > 0:
                    row_loss += t * (math.log(t) - z[i, j]) - t + a
                else:
                    row_loss += a
                delta[i, j] = scale * (a - t)
        else:  # SQUARED, with any elementwise output activation
            for j in range(cols):
                a = activate(z[i, j], act_code)
                diff = a - y[i, j]
                row_loss += diff * diff
                delta[i, j] = scale * diff * derivative(a, act_code)
        total += w * row_loss
    return total


@kernel
def output_loss(z, y, weights, use_weights, kind, act_code, scratch):
    """sum_i w_i l_i without the delta (``scratch`` is a (1, m) buffer it may overwrite)."""
    total = 0.0
    for i in range(z.shape[0]):
        total += output_loss_and_delta(
            z[i:i + 1], y[i:i + 1], weights[i:i + 1], use_weights, kind, act_code,
            like(0.0, z), scratch)
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
