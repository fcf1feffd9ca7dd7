"""Start-up: wall time of a fresh process that imports mlpfast and runs a first fit.

BENCHMARKS.md targets: import + first fit of the tutorial <= 1.0 s with the
kernels cached, <= 15 s with an empty cache.

- ``import``: ``import mlpfast`` alone.
- ``warm``: import + first fit, kernels loaded from mlpfast's usual cache (which
  ``setup`` fills first, if needed, with one untimed run).
- ``cold``: the same with ``NUMBA_CACHE_DIR`` pointing at a new, empty directory
  (mlpfast then keeps its kernels in ``$NUMBA_CACHE_DIR/mlpfast``), so every kernel
  the fit needs compiles and the usual cache is neither used nor touched (about
  15 s on 2 cores).  ``MLPFAST_ASV_SKIP_COLD=1`` in the environment skips it.
"""

import os
import shutil
import subprocess
import sys
import tempfile
import time

import numpy as np

from .common import workload_data

_FIT = """
import sys
import numpy as np
import mlpfast
data = np.load(sys.argv[1])
net = mlpfast.Network([2, 4, 3, 1], ["relu", "relu", "sigmoid"], "binary_crossentropy",
                      dtype="float64", seed=0)
net.fit(data["X"], data["y"], epochs=1, batch_size=1000, lr=0.005, verbose=False)
"""
_IMPORT = "import mlpfast\n"


class StartUp:
    params = (["import", "warm", "cold"],)
    param_names = ["case"]
    unit = "seconds"
    timeout = 900

    def setup(self, case):
        self.tmp = tempfile.mkdtemp(prefix="mlpfast-asv-")  # teardown runs even on a skip
        if case == "cold" and os.environ.get("MLPFAST_ASV_SKIP_COLD"):
            raise NotImplementedError("MLPFAST_ASV_SKIP_COLD is set")
        self.data = os.path.join(self.tmp, "tutorial.npz")
        X, y = workload_data("tutorial")
        np.savez(self.data, X=X, y=y)
        if case == "warm":
            self._run(_FIT)

    def teardown(self, case):
        shutil.rmtree(self.tmp, ignore_errors=True)

    def _run(self, code, cache_dir=None):
        env = dict(os.environ)
        if cache_dir is not None:
            env["NUMBA_CACHE_DIR"] = cache_dir
        started = time.perf_counter()
        subprocess.run(
            [sys.executable, "-c", code, self.data], env=env, check=True, stdout=subprocess.DEVNULL
        )
        return time.perf_counter() - started

    def track_seconds(self, case):
        if case == "import":
            return self._run(_IMPORT)
        if case == "warm":
            return self._run(_FIT)
        return self._run(_FIT, tempfile.mkdtemp(prefix="cache-", dir=self.tmp))
