"""The compiled kernels one at a time, over the layer shapes of the workloads.

A shape ``"NxIxO"`` is a block of N samples through a dense layer with I inputs
and O outputs: ``1000x2x4`` (tutorial; narrow, so hand loops), ``32x64x64`` and
``32x64x1`` (moons), ``128x784x512`` and ``128x256x10`` (wide).
The layer is layer 1 of a ``[1, I, O]`` network, so it has a hidden layer below
(feature-major activations, as in training) and the kernels run exactly the
code paths they take inside the training loop.

Each call goes through Numba's dispatcher from Python, which adds a few
microseconds: on the smallest shapes that overhead is a visible part of the
time (the workloads in ``training.py`` show the kernels without it).

BLAS runs on one thread, as it does under mlpfast's threading policy
(``mlpfast/_threads.py``): the kernels are benchmarked on one core.
"""

import numpy as np
from threadpoolctl import threadpool_limits

from mlpfast._kernels import dense, optimizers
from mlpfast._kernels.activations import RELU
from mlpfast._layout import Layout

SHAPES = ["1000x2x4", "32x64x64", "32x64x1", "128x784x512", "128x256x10"]
DTYPES = ["float32", "float64"]


class _Layer:
    """Buffers of a ``[1, I, O]`` network's layer 1 for a block of N samples."""

    params = (SHAPES, DTYPES)
    param_names = ["shape", "dtype"]

    def setup(self, shape, dtype):
        n, n_in, n_out = (int(v) for v in shape.split("x"))
        rng = np.random.default_rng(0)
        layout = Layout((1, n_in, n_out), (RELU, RELU))
        self.n = n
        self.table = layout.table(n)
        self.cap = n
        self.below = int(self.table[0, dense.ACT_OFFSET])  # layer 0's output: our input
        self.here = int(self.table[1, dense.ACT_OFFSET])  # layer 1's output block
        self.w0 = int(self.table[1, dense.W_OFFSET])
        self.b0 = int(self.table[1, dense.B_OFFSET])
        self.n_in, self.n_out = n_in, n_out
        size = n * layout.act_width
        self.params_ = (rng.standard_normal(layout.n_params) * 0.1).astype(dtype)
        self.grads = np.zeros(layout.n_params, dtype=dtype)
        self.acts = np.abs(rng.standard_normal(size)).astype(dtype)
        self.deltas = rng.standard_normal(size).astype(dtype)
        for method in dir(self):  # compile (or load) outside the timed calls
            if method.startswith("time_"):
                getattr(self, method)(shape, dtype)
        # After compiling: scipy's BLAS is loaded by then, so the cap reaches it.
        self.blas_limit = threadpool_limits(limits=1)

    def teardown(self, shape, dtype):
        self.blas_limit.restore_original_limits()


class Forward(_Layer):
    """``dense.hidden_forward`` (GEMM or loops, then bias + ReLU, feature-major) and
    ``dense.output_logits`` (row-major logits, as the output layer)."""

    def time_hidden_layer(self, shape, dtype):
        dense.hidden_forward(
            self.acts,
            self.below,
            self.cap,
            False,
            self.params_,
            self.table,
            1,
            self.acts,
            self.here,
            self.cap,
            0,
            self.n,
        )

    def time_output_layer(self, shape, dtype):
        dense.output_logits(
            self.acts,
            self.below,
            self.cap,
            False,
            self.params_,
            self.table,
            1,
            self.acts,
            self.here,
            0,
            self.n,
        )


class Backward(_Layer):
    """``dense.delta_below`` (the delta recursion with the ReLU derivative), and
    ``dense.weight_gradient`` + ``dense.bias_gradient``: into a gradient buffer (the
    other optimizers) or with the SGD step fused into the weights."""

    def time_delta_below(self, shape, dtype):
        dense.delta_below(
            self.params_,
            self.table,
            1,
            self.deltas,
            self.here,
            self.cap,
            False,
            self.acts,
            self.deltas,
            self.below,
            self.cap,
            0,
            self.n,
        )

    def time_gradients(self, shape, dtype):
        dense.weight_gradient(
            self.acts,
            self.below,
            self.cap,
            False,
            self.deltas,
            self.here,
            self.cap,
            False,
            self.n,
            self.table,
            1,
            0,
            self.n_in,
            1.0,
            0.0,
            self.grads,
            self.w0,
        )
        dense.bias_gradient(
            self.deltas, self.here, self.cap, False, self.n, 0, self.n_out, self.grads, self.b0
        )

    def time_sgd_step(self, shape, dtype):
        # W <- (1 - lr l2) W - lr A^T D with a tiny lr: the weights barely move.
        dense.weight_gradient(
            self.acts,
            self.below,
            self.cap,
            False,
            self.deltas,
            self.here,
            self.cap,
            False,
            self.n,
            self.table,
            1,
            0,
            self.n_in,
            -1e-9,
            1.0,
            self.params_,
            self.w0,
        )
        dense.bias_gradient(
            self.deltas, self.here, self.cap, False, self.n, 0, self.n_out, self.grads, self.b0
        )


class Update:
    """``optimizers.update_range`` over a whole parameter buffer (moons: 4,417
    parameters; wide: 535,818).  In training, plain SGD skips this pass (its step
    is fused into the weight gradient: ``Backward.time_sgd_step``); ``sgd`` here
    is the cost that fusion saves."""

    params = ([4_417, 535_818], ["sgd", "momentum", "adam"], DTYPES)
    param_names = ["n_params", "optimizer", "dtype"]

    def setup(self, n_params, optimizer, dtype):
        rng = np.random.default_rng(0)
        self.params_ = rng.standard_normal(n_params).astype(dtype)
        self.grads = (rng.standard_normal(n_params) * 1e-3).astype(dtype)
        self.state = np.zeros((2, n_params), dtype=dtype)
        self.code = optimizers.OPTIMIZERS[optimizer]
        self.coefs = np.zeros(optimizers.N_COEFS)
        self.coefs[[optimizers.MU, optimizers.BETA1, optimizers.BETA2, optimizers.EPSILON]] = (
            0.9,
            0.9,
            0.999,
            1e-8,
        )
        self.time_update(n_params, optimizer, dtype)

    def time_update(self, n_params, optimizer, dtype):
        optimizers.update_range(
            self.params_, self.grads, self.state, 0, n_params, self.code, self.coefs, 1e-4, 1e-6
        )
