"""Regression with mlpfast's drop-in MLPRegressor: Friedman #1 and a Poisson target.

Run:  python examples/regression.py [--quick]

Shows the scikit-learn surface (``loss``, ``early_stopping``, ``partial_fit``) and
two things scikit-learn's MLPRegressor does not have: a hidden activation beyond
its four (``elu``) and the validation loss recorded beside the training loss.
"""

import argparse

import numpy as np
from sklearn.datasets import make_friedman1
from sklearn.model_selection import train_test_split
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from mlpfast import MLPRegressor


def friedman(n_samples=5000, max_iter=500):
    X, y = make_friedman1(n_samples=n_samples, noise=1.0, random_state=0)
    X_train, X_test, y_train, y_test = train_test_split(X, y, random_state=0)
    model = make_pipeline(
        StandardScaler(),
        MLPRegressor(
            hidden_layer_sizes=(64, 64),
            activation="elu",
            learning_rate_init=0.003,
            early_stopping=True,
            max_iter=max_iter,
            random_state=0,
        ),
    )
    model.fit(X_train, y_train)
    reg = model[-1]
    how = "stopped early" if reg.n_iter_ < reg.max_iter else "reached max_iter"
    print(
        f"Friedman #1: R^2 on held-out data {model.score(X_test, y_test):.4f} after "
        f"{reg.n_iter_} epochs ({how}; best validation R^2 "
        f"{reg.best_validation_score_:.4f}, whose weights were kept)"
    )
    every = max(1, reg.n_iter_ // 8)
    print("  epoch  training loss  validation loss")
    for epoch in range(0, reg.n_iter_, every):
        print(
            f"  {epoch + 1:5d}  {reg.loss_curve_[epoch]:13.4f}  "
            f"{reg.validation_loss_curve_[epoch]:15.4f}"
        )


def poisson(passes=20):
    rng = np.random.default_rng(0)
    X = rng.standard_normal((4000, 3))
    rate = np.exp(0.8 * X[:, 0] - 0.5 * np.abs(X[:, 1]))
    y = rng.poisson(rate)
    reg = MLPRegressor(
        loss="poisson", hidden_layer_sizes=(32,), learning_rate_init=0.01, random_state=0
    )
    # Stream the data in chunks, as from a source too large to hold at once.
    for _ in range(passes):
        for chunk in np.array_split(np.arange(len(X)), 4):
            reg.partial_fit(X[chunk], y[chunk])
    predicted = reg.predict(X)
    print(
        f"Poisson: {reg.out_activation_!r} output, correlation of predicted and true "
        f"rate {np.corrcoef(predicted, rate)[0, 1]:.3f}; predictions are all positive: "
        f"{bool(predicted.min() > 0)}"
    )


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="a small run (used by the tests)")
    quick = parser.parse_args().quick
    friedman(*((1000, 20) if quick else ()))
    poisson(3 if quick else 20)
