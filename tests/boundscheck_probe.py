"""Run by test_boundscheck.py in a child process with NUMBA_BOUNDSCHECK=1.

Exercises every kernel entry point on awkward shapes (batches that do not divide
the data, one-row inputs, one-unit layers, several threads); an out-of-bounds
access raises IndexError and the child exits non-zero.
"""

import sys

import numba
import numpy as np

assert numba.config.BOUNDSCHECK, "run me with NUMBA_BOUNDSCHECK=1"

sys.path.insert(0, __file__.rsplit("/", 1)[0])
from oracle import network_loss  # noqa: E402

import mlpfast.network  # noqa: E402
from mlpfast import Network  # noqa: E402
from mlpfast import reference as R  # noqa: E402
from mlpfast._kernels import train as _train  # noqa: E402

# Split every minibatch that has rows for two blocks: the threaded epoch's indexing
# (slabs, per-minibatch partials, the sync counters) is what most needs checking,
# and the cost model would keep these small networks serial.
for _name in ("CREW_STEP_SECONDS", "CROSSING_SECONDS_PER_VALUE", "STREAMED_SECONDS_PER_VALUE"):
    setattr(mlpfast.network, _name, 0.0)
THREADS = min(2, numba.config.NUMBA_NUM_THREADS)

rng = np.random.default_rng(0)
cases = [
    ([3, 1], ["sigmoid"], "binary_crossentropy"),
    ([5, 7, 3], ["tanh", "softmax"], "categorical_crossentropy"),
    ([4, 9, 1, 2], ["relu", "elu", "identity"], "mse"),
    ([2, 33, 17, 1], ["leaky_relu", "softplus", "exp"], "poisson"),
    # unrolled kernels (serial fits of small networks): hidden layers, 2 outputs
    ([3, 4, 2], ["relu", "identity"], "mse"),
    ([2, 3, 3, 2], ["tanh", "relu", "sigmoid"], "binary_crossentropy"),
]
for sizes, acts, loss in cases:
    for dtype in ("float32", "float64"):
        for threads in (1, min(2, numba.config.NUMBA_NUM_THREADS)):
            # (300, 300): the unrolled kernels' 128-row chunks, a short last one
            for n, batch in ((1, 1), (37, 8), (300, 64), (70, 128), (300, 300)):
                X = rng.standard_normal((n, sizes[0]))
                m = sizes[-1]
                if loss == "categorical_crossentropy":
                    Y = np.eye(m)[rng.integers(0, m, n)]
                elif loss == "binary_crossentropy":
                    Y = (rng.random((n, m)) < 0.5).astype(float)
                elif loss == "poisson":
                    Y = rng.poisson(1.0, (n, m)).astype(float)
                else:
                    Y = rng.standard_normal((n, m))
                net = Network(sizes, acts, loss, dtype=dtype, seed=1, n_threads=threads)
                for optimizer in ("sgd", "adam"):
                    net.fit(
                        X,
                        Y,
                        epochs=2,
                        batch_size=batch,
                        lr=0.01,
                        optimizer=optimizer,
                        alpha=1e-3,
                        sample_weight=rng.random(n) + 0.1 if optimizer == "adam" else None,
                    )
                net.gradients(X, Y)
                net.predict(np.repeat(X, 300, axis=0))
                expected = network_loss(net.coefs, net.intercepts, acts, loss, X, Y)
                got = net.loss(X, Y)
                assert abs(got - expected) <= 1e-3 * max(1.0, abs(expected)), (got, expected)

# Hostile layouts (issue 6): validation hands the kernels C-contiguous arrays of the
# network's dtype (read-only input is copied first).
net = Network(
    [3, 5, 2],
    ["relu", "softmax"],
    "categorical_crossentropy",
    seed=0,
    n_threads=min(2, numba.config.NUMBA_NUM_THREADS),
)
base = rng.standard_normal((40, 3))
readonly = base.astype(np.float32)
readonly.setflags(write=False)
labels = rng.integers(0, 2, 40)
for X in (
    np.asfortranarray(base),
    np.repeat(base, 2, axis=0)[::2],
    readonly,
    base[:1],
    base.astype(np.int64),
    base > 0,
):
    y = labels[: len(X)]
    net.fit(X, y, epochs=2, batch_size=7, optimizer="momentum")
    net.gradients(X, y)
    net.loss(X, y)
    net.predict(X)

# ROW_SPLIT (more parameters than activations cross between cores): 32-row
# minibatches with a 4-row tail, and a 32-row gradient.
net = Network(
    [64, 128, 3], ["relu", "softmax"], "categorical_crossentropy", seed=0, n_threads=THREADS
)
if THREADS > 1:
    assert net._parallel_plan(32, THREADS) == (2, _train.ROW_SPLIT)
X = rng.standard_normal((100, 64))
labels = rng.integers(0, 3, 100)
for optimizer in ("sgd", "adam"):
    net.fit(X, labels, epochs=2, batch_size=32, optimizer=optimizer, alpha=1e-3)
net.gradients(X[:32], labels[:32])

model = R.mlp(
    [2, 4, 3, 1], [R.relu, R.relu, R.sigmoid], [R.drelu, R.drelu, R.dsigmoid], R.d_cross_entropy
)
model.initialize()
X = rng.standard_normal((17, 2))
y = (rng.random((17, 1)) < 0.5).astype(float)
for _ in range(3):
    model.forward(X)
    model.backward(y, model.a[-1])
    model.update(0.1)
assert model._plan
print("boundscheck probe ok")
