"""Classify scikit-learn's handwritten digits with mlpfast's drop-in MLPClassifier.

Run:  python examples/digits_classifier.py [--epochs 200] [--compare]

The script is what a scikit-learn user already writes; only the import of
``MLPClassifier`` differs.  With ``--compare`` it also fits scikit-learn's
``MLPClassifier`` with the same settings and prints both fit times and accuracies.
"""

import argparse
import time
import warnings

from sklearn.datasets import load_digits
from sklearn.exceptions import ConvergenceWarning
from sklearn.metrics import classification_report
from sklearn.model_selection import train_test_split
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from mlpfast import MLPClassifier  # was: from sklearn.neural_network import MLPClassifier


def fit_and_score(classifier, X_train, X_test, y_train, y_test):
    model = make_pipeline(StandardScaler(), classifier)
    started = time.perf_counter()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        model.fit(X_train, y_train)
    return model, time.perf_counter() - started, model.score(X_test, y_test)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=200)
    parser.add_argument(
        "--compare", action="store_true", help="also fit scikit-learn's MLPClassifier"
    )
    args = parser.parse_args()

    X, y = load_digits(return_X_y=True)
    split = train_test_split(X, y, test_size=0.25, stratify=y, random_state=0)
    settings = dict(
        hidden_layer_sizes=(100,), max_iter=args.epochs, early_stopping=True, random_state=0
    )

    # A first small fit loads (or, on first use, compiles) the kernels.
    fit_and_score(MLPClassifier(max_iter=1), *split)
    model, seconds, accuracy = fit_and_score(MLPClassifier(**settings), *split)
    clf = model[-1]
    print(
        f"mlpfast:      {seconds:6.2f} s, {clf.n_iter_} epochs, test accuracy "
        f"{accuracy:.4f} (best validation accuracy {clf.best_validation_score_:.4f})"
    )
    print(
        f"              validation loss: first {clf.validation_loss_curve_[0]:.4f}, "
        f"best epoch {min(clf.validation_loss_curve_):.4f}"
    )
    if args.compare:
        from sklearn.neural_network import MLPClassifier as SklearnMLPClassifier

        _, sk_seconds, sk_accuracy = fit_and_score(SklearnMLPClassifier(**settings), *split)
        print(
            f"scikit-learn: {sk_seconds:6.2f} s, test accuracy {sk_accuracy:.4f}  "
            f"({sk_seconds / seconds:.1f}x mlpfast's time)"
        )
    print()
    print(classification_report(split[3], model.predict(split[1]), digits=3))


if __name__ == "__main__":
    main()
