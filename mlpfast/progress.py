"""Progress reporting for long fits: a tqdm bar showing epoch, loss and samples/s.

``Network.fit`` reports after each compiled call (about every 0.2 s), so the bar
costs nothing measurable.  tqdm is optional (``pip install "mlpfast[progress]"``):
without it, or when the bar is off, fits are silent.
"""

from __future__ import annotations

import contextlib
import sys
import time
from collections.abc import Iterator

import numpy as np


class _Silent:
    def update(self, epochs_done: int, losses: np.ndarray) -> None:
        pass


class _Bar:
    """Moves a tqdm bar to ``epochs_done`` and shows the last loss and throughput."""

    def __init__(self, bar, n_samples: int):
        self._bar = bar
        self._n_samples = n_samples
        self._done = 0
        self._last = time.perf_counter()

    def update(self, epochs_done: int, losses: np.ndarray) -> None:
        now = time.perf_counter()
        new = epochs_done - self._done
        if new <= 0:
            return
        # The rate over the last call only: the first call of a fresh process also
        # compiles, and should not drag the figure down for the whole fit.
        rate = new * self._n_samples / max(now - self._last, 1e-9)
        self._done, self._last = epochs_done, now
        postfix = {"samples/s": self._bar.format_sizeof(rate)}
        if len(losses):
            postfix = {"loss": f"{float(losses[-1]):.4g}", **postfix}
        self._bar.set_postfix(postfix, refresh=False)
        self._bar.update(new)


def _stderr_is_terminal() -> bool:
    try:
        return sys.stderr is not None and sys.stderr.isatty()
    except (AttributeError, ValueError):  # replaced or closed stream
        return False


def _tqdm():
    try:
        from tqdm import tqdm
    except ImportError:
        return None
    return tqdm


@contextlib.contextmanager
def make_progress(
    total_epochs: int, n_samples: int, enabled: bool | None, desc: str = "mlpfast", file=None
) -> Iterator[_Bar | _Silent]:
    """A progress reporter for a fit of ``total_epochs`` epochs over ``n_samples`` rows.

    Parameters
    ----------
    total_epochs, n_samples : int
    enabled : bool or None
        True: always show the bar; False: never; None: only when stderr is a
        terminal (so logs and CI output stay clean).
    desc : str
        The bar's label.
    file : file-like, optional
        Where the bar is written (default: ``sys.stderr`` at the time of the call).

    Yields
    ------
    An object with ``update(epochs_done, losses)``: ``epochs_done`` counts the
    epochs completed in this fit, ``losses`` holds their mean losses.  Silent
    when the bar is off or tqdm is not installed.
    """
    if enabled is None:
        enabled = _stderr_is_terminal()
    tqdm = _tqdm() if enabled else None
    if tqdm is None:
        yield _Silent()
        return
    bar = tqdm(
        total=total_epochs,
        desc=desc,
        unit="epoch",
        leave=True,
        file=file if file is not None else sys.stderr,
        dynamic_ncols=True,
    )
    try:
        yield _Bar(bar, n_samples)
    finally:
        bar.close()
