"""Loss curves of a fitted :class:`~mlpfast.Network` or estimator (matplotlib, optional)."""

from __future__ import annotations

import numpy as np

_INSTALL_HINT = 'plot_loss_curve needs matplotlib: pip install "mlpfast[plot]"'


def _curves(model) -> tuple[np.ndarray, np.ndarray | None, np.ndarray | None]:
    """(training loss, validation loss or None, validation score or None) per epoch."""
    if hasattr(model, "loss_curve_"):  # an estimator
        validation_loss = getattr(model, "validation_loss_curve_", None)
        scores = getattr(model, "validation_scores_", None)
        train = model.loss_curve_
    elif hasattr(model, "history"):  # a Network
        train, validation_loss, scores = model.history, None, None
    else:
        raise TypeError(
            f"plot_loss_curve needs a Network (with .history) or an estimator "
            f"(with .loss_curve_); got {type(model).__name__}"
        )
    if train is None or len(train) == 0:
        raise ValueError("the model has no loss curve yet: call fit first")

    def as_array(values):
        return None if values is None or len(values) == 0 else np.asarray(values, dtype=float)

    return as_array(train), as_array(validation_loss), as_array(scores)


def plot_loss_curve(
    model, ax=None, *, label: str | None = None, log_scale: bool = False, **plot_kwargs
):
    """Plot the mean training loss of each epoch of a fitted model.

    Parameters
    ----------
    model : Network or estimator
        A :class:`~mlpfast.Network` (its ``history``) or an estimator with
        ``loss_curve_``.  An estimator's ``validation_loss_curve_`` is drawn
        dashed on the same axes, and its ``validation_scores_`` (early stopping)
        on a second y axis on the right (``ax.twinx()``, which then holds the
        legend).
    ax : matplotlib Axes, optional
        Where to draw; default: a new figure.
    label : str, optional
        Legend label of the training curve (default ``"training loss"``).
    log_scale : bool
        Logarithmic loss axis.
    **plot_kwargs
        Passed to ``ax.plot`` for the training curve (``color``, ``linewidth``...).

    Returns
    -------
    matplotlib Axes
        The axes of the loss curves (save with ``ax.figure.savefig(path)``).
    """
    train, validation_loss, scores = _curves(model)
    if ax is None:
        try:
            import matplotlib.pyplot as plt
        except ImportError as error:
            raise ImportError(_INSTALL_HINT) from error
        _, ax = plt.subplots()
    epochs = np.arange(1, len(train) + 1)
    (line,) = ax.plot(epochs, train, label=label or "training loss", **plot_kwargs)
    if validation_loss is not None:
        ax.plot(
            np.arange(1, len(validation_loss) + 1),
            validation_loss,
            "--",
            color=line.get_color(),
            label="validation loss",
        )
    ax.set_xlabel("epoch")
    ax.set_ylabel("mean loss")
    if log_scale:
        ax.set_yscale("log")
    # The legend lists every curve on these axes, so several models can share them.
    handles = [h for h in ax.get_lines() if not h.get_label().startswith("_")]
    top = ax
    if scores is not None:
        top = ax.twinx()  # drawn above ax: it carries the legend, so no curve crosses it
        handles += top.plot(
            np.arange(1, len(scores) + 1), scores, ":", color="black", label="validation score"
        )
        top.set_ylabel("validation score")
    # "best" sees only the top axes' curves; with scores, losses usually end low and
    # scores high on the right, leaving its middle free.
    top.legend(handles=handles, loc="best" if top is ax else "center right")
    return ax
