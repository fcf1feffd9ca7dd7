"""The training kernels: a whole run of epochs in one compiled call.

Per minibatch there is no Python and no allocation: rows are gathered from X by
the epoch's permutation into a workspace, pushed forward, the fused output layer
gives the loss and the output delta, deltas are propagated back, and the update
sums the per-block gradients and applies the optimizer in one sweep.

Threads: a minibatch's rows are split into ``n_blocks`` blocks; each Numba thread
runs the forward and backward pass of its block with single-threaded BLAS and
writes partial gradients into its own row of ``grads``; the update (parallel over
chunks of the parameter buffer) sums them.  That is two parallel regions per
minibatch, and none at all when ``n_blocks == 1`` (small minibatches, one
thread, or a process forked after OpenMP started: see mlpfast/_threads.py).
Summation order depends only on ``n_blocks``, so a fit is bitwise reproducible
for a given thread count.

Divergence: parameters (and optimizer state) are snapshotted at the start of each
epoch; if a loss or an updated parameter is not finite, the snapshot is restored
and the kernel returns ``DIVERGED`` with the number of completed epochs.
"""

import math
from collections import namedtuple

from numba import prange

from .._config import kernel, parallel_kernel
from .dense import ACTIVATION, backward_block, block_of, forward_block
from .losses import output_loss_and_delta
from .optimizers import ADAM, BETA1, BETA2, LR, update_chunk, weights_sumsq
from .optimizers import L2 as L2_COEF
from .optimizers import N_COEFS as _OPTIMIZER_COEFS
from .scalars import like
from .shuffle import epoch_permutation

# Indices into the int64 ``config`` array.
(BATCH_SIZE, N_BLOCKS, UPDATE_CHUNKS, SHUFFLE, SEED, LOSS_KIND, OPTIMIZER, SCHEDULE,
 N_EPOCHS, USE_WEIGHTS) = range(10)
N_CONFIG = 10
# A block narrower than this is not worth a thread (see asv Train.time_epoch).
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
# arguments instead of twenty positional ones.
Data = namedtuple("Data", "X Y sample_weight")
Model = namedtuple("Model", "params grads state backup layout")
# block_losses holds 2 floats per thread (the update's partial sums reuse it).
Workspace = namedtuple("Workspace", "acts deltas xbuf ybuf wbuf perm block_losses")


@kernel
def minibatch_block(data, model, ws, grads, use_weights, use_perm, start, r0, r1,
                    kind, delta_scale):
    """Forward, loss and backward of rows r0:r1 of the minibatch at ``start``.

    Writes this block's gradient sums into ``grads``; returns sum_i w_i l_i.
    """
    X, Y, sample_weight = data.X, data.Y, data.sample_weight
    xbuf, ybuf, wbuf = ws.xbuf, ws.ybuf, ws.wbuf
    if use_perm:
        for r in range(r0, r1):
            source = ws.perm[start + r]
            for j in range(X.shape[1]):
                xbuf[r, j] = X[source, j]
            for j in range(Y.shape[1]):
                ybuf[r, j] = Y[source, j]
            if use_weights:
                wbuf[r] = sample_weight[source]
        inputs = xbuf[r0:r1]
        targets = ybuf[r0:r1]
        weights = wbuf[r0:r1]
    else:
        inputs = X[start + r0:start + r1]
        targets = Y[start + r0:start + r1]
        weights = sample_weight[start + r0:start + r1] if use_weights else wbuf[r0:r1]
    layout = model.layout
    last = layout.shape[0] - 1
    logits = block_of(ws.acts, layout, last, r0, r1)
    forward_block(inputs, model.params, layout, ws.acts, r0, r1, logits, 0)
    loss = output_loss_and_delta(logits, targets, weights, use_weights, kind,
                                 layout[last, ACTIVATION], delta_scale,
                                 block_of(ws.deltas, layout, last, r0, r1))
    backward_block(inputs, model.params, grads, layout, ws.acts, ws.deltas, r0, r1)
    return loss


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
def gradient_pass(data, model, ws, config, coefs, start, size, use_perm):
    """Forward + backward of rows ``start:start + size`` (through ``ws.perm`` when
    ``use_perm``).  Partial gradient sums go to ``model.grads[:n_blocks]``, already
    scaled by ``grad_scale / sum(w)``.  Returns (sum_i w_i l_i, sum_i w_i, n_blocks).
    """
    use_weights = config[USE_WEIGHTS] != 0
    wsum = batch_weight(data, ws, use_weights, use_perm, start, size)
    delta_scale = like(coefs[GRAD_SCALE] / wsum, model.params)
    kind = config[LOSS_KIND]
    n_blocks = min(config[N_BLOCKS], size // MIN_BLOCK_ROWS)
    if n_blocks <= 1:
        loss = minibatch_block(data, model, ws, model.grads[0], use_weights, use_perm, start,
                               0, size, kind, delta_scale)
        return loss, wsum, 1
    block_losses = ws.block_losses
    for t in prange(n_blocks):
        r0 = t * size // n_blocks
        r1 = (t + 1) * size // n_blocks
        block_losses[t] = minibatch_block(data, model, ws, model.grads[t], use_weights,
                                          use_perm, start, r0, r1, kind, delta_scale)
    loss = 0.0
    for t in range(n_blocks):
        loss += block_losses[t]
    return loss, wsum, n_blocks


@parallel_kernel
def update_pass(model, ws, n_parts, n_chunks, optimizer, coefs, lr, l2):
    """Sum the ``n_parts`` partial gradients and apply the optimizer to every
    parameter, in ``n_chunks`` parallel chunks.  Returns (sum w^2, sum p^2)."""
    size = model.params.shape[0]
    if n_chunks <= 1:
        return update_chunk(model.params, model.grads, n_parts, model.state, model.layout,
                            0, size, optimizer, coefs, lr, l2)
    sums = ws.block_losses
    for t in prange(n_chunks):
        lo = t * size // n_chunks
        hi = (t + 1) * size // n_chunks
        w_part, all_part = update_chunk(model.params, model.grads, n_parts, model.state,
                                        model.layout, lo, hi, optimizer, coefs, lr, l2)
        sums[2 * t] = w_part
        sums[2 * t + 1] = all_part
    w_total = 0.0
    all_total = 0.0
    for t in range(n_chunks):
        w_total += sums[2 * t]
        all_total += sums[2 * t + 1]
    return w_total, all_total


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
    n_chunks = config[UPDATE_CHUNKS]
    optimizer = config[OPTIMIZER]
    use_perm = config[SHUFFLE] != 0 and n > batch
    alpha = coefs[L2_COEF]
    loss_scale = coefs[LOSS_SCALE]
    w_sumsq = weights_sumsq(model.params, model.layout) if alpha > 0 else 0.0
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
        for start in range(0, n, batch):
            size = min(batch, n - start)
            loss, wsum, parts = gradient_pass(data, model, ws, config, coefs, start, size,
                                              use_perm)
            batch_loss = loss_scale * loss / wsum + 0.5 * alpha * w_sumsq / wsum
            counters[STEP] += 1
            step_lr = lr
            if optimizer == ADAM:
                t = counters[STEP]
                step_lr = lr * math.sqrt(1.0 - coefs[BETA2] ** t) / (1.0 - coefs[BETA1] ** t)
            w_sumsq, all_sumsq = update_pass(model, ws, parts, n_chunks, optimizer, coefs,
                                             step_lr, alpha / wsum)
            if not (math.isfinite(batch_loss) and math.isfinite(all_sumsq)):
                snapshot(model, True)
                counters[STEP], counters[SAMPLES] = step0, samples0
                return e, DIVERGED
            epoch_loss += batch_loss * wsum
            epoch_weight += wsum
            counters[SAMPLES] += size
        epoch_losses[e] = epoch_loss / epoch_weight
        counters[EPOCH] += 1
    return config[N_EPOCHS], OK
