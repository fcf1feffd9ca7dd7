"""The progress bar: on when asked, off when not a terminal, silent without tqdm."""

import io
import sys

import numpy as np
import pytest

from mlpfast import Network
from mlpfast.progress import make_progress


class _Terminal(io.StringIO):
    def isatty(self):
        return True


def _fit(verbose, epochs=4):
    rng = np.random.default_rng(0)
    X = rng.standard_normal((64, 3))
    y = (X[:, 0] > 0).astype(float)
    net = Network([3, 4, 1], ["relu", "sigmoid"], "binary_crossentropy", dtype="float64", seed=0)
    return net.fit(X, y, epochs=epochs, batch_size=16, lr=0.1, verbose=verbose)


def test_bar_shows_epoch_loss_and_rate():
    pytest.importorskip("tqdm")
    out = io.StringIO()
    with make_progress(5, 1000, True, desc="unit", file=out) as progress:
        progress.update(2, np.array([0.75, 0.5]))
        progress.update(5, np.array([0.75, 0.5, 0.4, 0.3, 0.25]))
    text = out.getvalue()
    assert "unit" in text
    assert "5/5" in text
    assert "loss=0.25" in text
    assert "samples/s=" in text


def test_fit_verbose_true_writes_to_stderr(monkeypatch):
    pytest.importorskip("tqdm")
    err = io.StringIO()
    monkeypatch.setattr(sys, "stderr", err)
    losses = _fit(True)
    text = err.getvalue()
    assert "4/4" in text
    assert f"loss={losses[-1]:.4g}" in text


@pytest.mark.parametrize("stream, shown", [(io.StringIO, False), (_Terminal, True)])
def test_default_follows_whether_stderr_is_a_terminal(monkeypatch, stream, shown):
    pytest.importorskip("tqdm")
    err = stream()
    monkeypatch.setattr(sys, "stderr", err)
    _fit(None)
    assert ("4/4" in err.getvalue()) == shown


def test_verbose_false_is_silent_even_on_a_terminal(monkeypatch):
    err = _Terminal()
    monkeypatch.setattr(sys, "stderr", err)
    _fit(False)
    assert err.getvalue() == ""


def test_without_tqdm_verbose_fit_is_silent(monkeypatch):
    err = _Terminal()
    monkeypatch.setattr(sys, "stderr", err)
    monkeypatch.setitem(sys.modules, "tqdm", None)  # makes `import tqdm` fail
    losses = _fit(True)
    assert err.getvalue() == ""
    assert losses.shape == (4,)
