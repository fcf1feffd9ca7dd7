"""``Network``: owns the flat parameter buffer and calls the compiled kernels."""

from __future__ import annotations

import time
import warnings
from collections import namedtuple

import numpy as np

from . import _threads
from ._kernels import optimizers as _opt
from ._kernels import train as _train
from ._kernels import unrolled as _unrolled
from ._kernels.activations import (
    ACTIVATIONS,
    CANONICAL_NAMES,
    HIDDEN_ACTIVATIONS,
    SOFTMAX,
    output_activation_rows,
)
from ._kernels.activations import EXP as _EXP
from ._kernels.dense import narrow
from ._kernels.losses import KIND_ACTIVATION, LOSSES, output_loss_and_delta
from ._kernels.optimizers import OPTIMIZERS, STATE_ROWS
from ._kernels.predict import forward_rows
from ._layout import Layout
from ._validation import (
    check_choice,
    check_positive_float,
    check_positive_int,
    check_sample_weight,
    check_seed,
    check_targets,
    check_X,
    writable_alias,
)

Gradients = namedtuple("Gradients", "flat coefs intercepts")
Gradients.__doc__ = """Gradients of the mean loss: the flat buffer and per-layer views into it."""

# Rows per chunk of the inference pass: a block of every layer stays in cache.
PREDICT_CHUNK = 256
# A kernel call should take about this long, so Ctrl-C and progress reports are
# handled promptly while per-call overhead stays negligible.
TARGET_CALL_SECONDS = 0.2
# When to split a minibatch across threads: a cost model for one step (see
# ``_parallel_plan``), fitted to fits measured on 2 cores (Zen 4, float64, medians
# of 7 interleaved 1- and 2-thread epochs, one parallel region per epoch):
#   [2,16,16,1] x 32 sgd     0.06 MFLOP   3.4 -> 4.5 us/step (0.75x, stays serial)
#   [20,32,1] x 64 adam      0.26 MFLOP  10.2 -> 8.4 us      (1.21x)
#   [2,64,64,1] x 32 sgd     0.82 MFLOP  22.9 -> 22.0 us     (1.04x: 4.4k parameters)
#   [20,32,1] x 200 adam     0.81 MFLOP  27.6 -> 18.1 us     (1.52x: 0.7k parameters)
#   [20,100,1] x 200 adam    2.52 MFLOP  75.7 -> 48.1 us     (1.57x)
#   [64,100,10] x 200 adam   8.88 MFLOP   241 -> 123 us      (1.96x)
# With n blocks, (n-1)/n of the serial time is saved; each step pays a fixed
# hand-over cost and a cost for every value that one core wrote and another then
# reads: ~1 ns each for the first ~16k (latency-bound: the moons network's 8.8k
# cost ~9 us a step), ~0.25-0.5 ns beyond (streamed: [64,256,64,3] x 64 moves 67k
# for ~32 us; the wide network's 0.7M did not show beside a 4.4 ms step).
SERIAL_FLOP_RATE = 36e9
CROSSING_SECONDS_PER_VALUE = 1e-9
STREAMED_SECONDS_PER_VALUE = 0.25e-9
LATENCY_BOUND_VALUES = 16_384
CREW_STEP_SECONDS = 2e-6
# The split is taken only when it saves this many times what it costs: this machine
# kind's second vCPU is often busy on the host, which a serial step never notices.
# The moons step (1.04x in isolation) took 86 ms an epoch split against 73 serial
# in the peer comparison; [20,32,1] x 64 (1.21x) is the other case the margin drops.
SPLIT_MARGIN = 2.0
# A fit's workspace up to this size (or the parameters' size) is kept for the next
# fit of the same sizes (``Network._reused_workspace``).
_KEEP_WORKSPACE_BYTES = 1 << 20

_RELU_FAMILY = {"relu", "leaky_relu", "elu", "softplus"}


def _cache_aligned(size: int, dtype) -> np.ndarray:
    """An empty 1-D array whose data starts on a 64-byte boundary (a cache line), so
    blocks of whole cache lines written by different threads never share one."""
    itemsize = np.dtype(dtype).itemsize
    raw = np.empty(size + 64 // itemsize, dtype=dtype)
    skip = (-raw.ctypes.data % 64) // itemsize
    return raw[skip : skip + size]


class _FitPlan:
    """One fit's validated data, buffers and kernel arguments (see ``Network._plan_fit``)."""

    __slots__ = (
        "data",
        "model",
        "ws",
        "config",
        "coefs",
        "threads",
        "train",
        "hyper",
        "n_samples",
        "uses_blas",
        "parallel",
        "interrupted",
    )

    def __init__(self, data, model, ws, config, coefs, threads, train, hyper, n_samples):
        self.data, self.model, self.ws = data, model, ws
        self.config, self.coefs, self.threads, self.train = config, coefs, threads, train
        self.hyper, self.n_samples = hyper, n_samples
        self.uses_blas = True  # whether its kernels call BLAS (then capped while they run)
        self.parallel = False  # whether they run a parallel region (split minibatches)
        self.interrupted = False  # whether Ctrl-C stopped its last _run_epochs

    def set_lr(self, lr: float) -> None:
        """The learning rate of the next epochs (the estimators' adaptive schedule)."""
        lr = check_positive_float(lr, "lr")
        self.hyper["lr"] = lr
        self.coefs[_opt.LR] = lr


class _LossAndGradients:
    """``Network._loss_and_gradients``: ``evaluate()`` runs the gradient kernel on
    the prepared data and returns the mean loss; ``threads()`` is the kernels'
    thread context, for a caller to hold across many evaluations."""

    def __init__(self, kernel, args, threads, parallel):
        self._kernel, self._args = kernel, args
        self._threads, self._parallel = threads, parallel
        self._loss_scale = float(args[-1][_train.LOSS_SCALE])

    def threads(self):
        return _threads.kernel_threads(self._threads, parallel=self._parallel)

    def __call__(self) -> float:
        with self.threads():
            total, weight = self._kernel(*self._args)
        return self._loss_scale * total / weight


class DivergenceError(FloatingPointError):
    """Training produced a NaN or infinite loss or parameter."""


class DivergenceWarning(RuntimeWarning):
    """Training diverged and was stopped (``on_divergence='warn'``)."""


def _check_dtype(dtype) -> np.dtype:
    try:
        dt = np.dtype(dtype)
    except TypeError:
        raise TypeError(f"dtype must be 'float32' or 'float64', got {dtype!r}") from None
    if dt not in (np.float32, np.float64):
        raise ValueError(f"dtype must be 'float32' or 'float64', got {dt}")
    return dt


def _output_kind_check(loss: str, activations: tuple[str, ...]) -> None:
    out = ACTIVATIONS[activations[-1]]
    required = KIND_ACTIVATION[LOSSES[loss].kind]
    if required is not None and out != required:
        raise ValueError(
            f"loss {loss!r} needs a {CANONICAL_NAMES[required]!r} output layer (they are "
            f"fused for numerical stability); the last activation is {activations[-1]!r}"
        )
    if required is None and out in (SOFTMAX, _EXP):
        raise ValueError(
            f"a {activations[-1]!r} output layer needs the "
            f"{'categorical_crossentropy' if out == SOFTMAX else 'poisson'} loss, "
            f"not {loss!r}"
        )


class Network:
    """A multilayer perceptron trained by compiled kernels.

    Parameters
    ----------
    layer_sizes : sequence of int
        Widths from input to output, e.g. ``[2, 4, 3, 1]``.
    activations : sequence of str, or str
        One activation per layer after the input: ``identity``, ``relu``,
        ``leaky_relu`` (slope 0.01), ``sigmoid`` (alias ``logistic``), ``tanh``,
        ``elu``, ``softplus``; ``softmax`` (output only, with categorical
        cross-entropy) and ``exp`` (output only, with poisson).  A single string
        applies to every layer.
    loss : str
        ``mse`` (mean over all elements of (y - yhat)^2), ``binary_crossentropy``
        (mean over all elements; sigmoid output), ``categorical_crossentropy``
        (mean over samples of -sum y log p; softmax output; y one-hot or integer
        labels), ``poisson`` (exp output).
    dtype : {'float32', 'float64'}
    seed : int or None
        Seeds the initialisation (He normal for ReLU-like layers, Glorot uniform
        otherwise; zero biases) and, unless ``fit`` gets its own, the shuffles.
    n_threads : int or None
        Threads a call may use; None or -1 for all (``NUMBA_NUM_THREADS``).

    Attributes
    ----------
    params : ndarray
        The flat parameter buffer; ``coefs[k]`` (n_in, n_out) and
        ``intercepts[k]`` (n_out,) are views into it.
    history : list of float
        Mean training loss of every epoch trained so far.
    """

    def __init__(self, layer_sizes, activations, loss, dtype="float32", seed=None, n_threads=None):
        sizes = self._check_sizes(layer_sizes)
        n_layers = len(sizes) - 1
        if isinstance(activations, str):
            activations = [activations] * n_layers
        activations = tuple(activations) if not isinstance(activations, tuple) else activations
        if len(activations) != n_layers:
            raise ValueError(
                f"{n_layers} layers need {n_layers} activations, got {len(activations)}"
            )
        for k, name in enumerate(activations):
            check_choice(name, f"activation (layer {k + 1})", ACTIVATIONS)
            if k < n_layers - 1 and name not in HIDDEN_ACTIVATIONS:
                raise ValueError(
                    f"{name!r} can only be the output activation (layer "
                    f"{k + 1} of {n_layers} is hidden)"
                )
        check_choice(loss, "loss", LOSSES)
        _output_kind_check(loss, activations)
        if seed is not None:
            seed = check_seed(seed)

        self.layer_sizes = sizes
        self.activations = activations
        self.loss_name = loss
        self.dtype = _check_dtype(dtype)
        self.seed = seed
        self.n_threads = n_threads
        self._layout = Layout(sizes, tuple(ACTIVATIONS[a] for a in activations))
        self._spec = LOSSES[loss]
        self.params = np.zeros(self._layout.n_params, dtype=self.dtype)
        self._grads = np.zeros(self._layout.n_params, dtype=self.dtype)
        self._state = np.zeros((0, self._layout.n_params), dtype=self.dtype)
        self._optimizer = None
        self._counters = np.zeros(_train.N_COUNTERS, dtype=np.int64)
        self._shuffle_seed = None
        self._loss_average_by_size = False
        self._fit_workspace = None  # (sizes, workspace, layout table) of the last fit
        self._training = False  # inside _run_epochs
        self.history: list[float] = []
        self._bind_views()
        self.initialize(seed)

    # ------------------------------------------------------------------ set-up
    @staticmethod
    def _check_sizes(layer_sizes) -> tuple[int, ...]:
        if isinstance(layer_sizes, (str, bytes)) or not hasattr(layer_sizes, "__len__"):
            raise TypeError("layer_sizes must be a sequence of ints such as [2, 4, 3, 1]")
        if len(layer_sizes) < 2:
            raise ValueError("layer_sizes needs at least an input and an output size, e.g. [2, 1]")
        return tuple(check_positive_int(s, f"layer_sizes[{i}]") for i, s in enumerate(layer_sizes))

    def _bind_views(self):
        self.coefs = self._layout.weight_views(self.params)
        self.intercepts = self._layout.bias_views(self.params)

    def initialize(self, seed=None):
        """(Re)draw the weights: He normal after ReLU-like layers, Glorot uniform
        otherwise; biases zero.  Resets optimizer state and the training position."""
        rng = np.random.default_rng(seed)
        for k, (w, b) in enumerate(zip(self.coefs, self.intercepts, strict=True)):
            n_in, n_out = w.shape
            if self.activations[k] in _RELU_FAMILY:
                w[...] = rng.standard_normal((n_in, n_out)) * np.sqrt(2.0 / n_in)
            else:
                limit = np.sqrt(6.0 / (n_in + n_out))
                w[...] = rng.uniform(-limit, limit, (n_in, n_out))
            b[...] = 0
        self._state = np.zeros((0, self._layout.n_params), dtype=self.dtype)
        self._optimizer = None
        self._counters[:] = 0
        self.history = []

    @property
    def n_threads(self) -> int:
        """Threads the kernels use (1..NUMBA_NUM_THREADS)."""
        return self._n_threads

    @n_threads.setter
    def n_threads(self, value):
        self._n_threads = _threads.check_n_threads(value)

    @property
    def n_outputs(self) -> int:
        return self.layer_sizes[-1]

    @property
    def epochs_trained(self) -> int:
        return int(self._counters[_train.EPOCH])

    def __repr__(self):
        return (
            f"Network({list(self.layer_sizes)}, {list(self.activations)}, "
            f"{self.loss_name!r}, dtype={self.dtype.name!r})"
        )

    # --------------------------------------------------------------- inference
    def _forward(self, X, activate_output: bool) -> np.ndarray:
        n = X.shape[0]
        threads = _threads.usable_threads(self._n_threads)
        n_blocks = max(1, min(threads, n // PREDICT_CHUNK))
        chunk = min(PREDICT_CHUNK, n)
        table = self._layout.table(chunk)
        acts = np.empty((n_blocks, chunk * self._layout.act_width), dtype=self.dtype)
        xT = np.empty(
            (n_blocks, chunk * X.shape[1] if self._first_narrow() else 0), dtype=self.dtype
        )
        out = np.empty((n, self.n_outputs), dtype=self.dtype)
        # (parallel even for one block: the first call of the parallel kernel may
        # start the thread's team; the cap must then know it exists)
        with _threads.kernel_threads(threads, parallel=threads > 1):
            forward_rows(
                writable_alias(X).reshape(-1),
                self.params,
                table,
                acts,
                xT,
                out.reshape(-1),
                chunk,
                activate_output,
            )
        return out

    def _first_narrow(self) -> bool:
        # The kernel's own rule, evaluated in Python: calling the compiled ``narrow``
        # from Python would load it from the cache, an extra load in every process.
        rule = getattr(narrow, "py_func", narrow)  # (a plain function under NUMBA_DISABLE_JIT)
        return bool(rule(self.layer_sizes[0], self.layer_sizes[1]))

    def forward(self, X) -> np.ndarray:
        """The network's output (after the output activation) for each row of X."""
        X = check_X(X, self.layer_sizes[0], self.dtype)
        return self._forward(X, True)

    predict = forward

    def loss(self, X, y, sample_weight=None) -> float:
        """The mean loss over (X, y), in this network's loss convention."""
        X, Y, w = self._check_data(X, y, sample_weight)
        return self._loss_of_logits(self._forward(X, False), Y, w)

    def _outputs_and_loss(self, X, Y, w) -> tuple[np.ndarray, float]:
        """(:meth:`forward`, :meth:`loss`) of data :meth:`_check_data` has already
        checked, from one forward pass (the estimators' validation set, every
        epoch: twice the forward pass and the checks otherwise)."""
        outputs = self._forward(X, False)
        loss = self._loss_of_logits(outputs, Y, w)
        n, m = outputs.shape
        output_activation_rows(outputs.reshape(-1), 0, 0, n, m, self._layout.codes[-1])
        return outputs, loss

    def _loss_of_logits(self, logits, Y, w) -> float:
        use_w = w is not None
        weights = w if use_w else np.empty(0, self.dtype)
        scratch = np.empty(logits.size, dtype=self.dtype)
        total = output_loss_and_delta(
            logits.reshape(-1),
            0,
            Y.reshape(-1),
            0,
            weights,
            0,
            use_w,
            0,
            logits.shape[0],
            self.n_outputs,
            self._spec.kind,
            self._layout.codes[-1],
            0.0,
            scratch,
            0,
        )
        loss_scale, _ = self._spec.scales(self.n_outputs)
        return loss_scale * total / (float(w.sum()) if use_w else logits.shape[0])

    # ------------------------------------------------------------------ training
    def _check_data(self, X, y, sample_weight):
        X = check_X(X, self.layer_sizes[0], self.dtype)
        Y = check_targets(y, self.loss_name, self.n_outputs, X.shape[0], self.dtype)
        w = check_sample_weight(sample_weight, X.shape[0], self.dtype)
        return X, Y, w

    def _data(self, X, Y, w):
        weights = w if w is not None else np.empty(0, self.dtype)
        X = writable_alias(X)  # a read-only X (memmap mode 'r') is used in place
        return _train.Data(X, Y, weights, X.reshape(-1), Y.reshape(-1))

    @staticmethod
    def _padded(rows: int) -> int:
        """Workspace row length: ``rows`` rounded up to whole cache lines (see
        ``_kernels.train.ALIGN``) so that threads never share one."""
        return -(-rows // _train.ALIGN) * _train.ALIGN

    def _workspace(
        self, batch: int, gather: bool, blocks: int, strategy: int, steps: int = 1, unrolled=False
    ):
        """Buffers for minibatches of up to ``batch`` rows split into ``blocks`` (see
        ``_kernels.train``), ``steps`` minibatches an epoch; ``gather``: rows are
        gathered (shuffled); ``unrolled``: the fit runs on the unrolled kernel, whose
        scratch is ``acts``.  Returns (workspace, layout table)."""
        d, m = self.layer_sizes[0], self.n_outputs
        dt = self.dtype
        slabs = 1
        capacity = self._padded(batch)
        if blocks > 1 and strategy == _train.GRADIENT_SUM:
            slabs = blocks
            capacity = self._slab_rows(batch, blocks)
        rows = slabs * capacity
        act_size = rows * self._layout.act_width
        if unrolled:
            # the unrolled kernel's scratch: whole chunks, however short the minibatch
            act_size = max(act_size, _unrolled.scratch_size(self._layout.sizes))
        ws = _train.Workspace(
            acts=_cache_aligned(act_size, dt),
            deltas=_cache_aligned(rows * self._layout.act_width, dt),
            xbuf=_cache_aligned(rows * d if gather else 0, dt),
            xT=_cache_aligned(rows * d if self._first_narrow() else 0, dt),
            ybuf=_cache_aligned(rows * m if gather else 0, dt),
            wbuf=np.ones(rows, dtype=dt),
            perm=np.empty(0, dtype=np.int64),
            # one row of per-block results for each minibatch of an epoch
            partials=np.zeros(steps * 2 * max(blocks, 1), dtype=np.float64),
            block_grads=np.zeros((slabs if slabs > 1 else 0, self._layout.n_params), dtype=dt),
            sync=_cache_aligned(_train.SYNC_STRIDE * (max(blocks, 1) + 1), np.dtype(np.int64)),
        )
        return ws, self._layout.table(capacity)

    @classmethod
    def _slab_rows(cls, batch: int, blocks: int) -> int:
        """Rows of one GRADIENT_SUM slab: the longest block any minibatch of up to
        ``batch`` rows is cut into.  With ``n`` blocks, edges are multiples of ALIGN
        (``_train._block_edge``), so a block is at most ceil(size / n) + ALIGN rows; a
        short last minibatch gets fewer blocks (``size // ALIGN``, at least 2), each at
        most 3 ALIGN rows, or runs as one block in the first slab (under 2 ALIGN rows).
        ``tests/test_reliability.py`` checks the bound against the kernel's edges."""
        align = _train.ALIGN
        return cls._padded(max(-(-batch // blocks) + align, 3 * align))

    def _parallel_plan(self, batch: int, threads: int) -> tuple[int, int]:
        """(blocks, strategy) for minibatches of ``batch`` rows on ``threads`` threads.

        Each step, GRADIENT_SUM moves the parameters and the block gradients between
        cores (2 n_params values), ROW_SPLIT the parameters and the minibatch's
        activations and deltas (n_params + 2 batch act_width): the smaller wins.  The
        split is taken when the time it saves is more than SPLIT_MARGIN times what the
        moving and the hand-over cost (constants above)."""
        layout = self._layout
        # (the kernel's own split: at least max(MIN_BLOCK_ROWS, ALIGN) rows a block)
        blocks = max(1, min(threads, batch // max(_train.MIN_BLOCK_ROWS, _train.ALIGN)))
        if blocks <= 1:
            return 1, _train.ROW_SPLIT
        gradient_sum = 2 * layout.n_params
        row_split = layout.n_params + 2 * batch * layout.act_width
        strategy = _train.GRADIENT_SUM if gradient_sum <= row_split else _train.ROW_SPLIT
        serial = 6 * batch * layout.n_weights / SERIAL_FLOP_RATE
        saved = serial * (1 - 1 / blocks)
        moved = min(gradient_sum, row_split)
        cost = (
            CREW_STEP_SECONDS
            + CROSSING_SECONDS_PER_VALUE * min(moved, LATENCY_BOUND_VALUES)
            + STREAMED_SECONDS_PER_VALUE * max(0, moved - LATENCY_BOUND_VALUES)
        )
        if saved <= SPLIT_MARGIN * cost:
            return 1, _train.ROW_SPLIT
        return blocks, strategy

    def gradients(self, X, y, sample_weight=None) -> Gradients:
        """Gradients of :meth:`loss` over the whole of (X, y) at the current parameters.

        Returns the flat gradient buffer (same layout as ``params``) with per-layer
        views; :meth:`update` applies it.
        """
        self._loss_and_gradients(X, y, sample_weight)()
        flat = self._grads
        return Gradients(flat, self._layout.weight_views(flat), self._layout.bias_views(flat))

    def _loss_and_gradients(self, X, y, sample_weight=None) -> _LossAndGradients:
        """Validate (X, y) and allocate once; return a callable that computes the
        gradient of the mean loss over (X, y) at the current parameters into the
        flat gradient buffer and returns that loss (:meth:`loss`'s value, from the
        same forward pass).  For optimizers that want both at many points (the
        estimators' lbfgs): :meth:`loss` then :meth:`gradients` would run two forward
        passes and validate and allocate twice a point."""
        X, Y, w = self._check_data(X, y, sample_weight)
        n = X.shape[0]
        threads = _threads.usable_threads(self._n_threads)
        blocks, strategy = self._parallel_plan(n, threads)
        ws, table = self._workspace(n, False, blocks, strategy)
        model = _train.Model(
            self.params, self._grads, self._state[:0], np.empty((1, 0), self.dtype), table
        )
        config, coefs = self._config(
            n,
            blocks,
            strategy=strategy,
            shuffle=False,
            seed=0,
            optimizer=_opt.GRADIENT_ONLY,
            use_weights=w is not None,
            hyper={},
        )
        return _LossAndGradients(
            _train.gradient_pass_parallel if blocks > 1 else _train.gradient_pass,
            (self._data(X, Y, w), model, ws, config, coefs),
            threads,
            blocks > 1,
        )

    def update(self, lr) -> None:
        """One plain gradient-descent step with the last :meth:`gradients`: p -= lr g."""
        lr = check_positive_float(lr, "lr")
        self.params -= self.dtype.type(lr) * self._grads

    def _config(self, batch, blocks, *, strategy, shuffle, seed, optimizer, use_weights, hyper):
        """The kernels' int64 ``config`` and float64 ``coefs`` arrays.  ``optimizer`` is a
        name from OPTIMIZERS or a code (GRADIENT_ONLY)."""
        config = np.zeros(_train.N_CONFIG, dtype=np.int64)
        config[_train.BATCH_SIZE] = batch
        config[_train.N_BLOCKS] = blocks
        config[_train.STRATEGY] = strategy
        config[_train.SHUFFLE] = int(shuffle)
        config[_train.SEED] = seed
        config[_train.LOSS_KIND] = self._spec.kind
        config[_train.OPTIMIZER] = OPTIMIZERS.get(optimizer, optimizer)
        config[_train.SCHEDULE] = _train.SCHEDULES[hyper.get("lr_schedule", "constant")]
        config[_train.USE_WEIGHTS] = int(use_weights)
        # scikit-learn averages batch losses by row count; the estimators set this.
        config[_train.AVERAGE_BY_SIZE] = int(self._loss_average_by_size)
        coefs = np.zeros(_train.N_COEFS, dtype=np.float64)
        loss_scale, grad_scale = self._spec.scales(self.n_outputs)
        coefs[_train.LOSS_SCALE] = loss_scale
        coefs[_train.GRAD_SCALE] = grad_scale
        opt = _opt
        coefs[opt.LR] = hyper.get("lr", 0.0)
        coefs[opt.L2] = hyper.get("alpha", 0.0)
        coefs[opt.MU] = hyper.get("momentum", 0.0)
        coefs[opt.BETA1] = hyper.get("beta_1", 0.9)
        coefs[opt.BETA2] = hyper.get("beta_2", 0.999)
        coefs[opt.EPSILON] = hyper.get("epsilon", 1e-8)
        coefs[_train.POWER_T] = hyper.get("power_t", 0.5)
        return config, coefs

    def fit(
        self,
        X,
        y,
        *,
        epochs=1,
        batch_size=32,
        lr=0.01,
        shuffle=True,
        seed=None,
        optimizer="sgd",
        momentum=0.9,
        beta_1=0.9,
        beta_2=0.999,
        epsilon=1e-8,
        alpha=0.0,
        lr_schedule="constant",
        power_t=0.5,
        sample_weight=None,
        on_divergence="raise",
        callback=None,
        verbose=None,
    ) -> np.ndarray:
        """Train with minibatches; return the mean training loss of each epoch.

        Continues from the current parameters, optimizer state and training
        position (call :meth:`initialize` to start over).

        Parameters
        ----------
        epochs, batch_size : int
            Passes over the data and rows per step (the last batch may be smaller).
        lr : float
            Learning rate (> 0).
        shuffle : bool
            Reshuffle the rows every epoch.  The order of epoch ``e`` depends only on
            the shuffle seed and ``e``, so a resumed fit sees the same order.
        seed : int, optional
            Shuffle seed; default: the network's ``seed``, else a random one drawn once.
        optimizer : {'sgd', 'momentum', 'nesterov', 'adam'}
            Plain SGD by default; ``momentum``, ``beta_1``, ``beta_2``, ``epsilon``
            configure the others (scikit-learn's formulas).
        alpha : float
            L2 penalty ``alpha * ||W||^2 / (2 * batch weight)`` on the weights.
        lr_schedule : {'constant', 'invscaling'}
            ``invscaling``: ``lr / (samples seen + 1) ** power_t`` from the 2nd epoch.
        sample_weight : array of shape (n_samples,), optional
        on_divergence : {'raise', 'warn'}
            What happens when a loss or parameter becomes NaN/inf: the parameters of
            the last finite epoch are restored, then :class:`DivergenceError` is
            raised or a :class:`DivergenceWarning` issued.
        callback : callable, optional
            Called as ``callback(epochs_done, losses_so_far)`` after each kernel call.
        verbose : bool or None
            A progress bar (tqdm) with epoch, loss and samples/s; None: only when
            stderr is a terminal.
        """
        self._check_not_training()
        epochs = check_positive_int(epochs, "epochs", minimum=0)
        check_choice(on_divergence, "on_divergence", ("raise", "warn"))
        if callback is not None and not callable(callback):
            raise TypeError("callback must be callable as callback(epochs_done, losses)")
        plan = self._plan_fit(
            X,
            y,
            sample_weight,
            batch_size=batch_size,
            shuffle=shuffle,
            seed=seed,
            optimizer=optimizer,
            lr=lr,
            momentum=momentum,
            beta_1=beta_1,
            beta_2=beta_2,
            epsilon=epsilon,
            alpha=alpha,
            lr_schedule=lr_schedule,
            power_t=power_t,
        )
        from .progress import make_progress

        with make_progress(epochs, plan.n_samples, verbose) as progress:

            def report(done, losses):
                progress.update(done, losses)
                if callback is not None:
                    callback(done, losses)

            return self._run_epochs(plan, epochs, on_divergence, report)

    def _plan_fit(
        self,
        X,
        y,
        sample_weight,
        *,
        batch_size,
        shuffle,
        seed,
        optimizer,
        lr,
        momentum,
        beta_1,
        beta_2,
        epsilon,
        alpha,
        lr_schedule,
        power_t,
    ) -> _FitPlan:
        """Validate a fit's data and settings and allocate its buffers, once: the
        estimators then run the plan one epoch at a time (validating and allocating
        per epoch cost 43 ms of a 235 ms digits fit, measured)."""
        X, Y, w = self._check_data(X, y, sample_weight)
        batch = min(check_positive_int(batch_size, "batch_size"), X.shape[0])
        lr = check_positive_float(lr, "lr")
        check_choice(optimizer, "optimizer", OPTIMIZERS)
        check_choice(lr_schedule, "lr_schedule", _train.SCHEDULES)
        if not isinstance(shuffle, (bool, np.bool_)):
            raise TypeError(f"shuffle must be True or False, got {shuffle!r}")
        hyper = dict(
            lr=lr,
            alpha=check_positive_float(alpha, "alpha", allow_zero=True),
            momentum=check_positive_float(momentum, "momentum", allow_zero=True),
            beta_1=check_positive_float(beta_1, "beta_1", allow_zero=True),
            beta_2=check_positive_float(beta_2, "beta_2", allow_zero=True),
            epsilon=check_positive_float(epsilon, "epsilon"),
            lr_schedule=lr_schedule,
            power_t=check_positive_float(power_t, "power_t", allow_zero=True),
        )
        for name in ("momentum", "beta_1", "beta_2"):
            if hyper[name] >= 1:
                raise ValueError(f"{name} must be < 1, got {hyper[name]}")
        if seed is not None:
            self._shuffle_seed = check_seed(seed)
        elif self._shuffle_seed is None:
            self._shuffle_seed = (
                self.seed if self.seed is not None else int(np.random.default_rng().integers(2**62))
            )
        if self._optimizer != optimizer:
            self._state = np.zeros(
                (STATE_ROWS[OPTIMIZERS[optimizer]], self._layout.n_params), dtype=self.dtype
            )
            self._optimizer = optimizer

        n = X.shape[0]
        threads = _threads.usable_threads(self._n_threads)
        blocks, strategy = self._parallel_plan(batch, threads)
        backup = np.empty((1 + self._state.shape[0], self._layout.n_params), dtype=self.dtype)
        runs_unrolled = self._runs_unrolled(blocks)
        ws, table = self._reused_workspace(
            batch, bool(shuffle and n > batch), blocks, strategy, n, runs_unrolled
        )
        model = _train.Model(self.params, self._grads, self._state, backup, table)
        config, coefs = self._config(
            batch,
            blocks,
            strategy=strategy,
            shuffle=shuffle,
            seed=self._shuffle_seed,
            optimizer=optimizer,
            use_weights=w is not None,
            hyper=hyper,
        )
        train = _train.train_epochs_parallel if blocks > 1 else _train.train_epochs
        unrolled = None
        if runs_unrolled:
            unrolled = self._unrolled_trainer()
        data = self._data(X, Y, w)
        # (the unrolled kernels call no BLAS: no BLAS caps to set and restore, ~10 us)
        plan = _FitPlan(data, model, ws, config, coefs, threads, unrolled or train, hyper, n)
        plan.uses_blas = unrolled is None
        plan.parallel = blocks > 1
        return plan

    def _reused_workspace(self, batch, gather, blocks, strategy, n, unrolled):
        """``_workspace`` for a fit of ``n`` rows (with the epoch's permutation when
        ``gather``), the previous fit's when the sizes are the same: allocating it was
        ~20 us of the ~190 us of Python around a tutorial fit (measured).  The kernels
        write every buffer before reading it, except the sample weights' ones, which
        a weighted shuffled fit overwrites: refilled here.  (Fits only: ``predict``
        and ``gradients`` allocate their own, so they may run from several threads.)"""
        key = (batch, gather, blocks, strategy, n, unrolled)
        if self._fit_workspace is not None and self._fit_workspace[0] == key:
            _, ws, table = self._fit_workspace
            ws.wbuf.fill(1)
            return ws, table
        ws, table = self._workspace(batch, gather, blocks, strategy, -(-n // batch), unrolled)
        if gather:
            ws = ws._replace(perm=np.empty(n, dtype=np.int64))
        # Kept only when small beside the model: the allocation it saves matters for
        # short fits, and a network (or a fitted estimator) must not hold hundreds of
        # MB of scratch (a 50k-row full-batch fit of a [32,512,512,1] network: 410 MB).
        keep = max(_KEEP_WORKSPACE_BYTES, self.params.nbytes)
        self._fit_workspace = (key, ws, table) if sum(b.nbytes for b in ws) <= keep else None
        return ws, table

    def _runs_unrolled(self, blocks: int) -> bool:
        """Whether a fit in ``blocks`` blocks runs on this network's unrolled kernel
        (serial fits of small networks, ``_kernels/unrolled.py``)."""
        return blocks == 1 and _unrolled.eligible(self._layout.sizes, self._spec.kind)

    def _unrolled_trainer(self):
        """``train_epochs`` with this small network's unrolled gradient kernel (see
        ``_kernels/unrolled.py``), or None (with a warning) when its generated module
        cannot be written: the general kernels then train it."""
        try:
            gradient = _unrolled.trainer_kernel(
                self._layout.sizes, self._layout.codes, self._spec.kind, self.dtype
            )
        except OSError as exc:
            warnings.warn(
                f"mlpfast could not write the unrolled kernel of this network to the "
                f"kernel cache ({exc}); it trains with the general kernels, which are "
                f"slower for small networks. Set MLPFAST_CACHE_DIR or NUMBA_CACHE_DIR to "
                f"a writable directory to fix this.",
                RuntimeWarning,
                stacklevel=_threads.caller_outside_mlpfast(),
            )
            return None

        def train(data, model, ws, config, coefs, counters, epoch_losses):
            # (``gradient`` keeps the compiled kernel alive while a plan can call it)
            return _train.train_epochs_unrolled(
                data, model, ws, config, coefs, counters, epoch_losses, gradient.addresses
            )

        return train

    def _check_not_training(self):
        if self._training:
            raise RuntimeError(
                "this network is being trained: fit was called again before its fit "
                "returned (from the fit's callback, or from another thread); call it "
                "after that fit returns"
            )

    def _run_epochs(self, plan: _FitPlan, epochs, on_divergence, callback):
        """Run ``epochs`` epochs of ``plan`` (made by :meth:`_plan_fit` for this
        network, whose parameters and optimizer state it holds)."""
        self._check_not_training()
        self._training = True  # (a fit nested in this one would share its buffers)
        try:
            return self._run_epochs_unguarded(plan, epochs, on_divergence, callback)
        finally:
            self._training = False

    def _run_epochs_unguarded(self, plan: _FitPlan, epochs, on_divergence, callback):
        data, model, ws, config, coefs = plan.data, plan.model, plan.ws, plan.config, plan.coefs
        train, threads = plan.train, plan.threads
        if model.params is not self.params or model.state is not self._state:
            # (kernels do not check bounds: a plan must run on the buffers it was made for)
            raise RuntimeError("this fit plan was made for other parameter buffers; plan again")
        flops = 6 * plan.n_samples * self._layout.n_weights
        seconds_per_epoch = flops / 5e9 + 1e-6  # a first guess; measured after each call
        # Per-call loss buffer (not one slot per requested epoch: epochs may be huge,
        # to train until Ctrl-C).
        buffer = np.empty(min(epochs, 1 << 16), dtype=np.float64)
        losses: list[np.ndarray] = []
        first_epoch = int(self._counters[_train.EPOCH])
        recorded = 0  # epochs of this fit already in ``losses`` and ``history``

        def record(chunk_start):
            # Every epoch the counters say was completed, from the buffer of the call
            # that started at ``chunk_start``: correct even when Ctrl-C interrupted
            # the bookkeeping after a kernel call returned.
            nonlocal recorded
            completed = int(self._counters[_train.EPOCH]) - first_epoch
            if completed > recorded:
                new = buffer[recorded - chunk_start : completed - chunk_start].copy()
                losses.append(new)
                self.history.extend(new.tolist())
                recorded = completed

        chunk_start = 0
        plan.interrupted = False
        try:
            while recorded < epochs:
                step = int(
                    min(
                        epochs - recorded,
                        buffer.size,
                        max(1, TARGET_CALL_SECONDS // seconds_per_epoch),
                    )
                )
                config[_train.N_EPOCHS] = step
                chunk_start = recorded
                started = time.perf_counter()
                with _threads.kernel_threads(threads, plan.uses_blas, plan.parallel):
                    _, status = train(data, model, ws, config, coefs, self._counters, buffer[:step])
                record(chunk_start)
                if status == _train.DIVERGED:
                    self._diverged(plan.hyper["lr"], on_divergence)
                    break
                seconds_per_epoch = max((time.perf_counter() - started) / step, 1e-7)
                if callback is not None:
                    callback(recorded, np.concatenate(losses))
        except KeyboardInterrupt:
            # (a Ctrl-C during a kernel call surfaces when the call returns: all of
            # its epochs may be done, so callers ask ``plan.interrupted``)
            plan.interrupted = True
            record(chunk_start)
            warnings.warn(
                f"training interrupted after {recorded} of {epochs} epochs; the "
                f"network holds the parameters of the last completed epoch",
                RuntimeWarning,
                stacklevel=_threads.caller_outside_mlpfast(),
            )
        return np.concatenate(losses) if losses else np.empty(0)

    def _diverged(self, lr, on_divergence):
        epoch = self.epochs_trained + 1
        message = (
            f"training diverged in epoch {epoch} (a loss or parameter became NaN or "
            f"infinite); the parameters from the end of epoch {epoch - 1} were "
            f"restored. Try a lower learning rate than {lr:g}."
        )
        if on_divergence == "raise":
            raise DivergenceError(message)
        warnings.warn(message, DivergenceWarning, stacklevel=_threads.caller_outside_mlpfast())

    # ------------------------------------------------------------------ pickling
    def __getstate__(self):
        state = self.__dict__.copy()
        # coefs/intercepts are views into params: rebuilt on unpickling, so they keep
        # sharing its memory (pickle would otherwise copy them apart).
        del state["coefs"], state["intercepts"]
        state["_fit_workspace"] = None  # scratch buffers, not the model
        state["_training"] = False
        return state

    def __setstate__(self, state):
        self.__dict__.update(state)
        self._loss_average_by_size = state.get("_loss_average_by_size", False)
        self._fit_workspace = state.get("_fit_workspace")
        self._training = state.get("_training", False)
        self._bind_views()

    # ------------------------------------------------------------------ persistence
    def save(self, path) -> None:
        """Save architecture, parameters, optimizer state and training position to a
        versioned ``.npz`` (no pickle inside), atomically: see :mod:`mlpfast.persistence`."""
        from . import persistence

        persistence.save(self, path)

    @classmethod
    def load(cls, path) -> Network:
        """Load a network written by :meth:`save` (a clear error for damaged files)."""
        from . import persistence

        return persistence.load(path)
