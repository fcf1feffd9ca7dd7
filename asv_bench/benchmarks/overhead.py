"""The Python around the kernels: what a short fit costs beyond its arithmetic.

- ``time_network_fit_one_epoch``: ``Network.fit`` of one full-batch epoch of the
  tutorial (its kernel takes ~10 us; the rest is validation, planning, thread and
  BLAS settings).  Measured 2026-12-02 (Zen 4, alternating processes): minima
  91-95 us before a fit reused its buffers and unrolled fits skipped the BLAS caps,
  66-73 us after.
- ``time_iris_estimator_fit``: ``MLPClassifier(hidden_layer_sizes=(6,))`` on iris,
  300 epochs of 150 rows, as a scikit-learn user would fit it: 13.0-16.2 ms with one
  kernel call an epoch, 4.5-6.0 ms with up to ``n_iter_no_change`` + 1 epochs a call.
"""

import warnings

from sklearn.datasets import load_iris
from sklearn.exceptions import ConvergenceWarning

from mlpfast import MLPClassifier, Network
from mlpfast.demo import tutorial_data


class ShortFits:
    def setup(self):
        self.X, self.y = tutorial_data()
        self.net = Network(
            [2, 4, 3, 1], ["relu", "relu", "sigmoid"], "binary_crossentropy", dtype="float64"
        )
        self.iris = load_iris(return_X_y=True)
        self.time_network_fit_one_epoch()  # compile (or load) the kernels outside the timing
        self.time_iris_estimator_fit()

    def time_network_fit_one_epoch(self):
        self.net.fit(self.X, self.y, epochs=1, batch_size=1000, lr=0.005, verbose=False)

    def time_iris_estimator_fit(self):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ConvergenceWarning)
            MLPClassifier(hidden_layer_sizes=(6,), max_iter=300, random_state=0).fit(*self.iris)
