"""Reliability (issue 6): divergence, Ctrl-C, determinism, concurrency, endurance, memmap."""

import _thread
import json
import os
import signal
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path

import numba
import numpy as np
import pytest

import mlpfast
import mlpfast.network
from mlpfast import DivergenceError, DivergenceWarning, Network, _threads
from mlpfast._kernels import train as _train

TWO_THREADS = pytest.mark.skipif(_threads.max_threads() < 2, reason="needs 2 Numba threads")
AFFINITY_CONTROL = pytest.mark.skipif(
    not hasattr(os, "sched_setaffinity") or len(getattr(os, "sched_getaffinity", set)(0)) < 2,
    reason="needs CPU affinity control and two CPUs",
)
# numba's workqueue layer aborts the process when two threads launch parallel regions
# at once ("Concurrent access"); omp and tbb allow it.
CONCURRENT_REGIONS = pytest.mark.skipif(
    numba.config.THREADING_LAYER == "workqueue",
    reason="the workqueue threading layer cannot run parallel regions concurrently",
)


def run_child(code: str, *args, timeout=300) -> dict:
    """Run ``code`` in a fresh interpreter importing this mlpfast; return its JSON line."""
    env = dict(os.environ, PYTHONPATH=str(Path(mlpfast.__file__).parent.parent))
    result = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code), *map(str, args)],
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    return json.loads(result.stdout.strip().splitlines()[-1])


def regression(n=64, seed=0):
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((n, 3))
    return X, X @ np.array([[1.0], [2.0], [-1.0]])


def classification(n=600, d=10, seed=0, dtype=np.float32):
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((n, d)).astype(dtype)
    return X, (X[:, 0] * X[:, 1] > 0).astype(dtype)


# ----------------------------------------------------------------------------- divergence
def test_divergence_raises_names_the_epoch_and_restores_the_last_finite_epoch():
    X, Y = regression()
    net = Network([3, 5, 1], ["tanh", "identity"], "mse", dtype="float64", seed=0)
    net.fit(X, Y, epochs=2, lr=0.01, optimizer="momentum", seed=1)
    params, state = net.params.copy(), net._state.copy()
    counters, history = net._counters.copy(), list(net.history)
    with pytest.raises(
        DivergenceError, match=r"diverged in epoch 3 .*Try a lower learning rate than 1e\+200"
    ):
        net.fit(X, Y, epochs=4, lr=1e200, optimizer="momentum")
    np.testing.assert_array_equal(net.params, params)
    np.testing.assert_array_equal(net._state, state)
    np.testing.assert_array_equal(net._counters, counters)
    assert net.history == history and net.epochs_trained == 2
    # Plain SGD then continues from the restored epoch (the other optimizers: see the
    # xfail below).
    losses = net.fit(X, Y, epochs=2, lr=0.01, optimizer="sgd")
    assert np.isfinite(losses).all() and net.epochs_trained == 4


@pytest.mark.parametrize("optimizer", ["momentum", "nesterov", "adam"])
def test_a_network_is_usable_after_divergence(optimizer):
    X, Y = regression()
    net = Network([3, 5, 1], ["tanh", "identity"], "mse", dtype="float64", seed=0)
    net.fit(X, Y, epochs=2, lr=0.01, optimizer=optimizer, seed=1)
    twin = Network([3, 5, 1], ["tanh", "identity"], "mse", dtype="float64", seed=0)
    twin.fit(X, Y, epochs=4, lr=0.01, optimizer=optimizer, seed=1)
    with pytest.raises(DivergenceError):
        net.fit(X, Y, epochs=4, lr=1e200, optimizer=optimizer)
    # A sane learning rate continues from the restored epoch as if nothing happened.
    losses = net.fit(X, Y, epochs=2, lr=0.01, optimizer=optimizer)
    assert np.isfinite(losses).all() and net.epochs_trained == 4
    np.testing.assert_array_equal(net.params, twin.params)


def test_divergence_in_a_later_epoch_of_one_fit_keeps_the_epochs_before_it():
    # Plain SGD on linear regression with lr above the stability limit: the error
    # grows geometrically and overflows float32 after a few dozen epochs.
    X, Y = regression()

    def fresh():
        return Network([3, 1], "identity", "mse", dtype="float32", seed=0)

    net = fresh()
    with pytest.raises(DivergenceError) as info:
        net.fit(X, Y, epochs=500, batch_size=8, lr=0.8, shuffle=False)
    done = net.epochs_trained
    assert 5 < done < 500, done
    assert f"diverged in epoch {done + 1} " in str(info.value)
    assert "lower learning rate" in str(info.value)
    assert len(net.history) == done and np.isfinite(net.history).all()
    twin = fresh()
    twin.fit(X, Y, epochs=done, batch_size=8, lr=0.8, shuffle=False)
    np.testing.assert_array_equal(net.params, twin.params)  # the last finite epoch
    np.testing.assert_array_equal(net._counters, twin._counters)
    assert np.isfinite(net.predict(X)).all()


def test_on_divergence_warn_returns_the_finite_epochs():
    X, Y = regression()
    net = Network([3, 1], "identity", "mse", dtype="float32", seed=0)
    with pytest.warns(DivergenceWarning, match=r"diverged in epoch \d+ .*lower learning rate"):
        losses = net.fit(
            X, Y, epochs=500, batch_size=8, lr=0.8, shuffle=False, on_divergence="warn"
        )
    assert 5 < len(losses) == net.epochs_trained < 500
    assert np.isfinite(losses).all() and np.isfinite(net.params).all()
    assert issubclass(DivergenceWarning, RuntimeWarning)


def test_divergence_restores_the_adam_state_too():
    X, Y = regression()
    net = Network([3, 4, 1], ["relu", "identity"], "mse", dtype="float64", seed=3)
    net.fit(X, Y, epochs=1, optimizer="adam", lr=1e-3)
    snapshot = net.params.copy(), net._state.copy()
    with pytest.warns(DivergenceWarning, match="epoch 2"):
        net.fit(X, Y, epochs=3, optimizer="adam", lr=1e300, on_divergence="warn")
    np.testing.assert_array_equal(net.params, snapshot[0])
    np.testing.assert_array_equal(net._state, snapshot[1])


# ----------------------------------------------------------------------------- Ctrl-C
def _interrupter(how):
    if how == "SIGINT":
        main = threading.main_thread().ident
        return lambda: signal.pthread_kill(main, signal.SIGINT)
    return _thread.interrupt_main


@pytest.mark.parametrize("how", ["interrupt_main", "SIGINT"])
def test_ctrl_c_leaves_a_usable_network_at_an_epoch_boundary(how, tmp_path):
    if how == "SIGINT" and signal.getsignal(signal.SIGINT) is not signal.default_int_handler:
        pytest.skip("SIGINT is not Python's default KeyboardInterrupt handler here")
    X, y = classification()

    def fresh():
        return Network([10, 16, 1], ["relu", "sigmoid"], "binary_crossentropy", seed=0, n_threads=1)

    net = fresh()
    timers = []

    def callback(done, losses):  # the fit is surely running: interrupt it shortly
        if not timers:
            timers.append(threading.Timer(0.3, _interrupter(how)))
            timers[0].start()

    threads_before = numba.get_num_threads()
    try:
        with pytest.warns(RuntimeWarning, match="interrupted after"):
            net.fit(X, y, epochs=200_000, batch_size=32, seed=3, callback=callback)
    except KeyboardInterrupt:
        pytest.fail("KeyboardInterrupt escaped Network.fit")
    finally:
        for timer in timers:
            timer.join()
    done = net.epochs_trained
    assert 0 < done < 200_000
    assert numba.get_num_threads() == threads_before and _threads._blas_users == 0
    # At an epoch boundary: exactly the parameters of an uninterrupted `done`-epoch fit.
    twin = fresh()
    twin.fit(X, y, epochs=done, batch_size=32, seed=3)
    np.testing.assert_array_equal(net.params, twin.params)
    np.testing.assert_array_equal(net._counters, twin._counters)
    np.testing.assert_array_equal(net.predict(X), twin.predict(X))
    net.save(tmp_path / "interrupted.npz")
    loaded = Network.load(tmp_path / "interrupted.npz")
    np.testing.assert_array_equal(loaded.params, net.params)
    assert np.isfinite(loaded.fit(X, y, epochs=1, batch_size=32)).all()


def test_ctrl_c_keeps_history_losses_and_counters_consistent(monkeypatch):
    X, y = classification(n=200)
    net = Network([10, 4, 1], ["relu", "sigmoid"], "binary_crossentropy", seed=0, n_threads=1)
    real = _train.train_epochs
    calls = []

    def train_epochs(*args):
        result = real(*args)
        calls.append(result)
        if len(calls) == 2:  # the interpreter's first chance to raise a pending SIGINT
            raise KeyboardInterrupt
        return result

    monkeypatch.setattr(_train, "train_epochs", train_epochs)
    with pytest.warns(RuntimeWarning, match="interrupted") as record:
        losses = net.fit(X, y, epochs=100_000)
    done = net.epochs_trained
    assert done == calls[0][0] + calls[1][0]
    assert len(net.history) == done
    assert len(losses) == done
    assert f"after {done} of" in str(record[0].message)


# ----------------------------------------------------------------------------- determinism
def _wide(dtype, n_threads):
    # 33k parameters, 6.3 MFLOP per minibatch of 32: with 2 threads, the rows of a
    # minibatch are split across threads and the update is parallel (ROW_SPLIT:
    # 21k activations and deltas move fewer values than 33k gradients).
    return Network(
        [64, 256, 64, 3],
        ["relu", "tanh", "softmax"],
        "categorical_crossentropy",
        dtype=dtype,
        seed=2,
        n_threads=n_threads,
    )


def _small_batches(dtype, n_threads):
    # 2.7k parameters, 3.2 MFLOP per minibatch of 200: each thread runs its own
    # block's gradient, then the
    # gradients are summed (GRADIENT_SUM).
    return Network(
        [64, 40, 3],
        ["relu", "softmax"],
        "categorical_crossentropy",
        dtype=dtype,
        seed=2,
        n_threads=n_threads,
    )


def _always_split(monkeypatch):
    """Split every minibatch that has rows enough for two blocks (the plan's cost
    model says no to the small ones these tests use)."""
    for name in ("CREW_STEP_SECONDS", "CROSSING_SECONDS_PER_VALUE", "STREAMED_SECONDS_PER_VALUE"):
        monkeypatch.setattr(mlpfast.network, name, 0.0)


# (network, rows, batch, strategy when threaded): 1030 rows leave a last minibatch of
# 30 rows (too small to split: one block, in the first slab); 1040 rows one
# of 40 (split in two blocks of 16 and 24 rows).
FITS = {
    "row_split": (_wide, 512, 32, _train.ROW_SPLIT),
    "gradient_sum": (_small_batches, 1030, 200, _train.GRADIENT_SUM),
    "gradient_sum_short_tail": (_small_batches, 1040, 200, _train.GRADIENT_SUM),
}


def _wide_fit(dtype, n_threads, case="row_split", monkeypatch=None):
    make, rows, batch, _ = FITS[case]
    if monkeypatch is not None:
        _always_split(monkeypatch)
    rng = np.random.default_rng(0)
    X, y = rng.standard_normal((rows, 64)), rng.integers(0, 3, rows)
    net = make(dtype, n_threads)
    losses = net.fit(
        X, y, epochs=3, batch_size=batch, lr=0.01, optimizer="adam", seed=5, alpha=1e-3
    )
    return net, losses


@pytest.mark.parametrize("case", list(FITS))
@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("n_threads", [1, pytest.param(2, marks=TWO_THREADS)])
def test_same_seed_data_and_threads_are_bitwise_identical(dtype, n_threads, case, monkeypatch):
    a, losses_a = _wide_fit(dtype, n_threads, case, monkeypatch)
    b, losses_b = _wide_fit(dtype, n_threads, case, monkeypatch)
    batch, strategy = FITS[case][2], FITS[case][3]
    # the threaded path really ran, with the intended strategy
    assert a._parallel_plan(batch, n_threads) == (n_threads, strategy if n_threads > 1 else 0)
    np.testing.assert_array_equal(a.params, b.params)
    np.testing.assert_array_equal(a._state, b._state)
    np.testing.assert_array_equal(losses_a, losses_b)


@TWO_THREADS
@pytest.mark.parametrize("case", list(FITS))
@pytest.mark.parametrize("dtype,tolerance", [("float64", 1e-10), ("float32", 1e-4)])
def test_another_thread_count_agrees_within_the_stated_tolerance(
    dtype, tolerance, case, monkeypatch
):
    # The stated tolerance (README, Determinism): only the order of the per-block
    # gradient sums changes; after 3 epochs of adam, |p1 - p2| <= tol * max|p|.
    one, losses_one = _wide_fit(dtype, 1, case, monkeypatch)
    two, losses_two = _wide_fit(dtype, 2, case, monkeypatch)
    scale = np.abs(one.params).max()
    np.testing.assert_allclose(two.params, one.params, rtol=0, atol=tolerance * scale)
    np.testing.assert_allclose(losses_two, losses_one, rtol=tolerance)


@TWO_THREADS
@pytest.mark.parametrize("optimizer", ["sgd", "momentum", "nesterov"])
def test_gradient_sum_matches_serial_for_every_optimizer_and_sample_weights(optimizer, monkeypatch):
    _always_split(monkeypatch)
    rng = np.random.default_rng(1)
    X, y = rng.standard_normal((300, 64)), rng.integers(0, 3, 300)
    w = rng.random(300) + 0.5
    nets = [_small_batches("float64", threads) for threads in (1, 2)]
    assert nets[1]._parallel_plan(128, 2) == (2, _train.GRADIENT_SUM)
    losses = [
        net.fit(
            X,
            y,
            epochs=2,
            batch_size=128,
            lr=0.05,
            optimizer=optimizer,
            alpha=1e-2,
            sample_weight=w,
            seed=3,
        )
        for net in nets
    ]
    np.testing.assert_allclose(nets[1].params, nets[0].params, rtol=0, atol=1e-10)
    np.testing.assert_allclose(losses[1], losses[0], rtol=1e-10)


@TWO_THREADS
def test_threaded_gradients_match_serial_under_both_strategies(monkeypatch):
    _always_split(monkeypatch)
    rng = np.random.default_rng(4)
    # The whole data set is one minibatch: 48 rows of _wide move fewer activations
    # than parameters (ROW_SPLIT), 500 rows of _small_batches the other way round.
    for make, rows, strategy in (
        (_wide, 48, _train.ROW_SPLIT),
        (_small_batches, 500, _train.GRADIENT_SUM),
    ):
        X, y = rng.standard_normal((rows, 64)), rng.integers(0, 3, rows)
        serial, threaded = make("float64", 1), make("float64", 2)
        assert threaded._parallel_plan(rows, 2) == (2, strategy)
        expected = serial.gradients(X, y).flat.copy()
        np.testing.assert_allclose(threaded.gradients(X, y).flat, expected, rtol=1e-12, atol=1e-14)


@pytest.mark.parametrize("blocks", [2, 3, 4, 7, 16])
def test_a_slab_holds_every_block_of_every_minibatch(blocks):
    # Kernels do not check bounds: a block longer than its slab would write into
    # the next one.  Every minibatch size up to the batch, with the kernel's edges.
    edge = _train._block_edge.py_func
    config = np.zeros(_train.N_CONFIG, dtype=np.int64)
    config[_train.N_BLOCKS] = blocks
    for batch in range(blocks * _train.MIN_BLOCK_ROWS, 400, 7):
        slab = Network._slab_rows(batch, blocks)
        for size in range(1, batch + 1):
            n_blocks = _train._step_blocks.py_func(config, size)
            if n_blocks <= 1:
                assert size <= slab
                continue
            longest = max(
                edge(t + 1, n_blocks, size) - edge(t, n_blocks, size) for t in range(n_blocks)
            )
            assert longest <= slab, (batch, size, n_blocks)


@TWO_THREADS
@pytest.mark.parametrize("case", list(FITS))
def test_a_block_gives_the_same_result_whichever_thread_runs_it(case, monkeypatch):
    # A threaded epoch is one parallel region whose threads claim (phase, block)
    # tasks.  Planned for 2 blocks and run on one thread, that thread must claim
    # every task in turn (no deadlock) and get the 2-thread result bit for bit.
    _always_split(monkeypatch)
    make, rows, batch, strategy = FITS[case]
    rng = np.random.default_rng(0)
    X, y = rng.standard_normal((rows, 64)), rng.integers(0, 3, rows)
    params = {}
    for threads in (2, 1):
        net = make("float64", 2)
        plan = net._plan_fit(
            X,
            y,
            None,
            batch_size=batch,
            shuffle=True,
            seed=5,
            optimizer="adam",
            lr=0.01,
            momentum=0.9,
            beta_1=0.9,
            beta_2=0.999,
            epsilon=1e-8,
            alpha=1e-3,
            lr_schedule="constant",
            power_t=0.5,
        )
        assert (plan.config[_train.N_BLOCKS], plan.config[_train.STRATEGY]) == (2, strategy)
        plan.threads = threads
        net._run_epochs(plan, 3, "raise", None)
        params[threads] = net.params.copy()
    np.testing.assert_array_equal(params[1], params[2])


@TWO_THREADS
@CONCURRENT_REGIONS
def test_threaded_fits_in_more_threads_than_cores_finish_and_match(monkeypatch):
    # Each fit's threads wait for each other by spinning, then yielding the core:
    # four of them on two cores (two fits at once) must neither hang nor crawl into
    # a timeout, and each fit must match the same fit run alone.
    _always_split(monkeypatch)
    make, rows, batch, _ = FITS["gradient_sum"]
    rng = np.random.default_rng(0)
    X, y = rng.standard_normal((rows, 64)), rng.integers(0, 3, rows)

    def fit(seed):
        net = make("float64", 2)
        net.fit(X, y, epochs=20, batch_size=batch, lr=0.01, optimizer="adam", seed=seed)
        return net.params

    alone = {seed: fit(seed) for seed in (1, 2)}
    results, errors = {}, []

    def work(seed):
        try:
            results[seed] = fit(seed)
        except BaseException as exc:  # reported below, in the main thread
            errors.append(exc)

    # (daemon threads: a hang fails this test instead of keeping pytest from exiting)
    workers = [threading.Thread(target=work, args=(seed,), daemon=True) for seed in (1, 2)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join(timeout=120)
    assert not any(worker.is_alive() for worker in workers), "threaded fits hung"
    assert not errors, errors
    for seed in (1, 2):
        np.testing.assert_array_equal(results[seed], alone[seed])


@TWO_THREADS
@AFFINITY_CONTROL
def test_threads_confined_to_fewer_cpus_run_serially_with_a_warning():
    # Numba's threads inherit the affinity of the thread that first runs a region:
    # narrowed to one CPU after import, two threads took 15x as long as one (they
    # wait for each other on one core).  A Python thread started after the
    # narrowing must fit serially (bitwise the n_threads=1 fit) and warn; the main
    # thread, which read its affinity before, keeps its threads (under
    # OMP_PROC_BIND its own first region binds it to one CPU: not a narrowing).
    out = run_child(
        """
        import json, os, threading, warnings
        import numpy as np
        import mlpfast
        from mlpfast import _threads
        for name in ("CREW_STEP_SECONDS", "CROSSING_SECONDS_PER_VALUE",
                     "STREAMED_SECONDS_PER_VALUE"):
            setattr(mlpfast.network, name, 0.0)  # split even small minibatches
        rng = np.random.default_rng(0)
        X, y = rng.standard_normal((400, 8)), rng.integers(0, 2, 400).astype(float)

        def fit(threads):
            net = mlpfast.Network([8, 16, 1], ["relu", "sigmoid"], "binary_crossentropy",
                                  dtype="float64", seed=0, n_threads=threads)
            net.fit(X, y, epochs=3, batch_size=200, lr=0.1, optimizer="adam", seed=0)
            return net.params.copy()

        ALL_CPUS = set(os.sched_getaffinity(0))

        def narrow():  # this thread to one CPU
            os.sched_setaffinity(0, {min(ALL_CPUS)})

        def in_new_thread(function):
            worker = threading.Thread(target=function)
            worker.start()
            worker.join()

        out = {"main_before": _threads.usable_threads(2)}
        serial, threaded = fit(1), fit(2)
        narrow()
        out["main_after"] = _threads.usable_threads(2)

        def confined():
            with warnings.catch_warnings(record=True) as caught:
                warnings.simplefilter("always")
                out["confined"] = _threads.usable_threads(2)
                params = fit(2)
            out["warnings"] = [str(w.message) for w in caught]
            out["equals_serial"] = bool(np.array_equal(params, serial))

        in_new_thread(confined)

        def narrowed_after_a_serial_fit():
            # a serial fit starts no team: a narrowing after it still counts
            os.sched_setaffinity(0, ALL_CPUS)
            fit(1)
            narrow()
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                out["after_serial"] = _threads.usable_threads(2)

        in_new_thread(narrowed_after_a_serial_fit)

        def narrowed_after_a_predict():
            # a threaded predict starts the team (even for one block of rows)
            os.sched_setaffinity(0, ALL_CPUS)
            net = mlpfast.Network([8, 16, 1], ["relu", "sigmoid"], "binary_crossentropy",
                                  n_threads=2)
            net.predict(X[:300])
            narrow()
            out["after_predict"] = _threads.usable_threads(2)

        in_new_thread(narrowed_after_a_predict)
        out["threaded_differs"] = not np.array_equal(threaded, serial)
        print(json.dumps(out))
        """
    )
    assert out["main_before"] == out["main_after"] == 2
    assert out["threaded_differs"], "the 2-thread fit was not threaded: the test proves nothing"
    assert out["confined"] == 1 == out["after_serial"]
    assert out["after_predict"] == 2
    assert out["equals_serial"]
    assert len(out["warnings"]) == 1 and "can only run on 1 CPU" in out["warnings"][0]


@TWO_THREADS
@AFFINITY_CONTROL
def test_an_affinity_narrowed_between_numbas_import_and_mlpfasts_is_noticed():
    out = run_child(
        """
        import json, os, warnings
        import numba  # (another library imported it first)
        os.sched_setaffinity(0, {sorted(os.sched_getaffinity(0))[0]})
        import mlpfast
        from mlpfast import _threads
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            threads = _threads.usable_threads(2)
        print(json.dumps({"threads": threads, "warned": len(caught)}))
        """
    )
    assert out == {"threads": 1, "warned": 1}


# ----------------------------------------------------------------------------- concurrency
def _small(seed):
    return Network([10, 16, 1], ["relu", "sigmoid"], "binary_crossentropy", seed=seed, n_threads=1)


def test_fits_in_several_python_threads_match_serial_and_release_the_gil(monkeypatch):
    # Kernel calls of ~0.5 s: were the GIL held during one, the main thread's
    # heartbeat would stall that long.
    monkeypatch.setattr(mlpfast.network, "TARGET_CALL_SECONDS", 0.5)
    X, y = classification()
    probe = _small(0)
    started = time.perf_counter()
    probe.fit(X, y, epochs=20)
    epochs = max(20, int(20 * 0.8 / (time.perf_counter() - started)))  # ~0.8 s per fit
    seeds = [1, 2, 3]
    serial = {}
    for seed in seeds:
        net = _small(seed)
        net.fit(X, y, epochs=epochs, seed=seed)
        serial[seed] = net.params.copy()

    spans, results, errors = {}, {}, []

    def work(seed):
        try:
            net = _small(seed)
            begin = time.perf_counter()
            net.fit(X, y, epochs=epochs, seed=seed)
            spans[seed] = (begin, time.perf_counter())
            results[seed] = net.params
        except BaseException as exc:  # reported below, in the main thread
            errors.append(exc)

    workers = [threading.Thread(target=work, args=(seed,)) for seed in seeds]
    gaps, last = [], time.perf_counter()
    for worker in workers:
        worker.start()
    while any(worker.is_alive() for worker in workers):
        time.sleep(0.002)
        now = time.perf_counter()
        gaps.append(now - last)
        last = now
    for worker in workers:
        worker.join()
    assert not errors, errors
    for seed in seeds:
        np.testing.assert_array_equal(results[seed], serial[seed])
    # The fits overlapped in time, and the main thread kept running meanwhile.
    assert max(begin for begin, _ in spans.values()) < min(end for _, end in spans.values())
    assert max(gaps) < 0.25, f"the main thread stalled {max(gaps):.3f} s: GIL held?"


@TWO_THREADS
def test_blas_is_capped_to_one_thread_in_worker_threads_too():
    _wide_fit("float64", 2)  # starts Numba's threading layer, as any threaded fit does
    seen = []

    def work():
        with _threads.kernel_threads(1):
            seen.append([c.num_threads for c in _threads._controller().lib_controllers])

    with _threads.kernel_threads(1):  # the main thread: capped
        assert all(n == 1 for n in [c.num_threads for c in _threads._controller().lib_controllers])
    worker = threading.Thread(target=work)
    worker.start()
    worker.join()
    assert seen and all(n == 1 for n in seen[0]), seen


@CONCURRENT_REGIONS
def test_predict_from_several_threads_on_one_network():
    rng = np.random.default_rng(1)
    net = Network(
        [10, 32, 3], ["tanh", "softmax"], "categorical_crossentropy", seed=0, n_threads=None
    )
    inputs = [rng.standard_normal((int(n), 10)) for n in rng.integers(1, 1500, 12)]
    expected = [net.predict(X) for X in inputs]
    losses = [net.loss(X, np.argmax(p, axis=1)) for X, p in zip(inputs, expected, strict=True)]
    mismatches, errors = [], []

    def work(offset):
        try:
            for repeat in range(6):
                i = (offset + repeat) % len(inputs)
                if not np.array_equal(net.predict(inputs[i]), expected[i]):
                    mismatches.append(i)
                if net.loss(inputs[i], np.argmax(expected[i], axis=1)) != losses[i]:
                    mismatches.append(("loss", i))
        except BaseException as exc:
            errors.append(exc)

    workers = [threading.Thread(target=work, args=(k,)) for k in range(4)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()
    assert not errors and not mismatches, (errors, mismatches)
    assert _threads._blas_users == 0


# ----------------------------------------------------------------------------- endurance
ENDURANCE = """
    import gc, json
    import numpy as np
    from mlpfast import Network

    def rss_kib(field="VmRSS"):
        with open("/proc/self/status") as f:
            return next(int(line.split()[1]) for line in f if line.startswith(field + ":"))

    rng = np.random.default_rng(0)
    X = rng.standard_normal((64, 8)).astype(np.float32)
    y = (X[:, 0] > 0).astype(np.float32)
    kept = Network([8, 16, 1], ["relu", "sigmoid"], "binary_crossentropy", seed=0)

    def cycle(i):
        # Alternate a long-lived network with fresh ones, and vary the shapes a little.
        net = kept if i % 2 else Network([8, 16, 1], ["relu", "sigmoid"],
                                         "binary_crossentropy", seed=i)
        rows = 32 + i % 32
        net.fit(X[:rows], y[:rows], epochs=1, batch_size=16)
        net.predict(X[: 1 + i % 64])

    for i in range(300):  # warm-up: kernels loaded, allocator arenas grown
        cycle(i)
    gc.collect()
    before = rss_kib()
    for i in range(1000):
        cycle(i)
    gc.collect()
    print(json.dumps({"before": before, "after": rss_kib()}))
"""


@pytest.mark.slow
def test_a_thousand_fit_predict_calls_do_not_grow_rss():
    rss = run_child(ENDURANCE)
    growth_mib = (rss["after"] - rss["before"]) / 1024
    assert growth_mib <= 4, f"RSS grew {growth_mib:.1f} MiB over 1000 fit/predict calls"


# ----------------------------------------------------------------------------- memmap
MEMMAP = """
    import json, sys, threading, time
    import numpy as np
    from mlpfast import Network

    path, n, d, mode = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), sys.argv[4]

    def rss_anon_kib():
        with open("/proc/self/status") as f:
            return next(int(line.split()[1]) for line in f if line.startswith("RssAnon:"))

    X = np.memmap(path, dtype=np.float32, mode="w+", shape=(n, d))
    for start in range(0, n, 8192):  # written in slices: never whole in anonymous memory
        block = np.random.default_rng(start).standard_normal((min(8192, n - start), d))
        X[start:start + 8192] = block
    X.flush()
    del X
    X = np.memmap(path, dtype=np.float32, mode=mode, shape=(n, d))
    y = np.asarray(X[:, 0] > 0, dtype=np.float32)

    def fresh():
        return Network([d, 16, 1], ["relu", "sigmoid"], "binary_crossentropy", seed=0,
                       n_threads=1)

    # Warm-up with the same argument types, so loading the kernels is not counted.
    small = np.array(X[:512])
    small.setflags(write=X.flags.writeable)
    fresh().fit(small, y[:512], epochs=1, batch_size=256)
    fresh().predict(small)

    peak = [0]
    done = threading.Event()

    def sample():
        while not done.is_set():
            peak[0] = max(peak[0], rss_anon_kib())
            time.sleep(0.005)

    base = rss_anon_kib()
    sampler = threading.Thread(target=sample)
    sampler.start()
    net = fresh()
    net.fit(X, y, epochs=1, batch_size=256, shuffle=True)
    out = net.predict(X)
    done.set()
    sampler.join()
    peak = max(peak[0], rss_anon_kib())
    # The same fit on an in-memory copy gives the same parameters.
    copy = fresh()
    copy.fit(np.array(X), y, epochs=1, batch_size=256, shuffle=True)
    print(json.dumps({"base": base, "peak": peak, "finite": bool(np.isfinite(out).all()),
                      "same": bool(np.array_equal(net.params, copy.params))}))
"""


@pytest.mark.slow
@pytest.mark.parametrize(
    "mode",
    [
        "r",  # read-only: used in place through a writeable alias (never written)
        "c",  # copy-on-write: writeable, and never written by mlpfast
    ],
)
def test_fit_on_a_memmap_gathers_minibatches_without_copying_x(tmp_path, mode):
    n, d = 393_216, 64  # 96 MiB of float32
    rss = run_child(MEMMAP, tmp_path / "X.f32", n, d, mode)
    file_mib = n * d * 4 / 2**20
    growth_mib = (rss["peak"] - rss["base"]) / 1024
    # Allowed: y, the permutation, predict's output (~5 MiB); not X (96 MiB).
    assert growth_mib < 16 < file_mib / 4, f"anonymous memory grew {growth_mib:.1f} MiB"
    assert rss["finite"] and rss["same"]


# ------------------------------------------------------------------- debugging mode
def test_kernels_run_as_python_under_numba_disable_jit():
    # CONTRIBUTING: NUMBA_DISABLE_JIT=1 runs the kernels as Python to debug them;
    # every kernel must then be plain Python, intrinsics included (a shuffled fit
    # gathers its rows with prefetch hints, the hint a no-op there).
    X, Y = regression(100)
    code = """
    import json, sys
    import numpy as np
    from mlpfast import Network
    rng = np.random.default_rng(0)
    X = rng.standard_normal((100, 3))
    Y = X @ np.array([[1.0], [2.0], [-1.0]])
    net = Network([3, 4, 1], ["tanh", "identity"], "mse", dtype="float64", seed=0, n_threads=1)
    losses = net.fit(X, Y, epochs=2, batch_size=32, lr=0.01, seed=1, optimizer="adam")
    print(json.dumps({"losses": losses.tolist(), "params": net.params.tolist()}))
    """
    env = dict(os.environ, NUMBA_DISABLE_JIT="1")
    env["PYTHONPATH"] = str(Path(mlpfast.__file__).parent.parent)
    result = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    got = json.loads(result.stdout.strip().splitlines()[-1])
    net = Network([3, 4, 1], ["tanh", "identity"], "mse", dtype="float64", seed=0, n_threads=1)
    losses = net.fit(X, Y, epochs=2, batch_size=32, lr=0.01, seed=1, optimizer="adam")
    np.testing.assert_allclose(got["losses"], losses, rtol=1e-9)
    np.testing.assert_allclose(got["params"], net.params, rtol=1e-9, atol=1e-12)
