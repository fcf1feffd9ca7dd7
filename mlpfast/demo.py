"""The ``demo``, ``warmup`` and ``info`` commands."""

from __future__ import annotations

import platform
import time

import numpy as np


def _time_per_call(step, repeats: int) -> float:
    """Median seconds per call of ``step`` over ``repeats`` calls (after one warm-up)."""
    step()
    times = []
    for _ in range(repeats):
        started = time.perf_counter()
        step()
        times.append(time.perf_counter() - started)
    return float(np.median(times))


def tutorial_data():
    """The tutorial's circles (REFERENCE.md): 1000 points, seeded through np.random.seed(0)."""
    from sklearn.datasets import make_circles

    np.random.seed(0)
    X, y = make_circles(n_samples=1000, factor=0.5, noise=0.1)
    return X, y.reshape(-1, 1).astype(np.float64)


def _tutorial_model(fused: bool):
    from .reference import d_cross_entropy, drelu, dsigmoid, mlp, relu, sigmoid

    model = mlp([2, 4, 3, 1], [relu, relu, sigmoid], [drelu, drelu, dsigmoid], d_cross_entropy)
    model.fused = fused  # fused=False is the reference trainer's own numpy path
    model.initialize()
    return model


def run_demo(quick: bool = False) -> int:
    from sklearn.datasets import load_digits
    from sklearn.metrics import accuracy_score
    from sklearn.model_selection import train_test_split

    from . import Network
    from .reference import cross_entropy

    print("mlpfast demo: built-in data, compile time shown separately from training time.\n")
    X, y = tutorial_data()

    # 1. The tutorial, through the drop-in class, against the reference's numpy path.
    iterations = 20 if quick else 150
    per_iteration = {}
    for fused in (False, True):
        model = _tutorial_model(fused)
        started = time.perf_counter()
        model.forward(X)
        model.backward(y, model.a[-1])  # compiles (or loads) the fused kernels
        first = time.perf_counter() - started
        model.initialize()

        def step(model=model):
            model.forward(X)
            model.backward(y, model.a[-1])
            model.update(0.005)

        per_iteration[fused] = _time_per_call(step, iterations)
        if fused:
            print(f"  (drop-in kernels ready in {first:.2f} s)")
    model = _tutorial_model(True)
    yhat = model.forward(X)
    printed = {}
    for iteration in range(1, 150):
        model.backward(y, yhat)
        model.update(0.005)
        yhat = model.forward(X)
        if iteration in (145, 149):
            printed[iteration] = (cross_entropy(y, yhat)[0, 0], accuracy_score(y, yhat > 0.5))
    print("1. The tutorial (2-4-3-1, full-batch steps, lr 0.005), drop-in mlp class:")
    for iteration, expected in ((145, "664.60120828, 0.818"), (149, "683.61702980, 0.614")):
        loss, accuracy = printed[iteration]
        print(
            f"   iteration {iteration}: loss {loss:.8f}, accuracy {accuracy:.3f} "
            f"(REFERENCE.md: {expected})"
        )
    print(f"   reference numpy trainer {per_iteration[False] * 1e6:8.1f} us/iteration")
    print(
        f"   mlpfast.reference.mlp   {per_iteration[True] * 1e6:8.1f} us/iteration "
        f"({per_iteration[False] / per_iteration[True]:.1f}x faster)"
    )

    # 2. The same data with mlpfast's own Network (correct derivatives, mean losses).
    net = Network(
        [2, 16, 8, 1], ["relu", "relu", "sigmoid"], "binary_crossentropy", dtype="float64", seed=0
    )
    started = time.perf_counter()
    net.fit(X, y, epochs=1, batch_size=32, lr=0.3)
    compile_seconds = time.perf_counter() - started
    epochs = 30 if quick else 100
    started = time.perf_counter()
    net.fit(X, y, epochs=epochs, batch_size=32, lr=0.3)
    fit_seconds = time.perf_counter() - started
    accuracy = accuracy_score(y, net.predict(X) > 0.5)
    print(f"\n2. Network([2, 16, 8, 1]) on the circles, minibatch SGD (32), {epochs} epochs:")
    print(
        f"   accuracy {accuracy:.3f}; {fit_seconds * 1e3 / epochs:.3f} ms/epoch "
        f"(first call incl. compile/cache load: {compile_seconds:.2f} s)"
    )

    # 3. Handwritten digits, float32, softmax.
    digits = load_digits()
    Xd = (digits.data / 16.0).astype(np.float32)
    X_train, X_test, y_train, y_test = train_test_split(
        Xd, digits.target, test_size=0.25, random_state=0
    )
    net = Network(
        [64, 128, 10], ["relu", "softmax"], "categorical_crossentropy", dtype="float32", seed=0
    )
    net.fit(X_train, y_train, epochs=1, batch_size=32, lr=0.1)
    epochs = 10 if quick else 40
    started = time.perf_counter()
    net.fit(X_train, y_train, epochs=epochs, batch_size=32, lr=0.1)
    fit_seconds = time.perf_counter() - started
    accuracy = accuracy_score(y_test, net.predict(X_test).argmax(axis=1))
    print("\n3. Network([64, 128, 10]) on scikit-learn's digits (float32, batch 32):")
    print(f"   test accuracy {accuracy:.3f}; {fit_seconds * 1e3 / epochs:.2f} ms/epoch")
    print("\nPeer comparison: python -m mlpfast bench   (see README.md)")
    return 0


def warmup(dtype: str = "both") -> int:
    """Compile or load every kernel: both dtypes, training (serial and, with more than
    one thread, parallel), gradients, inference, the drop-in."""
    from . import Network, _threads

    dtypes = ["float32", "float64"] if dtype == "both" else [dtype]
    rng = np.random.default_rng(0)
    X = rng.standard_normal((512, 64))
    y = (X[:, 0] > 0).astype(float)
    for dt in dtypes:
        started = time.perf_counter()
        # Small: the serial kernels.  Large enough to split across threads (about 25
        # MFLOP a step): the parallel ones.
        for sizes, batch in (([64, 4, 1], 16), ([64, 128, 64, 1], 256)):
            if batch > 16 and _threads.max_threads() < 2:
                continue
            net = Network(
                sizes,
                ["relu"] * (len(sizes) - 2) + ["sigmoid"],
                "binary_crossentropy",
                dtype=dt,
                seed=0,
            )
            net.fit(X, y, epochs=1, batch_size=batch, lr=0.1)
            net.gradients(X, y)
            net.loss(X, y)
            net.predict(X)
            net._outputs_and_loss(*net._check_data(X, y, None))  # early stopping's scoring
        # A small network's fit: the unrolled epoch loop, and the tutorial's kernel.
        tiny = Network([2, 4, 3, 1], ["relu", "relu", "sigmoid"], "binary_crossentropy", dtype=dt)
        tiny.fit(X[:, :2], y, epochs=1, batch_size=64, lr=0.1)
        print(f"{dt}: kernels ready in {time.perf_counter() - started:.2f} s")
    started = time.perf_counter()
    model = _tutorial_model(True)
    Xt, yt = tutorial_data()
    model.forward(Xt)
    model.backward(yt, model.a[-1])
    model.update(0.005)
    print(f"drop-in mlp: kernels ready in {time.perf_counter() - started:.2f} s")
    return 0


def info() -> int:
    import numba
    import scipy
    import sklearn

    from . import __version__, _config, _threads

    print(f"mlpfast        {__version__}")
    print(f"python         {platform.python_version()} ({platform.machine()})")
    print(f"numpy          {np.__version__}")
    print(f"numba          {numba.__version__}")
    print(f"scipy          {scipy.__version__}")
    print(f"scikit-learn   {sklearn.__version__}")
    # Start the threading layer so it can be named.
    from . import Network

    Network([2, 1], "sigmoid", "binary_crossentropy").predict(np.zeros((1, 2)))
    print(
        f"threading      {_threads.threading_layer()} (max {_threads.max_threads()} threads, "
        f"NUMBA_NUM_THREADS)"
    )
    try:
        from threadpoolctl import threadpool_info

        for lib in threadpool_info():
            print(
                f"threadpool     {lib.get('internal_api')} {lib.get('version')} "
                f"{lib.get('num_threads')} threads ({lib.get('filepath')})"
            )
    except ImportError:
        pass
    print(f"kernel cache   {_config.describe_cache()}")
    import os

    for var in (
        "OPENBLAS_CORETYPE",
        "OPENBLAS_L2_SIZE",
        "NUMBA_NUM_THREADS",
        "NUMBA_THREADING_LAYER",
        "NUMBA_CACHE_DIR",
    ):
        if os.environ.get(var):
            print(f"env            {var}={os.environ[var]}")
    return 0
