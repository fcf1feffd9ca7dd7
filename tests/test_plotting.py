"""mlpfast.plot_loss_curve, drawn with matplotlib's Agg backend (no display)."""

import sys

import numpy as np
import pytest

import mlpfast
from mlpfast import Network

matplotlib = pytest.importorskip("matplotlib")
matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402


@pytest.fixture(autouse=True)
def _close_figures():
    yield
    plt.close("all")


class _FittedEstimator:
    """Stands in for an estimator: only the fitted attributes plot_loss_curve reads."""

    def __init__(self, **curves):
        self.__dict__.update(curves)


def _fitted_network(epochs=5):
    rng = np.random.default_rng(0)
    X = rng.standard_normal((128, 2))
    y = (X[:, 0] * X[:, 1] > 0).astype(float)
    net = Network([2, 8, 1], ["relu", "sigmoid"], "binary_crossentropy", dtype="float64", seed=0)
    net.fit(X, y, epochs=epochs, batch_size=32, lr=0.1, verbose=False)
    return net


def test_network_history_is_plotted_and_saved(tmp_path):
    net = _fitted_network()
    ax = mlpfast.plot_loss_curve(net)
    (line,) = ax.get_lines()
    np.testing.assert_array_equal(line.get_xdata(), np.arange(1, 6))
    np.testing.assert_allclose(line.get_ydata(), net.history)
    assert ax.get_xlabel() == "epoch"
    path = tmp_path / "loss.png"
    ax.figure.savefig(path)
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_draws_on_given_axes_with_options():
    net = _fitted_network()
    fig, ax = plt.subplots()
    returned = mlpfast.plot_loss_curve(net, ax=ax, label="run 1", log_scale=True, color="red")
    assert returned is ax
    (line,) = ax.get_lines()
    assert line.get_label() == "run 1"
    assert line.get_color() == "red"
    assert ax.get_yscale() == "log"


def test_several_models_share_axes_and_legend():
    fig, ax = plt.subplots()
    for name in ("a", "b"):
        mlpfast.plot_loss_curve(_fitted_network(3), ax=ax, label=name)
    assert [t.get_text() for t in ax.get_legend().get_texts()] == ["a", "b"]
    assert ax.get_lines()[0].get_color() != ax.get_lines()[1].get_color()


def test_estimator_curves_validation_loss_and_scores():
    est = _FittedEstimator(
        loss_curve_=[0.9, 0.6, 0.4],
        validation_loss_curve_=[1.0, 0.7, 0.5],
        validation_scores_=[0.5, 0.7, 0.8],
    )
    ax = mlpfast.plot_loss_curve(est)
    labels = [line.get_label() for line in ax.get_lines()]
    assert labels == ["training loss", "validation loss"]
    np.testing.assert_allclose(ax.get_lines()[1].get_ydata(), [1.0, 0.7, 0.5])
    (right,) = [other for other in ax.figure.axes if other is not ax]
    np.testing.assert_allclose(right.get_lines()[0].get_ydata(), [0.5, 0.7, 0.8])
    assert [t.get_text() for t in right.get_legend().get_texts()] == [
        "training loss",
        "validation loss",
        "validation score",
    ]


def test_estimator_without_early_stopping_draws_one_curve():
    est = _FittedEstimator(loss_curve_=[0.9, 0.6], validation_scores_=None)
    ax = mlpfast.plot_loss_curve(est)
    assert len(ax.get_lines()) == 1
    assert len(ax.figure.axes) == 1


def test_real_estimator():
    estimators = pytest.importorskip("mlpfast.estimators")
    rng = np.random.default_rng(0)
    X = rng.standard_normal((100, 3))
    y = (X[:, 0] > 0).astype(int)
    clf = estimators.MLPClassifier(hidden_layer_sizes=(8,), max_iter=5, random_state=0)
    with pytest.warns(Warning):  # ConvergenceWarning after 5 epochs
        clf.fit(X, y)
    ax = mlpfast.plot_loss_curve(clf)
    np.testing.assert_allclose(ax.get_lines()[0].get_ydata(), clf.loss_curve_)


def test_unfitted_and_wrong_models_are_rejected():
    net = Network([2, 1], "sigmoid", "binary_crossentropy")
    with pytest.raises(ValueError, match="call fit first"):
        mlpfast.plot_loss_curve(net)
    with pytest.raises(TypeError, match="Network"):
        mlpfast.plot_loss_curve(object())


def test_missing_matplotlib_says_how_to_install(monkeypatch):
    net = _fitted_network(2)
    monkeypatch.setitem(sys.modules, "matplotlib", None)
    monkeypatch.setitem(sys.modules, "matplotlib.pyplot", None)
    with pytest.raises(ImportError, match=r'pip install "mlpfast\[plot\]"'):
        mlpfast.plot_loss_curve(net)
