"""Small networks on the unrolled kernels (``mlpfast/_kernels/unrolled.py``) against
the general layer kernels, in one run: one timed call is a fit of ``epochs`` epochs.

``path`` "unrolled" is what users get for these networks; "general" switches the
unrolled path off (as ``tests/test_unrolled.py`` does) to show what it is worth.
Networks: the tutorial's (log-loss) and [8,8,8,8], the largest that is unrolled
(squared error), both on full batches of 1000 rows.  A fit's own Python (~0.1 ms a
call) is in the timing too, as users pay it.  Compare full runs: CI's quick run
times one call without warm-up, and its first case (tutorial, unrolled) read
6.2-6.4 ms there against 1.6-1.9 ms in fresh processes timed by hand.
"""

import numpy as np

from mlpfast import Network
from mlpfast._kernels import unrolled
from mlpfast.demo import tutorial_data

_CASES = {
    "tutorial": ([2, 4, 3, 1], ["relu", "relu", "sigmoid"], "binary_crossentropy", 1000, 150),
    "8x8x8x8": ([8, 8, 8, 8], ["relu", "relu", "identity"], "mse", 1000, 50),
}


class SmallNetworks:
    params = (list(_CASES), ["unrolled", "general"])
    param_names = ["network", "path"]

    def setup(self, network, path):
        sizes, acts, loss, self.batch, self.epochs = _CASES[network]
        if network == "tutorial":
            self.X, y = tutorial_data()
            self.Y = y.reshape(-1, 1).astype(np.float64)
        else:
            rng = np.random.default_rng(0)
            self.X = rng.standard_normal((1000, sizes[0]))
            self.Y = rng.standard_normal((1000, sizes[-1]))
        self.eligible = unrolled.eligible
        if path == "general":
            unrolled.eligible = lambda *args: False
        self.net = Network(sizes, acts, loss, dtype="float64", seed=0, n_threads=1)
        self.time_fit(network, path)  # compile (or load) outside the timed call

    def teardown(self, network, path):
        unrolled.eligible = self.eligible

    def time_fit(self, network, path):
        self.net.fit(self.X, self.Y, epochs=self.epochs, batch_size=self.batch, lr=1e-3, seed=0)
