"""mlpfast: fast multilayer-perceptron training on CPUs.

- :class:`Network`: a numpy-style MLP whose training runs in compiled kernels.
- :class:`MLPClassifier`, :class:`MLPRegressor`: drop-ins for scikit-learn's.
- :mod:`mlpfast.reference`: a drop-in for the tutorial's numpy trainer (``mlp``).
"""

from . import _config  # noqa: F401  (installs the kernel cache locator first)
from .network import DivergenceError, DivergenceWarning, Gradients, Network

__version__ = "0.1.0"

__all__ = [
    "Network",
    "Gradients",
    "DivergenceError",
    "DivergenceWarning",
    "MLPClassifier",
    "MLPRegressor",
    "plot_loss_curve",
    "__version__",
]


def __getattr__(name):
    # The estimators import scikit-learn, which Network users need not pay for.
    if name in ("MLPClassifier", "MLPRegressor"):
        from . import estimators

        return getattr(estimators, name)
    if name == "plot_loss_curve":  # matplotlib is optional and imported on first use
        from .plotting import plot_loss_curve

        return plot_loss_curve
    raise AttributeError(f"module 'mlpfast' has no attribute {name!r}")
