"""MLPClassifier and MLPRegressor: the scikit-learn surface and mlpfast's additions.

(scikit-learn's own estimator checks are in test_estimator_checks.py; comparisons
with scikit-learn's MLPs in test_sklearn_parity.py.)
"""

import copy
import inspect
import pickle
import re
import warnings

import numpy as np
import pytest
import scipy.sparse
from conftest import circles
from sklearn import neural_network as sk
from sklearn.base import clone
from sklearn.datasets import load_iris, make_classification, make_multilabel_classification
from sklearn.exceptions import ConvergenceWarning
from sklearn.metrics import accuracy_score, log_loss, recall_score
from sklearn.model_selection import GridSearchCV, cross_val_score
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler
from sklearn.utils.class_weight import compute_sample_weight
from threadpoolctl import threadpool_limits

import mlpfast
import mlpfast._estimator_base as base
from mlpfast import MLPClassifier, MLPRegressor
from mlpfast._kernels import train as train_kernels


@pytest.fixture(scope="module")
def iris():
    X, y = load_iris(return_X_y=True)
    return StandardScaler().fit_transform(X), y


@pytest.fixture(scope="module")
def regression():
    rng = np.random.default_rng(0)
    X = rng.standard_normal((200, 4))
    Y = np.column_stack([np.sin(X[:, 0]) + X[:, 1] ** 2, X[:, 2] * X[:, 3]])
    return X, Y


def quiet(model, *args, **kwargs):
    """fit without the ConvergenceWarning short test runs raise."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        return model.fit(*args, **kwargs)


def numpy_forward(model, X, hidden):
    """The network's output computed in numpy from coefs_/intercepts_."""
    a = X
    for k, (W, b) in enumerate(zip(model.coefs_, model.intercepts_, strict=True)):
        z = a @ W + b
        a = hidden(z) if k < len(model.coefs_) - 1 else z
    return {
        "identity": lambda z: z,
        "logistic": lambda z: 1 / (1 + np.exp(-z)),
        "exp": np.exp,
        "softmax": lambda z: (
            np.exp(z - z.max(1, keepdims=True))
            / np.exp(z - z.max(1, keepdims=True)).sum(1, keepdims=True)
        ),
    }[model.out_activation_](a)


HIDDEN = {
    "identity": lambda z: z,
    "logistic": lambda z: 1 / (1 + np.exp(-z)),
    "tanh": np.tanh,
    "relu": lambda z: np.maximum(z, 0),
    "leaky_relu": lambda z: np.where(z > 0, z, 0.01 * z),
    "elu": lambda z: np.where(z > 0, z, np.expm1(np.minimum(z, 0))),
    "softplus": lambda z: np.logaddexp(0, z),
}


# ------------------------------------------------------------------ the surface
@pytest.mark.parametrize(
    "ours,theirs", [(MLPClassifier, sk.MLPClassifier), (MLPRegressor, sk.MLPRegressor)]
)
def test_same_parameters_defaults_and_positional_order_as_scikit_learn(ours, theirs):
    mine = inspect.signature(ours).parameters
    reference = inspect.signature(theirs).parameters
    for name, parameter in reference.items():
        assert mine[name].default == parameter.default, name
        assert mine[name].kind == parameter.kind, name
    assert list(mine)[: len(reference)] == list(reference)
    extra = set(mine) - set(reference)
    assert extra == ({"class_weight", "n_threads"} if ours is MLPClassifier else {"n_threads"})


def test_fitted_attributes_multiclass(iris):
    X, y = iris
    clf = quiet(MLPClassifier(hidden_layer_sizes=(8, 6), max_iter=30, random_state=0), X, y)
    assert clf.n_features_in_ == 4
    assert not hasattr(clf, "feature_names_in_")
    np.testing.assert_array_equal(clf.classes_, [0, 1, 2])
    assert (clf.n_layers_, clf.n_outputs_, clf.out_activation_) == (4, 3, "softmax")
    assert [W.shape for W in clf.coefs_] == [(4, 8), (8, 6), (6, 3)]
    assert [b.shape for b in clf.intercepts_] == [(8,), (6,), (3,)]
    assert clf.n_iter_ == 30 == len(clf.loss_curve_)
    assert clf.t_ == 30 * len(X)
    assert clf.loss_ == clf.loss_curve_[-1]
    assert clf.best_loss_ == min(clf.loss_curve_)
    assert clf.validation_scores_ is None and clf.best_validation_score_ is None
    assert clf.validation_loss_curve_ is None
    assert clf.loss_curve_[-1] < clf.loss_curve_[0]
    proba = clf.predict_proba(X)
    np.testing.assert_allclose(proba, numpy_forward(clf, X, HIDDEN["relu"]), rtol=1e-10)
    np.testing.assert_array_equal(clf.predict(X), clf.classes_[proba.argmax(1)])
    np.testing.assert_allclose(clf.predict_log_proba(X), np.log(proba))
    assert clf.score(X, y) == accuracy_score(y, clf.predict(X))


def test_binary_targets_get_one_logistic_output_and_two_probability_columns(iris):
    X, y = iris
    labels = np.where(y == 1, "yes", "no")
    clf = quiet(MLPClassifier(hidden_layer_sizes=(5,), max_iter=20, random_state=0), X, labels)
    assert (clf.n_outputs_, clf.out_activation_) == (1, "logistic")
    np.testing.assert_array_equal(clf.classes_, ["no", "yes"])
    proba = clf.predict_proba(X)
    p = numpy_forward(clf, X, HIDDEN["relu"])[:, 0]
    np.testing.assert_allclose(proba, np.column_stack([1 - p, p]), rtol=1e-10)
    np.testing.assert_array_equal(clf.predict(X), np.where(p > 0.5, "yes", "no"))


def test_multilabel_indicator_targets():
    X, Y = make_multilabel_classification(200, n_features=6, n_classes=4, random_state=0)
    X = StandardScaler().fit_transform(X)
    clf = quiet(
        MLPClassifier(
            hidden_layer_sizes=(16,), learning_rate_init=0.01, max_iter=200, random_state=0
        ),
        X,
        Y,
    )
    assert (clf.n_outputs_, clf.out_activation_) == (4, "logistic")
    np.testing.assert_array_equal(clf.classes_, np.arange(4))
    proba = clf.predict_proba(X)
    assert proba.shape == (200, 4)
    np.testing.assert_allclose(proba, numpy_forward(clf, X, HIDDEN["relu"]), rtol=1e-10)
    np.testing.assert_array_equal(clf.predict(X), (proba > 0.5).astype(int))
    assert clf.score(X, Y) > 0.4  # subset accuracy, well above chance (1/16)


def test_regression_single_and_multi_output(regression):
    X, Y = regression
    reg = quiet(
        MLPRegressor(
            hidden_layer_sizes=(20,), max_iter=100, learning_rate_init=0.01, random_state=0
        ),
        X,
        Y,
    )
    assert (reg.n_outputs_, reg.out_activation_) == (2, "identity")
    assert reg.predict(X).shape == (200, 2)
    np.testing.assert_allclose(
        reg.predict(X), numpy_forward(reg, X, HIDDEN["relu"]), rtol=1e-10, atol=1e-12
    )
    assert reg.score(X, Y) > 0.7
    single = quiet(clone(reg), X, Y[:, 0])
    assert single.n_outputs_ == 1 and single.predict(X).shape == (200,)


def test_poisson_loss_has_an_exponential_output(regression):
    X, _ = regression
    rng = np.random.default_rng(1)
    y = rng.poisson(np.exp(0.5 * X[:, 0]))
    reg = quiet(
        MLPRegressor(
            loss="poisson",
            hidden_layer_sizes=(8,),
            learning_rate_init=0.01,
            max_iter=100,
            random_state=0,
        ),
        X,
        y,
    )
    assert reg.out_activation_ == "exp"
    prediction = reg.predict(X)
    assert prediction.min() > 0
    np.testing.assert_allclose(prediction, numpy_forward(reg, X, HIDDEN["relu"])[:, 0], rtol=1e-10)
    # Tracks the rate better than a constant does.
    assert np.corrcoef(prediction, np.exp(0.5 * X[:, 0]))[0, 1] > 0.8
    with pytest.raises(ValueError, match="non-negative"):
        MLPRegressor(loss="poisson").fit(X, -np.ones(len(X)))


def test_feature_names_are_recorded_and_checked(iris):
    pd = pytest.importorskip("pandas")
    X, y = iris
    frame = pd.DataFrame(X, columns=["a", "b", "c", "d"])
    clf = quiet(MLPClassifier(hidden_layer_sizes=(4,), max_iter=2), frame, y)
    np.testing.assert_array_equal(clf.feature_names_in_, ["a", "b", "c", "d"])
    with pytest.warns(UserWarning, match="feature names"):
        clf.predict(X)


# ------------------------------------------------------------------ initialisation
@pytest.mark.parametrize("activation", ["relu", "logistic"])
def test_glorot_uniform_initialisation_drawn_like_scikit_learn(iris, activation):
    X, y = iris
    # One sgd step of size ~0 leaves the initial weights in place.
    args = dict(
        hidden_layer_sizes=(30, 20),
        activation=activation,
        solver="sgd",
        momentum=0,
        learning_rate_init=1e-12,
        max_iter=1,
        random_state=3,
    )
    ours = quiet(MLPClassifier(**args), X, y)
    theirs = quiet(sk.MLPClassifier(**args), X, y)
    factor = 2.0 if activation == "logistic" else 6.0
    for W, b, W_sk, b_sk in zip(
        ours.coefs_, ours.intercepts_, theirs.coefs_, theirs.intercepts_, strict=True
    ):
        bound = np.sqrt(factor / sum(W.shape))
        assert np.abs(W).max() <= bound and np.abs(W).max() > 0.9 * bound
        np.testing.assert_allclose(W, W_sk, atol=1e-9)
        np.testing.assert_allclose(b, b_sk, atol=1e-9)


def test_random_state_makes_fits_reproducible(iris):
    X, y = iris
    a = quiet(MLPClassifier(hidden_layer_sizes=(5,), max_iter=5, random_state=7), X, y)
    b = quiet(MLPClassifier(hidden_layer_sizes=(5,), max_iter=5, random_state=7), X, y)
    c = quiet(MLPClassifier(hidden_layer_sizes=(5,), max_iter=5, random_state=8), X, y)
    np.testing.assert_array_equal(a.coefs_[0], b.coefs_[0])
    assert not np.allclose(a.coefs_[0], c.coefs_[0])


# ------------------------------------------------------------------ input handling
def test_float32_input_keeps_float32(iris, regression):
    X, y = iris
    args = dict(hidden_layer_sizes=(6,), max_iter=10, shuffle=False, random_state=0)
    clf32 = quiet(MLPClassifier(**args), X.astype(np.float32), y)
    clf64 = quiet(MLPClassifier(**args), X, y)
    assert all(W.dtype == np.float32 for W in clf32.coefs_ + clf32.intercepts_)
    assert all(W.dtype == np.float64 for W in clf64.coefs_ + clf64.intercepts_)
    assert clf32.predict_proba(X).dtype == np.float32
    assert clf64.predict_proba(X.astype(np.float32)).dtype == np.float64
    np.testing.assert_allclose(clf32.predict_proba(X), clf64.predict_proba(X), atol=1e-4)
    Xr, Y = regression
    reg = quiet(MLPRegressor(**args), Xr.astype(np.float32), Y)
    assert reg.predict(Xr).dtype == np.float32
    assert reg.coefs_[0].dtype == np.float32


@pytest.mark.parametrize("fmt", ["csr", "csc"])
def test_sparse_input_matches_dense(iris, fmt):
    X, y = iris
    X = np.where(np.abs(X) < 0.5, 0, X)
    sparse = scipy.sparse.csr_matrix(X) if fmt == "csr" else scipy.sparse.csc_matrix(X)
    args = dict(hidden_layer_sizes=(6,), max_iter=10, random_state=0)
    dense_model = quiet(MLPClassifier(**args), X, y)
    sparse_model = quiet(MLPClassifier(**args), sparse, y)
    np.testing.assert_array_equal(sparse_model.coefs_[0], dense_model.coefs_[0])
    np.testing.assert_array_equal(sparse_model.predict_proba(sparse), dense_model.predict_proba(X))


def test_bad_input_is_rejected(iris):
    X, y = iris
    bad = X.copy()
    bad[3, 2] = np.nan
    with pytest.raises(ValueError, match="NaN"):
        MLPClassifier().fit(bad, y)
    clf = quiet(MLPClassifier(hidden_layer_sizes=(4,), max_iter=2), X, y)
    with pytest.raises(ValueError, match="NaN"):
        clf.predict(bad)
    with pytest.raises(ValueError, match="features"):
        clf.predict(X[:, :3])
    with pytest.raises(ValueError, match="Unknown label type"):
        MLPClassifier().fit(X, np.linspace(0, 1, len(X)))
    with pytest.raises(ValueError, match="hidden_layer_sizes"):
        MLPClassifier(hidden_layer_sizes=(5, 0)).fit(X, y)
    with pytest.raises(ValueError, match="momentum"):
        MLPClassifier(solver="sgd", momentum=1.0).fit(X, y)
    with pytest.raises(ValueError, match="activation"):
        MLPClassifier(activation="gelu").fit(X, y)


# ------------------------------------------------------------------ stopping rules
def test_convergence_warning_at_max_iter_and_not_when_converged(iris):
    X, y = iris
    with pytest.warns(ConvergenceWarning, match="Maximum iterations \\(3\\)"):
        MLPClassifier(hidden_layer_sizes=(4,), max_iter=3).fit(X, y)
    with warnings.catch_warnings():
        warnings.simplefilter("error", ConvergenceWarning)
        # tol so large that no epoch counts as an improvement: stop after
        # n_iter_no_change + 1 epochs (scikit-learn's rule), before max_iter.
        clf = MLPClassifier(hidden_layer_sizes=(4,), tol=10.0, n_iter_no_change=3, max_iter=50).fit(
            X, y
        )
    assert clf.n_iter_ == 5
    with pytest.warns(ConvergenceWarning, match="lbfgs"):
        MLPClassifier(hidden_layer_sizes=(4,), solver="lbfgs", max_iter=2).fit(X, y)


def test_n_iter_no_change_inf_runs_to_max_iter(iris):
    X, y = iris
    with pytest.warns(ConvergenceWarning):
        clf = MLPClassifier(
            hidden_layer_sizes=(4,), tol=10.0, n_iter_no_change=np.inf, max_iter=12
        ).fit(X, y)
    assert clf.n_iter_ == 12


def test_adaptive_learning_rate_divides_by_five_then_stops(iris, capsys):
    X, y = iris
    with warnings.catch_warnings():
        warnings.simplefilter("error", ConvergenceWarning)
        clf = MLPClassifier(
            hidden_layer_sizes=(4,),
            solver="sgd",
            learning_rate="adaptive",
            learning_rate_init=0.01,
            tol=10.0,
            n_iter_no_change=1,
            max_iter=100,
            verbose=True,
        ).fit(X, y)
    out = capsys.readouterr().out
    rates = [float(r) for r in re.findall(r"Setting learning rate to ([0-9.]+)", out)]
    np.testing.assert_allclose(rates, 0.01 / 5.0 ** np.arange(1, len(rates) + 1), atol=1e-6)
    assert len(rates) == 6  # 0.01 / 5^6 < 1e-6: the next stall stops training
    assert "Learning rate too small. Stopping." in out
    assert clf.n_iter_ < 100


def test_lbfgs_minimises_the_penalised_loss(iris):
    X, y = iris
    clf = quiet(
        MLPClassifier(
            hidden_layer_sizes=(5,), solver="lbfgs", alpha=0.5, max_iter=200, random_state=0
        ),
        X,
        y,
    )
    penalty = 0.5 * 0.5 * sum((W**2).sum() for W in clf.coefs_) / len(X)
    assert clf.loss_ == pytest.approx(log_loss(y, clf.predict_proba(X)) + penalty, rel=1e-6)
    assert clf.loss_curve_[-1] == pytest.approx(clf.loss_)
    assert len(clf.loss_curve_) == clf.n_iter_
    assert np.all(np.diff(clf.loss_curve_) <= 1e-12)  # L-BFGS never goes uphill


@pytest.mark.parametrize("labels", [["no", "yes"], [3, 7, 11], ["a", "b", "c", "d"]])
def test_decode_and_validation_accuracy_are_scikit_learns(labels, rng):
    """The classifier decodes outputs and scores the validation set itself (without
    scikit-learn's input checks, 1.2 ms an epoch): the same labels as the label
    binarizer, ties and the 0.5 threshold included, and the same accuracy."""
    labels = np.array(labels, dtype=object if isinstance(labels[0], str) else None)
    y = np.concatenate([labels, labels[rng.integers(0, len(labels), 40)]])
    clf = quiet(MLPClassifier(hidden_layer_sizes=(3,), max_iter=2), rng.random((len(y), 4)), y)
    outputs = rng.random((len(y), clf.n_outputs_))
    ties = rng.random(len(y)) < 0.3
    outputs[ties] = 0.5 if clf.n_outputs_ == 1 else 0.25  # the threshold; equal maxima
    flat = outputs.ravel() if clf.n_outputs_ == 1 else outputs
    expected = clf._label_binarizer.inverse_transform(flat)
    np.testing.assert_array_equal(clf._decode(outputs), expected)
    y_val = labels[rng.integers(0, len(labels), len(y))]
    for weights in (None, rng.random(len(y)).astype(np.float32)):
        assert clf._validation_score(y_val, outputs, weights) == accuracy_score(
            y_val, expected, sample_weight=weights
        )


def test_early_stopping_names_a_weightless_validation_split(iris):
    """One weighted row: where the split leaves it in the training part, the
    held-out rows weigh nothing, and the error says so (not "sample_weight sums to
    zero", which the user's weights do not)."""
    X, y = iris
    weights = np.zeros(len(y))
    weights[0] = 1.0
    messages = []
    for seed in range(8):
        clf = MLPClassifier(early_stopping=True, validation_fraction=0.3, random_state=seed)
        with pytest.raises(ValueError) as error:
            clf.fit(X, y, sample_weight=weights)
        messages.append(str(error.value))
    assert any("held out for early stopping" in m for m in messages)


def test_lbfgs_runs_with_single_threaded_blas_and_restores_it(iris, monkeypatch):
    """L-BFGS-B's own BLAS calls run between the kernel calls: with BLAS's threads
    beside Numba's they contended for the cores (a digits fit 400 ms against 90), so
    the cap holds for the whole run, and is lifted afterwards."""
    from threadpoolctl import threadpool_info

    def blas_threads():
        return [lib["num_threads"] for lib in threadpool_info() if lib["user_api"] == "blas"]

    seen = []
    minimize = base.scipy.optimize.minimize

    def watched(fun, x0, **kwargs):
        def fun_watched(x):
            seen.append(blas_threads())
            return fun(x)

        seen.append(blas_threads())
        return minimize(fun_watched, x0, **kwargs)

    monkeypatch.setattr(base.scipy.optimize, "minimize", watched)
    X, y = iris
    quiet(MLPClassifier(hidden_layer_sizes=(8,), solver="lbfgs", max_iter=20, n_threads=2), X, y)
    after = blas_threads()
    assert len(seen) > 5 and all(threads and set(threads) == {1} for threads in seen)
    with threadpool_limits(2, user_api="blas"):
        quiet(MLPClassifier(hidden_layer_sizes=(8,), solver="lbfgs", max_iter=5), X, y)
        assert set(blas_threads()) == {2}
    assert blas_threads() == after


# ------------------------------------------------------------------ early stopping
def _record_validation(monkeypatch):
    """Record, after each epoch's validation scoring, the held-out data and params."""
    seen = []
    original = base.BaseMLP._score_validation

    def spy(self, X_val, Y_val, y_val, sw_val):
        original(self, X_val, Y_val, y_val, sw_val)
        seen.append((X_val, y_val, self._net.params.copy()))

    monkeypatch.setattr(base.BaseMLP, "_score_validation", spy)
    return seen


def test_early_stopping_restores_the_best_weights(monkeypatch):
    X, y = make_classification(
        600, n_features=10, n_informative=6, n_classes=3, weights=[0.6, 0.3, 0.1], random_state=0
    )
    seen = _record_validation(monkeypatch)
    clf = MLPClassifier(
        hidden_layer_sizes=(64,),
        early_stopping=True,
        validation_fraction=0.2,
        learning_rate_init=0.02,
        n_iter_no_change=5,
        max_iter=200,
        random_state=0,
    ).fit(X, y)
    scores = clf.validation_scores_
    assert len(scores) == len(clf.validation_loss_curve_) == clf.n_iter_ == len(seen) < 200
    assert clf.best_validation_score_ == max(scores)
    assert clf.best_loss_ is None
    best = int(np.argmax(scores))
    assert best < clf.n_iter_ - 1  # the best epoch was not the last one...
    np.testing.assert_array_equal(clf._net.params, seen[best][2])  # ...and is restored
    X_val, y_val, _ = seen[0]
    assert clf.score(X_val, y_val) == clf.best_validation_score_
    # The validation loss is the held-out data loss (cross-entropy, no L2 term).
    assert clf.validation_loss_curve_[best] == pytest.approx(
        log_loss(y_val, clf.predict_proba(X_val)), rel=1e-9
    )
    # Stratified: the held-out classes in the proportions of the whole set.
    np.testing.assert_allclose(np.bincount(y_val) / len(y_val), np.bincount(y) / len(y), atol=0.01)
    assert len(y_val) == 120


def test_early_stopping_regressor_records_r2_and_loss(regression, monkeypatch):
    X, Y = regression
    seen = _record_validation(monkeypatch)
    reg = quiet(
        MLPRegressor(
            hidden_layer_sizes=(16,),
            early_stopping=True,
            max_iter=30,
            learning_rate_init=0.01,
            random_state=0,
        ),
        X,
        Y,
    )
    X_val, Y_val, _ = seen[-1]
    assert reg.score(X_val, Y_val) == pytest.approx(reg.best_validation_score_)
    best = int(np.argmax(reg.validation_scores_))
    half_squared_error = 0.5 * np.mean((reg.predict(X_val) - Y_val) ** 2)
    assert reg.validation_loss_curve_[best] == pytest.approx(half_squared_error, rel=1e-9)


def test_validation_set_too_small():
    X, y = make_classification(12, random_state=0)
    with pytest.raises(ValueError, match="validation set"):
        MLPClassifier(early_stopping=True, validation_fraction=0.05).fit(X, y)


# ------------------------------------------------------------------ incremental fitting
def test_partial_fit_classifier(iris):
    X, y = iris
    clf = MLPClassifier(hidden_layer_sizes=(8,), learning_rate_init=0.01, random_state=0)
    with pytest.raises(ValueError, match="classes must be passed"):
        clf.partial_fit(X, y)
    clf.partial_fit(X[y < 2], y[y < 2], classes=[0, 1, 2])  # class 2 not seen yet
    assert clf.n_outputs_ == 3 and clf.n_iter_ == 1
    for _ in range(30):
        clf.partial_fit(X, y)
    assert len(clf.loss_curve_) == 31 and clf.n_iter_ == 1
    assert clf.loss_curve_[-1] < clf.loss_curve_[1]
    assert clf.t_ == int((y < 2).sum()) + 30 * len(X)
    assert clf.score(X, y) > 0.8
    with pytest.raises(ValueError, match="not in classes_"):
        clf.partial_fit(X, np.where(y == 2, 5, y))
    with pytest.raises(ValueError, match="early_stopping"):
        MLPClassifier(early_stopping=True).partial_fit(X, y, classes=[0, 1, 2])
    with pytest.raises(ValueError, match="balanced"):
        MLPClassifier(class_weight="balanced").partial_fit(X, y, classes=[0, 1, 2])


def test_partial_fit_regressor_and_multilabel(regression):
    X, Y = regression
    reg = MLPRegressor(hidden_layer_sizes=(8,), learning_rate_init=0.01, random_state=0)
    for _ in range(20):
        reg.partial_fit(X, Y)
    assert len(reg.loss_curve_) == 20 and reg.loss_curve_[-1] < reg.loss_curve_[0]
    Xm, Ym = make_multilabel_classification(100, n_features=5, n_classes=3, random_state=0)
    clf = MLPClassifier(hidden_layer_sizes=(8,)).partial_fit(Xm, Ym)  # no classes needed
    assert clf.predict(Xm).shape == (100, 3)


@pytest.mark.parametrize("cls", [MLPClassifier, MLPRegressor])
def test_no_partial_fit_with_lbfgs(cls):
    assert hasattr(cls(), "partial_fit")
    assert not hasattr(cls(solver="lbfgs"), "partial_fit")


def test_warm_start_continues_and_cold_start_restarts(iris):
    X, y = iris
    clf = quiet(MLPClassifier(hidden_layer_sizes=(8,), max_iter=10, random_state=0), X, y)
    first = list(clf.loss_curve_)
    quiet(clf.set_params(warm_start=True), X, y)
    assert clf.loss_curve_[:10] == first and len(clf.loss_curve_) == 20
    assert clf.n_iter_ == 10 and clf.t_ == 20 * len(X)
    assert clf.loss_curve_[10] < first[0]  # started from the trained weights
    with pytest.raises(ValueError, match="classes of the previous fit"):
        clf.fit(X[y < 2], y[y < 2])
    quiet(clf.set_params(warm_start=False), X, y)
    assert clf.loss_curve_ == first  # a fresh start reproduces the first fit


# ------------------------------------------------------------------ weights
def test_zero_sample_weight_equals_dropping_rows(iris):
    X, y = iris
    keep = np.arange(len(X)) % 3 != 0
    args = dict(hidden_layer_sizes=(5,), solver="lbfgs", max_iter=50, random_state=0)
    weighted = quiet(MLPClassifier(**args), X, y, sample_weight=keep.astype(float))
    dropped = quiet(MLPClassifier(**args), X[keep], y[keep])
    np.testing.assert_allclose(weighted.coefs_[0], dropped.coefs_[0], rtol=1e-7, atol=1e-9)
    w = np.linspace(0, 1, len(X))
    assert weighted.score(X, y, sample_weight=w) == accuracy_score(
        y, weighted.predict(X), sample_weight=w
    )
    with pytest.raises(ValueError):
        MLPClassifier().fit(X, y, sample_weight=np.zeros(len(X)))
    with pytest.raises(ValueError):
        MLPClassifier().fit(X, y, sample_weight=-np.ones(len(X)))


def test_class_weight():
    X, y = make_classification(
        400, n_features=5, weights=[0.9, 0.1], flip_y=0.05, class_sep=0.5, random_state=0
    )
    args = dict(hidden_layer_sizes=(8,), max_iter=60, random_state=0)
    plain = quiet(MLPClassifier(**args), X, y)
    weighted = quiet(MLPClassifier(class_weight={0: 1, 1: 10}, **args), X, y)
    assert recall_score(y, weighted.predict(X)) > recall_score(y, plain.predict(X)) + 0.1
    balanced = quiet(MLPClassifier(class_weight="balanced", **args), X, y)
    by_hand = quiet(MLPClassifier(**args), X, y, sample_weight=compute_sample_weight("balanced", y))
    np.testing.assert_array_equal(balanced.coefs_[0], by_hand.coefs_[0])
    w = np.random.default_rng(0).random(len(X))
    both = quiet(MLPClassifier(class_weight="balanced", **args), X, y, sample_weight=w)
    product = quiet(
        MLPClassifier(**args), X, y, sample_weight=w * compute_sample_weight("balanced", y)
    )
    np.testing.assert_allclose(both.coefs_[0], product.coefs_[0], rtol=1e-12)


# ------------------------------------------------------------------ mlpfast additions
@pytest.mark.parametrize("activation", list(HIDDEN))
def test_hidden_activations(activation):
    X, y = circles(400)
    clf = quiet(
        MLPClassifier(
            hidden_layer_sizes=(16,),
            activation=activation,
            solver="lbfgs",
            max_iter=300,
            random_state=0,
        ),
        X,
        y,
    )
    p = numpy_forward(clf, X, HIDDEN[activation])[:, 0]
    np.testing.assert_allclose(clf.predict_proba(X)[:, 1], p, rtol=1e-9, atol=1e-12)
    if activation != "identity":  # circles are not linearly separable
        assert clf.score(X, y) > 0.95


def _thread_counts(monkeypatch):
    counts = []
    original = mlpfast._threads.kernel_threads

    def spy(n_threads, *args, **kwargs):
        counts.append(n_threads)
        return original(n_threads, *args, **kwargs)

    monkeypatch.setattr(mlpfast._threads, "kernel_threads", spy)
    return counts


def test_n_threads(iris, monkeypatch):
    X, y = iris
    args = dict(hidden_layer_sizes=(8,), max_iter=5, random_state=0)
    default = quiet(MLPClassifier(**args), X, y)
    counts = _thread_counts(monkeypatch)
    single = quiet(MLPClassifier(n_threads=1, **args), X, y)
    single.predict(X)
    assert counts and set(counts) == {1}
    np.testing.assert_allclose(single.predict_proba(X), default.predict_proba(X), rtol=1e-9)
    single.set_params(n_threads=-1, warm_start=True)
    quiet(single, X, y)
    assert single._net.n_threads == mlpfast._threads.max_threads()
    with pytest.raises(ValueError, match="n_threads"):
        MLPClassifier(n_threads=0).fit(X, y)
    with pytest.raises(ValueError, match="n_threads"):
        MLPClassifier(n_threads=mlpfast._threads.max_threads() + 1).fit(X, y)


def test_verbose_prints_scikit_learn_lines(iris, capsys):
    X, y = iris
    clf = quiet(
        MLPClassifier(
            hidden_layer_sizes=(4,), max_iter=3, verbose=True, early_stopping=True, random_state=0
        ),
        X,
        y,
    )
    lines = capsys.readouterr().out.splitlines()
    assert lines[0] == f"Iteration 1, loss = {clf.loss_curve_[0]:.8f}"
    assert lines[1] == f"Validation score: {clf.validation_scores_[0]:f}"
    assert len(lines) == 6
    quiet(MLPClassifier(hidden_layer_sizes=(4,), max_iter=3, solver="lbfgs", verbose=True), X, y)
    assert capsys.readouterr().out.startswith("Iteration 1, loss = ")
    quiet(MLPClassifier(hidden_layer_sizes=(4,), max_iter=3), X, y)
    assert capsys.readouterr().out == ""


def _record_progress(monkeypatch):
    calls = []

    class Recorder:
        def __init__(self, total, n_samples, enabled):
            self.args, self.updates = (total, n_samples, enabled), []
            calls.append(self)

        def update(self, epochs_done, losses):
            self.updates.append((epochs_done, np.array(losses)))

        def __enter__(self):
            return self

        def __exit__(self, *exc):
            return False

    monkeypatch.setattr(
        base, "make_progress", lambda total, n, enabled, **kw: Recorder(total, n, enabled)
    )
    return calls


@pytest.mark.parametrize("verbose,enabled", [(2, True), (False, False), (True, False)])
def test_progress_bar_when_verbose_2(iris, monkeypatch, capsys, verbose, enabled):
    X, y = iris
    calls = _record_progress(monkeypatch)
    clf = quiet(MLPClassifier(hidden_layer_sizes=(4,), max_iter=4, verbose=verbose), X, y)
    (bar,) = calls
    assert bar.args == (4, len(X), enabled)
    done = [done for done, _ in bar.updates]
    # A shown bar advances every epoch; without one, epochs run several to a
    # kernel call (see _epochs_per_call) and the silent reporter hears of each call.
    assert done == [1, 2, 3, 4] if enabled or verbose else done[-1] == 4
    np.testing.assert_array_equal(bar.updates[-1][1], clf.loss_curve_)
    assert ("Iteration" in capsys.readouterr().out) == (verbose is True)


# ------------------------------------------------------------------ interruption
def _interrupt_kernel_call(monkeypatch, call, after=False):
    """Make the training kernel raise KeyboardInterrupt (as Ctrl-C would) on its
    ``call``-th invocation: before it runs, or ``after`` it ran (where a real Ctrl-C
    surfaces: compiled code does not look at signals)."""
    calls = []

    def interrupting(original):
        def interrupted(*args):
            calls.append(1)
            if len(calls) == call and not after:
                raise KeyboardInterrupt
            result = original(*args)
            if len(calls) == call:
                raise KeyboardInterrupt
            return result

        return interrupted

    # (the general kernels, and the unrolled ones that small networks train with)
    for name in ("train_epochs", "train_epochs_unrolled"):
        monkeypatch.setattr(train_kernels, name, interrupting(getattr(train_kernels, name)))


def test_ctrl_c_during_fit_warns_and_leaves_a_usable_model(iris, monkeypatch):
    X, y = iris
    _interrupt_kernel_call(monkeypatch, 4)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        clf = MLPClassifier(hidden_layer_sizes=(8,), max_iter=50, random_state=0).fit(X, y)
    messages = [str(w.message) for w in caught]
    # (three kernel calls completed: up to n_iter_no_change + 1 epochs each)
    done = clf.n_iter_
    assert 3 <= done <= 3 * (clf.n_iter_no_change + 1) and done < 50
    assert len(messages) == 1 and f"interrupted by the user after {done} epoch" in messages[0]
    assert len(clf.loss_curve_) == done and clf.loss_ == clf.loss_curve_[-1]
    assert clf.predict(X).shape == (150,)
    monkeypatch.undo()
    quiet(clf.set_params(warm_start=True), X, y)  # and it trains on
    assert len(clf.loss_curve_) == done + 50


@pytest.mark.parametrize("n_iter_no_change", [10, 1000])  # 11-epoch calls, one call
def test_ctrl_c_while_a_kernel_runs_stops_the_fit(iris, monkeypatch, n_iter_no_change):
    # The signal surfaces when the kernel call returns, all of its epochs done:
    # the fit must stop there (it used to carry on: the call looked complete).
    X, y = iris
    _interrupt_kernel_call(monkeypatch, 1, after=True)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        clf = MLPClassifier(
            hidden_layer_sizes=(8,), max_iter=500, n_iter_no_change=n_iter_no_change, tol=0.0
        ).fit(X, y)
    messages = [str(w.message) for w in caught]
    done = min(500, n_iter_no_change + 1)  # the first call's epochs
    assert clf.n_iter_ == done == len(clf.loss_curve_)
    assert len(messages) == 1 and f"interrupted by the user after {done} epoch" in messages[0]


def test_ctrl_c_during_lbfgs(iris, monkeypatch):
    X, y = iris
    calls = []

    def interrupting(kernel):
        def gradient_pass(*args):  # the 8th loss-and-gradient evaluation is interrupted
            calls.append(1)
            if len(calls) == 8:
                raise KeyboardInterrupt
            return kernel(*args)

        return gradient_pass

    for name in ("gradient_pass", "gradient_pass_parallel"):
        monkeypatch.setattr(train_kernels, name, interrupting(getattr(train_kernels, name)))
    with pytest.warns(UserWarning, match="interrupted by the user"):
        clf = MLPClassifier(hidden_layer_sizes=(8,), solver="lbfgs", random_state=0).fit(X, y)
    assert 0 < clf.n_iter_ < 8 and clf.loss_ == clf.loss_curve_[-1]
    assert clf.score(X, y) > 0.5


def test_divergence_is_a_value_error(regression):
    X, Y = regression
    with pytest.raises(ValueError, match="non-finite"):
        quiet(MLPRegressor(solver="sgd", learning_rate_init=10.0, max_iter=50), X * 1e3, Y * 1e3)


# ------------------------------------------------------------------ persistence
def test_pickle_round_trip_keeps_a_live_model(iris):
    X, y = iris
    clf = quiet(MLPClassifier(hidden_layer_sizes=(8,), max_iter=5, random_state=0), X, y)
    for restored in (pickle.loads(pickle.dumps(clf)), copy.deepcopy(clf)):
        np.testing.assert_array_equal(restored.predict_proba(X), clf.predict_proba(X))
        assert restored.loss_curve_ == clf.loss_curve_
        # coefs_ are still the model's own parameters, not detached copies.
        restored.coefs_[-1][...] = 0
        restored.intercepts_[-1][...] = 0
        np.testing.assert_allclose(restored.predict_proba(X), 1 / 3)
    restored = pickle.loads(pickle.dumps(clf))
    restored.partial_fit(X, y)  # continues with the pickled optimizer state
    clf.partial_fit(X, y)
    np.testing.assert_array_equal(restored.coefs_[0], clf.coefs_[0])


def test_replacing_coefs_updates_the_model(iris):
    X, y = iris
    clf = quiet(MLPClassifier(hidden_layer_sizes=(8,), max_iter=5, random_state=0), X, y)
    clf.coefs_[0] = np.ones((4, 8))
    clf.intercepts_ = [np.zeros(8), np.array([0.0, 1.0, 2.0])]
    np.testing.assert_allclose(
        clf.predict_proba(X), numpy_forward(clf, X, HIDDEN["relu"]), rtol=1e-10
    )
    assert np.shares_memory(clf.coefs_[0], clf._net.params)
    clf.coefs_[1] = np.ones((3, 3))
    with pytest.raises(ValueError, match=re.escape("coefs_[1] has shape (3, 3)")):
        clf.predict(X)


# ------------------------------------------------------------------ in scikit-learn
def test_clone_get_set_params():
    clf = MLPClassifier(hidden_layer_sizes=(3,), alpha=0.5, n_threads=1, class_weight="balanced")
    twin = clone(clf)
    assert twin.get_params() == clf.get_params()
    twin.set_params(alpha=1.0, activation="elu")
    assert (twin.alpha, twin.activation, clf.alpha) == (1.0, "elu", 0.5)


def test_pipeline_grid_search_and_parallel_cross_validation(iris):
    X, y = iris
    pipe = make_pipeline(
        StandardScaler(),
        MLPClassifier(hidden_layer_sizes=(8,), solver="lbfgs", max_iter=100, random_state=0),
    )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        search = GridSearchCV(pipe, {"mlpclassifier__alpha": [1e-4, 10.0]}, cv=3).fit(X, y)
        assert search.best_score_ > 0.85
        serial = cross_val_score(pipe, X, y, cv=3)
        parallel = cross_val_score(pipe, X, y, cv=3, n_jobs=2)
    np.testing.assert_allclose(parallel, serial)


def test_verbose_2_draws_a_tqdm_bar(iris, capsys):
    pytest.importorskip("tqdm")
    X, y = iris
    quiet(MLPClassifier(hidden_layer_sizes=(4,), max_iter=4, verbose=2), X, y)
    captured = capsys.readouterr()
    assert "MLPClassifier" in captured.err and "4/4" in captured.err
    assert captured.out == ""


# ------------------------------------------------------------------ epochs per kernel call
@pytest.mark.parametrize(
    "params",
    [
        # stops on the training-loss rule long before max_iter
        dict(solver="adam", tol=1e-2, n_iter_no_change=3, max_iter=200),
        # the rule cuts an adaptive learning rate several times, then stops
        dict(solver="sgd", learning_rate="adaptive", tol=1e-2, n_iter_no_change=2, max_iter=300),
        # invscaling (the step size follows the samples seen across calls), max_iter
        dict(solver="sgd", learning_rate="invscaling", momentum=0.5, max_iter=40),
        # L2: the loss curve's penalty term must not depend on where a call began
        dict(
            solver="adam",
            alpha=1e-2,
            batch_size=16,
            learning_rate_init=1e-2,
            tol=0.0,
            n_iter_no_change=1000,
            max_iter=200,
        ),
    ],
)
@pytest.mark.parametrize("estimator", [MLPClassifier, MLPRegressor])
def test_several_epochs_a_kernel_call_give_the_model_of_one_epoch_a_call(
    iris, monkeypatch, params, estimator
):
    X, y = iris
    if estimator is MLPRegressor:
        y = y.astype(float)

    def fit():
        return quiet(estimator(hidden_layer_sizes=(12,), random_state=0, **params), X, y)

    chunked = fit()
    monkeypatch.setattr(base.BaseMLP, "_epochs_per_call", lambda self, epochs, one: 1)
    single = fit()
    assert chunked.n_iter_ == single.n_iter_ and chunked.t_ == single.t_
    assert chunked.loss_curve_ == single.loss_curve_
    assert chunked.best_loss_ == single.best_loss_
    layers = chunked.coefs_ + chunked.intercepts_, single.coefs_ + single.intercepts_
    for a, b in zip(*layers, strict=True):
        np.testing.assert_array_equal(a, b)
    if params.get("learning_rate") == "adaptive":
        assert chunked._learning_rate == single._learning_rate < 1e-3  # it was cut
    if params.get("tol"):
        assert chunked.n_iter_ < params["max_iter"]  # it did stop on the rule


@pytest.mark.parametrize(
    "y",
    [
        np.array([0, 2, 1, 2, 0]),
        np.array([1, 0, 0, 1]),
        np.array(["b", "a", "c", "a"]),
        np.array(["no", "yes"], dtype=object),
        np.array([2.0, -1.0, 2.0]),
        np.array([True, False, True]),
        np.array([7, 7, 7]),
        np.array([[0, 1, 1], [1, 0, 0]]),
    ],
)
def test_targets_are_binarized_as_label_binarizer_does(y):
    from sklearn.preprocessing import LabelBinarizer

    clf = MLPClassifier()
    clf._label_binarizer = LabelBinarizer().fit(y)
    expected = clf._label_binarizer.transform(y)
    got = clf._binarize(y)
    assert got.shape == expected.shape and got.dtype == expected.dtype
    np.testing.assert_array_equal(got, expected)
    # a label the binarizer was not fitted on: whatever LabelBinarizer does
    if y.ndim == 1 and y.dtype.kind in "iu":
        other = np.append(y, y.max() + 5)
        np.testing.assert_array_equal(clf._binarize(other), clf._label_binarizer.transform(other))
