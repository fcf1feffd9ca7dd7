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
without the clip, identity, any constant factor on the
sigmoid derivative) runs as a fused compiled kernel; anything else is called as
you wrote it, on the same numpy path as the reference.  Recognised callables are
assumed to be pure elementwise functions (no side effects, no state); set
``model.fused = False`` to always call yours.  The fast path also steps aside
whenever you replace an entry of ``W``/``b`` (or ``dW``/``db`` before ``update``)
with an array of your own: such steps run on the numpy path, on your arrays.

Like the reference, every call shows new ``z``, ``a``, ``dz``, ``dW``, ``db`` and
``da`` arrays (views into one buffer per call), and ``update`` changes ``W`` and
``b`` in place.  An array you keep (or a view you took of one) is never written
again; arrays nobody refers to any more are reused two calls later instead of
being made anew, which nothing outside the model can observe.  One visible
difference: on the fused path ``z[l]``, ``a[l]``, ``dz[l]`` and ``da[l]`` are
Fortran-ordered (n, n_out) views (the kernels work unit by unit along samples);
their values, shapes and dtypes are the reference's.
"""

from __future__ import annotations

import sys
import weakref
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


_ACTIVATION_CANDIDATES = [
    (ops.RELU, relu),
    (ops.SIGMOID_CLIPPED, sigmoid),
    (ops.SIGMOID, _plain_sigmoid),
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
        if np.all(result == result.flat[0]) and _same(result, np.full_like(_PROBE, result.flat[0])):
            return ops.ONE, float(result.flat[0])
    return None


def recognise_loss_derivative(function):
    result = _call_quietly(function, _PROBE_YT.copy(), _PROBE_YHAT.copy())
    with np.errstate(all="ignore"):
        if _same(result, d_cross_entropy(_PROBE_YT, _PROBE_YHAT)):
            return ops.CROSS_ENTROPY_CLIPPED
    return None


# --------------------------------------------------------------------------- the lists
class _Entries(list):
    """One of the eight per-layer lists (``z``, ``W``, ``b``, ``a``, ``dz``, ``dW``,
    ``db``, ``da``): a plain list that remembers which record of the fused path it
    holds, until anything changes it.

    The fused path may only run while the lists hold its own arrays.  Checking every
    entry's identity costs ~0.3 us a list, six lists a step; comparing one token
    costs nothing.  When the fused path has written a model's own list it sets
    ``record`` to the token of what it wrote (a fresh object each time); every way
    to change a list (item or slice assignment, ``del``, ``append``, ``+=`` ...)
    resets it to None, which only means "compare entry by entry" again.  Copies
    and unpickled lists start with None.
    """

    __slots__ = ("record",)

    def __init__(self, items=()):
        super().__init__(items)
        self.record = None

    def __setitem__(self, index, value):
        self.record = None
        list.__setitem__(self, index, value)

    def __reduce__(self):
        # Any pickle protocol (``__slots__`` alone would refuse protocols 0 and 1).
        return (_Entries, (list(self),))


def _noting_edits(name):
    change = getattr(list, name)

    def method(self, *args, **kwargs):
        self.record = None
        return change(self, *args, **kwargs)

    method.__name__ = method.__qualname__ = name
    method.__doc__ = change.__doc__
    return method


for _name in (
    "__delitem__",
    "__iadd__",
    "__imul__",
    "append",
    "extend",
    "insert",
    "pop",
    "remove",
    "clear",
    "sort",
    "reverse",
):
    setattr(_Entries, _name, _noting_edits(_name))


def _show(entries, own, items, span, token):
    """entries[l] = items[l - span.start] for l in ``span`` (up to L - 1): the fused
    path's arrays.  ``own``, the model's own list, takes them by ``list``'s slice
    assignment (in C) and remembers ``token``; any other list item by item."""
    if entries is own and len(own) == span.stop:
        list.__setitem__(own, span, items)
        own.record = token
        return
    for l, item in enumerate(items, start=span.start):
        entries[l] = item


def _holds(entries, own, token, snapshot) -> bool:
    """Does ``entries`` (one of the model's lists now) hold exactly the arrays of
    ``snapshot``, the record ``token``?  At once when it is ``own`` (the model's own
    list) and unchanged since; otherwise entry by entry."""
    if entries is own and own.record is token:
        return True
    same = len(entries) == len(snapshot) and all(map(is_, entries, snapshot))
    if same and entries is own:
        own.record = token  # checked: it holds that record again
    return same


def _alone() -> int:
    """What ``map(sys.getrefcount, t)`` reports for an object that only tuple ``t``
    refers to (measured, not assumed: interpreters count borrowed references
    differently)."""
    return next(map(sys.getrefcount, (np.empty(0),)))


_ALONE = _alone()


def _unobserved(objects, expected) -> bool:
    """Are the objects in ``objects`` (a list or tuple) referred to exactly as
    ``expected`` counts (as ``map(sys.getrefcount, ...)`` sees them, see _alone),
    with no weak references either?  Then nobody else can see them."""
    return tuple(map(sys.getrefcount, objects)) == expected and not any(
        map(weakref.getweakrefcount, objects)
    )


class _Recycler:
    """The fused path's arrays (buffers and the views shown in ``z``, ``a``, ...),
    two sets used in turn, like the reference's fresh arrays but without making new
    ones each call.

    A set is used again only when nothing but the set itself refers to any of its
    arrays: not the model's lists, not a user's variable (the tutorial's loop keeps
    the previous ``yhat = model.a[-1]``, hence two sets), not a view a user took of
    one of them (it refers to the buffer the views share), not a weak reference.
    Otherwise a new set is made, as the reference would.  So no array a user can
    still see is ever overwritten, and the views need not be made again: making ~25
    views and two buffers cost ~6 us of a 40 us tutorial step (measured).
    """

    __slots__ = ("sets", "turn")

    def __init__(self):
        self.sets = [None, None]
        self.turn = 0

    def get(self, key, make):
        """The arrays for ``key`` (their shapes): the set from two calls ago when
        unobserved, else ``make()`` (a tuple: the buffer, then views of it)."""
        self.turn ^= 1
        old = self.sets[self.turn]
        if old is not None and old[0] == key and _unobserved(old[1], old[2]):
            return old[1]
        arrays = make()
        # Unobserved: each view referred to by the tuple alone, the buffer by the
        # tuple and by each view (its base).
        n_views = len(arrays) - 1
        self.sets[self.turn] = (key, arrays, (_ALONE + n_views,) + (_ALONE,) * n_views)
        return arrays


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
        self.z, self.W, self.b, self.a = (_Entries([None] * L) for _ in range(4))
        self.dz, self.dW, self.db, self.da = (_Entries([None] * L) for _ in range(4))
        # The lists as created, to tell them from lists a user assigns in their place.
        self._z_list, self._W_list, self._b_list, self._a_list = self.z, self.W, self.b, self.a
        self._dz_list, self._dW_list = self.dz, self.dW
        self._db_list, self._da_list = self.db, self.da
        self.fused = True
        self._own_W = self._own_b = None
        self._own_token = None  # the record of W and b (see _Entries)
        self._linked = True  # False after unpickling, until W and b are views again
        self._plan = None  # recognised kinds, worked out on first use
        self._plan_for = None  # the callables the plan was made for
        self._params = None  # flat buffer behind W and b (set by initialize)
        self._state = None  # per-call buffers of the fused path
        self._forward_arrays, self._backward_arrays = _Recycler(), _Recycler()
        self._grads = None  # the fused backward's gradients and the dW/db it showed

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
        # Indexing keys, made once: building the tuple of slices per view doubles
        # the ~70 ns a view costs, and a step makes about twenty.
        geometry = self._geometry
        self._span = slice(1, len(sizes))
        self._unit_keys = tuple((slice(None), slice(r, r + m)) for _, m, _, _, r in geometry)
        self._W_keys = tuple((slice(w, w + k * m), (k, m)) for k, m, w, _, _ in geometry)
        self._b_keys = tuple((slice(b, b + m), (1, m)) for _, m, _, b, _ in geometry)
        self._snapshot_parameters()

    def _snapshot_parameters(self):
        """Record W and b as the views of the flat buffer the kernels update."""
        self._own_W, self._own_b = list(self.W), list(self.b)
        self._own_token = token = object()
        for entries, own in ((self.W, self._W_list), (self.b, self._b_list)):
            if entries is own:
                own.record = token

    def __getstate__(self):
        state = self.__dict__.copy()
        for name in ("_state", "_grads", "_forward_arrays", "_backward_arrays", "_own_token"):
            state.pop(name, None)  # per-call buffers and tokens: made again after unpickling
        return state

    def __setstate__(self, state):
        """Unpickled (or deep-copied), ``W``/``b`` are copies that no longer share the
        flat buffer the kernels update: until :meth:`_relink` can make them views of
        it again, steps run on the numpy path, which updates them in place."""
        self.__dict__.update(state)
        self._state = self._grads = self._own_token = None
        self._forward_arrays, self._backward_arrays = _Recycler(), _Recycler()
        self._linked = self._params is None

    def _relink(self) -> bool:
        """After unpickling: replace the copies of our views in ``W``/``b`` by views of
        the flat buffer (holding their values), when nothing outside the model refers
        to them (a user who kept one would see it stop changing); then the fused
        path runs again.  Until then, False: try again at the next call."""
        if len(self.W) != len(self._own_W) or len(self.b) != len(self._own_b):
            return False
        own = self._own_W[1:] + self._own_b[1:]
        shown = [s is o for s, o in zip(self.W[1:] + self.b[1:], own, strict=True)]
        # Unobserved: referred to by ``own`` (the list made here, hence _ALONE), the
        # model's snapshot list, and its W/b list when still there; no weak refs.
        if not _unobserved(own, tuple(_ALONE + 1 + there for there in shown)):
            return False
        # An array unpickled with protocol 5 does not own its data: a view a user
        # took of it refers to that base, not to the array.
        bases = [a.base for a in own if a.base is not None]
        del own
        if bases and not _unobserved(
            bases, tuple(_ALONE + sum(c is b for c in bases) for b in bases)
        ):
            return False
        del bases
        keys = zip(self._W_keys, self._b_keys, strict=True)
        for l, ((w_slice, w_dims), (b_slice, b_dims)) in enumerate(keys, start=1):
            W = self._params[w_slice].reshape(w_dims)
            b = self._params[b_slice].reshape(b_dims)
            W[...], b[...] = self._own_W[l], self._own_b[l]
            if self.W[l] is self._own_W[l]:
                self.W[l] = W
            if self.b[l] is self._own_b[l]:
                self.b[l] = b
            self._own_W[l], self._own_b[l] = W, b
        # A new record, which the lists take on their next check only if they hold
        # exactly these views (an entry the user replaced stays theirs).
        self._own_token = object()
        self._linked = True
        return True

    def _fused_plan(self):
        """The recognised kinds, or None when a callable is not one we know (worked
        out again when the user assigns other callables)."""
        acts, ders, loss = self.activations, self.derivatives, self.lossderiv
        made_for = self._plan_for
        if (
            made_for is not None
            and acts is made_for[0]
            and ders is made_for[1]
            and loss is made_for[2]
            and type(acts) is tuple
            and type(ders) is tuple
        ):
            return self._plan or None  # the same (immutable) callables as last time
        if (
            self._plan is None
            or made_for is None
            or loss is not made_for[2]
            or len(acts) != len(made_for[3])
            or len(ders) != len(made_for[4])
            or not all(map(is_, acts, made_for[3]))
            or not all(map(is_, ders, made_for[4]))
        ):
            self._plan_for = (acts, ders, loss, tuple(acts), tuple(ders))
            if not len(acts) == len(ders) == len(self.layersizes) - 1:
                self._plan = False  # the numpy path fails as the reference does
                return None
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
        else:  # equal containers, new objects: the fast check above next time
            self._plan_for = (acts, ders, loss, made_for[3], made_for[4])
        return self._plan or None

    def _parameters_are_ours(self) -> bool:
        """Do W and b still hold the views of our flat buffer (not arrays of the user's)?"""
        W, b, token = self.W, self.b, self._own_token
        if token is not None and W is self._W_list and b is self._b_list:
            if W.record is token and b.record is token:
                return True  # unchanged since initialize or the last check
        if not self._linked and (self._own_W is None or not self._relink()):
            return False
        return (
            self._own_W is not None
            and _holds(W, self._W_list, self._own_token, self._own_W)
            and _holds(b, self._b_list, self._own_token, self._own_b)
        )

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
            and len(self.z) == len(self.a) == len(self.layersizes)  # else fail as numpy does
            and self._parameters_are_ours()
        ):
            return self._forward_fused(x, plan)
        self._state = None
        for l in range(1, len(self.layersizes)):  # layer by layer, as REFERENCE.md
            self.z[l] = (self.a[l - 1] @ self.W[l]) + self.b[l]
            self.a[l] = self.activations[l - 1](self.z[l])
        return self.a[-1]

    def _forward_fused(self, x, plan):
        kinds, _ = plan
        X = x if x.dtype == np.float64 else x.astype(np.float64)
        arrays = self._forward_arrays.get(X.shape, lambda: self._new_forward_arrays(*X.shape))
        _, zbuf, abuf, xT, zero = arrays[:5]
        ops.forward(X, self._params, self._table, kinds, zbuf, abuf, xT, zero)
        z, a, span = self.z, self.a, self._span
        L1 = span.stop - 1
        token = object()
        z_views, a_views = arrays[5 : 5 + L1], arrays[5 + L1 :]
        # What the lists should hold from now on: z[0] as it was (the reference
        # leaves it alone), a[0] = x.  Taken from what was written, not read back
        # from the lists, which a user may have made one list (``m.z = m.a``).
        expected_z, expected_a = (z[0], *z_views), (x, *a_views)
        _show(z, self._z_list, z_views, span, token)
        _show(a, self._a_list, a_views, span, token)
        self._state = (x, xT, zbuf, abuf, expected_z, expected_a, zero, token)
        return a[-1]

    def _new_forward_arrays(self, n, d):
        """(buffer, z rows, a rows, x transposed, a row of zeros, the z views, the a
        views): feature-major buffers (see reference_ops); users see (n, n_out) views."""
        width = self._width
        work = np.empty((2 * width + d + 1, n))
        zbuf, abuf, xT = work[:width], work[width : 2 * width], work[2 * width : -1]
        zero = work[-1]  # zeros for the kernels' tiles, never shown to users
        zT, aT = zbuf.T, abuf.T
        keys = self._unit_keys
        return (work, zbuf, abuf, xT, zero, *map(zT.__getitem__, keys), *map(aT.__getitem__, keys))

    def backward(self, y, yhat):
        """Back-propagate dL/dyhat = lossderiv(y, yhat) through the stored z and a."""
        assert y.shape[1] == self.layersizes[-1], "Output size doesn't match network output size"
        assert y.shape == yhat.shape, "Output size doesn't match reference"
        if (
            self._state is not None
            and self.fused
            and self._fused_plan() is not None
            and self._fused_backward_ok(y, yhat)
            and self._backward_fused(y, yhat)
        ):
            return
        self._grads = None
        self.da[-1] = self.lossderiv(y, yhat)
        for l in range(len(self.layersizes) - 1, 0, -1):  # layer by layer, as REFERENCE.md
            self.dz[l] = self.da[l] * self.derivatives[l - 1](self.z[l])
            self.dW[l] = self.a[l - 1].T @ self.dz[l]
            self.db[l] = np.mean(self.dz[l], axis=0, keepdims=True)
            self.da[l - 1] = self.dz[l] @ self.W[l].T

    def _fused_backward_ok(self, y, yhat) -> bool:
        """May this backward run on the fused kernel?  Only with the forward's own
        arrays still in place and targets of the forward's row count (the kernel has
        no bounds checks) in a dtype it reproduces (``_FUSED_TARGET_DTYPES``)."""
        x, xT, _, _, zs, acts, _, token = self._state
        n = xT.shape[1]
        return (
            x.shape == (n, xT.shape[0])  # a[0] may have been reshaped or resized since
            # (the reference writes da[-1]: a longer da list makes that another entry)
            and len(self.da) == len(self.dz) == len(self.dW) == len(self.db) == self._span.stop
            and type(y) is np.ndarray
            and type(yhat) is np.ndarray
            and y.ndim == 2
            and y.shape[0] == n
            and yhat.shape[0] == n
            and yhat.dtype == np.float64
            and y.dtype in _FUSED_TARGET_DTYPES
            and _holds(self.a, self._a_list, token, acts)  # a[0] is still x, a[l] ours
            and _holds(self.z, self._z_list, token, zs)
            and self._parameters_are_ours()
        )

    def _backward_fused(self, y, yhat) -> bool:
        """The fused backward; False (nothing shown) when integer targets are too
        large to reproduce numpy's arithmetic in float64."""
        x, xT, zbuf, abuf, _, _, zero, _ = self._state
        kinds, factors = self._plan
        # x (a[0]) again: the reference reads it now, so changes made in place since
        # the forward count (the kernel transposes it into xT once more).
        X = x if x.dtype == np.float64 else x.astype(np.float64)
        key = (zbuf.shape, xT.shape[0])
        arrays = self._backward_arrays.get(key, lambda: self._new_backward_arrays(*key))
        _, dzbuf, dabuf, da_input, grads = arrays[:5]
        exact = ops.backward(
            X,
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
        span = self._span
        L1 = span.stop - 1
        dz, da, dW, db = self.dz, self.da, self.dW, self.db
        token = object()
        all_layers = slice(0, span.stop)  # da[0] (da_input.T) too
        _show(da, self._da_list, arrays[5 : 6 + L1], all_layers, None)
        _show(dz, self._dz_list, arrays[6 + L1 : 6 + 2 * L1], span, None)
        dW_views, db_views = arrays[6 + 2 * L1 : 6 + 3 * L1], arrays[6 + 3 * L1 :]
        expected_dW, expected_db = (dW[0], *dW_views), (db[0], *db_views)
        _show(dW, self._dW_list, dW_views, span, token)
        _show(db, self._db_list, db_views, span, token)
        self._grads = (grads, expected_dW, expected_db, token)
        return True

    def _new_backward_arrays(self, shape, d):
        """(buffer, dz rows, da rows, da[0] rows, gradients, da[0]'s view, the da,
        dz, dW and db views), in one fresh buffer."""
        width, n = shape
        size = width * n
        work = np.empty(2 * size + d * n + self._params.size)
        dzbuf = work[:size].reshape(width, n)
        dabuf = work[size : 2 * size].reshape(width, n)
        da_input = work[2 * size : 2 * size + d * n].reshape(d, n)
        grads = work[2 * size + d * n :]
        dzT, daT = dzbuf.T, dabuf.T
        keys = self._unit_keys
        return (
            work,
            dzbuf,
            dabuf,
            da_input,
            grads,
            da_input.T,
            *map(daT.__getitem__, keys),
            *map(dzT.__getitem__, keys),
            *(grads[k].reshape(dims) for k, dims in self._W_keys),
            *(grads[k].reshape(dims) for k, dims in self._b_keys),
        )

    def update(self, eta):
        """Gradient step in place: W[k] -= eta * dW[k]; b[k] -= eta * db[k]."""
        grads = self._grads
        if (
            grads is not None
            and self._parameters_are_ours()
            and _holds(self.dW, self._dW_list, grads[3], grads[1])
            and _holds(self.db, self._db_list, grads[3], grads[2])
            and isinstance(eta, (int, float))
            and not isinstance(eta, bool)
        ):
            ops.sgd_update(self._params, grads[0], float(eta))
            return
        for l in range(1, len(self.layersizes)):
            self.W[l] -= eta * self.dW[l]
            self.b[l] -= eta * self.db[l]
