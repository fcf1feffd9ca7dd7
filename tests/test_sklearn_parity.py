"""mlpfast's estimators against scikit-learn's, same hyperparameters and seeds.

Two kinds of evidence:

- *trajectories*: with ``shuffle=False`` both libraries see the same minibatches in
  the same order from the same Glorot initialisation (drawn from the same
  ``random_state``), so every solver must reproduce scikit-learn's weights, losses
  and stopping epoch to rounding error;
- *accuracy*: with shuffling (mlpfast shuffles with its own generator), held-out
  accuracy / R^2 averaged over three seeds must match within 1.5 points / 0.02.

Both sides run single-threaded so the comparison (and the test time) does not
depend on how busy the machine is.
"""

import warnings

import numpy as np
import pytest
from sklearn import neural_network as sk
from sklearn.datasets import load_diabetes, load_digits, load_iris, make_friedman1, make_regression
from sklearn.exceptions import ConvergenceWarning
from sklearn.model_selection import KFold, StratifiedKFold, StratifiedShuffleSplit, cross_val_score
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler
from threadpoolctl import threadpool_limits

import mlpfast

SEEDS = (0, 1, 2)


def _iris():
    X, y = load_iris(return_X_y=True)
    return StandardScaler().fit_transform(X), y


def _regression():
    X, y = make_regression(150, 5, n_targets=2, random_state=0)
    return X, y / 100


def _max_difference(a, b):
    return max(
        np.abs(u - v).max()
        for u, v in zip(a.coefs_ + a.intercepts_, b.coefs_ + b.intercepts_, strict=True)
    )


def _both(name, args, X, y, **fit_kwargs):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        ours = getattr(mlpfast, name)(**args).fit(X, y, **fit_kwargs)
        theirs = getattr(sk, name)(**args).fit(X, y, **fit_kwargs)
    return ours, theirs


SOLVERS = [
    dict(solver="adam"),
    dict(solver="adam", activation="tanh", alpha=0.1),
    dict(solver="adam", activation="logistic"),
    dict(solver="sgd"),  # Nesterov momentum
    dict(solver="sgd", nesterovs_momentum=False),
    dict(solver="sgd", momentum=0.0),
    dict(solver="sgd", learning_rate="invscaling", learning_rate_init=0.1),
    dict(solver="sgd", learning_rate="adaptive", n_iter_no_change=1, tol=0.5, max_iter=40),
    dict(solver="lbfgs"),
]
TARGETS = {
    "multiclass": ("MLPClassifier", lambda: _iris()),
    "binary": ("MLPClassifier", lambda: (_iris()[0], _iris()[1] == 1)),
    "multi-output": ("MLPRegressor", _regression),
}


@pytest.mark.parametrize("target", list(TARGETS))
@pytest.mark.parametrize("settings", SOLVERS, ids=lambda s: "-".join(map(str, s.values())))
def test_same_trajectory_as_scikit_learn(settings, target):
    name, data = TARGETS[target]
    X, y = data()
    args = dict(
        hidden_layer_sizes=(7, 5),
        shuffle=False,
        batch_size=32,
        random_state=0,
        **{"max_iter": 15, **settings},
    )
    ours, theirs = _both(name, args, X, y)
    assert ours.n_iter_ == theirs.n_iter_
    assert ours.loss_ == pytest.approx(theirs.loss_, rel=1e-9)
    # lbfgs amplifies rounding differences a little over its iterations.
    assert _max_difference(ours, theirs) < (1e-8 if settings["solver"] == "lbfgs" else 1e-12)
    if settings["solver"] != "lbfgs":
        np.testing.assert_allclose(ours.loss_curve_, theirs.loss_curve_, rtol=1e-10)
        assert ours.t_ == theirs.t_


@pytest.mark.parametrize("target", ["binary", "multi-output"])
def test_same_trajectory_with_early_stopping(target):
    # Multi-class splits differ on purpose: mlpfast stratifies them, scikit-learn
    # stratifies only single-column (binary) targets.
    name, data = TARGETS[target]
    X, y = data()
    args = dict(
        hidden_layer_sizes=(7, 5),
        shuffle=False,
        batch_size=32,
        random_state=0,
        early_stopping=True,
        max_iter=40,
    )
    ours, theirs = _both(name, args, X, y)
    assert ours.n_iter_ == theirs.n_iter_
    np.testing.assert_allclose(ours.validation_scores_, theirs.validation_scores_, rtol=1e-9)
    assert ours.best_validation_score_ == pytest.approx(theirs.best_validation_score_)
    assert _max_difference(ours, theirs) < 1e-12  # the same best epoch was restored


@pytest.mark.parametrize("target", list(TARGETS))
def test_same_trajectory_with_sample_weight(target):
    name, data = TARGETS[target]
    X, y = data()
    weights = np.random.RandomState(0).rand(len(X)) * 2
    args = dict(
        hidden_layer_sizes=(7, 5), shuffle=False, batch_size=32, random_state=0, max_iter=15
    )
    ours, theirs = _both(name, args, X, y, sample_weight=weights)
    assert _max_difference(ours, theirs) < 1e-12
    # (The epoch losses differ slightly with weights and several batches: mlpfast
    # averages batch losses by batch weight, scikit-learn by batch size.)


@pytest.mark.parametrize("target", list(TARGETS))
def test_same_trajectory_with_warm_start_and_partial_fit(target):
    name, data = TARGETS[target]
    X, y = data()
    args = dict(
        hidden_layer_sizes=(7, 5), shuffle=False, batch_size=32, random_state=0, max_iter=10
    )
    ours, theirs = _both(name, args, X, y)
    for model in (ours, theirs):
        model.set_params(warm_start=True)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ConvergenceWarning)
            model.fit(X, y)  # a fresh optimizer, continuing from the weights
        for _ in range(3):
            model.partial_fit(X, y)  # one epoch each, keeping the optimizer
    assert _max_difference(ours, theirs) < 1e-12
    np.testing.assert_allclose(ours.loss_curve_, theirs.loss_curve_, rtol=1e-10)
    assert (ours.n_iter_, ours.t_) == (theirs.n_iter_, theirs.t_)


# ------------------------------------------------------------------ accuracy
def _mean_score(library, make, X, y, cv):
    extra = {"n_threads": 1} if library is mlpfast else {}
    scores = []
    with threadpool_limits(1), warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        for seed in SEEDS:
            model = make_pipeline(StandardScaler(), make(library, seed).set_params(**extra))
            scores.append(cross_val_score(model, X, y, cv=cv).mean())
    return float(np.mean(scores))


def _digits():
    X, y = load_digits(return_X_y=True)
    split = StratifiedShuffleSplit(1, test_size=0.3, random_state=0)
    return X, y, list(split.split(X, y))


PARITY = {
    # name: (data, cv, estimator factory, tolerance)
    "digits": (
        _digits,
        lambda lib, s: lib.MLPClassifier(
            hidden_layer_sizes=(64,), learning_rate_init=0.003, max_iter=30, random_state=s
        ),
        0.015,
    ),
    "iris": (
        lambda: (*load_iris(return_X_y=True), StratifiedKFold(5, shuffle=True, random_state=0)),
        lambda lib, s: lib.MLPClassifier(
            hidden_layer_sizes=(10,),
            batch_size=32,
            learning_rate_init=0.01,
            max_iter=100,
            random_state=s,
        ),
        0.015,
    ),
    "diabetes": (
        lambda: (
            load_diabetes(return_X_y=True)[0],
            StandardScaler().fit_transform(load_diabetes(return_X_y=True)[1][:, None]).ravel(),
            KFold(3, shuffle=True, random_state=0),
        ),
        lambda lib, s: lib.MLPRegressor(
            hidden_layer_sizes=(16,),
            alpha=1.0,
            learning_rate_init=0.01,
            max_iter=200,
            random_state=s,
        ),
        0.02,
    ),
    "friedman1": (
        lambda: (
            *make_friedman1(n_samples=600, noise=1.0, random_state=0),
            KFold(3, shuffle=True, random_state=0),
        ),
        lambda lib, s: lib.MLPRegressor(
            hidden_layer_sizes=(32,),
            solver="sgd",
            learning_rate_init=0.01,
            max_iter=300,
            random_state=s,
        ),
        0.02,
    ),
}


@pytest.mark.parametrize("dataset", list(PARITY))
def test_held_out_score_matches_scikit_learn(dataset):
    data, make, tolerance = PARITY[dataset]
    X, y, cv = data()
    ours = _mean_score(mlpfast, make, X, y, cv)
    theirs = _mean_score(sk, make, X, y, cv)
    assert abs(ours - theirs) <= tolerance, (ours, theirs)
    # Both actually learned something (a broken pair cannot agree by failing alike).
    assert ours > (0.9 if dataset in ("digits", "iris") else 0.4)
