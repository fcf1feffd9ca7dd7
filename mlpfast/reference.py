"""A drop-in replacement for the tutorial's numpy trainer (REFERENCE.md).

Change one import and a script written for the reference runs unchanged, prints
the same numbers and trains faster::

    from mlpfast.reference import mlp, relu, drelu, sigmoid, dsigmoid, \\
        cross_entropy, d_cross_entropy

Everything the reference exposes is here: the lower-case ``mlp`` class with its
constructor, asserts, the eight attribute lists ``z, W, b, a, dz, dW, db, da``,
``initialize``/``forward``/``backward``/``update``, and the six functions, with
their quirks (``dsigmoid``'s factor 2, ``dW`` a sum but ``db`` a mean over the
batch, ``cross_entropy`` returning a 1x1 *sum*).  These are the reference's
behaviours, not mlpfast's: :class:`mlpfast.Network` uses correct derivatives and
consistent averaging.

How it is faster while honouring *your* callables: on the first ``forward``, each
activation, derivative and loss derivative you passed is probed on a fixed set of
inputs (large, small, zero, both signs, beyond the ±500 clip).  A callable whose
outputs match one of the known functions bit for bit (the six above, the sigmoid
without the clip, tanh and its derivative, identity, any constant factor on the
sigmoid derivative) runs as a fused compiled kernel; anything else is called as
you wrote it, on the same numpy path as the reference.  Recognised callables are
assumed to be pure elementwise functions (no side effects, no state); set
``model.fused = False`` to always call yours.  The fast path also steps aside
whenever you replace an entry of ``W``/``b`` (or ``dW``/``db`` before ``update``)
with an array of your own: such steps run on the numpy path, on your arrays.

Like the reference, every call returns fresh ``z``, ``a``, ``dz``, ``dW``, ``db``
and ``da`` arrays (views into one fresh buffer per call), and ``update`` changes
``W`` and ``b`` in place.  One visible difference: on the fused path ``z[l]``,
``a[l]``, ``dz[l]`` and ``da[l]`` are Fortran-ordered (n, n_out) views (the kernels
work unit by unit along samples); their values, shapes and dtypes are the
reference's.
"""

from __future__ import annotations

from operator import is_

import numpy as np

from ._kernels import reference_ops as ops

__all__ = ["mlp", "sigmoid", "dsigmoid", "relu", "drelu", "cross_entropy", "d_cross_entropy"]

_EPS = np.finfo(float).eps


# --------------------------------------------------------------------------- the six functions
def sigmoid(z):
    """Logistic function, with the input clipped to [-500, 500] against overflow."""
    return 1 / (1 + np.exp(-np.clip(z, -500, 500)))


def dsigmoid(z):
    """The reference's sigmoid derivative: ``2 * s * (1 - s)`` (the factor 2 is its
    known bug, kept so that results match; the true derivative is ``s * (1 - s)``)."""
    s = sigmoid(z)
    return 2 * s * (1 - s)


def relu(z):
    """max(0, z)."""
    return np.maximum(0, z)


def drelu(z):
    """1.0 where z > 0, else 0.0 (the derivative at 0 is taken as 0)."""
    return (z > 0).astype(float)


def cross_entropy(y, yhat):
    """Binary cross-entropy as the reference computes it: for y of shape (n, 1) a
    1x1 array holding the *sum* over samples (its docstring said "average")."""
    return -(y.T @ np.log(yhat.clip(_EPS)) + (1 - y.T) @ np.log((1 - yhat).clip(_EPS))) / y.shape[1]


def d_cross_entropy(y, yhat):
    """Derivative of the binary cross-entropy with respect to yhat, element-wise."""
    return -y / yhat.clip(_EPS) + (1 - y) / (1 - yhat).clip(_EPS)


# Target dtypes the fused backward reads directly: float64, and int64 labels (the
# kernel checks they are small enough to behave as float64 in numpy's arithmetic,
# and hands the step back to the numpy path otherwise).  Other dtypes follow
# numpy's own rules (bool negation errors, uint8 wraparound, float32 rounding).
_FUSED_TARGET_DTYPES = (np.dtype(np.float64), np.dtype(np.int64))


# --------------------------------------------------------------------------- recognition
def _probe_input() -> np.ndarray:
    values = [
        -800.0,
        -600.0,
        -500.5,
        -500.0,
        -499.5,
        -60.0,
        -20.0,
        -3.7,
        -1.0,
        -0.5,
        -1e-3,
        -1e-300,
        0.0,
        1e-300,
        1e-3,
        0.25,
        0.5,
        1.0,
        2.5,
        3.7,
        20.0,
        60.0,
        499.5,
        500.0,
        500.5,
        600.0,
        800.0,
    ]
    return np.array(values + [v * 0.37 for v in values], dtype=float).reshape(-1, 2)


_PROBE = _probe_input()
_PROBE_Y = (np.arange(_PROBE.size).reshape(_PROBE.shape) % 2).astype(float)
_PROBE_YHAT = np.concatenate(
    [
        np.array([0.0, 1e-300, 1e-17, 1e-9, 0.1, 0.3, 0.5, 0.7, 0.9, 1 - 1e-9, 1 - 1e-17, 1.0]),
        np.linspace(0.01, 0.99, 42),
    ]
).reshape(-1, 2)
_PROBE_YT = (np.arange(_PROBE_YHAT.size).reshape(_PROBE_YHAT.shape) % 3 == 0).astype(float)


def _plain_sigmoid(z):
    return 1 / (1 + np.exp(-z))


def _tanh_derivative(z):
    t = np.tanh(z)
    return 1 - t * t


_ACTIVATION_CANDIDATES = [
    (ops.RELU, relu),
    (ops.SIGMOID_CLIPPED, sigmoid),
    (ops.SIGMOID, _plain_sigmoid),
    (ops.TANH, np.tanh),
    (ops.IDENTITY, lambda z: z * 1.0),
]


def _same(result, expected) -> bool:
    return (
        isinstance(result, np.ndarray)
        and result.shape == expected.shape
        and result.dtype == np.float64
        and np.array_equal(result, expected, equal_nan=True)
    )


def _call_quietly(function, *args):
    try:
        with np.errstate(all="ignore"):
            return function(*args)
    except Exception:  # a callable that rejects the probe is simply not recognised
        return None


def recognise_activation(function):
    """The ``reference_ops`` kind a callable computes, or None."""
    result = _call_quietly(function, _PROBE.copy())
    for kind, candidate in _ACTIVATION_CANDIDATES:
        with np.errstate(all="ignore"):
            if _same(result, candidate(_PROBE)):
                return kind
    return None


def recognise_derivative(function):
    """(kind, factor) for ``factor * f'(z)`` of a known f, or None."""
    result = _call_quietly(function, _PROBE.copy())
    if not isinstance(result, np.ndarray) or result.shape != _PROBE.shape:
        return None
    with np.errstate(all="ignore"):
        if _same(result, drelu(_PROBE)):
            return ops.DRELU, 1.0
        bases = [(ops.DSIGMOID_CLIPPED, sigmoid(_PROBE)), (ops.DSIGMOID, _plain_sigmoid(_PROBE))]
        at_zero = result[_PROBE == 0.0]
        for kind, s in bases:
            factor = float(at_zero[0]) / 0.25 if at_zero.size else 0.0
            if factor != 0 and _same(result, factor * s * (1 - s)):
                return kind, factor
        t = np.tanh(_PROBE)
        factor = float(at_zero[0]) if at_zero.size else 0.0
        if factor != 0 and _same(result, factor * (1 - t * t)):
            return ops.DTANH, factor
        if np.all(result == result.flat[0]) and _same(result, np.full_like(_PROBE, result.flat[0])):
            return ops.ONE, float(result.flat[0])
    return None


def recognise_loss_derivative(function):
    result = _call_quietly(function, _PROBE_YT.copy(), _PROBE_YHAT.copy())
    with np.errstate(all="ignore"):
        if _same(result, d_cross_entropy(_PROBE_YT, _PROBE_YHAT)):
            return ops.CROSS_ENTROPY_CLIPPED
    return None


# --------------------------------------------------------------------------- the class
class mlp:  # noqa: N801  (the reference's name)
    """Multilayer perceptron, the reference trainer's class (see the module doc).

    Parameters
    ----------
    layersizes : sequence of int
        e.g. ``[2, 4, 3, 1]``.
    activations, derivatives : sequences of callables
        One per layer after the input.
    lossderiv : callable
        ``lossderiv(y, yhat)`` returns dL/dyhat.
    """

    def __init__(self, layersizes, activations, derivatives, lossderiv):
        self.layersizes = tuple(layersizes)
        self.activations = tuple(activations)
        self.derivatives = tuple(derivatives)
        self.lossderiv = lossderiv
        assert len(self.layersizes) - 1 == len(self.activations), (
            "number of layers and the number of activation functions does not match"
        )
        assert len(self.activations) == len(self.derivatives), (
            "number of activation functions and number of derivatives does not match"
        )
        assert all(isinstance(n, int) and n >= 1 for n in self.layersizes), (
            "Only positive integral number of perceptons is allowed in each layer"
        )
        L = len(self.layersizes)
        self.z, self.W, self.b, self.a = [None] * L, [None] * L, [None] * L, [None] * L
        self.dz, self.dW, self.db, self.da = [None] * L, [None] * L, [None] * L, [None] * L
        self.fused = True
        self._own_W = self._own_b = None
        self._plan = None  # recognised kinds, worked out on first use
        self._params = None  # flat buffer behind W and b (set by initialize)
        self._state = None  # per-call buffers of the fused path

    # ---------------------------------------------------------------- set-up
    def initialize(self, seed=42):
        """Draw W[k] ~ N(0, 0.1^2) then b[k] ~ N(0, 0.1^2), layer by layer, from
        ``np.random.seed(seed)`` (the reference's draw order, so the same numbers)."""
        np.random.seed(seed)
        sizes = self.layersizes
        pairs = list(zip(sizes[:-1], sizes[1:], strict=True))
        n_params = sum(n_in * n_out + n_out for n_in, n_out in pairs)
        params = np.empty(n_params)
        table = np.zeros((len(sizes) - 1, 5), dtype=np.int64)
        offset = row = 0
        for l, (n_in, n_out) in enumerate(zip(sizes[:-1], sizes[1:], strict=True), start=1):
            W = params[offset : offset + n_in * n_out].reshape(n_in, n_out)
            W[...] = np.random.randn(n_in, n_out) * 0.1
            table[l - 1] = (n_in, n_out, offset, offset + n_in * n_out, row)
            offset += n_in * n_out
            b = params[offset : offset + n_out].reshape(1, n_out)
            b[...] = np.random.randn(1, n_out) * 0.1
            offset += n_out
            row += n_out
            self.W[l], self.b[l] = W, b
        self._params = params
        self._table = table
        # The same geometry as plain ints: iterating a numpy table costs ~1 us a row.
        self._geometry = tuple(tuple(int(v) for v in row) for row in table)
        self._width = int(table[-1, ops.T_ROW] + table[-1, ops.T_OUT])
        self._own_W, self._own_b = list(self.W), list(self.b)

    def _fused_plan(self):
        """The recognised kinds, or None when a callable is not one we know."""
        if self._plan is None:
            acts = [recognise_activation(f) for f in self.activations]
            derivs = [recognise_derivative(f) for f in self.derivatives]
            loss = recognise_loss_derivative(self.lossderiv)
            if None in acts or None in derivs or loss is None:
                self._plan = False
            else:
                kinds = np.array(
                    [(a, d[0]) for a, d in zip(acts, derivs, strict=True)], dtype=np.int64
                )
                factors = np.array([d[1] for d in derivs], dtype=np.float64)
                self._plan = (kinds, factors)
        return self._plan or None

    def _parameters_are_ours(self) -> bool:
        """Do W and b still hold the views of our flat buffer (not arrays of the user's)?"""
        own = self._own_W
        return own is not None and all(map(is_, self.W, own)) and all(map(is_, self.b, self._own_b))

    @staticmethod
    def _fusable_input(x) -> bool:
        return type(x) is np.ndarray and x.ndim == 2 and x.dtype.kind in "biuf"

    # ---------------------------------------------------------------- the four methods
    def forward(self, x):
        """Push ``x`` (samples as rows) through the network; return ``a[-1]``."""
        self.a[0] = x
        plan = self._fused_plan() if self.fused else None
        if (
            plan is not None
            and self._fusable_input(x)
            and x.shape[1] == self.layersizes[0]
            and x.shape[0] > 0
            and self._parameters_are_ours()
        ):
            return self._forward_fused(x, plan)
        self._state = None
        for l, func in enumerate(self.activations, start=1):
            self.z[l] = (self.a[l - 1] @ self.W[l]) + self.b[l]
            self.a[l] = func(self.z[l])
        return self.a[-1]

    def _forward_fused(self, x, plan):
        kinds, _ = plan
        X = x if x.dtype == np.float64 else x.astype(np.float64)
        n = X.shape[0]
        width = self._width
        # Feature-major buffers (see reference_ops); users get (n, n_out) views.
        work = np.empty((2 * width + X.shape[1] + 1, n))
        zbuf, abuf, xT = work[:width], work[width : 2 * width], work[2 * width : -1]
        zero = work[-1]  # a row of zeros for the kernels' tiles (never shown to users)
        ops.forward(X, self._params, self._table, kinds, zbuf, abuf, xT, zero)
        z, a = self.z, self.a
        zT, aT = zbuf.T, abuf.T
        for l, (_, n_out, _, _, row) in enumerate(self._geometry, start=1):
            z[l] = zT[:, row : row + n_out]
            a[l] = aT[:, row : row + n_out]
        self._state = (x, xT, zbuf, abuf, tuple(z), tuple(a), zero)
        return a[-1]

    def backward(self, y, yhat):
        """Back-propagate dL/dyhat = lossderiv(y, yhat) through the stored z and a."""
        assert y.shape[1] == self.layersizes[-1], "Output size doesn't match network output size"
        assert y.shape == yhat.shape, "Output size doesn't match reference"
        if (
            self._state is not None
            and self._fused_backward_ok(y, yhat)
            and self._backward_fused(y, yhat)
        ):
            return
        self._grads = None
        self.da[-1] = self.lossderiv(y, yhat)
        for l, func in reversed(list(enumerate(self.derivatives, start=1))):
            self.dz[l] = self.da[l] * func(self.z[l])
            self.dW[l] = self.a[l - 1].T @ self.dz[l]
            self.db[l] = np.mean(self.dz[l], axis=0, keepdims=True)
            self.da[l - 1] = self.dz[l] @ self.W[l].T

    def _fused_backward_ok(self, y, yhat) -> bool:
        """May this backward run on the fused kernel?  Only with the forward's own
        arrays still in place and targets of the forward's row count (the kernel has
        no bounds checks) in a dtype it reproduces (``_FUSED_TARGET_DTYPES``)."""
        _, xT, _, _, zs, acts, _ = self._state
        n = xT.shape[1]
        return (
            type(y) is np.ndarray
            and type(yhat) is np.ndarray
            and y.ndim == 2
            and y.shape[0] == n
            and yhat.shape[0] == n
            and yhat.dtype == np.float64
            and y.dtype in _FUSED_TARGET_DTYPES
            and all(map(is_, self.a, acts))  # a[0] is still x, a[l] our outputs
            and all(map(is_, self.z, zs))
            and self._parameters_are_ours()
        )

    def _backward_fused(self, y, yhat) -> bool:
        """The fused backward; False (nothing changed) when integer targets are too
        large to reproduce numpy's arithmetic in float64."""
        _, xT, zbuf, abuf, _, _, zero = self._state
        kinds, factors = self._plan
        # One fresh allocation for dz, da (feature-major), da[0] and the gradients.
        width, n = zbuf.shape
        work = np.empty(2 * zbuf.size + xT.size + self._params.size)
        dzbuf = work[: zbuf.size].reshape(width, n)
        dabuf = work[zbuf.size : 2 * zbuf.size].reshape(width, n)
        da_input = work[2 * zbuf.size : 2 * zbuf.size + xT.size].reshape(xT.shape)
        grads = work[2 * zbuf.size + xT.size :]
        exact = ops.backward(
            y,
            yhat,
            self._params,
            self._table,
            kinds,
            factors,
            zbuf,
            abuf,
            xT,
            dzbuf,
            dabuf,
            grads,
            da_input,
            zero,
        )
        if not exact:
            return False
        self.da[0] = da_input.T
        dz, da, dW, db = self.dz, self.da, self.dW, self.db
        dzT, daT = dzbuf.T, dabuf.T
        for l, (n_in, n_out, w0, b0, row) in enumerate(self._geometry, start=1):
            dz[l] = dzT[:, row : row + n_out]
            da[l] = daT[:, row : row + n_out]
            dW[l] = grads[w0 : w0 + n_in * n_out].reshape(n_in, n_out)
            db[l] = grads[b0 : b0 + n_out].reshape(1, n_out)
        self._grads = (grads, dW[1:], db[1:])
        return True

    def update(self, eta):
        """Gradient step in place: W[k] -= eta * dW[k]; b[k] -= eta * db[k]."""
        grads = getattr(self, "_grads", None)
        if (
            grads is not None
            and self._parameters_are_ours()
            and all(
                self.dW[l] is grads[1][l - 1] and self.db[l] is grads[2][l - 1]
                for l in range(1, len(self.layersizes))
            )
            and isinstance(eta, (int, float))
            and not isinstance(eta, bool)
        ):
            ops.sgd_update(self._params, grads[0], float(eta))
            return
        for l in range(1, len(self.W)):
            self.W[l] -= eta * self.dW[l]
            self.b[l] -= eta * self.db[l]
