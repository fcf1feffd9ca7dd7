"""Bad input gets a clear ValueError/TypeError at the boundary, and nothing changes."""

import numpy as np
import pytest

from mlpfast import Network


def net(**kw):
    return Network([3, 4, 2], ["relu", "softmax"], "categorical_crossentropy", seed=0, **kw)


GOOD_X = np.ones((5, 3))
GOOD_Y = np.eye(2)[[0, 1, 0, 1, 1]]


@pytest.mark.parametrize(
    "X,match",
    [
        (np.ones((5, 2)), "has 2 features but the network expects 3"),
        (np.ones(3), "must be 2-D"),
        (np.ones((2, 3, 1)), "must be 2-D"),
        (np.ones((0, 3)), "no samples"),
        (np.array([[1, 2, np.nan]] * 5), "NaN or infinity"),
        (np.array([[1, 2, np.inf]] * 5), "NaN or infinity"),
    ],
)
def test_bad_X_values(X, match):
    model = net()
    before = model.params.copy()
    for call in (
        lambda: model.forward(X),
        lambda: model.fit(X, GOOD_Y),
        lambda: model.loss(X, GOOD_Y),
        lambda: model.gradients(X, GOOD_Y),
    ):
        with pytest.raises(ValueError, match=match):
            call()
    np.testing.assert_array_equal(model.params, before)


@pytest.mark.parametrize(
    "X", [np.full((5, 3), "a"), np.ones((5, 3), dtype=complex), np.array([[object()] * 3] * 5)]
)
def test_non_numeric_X_is_a_type_error(X):
    with pytest.raises(TypeError):
        net().forward(X)


@pytest.mark.parametrize(
    "y,match",
    [
        (np.eye(2)[[0, 1, 0]], "y has 3 samples but X has 5"),
        (np.ones((5, 3)), "3 columns but the network has 2 outputs"),
        (np.array([0, 1, 2, 0, 1]), r"must be in 0\.\.1"),
        (np.array([0, 1, 0.5, 0, 1]), r"must be in 0\.\.1"),
        (np.full((5, 2), 2.0), r"targets in \[0, 1\]"),
        (np.full((5, 2), np.nan), "NaN"),
    ],
)
def test_bad_targets(y, match):
    model = net()
    with pytest.raises(ValueError, match=match):
        model.fit(GOOD_X, y)


def test_a_scalar_target_is_refused_with_a_hint():
    model = Network([3, 1], ["identity"], "mse")
    for call in (model.fit, model.loss, model.gradients):
        with pytest.raises(ValueError, match=r"got a scalar.*e\.g\. \[y\]"):
            call(np.ones((1, 3)), 3.0)


def test_one_d_targets_for_a_multi_output_mse_network():
    model = Network([3, 2], ["identity"], "mse")
    with pytest.raises(ValueError, match="1-D but the network has 2 outputs"):
        model.fit(GOOD_X, np.ones(5))


@pytest.mark.parametrize(
    "kwargs,error,match",
    [
        (dict(lr=0), ValueError, "lr must be"),
        (dict(lr=-1), ValueError, "lr must be"),
        (dict(lr=float("nan")), ValueError, "lr must be"),
        (dict(lr=float("inf")), ValueError, "lr must be a finite number > 0"),
        (dict(lr=-0.5), ValueError, "lr must be a finite number > 0"),
        (dict(alpha=-1e-3), ValueError, "alpha must be a finite number >= 0"),
        (dict(lr="0.1"), TypeError, "lr must be a real number, got str"),
        (dict(lr=True), TypeError, "lr must be a real number, got bool"),
        (dict(lr=np.float32("nan")), ValueError, "lr must be"),
        (dict(batch_size=0), ValueError, "batch_size must be >= 1"),
        (dict(batch_size=2.5), TypeError, "batch_size must be an int"),
        (dict(epochs=-1), ValueError, "epochs must be >= 0"),
        (dict(optimizer="rmsprop"), ValueError, "unknown optimizer"),
        (dict(momentum=1.0, optimizer="momentum"), ValueError, "momentum must be < 1"),
        (dict(sample_weight=np.ones(4)), ValueError, "sample_weight must have shape"),
        (dict(sample_weight=-np.ones(5)), ValueError, "non-negative"),
    ],
)
def test_bad_fit_arguments(kwargs, error, match):
    model = net()
    before = model.params.copy()
    with pytest.raises(error, match=match):
        model.fit(GOOD_X, GOOD_Y, **kwargs)
    np.testing.assert_array_equal(model.params, before)


@pytest.mark.parametrize(
    "args,error,match",
    [
        (([3, 0, 2], "relu", "mse"), ValueError, "layer_sizes\\[1\\] must be >= 1"),
        (([3, -4, 2], "relu", "mse"), ValueError, ">= 1"),
        (([3, 2.0], "relu", "mse"), TypeError, "must be an int"),
        (([3], "relu", "mse"), ValueError, "at least an input and an output"),
        (("32", "relu", "mse"), TypeError, "sequence of ints"),
        (([3, 4, 2], ["relu"], "mse"), ValueError, "2 layers need 2 activations"),
        (([3, 4, 2], ["swish", "relu"], "mse"), ValueError, "unknown activation"),
        (([3, 4, 2], ["relu", "relu"], "hinge"), ValueError, "unknown loss"),
        (
            ([3, 4, 2], ["softmax", "softmax"], "categorical_crossentropy"),
            ValueError,
            "only be the output",
        ),
        (
            ([3, 4, 2], ["relu", "sigmoid"], "categorical_crossentropy"),
            ValueError,
            "needs a 'softmax' output",
        ),
        (([3, 4, 2], ["relu", "softmax"], "mse"), ValueError, "needs the categorical"),
        (
            ([3, 4, 2], ["relu", "relu"], "binary_crossentropy"),
            ValueError,
            "needs a 'sigmoid' output",
        ),
    ],
)
def test_bad_construction(args, error, match):
    with pytest.raises(error, match=match):
        Network(*args)


def test_bad_dtype_and_threads():
    with pytest.raises(ValueError, match="float32' or 'float64"):
        Network([2, 1], "sigmoid", "binary_crossentropy", dtype="int32")
    with pytest.raises(ValueError, match="n_threads must be between"):
        Network([2, 1], "sigmoid", "binary_crossentropy", n_threads=0)
    with pytest.raises(TypeError, match="n_threads must be an int"):
        Network([2, 1], "sigmoid", "binary_crossentropy", n_threads="2")


def test_other_dtypes_and_layouts_are_converted():
    model = Network(
        [3, 4, 2], ["relu", "softmax"], "categorical_crossentropy", seed=0, dtype="float64"
    )
    X = np.arange(15.0).reshape(5, 3) / 10
    expected = model.forward(X)
    for variant in (
        X.astype(np.float32).astype(np.float64),
        np.asfortranarray(X),
        X.T.copy().T,
        (X * 10).astype(np.int64) / 10,
        X.tolist(),
        np.repeat(X, 2, axis=0)[::2],
    ):
        np.testing.assert_allclose(model.forward(variant), expected, rtol=1e-6)
    readonly = X.copy()
    readonly.flags.writeable = False
    np.testing.assert_array_equal(model.forward(readonly), expected)
    np.testing.assert_array_equal(
        model.forward(X.astype(bool)), model.forward(X.astype(bool).astype(float))
    )


def test_sparse_input_is_refused_with_a_hint():
    scipy_sparse = pytest.importorskip("scipy.sparse")
    with pytest.raises(TypeError, match="sparse"):
        net().forward(scipy_sparse.csr_matrix(GOOD_X))
