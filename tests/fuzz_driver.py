"""Hostile-input fuzzing of mlpfast's public entry points, run by test_fuzz.py.

Usage: ``python fuzz_driver.py TARGET [EXAMPLES]``; prints ``fuzz TARGET ok`` and exits 0
when every example ended in an accepted outcome.  It runs in a child process so that
a crash of the interpreter (a kernel writing outside a buffer) fails the test instead
of taking pytest down.

Accepted outcomes, per entry point:

- ``Network`` methods: a *correct* result (checked against the numpy oracle, or by
  construction), or a ``ValueError``/``TypeError``; ``fit`` may also end in
  ``DivergenceError`` (huge inputs or learning rates) with finite, restored parameters.
  Inputs that are plainly valid must not be rejected.
- The drop-in ``mlpfast.reference.mlp``: exactly the reference trainer's outcome (the
  same result, or an exception of the same type: the reference asserts and lets numpy
  raise, and the drop-in must do the same).
- ``persistence.load``: ``NetworkFileError`` (a ValueError), or a network identical to
  the one saved (a flipped byte the format does not read, such as a zip timestamp).
- The estimators: a result of the right shape, or a ``ValueError``/``TypeError``.

Known bugs are kept out of the strategies and pinned by xfail tests in test_fuzz.py
(search for KNOWN there).
"""

from __future__ import annotations

import faulthandler
import os
import sys
import tempfile
import warnings

import numpy as np
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import fuzz_inputs as fi  # noqa: E402
import oracle  # noqa: E402

from mlpfast import DivergenceError, Network  # noqa: E402
from mlpfast import persistence as P  # noqa: E402
from mlpfast import reference as R  # noqa: E402

EXAMPLES = int(sys.argv[2]) if len(sys.argv) > 2 else 100
# The same examples every run (CI must not fail on a draw no one has seen before);
# MLPFAST_FUZZ_RANDOM=1 draws new ones, for hunting.
SETTINGS = settings(
    max_examples=EXAMPLES,
    deadline=None,
    database=None,
    suppress_health_check=list(HealthCheck),
    derandomize=not os.environ.get("MLPFAST_FUZZ_RANDOM"),
)


def test_forward_and_predict():
    @SETTINGS
    @given(st.data())
    def check(data):
        net = data.draw(fi.network())
        n = data.draw(fi.ROWS)
        X = data.draw(fi.hostile(data.draw(fi.sample_shape(n, net.layer_sizes[0]))))
        method = data.draw(st.sampled_from([net.forward, net.predict]))
        kind, result = fi.outcome(method, X)
        expected = fi.valid_X(X, net.layer_sizes[0], net.dtype)
        if kind == "ok":
            assert expected is not None, f"accepted invalid X {X!r}"
            assert result.dtype == net.dtype and result.shape == (expected.shape[0], net.n_outputs)
            with np.errstate(all="ignore"):
                want = oracle.network_forward(net.coefs, net.intercepts, net.activations, expected)
            fi.assert_close(result, want, net.dtype, scale=float(np.abs(expected).max()))
        else:
            assert expected is None, f"rejected valid X: {result!r}"

    check()


def test_loss_and_gradients():
    @SETTINGS
    @given(st.data())
    def check(data):
        net = data.draw(fi.network())
        X, y, n = data.draw(fi.data_for(net))
        weights = data.draw(fi.sample_weights(n)) if data.draw(st.booleans()) else None
        Xv = fi.valid_X(X, net.layer_sizes[0], net.dtype)
        Yv = (
            None
            if Xv is None
            else fi.valid_targets(y, net.loss_name, net.n_outputs, Xv.shape[0], net.dtype)
        )
        wv = None
        if Yv is not None and weights is not None:
            w = fi.as_numbers(weights, net.dtype)
            if w is not None and w.ndim == 0:
                w = np.full(Xv.shape[0], w)
            if (
                w is not None
                and w.shape == (Xv.shape[0],)
                and np.isfinite(w).all()
                and w.min() >= 0
                and w.sum() > 0
            ):
                wv = w
        valid = Yv is not None and (weights is None or wv is not None)
        kind, result = fi.outcome(net.loss, X, y, sample_weight=weights)
        if kind == "ok":
            assert valid, f"loss accepted invalid input {X!r}, {y!r}, {weights!r}"
            with np.errstate(all="ignore"):
                want = oracle.network_loss(
                    net.coefs, net.intercepts, net.activations, net.loss_name, Xv, Yv, wv
                )
            fi.assert_close(result, want, net.dtype, scale=float(np.abs(Xv).max()))
        else:
            assert not valid, f"loss rejected valid input: {result!r}"
        kind, grads = fi.outcome(net.gradients, X, y, sample_weight=weights)
        assert (kind == "ok") == valid, grads
        step = np.zeros_like(net.params)  # a fresh network's "last gradients"
        if kind == "ok":
            assert grads.flat.shape == net.params.shape and grads.flat.dtype == net.dtype
            assert [g.shape for g in grads.coefs] == [w.shape for w in net.coefs]
            step = grads.flat.copy()
        lr = data.draw(
            st.sampled_from(
                [0.1, 1e-3, 0.0, -1.0, np.nan, np.inf, "0.1", 1j, True, None, np.float32(0.5), 2]
            )
        )
        before = net.params.copy()
        kind, _ = fi.outcome(net.update, lr)
        if kind == "ok":
            with np.errstate(all="ignore"):
                expected = before - net.dtype.type(lr) * step
            np.testing.assert_array_equal(net.params, expected)
        else:
            np.testing.assert_array_equal(net.params, before)

    check()


GOOD = dict(
    epochs=[1, 2],
    batch_size=[1, 3, 32, 2**70],
    lr=[0.01, 0.5],
    optimizer=["sgd", "momentum", "nesterov", "adam"],
    seed=[None, 0, 5, 2**62],
    alpha=[0.0, 1e-3],
    momentum=[0.9, 0.0],
    lr_schedule=["constant", "invscaling"],
    shuffle=[True, False],
    on_divergence=["raise", "warn"],
)
# KNOWN: seeds >= 2**63 raise OverflowError (test_fuzz.py pins it); not drawn here.
BAD = dict(
    epochs=[-1, 1.5, True, "2", None],
    batch_size=[0, -5, 2.0, None, "8"],
    lr=[0.0, -1.0, np.nan, np.inf, "0.1", 1j, None, True],
    optimizer=["Adam", "", None, 3, "rmsprop"],
    seed=[-1, 1.5, "1", True],
    alpha=[-1.0, np.nan, "0"],
    momentum=[1.0, -0.1, np.nan, 2],
    lr_schedule=["adaptive", None],
    shuffle=[],
    on_divergence=["ignore", None, 1],
)


def test_fit():
    @SETTINGS
    @given(st.data())
    def check(data):
        net = data.draw(fi.network())
        X, y, _ = data.draw(fi.data_for(net))
        kwargs, bad = {}, set()
        for name in GOOD:
            if BAD[name] and data.draw(st.integers(0, 7)) == 0:
                kwargs[name] = data.draw(st.sampled_from(BAD[name]))
                bad.add(name)
            elif data.draw(st.booleans()):
                kwargs[name] = data.draw(st.sampled_from(GOOD[name]))
        if "lr" not in bad and data.draw(st.integers(0, 9)) == 0:
            kwargs["lr"] = 1e30  # sure to diverge
        good = not bad
        Xv = fi.valid_X(X, net.layer_sizes[0], net.dtype)
        Yv = (
            None
            if Xv is None
            else fi.valid_targets(y, net.loss_name, net.n_outputs, Xv.shape[0], net.dtype)
        )
        before = net.params.copy()
        kind, result = fi.outcome(net.fit, X, y, verbose=False, also=(DivergenceError,), **kwargs)
        if kind == "ok":
            assert Yv is not None and good, f"fit accepted invalid input {kwargs}"
            epochs = kwargs.get("epochs", 1)
            assert result.dtype == np.float64 and result.shape[0] <= epochs
            if kwargs.get("on_divergence") != "warn":
                assert result.shape == (epochs,)
            assert np.isfinite(result).all() and np.isfinite(net.params).all(), result
            assert len(net.history) == net.epochs_trained == result.shape[0]
        elif isinstance(result, DivergenceError):
            assert "lower learning rate" in str(result)
            assert np.isfinite(net.params).all()
        else:
            assert not (Yv is not None and good), f"fit rejected valid input: {result!r}"
            np.testing.assert_array_equal(net.params, before)

    check()


def test_constructor():
    size = st.one_of(
        st.integers(-2, 6),
        st.sampled_from([2.0, True, "3", None, 10**30, np.int64(3), np.uint8(2)]),
    )
    names = st.sampled_from(
        [
            "identity",
            "relu",
            "leaky_relu",
            "sigmoid",
            "logistic",
            "tanh",
            "elu",
            "softplus",
            "softmax",
            "exp",
            "RELU",
            "",
            None,
            3,
            "swish",
        ]
    )

    @SETTINGS
    @given(
        st.one_of(
            st.lists(size, min_size=0, max_size=4),
            st.sampled_from([None, "2,3", 5, (2, 3), np.array([2, 3]), {2: 1, 3: 1}]),
        ),
        st.one_of(names, st.lists(names, min_size=0, max_size=4)),
        st.sampled_from(
            [
                "mse",
                "binary_crossentropy",
                "categorical_crossentropy",
                "poisson",
                "log_loss",
                "MSE",
                None,
                1,
            ]
        ),
        st.sampled_from(
            [
                "float32",
                "float64",
                "f4",
                np.float64,
                "float16",
                "int32",
                "complex128",
                "object",
                "floaty",
                3,
                np.dtype("f8"),
            ]
        ),
        st.sampled_from([None, 0, 7, 2**62, -1, 1.5, "1", True]),
        st.sampled_from([None, -1, 1, 2, 0, -2, 10**6, 2.0, "2", True]),
    )
    def check(sizes, activations, loss, dtype, seed, n_threads):
        kind, net = fi.outcome(
            Network, sizes, activations, loss, dtype=dtype, seed=seed, n_threads=n_threads
        )
        if kind == "ok":
            layer_sizes = [int(s) for s in sizes]
            assert net.layer_sizes == tuple(layer_sizes) and min(layer_sizes) >= 1
            assert net.params.size == sum(
                a * b + b for a, b in zip(layer_sizes[:-1], layer_sizes[1:], strict=True)
            )
            assert net.dtype in (np.float32, np.float64)
            out = net.predict(np.zeros((2, layer_sizes[0])))
            assert out.shape == (2, layer_sizes[-1])

    check()


# ----------------------------------------------------------------------------- drop-in
FUNCTION_SETS = [
    ([R.relu, R.sigmoid], [R.drelu, R.dsigmoid], R.d_cross_entropy),
    (
        [oracle.ref_relu, oracle.ref_sigmoid],
        [oracle.ref_drelu, oracle.ref_dsigmoid],
        oracle.ref_d_cross_entropy,
    ),
    ([np.tanh, R.sigmoid], [lambda z: 1 - np.tanh(z) ** 2, R.dsigmoid], R.d_cross_entropy),
    ([lambda z: z**3, R.sigmoid], [lambda z: 3 * z**2, R.dsigmoid], R.d_cross_entropy),
]


# KNOWN: targets of other real dtypes than float64 take the fused path (as float64),
# where the reference computes in their own dtype (float32 rounding, unsigned and
# INT_MIN wrap-around, -bool raising); test_fuzz.py pins it.
# Not drawn for the drop-in's inputs: timedelta/datetime lists hold None for NaT, and
# numpy 2.4's object matmul segfaults when such an element fails midway (a numpy bug,
# crashing the reference itself; see the issue-6 notes).
INPUT_DTYPES = [d for d in fi.DTYPES if not d.startswith(("datetime", "timedelta"))]
TARGET_DTYPES = ["float64", ">f8", "complex128", "object", "object-none", "object-str", "U8", "S8"]


class AssertingReference(oracle.ReferenceMLP):
    """The oracle plus the asserts REFERENCE.md lists (the oracle leaves them out)."""

    def __init__(self, layersizes, activations, derivatives, lossderiv):
        super().__init__(layersizes, activations, derivatives, lossderiv)
        assert len(self.layersizes) - 1 == len(self.activations)
        assert len(self.activations) == len(self.derivatives)
        assert all(isinstance(n, int) and n >= 1 for n in self.layersizes)

    def backward(self, y, yhat):
        assert y.shape[1] == self.layersizes[-1]
        assert y.shape == yhat.shape
        super().backward(y, yhat)


def _same_outcome(fast, slow):
    (kind_f, value_f), (kind_s, value_s) = fast, slow
    assert kind_f == kind_s, (fast, slow)
    if kind_f == "error":
        assert type(value_f) is type(value_s), (value_f, value_s)


def _compare(a, b):
    for x, y in zip(a, b, strict=True):
        if x is None or y is None:
            assert x is None and y is None
            continue
        try:
            xa, ya = np.asarray(x, dtype=np.complex128), np.asarray(y, dtype=np.complex128)
        except (TypeError, ValueError):
            assert repr(x) == repr(y)
            continue
        assert xa.shape == ya.shape
        np.testing.assert_allclose(xa, ya, rtol=1e-9, atol=1e-12, equal_nan=True)


def _rows(x, default):
    try:
        shape = np.shape(x)
    except ValueError:  # ragged
        return default
    return shape[0] if shape else default


TRACE = bool(os.environ.get("MLPFAST_FUZZ_TRACE"))


def _describe(value):
    if isinstance(value, np.ndarray):
        text = f"ndarray{value.shape} {value.dtype} C={value.flags.c_contiguous}"
    else:
        text = type(value).__name__
    return f"{text}: {value!r:.300}"


def _call(function, *args):
    if TRACE:
        print(
            getattr(function, "__qualname__", function),
            *map(_describe, args),
            file=sys.stderr,
            flush=True,
        )
    try:
        with np.errstate(all="ignore"), warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return "ok", function(*args)
    except Exception as exc:  # the reference's own exception types are the contract
        return "error", exc


def test_reference_mlp():
    @SETTINGS
    @given(st.data())
    def check(data):
        sizes = data.draw(st.sampled_from([[2, 3, 1], [3, 2, 2], [1, 4, 1]]))
        acts, ders, lossd = data.draw(st.sampled_from(FUNCTION_SETS))
        if data.draw(st.integers(0, 9)) == 0:
            sizes = data.draw(st.sampled_from([[2, 0, 1], [2.0, 3, 1], [2, 3], [2, -1, 1]]))
        fast_c = _call(R.mlp, sizes, acts, ders, lossd)
        slow_c = _call(AssertingReference, sizes, acts, ders, lossd)
        _same_outcome(fast_c, slow_c)
        if fast_c[0] != "ok":
            return
        fast, slow = fast_c[1], slow_c[1]
        seed = data.draw(st.integers(0, 9))
        fast.initialize(seed)
        slow.initialize(seed)
        n = data.draw(fi.ROWS)
        for _ in range(data.draw(st.integers(1, 2))):
            x = data.draw(fi.hostile(data.draw(fi.sample_shape(n, sizes[0])), dtypes=INPUT_DTYPES))
            _same_outcome(_call(fast.forward, x), _call(slow.forward, x))
            # KNOWN: y with other than x's row count reaches the fused backward and
            # reads out of bounds (test_fuzz.py pins it); rows always match here.
            rows = _rows(x, n)
            y = data.draw(
                fi.hostile(
                    (rows, sizes[-1])
                    if data.draw(st.integers(0, 4))
                    else data.draw(st.sampled_from([(rows,), (rows, sizes[-1], 1)])),
                    dtypes=TARGET_DTYPES,
                )
            )
            own_output = (
                data.draw(st.booleans()) and fast.a[-1] is not None and slow.a[-1] is not None
            )
            result_f = _call(fast.backward, y, fast.a[-1] if own_output else y)
            result_s = _call(slow.backward, y, slow.a[-1] if own_output else y)
            _same_outcome(result_f, result_s)
            if result_f[0] == "ok":
                _compare(fast.dW[1:] + fast.db[1:], slow.dW[1:] + slow.db[1:])
            eta = data.draw(
                st.sampled_from(
                    [0.1, 0.0, -1.0, np.nan, np.inf, 1e308, 2, np.float32(0.1), "0.1", None, True]
                )
            )
            if result_f[0] == "ok":
                _same_outcome(_call(fast.update, eta), _call(slow.update, eta))
                _compare(fast.W[1:] + fast.b[1:], slow.W[1:] + slow.b[1:])

    check()


# ----------------------------------------------------------------------------- load
def test_load():
    folder = tempfile.mkdtemp()
    original = Network([3, 4, 2], ["tanh", "softmax"], "categorical_crossentropy", seed=1)
    rng = np.random.default_rng(0)
    original.fit(rng.standard_normal((20, 3)), rng.integers(0, 2, 20), epochs=2, optimizer="adam")
    good = P.save(original, os.path.join(folder, "good.npz"))
    blob = open(good, "rb").read()
    target = os.path.join(folder, "fuzzed.npz")

    @SETTINGS
    @given(st.data())
    def check(data):
        mode = data.draw(st.sampled_from(["random", "truncate", "flip", "splice", "members"]))
        if mode == "random":
            content = data.draw(st.binary(max_size=3000))
            if data.draw(st.booleans()):
                content = (
                    data.draw(st.sampled_from([b"PK\x03\x04", b"PK\x05\x06", b"\x93NUMPY\x01\x00"]))
                    + content
                )
        elif mode == "truncate":
            content = blob[: data.draw(st.integers(0, len(blob) - 1))]
        elif mode == "flip":
            content = bytearray(blob)
            for _ in range(data.draw(st.integers(1, 4))):
                content[data.draw(st.integers(0, len(blob) - 1))] ^= data.draw(st.integers(1, 255))
            content = bytes(content)
        elif mode == "splice":
            at = data.draw(st.integers(0, len(blob)))
            content = blob[:at] + data.draw(st.binary(min_size=1, max_size=64)) + blob[at:]
        else:
            members = {
                name: data.draw(
                    fi.hostile(
                        data.draw(st.sampled_from([(), (3,), (2, 71)])),
                        dtypes=["float64", "float32", "int64", "U8", "bool"],
                        odd=False,
                    )
                )
                for name in data.draw(
                    st.lists(
                        st.sampled_from(
                            ["meta", "params", "state", "counters", "history", "checksum", "other"]
                        ),
                        unique=True,
                    )
                )
            }
            members = {k: np.asarray(v) for k, v in members.items()}
            with open(target, "wb") as f:
                np.savez(f, **members)
            content = open(target, "rb").read()
        with open(target, "wb") as f:
            f.write(content)
        kind, result = fi.outcome(P.load, target)
        if kind == "ok":
            for field in (
                "layer_sizes",
                "activations",
                "loss_name",
                "dtype",
                "seed",
                "_optimizer",
                "_shuffle_seed",
                "history",
            ):
                assert getattr(result, field) == getattr(original, field), field
            for field in ("params", "_state", "_counters"):
                np.testing.assert_array_equal(getattr(result, field), getattr(original, field))
        else:
            assert isinstance(result, P.NetworkFileError), repr(result)

    check()


# ----------------------------------------------------------------------------- estimators
def test_estimators():
    try:
        from mlpfast.estimators import MLPClassifier, MLPRegressor
    except ImportError as exc:
        print(f"fuzz estimators skipped: {exc}")
        return

    @SETTINGS
    @given(st.data())
    def check(data):
        cls = data.draw(st.sampled_from([MLPClassifier, MLPRegressor]))
        model = cls(
            hidden_layer_sizes=(4,),
            max_iter=2,
            random_state=0,
            solver=data.draw(st.sampled_from(["adam", "sgd"])),
        )
        n = data.draw(st.sampled_from([1, 2, 5, 17, 40]))
        X = data.draw(fi.hostile(data.draw(fi.sample_shape(n, 3))))
        if cls is MLPClassifier:
            y = data.draw(
                st.one_of(
                    fi.hostile(data.draw(st.sampled_from([(n,), (n, 2), (n + 1,), ()]))),
                    st.just(np.array(["a", "b"] * n)[:n]),
                    st.just(np.arange(n) % 2),
                )
            )
        else:
            y = data.draw(fi.hostile(data.draw(st.sampled_from([(n,), (n, 2), (n + 1,), ()]))))
        kind, fitted = fi.outcome(model.fit, X, y, also=(DivergenceError,))
        if kind != "ok":
            return
        X_new = data.draw(fi.hostile(data.draw(fi.sample_shape(3, 3))))
        kind, predicted = fi.outcome(model.predict, X_new)
        if kind == "ok":
            assert len(predicted) == len(X_new)
            if cls is MLPClassifier:
                classes = set(np.asarray(model.classes_).ravel().tolist())
                assert set(np.asarray(predicted).ravel().tolist()) <= classes

    check()


TARGETS = {
    "forward": test_forward_and_predict,
    "loss_gradients_update": test_loss_and_gradients,
    "fit": test_fit,
    "constructor": test_constructor,
    "reference": test_reference_mlp,
    "load": test_load,
    "estimators": test_estimators,
}

if __name__ == "__main__":
    faulthandler.enable()  # a crash prints where it happened
    name = sys.argv[1]
    TARGETS[name]()
    print(f"fuzz {name} ok")
