"""Network against the plain-numpy oracle: forward, loss, gradients, training."""

import numpy as np
import pytest
from conftest import circles
from oracle import network_forward, network_loss, numeric_gradient

import mlpfast
from mlpfast import Network

HIDDEN = ["identity", "relu", "leaky_relu", "sigmoid", "tanh", "elu", "softplus"]
# (output activation, loss) pairs the Network accepts.
OUTPUTS = [
    ("identity", "mse"),
    ("sigmoid", "mse"),
    ("tanh", "mse"),
    ("sigmoid", "binary_crossentropy"),
    ("softmax", "categorical_crossentropy"),
    ("exp", "poisson"),
]


def targets(loss, n, m, rng):
    if loss == "categorical_crossentropy":
        return np.eye(m)[rng.integers(0, m, n)]
    if loss == "binary_crossentropy":
        return (rng.random((n, m)) < 0.5).astype(float)
    if loss == "poisson":
        return rng.poisson(1.0, (n, m)).astype(float)
    return rng.standard_normal((n, m))


# Narrow layers run on hand loops, wide ones (min(n_in, n_out) > 8) on BLAS:
# every behaviour is checked on both kinds of architecture.
NARROW = [3, 5, 4, 3]
WIDE = [12, 10, 9, 3]


def make(sizes, hidden, out, loss, dtype="float64", seed=0):
    acts = [hidden] * (len(sizes) - 2) + [out]
    return Network(sizes, acts, loss, dtype=dtype, seed=seed)


@pytest.mark.parametrize("sizes", [NARROW, WIDE], ids=["narrow", "wide"])
@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("out,loss", OUTPUTS)
def test_forward_and_loss_match_oracle(out, loss, dtype, sizes, rng):
    for hidden in HIDDEN:
        net = make(sizes, hidden, out, loss, dtype)
        for b in net.intercepts:  # non-zero biases exercise the bias add
            b[...] = rng.standard_normal(b.shape) * 0.3
        X = rng.standard_normal((300, sizes[0]))
        Y = targets(loss, 300, 3, rng)
        acts = [hidden, hidden, out]
        expected = network_forward(net.coefs, net.intercepts, acts, X)
        tol = 1e-12 if dtype == "float64" else 2e-5
        got = net.forward(X)
        assert got.dtype == np.dtype(dtype)
        np.testing.assert_allclose(got, expected, rtol=tol * 10, atol=tol)
        assert net.loss(X, Y) == pytest.approx(
            network_loss(net.coefs, net.intercepts, acts, loss, X, Y), rel=tol * 10, abs=tol
        )


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("out,loss", OUTPUTS)
@pytest.mark.parametrize("hidden", HIDDEN)
def test_gradients_match_finite_differences(hidden, out, loss, dtype, rng):
    narrow = make([3, 4, 2], hidden, out, loss, dtype, seed=1)
    check_gradients(narrow, [hidden, out], loss, dtype, rng)


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("out,loss", OUTPUTS)
def test_gradients_match_finite_differences_wide(out, loss, dtype, rng):
    """The BLAS path: every layer wider than the hand-loop threshold."""
    for hidden in ("relu", "tanh"):
        check_gradients(
            make([11, 10, 9], hidden, out, loss, dtype, seed=1), [hidden, out], loss, dtype, rng
        )


def check_gradients(net, acts, loss, dtype, rng):
    for b in net.intercepts:
        b[...] = rng.standard_normal(b.shape) * 0.3
    X = rng.standard_normal((40, net.layer_sizes[0]))
    Y = targets(loss, 40, net.n_outputs, rng)
    fd_W, fd_b = numeric_gradient(net.coefs, net.intercepts, acts, loss, X, Y)
    grads = net.gradients(X, Y)
    assert grads.flat.dtype == np.dtype(dtype)
    tol = 1e-6 if dtype == "float64" else 2e-3
    for got, want in zip(grads.coefs + grads.intercepts, fd_W + fd_b, strict=True):
        np.testing.assert_allclose(got, want, rtol=tol, atol=tol)


def test_gradient_layout_is_the_parameter_layout(rng):
    net = make([4, 6, 3], "tanh", "softmax", "categorical_crossentropy")
    X, Y = rng.standard_normal((50, 4)), np.eye(3)[rng.integers(0, 3, 50)]
    g = net.gradients(X, Y)
    assert g.flat.shape == net.params.shape
    for view, w in zip(g.coefs, net.coefs, strict=True):
        assert view.shape == w.shape and np.shares_memory(view, g.flat)
    for view, b in zip(g.intercepts, net.intercepts, strict=True):
        assert view.shape == b.shape and np.shares_memory(view, g.flat)


def test_update_is_plain_gradient_descent(rng):
    net = make([3, 5, 1], "relu", "identity", "mse")
    X, Y = rng.standard_normal((64, 3)), rng.standard_normal((64, 1))
    before = net.params.copy()
    g = net.gradients(X, Y).flat.copy()
    net.update(0.1)
    np.testing.assert_allclose(net.params, before - 0.1 * g, rtol=1e-14)
    assert net.loss(X, Y) < network_loss(
        net._layout.weight_views(before),
        net._layout.bias_views(before),
        ["relu", "identity"],
        "mse",
        X,
        Y,
    )


def test_views_share_the_flat_buffer():
    net = make([2, 3, 1], "relu", "sigmoid", "binary_crossentropy")
    net.coefs[0][0, 0] = 7.0
    net.intercepts[1][0] = -3.0
    assert 7.0 in net.params and -3.0 in net.params
    assert all(np.shares_memory(w, net.params) for w in net.coefs + net.intercepts)


@pytest.mark.parametrize("sizes", [[3, 8, 2], [12, 16, 10]], ids=["narrow", "wide"])
@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_fit_full_batch_equals_repeated_gradient_steps(dtype, sizes, rng):
    """One epoch with one batch is exactly gradients() + update()."""
    X, Y = rng.standard_normal((100, sizes[0])), rng.standard_normal((100, sizes[-1]))
    a = make(sizes, "tanh", "identity", "mse", dtype)
    b = make(sizes, "tanh", "identity", "mse", dtype)
    losses = a.fit(X, Y, epochs=5, batch_size=100, lr=0.05)
    expected = []
    for _ in range(5):
        expected.append(b.loss(X, Y))
        b.gradients(X, Y)
        b.update(0.05)
    tol = 1e-12 if dtype == "float64" else 1e-5
    np.testing.assert_allclose(losses, expected, rtol=tol)
    np.testing.assert_allclose(a.params, b.params, rtol=tol, atol=tol)


@pytest.mark.parametrize("sizes", [[3, 4, 1], [10, 12, 9, 1]], ids=["narrow", "wide"])
def test_minibatch_sgd_matches_oracle_steps(sizes, rng):
    """Unshuffled minibatches: each step is the oracle's gradient on that slice."""
    X, Y = rng.standard_normal((50, sizes[0])), (rng.random((50, 1)) < 0.5).astype(float)
    net = make(sizes, "relu", "sigmoid", "binary_crossentropy")
    ref = make(sizes, "relu", "sigmoid", "binary_crossentropy")
    net.fit(X, Y, epochs=2, batch_size=16, lr=0.3, shuffle=False)
    for _ in range(2):
        for start in range(0, 50, 16):
            ref.gradients(X[start : start + 16], Y[start : start + 16])
            ref.update(0.3)
    np.testing.assert_allclose(net.params, ref.params, rtol=1e-12, atol=1e-14)


def test_float32_agrees_with_float64(rng):
    X, y = circles(600)
    nets = {
        dt: make([2, 16, 8, 1], "relu", "sigmoid", "binary_crossentropy", dt, seed=3)
        for dt in ("float32", "float64")
    }
    losses = {
        dt: net.fit(X, y, epochs=20, batch_size=50, lr=0.3, seed=1) for dt, net in nets.items()
    }
    np.testing.assert_allclose(losses["float32"], losses["float64"], rtol=2e-3)
    np.testing.assert_allclose(nets["float32"].params, nets["float64"].params, rtol=1e-2, atol=1e-3)


def test_fit_reaches_95_percent_on_the_tutorial_circles():
    X, y = circles(1000)
    net = Network([2, 16, 8, 1], ["relu", "relu", "sigmoid"], "binary_crossentropy", seed=0)
    losses = net.fit(X, y, epochs=100, batch_size=32, lr=0.3)
    assert losses[-1] < losses[0] / 4
    accuracy = ((net.predict(X)[:, 0] > 0.5) == y).mean()
    assert accuracy >= 0.95


def test_categorical_accepts_integer_labels_and_one_hot(rng):
    X = rng.standard_normal((120, 4))
    labels = rng.integers(0, 3, 120)
    a = make([4, 6, 3], "relu", "softmax", "categorical_crossentropy")
    b = make([4, 6, 3], "relu", "softmax", "categorical_crossentropy")
    assert a.loss(X, labels) == b.loss(X, np.eye(3)[labels])
    np.testing.assert_array_equal(
        a.fit(X, labels, epochs=3, seed=0), b.fit(X, np.eye(3)[labels], epochs=3, seed=0)
    )


def test_sample_weight_is_a_weighted_mean(rng):
    X, Y = rng.standard_normal((30, 2)), rng.standard_normal((30, 1))
    w = rng.random(30)
    net = make([2, 3, 1], "tanh", "identity", "mse")
    assert net.loss(X, Y, sample_weight=w) == pytest.approx(
        network_loss(net.coefs, net.intercepts, ["tanh", "identity"], "mse", X, Y, w)
    )
    # Integer weights act like repeated rows.
    reps = rng.integers(1, 4, 30)
    g_weighted = net.gradients(X, Y, sample_weight=reps).flat.copy()
    g_repeated = net.gradients(np.repeat(X, reps, 0), np.repeat(Y, reps, 0)).flat
    np.testing.assert_allclose(g_weighted, g_repeated, rtol=1e-12, atol=1e-14)


def test_same_seed_same_threads_is_bitwise_reproducible():
    X, y = circles(2000)
    runs = []
    for _ in range(2):
        net = Network(
            [2, 64, 64, 1],
            ["relu", "relu", "sigmoid"],
            "binary_crossentropy",
            dtype="float64",
            seed=5,
        )
        runs.append((net.fit(X, y, epochs=3, batch_size=256, lr=0.1, seed=9), net.params))
    np.testing.assert_array_equal(runs[0][0], runs[1][0])
    np.testing.assert_array_equal(runs[0][1], runs[1][1])


def test_resumed_fit_equals_uninterrupted_fit():
    X, y = circles(500)
    a = make([2, 8, 1], "relu", "sigmoid", "binary_crossentropy", seed=2)
    b = make([2, 8, 1], "relu", "sigmoid", "binary_crossentropy", seed=2)
    full = a.fit(X, y, epochs=5, batch_size=64, lr=0.2, seed=4)
    part = np.concatenate(
        [
            b.fit(X, y, epochs=2, batch_size=64, lr=0.2, seed=4),
            b.fit(X, y, epochs=3, batch_size=64, lr=0.2),
        ]
    )
    np.testing.assert_array_equal(full, part)
    np.testing.assert_array_equal(a.params, b.params)
    assert a.history == b.history and b.epochs_trained == 5


def test_thread_counts_agree_within_tolerance():
    if mlpfast._threads.max_threads() < 2:
        pytest.skip("needs 2 threads")
    X = np.random.default_rng(0).standard_normal((4096, 64))
    y = (X[:, :3].sum(axis=1) > 0).astype(float)
    results = []
    for threads in (1, 2):
        net = Network(
            [64, 128, 64, 1],
            ["relu", "relu", "sigmoid"],
            "binary_crossentropy",
            dtype="float64",
            seed=0,
            n_threads=threads,
        )
        results.append((net.fit(X, y, epochs=2, batch_size=512, lr=0.05, seed=0), net))
    np.testing.assert_allclose(results[0][0], results[1][0], rtol=1e-10)
    np.testing.assert_allclose(results[0][1].params, results[1][1].params, rtol=1e-8, atol=1e-12)
    # predict splits rows over threads: identical rows give identical outputs.
    np.testing.assert_array_equal(results[0][1].predict(X), results[0][1].predict(X.copy()))


def test_n_threads_is_restored_after_fit():
    import numba

    before = numba.get_num_threads()
    net = Network([2, 4, 1], "sigmoid", "binary_crossentropy", n_threads=1)
    X, y = circles(100)
    net.fit(X, y, epochs=1)
    assert numba.get_num_threads() == before
    assert net.n_threads == 1
    net.n_threads = -1
    assert net.n_threads == mlpfast._threads.max_threads()


def test_pickle_and_deepcopy_keep_views_into_the_buffer(rng):
    import copy
    import pickle

    net = make([4, 5, 2], "relu", "identity", "mse")
    X = rng.standard_normal((20, 4))
    for clone in (pickle.loads(pickle.dumps(net)), copy.deepcopy(net)):
        assert all(np.shares_memory(w, clone.params) for w in clone.coefs + clone.intercepts)
        np.testing.assert_array_equal(clone.predict(X), net.predict(X))
        clone.coefs[0][...] = 0
        clone.intercepts[0][...] = 0
        assert not np.any(clone.params[: 4 * 5 + 5])


def test_a_fit_plan_runs_epochs_like_fit_and_refuses_replaced_buffers(rng):
    # The estimators plan once and run an epoch at a time: same result as fit.
    X, y = rng.standard_normal((90, 3)), rng.integers(0, 2, 90)
    settings = dict(batch_size=16, lr=0.05, optimizer="adam", seed=1)
    whole = Network([3, 5, 1], ["tanh", "sigmoid"], "binary_crossentropy", seed=0)
    expected = whole.fit(X, y, epochs=3, **settings)
    planned = Network([3, 5, 1], ["tanh", "sigmoid"], "binary_crossentropy", seed=0)
    defaults = dict(momentum=0.9, beta_1=0.9, beta_2=0.999, epsilon=1e-8, alpha=0.0)
    plan = planned._plan_fit(
        X, y, None, shuffle=True, lr_schedule="constant", power_t=0.5, **defaults, **settings
    )
    losses = [planned._run_epochs(plan, 1, "raise", None)[0] for _ in range(3)]
    np.testing.assert_array_equal(losses, expected)
    np.testing.assert_array_equal(planned.params, whole.params)
    # Another optimizer replaces the state buffer: the old plan's would be too small.
    planned.fit(X, y, epochs=1, optimizer="sgd")
    with pytest.raises(RuntimeError, match="plan again"):
        planned._run_epochs(plan, 1, "raise", None)


@pytest.mark.parametrize("sizes", [[3, 5, 2], [3, 40, 2]])  # unrolled and general kernels
def test_a_fit_after_a_weighted_fit_is_the_fit_of_a_fresh_network(rng, sizes):
    # A fit reuses the previous fit's buffers when the sizes match; a weighted,
    # shuffled fit gathers its sample weights into the buffer of ones that an
    # unweighted fit reads: it must not leak into the next fit.
    X = rng.standard_normal((90, 3))
    y = rng.standard_normal((90, 2))
    weights = rng.uniform(0.1, 3.0, 90)

    def network():
        return Network(sizes, ["tanh", "identity"], "mse", dtype="float64", seed=1)

    settings = dict(epochs=3, batch_size=16, lr=0.05, seed=2)
    used = network()
    used.fit(X, y, sample_weight=weights, **settings)
    used.initialize(1)
    fresh = network()
    np.testing.assert_array_equal(used.params, fresh.params)
    losses_used = used.fit(X, y, **settings)
    losses_fresh = fresh.fit(X, y, **settings)
    np.testing.assert_array_equal(losses_used, losses_fresh)
    np.testing.assert_array_equal(used.params, fresh.params)


def test_a_pickled_network_leaves_its_fit_buffers_behind(rng):
    import pickle

    X, y = rng.standard_normal((2000, 3)), rng.standard_normal((2000, 2))
    net = Network([3, 40, 2], ["tanh", "identity"], "mse", dtype="float64", seed=1)
    net.fit(X, y, epochs=1, batch_size=500)
    size = len(pickle.dumps(net))
    assert size < 8 * net.params.size + 20_000  # the parameters, not 2000 rows of buffers
    again = pickle.loads(pickle.dumps(net))
    resumed = again.fit(X, y, epochs=2, seed=3)
    np.testing.assert_array_equal(resumed, net.fit(X, y, epochs=2, seed=3))


def test_a_fit_called_from_its_own_callback_is_refused(rng):
    X, y = rng.standard_normal((64, 3)), rng.standard_normal(64)
    net = Network([3, 4, 1], ["relu", "identity"], "mse", dtype="float64", seed=0)
    with pytest.raises(RuntimeError, match="being trained"):
        net.fit(X, y, epochs=3, callback=lambda done, losses: net.fit(X, y, epochs=1))
    assert len(net.fit(X, y, epochs=2)) == 2  # and it trains afterwards


def test_a_network_keeps_only_small_fit_buffers(rng):
    import gc
    import tracemalloc

    X, y = rng.standard_normal((2000, 8)), rng.standard_normal(2000)
    small = Network([8, 4, 1], ["relu", "identity"], "mse", dtype="float64", seed=0)
    small.fit(X, y, epochs=1, batch_size=2000)
    # (the kernels compiled by another network of that size, before measuring)
    Network([8, 256, 1], ["relu", "identity"], "mse", dtype="float64").fit(X, y, batch_size=2000)
    wide = Network([8, 256, 1], ["relu", "identity"], "mse", dtype="float64", seed=0)
    gc.collect()
    tracemalloc.start()
    try:
        before = tracemalloc.get_traced_memory()[0]
        wide.fit(X, y, epochs=1, batch_size=2000)  # ~8 MB of activations and deltas
        gc.collect()
        retained = tracemalloc.get_traced_memory()[0] - before
    finally:
        tracemalloc.stop()
    assert retained < 1 << 20, retained
    assert small._fit_workspace is not None  # a small one is kept for the next fit


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("weighted", [False, True])
def test_softmax_loss_and_delta_kernel_match_numpy(dtype, weighted, rng):
    """The fused softmax + cross-entropy runs rows four at a time with a remainder:
    every row count from 1 to 9, a first row r0 > 0, soft targets (rows whose
    targets do not sum to 1) and sample weights against plain numpy."""
    from mlpfast._kernels.activations import SOFTMAX
    from mlpfast._kernels.losses import SOFTMAX_CE, output_loss_and_delta

    m, r0, scale = 5, 3, 0.37
    tol = 1e-12 if dtype == "float64" else 2e-5
    for rows in range(1, 10):
        n = r0 + rows
        z = (rng.standard_normal((n, m)) * 4).astype(dtype)
        y = rng.random((n, m)).astype(dtype)  # soft targets, sums in (0, 5)
        w = rng.random(n).astype(dtype) + 0.5 if weighted else np.empty(0, dtype)
        delta = np.full(n * m, np.nan, dtype=dtype)
        total = output_loss_and_delta(
            z.reshape(-1), 0, y.reshape(-1), 0, w, 0, weighted, r0, n, m,
            SOFTMAX_CE, SOFTMAX, scale, delta, 0,
        )  # fmt: skip
        zz, yy = z[r0:].astype(np.float64), y[r0:].astype(np.float64)
        ww = w[r0:].astype(np.float64) if weighted else np.ones(rows)
        log_p = zz - zz.max(1, keepdims=True)
        log_p -= np.log(np.exp(log_p).sum(1, keepdims=True))
        assert total == pytest.approx(-(ww * (yy * log_p).sum(1)).sum(), rel=tol, abs=tol)
        want = scale * ww[:, None] * (np.exp(log_p) * yy.sum(1, keepdims=True) - yy)
        np.testing.assert_allclose(delta.reshape(n, m)[r0:], want, rtol=tol * 10, atol=tol)
        assert np.isnan(delta[: r0 * m]).all(), "rows before r0 must not be written"
        z[r0 + rows - 1, 2] = np.nan  # a non-finite logit must reach the loss
        nan_total = output_loss_and_delta(
            z.reshape(-1), 0, y.reshape(-1), 0, w, 0, weighted, r0, n, m,
            SOFTMAX_CE, SOFTMAX, scale, delta, 0,
        )  # fmt: skip
        assert np.isnan(nan_total)


@pytest.mark.parametrize("n_threads", [1, 2])
@pytest.mark.parametrize("weighted", [False, True])
def test_loss_and_gradients_evaluator_is_loss_and_gradients(weighted, n_threads, rng, monkeypatch):
    """The estimators' lbfgs evaluates the loss and the gradient in one pass, with
    the data validated once: at every point it must give what loss() and
    gradients() give there, also after the parameters change between calls."""
    for name in ("CREW_STEP_SECONDS", "CROSSING_SECONDS_PER_VALUE", "STREAMED_SECONDS_PER_VALUE"):
        monkeypatch.setattr(mlpfast.network, name, 0.0)  # split whenever two blocks fit
    net = make(WIDE, "tanh", "softmax", "categorical_crossentropy", seed=3)
    net.n_threads = n_threads
    X = rng.standard_normal((90, WIDE[0]))
    Y = targets("categorical_crossentropy", 90, WIDE[-1], rng)
    w = rng.random(90) + 0.1 if weighted else None
    evaluate = net._loss_and_gradients(X, Y, w)
    for _ in range(3):
        loss = evaluate()
        got = net._grads.copy()
        assert loss == pytest.approx(net.loss(X, Y, w), rel=1e-12)
        np.testing.assert_allclose(got, net.gradients(X, Y, w).flat, rtol=1e-12, atol=1e-15)
        net.params += 0.05 * rng.standard_normal(net.params.shape)


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("out,loss", OUTPUTS)
def test_outputs_and_loss_is_forward_and_loss(out, loss, dtype, rng):
    """The estimators score each epoch's validation set with one forward pass."""
    net = make(WIDE, "relu", out, loss, dtype, seed=4)
    X = rng.standard_normal((70, WIDE[0]))
    Y = targets(loss, 70, WIDE[-1], rng)
    for w in (None, rng.random(70) + 0.1):
        outputs, value = net._outputs_and_loss(*net._check_data(X, Y, w))
        np.testing.assert_array_equal(outputs, net.forward(X))
        assert value == net.loss(X, Y, w)
