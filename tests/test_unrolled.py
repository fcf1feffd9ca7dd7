"""The unrolled kernels of small networks (``mlpfast/_kernels/unrolled.py``).

A small network's fit runs one generated kernel a minibatch instead of the
general layer passes.  Both must train the same model: every case below fits
twice from the same start, once unrolled and once with the unrolled path
switched off, and compares the loss curves and the parameters.  The cases are
few architectures on purpose (each compiles its own kernel) that between them
use every hidden activation, both unrolled losses, several outputs, both dtypes,
minibatches with shuffling, sample weights, every optimizer, L2 and the
invscaling schedule.
"""

import sys

import numpy as np
import pytest

from mlpfast import DivergenceError, Network
from mlpfast._kernels import unrolled
from mlpfast._kernels.activations import ACTIVATIONS
from mlpfast._kernels.losses import LOGISTIC, POISSON, SOFTMAX_CE, SQUARED

ALL_HIDDEN = ["identity", "relu", "leaky_relu", "sigmoid", "tanh", "elu", "softplus"]
CASES = {
    # the tutorial's network
    "tutorial": ([2, 4, 3, 1], ["relu", "relu", "sigmoid"], "binary_crossentropy"),
    # every hidden activation, one layer each, squared error with a linear output
    "every-activation": ([3] + [2] * 7 + [2], ALL_HIDDEN + ["identity"], "mse"),
    # two logistic outputs, scikit-learn's log-loss convention
    "two-outputs": ([4, 3, 2], ["tanh", "sigmoid"], "log_loss"),
    # squared error through a tanh output (its derivative is in the delta)
    "tanh-output": ([2, 3, 2], ["elu", "tanh"], "mse"),
    # three classes: softmax and cross-entropy
    "softmax": ([4, 5, 3], ["softplus", "softmax"], "categorical_crossentropy"),
}


def _data(sizes, loss, n, seed=0):
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, sizes[0]))
    if loss in ("binary_crossentropy", "log_loss"):
        Y = (rng.random((n, sizes[-1])) < 0.5).astype(float)
    elif loss == "categorical_crossentropy":
        Y = np.eye(sizes[-1])[rng.integers(0, sizes[-1], n)]
    else:
        Y = rng.normal(size=(n, sizes[-1])) * 0.5
    return X, Y


def _fit_both(monkeypatch, case, dtype="float64", **fit):
    sizes, acts, loss = CASES[case]
    X, Y = _data(sizes, loss, fit.pop("n", 300))
    results = []
    for use_unrolled in (True, False):
        with monkeypatch.context() as patch:
            if not use_unrolled:
                patch.setattr(unrolled, "eligible", lambda *args: False)
            net = Network(sizes, acts, loss, dtype=dtype, seed=3)
            if use_unrolled:
                assert unrolled.eligible(net.layer_sizes, net._spec.kind)
            losses = net.fit(X, Y, **fit)
            results.append((losses, net.params.copy()))
    return results


def _assert_same(results, rtol):
    (l1, p1), (l2, p2) = results
    assert len(l1) == len(l2)
    np.testing.assert_allclose(l1, l2, rtol=rtol)
    np.testing.assert_allclose(p1, p2, rtol=rtol, atol=rtol)
    assert not np.array_equal(p1, np.zeros_like(p1))


@pytest.mark.parametrize("case", list(CASES))
def test_full_batch_sgd_matches_the_general_kernels(monkeypatch, case):
    results = _fit_both(monkeypatch, case, epochs=30, batch_size=300, lr=0.05)
    _assert_same(results, 1e-10)
    losses = results[0][0]
    assert losses[-1] < losses[0]  # it trained


@pytest.mark.parametrize(
    "settings",
    [
        dict(optimizer="sgd", alpha=0.01, lr_schedule="invscaling"),
        dict(optimizer="momentum", momentum=0.9),
        dict(optimizer="nesterov", momentum=0.8, alpha=0.001),
        dict(optimizer="adam", alpha=0.001),
    ],
    ids=lambda s: s["optimizer"],
)
def test_shuffled_minibatches_and_optimizers_match(monkeypatch, settings):
    results = _fit_both(
        monkeypatch, "tutorial", n=250, epochs=8, batch_size=32, lr=0.01, seed=5, **settings
    )
    _assert_same(results, 1e-9)


@pytest.mark.parametrize("case", ["two-outputs", "softmax"])
def test_sample_weights_match(monkeypatch, case):
    sizes, acts, loss = CASES[case]
    X, Y = _data(sizes, loss, 200)
    w = np.random.default_rng(1).uniform(0.0, 3.0, size=200)
    results = []
    for use_unrolled in (True, False):
        with monkeypatch.context() as patch:
            if not use_unrolled:
                patch.setattr(unrolled, "eligible", lambda *args: False)
            net = Network(sizes, acts, loss, dtype="float64", seed=3)
            for batch in (200, 48):  # the unshuffled and the shuffled loop
                net.fit(X, Y, sample_weight=w, epochs=5, batch_size=batch, lr=0.1, seed=2)
            results.append((np.array(net.history), net.params.copy()))
    _assert_same(results, 1e-9)


def test_float32_matches_the_general_kernels_and_float64(monkeypatch):
    fit = dict(n=250, epochs=6, batch_size=40, lr=0.01, optimizer="adam", alpha=1e-3, seed=1)
    unrolled32, general32 = _fit_both(monkeypatch, "tutorial", dtype="float32", **fit)
    unrolled64, _ = _fit_both(monkeypatch, "tutorial", dtype="float64", **fit)
    assert unrolled32[1].dtype == np.float32
    _assert_same((unrolled32, general32), 1e-5)
    np.testing.assert_allclose(unrolled32[0], unrolled64[0], rtol=1e-4)
    np.testing.assert_allclose(unrolled32[1], unrolled64[1], rtol=1e-3, atol=1e-4)


def test_divergence_restores_the_last_finite_epoch(monkeypatch):
    sizes, acts, loss = [2, 3, 1], ["relu", "identity"], "mse"
    assert unrolled.eligible(sizes, SQUARED)
    X, Y = _data(sizes, loss, 100)
    net = Network(sizes, acts, loss, dtype="float64", seed=3)
    net.fit(X, Y, epochs=2, lr=1e-3)
    before = net.params.copy()
    with pytest.raises(DivergenceError):
        net.fit(X * 1e100, Y, epochs=3, lr=1e3)
    np.testing.assert_array_equal(net.params, before)
    assert net.epochs_trained == 2


def test_which_networks_are_unrolled():
    assert unrolled.eligible((2, 4, 3, 1), LOGISTIC)
    assert unrolled.eligible((2, 8, 4, 1), SQUARED)
    assert not unrolled.eligible((2, 9, 1), LOGISTIC)  # too wide
    assert unrolled.eligible((8, 8, 8, 8), LOGISTIC)
    assert not unrolled.eligible((8, 8, 8, 8, 8), LOGISTIC)  # too many weights
    assert unrolled.eligible((2, 4, 3), SOFTMAX_CE)
    assert not unrolled.eligible((2, 4, 3), POISSON)  # log of any positive target


def test_generated_source_uses_the_shared_activation_codes():
    sizes, acts, _ = CASES["every-activation"]
    codes = tuple(ACTIVATIONS[a] for a in acts)
    source = unrolled.generate(tuple(sizes), codes, SQUARED)
    compile(source, "<generated>", "exec")
    for k, code in enumerate(codes[:-1]):
        assert f"a{k + 1}_0 = activate(z{k + 1}_0, {code})" in source


def test_a_damaged_generated_file_is_rewritten(tmp_path, monkeypatch):
    monkeypatch.setattr(unrolled, "GENERATED_DIR", tmp_path)
    monkeypatch.delitem(sys.modules, "mlpfast_unrolled_test", raising=False)
    path = tmp_path / "mlpfast_unrolled_test.py"
    path.write_text("raise RuntimeError('stale or damaged file was run')\n")
    module = unrolled._import("mlpfast_unrolled_test", "VALUE = 7\n")
    assert module.VALUE == 7
    assert path.read_text() == "VALUE = 7\n"
    assert not list(tmp_path.glob("*.tmp"))
    sys.modules.pop("mlpfast_unrolled_test")


def test_an_unwritable_cache_falls_back_to_the_general_kernels(tmp_path, monkeypatch):
    blocker = tmp_path / "a-file"
    blocker.write_text("")
    sizes, acts, loss = [2, 5, 1], ["tanh", "sigmoid"], "binary_crossentropy"
    X, Y = _data(sizes, loss, 64)
    expected = Network(sizes, acts, loss, dtype="float64", seed=3)
    with monkeypatch.context() as patch:
        patch.setattr(unrolled, "eligible", lambda *args: False)
        expected.fit(X, Y, epochs=3, lr=0.1)
    monkeypatch.setattr(unrolled, "GENERATED_DIR", blocker / "unrolled")  # not a directory
    monkeypatch.setattr(unrolled, "_pointers", {})
    monkeypatch.setattr(unrolled, "_modules", {})
    net = Network(sizes, acts, loss, dtype="float64", seed=3)
    with pytest.warns(RuntimeWarning, match="could not write the unrolled kernel"):
        net.fit(X, Y, epochs=3, lr=0.1)
    np.testing.assert_array_equal(net.params, expected.params)


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_the_softmax_normalizer_log_is_within_three_ulp(dtype):
    import numba

    from mlpfast._kernels.vmath import log_at_least_one

    @numba.njit
    def logs(values, out):
        for i in range(values.shape[0]):
            out[i] = log_at_least_one(values[i])

    rng = np.random.default_rng(0)
    top = 700.0 if dtype == np.float64 else 88.0
    one = dtype(1)
    near_one = [np.nextafter(one, dtype(2))]
    for _ in range(20):
        near_one.append(np.nextafter(near_one[-1], dtype(2)))
    edges = [1.0, 1.5, 2.0, np.nextafter(dtype(2), one), 8.0, np.finfo(dtype).max]
    values = np.concatenate(
        [edges, near_one, 1 + rng.exponential(3.0, 20000), np.exp(rng.uniform(0, top, 2000))]
    ).astype(dtype)
    got = np.empty_like(values)
    logs(values, got)
    expected = np.log(values.astype(np.float64))
    assert got[0] == 0.0 and got[2] == dtype(np.log(2.0))
    # error in units in the last place of the exact result, in this dtype
    ulp = np.spacing(expected.astype(dtype)).astype(np.float64)
    assert (np.abs(got - expected) / ulp).max() <= 3


def test_a_kernel_of_another_dtype_is_refused():
    # Only the fit plan passes addresses, always of the network's dtype; a mix-up
    # must be an error, not a call of the wrong machine code.
    from mlpfast._kernels import train

    sizes, acts, loss = CASES["tutorial"]
    net = Network(sizes, acts, loss, dtype="float64", seed=0)
    X, Y = _data(sizes, loss, 50)
    plan = net._plan_fit(
        X, Y, None, batch_size=50, shuffle=False, seed=0, optimizer="sgd", lr=0.1,
        momentum=0.9, beta_1=0.9, beta_2=0.999, epsilon=1e-8, alpha=0.0,
        lr_schedule="constant", power_t=0.5,
    )  # fmt: skip
    other = unrolled.trainer_kernel(sizes, net._layout.codes, net._spec.kind, "float32")
    before = net.params.copy()
    with pytest.raises(TypeError, match="another dtype"):
        train.train_epochs_unrolled(
            plan.data, plan.model, plan.ws, plan.config, plan.coefs, net._counters,
            np.empty(1), other.addresses,
        )  # fmt: skip
    np.testing.assert_array_equal(net.params, before)


def test_a_short_scratch_buffer_is_refused():
    # The generated kernel indexes its scratch without bounds checks; the fit sizes
    # it (``unrolled.scratch_size``), and the kernel refuses a shorter one.
    sizes, acts, loss = CASES["two-outputs"]
    net = Network(sizes, acts, loss, dtype="float64", seed=0)
    kernel = unrolled.trainer_kernel(sizes, net._layout.codes, net._spec.kind, "float64")
    X, Y = _data(sizes, loss, 10)
    x, y, w = X.ravel(), Y.ravel(), np.ones(10)
    grads = np.zeros_like(net.params)
    needed = unrolled.scratch_size(sizes)
    args = (net.params, grads, x, 0, y, 0, w, 0, 10, 0.1)
    with pytest.raises(ValueError, match="scratch buffer is too short"):
        kernel._dispatcher(*args, np.zeros(needed - 1))
    assert not grads.any()
    kernel._dispatcher(*args, np.zeros(needed))
    assert grads.any()


@pytest.mark.parametrize("case", ["tutorial", "softmax", "tanh-output"])
@pytest.mark.parametrize("dtype", ["float64", "float32"])
def test_scratch_is_written_before_it_is_read_and_not_beyond_its_size(case, dtype):
    # The phases pass each row's values through the scratch buffer, a delta over
    # its unit's activation: whatever the buffer held before the call must not
    # matter (a value read before this call wrote it would show here), for short,
    # whole and several chunks with a short last one, from offsets into x, y, w.
    sizes, acts, loss = CASES[case]
    net = Network(sizes, acts, loss, dtype=dtype, seed=0)
    kernel = unrolled.trainer_kernel(sizes, net._layout.codes, net._spec.kind, dtype)._dispatcher
    needed = unrolled.scratch_size(sizes)
    for n in (1, unrolled.CHUNK - 1, unrolled.CHUNK, 2 * unrolled.CHUNK + 1):
        X, Y = _data(sizes, loss, n + 3, seed=n)
        x, y = X.astype(dtype).ravel(), Y.astype(dtype).ravel()
        w = np.random.default_rng(n).uniform(0.5, 2.0, n + 3).astype(dtype)
        results = []
        for fill in (0.0, np.nan, 1e30):
            scratch = np.full(needed + 64, fill, dtype=dtype)
            scratch[needed:] = -7.0
            grads = np.full_like(net.params, np.nan)
            total = kernel(
                net.params, grads, x, 3 * sizes[0], y, 3 * sizes[-1], w, 3, n, 0.25, scratch
            )
            assert (scratch[needed:] == -7.0).all()  # nothing written past its size
            results.append((total, grads))
        (total, grads), *others = results
        assert np.isfinite(total) and np.isfinite(grads).all()
        for other_total, other_grads in others:
            assert other_total == total
            np.testing.assert_array_equal(other_grads, grads)


def test_a_network_refitted_after_the_unrolled_path_was_switched_off_gets_its_scratch(
    monkeypatch,
):
    # A fit reuses the previous fit's buffers when nothing about them changed; the
    # general kernels' activation buffer is too short as the unrolled scratch for
    # short minibatches, so whether the fit is unrolled is part of that decision.
    sizes, acts, loss = CASES["tutorial"]
    X, Y = _data(sizes, loss, 40)
    net = Network(sizes, acts, loss, dtype="float64", seed=3)
    fresh = Network(sizes, acts, loss, dtype="float64", seed=3)
    with monkeypatch.context() as patch:
        patch.setattr(unrolled, "eligible", lambda *args: False)
        net.fit(X, Y, epochs=2, batch_size=8, lr=0.1)
        fresh.fit(X, Y, epochs=2, batch_size=8, lr=0.1)
    net.fit(X, Y, epochs=2, batch_size=8, lr=0.1)
    fresh._fit_workspace = None
    fresh.fit(X, Y, epochs=2, batch_size=8, lr=0.1)
    np.testing.assert_array_equal(net.params, fresh.params)
