"""Input validation at the public boundary.

The kernels have no bounds checks: a shape that slipped through would corrupt
memory.  Every public entry point therefore runs its inputs through these
functions once, before any kernel sees them, and each error says what to fix.
Arrays are converted to C-contiguous arrays of the network's dtype with at most
one copy (none when they already are).
"""

from __future__ import annotations

import ctypes
import math
import numbers
import operator

import numpy as np

_NUMERIC_KINDS = "biuf"  # bool, signed and unsigned integers, floats


def as_float_array(values, dtype, name: str) -> np.ndarray:
    """``values`` as a C-contiguous array of ``dtype``; reject what is not real numbers."""
    if isinstance(values, np.ndarray) and values.dtype.kind in _NUMERIC_KINDS:
        array = values
    else:
        if hasattr(values, "toarray") and hasattr(values, "nnz"):
            raise TypeError(
                f"{name} is a sparse matrix; Network needs a dense array "
                f"(call .toarray(), or use mlpfast.MLPClassifier/MLPRegressor, which accept "
                f"sparse input)"
            )
        try:
            array = np.asarray(values)
        except (TypeError, ValueError, OverflowError) as exc:
            raise TypeError(f"{name} could not be read as a numeric array: {exc}") from None
        if array.dtype.kind == "c":
            raise TypeError(
                f"{name} has complex dtype {array.dtype}; mlpfast trains on real "
                f"numbers: pass the real part (or magnitudes) explicitly"
            )
        if array.dtype.kind == "O":
            try:
                array = array.astype(np.float64)
            except OverflowError:
                raise ValueError(f"{name} holds numbers too large for a float") from None
            except (TypeError, ValueError):
                raise TypeError(
                    f"{name} holds non-numeric objects; pass an array of numbers"
                ) from None
        elif array.dtype.kind not in _NUMERIC_KINDS:
            raise TypeError(
                f"{name} has dtype {array.dtype}; pass an array of numbers (ints, floats or bools)"
            )
    source = array
    try:
        # order="C" keeps 0-d input 0-d (ascontiguousarray would make it 1-D).
        array = np.asarray(array, dtype=dtype, order="C")
    except OverflowError:
        raise ValueError(f"{name} holds numbers too large for {np.dtype(dtype)}") from None
    if array is not source and array.size and not np.isfinite(array.sum(dtype=np.float64)):
        # Non-finite after the conversion: say so if the input itself was finite.
        with np.errstate(over="ignore", invalid="ignore"):
            finite_before = bool(np.isfinite(source.astype(np.float64, copy=False)).all())
        if finite_before and not np.isfinite(array).all():
            raise ValueError(
                f"{name} has values beyond the range of {np.dtype(dtype)} "
                f"(largest magnitude {np.abs(source).max():g}); rescale it, or "
                f"use a float64 network"
            )
    return array


def writable_alias(array: np.ndarray) -> np.ndarray:
    """``array`` itself, or -- when it is read-only -- a writeable view of the same memory.

    Numba compiles a separate version of every kernel for read-only arrays (about
    15 s, once per kernel-source version), and copying a read-only X (a memmap
    opened with mode='r', a joblib memmap) would defeat fitting from disk.  The
    kernels never write X, so they get an alias of its memory typed as writeable.
    The caller must keep ``array`` alive while the alias is in use.
    """
    if array.flags.writeable or array.size == 0:
        return array
    raw = (ctypes.c_char * array.nbytes).from_address(array.ctypes.data)
    return np.frombuffer(raw, dtype=array.dtype).reshape(array.shape)


def check_finite(array: np.ndarray, name: str) -> None:
    # A sum is finite exactly when no element is NaN or inf (or the sum overflowed,
    # which the exact check below sorts out); it allocates nothing, unlike isfinite.
    if array.size and not math.isfinite(array.sum(dtype=np.float64)):
        bad = ~np.isfinite(array)
        if bad.any():
            first = tuple(int(i) for i in np.argwhere(bad)[0])
            raise ValueError(
                f"{name} contains NaN or infinity ({int(bad.sum())} values, the first at "
                f"index {first}); remove or impute them before training"
            )


def check_X(X, n_features: int, dtype, name: str = "X") -> np.ndarray:
    """A 2-D float array of ``n_features`` columns, finite, non-empty."""
    X = as_float_array(X, dtype, name)
    if X.ndim == 1:
        hint = (
            "reshape(-1, 1) if it is one feature per sample"
            if n_features == 1
            else "reshape(1, -1) if it is a single sample"
        )
        raise ValueError(
            f"{name} must be 2-D (samples x features), got a 1-D array of "
            f"shape {X.shape}; use {name}.{hint}"
        )
    if X.ndim != 2:
        raise ValueError(
            f"{name} must be 2-D (samples x features), got {X.ndim} dimensions (shape {X.shape})"
        )
    if X.shape[0] == 0:
        raise ValueError(f"{name} has no samples (shape {X.shape}); pass at least one row")
    if X.shape[1] != n_features:
        raise ValueError(
            f"{name} has {X.shape[1]} features but the network expects "
            f"{n_features} (layer_sizes[0])"
        )
    check_finite(X, name)
    return X


def check_targets(y, loss: str, n_outputs: int, n_samples: int, dtype) -> np.ndarray:
    """Targets as a (n_samples, n_outputs) float array suited to ``loss``.

    Categorical cross-entropy also takes integer class labels (converted to one-hot);
    a 1-D y is accepted for a single-output network.
    """
    raw = np.asarray(y) if not isinstance(y, np.ndarray) else y
    if raw.ndim == 1 and loss == "categorical_crossentropy" and n_outputs > 1:
        labels = as_float_array(raw, np.float64, "y")
        check_finite(labels, "y")
        if labels.shape[0] != n_samples:
            raise ValueError(f"y has {labels.shape[0]} labels but X has {n_samples} samples")
        if np.any(labels != np.round(labels)) or labels.min() < 0 or labels.max() >= n_outputs:
            raise ValueError(
                f"integer class labels for categorical_crossentropy must be in "
                f"0..{n_outputs - 1} (the network has {n_outputs} outputs); got values from "
                f"{labels.min():g} to {labels.max():g}"
            )
        onehot = np.zeros((n_samples, n_outputs), dtype=dtype)
        onehot[np.arange(n_samples), labels.astype(np.int64)] = 1
        return onehot
    Y = as_float_array(raw, dtype, "y")
    if Y.ndim == 1:
        if n_outputs != 1:
            raise ValueError(
                f"y is 1-D but the network has {n_outputs} outputs; pass y of shape "
                f"(n_samples, {n_outputs})"
                + (" or integer class labels" if loss == "categorical_crossentropy" else "")
            )
        Y = Y.reshape(-1, 1)
    if Y.ndim == 0:
        raise ValueError(
            "y must be 1-D or 2-D, got a scalar; pass a sequence even for one sample, e.g. [y]"
        )
    if Y.ndim != 2:
        raise ValueError(f"y must be 1-D or 2-D, got shape {Y.shape}")
    if Y.shape[0] != n_samples:
        raise ValueError(f"y has {Y.shape[0]} samples but X has {n_samples}; they must match")
    if Y.shape[1] != n_outputs:
        raise ValueError(f"y has {Y.shape[1]} columns but the network has {n_outputs} outputs")
    check_finite(Y, "y")
    if loss in ("binary_crossentropy", "categorical_crossentropy", "log_loss") and (
        Y.min() < 0 or Y.max() > 1
    ):
        raise ValueError(
            f"{loss} needs targets in [0, 1] (labels or probabilities); y has "
            f"values from {Y.min():g} to {Y.max():g}"
        )
    if loss == "poisson" and Y.min() < 0:
        raise ValueError("the poisson loss needs non-negative targets; y has negative values")
    if not Y.flags.writeable:
        Y = Y.copy()  # small; keeps the kernels on their writeable-array version
    return Y


def check_sample_weight(sample_weight, n_samples: int, dtype) -> np.ndarray | None:
    if sample_weight is None:
        return None
    w = as_float_array(sample_weight, dtype, "sample_weight")
    if w.ndim == 0:
        w = np.full(n_samples, w, dtype=dtype)
    if w.shape != (n_samples,):
        raise ValueError(f"sample_weight must have shape ({n_samples},), got {w.shape}")
    check_finite(w, "sample_weight")
    if w.min() < 0:
        raise ValueError("sample_weight must be non-negative")
    total = float(w.sum(dtype=np.float64))
    if total <= 0:
        raise ValueError("sample_weight sums to zero; at least one sample needs weight")
    if not np.isfinite(total):
        raise ValueError(
            f"sample_weight sums to {total:g}, too large to average over; "
            f"rescale the weights (only their ratios matter)"
        )
    if not w.flags.writeable:
        w = w.copy()  # small; keeps the kernels on their writeable-array version
    return w


def check_positive_int(value, name: str, minimum: int = 1, maximum: int | None = None) -> int:
    if isinstance(value, (bool, np.bool_)):
        raise TypeError(f"{name} must be an int, got a bool")
    try:
        value = operator.index(value)
    except TypeError:
        raise TypeError(f"{name} must be an int, got {type(value).__name__}") from None
    if value < minimum:
        raise ValueError(f"{name} must be >= {minimum}, got {value}")
    if maximum is not None and value > maximum:
        raise ValueError(f"{name} must be <= {maximum}, got {value}")
    return value


MAX_SEED = 2**63 - 1


def check_seed(seed) -> int:
    return check_positive_int(seed, "seed", minimum=0, maximum=MAX_SEED)


def check_positive_float(value, name: str, allow_zero: bool = False) -> float:
    # (a fit checks seven of these: the ABC check and np.isfinite on a scalar cost
    # ~1 us each, so a plain float skips the one and all take math.isfinite)
    if type(value) is not float:
        if isinstance(value, (bool, np.bool_)) or not isinstance(value, numbers.Real):
            raise TypeError(f"{name} must be a real number, got {type(value).__name__}")
        value = float(value)
    if not math.isfinite(value) or value < 0 or (value == 0 and not allow_zero):
        bound = ">= 0" if allow_zero else "> 0"
        raise ValueError(f"{name} must be a finite number {bound}, got {value}")
    return value


def check_choice(value, name: str, choices) -> str:
    if not isinstance(value, str):
        raise TypeError(
            f"{name} must be a string, one of {sorted(choices)}; got {type(value).__name__}"
        )
    if value not in choices:
        raise ValueError(f"unknown {name} {value!r}; choose one of {sorted(choices)}")
    return value
