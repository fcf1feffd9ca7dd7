"""scikit-learn estimators: drop-ins for ``sklearn.neural_network``'s MLPs.

Change ``from sklearn.neural_network import MLPClassifier`` to
``from mlpfast import MLPClassifier`` and the rest of a script stays as it is: the
same parameters with the same defaults, the same fitted attributes and methods.
Training runs in mlpfast's compiled kernels (:class:`mlpfast.Network`).

Beyond scikit-learn: ``activation`` also takes ``leaky_relu``, ``elu`` and
``softplus``; ``n_threads`` sets the threads training and prediction use;
``verbose >= 2`` shows a progress bar instead of one line per epoch; early stopping
also records ``validation_loss_curve_``; the classifier takes ``class_weight``.

Sparse input is accepted and expanded to a dense array (the kernels are dense), so
it costs ``n_samples * n_features`` floats of memory while fitting or predicting.
"""

from __future__ import annotations

import numpy as np
from sklearn.base import ClassifierMixin, RegressorMixin
from sklearn.metrics import accuracy_score, r2_score
from sklearn.preprocessing import LabelBinarizer
from sklearn.utils._param_validation import StrOptions
from sklearn.utils.class_weight import compute_sample_weight
from sklearn.utils.metaestimators import available_if
from sklearn.utils.multiclass import check_classification_targets, type_of_target, unique_labels
from sklearn.utils.validation import column_or_1d, validate_data

from ._estimator_base import STOCHASTIC_SOLVERS, BaseMLP

__all__ = ["MLPClassifier", "MLPRegressor"]

_PARAMETERS_DOC = """
    hidden_layer_sizes : array-like of int, or int, default=(100,)
        Width of each hidden layer.
    activation : {'relu', 'identity', 'logistic', 'tanh', 'leaky_relu', 'elu', \
'softplus'}, default='relu'
        Hidden-layer activation.  ``leaky_relu`` (slope 0.01 below zero), ``elu`` and
        ``softplus`` are mlpfast additions.
    solver : {'adam', 'sgd', 'lbfgs'}, default='adam'
        ``adam`` and ``sgd`` train on minibatches; ``lbfgs`` minimises the full-batch
        loss with ``scipy.optimize.minimize(method='L-BFGS-B')``.
    alpha : float, default=1e-4
        L2 penalty on the weights (not the biases): ``alpha * ||W||^2 / (2 * w)`` with
        ``w`` the summed sample weight of the batch.
    batch_size : int or 'auto', default='auto'
        Minibatch size for ``sgd``/``adam``; ``'auto'`` is ``min(200, n_samples)``.
    learning_rate : {'constant', 'invscaling', 'adaptive'}, default='constant'
        ``sgd`` only.  ``invscaling`` divides ``learning_rate_init`` by
        ``(samples seen + 1) ** power_t`` after each epoch; ``adaptive`` divides the
        rate by 5 whenever ``n_iter_no_change`` epochs pass without improvement, and
        stops once it falls to 1e-6.
    learning_rate_init : float, default=1e-3
        Step size of ``sgd`` and ``adam``.
    power_t : float, default=0.5
        Exponent of the ``invscaling`` schedule.
    max_iter : int, default=200
        Epochs for ``sgd``/``adam``; iterations for ``lbfgs``.
    shuffle : bool, default=True
        Reshuffle the training rows every epoch.
    random_state : int, RandomState instance or None, default=None
        Seeds the initial weights, the validation split and the shuffles.
    tol : float, default=1e-4
        An epoch improves when the training loss falls (or, with early stopping, the
        validation score rises) by at least ``tol``; for ``lbfgs``, the gradient
        tolerance.
    verbose : bool or int, default=False
        ``True``/1: one line per epoch (``Iteration N, loss = ...``); 2 or more: a
        progress bar (tqdm) instead.
    warm_start : bool, default=False
        Continue from the current weights on the next :meth:`fit`.
    momentum : float, default=0.9
        ``sgd`` only; in ``[0, 1)``.
    nesterovs_momentum : bool, default=True
        ``sgd`` with ``momentum > 0``: Nesterov's variant.
    early_stopping : bool, default=False
        Hold out ``validation_fraction`` of the training data (stratified for single-
        output classification), stop once its score (accuracy or R^2) has not improved
        by ``tol`` for ``n_iter_no_change`` epochs, and keep the best epoch's weights.
        ``sgd``/``adam`` only.
    validation_fraction : float, default=0.1
        Share of the training data held out for early stopping.
    beta_1, beta_2 : float, default=0.9, 0.999
        ``adam``'s decay rates for the first and second moment estimates.
    epsilon : float, default=1e-8
        ``adam``'s denominator offset.
    n_iter_no_change : int or np.inf, default=10
        Epochs without improvement (see ``tol``) before stopping.
    max_fun : int, default=15000
        ``lbfgs`` only: the most loss evaluations.
"""

_THREADS_DOC = """
    n_threads : int or None, default=None
        Threads training and prediction use (mlpfast addition); None or -1 for all
        of ``NUMBA_NUM_THREADS``.  BLAS runs single-threaded meanwhile.
"""

_ATTRIBUTES_DOC = """
    loss_ : float
        Training loss after the last epoch (including the L2 term).
    best_loss_ : float or None
        Lowest training loss seen; None with early stopping or ``lbfgs``.
    loss_curve_ : list of float
        Training loss of every epoch (``lbfgs``: of every iteration).
    validation_scores_ : list of float or None
        Validation score of every epoch with early stopping, else None.
    best_validation_score_ : float or None
        Best validation score with early stopping, else None.
    validation_loss_curve_ : list of float or None
        With early stopping, the validation loss of every epoch (the data loss, without
        the L2 term); else None.  mlpfast addition.
    t_ : int
        Training samples seen by the stochastic solvers.
    coefs_ : list of ndarray
        Weight matrix of each layer, ``(n_in, n_out)``.  These are views into the
        network's parameter buffer: editing them in place edits the model, and a
        replaced entry is copied into the model before the next prediction or fit.
    intercepts_ : list of ndarray
        Bias vector of each layer.
    n_features_in_ : int
    feature_names_in_ : ndarray of str
        Defined when ``X`` had string column names.
    n_iter_ : int
        Epochs (``lbfgs``: iterations) run by the last call to fit or partial_fit.
    n_layers_ : int
        Layers including input and output.
    n_outputs_ : int
    out_activation_ : str
"""


def _stochastic_solver(estimator) -> bool:
    if estimator.solver not in STOCHASTIC_SOLVERS:
        raise AttributeError(
            f"partial_fit is only available for the stochastic solvers "
            f"{STOCHASTIC_SOLVERS}; solver={estimator.solver!r}"
        )
    return True


class MLPClassifier(ClassifierMixin, BaseMLP):
    __doc__ = f"""Multilayer perceptron classifier trained by mlpfast's compiled kernels.

    A drop-in for :class:`sklearn.neural_network.MLPClassifier`.  Multi-class targets
    get a softmax output and cross-entropy; binary targets and multi-label indicator
    matrices get sigmoid outputs and the log-loss summed over outputs.  Sparse ``X`` is
    accepted and expanded to dense.

    Parameters
    ----------{_PARAMETERS_DOC}    class_weight : dict, 'balanced' or None, default=None
        Weights per class, multiplied into ``sample_weight`` (mlpfast addition).
        ``'balanced'`` uses ``n_samples / (n_classes * count(class))``; it is refused
        by :meth:`partial_fit`, which sees one batch at a time.{_THREADS_DOC}
    Attributes
    ----------
    classes_ : ndarray
        Class labels (for multi-label targets: the column indices).{_ATTRIBUTES_DOC}
    Examples
    --------
    >>> from sklearn.datasets import load_iris
    >>> from mlpfast import MLPClassifier
    >>> X, y = load_iris(return_X_y=True)
    >>> clf = MLPClassifier(solver="lbfgs", random_state=0, max_iter=500).fit(X, y)
    >>> clf.predict_proba(X[:2]).shape
    (2, 3)
    """

    _parameter_constraints: dict = {
        **BaseMLP._parameter_constraints,
        "class_weight": [dict, StrOptions({"balanced"}), None],
    }

    def __init__(
        self,
        hidden_layer_sizes=(100,),
        activation="relu",
        *,
        solver="adam",
        alpha=0.0001,
        batch_size="auto",
        learning_rate="constant",
        learning_rate_init=0.001,
        power_t=0.5,
        max_iter=200,
        shuffle=True,
        random_state=None,
        tol=1e-4,
        verbose=False,
        warm_start=False,
        momentum=0.9,
        nesterovs_momentum=True,
        early_stopping=False,
        validation_fraction=0.1,
        beta_1=0.9,
        beta_2=0.999,
        epsilon=1e-8,
        n_iter_no_change=10,
        max_fun=15000,
        class_weight=None,
        n_threads=None,
    ):
        super().__init__(
            hidden_layer_sizes=hidden_layer_sizes,
            activation=activation,
            solver=solver,
            alpha=alpha,
            batch_size=batch_size,
            learning_rate=learning_rate,
            learning_rate_init=learning_rate_init,
            power_t=power_t,
            max_iter=max_iter,
            shuffle=shuffle,
            random_state=random_state,
            tol=tol,
            verbose=verbose,
            warm_start=warm_start,
            momentum=momentum,
            nesterovs_momentum=nesterovs_momentum,
            early_stopping=early_stopping,
            validation_fraction=validation_fraction,
            beta_1=beta_1,
            beta_2=beta_2,
            epsilon=epsilon,
            n_iter_no_change=n_iter_no_change,
            max_fun=max_fun,
            n_threads=n_threads,
        )
        self.class_weight = class_weight

    # ---------------------------------------------------------------- targets
    def _validate_input(self, X, y, incremental, reset):
        X, y = validate_data(
            self,
            X,
            y,
            accept_sparse=["csr", "csc"],
            multi_output=True,
            dtype=(np.float64, np.float32),
            reset=reset,
        )
        if y.ndim == 2 and y.shape[1] == 1:
            y = column_or_1d(y, warn=True)
        check_classification_targets(y)
        if not hasattr(self, "classes_") or (not self.warm_start and not incremental):
            self._label_binarizer = LabelBinarizer().fit(y)
            self.classes_ = self._label_binarizer.classes_
        else:
            seen = unique_labels(y)
            if incremental:
                unknown = np.setdiff1d(seen, self.classes_)
                if len(unknown):
                    raise ValueError(
                        f"y has classes {unknown.tolist()} that are not in "
                        f"classes_ {self.classes_.tolist()}"
                    )
            elif set(seen) != set(self.classes_):
                raise ValueError(
                    f"warm_start needs y with the classes of the previous fit "
                    f"{self.classes_.tolist()}; y has {seen.tolist()}"
                )
        return X, y, self._binarize(y)

    def _binarize(self, y):
        """``self._label_binarizer.transform(y)``, computed directly for 1-D labels of
        two or more classes (the binarizer re-checks the target type: 2 of the 4 ms
        of an iris fit's validation, measured); the binarizer for anything else."""
        binarizer = self._label_binarizer
        classes = binarizer.classes_
        if y.ndim != 1 or len(classes) < 2 or binarizer.y_type_ not in ("binary", "multiclass"):
            return binarizer.transform(y)
        codes = np.searchsorted(classes, y)
        if not np.array_equal(classes[np.minimum(codes, len(classes) - 1)], y):
            return binarizer.transform(y)  # a label outside classes_ (all-zero rows)
        if len(classes) == 2:
            return codes.reshape(-1, 1)
        onehot = np.zeros((len(y), len(classes)), dtype=int)
        onehot[np.arange(len(y)), codes] = 1
        return onehot

    def _output_layer(self):
        if self._label_binarizer.y_type_ == "multiclass":
            return "softmax", "categorical_crossentropy", "softmax"
        return "sigmoid", "log_loss", "logistic"

    def _decode(self, outputs):
        """``self._label_binarizer.inverse_transform(outputs)``, computed directly for
        binary and multiclass labels (as ``_binarize``): the first largest output's
        class, or the positive class above 0.5."""
        binarizer = self._label_binarizer
        classes = binarizer.classes_
        if len(classes) > 2 and binarizer.y_type_ == "multiclass":
            return classes.take(outputs.argmax(axis=1))
        if len(classes) == 2 and binarizer.y_type_ == "binary":
            return classes.take((outputs.ravel() > 0.5).astype(np.intp))
        if self.n_outputs_ == 1:
            outputs = outputs.ravel()
        return binarizer.inverse_transform(outputs)

    def _validation_score(self, y_true, outputs, sample_weight):
        y_pred = self._decode(outputs)
        if y_pred.ndim == 1:
            # accuracy_score's own arithmetic without its input checks, which took 1.2
            # ms an epoch (68 of a 190 ms early-stopping digits fit): labels and
            # predictions here are this estimator's own.
            return float(np.average(y_true == y_pred, weights=sample_weight))
        return accuracy_score(y_true, y_pred, sample_weight=sample_weight)

    def _stratify_labels(self, y):
        # Multi-label targets are split without stratification.
        return y if y.ndim == 1 else None

    def _class_sample_weight(self, y, incremental):
        if self.class_weight is None:
            return None
        if incremental and self.class_weight == "balanced":
            raise ValueError(
                "class_weight='balanced' is not supported by partial_fit (it "
                "sees one batch at a time); pass a dict, e.g. from "
                "sklearn.utils.class_weight.compute_class_weight"
            )
        return compute_sample_weight(self.class_weight, y)

    # ---------------------------------------------------------------- public API
    def fit(self, X, y, sample_weight=None):
        """Train on (X, y); returns self.

        Parameters
        ----------
        X : {array-like, sparse matrix} of shape (n_samples, n_features)
        y : array-like of shape (n_samples,) or (n_samples, n_labels)
            Class labels, or a 0/1 indicator matrix for multi-label classification.
        sample_weight : array-like of shape (n_samples,), default=None
        """
        self._validate_params()
        return self._fit(X, y, sample_weight, incremental=False)

    @available_if(_stochastic_solver)
    def partial_fit(self, X, y, sample_weight=None, classes=None):
        """One epoch over (X, y), continuing from the current state; returns self.

        ``classes`` (all labels that will ever appear) is required on the first call,
        unless y is a multi-label indicator matrix.
        """
        self._validate_params()
        first_call = not hasattr(self, "classes_") or not hasattr(self, "_net")
        if first_call:
            if type_of_target(y).startswith("multilabel"):
                self._label_binarizer = LabelBinarizer().fit(y)
            elif classes is None:
                raise ValueError("classes must be passed on the first call to partial_fit")
            else:
                self._label_binarizer = LabelBinarizer().fit(classes)
            self.classes_ = self._label_binarizer.classes_
        elif classes is not None and not np.array_equal(np.unique(classes), self.classes_):
            raise ValueError(
                f"classes={list(classes)} differs from the classes of the "
                f"first call, {self.classes_.tolist()}"
            )
        return self._fit(X, y, sample_weight, incremental=True)

    def predict(self, X):
        """Predicted class labels (multi-label: an indicator matrix)."""
        return self._predict(X)

    def predict_proba(self, X):
        """Class probabilities, columns ordered as ``classes_`` (binary: two columns)."""
        outputs = self._forward(X)
        if self.n_outputs_ == 1 and self._label_binarizer.y_type_ != "multilabel-indicator":
            p = outputs[:, 0]
            return np.column_stack([1 - p, p])
        return outputs

    def predict_log_proba(self, X):
        """Logarithm of :meth:`predict_proba`."""
        probabilities = self.predict_proba(X)
        with np.errstate(divide="ignore"):
            return np.log(probabilities, out=probabilities)

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.classifier_tags.multi_label = True
        return tags


class MLPRegressor(RegressorMixin, BaseMLP):
    __doc__ = f"""Multilayer perceptron regressor trained by mlpfast's compiled kernels.

    A drop-in for :class:`sklearn.neural_network.MLPRegressor`: half squared error with
    an identity output, or the Poisson deviance with an exponential output; 2-D ``y``
    trains one output per column.  Sparse ``X`` is accepted and expanded to dense.

    Parameters
    ----------
    loss : {{'squared_error', 'poisson'}}, default='squared_error'
        Half squared error (identity output) or Poisson deviance (exp output; needs
        non-negative targets).{_PARAMETERS_DOC}{_THREADS_DOC}
    Attributes
    ----------{_ATTRIBUTES_DOC}
    Examples
    --------
    >>> from sklearn.datasets import load_diabetes
    >>> from mlpfast import MLPRegressor
    >>> X, y = load_diabetes(return_X_y=True)
    >>> reg = MLPRegressor(solver="lbfgs", random_state=0, max_iter=50).fit(X, y)
    >>> reg.predict(X[:3]).shape
    (3,)
    """

    _parameter_constraints: dict = {
        **BaseMLP._parameter_constraints,
        "loss": [StrOptions({"squared_error", "poisson"})],
    }

    def __init__(
        self,
        loss="squared_error",
        hidden_layer_sizes=(100,),
        activation="relu",
        *,
        solver="adam",
        alpha=0.0001,
        batch_size="auto",
        learning_rate="constant",
        learning_rate_init=0.001,
        power_t=0.5,
        max_iter=200,
        shuffle=True,
        random_state=None,
        tol=1e-4,
        verbose=False,
        warm_start=False,
        momentum=0.9,
        nesterovs_momentum=True,
        early_stopping=False,
        validation_fraction=0.1,
        beta_1=0.9,
        beta_2=0.999,
        epsilon=1e-8,
        n_iter_no_change=10,
        max_fun=15000,
        n_threads=None,
    ):
        super().__init__(
            hidden_layer_sizes=hidden_layer_sizes,
            activation=activation,
            solver=solver,
            alpha=alpha,
            batch_size=batch_size,
            learning_rate=learning_rate,
            learning_rate_init=learning_rate_init,
            power_t=power_t,
            max_iter=max_iter,
            shuffle=shuffle,
            random_state=random_state,
            tol=tol,
            verbose=verbose,
            warm_start=warm_start,
            momentum=momentum,
            nesterovs_momentum=nesterovs_momentum,
            early_stopping=early_stopping,
            validation_fraction=validation_fraction,
            beta_1=beta_1,
            beta_2=beta_2,
            epsilon=epsilon,
            n_iter_no_change=n_iter_no_change,
            max_fun=max_fun,
            n_threads=n_threads,
        )
        self.loss = loss

    def _validate_input(self, X, y, incremental, reset):
        X, y = validate_data(
            self,
            X,
            y,
            accept_sparse=["csr", "csc"],
            multi_output=True,
            y_numeric=True,
            dtype=(np.float64, np.float32),
            reset=reset,
        )
        if y.ndim == 2 and y.shape[1] == 1:
            y = column_or_1d(y, warn=True)
        if self.loss == "poisson" and np.any(y < 0):
            raise ValueError("loss='poisson' needs non-negative targets; y has negative values")
        return X, y, y.reshape(y.shape[0], -1)

    def _output_layer(self):
        if self.loss == "poisson":
            return "exp", "poisson", "exp"
        return "identity", "squared_error", "identity"

    def _decode(self, outputs):
        return outputs.ravel() if outputs.shape[1] == 1 else outputs

    def _validation_score(self, y_true, outputs, sample_weight):
        return r2_score(y_true, self._decode(outputs), sample_weight=sample_weight)

    def fit(self, X, y, sample_weight=None):
        """Train on (X, y); returns self.

        Parameters
        ----------
        X : {array-like, sparse matrix} of shape (n_samples, n_features)
        y : array-like of shape (n_samples,) or (n_samples, n_outputs)
        sample_weight : array-like of shape (n_samples,), default=None
        """
        self._validate_params()
        return self._fit(X, y, sample_weight, incremental=False)

    @available_if(_stochastic_solver)
    def partial_fit(self, X, y, sample_weight=None):
        """One epoch over (X, y), continuing from the current state; returns self."""
        self._validate_params()
        return self._fit(X, y, sample_weight, incremental=True)

    def predict(self, X):
        """Predicted values: shape (n_samples,) for one output, else (n_samples, n_outputs)."""
        return self._predict(X)

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.target_tags.multi_output = True
        return tags
