"""``python -m mlpfast bench``: mlpfast side by side with its peers (BENCHMARKS.md).

Every workload runs with mlpfast (``Network.fit``; for the tutorial also the drop-in
``mlpfast.reference.mlp`` with a user's own functions, peer ``dropin``) and each
installed peer in this one process, on
the same data, network, batch size and learning rate: the reference numpy trainer
(``mlpfast.reference.mlp`` on its numpy path), PyTorch eager, scikit-learn's
``MLPClassifier`` (plain SGD), JAX with a jitted step in a Python loop, and JAX
with the whole epoch under ``jit`` + ``lax.scan``.  Times are medians of
``--repeats`` timed runs after one untimed warm-up (which includes compilation,
reported on its own); the peers of a workload take turns, one run each per round,
so that drift in a shared machine's speed affects them alike.  The table gives
each peer's time as a multiple of mlpfast's, the training loss after one run (each
peer from its own initial weights: the losses agree in size, not in digits, so a
reader sees the same work was done) and the machine's
large-GEMM rate (numpy, 2048 x 2048) as the physical limit.

OpenBLAS tuning variables (``OPENBLAS_CORETYPE``, ``OPENBLAS_L2_SIZE``) slow every
OpenBLAS call on some machines; the report says whether they were set.  Compare
with them unset, as users run: ``env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE``.
"""

from __future__ import annotations

import datetime
import math
import os
import platform
import time
from dataclasses import dataclass, field

import numpy as np

PEERS = ("mlpfast", "dropin", "reference", "torch", "sklearn", "jax-step", "jax-scan")
# Estimator workloads: mlpfast.MLPClassifier against scikit-learn's, default adam.
ESTIMATOR_WORKLOADS = ("digits-adam", "synthetic-adam")


@dataclass
class Workload:
    name: str
    sizes: list
    activations: list
    loss: str  # "binary_crossentropy" or "categorical_crossentropy"
    batch: int | None  # None: full batch
    lr: float
    epochs: int  # epochs (iterations) per timed repeat
    dtype: str
    unit: str  # what one epoch is called in the table
    rows: int
    X: np.ndarray = field(default=None, repr=False)
    y: np.ndarray = field(default=None, repr=False)  # class labels (int)

    @property
    def flops_per_epoch(self) -> float:
        weights = sum(a * b for a, b in zip(self.sizes[:-1], self.sizes[1:], strict=True))
        return 6.0 * self.X.shape[0] * weights

    def batch_size(self) -> int:
        return self.X.shape[0] if self.batch is None else min(self.batch, self.X.shape[0])


def make_workload(name: str, scale: float = 1.0) -> Workload:
    from sklearn.datasets import load_digits, make_circles, make_classification, make_moons
    from sklearn.preprocessing import StandardScaler

    if name == "digits-adam":
        # scikit-learn's defaults: hidden (100,), adam, batch min(200, n); whole fits
        # of `epochs` epochs (tol=0 so both sides run them all).
        w = Workload(
            "digits-adam",
            [64, 100, 10],
            ["relu", "softmax"],
            "categorical_crossentropy",
            200,
            1e-3,
            200,
            "float64",
            "fit",
            1797,
        )
        X, y = load_digits(return_X_y=True)
        n = max(64, int(len(X) * scale))
        w.X, w.y = StandardScaler().fit_transform(X)[:n], y[:n]
        return w
    if name == "synthetic-adam":
        w = Workload(
            "synthetic-adam",
            [20, 100, 1],
            ["relu", "sigmoid"],
            "binary_crossentropy",
            200,
            1e-3,
            20,
            "float64",
            "fit",
            30_000,
        )
        n = max(256, int(w.rows * scale))
        X, y = make_classification(n, n_features=20, n_informative=10, random_state=0)
        w.X, w.y = StandardScaler().fit_transform(X), y
        return w
    if name == "tutorial":
        w = Workload(
            "tutorial",
            [2, 4, 3, 1],
            ["relu", "relu", "sigmoid"],
            "binary_crossentropy",
            None,
            0.005,
            150,
            "float64",
            "iteration",
            1000,
        )
        n = max(16, int(w.rows * scale))
        w.X, w.y = make_circles(n_samples=n, factor=0.5, noise=0.1, random_state=0)
    elif name == "moons":
        w = Workload(
            "moons",
            [2, 64, 64, 1],
            ["relu", "relu", "sigmoid"],
            "binary_crossentropy",
            32,
            0.05,
            1,
            "float64",
            "epoch",
            100_000,
        )
        n = max(64, int(w.rows * scale))
        w.X, w.y = make_moons(n_samples=n, noise=0.2, random_state=0)
    elif name == "wide":
        w = Workload(
            "wide",
            [784, 512, 256, 10],
            ["relu", "relu", "softmax"],
            "categorical_crossentropy",
            128,
            0.01,
            1,
            "float32",
            "epoch",
            20_000,
        )
        n = max(256, int(w.rows * scale))
        rng = np.random.default_rng(0)
        w.X = rng.standard_normal((n, 784))
        teacher = rng.standard_normal((784, 10))
        w.y = (w.X @ teacher).argmax(axis=1)
    else:
        raise ValueError(f"unknown workload {name!r}; choose from tutorial, moons, wide")
    return w


# --------------------------------------------------------------------------- peers
class PeerUnavailable(Exception):
    """The peer's library is not installed (the table says so and moves on)."""


class NotApplicable(Exception):
    """The peer does not run this workload (left out of the table silently)."""


_NOT_APPLICABLE = "not applicable"


def _targets(w: Workload, dtype) -> np.ndarray:
    if w.loss == "binary_crossentropy":
        return w.y.reshape(-1, 1).astype(dtype)
    return np.eye(w.sizes[-1], dtype=dtype)[w.y]


def _mlpfast(w: Workload, dtype: str, threads: int):
    from . import Network

    X = np.ascontiguousarray(w.X, dtype=dtype)
    Y = _targets(w, dtype)
    net = Network(w.sizes, w.activations, w.loss, dtype=dtype, seed=0, n_threads=threads)

    def run():
        net.fit(X, Y, epochs=w.epochs, batch_size=w.batch_size(), lr=w.lr, seed=0, verbose=False)

    return run, lambda: net.history[-1]


def _mean_loss(w: Workload, p: np.ndarray, Y: np.ndarray) -> float:
    p = np.clip(p, 1e-12, 1 - 1e-12)
    if w.loss == "binary_crossentropy":
        return float(-(Y * np.log(p) + (1 - Y) * np.log(1 - p)).mean())
    return float(-(Y * np.log(p)).sum(axis=1).mean())


def _reference(w: Workload, dtype: str, threads: int):
    from .reference import d_cross_entropy, drelu, mlp, relu, sigmoid

    X = np.asarray(w.X, dtype=dtype)
    Y = _targets(w, dtype)

    def softmax(z):
        e = np.exp(z - z.max(axis=1, keepdims=True))
        return e / e.sum(axis=1, keepdims=True)

    def softmax_ce_delta(y, yhat):  # softmax + cross-entropy: dL/dz = p - y
        return yhat - y

    if w.loss == "binary_crossentropy":
        out, dout = sigmoid, (lambda z: sigmoid(z) * (1 - sigmoid(z)))
        lossderiv = d_cross_entropy
    else:  # pass dL/dz through a unit derivative
        out, dout = softmax, (lambda z: 1.0)
        lossderiv = softmax_ce_delta
    n_hidden = len(w.sizes) - 2
    model = mlp(w.sizes, [relu] * n_hidden + [out], [drelu] * n_hidden + [dout], lossderiv)
    model.fused = False  # the reference trainer's own numpy path
    model.initialize(0)
    rng = np.random.default_rng(0)
    batch = w.batch_size()
    # The reference sums dW over a batch: scale the step so it is a mean, like the others.
    eta = w.lr / batch

    def run():
        for _ in range(w.epochs):
            order = rng.permutation(len(X)) if batch < len(X) else slice(None)
            Xs, Ys = X[order], Y[order]
            for start in range(0, len(X), batch):
                xb, yb = Xs[start : start + batch], Ys[start : start + batch]
                model.forward(xb)
                model.backward(yb, model.a[-1])
                model.update(eta)

    return run, lambda: _mean_loss(w, model.forward(X), Y)


def _user_functions():
    """The tutorial's six functions as a user's script defines them (REFERENCE.md):
    plain numpy, not mlpfast's, so the drop-in has to recognise them by probing."""
    eps = np.finfo(float).eps

    def sigmoid(z):
        return 1 / (1 + np.exp(-np.clip(z, -500, 500)))

    def dsigmoid(z):
        s = sigmoid(z)
        return 2 * s * (1 - s)

    def relu(z):
        return np.maximum(0, z)

    def drelu(z):
        return (z > 0).astype(float)

    def d_cross_entropy(y, yhat):
        return -y / yhat.clip(eps) + (1 - y) / (1 - yhat).clip(eps)

    return relu, drelu, sigmoid, dsigmoid, d_cross_entropy


def _dropin(w: Workload, dtype: str, threads: int):
    """``mlpfast.reference.mlp`` (the drop-in) with the user's own functions, the
    tutorial's loop: forward, backward, update per iteration (tutorial only)."""
    if w.name != "tutorial" or dtype != "float64":
        raise NotApplicable("the drop-in runs the tutorial's float64 loop only")
    from .reference import mlp

    relu, drelu, sigmoid, dsigmoid, d_cross_entropy = _user_functions()
    X = np.asarray(w.X, dtype=dtype)
    y = w.y.reshape(-1, 1)
    model = mlp(w.sizes, [relu, relu, sigmoid], [drelu, drelu, dsigmoid], d_cross_entropy)
    model.initialize()

    def run():
        for _ in range(w.epochs):
            model.forward(X)
            model.backward(y, model.a[-1])
            model.update(w.lr)

    def final_loss():
        p = np.clip(model.forward(X), 1e-12, 1 - 1e-12)
        return float(-(y * np.log(p) + (1 - y) * np.log(1 - p)).mean())

    return run, final_loss


def _torch(w: Workload, dtype: str, threads: int):
    try:
        import torch
    except ImportError:
        raise PeerUnavailable("torch is not installed (pip install 'mlpfast[bench]')") from None
    torch.set_num_threads(threads)
    tdtype = torch.float32 if dtype == "float32" else torch.float64
    torch.manual_seed(0)
    layers = []
    for k, (a, b) in enumerate(zip(w.sizes[:-1], w.sizes[1:], strict=True)):
        layers.append(torch.nn.Linear(a, b))
        if k < len(w.sizes) - 2:
            layers.append(torch.nn.ReLU())
    model = torch.nn.Sequential(*layers).to(tdtype)
    X = torch.as_tensor(np.asarray(w.X, dtype=dtype))
    if w.loss == "binary_crossentropy":
        Y = torch.as_tensor(_targets(w, dtype))
        criterion = torch.nn.BCEWithLogitsLoss()  # sigmoid fused, as in mlpfast
    else:
        Y = torch.as_tensor(w.y.astype(np.int64))
        criterion = torch.nn.CrossEntropyLoss()  # softmax fused
    optimizer = torch.optim.SGD(model.parameters(), lr=w.lr)
    batch = w.batch_size()
    last = [float("nan")]

    def run():
        for _ in range(w.epochs):
            order = torch.randperm(len(X)) if batch < len(X) else torch.arange(len(X))
            total = 0.0
            for start in range(0, len(X), batch):
                idx = order[start : start + batch]
                optimizer.zero_grad()
                loss = criterion(model(X[idx]), Y[idx])
                loss.backward()
                optimizer.step()
                total += loss.item() * len(idx)
            last[0] = total / len(X)

    return run, lambda: last[0]


def _sklearn(w: Workload, dtype: str, threads: int):
    import warnings

    from sklearn.neural_network import MLPClassifier

    X = np.asarray(w.X, dtype=dtype)
    clf = MLPClassifier(
        hidden_layer_sizes=tuple(w.sizes[1:-1]),
        activation="relu",
        solver="sgd",
        alpha=0.0,
        momentum=0.0,
        batch_size=w.batch_size(),
        learning_rate_init=w.lr,
        shuffle=True,
        random_state=0,
    )
    classes = np.unique(w.y)

    def run():
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            for _ in range(w.epochs):
                clf.partial_fit(X, w.y, classes=classes)  # one epoch per call

    return run, lambda: float(clf.loss_)


def _jax_common(w: Workload, dtype: str, threads: int):
    try:
        import jax
    except ImportError:
        raise PeerUnavailable("jax is not installed (pip install 'mlpfast[bench]')") from None
    if dtype == "float64":
        jax.config.update("jax_enable_x64", True)
    import jax.numpy as jnp

    rng = np.random.default_rng(0)
    params = []
    for a, b in zip(w.sizes[:-1], w.sizes[1:], strict=True):
        params.append(
            (
                jnp.asarray(rng.standard_normal((a, b)) * np.sqrt(2.0 / a), dtype=dtype),
                jnp.zeros(b, dtype=dtype),
            )
        )
    binary = w.loss == "binary_crossentropy"

    def loss_fn(params, xb, yb):
        h = xb
        for W, b in params[:-1]:
            h = jax.nn.relu(h @ W + b)
        z = h @ params[-1][0] + params[-1][1]
        if binary:
            return jnp.mean(jnp.maximum(z, 0) - z * yb + jnp.log1p(jnp.exp(-jnp.abs(z))))
        return -jnp.mean(jnp.sum(yb * jax.nn.log_softmax(z), axis=1))

    grad = jax.value_and_grad(loss_fn)
    lr = w.lr

    def sgd(params, xb, yb):
        loss, g = grad(params, xb, yb)
        return jax.tree_util.tree_map(lambda p, d: p - lr * d, params, g), loss

    return jax, jnp, params, sgd, np.asarray(w.X, dtype=dtype), _targets(w, dtype)


def _jax_step(w: Workload, dtype: str, threads: int):
    jax, jnp, params, sgd, X, Y = _jax_common(w, dtype, threads)
    batch = w.batch_size()
    step = jax.jit(sgd)
    state = {"params": params, "loss": float("nan")}
    rng = np.random.default_rng(0)

    def run():
        for _ in range(w.epochs):
            order = rng.permutation(len(X)) if batch < len(X) else np.arange(len(X))
            Xs, Ys = jnp.asarray(X[order]), jnp.asarray(Y[order])
            p = state["params"]
            for start in range(0, len(X), batch):
                p, loss = step(p, Xs[start : start + batch], Ys[start : start + batch])
            state["params"] = p
            state["loss"] = loss
        jax.block_until_ready(state["params"])

    return run, lambda: float(state["loss"])


def _jax_scan(w: Workload, dtype: str, threads: int):
    jax, jnp, params, sgd, X, Y = _jax_common(w, dtype, threads)
    batch = w.batch_size()
    n_full = len(X) // batch
    rest = len(X) - n_full * batch

    @jax.jit
    def epoch(params, Xs, Ys):
        xb = Xs[: n_full * batch].reshape(n_full, batch, -1)
        yb = Ys[: n_full * batch].reshape(n_full, batch, -1)

        def body(p, batch_xy):
            return sgd(p, *batch_xy)

        params, losses = jax.lax.scan(body, params, (xb, yb))
        if rest:
            params, last = sgd(params, Xs[n_full * batch :], Ys[n_full * batch :])
            losses = jnp.concatenate([losses, last[None]])
        return params, losses

    state = {"params": params, "loss": float("nan")}
    rng = np.random.default_rng(0)

    def run():
        for _ in range(w.epochs):
            order = rng.permutation(len(X)) if batch < len(X) else np.arange(len(X))
            state["params"], losses = epoch(
                state["params"], jnp.asarray(X[order]), jnp.asarray(Y[order])
            )
        state["loss"] = losses[-1]
        jax.block_until_ready(state["params"])

    return run, lambda: float(state["loss"])


_ADAPTERS = {
    "mlpfast": _mlpfast,
    "dropin": _dropin,
    "reference": _reference,
    "torch": _torch,
    "sklearn": _sklearn,
    "jax-step": _jax_step,
    "jax-scan": _jax_scan,
}


def _estimator(library):
    """An adapter timing whole fits of an ``MLPClassifier`` (mlpfast's or scikit-learn's)."""

    def adapter(w: Workload, dtype: str, threads: int):
        import warnings

        from sklearn.exceptions import ConvergenceWarning

        if library == "mlpfast":
            from .estimators import MLPClassifier

            extra = {"n_threads": threads}
        else:
            from sklearn.neural_network import MLPClassifier

            extra = {}
        X = np.asarray(w.X, dtype=dtype)
        state = {}

        def run():
            clf = MLPClassifier(
                hidden_layer_sizes=tuple(w.sizes[1:-1]),
                max_iter=w.epochs,
                tol=0.0,
                n_iter_no_change=w.epochs,
                random_state=0,
                **extra,
            )
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", ConvergenceWarning)
                state["clf"] = clf.fit(X, w.y)

        return run, lambda: float(state["clf"].loss_)

    return adapter


_ESTIMATOR_ADAPTERS = {"mlpfast": _estimator("mlpfast"), "sklearn": _estimator("sklearn")}


# --------------------------------------------------------------------------- measuring
@dataclass
class Result:
    workload: str
    dtype: str
    peer: str
    seconds: float = float("nan")  # median per epoch
    first_call: float = float("nan")  # the warm-up run, including compilation
    loss: float = float("nan")
    gflops: float = float("nan")
    skipped: str = ""


# Pause before each timed run, so that runtimes whose worker threads spin-wait after
# a call (OpenBLAS's workers, behind numpy and so scikit-learn and the reference, by
# default for 2^28 cycles, ~0.1 s) cannot take the cores from the next peer.  A
# precaution: mlpfast's digits fit right after scikit-learn's measured within this
# machine's noise of its time alone (289 vs 275 ms).
SETTLE_SECONDS = 0.25
# A timed sample lasts at least this long: a 2 ms tutorial fit right after the pause
# measured 20 us/iteration in the table against 12 back to back (clock ramp-up).
MIN_SAMPLE_SECONDS = 0.2


def _prepare(w: Workload, peer: str, dtype: str, threads: int):
    """A Result and the peer's (run, final_loss), or a skipped Result and None."""
    result = Result(w.name, dtype, peer)
    adapters = _ESTIMATOR_ADAPTERS if w.unit == "fit" else _ADAPTERS
    if peer not in adapters:
        result.skipped = _NOT_APPLICABLE
        return result, None
    try:
        return result, adapters[peer](w, dtype, threads)
    except PeerUnavailable as exc:
        result.skipped = str(exc)
    except NotApplicable:
        result.skipped = _NOT_APPLICABLE
    return result, None


def measure_side_by_side(
    w: Workload,
    peers,
    dtype: str,
    threads: int,
    repeats: int,
    settle: float = SETTLE_SECONDS,
    min_sample: float = MIN_SAMPLE_SECONDS,
) -> list[Result]:
    """Time every peer on ``w``: one untimed warm-up each (compilation included,
    reported as ``first_call``), then ``repeats`` rounds in which each peer runs
    once in turn (``run`` repeated so that a sample lasts at least ``min_sample``
    seconds; times are per unit: epoch, iteration or fit).  Round-robin, not one
    peer's repeats after another's: this machine kind is shared and its speed
    drifts within a minute (measured, 512^3 float64 GEMMs: one core 34-50 GFLOP/s,
    two cores 52-98), which would otherwise land on whichever peer ran at the
    time."""
    prepared = []
    results = []
    for peer in peers:
        result, adapter = _prepare(w, peer, dtype, threads)
        results.append(result)
        if adapter is None:
            continue
        run, final_loss = adapter
        started = time.perf_counter()
        run()
        result.first_call = time.perf_counter() - started
        # After one run from the same start, the same work for every peer (timed
        # samples then repeat runs a different number of times per peer).
        result.loss = final_loss()
        # Runs per timed sample: at least min_sample seconds of it, so the first
        # milliseconds after the pause (a core clocking back up) are amortized.
        started = time.perf_counter()
        run()
        loops = max(1, math.ceil(min_sample / max(time.perf_counter() - started, 1e-9)))
        prepared.append((result, adapter, loops, []))
    per_unit = 1 if w.unit == "fit" else w.epochs
    for _ in range(repeats):
        for _, (run, _), loops, times in prepared:
            time.sleep(settle)
            started = time.perf_counter()
            for _ in range(loops):
                run()
            times.append((time.perf_counter() - started) / (per_unit * loops))
    for result, _, _, times in prepared:
        result.seconds = float(np.median(times))
        result.gflops = (
            w.flops_per_epoch * (w.epochs if w.unit == "fit" else 1) / result.seconds / 1e9
        )
    return results


def measure(w: Workload, peer: str, dtype: str, threads: int, repeats: int) -> Result:
    """One peer on its own (see :func:`measure_side_by_side`)."""
    return measure_side_by_side(w, [peer], dtype, threads, repeats, settle=0.0, min_sample=0.0)[0]


def gemm_rate(dtype: str, size: int = 2048, repeats: int = 5) -> float:
    """The machine's large-GEMM rate in GFLOP/s (numpy matmul, all threads)."""
    rng = np.random.default_rng(0)
    a = rng.standard_normal((size, size)).astype(dtype)
    b = rng.standard_normal((size, size)).astype(dtype)
    a @ b
    times = []
    for _ in range(repeats):
        started = time.perf_counter()
        a @ b
        times.append(time.perf_counter() - started)
    return 2.0 * size**3 / float(np.median(times)) / 1e9


def _cpu_name() -> str:
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def format_table(results: list[Result], workloads: dict, gemm: dict) -> str:
    lines = [
        "| workload | dtype | peer | time / unit | GFLOP/s | x mlpfast | loss after one run | "
        "first call (s) |",
        "|---|---|---|---|---|---|---|---|",
    ]
    base = {
        (r.workload, r.dtype): r.seconds for r in results if r.peer == "mlpfast" and not r.skipped
    }
    for r in results:
        if r.skipped:
            continue
        w = workloads[r.workload]
        unit, scale = {
            "iteration": ("us/iteration", 1e6),
            "fit": (f"ms/fit ({w.epochs} epochs)", 1e3),
        }.get(w.unit, ("ms/epoch", 1e3))
        ratio = (
            r.seconds / base[(r.workload, r.dtype)]
            if (r.workload, r.dtype) in base
            else float("nan")
        )
        lines.append(
            f"| {r.workload} | {r.dtype} | {r.peer} | {r.seconds * scale:.3g} "
            f"{unit} | {r.gflops:.3g} | {ratio:.2f} | {r.loss:.4g} | "
            f"{r.first_call:.2f} |"
        )
    skipped = [r for r in results if r.skipped and r.skipped != _NOT_APPLICABLE]
    notes = sorted({f"- {r.peer} skipped: {r.skipped}" for r in skipped})

    def rate(value):  # one rate, or (before, after) the table
        if isinstance(value, tuple):
            low, high = min(value), max(value)
            return f"{low:.0f}-{high:.0f}" if round(low) != round(high) else f"{low:.0f}"
        return f"{value:.0f}"

    limit = ", ".join(f"{dt} {rate(value)} GFLOP/s" for dt, value in gemm.items())
    when = (
        " (before and after the table)" if any(isinstance(v, tuple) for v in gemm.values()) else ""
    )
    return "\n".join(lines + [""] + notes + [f"Large-GEMM rate (numpy 2048x2048){when}: {limit}"])


def run_benchmark(workload_names, peers, dtype_choice, threads, repeats, scale, out=print):
    import numba

    threads = threads or numba.config.NUMBA_NUM_THREADS
    workloads = {name: make_workload(name, scale) for name in workload_names}
    env_set = [v for v in ("OPENBLAS_CORETYPE", "OPENBLAS_L2_SIZE") if os.environ.get(v)]
    out(
        f"mlpfast bench, {datetime.date.today().isoformat()}, {_cpu_name()}, "
        f"{os.cpu_count()} CPUs, {threads} threads, numpy {np.__version__}"
    )
    out(
        "OpenBLAS tuning variables: "
        + (
            f"SET ({', '.join(env_set)}): numbers are not what users see; rerun with "
            f"env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE"
            if env_set
            else "unset"
        )
    )

    def dtypes_of(w):
        if dtype_choice == "default":
            return [w.dtype]
        return ["float32", "float64"] if dtype_choice == "both" else [dtype_choice]

    # The physical limit is measured before and after the peers: on a shared
    # machine it drifts as much as the peers do.
    planned = sorted({dt for w in workloads.values() for dt in dtypes_of(w)})
    gemm_before = {dt: gemm_rate(dt) for dt in planned}
    results = []
    for name, w in workloads.items():
        for dt in dtypes_of(w):
            for r in measure_side_by_side(w, peers, dt, threads, repeats):
                results.append(r)
                if r.skipped == _NOT_APPLICABLE:
                    continue
                if r.skipped:
                    out(f"  {name}/{dt}/{r.peer}: skipped ({r.skipped})")
                else:
                    out(f"  {name}/{dt}/{r.peer}: {r.seconds * 1e3:.3f} ms per {w.unit}")
    gemm = {dt: (gemm_before[dt], gemm_rate(dt)) for dt in planned}
    table = format_table(results, workloads, gemm)
    out("")
    out(table)
    return results, table


def run_from_args(args) -> int:
    names = [n.strip() for n in args.workloads.split(",") if n.strip()]
    if "estimators" in names:
        names.remove("estimators")
        names += list(ESTIMATOR_WORKLOADS)
    for name in names:
        make_workload(name, 0.001)  # fail fast on a typo
    peers = list(PEERS) if args.peers == "all" else [p.strip() for p in args.peers.split(",")]
    unknown = set(peers) - set(PEERS)
    if unknown:
        raise SystemExit(f"unknown peers {sorted(unknown)}; choose from {', '.join(PEERS)}")
    if "mlpfast" not in peers:
        peers.insert(0, "mlpfast")
    if args.threads is not None and args.threads < 1:
        raise SystemExit("--threads must be >= 1")
    if args.repeats < 1:
        raise SystemExit("--repeats must be >= 1")
    if not 0 < args.scale <= 1:
        raise SystemExit("--scale must be in (0, 1]")
    run_benchmark(names, peers, args.dtype, args.threads, args.repeats, args.scale)
    return 0
