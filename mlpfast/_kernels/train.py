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

A serial fit (``train_epochs``) runs both phases in the calling thread.  A
threaded fit (``train_epochs_parallel``) runs each epoch as **one** parallel
region (:func:`run_steps_parallel`): the threads claim (phase, block) tasks in
order and hand over between phases through atomic counters (``atomics.py``),
~0.1 us a hand-over instead of a fork/join of 1-2.5 us per phase.  That is what
makes small minibatches worth splitting (``Network._parallel_plan``): a 2-thread
synthetic-adam fit ([20,100,1], 200 rows) took 120-150 ms against 185-210 ms with
a parallel region per phase (Zen 4, same process kind, interleaved runs).
The split depends only on ``n_blocks``, not on which thread runs a block, so
results are bitwise reproducible for a given thread count.

Two ways to split a minibatch across threads (``config[STRATEGY]``, chosen by
``Network`` from the sizes):

- ``ROW_SPLIT`` (above): threads share one workspace; phase 2 reads every
  sample's activations and deltas, so they cross between cores.  Best when the
  minibatch's activations are fewer than the parameters (wide: 100k activations
  vs 535k parameters per step, 1.98x on 2 threads).
- ``GRADIENT_SUM``: each thread gets its own workspace *slab* and its own gradient
  buffer; phase 1 runs forward, backward and the weight gradient of its samples,
  phase 2 sums the blocks' gradients over a share of the flat buffer and updates
  that share.  Only gradients and parameters cross between cores.  Best for small
  networks.  Measured on 2 cores (Zen 4, float64, steps inside fits, one region
  per epoch): [64,100,10] x 200 adam 241 -> 123 us per step (ROW_SPLIT 146),
  [20,100,1] x 200 adam 76 -> 48 us (ROW_SPLIT 75).  ROW_SPLIT's threads writing
  neighbouring columns of one feature-major workspace stall each other: 28-98 us
  for a phase 1 whose half takes 14 us alone.  Not classic false sharing: edges
  aligned to 64-4096 bytes did not help, private copies of the workspace (18-20
  us) or a 1 KiB gap between the threads' columns (20 us) did (hardware
  prefetchers pulling the other thread's lines, we believe).

What limits small networks: every value one core writes and the other reads
next costs ~1 ns (latency-bound at these sizes).  On the moons network
([2,64,64,1] x 32, 4.4k parameters) a block's phase 1 takes 12.7 us alone and
14-15 us beside the other thread, phase 2 1.5 us alone and 3.7 us beside it, so
2 threads give 1.04-1.10x.  Measured with a cycle counter per task; software
prefetch of the parameters before phase 1 changed nothing.

The serial step's ceiling (moons, float64, one thread, Zen 4; each piece in a loop
of 20,000 on one minibatch, fastest of 4 runs): the whole step 25.9 us; the three
32x64x64 products 5.2 (forward), 5.4 (delta below) and 7.2 us (weight gradient
fused with the SGD step: k = 32 is short for a 64x64 C); everything else (2 -> 64
and 64 -> 1 layers, loss, gather, biases) ~8 us in ~10 pieces of 0.3-1.2 us.  One
Zen 4 core's float64 peak is 16 FLOP a cycle: OpenBLAS reaches 52.5 GFLOP/s on
2048^2 and 50-55 on the 32x64x64 forward product, so the three products cannot
take less than ~15.7 us, a 49 ms epoch: at most 2.2x JAX scan (107-112 ms on
this machine) even if everything else were free, and 2.5x (<= 13.7 us a step)
is above one core's peak.  (The targets in BENCHMARKS.md were set on a Zen 5,
with twice the float64 FMA width: 70 % of its core.)  Products skipping ReLU's
zeros (half the activations here) are no way round it: a per-sample loop over the
active rows of W ran at 11.6 us against BLAS's 5.3 for the forward product.

The same for digits-adam (``MLPClassifier()`` on digits: [64,100,10], 200-row
steps, 1,800 of them in its 200 epochs), the estimator target of 10x
scikit-learn: a thread's five products over its 100 rows take 74.7 us at
OpenBLAS's one-core rates for these shapes (25.6 forward, 33.1 weight gradient
of the first layer, 4.2 + 7.7 + 4.1 for the 10-output layer; 26-52 GFLOP/s),
so a fit cannot take less than 134 ms with a perfect 2-thread split and nothing
else costing anything: at most 8.9-11x scikit-learn's 1.19-1.53 s.  Measured:
~123 us a step on 2 threads (224 ms a fit, 5.9x, in the fast two-thread mode).

Divergence: parameters and optimizer state are snapshotted at the start of each
epoch; if a minibatch loss is not finite, or a parameter is not finite at the end
of the epoch, the snapshot is restored and the kernel returns ``DIVERGED``.
"""

import math
from collections import namedtuple

import numba
import numpy as np
from numba import prange

from .._config import kernel, parallel_kernel
from .atomics import atomic_add, atomic_load, compare_and_swap, spin_pause, yield_cpu
from .dense import (
    ACT_OFFSET,
    ACTIVATION,
    B_OFFSET,
    N_IN,
    N_OUT,
    W_OFFSET,
    bias_gradient,
    delta_below,
    hidden_forward,
    narrow,
    output_logits,
    weight_gradient,
)
from .losses import output_loss_and_delta
from .memory import prefetch_span
from .optimizers import (
    ADAM,
    BETA1,
    BETA2,
    GRADIENT_ONLY,
    LR,
    SGD,
    all_finite,
    sumsq_range,
    update_range,
    weights_sumsq,
)
from .optimizers import L2 as L2_COEF
from .optimizers import N_COEFS as _OPTIMIZER_COEFS
from .scalars import like
from .shuffle import epoch_permutation
from .unrolled import function_at

# Indices into the int64 ``config`` array.
(
    BATCH_SIZE,
    N_BLOCKS,
    SHUFFLE,
    SEED,
    LOSS_KIND,
    OPTIMIZER,
    SCHEDULE,
    N_EPOCHS,
    USE_WEIGHTS,
    AVERAGE_BY_SIZE,
    STRATEGY,
) = range(11)
N_CONFIG = 11
ROW_SPLIT, GRADIENT_SUM = 0, 1
# A block narrower than this is not worth a thread.
MIN_BLOCK_ROWS = 8
# Block edges and the workspace's row length are multiples of this many samples
# (64 bytes of float32), so threads write disjoint cache lines.
ALIGN = 16
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
# ``capacity`` samples (``acts`` is also a small network's unrolled-kernel scratch,
# and then at least ``unrolled.scratch_size`` long); ``xbuf``/``ybuf``/``wbuf``:
# gathered rows; ``xT``: the transposed input block when the first layer is
# narrow; ``partials``: per-block float64 results, a row of 2 per block for each
# minibatch of an epoch; ``block_grads``: one gradient buffer per block
# (GRADIENT_SUM; zero rows otherwise); ``sync``: the threaded epoch's int64
# counters (``SYNC_*``).  Under GRADIENT_SUM every buffer but ``perm``,
# ``partials``, ``block_grads`` and ``sync`` holds ``n_blocks`` equal slabs, one per
# block (see :func:`block_workspace`).  ``Xf``/``Yf`` are flat views of X and Y
# (made in Python: a reshape inside a kernel drags in numba's error-formatting
# code, ~1.5 s of every cold compile).
Data = namedtuple("Data", "X Y sample_weight Xf Yf")
Model = namedtuple("Model", "params grads state backup layout")
Workspace = namedtuple("Workspace", "acts deltas xbuf xT ybuf wbuf perm partials block_grads sync")


@kernel(inline="always")
def _output_delta_layout(offset, m, capacity):
    """The output delta is row-major (capacity x m); with one output that is also a
    feature-major 1 x capacity row, which keeps the loops over it contiguous."""
    if m == 1:
        return offset, capacity, False
    return offset, m, True


@kernel(inline="always")
def _input_source(xs, x_off, d, ws, capacity, layout, c0, c1):
    """The first layer's input for samples c0:c1: rows of X, or (narrow first layer)
    their transpose in ``ws.xT``.  Returns (buffer, offset, leading dim, row-major)."""
    if narrow(layout[0, N_IN], layout[0, N_OUT]):
        xT = ws.xT
        n, ud = np.uint64(c1 - c0), np.uint64(d)
        for p in range(d):
            column = np.uint64(p * capacity + c0)
            first = np.uint64(x_off + c0 * d + p)
            for i in range(n):
                xT[column + i] = xs[first + i * ud]
        return xT, 0, capacity, False
    return xs, x_off, d, True


# A shuffled minibatch's rows are scattered over X: the gather asks for the row
# this many ahead while it copies one.  Measured (float64, one thread, the
# synthetic-adam network [20,100,1], 200-row steps, 30,000 rows): the gathered
# step took 38-40 us against 30-32 for contiguous rows in three runs of four
# without it, 31-33 us (the same as contiguous) in all four with it; moons
# (2 features) unchanged within the noise.
PREFETCH_ROWS = 16


@kernel(inline="always")
def gather_rows(data, ws, start, c0, c1, use_weights):
    """Rows c0:c1 of the shuffled minibatch at ``start`` (through ``ws.perm``) into
    rows c0:c1 of ``ws.xbuf``/``ws.ybuf`` (and their weights into ``ws.wbuf``)."""
    xbuf, ybuf, wbuf = ws.xbuf, ws.ybuf, ws.wbuf
    Xf, Yf = data.Xf, data.Yf
    ud, um = np.uint64(data.X.shape[1]), np.uint64(data.Y.shape[1])
    for r in range(c0, min(c0 + PREFETCH_ROWS, c1)):
        prefetch_span(Xf, np.uint64(ws.perm[start + r]) * ud, ud)
    for r in range(c0, c1):
        if r + PREFETCH_ROWS < c1:
            prefetch_span(Xf, np.uint64(ws.perm[start + r + PREFETCH_ROWS]) * ud, ud)
        source = np.uint64(ws.perm[start + r])
        row = np.uint64(r)
        for j in range(ud):
            xbuf[row * ud + j] = Xf[source * ud + j]
        for j in range(um):
            ybuf[row * um + j] = Yf[source * um + j]
        if use_weights:
            wbuf[r] = data.sample_weight[source]


@kernel(inline="always")
def minibatch_rows(data, ws, start, c0, c1, use_perm, use_weights):
    """Where rows c0:c1 of the minibatch at ``start`` are read from, as flat buffers
    and the offsets of the minibatch's first row: (X rows, offset, Y rows, offset,
    sample weights, offset).  Shuffled rows are gathered into the workspace first;
    without sample weights the weights are ``ws.wbuf``'s ones (at least a
    minibatch of them)."""
    if use_perm:
        gather_rows(data, ws, start, c0, c1, use_weights)
        return ws.xbuf, 0, ws.ybuf, 0, ws.wbuf, 0
    d, m = data.X.shape[1], data.Y.shape[1]
    if use_weights:
        return data.Xf, start * d, data.Yf, start * m, data.sample_weight, start
    return data.Xf, start * d, data.Yf, start * m, ws.wbuf, 0


@kernel(inline="always")
def forward_backward(
    data, model, ws, start, size, use_perm, c0, c1, kind, delta_scale, use_weights
):
    """Phase 1 for samples c0:c1 of the minibatch of ``size`` rows at ``start``:
    gather (through the permutation), forward, fused output loss + delta, and the
    delta recursion down to the first hidden layer.  Returns sum_i w_i l_i.

    (One function, not a gather step calling a compute step: every level of the
    call tree is re-optimized by LLVM in each caller, so depth costs compile time.)
    """
    X, Y = data.X, data.Y
    d, m = X.shape[1], Y.shape[1]
    layout = model.layout
    params = model.params
    acts = ws.acts
    deltas = ws.deltas
    capacity = ws.wbuf.shape[0]
    xs, x_off, ys, y_off, wsrc, w_off = minibatch_rows(
        data, ws, start, c0, c1, use_perm, use_weights
    )
    n_layers = layout.shape[0]
    src, s_off, s_ld, s_rowmajor = _input_source(xs, x_off, d, ws, capacity, layout, c0, c1)
    for k in range(n_layers - 1):
        off = layout[k, ACT_OFFSET]
        hidden_forward(src, s_off, s_ld, s_rowmajor, params, layout, k, acts, off, capacity, c0, c1)
        src, s_off, s_ld, s_rowmajor = acts, off, capacity, False
    last = n_layers - 1
    z_off = layout[last, ACT_OFFSET]
    output_logits(src, s_off, s_ld, s_rowmajor, params, layout, last, acts, z_off, c0, c1)
    loss = output_loss_and_delta(
        acts,
        z_off,
        ys,
        y_off,
        wsrc,
        w_off,
        use_weights,
        c0,
        c1,
        m,
        kind,
        layout[last, ACTIVATION],
        delta_scale,
        deltas,
        z_off,
    )
    d_off, d_ld, d_rowmajor = _output_delta_layout(z_off, m, capacity)
    for k in range(last, 0, -1):
        below = layout[k - 1, ACT_OFFSET]
        delta_below(
            params,
            layout,
            k,
            deltas,
            d_off,
            d_ld,
            d_rowmajor,
            acts,
            deltas,
            below,
            capacity,
            c0,
            c1,
        )
        d_off, d_ld, d_rowmajor = below, capacity, False
    return loss


@kernel(inline="always")
def update_parameters(
    data, model, ws, start, size, use_perm, part, n_parts, optimizer, coefs, lr, l2, want_sumsq
):
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
        src, s_off, s_ld, s_rowmajor = data.Xf, start * d, d, True
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
            weight_gradient(
                src,
                s_off,
                s_ld,
                s_rowmajor,
                deltas,
                d_off,
                d_ld,
                d_rowmajor,
                size,
                layout,
                k,
                p0,
                p1,
                -lr,
                1.0 - lr * l2,
                params,
                w0,
            )
            bias_gradient(deltas, d_off, d_ld, d_rowmajor, size, j0, j1, grads, b0)
            step = like(lr, params)
            for j in range(b0 + j0, b0 + j1):
                params[j] -= step * grads[j]
            if want_sumsq:
                sumsq += sumsq_range(params, w0 + p0 * n_out, w0 + p1 * n_out)
        else:
            weight_gradient(
                src,
                s_off,
                s_ld,
                s_rowmajor,
                deltas,
                d_off,
                d_ld,
                d_rowmajor,
                size,
                layout,
                k,
                p0,
                p1,
                1.0,
                0.0,
                grads,
                w0,
            )
            bias_gradient(deltas, d_off, d_ld, d_rowmajor, size, j0, j1, grads, b0)
            if optimizer != GRADIENT_ONLY:
                sumsq += update_range(
                    params,
                    grads,
                    model.state,
                    w0 + p0 * n_out,
                    w0 + p1 * n_out,
                    optimizer,
                    coefs,
                    l2,
                    lr,
                )
                update_range(
                    params, grads, model.state, b0 + j0, b0 + j1, optimizer, coefs, 0.0, lr
                )
        src, s_off, s_ld, s_rowmajor = acts, layout[k, ACT_OFFSET], capacity, False
    return sumsq


@kernel(inline="always")
def batch_weight(data, ws, use_weights, use_perm, start, size):
    if not use_weights:
        return float(size)
    total = 0.0
    for r in range(size):
        row = ws.perm[start + r] if use_perm else start + r
        total += data.sample_weight[row]
    return total


@kernel(inline="always")
def _block_edge(block, n_blocks, size):
    """Where block ``block`` of ``n_blocks`` starts: a multiple of ``ALIGN`` samples,
    so two threads never write one cache line of a feature-major row (with the
    workspace capacity padded to ``ALIGN``).  False sharing made a 2-thread phase 1
    on 200 samples 4x slower than serial (43 vs 10 us per block, measured)."""
    if block >= n_blocks:
        return size
    return (block * size // n_blocks) // ALIGN * ALIGN


@kernel(inline="always")
def block_workspace(ws, block):
    """Block ``block``'s slab of a GRADIENT_SUM workspace (``ws.block_grads`` has one
    row per slab): a Workspace of views, each buffer cut into equal slabs."""
    slabs = ws.block_grads.shape[0]
    a = ws.acts.shape[0] // slabs
    x = ws.xbuf.shape[0] // slabs
    t = ws.xT.shape[0] // slabs
    y = ws.ybuf.shape[0] // slabs
    c = ws.wbuf.shape[0] // slabs
    return Workspace(
        ws.acts[block * a : (block + 1) * a],
        ws.deltas[block * a : (block + 1) * a],
        ws.xbuf[block * x : (block + 1) * x],
        ws.xT[block * t : (block + 1) * t],
        ws.ybuf[block * y : (block + 1) * y],
        ws.wbuf[block * c : (block + 1) * c],
        ws.perm,
        ws.partials,
        ws.block_grads,
        ws.sync,
    )


@kernel
def sum_and_update(model, ws, part, n_parts, n_blocks, optimizer, coefs, lr, l2, want_sumsq):
    """GRADIENT_SUM phase 2, share ``part`` of ``n_parts`` of the flat buffer: the
    gradient is the sum of the first ``n_blocks`` blocks' (in block order, so results
    are reproducible), then the optimizer updates the share.  Returns sum(W^2) over
    the share's weights when ``want_sumsq``, else 0."""
    size = model.params.shape[0]
    lo = _block_edge(part, n_parts, size)
    hi = _block_edge(part + 1, n_parts, size)
    if lo >= hi:
        return 0.0
    total = model.grads[lo:hi]
    first = ws.block_grads[0, lo:hi]
    for i in range(hi - lo):
        total[i] = first[i]
    for b in range(1, n_blocks):
        more = ws.block_grads[b, lo:hi]
        for i in range(hi - lo):
            total[i] += more[i]
    if optimizer == GRADIENT_ONLY:
        return 0.0
    sumsq = update_share(model, lo, hi, optimizer, coefs, lr, l2)
    return sumsq if want_sumsq else 0.0


@kernel(inline="always")
def update_share(model, lo, hi, optimizer, coefs, lr, l2):
    """The optimizer's update of params[lo:hi] from grads[lo:hi] (L2 on the weights
    only).  Returns sum(W^2) over the updated weights."""
    layout = model.layout
    sumsq = 0.0
    for k in range(layout.shape[0]):
        w0, b0 = layout[k, W_OFFSET], layout[k, B_OFFSET]
        w_lo, w_hi = max(w0, lo), min(w0 + layout[k, N_IN] * layout[k, N_OUT], hi)
        if w_lo < w_hi:
            sumsq += update_range(
                model.params, model.grads, model.state, w_lo, w_hi, optimizer, coefs, l2, lr
            )
        b_lo, b_hi = max(b0, lo), min(b0 + layout[k, N_OUT], hi)
        if b_lo < b_hi:
            update_range(
                model.params, model.grads, model.state, b_lo, b_hi, optimizer, coefs, 0.0, lr
            )
    return sumsq


@kernel
def block_phase(
    phase,
    strategy,
    block,
    n_blocks,
    data,
    model,
    ws,
    start,
    size,
    use_perm,
    kind,
    delta_scale,
    use_weights,
    optimizer,
    coefs,
    lr,
    l2,
    want_sumsq,
):
    """Block ``block``'s share of phase ``phase`` (0 or 1) under ``strategy``; its
    result goes to ``ws.partials[phase * n_blocks + block]``.  One call site each of
    forward_backward and update_parameters: they are IR-inlined, and every site is
    a copy to compile."""
    c0 = _block_edge(block, n_blocks, size)
    c1 = _block_edge(block + 1, n_blocks, size)
    if strategy == GRADIENT_SUM:
        # Its own slab (samples at rows 0:rows) and its own gradient buffer.
        rows = c1 - c0
        bws = block_workspace(ws, block)
        bmodel = Model(model.params, ws.block_grads[block], model.state, model.backup, model.layout)
        bstart, bsize, r0, r1 = start + c0, rows, np.int64(0), rows
        part, parts, opt = np.int64(0), np.int64(1), np.int64(GRADIENT_ONLY)
        step_lr, step_l2, sumsq = 0.0, 0.0, False
    else:
        bws, bmodel, bstart, bsize, r0, r1 = ws, model, start, size, c0, c1
        part, parts, opt = block, n_blocks, optimizer
        step_lr, step_l2, sumsq = lr, l2, want_sumsq
    partials = ws.partials
    if phase == 0:
        partials[block] = forward_backward(
            data, bmodel, bws, bstart, bsize, use_perm, r0, r1, kind, delta_scale, use_weights
        )
    if (phase == 0) == (strategy == GRADIENT_SUM):
        # GRADIENT_SUM phase 1: the block's gradient; ROW_SPLIT phase 2: the update of
        # the block's share of W rows over the whole minibatch.
        result = update_parameters(
            data,
            bmodel,
            bws,
            bstart,
            bsize,
            use_perm,
            part,
            parts,
            opt,
            coefs,
            step_lr,
            step_l2,
            sumsq,
        )
        if phase == 1:
            partials[n_blocks + block] = result
    elif phase == 1:
        partials[n_blocks + block] = sum_and_update(
            model, ws, block, n_blocks, n_blocks, optimizer, coefs, lr, l2, want_sumsq
        )


@kernel(inline="always")
def _step_setup(data, ws, config, coefs, start, size, use_perm, alpha):
    use_weights = config[USE_WEIGHTS] != 0
    wsum = batch_weight(data, ws, use_weights, use_perm, start, size)
    return use_weights, wsum, coefs[GRAD_SCALE] / wsum, alpha / wsum


@kernel(inline="always")
def minibatch_step(data, model, ws, config, coefs, start, size, use_perm, lr, alpha, want_sumsq):
    """Both phases for one minibatch, in the calling thread.
    Returns (sum_i w_i l_i, sum_i w_i, sum W^2)."""
    use_weights, wsum, delta_scale, l2 = _step_setup(
        data, ws, config, coefs, start, size, use_perm, alpha
    )
    loss = forward_backward(
        data, model, ws, start, size, use_perm, 0, size, config[LOSS_KIND], delta_scale, use_weights
    )
    sumsq = update_parameters(
        data, model, ws, start, size, use_perm, 0, 1, config[OPTIMIZER], coefs, lr, l2, want_sumsq
    )
    return loss, wsum, sumsq


# ------------------------------------------------------- one parallel region per epoch
# Index of the "tasks done" counter in ``ws.sync``; block b's claim slot is at
# SYNC_STRIDE * (b + 1).  Each on its own cache line (64 bytes).
SYNC_DONE = 0
# Tasks that raised (only possible in a debugging build: NUMBA_BOUNDSCHECK=1 turns
# an out-of-bounds access into IndexError; see ``_task_raised``).
SYNC_FAILED = 1
SYNC_STRIDE = 8
# A waiting thread spins this many times (``pause``, ~10-40 ns each) before it
# starts yielding its core: long past a normal hand-over (~0.1 us), short of a
# scheduler tick, so a thread that shares a core with the one it waits for (more
# runnable threads than cores) lets it run.
PATIENT_SPINS = 1 << 14


@kernel(inline="always")
def _step_blocks(config, size):
    """How many blocks a minibatch of ``size`` rows is split into (a short last
    minibatch may get fewer than ``config[N_BLOCKS]``, or one)."""
    return max(1, min(config[N_BLOCKS], size // max(MIN_BLOCK_ROWS, ALIGN)))


@kernel(inline="always")
def _adam_lr(config, coefs, step, lr):
    """Adam's bias-corrected step size at optimizer step ``step`` (scikit-learn's
    formula); ``lr`` for the other optimizers."""
    if config[OPTIMIZER] == ADAM:
        return lr * math.sqrt(1.0 - coefs[BETA2] ** step) / (1.0 - coefs[BETA1] ** step)
    return lr


@kernel
def _run_task(
    data, model, ws, config, coefs, batch, use_perm, lr, step0, alpha, want_sumsq, task, block
):
    """Task ``task`` (minibatch ``task // 2``, phase ``task % 2``) for ``block``:
    :func:`block_phase` with the minibatch's own scalars; its results go to the
    minibatch's row of ``ws.partials``.  Returns False: it did not raise (see
    ``_task_raised``)."""
    s = task // 2
    start = s * batch
    size = min(batch, data.X.shape[0] - start)
    n_blocks = _step_blocks(config, size)
    if block >= n_blocks:
        return False
    use_weights, wsum, delta_scale, l2 = _step_setup(
        data, ws, config, coefs, start, size, use_perm, alpha
    )
    row = 2 * config[N_BLOCKS]
    step_ws = Workspace(
        ws.acts,
        ws.deltas,
        ws.xbuf,
        ws.xT,
        ws.ybuf,
        ws.wbuf,
        ws.perm,
        ws.partials[s * row : (s + 1) * row],
        ws.block_grads,
        ws.sync,
    )
    block_phase(
        task % 2,
        config[STRATEGY],
        block,
        n_blocks,
        data,
        model,
        step_ws,
        start,
        size,
        use_perm,
        config[LOSS_KIND],
        delta_scale,
        use_weights,
        config[OPTIMIZER],
        coefs,
        _adam_lr(config, coefs, step0 + s + 1, lr),
        l2,
        want_sumsq,
    )
    return False


if numba.config.BOUNDSCHECK:
    # A debugging build (NUMBA_BOUNDSCHECK=1: an out-of-bounds access raises
    # IndexError).  A task that raised must still be counted done, or the threads
    # waiting for it would wait forever.  Only here: a try block around the task
    # made threaded fits 2-3x slower (synthetic-adam 340-520 against 135-300 ms).
    @kernel
    def _task_raised(
        data, model, ws, config, coefs, batch, use_perm, lr, step0, alpha, want_sumsq, task, block
    ):
        try:
            return _run_task(
                data,
                model,
                ws,
                config,
                coefs,
                batch,
                use_perm,
                lr,
                step0,
                alpha,
                want_sumsq,
                task,
                block,
            )
        except Exception:
            return True

else:
    # In a normal build nothing in a task can raise.
    _task_raised = _run_task


@kernel
def _crew_member(
    thread, data, model, ws, config, coefs, batch, n_steps, use_perm, lr, step0, alpha, want_sumsq
):
    """One thread's share of :func:`run_steps_parallel`: claim tasks in order, wait
    until the previous phase is done, run, count done.  Which thread runs a block
    does not change its result."""
    n_blocks = config[N_BLOCKS]
    sync = ws.sync
    task = 0
    while task < 2 * n_steps:
        block = -1
        # Its own block first (keeps a block's slab in one core's cache), then any.
        for i in range(n_blocks):
            candidate = (thread + i) % n_blocks
            if compare_and_swap(sync, SYNC_STRIDE * (candidate + 1), task - 1, task):
                block = candidate
                break
        if block < 0:
            task += 1  # every block of this phase is claimed
            continue
        ready = task * n_blocks
        spins = 0
        while atomic_load(sync, SYNC_DONE) < ready:
            spins += 1
            if spins < PATIENT_SPINS:
                spin_pause()
            else:
                yield_cpu()
        if _task_raised(
            data,
            model,
            ws,
            config,
            coefs,
            batch,
            use_perm,
            lr,
            step0,
            alpha,
            want_sumsq,
            task,
            block,
        ):
            atomic_add(sync, SYNC_FAILED, 1)
        atomic_add(sync, SYNC_DONE, 1)


@parallel_kernel
def run_steps_parallel(
    data, model, ws, config, coefs, batch, n_steps, use_perm, lr, step0, alpha, want_sumsq
):
    """Minibatches 0 .. n_steps-1 (``batch`` rows each, the last may be shorter),
    both phases of each split into ``config[N_BLOCKS]`` blocks, in **one** parallel
    region: threads hand over between phases through atomic counters (~0.1 us)
    instead of a fork/join per phase (1-2.5 us each, and a late thread at every
    join).  Minibatch s's per-block loss and sum(W^2) go to row s of
    ``ws.partials`` (see :func:`block_phase`).

    Tasks are (phase, block) pairs in phase order; a thread claims one (compare-
    and-swap on the block's slot, which holds the last phase claimed), waits until
    every task of the earlier phases is done, runs it and counts it done.  A thread
    only ever waits for tasks claimed before its own, by threads that are running
    them, so this cannot deadlock, whatever the threading layer does: if one
    thread runs every iteration of the prange in turn, the first runs all tasks.
    """
    sync = ws.sync
    sync[SYNC_DONE] = 0
    sync[SYNC_FAILED] = 0
    for b in range(config[N_BLOCKS]):
        sync[SYNC_STRIDE * (b + 1)] = -1
    for t in prange(config[N_BLOCKS]):
        _crew_member(
            np.int64(t),  # (one compiled version: prange indices are unsigned)
            data,
            model,
            ws,
            config,
            coefs,
            batch,
            n_steps,
            use_perm,
            lr,
            step0,
            alpha,
            want_sumsq,
        )
    if sync[SYNC_FAILED] != 0:
        raise IndexError("a threaded training task raised (out of bounds?); the model is damaged")


@kernel(inline="always")
def _step_results(config, ws, s, size):
    """Minibatch s's (sum_i w_i l_i, sum W^2) from its row of ``ws.partials``."""
    n_blocks = _step_blocks(config, size)
    row = s * 2 * config[N_BLOCKS]
    loss = 0.0
    sumsq = 0.0
    for b in range(n_blocks):
        loss += ws.partials[row + b]
        sumsq += ws.partials[row + n_blocks + b]
    return loss, sumsq


@kernel(inline="always")
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


@kernel(inline="always")
def _epoch_start(model, ws, config, coefs, counters, use_perm):
    """Snapshot for divergence, shuffle, learning rate of the epoch."""
    snapshot(model, False)
    if use_perm:
        epoch_permutation(ws.perm, config[SEED], counters[EPOCH])
    lr = coefs[LR]
    if config[SCHEDULE] == INVSCALING and counters[SAMPLES] > 0:
        lr = coefs[LR] / (counters[SAMPLES] + 1.0) ** coefs[POWER_T]
    return lr


@kernel(inline="always")
def _epoch_sumsq(model, want_sumsq):
    """sum(W^2) at the start of an epoch, for its first minibatch's L2 loss term (the
    next ones get it from the update).  Summed afresh every epoch, not carried over
    from the previous epoch's update, so that the loss of an epoch does not depend
    on which call ran it: a run split into calls differently (the estimators' chunks
    of epochs, Network.fit's calls of ~TARGET_CALL_SECONDS) reports the same losses
    to the last bit (carried over, they differed by an ulp where a call began)."""
    return weights_sumsq(model.params, model.layout) if want_sumsq else 0.0


@kernel(inline="always")
def _step_lr(config, coefs, counters, lr):
    """Count the step; adam's bias-corrected step size (scikit-learn's formula)."""
    counters[STEP] += 1
    return _adam_lr(config, coefs, counters[STEP], lr)


@kernel(inline="always")
def _epoch_end(model, counters, epoch_losses, e, totals, finite, step0, samples0):
    """Record the epoch, or restore the snapshot when it diverged.  Returns OK/DIVERGED."""
    if not finite or not all_finite(model.params):
        snapshot(model, True)
        counters[STEP], counters[SAMPLES] = step0, samples0
        return DIVERGED
    epoch_losses[e] = totals[0] / totals[1]
    counters[EPOCH] += 1
    return OK


@kernel(inline="always")
def epoch_loop(data, model, ws, config, coefs, counters, epoch_losses, step, step_arg):
    """Run ``config[N_EPOCHS]`` epochs of minibatch training in the calling thread,
    one ``step`` per minibatch: ``step`` takes :func:`minibatch_step`'s arguments and
    ``step_arg``, and returns (sum_i w_i l_i, sum_i w_i, sum W^2).  Written once for
    :func:`train_epochs` and :func:`train_epochs_unrolled`.

    ``counters`` (epoch, optimizer step, samples seen) continue from their values
    and are updated in place, so consecutive calls continue one run.  Each
    epoch's mean loss goes to ``epoch_losses``.  Returns (epochs completed, status).
    """
    n = data.X.shape[0]
    batch = config[BATCH_SIZE]
    use_perm = config[SHUFFLE] != 0 and n > batch
    alpha = coefs[L2_COEF]
    want_sumsq = alpha > 0
    totals = np.zeros(2)
    for e in range(config[N_EPOCHS]):
        step0, samples0 = counters[STEP], counters[SAMPLES]
        lr = _epoch_start(model, ws, config, coefs, counters, use_perm)
        w_sumsq = _epoch_sumsq(model, want_sumsq)
        totals[:] = 0.0
        finite = True
        for start in range(0, n, batch):
            size = min(batch, n - start)
            step_lr = _step_lr(config, coefs, counters, lr)
            loss, wsum, new_sumsq = step(
                data,
                model,
                ws,
                config,
                coefs,
                start,
                size,
                use_perm,
                step_lr,
                alpha,
                want_sumsq,
                step_arg,
            )
            finite = _accumulate(totals, config, coefs, counters, loss, wsum, w_sumsq, size)
            w_sumsq = new_sumsq
            if not finite:
                break
        if (
            _epoch_end(model, counters, epoch_losses, e, totals, finite, step0, samples0)
            == DIVERGED
        ):
            return e, DIVERGED
    return config[N_EPOCHS], OK


# The training loops below differ only in the minibatch step they call: in the
# calling thread (general or unrolled kernels) or split across threads.  They are
# separate kernels (not one with a flag) so that a serial fit never compiles the
# parallel region (about 6 s of a cold compile, see asv ColdStart), and a small
# network's fit never compiles the general layer kernels.
@kernel
def train_epochs(data, model, ws, config, coefs, counters, epoch_losses):
    """:func:`epoch_loop` with :func:`minibatch_step`."""
    return epoch_loop(data, model, ws, config, coefs, counters, epoch_losses, _general_step, 0)


@kernel(inline="always")
def _general_step(data, model, ws, config, coefs, start, size, use_perm, lr, alpha, want_sumsq, _):
    return minibatch_step(
        data, model, ws, config, coefs, start, size, use_perm, lr, alpha, want_sumsq
    )


@kernel(inline="always")
def _unrolled_step(
    data, model, ws, config, coefs, start, size, use_perm, lr, alpha, want_sumsq, addresses
):
    """The unrolled kernel's step: its rows contiguous (gathered when shuffled), the
    gradient, then the optimizer over the whole flat buffer."""
    use_weights, wsum, delta_scale, l2 = _step_setup(
        data, ws, config, coefs, start, size, use_perm, alpha
    )
    xs, x_off, ys, y_off, wsrc, w_off = minibatch_rows(
        data, ws, start, 0, size, use_perm, use_weights
    )
    gradient = function_at(addresses[0], addresses[1], model.params)
    loss = gradient(
        model.params, model.grads, xs, x_off, ys, y_off, wsrc, w_off, size, delta_scale, ws.acts
    )
    sumsq = update_share(model, 0, model.params.shape[0], config[OPTIMIZER], coefs, lr, l2)
    return loss, wsum, sumsq if want_sumsq else 0.0


@kernel
def train_epochs_unrolled(data, model, ws, config, coefs, counters, epoch_losses, addresses):
    """:func:`train_epochs` for a small network whose minibatch gradient is the
    unrolled kernel at ``addresses`` (``unrolled.KernelPointer``): compiled once
    per dtype, whatever the architecture."""
    if addresses[2] != model.params.itemsize:
        raise TypeError("an unrolled kernel compiled for another dtype than the network's")
    return epoch_loop(
        data, model, ws, config, coefs, counters, epoch_losses, _unrolled_step, addresses
    )


@kernel
def train_epochs_parallel(data, model, ws, config, coefs, counters, epoch_losses):
    """:func:`train_epochs` with each minibatch split across ``config[N_BLOCKS]``
    threads, one parallel region per epoch (:func:`run_steps_parallel`); the losses
    are then added up in minibatch order, as the serial loop does."""
    n = data.X.shape[0]
    batch = config[BATCH_SIZE]
    use_perm = config[SHUFFLE] != 0 and n > batch
    alpha = coefs[L2_COEF]
    want_sumsq = alpha > 0
    n_steps = (n + batch - 1) // batch
    totals = np.zeros(2)
    for e in range(config[N_EPOCHS]):
        step0, samples0 = counters[STEP], counters[SAMPLES]
        lr = _epoch_start(model, ws, config, coefs, counters, use_perm)
        w_sumsq = _epoch_sumsq(model, want_sumsq)
        run_steps_parallel(
            data, model, ws, config, coefs, batch, n_steps, use_perm, lr, step0, alpha, want_sumsq
        )
        totals[:] = 0.0
        finite = True
        for s in range(n_steps):
            start = s * batch
            size = min(batch, n - start)
            loss, new_sumsq = _step_results(config, ws, s, size)
            wsum = batch_weight(data, ws, config[USE_WEIGHTS] != 0, use_perm, start, size)
            counters[STEP] += 1
            finite = _accumulate(totals, config, coefs, counters, loss, wsum, w_sumsq, size)
            w_sumsq = new_sumsq
            if not finite:
                break
        if (
            _epoch_end(model, counters, epoch_losses, e, totals, finite, step0, samples0)
            == DIVERGED
        ):
            return e, DIVERGED
    return config[N_EPOCHS], OK


@kernel(inline="always")
def _accumulate(totals, config, coefs, counters, loss, wsum, w_sumsq, size):
    """Add a minibatch's loss (data term + L2 term) to the epoch totals; False if
    it is not finite.  Batches are weighted by their sample weight (the epoch's
    weighted mean loss), or by their row count (``AVERAGE_BY_SIZE``: scikit-learn's
    ``loss_curve_``); the two agree without sample weights."""
    batch_loss = coefs[LOSS_SCALE] * loss / wsum + 0.5 * coefs[L2_COEF] * w_sumsq / wsum
    if not math.isfinite(batch_loss):
        return False
    weight = float(size) if config[AVERAGE_BY_SIZE] != 0 else wsum
    totals[0] += batch_loss * weight
    totals[1] += weight
    counters[SAMPLES] += size
    return True


@kernel
def gradient_pass(data, model, ws, config, coefs):
    """The gradient of the mean loss over all of ``data`` into ``model.grads``
    (nothing else changes), in the calling thread.  Returns (sum w_i l_i, sum w_i)."""
    loss, wsum, _ = minibatch_step(
        data, model, ws, config, coefs, 0, data.X.shape[0], False, 0.0, 0.0, False
    )
    return loss, wsum


@kernel
def gradient_pass_parallel(data, model, ws, config, coefs):
    """:func:`gradient_pass` split across ``config[N_BLOCKS]`` threads."""
    n = data.X.shape[0]
    run_steps_parallel(data, model, ws, config, coefs, n, 1, False, 0.0, 0, 0.0, False)
    loss, _ = _step_results(config, ws, 0, n)
    return loss, batch_weight(data, ws, config[USE_WEIGHTS] != 0, False, 0, n)


__all__ = [
    "Data",
    "Model",
    "Workspace",
    "train_epochs",
    "train_epochs_parallel",
    "train_epochs_unrolled",
    "gradient_pass",
    "gradient_pass_parallel",
]
