"""Loss curves, plotted to a PNG with ``mlpfast.plot_loss_curve``.

Run:  pip install "mlpfast[plot]"
      python examples/loss_curves.py [--output loss_curves.png] [--quick]

Left: a ``Network`` on the two moons with three learning rates (its ``history``).
Right: ``MLPClassifier`` with early stopping on the handwritten digits: training
loss, validation loss and validation accuracy per epoch.
"""

import argparse
import warnings

from matplotlib.figure import Figure  # a figure without pyplot: no display needed
from sklearn.datasets import load_digits, make_moons

import mlpfast


def network_curves(ax, epochs: int, rows: int):
    X, y = make_moons(n_samples=rows, noise=0.2, random_state=0)
    for lr in (0.01, 0.05, 0.2):
        net = mlpfast.Network(
            [2, 64, 64, 1],
            ["relu", "relu", "sigmoid"],
            "binary_crossentropy",
            dtype="float64",
            seed=0,
        )
        net.fit(X, y, epochs=epochs, batch_size=32, lr=lr)
        mlpfast.plot_loss_curve(net, ax=ax, label=f"lr {lr}")
        print(f"moons, lr {lr}: loss {net.history[0]:.4f} -> {net.history[-1]:.4f}")
    ax.set_title(f"Network on the moons ({rows} rows, SGD, batch 32)")


def estimator_curves(ax, max_iter: int):
    X, y = load_digits(return_X_y=True)
    clf = mlpfast.MLPClassifier(
        hidden_layer_sizes=(64,),
        early_stopping=True,
        n_iter_no_change=5,
        max_iter=max_iter,
        random_state=0,
    )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # ConvergenceWarning when max_iter is reached
        clf.fit(X / 16.0, y)
    mlpfast.plot_loss_curve(clf, ax=ax, log_scale=True)
    ax.set_title("MLPClassifier on the digits, early stopping")
    print(
        f"digits: {clf.n_iter_} epochs, best validation accuracy {clf.best_validation_score_:.3f}"
    )


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--output", default="loss_curves.png")
    parser.add_argument("--quick", action="store_true", help="a small run (used by the tests)")
    args = parser.parse_args(argv)
    fig = Figure(figsize=(12, 4.5), layout="tight")
    left, right = fig.subplots(1, 2)
    network_curves(left, epochs=3 if args.quick else 40, rows=500 if args.quick else 5000)
    estimator_curves(right, max_iter=5 if args.quick else 200)
    fig.savefig(args.output, dpi=100)
    print(f"wrote {args.output}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
