"""The kernels under NUMBA_BOUNDSCHECK=1, in a child process with its own cache.

Numba's cache key does not include the boundscheck flag, so the child gets a
private NUMBA_CACHE_DIR: checked code never leaks into the normal cache.
"""

import os
import subprocess
import sys
from pathlib import Path

import pytest


@pytest.mark.boundscheck
@pytest.mark.slow
def test_kernels_stay_in_bounds(tmp_path):
    env = dict(os.environ, NUMBA_BOUNDSCHECK="1", NUMBA_CACHE_DIR=str(tmp_path / "cache"))
    probe = Path(__file__).with_name("boundscheck_probe.py")
    result = subprocess.run(
        [sys.executable, str(probe)], env=env, capture_output=True, text=True, timeout=1200
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    assert "boundscheck probe ok" in result.stdout
    # An exception numba cannot propagate (a kernel called through a C function
    # pointer) is printed as "Exception ignored" and the program goes on.
    assert "IndexError" not in result.stderr, result.stderr[-3000:]
    assert "Exception ignored" not in result.stderr, result.stderr[-3000:]


_UNROLLED_OUT_OF_BOUNDS = """
import numpy as np
import mlpfast
from mlpfast._kernels import train as _train

net = mlpfast.Network([2, 4, 3, 1], ["relu", "relu", "sigmoid"], "binary_crossentropy", seed=0)
X, Y = np.random.rand(100, 2), (np.random.rand(100, 1) > 0.5).astype(float)
plan = net._plan_fit(X, Y, None, batch_size=100, shuffle=False, seed=0, optimizer="sgd",
                     lr=0.005, momentum=0.9, beta_1=0.9, beta_2=0.999, epsilon=1e-8,
                     alpha=0.0, lr_schedule="constant", power_t=0.5)
short = plan.data._replace(Xf=plan.data.Xf[:150])  # the kernel reads 200 values
plan.config[_train.N_EPOCHS] = 1
try:
    plan.train(short, plan.model, plan.ws, plan.config, plan.coefs, net._counters, np.empty(1))
except IndexError:
    print("raised")
"""


@pytest.mark.boundscheck
@pytest.mark.slow
def test_an_unrolled_kernel_raises_through_its_function_pointer(tmp_path):
    # The epoch loop calls a small network's kernel through a function pointer
    # (``unrolled.function_at``): with Numba's calling convention, so an exception
    # in the kernel reaches the caller instead of being printed and ignored.
    env = dict(os.environ, NUMBA_BOUNDSCHECK="1", NUMBA_CACHE_DIR=str(tmp_path / "cache"))
    result = subprocess.run(
        [sys.executable, "-c", _UNROLLED_OUT_OF_BOUNDS],
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert result.stdout.strip() == "raised", result.stdout + result.stderr[-3000:]
