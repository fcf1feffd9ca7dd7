"""Hostile inputs for fuzz_driver.py: hypothesis strategies, and what the documented
conversions make of an input (to tell a correct result from a wrong acceptance)."""

import warnings

import numpy as np
from hypothesis import strategies as st

from mlpfast import Network

ERRORS = (ValueError, TypeError)


# ----------------------------------------------------------------------------- inputs
SPECIALS = [np.nan, np.inf, -np.inf, 1e308, -1e308, 3e38, -3e38, 1e-320, -0.0, 1e30]
DTYPES = [
    "float64",
    "float32",
    "float16",
    ">f8",
    "int64",
    "int8",
    "uint8",
    "uint64",
    "bool",
    "complex128",
    "object",
    "object-none",
    "object-str",
    "U8",
    "S8",
    "datetime64[s]",
    "timedelta64[s]",
]
LAYOUTS = ["C", "C", "F", "strided", "readonly", "broadcast", "list", "matrix", "tuple"]
ODD_OBJECTS = [
    None,
    "abc",
    b"ab",
    3.0,
    7,
    {"a": 1},
    [[1.0, 2.0], [3.0]],
    object(),
    [],
    [[]],
    np.float64(2.0),
    [["1", "2"]],
    [[1 + 2j, 0]],
]


def convert(values: np.ndarray, dtype: str):
    with np.errstate(all="ignore"):
        if dtype == "object":
            return values.astype(object)
        if dtype == "object-none":
            out = values.astype(object)
            if out.size:
                out.flat[0] = None
            return out
        if dtype == "object-str":
            return (
                np.vectorize(lambda v: repr(float(v)), otypes=[object])(values)
                if values.size
                else values.astype(object)
            )
        if dtype in ("U8", "S8"):
            return values.round(2).astype(dtype)
        if dtype.startswith(("datetime", "timedelta")):
            return np.nan_to_num(values).astype(np.int64).astype(dtype)
        return values.astype(dtype)


def layout(array: np.ndarray, how: str):
    if how == "F":
        return np.asfortranarray(array)
    if how == "strided" and array.ndim:
        return np.repeat(array, 2, axis=0)[::2]
    if how == "readonly":
        array = array.copy()
        array.setflags(write=False)
        return array
    if how == "broadcast" and array.ndim == 2 and array.shape[0]:
        return np.broadcast_to(array[:1], array.shape)
    if how == "list":
        return array.tolist()
    if how == "tuple" and array.ndim == 1:
        return tuple(array.tolist())
    if how == "matrix" and array.ndim == 2:
        return np.asmatrix(array)
    return array


@st.composite
def hostile(draw, shape, specials=SPECIALS, dtypes=DTYPES, scale=(1.0, 1e-3, 1e3), odd=True):
    """An array-like of ``shape`` with a hostile dtype, values and memory layout (or,
    when ``odd``, now and then something that is no array at all)."""
    if odd and draw(st.integers(0, 19)) == 0:
        return draw(st.sampled_from(ODD_OBJECTS))
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    values = np.asarray(rng.standard_normal(shape) * draw(st.sampled_from(scale)))
    if values.size:
        for _ in range(draw(st.integers(0, 2))):
            values.flat[draw(st.integers(0, values.size - 1))] = draw(st.sampled_from(specials))
    return layout(convert(values, draw(st.sampled_from(dtypes))), draw(st.sampled_from(LAYOUTS)))


@st.composite
def sample_shape(draw, n, width):
    """Mostly (n, width); sometimes another width, dimension count or no rows."""
    kind = draw(st.integers(0, 9))
    if kind == 0:
        return (n,)
    if kind == 1:
        return (n, width, 1)
    if kind == 2:
        return ()
    if kind == 3:
        return (n, draw(st.sampled_from([0, max(width - 1, 0), width + 1])))
    if kind == 4:
        return (0, width)
    return (n, width)


ROWS = st.sampled_from([1, 1, 2, 3, 7, 17, 40])


def as_numbers(value, dtype):
    """``value`` as the documented conversion reads it, or None when it is no array
    of real numbers (so it must be rejected)."""
    try:
        with np.errstate(all="ignore"), warnings.catch_warnings():
            warnings.simplefilter("ignore")
            if hasattr(value, "nnz"):
                return None
            array = np.asarray(value)
            if array.dtype.kind == "O":  # documented: objects are read as float64
                array = array.astype(np.float64)
            if array.dtype.kind not in "biuf":
                return None
            return np.asarray(array, dtype=dtype)
    except Exception:
        return None


def valid_X(X, width, dtype):
    a = as_numbers(X, dtype)
    if a is None or a.ndim != 2 or a.shape[0] == 0 or a.shape[1] != width:
        return None
    return a if np.isfinite(a).all() else None


def valid_targets(y, loss, m, n, dtype):
    """The (n, m) targets ``y`` stands for under ``loss``, or None (must be rejected)."""
    raw = as_numbers(y, np.float64)
    if raw is None or not np.isfinite(raw).all():
        return None
    if raw.ndim == 0:  # a scalar is rejected with its own message (as scikit-learn does)
        return None
    if raw.ndim == 1 and loss == "categorical_crossentropy" and m > 1:
        if raw.shape[0] != n or np.any(raw != np.round(raw)) or raw.min() < 0 or raw.max() >= m:
            return None
        return np.eye(m, dtype=dtype)[raw.astype(np.int64)]
    Y = as_numbers(y, dtype)
    if Y.ndim == 1 and m == 1:
        Y = Y.reshape(-1, 1)
    if Y.ndim != 2 or Y.shape != (n, m) or not np.isfinite(Y).all():
        return None
    if loss in ("binary_crossentropy", "categorical_crossentropy") and (Y.min() < 0 or Y.max() > 1):
        return None
    if loss == "poisson" and Y.min() < 0:
        return None
    return Y


def outcome(function, *args, also=(), **kwargs):
    """('ok', result) or ('error', exception) for an accepted exception type; any
    other exception propagates and fails the example."""
    try:
        with np.errstate(all="ignore"), warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return "ok", function(*args, **kwargs)
    except ERRORS + tuple(also) as exc:
        assert str(exc), f"{type(exc).__name__} without a message"
        return "error", exc


def assert_close(got, want, dtype, scale=0.0):
    """got == want within the dtype's precision (relative to ``scale`` too: the size of
    the terms that were summed), where the float64 oracle is not itself overflowing
    (there float32 and float64 legitimately differ)."""
    got = np.asarray(got, dtype=np.float64)
    want = np.asarray(want, dtype=np.float64)
    assert got.shape == want.shape, (got.shape, want.shape)
    limit = 1e15 if dtype == np.float32 else 1e150
    rtol = 2e-3 if dtype == np.float32 else 1e-7
    if scale >= limit:  # intermediate results may overflow in float32 but not in the oracle
        return
    ok = np.isfinite(want) & (np.abs(want) < limit)
    with np.errstate(all="ignore"):
        diff = np.abs(got - want)[ok]
    assert np.all(diff <= rtol * (1 + scale + np.abs(want[ok]))), (got, want)


# ----------------------------------------------------------------------------- Network
ARCHS = [
    ([3, 4, 1], ["tanh", "sigmoid"], "binary_crossentropy"),
    ([2, 5, 3], ["relu", "softmax"], "categorical_crossentropy"),
    ([4, 3, 2], ["elu", "identity"], "mse"),
    ([1, 2, 1], ["softplus", "exp"], "poisson"),
    ([3, 1], ["identity"], "mse"),
]


@st.composite
def network(draw):
    sizes, acts, loss = draw(st.sampled_from(ARCHS))
    dtype = draw(st.sampled_from(["float32", "float64"]))
    return Network(
        sizes,
        acts,
        loss,
        dtype=dtype,
        seed=draw(st.integers(0, 5)),
        n_threads=draw(st.sampled_from([1, None])),
    )


NUMERIC = ["float64", "float32", "float16", ">f8", "int64", "int8", "uint8", "bool", "object"]


@st.composite
def plausible_targets(draw, net, n):
    """Targets of the loss's own kind (labels, probabilities, counts), in hostile
    numeric dtypes and layouts: mostly valid."""
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    m, loss = net.n_outputs, net.loss_name
    if loss == "categorical_crossentropy":
        labels = rng.integers(0, m, n)
        y = labels.astype(float) if draw(st.booleans()) else np.eye(m)[labels]
    elif loss == "binary_crossentropy":
        y = rng.integers(0, 2, (n, m)).astype(float)
    elif loss == "poisson":
        y = rng.poisson(1.0, (n, m)).astype(float)
    else:
        y = rng.standard_normal((n, m))
    if m == 1 and draw(st.booleans()):
        y = y.ravel()
    return layout(convert(y, draw(st.sampled_from(NUMERIC))), draw(st.sampled_from(LAYOUTS)))


@st.composite
def data_for(draw, net):
    """(X, y, n): hostile inputs and targets for ``net`` with n intended rows."""
    n = draw(ROWS)
    X = draw(hostile(draw(sample_shape(n, net.layer_sizes[0]))))
    m = net.n_outputs
    if draw(st.booleans()):
        y = draw(plausible_targets(net, n))
    elif net.loss_name == "categorical_crossentropy" and draw(st.booleans()):
        # integer-like labels, some out of range or negative
        rng = np.random.default_rng(draw(st.integers(0, 99)))
        y = rng.integers(-draw(st.integers(0, 1)), m + draw(st.integers(0, 1)), n)
        y = layout(
            convert(y.astype(float), draw(st.sampled_from(DTYPES))), draw(st.sampled_from(LAYOUTS))
        )
    else:
        shape = draw(st.sampled_from([(n, m), (n, m), (n,), (n + 1, m), (n, m + 1), (n, m, 1)]))
        y = draw(hostile(shape))
    return X, y, n


@st.composite
def sample_weights(draw, n):
    """Mostly non-negative weights of shape (n,), with hostile values and layouts.
    KNOWN: weights whose sum overflows, and scalar weights (documented to broadcast,
    rejected), are not drawn (test_fuzz.py pins both bugs)."""
    shape = draw(st.sampled_from([(n,), (n,), (n,), (n + 1,), (n, 1)]))
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    values = np.asarray(rng.random(shape) * draw(st.sampled_from([1.0, 1e-3, 1e3])))
    if draw(st.booleans()) and values.size:
        values.flat[draw(st.integers(0, values.size - 1))] = draw(
            st.sampled_from([np.nan, np.inf, -1.0, 0.0, 1e30, -0.0])
        )
    if draw(st.integers(0, 5)) == 0:
        values = np.zeros(shape)
    return layout(
        convert(values, draw(st.sampled_from(NUMERIC + ["complex128", "U8"]))),
        draw(st.sampled_from(LAYOUTS)),
    )
