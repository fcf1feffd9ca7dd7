"""The training kernels: a whole run of epochs in one compiled call.

Per minibatch there is no Python and no allocation.  Two phases:

1. **samples** (``forward_backward``): the minibatch's samples are split into
   ``n_blocks`` column blocks; for its block a thread gathers the rows (through the
   epoch's permutation), runs the forward pass, the fused output loss + delta, and
   the delta recursion down to the first hidden layer.  Blocks touch disjoint
   columns of the workspace.
2. **parameters** (``update_parameters``): every layer's W is split into
   ``n_blocks`` row blocks; a thread computes the weight gradient of its rows over
   the whole minibatch and updates them at once.  Plain SGD is fused into the
   product itself (``W <- (1 - lr l2) W - lr A^T D``: no gradient buffer at all);
   other optimizers write the rows' gradient to the flat gradient buffer and update
   them in the same thread.  No partial sums, no reduction pass.

Phases are parallel regions (``prange``) only when ``n_blocks > 1``; small
minibatches run both in the calling thread, with no parallel region at all.
The split depends only on ``n_blocks``, so results are bitwise reproducible for a
given thread count.

Divergence: parameters and optimizer state are snapshotted at the start of each
epoch; if a minibatch loss is not finite, or a parameter is not finite at the end
of the epoch, the snapshot is restored and the kernel returns ``DIVERGED``.
"""

import math
from collections import namedtuple

from numba import prange

from .._config import kernel, parallel_kernel
from .dense import ACT_OFFSET, ACTIVATION, B_OFFSET, N_IN, N_OUT, W_OFFSET, bias_gradient, \
    delta_below, hidden_forward, narrow, output_logits, weight_gradient
from .losses import output_loss_and_delta
from .optimizers import ADAM, BETA1, BETA2, GRADIENT_ONLY, LR, SGD, all_finite, sumsq_range, \
    update_range, weights_sumsq
from .optimizers import L2 as L2_COEF
from .optimizers import N_COEFS as _OPTIMIZER_COEFS
from .scalars import like
from .shuffle import epoch_permutation

# Indices into the int64 ``config`` array.
(BATCH_SIZE, N_BLOCKS, SHUFFLE, SEED, LOSS_KIND, OPTIMIZER, SCHEDULE, N_EPOCHS,
 USE_WEIGHTS) = range(9)
N_CONFIG = 9
# A block narrower than this is not worth a thread.
MIN_BLOCK_ROWS = 8
# Indices into the float64 ``coefs`` array (the optimizer's come first).
LOSS_SCALE, GRAD_SCALE, POWER_T = range(_OPTIMIZER_COEFS, _OPTIMIZER_COEFS + 3)
N_COEFS = _OPTIMIZER_COEFS + 3
# Indices into the int64 ``counters`` array, updated in place.
EPOCH, STEP, SAMPLES = range(3)
N_COUNTERS = 3

CONSTANT, INVSCALING = 0, 1
SCHEDULES = {"constant": CONSTANT, "invscaling": INVSCALING}
OK, DIVERGED = 0, 1

# The arrays a training call works on, grouped so kernels take a few named
# arguments instead of twenty positional ones.  X and Y are 2-D C arrays; every
# buffer below is flat.  ``acts``/``deltas``: the layer blocks (see dense.py) for
# ``capacity`` samples; ``xbuf``/``ybuf``/``wbuf``: gathered rows; ``xT``: the
# transposed input block when the first layer is narrow; ``partials``: per-block
# float64 results (2 per block).
Data = namedtuple("Data", "X Y sample_weight")
Model = namedtuple("Model", "params grads state backup layout")
Workspace = namedtuple("Workspace", "acts deltas xbuf xT ybuf wbuf perm partials")


@kernel
def _output_delta_layout(offset, m, capacity):
    """The output delta is row-major (capacity x m); with one output that is also a
    feature-major 1 x capacity row, which keeps the loops over it contiguous."""
    if m == 1:
        return offset, capacity, False
    return offset, m, True


@kernel
def _input_source(xs, x_off, d, ws, capacity, layout, c0, c1):
    """The first layer's input for samples c0:c1: rows of X, or (narrow first layer)
    their transpose in ``ws.xT``.  Returns (buffer, offset, leading dim, row-major)."""
    if narrow(layout[0, N_IN], layout[0, N_OUT]):
        xT = ws.xT
        rows = xs[x_off + c0 * d:x_off + c1 * d]
        for p in range(d):
            column = xT[p * capacity + c0:p * capacity + c1]
            for i in range(c1 - c0):
                column[i] = rows[i * d + p]
        return xT, 0, capacity, False
    return xs, x_off, d, True


@kernel
def _forward_backward_rows(xs, x_off, ys, y_off, wsrc, w_off, use_weights, model, ws,
                           capacity, c0, c1, kind, delta_scale):
    """Phase 1 for samples c0:c1 of the minibatch; returns sum_i w_i l_i."""
    layout = model.layout
    params = model.params
    acts = ws.acts
    deltas = ws.deltas
    n_layers = layout.shape[0]
    d = layout[0, N_IN]
    m = layout[n_layers - 1, N_OUT]
    src, s_off, s_ld, s_rowmajor = _input_source(xs, x_off, d, ws, capacity, layout, c0, c1)
    for k in range(n_layers - 1):
        off = layout[k, ACT_OFFSET]
        hidden_forward(src, s_off, s_ld, s_rowmajor, params, layout, k, acts, off, capacity,
                       c0, c1)
        src, s_off, s_ld, s_rowmajor = acts, off, capacity, False
    last = n_layers - 1
    z_off = layout[last, ACT_OFFSET]
    output_logits(src, s_off, s_ld, s_rowmajor, params, layout, last, acts, z_off, c0, c1)
    loss = output_loss_and_delta(acts, z_off, ys, y_off, wsrc, w_off, use_weights, c0, c1, m,
                                 kind, layout[last, ACTIVATION], delta_scale, deltas, z_off)
    d_off, d_ld, d_rowmajor = _output_delta_layout(z_off, m, capacity)
    for k in range(last, 0, -1):
        below = layout[k - 1, ACT_OFFSET]
        delta_below(params, layout, k, deltas, d_off, d_ld, d_rowmajor, acts, deltas, below,
                    capacity, c0, c1)
        d_off, d_ld, d_rowmajor = below, capacity, False
    return loss


@kernel
def forward_backward(data, model, ws, start, size, use_perm, c0, c1, kind, delta_scale,
                     use_weights):
    """Phase 1 for samples c0:c1 of the minibatch of ``size`` rows at ``start``."""
    X, Y = data.X, data.Y
    d, m = X.shape[1], Y.shape[1]
    capacity = ws.wbuf.shape[0]
    if use_perm:
        xbuf, ybuf, wbuf = ws.xbuf, ws.ybuf, ws.wbuf
        for r in range(c0, c1):
            source = ws.perm[start + r]
            xrow = xbuf[r * d:(r + 1) * d]
            xrow[:] = X[source]
            yrow = ybuf[r * m:(r + 1) * m]
            yrow[:] = Y[source]
            if use_weights:
                wbuf[r] = data.sample_weight[source]
        return _forward_backward_rows(xbuf, 0, ybuf, 0, wbuf, 0, use_weights, model, ws,
                                      capacity, c0, c1, kind, delta_scale)
    return _forward_backward_rows(X.reshape(X.size), start * d, Y.reshape(Y.size), start * m,
                                  data.sample_weight, start, use_weights, model, ws, capacity,
                                  c0, c1, kind, delta_scale)


@kernel
def update_parameters(data, model, ws, start, size, use_perm, part, n_parts, optimizer,
                      coefs, lr, l2, want_sumsq):
    """Phase 2, share ``part`` of ``n_parts``: gradient (and update) of every layer's
    W rows and biases in that share.  Returns sum(W^2) over the share's updated
    weights when ``want_sumsq`` (the next minibatch's L2 loss term), else 0."""
    layout = model.layout
    params = model.params
    grads = model.grads
    acts = ws.acts
    deltas = ws.deltas
    X = data.X
    n_layers = layout.shape[0]
    capacity = ws.wbuf.shape[0]
    d = X.shape[1]
    # The first layer's input over the whole minibatch (phase 1 filled xT / xbuf).
    if narrow(layout[0, N_IN], layout[0, N_OUT]):
        src, s_off, s_ld, s_rowmajor = ws.xT, 0, capacity, False
    elif use_perm:
        src, s_off, s_ld, s_rowmajor = ws.xbuf, 0, d, True
    else:
        src, s_off, s_ld, s_rowmajor = X.reshape(X.size), start * d, d, True
    sumsq = 0.0
    for k in range(n_layers):
        n_in, n_out = layout[k, N_IN], layout[k, N_OUT]
        w0, b0 = layout[k, W_OFFSET], layout[k, B_OFFSET]
        if k == n_layers - 1:
            d_off, d_ld, d_rowmajor = _output_delta_layout(layout[k, ACT_OFFSET], n_out, capacity)
        else:
            d_off, d_ld, d_rowmajor = layout[k, ACT_OFFSET], capacity, False
        p0, p1 = part * n_in // n_parts, (part + 1) * n_in // n_parts
        j0, j1 = part * n_out // n_parts, (part + 1) * n_out // n_parts
        if optimizer == SGD:
            weight_gradient(src, s_off, s_ld, s_rowmajor, deltas, d_off, d_ld, d_rowmajor, size,
                            layout, k, p0, p1, -lr, 1.0 - lr * l2, params, w0)
            bias_gradient(deltas, d_off, d_ld, d_rowmajor, size, j0, j1, grads, b0)
            step = like(lr, params)
            for j in range(b0 + j0, b0 + j1):
                params[j] -= step * grads[j]
            if want_sumsq:
                sumsq += sumsq_range(params, w0 + p0 * n_out, w0 + p1 * n_out)
        else:
            weight_gradient(src, s_off, s_ld, s_rowmajor, deltas, d_off, d_ld, d_rowmajor, size,
                            layout, k, p0, p1, 1.0, 0.0, grads, w0)
            bias_gradient(deltas, d_off, d_ld, d_rowmajor, size, j0, j1, grads, b0)
            if optimizer != GRADIENT_ONLY:
                sumsq += update_range(params, grads, model.state, w0 + p0 * n_out,
                                      w0 + p1 * n_out, optimizer, coefs, l2, lr)
                update_range(params, grads, model.state, b0 + j0, b0 + j1, optimizer, coefs,
                             0.0, lr)
        src, s_off, s_ld, s_rowmajor = acts, layout[k, ACT_OFFSET], capacity, False
    return sumsq


@kernel
def batch_weight(data, ws, use_weights, use_perm, start, size):
    if not use_weights:
        return float(size)
    total = 0.0
    for r in range(size):
        row = ws.perm[start + r] if use_perm else start + r
        total += data.sample_weight[row]
    return total


@parallel_kernel
def minibatch_step(data, model, ws, config, coefs, start, size, use_perm, lr, alpha,
                   want_sumsq):
    """Both phases for one minibatch.  Returns (sum_i w_i l_i, sum_i w_i, sum W^2)."""
    use_weights = config[USE_WEIGHTS] != 0
    optimizer = config[OPTIMIZER]
    wsum = batch_weight(data, ws, use_weights, use_perm, start, size)
    delta_scale = coefs[GRAD_SCALE] / wsum
    kind = config[LOSS_KIND]
    l2 = alpha / wsum
    n_blocks = min(config[N_BLOCKS], size // MIN_BLOCK_ROWS)
    if n_blocks <= 1:
        loss = forward_backward(data, model, ws, start, size, use_perm, 0, size, kind,
                                delta_scale, use_weights)
        sumsq = update_parameters(data, model, ws, start, size, use_perm, 0, 1, optimizer,
                                  coefs, lr, l2, want_sumsq)
        return loss, wsum, sumsq
    partials = ws.partials
    for t in prange(n_blocks):
        partials[t] = forward_backward(data, model, ws, start, size, use_perm,
                                       t * size // n_blocks, (t + 1) * size // n_blocks, kind,
                                       delta_scale, use_weights)
    for t in prange(n_blocks):
        partials[n_blocks + t] = update_parameters(data, model, ws, start, size, use_perm, t,
                                                   n_blocks, optimizer, coefs, lr, l2,
                                                   want_sumsq)
    loss = 0.0
    sumsq = 0.0
    for t in range(n_blocks):
        loss += partials[t]
        sumsq += partials[n_blocks + t]
    return loss, wsum, sumsq


@kernel
def snapshot(model, restore):
    """Copy params and optimizer state to ``model.backup`` (or back, to restore)."""
    size = model.params.shape[0]
    for i in range(size):
        if restore:
            model.params[i] = model.backup[0, i]
        else:
            model.backup[0, i] = model.params[i]
    for row in range(model.state.shape[0]):
        for i in range(size):
            if restore:
                model.state[row, i] = model.backup[1 + row, i]
            else:
                model.backup[1 + row, i] = model.state[row, i]


@kernel
def train_epochs(data, model, ws, config, coefs, counters, epoch_losses):
    """Run ``config[N_EPOCHS]`` epochs of minibatch training.

    ``counters`` (epoch, optimizer step, samples seen) continue from their values
    and are updated in place, so consecutive calls continue one run.  Each
    epoch's mean loss goes to ``epoch_losses``.  Returns (epochs completed, status).
    """
    n = data.X.shape[0]
    batch = config[BATCH_SIZE]
    optimizer = config[OPTIMIZER]
    use_perm = config[SHUFFLE] != 0 and n > batch
    alpha = coefs[L2_COEF]
    loss_scale = coefs[LOSS_SCALE]
    want_sumsq = alpha > 0
    w_sumsq = weights_sumsq(model.params, model.layout) if want_sumsq else 0.0
    for e in range(config[N_EPOCHS]):
        snapshot(model, False)
        step0, samples0 = counters[STEP], counters[SAMPLES]
        if use_perm:
            epoch_permutation(ws.perm, config[SEED], counters[EPOCH])
        lr = coefs[LR]
        if config[SCHEDULE] == INVSCALING and counters[SAMPLES] > 0:
            lr = coefs[LR] / (counters[SAMPLES] + 1.0) ** coefs[POWER_T]
        epoch_loss = 0.0
        epoch_weight = 0.0
        finite = True
        for start in range(0, n, batch):
            size = min(batch, n - start)
            counters[STEP] += 1
            step_lr = lr
            if optimizer == ADAM:
                t = counters[STEP]
                step_lr = lr * math.sqrt(1.0 - coefs[BETA2] ** t) / (1.0 - coefs[BETA1] ** t)
            loss, wsum, new_sumsq = minibatch_step(data, model, ws, config, coefs, start, size,
                                                   use_perm, step_lr, alpha, want_sumsq)
            batch_loss = loss_scale * loss / wsum + 0.5 * alpha * w_sumsq / wsum
            w_sumsq = new_sumsq
            if not math.isfinite(batch_loss):
                finite = False
                break
            epoch_loss += batch_loss * wsum
            epoch_weight += wsum
            counters[SAMPLES] += size
        if not finite or not all_finite(model.params):
            snapshot(model, True)
            counters[STEP], counters[SAMPLES] = step0, samples0
            return e, DIVERGED
        epoch_losses[e] = epoch_loss / epoch_weight
        counters[EPOCH] += 1
    return config[N_EPOCHS], OK


@kernel
def gradient_pass(data, model, ws, config, coefs):
    """The gradient of the mean loss over all of ``data`` into ``model.grads``
    (nothing else changes).  Returns (sum_i w_i l_i, sum_i w_i)."""
    loss, wsum, _ = minibatch_step(data, model, ws, config, coefs, 0, data.X.shape[0], False,
                                   0.0, 0.0, False)
    return loss, wsum


__all__ = ["Data", "Model", "Workspace", "train_epochs", "gradient_pass", "GRADIENT_ONLY",
           "ADAM"]
