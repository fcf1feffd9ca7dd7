"""The drop-in ``mlpfast.reference.mlp`` on the tutorial: one timed call is its 150
iterations (forward, backward, update), with the tutorial's six functions as a
user's script defines them (so they are recognised by probing, not imported).

``path`` "fused" is the drop-in as users get it; "numpy" (``model.fused = False``)
is the reference trainer's own numpy path in the same class, the peer the target
(>= 5x, BENCHMARKS.md) is a ratio to.  Compare the two within one run.
"""

from mlpfast.bench import _user_functions
from mlpfast.demo import tutorial_data
from mlpfast.reference import mlp


class DropIn:
    params = (["fused", "numpy"],)
    param_names = ["path"]

    def setup(self, path):
        relu, drelu, sigmoid, dsigmoid, d_cross_entropy = _user_functions()
        self.X, self.y = tutorial_data()
        functions = [relu, relu, sigmoid], [drelu, drelu, dsigmoid], d_cross_entropy
        self.model = mlp([2, 4, 3, 1], *functions)
        self.model.fused = path == "fused"
        self.model.initialize()
        self.time_tutorial(path)  # compile (or load) outside the timed call

    def time_tutorial(self, path):
        model, X, y = self.model, self.X, self.y
        for _ in range(150):
            yhat = model.forward(X)
            model.backward(y, yhat)
            model.update(0.005)
