"""The training machinery shared by :class:`~mlpfast.MLPClassifier` and
:class:`~mlpfast.MLPRegressor`.

The estimators own a :class:`~mlpfast.Network` (``_net``) and nothing else of
substance: ``coefs_`` and ``intercepts_`` are the network's per-layer views into
its flat parameter buffer, so reading or editing them in place reads or edits the
model.  What lives here is what scikit-learn's estimators do around the gradient
steps, rewritten on top of ``Network.fit``:

- the stochastic solvers run ``Network.fit(epochs=1)`` once per epoch, because the
  stopping rule (``tol``/``n_iter_no_change``), early stopping and the ``adaptive``
  learning rate decide after every epoch; ``Network.fit`` continues from the current
  optimizer state and shuffle position, so one-epoch calls form one run;
- ``lbfgs`` hands a float64 copy of the flat buffer to ``scipy.optimize.minimize``
  with ``Network.loss``/``Network.gradients`` plus the L2 term added here;
- initialisation is Glorot uniform drawn from ``random_state`` (scikit-learn's
  recipe), written into the network's views.

Subclasses provide the target handling (``_validate_input``, ``_output_layer``,
``_decode``, ``_validation_score``).
"""

from __future__ import annotations

import inspect
import warnings
from numbers import Integral, Real

import numpy as np
import scipy.optimize
import scipy.sparse
from sklearn.base import BaseEstimator
from sklearn.exceptions import ConvergenceWarning
from sklearn.model_selection import train_test_split
from sklearn.utils import check_random_state
from sklearn.utils._param_validation import Interval, Options, StrOptions
from sklearn.utils.validation import _check_sample_weight, check_is_fitted, validate_data

from . import _threads
from .network import DivergenceError, Network
from .progress import make_progress

# scikit-learn's hidden activations, then mlpfast's additions.
HIDDEN_ACTIVATIONS = ("identity", "logistic", "tanh", "relu", "leaky_relu", "elu", "softplus")
STOCHASTIC_SOLVERS = ("sgd", "adam")
# The adaptive schedule gives up once the learning rate is this small (scikit-learn's).
MIN_ADAPTIVE_LR = 1e-6
# Network's own warning when Ctrl-C stops a fit; the estimators issue their own.
_NETWORK_INTERRUPT_MESSAGE = "training interrupted after"
# Network.fit's defaults for the optimizer settings a solver leaves out.
_NETWORK_DEFAULTS = {
    name: parameter.default
    for name, parameter in inspect.signature(Network.fit).parameters.items()
    if name in ("optimizer", "momentum", "beta_1", "beta_2", "epsilon", "lr_schedule", "power_t")
}


def _dense(X, dtype) -> np.ndarray:
    """C-contiguous dense ``dtype`` array (the kernels are dense: sparse input is
    expanded here, which costs n_samples x n_features floats of memory)."""
    if scipy.sparse.issparse(X):
        X = X.toarray()
    return np.ascontiguousarray(X, dtype=dtype)


class BaseMLP(BaseEstimator):
    """Parameters, fitting loops and persistence common to both estimators."""

    _parameter_constraints: dict = {
        "hidden_layer_sizes": ["array-like", Interval(Integral, 1, None, closed="left")],
        "activation": [StrOptions(set(HIDDEN_ACTIVATIONS))],
        "solver": [StrOptions({"lbfgs", "sgd", "adam"})],
        "alpha": [Interval(Real, 0, None, closed="left")],
        "batch_size": [StrOptions({"auto"}), Interval(Integral, 1, None, closed="left")],
        "learning_rate": [StrOptions({"constant", "invscaling", "adaptive"})],
        "learning_rate_init": [Interval(Real, 0, None, closed="neither")],
        "power_t": [Interval(Real, 0, None, closed="left")],
        "max_iter": [Interval(Integral, 1, None, closed="left")],
        "shuffle": ["boolean"],
        "random_state": ["random_state"],
        "tol": [Interval(Real, 0, None, closed="left")],
        "verbose": ["verbose"],
        "warm_start": ["boolean"],
        "momentum": [Interval(Real, 0, 1, closed="both")],
        "nesterovs_momentum": ["boolean"],
        "early_stopping": ["boolean"],
        "validation_fraction": [Interval(Real, 0, 1, closed="left")],
        "beta_1": [Interval(Real, 0, 1, closed="left")],
        "beta_2": [Interval(Real, 0, 1, closed="left")],
        "epsilon": [Interval(Real, 0, None, closed="neither")],
        "n_iter_no_change": [Interval(Integral, 1, None, closed="left"), Options(Real, {np.inf})],
        "max_fun": [Interval(Integral, 1, None, closed="left")],
        "n_threads": [None, Interval(Integral, 1, None, closed="left"), Options(Integral, {-1})],
    }

    def __init__(
        self,
        *,
        hidden_layer_sizes,
        activation,
        solver,
        alpha,
        batch_size,
        learning_rate,
        learning_rate_init,
        power_t,
        max_iter,
        shuffle,
        random_state,
        tol,
        verbose,
        warm_start,
        momentum,
        nesterovs_momentum,
        early_stopping,
        validation_fraction,
        beta_1,
        beta_2,
        epsilon,
        n_iter_no_change,
        max_fun,
        n_threads,
    ):
        self.hidden_layer_sizes = hidden_layer_sizes
        self.activation = activation
        self.solver = solver
        self.alpha = alpha
        self.batch_size = batch_size
        self.learning_rate = learning_rate
        self.learning_rate_init = learning_rate_init
        self.power_t = power_t
        self.max_iter = max_iter
        self.shuffle = shuffle
        self.random_state = random_state
        self.tol = tol
        self.verbose = verbose
        self.warm_start = warm_start
        self.momentum = momentum
        self.nesterovs_momentum = nesterovs_momentum
        self.early_stopping = early_stopping
        self.validation_fraction = validation_fraction
        self.beta_1 = beta_1
        self.beta_2 = beta_2
        self.epsilon = epsilon
        self.n_iter_no_change = n_iter_no_change
        self.max_fun = max_fun
        self.n_threads = n_threads

    # ------------------------------------------------------------ subclass hooks
    def _validate_input(self, X, y, incremental, reset):
        """Return (X, y as given after validation, targets encoded for the network)."""
        raise NotImplementedError

    def _output_layer(self):
        """Return (network output activation, network loss, ``out_activation_``)."""
        raise NotImplementedError

    def _decode(self, outputs):
        """Predictions from the network's outputs."""
        raise NotImplementedError

    def _validation_score(self, y_true, outputs, sample_weight):
        raise NotImplementedError

    def _class_sample_weight(self, y, incremental):
        return None

    # ------------------------------------------------------------------ fitting
    def _hidden_sizes(self) -> list[int]:
        sizes = self.hidden_layer_sizes
        sizes = list(sizes) if hasattr(sizes, "__iter__") else [sizes]
        if any(not isinstance(s, Integral) or isinstance(s, bool) or s <= 0 for s in sizes):
            raise ValueError(f"hidden_layer_sizes must be positive integers, got {sizes}")
        return [int(s) for s in sizes]

    def _fit(self, X, y, sample_weight=None, incremental=False):
        if incremental and self.early_stopping:
            raise ValueError("partial_fit does not support early_stopping=True")
        hidden = self._hidden_sizes()
        first_pass = not hasattr(self, "_net") or (not self.warm_start and not incremental)
        X, y, Y = self._validate_input(X, y, incremental, reset=first_pass)
        dtype = X.dtype if first_pass else self._net.dtype
        X = _dense(X, dtype)
        Y = np.ascontiguousarray(Y, dtype=dtype)
        sample_weight = self._sample_weight(sample_weight, X, y, incremental)

        self._random_state = check_random_state(self.random_state)
        if first_pass:
            self._initialize(X.shape[1], hidden, Y.shape[1], dtype)
        else:
            if Y.shape[1] != self.n_outputs_:
                raise ValueError(
                    f"y has {Y.shape[1]} outputs but the model was fitted with "
                    f"{self.n_outputs_}; refit with warm_start=False"
                )
            self._sync_parameters()
        self._net.n_threads = self.n_threads

        if self.solver in STOCHASTIC_SOLVERS:
            self._fit_stochastic(X, Y, y, sample_weight, incremental)
        else:
            self._fit_lbfgs(X, Y, sample_weight)
        return self

    def _sample_weight(self, sample_weight, X, y, incremental):
        if sample_weight is not None:
            sample_weight = _check_sample_weight(
                sample_weight, X, dtype=X.dtype, ensure_non_negative=True
            )
        class_weight = self._class_sample_weight(y, incremental)
        if class_weight is not None:
            sample_weight = class_weight if sample_weight is None else sample_weight * class_weight
        if sample_weight is None:
            return None
        sample_weight = np.ascontiguousarray(sample_weight, dtype=X.dtype)
        if not sample_weight.sum() > 0:
            raise ValueError(
                "sample_weight (times class_weight) sums to zero: at least one "
                "sample needs a positive weight"
            )
        return sample_weight

    def _initialize(self, n_features, hidden, n_outputs, dtype):
        out_act, loss, self.out_activation_ = self._output_layer()
        sizes = [n_features, *hidden, n_outputs]
        activations = [self.activation] * len(hidden) + [out_act]
        self._net = Network(sizes, activations, loss, dtype=dtype, n_threads=self.n_threads)
        self.n_layers_ = len(sizes)
        self.n_outputs_ = n_outputs
        self.n_iter_ = 0
        self.t_ = 0
        # Glorot uniform for weights and biases, as scikit-learn draws them.
        factor = 2.0 if self.activation == "logistic" else 6.0
        for coef, intercept in zip(self._net.coefs, self._net.intercepts, strict=True):
            bound = np.sqrt(factor / sum(coef.shape))
            coef[...] = self._random_state.uniform(-bound, bound, coef.shape)
            intercept[...] = self._random_state.uniform(-bound, bound, intercept.shape)
        self._publish_parameters()
        self._best_params = self._net.params.copy()
        self.loss_curve_ = []
        self._no_improvement_count = 0
        if self.early_stopping and self.solver in STOCHASTIC_SOLVERS:
            self.validation_scores_ = []
            self.validation_loss_curve_ = []
            self.best_validation_score_ = -np.inf
            self.best_loss_ = None
        else:
            self.validation_scores_ = None
            self.validation_loss_curve_ = None
            self.best_validation_score_ = None
            self.best_loss_ = np.inf if self.solver in STOCHASTIC_SOLVERS else None

    def _batch_size(self, n_samples: int) -> int:
        if self.batch_size == "auto":
            return min(200, n_samples)
        if self.batch_size > n_samples:
            warnings.warn(
                f"batch_size={self.batch_size} is larger than the {n_samples} "
                f"training samples; using {n_samples}",
                UserWarning,
                stacklevel=5,
            )
        return min(self.batch_size, n_samples)

    def _optimizer_settings(self) -> dict:
        """Network.fit's optimizer arguments for this estimator's solver."""
        if self.solver == "adam":
            return dict(
                optimizer="adam", beta_1=self.beta_1, beta_2=self.beta_2, epsilon=self.epsilon
            )
        if self.momentum >= 1:
            # (allowed by the parameter constraints, as in scikit-learn, for the
            # solvers that ignore it)
            raise ValueError(
                f"solver='sgd' needs momentum < 1 (a velocity that never "
                f"decays); got momentum={self.momentum}"
            )
        if self.momentum > 0:
            optimizer = "nesterov" if self.nesterovs_momentum else "momentum"
        else:
            optimizer = "sgd"
        schedule = "invscaling" if self.learning_rate == "invscaling" else "constant"
        return dict(
            optimizer=optimizer, momentum=self.momentum, lr_schedule=schedule, power_t=self.power_t
        )

    def _reset_optimizer(self):
        # scikit-learn starts a fresh optimizer for every fit() call, warm or not;
        # Network.initialize resets optimizer state and step counters (and redraws
        # the weights, which are put back).
        params = self._net.params.copy()
        self._net.initialize()
        self._net.params[...] = params

    def _split_validation(self, X, Y, y, sample_weight):
        if self.validation_fraction == 0:
            raise ValueError(
                "early_stopping=True holds out validation_fraction of the data; it must be > 0"
            )
        stratify = self._stratify_labels(y)
        arrays = [X, Y, y] + ([sample_weight] if sample_weight is not None else [])
        try:
            parts = train_test_split(
                *arrays,
                test_size=self.validation_fraction,
                random_state=self._random_state,
                stratify=stratify,
            )
        except ValueError:
            if stratify is None:
                raise
            # Too few samples of some class to stratify: an unstratified split.
            parts = train_test_split(
                *arrays, test_size=self.validation_fraction, random_state=self._random_state
            )
        train, val = parts[0::2], parts[1::2]
        if val[0].shape[0] < 2:
            raise ValueError(
                f"the validation set holds {val[0].shape[0]} sample(s); early "
                f"stopping needs at least 2: increase validation_fraction "
                f"(now {self.validation_fraction}) or pass more data"
            )
        if sample_weight is None:
            train, val = train + [None], val + [None]
        return (
            [np.ascontiguousarray(a) if a is not None else None for a in train],
            [np.ascontiguousarray(a) if a is not None else None for a in val],
        )

    def _stratify_labels(self, y):
        return None

    def _fit_stochastic(self, X, Y, y, sample_weight, incremental):
        net = self._net
        validation = None
        if self.early_stopping:
            (X, Y, y, sample_weight), validation = self._split_validation(X, Y, y, sample_weight)
            X_val, Y_val, y_val, sw_val = validation
            if sw_val is not None and not sw_val.sum() > 0:
                raise ValueError(
                    f"the sample weights of the rows held out for early stopping "
                    f"(validation_fraction={self.validation_fraction}) sum to zero: "
                    f"give more rows a positive weight, or change validation_fraction "
                    f"or random_state"
                )
            # checked once here; each epoch's scoring runs on them unchecked
            X_val, Y_val, sw_val = net._check_data(X_val, Y_val, sw_val)
            validation = (X_val, Y_val, y_val, sw_val)
        n_samples = X.shape[0]
        batch = self._batch_size(n_samples)
        if not incremental or not hasattr(self, "_learning_rate"):
            self._reset_optimizer()
            self._learning_rate = float(self.learning_rate_init)
        # Network shuffles with its own generator; its seed comes from random_state.
        shuffle_seed = int(self._random_state.randint(np.iinfo(np.int32).max))
        settings = self._optimizer_settings()
        epochs = 1 if incremental else self.max_iter
        first_epoch = len(self.loss_curve_)
        bar, lines = self.verbose >= 2, self._prints_lines()
        self.n_iter_ = 0
        stopped = interrupted = False
        # Validated and allocated once, then run an epoch at a time (one net.fit per
        # epoch spent 43 ms of a 235 ms digits fit on that).
        plan = net._plan_fit(
            X,
            Y,
            sample_weight,
            batch_size=batch,
            lr=self._learning_rate,
            shuffle=self.shuffle,
            seed=shuffle_seed,
            alpha=self.alpha,
            **{**_NETWORK_DEFAULTS, **settings},
        )
        with (
            make_progress(epochs, n_samples, bar, desc=type(self).__name__) as progress,
            warnings.catch_warnings(),
            # BLAS capped and Numba's threads set once for the whole loop, not per epoch
            _threads.kernel_threads(plan.threads, plan.uses_blas, plan.parallel),
        ):
            warnings.filterwarnings(
                "ignore", message=_NETWORK_INTERRUPT_MESSAGE, category=RuntimeWarning
            )
            try:
                while self.n_iter_ < epochs and not (stopped or interrupted):
                    chunk = self._epochs_per_call(epochs, validation is not None or bar or lines)
                    plan.set_lr(self._learning_rate)
                    history = len(net.history)
                    diverged = None
                    try:
                        losses = net._run_epochs(plan, chunk, "raise", None)
                    except DivergenceError as exc:
                        # (the epochs of this call before the diverged one count)
                        diverged, losses = exc, net.history[history:]
                    interrupted = plan.interrupted
                    for loss in losses:
                        self.n_iter_ += 1
                        self.t_ += n_samples
                        self.loss_ = float(loss)
                        self.loss_curve_.append(self.loss_)
                        if lines:
                            print(f"Iteration {self.n_iter_}, loss = {self.loss_:.8f}")
                        if validation is not None:
                            self._score_validation(*validation)
                        else:
                            self._track_training_loss()
                    progress.update(self.n_iter_, np.asarray(self.loss_curve_[first_epoch:]))
                    if diverged is not None:
                        raise ValueError(
                            f"the solver produced non-finite weights ({diverged}) Scale the "
                            f"input data or lower learning_rate_init."
                        ) from diverged
                    # Only a whole call's last epoch can reach this (_epochs_per_call).
                    if not interrupted and self._no_improvement_count > self.n_iter_no_change:
                        if self._stuck():
                            stopped = True
                        else:
                            self._no_improvement_count = 0
            except KeyboardInterrupt:
                interrupted = True
        if interrupted:
            warnings.warn(
                f"training interrupted by the user after {self.n_iter_} epoch(s) "
                f"of this call; the model holds the parameters of the last "
                f"completed epoch"
                + (" (the best on the validation set)" if validation is not None else ""),
                UserWarning,
                stacklevel=4,
            )
        if validation is not None:
            net.params[...] = self._best_params
        if not (incremental or stopped or interrupted) and self.n_iter_ == self.max_iter:
            warnings.warn(
                f"Stochastic Optimizer: Maximum iterations ({self.max_iter}) "
                f"reached and the optimization hasn't converged yet.",
                ConvergenceWarning,
                stacklevel=4,
            )

    def _epochs_per_call(self, epochs, one_at_a_time) -> int:
        """How many epochs the next kernel call may run: as many as cannot change
        what happens next.  The training-loss rule stops (or cuts an adaptive
        learning rate) only once ``n_iter_no_change`` + 1 epochs in a row have not
        improved, and the count grows by at most one an epoch, so no epoch before
        that many more can trigger it: running them in one call (then replaying the
        rule over their losses) gives the same model, without an epoch's Python
        bookkeeping around every kernel call.  An iris fit (300 epochs of 150 rows)
        took 13.0-16.2 ms one epoch a call and 4.5-6.0 ms so; digits-adam 213-242 ->
        205-210 ms on 2 threads (alternating processes).  Early stopping (it keeps
        the best epoch's weights) and verbose output (live lines and bar) go an
        epoch at a time."""
        if one_at_a_time:
            return 1
        left = epochs - self.n_iter_
        return max(1, min(left, self.n_iter_no_change + 1 - self._no_improvement_count))

    def _prints_lines(self) -> bool:
        # verbose=1: scikit-learn's lines; verbose>=2: sgd/adam show a progress bar
        # instead (lbfgs, which has no bar, prints its lines for any verbose).
        return bool(self.verbose) and (self.verbose < 2 or self.solver == "lbfgs")

    def _score_validation(self, X_val, Y_val, y_val, sw_val):
        net = self._net
        # The data loss of the held-out rows (no L2 term: it describes the weights,
        # not the data), from the pass that predicts them.
        outputs, loss = net._outputs_and_loss(X_val, Y_val, sw_val)
        score = self._validation_score(y_val, outputs, sw_val)
        self.validation_scores_.append(score)
        self.validation_loss_curve_.append(loss)
        if self._prints_lines():
            print(f"Validation score: {score:f}")
        if score < self.best_validation_score_ + self.tol:
            self._no_improvement_count += 1
        else:
            self._no_improvement_count = 0
        if score > self.best_validation_score_:
            self.best_validation_score_ = score
            self._best_params = net.params.copy()

    def _track_training_loss(self):
        loss = self.loss_curve_[-1]
        if loss > self.best_loss_ - self.tol:
            self._no_improvement_count += 1
        else:
            self._no_improvement_count = 0
        self.best_loss_ = min(self.best_loss_, loss)

    def _stuck(self) -> bool:
        """No improvement for n_iter_no_change epochs: stop (True), or divide an
        adaptive learning rate by 5 and carry on (False)."""
        what = "Validation score" if self.early_stopping else "Training loss"
        message = (
            f"{what} did not improve more than tol={self.tol:f} for "
            f"{self.n_iter_no_change} consecutive epochs."
        )
        adaptive = self.solver == "sgd" and self.learning_rate == "adaptive"
        if adaptive and self._learning_rate > MIN_ADAPTIVE_LR:
            self._learning_rate /= 5.0
            if self._prints_lines():
                print(f"{message} Setting learning rate to {self._learning_rate:f}")
            return False
        if self._prints_lines():
            print(f"{message} " + ("Learning rate too small. " if adaptive else "") + "Stopping.")
        return True

    def _fit_lbfgs(self, X, Y, sample_weight):
        net = self._net
        weights = net._layout.weight_mask()
        total_weight = float(sample_weight.sum()) if sample_weight is not None else X.shape[0]
        penalty = self.alpha / total_weight
        last = {"loss": np.nan}

        # (validated and allocated once; each point is one forward and backward pass)
        evaluate = net._loss_and_gradients(X, Y, sample_weight)

        # scikit-learn's objective: the data loss plus alpha ||W||^2 / (2 sum(w)).
        def loss_and_gradient(x):
            net.params[...] = x
            w = x[weights]
            loss = evaluate() + 0.5 * penalty * float(w @ w)
            grad = net._grads.astype(np.float64)
            grad[weights] += penalty * w
            last["loss"] = loss
            return loss, grad

        curve = []
        iterate = net.params.astype(np.float64)

        # L-BFGS-B accepts the point its line search evaluated last, so the loss of
        # the latest evaluation is the loss at the new iterate.
        def record(xk):
            iterate[...] = xk
            curve.append(last["loss"])
            if self.verbose:
                print(f"Iteration {len(curve)}, loss = {last['loss']:.8f}")

        result = None
        try:
            # BLAS capped (and Numba's threads set) for the whole run, not only while
            # a kernel runs: L-BFGS-B's own BLAS calls with two threads beside Numba's
            # spinning workers took 162 ms of a 400 ms digits fit, 19 ms capped (the
            # fit: 93 ms; 2 threads, Zen 4).
            with evaluate.threads():
                result = scipy.optimize.minimize(
                    loss_and_gradient,
                    iterate.copy(),
                    method="L-BFGS-B",
                    jac=True,
                    callback=record,
                    options={"maxfun": self.max_fun, "maxiter": self.max_iter, "gtol": self.tol},
                )
        except KeyboardInterrupt:
            warnings.warn(
                f"training interrupted by the user after {len(curve)} lbfgs "
                f"iteration(s); the model holds the last iterate",
                UserWarning,
                stacklevel=4,
            )
        if result is not None:
            net.params[...] = result.x
            self.loss_ = float(result.fun)
            self.n_iter_ = min(int(result.nit), self.max_iter)
            if result.status != 0:
                message = result.message
                if isinstance(message, bytes):
                    message = message.decode("latin1")
                warnings.warn(
                    f"lbfgs failed to converge after {result.nit} iteration(s) (status "
                    f"{result.status}): {message}. Increase max_iter or max_fun, or scale "
                    f"the data.",
                    ConvergenceWarning,
                    stacklevel=4,
                )
        else:
            net.params[...] = iterate
            self.loss_ = curve[-1] if curve else float(loss_and_gradient(iterate)[0])
            self.n_iter_ = len(curve)
        self.loss_curve_.extend(curve)
        if not np.isfinite(net.params).all():
            raise ValueError("lbfgs produced non-finite weights; scale the input data")

    # ----------------------------------------------------------------- inference
    def _forward(self, X) -> np.ndarray:
        check_is_fitted(self)
        X = validate_data(
            self, X, accept_sparse=["csr", "csc"], reset=False, dtype=(np.float64, np.float32)
        )
        self._sync_parameters()
        return self._net.predict(_dense(X, self._net.dtype))

    def _predict(self, X):
        return self._decode(self._forward(X))

    # -------------------------------------------------- parameters and pickling
    def _publish_parameters(self):
        self.coefs_ = list(self._net.coefs)
        self.intercepts_ = list(self._net.intercepts)

    def _sync_parameters(self):
        """Copy into the network any layer the user replaced in coefs_/intercepts_
        (in-place edits need nothing: those arrays are the network's own views)."""
        net = self._net
        pairs = [
            ("coefs_", self.coefs_, net.coefs),
            ("intercepts_", self.intercepts_, net.intercepts),
        ]
        if all(
            len(mine) == len(theirs) and all(a is b for a, b in zip(mine, theirs, strict=True))
            for _, mine, theirs in pairs
        ):
            return
        for name, mine, theirs in pairs:
            if len(mine) != len(theirs):
                raise ValueError(f"{name} has {len(mine)} layers; the network has {len(theirs)}")
            for k, (value, view) in enumerate(zip(mine, theirs, strict=True)):
                if value is not view:
                    value = np.asarray(value)
                    if value.shape != view.shape:
                        raise ValueError(
                            f"{name}[{k}] has shape {value.shape}; the network expects {view.shape}"
                        )
                    view[...] = value
        self._publish_parameters()

    def __sklearn_is_fitted__(self):
        return hasattr(self, "_net")

    def __getstate__(self):
        if hasattr(self, "_net"):
            self._sync_parameters()
        state = dict(super().__getstate__())
        # coefs_/intercepts_ are views into the network's buffer: rebuilt on load.
        state.pop("coefs_", None)
        state.pop("intercepts_", None)
        return state

    def __setstate__(self, state):
        super().__setstate__(state)
        if "_net" in self.__dict__:
            # Pickle copies each of the Network's per-layer views separately, which
            # detaches them from its flat buffer: point them back into it.
            self._net._bind_views()
            self._publish_parameters()

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.input_tags.sparse = True
        return tags
