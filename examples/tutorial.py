"""The tutorial's run (REFERENCE.md) with mlpfast, next to the reference trainer.

Run:  python examples/tutorial.py [--iterations 150]

The script is the tutorial's own loop; only the import differs.  It prints the
loss and accuracy every few iterations, then the time per iteration of the
reference's numpy path against mlpfast's drop-in class and mlpfast's Network.
"""

import argparse
import time

import numpy as np
from sklearn.datasets import make_circles
from sklearn.metrics import accuracy_score

# The only line a reference script changes:
from mlpfast.reference import cross_entropy, d_cross_entropy, drelu, dsigmoid, mlp, relu, sigmoid


def train(iterations: int, fused: bool = True, verbose: bool = True):
    np.random.seed(0)
    X, y = make_circles(n_samples=1000, factor=0.5, noise=0.1)
    y = y.reshape(-1, 1)
    model = mlp([2, 4, 3, 1], [relu, relu, sigmoid], [drelu, drelu, dsigmoid], d_cross_entropy)
    model.fused = fused  # False: the reference trainer's own numpy path
    model.initialize()
    yhat = model.forward(X)
    if verbose:
        print(
            f"Before training - loss {cross_entropy(y, yhat)[0, 0]:.8f}, accuracy "
            f"{accuracy_score(y, yhat > 0.5)}"
        )
    started = time.perf_counter()
    for n in range(iterations):
        model.backward(y, yhat)
        model.update(0.005)
        yhat = model.forward(X)
        if verbose and ((n + 1) % 25 == 0 or n + 1 in (1, 145, 149)):
            print(
                f"Iteration {n + 1} - loss {cross_entropy(y, yhat)[0, 0]:.8f}, accuracy "
                f"{accuracy_score(y, yhat > 0.5)}"
            )
    return (time.perf_counter() - started) / max(iterations, 1), model


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--iterations", type=int, default=150)
    args = parser.parse_args(argv)
    fast, _ = train(args.iterations)
    train(3, verbose=False)  # warm: kernels loaded
    fast, _ = train(args.iterations, verbose=False)
    slow, _ = train(args.iterations, fused=False, verbose=False)

    from mlpfast import Network

    np.random.seed(0)
    X, y = make_circles(n_samples=1000, factor=0.5, noise=0.1)
    net = Network(
        [2, 4, 3, 1], ["relu", "relu", "sigmoid"], "binary_crossentropy", dtype="float64", seed=0
    )
    net.fit(X, y, epochs=2, batch_size=1000, lr=0.5)
    started = time.perf_counter()
    net.fit(X, y, epochs=args.iterations, batch_size=1000, lr=0.5)
    network = (time.perf_counter() - started) / max(args.iterations, 1)
    print(
        f"\nper iteration: reference numpy {slow * 1e6:.1f} us | mlpfast.reference.mlp "
        f"{fast * 1e6:.1f} us ({slow / fast:.1f}x) | mlpfast.Network.fit {network * 1e6:.1f} us "
        f"({slow / network:.1f}x)"
    )


if __name__ == "__main__":
    main()
