"""Plain-numpy oracles, written from REFERENCE.md and the documented conventions.

Nothing here imports mlpfast's kernels: these are the independent definitions
the compiled code is checked against.
"""

import numpy as np

EPS = np.finfo(float).eps


# ---------------------------------------------------------------- the reference trainer
class ReferenceMLP:
    """The tutorial's trainer exactly as REFERENCE.md describes it."""

    def __init__(self, layersizes, activations, derivatives, lossderiv):
        self.layersizes = tuple(layersizes)
        self.activations = tuple(activations)
        self.derivatives = tuple(derivatives)
        self.lossderiv = lossderiv
        L = len(self.layersizes)
        self.z, self.W, self.b, self.a = [None] * L, [None] * L, [None] * L, [None] * L
        self.dz, self.dW, self.db, self.da = [None] * L, [None] * L, [None] * L, [None] * L

    def initialize(self, seed=42):
        np.random.seed(seed)
        for l in range(1, len(self.layersizes)):
            self.W[l] = np.random.randn(self.layersizes[l - 1], self.layersizes[l]) * 0.1
            self.b[l] = np.random.randn(1, self.layersizes[l]) * 0.1

    def forward(self, x):
        self.a[0] = x
        for l in range(1, len(self.layersizes)):
            self.z[l] = self.a[l - 1] @ self.W[l] + self.b[l]
            self.a[l] = self.activations[l - 1](self.z[l])
        return self.a[-1]

    def backward(self, y, yhat):
        self.da[-1] = self.lossderiv(y, yhat)
        for l in range(len(self.layersizes) - 1, 0, -1):
            self.dz[l] = self.da[l] * self.derivatives[l - 1](self.z[l])
            self.dW[l] = self.a[l - 1].T @ self.dz[l]
            self.db[l] = np.mean(self.dz[l], axis=0, keepdims=True)
            self.da[l - 1] = self.dz[l] @ self.W[l].T

    def update(self, eta):
        for l in range(1, len(self.layersizes)):
            self.W[l] -= eta * self.dW[l]
            self.b[l] -= eta * self.db[l]


def ref_sigmoid(z):
    return 1 / (1 + np.exp(-np.clip(z, -500, 500)))


def ref_dsigmoid(z):
    s = ref_sigmoid(z)
    return 2 * s * (1 - s)


def ref_relu(z):
    return np.maximum(0, z)


def ref_drelu(z):
    return (z > 0).astype(float)


def ref_cross_entropy(y, yhat):
    return (
        -(y.T @ np.log(np.clip(yhat, EPS, None)) + (1 - y.T) @ np.log(np.clip(1 - yhat, EPS, None)))
        / y.shape[1]
    )


def ref_d_cross_entropy(y, yhat):
    return -y / np.clip(yhat, EPS, None) + (1 - y) / np.clip(1 - yhat, EPS, None)


# ---------------------------------------------------------------- mlpfast's Network conventions
def _sigmoid(z):
    return 0.5 * (1 + np.tanh(0.5 * z))


ACTIVATIONS = {
    "identity": lambda z: z,
    "relu": lambda z: np.maximum(z, 0),
    "leaky_relu": lambda z: np.where(z > 0, z, 0.01 * z),
    "sigmoid": _sigmoid,
    "logistic": _sigmoid,
    "tanh": np.tanh,
    "elu": lambda z: np.where(z > 0, z, np.expm1(np.minimum(z, 0))),
    "softplus": lambda z: np.logaddexp(0, z),
    "exp": np.exp,
}


def softmax(z):
    e = np.exp(z - z.max(axis=1, keepdims=True))
    return e / e.sum(axis=1, keepdims=True)


def network_forward(coefs, intercepts, activations, X):
    a = np.asarray(X, dtype=np.float64)
    for W, b, name in zip(coefs, intercepts, activations, strict=True):
        z = a @ W + b
        a = softmax(z) if name == "softmax" else ACTIVATIONS[name](z)
    return a


def network_loss(coefs, intercepts, activations, loss, X, Y, sample_weight=None):
    """The documented conventions: mse and binary cross-entropy are means over all
    elements, categorical cross-entropy a mean over samples of -sum y log p."""
    p = network_forward(coefs, intercepts, activations, X)
    Y = np.asarray(Y, dtype=np.float64)
    n, m = Y.shape
    w = np.ones(n) if sample_weight is None else np.asarray(sample_weight, dtype=np.float64)
    if loss == "mse":
        per_row = ((p - Y) ** 2).sum(axis=1) / m
    elif loss == "binary_crossentropy":
        with np.errstate(divide="ignore"):
            per_row = -(Y * np.log(p) + (1 - Y) * np.log1p(-p)).sum(axis=1) / m
    elif loss == "categorical_crossentropy":
        per_row = -(Y * np.log(p)).sum(axis=1)
    elif loss == "poisson":
        from scipy.special import xlogy

        per_row = (xlogy(Y, Y) - Y * np.log(p) - Y + p).sum(axis=1)
    else:
        raise ValueError(loss)
    return float((w * per_row).sum() / w.sum())


def numeric_gradient(coefs, intercepts, activations, loss, X, Y, h=1e-6):
    """Central finite differences of network_loss over every parameter (float64)."""
    coefs = [np.array(W, dtype=np.float64) for W in coefs]
    intercepts = [np.array(b, dtype=np.float64) for b in intercepts]
    grads_W, grads_b = [], []
    for arrays, out in ((coefs, grads_W), (intercepts, grads_b)):
        for arr in arrays:
            g = np.zeros_like(arr)
            for idx in np.ndindex(arr.shape):
                old = arr[idx]
                arr[idx] = old + h
                up = network_loss(coefs, intercepts, activations, loss, X, Y)
                arr[idx] = old - h
                down = network_loss(coefs, intercepts, activations, loss, X, Y)
                arr[idx] = old
                g[idx] = (up - down) / (2 * h)
            out.append(g)
    return grads_W, grads_b
