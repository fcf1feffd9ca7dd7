"""Data and networks of the BENCHMARKS.md workloads, shared by the benchmark modules.

Every benchmark compiles (or loads from the kernel cache) in ``setup`` by running
the same call once on a few rows: Numba compiles per argument *types*, not sizes,
so the timed call never compiles.
"""

import numpy as np
from sklearn.datasets import make_circles, make_moons

from mlpfast import Network

# workload -> (layer sizes, activations, loss, dtype, batch size, learning rate,
#              epochs per timed call).  The tutorial is full batch and is timed over
#              its 150 iterations (one iteration = one epoch at batch 1000).
WORKLOADS = {
    "tutorial": (
        [2, 4, 3, 1],
        ["relu", "relu", "sigmoid"],
        "binary_crossentropy",
        "float64",
        1000,
        0.005,
        150,
    ),
    "moons": (
        [2, 64, 64, 1],
        ["relu", "relu", "sigmoid"],
        "binary_crossentropy",
        "float64",
        32,
        0.05,
        1,
    ),
    "wide": (
        [784, 512, 256, 10],
        ["relu", "relu", "softmax"],
        "categorical_crossentropy",
        "float32",
        128,
        0.01,
        1,
    ),
}
FULL_ROWS = {"tutorial": 1000, "moons": 100_000, "wide": 20_000}


def workload_data(name, scale=1.0):
    """(X, y) of a workload; ``scale`` keeps that fraction of the rows (not the tutorial's)."""
    n = FULL_ROWS[name] if name == "tutorial" else max(1, int(FULL_ROWS[name] * scale))
    if name == "tutorial":
        X, y = make_circles(n_samples=1000, factor=0.5, noise=0.1, random_state=0)
        return X, y.astype(np.float64)
    if name == "moons":
        X, y = make_moons(n_samples=n, noise=0.2, random_state=0)
        return X, y.astype(np.float64)
    rng = np.random.default_rng(0)
    X = rng.standard_normal((n, 784), dtype=np.float32)
    teacher = rng.standard_normal((784, 10), dtype=np.float32)
    return X, np.argmax(X @ teacher, axis=1)


def workload_network(name, n_threads=None, seed=0):
    sizes, activations, loss, dtype, _, _, _ = WORKLOADS[name]
    return Network(sizes, activations, loss, dtype=dtype, seed=seed, n_threads=n_threads)


def fit_workload(net, name, X, y, epochs=None):
    """Train ``net`` as the workload does; return the per-epoch losses."""
    _, _, _, _, batch, lr, default_epochs = WORKLOADS[name]
    return net.fit(
        X,
        y,
        epochs=default_epochs if epochs is None else epochs,
        batch_size=batch,
        lr=lr,
        verbose=False,
    )


def warm_up(net, name, X, y):
    """Compile or load every kernel the workload's fit uses, then reset the network.

    The warm-up batch is a full minibatch (so multithreaded block paths are taken
    exactly as in the timed fit) but only one of them.
    """
    batch = WORKLOADS[name][4]
    rows = min(len(X), 2 * batch)
    fit_workload(net, name, X[:rows], y[:rows], epochs=1)
    net.initialize(net.seed)


def threads_param(value):
    """asv parameter -> Network n_threads ("all" is every thread Numba may use)."""
    return None if value == "all" else int(value)
