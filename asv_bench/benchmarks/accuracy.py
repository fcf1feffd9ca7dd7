"""Test accuracy on scikit-learn's handwritten digits (bundled: no download).

Higher is better here, unlike every other benchmark: ``compare.sh`` knows that a
*lower* accuracy is the regression.
"""

import warnings

import numpy as np

from mlpfast import Network


def _digits(dtype):
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    digits = load_digits()
    X = (digits.data / 16.0).astype(dtype)
    return train_test_split(
        X, digits.target, test_size=0.25, random_state=0, stratify=digits.target
    )


class Digits:
    """``Network([64, 128, 10])``, 20 epochs of SGD (batch 32, lr 0.1), one thread."""

    params = (["float32", "float64"],)
    param_names = ["dtype"]
    unit = "accuracy"

    def _network(self, dtype):
        return Network(
            [64, 128, 10],
            ["relu", "softmax"],
            "categorical_crossentropy",
            dtype=dtype,
            seed=0,
            n_threads=1,
        )

    def setup(self, dtype):
        self.X_train, self.X_test, self.y_train, self.y_test = _digits(dtype)
        self._network(dtype).fit(
            self.X_train[:64], self.y_train[:64], batch_size=32, verbose=False
        )  # compile outside the measured run

    def track_accuracy(self, dtype):
        net = self._network(dtype)
        net.fit(self.X_train, self.y_train, epochs=20, batch_size=32, lr=0.1, verbose=False)
        predicted = net.predict(self.X_test).argmax(axis=1)
        return float(np.mean(predicted == self.y_test))


class DigitsEstimator:
    """``mlpfast.MLPClassifier(hidden_layer_sizes=(128,))``, adam, 30 epochs."""

    params = (["float32", "float64"],)
    param_names = ["dtype"]
    unit = "accuracy"

    def _classifier(self, max_iter):
        from mlpfast import MLPClassifier

        return MLPClassifier(hidden_layer_sizes=(128,), max_iter=max_iter, random_state=0)

    def _fit(self, clf, X, y):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # ConvergenceWarning at max_iter
            return clf.fit(X, y)

    def setup(self, dtype):
        try:
            self._classifier(1)
        except ModuleNotFoundError as error:
            if error.name != "mlpfast.estimators":
                raise
            raise NotImplementedError("no mlpfast.estimators in this commit") from None
        self.X_train, self.X_test, self.y_train, self.y_test = _digits(dtype)
        self._fit(self._classifier(1), self.X_train, self.y_train)

    def track_accuracy(self, dtype):
        clf = self._fit(self._classifier(30), self.X_train, self.y_train)
        return float(clf.score(self.X_test, self.y_test))
