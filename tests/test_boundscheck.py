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
    # A kernel called through a function pointer (the unrolled kernels) cannot
    # raise: numba prints the IndexError as "Exception ignored" and goes on.
    assert "IndexError" not in result.stderr, result.stderr[-3000:]
    assert "Exception ignored" not in result.stderr, result.stderr[-3000:]
